// A test driver for the scheduler: a virtual clock, request ids, and an
// independent ledger built only from the replies, to check the core against.
import { expect } from 'vitest';
import {
  Scheduler,
  type Reply,
  type SchedulerConfig,
  type SchedulerEffect,
  type SchedulerEvent,
} from '../../src/core/index.js';

export class Harness {
  readonly scheduler: Scheduler;
  nowMs = 0;
  private nextRequestId = 1;
  /** Every effect so far, in order. */
  readonly effects: SchedulerEffect[] = [];
  /** Replies by request id (a second reply for one id fails the test at once). */
  readonly replies = new Map<number, Reply>();
  /** Requests sent and not answered yet, with their pid. */
  readonly pending = new Map<number, { pid: number; kind: 'read' | 'write' | 'poll' }>();
  /** Tokens each pid holds according to the replies alone. */
  readonly heldByReplies = new Map<number, number>();
  notified: number[] = [];
  dropped: number[] = [];
  timerAtMs: number | null = null;
  sampleRequests = 0;

  constructor(config: Partial<SchedulerConfig> & { jobs: number }) {
    this.scheduler = new Scheduler({ config });
  }

  send(event: SchedulerEvent): SchedulerEffect[] {
    const effects = this.scheduler.handle(event, this.nowMs);
    for (const effect of effects) this.apply(effect);
    return effects;
  }

  private apply(effect: SchedulerEffect): void {
    this.effects.push(effect);
    switch (effect.type) {
      case 'reply': {
        expect(
          this.replies.has(effect.requestId),
          `request ${effect.requestId} answered twice`,
        ).toBe(false);
        this.replies.set(effect.requestId, effect.reply);
        const request = this.pending.get(effect.requestId);
        expect(request, `reply to unknown request ${effect.requestId}`).toBeDefined();
        this.pending.delete(effect.requestId);
        if (!request) return;
        const held = this.heldByReplies.get(request.pid) ?? 0;
        if (effect.reply.kind === 'token') this.heldByReplies.set(request.pid, held + 1);
        if (effect.reply.kind === 'written' && request.kind === 'write') {
          this.heldByReplies.set(request.pid, Math.max(0, held - effect.reply.countBytes));
        }
        break;
      }
      case 'notify-poll':
        this.notified.push(effect.pollHandleId);
        break;
      case 'drop-poll-handle':
        this.dropped.push(effect.pollHandleId);
        break;
      case 'timer':
        this.timerAtMs = effect.atMs;
        break;
      case 'sample-request':
        this.sampleRequests += 1;
        break;
      default:
        break;
    }
  }

  /** The uid each pid's requests carry (`perUserLimit`); pids not here send none. */
  readonly uids = new Map<number, number>();

  private uidOf(pid: number): { uid?: number } {
    const uid = this.uids.get(pid);
    return uid === undefined ? {} : { uid };
  }

  private request(pid: number, kind: 'read' | 'write' | 'poll'): number {
    const requestId = this.nextRequestId++;
    this.pending.set(requestId, { pid, kind });
    return requestId;
  }

  /** A read; returns its request id. */
  read(
    pid: number,
    options: { fileId?: number; blocking?: boolean; sizeBytes?: number } = {},
  ): number {
    const requestId = this.request(pid, 'read');
    this.send({
      type: 'read',
      requestId,
      fileId: options.fileId ?? 1,
      pid,
      blocking: options.blocking ?? true,
      sizeBytes: options.sizeBytes ?? 1,
      ...this.uidOf(pid),
    });
    return requestId;
  }

  write(pid: number, sizeBytes = 1, fileId = 1): Reply | undefined {
    const requestId = this.request(pid, 'write');
    this.send({ type: 'write', requestId, fileId, pid, sizeBytes });
    return this.replies.get(requestId);
  }

  poll(pid: number, pollHandleId: number | null, fileId = 1): Reply | undefined {
    const requestId = this.request(pid, 'poll');
    this.send({ type: 'poll', requestId, fileId, pid, pollHandleId, ...this.uidOf(pid) });
    return this.replies.get(requestId);
  }

  interrupt(requestId: number): void {
    this.send({ type: 'interrupt', requestId });
  }

  exit(pid: number): void {
    this.send({ type: 'exit', pid });
  }

  advance(ms: number): void {
    this.nowMs += ms;
    if (this.timerAtMs !== null && this.timerAtMs <= this.nowMs) this.tick();
  }

  /** The timer fires (like an adapter, the harness forgets it: the core must arm the next). */
  tick(): void {
    this.timerAtMs = null;
    this.send({ type: 'tick' });
  }

  reply(requestId: number): Reply | undefined {
    return this.replies.get(requestId);
  }

  gotToken(requestId: number): boolean {
    return this.replies.get(requestId)?.kind === 'token';
  }

  errno(requestId: number): string | undefined {
    const reply = this.replies.get(requestId);
    return reply?.kind === 'error' ? reply.errno : undefined;
  }

  /** Acquire `n` tokens for `pid` with blocking reads that must succeed at once. */
  take(pid: number, n = 1): void {
    for (let i = 0; i < n; i++) expect(this.gotToken(this.read(pid))).toBe(true);
  }

  get snapshot() {
    return this.scheduler.snapshot();
  }
}
