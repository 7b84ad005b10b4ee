import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { missingPrerequisites, tryLoad } from '../index.mjs';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Run `body` with PATH holding only the named commands. */
function withPath<T>(commands: string[], body: () => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'steve-path-'));
  dirs.push(dir);
  for (const command of commands) symlinkSync(`/usr/bin/${command}`, join(dir, command));
  const saved = process.env.PATH;
  process.env.PATH = dir;
  try {
    return body();
  } finally {
    process.env.PATH = saved;
  }
}

const daemonAddon = {
  packageDir: '/nonexistent',
  label: 'steve-daemon',
  file: 'x.node',
  required: true,
  fuse3: true,
};

describe('missingPrerequisites', () => {
  it('names the Debian and Gentoo packages of what is missing', () => {
    const message = withPath(['make', 'python3'], () =>
      missingPrerequisites(daemonAddon),
    ) as string;
    expect(message).toContain('libfuse3 headers');
    expect(message).toContain('apt-get install libfuse3-dev pkg-config g++');
    expect(message).toContain('emerge sys-fs/fuse:3 virtual/pkgconfig sys-devel/gcc');
    expect(message).not.toContain('dev-build/make');
  });

  it('asks nothing about libfuse3 for the client helper', () => {
    const message = withPath(['make', 'python3'], () =>
      missingPrerequisites({ ...daemonAddon, fuse3: false }),
    ) as string;
    expect(message).not.toContain('fuse');
    expect(message).toContain('g++');
  });

  it('is null when everything is there', () => {
    expect(missingPrerequisites(daemonAddon)).toBeNull();
  });
});

describe('tryLoad', () => {
  it('says why an addon does not load', () => {
    expect(tryLoad(daemonAddon)).toMatch(/No native build was found/);
  });

  it('loads the daemon addon of this checkout', () => {
    expect(
      tryLoad({
        ...daemonAddon,
        packageDir: join(import.meta.dirname, '..', '..', 'steve-daemon'),
      }),
    ).toBeNull();
  });
});
