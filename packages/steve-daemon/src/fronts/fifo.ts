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
 * (fs/pipe.c) — a count that inotify's merged events could not give.
 *
 * The fifo must never grow the pool, and a pipe cannot say who read or wrote
 * a byte. So each lent token carries its own byte value, and a byte read back
 * is credited only if it is a token lent and not yet had back (strays,
 * duplicates, bytes from before a reset are dropped); and a taken token's
 * possible holders are the processes that had the fifo open (/proc/PID/fd)
 * and read something (/proc/PID/io `rchar`) while it left the pipe, plus the
 * readers of later moments in which one of its holders wrote (a token moves
 * on only through the pipe). When all of them are gone (pidfd), it goes back
 * to the core: a SIGKILLed client's tokens come back at its death, whoever
 * else keeps the fifo open. README ("the fifo front") lists what remains.
 *
 * inotify events on the path (open, close, access, modify) only say "look
 * again": each one re-evaluates the pipe from scratch (FIONREAD, readers),
 * so the reaction is idempotent, converges although the daemon's own reads
 * and writes cause events too, and a merged or lost event costs nothing.
 */

import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  constants as fsConstants,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
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
  type PidWatch,
  pollEvents,
  pollNow,
  watchPath,
  watchPid,
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

const { O_RDONLY, O_RDWR, O_WRONLY, O_NONBLOCK } = fsConstants;
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
  const created = createFifo(path, options, log);
  let front: FifoFront;
  try {
    front = new FifoFront(server, path, options.prefetch, created, log);
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

/** Make sure `path` is a fifo with the right permissions; true when it was created here. */
function createFifo(path: string, options: FifoFrontOptions, log: (line: string) => void): boolean {
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
    try {
      execFileSync('mkfifo', ['-m', options.mode.toString(8), path], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
    } catch (mkfifoError) {
      const stderr = (mkfifoError as { stderr?: Buffer }).stderr?.toString().trim();
      throw new Error(
        `cannot create the fifo ${path}: ${stderr || (mkfifoError as Error).message}`,
      );
    }
    created = true;
  }
  try {
    if (options.gid !== null) chownSync(path, process.getuid?.() ?? 0, options.gid);
    chmodSync(path, options.mode);
  } catch (error) {
    if (created) {
      unlinkSync(path);
      throw error;
    }
    log(
      `steve-daemon: warning: cannot set the permissions of the existing fifo ${path} (${(error as Error).message}); serving it as it is`,
    );
  }
  return created;
}

/** One generation of the sub-pool: the synthetic open file the core accounts it by. */
interface Generation {
  readonly localFileId: number;
  readonly fileId: number;
  /** Tokens the core has granted this generation and not got back. */
  held: number;
}

/**
 * A token the sub-pool has lent, named by the byte it carries in the pipe.
 * Each lent token gets its own byte value, so that a byte read back out of the
 * pipe is credited only if it is a token this sub-pool lent and has not had
 * back: clients write back the exact byte they read (ninja: "POSIX jobserver
 * requirement to write back the exact byte"; jobserver-rs; our clients).
 */
interface LentToken {
  readonly byte: number;
  /** `parked`: in the pipe as of the last read-out; `taken`: read by some client since. */
  state: 'parked' | 'taken';
  /**
   * Processes that may hold it (pids; {@link UNSEEN} for processes /proc
   * would not show); while parked, the readers since it was last seen in the
   * pipe (one of them takes it).
   */
  readonly candidates: Set<number>;
  /**
   * Detected as taken in the latest evaluation. The kernel counts a reader's
   * `rchar` only after its read has removed the byte (and after IN_ACCESS),
   * so the next window's readers are candidates too, and it is not reclaimed
   * before then.
   */
  fresh: boolean;
}

/** A process seen with the fifo open for reading (a possible holder). */
interface Peer {
  readonly pid: number;
  readonly watch: PidWatch | null;
  /** `rchar` / `wchar` of /proc/PID/io at the last sample; null when unreadable. */
  readChars: number | null;
  writeChars: number | null;
  /** Had the fifo open for reading at the last scan. */
  open: boolean;
  /** Seen open at some scan since the last sample. */
  openInWindow: boolean;
  /** First seen since the last sample: it may have read before it was first sampled. */
  isNew: boolean;
}

/** Candidate standing for processes whose descriptors /proc would not show (the daemon is not root). */
const UNSEEN = -1;
/**
 * Byte values for lent tokens: all but `+`, which GNU make writes back
 * whatever it read (posixos.c: `static char token = '+'`) and which is
 * therefore never taken for a return of ours. At most this many tokens are
 * lent through the fifo at once.
 */
const TOKEN_BYTES: readonly number[] = Array.from({ length: 255 }, (_, i) => i + 1).filter(
  (byte) => byte !== '+'.charCodeAt(0),
);
/** When a token was found taken, look again this soon (see {@link LentToken.fresh}). */
const FRESH_RECHECK_MS = 20;

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
  private scanQueued = false;
  private closed = false;
  /** Tokens lent by the current generation and not had back, by byte value. */
  private readonly lent = new Map<number, LentToken>();
  /** Bytes parked since (or kept at) the last read-out. */
  private parkedQueue: number[] = [];
  /** Where the next byte value is looked for (rotating, so that a value comes back as late as possible). */
  private byteCursor = 0;
  private readonly peers = new Map<number, Peer>();
  /** Some process's descriptors could not be read at the last scan. */
  private someUnseen = false;
  private warnedUnseen = false;
  private recheckTimer: NodeJS.Timeout | null = null;

  constructor(
    server: PoolServer,
    private readonly path: string,
    private readonly prefetch: number,
    private readonly created: boolean,
    private readonly log: (line: string) => void,
  ) {
    this.name = `fifo:${path}`;
    this.connection = server.connect(this);
    // O_RDWR never blocks on a fifo (Linux); reopening it write-only through
    // /proc leaves the daemon without a read end, so that POLLERR on it
    // means "no client left".
    const both = openSync(path, O_RDWR | O_NONBLOCK);
    try {
      this.writeFd = openSync(`/proc/self/fd/${both}`, O_WRONLY | O_NONBLOCK);
    } finally {
      closeSync(both);
    }
    try {
      // Bytes already in the pipe were not lent by this pool (a previous
      // daemon's clients still have it open): they are not tokens.
      const stale = this.readOut().length;
      if (stale > 0)
        this.log(`steve-daemon: dropped ${stale} stale byte(s) found in the fifo ${path}`);
      this.watch = watchPath(path, WATCHED, (mask) => this.onEvents(mask));
    } catch (error) {
      closeSync(this.writeFd);
      throw error;
    }
    this.scanQueued = true;
    this.evaluate();
  }

  parkedTokens(): number {
    return this.closed ? 0 : bytesReadable(this.writeFd);
  }

  lentTokens(): number {
    return this.lent.size;
  }

  close(): void {
    if (this.closed) return;
    this.watch.close();
    if (this.recheckTimer !== null) clearTimeout(this.recheckTimer);
    this.readOut();
    this.endGeneration();
    for (const peer of this.peers.values()) peer.watch?.close();
    this.peers.clear();
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
    // A new opener is a possible holder from now on: find it in /proc.
    if (mask & (inotifyEvents.IN_OPEN | inotifyEvents.IN_Q_OVERFLOW)) this.scanQueued = true;
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

  /**
   * Look at the pipe and its possible holders afresh: credit returns, drop
   * strays, find taken tokens and who may hold them, reclaim tokens nobody
   * alive can hold, and move the pipe towards `prefetch` parked tokens (none
   * without readers). Idempotent: the events its own reads and writes cause
   * find nothing more to do.
   */
  private evaluate(): void {
    if (this.closed) return;
    const readers = this.hasReaders();
    // 0. A new opener: look at the pipe now, so that tokens still parked are
    //    known not to be its (else every token parked when it came would
    //    count it as a possible holder).
    let newPeers = false;
    if (this.scanQueued) {
      this.scanQueued = false;
      newPeers = this.scan();
    }
    // 1. The pipe's content, when it may differ from what was parked (a
    //    client read or wrote), or to drain it when nobody can read it.
    const newlyTaken: LentToken[] = [];
    let returned = 0;
    let strays = 0;
    const readOut = !readers || newPeers || bytesReadable(this.writeFd) !== this.parkedQueue.length;
    /** Parked tokens found in the pipe now: nobody took them in this window. */
    const present = new Set<number>();
    if (readOut) {
      for (const byte of this.readOut()) {
        const token = this.lent.get(byte);
        if (token?.state === 'parked' && !present.has(byte)) {
          // Still in the pipe: nobody has taken it since it was parked.
          present.add(byte);
          token.candidates.clear();
        } else if (token?.state === 'taken') {
          this.lent.delete(byte);
          returned += 1;
        } else {
          // Never lent, lent before a reset, already had back, or make's `+`:
          // crediting it would grow the pool.
          strays += 1;
        }
      }
      for (const byte of this.parkedQueue) {
        const token = this.lent.get(byte);
        if (token === undefined || token.state !== 'parked' || present.has(byte)) continue;
        token.state = 'taken';
        token.fresh = true;
        newlyTaken.push(token);
      }
      this.parkedQueue = this.parkedQueue.filter((byte) => present.has(byte));
    }
    // 2. Who had the fifo open, and who read or wrote since the last sample.
    //    A forked child that inherited the descriptor makes no IN_OPEN, so
    //    every token found taken is a reason to scan too.
    if (newlyTaken.length > 0) this.scan();
    const { readersInWindow, writersInWindow } = this.sample();
    // 3. Possible holders. A taken token passes to another process only
    //    through the pipe: when one of its candidates wrote, this window's
    //    readers may have it now.
    for (const token of this.lent.values()) {
      if (token.state === 'parked' || newlyTaken.includes(token)) {
        // Whoever reads while it is parked may be the one taking it (unless
        // it was still there after this window's reads).
        if (present.has(token.byte)) continue;
        for (const pid of readersInWindow) token.candidates.add(pid);
        if (token.state === 'taken' && this.someUnseen) token.candidates.add(UNSEEN);
        continue;
      }
      const handedOn = token.fresh || [...token.candidates].some((pid) => writersInWindow.has(pid));
      if (handedOn) for (const pid of readersInWindow) token.candidates.add(pid);
      token.fresh = false;
    }
    if (!readers) {
      // Nobody can read the pipe: processes /proc did not show are not
      // holding the fifo open any more either.
      for (const token of this.lent.values()) token.candidates.delete(UNSEEN);
    }
    // 4. Tokens nobody alive can hold go back (a killed client's).
    let reclaimed = 0;
    for (const token of [...this.lent.values()]) {
      if (token.state === 'taken' && !token.fresh && token.candidates.size === 0) {
        this.lent.delete(token.byte);
        reclaimed += 1;
      }
    }
    if (strays > 0)
      this.log(
        `steve-daemon: fifo ${this.path}: dropped ${strays} byte(s) that are no token it lent (written twice, never read, from before a reset, or a client that does not write back the byte it read)`,
      );
    this.forgetIdlePeers();
    const generation = this.generation;
    if (!readers) {
      // Parked tokens nobody can take go back; with nothing taken, the
      // generation ends (the core reclaims the rest).
      for (const byte of this.parkedQueue) this.lent.delete(byte);
      const drained = this.parkedQueue.length;
      this.parkedQueue = [];
      if (this.lent.size === 0) {
        this.endGeneration();
      } else if (generation !== null) {
        this.credit(generation, returned + reclaimed + drained);
      }
      this.scheduleRecheck();
      return;
    }
    // 5. Put back what was read out and still parked, then credit the core
    //    (which may grant the front's waiting read at once: that token is
    //    parked by reply(), not here), then top up.
    let lost = 0;
    if (readOut) {
      const kept = this.parkedQueue;
      this.parkedQueue = [];
      for (const byte of kept) {
        if (this.park(byte)) this.parkedQueue.push(byte);
        else {
          this.lent.delete(byte);
          lost += 1;
        }
      }
    }
    if (generation !== null) this.credit(generation, returned + reclaimed + lost);
    const current = this.generation ?? this.startGeneration();
    if (
      this.parkedQueue.length < this.prefetch &&
      this.outstandingRead === null &&
      this.lent.size < TOKEN_BYTES.length
    )
      this.askCore(current);
    this.scheduleRecheck();
  }

  private hasReaders(): boolean {
    return (pollNow(this.writeFd, pollEvents.POLLOUT) & pollEvents.POLLERR) === 0;
  }

  /** A token just found taken needs one more look (its reader's rchar may lag). */
  private scheduleRecheck(): void {
    if (this.recheckTimer !== null || this.closed) return;
    if (![...this.lent.values()].some((token) => token.fresh)) return;
    this.recheckTimer = setTimeout(() => {
      this.recheckTimer = null;
      this.evaluateGuarded();
    }, FRESH_RECHECK_MS);
    this.recheckTimer.unref();
  }

  // ---- possible holders -------------------------------------------------------

  /** Find every process with the fifo open for reading (/proc/PID/fd), and watch the new ones; true when there were new ones. */
  private scan(): boolean {
    const seen = new Set<number>();
    let unseen = false;
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const pid = Number(name);
      let fds: string[];
      try {
        fds = readdirSync(`/proc/${pid}/fd`);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EACCES') unseen = true;
        continue;
      }
      for (const fd of fds) {
        if (pid === process.pid && Number(fd) === this.writeFd) continue;
        if (this.isReadEndOfFifo(pid, fd)) {
          seen.add(pid);
          break;
        }
      }
    }
    if (unseen && !this.warnedUnseen) {
      this.warnedUnseen = true;
      this.log(
        `steve-daemon: fifo ${this.path}: cannot read every process's descriptors (run the daemon as root); tokens such processes take come back only when nobody has the fifo open`,
      );
    }
    this.someUnseen = unseen;
    for (const peer of this.peers.values()) {
      peer.open = seen.has(peer.pid);
      if (peer.open) peer.openInWindow = true;
    }
    let found = false;
    for (const pid of seen) {
      if (this.peers.has(pid)) continue;
      this.addPeer(pid);
      found = true;
    }
    return found;
  }

  private isReadEndOfFifo(pid: number, fd: string): boolean {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (target !== this.path && target !== `${this.path} (deleted)`) return false;
      const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      return flags === null || (Number.parseInt(flags[1] as string, 8) & 3) !== O_WRONLY;
    } catch {
      return false; // closed or exited meanwhile
    }
  }

  private addPeer(pid: number): void {
    const own = pid === process.pid;
    const watch = own ? null : watchPid(pid, () => this.onPeerExit(pid));
    if (!own && watch === null) return; // gone already
    this.peers.set(pid, {
      pid,
      watch,
      readChars: null,
      writeChars: null,
      open: true,
      openInWindow: true,
      isNew: true,
    });
  }

  private onPeerExit(pid: number): void {
    const peer = this.peers.get(pid);
    if (peer === undefined) return;
    peer.watch?.close();
    this.peers.delete(pid);
    for (const token of this.lent.values()) token.candidates.delete(pid);
    this.queueEvaluation();
  }

  /**
   * Which peers read and which wrote since the last sample (`rchar` and
   * `wchar` of /proc/PID/io grew). A process that read nothing cannot have
   * taken a byte out of the pipe; one that wrote nothing cannot have handed
   * a token on. A peer first seen now, or unreadable, counts as both.
   */
  private sample(): { readersInWindow: Set<number>; writersInWindow: Set<number> } {
    const readersInWindow = new Set<number>();
    const writersInWindow = new Set<number>();
    for (const peer of this.peers.values()) {
      const io = readIo(peer.pid);
      const read =
        peer.isNew || io === null || peer.readChars === null || io.readChars > peer.readChars;
      const wrote =
        peer.isNew || io === null || peer.writeChars === null || io.writeChars > peer.writeChars;
      if (read && (peer.open || peer.openInWindow)) readersInWindow.add(peer.pid);
      if (wrote) writersInWindow.add(peer.pid);
      peer.readChars = io?.readChars ?? null;
      peer.writeChars = io?.writeChars ?? null;
      peer.isNew = false;
      peer.openInWindow = peer.open;
    }
    return { readersInWindow, writersInWindow };
  }

  /** Stop watching processes that have closed the fifo and can hold none of its tokens. */
  private forgetIdlePeers(): void {
    const needed = new Set<number>();
    for (const token of this.lent.values()) for (const pid of token.candidates) needed.add(pid);
    for (const peer of [...this.peers.values()]) {
      if (peer.open || needed.has(peer.pid)) continue;
      peer.watch?.close();
      this.peers.delete(peer.pid);
    }
  }

  // ---- the pipe -------------------------------------------------------------

  /** Read everything out of the pipe through a short-lived read end. */
  private readOut(): Buffer {
    if (bytesReadable(this.writeFd) === 0) return Buffer.alloc(0);
    const readFd = openSync(`/proc/self/fd/${this.writeFd}`, O_RDONLY | O_NONBLOCK);
    const chunks: Buffer[] = [];
    try {
      for (;;) {
        const buffer = Buffer.alloc(4096);
        let count: number;
        try {
          count = readSync(readFd, buffer, 0, buffer.length, null);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'EAGAIN') break;
          throw error;
        }
        if (count === 0) break;
        chunks.push(buffer.subarray(0, count));
      }
    } finally {
      closeSync(readFd);
    }
    return Buffer.concat(chunks);
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

  /** A byte value no lent token carries, the least recently used first; null when all are out. */
  private nextByte(): number | null {
    for (let i = 0; i < TOKEN_BYTES.length; i++) {
      const byte = TOKEN_BYTES[(this.byteCursor + i) % TOKEN_BYTES.length] as number;
      if (this.lent.has(byte)) continue;
      this.byteCursor = (this.byteCursor + i + 1) % TOKEN_BYTES.length;
      return byte;
    }
    return null;
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
    this.connection.label(localFileId, `fifo front ${this.path} (tokens lent to its clients)`);
    this.connection.event({ type: 'open', fileId: generation.fileId, pid: 0 });
    return generation;
  }

  /** Close the synthetic file: the core reclaims every token the sub-pool holds, and answers its waiting read EINTR. */
  private endGeneration(): void {
    const generation = this.generation;
    if (generation === null) return;
    this.generation = null;
    this.lent.clear();
    this.parkedQueue = [];
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
    });
  }

  /** Give `tokens` back to the core (never more than the generation holds). */
  private credit(generation: Generation, tokens: number): void {
    const owned = Math.min(tokens, generation.held);
    if (owned <= 0 || generation !== this.generation) return;
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
    // The core's token byte is not used: the pipe carries this sub-pool's own
    // value for it (see LentToken).
    const byte =
      current && this.parkedQueue.length < this.prefetch && this.hasReaders()
        ? this.nextByte()
        : null;
    if (byte === null || !this.park(byte)) {
      // Not wanted any more: straight back (after this core event is done).
      queueMicrotask(() => {
        this.credit(generation, 1);
        this.queueEvaluation();
      });
      return;
    }
    this.lent.set(byte, { byte, state: 'parked', candidates: new Set(), fresh: false });
    this.parkedQueue.push(byte);
    this.queueEvaluation();
  }

  notifyPoll(): void {
    // The fifo front never sends polls to the core.
  }

  dropPollHandle(): void {
    // The fifo front never sends polls to the core.
  }
}

/** `rchar` and `wchar` of /proc/PID/io (every read and write the process made); null when unreadable. */
function readIo(pid: number): { readChars: number; writeChars: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/io`, 'utf8');
    const readChars = /^rchar:\s+(\d+)$/m.exec(text)?.[1];
    const writeChars = /^wchar:\s+(\d+)$/m.exec(text)?.[1];
    if (readChars === undefined || writeChars === undefined) return null;
    return { readChars: Number(readChars), writeChars: Number(writeChars) };
  } catch {
    return null;
  }
}
