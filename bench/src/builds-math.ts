/**
 * The arithmetic behind `pnpm bench builds`, kept pure so tests can pin it:
 * jobs running at once from the jobs' own start/end stamps, their peak and
 * time-weighted mean, tokens idle while someone waits from a list of pool
 * states, the clock conversion for stamps taken on CLOCK_REALTIME, and the
 * "within x%" verdict on the median of per-round ratios. Nothing here reads
 * a clock, a file or starts a process.
 */

import { MIN_ROUNDS_FOR_VERDICT, type Spread, type Verdict, judgeRatios } from './rounds.js';

/** A job started (+1) or ended (-1) at `tMs` (ms since the run's start), in build `build`. */
export interface JobEdge {
  readonly tMs: number;
  readonly delta: 1 | -1;
  readonly build: string;
}

/** One point of a step function: `value` holds from `tMs` until the next point. */
export interface Step {
  readonly tMs: number;
  readonly value: number;
}

/**
 * Stamp lines `start NAME NS` / `end NAME NS` (NS: CLOCK_MONOTONIC
 * nanoseconds, NAME `BUILD:…`) as edges in ms after `t0Ns`. Other lines
 * (blank, partial) are skipped; the build is NAME up to its first `:`.
 */
export function parseStampLines(text: string, t0Ns: bigint): JobEdge[] {
  const edges: JobEdge[] = [];
  for (const line of text.split('\n')) {
    const match = /^(start|end) (\S+) (\d+)$/.exec(line.trim());
    if (match === null) continue;
    const [, kind, name, ns] = match as unknown as [string, string, string, string];
    const build = name.split(':')[0] as string;
    edges.push({
      tMs: Number(BigInt(ns) - t0Ns) / 1e6,
      delta: kind === 'start' ? 1 : -1,
      build,
    });
  }
  return edges;
}

/**
 * Edges in time order; at equal times an end comes before a start (a job
 * handing its slot to the next is not two jobs at once), as the stamps
 * observer in @steve/test-support orders them.
 */
export function sortEdges(edges: readonly JobEdge[]): JobEdge[] {
  return [...edges].sort((a, b) => a.tMs - b.tMs || a.delta - b.delta);
}

/** Jobs running at once as a step function: one point per distinct time, starting from 0. */
export function concurrencySteps(edges: readonly JobEdge[]): Step[] {
  const steps: Step[] = [];
  let running = 0;
  for (const edge of sortEdges(edges)) {
    running += edge.delta;
    const last = steps[steps.length - 1];
    if (last !== undefined && last.tMs === edge.tMs)
      steps[steps.length - 1] = { ...last, value: running };
    else steps.push({ tMs: edge.tMs, value: running });
  }
  return steps;
}

/** The most jobs running at once. */
export function peakConcurrency(edges: readonly JobEdge[]): number {
  let running = 0;
  let most = 0;
  for (const edge of sortEdges(edges)) {
    running += edge.delta;
    most = Math.max(most, running);
  }
  return most;
}

/**
 * The time-weighted mean of jobs running at once over [fromMs, toMs]: the
 * job-milliseconds inside the window over its length (a job only partly in
 * the window counts for that part).
 */
export function meanConcurrency(edges: readonly JobEdge[], fromMs: number, toMs: number): number {
  if (!(toMs > fromMs)) throw new RangeError(`empty window ${fromMs}..${toMs}`);
  let running = 0;
  let at = fromMs;
  let area = 0;
  for (const edge of sortEdges(edges)) {
    const t = Math.min(Math.max(edge.tMs, fromMs), toMs);
    area += running * (t - at);
    at = t;
    running += edge.delta;
  }
  area += running * (toMs - at);
  return area / (toMs - fromMs);
}

/** Starts minus ends per build: 0 everywhere when every job that started also ended. */
export function unfinishedJobs(edges: readonly JobEdge[]): Record<string, number> {
  const open: Record<string, number> = {};
  for (const edge of edges) open[edge.build] = (open[edge.build] ?? 0) + edge.delta;
  return open;
}

/** The pool at one moment: tokens that could go out now, and requests waiting. */
export interface PoolState {
  readonly tMs: number;
  readonly free: number;
  readonly waiting: number;
}

export interface IdleWhileWaiting {
  /** Time with at least one free token and at least one waiter. */
  readonly ms: number;
  /** Token-milliseconds idle while someone waited: min(free, waiting) over time. */
  readonly tokenMs: number;
}

/**
 * Tokens idle while someone waits, from pool states in time order, each
 * holding until the next (the last until `endMs`). A free token with a
 * waiter is a grant that did not happen: a limit held it back, or the
 * server was slow to hand it over.
 */
export function idleWhileWaiting(states: readonly PoolState[], endMs: number): IdleWhileWaiting {
  let ms = 0;
  let tokenMs = 0;
  for (let i = 0; i < states.length; i++) {
    const state = states[i] as PoolState;
    const next = states[i + 1];
    if (next !== undefined && next.tMs < state.tMs)
      throw new RangeError(`pool states out of order: ${next.tMs} ms after ${state.tMs} ms`);
    const span = Math.min(endMs, next?.tMs ?? endMs) - state.tMs;
    const idle = Math.min(state.free, state.waiting);
    if (span > 0 && idle > 0) {
      ms += span;
      tokenMs += idle * span;
    }
  }
  return { ms, tokenMs };
}

/**
 * A CLOCK_REALTIME stamp on the monotonic clock, from one pair of readings
 * of both clocks taken back to back (`stamp --clocks`). Valid while nobody
 * steps the wall clock in between.
 */
export function realtimeToMonotonicNs(
  realtimeNs: bigint,
  clocks: { readonly realtimeNs: bigint; readonly monotonicNs: bigint },
): bigint {
  return realtimeNs - clocks.realtimeNs + clocks.monotonicNs;
}

/** `start|end NAME NS` lines on CLOCK_REALTIME as the same lines on CLOCK_MONOTONIC, names renamed. */
export function realtimeStampsToMonotonic(
  text: string,
  clocks: { readonly realtimeNs: bigint; readonly monotonicNs: bigint },
  rename: (name: string) => string,
): string {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const match = /^(start|end) (\S+) (\d+)$/.exec(line.trim());
    if (match === null) continue;
    const [, kind, name, ns] = match as unknown as [string, string, string, string];
    out.push(`${kind} ${rename(name)} ${realtimeToMonotonicNs(BigInt(ns), clocks)}`);
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

/** CPU seconds per 1,000 tokens granted. */
export function cpuSecondsPerThousandTokens(cpuSeconds: number, grants: number): number {
  if (!(grants > 0)) throw new RangeError(`no tokens granted (${grants})`);
  return (cpuSeconds / grants) * 1000;
}

/** part / whole, for CPU shares; an error when there is no whole to share. */
export function shareOf(part: number, whole: number): number {
  if (!(whole > 0)) throw new RangeError(`nothing to take a share of (${whole})`);
  return part / whole;
}

export interface WithinSummary extends Spread {
  /** The largest ratio that meets the target (1.02: at most 2% slower). */
  readonly maxRatio: number;
  /** On the median of the per-round ratios, never on one round. */
  readonly verdict: Verdict;
  readonly roundsMeetingTarget: number;
}

/** At least 3 rounds, as for the tokens bench: with fewer, one bad round decides the median. */
export const MIN_ROUNDS_FOR_WITHIN = MIN_ROUNDS_FOR_VERDICT;

/**
 * "No more than x% above": met when the median of the per-round ratios is
 * at most `maxRatio` (being faster is never a miss).
 */
export function withinSummary(ratios: readonly number[], maxRatio: number): WithinSummary {
  return { ...judgeRatios(ratios, (r) => r <= maxRatio), maxRatio };
}

/** Prometheus text exposition as name{labels} -> value (comments skipped). */
export function parsePrometheus(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const space = line.lastIndexOf(' ');
    if (space <= 0) continue;
    const value = Number(line.slice(space + 1));
    if (Number.isFinite(value)) values.set(line.slice(0, space), value);
  }
  return values;
}

/** Largest and mean of sampled values (e.g. the 1-minute load average once a second). */
export function sampledStats(values: readonly number[]): { max: number; mean: number; n: number } {
  if (values.length === 0) throw new RangeError('no samples');
  return {
    max: Math.max(...values),
    mean: values.reduce((a, b) => a + b, 0) / values.length,
    n: values.length,
  };
}
