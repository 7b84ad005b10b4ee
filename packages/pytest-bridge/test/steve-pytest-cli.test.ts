// steve-pytest: `env` lines that really make pytest load the plugin and do
// not point make.conf at a clone or a temp dir without saying so; `install`
// through pip (offline, into a temp --target) so pytest finds the entry
// point, and clear messages when pip or pytest are missing; --help,
// --version and one-line usage errors (exit 2).
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  envLines,
  installCommand,
  pluginInstalled,
  pythonDir,
  transientLocation,
} from '../src/index.js';
import { CLI, PACKAGE, PLUGIN_DIR, PYTHON, cleanEnv, summaryLine, tempDir } from './helpers.js';

let dir: string | null = null;
afterEach(() => {
  if (dir !== null) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

function cli(args: string[], env: NodeJS.ProcessEnv = cleanEnv()) {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    env,
    encoding: 'utf8',
    timeout: 300_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function oneTestSuite(at: string): string {
  const suite = join(at, 'suite');
  mkdirSync(suite);
  writeFileSync(join(suite, 'test_one.py'), 'def test_one():\n    pass\n');
  return suite;
}

/** A stand-in interpreter that imports the plugin (installed) or not; it answers only the probe. */
function standInPython(at: string, installed: boolean): string {
  const path = join(at, installed ? 'python-with-plugin' : 'python-without-plugin');
  writeFileSync(
    path,
    `#!/bin/sh\n[ "$1 $2 $3" = "-E -c import steve_jobserver" ] && exit ${installed ? 0 : 1}\nexit 3\n`,
  );
  chmodSync(path, 0o755);
  return path;
}

/** What the end-to-end test takes from `steve-pytest env` (PYTHONPATH='…' or "…"). */
function pythonPathOf(output: string): string | undefined {
  return /PYTHONPATH=['"]?([^'"\s]+)/.exec(output)?.[1];
}

describe('steve-pytest env', () => {
  it('prints PYTHONPATH and EPYTEST_FLAGS when python3 cannot import the plugin, keeping what is set', () => {
    const [comment, ...lines] = envLines({ env: {}, installed: false });
    // This package is in a git checkout here: make.conf would point into it.
    expect(comment).toMatch(/^# steve-pytest: .*git checkout.*`steve-pytest install`/);
    expect(lines).toEqual([
      `export PYTHONPATH='${PLUGIN_DIR}'`,
      "export EPYTEST_FLAGS='-p steve_jobserver'",
    ]);
    expect(
      envLines({
        env: { PYTHONPATH: '/x', EPYTEST_FLAGS: '-x' },
        style: 'plain',
        installed: false,
      }),
    ).toEqual([comment, `PYTHONPATH="${PLUGIN_DIR}:/x"`, 'EPYTEST_FLAGS="-p steve_jobserver -x"']);
    const twice = { PYTHONPATH: PLUGIN_DIR, EPYTEST_FLAGS: '-p steve_jobserver' };
    expect(envLines({ env: twice, style: 'plain', installed: false }).slice(1)).toEqual([
      `PYTHONPATH="${PLUGIN_DIR}"`,
      'EPYTEST_FLAGS="-p steve_jobserver"',
    ]);
    expect(pythonDir()).toBe(PLUGIN_DIR);
  });

  it('prints only EPYTEST_FLAGS when python3 imports the installed plugin', () => {
    expect(envLines({ env: {}, installed: true })).toEqual([
      "export EPYTEST_FLAGS='-p steve_jobserver'",
    ]);
    expect(envLines({ env: { EPYTEST_FLAGS: '-x' }, style: 'plain', installed: true })).toEqual([
      'EPYTEST_FLAGS="-p steve_jobserver -x"',
    ]);
  });

  it('knows a git checkout, a temporary directory and a proper place apart', () => {
    dir = tempDir();
    expect(transientLocation(dir)).toMatch(/^a temporary directory/);
    mkdirSync(join(dir, 'clone', '.git'), { recursive: true });
    mkdirSync(join(dir, 'clone', 'packages', 'python'), { recursive: true });
    expect(transientLocation(join(dir, 'clone', 'packages', 'python'))).toMatch(
      /^a git checkout \(.*clone\)$/,
    );
    expect(transientLocation('/usr/lib')).toBeNull();
    expect(pluginInstalled(join(dir, 'nowhere'))).toBe(false);
  });

  it('env --plain >> make.conf never points into this clone without saying to install the plugin', () => {
    // As a user runs it: /usr/bin/python3 decides. Installed: no PYTHONPATH at
    // all; not installed: a comment first that names `steve-pytest install`.
    const result = cli(['env', '--plain']);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines.at(-1)).toBe('EPYTEST_FLAGS="-p steve_jobserver"');
    if (pluginInstalled(PYTHON)) {
      expect(lines).toHaveLength(1);
    } else {
      expect(lines).toHaveLength(3);
      expect(lines[0]).toMatch(/^# .*git checkout.*`steve-pytest install`/);
      expect(pythonPathOf(lines[1] ?? '')).toBe(PLUGIN_DIR);
    }
  });

  it('env --plain from a clone, plugin not installed: PYTHONPATH plus a comment to install it', () => {
    dir = tempDir();
    const result = cli(['env', '--plain', '--python', standInPython(dir, false)]);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^# .*git checkout.*steve-pytest install/);
    expect(lines.slice(1)).toEqual([
      `PYTHONPATH="${PLUGIN_DIR}"`,
      'EPYTEST_FLAGS="-p steve_jobserver"',
    ]);
    expect(pythonPathOf(result.stdout)).toBe(PLUGIN_DIR);
  });

  it('env with the plugin installed: only EPYTEST_FLAGS, nothing points at the clone', () => {
    dir = tempDir();
    const python = standInPython(dir, true);
    const plain = cli(['env', '--plain', '--python', python]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toBe('EPYTEST_FLAGS="-p steve_jobserver"\n');
    expect(cli(['env', '--python', python]).stdout).toBe(
      "export EPYTEST_FLAGS='-p steve_jobserver'\n",
    );
  });

  it('env from a package in a temporary directory: the comment says so', () => {
    dir = tempDir();
    const copy = join(dir, 'pytest-bridge');
    for (const part of ['bin', 'dist', 'python', 'package.json']) {
      cpSync(join(PACKAGE, part), join(copy, part), { recursive: true });
    }
    symlinkSync(join(PACKAGE, 'node_modules'), join(copy, 'node_modules'));
    const result = spawnSync(
      process.execPath,
      [join(copy, 'bin', 'steve-pytest.js'), 'env', '--python', standInPython(dir, false)],
      { env: cleanEnv(), encoding: 'utf8', timeout: 60_000 },
    );
    expect(result.status, result.stderr).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^# .*a temporary directory.*steve-pytest install/);
    expect(pythonPathOf(result.stdout)).toBe(join(copy, 'python'));
  });

  it('eval "$(steve-pytest env)" makes pytest load the plugin (autoload off, as epytest runs it)', () => {
    dir = tempDir();
    const suite = oneTestSuite(dir);
    const result = spawnSync(
      'bash',
      [
        '-c',
        `eval "$("${process.execPath}" "${CLI}" env)" && exec ${PYTHON} -m pytest -p no:cacheprovider $EPYTEST_FLAGS`,
      ],
      { cwd: suite, env: cleanEnv(), encoding: 'utf8', timeout: 60_000 },
    );
    expect(result.status, result.stdout + result.stderr).toBe(0);
    expect(summaryLine(result.stdout)).toContain('1 tests run in one process');
  });
});

describe('steve-pytest command line', () => {
  it('a mistyped command or an unknown option is one line on stderr and exit 2', () => {
    for (const [args, message] of [
      [['evn'], "Unknown command: evn; did you mean 'steve-pytest env'?"],
      [['isntall', '--user'], "did you mean 'steve-pytest install'?"],
      [['env', '--bogus'], "unknown option '--bogus'"],
      // Not "a command is needed": the option is what is wrong.
      [['--bogus'], "unknown option '--bogus'"],
      [['install', '--python'], 'python'],
      [['path', 'extra'], 'extra'],
      [[], 'a command is needed'],
    ] as const) {
      const result = cli([...args]);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(/^steve-pytest: [^\n]*\(see steve-pytest --help\)\n$/);
      expect(result.stderr).toContain(message);
    }
  });

  it('--version prints the package version', () => {
    const { version } = JSON.parse(readFileSync(join(PACKAGE, 'package.json'), 'utf8')) as {
      version: string;
    };
    const result = cli(['--version']);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${version}\n`);
  });

  it('--help lists the commands and --version; COMMAND --help shows its options', () => {
    for (const args of [['--help'], ['-h'], ['help']]) {
      const result = cli(args);
      expect(result.code, args.join(' ')).toBe(0);
      for (const word of ['--version', '--help', 'env', 'install', 'path', 'steve-daemon']) {
        expect(result.stdout).toContain(word);
      }
    }
    const env = cli(['env', '--help']);
    expect(env.code).toBe(0);
    expect(env.stdout).toContain('--plain');
    const install = cli(['install', '--help']);
    expect(install.code).toBe(0);
    expect(install.stdout).toContain('--dry-run');
    expect(install.stdout).toContain('--python');
  });
});

describe('steve-pytest install', () => {
  it('installs offline with --no-build-isolation; pytest then finds the pytest11 entry point', () => {
    dir = tempDir();
    const site = join(dir, 'site');
    const installed = cli(['install', '--target', site, '--no-deps']);
    expect(installed.code, installed.stdout + installed.stderr).toBe(0);
    expect(installed.stdout).toContain('Successfully installed steve-jobserver-0.1.0');
    const suite = oneTestSuite(dir);
    // Autoload on: the entry point alone loads it. Autoload off: -p finds the installed module.
    for (const [autoload, args] of [
      ['', []],
      ['1', ['-p', 'steve_jobserver']],
    ] as const) {
      const env = cleanEnv({ PYTHONPATH: site });
      if (autoload === '') delete env.PYTEST_DISABLE_PLUGIN_AUTOLOAD;
      const run = spawnSync(PYTHON, ['-m', 'pytest', '-p', 'no:cacheprovider', ...args], {
        cwd: suite,
        env,
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(run.status, run.stdout + run.stderr).toBe(0);
      expect(summaryLine(run.stdout)).toContain('1 tests run in one process');
    }
  });

  it('--dry-run prints the pip command', () => {
    const result = cli(['install', '--dry-run', '--user']);
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toBe(installCommand(PYTHON, PLUGIN_DIR, ['--user']).join(' '));
    expect(result.stdout).toContain('-m pip install --no-build-isolation --no-index --user');
  });

  it('everything after -- goes to pip, even the options steve-pytest has itself', () => {
    const result = cli([
      'install',
      '--dry-run',
      '--user',
      '--',
      '--dry-run',
      '--python',
      '/x',
      '007',
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe(
      installCommand(PYTHON, PLUGIN_DIR, ['--user', '--dry-run', '--python', '/x', '007']).join(
        ' ',
      ),
    );
  });

  it('says to apt-get install python3-pip when pip is missing, python3-pytest when pytest is', () => {
    dir = tempDir();
    const noPip = join(dir, 'python-without-pip');
    writeFileSync(noPip, '#!/bin/sh\necho "No module named pip" >&2\nexit 1\n');
    const noPytest = join(dir, 'python-without-pytest');
    writeFileSync(noPytest, '#!/bin/sh\n[ "$1 $2" = "-m pip" ] && exit 0\nexit 1\n');
    chmodSync(noPip, 0o755);
    chmodSync(noPytest, 0o755);
    const pip = cli(['install', '--python', noPip]);
    expect(pip.code).toBe(1);
    expect(pip.stderr).toBe(
      `steve-pytest: pip is missing for ${noPip}; apt-get install python3-pip\n`,
    );
    const pytest = cli(['install', '--python', noPytest]);
    expect(pytest.code).toBe(1);
    expect(pytest.stderr).toContain('apt-get install python3-pytest python3-pytest-xdist');
    expect(cli(['install', '--python', join(dir, 'nowhere')]).stderr).toContain(
      'no Python interpreter at',
    );
  });

  it("explains Debian's externally-managed-environment refusal (PEP 668)", () => {
    // Debian 12's python3 is externally managed: pip refuses a plain install.
    // A stand-in interpreter answers like it (no system is changed here).
    dir = tempDir();
    const managed = join(dir, 'python-externally-managed');
    writeFileSync(
      managed,
      '#!/bin/sh\nif [ "$1 $2 $3" = "-m pip install" ]; then echo "error: externally-managed-environment" >&2; exit 1; fi\nexit 0\n',
    );
    chmodSync(managed, 0o755);
    const result = cli(['install', '--python', managed]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('managed by the distribution (PEP 668)');
    expect(result.stderr).toContain('steve-pytest install --break-system-packages');
    expect(result.stderr).toContain('eval "$(steve-pytest env)"');
  });
});
