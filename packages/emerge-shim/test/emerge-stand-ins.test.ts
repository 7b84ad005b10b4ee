// emerge-shim with scripted `emerge` stand-ins on PATH (Portage is not on
// Debian): each prints a `Portage 3.0.NN (...)` version line and records
// its argv, environment and the daemon's status file while it "runs".
// Covers both version branches (and 3.0.74/3.0.75), a missing pool,
// --jobs given or not, MAKEOPTS with and without -j/-l, --print-env and
// --print-make-conf, against the real daemon on a FUSE mount.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_DEVICE_PATH, DEFAULT_FUSE_JOBSERVER_PATH } from '@steve/protocol';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/exit-codes.js';
import {
  type Daemon,
  EMERGE_SHIM_BIN,
  PACKAGE,
  cleanEnv,
  maxConcurrency,
  pathWith,
  removeTempDirs,
  run,
  startDaemon,
  stopAll,
  tempDir,
  waitFor,
  writeScript,
} from './helpers.js';

interface Record {
  argv: string[];
  env: { [name: string]: string | null };
  status: string;
}

/** A bin dir whose `emerge` says it is Portage `version` and records what it got. */
function standIn(version: string | null, exitStatus = 0): { bin: string; record: string } {
  const bin = tempDir('emerge-standin-');
  const record = join(bin, 'record.json');
  const versionLine =
    version === null
      ? 'emerge: this is not Portage'
      : `Portage ${version} (python 3.12.8-final-0, default/linux/amd64/23.0, gcc-14, glibc-2.40-r8, 6.12.1 x86_64)`;
  writeScript(
    join(bin, 'emerge'),
    `#!/usr/bin/python3
import json, os, sys
if sys.argv[1:] == ["--version"]:
    print(${JSON.stringify(versionLine)})
    sys.exit(0)
status = os.environ.get("STANDIN_STATUS")
record = {
    "argv": sys.argv[1:],
    "env": {k: os.environ.get(k) for k in ["MAKEFLAGS", "FEATURES", "MAKEOPTS", "CARGO_MAKEFLAGS"]},
    "status": open(status).read() if status else "",
}
with open(${JSON.stringify(record)}, "w") as f:
    json.dump(record, f)
sys.exit(${exitStatus})
`,
  );
  return { bin, record };
}

let steve: Daemon;
beforeAll(async () => {
  steve = await startDaemon(['-j', '6']);
});
afterAll(async () => {
  await steve.stop();
});
afterEach(async () => {
  await stopAll();
  removeTempDirs();
});

async function shim(
  args: string[],
  { bin, env = {} }: { bin: string; env?: NodeJS.ProcessEnv },
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = run(process.execPath, [EMERGE_SHIM_BIN, ...args], {
    env: cleanEnv({
      PATH: pathWith(bin),
      STEVE_CONTROL: steve.controlPath,
      STANDIN_STATUS: steve.statusPath,
      ...env,
    }),
  });
  const { code } = await child.exited;
  return { code, stdout: child.stdout, stderr: child.stderr };
}

const readRecord = (path: string): Record => JSON.parse(readFileSync(path, 'utf8')) as Record;
const systemPool = existsSync(DEFAULT_DEVICE_PATH) || existsSync(DEFAULT_FUSE_JOBSERVER_PATH);

describe('Portage >= 3.0.76', () => {
  it('emerge runs holding one token, MAKEFLAGS = fifo auth + MAKEOPTS -l, FEATURES += jobserver-token, --jobs = pool size', async () => {
    const emerge = standIn('3.0.76', 1);
    const result = await shim(['-uDN', '@world'], {
      bin: emerge.bin,
      env: { MAKEOPTS: '-j12 -l10', FEATURES: 'buildpkg' },
    });
    expect(result.code).toBe(1); // emerge's status
    const record = readRecord(emerge.record);
    expect(record.argv).toEqual(['--jobs=6', '-uDN', '@world']);
    expect(record.env.MAKEFLAGS).toBe(` -l10 --jobserver-auth=fifo:${steve.jobserverPath}`);
    expect(record.env.FEATURES).toBe('buildpkg jobserver-token');
    expect(record.env.MAKEOPTS).toBe('-j12 -l10'); // left for Portage (emake drops it)
    // While emerge ran: one token out, held by emerge-shim.
    expect(record.status).toMatch(/ out 1 /);
    expect(record.status).toMatch(/pid \d+ +tokens 1 .*emerge-shim\.js -uDN @world/);
    expect(result.stderr).toContain(
      "emerge-shim: Portage 3.0.76: FEATURES=jobserver-token; emerge's first job runs on the token emerge-shim holds",
    );
    expect(result.stderr).not.toContain('warning');
    await waitFor('the token back', () => steve.out() === 0);
  });

  it.each([
    [['--jobs', '3', '-uDN', '@world']],
    [['--jobs=3', '@world']],
    [['-j3', '@world']],
    [['-avj', '@world']],
    [['--job=2', '@world']],
  ])('--jobs given (%j): emerge gets the arguments as they were', async (args) => {
    const emerge = standIn('3.0.80');
    expect((await shim(args, { bin: emerge.bin })).code).toBe(0);
    const record = readRecord(emerge.record);
    expect(record.argv).toEqual(args);
    expect(record.env.FEATURES).toBe('jobserver-token');
  });

  it('MAKEOPTS without -l, or none at all: MAKEFLAGS is the auth alone', async () => {
    for (const makeopts of ['-j8', undefined]) {
      const emerge = standIn('3.0.76');
      const env = makeopts === undefined ? {} : { MAKEOPTS: makeopts };
      expect((await shim(['@world'], { bin: emerge.bin, env })).code).toBe(0);
      expect(readRecord(emerge.record).env.MAKEFLAGS).toBe(
        ` --jobserver-auth=fifo:${steve.jobserverPath}`,
      );
    }
  });

  it('MAKEOPTS from make.conf (portageq envvar MAKEOPTS) when the environment has none', async () => {
    const emerge = standIn('3.0.76');
    writeScript(
      join(emerge.bin, 'portageq'),
      '#!/bin/sh\n[ "$1 $2" = "envvar MAKEOPTS" ] && echo "-j32 --load-average=28.5"\n',
    );
    expect((await shim(['@world'], { bin: emerge.bin })).code).toBe(0);
    expect(readRecord(emerge.record).env.MAKEFLAGS).toBe(
      ` -l28.5 --jobserver-auth=fifo:${steve.jobserverPath}`,
    );
  });

  it('FEATURES=-jobserver-token in the environment is respected, with a warning', async () => {
    const emerge = standIn('3.0.76');
    const result = await shim(['@world'], {
      bin: emerge.bin,
      env: { FEATURES: '-jobserver-token' },
    });
    expect(readRecord(emerge.record).env.FEATURES).toBe('-jobserver-token');
    expect(result.stderr).toContain('FEATURES has -jobserver-token: left as it is');
  });

  it('a Portage-like stand-in (a token per job, the first on the implicit slot) stays inside the pool', async () => {
    const dir = tempDir();
    const stamps = join(dir, 'stamps');
    const bin = tempDir('emerge-standin-');
    writeScript(
      join(bin, 'emerge'),
      readFileSync(join(PACKAGE, 'test', 'fixtures', 'portage-like-emerge.py'), 'utf8'),
    );
    const atoms = Array.from({ length: 9 }, (_, i) => `cat/pkg${i}`);
    const result = await shim(atoms, {
      bin,
      env: { STANDIN_STAMPS: stamps, STANDIN_JOB_SECONDS: '0.5' },
    });
    expect(result.code).toBe(0);
    const text = readFileSync(stamps, 'utf8');
    expect(text.match(/^end /gm)).toHaveLength(9);
    // --jobs=6 from the pool; 6 jobs = the implicit slot (emerge-shim's token) + 5 tokens.
    expect(maxConcurrency(text)).toBe(6);
    await waitFor('every token back', () => steve.out() === 0);
  });
});

describe('Portage 3.0.74 and 3.0.75', () => {
  it.each(['3.0.74', '3.0.75'])(
    '%s: FEATURES and --jobs as above, but emerge-shim holds no token (emerge takes one for every job)',
    async (version) => {
      const emerge = standIn(version);
      const result = await shim(['@world'], { bin: emerge.bin });
      expect(result.code).toBe(0);
      const record = readRecord(emerge.record);
      expect(record.argv).toEqual(['--jobs=6', '@world']);
      expect(record.env.FEATURES).toBe('jobserver-token');
      expect(record.status).toMatch(/ out 0 /);
      expect(result.stderr).toContain(
        'emerge takes a token for every job (emerge-shim holds none)',
      );
    },
  );
});

describe('older Portage', () => {
  it('3.0.73: the same MAKEFLAGS, no FEATURES, --jobs as given, a warning; emerge runs holding one token', async () => {
    const emerge = standIn('3.0.73');
    const result = await shim(['-uDN', '@world'], {
      bin: emerge.bin,
      env: { MAKEOPTS: '-j8 -l6', FEATURES: 'buildpkg' },
    });
    expect(result.code).toBe(0);
    const record = readRecord(emerge.record);
    expect(record.argv).toEqual(['-uDN', '@world']);
    expect(record.env.MAKEFLAGS).toBe(` -l6 --jobserver-auth=fifo:${steve.jobserverPath}`);
    expect(record.env.FEATURES).toBe('buildpkg');
    expect(record.status).toMatch(/ out 1 /);
    expect(result.stderr).toContain(
      "emerge-shim: warning: Portage 3.0.73 is older than 3.0.74 (no FEATURES=jobserver-token): emerge's jobs take no tokens, so each parallel job's first make job runs outside the pool; --jobs left as given",
    );
    // emake (3.0.73's too) drops MAKEOPTS once MAKEFLAGS is set: no warning about its -j8.
    expect(result.stderr).not.toContain('MAKEOPTS has -j');
  });

  it('a version it cannot read is treated as older, with a warning', async () => {
    const emerge = standIn(null);
    const result = await shim(['@world'], { bin: emerge.bin });
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('cannot read a Portage version from `emerge --version`');
    expect(readRecord(emerge.record).env.FEATURES).toBeNull();
  });
});

describe('finding the pool', () => {
  it.skipIf(systemPool)(
    'no pool: exit 125 with how to start the daemon; emerge does not run',
    async () => {
      const emerge = standIn('3.0.76');
      const dir = tempDir();
      const result = await shim(['@world'], {
        bin: emerge.bin,
        env: { STEVE_CONTROL: join(dir, 'none.sock') },
      });
      expect(result.code).toBe(ExitCode.wrapperFailed);
      expect(result.stderr).toContain(
        `emerge-shim: no jobserver found (no $STEVE_JOBSERVER; no daemon at ${join(dir, 'none.sock')}; no /dev/steve; no /run/steve/jobserver): start the daemon`,
      );
      expect(existsSync(emerge.record)).toBe(false);
    },
  );

  it('--jobserver and $STEVE_JOBSERVER name the pool; its size comes from the daemon that serves it', async () => {
    for (const how of ['option', 'env'] as const) {
      const emerge = standIn('3.0.76');
      const args = how === 'option' ? ['--jobserver', steve.jobserverPath, '@world'] : ['@world'];
      const env = how === 'env' ? { STEVE_JOBSERVER: `fifo:${steve.jobserverPath}` } : {};
      expect((await shim(args, { bin: emerge.bin, env })).code).toBe(0);
      const record = readRecord(emerge.record);
      expect(record.argv).toEqual(['--jobs=6', '@world']);
      expect(record.env.MAKEFLAGS).toBe(` --jobserver-auth=fifo:${steve.jobserverPath}`);
    }
  });

  it('a pool the control socket does not serve: size unknown, --jobs not added, a warning', async () => {
    const emerge = standIn('3.0.76');
    const dir = tempDir();
    const result = await shim(['--jobserver', steve.jobserverPath, '@world'], {
      bin: emerge.bin,
      env: { STEVE_CONTROL: join(dir, 'none.sock') },
    });
    expect(result.code).toBe(0);
    expect(readRecord(emerge.record).argv).toEqual(['@world']);
    expect(result.stderr).toContain('the pool size is unknown');
  });

  it('no emerge: exit 127', async () => {
    const result = await shim(['@world'], { bin: tempDir(), env: { PATH: '/nonexistent' } });
    expect(result.code).toBe(ExitCode.notFound);
    expect(result.stderr).toContain('cannot find emerge on PATH');
  });
});

describe('--print-env and --print-make-conf', () => {
  it('--print-env shows what would be set and the command, and runs nothing', async () => {
    const emerge = standIn('3.0.76');
    const result = await shim(['--print-env', '-uDN', '@world'], {
      bin: emerge.bin,
      env: { MAKEOPTS: '-j12 -l10' },
    });
    expect(result.code).toBe(0);
    expect(existsSync(emerge.record)).toBe(false);
    const path = steve.jobserverPath;
    expect(result.stdout).toBe(
      [
        "# emerge-shim: Portage 3.0.76: FEATURES=jobserver-token; emerge's first job runs on the token emerge-shim holds",
        `# pool: ${path} (from the daemon at ${steve.controlPath}), 6 jobs`,
        // No leading space: a user reads and pastes this (make's own MAKEFLAGS has one).
        `export MAKEFLAGS='-l10 --jobserver-auth=fifo:${path}'`,
        'export FEATURES=jobserver-token',
        '# emerge-shim holds 1 token while this runs:',
        `# ${join(emerge.bin, 'emerge')} --jobs=6 -uDN @world`,
        '',
      ].join('\n'),
    );
  });

  it('--print-make-conf for a new Portage', async () => {
    const emerge = standIn('3.0.76');
    const result = await shim(['--print-make-conf'], {
      bin: emerge.bin,
      env: { MAKEOPTS: '-j12 -l10' },
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      [
        `# steve: every emerge job and every make under it take tokens from ${steve.jobserverPath}`,
        '# (printed by emerge-shim --print-make-conf for Portage 3.0.76)',
        `MAKEFLAGS="-l10 --jobserver-auth=fifo:${steve.jobserverPath}"`,
        '# pytest-xdist workers in src_test (epytest) take tokens too; install the plugin once',
        '# with `steve-pytest install` (npx steve-pytest install), so it does not live in a clone.',
        'EPYTEST_FLAGS="-p steve_jobserver"',
        'FEATURES="${FEATURES} jobserver-token"',
        '# MAKEOPTS: emake ignores it once MAKEFLAGS is set; keep -l in MAKEFLAGS above, no -jN anywhere.',
        '# The pool, not emerge, is the cap: let emerge start as many jobs as there are tokens.',
        'EMERGE_DEFAULT_OPTS="${EMERGE_DEFAULT_OPTS} --jobs=6"',
        '',
      ].join('\n'),
    );
  });

  it('--print-make-conf for an old Portage: no FEATURES, no MAKEOPTS line (emake drops it), -l in MAKEFLAGS', async () => {
    const emerge = standIn('3.0.63');
    const result = await shim(['--print-make-conf'], {
      bin: emerge.bin,
      env: { MAKEOPTS: '-j12 -l10' },
    });
    expect(result.stdout).not.toMatch(/^FEATURES=/m);
    expect(result.stdout).not.toMatch(/^MAKEOPTS=/m);
    expect(result.stdout).toContain(
      `MAKEFLAGS="-l10 --jobserver-auth=fifo:${steve.jobserverPath}"`,
    );
  });
});
