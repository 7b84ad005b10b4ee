/**
 * The running pool: one scheduler core, the real clock, and the adapters
 * around it. Fronts turn kernel requests into events (`server.event(…)`) and
 * register a port through which the effects reach the kernel again; the
 * server owns timers, pidfd watches and probe samples.
 *
 * Ids: every front numbers its requests, files and poll handles itself; the
 * server maps them to global ids so several fronts share one core.
 */

import { HIDDEN_COMMAND } from './visibility.js';
import { performance } from 'node:perf_hooks';
import {
  type FileId,
  type ProbeSample,
  type Reply,
  Scheduler,
  type SchedulerConfig,
  type SchedulerEffect,
  type SchedulerEvent,
  type SchedulerRecord,
  type SchedulerSnapshot,
  isInheritedKey,
} from '../core/index.js';
import { commandLineOf, ThreadGroups } from './processes.js';

/** How the server reaches back into one front. */
export interface FrontPort {
  readonly name: string;
  reply(localRequestId: number, reply: Reply): void;
  notifyPoll(localPollHandleId: number): void;
  dropPollHandle(localPollHandleId: number): void;
}

/** Platform services, injectable for tests. */
export interface ServerServices {
  /** Monotonic milliseconds. */
  now(): number;
  /** Watch a process; call `onExit` once when it ends. Null: it is already gone. */
  watchPid(pid: number, onExit: () => void): { close(): void } | null;
  /** Read the probes the current limits need. */
  sample(config: SchedulerConfig): Promise<ProbeSample>;
  /** A line for the log. */
  log(line: string): void;
  /** `/proc/<tid>/status` of a thread, or null when it cannot be read (default: the real /proc). */
  readProcStatus?(tid: number): string | null;
}

export interface PoolServerOptions {
  readonly config: Partial<SchedulerConfig> & { readonly jobs: number };
  readonly services: ServerServices;
  /** Log every grant, return and reservation (`-v`). */
  readonly verbose?: boolean;
}

interface RequestRoute {
  readonly port: FrontPort;
  readonly localId: number;
}

/** One front's view of the server: global ids for its local ones. */
export class FrontConnection {
  private readonly requests = new Map<number, number>();
  private readonly files = new Map<number, number>();

  constructor(
    private readonly server: PoolServer,
    readonly port: FrontPort,
  ) {}

  /** The global id of a local file, allocated on first use. */
  file(localFileId: number): FileId {
    let id = this.files.get(localFileId);
    if (id === undefined) {
      id = this.server.allocateFileId();
      this.files.set(localFileId, id);
    }
    return id;
  }

  /** Name a file's per-file client in reports (e.g. the fifo front's sub-pool). */
  label(localFileId: number, label: string): void {
    this.server.labelClient(`file:${this.file(localFileId)}`, label);
  }

  /** The global id of a file that was released (forgotten afterwards). */
  releaseFile(localFileId: number): FileId | undefined {
    const id = this.files.get(localFileId);
    this.files.delete(localFileId);
    return id;
  }

  /** Allocate the global id of a new request. */
  request(localRequestId: number): number {
    const id = this.server.allocateRequest(this, localRequestId);
    this.requests.set(localRequestId, id);
    return id;
  }

  /** The global id of a pending request, if it is still pending. */
  pendingRequest(localRequestId: number): number | undefined {
    return this.requests.get(localRequestId);
  }

  forgetRequest(localRequestId: number): void {
    this.requests.delete(localRequestId);
  }

  pollHandle(localPollHandleId: number): number {
    return this.server.allocatePollHandle(this, localPollHandleId);
  }

  /** Tokens out beyond the pool's capacity now (a front holding idle tokens gives them back). */
  surplus(): number {
    return this.server.surplus();
  }

  event(event: SchedulerEvent): void {
    this.server.event(event);
  }
}

export class PoolServer {
  private readonly scheduler: Scheduler;
  private readonly services: ServerServices;
  private readonly verbose: boolean;
  readonly threadGroups: ThreadGroups;

  private nextRequestId = 1;
  private nextFileId = 1;
  private nextPollHandleId = 1;
  private readonly requests = new Map<number, { connection: FrontConnection; localId: number }>();
  private readonly pollHandles = new Map<number, RequestRoute>();
  private readonly watches = new Map<number, { close(): void }>();
  private readonly commands = new Map<number, string>();
  /** Processes whose watch failed (EMFILE…): tried again on their next request. */
  private readonly unwatched = new Set<number>();
  private readonly clientLabels = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly recordListeners = new Set<(atMs: number, record: SchedulerRecord) => void>();

  constructor(options: PoolServerOptions) {
    this.scheduler = new Scheduler({ config: options.config });
    this.services = options.services;
    const readStatus = options.services.readProcStatus;
    this.threadGroups = new ThreadGroups(readStatus ? (tid) => readStatus(tid) : undefined);
    this.verbose = options.verbose ?? false;
  }

  connect(port: FrontPort): FrontConnection {
    return new FrontConnection(this, port);
  }

  /** Apply one event now and carry out its effects. */
  event(event: SchedulerEvent): void {
    if (this.stopped) return;
    if (
      this.unwatched.size > 0 &&
      'pid' in event &&
      event.type !== 'exit' &&
      this.unwatched.has(event.pid)
    ) {
      this.unwatched.delete(event.pid);
      this.watch(event.pid);
    }
    let effects: SchedulerEffect[];
    try {
      effects = this.scheduler.handle(event, this.services.now());
    } catch (error) {
      this.services.log(`steve-daemon: rejected ${event.type} event: ${(error as Error).message}`);
      throw error;
    }
    for (const effect of effects) this.carryOut(effect);
  }

  /** Apply new settings (validated by the core; throws with the reason when invalid). */
  configure(changes: Partial<SchedulerConfig>): void {
    this.event({ type: 'configure', changes });
  }

  surplus(): number {
    return this.scheduler.surplus;
  }

  snapshot(): SchedulerSnapshot {
    return this.scheduler.snapshot();
  }

  /** The command line recorded for a process when it was first seen. */
  commandOf(pid: number): string {
    return this.commands.get(pid) ?? commandLineOf(pid);
  }

  /** What to call a client in reports: its command, or a front's label for a per-file client. */
  describe(pid: number, client: string): string {
    if (pid > 0) return this.commandOf(pid);
    if (isInheritedKey(client)) return '(a process that exited; its open file is still in use)';
    return this.clientLabels.get(client) ?? commandLineOf(0);
  }

  /** {@link describe}, or {@link HIDDEN_COMMAND} for a process `visible` rules out. */
  describeFor(pid: number, client: string, visible: (pid: number) => boolean): string {
    return pid > 0 && !visible(pid) ? HIDDEN_COMMAND : this.describe(pid, client);
  }

  labelClient(client: string, label: string): void {
    if (this.clientLabels.size > 4096) this.clientLabels.clear();
    this.clientLabels.set(client, label);
  }

  onRecord(listener: (atMs: number, record: SchedulerRecord) => void): () => void {
    this.recordListeners.add(listener);
    return () => this.recordListeners.delete(listener);
  }

  /** Stop timers and watches (the fronts answer their own pending requests). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const [pid, watch] of this.watches) {
      watch.close();
      this.threadGroups.forgetProcess(pid);
    }
    this.watches.clear();
  }

  /**
   * A human report of holders and waiters (SIGUSR1, the FUSE status file);
   * `visible` says whose command lines it may show (default: everyone's).
   */
  report(visible: (pid: number) => boolean = () => true): string {
    const snap = this.snapshot();
    const now = this.services.now();
    const age = (sinceMs: number): string => `${((now - sinceMs) / 1000).toFixed(1)}s`;
    const lines = [
      `jobs ${snap.config.jobs}  capacity ${snap.capacity}${snap.limitedBy ? ` (held down by ${snap.limitedBy})` : ''}  out ${snap.out}  reserved ${snap.reserved}  available ${snap.available}  waiting ${snap.waiting}  open files ${snap.openFiles}`,
      `holders (${snap.holders.length}):`,
      ...snap.holders.map(
        (h) =>
          `  pid ${h.pid || h.client}  tokens ${h.tokens}${h.reserved ? ' +1 reserved' : ''}  since ${age(h.holdingSinceMs)}  ${this.describeFor(h.pid, h.client, visible)}`,
      ),
      `waiters (${snap.waiters.length}):`,
      ...snap.waiters.map(
        (w) =>
          `  pid ${w.pid || w.client}  ${w.kind === 'poll' ? 'polling' : 'blocking read'}  for ${age(w.waitingSinceMs)}  ${this.describeFor(w.pid, w.client, visible)}`,
      ),
    ];
    return `${lines.join('\n')}\n`;
  }

  // ---- ids (used by FrontConnection) ---------------------------------------

  allocateFileId(): FileId {
    return this.nextFileId++;
  }

  allocateRequest(connection: FrontConnection, localId: number): number {
    const id = this.nextRequestId++;
    this.requests.set(id, { connection, localId });
    return id;
  }

  allocatePollHandle(connection: FrontConnection, localId: number): number {
    const id = this.nextPollHandleId++;
    this.pollHandles.set(id, { port: connection.port, localId });
    return id;
  }

  // ---- effects -------------------------------------------------------------

  private carryOut(effect: SchedulerEffect): void {
    switch (effect.type) {
      case 'reply': {
        const route = this.requests.get(effect.requestId);
        if (!route) return;
        this.requests.delete(effect.requestId);
        route.connection.forgetRequest(route.localId);
        route.connection.port.reply(route.localId, effect.reply);
        return;
      }
      case 'notify-poll': {
        const route = this.pollHandles.get(effect.pollHandleId);
        this.pollHandles.delete(effect.pollHandleId);
        route?.port.notifyPoll(route.localId);
        return;
      }
      case 'drop-poll-handle': {
        const route = this.pollHandles.get(effect.pollHandleId);
        this.pollHandles.delete(effect.pollHandleId);
        route?.port.dropPollHandle(route.localId);
        return;
      }
      case 'watch':
        this.watch(effect.pid);
        return;
      case 'timer':
        this.setTimer(effect.atMs);
        return;
      case 'sample-request': {
        const config = this.scheduler.settings;
        this.services.sample(config).then(
          (sample) => this.event({ type: 'sample', sample }),
          () => this.event({ type: 'sample', sample: {} }),
        );
        return;
      }
      case 'record':
        if (this.verbose)
          this.services.log(
            formatRecord(
              effect.record,
              (pid) => this.commandOf(pid),
              (client) => this.clientLabels.get(client),
            ),
          );
        for (const listener of this.recordListeners) listener(effect.atMs, effect.record);
        return;
    }
  }

  private watch(pid: number): void {
    if (this.watches.has(pid)) return;
    this.commands.set(pid, commandLineOf(pid));
    const exited = (): void => {
      this.watches.get(pid)?.close();
      this.watches.delete(pid);
      this.commands.delete(pid);
      this.threadGroups.forgetProcess(pid);
      this.event({ type: 'exit', pid });
    };
    let watch: { close(): void } | null = null;
    try {
      watch = this.services.watchPid(pid, exited);
    } catch (error) {
      this.services.log(
        `steve-daemon: cannot watch pid ${pid} (${(error as Error).message}); trying again at its next request`,
      );
      this.commands.delete(pid);
      this.unwatched.add(pid);
      return;
    }
    if (watch === null) {
      // Already gone: reclaim on the next turn of the loop, after this event.
      setImmediate(exited);
      return;
    }
    this.watches.set(pid, watch);
    this.threadGroups.rememberWatched(pid);
  }

  private setTimer(atMs: number | null): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (atMs === null || this.stopped) return;
    const delayMs = Math.max(0, atMs - this.services.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      // libuv's clock is whole milliseconds: a timer can fire a little before
      // its time by ours. Wait out the rest rather than tick too early.
      if (this.services.now() < atMs) this.setTimer(atMs);
      else this.event({ type: 'tick' });
    }, Math.ceil(delayMs));
  }
}

/** One log line for a record (`-v`). */
export function formatRecord(
  record: SchedulerRecord,
  commandOf: (pid: number) => string,
  labelOf: (client: string) => string | undefined = () => undefined,
): string {
  const who = (pid: number, client: string): string => {
    if (pid > 0) return `pid ${pid} (${commandOf(pid)})`;
    const label = labelOf(client);
    return label === undefined ? client : `${client} (${label})`;
  };
  switch (record.type) {
    case 'grant':
      return `grant -> ${who(record.pid, record.client)}, now holds ${record.held}${record.viaReservation ? ' (reserved)' : ''}; out ${record.out}`;
    case 'return':
      return `return <- ${who(record.pid, record.client)}: ${record.tokens}, now holds ${record.held}; out ${record.out}`;
    case 'reclaim':
      return `reclaim <- ${who(record.pid, record.client)}: ${record.tokens} token(s), ${record.reason === 'exit' ? 'process exited' : 'file closed'}; out ${record.out}`;
    case 'reserve':
      return `reserve -> ${who(record.pid, record.client)}; out ${record.out}`;
    case 'reservation-expired':
      return `reservation expired: ${who(record.pid, record.client)}; out ${record.out}`;
    case 'unowned-byte-dropped':
      return `dropped an unowned byte from ${who(record.pid, record.client)}`;
    case 'enospc':
      return `ENOSPC: ${who(record.pid, record.client)} wrote ${record.bytes} byte(s) it does not hold`;
    case 'interrupted':
      return `interrupted: ${who(record.pid, record.client)}`;
    case 'config':
      return `config: ${JSON.stringify(record.changes)}`;
  }
}

/** The real platform: the monotonic clock, pidfd watches, /proc probes. */
export function realNow(): number {
  return performance.now();
}
