// A token follows its open file description while another live process still
// has it open: a parent that acquires, forks and exits leaves the job and its
// token to the child (no over-issue), and the token comes back when the child
// returns it or when the description's last close comes.
import { describe, expect, it } from 'vitest';
import { Harness } from './harness.js';

const PARENT = 100;
const CHILD = 101;

function withSharedFile(jobs = 2): Harness {
  const h = new Harness({ jobs });
  h.send({ type: 'open', fileId: 7, pid: PARENT });
  return h;
}

describe('a token follows its open file', () => {
  it('the parent exits holding a token, the child keeps it and returns it on the same file', () => {
    const h = withSharedFile();
    h.take(PARENT, 1);
    expect(h.gotToken(h.read(PARENT, { fileId: 7 }))).toBe(true);
    h.exit(PARENT); // the child still has file 7 open
    expect(h.snapshot.out).toBe(1);
    expect(h.snapshot.holders).toContainEqual(
      expect.objectContaining({ client: 'file:7:inherited', tokens: 1 }),
    );
    expect(h.write(CHILD, 1, 7)).toEqual({ kind: 'written', countBytes: 1 });
    expect(h.snapshot.out).toBe(0);
    // Nothing more to return through file 7: the next byte is the usual unowned one.
    expect(h.write(CHILD, 1, 7)).toEqual({ kind: 'written', countBytes: 1 });
    expect(h.snapshot.out).toBe(0);
  });

  it('while the child holds it, no one else gets it', () => {
    const h = withSharedFile(1);
    expect(h.gotToken(h.read(PARENT, { fileId: 7 }))).toBe(true);
    h.exit(PARENT);
    const other = h.read(200, { fileId: 9 });
    expect(h.reply(other)).toBeUndefined();
    h.write(CHILD, 1, 7);
    expect(h.gotToken(other)).toBe(true);
  });

  it('the last close of the file returns what it inherited', () => {
    const h = withSharedFile();
    expect(h.gotToken(h.read(PARENT, { fileId: 7 }))).toBe(true);
    h.exit(PARENT);
    expect(h.snapshot.out).toBe(1);
    h.send({ type: 'close', fileId: 7 });
    expect(h.snapshot.out).toBe(0);
    expect(h.snapshot.holders).toEqual([]);
  });

  it('tokens read through a file that is already closed come back at the exit', () => {
    const h = withSharedFile();
    expect(h.gotToken(h.read(PARENT, { fileId: 7 }))).toBe(true);
    h.send({ type: 'close', fileId: 7 });
    expect(h.snapshot.out).toBe(1); // the process still holds it
    h.exit(PARENT);
    expect(h.snapshot.out).toBe(0);
  });

  it('another file cannot return what file 7 inherited', () => {
    const h = withSharedFile();
    h.send({ type: 'open', fileId: 9, pid: 300 });
    expect(h.gotToken(h.read(300, { fileId: 9 }))).toBe(true);
    h.write(300, 1, 9);
    expect(h.gotToken(h.read(PARENT, { fileId: 7 }))).toBe(true);
    h.exit(PARENT);
    expect(h.errno(h.read(300, { fileId: 9, blocking: false }))).toBeUndefined();
    expect(h.write(300, 2, 9)).toEqual({ kind: 'written', countBytes: 1 }); // its own token only
    expect(h.snapshot.out).toBe(1);
  });

  it('a process returning more than it holds takes the rest from its file inheritance', () => {
    const h = withSharedFile(4);
    h.send({ type: 'open', fileId: 7, pid: CHILD });
    h.take(PARENT, 0);
    for (let i = 0; i < 2; i++) expect(h.gotToken(h.read(PARENT, { fileId: 7 }))).toBe(true);
    expect(h.gotToken(h.read(CHILD, { fileId: 7 }))).toBe(true);
    h.exit(PARENT);
    expect(h.write(CHILD, 3, 7)).toEqual({ kind: 'written', countBytes: 3 });
    expect(h.snapshot.out).toBe(0);
  });

  it('the child returns the token before the parent is seen to exit: it is not kept out', () => {
    const h = withSharedFile(1);
    expect(h.gotToken(h.read(PARENT, { fileId: 7 }))).toBe(true);
    expect(h.write(CHILD, 1, 7)).toEqual({ kind: 'written', countBytes: 1 }); // the parent still runs
    h.exit(PARENT);
    expect(h.snapshot.out).toBe(0);
    expect(h.gotToken(h.read(200, { fileId: 9 }))).toBe(true);
  });
});
