import { describe, expect, it } from 'vitest';
import { makeflagsFromEnv } from '../src/index.js';

describe('makeflagsFromEnv: CARGO_MAKEFLAGS, then MAKEFLAGS, then MFLAGS', () => {
  it('prefers CARGO_MAKEFLAGS and says where it came from', () => {
    const found = makeflagsFromEnv(
      {
        CARGO_MAKEFLAGS: '-j --jobserver-fds=7,8 --jobserver-auth=7,8',
        MAKEFLAGS: ' --jobserver-auth=fifo:/dev/steve',
        MFLAGS: '-j3 --jobserver-auth=3,4',
      },
      '/',
    );
    expect(found?.variable).toBe('CARGO_MAKEFLAGS');
    expect(found?.flags.jobserverAuth).toEqual({ kind: 'pipe', readFd: 7, writeFd: 8 });
  });

  it('falls back to MAKEFLAGS, then MFLAGS', () => {
    expect(makeflagsFromEnv({ MAKEFLAGS: 'k', MFLAGS: '-k' }, '/')?.variable).toBe('MAKEFLAGS');
    const mflags = makeflagsFromEnv({ MFLAGS: '-k -j2 --jobserver-auth=fifo:x' }, '/tmp');
    expect(mflags?.variable).toBe('MFLAGS');
    expect(mflags?.flags.jobserverAuth).toEqual({ kind: 'fifo', path: '/tmp/x' });
    expect(mflags?.flags.letters).toEqual(['k']);
  });

  it('returns null when none is set', () => {
    expect(makeflagsFromEnv({ PATH: '/usr/bin' }, '/')).toBeNull();
  });
});
