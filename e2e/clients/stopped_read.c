// One blocking read(2) of one byte from a jobserver (the FUSE file or a
// fifo), to see what a C client gets back when the reader is stopped and
// continued, or gets a signal whose handler was installed with SA_RESTART.
//
// Usage: stopped_read PATH default|restart
//   default: no handlers (SIGSTOP/SIGTSTP stop the process as Ctrl-Z does)
//   restart: SIGTSTP and SIGUSR1 handlers with SA_RESTART; the handler
//            prints "handled" (write(2) is async-signal-safe)
// Prints "waiting", then "read 1 +" or "read -1 ERRNONAME". It never writes
// the byte back: the daemon reclaims it at exit, a fifo keeps nothing it
// did not get.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void on_signal(int sig) {
  (void)sig;
  static const char line[] = "handled\n";
  (void)!write(STDOUT_FILENO, line, sizeof line - 1);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s PATH default|restart\n", argv[0]);
    return 2;
  }
  if (strcmp(argv[2], "restart") == 0) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    action.sa_flags = SA_RESTART;
    sigaction(SIGTSTP, &action, NULL);
    sigaction(SIGUSR1, &action, NULL);
  }
  int fd = open(argv[1], O_RDWR);
  if (fd < 0) {
    perror(argv[1]);
    return 2;
  }
  setvbuf(stdout, NULL, _IONBF, 0);
  printf("waiting\n");
  char byte;
  ssize_t n = read(fd, &byte, 1);
  if (n < 0)
    printf("read -1 %s\n", strerrorname_np(errno));
  else
    printf("read %zd %c\n", n, n == 1 ? byte : '?');
  return 0;
}
