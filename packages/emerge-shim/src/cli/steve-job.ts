/**
 * `steve-job`: run one command as one job of the steve pool.
 *
 *   steve-job [--jobserver AUTH | --device PATH] [--tokens N] [--no-wait]
 *             [--style fifo|pipe|auto] [--fallback run] [--control PATH] [-v] -- CMD ARGS…
 *
 * With a pool it names itself (--jobserver, --device, $STEVE_JOBSERVER,
 * the daemon, the default paths) it takes N real tokens (default 1). With
 * a pool inherited from MAKEFLAGS (a `+` make recipe, steve-job under
 * steve-job) the parent already holds this job's token, so the first of
 * the N is that implicit slot and only N-1 are read. It runs CMD with
 * MAKEFLAGS pointing at the pool (auth set, `-jN` removed, other flags
 * kept) and returns the tokens when CMD ends. What it holds is the
 * implicit slot of CMD's tree: make, cargo or ninja under it run their
 * first job on it and take a token for every further one. The running
 * itself is `runWithToken` of `@steve/jobserver-client`, the same code as
 * `stevie CMD`. When CMD dies of SIGINT, SIGTERM, SIGHUP or SIGQUIT,
 * steve-job dies of it too once the tokens are back.
 */

import { statSync } from 'node:fs';
import { basename } from 'node:path';
import {
  Jobserver,
  type PrivateFifoLease,
  PrivateFifoError,
  leasePrivateFifo,
  type RunStyle,
  type RunWithTokenResult,
  type Token,
  dieOfSignal,
  runWithTokenResult,
} from '@steve/jobserver-client';
import { formatJobserverAuth, needsRealFifo, parseMakeCommandLine } from '@steve/protocol';
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
  --tokens N          tokens to hold while CMD runs (default 1: CMD's own slot; in a
                      pool inherited from MAKEFLAGS the first is the slot the parent
                      holds for this job, so N-1 are taken)
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

Exit status: CMD's; when CMD dies of SIGINT, SIGTERM, SIGHUP or SIGQUIT,
steve-job dies of it too (128+N for other signals); ${ExitCode.noTokenFree} --no-wait found no
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
 * The `-jN` a GNU make command line carries, if any; 0 for a bare `-j`
 * (`-kj`, `--jobs`: unlimited). make 4.3 given `-j` on its command line
 * ignores the jobserver in MAKEFLAGS ("-jN forced in submake: resetting
 * jobserver mode", "-j0 …" for a bare `-j`) and serves N jobs of its own,
 * or any number.
 */
export function makeCommandLineJobs(command: string, args: readonly string[]): number | null {
  const name = basename(command);
  if (name !== 'make' && name !== 'gmake') return null;
  // make's own getopt rules, from @steve/protocol (0: a bare -j, unlimited).
  const jobs = parseMakeCommandLine(args, '/').jobs;
  return jobs === null ? null : jobs === 'unlimited' ? 0 : jobs;
}

/** The warning for make's own `-j` (see {@link makeCommandLineJobs}). */
export function makeJobsWarning(jobs: number): string {
  const typed = jobs === 0 ? '-j' : `-j${jobs}`;
  const outside = jobs === 0 ? 'any number of jobs' : `up to ${jobs} jobs`;
  return `warning: make ${typed} on make's command line ignores the pool (make 4.3: "-j${jobs} forced in submake: resetting jobserver mode") and runs ${outside} outside it; leave -j out, the pool sets the parallelism`;
}

/**
 * Where the pool is, opened; or the reason there is none (`problem`).
 *
 * `inherited`: the pool came from MAKEFLAGS, so the parent (make running a
 * `+` recipe, an outer steve-job) already holds a token for this job: it
 * is opened with the implicit slot, which stands for that token. A pool
 * named any other way is opened without one: every token is read (the
 * `--no-wait` path alone opens it with the slot, see {@link steveJob}).
 */
async function openPool(
  options: SteveJobOptions,
  warn: (text: string) => void,
): Promise<{ jobserver: Jobserver; from: string; inherited: boolean } | { problem: string }> {
  const env = process.env;
  // It never waits with --no-wait, and an inherited pool with --tokens 1 reads nothing:
  // no native poller then (see emerge-shim.ts on epoll probes).
  const named = {
    implicitSlot: options.noWait,
    wait: options.noWait ? ('fallback' as const) : ('auto' as const),
  };
  try {
    if (options.pool !== undefined) {
      const auth = parsePoolSpec(options.pool.spec, process.cwd());
      return {
        jobserver: Jobserver.fromAuth(auth, named),
        from: options.pool.option,
        inherited: false,
      };
    }
    const inherited = Jobserver.fromEnv(env, {
      implicitSlot: true,
      wait: options.noWait || options.tokens === 1 ? 'fallback' : 'auto',
      warn,
    });
    if (inherited !== null) {
      return { jobserver: inherited, from: 'the inherited MAKEFLAGS', inherited: true };
    }
    const found = await findPool({
      env,
      controlPath: controlSocketPath(options.control, env),
      command: options.command,
    });
    return {
      jobserver: Jobserver.fromAuth(found.auth, named),
      from: found.from,
      inherited: false,
    };
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
  return (await steveJobResult(argv, stderr, stdout)).status;
}

/**
 * {@link steveJob}, also telling the signal CMD died of (null when it
 * exited, or did not run). Tokens are back and the pool closed when it
 * resolves, so `main` can die of that signal.
 */
export async function steveJobResult(
  argv: readonly string[],
  stderr: (text: string) => void = (text) => process.stderr.write(text),
  stdout: (text: string) => void = (text) => process.stdout.write(text),
): Promise<RunWithTokenResult> {
  const exited = (status: number): RunWithTokenResult => ({ status, signal: null });
  const parsed = parseSteveJobArgs(argv);
  if (parsed === 'help') {
    stdout(`${STEVE_JOB_USAGE}\n`);
    return exited(0);
  }
  const options = parsed;
  const say = (text: string): void => stderr(`steve-job: ${text}\n`);
  const makeJobs = makeCommandLineJobs(options.command, options.args);
  if (makeJobs !== null) say(makeJobsWarning(makeJobs));
  const opened = await openPool(options, (text) => say(`warning: ${text}`));
  if ('problem' in opened) {
    if (!options.fallback) {
      say(opened.problem);
      return exited(ExitCode.wrapperFailed);
    }
    say(`${opened.problem}\nsteve-job: --fallback run: running ${options.command} without a token`);
    return runWithoutToken(options.command, options.args);
  }
  const { inherited } = opened;
  let { jobserver, from } = opened;
  // ninja takes only a real fifo: a private one of the daemon, whose tokens
  // come back when ninja ends (however it ends).
  let lease: PrivateFifoLease | null = null;
  if (needsRealFifo(options.command) && options.style !== 'pipe' && !isFifo(jobserver.path)) {
    try {
      lease = await leasePrivateFifo(controlSocketPath(options.control, process.env));
      jobserver.close();
      jobserver = Jobserver.fromAuth(
        { kind: 'fifo', path: lease.path },
        { implicitSlot: inherited || options.noWait, wait: options.noWait ? 'fallback' : 'auto' },
      );
      from = 'a private fifo of the daemon';
    } catch (error) {
      if (!(error instanceof PrivateFifoError)) throw error;
      say(
        `warning: ${options.command} accepts only a real fifo and ${jobserver.path} is not one; no private fifo either (${error.message}): it may run without a limit`,
      );
    }
  }
  // In an inherited pool the first token is the slot the parent holds for this job.
  const toRead = inherited ? options.tokens - 1 : options.tokens;
  const held: Token[] = [];
  try {
    if (options.verbose) {
      const what = inherited
        ? `the implicit slot + ${toRead} token(s)`
        : `${options.tokens} token(s)`;
      say(`${what} from ${formatJobserverAuth(jobserver.auth)} (${from}) for ${options.command}`);
    }
    if (options.noWait) {
      // Opened with the implicit slot either way: take it, then the tokens to read without
      // waiting, and hand the slot back for runWithToken to take again at once (it stands
      // for what is held here, or is this job's own slot in an inherited pool).
      const implicit = jobserver.tryAcquire();
      while (held.length < toRead) {
        const token = jobserver.tryAcquire();
        if (token === null) break;
        held.push(token);
      }
      implicit?.release();
      if (held.length < toRead) {
        const got = held.length + (inherited ? 1 : 0);
        say(
          `no token free now (${got} of ${options.tokens} were; --no-wait): ${options.command} not run`,
        );
        return exited(ExitCode.noTokenFree);
      }
    }
    const tiedTo = lease;
    return await runWithTokenResult(options.command, options.args, {
      jobserver,
      tokens: options.noWait ? 1 : options.tokens,
      style: options.style,
      ...(tiedTo === null
        ? {}
        : {
            onSpawn: (pid: number) =>
              void tiedTo
                .commandStarted(pid)
                .catch((error: Error) =>
                  say(`warning: the private fifo is not tied to pid ${pid}: ${error.message}`),
                ),
          }),
    });
  } finally {
    for (const token of held) token.release();
    jobserver.close();
    lease?.close();
  }
}

/** Whether `path` is a named pipe (false when it cannot be looked at). */
function isFifo(path: string): boolean {
  try {
    return statSync(path).isFIFO();
  } catch {
    return false;
  }
}

export async function main(argv: string[]): Promise<void> {
  let signal: NodeJS.Signals | null = null;
  process.exitCode = await runMain('steve-job', async () => {
    const result = await steveJobResult(argv);
    signal = result.signal;
    return result.status;
  });
  dieOfSignal(signal);
}
