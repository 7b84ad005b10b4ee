/**
 * `steve-job`: run one command as one job of the steve pool.
 *
 *   steve-job [--jobserver AUTH | --device PATH] [--tokens N] [--no-wait]
 *             [--style fifo|pipe|auto] [--fallback run] [--control PATH] [-v] -- CMD ARGS…
 *
 * It takes N real tokens (default 1), runs CMD with MAKEFLAGS pointing at
 * the pool (auth set, `-jN` removed, other flags kept), and returns them
 * when CMD ends. The token it holds is the implicit slot of CMD's tree:
 * make, cargo or ninja under it run their first job on it and take a
 * token for every further one. The running itself is `runWithToken` of
 * `@steve/jobserver-client`, the same code as `stevie CMD`.
 */

import { basename } from 'node:path';
import { Jobserver, type RunStyle, type Token, runWithToken } from '@steve/jobserver-client';
import { formatJobserverAuth } from '@steve/protocol';
import { controlSocketPath } from '../control-status.js';
import { ExitCode } from '../exit-codes.js';
import { NoPoolError, START_HINT, findPool, parsePoolSpec } from '../pool.js';
import { runWithoutToken } from '../plain-run.js';
import { UsageError, optionValue, runMain } from './common.js';

export const STEVE_JOB_USAGE = `usage: steve-job [OPTIONS] [--] CMD ARGS…
Run CMD holding job tokens of the steve pool; MAKEFLAGS points CMD's make,
cargo or ninja at the pool, so everything under CMD shares it.

  --jobserver AUTH    the pool: fifo:PATH, R,W (inherited descriptors) or a PATH
  --device PATH       the pool's device or file (same as --jobserver fifo:PATH)
  --tokens N          tokens to hold while CMD runs (default 1: CMD's own slot)
  --no-wait           exit ${ExitCode.noTokenFree} at once when the tokens are not free now
  --style STYLE       how CMD gets the pool: fifo (make >= 4.4, cargo, ninja), pipe
                      (an inherited descriptor, make < 4.4), auto (default: pipe for
                      GNU make older than 4.4)
  --fallback run      with no pool reachable, run CMD without a token (and say so)
  --control PATH      the daemon's control socket (default $STEVE_CONTROL, else
                      /run/steve/control.sock)
  -v, --verbose       say which pool and how many tokens
  -h, --help          this text

The pool, when not named: the jobserver in CARGO_MAKEFLAGS/MAKEFLAGS/MFLAGS,
else $STEVE_JOBSERVER, else the daemon's control socket, else /dev/steve,
else /run/steve/jobserver.

Exit status: CMD's (128+N when signal N killed it); ${ExitCode.noTokenFree} --no-wait found no
free token; ${ExitCode.wrapperFailed} steve-job failed (usage, no pool); ${ExitCode.cannotExecute} CMD cannot run; ${ExitCode.notFound} CMD not found.`;

export interface SteveJobOptions {
  /** `--jobserver`/`--device` as typed, with the option used. */
  readonly pool?: { readonly spec: string; readonly option: string };
  readonly tokens: number;
  readonly noWait: boolean;
  readonly style: RunStyle;
  readonly fallback: boolean;
  readonly control?: string;
  readonly verbose: boolean;
  readonly command: string;
  readonly args: readonly string[];
}

/**
 * Read steve-job's command line: options up to `--` or the first word
 * that is not one of them; the rest is the command.
 *
 * Errors: UsageError (unknown option, bad value, no command).
 */
export function parseSteveJobArgs(argv: readonly string[]): SteveJobOptions | 'help' {
  let pool: SteveJobOptions['pool'];
  let tokens = 1;
  let noWait = false;
  let style: RunStyle = 'auto';
  let fallback = false;
  let control: string | undefined;
  let verbose = false;
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i] as string;
    if (arg === '--') {
      i++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break;
    if (arg === '-h' || arg === '--help') return 'help';
    if (arg === '--no-wait') {
      noWait = true;
      i++;
      continue;
    }
    if (arg === '-v' || arg === '--verbose') {
      verbose = true;
      i++;
      continue;
    }
    const option =
      (['--jobserver', '--device', '--tokens', '--style', '--fallback', '--control'] as const)
        .map((name) => ({ name, found: optionValue(argv, i, name) }))
        .find((o) => o.found !== null) ?? null;
    if (option === null || option.found === null) {
      throw new UsageError(`unknown option '${arg}' (put the command after --)`);
    }
    const { value, used } = option.found;
    switch (option.name) {
      case '--jobserver':
      case '--device':
        if (pool !== undefined) throw new UsageError('give one of --jobserver and --device');
        pool = {
          spec: option.name === '--device' ? `fifo:${value}` : value,
          option: `${option.name} ${value}`,
        };
        break;
      case '--tokens':
        if (!/^\d+$/.test(value) || Number(value) < 1 || !Number.isSafeInteger(Number(value))) {
          throw new UsageError(`--tokens needs a positive integer, got '${value}'`);
        }
        tokens = Number(value);
        break;
      case '--style':
        if (value !== 'fifo' && value !== 'pipe' && value !== 'auto') {
          throw new UsageError(`--style is fifo, pipe or auto, got '${value}'`);
        }
        style = value;
        break;
      case '--fallback':
        if (value !== 'run') throw new UsageError(`--fallback takes 'run', got '${value}'`);
        fallback = true;
        break;
      case '--control':
        control = value;
        break;
    }
    i += used;
  }
  const [command, ...args] = argv.slice(i);
  if (command === undefined) throw new UsageError(`no command given\n${STEVE_JOB_USAGE}`);
  return { pool, tokens, noWait, style, fallback, control, verbose, command, args };
}

/**
 * The `-jN` a GNU make command line carries, if any. make 4.3 given `-jN`
 * on its command line ignores the jobserver in MAKEFLAGS ("-jN forced in
 * submake: resetting jobserver mode") and serves N jobs of its own.
 */
export function makeCommandLineJobs(command: string, args: readonly string[]): number | null {
  const name = basename(command);
  if (name !== 'make' && name !== 'gmake') return null;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') break;
    const next = args[i + 1];
    const attached = /^-[A-Za-z]*j(\d+)$/.exec(arg) ?? /^--jobs=(\d+)$/.exec(arg);
    if (attached) return Number(attached[1]);
    if ((/^-[A-Za-z]*j$/.test(arg) || arg === '--jobs') && next !== undefined && /^\d+$/.test(next))
      return Number(next);
  }
  return null;
}

/** Where the pool is, opened; or null when there is none (the reason in `problem`). */
async function openPool(
  options: SteveJobOptions,
  implicitSlot: boolean,
  warn: (text: string) => void,
): Promise<{ jobserver: Jobserver; from: string } | { problem: string }> {
  const env = process.env;
  const wait = options.noWait ? 'fallback' : 'auto';
  try {
    if (options.pool !== undefined) {
      const auth = parsePoolSpec(options.pool.spec, process.cwd());
      return {
        jobserver: Jobserver.fromAuth(auth, { implicitSlot, wait }),
        from: options.pool.option,
      };
    }
    const inherited = Jobserver.fromEnv(env, { implicitSlot, wait, warn });
    if (inherited !== null) return { jobserver: inherited, from: 'the inherited MAKEFLAGS' };
    const found = await findPool({
      env,
      controlPath: controlSocketPath(options.control, env),
      command: options.command,
    });
    return { jobserver: Jobserver.fromAuth(found.auth, { implicitSlot, wait }), from: found.from };
  } catch (error) {
    if (error instanceof NoPoolError) return { problem: error.message };
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES' || code === 'ENXIO' || code === 'ENODEV') {
      const where = options.pool?.option ?? 'the pool';
      return { problem: `cannot open ${where}: ${(error as Error).message}; ${START_HINT}` };
    }
    throw error;
  }
}

/** Run steve-job with these arguments; resolves with the exit status. */
export async function steveJob(
  argv: readonly string[],
  stderr: (text: string) => void = (text) => process.stderr.write(text),
  stdout: (text: string) => void = (text) => process.stdout.write(text),
): Promise<number> {
  const parsed = parseSteveJobArgs(argv);
  if (parsed === 'help') {
    stdout(`${STEVE_JOB_USAGE}\n`);
    return 0;
  }
  const options = parsed;
  const say = (text: string): void => stderr(`steve-job: ${text}\n`);
  const makeJobs = makeCommandLineJobs(options.command, options.args);
  if (makeJobs !== null) {
    say(
      `warning: make -j${makeJobs} on make's command line ignores the pool (make 4.3: "-j${makeJobs} forced in submake: resetting jobserver mode") and runs up to ${makeJobs} jobs outside it; leave -j out, the pool sets the parallelism`,
    );
  }
  // --no-wait takes the real tokens without waiting, then lets runWithToken
  // hold the implicit slot, which stands for them (see below).
  // It never waits then either: no native poller (see emerge-shim.ts on epoll probes).
  const opened = await openPool(options, options.noWait, (text) => say(`warning: ${text}`));
  if ('problem' in opened) {
    if (!options.fallback) {
      say(opened.problem);
      return ExitCode.wrapperFailed;
    }
    say(`${opened.problem}\nsteve-job: --fallback run: running ${options.command} without a token`);
    return runWithoutToken(options.command, options.args);
  }
  const { jobserver, from } = opened;
  const held: Token[] = [];
  try {
    if (options.verbose) {
      say(
        `${options.tokens} token(s) from ${formatJobserverAuth(jobserver.auth)} (${from}) for ${options.command}`,
      );
    }
    if (options.noWait) {
      const implicit = jobserver.tryAcquire(); // the slot runWithToken will take again at once
      while (held.length < options.tokens) {
        const token = jobserver.tryAcquire();
        if (token === null) break;
        held.push(token);
      }
      implicit?.release();
      if (held.length < options.tokens) {
        say(
          `no token free now (${held.length} of ${options.tokens} were; --no-wait): ${options.command} not run`,
        );
        return ExitCode.noTokenFree;
      }
    }
    return await runWithToken(options.command, options.args, {
      jobserver,
      tokens: options.noWait ? 1 : options.tokens,
      style: options.style,
    });
  } finally {
    for (const token of held) token.release();
    jobserver.close();
  }
}

export async function main(argv: string[]): Promise<void> {
  process.exitCode = await runMain('steve-job', () => steveJob(argv));
}
