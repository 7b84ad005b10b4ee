/**
 * Whose command lines a reader of `status` may see. A holder's command line
 * can carry secrets (paths, tokens in arguments) and /proc may hide it
 * (hidepid): root, the daemon's own user and the pool's group see every
 * holder's; anyone else sees only those of processes running as their uid,
 * and `(another user's process)` for the rest.
 */
import { readFileSync, statSync } from 'node:fs';

export interface Viewer {
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
}

export const HIDDEN_COMMAND = "(another user's process)";

/** Who may see every command line. */
export function seesEverything(viewer: Viewer, groupId: number | null): boolean {
  if (viewer.uid === 0 || viewer.uid === process.getuid?.()) return true;
  return groupId !== null && (viewer.gid === groupId || viewer.groups.includes(groupId));
}

/** The uid a process runs as (owner of /proc/PID), or null when it is gone or hidden. */
export function uidOfProcess(pid: number): number | null {
  try {
    return statSync(`/proc/${pid}`).uid;
  } catch {
    return null;
  }
}

/** A test: may `viewer` see the command line of `pid`? */
export function commandVisibility(
  viewer: Viewer | null,
  groupId: number | null,
  uidOf: (pid: number) => number | null = uidOfProcess,
): (pid: number) => boolean {
  if (viewer === null || seesEverything(viewer, groupId)) return () => true;
  return (pid) => pid > 0 && uidOf(pid) === viewer.uid;
}

/**
 * The viewer behind a FUSE request: uid and gid from the request, the
 * supplementary groups from the calling thread, which is inside open(2)
 * while this runs (so its id cannot have been reused).
 */
export function fuseViewer(ctx: { tid: number; uid: number; gid: number }): Viewer {
  let groups: number[] = [];
  try {
    const status = readFileSync(`/proc/${ctx.tid}/status`, 'utf8');
    groups = (/^Groups:[ \t]*(.*)$/m.exec(status)?.[1] ?? '')
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    // gone: no groups
  }
  return { uid: ctx.uid, gid: ctx.gid, groups };
}
