/**
 * The one walk of a checkpoint directory as its archive sees it: which entries the archive
 * takes and which it leaves out (and why, as its manifest records it). `createCheckpointArchive`
 * scans with it, and the staged archive of a resumable upload is keyed on it
 * (uploader/archive-staging.ts), so the two can never disagree on what the archive holds.
 *
 * @module
 */
import { readdir } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { isUtf8 } from '../core/non-utf8-names.js';
import type { ArchiveEntryInfo, ArchiveSelector } from './create-checkpoint-archive.js';
import type { ManifestSkippedEntry } from './manifest.js';

/** An entry the archive takes, as {@link walkAsArchived} hands it over. */
export interface ArchivedEntry<Info> {
  /** Relative `/`-separated path; a directory's ends with `/`. */
  path: string;
  type: ArchiveEntryInfo['type'];
  /** Its path under the root, for messages (lossy, U+FFFD, for a name that is not UTF-8). */
  abs: string;
  /** What reaches it on disk: `abs`, or its bytes when a name on the way is not UTF-8. */
  lookup: string | Buffer;
  /** True when its own name is not valid UTF-8 (the archive and manifest cannot name it). */
  undecodable: boolean;
  /** A file's `lookUp`, made before the selection (which is told its size); none for the other types. */
  fileInfo: Info | undefined;
}

/** Options of {@link walkAsArchived}. */
export interface WalkAsArchivedOptions<Info extends { size: number | bigint }> {
  /** What the archive leaves out ({@link ArchiveSelector}); a directory left out is not read. */
  leftOut: ArchiveSelector;
  /** Looks a file up (an `lstat`): the caller chooses plain or `bigint` stats. */
  lookUp: (path: string | Buffer) => Promise<Info>;
  /** Called for every entry the archive leaves out, with its manifest record. */
  onSkipped: (skipped: ManifestSkippedEntry) => void;
  /** Called for every entry the archive takes, before a directory's entries are walked. */
  onTaken: (entry: ArchivedEntry<Info>) => Promise<void> | void;
  /**
   * Paths (relative, `/`-separated) of the archive's own outputs inside the directory: they and
   * their temp files are left out as `archive-output`.
   * @default []
   */
  outputs?: readonly string[];
  /**
   * Runs each file system call of the walk (`readdir`, `lookUp`), with the path it is about:
   * where a caller turns a raw error into its own.
   * @default the call as it is
   */
  call?: <T>(path: string, run: () => Promise<T>) => Promise<T>;
  /** Called before each directory is listed (an abort check). @default nothing */
  beforeListing?: () => void;
}

/**
 * Walks `root` depth-first, each directory's entries in code-unit order of their names (ties,
 * names that are not UTF-8 and decode alike, by their bytes), and tells `onSkipped` or
 * `onTaken` about each entry by the archive's one rule: its outputs and FIFOs, sockets and
 * devices (`unsupported-type`) are left out, a file is looked up before `leftOut` (which is told
 * its size), and a directory `leftOut` leaves out is never listed, so nothing in it (a name that
 * is not UTF-8, a folder that cannot be listed) matters. Names are read as bytes: one that is
 * not UTF-8 is still looked up by its real bytes (its decoded string names no file).
 *
 * @example
 * ```ts
 * const taken: string[] = [];
 * await walkAsArchived('/work/ckpt', { leftOut: archiveSelector({ exclude: ['*.log'] }), lookUp: (p) => lstat(p), onSkipped: () => {}, onTaken: (e) => void taken.push(e.path) });
 * ```
 * @internal
 */
export async function walkAsArchived<Info extends { size: number | bigint }>(root: string, options: WalkAsArchivedOptions<Info>): Promise<void> {
  const { leftOut, lookUp, onSkipped, onTaken, outputs = [], call = (_path, run) => run(), beforeListing } = options;
  const walk = async (relDir: string, dirLookup: string | Buffer): Promise<void> => {
    beforeListing?.();
    const absDir = join(root, relDir);
    const dirents = (await call(absDir, () => readdir(dirLookup, { withFileTypes: true, encoding: 'buffer' }))).map((dirent) => ({ dirent, name: dirent.name.toString('utf8') }));
    dirents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : Buffer.compare(a.dirent.name, b.dirent.name)));
    for (const { dirent, name } of dirents) {
      const rel = relDir === '' ? name : `${relDir}/${name}`;
      if (outputs.some((output) => rel === output || rel.startsWith(`${output}.tmp-`))) {
        onSkipped({ path: rel, reason: 'archive-output' });
        continue;
      }
      const type: ArchiveEntryInfo['type'] | undefined = dirent.isDirectory() ? 'directory' : dirent.isFile() ? 'file' : dirent.isSymbolicLink() ? 'symlink' : undefined;
      const path = type === 'directory' ? `${rel}/` : rel;
      if (type === undefined) {
        onSkipped({ path, reason: 'unsupported-type' });
        continue;
      }
      const abs = join(root, rel);
      // Only a name that decodes to U+FFFD can be one that is not UTF-8 (a real U+FFFD is valid).
      const undecodable = name.includes('\uFFFD') && !isUtf8(dirent.name);
      const lookup = typeof dirLookup === 'string' && !undecodable ? join(dirLookup, name) : Buffer.concat([Buffer.from(dirLookup), Buffer.from(sep), dirent.name]);
      const fileInfo = type === 'file' ? await call(abs, () => lookUp(lookup)) : undefined;
      const skipped = leftOut(path, { type, size: Number(fileInfo?.size ?? 0) });
      if (skipped) {
        onSkipped(skipped);
        continue;
      }
      await onTaken({ path, type, abs, lookup, undecodable, fileInfo });
      if (type === 'directory') await walk(rel, lookup);
    }
  };
  await walk('', root);
}
