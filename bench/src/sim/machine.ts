/**
 * The simulated machine's memory: jobs' resident memory ramps up linearly
 * after they start (compilers grow while they parse and optimise), and an
 * OOM is counted whenever what jobs use exceeds what the machine has.
 * CPU is not modelled: every scenario has at least as many cores as tokens.
 */

interface RunningJob {
  readonly memMiB: number;
  readonly startMs: number;
  readonly rampMs: number;
}

export class Machine {
  private readonly running = new Set<RunningJob>();
  ooms = 0;
  peakUsedMiB = 0;

  constructor(
    readonly totalMiB: number,
    readonly baseUsedMiB: number,
  ) {}

  usedMiB(nowMs: number): number {
    let used = this.baseUsedMiB;
    for (const job of this.running) {
      const ramp = job.rampMs <= 0 ? 1 : Math.min(1, (nowMs - job.startMs) / job.rampMs);
      used += job.memMiB * ramp;
    }
    return used;
  }

  memAvailableMiB(nowMs: number): number {
    return Math.max(0, this.totalMiB - this.usedMiB(nowMs));
  }

  /** Start a job; returns a handle for `end`. `check` is called at the end of its ramp. */
  start(memMiB: number, rampMs: number, nowMs: number): RunningJob {
    const job = { memMiB, startMs: nowMs, rampMs };
    this.running.add(job);
    return job;
  }

  end(job: RunningJob): void {
    this.running.delete(job);
  }

  /** Check for an OOM now (called when a ramp ends: memory only peaks there). */
  check(nowMs: number): void {
    const used = this.usedMiB(nowMs);
    this.peakUsedMiB = Math.max(this.peakUsedMiB, used);
    if (used > this.totalMiB) this.ooms += 1;
  }
}
