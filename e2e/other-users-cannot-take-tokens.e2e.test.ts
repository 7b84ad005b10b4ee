// Another local user cannot take tokens by default: without a `jobserver`
// group the daemon serves mode 0600 (root and its own user), and says so;
// `--mode 0666` opens the pool to everyone when asked. (Before, the default
// was 0666 with allow_other: any local user could drain the pool.)
import { spawnSync } from 'node:child_process';
import { chmodSync, statSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { PYTHON, type RunningDaemon, startDaemon, waitFor } from './helpers/daemon.js';

const NOBODY = 65534;
let daemon: RunningDaemon | null = null;

afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

/** As uid nobody: open the jobserver read-write, take one token, give it back. */
function takeAsNobody(path: string): { status: number | null; stdout: string } {
  const script = `
import os, sys
try:
    fd = os.open(sys.argv[1], os.O_RDWR)
except PermissionError:
    print("EACCES"); sys.exit(3)
token = os.read(fd, 1)
os.write(fd, token)
print("took", token.decode())`;
  const run = spawnSync(PYTHON, ['-c', script, path], {
    uid: NOBODY,
    gid: NOBODY,
    encoding: 'utf8',
    timeout: 10_000,
  });
  return { status: run.status, stdout: run.stdout.trim() };
}

function groupExists(name: string): boolean {
  return spawnSync('getent', ['group', name]).status === 0;
}

describe('who may take tokens', () => {
  it('by default another user cannot open the jobserver file (0600 without a jobserver group, 0660 with one), and the daemon says why', async () => {
    daemon = await startDaemon(['-j2']);
    chmodSync(daemon.dir, 0o755); // so only the file's own mode stands in the way
    const mode = statSync(daemon.jobserverPath).mode & 0o777;
    if (groupExists('jobserver')) {
      expect(mode).toBe(0o660);
    } else {
      expect(mode).toBe(0o600);
      await waitFor('the one-line reason', () =>
        daemon?.log.some((l) => /no 'jobserver' group: only root and the daemon's user/.test(l)),
      );
    }
    expect(takeAsNobody(daemon.jobserverPath)).toEqual({ status: 3, stdout: 'EACCES' });
    expect(daemon.out()).toBe(0);
  });

  it('--mode 0666 opens the pool to every local user when asked', async () => {
    daemon = await startDaemon(['-j2', '--mode', '0666']);
    chmodSync(daemon.dir, 0o755);
    expect(statSync(daemon.jobserverPath).mode & 0o777).toBe(0o666);
    expect(takeAsNobody(daemon.jobserverPath)).toEqual({ status: 0, stdout: 'took +' });
    await waitFor('the token back', () => daemon?.out() === 0);
  });
});
