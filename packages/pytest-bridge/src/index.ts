/**
 * @steve/pytest-bridge: the `steve_jobserver` pytest plugin (Python, in
 * `python/`) and what a Node tool or a user needs to use it: where the
 * plugin lives, the `EPYTEST_FLAGS` / `PYTHONPATH` lines, and installing it
 * with the system's pip.
 */
export {
  PLUGIN_MODULE,
  DEFAULT_PYTHON,
  pythonDir,
  envLines,
  pluginInstalled,
  transientLocation,
  type EnvLinesOptions,
} from './env.js';
export { install, installCommand, type InstallOptions, type InstallResult } from './install.js';
export { PytestBridgeError } from './errors.js';
