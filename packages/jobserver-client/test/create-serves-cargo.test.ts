// Jobserver.create(n) as the server for cargo (a jobserver-rs client, fifo
// style): `cargo build --offline -j 8` of a generated workspace of local
// crates whose build scripts sleep and stamp. Cargo's parallelism follows
// the pool (n = the implicit slot handed to cargo + n - 1 tokens), not -j
// nor the number of CPUs.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Jobserver, runWithToken } from '../src/index.js';
import { writeCargoWorkspace } from '@steve/test-support';
import { maxConcurrency, tempDir } from './helpers.js';

const hasCargo = spawnSync('cargo', ['--version']).status === 0;

describe.skipIf(!hasCargo)('Jobserver.create serving cargo', () => {
  it.each([2, 3])(
    'cargo -j 8 under Jobserver.create(%i) runs at most that many build scripts at once',
    async (jobs) => {
      const dir = tempDir();
      const root = writeCargoWorkspace(dir, 6, 0.7, { stampName: '' });
      const stamps = join(dir, 'stamps');
      const jobserver = Jobserver.create(jobs);
      try {
        const { MAKEFLAGS: _m, MFLAGS: _f, CARGO_MAKEFLAGS: _c, ...clean } = process.env;
        const status = await runWithToken(
          'cargo',
          ['build', '--offline', '-q', '-j', '8', '--manifest-path', join(root, 'Cargo.toml')],
          {
            jobserver,
            env: { ...clean, STAMPS: stamps, CARGO_TARGET_DIR: join(dir, 'target') },
            stdio: ['ignore', 'inherit', 'inherit'],
          },
        );
        expect(status).toBe(0);
        const text = readFileSync(stamps, 'utf8');
        expect(text.match(/^end /gm)).toHaveLength(6);
        expect(maxConcurrency(text)).toBe(jobs);
        // Every token is back in the pool.
        const back = [
          jobserver.tryAcquire(),
          ...Array.from({ length: jobs - 1 }, () => jobserver.tryAcquire()),
        ];
        expect(back.every((t) => t !== null)).toBe(true);
        expect(jobserver.tryAcquire()).toBeNull();
      } finally {
        jobserver.close();
      }
    },
  );
});
