// The chaos suite's checks, as pure functions over what the clients stamped
// (see chaos_client.py) and what the test itself wrote into the same file:
//
//   x PID NS                    the test is about to SIGKILL/SIGINT PID: from
//                               here on PID holds nothing (it may still be
//                               reclaimed later, which only makes the true
//                               count lower than this one)
//   j OLD NEW NS_SENT NS_DONE   a runtime job change, from request to reply
//
// Kept pure so that each check can be shown to catch a seeded fault
// (invariants.chaos.test.ts) without a daemon.

export interface Stamp {
  readonly kind: '+' | '-' | 'h' | 'x' | 'j';
  readonly holder: number;
  readonly token: string;
  readonly ns: bigint;
  readonly oldJobs?: number;
  readonly newJobs?: number;
  readonly doneNs?: bigint;
}

export function parseStamps(text: string): Stamp[] {
  const stamps: Stamp[] = [];
  for (const line of text.split('\n')) {
    const words = line.trim().split(' ');
    const kind = words[0];
    if (kind === '+' || kind === '-' || kind === 'h') {
      stamps.push({
        kind,
        holder: Number(words[1]),
        token: words[2] as string,
        ns: BigInt(words[3] as string),
      });
    } else if (kind === 'x') {
      stamps.push({ kind, holder: Number(words[1]), token: '', ns: BigInt(words[2] as string) });
    } else if (kind === 'j') {
      stamps.push({
        kind,
        holder: 0,
        token: '',
        oldJobs: Number(words[1]),
        newJobs: Number(words[2]),
        ns: BigInt(words[3] as string),
        doneNs: BigInt(words[4] as string),
      });
    }
  }
  return stamps;
}

export interface OverIssue {
  readonly grants: number;
  /** Most tokens the clients said they held at once. */
  readonly maxHeld: number;
  /** Most tokens held beyond the job count in effect (0 when the pool never over-issued). */
  readonly maxOverIssue: number;
  /** The job count in effect at the worst moment. */
  readonly capacityAtMaxOverIssue: number;
  /** At the worst moment: the grant's time and each token held then, as `TOKEN@HOLDER` (to debug a failure). */
  readonly heldAtMaxOverIssue: { readonly ns: bigint; readonly tokens: readonly string[] } | null;
}

/** Slack around a job change: a grant stamped just after a change may have been made just before it. */
const CHANGE_SLACK_NS = 50_000_000n;

/**
 * Tokens the clients held at once against the job count in effect. A lower
 * count takes effect as tokens come back, so a grant is checked against the
 * largest count in effect during the slack before it.
 */
export function checkOverIssue(stamps: readonly Stamp[], initialJobs: number): OverIssue {
  const changes = stamps.filter((s) => s.kind === 'j');
  const allowedAt = (ns: bigint): number => {
    let allowed = initialJobs;
    let current = initialJobs;
    for (const change of changes) {
      if (change.ns > ns) break;
      // The old value may still be in effect until the reply, plus slack.
      const oldStillPossible = (change.doneNs as bigint) + CHANGE_SLACK_NS >= ns;
      current = change.newJobs as number;
      allowed = oldStillPossible ? Math.max(change.oldJobs as number, current) : current;
    }
    return Math.max(allowed, current);
  };
  const holderOf = new Map<string, number>();
  const dead = new Set<number>();
  let grants = 0;
  let maxHeld = 0;
  let maxOverIssue = 0;
  let capacityAtMaxOverIssue = initialJobs;
  let heldAtMaxOverIssue: OverIssue['heldAtMaxOverIssue'] = null;
  for (const s of stamps) {
    switch (s.kind) {
      case '+':
        if (dead.has(s.holder)) break;
        grants += 1;
        holderOf.set(s.token, s.holder);
        {
          const held = holderOf.size;
          maxHeld = Math.max(maxHeld, held);
          const allowed = allowedAt(s.ns);
          if (held - allowed > maxOverIssue) {
            maxOverIssue = held - allowed;
            capacityAtMaxOverIssue = allowed;
            heldAtMaxOverIssue = {
              ns: s.ns,
              tokens: [...holderOf].map(([token, holder]) => `${token}@${holder}`),
            };
          }
        }
        break;
      case 'h':
        if (holderOf.has(s.token)) holderOf.set(s.token, s.holder);
        break;
      case '-':
        holderOf.delete(s.token);
        break;
      case 'x':
        dead.add(s.holder);
        for (const [token, holder] of holderOf) if (holder === s.holder) holderOf.delete(token);
        break;
      case 'j':
        break;
    }
  }
  return { grants, maxHeld, maxOverIssue, capacityAtMaxOverIssue, heldAtMaxOverIssue };
}

/** p50, p99 and max of a list of milliseconds (0s when empty). */
export function percentiles(values: readonly number[]): { p50: number; p99: number; max: number } {
  if (values.length === 0) return { p50: 0, p99: 0, max: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number =>
    sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
  return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] as number };
}
