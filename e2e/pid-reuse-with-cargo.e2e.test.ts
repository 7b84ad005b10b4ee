// Thread ids come back: real cargo/rustc builds after pids wrapped several
// times, in a pid namespace with a small pid_max. Before each build, PID_MAX
// processes only open the jobserver and exit (a make 4.4 sub-make running one
// job, a rustc calling jobserver-rs from_env), so every id of the cycle was an
// open-only process's before a helper thread of cargo or rustc gets it. The
// daemon must still charge each read to the thread's real process: no
// ENOSPC on returns, every build finishes, every token back at the end.
//
// STEVE_E2E_DAEMON_BIN runs another daemon build (to show the test fails on
// a daemon that remembered open-only processes' ids).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLIENTS, DAEMON_BIN, exitOf } from './helpers/daemon.js';
import { cleanEnv } from './helpers/processes.js';
import { writeCargoWorkspace } from './helpers/workloads.js';

const SCRIPT = join(CLIENTS, 'pid-wrap-rounds.sh');
const daemonBin = process.env.STEVE_E2E_DAEMON_BIN ?? DAEMON_BIN;

/** Ids per cycle: PID_MAX - 300 (after a wrap the kernel starts again at 300). */
const PID_MAX = 600;
const ROUNDS = 6;
const JOBS = 2;
const BUILD_DEADLINE_S = 30;
const TOKENS_BACK_DEADLINE_S = 10;
/** For the whole namespace run; here it takes ~10 s (a deadline, not a sleep). */
const RUN_DEADLINE_MS = 130_000;

let runner: ChildProcess | null = null;
let dir: string | null = null;
afterEach(async () => {
  // unshare --kill-child: the namespace's init (and with it every process in
  // the namespace, the daemon and its mount included) dies with unshare.
  if (runner && runner.exitCode === null && runner.signalCode === null) {
    runner.kill('SIGKILL');
    await exitOf(runner);
  }
  runner = null;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

interface Build {
  readonly round: number;
  readonly code: number;
  readonly seconds: number;
}

describe('pid reuse with cargo', () => {
  it(
    `${ROUNDS} cargo builds after open-only processes used every id (pid_max ${PID_MAX}): no ENOSPC, builds finish, all tokens back`,
    { timeout: RUN_DEADLINE_MS + 20_000 },
    async () => {
      dir = mkdtempSync(join(tmpdir(), 'steve-e2e-pid-reuse-'));
      const workspace = writeCargoWorkspace(dir, 6, 0.05);
      const runDir = join(dir, 'run');
      mkdirSync(runDir);
      const started = Date.now();
      const child = spawn(
        'unshare',
        ['--pid', '--fork', '--mount-proc', '--kill-child', 'bash', SCRIPT],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: cleanEnv({
            NODE: process.execPath,
            STEVE_DAEMON_BIN: daemonBin,
            DIR: runDir,
            PID_MAX: String(PID_MAX),
            JOBS: String(JOBS),
            ROUNDS: String(ROUNDS),
            WORKSPACE: workspace,
            STAMPS: join(dir, 'stamps'),
            BUILD_DEADLINE_S: String(BUILD_DEADLINE_S),
            TOKENS_BACK_DEADLINE_S: String(TOKENS_BACK_DEADLINE_S),
          }),
        },
      );
      runner = child;
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      let deadlineTimer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        exitOf(child),
        new Promise<'deadline'>((resolve) => {
          deadlineTimer = setTimeout(() => resolve('deadline'), RUN_DEADLINE_MS);
        }),
      ]);
      clearTimeout(deadlineTimer);
      const elapsedMs = Date.now() - started;
      const daemonLog = readOr(join(runDir, 'daemon.log'));
      const report = `stdout:\n${stdout}\nstderr:\n${stderr}\ndaemon log (problems):\n${problems(daemonLog)}`;
      expect(outcome, `the namespace run did not end within ${RUN_DEADLINE_MS} ms\n${report}`).toBe(
        0,
      );

      const lines = stdout.split('\n');
      expect(lines, report).toContain(`pid_max ${PID_MAX}`);
      const builds: Build[] = lines
        .map((line) => /^build (\d+) (\d+) ([\d.]+)$/.exec(line))
        .filter((m) => m !== null)
        .map((m) => ({ round: Number(m[1]), code: Number(m[2]), seconds: Number(m[3]) }));
      // Every build ran to the end, none hit its deadline (timeout's 124).
      expect(
        builds.map((b) => b.code),
        `${report}\n${readOr(join(runDir, `cargo-${builds.length}.log`))}`,
      ).toEqual(Array.from({ length: ROUNDS }, () => 0));

      // Before each build, open-only processes used (nearly) every id of the
      // cycle [300, PID_MAX): those still taken by live tasks are the only gaps.
      const openIds = new Set<number>();
      for (let round = 1; round <= ROUNDS; round++) {
        const ids = new Set(
          readOr(join(runDir, `open-ids-${round}`))
            .split('\n')
            .map(Number),
        );
        const inCycle = [...ids].filter((id) => id >= 300 && id < PID_MAX).length;
        expect(inCycle, `round ${round}`).toBeGreaterThan(PID_MAX - 300 - 50);
        for (const id of ids) if (id > 0) openIds.add(id);
      }
      const wraps = Number(/^wraps (\d+)$/m.exec(stdout)?.[1] ?? NaN);
      expect(wraps, report).toBeGreaterThanOrEqual(2 * ROUNDS);
      // Build processes that took tokens had ids open-only processes had had.
      const granted = new Set(
        [...daemonLog.matchAll(/^(?:\S+Z )?grant -> pid (\d+) /gm)].map((m) => Number(m[1])),
      );
      expect([...granted].filter((pid) => openIds.has(pid)).length, report).toBeGreaterThan(0);

      // Reused ids are charged to the thread's real process: its returns are
      // accepted, its exit reclaims, nothing leaks.
      const finalStatus = /^status (.*)$/m.exec(stdout)?.[1] ?? '(none)';
      const enospc = daemonLog.split('\n').filter((l) => l.includes('ENOSPC'));
      expect({ finalStatus, enospc }, report).toEqual({
        finalStatus: expect.stringContaining('  out 0  '),
        enospc: [],
      });
      console.log(
        `pid reuse with cargo: ${wraps} wraps, ${openIds.size} distinct open-only ids, ` +
          `builds ${builds.map((b) => b.seconds.toFixed(2)).join(' ')} s, ` +
          `${daemonLog.match(/^(?:\S+Z )?grant /gm)?.length ?? 0} grants, whole run ${elapsedMs} ms`,
      );
    },
  );
});

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** The daemon's lines worth showing when the test fails (not every grant and return). */
function problems(log: string): string {
  return log
    .split('\n')
    .filter((l) => /ENOSPC|cannot watch|unowned|steve-daemon: error/.test(l))
    .slice(0, 40)
    .join('\n');
}
