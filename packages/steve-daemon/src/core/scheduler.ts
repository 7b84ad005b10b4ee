/**
 * The token scheduler: one pool of job tokens, a ledger per client process,
 * one fair queue for blocking readers and pollers, poll reservations, and
 * the capacity limits. See DESIGN.md, "The jobserver protocol as served".
 *
 * Deterministic and free of I/O: `handle(event, nowMs)` changes the state
 * and returns the effects for the adapters to carry out. Given the same
 * events at the same times it always returns the same effects, which is what
 * lets tests and the simulator drive it with a virtual clock.
 */

import { InvalidArgumentError, TOKEN_BYTE } from '@steve/protocol';
import { defaultConfig, validateConfigChanges } from './config.js';
import { ClientQueue, type QueueKey, type QueueSlot } from './client-queue.js';
import type {
  FileId,
  HolderInfo,
  PollHandleId,
  ProbeSample,
  Reply,
  RequestId,
  SchedulerConfig,
  SchedulerEffect,
  SchedulerEvent,
  SchedulerRecord,
  SchedulerSnapshot,
  WaiterInfo,
} from './types.js';

/**
 * Aging for `least-held`: a waiter's rank is `held × AGING + grants so far at
 * its arrival` (lower goes first, ties by arrival). Newcomers holding fewer
 * tokens overtake a client holding `h` only during the first `h × AGING`
 * grants after it started waiting, so it is passed over at most
 * `h × AGING + (other waiting clients)` times. The no-starvation property
 * test checks exactly that bound.
 */
export const AGING_GRANTS_PER_HELD_TOKEN = 8;

interface Waiter {
  readonly seq: number;
  readonly kind: 'read' | 'poll';
  readonly client: Client;
  readonly fileId: FileId;
  /** For reads: the request to answer. */
  readonly requestId: RequestId;
  /** For polls: the newest handle to notify (the kernel may send several). */
  pollHandleId: PollHandleId;
  readonly arrivedMs: number;
  readonly grantsAtArrival: number;
  /** Links in its client's list of waiters, oldest first. */
  prev: Waiter | null;
  next: Waiter | null;
  queued: boolean;
}

/**
 * An O_NONBLOCK read that could be granted but for a stale probe sample: it
 * is answered (token or EAGAIN) as soon as the sample it asked for arrives,
 * typically well under a millisecond later. Without this, a non-blocking
 * reader (ninja) would be decided on an old sample, or throttled because no
 * one waits and so no sample is ever taken.
 */
interface SampleWait {
  readonly requestId: RequestId;
  readonly client: Client;
  readonly fileId: FileId;
}

interface Reservation {
  readonly expiresAtMs: number;
  /** Earlier end while another client waits (RESERVATION_YIELD_MS after it was made). */
  readonly yieldsAtMs: number;
}

/**
 * A reservation nobody reads passes on this soon when another client waits,
 * whatever `reservationTtlMs` says. A poller told POLLIN reads within a
 * millisecond or two (make, Portage, our client); one that does not read by
 * then has usually stopped wanting the token (a sub-make whose own job ended,
 * Portage's reader after its last job), and the token would otherwise sit
 * reserved for the whole TTL while others wait.
 */
export const RESERVATION_YIELD_MS = 50;

interface Client {
  /** Its place in the queue while it waits and may take a token. */
  queueSlot: QueueSlot | null;
  /** The key in `clients`. */
  readonly id: number;
  /** `pid:N`, or `file:N` for a caller outside our pid namespace (pid 0). */
  readonly key: string;
  readonly pid: number;
  /** The uid its requests came from (`perUserLimit`), or null while unknown. */
  uid: number | null;
  readonly firstSeenMs: number;
  held: number;
  holdingSinceMs: number;
  everAcquired: boolean;
  unownedByteDropped: boolean;
  reservation: Reservation | null;
  /** Waiting reads and polls, in arrival order. */
  /** Waiting reads and polls, oldest first (a linked list through the waiters). */
  head: Waiter | null;
  tail: Waiter | null;
  waiterCount: number;
  /** Poll waiters by file (one per file per client); created on the first poll. */
  pollWaiters: Map<FileId, Waiter> | null;
  /** Its O_NONBLOCK reads waiting for a fresh sample (see SampleWait). */
  sampleWaits: number;
  /** How many of `held` it read through each open file (see `inherited`). */
  heldByFile: Map<FileId, number> | null;
}

export interface SchedulerOptions {
  /** Initial settings; anything missing comes from `defaultConfig(jobs)`. */
  readonly config?: Partial<SchedulerConfig> & { readonly jobs: number };
  /** Emit `record` effects (the log and control stream). Default true. */
  readonly records?: boolean;
}

export class Scheduler {
  private config: SchedulerConfig;
  private readonly emitRecords: boolean;

  /** Clients by pid, and by `-(fileId + 1)` for pid-0 (per-file) clients. */
  private readonly clients = new Map<number, Client>();
  /** Clients by uid, kept only for `perUserLimit`. */
  private readonly clientsByUid = new Map<number, Set<Client>>();
  private readonly openFiles = new Set<FileId>();
  private readonly readWaiters = new Map<RequestId, Waiter>();
  /** O_NONBLOCK reads waiting for a fresh sample, in arrival order. */
  private readonly sampleWaits = new Map<RequestId, SampleWait>();
  /** Poll waiters by the file they polled, to drop them when it closes. */
  private readonly pollWaitersByFile = new Map<FileId, Set<Waiter>>();
  /**
   * Tokens of processes that exited while the file they read them through was
   * still open, by file. A token follows its open file description while
   * another live process has it open: a parent that acquires, forks and exits
   * leaves the job (and its token) to the child, and a SIGKILLed make leaves
   * its tokens to the recipes still running on its inherited `3<>FILE`. A
   * write on that file by a process that holds nothing returns one of them;
   * the file's last close returns the rest.
   */
  private readonly inherited = new Map<FileId, number>();
  /**
   * Unowned bytes dropped on a file, by file: a forked child may return the
   * token before the daemon has seen its parent exit. When that parent's
   * tokens pass to the file, these are taken off first (they already came
   * back). Forgotten at the file's last close.
   */
  private readonly droppedOnFile = new Map<FileId, number>();
  /** Clients holding a reservation (at most `jobs` of them). */
  private readonly reservedClients = new Set<Client>();
  private queue: ClientQueue<Client>;

  private held = 0;
  private reservations = 0;
  private waiting = 0;
  private grants = 0;
  private seq = 0;

  private lastSample: ProbeSample | null = null;
  private lastSampleAtMs: number | null = null;
  private samplePending = false;
  /** When the last token went out (a read grant or a new reservation). */
  private lastGrantAtMs = Number.NEGATIVE_INFINITY;
  private timerAtMs: number | null = null;

  private effects: SchedulerEffect[] = [];
  private now = 0;

  constructor(options: SchedulerOptions) {
    const base = defaultConfig(options.config?.jobs ?? 1);
    const changes = { ...options.config };
    const problem = validateConfigChanges(changes);
    if (problem !== null) throw new InvalidArgumentError(problem);
    this.config = { ...base, ...changes };
    this.emitRecords = options.records ?? true;
    this.queue = this.newQueue(this.config);
  }

  /** Apply one event at time `nowMs`; returns what the adapters must do. */
  handle(event: SchedulerEvent, nowMs: number): SchedulerEffect[] {
    this.now = nowMs;
    this.effects = [];
    switch (event.type) {
      case 'open':
        this.openFiles.add(event.fileId);
        break;
      case 'close':
        this.onClose(event.fileId);
        break;
      case 'read':
        this.onRead(
          event.requestId,
          event.fileId,
          event.pid,
          event.blocking,
          event.sizeBytes,
          event.uid,
        );
        break;
      case 'write':
        this.onWrite(event.requestId, event.fileId, event.pid, event.sizeBytes);
        break;
      case 'poll':
        this.onPoll(event.requestId, event.fileId, event.pid, event.pollHandleId, event.uid);
        break;
      case 'interrupt':
        this.onInterrupt(event.requestId);
        break;
      case 'exit':
        this.onExit(event.pid);
        break;
      case 'configure':
        this.onConfigure(event.changes);
        break;
      case 'tick':
        this.onTick();
        break;
      case 'sample':
        this.lastSample = event.sample;
        this.lastSampleAtMs = nowMs;
        this.samplePending = false;
        break;
    }
    this.dispatch();
    this.answerSampleWaits();
    this.maybeRequestSample();
    this.updateTimer();
    return this.effects;
  }

  /** The settings in force. */
  get settings(): SchedulerConfig {
    return this.config;
  }

  /** Tokens out (held plus reserved). */
  get out(): number {
    return this.held + this.reservations;
  }

  /** Tokens out beyond the capacity (after a lower job count or a limit): 0 when within it. */
  get surplus(): number {
    return Math.max(0, this.out - this.capacity());
  }

  /** The pool at this moment. */
  snapshot(): SchedulerSnapshot {
    const holders: HolderInfo[] = [];
    const waiters: WaiterInfo[] = [];
    for (const client of this.clients.values()) {
      if (client.held > 0 || client.reservation !== null) {
        holders.push({
          client: client.key,
          pid: client.pid,
          tokens: client.held,
          reserved: client.reservation !== null,
          uid: client.uid,
          holdingSinceMs: client.holdingSinceMs,
          firstSeenMs: client.firstSeenMs,
        });
      }
      for (let waiter = client.head; waiter !== null; waiter = waiter.next) {
        waiters.push({
          client: client.key,
          pid: client.pid,
          kind: waiter.kind,
          waitingSinceMs: waiter.arrivedMs,
        });
      }
    }
    for (const [fileId, tokens] of this.inherited) {
      holders.push({
        client: inheritedKey(fileId),
        pid: 0,
        tokens,
        reserved: false,
        uid: null,
        holdingSinceMs: this.now,
        firstSeenMs: this.now,
      });
    }
    waiters.sort((a, b) => a.waitingSinceMs - b.waitingSinceMs);
    const capacity = this.capacity();
    return {
      config: this.config,
      capacity,
      out: this.out,
      reserved: this.reservations,
      available: Math.max(0, capacity - this.out),
      waiting: this.waiting,
      openFiles: this.openFiles.size,
      limitedBy: this.limitedBy(),
      holders,
      waiters,
      lastSample: this.lastSample,
    };
  }

  // ---- events --------------------------------------------------------------

  private onRead(
    requestId: RequestId,
    fileId: FileId,
    pid: number,
    blocking: boolean,
    sizeBytes: number,
    uid: number | undefined,
  ): void {
    if (sizeBytes <= 0) {
      this.reply(requestId, { kind: 'empty' });
      return;
    }
    const client = this.clientFor(pid, fileId, uid);
    if (client.reservation !== null) {
      this.consumeReservation(client);
      this.giveToken(client, requestId, fileId, true);
      return;
    }
    if (client.waiterCount === 0 && this.canGrantNow(client)) {
      this.giveToken(client, requestId, fileId, false);
      return;
    }
    if (!blocking) {
      if (client.waiterCount === 0 && this.grantableOnFreshSample(client)) {
        this.sampleWaits.set(requestId, { requestId, client, fileId });
        client.sampleWaits += 1;
      } else {
        this.reply(requestId, { kind: 'error', errno: 'EAGAIN' });
      }
      return;
    }
    const waiter = this.newWaiter('read', client, fileId, requestId, 0);
    this.readWaiters.set(requestId, waiter);
    this.enqueue(waiter);
  }

  private onWrite(requestId: RequestId, fileId: FileId, pid: number, sizeBytes: number): void {
    if (sizeBytes <= 0) {
      this.reply(requestId, { kind: 'written', countBytes: 0 });
      return;
    }
    const client = this.clientFor(pid, fileId);
    const inheritedOnFile = this.inherited.get(fileId) ?? 0;
    if (client.held > 0 || inheritedOnFile > 0) {
      // Its own tokens first, then those its file inherited from a process
      // that exited; bytes beyond both are refused on the next write (ENOSPC).
      const own = Math.min(sizeBytes, client.held);
      const fromFile = Math.min(sizeBytes - own, inheritedOnFile);
      const tokens = own + fromFile;
      this.forgetHeld(client, fileId, own);
      client.held -= own;
      this.held -= tokens;
      if (fromFile > 0) {
        if (inheritedOnFile === fromFile) this.inherited.delete(fileId);
        else this.inherited.set(fileId, inheritedOnFile - fromFile);
      }
      this.record({
        type: 'return',
        pid: client.pid,
        client: client.key,
        tokens,
        held: client.held,
        out: this.out,
      });
      this.refreshQueuePosition(client);
      this.reply(requestId, { kind: 'written', countBytes: tokens });
      return;
    }
    if (!client.everAcquired && !client.unownedByteDropped) {
      // Older clients write back their implicit slot once; accept and drop
      // that byte without growing the pool (DESIGN.md, write).
      client.unownedByteDropped = true;
      if (this.openFiles.has(fileId))
        this.droppedOnFile.set(fileId, (this.droppedOnFile.get(fileId) ?? 0) + 1);
      this.record({ type: 'unowned-byte-dropped', pid: client.pid, client: client.key });
      this.reply(requestId, { kind: 'written', countBytes: 1 });
      return;
    }
    this.record({ type: 'enospc', pid: client.pid, client: client.key, bytes: sizeBytes });
    this.reply(requestId, { kind: 'error', errno: 'ENOSPC' });
  }

  private onPoll(
    requestId: RequestId,
    fileId: FileId,
    pid: number,
    pollHandleId: PollHandleId | null,
    uid: number | undefined,
  ): void {
    const client = this.clientFor(pid, fileId, uid);
    let readable = client.reservation !== null;
    if (!readable && client.waiterCount === 0 && this.canGrantNow(client)) {
      this.reserve(client);
      readable = true;
    }
    if (readable) {
      if (pollHandleId !== null) this.effects.push({ type: 'drop-poll-handle', pollHandleId });
    } else if (pollHandleId !== null) {
      const existing = client.pollWaiters?.get(fileId);
      if (existing) {
        // Keep its place in the queue; only the handle to notify changes.
        if (existing.pollHandleId !== pollHandleId) {
          this.effects.push({ type: 'drop-poll-handle', pollHandleId: existing.pollHandleId });
          existing.pollHandleId = pollHandleId;
        }
      } else {
        const waiter = this.newWaiter('poll', client, fileId, -1, pollHandleId);
        (client.pollWaiters ??= new Map()).set(fileId, waiter);
        this.enqueue(waiter);
      }
    }
    this.reply(requestId, { kind: 'poll', readable });
  }

  private onInterrupt(requestId: RequestId): void {
    const sampleWait = this.sampleWaits.get(requestId);
    if (sampleWait) {
      this.sampleWaits.delete(requestId);
      sampleWait.client.sampleWaits -= 1;
      this.reply(requestId, { kind: 'error', errno: 'EINTR' });
      return;
    }
    const waiter = this.readWaiters.get(requestId);
    if (!waiter) return; // already answered: nothing to do, never a second reply
    this.removeWaiter(waiter);
    this.record({ type: 'interrupted', pid: waiter.client.pid, client: waiter.client.key });
    this.reply(requestId, { kind: 'error', errno: 'EINTR' });
  }

  private onExit(pid: number): void {
    const client = pid > 0 ? this.clients.get(pid) : undefined;
    if (!client) return;
    this.dropClient(client, 'exit');
  }

  private onClose(fileId: FileId): void {
    this.openFiles.delete(fileId);
    this.droppedOnFile.delete(fileId);
    const inherited = this.inherited.get(fileId);
    if (inherited !== undefined) {
      // Its last close: nobody can hold a token through it any more.
      this.inherited.delete(fileId);
      this.held -= inherited;
      this.record({
        type: 'reclaim',
        pid: 0,
        client: inheritedKey(fileId),
        tokens: inherited,
        reason: 'close',
        out: this.out,
      });
    }
    // Per-file accounting (pid 0): the last close ends the client.
    const fileClient = this.clients.get(-(fileId + 1));
    if (fileClient) this.dropClient(fileClient, 'close');
    // Poll waiters on this file can never be notified through it again.
    for (const waiter of [...(this.pollWaitersByFile.get(fileId) ?? [])]) {
      this.removeWaiter(waiter);
      this.effects.push({ type: 'drop-poll-handle', pollHandleId: waiter.pollHandleId });
    }
  }

  private onConfigure(changes: Partial<SchedulerConfig>): void {
    const problem = validateConfigChanges(changes);
    if (problem !== null) throw new InvalidArgumentError(problem);
    const before = this.config;
    this.config = { ...this.config, ...changes };
    if (before.fairness !== this.config.fairness) {
      this.queue = this.newQueue(this.config);
      for (const client of this.clients.values()) {
        client.queueSlot = null; // its slot was in the old queue
        this.refreshQueuePosition(client);
      }
    }
    if (
      before.perProcessLimit !== this.config.perProcessLimit ||
      before.perUserLimit !== this.config.perUserLimit
    ) {
      for (const client of this.clients.values()) this.refreshQueuePosition(client);
    }
    const limitsWereOff = !this.limitsConfigured(before);
    if (limitsWereOff && this.limitsConfigured(this.config)) {
      // A new limit decides on a fresh sample.
      this.lastSampleAtMs = null;
    }
    this.record({ type: 'config', changes });
  }

  private onTick(): void {
    // The timer that brought us here is spent (it may even have fired a
    // little early): always tell the adapter what to arm next.
    this.timerAtMs = Number.NaN;
    for (const client of [...this.reservedClients]) {
      if (client.reservation !== null && this.reservationEndsAtMs(client.reservation) <= this.now) {
        this.dropReservation(client);
        this.record({
          type: 'reservation-expired',
          pid: client.pid,
          client: client.key,
          out: this.out,
        });
        this.refreshQueuePosition(client);
      }
    }
  }

  // ---- granting ------------------------------------------------------------

  /** Grant to waiters, best first, while the capacity allows. */
  private dispatch(): void {
    // The capacity is taken again after every grant: near the memory limit a
    // grant itself lowers it (settling).
    while (this.out < this.grantCapacity()) {
      const client = this.queue.peek();
      if (!client) return;
      let readWaiter: Waiter | undefined;
      for (let waiter = client.head; waiter !== null; waiter = waiter.next) {
        if (waiter.kind === 'read') {
          readWaiter = waiter;
          break;
        }
      }
      if (readWaiter) {
        // A blocking reader of this process takes the token directly.
        this.removeWaiter(readWaiter);
        this.giveToken(client, readWaiter.requestId, readWaiter.fileId, false);
      } else {
        this.reserve(client);
      }
    }
  }

  private giveToken(
    client: Client,
    requestId: RequestId,
    fileId: FileId,
    viaReservation: boolean,
  ): void {
    if (client.held === 0) client.holdingSinceMs = this.now;
    client.held += 1;
    const byFile = (client.heldByFile ??= new Map());
    byFile.set(fileId, (byFile.get(fileId) ?? 0) + 1);
    client.everAcquired = true;
    this.held += 1;
    if (!viaReservation) {
      this.grants += 1;
      this.lastGrantAtMs = this.now;
    }
    this.refreshQueuePosition(client);
    this.record({
      type: 'grant',
      pid: client.pid,
      client: client.key,
      held: client.held,
      viaReservation,
      out: this.out,
    });
    this.reply(requestId, { kind: 'token', byte: TOKEN_BYTE });
  }

  /** Reserve a token for a polling client and wake every poll handle it waits on. */
  private reserve(client: Client): void {
    const expiresAtMs = this.now + this.config.reservationTtlMs;
    client.reservation = {
      expiresAtMs,
      yieldsAtMs: this.now + Math.min(RESERVATION_YIELD_MS, this.config.reservationTtlMs),
    };
    this.reservations += 1;
    this.reservedClients.add(client);
    this.grants += 1;
    this.lastGrantAtMs = this.now;
    for (const waiter of client.pollWaiters?.values() ?? []) {
      this.removeWaiter(waiter);
      this.effects.push({ type: 'notify-poll', pollHandleId: waiter.pollHandleId });
    }
    this.refreshQueuePosition(client);
    this.record({
      type: 'reserve',
      pid: client.pid,
      client: client.key,
      expiresAtMs,
      out: this.out,
    });
  }

  /** When a reservation passes on: its TTL, or sooner while another client waits. */
  private reservationEndsAtMs(reservation: Reservation): number {
    return this.queue.size > 0
      ? Math.min(reservation.expiresAtMs, reservation.yieldsAtMs)
      : reservation.expiresAtMs;
  }

  private consumeReservation(client: Client): void {
    this.dropReservation(client);
  }

  private dropReservation(client: Client): void {
    if (client.reservation === null) return;
    client.reservation = null;
    this.reservations -= 1;
    this.reservedClients.delete(client);
  }

  /** True when `client` may take a token now without passing anyone. */
  private canGrantNow(client: Client): boolean {
    return this.out < this.grantCapacity() && this.queue.size === 0 && !this.atProcessLimit(client);
  }

  /**
   * True when an O_NONBLOCK read is refused only for want of a sample that is
   * due now: then it waits for that sample instead of getting EAGAIN.
   */
  private grantableOnFreshSample(client: Client): boolean {
    return (
      this.limitsConfigured(this.config) &&
      this.sampleDueNow() &&
      this.out < this.config.jobs &&
      this.queue.size === 0 &&
      !this.atProcessLimit(client)
    );
  }

  /** Answer the O_NONBLOCK reads that waited for a sample once no sample is due any more. */
  private answerSampleWaits(): void {
    if (this.sampleWaits.size === 0) return;
    if (this.limitsConfigured(this.config) && this.sampleDueNow()) return;
    for (const wait of [...this.sampleWaits.values()]) {
      this.sampleWaits.delete(wait.requestId);
      wait.client.sampleWaits -= 1;
      if (wait.client.reservation !== null) {
        // Its process was polling too and got a reservation meanwhile: this read takes it.
        this.consumeReservation(wait.client);
        this.giveToken(wait.client, wait.requestId, wait.fileId, true);
      } else if (wait.client.waiterCount === 0 && this.canGrantNow(wait.client)) {
        this.giveToken(wait.client, wait.requestId, wait.fileId, false);
      } else {
        this.reply(wait.requestId, { kind: 'error', errno: 'EAGAIN' });
      }
    }
  }

  /** At its process's cap (`perProcessLimit`) or its uid's (`perUserLimit`). */
  private atProcessLimit(client: Client): boolean {
    const limit = this.config.perProcessLimit;
    if (limit !== null && client.held + (client.reservation ? 1 : 0) >= limit) return true;
    const userLimit = this.config.perUserLimit;
    return userLimit !== null && client.uid !== null && this.userTokens(client.uid) >= userLimit;
  }

  /** Tokens held or reserved by every process of `uid`. */
  private userTokens(uid: number): number {
    let tokens = 0;
    for (const client of this.clientsByUid.get(uid) ?? []) {
      tokens += client.held + (client.reservation ? 1 : 0);
    }
    return tokens;
  }

  // ---- capacity and limits ----------------------------------------------

  /**
   * How many tokens may be out for a grant decided now. With a limit set,
   * anything above `minJobs` needs a sample younger than `limitRecheckMs`,
   * whatever the path (blocking read, O_NONBLOCK read, poll reservation):
   * a sample from an hour ago says nothing about the load now.
   */
  private grantCapacity(): number {
    if (!this.limitsConfigured(this.config)) return this.config.jobs;
    const sampledAtMs = this.lastSampleAtMs;
    if (sampledAtMs === null || this.now >= sampledAtMs + this.config.limitRecheckMs) {
      return Math.min(this.config.jobs, this.config.minJobs);
    }
    return this.capacity();
  }

  /** The capacity the last sample allows (what `status` shows). */
  private capacity(): number {
    const { jobs, minJobs } = this.config;
    return this.limitedBy() === null ? jobs : Math.min(jobs, minJobs);
  }

  private limitedBy(): 'load' | 'memory' | 'pressure' | null {
    const sample = this.lastSample;
    if (sample === null) return null;
    const { maxLoadAverage, minMemoryAvailableMiB, maxMemoryPressureAvg10 } = this.config;
    if (minMemoryAvailableMiB !== null && sample.memAvailableMiB !== undefined) {
      if (sample.memAvailableMiB < minMemoryAvailableMiB) return 'memory';
      // Settling: near the limit, a job's memory shows up only after it has run
      // a while, so each grant waits for a sample taken a recheck interval
      // after the previous grant.
      if (this.memoryNearLimit() && this.lastGrantAtMs >= (this.lastSampleAtMs ?? 0))
        return 'memory';
    }
    if (
      maxMemoryPressureAvg10 !== null &&
      sample.memoryPressureSomeAvg10 !== undefined &&
      sample.memoryPressureSomeAvg10 > maxMemoryPressureAvg10
    ) {
      return 'pressure';
    }
    if (
      maxLoadAverage !== null &&
      sample.loadAverage1 !== undefined &&
      sample.loadAverage1 > maxLoadAverage
    ) {
      return 'load';
    }
    return null;
  }

  /** MemAvailable below twice the minimum: grants go one per fresh sample. */
  private memoryNearLimit(): boolean {
    const min = this.config.minMemoryAvailableMiB;
    const available = this.lastSample?.memAvailableMiB;
    return min !== null && available !== undefined && available < 2 * min;
  }

  /** When the next sample should be taken (null: now). */
  private sampleDueAtMs(): number | null {
    if (this.lastSampleAtMs === null) return null;
    const since = this.memoryNearLimit()
      ? Math.max(this.lastSampleAtMs, this.lastGrantAtMs)
      : this.lastSampleAtMs;
    return since + this.config.limitRecheckMs;
  }

  private limitsConfigured(config: SchedulerConfig): boolean {
    return (
      config.maxLoadAverage !== null ||
      config.minMemoryAvailableMiB !== null ||
      config.maxMemoryPressureAvg10 !== null
    );
  }

  /** A new sample is due: none yet, or the recheck interval (after the last grant, when settling) is over. */
  private sampleDueNow(): boolean {
    const due = this.sampleDueAtMs();
    return due === null || this.now >= due;
  }

  /**
   * Ask for a probe sample when a limit is set, someone waits (a queued
   * reader or poller, or an O_NONBLOCK read) and one is due. An idle pool
   * asks for nothing.
   */
  private maybeRequestSample(): void {
    if (this.samplePending || !this.limitsConfigured(this.config)) return;
    if (this.waiting === 0 && this.sampleWaits.size === 0) return;
    if (!this.sampleDueNow()) return;
    this.samplePending = true;
    this.effects.push({ type: 'sample-request' });
  }

  /** One timer: the earliest reservation expiry, or the next limit recheck while someone waits. */
  private updateTimer(): void {
    let atMs: number | null = null;
    if (this.reservations > 0) {
      for (const client of this.reservedClients) {
        const expiry =
          client.reservation === null ? undefined : this.reservationEndsAtMs(client.reservation);
        if (expiry !== undefined && (atMs === null || expiry < atMs)) atMs = expiry;
      }
    }
    if (
      this.waiting > 0 &&
      !this.samplePending &&
      this.limitsConfigured(this.config) &&
      this.lastSampleAtMs !== null
    ) {
      const recheck = this.sampleDueAtMs();
      if (recheck !== null && (atMs === null || recheck < atMs)) atMs = recheck;
    }
    if (atMs !== this.timerAtMs) {
      this.timerAtMs = atMs;
      this.effects.push({ type: 'timer', atMs });
    }
  }

  // ---- clients and the queue ---------------------------------------------

  private clientFor(pid: number, fileId: FileId, uid?: number): Client {
    const id = pid > 0 ? pid : -(fileId + 1);
    let client = this.clients.get(id);
    if (!client) {
      client = {
        id,
        key: pid > 0 ? `pid:${pid}` : `file:${fileId}`,
        pid,
        uid: null,
        firstSeenMs: this.now,
        held: 0,
        holdingSinceMs: this.now,
        everAcquired: false,
        unownedByteDropped: false,
        reservation: null,
        queueSlot: null,
        head: null,
        tail: null,
        waiterCount: 0,
        pollWaiters: null,
        sampleWaits: 0,
        heldByFile: null,
      };
      this.clients.set(id, client);
      if (pid > 0) this.effects.push({ type: 'watch', pid });
    }
    if (client.uid === null && uid !== undefined) {
      // A process's uid is the one its first request came with.
      client.uid = uid;
      let same = this.clientsByUid.get(uid);
      if (!same) this.clientsByUid.set(uid, (same = new Set()));
      same.add(client);
    }
    return client;
  }

  /** Return everything a client holds and answer or drop everything it waits for. */
  private dropClient(client: Client, reason: 'exit' | 'close'): void {
    let kept = 0;
    if (reason === 'exit' && client.heldByFile !== null) {
      // Tokens read through a file another process still has open stay out
      // with that file (see `inherited`).
      for (const [fileId, count] of client.heldByFile) {
        if (count <= 0 || !this.openFiles.has(fileId)) continue;
        const alreadyBack = Math.min(count, this.droppedOnFile.get(fileId) ?? 0);
        if (alreadyBack > 0) {
          const left = (this.droppedOnFile.get(fileId) ?? 0) - alreadyBack;
          if (left === 0) this.droppedOnFile.delete(fileId);
          else this.droppedOnFile.set(fileId, left);
        }
        if (count > alreadyBack) {
          this.inherited.set(fileId, (this.inherited.get(fileId) ?? 0) + count - alreadyBack);
          kept += count - alreadyBack;
        }
      }
    }
    client.heldByFile = null;
    const tokens = client.held - kept + (client.reservation ? 1 : 0);
    this.held -= client.held - kept;
    client.held = 0;
    this.dropReservation(client);
    if (client.sampleWaits > 0) {
      for (const wait of [...this.sampleWaits.values()]) {
        if (wait.client !== client) continue;
        this.sampleWaits.delete(wait.requestId);
        this.reply(wait.requestId, { kind: 'error', errno: 'EINTR' });
      }
      client.sampleWaits = 0;
    }
    const waiting: Waiter[] = [];
    for (let waiter = client.head; waiter !== null; waiter = waiter.next) waiting.push(waiter);
    for (const waiter of waiting) {
      this.removeWaiter(waiter);
      if (waiter.kind === 'read') this.reply(waiter.requestId, { kind: 'error', errno: 'EINTR' });
      else this.effects.push({ type: 'drop-poll-handle', pollHandleId: waiter.pollHandleId });
    }
    this.queue.remove(client);
    this.clients.delete(client.id);
    if (client.uid !== null) {
      const same = this.clientsByUid.get(client.uid);
      same?.delete(client);
      if (same?.size === 0) this.clientsByUid.delete(client.uid);
      // What it held is back: the others of its uid may be under the limit again.
      this.refreshSameUser(client);
    }
    // Always recorded: an exit or a per-file client's last close ends a client.
    this.record({
      type: 'reclaim',
      pid: client.pid,
      client: client.key,
      tokens,
      reason,
      out: this.out,
    });
  }

  /** Take `count` returned tokens off the per-file counts: `fileId`'s first, then any. */
  private forgetHeld(client: Client, fileId: FileId, count: number): void {
    const byFile = client.heldByFile;
    if (byFile === null || count <= 0) return;
    let left = count;
    const take = (id: FileId, n: number): void => {
      const taken = Math.min(left, n);
      left -= taken;
      if (n - taken <= 0) byFile.delete(id);
      else byFile.set(id, n - taken);
    };
    const onFile = byFile.get(fileId);
    if (onFile !== undefined) take(fileId, onFile);
    for (const [id, n] of byFile) {
      if (left <= 0) break;
      take(id, n);
    }
  }

  private newWaiter(
    kind: 'read' | 'poll',
    client: Client,
    fileId: FileId,
    requestId: RequestId,
    pollHandleId: PollHandleId,
  ): Waiter {
    this.seq += 1;
    return {
      seq: this.seq,
      kind,
      client,
      fileId,
      requestId,
      pollHandleId,
      arrivedMs: this.now,
      grantsAtArrival: this.grants,
      prev: null,
      next: null,
      queued: false,
    };
  }

  private enqueue(waiter: Waiter): void {
    const client = waiter.client;
    waiter.prev = client.tail;
    waiter.next = null;
    if (client.tail === null) client.head = waiter;
    else client.tail.next = waiter;
    client.tail = waiter;
    client.waiterCount += 1;
    waiter.queued = true;
    this.waiting += 1;
    if (waiter.kind === 'poll') {
      let onFile = this.pollWaitersByFile.get(waiter.fileId);
      if (!onFile) {
        onFile = new Set();
        this.pollWaitersByFile.set(waiter.fileId, onFile);
      }
      onFile.add(waiter);
    }
    this.refreshQueuePosition(waiter.client);
  }

  private removeWaiter(waiter: Waiter): void {
    const client = waiter.client;
    if (!waiter.queued) return;
    waiter.queued = false;
    if (waiter.prev === null) client.head = waiter.next;
    else waiter.prev.next = waiter.next;
    if (waiter.next === null) client.tail = waiter.prev;
    else waiter.next.prev = waiter.prev;
    waiter.prev = null;
    waiter.next = null;
    client.waiterCount -= 1;
    this.waiting -= 1;
    if (waiter.kind === 'read') {
      this.readWaiters.delete(waiter.requestId);
    } else {
      client.pollWaiters?.delete(waiter.fileId);
      const onFile = this.pollWaitersByFile.get(waiter.fileId);
      onFile?.delete(waiter);
      if (onFile?.size === 0) this.pollWaitersByFile.delete(waiter.fileId);
    }
    this.refreshQueuePosition(client);
  }

  /**
   * A client is in the queue while it waits and may take a token. Called
   * after every change to what a client holds, reserves or waits for; with
   * a per-user limit, a change to one process's tokens changes whether the
   * others of its uid may take one, so they are looked at too.
   */
  private refreshQueuePosition(client: Client): void {
    this.refreshOne(client);
    this.refreshSameUser(client);
  }

  private refreshSameUser(client: Client): void {
    if (this.config.perUserLimit === null || client.uid === null) return;
    for (const other of this.clientsByUid.get(client.uid) ?? []) {
      if (other !== client) this.refreshOne(other);
    }
  }

  private refreshOne(client: Client): void {
    if (client.waiterCount > 0 && client.reservation === null && !this.atProcessLimit(client)) {
      this.queue.set(client, this.queueKey(client));
    } else {
      this.queue.remove(client);
    }
  }

  /** A queue ordered by `fairness` (see AGING_GRANTS_PER_HELD_TOKEN and client-queue.ts). */
  private newQueue(config: SchedulerConfig): ClientQueue<Client> {
    return config.fairness === 'fifo'
      ? new ClientQueue<Client>((_bucket, primary) => primary)
      : new ClientQueue<Client>(
          (bucket, primary) => bucket * AGING_GRANTS_PER_HELD_TOKEN + primary,
        );
  }

  /** Where a waiting client stands: by its head waiter (and, least-held, its tokens). */
  private queueKey(client: Client): QueueKey {
    const head = client.head as Waiter;
    return this.config.fairness === 'fifo'
      ? { bucket: 0, primary: head.seq, seq: head.seq }
      : { bucket: client.held, primary: head.grantsAtArrival, seq: head.seq };
  }

  // ---- effects -------------------------------------------------------------

  private reply(requestId: RequestId, reply: Reply): void {
    this.effects.push({ type: 'reply', requestId, reply });
  }

  private record(record: SchedulerRecord): void {
    if (this.emitRecords) this.effects.push({ type: 'record', atMs: this.now, record });
  }
}

/** How reports name the tokens a file inherited from a process that exited. */
export function inheritedKey(fileId: FileId): string {
  return `file:${fileId}${INHERITED_SUFFIX}`;
}

/** True for a client key made by `inheritedKey`. */
export function isInheritedKey(client: string): boolean {
  return client.endsWith(INHERITED_SUFFIX);
}

const INHERITED_SUFFIX = ':inherited';
