// The Node client library (@steve/jobserver-client) on the CUSE device, in
// the guest: one byte per read on a character device, the native uv_poll
// wait woken when a token comes back, tokens returned at the end.
//   node node-client.mjs REPO DEVICE JOBS   -> PASS/FAIL lines
import { pathToFileURL } from 'node:url';

const [repo, device, jobsText] = process.argv.slice(2);
const jobs = Number(jobsText);
const { Jobserver } = await import(
  pathToFileURL(`${repo}/packages/jobserver-client/dist/index.js`).href
);
const say = (ok, name, detail) =>
  console.log(
    `${ok ? 'PASS' : 'FAIL'} ${name}${detail ? (ok ? ` (${detail})` : `: ${detail}`) : ''}`,
  );

const pool = Jobserver.fromAuth(
  { kind: 'fifo', path: device },
  { implicitSlot: false, wait: 'native' },
);
const held = [];
for (let i = 0; i < jobs; i++)
  held.push(await pool.acquire({ signal: AbortSignal.timeout(10_000) }));
say(
  held.every((t) => t.byte === 0x2b),
  'node-client-takes-every-token',
  `${held.length} × '+' from ${device}`,
);
say(pool.tryAcquire() === null, 'node-client-tryAcquire-empty-pool');

const started = process.hrtime.bigint();
const waiting = pool.acquire({ signal: AbortSignal.timeout(10_000) });
setTimeout(() => held.pop().release(), 50);
try {
  const token = await waiting;
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  say(
    pool.waitStrategy === 'native',
    'node-client-native-wait-woken',
    `after ${ms.toFixed(1)} ms (release at 50 ms), ${pool.waitStrategy} wait`,
  );
  held.push(token);
} catch (error) {
  say(false, 'node-client-native-wait-woken', error.message);
}
for (const token of held) token.release();
pool.close();
