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

/**
 * Run a yargs parse of `argv`; yargs' "Unknown argument(s): frobnicate"
 * becomes "unknown option '--frobnicate'" as typed (`-x` of a `-vx`), with
 * `hint` saying where a command's own options go, and "Not enough
 * arguments following: tokens" becomes "--tokens needs a value", yargs'
 * conflicts "give one of --jobserver and --device".
 */
export function explainUnknownOptions<T>(argv: readonly string[], hint: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    const missing = /^Not enough arguments following: (.*)$/.exec(error.message);
    if (missing) throw new UsageError(`${typedOption(argv, missing[1] as string)} needs a value`);
    const both = /^Arguments (\S+) and (\S+) are mutually exclusive$/.exec(error.message);
    if (both) {
      const [a, b] = [both[1] as string, both[2] as string].map((name) => typedOption(argv, name));
      throw new UsageError(`give one of ${a} and ${b}`);
    }
    const unknown = /^Unknown arguments?: (.*)$/.exec(error.message);
    if (!unknown) throw error;
    const typed = (unknown[1] as string).split(', ').map((name) => typedOption(argv, name));
    const list = typed.map((word) => `'${word}'`).join(', ');
    throw new UsageError(`unknown option${typed.length === 1 ? '' : 's'} ${list} (${hint})`);
  }
}

/** The word of `argv` yargs means by the unknown option `name`. */
function typedOption(argv: readonly string[], name: string): string {
  for (const word of argv) {
    if (word === '--') break;
    const option = word.split('=')[0] as string;
    if (option === name || option === `--${name}` || option === `-${name}`) return option;
  }
  return name.startsWith('-') ? name : name.length === 1 ? `-${name}` : `--${name}`;
}

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
