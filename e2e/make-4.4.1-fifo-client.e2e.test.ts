// Real GNU make 4.4.1 (built from Debian trixie's source) as a fifo-style
// client, `MAKEFLAGS=--jobserver-auth=fifo:PATH`, on the daemon's FUSE file
// and on its fifo front: flat and recursive builds run at most pool + 1 jobs
// at once (the stamps say so, independently of the daemon) and every token
// comes back.
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { maxConcurrency, type RunningDaemon, startDaemon, waitFor } from './helpers/daemon.js';
import {
  make441,
  runMake441,
  stampLines,
  writeFlatMakefile,
  writeRecursiveMakefile,
} from './helpers/make-4.4.1.js';
import { cleanEnv } from './helpers/processes.js';

const POOL = 3;

let daemon: RunningDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

const FRONTS = [
  { front: 'FUSE file', fifo: false },
  { front: 'fifo front', fifo: true },
] as const;

describe.each(FRONTS)('make 4.4.1 with --jobserver-auth=fifo: on the $front', ({ fifo }) => {
  async function start(): Promise<{ daemon: RunningDaemon; path: string }> {
    make441(); // build (or find) make first: not inside a build's timing
    const started = await startDaemon(['-j', String(POOL)], fifo ? { fifo: { prefetch: 1 } } : {});
    daemon = started;
    return { daemon: started, path: fifo ? (started.fifoPath as string) : started.jobserverPath };
  }

  it(`a flat build of 12 jobs on a pool of ${POOL}: at most ${POOL} + 1 at once, all tokens back`, async () => {
    const { daemon: d, path } = await start();
    const stamps = join(d.dir, 'stamps');
    const dir = join(d.dir, 'flat');
    writeFlatMakefile(dir, 12, 0.4, stamps);
    const result = await runMake441([], {
      cwd: dir,
      env: cleanEnv({ MAKEFLAGS: `--jobserver-auth=fifo:${path}` }),
    });
    expect(result, result.output).toMatchObject({ code: 0 });
    const lines = stampLines(stamps);
    expect(lines.filter((l) => l.startsWith('end '))).toHaveLength(12);
    const concurrent = maxConcurrency(lines);
    expect(concurrent).toBeLessThanOrEqual(POOL + 1);
    // It used the pool (more than its implicit slot), so the bound means something.
    expect(concurrent).toBeGreaterThanOrEqual(POOL);
    if (!fifo) expect(d.maxOut()).toBe(POOL);
    await waitFor('all tokens back', () => d.out() === 0, 5_000);
    expect(d.log.some((l) => l.includes('ENOSPC'))).toBe(false);
    expect(result.output).not.toMatch(/jobserver|INTERNAL/);
  });

  it(`a recursive build (3 sub-makes of 4 jobs) on a pool of ${POOL}: at most ${POOL} + 1 jobs at once, all tokens back`, async () => {
    const { daemon: d, path } = await start();
    const stamps = join(d.dir, 'stamps');
    const dir = join(d.dir, 'recursive');
    writeRecursiveMakefile(dir, { subMakes: 3, jobsEach: 4, seconds: 0.4, stamps });
    const result = await runMake441([], {
      cwd: dir,
      env: cleanEnv({ MAKEFLAGS: `--jobserver-auth=fifo:${path}` }),
    });
    expect(result, result.output).toMatchObject({ code: 0 });
    const lines = stampLines(stamps);
    expect(lines.filter((l) => l.startsWith('end '))).toHaveLength(12);
    const concurrent = maxConcurrency(lines);
    expect(concurrent).toBeLessThanOrEqual(POOL + 1);
    expect(concurrent).toBeGreaterThanOrEqual(POOL);
    if (!fifo) expect(d.maxOut()).toBe(POOL);
    await waitFor('all tokens back', () => d.out() === 0, 5_000);
    expect(d.log.some((l) => l.includes('ENOSPC'))).toBe(false);
    expect(result.output).not.toMatch(/jobserver|INTERNAL/);
  });
});
