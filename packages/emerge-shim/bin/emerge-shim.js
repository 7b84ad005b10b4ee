#!/usr/bin/env node
import { main } from '../dist/cli/emerge-shim.js';

await main(process.argv.slice(2));
