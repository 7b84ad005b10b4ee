#!/usr/bin/env node
import { hideBin } from 'yargs/helpers';
import { main } from '../dist/cli/steve-daemon.js';

await main(hideBin(process.argv));
