/**
 * What both command lines share: reading `--name VALUE` / `--name=VALUE`,
 * turning the client library's errors into a message and an exit status.
 */

import { CommandStartError, JobserverGoneError } from '@steve/jobserver-client';
import { SteveError } from '@steve/protocol';
import { ExitCode } from '../exit-codes.js';
import { NoPoolError } from '../pool.js';

/** A command line that cannot be right; the message says why. */
export class UsageError extends Error {}

/**
 * If `args[i]` is `--name` or `--name=VALUE`, its value and how many
 * words it used; else null.
 *
 * Errors: UsageError when `--name` is last.
 */
export function optionValue(
  args: readonly string[],
  i: number,
  name: string,
): { value: string; used: number } | null {
  const arg = args[i] as string;
  if (arg.startsWith(`${name}=`)) return { value: arg.slice(name.length + 1), used: 1 };
  if (arg !== name) return null;
  const value = args[i + 1];
  if (value === undefined) throw new UsageError(`${name} needs a value`);
  return { value, used: 2 };
}

/** The message and exit status for an error the wrappers expect, or null for a bug. */
export function describeFailure(error: unknown): { message: string; status: number } | null {
  if (error instanceof UsageError)
    return { message: error.message, status: ExitCode.wrapperFailed };
  if (error instanceof CommandStartError) {
    const code = (error.cause as NodeJS.ErrnoException | undefined)?.code;
    return {
      message: error.message,
      status: code === 'ENOENT' ? ExitCode.notFound : ExitCode.cannotExecute,
    };
  }
  if (error instanceof JobserverGoneError) {
    return {
      message: `the jobserver stopped answering: ${error.message}`,
      status: ExitCode.wrapperFailed,
    };
  }
  if (error instanceof NoPoolError || error instanceof SteveError) {
    return { message: error.message, status: ExitCode.wrapperFailed };
  }
  return null;
}

/** Run a command line's main function; known failures become a message and a status. */
export async function runMain(
  name: string,
  main: () => Promise<number>,
  stderr: (text: string) => void = (text) => process.stderr.write(text),
): Promise<number> {
  try {
    return await main();
  } catch (error) {
    const failure = describeFailure(error);
    if (failure === null) throw error;
    stderr(`${name}: ${failure.message}\n`);
    return failure.status;
  }
}
