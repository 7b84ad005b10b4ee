/**
 * `runWithToken`: run one command while holding job tokens, with the pool
 * passed on in its MAKEFLAGS. The one implementation behind `stevie CMD`
 * and `steve-job -- CMD`.
 */

import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { basename, delimiter, isAbsolute, join, resolve } from 'node:path';
import { constants as osConstants } from 'node:os';
import { isatty } from 'node:tty';
import { InvalidArgumentError, NoJobserverError } from '@steve/protocol';
import { CommandStartError } from './errors.js';
import { type ChildStyle, Jobserver, type StdioEntry } from './jobserver.js';
import { debug } from './native.js';
import type { Token } from './token.js';

/** `'auto'`: pipe for GNU make older than 4.4, fifo otherwise (see {@link chooseChildStyle}). */
export type RunStyle = ChildStyle | 'auto';

export interface RunWithTokenOptions {
  /** The pool (default: `Jobserver.fromEnv(env)`, closed again when the command ends). */
  readonly jobserver?: Jobserver;
  /** Tokens held while the command runs (default 1; the first may be the implicit slot). */
  readonly tokens?: number;
  /** How the child reaches the pool (default `'auto'`). */
  readonly style?: RunStyle;
  /** The child's environment before MAKEFLAGS is rewritten (default `process.env`). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
  /** The child's stdio before the pipe-style descriptor is added (default: inherited). */
  readonly stdio?: readonly StdioEntry[];
  /** Aborts the wait for tokens (the command is not started) or kills the command (SIGTERM). */
  readonly signal?: AbortSignal;
  /** Called with the command's pid once it has started (e.g. to tie a private fifo to it). */
  readonly onSpawn?: (pid: number) => void;
}

/** How a command ended: its status as a shell reports it, and the signal that killed it. */
export interface RunWithTokenResult {
  /** The exit status, or 128 + the signal number when a signal killed the command. */
  readonly status: number;
  /** The signal that killed the command, or null when it exited. */
  readonly signal: NodeJS.Signals | null;
}

/** Signals the wrapper listens for while the command runs (so it outlives them and returns its tokens). */
const HANDLED_SIGNALS = ['SIGINT', 'SIGQUIT', 'SIGTERM', 'SIGHUP'] as const;
/** Of those, the ones a terminal sends to the whole foreground process group. */
const TERMINAL_SIGNALS: ReadonlySet<string> = new Set(['SIGINT', 'SIGQUIT']);

/**
 * Whether a SIGINT/SIGQUIT this process receives is likely from its terminal
 * (Ctrl-C, Ctrl-\), which sends it to the whole foreground process group:
 * the command has it already and forwarding would deliver it twice. True
 * when stdin or stderr is a TTY.
 */
export function terminalSignalsReachChild(): boolean {
  return isatty(0) || isatty(2);
}

/** The absolute path `command` resolves to through `PATH`, or `null`. */
export function resolveCommand(
  command: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
  cwd = process.cwd(),
): string | null {
  const executable = (path: string): boolean => {
    try {
      accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (command.includes('/')) {
    const path = isAbsolute(command) ? command : resolve(cwd, command);
    return executable(path) ? path : null;
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const path = resolve(cwd, join(dir, command));
    if (executable(path)) return path;
  }
  return null;
}

/**
 * The GNU make version of an executable (`[4, 3]`), from `make --version`;
 * `null` when it does not say "GNU Make X.Y".
 */
export function gnuMakeVersion(path: string): [number, number] | null {
  const result = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  const match = /^GNU Make (\d+)\.(\d+)/m.exec(result.stdout ?? '');
  return match ? [Number(match[1]), Number(match[2])] : null;
}

/**
 * The style a command needs: `'pipe'` when the pool is an inherited pipe
 * (no path to give) or the command is GNU make older than 4.4 (its basename
 * is `make` or `gmake` and `--version` says so: make 4.3 stops with
 * "invalid --jobserver-auth string 'fifo:…'"), `'fifo'` otherwise.
 *
 * @example
 * chooseChildStyle('make', jobserver) // 'pipe' on Debian 12 (GNU Make 4.3)
 */
export function chooseChildStyle(
  command: string,
  jobserver: Jobserver,
  env: Readonly<Record<string, string | undefined>> = process.env,
  cwd = process.cwd(),
): ChildStyle {
  if (jobserver.auth.kind === 'pipe') return 'pipe';
  const name = basename(command);
  if (name !== 'make' && name !== 'gmake') return 'fifo';
  const path = resolveCommand(command, env, cwd);
  const version = path === null ? null : gnuMakeVersion(path);
  debug('%s is %s: GNU make %s', command, path, version?.join('.') ?? 'unknown');
  if (version !== null && (version[0] < 4 || (version[0] === 4 && version[1] < 4))) return 'pipe';
  return 'fifo';
}

/**
 * Run `command` with `args` while holding `tokens` job tokens: acquire
 * them (waiting as long as it takes, or until `signal` aborts), spawn the
 * command with stdio inherited and MAKEFLAGS pointing at the pool (auth
 * set, `-jN` removed, other flags kept: `makeflagsForChild`), forward
 * signals to it, and release the tokens when it ends.
 *
 * Signals, while the command runs: SIGTERM and SIGHUP are forwarded to it.
 * SIGINT and SIGQUIT are forwarded only when neither our stdin nor our
 * stderr is a TTY; with a TTY they most likely come from the terminal
 * (Ctrl-C, Ctrl-\), which signals the whole foreground process group, so
 * the command got them already and forwarding would deliver them twice
 * (`kill -INT` aimed at this process alone is then not passed on: send
 * SIGTERM). Either way this process survives them until the command ends.
 *
 * Resolves with the command's exit status, 128 + the signal number when a
 * signal killed it (as a shell reports it); {@link runWithTokenResult}
 * also tells which signal.
 *
 * @example
 * // stevie -- make -C src: one token from the inherited pool or the daemon
 * const status = await runWithToken('make', ['-C', 'src']);
 * process.exitCode = status;
 *
 * Errors: NoJobserverError when no `jobserver` is given and the
 * environment names none; InvalidArgumentError for `tokens < 1` or
 * `style: 'fifo'` on an inherited pipe; CommandStartError when the
 * command cannot be started (ENOENT, EACCES); the signal's reason when
 * aborted before the start; whatever `acquire()` rejects with; the first
 * error of a token's write-back (`Token.release`), thrown after every
 * token was released and an owned pool closed.
 */
export async function runWithToken(
  command: string,
  args: readonly string[] = [],
  options: RunWithTokenOptions = {},
): Promise<number> {
  return (await runWithTokenResult(command, args, options)).status;
}

/** The signals a wrapper passes on by dying of them itself ({@link dieOfSignal}). */
export const WRAPPER_SIGNALS: readonly NodeJS.Signals[] = [
  'SIGINT',
  'SIGTERM',
  'SIGHUP',
  'SIGQUIT',
];

/**
 * End this process by `signal`, the one its command died of, so that the
 * shell or loop around the wrapper sees a death by signal (bash stops a
 * loop on a child killed by SIGINT, not on one that exits 130). Only for
 * {@link WRAPPER_SIGNALS}; returns false and does nothing for null or any
 * other signal. Call it last, after the tokens are released and the
 * jobserver closed: every listener for the signal is removed (a CLI's
 * main owns the process), then it is raised with `process.kill`. Set
 * `process.exitCode` as well, in case the signal is blocked.
 */
export function dieOfSignal(signal: NodeJS.Signals | null): boolean {
  if (signal === null || !WRAPPER_SIGNALS.includes(signal)) return false;
  debug('the command died of %s: raising it again', signal);
  process.removeAllListeners(signal);
  process.kill(process.pid, signal);
  return true;
}

/**
 * {@link runWithToken}, resolving with the status and the signal that
 * killed the command (null when it exited). A wrapper that should end the
 * way its command did (so that a shell loop around it stops on Ctrl-C)
 * re-raises that signal once it has cleaned up.
 *
 * @example
 * const { status, signal } = await runWithTokenResult('make', []);
 * process.exitCode = status;
 * dieOfSignal(signal); // after cleanup
 */
export async function runWithTokenResult(
  command: string,
  args: readonly string[] = [],
  options: RunWithTokenOptions = {},
): Promise<RunWithTokenResult> {
  const count = options.tokens ?? 1;
  if (!Number.isSafeInteger(count) || count < 1) {
    throw new InvalidArgumentError(`tokens must be a positive integer, got ${count}`);
  }
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const owned = options.jobserver === undefined;
  const jobserver = options.jobserver ?? Jobserver.fromEnv(env, { cwd });
  if (jobserver === null) throw new NoJobserverError();
  const tokens: Token[] = [];
  try {
    const style =
      options.style === undefined || options.style === 'auto'
        ? chooseChildStyle(command, jobserver, env, cwd)
        : options.style;
    while (tokens.length < count) tokens.push(await jobserver.acquire({ signal: options.signal }));
    const spawnOptions = jobserver.spawnOptions({ style, env, stdio: options.stdio });
    debug('running %s with %d token(s), %s style', command, count, style);
    return await spawnAndWait(command, args, cwd, spawnOptions, options.signal, options.onSpawn);
  } finally {
    releaseAll(tokens, owned ? jobserver : null);
  }
}

/**
 * Release every token, then close `owned` (the pool runWithToken opened
 * itself), even when a release throws (a write-back refused with ENOSPC or
 * EAGAIN): one failed write must not keep the other tokens from the pool or
 * leave the descriptor open. The first error is rethrown once all are done.
 */
function releaseAll(tokens: readonly Token[], owned: Jobserver | null): void {
  let failure: { error: unknown } | null = null;
  for (const token of tokens) {
    try {
      token.release();
    } catch (error) {
      failure ??= { error };
    }
  }
  owned?.close();
  if (failure !== null) throw failure.error;
}

function spawnAndWait(
  command: string,
  args: readonly string[],
  cwd: string,
  spawnOptions: { env: NodeJS.ProcessEnv; stdio: StdioEntry[] },
  signal: AbortSignal | undefined,
  onSpawn: ((pid: number) => void) | undefined,
): Promise<RunWithTokenResult> {
  return new Promise<RunWithTokenResult>((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd, env: spawnOptions.env, stdio: spawnOptions.stdio });
    if (onSpawn !== undefined) child.once('spawn', () => onSpawn(child.pid as number));
    const fromTerminal = terminalSignalsReachChild();
    const forwarders = HANDLED_SIGNALS.map((name) => {
      const forward = (): void => {
        if (fromTerminal && TERMINAL_SIGNALS.has(name)) {
          debug('%s with a TTY: %s (pid %d) got it from the terminal', name, command, child.pid);
          return;
        }
        debug('forwarding %s to %s (pid %d)', name, command, child.pid);
        child.kill(name);
      };
      process.on(name, forward);
      return [name, forward] as const;
    });
    const onAbort = (): void => {
      child.kill('SIGTERM');
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const cleanup = (): void => {
      for (const [name, forward] of forwarders) process.removeListener(name, forward);
      signal?.removeEventListener('abort', onAbort);
    };
    child.once('error', (error) => {
      cleanup();
      reject(new CommandStartError(command, args, error));
    });
    child.once('exit', (code, signalName) => {
      cleanup();
      if (code !== null) resolvePromise({ status: code, signal: null });
      else {
        const number = signalName === null ? 0 : (osConstants.signals[signalName] ?? 0);
        resolvePromise({ status: 128 + number, signal: signalName });
      }
    });
  });
}
