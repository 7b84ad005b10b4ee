// Who may use the pool by default: the device/file mode without a
// `jobserver` group, and FUSE's allow_other by how the daemon runs.
import { describe, expect, it } from 'vitest';
import { fuseAllowOther, parseDaemonArgs, permissions } from '../../src/cli/steve-daemon.js';

function access(argv: string[], groups: Record<string, number> = {}) {
  const lines: string[] = [];
  const args = parseDaemonArgs(argv);
  const result = permissions(
    args,
    (line) => lines.push(line),
    (name) => groups[name] ?? null,
  );
  return { ...result, lines };
}

describe('the mode of the device or file', () => {
  it('without a jobserver group: 0600 (root and the daemon user only), said in one line naming --mode 0666', () => {
    const { mode, gid, lines } = access([]);
    expect(mode).toBe(0o600);
    expect(gid).toBeNull();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/no 'jobserver' group: only root and the daemon's user/);
    expect(lines[0]).toContain('--mode 0666');
  });

  it('with a jobserver group: 0660 and that group, nothing said', () => {
    expect(access([], { jobserver: 977 })).toEqual({ mode: 0o660, gid: 977, lines: [] });
  });

  it('--mode 0666 opens it to every user when asked, without a warning', () => {
    expect(access(['--mode', '0666'])).toEqual({ mode: 0o666, gid: null, lines: [] });
  });

  it('--group NAME that does not exist is a usage error naming groupadd', () => {
    expect(() => access(['--group', 'builders'])).toThrow(/no group 'builders'.*groupadd builders/);
  });
});

describe('FUSE allow_other', () => {
  const quiet = (): void => undefined;

  it('as root: on unless --no-allow-other', () => {
    expect(fuseAllowOther(undefined, 0, null, quiet)).toBe(true);
    expect(fuseAllowOther(false, 0, null, quiet)).toBe(false);
  });

  it('not root, fuse.conf without user_allow_other: off, said in one line', () => {
    const lines: string[] = [];
    expect(fuseAllowOther(undefined, 1000, '# mount_max = 1000\n', (l) => lines.push(l))).toBe(
      false,
    );
    expect(lines).toEqual([expect.stringContaining('/etc/fuse.conf has no user_allow_other')]);
    expect(fuseAllowOther(undefined, 1000, null, quiet)).toBe(false);
  });

  it('not root, fuse.conf with user_allow_other: on', () => {
    expect(fuseAllowOther(undefined, 1000, 'user_allow_other\n', quiet)).toBe(true);
    expect(fuseAllowOther(undefined, 1000, '#user_allow_other\n', quiet)).toBe(false);
  });

  it('not root, --allow-other without user_allow_other: a usage error saying what to add', () => {
    expect(() => fuseAllowOther(true, 1000, '', quiet)).toThrow(
      /user_allow_other.*\/etc\/fuse.conf/,
    );
  });
});
