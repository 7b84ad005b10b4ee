// The arithmetic of `pnpm bench tokens`'s verdicts: a wrong formula here
// (a ratio of medians instead of a median of per-round ratios, a verdict
// from one round, an off-by-one percentile) must fail a test, not ship as
// a number in the README.
import { readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { describe, expect, it } from 'vitest';
import {
  cpuBusyShare,
  cpuStealShare,
  cpuTicksFromStat,
  cpuUsPerPair,
  schedstatRunNs,
  cpuTicksWithChildrenFromStat,
  foreignBusyShare,
  latencyStats,
  latencyVerdict,
  roundsLatency,
  roundsLatencyVerdict,
  median,
  nearestRank,
  perRoundRatios,
  quantile,
  ratioSummary,
  rotation,
  spread,
} from '../src/rounds.js';
import {
  PAIRS_TARGETS,
  type PairsPlacementResult,
  type PairsRound,
  type Placement,
  pairsPlacementResult,
  type TokensBenchResult,
  WAKE_VARIANTS,
  type WakeResult,
  hintsMeetingBoth,
  schedOfStat,
  tokensMarkdown,
  tokensVerdicts,
} from '../src/tokens.js';

describe('rotation', () => {
  it('puts every target in every position once over as many rounds as targets', () => {
    const items = ['a', 'b', 'c', 'd'];
    const orders = items.map((_, round) => rotation(items, round));
    expect(orders[0]).toEqual(items);
    expect(orders[1]).toEqual(['b', 'c', 'd', 'a']);
    for (let position = 0; position < items.length; position++)
      expect(new Set(orders.map((o) => o[position]))).toEqual(new Set(items));
    for (const order of orders) expect([...order].sort()).toEqual(items);
  });

  it('wraps around and does not change its input', () => {
    const items = ['a', 'b', 'c'] as const;
    expect(rotation(items, 3)).toEqual(['a', 'b', 'c']);
    expect(rotation(items, 7)).toEqual(['b', 'c', 'a']);
    expect(rotation(items, -1)).toEqual(['c', 'a', 'b']);
    expect(items).toEqual(['a', 'b', 'c']);
    expect(rotation([], 2)).toEqual([]);
  });
});

describe('quantile, median, spread', () => {
  it('interpolates between ranks (type 7) and ignores input order', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(quantile([1, 2, 3, 4, 5], 0.25)).toBe(2);
    expect(quantile([1, 2, 3, 4], 0.25)).toBeCloseTo(1.75, 12);
    expect(quantile([10, 20], 0.9)).toBeCloseTo(19, 12);
    expect(quantile([7], 0.99)).toBe(7);
    expect(quantile([5, 1, 9], 0)).toBe(1);
    expect(quantile([5, 1, 9], 1)).toBe(9);
  });

  it('refuses no samples, non-finite samples and q outside [0, 1]', () => {
    expect(() => median([])).toThrow(RangeError);
    expect(() => median([1, Number.NaN, 3])).toThrow(RangeError);
    expect(() => median([1, Number.POSITIVE_INFINITY])).toThrow(RangeError);
    expect(() => quantile([1, 2], 1.5)).toThrow(RangeError);
    expect(() => quantile([1, 2], -0.1)).toThrow(RangeError);
  });

  it('spread gives median, quartiles and extremes of the rounds', () => {
    const samples = [70, 10, 50, 30, 60, 20, 40];
    const original = [...samples];
    expect(spread(samples)).toEqual({ n: 7, median: 40, q1: 25, q3: 55, min: 10, max: 70 });
    expect(samples).toEqual(original); // not sorted in place
  });
});

describe('per-round ratios and the rate verdict', () => {
  const rounds = [
    { steve: 10, fairC: 10 },
    { steve: 90, fairC: 100 },
    { steve: 50, fairC: 100 },
  ];

  it('divides within each round, never medians by medians', () => {
    const ratios = perRoundRatios(rounds, 'steve', 'fairC');
    expect(ratios).toEqual([1, 0.9, 0.5]);
    // The median of the ratios (0.9) meets 90%; the ratio of the medians
    // (50 / 100) would not: the verdict must follow the per-round pairing.
    expect(median(rounds.map((r) => r.steve)) / median(rounds.map((r) => r.fairC))).toBe(0.5);
    const summary = ratioSummary(ratios, 0.9);
    expect(summary.median).toBe(0.9);
    expect(summary.verdict).toBe('met');
    expect(summary.roundsMeetingTarget).toBe(2);
    expect([summary.min, summary.max]).toEqual([0.5, 1]);
  });

  it('fails loudly on a missing target or a zero baseline', () => {
    expect(() => perRoundRatios([{ steve: 1 }], 'steve', 'fairC')).toThrow(/lacks fairC/);
    expect(() => perRoundRatios([{ steve: 1, fairC: 0 }], 'steve', 'fairC')).toThrow(RangeError);
  });

  it('judges on the median: one bad or one lucky round does not decide', () => {
    expect(ratioSummary([0.95, 0.95, 0.2], 0.9).verdict).toBe('met');
    expect(ratioSummary([0.5, 0.5, 3], 0.9).verdict).toBe('MISSED');
    expect(ratioSummary([0.89, 0.95, 0.5, 0.91, 0.2], 0.9).verdict).toBe('MISSED');
    expect(ratioSummary([0.9, 0.9, 0.9], 0.9).verdict).toBe('met'); // >= target
    expect(ratioSummary([0.8999, 0.8999, 0.95], 0.9).verdict).toBe('MISSED');
  });

  it('refuses a verdict from fewer than 3 rounds', () => {
    expect(() => ratioSummary([0.95], 0.9)).toThrow(/at least 3 rounds/);
    expect(() => ratioSummary([0.95, 0.97], 0.9)).toThrow(/at least 3 rounds/);
  });
});

describe('latency percentiles', () => {
  const oneTo = (count: number): number[] => Array.from({ length: count }, (_, i) => i + 1);

  it('nearest rank: the smallest sample with at least p of them at or below it', () => {
    expect(nearestRank(oneTo(100), 0.5)).toBe(50);
    expect(nearestRank(oneTo(100), 0.99)).toBe(99);
    expect(nearestRank(oneTo(1000), 0.99)).toBe(990);
    expect(nearestRank(oneTo(900), 0.99)).toBe(891);
    expect(nearestRank([4], 0.99)).toBe(4);
    expect(nearestRank(oneTo(10), 0)).toBe(1);
    expect(() => nearestRank([], 0.5)).toThrow(RangeError);
  });

  it('one slow wake-up in 100 is the max, not the p99; two are the p99', () => {
    const fast = Array.from({ length: 99 }, () => 0.1);
    const one = latencyStats([...fast, 9]);
    expect(one).toEqual({ samples: 100, p50Ms: 0.1, p99Ms: 0.1, maxMs: 9 });
    const two = latencyStats([5, ...fast.slice(1), 9]);
    expect(two.p99Ms).toBe(5);
    expect(latencyVerdict(one, 1)).toBe('met');
    expect(latencyVerdict(two, 1)).toBe('MISSED');
  });

  it('wake-ups in rounds: pooled stats, per-round p99s, verdict on their median', () => {
    const quiet = Array.from({ length: 100 }, () => 0.2);
    const burst = Array.from({ length: 100 }, (_, i) => (i < 10 ? 6 : 0.2));
    const m = roundsLatency([quiet, burst, quiet, quiet, quiet]);
    expect(m.samples).toBe(500);
    expect(m.maxMs).toBe(6);
    // 10 slow samples out of 500: the pooled p99 (rank 495) is slow ...
    expect(m.p99Ms).toBe(6);
    // ... but one noisy round out of five does not decide the verdict.
    expect(m.perRoundP99Ms).toMatchObject({ n: 5, median: 0.2, min: 0.2, max: 6 });
    expect(roundsLatencyVerdict(m, 1)).toBe('met');
    // Three slow rounds of five do.
    expect(roundsLatencyVerdict(roundsLatency([burst, burst, quiet, burst, quiet]), 1)).toBe(
      'MISSED',
    );
    // Strict: a median p99 equal to the target misses.
    const atOne = Array.from({ length: 100 }, () => 1);
    expect(roundsLatencyVerdict(roundsLatency([atOne, atOne, atOne]), 1)).toBe('MISSED');
    expect(() => roundsLatencyVerdict(roundsLatency([quiet, quiet]), 1)).toThrow(
      /at least 3 rounds/,
    );
  });

  it('the latency target is strict: p99 equal to it misses', () => {
    expect(latencyVerdict({ samples: 1, p50Ms: 1, p99Ms: 1, maxMs: 1 }, 1)).toBe('MISSED');
    expect(latencyVerdict({ samples: 1, p50Ms: 1, p99Ms: 0.999, maxMs: 1 }, 1)).toBe('met');
  });
});

describe('/proc parsing', () => {
  it('reads utime + stime past a command holding spaces and parentheses', () => {
    // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
    const stat = '4242 (node (steve) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 7 0 0 20 0 11 0';
    expect(cpuTicksFromStat(stat)).toBe(12);
    expect(() => cpuTicksFromStat('4242 (x) S 1')).toThrow(RangeError);
  });

  it('reads nice and policy of a real thread', () => {
    const s = schedOfStat(readFileSync('/proc/self/stat', 'utf8'));
    expect(s.nice).toBe(getPriority());
    expect(s.policy).toBe(0); // SCHED_OTHER
  });

  it('reads a process and its reaped children', () => {
    const stat = '4242 (a b) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 7 11 13 20 0 11 0';
    expect(cpuTicksWithChildrenFromStat(stat)).toBe(36);
  });

  it('other work is busy time minus ours, over all CPUs, never below 0', () => {
    const before = 'cpu  100 0 50 800 50 0 0 0 0 0';
    const after = 'cpu  160 0 70 900 70 0 0 0 0 0'; // 200 jiffies, 80 busy
    expect(foreignBusyShare(before, after, 1000, 1030)).toBeCloseTo(0.25, 12); // (80 - 30) / 200
    expect(foreignBusyShare(before, after, 1000, 1100)).toBe(0); // ticks are sampled: clamp
    expect(foreignBusyShare(before, before, 0, 0)).toBe(0);
  });

  it('steal is neither busy nor idle: its own share', () => {
    // user nice system idle iowait irq softirq steal
    const before = 'cpu  100 0 50 800 50 0 0 1000 0 0';
    const after = 'cpu  140 0 70 890 70 0 0 1080 0 0'; // +60 busy, +110 idle, +80 steal
    expect(cpuBusyShare(before, after)).toBeCloseTo(0.24, 12);
    expect(cpuStealShare(before, after)).toBeCloseTo(0.32, 12);
    expect(foreignBusyShare(before, after, 0, 50)).toBeCloseTo(0.04, 12);
  });

  it('server CPU per pair from schedstat nanoseconds', () => {
    expect(schedstatRunNs('691669 193000 6\n')).toBe(691669);
    expect(schedstatRunNs(readFileSync('/proc/self/schedstat', 'utf8'))).toBeGreaterThan(0);
    expect(() => schedstatRunNs('')).toThrow(RangeError);
    expect(cpuUsPerPair(2_000_000_000, 40_000)).toBe(50);
    expect(() => cpuUsPerPair(1, 0)).toThrow(RangeError);
  });

  it('busy share of all CPUs from two /proc/stat lines', () => {
    const before = 'cpu  100 0 50 800 50 0 0 0 0 0';
    const after = 'cpu  160 0 70 900 70 0 0 0 0 0'; // +80 busy, +120 idle+iowait
    expect(cpuBusyShare(before, after)).toBeCloseTo(0.4, 12);
    expect(cpuBusyShare(before, before)).toBe(0);
  });
});

describe('the tokens report', () => {
  const pairsRound = (round: number, steve: number, fairC: number): PairsRound => ({
    round,
    placement: 'oneCpu',
    order: rotation(PAIRS_TARGETS, round - 1),
    pairsPerSecond: { fifo: 1_000_000, naiveC: 30_000, fairC, steve },
    serverCpuUsPerPair: { naiveC: 20, fairC: 22, steve: 50 },
    load: { other: 0.25, steal: 0.1 },
  });
  const rounds = [
    pairsRound(1, 20_000, 40_000),
    pairsRound(2, 36_000, 40_000),
    pairsRound(3, 19_000, 20_000),
  ];
  const ratios = perRoundRatios(
    rounds.map((r) => r.pairsPerSecond),
    'steve',
    'fairC',
  );
  const lat = { samples: 3, p50Ms: 0.1, p99Ms: 0.2, maxMs: 0.3, perRoundP99Ms: spread([0.2]) };
  const result: TokensBenchResult = {
    settings: {
      rounds: 3,
      secondsPerRound: 1,
      wakeRounds: 1,
      wakeSamples: 3,
      hogs: 2,
      idleSeconds: 1,
    },
    machine: {
      cpus: 2,
      loadBefore: { other: 0.1, steal: 0 },
      loadAfter: { other: 0.2, steal: 0 },
      loadAverageBefore: [0, 0, 0],
      loadAverageAfter: [0, 0, 0],
      loadPairs: { other: 0.25, steal: 0.1 },
      loadWake: { other: 0.5, steal: 0.1 },
    },
    pairs: [pairsPlacementResult('oneCpu', rounds)],
    wake: WAKE_VARIANTS.map((v) => ({
      ...v,
      blocked: lat,
      poller: lat,
      blockedVerdict: 'met',
      pollerVerdict: 'met',
      load: { other: spread([0.1, 0.3]), steal: spread([0, 0.1]) },
    })),
    idle: { seconds: 1, ticksBeforeClients: 0, ticksAfterClients: 0 },
    verdicts: [],
    hintsMeetingBoth: { quiet: [], loaded: [] },
  };

  it('shows each round’s own ratio and the median verdict', () => {
    expect(ratios).toEqual([0.5, 0.9, 0.95]);
    const md = tokensMarkdown(result);
    expect(md).toContain('| 50.0% |');
    expect(md).toContain('| 90.0% |');
    expect(md).toContain('| 95.0% |');
    expect(md).toMatch(/median 90\.0% .*2 of 3 rounds >= 90\.0%.*\*\*met\*\*/);
    for (const variant of WAKE_VARIANTS) expect(variant.id).toBeTruthy();
    expect(md.split('\n').filter((l) => l.startsWith('| steve FUSE')).length).toBe(
      2 * WAKE_VARIANTS.filter((v) => v.target === 'steve').length,
    );
  });
});

describe('the tokens verdicts', () => {
  const measure = (p99Ms: number) => ({
    samples: 100,
    p50Ms: p99Ms / 4,
    p99Ms,
    maxMs: p99Ms * 2,
    perRoundP99Ms: spread([p99Ms]),
  });
  const load = { other: spread([0]), steal: spread([0]) };
  // Only steve without hints decides; the fifo is the reference beside it.
  const p99: Record<string, [number, number]> = {
    fifo: [1.4, 1.6],
    steve: [0.9, 1.9],
    'steve-nice': [0.5, 0.5],
    'steve-rr': [0.4, 0.4],
    'fifo-loaded': [0.05, 0.06],
    'steve-loaded': [1.2, 2.8],
    'steve-loaded-nice': [0.3, 2.1],
    'steve-loaded-taskset': [0.8, 4.4],
    'steve-loaded-fifo': [0.4, 0.3],
    'steve-loaded-rr': [0.2, 0.3],
  };
  const wake: WakeResult[] = WAKE_VARIANTS.map((v) => {
    const [blocked, poller] = p99[v.id] ?? [Number.NaN, Number.NaN];
    return {
      ...v,
      blocked: measure(blocked),
      poller: measure(poller),
      blockedVerdict: blocked < 1 ? 'met' : 'MISSED',
      pollerVerdict: poller < 2 ? 'met' : 'MISSED',
      load,
    };
  });
  const placement = (where: Placement, ratios: number[]): PairsPlacementResult =>
    pairsPlacementResult(
      where,
      ratios.map((ratio, i) => ({
        round: i + 1,
        placement: where,
        order: PAIRS_TARGETS,
        pairsPerSecond: { fifo: 1e6, naiveC: 1000, fairC: 1000, steve: ratio * 1000 },
        serverCpuUsPerPair: { naiveC: 1, fairC: 1, steve: 2 },
        load: { other: 0, steal: 0 },
      })),
    );
  const pairs = [placement('oneCpu', [0.7, 0.72, 0.6]), placement('twoCpus', [0.95, 0.88, 0.93])];
  const lines = tokensVerdicts(pairs, wake, 2, { ticksBeforeClients: 0, ticksAfterClients: 3 });
  const verdictOf = (prefix: string): string =>
    lines.find((l) => l.what.startsWith(prefix))?.verdict ?? 'absent';

  it('judges steve without hints, quiet and loaded, beside the fifo', () => {
    // Each placement is judged on its own rounds.
    expect(verdictOf('steve >= 90% of the fair C baseline, one CPU')).toBe('MISSED');
    expect(verdictOf('steve >= 90% of the fair C baseline, two CPUs')).toBe('met');
    expect(pairs[1]?.steveVsFairC.median).toBeCloseTo(0.93, 12);
    expect(verdictOf('blocked-reader wake-up p99 < 1 ms, no added load')).toBe('met');
    expect(verdictOf('poller wake-up p99 < 2 ms, no added load')).toBe('met');
    expect(verdictOf('blocked-reader wake-up p99 < 1 ms, 2 CPU hogs')).toBe('MISSED');
    expect(verdictOf('poller wake-up p99 < 2 ms, 2 CPU hogs')).toBe('MISSED');
    expect(lines.find((l) => l.what.includes('1 ms, 2 CPU hogs'))?.detail).toBe(
      'median of per-round p99s: steve 1.200 ms, kernel fifo 0.050 ms; ' +
        'p99 of all samples: steve 1.200 ms, kernel fifo 0.050 ms',
    );
  });

  it('idle CPU counts before and after clients separately', () => {
    expect(verdictOf('idle CPU 0 clock ticks, before')).toBe('met');
    expect(verdictOf('idle CPU 0 clock ticks, after')).toBe('MISSED');
  });

  it('names only the hints that met both targets under load', () => {
    expect(hintsMeetingBoth(wake, true)).toEqual(['fifo', 'rr']);
    expect(hintsMeetingBoth(wake, false)).toEqual(['nice', 'rr']);
  });
});
