"""A small build of separate worker processes, each a blocking-read client of the jobserver.

Usage: worker_pool.py PATH WORKERS JOBS JOB_MS STAMPS

Forks WORKERS processes; worker w runs the jobs i with i % WORKERS == w. Each
job takes a token with a blocking os.read on the worker's own open file of
PATH (Python retries EINTR itself, PEP 475), appends `start|end py-jobI NS` to
STAMPS, sleeps JOB_MS and writes the byte back. Prints `done JOBS` when every
worker succeeded; a worker that fails prints its error and the pool exits 1.
"""
import os, sys, time, traceback

path, workers, jobs, job_ms, stamps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]


def stamp(kind, job):
    # One write(2) per line: the other workers append to the same file.
    with open(stamps, "a") as f:
        f.write(f"{kind} py-job{job} {time.time_ns()}\n")


def work(worker):
    fd = os.open(path, os.O_RDWR)
    for job in range(worker, jobs, workers):
        token = os.read(fd, 1)
        if token != b"+":
            raise RuntimeError(f"read gave {token!r}")
        stamp("start", job)
        time.sleep(job_ms / 1000)
        stamp("end", job)
        if os.write(fd, token) != 1:
            raise RuntimeError("short write")


children = []
for worker in range(workers):
    pid = os.fork()
    if pid == 0:
        try:
            work(worker)
            os._exit(0)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
    children.append(pid)
failed = [pid for pid in children if os.waitpid(pid, 0)[1] != 0]
if failed:
    print("failed workers:", failed, flush=True)
    sys.exit(1)
print("done", jobs, flush=True)
