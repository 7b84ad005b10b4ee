/**
 * Token bytes and default paths: the facts every steve package must agree on.
 */

/**
 * The byte steve's pool hands out for each token. GNU make writes `+` into
 * its own pipe; the POSIX jobserver rule is that a client writes back the
 * exact byte it read, so a client never assumes this value.
 */
export const TOKEN_BYTE = 0x2b; // '+'
export const TOKEN_CHAR = '+';

/** The CUSE character device served by default (`--cuse steve`). */
export const DEFAULT_CUSE_NAME = 'steve';
export const DEFAULT_DEVICE_PATH = '/dev/steve';

/** The FUSE mount served where the kernel has no CUSE (`--fuse /run/steve`). */
export const DEFAULT_FUSE_DIR = '/run/steve';
/** The jobserver file inside the FUSE mount. */
export const FUSE_JOBSERVER_FILE = 'jobserver';
/** The read-only status file inside the FUSE mount. */
export const FUSE_STATUS_FILE = 'status';

/**
 * The pool size on the first line of the FUSE `status` file
 * (`jobs N  capacity …`, written by steve-daemon), or null when the text is
 * not one.
 *
 * @example
 * jobsFromStatusFile('jobs 8  capacity 8  out 2 …\n') // 8
 */
export function jobsFromStatusFile(text: string): number | null {
  const jobs = /^jobs (\d+) /.exec(text)?.[1];
  return jobs === undefined ? null : Number(jobs);
}
export const DEFAULT_FUSE_JOBSERVER_PATH = `${DEFAULT_FUSE_DIR}/${FUSE_JOBSERVER_FILE}`;

/**
 * Names the pool for steve's own tools (emerge-shim, steve-job, the pytest
 * plugin): `fifo:PATH` or a PATH, before they ask the daemon or try the
 * default paths.
 */
export const JOBSERVER_ENV = 'STEVE_JOBSERVER';

/** The control socket (`--control PATH`, or env `STEVE_CONTROL`). */
export const DEFAULT_CONTROL_SOCKET_PATH = '/run/steve/control.sock';
export const CONTROL_SOCKET_ENV = 'STEVE_CONTROL';

/** Poll reservations live this long unless `--reservation-ttl` says otherwise. */
export const DEFAULT_RESERVATION_TTL_MS = 500;

/**
 * The environment variables a client looks in, in this order (as
 * jobserver-rs does): cargo's own copy first, then make's two.
 */
export const MAKEFLAGS_ENV_VARS = ['CARGO_MAKEFLAGS', 'MAKEFLAGS', 'MFLAGS'] as const;
export type MakeflagsEnvVar = (typeof MAKEFLAGS_ENV_VARS)[number];
