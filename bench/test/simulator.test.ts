// The simulator's scenarios run on a virtual clock, so their scheduling
// results are deterministic: these tests pin the targets of the scheduler
// issue (not the throughput, which is a real-clock benchmark).
import { describe, expect, it } from 'vitest';
import { runScenarios } from '../src/sched.js';
import { flatJobs } from '../src/sim/build.js';
import { Random } from '../src/sim/loop.js';
import { simulate } from '../src/sim/simulate.js';

describe('scheduler scenarios (virtual clock)', () => {
  const scenarios = runScenarios();
  const byId = new Map(scenarios.map((s) => [s.id, s]));

  it('every steve row meets its target', () => {
    for (const scenario of scenarios) {
      for (const row of scenario.rows) {
        if (row.verdict !== 'reference')
          expect(`${scenario.id} ${row.pool}: ${row.verdict}`).toBe(
            `${scenario.id} ${row.pool}: met`,
          );
      }
    }
  });

  it('pollers get about half the grants with reservations and almost none from a plain pipe', () => {
    const rows = byId.get('pollers-vs-blockers')?.rows ?? [];
    const share = (pool: string): number => rows.find((r) => r.pool === pool)?.pollerShare ?? -1;
    expect(share('steve least-held')).toBeGreaterThanOrEqual(0.45);
    expect(share('steve fifo')).toBeGreaterThanOrEqual(0.45);
    expect(share('plain pipe')).toBeLessThan(0.05);
  });

  it('a crashed client loses tokens in a plain pipe but not in steve', () => {
    const rows = byId.get('crash')?.rows ?? [];
    expect(rows.find((r) => r.pool === 'plain pipe')?.lostTokens).toBeGreaterThan(0);
    expect(rows.find((r) => r.pool === 'steve least-held')?.lostTokens).toBe(0);
  });

  it('never has more tokens out than -j', () => {
    for (const scenario of scenarios) {
      for (const row of scenario.rows) expect(row.maxOut).toBeLessThanOrEqual(row.jobs);
    }
  });
});

describe('the simulator itself', () => {
  it('one build alone on -j4 runs four jobs at a time and finishes at the lower bound', () => {
    const random = new Random(9);
    const result = simulate({
      builds: [
        { name: 'solo', behaviour: 'blocking', startMs: 0, jobs: flatJobs(random, 100, 1000) },
      ],
      pool: { kind: 'steve', config: { jobs: 4 } },
    });
    expect(result.maxOut).toBe(4);
    expect(result.makespanMs / result.lowerBoundMs).toBeLessThan(1.1);
    expect(result.builds[0]?.doneAtMs).not.toBeNull();
  });

  it('is deterministic', () => {
    const run = () =>
      simulate({
        builds: [
          { name: 'a', behaviour: 'poller', startMs: 0, jobs: flatJobs(new Random(5), 50, 500) },
          { name: 'b', behaviour: 'lazy', startMs: 100, jobs: flatJobs(new Random(6), 50, 500) },
        ],
        pool: { kind: 'steve', config: { jobs: 3 } },
      });
    expect(run()).toEqual(run());
  });
});
