/**
 * The arithmetic behind `pnpm bench tokens`'s verdicts, kept pure so tests
 * can pin it: interleaved rounds in rotating order, medians and spreads of
 * per-round samples, per-round ratios, latency percentiles, and the verdicts
 * drawn from them. Nothing here reads a clock or starts a process.
 */

/** The order of round `round` (0-based): `items` rotated left by `round`. */
export function rotation<T>(items: readonly T[], round: number): T[] {
  const n = items.length;
  if (n === 0) return [];
  const shift = ((round % n) + n) % n;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

function sortedCopy(samples: readonly number[]): number[] {
  if (samples.length === 0) throw new RangeError('no samples');
  for (const x of samples)
    if (!Number.isFinite(x)) throw new RangeError(`not a finite sample: ${x}`);
  return [...samples].sort((a, b) => a - b);
}

/**
 * The q-quantile (0 <= q <= 1) by linear interpolation between the closest
 * ranks (R's type 7, numpy's default): q = 0.5 is the usual median.
 */
export function quantile(samples: readonly number[], q: number): number {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile ${q} is not in [0, 1]`);
  const sorted = sortedCopy(samples);
  const at = q * (sorted.length - 1);
  const below = Math.floor(at);
  const above = Math.ceil(at);
  const lo = sorted[below] as number;
  const hi = sorted[above] as number;
  return lo + (hi - lo) * (at - below);
}

export function median(samples: readonly number[]): number {
  return quantile(samples, 0.5);
}

/** Where a handful of per-round samples lie: median, quartiles, extremes. */
export interface Spread {
  readonly n: number;
  readonly median: number;
  readonly q1: number;
  readonly q3: number;
  readonly min: number;
  readonly max: number;
}

export function spread(samples: readonly number[]): Spread {
  const sorted = sortedCopy(samples);
  return {
    n: sorted.length,
    median: quantile(sorted, 0.5),
    q1: quantile(sorted, 0.25),
    q3: quantile(sorted, 0.75),
    min: sorted[0] as number,
    max: sorted[sorted.length - 1] as number,
  };
}

/**
 * numerator / denominator within each round: both measured minutes apart at
 * most, under the same background load. A round missing either is an error,
 * not a silent gap.
 */
export function perRoundRatios(
  rounds: ReadonlyArray<Readonly<Record<string, number>>>,
  numerator: string,
  denominator: string,
): number[] {
  return rounds.map((round, i) => {
    const num = round[numerator];
    const den = round[denominator];
    if (num === undefined || den === undefined)
      throw new RangeError(`round ${i} lacks ${num === undefined ? numerator : denominator}`);
    if (!(den > 0)) throw new RangeError(`round ${i}: ${denominator} measured ${den}`);
    return num / den;
  });
}

export type Verdict = 'met' | 'MISSED';

export interface RatioSummary extends Spread {
  readonly target: number;
  /** Judged on the median of the per-round ratios, never on one round. */
  readonly verdict: Verdict;
  /** How many rounds reached the target on their own. */
  readonly roundsMeetingTarget: number;
}

/** At least 3 rounds: with fewer, one bad round decides the median. */
export const MIN_ROUNDS_FOR_VERDICT = 3;

/**
 * Per-round ratios judged by `meets` on their median (never on one round),
 * with how many rounds met it on their own.
 */
export function judgeRatios(
  ratios: readonly number[],
  meets: (ratio: number) => boolean,
): Spread & { readonly verdict: Verdict; readonly roundsMeetingTarget: number } {
  if (ratios.length < MIN_ROUNDS_FOR_VERDICT)
    throw new RangeError(
      `a verdict needs at least ${MIN_ROUNDS_FOR_VERDICT} rounds, got ${ratios.length}`,
    );
  const s = spread(ratios);
  return {
    ...s,
    verdict: meets(s.median) ? 'met' : 'MISSED',
    roundsMeetingTarget: ratios.filter(meets).length,
  };
}

export function ratioSummary(ratios: readonly number[], target: number): RatioSummary {
  return { ...judgeRatios(ratios, (r) => r >= target), target };
}

export interface LatencyStats {
  readonly samples: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Nearest-rank percentile of sorted samples: the smallest x with at least p of the samples <= x. */
export function nearestRank(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError('no samples');
  const rank = Math.max(1, Math.ceil(p * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1] as number;
}

export function latencyStats(samplesMs: readonly number[]): LatencyStats {
  const sorted = sortedCopy(samplesMs);
  return {
    samples: sorted.length,
    p50Ms: nearestRank(sorted, 0.5),
    p99Ms: nearestRank(sorted, 0.99),
    maxMs: sorted[sorted.length - 1] as number,
  };
}

/** p99 below the target (strictly: "p99 < 1 ms") in one set of samples. */
export function latencyVerdict(stats: LatencyStats, targetP99Ms: number): Verdict {
  return stats.p99Ms < targetP99Ms ? 'met' : 'MISSED';
}

/** Wake-ups measured in interleaved rounds: all samples together, and each round's own p99. */
export interface RoundsLatency extends LatencyStats {
  readonly perRoundP99Ms: Spread;
}

export function roundsLatency(perRound: ReadonlyArray<readonly number[]>): RoundsLatency {
  return {
    ...latencyStats(perRound.flat()),
    perRoundP99Ms: spread(perRound.map((samples) => latencyStats(samples).p99Ms)),
  };
}

/**
 * The wake-up verdict: the median of the rounds' own p99s below the target,
 * as the rate is judged on the median of per-round ratios. A burst of host
 * noise in one round (a virtual CPU descheduled for milliseconds) moves the
 * pooled p99 of all samples, which is reported beside it, but not this.
 */
export function roundsLatencyVerdict(m: RoundsLatency, targetP99Ms: number): Verdict {
  if (m.perRoundP99Ms.n < MIN_ROUNDS_FOR_VERDICT)
    throw new RangeError(
      `a verdict needs at least ${MIN_ROUNDS_FOR_VERDICT} rounds, got ${m.perRoundP99Ms.n}`,
    );
  return m.perRoundP99Ms.median < targetP99Ms ? 'met' : 'MISSED';
}

/** utime + stime (clock ticks) from the text of /proc/PID/stat; the command may hold spaces and parentheses. */
export function cpuTicksFromStat(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ", field 0 is the state (stat field 3): utime is 14, stime 15.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime))
    throw new RangeError(`cannot read utime/stime from: ${stat}`);
  return utime + stime;
}

/** utime + stime + cutime + cstime (clock ticks): a process and its reaped children. */
export function cpuTicksWithChildrenFromStat(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = [11, 12, 13, 14].map((i) => Number(fields[i]));
  if (ticks.some((t) => !Number.isFinite(t)))
    throw new RangeError(`cannot read the CPU times from: ${stat}`);
  return ticks.reduce((a, b) => a + b, 0);
}

/**
 * Jiffies of /proc/stat's first line, all CPUs together: busy (user, nice,
 * system, irq, softirq; guest time is inside user), steal (the hypervisor
 * ran something else on our virtual CPUs) and the total of all of it plus
 * idle and iowait.
 */
export function cpuJiffies(line: string): { busy: number; steal: number; total: number } {
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] =
    values;
  const busy = user + nice + system + irq + softirq;
  return { busy, steal, total: busy + idle + iowait + steal };
}

/** Busy share (steal not included) of all CPUs between two readings of /proc/stat's first line. */
export function cpuBusyShare(before: string, after: string): number {
  const a = cpuJiffies(before);
  const b = cpuJiffies(after);
  const total = b.total - a.total;
  return total > 0 ? (b.busy - a.busy) / total : 0;
}

/** Steal share of all CPUs: time our virtual CPUs wanted to run and the hypervisor did not let them. */
export function cpuStealShare(before: string, after: string): number {
  const a = cpuJiffies(before);
  const b = cpuJiffies(after);
  const total = b.total - a.total;
  return total > 0 ? (b.steal - a.steal) / total : 0;
}

/**
 * The share of all CPUs that other work on the machine kept busy meanwhile:
 * busy time (steal not included) minus our own processes' CPU time (the
 * same clock ticks), over the capacity of all CPUs. Tick sampling makes it
 * coarse; never below 0.
 */
export function foreignBusyShare(
  cpuBefore: string,
  cpuAfter: string,
  ourTicksBefore: number,
  ourTicksAfter: number,
): number {
  const a = cpuJiffies(cpuBefore);
  const b = cpuJiffies(cpuAfter);
  const total = b.total - a.total;
  if (!(total > 0)) return 0;
  const foreign = b.busy - a.busy - (ourTicksAfter - ourTicksBefore);
  return Math.min(1, Math.max(0, foreign / total));
}

/** CPU time (ns) a thread has run, the first field of /proc/PID/task/TID/schedstat. */
export function schedstatRunNs(text: string): number {
  const match = /^\s*(\d+)\s/.exec(text);
  if (match === null) throw new RangeError(`cannot read schedstat: ${text}`);
  return Number(match[1]);
}

/** Server CPU time per acquire+release pair, in microseconds. */
export function cpuUsPerPair(cpuNs: number, pairs: number): number {
  if (!(pairs > 0)) throw new RangeError(`no pairs measured (${pairs})`);
  return cpuNs / 1000 / pairs;
}
