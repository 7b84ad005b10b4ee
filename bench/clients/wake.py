"""Wake-up latency: release -> a blocked reader returns, or -> a poller's select returns.

One pool holding ONE token, two processes (this one forks). The releaser
(parent) holds the token; the waiter (child) goes to sleep in read(2) or in
select(2) + O_NONBLOCK read; the releaser waits 2 ms, stamps CLOCK_MONOTONIC
and writes the token back; the waiter stamps when it wakes. Control pipes
keep the rounds in lock step, so the releaser never races the waiter for
the token it just wrote.

    wake.py PATH block|poll ROUNDS  ->  prints one latency (ns) per round
"""
import os, select, sys, time

path, mode, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
to_parent_r, to_parent_w = os.pipe()
to_child_r, to_child_w = os.pipe()
holder_fd = os.open(path, os.O_RDWR)
token = os.read(holder_fd, 1)          # the releaser holds the only token

pid = os.fork()
if pid == 0:  # the waiter
    flags = os.O_RDWR | (os.O_NONBLOCK if mode == "poll" else 0)
    fd = os.open(path, flags)
    for _ in range(rounds):
        os.write(to_parent_w, b"r")    # about to sleep
        if mode == "poll":
            while True:
                select.select([fd], [], [])
                woke = time.monotonic_ns()
                try:
                    byte = os.read(fd, 1)
                    break
                except BlockingIOError:
                    continue           # spurious wake-up: poll again
        else:
            byte = os.read(fd, 1)
            woke = time.monotonic_ns()
        os.write(to_parent_w, b"%d\n" % woke)
        os.write(fd, byte)             # give it back
        os.write(to_parent_w, b"d")
        os.read(to_child_r, 1)         # wait until the releaser holds it again
    os._exit(0)

latencies = []
pending = b""
def read_until(marker):
    global pending
    while marker not in pending:
        pending += os.read(to_parent_r, 4096)
    head, _, rest = pending.partition(marker)
    pending = rest
    return head

for _ in range(rounds):
    read_until(b"r")
    time.sleep(0.002)                  # the waiter is asleep by now
    released = time.monotonic_ns()
    os.write(holder_fd, token)
    woke = int(read_until(b"\n"))
    read_until(b"d")
    token = os.read(holder_fd, 1)      # only the releaser reads now
    os.write(to_child_w, b"n")
    latencies.append(woke - released)
os.waitpid(pid, 0)
os.write(holder_fd, token)             # leave the pool as we found it
print(" ".join(map(str, latencies)), flush=True)
