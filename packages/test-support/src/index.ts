/**
 * Helpers shared by the test suites (e2e and the packages' own tests):
 * waiting for an event with a deadline, the stamps observer, a generated
 * cargo workspace whose build scripts sleep and stamp, the project's test
 * peers (real Portage releases, unpacked from ../shared/peers), and the
 * Python module that makes a Portage prefix from one (python/steve_portage.py).
 */

import { type ChildProcess, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** This package's directory (this file is packages/test-support/{src,dist}/index.*). */
const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The repository's root. */
const REPO_ROOT = resolve(PACKAGE_DIR, '..', '..');

/**
 * Variables through which a child would find some other jobserver (the test
 * runner's own make, a pool from the environment) or steve's control socket,
 * or load the Python plugin where a test did not ask for it.
 */
export const JOBSERVER_ENV_VARIABLES: readonly string[] = [
  'MAKEFLAGS',
  'MFLAGS',
  'MAKELEVEL',
  'CARGO_MAKEFLAGS',
  'STEVE_JOBSERVER',
  'STEVE_CONTROL',
  'EPYTEST_FLAGS',
  'PYTHONPATH',
];

/** `env` (default: this process's) without {@link JOBSERVER_ENV_VARIABLES} and `alsoDrop`, plus `extra`. */
export function envWithoutJobserver(
  extra: Record<string, string> = {},
  {
    env = process.env,
    alsoDrop = [],
  }: { env?: NodeJS.ProcessEnv; alsoDrop?: readonly string[] } = {},
): Record<string, string> {
  const dropped = new Set([...JOBSERVER_ENV_VARIABLES, ...alsoDrop]);
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(env))
    if (value !== undefined && !dropped.has(name)) kept[name] = value;
  return { ...kept, ...extra };
}

/** Poll `check` (2 ms, doubling to 50 ms) until it gives a value, or fail after the deadline. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | null | false,
  deadlineMs = 10_000,
): Promise<T> {
  const start = Date.now();
  for (let delayMs = 2; ; delayMs = Math.min(delayMs * 2, 50)) {
    const value = check();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() - start > deadlineMs) {
      throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, delayMs));
  }
}

/** Resolves with the exit code once `child` has exited (also when it already has). */
export function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolveExit) => child.once('exit', (code) => resolveExit(code)));
}

/** The ISO 8601 timestamp steve-daemon puts before each stderr line. */
const LOG_TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /;

/**
 * The daemon's stderr as lines without their timestamps, as they arrive
 * (`onLine` sees each one); tests match `grant -> pid …` and the like.
 */
export function collectLogLines(
  stream: NodeJS.ReadableStream,
  onLine: (line: string) => void = () => undefined,
): string[] {
  const lines: string[] = [];
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    partial += chunk;
    const complete = partial.split('\n');
    partial = complete.pop() ?? '';
    for (const raw of complete) {
      const line = raw.replace(LOG_TIMESTAMP, '');
      lines.push(line);
      onLine(line);
    }
  });
  return lines;
}

/** Whether `pid` still exists (a zombie counts until it is reaped). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The stamps observer: from lines `start NAME NS` / `end NAME NS` (text or
 * lines), the most jobs that ran at once; only names starting with `prefix`.
 */
export function maxConcurrency(stamps: string | readonly string[], prefix = ''): number {
  const lines = typeof stamps === 'string' ? stamps.split('\n') : stamps;
  const events: Array<[number, number]> = [];
  for (const line of lines) {
    const [kind, name, ns] = line.trim().split(/\s+/);
    if (name === undefined || !name.startsWith(prefix)) continue;
    if (kind === 'start') events.push([Number(ns), 1]);
    if (kind === 'end') events.push([Number(ns), -1]);
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let running = 0;
  let most = 0;
  for (const [, delta] of events) {
    running += delta;
    most = Math.max(most, running);
  }
  return most;
}

/**
 * A cargo workspace (`DIR/ws`) of `crates` local crates whose build scripts
 * sleep `seconds` and append `start|end STAMPNAME+CRATE NS` lines to $STAMPS.
 */
export function writeCargoWorkspace(
  dir: string,
  crates: number,
  seconds: number,
  options: { stampName?: string } = {},
): string {
  const stampName = options.stampName ?? 'cargo-';
  const root = join(dir, 'ws');
  const members = Array.from({ length: crates }, (_, i) => `crate${i}`);
  mkdirSync(root, { recursive: true });
  writeFileSync(
    join(root, 'Cargo.toml'),
    `[workspace]\nmembers = [${members.map((m) => `"${m}"`).join(', ')}]\nresolver = "2"\n`,
  );
  for (const name of members) {
    mkdirSync(join(root, name, 'src'), { recursive: true });
    writeFileSync(
      join(root, name, 'Cargo.toml'),
      `[package]\nname = "${name}"\nversion = "0.1.0"\nedition = "2021"\nbuild = "build.rs"\n`,
    );
    writeFileSync(join(root, name, 'src', 'lib.rs'), `pub fn ${name}() -> u32 { 1 }\n`);
    writeFileSync(
      join(root, name, 'build.rs'),
      `use std::io::Write;
fn stamp(kind: &str) {
    let path = std::env::var("STAMPS").expect("STAMPS");
    let ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    // One write(2) for the whole line: other jobs append to the same file.
    f.write_all(format!("{} ${stampName}{} {}\\n", kind, env!("CARGO_PKG_NAME"), ns).as_bytes()).unwrap();
}
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    stamp("start");
    std::thread::sleep(std::time::Duration::from_millis(${Math.round(seconds * 1000)}));
    stamp("end");
}
`,
    );
  }
  return root;
}

/**
 * A small seeded PRNG (mulberry32) in [0, 1): the same sequence for the same
 * seed, so a simulated or chaos run can be repeated exactly.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The project's test peers (third-party releases the tests unpack and run):
 * `../shared/peers` beside the checkout, or `$STEVE_PEERS_DIR`; checked by
 * their SHA256SUMS.
 */
export function peersDir(): string {
  const dir = process.env.STEVE_PEERS_DIR ?? resolve(REPO_ROOT, '..', 'shared', 'peers');
  if (!existsSync(join(dir, 'SHA256SUMS'))) {
    throw new Error(
      `the Portage test peers are not at ${dir} (no SHA256SUMS): put them there or set STEVE_PEERS_DIR`,
    );
  }
  return dir;
}

const portageSources = new Map<string, string>();

/**
 * An unpacked Portage release from the test peers (checked against
 * SHA256SUMS), as a git checkout of its release tag: run from a source
 * tree, Portage takes its version from `git describe` (`portage-3.0.82` →
 * "Portage 3.0.82"), else it says "Portage HEAD". Unpacked once per process
 * into a directory from `makeTempDir` (default: a new one in the system's
 * temp dir, which the caller removes).
 */
export function portageSource(
  version: string,
  makeTempDir: (prefix: string) => string = (prefix) => mkdtempSync(join(tmpdir(), prefix)),
): string {
  const known = portageSources.get(version);
  if (known !== undefined && existsSync(known)) return known;
  const peers = peersDir();
  const tarball = `portage-${version}.tar.xz`;
  const sums = readFileSync(join(peers, 'SHA256SUMS'), 'utf8');
  const expected = new RegExp(`^([0-9a-f]{64})\\s+${tarball.replace(/\./g, '\\.')}$`, 'm').exec(
    sums,
  )?.[1];
  if (expected === undefined) throw new Error(`${tarball} is not in ${peers}/SHA256SUMS`);
  const actual = createHash('sha256')
    .update(readFileSync(join(peers, tarball)))
    .digest('hex');
  if (actual !== expected) throw new Error(`${tarball}: sha256 ${actual}, expected ${expected}`);
  const dir = makeTempDir(`portage-${version}-`);
  execFileSync('tar', ['-xJf', join(peers, tarball), '-C', dir]);
  const tree = join(dir, `portage-${version}`);
  const git = (...args: string[]): void => {
    execFileSync(
      'git',
      ['-c', 'user.name=steve tests', '-c', 'user.email=tests@invalid', ...args],
      {
        cwd: tree,
        stdio: 'ignore',
      },
    );
  };
  git('init', '-q');
  git('add', '-A');
  git('commit', '-q', '-m', `portage ${version} release tarball`);
  git('tag', '-a', '-m', version, `portage-${version}`);
  portageSources.set(version, tree);
  return tree;
}

/**
 * The directory of `steve_portage.py`, for PYTHONPATH: the module the
 * Python fixtures import to make a throw-away prefix with Portage's own test
 * harness (ResolverPlayground) and wrappers that run a `portageSource` tree's
 * real tools in it (emerge-shim's portage-playground.py, packaging's
 * portage-prefix.py).
 */
export function portageHelperDir(): string {
  return join(PACKAGE_DIR, 'python');
}

/** Pids of the live processes in process group `pgid` (from /proc). */
export function processGroupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') members.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return members;
}
