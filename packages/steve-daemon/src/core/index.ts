/**
 * The token scheduler core: pure and deterministic, clock injected.
 * Fronts and the control socket translate I/O into `SchedulerEvent`s and
 * carry out the returned `SchedulerEffect`s.
 */
export * from './types.js';
export { defaultConfig, validateConfigChanges, DEFAULT_LIMIT_RECHECK_MS } from './config.js';
export {
  Scheduler,
  AGING_GRANTS_PER_HELD_TOKEN,
  RESERVATION_YIELD_MS,
  inheritedKey,
  isInheritedKey,
  type SchedulerOptions,
} from './scheduler.js';
