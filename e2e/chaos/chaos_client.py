"""One chaos client of a jobserver file: does JOBS jobs of 10-80 ms, each
holding one token, in the way MODE shares the descriptor, and stamps every
acquire and release to STAMPS with one write(2) each:

  + HOLDER TOKEN NS   after the read returned a token (HOLDER: pid now holding it)
  - HOLDER TOKEN NS   before the token byte is written back
  h HOLDER TOKEN NS   the token was handed to HOLDER (a forked child)

Usage: chaos_client.py MODE PATH STAMPS JOBS SEED
MODE: blocking | nonblocking | poll | threads | fork | shared | crossfd
      | job (one job of a build tool that holds the token for it, e.g. a
        ninja edge: stamps HOLDER = $CHAOS_HOLDER, the build's id; reads
        nothing; PATH -)
      | stuck (a seeded fault: takes a token, ignores SIGINT and never
        finishes in time)
Exit 0 when every job ran; nonzero on a jobserver error (printed).
"""
import errno, os, random, select, sys, threading, time

mode, path, stamps, jobs, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rnd = random.Random(seed)
out = os.open(stamps, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
counter = [0]
lock = threading.Lock()

def stamp(kind, holder, token):
    os.write(out, f"{kind} {holder} {token} {time.time_ns()}\n".encode())

def new_token():
    with lock:
        counter[0] += 1
        return f"{os.getpid()}.{threading.get_native_id()}.{counter[0]}"

def acquire_blocking(fd):
    while True:
        try:
            return os.read(fd, 1)
        except InterruptedError:
            continue

def acquire_nonblocking(fd):
    while True:
        try:
            return os.read(fd, 1)
        except BlockingIOError:
            time.sleep(0.005)  # like ninja: try again a little later

def acquire_poll(fd):
    while True:
        select.select([fd], [], [], 1.0)
        try:
            return os.read(fd, 1)
        except BlockingIOError:
            continue

def job(read_fd, write_fd, acquire):
    byte = acquire(read_fd)
    assert byte == b"+", byte
    token = new_token()
    stamp("+", os.getpid(), token)
    time.sleep(rnd.uniform(0.01, 0.08))
    stamp("-", os.getpid(), token)
    assert os.write(write_fd, byte) == 1

def main():
    if mode in ("blocking", "nonblocking", "poll"):
        flags = os.O_RDWR | (0 if mode == "blocking" else os.O_NONBLOCK)
        fd = os.open(path, flags)
        acquire = {"blocking": acquire_blocking, "nonblocking": acquire_nonblocking, "poll": acquire_poll}[mode]
        for _ in range(jobs):
            job(fd, fd, acquire)
    elif mode == "crossfd":  # acquire on one description, release on another
        r = os.open(path, os.O_RDONLY)
        w = os.open(path, os.O_WRONLY)
        for _ in range(jobs):
            job(r, w, acquire_blocking)
    elif mode == "threads":  # three threads share one blocking description
        fd = os.open(path, os.O_RDWR)
        errors = []
        def worker():
            try:
                for _ in range(jobs):
                    job(fd, fd, acquire_blocking)
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        threads = [threading.Thread(target=worker) for _ in range(3)]
        for t in threads: t.start()
        for t in threads: t.join()
        if errors:
            raise errors[0]
    elif mode == "shared":  # parent and child both work on one inherited description
        fd = os.open(path, os.O_RDWR)
        pid = os.fork()
        for _ in range(jobs):
            job(fd, fd, acquire_blocking)
        if pid == 0:
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            sys.exit(f"shared child failed: {status}")
    elif mode == "fork":  # a process acquires, forks and exits: its child runs the job and returns the token
        fd = os.open(path, os.O_RDWR)
        done_r, done_w = os.pipe()  # EOF once every grandchild is gone
        for _ in range(jobs):
            pid = os.fork()
            if pid == 0:
                os.close(done_r)
                byte = acquire_blocking(fd)
                token = new_token()
                stamp("+", os.getpid(), token)
                if os.fork() == 0:
                    stamp("h", os.getpid(), token)
                    time.sleep(rnd.uniform(0.01, 0.08))
                    stamp("-", os.getpid(), token)
                    os.write(fd, byte)
                    os._exit(0)
                os._exit(0)  # the parent leaves; the child has the token
            os.waitpid(pid, 0)
        os.close(done_w)
        os.read(done_r, 1)
    elif mode == "stuck":
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        fd = os.open(path, os.O_RDWR)
        byte = acquire_blocking(fd)
        stamp("+", os.getpid(), new_token())
        time.sleep(30)
        os.write(fd, byte)
    elif mode == "job":
        holder = int(os.environ["CHAOS_HOLDER"])
        token = new_token()
        stamp("+", holder, token)
        time.sleep(rnd.uniform(0.01, 0.08))
        stamp("-", holder, token)
    else:
        sys.exit(f"unknown mode {mode}")

try:
    main()
except KeyboardInterrupt:
    sys.exit(130)
except OSError as e:
    print(f"jobserver error: {errno.errorcode.get(e.errno, e.errno)} {e}", file=sys.stderr)
    sys.exit(1)
