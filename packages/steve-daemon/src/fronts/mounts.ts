/**
 * What is mounted where, from /proc/self/mountinfo, and whether its FUSE
 * server still answers: enough to tell a live steve FUSE mount from a stale
 * one left by a crashed daemon or a hung one, without ever blocking on it.
 */

import { spawnSync } from 'node:child_process';
import { execaSync } from 'execa';
import { readFileSync } from 'node:fs';

export interface MountEntry {
  readonly mountPoint: string;
  readonly fsType: string;
  readonly source: string;
}

/** mountinfo escapes blanks, tabs, newlines and backslashes as octal (`\040`). */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) =>
    String.fromCharCode(parseInt(octal, 8)),
  );
}

/** Parse /proc/self/mountinfo text (see proc(5)). */
export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const [before, after] = line.split(' - ');
    if (before === undefined || after === undefined) continue;
    const fields = before.split(' ');
    const tail = after.split(' ');
    const mountPoint = fields[4];
    const fsType = tail[0];
    if (mountPoint === undefined || fsType === undefined) continue;
    entries.push({
      mountPoint: unescapeMountField(mountPoint),
      fsType,
      source: unescapeMountField(tail[1] ?? ''),
    });
  }
  return entries;
}

/** The mount at exactly `dir`, if any (the last one wins: it is the visible one). */
export function mountAt(
  dir: string,
  mountinfo = readFileSync('/proc/self/mountinfo', 'utf8'),
): MountEntry | undefined {
  return parseMountinfo(mountinfo)
    .filter((entry) => entry.mountPoint === dir)
    .at(-1);
}

/**
 * What a FUSE server did when asked about a file in its mount:
 * - `answered`: it replied (the file's attributes, or an ordinary error): a
 *   live server;
 * - `disconnected`: ENOTCONN, the kernel's answer once the server is gone
 *   (the mount of a daemon that died);
 * - `silent`: no reply within the deadline: the server is alive but stopped
 *   (SIGSTOP, a debugger) or hung. A stat into such a mount blocks until it
 *   replies, which may be never.
 */
export type MountAnswer =
  | { readonly kind: 'answered' }
  | { readonly kind: 'disconnected' }
  | { readonly kind: 'silent'; readonly waitedMs: number };

/** How long {@link probeMount} waits for a reply: a live steve-daemon answers a lookup in microseconds. */
export const MOUNT_ANSWER_DEADLINE_MS = 5000;

/** Extra time for the two probe processes to start (node), on top of the answer deadline. */
const PROBE_START_ALLOWANCE_MS = 20_000;

/** How long an `umount -l` may take: a lazy unmount does not ask the FUSE server anything. */
const UMOUNT_DEADLINE_MS = 10_000;

// Run as `node -e` by the probe: says `asking`, then stats argv[1] and
// prints `ok` or the error's code (ENOTCONN, ENOENT, …).
const STAT_PROGRAM = `
process.stdout.write('asking\\n');
try { require('node:fs').statSync(process.argv[1]); process.stdout.write('ok'); }
catch (error) { process.stdout.write(String(error.code)); }`;

// Run as `node -e PROGRAM PATH DEADLINE_MS`. The stat runs in a grandchild,
// not here: a process blocked on a hung FUSE mount may not even die of
// SIGKILL (once the server has read the request, the kernel waits for its
// reply uninterruptibly), and spawnSync waits for its child and that
// child's pipes. This process never touches the mount, so it always exits:
// with the grandchild's answer, or `silent` when the deadline passes first
// (counted from the grandchild's `asking`, so a slow start is not silence).
const PROBE_PROGRAM = `
const { spawn } = require('node:child_process');
const [path, deadlineMs] = process.argv.slice(1);
const stat = spawn(process.execPath, ['-e', ${JSON.stringify(STAT_PROGRAM)}, path], {
  cwd: '/', detached: true, stdio: ['ignore', 'pipe', 'ignore'],
});
let output = '';
let timer;
const finish = (answer) => { process.stdout.write(answer); process.exit(0); };
stat.on('error', (error) => finish('cannot start: ' + error.message));
stat.stdout.setEncoding('utf8').on('data', (chunk) => {
  output += chunk;
  timer ??= setTimeout(() => {
    try { process.kill(stat.pid, 'SIGKILL'); } catch {}
    finish('silent');
  }, Number(deadlineMs));
});
stat.stdout.on('end', () => finish(output.replace(/^asking\\n/, '')));`;

/**
 * Ask the FUSE server of the mount holding `file` about it (a stat), from a
 * child process with a deadline: this process never blocks on a hung mount.
 *
 * @example
 * probeMount('/run/steve/jobserver') // { kind: 'disconnected' } after a daemon was SIGKILLed
 *
 * Errors: throws when the probe cannot run or says something unexpected
 * (no node to spawn, the probe itself killed).
 */
export function probeMount(file: string, deadlineMs = MOUNT_ANSWER_DEADLINE_MS): MountAnswer {
  const result = spawnSync(process.execPath, ['-e', PROBE_PROGRAM, file, String(deadlineMs)], {
    cwd: '/',
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: deadlineMs + PROBE_START_ALLOWANCE_MS,
    killSignal: 'SIGKILL',
  });
  const answer = (result.stdout ?? '').trim();
  if (answer === 'silent') return { kind: 'silent', waitedMs: deadlineMs };
  if (answer === 'ENOTCONN') return { kind: 'disconnected' };
  if (answer === 'ok' || /^E[A-Z0-9]+$/.test(answer)) return { kind: 'answered' };
  const why =
    result.error?.message ?? (answer || result.stderr?.trim() || `status ${result.status}`);
  throw new Error(`cannot check whether the mount holding ${file} answers: ${why}`);
}

/** How {@link detachMount} went. */
export type DetachResult =
  { readonly detached: true } | { readonly detached: false; readonly reason: string };

/**
 * Lazily unmount `dir` (umount2 with MNT_DETACH): it leaves the directory
 * at once, without a word to its FUSE server, so this works on a mount whose
 * server is dead or hung. `umount -l -c` first (`-c`: no canonicalisation,
 * which would stat the mount), then `fusermount3 -u -z`; each with a deadline.
 */
export function detachMount(dir: string): DetachResult {
  const options = {
    cwd: '/',
    timeout: UMOUNT_DEADLINE_MS,
    killSignal: 'SIGKILL',
    reject: false,
    stdin: 'ignore',
  } as const;
  const umount = execaSync('umount', ['-l', '-c', dir], options);
  if (umount.exitCode === 0) return { detached: true };
  const fusermount = execaSync('fusermount3', ['-u', '-z', dir], options);
  if (fusermount.exitCode === 0) return { detached: true };
  // stderr when the tool ran, else why it did not (not installed, timed out).
  const reason = [umount, fusermount]
    .map((result) => result.stderr.trim() || (result.failed ? result.shortMessage : ''))
    .filter((text) => text !== '')
    .join('; ');
  return { detached: false, reason: reason || 'umount and fusermount3 failed' };
}
