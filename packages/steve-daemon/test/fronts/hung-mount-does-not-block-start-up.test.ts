// A steve mount whose daemon is alive but does not answer (here: stopped
// with SIGSTOP) must not hang the start-up of the next daemon on the same
// directory: any stat into such a mount blocks until its server answers,
// which may be never. The real steve-daemon, twice, on a mount in a fresh
// temp dir. Nothing in this process touches the hung mount: every look into
// it is a child process with a deadline.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { mountAt } from '../../src/fronts/mounts.js';
import { waitFor } from '../native/helpers.js';

const DAEMON_BIN = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'bin',
  'steve-daemon.js',
);

interface Daemon {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  exited: boolean;
}

function spawnDaemon(mountDir: string, control: string, jobs: number): Daemon {
  const child = spawn(
    process.execPath,
    [DAEMON_BIN, '--fuse', mountDir, '--control', control, '-j', String(jobs)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const daemon: Daemon = { child, stdout: '', stderr: '', exited: false };
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (daemon.stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (daemon.stderr += chunk));
  child.on('exit', () => (daemon.exited = true));
  return daemon;
}

/** stat(1) on `file` in a child, SIGKILLed after `deadlineMs`: whether it answered. */
function statAnswers(file: string, deadlineMs: number): boolean {
  const result = spawnSync('stat', ['--', file], { timeout: deadlineMs, killSignal: 'SIGKILL' });
  return result.status === 0;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Stop a daemon we started, by its pid: SIGCONT + SIGTERM, SIGKILL after a deadline. */
async function stopDaemon(daemon: Daemon): Promise<void> {
  const pid = daemon.child.pid;
  if (daemon.exited || pid === undefined) return;
  process.kill(pid, 'SIGCONT');
  process.kill(pid, 'SIGTERM');
  try {
    await waitFor(() => daemon.exited, `steve-daemon ${pid} to exit on SIGTERM`, 5000);
  } catch {
    process.kill(pid, 'SIGKILL');
    await waitFor(() => daemon.exited, `steve-daemon ${pid} to die of SIGKILL`, 5000);
  }
}

/** A temp dir with `mnt` in it; afterwards every mount on `mnt` is lazily unmounted, then it is removed. */
function tempMountDir(): { base: string; mountDir: string } {
  const base = mkdtempSync(path.join(os.tmpdir(), 'steve-hung-mount-'));
  const mountDir = path.join(base, 'mnt');
  cleanups.push(async () => {
    // -c: no canonicalisation, which would stat the (possibly hung) mount.
    for (let attempt = 0; mountAt(mountDir) !== undefined && attempt < 10; attempt++) {
      spawnSync('umount', ['-l', '-c', mountDir], { timeout: 5000, killSignal: 'SIGKILL' });
    }
    if (mountAt(mountDir) !== undefined) throw new Error(`${mountDir} is still mounted`);
    rmSync(base, { recursive: true, force: true });
  });
  return { base, mountDir };
}

describe('steve-daemon start-up on the mount of a stopped daemon', () => {
  it('does not hang: it detaches the mount that does not answer and serves', async () => {
    const { base, mountDir } = tempMountDir();
    const jobserver = path.join(mountDir, 'jobserver');

    const stopped = spawnDaemon(mountDir, path.join(base, 'first.sock'), 2);
    cleanups.push(() => stopDaemon(stopped));
    await waitFor(
      () => stopped.exited || stopped.stdout.includes('serving 2 tokens on'),
      'the first daemon to serve',
      10_000,
    );
    expect(stopped.stdout).toContain(`serving 2 tokens on ${jobserver}`);
    process.kill(stopped.child.pid as number, 'SIGSTOP');
    // The premise: a stat into its mount now blocks (killed at the deadline).
    expect(statAnswers(jobserver, 1000)).toBe(false);

    const second = spawnDaemon(mountDir, path.join(base, 'second.sock'), 3);
    cleanups.push(() => stopDaemon(second));
    await waitFor(
      () => second.exited || second.stdout.includes('serving 3 tokens on'),
      `the second daemon to serve (stderr: ${JSON.stringify(second.stderr)})`,
      30_000,
    );
    expect(second.exited).toBe(false);
    expect(second.stdout).toContain(`serving 3 tokens on ${jobserver}`);
    expect(second.stderr).toContain(`the steve mount at ${mountDir} did not answer`);
    // The mount on the directory is now the second daemon's, and it answers.
    expect(statAnswers(jobserver, 5000)).toBe(true);
  }, 60_000);
});
