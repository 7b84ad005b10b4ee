// Generated builds whose jobs write start/end stamps (CLOCK_REALTIME ns) to
// one file: an observer independent of the daemon.
import { writeFileSync } from 'node:fs';
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

export { writeCargoWorkspace } from '@steve/test-support';
