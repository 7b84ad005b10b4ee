import { existsSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execaSync } from 'execa';

/** The plugin's Python module: `-p steve_jobserver`. */
export const PLUGIN_MODULE = 'steve_jobserver';

/** Debian's python3 (the one Portage and Debian's python3-pytest use). */
export const DEFAULT_PYTHON = '/usr/bin/python3';

/** The directory that holds the `steve_jobserver` package and its pyproject.toml. */
export function pythonDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', 'python');
}

/**
 * Whether `python` imports the plugin by itself (pip-installed, e.g. by
 * `steve-pytest install`): `-E` ignores PYTHONPATH and the other PYTHON*
 * variables, and it runs in `/` so the current directory adds nothing.
 *
 * Errors: none (a missing interpreter is "not installed").
 */
export function pluginInstalled(python: string = DEFAULT_PYTHON): boolean {
  const result = execaSync(python, ['-E', '-c', `import ${PLUGIN_MODULE}`], {
    cwd: '/',
    reject: false,
    stdin: 'ignore',
    timeout: 60_000,
  });
  return result.exitCode === 0;
}

function realPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

function isInside(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith(sep) ? dir : `${dir}${sep}`);
}

/**
 * Why `dir` is no place for make.conf to point at, or null: inside a git
 * checkout (a `.git` in it or above it), a temporary directory, or npx's
 * cache (which npm empties).
 *
 * @example
 * transientLocation('/home/me/src/steve/packages/pytest-bridge/python')
 * // 'a git checkout (/home/me/src/steve)'
 */
export function transientLocation(dir: string): string | null {
  const real = realPath(dir);
  for (let at = real; ; at = dirname(at)) {
    if (existsSync(join(at, '.git'))) return `a git checkout (${at})`;
    if (dirname(at) === at) break;
  }
  const temporary = new Set([realPath(tmpdir()), '/tmp', '/var/tmp', '/dev/shm']);
  for (const temp of temporary) if (isInside(real, temp)) return `a temporary directory (${temp})`;
  if (real.split(sep).includes('_npx')) return "npx's cache, which npm may empty";
  return null;
}

export interface EnvLinesOptions {
  /** The environment to extend (default `process.env`): existing values are kept. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** `export NAME='value'` for a shell (default), or `NAME="value"` for make.conf / package.env. */
  readonly style?: 'shell' | 'plain';
  /** The interpreter that should find the plugin (default `/usr/bin/python3`). */
  readonly python?: string;
  /** Whether that interpreter imports the plugin on its own (default: ask it, see pluginInstalled). */
  readonly installed?: boolean;
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * The lines that make pytest (and Gentoo's epytest) load the plugin. When
 * the system's python3 imports it already (`steve-pytest install`), only
 * EPYTEST_FLAGS gains `-p steve_jobserver`. Otherwise PYTHONPATH also gains
 * this package's `python/` directory, preceded by a `#` comment when that
 * directory is a git checkout or a temporary directory (make.conf would
 * break when it moves): the comment says to run `steve-pytest install`.
 *
 * @example
 * envLines({ env: {}, installed: true })
 * // ["export EPYTEST_FLAGS='-p steve_jobserver'"]
 * envLines({ env: {}, installed: false })
 * // ["export PYTHONPATH='/usr/lib/node_modules/@steve/pytest-bridge/python'", "export EPYTEST_FLAGS='-p steve_jobserver'"]
 *
 * Errors: none.
 */
export function envLines(options: EnvLinesOptions = {}): string[] {
  const env = options.env ?? process.env;
  const installed = options.installed ?? pluginInstalled(options.python);
  const loadFlag = `-p ${PLUGIN_MODULE}`;
  const existingFlags = (env.EPYTEST_FLAGS ?? '').trim();
  const loaded = new RegExp(`(^|\\s)-p\\s*${PLUGIN_MODULE}(\\s|$)`).test(existingFlags);
  const flags =
    loaded || existingFlags === '' ? existingFlags || loadFlag : `${loadFlag} ${existingFlags}`;
  const values: Array<[string, string]> = [];
  const comments: string[] = [];
  if (!installed) {
    const dir = pythonDir();
    const pythonPath = (env.PYTHONPATH ?? '').split(':').filter((p) => p !== '');
    if (!pythonPath.includes(dir)) pythonPath.unshift(dir);
    values.push(['PYTHONPATH', pythonPath.join(':')]);
    const where = transientLocation(dir);
    if (where !== null) {
      comments.push(
        `# steve-pytest: the plugin's directory is in ${where}; this line breaks when that moves or is cleaned. ` +
          `Install the plugin properly with \`steve-pytest install\` (then EPYTEST_FLAGS alone loads it)`,
      );
    }
  }
  values.push(['EPYTEST_FLAGS', flags]);
  return [
    ...comments,
    ...values.map(([name, value]) =>
      options.style === 'plain'
        ? `${name}="${value.replace(/(["\\$`])/g, '\\$1')}"`
        : `export ${name}=${shellQuote(value)}`,
    ),
  ];
}

/** The `pyproject.toml` path (what pip installs). */
export function pyprojectPath(): string {
  return join(pythonDir(), 'pyproject.toml');
}
