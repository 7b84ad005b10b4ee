/**
 * MAKEFLAGS, read and written exactly as GNU make does it.
 *
 * Reading follows make's `decode_env_switches()` + `decode_switches()`
 * (main.c, make 4.3/4.4):
 * - the value is variable-expanded first, so `$$` stands for one `$`
 *   (make's `quote_for_env()` doubles every `$` it writes);
 * - leading whitespace is skipped, then words split on blanks (space, tab);
 *   a backslash makes the next character literal;
 * - the first word holds single-letter flags without a dash (`ks`) unless it
 *   starts with `-` or is a `VAR=value` definition;
 * - the words are then read like a command line with getopt_long: `-j` and
 *   `-l` take an optional argument (attached, or the next word when that word
 *   is a number), `--` ends the options and the command-line variables
 *   (`VAR=value`) follow;
 * - `--jobserver-auth=` and the legacy `--jobserver-fds=` set the same thing,
 *   and the last one wins.
 *
 * What make 4.3 actually writes, for reference (checked against Debian's
 * make in test/make-4.3-peer.test.ts):
 *   `ks -j3 --jobserver-auth=3,4 --no-print-directory -- BAZ=a\ b FOO=bar`
 */

import { posix } from 'node:path';
import { type JobserverAuth, formatJobserverAuth, parseJobserverAuth } from './auth.js';
import { InvalidArgumentError } from './errors.js';

export interface MakeFlags {
  /** Single-letter flags without arguments, first-seen order, no duplicates (`['k', 's']`). */
  readonly letters: readonly string[];
  /** `-jN` / `--jobs=N`; `'unlimited'` for a bare `-j`; `null` when absent. */
  readonly jobs: number | 'unlimited' | null;
  /** `-lN` / `--load-average=N`; `'none'` for a bare `-l` (no limit); `null` when absent. */
  readonly loadAverage: number | 'none' | null;
  /** The last `--jobserver-auth=` / `--jobserver-fds=`, or `null`. */
  readonly jobserverAuth: JobserverAuth | null;
  /** Every other option, each as the words that spell it (`['-C', 'dir']`), in order. */
  readonly otherOptions: readonly (readonly string[])[];
  /** Command-line variable definitions (`FOO=bar`), unescaped, in order. */
  readonly variables: readonly string[];
  /** Things make itself would reject (`-j0`, `-jfoo`), each said in one line. */
  readonly warnings: readonly string[];
}

/** The empty MAKEFLAGS (what `parseMakeflags('')` returns). */
export const EMPTY_MAKEFLAGS: MakeFlags = Object.freeze({
  letters: [],
  jobs: null,
  loadAverage: null,
  jobserverAuth: null,
  otherOptions: [],
  variables: [],
  warnings: [],
});

/** True when make would only print recipes (`-n`, `--just-print`, `--dry-run`, `--recon`). */
export function isDryRun(flags: MakeFlags): boolean {
  return flags.letters.includes('n');
}

// Short options of GNU make 4.3/4.4 that take a required argument.
const SHORT_WITH_ARGUMENT = new Set(['C', 'E', 'f', 'I', 'o', 'W']);
// Long options that take a required argument (the next word when there is no `=`).
const LONG_WITH_ARGUMENT = new Set([
  'directory',
  'eval',
  'file',
  'makefile',
  'include-dir',
  'old-file',
  'assume-old',
  'what-if',
  'new-file',
  'assume-new',
  'jobserver-style',
  'sync-mutex',
]);
// Long spellings of single-letter flags: make treats them as the letter.
const LONG_LETTER_ALIASES: ReadonlyMap<string, string> = new Map([
  ['always-make', 'B'],
  ['environment-overrides', 'e'],
  ['help', 'h'],
  ['ignore-errors', 'i'],
  ['keep-going', 'k'],
  ['check-symlink-times', 'L'],
  ['just-print', 'n'],
  ['dry-run', 'n'],
  ['recon', 'n'],
  ['print-data-base', 'p'],
  ['question', 'q'],
  ['no-builtin-rules', 'r'],
  ['no-builtin-variables', 'R'],
  ['silent', 's'],
  ['quiet', 's'],
  ['no-keep-going', 'S'],
  ['stop', 'S'],
  ['touch', 't'],
  ['version', 'v'],
  ['print-directory', 'w'],
]);

const BLANK = /[ \t]/;
// make's try_variable_definition(): NAME then one of = := ::= :::= += ?= != (NAME has no blanks).
const VARIABLE_DEFINITION = /^[^\s=:+?!]+[ \t]*(?:=|:=|::=|:::=|\+=|\?=|!=)/;

/** True for a word make reads as a command-line variable definition. */
export function isVariableDefinition(word: string): boolean {
  return VARIABLE_DEFINITION.test(word);
}

/**
 * Split a MAKEFLAGS value into words the way make does (after `$$` -> `$`).
 * Empty words (from trailing blanks) are dropped: make ignores them too.
 */
export function splitMakeflagsWords(value: string): string[] {
  const expanded = value.replace(/\$\$/g, '$');
  const words: string[] = [];
  let i = 0;
  while (i < expanded.length && /\s/.test(expanded[i] ?? '')) i++;
  let word = '';
  while (i < expanded.length) {
    const ch = expanded[i] as string;
    if (ch === '\\' && i + 1 < expanded.length) {
      word += expanded[i + 1];
      i += 2;
      continue;
    }
    if (BLANK.test(ch)) {
      words.push(word);
      word = '';
      while (i < expanded.length && BLANK.test(expanded[i] ?? '')) i++;
      continue;
    }
    word += ch;
    i++;
  }
  words.push(word);
  return words.filter((w) => w !== '');
}

/** Escape one word for MAKEFLAGS as make's quote_for_env() does. */
export function quoteMakeflagsWord(word: string): string {
  return word.replace(/\$/g, '$$$$').replace(/([ \t\\])/g, '\\$1');
}

const DIGITS = /^\d+$/;
const FLAG_LETTER = /^[A-Za-z0-9]$/;
const FLOAT_START = /^[\d.]/;

/**
 * Parse a MAKEFLAGS (or MFLAGS, CARGO_MAKEFLAGS) value.
 *
 * @param value the variable's text
 * @param cwd absolute directory a relative `fifo:` path is resolved against
 *
 * @example
 * const flags = parseMakeflags('ks -j3 --jobserver-auth=3,4 -- FOO=bar', '/src');
 * flags.letters        // ['k', 's']
 * flags.jobs           // 3
 * flags.jobserverAuth  // { kind: 'pipe', readFd: 3, writeFd: 4 }
 * flags.variables      // ['FOO=bar']
 *
 * Errors: never throws on any value (bad parts land in `warnings` or as an
 * `unsupported` auth); throws InvalidArgumentError when `cwd` is relative.
 */
export function parseMakeflags(value: string, cwd: string): MakeFlags {
  const words = splitMakeflagsWords(value);
  const first = words[0];
  if (first !== undefined && !first.startsWith('-') && !first.includes('=')) {
    words[0] = `-${first}`;
  }
  return parseMakeWords(words, cwd);
}

/**
 * Parse GNU make's own command line (`make -C sub -j4 all FOO=1`) with the
 * same rules as MAKEFLAGS, minus MAKEFLAGS' first-word letters: targets are
 * ignored, `VAR=value` words are variables.
 *
 * @example
 * parseMakeCommandLine(['-kj4', 'all'], '/src').jobs // 4
 *
 * Errors: as parseMakeflags.
 */
export function parseMakeCommandLine(args: readonly string[], cwd: string): MakeFlags {
  return parseMakeWords([...args], cwd);
}

/** getopt_long over make's words (MAKEFLAGS after splitting, or argv). */
function parseMakeWords(words: string[], cwd: string): MakeFlags {
  if (!posix.isAbsolute(cwd)) {
    throw new InvalidArgumentError(`cwd must be an absolute path, got '${cwd}'`);
  }

  const letters: string[] = [];
  let jobs: MakeFlags['jobs'] = null;
  let loadAverage: MakeFlags['loadAverage'] = null;
  let lastAuth: string | null = null;
  const otherOptions: string[][] = [];
  const variables: string[] = [];
  const warnings: string[] = [];

  const addLetter = (letter: string): void => {
    if (!letters.includes(letter)) letters.push(letter);
  };
  const readJobs = (text: string, spelled: string): void => {
    if (DIGITS.test(text) && Number(text) > 0) jobs = Number(text);
    else warnings.push(`'${spelled}': the -j option requires a positive integer argument`);
  };
  const readLoad = (text: string, spelled: string): void => {
    const load = Number(text);
    if (text !== '' && Number.isFinite(load) && load >= 0) loadAverage = load;
    else warnings.push(`'${spelled}': the -l option requires a number`);
  };

  let i = 0;
  const nextWordIf = (test: (w: string) => boolean): string | undefined => {
    const next = words[i];
    if (next !== undefined && test(next)) {
      i++;
      return next;
    }
    return undefined;
  };

  while (i < words.length) {
    const word = words[i++] as string;
    if (word === '--') {
      for (const rest of words.slice(i)) if (isVariableDefinition(rest)) variables.push(rest);
      break;
    }
    if (word.startsWith('--')) {
      const eq = word.indexOf('=');
      const name = eq < 0 ? word.slice(2) : word.slice(2, eq);
      const inline = eq < 0 ? undefined : word.slice(eq + 1);
      if (name === 'jobs') {
        const arg = inline ?? nextWordIf((w) => DIGITS.test(w));
        if (arg === undefined) jobs = 'unlimited';
        else readJobs(arg, word);
      } else if (name === 'load-average' || name === 'max-load') {
        const arg = inline ?? nextWordIf((w) => FLOAT_START.test(w));
        if (arg === undefined) loadAverage = 'none';
        else readLoad(arg, word);
      } else if (name === 'jobserver-auth' || name === 'jobserver-fds') {
        const arg = inline ?? nextWordIf(() => true);
        if (arg === undefined) warnings.push(`'${word}' needs a value`);
        else lastAuth = arg;
      } else if (LONG_LETTER_ALIASES.has(name) && inline === undefined) {
        addLetter(LONG_LETTER_ALIASES.get(name) as string);
      } else if (LONG_WITH_ARGUMENT.has(name) && inline === undefined) {
        const arg = nextWordIf(() => true);
        otherOptions.push(arg === undefined ? [word] : [word, arg]);
      } else {
        otherOptions.push([word]);
      }
      continue;
    }
    if (word.startsWith('-') && word.length > 1) {
      for (let j = 1; j < word.length; j++) {
        const letter = word[j] as string;
        const rest = word.slice(j + 1);
        if (letter === 'j') {
          const arg = rest !== '' ? rest : nextWordIf((w) => DIGITS.test(w));
          if (arg === undefined) jobs = 'unlimited';
          else readJobs(arg, `-j${arg}`);
          break;
        }
        if (letter === 'l') {
          const arg = rest !== '' ? rest : nextWordIf((w) => FLOAT_START.test(w));
          if (arg === undefined) loadAverage = 'none';
          else readLoad(arg, `-l${arg}`);
          break;
        }
        if (letter === 'O') {
          otherOptions.push([`-O${rest}`]);
          break;
        }
        if (SHORT_WITH_ARGUMENT.has(letter)) {
          if (rest !== '') otherOptions.push([`-${letter}${rest}`]);
          else {
            const arg = nextWordIf(() => true);
            otherOptions.push(arg === undefined ? [`-${letter}`] : [`-${letter}`, arg]);
          }
          break;
        }
        if (FLAG_LETTER.test(letter)) addLetter(letter);
        else warnings.push(`'${letter}': not a make flag letter`);
      }
      continue;
    }
    // A non-option word: a variable definition, or a target (ignored in MAKEFLAGS), or '-'.
    if (isVariableDefinition(word)) variables.push(word);
  }

  return {
    letters,
    jobs,
    loadAverage,
    jobserverAuth: lastAuth === null ? null : parseJobserverAuth(lastAuth, cwd),
    otherOptions,
    variables,
    warnings,
  };
}

/**
 * Write MAKEFLAGS for these flags, in make's own shape: the letters first
 * without a dash, then options, then `-- VAR=value…`. Every word is quoted
 * as make's quote_for_env() does, so `parseMakeflags` reads back the same.
 *
 * @example
 * formatMakeflags({ ...EMPTY_MAKEFLAGS, letters: ['k'], jobs: 4 }) // 'k -j4'
 */
export function formatMakeflags(flags: MakeFlags): string {
  const words: string[] = [];
  if (flags.jobs !== null) words.push(flags.jobs === 'unlimited' ? '-j' : `-j${flags.jobs}`);
  if (flags.loadAverage !== null) {
    words.push(flags.loadAverage === 'none' ? '-l' : `-l${flags.loadAverage}`);
  }
  if (flags.jobserverAuth !== null) words.push(formatJobserverAuth(flags.jobserverAuth));
  for (const option of flags.otherOptions) words.push(...option);
  const parts = words.map(quoteMakeflagsWord);
  if (flags.variables.length > 0) {
    parts.push('--', ...flags.variables.map(quoteMakeflagsWord));
  }
  const letters = flags.letters.join('');
  // make writes a leading blank when there are no letters: " -j3 --jobserver-auth=3,4".
  return parts.length === 0 ? letters : `${letters} ${parts.join(' ')}`;
}

/**
 * The MAKEFLAGS a child should see to use `auth` as its jobserver: the auth
 * set (or removed when `null`), every `-j` removed (a `-jN` in a sub-make's
 * MAKEFLAGS resets make's jobserver mode: "warning: -jN forced in submake"),
 * every other flag and the `-- VAR=value` tail kept.
 *
 * @example
 * makeflagsForChild(parseMakeflags('k -j8 -- FOO=bar', '/'), { kind: 'fifo', path: '/dev/steve' })
 * // 'k --jobserver-auth=fifo:/dev/steve -- FOO=bar'
 */
export function makeflagsForChild(flags: MakeFlags, auth: JobserverAuth | null): string {
  return formatMakeflags({ ...flags, jobs: null, jobserverAuth: auth });
}
