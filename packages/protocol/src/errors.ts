/**
 * Typed errors shared by every steve package. Each carries a stable `code`
 * so callers branch on it rather than on message text, and a message that
 * says what to do.
 */

export type SteveErrorCode =
  | 'ERR_STEVE_INVALID_ARGUMENT'
  | 'ERR_STEVE_NO_JOBSERVER'
  | 'ERR_STEVE_UNSUPPORTED_AUTH'
  | 'ERR_STEVE_JOBSERVER_UNAVAILABLE';

export class SteveError extends Error {
  readonly code: SteveErrorCode;

  constructor(code: SteveErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A caller passed something that cannot be right (a relative cwd, a negative count). */
export class InvalidArgumentError extends SteveError {
  constructor(message: string) {
    super('ERR_STEVE_INVALID_ARGUMENT', message);
  }
}

/** No MAKEFLAGS-like variable names a jobserver. */
export class NoJobserverError extends SteveError {
  constructor(message = 'no jobserver in CARGO_MAKEFLAGS, MAKEFLAGS or MFLAGS') {
    super('ERR_STEVE_NO_JOBSERVER', message);
  }
}

/** The jobserver auth names something steve cannot use (a Windows semaphore, garbage). */
export class UnsupportedAuthError extends SteveError {
  readonly raw: string;

  constructor(raw: string, reason: string) {
    super('ERR_STEVE_UNSUPPORTED_AUTH', `unsupported --jobserver-auth '${raw}': ${reason}`);
    this.raw = raw;
  }
}
