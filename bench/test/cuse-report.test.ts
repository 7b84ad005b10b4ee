// `pnpm bench cuse`'s pure parts: the guest's raw JSON is read strictly (a
// missing target or a zero count is an error, not a gap), rates come from
// pairs / seconds, the verdict is the median of per-round steve / fair C
// ratios against 90% (not a ratio of medians, not one round), the knobs are
// checked, and the report says what was measured where.
import { describe, expect, it } from 'vitest';
import {
  CUSE_RATE_TARGET,
  type CuseTarget,
  type GuestResults,
  checkLines,
  cuseMarkdown,
  cuseRounds,
  cuseSettingsFromEnv,
  cuseSummary,
  parseGuestResults,
} from '../src/cuse.js';

const HOST = {
  cpus: 2,
  loadAverageBefore: [0.5, 0.4, 0.3],
  loadAverageAfter: [1, 0.8, 0.5],
  vmRunSeconds: 80,
};
const ORDERS: CuseTarget[][] = [
  ['fifo', 'fairC', 'steve'],
  ['fairC', 'steve', 'fifo'],
  ['steve', 'fifo', 'fairC'],
];

/** Raw guest JSON with the given pairs per second (2 s runs) per round. */
function guestJson(
  rates: ReadonlyArray<Record<CuseTarget, number>>,
  extra: Record<string, unknown> = {},
): string {
  return JSON.stringify({
    kernel: '6.1.0-57-amd64',
    vcpus: 1,
    pinnedCpu: 0,
    placementApplied: true,
    rounds: rates.length,
    secondsPerRound: 2,
    roundsWallSeconds: 50.5,
    results: rates.map((rate, i) => ({
      round: i + 1,
      order: ORDERS[i % 3],
      targets: Object.fromEntries(
        (Object.keys(rate) as CuseTarget[]).map((t) => [
          t,
          { pairs: rate[t] * 2, seconds: 2, serverCpuNs: t === 'fifo' ? 0 : rate[t] * 2 * 100_000 },
        ]),
      ),
    })),
    ...extra,
  });
}

describe('parseGuestResults', () => {
  it('reads what guest-bench.sh writes, warm-up included', () => {
    const round = { fifo: 200_000, fairC: 4000, steve: 3800 };
    const text = guestJson([round, round, round], {
      accel: 'kvm',
      warmupSeconds: 10,
      warmup: {
        fifo: { pairs: 1, seconds: 1, serverCpuNs: 0 },
        fairC: { pairs: 2, seconds: 1, serverCpuNs: 5 },
        steve: { pairs: 3, seconds: 1, serverCpuNs: 7 },
      },
    });
    const guest = parseGuestResults(text);
    expect(guest.kernel).toBe('6.1.0-57-amd64');
    expect(guest.vcpus).toBe(1);
    expect(guest.placementApplied).toBe(true);
    expect(guest.results[0]?.order).toEqual(['fifo', 'fairC', 'steve']);
    expect(guest.results[0]?.targets.steve).toEqual({
      pairs: 7600,
      seconds: 2,
      serverCpuNs: 7600 * 100_000,
    });
    expect(guest.warmup?.steve.pairs).toBe(3);
    expect(guest.warmupSeconds).toBe(10);
    expect(guest.accel).toBe('kvm');
    const result = cuseSummary(guest, HOST);
    expect(result.warmupPairsPerSecond).toEqual({ fifo: 1, fairC: 2, steve: 3 });
    expect(result.guest.accel).toBe('kvm');
  });

  it('reads the exact bytes the guest script prints (no warm-up is fine)', () => {
    const text =
      '{\n  "kernel": "6.1.0-57-amd64",\n  "vcpus": 1,\n  "pinnedCpu": 0,\n  "placementApplied": true,\n  "rounds": 1,\n  "secondsPerRound": 1,\n  "roundsWallSeconds": 4.9,\n  "results": [{"round":1,"order":["fifo","fairC","steve"],"targets":{"fifo":{"pairs":234800,"seconds":1.0002204379999995,"serverCpuNs":0},"fairC":{"pairs":4600,"seconds":1.0319442760000008,"serverCpuNs":518764403},"steve":{"pairs":1000,"seconds":1.275129676999999,"serverCpuNs":1234}}}]\n}\n';
    const guest = parseGuestResults(text);
    expect(guest.warmup).toBeUndefined();
    expect(guest.accel).toBe('tcg'); // written before the accelerator was recorded
    expect(cuseRounds(guest)[0]?.pairsPerSecond.fairC).toBeCloseTo(4600 / 1.0319442760000008, 6);
    expect(cuseRounds(guest)[0]?.serverCpuUsPerPair.fairC).toBeCloseTo(518764403 / 1000 / 4600, 6);
  });

  it('refuses a round without a target, a zero count, a wrong order or a short list', () => {
    const ok = JSON.parse(guestJson([{ fifo: 10, fairC: 5, steve: 4 }])) as {
      results: Array<{ order: string[]; targets: Record<string, { pairs: number }> }>;
      rounds: number;
    };
    const broken = (edit: (raw: typeof ok) => void): string => {
      const raw = structuredClone(ok);
      edit(raw);
      return JSON.stringify(raw);
    };
    expect(() => parseGuestResults(broken((r) => delete r.results[0]?.targets.steve))).toThrow(
      /has no steve/,
    );
    expect(() =>
      parseGuestResults(broken((r) => ((r.results[0]?.targets.fairC ?? { pairs: 0 }).pairs = 0))),
    ).toThrow(/fairC\.pairs/);
    expect(() =>
      parseGuestResults(
        broken((r) => ((r.results[0] ?? { order: [] }).order = ['fifo', 'fifo', 'steve'])),
      ),
    ).toThrow(/order/);
    expect(() =>
      parseGuestResults(
        broken((r) => ((r.results[0] ?? { order: [] }).order = ['fifo', 'naiveC', 'steve'])),
      ),
    ).toThrow(/naiveC/);
    expect(() => parseGuestResults(broken((r) => (r.rounds = 2)))).toThrow(
      /1 results for 2 rounds/,
    );
    expect(() => parseGuestResults('[]')).toThrow(/not an object/);
    expect(() => parseGuestResults('{"kernel":')).toThrow();
  });
});

describe('cuseSummary', () => {
  // Per-round ratios 0.95, 0.80, 0.92, 0.85, 0.91 -> median 0.91; the
  // median steve (3800) over the median fair C (4000) would be 0.95.
  const rates: Array<Record<CuseTarget, number>> = [
    { fifo: 200_000, fairC: 4000, steve: 3800 },
    { fifo: 190_000, fairC: 5000, steve: 4000 },
    { fifo: 210_000, fairC: 2500, steve: 2300 },
    { fifo: 205_000, fairC: 4000, steve: 3400 },
    { fifo: 180_000, fairC: 4200, steve: 3822 },
  ];
  const guest: GuestResults = parseGuestResults(guestJson(rates));
  const result = cuseSummary(guest, HOST);

  it('judges the median of per-round ratios against 90%', () => {
    expect(result.steveVsFairC.median).toBeCloseTo(0.91, 10);
    expect(result.steveVsFairC.min).toBeCloseTo(0.8, 10);
    expect(result.steveVsFairC.max).toBeCloseTo(0.95, 10);
    expect(result.steveVsFairC.target).toBe(CUSE_RATE_TARGET);
    expect(result.steveVsFairC.verdict).toBe('met');
    expect(result.steveVsFairC.roundsMeetingTarget).toBe(3);
    expect(result.perTarget.steve.median).toBe(3800);
    expect(result.perTarget.fairC.median).toBe(4000);
    // per-round steve / fifo: 1.9%, 2.1%, 1.1%, 1.66%, 2.12% -> round 1 is the median
    expect(result.steveVsFifo.median).toBeCloseTo(3800 / 200_000, 10);
    expect(result.serverCpuUsPerPair.steve.median).toBeCloseTo(100, 10);
    expect(result.settings).toEqual({ rounds: 5, secondsPerRound: 2, warmupSeconds: 0 });
  });

  it('misses when the median round is below 90%', () => {
    const slower = rates.map((r) => ({ ...r, steve: r.steve * 0.98 }));
    const missed = cuseSummary(parseGuestResults(guestJson(slower)), HOST);
    expect(missed.steveVsFairC.median).toBeCloseTo(0.8918, 4);
    expect(missed.steveVsFairC.verdict).toBe('MISSED');
  });

  it('needs at least 3 rounds for a verdict', () => {
    expect(() => cuseSummary(parseGuestResults(guestJson(rates.slice(0, 2))), HOST)).toThrow(
      /at least 3 rounds/,
    );
  });

  it('writes a report with every round, the placement, the fifo limit and the verdict', () => {
    const md = cuseMarkdown(result);
    expect(md).toContain('one vCPU');
    expect(md).toContain('under qemu TCG');
    expect(md).toContain('pinned to CPU 0');
    expect(md).toContain('| 2 | fair C, steve, fifo | 190,000 | 5,000 | 4,000 | 80.0% |');
    expect(md).toContain(
      'steve / fair C, per round: median 91.0% (IQR 85.0%–92.0%, min–max 80.0%–95.0%)',
    );
    expect(md).toContain('Target: median >= 90.0%: **met**');
    expect(md).toContain('physical limit');
    expect(md).toContain("steve 1.0× the fair C server's");
    expect(md).not.toContain('warm-up');
    expect(md).not.toContain('failed');
  });
});

describe('checkLines', () => {
  it("keeps the guest's PASS and FAIL lines and counts them in the report", () => {
    const lines = checkLines(
      'PASS fairC-blocking-read-takes-the-token (held 1)\nnoise\nFAIL steve-the-token-is-back: EAGAIN\n\n',
    );
    expect(lines).toEqual([
      'PASS fairC-blocking-read-takes-the-token (held 1)',
      'FAIL steve-the-token-is-back: EAGAIN',
    ]);
    const rates = [1, 2, 3].map(() => ({ fifo: 100, fairC: 10, steve: 9 }));
    const md = cuseMarkdown(cuseSummary(parseGuestResults(guestJson(rates)), HOST, lines));
    expect(md).toContain("The guest's checks: 1 of 2 passed.");
  });
});

describe('cuseSettingsFromEnv', () => {
  it('takes the defaults, the knobs, and refuses nonsense', () => {
    expect(cuseSettingsFromEnv({})).toEqual({ rounds: 7, secondsPerRound: 2, warmupSeconds: 10 });
    expect(
      cuseSettingsFromEnv({
        BENCH_CUSE_ROUNDS: '3',
        BENCH_CUSE_SECONDS: '0.5',
        BENCH_CUSE_WARMUP_SECONDS: '4',
      }),
    ).toEqual({ rounds: 3, secondsPerRound: 0.5, warmupSeconds: 4 });
    expect(() => cuseSettingsFromEnv({ BENCH_CUSE_WARMUP_SECONDS: '-1' })).toThrow(
      /BENCH_CUSE_WARMUP_SECONDS/,
    );
    expect(() => cuseSettingsFromEnv({ BENCH_CUSE_ROUNDS: '2' })).toThrow(/BENCH_CUSE_ROUNDS/);
    expect(() => cuseSettingsFromEnv({ BENCH_CUSE_ROUNDS: '3.5' })).toThrow(/whole number/);
    expect(() => cuseSettingsFromEnv({ BENCH_CUSE_SECONDS: 'x' })).toThrow(/BENCH_CUSE_SECONDS/);
    expect(() => cuseSettingsFromEnv({ BENCH_CUSE_SECONDS: '0' })).toThrow(/BENCH_CUSE_SECONDS/);
  });
});
