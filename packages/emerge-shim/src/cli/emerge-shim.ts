/**
 * `emerge-shim`: run emerge so that its jobs, and every make, ninja and
 * cargo under them, share the steve pool.
 *
 *   emerge-shim [--jobserver AUTH] [--control PATH] [--emerge PATH]
 *               [--print-env | --print-make-conf] [--] EMERGE ARGS…
 *
 * Portage >= 3.0.74: MAKEFLAGS = the pool's fifo auth (+ MAKEOPTS' -l),
 * FEATURES += jobserver-token, `--jobs=<pool size>` unless given, and
 * (>= 3.0.76) emerge runs holding one token, its implicit slot. Older
 * Portage: the same MAKEFLAGS, a warning, --jobs untouched. See
 * `planEmerge` for the decisions and why.
 */

import { execaSync } from 'execa';
import {
  Jobserver,
  type RunWithTokenResult,
  dieOfSignal,
  resolveCommand,
  runWithTokenResult,
} from '@steve/jobserver-client';
import { existsSync } from 'node:fs';
import {
  DEFAULT_CONTROL_SOCKET_PATH,
  DEFAULT_DEVICE_PATH,
  DEFAULT_FUSE_JOBSERVER_PATH,
  formatJobserverAuth,
} from '@steve/protocol';
import { controlSocketPath } from '../control-status.js';
import { ExitCode } from '../exit-codes.js';
import { type FoundPool, NoPoolError, findPool } from '../pool.js';
import {
  type EmergePlan,
  FIRST_JOBSERVER_PORTAGE,
  type PortageVersion,
  makeConfLines,
  parsePortageVersion,
  planEmerge,
  shellQuote,
} from '../portage.js';
import { USAGE_EXIT_CODE, command } from '@steve/cli';
import { UsageError, runMain } from './common.js';

/** What `emerge-shim --help` prints above the options. */
export const EMERGE_SHIM_USAGE = `usage: emerge-shim [SHIM OPTIONS] [--] EMERGE ARGS…
Run emerge sharing the steve pool: MAKEFLAGS points every make at it and,
with Portage >= ${FIRST_JOBSERVER_PORTAGE}, FEATURES=jobserver-token makes every emerge job take
a token, with --jobs=<pool size> unless you give --jobs. emerge's arguments
start at \`--\` or at the first word that is not a shim option
(\`emerge-shim --ask -uDN @world\`); emerge's own help and version:
\`emerge-shim -- --help\`, \`emerge-shim -- --version\`.`;

/** What `emerge-shim --help` prints below the options. */
export const EMERGE_SHIM_EPILOG = `Exit status: emerge's; ${USAGE_EXIT_CODE} usage error; ${ExitCode.wrapperFailed} emerge-shim failed (no pool); ${ExitCode.notFound} no emerge.`;

export interface EmergeShimOptions {
  readonly jobserver?: string;
  readonly control?: string;
  readonly emerge: string;
  readonly print: 'env' | 'make-conf' | null;
  readonly args: readonly string[];
}

/** emerge-shim's options that take a value (`--jobserver X` or `--jobserver=X`). */
const SHIM_VALUE_OPTIONS = ['--jobserver', '--control', '--emerge'];
const SHIM_OPTIONS = [...SHIM_VALUE_OPTIONS, '--print-env', '--print-make-conf'];
/** No emerge option starts with these: a word that does is a shim option, or a typo of one. */
const SHIM_PREFIXES = [...SHIM_VALUE_OPTIONS, '--print', '--help', '--version'];

/**
 * Whether `word` is meant for emerge-shim: one of its options, or close
 * enough to one (`--print-make-cof`, `--jobservr`) to be a typo of it
 * rather than an emerge option. emerge's options are passed on untouched,
 * so they cannot be checked: only these typos are errors.
 */
export function isShimWord(word: string): boolean {
  if (word === '-h') return true;
  if (!word.startsWith('--') || word === '--') return false;
  const name = word.split('=')[0] as string;
  return (
    SHIM_PREFIXES.some((prefix) => name.startsWith(prefix)) ||
    SHIM_OPTIONS.some((option) => editDistance(name, option) <= 2)
  );
}

/** Levenshtein distance, for {@link isShimWord}'s typos. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        (previous[j] as number) + 1,
        (current[j - 1] as number) + 1,
        (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length] as number;
}

/**
 * Shim options come first; the rest (after `--`, or from the first word
 * that is not a shim option) is emerge's, untouched.
 *
 * The split is done here, not by yargs: emerge's options are unknown to
 * yargs, and `unknown-options-as-args` would both keep parsing shim
 * options after them and lose a `--` of emerge's own, so yargs reads
 * (strictly) only the shim words.
 *
 * Errors: UsageError (from @steve/cli) for a shim option without its
 * value, a mistyped shim option, both --print-env and --print-make-conf.
 */
export function parseEmergeShimArgs(argv: readonly string[]): EmergeShimOptions {
  let i = 0;
  while (i < argv.length && argv[i] !== '--' && isShimWord(argv[i] as string)) {
    i += SHIM_VALUE_OPTIONS.includes(argv[i] as string) ? 2 : 1;
  }
  const shim = argv.slice(0, i);
  const emergeArgs = argv[i] === '--' ? argv.slice(i + 1) : argv.slice(i);
  const parsed = command(
    'emerge-shim',
    import.meta.url,
    shim,
    { 'camel-case-expansion': false },
    { unknownOptionHint: "emerge's own options go after the shim's, or after --" },
  )
    .usage(EMERGE_SHIM_USAGE)
    .epilog(EMERGE_SHIM_EPILOG)
    .option('jobserver', {
      type: 'string',
      requiresArg: true,
      describe:
        "the pool: fifo:PATH or a PATH (else $STEVE_JOBSERVER, else the daemon's control socket, else /dev/steve, /run/steve/jobserver)",
    })
    .option('control', {
      type: 'string',
      requiresArg: true,
      describe: `the daemon's control socket, for the pool and its size (default $STEVE_CONTROL, else ${DEFAULT_CONTROL_SOCKET_PATH})`,
    })
    .option('emerge', {
      type: 'string',
      requiresArg: true,
      default: 'emerge',
      describe: 'the emerge to run (default: emerge on PATH)',
    })
    .option('print-env', {
      type: 'boolean',
      describe: 'print what would be set and the emerge command line, run nothing',
    })
    .option('print-make-conf', {
      type: 'boolean',
      describe:
        'print make.conf lines that do the same without emerge-shim (needs neither emerge nor a running daemon)',
    })
    .conflicts('print-env', 'print-make-conf')
    .parseSync();
  return {
    jobserver: parsed.jobserver,
    control: parsed.control,
    emerge: parsed.emerge,
    print: parsed['print-env'] ? 'env' : parsed['print-make-conf'] ? 'make-conf' : null,
    args: emergeArgs,
  };
}

/** `emerge --version` → the Portage version, with what it printed when that is not one. */
export function portageVersionOf(emergePath: string): {
  version: PortageVersion | null;
  output: string;
} {
  const result = execaSync(emergePath, ['--version'], {
    timeout: 120_000,
    reject: false,
    all: true,
    stdin: 'ignore',
  });
  const output = (result.all ?? '').trim();
  return { version: parsePortageVersion(output), output };
}

/** MAKEOPTS as Portage sees it: the environment, else `portageq envvar MAKEOPTS`. */
export function effectiveMakeopts(
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  if (env.MAKEOPTS !== undefined) return env.MAKEOPTS;
  const portageq = resolveCommand('portageq', env);
  if (portageq === null) return undefined;
  const result = execaSync(portageq, ['envvar', 'MAKEOPTS'], {
    timeout: 60_000,
    reject: false,
    stdin: 'ignore',
  });
  const value = result.exitCode === 0 ? result.stdout.trim() : '';
  return value === '' ? undefined : value;
}

function describeSupport(plan: EmergePlan, version: PortageVersion | null): string {
  const portage = version === null ? 'Portage version unknown' : `Portage ${version.text}`;
  switch (plan.support) {
    case 'implicit-slot':
      return `${portage}: FEATURES=jobserver-token; emerge's first job runs on the token emerge-shim holds`;
    case 'token-per-job':
      return `${portage}: FEATURES=jobserver-token; emerge takes a token for every job (emerge-shim holds none)`;
    case 'none':
      return `${portage}: no jobserver-token; only make and friends under emerge use the pool`;
  }
}

/** The `--print-env` text: comments, `export NAME=value` lines, the command. */
export function formatPrintEnv(
  plan: EmergePlan,
  version: PortageVersion | null,
  pool: FoundPool,
  emergePath: string,
): string {
  const path = pool.auth.kind === 'fifo' ? pool.auth.path : formatJobserverAuth(pool.auth);
  const lines = [
    `# emerge-shim: ${describeSupport(plan, version)}`,
    `# pool: ${path} (from ${pool.from})${pool.jobs === null ? ', size unknown' : `, ${pool.jobs} jobs`}`,
    ...Object.entries(plan.env).map(([name, value]) => `export ${name}=${shellQuote(value)}`),
    `# emerge-shim holds ${plan.tokens} token${plan.tokens === 1 ? '' : 's'} while this runs:`,
    `# ${[emergePath, ...plan.args].map(shellQuote).join(' ')}`,
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * The pool emerge's jobs will use, with its size when the daemon says it.
 *
 * Errors: NoPoolError; UsageError for a pool that is not fifo-style (Portage
 * takes only `fifo:PATH`).
 */
async function portagePool(
  options: EmergeShimOptions,
  env: NodeJS.ProcessEnv,
): Promise<FoundPool & { path: string }> {
  const pool = await findPool({
    explicit:
      options.jobserver === undefined
        ? undefined
        : { spec: options.jobserver, option: `--jobserver ${options.jobserver}` },
    env,
    controlPath: controlSocketPath(options.control, env),
    wantJobs: true,
  });
  if (pool.auth.kind !== 'fifo') {
    throw new UsageError(
      `Portage takes only a fifo-style jobserver (fifo:PATH), not ${formatJobserverAuth(pool.auth)}`,
    );
  }
  return { ...pool, path: pool.auth.path };
}

/**
 * The `--print-make-conf` text. It needs neither a running daemon nor
 * emerge: without a daemon the pool is where the daemon will serve it (the
 * default device, or the default FUSE file on a kernel without CUSE), and
 * without emerge the lines are those for a Portage with jobserver-token.
 */
async function makeConfFor(
  options: EmergeShimOptions,
  emergePath: string | null,
  env: NodeJS.ProcessEnv,
  say: (text: string) => void,
): Promise<string> {
  const version =
    emergePath === null
      ? parsePortageVersion(`Portage ${FIRST_JOBSERVER_PORTAGE}`)
      : portageVersionOf(emergePath).version;
  let poolPath: string;
  let poolJobs: number | null = null;
  try {
    const pool = await portagePool(options, env);
    poolPath = pool.path;
    poolJobs = pool.jobs;
  } catch (error) {
    if (!(error instanceof NoPoolError) || options.jobserver !== undefined) throw error;
    poolPath = existsSync('/dev/cuse') ? DEFAULT_DEVICE_PATH : DEFAULT_FUSE_JOBSERVER_PATH;
    say(
      `no daemon answers yet: printing the lines for ${poolPath}, where steve-daemon serves by default once started (\`npx steve-daemon -j$(nproc)\`, or \`steve-daemon -j$(nproc)\` where installed)`,
    );
  }
  const text = makeConfLines({ version, poolPath, poolJobs, makeopts: effectiveMakeopts(env) });
  return emergePath === null
    ? `# (emerge is not on PATH here: these are the lines for Portage >= ${FIRST_JOBSERVER_PORTAGE})\n${text}`
    : text;
}

/** Run emerge-shim with these arguments; resolves with emerge's exit status. */
export async function emergeShim(
  argv: readonly string[],
  stderr: (text: string) => void = (text) => process.stderr.write(text),
  stdout: (text: string) => void = (text) => process.stdout.write(text),
): Promise<number> {
  return (await emergeShimResult(argv, stderr, stdout)).status;
}

/**
 * {@link emergeShim}, also telling the signal emerge died of (null when it
 * exited or did not run); its token is back and the pool closed by then.
 */
export async function emergeShimResult(
  argv: readonly string[],
  stderr: (text: string) => void = (text) => process.stderr.write(text),
  stdout: (text: string) => void = (text) => process.stdout.write(text),
): Promise<RunWithTokenResult> {
  const prepared = await prepare(argv, stderr, stdout);
  return typeof prepared === 'number' ? { status: prepared, signal: null } : prepared.run();
}

/** Everything before emerge runs: a status to stop with, or how to run it. */
async function prepare(
  argv: readonly string[],
  stderr: (text: string) => void,
  stdout: (text: string) => void,
): Promise<number | { run(): Promise<RunWithTokenResult> }> {
  const options = parseEmergeShimArgs(argv);
  const env = process.env;
  const say = (text: string): void => stderr(`emerge-shim: ${text}\n`);

  const emergePath = resolveCommand(options.emerge, env);
  if (options.print === 'make-conf') {
    stdout(await makeConfFor(options, emergePath, env, say));
    return 0;
  }
  if (emergePath === null) {
    say(`cannot find ${options.emerge} on PATH (is Portage installed? else pass --emerge PATH)`);
    return ExitCode.notFound;
  }
  const { version, output } = portageVersionOf(emergePath);
  if (version === null) {
    say(
      `warning: cannot read a Portage version from \`${options.emerge} --version\` (${JSON.stringify(output.slice(0, 200))}): treating it as older than ${FIRST_JOBSERVER_PORTAGE}`,
    );
  }
  const pool = await portagePool(options, env);
  const makeopts = effectiveMakeopts(env);
  const plan = planEmerge({
    version,
    poolPath: pool.path,
    poolJobs: pool.jobs,
    makeopts,
    features: env.FEATURES,
    args: options.args,
  });
  for (const warning of plan.warnings) say(`warning: ${warning}`);
  if (options.print === 'env') {
    stdout(formatPrintEnv(plan, version, pool, emergePath));
    return 0;
  }
  say(
    `${describeSupport(plan, version)}; pool ${pool.path}${pool.jobs === null ? '' : ` (${pool.jobs} jobs)`}`,
  );
  // Holding no token (3.0.74/3.0.75): the implicit slot stands in and nothing is read, so
  // nothing waits either: the pure-JS wait, because creating the native poller probes the
  // descriptor with epoll, which a steve daemon takes for a waiting poller and reserves a
  // token for (held back from everyone for the reservation TTL).
  const jobserver = Jobserver.fromAuth(pool.auth, {
    implicitSlot: plan.tokens === 0,
    wait: plan.tokens === 0 ? 'fallback' : 'auto',
  });
  return {
    run: async () => {
      try {
        return await runWithTokenResult(emergePath, plan.args, {
          jobserver,
          tokens: 1,
          style: 'fifo',
          env: { ...env, ...plan.env },
        });
      } finally {
        jobserver.close();
      }
    },
  };
}

export async function main(argv: string[]): Promise<void> {
  let signal: NodeJS.Signals | null = null;
  process.exitCode = await runMain('emerge-shim', async () => {
    const result = await emergeShimResult(argv);
    signal = result.signal;
    return result.status;
  });
  // emerge died of SIGINT (Ctrl-C) or another fatal signal: die of it too, tokens back.
  dieOfSignal(signal);
}
