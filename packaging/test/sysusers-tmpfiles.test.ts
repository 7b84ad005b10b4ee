// sysusers.d/steve.conf and tmpfiles.d/steve.conf applied by systemd 252's
// own tools to an empty root (--root): the accounts and /run/steve they make.
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PACKAGING, removeTempDirs, run, tempDir } from './helpers.js';

const SYSUSERS = join(PACKAGING, 'sysusers.d', 'steve.conf');
const TMPFILES = join(PACKAGING, 'tmpfiles.d', 'steve.conf');

afterAll(removeTempDirs);

/** systemd-sysusers on an empty root: the passwd and group lines, or why not. */
async function sysusers(config: string) {
  const root = tempDir('steve-sysusers-');
  mkdirSync(join(root, 'etc'));
  const result = await run('systemd-sysusers', [`--root=${root}`, config]);
  const read = (file: string) => {
    try {
      return readFileSync(join(root, 'etc', file), 'utf8')
        .trim()
        .split('\n');
    } catch {
      return [];
    }
  };
  return { ...result, passwd: read('passwd'), group: read('group') };
}

/** The accounts steve needs, from passwd and group lines; the problems found. */
function accountProblems(passwd: string[], group: string[]): string[] {
  const problems: string[] = [];
  const groups = new Map(group.map((line) => [line.split(':')[0], line.split(':')]));
  const steve = passwd.map((line) => line.split(':')).find((fields) => fields[0] === 'steve');
  if (steve === undefined) return ['no user steve'];
  if (groups.get('steve')?.[2] !== steve[3])
    problems.push(`steve's primary group is ${steve[3]}, not the group steve`);
  const jobserver = groups.get('jobserver');
  if (jobserver === undefined) problems.push('no group jobserver');
  else if (!(jobserver[3] ?? '').split(',').includes('steve'))
    problems.push('steve is not a member of jobserver');
  if (steve[6] !== '/usr/sbin/nologin') problems.push(`steve's shell is ${steve[6]}`);
  return problems;
}

describe('sysusers.d/steve.conf (systemd-sysusers --root)', () => {
  it('makes group jobserver, user steve with its own group, steve a member of jobserver', async () => {
    const result = await sysusers(SYSUSERS);
    expect(result.exitCode, result.all).toBe(0);
    expect(accountProblems(result.passwd, result.group), result.passwd.join('\n')).toEqual([]);
    expect(result.passwd).toEqual([
      expect.stringMatching(/^steve:x:(\d+):\1:steve jobserver daemon:\/:\/usr\/sbin\/nologin$/),
    ]);
  });

  it('a broken file fails, a file missing the membership is caught', async () => {
    const dir = tempDir();
    const text = readFileSync(SYSUSERS, 'utf8');
    const garbage = join(dir, 'garbage.conf');
    writeFileSync(garbage, text.replace('m steve jobserver', 'm steve jobserver extra'));
    const broken = await sysusers(garbage);
    expect(broken.exitCode).not.toBe(0);
    expect(broken.all).toContain("don't take a GECOS field");
    const noMember = join(dir, 'no-member.conf');
    writeFileSync(noMember, text.replace('m steve jobserver\n', ''));
    const partial = await sysusers(noMember);
    expect(partial.exitCode).toBe(0);
    expect(accountProblems(partial.passwd, partial.group)).toEqual([
      'steve is not a member of jobserver',
    ]);
  });
});

describe('tmpfiles.d/steve.conf (systemd-tmpfiles --root --create)', () => {
  it('makes /run/steve, 0755 root:root', async () => {
    const root = tempDir('steve-tmpfiles-');
    const result = await run('systemd-tmpfiles', [`--root=${root}`, '--create', TMPFILES]);
    expect(result.exitCode, result.all).toBe(0);
    const made = statSync(join(root, 'run', 'steve'));
    expect(made.isDirectory()).toBe(true);
    expect((made.mode & 0o7777).toString(8)).toBe('755');
    expect([made.uid, made.gid]).toEqual([0, 0]);
  });

  it('a bad mode or an unknown owner fails', async () => {
    const dir = tempDir();
    const text = readFileSync(TMPFILES, 'utf8');
    for (const [name, broken] of [
      ['mode', text.replace(' 0755 ', ' 0x755 ')],
      ['owner', text.replace(' root root ', ' nosuchuser root ')],
    ] as const) {
      expect(broken).not.toBe(text);
      writeFileSync(join(dir, `${name}.conf`), broken);
      const result = await run('systemd-tmpfiles', [
        `--root=${tempDir()}`,
        '--create',
        join(dir, `${name}.conf`),
      ]);
      expect(result.exitCode, name).not.toBe(0);
    }
  });
});
