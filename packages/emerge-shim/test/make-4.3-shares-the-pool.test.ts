// Three `steve-job -- make -f M` runs with Debian's GNU make 4.3 on a pool
// of 4: each make holds one token (its implicit slot) through steve-job and
// takes the rest from the pool (pipe style: make 4.3 stops on a fifo auth),
// so the jobs of all three never exceed 4 at once. With `-j4` on make's own
// command line make ignores the pool and runs its own 4 jobs.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Daemon,
  STEVE_JOB_BIN,
  cleanEnv,
  maxConcurrency,
  removeTempDirs,
  run,
  startDaemon,
  stopAll,
  tempDir,
  waitFor,
  writeMakefile,
} from './helpers.js';

const daemons: Daemon[] = [];
afterEach(async () => {
  await stopAll();
  for (const daemon of daemons.splice(0)) await daemon.stop();
  removeTempDirs();
});

async function pool(jobs: number): Promise<Daemon> {
  const daemon = await startDaemon(['-j', String(jobs)]);
  daemons.push(daemon);
  return daemon;
}

describe('steve-job -- make (GNU make 4.3) on the FUSE pool', () => {
  it('three makes of four 1 s jobs each never run more than 4 jobs together; every token comes back', async () => {
    const steve = await pool(4);
    const dir = tempDir();
    const stamps = join(dir, 'stamps');
    const runs = ['a', 'b', 'c'].map((name) =>
      run(
        process.execPath,
        [STEVE_JOB_BIN, '--', 'make', '-f', writeMakefile(dir, name, 4, 1, stamps)],
        {
          cwd: dir,
          // The pool named by $STEVE_JOBSERVER: each steve-job takes a real token. (From an
          // inherited MAKEFLAGS it would run on the slot its parent holds for it; with no
          // parent holding any here, that is inherited-pool-implicit-slot's business.)
          env: cleanEnv({ STEVE_JOBSERVER: steve.jobserverPath }),
        },
      ),
    );
    const results = await Promise.all(runs.map((r) => r.exited));
    expect(results.map((r) => r.code)).toEqual([0, 0, 0]);
    const text = readFileSync(stamps, 'utf8');
    expect(text.match(/^end /gm)).toHaveLength(12);
    const most = maxConcurrency(text);
    expect(most).toBeLessThanOrEqual(4);
    expect(most).toBeGreaterThanOrEqual(3); // the three makes did run side by side
    for (const r of runs) expect(r.stderr).not.toMatch(/jobserver|warning/i);
    await waitFor('every token back', () => steve.out() === 0);
    expect(steve.status()).toMatch(/ out 0 /);
  });

  it('make -j4 on its own command line ignores the pool (and steve-job warns): up to 12 jobs at once', async () => {
    const steve = await pool(4);
    const dir = tempDir();
    const stamps = join(dir, 'stamps');
    const runs = ['a', 'b', 'c'].map((name) =>
      run(
        process.execPath,
        [
          STEVE_JOB_BIN,
          '--device',
          steve.jobserverPath,
          '--',
          'make',
          '-j4',
          '-f',
          writeMakefile(dir, name, 4, 1, stamps),
        ],
        { cwd: dir, env: cleanEnv() },
      ),
    );
    const results = await Promise.all(runs.map((r) => r.exited));
    expect(results.map((r) => r.code)).toEqual([0, 0, 0]);
    for (const r of runs) {
      expect(r.stderr).toContain(
        "steve-job: warning: make -j4 on make's command line ignores the pool",
      );
      expect(r.stderr).toContain('-j4 forced in submake: resetting jobserver mode');
    }
    // Each make served its own 4 jobs; only the three steve-job tokens came from the pool.
    expect(maxConcurrency(readFileSync(stamps, 'utf8'))).toBeGreaterThan(4);
    await waitFor('every token back', () => steve.out() === 0);
  });

  it('--tokens 3 holds three tokens while make runs; make takes only the fourth', async () => {
    const steve = await pool(4);
    const dir = tempDir();
    const stamps = join(dir, 'stamps');
    const makefile = writeMakefile(dir, 'm', 4, 1, stamps);
    const job = run(
      process.execPath,
      [
        STEVE_JOB_BIN,
        '--tokens',
        '3',
        '--jobserver',
        `fifo:${steve.jobserverPath}`,
        '--',
        'make',
        '-f',
        makefile,
      ],
      { cwd: dir, env: cleanEnv() },
    );
    await waitFor('steve-job to hold 3 tokens', () =>
      /pid \d+ +tokens 3 .*steve-job/.test(steve.status()),
    );
    const { code } = await job.exited;
    expect(code).toBe(0);
    // make: its implicit slot (steve-job's tokens) plus the one token left = 2 jobs at a time.
    expect(maxConcurrency(readFileSync(stamps, 'utf8'))).toBe(2);
    await waitFor('every token back', () => steve.out() === 0);
  });
});
