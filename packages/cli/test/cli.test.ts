import { describe, expect, it } from 'vitest';
import {
  UsageError,
  command,
  count,
  decimal,
  explainYargsMessage,
  packageVersion,
  parseCount,
} from '../src/index.js';

const parse = (argv: string[]) =>
  command('demo', import.meta.url, argv)
    .option('jobs', { alias: 'j', ...count('-j', { min: 1 }), default: 2 })
    .option('load', { ...decimal('--load', { min: 0 }) })
    .command('status', 'show it')
    .command('set <name> <value>', 'change it')
    .parseSync();

describe('command()', () => {
  it('parses numbers from what the user typed', () => {
    expect(parse(['-j', '12']).jobs).toBe(12);
    expect(parse(['--load', '2.5']).load).toBe(2.5);
    expect(parse([]).jobs).toBe(2);
  });

  it('quotes a bad number instead of saying NaN', () => {
    expect(() => parse(['-j', 'abc'])).toThrow(
      new UsageError("-j wants a whole number >= 1, got 'abc'"),
    );
    expect(() => parse(['-j', '0'])).toThrow("-j wants a whole number >= 1, got '0'");
    expect(() => parse(['-j', '1.5'])).toThrow("got '1.5'");
    expect(() => parse(['--load', 'x'])).toThrow("--load wants a number >= 0, got 'x'");
  });

  it('rejects unknown options and mistyped commands in one line', () => {
    expect(() => parse(['--jbos', '3'])).toThrow(UsageError);
    expect(() => parse(['--jbos', '3'])).toThrow("unknown option '--jbos'");
    expect(() => parse(['stauts'])).toThrow(/Unknown command: stauts/);
    try {
      parse(['stauts']);
    } catch (error) {
      expect((error as Error).message).not.toContain('\n');
    }
  });

  it('keeps positional values as typed (no number parsing)', () => {
    expect(parse(['set', 'jobs', '007']).value).toBe('007');
  });

  it('takes the last of a repeated number option', () => {
    expect(parse(['-j', '3', '-j', '5']).jobs).toBe(5);
  });
});

describe('parseCount', () => {
  it('bounds above', () => {
    expect(() => parseCount('--tokens', '9', { min: 1, max: 4 })).toThrow(
      "--tokens wants a whole number from 1 to 4, got '9'",
    );
  });
});

describe('packageVersion', () => {
  it('reads the nearest package.json', () => {
    expect(packageVersion(import.meta.url)).toBe('0.1.0');
  });
});

describe('explainYargsMessage', () => {
  it('names options as typed: unknown ones, missing values, conflicts; a hint only where given', () => {
    expect(explainYargsMessage(['-vx', 'make'], 'Unknown argument: x', 'after --')).toBe(
      "unknown option '-x' (after --)",
    );
    expect(explainYargsMessage(['--frob=3', '--zap'], 'Unknown arguments: frob, zap')).toBe(
      "unknown options '--frob', '--zap'",
    );
    expect(explainYargsMessage(['--tokens'], 'Not enough arguments following: tokens')).toBe(
      '--tokens needs a value',
    );
    expect(
      explainYargsMessage(
        ['--device', 'a', '--jobserver', 'b'],
        'Arguments device and jobserver are mutually exclusive',
      ),
    ).toBe('give one of --device and --jobserver');
    expect(explainYargsMessage([], 'Unknown command: stauts')).toBe('Unknown command: stauts');
  });
});
