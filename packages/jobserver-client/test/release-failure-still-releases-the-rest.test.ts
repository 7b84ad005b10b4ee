// runWithToken when giving a token back fails: the command here stuffs the
// pool's fifo until it is full, so writing a token back gets EAGAIN (a real
// write error, not a mock). The other tokens must still be released and a
// pool that runWithToken opened itself must still be closed; the write error
// is what the caller sees.
import {
  closeSync,
  constants,
  openSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Jobserver, runWithToken } from '../src/index.js';
import { mkfifo, tempDir } from './helpers.js';

// Fills the fifo in argv[1] until a write would block: 4 KiB writes (atomic,
// PIPE_BUF) while they fit, then single bytes for the last partial page.
const STUFF_THE_POOL = `
const fs = require('node:fs');
const fd = fs.openSync(process.argv[1], fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
for (const size of [4096, 1]) {
  try { for (;;) fs.writeSync(fd, Buffer.alloc(size, 0x2b)); }
  catch (error) { if (error.code !== 'EAGAIN') throw error; }
}`;

const dirs: string[] = [];
const rawFds: number[] = [];
afterEach(() => {
  for (const fd of rawFds.splice(0)) closeSync(fd);
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fifo pool holding `tokens`, kept open (so it never hits EOF) by the test. */
function fifoPool(tokens: string): string {
  const dir = tempDir();
  dirs.push(dir);
  const path = join(dir, 'fifo');
  mkfifo(path);
  const raw = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  rawFds.push(raw);
  writeSync(raw, tokens);
  return path;
}

/** Descriptors of this process open on `path` (readlink of /proc/self/fd/N). */
function descriptorsOn(path: string): number {
  let count = 0;
  for (const entry of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${entry}`) === path) count += 1;
    } catch {
      // closed meanwhile (the directory's own descriptor)
    }
  }
  return count;
}

function cleanEnv(path: string): NodeJS.ProcessEnv {
  const { CARGO_MAKEFLAGS: _c, MFLAGS: _f, MAKEFLAGS: _m, ...clean } = process.env;
  return { ...clean, MAKEFLAGS: ` -j3 --jobserver-auth=fifo:${path}` };
}

describe('runWithToken when a token cannot be written back', () => {
  it('still releases every other token and reports the write error', async () => {
    const path = fifoPool('++');
    const jobserver = Jobserver.fromAuth({ kind: 'fifo', path }, { implicitSlot: false });
    try {
      await expect(
        runWithToken(process.execPath, ['-e', STUFF_THE_POOL, path], {
          jobserver,
          tokens: 2,
          env: cleanEnv(path),
        }),
      ).rejects.toMatchObject({ code: 'EAGAIN' });
      // Both write-backs were attempted (each token counts as released even
      // when its write fails); before the fix the second was never tried.
      expect(jobserver.heldTokens).toBe(0);
    } finally {
      jobserver.close();
    }
  });

  it('still closes the pool it opened from the environment', async () => {
    const path = fifoPool('++');
    expect(descriptorsOn(path)).toBe(1); // the test's own
    await expect(
      runWithToken(process.execPath, ['-e', STUFF_THE_POOL, path], {
        tokens: 3,
        env: cleanEnv(path),
      }),
    ).rejects.toMatchObject({ code: 'EAGAIN' });
    // Its private descriptor is gone again: close() ran despite the error.
    expect(descriptorsOn(path)).toBe(1);
  });
});
