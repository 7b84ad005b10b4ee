/**
 * The pool's runtime settings as they travel on the control socket, and
 * their validation (one place: the daemon's core uses the same checks).
 */

/** The order in which waiters get tokens. */
export type Fairness = 'least-held' | 'fifo';
export const FAIRNESS_VALUES: readonly Fairness[] = ['least-held', 'fifo'];

/** Every runtime setting of the pool (`stevie set NAME VALUE` changes one). */
export interface Settings {
  /** Tokens in the pool (`-j`). A decrease takes effect as tokens come back. */
  readonly jobs: number;
  /** Grant order among waiters. */
  readonly fairness: Fairness;
  /** How long a token reserved for a poller waits for its read. */
  readonly reservationTtlMs: number;
  /** Above this 1-minute load average only `minJobs` tokens are out (`-l`); null: no limit. */
  readonly maxLoadAverage: number | null;
  /** The floor the load, memory and pressure limits never go below (`-m`). */
  readonly minJobs: number;
  /** How often a limit is re-sampled while someone waits (`--load-recheck`). */
  readonly limitRecheckMs: number;
  /** Below this MemAvailable (MiB) only `minJobs` tokens are out (`-a`); null: no limit. */
  readonly minMemoryAvailableMiB: number | null;
  /** Above this PSI memory `some avg10` (percent) only `minJobs` tokens are out; null: no limit. */
  readonly maxMemoryPressureAvg10: number | null;
  /** At most this many tokens per process (`-p`); null: no cap. */
  readonly perProcessLimit: number | null;
  /** At most this many tokens for all processes of one uid together (`--per-user-limit`); null: no cap. */
  readonly perUserLimit: number | null;
}

export type SettingName = keyof Settings;

export const SETTING_NAMES: readonly SettingName[] = [
  'jobs',
  'fairness',
  'reservationTtlMs',
  'maxLoadAverage',
  'minJobs',
  'limitRecheckMs',
  'minMemoryAvailableMiB',
  'maxMemoryPressureAvg10',
  'perProcessLimit',
  'perUserLimit',
];

export function isSettingName(name: string): name is SettingName {
  return (SETTING_NAMES as readonly string[]).includes(name);
}

/** The longest delay a Node timer can wait. */
export const MAX_TIMER_MS = 2_147_483_647;

function isPositiveInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

function isNonNegativeNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

/**
 * Check a set of changes. Returns null when they are valid, else one line
 * saying what is wrong and what is expected. Unknown names are rejected.
 *
 * @example
 * validateSettings({ jobs: 12 })   // null
 * validateSettings({ jobs: 0 })    // 'jobs must be a whole number >= 1, got 0'
 */
export function validateSettings(changes: Readonly<Record<string, unknown>>): string | null {
  for (const [key, value] of Object.entries(changes)) {
    switch (key) {
      case 'jobs':
      case 'minJobs':
        if (!isPositiveInteger(value))
          return `${key} must be a whole number >= 1, got ${String(value)}`;
        break;
      case 'perProcessLimit':
      case 'perUserLimit':
        if (value !== null && !isPositiveInteger(value)) {
          return `${key} must be a whole number >= 1 or null (no cap), got ${String(value)}`;
        }
        break;
      case 'reservationTtlMs':
      case 'limitRecheckMs':
        // Node's timers take at most 2^31 - 1 ms (about 24.8 days).
        if (!isPositiveInteger(value) || value > MAX_TIMER_MS) {
          return `${key} must be a whole number of milliseconds from 1 to ${MAX_TIMER_MS}, got ${String(value)}`;
        }
        break;
      case 'maxLoadAverage':
      case 'minMemoryAvailableMiB':
      case 'maxMemoryPressureAvg10':
        if (value !== null && !isNonNegativeNumber(value)) {
          return `${key} must be a number >= 0 or null (no limit), got ${String(value)}`;
        }
        break;
      case 'fairness':
        if (!FAIRNESS_VALUES.includes(value as Fairness)) {
          return `fairness must be one of ${FAIRNESS_VALUES.join(', ')}, got ${String(value)}`;
        }
        break;
      default:
        return `unknown setting '${key}' (known: ${SETTING_NAMES.join(', ')})`;
    }
  }
  return null;
}

/**
 * Read a setting's value from text (`stevie set jobs 12`, `stevie set maxLoadAverage none`).
 * Returns the value, or an error line.
 */
export function parseSettingValue(
  name: SettingName,
  text: string,
): { value: unknown } | { error: string } {
  const trimmed = text.trim();
  let value: unknown;
  if (name === 'fairness') value = trimmed;
  else if (/^(none|null|off)$/i.test(trimmed)) value = null;
  else if (/^-?\d+(\.\d+)?$/.test(trimmed)) value = Number(trimmed);
  else
    return {
      error: `${name} needs a number${name === 'jobs' || name === 'minJobs' || name.endsWith('Ms') ? '' : " or 'none'"}, got '${text}'`,
    };
  const problem = validateSettings({ [name]: value });
  return problem === null ? { value } : { error: problem };
}
