/*
 * The fair C baseline of `pnpm bench tokens`: the best single-threaded
 * libfuse3 low-level jobserver we know how to write with the SAME strategy
 * as steve-daemon's native glue (packages/steve-daemon/native/session.cc),
 * minus JavaScript:
 *
 * - the INIT request is answered with a blocking read, then the /dev/fuse
 *   fd from fuse_session_fd is made O_NONBLOCK and put under epoll
 *   (level-triggered, as libuv's uv_poll); when it is readable, requests are
 *   received and dispatched until the fd says EAGAIN;
 * - one `struct fuse_buf`, allocated by libfuse on the first receive and
 *   reused for every request (fuse_session_receive_buf /
 *   fuse_session_process_buf);
 * - no splice: FUSE_CAP_SPLICE_{READ,WRITE,MOVE} cleared in init (libfuse
 *   3.14 only sets SPLICE_READ by default when there is a write_buf op,
 *   which neither server has; the daemon never asks for splice);
 * - the same mount options (fsname, subtype, default_permissions), the same
 *   1 s attribute and entry timeouts, and the same FOPEN flags on
 *   `jobserver`: direct_io | nonseekable | stream (FOPEN_STREAM has no bit
 *   in libfuse 3.14's fuse_file_info, so the open reply is built by hand, as
 *   the daemon does).
 *
 * Semantics: a token counter; a read takes a token (EAGAIN when there is
 * none, blocking or not: the benchmark's pairs client never finds the pool
 * empty), a write puts its bytes back. No accounting, no queue, no poll.
 *
 *   fair-fuse-server MOUNTDIR TOKENS
 *
 * Prints "ready" once the mount answers; SIGTERM/SIGINT/SIGHUP end it and
 * unmount.
 */
#define FUSE_USE_VERSION 34
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

static long tokens;
static const fuse_ino_t JOBSERVER_INO = 2;
static const double ATTR_TIMEOUT = 1.0;

static void fill_attr(fuse_ino_t ino, struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_ino = ino;
  st->st_uid = geteuid();
  st->st_gid = getegid();
  if (ino == FUSE_ROOT_ID) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
  } else {
    st->st_mode = S_IFREG | 0666;
    st->st_nlink = 1;
  }
}

static void fair_init(void *userdata, struct fuse_conn_info *conn) {
  (void)userdata;
  conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
}

static void fair_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  if (parent != FUSE_ROOT_ID || strcmp(name, "jobserver") != 0) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct fuse_entry_param e;
  memset(&e, 0, sizeof e);
  e.ino = JOBSERVER_INO;
  e.attr_timeout = ATTR_TIMEOUT;
  e.entry_timeout = ATTR_TIMEOUT;
  fill_attr(e.ino, &e.attr);
  fuse_reply_entry(req, &e);
}

static void fair_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)fi;
  struct stat st;
  if (ino != FUSE_ROOT_ID && ino != JOBSERVER_INO) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  fill_attr(ino, &st);
  fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

/* O_TRUNC opens arrive as SETATTR(size=0): answer with the attributes. */
static void fair_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                         struct fuse_file_info *fi) {
  (void)attr;
  (void)to_set;
  fair_getattr(req, ino, fi);
}

/* The kernel's struct fuse_open_out. */
struct open_out {
  uint64_t fh;
  uint32_t open_flags;
  uint32_t padding;
};
#define FOPEN_DIRECT_IO_BIT (1u << 0)
#define FOPEN_NONSEEKABLE_BIT (1u << 2)
#define FOPEN_STREAM_BIT (1u << 4)

static void fair_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)fi;
  if (ino != JOBSERVER_INO) {
    fuse_reply_err(req, ino == FUSE_ROOT_ID ? EISDIR : ENOENT);
    return;
  }
  struct open_out out = {0, FOPEN_DIRECT_IO_BIT | FOPEN_NONSEEKABLE_BIT | FOPEN_STREAM_BIT, 0};
  fuse_reply_buf(req, (const char *)&out, sizeof out);
}

static void fair_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino;
  (void)fi;
  fuse_reply_err(req, 0);
}

static void fair_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino;
  (void)fi;
  fuse_reply_err(req, 0);
}

static void fair_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                      struct fuse_file_info *fi) {
  (void)ino;
  (void)off;
  (void)fi;
  if (size == 0) {
    fuse_reply_buf(req, NULL, 0);
    return;
  }
  if (tokens <= 0) {
    fuse_reply_err(req, EAGAIN);
    return;
  }
  tokens--;
  fuse_reply_buf(req, "+", 1);
}

static void fair_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                       struct fuse_file_info *fi) {
  (void)ino;
  (void)buf;
  (void)off;
  (void)fi;
  tokens += (long)size;
  fuse_reply_write(req, size);
}

static const struct fuse_lowlevel_ops ops = {
    .init = fair_init,
    .lookup = fair_lookup,
    .getattr = fair_getattr,
    .setattr = fair_setattr,
    .open = fair_open,
    .flush = fair_flush,
    .release = fair_release,
    .read = fair_read,
    .write = fair_write,
};

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s MOUNTDIR TOKENS\n", argv[0]);
    return 2;
  }
  tokens = atol(argv[2]);
  char *fuse_argv[] = {argv[0], "-o", "fsname=fair,subtype=fair,default_permissions", NULL};
  struct fuse_args args = FUSE_ARGS_INIT(3, fuse_argv);
  struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
  if (!se) return 1;
  if (fuse_set_signal_handlers(se) != 0) return 1;
  if (fuse_session_mount(se, argv[1]) != 0) return 1;

  struct fuse_buf buf;
  memset(&buf, 0, sizeof buf);
  int rc = 0;
  /* INIT, blocking, so the mount answers before "ready". */
  int res = fuse_session_receive_buf(se, &buf);
  if (res <= 0) {
    rc = 1;
    goto out;
  }
  fuse_session_process_buf(se, &buf);

  int fd = fuse_session_fd(se);
  int flags = fcntl(fd, F_GETFL);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data = {.fd = fd}};
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || ep < 0 ||
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
    perror("fair-fuse-server: set-up");
    rc = 1;
    goto out;
  }
  printf("ready\n");
  fflush(stdout);

  while (!fuse_session_exited(se)) {
    struct epoll_event got;
    int n = epoll_wait(ep, &got, 1, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("fair-fuse-server: epoll_wait");
      rc = 1;
      break;
    }
    for (;;) {
      res = fuse_session_receive_buf(se, &buf);
      if (res == -EAGAIN || res == -EINTR) break;
      if (res <= 0 || fuse_session_exited(se)) {
        if (res < 0) rc = 1;
        goto out; /* 0: unmounted */
      }
      fuse_session_process_buf(se, &buf);
    }
  }
out:
  free(buf.mem);
  fuse_remove_signal_handlers(se);
  fuse_session_unmount(se);
  fuse_session_destroy(se);
  return rc;
}
