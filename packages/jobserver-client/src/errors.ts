/**
 * Errors of the client library. Each extends `@steve/protocol`'s
 * `SteveError` where a protocol code fits, and otherwise carries its own
 * stable `code` so callers branch on it rather than on message text.
 */

import { SteveError } from '@steve/protocol';

/**
 * The jobserver stopped answering: a read returned 0 bytes (end of file:
 * the server end is gone) or failed with an error other than EAGAIN/EINTR
 * (ENOTCONN, ENODEV, EIO when a FUSE/CUSE server died). Every pending
 * `acquire()` of that Jobserver is rejected with it and later ones too.
 */
export class JobserverGoneError extends SteveError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_STEVE_JOBSERVER_UNAVAILABLE', message, options);
  }
}

/** `acquire()`/`run()` on a Jobserver after `close()`, or pending when it closed. */
export class JobserverClosedError extends Error {
  readonly code = 'ERR_STEVE_JOBSERVER_CLOSED';
  constructor(message = 'the jobserver client is closed') {
    super(message);
    this.name = 'JobserverClosedError';
  }
}

/** A command run by `runWithToken` could not be started (ENOENT, EACCES, …). */
export class CommandStartError extends Error {
  readonly code = 'ERR_STEVE_COMMAND_START';
  readonly command: string;
  readonly args: readonly string[];
  constructor(command: string, args: readonly string[], cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(`cannot run ${command}: ${why}`, { cause });
    this.name = 'CommandStartError';
    this.command = command;
    this.args = args;
  }
}

/** The error an aborted `acquire()` rejects with: the signal's reason, or an AbortError. */
export function abortReason(signal: AbortSignal): unknown {
  if (signal.reason !== undefined) return signal.reason;
  const error = new Error('the operation was aborted');
  error.name = 'AbortError';
  return error;
}
