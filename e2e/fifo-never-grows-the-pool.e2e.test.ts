// The fifo front must never grow the pool, and tokens lent through the fifo
// must come back once the processes that could hold them are gone. Real
// python3 clients (and ninja 1.13.2) on the daemon's fifo, beside clients of
// the FUSE file, under -j8:
//  (a) a client that read a token, closed the fifo (so that nobody had it
//      open) and wrote the token back later;
//  (b) a client that writes bytes it never read, or one token several times;
//  (c) clients SIGKILLed while another process keeps the fifo open.
// Invariants: the sum of what clients say they hold and the daemon's `out`
// never exceed 8; every token is back within 2 s of the holders' death.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  maxConcurrency,
  PYTHON,
  type RunningDaemon,
  startDaemon,
  waitFor,
} from './helpers/daemon.js';
import { NINJA, writeNinjaBuild } from './helpers/ninja.js';
import { cleanEnv } from './helpers/processes.js';

const JOBS = 8;
/** How long tokens may take to come back once their holders are gone. */
const RECLAIM_DEADLINE_MS = 2000;

// A client driven line by line from stdin. `r` reads one token (blocking),
// `w N` writes N held tokens back (the exact bytes read), `dup N` writes its
// first token N times (one return, N-1 strays), `s N B` writes N bytes of
// value B it never read, `c` closes its descriptors (keeping what it holds),
// `o` opens them again, `q` quits. It says `put` *before* writing, `got`
// *after* reading, so the sum of what clients report is never above what
// they really hold.
const CLIENT = `
import os, sys
path, how = sys.argv[1], sys.argv[2]
fds = []
def open_fds():
    global r, w, fds
    if how == 'rdwr':
        r = w = os.open(path, os.O_RDWR)
        fds = [r]
    else:
        r = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        os.set_blocking(r, True)
        w = os.open(path, os.O_WRONLY)
        fds = [r, w]
open_fds()
print('open', flush=True)
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
        give = b''.join(held[:n])
        del held[:n]
        print('put', len(held), flush=True)
        os.write(w, give)
    elif cmd[0] == 'dup':
        give = held.pop(0) * int(cmd[1])
        print('put', len(held), flush=True)
        os.write(w, give)
        print('duplicated', flush=True)
    elif cmd[0] == 's':
        os.write(w, bytes([int(cmd[2])]) * int(cmd[1]))
        print('strayed', flush=True)
    elif cmd[0] == 'c':
        for fd in fds:
            os.close(fd)
        print('closed', flush=True)
    elif cmd[0] == 'o':
        open_fds()
        print('open', flush=True)
    elif cmd[0] == 'q':
        break
`;

/** Every client of a test, to bound the sum of what they hold. */
const clients: Client[] = [];
let heldHighWater = 0;
function noteHeld(): void {
  heldHighWater = Math.max(
    heldHighWater,
    clients.reduce((sum, client) => sum + client.held, 0),
  );
}

class Client {
  readonly lines: string[] = [];
  readonly process: ChildProcess;
  held = 0;
  exited = false;

  constructor(
    readonly name: string,
    file: string,
    how: 'rdwr' | 'split',
  ) {
    this.process = spawn(PYTHON, ['-u', '-c', CLIENT, file, how], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let partial = '';
    this.process.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      partial += chunk;
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) {
        this.lines.push(line);
        const count = /^(?:got|put) (\d+)$/.exec(line);
        if (count) {
          this.held = Number(count[1]);
          noteHeld();
        }
      }
    });
    this.process.on('exit', () => {
      this.exited = true;
      this.held = 0;
    });
    clients.push(this);
  }

  count(prefix: string): number {
    return this.lines.filter((line) => line.startsWith(prefix)).length;
  }

  async said(prefix: string, times = 1): Promise<void> {
    await waitFor(`${this.name} to say "${prefix}" ${times}x`, () => this.count(prefix) >= times);
  }

  async take(n: number, deadlineMs = 5000): Promise<void> {
    for (let i = 0; i < n; i++) {
      const before = this.count('got ');
      this.send('r');
      await waitFor(
        `${this.name}: token ${i + 1} of ${n}`,
        () => this.count('got ') === before + 1,
        deadlineMs,
      );
    }
  }

  async giveBack(n: number): Promise<void> {
    const before = this.count('put ');
    this.send(`w ${n}`);
    await waitFor(`${this.name} to write back`, () => this.count('put ') === before + 1);
  }

  send(line: string): void {
    this.process.stdin?.write(`${line}\n`);
  }

  async kill(): Promise<void> {
    if (this.exited) return;
    // By pid, this one process only.
    process.kill(this.process.pid as number, 'SIGKILL');
    await waitFor(`${this.name} to die`, () => this.exited);
  }
}

let daemon: RunningDaemon | null = null;
afterEach(async () => {
  for (const client of clients.splice(0)) await client.kill();
  heldHighWater = 0;
  await daemon?.stop();
  daemon = null;
});

async function start(): Promise<RunningDaemon> {
  daemon = await startDaemon(['-j', String(JOBS)], { fifo: { prefetch: 1 } });
  return daemon;
}

/** Bytes the fifo front said it dropped (not credited as returns). */
function dropped(running: RunningDaemon): number {
  return running.log
    .map((line) =>
      Number(/fifo .*: dropped (\d+) byte\(s\) that are no token/.exec(line)?.[1] ?? 0),
    )
    .reduce((sum, count) => sum + count, 0);
}

/** Every client gone: all tokens back within the deadline. */
async function allBack(running: RunningDaemon): Promise<void> {
  for (const client of clients) await client.kill();
  await waitFor('every token back', () => running.out() === 0, RECLAIM_DEADLINE_MS);
}

describe('the fifo front never grows the pool', () => {
  it('(a) a token written back after its reader closed the fifo is not credited twice', async () => {
    const running = await start();
    const fifo = running.fifoPath as string;
    const late = new Client('late', fifo, 'split');
    await late.said('open');
    await late.take(1);
    // Nobody has the fifo open now, but `late` still holds its token.
    late.send('c');
    await late.said('closed');
    await waitFor('the parked token to go back', () => running.out() <= 1);

    const fuse = new Client('fuse', running.jobserverPath, 'rdwr');
    await fuse.said('open');
    await fuse.take(JOBS - 1);
    const next = new Client('next', fifo, 'split');
    await next.said('open');
    // With `late` holding one, this read must wait for its return.
    next.send('r');
    await next.said('reading');
    late.send('o');
    await late.said('open', 2);
    await late.giveBack(1);
    await waitFor('next to get the returned token', () => next.held === 1);
    // That return must not be credited again: the FUSE client's 8th token
    // comes only when `next` gives its token back and the fifo's clients
    // leave (one token may stay parked for them until then).
    fuse.send('r');
    await fuse.said('reading', JOBS);
    await next.giveBack(1);
    next.send('q');
    late.send('q');
    await waitFor('the FUSE client to hold 8', () => fuse.held === JOBS);

    expect(heldHighWater).toBeLessThanOrEqual(JOBS);
    expect(running.maxOut()).toBeLessThanOrEqual(JOBS);
    await allBack(running);
  });

  it('(b) bytes a client never read, and one token written three times, are not returns', async () => {
    const running = await start();
    const fifo = running.fifoPath as string;
    const holder = new Client('holder', fifo, 'split');
    await holder.said('open');
    await holder.take(3);
    const fuse = new Client('fuse', running.jobserverPath, 'rdwr');
    await fuse.said('open');
    await fuse.take(4);
    // 3 + 4 held, the 8th parked; the FUSE client waits for a 9th.
    fuse.send('r');
    await fuse.said('reading', 5);
    await waitFor('the pool to be empty', () => running.out() === JOBS);

    // make's token byte, never read by this client.
    const stray = new Client('stray', fifo, 'split');
    await stray.said('open');
    stray.send(`s 3 ${'+'.charCodeAt(0)}`);
    await stray.said('strayed');
    // One real token written back three times.
    const duplicator = new Client('duplicator', fifo, 'split');
    await duplicator.said('open');
    await duplicator.take(1);
    duplicator.send('dup 3');
    await duplicator.said('duplicated');
    // One real return (to the waiting FUSE client or parked again), five
    // bytes dropped.
    // (Or the pool grows: then the checks below say by how much.)
    await waitFor(
      'the front to drop 3 strays and 2 duplicates',
      () => dropped(running) === 5 || heldHighWater > JOBS,
    );
    // Whatever is in the pipe now may be taken: the holder asks for three
    // more, and gets them only once the FUSE client's are freed.
    for (let i = 0; i < 3; i++) holder.send('r');
    await holder.said('reading', 4);
    await fuse.kill();
    await waitFor('the holder to hold 6', () => holder.held === 6);

    expect(heldHighWater).toBeLessThanOrEqual(JOBS);
    expect(running.maxOut()).toBeLessThanOrEqual(JOBS);
    await allBack(running);
  });

  it('(c) tokens of SIGKILLed fifo clients come back while another process keeps the fifo open', async () => {
    const running = await start();
    const fifo = running.fifoPath as string;
    // Keeps the fifo open for reading the whole time, holding nothing.
    const keeper = new Client('keeper', fifo, 'split');
    await keeper.said('open');
    for (let round = 0; round < 6; round++) {
      const victims = [3, 2, 2].map((_, i) => new Client(`victim ${round}.${i}`, fifo, 'split'));
      for (const victim of victims) await victim.said('open');
      for (const [i, victim] of victims.entries()) await victim.take([3, 2, 2][i] as number);
      for (const victim of victims) await victim.kill();
      // Back within the deadline: at most the one parked token stays out.
      await waitFor(
        `round ${round}: the killed clients' tokens back`,
        () => running.out() <= 1,
        RECLAIM_DEADLINE_MS,
      );
    }
    // A FUSE client is not starved: it gets 7 at once.
    const fuse = new Client('fuse', running.jobserverPath, 'rdwr');
    await fuse.said('open');
    await fuse.take(JOBS - 1, RECLAIM_DEADLINE_MS);
    expect(heldHighWater).toBeLessThanOrEqual(JOBS);
    expect(running.maxOut()).toBeLessThanOrEqual(JOBS);
    await allBack(running);
  });

  it('(c) ninja 1.13.2 SIGKILLed mid-build while another process keeps the fifo open: its tokens come back', async () => {
    const running = await start();
    const fifo = running.fifoPath as string;
    const keeper = new Client('keeper', fifo, 'split');
    await keeper.said('open');
    const fuse = new Client('fuse', running.jobserverPath, 'rdwr');
    await fuse.said('open');
    await fuse.take(2);
    const ninjaDir = join(running.dir, 'ninja');
    mkdirSync(ninjaDir);
    const stamps = join(running.dir, 'stamps');
    writeNinjaBuild(ninjaDir, 40, 2, stamps);
    const ninja = spawn(NINJA, ['-C', ninjaDir], {
      cwd: ninjaDir,
      env: cleanEnv({ MAKEFLAGS: `--jobserver-auth=fifo:${fifo}` }),
      stdio: 'ignore',
    });
    let ninjaExited = false;
    ninja.on('exit', () => (ninjaExited = true));
    try {
      // ninja has its implicit slot and at least 3 tokens (one more parked).
      await waitFor(
        'ninja to run 4 jobs at once',
        () =>
          existsSync(stamps) &&
          maxConcurrency(readFileSync(stamps, 'utf8')) >= 4 &&
          running.out() >= 2 + 3 + 1,
        30_000,
      );
    } finally {
      process.kill(ninja.pid as number, 'SIGKILL');
    }
    await waitFor('ninja to die', () => ninjaExited);
    // Its jobs (sleeps) run on, outside the pool, but ninja's tokens are back.
    await waitFor("ninja's tokens back", () => running.out() <= 2 + 1, RECLAIM_DEADLINE_MS);
    // All but the one parked for the keeper.
    await fuse.take(JOBS - 2 - 1, RECLAIM_DEADLINE_MS);
    expect(maxConcurrency(readFileSync(stamps, 'utf8'))).toBeLessThanOrEqual(JOBS - 2 + 1);
    expect(running.maxOut()).toBeLessThanOrEqual(JOBS);
    await allBack(running);
  });
});
