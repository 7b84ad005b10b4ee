// poll/select on the jobserver file: blocked until JS notifies the poll
// handle, then the re-poll sees POLLIN.
import { afterEach, describe, expect, it } from 'vitest';

import { pollEvents } from '../../src/native/addon.js';
import {
  mountTemp,
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

describe('poll', () => {
  it.each([
    ['select.select', 'r, _, _ = select.select([fd], [], [], 30)\nprint("readable", r == [fd])'],
    [
      'select.poll',
      'p = select.poll()\np.register(fd, select.POLLIN)\nprint("readable", p.poll(30000))',
    ],
    [
      'select.epoll',
      'e = select.epoll()\ne.register(fd, select.EPOLLIN)\nprint("readable", e.poll(30))',
    ],
  ])('%s blocks until notifyPoll, then the next poll gets POLLIN', async (_name, waitCode) => {
    const responder = new TokenResponder(0);
    mount = await mountTemp(responder);
    const poller = python(
      `import os, sys, select
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
${waitCode}
print("got", os.read(fd, 1))`,
      mount.jobserver,
    );
    children.push(poller);
    await waitFor(() => responder.count('poll') === 1, 'the first poll');
    const first = responder.last('poll');
    expect(first?.pollHandleId).toBeGreaterThan(0);
    expect((first?.events ?? 0) & pollEvents.POLLIN).toBe(pollEvents.POLLIN);
    expect(poller.lines.some((line) => line.startsWith('readable'))).toBe(false);
    responder.give(1); // notifies the kept handle
    await poller.waitLine('got');
    expect(poller.lines[0]).toMatch(/^readable /);
    expect(poller.lines).toContain("got b'+'");
    expect(responder.count('poll')).toBeGreaterThanOrEqual(2);
    const second = responder.events.filter((event) => event.kind === 'poll')[1];
    expect(second?.fileId).toBe(first?.fileId);
  });

  it('a poll handle can be notified once; dropped or used ids return false', async () => {
    const responder = new TokenResponder(0);
    mount = await mountTemp(responder);
    const poller = python(
      `import os, sys, select
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
print("readable", select.select([fd], [], [], 30)[0] == [fd])`,
      mount.jobserver,
    );
    children.push(poller);
    await waitFor(() => responder.count('poll') === 1, 'the first poll');
    const handle = responder.last('poll')?.pollHandleId ?? 0;
    expect(mount.session.notifyPoll(handle)).toBe(true); // spurious wake-up: polls again, still no token
    await waitFor(() => responder.count('poll') === 2, 'the re-poll');
    expect(mount.session.notifyPoll(handle)).toBe(false);
    expect(mount.session.dropPollHandle(handle)).toBe(false);
    responder.give(1);
    await poller.waitLine('readable');
    expect(poller.lines).toContain('readable True');
  });
});
