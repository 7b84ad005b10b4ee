// `steve-job -- cargo build --offline`: cargo takes the pool from MAKEFLAGS
// (fifo style; cargo is not GNU make), runs its first job on steve-job's
// token and takes one more token for every further rustc or build script.
// Build scripts that sleep and stamp show the pool's cap.
import { readFileSync } from 'node:fs';
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
import { writeCargoWorkspace } from '@steve/test-support';

const daemons: Daemon[] = [];
afterEach(async () => {
  await stopAll();
  for (const daemon of daemons.splice(0)) await daemon.stop();
  removeTempDirs();
});

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
