/**
 * The optional native helper (`build/Release/jobserver_native.node`, built by
 * `native/native.mjs`, or prebuilt in a packed tarball): a `uv_poll` watcher and `mkfifo`. When it is absent
 * (no compiler at build time) the library waits with a pure-JS backoff; the
 * choice is logged under `NODE_DEBUG=jobserver`.
 *
 * @module
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { debuglog } from 'node:util';

/** Logs under `NODE_DEBUG=jobserver`. */
export const debug = debuglog('jobserver');

export interface NativeWatcher {
  /** Start reporting readability (idempotent). Keeps the event loop alive. */
  start(): void;
  /** Stop reporting (idempotent). */
  stop(): void;
  /** Stop and free the handle (idempotent). Does not close the descriptor. */
  close(): void;
}

export interface NativeHelper {
  Watcher: new (fd: number, onReadable: (status: number) => void) => NativeWatcher;
  mkfifo(path: string, mode: number): void;
}

let loaded: NativeHelper | null | undefined;

/**
 * The native helper, or `null` when it is not built or is disabled with
 * `STEVE_JOBSERVER_NATIVE=0`. Loaded once.
 */
export function nativeHelper(): NativeHelper | null {
  if (loaded !== undefined) return loaded;
  if (process.env.STEVE_JOBSERVER_NATIVE === '0') {
    debug('native helper disabled by STEVE_JOBSERVER_NATIVE=0: using the pure-JS wait');
    loaded = null;
    return loaded;
  }
  try {
    // build/Release in a checkout or after a build from source, else the
    // tarball's prebuilds/linux-x64/jobserver_native.napi.node.
    const require = createRequire(import.meta.url);
    const load = require('node-gyp-build') as (dir: string) => unknown;
    loaded = load(fileURLToPath(new URL('..', import.meta.url))) as NativeHelper;
    debug('native uv_poll helper loaded');
  } catch (error) {
    debug(
      'native helper not available (%s): using the pure-JS wait (non-blocking reads with bounded backoff)',
      (error as Error).message,
    );
    loaded = null;
  }
  return loaded;
}
