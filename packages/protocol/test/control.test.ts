import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  jobsFromStatusFile,
  CONTROL_MAX_LINE_BYTES,
  chooseFront,
  parseControlRequest,
  parseSettingValue,
  validateSettings,
} from '../src/index.js';

describe('parseControlRequest', () => {
  it.each([
    ['{"type":"status"}', { type: 'status' }],
    ['{"id":7,"type":"status"}', { id: 7, type: 'status' }],
    ['{"id":"a","type":"get"}', { id: 'a', type: 'get' }],
    ['{"type":"get","setting":"jobs"}', { type: 'get', setting: 'jobs' }],
    [
      '{"type":"set","changes":{"jobs":12,"maxLoadAverage":null}}',
      { type: 'set', changes: { jobs: 12, maxLoadAverage: null } },
    ],
    ['{"type":"subscribe"}', { type: 'subscribe' }],
    ['{"type":"metrics"}', { type: 'metrics' }],
  ])('%s', (line, request) => {
    expect(parseControlRequest(line)).toEqual({ ok: true, request });
  });

  it.each([
    ['garbage', 'bad-json'],
    ['[1,2]', 'bad-request'],
    ['null', 'bad-request'],
    ['{"type":"reboot"}', 'unknown-request'],
    ['{"type":42}', 'unknown-request'],
    ['{"type":"set"}', 'bad-request'],
    ['{"type":"set","changes":{}}', 'bad-request'],
    ['{"type":"set","changes":{"jobs":0}}', 'invalid-setting'],
    ['{"type":"set","changes":{"jobs":"12"}}', 'invalid-setting'],
    ['{"type":"set","changes":{"rm -rf":1}}', 'invalid-setting'],
    ['{"type":"get","setting":"nope"}', 'invalid-setting'],
    ['{"id":{},"type":"status"}', 'bad-request'],
  ])('%s -> %s', (line, code) => {
    const parsed = parseControlRequest(line);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error.code).toBe(code);
  });

  it('keeps the id of a request it refuses, so the reply can be matched', () => {
    expect(parseControlRequest('{"id":3,"type":"set","changes":{"jobs":-1}}')).toMatchObject({
      ok: false,
      id: 3,
    });
  });

  it('refuses lines over 64 KiB', () => {
    const line = JSON.stringify({ type: 'status', pad: 'x'.repeat(CONTROL_MAX_LINE_BYTES) });
    expect(parseControlRequest(line)).toMatchObject({
      ok: false,
      error: { code: 'line-too-long' },
    });
  });

  it('never throws, whatever it is given (random text and mutated requests)', () => {
    const valid = [
      '{"type":"status"}',
      '{"id":1,"type":"set","changes":{"jobs":4}}',
      '{"type":"get","setting":"fairness"}',
    ];
    const mutated = fc
      .tuple(fc.constantFrom(...valid), fc.nat(), fc.string({ maxLength: 4 }), fc.nat({ max: 6 }))
      .map(([line, at, insert, cut]) => {
        const i = at % (line.length + 1);
        return line.slice(0, i) + insert + line.slice(i + cut);
      });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.json(),
          mutated,
          fc.uint8Array().map((b) => Buffer.from(b).toString('latin1')),
        ),
        (line) => {
          const parsed = parseControlRequest(line);
          if (parsed.ok && parsed.request.type === 'set') {
            expect(validateSettings(parsed.request.changes)).toBeNull();
          }
        },
      ),
      { numRuns: 5000 },
    );
  });
});

describe('settings', () => {
  it('validates values', () => {
    expect(validateSettings({ jobs: 12, fairness: 'fifo', perProcessLimit: null })).toBeNull();
    expect(validateSettings({ minMemoryAvailableMiB: -5 })).toMatch(/>= 0 or null/);
    expect(validateSettings({ reservationTtlMs: 0.5 })).toMatch(/milliseconds/);
  });

  it('reads values typed by a user', () => {
    expect(parseSettingValue('jobs', '12')).toEqual({ value: 12 });
    expect(parseSettingValue('maxLoadAverage', 'none')).toEqual({ value: null });
    expect(parseSettingValue('fairness', 'fifo')).toEqual({ value: 'fifo' });
    expect(parseSettingValue('jobs', 'lots')).toHaveProperty('error');
    expect(parseSettingValue('jobs', 'none')).toEqual({
      error: 'jobs must be a whole number >= 1, got null',
    });
  });
});

describe('chooseFront', () => {
  const fronts = [
    { kind: 'fuse', path: '/run/steve/jobserver' },
    { kind: 'fifo', path: '/run/steve.fifo' },
  ];
  it('gives ninja (1.13 accepts only a real fifo) the fifo front, everyone else the device or file', () => {
    expect(chooseFront(fronts, '/usr/bin/ninja')?.path).toBe('/run/steve.fifo');
    expect(chooseFront(fronts, 'make')?.path).toBe('/run/steve/jobserver');
    expect(chooseFront([{ kind: 'cuse', path: '/dev/steve' }, ...fronts], 'cargo')?.path).toBe(
      '/dev/steve',
    );
    expect(chooseFront([], 'make')).toBeUndefined();
  });
});

describe('jobsFromStatusFile', () => {
  it('reads the pool size from the first line of the FUSE status file, null for anything else', () => {
    expect(jobsFromStatusFile('jobs 8  capacity 8  out 2  reserved 0\nholders (0):\n')).toBe(8);
    expect(jobsFromStatusFile('holders (0):\njobs 8 \n')).toBeNull();
    expect(jobsFromStatusFile('')).toBeNull();
  });
});
