/**
 * Counters kept from the scheduler's records, and the Prometheus text
 * exposition of them plus the pool's gauges.
 */

import type { PoolRecord } from '@steve/protocol';
import type { SchedulerSnapshot } from '../core/index.js';

export class PoolCounters {
  grants = 0;
  returnedTokens = 0;
  reclaimedTokens = 0;
  reservations = 0;
  reservationsExpired = 0;
  enospc = 0;
  interrupts = 0;
  configChanges = 0;

  count(record: PoolRecord): void {
    switch (record.type) {
      case 'grant':
        if (!record.viaReservation) this.grants += 1;
        break;
      case 'reserve':
        this.grants += 1;
        this.reservations += 1;
        break;
      case 'return':
        this.returnedTokens += record.tokens;
        break;
      case 'reclaim':
        this.reclaimedTokens += record.tokens;
        break;
      case 'reservation-expired':
        this.reservationsExpired += 1;
        break;
      case 'enospc':
        this.enospc += 1;
        break;
      case 'interrupted':
        this.interrupts += 1;
        break;
      case 'config':
        this.configChanges += 1;
        break;
      default:
        break;
    }
  }
}

/** The Prometheus text format (version 0.0.4). */
export function prometheusText(snapshot: SchedulerSnapshot, counters: PoolCounters): string {
  const lines: string[] = [];
  const metric = (
    name: string,
    type: 'gauge' | 'counter',
    help: string,
    samples: Array<[string, number]>,
  ): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  metric('steve_jobs', 'gauge', 'Tokens in the pool (-j).', [['', snapshot.config.jobs]]);
  metric(
    'steve_capacity',
    'gauge',
    'Tokens that may be out now (jobs, or min-jobs while a limit holds).',
    [['', snapshot.capacity]],
  );
  metric('steve_tokens_out', 'gauge', 'Tokens held by clients plus reserved for pollers.', [
    ['', snapshot.out],
  ]);
  metric('steve_tokens_reserved', 'gauge', 'Tokens reserved for polling clients.', [
    ['', snapshot.reserved],
  ]);
  metric('steve_tokens_available', 'gauge', 'Tokens that can be granted now.', [
    ['', snapshot.available],
  ]);
  metric('steve_waiters', 'gauge', 'Blocked reads and pollers waiting for a token.', [
    ['', snapshot.waiting],
  ]);
  metric('steve_holders', 'gauge', 'Processes holding tokens.', [['', snapshot.holders.length]]);
  metric('steve_open_files', 'gauge', 'Open jobserver files.', [['', snapshot.openFiles]]);
  metric(
    'steve_limited',
    'gauge',
    'Whether a limit holds the pool at min-jobs.',
    (['load', 'memory', 'pressure'] as const).map((limit) => [
      `{limit="${limit}"}`,
      snapshot.limitedBy === limit ? 1 : 0,
    ]),
  );
  metric('steve_grants_total', 'counter', 'Tokens granted (reads and reservations).', [
    ['', counters.grants],
  ]);
  metric('steve_returned_tokens_total', 'counter', 'Tokens written back by clients.', [
    ['', counters.returnedTokens],
  ]);
  metric('steve_reclaimed_tokens_total', 'counter', 'Tokens taken back from exited processes.', [
    ['', counters.reclaimedTokens],
  ]);
  metric('steve_reservations_total', 'counter', 'Tokens reserved for pollers.', [
    ['', counters.reservations],
  ]);
  metric('steve_reservations_expired_total', 'counter', 'Reservations that expired unused.', [
    ['', counters.reservationsExpired],
  ]);
  metric('steve_enospc_total', 'counter', 'Writes of tokens the writer did not hold.', [
    ['', counters.enospc],
  ]);
  metric('steve_interrupts_total', 'counter', 'Waiting reads interrupted by a signal.', [
    ['', counters.interrupts],
  ]);
  return `${lines.join('\n')}\n`;
}
