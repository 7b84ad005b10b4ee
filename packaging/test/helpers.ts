// Shared by the packaging tests: paths, temp dirs, Debian packages the
// tests need (installed or downloaded on demand), the tarballs installed
// where a service manager looks for the bins, and the throw-away copy of
// this machine's root that containers and chroots run in.
import { execFileSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Options, execa } from 'execa';

export const PACKAGING = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = resolve(PACKAGING, '..');
export const FIXTURES = join(PACKAGING, 'test', 'fixtures');

const tempDirs: string[] = [];

/** A fresh temp dir, removed by {@link removeTempDirs}. */
export function tempDir(prefix = 'steve-packaging-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** Removes the temp dirs, unless STEVE_PACKAGING_KEEP=1 (then it says where they are). */
export function removeTempDirs(): void {
  const dirs = tempDirs.splice(0);
  if (process.env.STEVE_PACKAGING_KEEP === '1') {
    if (dirs.length > 0) console.log(`packaging: kept ${dirs.join(' ')}`);
    return;
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}

/** Run and capture; never throws for a non-zero exit (the tests look at it). */
export async function run(
  command: string,
  args: readonly string[],
  options: Options = {},
): Promise<{ exitCode: number; stdout: string; stderr: string; all: string }> {
  const result = await execa(command, args, { reject: false, all: true, ...options });
  return {
    exitCode: result.exitCode ?? -1,
    stdout: String(result.stdout ?? ''),
    stderr: String(result.stderr ?? ''),
    all: String(result.all ?? ''),
  };
}

/** The installed version of a Debian package, or null. */
export function installedVersion(pkg: string): string | null {
  let status = '';
  try {
    status = execFileSync('dpkg-query', ['-W', '-f=${Status} ${Version}', pkg], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return null;
  }
  return /^install ok installed (\S+)$/.exec(status.trim())?.[1] ?? null;
}

async function aptGet(args: string[], cwd?: string): Promise<void> {
  const options: Options = {
    env: { DEBIAN_FRONTEND: 'noninteractive' },
    ...(cwd === undefined ? {} : { cwd }),
    timeout: 300_000,
  };
  let result = await run('apt-get', args, options);
  if (result.exitCode !== 0) {
    // No package lists yet (a fresh machine): fetch them once and retry.
    await run('apt-get', ['update', '-qq'], options);
    result = await run('apt-get', args, options);
  }
  if (result.exitCode !== 0)
    throw new Error(`apt-get ${args.join(' ')} failed (${result.exitCode}):\n${result.all}`);
}

/**
 * Debian packages built from systemd's source (udev, systemd-container),
 * installed when missing, at the installed systemd's version so that the
 * install upgrades nothing else; any version if the archive has that no more.
 */
export async function ensureSystemdPackage(pkg: string): Promise<void> {
  if (installedVersion(pkg) !== null) return;
  const systemd = installedVersion('systemd');
  const install = ['install', '-y', '-qq', '--no-install-recommends'];
  try {
    await aptGet([...install, systemd === null ? pkg : `${pkg}=${systemd}`]);
  } catch {
    await aptGet([...install, pkg]);
  }
  if (installedVersion(pkg) === null) throw new Error(`${pkg} is still not installed`);
}

/** Debian packages downloaded (not installed) into packaging/.cache/debs; their paths. */
export async function downloadDebs(packages: readonly string[]): Promise<string[]> {
  const cache = join(PACKAGING, '.cache', 'debs');
  mkdirSync(cache, { recursive: true });
  const found = (pkg: string): string | undefined =>
    readdirSync(cache).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  const missing = packages.filter((pkg) => found(pkg) === undefined);
  if (missing.length > 0) await aptGet(['download', '-qq', ...missing], cache);
  return packages.map((pkg) => {
    const deb = found(pkg);
    if (deb === undefined) throw new Error(`apt-get download ${pkg} left no .deb in ${cache}`);
    return join(cache, deb);
  });
}

/** The tarballs a service needs: the daemon and stevie, emerge-shim, the pytest plugin. */
export function serviceTarballs(tarballs: string): string[] {
  const names = ['steve-daemon-', 'emerge-shim-', 'steve-pytest-bridge-'];
  const files = readdirSync(tarballs);
  return names.map((name) => {
    const file = files.find((f) => f.startsWith(name) && f.endsWith('.tgz'));
    if (file === undefined) throw new Error(`no ${name}*.tgz in ${tarballs}`);
    return join(tarballs, file);
  });
}

/** `npm install -g --prefix PREFIX` of the service tarballs, offline (they bundle all). */
export async function npmInstallGlobal(tarballs: string, prefix: string): Promise<void> {
  const result = await run(
    'npm',
    [
      'install',
      '--global',
      '--offline',
      '--no-audit',
      '--no-fund',
      '--no-update-notifier',
      '--prefix',
      prefix,
      ...serviceTarballs(tarballs),
    ],
    { timeout: 180_000 },
  );
  if (result.exitCode !== 0) throw new Error(`npm install -g --prefix ${prefix}:\n${result.all}`);
}

/** A copy of the packaging tree in `dir` (so that tests may edit it); its path. */
export function copyPackaging(dir: string): string {
  const into = join(dir, 'packaging');
  for (const part of ['gentoo', 'systemd', 'openrc', 'udev', 'tmpfiles.d', 'sysusers.d']) {
    cpSync(join(PACKAGING, part), join(into, part), { recursive: true, verbatimSymlinks: true });
  }
  return into;
}

export interface RootRun {
  readonly exitCode: number;
  readonly output: string;
  /** key=value lines the guest wrote to /results/report (last value wins). */
  readonly report: Map<string, string>;
  /** The guest's own log (/results/guest.log). */
  readonly guestLog: string;
  readonly results: string;
}

/**
 * Run `guest` (a bash script) in a throw-away copy of this machine's root
 * (test/fixtures/overlay-root.sh): booted with systemd as PID 1 in a
 * container (`nspawn`), or in a chroot (`chroot`). `prepare` is bash run on
 * the host side first, with $ROOT the copy's root.
 */
export async function runInRootCopy(
  mode: 'nspawn' | 'chroot',
  prepare: string,
  guest: string,
  timeoutSeconds: number,
): Promise<RootRun> {
  const work = tempDir(`steve-${mode}-`);
  const prepareFile = join(work, 'prepare.sh');
  const guestFile = join(work, 'guest.sh');
  writeFileSync(prepareFile, `set -euo pipefail\n${prepare}\n`);
  writeFileSync(guestFile, `#!/bin/bash\n${guest}\n`, { mode: 0o755 });
  const result = await run(
    'bash',
    [join(FIXTURES, 'overlay-root.sh'), mode, work, prepareFile, guestFile, String(timeoutSeconds)],
    { timeout: (timeoutSeconds + 60) * 1000 },
  );
  const results = join(work, 'results');
  const read = (file: string): string =>
    existsSync(join(results, file)) ? readFileSync(join(results, file), 'utf8') : '';
  const report = new Map<string, string>();
  for (const line of read('report').split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) report.set(line.slice(0, at), line.slice(at + 1));
  }
  return {
    exitCode: result.exitCode,
    output: result.all,
    report,
    guestLog: read('guest.log'),
    results,
  };
}
