/**
 * `pnpm bench client`: @steve/jobserver-client on a kernel fifo.
 *
 * - acquire+release pairs per second through the library (`await
 *   acquire()` + `release()`, and the synchronous `tryAcquire()`) beside raw
 *   `fs.readSync`/`fs.writeSync` of one byte on the same non-blocking fifo,
 *   in the same run (target: library >= 50% of raw);
 * - wake-up latency: the pool is empty, another process writes a token
 *   back after a random 0-25 ms pause, until our pending `acquire()`
 *   resolves; with the native uv_poll helper and with the pure-JS fallback.
 */

import { type ChildProcess, fork } from 'node:child_process';
import { closeSync, constants, openSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Jobserver, type WaitStrategy } from '@steve/jobserver-client';

export interface ClientLatencyStats {
  readonly rounds: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export interface ClientBenchResult {
  readonly pairsPerSecond: {
    readonly raw: number;
    readonly acquireRelease: number;
    readonly tryAcquireRelease: number;
  };
  /** acquireRelease / raw. */
  readonly libraryVsRaw: number;
  readonly wake: Readonly<Record<WaitStrategy, ClientLatencyStats>>;
  readonly verdicts: Readonly<Record<string, string>>;
}

const PAIRS_SECONDS = 1;

function rawPairs(path: string): number {
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  const byte = Buffer.alloc(1);
  let pairs = 0;
  const start = performance.now();
  const end = start + PAIRS_SECONDS * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 1000; i++) {
      readSync(fd, byte, 0, 1, null);
      writeSync(fd, byte, 0, 1, null);
    }
    pairs += 1000;
  }
  closeSync(fd);
  return pairs / ((performance.now() - start) / 1000);
}

async function libraryPairs(path: string, synchronous: boolean): Promise<number> {
  const jobserver = Jobserver.fromAuth({ kind: 'fifo', path }, { implicitSlot: false });
  let pairs = 0;
  const start = performance.now();
  const end = start + PAIRS_SECONDS * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 1000; i++) {
      const token = synchronous ? jobserver.tryAcquire() : await jobserver.acquire();
      if (token === null) throw new Error('tryAcquire found no token in a pool holding one');
      token.release();
    }
    pairs += 1000;
  }
  jobserver.close();
  return pairs / ((performance.now() - start) / 1000);
}

function stats(samples: number[]): ClientLatencyStats {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number): number =>
    sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  const round = (ms: number): number => Math.round(ms * 1000) / 1000;
  return {
    rounds: samples.length,
    p50Ms: round(at(0.5)),
    p99Ms: round(at(0.99)),
    maxMs: round(sorted[sorted.length - 1] ?? NaN),
  };
}

// The other process: on each message, pause 0-25 ms, note the time, write one token.
const RETURNER = `
const { openSync, writeSync } = require('node:fs');
const fd = openSync(process.argv[2], 'r+');
process.on('message', () => {
  setTimeout(() => {
    const at = performance.timeOrigin + performance.now();
    writeSync(fd, '+');
    process.send(at);
  }, Math.random() * 25);
});
process.on('disconnect', () => process.exit(0));
`;

async function wakeLatency(
  path: string,
  wait: WaitStrategy,
  rounds: number,
): Promise<ClientLatencyStats> {
  const script = join(tmpdir(), `steve-bench-returner-${process.pid}.cjs`);
  writeFileSync(script, RETURNER);
  const child: ChildProcess = fork(script, [path], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const jobserver = Jobserver.fromAuth({ kind: 'fifo', path }, { implicitSlot: false, wait });
  if (jobserver.waitStrategy !== wait)
    throw new Error(`wanted the ${wait} wait, got ${jobserver.waitStrategy}`);
  const samples: number[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const written = new Promise<number>((resolve) =>
        child.once('message', (at) => resolve(at as number)),
      );
      const acquired = jobserver.acquire().then((token) => {
        const at = performance.timeOrigin + performance.now();
        token.release();
        // Take the token out again so the pool is empty for the next round.
        const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
        readSync(fd, Buffer.alloc(1), 0, 1, null);
        closeSync(fd);
        return at;
      });
      child.send('go');
      const [writtenAt, acquiredAt] = await Promise.all([written, acquired]);
      samples.push(acquiredAt - writtenAt);
    }
  } finally {
    jobserver.close();
    child.disconnect();
    child.kill();
  }
  return stats(samples);
}

export async function runClientBench(): Promise<ClientBenchResult> {
  // A private pool holding exactly one token (create(2): one token + our implicit slot).
  const pool = Jobserver.create(2);
  try {
    const raw = rawPairs(pool.path);
    const acquireRelease = await libraryPairs(pool.path, false);
    const tryAcquireRelease = await libraryPairs(pool.path, true);
    // Empty the pool for the latency rounds: we hold its one token meanwhile.
    pool.tryAcquire(); // the implicit slot
    const held = pool.tryAcquire();
    if (held === null) throw new Error('the pool lost its token');
    const wake = {
      native: await wakeLatency(pool.path, 'native', 200),
      fallback: await wakeLatency(pool.path, 'fallback', 200),
    };
    held.release();
    const libraryVsRaw = acquireRelease / raw;
    return {
      pairsPerSecond: {
        raw: Math.round(raw),
        acquireRelease: Math.round(acquireRelease),
        tryAcquireRelease: Math.round(tryAcquireRelease),
      },
      libraryVsRaw: Math.round(libraryVsRaw * 1000) / 1000,
      wake,
      verdicts: {
        'library >= 50% of raw on a kernel fifo': libraryVsRaw >= 0.5 ? 'met' : 'NOT met',
      },
    };
  } finally {
    pool.close();
  }
}

export function clientMarkdown(result: ClientBenchResult): string {
  const { pairsPerSecond: p, wake } = result;
  const pct = (x: number): string => `${Math.round(x * 100)}%`;
  const lines = [
    '## acquire+release pairs per second, one process, one kernel fifo',
    '',
    '| path | pairs/s | vs raw |',
    '|---|---:|---:|',
    `| raw \`fs.readSync\` + \`fs.writeSync\` (1 byte, O_NONBLOCK) | ${p.raw.toLocaleString('en-US')} | 100% |`,
    `| library \`await acquire()\` + \`release()\` | ${p.acquireRelease.toLocaleString('en-US')} | ${pct(p.acquireRelease / p.raw)} |`,
    `| library \`tryAcquire()\` + \`release()\` | ${p.tryAcquireRelease.toLocaleString('en-US')} | ${pct(p.tryAcquireRelease / p.raw)} |`,
    '',
    '## wake-up latency: another process returns a token to an empty pool',
    '',
    '| wait | rounds | p50 ms | p99 ms | max ms |',
    '|---|---:|---:|---:|---:|',
    ...(['native', 'fallback'] as const).map(
      (w) =>
        `| ${w === 'native' ? 'native `uv_poll`' : 'pure-JS fallback (backoff 1-20 ms)'} | ${wake[w].rounds} | ${wake[w].p50Ms} | ${wake[w].p99Ms} | ${wake[w].maxMs} |`,
    ),
    '',
    ...Object.entries(result.verdicts).map(([what, verdict]) => `- ${what}: **${verdict}**`),
    '',
  ];
  return lines.join('\n');
}
