// GNU make 4.3 (Debian's) as the jobserver server: a `+` recipe runs a Node
// client that takes tokens through the inherited pipe, next to make's own
// jobs. And make 4.3 as a client of runWithToken (pipe style chosen for it).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Jobserver,
  chooseChildStyle,
  gnuMakeVersion,
  resolveCommand,
  runWithToken,
} from '../src/index.js';
import { FIXTURES, maxConcurrency, tempDir } from './helpers.js';

const CLIENT = join(FIXTURES, 'client.mjs');
const make = resolveCommand('make');
const version = make === null ? null : gnuMakeVersion(make);
const isMake43 = version !== null && version[0] === 4 && version[1] === 3;

function makeJobs(names: string[], stamps: string, seconds: number): string[] {
  return [
    `${names.join(' ')}:`,
    `\t@echo start make-$@ $$(date +%s%N) >> ${stamps}; sleep ${seconds}; echo end make-$@ $$(date +%s%N) >> ${stamps}`,
  ];
}

function runMake(dir: string, jobs: number, env: NodeJS.ProcessEnv = {}) {
  const { MAKEFLAGS: _m, MFLAGS: _f, CARGO_MAKEFLAGS: _c, ...clean } = process.env;
  return spawnSync('make', ['-C', dir, `-j${jobs}`], {
    encoding: 'utf8',
    env: { ...clean, ...env },
    timeout: 60_000,
  });
}

const opened: Jobserver[] = [];
afterEach(() => {
  for (const jobserver of opened.splice(0)) jobserver.close();
});

describe.skipIf(!isMake43)('GNU make 4.3 as the server', () => {
  it.each(['native', 'fallback'])(
    'a Node client alone under -j3 runs exactly 3 tasks at a time (%s wait) and returns every token',
    (wait) => {
      const dir = tempDir();
      const stamps = join(dir, 'stamps');
      writeFileSync(
        join(dir, 'Makefile'),
        ['all:', `\t+@${process.execPath} ${CLIENT} tasks 6 300 ${stamps} node`, ''].join('\n'),
      );
      const result = runMake(dir, 3, wait === 'fallback' ? { STEVE_JOBSERVER_NATIVE: '0' } : {});
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      expect(result.stdout).toContain(`wait ${wait}`);
      expect(result.stdout).toContain('done');
      expect(maxConcurrency(readFileSync(stamps, 'utf8'))).toBe(3);
    },
  );

  it("shares -j4 with make's own jobs: total concurrency <= 4, no token count mismatch", () => {
    const dir = tempDir();
    const stamps = join(dir, 'stamps');
    const names = ['job0', 'job1', 'job2', 'job3', 'job4'];
    writeFileSync(
      join(dir, 'Makefile'),
      [
        `all: node ${names.join(' ')}`,
        'node:',
        `\t+@${process.execPath} ${CLIENT} tasks 5 300 ${stamps} node`,
        ...makeJobs(names, stamps, 0.3),
        '',
      ].join('\n'),
    );
    const result = runMake(dir, 4);
    // make 4.3 reports a lost or extra token as "INTERNAL: Exiting with N jobserver tokens …".
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const text = readFileSync(stamps, 'utf8');
    expect(text.match(/^end node-/gm)).toHaveLength(5);
    expect(text.match(/^end make-/gm)).toHaveLength(5);
    const most = maxConcurrency(text);
    expect(most).toBeLessThanOrEqual(4);
    expect(most).toBeGreaterThanOrEqual(2);
  });

  it("a recipe without '+' gets the warning and runs serially", () => {
    const dir = tempDir();
    const stamps = join(dir, 'stamps');
    writeFileSync(
      join(dir, 'Makefile'),
      ['all:', `\t@${process.execPath} ${CLIENT} tasks 2 10 ${stamps} node`, ''].join('\n'),
    );
    const result = runMake(dir, 3);
    // make 4.3 closes its pipe for recipes without '+' but leaves the auth in
    // MAKEFLAGS; in Node, 3 and 4 are then its own epoll descriptor and pipe.
    expect(result.stderr).toMatch(
      /warning: jobserver unavailable: using -j1\. {2}Add '\+' to parent make rule\./,
    );
    expect(result.status).not.toBe(0); // the fixture exits 3 without a jobserver
  });
});

describe.skipIf(!isMake43)('runWithToken with make 4.3 as the child', () => {
  it('chooses pipe style for make 4.3 and fifo style for others', () => {
    const jobserver = Jobserver.create(2);
    opened.push(jobserver);
    expect(chooseChildStyle('make', jobserver)).toBe('pipe');
    expect(chooseChildStyle(process.execPath, jobserver)).toBe('fifo');
  });

  it('make 4.3 runs as a pipe-style client of a private pool: parallelism follows the pool', async () => {
    const dir = tempDir();
    const stamps = join(dir, 'stamps');
    const names = ['a', 'b', 'c', 'd', 'e', 'f'];
    writeFileSync(
      join(dir, 'Makefile'),
      [`all: ${names.join(' ')}`, ...makeJobs(names, stamps, 0.3), ''].join('\n'),
    );
    const jobserver = Jobserver.create(3);
    opened.push(jobserver);
    const { MAKEFLAGS: _m, MFLAGS: _f, CARGO_MAKEFLAGS: _c, ...clean } = process.env;
    const status = await runWithToken('make', ['-s', '-C', dir], {
      jobserver,
      env: { ...clean, MAKEFLAGS: 'k' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    expect(status).toBe(0);
    expect(maxConcurrency(readFileSync(stamps, 'utf8'))).toBe(3);
    // Every token is back: the implicit slot and both explicit ones.
    const tokens = [jobserver.tryAcquire(), jobserver.tryAcquire(), jobserver.tryAcquire()];
    expect(tokens.map((t) => t?.implicit)).toEqual([true, false, false]);
    expect(jobserver.tryAcquire()).toBeNull();
  });
});
