// Generated builds whose jobs write start/end stamps (CLOCK_REALTIME ns) to
// one file: an observer independent of the daemon.
import { spawnSync } from 'node:child_process';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLIENTS } from './daemon.js';
import { cleanEnv } from './processes.js';

/** A Makefile with `jobs` independent jobs of `seconds` each. */
export function writeMakefile(dir: string, jobs: number, seconds: number, stamps: string): string {
  const names = Array.from({ length: jobs }, (_, i) => `job${i}`);
  const makefile = join(dir, 'Makefile');
  writeFileSync(
    makefile,
    [
      `all: ${names.join(' ')}`,
      `${names.join(' ')}:`,
      `\t@echo start make-$@ $$(date +%s%N) >> ${stamps}; sleep ${seconds}; echo end make-$@ $$(date +%s%N) >> ${stamps}`,
      '',
    ].join('\n'),
  );
  return makefile;
}

export { writeCargoWorkspace } from '@steve/test-support';

/**
 * Build the jobserver-rs 0.1.24 client (e2e/clients/jobserver-rs-0.1.24)
 * offline against Debian's crate (librust-jobserver-dev) in `dir`; returns
 * the binary. `release`: the debug build of 0.1.24 aborts at exit with
 * `--jobserver-auth=3,3` (it closes fd 3 twice, which std's debug check
 * catches), a release build does not.
 */
export function buildJobserverRsClient(dir: string, options: { release?: boolean } = {}): string {
  const crate = join(dir, 'jobserver-rs-client');
  cpSync(join(CLIENTS, 'jobserver-rs-0.1.24'), crate, { recursive: true });
  const build = spawnSync(
    'cargo',
    [
      'build',
      ...(options.release ? ['--release'] : []),
      '--offline',
      '--quiet',
      '--config',
      'source.crates-io.replace-with="debian"',
      '--config',
      'source.debian.directory="/usr/share/cargo/registry"',
    ],
    { cwd: crate, encoding: 'utf8', env: cleanEnv({}), timeout: 150_000 },
  );
  if (build.status !== 0) throw new Error(`building the jobserver-rs client: ${build.stderr}`);
  return join(crate, 'target', options.release ? 'release' : 'debug', 'jobserver-rs-client');
}
