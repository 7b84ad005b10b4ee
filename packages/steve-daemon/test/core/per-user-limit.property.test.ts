// perUserLimit over random event sequences (fast-check): a grant never takes
// a uid above the limit in force, no token idles while a reader whose uid is
// under its limit waits, and everything still comes back.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Fairness, SchedulerSnapshot } from '../../src/core/index.js';
import { Harness } from './harness.js';

// Three processes of uid 1000, two of uid 1001, one whose uid is not known.
const UIDS = new Map([
  [101, 1000],
  [102, 1000],
  [103, 1000],
  [104, 1001],
  [105, 1001],
]);
const PIDS = [101, 102, 103, 104, 105, 106];

type Command =
  | { kind: 'read'; pid: number; blocking: boolean }
  | { kind: 'write'; pid: number; bytes: number }
  | { kind: 'poll'; pid: number }
  | { kind: 'exit'; pid: number }
  | { kind: 'jobs'; jobs: number }
  | { kind: 'user-limit'; limit: number | null }
  | { kind: 'advance'; ms: number };

const pid = fc.constantFrom(...PIDS);
const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ kind: fc.constant('read' as const), pid, blocking: fc.boolean() }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('write' as const),
      pid,
      bytes: fc.integer({ min: 1, max: 2 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('poll' as const), pid }) },
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
      kind: fc.constant('user-limit' as const),
      limit: fc.option(fc.integer({ min: 1, max: 3 }), { nil: null }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      ms: fc.integer({ min: 1, max: 700 }),
    }),
  },
);

function usage(snap: SchedulerSnapshot, uid: number): number {
  return snap.holders
    .filter((h) => h.uid === uid)
    .reduce((sum, h) => sum + h.tokens + (h.reserved ? 1 : 0), 0);
}

describe('per-user limit', () => {
  it.each<Fairness>(['least-held', 'fifo'])(
    '%s: no uid goes above the limit, no token idles while an allowed reader waits, nothing lost',
    (fairness) => {
      fc.assert(
        fc.property(
          fc.array(command, { minLength: 1, maxLength: 150 }),
          fc.integer({ min: 1, max: 5 }),
          fc.integer({ min: 1, max: 3 }),
          (commands, jobs, limit) => {
            const h = new Harness({ jobs, fairness, perUserLimit: limit, reservationTtlMs: 500 });
            for (const [p, uid] of UIDS) h.uids.set(p, uid);
            let pollHandle = 1;
            for (const c of commands) {
              const before = h.snapshot;
              switch (c.kind) {
                case 'read':
                  h.read(c.pid, { blocking: c.blocking });
                  break;
                case 'write':
                  h.write(c.pid, c.bytes);
                  break;
                case 'poll':
                  h.poll(c.pid, pollHandle++);
                  break;
                case 'exit':
                  h.exit(c.pid);
                  break;
                case 'jobs':
                  h.send({ type: 'configure', changes: { jobs: c.jobs } });
                  break;
                case 'user-limit':
                  h.send({ type: 'configure', changes: { perUserLimit: c.limit } });
                  break;
                case 'advance':
                  h.advance(c.ms);
                  break;
              }
              const snap = h.snapshot;
              const cap = h.scheduler.settings.perUserLimit;
              for (const uid of [1000, 1001]) {
                // A uid's tokens only grow while it is under the limit in force.
                if (cap !== null && usage(snap, uid) > usage(before, uid))
                  expect(usage(snap, uid)).toBeLessThanOrEqual(cap);
              }
              // A free token and a blocking reader allowed to take it never sit side by side.
              if (snap.available > 0) {
                for (const w of snap.waiters.filter((x) => x.kind === 'read')) {
                  const uid = UIDS.get(w.pid);
                  expect(cap !== null && uid !== undefined && usage(snap, uid) >= cap).toBe(true);
                }
              }
            }
            for (const p of PIDS) h.exit(p);
            h.advance(1000);
            expect(h.pending.size).toBe(0);
            expect(h.snapshot.out).toBe(0);
          },
        ),
        { numRuns: 400 },
      );
    },
  );

  it("one user's builds cannot take the whole pool from another's: -j4, 2 per user", () => {
    const h = new Harness({ jobs: 4, perUserLimit: 2 });
    h.uids.set(1, 1000).set(2, 1000).set(3, 1001);
    h.take(1, 2); // alice's first build takes her share
    const aliceMore = h.read(2); // her second build waits...
    expect(h.gotToken(aliceMore)).toBe(false);
    const bob = h.read(3); // ...while bob, arriving later, gets one at once
    expect(h.gotToken(bob)).toBe(true);
    expect(h.snapshot.available).toBe(1);
    h.write(1); // alice gives one back: her waiting build gets it
    expect(h.gotToken(aliceMore)).toBe(true);
  });
});
