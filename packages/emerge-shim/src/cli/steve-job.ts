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

import { readFile, realpath } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
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
import {
  DEFAULT_CONTROL_SOCKET_PATH,
  FUSE_JOBSERVER_FILE,
  FUSE_STATUS_FILE,
  formatJobserverAuth,
  needsRealFifo,
  parseMakeCommandLine,
  jobsFromStatusFile,
} from '@steve/protocol';
import { controlSocketPath, readStatus } from '../control-status.js';
import { ExitCode } from '../exit-codes.js';
import { NoPoolError, START_HINT, findPool, parsePoolSpec } from '../pool.js';
import { runWithoutToken } from '../plain-run.js';
import { USAGE_EXIT_CODE, command, count } from '@steve/cli';
import { UsageError, runMain } from './common.js';

/** What `steve-job --help` prints above the options. */
export const STEVE_JOB_USAGE = `usage: steve-job [OPTIONS] [--] CMD ARGS…
Run CMD holding job tokens of the steve pool; MAKEFLAGS points CMD's make,
cargo or ninja at the pool, so everything under CMD shares it. steve-job's
options end at \`--\` or at the first word that is not one of them: CMD's own
options (\`steve-job -- make -j4\`) go to CMD as typed.`;

/** What `steve-job --help` prints below the options. */
export const STEVE_JOB_EPILOG = `The pool, when not named: the jobserver in CARGO_MAKEFLAGS/MAKEFLAGS/MFLAGS,
else $STEVE_JOBSERVER, else the daemon's control socket, else /dev/steve,
else /run/steve/jobserver.

Exit status: CMD's; when CMD dies of SIGINT, SIGTERM, SIGHUP or SIGQUIT,
steve-job dies of it too (128+N for other signals); ${ExitCode.noTokenFree} --no-wait found no
free token; ${USAGE_EXIT_CODE} usage error (--tokens above the pool size included); ${ExitCode.wrapperFailed} steve-job
failed (no pool, the pool stopped answering); ${ExitCode.cannotExecute} CMD cannot run; ${ExitCode.notFound} CMD not found.`;

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
 * that is not one of them (yargs' `halt-at-non-option`); the rest is the
 * command, untouched (`populate--`: a `--` of the command's own stays).
 *
 * Errors: UsageError (unknown option, bad value, no command).
 */
export function parseSteveJobArgs(argv: readonly string[]): SteveJobOptions {
  const parsed = command(
    'steve-job',
    import.meta.url,
    argv,
    {
      'halt-at-non-option': true,
      'populate--': true,
      'boolean-negation': false, // --no-wait is an option of its own
      'camel-case-expansion': false,
    },
    { unknownOptionHint: `CMD's own options go after it: ${CMD_AFTER}` },
  )
    .usage(STEVE_JOB_USAGE)
    .epilog(STEVE_JOB_EPILOG)
    .option('jobserver', {
      type: 'string',
      requiresArg: true,
      describe: 'the pool: fifo:PATH, R,W (inherited descriptors) or a PATH',
    })
    .option('device', {
      type: 'string',
      requiresArg: true,
      describe: "the pool's device or file (same as --jobserver fifo:PATH)",
    })
    .conflicts('jobserver', 'device')
    .option('tokens', {
      ...count('--tokens', { min: 1 }),
      default: 1,
      describe:
        "tokens to hold while CMD runs (1: CMD's own slot; in a pool inherited from MAKEFLAGS the first is the slot the parent holds for this job, so N-1 are taken); more than the pool has is an error",
    })
    .option('no-wait', {
      type: 'boolean',
      default: false,
      describe: `exit ${ExitCode.noTokenFree} at once when the tokens are not free now`,
    })
    .option('style', {
      choices: ['fifo', 'pipe', 'auto'] as const,
      default: 'auto' as const,
      describe:
        'how CMD gets the pool: fifo (make >= 4.4, cargo, ninja), pipe (an inherited descriptor, make < 4.4), auto (pipe for GNU make older than 4.4)',
    })
    .option('fallback', {
      choices: ['run'] as const,
      describe: 'with no pool reachable, run CMD without a token (and say so)',
    })
    .option('control', {
      type: 'string',
      requiresArg: true,
      describe: `the daemon's control socket (default $STEVE_CONTROL, else ${DEFAULT_CONTROL_SOCKET_PATH})`,
    })
    .option('verbose', {
      alias: 'v',
      type: 'boolean',
      default: false,
      describe: 'say which pool and how many tokens',
    })
    .parseSync();
  const rest = [...parsed._.map(String), ...((parsed['--'] as string[] | undefined) ?? [])];
  const [commandName, ...args] = rest;
  if (commandName === undefined) throw new UsageError(`no command given (${CMD_AFTER})`);
  const pool =
    parsed.device !== undefined
      ? { spec: `fifo:${parsed.device}`, option: `--device ${parsed.device}` }
      : parsed.jobserver !== undefined
        ? { spec: parsed.jobserver, option: `--jobserver ${parsed.jobserver}` }
        : undefined;
  return {
    pool,
    tokens: parsed.tokens,
    noWait: parsed['no-wait'],
    style: parsed.style,
    fallback: parsed.fallback === 'run',
    control: parsed.control,
    verbose: parsed.verbose,
    command: commandName,
    args,
  };
}

const CMD_AFTER = 'steve-job [OPTIONS] -- CMD ARGS…';

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
  _stdout: (text: string) => void = (text) => process.stdout.write(text),
): Promise<RunWithTokenResult> {
  const exited = (status: number): RunWithTokenResult => ({ status, signal: null });
  const options = parseSteveJobArgs(argv);
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
  const tooMany = await moreThanThePool(options, jobserver.path, inherited);
  if (tooMany !== null) {
    jobserver.close();
    say(tooMany);
    return exited(USAGE_EXIT_CODE);
  }
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

/** The size of the pool at a path, and who said so. */
export interface PoolSize {
  readonly jobs: number;
  /** The daemon's per-process cap (steve-job reads every token itself), or null. */
  readonly perProcessLimit: number | null;
  /** The daemon's per-user cap (all of this user's processes together), or null. */
  readonly perUserLimit: number | null;
  readonly from: string;
}

/**
 * How many tokens the pool at `path` has, when something can tell: the
 * daemon's control socket (when the daemon serves `path`), else the FUSE
 * front's `status` file beside a `…/jobserver` file (its first line is
 * `jobs N  capacity …`). Null for a pool nobody describes: a plain make
 * jobserver (a kernel fifo or inherited descriptors) has no size to ask.
 */
export async function poolSizeAt(path: string, controlPath: string): Promise<PoolSize | null> {
  const answer = await readStatus(controlPath, 1_000);
  if ('status' in answer) {
    const real = await realpath(path).catch(() => path);
    const served = await Promise.all(
      answer.status.fronts.map(async (front) => realpath(front.path).catch(() => front.path)),
    );
    if (served.includes(real)) {
      return {
        jobs: answer.status.settings.jobs,
        perProcessLimit: answer.status.settings.perProcessLimit,
        // Absent from older daemons.
        perUserLimit: answer.status.settings.perUserLimit ?? null,
        from: `the daemon at ${controlPath}`,
      };
    }
  }
  if (basename(path) === FUSE_JOBSERVER_FILE && !isFifo(path)) {
    const statusFile = join(dirname(path), FUSE_STATUS_FILE);
    const text = await readFile(statusFile, 'utf8').catch(() => '');
    const jobs = jobsFromStatusFile(text);
    if (jobs !== null) return { jobs, perProcessLimit: null, perUserLimit: null, from: statusFile };
  }
  return null;
}

/**
 * Why `--tokens N` can never be granted by the pool at `path`, or null
 * when it can (or when the pool's size is unknown: then N is taken as
 * asked, as make does). Waiting for more tokens than the pool has would
 * hold the whole pool back from everyone, forever.
 */
async function moreThanThePool(
  options: SteveJobOptions,
  path: string,
  inherited: boolean,
): Promise<string | null> {
  if (options.tokens <= 1) return null;
  const size = await poolSizeAt(path, controlSocketPath(options.control, process.env));
  if (size === null) return null;
  if (options.tokens > size.jobs) {
    return `--tokens ${options.tokens} is more than the pool has (${size.jobs} tokens at ${path}, said ${size.from}): it would wait forever; ask for at most ${size.jobs}, or grow the pool (stevie set jobs ${options.tokens})`;
  }
  // steve-job reads them all itself (in an inherited pool the first is the parent's).
  const toRead = inherited ? options.tokens - 1 : options.tokens;
  if (size.perProcessLimit !== null && toRead > size.perProcessLimit) {
    return `--tokens ${options.tokens} is more than one process may hold (per-process limit ${size.perProcessLimit} at ${path}, said ${size.from}): it would wait forever; ask for at most ${size.perProcessLimit + (inherited ? 1 : 0)}`;
  }
  if (size.perUserLimit !== null && toRead > size.perUserLimit) {
    return `--tokens ${options.tokens} is more than one user may hold (per-user limit ${size.perUserLimit} at ${path}, said ${size.from}): it would wait forever; ask for at most ${size.perUserLimit + (inherited ? 1 : 0)}`;
  }
  return null;
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
