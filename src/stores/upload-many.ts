/**
 * Uploads the files of an {@link UploadPlan} to any {@link ArtifactStore} with bounded
 * concurrency. One failed file does not stop the others: every file gets an outcome and the
 * caller decides what a failure means. An abort stops new files from starting and cancels the
 * ones in flight.
 *
 * @module
 */
import pLimit from 'p-limit';
import { AbortedError, InvalidArgumentError } from '../core/errors.js';
import type { RetryEvent } from '../core/retry.js';
import { snapshotFile, sourceChange } from '../core/source-snapshot.js';
import type { ArtifactStore } from './artifact-store.js';
import type { PlannedFile, UploadPlan } from './plan.js';

/** What happened to one planned file. */
export interface FileUploadOutcome {
  file: PlannedFile;
  /** `uploaded`; `failed` (see `error`); `cancelled` when an abort came before it started. */
  status: 'uploaded' | 'failed' | 'cancelled';
  /** Bytes stored (0 unless uploaded). */
  bytes: number;
  /** Requests made for it, retries included (0 when cancelled). */
  attempts: number;
  /** True when it went through multipart upload. */
  multipart: boolean;
  /** sha256 of the bytes sent, hashed as they were read (see `UploadFileResult.sha256`). */
  sha256?: string;
  /** Why it failed or was cancelled. */
  error?: unknown;
}

/** Options of {@link uploadPlannedFiles}. */
export interface UploadPlannedFilesOptions {
  /**
   * Files in flight at once. Memory grows with it only by one ~1 MiB stream buffer per file
   * (times the part concurrency for multipart files; a file of at most 1 MiB is held whole).
   * @default 8
   */
  concurrency?: number;
  /** Stops starting new files and cancels those in flight. */
  signal?: AbortSignal;
  /** Bytes of one file sent so far (may go back down when an attempt is retried). */
  onFileProgress?: (file: PlannedFile, loaded: number) => void;
  /** Called once per file, as soon as its outcome is known. */
  onFileDone?: (outcome: FileUploadOutcome) => void;
  /** Called before each retried request. */
  onRetry?: (file: PlannedFile, event: RetryEvent) => void;
}

/**
 * Uploads every file of `plan` to `store` and returns one outcome per file, in plan order.
 * Never throws for a failed file; throws only for invalid options.
 *
 * @example
 * ```ts
 * const plan = await planDirectory('out/model', { artifactPath: 'model' });
 * const outcomes = await uploadPlannedFiles(store, plan, { concurrency: 4 });
 * const failed = outcomes.filter((o) => o.status !== 'uploaded');
 * if (failed.length > 0) throw failed[0]!.error;
 * ```
 */
export async function uploadPlannedFiles(
  store: ArtifactStore,
  plan: Pick<UploadPlan, 'files'>,
  options: UploadPlannedFilesOptions = {},
): Promise<FileUploadOutcome[]> {
  const concurrency = options.concurrency ?? 8;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new InvalidArgumentError('concurrency', `concurrency must be an integer >= 1, got ${String(concurrency)}.`);
  }
  const { signal } = options;
  const limit = pLimit(concurrency);
  const finish = (outcome: FileUploadOutcome): FileUploadOutcome => {
    options.onFileDone?.(outcome);
    return outcome;
  };

  return Promise.all(
    plan.files.map((file) =>
      limit(async (): Promise<FileUploadOutcome> => {
        if (signal?.aborted) {
          return finish({
            file,
            status: 'cancelled',
            bytes: 0,
            attempts: 0,
            multipart: false,
            error: new AbortedError(`Upload of ${file.artifactPath} was not started: the upload was aborted.`, { cause: signal.reason }),
          });
        }
        let attempts = 1;
        try {
          // What the file was before its first byte was read; checked again once it is sent.
          const snapshot = await snapshotFile(file.localPath).catch(() => undefined);
          const result = await store.uploadFile(file.localPath, file.artifactPath, {
            ...(snapshot ? { snapshot } : {}),
            size: file.size,
            ...(signal ? { signal } : {}),
            onProgress: (loaded) => options.onFileProgress?.(file, loaded),
            onRetry: (event) => {
              attempts++;
              options.onRetry?.(file, event);
            },
          });
          const changed = snapshot ? await sourceChange(file.localPath, snapshot) : undefined;
          if (changed) {
            // What was stored mixes two versions of the file: take it back where the store can.
            await store.delete?.(file.artifactPath, signal ? { signal } : {}).catch(() => undefined);
            return finish({ file, status: 'failed', bytes: 0, attempts: result.attempts, multipart: result.multipart, error: changed });
          }
          return finish({
            file,
            status: 'uploaded',
            bytes: result.bytes,
            attempts: result.attempts,
            multipart: result.multipart,
            ...(result.sha256 ? { sha256: result.sha256 } : {}),
          });
        } catch (error) {
          return finish({ file, status: 'failed', bytes: 0, attempts, multipart: false, error });
        }
      }),
    ),
  );
}
