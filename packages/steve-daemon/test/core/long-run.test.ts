// Hours of simulated builds against the core on a virtual clock: processes
// come and go and their pids come back, make-like pollers (some stop reading
// after they are woken), cargo-like blocking readers, ninja-like O_NONBLOCK
// readers, signals to blocked readers, kills, runtime job changes, and a load
// and memory that cross the limits while probe samples arrive late. The
// invariants are checked after every event, not only at the end.
import { describe, expect, it } from 'vitest';
import type { SchedulerEffect } from '../../src/core/index.js';
import { Harness } from './harness.js';
import { seededRandom as random } from '@steve/test-support';

type Kind = 'poller' | 'blocking' | 'nonblocking';

interface Proc {
  readonly pid: number;
  readonly kind: Kind;
  /** Job end times (one per token it holds). */
  readonly jobsEndAtMs: number[];
  /** Its blocking read in flight, if any. */
  read: number | null;
  /** Its poll handle while it waits for POLLIN. */
  pollHandle: number | null;
  /** Wants this many tokens in all. */
  readonly wants: number;
  /** Stops reading after it is woken (a make sub-make whose own job ended). */
  readonly ignoresWakeups: boolean;
  nextActionAtMs: number;
}

const JOBS = 6;
const MIN_JOBS = 1;
const RECHECK_MS = 250;
const MIN_MEMORY_MIB = 4000;
const MAX_LOAD = 8;
const PID_MIN = 300;
const PID_SPACE = 40;

/** A cheap assertion for the hot path (vitest's expect costs microseconds a call). */
function check(condition: boolean, what: () => string): void {
  if (!condition) throw new Error(what());
}

function simulate(seed: number, durationMs: number) {
  const rnd = random(seed);
  const h = new Harness({
    jobs: JOBS,
    minJobs: MIN_JOBS,
    limitRecheckMs: RECHECK_MS,
    minMemoryAvailableMiB: MIN_MEMORY_MIB,
    maxLoadAverage: MAX_LOAD,
    reservationTtlMs: 500,
  });
  const procs = new Map<number, Proc>();
  let lastPid = PID_MIN - 1;
  let nextHandle = 1;
  let jobs = JOBS;
  let sampleDueAtMs: number | null = null;
  let lastSampleAtMs = Number.NEGATIVE_INFINITY;
  let lastSampleMet = false;
  const stats = { grants: 0, events: 0, exits: 0, pidReuses: 0, samples: 0, interrupts: 0 };
  const seenPids = new Set<number>();
  const world = (t: number) => ({
    // A load and a memory that drift across the limits every few minutes.
    loadAverage1: 6 + 4 * Math.sin(t / 97_000),
    memAvailableMiB: 6000 + 3000 * Math.sin(t / 151_000),
  });

  const inspect = (effects: SchedulerEffect[]): void => {
    stats.events += 1;
    for (const effect of effects) {
      if (effect.type === 'sample-request') {
        check(sampleDueAtMs === null, () => `two sample requests at once, t=${h.nowMs}`);
        sampleDueAtMs = h.nowMs + Math.floor(rnd() * 5); // the probe answers 0–4 ms later
      }
      if (effect.type === 'notify-poll') {
        for (const p of procs.values())
          if (p.pollHandle === effect.pollHandleId) p.pollHandle = null;
      }
      if (
        effect.type === 'record' &&
        (effect.record.type === 'grant' || effect.record.type === 'reserve') &&
        !(effect.record.type === 'grant' && effect.record.viaReservation)
      ) {
        stats.grants += 1;
        const out = effect.record.out;
        check(out <= jobs, () => `out ${out} above jobs ${jobs} at a grant, t=${h.nowMs}`);
        if (out > MIN_JOBS) {
          // Above minJobs only on a fresh sample that said the limits were met.
          const ageMs = h.nowMs - lastSampleAtMs;
          check(ageMs < RECHECK_MS, () => `grant above minJobs on a ${ageMs} ms old sample`);
          check(
            lastSampleMet,
            () => `grant above minJobs on a sample over the limits, t=${h.nowMs}`,
          );
        }
      }
    }
    // The ledger equals the replies, for every live process.
    const snapshot = h.snapshot;
    const holders = new Map(snapshot.holders.map((x) => [x.pid, x.tokens]));
    let heldByLive = 0;
    for (const p of procs.values()) heldByLive += h.heldByReplies.get(p.pid) ?? 0;
    // Nothing lost: every token out is held by a live process or reserved.
    check(
      snapshot.out === heldByLive + snapshot.reserved,
      () =>
        `out ${snapshot.out}, held by live processes ${heldByLive}, reserved ${snapshot.reserved}`,
    );
    for (const p of procs.values()) {
      const ledger = holders.get(p.pid) ?? 0;
      const replies = h.heldByReplies.get(p.pid) ?? 0;
      check(ledger === replies, () => `pid ${p.pid}: ledger ${ledger}, replies ${replies}`);
    }
  };
  const send = (fn: () => unknown): void => {
    fn();
    inspect(h.effects.slice());
    h.effects.length = 0; // hours of effects would only fill memory
  };
  const held = (p: Proc) => h.heldByReplies.get(p.pid) ?? 0;

  const spawn = (): void => {
    for (let i = 1; i <= PID_SPACE; i++) {
      const pid = PID_MIN + ((lastPid - PID_MIN + i) % PID_SPACE);
      if (procs.has(pid)) continue;
      lastPid = pid;
      if (seenPids.has(pid)) stats.pidReuses += 1;
      seenPids.add(pid);
      const kinds: Kind[] = ['poller', 'blocking', 'nonblocking'];
      procs.set(pid, {
        pid,
        kind: kinds[Math.floor(rnd() * 3)] as Kind,
        jobsEndAtMs: [],
        read: null,
        pollHandle: null,
        wants: 1 + Math.floor(rnd() * 4),
        ignoresWakeups: rnd() < 0.1,
        nextActionAtMs: h.nowMs,
      });
      return;
    }
  };
  const exit = (p: Proc): void => {
    procs.delete(p.pid);
    send(() => h.exit(p.pid));
    check(!h.snapshot.holders.some((x) => x.pid === p.pid), () => `pid ${p.pid} kept tokens`);
    h.heldByReplies.delete(p.pid); // the id may come back as a new process
    stats.exits += 1;
  };

  const act = (p: Proc): void => {
    const now = h.nowMs;
    // Jobs that ended give their token back.
    for (let i = p.jobsEndAtMs.length - 1; i >= 0; i--) {
      if ((p.jobsEndAtMs[i] as number) <= now && held(p) > 0) {
        p.jobsEndAtMs.splice(i, 1);
        send(() => {
          const reply = h.write(p.pid);
          check(reply?.kind === 'written' && reply.countBytes === 1, () => `return refused`);
        });
      }
    }
    if (p.read !== null) {
      const reply = h.reply(p.read);
      if (reply === undefined) {
        if (rnd() < 0.02) {
          send(() => h.interrupt(p.read as number)); // Ctrl-C, SIGCHLD...
          stats.interrupts += 1;
        }
        return;
      }
      p.read = null;
      if (reply.kind === 'token') p.jobsEndAtMs.push(now + 50 + Math.floor(rnd() * 3000));
    }
    if (p.jobsEndAtMs.length >= p.wants) return;
    switch (p.kind) {
      case 'blocking': {
        let id = 0;
        send(() => (id = h.read(p.pid)));
        p.read = id;
        if (h.gotToken(id)) {
          p.read = null;
          p.jobsEndAtMs.push(now + 50 + Math.floor(rnd() * 3000));
        }
        return;
      }
      case 'nonblocking': {
        // Read until EAGAIN (a read waiting for a sample is answered later).
        let id = 0;
        send(() => (id = h.read(p.pid, { blocking: false })));
        if (h.reply(id) === undefined) p.read = id;
        else if (h.gotToken(id)) p.jobsEndAtMs.push(now + 50 + Math.floor(rnd() * 3000));
        return;
      }
      case 'poller': {
        if (p.pollHandle !== null) return; // still waiting for POLLIN
        if (p.ignoresWakeups && p.jobsEndAtMs.length > 0) return;
        const handle = nextHandle++;
        let readable = false;
        send(() => (readable = (h.poll(p.pid, handle) as { readable: boolean }).readable));
        if (!readable) {
          p.pollHandle = handle;
          return;
        }
        let id = 0;
        send(() => (id = h.read(p.pid, { blocking: false })));
        if (h.gotToken(id)) p.jobsEndAtMs.push(now + 50 + Math.floor(rnd() * 3000));
        else if (h.reply(id) === undefined) p.read = id;
        return;
      }
    }
  };

  while (h.nowMs < durationMs) {
    h.nowMs += 1 + Math.floor(rnd() * 60);
    if (h.timerAtMs !== null && h.timerAtMs <= h.nowMs) send(() => h.tick());
    if (sampleDueAtMs !== null && sampleDueAtMs <= h.nowMs) {
      const sample = world(h.nowMs);
      sampleDueAtMs = null;
      lastSampleAtMs = h.nowMs;
      lastSampleMet = sample.loadAverage1 <= MAX_LOAD && sample.memAvailableMiB >= MIN_MEMORY_MIB;
      stats.samples += 1;
      send(() => h.send({ type: 'sample', sample }));
    }
    if (procs.size < 25 && rnd() < 0.05) spawn();
    if (rnd() < 0.0005) {
      jobs = 2 + Math.floor(rnd() * 7);
      send(() => h.send({ type: 'configure', changes: { jobs } }));
    }
    for (const p of [...procs.values()]) {
      if (p.jobsEndAtMs.length === 0 && p.read === null && held(p) === 0 && rnd() < 0.01) {
        exit(p); // done
      } else if (rnd() < 0.0008) {
        exit(p); // killed, whatever it held or waited for
      } else if (p.nextActionAtMs <= h.nowMs) {
        act(p);
        p.nextActionAtMs = h.nowMs + Math.floor(rnd() * 40);
      }
    }
  }
  for (const p of [...procs.values()]) exit(p);
  h.advance(1000);
  return { h, stats };
}

describe('hours of builds', () => {
  it('two virtual hours: ledger exact, limits held on fresh samples, all back at the end', () => {
    const { h, stats } = simulate(12, 2 * 3_600_000);
    expect(h.pending.size).toBe(0);
    expect(h.snapshot).toMatchObject({ out: 0, waiting: 0, reserved: 0 });
    // The run really exercised what it claims to.
    expect(stats.pidReuses).toBeGreaterThan(1000);
    expect(stats.grants).toBeGreaterThan(10_000);
    expect(stats.samples).toBeGreaterThan(1000);
    expect(stats.interrupts).toBeGreaterThan(100);
  }, 120_000);
});
