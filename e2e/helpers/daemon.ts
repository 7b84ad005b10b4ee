// Start the real steve-daemon (FUSE front, since this kernel has no CUSE) in
// a unique temporary directory; stop it by its pid and always unmount.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { collectLogLines, waitFor } from '@steve/test-support';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The daemon under test; STEVE_E2E_DAEMON_BIN runs another build (to show a test fails on old code). */
export const DAEMON_BIN =
  process.env.STEVE_E2E_DAEMON_BIN ??
  join(REPO, 'packages', 'steve-daemon', 'bin', 'steve-daemon.js');
/** stevie under test; STEVE_E2E_STEVIE_BIN runs another build (to show a test fails on old code). */
export const STEVIE_BIN =
  process.env.STEVE_E2E_STEVIE_BIN ?? join(REPO, 'packages', 'steve-daemon', 'bin', 'stevie.js');
/** Debian's python3 (PATH may hold another one). */
export const PYTHON = '/usr/bin/python3';
export const CLIENTS = join(REPO, 'e2e', 'clients');

export interface RunningDaemon {
  readonly dir: string;
  readonly mountDir: string;
  readonly jobserverPath: string;
  /** The control socket path to give stevie (a link inside the mount). */
  readonly controlPath: string;
  /** The fifo front's fifo (`--fifo`), when asked for. */
  readonly fifoPath: string | null;
  readonly process: ChildProcess;
  /** stderr lines so far (records with -v). */
  readonly log: string[];
  /** The largest `out N` any record reported. */
  maxOut(): number;
  /** The `status` file. */
  status(): string;
  /** Tokens out according to the status file. */
  out(): number;
  stop(): Promise<number | null>;
}

/** Whether `dir` is a mount point now (/proc/self/mountinfo). */
export function isMounted(dir: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[4] === dir);
}

export interface DaemonOptions {
  /** Also serve a fifo front (`--fifo DIR/jobserver.fifo`), with this `--fifo-prefetch`. */
  readonly fifo?: { readonly prefetch?: number };
}

export async function startDaemon(
  args: string[] = [],
  options: DaemonOptions = {},
): Promise<RunningDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'steve-e2e-'));
  const mountDir = join(dir, 'mnt');
  const fifoPath = options.fifo ? join(dir, 'jobserver.fifo') : null;
  const fifoArgs =
    fifoPath === null
      ? []
      : ['--fifo', fifoPath, '--fifo-prefetch', String(options.fifo?.prefetch ?? 1)];
  // Each daemon its own control socket (through the mount's control.sock link).
  const controlPath = join(mountDir, 'control.sock');
  const child = spawn(
    process.execPath,
    [DAEMON_BIN, '--fuse', mountDir, '--control', controlPath, '-v', ...fifoArgs, ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let maxOut = 0;
  let exitCode: number | null | undefined;
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  const log = collectLogLines(child.stderr, (line) => {
    const out = /; out (\d+)$/.exec(line);
    if (out) maxOut = Math.max(maxOut, Number(out[1]));
  });
  const exited = new Promise<number | null>((resolveExit) =>
    child.on('exit', (code) => {
      exitCode = code;
      resolveExit(code);
    }),
  );
  const cleanup = (): void => {
    if (isMounted(mountDir)) spawnSync('umount', ['-l', mountDir]);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor('the daemon to say where it serves', () => {
      if (exitCode !== undefined)
        throw new Error(`steve-daemon exited (${exitCode}): ${log.join('\n')}`);
      const serving = /serving \d+ tokens on (\S+)/.exec(stdout)?.[1];
      return fifoPath === null ? serving : serving && stdout.includes(` on ${fifoPath} `);
    });
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    cleanup();
    throw error;
  }
  const jobserverPath = join(mountDir, 'jobserver');
  const status = (): string => readFileSync(join(mountDir, 'status'), 'utf8');
  return {
    dir,
    mountDir,
    jobserverPath,
    controlPath,
    fifoPath,
    process: child,
    log,
    maxOut: () => maxOut,
    status,
    out: () => Number(/ out (\d+) /.exec(status())?.[1] ?? NaN),
    stop: async () => {
      if (exitCode === undefined) child.kill('SIGTERM');
      const code = await Promise.race([
        exited,
        new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10_000)),
      ]);
      if (code === 'timeout') {
        child.kill('SIGKILL');
        await exited;
      }
      const wasMounted = isMounted(mountDir);
      cleanup();
      if (wasMounted) throw new Error(`steve-daemon left ${mountDir} mounted after SIGTERM`);
      return code === 'timeout' ? null : code;
    },
  };
}

export { exitOf, isAlive, maxConcurrency, waitFor } from '@steve/test-support';
