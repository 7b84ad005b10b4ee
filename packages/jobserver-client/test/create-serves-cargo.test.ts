// Jobserver.create(n) as the server for cargo (a jobserver-rs client, fifo
// style): `cargo build --offline -j 8` of a generated workspace of local
// crates whose build scripts sleep and stamp. Cargo's parallelism follows
// the pool (n = the implicit slot handed to cargo + n - 1 tokens), not -j
// nor the number of CPUs.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Jobserver, runWithToken } from '../src/index.js';
import { maxConcurrency, tempDir } from './helpers.js';

const hasCargo = spawnSync('cargo', ['--version']).status === 0;

function writeWorkspace(dir: string, crates: number, sleepMs: number): string {
  const root = join(dir, 'ws');
  const members = Array.from({ length: crates }, (_, i) => `crate${i}`);
  mkdirSync(root, { recursive: true });
  writeFileSync(
    join(root, 'Cargo.toml'),
    `[workspace]\nmembers = [${members.map((m) => `"${m}"`).join(', ')}]\nresolver = "2"\n`,
  );
  for (const name of members) {
    mkdirSync(join(root, name, 'src'), { recursive: true });
    writeFileSync(
      join(root, name, 'Cargo.toml'),
      `[package]\nname = "${name}"\nversion = "0.1.0"\nedition = "2021"\nbuild = "build.rs"\n`,
    );
    writeFileSync(join(root, name, 'src', 'lib.rs'), `pub fn ${name}() -> u32 { 1 }\n`);
    writeFileSync(
      join(root, name, 'build.rs'),
      `use std::io::Write;
fn stamp(kind: &str) {
    let path = std::env::var("STAMPS").expect("STAMPS");
    let ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    // One write(2) for the whole line: other jobs append to the same file.
    f.write_all(format!("{} {} {}\\n", kind, env!("CARGO_PKG_NAME"), ns).as_bytes()).unwrap();
}
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    stamp("start");
    std::thread::sleep(std::time::Duration::from_millis(${sleepMs}));
    stamp("end");
}
`,
    );
  }
  return root;
}

describe.skipIf(!hasCargo)('Jobserver.create serving cargo', () => {
  it.each([2, 3])(
    'cargo -j 8 under Jobserver.create(%i) runs at most that many build scripts at once',
    async (jobs) => {
      const dir = tempDir();
      const root = writeWorkspace(dir, 6, 700);
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
