// Generated builds whose jobs write start/end stamps (CLOCK_REALTIME ns) to
// one file: an observer independent of the daemon.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

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

/** A cargo workspace of `crates` local crates whose build scripts sleep `seconds` and stamp. */
export function writeCargoWorkspace(dir: string, crates: number, seconds: number): string {
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
