// A limit holds on every grant path (blocking read, O_NONBLOCK read, poll
// reservation) with a sample no older than limitRecheckMs; it does not
// throttle a non-blocking reader while it is met; an idle pool samples nothing.
import { describe, expect, it } from 'vitest';
import { Harness } from './harness.js';

const HOUR_MS = 3_600_000;

describe('limits decide on fresh samples', () => {
  it('blocking reads an hour after the last sample wait for a new one', () => {
    const h = new Harness({ jobs: 7, maxLoadAverage: 2, minJobs: 1, limitRecheckMs: 1000 });
    h.send({ type: 'sample', sample: { loadAverage1: 0.5 } });
    h.nowMs = HOUR_MS; // the load rose meanwhile; nobody asked
    const reads = [101, 102, 103, 104, 105, 106, 107].map((pid) => h.read(pid));
    expect(reads.filter((id) => h.gotToken(id))).toHaveLength(1); // minJobs only
    expect(h.sampleRequests).toBe(1);
    h.send({ type: 'sample', sample: { loadAverage1: 9 } });
    expect(reads.filter((id) => h.gotToken(id))).toHaveLength(1);
    expect(h.snapshot.out).toBe(1);
    h.advance(1000);
    expect(h.sampleRequests).toBe(2);
    h.send({ type: 'sample', sample: { loadAverage1: 1 } });
    expect(reads.filter((id) => h.gotToken(id))).toHaveLength(7);
  });

  it('an O_NONBLOCK read on a stale sample waits for a fresh one, then gets the answer it says', () => {
    const h = new Harness({ jobs: 7, maxLoadAverage: 2, minJobs: 1, limitRecheckMs: 1000 });
    h.send({ type: 'sample', sample: { loadAverage1: 0.5 } });
    h.take(100);
    h.nowMs = HOUR_MS;
    const second = h.read(100, { blocking: false });
    expect(h.reply(second)).toBeUndefined();
    expect(h.sampleRequests).toBe(1);
    h.send({ type: 'sample', sample: { loadAverage1: 9 } });
    expect(h.errno(second)).toBe('EAGAIN');
    expect(h.snapshot.out).toBe(1);
  });

  it('a poll on a stale sample is not told POLLIN until a fresh sample allows it', () => {
    const h = new Harness({ jobs: 4, maxLoadAverage: 2, minJobs: 1, limitRecheckMs: 1000 });
    h.send({ type: 'sample', sample: { loadAverage1: 0.5 } });
    h.take(100);
    h.nowMs = HOUR_MS;
    expect(h.poll(200, 7)).toEqual({ kind: 'poll', readable: false });
    expect(h.sampleRequests).toBe(1);
    h.send({ type: 'sample', sample: { loadAverage1: 9 } });
    expect(h.notified).toEqual([]);
    h.advance(1000);
    h.send({ type: 'sample', sample: { loadAverage1: 1 } });
    expect(h.notified).toEqual([7]);
  });

  it('a non-blocking reader gets every token while the limit is met, after any idle time', () => {
    const h = new Harness({
      jobs: 6,
      minMemoryAvailableMiB: 1000,
      minJobs: 1,
      limitRecheckMs: 1000,
    });
    h.send({ type: 'sample', sample: { memAvailableMiB: 20_000 } });
    h.nowMs = 3000; // idle for 3 s: the sample is stale
    let tokens = 0;
    for (let i = 0; i < 10; i++) {
      const id = h.read(100, { blocking: false });
      // The probe answers a request at once (as /proc/meminfo does in well under 1 ms).
      if (h.reply(id) === undefined)
        h.send({ type: 'sample', sample: { memAvailableMiB: 20_000 } });
      if (h.gotToken(id)) tokens += 1;
      else expect(h.errno(id)).toBe('EAGAIN');
    }
    expect(tokens).toBe(6);
  });

  it('near the memory limit a non-blocking reader still gets a token every recheck interval', () => {
    const h = new Harness({
      jobs: 6,
      minMemoryAvailableMiB: 1000,
      minJobs: 1,
      limitRecheckMs: 1000,
    });
    h.send({ type: 'sample', sample: { memAvailableMiB: 1500 } }); // met, but within 2 × the minimum
    h.take(100); // minJobs
    let tokens = 0;
    for (let second = 1; second <= 5; second++) {
      h.nowMs = second * 1000;
      const id = h.read(100, { blocking: false });
      if (h.reply(id) === undefined) h.send({ type: 'sample', sample: { memAvailableMiB: 1500 } });
      if (h.gotToken(id)) tokens += 1;
      expect(h.errno(h.read(100, { blocking: false }))).toBe('EAGAIN'); // one per interval
    }
    expect(tokens).toBe(5);
  });

  it('near the memory limit, one return does not release a burst to every waiter', () => {
    const h = new Harness({
      jobs: 6,
      minMemoryAvailableMiB: 1000,
      minJobs: 1,
      limitRecheckMs: 1000,
    });
    h.send({ type: 'sample', sample: { memAvailableMiB: 1500 } });
    h.take(100);
    const waiting = [201, 202, 203, 204].map((pid) => h.read(pid));
    h.advance(1000);
    h.send({ type: 'sample', sample: { memAvailableMiB: 1500 } });
    expect(waiting.filter((id) => h.gotToken(id))).toHaveLength(1);
  });

  it('an idle pool asks for nothing, and the first request beyond minJobs asks once', () => {
    const h = new Harness({ jobs: 4, maxLoadAverage: 4, minJobs: 1, limitRecheckMs: 1000 });
    h.send({ type: 'sample', sample: { loadAverage1: 1 } });
    h.take(100);
    h.write(100);
    h.advance(60_000);
    expect(h.timerAtMs).toBeNull();
    expect(h.sampleRequests).toBe(0);
    h.take(100); // within minJobs
    expect(h.sampleRequests).toBe(0);
    const second = h.read(100);
    expect(h.sampleRequests).toBe(1);
    h.send({ type: 'sample', sample: { loadAverage1: 1 } });
    expect(h.gotToken(second)).toBe(true);
    h.write(100, 2);
    h.advance(60_000);
    expect(h.sampleRequests).toBe(1);
    expect(h.timerAtMs).toBeNull();
  });

  it('an interrupted or exiting O_NONBLOCK read that waits for a sample is answered once', () => {
    const h = new Harness({ jobs: 4, maxLoadAverage: 4, minJobs: 1, limitRecheckMs: 1000 });
    h.take(100);
    const a = h.read(200, { blocking: false });
    const b = h.read(300, { blocking: false });
    h.interrupt(a);
    h.interrupt(a); // a duplicate INTERRUPT for the same request: no second reply
    expect(h.errno(a)).toBe('EINTR');
    h.exit(300);
    expect(h.errno(b)).toBe('EINTR');
    h.send({ type: 'sample', sample: { loadAverage1: 1 } });
    expect(h.snapshot.out).toBe(1);
  });
});
