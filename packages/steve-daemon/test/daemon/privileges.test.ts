// --user: finding the user, and refusing what cannot work.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { lookupUser, userToBecome } from '../../src/daemon/privileges.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('--user', () => {
  it('finds a user by name or uid in a passwd file, and nothing for a broken or missing entry', () => {
    const dir = mkdtempSync(join(tmpdir(), 'steve-passwd-'));
    dirs.push(dir);
    const passwd = join(dir, 'passwd');
    writeFileSync(
      passwd,
      'root:x:0:0:root:/root:/bin/bash\nsteve:x:977:976::/var/empty:/sbin/nologin\nbroken:x:abc:1::/:/bin/false\n',
    );
    expect(lookupUser('steve', passwd)).toEqual({ name: 'steve', uid: 977, gid: 976 });
    expect(lookupUser('977', passwd)).toEqual({ name: 'steve', uid: 977, gid: 976 });
    expect(lookupUser('broken', passwd)).toBeNull();
    expect(lookupUser('alice', passwd)).toBeNull();
    expect(lookupUser('steve', join(dir, 'missing'))).toBeNull();
  });

  it('a user that does not exist, or a start that is not root, is a usage error saying what to do', () => {
    expect(() => userToBecome('no-such-steve-user', 0)).toThrow(/useradd --system/);
    expect(() => userToBecome('nobody', 1000)).toThrow(/needs the daemon to start as root/);
    expect(userToBecome('nobody', 0)).toMatchObject({ name: 'nobody', uid: 65534 });
  });
});
