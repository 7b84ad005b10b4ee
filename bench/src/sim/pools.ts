/**
 * The token pools a simulated build talks to: steve's scheduler core
 * (`CorePool`) and a plain kernel pipe jobserver (`PipePool`, what GNU make
 * 4.4's fifo gives: no accounting, no reservations, a blocked reader takes a
 * token the moment it is written).
 */

import { type SchedulerConfig, type SchedulerRecord, Scheduler } from 'steve-daemon/core';
import type { EventLoop } from './loop.js';
import type { Machine } from './machine.js';

export type ReadResult = 'token' | 'EAGAIN' | 'EINTR';

/** Latencies of the kernel round trips (ms): a reply reaching a reader, a poll wake-up. */
export const REPLY_LATENCY_MS = 0.02;
export const POLL_WAKE_LATENCY_MS = 0.05;

export interface SimPool {
  readonly name: string;
  read(pid: number, blocking: boolean, done: (result: ReadResult) => void): void;
  /** True when readable now; otherwise `wake` runs once when it may be. */
  poll(pid: number, wake: () => void): boolean;
  write(pid: number): void;
  exit(pid: number): void;
  /** Tokens out of the pool right now (held, plus reserved for steve). */
  out(): number;
  /** The longest a token sat reserved and unread while someone waited (steve), null for a pipe. */
  maxUnreadReservationMs?(): number;
  /**
   * Tokens lost for good: out of the pool, yet held by no living process (a
   * pipe cannot get back what a crashed client held). Read it once the run
   * is over.
   */
  lost(): number;
}

export interface CorePoolFaults {
  /**
   * Exits the core is never told of (a pidfd watch that missed the death):
   * the process is gone all the same. Only to show that `lost()` sees it.
   */
  readonly missedExitPids?: ReadonlySet<number>;
}

export class CorePool implements SimPool {
  readonly name: string;
  readonly scheduler: Scheduler;
  /** Processes that have talked to the pool and not exited yet. */
  private readonly livePids = new Set<number>();
  private nextRequestId = 1;
  private nextPollHandleId = 1;
  private readonly pendingReads = new Map<number, (result: ReadResult) => void>();
  private readonly pollWakers = new Map<number, () => void>();
  private timerGeneration = 0;
  private readonly reservedAtMs = new Map<number, number>();
  private longestUnreadReservationMs = 0;

  constructor(
    private readonly loop: EventLoop,
    private readonly machine: Machine | null,
    config: Partial<SchedulerConfig> & { jobs: number },
    private readonly faults: CorePoolFaults = {},
  ) {
    this.scheduler = new Scheduler({ config, records: true });
    this.name = `steve ${config.fairness ?? 'least-held'}`;
  }

  read(pid: number, blocking: boolean, done: (result: ReadResult) => void): void {
    const requestId = this.nextRequestId++;
    this.livePids.add(pid);
    this.pendingReads.set(requestId, done);
    this.send({ type: 'read', requestId, fileId: 1, pid, blocking, sizeBytes: 1 });
  }

  poll(pid: number, wake: () => void): boolean {
    const requestId = this.nextRequestId++;
    const pollHandleId = this.nextPollHandleId++;
    this.livePids.add(pid);
    this.pollWakers.set(pollHandleId, wake);
    let readable = false;
    this.send({ type: 'poll', requestId, fileId: 1, pid, pollHandleId }, (reply) => {
      readable = reply;
    });
    return readable;
  }

  write(pid: number): void {
    this.livePids.add(pid);
    this.send({ type: 'write', requestId: this.nextRequestId++, fileId: 1, pid, sizeBytes: 1 });
  }

  exit(pid: number): void {
    // The process is gone whether or not the core hears of it; what the core
    // still counts as out to it is what lost() reports.
    this.livePids.delete(pid);
    if (this.faults.missedExitPids?.has(pid)) return;
    this.send({ type: 'exit', pid });
  }

  out(): number {
    return this.scheduler.out;
  }

  /**
   * The longest a token sat reserved and unread while another client waited
   * (ms): reservations that expired with a waiter left behind them.
   */
  maxUnreadReservationMs(): number {
    return this.longestUnreadReservationMs;
  }

  /**
   * From the core's own books: every token it counts as out (held plus
   * reserved) minus those held or reserved by a process still alive. Once
   * every simulated process has exited that is all of `snapshot().out`; a
   * ledger entry the exit failed to clear, or an `out` counter that drifted
   * from the ledger, both show up here.
   */
  lost(): number {
    const snapshot = this.scheduler.snapshot();
    let outToLiving = 0;
    for (const holder of snapshot.holders) {
      if (this.livePids.has(holder.pid)) outToLiving += holder.tokens + (holder.reserved ? 1 : 0);
    }
    return snapshot.out - outToLiving;
  }

  private noteReservation(record: SchedulerRecord, batch: ReturnType<Scheduler['handle']>): void {
    if (record.type === 'reserve') this.reservedAtMs.set(record.pid, this.loop.nowMs);
    if (record.type === 'grant' && record.viaReservation) this.reservedAtMs.delete(record.pid);
    if (record.type === 'reservation-expired') {
      const since = this.reservedAtMs.get(record.pid);
      this.reservedAtMs.delete(record.pid);
      // Someone waited behind it: still waiting, or given the token in the same step.
      const passedOn = batch.some(
        (e) =>
          e.type === 'record' &&
          (e.record.type === 'grant' || e.record.type === 'reserve') &&
          e.record.pid !== record.pid,
      );
      if (since !== undefined && (passedOn || this.scheduler.snapshot().waiting > 0))
        this.longestUnreadReservationMs = Math.max(
          this.longestUnreadReservationMs,
          this.loop.nowMs - since,
        );
    }
  }

  private send(
    event: Parameters<Scheduler['handle']>[0],
    onPollReply?: (readable: boolean) => void,
  ): void {
    const effects = this.scheduler.handle(event, this.loop.nowMs);
    for (const effect of effects) {
      if (effect.type === 'record') this.noteReservation(effect.record, effects);
      switch (effect.type) {
        case 'reply': {
          const reply = effect.reply;
          if (reply.kind === 'poll') {
            onPollReply?.(reply.readable);
            break;
          }
          const done = this.pendingReads.get(effect.requestId);
          if (!done) break; // a write's reply
          this.pendingReads.delete(effect.requestId);
          const result: ReadResult =
            reply.kind === 'token'
              ? 'token'
              : reply.kind === 'error' && reply.errno === 'EAGAIN'
                ? 'EAGAIN'
                : 'EINTR';
          this.loop.after(REPLY_LATENCY_MS, () => done(result));
          break;
        }
        case 'notify-poll': {
          const wake = this.pollWakers.get(effect.pollHandleId);
          this.pollWakers.delete(effect.pollHandleId);
          if (wake) this.loop.after(POLL_WAKE_LATENCY_MS, wake);
          break;
        }
        case 'drop-poll-handle':
          this.pollWakers.delete(effect.pollHandleId);
          break;
        case 'timer': {
          const generation = ++this.timerGeneration;
          if (effect.atMs !== null) {
            this.loop.at(effect.atMs, () => {
              if (generation === this.timerGeneration) this.send({ type: 'tick' });
            });
          }
          break;
        }
        case 'sample-request': {
          const machine = this.machine;
          this.loop.after(0.05, () =>
            this.send({
              type: 'sample',
              sample: machine ? { memAvailableMiB: machine.memAvailableMiB(this.loop.nowMs) } : {},
            }),
          );
          break;
        }
        default:
          break;
      }
    }
  }
}

export class PipePool implements SimPool {
  readonly name = 'plain pipe';
  private inPipe: number;
  private readonly blockedReaders: Array<(result: ReadResult) => void> = [];
  private pollers: Array<() => void> = [];
  private readonly heldBy = new Map<number, number>();
  private lostTokens = 0;

  constructor(
    private readonly loop: EventLoop,
    private readonly jobs: number,
  ) {
    this.inPipe = jobs;
  }

  read(pid: number, blocking: boolean, done: (result: ReadResult) => void): void {
    if (this.inPipe > 0) {
      this.inPipe -= 1;
      this.heldBy.set(pid, (this.heldBy.get(pid) ?? 0) + 1);
      this.loop.after(REPLY_LATENCY_MS, () => done('token'));
      return;
    }
    if (!blocking) {
      this.loop.after(REPLY_LATENCY_MS, () => done('EAGAIN'));
      return;
    }
    this.blockedReaders.push((result) => {
      this.heldBy.set(pid, (this.heldBy.get(pid) ?? 0) + 1);
      done(result);
    });
  }

  poll(_pid: number, wake: () => void): boolean {
    if (this.inPipe > 0) return true;
    this.pollers.push(wake);
    return false;
  }

  write(pid: number): void {
    this.heldBy.set(pid, Math.max(0, (this.heldBy.get(pid) ?? 0) - 1));
    const reader = this.blockedReaders.shift();
    if (reader) {
      // A reader asleep in pipe_read() takes the byte before any poller runs.
      this.loop.after(REPLY_LATENCY_MS, () => reader('token'));
      return;
    }
    this.inPipe += 1;
    const pollers = this.pollers;
    this.pollers = [];
    for (const wake of pollers) this.loop.after(POLL_WAKE_LATENCY_MS, wake);
  }

  exit(pid: number): void {
    // The kernel pipe never learns what a dead client held: those tokens are gone.
    this.lostTokens += this.heldBy.get(pid) ?? 0;
    this.heldBy.delete(pid);
  }

  out(): number {
    return this.jobs - this.inPipe;
  }

  lost(): number {
    return this.lostTokens;
  }
}
