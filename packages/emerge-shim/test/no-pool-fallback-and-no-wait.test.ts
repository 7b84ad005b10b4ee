// steve-job without a pool (a clear error, or --fallback run), with a busy
// pool and --no-wait, and the exit statuses it passes on.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_DEVICE_PATH, DEFAULT_FUSE_JOBSERVER_PATH } from '@steve/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { ExitCode } from '../src/exit-codes.js';
import { USAGE_EXIT_CODE } from '@steve/cli';
import {
  type Daemon,
  STEVE_JOB_BIN,
  cleanEnv,
  removeTempDirs,
  run,
  startDaemon,
  stopAll,
  tempDir,
  waitFor,
} from './helpers.js';

const daemons: Daemon[] = [];
afterEach(async () => {
  await stopAll();
  for (const daemon of daemons.splice(0)) await daemon.stop();
  removeTempDirs();
});

async function pool(jobs: number): Promise<Daemon> {
  const daemon = await startDaemon(['-j', String(jobs)]);
  daemons.push(daemon);
  return daemon;
}

// These run only where no system daemon serves the default paths.
const systemPool = existsSync(DEFAULT_DEVICE_PATH) || existsSync(DEFAULT_FUSE_JOBSERVER_PATH);

async function steveJob(args: string[], env: NodeJS.ProcessEnv) {
  const job = run(process.execPath, [STEVE_JOB_BIN, ...args], { env });
  const { code } = await job.exited;
  return { code, stdout: job.stdout, stderr: job.stderr };
}

describe('steve-job with no pool', () => {
  it.skipIf(systemPool)(
    'says what it tried and how to start the daemon; exit 125; CMD not run',
    async () => {
      const dir = tempDir();
      const marker = join(dir, 'ran');
      const result = await steveJob(
        ['--', 'sh', '-c', `touch ${marker}`],
        cleanEnv({ STEVE_CONTROL: join(dir, 'none.sock') }),
      );
      expect(result.code).toBe(ExitCode.wrapperFailed);
      expect(result.stderr).toContain(
        `steve-job: no jobserver found (no $STEVE_JOBSERVER; no daemon at ${join(dir, 'none.sock')}; no /dev/steve; no /run/steve/jobserver)`,
      );
      // A command that exists in a clone too (a bare steve-daemon is on PATH only once installed).
      expect(result.stderr).toContain('`npx steve-daemon -j$(nproc)`');
      expect(result.stderr).toContain('--jobserver fifo:PATH');
      expect(existsSync(marker)).toBe(false);
    },
  );

  it('a named pool that does not exist: the open error and the hint; exit 125', async () => {
    const dir = tempDir();
    const result = await steveJob(['--device', join(dir, 'nothing'), '--', 'true'], cleanEnv());
    expect(result.code).toBe(ExitCode.wrapperFailed);
    expect(result.stderr).toContain(`cannot open --device ${join(dir, 'nothing')}: ENOENT`);
  });

  it('--fallback run runs CMD without a token, says so, and passes its status on', async () => {
    const dir = tempDir();
    const result = await steveJob(
      [
        '--fallback',
        'run',
        '--device',
        join(dir, 'nothing'),
        '--',
        'sh',
        '-c',
        'echo "MAKEFLAGS=[$MAKEFLAGS]"; exit 3',
      ],
      cleanEnv(),
    );
    expect(result.code).toBe(3);
    expect(result.stdout).toBe('MAKEFLAGS=[]\n');
    expect(result.stderr).toContain('steve-job: --fallback run: running sh without a token');
  });
});

describe('steve-job --no-wait, statuses', () => {
  it('--no-wait exits 75 at once while the pool is busy, and runs CMD once a token is free', async () => {
    const steve = await pool(1);
    const dir = tempDir();
    const holder = run(
      process.execPath,
      [STEVE_JOB_BIN, '--device', steve.jobserverPath, '--', 'sleep', '60'],
      { env: cleanEnv() },
    );
    await waitFor('the holder to take the only token', () => steve.out() === 1);
    const marker = join(dir, 'ran');
    const started = Date.now();
    const busy = await steveJob(
      ['--no-wait', '--device', steve.jobserverPath, '--', 'touch', marker],
      cleanEnv(),
    );
    expect(busy.code).toBe(ExitCode.noTokenFree);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(busy.stderr).toContain('no token free now (0 of 1 were; --no-wait): touch not run');
    expect(existsSync(marker)).toBe(false);
    expect(steve.out()).toBe(1);
    holder.child.kill('SIGTERM');
    expect((await holder.exited).signal).toBe('SIGTERM'); // sleep died of it, steve-job too
    await waitFor('the token back', () => steve.out() === 0);
    const free = await steveJob(
      [
        '--no-wait',
        '--device',
        steve.jobserverPath,
        '--',
        'sh',
        '-c',
        `touch ${marker}; cat ${steve.statusPath}`,
      ],
      cleanEnv(),
    );
    expect(free.code).toBe(0);
    expect(existsSync(marker)).toBe(true);
    expect(free.stdout).toMatch(/ out 1 /); // CMD ran holding the one real token
    expect(steve.out()).toBe(0);
  });

  it('--no-wait --tokens 2 on a pool with one free token gives back the one it got', async () => {
    // A pool of 2 with one held: --tokens 2 fits the pool (more than it has fails at once, see
    // command-lines.test.ts) but only one is free now.
    const steve = await pool(2);
    const holder = run(
      process.execPath,
      [STEVE_JOB_BIN, '--device', steve.jobserverPath, '--', 'sleep', '60'],
      { env: cleanEnv() },
    );
    await waitFor('the holder to take a token', () => steve.out() === 1);
    const result = await steveJob(
      ['--no-wait', '--tokens', '2', '--device', steve.jobserverPath, '--', 'true'],
      cleanEnv(),
    );
    expect(result.code).toBe(ExitCode.noTokenFree);
    expect(result.stderr).toContain('1 of 2 were');
    expect(steve.out()).toBe(1);
    holder.child.kill('SIGTERM');
    await holder.exited;
    await waitFor('the tokens back', () => steve.out() === 0);
  });

  it("passes CMD's status on; 127 for a missing command, 126 for one that cannot run; 2 for bad usage", async () => {
    const steve = await pool(2);
    const device = ['--device', steve.jobserverPath, '--'];
    expect((await steveJob([...device, 'sh', '-c', 'exit 42'], cleanEnv())).code).toBe(42);
    const missing = await steveJob([...device, 'no-such-command-here'], cleanEnv());
    expect(missing.code).toBe(ExitCode.notFound);
    expect(missing.stderr).toContain('steve-job: cannot run no-such-command-here');
    const dir = tempDir();
    expect((await steveJob([...device, dir], cleanEnv())).code).toBe(ExitCode.cannotExecute);
    const usage = await steveJob(['--tokens', 'x', '--', 'true'], cleanEnv());
    expect(usage.code).toBe(USAGE_EXIT_CODE);
    expect(usage.stderr).toContain("--tokens wants a whole number >= 1, got 'x'");
    expect((await steveJob([], cleanEnv())).code).toBe(USAGE_EXIT_CODE);
    const help = await steveJob(['--help'], cleanEnv());
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('usage: steve-job');
    await waitFor('every token back', () => steve.out() === 0);
  });
});
