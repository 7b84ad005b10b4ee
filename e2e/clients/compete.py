"""Compete for tokens for a while as one kind of client; print how many grants it got.

kind: blocking (read(2) in blocking mode), poller (select + O_NONBLOCK read, like
GNU make), nonblocking (O_NONBLOCK reads in a loop with a short sleep).
"""
import errno, os, select, sys, time

path, kind, seconds, hold_ms = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
flags = os.O_RDWR | (os.O_NONBLOCK if kind != "blocking" else 0)
fd = os.open(path, flags)
grants = 0
eagain = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    if kind == "poller":
        readable, _, _ = select.select([fd], [], [], 0.5)
        if not readable:
            continue
    try:
        byte = os.read(fd, 1)
    except OSError as error:
        if error.errno != errno.EAGAIN:
            raise
        eagain += 1
        if kind == "nonblocking":
            time.sleep(0.001)
        continue
    grants += 1
    time.sleep(hold_ms / 1000)
    os.write(fd, byte)
print(kind, grants, eagain, flush=True)
