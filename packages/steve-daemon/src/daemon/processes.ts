/**
 * What the kernel tells us about callers, turned into what the core needs:
 * FUSE and CUSE report the calling *thread*; accounting is per process
 * (thread group), read from `/proc/<tid>/status` (`Tgid:`).
 */

import { readFileSync } from 'node:fs';

/** Thread ids seen recently -> their thread group; bounded, dropped when a process exits. */
export class ThreadGroups {
  private readonly cache = new Map<number, number>();

  constructor(
    private readonly readStatus: (tid: number) => string | null = readProcStatus,
    private readonly maxEntries = 65_536,
  ) {}

  /**
   * The process of thread `tid` (0 stays 0: a caller in another pid
   * namespace). A thread that is already gone counts as its own process.
   */
  processOf(tid: number): number {
    if (tid <= 0) return 0;
    const cached = this.cache.get(tid);
    if (cached !== undefined) return cached;
    const status = this.readStatus(tid);
    const match = status === null ? null : /^Tgid:\s+(\d+)$/m.exec(status);
    const tgid = match ? Number(match[1]) : tid;
    // Only a process's main thread is remembered: it lives as long as the
    // process (forgotten at its exit). Another thread may end and its id be
    // reused by a new process before its own process exits, so those ids are
    // looked up again on every request.
    if (tgid === tid) {
      if (this.cache.size >= this.maxEntries) this.cache.clear();
      this.cache.set(tid, tgid);
    }
    return tgid;
  }

  /** Forget the threads of a process that exited (their ids may be reused). */
  forgetProcess(pid: number): void {
    this.cache.delete(pid); // only main threads are cached
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
