/**
 * What the kernel tells us about callers, turned into what the core needs:
 * FUSE and CUSE report the calling *thread*; accounting is per process
 * (thread group), read from `/proc/<tid>/status` (`Tgid:`).
 */

import { readFileSync } from 'node:fs';

/**
 * Thread id -> thread group, remembered only for processes the pool server
 * watches with a pidfd.
 *
 * Why only those: thread ids come back (pid_max is 32768 on many systems),
 * and an entry is only safe to keep while something tells us when it goes
 * stale. A watched process's exit is reported (pidfd readable) before its id
 * can be handed out again, and `forgetProcess` runs then. A process that only
 * opens the jobserver (a make 4.4 sub-make running one job, every rustc that
 * calls jobserver-rs `from_env`) is never watched, so it is never
 * remembered; neither is a failed `/proc` read (hidepid, EMFILE). Helper
 * threads are looked up on every request: one may end and its id go to a new
 * process while its own process still runs.
 */
export class ThreadGroups {
  private readonly watched = new Set<number>();

  constructor(private readonly readStatus: (tid: number) => string | null = readProcStatus) {}

  /**
   * The process of thread `tid` (0 stays 0: a caller in another pid
   * namespace). A thread whose status cannot be read (twice) counts as its
   * own process for this request only: right for a main thread, and not
   * remembered, so a wrong guess for a helper thread lasts one request.
   */
  processOf(tid: number): number {
    if (tid <= 0) return 0;
    if (this.watched.has(tid)) return tid;
    // One retry: EMFILE and the like are usually over by the next call.
    const status = this.readStatus(tid) ?? this.readStatus(tid);
    const match = status === null ? null : /^Tgid:\s+(\d+)$/m.exec(status);
    return match ? Number(match[1]) : tid;
  }

  /** A pidfd now watches process `pid`: its main thread id is its own until `forgetProcess`. */
  rememberWatched(pid: number): void {
    this.watched.add(pid);
  }

  /** Process `pid` exited (or its watch was closed): its id may be reused. */
  forgetProcess(pid: number): void {
    this.watched.delete(pid);
  }
}

function readProcStatus(tid: number): string | null {
  try {
    return readFileSync(`/proc/${tid}/status`, 'utf8');
  } catch {
    return null;
  }
}

/** The command line of a process for reports (`make -j8 all`), or `?` when it is gone. */
export function commandLineOf(pid: number): string {
  if (pid <= 0) return '(another pid namespace)';
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const words = raw.split('\0').filter((w) => w !== '');
    if (words.length === 0) return '?';
    // One line in logs and tables: no control characters, at most 200 characters.
    const line = words.join(' ').replace(/\p{Cc}+/gu, ' ');
    return line.length > 200 ? `${line.slice(0, 199)}…` : line;
  } catch {
    return '?';
  }
}
