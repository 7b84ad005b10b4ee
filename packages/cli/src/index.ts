/**
 * @steve/cli: one command-line convention for steve-daemon, stevie,
 * steve-job, emerge-shim and steve-pytest.
 *
 * - `--help` and `--version` everywhere;
 * - unknown options and mistyped subcommands are a one-line error and exit 2;
 * - number options quote what the user typed (`-j abc`, not "got NaN").
 *
 *   const argv = command('steve-job', import.meta.url, args, { 'halt-at-non-option': true })
 *     .option('tokens', { ...count('--tokens', { min: 1 }), default: 1 })
 *     .parseSync();
 */

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import yargs, { type Argv } from 'yargs';

/** Exit status of a command line that cannot be right (GNU convention: 2). */
export const USAGE_EXIT_CODE = 2;

/** The user typed something that cannot be right; the message says what to type instead. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** `version` of the package.json nearest above `moduleUrl` (a CLI's `import.meta.url`). */
export function packageVersion(moduleUrl: string): string {
  let dir = dirname(fileURLToPath(moduleUrl));
  for (;;) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      const version = (JSON.parse(readFileSync(candidate, 'utf8')) as { version?: unknown })
        .version;
      if (typeof version === 'string') return version;
    }
    const parent = dirname(dir);
    if (parent === dir) return 'unknown';
    dir = parent;
  }
}

/**
 * yargs for one CLI with the shared convention: strict options and commands,
 * `--help`/`-h`, `--version` from the CLI's package, every value kept as the
 * user typed it (numbers go through `count`/`decimal`), and parse failures
 * thrown as UsageError instead of printing the whole help.
 */
export function command(
  name: string,
  moduleUrl: string,
  argv: readonly string[],
  parser: Record<string, boolean> = {},
  usage: { readonly unknownOptionHint?: string } = {},
): Argv {
  return (
    yargs([...argv])
      .scriptName(name)
      // One call: yargs replaces, not merges, its parser configuration.
      .parserConfiguration({
        'parse-numbers': false,
        'parse-positional-numbers': false,
        ...parser,
      })
      .strict()
      .strictCommands()
      .help()
      .alias('help', 'h')
      .version(packageVersion(moduleUrl))
      .wrap(Math.min(100, process.stdout.columns || 100))
      .fail((message: string | undefined, error: Error | undefined) => {
        if (error instanceof UsageError) throw error;
        throw new UsageError(
          explainYargsMessage(
            argv,
            oneLine(message ?? error?.message ?? 'invalid command line'),
            usage.unknownOptionHint,
          ),
        );
      })
  );
}

function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, '; ');
}

/**
 * yargs' messages in the words of the command line as typed: "Unknown
 * argument(s): frobnicate" becomes "unknown option '--frobnicate'" (`-x` of
 * a `-vx`), with `hint` saying where a wrapped command's own options go;
 * "Not enough arguments following: tokens" becomes "--tokens needs a value";
 * "Arguments a and b are mutually exclusive" becomes "give one of --a and --b".
 */
export function explainYargsMessage(
  argv: readonly string[],
  message: string,
  hint?: string,
): string {
  const missing = /^Not enough arguments following: (.*)$/.exec(message);
  if (missing) return `${typedOption(argv, missing[1] as string)} needs a value`;
  const both = /^Arguments (\S+) and (\S+) are mutually exclusive$/.exec(message);
  if (both) {
    const [a, b] = [both[1] as string, both[2] as string].map((name) => typedOption(argv, name));
    return `give one of ${a} and ${b}`;
  }
  const unknown = /^Unknown arguments?: (.*)$/.exec(message);
  if (!unknown) return message;
  const typed = (unknown[1] as string).split(', ').map((name) => typedOption(argv, name));
  const list = typed.map((word) => `'${word}'`).join(', ');
  return `unknown option${typed.length === 1 ? '' : 's'} ${list}${hint === undefined ? '' : ` (${hint})`}`;
}

/** The word of `argv` yargs means by the option `name`. */
function typedOption(argv: readonly string[], name: string): string {
  for (const word of argv) {
    if (word === '--') break;
    const option = word.split('=')[0] as string;
    if (option === name || option === `--${name}` || option === `-${name}`) return option;
  }
  return name.startsWith('-') ? name : name.length === 1 ? `-${name}` : `--${name}`;
}

/** Print `NAME: message (NAME --help)` for a UsageError and exit 2; rethrow anything else. */
export function exitOnUsageError(name: string, error: unknown): never {
  if (error instanceof UsageError) {
    process.stderr.write(`${name}: ${error.message} (see ${name} --help)\n`);
    process.exit(USAGE_EXIT_CODE);
  }
  throw error;
}

interface Bounds {
  min?: number;
  max?: number;
}

function describeBounds({ min, max }: Bounds): string {
  if (min !== undefined && max !== undefined) return ` from ${min} to ${max}`;
  if (min !== undefined) return ` >= ${min}`;
  if (max !== undefined) return ` <= ${max}`;
  return '';
}

function checkBounds(
  flag: string,
  text: string,
  value: number,
  bounds: Bounds,
  kind: string,
): number {
  if (
    (bounds.min !== undefined && value < bounds.min) ||
    (bounds.max !== undefined && value > bounds.max)
  ) {
    throw new UsageError(`${flag} wants ${kind}${describeBounds(bounds)}, got '${text}'`);
  }
  return value;
}

/** The text of one option value; a repeated option takes its last value, as GNU tools do. */
function lastText(flag: string, value: unknown): string {
  const last = Array.isArray(value) ? (value as unknown[]).at(-1) : value;
  if (typeof last === 'string') return last;
  if (typeof last === 'number') return String(last);
  throw new UsageError(`${flag} needs a value`);
}

/** Parse a whole number the user typed for `flag`; the error quotes the text. */
export function parseCount(flag: string, text: string, bounds: Bounds = {}): number {
  if (!/^\s*\d+\s*$/.test(text)) {
    throw new UsageError(`${flag} wants a whole number${describeBounds(bounds)}, got '${text}'`);
  }
  return checkBounds(flag, text, Number(text), bounds, 'a whole number');
}

/** Parse a decimal number (load average, percent) the user typed for `flag`. */
export function parseDecimal(flag: string, text: string, bounds: Bounds = {}): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value)) {
    throw new UsageError(`${flag} wants a number${describeBounds(bounds)}, got '${text}'`);
  }
  return checkBounds(flag, text, value, bounds, 'a number');
}

/** yargs option fields for a whole-number option: `.option('jobs', { ...count('-j'), ... })`. */
export function count(flag: string, bounds: Bounds = {}) {
  return {
    type: 'string' as const,
    requiresArg: true,
    coerce: (value: unknown): number => parseCount(flag, lastText(flag, value), bounds),
  } as const;
}

/** yargs option fields for a decimal option. */
export function decimal(flag: string, bounds: Bounds = {}) {
  return {
    type: 'string' as const,
    requiresArg: true,
    coerce: (value: unknown): number => parseDecimal(flag, lastText(flag, value), bounds),
  } as const;
}
