#!/usr/bin/env node
/**
 * `pnpm bench [sched|tokens|client|builds|cuse|charts]`: run benchmarks, print Markdown, write JSON and
 * Markdown under bench/results/.
 */

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tokensCharts } from './charts.js';
import { type BuildsBenchResult, runBuildsBench } from './builds.js';
import { buildsCharts, buildsMarkdown } from './builds-report.js';
import { clientMarkdown, runClientBench } from './client.js';
import { cuseCommand } from './cuse.js';
import { runSchedBench, schedMarkdown } from './sched.js';
import { type TokensBenchResult, runTokensBench, tokensMarkdown } from './tokens.js';

const resultsDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');
const which = process.argv.slice(2).filter((a) => a !== '--');
const known = ['sched', 'tokens', 'client', 'builds', 'cuse', 'charts'];
// `charts` redraws the SVGs from the JSON results already there; `cuse` boots
// a qemu VM (e2e/cuse-vm/run.sh), so it runs only when named.
const selected = which.length === 0 ? known.filter((n) => n !== 'charts' && n !== 'cuse') : which;

async function writeCharts(charts: Map<string, string>): Promise<void> {
  for (const [file, svg] of charts) writeFileSync(join(resultsDir, file), svg);
  console.log(`wrote ${[...charts.keys()].map((f) => join('bench', 'results', f)).join(', ')}`);
}

for (const name of selected) {
  if (!known.includes(name)) {
    console.error(`unknown benchmark '${name}': choose from ${known.join(', ')}`);
    process.exit(2);
  }
}

mkdirSync(resultsDir, { recursive: true });
for (const name of selected) {
  if (name === 'sched') {
    const result = runSchedBench();
    const markdown = schedMarkdown(result);
    console.log(markdown);
    writeFileSync(join(resultsDir, 'sched.json'), `${JSON.stringify(result, null, 2)}\n`);
    writeFileSync(join(resultsDir, 'sched.md'), `# pnpm bench sched\n\n${markdown}`);
    console.log(`wrote ${join('bench', 'results', 'sched.json')} and sched.md`);
  }
  if (name === 'tokens') {
    // Optional knobs for a quick look: BENCH_TOKENS_ROUNDS=3 BENCH_TOKENS_SECONDS=1 ...
    const env = (name: string): number | undefined =>
      process.env[name] === undefined ? undefined : Number(process.env[name]);
    const knobs = {
      rounds: env('BENCH_TOKENS_ROUNDS'),
      secondsPerRound: env('BENCH_TOKENS_SECONDS'),
      wakeRounds: env('BENCH_TOKENS_WAKE_ROUNDS'),
      wakeSamples: env('BENCH_TOKENS_WAKE_SAMPLES'),
    };
    const result = await runTokensBench(
      Object.fromEntries(Object.entries(knobs).filter(([, v]) => v !== undefined)),
    );
    const markdown = tokensMarkdown(result);
    console.log(markdown);
    writeFileSync(join(resultsDir, 'tokens.json'), `${JSON.stringify(result, null, 2)}\n`);
    writeFileSync(join(resultsDir, 'tokens.md'), `# pnpm bench tokens\n\n${markdown}`);
    console.log(`wrote ${join('bench', 'results', 'tokens.json')} and tokens.md`);
    await writeCharts(await tokensCharts(result));
  }
  // Knobs: BENCH_CUSE_ROUNDS (7), BENCH_CUSE_SECONDS (2), BENCH_CUSE_WARMUP_SECONDS (10).
  if (name === 'cuse') await cuseCommand(resultsDir);
  if (name === 'charts') {
    const tokens = join(resultsDir, 'tokens.json');
    if (existsSync(tokens))
      await writeCharts(
        await tokensCharts(JSON.parse(readFileSync(tokens, 'utf8')) as TokensBenchResult),
      );
    const builds = join(resultsDir, 'builds.json');
    if (existsSync(builds))
      await writeCharts(
        await buildsCharts(JSON.parse(readFileSync(builds, 'utf8')) as BuildsBenchResult),
      );
  }
  if (name === 'builds') {
    // Knobs for a quick look: BENCH_BUILDS_ROUNDS=3 BENCH_BUILDS_C_FILES=4 BENCH_BUILDS_TESTS=8 ...
    const env = (name: string): number | undefined =>
      process.env[name] === undefined ? undefined : Number(process.env[name]);
    const knobs = {
      rounds: env('BENCH_BUILDS_ROUNDS'),
      jobs: env('BENCH_BUILDS_JOBS'),
      staggerMs: env('BENCH_BUILDS_STAGGER_MS'),
      cFiles: env('BENCH_BUILDS_C_FILES'),
      cFunctions: env('BENCH_BUILDS_C_FUNCTIONS'),
      crates: env('BENCH_BUILDS_CRATES'),
      buildScriptSeconds: env('BENCH_BUILDS_BUILD_SCRIPT_SECONDS'),
      rustItems: env('BENCH_BUILDS_RUST_ITEMS'),
      tests: env('BENCH_BUILDS_TESTS'),
      testIterations: env('BENCH_BUILDS_TEST_ITERATIONS'),
      memoryFraction: env('BENCH_BUILDS_MEMORY_FRACTION'),
      sampleMs: env('BENCH_BUILDS_SAMPLE_MS'),
      daemonNice: env('BENCH_BUILDS_DAEMON_NICE'),
      timeoutSeconds: env('BENCH_BUILDS_TIMEOUT_SECONDS'),
    };
    for (const [knob, value] of Object.entries(knobs))
      if (value !== undefined && !Number.isFinite(value)) {
        console.error(`bench builds: ${knob} from the environment is not a number`);
        process.exit(2);
      }
    const result = await runBuildsBench(
      Object.fromEntries(Object.entries(knobs).filter(([, v]) => v !== undefined)),
    );
    const markdown = buildsMarkdown(result);
    console.log(markdown);
    writeFileSync(join(resultsDir, 'builds.json'), `${JSON.stringify(result, null, 2)}\n`);
    writeFileSync(join(resultsDir, 'builds.md'), `# pnpm bench builds\n\n${markdown}`);
    console.log(`wrote ${join('bench', 'results', 'builds.json')} and builds.md`);
    await writeCharts(await buildsCharts(result));
  }
  if (name === 'client') {
    const result = await runClientBench();
    const markdown = clientMarkdown(result);
    console.log(markdown);
    writeFileSync(join(resultsDir, 'client.json'), `${JSON.stringify(result, null, 2)}\n`);
    writeFileSync(join(resultsDir, 'client.md'), `# pnpm bench client\n\n${markdown}`);
    console.log(`wrote ${join('bench', 'results', 'client.json')} and client.md`);
  }
}
