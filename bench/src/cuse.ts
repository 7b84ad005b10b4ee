/**
 * `pnpm bench cuse`: acquire+release pairs per second through steve's CUSE
 * front (/dev/NAME), beside a fair C CUSE server and a kernel fifo, all in
 * the same qemu guest with the same python3 client. The development hosts
 * have no CUSE, so this boots Debian 12's kernel under TCG with
 * e2e/cuse-vm/run.sh in its bench mode (CUSE_VM_MODE=bench), which runs
 * e2e/cuse-vm/guest-bench.sh inside instead of the checks:
 *
 * - kernel fifo prefilled with one byte: the physical limit;
 * - fair C (bench/native/fair-cuse-server.c): the daemon's strategy
 *   without JavaScript (cuse_lowlevel_new, the /dev/cuse fd non-blocking
 *   under epoll, one reused fuse_buf, no splice), one token: the baseline;
 * - `steve-daemon -j1 --cuse steve-bench`.
 *
 * Before any round, e2e/cuse-vm/bench_semantics.py checks that the three
 * serve the same one-token protocol (the run fails otherwise).
 *
 * Placement: the guest has one vCPU, and the client and every thread of
 * both servers are pinned to it (taskset), so a pair's wake-ups never cross
 * CPUs and the rate measures what the server costs. After a warm-up run of
 * W seconds per target (V8 compiles the daemon's hot path only after some
 * thousands of requests), R interleaved rounds of S seconds per target, the
 * order rotated every round; steve / fair C is a ratio per round, judged on
 * the median (rounds.ts).
 *
 * Absolute rates are those of a virtual machine (under TCG, an emulated CPU)
 * and are not comparable with the host's `pnpm bench tokens`; the ratios
 * are the result.
 */

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cuseCharts } from './charts.js';
import {
  type RatioSummary,
  type Spread,
  MIN_ROUNDS_FOR_VERDICT,
  cpuUsPerPair,
  perRoundRatios,
  ratioSummary,
  spread,
} from './rounds.js';
import { n, pct, perTargetTable, ratioLine, verdictSentence } from './report-text.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '..', '..');
const RUN_SH = join(REPO, 'e2e', 'cuse-vm', 'run.sh');

/** steve / fair C, median of the per-round ratios. */
export const CUSE_RATE_TARGET = 0.9;

export const CUSE_TARGETS = ['fifo', 'fairC', 'steve'] as const;
export type CuseTarget = (typeof CUSE_TARGETS)[number];
export type CuseServer = Exclude<CuseTarget, 'fifo'>;
export const CUSE_SERVERS: readonly CuseServer[] = ['fairC', 'steve'];

export const CUSE_LABELS: Readonly<Record<CuseTarget, string>> = {
  fifo: 'kernel fifo (the physical limit)',
  fairC: 'fair C libfuse3 CUSE server (the daemon’s strategy: epoll, one buffer, no splice)',
  steve: 'steve-daemon CUSE front (`-j1 --cuse`)',
};
export const CUSE_SHORT: Readonly<Record<CuseTarget, string>> = {
  fifo: 'fifo',
  fairC: 'fair C',
  steve: 'steve',
};

export interface CuseSettings {
  /** Interleaved rounds (every target once per round). */
  readonly rounds: number;
  /** Seconds each target gets per round. */
  readonly secondsPerRound: number;
  /** Seconds of the unmeasured warm-up run per target, before round 1. */
  readonly warmupSeconds: number;
}

export const DEFAULT_CUSE_SETTINGS: CuseSettings = {
  rounds: 7,
  secondsPerRound: 2,
  warmupSeconds: 10,
};

/** One target's run in one round, as the guest wrote it. */
export interface GuestMeasure {
  readonly pairs: number;
  readonly seconds: number;
  /** CPU time of every thread of the server during the run (0 for the fifo). */
  readonly serverCpuNs: number;
}

/** e2e/cuse-vm/guest-bench.sh's cuse-bench.json. */
export interface GuestResults {
  readonly kernel: string;
  /** qemu's accelerator: 'kvm' (hardware virtualisation) or 'tcg' (emulated CPU). */
  readonly accel: string;
  readonly vcpus: number;
  readonly pinnedCpu: number;
  /** taskset -a took on both servers (every thread). */
  readonly placementApplied: boolean;
  readonly rounds: number;
  readonly secondsPerRound: number;
  readonly roundsWallSeconds: number;
  /** One unmeasured run per target before round 1 (V8 compiles the daemon's hot path). */
  readonly warmupSeconds?: number;
  readonly warmup?: Readonly<Record<CuseTarget, GuestMeasure>>;
  readonly results: ReadonlyArray<{
    readonly round: number;
    readonly order: readonly CuseTarget[];
    readonly targets: Readonly<Record<CuseTarget, GuestMeasure>>;
  }>;
}

export interface CuseRound {
  readonly round: number;
  readonly order: readonly CuseTarget[];
  readonly pairsPerSecond: Readonly<Record<CuseTarget, number>>;
  /** Server CPU time per pair, µs. */
  readonly serverCpuUsPerPair: Readonly<Record<CuseServer, number>>;
}

export interface CuseBenchResult {
  readonly settings: CuseSettings;
  readonly host: {
    readonly cpus: number;
    readonly loadAverageBefore: readonly number[];
    readonly loadAverageAfter: readonly number[];
    /** run.sh from start to end: boot, daemon start-up, rounds, power-off. */
    readonly vmRunSeconds: number;
  };
  readonly guest: {
    readonly kernel: string;
    readonly accel: string;
    readonly vcpus: number;
    readonly pinnedCpu: number;
    readonly placementApplied: boolean;
    readonly roundsWallSeconds: number;
  };
  /** The guest's check lines ("PASS name (detail)"), the protocol checks among them. */
  readonly checks: readonly string[];
  /** The warm-up run's rates, not part of any verdict. */
  readonly warmupPairsPerSecond?: Readonly<Record<CuseTarget, number>>;
  readonly rounds: readonly CuseRound[];
  readonly perTarget: Readonly<Record<CuseTarget, Spread>>;
  readonly serverCpuUsPerPair: Readonly<Record<CuseServer, Spread>>;
  readonly steveVsFairC: RatioSummary;
  readonly steveVsFifo: Spread;
  readonly fairCVsFifo: Spread;
}

// ---- the guest's JSON ------------------------------------------------------

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function num(where: string, x: unknown, ok: (n: number) => boolean = () => true): number {
  if (typeof x !== 'number' || !Number.isFinite(x) || !ok(x))
    throw new RangeError(`cuse-bench.json: ${where} is ${JSON.stringify(x)}`);
  return x;
}

function measures(
  where: string,
  targets: Record<string, unknown>,
): Record<CuseTarget, GuestMeasure> {
  const out = {} as Record<CuseTarget, GuestMeasure>;
  for (const target of CUSE_TARGETS) {
    const m = targets[target];
    if (!isObject(m)) throw new RangeError(`cuse-bench.json: ${where} has no ${target}`);
    out[target] = {
      pairs: num(`${where}.${target}.pairs`, m.pairs, (n) => n > 0),
      seconds: num(`${where}.${target}.seconds`, m.seconds, (n) => n > 0),
      serverCpuNs: num(`${where}.${target}.serverCpuNs`, m.serverCpuNs, (n) => n >= 0),
    };
  }
  return out;
}

/**
 * Reads and checks guest-bench.sh's raw results: every round has every
 * target once, with positive pairs and seconds; anything else is an error
 * rather than a gap in the report.
 */
export function parseGuestResults(text: string): GuestResults {
  const raw: unknown = JSON.parse(text);
  if (!isObject(raw)) throw new RangeError('cuse-bench.json: not an object');
  if (!Array.isArray(raw.results)) throw new RangeError('cuse-bench.json: no results array');
  const results = raw.results.map((entry: unknown, i) => {
    const where = `results[${i}]`;
    if (!isObject(entry) || !Array.isArray(entry.order) || !isObject(entry.targets))
      throw new RangeError(`cuse-bench.json: ${where} lacks order or targets`);
    const order = entry.order.map((t: unknown) => {
      if (!(CUSE_TARGETS as readonly unknown[]).includes(t))
        throw new RangeError(`cuse-bench.json: ${where}.order names ${JSON.stringify(t)}`);
      return t as CuseTarget;
    });
    if (order.length !== CUSE_TARGETS.length || new Set(order).size !== order.length)
      throw new RangeError(`cuse-bench.json: ${where}.order is ${JSON.stringify(order)}`);
    return {
      round: num(`${where}.round`, entry.round),
      order,
      targets: measures(where, entry.targets),
    };
  });
  const rounds = num('rounds', raw.rounds, (n) => Number.isInteger(n) && n >= 1);
  if (results.length !== rounds)
    throw new RangeError(`cuse-bench.json: ${results.length} results for ${rounds} rounds`);
  if (typeof raw.kernel !== 'string') throw new RangeError('cuse-bench.json: no kernel');
  return {
    kernel: raw.kernel,
    accel: typeof raw.accel === 'string' && raw.accel !== '' ? raw.accel : 'tcg',
    vcpus: num('vcpus', raw.vcpus, (n) => n >= 1),
    pinnedCpu: num('pinnedCpu', raw.pinnedCpu, (n) => n >= 0),
    placementApplied: raw.placementApplied === true,
    rounds,
    secondsPerRound: num('secondsPerRound', raw.secondsPerRound, (n) => n > 0),
    roundsWallSeconds: num('roundsWallSeconds', raw.roundsWallSeconds, (n) => n >= 0),
    ...(isObject(raw.warmup)
      ? {
          warmupSeconds: num('warmupSeconds', raw.warmupSeconds, (n) => n > 0),
          warmup: measures('warmup', raw.warmup),
        }
      : {}),
    results,
  };
}

/** The "PASS …" / "FAIL …" lines of the guest's checks.txt. */
export function checkLines(text: string): string[] {
  return text.split('\n').filter((line) => /^(PASS|FAIL) /.test(line));
}

/** Per-round rates and server CPU per pair from the guest's raw counts. */
export function cuseRounds(guest: GuestResults): CuseRound[] {
  return guest.results.map((r) => {
    const t = r.targets;
    return {
      round: r.round,
      order: r.order,
      pairsPerSecond: {
        fifo: t.fifo.pairs / t.fifo.seconds,
        fairC: t.fairC.pairs / t.fairC.seconds,
        steve: t.steve.pairs / t.steve.seconds,
      },
      serverCpuUsPerPair: {
        fairC: cpuUsPerPair(t.fairC.serverCpuNs, t.fairC.pairs),
        steve: cpuUsPerPair(t.steve.serverCpuNs, t.steve.pairs),
      },
    };
  });
}

/** The result from the guest's numbers: spreads, per-round ratios and the verdict. */
export function cuseSummary(
  guest: GuestResults,
  host: CuseBenchResult['host'],
  checks: readonly string[] = [],
  settings: CuseSettings = {
    rounds: guest.rounds,
    secondsPerRound: guest.secondsPerRound,
    warmupSeconds: guest.warmupSeconds ?? 0,
  },
): CuseBenchResult {
  const rounds = cuseRounds(guest);
  const perRound = rounds.map((r) => r.pairsPerSecond);
  return {
    settings,
    host,
    guest: {
      kernel: guest.kernel,
      accel: guest.accel,
      vcpus: guest.vcpus,
      pinnedCpu: guest.pinnedCpu,
      placementApplied: guest.placementApplied,
      roundsWallSeconds: guest.roundsWallSeconds,
    },
    checks,
    ...(guest.warmup === undefined
      ? {}
      : {
          warmupPairsPerSecond: Object.fromEntries(
            CUSE_TARGETS.map((t) => {
              const m = (guest.warmup as Record<CuseTarget, GuestMeasure>)[t];
              return [t, m.pairs / m.seconds];
            }),
          ) as Record<CuseTarget, number>,
        }),
    rounds,
    perTarget: Object.fromEntries(
      CUSE_TARGETS.map((t) => [t, spread(perRound.map((p) => p[t]))]),
    ) as Record<CuseTarget, Spread>,
    serverCpuUsPerPair: Object.fromEntries(
      CUSE_SERVERS.map((t) => [t, spread(rounds.map((r) => r.serverCpuUsPerPair[t]))]),
    ) as Record<CuseServer, Spread>,
    steveVsFairC: ratioSummary(perRoundRatios(perRound, 'steve', 'fairC'), CUSE_RATE_TARGET),
    steveVsFifo: spread(perRoundRatios(perRound, 'steve', 'fifo')),
    fairCVsFifo: spread(perRoundRatios(perRound, 'fairC', 'fifo')),
  };
}

/** BENCH_CUSE_ROUNDS / BENCH_CUSE_SECONDS / BENCH_CUSE_WARMUP_SECONDS over the defaults, checked. */
export function cuseSettingsFromEnv(env: NodeJS.ProcessEnv): CuseSettings {
  const read = (name: string, fallback: number, ok: (n: number) => boolean, what: string) => {
    const text = env[name];
    if (text === undefined || text === '') return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || !ok(value))
      throw new RangeError(`${name}=${text}: must be ${what}`);
    return value;
  };
  return {
    rounds: read(
      'BENCH_CUSE_ROUNDS',
      DEFAULT_CUSE_SETTINGS.rounds,
      (n) => Number.isInteger(n) && n >= MIN_ROUNDS_FOR_VERDICT,
      `a whole number >= ${MIN_ROUNDS_FOR_VERDICT}`,
    ),
    secondsPerRound: read(
      'BENCH_CUSE_SECONDS',
      DEFAULT_CUSE_SETTINGS.secondsPerRound,
      (n) => n > 0 && n <= 60,
      'a number of seconds in (0, 60]',
    ),
    warmupSeconds: read(
      'BENCH_CUSE_WARMUP_SECONDS',
      DEFAULT_CUSE_SETTINGS.warmupSeconds,
      (n) => n > 0 && n <= 300,
      'a number of seconds in (0, 300]',
    ),
  };
}

// ---- the run ---------------------------------------------------------------

/** Boots the VM in bench mode (run.sh) and reads back what the guest measured. */
export async function runCuseBench(
  settings: CuseSettings = DEFAULT_CUSE_SETTINGS,
  log: (line: string) => void = (line) => console.error(line),
): Promise<CuseBenchResult> {
  if (process.getuid?.() !== 0)
    throw new Error('pnpm bench cuse boots a VM with e2e/cuse-vm/run.sh: run it as root');
  const out = mkdtempSync(join(tmpdir(), 'steve-bench-cuse-'));
  const loadAverageBefore = loadavg();
  const started = performance.now();
  try {
    log(
      `cuse: booting the VM (warm-up ${settings.warmupSeconds} s, ${settings.rounds} rounds of ${settings.secondsPerRound} s per target)...`,
    );
    const { code, tail } = await new Promise<{ code: number | null; tail: string }>(
      (resolve, reject) => {
        const child = spawn('bash', [RUN_SH], {
          env: {
            ...process.env,
            CUSE_VM_MODE: 'bench',
            CUSE_VM_OUT: out,
            CUSE_VM_BENCH_ROUNDS: String(settings.rounds),
            CUSE_VM_BENCH_SECONDS: String(settings.secondsPerRound),
            CUSE_VM_BENCH_WARMUP: String(settings.warmupSeconds),
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let text = '';
        const take = (chunk: Buffer): void => {
          const s = chunk.toString('utf8');
          text = (text + s).slice(-4000);
          for (const line of s.split('\n')) if (line !== '') log(`  ${line}`);
        };
        child.stdout.on('data', take);
        child.stderr.on('data', take);
        child.on('error', reject);
        child.on('close', (status) => resolve({ code: status, tail: text }));
      },
    );
    const json = join(out, 'cuse-bench.json');
    if (code !== 0 || !existsSync(json))
      throw new Error(`e2e/cuse-vm/run.sh (bench mode) failed (exit ${code}):\n${tail}`);
    const guest = parseGuestResults(readFileSync(json, 'utf8'));
    const checksFile = join(out, 'checks.txt');
    const checks = existsSync(checksFile) ? checkLines(readFileSync(checksFile, 'utf8')) : [];
    return cuseSummary(
      guest,
      {
        cpus: cpus().length,
        loadAverageBefore,
        loadAverageAfter: loadavg(),
        vmRunSeconds: Math.round((performance.now() - started) / 100) / 10,
      },
      checks,
      settings,
    );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

// ---- the report ------------------------------------------------------------

const f2 = (x: number): string => x.toFixed(2);

function checksText(checks: readonly string[]): string {
  if (checks.length === 0) return '';
  const passed = checks.filter((line) => line.startsWith('PASS ')).length;
  return `The guest's checks: ${passed} of ${checks.length} passed.`;
}

function accelText(accel: string): string {
  if (accel === 'tcg')
    return 'TCG, an emulated CPU (every instruction translated; system calls and context switches far dearer than on hardware)';
  return accel;
}

export function cuseMarkdown(r: CuseBenchResult): string {
  const st = r.settings;
  const g = r.guest;
  const v = r.steveVsFairC;
  const placement = `${g.vcpus === 1 ? 'one vCPU' : `${g.vcpus} vCPUs`}; the client and every thread of both servers pinned to CPU ${g.pinnedCpu} with taskset${g.placementApplied ? '' : ' (**the pinning of a server failed**)'}`;
  return [
    `Guest: Debian 12's kernel ${g.kernel} under qemu ${accelText(g.accel)}: absolute rates are not comparable with the host's \`pnpm bench tokens\` (which measures the same daemon code through its FUSE front on real CPUs), the ratios are the result. Placement: ${placement}, so a pair's wake-ups never cross CPUs and the rate measures what the server costs. Host: ${r.host.cpus} CPUs, load average ${r.host.loadAverageBefore.map(f2).join(' / ')} before, ${r.host.loadAverageAfter.map(f2).join(' / ')} after; the whole VM run took ${r.host.vmRunSeconds.toFixed(0)} s, the rounds ${g.roundsWallSeconds.toFixed(0)} s of it.`,
    '',
    `Before the rounds, e2e/cuse-vm/bench_semantics.py checked that the three serve the same one-token protocol (blocking read, \`EAGAIN\` for \`O_NONBLOCK\` while the token is out, a blocked read kept and answered by the write that returns the token, a SIGKILLed blocked reader exits, poll wakes on the return); the run fails otherwise. ${checksText(r.checks)}`,
    '',
    `### Acquire+release pairs per second: ${st.rounds} interleaved rounds of ${st.secondsPerRound} s per target (python3 client, one process: read 1 byte, write it back)`,
    '',
    `| round | order | ${CUSE_TARGETS.map((t) => CUSE_SHORT[t]).join(' | ')} | steve / fair C | steve / fifo |`,
    `|---|---|${CUSE_TARGETS.map(() => '---:').join('|')}|---:|---:|`,
    ...r.rounds.map(
      (round) =>
        `| ${round.round} | ${round.order.map((t) => CUSE_SHORT[t]).join(', ')} | ${CUSE_TARGETS.map((t) => n(round.pairsPerSecond[t])).join(' | ')} | ${pct(round.pairsPerSecond.steve / round.pairsPerSecond.fairC)} | ${pct(round.pairsPerSecond.steve / round.pairsPerSecond.fifo)} |`,
    ),
    '',
    ...perTargetTable(CUSE_TARGETS, CUSE_LABELS, r.perTarget, r.serverCpuUsPerPair),
    '',
    `Server CPU per pair, medians: steve ${(r.serverCpuUsPerPair.steve.median / r.serverCpuUsPerPair.fairC.median).toFixed(1)}× the fair C server's.`,
    '',
    verdictSentence('steve / fair C, per round', v),
    '',
    ...(r.warmupPairsPerSecond === undefined
      ? []
      : [
          `Before round 1, one unmeasured warm-up run of ${st.warmupSeconds} s per target (V8 compiles the daemon's hot path on its first requests): ${CUSE_TARGETS.map((t) => `${CUSE_SHORT[t]} ${n((r.warmupPairsPerSecond as Record<CuseTarget, number>)[t])}`).join(', ')} pairs/s.`,
          '',
        ]),
    `The kernel fifo is the physical limit (no server at all): ${ratioLine('steve / fifo', r.steveVsFifo)}; ${ratioLine('fair C / fifo', r.fairCVsFifo)}.`,
    '',
  ].join('\n');
}

/**
 * `pnpm bench cuse` as bench/src/cli.ts runs it: knobs from the environment,
 * the run, and bench/results/cuse.{json,md} and cuse-pairs.svg.
 */
export async function cuseCommand(resultsDir: string): Promise<void> {
  const result = await runCuseBench(cuseSettingsFromEnv(process.env));
  const markdown = cuseMarkdown(result);
  console.log(markdown);
  writeFileSync(join(resultsDir, 'cuse.json'), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(resultsDir, 'cuse.md'), `# pnpm bench cuse\n\n${markdown}`);
  const charts = await cuseCharts(result);
  for (const [file, svg] of charts) writeFileSync(join(resultsDir, file), svg);
  console.log(
    `wrote ${['cuse.json', 'cuse.md', ...charts.keys()].map((f) => join('bench', 'results', f)).join(', ')}`,
  );
}
