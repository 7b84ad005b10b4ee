// Running real programs from the tests: a command to completion with its
// output, and an environment without any jobserver inherited from outside.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Run to completion; resolves with the exit code and stdout+stderr. */
export function run(
  command: string,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, output }));
  });
}

/** This process's environment plus `extra`, without the jobserver variables `extra` does not set. */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const name of ['MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'CARGO_MAKEFLAGS'])
    if (!(name in extra)) delete env[name];
  return env;
}

/** The children of `pid` (Linux's /proc/PID/task/PID/children); [] once it is gone. */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}
