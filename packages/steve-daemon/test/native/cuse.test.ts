// The CUSE front. This kernel may have no CUSE: then startCuse must say so
// plainly. (The CUSE path itself runs in the qemu e2e tests.)
import { existsSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { NO_CUSE_MESSAGE, startCuse } from '../../src/native/addon.js';
import { TokenResponder } from './helpers.js';

describe('startCuse', () => {
  it.skipIf(existsSync('/dev/cuse'))('explains a kernel without CUSE', () => {
    expect(() => startCuse({ devName: 'steve-test' }, new TokenResponder(0))).toThrow(
      NO_CUSE_MESSAGE,
    );
    try {
      startCuse({ devName: 'steve-test' }, new TokenResponder(0));
    } catch (error) {
      expect(error).toMatchObject({
        code: 'ENOENT',
        cause: { code: 'ENOENT', syscall: 'open', path: '/dev/cuse' },
      });
    }
  });

  it('rejects device names that are not plain names before touching the kernel', () => {
    for (const devName of ['', 'a/b', '..']) {
      expect(() => startCuse({ devName }, new TokenResponder(0))).toThrow(TypeError);
    }
  });
});
