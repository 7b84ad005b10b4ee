#!/usr/bin/env node
// Before anything loads: Node's default SIGUSR1 handler opens the inspector
// (code execution as the daemon's user); the daemon uses SIGUSR1 for its report.
process.on('SIGUSR1', () => {});
let main;
try {
  ({ main } = await import('../dist/cli/steve-daemon.js'));
} catch (error) {
  // A native addon that does not load says what to install or rebuild.
  process.stderr.write(`steve-daemon: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
const { hideBin } = await import('yargs/helpers');
await main(hideBin(process.argv));
