/**
 * @steve/jobserver-client: take job tokens from a GNU make jobserver (fifo
 * or pipe style: make, cargo, a steve daemon) from Node, pass the pool on
 * to children, or serve a private pool.
 *
 * @example
 * import { Jobserver } from '@steve/jobserver-client';
 * const jobserver = Jobserver.fromEnv() ?? Jobserver.create(4);
 * await Promise.all(files.map((file) => jobserver.run(() => compile(file))));
 *
 * @module
 */
export {
  Jobserver,
  type AcquireOptions,
  type ChildOptions,
  type ChildStyle,
  type FromEnvOptions,
  type OpenOptions,
  type PoolAuth,
  type StdioEntry,
} from './jobserver.js';
export { Token } from './token.js';
export { JobserverClosedError, JobserverGoneError, CommandStartError } from './errors.js';
export {
  runWithToken,
  runWithTokenResult,
  dieOfSignal,
  WRAPPER_SIGNALS,
  terminalSignalsReachChild,
  chooseChildStyle,
  gnuMakeVersion,
  resolveCommand,
  type RunStyle,
  type RunWithTokenOptions,
  type RunWithTokenResult,
} from './run-with-token.js';
export { type WaitStrategy, FALLBACK_MAX_DELAY_MS } from './wait.js';
export { leasePrivateFifo, PrivateFifoError, type PrivateFifoLease } from './private-fifo.js';
