/**
 * The FUSE front: a mount (default /run/steve) holding `jobserver`, served
 * exactly like the CUSE device, and a read-only `status` file. For kernels
 * without CUSE; clients use `--jobserver-auth=fifo:DIR/jobserver`, or make
 * 4.3 as `make 3<>DIR/jobserver` with `--jobserver-auth=3,3`.
 */

import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { FUSE_JOBSERVER_FILE } from '@steve/protocol';
import type { PoolServer } from '../daemon/pool-server.js';
import { startFuse } from '../native/addon.js';
import { mountAt } from './mounts.js';
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

/** Clear a stale steve mount at `dir` (its daemon died); refuse a live one. */
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
  let stale = false;
  try {
    statSync(resolve(dir, FUSE_JOBSERVER_FILE));
  } catch (error) {
    stale = (error as NodeJS.ErrnoException).code === 'ENOTCONN';
  }
  if (!stale) {
    throw new FrontInUseError(
      `another steve-daemon is already serving ${dir}; stop it first (kill its process), or serve elsewhere with --fuse DIR`,
    );
  }
  log(`steve-daemon: clearing the stale mount at ${dir} left by a daemon that died`);
  const result = spawnSync('umount', ['-l', dir], { encoding: 'utf8' });
  if (result.status !== 0) {
    const fallback = spawnSync('fusermount3', ['-u', '-z', dir], { encoding: 'utf8' });
    if (fallback.status !== 0) {
      throw new FrontInUseError(
        `cannot clear the stale mount at ${dir}: ${(result.stderr || fallback.stderr).trim()}; run 'umount -l ${dir}' as root`,
      );
    }
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
    statusText: () => server.report(),
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
