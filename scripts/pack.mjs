// Packs every published package into a tarball that installs with plain
// `npm install` (no clone, no registry copy of steve's own packages):
//
//   pnpm tarballs, or node scripts/pack.mjs [OUT_DIR]   (default: pack/; run pnpm build first)
//
// - `workspace:*` dependencies become exact versions, and each tarball
//   bundles all it depends on (bundleDependencies): the steve packages, which
//   are not on the registry, and the registry ones (yargs, execa,
//   node-gyp-build, node-addon-api), so an install needs no network;
// - the native addons ship prebuilt for linux-x64 as
//   prebuilds/linux-x64/NAME.napi.node (N-API: one file for every Node >= 20),
//   loaded with node-gyp-build; the install script builds from source when
//   the prebuilt one does not load (see @steve/native-build);
// - the root LICENSE goes into every tarball.
import {
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.resolve(process.argv[2] ?? path.join(root, 'pack'));

/** Every workspace package that is published (not private), by name. */
function workspacePackages() {
  const packages = new Map();
  for (const dir of readdirSync(path.join(root, 'packages'))) {
    const packageDir = path.join(root, 'packages', dir);
    const file = path.join(packageDir, 'package.json');
    if (!existsSync(file)) continue;
    const manifest = JSON.parse(readFileSync(file, 'utf8'));
    if (!manifest.private) packages.set(manifest.name, { dir: packageDir, manifest });
  }
  return packages;
}

const packages = workspacePackages();

/** The steve packages `name` needs at run time, transitively (not itself). */
function stevePackagesOf(name, seen = new Set()) {
  for (const [dep, spec] of Object.entries(packages.get(name).manifest.dependencies ?? {})) {
    if (!spec.startsWith('workspace:') || seen.has(dep)) continue;
    if (!packages.has(dep)) throw new Error(`${name} depends on ${dep}, which is private`);
    seen.add(dep);
    stevePackagesOf(dep, seen);
  }
  return seen;
}

function exactDependencies(dependencies) {
  return Object.fromEntries(
    Object.entries(dependencies ?? {}).map(([dep, spec]) => [
      dep,
      spec.startsWith('workspace:') ? packages.get(dep).manifest.version : spec,
    ]),
  );
}

/** The files npm would publish from the package (its `files` field), as npm lists them. */
async function publishedFiles(dir) {
  const { stdout } = await execa('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: dir,
  });
  return JSON.parse(stdout)[0].files.map((file) => file.path);
}

/** One package's publishable contents in `into`, with its manifest made installable. */
async function stage(name, into) {
  const { dir, manifest } = packages.get(name);
  rmSync(into, { recursive: true, force: true });
  mkdirSync(into, { recursive: true });
  for (const file of await publishedFiles(dir)) {
    if (file === 'package.json') continue;
    mkdirSync(path.dirname(path.join(into, file)), { recursive: true });
    cpSync(path.join(dir, file), path.join(into, file));
  }
  cpSync(path.join(root, 'LICENSE'), path.join(into, 'LICENSE'));
  const staged = { ...manifest, dependencies: exactDependencies(manifest.dependencies) };
  delete staged.devDependencies;
  staged.scripts = manifest.scripts?.install ? { install: manifest.scripts.install } : undefined;
  if (existsSync(path.join(dir, 'binding.gyp'))) {
    const built = readdirSync(path.join(dir, 'build', 'Release')).find((f) => f.endsWith('.node'));
    if (built === undefined)
      throw new Error(`${name}: no build/Release/*.node; run pnpm build first`);
    const prebuilds = path.join(into, 'prebuilds', 'linux-x64');
    mkdirSync(prebuilds, { recursive: true });
    cpSync(
      path.join(dir, 'build', 'Release', built),
      path.join(prebuilds, built.replace(/\.node$/, '.napi.node')),
    );
    staged.files = [...(manifest.files ?? []), 'prebuilds'];
  }
  return staged;
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const stageRoot = path.join(out, 'stage');
for (const name of packages.keys()) {
  const into = path.join(stageRoot, name.replace('/', '+'));
  const manifest = await stage(name, into);
  const bundled = [...stevePackagesOf(name)].sort();
  for (const dep of bundled) {
    // Flat: every bundled steve package sits in this package's node_modules,
    // and its registry dependencies become this package's, so npm installs them.
    const depManifest = await stage(dep, path.join(into, 'node_modules', dep));
    writeFileSync(
      path.join(into, 'node_modules', dep, 'package.json'),
      `${JSON.stringify(depManifest, null, 2)}\n`,
    );
    for (const [registryDep, spec] of Object.entries(depManifest.dependencies)) {
      if (!packages.has(registryDep)) manifest.dependencies[registryDep] ??= spec;
    }
  }
  manifest.dependencies = Object.fromEntries(Object.entries(manifest.dependencies).sort());
  // Every dependency goes into the tarball (npm treats the dependencies of a
  // bundled package as bundled too, and leaves them empty if they are not):
  // the registry ones are installed here first, without steve's own.
  const registryDependencies = Object.fromEntries(
    Object.entries(manifest.dependencies).filter(([dep]) => !packages.has(dep)),
  );
  if (Object.keys(registryDependencies).length > 0) {
    const scratch = path.join(stageRoot, `${name.replace('/', '+')}.deps`);
    mkdirSync(scratch, { recursive: true });
    writeFileSync(
      path.join(scratch, 'package.json'),
      JSON.stringify({ name: 'deps', private: true, dependencies: registryDependencies }),
    );
    await execa('npm', ['install', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], {
      cwd: scratch,
    });
    for (const entry of readdirSync(path.join(scratch, 'node_modules'))) {
      if (entry.startsWith('.')) continue;
      cpSync(path.join(scratch, 'node_modules', entry), path.join(into, 'node_modules', entry), {
        recursive: true,
      });
    }
  }
  manifest.bundleDependencies = Object.keys(manifest.dependencies);
  writeFileSync(path.join(into, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  const { stdout } = await execa(
    'npm',
    ['pack', '--json', '--ignore-scripts', '--pack-destination', out],
    {
      cwd: into,
    },
  );
  const [packed] = JSON.parse(stdout);
  const tsbuildinfo = packed.files.filter(
    // Ours only: a registry dependency's own files are its business.
    (f) =>
      f.path.endsWith('.tsbuildinfo') &&
      (!f.path.startsWith('node_modules/') || f.path.startsWith('node_modules/@steve/')),
  );
  if (tsbuildinfo.length > 0) throw new Error(`${name}: ${tsbuildinfo[0].path} would be published`);
  console.log(
    `${packed.filename}  ${(packed.size / 1024).toFixed(0)} KiB  ${packed.entryCount} files${bundled.length ? `  bundles ${bundled.join(', ')}` : ''}`,
  );
}
rmSync(stageRoot, { recursive: true, force: true });
