/**
 * The generated projects of `pnpm bench builds`, small and offline: a C
 * project built by GNU make (4.3 and 4.4.1 each get a copy) and by ninja,
 * a cargo workspace (@steve/test-support's, with library code that takes
 * rustc a moment), and a pytest suite of CPU-bound tests. Every job runs
 * under the `stamp` wrapper (bench/fixtures/builds/stamp.c) or the
 * conftest hooks (bench/fixtures/builds/conftest.py), which log its start
 * and end on CLOCK_MONOTONIC.
 */

import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeCargoWorkspace } from '@steve/test-support';

export interface ProjectSizes {
  /** C translation units per C project (plus a main.c and the link). */
  readonly cFiles: number;
  /** Functions per C file: the compile time of one unit at -O2 (about 17 ms each here). */
  readonly cFunctions: number;
  /** Crates in the cargo workspace; each is a build-script compile, its run, and a library. */
  readonly crates: number;
  /** How long each build script sleeps (a job that holds a token without using a CPU). */
  readonly buildScriptSeconds: number;
  /** Structs (with derives and a trait impl) per crate's library. */
  readonly rustItems: number;
  readonly tests: number;
  /** Loop iterations per test (about 0.2 µs each with Debian's python3). */
  readonly testIterations: number;
}

/** One C unit: `functions` functions of small loops, enough for the optimiser to chew on. */
export function cSource(unit: number, functions: number): string {
  const parts: string[] = [];
  for (let i = 0; i < functions; i++) {
    parts.push(
      `unsigned long u${unit}_f${i}(unsigned long x) {
  unsigned long a[64];
  for (int j = 0; j < 64; j++) a[j] = x * ${i + 3}u + j;
  for (int r = 0; r < ${8 + (i % 5)}; r++)
    for (int j = 1; j < 64; j++) a[j] ^= (a[j - 1] << ${(i % 7) + 1}) + (a[j] >> 3) * ${i * 7 + unit + 1}u;
  unsigned long s = 0;
  for (int j = 0; j < 64; j++) s += a[j] * (j | 1);
  return s;
}`,
    );
  }
  return `${parts.join('\n\n')}\n`;
}

function cMain(units: number): string {
  const decls = Array.from({ length: units }, (_, u) => `unsigned long u${u}_f0(unsigned long);`);
  const calls = Array.from({ length: units }, (_, u) => `  s += u${u}_f0(s);`);
  return `#include <stdio.h>\n${decls.join('\n')}\nint main(void) {\n  unsigned long s = 1;\n${calls.join('\n')}\n  printf("%lu\\n", s);\n  return 0;\n}\n`;
}

/** The sources of a C project in `dir`; returns the object files' names (main.o last). */
function writeCSources(dir: string, sizes: ProjectSizes): string[] {
  mkdirSync(dir, { recursive: true });
  const objects: string[] = [];
  for (let u = 0; u < sizes.cFiles; u++) {
    writeFileSync(join(dir, `u${u}.c`), cSource(u, sizes.cFunctions));
    objects.push(`u${u}.o`);
  }
  writeFileSync(join(dir, 'main.c'), cMain(sizes.cFiles));
  objects.push('main.o');
  return objects;
}

/** A C project with a Makefile whose compile and link recipes run under `stamp`. */
export function writeMakeProject(dir: string, sizes: ProjectSizes, stamp: string): string {
  const objects = writeCSources(dir, sizes);
  writeFileSync(
    join(dir, 'Makefile'),
    [
      `STAMP := ${stamp}`,
      `OBJECTS := ${objects.join(' ')}`,
      'prog: $(OBJECTS)',
      '\t$(STAMP) cc -o $@ $^',
      '%.o: %.c',
      '\t$(STAMP) cc -O2 -c $< -o $@',
      '',
    ].join('\n'),
  );
  return dir;
}

/** The same C project with a build.ninja. */
export function writeNinjaProject(dir: string, sizes: ProjectSizes, stamp: string): string {
  const objects = writeCSources(dir, sizes);
  writeFileSync(
    join(dir, 'build.ninja'),
    [
      'rule cc',
      `  command = ${stamp} cc -O2 -c $in -o $out`,
      'rule link',
      `  command = ${stamp} cc -o $out $in`,
      ...objects.map((o) => `build ${o}: cc ${o.replace(/\.o$/, '.c')}`),
      `build prog: link ${objects.join(' ')}`,
      'default prog',
      '',
    ].join('\n'),
  );
  return dir;
}

/** A library for crate `name` of `items` structs with derives, a trait impl and a function each. */
export function rustLibrary(name: string, items: number): string {
  const parts = [
    `pub fn ${name}() -> u32 { 1 }`,
    'pub trait Mix { fn mix(&self, k: u64) -> u64; }',
  ];
  for (let i = 0; i < items; i++) {
    parts.push(`
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct S${i} { pub a: u64, pub b: Vec<u32>, pub c: String }
impl Mix for S${i} {
    fn mix(&self, k: u64) -> u64 {
        let mut h = self.a ^ k;
        for (j, v) in self.b.iter().enumerate() { h = h.rotate_left(${(i % 31) + 1}).wrapping_add(*v as u64 * ${i + 3} + j as u64); }
        h ^ self.c.len() as u64
    }
}
pub fn run${i}(n: u64) -> u64 {
    let s = S${i} { a: n, b: (0..n as u32 % 64).collect(), c: format!("{}-${i}", n) };
    let v: Vec<u64> = (0..8).map(|k| s.mix(k)).filter(|x| x % 3 != 0).collect();
    v.iter().copied().fold(0u64, u64::wrapping_add)
}`);
  }
  return `${parts.join('\n')}\n`;
}

/**
 * The cargo workspace of @steve/test-support (build scripts that sleep and
 * stamp on CLOCK_REALTIME to $STAMPS as `cargo-CRATE`) with heavier
 * libraries; returns the workspace root.
 */
export function writeCargoProject(dir: string, sizes: ProjectSizes): string {
  const root = writeCargoWorkspace(dir, sizes.crates, sizes.buildScriptSeconds, {
    stampName: 'cargo-',
  });
  for (let c = 0; c < sizes.crates; c++)
    writeFileSync(
      join(root, `crate${c}`, 'src', 'lib.rs'),
      rustLibrary(`crate${c}`, sizes.rustItems),
    );
  return root;
}

/** A pytest suite of CPU-bound tests, with the stamping conftest.py beside it. */
export function writePytestProject(dir: string, sizes: ProjectSizes, conftest: string): string {
  mkdirSync(dir, { recursive: true });
  copyFileSync(conftest, join(dir, 'conftest.py'));
  writeFileSync(
    join(dir, 'test_work.py'),
    [
      'import pytest',
      '',
      '',
      `@pytest.mark.parametrize("n", range(${sizes.tests}))`,
      'def test_work(n):',
      '    h = n',
      `    for i in range(${sizes.testIterations}):`,
      '        h = (h * 31 + i) & 0xFFFFFFFF',
      '    assert h >= 0',
      '',
    ].join('\n'),
  );
  return dir;
}
