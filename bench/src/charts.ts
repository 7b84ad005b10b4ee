/**
 * The tokens bench's charts, from its result (fresh, or read back from
 * bench/results/tokens.json by `pnpm bench charts`): pairs per second per
 * target, the servers' CPU per pair, wake-up p99 per variant, and the
 * wake-up distributions when the result kept its samples.
 */

import { barsSvg, distributionSvg } from '@steve/charts';
import type { CuseBenchResult } from './cuse.js';
import { PLACEMENT_SHORT, type TokensBenchResult } from './tokens.js';

const TARGET_LABELS: Record<string, string> = {
  fifo: 'kernel fifo',
  naiveC: 'naive C',
  fairC: 'fair C',
  steve: 'steve FUSE',
};

function variantLabel(w: TokensBenchResult['wake'][number]): string {
  const target = w.target === 'fifo' ? 'fifo' : 'steve';
  const hint = w.hint === 'none' ? '' : ` ${w.hint}`;
  return `${target}${hint}${w.loaded ? ' +hogs' : ''}`;
}

/** File name (without directory) to SVG text. */
export async function tokensCharts(result: TokensBenchResult): Promise<Map<string, string>> {
  const charts = new Map<string, string>();
  for (const p of result.pairs) {
    charts.set(
      `tokens-pairs-${p.placement === 'oneCpu' ? 'one-cpu' : 'two-cpus'}.svg`,
      await barsSvg({
        title: `acquire+release pairs per second, ${PLACEMENT_SHORT[p.placement]}: median of ${p.rounds.length} interleaved rounds, whisker q1-q3`,
        yLabel: 'pairs per second',
        bars: Object.entries(p.perTarget)
          .filter(([target]) => target !== 'fifo')
          .map(([target, s]) => ({
            label: TARGET_LABELS[target] ?? target,
            value: s.median,
            low: s.q1,
            high: s.q3,
          })),
      }),
    );
  }
  charts.set(
    'tokens-server-cpu.svg',
    await barsSvg({
      title: 'server CPU per pair (µs): median over rounds, whisker q1-q3',
      yLabel: 'µs per pair',
      valueFormat: '.3~r',
      bars: result.pairs.flatMap((p) =>
        Object.entries(p.serverCpuUsPerPair).map(([target, s]) => ({
          label: `${TARGET_LABELS[target] ?? target}, ${PLACEMENT_SHORT[p.placement]}`,
          value: s.median,
          low: s.q1,
          high: s.q3,
        })),
      ),
    }),
  );
  for (const waiter of ['blocked', 'poller'] as const) {
    charts.set(
      `tokens-wake-${waiter}-p99.svg`,
      await barsSvg({
        title: `wake-up p99 of a ${waiter === 'blocked' ? 'blocked reader' : 'poller'} (ms): median of per-round p99s, whisker min-max`,
        yLabel: 'ms',
        valueFormat: '.2~r',
        bars: result.wake.map((w) => ({
          label: variantLabel(w),
          value: w[waiter].perRoundP99Ms.median,
          low: w[waiter].perRoundP99Ms.min,
          high: w[waiter].perRoundP99Ms.max,
        })),
      }),
    );
  }
  const withSamples = result.wake.filter((w) => w.samplesMs !== undefined && w.hint === 'none');
  if (withSamples.length > 0) {
    charts.set(
      'tokens-wake-distribution.svg',
      await distributionSvg({
        title: 'wake-up latency: share of wake-ups at or below x ms (no hint)',
        xLabel: 'ms (symmetric log scale)',
        groups: withSamples.flatMap((w) => [
          { name: `${variantLabel(w)} blocked`, valuesMs: w.samplesMs!.blocked },
          { name: `${variantLabel(w)} poller`, valuesMs: w.samplesMs!.poller },
        ]),
      }),
    );
  }
  return charts;
}

/**
 * `pnpm bench cuse`'s chart: pairs per second through the two CUSE servers
 * in the VM; the kernel fifo, tens of times faster, is named in the title.
 */
export async function cuseCharts(result: CuseBenchResult): Promise<Map<string, string>> {
  const bar = (label: string, s: CuseBenchResult['perTarget']['steve']) => ({
    label,
    value: s.median,
    low: s.q1,
    high: s.q3,
  });
  const fifo = Math.round(result.perTarget.fifo.median).toLocaleString('en-US');
  return new Map([
    [
      'cuse-pairs.svg',
      await barsSvg({
        title: `CUSE in qemu (${result.guest.accel.toUpperCase()}, client and servers on one CPU), pairs/s: median of ${result.settings.rounds} rounds, whisker q1-q3 (kernel fifo: ${fifo})`,
        yLabel: 'acquire+release pairs per second',
        bars: [
          bar('fair C CUSE', result.perTarget.fairC),
          bar('steve CUSE', result.perTarget.steve),
        ],
      }),
    ],
  ]);
}
