/**
 * Running a command with no token at all (`steve-job --fallback run` when
 * there is no pool): the environment untouched, stdio inherited,
 * SIGINT/SIGTERM/SIGHUP forwarded, the status returned as a shell reports
 * it. With a pool, `runWithToken` of `@steve/jobserver-client` does this.
 */

import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { CommandStartError } from '@steve/jobserver-client';

const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Resolves with the command's exit status (128 + N when signal N killed it).
 *
 * Errors: CommandStartError when the command cannot be started.
 */
export function runWithoutToken(command: string, args: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: 'inherit' });
    const forwarders = FORWARDED_SIGNALS.map((name) => {
      const forward = (): void => {
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
      resolve(code ?? 128 + (signal === null ? 0 : (osConstants.signals[signal] ?? 0)));
    });
  });
}
