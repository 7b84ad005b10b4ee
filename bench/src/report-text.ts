/**
 * Text pieces the pairs-per-second reports share (`pnpm bench tokens` on the
 * host, `pnpm bench cuse` in the VM): number formats, a ratio's spread, the
 * per-target table and the verdict sentence.
 */

import type { RatioSummary, Spread } from './rounds.js';

/** A whole number with thousands separators. */
export const n = (x: number): string => Math.round(x).toLocaleString('en-US');
export const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

export function ratioLine(name: string, s: Spread): string {
  return `${name}: median ${pct(s.median)} (IQR ${pct(s.q1)}–${pct(s.q3)}, min–max ${pct(s.min)}–${pct(s.max)})`;
}

/** The table of each target's pairs/s spread and its server's CPU per pair (none for the fifo). */
export function perTargetTable<T extends string>(
  targets: readonly T[],
  labels: Readonly<Record<T, string>>,
  perTarget: Readonly<Record<T, Spread>>,
  serverCpuUsPerPair: Readonly<Partial<Record<T, Spread>>>,
): string[] {
  return [
    '| target | median pairs/s | IQR | min–max | server CPU per pair, µs (median, min–max) |',
    '|---|---:|---:|---:|---:|',
    ...targets.map((t) => {
      const s = perTarget[t];
      const c = serverCpuUsPerPair[t];
      const cpuText =
        c === undefined ? '—' : `${c.median.toFixed(1)} (${c.min.toFixed(1)}–${c.max.toFixed(1)})`;
      return `| ${labels[t]} | ${n(s.median)} | ${n(s.q1)}–${n(s.q3)} | ${n(s.min)}–${n(s.max)} | ${cpuText} |`;
    }),
  ];
}

/** "steve / fair C, per round: median …; k of n rounds >= T. Target: …: **verdict**." */
export function verdictSentence(name: string, v: RatioSummary): string {
  return `${ratioLine(name, v)}; ${v.roundsMeetingTarget} of ${v.n} rounds >= ${pct(v.target)}. Target: median >= ${pct(v.target)}: **${v.verdict}**.`;
}
