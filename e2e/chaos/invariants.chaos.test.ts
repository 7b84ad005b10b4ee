// Each chaos check catches the fault it is there for: seeded faulty traces.
import { describe, expect, it } from 'vitest';
import { checkOverIssue, parseStamps } from './invariants.js';

const ms = (n: number): string => String(BigInt(n) * 1_000_000n);

describe('chaos checks catch seeded faults', () => {
  it('over-issue: a fifth token on -j4 is caught; four are not', () => {
    const four = ['+ 1 a 1', '+ 2 b 2', '+ 3 c 3', '+ 4 d 4'].map((l) => `${l}000000`).join('\n');
    expect(checkOverIssue(parseStamps(four), 4).maxOverIssue).toBe(0);
    expect(checkOverIssue(parseStamps(`${four}\n+ 5 e 5000000`), 4).maxOverIssue).toBe(1);
  });

  it('over-issue: a token a reclaim failed to take back (the holder was killed) is not double-counted, but a grant beyond the pool after a skipped reclaim is', () => {
    const trace = [`+ 1 a ${ms(1)}`, `x 1 ${ms(2)}`, `+ 2 b ${ms(3)}`].join('\n');
    expect(checkOverIssue(parseStamps(trace), 1).maxOverIssue).toBe(0);
    // Seeded fault: the daemon re-granted a token a live holder still had.
    const faulty = [`+ 1 a ${ms(1)}`, `+ 2 b ${ms(3)}`].join('\n');
    expect(checkOverIssue(parseStamps(faulty), 1).maxOverIssue).toBe(1);
  });

  it('hand-off: a token a forked child took over still counts until the child returns it', () => {
    const trace = [`+ 1 a ${ms(1)}`, `h 7 a ${ms(2)}`, `x 1 ${ms(3)}`, `+ 2 b ${ms(4)}`].join('\n');
    // The parent was killed but the child 7 holds a: b is a second token on -j1.
    expect(checkOverIssue(parseStamps(trace), 1).maxOverIssue).toBe(1);
  });

  it('job changes: the higher count is allowed only until the decrease is answered (plus slack)', () => {
    const lines = [
      `+ 1 a ${ms(1)}`,
      `+ 2 b ${ms(2)}`,
      `j 2 1 ${ms(10)} ${ms(11)}`,
      `- 1 a ${ms(20)}`,
    ];
    const early = [...lines.slice(0, 3), `- 2 b ${ms(12)}`, `+ 3 c ${ms(30)}`].join('\n');
    expect(checkOverIssue(parseStamps(early), 2).maxOverIssue).toBe(0);
    // Long after the decrease, two held at once on -j1 is an over-issue.
    const late = [...lines, `+ 3 c ${ms(500)}`].join('\n');
    expect(checkOverIssue(parseStamps(late), 2).maxOverIssue).toBe(1);
  });
});
