/**
 * What emerge-shim does to an emerge run, decided without I/O: the Portage
 * version's jobserver support, the environment, emerge's arguments, the
 * make.conf lines.
 *
 * Portage facts this relies on (from Portage's sources; checked with real
 * emerge 3.0.73, 3.0.76 and 3.0.82 in test/real-portage-emerge.test.ts,
 * except 3.0.74/3.0.75, which the tests do not have):
 * - >= 3.0.74 has `FEATURES=jobserver-token`: the scheduler parses
 *   `MAKEFLAGS` for `--jobserver-auth=fifo:PATH` (fifo style only),
 *   opens it O_RDWR|O_NONBLOCK and takes one token for every build job it
 *   starts, after its own --jobs/--load-average checks; the token is the
 *   job's implicit slot, returned when the job ends.
 * - >= 3.0.76: when MAKEFLAGS is in emerge's own environment, emerge
 *   assumes its parent already holds a token for it and uses it for its
 *   first job (the implicit slot).
 * - emake unsets MAKEOPTS when MAKEFLAGS is set (a `-jN` would reset make's
 *   jobserver mode), so a `-l` limit must travel in MAKEFLAGS. Every release
 *   tested here does it, 3.0.73 included.
 */

import { EMPTY_MAKEFLAGS, formatMakeflags, parseMakeflags } from '@steve/protocol';

/** `Portage 3.0.76 (...)` from `emerge --version`. */
export interface PortageVersion {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
  /** As printed: `3.0.76`. */
  readonly text: string;
}

/**
 * How a Portage version takes part in the pool:
 * - `implicit-slot` (>= 3.0.76): a token per job, the first one being the
 *   token its parent (emerge-shim) holds;
 * - `token-per-job` (3.0.74, 3.0.75): a token per job, the first included;
 * - `none` (older, or unknown): its jobs take no tokens.
 */
export type PortageSupport = 'implicit-slot' | 'token-per-job' | 'none';

export const JOBSERVER_FEATURE = 'jobserver-token';
export const FIRST_JOBSERVER_PORTAGE = '3.0.74';
export const FIRST_IMPLICIT_SLOT_PORTAGE = '3.0.76';

/**
 * The version in `emerge --version` output, or null.
 *
 * @example
 * parsePortageVersion('Portage 3.0.76 (python 3.12.8-final-0, default/linux/amd64/23.0, …)')
 * // { major: 3, minor: 0, patch: 76, text: '3.0.76' }
 */
export function parsePortageVersion(output: string): PortageVersion | null {
  const match = /^Portage (\d+)\.(\d+)\.(\d+)/m.exec(output);
  if (!match) return null;
  const [major, minor, patch] = [Number(match[1]), Number(match[2]), Number(match[3])];
  return { major, minor, patch, text: `${major}.${minor}.${patch}` };
}

function atLeast(version: PortageVersion, text: string): boolean {
  const [major, minor, patch] = text.split('.').map(Number) as [number, number, number];
  if (version.major !== major) return version.major > major;
  if (version.minor !== minor) return version.minor > minor;
  return version.patch >= patch;
}

export function portageSupport(version: PortageVersion | null): PortageSupport {
  if (version === null || !atLeast(version, FIRST_JOBSERVER_PORTAGE)) return 'none';
  return atLeast(version, FIRST_IMPLICIT_SLOT_PORTAGE) ? 'implicit-slot' : 'token-per-job';
}

/**
 * True when emerge's arguments set its job count: `--jobs`, `--jobs=N`,
 * `--jobs N`, an unambiguous prefix (`--job`, argparse accepts it) or `-j`
 * in a bundle of short options (`-j4`, `-avj`). Arguments after `--` are
 * atoms.
 */
export function userGaveJobs(args: readonly string[]): boolean {
  for (const arg of args) {
    if (arg === '--') return false;
    if (/^--jo(?:bs?)?(?:=|$)/.test(arg)) return true;
    const bundle = /^-([A-Za-z]+)/.exec(arg);
    if (bundle && !arg.startsWith('--') && (bundle[1] as string).includes('j')) return true;
  }
  return false;
}

/** `FEATURES` with `jobserver-token` added (Portage's FEATURES is incremental). */
export function featuresWithJobserver(features: string | undefined): string {
  const words = (features ?? '').split(/\s+/).filter((w) => w !== '');
  if (words.includes(JOBSERVER_FEATURE)) return words.join(' ');
  return [...words, JOBSERVER_FEATURE].join(' ');
}

/**
 * The MAKEFLAGS emerge (and every make under it) gets: the pool's fifo
 * auth, plus MAKEOPTS' `-l` when it has one (emake drops MAKEOPTS once
 * MAKEFLAGS is set). `-jN` is never carried: it resets make's jobserver.
 *
 * @example
 * emergeMakeflags('/dev/steve', '-j32 -l30') // ' -l30 --jobserver-auth=fifo:/dev/steve'
 */
export function emergeMakeflags(poolPath: string, makeopts: string | undefined): string {
  const load = makeopts === undefined ? null : parseMakeflags(makeopts, '/').loadAverage;
  // formatMakeflags writes what make puts in MAKEFLAGS, with a leading
  // space when there are no single-letter flags; a user reads this one.
  return formatMakeflags({
    ...EMPTY_MAKEFLAGS,
    loadAverage: load,
    jobserverAuth: { kind: 'fifo', path: poolPath },
  }).trim();
}

export interface PlanInput {
  readonly version: PortageVersion | null;
  readonly poolPath: string;
  /** The pool's size from the daemon, or null when unknown. */
  readonly poolJobs: number | null;
  /** MAKEOPTS as Portage will see it (environment, else make.conf), if known. */
  readonly makeopts: string | undefined;
  /** FEATURES from emerge-shim's environment. */
  readonly features: string | undefined;
  /** emerge's arguments as the user gave them. */
  readonly args: readonly string[];
}

export interface EmergePlan {
  readonly support: PortageSupport;
  /** Variables to set in emerge's environment. */
  readonly env: Readonly<Record<string, string>>;
  /** emerge's arguments. */
  readonly args: readonly string[];
  /**
   * Tokens emerge-shim holds while emerge runs: 1 for Portage >= 3.0.76
   * (emerge's implicit slot) and for older Portage (the emerge run counts as
   * one job of the pool), 0 for 3.0.74/3.0.75 (emerge takes a token for
   * every job, the first included; one more would sit idle).
   */
  readonly tokens: 0 | 1;
  /** Things the user should know, one line each. */
  readonly warnings: readonly string[];
}

/** Decide the environment, arguments and token for an emerge run. */
export function planEmerge(input: PlanInput): EmergePlan {
  const support = portageSupport(input.version);
  const env: Record<string, string> = {
    MAKEFLAGS: emergeMakeflags(input.poolPath, input.makeopts),
  };
  const warnings: string[] = [];
  const portage = input.version === null ? 'an unknown Portage' : `Portage ${input.version.text}`;
  let args = [...input.args];

  if (support === 'none') {
    warnings.push(
      `${portage} is older than ${FIRST_JOBSERVER_PORTAGE} (no FEATURES=${JOBSERVER_FEATURE}): emerge's jobs take no tokens, so each parallel job's first make job runs outside the pool; --jobs left as given`,
    );
    return { support, env, args, tokens: 1, warnings };
  }

  const features = input.features?.split(/\s+/) ?? [];
  if (features.includes(`-${JOBSERVER_FEATURE}`)) {
    warnings.push(
      `FEATURES has -${JOBSERVER_FEATURE}: left as it is; emerge's jobs take no tokens`,
    );
    if (input.features !== undefined) env.FEATURES = input.features;
  } else {
    env.FEATURES = featuresWithJobserver(input.features);
  }
  if (!userGaveJobs(args)) {
    if (input.poolJobs !== null) {
      // The pool, not emerge, is the cap: emerge may start as many jobs as there are tokens.
      args = [`--jobs=${input.poolJobs}`, ...args];
    } else {
      warnings.push(
        'the pool size is unknown (the daemon did not answer on its control socket): --jobs not added; pass --jobs=N or --control PATH',
      );
    }
  }
  return { support, env, args, tokens: support === 'implicit-slot' ? 1 : 0, warnings };
}

/** Quote a value for a POSIX shell (and make.conf, which is read by bash). */
export function shellQuote(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * The lines a user can keep in /etc/portage/make.conf instead of running
 * emerge through emerge-shim.
 */
export function makeConfLines(input: {
  readonly version: PortageVersion | null;
  readonly poolPath: string;
  readonly poolJobs: number | null;
  readonly makeopts: string | undefined;
}): string {
  const support = portageSupport(input.version);
  const makeflags = emergeMakeflags(input.poolPath, input.makeopts).trim();
  const lines = [
    `# steve: every emerge job and every make under it take tokens from ${input.poolPath}`,
    `# (printed by emerge-shim --print-make-conf for ${input.version === null ? 'an unknown Portage' : `Portage ${input.version.text}`})`,
    `MAKEFLAGS="${makeflags}"`,
    '# pytest-xdist workers in src_test (epytest) take tokens too; install the plugin once',
    '# with `steve-pytest install` (npx steve-pytest install), so it does not live in a clone.',
    'EPYTEST_FLAGS="-p steve_jobserver"',
  ];
  if (support === 'none') {
    lines.push(
      `# Portage older than ${FIRST_JOBSERVER_PORTAGE} has no FEATURES=${JOBSERVER_FEATURE}: each parallel`,
      "# emerge job's first make job runs outside the pool. Upgrade Portage for full sharing.",
      '# MAKEOPTS: emake ignores it once MAKEFLAGS is set; keep -l in MAKEFLAGS above, no -jN anywhere.',
    );
    return `${lines.join('\n')}\n`;
  }
  lines.push(
    `FEATURES="\${FEATURES} ${JOBSERVER_FEATURE}"`,
    '# MAKEOPTS: emake ignores it once MAKEFLAGS is set; keep -l in MAKEFLAGS above, no -jN anywhere.',
  );
  if (input.poolJobs !== null) {
    lines.push(
      '# The pool, not emerge, is the cap: let emerge start as many jobs as there are tokens.',
      `EMERGE_DEFAULT_OPTS="\${EMERGE_DEFAULT_OPTS} --jobs=${input.poolJobs}"`,
    );
  } else {
    lines.push(
      '# Pool size unknown (no answer on the control socket): add --jobs=<pool size> to EMERGE_DEFAULT_OPTS.',
    );
  }
  return `${lines.join('\n')}\n`;
}
