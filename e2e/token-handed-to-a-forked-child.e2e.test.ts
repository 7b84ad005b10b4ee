// A process acquires a token, forks, and exits, leaving the child to run the
// job and return the token on the inherited descriptor. The daemon keeps the
// token out while the child still has the description open (it used to
// reclaim it at the parent's exit: one more job than the pool), takes it back
// from the child, and reclaims it at the last close if the child never writes.
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { PYTHON, type RunningDaemon, startDaemon, waitFor } from './helpers/daemon.js';

let daemon: RunningDaemon | null = null;
const children: number[] = [];
afterEach(async () => {
  for (const pid of children.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await daemon?.stop();
  daemon = null;
});

/** The parent takes a token, forks a child that holds it until SIGUSR1, and exits. */
const HAND_OFF = `
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
fd = os.open(sys.argv[1], os.O_RDWR)
assert os.read(fd, 1) == b"+"
pid = os.fork()
if pid == 0:
    print("child", os.getpid(), flush=True)
    signal.sigwait([signal.SIGUSR1]) # the job runs until the test says so
    if sys.argv[2] == "return":
        os.write(fd, b"+")
    os._exit(0)
os._exit(0)                          # the parent leaves, the child has the token
`;

function handOff(path: string, mode: 'return' | 'keep') {
  const parent = spawn(PYTHON, ['-c', HAND_OFF, path, mode], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  parent.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  return {
    parent,
    childPid: async (): Promise<number> => {
      const pid = await waitFor('the child', () => /child (\d+)/.exec(out)?.[1]);
      children.push(Number(pid));
      return Number(pid);
    },
  };
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('a token handed to a forked child', () => {
  it('stays out while the child runs, and comes back when the child writes it', async () => {
    daemon = await startDaemon(['-j', '1']);
    const run = handOff(daemon.jobserverPath, 'return');
    const child = await run.childPid();
    const parentPid = run.parent.pid as number;
    await waitFor('the parent to exit and be reported', () =>
      daemon?.log.some((line) => line.startsWith(`reclaim <- pid ${parentPid} `)),
    );
    expect(daemon.out(), daemon.log.join('\n')).toBe(1); // the child's job still holds the pool's only token
    expect(daemon.status()).toContain('its open file is still in use');
    process.kill(child, 'SIGUSR1');
    await waitFor('the child to exit', () => !alive(child));
    await waitFor('the token back', () => daemon?.out() === 0);
    expect(daemon.log.some((line) => line.startsWith('ENOSPC'))).toBe(false);
  });

  it('comes back at the last close when the child exits without writing it', async () => {
    daemon = await startDaemon(['-j', '1']);
    const run = handOff(daemon.jobserverPath, 'keep');
    const child = await run.childPid();
    const parentPid = run.parent.pid as number;
    await waitFor('the parent reported gone', () =>
      daemon?.log.some((line) => line.startsWith(`reclaim <- pid ${parentPid} `)),
    );
    expect(daemon.out()).toBe(1);
    process.kill(child, 'SIGUSR1');
    await waitFor('the child to exit', () => !alive(child));
    await waitFor('the token back', () => daemon?.out() === 0);
  });
});
