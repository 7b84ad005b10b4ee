// Thread ids come back: a process that opened the jobserver and exited, or a
// /proc read that failed, must not leave a tid -> process entry behind that a
// later helper thread with the same id is charged through.
import { describe, expect, it } from 'vitest';
import type { Reply } from '../../src/core/index.js';
import { PoolServer } from '../../src/daemon/pool-server.js';

/** A pool server over a fake /proc and fake pidfd watches. */
function serverWithFakeProc(status: Map<number, string>) {
  const exits = new Map<number, () => void>();
  const replies = new Map<number, Reply>();
  const server = new PoolServer({
    config: { jobs: 2 },
    services: {
      now: () => 0,
      watchPid: (pid, onExit) => {
        if (!status.has(pid)) return null;
        exits.set(pid, onExit);
        return { close: () => exits.delete(pid) };
      },
      readProcStatus: (tid) => status.get(tid) ?? null,
      sample: async () => ({}),
      log: () => {},
    },
  });
  const front = server.connect({
    name: 't',
    reply: (id, reply) => replies.set(id, reply),
    notifyPoll() {},
    dropPollHandle() {},
  });
  let nextRequest = 1;
  return {
    server,
    exits,
    replies,
    /** The last close of a file (FUSE RELEASE). */
    close(fileId = 1) {
      const id = front.releaseFile(fileId);
      if (id !== undefined) front.event({ type: 'close', fileId: id });
    },
    open(tid: number, fileId = 1) {
      front.event({
        type: 'open',
        fileId: front.file(fileId),
        pid: server.threadGroups.processOf(tid),
      });
    },
    read(tid: number, fileId = 2): number {
      const local = nextRequest++;
      front.event({
        type: 'read',
        requestId: front.request(local),
        fileId: front.file(fileId),
        pid: server.threadGroups.processOf(tid),
        blocking: true,
        sizeBytes: 1,
      });
      return local;
    },
    write(tid: number, fileId = 2): Reply | undefined {
      const local = nextRequest++;
      front.event({
        type: 'write',
        requestId: front.request(local),
        fileId: front.file(fileId),
        pid: server.threadGroups.processOf(tid),
        sizeBytes: 1,
      });
      return replies.get(local);
    },
  };
}

describe('thread ids that come back', () => {
  it('a process that only opened the jobserver leaves nothing behind for its reused id', () => {
    const status = new Map<number, string>([[600, 'Tgid:\t600\n']]);
    const pool = serverWithFakeProc(status);
    pool.open(600); // a make 4.4 sub-make running one job: open, never read
    status.delete(600); // it exits; no client, no watch, so no exit event
    pool.close();
    // pids wrap: 590 is a new cargo, and 600 comes back as its helper thread
    status.set(590, 'Tgid:\t590\n');
    status.set(600, 'Tgid:\t590\n');
    expect(pool.replies.get(pool.read(600))).toEqual({ kind: 'token', byte: 43 });
    expect(pool.server.snapshot().holders.map((h) => h.pid)).toEqual([590]);
    // The main thread returns the token: it is cargo's, so no ENOSPC.
    expect(pool.write(590)).toEqual({ kind: 'written', countBytes: 1 });
    // cargo exits: everything it held comes back.
    expect(pool.read(600)).toBeGreaterThan(0);
    expect(pool.server.snapshot().out).toBe(1);
    pool.exits.get(590)?.();
    expect(pool.server.snapshot().out).toBe(0);
    pool.server.stop();
  });

  it('a failed /proc read is not remembered as "its own process"', () => {
    const status = new Map<number, string>([[700, 'Tgid:\t700\n']]);
    let failNext = true;
    const pool = serverWithFakeProc(status);
    const realGet = status.get.bind(status);
    status.get = (tid: number) => {
      if (failNext && tid === 700) {
        failNext = false;
        return undefined; // EMFILE, or hidepid
      }
      return realGet(tid);
    };
    pool.open(700);
    status.delete(700);
    pool.close();
    status.set(690, 'Tgid:\t690\n');
    status.set(700, 'Tgid:\t690\n');
    pool.read(700);
    expect(pool.server.snapshot().holders.map((h) => h.pid)).toEqual([690]);
    pool.server.stop();
  });

  it('a watched main thread is remembered only until its process exits', () => {
    const status = new Map<number, string>([[800, 'Tgid:\t800\n']]);
    const pool = serverWithFakeProc(status);
    pool.read(800);
    expect(pool.exits.has(800)).toBe(true);
    status.delete(800);
    pool.exits.get(800)?.();
    status.set(795, 'Tgid:\t795\n');
    status.set(800, 'Tgid:\t795\n');
    pool.read(800);
    expect(pool.server.snapshot().holders.map((h) => h.pid)).toEqual([795]);
    pool.server.stop();
  });
});
