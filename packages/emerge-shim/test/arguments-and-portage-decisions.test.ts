// The pure parts: command lines, Portage versions, what emerge-shim sets.
import { describe, expect, it } from 'vitest';
import { makeCommandLineJobs, makeJobsWarning, parseSteveJobArgs } from '../src/cli/steve-job.js';
import { parseEmergeShimArgs } from '../src/cli/emerge-shim.js';
import { UsageError } from '../src/cli/common.js';
import { parsePoolSpec } from '../src/pool.js';
import {
  emergeMakeflags,
  featuresWithJobserver,
  parsePortageVersion,
  planEmerge,
  portageSupport,
  shellQuote,
  userGaveJobs,
} from '../src/portage.js';

describe('steve-job command line', () => {
  it('options up to -- or the first word that is not one; the rest is the command', () => {
    expect(parseSteveJobArgs(['--tokens', '2', '--no-wait', '--', 'make', '-k'])).toMatchObject({
      tokens: 2,
      noWait: true,
      style: 'auto',
      fallback: false,
      command: 'make',
      args: ['-k'],
    });
    expect(parseSteveJobArgs(['--style=pipe', 'make', '--', 'x'])).toMatchObject({
      style: 'pipe',
      command: 'make',
      args: ['--', 'x'],
    });
    expect(parseSteveJobArgs(['--device', '/dev/steve', 'true'])).toMatchObject({
      pool: { spec: 'fifo:/dev/steve', option: '--device /dev/steve' },
    });
    // The command's own options, steve-job's names included, reach it untouched.
    expect(parseSteveJobArgs(['--tokens=2', 'make', '-j4', '--tokens', '3', '-v'])).toMatchObject({
      tokens: 2,
      verbose: false,
      command: 'make',
      args: ['-j4', '--tokens', '3', '-v'],
    });
    expect(parseSteveJobArgs(['-v', '--', '--odd-name', '--', 'x'])).toMatchObject({
      verbose: true,
      command: '--odd-name',
      args: ['--', 'x'],
    });
  });

  it.each([
    [['--tokens', '0', 'x'], "--tokens wants a whole number >= 1, got '0'"],
    [['--tokens', 'abc', 'x'], "--tokens wants a whole number >= 1, got 'abc'"],
    [['--style', 'tcp', 'x'], 'Given: "tcp", Choices: "fifo", "pipe", "auto"'],
    [['--fallback', 'skip', 'x'], 'Given: "skip", Choices: "run"'],
    [['--device', 'a', '--jobserver', 'b', 'x'], 'give one of --jobserver and --device'],
    [['--frobnicate', 'x'], "unknown option '--frobnicate' (CMD's own options go after it"],
    [['--frobnicate=3', 'x'], "unknown option '--frobnicate'"],
    [['-vx', 'make'], "unknown option '-x'"],
    [['--tokens'], '--tokens needs a value'],
    [['--no-wait', '--'], 'no command given'],
  ])('%j is a usage error', (argv, message) => {
    expect(() => parseSteveJobArgs(argv)).toThrow(UsageError);
    expect(() => parseSteveJobArgs(argv)).toThrow(message);
    try {
      parseSteveJobArgs(argv);
    } catch (error) {
      expect((error as Error).message).not.toContain('\n');
    }
  });

  it('finds -jN on a GNU make command line (make then ignores the pool)', () => {
    expect(makeCommandLineJobs('make', ['-j4'])).toBe(4);
    expect(makeCommandLineJobs('/usr/bin/gmake', ['-kj', '8', 'all'])).toBe(8);
    expect(makeCommandLineJobs('make', ['--jobs=3'])).toBe(3);
    // A bare -j is unlimited (0): make 4.3 says "-j0 forced in submake" and leaves the pool.
    expect(makeCommandLineJobs('make', ['-j'])).toBe(0);
    expect(makeCommandLineJobs('make', ['-kj', 'all'])).toBe(0);
    expect(makeCommandLineJobs('make', ['--jobs', '-f', 'x.mk'])).toBe(0);
    expect(makeCommandLineJobs('make', ['-k', 'all'])).toBeNull();
    expect(makeJobsWarning(0)).toBe(
      `warning: make -j on make's command line ignores the pool (make 4.3: "-j0 forced in submake: resetting jobserver mode") and runs any number of jobs outside it; leave -j out, the pool sets the parallelism`,
    );
    expect(makeJobsWarning(4)).toContain("make -j4 on make's command line ignores the pool");
    expect(makeCommandLineJobs('make', ['--', '-j4'])).toBeNull();
    expect(makeCommandLineJobs('ninja', ['-j4'])).toBeNull();
  });

  it('pool specs: fifo:PATH, R,W and plain paths', () => {
    expect(parsePoolSpec('fifo:/dev/steve', '/')).toEqual({ kind: 'fifo', path: '/dev/steve' });
    expect(parsePoolSpec('run/jobserver', '/x')).toEqual({
      kind: 'fifo',
      path: '/x/run/jobserver',
    });
    expect(parsePoolSpec('3,4', '/')).toEqual({ kind: 'pipe', readFd: 3, writeFd: 4 });
    expect(() => parsePoolSpec('-2,-2', '/')).toThrow('the jobserver is disabled');
    expect(() => parsePoolSpec('', '/')).toThrow('empty');
  });
});

describe('emerge-shim command line', () => {
  it("shim options first, emerge's arguments from the first other word or after --", () => {
    expect(parseEmergeShimArgs(['--print-env', '--control=/c', '-uDN', '@world'])).toEqual({
      jobserver: undefined,
      control: '/c',
      emerge: 'emerge',
      print: 'env',
      args: ['-uDN', '@world'],
    });
    expect(parseEmergeShimArgs(['--jobserver', '/dev/steve', '--', '--help'])).toMatchObject({
      jobserver: '/dev/steve',
      args: ['--help'],
    });
    // Typos of shim options are errors; emerge's own options pass through.
    expect(() => parseEmergeShimArgs(['--print-make-cof'])).toThrow(
      /^unknown option '--print-make-cof' \(emerge's own options go after the shim's, or after --\)$/,
    );
    expect(() => parseEmergeShimArgs(['--jobservr', '/x'])).toThrow("unknown option '--jobservr'");
    expect(() => parseEmergeShimArgs(['--emerge'])).toThrow('--emerge needs a value');
    expect(parseEmergeShimArgs(['--ask', '--jobserver', '/x', '@world'])).toMatchObject({
      jobserver: undefined,
      args: ['--ask', '--jobserver', '/x', '@world'],
    });
    expect(parseEmergeShimArgs(['--emerge=/e', '-uDN', '--', '--x'])).toMatchObject({
      emerge: '/e',
      args: ['-uDN', '--', '--x'],
    });
    expect(parseEmergeShimArgs(['--verbose', '--pretend', '@world']).args).toEqual([
      '--verbose',
      '--pretend',
      '@world',
    ]);
    expect(() => parseEmergeShimArgs(['--print-env', '--print-make-conf'])).toThrow(UsageError);
  });
});

describe('Portage versions', () => {
  it('reads `emerge --version`', () => {
    expect(
      parsePortageVersion(
        'Portage 3.0.76 (python 3.12.8-final-0, default/linux/amd64/23.0, gcc-14, glibc-2.40-r8, 6.12.1 x86_64)\n',
      ),
    ).toEqual({ major: 3, minor: 0, patch: 76, text: '3.0.76' });
    expect(parsePortageVersion('emerge: command not found')).toBeNull();
  });

  it.each([
    ['3.0.63', 'none'],
    ['3.0.73', 'none'],
    ['3.0.74', 'token-per-job'],
    ['3.0.75', 'token-per-job'],
    ['3.0.76', 'implicit-slot'],
    ['3.1.0', 'implicit-slot'],
    ['4.0.0', 'implicit-slot'],
    ['2.3.99', 'none'],
  ])('%s: %s', (version, support) => {
    expect(portageSupport(parsePortageVersion(`Portage ${version} (x)`))).toBe(support);
  });

  it('an unknown version takes no part', () => {
    expect(portageSupport(null)).toBe('none');
  });
});

describe('what emerge-shim sets', () => {
  it.each([
    [['-uDN', '@world'], false],
    [['--jobs', '@world'], true],
    [['--jobs=4'], true],
    [['--jo=4'], true],
    [['-j4'], true],
    [['-avj'], true],
    [['--jobserver-whatever'], false],
    [['--', '-j4'], false],
    [['--keep-going', 'dev-libs/json-c'], false],
  ])('userGaveJobs(%j) = %s', (args, expected) => {
    expect(userGaveJobs(args)).toBe(expected);
  });

  it('FEATURES gets jobserver-token once', () => {
    expect(featuresWithJobserver(undefined)).toBe('jobserver-token');
    expect(featuresWithJobserver(' buildpkg  ccache ')).toBe('buildpkg ccache jobserver-token');
    expect(featuresWithJobserver('jobserver-token buildpkg')).toBe('jobserver-token buildpkg');
  });

  it('MAKEFLAGS carries the auth and MAKEOPTS -l, never -j', () => {
    // No leading space (make's own MAKEFLAGS has one; a user reads and pastes this).
    expect(emergeMakeflags('/dev/steve', undefined)).toBe('--jobserver-auth=fifo:/dev/steve');
    expect(emergeMakeflags('/dev/steve', '-j32')).toBe('--jobserver-auth=fifo:/dev/steve');
    expect(emergeMakeflags('/dev/steve', '-j32 -l30')).toBe(
      '-l30 --jobserver-auth=fifo:/dev/steve',
    );
    expect(emergeMakeflags('/dev/steve', '--jobs=8 --load-average=7.5 -s')).toBe(
      '-l7.5 --jobserver-auth=fifo:/dev/steve',
    );
  });

  it('a plan per Portage branch', () => {
    const base = {
      poolPath: '/dev/steve',
      poolJobs: 32,
      makeopts: '-j32 -l30',
      features: undefined,
      args: ['-uDN', '@world'],
    };
    const newer = planEmerge({ ...base, version: parsePortageVersion('Portage 3.0.76 (x)') });
    expect(newer).toEqual({
      support: 'implicit-slot',
      env: { MAKEFLAGS: '-l30 --jobserver-auth=fifo:/dev/steve', FEATURES: 'jobserver-token' },
      args: ['--jobs=32', '-uDN', '@world'],
      tokens: 1,
      warnings: [],
    });
    const middle = planEmerge({ ...base, version: parsePortageVersion('Portage 3.0.74 (x)') });
    expect(middle.tokens).toBe(0);
    expect(middle.args).toEqual(['--jobs=32', '-uDN', '@world']);
    const older = planEmerge({ ...base, version: parsePortageVersion('Portage 3.0.70 (x)') });
    expect(older.env).toEqual({ MAKEFLAGS: '-l30 --jobserver-auth=fifo:/dev/steve' });
    expect(older.args).toEqual(['-uDN', '@world']);
    expect(older.tokens).toBe(1);
    // Only the "no jobserver-token" one: emake drops MAKEOPTS (-j32 included) once MAKEFLAGS is set.
    expect(older.warnings).toHaveLength(1);
    expect(older.warnings[0]).toContain('is older than 3.0.74');
    const unknownSize = planEmerge({
      ...base,
      poolJobs: null,
      version: parsePortageVersion('Portage 3.0.76 (x)'),
    });
    expect(unknownSize.args).toEqual(['-uDN', '@world']);
    expect(unknownSize.warnings[0]).toContain('the pool size is unknown');
  });

  it('shell quoting for --print-env', () => {
    expect(shellQuote('jobserver-token')).toBe('jobserver-token');
    expect(shellQuote(' -l30 --jobserver-auth=fifo:/dev/steve')).toBe(
      "' -l30 --jobserver-auth=fifo:/dev/steve'",
    );
    expect(shellQuote("it's")).toBe("'it'\\''s'");
  });
});
