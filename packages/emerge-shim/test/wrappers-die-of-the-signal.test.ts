// Ctrl-C in a shell loop around a wrapper: the terminal sends SIGINT to the
// whole foreground process group; the command dies of it, and the wrapper
// (steve-job, steve-job --fallback run, emerge-shim, stevie) must die of it
// too once its tokens are back: bash stops a loop only on a child killed by
// SIGINT, not on one that exits 130. And on a terminal the command gets
// that SIGINT once, not once more forwarded by the wrapper.
// Kernel fifos (mkfifo) in fresh temp dirs; deadlines, no sleeps; process
// groups we started are stopped by their pid.
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  constants,
  existsSync,
  openSync,
  readFileSync,
  readSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_DEVICE_PATH, DEFAULT_FUSE_JOBSERVER_PATH } from '@steve/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ChildRun,
  type Daemon,
  EMERGE_SHIM_BIN,
  PACKAGE,
  STEVE_JOB_BIN,
  STEVIE_BIN,
  cleanEnv,
  removeTempDirs,
  run,
  startDaemon,
  stopAll,
  tempDir,
  waitFor,
  writeScript,
} from './helpers.js';

const FIXTURES = join(PACKAGE, 'test', 'fixtures');
const groups: number[] = [];
const rawFds: number[] = [];
const daemons: Daemon[] = [];
afterEach(async () => {
  for (const pgid of groups.splice(0)) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // the group is gone
    }
  }
  await stopAll();
  for (const fd of rawFds.splice(0)) closeSync(fd);
  for (const daemon of daemons.splice(0)) await daemon.stop();
  removeTempDirs();
});

/** A kernel fifo holding `tokens`, kept open here; count() peeks at how many are in it. */
function fifoPool(tokens: string): { path: string; count(): number } {
  const path = join(tempDir(), 'fifo');
  if (spawnSync('mkfifo', ['-m', '600', path]).status !== 0) throw new Error('mkfifo failed');
  const raw = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  rawFds.push(raw);
  writeSync(raw, tokens);
  const count = (): number => {
    const buffer = Buffer.alloc(4096);
    let n = 0;
    try {
      n = readSync(raw, buffer, 0, buffer.length, null);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
    }
    if (n > 0) writeSync(raw, buffer, 0, n);
    return n;
  };
  return { path, count };
}

/** Start `command args` as the leader of a process group of its own (a foreground job). */
function startGroup(command: string, args: string[], env: NodeJS.ProcessEnv): ChildRun {
  const child = run(command, args, { env, detached: true });
  groups.push(child.child.pid as number);
  return child;
}

/** The child's exit, or 'hung' when it has not ended by the deadline. */
async function exitedWithin(child: ChildRun, deadlineMs = 15_000) {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => {
    timer = setTimeout(() => resolve('hung'), deadlineMs);
  });
  const result = await Promise.race([child.exited, hung]);
  clearTimeout(timer);
  return result;
}

/**
 * `bash -c 'for i in 1 2 3; do WRAPPER… -- job.sh; echo after $i; done'` in a
 * group of its own; once job.sh runs (its pid in a file), SIGINT to the group.
 */
async function ctrlCInLoop(
  wrapper: string,
  env: NodeJS.ProcessEnv,
): Promise<{ loop: ChildRun; pids: string[] }> {
  const dir = tempDir();
  const pids = join(dir, 'pids');
  const job = writeScript(join(dir, 'job.sh'), `#!/bin/sh\necho $$ >> ${pids}\nexec sleep 30\n`);
  const loop = startGroup(
    'bash',
    ['-c', `for i in 1 2 3; do ${wrapper.replace('JOB', job)}; echo after $i; done`],
    env,
  );
  await waitFor('the job to run', () => existsSync(pids) && readFileSync(pids, 'utf8') !== '');
  process.kill(-(loop.child.pid as number), 'SIGINT');
  const exited = await exitedWithin(loop);
  expect(exited, loop.stderr).toEqual({ code: null, signal: 'SIGINT' });
  expect(loop.stdout).not.toContain('after');
  return { loop, pids: readFileSync(pids, 'utf8').trim().split('\n') };
}

const node = process.execPath;
const systemPool = existsSync(DEFAULT_DEVICE_PATH) || existsSync(DEFAULT_FUSE_JOBSERVER_PATH);

describe('Ctrl-C stops a shell loop around a wrapper', () => {
  it('steve-job: dies of SIGINT after returning its token', async () => {
    const { path, count } = fifoPool('+');
    const { pids } = await ctrlCInLoop(
      `${node} ${STEVE_JOB_BIN} --jobserver fifo:${path} -- JOB`,
      cleanEnv(),
    );
    expect(pids).toHaveLength(1);
    expect(count()).toBe(1);
  });

  it.skipIf(systemPool)('steve-job --fallback run (no pool): dies of SIGINT', async () => {
    const dir = tempDir();
    const { pids } = await ctrlCInLoop(
      `${node} ${STEVE_JOB_BIN} --fallback run -- JOB`,
      cleanEnv({ STEVE_CONTROL: join(dir, 'no-daemon.sock') }),
    );
    expect(pids).toHaveLength(1);
  });

  it('emerge-shim: dies of SIGINT after returning its token', async () => {
    const { path, count } = fifoPool('+');
    const dir = tempDir();
    const pids = join(dir, 'emerge-pids');
    const emerge = writeScript(
      join(dir, 'emerge'),
      `#!/bin/sh
if [ "$1" = --version ]; then echo 'Portage 3.0.76 (python 3.12.8-final-0, default/linux/amd64/23.0, gcc-14, glibc-2.40-r8, 6.12.1 x86_64)'; exit 0; fi
echo $$ >> ${pids}
exec sleep 30
`,
    );
    const loop = startGroup(
      'bash',
      [
        '-c',
        `for i in 1 2 3; do ${node} ${EMERGE_SHIM_BIN} --jobserver fifo:${path} --emerge ${emerge} -- @world; echo after $i; done`,
      ],
      cleanEnv({ MAKEOPTS: '', STEVE_CONTROL: join(dir, 'no-daemon.sock') }),
    );
    await waitFor('emerge to run', () => existsSync(pids) && readFileSync(pids, 'utf8') !== '');
    expect(count()).toBe(0); // emerge runs holding the token
    process.kill(-(loop.child.pid as number), 'SIGINT');
    expect(await exitedWithin(loop), loop.stderr).toEqual({ code: null, signal: 'SIGINT' });
    expect(loop.stdout).not.toContain('after');
    expect(count()).toBe(1);
  });

  it('stevie CMD: dies of SIGINT after returning its token', async () => {
    const steve = await startDaemon(['-j', '2']);
    daemons.push(steve);
    const { pids } = await ctrlCInLoop(
      `${node} ${STEVIE_BIN} --control ${steve.controlPath} -- JOB`,
      cleanEnv(),
    );
    expect(pids).toHaveLength(1);
    await waitFor('the token back', () => steve.out() === 0);
  });
});

describe('on a terminal, the command gets Ctrl-C once', () => {
  it.skipIf(systemPool)(
    'steve-job --fallback run does not forward SIGINT when stdin is a TTY',
    async () => {
      const dir = tempDir();
      const out = join(dir, 'signals');
      const job = startGroup(
        'python3',
        [
          join(FIXTURES, 'on-a-tty.py'),
          node,
          STEVE_JOB_BIN,
          '--fallback',
          'run',
          '--',
          node,
          join(FIXTURES, 'count-signals.mjs'),
          out,
        ],
        cleanEnv({ STEVE_CONTROL: join(dir, 'no-daemon.sock') }),
      );
      await waitFor('the command to start', () => existsSync(out) && readFileSync(out, 'utf8'));
      process.kill(-(job.child.pid as number), 'SIGINT');
      expect(await exitedWithin(job), job.stderr).toEqual({ code: null, signal: 'SIGINT' });
      expect(readFileSync(out, 'utf8')).toBe('ready\nINT\n');
    },
  );
});
