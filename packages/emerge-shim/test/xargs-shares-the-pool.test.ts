// `xargs -P8 -n1 steve-job -- ./build-one.sh`: eight wrappers at a time, but
// only as many jobs as the pool has tokens; steve-job finds the daemon
// through its control socket ($STEVE_CONTROL), as on a machine where the
// daemon runs and nothing sets MAKEFLAGS.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Daemon,
  binDir,
  cleanEnv,
  maxConcurrency,
  pathWith,
  removeTempDirs,
  run,
  startDaemon,
  stopAll,
  tempDir,
  waitFor,
  writeScript,
} from './helpers.js';

const daemons: Daemon[] = [];
afterEach(async () => {
  await stopAll();
  for (const daemon of daemons.splice(0)) await daemon.stop();
  removeTempDirs();
});

describe('xargs -P8 -n1 steve-job -- ./build-one.sh', () => {
  it('sixteen jobs through eight wrappers run at most 4 at a time on a pool of 4', async () => {
    const steve = await startDaemon(['-j', '4']);
    daemons.push(steve);
    const dir = tempDir();
    const stamps = join(dir, 'stamps');
    writeScript(
      join(dir, 'build-one.sh'),
      `#!/bin/sh\necho start "$1" $(date +%s%N) >> ${stamps}\nsleep 0.5\necho end "$1" $(date +%s%N) >> ${stamps}\n`,
    );
    const items = Array.from({ length: 16 }, (_, i) => `item${i}`).join('\n');
    const xargs = run(
      'sh',
      ['-c', `printf '%s\\n' "$ITEMS" | xargs -P8 -n1 steve-job -- ./build-one.sh`],
      {
        cwd: dir,
        env: cleanEnv({
          ITEMS: items,
          PATH: pathWith(binDir()),
          STEVE_CONTROL: steve.controlPath,
        }),
      },
    );
    let mostWaiting = 0;
    const watch = setInterval(() => {
      const waiting = Number(/ waiting (\d+)/.exec(steve.status())?.[1] ?? 0);
      mostWaiting = Math.max(mostWaiting, waiting);
    }, 50);
    const { code } = await xargs.exited;
    clearInterval(watch);
    expect(xargs.stderr).toBe('');
    expect(code).toBe(0);
    const text = readFileSync(stamps, 'utf8');
    expect(text.match(/^end /gm)).toHaveLength(16);
    const most = maxConcurrency(text);
    expect(most).toBeLessThanOrEqual(4);
    expect(most).toBeGreaterThanOrEqual(3);
    expect(mostWaiting).toBeGreaterThan(0); // the other wrappers did wait in the pool's queue
    await waitFor('every token back', () => steve.out() === 0);
  });
});
