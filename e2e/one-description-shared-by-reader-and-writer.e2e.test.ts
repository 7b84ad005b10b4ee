// One open file description of the FUSE jobserver file shared by a blocked
// reader and a writer: two threads of one process, or a parent and its child
// after fork (make's inherited `3<>FILE`, cargo's helper thread reading while
// other threads release). On a regular file the kernel serialises read and
// write on one description (the file position lock), so the writer's token
// return never reached the daemon and both hung; the daemon opens its
// jobserver file as a stream (FOPEN_STREAM), like a pipe or a device.
import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { PYTHON, type RunningDaemon, startDaemon, waitFor } from './helpers/daemon.js';

let daemon: RunningDaemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

function python(code: string, path: string): { status: number | null; stdout: string } {
  // A hang shows as a timeout (the daemon still answers the kill's interrupt).
  const result = spawnSync(PYTHON, ['-c', code, path], {
    encoding: 'utf8',
    timeout: 15_000,
    killSignal: 'SIGKILL',
  });
  return { status: result.status, stdout: result.stdout + result.stderr };
}

describe('one description shared by a blocked reader and a writer', () => {
  it('two threads: one blocks in read, the other returns its token on the same fd', async () => {
    daemon = await startDaemon(['-j', '1']);
    const result = python(
      `
import os, sys, threading, time
fd = os.open(sys.argv[1], os.O_RDWR)            # one blocking description
assert os.read(fd, 1) == b"+"                    # the pool's only token
got = []
reader = threading.Thread(target=lambda: got.append(os.read(fd, 1)))
reader.start()
# Wait until the reader is blocked in the kernel (its state in /proc).
tid = None
while tid is None:
    for t in os.listdir("/proc/self/task"):
        if int(t) != threading.get_native_id():
            with open(f"/proc/self/task/{t}/wchan") as w:
                if w.read() not in ("", "0"):
                    tid = t
print("written", os.write(fd, b"+"), flush=True)  # hung here before
reader.join()
print("reader got", got[0])
os.write(fd, got[0])
`,
      daemon.jobserverPath,
    );
    expect(result.stdout).toContain('written 1');
    expect(result.stdout).toContain("reader got b'+'");
    expect(result.status).toBe(0);
    await waitFor('every token back', () => daemon?.out() === 0);
  });

  it('parent and child after fork: the parent blocks in read, the child returns a token', async () => {
    daemon = await startDaemon(['-j', '1']);
    const result = python(
      `
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
to_parent_r, to_parent_w = os.pipe()
to_child_r, to_child_w = os.pipe()
pid = os.fork()
if pid == 0:                                     # the child holds the token
    assert os.read(fd, 1) == b"+"
    os.write(to_parent_w, b"x")
    os.read(to_child_r, 1)                       # the parent is about to read
    while True:                                  # until it sleeps in that read
        with open(f"/proc/{os.getppid()}/stat") as st:
            if st.read().rsplit(")", 1)[1].split()[0] in "SD":
                break
    os.write(fd, b"+")                           # hung here before
    os._exit(0)
os.read(to_parent_r, 1)                          # the child has the token
os.write(to_child_w, b"y")
print("parent got", os.read(fd, 1), flush=True) # blocks until the child returns it
_, status = os.waitpid(pid, 0)
print("child exit", status)
os.write(fd, b"+")
`,
      daemon.jobserverPath,
    );
    expect(result.stdout).toContain("parent got b'+'");
    expect(result.stdout).toContain('child exit 0');
    expect(result.status).toBe(0);
    await waitFor('every token back', () => daemon?.out() === 0);
  });
});
