// The command lines of both wrappers as a user meets them: --help and
// --version, a typo is one line and exit 2, number errors quote what was
// typed, `--tokens` above the pool fails at once (real daemon on FUSE),
// `--print-make-conf` needs neither emerge nor a daemon, and what is
// printed for pasting has no leading space in MAKEFLAGS.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { USAGE_EXIT_CODE } from '@steve/cli';
import { DEFAULT_DEVICE_PATH, DEFAULT_FUSE_JOBSERVER_PATH } from '@steve/protocol';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type Daemon,
  EMERGE_SHIM_BIN,
  REPO,
  STEVE_JOB_BIN,
  cleanEnv,
  removeTempDirs,
  run,
  startDaemon,
  stopAll,
  tempDir,
} from './helpers.js';

afterEach(async () => {
  await stopAll();
  removeTempDirs();
});

/** Run a bin; fails (instead of hanging the suite) when it takes longer than `deadlineMs`. */
async function runBin(
  bin: string,
  args: string[],
  env: NodeJS.ProcessEnv = cleanEnv({ STEVE_CONTROL: '/nonexistent/control.sock' }),
  deadlineMs = 10_000,
): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  const child = run(process.execPath, [bin, ...args], { env });
  const timedOut = new Promise<'timeout'>((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), deadlineMs);
    void child.exited.then(() => clearTimeout(timer));
  });
  const ended = await Promise.race([child.exited, timedOut]);
  if (ended === 'timeout') {
    throw new Error(
      `${args.join(' ')} still runs after ${deadlineMs} ms; stderr so far: ${child.stderr}`,
    );
  }
  return { code: ended.code, stdout: child.stdout, stderr: child.stderr, ms: Date.now() - started };
}

const lines = (text: string): string[] => text.split('\n').filter((line) => line !== '');

describe.each([
  ['steve-job', STEVE_JOB_BIN],
  ['emerge-shim', EMERGE_SHIM_BIN],
])('%s --help and --version', (name, bin) => {
  it('--help lists --version; --version prints the package version', async () => {
    const help = await runBin(bin, ['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain(`usage: ${name}`);
    expect(help.stdout).toContain('--version');
    const version = await runBin(bin, ['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout).toBe('0.1.0\n');
  });
});

describe('usage errors: one line, exit 2, quoting what was typed', () => {
  it.each([
    [STEVE_JOB_BIN, ['--frobnicate', '--', 'true'], "steve-job: unknown option '--frobnicate'"],
    [STEVE_JOB_BIN, ['--tokns', '2', 'true'], "steve-job: unknown option '--tokns'"],
    [STEVE_JOB_BIN, ['--tokens', 'abc', '--', 'true'], "got 'abc'"],
    [STEVE_JOB_BIN, ['--tokens=0', 'true'], "got '0'"],
    [STEVE_JOB_BIN, ['--style', 'tcp', 'true'], '"tcp"'],
    [STEVE_JOB_BIN, ['--tokens'], 'steve-job: --tokens needs a value'],
    [EMERGE_SHIM_BIN, ['--print-make-cof'], "emerge-shim: unknown option '--print-make-cof'"],
    [EMERGE_SHIM_BIN, ['--jobservr', '/x', '@world'], "emerge-shim: unknown option '--jobservr'"],
    [EMERGE_SHIM_BIN, ['--print-env', '--print-make-conf'], 'give one of'],
  ])('%s %j', async (bin, args, message) => {
    const result = await runBin(bin, args);
    expect(result.code).toBe(USAGE_EXIT_CODE);
    expect(lines(result.stderr)).toHaveLength(1);
    expect(result.stderr).toContain(message);
    expect(result.stderr).toMatch(/\(see (steve-job|emerge-shim) --help\)\n$/);
    expect(result.stdout).toBe('');
  });
});

describe('steve-job --tokens above the pool size (real daemon, pool of 2)', () => {
  let steve: Daemon;
  beforeAll(async () => {
    steve = await startDaemon(['-j', '2']);
  });
  afterAll(async () => {
    await steve.stop();
  });

  it.each([
    ['found through $STEVE_CONTROL', (d: Daemon) => ({ args: [], control: d.controlPath })],
    [
      'named with --device, the daemon asked on --control',
      (d: Daemon) => ({ args: ['--device', d.jobserverPath, '--control', d.controlPath] }),
    ],
    [
      'named with --device, no control socket: the FUSE status file says',
      (d: Daemon) => ({ args: ['--device', d.jobserverPath] }),
    ],
  ])('%s: fails at once, CMD not run, nothing held', async (_what, how) => {
    const { args, control } = how(steve) as { args: string[]; control?: string };
    const marker = join(tempDir(), 'ran');
    const result = await runBin(
      STEVE_JOB_BIN,
      [...args, '--tokens', '3', '--', 'touch', marker],
      cleanEnv({ STEVE_CONTROL: control ?? join(tempDir(), 'none.sock') }),
    );
    expect(result.code).toBe(USAGE_EXIT_CODE);
    expect(lines(result.stderr)).toHaveLength(1);
    expect(result.stderr).toContain(
      `steve-job: --tokens 3 is more than the pool has (2 tokens at ${steve.jobserverPath}`,
    );
    expect(result.ms).toBeLessThan(5_000);
    expect(existsSync(marker)).toBe(false);
    expect(steve.out()).toBe(0);
  });

  it('--tokens above the daemon per-user limit fails at once too (one user cannot hold them all)', async () => {
    const limited = await startDaemon(['-j', '4', '--per-user-limit', '2']);
    try {
      const marker = join(tempDir(), 'ran');
      const result = await runBin(
        STEVE_JOB_BIN,
        ['--tokens', '3', '--', 'touch', marker],
        cleanEnv({ STEVE_CONTROL: limited.controlPath }),
      );
      expect(result.code).toBe(USAGE_EXIT_CODE);
      expect(result.stderr).toContain(
        `steve-job: --tokens 3 is more than one user may hold (per-user limit 2 at ${limited.jobserverPath}`,
      );
      expect(existsSync(marker)).toBe(false);
    } finally {
      await limited.stop();
    }
  });

  it('--tokens equal to the pool size still runs', async () => {
    const marker = join(tempDir(), 'ran');
    const result = await runBin(
      STEVE_JOB_BIN,
      ['--device', steve.jobserverPath, '--tokens', '2', '--', 'touch', marker],
      cleanEnv({ STEVE_CONTROL: steve.controlPath }),
    );
    expect(result.code).toBe(0);
    expect(existsSync(marker)).toBe(true);
  });
});

// The lines are for the default paths: only where no system daemon serves them.
const systemPool = existsSync(DEFAULT_DEVICE_PATH) || existsSync(DEFAULT_FUSE_JOBSERVER_PATH);

describe('emerge-shim --print-make-conf with no emerge on PATH and no daemon', () => {
  it.skipIf(systemPool)(
    'prints the lines for the default pool path, EPYTEST_FLAGS included; no clone path',
    async () => {
      const dir = tempDir();
      const result = await runBin(
        EMERGE_SHIM_BIN,
        ['--print-make-conf'],
        cleanEnv({ PATH: dir, STEVE_CONTROL: join(dir, 'none.sock') }),
      );
      expect(result.code).toBe(0);
      const pool = existsSync('/dev/cuse') ? DEFAULT_DEVICE_PATH : DEFAULT_FUSE_JOBSERVER_PATH;
      const out = lines(result.stdout);
      expect(out).toContain(`MAKEFLAGS="--jobserver-auth=fifo:${pool}"`);
      expect(out).toContain('EPYTEST_FLAGS="-p steve_jobserver"');
      expect(out).toContain('FEATURES="${FEATURES} jobserver-token"');
      expect(result.stdout).not.toContain(REPO);
      expect(result.stdout).not.toContain('PYTHONPATH');
      // stderr says why these paths, and how to start the daemon there.
      expect(result.stderr).toContain('no daemon answers yet');
      expect(result.stderr).toContain('`npx steve-daemon -j$(nproc)`');
    },
  );
});
