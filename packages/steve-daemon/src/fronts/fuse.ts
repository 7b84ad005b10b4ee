/**
 * The FUSE front: a mount (default /run/steve) holding `jobserver`, served
 * exactly like the CUSE device, and a read-only `status` file. For kernels
 * without CUSE; clients use `--jobserver-auth=fifo:DIR/jobserver`, or make
 * 4.3 as `make 3<>DIR/jobserver` with `--jobserver-auth=3,3`.
 */

import { commandVisibility, fuseViewer } from '../daemon/visibility.js';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { FUSE_JOBSERVER_FILE } from '@steve/protocol';
import type { PoolServer } from '../daemon/pool-server.js';
import { startFuse } from '../native/addon.js';
import { detachMount, mountAt, probeMount } from './mounts.js';
import { SessionFront } from './session-front.js';

export interface FuseFrontOptions {
  readonly dir: string;
  /** Permission bits of `jobserver`. */
  readonly fileMode: number;
  /** Group owning `jobserver`, or null for the daemon's own. */
  readonly fileGid: number | null;
  readonly allowOther: boolean;
  /** Serve `control.sock` in the mount as a symlink to the real control socket. */
  readonly controlLink?: string;
  readonly debug?: boolean;
  readonly onUnexpectedClose: (reason: string) => void;
}

export interface RunningFront {
  readonly kind: 'cuse' | 'fuse' | 'fifo';
  /** The path clients open. */
  readonly jobserverPath: string;
  close(): void;
}

/** Thrown when the place to serve is taken; the message says what to do. */
export class FrontInUseError extends Error {
  readonly code = 'ERR_STEVE_IN_USE';
}

/**
 * Clear a stale steve mount at `dir` (its daemon died, or it is stopped or
 * hung and does not answer); refuse a live one. Never stats into the mount
 * itself: a stat on a mount whose server does not answer blocks forever,
 * and with it the daemon's start-up. The mount's server is asked from a
 * child process with a deadline ({@link probeMount}).
 */
export function prepareMountPoint(dir: string, log: (line: string) => void): void {
  const mounted = mountAt(dir);
  if (!mounted) {
    mkdirSync(dir, { recursive: true });
    return;
  }
  if (mounted.fsType !== 'fuse.steve') {
    throw new FrontInUseError(
      `${dir} already has a ${mounted.fsType} file system mounted on it; choose another directory with --fuse DIR`,
    );
  }
  const answer = probeMount(resolve(dir, FUSE_JOBSERVER_FILE));
  if (answer.kind === 'answered') {
    throw new FrontInUseError(
      `another steve-daemon is already serving ${dir}; stop it first (kill its process), or serve elsewhere with --fuse DIR`,
    );
  }
  if (answer.kind === 'disconnected') {
    log(`steve-daemon: clearing the stale mount at ${dir} left by a daemon that died`);
  } else {
    // A server that does not answer serves nobody: every client that opens
    // the file blocks. Detaching gives new clients a pool that answers and
    // leaves the open files to it: should it resume, its clients and ours
    // draw on two pools until they close them.
    log(
      `steve-daemon: the steve mount at ${dir} did not answer within ${answer.waitedMs} ms (its daemon is stopped or hung); detaching it (umount -l) and serving here`,
    );
  }
  const detached = detachMount(dir);
  if (!detached.detached) {
    throw new FrontInUseError(
      `cannot clear the stale mount at ${dir}: ${detached.reason}; run 'umount -l ${dir}' as root`,
    );
  }
}

export function startFuseFront(
  server: PoolServer,
  options: FuseFrontOptions,
  log: (line: string) => void,
): RunningFront {
  const dir = resolve(options.dir);
  prepareMountPoint(dir, log);
  const front = new SessionFront(server, {
    name: `fuse:${dir}`,
    statusText: (ctx) => server.report(commandVisibility(fuseViewer(ctx), options.fileGid ?? null)),
    onUnexpectedClose: options.onUnexpectedClose,
  });
  const session = startFuse(
    dir,
    {
      allowOther: options.allowOther,
      fileMode: options.fileMode,
      ...(options.fileGid === null ? {} : { fileGid: options.fileGid }),
      ...(options.controlLink === undefined ? {} : { controlLink: options.controlLink }),
      debug: options.debug ?? false,
    },
    front.handlers(),
  );
  front.attach(session);
  return {
    kind: 'fuse',
    jobserverPath: resolve(dir, FUSE_JOBSERVER_FILE),
    close: () => front.close(),
  };
}
