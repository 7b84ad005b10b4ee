/**
 * `steve-daemon`: serve one pool of job tokens to every build on the machine.
 *
 *   steve-daemon -j12                 CUSE /dev/steve, or FUSE /run/steve without CUSE
 *   steve-daemon -j12 --fuse /run/steve
 *   steve-daemon -j16 -a 4096 -l 20   with a memory and a load limit
 */

import { type Server as HttpServer, createServer as createHttpServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { UsageError, command, count, decimal, exitOnUsageError } from '@steve/cli';
import {
  CONTROL_SOCKET_ENV,
  DEFAULT_CONTROL_SOCKET_PATH,
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
import { DEFAULT_FIFO_PREFETCH, startFifoFront } from '../fronts/fifo.js';
import { PrivateFifos } from '../fronts/private-fifos.js';
import { peerCredentials, watchPid } from '../native/addon.js';
import { type ControlServer, startControlServer } from '../control/server.js';
import { sampleProbes } from '../probes/probes.js';
import {
  type SystemUser,
  becomeUser,
  unmountWhenGone,
  userToBecome,
} from '../daemon/privileges.js';
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
  perUserLimit: number | undefined;
  reservationTtl: number;
  loadRecheck: number;
  fairness: 'least-held' | 'fifo';
  cuse: string | undefined;
  fuse: string | undefined;
  mode: string | undefined;
  group: string | undefined;
  allowOther: boolean | undefined;
  user: string | undefined;
  fifo: string | undefined;
  fifoPrefetch: number;
  privateFifoDir: string | undefined;
  control: string | undefined;
  metricsListen: string | undefined;
  verbose: boolean;
  debug: boolean;
}

export function parseDaemonArgs(argv: string[]): DaemonArgs {
  const parsed = command('steve-daemon', import.meta.url, argv)
    .usage(
      '$0 [options]\n\nServe one pool of GNU make jobserver tokens to every build on this machine.',
    )
    .option('jobs', {
      alias: 'j',
      ...count('--jobs', { min: 1 }),
      default: availableParallelism(),
      describe: 'tokens in the pool (default: number of CPUs)',
    })
    .option('load-average', {
      alias: 'l',
      ...decimal('--load-average', { min: 0 }),
      describe: 'above this 1-minute load average, only --min-jobs tokens go out',
    })
    .option('min-jobs', {
      alias: 'm',
      ...count('--min-jobs', { min: 1 }),
      default: 1,
      describe: 'the floor of the load, memory and pressure limits',
    })
    .option('min-memory-avail', {
      alias: 'a',
      ...count('--min-memory-avail'),
      describe: 'below this MemAvailable (MiB), only --min-jobs tokens go out',
    })
    .option('memory-pressure', {
      ...decimal('--memory-pressure', { min: 0, max: 100 }),
      describe: 'above this PSI memory "some avg10" (percent), only --min-jobs tokens go out',
    })
    .option('per-process-limit', {
      alias: 'p',
      ...count('--per-process-limit', { min: 1 }),
      describe: 'at most this many tokens per process',
    })
    .option('per-user-limit', {
      ...count('--per-user-limit', { min: 1 }),
      describe: "at most this many tokens for one user's processes together (by uid)",
    })
    .option('reservation-ttl', {
      ...count('--reservation-ttl', { min: 1 }),
      default: DEFAULT_RESERVATION_TTL_MS,
      describe: 'ms a token reserved for a poller waits for its read',
    })
    .option('load-recheck', {
      ...count('--load-recheck', { min: 1 }),
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
      describe: `permissions of the device or file, octal (default 0660 with group ${DEFAULT_GROUP}, else 0600: root and the daemon's user only; 0666 opens it to every user)`,
    })
    .option('group', {
      type: 'string',
      describe: `group owning the device or file (default: ${DEFAULT_GROUP} when it exists)`,
    })
    .option('fifo', {
      type: 'string',
      describe:
        'also serve a real named pipe at PATH for clients that demand one (ninja <= 1.13.2)',
    })
    .option('fifo-prefetch', {
      ...count('--fifo-prefetch', { min: 1 }),
      default: DEFAULT_FIFO_PREFETCH,
      describe: 'idle tokens the fifo front keeps parked in the pipe while clients have it open',
    })
    .option('private-fifo-dir', {
      type: 'string',
      describe:
        'where private fifos for wrapped commands (stevie -- ninja) go (default: steve-fifos beside the control socket)',
    })
    .option('control', {
      type: 'string',
      describe: `control socket for stevie (default: $STEVE_CONTROL or ${DEFAULT_CONTROL_SOCKET_PATH})`,
    })
    .option('metrics-listen', {
      type: 'string',
      describe: 'also serve Prometheus metrics over HTTP on HOST:PORT (loopback only)',
    })
    .option('user', {
      type: 'string',
      describe:
        'once the device, mount, fifo and socket are set up, drop root and run as this user (its gid, plus --group)',
    })
    .option('allow-other', {
      type: 'boolean',
      describe:
        'FUSE: let other users open the mount (default: on as root, or when /etc/fuse.conf has user_allow_other)',
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
    .parseSync();
  return {
    jobs: parsed.jobs,
    loadAverage: parsed['load-average'],
    minJobs: parsed['min-jobs'],
    minMemoryAvail: parsed['min-memory-avail'],
    memoryPressure: parsed['memory-pressure'],
    perProcessLimit: parsed['per-process-limit'],
    perUserLimit: parsed['per-user-limit'],
    reservationTtl: parsed['reservation-ttl'],
    loadRecheck: parsed['load-recheck'],
    fairness: parsed.fairness,
    cuse: parsed.cuse,
    fuse: parsed.fuse,
    mode: parsed.mode,
    group: parsed.group,
    allowOther: parsed['allow-other'],
    user: parsed.user,
    fifo: parsed.fifo,
    fifoPrefetch: parsed['fifo-prefetch'],
    privateFifoDir: parsed['private-fifo-dir'],
    control: parsed.control,
    metricsListen: parsed['metrics-listen'],
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
    perUserLimit: args.perUserLimit ?? null,
    reservationTtlMs: args.reservationTtl,
    limitRecheckMs: args.loadRecheck,
    fairness: args.fairness,
  };
  const problem = validateConfigChanges(config);
  if (problem !== null) throw new UsageError(problem);
  return config;
}

/** Which permissions to give the device: an explicit --mode/--group, else the defaults. */
export function permissions(
  args: DaemonArgs,
  log: (line: string) => void,
  groupId: (name: string) => number | null = lookupGroup,
): { mode: number; gid: number | null } {
  let gid: number | null = null;
  if (args.group !== undefined) {
    gid = groupId(args.group);
    if (gid === null)
      throw new UsageError(
        `no group '${args.group}' on this system; create it (groupadd ${args.group}) or pass another --group`,
      );
  } else {
    gid = groupId(DEFAULT_GROUP);
  }
  let mode: number;
  if (args.mode !== undefined) {
    if (!/^0?[0-7]{3}$/.test(args.mode))
      throw new UsageError(`--mode must be octal permissions such as 0660, got '${args.mode}'`);
    mode = parseInt(args.mode, 8);
  } else if (gid !== null) {
    mode = 0o660;
  } else {
    // Open to everyone, any local user could drain the pool (a denial of service).
    mode = 0o600;
    log(
      `steve-daemon: no '${DEFAULT_GROUP}' group: only root and the daemon's user may take tokens (mode 0600); create it (groupadd ${DEFAULT_GROUP}) and add the build users (portage too), or pass --mode 0666 to open the pool to every local user`,
    );
  }
  return { mode, gid };
}

/** The FUSE `allow_other` option: as asked, else on when the mount is allowed to have it. */
export function fuseAllowOther(
  asked: boolean | undefined,
  uid: number,
  fuseConf: string | null,
  log: (line: string) => void,
): boolean {
  if (uid === 0) return asked ?? true;
  // fusermount3 refuses allow_other to other users unless fuse.conf says user_allow_other.
  const permitted = fuseConf !== null && /^\s*user_allow_other\s*$/m.test(fuseConf);
  if (asked === true && !permitted)
    throw new UsageError(
      `--allow-other as uid ${uid} needs 'user_allow_other' in /etc/fuse.conf (fusermount3 refuses it otherwise); add that line, or run the daemon as root`,
    );
  if (asked === undefined && !permitted)
    log(
      `steve-daemon: not root and /etc/fuse.conf has no user_allow_other: only uid ${uid} can open the FUSE file (add user_allow_other to /etc/fuse.conf to share it with other users)`,
    );
  return asked ?? permitted;
}

function readFuseConf(): string | null {
  try {
    return readFileSync('/etc/fuse.conf', 'utf8');
  } catch {
    return null;
  }
}

/** The line a user copies: where the pool is and the MAKEFLAGS to use. */
export function servingLine(front: RunningFront, jobs: number): string {
  const auth = formatJobserverAuth({ kind: 'fifo', path: front.jobserverPath });
  if (front.kind === 'fifo') {
    return `steve-daemon: serving ${jobs} tokens on ${front.jobserverPath} (FIFO, a sub-pool for clients that want a real named pipe, e.g. ninja 1.13); use MAKEFLAGS="${auth}"`;
  }
  return (
    `steve-daemon: serving ${jobs} tokens on ${front.jobserverPath} (${front.kind.toUpperCase()}); use MAKEFLAGS="${auth}"\n` +
    `  GNU make older than 4.4 stops on a fifo: auth; give it the pool as a descriptor instead: ` +
    `MAKEFLAGS="${formatJobserverAuth({ kind: 'pipe', readFd: 3, writeFd: 3 })}" make 3<>${front.jobserverPath}`
  );
}

/** Where the control socket really goes, and the symlink a FUSE mount needs for it. */
export function controlPlacement(
  controlPath: string,
  fuseDir: string | null,
): { socketPath: string; linkFromMount: string | null } {
  const control = resolve(controlPath);
  if (fuseDir === null) return { socketPath: control, linkFromMount: null };
  const dir = resolve(fuseDir);
  if (control === join(dir, 'control.sock')) {
    // A socket cannot live inside the FUSE mount: put it beside the mount and
    // let the mount's `control.sock` point to it, so the usual path works.
    return { socketPath: `${dir}.control.sock`, linkFromMount: `${dir}.control.sock` };
  }
  if (control.startsWith(`${dir}/`)) {
    throw new UsageError(
      `the control socket ${control} cannot be inside the FUSE mount ${dir}; use ${join(dir, 'control.sock')} or a path outside it`,
    );
  }
  return { socketPath: control, linkFromMount: null };
}

/** `HOST:PORT` on loopback only. */
export function parseMetricsListen(text: string): { host: string; port: number } {
  const match = /^(.*):(\d+)$/.exec(text);
  const host = match?.[1]?.replace(/^\[(.*)\]$/, '$1');
  const port = Number(match?.[2]);
  if (!match || host === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`--metrics-listen wants HOST:PORT, e.g. 127.0.0.1:9512, got '${text}'`);
  }
  if (!['127.0.0.1', 'localhost', '::1'].includes(host) && !host.startsWith('127.')) {
    throw new UsageError(
      `--metrics-listen serves loopback only (127.0.0.1, ::1, localhost), got '${host}'`,
    );
  }
  return { host, port };
}

export async function main(argv: string[]): Promise<void> {
  const log = (line: string): void => {
    process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  };
  // Signals first: a SIGTERM during start-up (waiting for the CUSE device, the
  // mount, the socket) stops the daemon once what has started is closed, and a
  // SIGUSR1 never reaches Node's default handler (which opens the inspector).
  const signals = new SignalsDuringStartUp(log);
  let args: DaemonArgs;
  let config: Partial<SchedulerConfig> & { jobs: number };
  let access: { mode: number; gid: number | null };
  let useCuse: boolean;
  let fuseDir: string | null;
  let allowOther = false;
  let becomeAs: SystemUser | null = null;
  let control: { socketPath: string; linkFromMount: string | null };
  let metricsListen: { host: string; port: number } | null;
  try {
    args = parseDaemonArgs(argv);
    config = configFromArgs(args);
    access = permissions(args, log);
    useCuse = args.cuse !== undefined || (args.fuse === undefined && cuseAvailable());
    fuseDir = args.fuse !== undefined || !useCuse ? resolve(args.fuse || DEFAULT_FUSE_DIR) : null;
    if (fuseDir !== null)
      allowOther = fuseAllowOther(args.allowOther, process.getuid?.() ?? 0, readFuseConf(), log);
    control = controlPlacement(
      args.control ?? process.env[CONTROL_SOCKET_ENV] ?? DEFAULT_CONTROL_SOCKET_PATH,
      fuseDir,
    );
    metricsListen =
      args.metricsListen === undefined ? null : parseMetricsListen(args.metricsListen);
    if (args.user !== undefined) becomeAs = userToBecome(args.user, process.getuid?.() ?? 0);
    if (args.fifo === '') throw new UsageError('--fifo needs a PATH for the named pipe');
    if (args.privateFifoDir === '')
      throw new UsageError('--private-fifo-dir needs a DIR for the private fifos');
  } catch (error) {
    exitOnUsageError('steve-daemon', error);
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
  const privateFifos = new PrivateFifos(server, {
    dir: resolve(args.privateFifoDir ?? join(dirname(control.socketPath), 'steve-fifos')),
    prefetch: args.fifoPrefetch,
    watchPid,
    log,
  });
  let controlServer: ControlServer | null = null;
  let metricsServer: HttpServer | null = null;
  let stopping = false;
  const stop = async (code: number, reason: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log(`steve-daemon: stopping: ${reason}`);
    metricsServer?.close();
    await Promise.race([controlServer?.close(), new Promise((r) => setTimeout(r, 1000))]);
    privateFifos.closeAll();
    for (const front of fronts) front.close();
    server.stop();
    // Let the sessions answer pending requests and unmount before leaving.
    setImmediate(() => process.exit(code));
  };
  const onUnexpectedClose = (reason: string): void => {
    void stop(1, `the jobserver went away (${reason})`);
  };

  try {
    if (useCuse) {
      fronts.push(
        await startCuseFront(server, {
          name: args.cuse || DEFAULT_CUSE_NAME,
          mode: access.mode,
          gid: access.gid,
          debug: args.debug,
          onUnexpectedClose,
        }),
      );
    } else if (args.fuse === undefined) {
      log(
        `steve-daemon: no /dev/cuse (this kernel has no CUSE, or the cuse module is not loaded: modprobe cuse); serving a FUSE file instead`,
      );
    }
    if (fuseDir !== null) {
      fronts.push(
        startFuseFront(
          server,
          {
            dir: fuseDir,
            fileMode: access.mode,
            fileGid: access.gid,
            allowOther,
            debug: args.debug,
            onUnexpectedClose,
            ...(control.linkFromMount === null ? {} : { controlLink: control.linkFromMount }),
          },
          log,
        ),
      );
    }
    if (args.fifo !== undefined) {
      fronts.push(
        await startFifoFront(
          server,
          {
            path: resolve(args.fifo),
            prefetch: args.fifoPrefetch,
            mode: access.mode,
            gid: access.gid,
          },
          log,
        ),
      );
    }
    controlServer = await startControlServer({
      path: control.socketPath,
      pool: server,
      fronts: () => fronts.map((front) => ({ kind: front.kind, path: front.jobserverPath })),
      adminGid: access.gid,
      peerCredentials,
      log,
      now: realNow,
      privateFifos,
      poolAccess: access,
    });
    if (metricsListen !== null) {
      const current = controlServer;
      metricsServer = createHttpServer((request, response) => {
        if (request.url !== '/metrics') {
          response
            .writeHead(404, { 'content-type': 'text/plain' })
            .end('steve-daemon serves /metrics\n');
          return;
        }
        response
          .writeHead(200, { 'content-type': 'text/plain; version=0.0.4' })
          .end(current.metrics());
      });
      const listening = metricsServer;
      await new Promise<void>((resolveListen, reject) => {
        listening.once('error', reject);
        listening.listen(metricsListen.port, metricsListen.host, () => resolveListen());
      });
    }
    if (signals.received !== null) throw new StopDuringStartUp(signals.received);
    if (becomeAs !== null) {
      if (fuseDir !== null) unmountWhenGone(fuseDir);
      privateFifos.prepare({ uid: becomeAs.uid, gid: becomeAs.gid });
      const groups = becomeUser(becomeAs, access.gid);
      log(
        `steve-daemon: running as ${becomeAs.name} (uid ${becomeAs.uid}, gid ${becomeAs.gid}, groups ${groups.join(',')}); no root from here on`,
      );
    }
  } catch (error) {
    log(
      error instanceof StopDuringStartUp
        ? `steve-daemon: stopping during start-up: ${error.message}`
        : `steve-daemon: ${(error as Error).message}`,
    );
    await controlServer?.close();
    metricsServer?.close();
    privateFifos.closeAll();
    for (const front of fronts) front.close();
    server.stop();
    setImmediate(() => process.exit(error instanceof StopDuringStartUp ? 0 : 1));
    return;
  }

  for (const front of fronts) process.stdout.write(`${servingLine(front, config.jobs)}\n`);
  process.stdout.write(
    `steve-daemon: control socket ${args.control ?? process.env[CONTROL_SOCKET_ENV] ?? DEFAULT_CONTROL_SOCKET_PATH} (stevie status)\n`,
  );
  signals.running({
    stop: (signal) => void stop(0, `${signal} received`),
    report: () => log(server.report().trimEnd()),
  });
  const launcher = npmLauncher();
  if (launcher !== null) {
    // npm exec (npx) does not pass SIGTERM on: when it dies, the daemon would
    // stay behind with its mount. Stop with it instead.
    const watch = watchPid(
      launcher.pid,
      () =>
        void stop(0, `${launcher.name} (pid ${launcher.pid}), which started this daemon, exited`),
    );
    if (watch === null)
      void stop(0, `${launcher.name} (pid ${launcher.pid}), which started this daemon, is gone`);
  }
}

const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
type StopSignal = (typeof STOP_SIGNALS)[number];

class StopDuringStartUp extends Error {
  constructor(signal: StopSignal) {
    super(`${signal} received`);
  }
}

/**
 * The daemon's signal handlers, installed before anything starts. Until the
 * pool serves, a stop signal is remembered (start-up then closes what it
 * opened and exits 0) and SIGUSR1 says there is no report yet.
 */
class SignalsDuringStartUp {
  received: StopSignal | null = null;
  private stopNow: ((signal: StopSignal) => void) | null = null;
  private report: (() => void) | null = null;

  constructor(log: (line: string) => void) {
    for (const signal of STOP_SIGNALS) {
      process.on(signal, () => {
        if (this.stopNow !== null) this.stopNow(signal);
        else if (this.received === null) {
          this.received = signal;
          log(
            `steve-daemon: ${signal} during start-up; stopping once start-up has closed what it opened`,
          );
        }
      });
    }
    process.on('SIGUSR1', () => {
      if (this.report !== null) this.report();
      else log('steve-daemon: SIGUSR1: still starting, no report yet');
    });
  }

  running(handlers: { stop: (signal: StopSignal) => void; report: () => void }): void {
    this.stopNow = handlers.stop;
    this.report = handlers.report;
  }
}

/**
 * The npm process that started this daemon through `npm exec`/`npx` (npm sets
 * npm_command=exec), looking through a `sh -c` in between; null otherwise.
 */
export function npmLauncher(
  env: NodeJS.ProcessEnv = process.env,
  parentOf: (pid: number) => { ppid: number; name: string } | null = procParent,
  pid: number = process.pid,
): { pid: number; name: string } | null {
  if (env.npm_command !== 'exec' && env.npm_lifecycle_event !== 'npx') return null;
  let current = parentOf(pid);
  for (let hops = 0; current !== null && hops < 3; hops += 1) {
    const parent = current.ppid;
    const info = parentOf(parent);
    if (info === null) return null;
    if (info.name === 'npm' || info.name === 'npx' || info.name.startsWith('npm ')) {
      return { pid: parent, name: `npm exec` };
    }
    if (info.name !== 'sh' && info.name !== 'bash' && info.name !== 'dash') return null;
    current = info;
  }
  return null;
}

/** PPid and comm of `pid` from /proc; null when it is gone. */
function procParent(pid: number): { ppid: number; name: string } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const ppid = Number(/^PPid:\s*(\d+)/m.exec(status)?.[1]);
    const name = /^Name:\s*(.*)$/m.exec(status)?.[1] ?? '';
    return Number.isInteger(ppid) ? { ppid, name } : null;
  } catch {
    return null;
  }
}
