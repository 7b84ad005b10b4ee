// A plain kernel fifo made by the test (make 4.4 style `fifo:PATH`), and
// the library's own bookkeeping, with both wait strategies.
import {
  closeSync,
  constants,
  existsSync,
  openSync,
  readSync,
  readdirSync,
  readlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Jobserver, JobserverClosedError, Token } from '../src/index.js';
import { mkfifo, tempDir, waitFor } from './helpers.js';

const opened: Jobserver[] = [];
const rawFds: number[] = [];
afterEach(() => {
  for (const jobserver of opened.splice(0)) jobserver.close();
  for (const fd of rawFds.splice(0)) closeSync(fd);
});

/** A fifo holding `bytes`, and a raw non-blocking descriptor on it for the test's side. */
function fifoWith(bytes: string): { path: string; raw: number; drain(): string } {
  const path = join(tempDir(), 'fifo');
  mkfifo(path);
  const raw = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  rawFds.push(raw);
  if (bytes.length > 0) writeSync(raw, bytes);
  const drain = (): string => {
    const buffer = Buffer.alloc(4096);
    try {
      return buffer.subarray(0, readSync(raw, buffer, 0, buffer.length, null)).toString('latin1');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') return '';
      throw error;
    }
  };
  return { path, raw, drain };
}

describe.each(['native', 'fallback'] as const)('a plain fifo, %s wait', (wait) => {
  const open = (path: string, implicitSlot = true): Jobserver => {
    const jobserver = Jobserver.fromAuth({ kind: 'fifo', path }, { wait, implicitSlot });
    opened.push(jobserver);
    return jobserver;
  };

  it('uses the wait strategy asked for', () => {
    const { path } = fifoWith('');
    expect(open(path).waitStrategy).toBe(wait);
  });

  it('gives the implicit slot first, then reads one byte per token and writes back exactly that byte', async () => {
    const pool = fifoWith('abc');
    const jobserver = open(pool.path);
    const implicit = await jobserver.acquire();
    expect(implicit).toBeInstanceOf(Token);
    expect(implicit.implicit).toBe(true);
    expect(implicit.byte).toBeNull();
    const first = await jobserver.acquire();
    expect(first.implicit).toBe(false);
    expect(first.byte).toBe('a'.charCodeAt(0));
    expect(jobserver.heldTokens).toBe(1);
    // Only one byte was taken: 'bc' is still in the pipe.
    expect(pool.drain()).toBe('bc');
    first.release();
    first.release(); // idempotent: written once
    implicit.release(); // nothing written for the implicit slot
    expect(pool.drain()).toBe('a');
    expect(jobserver.heldTokens).toBe(0);
  });

  it('tryAcquire returns null on an empty pool and never waits', () => {
    const jobserver = open(fifoWith('').path);
    expect(jobserver.tryAcquire()?.implicit).toBe(true);
    expect(jobserver.tryAcquire()).toBeNull();
  });

  it('serves waiters in call order when another process returns tokens', async () => {
    const pool = fifoWith('');
    const jobserver = open(pool.path, false);
    const order: string[] = [];
    const waits = ['x', 'y'].map((name) =>
      jobserver.acquire().then((token) => {
        order.push(`${name}:${String.fromCharCode(token.byte as number)}`);
        return token;
      }),
    );
    expect(jobserver.waiting).toBe(2);
    writeSync(pool.raw, '1');
    await waitFor('the first waiter', () => order.length === 1);
    writeSync(pool.raw, '2');
    const tokens = await Promise.all(waits);
    expect(order).toEqual(['x:1', 'y:2']);
    for (const token of tokens) token.release();
    expect(pool.drain()).toBe('12');
  });

  it('hands a released implicit slot to the next waiter without touching the pool', async () => {
    const pool = fifoWith('');
    const jobserver = open(pool.path);
    const implicit = await jobserver.acquire();
    const waiting = jobserver.acquire();
    implicit.release();
    const next = await waiting;
    expect(next.implicit).toBe(true);
    expect(pool.drain()).toBe('');
  });

  it('an aborted acquire leaves no token behind', async () => {
    const pool = fifoWith('');
    const jobserver = open(pool.path, false);
    const controller = new AbortController();
    const waiting = jobserver.acquire({ signal: controller.signal });
    controller.abort(new Error('gave up'));
    await expect(waiting).rejects.toThrow('gave up');
    expect(jobserver.waiting).toBe(0);
    // A token arriving after the abort stays in the pool for others.
    writeSync(pool.raw, '+');
    await new Promise((r) => setImmediate(r));
    expect(pool.drain()).toBe('+');
    await expect(jobserver.acquire({ signal: AbortSignal.abort() })).rejects.toThrow();
    expect(jobserver.heldTokens).toBe(0);
  });

  it('an acquire aborted by a timeout while tokens are scarce keeps nothing', async () => {
    const pool = fifoWith('');
    const jobserver = open(pool.path, false);
    await expect(jobserver.acquire({ signal: AbortSignal.timeout(30) })).rejects.toMatchObject({
      name: 'TimeoutError',
    });
    writeSync(pool.raw, 'q');
    expect((await jobserver.acquire()).byte).toBe('q'.charCodeAt(0));
  });

  it('close() returns every token and rejects waiters', async () => {
    const pool = fifoWith('ab');
    const jobserver = open(pool.path);
    const tokens = [
      await jobserver.acquire(),
      await jobserver.acquire(),
      await jobserver.acquire(),
    ];
    const waiting = jobserver.acquire();
    jobserver.close();
    await expect(waiting).rejects.toBeInstanceOf(JobserverClosedError);
    expect(tokens.every((t) => t.released)).toBe(true);
    expect([...pool.drain()].sort().join('')).toBe('ab');
    tokens[1]?.release(); // after close: nothing more is written
    expect(pool.drain()).toBe('');
    await expect(jobserver.acquire()).rejects.toBeInstanceOf(JobserverClosedError);
  });

  it('run() and limit() hold a token around the function and release it on failure', async () => {
    const pool = fifoWith('+');
    const jobserver = open(pool.path, false);
    let running = 0;
    let most = 0;
    const work = jobserver.limit(async (ms: number) => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, ms));
      running--;
      return ms;
    });
    // One token: the tasks run one at a time.
    expect(await Promise.all([work(5), work(5), work(5)])).toEqual([5, 5, 5]);
    expect(most).toBe(1);
    await expect(
      jobserver.run(() => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(jobserver.heldTokens).toBe(0);
    expect(pool.drain()).toBe('+');
  });
});

describe('Jobserver.create', () => {
  it('makes a private fifo holding jobs - 1 tokens plus the implicit slot, removed by close()', async () => {
    const jobserver = Jobserver.create(3);
    opened.push(jobserver);
    expect(jobserver.auth.kind).toBe('fifo');
    const tokens = [
      await jobserver.acquire(),
      await jobserver.acquire(),
      await jobserver.acquire(),
    ];
    expect(tokens.map((t) => t.implicit)).toEqual([true, false, false]);
    expect(jobserver.tryAcquire()).toBeNull();
    expect(existsSync(jobserver.path)).toBe(true);
    jobserver.close();
    expect(existsSync(jobserver.path)).toBe(false);
  });

  it('refuses a count below 1', () => {
    expect(() => Jobserver.create(0)).toThrow(/jobs must be an integer/);
  });
});

describe('Jobserver.fromEnv', () => {
  const warnings: string[] = [];
  const options = { warn: (m: string) => warnings.push(m), cwd: '/' };
  afterEach(() => {
    warnings.length = 0;
  });
  const keep = (jobserver: Jobserver | null): Jobserver | null => {
    if (jobserver !== null) opened.push(jobserver);
    return jobserver;
  };

  it('returns null without a variable, and for a disabled auth without a warning', () => {
    expect(Jobserver.fromEnv({}, options)).toBeNull();
    expect(Jobserver.fromEnv({ MAKEFLAGS: 'k -j4' }, options)).toBeNull();
    expect(Jobserver.fromEnv({ MAKEFLAGS: ' --jobserver-auth=-2,-2' }, options)).toBeNull();
    expect(warnings).toEqual([]);
  });

  it('reads a fifo auth, relative to cwd; the last auth wins; CARGO_MAKEFLAGS comes first', () => {
    const pool = fifoWith('');
    const dir = join(pool.path, '..');
    const jobserver = keep(
      Jobserver.fromEnv(
        {
          CARGO_MAKEFLAGS: `-j2 --jobserver-auth=fifo:/nonexistent --jobserver-auth=fifo:fifo`,
          MAKEFLAGS: '--jobserver-auth=fifo:/other',
        },
        { ...options, cwd: dir },
      ),
    );
    expect(jobserver?.auth).toEqual({ kind: 'fifo', path: pool.path });
    expect(warnings).toEqual([]);
  });

  it("warns like make when the descriptors are not open ('+' missing in the parent rule)", () => {
    expect(Jobserver.fromEnv({ MAKEFLAGS: ' -j3 --jobserver-auth=900,901' }, options)).toBeNull();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /^jobserver unavailable: using -j1\. {2}Add '\+' to parent make rule\./,
    );
    expect(warnings[0]).toContain('descriptor 900 is not open');
  });

  it("refuses Node's own descriptors: its epoll descriptor, and two different pipes", () => {
    const fds = readdirSync('/proc/self/fd').map(Number);
    const link = (fd: number): string => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return '';
      }
    };
    const epoll = fds.find((fd) => link(fd) === 'anon_inode:[eventpoll]');
    expect(epoll).toBeDefined();
    expect(
      Jobserver.fromEnv({ MAKEFLAGS: `--jobserver-auth=${epoll},${epoll}` }, options),
    ).toBeNull();
    expect(warnings[0]).toContain('not a pipe, device or file');

    const pipes = new Map<string, number>();
    for (const fd of fds) if (link(fd).startsWith('pipe:')) pipes.set(link(fd), fd);
    const [a, b] = [...pipes.values()];
    if (a !== undefined && b !== undefined) {
      expect(Jobserver.fromEnv({ MAKEFLAGS: `--jobserver-auth=${a},${b}` }, options)).toBeNull();
      expect(warnings[1]).toMatch(/not the same pipe|not open for/);
    }
  });

  it('warns when a fifo path cannot be opened, and for an unsupported auth', () => {
    expect(
      Jobserver.fromEnv({ MAKEFLAGS: '--jobserver-auth=fifo:/nonexistent/x' }, options),
    ).toBeNull();
    expect(
      Jobserver.fromEnv({ MAKEFLAGS: '--jobserver-auth=gmake_semaphore_1' }, options),
    ).toBeNull();
    expect(warnings[0]).toMatch(/jobserver unavailable.*ENOENT/);
    expect(warnings[1]).toMatch(/jobserver unavailable.*Windows semaphore/);
  });
});

describe('childEnv / spawnOptions', () => {
  it('sets the auth, drops -jN, keeps other flags and overwrites CARGO_MAKEFLAGS when present', () => {
    const pool = fifoWith('');
    const jobserver = Jobserver.fromAuth({ kind: 'fifo', path: pool.path });
    opened.push(jobserver);
    const env = jobserver.childEnv({
      MAKEFLAGS: 'k -j8 -- FOO=bar',
      CARGO_MAKEFLAGS: '-j8',
      PATH: '/bin',
    });
    expect(env.MAKEFLAGS).toBe(`k --jobserver-auth=fifo:${pool.path} -- FOO=bar`);
    expect(env.CARGO_MAKEFLAGS).toBe(env.MAKEFLAGS);
    expect(env.MFLAGS).toBeUndefined();
    expect(env.PATH).toBe('/bin');
  });

  it('pipe style maps one read-write descriptor as both R and W', () => {
    const pool = fifoWith('');
    const jobserver = Jobserver.fromAuth({ kind: 'fifo', path: pool.path });
    opened.push(jobserver);
    const { env, stdio } = jobserver.spawnOptions({
      style: 'pipe',
      env: {},
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    expect(env.MAKEFLAGS).toBe(' --jobserver-auth=3,3');
    expect(stdio.slice(0, 3)).toEqual(['ignore', 'pipe', 'inherit']);
    expect(typeof stdio[3]).toBe('number');
    const flags = readlinkSync(`/proc/self/fd/${stdio[3] as number}`);
    expect(flags).toBe(pool.path);
  });
});
