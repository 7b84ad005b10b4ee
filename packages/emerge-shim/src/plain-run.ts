/**
 * Running a command with no token at all (`steve-job --fallback run` when
 * there is no pool): the environment untouched, stdio inherited, signals
 * passed on as `runWithToken` does, the status returned as a shell reports
 * it with the signal that killed the command. With a pool,
 * `runWithTokenResult` of `@steve/jobserver-client` does this.
 */

import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import {
  CommandStartError,
  type RunWithTokenResult,
  terminalSignalsReachChild,
} from '@steve/jobserver-client';

/** Caught while the command runs, so this process outlives them. */
const HANDLED_SIGNALS = ['SIGINT', 'SIGQUIT', 'SIGTERM', 'SIGHUP'] as const;
/** Sent by a terminal to the whole foreground process group. */
const TERMINAL_SIGNALS: ReadonlySet<string> = new Set(['SIGINT', 'SIGQUIT']);

/**
 * Resolves with the command's exit status (128 + N when signal N killed it)
 * and that signal. SIGTERM and SIGHUP are forwarded to the command; SIGINT
 * and SIGQUIT only when neither stdin nor stderr is a TTY (on a terminal,
 * Ctrl-C reached the command already: the terminal signals the whole
 * foreground group).
 *
 * Errors: CommandStartError when the command cannot be started.
 */
export function runWithoutToken(
  command: string,
  args: readonly string[],
): Promise<RunWithTokenResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: 'inherit' });
    const fromTerminal = terminalSignalsReachChild();
    const forwarders = HANDLED_SIGNALS.map((name) => {
      const forward = (): void => {
        if (fromTerminal && TERMINAL_SIGNALS.has(name)) return;
        child.kill(name);
      };
      process.on(name, forward);
      return [name, forward] as const;
    });
    const cleanup = (): void => {
      for (const [name, forward] of forwarders) process.removeListener(name, forward);
    };
    child.once('error', (error) => {
      cleanup();
      reject(new CommandStartError(command, args, error));
    });
    child.once('exit', (code, signal) => {
      cleanup();
      if (code !== null) resolve({ status: code, signal: null });
      else {
        const number = signal === null ? 0 : (osConstants.signals[signal] ?? 0);
        resolve({ status: 128 + number, signal });
      }
    });
  });
}
