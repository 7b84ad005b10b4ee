/*
 * The naive C reference of `pnpm bench tokens`: a bare single-threaded
 * libfuse3 low-level server driven by fuse_session_loop (blocking reads of
 * /dev/fuse), with one file, `jobserver`, whose reads take a token from a
 * counter (EAGAIN when empty) and whose writes put bytes back. No
 * accounting, no queue, no poll.
 *
 * It is NOT a floor and not the baseline: its strategy differs from the
 * daemon's (which polls a non-blocking fd from its event loop), its FOPEN
 * flags lack FOPEN_STREAM, its attributes have a 0 s timeout, and it has
 * measured anywhere from a third to three times the daemon's rate. The
 * baseline is fair-fuse-server.c; this one is kept for reference.
 *
 *   bare-fuse-server MOUNTDIR TOKENS
 */
#define FUSE_USE_VERSION 34
#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static long tokens;
static const fuse_ino_t JOBSERVER_INO = 2;

static void fill_attr(fuse_ino_t ino, struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_ino = ino;
  if (ino == FUSE_ROOT_ID) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
  } else {
    st->st_mode = S_IFREG | 0666;
    st->st_nlink = 1;
  }
}

static void bare_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  if (parent != FUSE_ROOT_ID || strcmp(name, "jobserver") != 0) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct fuse_entry_param e;
  memset(&e, 0, sizeof e);
  e.ino = JOBSERVER_INO;
  fill_attr(e.ino, &e.attr);
  fuse_reply_entry(req, &e);
}

static void bare_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)fi;
  struct stat st;
  if (ino != FUSE_ROOT_ID && ino != JOBSERVER_INO) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  fill_attr(ino, &st);
  fuse_reply_attr(req, &st, 0);
}

static void bare_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  if (ino != JOBSERVER_INO) {
    fuse_reply_err(req, EISDIR);
    return;
  }
  fi->direct_io = 1;
  fi->nonseekable = 1;
  fuse_reply_open(req, fi);
}

static void bare_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)ino; (void)off; (void)fi;
  if (size == 0) { fuse_reply_buf(req, NULL, 0); return; }
  if (tokens <= 0) { fuse_reply_err(req, EAGAIN); return; }
  tokens--;
  fuse_reply_buf(req, "+", 1);
}

static void bare_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)ino; (void)buf; (void)off; (void)fi;
  tokens += (long)size;
  fuse_reply_write(req, size);
}

static const struct fuse_lowlevel_ops ops = {
  .lookup = bare_lookup,
  .getattr = bare_getattr,
  .open = bare_open,
  .read = bare_read,
  .write = bare_write,
};

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s MOUNTDIR TOKENS\n", argv[0]);
    return 2;
  }
  tokens = atol(argv[2]);
  char *fuse_argv[] = { argv[0], "-o", "fsname=bare,subtype=bare", NULL };
  struct fuse_args args = FUSE_ARGS_INIT(3, fuse_argv);
  struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
  if (!se) return 1;
  if (fuse_session_mount(se, argv[1]) != 0) return 1;
  printf("ready\n");
  fflush(stdout);
  int rc = fuse_session_loop(se); /* single-threaded */
  fuse_session_unmount(se);
  fuse_session_destroy(se);
  return rc < 0 ? 1 : 0;
}
