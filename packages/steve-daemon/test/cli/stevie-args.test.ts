import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '@steve/cli';
import { SETTING_NAMES } from '@steve/protocol';
import { describe, expect, it } from 'vitest';
import {
  SETTING_CLI_NAMES,
  SETTINGS,
  parseStevieArgs,
  settingNamed,
} from '../../src/cli/stevie.js';

const PACKAGE = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(PACKAGE, 'bin', 'stevie.js');

async function usageError(argv: string[]): Promise<string> {
  const error: unknown = await parseStevieArgs(argv).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UsageError);
  const message = (error as Error).message;
  expect(message).not.toContain('\n');
  return message;
}

describe('stevie command line', () => {
  it('rejects a mistyped subcommand and unknown options in one line', async () => {
    expect(await usageError(['stauts'])).toMatch(/unknown command 'stauts'.*'stevie status'/);
    expect(await usageError(['status', '--bogus'])).toBe("unknown option '--bogus'");
    expect(await usageError(['--bogus'])).toBe("unknown option '--bogus'");
    expect(await usageError(['get', 'jobs', 'extra'])).toMatch(/Unknown command: extra/);
    expect(await usageError([])).toMatch(/say what to do/);
    // Quoted once, as typed (no camelCase copy from yargs).
    expect(await usageError(['--get-memory-pressure'])).toBe(
      "unknown option '--get-memory-pressure'",
    );
    expect(await usageError(['status', '--bogus-flag'])).toBe("unknown option '--bogus-flag'");
    // Words after `--` are not a way around "takes nothing more".
    expect(await usageError(['get', 'jobs', '--', 'x'])).toBe("unexpected 'x' after 'stevie get'");
    expect(await usageError(['help', 'stauts'])).toMatch(/^no command 'stauts' to help with/);
  });

  it("help NAME prints that command's help", async () => {
    // (`stevie help` alone is yargs's --help: see the bin tests below.)
    const help = async (argv: string[]): Promise<string> => {
      const { action } = await parseStevieArgs(argv);
      expect(action.kind).toBe('help');
      return (action as { text: string }).text;
    };
    const set = await help(['help', 'set']);
    expect(set).toMatch(/^stevie set <name> <value>/);
    expect(set).toContain('load-average');
    expect(set).not.toContain('stevie status');
    expect(await help(['help', 'status'])).toMatch(/^stevie status\n[^]*--json/);
  });

  it('quotes what the user typed', async () => {
    expect(await usageError(['set', 'jobs', 'abc'])).toBe(
      "jobs wants a whole number >= 1, got 'abc'",
    );
    expect(await usageError(['set', 'load-average', 'x'])).toBe(
      "load-average wants a number >= 0 or 'none', got 'x'",
    );
    expect(await usageError(['--set-jobs', 'abc'])).toBe(
      "--set-jobs wants a whole number >= 1, got 'abc'",
    );
    expect(await usageError(['set', 'colour', '3'])).toMatch(/^unknown setting 'colour'/);
    expect(await usageError(['--style', 'bad', '--', 'make'])).toMatch(/got 'bad'/);
  });

  it('get and set take the same names, and get lists those names', async () => {
    // Every protocol setting has one name, and it is known to both.
    expect(Object.keys(SETTINGS).sort()).toEqual([...SETTING_NAMES].sort());
    for (const setting of SETTING_NAMES) {
      const { name } = SETTINGS[setting];
      expect(settingNamed(name)).toBe(setting);
      expect((await parseStevieArgs(['get', name])).action).toEqual({
        kind: 'get',
        setting,
        json: false,
      });
      const value = setting === 'fairness' ? 'fifo' : '3';
      expect((await parseStevieArgs(['set', name, value])).action).toMatchObject({
        kind: 'set',
        setting,
      });
    }
    expect(SETTING_CLI_NAMES).toContain('load-average');
    expect(SETTING_CLI_NAMES).not.toContain('maxLoadAverage');
    expect((await parseStevieArgs(['set', 'load-average', 'none'])).action).toEqual({
      kind: 'set',
      setting: 'maxLoadAverage',
      value: null,
    });
  });

  it('keeps --control anywhere for subcommands, and steve flags in order', async () => {
    expect(await parseStevieArgs(['status', '--json', '--control', '/s'])).toEqual({
      control: '/s',
      action: { kind: 'status', json: true },
    });
    expect(await parseStevieArgs(['--control=/s', 'set', 'jobs', '5'])).toEqual({
      control: '/s',
      action: { kind: 'set', setting: 'jobs', value: 5 },
    });
    expect(
      (await parseStevieArgs(['--get-jobs', '--set-jobs', '8', '-t', '--control', '/s'])).action,
    ).toEqual({
      kind: 'steve-flags',
      flags: [
        { kind: 'get', setting: 'jobs' },
        { kind: 'set', setting: 'jobs', value: 8 },
        { kind: 'get-tokens' },
      ],
    });
  });

  it("passes a wrapped command's words through untouched", async () => {
    expect(await parseStevieArgs(['--control', '/s', '--', 'make', '-f', 'm', '--help'])).toEqual({
      control: '/s',
      action: { kind: 'run', commandLine: ['make', '-f', 'm', '--help'], style: null },
    });
    expect(
      await parseStevieArgs(['--control', '/s', '/usr/bin/python3', '-c', 'x', '--control', 'y']),
    ).toEqual({
      control: '/s',
      action: {
        kind: 'run',
        commandLine: ['/usr/bin/python3', '-c', 'x', '--control', 'y'],
        style: null,
      },
    });
    expect(
      (await parseStevieArgs(['--style', 'pipe', '--', 'status', '-j', '007'])).action,
    ).toEqual({ kind: 'run', commandLine: ['status', '-j', '007'], style: 'pipe' });
  });
});

describe('bin/stevie.js (built)', () => {
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000 });

  it('--version prints the package version, --help mentions it', () => {
    const { version } = JSON.parse(readFileSync(join(PACKAGE, 'package.json'), 'utf8')) as {
      version: string;
    };
    expect(run('--version')).toMatchObject({ status: 0, stdout: `${version}\n` });
    expect(run('--help')).toMatchObject({
      status: 0,
      stdout: expect.stringContaining('--version'),
    });
    expect(run('set', '--help')).toMatchObject({
      status: 0,
      stdout: expect.stringContaining('load-average'),
    });
    const help = run('help');
    expect(help.status).toBe(0);
    for (const name of ['status', 'top', 'get', 'set', 'events', 'metrics'])
      expect(help.stdout).toContain(`stevie ${name}`);
    expect(run('help', 'get')).toMatchObject({
      status: 0,
      stdout: expect.stringMatching(/^stevie get \[name\]\n/),
    });
  });

  it('a usage error is one line and exit 2', () => {
    expect(run('stauts')).toMatchObject({
      status: 2,
      stderr: expect.stringMatching(
        /^stevie: unknown command 'stauts'[^\n]*\(see stevie --help\)\n$/,
      ),
    });
    expect(run('set', 'jobs', 'abc')).toMatchObject({
      status: 2,
      stderr: "stevie: jobs wants a whole number >= 1, got 'abc' (see stevie --help)\n",
    });
  });
});
