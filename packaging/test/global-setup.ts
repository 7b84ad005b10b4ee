// Once for every test file: the npm tarballs of this checkout, packed as a
// user gets them (scripts/pack.mjs, after pnpm build), into a temp dir that
// goes when the run ends. The tests install them where each service manager
// expects the bins (npm -g into /usr/local, an ebuild into /usr).
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import type { TestProject } from 'vitest/node';
import { REPO } from './helpers.js';

declare module 'vitest' {
  export interface ProvidedContext {
    tarballs: string;
  }
}

let work: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new Error(
      '@steve/packaging tests run as root: they mount overlays and FUSE, boot systemd in a container and install Debian packages',
    );
  }
  // STEVE_PACKAGING_TARBALLS: a pack/ directory made already (while working
  // on these tests); unset, the tarballs are packed from this checkout.
  const given = process.env.STEVE_PACKAGING_TARBALLS;
  let out: string;
  const started = Date.now();
  if (given !== undefined && given !== '') {
    out = given;
  } else {
    work = mkdtempSync(join(tmpdir(), 'steve-packaging-'));
    out = join(work, 'tarballs');
    await execa(process.execPath, [join(REPO, 'scripts', 'pack.mjs'), out], { timeout: 600_000 });
  }
  const packed = readdirSync(out).filter((f) => f.endsWith('.tgz'));
  if (!packed.some((f) => f.startsWith('steve-daemon-')))
    throw new Error(`scripts/pack.mjs made no steve-daemon tarball in ${out}: ${packed.join(' ')}`);
  console.log(
    `packaging: ${packed.length} tarballs in ${out} (${given ? 'given' : `packed in ${Date.now() - started} ms`})`,
  );
  project.provide('tarballs', out);
}

export function teardown(): void {
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
}
