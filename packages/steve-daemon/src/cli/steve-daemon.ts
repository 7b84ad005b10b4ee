/**
 * `steve-daemon`: serve one pool of job tokens to every build on the machine.
 *
 *   steve-daemon -j12                 CUSE /dev/steve, or FUSE /run/steve without CUSE
 *   steve-daemon -j12 --fuse /run/steve
 *   steve-daemon -j16 -a 4096 -l 20   with a memory and a load limit
 */

import { availableParallelism } from 'node:os';
import yargs from 'yargs';
import {
  DEFAULT_CUSE_NAME,
  DEFAULT_FUSE_DIR,
  DEFAULT_RESERVATION_TTL_MS,
  formatJobserverAuth,
} from '@steve/protocol';
import {
  DEFAULT_LIMIT_RECHECK_MS,
  type SchedulerConfig,
  validateConfigChanges,
} from '../core/index.js';
import { PoolServer, realNow } from '../daemon/pool-server.js';
import { cuseAvailable, startCuseFront } from '../fronts/cuse.js';
import { type RunningFront, startFuseFront } from '../fronts/fuse.js';
import { watchPid } from '../native/addon.js';
import { sampleProbes } from '../probes/probes.js';
import { lookupGroup } from './groups.js';

/** The group that owns the device by default, when it exists. */
export const DEFAULT_GROUP = 'jobserver';

export interface DaemonArgs {
  jobs: number;
  loadAverage: number | undefined;
  minJobs: number;
  minMemoryAvail: number | undefined;
  memoryPressure: number | undefined;
  perProcessLimit: number | undefined;
  reservationTtl: number;
  loadRecheck: number;
  fairness: 'least-held' | 'fifo';
  cuse: string | undefined;
  fuse: string | undefined;
  mode: string | undefined;
  group: string | undefined;
  allowOther: boolean;
  verbose: boolean;
  debug: boolean;
}

export function parseDaemonArgs(argv: string[]): DaemonArgs {
  const parsed = yargs(argv)
    .scriptName('steve-daemon')
    .usage(
      '$0 [options]\n\nServe one pool of GNU make jobserver tokens to every build on this machine.',
    )
    .option('jobs', {
      alias: 'j',
      type: 'number',
      default: availableParallelism(),
      describe: 'tokens in the pool (default: number of CPUs)',
    })
    .option('load-average', {
      alias: 'l',
      type: 'number',
      describe: 'above this 1-minute load average, only --min-jobs tokens go out',
    })
    .option('min-jobs', {
      alias: 'm',
      type: 'number',
      default: 1,
      describe: 'the floor of the load, memory and pressure limits',
    })
    .option('min-memory-avail', {
      alias: 'a',
      type: 'number',
      describe: 'below this MemAvailable (MiB), only --min-jobs tokens go out',
    })
    .option('memory-pressure', {
      type: 'number',
      describe: 'above this PSI memory "some avg10" (percent), only --min-jobs tokens go out',
    })
    .option('per-process-limit', {
      alias: 'p',
      type: 'number',
      describe: 'at most this many tokens per process',
    })
    .option('reservation-ttl', {
      type: 'number',
      default: DEFAULT_RESERVATION_TTL_MS,
      describe: 'ms a token reserved for a poller waits for its read',
    })
    .option('load-recheck', {
      type: 'number',
      default: DEFAULT_LIMIT_RECHECK_MS,
      describe: 'ms between samples of a limit while someone waits',
    })
    .option('fairness', {
      choices: ['least-held', 'fifo'] as const,
      default: 'least-held' as const,
      describe: 'grant order among waiters',
    })
    .option('cuse', {
      type: 'string',
      describe: `serve the character device /dev/NAME (default name: ${DEFAULT_CUSE_NAME})`,
    })
    .option('fuse', {
      type: 'string',
      describe: `serve DIR/jobserver from a FUSE mount (default DIR: ${DEFAULT_FUSE_DIR})`,
    })
    .option('mode', {
      type: 'string',
      describe: `permissions of the device or file, octal (default 0660 with group ${DEFAULT_GROUP}, else 0666)`,
    })
    .option('group', {
      type: 'string',
      describe: `group owning the device or file (default: ${DEFAULT_GROUP} when it exists)`,
    })
    .option('allow-other', {
      type: 'boolean',
      default: true,
      describe: 'FUSE: let other users open the mount',
    })
    .option('verbose', {
      alias: 'v',
      type: 'boolean',
      default: false,
      describe: 'log every grant, return and reservation',
    })
    .option('debug', {
      alias: 'd',
      type: 'boolean',
      default: false,
      describe: 'also print libfuse debug output',
    })
    .strict()
    .help()
    .version(false)
    .parseSync();
  return {
    jobs: parsed.jobs,
    loadAverage: parsed['load-average'],
    minJobs: parsed['min-jobs'],
    minMemoryAvail: parsed['min-memory-avail'],
    memoryPressure: parsed['memory-pressure'],
    perProcessLimit: parsed['per-process-limit'],
    reservationTtl: parsed['reservation-ttl'],
    loadRecheck: parsed['load-recheck'],
    fairness: parsed.fairness,
    cuse: parsed.cuse,
    fuse: parsed.fuse,
    mode: parsed.mode,
    group: parsed.group,
    allowOther: parsed['allow-other'],
    verbose: parsed.verbose || parsed.debug,
    debug: parsed.debug,
  };
}

/** The scheduler settings from the command line; throws with the reason when invalid. */
export function configFromArgs(args: DaemonArgs): Partial<SchedulerConfig> & { jobs: number } {
  const config = {
    jobs: args.jobs,
    minJobs: args.minJobs,
    maxLoadAverage: args.loadAverage ?? null,
    minMemoryAvailableMiB: args.minMemoryAvail ?? null,
    maxMemoryPressureAvg10: args.memoryPressure ?? null,
    perProcessLimit: args.perProcessLimit ?? null,
    reservationTtlMs: args.reservationTtl,
    limitRecheckMs: args.loadRecheck,
    fairness: args.fairness,
  };
  const problem = validateConfigChanges(config);
  if (problem !== null) throw new UsageError(problem);
  return config;
}

export class UsageError extends Error {}

/** Which permissions to give the device: an explicit --mode/--group, else the defaults. */
export function permissions(
  args: DaemonArgs,
  log: (line: string) => void,
): { mode: number; gid: number | null } {
  let gid: number | null = null;
  if (args.group !== undefined) {
    gid = lookupGroup(args.group);
    if (gid === null)
      throw new UsageError(
        `no group '${args.group}' on this system; create it (groupadd ${args.group}) or pass another --group`,
      );
  } else {
    gid = lookupGroup(DEFAULT_GROUP);
  }
  let mode: number;
  if (args.mode !== undefined) {
    if (!/^0?[0-7]{3}$/.test(args.mode))
      throw new UsageError(`--mode must be octal permissions such as 0660, got '${args.mode}'`);
    mode = parseInt(args.mode, 8);
  } else if (gid !== null) {
    mode = 0o660;
  } else {
    mode = 0o666;
    log(
      `steve-daemon: warning: no '${DEFAULT_GROUP}' group, so the jobserver is open to every user (mode 0666); create the group (groupadd ${DEFAULT_GROUP}) to restrict it`,
    );
  }
  return { mode, gid };
}

/** The line a user copies: where the pool is and the MAKEFLAGS to use. */
export function servingLine(front: RunningFront, jobs: number): string {
  const auth = formatJobserverAuth({ kind: 'fifo', path: front.jobserverPath });
  return (
    `steve-daemon: serving ${jobs} tokens on ${front.jobserverPath} (${front.kind.toUpperCase()}); use MAKEFLAGS="${auth}"\n` +
    `  GNU make older than 4.4 stops on a fifo: auth; give it the pool as a descriptor instead: ` +
    `MAKEFLAGS="--jobserver-auth=3,3" make 3<>${front.jobserverPath}`
  );
}

export async function main(argv: string[]): Promise<void> {
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  let args: DaemonArgs;
  let config: Partial<SchedulerConfig> & { jobs: number };
  let access: { mode: number; gid: number | null };
  try {
    args = parseDaemonArgs(argv);
    config = configFromArgs(args);
    access = permissions(args, log);
  } catch (error) {
    log(`steve-daemon: ${(error as Error).message}`);
    process.exit(2);
  }

  const server = new PoolServer({
    config,
    verbose: args.verbose,
    services: {
      now: realNow,
      watchPid,
      sample: (current) =>
        sampleProbes({
          load: current.maxLoadAverage !== null,
          memory: current.minMemoryAvailableMiB !== null,
          pressure: current.maxMemoryPressureAvg10 !== null,
        }),
      log,
    },
  });

  const fronts: RunningFront[] = [];
  let stopping = false;
  const stop = (code: number): void => {
    if (stopping) return;
    stopping = true;
    for (const front of fronts) front.close();
    server.stop();
    // Let the sessions answer pending requests and unmount before leaving.
    setImmediate(() => process.exit(code));
  };
  const onUnexpectedClose = (reason: string): void => {
    log(`steve-daemon: the jobserver went away (${reason}); exiting`);
    stop(1);
  };

  try {
    const wantCuse = args.cuse !== undefined;
    const wantFuse = args.fuse !== undefined;
    if (wantCuse || (!wantFuse && cuseAvailable())) {
      const name = args.cuse || DEFAULT_CUSE_NAME;
      fronts.push(
        await startCuseFront(server, {
          name,
          mode: access.mode,
          gid: access.gid,
          debug: args.debug,
          onUnexpectedClose,
        }),
      );
    } else if (!wantFuse) {
      log(
        `steve-daemon: no /dev/cuse (this kernel has no CUSE, or the cuse module is not loaded: modprobe cuse); serving a FUSE file instead`,
      );
    }
    if (wantFuse || fronts.length === 0) {
      const dir = args.fuse || DEFAULT_FUSE_DIR;
      fronts.push(
        startFuseFront(
          server,
          {
            dir,
            fileMode: access.mode,
            fileGid: access.gid,
            allowOther: args.allowOther,
            debug: args.debug,
            onUnexpectedClose,
          },
          log,
        ),
      );
    }
  } catch (error) {
    log(`steve-daemon: ${(error as Error).message}`);
    for (const front of fronts) front.close();
    server.stop();
    process.exitCode = 1;
    return;
  }

  for (const front of fronts) process.stdout.write(`${servingLine(front, config.jobs)}\n`);
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));
  process.on('SIGHUP', () => stop(0));
  process.on('SIGUSR1', () => log(server.report().trimEnd()));
}
