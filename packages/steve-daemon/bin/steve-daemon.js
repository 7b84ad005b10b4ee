#!/usr/bin/env node
// Before anything loads: Node's default SIGUSR1 handler opens the inspector
// (code execution as the daemon's user); the daemon uses SIGUSR1 for its report.
process.on('SIGUSR1', () => {});
const { hideBin } = await import('yargs/helpers');
const { main } = await import('../dist/cli/steve-daemon.js');

await main(hideBin(process.argv));
