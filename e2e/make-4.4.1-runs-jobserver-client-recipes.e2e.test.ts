// @steve/jobserver-client under real GNU make 4.4.1 acting as its own
// jobserver (no daemon): `make -j3` runs two recipes that each start six
// tasks through the library's fromEnv()/acquire()/release(). Both styles
// make 4.4.1 offers: a fifo (its default, `--jobserver-auth=fifo:PATH`) and
// pipe descriptors (`--jobserver-style=pipe`, `--jobserver-auth=R,W`, given
// to `+` recipes only). At most 3 tasks at once, more than the two implicit
// slots (so the library took tokens), and make finds every token back at exit
// (else it says "INTERNAL: Exiting with N jobserver tokens available").
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { maxConcurrency } from './helpers/daemon.js';
import { runMake441, stampLines, writeJobserverClientRecipe } from './helpers/make-4.4.1.js';
import { cleanEnv } from './helpers/processes.js';

let dir: string | null = null;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

describe.each([
  { style: 'fifo', makeArgs: [] as string[], prefix: '', auth: 'fifo' },
  { style: 'pipe', makeArgs: ['--jobserver-style=pipe'], prefix: '+', auth: 'pipe' },
])(
  'make 4.4.1 -j3 (jobserver style $style) runs @steve/jobserver-client recipes',
  ({ makeArgs, prefix, auth }) => {
    it('two recipes of six 300 ms tasks: 3 tasks at once, never more, every token back', async () => {
      dir = mkdtempSync(join(tmpdir(), 'steve-e2e-make441-client-'));
      const stamps = join(dir, 'stamps');
      const script = writeJobserverClientRecipe(dir);
      writeFileSync(
        join(dir, 'Makefile'),
        [
          'all: client-a client-b',
          '.PHONY: all client-a client-b',
          'client-a client-b:',
          `\t${prefix}@${process.execPath} ${script} $@ 6 300 ${stamps}`,
          '',
        ].join('\n'),
      );
      const result = await runMake441(['-j3', ...makeArgs], { cwd: dir, env: cleanEnv({}) });
      expect(result, result.output).toMatchObject({ code: 0 });
      expect(result.output).toContain(`client-a: ${auth} auth, 6 tasks done`);
      expect(result.output).toContain(`client-b: ${auth} auth, 6 tasks done`);
      expect(result.output).not.toMatch(/INTERNAL|jobserver unavailable|warning/);
      const lines = stampLines(stamps);
      expect(lines.filter((l) => l.startsWith('end '))).toHaveLength(12);
      expect(maxConcurrency(lines)).toBe(3);
    });
  },
);
