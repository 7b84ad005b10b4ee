/*
 * The fair C baseline of `pnpm bench cuse`: the best single-threaded libfuse3
 * CUSE low-level jobserver we know how to write with the SAME strategy as
 * steve-daemon's CUSE front (packages/steve-daemon/native/session.cc),
 * minus JavaScript:
 *
 * - /dev/cuse is opened by us (O_RDWR | O_CLOEXEC), the session made by
 *   cuse_lowlevel_new and handed the fd as /dev/fd/N through
 *   fuse_session_mount (cuse_lowlevel_setup would install signal handlers
 *   and daemonize, as the daemon notes);
 * - the CUSE_INIT request is answered with a blocking read, then the fd is
 *   made O_NONBLOCK and put under epoll (level-triggered, as libuv's
 *   uv_poll); when it is readable, requests are received and dispatched
 *   until the fd says EAGAIN;
 * - one `struct fuse_buf`, allocated by libfuse on the first receive and
 *   reused for every request (fuse_session_receive_buf /
 *   fuse_session_process_buf); no splice;
 * - the same open reply on the device: direct_io | nonseekable | stream
 *   (FOPEN_STREAM has no bit in libfuse 3.14's fuse_file_info, so the reply
 *   is built by hand, as the daemon does).
 *
 * Semantics, those of `steve-daemon -jN` for one client: a read of any size
 * takes one token and returns one byte '+'; with no token free it gets
 * EAGAIN when the file is O_NONBLOCK and is kept (answered later, in FIFO
 * order) otherwise; a write puts its bytes back as tokens and answers the
 * kept reads. An interrupted kept read is answered EINTR; poll is readable
 * while a token is free and wakes pollers on a write. No per-client
 * accounting (the daemon's reclaim of a dead holder's tokens is its own
 * cost, part of what the benchmark measures).
 *
 *   fair-cuse-server DEVNAME [TOKENS]     (TOKENS defaults to 1)
 *
 * Prints "ready" once the kernel accepted the device (/dev/DEVNAME appears
 * through devtmpfs); SIGTERM/SIGINT/SIGHUP end it and remove the device.
 */
#define FUSE_USE_VERSION 34
#include <cuse_lowlevel.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static long tokens;

/* Reads kept while no token is free, oldest first. */
struct kept {
  fuse_req_t req;
  int interrupted;
  struct kept *next;
};
static struct kept *kept_head, *kept_tail;
static int interrupts_pending;

/* Pollers waiting for a token (each handle is notified once, then destroyed). */
#define MAX_POLLERS 64
static struct fuse_pollhandle *pollers[MAX_POLLERS];
static int poller_count;

/* The kernel's struct fuse_open_out. */
struct open_out {
  uint64_t fh;
  uint32_t open_flags;
  uint32_t padding;
};
#define FOPEN_DIRECT_IO_BIT (1u << 0)
#define FOPEN_NONSEEKABLE_BIT (1u << 2)
#define FOPEN_STREAM_BIT (1u << 4)

static void fair_open(fuse_req_t req, struct fuse_file_info *fi) {
  (void)fi;
  struct open_out out = {0, FOPEN_DIRECT_IO_BIT | FOPEN_NONSEEKABLE_BIT | FOPEN_STREAM_BIT, 0};
  fuse_reply_buf(req, (const char *)&out, sizeof out);
}

/*
 * libfuse calls this with the request's lock held, possibly from inside
 * fuse_req_interrupt_func itself: replying here would free that lock under
 * libfuse's feet, so only mark it; answer_interrupts replies after dispatch.
 */
static void on_interrupt(fuse_req_t req, void *data) {
  (void)req;
  ((struct kept *)data)->interrupted = 1;
  interrupts_pending = 1;
}

static void fair_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)off;
  if (size == 0) {
    fuse_reply_buf(req, NULL, 0);
    return;
  }
  if (tokens > 0) {
    tokens--;
    fuse_reply_buf(req, "+", 1);
    return;
  }
  if (fi->flags & O_NONBLOCK) {
    fuse_reply_err(req, EAGAIN);
    return;
  }
  struct kept *k = calloc(1, sizeof *k);
  if (k == NULL) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  k->req = req;
  if (kept_tail) kept_tail->next = k;
  else kept_head = k;
  kept_tail = k;
  fuse_req_interrupt_func(req, on_interrupt, k);
}

static void wake_pollers(void) {
  for (int i = 0; i < poller_count; i++) {
    fuse_lowlevel_notify_poll(pollers[i]);
    fuse_pollhandle_destroy(pollers[i]);
  }
  poller_count = 0;
}

/* The list is a handful of entries at most: walk it after an unlink. */
static void fix_tail(void) {
  kept_tail = NULL;
  for (struct kept *k = kept_head; k != NULL; k = k->next) kept_tail = k;
}

static void fair_write(fuse_req_t req, const char *buf, size_t size, off_t off,
                       struct fuse_file_info *fi) {
  (void)buf;
  (void)off;
  (void)fi;
  tokens += (long)size;
  fuse_reply_write(req, size);
  /* Kept reads first, in order; an interrupted one is answered EINTR later. */
  struct kept **link = &kept_head;
  while (tokens > 0 && *link != NULL) {
    struct kept *k = *link;
    if (k->interrupted) {
      link = &k->next;
      continue;
    }
    *link = k->next;
    /* -ENOENT: the reader was interrupted meanwhile; the token stays. */
    if (fuse_reply_buf(k->req, "+", 1) == 0) tokens--;
    free(k);
  }
  fix_tail();
  if (tokens > 0 && poller_count > 0) wake_pollers();
}

static void answer_interrupts(void) {
  interrupts_pending = 0;
  struct kept **link = &kept_head;
  while (*link != NULL) {
    struct kept *k = *link;
    if (!k->interrupted) {
      link = &k->next;
      continue;
    }
    *link = k->next;
    fuse_reply_err(k->req, EINTR);
    free(k);
  }
  fix_tail();
}

static void fair_poll(fuse_req_t req, struct fuse_file_info *fi, struct fuse_pollhandle *ph) {
  (void)fi;
  unsigned revents = POLLOUT | POLLWRNORM;
  if (tokens > 0) revents |= POLLIN | POLLRDNORM;
  if (ph != NULL) {
    if (tokens > 0 || poller_count == MAX_POLLERS) fuse_pollhandle_destroy(ph);
    else pollers[poller_count++] = ph;
  }
  fuse_reply_poll(req, revents);
}

static void fair_flush(fuse_req_t req, struct fuse_file_info *fi) {
  (void)fi;
  fuse_reply_err(req, 0);
}

static void fair_release(fuse_req_t req, struct fuse_file_info *fi) {
  (void)fi;
  fuse_reply_err(req, 0);
}

static void fair_ioctl(fuse_req_t req, int cmd, void *arg, struct fuse_file_info *fi,
                       unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz) {
  (void)cmd;
  (void)arg;
  (void)fi;
  (void)flags;
  (void)in_buf;
  (void)in_bufsz;
  (void)out_bufsz;
  fuse_reply_err(req, ENOTTY);
}

static const struct cuse_lowlevel_ops ops = {
    .open = fair_open,
    .read = fair_read,
    .write = fair_write,
    .flush = fair_flush,
    .release = fair_release,
    .ioctl = fair_ioctl,
    .poll = fair_poll,
};

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3 || argv[1][0] == '\0' || strchr(argv[1], '/') != NULL) {
    fprintf(stderr, "usage: %s DEVNAME [TOKENS]\n", argv[0]);
    return 2;
  }
  tokens = argc == 3 ? atol(argv[2]) : 1;

  int fd = open("/dev/cuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    perror("fair-cuse-server: /dev/cuse");
    return 1;
  }
  char *fuse_argv[] = {argv[0], NULL};
  struct fuse_args args = FUSE_ARGS_INIT(1, fuse_argv);
  size_t info_len = strlen(argv[1]) + sizeof "DEVNAME=";
  char *dev_info = malloc(info_len);
  if (dev_info == NULL) return 1;
  snprintf(dev_info, info_len, "DEVNAME=%s", argv[1]);
  const char *dev_info_argv[] = {dev_info};
  struct cuse_info ci;
  memset(&ci, 0, sizeof ci);
  ci.dev_info_argc = 1;
  ci.dev_info_argv = dev_info_argv;
  struct fuse_session *se = cuse_lowlevel_new(&args, &ci, &ops, NULL);
  if (se == NULL) return 1;
  char adopt[32];
  snprintf(adopt, sizeof adopt, "/dev/fd/%d", fd);
  if (fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, adopt) != 0) return 1;

  struct fuse_buf buf;
  memset(&buf, 0, sizeof buf);
  int rc = 0;
  /* CUSE_INIT, blocking: the kernel registers the device as we answer it. */
  int res = fuse_session_receive_buf(se, &buf);
  if (res <= 0) {
    rc = 1;
    goto out;
  }
  fuse_session_process_buf(se, &buf);
  struct pollfd pfd = {fd, 0, 0};
  if (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR) != 0) {
    fprintf(stderr, "fair-cuse-server: the kernel refused /dev/%s (name in use?)\n", argv[1]);
    rc = 1;
    goto out;
  }

  int flags = fcntl(fd, F_GETFL);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data = {.fd = fd}};
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || ep < 0 ||
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
    perror("fair-cuse-server: set-up");
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
      perror("fair-cuse-server: epoll_wait");
      rc = 1;
      break;
    }
    for (;;) {
      res = fuse_session_receive_buf(se, &buf);
      if (res == -EAGAIN || res == -EINTR) break;
      if (res <= 0 || fuse_session_exited(se)) {
        if (res < 0) rc = 1;
        goto out; /* 0: the connection is gone */
      }
      fuse_session_process_buf(se, &buf);
      if (interrupts_pending) answer_interrupts();
    }
  }
out:
  free(buf.mem);
  fuse_remove_signal_handlers(se);
  fuse_session_unmount(se);
  fuse_session_destroy(se);
  free(dev_info);
  return rc;
}
