// udev/60-steve.rules through udev 252's own rule engine: `udevadm test`
// runs every rule for an "add" event as udevd would (RUN= programs aside)
// and applies OWNER/GROUP/MODE to the device node when the node exists.
// This kernel has no CUSE, so the two devices are a fake sysfs (the layout
// the kernel makes: /sys/devices/virtual/cuse/steve with subsystem "cuse",
// /sys/devices/virtual/misc/cuse), and their nodes are made with mknod, in a
// private mount namespace with its own /dev, /run, /etc/group and
// /etc/udev/rules.d (Debian's rules in /usr/lib/udev/rules.d run too, so
// ours must win over them). SYSTEMD_DEVICE_VERIFY_SYSFS=0 lets udev read a
// sysfs that is not a real sysfs mount (what systemd's own udev tests do).
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGING, ensureSystemdPackage, removeTempDirs, run, tempDir } from './helpers.js';

const RULES = readFileSync(join(PACKAGING, 'udev', '60-steve.rules'), 'utf8');
const JOBSERVER_GID = 4242;
const STEVE_GID = 4243;

interface Applied {
  /** udevadm test's lines that name the rules file. */
  readonly ruleLines: string[];
  /** `ls -ln` of the node after the event: mode, gid. */
  readonly node: { mode: string; gid: number };
  readonly output: string;
}

/** Run `rules` for an add event of `device` (steve or cuse) and report what udev did. */
async function applyRules(rules: string, device: 'steve' | 'cuse'): Promise<Applied> {
  const dir = tempDir('steve-udev-');
  const sys = join(dir, 'sys');
  const devices = {
    steve: { path: 'devices/virtual/cuse/steve', subsystem: 'cuse', major: 240, minor: 0 },
    cuse: { path: 'devices/virtual/misc/cuse', subsystem: 'misc', major: 10, minor: 203 },
  };
  for (const [name, d] of Object.entries(devices)) {
    const at = join(sys, d.path);
    mkdirSync(at, { recursive: true });
    writeFileSync(join(at, 'uevent'), `MAJOR=${d.major}\nMINOR=${d.minor}\nDEVNAME=${name}\n`);
    writeFileSync(join(at, 'dev'), `${d.major}:${d.minor}\n`);
    mkdirSync(join(sys, 'class', d.subsystem), { recursive: true });
    symlinkSync(`../../../../class/${d.subsystem}`, join(at, 'subsystem'));
    symlinkSync(`../../${d.path}`, join(sys, 'class', d.subsystem, name));
  }
  const group = join(dir, 'group');
  writeFileSync(
    group,
    `${readFileSync('/etc/group', 'utf8').trimEnd()}\njobserver:x:${JOBSERVER_GID}:steve\nsteve:x:${STEVE_GID}:\n`,
  );
  const rulesDir = join(dir, 'rules.d');
  mkdirSync(rulesDir);
  writeFileSync(join(rulesDir, '60-steve.rules'), rules);
  const d = devices[device];
  const script = [
    `mount --bind ${sys} /sys`,
    `mount --bind ${group} /etc/group`,
    `mkdir -p /etc/udev/rules.d && mount --bind ${rulesDir} /etc/udev/rules.d`,
    'mount -t tmpfs steve-dev /dev && mount -t tmpfs steve-run /run',
    `mknod -m 0600 /dev/${device} c ${d.major} ${d.minor}`,
    `SYSTEMD_DEVICE_VERIFY_SYSFS=0 udevadm test --action=add /sys/${d.path} 2>&1`,
    `echo "node: $(stat -c '%a %g' /dev/${device})"`,
  ].join(' && ');
  const result = await run('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script]);
  const node = /^node: (\d+) (\d+)$/m.exec(result.all);
  if (result.exitCode !== 0 || node === null)
    throw new Error(`udevadm test failed (${result.exitCode}):\n${result.all}`);
  return {
    ruleLines: result.all.split('\n').filter((line) => line.includes('60-steve.rules')),
    node: { mode: node[1]!, gid: Number(node[2]) },
    output: result.all,
  };
}

/** What is wrong with the rules for `device`, by udev's own account (empty: nothing). */
function problems(applied: Applied, gid: number): string[] {
  const found: string[] = [];
  for (const line of applied.ruleLines) {
    if (/^Reading rules file: /.test(line)) continue;
    if (/60-steve\.rules:\d+ (GROUP \d+|MODE 0\d+)$/.test(line)) continue;
    found.push(line);
  }
  if (applied.node.gid !== gid) found.push(`node gid ${applied.node.gid}, wanted ${gid}`);
  if (applied.node.mode !== '660') found.push(`node mode ${applied.node.mode}, wanted 660`);
  return found;
}

beforeAll(async () => {
  await ensureSystemdPackage('udev');
});

afterAll(removeTempDirs);

describe('60-steve.rules under udevadm test (udev 252)', () => {
  it('/dev/steve (subsystem cuse) becomes 0660 root:jobserver', async () => {
    const applied = await applyRules(RULES, 'steve');
    expect(problems(applied, JOBSERVER_GID), applied.output).toEqual([]);
    expect(applied.ruleLines.some((line) => / GROUP 4242$/.test(line))).toBe(true);
  });

  it('/dev/cuse becomes 0660 root:steve (the daemon user may open it)', async () => {
    const applied = await applyRules(RULES, 'cuse');
    expect(problems(applied, STEVE_GID), applied.output).toEqual([]);
  });

  it('catches a broken rule: a mistyped key, a missing quote, a wrong match', async () => {
    const broken = [
      RULES.replace('GROUP="jobserver"', 'GRUOP="jobserver"'),
      RULES.replace('MODE="0660"', 'MODE="0660'),
      RULES.replace('SUBSYSTEM=="cuse"', 'SUBSYSTEM=="misc"'),
    ];
    for (const rules of broken) {
      expect(rules).not.toBe(RULES);
      const applied = await applyRules(rules, 'steve');
      expect(problems(applied, JOBSERVER_GID), rules).not.toEqual([]);
    }
  });
});
