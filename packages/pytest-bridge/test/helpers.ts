// Shared by the tests: the real steve-daemon on a FUSE mount in a unique temp
// dir (as e2e does), pytest runs with Debian's python3, generated suites that
// write start/end stamps, and deadlines instead of sleeps.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { envWithoutJobserver, waitFor } from '@steve/test-support';

export const PACKAGE = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = resolve(PACKAGE, '..', '..');
export const PLUGIN_DIR = join(PACKAGE, 'python');
export const CLI = join(PACKAGE, 'bin', 'steve-pytest.js');
export const DAEMON_BIN = join(REPO, 'packages', 'steve-daemon', 'bin', 'steve-daemon.js');
/** Debian's python3, with python3-pytest and python3-pytest-xdist (PATH may hold another one). */
export const PYTHON = '/usr/bin/python3';

export { isAlive, maxConcurrency, waitFor } from '@steve/test-support';

export function tempDir(prefix = 'pytest-bridge-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** The environment without any inherited jobserver, plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  // Keep the source tree clean, and load plugins only when asked (as epytest does).
  return envWithoutJobserver({
    PYTHONDONTWRITEBYTECODE: '1',
    PYTEST_DISABLE_PLUGIN_AUTOLOAD: '1',
    ...extra,
  });
}

export interface SuiteOptions {
  readonly tests?: number;
  readonly seconds?: number;
  /** Names in the stamps file start with this. */
  readonly label?: string;
  /** Extra Python appended to the test module. */
  readonly extra?: string;
}

/**
 * A directory with one generated test module: `tests` tests that each write
 * `start LABEL-N NS`, sleep, and write `end LABEL-N NS` (CLOCK_REALTIME ns,
 * the clock of `date +%s%N`) to `stamps`.
 */
export function writeSleepSuite(dir: string, stamps: string, options: SuiteOptions = {}): string {
  const { tests = 24, seconds = 0.5, label = 'pytest', extra = '' } = options;
  const suite = join(dir, `suite-${label}`);
  mkdirSync(suite, { recursive: true });
  writeFileSync(
    join(suite, `test_sleep_${label.replace(/\W/g, '_')}.py`),
    [
      'import os, time',
      'import pytest',
      '',
      `STAMPS = ${JSON.stringify(stamps)}`,
      '',
      'def stamp(kind, name):',
      '    with open(STAMPS, "a") as f:',
      '        f.write(f"{kind} {name} {time.time_ns()}\\n")',
      '',
      `@pytest.mark.parametrize("n", range(${tests}))`,
      'def test_sleep(n):',
      `    stamp("start", f"${label}-{n}")`,
      `    time.sleep(${seconds})`,
      `    stamp("end", f"${label}-{n}")`,
      '',
      extra,
    ].join('\n'),
  );
  return suite;
}

export interface Run {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>;
}

/** Spawn a command, collecting stdout+stderr. */
export function start(
  command: string,
  args: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; detached?: boolean; stdio3?: number },
): Run {
  const stdio: Array<'ignore' | 'pipe' | number> = ['ignore', 'pipe', 'pipe'];
  if (options.stdio3 !== undefined) stdio.push(options.stdio3);
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    stdio,
    detached: options.detached ?? false,
  });
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (output += c));
  const exited = new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    output: string;
  }>((resolveExit) => child.on('close', (code, signal) => resolveExit({ code, signal, output })));
  return { child, output: () => output, exited };
}

/** Debian's python3 -m pytest with the plugin importable (PYTHONPATH) and xdist loaded. */
export function startPytest(
  args: readonly string[],
  options: { cwd: string; env?: Record<string, string>; detached?: boolean; plugin?: boolean },
): Run {
  const plugin = options.plugin ?? true;
  return start(
    PYTHON,
    [
      '-m',
      'pytest',
      '-p',
      'no:cacheprovider',
      '-p',
      'xdist',
      ...(plugin ? ['-p', 'steve_jobserver'] : []),
      ...args,
    ],
    {
      cwd: options.cwd,
      env: cleanEnv({ PYTHONPATH: PLUGIN_DIR, ...options.env }),
      detached: options.detached,
    },
  );
}

/** The plugin's summary line. */
export function summaryLine(output: string): string {
  return output.split('\n').find((l) => l.startsWith('steve-jobserver:')) ?? '';
}

export interface RunningDaemon {
  readonly dir: string;
  readonly mountDir: string;
  readonly jobserverPath: string;
  readonly controlPath: string;
  readonly process: ChildProcess;
  /** The largest `out N` any `-v` record reported. */
  maxOut(): number;
  /** The FUSE `status` file. */
  status(): string;
  /** Tokens out according to the status file. */
  out(): number;
  stop(): Promise<void>;
}

function isMounted(dir: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[4] === dir);
}

/** The real steve-daemon, FUSE front, `-j jobs`, in a fresh temp dir; stop() always unmounts. */
export async function startDaemon(jobs: number): Promise<RunningDaemon> {
  const dir = tempDir('pytest-bridge-daemon-');
  const mountDir = join(dir, 'mnt');
  const controlPath = join(mountDir, 'control.sock');
  const child = spawn(
    process.execPath,
    [DAEMON_BIN, '--fuse', mountDir, '--control', controlPath, '-v', '-j', String(jobs)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let log = '';
  let maxOut = 0;
  let exitCode: number | null | undefined;
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  let partial = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      log += `${line}\n`;
      const out = /; out (\d+)$/.exec(line);
      if (out) maxOut = Math.max(maxOut, Number(out[1]));
    }
  });
  const exited = new Promise<void>((r) =>
    child.on('exit', (code) => {
      exitCode = code;
      r();
    }),
  );
  const cleanup = (): void => {
    if (isMounted(mountDir)) spawnSync('umount', ['-l', mountDir]);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor('the daemon to say where it serves', () => {
      if (exitCode !== undefined) throw new Error(`steve-daemon exited (${exitCode}): ${log}`);
      return /serving \d+ tokens on \S+/.test(stdout);
    });
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    cleanup();
    throw error;
  }
  const status = (): string => readFileSync(join(mountDir, 'status'), 'utf8');
  return {
    dir,
    mountDir,
    jobserverPath: join(mountDir, 'jobserver'),
    controlPath,
    process: child,
    maxOut: () => maxOut,
    status,
    out: () => Number(/ out (\d+) /.exec(status())?.[1] ?? NaN),
    stop: async () => {
      if (exitCode === undefined) child.kill('SIGTERM');
      const stopped = await Promise.race([
        exited.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), 10_000)),
      ]);
      if (!stopped) {
        child.kill('SIGKILL');
        await exited;
      }
      cleanup();
    },
  };
}
