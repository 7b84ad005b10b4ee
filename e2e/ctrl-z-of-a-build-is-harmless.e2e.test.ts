// Ctrl-Z and fg of a build that waits for tokens. The daemon answers every
// FUSE INTERRUPT with EINTR at once, and the kernel sends one when a reader
// blocked in a FUSE read is stopped: `request_wait_answer` (fs/fuse/dev.c)
// waits interruptibly, a pending SIGSTOP/SIGTSTP counts as a signal, and the
// reply's EINTR is what read(2) returns after SIGCONT; a FUSE server cannot
// ask for a restart (the kernel rejects reply errors <= -512, -ERESTARTSYS).
// So unlike a pipe read, which the kernel restarts transparently, the client
// sees EINTR. The first test pins that down with a C reader; the others
// Ctrl-Z (SIGTSTP to the process group) and fg (SIGCONT) real clients in the
// middle of a build and check that it makes no difference to them.
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  constants,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CLIENTS,
  PYTHON,
  type RunningDaemon,
  exitOf,
  maxConcurrency,
  startDaemon,
  waitFor,
} from './helpers/daemon.js';
import {
  type Job,
  groupTasks,
  killJob,
  startJob,
  waitUntilStopped,
} from './helpers/job-control.js';
import { cleanEnv } from './helpers/processes.js';
import { buildJobserverRsClient, writeCargoWorkspace, writeMakefile } from './helpers/workloads.js';

let daemon: RunningDaemon | null = null;
const jobs: Job[] = [];
afterEach(async () => {
  for (const job of jobs.splice(0)) killJob(job);
  await daemon?.stop();
  daemon = null;
});

let buildDir = '';
beforeAll(() => {
  buildDir = mkdtempSync(join(tmpdir(), 'steve-ctrl-z-'));
});
afterAll(() => rmSync(buildDir, { recursive: true, force: true }));

function stampLines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n').filter(Boolean) : [];
}

/** The pids the daemon lists as waiting (blocking read or polling). */
function waiterPids(status: string): Array<{ pid: number; kind: string }> {
  return [...status.matchAll(/^ {2}pid (\d+) {2}(blocking read|polling) /gm)].map((m) => ({
    pid: Number(m[1]),
    kind: m[2] ?? '',
  }));
}

function interruptedPids(lines: readonly string[]): number[] {
  return lines.flatMap((line) => {
    const match = /^interrupted: pid (\d+) /.exec(line);
    return match ? [Number(match[1])] : [];
  });
}

/**
 * Every log line the daemon wrote so far: SIGUSR1 makes it log a report
 * (`jobs N  capacity …`); once that arrives, so has everything logged before.
 */
async function flushLog(running: RunningDaemon): Promise<string[]> {
  const from = running.log.length;
  running.process.kill('SIGUSR1');
  const at = await waitFor('the SIGUSR1 report in the daemon log', () => {
    const index = running.log.findIndex((line, i) => i >= from && line.startsWith('jobs '));
    return index >= 0 ? index + 1 : undefined;
  });
  return running.log.slice(0, at);
}

interface CtrlZ {
  /** Processes of the job that were stopped (every task in state T). */
  readonly stoppedPids: ReadonlySet<number>;
  /** Their command names (comm). */
  readonly stoppedCommands: ReadonlySet<string>;
  /** Threads that were blocked in a FUSE read when Ctrl-Z came. */
  readonly blockedInFuseRead: number;
  /** Waiters of the stopped processes still queued in the daemon while stopped. */
  readonly queuedWhileStopped: ReadonlyArray<{ pid: number; kind: string }>;
  /** INTERRUPTs the daemon answered for the job between Ctrl-Z and fg. */
  readonly interrupts: number;
  /** CLOCK_REALTIME ns (like the stamps) just before SIGCONT. */
  readonly continuedAtNs: number;
}

/** Ctrl-Z the job (SIGTSTP to its group), wait until all of it is stopped, then fg (SIGCONT). */
async function ctrlZAndFg(running: RunningDaemon, job: Job): Promise<CtrlZ> {
  const blockedInFuseRead = groupTasks(job.pgid).filter(
    (t) => t.wchan === 'request_wait_answer',
  ).length;
  const logBefore = running.log.length;
  process.kill(-job.pgid, 'SIGTSTP');
  const stopped = await waitUntilStopped(job.pgid);
  const stoppedPids = new Set(stopped.map((t) => t.pid));
  const stoppedCommands = new Set(stopped.map((t) => t.comm));
  const queuedWhileStopped = waiterPids(running.status()).filter((w) => stoppedPids.has(w.pid));
  const log = await flushLog(running);
  const interrupts = interruptedPids(log.slice(logBefore)).filter((pid) =>
    stoppedPids.has(pid),
  ).length;
  const continuedAtNs = Date.now() * 1e6;
  process.kill(-job.pgid, 'SIGCONT');
  return {
    stoppedPids,
    stoppedCommands,
    blockedInFuseRead,
    queuedWhileStopped,
    interrupts,
    continuedAtNs,
  };
}

/** Checks common to every build: complete, within the pool, resumed after fg, all tokens back. */
async function expectHarmless(
  running: RunningDaemon,
  stampsPath: string,
  prefix: string,
  expected: { jobs: number; atOnce: number },
  ctrlZ: CtrlZ,
): Promise<void> {
  const lines = stampLines(stampsPath).filter((l) => l.split(' ')[1]?.startsWith(prefix));
  const ends = new Set(lines.filter((l) => l.startsWith('end ')).map((l) => l.split(' ')[1]));
  expect(ends.size).toBe(expected.jobs);
  expect(lines.filter((l) => l.startsWith('start '))).toHaveLength(expected.jobs);
  expect(maxConcurrency(lines, prefix)).toBeLessThanOrEqual(expected.atOnce);
  // Ctrl-Z came mid-build: jobs started before it and after fg.
  const startsNs = lines.filter((l) => l.startsWith('start ')).map((l) => Number(l.split(' ')[2]));
  expect(startsNs.some((ns) => ns < ctrlZ.continuedAtNs)).toBe(true);
  expect(startsNs.some((ns) => ns > ctrlZ.continuedAtNs)).toBe(true);
  await waitFor('all tokens back', () => running.out() === 0, 10_000);
  expect(running.log.some((l) => l.startsWith('ENOSPC'))).toBe(false);
}

describe('Ctrl-Z and fg of a build waiting for tokens', () => {
  it('a raw read(2) blocked on the file returns EINTR after SIGSTOP or Ctrl-Z and fg, and under an SA_RESTART handler; a fifo read restarts', async () => {
    const probe = join(buildDir, 'stopped_read');
    const cc = spawnSync('gcc', ['-O2', '-Wall', '-o', probe, join(CLIENTS, 'stopped_read.c')], {
      encoding: 'utf8',
    });
    expect(cc.status, cc.stderr).toBe(0);
    daemon = await startDaemon(['-j', '1']);
    const running = daemon;
    // Someone else holds the only token, so the probe's read blocks.
    const holder = spawn(PYTHON, [join(CLIENTS, 'holder.py'), running.jobserverPath, '1'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let holderOut = '';
    holder.stdout.setEncoding('utf8').on('data', (c: string) => (holderOut += c));
    const fifo = join(running.dir, 'pipe');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const fifoFd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
    try {
      await waitFor('the holder to hold', () => holderOut.includes('holding'));
      const seen: Record<string, string> = {};
      const cases = [
        ['SIGSTOP', 'default'],
        ['SIGTSTP', 'default'],
        ['SIGTSTP', 'restart'],
        ['SIGUSR1', 'restart'],
      ] as const;
      for (const target of ['fuse', 'fifo'] as const) {
        for (const [signal, mode] of cases) {
          const path = target === 'fuse' ? running.jobserverPath : fifo;
          const job = await startJob(probe, [path, mode], {
            cwd: running.dir,
            env: cleanEnv({}),
          });
          jobs.push(job);
          const pid = job.pgid; // the probe is its group's first process
          const blocked = (): boolean => {
            const [task] = groupTasks(pid).filter((t) => t.tid === pid);
            if (task?.state !== 'S') return false;
            return target === 'fuse'
              ? waiterPids(running.status()).some(
                  (w) => w.pid === pid && w.kind === 'blocking read',
                )
              : /pipe_read/.test(task.wchan);
          };
          await waitFor(`the ${target} probe to block in read`, blocked);
          process.kill(pid, signal);
          if (mode === 'default') {
            await waitUntilStopped(pid);
            process.kill(pid, 'SIGCONT');
          } else {
            await waitFor('the handler to run', () => job.output().includes('handled'));
          }
          if (target === 'fifo') {
            // Restarted: blocked again until a byte comes.
            await waitFor('the fifo probe to block again', blocked);
            writeSync(fifoFd, '+');
          }
          await job.exited;
          seen[`${target} ${signal} ${mode}`] = job.output().replace(/^(waiting|handled)\n/gm, '');
        }
      }
      expect(seen).toEqual({
        'fuse SIGSTOP default': 'read -1 EINTR\n',
        'fuse SIGTSTP default': 'read -1 EINTR\n',
        'fuse SIGTSTP restart': 'read -1 EINTR\n',
        'fuse SIGUSR1 restart': 'read -1 EINTR\n',
        'fifo SIGSTOP default': 'read 1 +\n',
        'fifo SIGTSTP default': 'read 1 +\n',
        'fifo SIGTSTP restart': 'read 1 +\n',
        'fifo SIGUSR1 restart': 'read 1 +\n',
      });
      const log = await flushLog(running);
      expect(log.filter((l) => l.startsWith('interrupted: pid '))).toHaveLength(4);
      expect(running.out()).toBe(1); // only the holder's
    } finally {
      closeSync(fifoFd);
      holder.kill('SIGTERM');
      await exitOf(holder);
    }
    await waitFor('all tokens back', () => running.out() === 0);
  });

  it('GNU make 4.3 (pipe style, 3<>FILE): stops and resumes, never blocks in a FUSE read, finishes within 2 + implicit', async () => {
    daemon = await startDaemon(['-j', '2']);
    const running = daemon;
    const stamps = join(running.dir, 'stamps');
    const makefile = writeMakefile(running.dir, 8, 0.6, stamps);
    const job = await startJob(
      'bash',
      ['-c', `exec make -f ${makefile} 3<>${running.jobserverPath}`],
      { cwd: running.dir, env: cleanEnv({ MAKEFLAGS: '-j --jobserver-auth=3,3' }) },
    );
    jobs.push(job);
    await waitFor('make to run jobs and poll for more', () => {
      const polling = waiterPids(running.status()).some(
        (w) => w.pid === job.pgid && w.kind === 'polling',
      );
      return polling && stampLines(stamps).some((l) => l.startsWith('start '));
    });
    const ctrlZ = await ctrlZAndFg(running, job);
    // make, its recipes' shells and their sleeps all stopped.
    expect(ctrlZ.stoppedPids.has(job.pgid)).toBe(true);
    expect([...ctrlZ.stoppedCommands]).toEqual(expect.arrayContaining(['make', 'sh', 'sleep']));
    // make waits in pselect and reads O_NONBLOCK: nothing to interrupt.
    expect(ctrlZ.blockedInFuseRead).toBe(0);
    expect(ctrlZ.interrupts).toBe(0);
    expect(await job.exited).toBe(0);
    expect(job.output()).not.toMatch(/jobserver|jobs pipe|interrupted|error/i);
    await expectHarmless(running, stamps, 'make-', { jobs: 8, atOnce: 2 + 1 }, ctrlZ);
  });

  it('python3 blocking readers (PEP 475): the interrupted reads are retried, the build completes within 2', async () => {
    daemon = await startDaemon(['-j', '2']);
    const running = daemon;
    const stamps = join(running.dir, 'stamps');
    const job = await startJob(
      PYTHON,
      [join(CLIENTS, 'worker_pool.py'), running.jobserverPath, '4', '12', '300', stamps],
      { cwd: running.dir, env: cleanEnv({}) },
    );
    jobs.push(job);
    await waitFor(
      'two workers waiting in a blocking read',
      () => waiterPids(running.status()).filter((w) => w.kind === 'blocking read').length >= 2,
    );
    const ctrlZ = await ctrlZAndFg(running, job);
    expect(ctrlZ.stoppedPids.size).toBe(1 + 4);
    // Every blocked reader was interrupted and left the queue while stopped.
    expect(ctrlZ.blockedInFuseRead).toBeGreaterThanOrEqual(2);
    expect(ctrlZ.interrupts).toBeGreaterThanOrEqual(ctrlZ.blockedInFuseRead);
    expect(ctrlZ.queuedWhileStopped).toEqual([]);
    expect(await job.exited).toBe(0);
    expect(job.output()).toBe('done 12\n');
    await expectHarmless(running, stamps, 'py-', { jobs: 12, atOnce: 2 }, ctrlZ);
  });

  describe('jobserver-rs 0.1.24 (Debian)', () => {
    let client = '';
    beforeAll(() => {
      client = buildJobserverRsClient(buildDir);
    }, 150_000);

    it('pipe style (3<FILE 4>FILE, --jobserver-auth=3,4): its threads blocked in read all stop; acquire() retries EINTR', async () => {
      daemon = await startDaemon(['-j', '2']);
      const running = daemon;
      const stamps = join(running.dir, 'stamps');
      // Blocking descriptors shared by all threads (no make set O_NONBLOCK).
      // Two descriptors: with `3,3` jobserver-rs 0.1.24 wraps fd 3 in two
      // Files and closes it twice when the Client drops, which a debug build
      // of current Rust aborts on ("IO Safety violation").
      const job = await startJob(
        'bash',
        [
          '-c',
          `exec ${client} 4 12 300 ${stamps} 3<${running.jobserverPath} 4>${running.jobserverPath}`,
        ],
        { cwd: running.dir, env: cleanEnv({ MAKEFLAGS: '-j --jobserver-auth=3,4' }) },
      );
      jobs.push(job);
      await waitFor(
        'two threads blocked in a FUSE read',
        () => groupTasks(job.pgid).filter((t) => t.wchan === 'request_wait_answer').length >= 2,
      );
      const ctrlZ = await ctrlZAndFg(running, job);
      expect([...ctrlZ.stoppedPids]).toEqual([job.pgid]);
      expect(ctrlZ.blockedInFuseRead).toBeGreaterThanOrEqual(2);
      expect(ctrlZ.interrupts).toBeGreaterThanOrEqual(ctrlZ.blockedInFuseRead);
      expect(ctrlZ.queuedWhileStopped).toEqual([]);
      expect(await job.exited).toBe(0);
      expect(job.output()).toBe('jobserver found\ndone 12\n');
      await expectHarmless(running, stamps, 'rs-', { jobs: 12, atOnce: 2 }, ctrlZ);
    });

    it('fifo style (--jobserver-auth=fifo:FILE): 0.1.24 predates fifo support, from_env() finds no jobserver', async () => {
      daemon = await startDaemon(['-j', '2']);
      const running = daemon;
      const job = await startJob(client, ['2', '2', '10', join(running.dir, 'stamps')], {
        cwd: running.dir,
        env: cleanEnv({ MAKEFLAGS: `-j --jobserver-auth=fifo:${running.jobserverPath}` }),
      });
      jobs.push(job);
      expect(await job.exited).toBe(3);
      expect(job.output()).toBe('no jobserver\n');
      expect(running.maxOut()).toBe(0);
    });
  });

  it('cargo (fifo style): its jobserver threads are interrupted, retried, and the workspace builds within 2 + implicit', async () => {
    daemon = await startDaemon(['-j', '2']);
    const running = daemon;
    const stamps = join(running.dir, 'stamps');
    const workspace = writeCargoWorkspace(running.dir, 4, 1.5);
    const job = await startJob('cargo', ['build', '--offline', '--quiet'], {
      cwd: workspace,
      env: cleanEnv({
        MAKEFLAGS: `--jobserver-auth=fifo:${running.jobserverPath}`,
        STAMPS: stamps,
        CARGO_TARGET_DIR: join(running.dir, 'target'),
      }),
    });
    jobs.push(job);
    await waitFor(
      'build scripts running and cargo waiting for a token',
      () =>
        stampLines(stamps).some((l) => l.startsWith('start ')) &&
        waiterPids(running.status()).some((w) => w.kind === 'blocking read'),
      120_000,
    );
    const ctrlZ = await ctrlZAndFg(running, job);
    expect(ctrlZ.stoppedPids.has(job.pgid)).toBe(true);
    expect(ctrlZ.blockedInFuseRead).toBeGreaterThanOrEqual(1);
    expect(ctrlZ.interrupts).toBeGreaterThanOrEqual(ctrlZ.blockedInFuseRead);
    expect(ctrlZ.queuedWhileStopped).toEqual([]);
    expect(await job.exited).toBe(0);
    expect(job.output()).toBe('');
    await expectHarmless(running, stamps, 'cargo-', { jobs: 4, atOnce: 2 + 1 }, ctrlZ);
  });
});
