// pytest-xdist under the real steve daemon (FUSE front): 24 tests of 0.5 s,
// -n 6, a pool of 2 tokens. Independent observer: the tests' own start/end
// stamps; the daemon's -v records and status file say what went out.
import { openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  PLUGIN_DIR,
  PYTHON,
  type RunningDaemon,
  cleanEnv,
  maxConcurrency,
  start,
  startDaemon,
  startPytest,
  summaryLine,
  tempDir,
  waitFor,
  writeSleepSuite,
} from './helpers.js';

let daemon: RunningDaemon | null = null;
let dir: string | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
  if (dir !== null) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

describe('pytest-xdist workers and the steve pool', () => {
  it('-n 6 in a pool of 2: never more than 3 tests at once (2 tokens + the shared implicit slot), every token back', async () => {
    daemon = await startDaemon(2);
    dir = tempDir();
    const stamps = join(dir, 'stamps');
    const suite = writeSleepSuite(dir, stamps);
    const run = startPytest(['-n', '6', '-q'], {
      cwd: suite,
      env: { MAKEFLAGS: ` -j8 --jobserver-auth=fifo:${daemon.jobserverPath}` },
    });
    const { code, output } = await run.exited;
    expect(code, output).toBe(0);
    expect(output).toContain('24 passed');
    const text = readFileSync(stamps, 'utf8');
    expect(text.match(/^end /gm)).toHaveLength(24);
    const most = maxConcurrency(text);
    expect(most).toBeLessThanOrEqual(3);
    expect(most).toBeGreaterThanOrEqual(2);
    expect(daemon.maxOut()).toBeLessThanOrEqual(2);
    expect(summaryLine(output)).toMatch(
      /^steve-jobserver: 24 tests run by 6 workers with the pool at \S+ \(from MAKEFLAGS\); waited for tokens [\d.]+ s in total, longest [\d.]+ s; \d+ of \d+ slots were the shared implicit slot$/,
    );
    await waitFor('all tokens back', () => daemon?.out() === 0);
  });

  it('without the plugin the same run has 6 tests at once', async () => {
    daemon = await startDaemon(2);
    dir = tempDir();
    const stamps = join(dir, 'stamps');
    const suite = writeSleepSuite(dir, stamps);
    const run = startPytest(['-n', '6', '-q'], {
      cwd: suite,
      plugin: false,
      env: { MAKEFLAGS: ` --jobserver-auth=fifo:${daemon.jobserverPath}` },
    });
    const { code, output } = await run.exited;
    expect(code, output).toBe(0);
    expect(maxConcurrency(readFileSync(stamps, 'utf8'))).toBe(6);
    expect(daemon.maxOut()).toBe(0);
  });

  it('finds the pool through STEVE_JOBSERVER and --jobserver too', async () => {
    daemon = await startDaemon(1);
    dir = tempDir();
    const stamps = join(dir, 'stamps');
    const suite = writeSleepSuite(dir, stamps, { tests: 8, seconds: 0.2 });
    const fromEnv = await startPytest(['-n', '3', '-q'], {
      cwd: suite,
      env: { STEVE_JOBSERVER: daemon.jobserverPath },
    }).exited;
    expect(fromEnv.code, fromEnv.output).toBe(0);
    expect(summaryLine(fromEnv.output)).toContain('(from STEVE_JOBSERVER)');
    const fromOption = await startPytest(['-n', '3', '-q', '--jobserver', daemon.jobserverPath], {
      cwd: suite,
      env: { MAKEFLAGS: ' --jobserver-auth=fifo:/nonexistent' },
    }).exited;
    expect(fromOption.code, fromOption.output).toBe(0);
    expect(summaryLine(fromOption.output)).toContain('(from --jobserver)');
    expect(maxConcurrency(readFileSync(stamps, 'utf8'))).toBeLessThanOrEqual(2);
    await waitFor('all tokens back', () => daemon?.out() === 0);
  });

  it("pipe style on steve's file (make 4.3's 3<>jobserver): workers use it by its path", async () => {
    daemon = await startDaemon(2);
    dir = tempDir();
    const stamps = join(dir, 'stamps');
    const suite = writeSleepSuite(dir, stamps, { tests: 12 });
    const fd = openSync(daemon.jobserverPath, 'r+');
    try {
      const run = start(
        PYTHON,
        [
          '-m',
          'pytest',
          '-p',
          'no:cacheprovider',
          '-p',
          'xdist',
          '-p',
          'steve_jobserver',
          '-n',
          '6',
          '-q',
        ],
        {
          cwd: suite,
          env: cleanEnv({ PYTHONPATH: PLUGIN_DIR, MAKEFLAGS: '--jobserver-auth=3,3' }),
          stdio3: fd,
        },
      );
      const { code, output } = await run.exited;
      expect(code, output).toBe(0);
      expect(summaryLine(output)).toContain(
        `the pool at ${daemon.jobserverPath} (from MAKEFLAGS descriptor 3)`,
      );
    } finally {
      closeSync(fd);
    }
    expect(maxConcurrency(readFileSync(stamps, 'utf8'))).toBeLessThanOrEqual(3);
    await waitFor('all tokens back', () => daemon?.out() === 0);
  });

  it('without xdist the one process uses its implicit slot and takes nothing', async () => {
    daemon = await startDaemon(2);
    dir = tempDir();
    const stamps = join(dir, 'stamps');
    const suite = writeSleepSuite(dir, stamps, { tests: 3, seconds: 0.1 });
    const { code, output } = await startPytest(['-q'], {
      cwd: suite,
      env: { MAKEFLAGS: ` --jobserver-auth=fifo:${daemon.jobserverPath}` },
    }).exited;
    expect(code, output).toBe(0);
    expect(summaryLine(output)).toBe(
      `steve-jobserver: 3 tests run in one process on its implicit slot, no tokens taken (the pool at ${daemon.jobserverPath} (from MAKEFLAGS))`,
    );
    expect(daemon.maxOut()).toBe(0);
  });

  it('-n auto starts as many workers as the pool has tokens (from the control socket)', async () => {
    daemon = await startDaemon(3);
    dir = tempDir();
    const suite = writeSleepSuite(dir, join(dir, 'stamps'), { tests: 6, seconds: 0.1 });
    const env = {
      MAKEFLAGS: ` --jobserver-auth=fifo:${daemon.jobserverPath}`,
      STEVE_CONTROL: daemon.controlPath,
    };
    const auto = await startPytest(['-n', 'auto', '-q'], { cwd: suite, env }).exited;
    expect(auto.code, auto.output).toBe(0);
    expect(summaryLine(auto.output)).toContain('6 tests run by 3 workers');
    // Another daemon's socket (not serving this jobserver) is not believed.
    const other = await startPytest(['-n', 'auto', '-q'], {
      cwd: suite,
      env: { ...env, MAKEFLAGS: ' --jobserver-auth=fifo:/nonexistent' },
    }).exited;
    expect(other.code, other.output).toBe(0);
    expect(summaryLine(other.output)).not.toContain('by 3 workers');
  });

  it("a pool that cannot be opened: the implicit slot only (make's -j1), or a usage error when named by --jobserver", async () => {
    dir = tempDir();
    const stamps = join(dir, 'stamps');
    const suite = writeSleepSuite(dir, stamps, { tests: 6, seconds: 0.2 });
    const fromEnv = await startPytest(['-n', '3', '-q'], {
      cwd: suite,
      env: { MAKEFLAGS: ' --jobserver-auth=fifo:/nonexistent/jobserver' },
    }).exited;
    expect(fromEnv.code, fromEnv.output).toBe(0);
    expect(summaryLine(fromEnv.output)).toContain('with the implicit slot only');
    expect(summaryLine(fromEnv.output)).toContain(
      'cannot open the jobserver /nonexistent/jobserver',
    );
    expect(maxConcurrency(readFileSync(stamps, 'utf8'))).toBe(1);
    const named = await startPytest(['-n', '3', '-q', '--jobserver', '/nonexistent/jobserver'], {
      cwd: suite,
    }).exited;
    expect(named.code, named.output).toBe(4); // pytest's usage error
    expect(named.output).toContain(
      'cannot open the jobserver /nonexistent/jobserver (from --jobserver)',
    );
  });
});
