/**
 * Defaults and validation of the scheduler's settings, stated once.
 */

import { DEFAULT_RESERVATION_TTL_MS, validateSettings } from '@steve/protocol';
import type { SchedulerConfig } from './types.js';

export const DEFAULT_LIMIT_RECHECK_MS = 1000;

/** The defaults, with `jobs` given (the daemon passes the number of CPUs). */
export function defaultConfig(jobs: number): SchedulerConfig {
  return {
    jobs,
    fairness: 'least-held',
    reservationTtlMs: DEFAULT_RESERVATION_TTL_MS,
    maxLoadAverage: null,
    minJobs: 1,
    limitRecheckMs: DEFAULT_LIMIT_RECHECK_MS,
    minMemoryAvailableMiB: null,
    maxMemoryPressureAvg10: null,
    perProcessLimit: null,
    perUserLimit: null,
  };
}

/**
 * Check a set of changes (the same checks as the control socket's, from
 * `@steve/protocol`). Returns null when valid, else one line saying why not.
 */
export function validateConfigChanges(changes: Readonly<Record<string, unknown>>): string | null {
  return validateSettings(changes);
}
