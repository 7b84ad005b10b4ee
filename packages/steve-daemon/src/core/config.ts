/**
 * Defaults and validation of the scheduler's settings, stated once.
 */

import { DEFAULT_RESERVATION_TTL_MS } from '@steve/protocol';
import type { Fairness, SchedulerConfig } from './types.js';

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
  };
}

const FAIRNESS: readonly Fairness[] = ['least-held', 'fifo'];

function isPositiveInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

function isNonNegativeNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

/**
 * Check a set of changes. Returns null when they are valid, else one line
 * saying what is wrong and what is expected. Unknown keys are rejected.
 */
export function validateConfigChanges(changes: Readonly<Record<string, unknown>>): string | null {
  for (const [key, value] of Object.entries(changes)) {
    switch (key) {
      case 'jobs':
      case 'minJobs':
        if (!isPositiveInteger(value))
          return `${key} must be a whole number >= 1, got ${String(value)}`;
        break;
      case 'perProcessLimit':
        if (value !== null && !isPositiveInteger(value)) {
          return `perProcessLimit must be a whole number >= 1 or null (no cap), got ${String(value)}`;
        }
        break;
      case 'reservationTtlMs':
      case 'limitRecheckMs':
        if (!isPositiveInteger(value))
          return `${key} must be a whole number of milliseconds >= 1, got ${String(value)}`;
        break;
      case 'maxLoadAverage':
      case 'minMemoryAvailableMiB':
      case 'maxMemoryPressureAvg10':
        if (value !== null && !isNonNegativeNumber(value)) {
          return `${key} must be a number >= 0 or null (no limit), got ${String(value)}`;
        }
        break;
      case 'fairness':
        if (!FAIRNESS.includes(value as Fairness)) {
          return `fairness must be one of ${FAIRNESS.join(', ')}, got ${String(value)}`;
        }
        break;
      default:
        return `unknown setting '${key}'`;
    }
  }
  return null;
}
