// Another local process writing in the same directory as the daemon: the
// moment NAME appears there (inotify IN_CREATE) it renames a symlink to
// TARGET over it, the swap a privileged daemon must never follow.
import { spawn } from 'node:child_process';

const SWAPPER = `
import ctypes, os, struct, sys
d, name, target = sys.argv[1], sys.argv[2], sys.argv[3]
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init()
libc.inotify_add_watch(fd, d.encode(), 0x100)  # IN_CREATE
link = os.path.join(d, '.swap-link')
os.symlink(target, link)
print('ready', flush=True)
while True:
    buf = os.read(fd, 4096)
    i = 0
    while i < len(buf):
        _, mask, _, size = struct.unpack_from('iIII', buf, i)
        created = buf[i + 16:i + 16 + size].rstrip(b'\\0').decode()
        i += 16 + size
        if created == name:
            os.rename(link, os.path.join(d, name))
            print('swapped', flush=True)
            sys.exit(0)
`;

export interface SymlinkSwapper {
  /** Resolves once it watches the directory. */
  readonly ready: Promise<void>;
  /** Resolves once it has renamed the symlink over NAME. */
  readonly swapped: Promise<void>;
  kill(): void;
}

export function symlinkSwapper(dir: string, name: string, target: string): SymlinkSwapper {
  const child = spawn('/usr/bin/python3', ['-c', SWAPPER, dir, name, target], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let said = '';
  const heard = (word: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (said.includes(word)) resolve();
      };
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        said += chunk;
        check();
      });
      child.on('exit', () =>
        said.includes(word) ? resolve() : reject(new Error(`swapper exited before '${word}'`)),
      );
    });
  return {
    ready: heard('ready'),
    swapped: heard('swapped'),
    kill: () => child.kill('SIGKILL'),
  };
}
