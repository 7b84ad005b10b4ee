#!/usr/bin/env node
/**
 * The top level of one build in `pnpm bench builds`:
 *
 *   node builds-wrapper.js REPORT POOL -- CMD [ARGS...]
 *
 * With a POOL path (a kernel fifo, or one of steve's fronts) it runs CMD
 * through @steve/jobserver-client's `runWithTokenResult`, the code behind
 * `stevie -- CMD` and `steve-job`: it takes one token from the pool first
 * and holds it while CMD runs, so CMD's implicit slot (the job every
 * jobserver client runs without a token) is paid for, and passes the pool
 * on in MAKEFLAGS (pipe style for GNU make < 4.4, `fifo:` otherwise).
 * With POOL `-` it runs CMD as it is (each build on its own `-jN`).
 *
 * REPORT gets one JSON line: CLOCK_MONOTONIC nanoseconds (Node's hrtime)
 * of when the token was in hand and CMD started, when CMD ended, and how.
 * Exits with CMD's status.
 */

import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Jobserver, runWithTokenResult } from '@steve/jobserver-client';

/** What the harness reads back (nanoseconds as decimal strings: beyond 2^53 after long uptimes). */
export interface WrapperReport {
  readonly tokenNs: string;
  readonly endNs: string;
  readonly status: number;
  readonly signal: string | null;
  /** Clock ticks from /proc/self/stat at the end: this wrapper's utime + stime, and cutime + cstime (CMD and everything it reaped). */
  readonly wrapperTicks: number;
  readonly commandTicks: number;
}

function cpuTicks(): { own: number; children: number } {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  // After "pid (comm) ", field 0 is the state (stat field 3): utime 14, stime 15, cutime 16, cstime 17.
  return {
    own: (fields[11] ?? 0) + (fields[12] ?? 0),
    children: (fields[13] ?? 0) + (fields[14] ?? 0),
  };
}

function runPlain(command: string, args: readonly string[], onSpawn: () => void) {
  return new Promise<{ status: number; signal: NodeJS.Signals | null }>((resolve, reject) => {
    const child = spawn(command, args, { stdio: 'inherit' });
    child.once('spawn', onSpawn);
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve({ status: code ?? 128, signal }));
  });
}

async function main(): Promise<void> {
  const [report, pool, separator, command, ...args] = process.argv.slice(2);
  if (report === undefined || pool === undefined || separator !== '--' || command === undefined) {
    console.error('usage: builds-wrapper REPORT POOL|- -- CMD [ARGS...]');
    process.exit(2);
  }
  let tokenNs = 0n;
  const started = (): void => {
    tokenNs = process.hrtime.bigint();
  };
  let result: { status: number; signal: NodeJS.Signals | null };
  if (pool === '-') {
    result = await runPlain(command, args, started);
  } else {
    const jobserver = Jobserver.fromAuth({ kind: 'fifo', path: pool }, { implicitSlot: false });
    try {
      result = await runWithTokenResult(command, args, {
        jobserver,
        tokens: 1,
        style: 'auto',
        onSpawn: started,
      });
    } finally {
      jobserver.close();
    }
  }
  const endNs = process.hrtime.bigint();
  const ticks = cpuTicks();
  const line: WrapperReport = {
    tokenNs: String(tokenNs),
    endNs: String(endNs),
    status: result.status,
    signal: result.signal,
    wrapperTicks: ticks.own,
    commandTicks: ticks.children,
  };
  writeFileSync(report, `${JSON.stringify(line)}\n`);
  process.exitCode = result.status;
}

await main();
