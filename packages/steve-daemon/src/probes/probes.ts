/**
 * The probes behind the load, memory and pressure limits: /proc/loadavg,
 * /proc/meminfo and /proc/pressure/memory. Parsing is pure (tested with
 * fixtures); reading is one small async read per file, done only when the
 * scheduler asks for a sample (a limit is set and someone waits).
 */

import { readFile } from 'node:fs/promises';
import type { ProbeSample } from '../core/index.js';

/** The 1-minute load average: the first field of /proc/loadavg. */
export function parseLoadavg(text: string): number | undefined {
  const first = Number(text.trim().split(/\s+/)[0]);
  return Number.isFinite(first) ? first : undefined;
}

/** MemAvailable from /proc/meminfo, in MiB. */
export function parseMemAvailableMiB(text: string): number | undefined {
  const match = /^MemAvailable:\s+(\d+)\s+kB$/m.exec(text);
  return match ? Number(match[1]) / 1024 : undefined;
}

/** `some avg10` from /proc/pressure/memory, in percent. */
export function parsePressureSomeAvg10(text: string): number | undefined {
  const match = /^some\s+avg10=([\d.]+)/m.exec(text);
  return match ? Number(match[1]) : undefined;
}

export interface ProbeWants {
  readonly load: boolean;
  readonly memory: boolean;
  readonly pressure: boolean;
}

export interface ProbePaths {
  readonly loadavg: string;
  readonly meminfo: string;
  readonly pressure: string;
}

export const PROC_PATHS: ProbePaths = {
  loadavg: '/proc/loadavg',
  meminfo: '/proc/meminfo',
  pressure: '/proc/pressure/memory',
};

async function readOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined; // a missing probe leaves its limit open (e.g. no PSI in this kernel)
  }
}

/** Read the probes a limit needs; a field is missing when its file is unreadable. */
export async function sampleProbes(
  wants: ProbeWants,
  paths: ProbePaths = PROC_PATHS,
): Promise<ProbeSample> {
  const [loadavg, meminfo, pressure] = await Promise.all([
    wants.load ? readOrUndefined(paths.loadavg) : undefined,
    wants.memory ? readOrUndefined(paths.meminfo) : undefined,
    wants.pressure ? readOrUndefined(paths.pressure) : undefined,
  ]);
  const sample: {
    loadAverage1?: number;
    memAvailableMiB?: number;
    memoryPressureSomeAvg10?: number;
  } = {};
  const load = loadavg === undefined ? undefined : parseLoadavg(loadavg);
  if (load !== undefined) sample.loadAverage1 = load;
  const memory = meminfo === undefined ? undefined : parseMemAvailableMiB(meminfo);
  if (memory !== undefined) sample.memAvailableMiB = memory;
  const psi = pressure === undefined ? undefined : parsePressureSomeAvg10(pressure);
  if (psi !== undefined) sample.memoryPressureSomeAvg10 = psi;
  return sample;
}
