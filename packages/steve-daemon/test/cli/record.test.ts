import { describe, expect, it } from 'vitest';
import {
  type ProcessFacts,
  type RecordLine,
  RecordFileError,
  buildReport,
  describeProcess,
  formatReport,
  parseRecord,
  shorten,
} from '../../src/cli/record.js';

const header: RecordLine = {
  kind: 'header',
  version: 1,
  startedWallMs: 1000,
  jobs: 4,
  daemonPid: 9,
};

function event(tMs: number, record: Record<string, unknown>): RecordLine {
  return { kind: 'event', type: 'event', atMs: tMs, wallMs: 1000 + tMs, record } as RecordLine;
}
const grant = (t: number, pid: number, client: string, held: number, out: number) =>
  event(t, { type: 'grant', pid, client, held, viaReservation: false, out });
const give = (t: number, pid: number, client: string, held: number, out: number) =>
  event(t, { type: 'return', pid, client, tokens: 1, held, out });

function proc(
  pid: number,
  ancestors: number[],
  label: string,
  pkg: string | null = null,
): RecordLine {
  return { kind: 'process', pid, command: label, ancestors, package: pkg, label };
}

describe('describeProcess', () => {
  const table: Record<number, ProcessFacts> = {
    30: {
      ppid: 20,
      command: 'cc -c a.c',
      environ: new Map([['MAKEFLAGS', ' -j --jobserver-auth=3,4']]),
    },
    20: {
      ppid: 10,
      command: 'make -C sub',
      environ: new Map([['MAKEFLAGS', ' --jobserver-auth=3,4']]),
    },
    10: { ppid: 5, command: '/usr/bin/python3 /usr/lib/stevie.py -- make', environ: new Map() },
    5: { ppid: 1, command: 'bash', environ: null },
  };
  const facts = (pid: number) => table[pid] ?? null;

  it('names the outermost process under a jobserver, and lists the ancestors', () => {
    expect(describeProcess(30, facts)).toEqual({
      pid: 30,
      command: 'cc -c a.c',
      ancestors: [20, 10, 5],
      package: null,
      label: 'make -C sub (pid 20)',
    });
  });

  it("takes a Portage package from the process's or an ancestor's environment", () => {
    table[10] = {
      ...table[10]!,
      environ: new Map([
        ['CATEGORY', 'dev-libs'],
        ['PF', 'foo-1.2-r1'],
      ]),
    };
    expect(describeProcess(30, facts).package).toBe('dev-libs/foo-1.2-r1');
  });

  it('a process gone already is known by its pid', () => {
    expect(describeProcess(77, facts).label).toBe('pid 77');
  });

  it('shortens a command line to a label', () => {
    expect(shorten('/usr/bin/node /opt/steve/bin/stevie.js -- make -C x')).toBe(
      'stevie.js -- make -C x',
    );
    expect(shorten('/usr/bin/make -j4')).toBe('make -j4');
    expect(shorten(`make ${'x'.repeat(100)}`, 10)).toBe(`…${'x'.repeat(9)}`);
  });
});

describe('buildReport', () => {
  it('adds the tokens of one build, wrapper and its make, and integrates them over time', () => {
    const report = buildReport([
      header,
      proc(100, [1], 'stevie -- make (pid 100)'),
      grant(0, 100, 'c1', 1, 1),
      proc(101, [100], 'make (pid 101)'),
      grant(1000, 101, 'c2', 1, 2),
      grant(1000, 101, 'c2', 2, 3),
      proc(200, [5], 'cargo build (pid 200)'),
      grant(1500, 200, 'c3', 1, 4),
      give(2000, 101, 'c2', 1, 3),
      event(2500, { type: 'reclaim', pid: 101, client: 'c2', tokens: 1, reason: 'exit', out: 2 }),
      give(3000, 100, 'c1', 0, 1),
      give(4000, 200, 'c3', 0, 0),
    ]);
    expect(report.jobs).toBe(4);
    expect(report.peakOut).toBe(4);
    expect(report.grants).toBe(4);
    expect(report.durationS).toBe(4);
    const [make, cargo] = report.builds;
    expect(make).toMatchObject({
      build: 'stevie -- make (pid 100)',
      firstTokenS: 0,
      peakTokens: 3,
      grants: 3,
      reclaimed: 1,
    });
    // 1 token 0-1 s, 3 tokens 1-2 s, 2 tokens 2-2.5 s, 1 token 2.5-3 s.
    expect(make!.tokenSeconds).toBeCloseTo(1 + 3 + 1 + 0.5, 9);
    expect(make!.points.map((p) => p.value)).toEqual([0, 1, 2, 3, 2, 1, 0]);
    expect(cargo).toMatchObject({
      build: 'cargo build (pid 200)',
      firstTokenS: 1.5,
      peakTokens: 1,
    });
    expect(cargo!.tokenSeconds).toBeCloseTo(2.5, 9);
    expect(formatReport(report)).toMatch(
      /^2 build\(s\) over 4\.0s: 4 grants, at most 4 of 4 tokens out/,
    );
  });

  it('a build holding tokens when the recording stops holds them to its end', () => {
    const report = buildReport([
      header,
      grant(0, 7, 'c', 1, 1),
      give(500, 8, 'd', 0, 1),
      grant(2000, 9, 'e', 1, 2),
    ]);
    expect(report.builds.find((b) => b.build === 'pid 7')!.tokenSeconds).toBeCloseTo(2, 9);
  });

  it('groups by Portage package first', () => {
    const report = buildReport([
      header,
      proc(10, [1], 'emerge-shim (pid 10)', 'dev-libs/foo-1'),
      proc(11, [10], 'make (pid 11)', 'dev-libs/foo-1'),
      grant(0, 10, 'a', 1, 1),
      grant(10, 11, 'b', 1, 2),
    ]);
    expect(report.builds.map((b) => [b.build, b.peakTokens])).toEqual([['dev-libs/foo-1', 2]]);
  });
});

describe('parseRecord', () => {
  it('names the line that is not a record line', () => {
    expect(() => parseRecord(`${JSON.stringify(header)}\n{"kind":"x"}\n`, 'f')).toThrow(
      new RecordFileError('f:2: not a line of a `stevie record` file'),
    );
    expect(() => parseRecord('oops\n', 'f')).toThrow(/^f:1: not JSON/);
    expect(() => parseRecord(`${JSON.stringify({ ...header, version: 2 })}\n`, 'f')).toThrow(
      'f: written as version 2, this stevie reads version 1',
    );
    expect(() => parseRecord('', 'f')).toThrow(/no header/);
    expect(parseRecord(`${JSON.stringify(header)}\n\n`, 'f')).toEqual([header]);
  });
});
