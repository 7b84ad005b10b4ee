"""Take N tokens with blocking reads, say so, then hold them until killed."""
import os, sys, time

path, count = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_RDWR)
for _ in range(count):
    assert os.read(fd, 1) == b"+"
print("holding", count, flush=True)
time.sleep(3600)
