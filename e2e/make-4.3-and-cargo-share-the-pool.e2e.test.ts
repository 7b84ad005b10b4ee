// GNU make 4.3 as a pipe-style client (`make 3<>DIR/jobserver`,
// --jobserver-auth=3,3) and cargo as a fifo client, at the same time, on one
// pool of 3 tokens. The daemon's own records and an observer (jobs write
// start/end stamps) must agree: at most 3 tokens out, every token back.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { maxConcurrency, type RunningDaemon, startDaemon, waitFor } from './helpers/daemon.js';
import { cleanEnv, run } from './helpers/processes.js';
import { writeCargoWorkspace, writeMakefile } from './helpers/workloads.js';

let daemon: RunningDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

describe('make 4.3 and cargo share one pool', () => {
  it('12 one-second make jobs and a cargo workspace under -j3: at most 3 tokens out, all back', async () => {
    daemon = await startDaemon(['-j', '3']);
    const stamps = join(daemon.dir, 'stamps');
    const makefile = writeMakefile(daemon.dir, 12, 1, stamps);
    const workspace = writeCargoWorkspace(daemon.dir, 6, 1);

    const started = Date.now();
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
    const [makeResult, cargoResult] = await Promise.all([makeRun, cargoRun]);
    const elapsedMs = Date.now() - started;
    expect(makeResult, makeResult.output).toMatchObject({ code: 0 });
    expect(cargoResult, cargoResult.output).toMatchObject({ code: 0 });

    const lines = readFileSync(stamps, 'utf8').trim().split('\n');
    expect(lines.filter((l) => l.startsWith('end make-'))).toHaveLength(12);
    expect(lines.filter((l) => l.startsWith('end cargo-'))).toHaveLength(6);
    // The daemon's record: never more than 3 tokens out, and they were used.
    expect(daemon.maxOut()).toBe(3);
    // The observer: 3 tokens plus the implicit slots of make and cargo.
    const concurrent = maxConcurrency(lines);
    expect(concurrent).toBeLessThanOrEqual(3 + 2);
    expect(concurrent).toBeGreaterThanOrEqual(3);
    // 18 job-seconds through at most 5 slots take at least 3.6 s.
    expect(elapsedMs).toBeGreaterThan(3600);
    await waitFor('all tokens back', () => daemon?.out() === 0);
    expect(daemon.log.some((l) => l.includes('ENOSPC'))).toBe(false);
  });

  it('cargo killed mid-build (SIGKILL to its process group): nothing hangs in the kernel, no token lost', async () => {
    daemon = await startDaemon(['-j', '2']);
    const stamps = join(daemon.dir, 'stamps');
    const workspace = writeCargoWorkspace(daemon.dir, 6, 20);
    const cargo = spawn('cargo', ['build', '--offline', '--quiet'], {
      cwd: workspace,
      detached: true, // its own process group, so we can kill the whole build
      stdio: 'ignore',
      env: cleanEnv({
        MAKEFLAGS: `--jobserver-auth=fifo:${daemon.jobserverPath}`,
        STAMPS: stamps,
        CARGO_TARGET_DIR: join(daemon.dir, 'target'),
      }),
    });
    const pgid = cargo.pid as number;
    // Wait until build scripts run and cargo waits in a read for more tokens.
    await waitFor(
      'build scripts to start',
      () => {
        try {
          return readFileSync(stamps, 'utf8').includes('start cargo-');
        } catch {
          return false;
        }
      },
      120_000,
    );
    await waitFor(
      'cargo to wait for a token',
      () => daemon?.status().includes('blocking read'),
      30_000,
    );
    expect(daemon.out()).toBe(2);

    process.kill(-pgid, 'SIGKILL');
    const groupMembers = (): number[] => {
      const result: number[] = [];
      for (const entry of readdirSafe('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        try {
          const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
          const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          if (Number(fields[2]) === pgid) result.push(Number(entry));
        } catch {
          // gone
        }
      }
      return result;
    };
    await waitFor(
      'every process of the build to be gone',
      () => groupMembers().length === 0,
      10_000,
    );
    await waitFor('all tokens back', () => daemon?.out() === 0, 5_000);
    expect(daemon.log.some((l) => l.startsWith('interrupted:'))).toBe(true);
  });
});

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
