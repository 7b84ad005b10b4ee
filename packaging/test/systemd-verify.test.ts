// systemd-analyze verify (systemd 252) on the units as shipped, in a temp
// root where the tarballs are installed the two ways the units meet them:
// npm install -g (Debian's npm: /usr/local/bin) and the ebuild (/usr/bin).
// verify resolves ExecStart=steve-daemon and ExecStartPost's stevie in the
// root's search path and loads the host's own units the steve units name
// (modprobe@.service, multi-user.target). It prints a line for anything it
// ignores (an unknown key, a bad value) but still exits 0, so a clean run
// is exit 0 and no output.
import { copyFileSync, cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PACKAGING, npmInstallGlobal, removeTempDirs, run, tempDir } from './helpers.js';

const UNITS = ['steve.service', 'steve-fuse.service'] as const;

/** A root with the host's units and the few programs the steve units run. */
function unitRoot(): string {
  const root = tempDir('steve-verify-root-');
  mkdirSync(join(root, 'usr', 'lib', 'systemd'), { recursive: true });
  cpSync('/usr/lib/systemd/system', join(root, 'usr', 'lib', 'systemd', 'system'), {
    recursive: true,
    verbatimSymlinks: true,
  });
  mkdirSync(join(root, 'usr', 'bin'), { recursive: true });
  for (const link of ['bin', 'sbin', 'lib']) symlinkSync(`usr/${link}`, join(root, link));
  // ExecStartPost=/bin/sh, ExecStopPost= umount and rm: only their existence is checked.
  for (const [from, to] of [
    ['/usr/bin/dash', 'sh'],
    ['/usr/bin/umount', 'umount'],
    ['/usr/bin/rm', 'rm'],
  ] as const) {
    copyFileSync(from, join(root, 'usr', 'bin', to));
  }
  mkdirSync(join(root, 'etc', 'systemd', 'system'), { recursive: true });
  return root;
}

function installUnits(root: string, dropIn?: string): void {
  for (const unit of UNITS) {
    copyFileSync(join(PACKAGING, 'systemd', unit), join(root, 'etc', 'systemd', 'system', unit));
    if (dropIn !== undefined) {
      const dir = join(root, 'etc', 'systemd', 'system', `${unit}.d`);
      mkdirSync(dir, { recursive: true });
      copyFileSync(dropIn, join(dir, 'metrics.conf'));
    }
  }
}

async function verify(root: string, units: readonly string[] = UNITS) {
  return run('systemd-analyze', [
    'verify',
    '--man=no',
    `--root=${root}`,
    ...units.map((unit) => `/etc/systemd/system/${unit}`),
  ]);
}

let debianRoot: string;
let gentooRoot: string;

beforeAll(async () => {
  const tarballs = inject('tarballs');
  debianRoot = unitRoot();
  gentooRoot = unitRoot();
  await npmInstallGlobal(tarballs, join(debianRoot, 'usr', 'local'));
  await npmInstallGlobal(tarballs, join(gentooRoot, 'usr'));
});

afterAll(removeTempDirs);

describe('systemd-analyze verify', () => {
  it('passes for both units, with and without the metrics drop-in, bins in /usr/local/bin (npm -g) or /usr/bin (ebuild)', async () => {
    for (const root of [debianRoot, gentooRoot]) {
      installUnits(root);
      const plain = await verify(root);
      expect(plain.all, root).toBe('');
      expect(plain.exitCode).toBe(0);
      installUnits(root, join(PACKAGING, 'systemd', 'drop-ins', 'metrics.conf'));
      const withDropIn = await verify(root);
      expect(withDropIn.all).toBe('');
      expect(withDropIn.exitCode).toBe(0);
    }
  });

  it('fails without the installed bins (the check is real: ExecStart= and ExecStartPost= are resolved)', async () => {
    const root = unitRoot();
    installUnits(root);
    const result = await verify(root);
    expect(result.exitCode).not.toBe(0);
    expect(result.all).toContain('Command steve-daemon is not executable');
  });

  it('reports a mistyped directive or value, which systemd would ignore', async () => {
    const root = debianRoot;
    const unit = readFileSync(join(PACKAGING, 'systemd', 'steve.service'), 'utf8');
    const broken = {
      'typo-key.service': unit.replace('ProtectSystem=strict', 'ProtectSytem=strict'),
      'typo-family.service': unit.replace(
        'RestrictAddressFamilies=AF_UNIX',
        'RestrictAddressFamilies=AF_UNX',
      ),
    };
    for (const [name, text] of Object.entries(broken)) {
      expect(text).not.toBe(unit);
      writeFileSync(join(root, 'etc', 'systemd', 'system', name), text);
      const result = await verify(root, [name]);
      expect(result.all, name).toMatch(/Unknown key 'ProtectSytem'|Failed to parse address family/);
    }
  });
});

describe('the units as written', () => {
  const read = (unit: string) => readFileSync(join(PACKAGING, 'systemd', unit), 'utf8');
  const directives = (text: string) =>
    text
      .split('\n')
      .filter((line) => /^[A-Za-z]+=/.test(line))
      .map((line) => line.split('=')[0]);

  it('harden the service (AF_UNIX only, no MemoryDenyWriteExecute: V8 JITs) and read both settings files', () => {
    for (const unit of UNITS) {
      const text = read(unit);
      const set = directives(text);
      for (const directive of [
        'NoNewPrivileges',
        'CapabilityBoundingSet',
        'RestrictAddressFamilies',
        'LockPersonality',
        'RestrictSUIDSGID',
        'SystemCallArchitectures',
        'RuntimeDirectory',
        'ExecStartPost',
      ])
        expect(set, `${unit}: ${directive}`).toContain(directive);
      expect(set, unit).not.toContain('MemoryDenyWriteExecute');
      expect(text).toContain('RestrictAddressFamilies=AF_UNIX\n');
      expect(text).toContain('EnvironmentFile=-/etc/default/steve\n');
      expect(text).toContain('EnvironmentFile=-/etc/conf.d/steve\n');
      expect(text).toMatch(
        /^ExecStart=steve-daemon .*--user steve --group jobserver \$STEVE_POOL \$STEVE_ARGS$/m,
      );
    }
    // CUSE: the mount namespace options; the device module before the daemon.
    const cuse = directives(read('steve.service'));
    for (const directive of ['ProtectSystem', 'ProtectHome', 'PrivateTmp', 'Wants', 'After'])
      expect(cuse).toContain(directive);
    expect(read('steve.service')).toContain('Wants=modprobe@cuse.service\n');
    // FUSE: none (the mount would stay inside the service's namespace; the
    // container test shows it), and the unmount after a daemon that is no longer root.
    const fuse = directives(read('steve-fuse.service'));
    for (const directive of ['ProtectSystem', 'ProtectHome', 'PrivateTmp', 'ProtectKernelTunables'])
      expect(fuse).not.toContain(directive);
    expect(read('steve-fuse.service')).toContain(
      'ExecStopPost=-+umount --lazy --no-canonicalize --quiet /run/steve\n',
    );
  });
});
