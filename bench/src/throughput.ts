/**
 * The core's raw event rate: `clients` processes each keep one blocking read
 * waiting; 64 tokens circulate. Each step is a holder's write (returning a
 * token, which the core grants to the best waiter) and that holder's next
 * blocking read (queued). Measured on the real clock of this machine.
 */

import { Scheduler } from 'steve-daemon/core';

export interface ThroughputResult {
  readonly clients: number;
  readonly events: number;
  readonly seconds: number;
  readonly eventsPerSecond: number;
}

export function measureCoreThroughput(
  clients: number,
  events = 600_000,
  jobs = 64,
): ThroughputResult {
  const scheduler = new Scheduler({ config: { jobs }, records: true });
  // A request id carries its pid (id = n × 2^16 + pid): no lookup table in
  // the harness, whose own cost would otherwise grow with the clients.
  const PID_SPACE = 65_536;
  let next = 1;
  let nowMs = 0;
  const holders: number[] = [];
  const collect = (effects: ReturnType<Scheduler['handle']>): void => {
    for (const effect of effects) {
      if (effect.type === 'reply' && effect.reply.kind === 'token')
        holders.push(effect.requestId % PID_SPACE);
    }
  };
  const read = (pid: number): void => {
    collect(
      scheduler.handle(
        {
          type: 'read',
          requestId: next++ * PID_SPACE + pid,
          fileId: 1,
          pid,
          blocking: true,
          sizeBytes: 1,
        },
        nowMs,
      ),
    );
  };
  for (let pid = 1; pid <= clients; pid++) read(pid);

  const run = (count: number): void => {
    for (let i = 0; i < count; i += 2) {
      nowMs += 0.01;
      const pid = holders.shift() as number;
      collect(
        scheduler.handle(
          { type: 'write', requestId: next++ * PID_SPACE + pid, fileId: 1, pid, sizeBytes: 1 },
          nowMs,
        ),
      );
      read(pid);
    }
  };
  run(Math.min(events, 50_000)); // warm-up
  const start = process.hrtime.bigint();
  run(events);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (scheduler.out !== jobs)
    throw new Error(`throughput run lost tokens: ${scheduler.out} out of ${jobs}`);
  return { clients, events, seconds, eventsPerSecond: events / seconds };
}
