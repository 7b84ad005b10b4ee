// `stevie -- ninja`: ninja 1.13.2 accepts only a real fifo, so stevie asks
// the daemon for a private one (no --fifo needed): a sub-pool of the one
// pool that belongs to this command. It shares the pool with make 4.3 on the
// FUSE file, and when ninja is SIGKILLed mid-build every token it had comes
// back at once, although another process keeps the daemon's shared fifo
// open (on a shared fifo they would stay lent until its last close).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  PYTHON,
  STEVIE_BIN,
  maxConcurrency,
  type RunningDaemon,
  startDaemon,
  waitFor,
} from './helpers/daemon.js';
import { NINJA, writeNinjaBuild } from './helpers/ninja.js';
import { REPO } from './helpers/daemon.js';
import { childrenOf, cleanEnv, run } from './helpers/processes.js';
import { writeMakefile } from './helpers/workloads.js';

let daemon: RunningDaemon | null = null;
const started: ChildProcess[] = [];
afterEach(async () => {
  for (const child of started.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  await daemon?.stop();
  daemon = null;
});

/** A directory with an executable `ninja` (the real one) for PATH. */
function ninjaOnPath(): NodeJS.ProcessEnv {
  return cleanEnv({ PATH: `${join(NINJA, '..')}:${process.env.PATH ?? ''}` });
}

function lines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n') : [];
}

describe('stevie -- ninja gets a private fifo', () => {
  it('ninja on its private fifo and make 4.3 on the FUSE file share -j4: at most 4 out, ninja not starved, the fifo removed after', async () => {
    daemon = await startDaemon(['-j', '4']);
    const stamps = join(daemon.dir, 'stamps');
    const ninjaDir = join(daemon.dir, 'ninja');
    mkdirSync(ninjaDir);
    writeNinjaBuild(ninjaDir, 12, 1, stamps);
    const makefile = writeMakefile(daemon.dir, 8, 1, stamps);

    const ninjaRun = run(
      process.execPath,
      [STEVIE_BIN, '--control', daemon.controlPath, '--', 'ninja', '-C', ninjaDir],
      { cwd: ninjaDir, env: ninjaOnPath() },
    );
    const makeRun = run('bash', ['-c', `exec make -f ${makefile} 3<>${daemon.jobserverPath}`], {
      cwd: daemon.dir,
      env: cleanEnv({ MAKEFLAGS: '--jobserver-auth=3,3' }),
    });
    const [ninjaResult, makeResult] = await Promise.all([ninjaRun, makeRun]);
    expect(ninjaResult, ninjaResult.output).toMatchObject({ code: 0 });
    expect(makeResult, makeResult.output).toMatchObject({ code: 0 });
    expect(ninjaResult.output).toContain('Jobserver mode detected');
    expect(ninjaResult.output).not.toContain('warning');

    const all = lines(stamps);
    expect(all.filter((l) => l.startsWith('end ninja-'))).toHaveLength(12);
    expect(all.filter((l) => l.startsWith('end make-'))).toHaveLength(8);
    // stevie's token is ninja's implicit slot: 4 tokens + make's implicit slot.
    expect(daemon.maxOut()).toBeLessThanOrEqual(4);
    expect(maxConcurrency(all)).toBeLessThanOrEqual(4 + 1);
    expect(maxConcurrency(all.filter((l) => l.includes(' ninja-')))).toBeGreaterThanOrEqual(2);
    // The fifo was a sub-pool of the daemon's (its file client), and is gone.
    expect(daemon.log.some((l) => l.startsWith('grant -> file:'))).toBe(true);
    await waitFor('all tokens back', () => daemon?.out() === 0);
    const fifos = join(daemon.dir, 'steve-fifos');
    expect(existsSync(fifos) ? readdirSync(fifos) : []).toEqual([]);
  });

  it('SIGKILL of ninja mid-build: its tokens come back at once, while another process keeps the shared fifo open', async () => {
    daemon = await startDaemon(['-j', '4'], { fifo: { prefetch: 1 } });
    // A bystander keeps the daemon's shared fifo open for the whole test.
    const bystander = spawn(
      PYTHON,
      [
        '-c',
        'import os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); time.sleep(120)',
        daemon.fifoPath as string,
      ],
      { stdio: 'ignore' },
    );
    started.push(bystander);
    await waitFor('the shared fifo to park a token for it', () => daemon?.out() === 1);

    const stamps = join(daemon.dir, 'stamps');
    const ninjaDir = join(daemon.dir, 'ninja');
    mkdirSync(ninjaDir);
    writeNinjaBuild(ninjaDir, 12, 3, stamps);
    const wrapper = spawn(
      process.execPath,
      [STEVIE_BIN, '--control', daemon.controlPath, '--', 'ninja', '-C', ninjaDir],
      { cwd: ninjaDir, env: ninjaOnPath(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    started.push(wrapper);
    const wrapperExit = new Promise<number | null>((resolve) => wrapper.on('exit', resolve));
    // ninja runs 3 jobs at once: the shared fifo's parked token plus 3 for ninja.
    await waitFor(
      'ninja to run 3 jobs',
      () =>
        lines(stamps).filter((l) => l.startsWith('start ninja-')).length >= 3 &&
        daemon?.out() === 4,
      20_000,
    );
    const ninjaPid = childrenOf(wrapper.pid as number)[0];
    expect(ninjaPid).toBeGreaterThan(0);
    process.kill(ninjaPid as number, 'SIGKILL');

    // stevie sees ninja die and ends; the private fifo ends with it and
    // every token ninja had comes back (the jobs it started still sleep).
    expect(await wrapperExit).toBe(137);
    await waitFor('ninja\u2019s tokens back', () => daemon?.out() === 1, 3000);
    expect(bystander.exitCode).toBeNull();
  });

  it('steve-job -- ninja, from a make 4.3 recipe on the FUSE file: ninja runs on a private fifo, at most 3 tokens out, the fifo removed after', async () => {
    daemon = await startDaemon(['-j', '3']);
    const stamps = join(daemon.dir, 'stamps');
    const ninjaDir = join(daemon.dir, 'ninja');
    mkdirSync(ninjaDir);
    writeNinjaBuild(ninjaDir, 9, 1, stamps);
    const stevejob = join(REPO, 'packages', 'emerge-shim', 'bin', 'steve-job.js');
    // A make 4.3 recipe marked `+` runs steve-job on the token make holds for it.
    const makefile = join(daemon.dir, 'Makefile');
    writeFileSync(
      makefile,
      `all:\n\t+${process.execPath} ${stevejob} -v --control ${daemon.controlPath} -- ninja -C ${ninjaDir}\n`,
    );
    const result = await run(
      'bash',
      ['-c', `exec make -f ${makefile} 3<>${daemon.jobserverPath}`],
      { cwd: daemon.dir, env: { ...ninjaOnPath(), MAKEFLAGS: '--jobserver-auth=3,3' } },
    );
    expect(result, result.output).toMatchObject({ code: 0 });
    expect(result.output).toContain('a private fifo of the daemon');
    expect(result.output).toMatch(/Jobserver mode detected: +--jobserver-auth=fifo:\S*steve-fifos/);
    const all = lines(stamps);
    expect(all.filter((l) => l.startsWith('end ninja-'))).toHaveLength(9);
    // The recipe runs on make's implicit slot, which steve-job passes on to
    // ninja as its own; every other job has a token of the pool: 3 + 1.
    expect(daemon.maxOut()).toBeLessThanOrEqual(3);
    expect(maxConcurrency(all)).toBeLessThanOrEqual(3 + 1);
    expect(maxConcurrency(all)).toBeGreaterThanOrEqual(2);
    await waitFor('all tokens back', () => daemon?.out() === 0);
    const fifos = join(daemon.dir, 'steve-fifos');
    expect(existsSync(fifos) ? readdirSync(fifos) : []).toEqual([]);
  });
});
