// `steve-job -- cargo build --offline`: cargo takes the pool from MAKEFLAGS
// (fifo style; cargo is not GNU make), runs its first job on steve-job's
// token and takes one more token for every further rustc or build script.
// Build scripts that sleep and stamp show the pool's cap.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Daemon,
  STEVE_JOB_BIN,
  cleanEnv,
  maxConcurrency,
  removeTempDirs,
  run,
  startDaemon,
  stopAll,
  tempDir,
  waitFor,
} from './helpers.js';

const daemons: Daemon[] = [];
afterEach(async () => {
  await stopAll();
  for (const daemon of daemons.splice(0)) await daemon.stop();
  removeTempDirs();
});

/** A workspace of `crates` local crates whose build scripts sleep `seconds` and stamp. */
function writeCargoWorkspace(dir: string, crates: number, seconds: number): string {
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
    f.write_all(format!("{} cargo-{} {}\\n", kind, env!("CARGO_PKG_NAME"), ns).as_bytes()).unwrap();
}
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    stamp("start");
    std::thread::sleep(std::time::Duration::from_millis(${Math.round(seconds * 1000)}));
    stamp("end");
}
`,
    );
  }
  return root;
}

describe('steve-job -- cargo build', () => {
  it('runs at most as many build scripts at once as the pool has tokens; every token comes back', async () => {
    const steve = await startDaemon(['-j', '3']);
    daemons.push(steve);
    const dir = tempDir();
    const stamps = join(dir, 'stamps');
    const workspace = writeCargoWorkspace(dir, 6, 1);
    const build = run(
      process.execPath,
      // -j 8: cargo's own limit is not what holds it back, the pool is.
      [
        STEVE_JOB_BIN,
        '--device',
        steve.jobserverPath,
        '--',
        'cargo',
        'build',
        '--offline',
        '-j',
        '8',
      ],
      {
        cwd: workspace,
        env: cleanEnv({ STAMPS: stamps, CARGO_TARGET_DIR: join(dir, 'target') }),
      },
    );
    const { code } = await build.exited;
    expect(build.stderr).toContain('Finished');
    expect(code).toBe(0);
    const text = readFileSync(stamps, 'utf8');
    expect(text.match(/^end /gm)).toHaveLength(6);
    const most = maxConcurrency(text);
    expect(most).toBeLessThanOrEqual(3);
    expect(most).toBeGreaterThanOrEqual(2);
    await waitFor('every token back', () => steve.out() === 0);
  });
});
