// Real GNU make 4.4.1 for the tests (Debian 12 ships 4.3, which has no fifo
// jobserver): the binary built from Debian trixie's source by
// scripts/build-make-4.4.1.sh (cached; built here when missing), builds
// whose jobs stamp start/end lines, and make runs in their own process group.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO, waitFor } from './daemon.js';

let cachedBinary: string | null = null;

/** The path of GNU make 4.4.1 (STEVE_MAKE_441 overrides; else built or taken from the cache). */
export function make441(): string {
  if (cachedBinary !== null) return cachedBinary;
  const override = process.env.STEVE_MAKE_441;
  if (override) return (cachedBinary = override);
  const build = spawnSync('bash', [join(REPO, 'scripts', 'build-make-4.4.1.sh')], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (build.status !== 0) {
    throw new Error(`scripts/build-make-4.4.1.sh failed (${build.status}): ${build.stderr}`);
  }
  const binary = build.stdout.trim().split('\n').pop() ?? '';
  const version = spawnSync(binary, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0];
  if (version !== 'GNU Make 4.4.1')
    throw new Error(`${binary} says ${version}, not GNU Make 4.4.1`);
  return (cachedBinary = binary);
}

/** A recipe that appends `start NAME NS`, sleeps, appends `end NAME NS`. */
function stampedRecipe(name: string, seconds: number, stamps: string): string {
  return `\t@echo start ${name} $$(date +%s%N) >> ${stamps}; sleep ${seconds}; echo end ${name} $$(date +%s%N) >> ${stamps}`;
}

/** A flat Makefile in `dir`: `jobs` independent jobs of `seconds`, stamped as `PREFIX-jobI`. */
export function writeFlatMakefile(
  dir: string,
  jobs: number,
  seconds: number,
  stamps: string,
  prefix = 'flat',
): string {
  mkdirSync(dir, { recursive: true });
  const names = Array.from({ length: jobs }, (_, i) => `job${i}`);
  const makefile = join(dir, 'Makefile');
  writeFileSync(
    makefile,
    [
      `all: ${names.join(' ')}`,
      `.PHONY: all ${names.join(' ')}`,
      `${names.join(' ')}:`,
      stampedRecipe(`${prefix}-$@`, seconds, stamps),
      '',
    ].join('\n'),
  );
  return makefile;
}

/**
 * A recursive build in `dir`: the top Makefile runs `$(MAKE) -C subI` for
 * `subMakes` directories (in parallel), each a flat build of `jobsEach`
 * jobs of `seconds`. `subMakeFlags` goes on each sub-make's command line
 * (e.g. `-j4`, which makes that sub-make leave the jobserver), `subMakeEnv`
 * into its environment.
 */
export function writeRecursiveMakefile(
  dir: string,
  options: {
    subMakes: number;
    jobsEach: number;
    seconds: number;
    stamps: string;
    subMakeFlags?: string;
    /** Shell words before `$(MAKE)` in the recipe (e.g. `MAKEFLAGS="$$MAKEFLAGS -j4"`). */
    subMakeEnv?: string;
  },
): string {
  mkdirSync(dir, { recursive: true });
  const subs = Array.from({ length: options.subMakes }, (_, i) => `sub${i}`);
  for (const sub of subs)
    writeFlatMakefile(join(dir, sub), options.jobsEach, options.seconds, options.stamps, sub);
  const makefile = join(dir, 'Makefile');
  writeFileSync(
    makefile,
    [
      `all: ${subs.join(' ')}`,
      `.PHONY: all ${subs.join(' ')}`,
      `${subs.join(' ')}:`,
      `\t@${options.subMakeEnv ?? ''} $(MAKE) --no-print-directory ${options.subMakeFlags ?? ''} -C $@`,
      '',
    ].join('\n'),
  );
  return makefile;
}

/**
 * A node script for recipes: it connects with @steve/jobserver-client's
 * `Jobserver.fromEnv()` (exit 3 when there is no jobserver), runs `tasks`
 * tasks of `ms` at once through `acquire`/`release` (the first one in the
 * implicit slot make gave the recipe), each stamping `start|end NAME-tI NS`
 * to `stamps`. Usage in a recipe: `node SCRIPT NAME TASKS MS STAMPS`.
 */
export function writeJobserverClientRecipe(dir: string): string {
  const library = pathToFileURL(
    join(REPO, 'packages', 'jobserver-client', 'dist', 'index.js'),
  ).href;
  const script = join(dir, 'client-recipe.mjs');
  writeFileSync(
    script,
    `import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Jobserver } from ${JSON.stringify(library)};

const [name, tasks, ms, stamps] = process.argv.slice(2);
const jobserver = Jobserver.fromEnv();
if (jobserver === null) {
  console.error('client-recipe: no jobserver in MAKEFLAGS=' + JSON.stringify(process.env.MAKEFLAGS));
  process.exit(3);
}
const stamp = (kind, task) =>
  appendFileSync(stamps, kind + ' ' + name + '-t' + task + ' ' + process.hrtime.bigint().toString() + '\\n');
await Promise.all(
  Array.from({ length: Number(tasks) }, async (_, task) => {
    const token = await jobserver.acquire();
    try {
      stamp('start', task);
      await sleep(Number(ms));
      stamp('end', task);
    } finally {
      token.release();
    }
  }),
);
console.log(name + ': ' + jobserver.auth.kind + ' auth, ' + tasks + ' tasks done');
jobserver.close();
`,
  );
  return script;
}

export interface MakeRun {
  readonly child: ChildProcess;
  /** The process group of the build (make leads it). */
  readonly pgid: number;
  output(): string;
  /** Resolves with make's exit code (null when a signal ended it) and signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Start make 4.4.1 with `args` in its own process group (a new session). */
export function startMake441(
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): MakeRun {
  const child = spawn(make441(), args, {
    ...options,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (output += c));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => resolve({ code, signal }));
    },
  );
  return { child, pgid: child.pid as number, output: () => output, exited };
}

/** Run make 4.4.1 to completion; resolves with its exit code, output and wall time. */
export async function runMake441(
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<{ code: number | null; output: string; elapsedMs: number }> {
  const started = performance.now();
  const run = startMake441(args, options);
  const { code } = await run.exited;
  return { code, output: run.output(), elapsedMs: performance.now() - started };
}

export { processGroupMembers } from '@steve/test-support';

/** SIGKILL whatever is left of a build's process group (test clean-up). */
export function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** The stamp lines written so far (none when the file does not exist yet). */
export function stampLines(stamps: string): string[] {
  try {
    return readFileSync(stamps, 'utf8').trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

export { waitFor };
