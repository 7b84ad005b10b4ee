// Against the real peer: Debian's GNU make 4.3 writes MAKEFLAGS for its
// recipes; the parser must read exactly what make wrote, and make must read
// exactly what the formatter writes.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EMPTY_MAKEFLAGS, isDryRun, makeflagsForChild, parseMakeflags } from '../src/index.js';

// Each recipe prints its MAKEFLAGS and what descriptors 3 and 4 are in the recipe's shell
// (no command substitution there: its own pipe would take descriptor 3).
const MAKEFILE = `
show:
\t@printf 'MAKEFLAGS=[%s]\\n' "$$MAKEFLAGS"; for fd in 3 4; do printf 'fd%s=' $$fd; readlink /proc/$$$$/fd/$$fd 2>/dev/null || echo closed; done
recursive:
\t+@printf 'MAKEFLAGS=[%s]\\n' "$$MAKEFLAGS"; for fd in 3 4; do printf 'fd%s=' $$fd; readlink /proc/$$$$/fd/$$fd 2>/dev/null || echo closed; done
submake:
\t@$(MAKE) --no-print-directory -f Makefile show
vars:
\t@printf 'FOO=[%s] P=[%s]\\n' '$(FOO)' '$(value P)'
`;

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'steve-make-peer-'));
  writeFileSync(join(dir, 'Makefile'), MAKEFILE);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Printed {
  makeflags: string;
  fd3: string;
  fd4: string;
}

function runMake(args: string[], env: Record<string, string> = {}): string {
  const childEnv: Record<string, string | undefined> = { ...process.env, ...env };
  for (const v of ['MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'CARGO_MAKEFLAGS']) {
    if (!(v in env)) delete childEnv[v];
  }
  const result = spawnSync('make', ['--no-print-directory', ...args], {
    cwd: dir,
    env: childEnv,
    encoding: 'utf8',
  });
  if (result.error)
    throw new Error(`cannot run make (install Debian's make): ${result.error.message}`);
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  return result.stdout;
}

function printed(stdout: string): Printed {
  const makeflags = /^MAKEFLAGS=\[(.*)\]$/m.exec(stdout)?.[1];
  const fd3 = /^fd3=(.*)$/m.exec(stdout)?.[1];
  const fd4 = /^fd4=(.*)$/m.exec(stdout)?.[1];
  if (makeflags === undefined || fd3 === undefined || fd4 === undefined) {
    throw new Error(`make printed something unexpected:\n${stdout}`);
  }
  return { makeflags, fd3, fd4 };
}

describe('GNU make 4.3 as the writer of MAKEFLAGS', () => {
  it('is GNU make 4.x', () => {
    expect(runMake(['--version'])).toMatch(/^GNU Make 4\.\d/);
  });

  it('plain: only --no-print-directory, no jobserver', () => {
    const flags = parseMakeflags(printed(runMake(['show'])).makeflags, dir);
    expect(flags).toEqual({ ...EMPTY_MAKEFLAGS, otherOptions: [['--no-print-directory']] });
  });

  it('-k: the letter in the first word without a dash', () => {
    const flags = parseMakeflags(printed(runMake(['-k', 'show'])).makeflags, dir);
    expect(flags.letters).toEqual(['k']);
    expect(flags.jobserverAuth).toBeNull();
  });

  it('-n: a dry run (the + recipe still runs)', () => {
    const out = printed(runMake(['-n', 'recursive']));
    const flags = parseMakeflags(out.makeflags, dir);
    expect(isDryRun(flags)).toBe(true);
  });

  it('-j3 with a + recipe: a pipe auth naming two open ends of one pipe', () => {
    const out = printed(runMake(['-j3', 'recursive']));
    const flags = parseMakeflags(out.makeflags, dir);
    expect(flags.jobs).toBe(3);
    const auth = flags.jobserverAuth;
    expect(auth?.kind).toBe('pipe');
    if (auth?.kind !== 'pipe') return;
    expect([auth.readFd, auth.writeFd]).toEqual([3, 4]);
    expect(out.fd3).toMatch(/^pipe:\[\d+\]$/);
    expect(out.fd4).toBe(out.fd3);
  });

  it('-j3 without +: the auth is still written but the descriptors are closed', () => {
    const out = printed(runMake(['-j3', 'show']));
    expect(parseMakeflags(out.makeflags, dir).jobserverAuth?.kind).toBe('pipe');
    expect(out.fd3).toBe('closed');
    expect(out.fd4).toBe('closed');
  });

  it('-j3 through $(MAKE): the sub-make passes the same auth on', () => {
    const out = printed(runMake(['-j3', 'submake']));
    const flags = parseMakeflags(out.makeflags, dir);
    expect(flags.jobserverAuth).toEqual({ kind: 'pipe', readFd: 3, writeFd: 4 });
  });

  it('-j (unlimited) and -j1: no jobserver at all', () => {
    const unlimited = parseMakeflags(printed(runMake(['-j', 'recursive'])).makeflags, dir);
    expect(unlimited.jobs).toBe('unlimited');
    expect(unlimited.jobserverAuth).toBeNull();
    const serial = parseMakeflags(printed(runMake(['-j1', 'recursive'])).makeflags, dir);
    expect(serial.jobs).toBe(1);
    expect(serial.jobserverAuth).toBeNull();
  });

  it('-l2: the load average', () => {
    expect(parseMakeflags(printed(runMake(['-l2', 'show'])).makeflags, dir).loadAverage).toBe(2);
  });

  it('command-line variables after --, escaped', () => {
    const out = printed(runMake(['-ks', '-j2', 'FOO=bar', 'BAZ=a b', 'recursive']));
    const flags = parseMakeflags(out.makeflags, dir);
    expect(flags.letters.slice().sort()).toEqual(['k', 's']);
    expect(flags.jobs).toBe(2);
    expect(flags.variables.slice().sort()).toEqual(['BAZ=a b', 'FOO=bar']);
  });

  it('make reads back what makeflagsForChild writes', () => {
    const parent = {
      ...EMPTY_MAKEFLAGS,
      letters: ['k'],
      jobs: 8,
      variables: ['FOO=a b\\c', 'P=$$x'],
    };
    const childFlags = makeflagsForChild(parent, null);
    const out = runMake(['vars'], { MAKEFLAGS: childFlags });
    expect(out).toContain('FOO=[a b\\c] P=[$$x]');
    // ...and make writes them again for its own recipes in the same shape.
    const again = parseMakeflags(
      printed(runMake(['show'], { MAKEFLAGS: childFlags })).makeflags,
      dir,
    );
    expect(again.letters).toEqual(['k']);
    expect(again.jobs).toBeNull();
    expect(again.variables.slice().sort()).toEqual(['FOO=a b\\c', 'P=$$x']);
  });
});
