// `pnpm bench builds`'s verdicts and report, on a made-up result: a
// verdict follows the numbers (a peak above N under a shared pool misses,
// the daemon's share is judged with all of its CPU), the timeline shows the
// round nearest the median makespan, and the report says the kernel fifo's
// idle tokens cannot be observed instead of printing a number for them.
import { describe, expect, it } from 'vitest';
import {
  BUILDS,
  type BuildName,
  type BuildsBenchResult,
  DEFAULT_BUILDS_SETTINGS,
  SCENARIOS,
  type Scenario,
  type ScenarioRun,
  type ScenarioSummary,
  buildsVerdicts,
} from '../src/builds.js';
import { withinSummary } from '../src/builds-math.js';
import { buildsMarkdown, medianRun } from '../src/builds-report.js';
import { spread } from '../src/rounds.js';

const perBuild = (value: number): Record<BuildName, ReturnType<typeof spread>> =>
  Object.fromEntries(BUILDS.map((b) => [b, spread([value])])) as Record<
    BuildName,
    ReturnType<typeof spread>
  >;

function summary(
  peaks: number[],
  makespans: number[],
  daemon: { raw: number; corrected: number } | null,
): ScenarioSummary {
  return {
    makespanSeconds: spread(makespans),
    peakJobs: { max: Math.max(...peaks), perRound: peaks },
    meanJobs: spread([3]),
    load1Max: spread([4]),
    load1Mean: spread([3.5]),
    runnableMean: spread([4]),
    buildCpuSeconds: spread([60]),
    otherWork: spread([0]),
    memAvailableMinMiB: 20_000,
    firstTokenMs: perBuild(100),
    firstJobMs: perBuild(150),
    buildSeconds: perBuild(10),
    buildCpu: perBuild(6),
    wrapperCpu: perBuild(0.1),
    daemon:
      daemon === null
        ? null
        : {
            cpuSecondsPer1000Tokens: spread([1]),
            rawCpuSecondsPer1000Tokens: spread([1.2]),
            shareOfBuildCpu: spread([daemon.corrected]),
            rawShareOfBuildCpu: spread([daemon.raw]),
            grants: spread([300]),
            idleWhileWaitingSeconds: spread([0.25]),
            idleTokenSeconds: spread([0.5]),
            idleByAvailableSeconds: spread([0]),
            limitedByMemoryShare: spread([0]),
            minMemoryAvailMiB: null,
          },
  };
}

const settings = { ...DEFAULT_BUILDS_SETTINGS, rounds: 3, jobs: 4 };
const ratios = withinSummary([1.01, 1.0, 1.05], 1.02);

describe('buildsVerdicts', () => {
  const sums: Record<Scenario, ScenarioSummary> = {
    own: summary([20, 19, 21], [30, 31, 32], null),
    fifo: summary([4, 5, 4], [30, 30, 30], null),
    steve: summary([4, 4, 4], [30, 30, 31], { raw: 0.004, corrected: 0.003 }),
    steveMemory: summary([2, 3, 2], [40, 41, 42], { raw: 0.012, corrected: 0.008 }),
  };
  const verdicts = buildsVerdicts(settings, sums, ratios);
  const find = (text: string) => {
    const line = verdicts.find((v) => v.what.includes(text));
    if (line === undefined) throw new Error(`no verdict on ${text}`);
    return line;
  };

  it('a peak above N in any round of a shared pool misses; (a) is not judged', () => {
    expect(find('<= 4 under (b)').verdict).toBe('MISSED');
    expect(find('<= 4 under (b)').detail).toContain('4, 5, 4');
    expect(find('<= 4 under (c)').verdict).toBe('met');
    expect(find('<= 4 under (d)').verdict).toBe('met');
    expect(verdicts.some((v) => v.what.includes('(a)'))).toBe(false);
  });

  it('the makespan verdict is the one of the per-round ratios', () => {
    expect(find('makespan').verdict).toBe('met'); // median 1.01
    expect(find('makespan').detail).toContain('median 1.010');
  });

  it("the daemon's share is judged with all of its CPU, not the estimate without sampling", () => {
    expect(find("builds' CPU under (c)").verdict).toBe('met');
    // 1.2% with the sampling, 0.8% without: missed.
    expect(find("builds' CPU under (d)").verdict).toBe('MISSED');
  });
});

function run(scenario: Scenario, round: number, makespanMs: number): ScenarioRun {
  return {
    round,
    scenario,
    position: 1,
    makespanMs,
    peakJobs: 4,
    meanJobs: 3,
    load1: { max: 4, mean: 3, n: 10 },
    runnable: { max: 5, mean: 4, n: 10 },
    buildCpuSeconds: 60,
    otherWork: 0,
    memAvailableMinMiB: 20_000,
    builds: [],
    daemon: null,
    tokensBack: scenario === 'own' ? null : true,
    timeline: Object.fromEntries(BUILDS.map((b) => [b, [[0, 1] as const]])) as unknown as Record<
      BuildName,
      ReadonlyArray<readonly [number, number]>
    >,
  };
}

function result(): BuildsBenchResult {
  const makespans: Record<Scenario, number[]> = {
    own: [29, 35, 31],
    fifo: [20, 30, 40],
    steve: [20.6, 30.3, 40.2],
    steveMemory: [45, 60, 50],
  };
  const runs = SCENARIOS.flatMap((s) => makespans[s].map((m, i) => run(s, i + 1, m * 1000)));
  const sums = Object.fromEntries(
    SCENARIOS.map((s) => [
      s,
      summary([4, 4, 4], makespans[s], s === 'steve' ? { raw: 0.004, corrected: 0.003 } : null),
    ]),
  ) as Record<Scenario, ScenarioSummary>;
  const steveVsFifo = withinSummary([1.03, 1.01, 1.005], 1.02);
  return {
    settings,
    machine: {
      cpus: 2,
      memTotalMiB: 1024,
      loadAverageBefore: [0, 0, 0],
      loadAverageAfter: [1, 1, 1],
    },
    tools: { make: 'GNU Make 4.3' },
    sampling: { everyMs: 250, cpuUsPerRequest: 400 },
    runs,
    summary: sums,
    ratios: { steveVsFifo, memoryVsFifo: spread([1.5]), ownVsFifo: spread([1]) },
    verdicts: buildsVerdicts(settings, sums, steveVsFifo),
  };
}

describe('medianRun', () => {
  it('picks the run nearest the median makespan, not the first or the last', () => {
    const r = result();
    expect(medianRun(r, 'fifo').round).toBe(2); // 30 s of 20, 30, 40
    expect(medianRun(r, 'own').round).toBe(3); // 31 s of 29, 35, 31
    expect(medianRun(r, 'steveMemory').round).toBe(3); // 50 s of 45, 60, 50
  });
});

describe('buildsMarkdown', () => {
  const text = buildsMarkdown(result());

  it("says the kernel fifo's idle tokens cannot be observed", () => {
    const row = text.split('\n').find((l) => l.startsWith('| time with a pool token unused'));
    expect(row).toBeDefined();
    expect(row).toContain('| no pool | not observable | 0.25');
  });

  it('prints each round with its own (c) / (b) ratio', () => {
    const round1 = text.split('\n').find((l) => l.startsWith('| 1 |'));
    expect(round1).toContain('| 1.030 |'); // 20.6 / 20
    const round3 = text.split('\n').find((l) => l.startsWith('| 3 |'));
    expect(round3).toContain('| 1.005 |'); // 40.2 / 40
  });

  it('lists the verdicts as computed', () => {
    expect(text).toContain(
      'within 2.0% of (b) one kernel fifo (median of per-round ratios): **met**',
    );
  });
});
