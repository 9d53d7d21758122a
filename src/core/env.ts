/**
 * Reading environment variables the way MLflow's Python client reads them, with errors that
 * name the variable. Every function takes the environment to read as an argument (default
 * `process.env`) so callers and tests can pass their own.
 *
 * @module
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError } from './errors.js';
import { namesUndecodableEntry, notUtf8PathError } from './non-utf8-names.js';

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

/**
 * The whitespace `int()` and `float()` strip: ASCII's (not U+001C–U+001F, which `str.isspace`
 * counts) and Unicode's spaces, U+0085 among them; `trim()` would strip U+FEFF too and keep U+0085.
 */
const PYTHON_SPACE = String.raw`[\t-\r\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]`;
const OUTER_PYTHON_SPACE = new RegExp(`^${PYTHON_SPACE}+|${PYTHON_SPACE}+$`, 'g');

/** Digits with single underscores between them, as Python's numeric literals and `int()`/`float()` take them. */
const DIGITS = String.raw`\d(?:_?\d)*`;

/** What `int(text)` (base 10) reads: `1_000`, `+5`, `007`; not `0x10`, `1e1`, `5.0` or `1__0`. */
const PYTHON_INT = new RegExp(`^[+-]?${DIGITS}$`);

/** What `float(text)` reads: `1.5`, `.5`, `5.`, `1e-3`, `1_000.5`, `inf`, `Infinity`, `nan` (any case); not `0x10`. */
const PYTHON_FLOAT = new RegExp(`^[+-]?(?:(?:(?:${DIGITS})?\\.${DIGITS}|${DIGITS}\\.?)(?:e[+-]?${DIGITS})?|inf(?:inity)?|nan)$`, 'i');

/**
 * `text` as Python's `int()`/`float()` see it before parsing: every Unicode decimal digit (`٣`)
 * as its ASCII digit, and surrounding Python whitespace gone. Unicode encodes each set of
 * decimal digits as a run of ten code points from 0 to 9, so a digit's value is its distance from
 * the start of the run of digits it stands in, modulo ten.
 */
function asPythonNumeral(text: string): string {
  return text.replace(OUTER_PYTHON_SPACE, '').replace(/(?![0-9])\p{Nd}/gu, (digit) => {
    const codePoint = digit.codePointAt(0)!;
    let offset = 0;
    while (/\p{Nd}/u.test(String.fromCodePoint(codePoint - offset - 1))) offset++;
    return String(offset % 10);
  });
}

/**
 * Reads a number variable; `undefined` when unset or empty. The text is read as MLflow reads its
 * variables, with the Python type's constructor (`_EnvironmentVariable.get`): `int()` with
 * `integer`, else `float()`. So `1_000` and ` 5 ` are numbers, while `0x10`, `0b1` and (for an
 * integer) `1e1` and `5.0` are refused as MLflow refuses them, where JavaScript's `Number()` took
 * `0x10` for 16. `inf` and `nan` parse, and are then refused as out of range.
 *
 * @example
 * ```ts
 * envNumber('MLFLOW_HTTP_REQUEST_MAX_RETRIES', { MLFLOW_HTTP_REQUEST_MAX_RETRIES: '1_0' }, { integer: true }); // 10
 * ```
 */
export function envNumber(name: string, env: Env = process.env, { min = -Infinity, max = Infinity, integer = false, above = -Infinity } = {}): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const numeral = asPythonNumeral(raw);
  const value = (integer ? PYTHON_INT : PYTHON_FLOAT).test(numeral) ? Number(numeral.replaceAll('_', '').replace(/^([+-]?)inf(inity)?$/i, '$1Infinity')) : NaN;
  if (!Number.isFinite(value) || value < min || value > max || value <= above) {
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

/**
 * A path-valued variable (`ARTIFACT_UPLOADER_CONFIG_DIR`, `ARTIFACT_UPLOADER_JOURNAL_DIR`), as
 * the library and the CLI both read it: `undefined` when unset or blank, else trimmed, a leading
 * `~` expanded ({@link expandHome}; `~user` stays as written) and resolved against `cwd`. No
 * shell expands `~` for a value set in code (Python's `subprocess.run(..., env=...)`,
 * `process.env`), and `~/x` would name `./~/x`.
 *
 * @throws {LocalPathError} `PATH_NOT_FOUND` naming the variable when the value names a directory
 *   whose name is not valid UTF-8 ({@link namesUndecodableEntry}): Node.js decoded it into a
 *   name that is not there.
 *
 * @example
 * ```ts
 * envPath('ARTIFACT_UPLOADER_CONFIG_DIR', { ARTIFACT_UPLOADER_CONFIG_DIR: '~/ml', HOME: '/home/me' }); // '/home/me/ml'
 * ```
 */
export function envPath(name: string, env: Env = process.env, cwd: string = process.cwd()): string | undefined {
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  const path = resolve(cwd, expandHome(raw, env));
  // A directory whose name is not UTF-8 reaches us under another name: said as such, not as
  // missing ("Create it") nor as an empty journal made anew beside it.
  if (namesUndecodableEntry(path)) throw notUtf8PathError(path, name);
  return path;
}
