/**
 * What every {@link ArtifactUploader} method returns: an {@link UploadResult} with the outcome,
 * the files, and the metrics of the operation. Every result is built here, by
 * {@link buildResult}, and nowhere else; {@link StatsAccumulator} sums the metrics of every
 * result for `uploader.stats()`.
 *
 * @module
 */
import { ArtifactUploaderError, isArtifactUploaderError, type VerificationMismatch } from '../core/errors.js';
import { redact } from '../core/logger.js';
import type { CheckpointManifest } from '../archive/manifest.js';
import type { ArtifactKind, StageName } from '../config/schema.js';
import type { PlannedOperation } from './operation.js';
import type { ProgressEmitter } from './progress.js';
import type { UploadTarget } from './target.js';
import type { TransferOutcome } from './transfer.js';

/**
 * Why an operation was skipped:
 * - `disabled-by-env`: `MLFLOW_SKIP_ARTIFACT_LOGGING=true`;
 * - `disabled-by-config`: the stage or artifact kind is disabled in the tracking config
 *   (`disabledBy` names the key);
 * - `dry-run`: the `dryRun` option; `files` is the plan;
 * - `empty`: nothing to upload (an empty directory, or every file filtered out);
 * - `no-run`: no run id anywhere (option, active run, `MLFLOW_RUN_ID`).
 */
export type UploadSkipReason = 'disabled-by-env' | 'disabled-by-config' | 'dry-run' | 'empty' | 'no-run';

/**
 * Why an operation failed:
 * - `run-unavailable`: the run could not be resolved (no such run, deleted run, unreachable or
 *   malformed tracking URI, an artifact store that cannot be written);
 * - `upload-failed`: a file failed after retries;
 * - `verification-failed`: the store's listing did not match what was sent;
 * - `aborted`: the `signal` fired.
 */
export type UploadFailureReason = 'run-unavailable' | 'upload-failed' | 'verification-failed' | 'aborted';

/** One file of an operation and what happened to it. */
export interface UploadedFile {
  /** Absolute local path. */
  localPath: string;
  /** Destination, relative to the run's artifact root. */
  artifactPath: string;
  /** Size in bytes (as planned; as stored once uploaded). */
  size: number;
  /**
   * `uploaded`; `resumed` (an interrupted earlier run had stored it: not sent again, see
   * docs/resume.md); `failed` (see `error`); `cancelled` (aborted before it started); `planned`
   * (the operation was skipped, e.g. a dry run, so nothing was sent).
   */
  status: 'uploaded' | 'resumed' | 'failed' | 'planned' | 'cancelled';
  /** Requests made for it, retries included. */
  attempts?: number;
  /** True when it went through a multipart upload. */
  multipart?: boolean;
  /**
   * sha256 (hex) of the bytes sent, hashed while they were read (each byte once, no second
   * read; multipart parts in file order), for every uploaded file. The resume journal records
   * the same value, and a `resumed` file carries the one its earlier run recorded (absent when
   * that run did not hash it, or when it was skipped by `skipExisting` without a record). See
   * docs/integrity.md.
   */
  sha256?: string;
  /**
   * How the stored copy of this file was checked against what was read:
   * - `checksum`: by a checksum of the bytes read that the store verified, refusing a mismatch,
   *   or reported back and we compared: S3 (`x-amz-checksum-sha256` of a single PUT, CRC32 of
   *   each part and the object's composite checksum), Azure (`Content-MD5` of every Put Blob
   *   and Put Block), GCS up to 8 MiB (`md5Hash`); see {@link checksum};
   * - `size`: by the size in the store's listing after the upload (the `verify` option):
   *   `file:` stores, the MLflow artifact proxy, GCS resumable uploads.
   *
   * Absent when the file was not checked (failed, resumed, or verification off and the store
   * checks no checksum). See docs/integrity.md.
   */
  verified?: 'checksum' | 'size';
  /**
   * The checksum that was checked, for `verified: 'checksum'` where the store names one:
   * `<algorithm>:<value>` as the store spells it, e.g. `sha256:<base64>` (S3 single PUT),
   * `crc32:<base64>-3` (S3 multipart: a checksum of its 3 parts' checksums), `md5:<base64>` (GCS).
   */
  checksum?: string;
  /** Why it failed, for `failed` and `cancelled`. */
  error?: string;
}

/** A path left out of an operation, and why (e.g. `excluded by "*.tmp"`). */
export interface SkippedFile {
  /** Path relative to the uploaded directory. */
  path: string;
  reason: string;
}

/** Counters of one operation (or, from `stats()`, of an uploader's life). */
export interface UploadMetrics {
  /** Files the plan holds (after include/exclude filters). */
  filesPlanned: number;
  /** Files stored. */
  filesSent: number;
  /**
   * Files left out: filtered out, or planned but not sent because the operation was skipped. The
   * files inside a directory left out whole are not counted: it is not read (`directoriesSkipped`).
   */
  filesSkipped: number;
  /** Directories left out whole by an `exclude` or the default skip list (`wandb/`, `__pycache__/`), not read. */
  directoriesSkipped: number;
  /** Files that failed or were cancelled. */
  filesFailed: number;
  /** Bytes the plan holds. */
  bytesPlanned: number;
  /**
   * Bytes of the files this call stored, less parts an earlier run had stored (those are in
   * {@link bytesResumed}). A file that failed or was interrupted counts nothing here, even when
   * parts of it reached the store (they are kept for the rerun, which counts them as resumed).
   */
  bytesSent: number;
  /** Files an interrupted earlier run had stored, not sent again (status `resumed`). */
  filesResumed: number;
  /** Bytes not sent again: of resumed files, and of multipart parts an earlier run had stored. */
  bytesResumed: number;
  /** Bytes of the files counted in `filesSkipped`. */
  bytesSkipped: number;
  /** Requests made for files, retries included. */
  attempts: number;
  /** Retried requests (`attempts` minus one per file tried). */
  retries: number;
  /**
   * Most files in flight at once (the adaptive limit's peak; `concurrency` unless it grew).
   * Absent for single-file and archive operations, and in `stats()`.
   */
  peakConcurrency?: number;
  /** Wall time, in milliseconds (for `stats()`: the sum over operations). */
  durationMs: number;
  /** `bytesSent` per second of `durationMs`; 0 when nothing was sent. */
  throughputBytesPerSec: number;
}

/** Outcome of checking the store's listing after upload. */
export interface UploadVerification {
  /** `verified`: every file is there with its size; `failed`: see `mismatches`; `not-run`: verification was off or nothing was uploaded. */
  status: 'verified' | 'failed' | 'not-run';
  /** For `failed`: the files that do not match. */
  mismatches?: VerificationMismatch[];
}

/**
 * The outcome of one upload operation. Failures after retries are returned here (with
 * `error`), not thrown, unless the uploader was made with `onError: 'throw'`.
 *
 * @example
 * ```ts
 * const result = await uploader.uploadDirectory('out/checkpoint');
 * if (result.status === 'failed') console.error(result.error?.message);
 * else console.log(result.status, result.reason ?? '', result.metrics.bytesSent);
 * ```
 */
export interface UploadResult {
  /** `uploaded`: every file stored (and verified, when verification was on). */
  status: 'uploaded' | 'skipped' | 'failed';
  /** Why it was skipped or failed; see {@link UploadSkipReason} and {@link UploadFailureReason}. */
  reason?: UploadSkipReason | UploadFailureReason | (string & {});
  /** The uploader's stage. */
  stage: StageName;
  /** The artifact kind whose config switch applied, if any. */
  kind?: ArtifactKind;
  /** For `disabled-by-config`: the key that disabled it, e.g. `training.checkpoint.enabled`. */
  disabledBy?: string;
  /**
   * The run of the operation: the one the files went to, or were to go to. Present in every
   * result whose run is known, failed and skipped ones included (a caller correlating results by
   * run, e.g. an HPO sweep, finds it in each): the `runId` option's from the first gate on, else
   * the active run's or `MLFLOW_RUN_ID`'s once the gates resolved it (a dry run, and every
   * operation that reached the run lookup). Absent with no run anywhere (`no-run`), and when the
   * operation was skipped before the run was resolved (`disabled-by-env`, `disabled-by-config`,
   * `empty`) without the option.
   */
  runId?: string;
  /** The run's artifact root URI. */
  artifactUri?: string;
  /** Destination of the operation relative to the artifact root: the file, or the directory. */
  artifactPath?: string;
  /** Every file of the operation, in upload order (largest first for directories). */
  files: UploadedFile[];
  /** Paths left out by filters, and why. */
  skippedFiles: SkippedFile[];
  /**
   * What the plan found that uploads as given but may bite later, each a sentence naming the
   * paths: names that differ only in letter case or Unicode normalization (`Model.bin` and
   * `model.bin`), which collide when downloaded or extracted on macOS or Windows. Also logged at
   * `warn`. Absent when there is none.
   */
  warnings?: string[];
  /** Counters of this operation. */
  metrics: UploadMetrics;
  /** Present when files were uploaded. */
  verification?: UploadVerification;
  /** For `failed`: what went wrong (typed, with a `code` and a `hint`). */
  error?: ArtifactUploaderError;
  /** Wall time of the operation, in milliseconds (same as `metrics.durationMs`). */
  durationMs: number;
  /**
   * True when an identical upload (same run, destination and local file identity) was already
   * in flight and this result is its result: the bytes went once.
   */
  deduplicated?: boolean;
  /** For checkpoint archives: the manifest uploaded beside the archive, with its verification outcome. */
  manifest?: CheckpointManifest;
}

/** {@link UploadMetrics} over an uploader's life, plus how its operations ended. */
export interface UploaderStats extends UploadMetrics {
  /** Operations finished (every status). */
  operations: number;
  uploaded: number;
  skipped: number;
  failed: number;
  /** Operations answered with another caller's in-flight result; their bytes are not counted again. */
  deduplicated: number;
}

/** What an operation is, for its result: fixed when the operation starts. */
export interface ResultContext {
  stage: StageName;
  kind: ArtifactKind | undefined;
  /** `performance.now()` when the operation started. */
  started: number;
  progress: ProgressEmitter;
}

/**
 * How an operation ended:
 * - `skipped`: a gate stopped it (see {@link UploadSkipReason}); planned files are listed as `planned`;
 * - `failed`: it failed before any file went (or its transfer threw); planned files are `cancelled`;
 *   `runId` is the gates' run, known before its target is;
 * - `transferred`: the transfer ran and `outcome` says how it went.
 */
export type OperationEnding =
  | { status: 'skipped'; reason: UploadSkipReason; disabledBy?: string | undefined; runId?: string | undefined }
  | { status: 'failed'; reason: UploadFailureReason; error: unknown; runId: string; target?: UploadTarget | undefined }
  | { status: 'transferred'; target: UploadTarget; outcome: TransferOutcome };

/**
 * Builds the {@link UploadResult} of an operation, and ends its progress (`done`). `planned` is
 * absent only when the operation stopped before planning (`disabled-by-env`).
 *
 * @example
 * ```ts
 * return buildResult(context, planned, { status: 'skipped', reason: 'empty' });
 * ```
 */
export function buildResult(context: ResultContext, planned: PlannedOperation | undefined, ending: OperationEnding): UploadResult {
  context.progress.phase('done');
  const durationMs = performance.now() - context.started;
  const shown = planned?.shown ?? [];
  const shownBytes = shown.reduce((n, f) => n + f.size, 0);
  const local = planned?.local;
  const base = {
    stage: context.stage,
    kind: context.kind,
    artifactPath: planned?.artifactPath,
    skippedFiles: local?.skipped ?? [],
    ...(local && local.warnings.length > 0 ? { warnings: local.warnings } : {}),
    durationMs,
  };
  if (ending.status === 'skipped') {
    return {
      ...base,
      status: 'skipped',
      reason: ending.reason,
      disabledBy: ending.disabledBy,
      runId: ending.runId,
      files: shown.map((f) => ({ localPath: f.localPath, artifactPath: f.artifactPath, size: f.size, status: 'planned' })),
      metrics: {
        ...emptyMetrics(),
        filesPlanned: shown.length,
        bytesPlanned: shownBytes,
        filesSkipped: (local?.skippedFiles ?? 0) + shown.length,
        bytesSkipped: (local?.skippedBytes ?? 0) + shownBytes,
        directoriesSkipped: local?.skippedDirectories ?? 0,
        durationMs,
      },
    };
  }
  if (ending.status === 'failed') {
    return {
      ...base,
      status: 'failed',
      reason: ending.reason,
      // The gates' run, the target's own: a failure before the target (an abort, `run-unavailable`) has it too.
      runId: ending.runId,
      artifactUri: ending.target?.artifactUri,
      files: shown.map((f) => ({ localPath: f.localPath, artifactPath: f.artifactPath, size: f.size, status: 'cancelled' })),
      metrics: {
        ...emptyMetrics(),
        filesPlanned: shown.length,
        bytesPlanned: shownBytes,
        filesFailed: shown.length,
        filesSkipped: local?.skippedFiles ?? 0,
        bytesSkipped: local?.skippedBytes ?? 0,
        directoriesSkipped: local?.skippedDirectories ?? 0,
        durationMs,
      },
      verification: { status: 'not-run' },
      error: toUploaderError(ending.error),
    };
  }
  const { outcome, target } = ending;
  return {
    ...base,
    status: outcome.status,
    reason: outcome.reason,
    runId: target.runId,
    artifactUri: target.artifactUri,
    files: outcome.files,
    metrics: {
      ...outcome.metrics,
      filesSkipped: local?.skippedFiles ?? 0,
      bytesSkipped: local?.skippedBytes ?? 0,
      directoriesSkipped: local?.skippedDirectories ?? 0,
      durationMs,
      throughputBytesPerSec: throughput(outcome.metrics.bytesSent, durationMs),
    },
    verification: outcome.verification,
    error: outcome.error,
    manifest: outcome.manifest,
  };
}

/**
 * The result of a caller that joined an identical upload in flight: the first caller's result,
 * marked `deduplicated` (its bytes went once, and `stats()` counts them once).
 *
 * @example
 * ```ts
 * const { value, joined } = await dedupeInFlight(key, upload);
 * return joined ? joinedResult(value, progress) : value;
 * ```
 */
export function joinedResult(first: UploadResult, progress: ProgressEmitter): UploadResult {
  progress.phase('done');
  return { ...first, deduplicated: true };
}

/**
 * Every error in a result is one of ours; a stray one is wrapped with its message kept, redacted
 * as the stores redact the answers they quote: an SDK's or a server's message may carry a token
 * or a presigned URL, and ours go into logs, results and the CLI's `--json` (the foreign error
 * stays as it was thrown in `cause`).
 *
 * @example
 * ```ts
 * toUploaderError(new Error('socket hang up')).code; // 'UPLOAD_FAILED'
 * ```
 */
export function toUploaderError(error: unknown, context = ''): ArtifactUploaderError {
  if (isArtifactUploaderError(error)) return error;
  const message = redact(error instanceof Error ? error.message : String(error));
  return new ArtifactUploaderError('UPLOAD_FAILED', `Upload failed${context}: ${message}`, { cause: error });
}

/**
 * All-zero metrics.
 *
 * @example
 * ```ts
 * const metrics = { ...emptyMetrics(), filesPlanned: 3 };
 * ```
 */
export function emptyMetrics(): UploadMetrics {
  return {
    filesPlanned: 0,
    filesSent: 0,
    filesSkipped: 0,
    directoriesSkipped: 0,
    filesFailed: 0,
    bytesPlanned: 0,
    bytesSent: 0,
    filesResumed: 0,
    bytesResumed: 0,
    bytesSkipped: 0,
    attempts: 0,
    retries: 0,
    durationMs: 0,
    throughputBytesPerSec: 0,
  };
}

/**
 * `bytes` per second of `durationMs`, rounded; 0 for no time or no bytes.
 *
 * @example
 * ```ts
 * throughput(1_000_000, 500); // 2000000
 * ```
 */
export function throughput(bytes: number, durationMs: number): number {
  return durationMs > 0 && bytes > 0 ? Math.round((bytes * 1000) / durationMs) : 0;
}

/**
 * Sums the metrics of every result an uploader returns.
 *
 * @example
 * ```ts
 * const stats = new StatsAccumulator();
 * stats.add(result);
 * stats.snapshot().bytesSent;
 * ```
 */
export class StatsAccumulator {
  private readonly totals: UploaderStats = { ...emptyMetrics(), operations: 0, uploaded: 0, skipped: 0, failed: 0, deduplicated: 0 };

  /** Counts one finished operation. */
  add(result: UploadResult): void {
    const t = this.totals;
    t.operations++;
    t[result.status]++;
    // The first caller counted those bytes; counting them here too would report bytes twice.
    if (result.deduplicated) {
      t.deduplicated++;
      return;
    }
    const m = result.metrics;
    t.filesPlanned += m.filesPlanned;
    t.filesSent += m.filesSent;
    t.filesSkipped += m.filesSkipped;
    t.directoriesSkipped += m.directoriesSkipped;
    t.filesFailed += m.filesFailed;
    t.bytesPlanned += m.bytesPlanned;
    t.bytesSent += m.bytesSent;
    t.filesResumed += m.filesResumed;
    t.bytesResumed += m.bytesResumed;
    t.bytesSkipped += m.bytesSkipped;
    t.attempts += m.attempts;
    t.retries += m.retries;
    t.durationMs += m.durationMs;
  }

  /** A copy of the totals, with throughput over the summed durations. */
  snapshot(): UploaderStats {
    return { ...this.totals, throughputBytesPerSec: throughput(this.totals.bytesSent, this.totals.durationMs) };
  }
}
