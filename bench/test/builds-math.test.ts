// The arithmetic of `pnpm bench builds`: jobs at once from the builds' own
// stamps, their time-weighted mean, tokens idle while someone waits, the
// clock conversion of cargo's build-script stamps and the "within 2%"
// verdict. Each case is built so that a plausible wrong formula (counting
// a hand-over as two jobs, averaging over events instead of time, summing
// idle time without a waiter, a ratio of medians) gives another number.
import { describe, expect, it } from 'vitest';
import { maxConcurrency } from '@steve/test-support';
import {
  type JobEdge,
  concurrencySteps,
  cpuSecondsPerThousandTokens,
  idleWhileWaiting,
  meanConcurrency,
  parsePrometheus,
  parseStampLines,
  peakConcurrency,
  realtimeStampsToMonotonic,
  realtimeToMonotonicNs,
  sampledStats,
  shareOf,
  unfinishedJobs,
  withinSummary,
} from '../src/builds-math.js';
import { perRoundRatios } from '../src/rounds.js';

const job = (build: string, startMs: number, endMs: number): JobEdge[] => [
  { tMs: startMs, delta: 1, build },
  { tMs: endMs, delta: -1, build },
];

describe('parseStampLines', () => {
  it('reads start/end NAME NS as ms after t0, the build being NAME up to its first colon', () => {
    const t0 = 80_000_000_000_000n;
    const text = [
      'start make43:cc:101 80000001500000',
      'end make43:cc:101 80000002000000',
      'garbage',
      '',
      'start cargo:build-script:crate0 80000000250000',
    ].join('\n');
    expect(parseStampLines(text, t0)).toEqual([
      { tMs: 1.5, delta: 1, build: 'make43' },
      { tMs: 2, delta: -1, build: 'make43' },
      { tMs: 0.25, delta: 1, build: 'cargo' },
    ]);
  });

  it('keeps nanosecond precision past 2^53 ns (a long uptime)', () => {
    const t0 = 9_007_199_254_740_993n; // 2^53 + 1: not a double
    const edges = parseStampLines(`start x:a:1 ${t0 + 3n}`, t0);
    expect(edges[0]?.tMs).toBe(0.000003);
  });
});

describe('jobs running at once', () => {
  // a: 0-10, b: 5-15, c: 10-20 (c starts when a ends), d: 12-13.
  const edges = [...job('a', 0, 10), ...job('b', 5, 15), ...job('c', 10, 20), ...job('b', 12, 13)];

  it('a job handing over its slot at the same instant is not two at once', () => {
    // Counted with the start first, the peak would read 3 at t = 10 ms.
    expect(peakConcurrency(job('x', 0, 10).concat(job('y', 10, 20)))).toBe(1);
    expect(peakConcurrency(edges)).toBe(3); // b, c and d at 12..13
  });

  it('agrees with the stamps observer of @steve/test-support', () => {
    const lines = edges.map(
      (e, i) => `${e.delta > 0 ? 'start' : 'end'} ${e.build}:${i} ${e.tMs * 1e6}`,
    );
    expect(peakConcurrency(edges)).toBe(maxConcurrency(lines));
  });

  it('steps: one point per distinct time, ends before starts at equal times', () => {
    expect(concurrencySteps(edges)).toEqual([
      { tMs: 0, value: 1 },
      { tMs: 5, value: 2 },
      { tMs: 10, value: 2 },
      { tMs: 12, value: 3 },
      { tMs: 13, value: 2 },
      { tMs: 15, value: 1 },
      { tMs: 20, value: 0 },
    ]);
  });

  it('mean: job-time over the window, not the mean of the step values', () => {
    // Job-ms: 10 + 10 + 10 + 1 = 31 over 20 ms = 1.55. The mean of the seven
    // step values would be 11/7 = 1.57; over 25 ms it is 31/25.
    expect(meanConcurrency(edges, 0, 20)).toBeCloseTo(1.55, 12);
    expect(meanConcurrency(edges, 0, 25)).toBeCloseTo(31 / 25, 12);
    // Only the part inside the window counts: 5..15 holds a 5, b 10, c 5, d 1 = 21 job-ms.
    expect(meanConcurrency(edges, 5, 15)).toBeCloseTo(2.1, 12);
    // Order of the input does not matter.
    expect(meanConcurrency([...edges].reverse(), 0, 20)).toBeCloseTo(1.55, 12);
    expect(() => meanConcurrency(edges, 3, 3)).toThrow(RangeError);
  });

  it('unfinished jobs per build', () => {
    expect(unfinishedJobs(edges)).toEqual({ a: 0, b: 0, c: 0 });
    expect(unfinishedJobs([{ tMs: 1, delta: 1, build: 'a' }])).toEqual({ a: 1 });
  });
});

describe('idleWhileWaiting', () => {
  it('counts only time with a free token AND a waiter, weighted by min(free, waiting)', () => {
    const states = [
      { tMs: 0, free: 2, waiting: 0 }, // free, nobody waits: not idle
      { tMs: 100, free: 0, waiting: 3 }, // waiting, nothing free: not idle
      { tMs: 300, free: 2, waiting: 1 }, // 1 token idle for 100 ms
      { tMs: 400, free: 3, waiting: 2 }, // 2 tokens idle for 50 ms
      { tMs: 450, free: 0, waiting: 0 },
    ];
    expect(idleWhileWaiting(states, 1000)).toEqual({ ms: 150, tokenMs: 200 });
  });

  it('the last state holds until the end, and nothing after it', () => {
    expect(idleWhileWaiting([{ tMs: 10, free: 1, waiting: 1 }], 35)).toEqual({
      ms: 25,
      tokenMs: 25,
    });
    expect(
      idleWhileWaiting(
        [
          { tMs: 0, free: 1, waiting: 1 },
          { tMs: 50, free: 1, waiting: 1 },
        ],
        20,
      ),
    ).toEqual({ ms: 20, tokenMs: 20 });
    expect(idleWhileWaiting([], 100)).toEqual({ ms: 0, tokenMs: 0 });
  });

  it('refuses states out of order', () => {
    expect(() =>
      idleWhileWaiting(
        [
          { tMs: 50, free: 1, waiting: 1 },
          { tMs: 10, free: 1, waiting: 1 },
        ],
        100,
      ),
    ).toThrow(RangeError);
  });
});

describe('clocks', () => {
  const clocks = { realtimeNs: 1_796_318_243_821_360_702n, monotonicNs: 80_462_030_484_255n };

  it('moves a realtime stamp by the offset of the two clocks', () => {
    expect(realtimeToMonotonicNs(clocks.realtimeNs + 1_500n, clocks)).toBe(
      clocks.monotonicNs + 1_500n,
    );
    expect(realtimeToMonotonicNs(clocks.realtimeNs - 7n, clocks)).toBe(clocks.monotonicNs - 7n);
  });

  it('rewrites stamp lines with new names', () => {
    const text = `start cargo-crate0 ${clocks.realtimeNs + 10n}\nend cargo-crate0 ${clocks.realtimeNs + 20n}\n`;
    expect(realtimeStampsToMonotonic(text, clocks, (n) => `cargo:build-script:${n.slice(6)}`)).toBe(
      `start cargo:build-script:crate0 ${clocks.monotonicNs + 10n}\nend cargo:build-script:crate0 ${clocks.monotonicNs + 20n}\n`,
    );
    expect(realtimeStampsToMonotonic('', clocks, (n) => n)).toBe('');
  });
});

describe('CPU figures', () => {
  it('CPU seconds per 1,000 tokens and shares', () => {
    expect(cpuSecondsPerThousandTokens(0.5, 250)).toBeCloseTo(2, 12);
    expect(() => cpuSecondsPerThousandTokens(0.5, 0)).toThrow(RangeError);
    expect(shareOf(0.3, 60)).toBeCloseTo(0.005, 12);
    expect(() => shareOf(1, 0)).toThrow(RangeError);
  });

  it('reads Prometheus text', () => {
    const text =
      '# HELP steve_waiters x\n# TYPE steve_waiters gauge\nsteve_waiters 3\nsteve_limited{limit="memory"} 1\nsteve_grants_total 1234\n';
    const values = parsePrometheus(text);
    expect(values.get('steve_waiters')).toBe(3);
    expect(values.get('steve_limited{limit="memory"}')).toBe(1);
    expect(values.get('steve_grants_total')).toBe(1234);
    expect(values.size).toBe(3);
  });

  it('sampled stats', () => {
    expect(sampledStats([1, 3, 2])).toEqual({ max: 3, mean: 2, n: 3 });
    expect(() => sampledStats([])).toThrow(RangeError);
  });
});

describe('withinSummary: makespan of steve within 2% of the kernel fifo', () => {
  it('judges the median of per-round ratios, not the ratio of medians', () => {
    // Per round steve / fifo: 1.01, 1.03, 1.015 (median 1.015: met). The
    // medians of the makespans (20 s and 20.6 s) would give 1.03: missed.
    const rounds = [
      { fifo: 30, steve: 30.3 },
      { fifo: 20, steve: 20.6 },
      { fifo: 10, steve: 10.15 },
    ];
    const ratios = perRoundRatios(rounds, 'steve', 'fifo');
    const s = withinSummary(ratios, 1.02);
    expect(s.median).toBeCloseTo(1.015, 12);
    expect(s.verdict).toBe('met');
    expect(s.roundsMeetingTarget).toBe(2);
    expect(s.min).toBeCloseTo(1.01, 12);
    expect(s.max).toBeCloseTo(1.03, 12);
  });

  it('faster is never a miss; slower than the bound is', () => {
    expect(withinSummary([0.9, 0.95, 0.97], 1.02).verdict).toBe('met');
    expect(withinSummary([1.02, 1.021, 1.05], 1.02).verdict).toBe('MISSED');
    expect(withinSummary([1.0, 1.02, 1.05], 1.02).verdict).toBe('met');
  });

  it('needs at least 3 rounds', () => {
    expect(() => withinSummary([1, 1], 1.02)).toThrow(RangeError);
  });
});
