// The real thread-group cache and watch bookkeeping (PoolServer +
// ThreadGroups) driven through pid reuse by a fake kernel: a tiny pid space
// handed out the way Linux does (next free id after the last one, wrapping),
// processes with helper threads, processes that only open the jobserver, and
// /proc reads that fail. Whatever ids come back, each process is charged for
// exactly the tokens it was given, its returns are accepted, and everything
// comes back when it exits.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Reply } from '../../src/core/index.js';
import { PoolServer } from '../../src/daemon/pool-server.js';

const PID_MIN = 300;
const PID_SPACE = 12; // ids 300..311: wraps every few processes
const JOBS = 3;

type Command =
  | { kind: 'spawn' }
  | { kind: 'thread'; pick: number }
  | { kind: 'thread-exit'; pick: number }
  | { kind: 'open'; pick: number; thread: number }
  | { kind: 'read'; pick: number; thread: number; blocking: boolean }
  | { kind: 'write'; pick: number; thread: number }
  | { kind: 'exit'; pick: number }
  | { kind: 'proc-fails'; pick: number };

const pick = fc.nat(1000);
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'spawn' as const }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('thread' as const), pick }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('thread-exit' as const), pick }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('open' as const), pick, thread: pick }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('read' as const),
      pick,
      thread: pick,
      blocking: fc.boolean(),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('write' as const), pick, thread: pick }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('exit' as const), pick }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('proc-fails' as const), pick }) },
);

interface FakeProcess {
  readonly pid: number;
  readonly threads: number[]; // threads[0] is the main thread (tid == pid)
  held: number;
  readonly pendingReads: number[]; // local request ids
  /** Its own open of the jobserver (a local file id), once it opened it. */
  readonly fileId: number;
  opened: boolean;
}

class FakeKernel {
  private lastPid = PID_MIN - 1;
  readonly tgidOf = new Map<number, number>();
  readonly processes: FakeProcess[] = [];
  readonly watches = new Map<number, () => void>();
  /** tids whose next /proc read fails (EMFILE, hidepid). */
  readonly failingReads = new Set<number>();

  allocate(): number | null {
    for (let i = 1; i <= PID_SPACE; i++) {
      const id = PID_MIN + ((this.lastPid - PID_MIN + i) % PID_SPACE);
      if (!this.tgidOf.has(id)) {
        this.lastPid = id;
        return id;
      }
    }
    return null;
  }

  status(tid: number): string | null {
    if (this.failingReads.delete(tid)) return null;
    const tgid = this.tgidOf.get(tid);
    return tgid === undefined ? null : `Name:\tx\nTgid:\t${tgid}\nPid:\t${tid}\n`;
  }

  /** pidfd_open: only a live thread-group leader can be watched. */
  watch(pid: number, onExit: () => void): { close(): void } | null {
    const tgid = this.tgidOf.get(pid);
    if (tgid === undefined) return null; // ESRCH
    if (tgid !== pid) throw Object.assign(new Error('not a process'), { code: 'EINVAL' });
    this.watches.set(pid, onExit);
    return { close: () => this.watches.delete(pid) };
  }
}

function run(commands: Command[]): void {
  const kernel = new FakeKernel();
  const replies = new Map<number, Reply>();
  const server = new PoolServer({
    config: { jobs: JOBS },
    services: {
      now: () => 0,
      watchPid: (pid, onExit) => kernel.watch(pid, onExit),
      readProcStatus: (tid) => kernel.status(tid),
      sample: async () => ({}),
      log: () => {},
    },
  });
  const readOwner = new Map<number, FakeProcess>();
  const front = server.connect({
    name: 'fake',
    reply: (id, reply) => {
      expect(replies.has(id), `request ${id} answered twice`).toBe(false);
      replies.set(id, reply);
      const owner = readOwner.get(id);
      if (owner) {
        readOwner.delete(id);
        owner.pendingReads.splice(owner.pendingReads.indexOf(id), 1);
        if (reply.kind === 'token') owner.held += 1;
      }
    },
    notifyPoll() {},
    dropPollHandle() {},
  });
  let nextRequest = 1;
  let nextFile = 1;
  const processOf = (tid: number): number => server.threadGroups.processOf(tid);
  const choose = (n: number): FakeProcess | undefined =>
    kernel.processes.length === 0 ? undefined : kernel.processes[n % kernel.processes.length];
  const threadOf = (p: FakeProcess, n: number): number => p.threads[n % p.threads.length] as number;
  const exitProcess = (p: FakeProcess): void => {
    // A dying thread blocked in a FUSE read: the kernel interrupts the request.
    for (const local of [...p.pendingReads]) {
      const id = front.pendingRequest(local);
      if (id !== undefined) front.event({ type: 'interrupt', requestId: id });
    }
    for (const tid of p.threads) kernel.tgidOf.delete(tid);
    kernel.processes.splice(kernel.processes.indexOf(p), 1);
    // Its files close (FUSE RELEASE) and its pidfd becomes readable, before
    // the id can be handed out again; the daemon may see either first.
    const release = (): void => {
      const id = front.releaseFile(p.fileId);
      if (p.opened && id !== undefined) front.event({ type: 'close', fileId: id });
    };
    if (p.pid % 2 === 0) release();
    kernel.watches.get(p.pid)?.();
    if (p.pid % 2 === 1) release();
  };

  const check = (): void => {
    const snapshot = server.snapshot();
    expect(snapshot.out).toBeLessThanOrEqual(JOBS);
    const heldByPid = new Map(snapshot.holders.map((h) => [h.pid, h.tokens]));
    for (const p of kernel.processes) {
      expect(heldByPid.get(p.pid) ?? 0, `tokens charged to process ${p.pid}`).toBe(p.held);
    }
    const modelOut = kernel.processes.reduce((sum, p) => sum + p.held, 0);
    expect(snapshot.out).toBe(modelOut);
  };

  for (const c of commands) {
    switch (c.kind) {
      case 'spawn': {
        const pid = kernel.allocate();
        if (pid === null) break;
        kernel.tgidOf.set(pid, pid);
        kernel.processes.push({
          pid,
          threads: [pid],
          held: 0,
          pendingReads: [],
          fileId: nextFile++,
          opened: false,
        });
        break;
      }
      case 'thread': {
        const p = choose(c.pick);
        const tid = p && kernel.allocate();
        if (!p || !tid) break;
        kernel.tgidOf.set(tid, p.pid);
        p.threads.push(tid);
        break;
      }
      case 'thread-exit': {
        const p = choose(c.pick);
        if (!p || p.threads.length < 2) break;
        const tid = p.threads[1 + (c.pick % (p.threads.length - 1))] as number;
        // Only a thread that is not blocked in a read ends (its read would be interrupted).
        p.threads.splice(p.threads.indexOf(tid), 1);
        kernel.tgidOf.delete(tid);
        break;
      }
      case 'open': {
        const p = choose(c.pick);
        if (!p) break;
        if (p.opened) break;
        p.opened = true;
        front.event({
          type: 'open',
          fileId: front.file(p.fileId),
          pid: processOf(threadOf(p, c.thread)),
        });
        break;
      }
      case 'read': {
        const p = choose(c.pick);
        if (!p) break;
        const local = nextRequest++;
        readOwner.set(local, p);
        p.pendingReads.push(local);
        front.event({
          type: 'read',
          requestId: front.request(local),
          fileId: front.file(p.fileId),
          pid: processOf(threadOf(p, c.thread)),
          blocking: c.blocking,
          sizeBytes: 1,
        });
        break;
      }
      case 'write': {
        const p = choose(c.pick);
        if (!p || p.held === 0) break;
        const local = nextRequest++;
        front.event({
          type: 'write',
          requestId: front.request(local),
          fileId: front.file(p.fileId),
          pid: processOf(threadOf(p, c.thread)),
          sizeBytes: 1,
        });
        expect(replies.get(local), `process ${p.pid} returns a token it holds`).toEqual({
          kind: 'written',
          countBytes: 1,
        });
        p.held -= 1;
        break;
      }
      case 'exit': {
        const p = choose(c.pick);
        if (p) {
          exitProcess(p);
          p.held = 0;
        }
        break;
      }
      case 'proc-fails': {
        const p = choose(c.pick);
        if (p) kernel.failingReads.add(threadOf(p, c.pick));
        break;
      }
    }
    check();
  }
  for (const p of [...kernel.processes]) exitProcess(p);
  expect(server.snapshot().out).toBe(0);
  server.stop();
}

describe('pid reuse', () => {
  it('every process is charged exactly what it was given, whatever ids come back', () => {
    fc.assert(
      fc.property(fc.array(command, { minLength: 1, maxLength: 200 }), (commands) => {
        run(commands);
      }),
      { numRuns: 500 },
    );
  });
});
