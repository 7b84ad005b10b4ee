import { describe, expect, it } from 'vitest';
import {
  alignSteps,
  barsSvg,
  distributionSvg,
  ecdf,
  timelineSpec,
  timelineSvg,
} from '../src/index.js';

/** The d attribute of every path that draws a line mark, per legend order. */
function linePaths(svg: string): string[] {
  const group = svg.match(/<g class="mark-line role-mark[^"]*"[^>]*>(.*?)<\/g>/gs) ?? [];
  return group.flatMap((g) => [...g.matchAll(/<path[^>]* d="([^"]+)"/g)].map((m) => m[1]!));
}

describe('ecdf', () => {
  it('gives the share at or below each distinct value', () => {
    expect(ecdf([3, 1, 2, 2])).toEqual([
      { value: 1, share: 0.25 },
      { value: 2, share: 0.75 },
      { value: 3, share: 1 },
    ]);
    expect(ecdf([])).toEqual([]);
  });
});

describe('alignSteps', () => {
  it('gives every series a value at every change, holding the last one', () => {
    const aligned = alignSteps([
      {
        name: 'a',
        points: [
          { tMs: 0, value: 1 },
          { tMs: 20, value: 3 },
        ],
      },
      { name: 'b', points: [{ tMs: 10, value: 2 }] },
    ]);
    expect(aligned).toEqual([
      {
        name: 'a',
        points: [
          { tMs: 0, value: 1 },
          { tMs: 10, value: 1 },
          { tMs: 20, value: 3 },
        ],
      },
      {
        name: 'b',
        points: [
          { tMs: 0, value: 0 },
          { tMs: 10, value: 2 },
          { tMs: 20, value: 2 },
        ],
      },
    ]);
  });
});

describe('timelineSvg', () => {
  const series = [
    {
      name: 'make 4.3',
      points: [
        { tMs: 0, value: 0 },
        { tMs: 1000, value: 3 },
        { tMs: 2500, value: 1 },
      ],
    },
    {
      name: 'cargo',
      points: [
        { tMs: 500, value: 2 },
        { tMs: 3000, value: 0 },
      ],
    },
  ];

  it('draws one line per series, the title, the legend and the limit', async () => {
    const svg = await timelineSvg({
      title: 'tokens out per build',
      yLabel: 'tokens',
      series,
      limit: { value: 4, label: 'jobs 4' },
    });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('tokens out per build');
    expect(svg).toContain('make 4.3');
    expect(svg).toContain('cargo');
    expect(svg).toContain('jobs 4');
    expect(svg).toContain('stroke-dasharray');
    expect(linePaths(svg)).toHaveLength(2);
  });

  it('draws steps: a value holds until the next point', async () => {
    const svg = await timelineSvg({ title: 't', yLabel: 'y', series: [series[0]!] });
    const [d] = linePaths(svg);
    // Three points as steps: a move, then horizontal and vertical segments only.
    const segments = d!.match(/[MLHV]/g) ?? [];
    expect(segments[0]).toBe('M');
    expect(segments.length).toBeGreaterThanOrEqual(5);
    const slopes = await timelineSvg({
      title: 't',
      yLabel: 'y',
      series: [series[0]!],
      step: false,
    });
    expect(linePaths(slopes)[0]).not.toEqual(d);
  });

  it('stacks series when asked', () => {
    const spec = JSON.stringify(timelineSpec({ title: 't', yLabel: 'y', series, stacked: true }));
    expect(spec).toContain('"stack":"zero"');
    expect(JSON.stringify(timelineSpec({ title: 't', yLabel: 'y', series }))).toContain(
      '"stack":null',
    );
  });

  it('renders with no data at all', async () => {
    const svg = await timelineSvg({ title: 'nothing yet', yLabel: 'y', series: [] });
    expect(svg).toContain('nothing yet');
  });
});

describe('barsSvg', () => {
  it('draws one bar per label with its value written on it', async () => {
    const svg = await barsSvg({
      title: 'pairs per second',
      yLabel: 'pairs/s',
      bars: [
        { label: 'kernel fifo', value: 900000 },
        { label: 'fair C', value: 40000, low: 38000, high: 42000 },
        { label: 'steve', value: 27000 },
      ],
    });
    const bars = svg.match(/<g class="mark-rect role-mark[^"]*"[^>]*>(.*?)<\/g>/s)?.[1] ?? '';
    expect(bars.match(/<path/g)).toHaveLength(3);
    for (const text of ['kernel fifo', 'fair C', 'steve', '900k', '40k', '27k'])
      expect(svg).toContain(text);
  });
});

describe('distributionSvg', () => {
  it('draws one cumulative curve per group', async () => {
    const svg = await distributionSvg({
      title: 'wait for a token',
      xLabel: 'ms',
      groups: [
        { name: 'blocked', valuesMs: [0.1, 0.2, 0.2, 5] },
        { name: 'poll', valuesMs: [0, 0.3, 1] },
      ],
    });
    expect(svg).toContain('wait for a token');
    expect(svg).toContain('blocked');
    expect(linePaths(svg)).toHaveLength(2);
  });
});
