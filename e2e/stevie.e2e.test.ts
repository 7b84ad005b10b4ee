// stevie against a live daemon: steering a running make build, the live
// view under tmux, and the errors a user meets.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, sep } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type RunningDaemon,
  STEVIE_BIN,
  exitOf,
  maxConcurrency,
  startDaemon,
  waitFor,
} from './helpers/daemon.js';
import { writeMakefile } from './helpers/workloads.js';

const STEVIE = STEVIE_BIN;
let daemon: RunningDaemon | null = null;
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  await daemon?.stop();
  daemon = null;
});

function stevie(
  args: string[],
  options: { uid?: number; bin?: string } = {},
): { status: number | null; stdout: string; stderr: string } {
  const { bin = STEVIE, ...spawnOptions } = options;
  const result = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    timeout: 20_000,
    ...spawnOptions,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The directory of package `name` as Node finds it from the package at `from`. */
function packageDir(from: string, name: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (basename(dir) !== 'node_modules' && existsSync(join(candidate, 'package.json')))
      return realpathSync(candidate);
    if (dirname(dir) === dir) throw new Error(`${name} not found from ${from}`);
  }
}

/**
 * Copy the package at `from` to `to` with its runtime dependencies nested
 * under it (npm's old layout: no pnpm links into the checkout), leaving out
 * sources, tests and the checkout's own node_modules.
 */
function copyPackage(from: string, to: string, ancestry: readonly string[] = []): void {
  const skip = new Set(['node_modules', 'src', 'test', '.git']);
  cpSync(from, to, {
    recursive: true,
    dereference: true,
    filter: (path) =>
      !relative(from, path)
        .split(sep)
        .some((part) => skip.has(part)),
  });
  const manifest = JSON.parse(readFileSync(join(from, 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>;
  };
  for (const name of Object.keys(manifest.dependencies ?? {})) {
    const dep = packageDir(from, name);
    if (!ancestry.includes(dep))
      copyPackage(dep, join(to, 'node_modules', name), [...ancestry, from]);
  }
}

/**
 * stevie's package and what it loads, copied where every user can read it:
 * the checkout may sit in a directory only root can enter (root's 0700
 * home), and Node cannot even load the module of another user's stevie then.
 */
function stevieEveryoneCanRun(dir: string): string {
  const pkg = realpathSync(dirname(dirname(STEVIE)));
  const to = join(dir, 'steve-daemon');
  copyPackage(pkg, to);
  return join(to, relative(pkg, realpathSync(STEVIE)));
}

/** Jobs running at each moment, from the stamps file. */
function runningNow(stampsPath: string): number {
  let text = '';
  try {
    text = readFileSync(stampsPath, 'utf8');
  } catch {
    return 0;
  }
  const lines = text.trim().split('\n');
  return (
    lines.filter((l) => l.startsWith('start')).length -
    lines.filter((l) => l.startsWith('end')).length
  );
}

describe('stevie', () => {
  it('status shows holders and waiters; --set-jobs during a build starts more jobs at once, fewer as tokens return', async () => {
    daemon = await startDaemon(['-j', '1']);
    const control = ['--control', daemon.controlPath];
    const stamps = join(daemon.dir, 'stamps');
    const makefile = writeMakefile(daemon.dir, 16, 1.5, stamps);
    const make = spawn('bash', ['-c', `exec make -f ${makefile} 3<>${daemon.jobserverPath}`], {
      cwd: daemon.dir,
      env: { ...process.env, MAKEFLAGS: '--jobserver-auth=3,3', MAKELEVEL: '' },
      stdio: 'ignore',
    });
    children.push(make);
    // 1 token + make's implicit slot: 2 jobs at a time.
    await waitFor('two jobs running', () => runningNow(stamps) === 2);
    const status = stevie(['status', ...control]);
    expect(status.status).toBe(0);
    expect(status.stdout).toMatch(/jobs 1 .* out 1 /);
    expect(status.stdout).toMatch(
      new RegExp(`HOLDERS \\(1\\)[\\s\\S]*${make.pid}\\s+1\\s+[\\d.]+s\\s+make -f`),
    );
    expect(status.stdout).toMatch(/WAITERS \(1\)[\s\S]*poll/); // make waits with pselect

    const raisedAt = Date.now();
    expect(stevie(['--set-jobs', '3', ...control]).status).toBe(0);
    await waitFor('four jobs running', () => runningNow(stamps) === 4, 5000);
    // Within one recheck interval (1 s), not at the end of a running job (1.5 s).
    expect(Date.now() - raisedAt).toBeLessThan(1000);
    expect(stevie(['--get-jobs', ...control]).stdout.trim()).toBe('3');

    expect(stevie(['--set-jobs', '1', ...control]).status).toBe(0);
    const loweredAtLine = await waitFor('the change in the log', () => {
      const at = daemon?.log.findIndex((l) => l.endsWith('config: {"jobs":1}')) ?? -1;
      return at >= 0 ? at : undefined;
    });
    await waitFor('back to two jobs', () => runningNow(stamps) <= 2, 10_000);
    // No new token goes out after lowering while one or more are out (taking a
    // token reserved before the change is not a new one: out stays the same).
    const grantsAfter = daemon.log
      .slice(loweredAtLine)
      .map((l) => l.replace(/^\d{4}-\d\d-\d\dT\S+ /, '')) // the daemon's timestamps
      .filter(
        (l) =>
          (l.startsWith('grant ->') && !l.includes('(reserved)')) || l.startsWith('reserve ->'),
      );
    for (const line of grantsAfter)
      expect(Number(/; out (\d+)$/.exec(line)?.[1])).toBeLessThanOrEqual(1);
    expect(await exitOf(make)).toBe(0);
    await waitFor('all tokens back', () => daemon?.out() === 0);
  });

  it('top under tmux: live numbers, q quits', async () => {
    daemon = await startDaemon(['-j', '2']);
    const session = `stevie-top-${process.pid}`;
    const tmux = (...args: string[]) => spawnSync('tmux', args, { encoding: 'utf8' });
    expect(
      tmux(
        'new-session',
        '-d',
        '-s',
        session,
        '-x',
        '120',
        '-y',
        '40',
        `${process.execPath} ${STEVIE} --control ${daemon.controlPath} top`,
      ).status,
    ).toBe(0);
    try {
      const screen = () => tmux('capture-pane', '-p', '-t', session).stdout;
      await waitFor(
        'the live view',
        () => screen().includes('stevie top') && screen().includes('jobs 2 '),
      );
      expect(screen()).toMatch(/tokens out, last minute \(0\.\.2\): \|/);
      expect(stevie(['set', 'jobs', '5', '--control', daemon.controlPath]).stdout).toBe('jobs 5\n');
      await waitFor('the new job count on screen', () => screen().includes('jobs 5 '));
      tmux('send-keys', '-t', session, 'q');
      await waitFor('top to quit', () => tmux('has-session', '-t', session).status !== 0);
    } finally {
      tmux('kill-session', '-t', session);
    }
  });

  it('events streams what happens', async () => {
    daemon = await startDaemon(['-j', '2']);
    const events = spawn(process.execPath, [STEVIE, 'events', '--control', daemon.controlPath], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(events);
    let out = '';
    events.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    await waitFor(
      'subscribed',
      () =>
        daemon?.status().includes('jobs 2') &&
        stevie(['-t', '--control', daemon!.controlPath]).stdout.trim() === '2',
    );
    // The subscription may land after the first actions: repeat each one until
    // its line arrives (a read and write back, a set of the same value).
    await waitFor('grant and return lines', () => {
      if (/grant .*holds 1/.test(out) && /return .*gave 1/.test(out)) return true;
      spawnSync('/usr/bin/python3', [
        '-c',
        'import os,sys; fd=os.open(sys.argv[1], os.O_RDWR); os.write(fd, os.read(fd, 1))',
        daemon!.jobserverPath,
      ]);
      return false;
    });
    await waitFor('the config line', () => {
      if (/config +\{"minJobs":2\}/.test(out)) return true;
      // Through 1, so the daemon sees a change even if an earlier set was unheard.
      stevie(['set', 'min-jobs', '1', '--control', daemon!.controlPath]);
      stevie(['set', 'min-jobs', '2', '--control', daemon!.controlPath]);
      return false;
    });
    events.kill('SIGTERM');
    expect(await exitOf(events)).toBe(0);
  });

  it('get lists every setting by the names set takes; get NAME and set NAME agree', async () => {
    daemon = await startDaemon(['-j', '3']);
    const control = ['--control', daemon.controlPath];
    // A value for each setting (different from the daemon's defaults) in the order `get` lists them.
    const values: [string, string][] = [
      ['jobs', '4'],
      ['load-average', '7.5'],
      ['min-jobs', '2'],
      ['min-memory-avail', '100'],
      ['memory-pressure', '50'],
      ['per-process-limit', '3'],
      ['per-user-limit', '5'],
      ['reservation-ttl', '1500'],
      ['load-recheck', '250'],
      ['fairness', 'fifo'],
    ];
    const listed = stevie(['get', ...control]);
    expect(listed.status).toBe(0);
    const lines = listed.stdout.trimEnd().split('\n');
    expect(lines.map((l) => l.split(' ')[0])).toEqual(values.map(([name]) => name));
    for (const [name, value] of values) {
      // get NAME prints what the list says for NAME...
      const before = lines.find((l) => l.startsWith(`${name} `))?.slice(name.length + 1);
      expect(stevie(['get', name, ...control])).toMatchObject({ status: 0, stdout: `${before}\n` });
      // ...and set NAME takes the same name and prints it back.
      expect(stevie(['set', name, value, ...control])).toMatchObject({
        status: 0,
        stdout: `${name} ${value}\n`,
      });
      expect(stevie(['get', name, ...control]).stdout).toBe(`${value}\n`);
    }
    expect(stevie(['get', ...control]).stdout).toBe(
      values.map(([name, value]) => `${name} ${value}\n`).join(''),
    );
    // `none` lifts a limit, shown as none by both.
    expect(stevie(['set', 'load-average', 'none', ...control]).stdout).toBe('load-average none\n');
    expect(stevie(['get', 'load-average', ...control]).stdout).toBe('none\n');
    // --json keeps the protocol's object.
    expect(JSON.parse(stevie(['get', '--json', ...control]).stdout)).toMatchObject({
      jobs: 4,
      maxLoadAverage: null,
      fairness: 'fifo',
    });
  });

  it('stevie CMD runs a command holding one token: make 4.3 gets the pool as a descriptor, others as a fifo auth', async () => {
    daemon = await startDaemon(['-j', '3']);
    const control = ['--control', daemon.controlPath];
    const stamps = join(daemon.dir, 'stamps');
    const makefile = writeMakefile(daemon.dir, 6, 0.5, stamps);
    // make 4.3 would stop on a fifo: auth; stevie hands it --jobserver-auth=N,N.
    const make = stevie([...control, '--', 'make', '-f', makefile]);
    expect(make.stderr).toBe('');
    expect(make.status).toBe(0);
    // stevie's token is make's implicit slot; make took the other 2: 3 at a time.
    expect(maxConcurrency(readFileSync(stamps, 'utf8').trim().split('\n'))).toBe(3);
    await waitFor('the daemon log of 3 tokens out', () => daemon?.maxOut() === 3);

    const probe = 'import os; print(os.environ["MAKEFLAGS"])';
    const python = stevie([...control, '/usr/bin/python3', '-c', probe]);
    expect(python.status).toBe(0);
    expect(python.stdout.trim()).toBe(`--jobserver-auth=fifo:${daemon.jobserverPath}`);
    // The command's exit status is stevie's.
    expect(stevie([...control, '/usr/bin/python3', '-c', 'raise SystemExit(7)']).status).toBe(7);
    await waitFor('all tokens back', () => daemon?.out() === 0);
  });

  it('says what to do: no daemon, no permission, a reply that is not one, bad input', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stevie-errors-'));
    chmodSync(dir, 0o755);
    try {
      const none = stevie(['status', '--control', join(dir, 'none.sock')]);
      expect(none.status).toBe(1);
      expect(none.stderr).toMatch(/no daemon at .*none\.sock: start one with `npx steve-daemon`/);

      // A socket only root may open, tried by another user.
      const privatePath = join(dir, 'private.sock');
      const privateServer = createServer((s) => s.end());
      await new Promise<void>((resolve) => privateServer.listen(privatePath, resolve));
      chmodSync(privatePath, 0o600);
      const denied = stevie(['status', '--control', privatePath], {
        uid: 65534,
        bin: stevieEveryoneCanRun(dir),
      });
      expect(denied.status).toBe(1);
      expect(denied.stderr).toMatch(/cannot open .*private\.sock: permission denied/);
      privateServer.close();

      // Something that answers garbage.
      const liarPath = join(dir, 'liar.sock');
      const liar = createServer((s) => s.on('data', () => s.write('hello there\n')));
      await new Promise<void>((resolve) => liar.listen(liarPath, resolve));
      const lied = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [STEVIE, 'status', '--control', liarPath], {
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
        child.on('exit', (status) => resolve({ status, stderr }));
      });
      expect(lied.status).toBe(1);
      expect(lied.stderr).toMatch(/sent something that is not JSON: hello there/);
      liar.close();

      expect(stevie(['set', 'jobs', 'many', '--control', liarPath])).toMatchObject({
        status: 2,
        stderr: "stevie: jobs wants a whole number >= 1, got 'many' (see stevie --help)\n",
      });
      expect(stevie(['set', 'colour', '3'])).toMatchObject({
        status: 2,
        stderr: expect.stringMatching(/^stevie: unknown setting 'colour' \(known: jobs, /),
      });
      expect(stevie(['stauts', '--control', liarPath])).toMatchObject({
        status: 2,
        stderr: expect.stringMatching(/^stevie: unknown command 'stauts'.*'stevie status'/),
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
