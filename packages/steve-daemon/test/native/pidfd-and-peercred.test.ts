// watchPid (pidfd_open under the event loop) and peerCredentials
// (SO_PEERCRED) against real processes.
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { peerCredentials, watchPid, type PidWatch } from '../../src/native/addon.js';
import { processState, python, waitFor, type Narrator } from './helpers.js';

const children: Narrator[] = [];
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  await Promise.all(children.splice(0).map((child) => child.stop()));
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The fd of a server-side net.Socket (test-only: Node keeps it private). */
function socketFd(socket: net.Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}

describe('watchPid', () => {
  it('calls back exactly once when the process exits', async () => {
    const child = python('import sys\nprint("up")\nsys.stdin.read()');
    children.push(child);
    await child.waitLine('up');
    let calls = 0;
    const watch = watchPid(child.child.pid as number, () => {
      calls += 1;
    });
    expect(watch).not.toBeNull();
    cleanups.push(() => watch?.close());
    expect(calls).toBe(0);
    child.child.stdin?.end(); // python exits
    await child.exited;
    await waitFor(() => calls > 0, 'the pidfd callback');
    // Another turn of the loop: still once. close() afterwards is harmless.
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toBe(1);
    watch?.close();
  });

  it('fires for an exited child that is not reaped yet (a zombie)', async () => {
    // python forks a child, lets it exit on request and never waits for it.
    const parent = python(`import os, sys
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.read(r, 1)
    os._exit(0)
print(pid)
sys.stdin.readline()
os.write(w, b"x")
print("released")
sys.stdin.read()`);
    children.push(parent);
    await waitFor(() => parent.lines.length > 0, 'the forked pid');
    const pid = Number(parent.lines[0]);
    let fired = 0;
    const watch: PidWatch | null = watchPid(pid, () => {
      fired += 1;
    });
    cleanups.push(() => watch?.close());
    expect(fired).toBe(0);
    parent.child.stdin?.write('\n');
    await parent.waitLine('released');
    await waitFor(() => fired === 1, 'exit of the forked child');
    expect(await processState(pid)).toBe('Z'); // exited, not reaped
  });

  it('returns null for a process that does not exist, and close() stops a watch silently', async () => {
    const child = python('pass');
    children.push(child);
    const pid = child.child.pid as number;
    await child.exited; // exited and reaped by Node
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(watchPid(pid, () => undefined)).toBeNull();
    expect(() => watchPid(-1, () => undefined)).toThrow(RangeError);

    const sleeper = python('import sys\nprint("up")\nsys.stdin.read()');
    children.push(sleeper);
    await sleeper.waitLine('up');
    let fired = false;
    const watch = watchPid(sleeper.child.pid as number, () => {
      fired = true;
    });
    watch?.close();
    watch?.close();
    sleeper.child.stdin?.end();
    await sleeper.exited;
    await new Promise((resolve) => setImmediate(resolve));
    expect(fired).toBe(false);
  });
});

describe('peerCredentials', () => {
  it("returns the connecting process's pid, uid, gid and supplementary groups", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'steve-peercred-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const socketPath = path.join(dir, 'control.sock');
    const accepted: net.Socket[] = [];
    const server = net.createServer((socket) => accepted.push(socket));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          for (const socket of accepted) socket.destroy();
          server.close(() => resolve());
        }),
    );
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    const client = python(
      `import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
print("connected")
sys.stdin.read()`,
      socketPath,
    );
    children.push(client);
    await client.waitLine('connected');
    await waitFor(() => accepted.length === 1, 'the accepted connection');
    const socket = accepted[0] as net.Socket;
    // The client is still connected and running: its /proc entry is the truth.
    const status = readFileSync(`/proc/${client.child.pid}/status`, 'utf8');
    const groups = (/^Groups:[ \t]*(.*)$/m.exec(status)?.[1] ?? '').split(/\s+/).filter(Boolean);
    expect(peerCredentials(socketFd(socket))).toEqual({
      pid: client.child.pid,
      uid: process.getuid?.(),
      gid: process.getgid?.(),
      groups: groups.map(Number),
    });
  });

  it('throws the system error for a descriptor that is not a socket', () => {
    expect(() => peerCredentials(0x7fff)).toThrow(
      expect.objectContaining({ code: 'EBADF' }) as Error,
    );
  });
});
