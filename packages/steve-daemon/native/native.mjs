#!/usr/bin/env node
// The native addon of steve-daemon (build/Release/steve_native.node, or prebuilds/linux-x64/ in
// a packed tarball); the shared steps are in @steve/native-build.
//   node native/native.mjs build     pnpm build in a checkout: build from source
//   node native/native.mjs install   npm install of the tarball: the prebuilt addon, else from source
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildAddon, installAddon } from '@steve/native-build';

const addon = {
  packageDir: path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'),
  label: 'steve-daemon',
  file: 'steve_native.node',
  required: true,
  fuse3: true,
};

if (process.argv[2] === 'install') installAddon(addon);
else buildAddon(addon);
