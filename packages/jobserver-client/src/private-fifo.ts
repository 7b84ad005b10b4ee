/**
 * A private fifo of a steve daemon for one wrapped command: a real named
 * pipe (what ninja <= 1.13.2 demands) that is a sub-pool of the daemon's
 * pool and belongs to this process. It lives while the lease's control
 * connection is open and, once {@link PrivateFifoLease.commandStarted} named
 * the command, until that command has exited too; then the daemon takes back
 * every token it lent and removes the fifo, however the command ended.
 */

import { createConnection } from 'node:net';
import type { PrivateFifoResult } from '@steve/protocol';

/** A private fifo held by this process. */
export interface PrivateFifoLease {
  /** The fifo: give the command `--jobserver-auth=fifo:PATH`. */
  readonly path: string;
  /**
   * Tie the fifo to the command (a child of this process): the daemon keeps
   * it until that process exits, even if this one dies first.
   *
   * Errors: the daemon's refusal (e.g. `pid` is not our child) or a lost connection.
   */
  commandStarted(pid: number): Promise<void>;
  /** Give the fifo up (its tokens go back to the pool once the command has exited). Idempotent. */
  close(): void;
}

/** Why no private fifo could be had, in words for a message. */
export class PrivateFifoError extends Error {}

/**
 * Ask the daemon at `controlPath` for a private fifo.
 *
 * @example
 * const lease = await leasePrivateFifo('/run/steve/control.sock');
 * const child = spawn('ninja', [], { env: { ...process.env, MAKEFLAGS: `--jobserver-auth=fifo:${lease.path}` } });
 * await lease.commandStarted(child.pid);
 * child.on('exit', () => lease.close());
 *
 * Errors: PrivateFifoError when there is no daemon, it refuses (no access
 * to the pool, too many fifos, an older daemon) or does not answer within
 * `timeoutMs`.
 */
export function leasePrivateFifo(
  controlPath: string,
  timeoutMs = 5_000,
): Promise<PrivateFifoLease> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(controlPath);
    const waiting = new Map<number, (reply: Reply) => void>();
    let nextId = 1;
    let buffered = '';
    let settled = false;
    const fail = (message: string): void => {
      socket.destroy();
      for (const answer of waiting.values()) answer({ ok: false, error: { message } });
      waiting.clear();
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        reject(new PrivateFifoError(message));
      }
    };
    const timer = setTimeout(
      () => fail(`the daemon at ${controlPath} did not answer within ${timeoutMs} ms`),
      timeoutMs,
    );
    const ask = (request: Record<string, unknown>): Promise<Reply> =>
      new Promise((answer) => {
        if (socket.destroyed) {
          answer({ ok: false, error: { message: `the connection to ${controlPath} is closed` } });
          return;
        }
        const id = nextId++;
        waiting.set(id, answer);
        socket.write(`${JSON.stringify({ id, ...request })}\n`);
      });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        let reply: Reply & { id?: number };
        try {
          reply = JSON.parse(line) as Reply & { id?: number };
        } catch {
          fail(`${controlPath} answered something that is not a steve reply`);
          return;
        }
        const answer = reply.id === undefined ? undefined : waiting.get(reply.id);
        if (answer !== undefined && reply.id !== undefined) {
          waiting.delete(reply.id);
          answer(reply);
        }
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED')
        fail(`no daemon at ${controlPath}: start one with \`steve-daemon\``);
      else if (error.code === 'EACCES') fail(`cannot open ${controlPath}: permission denied`);
      else fail(`lost the daemon at ${controlPath}: ${error.message}`);
    });
    socket.on('close', () => fail(`the daemon at ${controlPath} closed the connection`));
    socket.once('connect', () => {
      void ask({ type: 'private-fifo' }).then((reply) => {
        if (settled) return;
        if (
          !reply.ok ||
          typeof (reply.result as PrivateFifoResult | undefined)?.path !== 'string'
        ) {
          fail(
            `the daemon at ${controlPath} gave no private fifo: ${reply.ok ? 'no path' : reply.error.message}`,
          );
          return;
        }
        settled = true;
        clearTimeout(timer);
        resolve({
          path: (reply.result as PrivateFifoResult).path,
          commandStarted: async (pid) => {
            const answer = await ask({ type: 'private-fifo-command', pid });
            if (!answer.ok) throw new PrivateFifoError(answer.error.message);
          },
          close: () => {
            socket.removeAllListeners('close');
            socket.on('error', () => {});
            socket.destroy();
          },
        });
      });
    });
  });
}

type Reply =
  | { readonly ok: true; readonly result?: unknown }
  | { readonly ok: false; readonly error: { readonly message: string } };
