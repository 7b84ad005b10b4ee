/**
 * `stevie`: watch and steer a running steve-daemon through its control socket.
 *
 *   stevie status [--json]          jobs, tokens out, holders and waiters
 *   stevie top                      the same, live, with a minute of history
 *   stevie get [NAME]               settings
 *   stevie set NAME VALUE           e.g. `stevie set jobs 12`, `stevie set load-average none`
 *   stevie events [--json]          the event stream (grants, returns, reclaims, …)
 *   stevie metrics                  Prometheus text
 *   stevie -t | --get-jobs | --set-jobs N | …   steve-compatible flags
 *
 *   stevie [--] CMD ARGS…          run CMD holding one token (MAKEFLAGS points at the pool)
 *
 * Global: --control PATH (else $STEVE_CONTROL, else /run/steve/control.sock).
 */

import {
  type ControlEventMessage,
  DEFAULT_DEVICE_PATH,
  DEFAULT_FUSE_JOBSERVER_PATH,
  chooseFront,
  needsRealFifo,
  type PoolRecord,
  type SettingName,
  type Settings,
  type StatusResult,
  isSettingName,
  parseSettingValue,
} from '@steve/protocol';
import { existsSync } from 'node:fs';
import {
  CommandStartError,
  Jobserver,
  type PrivateFifoLease,
  PrivateFifoError,
  leasePrivateFifo,
  type RunStyle,
  type RunWithTokenResult,
  dieOfSignal,
  runWithTokenResult,
} from '@steve/jobserver-client';
import { ControlClient, ControlClientError, controlSocketPath } from '../control/client.js';

const SUBCOMMANDS = ['status', 'top', 'get', 'set', 'events', 'metrics', 'help'];

/** Names a user may type for each setting (steve's flag names and ours). */
const SETTING_ALIASES: Readonly<Record<string, SettingName>> = {
  jobs: 'jobs',
  j: 'jobs',
  'load-average': 'maxLoadAverage',
  load: 'maxLoadAverage',
  l: 'maxLoadAverage',
  'min-jobs': 'minJobs',
  m: 'minJobs',
  'min-memory-avail': 'minMemoryAvailableMiB',
  'min-memory': 'minMemoryAvailableMiB',
  a: 'minMemoryAvailableMiB',
  'memory-pressure': 'maxMemoryPressureAvg10',
  'per-process-limit': 'perProcessLimit',
  p: 'perProcessLimit',
  'reservation-ttl': 'reservationTtlMs',
  'load-recheck': 'limitRecheckMs',
  fairness: 'fairness',
};

export function settingNamed(name: string): SettingName | null {
  if (isSettingName(name)) return name;
  return SETTING_ALIASES[name] ?? null;
}

/** steve's getter/setter flags: `--get-jobs`, `--set-jobs N`, … */
const STEVE_FLAGS: Readonly<Record<string, SettingName>> = {
  jobs: 'jobs',
  'min-memory-avail': 'minMemoryAvailableMiB',
  'load-average': 'maxLoadAverage',
  'min-jobs': 'minJobs',
  'per-process-limit': 'perProcessLimit',
};

const USAGE = `usage: stevie [--control PATH] COMMAND
  [--style fifo|pipe|auto] [--] CMD ARGS…
                         run CMD holding one token of the pool, with MAKEFLAGS
                         pointing at it (GNU make < 4.4 gets it as a descriptor)
  status [--json]        jobs, tokens out, holders and waiters
  top                    live view (q to quit)
  get [NAME]             settings (jobs, load-average, min-jobs, min-memory-avail,
                         memory-pressure, per-process-limit, reservation-ttl,
                         load-recheck, fairness)
  set NAME VALUE         change one ('none' lifts a limit); needs root, the
                         daemon's user or its group
  events [--json]        follow grants, returns, reclaims, reservations, changes
  metrics                Prometheus text
  -t, --get-tokens       tokens available now
  --get-jobs, --set-jobs N, --get-min-memory-avail, --set-min-memory-avail MIB,
  --get-load-average, --set-load-average L, --get-min-jobs, --set-min-jobs N,
  --get-per-process-limit, --set-per-process-limit N
The socket: --control PATH, else $STEVE_CONTROL, else /run/steve/control.sock.`;

export class StevieUsageError extends Error {}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

function settingText(value: unknown): string {
  return value === null ? 'none' : String(value);
}

/** The human status table. */
export function formatStatus(status: StatusResult, width = 100): string {
  const s = status.settings;
  const limits = [
    s.maxLoadAverage !== null ? `load <= ${s.maxLoadAverage}` : null,
    s.minMemoryAvailableMiB !== null ? `MemAvailable >= ${s.minMemoryAvailableMiB} MiB` : null,
    s.maxMemoryPressureAvg10 !== null ? `memory pressure <= ${s.maxMemoryPressureAvg10}%` : null,
    s.perProcessLimit !== null ? `<= ${s.perProcessLimit} per process` : null,
  ].filter((x): x is string => x !== null);
  const lines = [
    `jobs ${s.jobs}  capacity ${status.capacity}${status.limitedBy ? ` (held down by ${status.limitedBy})` : ''}  out ${status.out}  reserved ${status.reserved}  available ${status.available}  waiting ${status.waiting}`,
    `serving ${status.fronts.map((f) => `${f.path} (${f.kind})`).join(', ')}  fairness ${s.fairness}${limits.length ? `  limits: ${limits.join(', ')}` : ''}  daemon pid ${status.daemonPid}, up ${seconds(status.uptimeMs)}`,
    '',
    `HOLDERS (${status.holders.length})`,
  ];
  const commandWidth = Math.max(20, width - 32);
  if (status.holders.length > 0) {
    lines.push(`  ${pad('PID', 9)}${pad('TOKENS', 8)}${pad('FOR', 10)}COMMAND`);
    for (const h of status.holders) {
      const tokens = `${h.tokens}${h.reserved ? '+r' : ''}`;
      lines.push(
        `  ${pad(h.pid > 0 ? String(h.pid) : h.client, 9)}${pad(tokens, 8)}${pad(seconds(h.holdingForMs), 10)}${h.command.slice(0, commandWidth)}`,
      );
    }
  }
  lines.push('', `WAITERS (${status.waiters.length})`);
  if (status.waiters.length > 0) {
    lines.push(`  ${pad('PID', 9)}${pad('HOW', 8)}${pad('FOR', 10)}COMMAND`);
    for (const w of status.waiters) {
      lines.push(
        `  ${pad(w.pid > 0 ? String(w.pid) : w.client, 9)}${pad(w.kind === 'poll' ? 'poll' : 'read', 8)}${pad(seconds(w.waitingForMs), 10)}${w.command.slice(0, commandWidth)}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

/** One line per event for `stevie events`. */
export function formatEvent(event: ControlEventMessage): string {
  const r: PoolRecord = event.record;
  const time = new Date(event.wallMs).toISOString().slice(11, 23);
  const who = 'pid' in r ? (r.pid > 0 ? `pid ${r.pid}` : r.client) : '';
  switch (r.type) {
    case 'grant':
      return `${time} grant    ${who} holds ${r.held}${r.viaReservation ? ' (reserved)' : ''}  out ${r.out}`;
    case 'return':
      return `${time} return   ${who} gave ${r.tokens}, holds ${r.held}  out ${r.out}`;
    case 'reclaim':
      return `${time} reclaim  ${who} ${r.tokens} token(s) (${r.reason === 'exit' ? 'exited' : 'closed'})  out ${r.out}`;
    case 'reserve':
      return `${time} reserve  ${who}  out ${r.out}`;
    case 'reservation-expired':
      return `${time} expired  ${who} did not read its reserved token  out ${r.out}`;
    case 'unowned-byte-dropped':
      return `${time} dropped  ${who} wrote a byte it never took (ignored)`;
    case 'enospc':
      return `${time} ENOSPC   ${who} wrote ${r.bytes} byte(s) it does not hold`;
    case 'interrupted':
      return `${time} EINTR    ${who} stopped waiting (signal)`;
    case 'config':
      return `${time} config   ${JSON.stringify(r.changes)}`;
  }
}

const SPARK = ' ▁▂▃▄▅▆▇█';

/** A bar of tokens out over time, one character per sample, scaled to `jobs`. */
export function sparkline(samples: readonly number[], jobs: number): string {
  return samples
    .map((out) => SPARK[Math.min(8, Math.round((out / Math.max(1, jobs)) * 8))] ?? ' ')
    .join('');
}

async function withClient<T>(path: string, run: (client: ControlClient) => Promise<T>): Promise<T> {
  const client = await ControlClient.connect(path);
  try {
    return await run(client);
  } finally {
    client.close();
  }
}

async function top(path: string): Promise<void> {
  const client = await ControlClient.connect(path);
  const history: number[] = [];
  const historySamples = 120; // a minute at two refreshes per second
  let stopped = false;
  const stop = (): void => {
    stopped = true;
  };
  if (process.stdin.isTTY) {
    process.stdin.setRawMode(true);
    process.stdin.resume();
    process.stdin.on('data', (key: Buffer) => {
      const ch = key.toString();
      if (ch === 'q' || ch === '\u0003') stop();
    });
  }
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    while (!stopped) {
      const status = (await client.request({ type: 'status' })) as StatusResult;
      history.push(status.out);
      if (history.length > historySamples) history.shift();
      const width = process.stdout.columns ?? 100;
      const screen = [
        `stevie top — ${new Date().toLocaleTimeString()} — q to quit`,
        `tokens out, last minute (0..${status.settings.jobs}): |${sparkline(history, status.settings.jobs)}|`,
        '',
        formatStatus(status, width),
      ].join('\n');
      process.stdout.write(`\x1b[H\x1b[2J${screen}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  } finally {
    client.close();
    if (process.stdin.isTTY) process.stdin.setRawMode(false);
    process.stdin.pause();
    process.stdout.write('\n');
  }
}

async function events(path: string, json: boolean): Promise<void> {
  const client = await ControlClient.connect(path);
  client.onEvent((event) =>
    process.stdout.write(json ? `${JSON.stringify(event)}\n` : `${formatEvent(event)}\n`),
  );
  await client.request({ type: 'subscribe' });
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    // Ends when the daemon goes away.
    const poll = setInterval(() => {
      client.request({ type: 'get', setting: 'jobs' }).catch(() => {
        clearInterval(poll);
        resolve();
      });
    }, 5000);
    poll.unref();
  });
  client.close();
}

/** Run stevie with these arguments; returns the exit code. */
export async function stevie(
  argv: string[],
  out: (text: string) => void = (t) => process.stdout.write(t),
): Promise<number> {
  const args = [...argv];
  let control: string | undefined;
  const takeControl = (at: number): void => {
    const arg = args[at] as string;
    if (arg.includes('=')) {
      control = arg.slice(arg.indexOf('=') + 1);
      args.splice(at, 1);
    } else {
      control = args[at + 1];
      if (control === undefined) throw new StevieUsageError('--control needs a PATH');
      args.splice(at, 2);
    }
  };
  const isControl = (arg: string | undefined): boolean =>
    arg === '--control' || (arg?.startsWith('--control=') ?? false);
  if (isControl(args[0])) takeControl(0);
  const first = args[0];
  const runsACommand =
    first === '--' ||
    first === '--style' ||
    (first !== undefined && !first.startsWith('-') && !SUBCOMMANDS.includes(first));
  if (runsACommand) {
    // Only stevie's own prefix (`--style S`) may still hold --control: the
    // rest are the command's words.
    const at = first === '--style' && isControl(args[2]) ? 2 : -1;
    if (at >= 0) takeControl(at);
  } else {
    const at = args.findIndex(isControl);
    if (at >= 0) takeControl(at);
  }
  const path = controlSocketPath(control);
  const command = args[0];
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    out(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  const json = args.includes('--json');
  switch (command) {
    case 'status': {
      const status = (await withClient(path, (c) => c.request({ type: 'status' }))) as StatusResult;
      out(
        json
          ? `${JSON.stringify(status, null, 2)}\n`
          : formatStatus(status, process.stdout.columns ?? 100),
      );
      return 0;
    }
    case 'get': {
      const name = args[1];
      const setting = name === undefined ? undefined : settingNamed(name);
      if (name !== undefined && setting === null)
        throw new StevieUsageError(`unknown setting '${name}'`);
      const result = (await withClient(path, (c) =>
        c.request(
          setting === undefined || setting === null ? { type: 'get' } : { type: 'get', setting },
        ),
      )) as Partial<Settings>;
      if (json) out(`${JSON.stringify(result)}\n`);
      else if (setting) out(`${settingText(result[setting])}\n`);
      else for (const [key, value] of Object.entries(result)) out(`${key} ${settingText(value)}\n`);
      return 0;
    }
    case 'set': {
      const [, name, value] = args;
      if (name === undefined || value === undefined)
        throw new StevieUsageError('usage: stevie set NAME VALUE (e.g. stevie set jobs 12)');
      const setting = settingNamed(name);
      if (setting === null) throw new StevieUsageError(`unknown setting '${name}'`);
      const parsed = parseSettingValue(setting, value);
      if ('error' in parsed) throw new StevieUsageError(parsed.error);
      const result = (await withClient(path, (c) =>
        c.request({ type: 'set', changes: { [setting]: parsed.value } }),
      )) as Settings;
      out(`${setting} ${settingText(result[setting])}\n`);
      return 0;
    }
    case 'events':
      await events(path, json);
      return 0;
    case 'metrics':
      out(String(await withClient(path, (c) => c.request({ type: 'metrics' }))));
      return 0;
    case 'top':
      await top(path);
      return 0;
    default:
      break;
  }
  if (command === '--') return runCommand(args.slice(1), path, null);
  if (command === '--style') {
    const style = args[1];
    if (style !== 'fifo' && style !== 'pipe' && style !== 'auto')
      throw new StevieUsageError('--style is fifo, pipe or auto');
    const rest = args[2] === '--' ? args.slice(3) : args.slice(2);
    return runCommand(rest, path, style);
  }
  if (command.startsWith('-')) return steveFlags(args, path, out);
  return runCommand(args, path, null);
}

/** The pool path to run a command against: the daemon's fronts, else the default paths. */
export async function findPool(controlPath: string, command: string): Promise<string> {
  let fronts: StatusResult['fronts'] = [];
  try {
    fronts = ((await withClient(controlPath, (c) => c.request({ type: 'status' }))) as StatusResult)
      .fronts;
  } catch (error) {
    if (!(error instanceof ControlClientError)) throw error;
  }
  const front = chooseFront(fronts, command);
  if (front) return front.path;
  for (const path of [DEFAULT_DEVICE_PATH, DEFAULT_FUSE_JOBSERVER_PATH])
    if (existsSync(path)) return path;
  throw new ControlClientError(
    `no steve pool found (no daemon at ${controlPath}, no ${DEFAULT_DEVICE_PATH}, no ${DEFAULT_FUSE_JOBSERVER_PATH}): start one with \`npx steve-daemon\``,
  );
}

/**
 * A private fifo of the daemon for a command that accepts only a real fifo
 * (ninja): its tokens come back when the command ends, however it ends.
 * Without one (an older daemon, no access) the shared fronts are used, and
 * stevie says so.
 */
async function privateFifo(controlPath: string): Promise<PrivateFifoLease | null> {
  try {
    return await leasePrivateFifo(controlPath);
  } catch (error) {
    if (!(error instanceof PrivateFifoError)) throw error;
    process.stderr.write(`stevie: warning: ${error.message}; using the shared pool instead\n`);
    return null;
  }
}

/** Keep the private fifo until the command has exited, even if stevie is killed first. */
function tieToCommand(lease: PrivateFifoLease, pid: number): void {
  lease.commandStarted(pid).catch((error: Error) => {
    process.stderr.write(
      `stevie: warning: the private fifo is not tied to pid ${pid}: ${error.message}\n`,
    );
  });
}

/**
 * `stevie [--] CMD ARGS…`: run CMD holding one token of the pool; its exit
 * status is ours. When CMD dies of SIGINT, SIGTERM, SIGHUP or SIGQUIT,
 * stevie dies of it too once the token is back (so a shell loop around it
 * stops on Ctrl-C); the status is what remains for any other signal.
 */
async function runCommand(
  commandLine: string[],
  controlPath: string,
  style: RunStyle | null,
): Promise<number> {
  const [command, ...commandArgs] = commandLine;
  if (command === undefined) throw new StevieUsageError('usage: stevie [--] CMD ARGS…');
  const lease = needsRealFifo(command) && style !== 'pipe' ? await privateFifo(controlPath) : null;
  const poolPath = lease?.path ?? (await findPool(controlPath, command));
  let result: RunWithTokenResult;
  try {
    const jobserver = Jobserver.fromAuth({ kind: 'fifo', path: poolPath }, { implicitSlot: false });
    try {
      result = await runWithTokenResult(command, commandArgs, {
        jobserver,
        tokens: 1,
        style: style ?? 'auto',
        ...(lease === null ? {} : { onSpawn: (pid: number) => tieToCommand(lease, pid) }),
      });
    } finally {
      jobserver.close();
    }
  } catch (error) {
    if (error instanceof CommandStartError) throw new ControlClientError(error.message);
    throw error;
  } finally {
    lease?.close();
  }
  dieOfSignal(result.signal);
  return result.status;
}

/** steve's flags, in order: `-t`, `--get-X`, `--set-X N`. */
async function steveFlags(
  args: string[],
  path: string,
  out: (text: string) => void,
): Promise<number> {
  return withClient(path, async (client) => {
    for (let i = 0; i < args.length; i++) {
      const flag = args[i] as string;
      if (flag === '-t' || flag === '--get-tokens') {
        const status = (await client.request({ type: 'status' })) as StatusResult;
        out(`${status.available}\n`);
        continue;
      }
      const match = /^--(get|set)-(.+?)(?:=(.*))?$/.exec(flag);
      const setting = match ? STEVE_FLAGS[match[2] as string] : undefined;
      if (!match || setting === undefined)
        throw new StevieUsageError(`unknown option '${flag}'\n${USAGE}`);
      if (match[1] === 'get') {
        const result = (await client.request({ type: 'get', setting })) as Partial<Settings>;
        out(`${settingText(result[setting])}\n`);
        continue;
      }
      const text = match[3] ?? args[++i];
      if (text === undefined) throw new StevieUsageError(`${flag} needs a value`);
      const parsed = parseSettingValue(setting, text);
      if ('error' in parsed) throw new StevieUsageError(parsed.error);
      await client.request({ type: 'set', changes: { [setting]: parsed.value } });
    }
    return 0;
  });
}

export async function main(argv: string[]): Promise<void> {
  try {
    process.exitCode = await stevie(argv);
  } catch (error) {
    if (error instanceof StevieUsageError) {
      process.stderr.write(`stevie: ${error.message}\n`);
      process.exitCode = 2;
    } else if (error instanceof ControlClientError) {
      process.stderr.write(`stevie: ${error.message}\n`);
      process.exitCode = 1;
    } else {
      throw error;
    }
  }
}
