// Signals to a reader blocked in the kernel on the jobserver file: the
// kernel sends INTERRUPT, JS answers EINTR, the reader gets on with dying
// (SIGKILL) or with its signal handler (SIGINT).
import { afterEach, describe, expect, it } from 'vitest';

import {
  EINTR,
  mountTemp,
  processState,
  python,
  TokenResponder,
  waitFor,
  type Narrator,
  type TempMount,
} from './helpers.js';

let mount: TempMount | undefined;
const children: Narrator[] = [];

afterEach(async () => {
  await Promise.all(children.splice(0).map((child) => child.stop()));
  await mount?.dispose();
  mount = undefined;
});

const blockedReader = `import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print("reading")
try:
    os.read(fd, 1)
    print("got a token")
except KeyboardInterrupt:
    print("KeyboardInterrupt")`;

describe('interrupts', () => {
  it('a SIGKILLed reader stays stuck until JS answers EINTR, then is reaped', async () => {
    const responder = new TokenResponder(0);
    responder.answerInterrupts = false;
    mount = await mountTemp(responder);
    const reader = python(blockedReader, mount.jobserver);
    children.push(reader);
    await waitFor(() => responder.count('read') === 1, 'the blocked read');
    const pid = reader.child.pid as number;
    process.kill(pid, 'SIGKILL');
    await waitFor(() => responder.count('interrupt') === 1, 'INTERRUPT from the kernel');
    const read = responder.last('read');
    expect(responder.last('interrupt')?.reqId).toBe(read?.reqId);
    // The kernel cannot finish the killed process before the reply: it
    // waits, uninterruptibly, in the read.
    await waitFor(async () => (await processState(pid)) === 'D', 'the killed reader in state D');
    expect(reader.hasExited()).toBe(false);
    expect(mount.session.replyError(read?.reqId ?? 0, EINTR)).toBe(true);
    const { signal } = await reader.exited;
    expect(signal).toBe('SIGKILL');
    expect(await processState(pid)).toBeUndefined();
    // The answered request is gone: a late reply is a no-op.
    expect(mount.session.replyData(read?.reqId ?? 0, Buffer.from('+'))).toBe(false);
    await waitFor(() => responder.count('release') === 1, 'release of the dead reader');
  });

  it('SIGINT reaches a blocked python reader as KeyboardInterrupt', async () => {
    const responder = new TokenResponder(0);
    mount = await mountTemp(responder);
    const reader = python(blockedReader, mount.jobserver);
    children.push(reader);
    await waitFor(() => responder.count('read') === 1, 'the blocked read');
    process.kill(reader.child.pid as number, 'SIGINT');
    await reader.waitLine('KeyboardInterrupt');
    expect((await reader.exited).code).toBe(0);
    expect(responder.count('interrupt')).toBe(1);
    // Nothing was granted and nothing is left waiting.
    responder.give(1);
    expect(responder.tokens).toBe(1);
  });

  it('a signal whose handler returns makes python retry the read (a fresh request)', async () => {
    const responder = new TokenResponder(0);
    mount = await mountTemp(responder);
    const reader = python(
      `import os, sys, signal
signal.signal(signal.SIGUSR1, lambda *_: print("handler ran"))
fd = os.open(sys.argv[1], os.O_RDONLY)
print("got", os.read(fd, 1))`,
      mount.jobserver,
    );
    children.push(reader);
    await waitFor(() => responder.count('read') === 1, 'the blocked read');
    process.kill(reader.child.pid as number, 'SIGUSR1');
    await reader.waitLine('handler ran');
    await waitFor(() => responder.count('read') === 2, 'the retried read (PEP 475)');
    responder.give(1);
    await reader.waitLine('got');
    const reads = responder.events.filter((event) => event.kind === 'read');
    expect(reads[1]?.reqId).not.toBe(reads[0]?.reqId);
  });

  it('an interrupt that arrives while JS still holds the request is delivered once', async () => {
    const responder = new TokenResponder(0);
    responder.answerInterrupts = false;
    mount = await mountTemp(responder);
    const readers = [
      python(blockedReader, mount.jobserver),
      python(blockedReader, mount.jobserver),
    ];
    children.push(...readers);
    await waitFor(() => responder.count('read') === 2, 'two blocked reads');
    for (const reader of readers) process.kill(reader.child.pid as number, 'SIGKILL');
    await waitFor(() => responder.count('interrupt') === 2, 'two interrupts');
    const interrupted = responder.events.flatMap((event) =>
      event.kind === 'interrupt' ? [event.reqId] : [],
    );
    expect(new Set(interrupted).size).toBe(2);
    for (const reqId of interrupted) mount.session.replyError(reqId, EINTR);
    await Promise.all(readers.map((reader) => reader.exited));
    expect(responder.count('interrupt')).toBe(2);
  });
});
