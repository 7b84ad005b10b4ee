/**
 * Typed access to the native addon (`build/Release/steve_native.node`, built
 * by `native/native.mjs`, or prebuilt in a packed tarball): libfuse3 low-level FUSE/CUSE sessions driven by
 * the Node event loop, `pidfd_open` watches, `SO_PEERCRED`, and the fifo
 * front's inotify watch, FIONREAD and zero-timeout poll.
 *
 * The addon is glue: it decodes kernel requests, hands them to the handlers
 * below on the JS thread and sends back whatever JS replies. Every decision
 * (who gets a token, when to say EAGAIN) is made in TypeScript.
 *
 * @module
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Who made a request, as the kernel reports it (`fuse_req_ctx`). */
export interface RequestContext {
  /**
   * The calling *thread* id in the daemon's pid namespace; 0 when the caller
   * is outside it, and for RELEASE (which the kernel sends on nobody's
   * behalf). Map it to the process with `/proc/<tid>/status` (`Tgid:`).
   */
  tid: number;
  /** Effective uid of the caller. */
  uid: number;
  /** Effective gid of the caller. */
  gid: number;
}

/** What a read handler returns for a zero-byte reply (bytes are 0..255). */
export const REPLY_EMPTY = 256;

/** Which file of the session an open refers to. CUSE has only `jobserver`. */
export type SessionFile = 'jobserver' | 'status';

/**
 * Why a session ended, as passed to {@link SessionHandlers.closed}:
 * `'closed'` (JS called {@link Session.close}), `'unmounted'` (the kernel
 * ended the connection: umount, fusermount3 -u, or an abort through
 * /sys/fs/fuse/connections), or `'error: …'`.
 */
export type CloseReason = string;

/**
 * Callbacks of a session, all called on the JS thread. Request handlers
 * (`read`, `write`, `poll`) receive a `reqId` that must be answered exactly
 * once, now or later, through the matching `Session.reply*` method. A
 * handler that throws is reported as an `uncaughtException`, and its request
 * (if still unanswered) gets EIO.
 */
export interface SessionHandlers {
  /**
   * A file was opened. The addon replies to OPEN itself (direct_io, and
   * non-seekable for `jobserver`) right after this returns; `fileId`
   * identifies the open file description in later calls.
   * @param flags the open flags (`O_RDWR`, `O_NONBLOCK`, …)
   */
  open(fileId: number, ctx: RequestContext, flags: number, path: SessionFile): void;
  /** The last reference to an open file went away. Already answered. */
  release(fileId: number, ctx: RequestContext): void;
  /**
   * A read on `jobserver`. Reply with {@link Session.replyData} (at most
   * `sizeBytes` bytes) or {@link Session.replyError} (EAGAIN, EINTR, …).
   * Reads and writes are the hot path: the caller comes as plain numbers
   * (`tid`, `uid` as in {@link RequestContext}), not as a context object,
   * and a handler that knows the answer at once may *return* it instead of
   * calling a reply method (one crossing into native code fewer): a byte
   * 0..255 (a one-byte reply), {@link REPLY_EMPTY} (zero bytes) or
   * `-errno`; `undefined` leaves the request to a later reply.
   * @param flags the file's flags *at the time of this read*, so an
   *   `O_NONBLOCK` set later with fcntl is visible here
   */
  read(
    reqId: number,
    fileId: number,
    tid: number,
    uid: number,
    sizeBytes: number,
    flags: number,
  ): number | undefined | void;
  /**
   * A write on `jobserver` of `sizeBytes` bytes (their values do not
   * matter: a token is a token). Reply with {@link Session.replyWrite} or
   * an error, or return the answer as `read` may: the count taken
   * (0..sizeBytes) or `-errno`.
   */
  write(
    reqId: number,
    fileId: number,
    tid: number,
    uid: number,
    sizeBytes: number,
  ): number | undefined | void;
  /**
   * A poll/select/epoll on `jobserver`; the caller is blocked in the kernel
   * until {@link Session.replyPoll}. Keep `pollHandleId` (0 when the kernel
   * asked for no notification) to wake the caller later with
   * {@link Session.notifyPoll}; each id must eventually be notified or
   * dropped.
   * @param events the requested poll bits (see {@link pollEvents})
   */
  poll(
    reqId: number,
    fileId: number,
    ctx: RequestContext,
    pollHandleId: number,
    events: number,
  ): void;
  /**
   * The kernel interrupted an unanswered read/write/poll (the caller got a
   * signal, possibly a fatal one). Reply EINTR to let it go; a killed
   * process stays stuck in the kernel until its request is answered.
   */
  interrupt(reqId: number): void;
  /**
   * FUSE only: called when `status` is opened; that open file then serves
   * this snapshot.
   */
  /** The FUSE `status` file's text for the process opening it. */
  statusText(ctx: RequestContext): string;
  /** The session ended; every pending request was answered with EIO. */
  closed(reason: CloseReason): void;
}

/** A running FUSE mount or CUSE device. */
export interface Session {
  /**
   * Answers a read with `data` (at most the bytes asked for).
   * @returns false when `reqId` is unknown or already answered
   * @throws TypeError when `reqId` is not a read; RangeError when `data` is
   *   longer than the read (the request stays pending)
   */
  replyData(reqId: number, data: Buffer): boolean;
  /**
   * Answers any pending request with a positive errno (EAGAIN, EINTR,
   * ENOSPC, EIO, …; see `os.constants.errno`).
   * @returns false when `reqId` is unknown or already answered
   */
  replyError(reqId: number, errno: number): boolean;
  /**
   * Answers a write: `countBytes` (≤ the bytes written) were accepted.
   * @returns false when `reqId` is unknown or already answered
   */
  replyWrite(reqId: number, countBytes: number): boolean;
  /**
   * Answers a poll with the ready bits (see {@link pollEvents}).
   * @returns false when `reqId` is unknown or already answered
   */
  replyPoll(reqId: number, revents: number): boolean;
  /**
   * Wakes the poller behind `pollHandleId` (it polls again) and frees the
   * handle.
   * @returns false when the id is unknown or already used
   */
  notifyPoll(pollHandleId: number): boolean;
  /**
   * Frees a poll handle without waking anyone.
   * @returns false when the id is unknown or already used
   */
  dropPollHandle(pollHandleId: number): boolean;
  /**
   * Ends the session: answers pending requests with EIO, unmounts (lazily)
   * or removes the device, frees everything, then calls `closed('closed')`.
   * Idempotent. Called from inside a handler, it takes effect right after
   * the current batch of requests.
   */
  close(): void;
  /** The /dev/fuse or /dev/cuse descriptor; -1 once closed. */
  readonly fd: number;
  /** True once the session ended or a close is pending. */
  readonly isClosed: boolean;
}

/** Options of {@link startFuse}. */
export interface FuseOptions {
  /** Mount with `allow_other` so other users can reach the files. */
  allowOther: boolean;
  /** Permission bits of `jobserver`, e.g. 0o666; enforced by the kernel. */
  fileMode: number;
  /** Group owning `jobserver` (with a mode such as 0o660); the daemon's own group when absent. */
  fileGid?: number;
  /** Serve `control.sock` in the mount as a symlink to this path (the real control socket). */
  controlLink?: string;
  /** libfuse debug output on stderr. */
  debug?: boolean;
}

/** Options of {@link startCuse}. */
export interface CuseOptions {
  /** Device name: `'steve'` gives `/dev/steve`. */
  devName: string;
  /** libfuse debug output on stderr. */
  debug?: boolean;
}

/** A pidfd watch; {@link PidWatch.close} stops it without calling back. */
export interface PidWatch {
  close(): void;
}

/** The peer of a unix socket, as of its `connect()`. */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
  /** Supplementary groups as of connect() (SO_PEERGROUPS). */
  groups: number[];
}

/** poll(2) bits as the platform defines them. */
export interface PollEvents {
  POLLIN: number;
  POLLPRI: number;
  POLLOUT: number;
  POLLERR: number;
  POLLHUP: number;
  POLLRDNORM: number;
  POLLWRNORM: number;
}

/** inotify(7) bits as the platform defines them. */
export interface InotifyEvents {
  IN_ACCESS: number;
  IN_MODIFY: number;
  IN_ATTRIB: number;
  IN_OPEN: number;
  IN_CLOSE_WRITE: number;
  IN_CLOSE_NOWRITE: number;
  IN_DELETE_SELF: number;
  IN_MOVE_SELF: number;
  IN_IGNORED: number;
  IN_Q_OVERFLOW: number;
}

/** An inotify watch; {@link PathWatch.close} stops it without calling back. */
export interface PathWatch {
  close(): void;
}

/** The shape of the compiled module. */
interface NativeAddon {
  startFuse(mountDir: string, opts: FuseOptions, handlers: SessionHandlers): Session;
  startCuse(opts: CuseOptions, handlers: SessionHandlers): Session;
  watchPid(pid: number, onExit: () => void): PidWatch | null;
  peerCredentials(socketFd: number): PeerCredentials;
  watchPath(path: string, mask: number, onEvents: (mask: number) => void): PathWatch;
  bytesReadable(fd: number): number;
  pollNow(fd: number, events: number): number;
  pollEvents: PollEvents;
  inotifyEvents: InotifyEvents;
  libfuseVersion: number;
}

const require = createRequire(import.meta.url);

/**
 * The addon, through node-gyp-build: build/Release in a checkout (pnpm
 * build), prebuilds/linux-x64/steve_native.napi.node in a packed tarball, or
 * build/Release again when the install built it from source.
 */
function loadAddon(): NativeAddon {
  // src/native/addon.ts and dist/native/addon.js are both two levels below the package root.
  const packageDir = fileURLToPath(new URL('../..', import.meta.url));
  const load = require('node-gyp-build') as (dir: string) => unknown;
  try {
    return load(packageDir) as NativeAddon;
  } catch (error) {
    const reason = (error as Error).message.split('\n')[0];
    const hint = /libfuse3\.so/.test(reason ?? '')
      ? 'install the libfuse3 runtime (Debian: apt-get install fuse3; Gentoo: emerge sys-fs/fuse:3)'
      : 'rebuild it (npm rebuild steve-daemon, which needs libfuse3-dev, g++, make and python3; in a checkout: pnpm build)';
    throw new Error(`steve-daemon cannot load its native addon (${reason}): ${hint}`, {
      cause: error,
    });
  }
}

const native = loadAddon();

/** poll(2) bits for {@link Session.replyPoll} and the `events` of a poll. */
export const pollEvents: Readonly<PollEvents> = Object.freeze({ ...native.pollEvents });

/** inotify(7) bits for {@link watchPath}. */
export const inotifyEvents: Readonly<InotifyEvents> = Object.freeze({ ...native.inotifyEvents });

/** libfuse's version as `major * 100 + minor` (314 for 3.14). */
export const libfuseVersion: number = native.libfuseVersion;

/**
 * Mounts a FUSE file system at `mountDir` holding `jobserver` (a
 * non-seekable, direct-io regular file with `opts.fileMode`) and `status`
 * (0444, contents from {@link SessionHandlers.statusText}). Returns once
 * the kernel's INIT is answered, so the mount is usable at once; requests
 * are then served from the event loop (never read the mount synchronously
 * from this thread: it would wait for itself).
 *
 * Errors: `ENOENT`/`ENOTDIR` for a bad mount point; `EPERM` and friends
 * (with libfuse's explanation on stderr) when mounting is not allowed.
 */
export function startFuse(mountDir: string, opts: FuseOptions, handlers: SessionHandlers): Session {
  return track(native.startFuse(mountDir, opts, handlers));
}

/** The error of {@link startCuse} when the kernel has no CUSE. */
export const NO_CUSE_MESSAGE =
  'cannot open /dev/cuse: this kernel has no CUSE (CONFIG_CUSE); use --fuse /run/steve or load the cuse module';

/**
 * Creates the character device `/dev/<devName>` (CUSE), served like the
 * FUSE `jobserver` file. The device node appears shortly after (devtmpfs),
 * mode 0600 root until changed.
 *
 * Errors: {@link NO_CUSE_MESSAGE} when `/dev/cuse` does not exist (code
 * `ENOENT`, the system error as `cause`); other `open` errors as they are.
 */
export function startCuse(opts: CuseOptions, handlers: SessionHandlers): Session {
  try {
    return track(native.startCuse(opts, handlers));
  } catch (error) {
    if (isSystemError(error) && error.code === 'ENOENT' && error.path === '/dev/cuse') {
      throw Object.assign(new Error(NO_CUSE_MESSAGE, { cause: error }), { code: 'ENOENT' });
    }
    throw error;
  }
}

/**
 * Calls `onExit` once when process `pid` exits (pidfd_open under the event
 * loop; works for any process, not only children; Linux ≥ 5.3). The watch
 * does not keep the event loop alive.
 *
 * @returns null when no such process exists (ESRCH)
 * @throws other pidfd_open errors (EINVAL for a thread id that is not a
 *   process, EMFILE, …)
 */
export function watchPid(pid: number, onExit: () => void): PidWatch | null {
  return native.watchPid(pid, onExit);
}

/**
 * The credentials (`SO_PEERCRED`) of the peer of the connected unix socket
 * `socketFd`.
 * @throws the getsockopt error (ENOTSOCK, EBADF, …)
 */
export function peerCredentials(socketFd: number): PeerCredentials {
  return native.peerCredentials(socketFd);
}

/**
 * Watches `path` with inotify (the bits of `mask`, see {@link inotifyEvents})
 * under the event loop. Each time events arrive, `onEvents` is called once
 * with the OR of their masks: the kernel merges identical consecutive events,
 * so treat a call as "something happened", never as a count. `IN_Q_OVERFLOW`
 * in the mask means events were lost. The watch does not keep the event loop
 * alive.
 *
 * @throws the inotify_add_watch error (ENOENT, EACCES, …) with `path`
 */
export function watchPath(path: string, mask: number, onEvents: (mask: number) => void): PathWatch {
  return native.watchPath(path, mask, onEvents);
}

/**
 * The bytes waiting to be read in the pipe or fifo behind `fd`, either end
 * (`ioctl(FIONREAD)`), without consuming them.
 * @throws the ioctl error (EBADF, ENOTTY for files that are not pipes, …)
 */
export function bytesReadable(fd: number): number {
  return native.bytesReadable(fd);
}

/**
 * poll(2) on one descriptor without waiting: the ready bits (see
 * {@link pollEvents}), 0 when nothing is ready. On the write end of a fifo,
 * `POLLERR` means no process has the fifo open for reading.
 * @throws the poll error
 */
export function pollNow(fd: number, events: number): number {
  return native.pollNow(fd, events);
}

/**
 * Sessions still open when the process exits get closed, so that
 * `process.exit()` does not leave a dead mount ("Transport endpoint is not
 * connected") behind. (Node runs no native cleanup hooks on process.exit.)
 */
const liveSessions = new Set<Session>();
let exitHookInstalled = false;

function track(session: Session): Session {
  for (const known of liveSessions) if (known.isClosed) liveSessions.delete(known);
  if (!exitHookInstalled) {
    process.on('exit', closeLiveSessions);
    exitHookInstalled = true;
  }
  liveSessions.add(session);
  return session;
}

function closeLiveSessions(): void {
  for (const session of liveSessions) session.close();
  liveSessions.clear();
}

function isSystemError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string';
}
