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
import { writeFileSync } from 'node:fs';
import { Jobserver, runWithTokenResult } from '@steve/jobserver-client';

/** What the harness reads back (nanoseconds as decimal strings: beyond 2^53 after long uptimes). */
export interface WrapperReport {
  readonly tokenNs: string;
  readonly endNs: string;
  readonly status: number;
  readonly signal: string | null;
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
  const line: WrapperReport = {
    tokenNs: String(tokenNs),
    endNs: String(process.hrtime.bigint()),
    status: result.status,
    signal: result.signal,
  };
  writeFileSync(report, `${JSON.stringify(line)}\n`);
  process.exitCode = result.status;
}

await main();
