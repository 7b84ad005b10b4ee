// The control socket for real: a unix socket in a temp dir, a real pool
// server, real clients (including one running as another user).
import { type ChildProcess, spawn } from 'node:child_process';
import {
  chmodSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { type Socket, createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { StatusResult } from '@steve/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Reply } from '../../src/core/index.js';
import { ControlClient, ControlClientError } from '../../src/control/client.js';
import { type ControlServer, startControlServer } from '../../src/control/server.js';
import { PoolServer, realNow } from '../../src/daemon/pool-server.js';
import { peerCredentials } from '../../src/native/addon.js';

let dir = '';
let pool: PoolServer;
let control: ControlServer;
let socketPath = '';
const replies = new Map<number, Reply>();

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'steve-control-'));
  chmodSync(dir, 0o755); // so another user can reach the socket
  socketPath = join(dir, 'control.sock');
  pool = new PoolServer({
    config: { jobs: 4 },
    services: {
      now: realNow,
      watchPid: () => ({ close() {} }),
      sample: async () => ({}),
      log: () => {},
    },
  });
  control = await startControlServer({
    path: socketPath,
    pool,
    fronts: () => [{ kind: 'fuse', path: '/test/jobserver' }],
    adminGid: null,
    peerCredentials,
    log: () => {},
    now: realNow,
    maxConnections: 50,
  });
});

afterEach(async () => {
  await control.close();
  pool.stop();
  rmSync(dir, { recursive: true, force: true });
  replies.clear();
});

/** A synthetic front: take and return tokens for a pid. */
function front() {
  let next = 1;
  const connection = pool.connect({
    name: 'test',
    reply: (id, reply) => replies.set(id, reply),
    notifyPoll: () => {},
    dropPollHandle: () => {},
  });
  return {
    take(pid: number): number {
      const local = next++;
      connection.event({
        type: 'read',
        requestId: connection.request(local),
        fileId: connection.file(1),
        pid,
        blocking: true,
        sizeBytes: 1,
      });
      return local;
    },
    give(pid: number): void {
      const local = next++;
      connection.event({
        type: 'write',
        requestId: connection.request(local),
        fileId: connection.file(1),
        pid,
        sizeBytes: 1,
      });
    },
  };
}

function rawLines(socket: Socket): { lines: string[]; closed: Promise<void> } {
  const lines: string[] = [];
  let buffered = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    lines.push(...parts);
  });
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => {});
  return { lines, closed };
}

async function waitFor<T>(
  what: string,
  check: () => T | undefined | false,
  deadlineMs = 5000,
): Promise<T> {
  const start = Date.now();
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() - start > deadlineMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('control socket', () => {
  it('status, get, set and metrics', async () => {
    const f = front();
    f.take(4242);
    const client = await ControlClient.connect(socketPath);
    try {
      const status = (await client.request({ type: 'status' })) as StatusResult;
      expect(status).toMatchObject({
        out: 1,
        available: 3,
        settings: { jobs: 4 },
        fronts: [{ kind: 'fuse' }],
      });
      expect(status.holders).toMatchObject([{ pid: 4242, tokens: 1 }]);
      expect(await client.request({ type: 'set', changes: { jobs: 6 } })).toMatchObject({
        jobs: 6,
      });
      expect(await client.request({ type: 'get', setting: 'jobs' })).toEqual({ jobs: 6 });
      const metrics = String(await client.request({ type: 'metrics' }));
      expect(metrics).toContain('steve_jobs 6');
      expect(metrics).toContain('steve_tokens_out 1');
      expect(metrics).toMatch(/steve_grants_total 1\n/);
      await expect(client.request({ type: 'set', changes: { jobs: 0 } })).rejects.toThrow(
        /jobs must be a whole number/,
      );
    } finally {
      client.close();
    }
  });

  it('streams events to subscribers', async () => {
    const client = await ControlClient.connect(socketPath);
    const seen: string[] = [];
    client.onEvent((event) => seen.push(event.record.type));
    await client.request({ type: 'subscribe' });
    const f = front();
    f.take(7);
    f.give(7);
    await client.request({ type: 'set', changes: { jobs: 3 } });
    await waitFor('events', () => seen.length >= 3);
    expect(seen).toEqual(['grant', 'return', 'config']);
    client.close();
  });

  it('lets another user read but not change', async () => {
    const script = `
      const net = require('net');
      const s = net.createConnection(${JSON.stringify(socketPath)});
      let out = '';
      s.setEncoding('utf8');
      s.on('data', (d) => { out += d; if (out.split('\\n').length > 2) { process.stdout.write(out); s.end(); } });
      s.write('{"id":1,"type":"status"}\\n{"id":2,"type":"set","changes":{"jobs":1}}\\n');`;
    // Not spawnSync: the server lives in this process's event loop.
    const child = spawn(process.execPath, ['-e', script], {
      uid: 65534,
      gid: 65534,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    await new Promise((resolve) => child.on('exit', resolve));
    const [status, set] = stdout
      .trim()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as { id: number; ok: boolean; error?: { code: string; message: string } },
      );
    expect(status).toMatchObject({ id: 1, ok: true });
    expect(set).toMatchObject({ id: 2, ok: false, error: { code: 'forbidden' } });
    expect(set?.error?.message).toMatch(/uid 65534 may read but not change/);
    expect(pool.snapshot().config.jobs).toBe(4);
  });

  it('refuses a line over 64 KiB and closes that connection', async () => {
    const socket = createConnection(socketPath);
    const { lines, closed } = rawLines(socket);
    socket.write('{"type":"status","pad":"' + 'x'.repeat(70 * 1024));
    await closed;
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({
      ok: false,
      error: { code: 'line-too-long' },
    });
  });

  it('a client that sends half a line and stalls does not hold anyone up', async () => {
    const staller = createConnection(socketPath);
    staller.on('error', () => {});
    staller.write('{"type":"sta');
    const client = await ControlClient.connect(socketPath);
    expect(await client.request({ type: 'get', setting: 'jobs' })).toEqual({ jobs: 4 });
    client.close();
    staller.destroy();
  });

  it('refuses connections beyond its limit with a clear error', async () => {
    const sockets = await Promise.all(
      Array.from(
        { length: 60 },
        () =>
          new Promise<Socket>((resolve) => {
            const s = createConnection(socketPath, () => resolve(s));
            s.on('error', () => {});
          }),
      ),
    );
    const refused = await new Promise<string>((resolve) => {
      const s = createConnection(socketPath);
      const { lines, closed } = rawLines(s);
      void closed.then(() => resolve(lines.join('\n')));
    });
    expect(refused).toContain('too-many-connections');
    for (const s of sockets) s.destroy();
  });

  it('fuzz: random bytes and mutated messages never disturb the pool', async () => {
    const f = front();
    const valid = [
      '{"type":"status"}',
      '{"id":1,"type":"set","changes":{"jobs":5}}',
      '{"type":"get","setting":"fairness"}',
      '{"type":"subscribe"}',
      '{"type":"metrics"}',
    ];
    const inputs = fc.sample(
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
        fc
          .tuple(
            fc.constantFrom(...valid),
            fc.nat(),
            fc.string({ maxLength: 5 }),
            fc.nat({ max: 8 }),
          )
          .map(([line, at, insert, cut]) => {
            const i = at % (line.length + 1);
            return Buffer.from(`${line.slice(0, i)}${insert}${line.slice(i + cut)}\n`);
          }),
      ),
      { numRuns: 600, seed: 42 },
    );
    const deadline = Date.now() + 3000;
    let sent = 0;
    for (let batch = 0; batch < inputs.length && Date.now() < deadline; batch += 20) {
      await Promise.all(
        inputs.slice(batch, batch + 20).map(
          (input) =>
            new Promise<void>((resolve) => {
              const s = createConnection(socketPath, () => {
                s.write(input);
                setImmediate(() => s.end());
              });
              s.on('error', () => resolve());
              s.on('close', () => resolve());
              s.resume();
              sent += 1;
            }),
        ),
      );
      // The pool keeps serving tokens throughout.
      const id = f.take(9000 + batch);
      expect(replies.get(id)).toMatchObject({ kind: 'token' });
      f.give(9000 + batch);
    }
    expect(sent).toBeGreaterThan(100);
    const snap = pool.snapshot();
    expect(snap.out).toBe(0);
    expect([4, 5]).toContain(snap.config.jobs);
    const client = await ControlClient.connect(socketPath);
    expect(await client.request({ type: 'status' })).toMatchObject({ out: 0 });
    client.close();
  });

  it('stevie-side errors say what to do', async () => {
    await expect(ControlClient.connect(join(dir, 'nothing-here.sock'))).rejects.toThrow(
      /no daemon at .*nothing-here\.sock: start one with `npx steve-daemon`/,
    );
    await expect(ControlClient.connect(join(dir, 'nothing-here.sock'))).rejects.toBeInstanceOf(
      ControlClientError,
    );
  });
});

describe('control socket memory', () => {
  it('drops a client that sends requests and never reads the replies', async () => {
    const socket = createConnection(socketPath);
    socket.on('error', () => {});
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.pause(); // never read
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const line = '{"type":"metrics"}\n'.repeat(500);
    for (let i = 0; i < 40 && !socket.destroyed; i++) socket.write(line);
    await closed;
    // The daemon still serves everyone else.
    const client = await ControlClient.connect(socketPath);
    expect(await client.request({ type: 'get', setting: 'jobs' })).toEqual({ jobs: 4 });
    client.close();
  });
});

describe('authorisation by the groups a peer had at connect()', () => {
  const ADMIN_GID = 100; // any group nobody (65534) is not in

  /** Writes ns_last_pid so that the next process forked gets `pid` (unless another fork comes first). */
  function spawnWithPid(pid: number, argv: string[]) {
    writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
    return spawn(argv[0] as string, argv.slice(1), { stdio: 'ignore' });
  }

  it('a member of the group (a supplementary group, as of connect) may change', async () => {
    const adminControl = await startControlServer({
      path: join(dir, 'admin.sock'),
      pool,
      fronts: () => [],
      adminGid: ADMIN_GID,
      peerCredentials,
      log: () => {},
      now: realNow,
    });
    try {
      const script = `
        const s = require('net').createConnection(${JSON.stringify(join(dir, 'admin.sock'))});
        s.setEncoding('utf8');
        s.on('data', (d) => { process.stdout.write(d); s.end(); });
        s.write('{"id":1,"type":"set","changes":{"jobs":3}}\\n');`;
      const member = spawn(
        'setpriv',
        [
          '--reuid=65534',
          '--regid=65534',
          `--groups=${ADMIN_GID}`,
          '--',
          process.execPath,
          '-e',
          script,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      member.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
      await new Promise((resolve) => member.on('exit', resolve));
      expect(JSON.parse(out.trim())).toMatchObject({ id: 1, ok: true, result: { jobs: 3 } });
      expect(pool.snapshot().config.jobs).toBe(3);
    } finally {
      await adminControl.close();
    }
  });

  it('a connection passed on by a process outside the group stays refused when its pid is reused by a group member', async () => {
    const adminControl = await startControlServer({
      path: join(dir, 'admin.sock'),
      pool,
      fronts: () => [],
      adminGid: ADMIN_GID,
      peerCredentials,
      log: () => {},
      now: realNow,
    });
    const started: ChildProcess[] = [];
    try {
      // The peer (pid A, uid nobody, no groups) connects, forks a child that
      // keeps the connection, and exits; then a member of the admin group is
      // started as pid A; then the child asks for a change.
      const script = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
# Wait until the server has accepted (and taken SO_PEERCRED) before leaving.
s.sendall(b'{"id":0,"type":"get","setting":"jobs"}\\n')
answer = b''
while not answer.endswith(b"\\n"):
    answer += s.recv(4096)
child = os.fork()
if child:
    print(os.getpid(), child, flush=True)
    os._exit(0)
sys.stdin.readline()
s.sendall(b'{"id":1,"type":"set","changes":{"jobs":1}}\\n')
print(s.recv(4096).decode().strip(), flush=True)
`;
      let reply: string | null = null;
      for (let attempt = 0; attempt < 10 && reply === null; attempt += 1) {
        const attacker = spawn('/usr/bin/python3', ['-c', script, join(dir, 'admin.sock')], {
          uid: 65534,
          gid: 65534,
          stdio: ['pipe', 'pipe', 'inherit'],
        });
        started.push(attacker);
        let out = '';
        attacker.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
        await new Promise((resolve) => attacker.on('exit', resolve));
        const [peerPid, keeperPid] = (out.trim().split('\n')[0] ?? '').split(' ').map(Number) as [
          number,
          number,
        ];
        expect(peerPid).toBeGreaterThan(1);
        const member = spawnWithPid(peerPid, [
          'setpriv',
          '--reuid=65534',
          '--regid=65534',
          `--groups=${ADMIN_GID}`,
          '--',
          'sleep',
          '30',
        ]);
        started.push(member);
        if (member.pid !== peerPid) {
          process.kill(keeperPid, 'SIGKILL'); // another process took the pid: try again
          continue;
        }
        await waitFor('the group member running as the reused pid', () =>
          /^Groups:\s*100\s*$/m.test(readFileSync(`/proc/${peerPid}/status`, 'utf8')),
        );
        attacker.stdin.write('\n');
        await waitFor('the reply to set', () => out.split('\n').filter(Boolean).length >= 2);
        reply = out.trim().split('\n')[1] ?? null;
      }
      expect(reply, 'could not reuse the peer pid in 10 attempts').not.toBeNull();
      expect(JSON.parse(reply ?? '{}')).toMatchObject({
        id: 1,
        ok: false,
        error: { code: 'forbidden' },
      });
      expect(pool.snapshot().config.jobs).toBe(4);
    } finally {
      for (const child of started) child.kill('SIGKILL');
      await adminControl.close();
    }
  });
});

describe('the control socket file', () => {
  it('is set up beside its final name and renamed into place: mode 0666, the group, no staging dir left, removed at close', async () => {
    const placeDir = mkdtempSync(join(tmpdir(), 'steve-control-place-'));
    try {
      const placed = await startControlServer({
        path: join(placeDir, 'control.sock'),
        pool,
        fronts: () => [],
        adminGid: 100,
        peerCredentials,
        log: () => {},
        now: realNow,
      });
      const stat = lstatSync(join(placeDir, 'control.sock'));
      expect(stat.isSocket()).toBe(true);
      expect(stat.mode & 0o777).toBe(0o666);
      expect(stat.gid).toBe(100);
      expect(readdirSync(placeDir)).toEqual(['control.sock']);
      const client = await ControlClient.connect(join(placeDir, 'control.sock'));
      expect(await client.request({ type: 'get', setting: 'jobs' })).toEqual({ jobs: 4 });
      client.close();
      await placed.close();
      expect(readdirSync(placeDir)).toEqual([]);
    } finally {
      rmSync(placeDir, { recursive: true, force: true });
    }
  });
});
