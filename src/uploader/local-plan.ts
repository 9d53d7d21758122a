/**
 * The local side of an operation, checked before anything else: the path exists and is what
 * the method expects (a file, or a directory), artifact paths are valid, and directories are
 * planned (filters applied, bad names and escaping symlinks refused) so that bad input fails
 * before any byte is sent. Include/exclude globs use the one glob dialect (src/core/glob.ts), the
 * same as the config file's `include` / `exclude`.
 *
 * @module
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { basename, isAbsolute, relative, resolve, sep } from 'node:path';
import { InvalidArgumentError, LocalPathError } from '../core/errors.js';
import { createGlobMatcher } from '../core/glob.js';
import { findSkipRule } from '../archive/should-skip-file.js';
import { artifactPathProblem, invalidArtifactPathError, joinArtifactPath } from '../mlflow/artifacts-api.js';
import { planDirectory, type PlannedFile } from '../stores/plan.js';
import { toLocalPathError } from '../stores/source-file.js';
import type { LocalFileIdentity } from './dedupe.js';
import type { SkippedFile } from './result.js';

/** Files to upload, what was left out, and the local identity of each file. */
export interface LocalPlan {
  files: PlannedFile[];
  skipped: SkippedFile[];
  /** Bytes of the skipped files. */
  skippedBytes: number;
  /** Number of skipped entries that are files (directories are listed but not counted). */
  skippedFiles: number;
}

/**
 * Stats `path` and checks it is a file (or a directory). Relative paths resolve against the
 * working directory.
 *
 * @throws {LocalPathError} `PATH_NOT_FOUND`, `NOT_A_FILE`, `NOT_A_DIRECTORY`, `PATH_UNREADABLE`.
 * @example
 * ```ts
 * const absolute = await checkLocalPath('out/checkpoint', 'directory', 'uploadCheckpoint');
 * ```
 */
export async function checkLocalPath(path: unknown, expected: 'file' | 'directory', method: string): Promise<string> {
  if (typeof path !== 'string' || path === '') {
    throw new InvalidArgumentError('path', `${method}() needs the path of a ${expected}, got ${path === '' ? 'an empty string' : typeof path}.`);
  }
  const absolute = resolve(path);
  let info;
  try {
    info = await stat(absolute);
  } catch (error) {
    throw toLocalPathError(error, absolute);
  }
  if (expected === 'file' && !info.isFile()) {
    throw new LocalPathError('NOT_A_FILE', absolute, `${method}() expects a file, but ${absolute} is ${info.isDirectory() ? 'a directory' : 'not a regular file'}.`, {
      hint: info.isDirectory() ? 'Upload a directory with uploadDirectory() (or uploadCheckpoint()).' : 'Pass the path of a regular file.',
    });
  }
  if (expected === 'file') {
    // Refused here, like an unreadable file in a directory plan: before any request is made.
    try {
      await access(absolute, constants.R_OK);
    } catch (error) {
      throw toLocalPathError(error, absolute);
    }
  }
  if (expected === 'directory' && !info.isDirectory()) {
    throw new LocalPathError('NOT_A_DIRECTORY', absolute, `${method}() expects a directory, but ${absolute} is a file.`, {
      hint: 'Upload a single file with uploadFile(), or pass its parent directory with an `include` filter.',
    });
  }
  return absolute;
}

/**
 * Checks an artifact path given by the caller (`''` is the root) and returns it normalised.
 *
 * @example
 * ```ts
 * checkArtifactPath('/models/onnx/', 'artifactPath'); // 'models/onnx'
 * ```
 */
export function checkArtifactPath(path: string, what: string, { allowEmpty = true } = {}): string {
  if (typeof path !== 'string') throw new InvalidArgumentError(what, `Expected \`${what}\` to be a string, got ${typeof path}.`);
  const joined = joinArtifactPath(path);
  const problem = artifactPathProblem(joined, { allowEmpty });
  if (problem) throw invalidArtifactPathError([problem], `\`${what}\``);
  return joined;
}

/**
 * `string | string[] | undefined` → `string[]`, refusing empty patterns.
 *
 * @example
 * ```ts
 * globList('*.tmp', 'exclude'); // ['*.tmp']
 * ```
 */
export function globList(value: string | readonly string[] | undefined, what: string): string[] {
  if (value === undefined) return [];
  const list = typeof value === 'string' ? [value] : [...value];
  for (const item of list) {
    if (typeof item !== 'string' || item === '') {
      throw new InvalidArgumentError(what, `Expected \`${what}\` to be glob patterns (non-empty strings), got ${JSON.stringify(item)}.`);
    }
  }
  return list;
}

/**
 * Plans single files, largest first: each at `<artifactDir>/<name>` (or its path relative to `baseDir`).
 *
 * @example
 * ```ts
 * const plan = await planFiles(['out/model.onnx', 'out/model.onnx.data'], 'onnx', 'uploadFiles');
 * ```
 */
export async function planFiles(paths: readonly string[], artifactDir: string, method: string, baseDir?: string): Promise<LocalPlan> {
  const base = baseDir === undefined ? undefined : await checkLocalPath(baseDir, 'directory', method);
  const files: PlannedFile[] = [];
  const seen = new Set<string>();
  for (const path of paths) {
    const localPath = await checkLocalPath(path, 'file', method);
    let name = basename(localPath);
    if (base !== undefined) {
      const rel = relative(base, localPath);
      if (rel === '' || rel.startsWith(`..${sep}`) || rel === '..' || isAbsolute(rel)) {
        throw new InvalidArgumentError('baseDir', `${localPath} is not inside baseDir ${base}.`, { hint: 'Pass a baseDir that contains every file.' });
      }
      name = rel.split(sep).join('/');
    }
    const artifactPath = checkArtifactPath(joinArtifactPath(artifactDir, name), 'artifactPath', { allowEmpty: false });
    if (seen.has(artifactPath)) {
      throw new InvalidArgumentError('paths', `Two files would be uploaded to the same artifact path ${artifactPath}.`, {
        hint: 'Upload them into different artifact directories, or pass baseDir to keep their relative paths.',
      });
    }
    seen.add(artifactPath);
    files.push({ localPath, artifactPath, size: (await stat(localPath)).size });
  }
  // Largest first, as for directories: the big transfers start early, the tail stays short.
  files.sort((a, b) => b.size - a.size);
  return { files, skipped: [], skippedBytes: 0, skippedFiles: 0 };
}

/** Options of {@link planLocalDirectory}. */
export interface LocalDirectoryPlanOptions {
  artifactPath: string;
  include: readonly string[];
  exclude: readonly string[];
  /** Leave out the default skip list (`shouldSkipFile`). */
  skipDefaultFiles: boolean;
}

/**
 * Plans a directory with `planDirectory` (largest first; bad names, dangling or escaping
 * symlinks and unreadable files refused with every offender listed), using our glob dialect
 * for the filters and recording why each path was left out.
 *
 * @example
 * ```ts
 * const plan = await planLocalDirectory('out/ckpt', { artifactPath: 'checkpoint', include: [], exclude: ['*.log'], skipDefaultFiles: true });
 * plan.skipped; // [{ path: 'train.log', reason: 'excluded by "*.log"' }]
 * ```
 */
export async function planLocalDirectory(dir: string, options: LocalDirectoryPlanOptions): Promise<LocalPlan> {
  const included = createGlobMatcher(options.include);
  const excluded = createGlobMatcher(options.exclude);
  const reasons = new Map<string, string>();
  const plan = await planDirectory(dir, {
    artifactPath: options.artifactPath,
    ...(options.include.length > 0 ? { include: (rel: string) => included(rel) !== undefined } : {}),
    exclude: (rel: string) => {
      const rule = options.skipDefaultFiles ? findSkipRule(rel) : undefined;
      if (rule) {
        reasons.set(rel, `default skip list (${rule.pattern}: ${rule.description})`);
        return true;
      }
      const pattern = excluded(rel);
      if (pattern !== undefined) reasons.set(rel, `excluded by "${pattern}"`);
      return pattern !== undefined;
    },
  });
  const skipped: SkippedFile[] = [];
  let skippedBytes = 0;
  let skippedFiles = 0;
  for (const entry of plan.skipped) {
    const reason =
      entry.reason === 'excluded'
        ? (reasons.get(entry.relativePath) ?? 'excluded')
        : entry.reason === 'not-included'
          ? 'not matched by include'
          : entry.reason === 'symlink-loop'
            ? 'symlink loop'
            : 'symlink not followed';
    skipped.push({ path: entry.relativePath, reason });
    const info = await stat(resolve(plan.directory, entry.relativePath)).catch(() => undefined);
    if (info?.isFile()) {
      skippedFiles++;
      skippedBytes += info.size;
    }
  }
  return { files: plan.files, skipped, skippedBytes, skippedFiles };
}

/**
 * The identity of each planned file (path, size, mtime), for deduplication.
 *
 * @example
 * ```ts
 * const identities = await fileIdentities(plan.files);
 * ```
 */
export async function fileIdentities(files: readonly PlannedFile[]): Promise<LocalFileIdentity[]> {
  return Promise.all(
    files.map(async (f) => {
      const info = await stat(f.localPath);
      return { localPath: f.localPath, artifactPath: f.artifactPath, size: info.size, mtimeMs: info.mtimeMs };
    }),
  );
}
