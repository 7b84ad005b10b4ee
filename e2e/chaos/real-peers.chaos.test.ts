// The chaos suite with real peers on the FUSE front: Debian's jobserver-rs
// 0.1.24 in pipe style on ONE shared blocking description (`3<>FILE`,
// `--jobserver-auth=3,3`: its helper threads block in read while other
// threads release, the pattern that used to deadlock), GNU make 4.3 on its
// inherited `3<>FILE`, and cargo (fifo style), all at once on -j3, with one
// jobserver-rs client SIGKILLed mid-run and a runtime job change.
import { existsSync, readFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  REPO,
  type RunningDaemon,
  maxConcurrency,
  startDaemon,
  waitFor,
} from '../helpers/daemon.js';
import { cleanEnv, run } from '../helpers/processes.js';
import {
  buildJobserverRsClient,
  writeCargoWorkspace,
  writeMakefile,
} from '../helpers/workloads.js';

let daemon: RunningDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

let client = '';
beforeAll(() => {
  client = buildJobserverRsClient(join(REPO, 'e2e', 'chaos', '.build'), { release: true });
}, 180_000);

describe('chaos: real peers on the FUSE front', () => {
  it('jobserver-rs on one shared description, make 4.3 and cargo, one client SIGKILLed, jobs 3 -> 2 -> 3', async () => {
    daemon = await startDaemon(['-j', '3']);
    const running = daemon;
    const stamps = join(running.dir, 'stamps');
    const rs = (n: number) =>
      spawn('bash', ['-c', `exec ${client} 4 8 120 ${stamps}-rs${n} 3<>${running.jobserverPath}`], {
        cwd: running.dir,
        env: cleanEnv({ MAKEFLAGS: '-j --jobserver-auth=3,3' }),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    const rsClients = [rs(1), rs(2), rs(3)];
    const rsExits = rsClients.map(
      (c) => new Promise<number | null>((resolve) => c.on('exit', (code) => resolve(code))),
    );
    const makefile = writeMakefile(running.dir, 8, 0.3, stamps);
    const makeRun = run('bash', ['-c', `exec make -f ${makefile} 3<>${running.jobserverPath}`], {
      cwd: running.dir,
      env: cleanEnv({ MAKEFLAGS: '--jobserver-auth=3,3' }),
    });
    const workspace = writeCargoWorkspace(running.dir, 4, 0.3);
    const cargoRun = run('cargo', ['build', '--offline', '--quiet'], {
      cwd: workspace,
      env: cleanEnv({
        MAKEFLAGS: `--jobserver-auth=fifo:${running.jobserverPath}`,
        STAMPS: stamps,
        CARGO_TARGET_DIR: join(running.dir, 'target'),
      }),
    });
    // Kill one jobserver-rs client once it has started jobs, and change the pool.
    await waitFor(
      'jobserver-rs jobs running',
      () =>
        existsSync(`${stamps}-rs2`) &&
        readFileSync(`${stamps}-rs2`, 'utf8').includes('start rs-job'),
      30_000,
    );
    const victim = rsClients[1] as ReturnType<typeof rs>;
    const killedAt = Date.now();
    victim.kill('SIGKILL');
    const stevie = join(REPO, 'packages', 'steve-daemon', 'bin', 'stevie.js');
    for (const jobs of ['2', '3']) {
      const set = spawnSync(
        process.execPath,
        [stevie, 'set', 'jobs', jobs, '--control', running.controlPath],
        {
          encoding: 'utf8',
          timeout: 5000,
        },
      );
      expect(set.status, set.stderr).toBe(0);
    }
    const [code0, code1, code2] = await Promise.all(rsExits);
    const goneMs = Date.now() - killedAt;
    const [makeResult, cargoResult] = await Promise.all([makeRun, cargoRun]);
    expect([code0, code2]).toEqual([0, 0]);
    expect(code1).toBeNull(); // killed
    expect(makeResult, makeResult.output).toMatchObject({ code: 0 });
    expect(cargoResult, cargoResult.output).toMatchObject({ code: 0 });
    // The killed client's jobs never end; the other clients' names are made distinct.
    // Its jobs did hold tokens until the kill: count them up to that moment.
    const victimLines = readFileSync(`${stamps}-rs2`, 'utf8').trim().split('\n');
    const killedNs = BigInt(killedAt) * 1_000_000n;
    const ended = new Set(
      victimLines.filter((l) => l.startsWith('end ')).map((l) => l.split(' ')[1]),
    );
    const lines = [
      ...readFileSync(stamps, 'utf8').trim().split('\n'),
      ...[1, 3].flatMap((n) =>
        readFileSync(`${stamps}-rs${n}`, 'utf8')
          .trim()
          .split('\n')
          .map((l) => l.replace(' rs-job', ` rs${n}-job`)),
      ),
      ...victimLines.map((l) => l.replace(' rs-job', ' rs2-job')),
      ...victimLines
        .filter((l) => l.startsWith('start ') && !ended.has(l.split(' ')[1]))
        .map((l) => `end ${(l.split(' ')[1] as string).replace('rs-job', 'rs2-job')} ${killedNs}`),
    ];
    // jobserver-rs takes a token for every job; make and cargo have one implicit slot each.
    const atOnce = maxConcurrency(lines);
    console.log(
      `real-peers: 3 jobserver-rs + make 4.3 + cargo, at most ${atOnce} jobs at once (3 + 2 implicit), killed client gone and others done ${goneMs} ms after the kill`,
    );
    expect(atOnce).toBeLessThanOrEqual(3 + 2);
    expect(lines.filter((l) => l.startsWith('end make-'))).toHaveLength(8);
    await waitFor('every token back', () => daemon?.out() === 0, 2000);
    expect(running.log.filter((l) => l.startsWith('ENOSPC'))).toEqual([]);
  });
});
