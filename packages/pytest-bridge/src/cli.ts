/**
 * steve-pytest: `env` prints the lines that load the plugin, `install`
 * installs it with the system's pip, `path` prints where it is.
 *
 *   steve-pytest env --plain >> /etc/portage/make.conf
 *   steve-pytest install --break-system-packages
 */
import { UsageError, command } from '@steve/cli';
import { DEFAULT_PYTHON, PLUGIN_MODULE, envLines, pythonDir } from './env.js';
import { PytestBridgeError } from './errors.js';
import { install } from './install.js';

export const NAME = 'steve-pytest';

type Action = (out: (text: string) => void) => void;

const COMMANDS = ['env', 'install', 'path'] as const;

/** `Unknown command: evn` gains `; did you mean 'steve-pytest env'?` (one letter off, or two swapped). */
function withSuggestion(message: string): string {
  const typed = /^Unknown command: (\S+)$/.exec(message)?.[1];
  if (typed === undefined) return message;
  const near = COMMANDS.find((name) => closeTo(typed, name));
  return near === undefined ? message : `${message}; did you mean '${NAME} ${near}'?`;
}

function closeTo(typed: string, name: string): boolean {
  if (typed === name || Math.abs(typed.length - name.length) > 1) return false;
  if (typed.length === name.length) {
    const differ = [...typed].flatMap((c, i) => (c === name[i] ? [] : [i]));
    if (differ.length === 1) return true;
    const [i, j] = differ;
    return (
      differ.length === 2 &&
      j === (i as number) + 1 &&
      typed[i as number] === name[j] &&
      typed[j] === name[i as number]
    );
  }
  const [short, long] = typed.length < name.length ? [typed, name] : [name, typed];
  return [...long].some((_, i) => long.slice(0, i) + long.slice(i + 1) === short);
}

function parse(argv: readonly string[]): Promise<{ action: Action | null; output: string }> {
  let action: Action | null = null;
  const parser = command(NAME, import.meta.url, argv)
    .usage(
      `$0 COMMAND [options]\n\nLoad the ${PLUGIN_MODULE} pytest plugin, which makes pytest-xdist workers take ` +
        'job tokens from the steve pool (or any GNU make jobserver).',
    )
    .command(
      'env',
      `print the lines that load the plugin: EPYTEST_FLAGS='-p ${PLUGIN_MODULE}', plus PYTHONPATH ` +
        `when ${DEFAULT_PYTHON} cannot import it (eval "$(steve-pytest env)")`,
      (y) =>
        y
          .option('plain', {
            type: 'boolean',
            default: false,
            describe: 'NAME="value" lines for /etc/portage/make.conf or package.env',
          })
          .option('python', {
            type: 'string',
            requiresArg: true,
            default: DEFAULT_PYTHON,
            describe: 'the interpreter that must find the plugin',
          }),
      (args) => {
        action = (out) =>
          out(
            `${envLines({ style: args.plain ? 'plain' : 'shell', python: args.python }).join('\n')}\n`,
          );
      },
    )
    .command(
      'install [pip..]',
      'pip install --no-build-isolation --no-index the plugin, offline; every other argument ' +
        'goes to pip (--break-system-packages, --user, --target DIR, --no-deps), and all after -- ' +
        "(pip's own --python or --dry-run)",
      (y) =>
        y
          // pip's own options (--user, --target DIR) are passed through, not rejected.
          // A command's parserConfiguration replaces the whole one, so repeat
          // @steve/cli's; after `--` everything goes to pip, even pip's own
          // --python and --dry-run.
          .parserConfiguration({
            'parse-numbers': false,
            'parse-positional-numbers': false,
            'unknown-options-as-args': true,
            'populate--': true,
          })
          .positional('pip', { type: 'string', array: true, describe: 'arguments for pip install' })
          .option('python', {
            type: 'string',
            requiresArg: true,
            default: DEFAULT_PYTHON,
            describe: 'the interpreter whose pip installs it',
          })
          .option('dry-run', {
            type: 'boolean',
            default: false,
            describe: 'print the pip command instead of running it',
          }),
      (args) => {
        const pipArgs = [...(args.pip ?? []), ...((args['--'] ?? []) as unknown[])].map(String);
        const dryRun = args['dry-run'];
        action = (out) => {
          const result = install({ python: args.python, pipArgs, dryRun, onOutput: out });
          if (dryRun) out(`${result.command.join(' ')}\n`);
          else
            out(
              `installed ${PLUGIN_MODULE}; pytest loads it with -p ${PLUGIN_MODULE} (EPYTEST_FLAGS="-p ${PLUGIN_MODULE}")\n`,
            );
        };
      },
    )
    .command(
      'path',
      "print the plugin's directory",
      (y) => y,
      () => {
        action = (out) => out(`${pythonDir()}\n`);
      },
    )
    .epilog(
      'The pool comes from steve-daemon (start it with `npx steve-daemon -j N`); the plugin finds it ' +
        'through MAKEFLAGS, STEVE_JOBSERVER or --jobserver PATH.',
    );
  return new Promise((resolve, reject) => {
    parser.parse(
      [...argv],
      {},
      (error: Error | undefined | null, _args: unknown, output: string) => {
        if (error) reject(error);
        else resolve({ action, output });
      },
    );
  });
}

/** Runs one command line; returns the exit code (2: a usage error, 1: a failure). */
export async function main(
  argv: readonly string[],
  out: (text: string) => void = (t) => process.stdout.write(t),
  err: (text: string) => void = (t) => process.stderr.write(t),
): Promise<number> {
  try {
    const { action, output } = await parse(argv);
    if (action === null) {
      // No command. Not yargs' demandCommand: it would win over strict's
      // "unknown option '--bogus'" for `steve-pytest --bogus`.
      if (output === '') throw new UsageError(`a command is needed: ${COMMANDS.join(', ')}`);
      // --help or --version: yargs wrote nothing, it hands the text back.
      out(output.endsWith('\n') ? output : `${output}\n`);
      return 0;
    }
    action(out);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      err(`${NAME}: ${withSuggestion(error.message)} (see ${NAME} --help)\n`);
      return 2;
    }
    if (error instanceof PytestBridgeError) {
      err(`${NAME}: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}
