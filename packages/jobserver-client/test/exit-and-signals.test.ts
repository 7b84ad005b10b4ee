// Tokens go back when a client process ends: normal exit, process.exit(),
// SIGINT/SIGTERM/SIGHUP (then the signal's default action still happens),
// and not behind the back of an application that handles the signal itself.
// runWithToken in its own process: statuses, 128+signal, signal forwarding.
import {
  closeSync,
  constants,
  existsSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FIXTURES, REPO, type ChildRun, mkfifo, run, stop, tempDir, waitFor } from './helpers.js';

const CLIENT = join(FIXTURES, 'client.mjs');
const RUN = join(FIXTURES, 'run.mjs');
const PEER = join(FIXTURES, 'peer.mjs');
const SIGNAL_EXIT_CLIENT = join(FIXTURES, 'signal-exit-client.mjs');
const COUNT_SIGNALS = join(FIXTURES, 'count-signals.mjs');
const ON_A_TTY = join(FIXTURES, 'on-a-tty.py');

/**
 * signal-exit 4's ESM entry in the workspace's node_modules (a dependency of
 * vitest's tooling, not of this package): pnpm's hoisted copy, else any
 * signal-exit@4 in the store.
 */
function signalExitModule(): string {
  const store = join(REPO, 'node_modules', '.pnpm');
  const candidates = [join(store, 'node_modules', 'signal-exit')];
  if (existsSync(store)) {
    for (const entry of readdirSync(store).filter((e) => e.startsWith('signal-exit@4'))) {
      candidates.push(join(store, entry, 'node_modules', 'signal-exit'));
    }
  }
  for (const dir of candidates) {
    const entry = join(dir, 'dist', 'mjs', 'index.js');
    if (!existsSync(entry)) continue;
    const { version } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
      version: string;
    };
    if (version.startsWith('4.')) return entry;
  }
  throw new Error(`signal-exit 4 not found under ${store}`);
}

const children: ChildRun[] = [];
const rawFds: number[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) await stop(child);
  for (const fd of rawFds.splice(0)) closeSync(fd);
});

function pool(tokens: string): { path: string; count(): number } {
  const path = join(tempDir(), 'fifo');
  mkfifo(path);
  const raw = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  rawFds.push(raw);
  writeSync(raw, tokens);
  // Count the tokens in the pipe without taking them: read all, write back.
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

function start(args: string[], path: string, extraEnv: NodeJS.ProcessEnv = {}): ChildRun {
  const { CARGO_MAKEFLAGS: _c, MFLAGS: _f, ...clean } = process.env;
  const child = run(process.execPath, args, {
    env: { ...clean, MAKEFLAGS: ` -j4 --jobserver-auth=fifo:${path}`, ...extraEnv },
  });
  children.push(child);
  return child;
}

describe('a Node client process holding tokens', () => {
  it('returns them on process.exit()', async () => {
    const { path, count } = pool('+++');
    const child = start([CLIENT, 'hold', '3', 'exit'], path);
    expect(await child.exited).toEqual({ code: 0, signal: null });
    expect(child.stdout).toContain('held 3 explicit 2');
    expect(count()).toBe(3);
  });

  it.each(['SIGINT', 'SIGTERM', 'SIGHUP'] as const)(
    'returns them on %s, then dies of the signal',
    async (signal) => {
      const { path, count } = pool('+++');
      const child = start([CLIENT, 'hold', '3'], path);
      await waitFor('the client to hold its tokens', () => child.stdout.includes('held 3'));
      expect(count()).toBe(1);
      child.child.kill(signal);
      expect(await child.exited).toEqual({ code: null, signal });
      expect(count()).toBe(3);
    },
  );

  it('leaves SIGTERM to an application that handles it, and still returns tokens when it exits', async () => {
    const { path, count } = pool('++');
    const child = start([CLIENT, 'hold', '3', 'handled'], path);
    await waitFor('the client to hold its tokens', () => child.stdout.includes('held 3'));
    child.child.kill('SIGTERM');
    expect(await child.exited).toEqual({ code: 0, signal: null });
    expect(child.stdout).toContain('handled');
    expect(count()).toBe(2);
  });

  it.each(['before', 'after'] as const)(
    'with signal-exit loaded (its onExit registered %s the first token), SIGINT still returns them and kills',
    async (order) => {
      const { path, count } = pool('+++');
      const child = start([SIGNAL_EXIT_CLIENT, signalExitModule(), '3', order], path);
      await waitFor('the client to hold its tokens', () => child.stdout.includes('held 3'));
      expect(count()).toBe(1);
      child.child.kill('SIGINT');
      // Before the fix each side left the signal to the other: it was swallowed.
      const exited = await Promise.race([
        child.exited,
        new Promise<'alive'>((r) => setTimeout(() => r('alive'), 5_000).unref()),
      ]);
      expect(exited).toEqual({ code: null, signal: 'SIGINT' });
      expect(count()).toBe(3);
      // signal-exit still did its job: its callback ran, told of the signal.
      expect(child.stdout).toContain('signal-exit callback null SIGINT');
    },
  );

  it('the pure-JS fallback returns them too', async () => {
    const { path, count } = pool('++');
    const child = start([CLIENT, 'hold', '3'], path, { STEVE_JOBSERVER_NATIVE: '0' });
    await waitFor('the client to hold its tokens', () => child.stdout.includes('held 3'));
    expect(child.stdout).toContain('wait fallback');
    child.child.kill('SIGTERM');
    expect((await child.exited).signal).toBe('SIGTERM');
    expect(count()).toBe(2);
  });
});

describe('runWithToken in its own process', () => {
  it('passes a fifo auth to a fifo-style command, holds the token meanwhile and returns its status', async () => {
    const { path, count } = pool('+-');
    const out = join(tempDir(), 'peer.json');
    const child = start([RUN, '1', 'auto', process.execPath, PEER, '7', out], path, {
      MAKEFLAGS: `k -j4 --jobserver-auth=fifo:${path} -- V=1`,
    });
    expect(await child.exited).toEqual({ code: 7, signal: null });
    expect(child.stdout).toContain('status 7');
    const seen = JSON.parse(readFileSync(out, 'utf8')) as { makeflags: string; took: string };
    // -j4 removed, other flags kept. run.mjs (no implicit slot) held '+', so
    // the peer's own read got the other token, '-'.
    expect(seen.makeflags).toBe(`k --jobserver-auth=fifo:${path} -- V=1`);
    expect(seen.took).toBe('-');
    expect(count()).toBe(2);
  });

  it('forwards SIGINT to the command, resolves 128+2 and returns the tokens', async () => {
    const { path, count } = pool('+++');
    const out = join(tempDir(), 'peer.json');
    const child = start([RUN, '2', 'fifo', process.execPath, PEER, 'wait', out], path);
    await waitFor('the command to start', () => {
      try {
        return (JSON.parse(readFileSync(out, 'utf8')) as { ready: boolean }).ready;
      } catch {
        return false;
      }
    });
    expect(count()).toBe(1); // two held by run.mjs while the command runs
    child.child.kill('SIGINT');
    expect(await child.exited).toEqual({ code: 130, signal: null });
    expect(child.stdout).toContain('status 130 signal SIGINT');
    expect(count()).toBe(3);
  });

  it('with stdin on a TTY, SIGINT to the process group (Ctrl-C) reaches the command once, not forwarded again', async () => {
    const { path, count } = pool('++');
    const out = join(tempDir(), 'signals');
    const { CARGO_MAKEFLAGS: _c, MFLAGS: _f, ...clean } = process.env;
    // A process group of its own, as the terminal's foreground job.
    const child = run(
      'python3',
      [ON_A_TTY, process.execPath, RUN, '1', 'fifo', process.execPath, COUNT_SIGNALS, out],
      { env: { ...clean, MAKEFLAGS: ` -j4 --jobserver-auth=fifo:${path}` }, detached: true },
    );
    children.push(child);
    await waitFor('the command to start', () => existsSync(out) && readFileSync(out, 'utf8'));
    expect(count()).toBe(1);
    process.kill(-(child.child.pid as number), 'SIGINT');
    expect(await child.exited).toEqual({ code: 130, signal: null });
    expect(child.stdout).toContain('status 130 signal SIGINT');
    expect(readFileSync(out, 'utf8')).toBe('ready\nINT\n');
    expect(count()).toBe(2);
  });

  it('dieOfSignal after cleanup: the wrapper dies of the signal its command died of, tokens back', async () => {
    const { path, count } = pool('++');
    const child = start([RUN, '1', 'fifo', 'sh', '-c', 'kill -INT $$'], path, {
      RUN_DIE_OF_SIGNAL: '1',
    });
    expect(await child.exited).toEqual({ code: null, signal: 'SIGINT' });
    expect(child.stdout).toContain('status 130 signal SIGINT');
    expect(count()).toBe(2);
    const exited = start([RUN, '1', 'fifo', 'sh', '-c', 'exit 3'], path, {
      RUN_DIE_OF_SIGNAL: '1',
    });
    expect(await exited.exited).toEqual({ code: 3, signal: null });
    expect(count()).toBe(2);
  });

  it('a command that cannot be started is an error that names it; tokens come back', async () => {
    const { path, count } = pool('+');
    const child = start([RUN, '1', 'fifo', '/nonexistent/cmd'], path);
    const { code } = await child.exited;
    expect(code).not.toBe(0);
    expect(child.stderr).toContain('cannot run /nonexistent/cmd');
    expect(count()).toBe(1);
  });
});
