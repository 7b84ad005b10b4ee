// `--user NAME`: the daemon sets up as root (mount, control socket, private
// fifo directory), then runs as NAME with no capability left, and still does
// its whole job: tokens, reclaim of a SIGKILLed holder (pidfd), settings
// from root, private fifos for ninja, and on SIGTERM the mount goes away
// (a watcher started before the drop unmounts it).
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CLIENTS,
  DAEMON_BIN,
  PYTHON,
  exitOf,
  STEVIE_BIN,
  isMounted,
  type RunningDaemon,
  startDaemon,
  waitFor,
} from './helpers/daemon.js';
import { NINJA, writeNinjaBuild } from './helpers/ninja.js';
import { cleanEnv, run } from './helpers/processes.js';

let daemon: RunningDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

function statusField(pid: number, field: string): string {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '';
}

describe('steve-daemon --user nobody', () => {
  it('drops root for good and still serves, reclaims, takes settings from root, makes private fifos and unmounts at SIGTERM', async () => {
    daemon = await startDaemon(['-j2', '--user', 'nobody', '--mode', '0666']);
    chmodSync(daemon.dir, 0o755); // the private fifos' directory is inside it
    const pid = daemon.process.pid ?? 0;
    await waitFor('the line saying it dropped root', () =>
      daemon?.log.some((l) => /running as nobody \(uid 65534, gid 65534/.test(l)),
    );
    expect(statusField(pid, 'Uid').split(/\s+/)).toEqual(['65534', '65534', '65534', '65534']);
    expect(statusField(pid, 'Gid').split(/\s+/)).toEqual(['65534', '65534', '65534', '65534']);
    expect(statusField(pid, 'CapEff')).toBe('0000000000000000');
    expect(statusField(pid, 'CapPrm')).toBe('0000000000000000');

    // Tokens, and the reclaim of a SIGKILLed holder (pidfd as an unprivileged user).
    const holder = spawn(PYTHON, [join(CLIENTS, 'holder.py'), daemon.jobserverPath, '2'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await waitFor('the holder holding both tokens', () => daemon?.out() === 2);
    holder.kill('SIGKILL');
    await waitFor('the killed holder reclaimed', () => daemon?.out() === 0);

    // Settings from root over the control socket.
    const set = await run(
      process.execPath,
      [STEVIE_BIN, 'set', 'jobs', '3', '--control', daemon.controlPath],
      { cwd: daemon.dir, env: cleanEnv({}) },
    );
    expect(set, set.output).toMatchObject({ code: 0 });
    expect(daemon.status()).toMatch(/^jobs 3 /);

    // A private fifo for ninja, made by the unprivileged daemon for root's stevie.
    const ninjaDir = join(daemon.dir, 'ninja');
    mkdirSync(ninjaDir);
    const stamps = join(daemon.dir, 'stamps');
    writeNinjaBuild(ninjaDir, 4, 0.2, stamps);
    const ninja = await run(
      process.execPath,
      [STEVIE_BIN, '--control', daemon.controlPath, '--', 'ninja', '-C', ninjaDir],
      { cwd: ninjaDir, env: cleanEnv({ PATH: `${join(NINJA, '..')}:${process.env.PATH ?? ''}` }) },
    );
    expect(ninja, ninja.output).toMatchObject({ code: 0 });
    expect(ninja.output).toContain('Jobserver mode detected');
    expect(daemon.log.some((l) => l.startsWith('grant -> file:'))).toBe(true);
    await waitFor('all tokens back', () => daemon?.out() === 0);
    const fifos = join(daemon.dir, 'steve-fifos');
    await waitFor(
      'the private fifo removed',
      () => (existsSync(fifos) ? readdirSync(fifos) : []).length === 0,
    );

    // SIGTERM: exit 0, and the mount is gone although the daemon may not unmount it.
    daemon.process.kill('SIGTERM');
    expect(await exitOf(daemon.process)).toBe(0);
    const mountDir = daemon.mountDir;
    await waitFor('the mount gone', () => !isMounted(mountDir), 10_000);
  });

  it('--user naming no user is a usage error (exit 2) saying how to create it', async () => {
    const result = await run(
      process.execPath,
      [DAEMON_BIN, '--user', 'no-such-steve-user', '--fuse', '/nonexistent-steve-mount'],
      { cwd: '/', env: cleanEnv({}) },
    );
    expect(result.code).toBe(2);
    expect(result.output).toMatch(/no user 'no-such-steve-user'.*useradd --system/);
  });
});
