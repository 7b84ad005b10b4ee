// Ctrl-C of a GNU make 4.4.1 build (SIGINT to its whole process group)
// while it holds the whole pool. make 4.4.1 writes no tokens back when it
// dies of SIGINT, so the daemon must take them back itself: from the dead
// processes on the FUSE file (pidfd), and by resetting the sub-pool once
// nobody has the fifo open on the fifo front.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { maxConcurrency, type RunningDaemon, startDaemon, waitFor } from './helpers/daemon.js';
import {
  killGroup,
  make441,
  type MakeRun,
  processGroupMembers,
  stampLines,
  startMake441,
  writeRecursiveMakefile,
} from './helpers/make-4.4.1.js';
import { cleanEnv } from './helpers/processes.js';

const POOL = 3;

let daemon: RunningDaemon | null = null;
let build: MakeRun | null = null;
afterEach(async () => {
  if (build) killGroup(build.pgid);
  build = null;
  await daemon?.stop();
  daemon = null;
});

describe.each([
  { front: 'FUSE file', fifo: false },
  { front: 'fifo front', fifo: true },
])('SIGINT to a make 4.4.1 build on the $front', ({ fifo }) => {
  it(`the build holds all ${POOL} tokens and is interrupted: every token comes back`, async () => {
    make441();
    const d = await startDaemon(['-j', String(POOL)], fifo ? { fifo: { prefetch: 1 } } : {});
    daemon = d;
    const path = fifo ? (d.fifoPath as string) : d.jobserverPath;
    const stamps = join(d.dir, 'stamps');
    const dir = join(d.dir, 'build');
    writeRecursiveMakefile(dir, { subMakes: 3, jobsEach: 4, seconds: 60, stamps });
    const run = startMake441([], {
      cwd: dir,
      env: cleanEnv({ MAKEFLAGS: `--jobserver-auth=fifo:${path}` }),
    });
    build = run;
    // Mid-build: pool + 1 jobs running (every token taken, plus make's implicit slot).
    await waitFor(
      `${POOL + 1} jobs to run`,
      () => maxConcurrency(stampLines(stamps)) === POOL + 1,
      20_000,
    );
    if (!fifo) expect(d.out()).toBe(POOL);
    const logBefore = d.log.length;

    process.kill(-run.pgid, 'SIGINT');
    let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    void run.exited.then((result) => (exit = result));
    const gone = (): boolean => exit !== null && processGroupMembers(run.pgid).length === 0;
    // make 4.4.1 can start a job in the instant the group signal arrives (it
    // blocks fatal signals while it starts a child): that child missed the
    // SIGINT, and make waits for it. A user presses Ctrl-C again; so do we.
    const stragglers: string[] = [];
    for (let again = 0; again < 3; again++) {
      const allGone = await waitFor('the build to end', gone, 3_000).catch(() => false);
      if (allGone) break;
      stragglers.push(describeProcesses(processGroupMembers(run.pgid)));
      process.kill(-run.pgid, 'SIGINT');
    }
    if (stragglers.length > 0)
      console.log(`jobs that missed the first SIGINT: ${stragglers.join(' | ')}`);
    await waitFor('every process of the build to be gone', gone, 10_000).catch((error: Error) => {
      throw new Error(
        `${error.message}; left: ${describeProcesses(processGroupMembers(run.pgid))}`,
      );
    });
    // make dies of the SIGINT, or (when it saw its jobs die first) exits 2.
    const ended = exit as { code: number | null; signal: NodeJS.Signals | null } | null;
    expect(
      ended?.signal === 'SIGINT' || ended?.code === 2,
      `${JSON.stringify(ended)} ${run.output()}`,
    ).toBe(true);
    await waitFor('all tokens back', () => d.out() === 0, 5_000);

    // The records (stderr) may trail the status file a little.
    const reclaimedSince = (): number =>
      d.log
        .slice(logBefore)
        .map((l) => /^reclaim <- .*: (\d+) token\(s\)/.exec(l)?.[1])
        .filter((n) => n !== undefined)
        .reduce((sum, n) => sum + Number(n), 0);
    const reclaimed = await waitFor(
      `records of ${POOL} reclaimed tokens`,
      () =>
        (fifo
          ? d.log.slice(logBefore).some((l) => l.endsWith('file closed; out 0'))
          : reclaimedSince() >= POOL) && reclaimedSince(),
      5_000,
    ).catch(() => reclaimedSince());
    const after = d.log.slice(logBefore);
    if (fifo) {
      // A pipe cannot say who wrote what: the sub-pool comes back when the
      // last reader is gone (before that, the front may hand surplus bytes
      // it reads out of the pipe back to the core: `return <- file:N`).
      expect(
        after.some((l) => /^reclaim <- .*file closed; out 0$/.test(l)),
        after.join('\n'),
      ).toBe(true);
    } else {
      // make closes its jobserver first thing on SIGINT, so what comes back
      // comes from the daemon reclaiming dead processes' tokens (more than
      // POOL when a token freed by one death went to a sub-make still alive).
      // Only a make between reaping a job and taking the signal writes one back.
      const returned = after.filter((l) => l.startsWith('return <-')).length;
      expect(reclaimed, after.join('\n')).toBeGreaterThanOrEqual(POOL - returned);
      expect(reclaimed, after.join('\n')).toBeGreaterThanOrEqual(1);
      expect(
        after.filter((l) => l.startsWith('reclaim <-')).every((l) => l.includes('process exited')),
      ).toBe(true);
    }
    expect(stampLines(stamps).filter((l) => l.startsWith('end '))).toEqual([]);
  });
});

/** `pid state wchan cmdline` of each process, for a failure message. */
function describeProcesses(pids: number[]): string {
  return pids
    .map((pid) => {
      const read = (file: string): string => {
        try {
          return readFileSync(`/proc/${pid}/${file}`, 'utf8');
        } catch {
          return '?';
        }
      };
      const state = /^State:\s+(.*)$/m.exec(read('status'))?.[1] ?? '?';
      return `${pid} [${state}] wchan=${read('wchan')} ${read('cmdline').replaceAll('\0', ' ')}`;
    })
    .join('; ');
}
