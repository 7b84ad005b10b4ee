// How steve's native addons (steve-daemon's libfuse3 glue, the client
// library's uv_poll helper) get onto a machine, in one place:
//
// - in a checkout, `pnpm build` runs buildAddon(): node-gyp, offline (Node's
//   headers from the system when it has them), into build/Release;
// - a packed tarball carries prebuilds/linux-x64/NAME.napi.node (N-API, so one
//   file serves every Node >= 20), loaded with node-gyp-build; at install,
//   installAddon() checks that it loads and otherwise builds from source,
//   naming the Debian and Gentoo packages that are missing.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

/**
 * @typedef {object} Addon
 * @property {string} packageDir   the package that owns the addon (binding.gyp)
 * @property {string} label        its name in messages (steve-daemon)
 * @property {string} file         the addon's file name (steve_native.node)
 * @property {boolean} required    false: the package works without it (a warning, not an error)
 * @property {boolean} [fuse3]     it links libfuse3
 */

/** What a from-source build needs, and which package brings it on Debian and Gentoo. */
function prerequisites(addon) {
  return [
    ...(addon.fuse3
      ? [
          {
            what: 'libfuse3 headers',
            command: 'pkg-config',
            args: ['--exists', 'fuse3'],
            debian: 'libfuse3-dev pkg-config',
            gentoo: 'sys-fs/fuse:3 virtual/pkgconfig',
          },
        ]
      : []),
    {
      what: 'a C++ compiler',
      command: 'g++',
      args: ['--version'],
      debian: 'g++',
      gentoo: 'sys-devel/gcc',
    },
    {
      what: 'make',
      command: 'make',
      args: ['--version'],
      debian: 'make',
      gentoo: 'dev-build/make',
    },
    {
      what: 'python3',
      command: 'python3',
      args: ['--version'],
      debian: 'python3',
      gentoo: 'dev-lang/python',
    },
  ];
}

/** The prerequisites that are missing, with the line that installs them. */
export function missingPrerequisites(addon) {
  const missing = prerequisites(addon).filter(({ command, args }) => {
    const result = spawnSync(command, args, { stdio: 'ignore' });
    return result.error !== undefined || result.status !== 0;
  });
  if (missing.length === 0) return null;
  return (
    `missing ${missing.map((m) => m.what).join(', ')}; ` +
    `on Debian: apt-get install ${missing.map((m) => m.debian).join(' ')}; ` +
    `on Gentoo: emerge ${missing.map((m) => m.gentoo).join(' ')}`
  );
}

/** node-gyp: the package's own (a checkout), npm's bundled one (npm sets npm_config_node_gyp for install scripts), or PATH's. */
function nodeGyp(addon) {
  for (let dir = addon.packageDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', '.bin', 'node-gyp');
    if (existsSync(candidate)) return { command: candidate, args: [] };
    if (path.dirname(dir) === dir) break;
  }
  const npmGyp = process.env.npm_config_node_gyp;
  if (npmGyp && existsSync(npmGyp)) return { command: process.execPath, args: [npmGyp] };
  const onPath = spawnSync('node-gyp', ['--version'], { stdio: 'ignore' });
  if (onPath.error === undefined && onPath.status === 0) return { command: 'node-gyp', args: [] };
  return null;
}

// `<prefix>/bin/node` -> `<prefix>`, when that prefix has Node's headers (no download then).
function systemNodeDir() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

/** Build build/Release/FILE with node-gyp. Returns null, or why it could not. */
export function buildFromSource(addon, { stdio = 'inherit' } = {}) {
  const gyp = nodeGyp(addon);
  if (gyp === null)
    return 'no node-gyp (npm brings one to install scripts; otherwise npm install -g node-gyp)';
  const missing = missingPrerequisites(addon);
  if (missing !== null) return missing;
  const args = [...gyp.args, 'rebuild', '--release'];
  const nodedir = systemNodeDir();
  if (nodedir !== undefined) args.push(`--nodedir=${nodedir}`);
  const result = spawnSync(gyp.command, args, { cwd: addon.packageDir, stdio });
  if (result.error !== undefined) return result.error.message;
  if (result.status !== 0) return `node-gyp exited with status ${result.status}`;
  return null;
}

/** Load the addon the way the package does at run time; the error when it cannot. */
export function tryLoad(addon) {
  try {
    require('node-gyp-build')(addon.packageDir);
    return null;
  } catch (error) {
    return error instanceof Error ? error.message.split('\n')[0] : String(error);
  }
}

function runtimeHint(addon, reason) {
  return addon.fuse3 && /libfuse3\.so/.test(reason)
    ? '; the libfuse3 runtime is missing (Debian: apt-get install fuse3; Gentoo: emerge sys-fs/fuse:3)'
    : '';
}

function giveUp(addon, message) {
  const text = `${addon.label}: native addon not available: ${message}`;
  if (addon.required || process.env.STEVE_REQUIRE_NATIVE === '1') {
    console.error(text);
    process.exit(1);
  }
  console.warn(`${text}; it works without it (a slower pure-JS path)`);
  // A stale addon from an older build must not be loaded instead.
  rmSync(path.join(addon.packageDir, 'build'), { recursive: true, force: true });
  process.exit(0);
}

/** `pnpm build` in a checkout: always build from source. */
export function buildAddon(addon) {
  const problem = buildFromSource(addon);
  if (problem !== null) giveUp(addon, `cannot build it from source: ${problem}`);
  const loadProblem = tryLoad(addon);
  if (loadProblem !== null) giveUp(addon, `built, but it does not load: ${loadProblem}`);
}

/** The `install` script of a packed package: the prebuilt addon, else a build from source. */
export function installAddon(addon) {
  if (existsSync(path.join(addon.packageDir, 'src'))) {
    console.log(`${addon.label}: a checkout; pnpm build builds the native addon`);
    return;
  }
  const prebuilt = tryLoad(addon);
  if (prebuilt === null) return;
  console.warn(
    `${addon.label}: the prebuilt addon does not load here (${prebuilt})${runtimeHint(addon, prebuilt)}; building it from source`,
  );
  const problem = buildFromSource(addon);
  if (problem !== null) giveUp(addon, `cannot build it from source: ${problem}`);
  const built = tryLoad(addon);
  if (built !== null)
    giveUp(addon, `built from source, but it does not load: ${built}${runtimeHint(addon, built)}`);
  console.log(`${addon.label}: built the native addon from source`);
}
