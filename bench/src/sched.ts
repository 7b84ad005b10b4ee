/**
 * `pnpm bench sched`: the scheduler scenarios on the simulator, each under
 * steve's two grant orders and a plain kernel pipe jobserver, plus the core's
 * raw event rate. Prints Markdown tables and writes JSON + Markdown under
 * bench/results/.
 */

import type { BuildSpec, JobSpec } from './sim/build.js';
import { dagJobs, flatJobs } from './sim/build.js';
import { Random } from './sim/loop.js';
import { type PoolKind, type SimulationResult, simulate } from './sim/simulate.js';
import { type ThroughputResult, measureCoreThroughput } from './throughput.js';

const JOBS = 8;

function pools(jobs: number, extra: Record<string, unknown> = {}): PoolKind[] {
  return [
    { kind: 'steve', config: { jobs, fairness: 'least-held', ...extra } },
    { kind: 'steve', config: { jobs, fairness: 'fifo', ...extra } },
    { kind: 'pipe', jobs },
  ];
}

export interface ScenarioResult {
  readonly id: string;
  readonly title: string;
  readonly target: string;
  readonly rows: ReadonlyArray<SimulationResult & { readonly verdict: string }>;
  readonly note?: string;
}

/** 1. Pollers vs blocking readers, half of each. */
function pollersVsBlockers(): ScenarioResult {
  const random = new Random(1);
  // Each build keeps one token as its implicit slot, so four builds leave
  // four tokens contested on -j8.
  const builds: BuildSpec[] = Array.from({ length: 4 }, (_, i) => ({
    name: `${i % 2 === 0 ? 'make' : 'cargo'}-${i}`,
    behaviour: i % 2 === 0 ? 'poller' : 'blocking',
    startMs: i * 10,
    jobs: flatJobs(random, 300, 1000),
  }));
  const rows = pools(JOBS).map((pool) => {
    const result = simulate({ builds, pool });
    const share = result.pollerShare ?? 0;
    return {
      ...result,
      verdict: pool.kind === 'steve' ? (share >= 0.45 ? 'met' : 'MISSED') : 'reference',
    };
  });
  return {
    id: 'pollers-vs-blockers',
    title: '1. Two polling builds (make-like) against two blocking-reader builds (cargo-like), -j8',
    target: "pollers' share of grants >= 45% with reservations",
    rows,
  };
}

/** 2. A build that starts late while three builds hold every token. */
function lateBuild(): ScenarioResult {
  const random = new Random(2);
  const medianMs = 2000;
  const builds: BuildSpec[] = [
    ...Array.from({ length: 3 }, (_, i) => ({
      name: `old-${i}`,
      behaviour: (i === 1 ? 'poller' : 'blocking') as BuildSpec['behaviour'],
      startMs: 0,
      jobs: flatJobs(random, 200, medianMs),
    })),
    { name: 'late', behaviour: 'poller', startMs: 60_000, jobs: flatJobs(random, 40, medianMs) },
  ];
  const rows = pools(JOBS).map((pool) => {
    const result = simulate({ builds, pool });
    const late =
      result.builds.find((b) => b.name === 'late')?.firstTokenAfterMs ?? Number.POSITIVE_INFINITY;
    const verdict =
      pool.kind === 'steve' && pool.config.fairness === 'least-held'
        ? late <= medianMs
          ? 'met'
          : 'MISSED'
        : 'reference';
    return { ...result, verdict };
  });
  return {
    id: 'late-build',
    title: '2. A build starting at 60 s while three builds hold all of -j8 (median job 2 s)',
    target: "late build's time to first token <= one median job (2 s) with least-held",
    rows,
  };
}

/** 3. Four concurrent builds of mixed clients on -j8. */
function fourBuilds(): ScenarioResult {
  const random = new Random(3);
  const behaviours = ['poller', 'blocking', 'lazy', 'poller'] as const;
  const builds: BuildSpec[] = behaviours.map((behaviour, i) => ({
    name: `${behaviour}-${i}`,
    behaviour,
    startMs: i * 500,
    jobs: dagJobs(random, 250, 1500, 3),
  }));
  const rows = pools(JOBS).map((pool) => {
    const result = simulate({ builds, pool });
    const ok = result.makespanMs <= 1.05 * result.lowerBoundMs && result.maxOut <= JOBS;
    return { ...result, verdict: pool.kind === 'steve' ? (ok ? 'met' : 'MISSED') : 'reference' };
  });
  return {
    id: 'four-builds',
    title: '3. Four concurrent builds (make, cargo, ninja-like, make), DAGs of 250 jobs, -j8',
    target: 'makespan within 5% of max(critical path, work/jobs); max tokens out <= 8',
    rows,
  };
}

/** A webkit-gtk-like build: many small compile jobs and a few needing ~3 GiB each. */
function webkitJobs(random: Random): JobSpec[] {
  const jobs: JobSpec[] = [];
  for (let i = 0; i < 500; i++) {
    const heavy = i % 40 === 17;
    jobs.push({
      durationMs: heavy ? random.between(40_000, 70_000) : random.logNormal(4000, 0.5),
      memMiB: heavy ? random.between(2800, 3100) : random.between(200, 500),
      deps: [],
    });
  }
  return jobs;
}

/** 4. Memory-heavy jobs on a simulated 16 GiB machine. */
function memoryHeavy(): ScenarioResult {
  const machine = { totalMiB: 16 * 1024, baseUsedMiB: 2048 };
  const random = new Random(4);
  const builds: BuildSpec[] = [
    { name: 'webkit-gtk', behaviour: 'poller', startMs: 0, jobs: webkitJobs(random) },
    { name: 'other', behaviour: 'blocking', startMs: 0, jobs: flatJobs(random, 150, 3000, 400) },
  ];
  // Every static -j, no memory limit: which finish without an OOM, and how fast.
  const staticRuns = Array.from({ length: 16 }, (_, i) => i + 1).map((jobs) =>
    simulate({ builds, pool: { kind: 'steve', config: { jobs } }, machine }),
  );
  const safe = staticRuns.filter((r) => r.ooms === 0);
  const best = safe.reduce((a, b) => (b.makespanMs < a.makespanMs ? b : a));
  const limited = simulate({
    builds,
    pool: {
      kind: 'steve',
      config: { jobs: 16, minMemoryAvailableMiB: 3200, limitRecheckMs: 1000 },
    },
    machine,
  });
  const ok = limited.ooms === 0 && limited.makespanMs <= 1.1 * best.makespanMs;
  const worstOom = staticRuns.filter((r) => r.ooms > 0);
  const rows = [
    { ...limited, pool: 'steve -j16 -a 3200', verdict: ok ? 'met' : 'MISSED' },
    { ...best, pool: `best static -j${best.jobs} (hindsight)`, verdict: 'reference' },
    ...worstOom
      .slice(0, 1)
      .map((r) => ({ ...r, pool: `static -j${r.jobs} (first with OOM)`, verdict: 'reference' })),
    { ...staticRuns[15]!, pool: 'static -j16', verdict: 'reference' },
  ];
  return {
    id: 'memory-heavy',
    title: '4. webkit-gtk-like build (12 jobs of ~3 GiB among 500) + another build, 16 GiB machine',
    target: 'with the memory limit: no OOM, makespan within 10% of the best static -j in hindsight',
    rows,
    note: `static -j sweep: ${staticRuns.map((r) => `-j${r.jobs} ${(r.makespanMs / 1000).toFixed(0)} s${r.ooms > 0 ? ` (${r.ooms} OOM)` : ''}`).join(', ')}`,
  };
}

/** The builds of scenario 5: one of them is SIGKILLed at 20 s (pid 1000, the first build). */
export function crashBuilds(): BuildSpec[] {
  const random = new Random(6);
  return [
    {
      name: 'crashes',
      behaviour: 'blocking',
      startMs: 0,
      crashAtMs: 20_000,
      jobs: flatJobs(random, 400, 1000),
    },
    ...Array.from({ length: 3 }, (_, i) => ({
      name: `build-${i}`,
      behaviour: (i === 0 ? 'poller' : 'blocking') as BuildSpec['behaviour'],
      startMs: 0,
      jobs: flatJobs(random, 200, 1000),
    })),
  ];
}

/** 5. A client killed while holding tokens (crash), next to three others. */
function crashedClient(): ScenarioResult {
  const builds = crashBuilds();
  const rows = pools(JOBS).map((pool) => {
    // lostTokens comes from the core's books once every process has exited;
    // a build that never ended would keep its tokens counted as live, so
    // the verdict needs every build to have ended too.
    const result = simulate({ builds, pool });
    const allEnded = result.builds.every((b) => b.doneAtMs !== null);
    const ok = result.lostTokens === 0 && allEnded;
    return { ...result, verdict: pool.kind === 'steve' ? (ok ? 'met' : 'MISSED') : 'reference' };
  });
  return {
    id: 'crash',
    title: '5. One of four builds is SIGKILLed at 20 s holding tokens, -j8',
    target:
      'no token lost, counted from the core after every build has ended (steve reclaims through pidfd; a kernel pipe cannot)',
    rows,
  };
}

/** Scenario 6's sizes, and its two targets. */
export const THROUGHPUT_CLIENTS = [100, 1000, 10_000] as const;
export const MIN_EVENTS_PER_SECOND = 200_000;
/** "Flat": ns/event at 10,000 waiting clients at most this many times that at 100. */
export const MAX_COST_GROWTH = 1.5;
/** Interleaved rounds, each measuring every size once; verdicts take the median. */
const THROUGHPUT_ROUNDS = 5;

export interface ThroughputSummary {
  /** Per size, the round with the median rate. */
  readonly throughput: readonly ThroughputResult[];
  /** Per size, the slowest and fastest round (events/s). */
  readonly rangeEventsPerSecond: ReadonlyArray<{
    readonly clients: number;
    readonly min: number;
    readonly max: number;
  }>;
  /** ns/event at the largest size over ns/event at the smallest, per round (paired). */
  readonly costGrowthPerRound: readonly number[];
  /** Median of `costGrowthPerRound`. */
  readonly costGrowth: number;
  readonly rateVerdict: string;
  readonly flatVerdict: string;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * Scenario 6's verdicts from rounds of measurements (each round holds one
 * result per size, taken back to back): the rate at the largest size is the
 * median over rounds; the growth is the median of each round's own ratio, so
 * a busy moment on the machine slows both sides of a ratio, not one.
 */
export function summariseThroughput(
  rounds: ReadonlyArray<readonly ThroughputResult[]>,
): ThroughputSummary {
  const sizes = [...new Set(rounds.flat().map((t) => t.clients))].sort((a, b) => a - b);
  const smallest = sizes[0];
  const largest = sizes.at(-1);
  if (rounds.length === 0 || smallest === undefined || largest === undefined)
    throw new Error('summariseThroughput: no measurements');
  const rateIn = (round: readonly ThroughputResult[], clients: number): number => {
    const found = round.find((t) => t.clients === clients);
    if (!found) throw new Error(`summariseThroughput: a round has no run with ${clients} clients`);
    return found.eventsPerSecond;
  };
  const throughput = sizes.map((clients) => {
    const runs = rounds
      .map((round) => round.find((t) => t.clients === clients) as ThroughputResult)
      .sort((a, b) => a.eventsPerSecond - b.eventsPerSecond);
    return runs[(runs.length - 1) >> 1] as ThroughputResult;
  });
  const rangeEventsPerSecond = sizes.map((clients) => {
    const rates = rounds.map((round) => rateIn(round, clients));
    return { clients, min: Math.min(...rates), max: Math.max(...rates) };
  });
  // ns/event grows as events/s falls: growth = rate(smallest) / rate(largest).
  const costGrowthPerRound = rounds.map(
    (round) => rateIn(round, smallest) / rateIn(round, largest),
  );
  const costGrowth = median(costGrowthPerRound);
  const rateAtLargest = median(rounds.map((round) => rateIn(round, largest)));
  return {
    throughput,
    rangeEventsPerSecond,
    costGrowthPerRound,
    costGrowth,
    rateVerdict: rateAtLargest >= MIN_EVENTS_PER_SECOND ? 'met' : 'MISSED',
    flatVerdict: costGrowth <= MAX_COST_GROWTH ? 'met' : 'MISSED',
  };
}

export interface SchedBenchResult extends ThroughputSummary {
  readonly scenarios: readonly ScenarioResult[];
  /** Both halves of scenario 6's target: the rate and the flat cost. */
  readonly throughputVerdict: string;
}

/** Most a reservation may sit unread while another client waits (issue target). */
export const MAX_UNREAD_RESERVATION_MS = 50;

/**
 * 7. Pollers that stop reading: recursive make-like builds whose sub-makes
 * are woken (POLLIN, a token reserved) and then do not read because their
 * own job ended meanwhile, against blocking readers, on a small pool.
 */
function pollersThatStopReading(): ScenarioResult {
  const random = new Random(7);
  const builds: BuildSpec[] = Array.from({ length: 4 }, (_, i) => ({
    name: `${i % 2 === 0 ? 'make' : 'cargo'}-${i}`,
    behaviour: i % 2 === 0 ? 'poller' : 'blocking',
    startMs: i * 10,
    jobs: flatJobs(random, 200, 400),
    ...(i % 2 === 0 ? { ignoreEveryNthWakeup: 3 } : {}),
  }));
  const rows = pools(4).map((pool) => {
    const result = simulate({ builds, pool });
    const unread = result.maxUnreadReservationMs ?? 0;
    const share = result.pollerShare ?? 0;
    return {
      ...result,
      verdict:
        pool.kind === 'steve'
          ? unread <= MAX_UNREAD_RESERVATION_MS && share >= 0.3
            ? 'met'
            : 'MISSED'
          : 'reference',
    };
  });
  return {
    id: 'pollers-that-stop-reading',
    title:
      '7. Pollers that ignore every third POLLIN (make sub-makes whose own job ended) against blocking readers, -j4',
    target: `no token reserved and unread for more than ${MAX_UNREAD_RESERVATION_MS} ms while another client waits (column "unread ms"), and the pollers still get a share (>= 30%; they ask for a third fewer tokens)`,
    rows,
  };
}

/** Every simulated scenario (virtual clock: deterministic). */
export function runScenarios(): ScenarioResult[] {
  return [
    pollersVsBlockers(),
    lateBuild(),
    fourBuilds(),
    memoryHeavy(),
    crashedClient(),
    pollersThatStopReading(),
  ];
}

export function runSchedBench(): SchedBenchResult {
  const scenarios = runScenarios();
  // Rounds interleave the sizes (order rotated each round), so that the
  // machine's other load and thermal state fall on every size alike.
  const rounds = Array.from({ length: THROUGHPUT_ROUNDS }, (_, round) => {
    const order = THROUGHPUT_CLIENTS.map(
      (_, i) => THROUGHPUT_CLIENTS[(i + round) % THROUGHPUT_CLIENTS.length] as number,
    );
    return order.map((clients) => measureCoreThroughput(clients));
  });
  const summary = summariseThroughput(rounds);
  return {
    scenarios,
    ...summary,
    throughputVerdict:
      summary.rateVerdict === 'met' && summary.flatVerdict === 'met' ? 'met' : 'MISSED',
  };
}

const seconds = (ms: number | null): string => (ms === null ? '-' : (ms / 1000).toFixed(1));

export function schedMarkdown(result: SchedBenchResult): string {
  const lines: string[] = [];
  for (const scenario of result.scenarios) {
    lines.push(`### ${scenario.title}`, '', `Target: ${scenario.target}.`, '');
    lines.push(
      "| pool | makespan s | lower bound s | ratio | utilisation | max out | p50 wait ms | p99 wait ms | Jain | pollers' share | unread ms | first token s (per build) | OOMs | lost tokens | target |",
      '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    );
    for (const row of scenario.rows) {
      lines.push(
        `| ${row.pool} | ${seconds(row.makespanMs)} | ${seconds(row.lowerBoundMs)} | ${(row.makespanMs / row.lowerBoundMs).toFixed(3)} | ${(row.utilisation * 100).toFixed(1)}% | ${row.maxOut} | ${row.waitP50Ms.toFixed(1)} | ${row.waitP99Ms.toFixed(0)} | ${row.jainFairness.toFixed(3)} | ${row.pollerShare === null ? '-' : `${(row.pollerShare * 100).toFixed(1)}%`} | ${row.maxUnreadReservationMs === null ? '-' : row.maxUnreadReservationMs.toFixed(0)} | ${row.builds.map((b) => seconds(b.firstTokenAfterMs)).join(' / ')} | ${row.ooms} | ${row.lostTokens} | ${row.verdict} |`,
      );
    }
    if (scenario.note) lines.push('', scenario.note);
    lines.push('');
  }
  const largest = THROUGHPUT_CLIENTS.at(-1) as number;
  const smallest = THROUGHPUT_CLIENTS[0];
  const n = (x: number): string => Math.round(x).toLocaleString('en-US');
  const largestRate = result.throughput.find((t) => t.clients === largest)?.eventsPerSecond ?? 0;
  lines.push(
    '### 6. Scale: the core alone, one blocking waiter per client, records on',
    '',
    `Target: >= ${n(MIN_EVENTS_PER_SECOND)} events/s with ${n(largest)} waiting clients, and cost per event flat as clients grow (ns/event at ${n(largest)} clients <= ${MAX_COST_GROWTH}× that at ${n(smallest)}).`,
    '',
    `${THROUGHPUT_ROUNDS} interleaved rounds, each running every size once (600,000 events after a warm-up); the table shows the median round per size and the range over rounds. The harness itself keeps no per-client tables.`,
    '',
    '| clients waiting | events | events/s (median) | ns/event (median) | events/s range over rounds |',
    '|---|---|---|---|---|',
  );
  for (const t of result.throughput) {
    const range = result.rangeEventsPerSecond.find((r) => r.clients === t.clients);
    lines.push(
      `| ${n(t.clients)} | ${n(t.events)} | ${n(t.eventsPerSecond)} | ${(1e9 / t.eventsPerSecond).toFixed(0)} | ${range ? `${n(range.min)} – ${n(range.max)}` : '-'} |`,
    );
  }
  lines.push(
    '',
    `- rate: median ${n(largestRate)} events/s with ${n(largest)} waiting clients (target >= ${n(MIN_EVENTS_PER_SECOND)}): **${result.rateVerdict}**`,
    `- flat: ns/event at ${n(largest)} clients is ${result.costGrowth.toFixed(2)}× that at ${n(smallest)}, median of the rounds' own ratios (${result.costGrowthPerRound.map((g) => g.toFixed(2)).join(', ')}; target <= ${MAX_COST_GROWTH}×): **${result.flatVerdict}**`,
    `- scenario 6 overall: **${result.throughputVerdict}**`,
    '',
    'The queue is O(1) per operation (one FIFO per held-token count, a small heap for the rare out-of-order key); the growth is attributed to memory: with 10,000 waiting clients each waiter lives through ~10,000 events, so the working set outgrows the CPU caches and V8 promotes the waiters out of its young generation.',
  );
  lines.push('');
  return lines.join('\n');
}
