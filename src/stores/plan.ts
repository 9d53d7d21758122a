/**
 * Plans the upload of a directory: every file with its relative POSIX artifact path and size,
 * largest first (so big files start early and the tail of a concurrent upload is short). All
 * checks happen here, before any byte is sent, so a directory either uploads as a whole or
 * not at all: symlinks that leave the directory, unreadable files and names MLflow cannot
 * store are reported together, every offender listed.
 *
 * @module
 */
import { constants } from 'node:fs';
import { access, readdir, realpath, stat } from 'node:fs/promises';
import { join, relative, resolve, sep, isAbsolute } from 'node:path';
import pLimit from 'p-limit';
import { LocalPathError, type LocalPathErrorCode } from '../core/errors.js';
import { artifactPathProblem, assertArtifactPath, joinArtifactPath } from '../mlflow/artifacts-api.js';
import { createGlobMatcher } from '../core/glob.js';
import { toLocalPathError } from './source-file.js';

/**
 * Selects paths: a glob (`*.safetensors`, `logs/**`, `**\/*.tmp`), a RegExp, or a predicate,
 * each tested against the path relative to the planned directory (POSIX separators). A glob
 * without `/` matches a base name at any depth, as in `.gitignore`.
 */
export type PathFilter = string | RegExp | ((relativePath: string) => boolean);

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
}

/** A path the plan leaves out, and why. */
export interface SkippedPath {
  /** Path relative to the planned directory. */
  relativePath: string;
  reason: 'excluded' | 'not-included' | 'symlink-not-followed' | 'symlink-loop';
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
  code: Exclude<LocalPathErrorCode, 'NOT_A_FILE' | 'NOT_A_DIRECTORY' | 'PATH_UNWRITABLE'>;
  path: string;
  reason: string;
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
  const prefix = joinArtifactPath(options.artifactPath);
  assertArtifactPath(prefix, { allowEmpty: true, what: 'artifactPath' });
  const directory = resolve(dir);
  let rootReal: string;
  try {
    const info = await stat(directory);
    if (!info.isDirectory()) {
      throw new LocalPathError('NOT_A_DIRECTORY', directory, `${directory} is not a directory.`, {
        hint: 'Upload a single file with store.uploadFile, or pass its parent directory with an include filter.',
      });
    }
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

  const addFile = (localPath: string, rel: string, size: number) => {
    if (include.length > 0 && !matchesAny(include, rel, false)) {
      skipped.push({ relativePath: rel, reason: 'not-included' });
      return;
    }
    const artifactPath = joinArtifactPath(prefix, rel);
    const problem = artifactPathProblem(artifactPath);
    if (problem) problems.push({ code: 'INVALID_ARTIFACT_PATH', path: rel, reason: problem.reason });
    else files.push({ localPath, artifactPath, size });
  };

  // What one entry found, applied in directory order once every entry of the walk is known, so
  // the lists come out the same as a sequential walk while the stat calls run in parallel.
  type Found = { file: [localPath: string, rel: string, size: number] } | { skip: SkippedPath } | { problem: Problem };
  const io = pLimit(PLAN_IO_CONCURRENCY);

  // `ancestors` holds the real paths of the directories above (and including) `absDir`, to stop link loops.
  const walk = async (absDir: string, relDir: string, realDir: string, ancestors: ReadonlySet<string>): Promise<Found[]> => {
    let entries;
    try {
      entries = await readdir(absDir, { withFileTypes: true });
    } catch (error) {
      return [{ problem: { code: 'PATH_UNREADABLE', path: relDir || '.', reason: `directory cannot be read (${(error as { code?: string }).code ?? 'error'})` } }];
    }
    const undecodable = entries.some((e) => e.name.includes('\uFFFD')) ? await nonUtf8Names(absDir) : new Set<string>();
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const visit = async (entry: (typeof entries)[number]): Promise<Found[]> => {
      const rel = relDir ? `${relDir}/${entry.name}` : entry.name;
      if (undecodable.has(entry.name)) return [{ problem: { code: 'INVALID_ARTIFACT_PATH', path: rel, reason: 'is not valid UTF-8' } }];
      if (matchesAny(exclude, rel, entry.isDirectory())) return [{ skip: { relativePath: rel, reason: 'excluded' } }];
      const full = join(absDir, entry.name);
      if (entry.isSymbolicLink()) {
        if (!followSymlinks) return [{ skip: { relativePath: rel, reason: 'symlink-not-followed' } }];
        const target = await io(() => realpath(full).catch((error: NodeJS.ErrnoException) => (error.code === 'ELOOP' ? LINK_CYCLE : undefined)));
        // Links that point at each other (a -> b -> a) lead nowhere: a loop, like `up -> ..`.
        if (target === LINK_CYCLE) return [{ skip: { relativePath: rel, reason: 'symlink-loop' } }];
        if (target === undefined) return [{ problem: { code: 'PATH_NOT_FOUND', path: rel, reason: 'is a symlink to a missing target' } }];
        if (!isInside(rootReal, target)) return [{ problem: { code: 'SYMLINK_ESCAPES', path: rel, reason: `points outside the directory, to ${target}` } }];
        const info = await io(() => stat(target));
        if (info.isDirectory()) {
          if (ancestors.has(target)) return [{ skip: { relativePath: rel, reason: 'symlink-loop' } }];
          return walk(full, rel, target, new Set([...ancestors, target]));
        }
        if (info.isFile()) {
          if (await io(() => readable(target))) return [{ file: [full, rel, info.size] }];
          return [{ problem: { code: 'PATH_UNREADABLE', path: rel, reason: 'cannot be read (permission denied)' } }];
        }
        return [{ problem: { code: 'PATH_UNREADABLE', path: rel, reason: 'links to a special file (FIFO, socket or device), not a regular file' } }];
      }
      if (entry.isDirectory()) {
        const real = join(realDir, entry.name);
        return walk(full, rel, real, new Set([...ancestors, real]));
      }
      if (entry.isFile()) {
        return io(async (): Promise<Found[]> => {
          let size: number;
          try {
            size = (await stat(full)).size;
          } catch (error) {
            return [{ problem: { code: 'PATH_UNREADABLE', path: rel, reason: `cannot be read (${(error as { code?: string }).code ?? 'error'})` } }];
          }
          if (await readable(full)) return [{ file: [full, rel, size] }];
          return [{ problem: { code: 'PATH_UNREADABLE', path: rel, reason: 'cannot be read (permission denied)' } }];
        });
      }
      return [{ problem: { code: 'PATH_UNREADABLE', path: rel, reason: 'is a special file (FIFO, socket or device), not a regular file' } }];
    };
    return (await Promise.all(entries.map(visit))).flat();
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
    PATH_UNREADABLE: 'Fix the permissions (chmod u+r), remove special files, or exclude them.',
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

/** How a hint names each kind of problem when several are listed. */
const LABELS: Record<Problem['code'], string> = {
  SYMLINK_ESCAPES: 'Escaping symlinks',
  PATH_NOT_FOUND: 'Dangling symlinks',
  PATH_UNREADABLE: 'Unreadable paths',
  INVALID_ARTIFACT_PATH: 'Names',
};

function isInside(root: string, target: string): boolean {
  const rel = relative(root, target);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

async function readable(path: string): Promise<boolean> {
  try {
    await access(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** Names in `dir` whose bytes are not valid UTF-8, in the lossy form readdir gives them. */
async function nonUtf8Names(dir: string): Promise<Set<string>> {
  const out = new Set<string>();
  for (const raw of await readdir(dir, { encoding: 'buffer' })) {
    const decoded = raw.toString('utf8');
    if (!Buffer.from(decoded, 'utf8').equals(raw)) out.add(decoded);
  }
  return out;
}

/** `isDirectory` lets globs with a trailing `/` (directories only) match directory entries. */
type Matcher = (rel: string, isDirectory: boolean) => boolean;

function toMatchers(filters: PathFilter | PathFilter[] | undefined): Matcher[] {
  if (filters === undefined) return [];
  return (Array.isArray(filters) ? filters : [filters]).map((f): Matcher => {
    if (typeof f === 'function') return (rel) => f(rel);
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

