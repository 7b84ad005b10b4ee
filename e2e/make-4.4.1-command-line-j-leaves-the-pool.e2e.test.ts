// Where a `-jN` puts GNU make 4.4.1 relative to an inherited jobserver:
// `-jN` on make's command line makes it leave the pool (it warns "-jN forced
// in submake: resetting jobserver mode" and runs N at once whatever the pool
// says); the same `-jN` inside MAKEFLAGS next to --jobserver-auth does not:
// make stays in the pool. Both for the top make and for sub-makes.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { maxConcurrency, type RunningDaemon, startDaemon, waitFor } from './helpers/daemon.js';
import {
  make441,
  runMake441,
  stampLines,
  writeFlatMakefile,
  writeRecursiveMakefile,
} from './helpers/make-4.4.1.js';
import { cleanEnv } from './helpers/processes.js';

const POOL = 2;
const FORCED_WARNING = /-j4 forced in submake: resetting jobserver mode/;

let daemon: RunningDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

async function start(): Promise<RunningDaemon> {
  make441();
  daemon = await startDaemon(['-j', String(POOL)]);
  return daemon;
}

const grants = (d: RunningDaemon): number => d.log.filter((l) => l.startsWith('grant ->')).length;

describe(`make 4.4.1 and -j4 on a pool of ${POOL} (FUSE file)`, () => {
  it('-j4 on the command line: make leaves the pool and runs 4 at once, reading no token', async () => {
    const d = await start();
    const stamps = join(d.dir, 'stamps');
    const dir = join(d.dir, 'flat');
    writeFlatMakefile(dir, 8, 0.5, stamps);
    const result = await runMake441(['-j4'], {
      cwd: dir,
      env: cleanEnv({ MAKEFLAGS: `--jobserver-auth=fifo:${d.jobserverPath}` }),
    });
    expect(result, result.output).toMatchObject({ code: 0 });
    expect(result.output).toMatch(FORCED_WARNING);
    expect(maxConcurrency(stampLines(stamps))).toBe(4);
    expect(grants(d)).toBe(0);
  });

  it('-j4 inside MAKEFLAGS with the auth: make stays in the pool (at most pool + 1 at once)', async () => {
    const d = await start();
    const stamps = join(d.dir, 'stamps');
    const dir = join(d.dir, 'flat');
    writeFlatMakefile(dir, 8, 0.5, stamps);
    const result = await runMake441([], {
      cwd: dir,
      env: cleanEnv({ MAKEFLAGS: `-j4 --jobserver-auth=fifo:${d.jobserverPath}` }),
    });
    expect(result, result.output).toMatchObject({ code: 0 });
    expect(result.output).not.toMatch(FORCED_WARNING);
    expect(maxConcurrency(stampLines(stamps))).toBe(POOL + 1);
    expect(d.maxOut()).toBe(POOL);
    await waitFor('all tokens back', () => d.out() === 0, 5_000);
  });

  it('sub-makes run as `$(MAKE) -j4`: each leaves the pool, more than pool + 1 jobs run at once', async () => {
    const d = await start();
    const stamps = join(d.dir, 'stamps');
    const dir = join(d.dir, 'recursive');
    writeRecursiveMakefile(dir, {
      subMakes: 2,
      jobsEach: 4,
      seconds: 0.5,
      stamps,
      subMakeFlags: '-j4',
    });
    const result = await runMake441([], {
      cwd: dir,
      env: cleanEnv({ MAKEFLAGS: `--jobserver-auth=fifo:${d.jobserverPath}` }),
    });
    expect(result, result.output).toMatchObject({ code: 0 });
    expect(result.output).toMatch(FORCED_WARNING);
    // Two sub-makes (the top make's implicit slot and one token) running 4 each.
    expect(maxConcurrency(stampLines(stamps))).toBe(8);
    await waitFor('all tokens back', () => d.out() === 0, 5_000);
  });

  it('sub-makes run with MAKEFLAGS="$MAKEFLAGS -j4": they stay in the pool (at most pool + 1 jobs at once)', async () => {
    const d = await start();
    const stamps = join(d.dir, 'stamps');
    const dir = join(d.dir, 'recursive');
    writeRecursiveMakefile(dir, {
      subMakes: 2,
      jobsEach: 4,
      seconds: 0.5,
      stamps,
      subMakeEnv: 'MAKEFLAGS="$$MAKEFLAGS -j4"',
    });
    const result = await runMake441([], {
      cwd: dir,
      env: cleanEnv({ MAKEFLAGS: `--jobserver-auth=fifo:${d.jobserverPath}` }),
    });
    expect(result, result.output).toMatchObject({ code: 0 });
    expect(result.output).not.toMatch(FORCED_WARNING);
    expect(maxConcurrency(stampLines(stamps))).toBe(POOL + 1);
    expect(d.maxOut()).toBe(POOL);
    await waitFor('all tokens back', () => d.out() === 0, 5_000);
  });
});
