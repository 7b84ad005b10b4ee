// Private fifos through the control socket for real: a real pool server,
// pidfd watches, fifos in a temporary directory, the client library's
// leasePrivateFifo and python3 clients reading tokens from the fifo.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { leasePrivateFifo, PrivateFifoError } from '@steve/jobserver-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ControlServer, startControlServer } from '../../src/control/server.js';
import { PoolServer, realNow } from '../../src/daemon/pool-server.js';
import { PrivateFifos } from '../../src/fronts/private-fifos.js';
import { peerCredentials, watchPid } from '../../src/native/addon.js';

const PYTHON = '/usr/bin/python3';
let dir = '';
let pool: PoolServer;
let fifos: PrivateFifos;
let control: ControlServer | null = null;
let socketPath = '';
const children: ChildProcess[] = [];

async function waitFor(what: string, check: () => boolean, deadlineMs = 5000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > deadlineMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function startControl(poolAccess = { mode: 0o666, gid: null as number | null }) {
  control = await startControlServer({
    path: socketPath,
    pool,
    fronts: () => [],
    adminGid: null,
    peerCredentials,
    log: () => {},
    now: realNow,
    privateFifos: fifos,
    poolAccess,
  });
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'steve-private-fifos-'));
  chmodSync(dir, 0o755); // so another user can reach the socket
  socketPath = join(dir, 'control.sock');
  pool = new PoolServer({
    config: { jobs: 4 },
    services: { now: realNow, watchPid, sample: async () => ({}), log: () => {} },
  });
  fifos = new PrivateFifos(pool, { dir: join(dir, 'fifos'), prefetch: 1, watchPid, log: () => {} });
});

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  await control?.close();
  control = null;
  fifos.closeAll();
  pool.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A python3 child that reads `tokens` bytes from `fifo`, says `held`, and sleeps holding them. */
function holder(fifo: string, tokens: number): { child: ChildProcess; holding: Promise<void> } {
  const child = spawn(
    PYTHON,
    [
      '-c',
      'import os, sys, time\nfd = os.open(sys.argv[1], os.O_RDWR)\nfor _ in range(int(sys.argv[2])): os.read(fd, 1)\nprint("held", flush=True)\ntime.sleep(60)',
      fifo,
      String(tokens),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.push(child);
  const holding = new Promise<void>((resolve) =>
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('held')) resolve();
    }),
  );
  return { child, holding };
}

const out = (): number => pool.snapshot().out;

describe('private fifos', () => {
  it('a fifo of the requester, 0600 in a 0700 directory; it lives until the connection has closed and the named command has exited', async () => {
    await startControl();
    const lease = await leasePrivateFifo(socketPath);
    expect(statSync(lease.path).isFIFO()).toBe(true);
    expect(statSync(lease.path).mode & 0o777).toBe(0o600);
    expect(statSync(dirname(lease.path)).mode & 0o777).toBe(0o700);
    expect(fifos.count).toBe(1);

    const { child, holding } = holder(lease.path, 3);
    await lease.commandStarted(child.pid as number);
    await holding;
    await waitFor('3 held + 1 parked', () => out() === 4);

    // The wrapper goes (its connection closes) while the command runs: the
    // command keeps its fifo and its tokens.
    lease.close();
    await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(lease.path)).toBe(true);
    expect(out()).toBe(4);

    // The command dies holding 3 tokens: every token comes back, the fifo
    // and its directory are removed.
    child.kill('SIGKILL');
    await waitFor('every token back', () => out() === 0);
    await waitFor('the fifo removed', () => !existsSync(dirname(lease.path)));
    expect(fifos.count).toBe(0);
  });

  it('without a named command it ends with its connection', async () => {
    await startControl();
    const lease = await leasePrivateFifo(socketPath);
    const { holding } = holder(lease.path, 2);
    await holding;
    await waitFor('2 held + 1 parked', () => out() === 3);
    lease.close();
    await waitFor('every token back', () => out() === 0);
    await waitFor('the fifo removed', () => !existsSync(lease.path));
  });

  it('refuses a command that is not a child of the requester, a second fifo, and a command before a fifo', async () => {
    await startControl();
    const lease = await leasePrivateFifo(socketPath);
    // Our parent is not our child.
    await expect(lease.commandStarted(process.ppid)).rejects.toThrow(
      /not a child of the requester/,
    );
    const raw = await new Promise<string>((resolve) => {
      const script = `
        const s = require('net').createConnection(${JSON.stringify(socketPath)});
        let out = '';
        s.on('data', (d) => { out += d; if (out.split('\\n').length > 3) { process.stdout.write(out); s.end(); } });
        s.write('{"id":1,"type":"private-fifo-command","pid":1}\\n{"id":2,"type":"private-fifo"}\\n{"id":3,"type":"private-fifo"}\\n');`;
      const child = spawn(process.execPath, ['-e', script], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let text = '';
      child.stdout?.on('data', (d: Buffer) => (text += d.toString()));
      child.on('exit', () => resolve(text));
    });
    const replies = raw
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { id: number; ok: boolean; error?: { message: string } });
    const byId = new Map(replies.map((r) => [r.id, r]));
    expect(byId.get(1)?.error?.message).toMatch(/ask for a "private-fifo" first/);
    expect(byId.get(2)?.ok).toBe(true);
    expect(byId.get(3)?.error?.message).toMatch(/has a private fifo already/);
    lease.close();
    await waitFor('every fifo gone', () => fifos.count === 0);
  });

  it('a user who may not open the jobserver file gets no private fifo either', async () => {
    await startControl({ mode: 0o660, gid: 4242 });
    const script = `
      const s = require('net').createConnection(${JSON.stringify(socketPath)});
      s.on('data', (d) => { process.stdout.write(d); s.end(); });
      s.write('{"id":1,"type":"private-fifo"}\\n');`;
    // Not spawnSync: the server answers on this process's event loop.
    const stdout = await new Promise<string>((resolve) => {
      const child = spawn(process.execPath, ['-e', script], {
        uid: 65534,
        gid: 65534,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.push(child);
      let text = '';
      child.stdout?.on('data', (d: Buffer) => (text += d.toString()));
      child.on('exit', () => resolve(text));
    });
    const reply = JSON.parse(stdout.trim()) as {
      ok: boolean;
      error: { code: string; message: string };
    };
    expect(reply.ok).toBe(false);
    expect(reply.error.code).toBe('forbidden');
    expect(reply.error.message).toMatch(/uid 65534 may not use this pool/);
    expect(fifos.count).toBe(0);
    // Root still may.
    const lease = await leasePrivateFifo(socketPath);
    lease.close();
  });

  it('a daemon without private fifos says so; no daemon is a clear error', async () => {
    control = await startControlServer({
      path: socketPath,
      pool,
      fronts: () => [],
      adminGid: null,
      peerCredentials,
      log: () => {},
      now: realNow,
    });
    await expect(leasePrivateFifo(socketPath)).rejects.toThrow(/serves no private fifos/);
    await expect(leasePrivateFifo(join(dir, 'nothing.sock'))).rejects.toBeInstanceOf(
      PrivateFifoError,
    );
  });

  it('closeAll (daemon shutdown) ends every fifo and returns its tokens', async () => {
    await startControl();
    const lease = await leasePrivateFifo(socketPath);
    const { holding } = holder(lease.path, 1);
    await holding;
    await waitFor('1 held + 1 parked', () => out() === 2);
    fifos.closeAll();
    expect(out()).toBe(0);
    expect(existsSync(lease.path)).toBe(false);
    lease.close();
  });
});
