// The plugin's own Python unit tests (python/tests: the shared MAKEFLAGS
// vectors, finding the jobserver, slots on a kernel fifo), run with Debian's
// python3 -m pytest so they are part of `pnpm test`.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PACKAGE, PYTHON, cleanEnv } from './helpers.js';

describe('python/tests', () => {
  it('all pass', () => {
    const result = spawnSync(
      PYTHON,
      ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', join(PACKAGE, 'python', 'tests')],
      { cwd: PACKAGE, env: cleanEnv(), encoding: 'utf8', timeout: 120_000 },
    );
    const output = `${result.stdout}${result.stderr}`;
    expect(result.status, output).toBe(0);
    const passed = Number(/(\d+) passed/.exec(output)?.[1] ?? 0);
    expect(passed, output).toBeGreaterThanOrEqual(130);
    expect(output).not.toMatch(/failed|error/);
    console.log(`python/tests: ${passed} passed`);
  });
});
