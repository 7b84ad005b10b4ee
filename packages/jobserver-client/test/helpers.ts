// Shared by the tests: deadlines instead of sleeps, fifos, stamps, and the
// real steve-daemon on a FUSE mount in a unique temp dir (as e2e does).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { collectLogLines, waitFor } from '@steve/test-support';

export const PACKAGE = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = resolve(PACKAGE, '..', '..');
export const FIXTURES = join(PACKAGE, 'test', 'fixtures');
export const DAEMON_BIN = join(REPO, 'packages', 'steve-daemon', 'bin', 'steve-daemon.js');

export { maxConcurrency, waitFor } from '@steve/test-support';

export function tempDir(prefix = 'jobserver-client-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function mkfifo(path: string): void {
  const result = spawnSync('mkfifo', ['-m', '600', path]);
  if (result.status !== 0) throw new Error(`mkfifo ${path} failed`);
}

export interface ChildRun {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawn with captured output; the promise resolves on exit. */
export function run(
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
export async function stop(running: ChildRun, deadlineMs = 5_000): Promise<void> {
  const { child } = running;
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), deadlineMs);
  await running.exited;
  clearTimeout(timer);
}

function isMounted(dir: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[4] === dir);
}

export interface Daemon {
  readonly jobserverPath: string;
  readonly log: string[];
  readonly running: ChildRun;
  /** Tokens out according to the status file. */
  out(): number;
  /** The status file. */
  status(): string;
  stop(): Promise<void>;
}

/** The real steve-daemon (FUSE front, `-v`) on a mount in a fresh temp dir. */
export async function startDaemon(args: string[]): Promise<Daemon> {
  const dir = tempDir('jobserver-client-daemon-');
  const mountDir = join(dir, 'mnt');
  const running = run(process.execPath, [DAEMON_BIN, '--fuse', mountDir, '-v', ...args], {
    // A control socket of its own, so concurrent daemons do not collide.
    env: { ...process.env, STEVE_CONTROL: join(dir, 'control.sock') },
  });
  const log = running.child.stderr ? collectLogLines(running.child.stderr) : [];
  const cleanup = (): void => {
    if (isMounted(mountDir)) spawnSync('umount', ['-l', mountDir]);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor('the daemon to serve', () => {
      if (running.child.exitCode !== null) {
        throw new Error(`steve-daemon exited: ${running.stderr}`);
      }
      return /serving \d+ tokens on/.test(running.stdout);
    });
  } catch (error) {
    await stop(running);
    cleanup();
    throw error;
  }
  const status = (): string => readFileSync(join(mountDir, 'status'), 'utf8');
  return {
    jobserverPath: join(mountDir, 'jobserver'),
    log,
    running,
    out: () => Number(/ out (\d+) /.exec(status())?.[1] ?? NaN),
    status,
    stop: async () => {
      await stop(running);
      cleanup();
    },
  };
}
