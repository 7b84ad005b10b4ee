/**
 * `--user NAME`: the daemon starts as root (to open /dev/cuse, mount, make
 * the fifo and the control socket) and then becomes NAME for good: its uid,
 * its primary gid, and as supplementary groups that gid and the pool's
 * group. setuid(2) from root to another uid drops every capability; nothing
 * is kept. What still needs root afterwards is not done by the daemon:
 * unmounting a FUSE mount is left to a small watcher started before the
 * drop (it waits for the daemon's end and runs `umount -l`), files it made
 * in root's directories stay until the next start (as root) clears them.
 */

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { UsageError } from '@steve/cli';

export interface SystemUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** NAME (or a uid as text) from /etc/passwd, or null. */
export function lookupUser(nameOrUid: string, passwdFile = '/etc/passwd'): SystemUser | null {
  let text: string;
  try {
    text = readFileSync(passwdFile, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === undefined || uid === undefined || gid === undefined) continue;
    if (!/^\d+$/.test(uid) || !/^\d+$/.test(gid)) continue;
    if (name === nameOrUid || uid === nameOrUid)
      return { name, uid: Number(uid), gid: Number(gid) };
  }
  return null;
}

/** The user `--user` names; usage errors when it cannot work. */
export function userToBecome(name: string, uid: number): SystemUser {
  const user = lookupUser(name);
  if (user === null)
    throw new UsageError(
      `no user '${name}' on this system; create it (useradd --system --no-create-home ${name}) or pass another --user`,
    );
  if (uid !== 0 && user.uid !== uid)
    throw new UsageError(
      `--user ${name} needs the daemon to start as root (it is uid ${uid}); start it as root, or drop --user`,
    );
  return user;
}

/** Become `user` for good (see the module comment); returns the groups now held. */
export function becomeUser(user: SystemUser, poolGid: number | null): number[] {
  const groups = [...new Set([user.gid, ...(poolGid === null ? [] : [poolGid])])];
  if (process.getuid?.() === user.uid) return process.getgroups?.() ?? groups;
  process.setgroups?.(groups);
  process.setgid?.(user.gid);
  process.setuid?.(user.uid);
  if (process.getuid?.() !== user.uid || process.geteuid?.() !== user.uid)
    throw new Error(`could not become ${user.name} (uid ${user.uid})`);
  return groups;
}

/**
 * A watcher that unmounts `dir` (lazily) once the daemon is gone however it
 * ends: it reads a pipe the daemon holds open and unmounts at end of file.
 * It ignores the stop signals a service manager sends the whole group, so
 * that it outlives the daemon long enough to unmount. Started as root,
 * before the drop; its pid is returned.
 */
export function unmountWhenGone(dir: string): number | undefined {
  const watcher = spawn(
    '/bin/sh',
    [
      '-c',
      `trap '' TERM INT HUP QUIT; while read -r _; do :; done; exec umount -l -c -- "$1" 2>/dev/null`,
      'steve-unmount',
      dir,
    ],
    { stdio: ['pipe', 'ignore', 'ignore'], detached: true },
  );
  watcher.unref();
  // The write end stays open in this process until it exits (its end of file is the signal).
  (watcher.stdin as Socket | null)?.unref();
  return watcher.pid;
}
