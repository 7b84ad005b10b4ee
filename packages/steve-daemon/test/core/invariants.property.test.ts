// Invariants of the scheduler over random event sequences (fast-check).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AGING_GRANTS_PER_HELD_TOKEN, type Fairness } from '../../src/core/index.js';
import { Harness } from './harness.js';

const PIDS = [101, 102, 103, 104, 105];

type Command =
  | { kind: 'read'; pid: number; blocking: boolean; fileId: number }
  | { kind: 'write'; pid: number; bytes: number }
  | { kind: 'poll'; pid: number; fileId: number }
  | { kind: 'interrupt'; pick: number }
  | { kind: 'exit'; pid: number }
  | { kind: 'jobs'; jobs: number }
  | { kind: 'cap'; limit: number | null }
  | { kind: 'sample'; load: number }
  | { kind: 'advance'; ms: number }
  | { kind: 'pid0-read'; fileId: number }
  | { kind: 'pid0-close'; fileId: number };

const pid = fc.constantFrom(...PIDS);
const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('read' as const),
      pid,
      blocking: fc.boolean(),
      fileId: fc.constantFrom(1, 2),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('write' as const),
      pid,
      bytes: fc.integer({ min: 1, max: 3 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('poll' as const),
      pid,
      fileId: fc.constantFrom(1, 2),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('interrupt' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('exit' as const), pid }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('jobs' as const),
      jobs: fc.integer({ min: 1, max: 6 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('cap' as const),
      limit: fc.option(fc.integer({ min: 1, max: 3 }), { nil: null }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('sample' as const),
      load: fc.integer({ min: 0, max: 8 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      ms: fc.integer({ min: 1, max: 700 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('pid0-read' as const),
      fileId: fc.constantFrom(10, 11),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('pid0-close' as const),
      fileId: fc.constantFrom(10, 11),
    }),
  },
);

let pollHandle = 1000;

function run(h: Harness, commands: Command[]): void {
  for (const c of commands) {
    const outBefore = h.snapshot.out;
    switch (c.kind) {
      case 'read':
        h.read(c.pid, { blocking: c.blocking, fileId: c.fileId });
        break;
      case 'write':
        h.write(c.pid, c.bytes);
        break;
      case 'poll':
        h.poll(c.pid, pollHandle++, c.fileId);
        break;
      case 'interrupt': {
        const reads = [...h.pending].filter(([, r]) => r.kind === 'read').map(([id]) => id);
        if (reads.length > 0) h.interrupt(reads[c.pick % reads.length] as number);
        break;
      }
      case 'exit':
        h.exit(c.pid);
        h.heldByReplies.set(c.pid, 0);
        break;
      case 'jobs':
        h.send({ type: 'configure', changes: { jobs: c.jobs } });
        break;
      case 'cap':
        h.send({ type: 'configure', changes: { perProcessLimit: c.limit } });
        break;
      case 'sample':
        h.send({ type: 'sample', sample: { loadAverage1: c.load } });
        break;
      case 'advance':
        h.advance(c.ms);
        break;
      case 'pid0-read':
        h.send({ type: 'open', fileId: c.fileId, pid: 0 });
        h.read(0, { fileId: c.fileId, blocking: false });
        break;
      case 'pid0-close':
        h.send({ type: 'close', fileId: c.fileId });
        break;
    }
    const snap = h.snapshot;
    // Never more out than the capacity in effect, except the lag of a decrease:
    // then the number out only ever goes down.
    if (snap.out > snap.capacity)
      expect(snap.out).toBeLessThanOrEqual(Math.max(outBefore, snap.capacity));
    expect(snap.out).toBe(
      snap.holders.reduce((sum, x) => sum + x.tokens + (x.reserved ? 1 : 0), 0),
    );
    expect(snap.available).toBe(Math.max(0, snap.capacity - snap.out));
    // The core's ledger agrees with what the replies handed out (pid > 0 clients).
    for (const p of PIDS) {
      const holder = snap.holders.find((x) => x.pid === p);
      expect(holder?.tokens ?? 0).toBe(h.heldByReplies.get(p) ?? 0);
    }
  }
}

describe('scheduler invariants over random event sequences', () => {
  it.each<Fairness>(['least-held', 'fifo'])(
    '%s: capacity respected, ledger exact, every request answered once, nothing lost',
    (fairness) => {
      fc.assert(
        fc.property(
          fc.array(command, { minLength: 1, maxLength: 120 }),
          fc.integer({ min: 1, max: 5 }),
          (commands, jobs) => {
            const h = new Harness({
              jobs,
              fairness,
              maxLoadAverage: 4,
              minJobs: 1,
              reservationTtlMs: 500,
            });
            run(h, commands);
            // Every client goes away: every token comes back, every read is answered.
            for (const p of PIDS) h.exit(p);
            h.send({ type: 'close', fileId: 10 });
            h.send({ type: 'close', fileId: 11 });
            h.advance(1000);
            const reads = [...h.pending].filter(([, r]) => r.kind === 'read');
            expect(reads).toEqual([]);
            expect(h.pending.size).toBe(0);
            const snap = h.snapshot;
            expect(snap.out).toBe(0);
            expect(snap.waiting).toBe(0);
            expect(snap.reserved).toBe(0);
            h.send({ type: 'sample', sample: { loadAverage1: 0 } });
            expect(h.snapshot.available).toBe(h.scheduler.settings.jobs);
          },
        ),
        { numRuns: 400 },
      );
    },
  );
});

describe('no starvation', () => {
  // One thread per process: each process either waits in one blocking read or
  // holds its tokens and later releases one. Tokens keep flowing. A waiter is
  // passed over by at most: (fifo) one grant per waiter queued before it;
  // (least-held) `held × AGING` grants plus one per other client process.
  it.each<Fairness>(['least-held', 'fifo'])('%s: bounded passes for every waiter', (fairness) => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 7 }), fc.boolean()), {
          minLength: 20,
          maxLength: 300,
        }),
        (jobs, steps) => {
          const h = new Harness({ jobs, fairness });
          const pids = [1, 2, 3, 4, 5, 6, 7, 8];
          const waiting = new Map<
            number,
            { id: number; held: number; ahead: number; passes: number }
          >();
          const held = new Map<number, number>(pids.map((p) => [p, 0]));
          const settle = (): void => {
            for (const [p, w] of [...waiting]) {
              if (h.gotToken(w.id)) {
                waiting.delete(p);
                held.set(p, (held.get(p) ?? 0) + 1);
                const bound =
                  fairness === 'fifo'
                    ? w.ahead
                    : w.held * AGING_GRANTS_PER_HELD_TOKEN + (pids.length - 1);
                expect(w.passes).toBeLessThanOrEqual(bound);
              }
            }
          };
          const countGrant = (winner: number): void => {
            for (const [p, w] of waiting) if (p !== winner) w.passes += 1;
          };
          for (const [index, wantsToken] of steps) {
            const p = pids[index] as number;
            if (waiting.has(p)) continue;
            if (wantsToken || (held.get(p) ?? 0) === 0) {
              const id = h.read(p);
              if (h.gotToken(id)) {
                countGrant(p);
                held.set(p, (held.get(p) ?? 0) + 1);
              } else {
                waiting.set(p, { id, held: held.get(p) ?? 0, ahead: waiting.size, passes: 0 });
              }
            } else {
              const before = new Set(
                [...waiting].filter(([, w]) => !h.gotToken(w.id)).map(([q]) => q),
              );
              h.write(p);
              held.set(p, (held.get(p) ?? 0) - 1);
              for (const q of before) if (h.gotToken(waiting.get(q)?.id ?? -1)) countGrant(q);
              settle();
            }
          }
          // Drain: everyone else releases everything; all waiters get served.
          for (const p of pids) {
            while (!waiting.has(p) && (held.get(p) ?? 0) > 0) {
              const before = new Set(
                [...waiting].filter(([, w]) => !h.gotToken(w.id)).map(([q]) => q),
              );
              h.write(p);
              held.set(p, (held.get(p) ?? 0) - 1);
              for (const q of before) if (h.gotToken(waiting.get(q)?.id ?? -1)) countGrant(q);
              settle();
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
