// steve-job in a pool inherited from MAKEFLAGS (a `+` make recipe, steve-job
// under steve-job): the parent already holds this job's token, so steve-job
// runs on that implicit slot (--tokens N reads N-1). Before, it read a real
// token on top and, in a pool with none left, waited forever.
// Kernel fifos (mkfifo) in fresh temp dirs; deadlines, no sleeps.
import { spawnSync } from 'node:child_process';
import { closeSync, constants, openSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ChildRun,
  STEVE_JOB_BIN,
  binDir,
  cleanEnv,
  pathWith,
  removeTempDirs,
  run,
  stopAll,
  tempDir,
} from './helpers.js';

const rawFds: number[] = [];
afterEach(async () => {
  await stopAll();
  for (const fd of rawFds.splice(0)) closeSync(fd);
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

describe('steve-job in an inherited pool runs on the implicit slot', () => {
  it('make -j2 with two `+steve-job` recipes and no outer pool: both run, nothing hangs', async () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'Makefile'),
      ['all: a b', 'a b:', `\t+@steve-job -- sh -c 'sleep 0.5'`, ''].join('\n'),
    );
    const make = run('make', ['-j2'], {
      cwd: dir,
      env: cleanEnv({ PATH: pathWith(binDir()) }),
    });
    // make -j2 has one token in its pipe, held for b: a steve-job reading one more waited forever.
    expect(await exitedWithin(make)).toEqual({ code: 0, signal: null });
    expect(make.stderr).not.toMatch(/warning|steve-job/);
  });

  it('steve-job --jobserver fifo:F -- steve-job -- CMD on a 1-token fifo: the inner one runs on the outer token', async () => {
    const { path, count } = fifoPool('+');
    const job = run(
      process.execPath,
      [
        STEVE_JOB_BIN,
        '--jobserver',
        `fifo:${path}`,
        '--',
        'steve-job',
        '-v',
        '--',
        'echo',
        'inner',
      ],
      { env: cleanEnv({ PATH: pathWith(binDir()) }) },
    );
    expect(await exitedWithin(job)).toEqual({ code: 0, signal: null });
    expect(job.stdout).toBe('inner\n');
    expect(job.stderr).toContain(
      'steve-job: the implicit slot + 0 token(s) from --jobserver-auth=fifo:',
    );
    expect(count()).toBe(1);
  });

  it('--tokens 2 in an inherited pool reads one token: the implicit slot is the other', async () => {
    const { path, count } = fifoPool('++');
    const job = run(
      process.execPath,
      [
        STEVE_JOB_BIN,
        '--jobserver',
        `fifo:${path}`,
        '--',
        'steve-job',
        '--tokens',
        '2',
        '--',
        'echo',
        'inner',
      ],
      { env: cleanEnv({ PATH: pathWith(binDir()) }) },
    );
    expect(await exitedWithin(job)).toEqual({ code: 0, signal: null });
    expect(job.stdout).toBe('inner\n');
    expect(count()).toBe(2);
  });

  it('--no-wait in an inherited pool with no token free: runs on the implicit slot', async () => {
    const { path, count } = fifoPool('+');
    const job = run(
      process.execPath,
      [
        STEVE_JOB_BIN,
        '--jobserver',
        `fifo:${path}`,
        '--',
        'steve-job',
        '--no-wait',
        '--',
        'echo',
        'inner',
      ],
      { env: cleanEnv({ PATH: pathWith(binDir()) }) },
    );
    expect(await exitedWithin(job)).toEqual({ code: 0, signal: null });
    expect(job.stdout).toBe('inner\n');
    const busy = run(
      process.execPath,
      [
        STEVE_JOB_BIN,
        '--jobserver',
        `fifo:${path}`,
        '--',
        'steve-job',
        '--no-wait',
        '--tokens',
        '2',
        '--',
        'echo',
        'inner',
      ],
      { env: cleanEnv({ PATH: pathWith(binDir()) }) },
    );
    expect(await exitedWithin(busy)).toEqual({ code: 75, signal: null });
    expect(busy.stderr).toContain('no token free now (1 of 2 were; --no-wait): echo not run');
    expect(count()).toBe(1);
  });

  it('a pool named explicitly still costs a real token, even with MAKEFLAGS set', async () => {
    const { path, count } = fifoPool('+');
    const dir = tempDir();
    // The command reports how many tokens are left in the fifo while it runs.
    const probe = join(dir, 'probe.sh');
    writeFileSync(probe, `dd if=${path} iflag=nonblock bs=64 count=1 2>/dev/null | wc -c\n`);
    const job = run(
      process.execPath,
      [STEVE_JOB_BIN, '--jobserver', `fifo:${path}`, '--', 'sh', probe],
      { env: cleanEnv({ MAKEFLAGS: ` --jobserver-auth=fifo:${path}` }) },
    );
    expect(await exitedWithin(job)).toEqual({ code: 0, signal: null });
    expect(job.stdout.trim()).toBe('0'); // steve-job held the only token
    expect(count()).toBe(1);
  });
});
