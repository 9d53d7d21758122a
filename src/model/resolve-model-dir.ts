/**
 * Finding the model directory to publish: either the one the caller names, or the newest
 * training output in a base directory, where training scripts write one directory per run
 * named `<prefix>_<YYYYMMDD_HHMMSS>`. "Newest" is read from that timestamp, never from mtime
 * (copies and restores change it) nor from the string order of whole names (`b_2023...` sorts
 * after `a_2024...`).
 *
 * @module
 */
import { readdir, stat } from 'node:fs/promises';
import { expandHome } from '../core/env.js';
import { join, resolve } from 'node:path';
import { InvalidArgumentError, ModelDirectoryError } from '../core/errors.js';

/** The glob used when no `pattern` is given: any name with an underscore. */
export const DEFAULT_MODEL_DIR_PATTERN = '*_*';

/** `YYYYMMDD_HHMMSS` at the end of a directory name, preceded by nothing or a non-digit. */
const TIMESTAMP_SUFFIX = /(?:^|[^0-9])((\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2}))$/;

/** How many names of what was found instead an error message shows. */
const SHOWN_NAMES = 20;

/** Options of {@link resolveModelDir}. */
export interface ResolveModelDirOptions {
  /**
   * Use this directory as is (after checking that it exists and is a directory); no search.
   * `~` is expanded.
   */
  modelDir?: string;
  /**
   * Directory to search for timestamped training outputs. `~` is expanded.
   * @default `configBaseDir`
   */
  baseDir?: string;
  /**
   * Glob matched against whole directory names in `baseDir`; `*` matches any run of
   * characters and `?` exactly one, everything else literally. Only names that also end in a
   * `YYYYMMDD_HHMMSS` timestamp are candidates.
   * @default '*_*'
   */
  pattern?: string;
  /**
   * Fallback for `baseDir`, for callers that read it from configuration (the tracking config
   * file's `fineTunedModelsDir`). An explicit `baseDir` always wins.
   */
  configBaseDir?: string;
}

/** One timestamped directory that matched the pattern. */
export interface ModelDirCandidate {
  /** Absolute path. */
  dir: string;
  /** Directory name. */
  name: string;
  /** The `YYYYMMDD_HHMMSS` suffix (local time of the training machine, so no time zone). */
  timestamp: string;
}

/** The directory {@link resolveModelDir} chose, and how. */
export interface ResolvedModelDir {
  /** Absolute path of the model directory. */
  dir: string;
  /** `modelDir` when given explicitly, `search` when found in a base directory. */
  source: 'modelDir' | 'search';
  /** The chosen directory's timestamp suffix; `undefined` for an explicit `modelDir` without one. */
  timestamp?: string;
  /** The base directory searched (absolute), for `source: 'search'`. */
  baseDir?: string;
  /** The glob used, for `source: 'search'`. */
  pattern?: string;
  /** Every matching timestamped directory, newest first (the first is `dir`); empty for `modelDir`. */
  candidates: ModelDirCandidate[];
}

/**
 * Turns a name glob into an anchored regular expression: `*` is any run of characters, `?`
 * one character, everything else literal.
 *
 * @throws InvalidArgumentError when the pattern is empty or contains a path separator.
 * @example
 * ```ts
 * globToRegExp('my-model_*').test('my-model_20240501_120000'); // true
 * ```
 */
export function globToRegExp(pattern: string): RegExp {
  if (pattern === '' || /[\\/]/.test(pattern)) {
    throw new InvalidArgumentError('pattern', `pattern must be a non-empty glob for directory names without path separators, got ${JSON.stringify(pattern)}.`, {
      hint: 'Put the directory part in baseDir, e.g. { baseDir: "~/models", pattern: "my-model_*" }.',
    });
  }
  let source = '';
  for (const ch of pattern) {
    if (ch === '*') source += '.*';
    else if (ch === '?') source += '.';
    else source += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 'su');
}

/**
 * The `YYYYMMDD_HHMMSS` suffix of a directory name, when it is a real date and time.
 *
 * @example
 * ```ts
 * parseTimestampSuffix('llama_lora_20240501_093000'); // '20240501_093000'
 * parseTimestampSuffix('llama_lora_final'); // undefined
 * ```
 */
export function parseTimestampSuffix(name: string): string | undefined {
  const match = TIMESTAMP_SUFFIX.exec(name);
  if (!match) return undefined;
  const [y, mo, d, h, mi, s] = match.slice(2).map(Number) as [number, number, number, number, number, number];
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  // Date.UTC rolls 2024-02-30 over into March and 25:00 into the next day; a round trip catches both.
  const real =
    date.getUTCFullYear() === y && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d &&
    date.getUTCHours() === h && date.getUTCMinutes() === mi && date.getUTCSeconds() === s;
  return real ? match[1] : undefined;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

function describeFound(names: string[]): string {
  if (names.length === 0) return 'The directory is empty.';
  const shown = names.slice(0, SHOWN_NAMES).join(', ');
  return `Found instead: ${shown}${names.length > SHOWN_NAMES ? `, and ${names.length - SHOWN_NAMES} more` : ''}.`;
}

/**
 * Resolves the model directory to publish.
 *
 * - `modelDir` given: it is used as is, after checking that it exists and is a directory.
 * - otherwise `baseDir` (else `configBaseDir`) is searched for directories whose name matches
 *   `pattern` and ends in a `YYYYMMDD_HHMMSS` timestamp, and the newest by that timestamp is
 *   chosen (equal timestamps: the name that sorts last wins, so the choice is deterministic).
 *
 * Returns the chosen directory with the candidates it was chosen from.
 *
 * @throws ModelDirectoryError when `modelDir` or the base directory does not exist or is not
 *   a directory, or when no timestamped directory matches; the error names the directory
 *   searched, the pattern and what was there instead (`error.found`).
 * @throws InvalidArgumentError when neither `modelDir`, `baseDir` nor `configBaseDir` is given,
 *   or `pattern` is not a name glob.
 * @example
 * ```ts
 * const { dir, timestamp } = await resolveModelDir({ baseDir: '~/fine-tuned', pattern: 'llama-lora_*' });
 * ```
 */
export async function resolveModelDir(options: ResolveModelDirOptions = {}): Promise<ResolvedModelDir> {
  if (options.modelDir !== undefined) {
    if (typeof options.modelDir !== 'string' || options.modelDir === '') {
      throw new InvalidArgumentError('modelDir', `modelDir must be a non-empty path, got ${JSON.stringify(options.modelDir)}.`);
    }
    const dir = resolve(expandHome(options.modelDir));
    if (!(await isDirectory(dir))) {
      throw new ModelDirectoryError(dir, `Model directory ${dir} does not exist or is not a directory.`, {
        hint: 'Check the path (relative paths are resolved from the current working directory).',
      });
    }
    const name = dir.split(/[\\/]/).pop() ?? dir;
    return { dir, source: 'modelDir', timestamp: parseTimestampSuffix(name), candidates: [] };
  }

  const rawBase = options.baseDir ?? options.configBaseDir;
  if (rawBase === undefined || rawBase === '') {
    throw new InvalidArgumentError('baseDir', 'No model directory to publish: pass modelDir, or baseDir to search for the newest training output.', {
      hint: 'Set fineTunedModelsDir in the tracking config file, or pass --model-dir / --fine-tuned-models-dir on the command line.',
    });
  }
  const pattern = options.pattern ?? DEFAULT_MODEL_DIR_PATTERN;
  const matcher = globToRegExp(pattern);
  const baseDir = resolve(expandHome(rawBase));

  let entries: string[];
  try {
    if (!(await stat(baseDir)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    entries = (await readdir(baseDir)).sort();
  } catch (error) {
    throw new ModelDirectoryError(baseDir, `Cannot search for model directories in ${baseDir}: it does not exist or is not a directory.`, {
      pattern,
      cause: error,
      hint: 'Check baseDir (or fineTunedModelsDir in the tracking config file), or pass modelDir explicitly.',
    });
  }

  const candidates: ModelDirCandidate[] = [];
  const others: string[] = [];
  for (const name of entries) {
    const timestamp = matcher.test(name) ? parseTimestampSuffix(name) : undefined;
    const dir = join(baseDir, name);
    if (timestamp !== undefined && (await isDirectory(dir))) candidates.push({ dir, name, timestamp });
    else others.push(name);
  }
  if (candidates.length === 0) {
    throw new ModelDirectoryError(
      baseDir,
      `No directory in ${baseDir} matches "${pattern}" and ends in a YYYYMMDD_HHMMSS timestamp. ${describeFound(others)}`,
      {
        pattern,
        found: others,
        hint: 'Pass a pattern that matches your training output names (e.g. "my-model_*"), or modelDir to publish a specific directory.',
      },
    );
  }
  // Fixed-width digits: comparing the timestamp strings is comparing the times.
  candidates.sort((a, b) => (a.timestamp === b.timestamp ? (a.name < b.name ? 1 : -1) : a.timestamp < b.timestamp ? 1 : -1));
  const newest = candidates[0]!;
  return { dir: newest.dir, source: 'search', timestamp: newest.timestamp, baseDir, pattern, candidates };
}
