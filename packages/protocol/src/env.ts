/**
 * Finding the jobserver in a process environment, the way jobserver-rs
 * does: `CARGO_MAKEFLAGS`, then `MAKEFLAGS`, then `MFLAGS`; the first one
 * that is set decides.
 */

import { MAKEFLAGS_ENV_VARS, type MakeflagsEnvVar } from './constants.js';
import { type MakeFlags, parseMakeflags } from './makeflags.js';

export interface MakeflagsFromEnv {
  /** The variable the flags came from. */
  readonly variable: MakeflagsEnvVar;
  /** Its raw value. */
  readonly value: string;
  readonly flags: MakeFlags;
}

/**
 * Read the first of CARGO_MAKEFLAGS, MAKEFLAGS, MFLAGS that is set.
 *
 * @example
 * const found = makeflagsFromEnv(process.env, process.cwd());
 * if (found?.flags.jobserverAuth?.kind === 'fifo') console.log(found.variable, found.flags.jobserverAuth.path);
 *
 * Errors: none for any environment; returns `null` when no variable is set.
 * Throws InvalidArgumentError when `cwd` is relative.
 */
export function makeflagsFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  cwd: string,
): MakeflagsFromEnv | null {
  for (const variable of MAKEFLAGS_ENV_VARS) {
    const value = env[variable];
    if (value !== undefined) return { variable, value, flags: parseMakeflags(value, cwd) };
  }
  return null;
}
