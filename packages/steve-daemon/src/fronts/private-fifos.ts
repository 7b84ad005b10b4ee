/**
 * Private fifos: one real named pipe per wrapped command (`stevie -- ninja`,
 * `steve-job -- ninja`), each a fifo-front sub-pool of the one pool, owned by
 * the control connection that asked for it.
 *
 * Why: on a shared fifo nobody can tell who read a byte, so the tokens of a
 * killed client stay lent while any other process keeps the fifo open. A
 * private fifo is reached only by the command it was made for (and its
 * children): it lives while the wrapper's control connection is open and,
 * once the wrapper has named its command (`private-fifo-command`), until
 * that command has exited too (a pidfd says when). Then the sub-pool is
 * closed, every token it lent goes back to the pool, and the fifo and its
 * directory are removed: the wrapper may be SIGKILLed, the command may leave
 * its tokens unreturned, nothing stays lent past the command tree.
 *
 * Layout: `DIR/job-XXXXXX/jobserver`, the directory mode 0700 and the fifo
 * 0600, both owned by the requester's uid (SO_PEERCRED), so other users can
 * neither read its tokens nor write bytes into it.
 *
 * A daemon that runs as its own user (`--user`) cannot give files away.
 * Then the directory is `DIR/job-<128 random bits>`, mode 0711 in a DIR of
 * mode 0711 (nobody can list either), and the fifo 0666: only who was told
 * the path, the requester, can open it. Its tokens are the requester's
 * sub-pool, which never credits more than it lent.
 */

import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { PoolServer } from '../daemon/pool-server.js';
import type { PidWatch } from '../native/addon.js';
import { type RunningFifoFront, startFifoFront } from './fifo.js';

/** Who asked for a fifo (the control socket's SO_PEERCRED). */
export interface FifoRequester {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

/** One private fifo, as its control connection sees it. */
export interface PrivateFifo {
  readonly path: string;
  /**
   * The command the fifo is for: it stays open until this process has
   * exited as well. Only a child of the requester may be named (a user
   * cannot tie the fifo's tokens to someone else's long-lived process).
   *
   * Errors: a pid that is not a child of the requester, or a second call.
   */
  commandStarted(pid: number): void;
  /** The control connection closed: end now, or when the named command exits. */
  ownerGone(): void;
}

export interface PrivateFifosOptions {
  /** Where the per-command directories go (created 0711 when missing). */
  readonly dir: string;
  /** Idle tokens parked per fifo (`--fifo-prefetch`). */
  readonly prefetch: number;
  readonly watchPid: (pid: number, onExit: () => void) => PidWatch | null;
  readonly log: (line: string) => void;
  /** Most private fifos at once (each costs a pipe, an inotify watch and a directory). */
  readonly maxFifos?: number;
}

const DEFAULT_MAX_FIFOS = 512;

/** The parent pid of `pid` from /proc, or null when it is gone. */
function parentOf(pid: number): number | null {
  try {
    const match = /^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

export class PrivateFifos {
  private readonly live = new Set<() => void>();
  private dirReady = false;

  constructor(
    private readonly server: PoolServer,
    private readonly options: PrivateFifosOptions,
  ) {}

  /**
   * Make DIR (0711) now, owned by `owner` when given: a daemon that is about
   * to drop root (`--user`) could not make it in a root directory later.
   */
  prepare(owner?: { uid: number; gid: number }): void {
    if (this.dirReady) return;
    mkdirSync(this.options.dir, { recursive: true, mode: 0o711 });
    if (owner !== undefined) chownSync(this.options.dir, owner.uid, owner.gid);
    this.dirReady = true;
  }

  /** How many private fifos are open now. */
  get count(): number {
    return this.live.size;
  }

  /**
   * Make a private fifo for `requester`.
   *
   * Errors: too many private fifos; the directory cannot be made (its
   * message names the path); mkfifo/open/inotify errors.
   */
  async create(requester: FifoRequester): Promise<PrivateFifo> {
    const max = this.options.maxFifos ?? DEFAULT_MAX_FIFOS;
    if (this.live.size >= max)
      throw new Error(`${max} private fifos are open already; try again when a build has ended`);
    this.prepare();
    // Root gives the directory to the requester; a daemon user cannot, and hides it instead.
    const giveAway = process.getuid?.() === 0 || requester.uid === process.getuid?.();
    let jobDir: string;
    if (giveAway) {
      jobDir = mkdtempSync(join(this.options.dir, 'job-'));
    } else {
      jobDir = join(this.options.dir, `job-${randomBytes(16).toString('hex')}`);
      mkdirSync(jobDir, { mode: 0o700 });
    }
    let front: RunningFifoFront;
    try {
      // The fifo is made and opened while its directory is still the
      // daemon's alone; only then is the directory handed to the requester.
      front = await startFifoFront(
        this.server,
        {
          path: join(jobDir, 'jobserver'),
          prefetch: this.options.prefetch,
          ...(giveAway
            ? { mode: 0o600, uid: requester.uid, gid: requester.gid }
            : { mode: 0o666, gid: null }),
          label: `private fifo of pid ${requester.pid}`,
          accountUid: requester.uid,
        },
        this.options.log,
      );
    } catch (error) {
      rmSync(jobDir, { recursive: true, force: true });
      throw error;
    }
    try {
      if (giveAway) chownSync(jobDir, requester.uid, requester.gid);
      else chmodSync(jobDir, 0o711);
    } catch (error) {
      front.close();
      rmSync(jobDir, { recursive: true, force: true });
      throw error;
    }

    let ownerOpen = true;
    let command: { pid: number; watch: PidWatch | null } | null = null;
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      this.live.delete(end);
      command?.watch?.close();
      front.close();
      rmSync(jobDir, { recursive: true, force: true });
    };
    const endWhenDone = (): void => {
      if (!ownerOpen && (command === null || command.watch === null)) end();
    };
    this.live.add(end);
    return {
      path: front.jobserverPath,
      commandStarted: (pid) => {
        if (ended) throw new Error('this private fifo has ended');
        if (command !== null)
          throw new Error(`this private fifo is for pid ${command.pid} already`);
        const parent = parentOf(pid);
        if (parent !== null && parent !== requester.pid)
          throw new Error(`pid ${pid} is not a child of the requester (pid ${requester.pid})`);
        const entry: { pid: number; watch: PidWatch | null } = { pid, watch: null };
        command = entry;
        // Gone already (it ran and was reaped): there is nothing to wait for.
        if (parent === null) return;
        entry.watch = this.options.watchPid(pid, () => {
          entry.watch?.close();
          entry.watch = null;
          endWhenDone();
        });
      },
      ownerGone: () => {
        ownerOpen = false;
        endWhenDone();
      },
    };
  }

  /** Daemon shutdown: end every private fifo (their tokens go back, the fifos are removed). */
  closeAll(): void {
    for (const end of [...this.live]) end();
  }
}
