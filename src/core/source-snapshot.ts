/**
 * What a source file looked like when its upload started (size, mtime, inode), and the check
 * that it still looks the same once the bytes are sent. A file rewritten in place keeps its size
 * but not its mtime; a truncated one loses size. Either way what was stored is not one version
 * of the file, and the upload fails with a {@link SourceChangedError} at once: retrying cannot
 * help while something is still writing the file.
 *
 * A snapshot is one `stat` with exact (bigint) times and numbers, so the same call also gives
 * the identity the resume journal records for the file (`exact`): the upload step stats a file
 * once before it is sent and once after, and nothing else of the pipeline stats it again.
 *
 * @module
 */
import { stat } from 'node:fs/promises';
import { SourceChangedError, type SourceChangedErrorOptions } from './errors.js';

/** A file's identity and version at one moment. */
export interface FileSnapshot {
  /** Size in bytes. */
  size: number;
  /** Modification time, in ms (with the file system's sub-ms precision). */
  mtimeMs: number;
  /** Inode number: a file replaced by rename has another. */
  ino: number;
  /**
   * The same, exact: mtime in ns since the epoch, inode and device, as decimal strings (inode
   * numbers can exceed 2^53). Compared instead of `mtimeMs` and `ino` when both snapshots have
   * it; the resume journal records it. Set by {@link snapshotFile}.
   */
  exact?: { mtimeNs: string; ino: string; dev: string };
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
  const info = await stat(path, { bigint: true });
  return {
    size: Number(info.size),
    // As a plain stat computes it (seconds * 1e3 + nanoseconds / 1e6), to the last bit.
    mtimeMs: Number(info.mtimeNs / 1_000_000_000n) * 1e3 + Number(info.mtimeNs % 1_000_000_000n) / 1e6,
    ino: Number(info.ino),
    exact: { mtimeNs: info.mtimeNs.toString(), ino: info.ino.toString(), dev: info.dev.toString() },
  };
}

/** True when two snapshots are of the same version of a file. */
function sameVersion(a: FileSnapshot, b: FileSnapshot): boolean {
  if (a.size !== b.size) return false;
  if (a.exact && b.exact) return a.exact.mtimeNs === b.exact.mtimeNs && a.exact.ino === b.exact.ino && a.exact.dev === b.exact.dev;
  return a.mtimeMs === b.mtimeMs && a.ino === b.ino;
}

/**
 * A {@link SourceChangedError} when `path` no longer matches `before` (other size, mtime or
 * inode, or gone), else `undefined`. `activity` words its message (`'archive'` from the
 * checkpoint archive).
 *
 * @example
 * ```ts
 * const changed = await sourceChange('model.bin', before);
 * if (changed) throw changed;
 * ```
 */
export async function sourceChange(path: string, before: FileSnapshot, activity: SourceChangedErrorOptions['activity'] = 'upload'): Promise<SourceChangedError | undefined> {
  const now = await snapshotFile(path).catch(() => undefined);
  if (now && sameVersion(now, before)) return undefined;
  return new SourceChangedError(path, before, now, { activity });
}

/**
 * What to throw for a file that changed while it was uploaded, after the store already holds
 * what was sent (a mix of two versions): `remove` takes the artifact back, and when it cannot
 * (it failed, or the store cannot delete: `undefined`) the error says it is left there
 * (`leftStored`, with the refusal as its cause).
 *
 * @example
 * ```ts
 * throw await takeBackChanged(changed, () => store.delete(artifactPath));
 * ```
 */
export async function takeBackChanged(changed: SourceChangedError, remove: (() => Promise<void>) | undefined): Promise<SourceChangedError> {
  const refused = remove === undefined ? { error: undefined } : await remove().then(
    () => undefined,
    (error: unknown) => ({ error }),
  );
  if (refused === undefined) return changed;
  return new SourceChangedError(changed.path, changed.before, changed.after, {
    leftStored: true,
    ...(changed.change !== undefined ? { change: changed.change } : {}),
    ...(changed.sinceEarlierAttempt ? { sinceEarlierAttempt: true } : {}),
    ...(refused.error !== undefined ? { cause: refused.error } : {}),
  });
}
