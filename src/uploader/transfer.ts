/**
 * Transfer: the bytes of a planned operation go to the run's store.
 *
 * - {@link uploadPlannedFiles}: the bounded-concurrency loop over planned files, one
 *   {@link ArtifactStore.uploadFile} each. One failed file does not stop the others: every file
 *   gets an outcome and the caller decides what a failure means. An abort stops new files from
 *   starting and cancels the ones in flight. Each file goes through {@link uploadOne}: the
 *   place for per-file steps (a journal's "already uploaded", a source-changed check, a
 *   per-file hash);
 * - {@link transferFiles}: that loop with progress, then verification (`verify.ts`);
 * - {@link transferArchive}: a checkpoint archive, then its manifest with the archive's
 *   verification outcome written into it;
 * - {@link transferDirectoryAsArchive}: a directory archived first, staged in the journal
 *   directory (`archive-staging.ts`) so a rerun resumes with the same archive, else in a temp
 *   directory.
 *
 * @module
 */
import { rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { AbortedError, DiskFullError, InvalidArgumentError, VerificationError, type VerificationMismatch } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { isThrottlingError, type RetryEvent } from '../core/retry.js';
import { makeTempDir } from '../core/atomic-write.js';
import { FILE_CHUNK_BYTES } from '../core/file-chunks.js';
import { snapshotFile, sourceChange, takeBackChanged } from '../core/source-snapshot.js';
import { createCheckpointArchive } from '../archive/create-checkpoint-archive.js';
import { ARCHIVE_SUFFIX, manifestFileName, writeManifest, type CheckpointManifest, type ManifestVerification } from '../archive/manifest.js';
import { archiveSelectionOf, claimStagedArchive, findStagedArchive, removeStagedArchives, stagedArchiveDir, type StageClaim } from './archive-staging.js';
import { DEFAULT_JOURNAL_MAX_AGE_MS, journalTarget } from './journal.js';
import type { ArtifactEntry, ArtifactStore } from '../stores/artifact-store.js';
import type { PathFilters, PlannedFile, UploadPlan } from './plan.js';
import { AdaptiveConcurrency } from './concurrency.js';
import { ProgressEmitter } from './progress.js';
import { toUploaderError, type UploadedFile, type UploadFailureReason, type UploadMetrics, type UploadVerification } from './result.js';
import type { UploadTarget } from './target.js';
import type { OperationResume } from './resume.js';
import { verifyTransferred } from './verify.js';

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
  /** Bytes not sent because parts of an earlier run's multipart upload were reused. */
  bytesReused?: number;
  /** sha256 of the bytes sent, hashed as they were read (see `UploadFileResult.sha256`). */
  sha256?: string;
  /** `checksum` when the store checked a checksum of the bytes read (see `UploadFileResult.verified`). */
  verified?: 'checksum';
  /** The checksum the store checked (see `UploadFileResult.checksum`). */
  checksum?: string;
  /** Why the source's mode and times were not kept (see `UploadFileResult.attributesNotKept`). */
  attributesNotKept?: string;
  /** Why it failed or was cancelled. */
  error?: unknown;
}

/** Options of {@link uploadPlannedFiles}. */
export interface UploadPlannedFilesOptions {
  /**
   * Files in flight at once. Memory grows with it only by two 2 MiB read buffers per file sent
   * from disk (times the part concurrency for multipart files; a file of at most 1 MiB is held
   * whole).
   * @default 8
   */
  concurrency?: number;
  /**
   * The most files in flight it may grow to while more in flight keeps paying off (a remote
   * link, where each file waits on the round trip); a 429 or 503 halves it and stops growth.
   * Equal to `concurrency`: a fixed limit. Bytes held in buffers stay within 32 MiB (or
   * `concurrency` files' worth, if more) however many are in flight (see `uploader/concurrency.ts`).
   * @default concurrency (fixed)
   */
  maxConcurrency?: number;
  /**
   * Called once the loop is done with the most files it had in flight at once (its limit's
   * peak), for the result's metrics.
   */
  onConcurrency?: (peak: number) => void;
  /** Stops starting new files and cancels those in flight. */
  signal?: AbortSignal;
  /** Bytes of one file sent so far (may go back down when an attempt is retried). */
  onFileProgress?: (file: PlannedFile, loaded: number) => void;
  /** Called once per file, as soon as its outcome is known. */
  onFileDone?: (outcome: FileUploadOutcome) => void;
  /** Called before each retried request. */
  onRetry?: (file: PlannedFile, event: RetryEvent) => void;
  /** The resume step (`resume.ts`): each file's journal record, and part-level resume for the store. */
  resume?: OperationResume | undefined;
  /** Where the one warning of a call whose files were stored without their mode and times goes. @default silent */
  logger?: Logger | undefined;
  /**
   * The warnings already given in this call, shared by its transfers (an archive, then its
   * manifest), so that each is given once per call. @default a new set (once per `uploadPlannedFiles`)
   * @internal
   */
  warned?: Set<string> | undefined;
}

/**
 * Uploads every file of `plan` to `store` and returns one outcome per file, in plan order.
 * Never throws for a failed file; throws only for invalid options, and, before any file is
 * sent, for artifact paths the store cannot hold (`INVALID_ARTIFACT_PATH`, see
 * {@link ArtifactStore.checkArtifactPaths}).
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
  const max = options.maxConcurrency ?? concurrency;
  if (!Number.isInteger(max) || max < concurrency) {
    throw new InvalidArgumentError('maxConcurrency', `maxConcurrency must be an integer >= concurrency (${concurrency}), got ${String(max)}.`);
  }
  // Every name at once, before the first file: one refused halfway would leave the others stored.
  store.checkArtifactPaths?.(plan.files.map((file) => file.artifactPath));
  // A file sent from disk holds two read buffers (core/file-chunks.ts); the chosen concurrency
  // always fits the budget, growth beyond it only as far as 32 MiB of buffers allow.
  const bufferBytes = 2 * FILE_CHUNK_BYTES;
  const limit = new AdaptiveConcurrency({ initial: concurrency, max, bufferBytes, memoryBudgetBytes: Math.max(32 * 1024 * 1024, concurrency * bufferBytes) });
  const perFile: UploadPlannedFilesOptions = {
    ...options,
    onRetry: (file, event) => {
      // The server says it is overloaded: fewer files in flight, whatever the link.
      if (isThrottlingError(event.error)) limit.throttled();
      options.onRetry?.(file, event);
    },
  };
  // Pulled one by one as room frees up: only the files in flight hold a promise and callbacks.
  const outcomes = await limit.pool(plan.files, fileSize, async (file) => {
    const outcome = await uploadOne(store, file, perFile);
    options.onFileDone?.(outcome);
    return outcome;
  });
  options.onConcurrency?.(limit.peak);
  warnAttributesNotKept(outcomes, options.logger ?? silentLogger, options.warned ?? new Set());
  return outcomes;
}

/**
 * One warning for the files a store kept without their source's mode and times (a `file:` store
 * on a mount that refuses `chmod`/`utimes`), however many: the count, an example and the
 * refusal. The bytes are whole, so the call does not fail on it.
 */
function warnAttributesNotKept(outcomes: readonly FileUploadOutcome[], logger: Logger, warned: Set<string>): void {
  const notKept = outcomes.filter((o) => o.attributesNotKept !== undefined);
  if (notKept.length === 0 || warned.has('attributes-not-kept')) return;
  warned.add('attributes-not-kept');
  const [first] = notKept as [FileUploadOutcome, ...FileUploadOutcome[]];
  logger.warn(
    `${notKept.length} of ${outcomes.length} file(s) (e.g. ${first.file.artifactPath}) were stored whole but without their source's permission bits and times: the destination's file system refused them (${first.attributesNotKept}).`,
  );
}

const fileSize = (file: PlannedFile) => file.size;

/**
 * One planned file: cancelled when the abort came first, else one `uploadFile` (the store
 * retries), its outcome recorded. Never throws.
 */
async function uploadOne(store: ArtifactStore, file: PlannedFile, options: UploadPlannedFilesOptions): Promise<FileUploadOutcome> {
  const { signal } = options;
  if (signal?.aborted) {
    return {
      file,
      status: 'cancelled',
      bytes: 0,
      attempts: 0,
      multipart: false,
      error: new AbortedError(`Upload of ${file.artifactPath} was not started: the upload was aborted.`, { cause: signal.reason }),
    };
  }
  let attempts = 1;
  try {
    // What the file was before its first byte was read; checked again once it is sent. The
    // journal records the same identity (no second stat).
    const snapshot = await snapshotFile(file.localPath).catch(() => undefined);
    const journal = await options.resume?.beginFile(file, snapshot ? { snapshot } : {});
    const result = await store.uploadFile(file.localPath, file.artifactPath, {
      ...(snapshot ? { snapshot } : {}),
      size: file.size,
      signal,
      onProgress: (loaded) => options.onFileProgress?.(file, loaded),
      onRetry: (event) => {
        attempts++;
        options.onRetry?.(file, event);
      },
      ...(journal ? { resume: journal.multipart } : {}),
    });
    const changed = snapshot ? await sourceChange(file.localPath, snapshot) : undefined;
    if (changed) {
      // What was stored mixes two versions of the file: take it back where the store can, and
      // where it cannot, the error says it is left there (nobody may take it for the file).
      const error = await takeBackChanged(changed, store.delete && (() => store.delete!(file.artifactPath, signal ? { signal } : {})));
      return { file, status: 'failed', bytes: 0, attempts: result.attempts, multipart: result.multipart, error };
    }
    await journal?.finish(result.sha256 ? { sha256: result.sha256 } : {});
    return {
      file,
      status: 'uploaded',
      bytes: result.bytes,
      attempts: result.attempts,
      multipart: result.multipart,
      ...(result.sha256 ? { sha256: result.sha256 } : {}),
      ...(result.verified === 'checksum' ? { verified: result.verified } : {}),
      ...(result.checksum ? { checksum: result.checksum } : {}),
      ...(result.attributesNotKept !== undefined ? { attributesNotKept: result.attributesNotKept } : {}),
      bytesReused: result.bytesReused ?? 0,
    };
  } catch (error) {
    return { file, status: 'failed', bytes: 0, attempts, multipart: false, error };
  }
}

// ───────────────────────────── the uploader's transfers ─────────────────────────────

/** What a transfer runs with: where the bytes go and the operation's settings. */
export interface TransferContext {
  target: UploadTarget;
  progress: ProgressEmitter;
  signal: AbortSignal | undefined;
  verify: boolean;
  /** Files in flight at the start. */
  concurrency: number;
  /** The most files in flight the limit may grow to (see {@link UploadPlannedFilesOptions.maxConcurrency}). */
  maxConcurrency: number;
  logger: Logger;
  /** The warnings given in this call (see {@link UploadPlannedFilesOptions.warned}). @default none shared */
  warned?: Set<string> | undefined;
  /** The resume step of the operation (`resume.ts`); without it nothing is resumed or recorded. */
  resume?: OperationResume | undefined;
}

/** What a transfer did, for `result.ts`. */
export interface TransferOutcome {
  status: 'uploaded' | 'failed';
  reason?: UploadFailureReason | undefined;
  files: UploadedFile[];
  metrics: Omit<UploadMetrics, 'durationMs' | 'throughputBytesPerSec' | 'filesSkipped' | 'bytesSkipped' | 'directoriesSkipped'>;
  verification: UploadVerification;
  error?: ReturnType<typeof toUploaderError> | undefined;
  manifest?: CheckpointManifest | undefined;
}

/**
 * Uploads files under the concurrency limit with progress, then verifies them when asked.
 *
 * @example
 * ```ts
 * const outcome = await transferFiles(ctx, plan.files);
 * ```
 */
export async function transferFiles(
  ctx: TransferContext,
  files: readonly PlannedFile[],
  /** `keepRecords`: the caller removes the journal records once more of the operation is done (an archive waits for its manifest). */
  options: { keepRecords?: boolean } = {},
): Promise<TransferOutcome> {
  const { progress, signal } = ctx;
  const filesTotal = files.length;
  const bytesTotal = files.reduce((n, f) => n + f.size, 0);
  let retries = 0;
  // Files an interrupted earlier run stored are set aside first (one listing per directory).
  const { resumed, toSend } = ctx.resume ? await ctx.resume.partition(files) : { resumed: [], toSend: [...files] };
  let peakConcurrency = Math.min(ctx.concurrency, files.length);
  progress.phase('uploading');
  for (const { file } of resumed) {
    progress.file(file.localPath, file.artifactPath, file.size, file.size);
    progress.fileDone(file.localPath, file.size, filesTotal, bytesTotal);
  }
  const outcomes = await uploadPlannedFiles(ctx.target.store, { files: toSend }, {
    concurrency: ctx.concurrency,
    maxConcurrency: ctx.maxConcurrency,
    onConcurrency: (peak) => {
      peakConcurrency = peak;
      if (peak > ctx.concurrency) ctx.logger.debug(`files in flight grew from ${ctx.concurrency} to ${peak} (adaptive concurrency)`);
    },
    signal,
    resume: ctx.resume,
    logger: ctx.logger,
    warned: ctx.warned,
    onFileProgress: (file, loaded) => {
      progress.file(file.localPath, file.artifactPath, loaded, file.size);
      progress.bytes(file.localPath, loaded, filesTotal, bytesTotal);
    },
    onFileDone: (outcome) => {
      if (outcome.status === 'uploaded') progress.file(outcome.file.localPath, outcome.file.artifactPath, outcome.bytes, outcome.bytes);
      progress.fileDone(outcome.file.localPath, outcome.bytes, filesTotal, bytesTotal, outcome.status !== 'uploaded');
    },
    onRetry: () => {
      retries++;
    },
  });
  // The files that finished are in the operation's log; a failed operation keeps it for its rerun.
  await ctx.resume?.release();
  const uploaded = outcomes.filter((o) => o.status === 'uploaded');
  const failed = outcomes.filter((o) => o.status !== 'uploaded');
  const reused = uploaded.reduce((n, o) => n + (o.bytesReused ?? 0), 0);
  const metrics = {
    filesPlanned: files.length,
    filesSent: uploaded.length,
    filesFailed: failed.length,
    bytesPlanned: bytesTotal,
    bytesSent: uploaded.reduce((n, o) => n + o.bytes, 0) - reused,
    filesResumed: resumed.length,
    bytesResumed: resumed.reduce((n, r) => n + r.file.size, 0) + reused,
    attempts: outcomes.reduce((n, o) => n + o.attempts, 0),
    retries,
    peakConcurrency,
  };
  // In plan order: resumed files where they were planned.
  const byFile = new Map<PlannedFile, UploadedFile>([
    // A resumed file carries the sha256 its earlier run recorded (the bytes sent then, of this same file).
    ...resumed.map((r): [PlannedFile, UploadedFile] => [r.file, { localPath: r.file.localPath, artifactPath: r.file.artifactPath, size: r.file.size, status: 'resumed', ...(r.sha256 ? { sha256: r.sha256 } : {}) }]),
    ...outcomes.map((o): [PlannedFile, UploadedFile] => [o.file, toUploadedFile(o)]),
  ]);
  const entries = files.map((f) => byFile.get(f)!);
  if (failed.length > 0) {
    // The first real failure explains more than the cancellations it caused.
    const first = failed.find((o) => o.status === 'failed') ?? failed[0]!;
    return {
      status: 'failed',
      reason: signal?.aborted === true ? 'aborted' : 'upload-failed',
      files: entries,
      metrics,
      verification: { status: 'not-run' },
      error: toUploaderError(first.error),
    };
  }
  const verified = ctx.verify ? await verifyTransferred(ctx, uploaded) : { status: 'uploaded' as const, verification: { status: 'not-run' as const } };
  // Files the store did not check by checksum were checked by the listing's size.
  if (verified.verification.status === 'verified') for (const entry of entries) if (entry.status === 'uploaded') entry.verified ??= 'size';
  // Done: the operation's journal records go (a failed verification keeps them: its rerun re-checks).
  if (verified.status === 'uploaded' && !options.keepRecords) await ctx.resume?.complete(files);
  return { files: entries, metrics, ...verified };
}

/**
 * Archive, then its manifest: the manifest records the archive's verification, so it can only
 * be written once that is known. When the archive fails (other than in verification), no
 * manifest is uploaded.
 *
 * @example
 * ```ts
 * const outcome = await transferArchive(ctx, { localPath: 'out/best.tar.gz', artifactPath: 'best.tar.gz', size }, manifest);
 * ```
 */
export async function transferArchive(
  ctx: TransferContext,
  archive: PlannedFile,
  manifest: CheckpointManifest | undefined,
  /** Where to write the manifest as uploaded (a staged archive's directory); @default a temp dir, removed after */
  manifestDir?: string,
): Promise<TransferOutcome> {
  // The archive's record stays until the manifest is up too: a run killed in between finds the
  // archive recorded, and sends only the manifest again.
  let first = await transferFiles(ctx, [archive], { keepRecords: manifest !== undefined });
  if (!manifest || (first.status === 'failed' && first.reason !== 'verification-failed')) return first;

  const location = `${ctx.target.artifactUri.replace(/\/+$/, '')}/${archive.artifactPath}`;
  // The bytes sent were hashed as they were read: they must be the archive the manifest describes.
  // Compared with `verify: false` too: the hash is already paid for, and a manifest matched to
  // the archive by its size alone (checked in operation.ts) could describe another archive of
  // that size, uploaded beside it as if it were this one's.
  const sent = first.files[0];
  const sha256 = first.status === 'uploaded' ? sent?.sha256 : undefined;
  const sha256Mismatch = sha256 !== undefined && sha256 !== manifest.archive.sha256;
  if (sha256Mismatch) {
    const mismatch: VerificationMismatch = { artifactPath: archive.artifactPath, expectedSize: manifest.archive.size, actualSize: sent!.size, reason: 'checksum' };
    first = {
      ...first,
      status: 'failed',
      reason: 'verification-failed',
      verification: { status: 'failed', mismatches: [mismatch] },
      error: toUploaderError(
        new VerificationError([mismatch], {
          hint: `The archive's sha256 is ${sha256}, its manifest says ${manifest.archive.sha256}: the archive changed after the manifest was written. Write both again (createCheckpointArchive), then upload.`,
        }),
      ),
    };
  }
  // Without `verify`, the manifest records the checksum comparison only when it failed (the only
  // check that ran then): a reader must not take it for the manifest of the archive beside it.
  const verification: ManifestVerification =
    !ctx.verify && !sha256Mismatch
      ? { status: 'not-run' }
      : {
          status: first.verification.status === 'verified' ? 'verified' : 'failed',
          verifiedAt: new Date().toISOString(),
          checks: !ctx.verify ? ['sha256'] : sha256 !== undefined ? ['size', 'sha256'] : ['size'],
          location,
          ...(sha256 !== undefined ? { sha256 } : {}),
          ...(ctx.verify && sent?.verified ? { storeVerified: sent.verified } : {}),
          ...(ctx.verify && sent?.checksum ? { checksum: sent.checksum } : {}),
          mismatches: first.verification.mismatches?.map(toManifestMismatch),
          error: first.status === 'failed' ? first.error?.message : undefined,
        };
  const uploadedManifest: CheckpointManifest = { ...manifest, verification };
  const work = manifestDir ?? (await makeTempDir('artifact-uploader-manifest-'));
  try {
    const localPath = join(work, manifestFileName(archive.artifactPath));
    await writeManifest(uploadedManifest, localPath);
    const size = (await stat(localPath)).size;
    const manifestArtifactPath = manifestArtifactPathOf(archive.artifactPath);
    // Progress follows the archive only: the manifest is a few KiB, sent while "verifying".
    const silent = new ProgressEmitter(undefined, 0, ctx.logger);
    const second = await transferFiles({ ...ctx, progress: silent }, [{ localPath, artifactPath: manifestArtifactPath, size }]);
    const failure = first.status === 'failed' ? first : second.status === 'failed' ? second : undefined;
    if (!failure) await ctx.resume?.complete([archive]);
    return {
      status: failure ? 'failed' : 'uploaded',
      reason: failure?.reason,
      files: [...first.files, ...second.files],
      metrics: {
        filesPlanned: first.metrics.filesPlanned + second.metrics.filesPlanned,
        filesSent: first.metrics.filesSent + second.metrics.filesSent,
        filesFailed: first.metrics.filesFailed + second.metrics.filesFailed,
        bytesPlanned: first.metrics.bytesPlanned + second.metrics.bytesPlanned,
        bytesSent: first.metrics.bytesSent + second.metrics.bytesSent,
        filesResumed: first.metrics.filesResumed + second.metrics.filesResumed,
        bytesResumed: first.metrics.bytesResumed + second.metrics.bytesResumed,
        attempts: first.metrics.attempts + second.metrics.attempts,
        retries: first.metrics.retries + second.metrics.retries,
      },
      verification: mergeVerification(first.verification, second.verification),
      error: failure?.error,
      manifest: uploadedManifest,
    };
  } finally {
    if (!manifestDir) await rm(work, { recursive: true, force: true });
  }
}

/**
 * The artifact path the manifest of the archive at `archivePath` is uploaded to: beside it.
 *
 * @example
 * ```ts
 * manifestArtifactPathOf('trials/7/best_trial_checkpoint.tar.gz'); // 'trials/7/best_trial_checkpoint.manifest.json'
 * ```
 */
export function manifestArtifactPathOf(archivePath: string): string {
  return posix.join(posix.dirname(archivePath), manifestFileName(archivePath)).replace(/^\.\//, '');
}

/**
 * Refuses, before anything is sent, an archive whose manifest would replace the manifest of
 * another archive in the same folder: `a.tar.gz` and `a.tgz` both have `a.manifest.json`, and
 * the second upload overwrote the first one's (two trials' archives in one folder, say). The
 * names stay as they are (runs hold them, docs describe them); the folder is listed once. A
 * store that cannot list (write-only credentials) is not checked: a warning says so. Called
 * before the archive is sent (for a directory, before it is built and staged).
 *
 * @throws {InvalidArgumentError} `artifactPath`, when another archive there has that manifest name.
 * @example
 * ```ts
 * await assertManifestNameFree(ctx, 'trials/7/best_trial_checkpoint.tar.gz');
 * ```
 */
export async function assertManifestNameFree(ctx: Pick<TransferContext, 'target' | 'signal' | 'logger'>, artifactPath: string): Promise<void> {
  const dir = posix.dirname(artifactPath);
  const manifestName = manifestFileName(artifactPath);
  let entries: ArtifactEntry[];
  try {
    entries = await ctx.target.store.list(dir === '.' ? undefined : dir, { signal: ctx.signal });
  } catch (error) {
    if (ctx.signal?.aborted) throw error;
    ctx.logger.warn(`Cannot list ${dir === '.' ? 'the run\'s artifact root' : dir} to check that no other archive there has the manifest name ${manifestName} (${(error as Error).message}); uploading anyway.`);
    return;
  }
  // Archives only: any other file (`model` beside `model.tar.gz`) has no manifest to replace.
  const other = entries.find((e) => !e.isDir && e.path !== artifactPath && ARCHIVE_SUFFIX.test(e.path) && manifestFileName(e.path) === manifestName);
  if (other) {
    throw new InvalidArgumentError(
      'artifactPath',
      `The manifest of ${artifactPath} would be ${posix.join(dir, manifestName)}, which is already the manifest name of ${other.path} in the same folder: uploading it would replace that archive's manifest. Nothing was uploaded.`,
      { hint: `Give the archive a name of its own in that folder (${manifestName.replace(/\.manifest\.json$/, '')} is taken), or upload it to another artifactPath.` },
    );
  }
}

/** What {@link transferDirectoryAsArchive} archives. */
export interface DirectoryArchive {
  /** The checked directory. */
  directory: string;
  /** Artifact path of the archive file. */
  artifactPath: string;
  filters: PathFilters;
  /** gzip level. @default DEFAULT_COMPRESSION_LEVEL */
  level: number | undefined;
}

/**
 * Archives a directory (tar.gz + manifest, default skip list applied), uploads it with
 * {@link transferArchive}, and removes the archive. With a journal, the archive is staged where
 * a rerun finds it (`archive-staging.ts`): an interrupted upload resumes with the same archive,
 * which is not built again while the directory is unchanged, and is removed once uploaded.
 * Without one, it is built in a temp directory, removed whatever happens.
 *
 * @example
 * ```ts
 * const outcome = await transferDirectoryAsArchive(ctx, { directory, artifactPath: 'best.tar.gz', filters, level: undefined });
 * ```
 */
export async function transferDirectoryAsArchive(ctx: TransferContext, archive: DirectoryArchive): Promise<TransferOutcome> {
  const { filters } = archive;
  // Before anything is built or staged: a refused name left a staged archive that every rerun
  // would build again for nothing.
  await assertManifestNameFree(ctx, archive.artifactPath);
  const claimed = await stageFor(ctx, archive);
  let stage = claimed?.dir;
  let work = stage ?? (await makeTempDir('artifact-uploader-archive-'));
  let uploaded = false;
  // Whether the work directory holds a complete archive and manifest (built now or by an earlier run).
  let archived = false;
  try {
    const name = posix.basename(archive.artifactPath);
    const build = () =>
      createCheckpointArchive(archive.directory, join(work, name), {
        ...archiveSelectionOf(filters),
        level: archive.level,
        signal: ctx.signal,
        // Every read chunk goes to the emitter, which throttles (and always sends the last).
        progressIntervalMs: 0,
        onProgress: (e) => {
          if (e.type === 'bytes') ctx.progress.archive(e.bytesDone, e.bytesTotal, e.filesDone, e.filesTotal);
        },
        // Staged: archive and manifest land as a pair, so a rerun finds both or neither.
        ...(stage ? { manifestPath: join(stage, manifestFileName(name)) } : {}),
      });
    ctx.progress.phase('archiving');
    let staged = stage && ctx.resume?.reuses ? await findStagedArchive(stage, name) : undefined;
    for (;;) {
      if (staged) ctx.logger.info(`Resuming with the archive an interrupted run built (${staged.archivePath}); the checkpoint directory is unchanged.`);
      const manifest = staged?.manifest ?? (await build().catch(async (error: unknown) => {
        // The journal's file system is full, the temp directory's may not be: a journal that
        // cannot be written costs the resume, not the upload (docs/resume.md). Once: a temp
        // directory that is full too fails with DISK_FULL naming it.
        if (!stage || !claimed || !(error instanceof DiskFullError)) throw error;
        ctx.logger.warn(`No space left for the archive in the resume journal (${error.errno} writing ${error.path}); it is built in a temp directory instead, and cannot be resumed.`);
        await rm(stage, { recursive: true, force: true }).catch(() => undefined);
        await claimed.claim.release();
        await rmdir(dirname(stage)).catch(() => undefined); // `archives/`, when it was the last one
        stage = undefined;
        work = await makeTempDir('artifact-uploader-archive-');
        return build();
      }));
      archived = true;
      const outcome = await transferArchive(ctx, { localPath: join(work, name), artifactPath: archive.artifactPath, size: manifest.archive.size }, manifest, stage && join(stage, 'upload'));
      uploaded = outcome.status === 'uploaded';
      // A staged archive is found by its size only: one whose bytes changed on disk since (a bad
      // sector, a tool rewriting it) failed its manifest's checksum on every rerun, kept each
      // time for the next, with a hint to rebuild it that no caller could follow. The directory
      // is unchanged (the staging key says so): build the archive again, once, and send that.
      if (staged && !uploaded && archiveChecksumFailed(outcome, archive.artifactPath)) {
        ctx.logger.warn(`The archive an interrupted run staged (${staged.archivePath}) no longer matches its manifest (its bytes changed on disk); building it again from ${archive.directory}.`);
        staged = undefined;
        archived = false;
        ctx.progress.phase('archiving');
        continue;
      }
      return outcome;
    }
  } finally {
    // A staged archive stays for the rerun until it is uploaded; its lock goes after it. One whose
    // archiving failed (aborted, a file changed, a bad input) holds nothing a rerun could use
    // (createCheckpointArchive removes its temp files): it goes too, or `resume list` shows an
    // incomplete archive for a week.
    const keep = stage !== undefined && archived && !uploaded;
    if (!keep) await rm(work, { recursive: true, force: true }).catch(() => undefined);
    await claimed?.claim.release();
    if (stage && !keep) await rmdir(dirname(stage)).catch(() => undefined); // `archives/`, when it was the last one
  }
}

/** Whether an archive's upload failed because the bytes sent are not those its manifest hashed. */
function archiveChecksumFailed(outcome: TransferOutcome, artifactPath: string): boolean {
  return outcome.reason === 'verification-failed' && (outcome.verification.mismatches ?? []).some((m) => m.artifactPath === artifactPath && m.reason === 'checksum');
}

/**
 * The staging directory of a directory archive (`archive-staging.ts`), claimed for this
 * process; or `undefined` without a journal, when it cannot be used, or when another live
 * process holds it (the same archive to the same place at once): then the archive goes to a
 * private temp directory, as without resume. Old staged archives are swept on the way.
 */
async function stageFor(ctx: TransferContext, archive: DirectoryArchive): Promise<{ dir: string; claim: StageClaim } | undefined> {
  const journalDir = ctx.resume?.journalDir;
  if (!journalDir) return undefined;
  try {
    await removeStagedArchives(journalDir, { olderThanMs: DEFAULT_JOURNAL_MAX_AGE_MS });
    const { target } = ctx;
    const key = {
      // Written in the staging directory (for `resume list`): without credentials.
      target: journalTarget(target.trackingUri),
      runId: target.runId,
      artifactPath: archive.artifactPath,
      directory: archive.directory,
      level: archive.level,
      include: archive.filters.include,
      exclude: archive.filters.exclude,
    };
    const dir = await stagedArchiveDir(journalDir, key);
    const claim = await claimStagedArchive(dir, key);
    if (claim) return { dir, claim };
    ctx.logger.info(`Another running process is archiving ${archive.directory} to the same place (it holds ${dir}); this archive is built in a temp directory and cannot be resumed.`);
    return undefined;
  } catch (error) {
    ctx.logger.warn(`Cannot stage the archive in the resume journal (${(error as Error).message}); it is built in a temp directory and cannot be resumed.`);
    return undefined;
  }
}

function toUploadedFile(outcome: FileUploadOutcome): UploadedFile {
  return {
    localPath: outcome.file.localPath,
    artifactPath: outcome.file.artifactPath,
    size: outcome.status === 'uploaded' ? outcome.bytes : outcome.file.size,
    status: outcome.status,
    attempts: outcome.attempts,
    multipart: outcome.multipart,
    ...(outcome.sha256 ? { sha256: outcome.sha256 } : {}),
    ...(outcome.verified ? { verified: outcome.verified } : {}),
    ...(outcome.checksum ? { checksum: outcome.checksum } : {}),
    error: outcome.error === undefined ? undefined : outcome.error instanceof Error ? outcome.error.message : String(outcome.error),
  };
}

function toManifestMismatch(m: VerificationMismatch) {
  return { path: m.artifactPath, reason: m.reason, expectedSize: m.expectedSize, actualSize: m.actualSize };
}

function mergeVerification(a: UploadVerification, b: UploadVerification): UploadVerification {
  if (a.status === 'not-run' && b.status === 'not-run') return { status: 'not-run' };
  const mismatches = [...(a.mismatches ?? []), ...(b.mismatches ?? [])];
  if (a.status === 'failed' || b.status === 'failed') return { status: 'failed', mismatches: mismatches.length > 0 ? mismatches : undefined };
  return { status: 'verified' };
}
