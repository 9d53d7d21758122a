/**
 * Staged archives: where `archiveAndUploadCheckpoint` builds its archive and manifest so that a
 * rerun after a kill finds them again and the upload resumes (file level, and part level on
 * `s3://` and `gs://`) instead of starting over with a new archive (docs/resume.md).
 *
 * An archive is staged under `<journal dir>/archives/<key>/`, where the key hashes the upload's
 * destination (tracking target, run, artifact path), how it is archived (directory, gzip level,
 * include and exclude globs) and the identity of every entry of the checkpoint directory (path,
 * type, size, mtime, inode). The same command over an unchanged directory finds the archive it
 * built before (the very same file, so the journal's record of it still matches); any change to
 * the directory gives a new key and a fresh archive. `createCheckpointArchive` writes archive and
 * manifest under temp names and renames them as a pair, so a staged archive is either complete
 * or absent, whatever instant a kill comes at.
 *
 * A staging directory is removed when its upload completed, by `resume clear`
 * ({@link removeStagedArchives}), and when unused for as long as a journal record lives.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { readManifest, manifestFileName, type CheckpointManifest } from '../archive/manifest.js';

/** The folder of the journal directory that holds staged archives. */
export const STAGED_ARCHIVES_FOLDER = 'archives';

/** What a staged archive is for and made of: everything that changes its bytes or its destination. */
export interface StagedArchiveKey {
  /** Tracking target without credentials. */
  target: string;
  runId: string;
  /** Artifact path of the archive. */
  artifactPath: string;
  /** The checkpoint directory (absolute). */
  directory: string;
  level: number | undefined;
  include: readonly string[];
  exclude: readonly string[];
}

/** A staged archive found complete. */
export interface StagedArchive {
  archivePath: string;
  manifest: CheckpointManifest;
}

/**
 * One line per entry under `dir` (sorted; path, type, size, mtime in ns, inode): any file
 * added, removed, rewritten or touched changes it.
 */
async function directoryIdentity(dir: string): Promise<string> {
  const lines: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(dir, rel))).sort();
    for (const name of names) {
      const path = rel === '' ? name : `${rel}/${name}`;
      const info = await lstat(join(dir, path), { bigint: true });
      const type = info.isDirectory() ? 'd' : info.isFile() ? 'f' : info.isSymbolicLink() ? 'l' : 'o';
      lines.push(`${type} ${info.size} ${info.mtimeNs} ${info.ino} ${JSON.stringify(path)}`);
      if (type === 'd') await walk(path);
    }
  };
  await walk('');
  return lines.join('\n');
}

/**
 * The staging directory of an archive, made (owner only) if needed:
 * `<journalDir>/archives/<sha256 of key + directory identity>`. Costs one `lstat` per entry of
 * the checkpoint directory.
 *
 * @example
 * ```ts
 * const stage = await stagedArchiveDir(journal.dir, { target, runId, artifactPath: 'best.tar.gz', directory, level: undefined, include: [], exclude: [] });
 * ```
 */
export async function stagedArchiveDir(journalDir: string, key: StagedArchiveKey): Promise<string> {
  const hash = createHash('sha256')
    .update(JSON.stringify({ ...key, level: key.level ?? null }))
    .update('\n')
    .update(await directoryIdentity(key.directory))
    .digest('hex');
  const dir = join(journalDir, STAGED_ARCHIVES_FOLDER, hash.slice(0, 40));
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/**
 * The archive a killed earlier run completed in `stageDir`, if any: archive and manifest both
 * present and the archive of the manifest's size. A found archive's directory is touched, so
 * its age counts from its last use.
 *
 * @example
 * ```ts
 * const staged = await findStagedArchive(stage, 'best.tar.gz');
 * ```
 */
export async function findStagedArchive(stageDir: string, archiveName: string): Promise<StagedArchive | undefined> {
  const archivePath = join(stageDir, archiveName);
  const manifest = await readManifest(join(stageDir, manifestFileName(archiveName))).catch(() => undefined);
  if (!manifest) return undefined;
  const size = (await stat(archivePath).catch(() => undefined))?.size;
  if (size !== manifest.archive.size) return undefined;
  const now = new Date();
  await utimes(stageDir, now, now).catch(() => undefined);
  return { archivePath, manifest };
}

/**
 * Deletes staged archives: all of them, or those not used for `olderThanMs`. Returns the
 * directories removed. A missing journal directory has none.
 *
 * @example
 * ```ts
 * await removeStagedArchives(journal.dir, { olderThanMs: 7 * 24 * 3600_000 });
 * ```
 */
export async function removeStagedArchives(journalDir: string, options: { olderThanMs?: number } = {}): Promise<string[]> {
  const root = join(journalDir, STAGED_ARCHIVES_FOLDER);
  const names = await readdir(root).catch(() => [] as string[]);
  const removed: string[] = [];
  const now = Date.now();
  for (const name of names) {
    const path = join(root, name);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isDirectory()) continue;
    if (options.olderThanMs !== undefined && now - info.mtimeMs < options.olderThanMs) continue;
    await rm(path, { recursive: true, force: true });
    removed.push(path);
  }
  return removed;
}
