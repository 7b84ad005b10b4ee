// Ways a run ends badly: a worker dies inside a test (os._exit), Ctrl-C to
// the pytest controller while workers wait for tokens, and Ctrl-C as a
// terminal sends it (to the whole process group). Afterwards every token is
// back (the status file says out 0) and no worker is left behind.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type RunningDaemon,
  isAlive,
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

/** The pids the status file lists as holders or waiters. */
function clientPids(status: string): number[] {
  return [...status.matchAll(/pid (\d+)/g)].map((m) => Number(m[1]));
}

describe('no token is lost', () => {
  it('when a worker dies inside a test (os._exit)', async () => {
    daemon = await startDaemon(2);
    dir = tempDir();
    const stamps = join(dir, 'stamps');
    const suite = writeSleepSuite(dir, stamps, {
      tests: 12,
      seconds: 0.3,
      extra: 'def test_crash():\n    time.sleep(0.2)\n    os._exit(3)\n',
    });
    const { code, output } = await startPytest(['-n', '4', '-q'], {
      cwd: suite,
      env: { MAKEFLAGS: ` --jobserver-auth=fifo:${daemon.jobserverPath}` },
    }).exited;
    expect(code, output).toBe(1);
    expect(output).toMatch(/crashed while running .*test_crash/);
    expect(output).toContain('12 passed');
    expect(summaryLine(output)).toContain('1 workers ended without a report');
    expect(readFileSync(stamps, 'utf8').match(/^end /gm)).toHaveLength(12);
    await waitFor('all tokens back', () => daemon?.out() === 0);
  });

  for (const how of ['to the controller', 'to the process group (a terminal Ctrl-C)'] as const) {
    it(`on Ctrl-C ${how} while workers wait for tokens`, async () => {
      daemon = await startDaemon(1);
      dir = tempDir();
      const suite = writeSleepSuite(dir, join(dir, 'stamps'), { tests: 12, seconds: 5 });
      const run = startPytest(['-n', '4', '-q'], {
        cwd: suite,
        env: { MAKEFLAGS: ` --jobserver-auth=fifo:${daemon.jobserverPath}` },
        detached: true,
      });
      const pid = run.child.pid as number;
      const waiting = await waitFor(
        'a worker holding the token and two waiting for one',
        () => {
          const status = daemon?.status() ?? '';
          return / out 1 /.test(status) && /waiting ([2-9])/.test(status) && status;
        },
        30_000,
      );
      const workers = clientPids(waiting);
      expect(workers.length).toBeGreaterThanOrEqual(3);
      const interrupted = Date.now();
      if (how === 'to the controller') process.kill(pid, 'SIGINT');
      else process.kill(-pid, 'SIGINT');
      const { code, output } = await run.exited;
      const tookMs = Date.now() - interrupted;
      expect(code, output).toBe(2); // pytest's "interrupted"
      expect(output).toContain('KeyboardInterrupt');
      expect(tookMs).toBeLessThan(20_000);
      await waitFor('every worker gone', () => workers.every((w) => !isAlive(w)), 20_000);
      await waitFor('all tokens back', () => daemon?.out() === 0);
      expect(daemon.status()).toMatch(/waiting 0/);
      console.log(`Ctrl-C ${how}: pytest exited ${tookMs} ms later; out 0`);
    });
  }
});
