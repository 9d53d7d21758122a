/**
 * Planning, the local side of an upload, checked before any byte is sent:
 *
 * - {@link checkLocalPath}: the path exists and is what the method expects (a file, or a
 *   directory); this is the one `stat` of the path an operation makes;
 * - {@link planFiles}: single files, each at `<artifactDir>/<name>`;
 * - {@link planDirectory}: a directory walked, every file with its relative POSIX artifact path
 *   and size, largest first (so big files start early and the tail of a concurrent upload is
 *   short). Symlinks that leave the directory, unreadable files and names MLflow cannot store
 *   are reported together, every offender listed, so a directory uploads as a whole or not at
 *   all;
 * - {@link planLocalDirectory}: the uploader's directory plan, with our glob dialect for the
 *   filters and the reason each path was left out.
 *
 * @module
 */
import { constants } from 'node:fs';
import { access, lstat, readdir, realpath, stat } from 'node:fs/promises';
import { basename, join, relative, resolve, sep } from 'node:path';
import pLimit from 'p-limit';
import { InvalidArgumentError, LocalPathError, PATH_TOO_LONG_HINT, type LocalPathErrorCode } from '../core/errors.js';
import { createGlobMatcher } from '../core/glob.js';
import { nonUtf8Names } from '../core/non-utf8-names.js';
import { isInside } from '../core/real-path.js';
import { twinNameWarnings } from '../core/twin-names.js';
import type { Logger } from '../core/logger.js';
import { findSkipRule } from '../archive/should-skip-file.js';
import { artifactPathProblem, assertArtifactPath, invalidArtifactPathError, joinArtifactPath } from '../mlflow/artifacts-api.js';
import { toLocalPathError } from '../stores/source-file.js';
import type { LocalFileIdentity } from './dedupe.js';
import type { SkippedFile } from './result.js';

/**
 * Selects paths: a glob (`*.safetensors`, `logs/**`, `**\/*.tmp`), a RegExp, or a predicate,
 * each tested against the path relative to the planned directory (POSIX separators). A glob
 * without `/` matches a base name at any depth, as in `.gitignore`, and one ending with `/`
 * (`cache/`) matches directories only. A predicate is told whether the entry is a directory
 * ({@link PathFilterEntry}), so an `exclude` can leave out a directory whole without a glob.
 *
 * @example
 * ```ts
 * // Leaves out every directory named `wandb`, not walked, and any file named `wandb` is kept.
 * const plan = await planDirectory('out/run', { exclude: (path, entry) => entry.isDirectory && path.split('/').pop() === 'wandb' });
 * ```
 */
export type PathFilter = string | RegExp | ((relativePath: string, entry: PathFilterEntry) => boolean);

/** What a {@link PathFilter} predicate is told about the entry besides its path. */
export interface PathFilterEntry {
  /**
   * True for a directory: an `exclude` that matches one leaves it out with everything in it,
   * unread. A symlink is not a directory here, whatever it points to. An `include` is tested
   * against files only.
   */
  isDirectory: boolean;
}

/** Options of {@link planDirectory}. */
export interface PlanDirectoryOptions {
  /** Artifact directory the files go under (e.g. `model`). @default the artifact root */
  artifactPath?: string;
  /** Only files matching one of these are planned. @default every file */
  include?: PathFilter | PathFilter[];
  /** Files and directories matching one of these are left out (a directory with all it holds). @default none */
  exclude?: PathFilter | PathFilter[];
  /**
   * Follow symlinks that point inside the directory: a link to a file uploads the target's
   * bytes under the link's name (as MLflow does), a link to a directory is walked (a loop back
   * to an ancestor is skipped). When false, every symlink is skipped. Links that point outside
   * the directory are refused either way unless excluded.
   * @default true
   */
  followSymlinks?: boolean;
}

/** One file to upload. */
export interface PlannedFile {
  /** Absolute local path (through the symlink, when it is one). */
  localPath: string;
  /** Destination path relative to the run's artifact root, POSIX separators. */
  artifactPath: string;
  /** Size in bytes when planned. */
  size: number;
  /**
   * Modification time when planned, in ms (from the plan's own `stat`): what tells two
   * uploads of the same path apart when identical uploads in flight are joined.
   * @default stat'ed when needed
   */
  mtimeMs?: number;
}

/** A path the plan leaves out, and why. */
export interface SkippedPath {
  /** Path relative to the planned directory. */
  relativePath: string;
  /** `special-file`: a FIFO, socket or device a checkpoint archive leaves out (only in an archive's plan). */
  reason: 'excluded' | 'not-included' | 'symlink-not-followed' | 'symlink-loop' | 'special-file';
}

/** The result of {@link planDirectory}. */
export interface UploadPlan {
  /** Absolute path of the planned directory. */
  directory: string;
  /** Artifact directory the files go under (`''` for the root). */
  artifactPath: string;
  /** Files to upload, largest first. */
  files: PlannedFile[];
  /** Sum of the file sizes. */
  totalBytes: number;
  /** True when there is nothing to upload (an empty directory, or everything filtered out). */
  empty: boolean;
  /** What was left out on purpose. */
  skipped: SkippedPath[];
}

interface Problem {
  code: Exclude<LocalPathErrorCode, 'NOT_A_FILE' | 'NOT_A_DIRECTORY' | 'NOT_A_GZIP_ARCHIVE' | 'PATH_UNWRITABLE'>;
  path: string;
  reason: string;
  /** What failed on it, for the hint: a directory that cannot be listed, a path the system finds too long. */
  cause?: 'directory' | 'too-long';
}

/** The `errno` of a failed file system call, as a problem's reason names it. */
function errnoOf(error: unknown): string {
  return (error as { code?: string }).code ?? 'error';
}

/**
 * Walks `dir` and returns what to upload. Throws a {@link LocalPathError} listing every
 * offender, before anything is sent: `SYMLINK_ESCAPES` (a symlink leading outside `dir`),
 * `PATH_NOT_FOUND` (a dangling symlink, or `dir` missing), `PATH_UNREADABLE` (unreadable or
 * special files such as FIFOs), `INVALID_ARTIFACT_PATH` (names with `#`, `%XX`, a backslash,
 * control characters or bytes that are not UTF-8), `NOT_A_DIRECTORY`.
 *
 * @example
 * ```ts
 * const plan = await planDirectory('out/checkpoint-100', { artifactPath: 'checkpoints/100', exclude: ['*.tmp'] });
 * if (!plan.empty) await uploadPlannedFiles(store, plan, { concurrency: 8 });
 * ```
 */
export async function planDirectory(dir: string, options: PlanDirectoryOptions = {}): Promise<UploadPlan> {
  const directory = resolve(dir);
  try {
    const info = await stat(directory);
    if (!info.isDirectory()) {
      throw new LocalPathError('NOT_A_DIRECTORY', directory, `${directory} is not a directory.`, {
        hint: 'Upload a single file with store.uploadFile, or pass its parent directory with an include filter.',
      });
    }
  } catch (error) {
    throw toLocalPathError(error, directory);
  }
  return walkDirectory(directory, options);
}

/**
 * {@link planDirectory} of a directory already checked (absolute, and a directory): no second `stat`.
 *
 * `archived`: the files go into one checkpoint archive, whose only artifact paths are the
 * archive's and its manifest's. Names are then not artifact paths (a name with `#`, `?` or a
 * newline is archived as it is; only names that are not UTF-8 are refused, as the archive
 * refuses them), FIFOs, sockets and devices are left out (`special-file`, the archive's
 * `unsupported-type`), and links the archive keeps as links without following them (dangling,
 * in a loop, back to a directory above, or to a special file) are neither planned nor refused.
 */
async function walkDirectory(directory: string, options: PlanDirectoryOptions, { archived = false }: { archived?: boolean | undefined } = {}): Promise<UploadPlan> {
  const prefix = joinArtifactPath(options.artifactPath);
  assertArtifactPath(prefix, { allowEmpty: true, what: 'artifactPath' });
  let rootReal: string;
  try {
    rootReal = await realpath(directory);
  } catch (error) {
    throw toLocalPathError(error, directory);
  }

  const include = toMatchers(options.include);
  const exclude = toMatchers(options.exclude);
  const followSymlinks = options.followSymlinks ?? true;
  const files: PlannedFile[] = [];
  const skipped: SkippedPath[] = [];
  const problems: Problem[] = [];

  const addFile = (localPath: string, rel: string, size: number, mtimeMs: number) => {
    if (include.length > 0 && !matchesAny(include, rel, false)) {
      skipped.push({ relativePath: rel, reason: 'not-included' });
      return;
    }
    const artifactPath = joinArtifactPath(prefix, rel);
    const problem = archived ? undefined : artifactPathProblem(artifactPath);
    if (problem) problems.push({ code: 'INVALID_ARTIFACT_PATH', path: rel, reason: problem.reason });
    else files.push({ localPath, artifactPath, size, mtimeMs });
  };

  // What one entry found, applied in directory order once every entry of the walk is known, so
  // the lists come out the same as a sequential walk while the stat calls run in parallel.
  type Found = { file: [localPath: string, rel: string, size: number, mtimeMs: number] } | { skip: SkippedPath } | { problem: Problem };
  const io = pLimit(PLAN_IO_CONCURRENCY);

  // `ancestors` holds the real paths of the directories above (and including) `absDir`, to stop link loops.
  const walk = async (absDir: string, relDir: string, realDir: string, ancestors: ReadonlySet<string>): Promise<Found[]> => {
    let entries;
    try {
      entries = await readdir(absDir, { withFileTypes: true });
    } catch (error) {
      const errno = errnoOf(error);
      return [{ problem: { code: 'PATH_UNREADABLE', path: relDir || '.', reason: `directory cannot be read (${errno})`, cause: errno === 'ENAMETOOLONG' ? 'too-long' : 'directory' } }];
    }
    const undecodable = entries.some((e) => e.name.includes('\uFFFD')) ? await nonUtf8Names(absDir) : new Map<string, Buffer>();
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const visit = async (entry: (typeof entries)[number]): Promise<Found[]> => {
      const rel = relDir ? `${relDir}/${entry.name}` : entry.name;
      // Excludes first: a name that is not UTF-8 can be left out, as the refusal's hint says.
      if (matchesAny(exclude, rel, entry.isDirectory())) return [{ skip: { relativePath: rel, reason: 'excluded' } }];
      if (undecodable.has(entry.name)) return [{ problem: { code: 'INVALID_ARTIFACT_PATH', path: rel, reason: 'is not valid UTF-8' } }];
      const full = join(absDir, entry.name);
      if (entry.isSymbolicLink()) {
        if (!followSymlinks) return [{ skip: { relativePath: rel, reason: 'symlink-not-followed' } }];
        const target = await io(() => realpath(full).catch((error: NodeJS.ErrnoException) => (error.code === 'ELOOP' ? LINK_CYCLE : undefined)));
        // Links that point at each other (a -> b -> a) lead nowhere: a loop, like `up -> ..`.
        if (target === LINK_CYCLE) return archived ? [] : [{ skip: { relativePath: rel, reason: 'symlink-loop' } }];
        if (target === undefined) return archived ? [] : [{ problem: { code: 'PATH_NOT_FOUND', path: rel, reason: 'is a symlink to a missing target' } }];
        if (!isInside(rootReal, target)) return [{ problem: { code: 'SYMLINK_ESCAPES', path: rel, reason: `points outside the directory, to ${target}` } }];
        const info = await io(() => stat(target));
        if (info.isDirectory()) {
          if (ancestors.has(target)) return archived ? [] : [{ skip: { relativePath: rel, reason: 'symlink-loop' } }];
          return walk(full, rel, target, new Set([...ancestors, target]));
        }
        if (info.isFile()) {
          if (await io(() => readable(target))) return [{ file: [full, rel, info.size, info.mtimeMs] }];
          return [{ problem: { code: 'PATH_UNREADABLE', path: rel, reason: 'cannot be read (permission denied)' } }];
        }
        if (archived) return [];
        return [{ problem: { code: 'PATH_UNREADABLE', path: rel, reason: 'links to a special file (FIFO, socket or device), not a regular file' } }];
      }
      if (entry.isDirectory()) {
        const real = join(realDir, entry.name);
        return walk(full, rel, real, new Set([...ancestors, real]));
      }
      if (entry.isFile()) {
        return io(async (): Promise<Found[]> => {
          let info;
          try {
            info = await stat(full);
          } catch (error) {
            const errno = errnoOf(error);
            return [{ problem: { code: 'PATH_UNREADABLE', path: rel, reason: `cannot be read (${errno})`, ...(errno === 'ENAMETOOLONG' ? { cause: 'too-long' as const } : {}) } }];
          }
          if (await readable(full)) return [{ file: [full, rel, info.size, info.mtimeMs] }];
          return [{ problem: { code: 'PATH_UNREADABLE', path: rel, reason: 'cannot be read (permission denied)' } }];
        });
      }
      if (archived) return [{ skip: { relativePath: rel, reason: 'special-file' } }];
      return [{ problem: { code: 'PATH_UNREADABLE', path: rel, reason: 'is a special file (FIFO, socket or device), not a regular file' } }];
    };
    // Pulled by a few workers, not mapped all at once: a directory of 20,000 files never holds
    // 20,000 pending visits (each a promise and a queued closure) at the same time.
    const found = new Array<Found[]>(entries.length);
    let next = 0;
    const worker = async () => {
      while (next < entries.length) {
        const index = next++;
        found[index] = await visit(entries[index]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(PLAN_IO_CONCURRENCY, entries.length) }, worker));
    return found.flat();
  };
  for (const found of await walk(directory, '', rootReal, new Set([rootReal]))) {
    if ('file' in found) addFile(...found.file);
    else if ('skip' in found) skipped.push(found.skip);
    else problems.push(found.problem);
  }

  if (problems.length > 0) throw planError(directory, prefix, problems);
  files.sort((a, b) => b.size - a.size || (a.artifactPath < b.artifactPath ? -1 : a.artifactPath > b.artifactPath ? 1 : 0));
  const totalBytes = files.reduce((n, f) => n + f.size, 0);
  return { directory, artifactPath: prefix, files, totalBytes, empty: files.length === 0, skipped };
}

/** What `realpath` of a link in a cycle of links gives (ELOOP). */
const LINK_CYCLE = Symbol('link cycle');

/** File system calls of a plan in flight at once (stat and access of different files). */
const PLAN_IO_CONCURRENCY = 32;

/** The order problems are reported in: the most surprising first. */
const PROBLEM_ORDER: Problem['code'][] = ['SYMLINK_ESCAPES', 'PATH_NOT_FOUND', 'PATH_UNREADABLE', 'INVALID_ARTIFACT_PATH'];

/**
 * One error for every problem found: its code and path are those of the most surprising kind
 * (see {@link PROBLEM_ORDER}); its message lists each kind in that order, every offender named
 * (ten per kind, then a count), and its hint says what to do about each kind.
 */
function planError(directory: string, prefix: string, problems: Problem[]): LocalPathError {
  const groups = PROBLEM_ORDER.map((code) => ({ code, mine: problems.filter((p) => p.code === code) })).filter((g) => g.mine.length > 0);
  const what = (code: Problem['code'], n: number) =>
    ({
      INVALID_ARTIFACT_PATH: `${n} file name(s) in ${directory} cannot be stored as MLflow artifacts${prefix ? ` (under ${prefix})` : ''}`,
      SYMLINK_ESCAPES: `${n} symlink(s) in ${directory} point outside it`,
      PATH_NOT_FOUND: `${n} symlink(s) in ${directory} are dangling`,
      PATH_UNREADABLE: `${n} path(s) in ${directory} cannot be uploaded`,
    })[code];
  const hints = {
    INVALID_ARTIFACT_PATH: 'Rename them (e.g. replace "#", "?", "%", "\\" and control characters with "_") or exclude them.',
    SYMLINK_ESCAPES:
      'Uploading them would publish files from outside the directory. Replace the links with copies (cp -L), move their targets inside, or exclude them.',
    PATH_NOT_FOUND: 'Remove the broken links or exclude them.',
    PATH_UNREADABLE: unreadableHint(problems.filter((p) => p.code === 'PATH_UNREADABLE')),
  };
  const sections = groups.map(({ code, mine }) => {
    const list = mine
      .slice(0, 10)
      .map((p) => `${JSON.stringify(p.path)} ${p.reason}`)
      .join('; ');
    const more = mine.length > 10 ? ` (and ${mine.length - 10} more)` : '';
    return `${what(code, mine.length)}: ${list}${more}.`;
  });
  const first = groups[0]!;
  const hint = groups.length === 1 ? hints[first.code] : groups.map(({ code }) => `${LABELS[code]}: ${hints[code]}`).join(' ');
  return new LocalPathError(first.code, join(directory, first.mine[0]!.path), `${sections.join(' ')} Nothing was uploaded.`, { hint });
}

/**
 * What to do about the unreadable paths of a plan: permissions (`u+rx` named when a directory
 * cannot be listed: `u+r` alone does not let its entries be looked up) and special files, and a
 * path too long for the system, for which no permission helps; only what was found is said.
 */
function unreadableHint(problems: readonly Problem[]): string {
  const parts: string[] = [];
  if (problems.some((p) => p.cause !== 'too-long')) {
    const chmod = problems.some((p) => p.cause === 'directory') ? 'chmod u+r for a file, u+rx for a directory' : 'chmod u+r';
    parts.push(`Fix the permissions (${chmod}), remove special files, or exclude them.`);
  }
  if (problems.some((p) => p.cause === 'too-long')) parts.push(PATH_TOO_LONG_HINT);
  return parts.join(' ');
}

/** How a hint names each kind of problem when several are listed. */
const LABELS: Record<Problem['code'], string> = {
  SYMLINK_ESCAPES: 'Escaping symlinks',
  PATH_NOT_FOUND: 'Dangling symlinks',
  PATH_UNREADABLE: 'Unreadable paths',
  INVALID_ARTIFACT_PATH: 'Names',
};

async function readable(path: string): Promise<boolean> {
  try {
    await access(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** `isDirectory` lets globs with a trailing `/` (directories only) match directory entries. */
type Matcher = (rel: string, isDirectory: boolean) => boolean;

function toMatchers(filters: PathFilter | PathFilter[] | undefined): Matcher[] {
  if (filters === undefined) return [];
  return (Array.isArray(filters) ? filters : [filters]).map((f): Matcher => {
    if (typeof f === 'function') return (rel, isDirectory) => f(rel, { isDirectory });
    if (f instanceof RegExp) return (rel) => f.test(rel);
    // The one glob dialect of the library (src/core/glob.ts), shared with the config file's
    // include/exclude and the checkpoint archive's excludes.
    const matcher = createGlobMatcher([f]);
    return (rel, isDirectory) => matcher(isDirectory ? `${rel}/` : rel) !== undefined;
  });
}

function matchesAny(matchers: Matcher[], rel: string, isDirectory: boolean): boolean {
  return matchers.some((m) => m(rel, isDirectory));
}

// ───────────────────────────── the uploader's plans ─────────────────────────────

/** Files to upload, what was left out, and the local identity of each file. */
export interface LocalPlan {
  files: PlannedFile[];
  skipped: SkippedFile[];
  /** Bytes of the skipped files. */
  skippedBytes: number;
  /** Number of files left out, each listed in `skipped`; the files of a directory left out whole are not counted (see `skippedDirectories`). */
  skippedFiles: number;
  /**
   * Directories left out whole (an `exclude` or the default skip list), each listed once in
   * `skipped`. They are not read, so their files count in neither `skippedFiles` nor `skippedBytes`:
   * a left-out `wandb/` of 200,000 files costs one entry, not a walk.
   */
  skippedDirectories: number;
  /** What the upload stores as given but a user may lose later ({@link twinNameWarnings}); logged at `warn` and in the result's `warnings`. */
  warnings: string[];
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
  return (await inspectLocalPath(path, expected, method)).path;
}

/** A local path as {@link inspectLocalPath} found it. */
export interface CheckedLocalPath {
  /** Absolute path. */
  path: string;
  /** Size in bytes (of a file). */
  size: number;
  /** Modification time in ms. */
  mtimeMs: number;
}

/**
 * {@link checkLocalPath}, returning what the one `stat` found too, so that no later step
 * stats the path again.
 *
 * @throws {LocalPathError} `PATH_NOT_FOUND`, `NOT_A_FILE`, `NOT_A_DIRECTORY`, `PATH_UNREADABLE`.
 * @example
 * ```ts
 * const { path, size } = await inspectLocalPath('out/best.tar.gz', 'file', 'uploadCheckpointArchive');
 * ```
 */
export async function inspectLocalPath(path: unknown, expected: 'file' | 'directory', method: string): Promise<CheckedLocalPath> {
  if (typeof path !== 'string' || path === '') {
    throw new InvalidArgumentError('path', `${method}() needs the path of a ${expected}, got ${path === '' ? 'an empty string' : typeof path}.`, {
      // Most often a path built from a variable that was not set, or a list with a hole in it.
      hint: `Pass the ${expected}'s path as a non-empty string (absolute, or relative to the working directory); check the variable it was built from.`,
    });
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
  return { path: absolute, size: info.size, mtimeMs: info.mtimeMs };
}

/**
 * Checks an artifact path given by the caller (`''` is the root) and returns it normalised.
 * A bad one is the value of option `what`, so the error says to change that option; with
 * `fileNames` the path also holds file names, and the error says to rename them as well.
 *
 * @example
 * ```ts
 * checkArtifactPath('/models/onnx/', 'artifactPath'); // 'models/onnx'
 * ```
 */
export function checkArtifactPath(path: string, what: string, { allowEmpty = true, fileNames = false } = {}): string {
  if (typeof path !== 'string') throw new InvalidArgumentError(what, `Expected \`${what}\` to be a string, got ${typeof path}.`);
  const joined = joinArtifactPath(path);
  const problem = artifactPathProblem(joined, { allowEmpty });
  if (problem) {
    // "Rename the file(s)" does not fix a bad option value (`artifactPath: '../x'`, `trialId: '..'`).
    if (fileNames) throw invalidArtifactPathError([problem], 'Artifact path');
    throw invalidArtifactPathError([problem], `\`${what}\``, `Pass another value for \`${what}\`.`);
  }
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
  // Spread, anything but a list threw a bare TypeError ("value is not iterable").
  if (typeof value !== 'string' && !Array.isArray(value)) {
    throw new InvalidArgumentError(what, `Expected \`${what}\` to be a glob pattern or a list of them, got ${JSON.stringify(value) ?? String(value)}.`);
  }
  const list = typeof value === 'string' ? [value] : [...value];
  for (const item of list) {
    if (typeof item !== 'string' || item === '') {
      throw new InvalidArgumentError(what, `Expected \`${what}\` to be glob patterns (non-empty strings), got ${JSON.stringify(item)}.`);
    }
  }
  return list;
}

/**
 * Plans single files that {@link inspectLocalPath} has checked, largest first: each at
 * `<artifactDir>/<name>`, or at its path relative to `baseDir` (a checked directory).
 *
 * @example
 * ```ts
 * const model = await inspectLocalPath('out/model.onnx', 'file', 'uploadFiles');
 * const plan = planFiles([model], 'onnx');
 * ```
 */
export function planFiles(files: readonly CheckedLocalPath[], artifactDir: string, baseDir?: string): LocalPlan {
  const planned: PlannedFile[] = [];
  const seen = new Set<string>();
  for (const file of files) {
    const localPath = file.path;
    let name = basename(localPath);
    if (baseDir !== undefined) {
      const rel = relative(baseDir, localPath);
      if (rel === '' || !isInside(baseDir, localPath)) {
        throw new InvalidArgumentError('baseDir', `${localPath} is not inside baseDir ${baseDir}.`, { hint: 'Pass a baseDir that contains every file.' });
      }
      name = rel.split(sep).join('/');
    }
    const artifactPath = checkArtifactPath(joinArtifactPath(artifactDir, name), 'artifactPath', { allowEmpty: false, fileNames: true });
    if (seen.has(artifactPath)) {
      throw new InvalidArgumentError('paths', `Two files would be uploaded to the same artifact path ${artifactPath}.`, {
        hint: 'Upload them into different artifact directories, or pass baseDir to keep their relative paths.',
      });
    }
    seen.add(artifactPath);
    planned.push({ localPath, artifactPath, size: file.size, mtimeMs: file.mtimeMs });
  }
  // Largest first, as for directories: the big transfers start early, the tail stays short.
  planned.sort((a, b) => b.size - a.size);
  return { files: planned, skipped: [], skippedBytes: 0, skippedFiles: 0, skippedDirectories: 0, warnings: twinNameWarnings(planned.map((f) => f.artifactPath)) };
}

/**
 * Include/exclude globs of a directory operation, turned into matchers once (for the plan and,
 * for an archive, the archive's filter).
 */
export interface PathFilters {
  include: readonly string[];
  exclude: readonly string[];
  /** The include pattern `rel` matches, if any (`undefined` for every path when `include` is empty). */
  included: (rel: string) => string | undefined;
  /** The exclude pattern `rel` matches, if any. */
  excluded: (rel: string) => string | undefined;
}

/**
 * Compiles include/exclude globs (our one dialect, src/core/glob.ts).
 *
 * @example
 * ```ts
 * const filters = pathFilters(['*.safetensors'], ['*.tmp']);
 * filters.excluded('a.tmp'); // '*.tmp'
 * ```
 */
export function pathFilters(include: readonly string[], exclude: readonly string[]): PathFilters {
  return { include, exclude, included: createGlobMatcher(include), excluded: createGlobMatcher(exclude) };
}

/** Options of {@link planLocalDirectory}. */
export interface LocalDirectoryPlanOptions {
  artifactPath: string;
  filters: PathFilters;
  /** Leave out the default skip list (`shouldSkipFile`). */
  skipDefaultFiles: boolean;
  /**
   * The directory becomes one checkpoint archive (`archiveAndUploadCheckpoint`): plan it as
   * `createCheckpointArchive` archives it. Names need not be artifact paths, FIFOs, sockets and
   * devices are left out, and dangling links or loops (kept as links) are not refused.
   * @default false
   */
  archived?: boolean;
}

/**
 * Plans a directory that {@link checkLocalPath} has checked (so it is not stat'ed again) like
 * {@link planDirectory} (largest first; bad names, dangling or escaping symlinks and unreadable
 * files refused with every offender listed), and records why each path was left out.
 *
 * @example
 * ```ts
 * const dir = await checkLocalPath('out/ckpt', 'directory', 'uploadCheckpoint');
 * const plan = await planLocalDirectory(dir, { artifactPath: 'checkpoint', filters: pathFilters([], ['*.log']), skipDefaultFiles: true });
 * plan.skipped; // [{ path: 'train.log', reason: 'excluded by "*.log"' }]
 * ```
 */
export async function planLocalDirectory(dir: string, options: LocalDirectoryPlanOptions): Promise<LocalPlan> {
  const { included, excluded, include } = options.filters;
  const reasons = new Map<string, string>();
  const plan = await walkDirectory(
    dir,
    {
      artifactPath: options.artifactPath,
      include: include.length > 0 ? (rel: string) => included(rel) !== undefined : undefined,
      // Told about directories: with the path alone, `cache/` (directories only) never matched
      // the directory, which was walked (every file in it listed as left out one by one, and
      // one that could not be listed refused the upload although it was excluded).
      exclude: (rel, { isDirectory }) => {
        const path = isDirectory ? `${rel}/` : rel;
        const rule = options.skipDefaultFiles ? findSkipRule(path) : undefined;
        if (rule) {
          reasons.set(rel, `default skip list (${rule.pattern}: ${rule.description})`);
          return true;
        }
        const pattern = excluded(path);
        if (pattern !== undefined) reasons.set(rel, `excluded by "${pattern}"`);
        return pattern !== undefined;
      },
    },
    { archived: options.archived },
  );
  const skipped: SkippedFile[] = [];
  let skippedBytes = 0;
  let skippedFiles = 0;
  let skippedDirectories = 0;
  for (const entry of plan.skipped) {
    const reason =
      entry.reason === 'excluded'
        ? (reasons.get(entry.relativePath) ?? 'excluded')
        : entry.reason === 'not-included'
          ? 'not matched by include'
          : entry.reason === 'symlink-loop'
            ? 'symlink loop'
            : entry.reason === 'special-file'
              ? 'special file (FIFO, socket or device)'
              : 'symlink not followed';
    skipped.push({ path: entry.relativePath, reason });
    const path = resolve(plan.directory, entry.relativePath);
    const info = await stat(path).catch(() => undefined);
    if (info?.isFile()) {
      skippedFiles++;
      skippedBytes += info.size;
    } else if (entry.reason === 'excluded' && (await lstat(path).catch(() => undefined))?.isDirectory()) {
      // Counted as one directory, not walked for the number of its files: an excluded `wandb/`
      // or `cache/` of 200,000 files cost a full walk (time and memory) for a metric, and was
      // read although the exclude said to leave it alone.
      skippedDirectories++;
    }
  }
  return { files: plan.files, skipped, skippedBytes, skippedFiles, skippedDirectories, warnings: twinNameWarnings(plan.files.map((f) => f.artifactPath)) };
}

/** How many example paths {@link logLeftOut}'s summary names. */
const LEFT_OUT_EXAMPLES = 3;

/**
 * Says what the plan of one call left out, through `logger`: one `info` line for the call (the
 * count per reason and a few example paths), however many paths, and one `debug` line per path.
 * The result's `skippedFiles` lists them all; a log reader (the CLI's `--verbose`, a training
 * job's log) sees them only through this. The reason is counted without its detail past " (":
 * the default skip list's patterns are many, an `exclude` pattern is named in its reason.
 *
 * @example
 * ```ts
 * logLeftOut(logger, 'uploadCheckpoint', plan.skipped);
 * // info: 'uploadCheckpoint: left out 3 path(s): 2 default skip list, 1 excluded by "*.log" (e.g. .DS_Store, a/.DS_Store, train.log)'
 * ```
 */
export function logLeftOut(logger: Logger, method: string, skipped: readonly SkippedFile[]): void {
  if (skipped.length === 0) return;
  const counts = new Map<string, number>();
  for (const entry of skipped) {
    logger.debug(`${method}: left out ${entry.path}: ${entry.reason}`);
    const detail = entry.reason.indexOf(' (');
    const reason = detail < 0 ? entry.reason : entry.reason.slice(0, detail);
    counts.set(reason, (counts.get(reason) ?? 0) + 1);
  }
  const byReason = [...counts].map(([reason, count]) => `${count} ${reason}`).join(', ');
  const examples = skipped.slice(0, LEFT_OUT_EXAMPLES).map((entry) => entry.path).join(', ');
  const more = skipped.length > LEFT_OUT_EXAMPLES ? ', ...' : '';
  logger.info(`${method}: left out ${skipped.length} path(s): ${byReason} (e.g. ${examples}${more}); result.skippedFiles lists them.`);
}

/**
 * The identity of each planned file (path, size, mtime), for deduplication: the plan's own
 * `stat` where it recorded one (`mtimeMs`), else a `stat` now.
 *
 * @example
 * ```ts
 * const identities = await fileIdentities(plan.files);
 * ```
 */
export async function fileIdentities(files: readonly PlannedFile[]): Promise<LocalFileIdentity[]> {
  // A directory plan recorded every mtime: no promise per file for those (20,000 files, 20,000 promises).
  const identity = (f: PlannedFile, size: number, mtimeMs: number): LocalFileIdentity => ({ localPath: f.localPath, artifactPath: f.artifactPath, size, mtimeMs });
  if (files.every((f) => f.mtimeMs !== undefined)) return files.map((f) => identity(f, f.size, f.mtimeMs!));
  return Promise.all(
    files.map(async (f) => {
      if (f.mtimeMs !== undefined) return identity(f, f.size, f.mtimeMs);
      const info = await stat(f.localPath);
      return identity(f, info.size, info.mtimeMs);
    }),
  );
}
