/**
 * `pnpm bench tokens`: what a client sees through steve's FUSE front, beside
 * a plain kernel fifo and a bare single-threaded C libfuse3 server (the floor
 * of the FUSE path), all with the same python3 client in the same run.
 *
 * - acquire+release pairs per second (one process: read 1 byte, write it back);
 * - wake-up latency: release -> a blocked reader returns; release -> a
 *   poller's select returns (one token, two processes);
 * - the daemon's CPU time while idle.
 */

import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const BENCH = join(HERE, '..');
const REPO = join(BENCH, '..');
const DAEMON_BIN = join(REPO, 'packages', 'steve-daemon', 'bin', 'steve-daemon.js');
const PYTHON = '/usr/bin/python3';

export interface LatencyStats {
  readonly rounds: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export interface TokensBenchResult {
  readonly pairsPerSecond: {
    readonly fifo: number;
    readonly bareFuse: number;
    readonly steveFuse: number;
  };
  readonly steveVsBare: number;
  readonly steveVsFifo: number;
  readonly wake: {
    readonly fifoBlocked: LatencyStats;
    readonly fifoPoller: LatencyStats;
    readonly steveBlocked: LatencyStats;
    readonly stevePoller: LatencyStats;
  };
  readonly idleCpuTicks: number;
  readonly idleSeconds: number;
  readonly verdicts: Readonly<Record<string, string>>;
}

function waitForLine(child: ChildProcess, pattern: RegExp, deadlineMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(
      () => reject(new Error(`no ${pattern} within ${deadlineMs} ms: ${text}`)),
      deadlineMs,
    );
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
      const match = pattern.exec(text);
      if (match) {
        clearTimeout(timer);
        resolve(match[0]);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited (${code}) before ${pattern}: ${text}`));
    });
  });
}

function runPython(args: string[], timeoutMs = 60_000): string {
  const result = spawnSync(PYTHON, args, { encoding: 'utf8', timeout: timeoutMs });
  if (result.status !== 0) throw new Error(`python3 ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout;
}

function pairsPerSecond(path: string, seconds: number): number {
  const out = runPython([join(BENCH, 'clients', 'pairs.py'), path, String(seconds)]);
  const match = /pairs (\d+) seconds ([\d.]+)/.exec(out);
  if (!match) throw new Error(`pairs.py printed: ${out}`);
  return Number(match[1]) / Number(match[2]);
}

function wakeLatency(path: string, mode: 'block' | 'poll', rounds: number): LatencyStats {
  const out = runPython([join(BENCH, 'clients', 'wake.py'), path, mode, String(rounds)], 120_000);
  const latencies = out
    .trim()
    .split(/\s+/)
    .map((ns) => Number(ns) / 1e6);
  latencies.sort((a, b) => a - b);
  const q = (p: number): number =>
    latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? Number.NaN;
  return {
    rounds: latencies.length,
    p50Ms: q(0.5),
    p99Ms: q(0.99),
    maxMs: latencies.at(-1) ?? Number.NaN,
  };
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

function unmount(dir: string): void {
  spawnSync('umount', ['-l', dir]);
}

export async function runTokensBench(
  options: { seconds?: number; rounds?: number } = {},
): Promise<TokensBenchResult> {
  const seconds = options.seconds ?? 3;
  const rounds = options.rounds ?? 400;
  if (process.getuid?.() !== 0)
    throw new Error('pnpm bench tokens mounts FUSE file systems: run it as root');
  const dir = mkdtempSync(join(tmpdir(), 'steve-bench-tokens-'));
  const cleanups: Array<() => void> = [];
  try {
    // A plain kernel fifo holding one token.
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const fifoFd = openSync(fifo, 'r+');
    cleanups.push(() => closeSync(fifoFd));
    writeSync(fifoFd, '+');

    // The bare C server, one token.
    const bare = join(dir, 'bare-fuse-server');
    const flags = execFileSync('pkg-config', ['--cflags', '--libs', 'fuse3'], { encoding: 'utf8' })
      .trim()
      .split(/\s+/);
    execFileSync('cc', ['-O2', '-o', bare, join(BENCH, 'native', 'bare-fuse-server.c'), ...flags]);
    const bareMount = join(dir, 'bare');
    mkdirSync(bareMount);
    const bareServer = spawn(bare, [bareMount, '1'], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(() => {
      unmount(bareMount);
      bareServer.kill('SIGKILL');
    });
    await waitForLine(bareServer, /ready/, 10_000);

    // steve-daemon's FUSE front, one token.
    const steveMount = join(dir, 'steve');
    const daemon = spawn(process.execPath, [DAEMON_BIN, '-j', '1', '--fuse', steveMount], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    cleanups.push(() => {
      daemon.kill('SIGTERM');
      unmount(steveMount);
    });
    await waitForLine(daemon, /serving 1 tokens/, 20_000);
    const steve = join(steveMount, 'jobserver');

    // Idle CPU first, while nothing has touched the daemon.
    const idleSeconds = 5;
    await new Promise((r) => setTimeout(r, 500));
    const before = cpuTicks(daemon.pid as number);
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const idleCpuTicks = cpuTicks(daemon.pid as number) - before;

    const pairs = {
      fifo: pairsPerSecond(fifo, seconds),
      bareFuse: pairsPerSecond(join(bareMount, 'jobserver'), seconds),
      steveFuse: pairsPerSecond(steve, seconds),
    };
    const wake = {
      fifoBlocked: wakeLatency(fifo, 'block', rounds),
      fifoPoller: wakeLatency(fifo, 'poll', rounds),
      steveBlocked: wakeLatency(steve, 'block', rounds),
      stevePoller: wakeLatency(steve, 'poll', rounds),
    };
    const steveVsBare = pairs.steveFuse / pairs.bareFuse;
    return {
      pairsPerSecond: pairs,
      steveVsBare,
      steveVsFifo: pairs.steveFuse / pairs.fifo,
      wake,
      idleCpuTicks,
      idleSeconds,
      verdicts: {
        rate: steveVsBare >= 0.65 ? 'met' : 'MISSED',
        blockedWake: wake.steveBlocked.p99Ms < 1 ? 'met' : 'MISSED',
        pollerWake: wake.stevePoller.p99Ms < 2 ? 'met' : 'MISSED',
        idle: idleCpuTicks === 0 ? 'met' : 'MISSED',
      },
    };
  } finally {
    for (const cleanup of cleanups.reverse()) {
      try {
        cleanup();
      } catch {
        // keep cleaning up
      }
    }
    await new Promise((r) => setTimeout(r, 300));
    rmSync(dir, { recursive: true, force: true });
  }
}

export function tokensMarkdown(r: TokensBenchResult): string {
  const n = (x: number): string => Math.round(x).toLocaleString('en-US');
  const ms = (x: number): string => x.toFixed(3);
  return [
    '### Acquire+release pairs per second (python3 client, one process)',
    '',
    '| target | pairs/s |',
    '|---|---|',
    `| kernel fifo | ${n(r.pairsPerSecond.fifo)} |`,
    `| bare single-threaded C libfuse3 server (floor of the FUSE path) | ${n(r.pairsPerSecond.bareFuse)} |`,
    `| steve-daemon FUSE front | ${n(r.pairsPerSecond.steveFuse)} |`,
    '',
    `steve / bare C FUSE: ${(r.steveVsBare * 100).toFixed(1)}% (target >= 65%: ${r.verdicts.rate}); steve / kernel fifo: ${(r.steveVsFifo * 100).toFixed(1)}%.`,
    '',
    '### Wake-up latency (release -> waiter returns), one token, two processes',
    '',
    '| target | waiter | rounds | p50 ms | p99 ms | max ms |',
    '|---|---|---|---|---|---|',
    `| kernel fifo | blocked read | ${r.wake.fifoBlocked.rounds} | ${ms(r.wake.fifoBlocked.p50Ms)} | ${ms(r.wake.fifoBlocked.p99Ms)} | ${ms(r.wake.fifoBlocked.maxMs)} |`,
    `| kernel fifo | select + read | ${r.wake.fifoPoller.rounds} | ${ms(r.wake.fifoPoller.p50Ms)} | ${ms(r.wake.fifoPoller.p99Ms)} | ${ms(r.wake.fifoPoller.maxMs)} |`,
    `| steve FUSE | blocked read | ${r.wake.steveBlocked.rounds} | ${ms(r.wake.steveBlocked.p50Ms)} | ${ms(r.wake.steveBlocked.p99Ms)} | ${ms(r.wake.steveBlocked.maxMs)} |`,
    `| steve FUSE | select + read | ${r.wake.stevePoller.rounds} | ${ms(r.wake.stevePoller.p50Ms)} | ${ms(r.wake.stevePoller.p99Ms)} | ${ms(r.wake.stevePoller.maxMs)} |`,
    '',
    `Targets: p99 < 1 ms for blocked readers (${r.verdicts.blockedWake}), < 2 ms for pollers (${r.verdicts.pollerWake}).`,
    '',
    `Daemon CPU while idle: ${r.idleCpuTicks} clock ticks in ${r.idleSeconds} s (target 0: ${r.verdicts.idle}).`,
    '',
  ].join('\n');
}
