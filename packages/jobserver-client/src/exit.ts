/**
 * Returning tokens when the process ends. A token held by a process that
 * dies is lost for good on a kernel pipe or fifo (the steve daemon reclaims
 * it, make does not), so every open Jobserver is cleaned up:
 * - on `process.on('exit')` (normal exit, `process.exit()`), synchronously;
 * - on SIGINT, SIGTERM and SIGHUP when nobody else listens for the signal:
 *   tokens are written back synchronously, our listeners are removed and
 *   the signal is raised again, so the default action (death by that
 *   signal, exit status 128+n for the parent) proceeds as if we had never
 *   listened. When the application has its own listener it owns the
 *   shutdown; the exit hook still returns the tokens when it exits.
 */

import { debug } from './native.js';

/** What the registry needs from a Jobserver. */
export interface ExitCleanup {
  /** Return every token and close descriptors, synchronously, never throwing. */
  cleanupAtExit(): void;
}

const FATAL_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
type FatalSignal = (typeof FATAL_SIGNALS)[number];

const open = new Set<ExitCleanup>();
let installed = false;

function cleanupAll(): void {
  for (const item of [...open]) {
    open.delete(item);
    item.cleanupAtExit();
  }
}

function onExit(): void {
  cleanupAll();
}

/** The emitter signal-exit v4 keeps on `globalThis`, and v3 on `process`. */
const SIGNAL_EXIT_V4 = Symbol.for('signal-exit emitter');
interface SignalExitEmitter {
  count?: unknown;
}

/**
 * How many of a signal's listeners belong to signal-exit: one per loaded
 * signal-exit instance of each major version, the `count` its shared emitter
 * keeps (the number its own listeners compare against).
 */
function signalExitListenerCount(): number {
  const emitters = [
    (globalThis as Record<symbol, unknown>)[SIGNAL_EXIT_V4],
    (process as unknown as { __signal_exit_emitter__?: unknown }).__signal_exit_emitter__,
  ];
  let count = 0;
  for (const emitter of emitters) {
    if (typeof emitter !== 'object' || emitter === null) continue;
    const value = (emitter as SignalExitEmitter).count;
    if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) count += value;
  }
  return count;
}

function onSignal(signal: FatalSignal): void {
  // Other listeners (the application's, runWithToken's forwarding) decide
  // what this signal means; we only act when ours is the only one, not
  // counting signal-exit's (which only act when they are the only ones).
  const owners = process.listenerCount(signal) - 1 - signalExitListenerCount();
  if (owners > 0) return;
  debug('%s with no other listener: returning tokens, then raising it again', signal);
  cleanupAll();
  uninstall();
  process.kill(process.pid, signal);
}

const signalListeners = new Map<FatalSignal, () => void>(
  FATAL_SIGNALS.map((signal) => [signal, () => onSignal(signal)]),
);

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', onExit);
  for (const [signal, listener] of signalListeners) process.on(signal, listener);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.removeListener('exit', onExit);
  for (const [signal, listener] of signalListeners) process.removeListener(signal, listener);
}

/** Track an open Jobserver until {@link untrack}. */
export function track(item: ExitCleanup): void {
  open.add(item);
  install();
}

/** Stop tracking; the hooks go away with the last open Jobserver. */
export function untrack(item: ExitCleanup): void {
  open.delete(item);
  if (open.size === 0) uninstall();
}
