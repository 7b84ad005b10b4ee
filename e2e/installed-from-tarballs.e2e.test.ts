// What a user gets without a clone: every published package packed
// (scripts/pack.mjs), installed with plain npm into an empty directory and
// globally (a temporary --prefix), then used from there: the daemon serving a
// FUSE file, make 4.3 building through it, stevie, steve-job, emerge-shim,
// the pytest plugin and the client library's native wait; and the from-source
// build when the prebuilt addon is missing.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, exitOf, isMounted, maxConcurrency, waitFor } from './helpers/daemon.js';
import { cleanEnv } from './helpers/processes.js';
import { writeMakefile } from './helpers/workloads.js';

const VERSION = (
  JSON.parse(readFileSync(join(REPO, 'packages', 'steve-daemon', 'package.json'), 'utf8')) as {
    version: string;
  }
).version;

let work: string;
let tarballs: string[];
let globalBin: string;
let localDir: string;
/** PATH with only the system's tools and the global prefix's bins (no clone, no pnpm). */
let userPath: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'steve-install-'));
  await execa(process.execPath, [join(REPO, 'scripts', 'pack.mjs'), join(work, 'tarballs')]);
  tarballs = readdirSync(join(work, 'tarballs'))
    .filter((f) => f.endsWith('.tgz'))
    .map((f) => join(work, 'tarballs', f));
  const npm = {
    env: {
      ...process.env,
      npm_config_update_notifier: 'false',
      npm_config_fund: 'false',
      npm_config_audit: 'false',
    },
  };
  localDir = join(work, 'local');
  mkdirSync(localDir);
  await execa('npm', ['install', ...tarballs], { cwd: localDir, ...npm });
  await execa('npm', ['install', '-g', '--prefix', join(work, 'global'), ...tarballs], {
    cwd: work,
    ...npm,
  });
  globalBin = join(work, 'global', 'bin');
  userPath = `${globalBin}:${process.execPath.replace(/\/node$/, '')}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`;
}, 300_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed tarballs', () => {
  it('carry a LICENSE, the prebuilt linux-x64 addons, exact versions and no .tsbuildinfo', async () => {
    expect(tarballs.map((t) => t.split('/').pop()).sort()).toEqual(
      [
        'emerge-shim',
        'steve-charts',
        'steve-cli',
        'steve-daemon',
        'steve-jobserver-client',
        'steve-native-build',
        'steve-protocol',
        'steve-pytest-bridge',
      ].map((name) => `${name}-${VERSION}.tgz`),
    );
    for (const tarball of tarballs) {
      const { stdout: list } = await execa('tar', ['tzf', tarball]);
      expect(list.split('\n')).toContain('package/LICENSE');
      // Ours (a registry dependency's own files are its business).
      const ours = list.split('\n').filter((f) => !/^package\/node_modules\/(?!@steve\/)/.test(f));
      expect(ours.filter((f) => f.endsWith('.tsbuildinfo'))).toEqual([]);
      const { stdout: manifest } = await execa('tar', [
        'xzf',
        tarball,
        '-O',
        'package/package.json',
      ]);
      expect(manifest).not.toContain('workspace:');
      expect(JSON.parse(manifest)).toHaveProperty('repository.directory');
    }
    const { stdout: daemonList } = await execa('tar', [
      'tzf',
      tarballs.find((t) => t.includes('/steve-daemon-'))!,
    ]);
    expect(daemonList).toContain('package/prebuilds/linux-x64/steve_native.napi.node');
    expect(daemonList).toContain(
      'package/node_modules/@steve/jobserver-client/prebuilds/linux-x64/jobserver_native.napi.node',
    );
  });
});

describe('installed with npm install -g (no clone)', () => {
  let daemon: ChildProcess | undefined;
  let mountDir: string;
  let jobserverPath: string;
  let controlPath: string;
  let daemonOut = '';
  let daemonErr = '';
  const env = (extra: Record<string, string> = {}) =>
    cleanEnv({ PATH: userPath, HOME: work, ...extra });

  beforeAll(async () => {
    mountDir = join(work, 'mnt');
    controlPath = join(work, 'control.sock');
    jobserverPath = join(mountDir, 'jobserver');
    daemon = spawn(
      join(globalBin, 'steve-daemon'),
      ['-j', '2', '--fuse', mountDir, '--control', controlPath],
      {
        cwd: work,
        env: env(),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    daemon.stdout!.setEncoding('utf8').on('data', (c: string) => (daemonOut += c));
    daemon.stderr!.setEncoding('utf8').on('data', (c: string) => (daemonErr += c));
    await waitFor(
      'the installed daemon to serve',
      () => daemonOut.includes('serving 2 tokens'),
      20_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${daemonOut}\n${daemonErr}`);
    });
  }, 60_000);

  afterAll(async () => {
    if (daemon && daemon.exitCode === null) {
      daemon.kill('SIGKILL');
      await exitOf(daemon);
    }
    if (mountDir && isMounted(mountDir)) spawnSync('umount', ['-l', mountDir]);
  });

  it('steve-daemon --version and every bin answer --help', async () => {
    const { stdout } = await execa(join(globalBin, 'steve-daemon'), ['--version'], { env: env() });
    expect(stdout.trim()).toBe(VERSION);
    for (const bin of ['steve-daemon', 'stevie', 'steve-job', 'emerge-shim', 'steve-pytest']) {
      const help = await execa(join(globalBin, bin), ['--help'], { env: env(), reject: false });
      expect(help.exitCode, `${bin} --help`).toBe(0);
      expect(help.stdout, `${bin} --help`).toContain('--version');
    }
  });

  it('make 4.3 builds through the installed daemon, at most the pool (+1) at once', async () => {
    const dir = mkdtempSync(join(work, 'make-'));
    const stamps = join(dir, 'stamps');
    writeFileSync(stamps, '');
    const makefile = writeMakefile(dir, 6, 0.3, stamps);
    const make = await execa('bash', ['-c', `exec make -f ${makefile} 3<>${jobserverPath}`], {
      cwd: dir,
      env: env({ MAKEFLAGS: '--jobserver-auth=3,3' }),
      reject: false,
    });
    expect(make.exitCode, make.stderr).toBe(0);
    const lines = readFileSync(stamps, 'utf8');
    expect(lines.match(/^end /gm)).toHaveLength(6);
    expect(maxConcurrency(lines)).toBeGreaterThan(1);
    expect(maxConcurrency(lines)).toBeLessThanOrEqual(3); // 2 tokens + make's implicit slot
  });

  it('stevie status, steve-job and emerge-shim --print-make-conf work from the global prefix', async () => {
    const status = await execa(join(globalBin, 'stevie'), ['--control', controlPath, 'status'], {
      env: env(),
    });
    expect(status.stdout).toMatch(/2/);
    const job = await execa(
      join(globalBin, 'steve-job'),
      ['--', 'sh', '-c', 'echo "held: $MAKEFLAGS"'],
      { env: env({ MAKEFLAGS: `--jobserver-auth=fifo:${jobserverPath}` }), reject: false },
    );
    expect(job.exitCode, job.stderr).toBe(0);
    expect(job.stdout).toContain('held: ');
    const conf = await execa(join(globalBin, 'emerge-shim'), ['--print-make-conf'], {
      env: env(),
      reject: false,
    });
    expect(conf.exitCode, conf.stderr).toBe(0);
    expect(conf.stdout).toContain('EPYTEST_FLAGS');
    expect(conf.stdout).toContain('jobserver-auth');
    expect(conf.stdout).not.toContain(REPO);
  });

  it('the pytest plugin from the installed package takes tokens in xdist workers', async () => {
    const envLines = await execa(join(globalBin, 'steve-pytest'), ['env'], { env: env() });
    expect(envLines.stdout).not.toContain(REPO);
    const pythonPath = /PYTHONPATH=['"]?([^'"\s]+)/.exec(envLines.stdout)?.[1];
    const dir = mkdtempSync(join(work, 'pytest-'));
    writeFileSync(
      join(dir, 'test_some.py'),
      Array.from(
        { length: 4 },
        (_, i) => `def test_${i}():\n    import time; time.sleep(0.2)\n`,
      ).join('\n'),
    );
    const pytest = await execa(
      '/usr/bin/python3',
      ['-m', 'pytest', '-p', 'steve_jobserver', '-n', '2', '-q', dir],
      {
        cwd: dir,
        env: env({
          MAKEFLAGS: `--jobserver-auth=fifo:${jobserverPath}`,
          ...(pythonPath ? { PYTHONPATH: pythonPath } : {}),
        }),
        reject: false,
      },
    );
    expect(pytest.exitCode, `${pytest.stdout}\n${pytest.stderr}`).toBe(0);
    expect(pytest.stdout).toMatch(/4 passed/);
    expect(`${pytest.stdout}\n${pytest.stderr}`).toContain('steve-jobserver:');
  });

  it('the installed client library uses its native wait and takes a token', async () => {
    const script = join(localDir, 'take.mjs');
    writeFileSync(
      script,
      [
        "import { Jobserver } from '@steve/jobserver-client';",
        'const jobserver = Jobserver.fromEnv();',
        'const token = await jobserver.acquire();',
        'console.log(`strategy ${jobserver.waitStrategy}`);',
        'token.release();',
        'jobserver.close();',
      ].join('\n'),
    );
    const result = await execa(process.execPath, [script], {
      cwd: localDir,
      env: env({ MAKEFLAGS: `--jobserver-auth=fifo:${jobserverPath}` }),
      reject: false,
    });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain('strategy native');
  });

  it('SIGTERM stops the installed daemon: exit 0, unmounted, the reason logged', async () => {
    daemon!.kill('SIGTERM');
    expect(await exitOf(daemon!)).toBe(0);
    expect(isMounted(mountDir)).toBe(false);
    expect(daemonErr).toMatch(/stopping: SIGTERM received/);
  });
});

describe('without the prebuilt addon', () => {
  it('npm rebuild builds steve-daemon from source and it runs', async () => {
    const installed = join(localDir, 'node_modules', 'steve-daemon');
    rmSync(join(installed, 'prebuilds'), { recursive: true, force: true });
    const broken = await execa(
      process.execPath,
      [join(installed, 'bin', 'steve-daemon.js'), '--version'],
      {
        reject: false,
      },
    );
    expect(broken.exitCode).not.toBe(0);
    expect(broken.stderr).toContain('npm rebuild steve-daemon');
    await execa('npm', ['rebuild', 'steve-daemon', '--foreground-scripts'], { cwd: localDir });
    expect(existsSync(join(installed, 'build', 'Release', 'steve_native.node'))).toBe(true);
    const fixed = await execa(process.execPath, [
      join(installed, 'bin', 'steve-daemon.js'),
      '--version',
    ]);
    expect(fixed.stdout.trim()).toBe(VERSION);
  });
});
