/**
 * SVG charts for the benchmarks and `stevie report`, drawn by Vega-Lite and
 * rendered headless by Vega (no browser, no canvas).
 *
 * Each chart is two steps: a pure `…Spec` function turns our data into a
 * Vega-Lite spec (what the tests look at), and `render` turns a spec into
 * an SVG string. Data travels inline; nothing is fetched.
 */

import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export type { TopLevelSpec } from 'vega-lite';

/** One line of a timeline: a value that holds from each point to the next. */
export interface Series {
  name: string;
  points: ReadonlyArray<{ tMs: number; value: number }>;
}

export interface TimelineOptions {
  title: string;
  yLabel: string;
  xLabel?: string;
  series: readonly Series[];
  /** Draw steps (a value holds until the next point) instead of slopes; default true. */
  step?: boolean;
  /** A horizontal line, e.g. the pool's job count. */
  limit?: { value: number; label: string };
  /** Stack the series (their sum is the top line), e.g. tokens out per build; default false. */
  stacked?: boolean;
}

export interface Bar {
  label: string;
  value: number;
  /** An interval around the value (e.g. the spread over rounds). */
  low?: number;
  high?: number;
}

export interface BarsOptions {
  title: string;
  yLabel: string;
  bars: readonly Bar[];
  /** d3-format of the value written on each bar; default '.3~s' (27.5k), '.3~r' for plain numbers. */
  valueFormat?: string;
}

export interface DistributionOptions {
  title: string;
  xLabel: string;
  groups: ReadonlyArray<{ name: string; valuesMs: readonly number[] }>;
}

const WIDTH_PX = 640;
const HEIGHT_PX = 240;
const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

/** What every chart shares: the schema, its title and its size. */
function frame(title: string): { $schema: string; title: string; width: number; height: number } {
  return { $schema: SCHEMA, title, width: WIDTH_PX, height: HEIGHT_PX };
}

/**
 * Every series at every time any of them changes, each holding its last
 * value (0 before its first point): stacking adds values at equal times,
 * so steps that change at different times must be aligned first.
 */
export function alignSteps(series: readonly Series[]): Series[] {
  const times = [...new Set(series.flatMap((s) => s.points.map((p) => p.tMs)))].sort(
    (a, b) => a - b,
  );
  return series.map((s) => {
    const sorted = [...s.points].sort((a, b) => a.tMs - b.tMs);
    let next = 0;
    let value = 0;
    return {
      name: s.name,
      points: times.map((tMs) => {
        while (next < sorted.length && sorted[next]!.tMs <= tMs) value = sorted[next++]!.value;
        return { tMs, value };
      }),
    };
  });
}

/** A timeline: one line (or stacked area) per series over seconds. */
export function timelineSpec(options: TimelineOptions): TopLevelSpec {
  const series = options.stacked ? alignSteps(options.series) : options.series;
  const values = series.flatMap((s) =>
    s.points.map((p) => ({ series: s.name, seconds: p.tMs / 1000, value: p.value })),
  );
  const interpolate = options.step === false ? 'linear' : 'step-after';
  const x = {
    field: 'seconds',
    type: 'quantitative' as const,
    title: options.xLabel ?? 'seconds',
  };
  const lines = {
    data: { values },
    mark: options.stacked
      ? { type: 'area' as const, interpolate, opacity: 0.85 }
      : { type: 'line' as const, interpolate },
    encoding: {
      x,
      y: {
        field: 'value',
        type: 'quantitative' as const,
        title: options.yLabel,
        ...(options.stacked ? { stack: 'zero' as const } : { stack: null }),
      },
      color: {
        field: 'series',
        type: 'nominal' as const,
        title: null,
        sort: null,
        // Series are named by command lines: below the chart, whole.
        legend: { orient: 'bottom' as const, direction: 'vertical' as const, labelLimit: 0 },
      },
    },
  };
  const layer: object[] = [lines];
  if (options.limit !== undefined) {
    layer.push({
      data: { values: [{ limit: options.limit.value, label: options.limit.label }] },
      layer: [
        {
          mark: { type: 'rule', strokeDash: [6, 4], color: 'black' },
          encoding: { y: { field: 'limit', type: 'quantitative' } },
        },
        {
          mark: { type: 'text', align: 'left', dx: 4, dy: -6, x: 0 },
          encoding: { y: { field: 'limit', type: 'quantitative' }, text: { field: 'label' } },
        },
      ],
    });
  }
  return {
    ...frame(options.title),
    layer,
  } as TopLevelSpec;
}

/** Bars, one per label in the order given, with the interval as a whisker when given. */
export function barsSpec(options: BarsOptions): TopLevelSpec {
  const values = options.bars.map((b) => ({
    label: b.label,
    value: b.value,
    low: b.low ?? b.value,
    high: b.high ?? b.value,
  }));
  const slanted = options.bars.length > 5;
  const x = {
    field: 'label',
    type: 'nominal' as const,
    title: null,
    sort: null,
    axis: slanted ? { labelAngle: -30, labelAlign: 'right' as const } : { labelAngle: 0 },
  };
  return {
    ...frame(options.title),
    data: { values },
    layer: [
      {
        mark: { type: 'bar' },
        encoding: { x, y: { field: 'value', type: 'quantitative', title: options.yLabel } },
      },
      {
        mark: { type: 'rule' },
        encoding: { x, y: { field: 'low', type: 'quantitative' }, y2: { field: 'high' } },
      },
      {
        mark: { type: 'text', dy: -8 },
        encoding: {
          x,
          y: { field: 'high', type: 'quantitative' },
          text: { field: 'value', type: 'quantitative', format: options.valueFormat ?? '.3~s' },
        },
      },
    ],
  } as TopLevelSpec;
}

/** The empirical cumulative distribution of `values`: for each value, the share at or below it. */
export function ecdf(values: readonly number[]): Array<{ value: number; share: number }> {
  const sorted = [...values].sort((a, b) => a - b);
  const points: Array<{ value: number; share: number }> = [];
  sorted.forEach((value, i) => {
    const share = (i + 1) / sorted.length;
    if (points.length > 0 && points[points.length - 1]!.value === value)
      points[points.length - 1]!.share = share;
    else points.push({ value, share });
  });
  return points;
}

/**
 * Distributions as cumulative curves, one per group: how often a wait took
 * at most x. The x scale is symmetric-log, so 0 ms and 100 ms both show.
 */
export function distributionSpec(options: DistributionOptions): TopLevelSpec {
  const values = options.groups.flatMap((g) =>
    ecdf(g.valuesMs).map((p) => ({ group: g.name, ms: p.value, share: p.share })),
  );
  return {
    ...frame(options.title),
    data: { values },
    mark: { type: 'line', interpolate: 'step-after' },
    encoding: {
      x: { field: 'ms', type: 'quantitative', title: options.xLabel, scale: { type: 'symlog' } },
      y: {
        field: 'share',
        type: 'quantitative',
        title: 'share at or below',
        axis: { format: '%' },
        scale: { domain: [0, 1] },
      },
      color: { field: 'group', type: 'nominal', title: null, sort: null },
    },
  } as TopLevelSpec;
}

/** A Vega-Lite spec as an SVG document. */
export async function render(spec: TopLevelSpec): Promise<string> {
  const runtime = vega.parse(compile(spec).spec);
  const view = new vega.View(runtime, { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export const timelineSvg = (options: TimelineOptions): Promise<string> =>
  render(timelineSpec(options));
export const barsSvg = (options: BarsOptions): Promise<string> => render(barsSpec(options));
export const distributionSvg = (options: DistributionOptions): Promise<string> =>
  render(distributionSpec(options));
