/**
 * Exit statuses of `steve-job` and `emerge-shim` besides the command's own.
 *
 * They follow env(1), timeout(1) and nice(1): a wrapper's own failure is
 * 125, a command that cannot be run is 126 or 127, so a script can tell
 * "steve-job could not do its part" from "the build failed". A command
 * killed by signal N gives 128 + N, as a shell reports it.
 */
export const ExitCode = {
  /** The wrapper could not do its part: bad usage, no pool reachable, the pool failed. */
  wrapperFailed: 125,
  /** The command exists but cannot be executed (EACCES, ENOEXEC). */
  cannotExecute: 126,
  /** The command was not found. */
  notFound: 127,
  /**
   * `steve-job --no-wait`: no token was free right now (EX_TEMPFAIL from
   * sysexits.h: "try again later"). The command did not run.
   */
  noTokenFree: 75,
} as const;
