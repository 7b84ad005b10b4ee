// Two pytest-xdist runs (-n 6 each) and GNU make 4.3 (pipe style,
// `3<>jobserver`) at the same time on one pool of 4. Each top-level client
// has one implicit slot, so at most 4 + 3 jobs run at once; the daemon never
// has more than 4 tokens out and gets every one back.
import { closeSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type RunningDaemon,
  cleanEnv,
  maxConcurrency,
  start,
  startDaemon,
  startPytest,
  tempDir,
  waitFor,
  writeSleepSuite,
} from './helpers.js';

let daemon: RunningDaemon | null = null;
let dir: string | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
  if (dir !== null) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

function writeMakefile(at: string, jobs: number, seconds: number, stamps: string): string {
  const names = Array.from({ length: jobs }, (_, i) => `job${i}`);
  const makefile = join(at, 'Makefile');
  writeFileSync(
    makefile,
    [
      `all: ${names.join(' ')}`,
      `${names.join(' ')}:`,
      `\t@echo start make-$@ $$(date +%s%N) >> ${stamps}; sleep ${seconds}; echo end make-$@ $$(date +%s%N) >> ${stamps}`,
      '',
    ].join('\n'),
  );
  return makefile;
}

describe('two pytest runs and make share one pool of 4', () => {
  it('at most 4 + 3 implicit slots at once, at most 4 tokens out, every token back', async () => {
    daemon = await startDaemon(4);
    dir = tempDir();
    const stamps = join(dir, 'stamps');
    const fifoAuth = { MAKEFLAGS: ` --jobserver-auth=fifo:${daemon.jobserverPath}` };
    const suiteA = writeSleepSuite(dir, stamps, { label: 'a' });
    const suiteB = writeSleepSuite(dir, stamps, { label: 'b' });
    const makefile = writeMakefile(dir, 16, 0.5, stamps);

    const fd = openSync(daemon.jobserverPath, 'r+');
    let results;
    try {
      const make = start('make', ['-f', makefile], {
        cwd: dir,
        env: cleanEnv({ MAKEFLAGS: '--jobserver-auth=3,3' }),
        stdio3: fd,
      });
      const runA = startPytest(['-n', '6', '-q'], { cwd: suiteA, env: fifoAuth });
      const runB = startPytest(['-n', '6', '-q'], { cwd: suiteB, env: fifoAuth });
      results = await Promise.all([make.exited, runA.exited, runB.exited]);
    } finally {
      closeSync(fd);
    }
    for (const result of results) expect(result.code, result.output).toBe(0);

    const text = readFileSync(stamps, 'utf8');
    expect(text.match(/^end a-/gm)).toHaveLength(24);
    expect(text.match(/^end b-/gm)).toHaveLength(24);
    expect(text.match(/^end make-/gm)).toHaveLength(16);
    const most = maxConcurrency(text);
    expect(most).toBeLessThanOrEqual(4 + 3);
    expect(most).toBeGreaterThanOrEqual(4);
    // Each run alone stays within pool + 1 as well.
    expect(maxConcurrency(text, 'a-')).toBeLessThanOrEqual(5);
    expect(maxConcurrency(text, 'b-')).toBeLessThanOrEqual(5);
    expect(daemon.maxOut()).toBeLessThanOrEqual(4);
    await waitFor('all tokens back', () => daemon?.out() === 0);
    console.log(
      `shared pool of 4: at most ${most} jobs at once (a ${maxConcurrency(text, 'a-')}, b ${maxConcurrency(text, 'b-')}, make ${maxConcurrency(text, 'make-')})`,
    );
  });
});
