/**
 * `stevie record FILE` and `stevie report FILE [--svg OUT]`: the pool's
 * events of a user's own run (an emerge, a few builds) written to a file,
 * and read back as tokens held per build over time.
 *
 * The file is JSON lines: a header (the daemon's jobs when recording
 * began), then the daemon's events as `stevie events --json` prints them,
 * each client process announced once before its first event with the build
 * what is known of it. A build is the Portage package the process works
 * for (`CATEGORY/PF` in its environment); else that of the outermost client
 * above it (`stevie -- make` and its make are one build); else the
 * outermost process above it that runs under a jobserver (MAKEFLAGS names
 * one: the top make, cargo or ninja); else the process itself.
 *
 * `buildReport` is pure: the reading of /proc happens when recording.
 */

import type { ControlEventMessage } from '@steve/protocol';
import { readFileSync } from 'node:fs';

export const RECORD_VERSION = 1;

export interface RecordHeader {
  readonly kind: 'header';
  readonly version: number;
  readonly startedWallMs: number;
  readonly jobs: number;
  readonly daemonPid: number;
}

export interface RecordProcess {
  readonly kind: 'process';
  readonly pid: number;
  readonly command: string;
  /** Its parent, grandparent, … up to (not including) pid 1. */
  readonly ancestors: readonly number[];
  /** `CATEGORY/PF` from its environment or an ancestor's, else null. */
  readonly package: string | null;
  /** The name of the build it starts, if no client above it is one. */
  readonly label: string;
}

export type RecordLine =
  RecordHeader | RecordProcess | ({ readonly kind: 'event' } & ControlEventMessage);

/** What /proc says about one process: its parent, command line and environment. */
export interface ProcessFacts {
  readonly ppid: number;
  readonly command: string;
  /** null when it cannot be read (another user's process, without root). */
  readonly environ: ReadonlyMap<string, string> | null;
}

export function procFacts(pid: number): ProcessFacts | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .filter((w) => w !== '')
      .join(' ');
    let environ: Map<string, string> | null = null;
    try {
      environ = new Map(
        readFileSync(`/proc/${pid}/environ`, 'utf8')
          .split('\0')
          .filter((e) => e.includes('='))
          .map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)] as const),
      );
    } catch {
      // not ours to read
    }
    return { ppid, command, environ };
  } catch {
    return null; // gone already
  }
}

const MAX_ANCESTORS = 64;

/** What is known of client `pid` when it first shows, from it and its ancestors. */
export function describeProcess(
  pid: number,
  facts: (pid: number) => ProcessFacts | null,
): Omit<RecordProcess, 'kind'> {
  const own = facts(pid);
  if (own === null) return { pid, command: '', ancestors: [], package: null, label: `pid ${pid}` };
  let outermost: { pid: number; command: string } = { pid, command: own.command };
  let pkg: string | null = null;
  const ancestors: number[] = [];
  let current: ProcessFacts | null = own;
  let currentPid = pid;
  for (let i = 0; current !== null && i < MAX_ANCESTORS; i++) {
    const env = current.environ;
    const category = env?.get('CATEGORY');
    const pf = env?.get('PF');
    if (pkg === null && category && pf) pkg = `${category}/${pf}`;
    if (/jobserver-(auth|fds)=/.test(env?.get('MAKEFLAGS') ?? ''))
      outermost = { pid: currentPid, command: current.command };
    if (current.ppid <= 1) break;
    currentPid = current.ppid;
    ancestors.push(currentPid);
    current = facts(currentPid);
  }
  return {
    pid,
    command: own.command,
    ancestors,
    package: pkg,
    label: `${shorten(outermost.command)} (pid ${outermost.pid})`,
  };
}

/** The build of every announced process (see the top of this file). */
export function buildsOf(processes: readonly RecordProcess[]): Map<number, string> {
  const byPid = new Map(processes.map((p) => [p.pid, p]));
  const builds = new Map<number, string>();
  for (const p of processes) {
    if (p.package !== null) {
      builds.set(p.pid, p.package);
      continue;
    }
    const outer = [...p.ancestors].reverse().find((a) => byPid.has(a));
    const root = outer === undefined ? p : byPid.get(outer)!;
    builds.set(p.pid, root.package ?? root.label);
  }
  return builds;
}

const INTERPRETERS = /^(node|nodejs|python\d*(\.\d+)?|perl|sh|bash|dash)$/;

/** A command line as a label: no interpreter path, script by its name, the tail kept. */
export function shorten(command: string, width = 72): string {
  const words = command.split(' ').filter((w) => w !== '');
  const base = (w: string): string => w.slice(w.lastIndexOf('/') + 1);
  if (words.length > 1 && INTERPRETERS.test(base(words[0]!))) words.splice(0, 2, base(words[1]!));
  else if (words.length > 0) words[0] = base(words[0]!);
  const text = words.join(' ') || '?';
  return text.length <= width ? text : `…${text.slice(text.length - width + 1)}`;
}

export class RecordFileError extends Error {}

/** The lines of a record file; the error names the line that is not one. */
export function parseRecord(text: string, file: string): RecordLine[] {
  const lines: RecordLine[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new RecordFileError(
        `${file}:${i + 1}: not JSON; is this a file \`stevie record\` wrote?`,
      );
    }
    const kind = (value as { kind?: unknown } | null)?.kind;
    if (kind !== 'header' && kind !== 'process' && kind !== 'event')
      throw new RecordFileError(`${file}:${i + 1}: not a line of a \`stevie record\` file`);
    lines.push(value as RecordLine);
  });
  const header = lines[0];
  if (header?.kind !== 'header')
    throw new RecordFileError(`${file}: no header; is this a file \`stevie record\` wrote?`);
  if (header.version !== RECORD_VERSION)
    throw new RecordFileError(
      `${file}: written as version ${header.version}, this stevie reads version ${RECORD_VERSION}`,
    );
  return lines;
}

export interface BuildSummary {
  readonly build: string;
  /** Seconds from the start of the recording to its first token. */
  readonly firstTokenS: number;
  readonly lastChangeS: number;
  readonly peakTokens: number;
  /** Tokens times seconds held: what the build used of the pool. */
  readonly tokenSeconds: number;
  readonly grants: number;
  readonly reclaimed: number;
  /** Tokens held over time (a step per change), ms from the start. */
  readonly points: ReadonlyArray<{ tMs: number; value: number }>;
}

export interface Report {
  readonly jobs: number;
  readonly durationS: number;
  readonly peakOut: number;
  readonly grants: number;
  readonly builds: readonly BuildSummary[];
  /** Changes of the job count while recording. */
  readonly jobsChanges: ReadonlyArray<{ tMs: number; jobs: number }>;
}

/** Tokens held per build over time, from a record's lines. */
export function buildReport(lines: readonly RecordLine[]): Report {
  const header = lines[0] as RecordHeader;
  const buildOfPid = buildsOf(lines.filter((l): l is RecordProcess => l.kind === 'process'));
  const heldByClient = new Map<string, { build: string; held: number }>();
  interface Acc {
    held: number;
    peak: number;
    firstMs: number | null;
    lastMs: number;
    tokenMs: number;
    grants: number;
    reclaimed: number;
    points: Array<{ tMs: number; value: number }>;
  }
  const builds = new Map<string, Acc>();
  const jobsChanges: Array<{ tMs: number; jobs: number }> = [];
  let peakOut = 0;
  let grants = 0;
  let endMs = 0;
  for (const line of lines) {
    if (line.kind !== 'event') continue;
    const tMs = Math.max(0, line.wallMs - header.startedWallMs);
    endMs = Math.max(endMs, tMs);
    const r = line.record;
    if (r.type === 'config') {
      if (r.changes.jobs !== undefined) jobsChanges.push({ tMs, jobs: r.changes.jobs });
      continue;
    }
    if ('out' in r) peakOut = Math.max(peakOut, r.out);
    if (r.type !== 'grant' && r.type !== 'return' && r.type !== 'reclaim') continue;
    const build = heldByClient.get(r.client)?.build ?? buildOfPid.get(r.pid) ?? `pid ${r.pid}`;
    const held = r.type === 'reclaim' ? 0 : r.held;
    const before = heldByClient.get(r.client)?.held ?? 0;
    heldByClient.set(r.client, { build, held });
    let acc = builds.get(build);
    if (acc === undefined) {
      acc = {
        held: 0,
        peak: 0,
        firstMs: null,
        lastMs: tMs,
        tokenMs: 0,
        grants: 0,
        reclaimed: 0,
        points: [],
      };
      builds.set(build, acc);
      acc.points.push({ tMs, value: 0 });
    }
    acc.tokenMs += acc.held * (tMs - acc.lastMs);
    acc.lastMs = tMs;
    acc.held += held - before;
    acc.peak = Math.max(acc.peak, acc.held);
    if (r.type === 'grant') {
      grants++;
      acc.grants++;
      acc.firstMs ??= tMs;
    }
    if (r.type === 'reclaim') acc.reclaimed += r.tokens;
    acc.points.push({ tMs, value: acc.held });
  }
  const summaries = [...builds].map(([build, acc]) => {
    // A build still holding tokens when the recording stopped holds them to its end.
    const tokenMs = acc.tokenMs + acc.held * (endMs - acc.lastMs);
    return {
      build,
      firstTokenS: (acc.firstMs ?? acc.lastMs) / 1000,
      lastChangeS: acc.lastMs / 1000,
      peakTokens: acc.peak,
      tokenSeconds: tokenMs / 1000,
      grants: acc.grants,
      reclaimed: acc.reclaimed,
      points: acc.held > 0 ? [...acc.points, { tMs: endMs, value: acc.held }] : acc.points,
    };
  });
  summaries.sort((a, b) => a.firstTokenS - b.firstTokenS || a.build.localeCompare(b.build));
  return {
    jobs: header.jobs,
    durationS: endMs / 1000,
    peakOut,
    grants,
    builds: summaries,
    jobsChanges,
  };
}

/** The report as a table. */
export function formatReport(report: Report): string {
  const lines = [
    `${report.builds.length} build(s) over ${report.durationS.toFixed(1)}s: ${report.grants} grants, at most ${report.peakOut} of ${report.jobs} tokens out at once${report.jobsChanges.length ? ` (jobs changed to ${report.jobsChanges.map((c) => c.jobs).join(', ')})` : ''}`,
    '',
    'FIRST   PEAK  TOKEN-S  GRANTS  RECLAIMED  BUILD',
  ];
  for (const b of report.builds) {
    lines.push(
      [
        `${b.firstTokenS.toFixed(1)}s`.padEnd(8),
        String(b.peakTokens).padEnd(6),
        b.tokenSeconds.toFixed(1).padEnd(9),
        String(b.grants).padEnd(8),
        String(b.reclaimed).padEnd(11),
        b.build,
      ].join(''),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** The report as a chart: tokens held per build over time, stacked, with the job count. */
export async function reportSvg(report: Report, title: string): Promise<string> {
  const { timelineSvg } = await import('@steve/charts');
  return timelineSvg({
    title,
    yLabel: 'tokens held',
    series: report.builds.map((b) => ({ name: b.build, points: b.points })),
    stacked: true,
    limit: { value: report.jobs, label: `jobs ${report.jobs}` },
  });
}
