/**
 * `pnpm bench tokens`: what a client sees through steve's FUSE front, beside
 * a plain kernel fifo (the physical limit) and two single-threaded C
 * libfuse3 servers, all with the same python3 client in the same run:
 *
 * - naive C (bench/native/bare-fuse-server.c): fuse_session_loop, blocking
 *   reads of /dev/fuse; for reference only, it is not a floor;
 * - fair C (bench/native/fair-fuse-server.c): the daemon's own strategy
 *   without JavaScript (non-blocking fd under epoll, one reused buffer, no
 *   splice, the same mount options and FOPEN flags): the baseline.
 *
 * Measured:
 * - acquire+release pairs per second (one process: read 1 byte, write it
 *   back) in R interleaved rounds, the four targets in rotating order each
 *   round, under two placements pinned with taskset (client and server on
 *   one CPU; on two): placement moves the rate tenfold here, so an unpinned
 *   round measures where the scheduler happened to put the client; steve /
 *   fair C is a ratio per round, judged on the median, per placement;
 * - wake-up latency (release -> a blocked reader returns; -> a poller's
 *   select returns) with no added load and with 2 CPU hogs at our nice
 *   level, and under load with scheduling hints applied to the daemon from
 *   outside (renice, taskset, chrt), all variants interleaved;
 * - the daemon's CPU time while idle, before any client and after all.
 */

import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type RatioSummary,
  type Spread,
  type Verdict,
  cpuBusyShare,
  cpuTicksFromStat,
  cpuTicksWithChildrenFromStat,
  cpuStealShare,
  cpuUsPerPair,
  schedstatRunNs,
  foreignBusyShare,
  latencyStats,
  roundsLatency,
  roundsLatencyVerdict,
  type RoundsLatency,
  perRoundRatios,
  ratioSummary,
  rotation,
  spread,
} from './rounds.js';
import { n, pct, perTargetTable, ratioLine, verdictSentence } from './report-text.js';

export type { LatencyStats } from './rounds.js';

/** Microsecond precision is all a wake-up sample needs in the JSON. */
const round3 = (ms: number): number => Math.round(ms * 1000) / 1000;

const HERE = dirname(fileURLToPath(import.meta.url));
const BENCH = join(HERE, '..');
const REPO = join(BENCH, '..');
const DAEMON_BIN = join(REPO, 'packages', 'steve-daemon', 'bin', 'steve-daemon.js');
const PYTHON = '/usr/bin/python3';

/** steve / fair C, median of the per-round ratios. */
export const RATE_TARGET = 0.9;
export const BLOCKED_P99_TARGET_MS = 1;
export const POLLER_P99_TARGET_MS = 2;

export const PAIRS_TARGETS = ['fifo', 'naiveC', 'fairC', 'steve'] as const;
export type PairsTarget = (typeof PAIRS_TARGETS)[number];
export type ServerTarget = Exclude<PairsTarget, 'fifo'>;
export const SERVER_TARGETS: readonly ServerTarget[] = ['naiveC', 'fairC', 'steve'];
export const PAIRS_LABELS: Readonly<Record<PairsTarget, string>> = {
  fifo: 'kernel fifo (the physical limit)',
  naiveC: 'naive C libfuse3 server (`fuse_session_loop`, for reference)',
  fairC: 'fair C libfuse3 server (the daemon’s strategy: epoll, one buffer, no splice)',
  steve: 'steve-daemon FUSE front',
};
/**
 * Where the pairs client and the server run, pinned with taskset. On one
 * CPU a request hands the CPU straight to the server and back: the rate is
 * the servers' own cost per request. On two, every request wakes the other
 * CPU (in a VM an inter-processor interrupt and often a halted vCPU): the
 * rate is that wake-up's, nearly the same for every server.
 */
export const PLACEMENTS = ['oneCpu', 'twoCpus'] as const;
export type Placement = (typeof PLACEMENTS)[number];
export const PLACEMENT_LABELS: Readonly<Record<Placement, string>> = {
  oneCpu: 'client and server pinned to one CPU (bound by the server’s own cost)',
  twoCpus: 'client on CPU 0, server on the last CPU (bound by cross-CPU wake-ups)',
};
export const PLACEMENT_SHORT: Readonly<Record<Placement, string>> = {
  oneCpu: 'one CPU',
  twoCpus: 'two CPUs',
};

/** The CPUs (client, server) of a placement on a machine with `cpuCount` CPUs. */
export function placementCpus(placement: Placement, cpuCount: number): [number, number] {
  const last = cpuCount - 1;
  return placement === 'oneCpu' ? [last, last] : [0, last];
}

const SHORT: Readonly<Record<PairsTarget, string>> = {
  fifo: 'fifo',
  naiveC: 'naive C',
  fairC: 'fair C',
  steve: 'steve',
};

/** A scheduling hint applied to the daemon (all its threads) from outside. */
export type Hint = 'none' | 'nice' | 'taskset' | 'fifo' | 'rr';
export const HINT_LABELS: Readonly<Record<Hint, string>> = {
  none: '—',
  nice: '`renice -n -10`',
  taskset: '`taskset -a -p -c LAST_CPU`',
  fifo: '`chrt -a -f -p 1` (SCHED_FIFO 1)',
  rr: '`chrt -a -r -p 1` (SCHED_RR 1)',
};

export interface WakeVariant {
  readonly id: string;
  readonly target: 'fifo' | 'steve';
  readonly loaded: boolean;
  readonly hint: Hint;
}

export const WAKE_VARIANTS: readonly WakeVariant[] = [
  { id: 'fifo', target: 'fifo', loaded: false, hint: 'none' },
  { id: 'steve', target: 'steve', loaded: false, hint: 'none' },
  { id: 'steve-nice', target: 'steve', loaded: false, hint: 'nice' },
  { id: 'steve-rr', target: 'steve', loaded: false, hint: 'rr' },
  { id: 'fifo-loaded', target: 'fifo', loaded: true, hint: 'none' },
  { id: 'steve-loaded', target: 'steve', loaded: true, hint: 'none' },
  { id: 'steve-loaded-nice', target: 'steve', loaded: true, hint: 'nice' },
  { id: 'steve-loaded-taskset', target: 'steve', loaded: true, hint: 'taskset' },
  { id: 'steve-loaded-fifo', target: 'steve', loaded: true, hint: 'fifo' },
  { id: 'steve-loaded-rr', target: 'steve', loaded: true, hint: 'rr' },
];

/** All samples pooled, and each round's own p99 (the verdict: their median). */
export type WakeMeasure = RoundsLatency;

/**
 * Shares of all CPUs over some stretch of the run: `other`, what other work
 * on the machine kept busy (busy time in /proc/stat minus the CPU time of
 * the benchmark's own processes, hogs included); `steal`, what the
 * hypervisor withheld from our virtual CPUs.
 */
export interface Load {
  readonly other: number;
  readonly steal: number;
}

export interface WakeResult extends WakeVariant {
  readonly blocked: WakeMeasure;
  readonly poller: WakeMeasure;
  readonly blockedVerdict: Verdict;
  readonly pollerVerdict: Verdict;
  /** Other work's share of the CPUs during this variant's rounds. */
  readonly load: { readonly other: Spread; readonly steal: Spread };
  /** Every wake-up, ms, all rounds (for the distribution charts). */
  readonly samplesMs?: { readonly blocked: readonly number[]; readonly poller: readonly number[] };
}

export interface PairsRound {
  readonly round: number;
  readonly placement: Placement;
  readonly order: readonly PairsTarget[];
  readonly pairsPerSecond: Readonly<Record<PairsTarget, number>>;
  /** CPU time of the server process (every thread) per pair, in µs; the fifo has none. */
  readonly serverCpuUsPerPair: Readonly<Record<ServerTarget, number>>;
  readonly load: Load;
}

/** The pairs rounds of one placement and what they add up to. */
export interface PairsPlacementResult {
  readonly placement: Placement;
  readonly rounds: readonly PairsRound[];
  readonly perTarget: Readonly<Record<PairsTarget, Spread>>;
  readonly serverCpuUsPerPair: Readonly<Record<ServerTarget, Spread>>;
  readonly steveVsFairC: RatioSummary;
  readonly steveVsNaiveC: Spread;
  readonly fairCVsNaiveC: Spread;
  readonly steveVsFifo: Spread;
}

/** Sum up one placement's rounds. */
export function pairsPlacementResult(
  placement: Placement,
  rounds: readonly PairsRound[],
): PairsPlacementResult {
  const mine = rounds.filter((r) => r.placement === placement);
  const perRound = mine.map((r) => r.pairsPerSecond);
  return {
    placement,
    rounds: mine,
    perTarget: Object.fromEntries(
      PAIRS_TARGETS.map((t) => [t, spread(perRound.map((p) => p[t]))]),
    ) as Record<PairsTarget, Spread>,
    serverCpuUsPerPair: Object.fromEntries(
      SERVER_TARGETS.map((t) => [t, spread(mine.map((r) => r.serverCpuUsPerPair[t]))]),
    ) as Record<ServerTarget, Spread>,
    steveVsFairC: ratioSummary(perRoundRatios(perRound, 'steve', 'fairC'), RATE_TARGET),
    steveVsNaiveC: spread(perRoundRatios(perRound, 'steve', 'naiveC')),
    fairCVsNaiveC: spread(perRoundRatios(perRound, 'fairC', 'naiveC')),
    steveVsFifo: spread(perRoundRatios(perRound, 'steve', 'fifo')),
  };
}

export interface TokensBenchSettings {
  /** Interleaved pairs rounds. */
  readonly rounds: number;
  /** Seconds each target gets per round. */
  readonly secondsPerRound: number;
  /** Interleaved wake-up rounds (every variant once per round). */
  readonly wakeRounds: number;
  /** Wake-ups per waiter kind, variant and round. */
  readonly wakeSamples: number;
  /** CPU hogs (busy loops at our nice level) for the loaded variants. */
  readonly hogs: number;
  readonly idleSeconds: number;
}

export interface TokensBenchResult {
  readonly settings: TokensBenchSettings;
  readonly machine: {
    readonly cpus: number;
    /** Over 3 s before anything started, and 3 s after all stopped. */
    readonly loadBefore: Load;
    readonly loadAfter: Load;
    readonly loadAverageBefore: readonly number[];
    readonly loadAverageAfter: readonly number[];
    readonly loadPairs: Load;
    readonly loadWake: Load;
  };
  /** One entry per placement measured (one CPU only on a one-CPU machine). */
  readonly pairs: readonly PairsPlacementResult[];
  readonly wake: readonly WakeResult[];
  readonly idle: {
    readonly seconds: number;
    readonly ticksBeforeClients: number;
    readonly ticksAfterClients: number;
  };
  readonly verdicts: readonly VerdictLine[];
  /** Hints under which steve met both wake-up targets, with no added load and with the hogs. */
  readonly hintsMeetingBoth: { readonly quiet: readonly Hint[]; readonly loaded: readonly Hint[] };
}

export const DEFAULT_SETTINGS: TokensBenchSettings = {
  rounds: 7,
  secondsPerRound: 2,
  wakeRounds: 5,
  wakeSamples: 200,
  hogs: 2,
  idleSeconds: 5,
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function waitForLine(child: ChildProcess, pattern: RegExp, deadlineMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(
      () => reject(new Error(`no ${pattern} within ${deadlineMs} ms: ${text}`)),
      deadlineMs,
    );
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
      const match = pattern.exec(text);
      if (match) {
        clearTimeout(timer);
        resolve(match[0]);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited (${code}) before ${pattern}: ${text}`));
    });
  });
}

function runPython(args: string[], timeoutMs = 120_000, cpu?: number): string {
  const result =
    cpu === undefined
      ? spawnSync(PYTHON, args, { encoding: 'utf8', timeout: timeoutMs })
      : spawnSync('taskset', ['-c', String(cpu), PYTHON, ...args], {
          encoding: 'utf8',
          timeout: timeoutMs,
        });
  if (result.status !== 0)
    throw new Error(`python3 ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  return result.stdout;
}

function runPairs(path: string, seconds: number, cpu: number): { pairs: number; seconds: number } {
  const out = runPython([join(BENCH, 'clients', 'pairs.py'), path, String(seconds)], 120_000, cpu);
  const match = /pairs (\d+) seconds ([\d.]+)/.exec(out);
  if (!match) throw new Error(`pairs.py printed: ${out}`);
  return { pairs: Number(match[1]), seconds: Number(match[2]) };
}

/** CPU time (ns) of every thread of a process. */
function processCpuNs(pid: number): number {
  let ns = 0;
  for (const tid of threadsOf(pid)) {
    try {
      ns += schedstatRunNs(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8'));
    } catch {
      // the thread ended meanwhile
    }
  }
  return ns;
}

/** One wake.py run: latencies in ms. */
function wakeSamples(path: string, mode: 'block' | 'poll', samples: number): number[] {
  const out = runPython([join(BENCH, 'clients', 'wake.py'), path, mode, String(samples)]);
  return out
    .trim()
    .split(/\s+/)
    .map((ns) => Number(ns) / 1e6);
}

function cpuTicks(pid: number): number {
  return cpuTicksFromStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/** CPU ticks of this process, its reaped children and the children still running. */
function ourTicks(live: readonly number[]): number {
  let ticks = cpuTicksWithChildrenFromStat(readFileSync('/proc/self/stat', 'utf8'));
  for (const pid of live) {
    try {
      ticks += cpuTicks(pid);
    } catch {
      // gone: its time is in our children's now, once reaped
    }
  }
  return ticks;
}

interface Meter {
  readonly cpu: string;
  readonly ours: number;
}

function cpuLine(): string {
  return readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
}

async function backgroundLoad(seconds: number): Promise<Load> {
  const before = cpuLine();
  await sleep(seconds * 1000);
  const after = cpuLine();
  return { other: cpuBusyShare(before, after), steal: cpuStealShare(before, after) };
}

function unmount(dir: string): void {
  spawnSync('umount', ['-l', dir]);
}

// ---- load and hints --------------------------------------------------------

/** A busy loop that ends on its own after `bound` seconds, should we fail to kill it. */
const HOG =
  'import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end: pass\n';

function startHogs(count: number, boundSeconds: number): ChildProcess[] {
  const hogs: ChildProcess[] = [];
  for (let i = 0; i < count; i++)
    hogs.push(spawn(PYTHON, ['-c', HOG, String(boundSeconds)], { stdio: 'ignore' }));
  return hogs;
}

async function stopHogs(hogs: ChildProcess[]): Promise<void> {
  await Promise.all(
    hogs.map(
      (hog) =>
        new Promise<void>((resolve) => {
          if (hog.exitCode !== null || hog.signalCode !== null || hog.pid === undefined) {
            resolve();
            return;
          }
          hog.once('exit', () => resolve());
          process.kill(hog.pid, 'SIGKILL');
        }),
    ),
  );
}

function threadsOf(pid: number): string[] {
  return readdirSync(`/proc/${pid}/task`);
}

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** nice (stat field 19) and policy (field 41) of one thread. */
export function schedOfStat(stat: string): { nice: number; policy: number } {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { nice: Number(fields[16]), policy: Number(fields[38]) };
}

function schedOf(pid: number): { nice: number; policy: number; cpus: string } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    ...schedOfStat(readFileSync(`/proc/${pid}/stat`, 'utf8')),
    cpus: /Cpus_allowed_list:\s*(\S+)/.exec(status)?.[1] ?? '?',
  };
}

const SCHED_OTHER = 0;
const SCHED_FIFO = 1;
const SCHED_RR = 2;

function applyHint(pid: number, hint: Hint, cpuCount: number): void {
  const last = String(cpuCount - 1);
  if (hint === 'nice') run('renice', ['-n', '-10', '-p', ...threadsOf(pid)]);
  if (hint === 'taskset') run('taskset', ['-a', '-p', '-c', last, String(pid)]);
  if (hint === 'fifo') run('chrt', ['-a', '-f', '-p', '1', String(pid)]);
  if (hint === 'rr') run('chrt', ['-a', '-r', '-p', '1', String(pid)]);
  // Check that the main thread (the one serving /dev/fuse) got it.
  const s = schedOf(pid);
  const ok =
    hint === 'none' ||
    (hint === 'nice' && s.nice === -10) ||
    (hint === 'taskset' && s.cpus === last) ||
    (hint === 'fifo' && s.policy === SCHED_FIFO) ||
    (hint === 'rr' && s.policy === SCHED_RR);
  if (!ok) throw new Error(`hint ${hint} did not take: ${JSON.stringify(s)}`);
}

/** Pin every thread of `pid` to `cpu`; `null`: every CPU again. */
function pin(pid: number, cpu: number | null, cpuCount: number): void {
  run('taskset', ['-a', '-p', '-c', cpu === null ? `0-${cpuCount - 1}` : String(cpu), String(pid)]);
}

function clearHints(pid: number, cpuCount: number): void {
  run('chrt', ['-a', '-o', '-p', '0', String(pid)]);
  run('renice', ['-n', '0', '-p', ...threadsOf(pid)]);
  run('taskset', ['-a', '-p', '-c', `0-${cpuCount - 1}`, String(pid)]);
  const s = schedOf(pid);
  if (s.nice !== 0 || s.policy !== SCHED_OTHER)
    throw new Error(`could not clear the hints: ${JSON.stringify(s)}`);
}

// ---- the run ---------------------------------------------------------------

export async function runTokensBench(
  options: Partial<TokensBenchSettings> = {},
  log: (line: string) => void = (line) => console.error(line),
): Promise<TokensBenchResult> {
  const settings: TokensBenchSettings = { ...DEFAULT_SETTINGS, ...options };
  if (process.getuid?.() !== 0)
    throw new Error('pnpm bench tokens mounts FUSE file systems: run it as root');
  const cpuCount = cpus().length;

  const loadAverageBefore = loadavg();
  log('tokens: background load (3 s)...');
  const loadBefore = await backgroundLoad(3);

  const dir = mkdtempSync(join(tmpdir(), 'steve-bench-tokens-'));
  const cleanups: Array<() => void> = [];
  const cleanUp = (): void => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        cleanup();
      } catch {
        // keep cleaning up
      }
    }
  };
  // Interrupted: unmount and stop what we started before going.
  const onSignal = (signal: NodeJS.Signals): void => {
    cleanUp();
    rmSync(dir, { recursive: true, force: true });
    process.kill(process.pid, signal);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const hogs: ChildProcess[] = [];
  cleanups.push(() => {
    for (const hog of hogs) if (hog.pid !== undefined && hog.exitCode === null) hog.kill('SIGKILL');
  });
  try {
    // A plain kernel fifo holding one token.
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const fifoFd = openSync(fifo, 'r+');
    cleanups.push(() => closeSync(fifoFd));
    writeSync(fifoFd, '+');

    // The two C servers, one token each, built here.
    const flags = execFileSync('pkg-config', ['--cflags', '--libs', 'fuse3'], { encoding: 'utf8' })
      .trim()
      .split(/\s+/);
    const livePids: number[] = [];
    const serverPids: number[] = [];
    const startC = async (name: string, source: string): Promise<string> => {
      const binary = join(dir, name);
      execFileSync('cc', ['-O2', '-Wall', '-o', binary, join(BENCH, 'native', source), ...flags]);
      const mount = join(dir, `${name}.mnt`);
      mkdirSync(mount);
      const server = spawn(binary, [mount, '1'], { stdio: ['ignore', 'pipe', 'inherit'] });
      if (server.pid === undefined) throw new Error(`cannot start ${name}`);
      livePids.push(server.pid);
      serverPids.push(server.pid);
      cleanups.push(() => {
        if (server.exitCode === null) server.kill('SIGKILL');
        unmount(mount);
      });
      await waitForLine(server, /ready/, 10_000);
      return join(mount, 'jobserver');
    };
    const naiveC = await startC('naive-fuse-server', 'bare-fuse-server.c');
    const fairC = await startC('fair-fuse-server', 'fair-fuse-server.c');
    const [naivePid, fairPid] = serverPids as [number, number];

    // steve-daemon's FUSE front, one token, its control socket in our dir.
    const steveMount = join(dir, 'steve');
    mkdirSync(steveMount);
    const daemon = spawn(
      process.execPath,
      [DAEMON_BIN, '-j', '1', '--fuse', steveMount, '--control', join(dir, 'control.sock')],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    cleanups.push(() => {
      if (daemon.exitCode === null) daemon.kill('SIGTERM');
      unmount(steveMount);
    });
    await waitForLine(daemon, /serving 1 tokens/, 20_000);
    const daemonPid = daemon.pid as number;
    const steve = join(steveMount, 'jobserver');
    const paths: Record<PairsTarget, string> = { fifo, naiveC, fairC, steve };
    const servers = [...livePids, daemonPid];
    const serverPid: Record<ServerTarget, number> = {
      naiveC: naivePid,
      fairC: fairPid,
      steve: daemonPid,
    };
    const meter = (): Meter => ({ cpu: cpuLine(), ours: ourTicks(servers) });
    const loadSince = (since: Meter): Load => {
      const now = meter();
      return {
        other: foreignBusyShare(since.cpu, now.cpu, since.ours, now.ours),
        steal: cpuStealShare(since.cpu, now.cpu),
      };
    };

    // Idle CPU while nothing has touched the daemon.
    const idleTicks = async (): Promise<number> => {
      await sleep(500);
      const before = cpuTicks(daemonPid);
      await sleep(settings.idleSeconds * 1000);
      return cpuTicks(daemonPid) - before;
    };
    log(`tokens: daemon idle before clients (${settings.idleSeconds} s)...`);
    const ticksBeforeClients = await idleTicks();

    // Pairs: every placement and target once per round, in rotating order.
    const placements: readonly Placement[] = cpuCount >= 2 ? PLACEMENTS : ['oneCpu'];
    const rounds: PairsRound[] = [];
    const pairsMeter = meter();
    for (let round = 0; round < settings.rounds; round++) {
      for (const placement of rotation(placements, round)) {
        const [clientCpu, serverCpu] = placementCpus(placement, cpuCount);
        for (const pid of servers) pin(pid, serverCpu, cpuCount);
        const order = rotation(PAIRS_TARGETS, round);
        const roundMeter = meter();
        const measured: Partial<Record<PairsTarget, number>> = {};
        const cpu: Partial<Record<ServerTarget, number>> = {};
        for (const target of order) {
          const pid = target === 'fifo' ? undefined : serverPid[target];
          const before = pid === undefined ? 0 : processCpuNs(pid);
          const done = runPairs(paths[target], settings.secondsPerRound, clientCpu);
          if (target !== 'fifo' && pid !== undefined)
            cpu[target] = cpuUsPerPair(processCpuNs(pid) - before, done.pairs);
          measured[target] = done.pairs / done.seconds;
        }
        const pairs = measured as Record<PairsTarget, number>;
        const roundLoad = loadSince(roundMeter);
        rounds.push({
          round: round + 1,
          placement,
          order,
          pairsPerSecond: pairs,
          serverCpuUsPerPair: cpu as Record<ServerTarget, number>,
          load: roundLoad,
        });
        log(
          `tokens: pairs round ${round + 1}/${settings.rounds}, ${PLACEMENT_SHORT[placement]}: ` +
            order.map((t) => `${SHORT[t]} ${Math.round(pairs[t])}`).join(', ') +
            `; other work ${pct(roundLoad.other)}, steal ${pct(roundLoad.steal)}`,
        );
      }
    }
    for (const pid of servers) pin(pid, null, cpuCount);
    const loadPairs = loadSince(pairsMeter);
    const pairsResults = placements.map((placement) => pairsPlacementResult(placement, rounds));

    // Wake-up latency: every variant once per round, in rotating order.
    interface Slot {
      block: number[][];
      poll: number[][];
      load: Load[];
    }
    const samples = new Map<string, Slot>(
      WAKE_VARIANTS.map((v) => [v.id, { block: [], poll: [], load: [] }]),
    );
    const wakeMeter = meter();
    for (let round = 0; round < settings.wakeRounds; round++) {
      for (const variant of rotation(WAKE_VARIANTS, round)) {
        const slot = samples.get(variant.id) as Slot;
        const variantMeter = meter();
        if (variant.loaded) {
          hogs.push(...startHogs(settings.hogs, 120));
          await sleep(300);
        }
        try {
          if (variant.hint !== 'none') applyHint(daemonPid, variant.hint, cpuCount);
          slot.block.push(wakeSamples(paths[variant.target], 'block', settings.wakeSamples));
          slot.poll.push(wakeSamples(paths[variant.target], 'poll', settings.wakeSamples));
        } finally {
          if (variant.hint !== 'none') clearHints(daemonPid, cpuCount);
          await stopHogs(hogs.splice(0));
        }
        slot.load.push(loadSince(variantMeter));
        const last = (xs: number[][]): string => latencyStats(xs.at(-1) ?? []).p99Ms.toFixed(3);
        log(
          `tokens: wake round ${round + 1}/${settings.wakeRounds} ${variant.id}: p99 blocked ${last(slot.block)} ms, poller ${last(slot.poll)} ms; other work ${pct(slot.load.at(-1)?.other ?? 0)}, steal ${pct(slot.load.at(-1)?.steal ?? 0)}`,
        );
      }
    }
    const loadWake = loadSince(wakeMeter);
    const wake: WakeResult[] = WAKE_VARIANTS.map((variant) => {
      const slot = samples.get(variant.id) as Slot;
      const blocked = roundsLatency(slot.block);
      const poller = roundsLatency(slot.poll);
      return {
        ...variant,
        blocked,
        poller,
        blockedVerdict: roundsLatencyVerdict(blocked, BLOCKED_P99_TARGET_MS),
        pollerVerdict: roundsLatencyVerdict(poller, POLLER_P99_TARGET_MS),
        load: {
          other: spread(slot.load.map((l) => l.other)),
          steal: spread(slot.load.map((l) => l.steal)),
        },
        samplesMs: {
          blocked: slot.block.flat().map(round3),
          poller: slot.poll.flat().map(round3),
        },
      };
    });

    log(`tokens: daemon idle after clients (${settings.idleSeconds} s)...`);
    const ticksAfterClients = await idleTicks();

    const verdicts = tokensVerdicts(pairsResults, wake, settings.hogs, {
      ticksBeforeClients,
      ticksAfterClients,
    });

    cleanUp();
    await sleep(300);
    log('tokens: background load after (3 s)...');
    const loadAfter = await backgroundLoad(3);
    return {
      settings,
      machine: {
        cpus: cpuCount,
        loadBefore,
        loadAfter,
        loadAverageBefore,
        loadAverageAfter: loadavg(),
        loadPairs,
        loadWake,
      },
      pairs: pairsResults,
      wake,
      idle: { seconds: settings.idleSeconds, ticksBeforeClients, ticksAfterClients },
      verdicts,
      hintsMeetingBoth: {
        quiet: hintsMeetingBoth(wake, false),
        loaded: hintsMeetingBoth(wake, true),
      },
    };
  } finally {
    cleanUp();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await sleep(300);
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- verdicts ---------------------------------------------------------------

export interface VerdictLine {
  readonly what: string;
  readonly verdict: Verdict;
  readonly detail: string;
}

const f3 = (x: number): string => x.toFixed(3);

/**
 * The daemon's verdicts: the rate from the median of per-round ratios; the
 * wake-up targets from steve without hints (with and without the hogs),
 * each beside the kernel fifo's p99 in the same conditions; idle CPU
 * before and after clients.
 */
export function tokensVerdicts(
  pairs: readonly PairsPlacementResult[],
  wake: readonly WakeResult[],
  hogs: number,
  idle: { ticksBeforeClients: number; ticksAfterClients: number },
): VerdictLine[] {
  const find = (target: 'fifo' | 'steve', loaded: boolean): WakeResult => {
    const found = wake.find((w) => w.target === target && w.loaded === loaded && w.hint === 'none');
    if (found === undefined) throw new Error(`no ${target} wake-up result, loaded ${loaded}`);
    return found;
  };
  const detail = (steve: WakeMeasure, fifo: WakeMeasure): string =>
    `median of per-round p99s: steve ${f3(steve.perRoundP99Ms.median)} ms, kernel fifo ${f3(fifo.perRoundP99Ms.median)} ms; p99 of all samples: steve ${f3(steve.p99Ms)} ms, kernel fifo ${f3(fifo.p99Ms)} ms`;
  const lines: VerdictLine[] = pairs.map(({ placement, steveVsFairC: rate }) => ({
    what: `steve >= ${Math.round(rate.target * 100)}% of the fair C baseline, ${PLACEMENT_SHORT[placement]} (median of per-round ratios)`,
    verdict: rate.verdict,
    detail: `median ${pct(rate.median)}, min–max ${pct(rate.min)}–${pct(rate.max)}, ${rate.roundsMeetingTarget} of ${rate.n} rounds at target`,
  }));
  for (const loaded of [false, true]) {
    const steve = find('steve', loaded);
    const fifo = find('fifo', loaded);
    const load = loaded ? `${hogs} CPU hogs` : 'no added load';
    lines.push(
      {
        what: `blocked-reader wake-up p99 < ${BLOCKED_P99_TARGET_MS} ms, ${load}`,
        verdict: steve.blockedVerdict,
        detail: detail(steve.blocked, fifo.blocked),
      },
      {
        what: `poller wake-up p99 < ${POLLER_P99_TARGET_MS} ms, ${load}`,
        verdict: steve.pollerVerdict,
        detail: detail(steve.poller, fifo.poller),
      },
    );
  }
  lines.push(
    {
      what: 'idle CPU 0 clock ticks, before any client',
      verdict: idle.ticksBeforeClients === 0 ? 'met' : 'MISSED',
      detail: `${idle.ticksBeforeClients} ticks`,
    },
    {
      what: 'idle CPU 0 clock ticks, after all the rounds',
      verdict: idle.ticksAfterClients === 0 ? 'met' : 'MISSED',
      detail: `${idle.ticksAfterClients} ticks`,
    },
  );
  return lines;
}

/** Hints under which steve met both wake-up targets, with the hogs running or not. */
export function hintsMeetingBoth(wake: readonly WakeResult[], loaded: boolean): Hint[] {
  return wake
    .filter(
      (w) =>
        w.target === 'steve' &&
        w.loaded === loaded &&
        w.hint !== 'none' &&
        w.blockedVerdict === 'met' &&
        w.pollerVerdict === 'met',
    )
    .map((w) => w.hint);
}

// ---- the report ------------------------------------------------------------

const ms = (x: number): string => x.toFixed(3);
const load = (xs: readonly number[]): string => xs.map((x) => x.toFixed(2)).join(' / ');
const loadText = (l: Load): string => `${pct(l.other)} / ${pct(l.steal)}`;

function pairsSection(p: PairsPlacementResult): string[] {
  return [
    `#### ${PLACEMENT_LABELS[p.placement]}`,
    '',
    `| round | order | ${PAIRS_TARGETS.map((t) => SHORT[t]).join(' | ')} | steve / fair C | other work / steal |`,
    `|---|---|${PAIRS_TARGETS.map(() => '---:').join('|')}|---:|---:|`,
    ...p.rounds.map(
      (round) =>
        `| ${round.round} | ${round.order.map((t) => SHORT[t]).join(', ')} | ${PAIRS_TARGETS.map((t) => n(round.pairsPerSecond[t])).join(' | ')} | ${pct(round.pairsPerSecond.steve / round.pairsPerSecond.fairC)} | ${loadText(round.load)} |`,
    ),
    '',
    ...perTargetTable(PAIRS_TARGETS, PAIRS_LABELS, p.perTarget, p.serverCpuUsPerPair),
    '',
    verdictSentence('steve / fair C, per round', p.steveVsFairC),
    '',
    `${ratioLine('steve / naive C', p.steveVsNaiveC)}; ${ratioLine('fair C / naive C', p.fairCVsNaiveC)}; ${ratioLine('steve / kernel fifo', p.steveVsFifo)}.`,
    '',
  ];
}

export function tokensMarkdown(r: TokensBenchResult): string {
  const st = r.settings;
  const lines: string[] = [
    `Machine: ${r.machine.cpus} CPUs. Shares of all CPUs kept busy by other work on the machine / stolen by the hypervisor: ${loadText(r.machine.loadBefore)} in the 3 s before the run, ${loadText(r.machine.loadPairs)} during the pairs rounds, ${loadText(r.machine.loadWake)} during the wake-up rounds, ${loadText(r.machine.loadAfter)} in the 3 s after ("other work" is busy time in /proc/stat minus the CPU time of the benchmark's own processes, hogs included). Load average before ${load(r.machine.loadAverageBefore)}, after ${load(r.machine.loadAverageAfter)}.`,
    '',
    `### Acquire+release pairs per second: ${st.rounds} interleaved rounds of ${st.secondsPerRound} s per target and placement (python3 client, one process)`,
    '',
    'Where the client and the server run decides the rate more than the server does, so each round measures every target under each placement, pinned with `taskset`: on one CPU a request hands the CPU to the server and back, and the rate is the server’s own cost per request; on two, every request wakes the other CPU (in a VM an inter-processor interrupt to a halted vCPU), and the rate is that wake-up’s. Unpinned, the scheduler puts the client on either side from one run to the next and the spread says nothing.',
    '',
    ...r.pairs.flatMap((p) => pairsSection(p)),
    `### Wake-up latency (release -> waiter returns), one token, two processes; ${st.wakeRounds} interleaved rounds of ${st.wakeSamples} wake-ups per waiter`,
    '',
    `"${st.hogs} hogs": ${st.hogs} busy-loop processes at the same nice level as the daemon and the clients, started before and killed after each measurement. Hints are applied to every thread of the running daemon from outside and cleared after. "p99 per round": the median (min–max) of the rounds' own p99s, which the verdict is on (as the rate's, a median of per-round figures: a burst of host noise in one round does not decide it); p50, p99 and max of all samples pooled beside it; "other work / steal": medians over this variant's rounds.`,
    '',
    '| target | added load | hint on the daemon | waiter | p99 per round, ms | samples | p50 ms | p99 ms | max ms | other work / steal | target |',
    '|---|---|---|---|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const w of r.wake) {
    const target = w.target === 'fifo' ? 'kernel fifo' : 'steve FUSE';
    const added = w.loaded ? `${st.hogs} hogs` : 'none';
    const row = (waiter: string, m: WakeMeasure, goal: number, verdict: Verdict): string =>
      `| ${target} | ${added} | ${HINT_LABELS[w.hint]} | ${waiter} | **${ms(m.perRoundP99Ms.median)}** (${ms(m.perRoundP99Ms.min)}–${ms(m.perRoundP99Ms.max)}) | ${m.samples} | ${ms(m.p50Ms)} | ${ms(m.p99Ms)} | ${ms(m.maxMs)} | ${pct(w.load.other.median)} / ${pct(w.load.steal.median)} | ${w.target === 'fifo' ? 'reference' : `< ${goal}: ${verdict}`} |`;
    lines.push(row('blocked read', w.blocked, BLOCKED_P99_TARGET_MS, w.blockedVerdict));
    lines.push(row('select + read', w.poller, POLLER_P99_TARGET_MS, w.pollerVerdict));
  }
  lines.push(
    '',
    `Daemon CPU while idle: ${r.idle.ticksBeforeClients} clock ticks in ${r.idle.seconds} s before any client, ${r.idle.ticksAfterClients} in ${r.idle.seconds} s after all the rounds (target 0).`,
    '',
    '### Verdicts',
    '',
    ...r.verdicts.map((v) => `- ${v.what}: **${v.verdict}** (${v.detail})`),
    ...(['quiet', 'loaded'] as const).map((when) => {
      const hints = r.hintsMeetingBoth[when];
      return `- hints on the daemon under which it met both wake-up targets, ${when === 'loaded' ? `${st.hogs} hogs` : 'no added load'}: ${hints.length === 0 ? 'none' : hints.map((h) => HINT_LABELS[h]).join(', ')}`;
    }),
    '',
  );
  return lines.join('\n');
}
