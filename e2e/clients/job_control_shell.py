"""Run a command as one job of a tiny job-control shell, as Ctrl-Z in a terminal sees it.

Usage: job_control_shell.py CMD [ARG...]

Start this in a new session (e.g. Node's `spawn(..., { detached: true })`); it
runs CMD in a new process group of that session and writes `pgid N` to
descriptor 3 (closed for CMD). Because
this process (the group's parent) stays in the session but outside the group,
the group is not orphaned, so SIGTSTP to it stops it as Ctrl-Z would: the
kernel discards SIGTSTP/SIGTTIN/SIGTTOU with the default action for orphaned
process groups (POSIX; `get_signal` in kernel/signal.c), which is what a
command started with setsid alone would be. Exits with CMD's status (128+N
when a signal N killed it).
"""
import os, subprocess, sys

job = subprocess.Popen(sys.argv[1:], process_group=0)  # close_fds: CMD does not get fd 3
os.write(3, f"pgid {job.pid}\n".encode())
os.close(3)
code = job.wait()
sys.exit(128 - code if code < 0 else code)
