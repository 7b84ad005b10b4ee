// The real steve-daemon (FUSE front) as the server: the library's poll is
// what the daemon's poll reservations are for; a SIGKILLed Node client
// loses nothing; a daemon that goes away fails waiting acquires.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Jobserver, JobserverGoneError } from '../src/index.js';
import {
  type ChildRun,
  type Daemon,
  FIXTURES,
  run,
  startDaemon,
  stop,
  waitFor,
} from './helpers.js';

const CLIENT = join(FIXTURES, 'client.mjs');
const daemons: Daemon[] = [];
const children: ChildRun[] = [];
const opened: Jobserver[] = [];
afterEach(async () => {
  for (const jobserver of opened.splice(0)) jobserver.close();
  for (const child of children.splice(0)) await stop(child);
  for (const daemon of daemons.splice(0)) await daemon.stop();
});

async function daemon(jobs: number): Promise<Daemon> {
  const started = await startDaemon(['-j', String(jobs)]);
  daemons.push(started);
  return started;
}

function client(path: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildRun {
  const { CARGO_MAKEFLAGS: _c, MFLAGS: _f, ...clean } = process.env;
  const child = run(process.execPath, [CLIENT, ...args], {
    env: { ...clean, MAKEFLAGS: ` --jobserver-auth=fifo:${path}`, ...env },
  });
  children.push(child);
  return child;
}

describe('against the steve-daemon FUSE front', () => {
  it.each(['native', 'fallback'] as const)(
    'takes one token per read and returns it (%s wait)',
    async (wait) => {
      const steve = await daemon(2);
      const jobserver = Jobserver.fromAuth(
        { kind: 'fifo', path: steve.jobserverPath },
        { implicitSlot: false, wait },
      );
      opened.push(jobserver);
      const a = await jobserver.acquire();
      const b = await jobserver.acquire();
      expect([a.byte, b.byte]).toEqual([0x2b, 0x2b]);
      expect(steve.out()).toBe(2);
      expect(jobserver.tryAcquire()).toBeNull();
      a.release();
      b.release();
      expect(steve.out()).toBe(0);
    },
  );

  it('opening the pool reserves nothing: the native watcher (whose epoll probe is a poll) starts at the first wait', async () => {
    const steve = await daemon(2);
    const jobserver = Jobserver.fromAuth(
      { kind: 'fifo', path: steve.jobserverPath },
      { implicitSlot: false, wait: 'native' },
    );
    opened.push(jobserver);
    // A poll is answered before epoll_ctl returns, so a reservation would show now.
    expect(steve.status()).toMatch(/ out 0 {2}reserved 0 /);
    const token = await jobserver.acquire();
    expect(steve.out()).toBe(1);
    token.release();
  });

  it('a waiting Node client is a poller: the daemon reserves the returned token for it', async () => {
    const steve = await daemon(1);
    const holder = Jobserver.fromAuth(
      { kind: 'fifo', path: steve.jobserverPath },
      { implicitSlot: false },
    );
    opened.push(holder);
    const token = await holder.acquire();
    // The child needs its implicit slot plus one token: it waits in poll.
    const waiter = client(steve.jobserverPath, ['hold', '2']);
    await waitFor('the child to start waiting', () => waiter.stdout.includes('wait native'));
    token.release();
    await waitFor('the child to get the token', () => waiter.stdout.includes('held 2 explicit 1'));
    const pid = waiter.child.pid as number;
    // The record may reach this process's pipe a little after the child's output.
    await waitFor('the reserve record', () =>
      steve.log.some((line) => line.startsWith(`reserve -> pid ${pid} `)),
    );
    expect(steve.out()).toBe(1);
  });

  it('a SIGKILLed Node client loses nothing: the daemon reclaims its tokens', async () => {
    const steve = await daemon(3);
    const child = client(steve.jobserverPath, ['hold', '3']);
    await waitFor('the child to hold its tokens', () => child.stdout.includes('held 3 explicit 2'));
    expect(steve.out()).toBe(2);
    child.child.kill('SIGKILL');
    expect((await child.exited).signal).toBe('SIGKILL');
    await waitFor('the daemon to reclaim', () => steve.out() === 0);
    const jobserver = Jobserver.fromAuth(
      { kind: 'fifo', path: steve.jobserverPath },
      { implicitSlot: false },
    );
    opened.push(jobserver);
    const tokens = [
      await jobserver.acquire(),
      await jobserver.acquire(),
      await jobserver.acquire(),
    ];
    expect(tokens).toHaveLength(3);
  });

  it('a SIGTERMed Node client writes its tokens back itself before dying', async () => {
    const steve = await daemon(2);
    const child = client(steve.jobserverPath, ['hold', '3']);
    await waitFor('the child to hold its tokens', () => child.stdout.includes('held 3'));
    child.child.kill('SIGTERM');
    expect((await child.exited).signal).toBe('SIGTERM');
    expect(steve.out()).toBe(0);
    expect(steve.log.some((line) => line.startsWith(`return <- pid ${child.child.pid} `))).toBe(
      true,
    );
  });

  it('a waiting acquire fails with JobserverGoneError when the daemon goes away', async () => {
    const steve = await daemon(1);
    const jobserver = Jobserver.fromAuth(
      { kind: 'fifo', path: steve.jobserverPath },
      { implicitSlot: false },
    );
    opened.push(jobserver);
    const held = await jobserver.acquire();
    const outcome = jobserver.acquire().then(
      () => 'got a token',
      (error: unknown) => error,
    );
    await stop(steve.running);
    expect(await outcome).toBeInstanceOf(JobserverGoneError);
    await expect(jobserver.acquire()).rejects.toBeInstanceOf(JobserverGoneError);
    held.release(); // nothing to return it to: quiet
    expect(held.released).toBe(true);
  });
});
