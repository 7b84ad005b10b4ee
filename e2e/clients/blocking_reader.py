"""One blocking read; print the CLOCK_MONOTONIC time (ns) it returned, then give the token back."""
import os, sys, time

path = sys.argv[1]
fd = os.open(path, os.O_RDWR)
print("waiting", flush=True)
byte = os.read(fd, 1)
print("got", byte.decode(), time.monotonic_ns(), flush=True)
os.write(fd, byte)
