// The pool server's adapters: thread ids to processes, failed watches, the timer.
import { jobsFromStatusFile } from '@steve/protocol';
import { describe, expect, it } from 'vitest';
import type { Reply } from '../../src/core/index.js';
import { PoolServer } from '../../src/daemon/pool-server.js';
import { ThreadGroups } from '../../src/daemon/processes.js';

describe('ThreadGroups', () => {
  it('maps a thread to its process, and does not keep a thread id that a new process may reuse', () => {
    const status = new Map<number, string>([
      [500, 'Name:\tcargo\nTgid:\t500\n'],
      [501, 'Name:\tcargo-helper\nTgid:\t500\n'],
    ]);
    const groups = new ThreadGroups((tid) => status.get(tid) ?? null);
    expect(groups.processOf(501)).toBe(500);
    expect(groups.processOf(500)).toBe(500);
    // The helper thread ends; its id becomes a new process (rustc).
    status.set(501, 'Name:\trustc\nTgid:\t501\n');
    expect(groups.processOf(501)).toBe(501);
    expect(groups.processOf(0)).toBe(0);
  });
});

describe('PoolServer', () => {
  it('tries a failed pidfd watch again at the process next request', () => {
    let attempts = 0;
    const exits = new Map<number, () => void>();
    const server = new PoolServer({
      config: { jobs: 2 },
      services: {
        now: () => 0,
        watchPid: (pid, onExit) => {
          attempts += 1;
          if (attempts === 1)
            throw Object.assign(new Error('too many open files'), { code: 'EMFILE' });
          exits.set(pid, onExit);
          return { close() {} };
        },
        sample: async () => ({}),
        log: () => {},
      },
    });
    const replies: Reply[] = [];
    const front = server.connect({
      name: 't',
      reply: (_id, r) => replies.push(r),
      notifyPoll() {},
      dropPollHandle() {},
    });
    front.event({
      type: 'read',
      requestId: front.request(1),
      fileId: front.file(1),
      pid: 4242,
      blocking: true,
      sizeBytes: 1,
    });
    expect(attempts).toBe(1);
    front.event({
      type: 'read',
      requestId: front.request(2),
      fileId: front.file(1),
      pid: 4242,
      blocking: true,
      sizeBytes: 1,
    });
    expect(attempts).toBe(2);
    expect(server.snapshot().out).toBe(2);
    exits.get(4242)?.();
    expect(server.snapshot().out).toBe(0);
    server.stop();
  });
});

describe('interrupts', () => {
  it('a duplicate INTERRUPT for one waiting read is answered once, before and after the EINTR', () => {
    const server = new PoolServer({
      config: { jobs: 1 },
      services: {
        now: () => 0,
        watchPid: () => ({ close() {} }),
        readProcStatus: (tid) => `Tgid:\t${tid}\n`,
        sample: async () => ({}),
        log: () => {},
      },
    });
    const replies: Array<[number, Reply]> = [];
    const front = server.connect({
      name: 't',
      reply: (id, r) => replies.push([id, r]),
      notifyPoll() {},
      dropPollHandle() {},
    });
    const read = (local: number, pid: number): void =>
      front.event({
        type: 'read',
        requestId: front.request(local),
        fileId: front.file(1),
        pid,
        blocking: true,
        sizeBytes: 1,
      });
    read(1, 500); // takes the only token
    read(2, 600); // waits
    // The kernel's INTERRUPT for request 2, twice (libfuse may hand it over
    // again, or a retried INTERRUPT after EAGAIN): the front passes on what
    // is still pending, and the core answers what is still waiting.
    for (let i = 0; i < 2; i++) {
      const id = front.pendingRequest(2);
      front.event({ type: 'interrupt', requestId: id ?? -1 });
    }
    const second = server.snapshot();
    expect(replies.filter(([id]) => id === 2)).toEqual([[2, { kind: 'error', errno: 'EINTR' }]]);
    expect(second).toMatchObject({ out: 1, waiting: 0 });
    server.stop();
  });
});

describe('the FUSE status file', () => {
  it('starts with the line clients read the pool size from (@steve/protocol jobsFromStatusFile)', () => {
    const server = new PoolServer({
      config: { jobs: 7 },
      services: {
        now: () => 0,
        watchPid: () => ({ close() {} }),
        sample: async () => ({}),
        log: () => {},
      },
    });
    expect(jobsFromStatusFile(server.report())).toBe(7);
    server.stop();
  });
});
