import { describe, expect, it } from 'vitest';
import {
  EMPTY_MAKEFLAGS,
  formatMakeflags,
  isDryRun,
  makeflagsForChild,
  parseMakeCommandLine,
  parseMakeflags,
  splitMakeflagsWords,
  type MakeFlags,
} from '../src/index.js';

const CWD = '/home/build';
const parse = (value: string): MakeFlags => parseMakeflags(value, CWD);

describe('splitMakeflagsWords: blanks and backslash escapes as make splits them', () => {
  it.each([
    ['', []],
    ['   ', []],
    ['ks', ['ks']],
    [' -j3  --jobserver-auth=3,4\t-k', ['-j3', '--jobserver-auth=3,4', '-k']],
    ['-- BAZ=a\\ b FOO=bar', ['--', 'BAZ=a b', 'FOO=bar']],
    ['A=x\\\\y', ['A=x\\y']],
    ['A=trailing\\', ['A=trailing\\']],
    ['A=cost$$x', ['A=cost$x']],
    ['\n -k', ['-k']],
  ])('%s', (value, words) => {
    expect(splitMakeflagsWords(value)).toEqual(words);
  });
});

describe('parseMakeflags: table', () => {
  const cases: Array<[string, Partial<MakeFlags>]> = [
    ['', {}],
    ['ks', { letters: ['k', 's'] }],
    ['n', { letters: ['n'] }],
    [
      ' -j3 --jobserver-auth=3,4',
      { jobs: 3, jobserverAuth: { kind: 'pipe', readFd: 3, writeFd: 4 } },
    ],
    [' -j', { jobs: 'unlimited' }],
    [' -j 12', { jobs: 12 }],
    [' --jobs=5', { jobs: 5 }],
    [' --jobs 6', { jobs: 6 }],
    [' --jobs', { jobs: 'unlimited' }],
    [' -l2', { loadAverage: 2 }],
    [' -l 2.5', { loadAverage: 2.5 }],
    [' -l', { loadAverage: 'none' }],
    [' --load-average=3.5', { loadAverage: 3.5 }],
    [' --max-load 4', { loadAverage: 4 }],
    [' -kj4', { letters: ['k'], jobs: 4 }],
    ['k -j2 -Otarget', { letters: ['k'], jobs: 2, otherOptions: [['-Otarget']] }],
    [' -C sub -fMakefile.x', { otherOptions: [['-C', 'sub'], ['-fMakefile.x']] }],
    [' --directory sub --file=x.mk', { otherOptions: [['--directory', 'sub'], ['--file=x.mk']] }],
    [' --keep-going --dry-run', { letters: ['k', 'n'] }],
    [' --no-print-directory', { otherOptions: [['--no-print-directory']] }],
    [' -- FOO=bar BAZ=a\\ b', { variables: ['FOO=bar', 'BAZ=a b'] }],
    [' -- FOO=bar target', { variables: ['FOO=bar'] }],
    ['FOO=bar', { variables: ['FOO=bar'] }],
    [' -- X:=1 Y+=2 Z?=3 W!=4 V::=5', { variables: ['X:=1', 'Y+=2', 'Z?=3', 'W!=4', 'V::=5'] }],
    [' --jobserver-fds=5,6', { jobserverAuth: { kind: 'pipe', readFd: 5, writeFd: 6 } }],
    [
      ' --jobserver-auth=3,4 --jobserver-fds=7,8',
      { jobserverAuth: { kind: 'pipe', readFd: 7, writeFd: 8 } },
    ],
    [
      ' --jobserver-fds=7,8 --jobserver-auth=fifo:/dev/steve',
      { jobserverAuth: { kind: 'fifo', path: '/dev/steve' } },
    ],
    [
      ' --jobserver-auth=fifo:rel/fifo',
      { jobserverAuth: { kind: 'fifo', path: '/home/build/rel/fifo' } },
    ],
    [' --jobserver-auth=fifo:../x', { jobserverAuth: { kind: 'fifo', path: '/home/x' } }],
    [' --jobserver-auth=fifo:/a\\ b', { jobserverAuth: { kind: 'fifo', path: '/a b' } }],
    [' --jobserver-auth=-2,-2', { jobserverAuth: { kind: 'disabled', raw: '-2,-2' } }],
    [' --jobserver-auth 3,3', { jobserverAuth: { kind: 'pipe', readFd: 3, writeFd: 3 } }],
    ['-j3 -- A=1', { jobs: 3, variables: ['A=1'] }],
  ];
  it.each(cases)('%s', (value, expected) => {
    expect(parse(value)).toEqual({ ...EMPTY_MAKEFLAGS, ...expected });
  });

  it('reports what make would reject instead of throwing', () => {
    expect(parse(' -j0').warnings).toEqual([
      "'-j0': the -j option requires a positive integer argument",
    ]);
    expect(parse(' -jfoo').jobs).toBeNull();
    expect(parse(' -lxyz').warnings).toHaveLength(1);
    expect(parse('\\ k').warnings).toEqual(["' ': not a make flag letter"]);
    expect(parse('\\ k').letters).toEqual(['k']);
  });

  it('keeps an unsupported auth with its reason', () => {
    const auth = parse(' --jobserver-auth=gmake_semaphore_1234').jobserverAuth;
    expect(auth).toEqual({
      kind: 'unsupported',
      raw: 'gmake_semaphore_1234',
      reason: 'a Windows semaphore (GNU make on Windows)',
    });
    expect(parse(' --jobserver-auth=3').jobserverAuth?.kind).toBe('unsupported');
    expect(parse(' --jobserver-auth=fifo:').jobserverAuth?.kind).toBe('unsupported');
    expect(parse(' --jobserver-auth=3,4x').jobserverAuth?.kind).toBe('unsupported');
  });

  it('knows a dry run', () => {
    expect(isDryRun(parse('kn'))).toBe(true);
    expect(isDryRun(parse(' --just-print'))).toBe(true);
    expect(isDryRun(parse('k'))).toBe(false);
  });

  it('refuses a relative cwd', () => {
    expect(() => parseMakeflags('', 'relative')).toThrow(/absolute/);
  });
});

describe('formatMakeflags / makeflagsForChild', () => {
  it('writes in make 4.3 shape', () => {
    expect(
      formatMakeflags({
        ...EMPTY_MAKEFLAGS,
        letters: ['k', 's'],
        jobs: 3,
        jobserverAuth: { kind: 'pipe', readFd: 3, writeFd: 4 },
        otherOptions: [['--no-print-directory']],
        variables: ['BAZ=a b', 'FOO=bar'],
      }),
    ).toBe('ks -j3 --jobserver-auth=3,4 --no-print-directory -- BAZ=a\\ b FOO=bar');
    expect(formatMakeflags({ ...EMPTY_MAKEFLAGS, jobs: 3 })).toBe(' -j3');
    expect(formatMakeflags(EMPTY_MAKEFLAGS)).toBe('');
  });

  it('sets the auth, drops every -j and keeps the rest', () => {
    const parent = parse('ks -j8 -l4 --jobserver-auth=3,4 --no-print-directory -- FOO=bar');
    expect(makeflagsForChild(parent, { kind: 'fifo', path: '/dev/steve' })).toBe(
      'ks -l4 --jobserver-auth=fifo:/dev/steve --no-print-directory -- FOO=bar',
    );
    expect(makeflagsForChild(parse(' -j'), { kind: 'pipe', readFd: 3, writeFd: 3 })).toBe(
      ' --jobserver-auth=3,3',
    );
    expect(makeflagsForChild(parse('k -j4 --jobserver-auth=3,4'), null)).toBe('k');
  });

  it('quotes $, blanks and backslashes as make does', () => {
    const flags = { ...EMPTY_MAKEFLAGS, variables: ['P=a b\\c$d'] };
    expect(formatMakeflags(flags)).toBe(' -- P=a\\ b\\\\c$$d');
    expect(parse(formatMakeflags(flags)).variables).toEqual(['P=a b\\c$d']);
  });
});

describe('parseMakeCommandLine: make argv, the same rules without the first-word letters', () => {
  it.each<[string[], number | 'unlimited' | null]>([
    [['-kj4', 'all'], 4],
    [['all', '-j2'], 2],
    [['-j', '5'], 5],
    [['-j'], 'unlimited'],
    [['--jobs=3', 'install'], 3],
    [['-C', 'sub', '-j2'], 2],
    [['ks'], null],
    [['--', '-j4'], null],
    [['FOO=bar', 'all'], null],
  ])('%j -> jobs %s', (args, jobs) => {
    expect(parseMakeCommandLine(args, '/src').jobs).toBe(jobs);
  });

  it('keeps variables and letters', () => {
    const flags = parseMakeCommandLine(['-k', 'all', 'FOO=a b'], '/src');
    expect(flags.letters).toEqual(['k']);
    expect(flags.variables).toEqual(['FOO=a b']);
  });
});
