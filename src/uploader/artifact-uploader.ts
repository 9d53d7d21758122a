/**
 * `ArtifactUploader`: gate (env, config, run) → plan (files, sizes, skips and why) → upload
 * (bounded concurrency, largest first) → verify → {@link UploadResult}.
 *
 * Every method runs the same pipeline:
 *
 * 1. local checks, which throw at once whatever `onError` says (programmer errors): the path
 *    exists and is a file or a directory as the method expects, the kind is the stage's;
 * 2. `MLFLOW_SKIP_ARTIFACT_LOGGING` → skipped, before the config is even read;
 * 3. the config loads and the input plans cleanly (valid names and artifact paths, no
 *    escaping symlinks), both throwing on bad input;
 * 4. the other gates, in order: the tracking config → empty → dry run → a run id; each ends
 *    the operation as `skipped` with its reason;
 * 5. the run's target, looked up once per run (a failed lookup is a `failed` result);
 * 6. uploads in flight elsewhere in the process with the same identity are joined (see `dedupe.ts`);
 * 7. the upload, then verification when on.
 *
 * @module
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, posix } from 'node:path';
import { createHash } from 'node:crypto';
import {
  AbortedError,
  ArtifactUploaderError,
  InvalidArgumentError,
  isArtifactUploaderError,
  VerificationError,
  type VerificationMismatch,
} from '../core/errors.js';
import { redactingLogger, silentLogger, type Logger } from '../core/logger.js';
import { combineSignals } from '../core/retry.js';
import { createCheckpointArchive } from '../archive/create-checkpoint-archive.js';
import { createGlobMatcher } from '../core/glob.js';
import { manifestFileName, readManifest, writeManifest, type CheckpointManifest, type ManifestVerification } from '../archive/manifest.js';
import { shouldSkipFile } from '../archive/should-skip-file.js';
import { assertArtifactKind, resolveTrackingConfig } from '../config/load.js';
import type { ArtifactKind, StageName, TrackingConfig } from '../config/schema.js';
import { resolveMlflowRunId } from '../run/run-context.js';
import type { PlannedFile } from '../stores/plan.js';
import { uploadPlannedFiles, type FileUploadOutcome } from '../stores/upload-many.js';
import { dedupeInFlight, identityKey, type LocalFileIdentity } from './dedupe.js';
import { artifactLoggingDisabledByEnv, configGate, NO_RUN_WARNING, ownConnection, resolveUploadTarget, type UploadTarget } from './gate.js';
import type { MlflowConnection } from '../mlflow/connection.js';
import { checkArtifactPath, checkLocalPath, fileIdentities, globList, planFiles, planLocalDirectory, type LocalPlan } from './local-plan.js';
import {
  DEFAULT_ARCHIVE_NAME,
  DEFAULT_KINDS,
  resolveUploaderOptions,
  type ArchiveAndUploadCheckpointCallOptions,
  type ArtifactUploaderOptions,
  type OperationOptions,
  type ResolvedUploaderOptions,
  type UploadCheckpointArchiveCallOptions,
  type UploadCheckpointCallOptions,
  type UploadDirectoryCallOptions,
  type UploadFileCallOptions,
  type UploadFilesCallOptions,
} from './options.js';
import { ProgressEmitter } from './progress.js';
import { verifyUploads } from './verify.js';
import {
  emptyMetrics,
  StatsAccumulator,
  throughput,
  type UploadedFile,
  type UploadFailureReason,
  type UploaderStats,
  type UploadMetrics,
  type UploadResult,
  type UploadSkipReason,
  type UploadVerification,
} from './result.js';

/** One operation, as the pipeline sees it. */
interface Operation {
  method: string;
  kind?: ArtifactKind;
  /** False when the caller asked to ignore the config switch (`skipIfDisabled: false`). */
  honourConfig: boolean;
  options: OperationOptions;
  /** Default of `verify` for this method. */
  verifyByDefault: boolean;
  /** Checks of the local path that need no config (exists, file or directory); throws programmer errors. */
  precheck(): Promise<unknown>;
  /** Planning (throws programmer errors: bad names, escaping symlinks, a manifest of another archive). */
  plan(config: TrackingConfig): Promise<PlannedOperation>;
}

interface PlannedOperation {
  /** Destination of the operation, for the result. */
  artifactPath: string;
  local: LocalPlan;
  /** The files as a dry run reports them (the plan, or the archive a directory becomes). */
  shown: PlannedFile[];
  /** What, besides the files' identities, changes the outcome (options), for deduplication. */
  identity: string;
  /** The transfer; the default uploads `local.files`. */
  transfer?: (ctx: TransferContext) => Promise<TransferOutcome>;
}

interface TransferContext {
  target: UploadTarget;
  progress: ProgressEmitter;
  signal: AbortSignal | undefined;
  verify: boolean;
  concurrency: number;
}

interface TransferOutcome {
  status: 'uploaded' | 'failed';
  reason?: UploadFailureReason;
  files: UploadedFile[];
  metrics: Omit<UploadMetrics, 'durationMs' | 'throughputBytesPerSec' | 'filesSkipped' | 'bytesSkipped'>;
  verification: UploadVerification;
  error?: ArtifactUploaderError;
  manifest?: CheckpointManifest;
}

/**
 * Uploads a pipeline stage's artifacts to an MLflow run, following the stage's section of the
 * tracking config. Construct it once per stage (and run), call its methods, then `close()`.
 *
 * Failures after retries come back as `failed` results (`onError: 'throw'` throws them);
 * programmer errors throw at once: `LocalPathError` (missing path, file where a directory is
 * expected and vice versa, bad names, escaping symlinks), `ConfigError` (invalid config),
 * `InvalidArgumentError` (unknown stage or kind, bad options).
 *
 * @example
 * ```ts
 * import { ArtifactUploader } from 'artifact-uploader';
 *
 * const uploader = new ArtifactUploader({ stage: 'training', runId: process.env.RUN_ID });
 * const result = await uploader.uploadCheckpoint('out/checkpoint-500');
 * console.log(result.status, result.reason ?? '', `${result.metrics.bytesSent} bytes`);
 * await uploader.close();
 * ```
 */
export class ArtifactUploader {
  /** The stage this uploader works for. */
  readonly stage: StageName;
  private readonly opts: ResolvedUploaderOptions;
  private readonly logger: Logger;
  private configPromise?: Promise<TrackingConfig>;
  /** One lookup per run (a `withRun` context can change the run between calls), kept once it succeeds. */
  private readonly targets = new Map<string, Promise<UploadTarget>>();
  /** The connection this uploader made (and closes), made at first need. */
  private connection?: MlflowConnection;
  private readonly accumulator = new StatsAccumulator();
  private readonly pending = new Set<Promise<unknown>>();
  private closed = false;
  private warnedNoRun = false;

  /**
   * @throws {InvalidArgumentError} for an unknown stage or invalid options.
   */
  constructor(options: ArtifactUploaderOptions) {
    this.opts = resolveUploaderOptions(options);
    this.stage = this.opts.stage;
    this.logger = redactingLogger(this.opts.logger ?? silentLogger);
  }

  /**
   * Uploads one file to `<artifactPath>/<file name>` (MLflow's `log_artifact`).
   *
   * @throws {LocalPathError} when `path` is missing or not a file.
   * @example
   * ```ts
   * await uploader.uploadFile('out/metrics.json', { kind: 'metrics' }); // → metrics/metrics.json
   * ```
   */
  uploadFile(path: string, options: UploadFileCallOptions = {}): Promise<UploadResult> {
    return this.uploadFilesAs('uploadFile', [path], options);
  }

  /**
   * Uploads several files as one operation (one result, one verification): each to
   * `<artifactPath>/<file name>`, or to its path relative to `baseDir`.
   *
   * @throws {LocalPathError} when a path is missing or not a file.
   * @example
   * ```ts
   * await uploader.uploadFiles(['out/model.onnx', 'out/model.onnx.data'], { artifactPath: 'onnx' });
   * ```
   */
  uploadFiles(paths: readonly string[], options: UploadFilesCallOptions = {}): Promise<UploadResult> {
    if (!Array.isArray(paths)) return Promise.reject(new InvalidArgumentError('paths', 'uploadFiles() needs an array of file paths.'));
    return this.uploadFilesAs('uploadFiles', paths, options);
  }

  /**
   * Uploads a directory's files under `artifactPath` (MLflow's `log_artifacts`), in parallel
   * under the concurrency limit, largest first. Include/exclude globs combine with the stage's
   * config: the option's `include` replaces the config's, `exclude` adds to it.
   *
   * @throws {LocalPathError} when `dir` is missing or not a directory, or holds names MLflow
   *   cannot store, dangling or escaping symlinks, unreadable files (nothing is sent then).
   * @example
   * ```ts
   * await uploader.uploadDirectory('out/eval', { artifactPath: 'eval', exclude: ['*.tmp'] });
   * ```
   */
  uploadDirectory(dir: string, options: UploadDirectoryCallOptions = {}): Promise<UploadResult> {
    return this.directoryAs('uploadDirectory', dir, options, options.kind, true, options.skipDefaultFiles ?? false);
  }

  /**
   * Uploads a checkpoint directory as it is (file by file, not archived) under the kind's
   * artifact path (`checkpoint` for training). Files on the default skip list (temporary
   * files, caches, lock files: `shouldSkipFile`) are left out. The kind is the stage's
   * checkpoint kind (see `DEFAULT_KINDS`); when the config disables it the result is
   * `skipped` / `disabled-by-config`, unless `skipIfDisabled: false`.
   *
   * @example
   * ```ts
   * const result = await uploader.uploadCheckpoint('out/checkpoint-500');
   * if (result.reason === 'disabled-by-config') console.log(`disabled by ${result.disabledBy}`);
   * ```
   */
  uploadCheckpoint(dir: string, options: UploadCheckpointCallOptions = {}): Promise<UploadResult> {
    const kind = options.kind ?? DEFAULT_KINDS.checkpoint[this.stage];
    return this.directoryAs('uploadCheckpoint', dir, options, kind, options.skipIfDisabled ?? true, options.skipDefaultFiles ?? true);
  }

  /**
   * Uploads a checkpoint archive (a `.tar.gz` from `createCheckpointArchive`) and its manifest
   * beside it (`<name>.manifest.json`). Verification is on by default. The order is:
   * archive → verify the archive → manifest, with the archive's verification outcome written
   * into it → verify the manifest. So a manifest in the run always says whether the archive
   * next to it was checked. When the archive fails, no manifest is uploaded.
   *
   * @throws {LocalPathError} when `archivePath` is missing or not a file, or the manifest path is missing.
   * @throws {InvalidArgumentError} when the manifest describes another archive (its size differs).
   * @example
   * ```ts
   * const manifest = await createCheckpointArchive('out/trial-7', 'out/best.tar.gz');
   * const result = await uploader.uploadCheckpointArchive('out/best.tar.gz', { manifest });
   * result.manifest?.verification.status; // 'verified'
   * ```
   */
  uploadCheckpointArchive(archivePath: string, options: UploadCheckpointArchiveCallOptions = {}): Promise<UploadResult> {
    const kind = options.kind ?? DEFAULT_KINDS.archive[this.stage];
    return this.run({
      method: 'uploadCheckpointArchive',
      kind,
      honourConfig: options.skipIfDisabled ?? true,
      options,
      verifyByDefault: true,
      precheck: () => checkLocalPath(archivePath, 'file', 'uploadCheckpointArchive'),
      plan: async (config) => {
        const localPath = await checkLocalPath(archivePath, 'file', 'uploadCheckpointArchive');
        const artifactPath = checkArtifactPath(
          options.artifactPath ?? archiveDefaultPath(config, this.stage, kind, basename(localPath)),
          'artifactPath',
          { allowEmpty: false },
        );
        const size = (await stat(localPath)).size;
        const manifest = await loadManifest(options.manifest, localPath, size);
        const archive: PlannedFile = { localPath, artifactPath, size };
        return {
          artifactPath,
          local: { files: [archive], skipped: [], skippedBytes: 0, skippedFiles: 0 },
          shown: [archive],
          identity: `uploadCheckpointArchive:${manifest ? sha256(JSON.stringify(manifest)) : 'no-manifest'}`,
          transfer: (ctx) => this.transferArchive(ctx, archive, manifest),
        };
      },
    });
  }

  /**
   * Archives a checkpoint directory (`createCheckpointArchive`: tar.gz + manifest, default skip
   * list applied, in a temp directory removed afterwards) and uploads it like
   * {@link uploadCheckpointArchive}. Progress goes `scanning` → `archiving` → `uploading` →
   * `verifying` → `done`. Nothing is archived when the operation is skipped.
   *
   * @throws {LocalPathError} when `dir` is missing or not a directory, or holds escaping symlinks.
   * @example
   * ```ts
   * const result = await uploader.archiveAndUploadCheckpoint('runs/trial-7/checkpoint');
   * result.artifactPath; // 'best_trial_checkpoint.tar.gz' (hpo stage)
   * ```
   */
  archiveAndUploadCheckpoint(dir: string, options: ArchiveAndUploadCheckpointCallOptions = {}): Promise<UploadResult> {
    const kind = options.kind ?? DEFAULT_KINDS.archive[this.stage];
    return this.run({
      method: 'archiveAndUploadCheckpoint',
      kind,
      honourConfig: options.skipIfDisabled ?? true,
      options,
      verifyByDefault: true,
      precheck: () => checkLocalPath(dir, 'directory', 'archiveAndUploadCheckpoint'),
      plan: async (config) => {
        const directory = await checkLocalPath(dir, 'directory', 'archiveAndUploadCheckpoint');
        const artifactPath = checkArtifactPath(
          options.artifactPath ?? archiveDefaultPath(config, this.stage, kind, DEFAULT_ARCHIVE_NAME),
          'artifactPath',
          { allowEmpty: false },
        );
        const include = options.include !== undefined ? globList(options.include, 'include') : config[this.stage].include;
        const exclude = [...config[this.stage].exclude, ...globList(options.exclude, 'exclude')];
        const local = await planLocalDirectory(directory, { artifactPath: '', include, exclude, skipDefaultFiles: true });
        const totalBytes = local.files.reduce((n, f) => n + f.size, 0);
        return {
          artifactPath,
          local,
          // What a dry run shows: the archive this directory becomes (its size before compression).
          shown: [{ localPath: directory, artifactPath, size: totalBytes }],
          identity: `archiveAndUploadCheckpoint:${JSON.stringify([include, exclude, options.level ?? null])}`,
          transfer: async (ctx) => {
            const work = await mkdtemp(join(tmpdir(), 'artifact-uploader-archive-'));
            try {
              ctx.progress.phase('archiving');
              const included = createGlobMatcher(include);
              const out = join(work, posix.basename(artifactPath));
              const manifest = await createCheckpointArchive(directory, out, {
                exclude,
                // Only with an include list: the default filter records its skips as `default-skip-list`.
                ...(include.length > 0
                  ? { filter: (path: string, entry: { type: string }) => !shouldSkipFile(path) && (entry.type === 'directory' || included(path) !== undefined) }
                  : {}),
                ...(options.level !== undefined ? { level: options.level } : {}),
                ...(ctx.signal ? { signal: ctx.signal } : {}),
                // Every read chunk goes to the emitter, which throttles (and always sends the last).
                progressIntervalMs: 0,
                onProgress: (e) => {
                  if (e.type === 'bytes') ctx.progress.archive(e.bytesDone, e.bytesTotal, e.filesDone, e.filesTotal);
                },
              });
              return await this.transferArchive(ctx, { localPath: out, artifactPath, size: manifest.archive.size }, manifest);
            } finally {
              await rm(work, { recursive: true, force: true });
            }
          },
        };
      },
    });
  }

  /**
   * The tracking config this uploader follows (loaded once: file or `config` option, defaults,
   * env overrides).
   *
   * @throws {ConfigError} when the config is invalid.
   * @example
   * ```ts
   * const config = await uploader.loadConfig();
   * config.training.checkpoint.artifactPath; // 'checkpoint'
   * ```
   */
  loadConfig(): Promise<TrackingConfig> {
    this.configPromise ??= resolveTrackingConfig({
      ...(this.opts.configDir !== undefined ? { configDir: this.opts.configDir } : {}),
      ...(this.opts.config !== undefined ? { config: this.opts.config } : {}),
      env: this.opts.env,
    }).then((resolved) => resolved.config);
    return this.configPromise;
  }

  /**
   * Metrics summed over every operation this uploader finished, plus how they ended.
   * Deduplicated operations are counted as such, not their bytes (the first caller sent them).
   *
   * @example
   * ```ts
   * const { filesSent, bytesSent, retries, failed } = uploader.stats();
   * ```
   */
  stats(): UploaderStats {
    return this.accumulator.snapshot();
  }

  /**
   * Waits for the operations in flight, then releases the connections this uploader opened.
   * Calls after `close()` throw `InvalidArgumentError`.
   *
   * @example
   * ```ts
   * try { await uploader.uploadFile('a.txt'); } finally { await uploader.close(); }
   * ```
   */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.pending]);
    this.targets.clear();
    if (this.connection?.kind === 'rest') await this.connection.http.close().catch(() => undefined);
    this.connection = undefined;
  }

  // ───────────────────────────── operations ─────────────────────────────

  private uploadFilesAs(method: string, paths: readonly string[], options: UploadFilesCallOptions): Promise<UploadResult> {
    return this.run({
      method,
      kind: options.kind,
      honourConfig: true,
      options,
      verifyByDefault: false,
      precheck: async () => {
        for (const path of paths) await checkLocalPath(path, 'file', method);
        if (options.baseDir !== undefined) await checkLocalPath(options.baseDir, 'directory', method);
      },
      plan: async (config) => {
        const dir = this.destination(config, options.kind, options.artifactPath);
        const local = await planFiles(paths, dir, method, options.baseDir);
        const artifactPath = method === 'uploadFile' ? local.files[0]!.artifactPath : dir;
        return { artifactPath, local, shown: local.files, identity: method };
      },
    });
  }

  private directoryAs(
    method: string,
    dir: string,
    options: UploadDirectoryCallOptions | UploadCheckpointCallOptions,
    kind: ArtifactKind | undefined,
    honourConfig: boolean,
    skipDefaultFiles: boolean,
  ): Promise<UploadResult> {
    return this.run({
      method,
      kind,
      honourConfig,
      options,
      verifyByDefault: false,
      precheck: () => checkLocalPath(dir, 'directory', method),
      plan: async (config) => {
        const directory = await checkLocalPath(dir, 'directory', method);
        const artifactPath = this.destination(config, kind, options.artifactPath);
        const include = options.include !== undefined ? globList(options.include, 'include') : config[this.stage].include;
        const exclude = [...config[this.stage].exclude, ...globList(options.exclude, 'exclude')];
        const local = await planLocalDirectory(directory, { artifactPath, include, exclude, skipDefaultFiles });
        return { artifactPath, local, shown: local.files, identity: method };
      },
    });
  }

  /** The artifact directory of a call: the option, else the kind's path, else the root. */
  private destination(config: TrackingConfig, kind: ArtifactKind | undefined, option: string | undefined): string {
    if (option !== undefined) return checkArtifactPath(option, 'artifactPath');
    if (kind === undefined) return '';
    return (config[this.stage] as unknown as Record<string, { artifactPath: string }>)[kind]!.artifactPath;
  }

  // ───────────────────────────── the pipeline ─────────────────────────────

  private run(operation: Operation): Promise<UploadResult> {
    if (this.closed) {
      return Promise.reject(
        new InvalidArgumentError('uploader', `${operation.method}() was called on a closed ArtifactUploader.`, { hint: 'Create a new uploader.' }),
      );
    }
    const promise = this.execute(operation).then((result) => {
      this.accumulator.add(result);
      this.logResult(operation.method, result);
      if (result.status === 'failed' && this.opts.onError === 'throw' && result.error) throw result.error;
      return result;
    });
    this.pending.add(promise);
    const forget = () => this.pending.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  private async execute(operation: Operation): Promise<UploadResult> {
    const started = performance.now();
    if (operation.kind !== undefined) assertArtifactKind(this.stage, operation.kind);
    const signal = combineSignals(this.opts.signal, operation.options.signal);
    const progress = new ProgressEmitter(this.opts.onProgress, this.opts.progressIntervalMs, this.logger);
    const verify = operation.options.verify ?? this.opts.verify ?? operation.verifyByDefault;
    const env = this.opts.env;

    progress.phase('scanning');
    await operation.precheck();
    // Before the config is even loaded: MLflow's own kill switch stops everything, as documented
    // in docs/configuration.md.
    if (artifactLoggingDisabledByEnv(env)) {
      progress.phase('done');
      const durationMs = performance.now() - started;
      return {
        stage: this.stage,
        ...(operation.kind !== undefined ? { kind: operation.kind } : {}),
        status: 'skipped',
        reason: 'disabled-by-env',
        files: [],
        skippedFiles: [],
        metrics: { ...emptyMetrics(), durationMs },
        durationMs,
      };
    }
    const config = await this.loadConfig();
    const planned = await operation.plan(config);
    const { local } = planned;
    const base = {
      stage: this.stage,
      ...(operation.kind !== undefined ? { kind: operation.kind } : {}),
      artifactPath: planned.artifactPath,
      skippedFiles: local.skipped,
    };
    const skip = (reason: UploadSkipReason, extra: Partial<UploadResult> = {}): UploadResult => {
      progress.phase('done');
      const durationMs = performance.now() - started;
      const plannedBytes = planned.shown.reduce((n, f) => n + f.size, 0);
      return {
        ...base,
        status: 'skipped',
        reason,
        files: planned.shown.map((f) => ({ localPath: f.localPath, artifactPath: f.artifactPath, size: f.size, status: 'planned' })),
        metrics: {
          ...emptyMetrics(),
          filesPlanned: planned.shown.length,
          bytesPlanned: plannedBytes,
          filesSkipped: local.skippedFiles + planned.shown.length,
          bytesSkipped: local.skippedBytes + plannedBytes,
          durationMs,
        },
        durationMs,
        ...extra,
      };
    };

    const gate = configGate(config, this.stage, operation.kind);
    if (!gate.enabled && operation.honourConfig) return skip('disabled-by-config', gate.disabledBy ? { disabledBy: gate.disabledBy } : {});
    if (local.files.length === 0) return skip('empty');
    if (this.opts.dryRun) {
      // Local only: the id (when there is one) comes from the option, the active run or the env.
      const ref = resolveMlflowRunId(this.opts.runId, { env });
      return skip('dry-run', ref ? { runId: ref.runId } : {});
    }

    // Taken before the first await on the network, so that of two identical calls the first
    // to reach the dedupe map is also the first caller.
    const identities = await fileIdentities(local.files);
    const aborted = () => new AbortedError('The upload was aborted before it started.', { cause: signal?.reason });
    if (signal?.aborted) return this.failedBeforeUpload(base, planned, 'aborted', aborted(), started, progress);
    const resolved = await this.target();
    if ('noRun' in resolved) return skip('no-run');
    if ('error' in resolved) {
      if (signal?.aborted) return this.failedBeforeUpload(base, planned, 'aborted', aborted(), started, progress);
      return this.failedBeforeUpload(base, planned, 'run-unavailable', resolved.error, started, progress);
    }
    const { target } = resolved;
    if (signal?.aborted) return this.failedBeforeUpload(base, planned, 'aborted', aborted(), started, progress, target);

    const key = identityKey({
      trackingUri: target.trackingUri,
      runId: target.runId,
      artifactUri: target.artifactUri,
      operation: `${planned.identity}:verify=${verify}`,
      artifactPath: planned.artifactPath,
      files: identities satisfies LocalFileIdentity[],
    });
    let deduped: { value: UploadResult; joined: boolean };
    try {
      deduped = await dedupeInFlight(key, async (): Promise<UploadResult> => {
        const concurrency = this.opts.concurrency ?? config[this.stage].concurrency;
        const ctx: TransferContext = { target, progress, signal, verify, concurrency };
        let outcome: TransferOutcome;
        try {
          outcome = await (planned.transfer ?? ((c: TransferContext) => this.transferFiles(c, local.files)))(ctx);
        } catch (error) {
          // Archiving errors about the local side are programmer errors for the first caller too.
          if (isArtifactUploaderError(error) && (error.name === 'LocalPathError' || error.name === 'InvalidArgumentError')) throw error;
          return this.failedBeforeUpload(base, planned, signal?.aborted ? 'aborted' : 'upload-failed', error, started, progress, target);
        }
        progress.phase('done');
        const durationMs = performance.now() - started;
        return {
          ...base,
          status: outcome.status,
          ...(outcome.reason ? { reason: outcome.reason } : {}),
          runId: target.runId,
          artifactUri: target.artifactUri,
          files: outcome.files,
          metrics: {
            ...outcome.metrics,
            filesSkipped: local.skippedFiles,
            bytesSkipped: local.skippedBytes,
            durationMs,
            throughputBytesPerSec: throughput(outcome.metrics.bytesSent, durationMs),
          },
          verification: outcome.verification,
          ...(outcome.error ? { error: outcome.error } : {}),
          ...(outcome.manifest ? { manifest: outcome.manifest } : {}),
          durationMs,
        };
      }, signal ? { signal } : {});
    } catch (error) {
      // Only a caller that joined another's upload can be stopped here (by its own signal).
      if (error instanceof AbortedError && signal?.aborted) return this.failedBeforeUpload(base, planned, 'aborted', error, started, progress, target);
      throw error;
    }
    const { value, joined } = deduped;
    if (!joined) return value;
    progress.phase('done');
    return { ...value, deduplicated: true };
  }

  /**
   * The target of the run this call resolves to (option, else active run, else
   * `MLFLOW_RUN_ID`): looked up once per run, then reused; a failed lookup is retried by the
   * next call. Lookup failures are returned, not thrown.
   */
  private async target(): Promise<{ target: UploadTarget } | { noRun: true } | { error: unknown }> {
    // A malformed id (option or MLFLOW_RUN_ID) throws here: a programmer error.
    const ref = resolveMlflowRunId(this.opts.runId, { env: this.opts.env });
    if (!ref) {
      if (!this.warnedNoRun) {
        this.warnedNoRun = true;
        this.logger.warn(NO_RUN_WARNING);
      }
      return { noRun: true };
    }
    // An active run started with its own tracking URI is logged to there, unless the uploader names one.
    const active = this.opts.trackingUri === undefined ? ref.run?.connection : undefined;
    const key = `${ref.runId}\n${active ? active.displayUri : ''}`;
    let promise = this.targets.get(key);
    if (!promise) {
      promise = (async () => {
        const connection = active ?? (this.connection ??= ownConnection({ ...this.opts, logger: this.logger }));
        return resolveUploadTarget({
          runId: ref.runId,
          source: ref.source,
          connection,
          ...(active && ref.run?.client ? { client: ref.run.client } : {}),
          logger: this.logger,
          env: this.opts.env,
          ...(this.opts.multipart ? { multipart: this.opts.multipart } : {}),
          ...(this.opts.s3 ? { s3: this.opts.s3 } : {}),
          ...(this.opts.resolveStore ? { resolveStore: this.opts.resolveStore } : {}),
          ...(this.opts.signal ? { signal: this.opts.signal } : {}),
        });
      })();
      const settled = promise;
      this.targets.set(key, settled);
      settled.catch(() => {
        if (this.targets.get(key) === settled) this.targets.delete(key);
      });
    }
    try {
      return { target: await promise };
    } catch (error) {
      return { error };
    }
  }

  /** A `failed` result for an operation that sent nothing (or whose transfer threw). */
  private failedBeforeUpload(
    base: Pick<UploadResult, 'stage' | 'kind' | 'artifactPath' | 'skippedFiles'>,
    planned: PlannedOperation,
    reason: UploadFailureReason,
    error: unknown,
    started: number,
    progress: ProgressEmitter,
    target?: UploadTarget,
  ): UploadResult {
    progress.phase('done');
    const durationMs = performance.now() - started;
    const bytesPlanned = planned.shown.reduce((n, f) => n + f.size, 0);
    return {
      ...base,
      status: 'failed',
      reason,
      ...(target ? { runId: target.runId, artifactUri: target.artifactUri } : {}),
      files: planned.shown.map((f) => ({ localPath: f.localPath, artifactPath: f.artifactPath, size: f.size, status: 'cancelled' as const })),
      metrics: {
        ...emptyMetrics(),
        filesPlanned: planned.shown.length,
        bytesPlanned,
        filesFailed: planned.shown.length,
        filesSkipped: planned.local.skippedFiles,
        bytesSkipped: planned.local.skippedBytes,
        durationMs,
      },
      verification: { status: 'not-run' },
      error: toUploaderError(error),
      durationMs,
    };
  }

  /** Uploads files under the concurrency limit with progress, then verifies them when asked. */
  private async transferFiles(ctx: TransferContext, files: readonly PlannedFile[]): Promise<TransferOutcome> {
    const { progress, signal } = ctx;
    const filesTotal = files.length;
    const bytesTotal = files.reduce((n, f) => n + f.size, 0);
    let retries = 0;
    progress.phase('uploading');
    const outcomes = await uploadPlannedFiles(ctx.target.store, { files: [...files] }, {
      concurrency: ctx.concurrency,
      ...(signal ? { signal } : {}),
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
    const uploaded = outcomes.filter((o) => o.status === 'uploaded');
    const failed = outcomes.filter((o) => o.status !== 'uploaded');
    const metrics = {
      filesPlanned: files.length,
      filesSent: uploaded.length,
      filesFailed: failed.length,
      bytesPlanned: files.reduce((n, f) => n + f.size, 0),
      bytesSent: uploaded.reduce((n, o) => n + o.bytes, 0),
      attempts: outcomes.reduce((n, o) => n + o.attempts, 0),
      retries,
    };
    const entries = outcomes.map(toUploadedFile);
    if (failed.length > 0) {
      // The first real failure explains more than the cancellations it caused.
      const first = failed.find((o) => o.status === 'failed') ?? failed[0]!;
      const aborted = signal?.aborted === true;
      return {
        status: 'failed',
        reason: aborted ? 'aborted' : 'upload-failed',
        files: entries,
        metrics,
        verification: { status: 'not-run' },
        error: toUploaderError(first.error),
      };
    }
    if (!ctx.verify) return { status: 'uploaded', files: entries, metrics, verification: { status: 'not-run' } };
    progress.phase('verifying');
    try {
      const mismatches = await verifyUploads(ctx.target.store, uploaded.map((o) => ({ artifactPath: o.file.artifactPath, size: o.bytes })), signal ? { signal } : {});
      if (mismatches.length === 0) return { status: 'uploaded', files: entries, metrics, verification: { status: 'verified' } };
      return {
        status: 'failed',
        reason: 'verification-failed',
        files: entries,
        metrics,
        verification: { status: 'failed', mismatches },
        error: new VerificationError(mismatches),
      };
    } catch (error) {
      return {
        status: 'failed',
        reason: signal?.aborted ? 'aborted' : 'verification-failed',
        files: entries,
        metrics,
        verification: { status: 'failed' },
        error: toUploaderError(error, ' (while listing the uploaded files to verify them)'),
      };
    }
  }

  /**
   * Archive, then its manifest: the manifest records the archive's verification, so it can
   * only be written once that is known.
   */
  private async transferArchive(ctx: TransferContext, archive: PlannedFile, manifest: CheckpointManifest | undefined): Promise<TransferOutcome> {
    const first = await this.transferFiles(ctx, [archive]);
    if (!manifest || (first.status === 'failed' && first.reason !== 'verification-failed')) return first;

    const location = `${ctx.target.artifactUri.replace(/\/+$/, '')}/${archive.artifactPath}`;
    const verification: ManifestVerification = !ctx.verify
      ? { status: 'not-run' }
      : {
          status: first.verification.status === 'verified' ? 'verified' : 'failed',
          verifiedAt: new Date().toISOString(),
          checks: ['size'],
          location,
          ...(first.verification.mismatches ? { mismatches: first.verification.mismatches.map(toManifestMismatch) } : {}),
          ...(first.status === 'failed' && first.error ? { error: first.error.message } : {}),
        };
    const uploadedManifest: CheckpointManifest = { ...manifest, verification };
    const work = await mkdtemp(join(tmpdir(), 'artifact-uploader-manifest-'));
    try {
      const localPath = join(work, manifestFileName(archive.artifactPath));
      await writeManifest(uploadedManifest, localPath);
      const size = (await stat(localPath)).size;
      const manifestArtifactPath = posix.join(posix.dirname(archive.artifactPath), manifestFileName(archive.artifactPath)).replace(/^\.\//, '');
      // Progress follows the archive only: the manifest is a few KiB, sent while "verifying".
      const silent = new ProgressEmitter(undefined, 0, this.logger);
      const second = await this.transferFiles({ ...ctx, progress: silent }, [{ localPath, artifactPath: manifestArtifactPath, size }]);
      const combined: TransferOutcome = {
        status: first.status === 'failed' || second.status === 'failed' ? 'failed' : 'uploaded',
        files: [...first.files, ...second.files],
        metrics: {
          filesPlanned: first.metrics.filesPlanned + second.metrics.filesPlanned,
          filesSent: first.metrics.filesSent + second.metrics.filesSent,
          filesFailed: first.metrics.filesFailed + second.metrics.filesFailed,
          bytesPlanned: first.metrics.bytesPlanned + second.metrics.bytesPlanned,
          bytesSent: first.metrics.bytesSent + second.metrics.bytesSent,
          attempts: first.metrics.attempts + second.metrics.attempts,
          retries: first.metrics.retries + second.metrics.retries,
        },
        verification: mergeVerification(first.verification, second.verification),
        manifest: uploadedManifest,
      };
      const failure = first.status === 'failed' ? first : second.status === 'failed' ? second : undefined;
      if (failure) {
        if (failure.reason) combined.reason = failure.reason;
        if (failure.error) combined.error = failure.error;
      }
      return combined;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  private logResult(method: string, result: UploadResult): void {
    const where = `${result.artifactPath || '(artifact root)'}${result.runId ? ` of run ${result.runId}` : ''}`;
    if (result.status === 'uploaded') {
      const m = result.metrics;
      this.logger.info(
        `${method}: ${result.deduplicated ? 'joined an identical upload in flight for' : `uploaded ${m.filesSent} file(s), ${m.bytesSent} bytes, to`} ${where} in ${Math.round(result.durationMs)} ms${result.verification?.status === 'verified' ? ', verified' : ''}.`,
      );
    } else if (result.status === 'failed') {
      this.logger.warn(`${method}: upload to ${where} failed (${result.reason}): ${result.error?.message ?? 'unknown error'}`);
    } else if (result.reason !== 'no-run') {
      this.logger.debug(`${method}: skipped ${where} (${result.reason}${result.disabledBy ? `: ${result.disabledBy}` : ''}).`);
    }
  }
}

// ───────────────────────────── helpers ─────────────────────────────

/** Default artifact path of an archive: the `bestTrialArchive` path is a file path, the other kinds' are directories. */
function archiveDefaultPath(config: TrackingConfig, stage: StageName, kind: ArtifactKind, fileName: string): string {
  const configured = (config[stage] as unknown as Record<string, { artifactPath: string } | undefined>)[kind]?.artifactPath ?? '';
  return kind === 'bestTrialArchive' ? configured : posix.join(configured, fileName);
}

/** The manifest to upload: the one given, the file given, or the one beside the archive. */
async function loadManifest(option: CheckpointManifest | string | undefined, archivePath: string, archiveSize: number): Promise<CheckpointManifest | undefined> {
  let manifest: CheckpointManifest | undefined;
  if (typeof option === 'string') manifest = await readManifest(option);
  else if (option !== undefined) manifest = option;
  else {
    const beside = join(dirname(archivePath), manifestFileName(archivePath));
    if ((await stat(beside).catch(() => undefined))?.isFile()) manifest = await readManifest(beside);
  }
  if (manifest === undefined) return undefined;
  if (typeof manifest !== 'object' || manifest === null || typeof manifest.archive?.size !== 'number') {
    throw new InvalidArgumentError('manifest', 'Expected `manifest` to be a checkpoint manifest (from createCheckpointArchive) or the path of its JSON file.');
  }
  if (manifest.archive.size !== archiveSize) {
    throw new InvalidArgumentError(
      'manifest',
      `The manifest describes an archive of ${manifest.archive.size} bytes (${manifest.archive.fileName}), but ${archivePath} has ${archiveSize} bytes.`,
      { hint: 'Pass the manifest createCheckpointArchive returned for this archive, or rebuild both.' },
    );
  }
  return manifest;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Every error in a result is one of ours; a stray one is wrapped with its message kept. */
function toUploaderError(error: unknown, context = ''): ArtifactUploaderError {
  if (isArtifactUploaderError(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new ArtifactUploaderError('UPLOAD_FAILED', `Upload failed${context}: ${message}`, { cause: error });
}

function toUploadedFile(outcome: FileUploadOutcome): UploadedFile {
  const entry: UploadedFile = {
    localPath: outcome.file.localPath,
    artifactPath: outcome.file.artifactPath,
    size: outcome.status === 'uploaded' ? outcome.bytes : outcome.file.size,
    status: outcome.status,
    attempts: outcome.attempts,
    multipart: outcome.multipart,
  };
  if (outcome.error !== undefined) entry.error = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
  return entry;
}

function toManifestMismatch(m: VerificationMismatch) {
  return {
    path: m.artifactPath,
    reason: m.reason,
    expectedSize: m.expectedSize,
    ...(m.actualSize !== undefined ? { actualSize: m.actualSize } : {}),
  };
}

function mergeVerification(a: UploadVerification, b: UploadVerification): UploadVerification {
  if (a.status === 'not-run' && b.status === 'not-run') return { status: 'not-run' };
  const mismatches = [...(a.mismatches ?? []), ...(b.mismatches ?? [])];
  if (a.status === 'failed' || b.status === 'failed') return { status: 'failed', ...(mismatches.length > 0 ? { mismatches } : {}) };
  return { status: 'verified' };
}
