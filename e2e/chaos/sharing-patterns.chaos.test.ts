// `pnpm test:chaos`: real processes through the FUSE front, sharing the
// jobserver every way real builds do (blocking, O_NONBLOCK, poll, three
// threads on one description, forked children holding the parent's token
// after it exits, one description shared by parent and child, release on
// another descriptor), under SIGKILL, SIGSTOP/SIGCONT, SIGINT and runtime job
// changes, and the daemon itself killed and restarted. One line per scenario;
// the figures go to bench/results/chaos.json.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { PYTHON, REPO, type RunningDaemon, startDaemon, waitFor } from '../helpers/daemon.js';
import { formatResult, runScenario, type Scenario, type ScenarioResult } from './runner.js';

let daemon: RunningDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

const results: ScenarioResult[] = [];
afterAll(() => {
  const dir = join(REPO, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'chaos.json'), `${JSON.stringify(results, null, 2)}\n`);
});

async function scenario(s: Scenario): Promise<ScenarioResult> {
  daemon = await startDaemon(['-j', String(s.jobs)]);
  return measure(daemon, s);
}

async function measure(running: RunningDaemon, s: Scenario): Promise<ScenarioResult> {
  const result = await runScenario(running, s);
  results.push(result);
  console.log(`${formatResult(result)}; slowest reclaim: ${result.slowestReclaim}`);
  expect(result.clientErrors).toEqual([]);
  expect(result.maxOverIssue, result.overIssueReport).toBe(0);
  expect(result.hung).toBe(0);
  expect(result.lost).toBe(0);
  expect(result.stevieFailures).toBe(0);
  expect(result.decreaseSettleMs?.unsettled ?? 0).toBe(0);
  return result;
}

describe('chaos: FUSE front', () => {
  it('every sharing pattern at once, -j4', async () => {
    const r = await scenario({
      name: 'patterns',
      jobs: 4,
      clientsPerMode: 4,
      jobsPerClient: 8,
      seed: 1,
    });
    expect(r.grants).toBeGreaterThan(200);
  });

  it('SIGKILL, SIGSTOP/SIGCONT and SIGINT of clients holding, blocked and polling, -j4', async () => {
    const r = await scenario({
      name: 'faults',
      jobs: 4,
      clientsPerMode: 5,
      jobsPerClient: 12,
      faultEveryMs: 120,
      seed: 2,
    });
    expect(r.faults.kill + r.faults.interrupt).toBeGreaterThan(5);
    expect(r.reclaimMs.max).toBeLessThan(3000);
  });

  it('runtime job changes 8 -> 2 -> 16 -> 4 while ~100 clients run', async () => {
    const r = await scenario({
      name: 'job-changes',
      jobs: 8,
      clientsPerMode: 14,
      jobsPerClient: 4,
      jobChanges: [2, 16, 4, 8, 2, 16, 4],
      jobChangeEveryMs: 400,
      seed: 3,
    });
    expect(r.clients).toBeGreaterThanOrEqual(98);
  });

  it.each(['SIGKILL', 'SIGTERM'] as const)(
    'the daemon %s with clients blocked in read: they end within 3 s, and a new daemon serves',
    async (signal) => {
      daemon = await startDaemon(['-j', '1']);
      const path = daemon.jobserverPath;
      const holder = spawn(
        PYTHON,
        [
          '-c',
          'import os,sys,time; fd=os.open(sys.argv[1], os.O_RDWR); os.read(fd,1); print("held", flush=True); time.sleep(60)',
          path,
        ],
        {
          stdio: ['ignore', 'pipe', 'ignore'],
        },
      );
      let held = '';
      holder.stdout.setEncoding('utf8').on('data', (c: string) => (held += c));
      await waitFor('the holder', () => held.includes('held'));
      const readers = Array.from({ length: 4 }, () =>
        spawn(
          PYTHON,
          ['-c', 'import os,sys; fd=os.open(sys.argv[1], os.O_RDWR); os.read(fd,1)', path],
          {
            stdio: 'ignore',
          },
        ),
      );
      const gone = readers.map(
        (r) => new Promise<number>((resolve) => r.on('exit', () => resolve(Date.now()))),
      );
      await waitFor('4 blocked readers', () => / waiting 4 /.test(daemon?.status() ?? ''));
      const killedAt = Date.now();
      daemon.process.kill(signal);
      const ends = await Promise.all(gone);
      holder.kill('SIGKILL');
      await daemon.stop().catch(() => null); // unmounts what a SIGKILLed daemon left
      daemon = null;
      const slowestMs = Math.max(...ends.map((t) => t - killedAt));
      console.log(`daemon-${signal}: 4 blocked readers ended in ${slowestMs} ms`);
      results.push({
        scenario: `daemon-${signal}`,
        clients: 5,
        grants: 1,
        faults: { kill: 1, stop: 0, interrupt: 0 },
        reclaimMs: { p50: slowestMs, p99: slowestMs, max: slowestMs },
        slowestReclaim: `blocked readers: ${slowestMs} ms`,
        maxHeld: 1,
        maxOverIssue: 0,
        hung: slowestMs > 3000 ? 4 : 0,
        lost: 0,
        stevieFailures: 0,
        clientErrors: [],
        durationMs: slowestMs,
      });
      expect(slowestMs).toBeLessThan(3000);
      // A new daemon serves the whole pool again.
      daemon = await startDaemon(['-j', '2']);
      const again = spawn(PYTHON, [
        '-c',
        'import os,sys; fd=os.open(sys.argv[1], os.O_RDWR); a=os.read(fd,1); b=os.read(fd,1); os.write(fd, a+b)',
        daemon.jobserverPath,
      ]);
      expect(await new Promise((resolve) => again.on('exit', resolve))).toBe(0);
      await waitFor('all back', () => daemon?.out() === 0);
    },
  );
});

describe('chaos: the fifo fronts', () => {
  it('shared --fifo and FUSE clients on one -j4 pool, fifo clients killed: never more than 4, all back once they exit', async () => {
    daemon = await startDaemon(['-j', '4'], { fifo: { prefetch: 1 } });
    const r = await measure(daemon, {
      name: 'shared-fifo',
      jobs: 4,
      clientsPerMode: 3,
      modes: ['blocking', 'poll', 'threads'],
      fifoModes: ['blocking', 'nonblocking', 'poll', 'threads', 'shared', 'crossfd', 'fork'],
      maxFifoKills: 3,
      jobsPerClient: 8,
      faultEveryMs: 150,
      jobChanges: [2, 6, 4],
      jobChangeEveryMs: 700,
      seed: 4,
    });
    expect(r.faults.kill + r.faults.interrupt).toBeGreaterThan(3);
  });

  it('real ninja 1.13.2 builds through stevie (a private fifo each) and FUSE clients on -j4, ninja SIGKILLed and interrupted', async () => {
    daemon = await startDaemon(['-j', '4']);
    const r = await measure(daemon, {
      name: 'private-fifos',
      jobs: 4,
      clientsPerMode: 2,
      modes: ['blocking', 'nonblocking', 'poll', 'threads', 'fork'],
      ninjaBuilds: 6,
      jobsPerClient: 10,
      faultEveryMs: 200,
      seed: 5,
    });
    expect(r.faults.kill + r.faults.interrupt).toBeGreaterThan(2);
    const fifos = join(daemon.dir, 'steve-fifos');
    expect(existsSync(fifos) ? readdirSync(fifos) : []).toEqual([]);
  });
});
