/**
 * The one queue of waiting clients, best first, in O(1) per operation for
 * the common case (the heap it replaces cost O(log n), so a daemon with
 * 10,000 waiting clients did twice the work per event of one with 100).
 *
 * Order (see scheduler.ts): `least-held` ranks a client by
 * `held × aging + grants-so-far-at-its-head-waiter's-arrival`, ties by the
 * head waiter's arrival; `fifo` by the head waiter's arrival alone.
 *
 * Shape: one bucket per `held` value (fifo: a single bucket). New waiters
 * arrive with the newest keys, so a bucket is mostly a FIFO: entries whose
 * key is not the newest (a client whose `held` changed while it waits, or
 * whose next waiter is older than the bucket's tail) go to a small heap
 * beside it. The best entry is the best bucket head; there are as many
 * buckets as distinct `held` values among waiters (a handful). Removal is
 * lazy: an entry is marked dead and skipped when it reaches a head.
 */

import { type HeapItem, IndexedHeap } from './heap.js';

export interface QueueKey {
  /** Bucket: `held` for least-held, 0 for fifo. */
  readonly bucket: number;
  /** Within a bucket: grants at arrival (least-held) or arrival sequence (fifo). */
  readonly primary: number;
  /** Arrival sequence of the head waiter: the tie-break. */
  readonly seq: number;
}

/** An item's place in the queue, kept on the item itself (no lookup table). */
export interface QueueSlot {
  readonly queueKey: QueueKey;
}

/** What the queue holds: anything with a slot for its place. */
export interface Queueable {
  queueSlot: QueueSlot | null;
}

interface Entry<T> extends HeapItem, QueueKey, QueueSlot {
  readonly item: T;
  /** The queue this entry belongs to (a slot left from another queue is ignored). */
  readonly owner: object;
  dead: boolean;
}

function before(a: QueueKey, b: QueueKey): boolean {
  return a.primary !== b.primary ? a.primary < b.primary : a.seq < b.seq;
}

class Bucket<T> {
  private fifo: Array<Entry<T>> = [];
  private head = 0;
  private readonly overflow = new IndexedHeap<Entry<T>>(before);
  private tail: QueueKey | null = null;
  alive = 0;

  add(entry: Entry<T>): void {
    if (this.tail === null || before(this.tail, entry)) {
      this.fifo.push(entry);
      this.tail = entry;
    } else {
      this.overflow.upsert(entry);
    }
    this.alive += 1;
  }

  /** The best live entry, dropping dead ones on the way. */
  best(): Entry<T> | undefined {
    while (this.head < this.fifo.length && (this.fifo[this.head] as Entry<T>).dead) this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.fifo.length) {
      this.fifo = this.fifo.slice(this.head);
      this.head = 0;
    }
    let top = this.overflow.peek();
    while (top?.dead) {
      this.overflow.remove(top);
      top = this.overflow.peek();
    }
    const first = this.fifo[this.head];
    if (first === undefined) return top;
    if (top === undefined) return first;
    return before(top, first) ? top : first;
  }
}

export class ClientQueue<T extends Queueable> {
  private readonly buckets = new Map<number, Bucket<T>>();
  private count = 0;

  /** `rank(bucket, primary)`: lower goes first; ties by `seq`. */
  constructor(private readonly rank: (bucket: number, primary: number) => number) {}

  get size(): number {
    return this.count;
  }

  has(item: T): boolean {
    return this.slotOf(item) !== null;
  }

  /** Put `item` in the queue under `key` (moving it if it is there under another key). */
  set(item: T, key: QueueKey): void {
    const current = this.slotOf(item);
    if (
      current &&
      current.bucket === key.bucket &&
      current.primary === key.primary &&
      current.seq === key.seq
    )
      return;
    if (current) this.kill(current);
    const entry: Entry<T> = {
      item,
      bucket: key.bucket,
      primary: key.primary,
      seq: key.seq,
      queueKey: key,
      owner: this,
      dead: false,
      heapIndex: -1,
    };
    let bucket = this.buckets.get(key.bucket);
    if (!bucket) {
      bucket = new Bucket<T>();
      this.buckets.set(key.bucket, bucket);
    }
    bucket.add(entry);
    item.queueSlot = entry;
    this.count += 1;
  }

  remove(item: T): void {
    const entry = this.slotOf(item);
    if (entry) this.kill(entry);
  }

  /** The best item, or undefined when the queue is empty. */
  peek(): T | undefined {
    let best: Entry<T> | undefined;
    let bestRank = 0;
    for (const [index, bucket] of this.buckets) {
      const candidate = bucket.best();
      if (candidate === undefined) {
        if (bucket.alive === 0) this.buckets.delete(index);
        continue;
      }
      const rank = this.rank(candidate.bucket, candidate.primary);
      if (
        best === undefined ||
        rank < bestRank ||
        (rank === bestRank && candidate.seq < best.seq)
      ) {
        best = candidate;
        bestRank = rank;
      }
    }
    return best?.item;
  }

  /** The item's entry in this queue, if it has one here. */
  private slotOf(item: T): Entry<T> | null {
    const slot = item.queueSlot as Entry<T> | null;
    return slot !== null && slot.owner === this && !slot.dead ? slot : null;
  }

  private kill(entry: Entry<T>): void {
    entry.dead = true;
    entry.item.queueSlot = null;
    this.count -= 1;
    const bucket = this.buckets.get(entry.bucket);
    if (bucket) bucket.alive -= 1;
  }
}
