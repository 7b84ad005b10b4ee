/**
 * The control socket: newline-delimited JSON on a unix socket. Reads
 * (status, get, subscribe, metrics) for anyone who can open the socket;
 * changes (set) for root, the daemon's user or the configured group, checked
 * with SO_PEERCRED and SO_PEERGROUPS as of connect() (never by the peer's pid
 * later, which may be reused); private fifos (`private-fifo`) for whoever may use the
 * jobserver file itself, each living as long as its connection (and the
 * command it names). Bad input gets an error reply and never touches the pool.
 */

import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
} from 'node:fs';
import { type Server, type Socket, createConnection, createServer } from 'node:net';
import { dirname, join } from 'node:path';
import {
  CONTROL_MAX_LINE_BYTES,
  type ControlReply,
  type ControlRequest,
  type RequestTag,
  type StatusResult,
  controlLine,
  parseControlRequest,
} from '@steve/protocol';
import { commandVisibility } from '../daemon/visibility.js';
import type { PoolServer } from '../daemon/pool-server.js';
import type { PrivateFifo, PrivateFifos } from '../fronts/private-fifos.js';
import { PoolCounters, prometheusText } from './metrics.js';

/** A client whose unread output passes this is dropped (it does not read its replies or events). */
const MAX_SUBSCRIBER_BACKLOG_BYTES = 1024 * 1024;
/** A connection that sends nothing for this long, and is not subscribed, is closed. */
const IDLE_TIMEOUT_MS = 60_000;

export interface ControlServerOptions {
  readonly path: string;
  readonly pool: PoolServer;
  /** Where the pool is served (for status). */
  readonly fronts: () => ReadonlyArray<{ kind: string; path: string }>;
  /** Members of this group may change settings too. */
  readonly adminGid: number | null;
  readonly peerCredentials: (fd: number) => PeerCredentials;
  readonly log: (line: string) => void;
  readonly maxConnections?: number;
  readonly now: () => number;
  /** Private fifos for wrapped commands (`private-fifo`), or null when not served. */
  readonly privateFifos?: PrivateFifos | null;
  /**
   * Who may take tokens through a private fifo: the same users as the
   * jobserver file or device (its mode bits and group).
   */
  readonly poolAccess?: { readonly mode: number; readonly gid: number | null };
}

export interface ControlServer {
  readonly path: string;
  readonly counters: PoolCounters;
  /** The status as `viewer` may see it (command lines of others hidden); everything without one. */
  status(viewer?: PeerCredentials | null): StatusResult;
  metrics(): string;
  close(): Promise<void>;
}

/** Who is on the other end, as of connect(): SO_PEERCRED plus SO_PEERGROUPS. */
export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
}

function inGroup(credentials: PeerCredentials, gid: number | null): boolean {
  return gid !== null && (credentials.gid === gid || credentials.groups.includes(gid));
}

function socketFd(socket: Socket): number | null {
  // Node keeps the descriptor on its libuv handle; there is no public accessor.
  const handle = (socket as unknown as { _handle?: { fd?: number } })._handle;
  return typeof handle?.fd === 'number' && handle.fd >= 0 ? handle.fd : null;
}

/** Refuse a live daemon's socket; remove a stale one (nobody accepts on it). */
async function clearStaleSocket(path: string): Promise<void> {
  let isSocket = false;
  try {
    isSocket = statSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket)
    throw new Error(`${path} exists and is not a socket; remove it or pass another --control PATH`);
  const alive = await new Promise<boolean>((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (alive)
    throw new Error(
      `another steve-daemon answers on ${path}; stop it first, or pass another --control PATH`,
    );
  unlinkSync(path);
}

export async function startControlServer(options: ControlServerOptions): Promise<ControlServer> {
  const { pool, path } = options;
  const maxConnections = options.maxConnections ?? 1024;
  const counters = new PoolCounters();
  const startedMs = options.now();
  const subscribers = new Set<Socket>();
  const sockets = new Set<Socket>();

  const status = (viewer: PeerCredentials | null = null): StatusResult => {
    const visible = commandVisibility(viewer, options.adminGid);
    const snap = pool.snapshot();
    const now = options.now();
    return {
      settings: snap.config,
      capacity: snap.capacity,
      out: snap.out,
      reserved: snap.reserved,
      available: snap.available,
      waiting: snap.waiting,
      openFiles: snap.openFiles,
      limitedBy: snap.limitedBy,
      holders: snap.holders.map((h) => ({
        pid: h.pid,
        client: h.client,
        command: pool.describeFor(h.pid, h.client, visible),
        tokens: h.tokens,
        reserved: h.reserved,
        uid: h.uid,
        holdingForMs: Math.round(now - h.holdingSinceMs),
      })),
      waiters: snap.waiters.map((w) => ({
        pid: w.pid,
        client: w.client,
        command: pool.describeFor(w.pid, w.client, visible),
        kind: w.kind,
        waitingForMs: Math.round(now - w.waitingSinceMs),
      })),
      fronts: options.fronts(),
      daemonPid: process.pid,
      uptimeMs: Math.round(now - startedMs),
    };
  };
  const metrics = (): string => prometheusText(pool.snapshot(), counters);

  const unsubscribe = pool.onRecord((atMs, record) => {
    counters.count(record);
    if (subscribers.size === 0) return;
    const line = controlLine({ type: 'event', atMs, wallMs: Date.now(), record });
    for (const socket of subscribers) {
      if (socket.writableLength > MAX_SUBSCRIBER_BACKLOG_BYTES) {
        socket.destroy(); // a subscriber that does not read loses its stream, not our memory
        continue;
      }
      socket.write(line);
    }
  });

  const mayChange = (credentials: PeerCredentials | null): boolean => {
    if (credentials === null) return false;
    if (credentials.uid === 0 || credentials.uid === process.getuid?.()) return true;
    return inGroup(credentials, options.adminGid);
  };

  const mayUsePool = (credentials: PeerCredentials): boolean => {
    const access = options.poolAccess ?? { mode: 0o666, gid: null };
    if ((access.mode & 0o006) === 0o006) return true;
    if (credentials.uid === 0 || credentials.uid === process.getuid?.()) return true;
    return (access.mode & 0o060) === 0o060 && inGroup(credentials, access.gid);
  };

  /** Each connection's private fifo (it ends when the connection closes). */
  const privateFifoOf = new Map<Socket, PrivateFifo>();
  /** Connections whose `private-fifo` is being made (a second one must wait its turn and fail). */
  const creatingFifoFor = new Set<Socket>();

  /** `private-fifo`: make one for this connection; the reply names its path. */
  const createPrivateFifo = async (
    tag: { id?: RequestTag },
    socket: Socket,
    credentials: PeerCredentials | null,
  ): Promise<ControlReply> => {
    const fifos = options.privateFifos ?? null;
    if (fifos === null)
      return {
        ...tag,
        ok: false,
        error: { code: 'unavailable', message: 'this daemon serves no private fifos' },
      };
    if (credentials === null)
      return {
        ...tag,
        ok: false,
        error: {
          code: 'forbidden',
          message: 'a private fifo needs the peer credentials of its owner',
        },
      };
    if (!mayUsePool(credentials))
      return {
        ...tag,
        ok: false,
        error: {
          code: 'forbidden',
          message: `uid ${credentials.uid} may not use this pool (not in the group of its jobserver file)`,
        },
      };
    if (privateFifoOf.has(socket) || creatingFifoFor.has(socket))
      return {
        ...tag,
        ok: false,
        error: { code: 'bad-request', message: 'this connection has a private fifo already' },
      };
    let fifo: PrivateFifo;
    creatingFifoFor.add(socket);
    try {
      fifo = await fifos.create(credentials);
    } catch (error) {
      return {
        ...tag,
        ok: false,
        error: { code: 'unavailable', message: `no private fifo: ${(error as Error).message}` },
      };
    } finally {
      creatingFifoFor.delete(socket);
    }
    if (socket.destroyed) {
      fifo.ownerGone();
    } else {
      privateFifoOf.set(socket, fifo);
      socket.setTimeout(0); // it lives as long as the command, however quiet
    }
    return { ...tag, ok: true, result: { path: fifo.path } };
  };

  const handle = (
    request: ControlRequest,
    socket: Socket,
    credentials: PeerCredentials | null,
  ): ControlReply | Promise<ControlReply> => {
    const tag: { id?: RequestTag } = request.id === undefined ? {} : { id: request.id };
    switch (request.type) {
      case 'private-fifo':
        return createPrivateFifo(tag, socket, credentials);
      case 'private-fifo-command': {
        const fifo = privateFifoOf.get(socket);
        if (fifo === undefined)
          return {
            ...tag,
            ok: false,
            error: { code: 'bad-request', message: 'ask for a "private-fifo" first' },
          };
        try {
          fifo.commandStarted(request.pid);
        } catch (error) {
          return {
            ...tag,
            ok: false,
            error: { code: 'bad-request', message: (error as Error).message },
          };
        }
        return { ...tag, ok: true, result: { pid: request.pid } };
      }
      case 'status':
        return { ...tag, ok: true, result: status(credentials) };
      case 'get': {
        const settings = pool.snapshot().config;
        return {
          ...tag,
          ok: true,
          result:
            request.setting === undefined
              ? settings
              : { [request.setting]: settings[request.setting] },
        };
      }
      case 'set': {
        if (!mayChange(credentials)) {
          const who = credentials ? `uid ${credentials.uid}` : 'an unknown peer';
          return {
            ...tag,
            ok: false,
            error: {
              code: 'forbidden',
              message: `${who} may read but not change the pool; changes need root, the daemon's user${options.adminGid === null ? '' : ' or its group'}`,
            },
          };
        }
        try {
          pool.configure(request.changes);
        } catch (error) {
          return {
            ...tag,
            ok: false,
            error: { code: 'invalid-setting', message: (error as Error).message },
          };
        }
        options.log(
          `steve-daemon: settings changed by pid ${credentials?.pid}: ${JSON.stringify(request.changes)}`,
        );
        return { ...tag, ok: true, result: pool.snapshot().config };
      }
      case 'subscribe':
        subscribers.add(socket);
        return { ...tag, ok: true, result: { subscribed: true } };
      case 'metrics':
        return { ...tag, ok: true, result: metrics() };
    }
  };

  const server: Server = createServer((socket) => {
    if (sockets.size >= maxConnections) {
      socket.end(
        controlLine({
          ok: false,
          error: {
            code: 'too-many-connections',
            message: `more than ${maxConnections} control connections; try again later`,
          },
        }),
      );
      socket.destroy();
      return;
    }
    sockets.add(socket);
    let credentials: PeerCredentials | null = null;
    const fd = socketFd(socket);
    if (fd !== null) {
      try {
        credentials = options.peerCredentials(fd);
      } catch {
        credentials = null;
      }
    }
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (line.trim() === '') continue;
        const parsed = parseControlRequest(line);
        let reply: ControlReply | Promise<ControlReply>;
        if (!parsed.ok) {
          reply =
            parsed.id === undefined
              ? { ok: false, error: parsed.error }
              : { id: parsed.id, ok: false, error: parsed.error };
        } else {
          try {
            reply = handle(parsed.request, socket, credentials);
          } catch (error) {
            reply = { ok: false, error: { code: 'internal', message: (error as Error).message } };
          }
        }
        if (reply instanceof Promise) {
          // Answered when ready; replies carry the request's id.
          void reply.then((answer) => {
            if (!socket.destroyed) socket.write(controlLine(answer));
          });
          continue;
        }
        if (!socket.destroyed) socket.write(controlLine(reply));
        if (socket.writableLength > MAX_SUBSCRIBER_BACKLOG_BYTES) {
          // It asks and never reads: its replies would pile up in our memory.
          socket.destroy();
          return;
        }
        if (!parsed.ok && parsed.error.code === 'line-too-long') {
          socket.end();
          return;
        }
      }
      if (Buffer.byteLength(buffered, 'utf8') > CONTROL_MAX_LINE_BYTES) {
        socket.end(
          controlLine({
            ok: false,
            error: {
              code: 'line-too-long',
              message: `request longer than ${CONTROL_MAX_LINE_BYTES} bytes`,
            },
          }),
        );
        buffered = '';
        socket.destroy();
      }
    });
    socket.setTimeout(IDLE_TIMEOUT_MS, () => {
      if (!subscribers.has(socket) && !privateFifoOf.has(socket)) socket.destroy();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      sockets.delete(socket);
      subscribers.delete(socket);
      privateFifoOf.get(socket)?.ownerGone();
      privateFifoOf.delete(socket);
    });
  });
  server.maxConnections = maxConnections + 16; // past ours, the kernel queue takes over

  await clearStaleSocket(path);
  mkdirSync(dirname(path), { recursive: true });
  // Bound, given its mode and group inside a directory only the daemon can
  // write, then renamed into place: nobody can swap the path for a symlink
  // between bind and chmod (rename replaces whatever is at `path` itself).
  const staging = mkdtempSync(join(dirname(path), '.steve-control-'));
  const staged = join(staging, 'control.sock');
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(staged, () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(staged, 0o666); // reads for anyone who can reach it; changes are checked per request
    if (options.adminGid !== null) chownSync(staged, -1, options.adminGid);
    renameSync(staged, path);
  } catch (error) {
    server.close();
    throw error;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  const removeSocket = (): void => {
    // libuv unlinks the name it bound (the staged one); the socket's real name is ours to remove.
    try {
      if (lstatSync(path).isSocket()) unlinkSync(path);
    } catch {
      // already gone
    }
  };

  return {
    path,
    counters,
    status,
    metrics,
    close: () =>
      new Promise<void>((resolve) => {
        unsubscribe();
        for (const socket of sockets) socket.destroy();
        server.close(() => {
          removeSocket();
          resolve();
        });
      }),
  };
}
