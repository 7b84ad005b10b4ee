/**
 * A job token: the right to run one job. GNU make's protocol has two kinds,
 * and the type says which one this is (as ninja's `Jobserver::Slot` does):
 * - the implicit slot: every jobserver client may run one job without
 *   reading anything (its parent took a token for it). Nothing is read
 *   for it and nothing is ever written back;
 * - an explicit token: one byte read from the pool. The POSIX jobserver
 *   rule (GNU make manual, "POSIX Jobserver Interaction") is that a client
 *   writes back the exact byte it read, so the byte is kept.
 */

// Set by Token's static block: lets the Jobserver mark a token it wrote back itself.
let markReleasedImpl: (token: Token) => void = () => undefined;

export class Token {
  /** True for the implicit slot (nothing was read; nothing is written back). */
  readonly implicit: boolean;
  /** The byte read from the pool, written back on release; `null` for the implicit slot. */
  readonly byte: number | null;
  #released = false;
  readonly #onRelease: (token: Token) => void;

  /** @internal Tokens come from `Jobserver.acquire()`/`tryAcquire()`, never from user code. */
  constructor(byte: number | null, onRelease: (token: Token) => void) {
    this.implicit = byte === null;
    this.byte = byte;
    this.#onRelease = onRelease;
  }

  /** True once released (by `release()`, by `Jobserver.close()` or at exit). */
  get released(): boolean {
    return this.#released;
  }

  /**
   * Give the token back: an explicit token's byte is written back to the
   * pool at once (synchronously); the implicit slot becomes free for the
   * next `acquire()` in this process. Idempotent: a second call does
   * nothing, so it is safe in `finally` blocks and exit paths alike.
   *
   * @example
   * const token = await jobserver.acquire();
   * try { await compile(file); } finally { token.release(); }
   *
   * Errors: throws the write error when an open, working pool refuses the
   * byte (ENOSPC from a steve daemon that does not think we hold it); the
   * token counts as released either way. After `close()`, or once the
   * server is gone (JobserverGoneError), release is quiet.
   */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#onRelease(this);
  }

  static {
    markReleasedImpl = (token) => {
      token.#released = true;
    };
  }
}

/** @internal Mark released without writing (the Jobserver wrote it back itself). Not exported by the package. */
export function markReleased(token: Token): void {
  markReleasedImpl(token);
}
