import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  parseLoadavg,
  parseMemAvailableMiB,
  parsePressureSomeAvg10,
  sampleProbes,
} from '../../src/probes/probes.js';

describe('probe parsers', () => {
  it('reads the 1-minute load average', () => {
    expect(parseLoadavg('3.52 2.10 1.05 4/1234 56789\n')).toBe(3.52);
    expect(parseLoadavg('garbage')).toBeUndefined();
  });

  it('reads MemAvailable in MiB', () => {
    const meminfo =
      'MemTotal:       16384000 kB\nMemFree:         1000000 kB\nMemAvailable:    2097152 kB\n';
    expect(parseMemAvailableMiB(meminfo)).toBe(2048);
    expect(parseMemAvailableMiB('MemTotal: 1 kB\n')).toBeUndefined();
  });

  it('reads PSI memory some avg10', () => {
    const psi =
      'some avg10=12.50 avg60=3.00 avg300=1.00 total=123\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n';
    expect(parsePressureSomeAvg10(psi)).toBe(12.5);
  });
});

describe('sampleProbes', () => {
  it('reads this machine: a load average and MemAvailable', async () => {
    const sample = await sampleProbes({ load: true, memory: true, pressure: false });
    expect(sample.loadAverage1).toBeGreaterThanOrEqual(0);
    expect(sample.memAvailableMiB).toBeGreaterThan(0);
    expect(sample.memoryPressureSomeAvg10).toBeUndefined();
  });

  it('leaves a field out when its file cannot be read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'steve-probes-'));
    try {
      writeFileSync(join(dir, 'loadavg'), '0.50 0.40 0.30 1/2 3\n');
      const sample = await sampleProbes(
        { load: true, memory: true, pressure: true },
        {
          loadavg: join(dir, 'loadavg'),
          meminfo: join(dir, 'missing'),
          pressure: join(dir, 'missing'),
        },
      );
      expect(sample).toEqual({ loadAverage1: 0.5 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
