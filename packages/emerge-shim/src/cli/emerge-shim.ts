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

import { spawnSync } from 'node:child_process';
import {
  Jobserver,
  type RunWithTokenResult,
  dieOfSignal,
  resolveCommand,
  runWithTokenResult,
} from '@steve/jobserver-client';
import { formatJobserverAuth } from '@steve/protocol';
import { controlSocketPath } from '../control-status.js';
import { ExitCode } from '../exit-codes.js';
import { type FoundPool, findPool } from '../pool.js';
import {
  type EmergePlan,
  FIRST_JOBSERVER_PORTAGE,
  type PortageVersion,
  makeConfLines,
  parsePortageVersion,
  planEmerge,
  shellQuote,
} from '../portage.js';
import { UsageError, optionValue, runMain } from './common.js';

export const EMERGE_SHIM_USAGE = `usage: emerge-shim [SHIM OPTIONS] [--] EMERGE ARGS…
Run emerge sharing the steve pool: MAKEFLAGS points every make at it and,
with Portage >= ${FIRST_JOBSERVER_PORTAGE}, FEATURES=jobserver-token makes every emerge job take
a token, with --jobs=<pool size> unless you give --jobs.

  --jobserver AUTH    the pool: fifo:PATH or a PATH (else $STEVE_JOBSERVER, else the
                      daemon's control socket, else /dev/steve, /run/steve/jobserver)
  --control PATH      the daemon's control socket, for the pool and its size
                      (default $STEVE_CONTROL, else /run/steve/control.sock)
  --emerge PATH       the emerge to run (default: emerge on PATH)
  --print-env         print what would be set and the emerge command line, run nothing
  --print-make-conf   print make.conf lines that do the same without emerge-shim
  -h, --help          this text (emerge's own: emerge-shim -- --help)

Exit status: emerge's; ${ExitCode.wrapperFailed} emerge-shim failed (usage, no pool); ${ExitCode.notFound} no emerge.`;

export interface EmergeShimOptions {
  readonly jobserver?: string;
  readonly control?: string;
  readonly emerge: string;
  readonly print: 'env' | 'make-conf' | null;
  readonly args: readonly string[];
}

/**
 * Shim options come first; the rest (after `--`, or from the first word
 * that is not a shim option) is emerge's.
 *
 * Errors: UsageError for a shim option without its value.
 */
export function parseEmergeShimArgs(argv: readonly string[]): EmergeShimOptions | 'help' {
  let jobserver: string | undefined;
  let control: string | undefined;
  let emerge = 'emerge';
  let print: EmergeShimOptions['print'] = null;
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i] as string;
    if (arg === '--') {
      i++;
      break;
    }
    if (arg === '-h' || arg === '--help') return 'help';
    if (arg === '--print-env' || arg === '--print-make-conf') {
      if (print !== null) throw new UsageError('give one of --print-env and --print-make-conf');
      print = arg === '--print-env' ? 'env' : 'make-conf';
      i++;
      continue;
    }
    const named =
      (['--jobserver', '--control', '--emerge'] as const)
        .map((name) => ({ name, found: optionValue(argv, i, name) }))
        .find((o) => o.found !== null) ?? null;
    if (named === null || named.found === null) break; // emerge's arguments start here
    if (named.name === '--jobserver') jobserver = named.found.value;
    else if (named.name === '--control') control = named.found.value;
    else emerge = named.found.value;
    i += named.found.used;
  }
  return { jobserver, control, emerge, print, args: argv.slice(i) };
}

/** `emerge --version` → the Portage version, with what it printed when that is not one. */
export function portageVersionOf(emergePath: string): {
  version: PortageVersion | null;
  output: string;
} {
  const result = spawnSync(emergePath, ['--version'], { encoding: 'utf8', timeout: 120_000 });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim();
  return { version: parsePortageVersion(output), output };
}

/** MAKEOPTS as Portage sees it: the environment, else `portageq envvar MAKEOPTS`. */
export function effectiveMakeopts(
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  if (env.MAKEOPTS !== undefined) return env.MAKEOPTS;
  const portageq = resolveCommand('portageq', env);
  if (portageq === null) return undefined;
  const result = spawnSync(portageq, ['envvar', 'MAKEOPTS'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  const value = result.status === 0 ? (result.stdout ?? '').trim() : '';
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
  const parsed = parseEmergeShimArgs(argv);
  if (parsed === 'help') {
    stdout(`${EMERGE_SHIM_USAGE}\n`);
    return 0;
  }
  const options = parsed;
  const env = process.env;
  const say = (text: string): void => stderr(`emerge-shim: ${text}\n`);

  const emergePath = resolveCommand(options.emerge, env);
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
  const makeopts = effectiveMakeopts(env);

  if (options.print === 'make-conf') {
    stdout(makeConfLines({ version, poolPath: pool.auth.path, poolJobs: pool.jobs, makeopts }));
    return 0;
  }
  const plan = planEmerge({
    version,
    poolPath: pool.auth.path,
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
    `${describeSupport(plan, version)}; pool ${pool.auth.path}${pool.jobs === null ? '' : ` (${pool.jobs} jobs)`}`,
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
