/**
 * emerge-shim: the `steve-job` and `emerge-shim` command lines, and the
 * pieces they are made of (finding the pool, the Portage decisions).
 *
 * @module
 */
export { ExitCode } from './exit-codes.js';
export { JOBSERVER_ENV, NoPoolError, findPool, parsePoolSpec, type FoundPool } from './pool.js';
export { controlSocketPath, readStatus, type StatusAnswer } from './control-status.js';
export {
  FIRST_IMPLICIT_SLOT_PORTAGE,
  FIRST_JOBSERVER_PORTAGE,
  JOBSERVER_FEATURE,
  emergeMakeflags,
  featuresWithJobserver,
  makeConfLines,
  parsePortageVersion,
  planEmerge,
  portageSupport,
  userGaveJobs,
  type EmergePlan,
  type PortageSupport,
  type PortageVersion,
} from './portage.js';
export {
  steveJob,
  steveJobResult,
  parseSteveJobArgs,
  makeCommandLineJobs,
  makeJobsWarning,
} from './cli/steve-job.js';
export { emergeShim, emergeShimResult, parseEmergeShimArgs } from './cli/emerge-shim.js';
