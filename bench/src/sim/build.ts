/**
 * A simulated build: one client process running a DAG of jobs, each job
 * needing one token. The first token is the build's implicit slot (taken by
 * the emerge shim with a blocking read and kept until the build ends); more
 * tokens are taken the way real clients take them:
 *
 * - `blocking`: a helper thread in a blocking read whenever there is a ready
 *   job and no free token (cargo/rustc via jobserver-rs).
 * - `poller`: poll, then a non-blocking read; EAGAIN means poll again (GNU
 *   make's pselect + read, Portage's add_reader).
 * - `lazy`: non-blocking reads only when one of its own jobs ends, never
 *   waiting (ninja 1.13).
 *
 * A job's token goes back when the job ends (as make and jobserver-rs do),
 * except the implicit one, which the next ready job reuses.
 */

import type { EventLoop, Random } from './loop.js';
import type { Machine } from './machine.js';
import type { ReadResult, SimPool } from './pools.js';

export type Behaviour = 'blocking' | 'poller' | 'lazy';

export interface JobSpec {
  readonly durationMs: number;
  readonly memMiB: number;
  readonly deps: readonly number[];
}

export interface BuildSpec {
  readonly name: string;
  readonly behaviour: Behaviour;
  readonly startMs: number;
  readonly jobs: readonly JobSpec[];
  /** The process dies (SIGKILL) at this time, holding whatever it holds. */
  readonly crashAtMs?: number;
  /**
   * Pollers only: every Nth POLLIN is not followed by a read (a make
   * sub-make whose own job ended meanwhile, Portage's reader after its last
   * job); the build asks again only when one of its jobs ends.
   */
  readonly ignoreEveryNthWakeup?: number;
}

/** What the metrics need to know, reported by every build as it runs. */
export interface BuildObserver {
  tokenGranted(build: Build, waitedMs: number | null): void;
  tokensChanged(build: Build): void;
}

export class Build {
  readonly pid: number;
  private readonly remainingDeps: number[];
  private readonly dependents: number[][];
  private readonly ready: number[] = [];
  private running = 0;
  private unfinished: number;
  tokens = 0;
  private acquiring = false;
  private dead = false;
  firstTokenAtMs: number | null = null;
  doneAtMs: number | null = null;
  grants = 0;
  private wakeups = 0;

  constructor(
    readonly spec: BuildSpec,
    pid: number,
    private readonly loop: EventLoop,
    private readonly pool: SimPool,
    private readonly machine: Machine | null,
    private readonly observer: BuildObserver,
  ) {
    this.pid = pid;
    this.remainingDeps = spec.jobs.map((job) => job.deps.length);
    this.dependents = spec.jobs.map(() => []);
    spec.jobs.forEach((job, index) => {
      for (const dep of job.deps) this.dependents[dep]?.push(index);
    });
    spec.jobs.forEach((job, index) => {
      if (job.deps.length === 0) this.ready.push(index);
    });
    this.unfinished = spec.jobs.length;
    loop.at(spec.startMs, () => this.start());
    if (spec.crashAtMs !== undefined) loop.at(spec.crashAtMs, () => this.crash());
  }

  get done(): boolean {
    return this.doneAtMs !== null;
  }

  private start(): void {
    // The emerge shim: one blocking read for the build's implicit slot.
    const askedAtMs = this.loop.nowMs;
    this.acquiring = true;
    this.pool.read(this.pid, true, (result) => {
      this.acquiring = false;
      if (result === 'token') this.gotToken(askedAtMs);
    });
  }

  private gotToken(askedAtMs: number | null): void {
    if (this.dead) return;
    this.tokens += 1;
    this.grants += 1;
    if (this.firstTokenAtMs === null) this.firstTokenAtMs = this.loop.nowMs;
    this.observer.tokenGranted(this, askedAtMs === null ? null : this.loop.nowMs - askedAtMs);
    this.observer.tokensChanged(this);
    this.startReadyJobs();
    this.acquireMore();
  }

  private startReadyJobs(): void {
    while (this.running < this.tokens && this.ready.length > 0) {
      const index = this.ready.shift() as number;
      const job = this.spec.jobs[index] as JobSpec;
      this.running += 1;
      const rampMs = Math.min(2000, job.durationMs / 3);
      const handle = this.machine?.start(job.memMiB, rampMs, this.loop.nowMs);
      if (this.machine && handle) {
        const machine = this.machine;
        this.loop.after(rampMs, () => {
          if (!this.dead) machine.check(this.loop.nowMs);
        });
      }
      this.loop.after(job.durationMs, () => {
        if (this.dead) return;
        if (handle) this.machine?.end(handle);
        this.jobEnded(index);
      });
    }
  }

  private jobEnded(index: number): void {
    this.running -= 1;
    this.unfinished -= 1;
    for (const next of this.dependents[index] ?? []) {
      this.remainingDeps[next] = (this.remainingDeps[next] ?? 1) - 1;
      if (this.remainingDeps[next] === 0) this.ready.push(next);
    }
    if (this.unfinished === 0) {
      this.finish();
      return;
    }
    // Return the ended job's token, keeping the implicit slot.
    if (this.tokens > 1 && this.tokens > this.running) {
      this.tokens -= 1;
      this.pool.write(this.pid);
      this.observer.tokensChanged(this);
    }
    this.startReadyJobs();
    this.acquireMore();
  }

  private finish(): void {
    this.doneAtMs = this.loop.nowMs;
    while (this.tokens > 0) {
      this.tokens -= 1;
      this.pool.write(this.pid);
    }
    this.observer.tokensChanged(this);
    this.pool.exit(this.pid);
  }

  private crash(): void {
    if (this.done || this.dead) return;
    this.dead = true;
    this.doneAtMs = this.loop.nowMs;
    this.tokens = 0;
    this.observer.tokensChanged(this);
    this.pool.exit(this.pid);
  }

  private wantsToken(): boolean {
    return !this.dead && this.tokens > 0 && this.ready.length > 0 && this.running >= this.tokens;
  }

  /** Ask for one more token the way this kind of client does. */
  private acquireMore(): void {
    if (this.acquiring || !this.wantsToken()) return;
    const askedAtMs = this.loop.nowMs;
    switch (this.spec.behaviour) {
      case 'blocking':
        this.acquiring = true;
        this.pool.read(this.pid, true, (result: ReadResult) => {
          this.acquiring = false;
          if (result === 'token') this.gotToken(askedAtMs);
        });
        return;
      case 'poller':
        this.acquiring = true;
        this.pollThenRead(askedAtMs);
        return;
      case 'lazy':
        // Tries right after a token or a job's end; never waits for one.
        this.acquiring = true;
        this.pool.read(this.pid, false, (result) => {
          this.acquiring = false;
          if (result === 'token') this.gotToken(null);
        });
        return;
    }
  }

  private pollThenRead(askedAtMs: number): void {
    if (this.dead) return;
    const readable = this.pool.poll(this.pid, () => {
      const every = this.spec.ignoreEveryNthWakeup;
      this.wakeups += 1;
      if (every !== undefined && this.wakeups % every === 0) {
        this.acquiring = false; // stopped wanting it; asks again when a job ends
        return;
      }
      this.pollThenRead(askedAtMs);
    });
    if (!readable) return;
    this.pool.read(this.pid, false, (result) => {
      if (result === 'token') {
        this.acquiring = false;
        this.gotToken(askedAtMs);
      } else {
        this.pollThenRead(askedAtMs);
      }
    });
  }
}

/** Independent jobs (no dependencies), log-normal durations around a median. */
export function flatJobs(random: Random, count: number, medianMs: number, memMiB = 300): JobSpec[] {
  return Array.from({ length: count }, () => ({
    durationMs: random.logNormal(medianMs, 0.5),
    memMiB,
    deps: [],
  }));
}

/**
 * A build DAG: compile jobs in `layers` (each depending on one or two jobs of
 * the layer before, like generated headers or libraries), then a link job
 * depending on the last layer.
 */
export function dagJobs(
  random: Random,
  count: number,
  medianMs: number,
  layers = 3,
  memMiB = 300,
): JobSpec[] {
  const jobs: JobSpec[] = [];
  const perLayer = Math.max(1, Math.floor((count - 1) / layers));
  let previous: number[] = [];
  for (let layer = 0; layer < layers; layer++) {
    const current: number[] = [];
    for (let i = 0; i < perLayer; i++) {
      const deps =
        previous.length === 0
          ? []
          : [
              previous[Math.floor(random.next() * previous.length)] as number,
              previous[Math.floor(random.next() * previous.length)] as number,
            ];
      current.push(jobs.length);
      jobs.push({ durationMs: random.logNormal(medianMs, 0.5), memMiB, deps: [...new Set(deps)] });
    }
    previous = current;
  }
  jobs.push({ durationMs: medianMs * 2, memMiB: memMiB * 2, deps: previous });
  return jobs;
}

/** The longest chain of durations through a DAG. */
export function criticalPathMs(jobs: readonly JobSpec[]): number {
  const finish: number[] = [];
  let longest = 0;
  jobs.forEach((job, index) => {
    const start = Math.max(0, ...job.deps.map((dep) => finish[dep] ?? 0));
    finish[index] = start + job.durationMs;
    longest = Math.max(longest, finish[index] as number);
  });
  return longest;
}
