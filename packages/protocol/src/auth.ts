/**
 * The `--jobserver-auth=` value: how a client reaches the token pool.
 *
 * - `fifo`: GNU make >= 4.4 style, `fifo:PATH`. steve serves this from a CUSE
 *   device, a FUSE file or a real fifo; clients open the path themselves.
 * - `pipe`: inherited descriptors `R,W` (make <= 4.3, and make 4.4 with
 *   `--jobserver-style=pipe`). `R` and `W` may be the same descriptor of the
 *   device, which is how steve hands the pool to make 4.3 (`3,3`).
 * - `disabled`: a negative descriptor. make writes `-2,-2` for sub-makes
 *   that must not use the jobserver (recipes without `+`).
 * - `unsupported`: anything else, with the reason (kept so a client can say
 *   why it runs serially instead of silently ignoring the jobserver).
 */

import { posix } from 'node:path';
import { InvalidArgumentError } from './errors.js';

export type JobserverAuth =
  | { readonly kind: 'fifo'; readonly path: string }
  | { readonly kind: 'pipe'; readonly readFd: number; readonly writeFd: number }
  | { readonly kind: 'disabled'; readonly raw: string }
  | { readonly kind: 'unsupported'; readonly raw: string; readonly reason: string };

const PIPE_AUTH = /^(-?\d+),(-?\d+)$/;

/**
 * Parse one `--jobserver-auth=` (or legacy `--jobserver-fds=`) value.
 *
 * @param raw the text after `=`
 * @param cwd absolute directory a relative `fifo:` path is resolved against
 *   (GNU make resolves it against its own cwd at the time it reads MAKEFLAGS)
 *
 * @example
 * parseJobserverAuth('fifo:/dev/steve', '/') // { kind: 'fifo', path: '/dev/steve' }
 * parseJobserverAuth('3,4', '/')             // { kind: 'pipe', readFd: 3, writeFd: 4 }
 *
 * Errors: throws InvalidArgumentError only when `cwd` is not absolute; a bad
 * value is returned as `{ kind: 'unsupported', reason }`, never thrown.
 */
export function parseJobserverAuth(raw: string, cwd: string): JobserverAuth {
  if (!posix.isAbsolute(cwd)) {
    throw new InvalidArgumentError(`cwd must be an absolute path, got '${cwd}'`);
  }
  if (raw.startsWith('fifo:')) {
    const path = raw.slice('fifo:'.length);
    if (path === '') return { kind: 'unsupported', raw, reason: 'the fifo path is empty' };
    return { kind: 'fifo', path: posix.resolve(cwd, path) };
  }
  const pipe = PIPE_AUTH.exec(raw);
  if (pipe) {
    const readFd = Number(pipe[1]);
    const writeFd = Number(pipe[2]);
    if (readFd < 0 || writeFd < 0) return { kind: 'disabled', raw };
    if (!Number.isSafeInteger(readFd) || !Number.isSafeInteger(writeFd)) {
      return { kind: 'unsupported', raw, reason: 'descriptor number out of range' };
    }
    return { kind: 'pipe', readFd, writeFd };
  }
  if (raw === '') return { kind: 'unsupported', raw, reason: 'the value is empty' };
  if (/^gmake_semaphore_/.test(raw)) {
    return { kind: 'unsupported', raw, reason: 'a Windows semaphore (GNU make on Windows)' };
  }
  return {
    kind: 'unsupported',
    raw,
    reason: "expected 'fifo:PATH' or 'R,W' (two descriptor numbers)",
  };
}

/**
 * The `--jobserver-auth=` option word for an auth (what a child's MAKEFLAGS
 * carries). `disabled` and `unsupported` are written back as they were read.
 *
 * @example
 * formatJobserverAuth({ kind: 'pipe', readFd: 3, writeFd: 3 }) // '--jobserver-auth=3,3'
 */
export function formatJobserverAuth(auth: JobserverAuth): string {
  switch (auth.kind) {
    case 'fifo':
      return `--jobserver-auth=fifo:${auth.path}`;
    case 'pipe':
      return `--jobserver-auth=${auth.readFd},${auth.writeFd}`;
    case 'disabled':
    case 'unsupported':
      return `--jobserver-auth=${auth.raw}`;
  }
}

/** True for an auth a client can actually use to take tokens. */
export function isUsableAuth(
  auth: JobserverAuth | null,
): auth is Extract<JobserverAuth, { kind: 'fifo' | 'pipe' }> {
  return auth !== null && (auth.kind === 'fifo' || auth.kind === 'pipe');
}
