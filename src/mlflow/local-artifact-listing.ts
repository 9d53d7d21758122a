/**
 * One level of a local artifact directory (a `./mlruns` run's `artifacts/`, a `file:` artifact
 * root) as a listing shows it: the same for `LocalFileStore.list` and
 * `FileTrackingStore.listArtifacts`, so that what an upload's check sees and what
 * `registerModel` walks never differ.
 *
 * Like MLflow's `LocalArtifactRepository.list_artifacts`: symlinks are followed (a symlinked
 * weights file lists as a file of its target's size, a symlinked folder as a directory), names
 * under MLflow's reserved temp prefix (a copy in flight, or one a kill cut short) are left out,
 * and a missing directory (or a file) lists as empty.
 *
 * Unlike it, an entry that holds no readable artifact is left out instead of failing the whole
 * listing: a dangling symlink (another tool's leftover; MLflow's `os.path.getsize` raises
 * `FileNotFoundError` for it, so one such link makes every listing of that directory, the UI's
 * and `download_artifacts`' included, fail), a link in a cycle of links (`ELOOP`), or a FIFO,
 * socket or device (MLflow lists those with size 0, and reading one to download it blocks or
 * fails). MLflow's own `download_artifacts` of such a path says "No such artifact"
 * (`os.path.exists` is false for a dangling link), which is what leaving it out says too.
 * So is a symlink to a directory the listed one is inside (`model/self -> .`, `model/a/up ->
 * ..`): MLflow lists it as a directory, and a walk of the listings (`registerModel`'s,
 * `listArtifactsRecursive`) then goes down it again and again until the path has too many links
 * (`ELOOP`, ~40 levels), each level a copy of the files above it (two such links: 2^40 paths).
 * Every file under such a link is listed at its own place already, so leaving the link out
 * loses no file. Each one left out is named in a warning.
 *
 * @module
 */
import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from '../core/logger.js';
import { joinArtifactPath, MLFLOW_RESERVED_PREFIX } from './artifacts-api.js';

/** Temp names of versions before 0.x that MLflow lists (`.artifact-uploader-<hex>.tmp`): never an artifact. */
export const LEGACY_TEMP_NAME = /^\.artifact-uploader-[0-9a-f]{12}\.tmp$/;

/** One entry of a local artifact directory. */
export interface LocalArtifactEntry {
  /** Path relative to the artifact root, `/`-separated. */
  path: string;
  isDir: boolean;
  /** Size in bytes (of the target, for a symlinked file); files only. */
  size?: number;
}

/**
 * Lists `dir` (relative to the artifact root, `''` for the root) of the artifact directory at
 * `absolute`, sorted by path. Entries that are neither a file nor a directory once symlinks are
 * followed are left out, each named in a warning to `logger`.
 *
 * @param absolute The directory to list (the artifact root joined with `dir`).
 * @throws the `readdir` error, unless the directory is missing or a file (`[]`, as in MLflow).
 * @example
 * ```ts
 * const entries = await listLocalArtifactDirectory('/tmp/mlruns/0/abc/artifacts/model', 'model', logger);
 * // [{ path: 'model/config.json', isDir: false, size: 312 }, { path: 'model/onnx', isDir: true }]
 * ```
 */
export async function listLocalArtifactDirectory(absolute: string, dir: string, logger: Logger): Promise<LocalArtifactEntry[]> {
  let names: Dirent[];
  try {
    names = await readdir(absolute, { withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw error;
  }
  const entries: LocalArtifactEntry[] = [];
  // Made on the first symlinked directory only: a listing without one pays nothing for it.
  let inside: Promise<Set<string>> | undefined;
  for (const entry of names) {
    if (entry.name.startsWith(MLFLOW_RESERVED_PREFIX) || LEGACY_TEMP_NAME.test(entry.name)) continue;
    const path = joinArtifactPath(dir, entry.name);
    // stat follows symlinks, as MLflow's listing does.
    const info = await stat(join(absolute, entry.name)).catch((error: NodeJS.ErrnoException) => error);
    if (info instanceof Error) {
      // Removed since the readdir: simply not there any more.
      if (info.code === 'ENOENT' && !entry.isSymbolicLink()) continue;
      logger.warn(`${path} in the artifact directory ${absolute} ${leftOutReason(entry, info.code)}; it is left out of the listing.`);
    } else if (info.isDirectory()) {
      if (entry.isSymbolicLink() && (await (inside ??= directoriesInside(absolute))).has(await fileId(join(absolute, entry.name)).catch(() => 'gone since the stat'))) {
        logger.warn(`${path} in the artifact directory ${absolute} is a symlink to a directory it is inside (a loop: its files are listed at their own place); it is left out of the listing.`);
      } else entries.push({ path, isDir: true });
    }
    else if (info.isFile()) entries.push({ path, isDir: false, size: info.size });
    else logger.warn(`${path} in the artifact directory ${absolute} is a FIFO, socket or device, not a file; it is left out of the listing.`);
  }
  return entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * The directories `absolute` is inside, as the path names them (itself, its parent, ... up to
 * the file system's root), each as {@link fileId}. By the path, not its real path: a link out
 * and a link back (`model/x -> /elsewhere`, `/elsewhere/back -> model`) has no real directory
 * inside another, yet `model/x/back` is inside `model` on the path a walk took.
 */
async function directoriesInside(absolute: string): Promise<Set<string>> {
  const ids = new Set<string>();
  for (let dir = absolute; ; dir = dirname(dir)) {
    // A prefix that cannot be read (no search permission above the root) is not where a link can lead back to.
    const id = await fileId(dir).catch(() => undefined);
    if (id !== undefined) ids.add(id);
    if (dirname(dir) === dir) return ids;
  }
}

/** Device and inode of what `path` names, symlinks followed: the same for every path to one directory. BigInt: an inode may not fit a double. */
async function fileId(path: string): Promise<string> {
  const { dev, ino } = await stat(path, { bigint: true });
  return `${dev}:${ino}`;
}

/** Why an entry whose `stat` failed (with `code`) is not listed, in words. */
function leftOutReason(entry: Dirent, code: string | undefined): string {
  if (!entry.isSymbolicLink()) return `cannot be read (${code ?? 'error'})`;
  if (code === 'ENOENT') return 'is a dangling symlink (its target is missing)';
  if (code === 'ELOOP') return 'is a symlink in a cycle of links';
  return `is a symlink whose target cannot be read (${code ?? 'error'})`;
}
