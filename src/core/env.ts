/**
 * Reading environment variables the way MLflow's Python client reads them, with errors that
 * name the variable. Every function takes the environment to read as an argument (default
 * `process.env`) so callers and tests can pass their own.
 *
 * @module
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from './errors.js';

/** An environment: `process.env` or any plain record of strings. */
export type Env = Record<string, string | undefined>;

/** MLflow's truthy spellings (`mlflow/environment_variables.py` `_BooleanEnvironmentVariable`). */
const TRUE = new Set(['true', '1']);
const FALSE = new Set(['false', '0']);

/** Reads a boolean variable; `undefined` when unset or empty. */
export function envBool(name: string, env: Env = process.env): boolean | undefined {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return undefined;
  if (TRUE.has(raw)) return true;
  if (FALSE.has(raw)) return false;
  throw new ConfigError(`Environment variable ${name} must be "true" or "false" (or 1/0), got "${env[name]}".`, {
    issues: [{ path: name, message: 'expected a boolean' }],
    hint: `Set ${name} to true or false (1 or 0), or unset it for the default.`,
  });
}

/** Reads a number variable; `undefined` when unset or empty. */
export function envNumber(name: string, env: Env = process.env, { min = -Infinity, max = Infinity, integer = false, above = -Infinity } = {}): number | undefined {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max || value <= above) {
    const kind = integer ? 'an integer' : 'a number';
    // Both bounds read "from 0 to 10": ">= 0 <= 10" was the two checks glued together.
    const range = Number.isFinite(above)
      ? ` > ${above}`
      : Number.isFinite(min) && Number.isFinite(max)
        ? ` from ${min} to ${max}`
        : Number.isFinite(min)
          ? ` >= ${min}`
          : Number.isFinite(max)
            ? ` <= ${max}`
            : '';
    throw new ConfigError(`Environment variable ${name} must be ${kind}${range}, got "${env[name]}".`, {
      issues: [{ path: name, message: `expected ${kind}${range}` }],
      hint: `Set ${name} to ${kind}${range}, or unset it for the default.`,
    });
  }
  return value;
}

/** Reads a string variable; `undefined` when unset or empty. */
export function envString(name: string, env: Env = process.env): string | undefined {
  const raw = env[name];
  return raw === undefined || raw === '' ? undefined : raw;
}

/**
 * The user's home: `env.HOME` (trimmed; blank is unset), else `os.homedir()`, or `undefined`
 * where the user has no home: with HOME unset, `os.homedir()` reads the
 * password database, and throws (`uv_os_homedir returned ENOENT`) for a uid that has no entry
 * there, as in arbitrary-uid containers (OpenShift, `docker run --user 12345`) when a parent
 * started the CLI with a minimal environment. MLflow's Python client goes on there
 * (`os.path.expanduser('~')` stays `~`), so a missing home must not fail a command by itself.
 *
 * @example
 * ```ts
 * const home = homeDirectory(); // '/home/me', or undefined
 * ```
 */
export function homeDirectory(env: Env = process.env): string | undefined {
  const fromEnv = env.HOME?.trim();
  if (fromEnv) return fromEnv;
  try {
    return homedir() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Expands a leading `~` (alone or followed by a path separator) to the user's home directory
 * ({@link homeDirectory} of `env`). `~user` forms are left untouched, and so is the path
 * where the user has no home, as Python's `os.path.expanduser` leaves it.
 *
 * @example
 * ```ts
 * expandHome('~/models'); // '/home/me/models'
 * ```
 */
export function expandHome(path: string, env: Env = process.env): string {
  if (path !== '~' && !path.startsWith('~/') && !path.startsWith('~\\')) return path;
  const home = homeDirectory(env);
  if (home === undefined) return path;
  return path === '~' ? home : join(home, path.slice(2));
}
