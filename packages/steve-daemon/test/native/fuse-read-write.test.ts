// Reads, writes, per-read flags and ioctls on the FUSE jobserver file,
// against python3 processes.
import { afterEach, describe, expect, it } from 'vitest';

import { REPLY_EMPTY } from '../../src/native/addon.js';
import {
  EAGAIN,
  mountTemp,
  O_NONBLOCK,
  python,
  TokenResponder,
  waitFor,
  type Narrator,
  type TempMount,
} from './helpers.js';

let mount: TempMount | undefined;
const children: Narrator[] = [];

function run(program: string, ...args: string[]): Narrator {
  const child = python(program, ...args);
  children.push(child);
  return child;
}

afterEach(async () => {
  await Promise.all(children.splice(0).map((child) => child.stop()));
  await mount?.dispose();
  mount = undefined;
});

describe('jobserver reads and writes', () => {
  it('a read gets the byte JS replies with; the caller context is the reading thread', async () => {
    const responder = new TokenResponder(1);
    mount = await mountTemp(responder);
    const child = run(
      `import os, sys, threading
fd = os.open(sys.argv[1], os.O_RDWR)
print("tid", threading.get_native_id())
print("got", os.read(fd, 100))`,
      mount.jobserver,
    );
    await child.waitLine('got');
    expect(child.lines).toContain("got b'+'");
    const read = responder.last('read');
    expect(read?.sizeBytes).toBe(100);
    expect(read?.tid).toBe(child.child.pid); // main thread: tid == pid
    expect(read?.uid).toBe(process.getuid?.());
    const open = responder.last('open');
    expect(open?.path).toBe('jobserver');
    expect(open?.fileId).toBe(read?.fileId);
    expect((open?.flags ?? 0) & 3).toBe(2); // O_RDWR
    expect((await child.exited).code).toBe(0);
    await waitFor(() => responder.count('release') === 1, 'release after exit');
  });

  it('a blocking read waits until JS replies, however late', async () => {
    const responder = new TokenResponder(0);
    mount = await mountTemp(responder);
    const child = run(
      `import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print("reading")
print("got", os.read(fd, 1))`,
      mount.jobserver,
    );
    await waitFor(() => responder.count('read') === 1, 'the read request');
    await child.waitLine('reading');
    expect(child.lines.some((line) => line.startsWith('got'))).toBe(false);
    responder.give(1);
    await child.waitLine('got');
    expect(child.lines).toContain("got b'+'");
  });

  it('a write returns the count JS replies with', async () => {
    const responder = new TokenResponder(0);
    mount = await mountTemp(responder);
    const child = run(
      `import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
print("wrote", os.write(fd, b"+++"))`,
      mount.jobserver,
    );
    await child.waitLine('wrote');
    expect(child.lines).toContain('wrote 3');
    expect(responder.last('write')?.sizeBytes).toBe(3);
    expect(responder.last('write')?.tid).toBe(child.child.pid);
    expect(responder.tokens).toBe(3);
  });

  it('a partial write count reaches the writer', async () => {
    const responder = new TokenResponder(0);
    responder.write = (reqId, fileId, tid, uid, sizeBytes) => {
      responder.events.push({ kind: 'write', reqId, fileId, tid, uid, sizeBytes });
      responder.session?.replyWrite(reqId, 1);
    };
    mount = await mountTemp(responder);
    const child = run(
      `import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
print("wrote", os.write(fd, b"++"))`,
      mount.jobserver,
    );
    await child.waitLine('wrote');
    expect(child.lines).toContain('wrote 1');
  });

  it('a handler may answer by returning: a byte, -errno, a write count; undefined leaves it pending', async () => {
    const responder = new TokenResponder(0);
    let reads = 0;
    responder.read = (reqId, fileId, tid, uid, sizeBytes, flags) => {
      responder.events.push({ kind: 'read', reqId, fileId, tid, uid, sizeBytes, flags });
      reads += 1;
      if (reads === 1) return 0x2a; // '*'
      if (reads === 2) return -EAGAIN;
      if (reads === 3) return REPLY_EMPTY;
      responder.blockedReads.push(reqId); // the 4th waits for a reply call
      return undefined;
    };
    responder.write = (reqId, fileId, tid, uid, sizeBytes) => {
      responder.events.push({ kind: 'write', reqId, fileId, tid, uid, sizeBytes });
      return sizeBytes - 1;
    };
    mount = await mountTemp(responder);
    const child = run(
      `import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
print("got", os.read(fd, 1))
try:
    os.read(fd, 1)
except BlockingIOError:
    print("EAGAIN")
print("empty", os.read(fd, 1))
print("wrote", os.write(fd, b"++"))
print("reading", flush=True)
print("late", os.read(fd, 1))`,
      mount.jobserver,
    );
    await child.waitLine('reading');
    expect(child.lines).toEqual(["got b'*'", 'EAGAIN', "empty b''", 'wrote 1', 'reading']);
    await waitFor(() => responder.blockedReads.length === 1, 'the 4th read to wait');
    responder.give(1);
    await child.waitLine('late');
    expect(child.lines).toContain("late b'+'");
  });

  it('O_NONBLOCK set with fcntl after open shows in the flags of the next read', async () => {
    const responder = new TokenResponder(1);
    mount = await mountTemp(responder);
    const child = run(
      `import os, sys, fcntl
fd = os.open(sys.argv[1], os.O_RDWR)
print("first", os.read(fd, 1))
fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
try:
    os.read(fd, 1)
except BlockingIOError:
    print("EAGAIN")`,
      mount.jobserver,
    );
    await child.waitLine('EAGAIN');
    const reads = responder.events.filter((event) => event.kind === 'read');
    expect(reads).toHaveLength(2);
    expect((reads[0]?.flags ?? 0) & O_NONBLOCK).toBe(0);
    expect((reads[1]?.flags ?? 0) & O_NONBLOCK).toBe(O_NONBLOCK);
    expect(responder.last('open')?.flags ?? -1).not.toBe(-1);
    expect((responder.last('open')?.flags ?? 0) & O_NONBLOCK).toBe(0);
  });

  it('an unknown ioctl fails with ENOTTY', async () => {
    mount = await mountTemp(new TokenResponder(0));
    const child = run(
      `import os, sys, fcntl, termios
fd = os.open(sys.argv[1], os.O_RDWR)
for name, request in (("TCGETS", termios.TCGETS), ("custom", 0x5e01)):
    try:
        fcntl.ioctl(fd, request, bytes(64))
        print(name, "succeeded")
    except OSError as e:
        print(name, os.strerror(e.errno))
print("isatty", os.isatty(fd))`,
      mount.jobserver,
    );
    await child.waitLine('isatty');
    expect(child.lines).toEqual([
      'TCGETS Inappropriate ioctl for device',
      'custom Inappropriate ioctl for device',
      'isatty False',
    ]);
  });

  it('the file is not seekable', async () => {
    mount = await mountTemp(new TokenResponder(0));
    const child = run(
      `import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    os.lseek(fd, 0, os.SEEK_SET)
    print("seek ok")
except OSError as e:
    print("seek", os.strerror(e.errno))`,
      mount.jobserver,
    );
    await child.waitLine('seek');
    expect(child.lines).toEqual(['seek Illegal seek']);
  });
});

describe('replies from JS', () => {
  it('are checked: unknown ids give false, wrong kinds and oversized data throw and keep the request', async () => {
    const responder = new TokenResponder(0);
    mount = await mountTemp(responder);
    const session = mount.session;
    const child = run(
      `import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print("got", os.read(fd, 1))`,
      mount.jobserver,
    );
    await waitFor(() => responder.count('read') === 1, 'the read request');
    const reqId = responder.last('read')?.reqId ?? 0;
    expect(session.replyData(reqId + 1000, Buffer.from('+'))).toBe(false);
    expect(session.replyError(0, 4)).toBe(false);
    expect(session.replyError(1.5, 4)).toBe(false);
    expect(() => session.replyWrite(reqId, 1)).toThrow(TypeError);
    expect(() => session.replyPoll(reqId, 1)).toThrow(TypeError);
    expect(() => session.replyData(reqId, Buffer.from('++'))).toThrow(RangeError);
    expect(() => session.replyError(reqId, 0)).toThrow(RangeError);
    expect(child.hasExited()).toBe(false);
    expect(session.replyData(reqId, Buffer.from('*'))).toBe(true);
    expect(session.replyData(reqId, Buffer.from('*'))).toBe(false);
    await child.waitLine('got');
    expect(child.lines).toContain("got b'*'");
  });
});
