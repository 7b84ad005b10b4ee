#!/usr/bin/env node
// Builds the optional native helper (build/Release/jobserver_native.node)
// with node-gyp, offline: Node's headers come from the system (Debian's
// nodejs ships them under /usr/include/node), never from the network.
//
// The library works without it (a pure-JS wait with bounded backoff is
// chosen automatically), so a failed build is a warning, not an error,
// unless STEVE_REQUIRE_NATIVE=1 says it must be built.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const packageDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const nodeGyp = path.join(packageDir, 'node_modules', '.bin', 'node-gyp');
const required = process.env.STEVE_REQUIRE_NATIVE === '1';

/** The build needs these; each names the Debian package that provides it. */
const prerequisites = [
  { command: 'g++', args: ['--version'], debian: 'g++' },
  { command: 'make', args: ['--version'], debian: 'make' },
  { command: 'python3', args: ['--version'], debian: 'python3' },
];

function giveUp(message) {
  const text = `@steve/jobserver-client: native helper not built: ${message}`;
  if (required) {
    console.error(text);
    process.exit(1);
  }
  console.warn(`${text}; the pure-JS wait (bounded backoff) will be used`);
  // A stale addon from an older build must not be loaded instead.
  rmSync(path.join(packageDir, 'build'), { recursive: true, force: true });
  process.exit(0);
}

// `<prefix>/bin/node` -> `<prefix>`, when that prefix has Node's headers.
function systemNodeDir() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

if (!existsSync(nodeGyp)) giveUp(`${nodeGyp} is missing; run pnpm install first`);

const missing = prerequisites.filter(({ command, args }) => {
  const result = spawnSync(command, args, { stdio: 'ignore' });
  return result.error !== undefined || result.status !== 0;
});
if (missing.length > 0) {
  giveUp(
    `missing ${missing.map((m) => m.command).join(', ')}; on Debian: apt-get install ${missing
      .map((m) => m.debian)
      .join(' ')}`,
  );
}

const args = ['rebuild', '--release'];
const nodedir = systemNodeDir();
if (nodedir !== undefined) args.push(`--nodedir=${nodedir}`);
else
  console.warn(
    `@steve/jobserver-client: no Node headers next to ${process.execPath}; node-gyp will use its cache (or download)`,
  );

const result = spawnSync(nodeGyp, args, { cwd: packageDir, stdio: 'inherit' });
if (result.error !== undefined) giveUp(result.error.message);
if (result.status !== 0) giveUp(`node-gyp exited with status ${result.status}`);
