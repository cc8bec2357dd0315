// Where the executables are, how long to wait, where logs go.
//
// Every wait in the suite is bounded. Sanitizer builds run several times
// slower, so waits for events (not quiet windows) are scaled by SCALE when
// WSGW_SANITIZED is set; WSGW_TEST_TIMEOUT_SCALE overrides it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const TESTS_DIR = path.resolve(here, '..', '..');
export const REPO_DIR = path.resolve(TESTS_DIR, '..');

export const BIN_DIR = path.resolve(process.env.WSGW_BIN_DIR || path.join(REPO_DIR, 'build', 'bin'));
export const WSGW_BIN = path.join(BIN_DIR, 'wsgw');
export const REDIS_SERVER = process.env.REDIS_SERVER || 'redis-server';
export const REDIS_CLI = process.env.REDIS_CLI || 'redis-cli';

export const SANITIZED = !!process.env.WSGW_SANITIZED && process.env.WSGW_SANITIZED !== '0';
export const SCALE = Number(process.env.WSGW_TEST_TIMEOUT_SCALE) || (SANITIZED ? 3 : 1);

/** A timeout for awaiting an event, scaled for slow builds. */
export const T = (ms) => Math.round(ms * SCALE);

/** Quiet window for "nothing else arrives" assertions (not scaled much). */
export const QUIET_MS = Number(process.env.WSGW_TEST_QUIET_MS) || (SANITIZED ? 600 : 400);

/** Process logs land here (the folder is git-ignored) so a failed CI run can be read. */
export const ARTIFACTS_DIR = path.resolve(process.env.WSGW_TEST_ARTIFACTS || path.join(TESTS_DIR, 'artifacts'));

/** Fails with a clear message when the gateway executable is missing. */
export function requireWsgw() {
  try {
    fs.accessSync(WSGW_BIN, fs.constants.X_OK);
  } catch {
    throw new Error(`wsgw executable not found at ${WSGW_BIN}; build it or set WSGW_BIN_DIR`);
  }
  return WSGW_BIN;
}

/** A fresh temporary directory; the caller removes it. */
export function makeTmpDir(prefix = 'wsgw-it-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * The environment for a child process: ours less every WSGW_* variable, since
 * the gateway reads WSGW_<FLAG> as configuration and the test runner's own
 * WSGW_BIN_DIR / WSGW_SANITIZED are not gateway flags.
 */
export function childEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('WSGW_')) env[k] = v;
  }
  return { ...env, ...extra };
}

let seq = 0;
/** A name unique within this test process, valid as a JWT sub and in channel names. */
export function uniq(base = 'u') {
  seq += 1;
  return `${base}-${process.pid}-${seq}`;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
