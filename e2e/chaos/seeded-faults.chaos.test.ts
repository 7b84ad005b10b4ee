// Each live chaos check catches the fault it is there for: the same runner
// as the real scenarios, against a real daemon, with one fault seeded in —
// a token kept out of the pool (as if the daemon skipped a reclaim), a
// client that never finishes, bytes forged into the shared fifo while its
// clients hold the pool (as if the pool over-issued; also the shared
// fifo's documented limit). The trace checks are shown the same way, on
// seeded traces, in invariants.chaos.test.ts.
import { afterEach, describe, expect, it } from 'vitest';
import { type RunningDaemon, startDaemon } from '../helpers/daemon.js';
import { formatResult, runScenario } from './runner.js';

let daemon: RunningDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

describe('chaos checks catch seeded faults in a live run', () => {
  it('lost: a token kept after every client exited', async () => {
    daemon = await startDaemon(['-j', '3']);
    const r = await runScenario(daemon, {
      name: 'seeded-lost',
      jobs: 3,
      clientsPerMode: 2,
      modes: ['blocking', 'poll'],
      jobsPerClient: 4,
      seed: 11,
      seededFault: 'token-kept',
    });
    console.log(formatResult(r));
    expect(r.lost).toBe(1);
    expect(r.hung).toBe(0);
    expect(r.maxOverIssue).toBe(0);
  });

  it('hung: a client that is still running at the deadline', async () => {
    daemon = await startDaemon(['-j', '2']);
    const r = await runScenario(daemon, {
      name: 'seeded-hung',
      jobs: 2,
      clientsPerMode: 1,
      modes: ['blocking', 'stuck'],
      jobsPerClient: 4,
      deadlineMs: 3000,
      seed: 12,
    });
    console.log(formatResult(r));
    expect(r.hung).toBe(1);
    expect(r.lost).toBe(0);
  });

  it('over-issue: bytes forged into the shared fifo while its clients hold the pool', async () => {
    daemon = await startDaemon(['-j', '3'], { fifo: { prefetch: 1 } });
    const r = await runScenario(daemon, {
      name: 'seeded-over-issue',
      jobs: 3,
      clientsPerMode: 3,
      modes: [],
      fifoModes: ['blocking', 'poll'],
      jobsPerClient: 12,
      seed: 13,
      seededFault: 'forged-fifo-bytes',
    });
    console.log(formatResult(r));
    expect(r.maxOverIssue).toBeGreaterThan(0);
    expect(r.hung).toBe(0);
  });
});
