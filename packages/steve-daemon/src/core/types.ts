import type {
  PoolGauges,
  PoolRecord,
  Fairness as ProtocolFairness,
  Settings,
} from '@steve/protocol';

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

/** The order in which waiters get tokens (wire type from `@steve/protocol`). */
export type Fairness = ProtocolFairness;

/** Every runtime setting of the pool: the control socket's `Settings`. */
export type SchedulerConfig = Settings;

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
  | {
      readonly type: 'open';
      readonly fileId: FileId;
      readonly pid: number;
    }
  | { readonly type: 'close'; readonly fileId: FileId }
  | {
      readonly type: 'read';
      readonly requestId: RequestId;
      readonly fileId: FileId;
      readonly pid: number;
      /** False for O_NONBLOCK reads (FUSE passes the file's current flags with each read). */
      readonly blocking: boolean;
      readonly sizeBytes: number;
      /** The caller's uid, for `perUserLimit` (unknown: no per-user cap applies). */
      readonly uid?: number;
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
      /** As on `read`. */
      readonly uid?: number;
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
 * Something that happened, for the log and the control stream (the wire
 * type `PoolRecord` of `@steve/protocol`). `out` is the number of tokens out
 * of the pool (held plus reserved) right after it.
 */
export type SchedulerRecord = PoolRecord;

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
  /** The uid its requests came from, or null when not known. */
  readonly uid: number | null;
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
export interface SchedulerSnapshot extends PoolGauges {
  readonly config: SchedulerConfig;
  readonly holders: readonly HolderInfo[];
  readonly waiters: readonly WaiterInfo[];
  readonly lastSample: ProbeSample | null;
}
