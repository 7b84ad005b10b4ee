// GNU make (4.3 here) as a pipe-style jobserver client of the FUSE file:
// `MAKEFLAGS="-j --jobserver-auth=3,3" make 3<>DIR/jobserver`, served by a
// trivial 2-token responder. make may run 3 jobs at once (2 tokens + its
// implicit slot) and must write every token back.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { mountTemp, narrate, TokenResponder, type Narrator, type TempMount } from './helpers.js';

let mount: TempMount | undefined;
let workDir: string | undefined;
const children: Narrator[] = [];

afterEach(async () => {
  await Promise.all(children.splice(0).map((child) => child.stop()));
  await mount?.dispose();
  mount = undefined;
  if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
  workDir = undefined;
});

/** The most intervals open at once, from "start NS" / "end NS" lines. */
function maxConcurrency(log: string): number {
  const events = log
    .trim()
    .split('\n')
    .map((line) => {
      const [kind, ns] = line.split(' ');
      return { at: BigInt(ns ?? '0'), delta: kind === 'start' ? 1 : -1 };
    })
    .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.delta - b.delta));
  let running = 0;
  let most = 0;
  for (const event of events) {
    running += event.delta;
    most = Math.max(most, running);
  }
  return most;
}

describe('GNU make as a pipe client', () => {
  it('runs at most 3 jobs at once with 2 tokens and writes every token back', async () => {
    const responder = new TokenResponder(2);
    mount = await mountTemp(responder);
    workDir = await mkdtemp(path.join(os.tmpdir(), 'steve-make-'));
    const jobs = ['j1', 'j2', 'j3', 'j4', 'j5', 'j6'];
    await writeFile(
      path.join(workDir, 'Makefile'),
      `all: ${jobs.join(' ')}\n` +
        `${jobs.join(' ')}:\n` +
        '\t@echo "start $$(date +%s%N)" >> log; sleep 0.3; echo "end $$(date +%s%N)" >> log\n',
    );
    const make = narrate('bash', ['-c', 'exec make --no-print-directory 3<>"$JOBSERVER"'], {
      cwd: workDir,
      env: { ...process.env, MAKEFLAGS: '-j --jobserver-auth=3,3', JOBSERVER: mount.jobserver },
    });
    children.push(make);
    const { code } = await make.exited;
    expect(make.stderr).toEqual([]);
    expect(code).toBe(0);

    const log = await readFile(path.join(workDir, 'log'), 'utf8');
    expect(log.match(/^start /gm)).toHaveLength(6);
    expect(maxConcurrency(log)).toBe(3);
    expect(responder.maxHeld).toBe(2);
    expect(responder.tokens).toBe(2); // every token written back
    const written = responder.events.reduce(
      (sum, event) => sum + (event.kind === 'write' ? event.sizeBytes : 0),
      0,
    );
    expect(written).toBe(responder.granted);
    expect(written).toBeGreaterThanOrEqual(3); // 6 jobs, at most 3 on the implicit slot
    // make 4.3 waits with pselect and reads O_NONBLOCK: both paths were used.
    expect(responder.count('poll')).toBeGreaterThan(0);
  });
});
