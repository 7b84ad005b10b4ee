/**
 * Waiting for the pool to become readable, with the event loop and never a
 * blocking read on the threadpool (that cannot be cancelled and makes
 * `process.exit` hang):
 * - `native`: a `uv_poll` watcher on the private descriptor (epoll). The
 *   steve daemon sees this as a poll and reserves a token for us.
 * - `fallback`: no native helper; try the non-blocking read again after a
 *   delay that doubles from 1 ms up to {@link FALLBACK_MAX_DELAY_MS}.
 *   Chosen automatically; `NODE_DEBUG=jobserver` says which one is used.
 */

import { type NativeWatcher, debug, nativeHelper } from './native.js';

/** Longest pause between two tries of the pure-JS fallback. */
export const FALLBACK_MAX_DELAY_MS = 20;
const FALLBACK_FIRST_DELAY_MS = 1;

export type WaitStrategy = 'native' | 'fallback';

/** Calls `onReadable` while started, until stopped. */
export interface Readiness {
  readonly strategy: WaitStrategy;
  start(): void;
  stop(): void;
  close(): void;
}

/**
 * The native watcher is created at the first wait, not when the pool is
 * opened: libuv's uv_poll_init probes the descriptor with epoll_ctl, which a
 * FUSE/CUSE jobserver sees as a poll, and steve answers a poll by reserving
 * a token for the poller (for the reservation TTL) — wasted if nobody waits.
 */
class NativeReadiness implements Readiness {
  readonly #create: () => NativeWatcher;
  readonly #onReadable: () => void;
  #watcher: NativeWatcher | null = null;
  #fallback: BackoffReadiness | null = null;

  constructor(create: () => NativeWatcher, onReadable: () => void) {
    this.#create = create;
    this.#onReadable = onReadable;
  }
  get strategy(): WaitStrategy {
    return this.#fallback === null ? 'native' : 'fallback';
  }
  start(): void {
    if (this.#fallback !== null) {
      this.#fallback.start();
      return;
    }
    if (this.#watcher === null) {
      try {
        this.#watcher = this.#create();
      } catch (error) {
        debug(
          'the descriptor cannot be polled (%s): using the pure-JS wait',
          (error as Error).message,
        );
        this.#fallback = new BackoffReadiness(this.#onReadable);
        this.#fallback.start();
        return;
      }
    }
    this.#watcher.start();
  }
  stop(): void {
    this.#watcher?.stop();
    this.#fallback?.stop();
  }
  close(): void {
    this.#watcher?.close();
    this.#fallback?.close();
  }
}

class BackoffReadiness implements Readiness {
  readonly strategy = 'fallback';
  readonly #onReadable: () => void;
  #timer: NodeJS.Timeout | null = null;
  #delayMs = FALLBACK_FIRST_DELAY_MS;

  constructor(onReadable: () => void) {
    this.#onReadable = onReadable;
  }
  start(): void {
    if (this.#timer !== null) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#delayMs = Math.min(this.#delayMs * 2, FALLBACK_MAX_DELAY_MS);
      this.#onReadable(); // calls start() again while someone still waits
    }, this.#delayMs);
  }
  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#delayMs = FALLBACK_FIRST_DELAY_MS;
  }
  close(): void {
    this.stop();
  }
}

/**
 * A readiness source for `fd`. `prefer: 'fallback'` forces the pure-JS
 * wait (tests, benchmarks); otherwise native when the helper is built and
 * the descriptor can be polled, else the fallback.
 */
export function watchReadable(
  fd: number,
  onReadable: () => void,
  prefer: WaitStrategy | 'auto' = 'auto',
): Readiness {
  const native = prefer === 'fallback' ? null : nativeHelper();
  if (native !== null) {
    debug('fd %d: waiting with the native uv_poll helper (created at the first wait)', fd);
    return new NativeReadiness(
      () =>
        new native.Watcher(fd, (status) => {
          if (status < 0) debug('uv_poll reported status %d on fd %d; reading anyway', status, fd);
          onReadable();
        }),
      onReadable,
    );
  }
  debug('fd %d: waiting with the pure-JS fallback (bounded backoff)', fd);
  // The fallback's callback: started again by the owner while waiters remain.
  const readiness: BackoffReadiness = new BackoffReadiness(onReadable);
  return readiness;
}
