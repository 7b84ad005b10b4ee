// The FUSE front's file tree, and the end of a session (close() or an
// external umount).
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { startFuse } from '../../src/native/addon.js';
import {
  isMountPoint,
  mountInfoLine,
  mountTemp,
  python,
  TokenResponder,
  waitFor,
  type TempMount,
} from './helpers.js';

let mount: TempMount | undefined;

afterEach(async () => {
  await mount?.dispose();
  mount = undefined;
});

describe('FUSE tree', () => {
  it('holds jobserver (given mode, size 0) and status (0444) under a 0755 root', async () => {
    mount = await mountTemp(new TokenResponder(0), { allowOther: false, fileMode: 0o640 });
    const root = await stat(mount.dir);
    expect(root.isDirectory()).toBe(true);
    expect(root.mode & 0o7777).toBe(0o755);
    const jobserver = await stat(mount.jobserver);
    expect(jobserver.isFile()).toBe(true);
    expect(jobserver.mode & 0o7777).toBe(0o640);
    expect(jobserver.size).toBe(0);
    expect(jobserver.uid).toBe(process.getuid?.());
    const status = await stat(mount.status);
    expect(status.isFile()).toBe(true);
    expect(status.mode & 0o7777).toBe(0o444);
    expect((await readdir(mount.dir)).sort()).toEqual(['jobserver', 'status']);
    await expect(stat(path.join(mount.dir, 'nope'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('mounts as fuse.steve with source steve, default_permissions and no allow_other unless asked', async () => {
    mount = await mountTemp(new TokenResponder(0));
    const line = await mountInfoLine(mount.dir);
    expect(line).toMatch(/ - fuse\.steve steve /);
    expect(line).toMatch(/default_permissions/);
    expect(line).not.toMatch(/allow_other/);
    await mount.dispose();
    mount = await mountTemp(new TokenResponder(0), { allowOther: true, fileMode: 0o666 });
    expect(await mountInfoLine(mount.dir)).toMatch(/allow_other/);
  });

  it('serves statusText() as the content of status, one snapshot per open', async () => {
    const responder = new TokenResponder(0);
    responder.statusContent = 'holders: 3\nwaiters: 1\n'.repeat(1000);
    mount = await mountTemp(responder);
    expect(await readFile(mount.status, 'utf8')).toBe(responder.statusContent);
    responder.statusContent = 'changed\n';
    expect(await readFile(mount.status, 'utf8')).toBe('changed\n');
    const opens = responder.events.filter((event) => event.kind === 'open');
    expect(opens.map((event) => event.path)).toEqual(['status', 'status']);
    await waitFor(() => responder.count('release') === 2, 'both releases');
  });

  it('rejects missing handlers before mounting anything', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'steve-native-'));
    try {
      const responder = new TokenResponder(0);
      const withoutStatus = Object.assign(Object.create(responder) as TokenResponder, {
        statusText: undefined,
      });
      expect(() => startFuse(dir, { allowOther: false, fileMode: 0o666 }, withoutStatus)).toThrow(
        'handlers.statusText must be a function',
      );
      expect(await isMountPoint(dir)).toBe(false);
      await expect(stat(path.join(dir, 'nope'))).rejects.toMatchObject({ code: 'ENOENT' });
      expect(() =>
        startFuse(path.join(dir, 'missing'), { allowOther: false, fileMode: 0o666 }, responder),
      ).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'stat' }) as Error);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to open status for writing', async () => {
    mount = await mountTemp(new TokenResponder(0));
    const { writeFile } = await import('node:fs/promises');
    await expect(writeFile(mount.status, 'x')).rejects.toMatchObject({ code: 'EACCES' });
  });
});

describe('end of a session', () => {
  it('close() unmounts at once, fires closed("closed") once, and is idempotent', async () => {
    const responder = new TokenResponder(0);
    mount = await mountTemp(responder);
    expect(await isMountPoint(mount.dir)).toBe(true);
    const parentDev = (await stat(path.dirname(mount.dir))).dev;
    expect((await stat(mount.dir)).dev).not.toBe(parentDev);
    expect(mount.session.fd).toBeGreaterThan(2);
    mount.session.close();
    expect(await isMountPoint(mount.dir)).toBe(false);
    expect((await stat(mount.dir)).dev).toBe(parentDev);
    expect(mount.session.isClosed).toBe(true);
    expect(mount.session.fd).toBe(-1);
    mount.session.close();
    expect(responder.events.filter((event) => event.kind === 'closed')).toEqual([
      { kind: 'closed', reason: 'closed' },
    ]);
    // Replies after the end are harmless no-ops.
    expect(mount.session.replyError(1, 5)).toBe(false);
    expect(mount.session.notifyPoll(1)).toBe(false);
  });

  it('close() from inside a handler takes effect after the current request', async () => {
    const responder = new TokenResponder(0);
    const replies: boolean[] = [];
    responder.read = (reqId) => {
      mount?.session.close();
      replies.push(mount?.session.isClosed ?? false);
      replies.push(mount?.session.replyData(reqId, Buffer.from('+')) ?? false);
    };
    mount = await mountTemp(responder);
    const reader = python(
      `import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print("got", os.read(fd, 1))`,
      mount.jobserver,
    );
    try {
      await reader.waitLine('got');
      expect(reader.lines).toContain("got b'+'");
      expect(replies).toEqual([true, true]);
      await waitFor(() => responder.count('closed') === 1, 'closed');
      expect(responder.last('closed')?.reason).toBe('closed');
      expect(await isMountPoint(mount.dir)).toBe(false);
    } finally {
      await reader.stop();
    }
  });

  it.each([
    ['fusermount3', ['-u']],
    ['umount', []],
  ] as const)('reports closed("unmounted") after an external %s', async (command, args) => {
    const responder = new TokenResponder(0);
    mount = await mountTemp(responder);
    const dir = mount.dir;
    const exitCode = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(command, [...args, dir], { stdio: 'inherit' });
      child.on('error', reject);
      child.on('exit', resolve);
    });
    expect(exitCode).toBe(0);
    await waitFor(() => responder.count('closed') === 1, 'closed after external unmount');
    expect(responder.last('closed')?.reason).toBe('unmounted');
    expect(mount.session.isClosed).toBe(true);
    expect(await isMountPoint(dir)).toBe(false);
  });
});
