// The steve-daemon command as a user meets it: bad flags, a second daemon on
// the same place, a stale mount left by a killed daemon, SIGUSR1, SIGTERM.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CLIENTS,
  DAEMON_BIN,
  PYTHON,
  REPO,
  type RunningDaemon,
  startDaemon,
  waitFor,
  exitOf,
  isAlive,
  isMounted,
} from './helpers/daemon.js';
import { childrenOf } from './helpers/processes.js';

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
        stderr: expect.stringContaining("--jobs wants a whole number >= 1, got '0'"),
      });
      // What the user typed, quoted (this said "got NaN").
      expect(runDaemonOnce(['-j', 'abc', '--fuse', join(dir, 'm')])).toMatchObject({
        status: 2,
        stderr: expect.stringContaining("got 'abc'"),
      });
      expect(runDaemonOnce(['--mode', '999', '--fuse', join(dir, 'm')])).toMatchObject({
        status: 2,
        stderr: expect.stringContaining('--mode must be octal'),
      });
      // Unknown options and bad choices: one line, exit 2 (this printed the whole help, exit 1).
      for (const args of [
        ['--fairness', 'random'],
        ['--jbos', '3'],
      ]) {
        const result = runDaemonOnce(args);
        expect(result.status).toBe(2);
        expect(result.stderr.trim().split('\n')).toHaveLength(1);
        expect(result.stderr).toMatch(
          /^steve-daemon: .*(random|jbos).*\(see steve-daemon --help\)$/m,
        );
      }
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

  it('--version prints the package version, --help the options', () => {
    const version = spawnSync(process.execPath, [DAEMON_BIN, '--version'], { encoding: 'utf8' });
    expect(version.status).toBe(0);
    expect(version.stdout.trim()).toBe(
      (
        JSON.parse(
          readFileSync(join(REPO, 'packages', 'steve-daemon', 'package.json'), 'utf8'),
        ) as {
          version: string;
        }
      ).version,
    );
    const help = spawnSync(process.execPath, [DAEMON_BIN, '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('--jobs');
    expect(help.stdout).toContain('--version');
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

describe('stopping the daemon however it was started', () => {
  function descendants(pid: number): number[] {
    const children = childrenOf(pid);
    return children.flatMap((child) => [child, ...descendants(child)]);
  }

  it('SIGTERM to `npx steve-daemon` stops the daemon and unmounts (npm exec does not pass it on)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'steve-npx-'));
    const mountDir = join(dir, 'mnt');
    const npx = spawn(
      'npx',
      [
        '--no-install',
        'steve-daemon',
        '-j',
        '2',
        '--fuse',
        mountDir,
        '--control',
        join(dir, 'c.sock'),
      ],
      {
        // The checkout whose daemon is under test (its root has the steve-daemon bin).
        cwd: resolve(dirname(DAEMON_BIN), '..', '..', '..'),
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, npm_config_update_notifier: 'false' },
      },
    );
    let stdout = '';
    let stderr = '';
    npx.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    npx.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    let daemonPid: number | undefined;
    try {
      await waitFor('npx steve-daemon to serve', () => stdout.includes('serving 2 tokens'), 30_000);
      daemonPid = await waitFor('the daemon under npx', () =>
        descendants(npx.pid!).find((pid) =>
          readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('steve-daemon'),
        ),
      );
      expect(daemonPid).not.toBe(npx.pid);
      npx.kill('SIGTERM');
      await exitOf(npx);
      await waitFor('the daemon to stop with npx', () => !isAlive(daemonPid!), 10_000);
      await waitFor('the mount to go', () => !isMounted(mountDir), 5_000);
      // The line was written before the daemon exited; the pipe may deliver it a little later.
      await waitFor('the stop reason in the log', () =>
        /stopping: npm exec \(pid \d+\), which started this daemon, exited/.test(stderr),
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}\nstdout: ${stdout}\nstderr: ${stderr}`);
    } finally {
      if (daemonPid !== undefined && isAlive(daemonPid)) process.kill(daemonPid, 'SIGKILL');
      npx.kill('SIGKILL');
      spawnSync('umount', ['-l', mountDir]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('SIGTERM during start-up stops cleanly (exit 0, no mount), and says why in timestamped lines', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'steve-early-'));
    const mountDir = join(dir, 'mnt');
    // No 'jobserver' group here: the daemon says so before it starts any front.
    const daemon = spawn(
      process.execPath,
      [DAEMON_BIN, '-j', '2', '--fuse', mountDir, '--control', join(dir, 'c.sock')],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    daemon.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
      if (c.includes("no 'jobserver' group")) daemon.kill('SIGTERM');
    });
    try {
      const code = await exitOf(daemon);
      expect(stderr).toContain("no 'jobserver' group");
      expect(code).toBe(0);
      expect(isMounted(mountDir)).toBe(false);
      expect(stderr).toMatch(/stopping.*SIGTERM/);
      for (const line of stderr
        .trim()
        .split('\n')
        .filter((l) => l.includes('steve-daemon:'))) {
        expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z steve-daemon: /);
      }
    } finally {
      daemon.kill('SIGKILL');
      spawnSync('umount', ['-l', mountDir]);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
