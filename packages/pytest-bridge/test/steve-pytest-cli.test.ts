// steve-pytest: `env` lines that really make pytest load the plugin,
// `install` through pip (offline, into a temp --target) so pytest finds the
// entry point, and clear messages when pip or pytest are missing.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { envLines, installCommand, pythonDir } from '../src/index.js';
import { CLI, PLUGIN_DIR, PYTHON, cleanEnv, summaryLine, tempDir } from './helpers.js';

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

describe('steve-pytest env', () => {
  it('prints PYTHONPATH and EPYTEST_FLAGS, keeping what is already set', () => {
    expect(envLines({ env: {} })).toEqual([
      `export PYTHONPATH='${PLUGIN_DIR}'`,
      "export EPYTEST_FLAGS='-p steve_jobserver'",
    ]);
    expect(envLines({ env: { PYTHONPATH: '/x', EPYTEST_FLAGS: '-x' }, style: 'plain' })).toEqual([
      `PYTHONPATH="${PLUGIN_DIR}:/x"`,
      'EPYTEST_FLAGS="-p steve_jobserver -x"',
    ]);
    const twice = { PYTHONPATH: PLUGIN_DIR, EPYTEST_FLAGS: '-p steve_jobserver' };
    expect(envLines({ env: twice, style: 'plain' })).toEqual([
      `PYTHONPATH="${PLUGIN_DIR}"`,
      'EPYTEST_FLAGS="-p steve_jobserver"',
    ]);
    expect(pythonDir()).toBe(PLUGIN_DIR);
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

  it('rejects unknown commands and options', () => {
    expect(cli(['frobnicate']).code).toBe(2);
    const bad = cli(['env', '--bogus']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('unknown option --bogus');
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
