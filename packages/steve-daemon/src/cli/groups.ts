/** Group lookups for device permissions (no getgrnam in Node: read /etc/group). */

import { readFileSync } from 'node:fs';

/** The gid of group `nameOrGid` (a name, or a number as text), or null when unknown. */
export function lookupGroup(nameOrGid: string, groupFile = '/etc/group'): number | null {
  if (/^\d+$/.test(nameOrGid)) return Number(nameOrGid);
  let text: string;
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === nameOrGid && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return null;
}
