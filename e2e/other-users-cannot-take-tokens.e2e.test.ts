// Another local user cannot take tokens by default: without a `jobserver`
// group the daemon serves mode 0600 (root and its own user), and says so;
// `--mode 0666` opens the pool to everyone when asked. (Before, the default
// was 0666 with allow_other: any local user could drain the pool.)
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CLIENTS,
  PYTHON,
  STEVIE_BIN,
  type RunningDaemon,
  startDaemon,
  waitFor,
} from './helpers/daemon.js';

const NOBODY = 65534;
let daemon: RunningDaemon | null = null;

const holders: ChildProcess[] = [];

afterEach(async () => {
  for (const holder of holders.splice(0)) holder.kill('SIGKILL');
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

/** As uid nobody: the FUSE status file and the control socket's status reply. */
function statusAsNobody(
  statusPath: string,
  controlPath: string,
): { file: string; commands: string[] } {
  const script = `
import json, socket, sys
print(open(sys.argv[1]).read())
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[2])
s.sendall(b'{"id":1,"type":"status"}\\n')
reply = b''
while not reply.endswith(b'\\n'):
    reply += s.recv(65536)
result = json.loads(reply)["result"]
print("COMMANDS", json.dumps([h["command"] for h in result["holders"]]))`;
  const run = spawnSync(PYTHON, ['-c', script, statusPath, controlPath], {
    uid: NOBODY,
    gid: NOBODY,
    encoding: 'utf8',
    timeout: 10_000,
  });
  expect(run.status, run.stderr).toBe(0);
  const [file = '', commands = '[]'] = run.stdout.split('COMMANDS ');
  return { file, commands: JSON.parse(commands) as string[] };
}

describe("other users' command lines", () => {
  it("status (FUSE file and control socket) shows another user only its own processes' command lines; root sees all", async () => {
    daemon = await startDaemon(['-j3', '--mode', '0666']);
    chmodSync(daemon.dir, 0o755);
    const rootHolder = spawn(
      PYTHON,
      [join(CLIENTS, 'holder.py'), daemon.jobserverPath, '1', 'root-secret-arg'],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    holders.push(rootHolder);
    const nobodyHolder = spawn(
      PYTHON,
      [
        '-c',
        'import os, sys, time\nfd = os.open(sys.argv[1], os.O_RDWR)\nos.read(fd, 1)\nprint("holding", flush=True)\ntime.sleep(3600)',
        daemon.jobserverPath,
        'nobody-own-arg',
      ],
      { uid: NOBODY, gid: NOBODY, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    holders.push(nobodyHolder);
    await waitFor('both holders holding', () => daemon?.out() === 2);

    const seen = statusAsNobody(join(daemon.mountDir, 'status'), daemon.controlPath);
    expect(seen.file).not.toContain('root-secret-arg');
    expect(seen.file).toContain("(another user's process)");
    expect(seen.file).toContain('nobody-own-arg');
    expect(seen.commands.some((c) => c.includes('root-secret-arg'))).toBe(false);
    expect(seen.commands).toContain("(another user's process)");
    expect(seen.commands.some((c) => c.includes('nobody-own-arg'))).toBe(true);

    const asRoot = readFileSync(join(daemon.mountDir, 'status'), 'utf8');
    expect(asRoot).toContain('root-secret-arg');
    expect(asRoot).toContain('nobody-own-arg');
  });
});

describe('--per-user-limit', () => {
  it("one user's processes together get at most N tokens; another user still gets one; stevie status shows tokens per user", async () => {
    daemon = await startDaemon(['-j3', '--mode', '0666', '--per-user-limit', '1']);
    chmodSync(daemon.dir, 0o755);
    const first = spawn(PYTHON, [join(CLIENTS, 'holder.py'), daemon.jobserverPath, '1'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    holders.push(first);
    await waitFor('root holding its one token', () => daemon?.out() === 1);
    // A second process of the same user waits, although two tokens are free...
    const second = spawn(PYTHON, [join(CLIENTS, 'holder.py'), daemon.jobserverPath, '1'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    holders.push(second);
    await waitFor('the second root process waiting', () =>
      / waiting 1 /.test(daemon?.status() ?? ''),
    );
    expect(daemon.out()).toBe(1);
    // ...and another user gets one at once.
    expect(takeAsNobody(daemon.jobserverPath)).toEqual({ status: 0, stdout: 'took +' });
    const status = spawnSync(
      process.execPath,
      [STEVIE_BIN, 'status', '--control', daemon.controlPath],
      {
        encoding: 'utf8',
      },
    );
    expect(status.stdout).toContain('<= 1 per user');
    expect(status.stdout).toMatch(
      /USERS \(1, at most 1 tokens each\)\n\s+UID\s+TOKENS\s+USER\n\s+0\s+1\s+root/,
    );
    // The first gives its token back (killed): the second process gets it.
    first.kill('SIGKILL');
    await waitFor(
      'the second root process holding',
      () => / waiting 0 /.test(daemon?.status() ?? '') && daemon?.out() === 1,
    );
  });
});
