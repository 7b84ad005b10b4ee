// Runs one chaos scenario against a running daemon: starts the clients,
// injects the faults, changes the job count, keeps asking stevie, and then
// measures what the invariants need. Bounded: every loop stops by itself.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { PYTHON, REPO, type RunningDaemon, waitFor } from '../helpers/daemon.js';
import { NINJA } from '../helpers/ninja.js';
import { childrenOf } from '../helpers/processes.js';
import { checkOverIssue, parseStamps, percentiles } from './invariants.js';
import { seededRandom as random } from '@steve/test-support';

const execFileAsync = promisify(execFile);
const CLIENT = join(REPO, 'e2e', 'chaos', 'chaos_client.py');
const STEVIE = join(REPO, 'packages', 'steve-daemon', 'bin', 'stevie.js');

export type Mode =
  | 'blocking'
  | 'nonblocking'
  | 'poll'
  | 'threads'
  | 'fork'
  | 'shared'
  | 'crossfd'
  /** A seeded fault: a client that never finishes. */
  | 'stuck';
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
  /** Also run these modes on the daemon's shared fifo (`--fifo`), clientsPerMode each. */
  readonly fifoModes?: readonly Mode[];
  /** Fatal faults allowed on shared-fifo clients (their tokens stay lent until its last close). */
  readonly maxFifoKills?: number;
  /** Real ninja builds through `stevie -- ninja` (a private fifo each), jobsPerClient jobs each. */
  readonly ninjaBuilds?: number;
  /** Clients still running then are hung (default 90 s). */
  readonly deadlineMs?: number;
  /**
   * Seeded faults, to show the checks catch them: a process outside the
   * scenario that keeps a token (as if the daemon skipped a reclaim), or
   * bytes forged into the shared fifo (as if the pool over-issued).
   */
  readonly seededFault?: 'token-kept' | 'forged-fifo-bytes';
}

export interface ScenarioResult {
  readonly scenario: string;
  readonly clients: number;
  readonly grants: number;
  readonly faults: { kill: number; stop: number; interrupt: number };
  /** A signalled client's end -> the daemon logged the reclaim of its tokens, ms. */
  readonly reclaimMs: { p50: number; p99: number; max: number };
  /** Which client the slowest reclaim was (a forked child's hand-off holds it until the child is done). */
  readonly slowestReclaim: string;
  /** Most tokens clients held at once, and the job count then (max over capacity). */
  readonly maxHeld: number;
  readonly maxOverIssue: number;
  /** When there was an over-issue: what was held then, and the stamps and daemon log around it. */
  readonly overIssueReport?: string;
  /** Clients still running at the deadline, or signalled ones not gone within 3 s. */
  readonly hung: number;
  /** Tokens still out 2 s after every client exited. */
  readonly lost: number;
  readonly stevieFailures: number;
  /** Shared fifo: from a lower job count's reply until the daemon had the surplus back, ms; and decreases that never got there in 10 s. */
  readonly decreaseSettleMs?: { p50: number; p99: number; max: number; unsettled: number };
  readonly clientErrors: readonly string[];
  readonly durationMs: number;
}

/** A build.ninja of `jobs` independent edges, each a chaos `job` stamping for ninja's pid. */
function writeChaosNinjaBuild(dir: string, jobs: number, stamps: string, seed: number): void {
  mkdirSync(dir, { recursive: true });
  const names = Array.from({ length: jobs }, (_, i) => `job${i}`);
  writeFileSync(
    join(dir, 'build.ninja'),
    [
      'rule job',
      `  command = exec ${PYTHON} ${CLIENT} job - ${stamps} 1 ${seed}$seed`,
      ...names.map((name, i) => `build ${name}: job\n  seed = ${i}`),
      `default ${names.join(' ')}`,
      '',
    ].join('\n'),
  );
}

/** Start a seeded fault (see Scenario.seededFault); resolves once it is in place. */
async function seedFault(scenario: Scenario, daemon: RunningDaemon): Promise<ChildProcess | null> {
  if (scenario.seededFault === undefined) return null;
  const script =
    scenario.seededFault === 'token-kept'
      ? 'import os,sys,time; fd=os.open(sys.argv[1], os.O_RDWR); os.read(fd,1); print("ok", flush=True); time.sleep(60)'
      : 'import os,sys; fd=os.open(sys.argv[1], os.O_RDWR|os.O_NONBLOCK); os.write(fd, b"++"); print("ok", flush=True)';
  const path = scenario.seededFault === 'token-kept' ? daemon.jobserverPath : daemon.fifoPath;
  if (path === null) throw new Error('forged-fifo-bytes needs a daemon with a fifo front');
  const child = spawn(PYTHON, ['-c', script, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  let said = '';
  child.stdout?.setEncoding('utf8').on('data', (c: string) => (said += c));
  await waitFor('the seeded fault', () => said.includes('ok'));
  return child;
}

/** Holder ids of ninja builds' jobs in the stamps (above any pid). */
const NINJA_HOLDER_BASE = 1 << 23;

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
  const log: string[] = [];
  const onLog = (chunk: Buffer | string): void => {
    for (const line of String(chunk).split('\n')) if (line) log.push(`${Date.now()} ${line}`);
    // A FUSE client's pid, or the private fifo of stevie's pid (ninja builds).
    for (const match of String(chunk).matchAll(
      /reclaim <- (?:pid (\d+) |[^\n]*private fifo of pid (\d+))/g,
    ))
      reclaimedAt.set(Number(match[1] ?? match[2]), Date.now());
  };
  daemon.process.stderr?.on('data', onLog);

  const clients = new Map<number, ChildProcess>();
  // The process a fault goes to, by tracked client (a ninja build: ninja, not stevie).
  const targets = new Map<number, () => number | undefined>();
  const onFifo = new Set<number>();
  const exitedAt = new Map<number, number>();
  const clientErrors: string[] = [];
  const signalledAt = new Map<number, number>();
  let spawned = 0;
  const allExited: Promise<void>[] = [];
  const labels = new Map<number, string>();
  // Whom the `x` stamp names: the pid, or a ninja build's holder id.
  const holderIds = new Map<number, number>();
  const track = (
    label: string,
    child: ChildProcess,
    target?: () => number | undefined,
    holderId?: number,
  ): void => {
    spawned += 1;
    const pid = child.pid as number;
    clients.set(pid, child);
    targets.set(pid, target ?? (() => pid));
    if (holderId !== undefined) holderIds.set(pid, holderId);
    labels.set(pid, label);
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    allExited.push(
      new Promise((resolve) =>
        child.on('exit', (code, signal) => {
          exitedAt.set(pid, Date.now());
          clients.delete(pid);
          if (code !== 0 && !signalledAt.has(pid))
            clientErrors.push(`${label} pid ${pid}: exit ${code ?? signal}: ${stderr.trim()}`);
          resolve();
        }),
      ),
    );
  };
  const client = (mode: Mode, path: string): ChildProcess =>
    spawn(PYTHON, [CLIENT, mode, path, stamps, String(scenario.jobsPerClient), String(spawned)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  const keeper = scenario.seededFault === 'token-kept' ? await seedFault(scenario, daemon) : null;
  for (let i = 0; i < scenario.clientsPerMode; i++) {
    for (const mode of scenario.modes ?? ALL_MODES) track(mode, client(mode, daemon.jobserverPath));
    for (const mode of scenario.fifoModes ?? []) {
      if (daemon.fifoPath === null) throw new Error('fifoModes need a daemon with a fifo front');
      const child = client(mode, daemon.fifoPath);
      onFifo.add(child.pid as number);
      track(`fifo ${mode}`, child);
    }
  }
  for (let i = 0; i < (scenario.ninjaBuilds ?? 0); i++) {
    // Its jobs stamp this holder id (their parent may be gone by the time they stamp).
    const holderId = NINJA_HOLDER_BASE + i;
    const dir = join(daemon.dir, `ninja-${scenario.name.replace(/\W+/g, '-')}-${i}`);
    writeChaosNinjaBuild(dir, scenario.jobsPerClient, stamps, spawned);
    const wrapper = spawn(process.execPath, [STEVIE, ...control, '--', 'ninja', '-C', dir], {
      cwd: dir,
      env: {
        ...process.env,
        MAKEFLAGS: '',
        CHAOS_HOLDER: String(holderId),
        PATH: `${dirname(NINJA)}:${process.env.PATH ?? ''}`,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    track('stevie -- ninja', wrapper, () => childrenOf(wrapper.pid as number)[0], holderId);
  }

  if (scenario.seededFault === 'forged-fifo-bytes') {
    // Forged while the fifo's clients hold the whole pool: a pipe cannot tell these bytes from returns.
    await waitFor('the pool to be out', () => daemon.out() === scenario.jobs, 10_000);
    (await seedFault(scenario, daemon))?.kill('SIGKILL');
  }

  const faults = { kill: 0, stop: 0, interrupt: 0 };
  let fifoKills = 0;
  const settleMs: number[] = [];
  let unsettled = 0;
  let stevieFailures = 0;
  const deadline = Date.now() + (scenario.deadlineMs ?? 90_000);
  const live = (): number[] => [...clients.keys()];

  const faultLoop = async (): Promise<void> => {
    if (!scenario.faultEveryMs) return;
    while (clients.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, scenario.faultEveryMs));
      const pids = live();
      if (pids.length <= 2) return; // leave some to finish the work
      const tracked = pids[Math.floor(rnd() * pids.length)] as number;
      const pid = targets.get(tracked)?.();
      if (pid === undefined) continue; // not started yet
      const which = rnd();
      const fatal = which < 0.4 || which >= 0.7;
      if (fatal && onFifo.has(tracked)) {
        // On the shared fifo a killed client's tokens stay lent until its
        // last close: kill at most this many, so the others can finish.
        if (fifoKills >= (scenario.maxFifoKills ?? 0)) continue;
        fifoKills += 1;
      }
      try {
        if (which < 0.4) {
          appendFileSync(stamps, `x ${holderIds.get(tracked) ?? pid} ${nowNs()}\n`);
          signalledAt.set(tracked, Date.now());
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
          appendFileSync(stamps, `x ${holderIds.get(tracked) ?? pid} ${nowNs()}\n`);
          signalledAt.set(tracked, Date.now());
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
      let done = nowNs();
      if (next < jobs && scenario.fifoModes !== undefined) {
        // Shared-fifo clients pass tokens to each other through the kernel
        // pipe, unseen by the daemon: a lower count holds once the daemon
        // has taken the surplus back (an idle byte in the pipe), not at its reply.
        const asked = Date.now();
        try {
          await waitFor('the fifo sub-pool to shrink', () => daemon.out() <= next, 10_000);
        } catch {
          unsettled += 1;
        }
        settleMs.push(Date.now() - asked);
        done = nowNs();
      }
      appendFileSync(stamps, `j ${jobs} ${next} ${sent} ${done}\n`);
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
  keeper?.kill('SIGKILL');
  const reclaims: number[] = [];
  let slowestReclaim = '';
  for (const [tracked, signalled] of signalledAt) {
    // From the process's end (a client may finish its threads' jobs after
    // SIGINT first), or the signal when it outlived the scenario.
    const from = exitedAt.get(tracked) ?? signalled;
    const reclaimed = reclaimedAt.get(tracked);
    if (reclaimed === undefined) continue;
    const ms = Math.max(0, reclaimed - from);
    if (reclaims.every((other) => other < ms))
      slowestReclaim = `${labels.get(tracked)} pid ${tracked}: ${ms} ms`;
    reclaims.push(ms);
  }
  const overIssue = checkOverIssue(parseStamps(readFileSync(stamps, 'utf8')), scenario.jobs);
  return {
    scenario: scenario.name,
    clients: spawned,
    grants: overIssue.grants,
    faults,
    reclaimMs: percentiles(reclaims),
    slowestReclaim,
    maxHeld: overIssue.maxHeld,
    maxOverIssue: overIssue.maxOverIssue,
    ...(overIssue.heldAtMaxOverIssue === null
      ? {}
      : { overIssueReport: describeOverIssue(overIssue, readFileSync(stamps, 'utf8'), log) }),
    hung,
    lost,
    stevieFailures,
    ...(scenario.fifoModes === undefined
      ? {}
      : { decreaseSettleMs: { ...percentiles(settleMs), unsettled } }),
    clientErrors,
    durationMs: Date.now() - started,
  };
}

/** The stamps within 300 ms before the worst over-issue, and what was held then. */
function describeOverIssue(
  overIssue: ReturnType<typeof checkOverIssue>,
  stampsText: string,
  log: readonly string[],
): string {
  const worst = overIssue.heldAtMaxOverIssue;
  if (worst === null) return '';
  const fromNs = worst.ns - 300_000_000n;
  const near = stampsText.split('\n').filter((line) => {
    const ns = line.split(' ')[line.startsWith('x ') ? 2 : 3];
    return ns !== undefined && /^\d+$/.test(ns) && BigInt(ns) >= fromNs && BigInt(ns) <= worst.ns;
  });
  const worstMs = Number(worst.ns / 1_000_000n);
  const logNear = log.filter((line) => Math.abs(Number(line.split(' ')[0]) - worstMs) < 300);
  return [
    `held at ${worst.ns}: ${worst.tokens.join(' ')} (capacity ${overIssue.capacityAtMaxOverIssue})`,
    'stamps in the 300 ms before:',
    ...near,
    'daemon log within 300 ms:',
    ...logNear,
  ].join('\n');
}

/** One line per scenario, as the suite prints it. */
export function formatResult(r: ScenarioResult): string {
  return (
    `${r.scenario}: clients ${r.clients}, grants ${r.grants}, ` +
    `faults kill ${r.faults.kill} stop ${r.faults.stop} int ${r.faults.interrupt}, ` +
    `reclaim p50/p99/max ${r.reclaimMs.p50}/${r.reclaimMs.p99}/${r.reclaimMs.max} ms, ` +
    `max held ${r.maxHeld} (over capacity ${r.maxOverIssue}), hung ${r.hung}, lost ${r.lost}, ` +
    `stevie failures ${r.stevieFailures}, ` +
    (r.decreaseSettleMs === undefined
      ? ''
      : `fifo decrease settled p50/max ${r.decreaseSettleMs.p50}/${r.decreaseSettleMs.max} ms (never ${r.decreaseSettleMs.unsettled}), `) +
    `${(r.durationMs / 1000).toFixed(1)} s`
  );
}
