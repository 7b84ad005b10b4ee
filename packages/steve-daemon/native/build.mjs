#!/usr/bin/env node
// Builds the native addon (build/Release/steve_native.node) with node-gyp,
// offline: Node's headers come from the system (Debian's nodejs ships them
// under /usr/include/node), never from the network.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const packageDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const nodeGyp = path.join(packageDir, 'node_modules', '.bin', 'node-gyp');

/** The build needs these; each names the Debian package that provides it. */
const prerequisites = [
  { command: 'pkg-config', args: ['--exists', 'fuse3'], debian: 'libfuse3-dev (and pkg-config)' },
  { command: 'g++', args: ['--version'], debian: 'g++' },
  { command: 'make', args: ['--version'], debian: 'make' },
  { command: 'python3', args: ['--version'], debian: 'python3' },
];

function fail(message) {
  console.error(`steve-daemon: cannot build the native addon: ${message}`);
  process.exit(1);
}

// `<prefix>/bin/node` -> `<prefix>`, when that prefix has Node's headers.
function systemNodeDir() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

function missingPrerequisites() {
  return prerequisites.filter(({ command, args }) => {
    const result = spawnSync(command, args, { stdio: 'ignore' });
    return result.error !== undefined || result.status !== 0;
  });
}

if (!existsSync(nodeGyp)) fail(`${nodeGyp} is missing; run pnpm install first`);

const args = ['rebuild', '--release'];
const nodedir = systemNodeDir();
if (nodedir !== undefined) args.push(`--nodedir=${nodedir}`);
else
  console.warn(
    `steve-daemon: no Node headers next to ${process.execPath}; node-gyp will use its cache (or download)`,
  );

const missing = missingPrerequisites();
if (missing.length > 0) {
  fail(
    `missing ${missing.map((m) => m.command).join(', ')}; on Debian: apt-get install ${missing
      .map((m) => m.debian)
      .join(' ')}`,
  );
}

const result = spawnSync(nodeGyp, args, { cwd: packageDir, stdio: 'inherit' });
if (result.error !== undefined) fail(result.error.message);
if (result.status !== 0) {
  const again = missingPrerequisites();
  const hint =
    again.length > 0
      ? `install ${again.map((m) => m.debian).join(', ')}`
      : 'the build needs libfuse3-dev, pkg-config, g++, make and python3 (Debian package names)';
  fail(`node-gyp exited with status ${result.status}; ${hint}`);
}
