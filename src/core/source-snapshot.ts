/**
 * What a source file looked like when its upload started (size, mtime, inode), and the check
 * that it still looks the same once the bytes are sent. A file rewritten in place keeps its size
 * but not its mtime; a truncated one loses size. Either way what was stored is not one version
 * of the file, and the upload fails with a {@link SourceChangedError} at once: retrying cannot
 * help while something is still writing the file.
 *
 * @module
 */
import { stat } from 'node:fs/promises';
import { SourceChangedError } from './errors.js';

/** A file's identity and version at one moment. */
export interface FileSnapshot {
  /** Size in bytes. */
  size: number;
  /** Modification time, in ms (with the file system's sub-ms precision). */
  mtimeMs: number;
  /** Inode number: a file replaced by rename has another. */
  ino: number;
}

/**
 * The snapshot of a file now.
 *
 * @example
 * ```ts
 * const before = await snapshotFile('model.bin');
 * ```
 */
export async function snapshotFile(path: string): Promise<FileSnapshot> {
  const info = await stat(path);
  return { size: info.size, mtimeMs: info.mtimeMs, ino: info.ino };
}

/**
 * A {@link SourceChangedError} when `path` no longer matches `before` (other size, mtime or
 * inode, or gone), else `undefined`.
 *
 * @example
 * ```ts
 * const changed = await sourceChange('model.bin', before);
 * if (changed) throw changed;
 * ```
 */
export async function sourceChange(path: string, before: FileSnapshot): Promise<SourceChangedError | undefined> {
  const now = await snapshotFile(path).catch(() => undefined);
  if (now && now.size === before.size && now.mtimeMs === before.mtimeMs && now.ino === before.ino) return undefined;
  return new SourceChangedError(path, before, now);
}
