/**
 * steve-pytest: `env` prints the lines that load the plugin, `install`
 * installs it with the system's pip.
 */
import { DEFAULT_PYTHON, PLUGIN_MODULE, envLines, pythonDir } from './env.js';
import { PytestBridgeError } from './errors.js';
import { install } from './install.js';

const USAGE = `usage: steve-pytest COMMAND

  env [--plain]       print the lines that load the ${PLUGIN_MODULE} pytest plugin:
                        export PYTHONPATH=…  export EPYTEST_FLAGS='-p ${PLUGIN_MODULE}'
                      (eval "$(steve-pytest env)"; --plain: NAME="value" for make.conf/package.env)
  install [--python PATH] [--dry-run] [PIP ARGS…]
                      pip install --no-build-isolation --no-index the plugin (default
                      ${DEFAULT_PYTHON}); e.g. --break-system-packages, --user, --target DIR
  path                print the plugin's directory
`;

/** Runs one command; returns the exit code. */
export async function main(
  argv: readonly string[],
  out: (text: string) => void = (t) => process.stdout.write(t),
  err: (text: string) => void = (t) => process.stderr.write(t),
): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'env': {
        const unknown = rest.filter((a) => a !== '--plain');
        if (unknown.length > 0)
          throw new PytestBridgeError(`unknown option ${unknown[0]}`, 'see steve-pytest --help');
        out(`${envLines({ style: rest.includes('--plain') ? 'plain' : 'shell' }).join('\n')}\n`);
        return 0;
      }
      case 'install': {
        let python: string | undefined;
        let dryRun = false;
        const pipArgs: string[] = [];
        for (let i = 0; i < rest.length; i++) {
          const arg = rest[i] as string;
          if (arg === '--python') {
            python = rest[++i];
            if (python === undefined)
              throw new PytestBridgeError(
                '--python needs a path',
                'e.g. --python /usr/bin/python3',
              );
          } else if (arg === '--dry-run') dryRun = true;
          else pipArgs.push(arg);
        }
        const result = install({ python, pipArgs, dryRun, onOutput: out });
        if (dryRun) out(`${result.command.join(' ')}\n`);
        else
          out(
            `installed ${PLUGIN_MODULE}; pytest loads it with -p ${PLUGIN_MODULE} (EPYTEST_FLAGS="-p ${PLUGIN_MODULE}")\n`,
          );
        return 0;
      }
      case 'path':
        out(`${pythonDir()}\n`);
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        out(USAGE);
        return command === undefined ? 2 : 0;
      default:
        err(`steve-pytest: unknown command '${command}'\n${USAGE}`);
        return 2;
    }
  } catch (error) {
    if (error instanceof PytestBridgeError) {
      err(`steve-pytest: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}
