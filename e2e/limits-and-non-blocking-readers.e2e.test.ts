// The memory limit with readers that never block (ninja reads O_NONBLOCK until
// EAGAIN): on the real daemon they get every token while the limit is met, and
// near the limit (settling) they still get one per --load-recheck, instead of
// one token and EAGAIN for good because nobody waited and so nobody sampled.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { PYTHON, type RunningDaemon, startDaemon, waitFor } from './helpers/daemon.js';

let daemon: RunningDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

function memAvailableMiB(): number {
  const kib = Number(
    /^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1],
  );
  return Math.floor(kib / 1024);
}

/**
 * One process reads O_NONBLOCK until EAGAIN, holding what it got, and retries
 * every 20 ms until it holds `want` tokens or `deadlineMs` passes; prints the
 * milliseconds at which each token came, then returns them all.
 */
const NONBLOCKING_READER = `
import os, sys, time
path, want, deadline = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
start = time.monotonic(); got = []
while len(got) < want and time.monotonic() - start < deadline:
    try:
        os.read(fd, 1); got.append(round((time.monotonic() - start) * 1000))
    except BlockingIOError:
        time.sleep(0.02)  # like ninja: try again when a job of its own ends
print(" ".join(map(str, got)))
os.write(fd, b"+" * len(got))
`;

function readNonBlocking(path: string, want: number, deadlineS: number): number[] {
  const result = spawnSync(
    PYTHON,
    ['-c', NONBLOCKING_READER, path, String(want), String(deadlineS)],
    {
      encoding: 'utf8',
      timeout: (deadlineS + 10) * 1000,
    },
  );
  expect(result.status, result.stderr).toBe(0);
  return result.stdout.trim() === '' ? [] : result.stdout.trim().split(' ').map(Number);
}

describe('memory limit and O_NONBLOCK readers on the real daemon', () => {
  it('while the limit is met, an O_NONBLOCK reader gets the whole pool', async () => {
    daemon = await startDaemon(['-j', '6', '-m', '1', '-a', '64', '--load-recheck', '200']);
    const times = readNonBlocking(daemon.jobserverPath, 6, 5);
    expect(times).toHaveLength(6);
    await waitFor('every token back', () => daemon?.out() === 0);
  });

  it('near the limit (settling), it still gets a token every recheck interval', async () => {
    // MemAvailable between the minimum and twice the minimum: the settling zone.
    const minimumMiB = Math.floor(memAvailableMiB() * 0.7);
    daemon = await startDaemon([
      '-j',
      '6',
      '-m',
      '1',
      '-a',
      String(minimumMiB),
      '--load-recheck',
      '200',
    ]);
    const times = readNonBlocking(daemon.jobserverPath, 4, 8);
    expect(times, `tokens at ${times.join(', ')} ms`).toHaveLength(4);
    // The first token is the minJobs floor, granted without a sample; from the
    // second on, each waits for a sample taken 200 ms after the previous grant.
    for (let i = 2; i < times.length; i++) {
      expect((times[i] as number) - (times[i - 1] as number)).toBeGreaterThanOrEqual(150);
    }
    await waitFor('every token back', () => daemon?.out() === 0);
  });
});
