// Real Portage for the tests: the releases in the project's test peers
// (../shared/peers/ beside the checkout, or $STEVE_PEERS_DIR), checked
// against their SHA256SUMS, unpacked into a temp dir and run from their
// source tree in a throw-away prefix made by Portage's own test harness
// (test/fixtures/portage-playground.py, on @steve/test-support's
// steve_portage.py). Nothing of Portage is copied into the project.
import { appendFileSync, existsSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { portageHelperDir, portageSource as sharedPortageSource } from '@steve/test-support';
import { execaSync } from 'execa';
import { PACKAGE, REPO, tempDir } from './helpers.js';

/** The interpreter Debian's pytest-xdist is installed for; Portage runs on it too. */
export const SYSTEM_PYTHON = '/usr/bin/python3';

/**
 * An unpacked Portage release (@steve/test-support's portageSource), in a
 * temp dir that removeTempDirs() removes.
 */
export function portageSource(version: string): string {
  return sharedPortageSource(version, tempDir);
}

export interface PackageSpec {
  readonly name: string;
  readonly compile?: { readonly sleep?: number; readonly make?: number };
  readonly test?: { readonly pytest: number; readonly workers: number; readonly sleep: number };
}

export interface Playground {
  /** `emerge` and `portageq` of the real Portage, for this prefix. */
  readonly bin: string;
  readonly makeConf: string;
  readonly stamps: string;
  /** The stamp lines so far (`start NAME NS`, `end NAME NS`, `env NAME …`). */
  stampLines(): string[];
  /** pytest's output in src_test. */
  pytestLog(): string;
  appendMakeConf(lines: string): void;
}

/** A directory with `make` → GNU make 4.4.1 (Gentoo's make), built by the repo's test set-up. */
export function make441Dir(): string {
  const dir = tempDir('make-4.4.1-bin-');
  const built = execaSync('bash', [join(REPO, 'scripts', 'build-make-4.4.1.sh')], {
    timeout: 300_000,
  });
  const binary = built.stdout.trim().split('\n').pop() ?? '';
  symlinkSync(binary, join(dir, 'make'));
  return dir;
}

/** A prefix with real Portage `version` and dev-libs/NAME-1 ebuilds for `packages`. */
export function portagePlayground(
  version: string,
  packages: readonly PackageSpec[],
  options: { makeConf?: readonly string[]; path?: readonly string[] } = {},
): Playground {
  const dir = tempDir(`portage-playground-${version}-`);
  const stamps = join(dir, 'stamps');
  const spec = {
    packages,
    makeConf: options.makeConf ?? [],
    stamps,
    path: options.path ?? [],
    python: SYSTEM_PYTHON,
  };
  const made = execaSync(
    SYSTEM_PYTHON,
    [
      join(PACKAGE, 'test', 'fixtures', 'portage-playground.py'),
      portageSource(version),
      dir,
      JSON.stringify(spec),
    ],
    { timeout: 60_000, env: { PYTHONPATH: portageHelperDir() } },
  );
  const { bin, eprefix } = JSON.parse(made.stdout.trim().split('\n').pop() ?? '{}') as {
    bin: string;
    eprefix: string;
  };
  const makeConf = join(eprefix, 'etc', 'portage', 'make.conf');
  const read = (path: string): string => (existsSync(path) ? readFileSync(path, 'utf8') : '');
  return {
    bin,
    makeConf,
    stamps,
    stampLines: () => read(stamps).split('\n').filter(Boolean),
    pytestLog: () => read(`${stamps}.pytest.log`),
    appendMakeConf: (lines) => appendFileSync(makeConf, `\n${lines}\n`),
  };
}
