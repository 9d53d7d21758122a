/**
 * Verification after upload: list what the store holds and compare every uploaded file's size
 * with what was sent. The stores do not report checksums today, so the check is the size; a
 * truncated body or a missing object is what it catches. MLflow's proxy leaves the size out
 * of listings for empty files (on its wire 0 and "unknown" look alike), so a 0-byte file
 * listed without a size counts as a match.
 *
 * A per-file checksum check belongs in {@link verifyUploads}: an {@link ExpectedArtifact} would
 * carry the sha256 the transfer computed, compared with what the store reports.
 *
 * @module
 */
import { posix } from 'node:path';
import { VerificationError, type VerificationMismatch } from '../core/errors.js';
import type { ArtifactEntry, ArtifactStore } from '../stores/artifact-store.js';
import { toUploaderError } from './result.js';
import type { FileUploadOutcome, TransferContext, TransferOutcome } from './transfer.js';

/** A file that was uploaded and must now be in the store. */
export interface ExpectedArtifact {
  artifactPath: string;
  size: number;
}

/**
 * Lists each parent directory of `files` once (not the whole run) and returns the files whose
 * listing does not match: `missing`, or `size` (with the size the store reports). Listing
 * errors propagate.
 *
 * @example
 * ```ts
 * const mismatches = await verifyUploads(store, [{ artifactPath: 'model/model.onnx', size: 1234 }]);
 * if (mismatches.length > 0) throw new VerificationError(mismatches);
 * ```
 * @internal
 */
export async function verifyUploads(
  store: Pick<ArtifactStore, 'list'>,
  files: readonly ExpectedArtifact[],
  options: { signal?: AbortSignal | undefined } = {},
): Promise<VerificationMismatch[]> {
  const byDir = new Map<string, ExpectedArtifact[]>();
  for (const file of files) {
    const dir = posix.dirname(file.artifactPath);
    const key = dir === '.' ? '' : dir;
    byDir.set(key, [...(byDir.get(key) ?? []), file]);
  }
  const mismatches: VerificationMismatch[] = [];
  for (const [dir, expected] of byDir) {
    const listing = new Map<string, ArtifactEntry>();
    for (const entry of await store.list(dir === '' ? undefined : dir, options)) listing.set(entry.path, entry);
    for (const file of expected) {
      const entry = listing.get(file.artifactPath);
      if (!entry || entry.isDir) {
        mismatches.push({ artifactPath: file.artifactPath, expectedSize: file.size, reason: 'missing' });
      } else if (entry.size !== file.size && !(entry.size === undefined && file.size === 0)) {
        mismatches.push({
          artifactPath: file.artifactPath,
          expectedSize: file.size,
          actualSize: entry.size,
          reason: 'size',
        });
      }
    }
  }
  return mismatches.sort((a, b) => (a.artifactPath < b.artifactPath ? -1 : a.artifactPath > b.artifactPath ? 1 : 0));
}

/**
 * The verification step of a transfer whose files all went: `verifying`, then the outcome's
 * status, reason, verification and error.
 *
 * @example
 * ```ts
 * return { files, metrics, ...(await verifyTransferred(ctx, uploaded)) };
 * ```
 */
export async function verifyTransferred(
  ctx: Pick<TransferContext, 'target' | 'progress' | 'signal'>,
  uploaded: readonly FileUploadOutcome[],
): Promise<Pick<TransferOutcome, 'status' | 'reason' | 'verification' | 'error'>> {
  const { signal } = ctx;
  ctx.progress.phase('verifying');
  try {
    const mismatches = await verifyUploads(ctx.target.store, uploaded.map((o) => ({ artifactPath: o.file.artifactPath, size: o.bytes })), { signal });
    if (mismatches.length === 0) return { status: 'uploaded', verification: { status: 'verified' } };
    return { status: 'failed', reason: 'verification-failed', verification: { status: 'failed', mismatches }, error: new VerificationError(mismatches) };
  } catch (error) {
    return {
      status: 'failed',
      reason: signal?.aborted ? 'aborted' : 'verification-failed',
      verification: { status: 'failed' },
      error: toUploaderError(error, ' (while listing the uploaded files to verify them)'),
    };
  }
}
