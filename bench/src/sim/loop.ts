/**
 * A discrete-event loop with a virtual clock: callbacks run in time order
 * (ties in the order they were scheduled). Nothing here reads a real clock.
 */

interface Scheduled {
  readonly atMs: number;
  readonly seq: number;
  readonly run: () => void;
}

export class EventLoop {
  nowMs = 0;
  private seq = 0;
  private readonly heap: Scheduled[] = [];

  /** Run `run` at `atMs` (never earlier than now). */
  at(atMs: number, run: () => void): void {
    this.push({ atMs: Math.max(atMs, this.nowMs), seq: this.seq++, run });
  }

  after(delayMs: number, run: () => void): void {
    this.at(this.nowMs + delayMs, run);
  }

  /** Run until nothing is left or `untilMs` is reached. */
  run(untilMs = Number.POSITIVE_INFINITY): void {
    for (;;) {
      const next = this.pop();
      if (!next) return;
      if (next.atMs > untilMs) {
        this.push(next);
        return;
      }
      this.nowMs = next.atMs;
      next.run();
    }
  }

  private before(a: Scheduled, b: Scheduled): boolean {
    return a.atMs !== b.atMs ? a.atMs < b.atMs : a.seq < b.seq;
  }

  private push(item: Scheduled): void {
    const heap = this.heap;
    heap.push(item);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(heap[i] as Scheduled, heap[parent] as Scheduled)) break;
      [heap[i], heap[parent]] = [heap[parent] as Scheduled, heap[i] as Scheduled];
      i = parent;
    }
  }

  private pop(): Scheduled | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && this.before(heap[l] as Scheduled, heap[m] as Scheduled)) m = l;
        if (r < heap.length && this.before(heap[r] as Scheduled, heap[m] as Scheduled)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m] as Scheduled, heap[i] as Scheduled];
        i = m;
      }
    }
    return top;
  }
}

/** A small seeded PRNG (mulberry32), so every run of a scenario is the same. */
export class Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  between(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  /** Log-normal with the given median and spread (sigma of the log). */
  logNormal(median: number, sigma: number): number {
    const u = Math.max(this.next(), 1e-12);
    const v = this.next();
    const normal = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    return median * Math.exp(sigma * normal);
  }
}
