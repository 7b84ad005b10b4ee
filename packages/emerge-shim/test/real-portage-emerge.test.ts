// emerge-shim with REAL Portage (3.0.73, 3.0.76, 3.0.82 from the project's
// test peers, run from source in a prefix made by Portage's own test
// harness) and the real steve-daemon (FUSE front, pool of 2). Ebuilds stamp
// their src_compile, their make 4.4.1 recipes (emake) and their pytest-xdist
// tests (src_test, EPYTEST_FLAGS); the stamps count how many ran at once.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Daemon,
  EMERGE_SHIM_BIN,
  REPO,
  cleanEnv,
  maxConcurrency,
  pathWith,
  removeTempDirs,
  run,
  startDaemon,
  stopAll,
  waitFor,
} from './helpers.js';
import { type PackageSpec, SYSTEM_PYTHON, make441Dir, portagePlayground } from './real-portage.js';

const POOL = 2;
const STEVE_PYTEST_BIN = join(REPO, 'packages', 'pytest-bridge', 'bin', 'steve-pytest.js');

let daemon: Daemon;
let make441: string;

beforeAll(async () => {
  make441 = make441Dir();
  daemon = await startDaemon([`-j${POOL}`]);
}, 320_000);

afterAll(async () => {
  await stopAll();
  await daemon?.stop();
  removeTempDirs();
});

function sleepers(count: number, seconds: number): PackageSpec[] {
  return Array.from({ length: count }, (_, i) => ({ name: `p${i}`, compile: { sleep: seconds } }));
}

function atoms(packages: readonly PackageSpec[]): string[] {
  return packages.map((p) => `dev-libs/${p.name}`);
}

/** emerge-shim with the playground's real emerge on PATH and the daemon's control socket. */
function emergeShim(bin: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return run(process.execPath, [EMERGE_SHIM_BIN, ...args], {
    env: cleanEnv({ PATH: pathWith(bin), STEVE_CONTROL: daemon.controlPath, ...env }),
  });
}

async function allTokensBack(): Promise<void> {
  await waitFor('every token back in the pool', () => daemon.out() === 0, 10_000);
}

function outputOf(result: { stdout: string; stderr: string }): string {
  return `stdout:\n${result.stdout.slice(-3000)}\nstderr:\n${result.stderr.slice(-3000)}`;
}

describe('real Portage under emerge-shim', () => {
  it('reads the version of real emerge 3.0.73, 3.0.76 and 3.0.82 and picks its branch; MAKEOPTS from make.conf through real portageq', async () => {
    for (const version of ['3.0.73', '3.0.76', '3.0.82']) {
      const playground = portagePlayground(version, sleepers(1, 1), {
        makeConf: ['MAKEOPTS="-j8 -l5"'],
      });
      const shim = emergeShim(playground.bin, ['--print-env', 'dev-libs/p0']);
      expect((await shim.exited).code, outputOf(shim)).toBe(0);
      // -l from make.conf's MAKEOPTS (real portageq), never its -j8.
      expect(shim.stdout).toContain(
        `export MAKEFLAGS='-l5 --jobserver-auth=fifo:${daemon.jobserverPath}'`,
      );
      if (version === '3.0.73') {
        expect(shim.stdout).toContain('Portage 3.0.73: no jobserver-token');
        expect(shim.stdout).not.toContain('export FEATURES');
        expect(shim.stdout).toMatch(/emerge dev-libs\/p0$/m);
      } else {
        expect(shim.stdout).toContain(
          `Portage ${version}: FEATURES=jobserver-token; emerge's first job runs on the token emerge-shim holds`,
        );
        expect(shim.stdout).toContain('export FEATURES=jobserver-token');
        expect(shim.stdout).toMatch(new RegExp(`emerge --jobs=${POOL} dev-libs/p0$`, 'm'));
      }
    }
  }, 120_000);

  it('3.0.82, no --jobs: emerge gets --jobs from the pool, at most 2 src_compile at once and both tokens used, MAKEFLAGS names the pool, all tokens back', async () => {
    const packages = sleepers(4, 2);
    const playground = portagePlayground('3.0.82', packages);
    const shim = emergeShim(playground.bin, atoms(packages));
    expect((await shim.exited).code, outputOf(shim)).toBe(0);
    const stamps = playground.stampLines();
    expect(stamps.filter((l) => l.startsWith('end ')).length).toBe(4);
    expect(maxConcurrency(stamps)).toBe(POOL);
    for (const line of stamps.filter((l) => l.startsWith('env ')))
      expect(line).toContain(`--jobserver-auth=fifo:${daemon.jobserverPath}`);
    expect(shim.stderr).toContain('emerge-shim: Portage 3.0.82: FEATURES=jobserver-token');
    await allTokensBack();
  }, 180_000);

  it('3.0.76 with --jobs=4 above the pool: still at most 2 at once; with FEATURES=-jobserver-token (left as given) 4 run at once', async () => {
    const packages = sleepers(4, 3);
    const shared = portagePlayground('3.0.76', packages);
    const inPool = emergeShim(shared.bin, ['--jobs=4', ...atoms(packages)]);
    expect((await inPool.exited).code, outputOf(inPool)).toBe(0);
    expect(maxConcurrency(shared.stampLines())).toBe(POOL);
    await allTokensBack();

    // The same run with the feature turned off shows the count can exceed the pool.
    const unshared = portagePlayground('3.0.76', packages);
    const outside = emergeShim(unshared.bin, ['--jobs=4', ...atoms(packages)], {
      FEATURES: '-jobserver-token',
    });
    expect((await outside.exited).code, outputOf(outside)).toBe(0);
    expect(outside.stderr).toContain('FEATURES has -jobserver-token');
    expect(maxConcurrency(unshared.stampLines())).toBeGreaterThan(POOL);
    await allTokensBack();
  }, 240_000);

  it('3.0.82 with --jobs=1 below the pool: one job at a time', async () => {
    const packages = sleepers(2, 2);
    const playground = portagePlayground('3.0.82', packages);
    const shim = emergeShim(playground.bin, ['--jobs=1', ...atoms(packages)]);
    expect((await shim.exited).code, outputOf(shim)).toBe(0);
    expect(playground.stampLines().filter((l) => l.startsWith('end ')).length).toBe(2);
    expect(maxConcurrency(playground.stampLines())).toBe(1);
    await allTokensBack();
  }, 120_000);

  it('3.0.73 (no jobserver-token) with MAKEOPTS="-j8" in make.conf: emake drops it, make 4.4.1 stays in the pool on the token emerge-shim holds, no false warning', async () => {
    const packages: PackageSpec[] = [
      { name: 'm0', compile: { make: 4, sleep: 1 } },
      { name: 'm1', compile: { make: 4, sleep: 1 } },
    ];
    const playground = portagePlayground('3.0.73', packages, {
      makeConf: ['MAKEOPTS="-j8"'],
      path: [make441],
    });
    const shim = emergeShim(playground.bin, ['--jobs=1', ...atoms(packages)]);
    expect((await shim.exited).code, outputOf(shim)).toBe(0);
    const stamps = playground.stampLines();
    expect(stamps.filter((l) => l.startsWith('end ')).length).toBe(8);
    expect(stamps.some((l) => l.includes(`MAKE=${make441}/make`))).toBe(true);
    // One emerge job at a time; its make runs job 1 on emerge-shim's token and reads the other.
    expect(maxConcurrency(stamps)).toBe(POOL);
    expect(shim.stderr).toContain('Portage 3.0.73 is older than 3.0.74');
    // Real emake unsets MAKEOPTS whenever MAKEFLAGS is set, in 3.0.73 too.
    expect(shim.stderr).not.toContain('MAKEOPTS has -j');
    await allTokensBack();
  }, 180_000);

  it('SIGINT to the process group of emerge-shim while emerge builds: emerge and its jobs end, every token comes back', async () => {
    const seconds = 61.37; // a sleep nobody else runs: found in /proc afterwards
    const packages = sleepers(4, seconds);
    const playground = portagePlayground('3.0.82', packages);
    const shim = run(process.execPath, [EMERGE_SHIM_BIN, ...atoms(packages)], {
      env: cleanEnv({ PATH: pathWith(playground.bin), STEVE_CONTROL: daemon.controlPath }),
      detached: true,
    });
    await waitFor(
      'two src_compile phases running',
      () => playground.stampLines().filter((l) => l.startsWith('start ')).length === POOL,
      90_000,
    );
    expect(daemon.out()).toBe(POOL);
    process.kill(-(shim.child.pid ?? 0), 'SIGINT');
    const exit = await shim.exited;
    expect(exit.code === 130 || exit.signal === 'SIGINT', outputOf(shim)).toBe(true);
    await allTokensBack();
    await waitFor('no build job left', () => sleepsOf(seconds).length === 0, 10_000);
  }, 180_000);
});

describe('real Portage with the lines of --print-make-conf (plain emerge, no shim)', () => {
  it('3.0.82: emerge honours them: --jobs from EMERGE_DEFAULT_OPTS, a token per job, make 4.4.1 in emake and pytest-xdist in src_test (EPYTEST_FLAGS) stay in the pool', async () => {
    const packages: PackageSpec[] = [
      { name: 'm0', compile: { make: 3, sleep: 1 } },
      { name: 'm1', compile: { make: 3, sleep: 1 } },
      { name: 't0', compile: { sleep: 0 }, test: { pytest: 4, workers: 4, sleep: 1 } },
    ];
    const playground = portagePlayground('3.0.82', packages, {
      makeConf: ['FEATURES="${FEATURES} test"'],
      path: [make441],
    });
    const env = cleanEnv({ PATH: pathWith(playground.bin), STEVE_CONTROL: daemon.controlPath });
    const printed = run(process.execPath, [EMERGE_SHIM_BIN, '--print-make-conf'], { env });
    expect((await printed.exited).code, outputOf(printed)).toBe(0);
    expect(printed.stdout).toContain(`--jobserver-auth=fifo:${daemon.jobserverPath}`);
    expect(printed.stdout).toContain('EPYTEST_FLAGS="-p steve_jobserver"');
    playground.appendMakeConf(printed.stdout);
    // The plugin is not installed system-wide here: steve-pytest names its directory.
    const pytestEnv = run(
      process.execPath,
      [STEVE_PYTEST_BIN, 'env', '--plain', '--python', SYSTEM_PYTHON],
      {
        env,
      },
    );
    expect((await pytestEnv.exited).code, outputOf(pytestEnv)).toBe(0);
    playground.appendMakeConf(pytestEnv.stdout);

    const features = run(join(playground.bin, 'portageq'), ['envvar', 'FEATURES'], { env });
    await features.exited;
    expect(features.stdout.split(/\s+/)).toContain('jobserver-token');

    const emerge = run(join(playground.bin, 'emerge'), atoms(packages), { env });
    expect((await emerge.exited).code, outputOf(emerge)).toBe(0);
    const stamps = playground.stampLines();
    // 6 make recipes, t0's src_compile, 4 tests.
    expect(stamps.filter((l) => l.startsWith('end ')).length).toBe(11);
    expect(
      stamps.filter((l) => l.startsWith('env ')).every((l) => l.includes(`MAKE=${make441}/make`)),
    ).toBe(true);
    expect(maxConcurrency(stamps)).toBe(POOL);
    expect(playground.pytestLog()).toMatch(
      new RegExp(
        `steve-jobserver: 4 tests run by 4 workers with the pool at ${escape(daemon.jobserverPath)} \\(from MAKEFLAGS\\)`,
      ),
    );
    await allTokensBack();
  }, 240_000);

  it('3.0.82: SIGINT to plain emerge holding a token per job: every token comes back', async () => {
    const seconds = 62.41;
    const packages = sleepers(3, seconds);
    const playground = portagePlayground('3.0.82', packages);
    const env = cleanEnv({ PATH: pathWith(playground.bin), STEVE_CONTROL: daemon.controlPath });
    const printed = run(process.execPath, [EMERGE_SHIM_BIN, '--print-make-conf'], { env });
    expect((await printed.exited).code, outputOf(printed)).toBe(0);
    playground.appendMakeConf(printed.stdout);
    const emerge = run(join(playground.bin, 'emerge'), atoms(packages), { env, detached: true });
    await waitFor(
      'two src_compile phases running',
      () => playground.stampLines().filter((l) => l.startsWith('start ')).length === POOL,
      90_000,
    );
    expect(daemon.out()).toBe(POOL);
    process.kill(-(emerge.child.pid ?? 0), 'SIGINT');
    await emerge.exited;
    await allTokensBack();
    await waitFor('no build job left', () => sleepsOf(seconds).length === 0, 10_000);
  }, 180_000);
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Pids of `sleep SECONDS` processes. */
function sleepsOf(seconds: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.endsWith('sleep') && argv[1] === String(seconds)) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}
