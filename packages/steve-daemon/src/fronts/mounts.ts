/**
 * What is mounted where, from /proc/self/mountinfo: enough to tell a live
 * steve FUSE mount from a stale one left by a crashed daemon.
 */

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
