// What happens to steve-job's tokens when steve-job is signalled: SIGTERM
// is forwarded to the command, which stops, and steve-job returns its
// tokens and dies of SIGTERM as its command did; a SIGKILLed steve-job returns nothing itself,
// and the daemon reclaims its tokens when the process is gone.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Daemon,
  STEVE_JOB_BIN,
  cleanEnv,
  isAlive,
  killPid,
  removeTempDirs,
  run,
  startDaemon,
  stopAll,
  tempDir,
  waitFor,
  writeMakefile,
} from './helpers.js';

const daemons: Daemon[] = [];
const strayPids: number[] = [];
afterEach(async () => {
  for (const pid of strayPids.splice(0)) killPid(pid);
  await stopAll();
  for (const daemon of daemons.splice(0)) await daemon.stop();
  removeTempDirs();
});

async function pool(jobs: number): Promise<Daemon> {
  const daemon = await startDaemon(['-j', String(jobs)]);
  daemons.push(daemon);
  return daemon;
}

describe('signals to steve-job', () => {
  it('SIGTERM stops make and its jobs, returns every token, dies of SIGTERM', async () => {
    const steve = await pool(4);
    const dir = tempDir();
    const stamps = join(dir, 'stamps');
    const makefile = writeMakefile(dir, 'm', 8, 30, stamps);
    const job = run(process.execPath, [STEVE_JOB_BIN, '--', 'make', '-f', makefile], {
      cwd: dir,
      env: cleanEnv({ STEVE_JOBSERVER: steve.jobserverPath }),
    });
    await waitFor(
      'make to run 4 jobs',
      () =>
        steve.out() === 4 &&
        existsSync(stamps) &&
        (readFileSync(stamps, 'utf8').match(/^start /gm)?.length ?? 0) === 4,
    );
    job.child.kill('SIGTERM');
    // make died of SIGTERM (it raises it again after stopping its jobs): so does steve-job.
    expect(await job.exited).toEqual({ code: null, signal: 'SIGTERM' });
    await waitFor('every token back', () => steve.out() === 0);
    // make passed the signal on: none of its 30 s jobs is left.
    await waitFor('no job of the build left', () => !psHas(stamps));
  });

  it('SIGKILL: steve-job cannot return its token; the daemon reclaims it', async () => {
    const steve = await pool(2);
    const dir = tempDir();
    const pidFile = join(dir, 'pid');
    const job = run(
      process.execPath,
      [
        STEVE_JOB_BIN,
        '--device',
        steve.jobserverPath,
        '--',
        'sh',
        '-c',
        `echo $$ > ${pidFile}; exec sleep 60`,
      ],
      { env: cleanEnv() },
    );
    const commandPid = await waitFor('the command to start', () =>
      existsSync(pidFile) && /^\d+\n$/.test(readFileSync(pidFile, 'utf8'))
        ? Number(readFileSync(pidFile, 'utf8'))
        : null,
    );
    strayPids.push(commandPid);
    expect(steve.out()).toBe(1);
    job.child.kill('SIGKILL');
    const { signal } = await job.exited;
    expect(signal).toBe('SIGKILL');
    await waitFor('the daemon to reclaim the token', () => steve.out() === 0);
    const jobPid = job.child.pid as number;
    // The daemon's log lines start with an ISO timestamp.
    await waitFor('the reclaim record', () =>
      steve.log.some((line) =>
        new RegExp(`^(\\S+ )?reclaim <- pid ${jobPid} .*: 1 token\\(s\\), process exited`).test(
          line,
        ),
      ),
    );
    // The orphaned command still runs (it held no token of its own); stop it.
    expect(isAlive(commandPid)).toBe(true);
    killPid(commandPid);
  });

  it('SIGTERM while steve-job waits for a token: it ends, CMD never runs, the waiter leaves the queue', async () => {
    const steve = await pool(1);
    const dir = tempDir();
    const marker = join(dir, 'ran');
    const holder = run(
      process.execPath,
      [STEVE_JOB_BIN, '--device', steve.jobserverPath, '--', 'sleep', '60'],
      { env: cleanEnv() },
    );
    await waitFor('the holder to take the only token', () => steve.out() === 1);
    const waiter = run(
      process.execPath,
      [STEVE_JOB_BIN, '--device', steve.jobserverPath, '--', 'touch', marker],
      { env: cleanEnv() },
    );
    await waitFor('the second steve-job to wait', () => / waiting 1 /.test(steve.status()));
    waiter.child.kill('SIGTERM');
    const ended = await waiter.exited;
    expect(ended.code === 143 || ended.signal === 'SIGTERM').toBe(true);
    await waitFor('the waiter to leave the queue', () => / waiting 0 /.test(steve.status()));
    holder.child.kill('SIGTERM');
    await holder.exited;
    await waitFor('every token back', () => steve.out() === 0);
    expect(existsSync(marker)).toBe(false);
  });

  it('SIGINT and SIGHUP are forwarded too (no TTY here); steve-job dies of them as its command did', async () => {
    const steve = await pool(2);
    for (const signal of ['SIGINT', 'SIGHUP'] as const) {
      const dir = tempDir();
      const pidFile = join(dir, 'pid');
      const job = run(
        process.execPath,
        [
          STEVE_JOB_BIN,
          '--device',
          steve.jobserverPath,
          '--',
          'sh',
          '-c',
          `echo $$ > ${pidFile}; exec sleep 60`,
        ],
        { env: cleanEnv() },
      );
      const commandPid = await waitFor('the command to start', () =>
        existsSync(pidFile) && /^\d+\n$/.test(readFileSync(pidFile, 'utf8'))
          ? Number(readFileSync(pidFile, 'utf8'))
          : null,
      );
      strayPids.push(commandPid);
      job.child.kill(signal);
      expect(await job.exited).toEqual({ code: null, signal });
      await waitFor('the command to be gone', () => !isAlive(commandPid));
      await waitFor('the token back', () => steve.out() === 0);
    }
  });
});

/** True while some process has `needle` on its command line. */
function psHas(needle: string): boolean {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) return true;
    } catch {
      // gone
    }
  }
  return false;
}
