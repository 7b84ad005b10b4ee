import { describe, expect, it } from 'vitest';
import { RESERVATION_YIELD_MS, Scheduler, validateConfigChanges } from '../../src/core/index.js';
import { Harness } from './harness.js';

describe('reads and writes', () => {
  it('grants at most one token per read, whatever the read size', () => {
    const h = new Harness({ jobs: 4 });
    const id = h.read(100, { sizeBytes: 4096 });
    expect(h.reply(id)).toEqual({ kind: 'token', byte: 0x2b });
    expect(h.snapshot.out).toBe(1);
    expect(h.reply(h.read(100, { sizeBytes: 0 }))).toEqual({ kind: 'empty' });
  });

  it('a blocking read waits in the queue until a token comes back', () => {
    const h = new Harness({ jobs: 1 });
    h.take(100);
    const waiting = h.read(200);
    expect(h.reply(waiting)).toBeUndefined();
    expect(h.snapshot.waiting).toBe(1);
    expect(h.write(100)).toEqual({ kind: 'written', countBytes: 1 });
    expect(h.gotToken(waiting)).toBe(true);
    expect(h.snapshot.holders).toMatchObject([{ pid: 200, tokens: 1 }]);
  });

  it('an O_NONBLOCK read with no token gets EAGAIN and does not queue', () => {
    const h = new Harness({ jobs: 1 });
    h.take(100);
    expect(h.errno(h.read(200, { blocking: false }))).toBe('EAGAIN');
    expect(h.snapshot.waiting).toBe(0);
    h.write(100);
    expect(h.gotToken(h.read(200, { blocking: false }))).toBe(true);
  });

  it('accounts per process, not per open file: read on one file, write on another', () => {
    const h = new Harness({ jobs: 2 });
    h.read(100, { fileId: 1 });
    expect(h.write(100, 1, 2)).toEqual({ kind: 'written', countBytes: 1 });
    expect(h.snapshot.out).toBe(0);
  });

  it('a write beyond what the process holds is short, then ENOSPC', () => {
    const h = new Harness({ jobs: 4 });
    h.take(100, 2);
    expect(h.write(100, 3)).toEqual({ kind: 'written', countBytes: 2 });
    expect(h.write(100, 1)).toEqual({ kind: 'error', errno: 'ENOSPC' });
    expect(h.snapshot).toMatchObject({ out: 0, available: 4 });
  });

  it('drops the first unowned byte of a process that never acquired, without growing the pool', () => {
    const h = new Harness({ jobs: 2 });
    expect(h.write(300)).toEqual({ kind: 'written', countBytes: 1 });
    expect(h.write(300)).toEqual({ kind: 'error', errno: 'ENOSPC' });
    expect(h.snapshot).toMatchObject({ out: 0, available: 2, capacity: 2 });
    // A process that did acquire gets no such grace once it holds nothing.
    h.take(400);
    h.write(400);
    expect(h.write(400)).toEqual({ kind: 'error', errno: 'ENOSPC' });
  });

  it('counts pid 0 (another pid namespace) per open file and reclaims on the last close', () => {
    const h = new Harness({ jobs: 2 });
    h.send({ type: 'open', fileId: 7, pid: 0 });
    h.send({ type: 'open', fileId: 8, pid: 0 });
    h.read(0, { fileId: 7 });
    h.read(0, { fileId: 8 });
    expect(h.snapshot.holders.map((x) => x.client).sort()).toEqual(['file:7', 'file:8']);
    expect(h.write(0, 1, 8)).toEqual({ kind: 'written', countBytes: 1 });
    h.send({ type: 'close', fileId: 7 });
    expect(h.snapshot).toMatchObject({ out: 0, available: 2, openFiles: 1 });
  });

  it('watches each new process once', () => {
    const h = new Harness({ jobs: 2 });
    h.read(100);
    h.read(100);
    expect(h.effects.filter((e) => e.type === 'watch')).toEqual([{ type: 'watch', pid: 100 }]);
  });
});

describe('interrupts and exits', () => {
  it('answers an interrupted waiter with EINTR once and loses nothing', () => {
    const h = new Harness({ jobs: 1 });
    h.take(100);
    const id = h.read(200);
    h.interrupt(id);
    expect(h.errno(id)).toBe('EINTR');
    h.interrupt(id); // a late duplicate: no second reply (the harness fails on one)
    expect(h.snapshot.waiting).toBe(0);
    h.write(100);
    expect(h.snapshot).toMatchObject({ out: 0, available: 1 });
  });

  it('an interrupt for an answered request does nothing', () => {
    const h = new Harness({ jobs: 1 });
    const id = h.read(100);
    const before = h.effects.length;
    h.interrupt(id);
    expect(h.effects.slice(before).filter((e) => e.type === 'reply')).toEqual([]);
  });

  it('process exit returns every token, answers its waiters and drops its poll handles', () => {
    const h = new Harness({ jobs: 3 });
    h.take(100, 3);
    const waiting = h.read(100);
    h.poll(100, 55, 2);
    const other = h.read(200);
    h.exit(100);
    expect(h.errno(waiting)).toBe('EINTR');
    expect(h.dropped).toContain(55);
    expect(h.gotToken(other)).toBe(true);
    expect(h.snapshot).toMatchObject({ out: 1, waiting: 0 });
    const reclaim = h.effects.find((e) => e.type === 'record' && e.record.type === 'reclaim');
    expect(reclaim).toMatchObject({ record: { pid: 100, tokens: 3, reason: 'exit' } });
  });
});

describe('poll reservations', () => {
  it('reserves a free token for a poller: POLLIN, and only that process can read it', () => {
    const h = new Harness({ jobs: 1 });
    expect(h.poll(100, 11)).toEqual({ kind: 'poll', readable: true });
    expect(h.dropped).toContain(11);
    expect(h.snapshot).toMatchObject({ out: 1, reserved: 1 });
    expect(h.errno(h.read(200, { blocking: false }))).toBe('EAGAIN');
    expect(h.gotToken(h.read(100, { blocking: false }))).toBe(true);
    expect(h.snapshot).toMatchObject({ out: 1, reserved: 0 });
  });

  it('pollers and blocking readers wait in one queue; a returned token is reserved for the poller ahead', () => {
    const h = new Harness({ jobs: 1 });
    h.take(100);
    expect(h.poll(200, 21)).toEqual({ kind: 'poll', readable: false });
    const blocked = h.read(300);
    h.write(100);
    expect(h.notified).toEqual([21]);
    expect(h.reply(blocked)).toBeUndefined();
    expect(h.poll(200, 22)).toEqual({ kind: 'poll', readable: true });
    expect(h.gotToken(h.read(200, { blocking: false }))).toBe(true);
    h.write(200);
    expect(h.gotToken(blocked)).toBe(true);
  });

  it('an unused reservation passes on after RESERVATION_YIELD_MS while someone else waits', () => {
    const h = new Harness({ jobs: 1, reservationTtlMs: 500 });
    h.take(100);
    h.poll(200, 21);
    const blocked = h.read(300);
    h.write(100);
    expect(h.timerAtMs).toBe(RESERVATION_YIELD_MS);
    h.advance(RESERVATION_YIELD_MS - 1);
    expect(h.reply(blocked)).toBeUndefined();
    h.advance(1);
    expect(h.gotToken(blocked)).toBe(true);
    expect(h.snapshot.reserved).toBe(0);
    expect(h.timerAtMs).toBeNull();
  });

  it('while nobody else waits, an unused reservation lasts the TTL; a waiter arriving later cuts it short', () => {
    const h = new Harness({ jobs: 1, reservationTtlMs: 500 });
    h.poll(200, 21);
    expect(h.snapshot.reserved).toBe(1);
    expect(h.timerAtMs).toBe(500);
    h.advance(200);
    expect(h.snapshot.reserved).toBe(1); // nobody else wants it: the poller may still read
    const late = h.read(300); // someone waits now: the reservation is long past its 50 ms
    expect(h.timerAtMs).toBe(RESERVATION_YIELD_MS);
    h.advance(0);
    expect(h.gotToken(late)).toBe(true);
  });

  it('a repeated poll keeps its place and replaces the handle', () => {
    const h = new Harness({ jobs: 1 });
    h.take(100);
    h.poll(200, 21);
    h.read(300);
    h.poll(200, 22);
    expect(h.dropped).toContain(21);
    h.write(100);
    expect(h.notified).toEqual([22]);
  });

  it('a poller whose process also has a blocked reader gives the token to that reader', () => {
    const h = new Harness({ jobs: 1 });
    h.take(100);
    h.poll(200, 21, 1);
    const reader = h.read(200, { fileId: 2 });
    h.write(100);
    expect(h.gotToken(reader)).toBe(true);
    expect(h.notified).toEqual([]);
  });

  it('closing a file drops the poll waiters on it', () => {
    const h = new Harness({ jobs: 1 });
    h.take(100);
    h.send({ type: 'open', fileId: 5, pid: 200 });
    h.poll(200, 31, 5);
    h.send({ type: 'close', fileId: 5 });
    expect(h.dropped).toContain(31);
    expect(h.snapshot.waiting).toBe(0);
  });
});

describe('grant order', () => {
  it('least-held: the process holding fewest tokens goes first', () => {
    const h = new Harness({ jobs: 4 });
    h.take(100, 3);
    h.take(200, 1);
    const big = h.read(100);
    const small = h.read(300);
    h.write(200);
    expect(h.gotToken(small)).toBe(true);
    expect(h.reply(big)).toBeUndefined();
  });

  it('fifo: arrival order', () => {
    const h = new Harness({ jobs: 4, fairness: 'fifo' });
    h.take(100, 3);
    h.take(200, 1);
    const big = h.read(100);
    const small = h.read(300);
    h.write(200);
    expect(h.gotToken(big)).toBe(true);
    expect(h.reply(small)).toBeUndefined();
  });

  it('switching the fairness at runtime reorders the waiters', () => {
    const h = new Harness({ jobs: 4, fairness: 'fifo' });
    h.take(100, 3);
    h.take(200, 1);
    const big = h.read(100);
    const small = h.read(300);
    h.send({ type: 'configure', changes: { fairness: 'least-held' } });
    h.write(200);
    expect(h.gotToken(small)).toBe(true);
    expect(h.reply(big)).toBeUndefined();
  });
});

describe('capacity', () => {
  it('a lower job count takes effect as tokens come back', () => {
    const h = new Harness({ jobs: 4 });
    h.take(100, 4);
    h.send({ type: 'configure', changes: { jobs: 2 } });
    expect(h.snapshot.out).toBe(4);
    const waiting = h.read(200);
    h.write(100, 2);
    expect(h.reply(waiting)).toBeUndefined();
    h.write(100, 1);
    expect(h.gotToken(waiting)).toBe(true);
    expect(h.snapshot).toMatchObject({ out: 2, capacity: 2 });
  });

  it('a higher job count wakes waiters at once', () => {
    const h = new Harness({ jobs: 1 });
    h.take(100);
    const a = h.read(200);
    const b = h.read(300);
    h.send({ type: 'configure', changes: { jobs: 3 } });
    expect(h.gotToken(a) && h.gotToken(b)).toBe(true);
  });

  it('caps tokens per process', () => {
    const h = new Harness({ jobs: 4, perProcessLimit: 2 });
    h.take(100, 2);
    const third = h.read(100);
    expect(h.reply(third)).toBeUndefined();
    expect(h.errno(h.read(100, { blocking: false }))).toBe('EAGAIN');
    expect(h.gotToken(h.read(200))).toBe(true);
    h.write(100);
    expect(h.gotToken(third)).toBe(true);
  });

  it('load limit: above it only minJobs tokens go out; re-sampled while someone waits', () => {
    const h = new Harness({ jobs: 4, maxLoadAverage: 2, minJobs: 1, limitRecheckMs: 1000 });
    const first = h.read(100);
    expect(h.gotToken(first)).toBe(true); // within minJobs: no sample needed
    expect(h.sampleRequests).toBe(0);
    const second = h.read(200); // beyond minJobs: waits for a sample
    expect(h.reply(second)).toBeUndefined();
    expect(h.sampleRequests).toBe(1);
    h.send({ type: 'sample', sample: { loadAverage1: 5 } });
    expect(h.reply(second)).toBeUndefined();
    expect(h.snapshot.limitedBy).toBe('load');
    expect(h.timerAtMs).toBe(1000);
    h.advance(1000);
    expect(h.sampleRequests).toBe(2);
    h.send({ type: 'sample', sample: { loadAverage1: 1.5 } });
    expect(h.gotToken(second)).toBe(true);
  });

  it('memory limit: below MemAvailable only minJobs tokens go out', () => {
    const h = new Harness({ jobs: 4, minMemoryAvailableMiB: 2048, minJobs: 2 });
    h.send({ type: 'sample', sample: { memAvailableMiB: 1000 } });
    h.take(100, 2);
    const third = h.read(100);
    expect(h.reply(third)).toBeUndefined();
    expect(h.snapshot).toMatchObject({ capacity: 2, limitedBy: 'memory' });
    h.advance(1000);
    h.send({ type: 'sample', sample: { memAvailableMiB: 8000 } });
    expect(h.gotToken(third)).toBe(true);
  });

  it('memory pressure limit: above PSI some avg10 only minJobs tokens go out', () => {
    const h = new Harness({ jobs: 4, maxMemoryPressureAvg10: 10, minJobs: 1 });
    h.send({ type: 'sample', sample: { memoryPressureSomeAvg10: 25 } });
    h.take(100, 1);
    expect(h.reply(h.read(200))).toBeUndefined();
    expect(h.snapshot.limitedBy).toBe('pressure');
  });

  it('an idle daemon asks for nothing: no timer, no samples', () => {
    const h = new Harness({ jobs: 2, maxLoadAverage: 4 });
    h.send({ type: 'sample', sample: { loadAverage1: 1 } });
    h.take(100);
    h.write(100);
    h.advance(60_000);
    expect(h.timerAtMs).toBeNull();
    expect(h.sampleRequests).toBe(0);
  });
});

describe('configuration', () => {
  it('rejects bad settings with a reason and changes nothing', () => {
    expect(validateConfigChanges({ jobs: 0 })).toMatch(/jobs must be a whole number >= 1/);
    expect(validateConfigChanges({ fairness: 'random' })).toMatch(/fairness must be one of/);
    expect(validateConfigChanges({ bogus: 1 })).toMatch(/unknown setting 'bogus'/);
    expect(validateConfigChanges({ maxLoadAverage: -1 })).toMatch(/>= 0 or null/);
    expect(validateConfigChanges({ perProcessLimit: null, maxLoadAverage: 3.5 })).toBeNull();
    const h = new Harness({ jobs: 2 });
    expect(() => h.send({ type: 'configure', changes: { jobs: 1.5 } })).toThrow(/whole number/);
    expect(h.scheduler.settings.jobs).toBe(2);
    expect(() => new Scheduler({ config: { jobs: -1 } })).toThrow(/jobs/);
  });

  it('records config changes for the control stream', () => {
    const h = new Harness({ jobs: 2 });
    h.send({ type: 'configure', changes: { jobs: 5 } });
    expect(h.effects).toContainEqual({
      type: 'record',
      atMs: 0,
      record: { type: 'config', changes: { jobs: 5 } },
    });
  });
});

describe('memory settling', () => {
  it('near the memory limit, each grant waits for a sample a recheck interval after the last grant', () => {
    const h = new Harness({
      jobs: 8,
      minMemoryAvailableMiB: 3000,
      minJobs: 1,
      limitRecheckMs: 1000,
    });
    h.send({ type: 'sample', sample: { memAvailableMiB: 20_000 } });
    h.take(100, 3); // far from the limit: grants go out freely
    h.nowMs = 10;
    h.send({ type: 'sample', sample: { memAvailableMiB: 5000 } }); // near: below 2 × 3000
    const fourth = h.read(200);
    expect(h.gotToken(fourth)).toBe(true);
    const fifth = h.read(300);
    expect(h.reply(fifth)).toBeUndefined();
    expect(h.snapshot.limitedBy).toBe('memory');
    expect(h.timerAtMs).toBe(1010);
    h.advance(999);
    expect(h.sampleRequests).toBe(0);
    h.advance(1);
    expect(h.sampleRequests).toBe(1);
    h.send({ type: 'sample', sample: { memAvailableMiB: 4500 } });
    expect(h.gotToken(fifth)).toBe(true);
  });
});

describe('found in review', () => {
  it('switching fairness keeps every waiter in the (new) queue', () => {
    const h = new Harness({ jobs: 1 });
    h.take(1);
    const first = h.read(2);
    const second = h.read(3);
    h.send({ type: 'configure', changes: { fairness: 'fifo' } });
    h.write(1);
    expect(h.gotToken(first)).toBe(true);
    h.send({ type: 'configure', changes: { fairness: 'least-held' } });
    h.write(2);
    expect(h.gotToken(second)).toBe(true);
    h.write(3);
    // The queue is empty again: a non-blocking read gets the free token.
    expect(h.gotToken(h.read(4, { blocking: false }))).toBe(true);
  });

  it('a tick that comes a little early re-arms the timer: the reservation still expires', () => {
    const h = new Harness({ jobs: 1, reservationTtlMs: 500 });
    h.poll(1, 11); // reserved for pid 1; pid 2 waits, so it passes on at 50
    const blocked = h.read(2);
    h.nowMs = RESERVATION_YIELD_MS - 0.4;
    h.tick(); // early: nothing expires yet
    expect(h.timerAtMs).toBe(RESERVATION_YIELD_MS);
    h.advance(0.4);
    expect(h.gotToken(blocked)).toBe(true);
  });
});
