#!/usr/bin/env node
/**
 * `pnpm bench [sched|tokens]`: run benchmarks, print Markdown, write JSON and
 * Markdown under bench/results/.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clientMarkdown, runClientBench } from './client.js';
import { runSchedBench, schedMarkdown } from './sched.js';
import { runTokensBench, tokensMarkdown } from './tokens.js';

const resultsDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');
const which = process.argv.slice(2).filter((a) => a !== '--');
const known = ['sched', 'tokens', 'client'];
const selected = which.length === 0 ? known : which;

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
    const result = await runTokensBench();
    const markdown = tokensMarkdown(result);
    console.log(markdown);
    writeFileSync(join(resultsDir, 'tokens.json'), `${JSON.stringify(result, null, 2)}\n`);
    writeFileSync(join(resultsDir, 'tokens.md'), `# pnpm bench tokens\n\n${markdown}`);
    console.log(`wrote ${join('bench', 'results', 'tokens.json')} and tokens.md`);
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
