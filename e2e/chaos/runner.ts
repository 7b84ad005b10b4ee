// Runs one chaos scenario against a running daemon: starts the clients,
// injects the faults, changes the job count, keeps asking stevie, and then
// measures what the invariants need. Bounded: every loop stops by itself.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PYTHON, REPO, type RunningDaemon, waitFor } from '../helpers/daemon.js';
import { checkOverIssue, parseStamps, percentiles } from './invariants.js';
import { seededRandom as random } from '@steve/test-support';

const execFileAsync = promisify(execFile);
const CLIENT = join(REPO, 'e2e', 'chaos', 'chaos_client.py');
const STEVIE = join(REPO, 'packages', 'steve-daemon', 'bin', 'stevie.js');

export type Mode = 'blocking' | 'nonblocking' | 'poll' | 'threads' | 'fork' | 'shared' | 'crossfd';
export const ALL_MODES: readonly Mode[] = [
  'blocking',
  'nonblocking',
  'poll',
  'threads',
  'fork',
  'shared',
  'crossfd',
];

export interface Scenario {
  readonly name: string;
  readonly jobs: number;
  readonly clientsPerMode: number;
  readonly modes?: readonly Mode[];
  readonly jobsPerClient: number;
  /** A fault (SIGKILL, SIGSTOP+SIGCONT or SIGINT of a random client) this often. */
  readonly faultEveryMs?: number;
  /** Runtime job counts, one every `jobChangeEveryMs`. */
  readonly jobChanges?: readonly number[];
  readonly jobChangeEveryMs?: number;
  readonly seed: number;
}

export interface ScenarioResult {
  readonly scenario: string;
  readonly clients: number;
  readonly grants: number;
  readonly faults: { kill: number; stop: number; interrupt: number };
  /** Signal sent -> the daemon logged the reclaim of that process, ms. */
  readonly reclaimMs: { p50: number; p99: number; max: number };
  /** Most tokens clients held at once, and the job count then (max over capacity). */
  readonly maxHeld: number;
  readonly maxOverIssue: number;
  /** Clients still running at the deadline, or signalled ones not gone within 3 s. */
  readonly hung: number;
  /** Tokens still out 2 s after every client exited. */
  readonly lost: number;
  readonly stevieFailures: number;
  readonly clientErrors: readonly string[];
  readonly durationMs: number;
}

const nowNs = (): bigint =>
  BigInt(Date.now()) * 1_000_000n + BigInt(process.hrtime()[1] % 1_000_000);

export async function runScenario(
  daemon: RunningDaemon,
  scenario: Scenario,
): Promise<ScenarioResult> {
  const started = Date.now();
  const rnd = random(scenario.seed);
  const stamps = join(daemon.dir, `stamps-${scenario.name.replace(/\W+/g, '-')}`);
  writeFileSync(stamps, '');
  const control = ['--control', daemon.controlPath];

  // When the daemon logged the reclaim of each pid (its -v lines).
  const reclaimedAt = new Map<number, number>();
  const onLog = (chunk: Buffer | string): void => {
    for (const match of String(chunk).matchAll(/reclaim <- pid (\d+) /g))
      reclaimedAt.set(Number(match[1]), Date.now());
  };
  daemon.process.stderr?.on('data', onLog);

  const clients = new Map<number, ChildProcess>();
  const exitedAt = new Map<number, number>();
  const clientErrors: string[] = [];
  const signalledAt = new Map<number, number>();
  let spawned = 0;
  const modes = scenario.modes ?? ALL_MODES;
  const allExited: Promise<void>[] = [];
  for (let i = 0; i < scenario.clientsPerMode; i++) {
    for (const mode of modes) {
      const child = spawn(
        PYTHON,
        [
          CLIENT,
          mode,
          daemon.jobserverPath,
          stamps,
          String(scenario.jobsPerClient),
          String(spawned),
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      spawned += 1;
      const pid = child.pid as number;
      clients.set(pid, child);
      let stderr = '';
      child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      allExited.push(
        new Promise((resolve) =>
          child.on('exit', (code, signal) => {
            exitedAt.set(pid, Date.now());
            clients.delete(pid);
            if (code !== 0 && !signalledAt.has(pid))
              clientErrors.push(`${mode} pid ${pid}: exit ${code ?? signal}: ${stderr.trim()}`);
            resolve();
          }),
        ),
      );
    }
  }

  const faults = { kill: 0, stop: 0, interrupt: 0 };
  let stevieFailures = 0;
  const deadline = Date.now() + 90_000;
  const live = (): number[] => [...clients.keys()];

  const faultLoop = async (): Promise<void> => {
    if (!scenario.faultEveryMs) return;
    while (clients.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, scenario.faultEveryMs));
      const pids = live();
      if (pids.length <= 2) return; // leave some to finish the work
      const pid = pids[Math.floor(rnd() * pids.length)] as number;
      const which = rnd();
      try {
        if (which < 0.4) {
          appendFileSync(stamps, `x ${pid} ${nowNs()}\n`);
          signalledAt.set(pid, Date.now());
          process.kill(pid, 'SIGKILL');
          faults.kill += 1;
        } else if (which < 0.7) {
          process.kill(pid, 'SIGSTOP');
          faults.stop += 1;
          setTimeout(
            () => {
              try {
                process.kill(pid, 'SIGCONT');
              } catch {
                // it was killed meanwhile
              }
            },
            50 + Math.floor(rnd() * 200),
          );
        } else {
          appendFileSync(stamps, `x ${pid} ${nowNs()}\n`);
          signalledAt.set(pid, Date.now());
          process.kill(pid, 'SIGINT');
          faults.interrupt += 1;
        }
      } catch {
        // exited just now
      }
    }
  };

  const jobsLoop = async (): Promise<void> => {
    let jobs = scenario.jobs;
    for (const next of scenario.jobChanges ?? []) {
      await new Promise((r) => setTimeout(r, scenario.jobChangeEveryMs ?? 500));
      const sent = nowNs();
      await execFileAsync(process.execPath, [STEVIE, 'set', 'jobs', String(next), ...control], {
        timeout: 5000,
      });
      appendFileSync(stamps, `j ${jobs} ${next} ${sent} ${nowNs()}\n`);
      jobs = next;
    }
  };

  const stevieLoop = async (): Promise<void> => {
    while (clients.size > 0 && Date.now() < deadline) {
      try {
        await execFileAsync(process.execPath, [STEVIE, 'status', '--json', ...control], {
          timeout: 5000,
        });
      } catch {
        stevieFailures += 1;
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  };

  const finished = Promise.all(allExited);
  await Promise.race([
    Promise.all([finished, faultLoop(), jobsLoop(), stevieLoop()]),
    new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now()))),
  ]);
  // Hung: still running at the deadline, or not gone within 3 s of a fatal signal.
  let hung = clients.size;
  for (const [pid, at] of signalledAt) {
    const gone = exitedAt.get(pid);
    if (gone === undefined || gone - at > 3000) hung += gone === undefined ? 0 : 1;
  }
  for (const child of clients.values()) child.kill('SIGKILL');
  // Lost: tokens still out 2 s after the last client exited (the job count may have changed).
  let lost = 0;
  try {
    await waitFor('every token back', () => daemon.out() === 0, 2000);
  } catch {
    lost = daemon.out();
  }
  daemon.process.stderr?.off('data', onLog);
  const reclaims: number[] = [];
  for (const [pid, at] of signalledAt) {
    const reclaimed = reclaimedAt.get(pid);
    if (reclaimed !== undefined) reclaims.push(reclaimed - at);
  }
  const overIssue = checkOverIssue(parseStamps(readFileSync(stamps, 'utf8')), scenario.jobs);
  return {
    scenario: scenario.name,
    clients: spawned,
    grants: overIssue.grants,
    faults,
    reclaimMs: percentiles(reclaims),
    maxHeld: overIssue.maxHeld,
    maxOverIssue: overIssue.maxOverIssue,
    hung,
    lost,
    stevieFailures,
    clientErrors,
    durationMs: Date.now() - started,
  };
}

/** One line per scenario, as the suite prints it. */
export function formatResult(r: ScenarioResult): string {
  return (
    `${r.scenario}: clients ${r.clients}, grants ${r.grants}, ` +
    `faults kill ${r.faults.kill} stop ${r.faults.stop} int ${r.faults.interrupt}, ` +
    `reclaim p50/p99/max ${r.reclaimMs.p50}/${r.reclaimMs.p99}/${r.reclaimMs.max} ms, ` +
    `max held ${r.maxHeld} (over capacity ${r.maxOverIssue}), hung ${r.hung}, lost ${r.lost}, ` +
    `stevie failures ${r.stevieFailures}, ${(r.durationMs / 1000).toFixed(1)} s`
  );
}
