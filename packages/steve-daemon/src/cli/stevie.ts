/**
 * `stevie`: watch and steer a running steve-daemon through its control socket.
 *
 *   stevie status [--json]          jobs, tokens out, holders and waiters
 *   stevie top                      the same, live, with a minute of history
 *   stevie get [NAME]               settings
 *   stevie set NAME VALUE           e.g. `stevie set jobs 12`, `stevie set load-average none`
 *   stevie events [--json]          the event stream (grants, returns, reclaims, …)
 *   stevie metrics                  Prometheus text
 *   stevie record FILE [--seconds S] the events of a run of yours, to a file
 *   stevie report FILE [--svg OUT]  tokens held per build over time, from that file
 *   stevie -t | --get-jobs | --set-jobs N | …   steve-compatible flags
 *
 *   stevie [--] CMD ARGS…          run CMD holding one token (MAKEFLAGS points at the pool)
 *
 * Global: --control PATH (else $STEVE_CONTROL, else /run/steve/control.sock).
 */

import { UsageError, command, exitOnUsageError, parseCount, parseDecimal } from '@steve/cli';
import {
  CONTROL_SOCKET_ENV,
  type ControlEventMessage,
  DEFAULT_CONTROL_SOCKET_PATH,
  DEFAULT_DEVICE_PATH,
  DEFAULT_FUSE_JOBSERVER_PATH,
  chooseFront,
  needsRealFifo,
  type PoolRecord,
  type SettingName,
  type Settings,
  type StatusResult,
  FAIRNESS_VALUES,
  MAX_TIMER_MS,
  isSettingName,
  validateSettings,
} from '@steve/protocol';
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  openSync,
  readFileSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import type { Argv } from 'yargs';
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
import { lookupUser } from '../daemon/privileges.js';
import {
  RECORD_VERSION,
  RecordFileError,
  type RecordLine,
  buildReport,
  describeProcess,
  formatReport,
  parseRecord,
  procFacts,
  reportSvg,
} from './record.js';

/** stevie's own commands; any other first word is a command to run. */
export const SUBCOMMANDS = [
  'status',
  'top',
  'get',
  'set',
  'events',
  'metrics',
  'record',
  'report',
  'help',
] as const;

type ValueKind = 'count' | 'count-or-none' | 'ms' | 'decimal-or-none' | 'fairness';

/**
 * The setting names stevie shows and takes (the daemon's option names), for
 * each setting of the protocol. `get` and `set` share them: `stevie get`
 * lists these names, and every name or alias here works in both.
 */
export const SETTINGS: Readonly<
  Record<SettingName, { name: string; aliases: readonly string[]; kind: ValueKind }>
> = {
  jobs: { name: 'jobs', aliases: ['j'], kind: 'count' },
  maxLoadAverage: { name: 'load-average', aliases: ['load', 'l'], kind: 'decimal-or-none' },
  minJobs: { name: 'min-jobs', aliases: ['m'], kind: 'count' },
  minMemoryAvailableMiB: {
    name: 'min-memory-avail',
    aliases: ['min-memory', 'a'],
    kind: 'decimal-or-none',
  },
  maxMemoryPressureAvg10: { name: 'memory-pressure', aliases: [], kind: 'decimal-or-none' },
  perProcessLimit: { name: 'per-process-limit', aliases: ['p'], kind: 'count-or-none' },
  perUserLimit: { name: 'per-user-limit', aliases: [], kind: 'count-or-none' },
  reservationTtlMs: { name: 'reservation-ttl', aliases: [], kind: 'ms' },
  limitRecheckMs: { name: 'load-recheck', aliases: [], kind: 'ms' },
  fairness: { name: 'fairness', aliases: [], kind: 'fairness' },
};

/** The settings in the order `stevie get` lists them. */
export const SETTING_ORDER = Object.keys(SETTINGS) as SettingName[];

/** The names `stevie get` prints and `stevie set` takes, in that order. */
export const SETTING_CLI_NAMES: readonly string[] = SETTING_ORDER.map((s) => SETTINGS[s].name);

/** The setting a user means by `name` (our name, an alias, or the protocol's name). */
export function settingNamed(name: string): SettingName | null {
  if (isSettingName(name)) return name;
  for (const setting of SETTING_ORDER) {
    const { name: cliName, aliases } = SETTINGS[setting];
    if (cliName === name || aliases.includes(name)) return setting;
  }
  return null;
}

function knownSetting(name: string): SettingName {
  const setting = settingNamed(name);
  if (setting === null)
    throw new UsageError(`unknown setting '${name}' (known: ${SETTING_CLI_NAMES.join(', ')})`);
  return setting;
}

/**
 * The value of `setting` from the text the user typed; `label` names it in
 * the error (`jobs`, `--set-jobs`), which quotes the text.
 */
export function parseSetting(setting: SettingName, text: string, label: string): unknown {
  const { kind } = SETTINGS[setting];
  const none = /^\s*(none|null|off)\s*$/i.test(text);
  let value: unknown;
  try {
    switch (kind) {
      case 'count':
        value = parseCount(label, text, { min: 1 });
        break;
      case 'count-or-none':
        value = none ? null : parseCount(label, text, { min: 1 });
        break;
      case 'ms':
        value = parseCount(label, text, { min: 1, max: MAX_TIMER_MS });
        break;
      case 'decimal-or-none':
        value = none ? null : parseDecimal(label, text, { min: 0 });
        break;
      case 'fairness':
        if (!(FAIRNESS_VALUES as readonly string[]).includes(text.trim()))
          throw new UsageError(`${label} is one of ${FAIRNESS_VALUES.join(', ')}, got '${text}'`);
        value = text.trim();
        break;
    }
  } catch (error) {
    if (error instanceof UsageError && kind.endsWith('-or-none'))
      throw new UsageError(error.message.replace(/, got '/, ` or 'none', got '`));
    throw error;
  }
  const problem = validateSettings({ [setting]: value });
  if (problem !== null) throw new UsageError(`${label}: ${problem}, from '${text}'`);
  return value;
}

/** steve's getter/setter flags: `--get-jobs`, `--set-jobs N`, … */
const STEVE_FLAGS: Readonly<Record<string, SettingName>> = {
  jobs: 'jobs',
  'min-memory-avail': 'minMemoryAvailableMiB',
  'load-average': 'maxLoadAverage',
  'min-jobs': 'minJobs',
  'per-process-limit': 'perProcessLimit',
};

/** One of steve's flags, in the order given. */
export type SteveFlag =
  | { kind: 'get-tokens' }
  | { kind: 'get'; setting: SettingName }
  | { kind: 'set'; setting: SettingName; value: unknown };

/** What a stevie command line asks for. */
export type StevieAction =
  | { kind: 'status'; json: boolean }
  | { kind: 'top' }
  | { kind: 'get'; setting: SettingName | null; json: boolean }
  | { kind: 'set'; setting: SettingName; value: unknown }
  | { kind: 'events'; json: boolean }
  | { kind: 'metrics' }
  | { kind: 'record'; file: string; seconds: number | null; force: boolean }
  | { kind: 'report'; file: string; svg: string | null; json: boolean }
  | { kind: 'help'; text: string }
  | { kind: 'steve-flags'; flags: SteveFlag[] }
  | { kind: 'run'; commandLine: string[]; style: RunStyle | null };

export interface StevieArgs {
  /** --control PATH, when given. */
  control: string | undefined;
  action: StevieAction;
}

const DESCRIPTION = `Watch and steer a running steve-daemon, or run a command holding one of its tokens.

  stevie [--control PATH] [--style fifo|pipe|auto] [--] CMD ARGS…
      run CMD holding one token of the pool, with MAKEFLAGS pointing at it (GNU make < 4.4
      gets it as a descriptor; ninja a private fifo); CMD's options are its own

The socket: --control PATH, else $STEVE_CONTROL, else ${DEFAULT_CONTROL_SOCKET_PATH}.
Settings (get/set): ${SETTING_CLI_NAMES.join(', ')}.`;

/** A subcommand takes no words beyond its own, not even after `--`. */
function nothingAfter(argv: { _: (string | number)[]; '--'?: (string | number)[] }): true {
  const [name, ...extra] = argv._.map(String);
  extra.push(...(argv['--'] ?? []).map(String));
  if (extra.length > 0)
    throw new UsageError(`unexpected '${extra.join(' ')}' after 'stevie ${name ?? ''}'`);
  return true;
}

/**
 * One parser configuration for every level (yargs replaces it, does not
 * merge): values as typed, words after `--` kept apart, and no camelCase
 * copies of option names (an unknown `--get-foo` is reported once, as typed).
 */
const noHalt = {
  'parse-numbers': false,
  'parse-positional-numbers': false,
  'populate--': true,
  'camel-case-expansion': false,
};

function stevieYargs(argv: readonly string[], onAction: (action: StevieAction) => void): Argv {
  const json = (y: Argv) =>
    y.parserConfiguration(noHalt).check(nothingAfter).option('json', {
      type: 'boolean',
      default: false,
      describe: 'JSON for machines',
    });
  let y = command('stevie', import.meta.url, argv)
    .usage(`$0 COMMAND [options]\n\n${DESCRIPTION}`)
    .option('control', {
      type: 'string',
      requiresArg: true,
      describe: `the daemon's control socket (default: $${CONTROL_SOCKET_ENV} or ${DEFAULT_CONTROL_SOCKET_PATH})`,
    })
    .option('style', {
      type: 'string',
      requiresArg: true,
      global: false,
      describe:
        'with CMD: how it gets the pool (auto: a descriptor for make < 4.4, else fifo:PATH)',
    })
    .option('get-tokens', {
      alias: 't',
      type: 'boolean',
      global: false,
      describe: 'print the tokens available now (steve)',
    })
    .command('status', 'jobs, tokens out, holders and waiters', json, (a) =>
      onAction({ kind: 'status', json: Boolean(a.json) }),
    )
    .command(
      'top',
      'the same, live, with a minute of history (q quits)',
      (b) => b.parserConfiguration(noHalt).check(nothingAfter),
      () => onAction({ kind: 'top' }),
    )
    .command(
      'get [name]',
      'print one setting, or every setting',
      (b) =>
        json(b).positional('name', {
          type: 'string',
          describe: `one of ${SETTING_CLI_NAMES.join(', ')}`,
        }),
      (a) =>
        onAction({
          kind: 'get',
          setting: a.name === undefined ? null : knownSetting(String(a.name)),
          json: Boolean(a.json),
        }),
    )
    .command(
      'set <name> <value>',
      "change one setting ('none' lifts a limit); needs root, the daemon's user or its group",
      (b) =>
        b
          .parserConfiguration(noHalt)
          .check(nothingAfter)
          .positional('name', {
            type: 'string',
            describe: `one of ${SETTING_CLI_NAMES.join(', ')}`,
          })
          .positional('value', { type: 'string', describe: 'e.g. 12, none, fifo' }),
      (a) => {
        const setting = knownSetting(String(a.name));
        onAction({
          kind: 'set',
          setting,
          value: parseSetting(setting, String(a.value), SETTINGS[setting].name),
        });
      },
    )
    .command('events', 'follow grants, returns, reclaims, reservations and changes', json, (a) =>
      onAction({ kind: 'events', json: Boolean(a.json) }),
    )
    .command(
      'metrics',
      'Prometheus text',
      (b) => b.parserConfiguration(noHalt).check(nothingAfter),
      () => onAction({ kind: 'metrics' }),
    )
    .command(
      'record <file>',
      'write the events of a run of yours (an emerge, a few builds) to FILE until Ctrl-C',
      (b) =>
        b
          .parserConfiguration(noHalt)
          .check(nothingAfter)
          .positional('file', { type: 'string', describe: 'where to write (JSON lines)' })
          .option('seconds', {
            type: 'string',
            requiresArg: true,
            describe: 'stop after this many seconds (default: at Ctrl-C or when the daemon stops)',
          })
          .option('force', {
            type: 'boolean',
            default: false,
            describe: 'replace FILE if it exists',
          }),
      (a) =>
        onAction({
          kind: 'record',
          file: String(a.file),
          seconds:
            a.seconds === undefined
              ? null
              : parseDecimal('--seconds', String(a.seconds), { min: 0 }),
          force: Boolean(a.force),
        }),
    )
    .command(
      'report <file>',
      'tokens held per build over time, from a file `stevie record` wrote',
      (b) =>
        json(b)
          .positional('file', { type: 'string', describe: 'a file `stevie record` wrote' })
          .option('svg', {
            type: 'string',
            requiresArg: true,
            describe: 'also draw the timeline as an SVG chart to OUT',
          }),
      (a) =>
        onAction({
          kind: 'report',
          file: String(a.file),
          svg: a.svg === undefined ? null : String(a.svg),
          json: Boolean(a.json),
        }),
    )
    .command(
      'help [command]',
      "this help, or a command's (stevie help set)",
      (b) =>
        b
          .parserConfiguration(noHalt)
          .check(nothingAfter)
          .positional('command', { type: 'string', describe: SUBCOMMANDS.join(', ') }),
      (a) => onAction({ kind: 'help', text: a.command === undefined ? '' : String(a.command) }),
    );
  for (const [flag, setting] of Object.entries(STEVE_FLAGS)) {
    y = y
      .option(`get-${flag}`, {
        type: 'boolean',
        global: false,
        describe: `print ${SETTINGS[setting].name} (steve)`,
      })
      .option(`set-${flag}`, {
        type: 'string',
        requiresArg: true,
        global: false,
        describe: `change ${SETTINGS[setting].name} (steve)`,
      });
  }
  return y;
}

/** stevie's help, or that of its command `name` (`stevie help set`). */
async function helpText(name: string): Promise<string> {
  if (name === '') return stevieYargs([], () => undefined).getHelp();
  if (!(SUBCOMMANDS as readonly string[]).includes(name))
    throw new UsageError(`no command '${name}' to help with (${SUBCOMMANDS.join(', ')})`);
  const y = stevieYargs([], () => undefined).parserConfiguration(noHalt);
  // With a callback yargs hands the help over instead of printing it and exiting.
  return new Promise((resolve, reject) => {
    void y.parse(
      [name, '--help'],
      {},
      (error: Error | undefined, _argv: unknown, output: string) =>
        error ? reject(error) : resolve(output),
    );
  });
}

/** Where in argv a flag first appears (steve's flags act in the order given). */
function positionOf(argv: readonly string[], names: readonly string[]): number {
  const at = argv.findIndex((arg) => names.some((n) => arg === n || arg.startsWith(`${n}=`)));
  return at < 0 ? argv.length : at;
}

function steveFlagsOf(parsed: Record<string, unknown>, argv: readonly string[]): SteveFlag[] {
  const found: { at: number; flag: SteveFlag }[] = [];
  if (parsed['get-tokens'] === true)
    found.push({ at: positionOf(argv, ['-t', '--get-tokens']), flag: { kind: 'get-tokens' } });
  for (const [name, setting] of Object.entries(STEVE_FLAGS)) {
    if (parsed[`get-${name}`] === true)
      found.push({ at: positionOf(argv, [`--get-${name}`]), flag: { kind: 'get', setting } });
    const text = parsed[`set-${name}`];
    if (text !== undefined) {
      const last = Array.isArray(text) ? (text as unknown[]).at(-1) : text;
      found.push({
        at: positionOf(argv, [`--set-${name}`]),
        flag: { kind: 'set', setting, value: parseSetting(setting, String(last), `--set-${name}`) },
      });
    }
  }
  return found.sort((a, b) => a.at - b.at).map((f) => f.flag);
}

const STYLES: readonly RunStyle[] = ['fifo', 'pipe', 'auto'];

function styleOf(value: unknown): RunStyle | null {
  if (value === undefined) return null;
  const text = String(Array.isArray(value) ? (value as unknown[]).at(-1) : value);
  if (!(STYLES as readonly string[]).includes(text))
    throw new UsageError(`--style is one of ${STYLES.join(', ')}, got '${text}'`);
  return text as RunStyle;
}

/** Is `word` a program the shell would find (a path, or a name on $PATH)? */
function isProgram(word: string): boolean {
  if (word.includes('/')) return true;
  return (process.env.PATH ?? '').split(':').some((dir) => {
    try {
      accessSync(join(dir || '.', word), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(
        (row[j] as number) + 1,
        (next[j - 1] as number) + 1,
        (row[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    row = next;
  }
  return row[b.length] as number;
}

/**
 * Read a stevie command line. A first word that is one of stevie's commands
 * is that command; anything else (or whatever follows `--`) is a command to
 * run, with its own options untouched. Throws UsageError.
 */
export async function parseStevieArgs(argv: readonly string[]): Promise<StevieArgs> {
  let action: StevieAction | null = null;
  const onAction = (a: StevieAction): void => {
    action = a;
  };
  // First up to the first word that is not one of stevie's options.
  const prefix = await stevieYargs(argv, onAction)
    .parserConfiguration({ ...noHalt, 'halt-at-non-option': true })
    .parseAsync();
  const rest = ((prefix['--'] ?? []) as unknown[]).map(String);
  const control = prefix.control as string | undefined;
  const afterDashes = rest.length > 0 && argv[argv.length - rest.length - 1] === '--';
  const first = rest[0];
  if (first !== undefined && !afterDashes && (SUBCOMMANDS as readonly string[]).includes(first)) {
    const y = stevieYargs(argv, onAction).parserConfiguration(noHalt);
    const parsed = await y.parseAsync();
    const chosen = action as StevieAction | null;
    if (chosen === null) throw new UsageError(`cannot read '${argv.join(' ')}'`);
    if (chosen.kind === 'help')
      return { control, action: { kind: 'help', text: await helpText(chosen.text) } };
    return { control: parsed.control as string | undefined, action: chosen };
  }
  const flags = steveFlagsOf(prefix, argv);
  const style = styleOf(prefix.style);
  if (first === undefined) {
    if (flags.length > 0 && style === null)
      return { control, action: { kind: 'steve-flags', flags } };
    if (style !== null)
      throw new UsageError(`--style wants a command to run: stevie --style ${style} -- CMD ARGS…`);
    throw new UsageError(
      `say what to do: one of ${SUBCOMMANDS.join(', ')}, steve's -t/--get-X/--set-X, or CMD ARGS… to run`,
    );
  }
  if (flags.length > 0)
    throw new UsageError(
      `steve's -t/--get-X/--set-X flags do not go with a command to run ('${first}')`,
    );
  if (!afterDashes && !first.startsWith('-') && !isProgram(first)) {
    const near = SUBCOMMANDS.filter((s) => {
      const distance = editDistance(s, first);
      return distance <= 2 && distance * 2 < first.length;
    });
    throw new UsageError(
      `unknown command '${first}': not one of stevie's (${SUBCOMMANDS.join(', ')}) nor a program on PATH${near.length ? `; did you mean 'stevie ${near[0]}'?` : ''}`,
    );
  }
  return { control, action: { kind: 'run', commandLine: rest, style } };
}

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
    s.perUserLimit !== null ? `<= ${s.perUserLimit} per user` : null,
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
  const byUser = tokensByUser(status);
  if (s.perUserLimit !== null && byUser.length > 0) {
    lines.push('', `USERS (${byUser.length}, at most ${s.perUserLimit} tokens each)`);
    lines.push(`  ${pad('UID', 9)}${pad('TOKENS', 8)}USER`);
    for (const { uid, tokens } of byUser) {
      lines.push(
        `  ${pad(String(uid), 9)}${pad(String(tokens), 8)}${lookupUser(String(uid))?.name ?? ''}`,
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

/** Tokens held or reserved per uid, most first (holders whose uid is known). */
export function tokensByUser(status: StatusResult): Array<{ uid: number; tokens: number }> {
  const tokens = new Map<number, number>();
  for (const h of status.holders) {
    if (h.uid === undefined || h.uid === null) continue;
    tokens.set(h.uid, (tokens.get(h.uid) ?? 0) + h.tokens + (h.reserved ? 1 : 0));
  }
  return [...tokens]
    .map(([uid, count]) => ({ uid, tokens: count }))
    .sort((a, b) => b.tokens - a.tokens || a.uid - b.uid);
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

/** `stevie record FILE`: the header, then every event, each process announced before its first. */
async function record(
  path: string,
  action: { file: string; seconds: number | null; force: boolean },
  out: (text: string) => void,
): Promise<number> {
  const client = await ControlClient.connect(path);
  let fd: number;
  try {
    fd = openSync(action.file, action.force ? 'w' : 'wx', 0o644);
  } catch (error) {
    client.close();
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST')
      throw new UsageError(
        `${action.file} exists: name another file, or pass --force to replace it`,
      );
    throw new UsageError(`cannot write ${action.file}: ${(error as Error).message}`);
  }
  const write = (line: RecordLine): void => {
    writeSync(fd, `${JSON.stringify(line)}\n`);
  };
  const announced = new Set<number>();
  let events = 0;
  try {
    const status = (await client.request({ type: 'status' })) as StatusResult;
    write({
      kind: 'header',
      version: RECORD_VERSION,
      startedWallMs: Date.now(),
      jobs: status.settings.jobs,
      daemonPid: status.daemonPid,
    });
    client.onEvent((event) => {
      const r = event.record;
      if ('pid' in r && r.pid > 0 && !announced.has(r.pid)) {
        announced.add(r.pid);
        write({ kind: 'process', ...describeProcess(r.pid, procFacts) });
      }
      write({ kind: 'event', ...event });
      events++;
    });
    await client.request({ type: 'subscribe' });
    process.stderr.write(`stevie: recording to ${action.file}; Ctrl-C stops\n`);
    const why = await new Promise<string>((resolve) => {
      const onSignal = (): void => resolve('stopped');
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      client.onClose(() => resolve('the daemon went away'));
      if (action.seconds !== null)
        setTimeout(() => resolve(`${action.seconds}s passed`), action.seconds * 1000).unref();
    });
    out(`recorded ${events} events of ${announced.size} processes to ${action.file} (${why})\n`);
  } finally {
    client.close();
    closeSync(fd);
  }
  return 0;
}

/** `stevie report FILE [--svg OUT]`. */
async function report(
  action: { file: string; svg: string | null; json: boolean },
  out: (text: string) => void,
): Promise<number> {
  let text: string;
  try {
    text = readFileSync(action.file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${action.file}: ${(error as Error).message}`);
  }
  let lines: RecordLine[];
  try {
    lines = parseRecord(text, action.file);
  } catch (error) {
    if (error instanceof RecordFileError) throw new UsageError(error.message);
    throw error;
  }
  const result = buildReport(lines);
  out(action.json ? `${JSON.stringify(result, null, 2)}\n` : formatReport(result));
  if (action.svg !== null) {
    const svg = await reportSvg(result, `tokens held per build: ${basename(action.file)}`);
    try {
      writeFileSync(action.svg, svg);
    } catch (error) {
      throw new UsageError(`cannot write ${action.svg}: ${(error as Error).message}`);
    }
    if (!action.json) out(`wrote ${action.svg}\n`);
  }
  return 0;
}

function settingLine(setting: SettingName, value: unknown): string {
  return `${SETTINGS[setting].name} ${settingText(value)}\n`;
}

/** Run stevie with these arguments; returns the exit code. Throws UsageError. */
export async function stevie(
  argv: string[],
  out: (text: string) => void = (t) => process.stdout.write(t),
): Promise<number> {
  const { control, action } = await parseStevieArgs(argv);
  const path = controlSocketPath(control);
  switch (action.kind) {
    case 'help':
      out(`${action.text}\n`);
      return 0;
    case 'status': {
      const status = (await withClient(path, (c) => c.request({ type: 'status' }))) as StatusResult;
      out(
        action.json
          ? `${JSON.stringify(status, null, 2)}\n`
          : formatStatus(status, process.stdout.columns ?? 100),
      );
      return 0;
    }
    case 'get': {
      const { setting } = action;
      const result = (await withClient(path, (c) =>
        c.request(setting === null ? { type: 'get' } : { type: 'get', setting }),
      )) as Partial<Settings>;
      if (action.json) out(`${JSON.stringify(result)}\n`);
      else if (setting !== null) out(`${settingText(result[setting])}\n`);
      else
        for (const name of SETTING_ORDER) if (name in result) out(settingLine(name, result[name]));
      return 0;
    }
    case 'set': {
      const result = (await withClient(path, (c) =>
        c.request({ type: 'set', changes: { [action.setting]: action.value } }),
      )) as Settings;
      out(settingLine(action.setting, result[action.setting]));
      return 0;
    }
    case 'events':
      await events(path, action.json);
      return 0;
    case 'metrics':
      out(String(await withClient(path, (c) => c.request({ type: 'metrics' }))));
      return 0;
    case 'top':
      await top(path);
      return 0;
    case 'record':
      return record(path, action, out);
    case 'report':
      return report(action, out);
    case 'steve-flags':
      return steveFlags(action.flags, path, out);
    case 'run':
      return runCommand(action.commandLine, path, action.style);
  }
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
  if (command === undefined) throw new UsageError('say which command to run: stevie -- CMD ARGS…');
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
  flags: readonly SteveFlag[],
  path: string,
  out: (text: string) => void,
): Promise<number> {
  return withClient(path, async (client) => {
    for (const flag of flags) {
      if (flag.kind === 'get-tokens') {
        const status = (await client.request({ type: 'status' })) as StatusResult;
        out(`${status.available}\n`);
      } else if (flag.kind === 'get') {
        const result = (await client.request({
          type: 'get',
          setting: flag.setting,
        })) as Partial<Settings>;
        out(`${settingText(result[flag.setting])}\n`);
      } else {
        await client.request({ type: 'set', changes: { [flag.setting]: flag.value } });
      }
    }
    return 0;
  });
}

export async function main(argv: string[]): Promise<void> {
  try {
    process.exitCode = await stevie(argv);
  } catch (error) {
    if (error instanceof ControlClientError) {
      process.stderr.write(`stevie: ${error.message}\n`);
      process.exitCode = 1;
    } else {
      exitOnUsageError('stevie', error);
    }
  }
}
