/**
 * `pnpm bench builds`'s Markdown and SVG charts, from its result (fresh, or
 * read back from bench/results/builds.json by `pnpm bench charts`).
 */

import { barsSvg, timelineSvg } from '@steve/charts';
import {
  BUILDS,
  BUILD_LABELS,
  type BuildsBenchResult,
  MEMORY_NOTE,
  SCENARIOS,
  SCENARIO_LABELS,
  type Scenario,
  type ScenarioRun,
} from './builds.js';
import type { Spread } from './rounds.js';

const s1 = (x: number): string => x.toFixed(1);
const s2 = (x: number): string => x.toFixed(2);
const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const pct2 = (x: number): string => `${(x * 100).toFixed(2)}%`;
const ms0 = (x: number): string => Math.round(x).toLocaleString('en-US');
/** median [min–max] */
const range = (s: Spread, f: (x: number) => string): string =>
  `${f(s.median)} [${f(s.min)}–${f(s.max)}]`;

/** The run of `scenario` whose makespan is nearest its median (the one the timeline shows). */
export function medianRun(result: BuildsBenchResult, scenario: Scenario): ScenarioRun {
  const runs = result.runs.filter((r) => r.scenario === scenario);
  const median = result.summary[scenario].makespanSeconds.median * 1000;
  let best = runs[0];
  if (best === undefined) throw new Error(`no runs of ${scenario}`);
  for (const run of runs)
    if (Math.abs(run.makespanMs - median) < Math.abs(best.makespanMs - median)) best = run;
  return best;
}

export function buildsMarkdown(r: BuildsBenchResult): string {
  const st = r.settings;
  const n = st.jobs;
  const stagger = BUILDS.map((_, i) => s1((i * st.staggerMs) / 1000)).join(', ');
  const header = `| | ${SCENARIOS.map((s) => SCENARIO_LABELS[s]).join(' | ')} |`;
  const rule = `|---|${SCENARIOS.map(() => '---:').join('|')}|`;
  const row = (name: string, cell: (s: Scenario) => string): string =>
    `| ${name} | ${SCENARIOS.map(cell).join(' | ')} |`;
  const daemonCell = (
    s: Scenario,
    f: (d: NonNullable<BuildsBenchResult['summary'][Scenario]['daemon']>) => string,
  ): string => {
    const d = r.summary[s].daemon;
    return d === null ? '—' : f(d);
  };
  const memory = r.summary.steveMemory.daemon?.minMemoryAvailMiB;
  const lines: string[] = [
    `Machine: ${r.machine.cpus} CPUs, ${ms0(r.machine.memTotalMiB)} MiB. Load average before ${r.machine.loadAverageBefore.map(s2).join(' / ')}, after ${r.machine.loadAverageAfter.map(s2).join(' / ')}.`,
    '',
    `Tools: ${Object.values(r.tools).join('; ')}.`,
    '',
    `Five builds, generated in a fresh directory for every run and started ${stagger} s after the first: ${BUILD_LABELS.make43} (${st.cFiles} units of ${st.cFunctions} functions at -O2, and a link), ${BUILD_LABELS.make441} (the same project), ${BUILD_LABELS.cargo} (${st.crates} crates: a build script compiled and run, sleeping ${st.buildScriptSeconds} s, and a library of ${st.rustItems} structs each; one codegen unit, no incremental), ${BUILD_LABELS.ninja} (the same C project), ${BUILD_LABELS.pytest} (${st.tests} CPU-bound tests, -n ${n}). N = ${n}.`,
    '',
    `Scenarios, interleaved: ${st.rounds} rounds, each running every scenario once, the order rotating. ${SCENARIO_LABELS.own}: make -j${n}, cargo -j${n}, ninja -j${n}, pytest -n ${n} without the plugin. ${SCENARIO_LABELS.fifo}: a named pipe holding ${n} tokens. ${SCENARIO_LABELS.steve}: steve-daemon -j ${n} (nice ${st.daemonNice}, as its packaged services run it), the FUSE file for make, cargo and pytest, its fifo front for ninja. ${SCENARIO_LABELS.steveMemory}: the same with --min-memory-avail${memory ? ` ${ms0(memory.median)} MiB (median; min–max ${ms0(memory.min)}–${ms0(memory.max)})` : ''}. In (b)-(d) each build's top level runs under the same wrapper (@steve/jobserver-client's runWithTokenResult, as \`stevie -- CMD\`) and holds one token, so its implicit slot counts; only the pool path differs. make gets no -j there (a -j on the command line leaves the jobserver), cargo keeps -j ${n} as an upper bound, pytest loads -p steve_jobserver.`,
    '',
    `What (d) does here: ${MEMORY_NOTE}`,
    '',
    "steve's fifo front used to stall under a limit; that is fixed in the daemon, and the bench no longer works around it.",
    '',
    `Jobs at once come from the jobs' own logs: every compile and link (a \`stamp\` prefix in the Makefile and build.ninja), every rustc (RUSTC_WRAPPER=stamp), every build-script run (its own stamps, CLOCK_REALTIME moved onto the monotonic clock), every pytest collection and test (conftest.py hooks) logs its start and end on CLOCK_MONOTONIC. Make, cargo, ninja and pytest themselves are not jobs. The mean is job-time over the makespan.`,
    '',
    `### Per scenario: median [min–max] over ${st.rounds} rounds`,
    '',
    header,
    rule,
    row('makespan, s', (s) => range(r.summary[s].makespanSeconds, s2)),
    row(
      'peak jobs at once (max of rounds)',
      (s) => `**${r.summary[s].peakJobs.max}** (${r.summary[s].peakJobs.perRound.join(', ')})`,
    ),
    row('mean jobs at once', (s) => range(r.summary[s].meanJobs, s2)),
    row('1-min load average: max sampled', (s) => range(r.summary[s].load1Max, s2)),
    row('1-min load average: mean sampled', (s) => range(r.summary[s].load1Mean, s2)),
    row('runnable tasks: mean sampled', (s) => range(r.summary[s].runnableMean, s2)),
    row("builds' CPU, s", (s) => range(r.summary[s].buildCpuSeconds, s1)),
    row('other work on the machine (share of all CPUs)', (s) => range(r.summary[s].otherWork, pct)),
    row('tokens granted by the daemon', (s) => daemonCell(s, (d) => range(d.grants, ms0))),
    row('daemon CPU s per 1,000 tokens', (s) =>
      daemonCell(
        s,
        (d) =>
          `${range(d.rawCpuSecondsPer1000Tokens, (x) => x.toFixed(3))} (without sampling ${d.cpuSecondsPer1000Tokens.median.toFixed(3)})`,
      ),
    ),
    row("daemon CPU / builds' CPU", (s) =>
      daemonCell(
        s,
        (d) =>
          `${range(d.rawShareOfBuildCpu, pct2)} (without sampling ${pct2(d.shareOfBuildCpu.median)})`,
      ),
    ),
    row('time with a pool token unused while someone waited, s', (s) =>
      s === 'own'
        ? 'no pool'
        : s === 'fifo'
          ? 'not observable'
          : daemonCell(s, (d) => range(d.idleWhileWaitingSeconds, s2)),
    ),
    row('token-seconds unused while someone waited', (s) =>
      s === 'own'
        ? 'no pool'
        : s === 'fifo'
          ? 'not observable'
          : daemonCell(s, (d) => range(d.idleTokenSeconds, s2)),
    ),
    row("same, by the daemon's `available` gauge, s", (s) =>
      daemonCell(s, (d) => range(d.idleByAvailableSeconds, s2)),
    ),
    row('share of samples held down by the memory limit', (s) =>
      daemonCell(s, (d) => range(d.limitedByMemoryShare, pct)),
    ),
    row('lowest MemAvailable sampled, MiB', (s) => ms0(r.summary[s].memAvailableMinMiB)),
    '',
    `Load average: /proc/loadavg's 1-minute figure, read every 100 ms during each run; it trails by a minute, so each run also carries some of the run before it. Runnable tasks: the same file's fourth field (the reader included). Other work: busy time in /proc/stat minus the CPU time of the bench, its builds and the daemon, over all CPUs (clock ticks: coarse). Daemon CPU: utime + stime from /proc/PID/stat between the first build's start and the last one's end, per token granted (reads and poll reservations, the fifo front's own acquisitions for ninja included) and against the builds' CPU (cutime + cstime of the bench: every build process, reaped). The daemons of (c) and (d) are started once, before the first round, and serve every round, as a system service would; each run's figures are differences over that run. Our \`metrics\` request every ${r.sampling.everyMs} ms is part of the daemon's CPU here; on the warmed-up daemon with nothing else to do one request cost ${r.sampling.cpuUsPerRequest.toFixed(1)} µs, and "without sampling" takes that off per request (an estimate: a daemon that is awake anyway pays less for a request than an idle one woken for it).`,
    '',
    "Unused tokens while someone waits: steve's control socket samples (`metrics`, every " +
      `${r.sampling.everyMs} ms: steve_tokens_out, steve_waiters), a token counted unused when fewer than N are out while a read or a poll waits (a token parked in the fifo front's pipe for ninja counts as out); the event stream (\`stevie events --json\`) carries grants and returns with the tokens out, but no waiter count, so it alone cannot say when someone waits. The daemon's own \`available\` gauge (capacity - out) is 0 while a limit holds the capacity at --min-jobs, so it does not see the tokens a limit holds back. For the kernel fifo this cannot be observed: a pipe tells nobody who is blocked in read(2) or poll(2) on it, and the job logs show jobs, not the wishes of make, cargo, ninja or pytest for one more.`,
    '',
    `### Time to first token, ms: median [min–max]`,
    '',
    `From the build's start (its top level spawned) until its command ran with its first token in hand; in (a) there is no token, and it is the wrapper's own start-up. The first job followed it by:`,
    '',
    `| build | ${SCENARIOS.map((s) => `${SCENARIO_LABELS[s]}: first token`).join(' | ')} | ${SCENARIOS.map((s) => `${SCENARIO_LABELS[s]}: first job`).join(' | ')} |`,
    `|---|${SCENARIOS.map(() => '---:').join('|')}|${SCENARIOS.map(() => '---:').join('|')}|`,
    ...BUILDS.map(
      (b) =>
        `| ${BUILD_LABELS[b]} | ${SCENARIOS.map((s) => range(r.summary[s].firstTokenMs[b], ms0)).join(' | ')} | ${SCENARIOS.map((s) => range(r.summary[s].firstJobMs[b], ms0)).join(' | ')} |`,
    ),
    '',
    `### Each build's own duration, s: median [min–max]`,
    '',
    `| build | ${SCENARIOS.map((s) => SCENARIO_LABELS[s]).join(' | ')} |`,
    rule,
    ...BUILDS.map(
      (b) =>
        `| ${BUILD_LABELS[b]} | ${SCENARIOS.map((s) => range(r.summary[s].buildSeconds[b], s2)).join(' | ')} |`,
    ),
    '',
    `### Each build's CPU, s: median [min–max]`,
    '',
    "The build's command and everything it ran (its top level's cutime + cstime); its top-level wrapper's own CPU after the slash.",
    '',
    `| build | ${SCENARIOS.map((s) => SCENARIO_LABELS[s]).join(' | ')} |`,
    rule,
    ...BUILDS.map(
      (b) =>
        `| ${BUILD_LABELS[b]} | ${SCENARIOS.map((s) => `${range(r.summary[s].buildCpu[b], s2)} / ${s2(r.summary[s].wrapperCpu[b].median)}`).join(' | ')} |`,
    ),
    '',
    '### Rounds',
    '',
    `| round | order | ${SCENARIOS.map((s) => `${SCENARIO_LABELS[s]} s`).join(' | ')} | (c) / (b) | (d) / (b) | peaks | tokens back |`,
    `|---|---|${SCENARIOS.map(() => '---:').join('|')}|---:|---:|---|---|`,
  ];
  for (let round = 1; round <= st.rounds; round++) {
    const runs = r.runs.filter((x) => x.round === round).sort((a, b) => a.position - b.position);
    const of = (s: Scenario): ScenarioRun | undefined => runs.find((x) => x.scenario === s);
    const makespan = (s: Scenario): number => (of(s)?.makespanMs ?? NaN) / 1000;
    const back = runs
      .filter((x) => x.tokensBack !== null)
      .map((x) => `${x.scenario} ${x.tokensBack ? 'yes' : '**no**'}`)
      .join(', ');
    lines.push(
      `| ${round} | ${runs.map((x) => x.scenario).join(', ')} | ${SCENARIOS.map((s) => s2(makespan(s))).join(' | ')} | ${(makespan('steve') / makespan('fifo')).toFixed(3)} | ${(makespan('steveMemory') / makespan('fifo')).toFixed(3)} | ${SCENARIOS.map((s) => of(s)?.peakJobs ?? '?').join(' / ')} | ${back} |`,
    );
  }
  const ratio = r.ratios;
  lines.push(
    '',
    `(c) / (b) per round: median ${ratio.steveVsFifo.median.toFixed(3)} (IQR ${ratio.steveVsFifo.q1.toFixed(3)}–${ratio.steveVsFifo.q3.toFixed(3)}, min–max ${ratio.steveVsFifo.min.toFixed(3)}–${ratio.steveVsFifo.max.toFixed(3)}); (d) / (b): median ${ratio.memoryVsFifo.median.toFixed(3)} (min–max ${ratio.memoryVsFifo.min.toFixed(3)}–${ratio.memoryVsFifo.max.toFixed(3)}); (a) / (b): median ${ratio.ownVsFifo.median.toFixed(3)} (min–max ${ratio.ownVsFifo.min.toFixed(3)}–${ratio.ownVsFifo.max.toFixed(3)}).`,
    '',
    '### Verdicts',
    '',
    ...r.verdicts.map((v) => `- ${v.what}: **${v.verdict}** (${v.detail})`),
    '',
  );
  return lines.join('\n');
}

/** File name (without directory) to SVG text: a timeline per scenario and the makespans. */
export async function buildsCharts(result: BuildsBenchResult): Promise<Map<string, string>> {
  const charts = new Map<string, string>();
  const n = result.settings.jobs;
  for (const scenario of SCENARIOS) {
    const run = medianRun(result, scenario);
    charts.set(
      `builds-jobs-${scenario}.svg`,
      await timelineSvg({
        title: `${SCENARIO_LABELS[scenario]}: jobs running at once (round ${run.round}, makespan ${s1(run.makespanMs / 1000)} s, the median one)`,
        yLabel: 'jobs running',
        xLabel: 'seconds since the first build started',
        stacked: true,
        step: true,
        series: BUILDS.map((build) => ({
          name: BUILD_LABELS[build],
          points: [
            { tMs: 0, value: 0 },
            ...run.timeline[build].map(([tMs, value]) => ({ tMs, value })),
          ],
        })),
        limit: { value: n, label: `N = ${n}` },
      }),
    );
  }
  charts.set(
    'builds-makespan.svg',
    await barsSvg({
      title: `makespan of all five builds (s): median of ${result.settings.rounds} interleaved rounds, whisker min-max`,
      yLabel: 'seconds',
      valueFormat: '.3~r',
      bars: SCENARIOS.map((scenario) => {
        const s = result.summary[scenario].makespanSeconds;
        return { label: SCENARIO_LABELS[scenario], value: s.median, low: s.min, high: s.max };
      }),
    }),
  );
  return charts;
}
