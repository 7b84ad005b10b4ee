/**
 * The fifo front: a real named pipe for strict clients that accept only
 * `S_ISFIFO` (ninja <= 1.13.2 ignores anything else and runs unlimited).
 *
 * A kernel pipe cannot tell who read a byte, so the fifo is a *sub-pool of
 * the one global pool* (DESIGN.md, Fronts): the front is a single client of
 * the scheduler core (pid 0, accounted per synthetic open file) that asks
 * the core for tokens and parks them in the pipe, at most `prefetch` idle at
 * a time; surplus tokens that fifo clients write back are read out again and
 * returned to the core.
 *
 * Tokens are parked only while some other process has the fifo open for
 * reading (every jobserver client reads). The daemon itself holds only the
 * write end, so `poll` on it says POLLERR exactly when no reader is left
 * (fs/pipe.c) — a count that inotify's merged events could not give. When
 * the last reader goes, the pipe is drained and the synthetic file closed:
 * the core reclaims every token the fifo had lent. A crashed fifo client
 * cannot be told apart from a polite one, so this is where its tokens come
 * back.
 *
 * inotify events on the path (open, close, access, modify) only say "look
 * again": each one re-evaluates the pipe from scratch (FIONREAD, readers),
 * so the reaction is idempotent, converges although the daemon's own reads
 * and writes cause events too, and a merged or lost event costs nothing.
 */

import { execFileSync } from 'node:child_process';
import {
  closeSync,
  constants as fsConstants,
  fchmodSync,
  fchownSync,
  fstatSync,
  lstatSync,
  openSync,
  readSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { resolve } from 'node:path';
import type { Reply } from '../core/index.js';
import type { FrontConnection, FrontPort, PoolServer } from '../daemon/pool-server.js';
import {
  bytesReadable,
  inotifyEvents,
  type PathWatch,
  pollEvents,
  pollNow,
  watchPath,
} from '../native/addon.js';
import type { RunningFront } from './fuse.js';

export interface FifoFrontOptions {
  /** The fifo to serve; created (with `mode`) when missing. */
  readonly path: string;
  /** Idle tokens kept parked in the pipe while clients have it open (`--fifo-prefetch`, default 1). */
  readonly prefetch: number;
  /** Permission bits of the fifo. */
  readonly mode: number;
  /** Group owning the fifo, or null to leave it. */
  readonly gid: number | null;
  /** User owning the fifo (a private fifo belongs to whoever asked for it); default the daemon's. */
  readonly uid?: number;
  /** Whose uid the sub-pool's tokens count for (`perUserLimit`); none for the shared fifo. */
  readonly accountUid?: number;
  /** How `stevie status` names the sub-pool (default: "fifo front PATH"). */
  readonly label?: string;
}

/** The running fifo front; `parkedTokens` is for tests and reports. */
export interface RunningFifoFront extends RunningFront {
  readonly kind: 'fifo';
  /** Bytes (tokens) waiting in the pipe now. */
  parkedTokens(): number;
  /** Tokens the core has lent to the fifo's sub-pool (parked plus taken by clients). */
  lentTokens(): number;
}

/** `--fifo-prefetch` when not given. */
export const DEFAULT_FIFO_PREFETCH = 1;

const { O_RDONLY, O_RDWR, O_WRONLY, O_NONBLOCK, O_NOFOLLOW } = fsConstants;
const WATCHED =
  inotifyEvents.IN_OPEN |
  inotifyEvents.IN_CLOSE_WRITE |
  inotifyEvents.IN_CLOSE_NOWRITE |
  inotifyEvents.IN_ACCESS |
  inotifyEvents.IN_MODIFY;

/**
 * Serve `options.path` as a fifo sub-pool of `server`'s pool.
 *
 * Errors: a path that exists and is not a fifo; `mkfifo` failing (missing
 * directory, permissions); open or inotify errors.
 */
export async function startFifoFront(
  server: PoolServer,
  options: FifoFrontOptions,
  log: (line: string) => void,
): Promise<RunningFifoFront> {
  if (!Number.isInteger(options.prefetch) || options.prefetch < 1)
    throw new RangeError(`--fifo-prefetch must be a whole number >= 1, got ${options.prefetch}`);
  const path = resolve(options.path);
  const { created, fd } = openFifo(path, options, log);
  let front: FifoFront;
  try {
    front = new FifoFront(
      server,
      path,
      fd,
      options.prefetch,
      created,
      options.label ?? `fifo front ${path}`,
      log,
      options.accountUid,
    );
  } catch (error) {
    if (created) unlinkSync(path);
    throw error;
  }
  return {
    kind: 'fifo',
    jobserverPath: path,
    close: () => front.close(),
    parkedTokens: () => front.parkedTokens(),
    lentTokens: () => front.lentTokens(),
  };
}

/**
 * Make sure `path` is a fifo with the right owner and mode, and open it
 * (O_RDWR, never blocks on a fifo). Owner and mode are set on the open
 * descriptor, opened with O_NOFOLLOW and checked to be a fifo: a path
 * swapped for a symlink after the check is refused, never followed as root.
 * `created` when the fifo was made here.
 */
function openFifo(
  path: string,
  options: FifoFrontOptions,
  log: (line: string) => void,
): { created: boolean; fd: number } {
  let created = false;
  try {
    const stat = lstatSync(path);
    if (!stat.isFIFO()) {
      throw new Error(
        `${path} exists and is not a fifo; remove it or serve the fifo front elsewhere with --fifo PATH`,
      );
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    // No `mkfifo -m`: it chmods the path after creating it, which would follow
    // a symlink swapped in meanwhile. The umask gives 0600; fchmod does the rest.
    const umask = process.umask(0o077);
    try {
      execFileSync('mkfifo', [path], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (mkfifoError) {
      const stderr = (mkfifoError as { stderr?: Buffer }).stderr?.toString().trim();
      throw new Error(
        `cannot create the fifo ${path}: ${stderr || (mkfifoError as Error).message}`,
      );
    } finally {
      process.umask(umask);
    }
    created = true;
  }
  let fd: number;
  try {
    fd = openSync(path, O_RDWR | O_NONBLOCK | O_NOFOLLOW);
  } catch (error) {
    if (created) unlinkSync(path);
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(
      code === 'ELOOP'
        ? `${path} became a symlink while the fifo was being set up; refusing to follow it (is someone else writing in ${resolve(path, '..')}?)`
        : `cannot open the fifo ${path}: ${(error as Error).message}`,
    );
  }
  if (!fstatSync(fd).isFIFO()) {
    closeSync(fd);
    throw new Error(`${path} is no longer a fifo; refusing to serve it`);
  }
  try {
    if (options.gid !== null || options.uid !== undefined)
      fchownSync(fd, options.uid ?? process.getuid?.() ?? 0, options.gid ?? -1);
    fchmodSync(fd, options.mode);
  } catch (error) {
    if (created) {
      closeSync(fd);
      unlinkSync(path);
      throw error;
    }
    log(
      `steve-daemon: warning: cannot set the permissions of the existing fifo ${path} (${(error as Error).message}); serving it as it is`,
    );
  }
  return { created, fd };
}

/** One generation of the sub-pool: the synthetic open file the core accounts it by. */
interface Generation {
  readonly localFileId: number;
  readonly fileId: number;
  /** Tokens the core has granted this generation and not got back. */
  held: number;
}

class FifoFront implements FrontPort {
  readonly name: string;
  private readonly connection: FrontConnection;
  /** The daemon's only persistent descriptor: the write end (keeps the pipe and its bytes alive). */
  private writeFd: number;
  private readonly watch: PathWatch;
  private generation: Generation | null = null;
  private nextLocalFileId = 1;
  private nextLocalRequestId = 1;
  /** The one synthetic read waiting in the core, if any. */
  private outstandingRead: { localId: number; generation: Generation } | null = null;
  private evaluationQueued = false;
  private closed = false;
  private stopRecords: () => void = () => undefined;

  constructor(
    server: PoolServer,
    private readonly path: string,
    both: number,
    private readonly prefetch: number,
    private readonly created: boolean,
    private readonly label: string,
    private readonly log: (line: string) => void,
    private readonly uid?: number,
  ) {
    this.name = `fifo:${path}`;
    this.connection = server.connect(this);
    // O_RDWR never blocks on a fifo (Linux); reopening it write-only through
    // /proc leaves the daemon without a read end, so that POLLERR on it
    // means "no client left".
    try {
      this.writeFd = openSync(`/proc/self/fd/${both}`, O_WRONLY | O_NONBLOCK);
    } finally {
      closeSync(both);
    }
    try {
      // Bytes already in the pipe were not lent by this pool (a previous
      // daemon's clients still have it open): they are not tokens.
      const stale = this.readOut(Number.MAX_SAFE_INTEGER);
      if (stale > 0)
        this.log(`steve-daemon: dropped ${stale} stale byte(s) found in the fifo ${path}`);
      this.watch = watchPath(path, WATCHED, (mask) => this.onEvents(mask));
      // A lower job count: give parked tokens back now, not at the next client event.
      this.stopRecords = server.onRecord((_atMs, record) => {
        if (record.type === 'config') this.queueEvaluation();
      });
    } catch (error) {
      closeSync(this.writeFd);
      throw error;
    }
    this.evaluate();
  }

  parkedTokens(): number {
    return this.closed ? 0 : bytesReadable(this.writeFd);
  }

  lentTokens(): number {
    return this.generation?.held ?? 0;
  }

  close(): void {
    if (this.closed) return;
    this.watch.close();
    this.stopRecords();
    this.readOut(Number.MAX_SAFE_INTEGER);
    this.endGeneration();
    this.closed = true;
    closeSync(this.writeFd);
    this.writeFd = -1;
    if (this.created) {
      try {
        unlinkSync(this.path);
      } catch (error) {
        this.log(`steve-daemon: cannot remove the fifo ${this.path}: ${(error as Error).message}`);
      }
    }
  }

  // ---- inotify -> re-evaluation ---------------------------------------------

  private onEvents(mask: number): void {
    if (mask & inotifyEvents.IN_Q_OVERFLOW)
      this.log(`steve-daemon: inotify queue overflow on ${this.path}; re-reading the fifo`);
    if (mask & inotifyEvents.IN_IGNORED)
      this.log(`steve-daemon: the fifo ${this.path} is gone; its current clients are still served`);
    this.evaluateGuarded();
  }

  /** From an event callback: a failure (EMFILE on the short-lived read end, …) is logged, and the next event tries again. */
  private evaluateGuarded(): void {
    try {
      this.evaluate();
    } catch (error) {
      this.log(
        `steve-daemon: fifo ${this.path}: ${(error as Error).message}; retrying on the next event`,
      );
    }
  }

  /** Evaluate after the current core event has been carried out. */
  private queueEvaluation(): void {
    if (this.evaluationQueued || this.closed) return;
    this.evaluationQueued = true;
    queueMicrotask(() => {
      this.evaluationQueued = false;
      this.evaluateGuarded();
    });
  }

  /** Look at the pipe afresh and move it towards `prefetch` parked tokens (or none without clients). */
  private evaluate(): void {
    if (this.closed) return;
    if (!this.hasReaders()) {
      const drained = this.readOut(Number.MAX_SAFE_INTEGER);
      // A client may have opened the fifo while the pipe was being drained.
      if (!this.hasReaders()) {
        this.endGeneration();
        return;
      }
      this.returnToCore(drained, bytesReadable(this.writeFd));
    }
    const generation = this.generation ?? this.startGeneration();
    // Every byte left in the pipe must be a token the core lent: at most
    // `prefetch` idle ones, and never more than the sub-pool holds (bytes a
    // client wrote without having read them, or wrote after a reset, are
    // surplus too). While the pool is over its capacity (a lower job count,
    // a limit) idle tokens go back to the core instead of waiting here.
    const surplus = this.connection.surplus();
    const keep = Math.max(0, Math.min(this.prefetch, generation.held) - surplus);
    let parked = bytesReadable(this.writeFd);
    if (parked > keep) {
      const taken = this.readOut(parked - keep);
      parked = bytesReadable(this.writeFd);
      this.returnToCore(taken, parked);
    }
    // Asked even while the pool is over its capacity: the read waits in the
    // core's queue like any client's and is granted when a token is free,
    // whoever returns it. (Asking only when within the capacity left a fifo
    // reader waiting forever once the pool had room again: nothing here
    // looks again until the fifo's own clients do something.) Never churn:
    // what went back above was at most the surplus, so the pool is still at
    // or over its capacity and this read cannot be granted at once.
    if (parked < this.prefetch && this.outstandingRead === null) this.askCore(generation);
  }

  private hasReaders(): boolean {
    return (pollNow(this.writeFd, pollEvents.POLLOUT) & pollEvents.POLLERR) === 0;
  }

  // ---- the pipe -------------------------------------------------------------

  /** Read up to `maxBytes` out of the pipe through a short-lived read end; the bytes read. */
  private readOut(maxBytes: number): number {
    if (bytesReadable(this.writeFd) === 0) return 0;
    const readFd = openSync(`/proc/self/fd/${this.writeFd}`, O_RDONLY | O_NONBLOCK);
    const buffer = Buffer.alloc(4096);
    let total = 0;
    try {
      while (total < maxBytes) {
        let count: number;
        try {
          count = readSync(readFd, buffer, 0, Math.min(buffer.length, maxBytes - total), null);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'EAGAIN') break;
          throw error;
        }
        if (count === 0) break;
        total += count;
      }
    } finally {
      closeSync(readFd);
    }
    return total;
  }

  /** Park one token byte in the pipe; false when it cannot take it. */
  private park(byte: number): boolean {
    try {
      return writeSync(this.writeFd, Buffer.from([byte]), 0, 1, null) === 1;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN' || code === 'EPIPE') return false;
      throw error;
    }
  }

  // ---- the core ---------------------------------------------------------------

  private startGeneration(): Generation {
    const localFileId = this.nextLocalFileId++;
    const generation: Generation = {
      localFileId,
      fileId: this.connection.file(localFileId),
      held: 0,
    };
    this.generation = generation;
    this.connection.label(localFileId, `${this.label} (tokens lent to its clients)`);
    this.connection.event({ type: 'open', fileId: generation.fileId, pid: 0 });
    return generation;
  }

  /** Close the synthetic file: the core reclaims every token the sub-pool holds, and answers its waiting read EINTR. */
  private endGeneration(): void {
    const generation = this.generation;
    if (generation === null) return;
    this.generation = null;
    const fileId = this.connection.releaseFile(generation.localFileId);
    if (fileId !== undefined) this.connection.event({ type: 'close', fileId });
    generation.held = 0;
  }

  private askCore(generation: Generation): void {
    const localId = this.nextLocalRequestId++;
    this.outstandingRead = { localId, generation };
    this.connection.event({
      type: 'read',
      requestId: this.connection.request(localId),
      fileId: generation.fileId,
      pid: 0,
      blocking: true,
      sizeBytes: 1,
      // A private fifo's tokens count for its requester's uid (`perUserLimit`).
      ...(this.uid === undefined ? {} : { uid: this.uid }),
    });
  }

  /**
   * Give `tokens` read out of the pipe back to the core. The bytes still in
   * the pipe (`stillParked`) are tokens the sub-pool lent and keeps, so at
   * most `held - stillParked` can be returns; the rest were not lent by this
   * pool (a stale write after a reset, bytes a client never read) and are
   * dropped, so the sub-pool can never hand out more than it holds.
   */
  private returnToCore(tokens: number, stillParked: number): void {
    if (tokens <= 0) return;
    const generation = this.generation;
    const owned = Math.max(0, Math.min(tokens, (generation?.held ?? 0) - stillParked));
    if (owned < tokens) {
      this.log(
        `steve-daemon: fifo ${this.path}: dropped ${tokens - owned} byte(s) this pool did not lend (written after a reset, or never read)`,
      );
    }
    if (generation === null || owned === 0) return;
    generation.held -= owned;
    this.connection.event({
      type: 'write',
      requestId: this.connection.request(this.nextLocalRequestId++),
      fileId: generation.fileId,
      pid: 0,
      sizeBytes: owned,
    });
  }

  // ---- FrontPort ----------------------------------------------------------

  reply(localRequestId: number, reply: Reply): void {
    const read = this.outstandingRead;
    if (read === null || read.localId !== localRequestId) {
      // The answer to a write (tokens returned): nothing to do.
      if (reply.kind === 'error')
        this.log(
          `steve-daemon: fifo ${this.path}: the core refused returned tokens (${reply.errno})`,
        );
      return;
    }
    this.outstandingRead = null;
    if (reply.kind !== 'token') {
      // EINTR: the generation ended while the read waited.
      this.queueEvaluation();
      return;
    }
    const generation = read.generation;
    generation.held += 1;
    const current = generation === this.generation && !this.closed;
    if (!current || bytesReadable(this.writeFd) >= this.prefetch || !this.park(reply.byte)) {
      // Not wanted any more: straight back (after this core event is done).
      queueMicrotask(() => {
        if (generation !== this.generation || generation.held <= 0) return;
        generation.held -= 1;
        this.connection.event({
          type: 'write',
          requestId: this.connection.request(this.nextLocalRequestId++),
          fileId: generation.fileId,
          pid: 0,
          sizeBytes: 1,
        });
        this.queueEvaluation();
      });
      return;
    }
    this.queueEvaluation();
  }

  notifyPoll(): void {
    // The fifo front never sends polls to the core.
  }

  dropPollHandle(): void {
    // The fifo front never sends polls to the core.
  }
}
