// The shared MAKEFLAGS vectors (test/vectors/makeflags.json) hold what this
// parser returned when they were generated; pytest-bridge's Python port reads
// the same file. A change to the grammar shows up here first: regenerate the
// vectors (packages/pytest-bridge/scripts/generate-makeflags-vectors.mjs) and
// make the Python port follow.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseMakeflags } from '../src/index.js';

interface Vector {
  readonly input: string;
  readonly cwd: string;
  readonly expected: unknown;
}

const vectors = JSON.parse(
  readFileSync(new URL('./vectors/makeflags.json', import.meta.url), 'utf8'),
) as { readonly cases: readonly Vector[] };

describe('parseMakeflags: shared vectors (also read by the Python port)', () => {
  it('has cases for the wire formats make and cargo write', () => {
    const inputs = vectors.cases.map((c) => c.input);
    expect(inputs).toContain(' -j3 --jobserver-auth=3,4');
    expect(inputs).toContain(' --jobserver-auth=fifo:/dev/steve');
    expect(vectors.cases.length).toBeGreaterThanOrEqual(50);
  });

  it.each(vectors.cases.map((c) => [JSON.stringify(c.input), c] as const))('%s', (_name, c) => {
    // Through JSON, as the file was written (-0 becomes 0, as it does for Python).
    const parsed: unknown = JSON.parse(JSON.stringify(parseMakeflags(c.input, c.cwd)));
    expect(parsed).toEqual(c.expected);
  });
});
