import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type JobserverAuth,
  type MakeFlags,
  formatMakeflags,
  makeflagsForChild,
  parseMakeflags,
} from '../src/index.js';

const CWD = '/work';

// Letters make writes in its first word (no argument-taking ones).
const letter = fc.constantFrom(
  'B',
  'd',
  'e',
  'i',
  'k',
  'L',
  'n',
  'p',
  'q',
  'r',
  'R',
  's',
  'S',
  't',
  'w',
);
const text = fc.string({
  unit: fc.constantFrom('a', 'Z', '0', ' ', '\t', '\\', '$', '/', '-', '=', '.', 'é'),
  maxLength: 12,
});
const pathText = text.map((s) => `/${s}`);
const name = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/);

const auth: fc.Arbitrary<JobserverAuth> = fc.oneof(
  pathText.map((path) => ({ kind: 'fifo' as const, path: path.replace(/\/+$/, '') || '/' })),
  fc
    .tuple(fc.nat({ max: 1023 }), fc.nat({ max: 1023 }))
    .map(([readFd, writeFd]) => ({ kind: 'pipe' as const, readFd, writeFd })),
  fc.constant({ kind: 'disabled' as const, raw: '-2,-2' }),
);

const otherOption = fc.oneof(
  fc.constant(['--no-print-directory']),
  fc.constant(['--warn-undefined-variables']),
  fc.constantFrom('target', 'line', 'recurse', 'none').map((mode) => [`-O${mode}`]),
  text.map((dir) => ['-C', dir === '' ? '.' : dir]),
  text.map((file) => [`--file=${file}`]),
);

const makeFlags: fc.Arbitrary<MakeFlags> = fc.record({
  letters: fc.uniqueArray(letter, { maxLength: 5 }),
  jobs: fc.oneof(
    fc.constant(null),
    fc.constant('unlimited' as const),
    fc.integer({ min: 1, max: 512 }),
  ),
  loadAverage: fc.oneof(
    fc.constant(null),
    fc.constant('none' as const),
    fc.integer({ min: 0, max: 4000 }).map((n) => n / 100),
  ),
  jobserverAuth: fc.option(auth, { nil: null }),
  otherOptions: fc.array(otherOption, { maxLength: 3 }),
  variables: fc.array(
    fc
      .tuple(name, fc.constantFrom('=', ':=', '+=', '?='), text)
      .map(([n, op, v]) => `${n}${op}${v}`),
    { maxLength: 4 },
  ),
  warnings: fc.constant([]),
});

// A fifo path is normalised by the parser (posix.resolve), so compare normalised.
function normalised(flags: MakeFlags): MakeFlags {
  const a = flags.jobserverAuth;
  if (a?.kind !== 'fifo') return flags;
  return {
    ...flags,
    jobserverAuth: parseMakeflags(
      ` --jobserver-auth=fifo:${a.path.replace(/([ \t\\])/g, '\\$1').replace(/\$/g, '$$$$')}`,
      CWD,
    ).jobserverAuth,
  };
}

describe('MAKEFLAGS round trip (fast-check)', () => {
  it('parse(format(flags)) gives the same flags back', () => {
    fc.assert(
      fc.property(makeFlags, (flags) => {
        expect(parseMakeflags(formatMakeflags(flags), CWD)).toEqual(normalised(flags));
      }),
      { numRuns: 2000 },
    );
  });

  it('formatting is a fixed point after one parse of any string', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (value) => {
        const once = parseMakeflags(value, CWD);
        const clean = { ...once, warnings: [] };
        const twice = parseMakeflags(formatMakeflags(clean), CWD);
        expect(formatMakeflags(twice)).toBe(formatMakeflags(clean));
      }),
      { numRuns: 2000 },
    );
  });

  it('a child sees the new auth, no -j, and everything else unchanged', () => {
    fc.assert(
      fc.property(makeFlags, auth, (flags, childAuth) => {
        const child = parseMakeflags(makeflagsForChild(flags, childAuth), CWD);
        expect(child.jobs).toBeNull();
        expect(child).toEqual(normalised({ ...flags, jobs: null, jobserverAuth: childAuth }));
      }),
      { numRuns: 1000 },
    );
  });
});
