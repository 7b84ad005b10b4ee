// A process SIGKILLed while holding tokens: the daemon learns it from the
// pidfd and the tokens go to the next waiter within 100 ms.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CLIENTS,
  PYTHON,
  type RunningDaemon,
  startDaemon,
  waitFor,
  exitOf,
} from './helpers/daemon.js';

let daemon: RunningDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

describe('killed holder', () => {
  it('its tokens are back within 100 ms of SIGKILL', async () => {
    daemon = await startDaemon(['-j', '2']);
    const holder = spawn(PYTHON, [join(CLIENTS, 'holder.py'), daemon.jobserverPath, '2'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let holderOut = '';
    holder.stdout.setEncoding('utf8').on('data', (c: string) => (holderOut += c));
    await waitFor('the holder to take both tokens', () => holderOut.includes('holding 2'));
    expect(daemon.out()).toBe(2);

    const reader = spawn(PYTHON, [join(CLIENTS, 'blocking_reader.py'), daemon.jobserverPath], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let readerOut = '';
    reader.stdout.setEncoding('utf8').on('data', (c: string) => (readerOut += c));
    await waitFor('the reader to wait', () => daemon?.status().includes('blocking read'));

    const killedAtNs = process.hrtime.bigint(); // CLOCK_MONOTONIC, like python's time.monotonic_ns()
    holder.kill('SIGKILL');
    const gotAtNs = BigInt(
      await waitFor('the reader to get a token', () => /got \+ (\d+)/.exec(readerOut)?.[1]),
    );
    const delayMs = Number(gotAtNs - killedAtNs) / 1e6;
    expect(delayMs).toBeLessThan(100);
    expect(
      daemon.log.some((line) => /reclaim <- pid \d+ .*: 2 token\(s\), process exited/.test(line)),
    ).toBe(true);
    await exitOf(reader);
    await waitFor('all tokens back', () => daemon?.out() === 0);
  });
});
