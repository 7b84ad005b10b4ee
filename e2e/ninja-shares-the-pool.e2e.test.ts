// ninja 1.13.2 (which accepts only a real fifo) on the daemon's fifo front,
// at the same time as GNU make 4.3 (pipe-style, `make 3<>MOUNT/jobserver`)
// and cargo (fifo: auth on the FUSE file), on one pool of 4 tokens. The fifo
// is a sub-pool of the same pool: an observer (every job writes start/end
// stamps) sees at most 4 tokens plus the three implicit slots in use, ninja
// gets tokens beyond its implicit slot, and every token comes back.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { maxConcurrency, type RunningDaemon, startDaemon, waitFor } from './helpers/daemon.js';
import { NINJA, writeNinjaBuild } from './helpers/ninja.js';
import { cleanEnv, run } from './helpers/processes.js';
import { writeCargoWorkspace, writeMakefile } from './helpers/workloads.js';

let daemon: RunningDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

describe('ninja 1.13.2 shares the pool through the fifo front', () => {
  it('ninja (fifo front), make 4.3 and cargo (FUSE) under -j4: at most 4 + 3 implicit slots, ninja not starved, all back', async () => {
    daemon = await startDaemon(['-j', '4'], { fifo: { prefetch: 1 } });
    const fifo = daemon.fifoPath as string;
    const stamps = join(daemon.dir, 'stamps');
    const makefile = writeMakefile(daemon.dir, 12, 1, stamps);
    const workspace = writeCargoWorkspace(daemon.dir, 6, 1);
    const ninjaDir = join(daemon.dir, 'ninja');
    mkdirSync(ninjaDir);
    writeNinjaBuild(ninjaDir, 16, 1, stamps);

    const started = Date.now();
    const ninjaRun = run(NINJA, ['-C', ninjaDir], {
      cwd: ninjaDir,
      env: cleanEnv({ MAKEFLAGS: `--jobserver-auth=fifo:${fifo}` }),
    });
    const makeRun = run('bash', ['-c', `exec make -f ${makefile} 3<>${daemon.jobserverPath}`], {
      cwd: daemon.dir,
      env: cleanEnv({ MAKEFLAGS: '--jobserver-auth=3,3' }),
    });
    const cargoRun = run('cargo', ['build', '--offline', '--quiet'], {
      cwd: workspace,
      env: cleanEnv({
        MAKEFLAGS: `--jobserver-auth=fifo:${daemon.jobserverPath}`,
        STAMPS: stamps,
        CARGO_TARGET_DIR: join(daemon.dir, 'target'),
      }),
    });
    const [ninjaResult, makeResult, cargoResult] = await Promise.all([ninjaRun, makeRun, cargoRun]);
    const elapsedMs = Date.now() - started;
    expect(ninjaResult, ninjaResult.output).toMatchObject({ code: 0 });
    expect(makeResult, makeResult.output).toMatchObject({ code: 0 });
    expect(cargoResult, cargoResult.output).toMatchObject({ code: 0 });
    // ninja took the fifo as its jobserver (it says why when it does not).
    expect(ninjaResult.output).toContain('Jobserver mode detected');
    expect(ninjaResult.output).not.toContain('Could not initialize jobserver');

    const lines = readFileSync(stamps, 'utf8').trim().split('\n');
    expect(lines.filter((l) => l.startsWith('end ninja-'))).toHaveLength(16);
    expect(lines.filter((l) => l.startsWith('end make-'))).toHaveLength(12);
    expect(lines.filter((l) => l.startsWith('end cargo-'))).toHaveLength(6);
    // The daemon's records: never more than 4 tokens out (the fifo's parked
    // tokens included), and all 4 were used.
    expect(daemon.maxOut()).toBe(4);
    // The observer: 4 tokens plus the implicit slots of ninja, make and cargo.
    const concurrent = maxConcurrency(lines);
    expect(concurrent).toBeLessThanOrEqual(4 + 3);
    expect(concurrent).toBeGreaterThanOrEqual(4);
    // ninja got tokens from the fifo beyond its implicit slot.
    const ninjaConcurrent = maxConcurrency(lines.filter((l) => l.includes(' ninja-')));
    expect(ninjaConcurrent).toBeGreaterThanOrEqual(2);
    // 34 job-seconds through at most 7 slots take at least 4.8 s.
    expect(elapsedMs).toBeGreaterThan(4800);

    // Every client has gone: the fifo's sub-pool is reset, nothing is out.
    await waitFor('all tokens back', () => daemon?.out() === 0);
    expect(daemon.log.some((l) => l.includes('ENOSPC'))).toBe(false);
    // The fifo front took tokens for ninja, and its sub-pool was reset at the end.
    expect(daemon.log.some((l) => l.startsWith('grant -> file:'))).toBe(true);
    await waitFor('the sub-pool reset', () =>
      daemon?.log.some((l) => l.startsWith('reclaim <- file:')),
    );
  });
});
