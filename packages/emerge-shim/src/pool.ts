/**
 * Finding the steve pool a wrapper should take its tokens from.
 *
 * Order (first that applies): an explicit `--jobserver`/`--device`; for
 * `steve-job` the jobserver it inherited (`MAKEFLAGS` and friends, read by
 * `@steve/jobserver-client`); `$STEVE_JOBSERVER`; the fronts the daemon
 * behind the control socket reports; then `/dev/steve` and
 * `/run/steve/jobserver` when they exist.
 */

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  DEFAULT_DEVICE_PATH,
  DEFAULT_FUSE_JOBSERVER_PATH,
  JOBSERVER_ENV,
  chooseFront,
  InvalidArgumentError,
  type StatusResult,
  UnsupportedAuthError,
  parseJobserverAuth,
} from '@steve/protocol';
import type { PoolAuth } from '@steve/jobserver-client';
import { readStatus } from './control-status.js';

/**
 * The environment variable naming the pool for the wrappers (`fifo:PATH`
 * or a path), for machines where the daemon serves somewhere else.
 */
export { JOBSERVER_ENV } from '@steve/protocol';

/** A pool to use, how it was found, and its size when the daemon said. */
export interface FoundPool {
  readonly auth: PoolAuth;
  /** How it was found, for messages: `--jobserver`, `$STEVE_JOBSERVER`, `the daemon at …`, `/dev/steve`. */
  readonly from: string;
  /** The daemon's `jobs` when the daemon behind the control socket serves this pool, else null. */
  readonly jobs: number | null;
  /** The control socket's status, when it answered (whether or not it serves this pool). */
  readonly status: StatusResult | null;
  /** Why the control socket gave no status (null when it did). */
  readonly controlProblem: string | null;
}

/** No pool anywhere: the message lists what was tried and how to start one. */
export class NoPoolError extends Error {
  readonly code = 'ERR_STEVE_NO_POOL';
  readonly tried: readonly string[];
  constructor(tried: readonly string[], hint: string) {
    super(`no jobserver found (${tried.join('; ')}): ${hint}`);
    this.name = 'NoPoolError';
    this.tried = tried;
  }
}

export const START_HINT =
  'start the daemon (as root: `steve-daemon -j$(nproc)` when installed, or `npx steve-daemon -j$(nproc)` in a clone; it serves /dev/steve, or /run/steve/jobserver without CUSE) or name a pool with --jobserver fifo:PATH';

/**
 * A pool named on the command line or in `$STEVE_JOBSERVER`: `fifo:PATH`,
 * `R,W` (inherited descriptors), or a plain path (taken as `fifo:PATH`).
 *
 * @example
 * parsePoolSpec('/dev/steve', '/')          // { kind: 'fifo', path: '/dev/steve' }
 * parsePoolSpec('fifo:run/jobserver', '/x') // { kind: 'fifo', path: '/x/run/jobserver' }
 *
 * Errors: UnsupportedAuthError for a disabled or unusable auth;
 * InvalidArgumentError for an empty value.
 */
export function parsePoolSpec(spec: string, cwd: string): PoolAuth {
  if (spec === '') throw new InvalidArgumentError('the jobserver is empty');
  const auth =
    spec.startsWith('fifo:') || /^-?\d+,-?\d+$/.test(spec)
      ? parseJobserverAuth(spec, cwd)
      : { kind: 'fifo' as const, path: resolve(cwd, spec) };
  if (auth.kind === 'disabled') throw new UnsupportedAuthError(spec, 'the jobserver is disabled');
  if (auth.kind === 'unsupported') throw new UnsupportedAuthError(spec, auth.reason);
  return auth;
}

export interface FindPoolOptions {
  /** `--jobserver`/`--device`, as typed, with the option's name for messages. */
  readonly explicit?: { readonly spec: string; readonly option: string };
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
  /** The control socket to ask. */
  readonly controlPath: string;
  /** Ask the control socket even when the pool is named (to learn its size). */
  readonly wantJobs?: boolean;
  /** The command that will use the pool (ninja <= 1.13 wants the daemon's real fifo). */
  readonly command?: string;
  /** Where to look when the daemon does not answer (default: /dev/steve, /run/steve/jobserver). */
  readonly defaultPaths?: readonly string[];
}

/**
 * Find the pool: explicit, `$STEVE_JOBSERVER`, the control socket's fronts,
 * the default paths. (`steve-job` looks at its inherited jobserver before
 * calling this.)
 *
 * Errors: NoPoolError when nothing is found; parsePoolSpec's errors for a
 * bad explicit or `$STEVE_JOBSERVER` value.
 */
export async function findPool(options: FindPoolOptions): Promise<FoundPool> {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  let named: { auth: PoolAuth; from: string } | null = null;
  if (options.explicit !== undefined) {
    named = { auth: parsePoolSpec(options.explicit.spec, cwd), from: options.explicit.option };
  } else if (env[JOBSERVER_ENV] !== undefined && env[JOBSERVER_ENV] !== '') {
    named = { auth: parsePoolSpec(env[JOBSERVER_ENV], cwd), from: `$${JOBSERVER_ENV}` };
  }
  const answer =
    named === null || options.wantJobs === true ? await readStatus(options.controlPath) : null;
  const status = answer !== null && 'status' in answer ? answer.status : null;
  const controlProblem = answer !== null && 'problem' in answer ? answer.problem : null;
  const servedByDaemon = (path: string): boolean =>
    status?.fronts.some((front) => front.path === path) ?? false;

  if (named !== null) {
    const jobs =
      named.auth.kind === 'fifo' && servedByDaemon(named.auth.path)
        ? (status?.settings.jobs ?? null)
        : null;
    return { ...named, jobs, status, controlProblem };
  }
  const front = status === null ? undefined : chooseFront(status.fronts, options.command);
  if (status !== null && front !== undefined) {
    return {
      auth: { kind: 'fifo', path: front.path },
      from: `the daemon at ${options.controlPath}`,
      jobs: status.settings.jobs,
      status,
      controlProblem,
    };
  }
  const defaults = options.defaultPaths ?? [DEFAULT_DEVICE_PATH, DEFAULT_FUSE_JOBSERVER_PATH];
  for (const path of defaults) {
    if (existsSync(path)) {
      return { auth: { kind: 'fifo', path }, from: path, jobs: null, status, controlProblem };
    }
  }
  throw new NoPoolError(
    [
      `no $${JOBSERVER_ENV}`,
      controlProblem ?? `the daemon at ${options.controlPath} serves no pool`,
      ...defaults.map((path) => `no ${path}`),
    ],
    START_HINT,
  );
}
