#!/usr/bin/env node
import { main } from '../dist/cli/stevie.js';

await main(process.argv.slice(2));
