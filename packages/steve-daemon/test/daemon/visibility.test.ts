// Whose command lines a status reader sees.
import { describe, expect, it } from 'vitest';
import { commandVisibility, seesEverything } from '../../src/daemon/visibility.js';

const GROUP = 977;
const uids = new Map([
  [100, 0], // root's process
  [200, 1000], // alice's
  [300, 1001], // bob's
]);
const uidOf = (pid: number): number | null => uids.get(pid) ?? null;

describe('command line visibility', () => {
  it('root, the daemon user and the group see every command line', () => {
    expect(seesEverything({ uid: 0, gid: 0, groups: [] }, GROUP)).toBe(true);
    expect(seesEverything({ uid: process.getuid?.() ?? 0, gid: 5, groups: [] }, GROUP)).toBe(true);
    expect(seesEverything({ uid: 1000, gid: GROUP, groups: [] }, GROUP)).toBe(true);
    expect(seesEverything({ uid: 1000, gid: 1000, groups: [4, GROUP] }, GROUP)).toBe(true);
    const member = commandVisibility({ uid: 1000, gid: 1000, groups: [GROUP] }, GROUP, uidOf);
    expect([100, 200, 300].map(member)).toEqual([true, true, true]);
  });

  it('anyone else sees only the command lines of processes running as their uid', () => {
    const alice = commandVisibility({ uid: 1000, gid: 1000, groups: [4] }, GROUP, uidOf);
    expect([100, 200, 300, 400].map(alice)).toEqual([false, true, false, false]);
    const noGroup = commandVisibility({ uid: 1001, gid: 1001, groups: [] }, null, uidOf);
    expect([100, 200, 300].map(noGroup)).toEqual([false, false, true]);
  });

  it('with no viewer (the daemon itself, SIGUSR1) everything is shown', () => {
    expect(commandVisibility(null, GROUP, uidOf)(100)).toBe(true);
  });
});
