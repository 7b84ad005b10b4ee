// packaging/gentoo through real Portage 3.0.82 (the project's test peers,
// run from source in a throw-away prefix made by Portage's own test harness:
// test/fixtures/portage-prefix.py, on @steve/test-support's steve_portage.py).
// The real gentoo repository is not here: the eclasses the overlay inherits
// are stand-ins (test/fixtures/gentoo-stubs, see its README), and the profile
// lists net-libs/nodejs, sys-fs/fuse and virtual/tmpfiles as provided. What
// runs for real: egencache (every ebuild sourced in the depend phase),
// emerge's resolver (metadata validity), the fetch restriction, `ebuild
// manifest`, and emerge merging all four packages into the prefix with every
// phase (pkg_pretend ... pkg_postinst).
import {
  existsSync,
  lstatSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  writeFileSync,
} from 'node:fs';
import { cp, rename } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { portageHelperDir, portageSource } from '@steve/test-support';
import {
  FIXTURES,
  PACKAGING,
  copyPackaging,
  removeTempDirs,
  run,
  serviceTarballs,
  tempDir,
} from './helpers.js';

const PORTAGE = '3.0.82';
const EBUILD = 'dev-build/steve/steve-0.1.0.ebuild';

interface Prefix {
  readonly bin: string;
  readonly eprefix: string;
  readonly distdir: string;
  readonly overlay: string;
}

/** A prefix whose "steve" repository is a copy of packaging/gentoo (edited by `edit`). */
async function makePrefix(edit?: (overlay: string) => void): Promise<Prefix> {
  const dir = tempDir('steve-gentoo-');
  const overlay = join(copyPackaging(dir), 'gentoo');
  edit?.(overlay);
  const made = await run(
    '/usr/bin/python3',
    [
      join(FIXTURES, 'portage-prefix.py'),
      portageSource(PORTAGE, tempDir),
      join(dir, 'out'),
      overlay,
      join(FIXTURES, 'gentoo-stubs'),
    ],
    { timeout: 120_000, env: { PYTHONPATH: portageHelperDir() } },
  );
  if (made.exitCode !== 0) throw new Error(`portage-prefix.py failed:\n${made.all}`);
  const paths = JSON.parse(made.stdout.trim().split('\n').pop() ?? '{}') as Omit<Prefix, 'overlay'>;
  return { ...paths, overlay };
}

const portage = (prefix: Prefix, tool: string, args: string[]) =>
  run(join(prefix.bin, tool), args, { timeout: 300_000, env: { NOCOLOR: 'true' } });

/** egencache's account: which ebuilds got no cache entry, and its error lines. */
async function generateMetadata(prefix: Prefix) {
  const result = await portage(prefix, 'egencache', ['--update', '--repo=steve', '--jobs=2']);
  const ebuilds = [
    'dev-build/steve-0.1.0',
    'acct-group/jobserver-0',
    'acct-group/steve-0',
    'acct-user/steve-0',
  ];
  const cache = join(prefix.overlay, 'metadata', 'md5-cache');
  const missing = ebuilds.filter((cpv) => !existsSync(join(cache, cpv)));
  const errors = result.all
    .split('\n')
    .filter((line) => /ERROR|error sourcing|syntax error/.test(line));
  const entry = (cpv: string) =>
    new Map(
      readFileSync(join(cache, cpv), 'utf8')
        .trim()
        .split('\n')
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );
  return { result, missing, errors, entry };
}

let prefix: Prefix;
let tarballs: string[];

beforeAll(async () => {
  tarballs = serviceTarballs(inject('tarballs'));
  prefix = await makePrefix();
});

afterAll(removeTempDirs);

describe("the overlay's files/", () => {
  it('are the files in packaging/ (copies: the overlay also works copied on its own)', () => {
    const files = join(PACKAGING, 'gentoo', 'dev-build', 'steve', 'files');
    const copies: Record<string, string> = {
      'steve.service': 'systemd/steve.service',
      'steve-fuse.service': 'systemd/steve-fuse.service',
      'metrics.conf': 'systemd/drop-ins/metrics.conf',
      'steve.initd': 'openrc/steve.initd',
      'steve.confd': 'openrc/steve.confd',
      '60-steve.rules': 'udev/60-steve.rules',
      'steve.tmpfiles': 'tmpfiles.d/steve.conf',
    };
    expect(readdirSync(files).sort()).toEqual([...Object.keys(copies), '60steve'].sort());
    for (const [copy, source] of Object.entries(copies)) {
      expect(lstatSync(join(files, copy)).isFile(), copy).toBe(true);
      expect(
        readFileSync(join(files, copy), 'utf8'),
        `packaging/gentoo/dev-build/steve/files/${copy} differs from packaging/${source}: cp packaging/${source} packaging/gentoo/dev-build/steve/files/${copy}`,
      ).toBe(readFileSync(join(PACKAGING, source), 'utf8'));
    }
  });
});

describe('the overlay under real Portage 3.0.82', () => {
  it('egencache sources every ebuild: EAPI 8, the dependencies, the eclasses, fetch-restricted tarballs', async () => {
    const { result, missing, errors, entry } = await generateMetadata(prefix);
    expect(missing, result.all).toEqual([]);
    expect(errors, result.all).toEqual([]);
    const steve = entry('dev-build/steve-0.1.0');
    expect(steve.get('EAPI')).toBe('8');
    expect(steve.get('INHERIT')).toBe('linux-info systemd tmpfiles udev');
    expect(steve.get('RESTRICT')).toBe('fetch strip');
    expect(steve.get('SLOT')).toBe('0');
    for (const atom of [
      'acct-group/jobserver',
      'acct-group/steve',
      'acct-user/steve',
      '>=net-libs/nodejs-20',
      'sys-fs/fuse:3',
    ])
      expect(steve.get('RDEPEND')?.split(' '), atom).toContain(atom);
    expect(steve.get('DEFINED_PHASES')).toBe('install nofetch postinst postrm setup unpack');
    // SRC_URI names exactly the tarballs `pnpm tarballs` makes.
    expect(steve.get('SRC_URI')?.split(' ').sort()).toEqual(
      tarballs.map((t) => basename(t)).sort(),
    );
    const user = entry('acct-user/steve-0');
    expect(user.get('RDEPEND')).toBe('acct-group/steve acct-group/jobserver');
    expect(entry('acct-group/jobserver-0').get('INHERIT')).toBe('acct-group');
  });

  it('catches a bash error in an ebuild (no cache entry, an error) and an invalid atom (masked as invalid)', async () => {
    const syntax = await makePrefix((overlay) => {
      const file = join(overlay, EBUILD);
      writeFileSync(file, readFileSync(file, 'utf8').replace('src_unpack() {', 'src_unpack() {{'));
    });
    const broken = await generateMetadata(syntax);
    expect(broken.missing).toEqual(['dev-build/steve-0.1.0']);
    expect(broken.errors.join('\n')).toContain('syntax error');

    const atom = await makePrefix((overlay) => {
      const file = join(overlay, EBUILD);
      writeFileSync(
        file,
        readFileSync(file, 'utf8').replace('\tsys-fs/fuse:3\n', '\tsys-fs/fuse:3:\n'),
      );
    });
    const pretend = await portage(atom, 'emerge', [
      '--pretend',
      '--oneshot',
      'dev-build/steve::steve',
    ]);
    expect(pretend.exitCode).not.toBe(0);
    expect(pretend.all).toContain('masked by: invalid: RDEPEND: Invalid atom (sys-fs/fuse:3:)');
  });

  it('emerge resolves the accounts first; without the tarballs pkg_nofetch says how to make them', async () => {
    const pretend = await portage(prefix, 'emerge', [
      '--pretend',
      '--oneshot',
      'dev-build/steve::steve',
    ]);
    expect(pretend.exitCode, pretend.all).toBe(0);
    const order = [...pretend.all.matchAll(/^\[ebuild[^\]]*\] (\S+)/gm)].map((m) => m[1]);
    expect(order.map((cpv) => cpv?.replace(/::steve$/, ''))).toEqual([
      'acct-group/jobserver-0',
      'acct-group/steve-0',
      'acct-user/steve-0',
      'dev-build/steve-0.1.0',
    ]);
    // N: new; F/f: fetch-restricted (f: no Manifest yet to say what is missing).
    expect(pretend.all).toMatch(/^\[ebuild\s+N\s+[Ff]\s*\] dev-build\/steve-0\.1\.0/m);

    // The Manifest (DIST lines) is made once the tarballs are in DISTDIR.
    for (const tarball of tarballs) await cp(tarball, join(prefix.distdir, basename(tarball)));
    const manifest = await portage(prefix, 'ebuild', [join(prefix.overlay, EBUILD), 'manifest']);
    expect(manifest.exitCode, manifest.all).toBe(0);
    const dist = readFileSync(join(prefix.overlay, 'dev-build', 'steve', 'Manifest'), 'utf8');
    expect(dist.match(/^DIST /gm)).toHaveLength(3);

    const aside = tempDir('steve-distfiles-aside-');
    for (const tarball of tarballs)
      await rename(join(prefix.distdir, basename(tarball)), join(aside, basename(tarball)));
    const nofetch = await portage(prefix, 'emerge', ['--oneshot', 'dev-build/steve::steve']);
    expect(nofetch.exitCode).not.toBe(0);
    expect(nofetch.all).toContain('pnpm install && pnpm build && pnpm tarballs');
    for (const tarball of tarballs) expect(nofetch.all).toContain(`  ${basename(tarball)}`);
    for (const tarball of tarballs)
      await rename(join(aside, basename(tarball)), join(prefix.distdir, basename(tarball)));
  });

  describe('emerge -1 dev-build/steve, with the tarballs in DISTDIR', () => {
    let merge: Awaited<ReturnType<typeof run>>;
    const image = (path: string) => join(prefix.eprefix, path);

    beforeAll(async () => {
      const started = Date.now();
      merge = await portage(prefix, 'emerge', ['--oneshot', 'dev-build/steve::steve']);
      console.log(`emerge of the overlay: ${Date.now() - started} ms`);
    });

    it('merges dev-build/steve (the accounts were merged by the run before), no QA notice', () => {
      expect(merge.exitCode, merge.all.slice(-4000)).toBe(0);
      expect(merge.all).toMatch(/>>> Completed \(\d of \d\) dev-build\/steve-0\.1\.0::steve/);
      expect(merge.all).not.toContain('QA Notice');
      expect(readdirSync(image('var/db/pkg/acct-group')).sort()).toEqual([
        'jobserver-0',
        'steve-0',
      ]);
      expect(readdirSync(image('var/db/pkg/acct-user'))).toEqual(['steve-0']);
      expect(readdirSync(image('var/db/pkg/dev-build'))).toEqual(['steve-0.1.0']);
      expect(readFileSync(image('usr/lib/sysusers.d/acct-user-steve.conf'), 'utf8')).toMatch(
        /^m\tsteve\tjobserver$/m,
      );
    });

    it('installs the bins as relative links into node_modules that run', async () => {
      for (const bin of ['steve-daemon', 'stevie', 'steve-job', 'emerge-shim', 'steve-pytest']) {
        const link = image(`usr/bin/${bin}`);
        expect(lstatSync(link).isSymbolicLink(), bin).toBe(true);
        expect(readlinkSync(link), bin).toMatch(/^\.\.\/lib(64)?\/node_modules\//);
        expect(existsSync(resolve(image('usr/bin'), readlinkSync(link))), bin).toBe(true);
      }
      const version = await run(image('usr/bin/steve-daemon'), ['--version']);
      expect(version.exitCode, version.all).toBe(0);
      expect(version.stdout.trim()).toBe(
        (
          JSON.parse(
            readFileSync(join(PACKAGING, '..', 'packages', 'steve-daemon', 'package.json'), 'utf8'),
          ) as { version: string }
        ).version,
      );
    });

    it('installs the units, init script, conf.d, udev rule, tmpfiles.d and sandbox file as in packaging/', () => {
      const same = [
        ['usr/lib/systemd/system/steve.service', 'systemd/steve.service'],
        ['usr/lib/systemd/system/steve-fuse.service', 'systemd/steve-fuse.service'],
        ['etc/init.d/steve', 'openrc/steve.initd'],
        ['etc/conf.d/steve', 'openrc/steve.confd'],
        ['usr/lib/udev/rules.d/60-steve.rules', 'udev/60-steve.rules'],
        ['usr/lib/tmpfiles.d/steve.conf', 'tmpfiles.d/steve.conf'],
        ['etc/sandbox.d/60steve', 'gentoo/dev-build/steve/files/60steve'],
      ];
      for (const [installed, source] of same) {
        expect(lstatSync(image(installed!)).isFile(), installed).toBe(true);
        expect(readFileSync(image(installed!), 'utf8'), installed).toBe(
          readFileSync(join(PACKAGING, source!), 'utf8'),
        );
      }
      expect(lstatSync(image('etc/init.d/steve')).mode & 0o777).toBe(0o755);
      // pkg_postinst's tmpfiles_process (the stand-in, under --root=${EROOT}).
      expect(lstatSync(image('run/steve')).isDirectory()).toBe(true);
    });

    it("the sandbox entry lets builds write (open O_RDWR) the pool's paths", async () => {
      const sourced = await run('bash', [
        '-c',
        'set -eu; source "$1"; printf "%s\\n" "$SANDBOX_WRITE"',
        'bash',
        image('etc/sandbox.d/60steve'),
      ]);
      expect(sourced.exitCode, sourced.all).toBe(0);
      const prefixes = sourced.stdout.trim().split(':');
      // sandbox's check_prefixes: a plain string prefix match (strncmp).
      const writable = (path: string) => prefixes.some((p) => path.startsWith(p));
      for (const path of [
        '/dev/steve',
        '/run/steve/jobserver',
        '/run/steve/steve-fifos/job-0123/jobserver',
        '/run/steve-fifos/job-0123/jobserver',
        '/run/steve.fifo',
      ])
        expect(writable(path), path).toBe(true);
      expect(writable('/run/other')).toBe(false);
    });

    it("pkg_postinst prints emerge-shim --print-make-conf's lines", async () => {
      const printed = await run(image('usr/bin/emerge-shim'), ['--print-make-conf'], {
        env: { PATH: '/usr/bin:/bin', STEVE_CONTROL: join(tempDir(), 'no-daemon.sock') },
        extendEnv: false,
      });
      expect(printed.exitCode, printed.all).toBe(0);
      const assignments = (text: string) =>
        text
          .split('\n')
          .map((line) => line.replace(/^ \* {3}/, '').trim())
          .filter((line) => /^(MAKEFLAGS|EPYTEST_FLAGS|FEATURES)=/.test(line));
      // Without a daemon or CUSE here emerge-shim names /run/steve/jobserver; the ebuild the CUSE default.
      const shim = assignments(printed.stdout).map((line) =>
        line.replace('fifo:/run/steve/jobserver', 'fifo:/dev/steve'),
      );
      expect(shim).toHaveLength(3);
      expect(
        assignments(merge.all.slice(merge.all.indexOf('Messages for package dev-build/steve'))),
      ).toEqual(shim);
      expect(merge.all).toContain('ACCT_USER_PORTAGE_GROUPS_ADD="jobserver"');
    });
  });
});
