import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The plugin's Python module: `-p steve_jobserver`. */
export const PLUGIN_MODULE = 'steve_jobserver';

/** Debian's python3 (the one Portage and Debian's python3-pytest use). */
export const DEFAULT_PYTHON = '/usr/bin/python3';

/** The directory that holds the `steve_jobserver` package and its pyproject.toml. */
export function pythonDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', 'python');
}

export interface EnvLinesOptions {
  /** The environment to extend (default `process.env`): existing values are kept. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** `export NAME='value'` for a shell (default), or `NAME="value"` for make.conf / package.env. */
  readonly style?: 'shell' | 'plain';
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * The lines that make pytest (and Gentoo's epytest) load the plugin without
 * installing it: PYTHONPATH gains the plugin's directory, EPYTEST_FLAGS gains
 * `-p steve_jobserver`.
 *
 * @example
 * envLines({ env: {} })
 * // ["export PYTHONPATH='/…/pytest-bridge/python'", "export EPYTEST_FLAGS='-p steve_jobserver'"]
 *
 * Errors: none.
 */
export function envLines(options: EnvLinesOptions = {}): string[] {
  const env = options.env ?? process.env;
  const dir = pythonDir();
  const pythonPath = (env.PYTHONPATH ?? '').split(':').filter((p) => p !== '');
  if (!pythonPath.includes(dir)) pythonPath.unshift(dir);
  const loadFlag = `-p ${PLUGIN_MODULE}`;
  const existingFlags = (env.EPYTEST_FLAGS ?? '').trim();
  const loaded = new RegExp(`(^|\\s)-p\\s*${PLUGIN_MODULE}(\\s|$)`).test(existingFlags);
  const flags =
    loaded || existingFlags === '' ? existingFlags || loadFlag : `${loadFlag} ${existingFlags}`;
  const values: Array<[string, string]> = [
    ['PYTHONPATH', pythonPath.join(':')],
    ['EPYTEST_FLAGS', flags],
  ];
  return values.map(([name, value]) =>
    options.style === 'plain'
      ? `${name}="${value.replace(/(["\\$`])/g, '\\$1')}"`
      : `export ${name}=${shellQuote(value)}`,
  );
}

/** The `pyproject.toml` path (what pip installs). */
export function pyprojectPath(): string {
  return join(pythonDir(), 'pyproject.toml');
}
