import { accessSync, constants, cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { execaSync } from 'execa';
import { DEFAULT_PYTHON, pythonDir } from './env.js';
import { PytestBridgeError } from './errors.js';

export interface InstallOptions {
  /** The interpreter whose pip installs the plugin (default `/usr/bin/python3`). */
  readonly python?: string;
  /** More arguments for `pip install` (`--user`, `--target DIR`, `--break-system-packages`, `--no-deps`). */
  readonly pipArgs?: readonly string[];
  /** Print the pip command instead of running it. */
  readonly dryRun?: boolean;
  /** Where pip's output goes (default: collected and returned). */
  readonly onOutput?: (text: string) => void;
}

export interface InstallResult {
  /** The command that ran (argv). */
  readonly command: readonly string[];
  readonly output: string;
}

function probe(python: string, args: string[]): { ok: boolean; output: string } {
  const result = execaSync(python, args, { reject: false, stdin: 'ignore', timeout: 60_000 });
  return { ok: result.exitCode === 0, output: `${result.stdout}${result.stderr}` };
}

/** The pip command `install` runs, for a source directory. */
export function installCommand(
  python: string,
  sourceDir: string,
  pipArgs: readonly string[] = [],
): string[] {
  // --no-build-isolation: build with the system's setuptools instead of
  // fetching a fresh one from PyPI; --no-index: never ask PyPI at all.
  return [
    python,
    '-m',
    'pip',
    'install',
    '--no-build-isolation',
    '--no-index',
    ...pipArgs,
    sourceDir,
  ];
}

/**
 * Install the plugin with the system's pip, offline, so pytest finds it
 * through its `pytest11` entry point (then `-p steve_jobserver` works without
 * PYTHONPATH, and pytest loads it on its own unless plugin autoloading is off).
 *
 * @example
 * await install({ pipArgs: ['--break-system-packages'] }); // Debian 12, system-wide, as root
 *
 * Errors: PytestBridgeError when the interpreter, pip, pytest or setuptools
 * is missing (with the apt-get line that fixes it) and when pip fails (with
 * its output; for Debian's "externally-managed-environment" the choices).
 */
export function install(options: InstallOptions = {}): InstallResult {
  const python = options.python ?? DEFAULT_PYTHON;
  try {
    accessSync(python, constants.X_OK);
  } catch {
    throw new PytestBridgeError(
      `no Python interpreter at ${python}`,
      'apt-get install python3, or pass --python PATH',
    );
  }
  const command = installCommand(python, pythonDir(), options.pipArgs);
  if (options.dryRun) return { command, output: '' };
  if (!probe(python, ['-m', 'pip', '--version']).ok) {
    throw new PytestBridgeError(`pip is missing for ${python}`, 'apt-get install python3-pip');
  }
  if (!probe(python, ['-c', 'import pytest']).ok) {
    throw new PytestBridgeError(
      `pytest is missing for ${python}`,
      'apt-get install python3-pytest python3-pytest-xdist',
    );
  }
  if (!probe(python, ['-c', 'import setuptools, wheel']).ok) {
    throw new PytestBridgeError(
      `setuptools or wheel is missing for ${python} (pip --no-build-isolation builds with them)`,
      'apt-get install python3-setuptools python3-wheel',
    );
  }
  // pip builds in the source tree (build/, *.egg-info): build from a copy so
  // the package directory (maybe read-only, in node_modules) stays clean.
  const work = mkdtempSync(join(tmpdir(), 'steve-pytest-install-'));
  try {
    const source = join(work, 'steve-jobserver');
    cpSync(pythonDir(), source, {
      recursive: true,
      filter: (path) =>
        !['__pycache__', 'build', 'tests'].includes(basename(path)) && !path.endsWith('.egg-info'),
    });
    const argv = installCommand(python, source, options.pipArgs);
    const result = execaSync(argv[0] as string, argv.slice(1), {
      reject: false,
      stdin: 'ignore',
      stripFinalNewline: false,
      timeout: 300_000,
    });
    const output = `${result.stdout}${result.stderr}`;
    options.onOutput?.(output);
    if (result.exitCode !== 0) {
      if (output.includes('externally-managed-environment')) {
        throw new PytestBridgeError(
          `pip refused: ${python} is managed by the distribution (PEP 668)`,
          'install anyway with `steve-pytest install --break-system-packages` (as root: into /usr/local), ' +
            'or do not install and use `eval "$(steve-pytest env)"` (PYTHONPATH)',
        );
      }
      throw new PytestBridgeError(
        `${argv.join(' ')} failed (${result.exitCode !== undefined ? `exit ${result.exitCode}` : (result.signal ?? result.shortMessage)}):\n${output.trim()}`,
        'see pip’s message above',
      );
    }
    return { command: argv, output };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
