/**
 * The CUSE front: the character device /dev/NAME (default /dev/steve), the
 * production front on Gentoo. ninja >= 1.14 and Gentoo's patched ninja
 * accept character devices; make >= 4.4 and cargo take it as
 * `--jobserver-auth=fifo:/dev/steve`.
 */

import { chmodSync, chownSync, existsSync, statSync } from 'node:fs';
import type { PoolServer } from '../daemon/pool-server.js';
import { startCuse } from '../native/addon.js';
import { FrontInUseError, type RunningFront } from './fuse.js';
import { SessionFront } from './session-front.js';

export interface CuseFrontOptions {
  readonly name: string;
  readonly mode: number;
  /** Group id owning the device, or null to leave it (root). */
  readonly gid: number | null;
  readonly debug?: boolean;
  readonly onUnexpectedClose: (reason: string) => void;
}

/** True when this kernel can serve CUSE (the cuse module is loaded or built in). */
export function cuseAvailable(): boolean {
  return existsSync('/dev/cuse');
}

/** Wait (without blocking the loop) until devtmpfs shows `path`, or fail after the deadline. */
async function waitForDevice(path: string, deadlineMs: number): Promise<void> {
  const start = Date.now();
  for (let delayMs = 5; ; delayMs = Math.min(delayMs * 2, 100)) {
    try {
      if (statSync(path).isCharacterDevice()) return;
    } catch {
      // not there yet
    }
    if (Date.now() - start > deadlineMs) {
      throw new Error(
        `${path} did not appear within ${deadlineMs} ms after the CUSE device was created; is devtmpfs mounted on /dev?`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  }
}

export async function startCuseFront(
  server: PoolServer,
  options: CuseFrontOptions,
): Promise<RunningFront> {
  const path = `/dev/${options.name}`;
  if (existsSync(path)) {
    throw new FrontInUseError(
      `${path} already exists: another steve-daemon (or another driver) owns it; stop it first, or pick another name with --cuse NAME`,
    );
  }
  const front = new SessionFront(server, {
    name: `cuse:${path}`,
    statusText: () => server.report(),
    onUnexpectedClose: options.onUnexpectedClose,
  });
  const session = startCuse(
    { devName: options.name, debug: options.debug ?? false },
    front.handlers(),
  );
  front.attach(session);
  try {
    await waitForDevice(path, 5000);
    if (options.gid !== null) chownSync(path, 0, options.gid);
    chmodSync(path, options.mode);
  } catch (error) {
    front.close();
    throw error;
  }
  return { kind: 'cuse', jobserverPath: path, close: () => front.close() };
}
