// Test helpers for the native addon: temporary FUSE mounts that are always
// unmounted, a trivial token responder (NOT the real scheduler), python3
// children that narrate what they do, and deadline-bound waits.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import {
  pollEvents,
  startFuse,
  type FuseOptions,
  type RequestContext,
  type Session,
  type SessionFile,
  type SessionHandlers,
} from '../../src/native/addon.js';

export const { EAGAIN, EINTR } = os.constants.errno;
export const { O_NONBLOCK } = fsConstants;

/** Waits until `condition()` holds, re-checking every few ms; fails after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Everything the responder saw, in order. */
export type SessionEvent =
  | { kind: 'open'; fileId: number; ctx: RequestContext; flags: number; path: SessionFile }
  | { kind: 'release'; fileId: number; ctx: RequestContext }
  | {
      kind: 'read';
      reqId: number;
      fileId: number;
      tid: number;
      uid: number;
      sizeBytes: number;
      flags: number;
    }
  | { kind: 'write'; reqId: number; fileId: number; tid: number; uid: number; sizeBytes: number }
  | {
      kind: 'poll';
      reqId: number;
      fileId: number;
      ctx: RequestContext;
      pollHandleId: number;
      events: number;
    }
  | { kind: 'interrupt'; reqId: number }
  | { kind: 'closed'; reason: string };

/**
 * A trivial pool of `tokens` bytes: one token per read, blocking reads wait
 * in FIFO order, non-blocking ones get EAGAIN, writes return tokens, polls
 * see POLLIN while a token is free and are notified when one comes back,
 * interrupted requests get EINTR. Enough to prove the glue, nothing more.
 */
export class TokenResponder implements SessionHandlers {
  session: Session | undefined;
  readonly events: SessionEvent[] = [];
  /** Set to false to leave interrupts unanswered (the test answers). */
  answerInterrupts = true;
  statusContent = 'tokens: 0\n';
  /** Reads waiting for a token (a custom `read` handler may park its own here). */
  readonly blockedReads: number[] = [];
  private readonly pollHandles = new Map<number, number>(); // fileId -> pollHandleId
  private held = 0;
  /** The most tokens handed out at once. */
  maxHeld = 0;
  /** Tokens handed out in total. */
  granted = 0;

  constructor(public tokens: number) {}

  private get live(): Session {
    if (this.session === undefined)
      throw new Error('TokenResponder used before its session started');
    return this.session;
  }

  count(kind: SessionEvent['kind']): number {
    return this.events.filter((event) => event.kind === kind).length;
  }

  last<K extends SessionEvent['kind']>(kind: K): Extract<SessionEvent, { kind: K }> | undefined {
    const matching = this.events.filter(
      (event): event is Extract<SessionEvent, { kind: K }> => event.kind === kind,
    );
    return matching[matching.length - 1];
  }

  /** Adds tokens to the pool, serving blocked readers and waking pollers. */
  give(count: number): void {
    this.tokens += count;
    this.serve();
  }

  open(fileId: number, ctx: RequestContext, flags: number, path: SessionFile): void {
    this.events.push({ kind: 'open', fileId, ctx, flags, path });
  }

  release(fileId: number, ctx: RequestContext): void {
    this.events.push({ kind: 'release', fileId, ctx });
    const handle = this.pollHandles.get(fileId);
    if (handle !== undefined) this.live.dropPollHandle(handle);
    this.pollHandles.delete(fileId);
  }

  read(
    reqId: number,
    fileId: number,
    tid: number,
    uid: number,
    sizeBytes: number,
    flags: number,
  ): void {
    this.events.push({ kind: 'read', reqId, fileId, tid, uid, sizeBytes, flags });
    if (this.tokens > 0) this.grant(reqId);
    else if ((flags & O_NONBLOCK) !== 0) this.live.replyError(reqId, EAGAIN);
    else this.blockedReads.push(reqId);
  }

  write(reqId: number, fileId: number, tid: number, uid: number, sizeBytes: number): void {
    this.events.push({ kind: 'write', reqId, fileId, tid, uid, sizeBytes });
    this.live.replyWrite(reqId, sizeBytes);
    this.held -= sizeBytes;
    this.give(sizeBytes);
  }

  poll(
    reqId: number,
    fileId: number,
    ctx: RequestContext,
    pollHandleId: number,
    events: number,
  ): void {
    this.events.push({ kind: 'poll', reqId, fileId, ctx, pollHandleId, events });
    const previous = this.pollHandles.get(fileId);
    if (previous !== undefined) this.live.dropPollHandle(previous);
    this.pollHandles.delete(fileId);
    const readable = this.tokens > 0;
    if (!readable && pollHandleId !== 0) this.pollHandles.set(fileId, pollHandleId);
    else if (pollHandleId !== 0) this.live.dropPollHandle(pollHandleId);
    const revents =
      pollEvents.POLLOUT |
      pollEvents.POLLWRNORM |
      (readable ? pollEvents.POLLIN | pollEvents.POLLRDNORM : 0);
    this.live.replyPoll(reqId, revents);
  }

  interrupt(reqId: number): void {
    this.events.push({ kind: 'interrupt', reqId });
    const index = this.blockedReads.indexOf(reqId);
    if (index >= 0) this.blockedReads.splice(index, 1);
    if (this.answerInterrupts) this.live.replyError(reqId, EINTR);
  }

  statusText(): string {
    return this.statusContent;
  }

  closed(reason: string): void {
    this.events.push({ kind: 'closed', reason });
  }

  private grant(reqId: number): void {
    this.tokens -= 1;
    this.held += 1;
    this.granted += 1;
    this.maxHeld = Math.max(this.maxHeld, this.held);
    this.live.replyData(reqId, Buffer.from('+'));
  }

  private serve(): void {
    while (this.tokens > 0 && this.blockedReads.length > 0)
      this.grant(this.blockedReads.shift() as number);
    if (this.tokens > 0) {
      for (const handle of this.pollHandles.values()) this.live.notifyPoll(handle);
      this.pollHandles.clear();
    }
  }
}

/** A FUSE session on a fresh temporary directory. */
export interface TempMount {
  dir: string;
  jobserver: string;
  status: string;
  session: Session;
  responder: TokenResponder;
  /** Closes the session (if still open) and removes the directory. */
  dispose(): Promise<void>;
}

export async function mountTemp(
  responder: TokenResponder,
  opts: FuseOptions = { allowOther: false, fileMode: 0o666 },
): Promise<TempMount> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'steve-native-'));
  let session: Session;
  try {
    session = startFuse(dir, opts, responder);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  responder.session = session;
  return {
    dir,
    jobserver: path.join(dir, 'jobserver'),
    status: path.join(dir, 'status'),
    session,
    responder,
    async dispose() {
      session.close();
      // Lazy unmount: the directory is free as soon as close() returns.
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Is `dir` a mount point, according to /proc/self/mountinfo? */
export async function isMountPoint(dir: string): Promise<boolean> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  return mountinfo.split('\n').some((line) => line.split(' ')[4] === dir);
}

/** The mountinfo line of `dir`, if mounted. */
export async function mountInfoLine(dir: string): Promise<string | undefined> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  return mountinfo.split('\n').find((line) => line.split(' ')[4] === dir);
}

/** A child process whose output lines are collected as they arrive. */
export interface Narrator {
  child: ChildProcess;
  lines: string[];
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited(): boolean;
  /** Waits for an output line containing `text`. */
  waitLine(text: string, timeoutMs?: number): Promise<void>;
  /** SIGKILLs the child if it is still running (by its pid). */
  stop(): Promise<void>;
}

export function narrate(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Narrator {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const stderr: string[] = [];
  let exited = false;
  const collect = (into: string[]) => {
    let partial = '';
    return (chunk: Buffer) => {
      partial += chunk.toString('utf8');
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      into.push(...parts);
    };
  };
  child.stdout?.on('data', collect(lines));
  child.stderr?.on('data', collect(stderr));
  const exitedPromise = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (resolve) => {
      child.on('exit', (code, signal) => {
        exited = true;
        resolve({ code, signal });
      });
    },
  );
  return {
    child,
    lines,
    stderr,
    exited: exitedPromise,
    hasExited: () => exited,
    waitLine: (text, timeoutMs = 5000) =>
      waitFor(
        () => lines.some((line) => line.includes(text)),
        `"${text}" from ${command} (stdout: ${JSON.stringify(lines)}, stderr: ${JSON.stringify(stderr)})`,
        timeoutMs,
      ),
    async stop() {
      if (!exited && child.pid !== undefined) {
        process.kill(child.pid, 'SIGKILL');
        await exitedPromise;
      }
    },
  };
}

/** Runs a python3 program (`-u`: unbuffered) with `argv[1:]` = args. */
export function python(program: string, ...args: string[]): Narrator {
  return narrate('python3', ['-u', '-c', program, ...args]);
}

/** Reads the state letter of /proc/<pid>/stat (R, S, D, Z, …), or undefined when gone. */
export async function processState(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}
