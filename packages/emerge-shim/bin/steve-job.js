#!/usr/bin/env node
import { main } from '../dist/cli/steve-job.js';

await main(process.argv.slice(2));
