/**
 * One `status` request to a steve-daemon control socket (newline-delimited
 * JSON, see `@steve/protocol`'s control messages): which pool paths the
 * daemon serves and its size. The daemon's own client lives in
 * steve-daemon, which exports no library entry; this is the one request
 * the wrappers need.
 */

import { createConnection } from 'node:net';
import {
  CONTROL_SOCKET_ENV,
  DEFAULT_CONTROL_SOCKET_PATH,
  type StatusResult,
} from '@steve/protocol';

/** The socket to ask: `--control PATH`, else `$STEVE_CONTROL`, else the default. */
export function controlSocketPath(
  explicit: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string {
  return explicit ?? env[CONTROL_SOCKET_ENV] ?? DEFAULT_CONTROL_SOCKET_PATH;
}

export type StatusAnswer =
  | { readonly status: StatusResult }
  /** Why there is no status, in words for a message ("no daemon at …"). */
  | { readonly problem: string };

/**
 * Ask the daemon at `path` for its status. Never throws: a missing socket,
 * a refused connection, a permission problem, a timeout or a bad reply
 * become `{ problem }`.
 */
export function readStatus(path: string, timeoutMs = 3_000): Promise<StatusAnswer> {
  return new Promise((resolve) => {
    let buffered = '';
    let settled = false;
    const socket = createConnection(path);
    const finish = (answer: StatusAnswer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(
      () => finish({ problem: `the daemon at ${path} did not answer within ${timeoutMs} ms` }),
      timeoutMs,
    );
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write(`${JSON.stringify({ id: 1, type: 'status' })}\n`));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      try {
        const reply = JSON.parse(buffered.slice(0, newline)) as {
          ok?: boolean;
          result?: StatusResult;
          error?: { message?: string };
        };
        if (reply.ok === true && typeof reply.result?.settings?.jobs === 'number') {
          finish({ status: reply.result });
        } else {
          finish({
            problem: `the daemon at ${path} refused the status request: ${reply.error?.message ?? 'no result'}`,
          });
        }
      } catch {
        finish({ problem: `${path} answered something that is not a steve status` });
      }
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') {
        finish({ problem: `no daemon at ${path}` });
      } else if (error.code === 'EACCES') {
        finish({ problem: `cannot open ${path}: permission denied` });
      } else {
        finish({ problem: `cannot reach the daemon at ${path}: ${error.message}` });
      }
    });
    socket.once('close', () => finish({ problem: `the daemon at ${path} closed the connection` }));
  });
}
