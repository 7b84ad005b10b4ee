/**
 * Run a set of builds against a pool on a virtual clock and measure what
 * the scheduler benchmark reports.
 */

import { Build, type BuildObserver, type BuildSpec, criticalPathMs } from './build.js';
import { EventLoop } from './loop.js';
import { Machine } from './machine.js';
import { CorePool, type CorePoolFaults, PipePool, type SimPool } from './pools.js';
import type { SchedulerConfig } from 'steve-daemon/core';

export type PoolKind =
  | {
      readonly kind: 'steve';
      readonly config: Partial<SchedulerConfig> & { jobs: number };
      /** Injected faults, for tests that show a check can fail. */
      readonly faults?: CorePoolFaults;
    }
  | { readonly kind: 'pipe'; readonly jobs: number };

export interface SimulationInput {
  readonly builds: readonly BuildSpec[];
  readonly pool: PoolKind;
  /** Simulate memory (and OOMs) on a machine of this size. */
  readonly machine?: { readonly totalMiB: number; readonly baseUsedMiB: number };
}

export interface BuildResult {
  readonly name: string;
  readonly behaviour: string;
  readonly startMs: number;
  readonly firstTokenAfterMs: number | null;
  readonly doneAtMs: number | null;
  readonly grants: number;
}

export interface SimulationResult {
  readonly pool: string;
  readonly jobs: number;
  readonly makespanMs: number;
  readonly lowerBoundMs: number;
  readonly utilisation: number;
  readonly maxOut: number;
  readonly waitP50Ms: number;
  readonly waitP99Ms: number;
  /** Jain's index of token-time between builds while all of them run. */
  readonly jainFairness: number;
  /** Share of grants to polling builds while all builds run. */
  readonly pollerShare: number | null;
  readonly ooms: number;
  readonly lostTokens: number;
  /** The longest a token sat reserved and unread while another client waited (steve only). */
  readonly maxUnreadReservationMs: number | null;
  readonly builds: readonly BuildResult[];
}

interface Interval {
  readonly build: number;
  readonly fromMs: number;
  readonly toMs: number;
  readonly tokens: number;
}

export function simulate(input: SimulationInput): SimulationResult {
  const loop = new EventLoop();
  const machine = input.machine
    ? new Machine(input.machine.totalMiB, input.machine.baseUsedMiB)
    : null;
  const jobs = input.pool.kind === 'steve' ? input.pool.config.jobs : input.pool.jobs;
  const pool: SimPool =
    input.pool.kind === 'steve'
      ? new CorePool(loop, machine, input.pool.config, input.pool.faults)
      : new PipePool(loop, jobs);

  const waits: number[] = [];
  const grantsAt: Array<{ atMs: number; build: number }> = [];
  const intervals: Interval[] = [];
  const lastChange = new Map<number, { atMs: number; tokens: number }>();
  let maxOut = 0;

  const builds: Build[] = [];
  const observer: BuildObserver = {
    tokenGranted(build, waitedMs) {
      if (waitedMs !== null) waits.push(waitedMs);
      grantsAt.push({ atMs: loop.nowMs, build: builds.indexOf(build) });
      maxOut = Math.max(maxOut, pool.out());
    },
    tokensChanged(build) {
      const index = builds.indexOf(build);
      const last = lastChange.get(index);
      if (last)
        intervals.push({ build: index, fromMs: last.atMs, toMs: loop.nowMs, tokens: last.tokens });
      lastChange.set(index, { atMs: loop.nowMs, tokens: build.tokens });
      maxOut = Math.max(maxOut, pool.out());
    },
  };
  input.builds.forEach((spec, index) => {
    builds.push(new Build(spec, 1000 + index, loop, pool, machine, observer));
  });
  loop.run();

  const makespanMs = Math.max(...builds.map((b) => b.doneAtMs ?? loop.nowMs));
  const totalWorkMs = input.builds.reduce(
    (sum, b) =>
      sum + (b.crashAtMs === undefined ? b.jobs.reduce((s, j) => s + j.durationMs, 0) : 0),
    0,
  );
  const firstStart = Math.min(...input.builds.map((b) => b.startMs));
  const lowerBoundMs = Math.max(
    ...input.builds.map((b) =>
      b.crashAtMs === undefined ? b.startMs + criticalPathMs(b.jobs) : 0,
    ),
    firstStart + totalWorkMs / jobs,
  );
  const tokenTimeMs = intervals.reduce((sum, i) => sum + i.tokens * (i.toMs - i.fromMs), 0);

  // The window in which every build runs: from the last start to the first end.
  const windowFrom = Math.max(...builds.map((b) => b.spec.startMs));
  const windowTo = Math.min(...builds.map((b) => b.doneAtMs ?? makespanMs));
  const perBuild = builds.map((_, index) =>
    intervals
      .filter((i) => i.build === index)
      .reduce((sum, i) => {
        const from = Math.max(i.fromMs, windowFrom);
        const to = Math.min(i.toMs, windowTo);
        return to > from ? sum + i.tokens * (to - from) : sum;
      }, 0),
  );
  const sum = perBuild.reduce((a, b) => a + b, 0);
  const sumSquares = perBuild.reduce((a, b) => a + b * b, 0);
  const jainFairness = sumSquares === 0 ? 1 : (sum * sum) / (perBuild.length * sumSquares);

  const pollers = new Set(
    builds.flatMap((b, index) => (b.spec.behaviour === 'poller' ? [index] : [])),
  );
  const windowGrants = grantsAt.filter((g) => g.atMs >= windowFrom && g.atMs <= windowTo);
  const pollerShare =
    pollers.size === 0 || windowGrants.length === 0
      ? null
      : windowGrants.filter((g) => pollers.has(g.build)).length / windowGrants.length;

  waits.sort((a, b) => a - b);
  const quantile = (q: number): number =>
    waits.length === 0
      ? 0
      : (waits[Math.min(waits.length - 1, Math.floor(q * waits.length))] as number);

  return {
    pool: pool.name,
    jobs,
    makespanMs,
    lowerBoundMs,
    utilisation: tokenTimeMs / (jobs * (makespanMs - firstStart)),
    maxOut,
    waitP50Ms: quantile(0.5),
    waitP99Ms: quantile(0.99),
    jainFairness,
    pollerShare,
    ooms: machine?.ooms ?? 0,
    lostTokens: pool.lost(),
    maxUnreadReservationMs: pool.maxUnreadReservationMs?.() ?? null,
    builds: builds.map((b) => ({
      name: b.spec.name,
      behaviour: b.spec.behaviour,
      startMs: b.spec.startMs,
      firstTokenAfterMs: b.firstTokenAtMs === null ? null : b.firstTokenAtMs - b.spec.startMs,
      doneAtMs: b.doneAtMs,
      grants: b.grants,
    })),
  };
}
