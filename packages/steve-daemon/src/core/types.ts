/**
 * The scheduler core's vocabulary: events in, effects out.
 *
 * Fronts (CUSE, FUSE, fifo), probes and the control socket turn kernel
 * requests and samples into these events and carry the effects out; the core
 * itself does no I/O and reads no clock (every call is given `nowMs`).
 */

/** A front's id for one open file description (FUSE `fi->fh`). */
export type FileId = number;
/** A front's id for one pending kernel request (a read, write or poll). */
export type RequestId = number;
/** A front's id for one kernel poll handle (`fuse_pollhandle`). */
export type PollHandleId = number;

/** The order in which waiters get tokens. */
export type Fairness = 'least-held' | 'fifo';

/** Every runtime setting of the pool (`stevie set …` changes these). */
export interface SchedulerConfig {
  /** Tokens in the pool (`-j`). A decrease takes effect as tokens come back. */
  readonly jobs: number;
  /** Grant order among waiters. */
  readonly fairness: Fairness;
  /** How long a token reserved for a poller waits for its read. */
  readonly reservationTtlMs: number;
  /** Above this 1-minute load average only `minJobs` tokens are out (`-l`); null: no limit. */
  readonly maxLoadAverage: number | null;
  /** The floor the load, memory and pressure limits never go below (`-m`). */
  readonly minJobs: number;
  /** How often a limit is re-sampled while someone waits (`--load-recheck`). */
  readonly limitRecheckMs: number;
  /** Below this MemAvailable (MiB) only `minJobs` tokens are out (`-a`); null: no limit. */
  readonly minMemoryAvailableMiB: number | null;
  /** Above this PSI memory `some avg10` (percent) only `minJobs` tokens are out; null: no limit. */
  readonly maxMemoryPressureAvg10: number | null;
  /** At most this many tokens per process (`-p`); null: no cap. */
  readonly perProcessLimit: number | null;
}

/** What the probes read (any field may be missing when a probe is unavailable). */
export interface ProbeSample {
  /** 1-minute load average from /proc/loadavg. */
  readonly loadAverage1?: number;
  /** MemAvailable from /proc/meminfo, in MiB. */
  readonly memAvailableMiB?: number;
  /** `some avg10` from /proc/pressure/memory, in percent. */
  readonly memoryPressureSomeAvg10?: number;
}

/**
 * An event for the core. `pid` is the caller's process (thread group) id,
 * already mapped from the thread id the kernel reports; 0 means the caller
 * is in another pid namespace, and then accounting is per open file.
 */
export type SchedulerEvent =
  | { readonly type: 'open'; readonly fileId: FileId; readonly pid: number }
  | { readonly type: 'close'; readonly fileId: FileId }
  | {
      readonly type: 'read';
      readonly requestId: RequestId;
      readonly fileId: FileId;
      readonly pid: number;
      /** False for O_NONBLOCK reads (FUSE passes the file's current flags with each read). */
      readonly blocking: boolean;
      readonly sizeBytes: number;
    }
  | {
      readonly type: 'write';
      readonly requestId: RequestId;
      readonly fileId: FileId;
      readonly pid: number;
      readonly sizeBytes: number;
    }
  | {
      readonly type: 'poll';
      readonly requestId: RequestId;
      readonly fileId: FileId;
      readonly pid: number;
      /** The handle to notify later, or null when the caller does not wait. */
      readonly pollHandleId: PollHandleId | null;
    }
  | { readonly type: 'interrupt'; readonly requestId: RequestId }
  | { readonly type: 'exit'; readonly pid: number }
  | { readonly type: 'configure'; readonly changes: Partial<SchedulerConfig> }
  | { readonly type: 'tick' }
  | { readonly type: 'sample'; readonly sample: ProbeSample };

/** Errors a request can be answered with (the front maps them to errno values). */
export type ReplyErrno = 'EAGAIN' | 'EINTR' | 'ENOSPC';

/** How a request is answered. */
export type Reply =
  /** One token: the single byte to return (always one byte, whatever the read size). */
  | { readonly kind: 'token'; readonly byte: number }
  /** A zero-byte read. */
  | { readonly kind: 'empty' }
  /** A write that took this many bytes. */
  | { readonly kind: 'written'; readonly countBytes: number }
  /** A poll: POLLIN when `readable`, POLLOUT always. */
  | { readonly kind: 'poll'; readonly readable: boolean }
  | { readonly kind: 'error'; readonly errno: ReplyErrno };

/**
 * Something that happened, for the log and the control stream. `out` is the
 * number of tokens out of the pool (held plus reserved) right after it.
 */
export type SchedulerRecord =
  | {
      readonly type: 'grant';
      readonly pid: number;
      readonly client: string;
      readonly held: number;
      readonly viaReservation: boolean;
      readonly out: number;
    }
  | {
      readonly type: 'return';
      readonly pid: number;
      readonly client: string;
      readonly tokens: number;
      readonly held: number;
      readonly out: number;
    }
  | {
      readonly type: 'reclaim';
      readonly pid: number;
      readonly client: string;
      readonly tokens: number;
      readonly reason: 'exit' | 'close';
      readonly out: number;
    }
  | {
      readonly type: 'reserve';
      readonly pid: number;
      readonly client: string;
      readonly expiresAtMs: number;
      readonly out: number;
    }
  | {
      readonly type: 'reservation-expired';
      readonly pid: number;
      readonly client: string;
      readonly out: number;
    }
  | { readonly type: 'unowned-byte-dropped'; readonly pid: number; readonly client: string }
  | {
      readonly type: 'enospc';
      readonly pid: number;
      readonly client: string;
      readonly bytes: number;
    }
  | { readonly type: 'interrupted'; readonly pid: number; readonly client: string }
  | { readonly type: 'config'; readonly changes: Partial<SchedulerConfig> };

/** What the core asks its adapters to do. */
export type SchedulerEffect =
  | { readonly type: 'reply'; readonly requestId: RequestId; readonly reply: Reply }
  /** Tell this poll handle the file is readable now (libfuse: notify, then destroy). */
  | { readonly type: 'notify-poll'; readonly pollHandleId: PollHandleId }
  /** Forget this poll handle without notifying (a newer one replaced it, or its file closed). */
  | { readonly type: 'drop-poll-handle'; readonly pollHandleId: PollHandleId }
  /** Start watching this process (pidfd); send `exit` when it ends (at once if already gone). */
  | { readonly type: 'watch'; readonly pid: number }
  /** Send `tick` at this time (replaces any earlier timer); null: no timer needed. */
  | { readonly type: 'timer'; readonly atMs: number | null }
  /** Read the probes a limit needs and send a `sample` event. */
  | { readonly type: 'sample-request' }
  | { readonly type: 'record'; readonly atMs: number; readonly record: SchedulerRecord };

/** One holder in a snapshot. */
export interface HolderInfo {
  readonly client: string;
  readonly pid: number;
  readonly tokens: number;
  readonly reserved: boolean;
  readonly holdingSinceMs: number;
  readonly firstSeenMs: number;
}

/** One waiter in a snapshot. */
export interface WaiterInfo {
  readonly client: string;
  readonly pid: number;
  readonly kind: 'read' | 'poll';
  readonly waitingSinceMs: number;
}

/** The pool at one moment (for `stevie status`, the FUSE status file, SIGUSR1). */
export interface SchedulerSnapshot {
  readonly config: SchedulerConfig;
  /** Tokens that may be out now: `jobs`, or `minJobs` while a limit holds. */
  readonly capacity: number;
  /** Tokens held by clients plus tokens reserved for pollers. */
  readonly out: number;
  readonly reserved: number;
  readonly available: number;
  readonly waiting: number;
  /** Open files the fronts reported. */
  readonly openFiles: number;
  /** Which limit holds the capacity down, if one does. */
  readonly limitedBy: 'load' | 'memory' | 'pressure' | null;
  readonly holders: readonly HolderInfo[];
  readonly waiters: readonly WaiterInfo[];
  readonly lastSample: ProbeSample | null;
}
