/**
 * The client side of the control socket (used by stevie): one connection,
 * requests matched to replies by id, and the event stream.
 */

import { type Socket, createConnection } from 'node:net';
import {
  type ControlEventMessage,
  type ControlReply,
  type ControlRequest,
  CONTROL_SOCKET_ENV,
  DEFAULT_CONTROL_SOCKET_PATH,
} from '@steve/protocol';

/** The socket stevie talks to: `--control`, else $STEVE_CONTROL, else the default. */
export function controlSocketPath(
  explicit: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string {
  return explicit ?? env[CONTROL_SOCKET_ENV] ?? DEFAULT_CONTROL_SOCKET_PATH;
}

/** An error a user can act on (stevie prints its message and exits 1). */
export class ControlClientError extends Error {}

/** Requests without an id: the client numbers them. */
type Unnumbered<T> = T extends unknown ? Omit<T, 'id'> : never;

export class ControlClient {
  private nextId = 1;
  private buffered = '';
  private readonly pending = new Map<
    number,
    { resolve: (reply: ControlReply) => void; reject: (error: Error) => void }
  >();
  private readonly eventListeners = new Set<(event: ControlEventMessage) => void>();
  private closedError: Error | null = null;
  private readonly closeListeners = new Set<(error: Error) => void>();

  private constructor(
    private readonly socket: Socket,
    readonly path: string,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (error) =>
      this.fail(new ControlClientError(`lost the daemon at ${path}: ${error.message}`)),
    );
    socket.on('close', () =>
      this.fail(new ControlClientError(`the daemon at ${path} closed the connection`)),
    );
  }

  /** Connect; the error says what to do when there is no daemon or no permission. */
  static connect(path: string): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path);
      socket.once('connect', () => resolve(new ControlClient(socket, path)));
      socket.once('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') {
          reject(
            new ControlClientError(
              `no daemon at ${path}: start one with \`npx steve-daemon\` (or pass --control PATH / set ${CONTROL_SOCKET_ENV})`,
            ),
          );
        } else if (error.code === 'EACCES') {
          reject(
            new ControlClientError(
              `cannot open ${path}: permission denied; ask for access to it, or run as its owner`,
            ),
          );
        } else {
          reject(new ControlClientError(`cannot reach the daemon at ${path}: ${error.message}`));
        }
      });
    });
  }

  /** Send a request; resolves with the daemon's result or rejects with its error message. */
  async request(request: Unnumbered<ControlRequest>): Promise<unknown> {
    if (this.closedError) throw this.closedError;
    const id = this.nextId++;
    const reply = await new Promise<ControlReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(`${JSON.stringify({ ...request, id })}\n`);
    });
    if (!reply.ok) throw new ControlClientError(`the daemon refused: ${reply.error.message}`);
    return reply.result;
  }

  onEvent(listener: (event: ControlEventMessage) => void): void {
    this.eventListeners.add(listener);
  }

  /** Called once when the connection ends for any reason but our own close(). */
  onClose(listener: (error: Error) => void): void {
    this.closeListeners.add(listener);
  }

  close(): void {
    this.closeListeners.clear();
    this.socket.end();
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    let newline: number;
    while ((newline = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, newline);
      this.buffered = this.buffered.slice(newline + 1);
      if (line.trim() === '') continue;
      let message: unknown;
      try {
        message = JSON.parse(line);
      } catch {
        this.fail(
          new ControlClientError(
            `the daemon at ${this.path} sent something that is not JSON: ${line.slice(0, 120)}`,
          ),
        );
        return;
      }
      if (typeof message !== 'object' || message === null) {
        this.fail(
          new ControlClientError(
            `the daemon at ${this.path} sent an unexpected message: ${line.slice(0, 120)}`,
          ),
        );
        return;
      }
      const record = message as Record<string, unknown>;
      if (record.type === 'event') {
        for (const listener of this.eventListeners) listener(message as ControlEventMessage);
        continue;
      }
      if (typeof record.ok !== 'boolean') {
        this.fail(
          new ControlClientError(
            `the daemon at ${this.path} sent an unexpected message: ${line.slice(0, 120)}`,
          ),
        );
        return;
      }
      const id = typeof record.id === 'number' ? record.id : [...this.pending.keys()][0];
      const waiter = id === undefined ? undefined : this.pending.get(id);
      if (id !== undefined && waiter) {
        this.pending.delete(id);
        waiter.resolve(message as ControlReply);
      }
    }
  }

  private fail(error: Error): void {
    if (this.closedError) return;
    this.closedError = error;
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
    this.socket.destroy();
    for (const listener of this.closeListeners) listener(error);
  }
}
