// The steve-daemon command as a user meets it: bad flags, a second daemon on
// the same place, a stale mount left by a killed daemon, SIGUSR1, SIGTERM.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CLIENTS,
  DAEMON_BIN,
  PYTHON,
  type RunningDaemon,
  startDaemon,
  waitFor,
  exitOf,
} from './helpers/daemon.js';

const daemons: RunningDaemon[] = [];
afterEach(async () => {
  for (const daemon of daemons.splice(0)) await daemon.stop().catch(() => undefined);
});

function runDaemonOnce(args: string[]): { status: number | null; stderr: string } {
  const result = spawnSync(process.execPath, [DAEMON_BIN, ...args], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { status: result.status, stderr: result.stderr };
}

describe('steve-daemon command line', () => {
  it('refuses bad flags with a reason and exit code 2', () => {
    const dir = mkdtempSync(join(tmpdir(), 'steve-flags-'));
    try {
      expect(runDaemonOnce(['-j', '0', '--fuse', join(dir, 'm')])).toMatchObject({
        status: 2,
        stderr: expect.stringContaining('jobs must be a whole number >= 1'),
      });
      expect(runDaemonOnce(['--mode', '999', '--fuse', join(dir, 'm')])).toMatchObject({
        status: 2,
        stderr: expect.stringContaining('--mode must be octal'),
      });
      expect(runDaemonOnce(['--fairness', 'random'])).toMatchObject({ status: 1 });
      expect(
        runDaemonOnce(['--group', 'no-such-group-here', '--fuse', join(dir, 'm')]),
      ).toMatchObject({
        status: 2,
        stderr: expect.stringContaining("no group 'no-such-group-here'"),
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--mode and --group set the permissions of the jobserver file', async () => {
    const daemon = await startDaemon(['-j', '1', '--mode', '0640', '--group', '100']);
    daemons.push(daemon);
    const stat = statSync(daemon.jobserverPath);
    expect(stat.mode & 0o7777).toBe(0o640);
    expect(stat.gid).toBe(100);
  });

  it('--metrics-listen serves Prometheus text on loopback, and only there', async () => {
    expect(
      runDaemonOnce(['--metrics-listen', '0.0.0.0:9512', '--fuse', '/nonexistent/m']),
    ).toMatchObject({
      status: 2,
      stderr: expect.stringContaining('--metrics-listen serves loopback only'),
    });
    const port = 20_000 + (process.pid % 20_000);
    const daemon = await startDaemon(['-j', '3', '--metrics-listen', `127.0.0.1:${port}`]);
    daemons.push(daemon);
    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toContain('# TYPE steve_jobs gauge\nsteve_jobs 3\n');
    expect(text).toContain('steve_tokens_out 0\n');
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(404);
  });

  it('refuses a second daemon on the same mount', async () => {
    const first = await startDaemon(['-j', '2']);
    daemons.push(first);
    const second = runDaemonOnce(['-j', '2', '--fuse', first.mountDir]);
    expect(second.status).toBe(1);
    expect(second.stderr).toContain(`another steve-daemon is already serving ${first.mountDir}`);
    expect(first.out()).toBe(0); // the first one still serves
  });

  it('clears the stale mount of a SIGKILLed daemon and serves again', async () => {
    const first = await startDaemon(['-j', '2']);
    first.process.kill('SIGKILL');
    await exitOf(first.process);
    expect(() => statSync(first.jobserverPath)).toThrow(/ENOTCONN/);
    const again = spawn(process.execPath, [DAEMON_BIN, '-j', '2', '--fuse', first.mountDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    again.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    again.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    try {
      await waitFor('the new daemon to serve', () => stdout.includes('serving 2 tokens'));
      expect(stderr).toContain('clearing the stale mount');
      expect(statSync(first.jobserverPath).isFile()).toBe(true);
    } finally {
      again.kill('SIGTERM');
      await exitOf(again);
      await first.stop().catch(() => undefined);
    }
  });

  it('SIGUSR1 logs holders and waiters; SIGTERM answers waiters, unmounts and exits 0', async () => {
    const daemon = await startDaemon(['-j', '1']);
    daemons.push(daemon);
    const holder = spawn(PYTHON, [join(CLIENTS, 'holder.py'), daemon.jobserverPath, '1'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let holderOut = '';
    holder.stdout.setEncoding('utf8').on('data', (c: string) => (holderOut += c));
    await waitFor('the holder to hold', () => holderOut.includes('holding 1'));
    const reader = spawn(PYTHON, [join(CLIENTS, 'blocking_reader.py'), daemon.jobserverPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let readerErr = '';
    reader.stderr.setEncoding('utf8').on('data', (c: string) => (readerErr += c));
    await waitFor('the reader to wait', () => daemon.status().includes('blocking read'));

    daemon.process.kill('SIGUSR1');
    await waitFor('the report', () => daemon.log.some((l) => l.startsWith('waiters (1):')));
    const report = daemon.log.join('\n');
    expect(report).toMatch(
      new RegExp(`pid ${holder.pid}  tokens 1  since [\\d.]+s  .*holder\\.py`),
    );
    expect(report).toMatch(
      new RegExp(`pid ${reader.pid}  blocking read  for [\\d.]+s  .*blocking_reader\\.py`),
    );

    const readerExit = exitOf(reader);
    expect(await daemon.stop()).toBe(0);
    daemons.splice(daemons.indexOf(daemon), 1);
    expect(await readerExit).not.toBe(0);
    expect(readerErr).toMatch(/OSError|Errno/);
    holder.kill('SIGKILL');
  });
});
