/**
 * The processes `pnpm bench builds` starts and watches: steve-daemon on a
 * FUSE mount and a fifo front in a unique temporary directory (stopped by
 * its pid, always unmounted), a small control-socket client for `metrics`,
 * samplers of /proc/loadavg and of the pool, and CPU readings from /proc.
 */

import { type ChildProcess, execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { type Socket, createConnection } from 'node:net';
import { join } from 'node:path';
import { waitFor } from '@steve/test-support';
import { execa } from 'execa';
import { type PoolState, parsePrometheus } from './builds-math.js';
import { cpuTicksFromStat, schedstatRunNs } from './rounds.js';

/** Clock ticks per second of /proc/PID/stat (USER_HZ). */
export const CLOCK_TICKS = Number(
  execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim(),
);

/** utime + stime of a process, seconds (every thread, ended ones included). */
export function processCpuSeconds(pid: number): number {
  return cpuTicksFromStat(readFileSync(`/proc/${pid}/stat`, 'utf8')) / CLOCK_TICKS;
}

/** CPU time (ns) of every live thread of a process, from schedstat: finer than clock ticks. */
export function threadsCpuNs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += schedstatRunNs(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8'));
    } catch {
      // the thread ended meanwhile
    }
  }
  return ns;
}

/** cutime + cstime of this process (its reaped descendants), seconds. */
export function reapedChildrenCpuSeconds(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ", field 0 is the state (stat field 3): cutime is 16, cstime 17.
  const cutime = Number(fields[13]);
  const cstime = Number(fields[14]);
  if (!Number.isFinite(cutime) || !Number.isFinite(cstime))
    throw new RangeError(`cannot read cutime/cstime from: ${stat}`);
  return (cutime + cstime) / CLOCK_TICKS;
}

export function isMounted(dir: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[4] === dir);
}

/** SIGKILL a process group we started (its leader's pid); nothing when it is gone. */
export function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // gone already
  }
}

/** Resolves when `child` has exited (at once when it has). */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

// ---- the control socket -------------------------------------------------------

/** Newline-delimited JSON requests to steve's control socket, replies matched by id. */
export class Control {
  private nextId = 1;
  private buffered = '';
  private readonly pending = new Map<number, (reply: Record<string, unknown>) => void>();

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffered += chunk;
      let newline: number;
      while ((newline = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, newline);
        this.buffered = this.buffered.slice(newline + 1);
        const reply = JSON.parse(line) as Record<string, unknown>;
        const id = reply.id as number;
        this.pending.get(id)?.(reply);
        this.pending.delete(id);
      }
    });
    socket.on('error', () => undefined);
  }

  static connect(path: string): Promise<Control> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path);
      socket.once('connect', () => resolve(new Control(socket)));
      socket.once('error', reject);
    });
  }

  request(type: string): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.socket.destroyed) {
        reject(new Error('the control connection is closed'));
        return;
      }
      this.pending.set(id, (reply) => {
        if (reply.ok === true) resolve(reply.result);
        else reject(new Error(`control ${type}: ${JSON.stringify(reply.error)}`));
      });
      this.socket.write(`${JSON.stringify({ id, type })}\n`);
    });
  }

  /** The pool's gauges and counters from `metrics`. */
  async metrics(): Promise<Map<string, number>> {
    return parsePrometheus((await this.request('metrics')) as string);
  }

  close(): void {
    this.socket.destroy();
  }
}

// ---- the daemon -------------------------------------------------------------------

export interface Daemon {
  readonly pid: number;
  readonly fuseJobserver: string;
  readonly fifoFront: string;
  /**
   * A new control connection (the daemon closes one that stays silent too
   * long, and the daemons of the bench sit idle through other scenarios).
   */
  openControl(): Promise<Control>;
  output(): string;
  /** SIGTERM by pid, SIGKILL after a deadline, and the mount always gone afterwards. */
  stop(): Promise<void>;
}

/**
 * steve-daemon `-j jobs` with a FUSE front on `dir/mnt`, a fifo front
 * (`dir/jobserver.fifo`, prefetch 1) and its control socket in `dir`,
 * under `nice -n NICE` as its packaged services run it; `extra` are more
 * flags (e.g. --min-memory-avail). Ready once it said where it serves and
 * the control socket answers.
 */
export async function startDaemon(
  daemonBin: string,
  dir: string,
  jobs: number,
  nice: number,
  extra: readonly string[],
): Promise<Daemon> {
  const mountDir = join(dir, 'mnt');
  mkdirSync(mountDir, { recursive: true });
  const fifoFront = join(dir, 'jobserver.fifo');
  const controlPath = join(dir, 'control.sock');
  const child = execa(
    'nice',
    [
      '-n',
      String(nice),
      process.execPath,
      daemonBin,
      '-j',
      String(jobs),
      '--fuse',
      mountDir,
      '--fifo',
      fifoFront,
      '--fifo-prefetch',
      '1',
      '--control',
      controlPath,
      ...extra,
    ],
    { stdin: 'ignore', all: true, buffer: false, reject: false, cleanup: true },
  );
  let output = '';
  child.all?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const pid = child.pid as number;
  let gone = false;
  const done = child.then(() => {
    gone = true;
  });
  const unmount = (): void => {
    if (isMounted(mountDir)) spawnSync('umount', ['-l', mountDir]);
  };
  const stop = async (): Promise<void> => {
    if (!gone) process.kill(pid, 'SIGTERM');
    const stopped = await Promise.race([
      done.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 10_000).unref()),
    ]);
    if (!stopped) {
      process.kill(pid, 'SIGKILL');
      await done;
    }
    unmount();
  };
  let control: Control | undefined;
  try {
    await waitFor(
      'steve-daemon to serve its fronts and its control socket',
      () => {
        if (gone) throw new Error(`steve-daemon exited during start-up: ${output}`);
        return output.includes('control socket') && output.includes(fifoFront);
      },
      30_000,
    );
    control = await Control.connect(controlPath);
    await control.metrics();
  } catch (error) {
    await stop();
    throw error;
  } finally {
    control?.close();
  }
  return {
    pid,
    fuseJobserver: join(mountDir, 'jobserver'),
    fifoFront,
    openControl: () => Control.connect(controlPath),
    output: () => output,
    stop,
  };
}

// ---- samplers -------------------------------------------------------------------

/** A sampler running until stopped; `stop` resolves once its last sample is in. */
export interface Sampler<T> {
  readonly samples: T[];
  stop(): Promise<void>;
}

/** Call `sample` every `everyMs` (the next call `everyMs` after the previous one started). */
export function sampleEvery<T>(everyMs: number, sample: () => Promise<T> | T): Sampler<T> {
  const samples: T[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      try {
        samples.push(await sample());
      } catch {
        // a failed sample is a gap, not a failed run
      }
      const waitMs = everyMs - (performance.now() - started);
      if (running && waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
    }
  })();
  return {
    samples,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

export interface LoadSample {
  readonly tMs: number;
  readonly load1: number;
  /** Runnable scheduling entities now (the fourth field's numerator; the reader is one of them). */
  readonly runnable: number;
  readonly memAvailableMiB: number;
}

/** One reading of /proc/loadavg. */
export function readLoad(tMs: number): LoadSample {
  const [load1, running] = readFileSync('/proc/loadavg', 'utf8').split(' ');
  return {
    tMs,
    load1: Number(load1),
    runnable: Number((running ?? '0/0').split('/')[0]),
    memAvailableMiB: memAvailableMiB(),
  };
}

export interface PoolSample extends PoolState {
  /** Tokens out (held plus reserved) and the pool's capacity now. */
  readonly out: number;
  readonly capacity: number;
  readonly jobs: number;
  /** The daemon's own `available` gauge (capacity - out): 0 while a limit holds the capacity down. */
  readonly available: number;
  readonly limitedByMemory: boolean;
  readonly grants: number;
}

/**
 * One `metrics` reading as a pool state. `free` is what the pool of `jobs`
 * tokens has not handed out (jobs - out): a token held back by a limit is
 * idle too, which the daemon's `available` (capacity - out) does not show.
 */
export async function readPool(control: Control, now: () => number): Promise<PoolSample> {
  const m = await control.metrics();
  const get = (name: string): number => {
    const value = m.get(name);
    if (value === undefined) throw new Error(`metrics lack ${name}`);
    return value;
  };
  const out = get('steve_tokens_out');
  const jobs = get('steve_jobs');
  return {
    tMs: now(),
    out,
    jobs,
    capacity: get('steve_capacity'),
    available: get('steve_tokens_available'),
    free: Math.max(0, jobs - out),
    waiting: get('steve_waiters'),
    limitedByMemory: get('steve_limited{limit="memory"}') === 1,
    grants: get('steve_grants_total'),
  };
}

/** MemAvailable in MiB. */
export function memAvailableMiB(): number {
  const match = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  if (match === null) throw new Error('no MemAvailable in /proc/meminfo');
  return Number(match[1]) / 1024;
}
