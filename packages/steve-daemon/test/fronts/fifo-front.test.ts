// The fifo front against a real PoolServer (real clock, pidfd watches,
// probes), a real fifo in a temporary directory and python3 clients: tokens
// are parked only while someone has the fifo open, at most `prefetch` of
// them; surplus comes back to the core; a SIGKILLed client's tokens come
// back at the last close; with the FUSE front beside it the two never hand
// out more than -j together.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  constants as fsConstants,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ProbeSample, SchedulerRecord } from '../../src/core/index.js';
import { PoolServer, realNow } from '../../src/daemon/pool-server.js';
import { type RunningFifoFront, startFifoFront } from '../../src/fronts/fifo.js';
import { type RunningFront, startFuseFront } from '../../src/fronts/fuse.js';
import {
  bytesReadable,
  inotifyEvents,
  pollEvents,
  pollNow,
  watchPath,
  watchPid,
} from '../../src/native/addon.js';
import { sampleProbes } from '../../src/probes/probes.js';
import { symlinkSwapper } from '../symlink-swapper.js';

const PYTHON = '/usr/bin/python3';

/** Waits until `check()` holds, re-checking with backoff; fails after the deadline. */
async function waitFor(what: string, check: () => boolean, deadlineMs = 5000): Promise<void> {
  const start = Date.now();
  for (let delayMs = 2; !check(); delayMs = Math.min(delayMs * 2, 25)) {
    if (Date.now() - start > deadlineMs)
      throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  }
}

// A jobserver client driven line by line from stdin: `r` reads one token
// (blocking), `w N` writes N held tokens back (the bytes it read), `f N`
// writes N bytes it never read, `c` closes the fifo (keeping what it holds),
// `o` opens it again, `q` quits. It narrates on stdout: `open`, `reading`,
// `got HELD`, `put HELD`, `forged`, `closed`.
const CLIENT = `
import os, sys
path, how = sys.argv[1], sys.argv[2]
def open_fifo():
    if how == 'rdwr':
        r = w = os.open(path, os.O_RDWR)
    else:
        r = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        os.set_blocking(r, True)
        w = os.open(path, os.O_WRONLY)
    print('open', flush=True)
    return r, w
r, w = open_fifo()
held = []
for line in sys.stdin:
    cmd = line.split()
    if not cmd:
        continue
    if cmd[0] == 'r':
        print('reading', flush=True)
        held.append(os.read(r, 1))
        print('got', len(held), flush=True)
    elif cmd[0] == 'w':
        n = int(cmd[1])
        os.write(w, b''.join(held[:n]))
        del held[:n]
        print('put', len(held), flush=True)
    elif cmd[0] == 'f':
        os.write(w, b'+' * int(cmd[1]))
        print('forged', flush=True)
    elif cmd[0] == 'c':
        os.close(r)
        if w != r:
            os.close(w)
        print('closed', flush=True)
    elif cmd[0] == 'o':
        r, w = open_fifo()
    elif cmd[0] == 'q':
        break
`;

class Client {
  readonly lines: string[] = [];
  readonly process: ChildProcess;
  private exited = false;

  constructor(file: string, how: 'rdwr' | 'split') {
    this.process = spawn(PYTHON, ['-u', '-c', CLIENT, file, how], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let partial = '';
    this.process.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      partial += chunk;
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      this.lines.push(...parts);
    });
    this.process.on('exit', () => (this.exited = true));
  }

  get gone(): boolean {
    return this.exited;
  }

  /** Tokens it holds, from its last `got`/`put` line. */
  get held(): number {
    for (let i = this.lines.length - 1; i >= 0; i--) {
      const match = /^(?:got|put) (\d+)$/.exec(this.lines[i] as string);
      if (match) return Number(match[1]);
    }
    return 0;
  }

  count(prefix: string): number {
    return this.lines.filter((line) => line.startsWith(prefix)).length;
  }

  async opened(times = 1): Promise<void> {
    await waitFor('the client to open the jobserver', () => this.count('open') === times);
  }

  /** Send `line` and wait for the reply line that starts with `prefix`. */
  async ask(line: string, prefix: string): Promise<void> {
    const before = this.count(prefix);
    this.send(line);
    await waitFor(`'${prefix}' after '${line}'`, () => this.count(prefix) === before + 1);
  }

  /** Read `n` tokens, one at a time, each within the deadline. */
  async take(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const before = this.count('got ');
      this.send('r');
      await waitFor(`token ${i + 1} of ${n}`, () => this.count('got ') === before + 1);
    }
  }

  async giveBack(n: number): Promise<void> {
    const before = this.count('put ');
    this.send(`w ${n}`);
    await waitFor('the client to write its tokens back', () => this.count('put ') === before + 1);
  }

  send(line: string): void {
    this.process.stdin?.write(`${line}\n`);
  }

  async kill(): Promise<void> {
    if (!this.exited) {
      this.process.kill('SIGKILL');
      await waitFor('the client to die', () => this.exited);
    }
  }
}

let dir: string;
let server: PoolServer;
const fronts: RunningFront[] = [];
const clients: Client[] = [];
const logLines: string[] = [];
const records: SchedulerRecord[] = [];

function startServer(
  jobs: number,
  limits: { minMemoryAvailableMiB?: number; limitRecheckMs?: number } = {},
  sample: () => Promise<ProbeSample> = () =>
    sampleProbes({ load: false, memory: false, pressure: false }),
): PoolServer {
  server = new PoolServer({
    config: { jobs, ...limits },
    services: {
      now: realNow,
      watchPid,
      sample,
      log: (line) => logLines.push(line),
    },
  });
  server.onRecord((_atMs, record) => records.push(record));
  return server;
}

async function startFifo(prefetch = 1): Promise<RunningFifoFront> {
  const front = await startFifoFront(
    server,
    { path: path.join(dir, 'jobserver.fifo'), prefetch, mode: 0o666, gid: null },
    (line) => logLines.push(line),
  );
  fronts.push(front);
  return front;
}

function client(file: string, how: 'rdwr' | 'split' = 'split'): Client {
  const started = new Client(file, how);
  clients.push(started);
  return started;
}

/**
 * A client of the core beside the fifo (as another front would be): this
 * process, reading and returning tokens through its own connection.
 */
function coreHolder(): {
  take(n: number): Promise<void>;
  /** A blocking read that waits in the core until `cancel()` interrupts it. */
  waitThenCancel(): { cancel(): Promise<void> };
  giveBack(n: number): void;
} {
  let granted = 0;
  let refused = 0;
  let nextLocalId = 1;
  const connection = server.connect({
    name: 'test holder',
    reply: (_localId, reply) => {
      if (reply.kind === 'token') granted += 1;
      if (reply.kind === 'error') refused += 1;
    },
    notifyPoll: () => undefined,
    dropPollHandle: () => undefined,
  });
  const fileId = connection.file(1);
  connection.event({ type: 'open', fileId, pid: process.pid });
  return {
    async take(n) {
      const wanted = granted + n;
      for (let i = 0; i < n; i++) {
        connection.event({
          type: 'read',
          requestId: connection.request(nextLocalId++),
          fileId,
          pid: process.pid,
          blocking: true,
          sizeBytes: 1,
        });
      }
      await waitFor(`${n} token(s) for the holder`, () => granted === wanted);
    },
    waitThenCancel() {
      const localId = nextLocalId++;
      const requestId = connection.request(localId);
      connection.event({
        type: 'read',
        requestId,
        fileId,
        pid: process.pid,
        blocking: true,
        sizeBytes: 1,
      });
      return {
        async cancel() {
          const refusedBefore = refused;
          connection.event({ type: 'interrupt', requestId });
          await waitFor('the EINTR', () => refused > refusedBefore);
        },
      };
    },
    giveBack(n) {
      connection.event({
        type: 'write',
        requestId: connection.request(nextLocalId++),
        fileId,
        pid: process.pid,
        sizeBytes: n,
      });
    },
  };
}

/** A -j4 pool used up: 2 tokens held by a core client, 1 by a fifo client, 1 parked in the fifo. */
async function fullPoolBesideTheFifo(): Promise<{
  other: ReturnType<typeof coreHolder>;
  front: RunningFifoFront;
  viaFifo: Client;
}> {
  const other = coreHolder();
  await other.take(2);
  const front = await startFifo();
  const viaFifo = client(front.jobserverPath);
  await viaFifo.opened();
  await viaFifo.take(1);
  await waitFor('2 + 1 held, 1 parked', () => front.parkedTokens() === 1 && out() === 4);
  return { other, front, viaFifo };
}

const out = (): number => server.snapshot().out;
/** The most tokens out any record reported so far. */
const maxOut = (): number =>
  Math.max(0, ...records.map((record) => ('out' in record ? record.out : 0)));

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'steve-fifo-front-'));
  logLines.length = 0;
  records.length = 0;
});

afterEach(async () => {
  try {
    for (const started of clients.splice(0)) await started.kill();
    for (const front of fronts.splice(0)) front.close();
    server?.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('native glue of the fifo front', () => {
  it('watchPath reports opens, writes and closes, stops at close(); bytesReadable and pollNow see the pipe', async () => {
    const fifo = path.join(dir, 'plain.fifo');
    execFileSync('mkfifo', [fifo]);
    let seen = 0;
    let calls = 0;
    const watch = watchPath(
      fifo,
      inotifyEvents.IN_OPEN | inotifyEvents.IN_CLOSE_WRITE | inotifyEvents.IN_MODIFY,
      (mask) => {
        seen |= mask;
        calls += 1;
      },
    );
    const both = openSync(fifo, fsConstants.O_RDWR | fsConstants.O_NONBLOCK);
    writeSync(both, Buffer.from('++'));
    expect(bytesReadable(both)).toBe(2);
    expect(pollNow(both, pollEvents.POLLIN) & pollEvents.POLLIN).toBe(pollEvents.POLLIN);
    closeSync(both);
    const all = inotifyEvents.IN_OPEN | inotifyEvents.IN_MODIFY | inotifyEvents.IN_CLOSE_WRITE;
    await waitFor('open, modify and close events', () => (seen & all) === all);
    watch.close();
    watch.close();
    const before = calls;
    closeSync(openSync(fifo, fsConstants.O_RDWR));
    // A stopped watch never calls back: a fresh watch sees the next event,
    // and by then the old one would have been called too.
    const later = watchPath(fifo, inotifyEvents.IN_OPEN, () => (seen = -1));
    closeSync(openSync(fifo, fsConstants.O_RDWR));
    await waitFor('the fresh watch', () => seen === -1);
    later.close();
    expect(calls).toBe(before);
    expect(() => watchPath(path.join(dir, 'missing'), inotifyEvents.IN_OPEN, () => {})).toThrow(
      /ENOENT/,
    );
  });

  it('a watch does not keep the process alive', () => {
    const fifo = path.join(dir, 'alive.fifo');
    execFileSync('mkfifo', [fifo]);
    const addon = path.resolve(import.meta.dirname, '../../build/Release/steve_native.node');
    const result = spawnSync(
      process.execPath,
      [
        '-e',
        `require(${JSON.stringify(addon)}).watchPath(${JSON.stringify(fifo)}, 0x20, () => {})`,
      ],
      { timeout: 5000, encoding: 'utf8' },
    );
    expect(result.error).toBeUndefined();
    expect(result.status, result.stderr).toBe(0);
  });
});

describe('fifo front', () => {
  it('creates the fifo, parks nothing without clients, and removes only what it created', async () => {
    startServer(4);
    const front = await startFifo();
    const fifo = path.join(dir, 'jobserver.fifo');
    expect(statSync(fifo).isFIFO()).toBe(true);
    expect(statSync(fifo).mode & 0o777).toBe(0o666);
    expect(front.parkedTokens()).toBe(0);
    expect(out()).toBe(0);
    front.close();
    fronts.length = 0;
    expect(() => statSync(fifo)).toThrow(/ENOENT/);

    // An existing fifo is served and left in place.
    const again = await startFifo();
    again.close();
    fronts.length = 0;
    const theirs = path.join(dir, 'theirs');
    const made = spawn('mkfifo', [theirs]);
    await new Promise((resolve) => made.on('exit', resolve));
    const served = await startFifoFront(
      server,
      { path: theirs, prefetch: 1, mode: 0o660, gid: null },
      () => {},
    );
    served.close();
    expect(statSync(theirs).isFIFO()).toBe(true);
  });

  it('a fifo swapped for a symlink while it is set up is refused, and what the link points to keeps its mode', async () => {
    startServer(4);
    const victim = path.join(dir, 'victim');
    // 0640: neither the fifo's mode (0666) nor a mkfifo default (0600, 0644) would leave it so.
    writeFileSync(victim, 'secret', { mode: 0o640 });
    chmodSync(victim, 0o640);
    const swapper = symlinkSwapper(dir, 'jobserver.fifo', victim);
    await swapper.ready;
    const started = startFifoFront(
      server,
      { path: path.join(dir, 'jobserver.fifo'), prefetch: 1, mode: 0o666, gid: null },
      () => {},
    );
    const outcome = await started.then(
      (front) => {
        front.close();
        return 'served';
      },
      (error: Error) => error.message,
    );
    await swapper.swapped;
    expect(statSync(victim).mode & 0o777).toBe(0o640);
    expect(readFileSync(victim, 'utf8')).toBe('secret');
    expect(outcome).toMatch(/became a symlink|no longer a fifo|cannot create the fifo/);
    swapper.kill();
  });

  it('refuses a path that exists and is not a fifo', async () => {
    startServer(4);
    const file = path.join(dir, 'regular');
    writeFileSync(file, 'not a fifo');
    await expect(
      startFifoFront(server, { path: file, prefetch: 1, mode: 0o666, gid: null }, () => {}),
    ).rejects.toThrow(/exists and is not a fifo/);
    expect(readFileSync(file, 'utf8')).toBe('not a fifo');
  });

  it('parks one token while a client has the fifo open, refills what it takes, reads surplus back', async () => {
    startServer(8);
    const front = await startFifo();
    const fifo = front.jobserverPath;
    const parkedSeen: number[] = [];
    server.onRecord(() => parkedSeen.push(front.parkedTokens()));

    const first = client(fifo);
    await first.opened();
    await waitFor('one token parked', () => front.parkedTokens() === 1 && out() === 1);

    // Each token taken is replaced: 3 held by the client + 1 parked.
    await first.take(3);
    await waitFor('the refill', () => front.parkedTokens() === 1 && out() === 4);
    expect(front.lentTokens()).toBe(4);
    // The daemon never put more than one idle token in the pipe.
    expect(Math.max(...parkedSeen)).toBeLessThanOrEqual(1);

    // 3 written back: 4 in the pipe, 3 of them surplus, back to the core.
    await first.giveBack(3);
    await waitFor('the surplus to be read back', () => out() === 1);
    expect(front.parkedTokens()).toBe(1);
    expect(front.lentTokens()).toBe(1);
    expect(records.some((r) => r.type === 'return' && r.client.startsWith('file:'))).toBe(true);

    // The last client leaves: nothing stays parked or lent.
    first.send('q');
    await waitFor('the client to exit', () => first.gone);
    await waitFor('the sub-pool to be reset', () => out() === 0 && front.parkedTokens() === 0);
    expect(front.lentTokens()).toBe(0);
    expect(logLines).toEqual([]);
  });

  it('a larger prefetch keeps that many parked', async () => {
    startServer(8);
    const front = await startFifo(3);
    const first = client(front.jobserverPath, 'rdwr');
    await first.opened();
    await waitFor('three tokens parked', () => front.parkedTokens() === 3 && out() === 3);
    await first.take(2);
    await waitFor('the refill', () => front.parkedTokens() === 3 && out() === 5);
  });

  it('a lower job count: the parked token and tokens written back go to the core until the pool is within it', async () => {
    startServer(4);
    const front = await startFifo();
    const first = client(front.jobserverPath);
    await first.opened();
    await first.take(3);
    await waitFor('3 held + 1 parked', () => front.parkedTokens() === 1 && out() === 4);

    // jobs 4 -> 2: the idle parked token goes back at once, nothing is parked.
    server.event({ type: 'configure', changes: { jobs: 2 } });
    await waitFor('the parked token back', () => out() === 3 && front.parkedTokens() === 0);
    // A token written back is taken out, not left for the next reader.
    await first.giveBack(1);
    await waitFor('the written-back token back', () => out() === 2);
    expect(front.parkedTokens()).toBe(0);
    // Within the pool again (2 held by the client): nothing is parked until one comes back.
    await first.giveBack(1);
    await waitFor('one parked again', () => out() === 2 && front.parkedTokens() === 1);
    expect(first.held).toBe(1);
    expect(maxOut()).toBeLessThanOrEqual(4);
  });

  it('a token another client returns after a lower job count reaches a fifo reader waiting on the empty pipe', async () => {
    // Found by the builds bench: ninja waited on an empty fifo forever
    // while the pool had room (status: capacity 1, out 0, waiting 0). The
    // front asked the core only while the pool was within its capacity and
    // looked again only on its own fifo's events, so tokens that came back
    // from elsewhere once the pool was within it again never reached it.
    startServer(4);
    const { other, front, viaFifo } = await fullPoolBesideTheFifo();

    // jobs 4 -> 2: 2 over; the parked token goes back (out 3, still 1 over).
    server.event({ type: 'configure', changes: { jobs: 2 } });
    await waitFor('the parked token back', () => out() === 3 && front.parkedTokens() === 0);
    viaFifo.send('r');
    await waitFor(
      'the fifo client to block on the empty pipe',
      () => viaFifo.count('reading') === 2,
    );
    // The other client gives both back: 1 out of 2, a token is free.
    other.giveBack(2);
    await waitFor('the fifo client to get the free token', () => viaFifo.held === 2, 3000);
    expect(out()).toBe(2);
    expect(maxOut()).toBeLessThanOrEqual(4);
  });

  it('under a memory limit, a fifo reader waiting on the empty pipe gets a token once memory is back', async () => {
    // The builds bench's stall as it happened: the memory limit held the
    // capacity at --min-jobs, the front declined to ask, the others'
    // tokens came back, and with nobody waiting in the core no sample was
    // ever taken again: ninja waited forever (capacity 1, out 0, waiting 0).
    let memAvailableMiB = 5000;
    startServer(4, { minMemoryAvailableMiB: 1000, limitRecheckMs: 20 }, async () => ({
      memAvailableMiB,
    }));
    const { other, viaFifo } = await fullPoolBesideTheFifo();

    // Memory runs short: a read waiting in the core brings a fresh sample,
    // the capacity drops to 1; the read gives up (EINTR), and the fifo
    // client takes the parked token.
    memAvailableMiB = 500;
    const waiting = other.waitThenCancel();
    await waitFor('the capacity to drop', () => server.snapshot().capacity === 1);
    await waiting.cancel();
    await viaFifo.take(1);
    viaFifo.send('r');
    await waitFor(
      'the fifo client to block on the empty pipe',
      () => viaFifo.count('reading') === 3,
    );
    // Memory is back and the other client returns both: 2 out of 4.
    memAvailableMiB = 5000;
    other.giveBack(2);
    await waitFor('the fifo client to get a token', () => viaFifo.held === 3, 3000);
    expect(server.snapshot().capacity).toBe(4);
    expect(maxOut()).toBeLessThanOrEqual(4);
  });

  it('tokens of a SIGKILLed client come back when the last client has closed the fifo', async () => {
    startServer(8);
    const front = await startFifo();
    const killed = client(front.jobserverPath);
    const other = client(front.jobserverPath, 'rdwr');
    await killed.opened();
    await other.opened();
    await killed.take(2);
    await other.take(1);
    await waitFor('3 held + 1 parked', () => out() === 4 && front.parkedTokens() === 1);

    await killed.kill();
    // A pipe cannot say who held what: while another client has it open the
    // sub-pool keeps everything it lent.
    await waitFor('the kill to be seen', () => killed.gone);
    expect(out()).toBe(4);

    await other.kill();
    await waitFor('every token back after the last close', () => out() === 0, 2000);
    expect(front.parkedTokens()).toBe(0);
    expect(
      records.some((r) => r.type === 'reclaim' && r.reason === 'close' && r.tokens === 4),
    ).toBe(true);

    // The next client starts a fresh sub-pool.
    const next = client(front.jobserverPath);
    await next.opened();
    await waitFor('a token parked again', () => out() === 1 && front.parkedTokens() === 1);
  });

  it('a token written back after the sub-pool was reset is dropped: the fifo never grows the pool', async () => {
    startServer(1);
    const front = await startFifo();
    const late = client(front.jobserverPath, 'rdwr');
    await late.opened();
    await late.take(1);
    // It closes the fifo holding the pool's only token: no reader is left,
    // the sub-pool is reset and the core reclaims the token.
    await late.ask('c', 'closed');
    await waitFor('the reset', () => out() === 0 && front.lentTokens() === 0);
    // It opens the fifo again (a new sub-pool parks the token again) and
    // writes back the byte it read before the reset.
    late.send('o');
    await late.opened(2);
    await waitFor('a token parked for the new opener', () => front.parkedTokens() === 1);
    await late.giveBack(1);
    await waitFor('the pipe to be settled', () => front.parkedTokens() === 1);
    // The pipe holds only what the sub-pool lent: one byte, one token.
    expect(front.lentTokens()).toBe(1);
    expect(out()).toBe(1);
    // It reads that byte: the pool of 1 is empty, so the fifo front's next
    // read waits in the core and nothing more is parked.
    await late.take(1);
    await waitFor(
      'the fifo front to wait for a token',
      () => server.snapshot().waiting === 1 || front.parkedTokens() > 0,
    );
    expect(front.parkedTokens()).toBe(0);
    expect(maxOut()).toBe(1);
    expect(logLines.some((line) => line.includes('dropped 1 byte(s) this pool did not lend'))).toBe(
      true,
    );
  });

  it('bytes a client never read are dropped, and what a pipe cannot tell apart heals when holders return', async () => {
    startServer(4);
    const front = await startFifo();
    const forger = client(front.jobserverPath, 'rdwr');
    await forger.opened();
    await waitFor('one token parked', () => front.parkedTokens() === 1 && out() === 1);
    // Three bytes it never read, nobody holding a token: all three dropped.
    await forger.ask('f 3', 'forged');
    await waitFor(
      'the pipe to be settled',
      () => front.parkedTokens() === 1 && logLines.length > 0,
    );
    expect(front.lentTokens()).toBe(1);
    expect(out()).toBe(1);

    // With 2 tokens really held, a forged byte looks exactly like a return
    // on a kernel pipe: it is credited, so for a while the clients may have
    // one more token than the sub-pool. The honest returns then find the
    // sub-pool already paid and are dropped: it heals, and never owes more
    // than the tokens honest clients held.
    const honest = client(front.jobserverPath, 'rdwr');
    await honest.opened();
    await honest.take(2);
    await waitFor('2 held + 1 parked', () => out() === 3 && front.parkedTokens() === 1);
    await forger.ask('f 1', 'forged');
    await waitFor('the forged byte taken as a return', () => out() === 2);
    await honest.giveBack(2);
    await waitFor('the honest returns', () => out() === 1 && front.parkedTokens() === 1);
    expect(front.lentTokens()).toBe(1);
    await honest.kill();
    await forger.kill();
    await waitFor('every token back', () => out() === 0 && front.parkedTokens() === 0);
    expect(maxOut()).toBeLessThanOrEqual(4);
  });

  it('beside the FUSE front: both together never exceed -j, and tokens flow between them', async () => {
    startServer(3);
    const mountDir = path.join(dir, 'mnt');
    const fuse = startFuseFront(
      server,
      {
        dir: mountDir,
        fileMode: 0o666,
        fileGid: null,
        allowOther: false,
        onUnexpectedClose: (reason) => logLines.push(`fuse closed: ${reason}`),
      },
      (line) => logLines.push(line),
    );
    fronts.push(fuse);
    const fifo = await startFifo();

    const viaFuse = client(fuse.jobserverPath, 'rdwr');
    await viaFuse.opened();
    await viaFuse.take(2);
    const viaFifo = client(fifo.jobserverPath);
    await viaFifo.opened();
    // The third token is parked in the fifo and taken from there.
    await viaFifo.take(1);
    // Both want more; nothing is left: the FUSE reader and the fifo's
    // synthetic read wait in the core's one queue.
    viaFuse.send('r');
    viaFifo.send('r');
    await waitFor(
      'both clients and the fifo front to wait',
      () =>
        viaFuse.count('reading') === 3 &&
        viaFifo.count('reading') === 2 &&
        server.snapshot().waiting === 2,
    );
    expect(out()).toBe(3);
    expect(viaFuse.held + viaFifo.held).toBe(3);

    // The FUSE client leaves holding 2 (its blocked read is interrupted):
    // both tokens go to the fifo's waiting client (one through the pipe, one
    // parked for its next read).
    await viaFuse.kill();
    await waitFor('the fifo client to get a token', () => viaFifo.held === 2);
    await waitFor('one parked again', () => fifo.parkedTokens() === 1 && out() === 3);
    await viaFifo.take(1);
    expect(viaFifo.held).toBe(3);

    await viaFifo.kill();
    await waitFor('all tokens back', () => out() === 0);
    expect(maxOut()).toBe(3);
    expect(logLines.filter((line) => !line.includes('fuse closed'))).toEqual([]);
  });
});
