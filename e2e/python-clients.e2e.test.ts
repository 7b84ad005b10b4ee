// Debian's python3 as reference clients of the FUSE jobserver file: a
// blocking reader, a poller (select + O_NONBLOCK read, like GNU make) and an
// O_NONBLOCK reader, each a separate process.
import { spawn, spawnSync } from 'node:child_process';
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

function python(
  code: string,
  path: string,
): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(PYTHON, ['-c', code, path], { encoding: 'utf8', timeout: 20_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('python3 clients of the FUSE file', () => {
  it('one byte per read whatever the size; O_NONBLOCK gets EAGAIN when the pool is empty; all comes back', async () => {
    daemon = await startDaemon(['-j', '2']);
    const result = python(
      `
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
a = os.read(fd, 100)
b = os.read(fd, 100)
nb = os.open(sys.argv[1], os.O_RDWR | os.O_NONBLOCK)
try:
    os.read(nb, 1)
    print("no EAGAIN")
except BlockingIOError:
    print("EAGAIN")
print(a, b, os.write(fd, a + b))
try:
    os.write(fd, b"+")
    print("extra write accepted")
except OSError as e:
    print(errno.errorcode[e.errno])
`,
      daemon.jobserverPath,
    );
    expect(result.stderr).toBe('');
    expect(result.stdout.split('\n')).toEqual(['EAGAIN', "b'+' b'+' 2", 'ENOSPC', '']);
    await waitFor('all tokens back', () => daemon?.out() === 0);
  });

  it('a blocking reader waits for a token written back by another process', async () => {
    daemon = await startDaemon(['-j', '1']);
    const holder = spawn(PYTHON, [join(CLIENTS, 'holder.py'), daemon.jobserverPath, '1'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let holderOut = '';
    holder.stdout.setEncoding('utf8').on('data', (c: string) => (holderOut += c));
    await waitFor('the holder to hold', () => holderOut.includes('holding'));
    const reader = spawn(PYTHON, [join(CLIENTS, 'blocking_reader.py'), daemon.jobserverPath], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let readerOut = '';
    reader.stdout.setEncoding('utf8').on('data', (c: string) => (readerOut += c));
    await waitFor(
      'the reader to block',
      () => readerOut.includes('waiting') && daemon?.status().includes('blocking read'),
    );
    expect(readerOut).not.toContain('got');
    holder.kill('SIGTERM');
    await waitFor('the reader to get the token', () => readerOut.includes('got +'));
    await exitOf(reader);
    await waitFor('all tokens back', () => daemon?.out() === 0);
  });

  it('a poller competing with two blocking readers gets its share (poll reservations)', async () => {
    daemon = await startDaemon(['-j', '1']);
    const kinds = ['poller', 'blocking', 'blocking'];
    const runs = kinds.map((kind) => {
      const child = spawn(
        PYTHON,
        [join(CLIENTS, 'compete.py'), daemon!.jobserverPath, kind, '3', '5'],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
      return new Promise<string>((resolve) => child.on('exit', () => resolve(out)));
    });
    const outputs = await Promise.all(runs);
    const grants = outputs.map((line) => Number(line.trim().split(' ')[1]));
    const total = grants.reduce((a, b) => a + b, 0);
    const pollerShare = (grants[0] ?? 0) / total;
    // Fair share is 1/3; a plain pipe gives a poller almost nothing (0.3% measured).
    expect(total).toBeGreaterThan(100);
    expect(pollerShare).toBeGreaterThan(0.2);
    expect(daemon.log.some((line) => line.startsWith('reserve ->'))).toBe(true);
    await waitFor('all tokens back', () => daemon?.out() === 0);
  });
});
