// `stevie record FILE` during two real make 4.3 builds sharing a daemon,
// then `stevie report FILE --svg OUT`: tokens held per build over time.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type RunningDaemon,
  STEVIE_BIN,
  exitOf,
  maxConcurrency,
  startDaemon,
  waitFor,
} from './helpers/daemon.js';
import { writeMakefile } from './helpers/workloads.js';
import { envWithoutJobserver } from '@steve/test-support';

let daemon: RunningDaemon | null = null;
const children: ChildProcess[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  await daemon?.stop();
  daemon = null;
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** The environment of a user's shell: no jobserver of the test runner's. */
function shellEnv(control: string): NodeJS.ProcessEnv {
  return envWithoutJobserver({ STEVE_CONTROL: control });
}

function stevie(args: string[], env: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, [STEVIE_BIN, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    env,
  });
}

describe('stevie record and report', () => {
  it('records two builds and reports tokens held per build, as a table and an SVG chart', async () => {
    daemon = await startDaemon(['-j3']);
    const dir = mkdtempSync(join(tmpdir(), 'steve-record-'));
    dirs.push(dir);
    const env = shellEnv(daemon.controlPath);
    const file = join(dir, 'run.jsonl');

    const recorder = spawn(process.execPath, [STEVIE_BIN, 'record', file], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(recorder);
    let recorderOut = '';
    let recorderErr = '';
    recorder.stdout.setEncoding('utf8').on('data', (c: string) => (recorderOut += c));
    recorder.stderr.setEncoding('utf8').on('data', (c: string) => (recorderErr += c));
    await waitFor('the recorder to start', () => recorderErr.includes('recording to'));

    const stamps = join(dir, 'stamps');
    const builds = ['alpha', 'beta'].map((name) => {
      const buildDir = join(dir, name);
      mkdirSync(buildDir);
      writeMakefile(buildDir, 6, 0.3, stamps);
      const child = spawn(process.execPath, [STEVIE_BIN, '--', 'make', '-C', buildDir], {
        env,
        stdio: 'ignore',
      });
      children.push(child);
      return exitOf(child);
    });
    expect(await Promise.all(builds)).toEqual([0, 0]);
    expect(maxConcurrency(readFileSync(stamps, 'utf8'), 'make-')).toBeLessThanOrEqual(3);

    // Every token is back before the recording stops.
    await waitFor('the pool to be idle', () => daemon!.out() === 0);
    recorder.kill('SIGINT');
    expect(await exitOf(recorder)).toBe(0);
    expect(recorderOut).toMatch(
      /^recorded \d+ events of \d+ processes to .*run\.jsonl \(stopped\)$/m,
    );

    const svgPath = join(dir, 'run.svg');
    const report = stevie(['report', file, '--svg', svgPath], env);
    expect(report.stderr).toBe('');
    expect(report.status).toBe(0);
    const rows = report.stdout.split('\n').filter((line) => /^\d+\.\ds /.test(line));
    // One build per `stevie -- make`: stevie's token and its make's are one build.
    expect(rows).toHaveLength(2);
    for (const name of ['alpha', 'beta'])
      expect(rows.filter((row) => row.includes(`-- make -C ${join(dir, name)}`))).toHaveLength(1);
    for (const row of rows) {
      const [, peak, , grants, reclaimed] = row.split(/\s+/);
      // stevie's token, then make's: 6 jobs at most 3 at a time.
      expect(Number(peak)).toBeGreaterThanOrEqual(1);
      expect(Number(peak)).toBeLessThanOrEqual(3);
      expect(Number(grants)).toBeGreaterThanOrEqual(1);
      expect(Number(reclaimed)).toBe(0);
    }
    expect(report.stdout).toMatch(
      /^2 build\(s\) over [\d.]+s: \d+ grants, at most [123] of 3 tokens out/,
    );

    const json = JSON.parse(stevie(['report', file, '--json'], env).stdout) as {
      peakOut: number;
      builds: Array<{ build: string; tokenSeconds: number; peakTokens: number }>;
    };
    expect(json.peakOut).toBeLessThanOrEqual(3);
    // Each build held 5 tokens for 0.3 s at least (make's implicit slot is stevie's token).
    for (const b of json.builds) expect(b.tokenSeconds).toBeGreaterThan(0.3);

    const svg = readFileSync(svgPath, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('jobs 3');
    for (const name of ['alpha', 'beta']) expect(svg).toContain(join(dir, name));
  });

  it('says what is wrong with the file, and replaces none without --force', async () => {
    daemon = await startDaemon(['-j2']);
    const dir = mkdtempSync(join(tmpdir(), 'steve-record-'));
    dirs.push(dir);
    const env = shellEnv(daemon.controlPath);
    const kept = join(dir, 'kept.jsonl');
    writeFileSync(kept, 'precious\n');
    expect(stevie(['record', kept, '--seconds', '1'], env)).toMatchObject({
      status: 2,
      stderr: `stevie: ${kept} exists: name another file, or pass --force to replace it (see stevie --help)\n`,
    });
    expect(readFileSync(kept, 'utf8')).toBe('precious\n');
    expect(stevie(['report', kept], env)).toMatchObject({
      status: 2,
      stderr: `stevie: ${kept}:1: not JSON; is this a file \`stevie record\` wrote? (see stevie --help)\n`,
    });
    expect(stevie(['report', join(dir, 'missing.jsonl')], env)).toMatchObject({
      status: 2,
      stderr: expect.stringMatching(/^stevie: cannot read .*missing\.jsonl: ENOENT/),
    });
    // --seconds ends a recording by itself; --force replaces.
    const timed = stevie(['record', kept, '--force', '--seconds', '0.5'], env);
    expect(timed.status).toBe(0);
    expect(timed.stdout).toMatch(/\(0\.5s passed\)/);
    expect(JSON.parse(readFileSync(kept, 'utf8').split('\n')[0]!)).toMatchObject({
      kind: 'header',
      version: 1,
      jobs: 2,
    });
  });
});
