// The bucketed queue against a model: the best item is always the one a
// full sort by (rank, seq) would pick, whatever order keys arrive in.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ClientQueue, type QueueKey, type QueueSlot } from '../../src/core/client-queue.js';

interface Item {
  readonly id: number;
  queueSlot: QueueSlot | null;
}

type Op =
  | { kind: 'set'; id: number; bucket: number; primary: number }
  | { kind: 'remove'; id: number }
  | { kind: 'peek' };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('set' as const),
      id: fc.nat({ max: 15 }),
      bucket: fc.nat({ max: 4 }),
      primary: fc.nat({ max: 60 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('remove' as const), id: fc.nat({ max: 15 }) }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('peek' as const) }) },
);

describe('ClientQueue', () => {
  it('always yields what a full sort by (rank, seq) yields', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), fc.boolean(), (ops, fifo) => {
        const rank = fifo ? (_b: number, p: number) => p : (b: number, p: number) => b * 8 + p;
        const queue = new ClientQueue<Item>(rank);
        const items = Array.from({ length: 16 }, (_, id): Item => ({ id, queueSlot: null }));
        const model = new Map<number, QueueKey>();
        let seq = 0;
        for (const o of ops) {
          if (o.kind === 'set') {
            const key = { bucket: fifo ? 0 : o.bucket, primary: o.primary, seq: ++seq };
            queue.set(items[o.id] as Item, key);
            model.set(o.id, key);
          } else if (o.kind === 'remove') {
            queue.remove(items[o.id] as Item);
            model.delete(o.id);
          }
          const expected = [...model].sort(
            ([, a], [, b]) =>
              rank(a.bucket, a.primary) - rank(b.bucket, b.primary) || a.seq - b.seq,
          )[0]?.[0];
          expect(queue.peek()?.id).toBe(expected);
          expect(queue.size).toBe(model.size);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
