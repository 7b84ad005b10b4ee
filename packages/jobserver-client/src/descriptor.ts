/**
 * The OS half: private descriptors, one-byte reads and writes, and the
 * checks that tell a jobserver descriptor from whatever else a number
 * names. Linux only (uses /proc/self/fd and /proc/self/fdinfo).
 */

import { constants, fstatSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { JobserverGoneError } from './errors.js';

const { O_RDWR, O_NONBLOCK, O_ACCMODE } = constants as typeof constants & { O_ACCMODE?: number };
const ACCESS_MODE_MASK = O_ACCMODE ?? 3;
const O_RDONLY = constants.O_RDONLY;
const O_WRONLY = constants.O_WRONLY;

/**
 * Open a private open file description of the pool, in non-blocking mode.
 *
 * `path` is the fifo path (make 4.4 `fifo:PATH`: a real fifo, the CUSE
 * device or the FUSE file: no S_ISFIFO requirement) or `/proc/self/fd/N`
 * for an inherited pipe-style descriptor. Reopening gives a file
 * description of our own, so setting O_NONBLOCK on it never touches the
 * one make shares with every process of the build. O_RDWR keeps a fifo
 * open for writing too, so returning a token never fails with ENXIO and
 * opening never blocks.
 */
export function openPrivate(path: string, nonBlocking = true): number {
  return openSync(path, O_RDWR | (nonBlocking ? O_NONBLOCK : 0));
}

/** What one non-blocking read of one byte gave. */
export type ReadResult = number | 'again';

const oneByte = Buffer.alloc(1);

/**
 * Read exactly one byte (one token) without blocking. EINTR is retried;
 * EAGAIN (nothing there, or someone else was faster) is `'again'`; end of
 * file (0 bytes) and any other error mean the server is gone.
 *
 * `position` is `null`: the pool is not seekable (CUSE, FUSE, pipes).
 */
export function readTokenByte(fd: number, what: string): ReadResult {
  for (;;) {
    let count: number;
    try {
      count = readSync(fd, oneByte, 0, 1, null);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return 'again';
      if (code === 'EINTR') continue;
      throw new JobserverGoneError(
        `reading a token from ${what} failed (${code ?? String(error)}): the jobserver is gone`,
        { cause: error },
      );
    }
    if (count === 0) {
      throw new JobserverGoneError(
        `reading a token from ${what} returned end of file: the jobserver is gone`,
      );
    }
    return oneByte[0] as number;
  }
}

/**
 * Write one token byte back. EINTR and EAGAIN (a full pipe: cannot happen
 * with fewer tokens than the pipe's 64 KiB, but retried) are retried a
 * bounded number of times; other errors are thrown to the caller.
 */
export function writeTokenByte(fd: number, byte: number): void {
  const buffer = Buffer.of(byte);
  for (let attempt = 0; ; attempt++) {
    try {
      if (writeSync(fd, buffer, 0, 1, null) === 1) return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if ((code === 'EINTR' || code === 'EAGAIN') && attempt < 1000) continue;
      throw error;
    }
  }
}

interface DescriptorInfo {
  readonly type: 'fifo' | 'char' | 'file' | 'other';
  readonly accessMode: 'read' | 'write' | 'readwrite';
  readonly dev: number;
  readonly ino: number;
}

function describe(fd: number): DescriptorInfo | string {
  let stats;
  try {
    stats = fstatSync(fd);
  } catch (error) {
    return `descriptor ${fd} is not open (${(error as NodeJS.ErrnoException).code})`;
  }
  let flags: number;
  try {
    const info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    flags = parseInt(/^flags:\s*([0-7]+)/m.exec(info)?.[1] ?? '', 8);
  } catch {
    return `descriptor ${fd} has no /proc/self/fdinfo entry`;
  }
  const access = flags & ACCESS_MODE_MASK;
  const accessMode =
    access === O_RDONLY ? 'read' : access === O_WRONLY ? 'write' : ('readwrite' as const);
  const type = stats.isFIFO()
    ? 'fifo'
    : stats.isCharacterDevice()
      ? 'char'
      : stats.isFile()
        ? 'file'
        : 'other';
  return { type, accessMode, dev: stats.dev, ino: stats.ino };
}

/**
 * Why inherited descriptors `readFd,writeFd` are not a usable jobserver, or
 * `null` when they are. Node opens its own descriptors at low numbers (its
 * epoll descriptor, an internal pipe), so a stale MAKEFLAGS naming `3,4`
 * must not be trusted blindly:
 * - both must be open;
 * - the same descriptor twice (`3,3`, how steve hands its device or FUSE
 *   file to make 4.3) must be a fifo, a character device or a file (FUSE),
 *   open for reading and writing;
 * - two descriptors must be the two ends of one pipe: both fifos with the
 *   same inode, the first readable, the second writable.
 * An anonymous inode (epoll, eventfd) has no file type and is refused.
 */
export function pipeAuthProblem(readFd: number, writeFd: number): string | null {
  const read = describe(readFd);
  if (typeof read === 'string') return read;
  if (readFd === writeFd) {
    if (read.type === 'other') return `descriptor ${readFd} is not a pipe, device or file`;
    if (read.accessMode !== 'readwrite') {
      return `descriptor ${readFd} is used for reading and writing but is not open read-write`;
    }
    return null;
  }
  const write = describe(writeFd);
  if (typeof write === 'string') return write;
  if (read.type !== 'fifo' || write.type !== 'fifo') {
    return `descriptors ${readFd} and ${writeFd} are not both pipes`;
  }
  if (read.dev !== write.dev || read.ino !== write.ino) {
    return `descriptors ${readFd} and ${writeFd} are not the same pipe`;
  }
  if (read.accessMode === 'write') return `descriptor ${readFd} is not open for reading`;
  if (write.accessMode === 'read') return `descriptor ${writeFd} is not open for writing`;
  return null;
}
