/**
 * @steve/protocol: the wire facts of the jobserver steve serves, in one
 * place. Pure TypeScript without I/O; every other package imports these
 * instead of repeating them.
 */
export * from './constants.js';
export * from './errors.js';
export * from './auth.js';
export * from './makeflags.js';
export * from './env.js';
export * from './settings.js';
export * from './control.js';
