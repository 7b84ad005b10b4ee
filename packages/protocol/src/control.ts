/**
 * The control socket's messages: newline-delimited JSON, one request per
 * line, one reply per request (matched by its optional `id`), and for
 * subscribers a stream of `event` lines.
 *
 *   -> {"id":1,"type":"status"}
 *   <- {"id":1,"ok":true,"result":{"settings":{…},"out":3,…}}
 *   -> {"id":2,"type":"set","changes":{"jobs":12}}
 *   <- {"id":2,"ok":false,"error":{"code":"forbidden","message":"…"}}
 *   -> {"type":"subscribe"}
 *   <- {"ok":true,"result":{"subscribed":true}}
 *   <- {"type":"event","atMs":1234.5,"record":{"type":"grant",…}}
 */

import { type Settings, type SettingName, isSettingName, validateSettings } from './settings.js';

/** Longest request line the daemon reads; a longer one is refused and the connection closed. */
export const CONTROL_MAX_LINE_BYTES = 64 * 1024;

export type RequestTag = number | string;

export type ControlRequest =
  | { readonly id?: RequestTag; readonly type: 'status' }
  | { readonly id?: RequestTag; readonly type: 'get'; readonly setting?: SettingName }
  | { readonly id?: RequestTag; readonly type: 'set'; readonly changes: Partial<Settings> }
  | { readonly id?: RequestTag; readonly type: 'subscribe' }
  | { readonly id?: RequestTag; readonly type: 'metrics' }
  /**
   * A private fifo for one wrapped command (result {@link PrivateFifoResult}):
   * a sub-pool of the pool that lives while this connection is open and,
   * once `private-fifo-command` named it, while that command runs.
   */
  | { readonly id?: RequestTag; readonly type: 'private-fifo' }
  /** The command this connection's private fifo is for (a child of the requester). */
  | { readonly id?: RequestTag; readonly type: 'private-fifo-command'; readonly pid: number };

/** The `private-fifo` result: the fifo to give the command (`--jobserver-auth=fifo:PATH`). */
export interface PrivateFifoResult {
  readonly path: string;
}

export type ControlRequestType = ControlRequest['type'];
const REQUEST_TYPES: readonly ControlRequestType[] = [
  'status',
  'get',
  'set',
  'subscribe',
  'metrics',
  'private-fifo',
  'private-fifo-command',
];

export type ControlErrorCode =
  | 'bad-json'
  | 'bad-request'
  | 'unknown-request'
  | 'invalid-setting'
  | 'forbidden'
  | 'line-too-long'
  | 'too-many-connections'
  | 'unavailable'
  | 'internal';

export interface ControlError {
  readonly code: ControlErrorCode;
  readonly message: string;
}

export type ControlReply =
  | { readonly id?: RequestTag; readonly ok: true; readonly result: unknown }
  | { readonly id?: RequestTag; readonly ok: false; readonly error: ControlError };

/** Something that happened in the pool (the scheduler's record), streamed to subscribers. */
export type PoolRecord =
  | {
      readonly type: 'grant';
      readonly pid: number;
      readonly client: string;
      readonly held: number;
      readonly viaReservation: boolean;
      readonly out: number;
    }
  | {
      readonly type: 'return';
      readonly pid: number;
      readonly client: string;
      readonly tokens: number;
      readonly held: number;
      readonly out: number;
    }
  | {
      readonly type: 'reclaim';
      readonly pid: number;
      readonly client: string;
      readonly tokens: number;
      readonly reason: 'exit' | 'close';
      readonly out: number;
    }
  | {
      readonly type: 'reserve';
      readonly pid: number;
      readonly client: string;
      readonly expiresAtMs: number;
      readonly out: number;
    }
  | {
      readonly type: 'reservation-expired';
      readonly pid: number;
      readonly client: string;
      readonly out: number;
    }
  | { readonly type: 'unowned-byte-dropped'; readonly pid: number; readonly client: string }
  | {
      readonly type: 'enospc';
      readonly pid: number;
      readonly client: string;
      readonly bytes: number;
    }
  | { readonly type: 'interrupted'; readonly pid: number; readonly client: string }
  | { readonly type: 'config'; readonly changes: Partial<Settings> };

export interface ControlEventMessage {
  readonly type: 'event';
  /** Daemon-monotonic milliseconds. */
  readonly atMs: number;
  /** Wall-clock time, ms since the epoch. */
  readonly wallMs: number;
  readonly record: PoolRecord;
}

/** The pool's numbers at one moment (the scheduler's snapshot and `status` share them). */
export interface PoolGauges {
  /** Tokens that may be out now: `jobs`, or `minJobs` while a limit holds. */
  readonly capacity: number;
  /** Tokens held by clients plus tokens reserved for pollers. */
  readonly out: number;
  readonly reserved: number;
  readonly available: number;
  readonly waiting: number;
  /** Open jobserver files the fronts reported. */
  readonly openFiles: number;
  /** Which limit holds the capacity down, if one does. */
  readonly limitedBy: 'load' | 'memory' | 'pressure' | null;
}

/** The `status` result. */
export interface StatusResult extends PoolGauges {
  readonly settings: Settings;
  readonly holders: ReadonlyArray<{
    readonly pid: number;
    readonly client: string;
    readonly command: string;
    readonly tokens: number;
    readonly reserved: boolean;
    readonly holdingForMs: number;
    /** The uid its requests came from (older daemons: absent; unknown: null). */
    readonly uid?: number | null;
  }>;
  readonly waiters: ReadonlyArray<{
    readonly pid: number;
    readonly client: string;
    readonly command: string;
    readonly kind: 'read' | 'poll';
    readonly waitingForMs: number;
  }>;
  readonly fronts: ReadonlyArray<{ readonly kind: string; readonly path: string }>;
  readonly daemonPid: number;
  readonly uptimeMs: number;
}

export type ParsedControlRequest =
  | { readonly ok: true; readonly request: ControlRequest }
  | { readonly ok: false; readonly id?: RequestTag; readonly error: ControlError };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Parse and validate one request line. Never throws: anything wrong comes
 * back as an error reply to send.
 *
 * @example
 * parseControlRequest('{"id":1,"type":"set","changes":{"jobs":8}}')
 * // { ok: true, request: { id: 1, type: 'set', changes: { jobs: 8 } } }
 */
export function parseControlRequest(line: string): ParsedControlRequest {
  if (Buffer.byteLength(line, 'utf8') > CONTROL_MAX_LINE_BYTES) {
    return {
      ok: false,
      error: {
        code: 'line-too-long',
        message: `request longer than ${CONTROL_MAX_LINE_BYTES} bytes`,
      },
    };
  }
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    return {
      ok: false,
      error: { code: 'bad-json', message: `not JSON: ${(error as Error).message}` },
    };
  }
  if (!isRecord(value)) {
    return {
      ok: false,
      error: { code: 'bad-request', message: 'a request is a JSON object with a "type"' },
    };
  }
  const rawId = value.id;
  const id: RequestTag | undefined =
    (typeof rawId === 'number' && Number.isFinite(rawId)) ||
    (typeof rawId === 'string' && rawId.length <= 256)
      ? rawId
      : undefined;
  const fail = (code: ControlErrorCode, message: string): ParsedControlRequest =>
    id === undefined
      ? { ok: false, error: { code, message } }
      : { ok: false, id, error: { code, message } };
  if (rawId !== undefined && id === undefined)
    return fail('bad-request', '"id" must be a number or a short string');
  const type = value.type;
  if (typeof type !== 'string' || !(REQUEST_TYPES as readonly string[]).includes(type)) {
    return fail(
      'unknown-request',
      `unknown request type ${JSON.stringify(type)}; known: ${REQUEST_TYPES.join(', ')}`,
    );
  }
  const tag = id === undefined ? {} : { id };
  switch (type as ControlRequestType) {
    case 'status':
    case 'subscribe':
    case 'metrics':
    case 'private-fifo':
      return {
        ok: true,
        request: { ...tag, type: type as 'status' | 'subscribe' | 'metrics' | 'private-fifo' },
      };
    case 'private-fifo-command': {
      const pid = value.pid;
      if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0)
        return fail('bad-request', '"private-fifo-command" needs "pid": a process id > 0');
      return { ok: true, request: { ...tag, type: 'private-fifo-command', pid } };
    }
    case 'get': {
      const setting = value.setting;
      if (setting === undefined) return { ok: true, request: { ...tag, type: 'get' } };
      if (typeof setting !== 'string' || !isSettingName(setting)) {
        return fail('invalid-setting', `unknown setting ${JSON.stringify(setting)}`);
      }
      return { ok: true, request: { ...tag, type: 'get', setting } };
    }
    case 'set': {
      const changes = value.changes;
      if (!isRecord(changes) || Object.keys(changes).length === 0) {
        return fail(
          'bad-request',
          '"set" needs "changes": an object of settings, e.g. {"jobs": 12}',
        );
      }
      const problem = validateSettings(changes);
      if (problem !== null) return fail('invalid-setting', problem);
      return { ok: true, request: { ...tag, type: 'set', changes: changes as Partial<Settings> } };
    }
  }
}

/** One line (with its newline) for a reply or an event. */
export function controlLine(message: ControlReply | ControlEventMessage): string {
  return `${JSON.stringify(message)}\n`;
}

/**
 * Whether `command` accepts only a real named pipe as its jobserver
 * (ninja <= 1.13.2 ignores a FUSE file or a character device and then runs
 * unlimited): the wrappers give it a private fifo of the daemon.
 *
 * @example
 * needsRealFifo('/usr/bin/ninja') // true
 */
export function needsRealFifo(command: string): boolean {
  return command.slice(command.lastIndexOf('/') + 1) === 'ninja';
}

/**
 * Which of the daemon's fronts a command should be given: ninja <= 1.13.2
 * accepts only a real fifo, so it gets the fifo front first; every other
 * client takes the CUSE device, then the FUSE file.
 *
 * @example
 * chooseFront(status.fronts, 'ninja')?.path // the fifo front's path, when there is one
 */
export function chooseFront(
  fronts: StatusResult['fronts'],
  command?: string,
): StatusResult['fronts'][number] | undefined {
  const name = command === undefined ? '' : command.slice(command.lastIndexOf('/') + 1);
  const order = name === 'ninja' ? ['fifo', 'cuse', 'fuse'] : ['cuse', 'fuse', 'fifo'];
  for (const kind of order) {
    const front = fronts.find((f) => f.kind === kind);
    if (front) return front;
  }
  return undefined;
}
