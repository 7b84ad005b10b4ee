/**
 * What both command lines share: usage errors that quote what was typed,
 * and turning the client library's errors into a message and an exit status.
 */

import { CommandStartError, JobserverGoneError } from '@steve/jobserver-client';
import { SteveError } from '@steve/protocol';
import { USAGE_EXIT_CODE, UsageError } from '@steve/cli';
import { ExitCode } from '../exit-codes.js';
import { NoPoolError } from '../pool.js';

/** A command line that cannot be right (exit 2, like every steve CLI); the message says why. */
export { UsageError };

/** The message and exit status for an error the wrappers expect, or null for a bug. */
export function describeFailure(error: unknown): { message: string; status: number } | null {
  if (error instanceof UsageError) return { message: error.message, status: USAGE_EXIT_CODE };
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
    const see = error instanceof UsageError ? ` (see ${name} --help)` : '';
    stderr(`${name}: ${failure.message}${see}\n`);
    return failure.status;
  }
}
