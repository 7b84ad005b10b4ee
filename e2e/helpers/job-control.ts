// Ctrl-Z and fg for the tests: run a command as a job (its own process
// group inside a new session, under a tiny job-control shell so that the
// group is not orphaned and SIGTSTP really stops it), find every task of
// the group in /proc, and wait until all of them are stopped.
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { join } from 'node:path';
import { CLIENTS, PYTHON, waitFor } from './daemon.js';

export interface Job {
  readonly shell: ChildProcess;
  /** The job's process group (= the pid of its first process). */
  readonly pgid: number;
  /** The job's stdout so far, then its stderr. */
  output(): string;
  /** Resolves with the job's exit status (128+N when signal N killed it), its output all read. */
  readonly exited: Promise<number | null>;
}

/** Start `command args` as a job, like an interactive shell would. */
export async function startJob(
  command: string,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<Job> {
  const shell = spawn(PYTHON, [join(CLIENTS, 'job_control_shell.py'), command, ...args], {
    ...options,
    // A new session for the shell: signals to the job never reach the test runner.
    detached: true,
    // fd 3: the shell's `pgid N` line, apart from the job's own output.
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let pgidLine = '';
  shell.stdout?.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  shell.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const channel = shell.stdio[3] as Readable;
  channel.setEncoding('utf8').on('data', (c: string) => (pgidLine += c));
  // 'close', not 'exit': by then all of the job's output has been read.
  const exited = new Promise<number | null>((resolve) =>
    shell.on('close', (code) => resolve(code)),
  );
  const pgid = await waitFor(`${command} to start as a job`, () => {
    const match = /^pgid (\d+)\n/.exec(pgidLine);
    if (match) return Number(match[1]);
    if (shell.exitCode !== null) throw new Error(`the job shell exited: ${stdout}${stderr}`);
    return undefined;
  }).catch((error: unknown) => {
    // Leave nothing behind: the shell's child leads the job's group.
    const shellPid = shell.pid ?? 0;
    const children = readOrEmpty(`/proc/${shellPid}/task/${shellPid}/children`).split(' ');
    for (const target of [...children.filter(Boolean).map((c) => -Number(c)), shellPid]) {
      try {
        if (target !== 0) process.kill(target, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    throw error;
  });
  return {
    shell,
    pgid,
    output: () => stdout + stderr,
    exited,
  };
}

export interface Task {
  readonly pid: number;
  readonly tid: number;
  /** One letter from /proc/TID/stat: R, S, D, T, t, Z, … */
  readonly state: string;
  readonly comm: string;
  readonly wchan: string;
  /** Pids of the children this thread forked. */
  readonly children: readonly number[];
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return ''; // gone meanwhile
  }
}

function listOrEmpty(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** `(comm, state, pgrp)` from a /proc stat line (comm may contain spaces and parentheses). */
function parseStat(stat: string): { comm: string; state: string; pgrp: number } | null {
  const close = stat.lastIndexOf(')');
  if (close < 0) return null;
  const fields = stat.slice(close + 2).split(' ');
  return {
    comm: stat.slice(stat.indexOf('(') + 1, close),
    state: fields[0] ?? '?',
    pgrp: Number(fields[2]),
  };
}

/** The pids of the processes in process group `pgid`. */
export function groupPids(pgid: number): number[] {
  return listOrEmpty('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => parseStat(readOrEmpty(`/proc/${entry}/stat`))?.pgrp === pgid)
    .map(Number);
}

/** Every thread of every process of group `pgid`. */
export function groupTasks(pgid: number): Task[] {
  const tasks: Task[] = [];
  for (const pid of groupPids(pgid)) {
    for (const tid of listOrEmpty(`/proc/${pid}/task`)) {
      const stat = parseStat(readOrEmpty(`/proc/${pid}/task/${tid}/stat`));
      if (!stat) continue;
      const wchan = readOrEmpty(`/proc/${pid}/task/${tid}/wchan`);
      const children = readOrEmpty(`/proc/${pid}/task/${tid}/children`)
        .split(' ')
        .filter(Boolean)
        .map(Number);
      tasks.push({ pid, tid: Number(tid), state: stat.state, comm: stat.comm, wchan, children });
    }
  }
  return tasks;
}

/** Zombies and dead tasks cannot stop, and need not: they run nothing. */
const STOPPED_OR_GONE = new Set(['T', 't', 'Z', 'X']);

/**
 * Stopped, gone, or a vfork parent whose child is stopped: vfork(2) waits
 * uninterruptibly (state D in kernel_clone) until the child execs or exits,
 * so a shell that vforked just before Ctrl-Z stays D until fg. It runs
 * nothing meanwhile.
 */
export function isHalted(task: Task, group: readonly Task[]): boolean {
  if (STOPPED_OR_GONE.has(task.state)) return true;
  return (
    task.state === 'D' &&
    task.wchan === 'kernel_clone' &&
    task.children.some((child) =>
      group.some((t) => t.pid === child && t.tid === child && STOPPED_OR_GONE.has(t.state)),
    )
  );
}

/**
 * Wait until every task of the group is stopped (or halted, see isHalted); the error of a timeout
 * names the tasks that did not stop, with their state and kernel wait channel.
 */
export async function waitUntilStopped(pgid: number, deadlineMs = 10_000): Promise<Task[]> {
  let last: Task[] = [];
  try {
    return await waitFor(
      `every task of process group ${pgid} to stop`,
      () => {
        last = groupTasks(pgid);
        const group = last;
        return group.length > 0 && group.every((t) => isHalted(t, group)) && group;
      },
      deadlineMs,
    );
  } catch (error) {
    const running = last
      .filter((t) => !isHalted(t, last))
      .map((t) => `${t.pid}/${t.tid} ${t.comm} ${t.state} in ${t.wchan}`);
    throw new Error(`${(error as Error).message}; not stopped: ${running.join(', ')}`);
  }
}

/** Kill what is left of a job (its group while it has members, then its shell), by their ids. */
export function killJob(job: Job): void {
  const targets: number[] = [];
  if (groupPids(job.pgid).length > 0) targets.push(-job.pgid);
  if (job.shell.exitCode === null && job.shell.signalCode === null && job.shell.pid)
    targets.push(job.shell.pid);
  for (const target of targets) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}
