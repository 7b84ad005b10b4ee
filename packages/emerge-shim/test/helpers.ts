// Shared by the tests: deadlines instead of sleeps, captured child runs
// stopped by pid, stamps, and the real steve-daemon on a FUSE mount in a
// unique temp dir with its own control socket (as e2e/helpers/daemon.ts).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor as sharedWaitFor, collectLogLines } from '@steve/test-support';

export const PACKAGE = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = resolve(PACKAGE, '..', '..');
export const DAEMON_BIN = join(REPO, 'packages', 'steve-daemon', 'bin', 'steve-daemon.js');
export const STEVIE_BIN = join(REPO, 'packages', 'steve-daemon', 'bin', 'stevie.js');
export const STEVE_JOB_BIN = join(PACKAGE, 'bin', 'steve-job.js');
export const EMERGE_SHIM_BIN = join(PACKAGE, 'bin', 'emerge-shim.js');

/** Waits as the shared helper does, with a longer default deadline for these suites. */
export function waitFor<T>(
  what: string,
  check: () => T | undefined | null | false,
  deadlineMs = 15_000,
): Promise<T> {
  return sharedWaitFor(what, check, deadlineMs);
}

export { isAlive, maxConcurrency } from '@steve/test-support';

const tempDirs: string[] = [];

/** A fresh temp dir, removed by {@link removeTempDirs}. */
export function tempDir(prefix = 'emerge-shim-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export interface ChildRun {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildRun>();

/** Spawn with captured output; the promise resolves on exit. Stopped by {@link stopAll}. */
export function run(
  command: string,
  args: string[],
  options: Parameters<typeof spawn>[2] = {},
): ChildRun {
  const result = runUntracked(command, args, options);
  running.add(result);
  void result.exited.then(() => running.delete(result));
  return result;
}

/** {@link run} for a child that {@link stopAll} leaves alone (a daemon shared by tests). */
function runUntracked(
  command: string,
  args: string[],
  options: Parameters<typeof spawn>[2] = {},
): ChildRun {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  const result: ChildRun = {
    child,
    stdout: '',
    stderr: '',
    exited: new Promise((resolveExit) =>
      child.on('exit', (code, signal) => resolveExit({ code, signal })),
    ),
  };
  child.stdout?.setEncoding('utf8').on('data', (c: string) => (result.stdout += c));
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (result.stderr += c));
  return result;
}

/** Stop a child we started, by its pid: SIGTERM, then SIGKILL after a deadline. */
export async function stop(child: ChildRun, deadlineMs = 5_000): Promise<void> {
  const { child: proc } = child;
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), deadlineMs);
  await child.exited;
  clearTimeout(timer);
}

/** Stop every child {@link run} started that is still running. */
export async function stopAll(): Promise<void> {
  for (const child of [...running]) await stop(child);
}

/** Kill a process we started indirectly (its pid written to a file), if it still runs. */
export function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** The environment without any inherited jobserver or steve settings. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const {
    MAKEFLAGS: _m,
    MFLAGS: _f,
    CARGO_MAKEFLAGS: _c,
    MAKELEVEL: _l,
    STEVE_CONTROL: _s,
    STEVE_JOBSERVER: _j,
    MAKEOPTS: _o,
    FEATURES: _e,
    ...clean
  } = process.env;
  return { ...clean, ...extra };
}

/** A `bin` dir with `steve-job` and `emerge-shim` (links to this package's bins) and node. */
export function binDir(): string {
  const dir = tempDir('emerge-shim-bin-');
  symlinkSync(STEVE_JOB_BIN, join(dir, 'steve-job'));
  symlinkSync(EMERGE_SHIM_BIN, join(dir, 'emerge-shim'));
  return dir;
}

/** PATH with these dirs first and node's dir after them. */
export function pathWith(...dirs: string[]): string {
  return [...dirs, dirname(process.execPath), process.env.PATH ?? ''].join(':');
}

function isMounted(dir: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[4] === dir);
}

export interface Daemon {
  readonly dir: string;
  readonly mountDir: string;
  readonly jobserverPath: string;
  readonly statusPath: string;
  readonly controlPath: string;
  /** stderr lines so far (records with -v). */
  readonly log: string[];
  readonly running: ChildRun;
  /** The `status` file. */
  status(): string;
  /** Tokens out according to the status file. */
  out(): number;
  stop(): Promise<void>;
}

/**
 * The real steve-daemon (FUSE front, `-v`) on a mount in a fresh temp dir,
 * its control socket inside the mount (`--control DIR/mnt/control.sock`).
 * `stop()` stops it by its pid and always unmounts.
 */
export async function startDaemon(args: string[]): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), 'emerge-shim-daemon-'));
  const mountDir = join(dir, 'mnt');
  const controlPath = join(mountDir, 'control.sock');
  const daemon = runUntracked(
    process.execPath,
    [DAEMON_BIN, '--fuse', mountDir, '--control', controlPath, '-v', ...args],
    { env: cleanEnv() },
  );
  const log = daemon.child.stderr ? collectLogLines(daemon.child.stderr) : [];
  const cleanup = (): void => {
    if (isMounted(mountDir)) spawnSync('umount', ['-l', mountDir]);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor('the daemon to serve', () => {
      if (daemon.child.exitCode !== null) throw new Error(`steve-daemon exited: ${daemon.stderr}`);
      return /control socket /.test(daemon.stdout);
    });
  } catch (error) {
    await stop(daemon);
    cleanup();
    throw error;
  }
  const statusPath = join(mountDir, 'status');
  const status = (): string => readFileSync(statusPath, 'utf8');
  return {
    dir,
    mountDir,
    jobserverPath: join(mountDir, 'jobserver'),
    statusPath,
    controlPath,
    log,
    running: daemon,
    status,
    out: () => Number(/ out (\d+) /.exec(status())?.[1] ?? NaN),
    stop: async () => {
      await stop(daemon);
      cleanup();
    },
  };
}

/** A Makefile with `jobs` independent jobs of `seconds` each, stamping into `stamps`. */
export function writeMakefile(
  dir: string,
  name: string,
  jobs: number,
  seconds: number,
  stamps: string,
): string {
  const names = Array.from({ length: jobs }, (_, i) => `${name}-${i}`);
  const makefile = join(dir, `${name}.mk`);
  writeFileSync(
    makefile,
    [
      `all: ${names.join(' ')}`,
      `${names.join(' ')}:`,
      `\t@echo start $@ $$(date +%s%N) >> ${stamps}; sleep ${seconds}; echo end $@ $$(date +%s%N) >> ${stamps}`,
      '',
    ].join('\n'),
  );
  return makefile;
}

/** An executable script. */
export function writeScript(path: string, text: string): string {
  writeFileSync(path, text, { mode: 0o755 });
  return path;
}
