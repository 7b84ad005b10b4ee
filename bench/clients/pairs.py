"""Acquire+release pairs per second on one jobserver path: read 1 byte, write it back.

    pairs.py PATH SECONDS  ->  prints "pairs N seconds S"
"""
import os, sys, time

path, seconds = sys.argv[1], float(sys.argv[2])
fd = os.open(path, os.O_RDWR)
read, write, clock = os.read, os.write, time.perf_counter
pairs = 0
start = clock()
end = start + seconds
while True:
    for _ in range(200):
        write(fd, read(fd, 1))
    pairs += 200
    now = clock()
    if now >= end:
        break
print("pairs", pairs, "seconds", now - start, flush=True)
