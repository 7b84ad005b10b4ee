// Adds up the JSON reports every vitest run leaves (`.vitest-report.json`
// beside each package) and the exit status of every suite test-all.sh ran
// (`.suite-status`), and prints one closing line:
// "N passed, N failed, N skipped; S of T suites passed (which failed)".
// A suite that failed without a failing test (lint, a build error, a VM that
// never booted) is still a failure.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const dirs = [
  ...readdirSync(join(root, 'packages')).map((name) => join(root, 'packages', name)),
  join(root, 'e2e'),
  join(root, 'bench'),
  join(root, 'packaging'),
];
let passed = 0;
let failed = 0;
let skipped = 0;
const reports = dirs.map((dir) => [dir, join(dir, '.vitest-report.json')]);
reports.push([join(root, 'e2e', 'chaos'), join(root, 'e2e', '.vitest-chaos-report.json')]);
for (const [dir, file] of reports) {
  if (!existsSync(file)) continue;
  const report = JSON.parse(readFileSync(file, 'utf8'));
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  skipped += report.numPendingTests + (report.numTodoTests ?? 0);
  console.log(
    `${dir.slice(root.length)}: ${report.numPassedTests} passed, ${report.numFailedTests} failed`,
  );
}
// The CUSE checks inside the VM print their own "N passed, N failed" line.
const vm = join(root, '.cuse-vm-summary');
if (existsSync(vm)) {
  const match = /^(\d+) passed, (\d+) failed$/.exec(readFileSync(vm, 'utf8').trim());
  if (match) {
    passed += Number(match[1]);
    failed += Number(match[2]);
    console.log(`e2e/cuse-vm (qemu): ${match[1]} passed, ${match[2]} failed`);
  }
}
const statusFile = join(root, '.suite-status');
const suites = existsSync(statusFile)
  ? readFileSync(statusFile, 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [name, rc] = line.split(' ');
        return { name, rc: Number(rc) };
      })
  : [];
const failedSuites = suites.filter((suite) => suite.rc !== 0);
for (const suite of failedSuites) {
  console.log(`suite ${suite.name}: exit status ${suite.rc}`);
}
const suiteLine =
  suites.length === 0
    ? ''
    : `; ${suites.length - failedSuites.length} of ${suites.length} suites passed` +
      (failedSuites.length > 0 ? ` (failed: ${failedSuites.map((s) => s.name).join(', ')})` : '');
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped${suiteLine}`);
process.exit(failed > 0 || failedSuites.length > 0 ? 1 : 0);
