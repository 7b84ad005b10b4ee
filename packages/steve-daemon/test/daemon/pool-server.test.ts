// The pool server's adapters: thread ids to processes, failed watches, the timer.
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
