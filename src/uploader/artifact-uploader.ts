/**
 * `ArtifactUploader`: the public methods, each building one operation (`operation.ts`), and a
 * thin run over the pipeline, one step per file of this folder:
 *
 * ```
 * operation → gate → target → (dedupe) → transfer → verify → result
 * ```
 *
 * 1. `operation.check()`: the kind is the stage's, the local paths exist and are files or
 *    directories as the method expects; programmer errors throw at once, whatever `onError` says;
 * 2. `passGates` (`gate.ts`): env switch → config + plan → config switch → empty → dry run →
 *    run id; each but the plan ends the operation as `skipped` with its reason;
 * 3. the run's target (`target.ts`), looked up once per run; a failed lookup is a `failed` result;
 * 4. uploads in flight elsewhere in the process with the same identity are joined (`dedupe.ts`);
 *    different archives to one destination take turns, in the process (`dedupe.ts`) and across
 *    processes sharing the journal directory (`destination-lock.ts`);
 * 5. the transfer (`transfer.ts`), then verification when on (`verify.ts`);
 * 6. the result (`result.ts`), the one place an `UploadResult` is built.
 *
 * @module
 */
import { dirname } from 'node:path';
import { isInside } from '../core/real-path.js';
import { AbortedError, InvalidArgumentError, isArtifactUploaderError } from '../core/errors.js';
import { combineSignals } from '../core/abort.js';
import { redactingLogger, silentLogger, type Logger } from '../core/logger.js';
import { resolveTrackingConfig } from '../config/load.js';
import type { StageName, TrackingConfig } from '../config/schema.js';
import { dedupeInFlight, identityKey, oneDestinationAtATime, type LocalFileIdentity } from './dedupe.js';
import { artifactLoggingDisabledByEnv, NO_RUN_WARNING, passGates } from './gate.js';
import { archiveOperation, checkpointOperation, directoryArchiveOperation, directoryOperation, fileOperation, storedArtifactPaths, type Operation, type OperationContext, type PlannedOperation } from './operation.js';
import {
  operationConcurrency,
  resolveUploaderOptions,
  type ArchiveAndUploadCheckpointCallOptions,
  type ArtifactUploaderOptions,
  type ResolvedUploaderOptions,
  type UploadCheckpointArchiveCallOptions,
  type UploadCheckpointCallOptions,
  type UploadDirectoryCallOptions,
  type UploadFileCallOptions,
  type UploadFilesCallOptions,
} from './options.js';
import { fileIdentities, logLeftOut } from './plan.js';
import { ProgressEmitter } from './progress.js';
import { buildResult, joinedResult, StatsAccumulator, type ResultContext, type UploaderStats, type UploadResult } from './result.js';
import { withDestinationLock } from './destination-lock.js';
import { assertJournalOutside, resolveJournalDir, UploadJournal } from './journal.js';
import { OperationResume, assertSkipExisting } from './resume.js';
import { RunTargets, type UploadTarget } from './target.js';
import { manifestArtifactPathOf, transferFiles } from './transfer.js';

/**
 * Uploads a pipeline stage's artifacts to an MLflow run, following the stage's section of the
 * tracking config. It is generic in its stage `S`, so a `kind` the stage does not have is a
 * compile error. Construct it once per stage (and run), call its methods, then `close()`.
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
/** How {@link runOperation} and {@link planAhead} reach an uploader's private pipeline. */
const runners = new WeakMap<object, { run: (operation: Operation) => Promise<UploadResult>; planAhead: (operations: readonly Operation[]) => Promise<void> }>();

/**
 * Runs an operation (built with the builders of `operation.ts`) through `uploader`'s pipeline,
 * as its public methods do. Stage helpers use it to check every path of theirs before the first
 * upload without a second `stat`.
 *
 * @example
 * ```ts
 * const checkpoint = checkpointOperation({ stage: uploader.stage }, dir, {});
 * await checkpoint.check();
 * const result = await runOperation(uploader, checkpoint);
 * ```
 * @internal
 */
export function runOperation(uploader: { readonly stage: StageName }, operation: Operation): Promise<UploadResult> {
  const runner = runners.get(uploader);
  if (!runner) return Promise.reject(new InvalidArgumentError('uploader', 'runOperation() needs an ArtifactUploader.'));
  return runner.run(operation);
}

/**
 * Plans operations as their gates will, without running them: what planning refuses (a file name
 * MLflow cannot store, a dangling or escaping symlink, a bad artifact path) throws now. A stage
 * helper that runs several operations calls it on all but the first before running the first,
 * whose own gate plans it before it sends a byte: a metrics file named `metrics#1.json` used to be
 * refused after the checkpoint had gone up, the error saying "Nothing was uploaded" and the
 * checkpoint's result lost. An operation that will upload is also checked against its run's store
 * (a name too long for it: the store's `checkArtifactPaths`), the run looked up now. The plans are
 * thrown away (each gate plans again when its operation runs, with the directory as it is then).
 * Nothing is planned when `MLFLOW_SKIP_ARTIFACT_LOGGING` turns every upload into a skip, as the
 * gates plan nothing then.
 *
 * @example
 * ```ts
 * await planAhead(uploader, [metrics]);
 * const checkpointResult = await runOperation(uploader, checkpoint);
 * ```
 * @internal
 */
export async function planAhead(uploader: { readonly stage: StageName }, operations: readonly Operation[]): Promise<void> {
  const runner = runners.get(uploader);
  if (!runner) throw new InvalidArgumentError('uploader', 'planAhead() needs an ArtifactUploader.');
  await runner.planAhead(operations);
}

export class ArtifactUploader<S extends StageName = StageName> {
  /** The stage this uploader works for. */
  readonly stage: S;
  private readonly opts: ResolvedUploaderOptions<S>;
  private readonly logger: Logger;
  private readonly context: OperationContext<S>;
  private readonly targets: RunTargets;
  private configPromise?: Promise<TrackingConfig>;
  private readonly accumulator = new StatsAccumulator();
  private readonly pending = new Set<Promise<unknown>>();
  private closed = false;
  private warnedNoRun = false;
  private journalPromise?: Promise<UploadJournal | undefined>;

  /**
   * @throws {InvalidArgumentError} for an unknown stage or invalid options.
   */
  constructor(options: ArtifactUploaderOptions<S>) {
    this.opts = resolveUploaderOptions(options);
    this.stage = this.opts.stage;
    this.context = { stage: this.stage };
    this.logger = redactingLogger(this.opts.logger ?? silentLogger);
    this.targets = new RunTargets({ ...this.opts, logger: this.logger });
    runners.set(this, {
      run: (operation) => this.run(operation),
      planAhead: async (operations) => {
        if (operations.length === 0 || artifactLoggingDisabledByEnv(this.opts.env)) return;
        for (const operation of operations) {
          await operation.check();
          const gate = await passGates(operation, { env: this.opts.env, runId: this.opts.runId, dryRun: this.opts.dryRun, loadConfig: () => this.loadConfig() });
          if (!gate.go) continue;
          // The store's own name rules need the run's store: looked up now (and kept for the
          // operation's turn). A run that cannot be looked up fails the first operation instead.
          const resolved = await this.targets.get(gate.run);
          if ('target' in resolved) resolved.target.store.checkArtifactPaths?.(storedArtifactPaths(gate.planned));
        }
      },
    });
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
  uploadFile(path: string, options: UploadFileCallOptions<S> = {}): Promise<UploadResult> {
    return this.run(fileOperation(this.context, 'uploadFile', [path], options));
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
  uploadFiles(paths: readonly string[], options: UploadFilesCallOptions<S> = {}): Promise<UploadResult> {
    if (!Array.isArray(paths)) return Promise.reject(new InvalidArgumentError('paths', 'uploadFiles() needs an array of file paths.'));
    return this.run(fileOperation(this.context, 'uploadFiles', paths, options));
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
  uploadDirectory(dir: string, options: UploadDirectoryCallOptions<S> = {}): Promise<UploadResult> {
    return this.run(directoryOperation(this.context, dir, options));
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
  uploadCheckpoint(dir: string, options: UploadCheckpointCallOptions<S> = {}): Promise<UploadResult> {
    return this.run(checkpointOperation(this.context, dir, options));
  }

  /**
   * Uploads a checkpoint archive (a `.tar.gz` from `createCheckpointArchive`) and its manifest
   * beside it (`<name>.manifest.json`). Verification is on by default. The order is:
   * archive → verify the archive → manifest, with the archive's verification outcome written
   * into it → verify the manifest. So a manifest in the run always says whether the archive
   * next to it was checked. When the archive fails, no manifest is uploaded.
   *
   * @throws {LocalPathError} when `archivePath` is missing, not a file, or empty or not gzip (`NOT_A_GZIP_ARCHIVE`), or the manifest path is missing.
   * @throws {InvalidArgumentError} when the manifest describes another archive (its size differs).
   * @example
   * ```ts
   * const manifest = await createCheckpointArchive('out/trial-7', 'out/best.tar.gz');
   * const result = await uploader.uploadCheckpointArchive('out/best.tar.gz', { manifest });
   * result.manifest?.verification.status; // 'verified'
   * ```
   */
  uploadCheckpointArchive(archivePath: string, options: UploadCheckpointArchiveCallOptions<S> = {}): Promise<UploadResult> {
    return this.run(archiveOperation(this.context, archivePath, options));
  }

  /**
   * Archives a checkpoint directory (`createCheckpointArchive`: tar.gz + manifest, default skip
   * list applied, in the resume journal's `archives/`, or a temp directory without a journal;
   * removed once uploaded, kept for a rerun after an interruption: docs/resume.md) and uploads it like
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
  archiveAndUploadCheckpoint(dir: string, options: ArchiveAndUploadCheckpointCallOptions<S> = {}): Promise<UploadResult> {
    return this.run(directoryArchiveOperation(this.context, dir, options));
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
    // With a `concurrency` option, ARTIFACT_UPLOADER_CONCURRENCY is not used: a bad value is a warning.
    this.configPromise ??= resolveTrackingConfig({ configDir: this.opts.configDir, config: this.opts.config, env: this.opts.env, concurrencyGiven: this.opts.concurrency !== undefined }).then(
      (resolved) => {
        for (const warning of resolved.warnings) this.logger.warn(warning);
        return resolved.config;
      },
    );
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
   * Waits for the operations in flight, then releases the connections this uploader opened and
   * the clients of the stores it made (`ArtifactStore.close`; not those of a `resolveStore` of
   * the caller's). Calls after `close()` throw `InvalidArgumentError`.
   *
   * @example
   * ```ts
   * try { await uploader.uploadFile('a.txt'); } finally { await uploader.close(); }
   * ```
   */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.pending]);
    await this.targets.close();
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
    const progress = new ProgressEmitter(this.opts.onProgress, this.opts.progressIntervalMs, this.logger);
    const context: ResultContext = { stage: this.stage, kind: operation.kind, started: performance.now(), progress };
    progress.phase('scanning');
    await operation.check();
    // After the check, which refuses a call's `signal` that AbortSignal.any() would throw on.
    const signal = combineSignals(this.opts.signal, operation.options.signal);
    const verify = operation.options.verify ?? this.opts.verify ?? operation.verifyByDefault;
    // The config's concurrency against maxConcurrency is checked as the config loads, so that a
    // conflict throws like any invalid config: before the plan, a dry run and a disabled stage too.
    const loadConfig = () =>
      this.loadConfig().then((config) => {
        operationConcurrency(this.opts, config[this.stage].concurrency, this.stage);
        return config;
      });
    const gate = await passGates(operation, { env: this.opts.env, runId: this.opts.runId, dryRun: this.opts.dryRun, loadConfig });
    // Here, once per call: the stage helpers' pre-check plans the same operations again.
    if (gate.planned) {
      logLeftOut(this.logger, operation.method, gate.planned.local.skipped);
      for (const warning of gate.planned.local.warnings) this.logger.warn(`${operation.method}: ${warning}`);
    }
    // A dry run refuses what the real run would refuse before a byte is written: a journal
    // inside the directory (the real run checks the journal it opens, in resumeStep).
    if (!gate.go && gate.reason === 'dry-run' && gate.planned) assertJournalOutsidePlan(resolveJournalDir({ dir: this.opts.journalDir, env: this.opts.env }), gate.planned);
    if (!gate.go) {
      if (gate.reason === 'no-run' && !this.warnedNoRun) {
        this.warnedNoRun = true;
        this.logger.warn(NO_RUN_WARNING);
      }
      return buildResult(context, gate.planned, { status: 'skipped', reason: gate.reason, disabledBy: gate.disabledBy, runId: gate.runId });
    }
    const { config, planned } = gate;
    // Every failed result names the run, even one that fails before its target is known.
    const { runId } = gate.run;

    // Taken before the first await on the network, so that of two identical calls the first
    // to reach the dedupe map is also the first caller.
    // Dropped once hashed into the key: this frame stays suspended for the whole upload, and
    // would keep a record per file alive (20,000 files, ~1 MiB) that nothing reads again.
    let identities: LocalFileIdentity[] | undefined = await fileIdentities(planned.local.files);
    const aborted = () => new AbortedError('The upload was aborted before it started.', { cause: signal?.reason });
    if (signal?.aborted) return buildResult(context, planned, { status: 'failed', reason: 'aborted', error: aborted(), runId });
    const resolved = await this.targets.get(gate.run, signal);
    if ('error' in resolved) {
      const ending = signal?.aborted ? { reason: 'aborted' as const, error: aborted() } : { reason: 'run-unavailable' as const, error: resolved.error };
      return buildResult(context, planned, { status: 'failed', runId, ...ending });
    }
    const { target } = resolved;
    if (signal?.aborted) return buildResult(context, planned, { status: 'failed', reason: 'aborted', error: aborted(), runId, target });
    // Names too long for this store are refused like any bad name (a programmer error), before
    // anything is archived, recorded or sent: a directory goes up whole or not at all.
    target.store.checkArtifactPaths?.(storedArtifactPaths(planned));

    const key = identityKey({
      trackingUri: target.trackingUri,
      runId: target.runId,
      artifactUri: target.artifactUri,
      operation: `${planned.identity}:verify=${verify}`,
      artifactPath: planned.artifactPath,
      files: identities,
    });
    identities = undefined;
    try {
      for (;;) {
        const { value, joined } = await dedupeInFlight(
          key,
          async (): Promise<UploadResult> => {
            const upload = async (): Promise<UploadResult> => {
              // The default concurrency adapts; one the user chose (option, config, env) is kept
              // as they chose it unless they also allow growth with maxConcurrency.
              const { concurrency, maxConcurrency } = operationConcurrency(this.opts, config[this.stage].concurrency, this.stage);
              const resume = await this.resumeStep(target, planned, signal);
              const ctx = { target, progress, signal, verify, concurrency, maxConcurrency, logger: this.logger, warned: new Set<string>(), resume };
              try {
                const outcome = await (planned.transfer ?? ((c) => transferFiles(c, planned.local.files)))(ctx);
                return buildResult(context, planned, { status: 'transferred', target, outcome });
              } catch (error) {
                // Archiving errors about the local side are programmer errors for the first caller too.
                if (isArtifactUploaderError(error) && (error.name === 'LocalPathError' || error.name === 'InvalidArgumentError')) throw error;
                return buildResult(context, planned, { status: 'failed', reason: signal?.aborted ? 'aborted' : 'upload-failed', error, runId, target });
              }
            };
            if (planned.transfer === undefined) return upload();
            // An archive and its manifest are two writes: another archive to the same place (a
            // second trial's best checkpoint) waits for this pair to be whole. Keyed by the
            // manifest's path, which `a.tar.gz` and `a.tgz` share (assertManifestNameFree).
            // Other processes sharing the journal directory (trials run as one CLI call each)
            // wait for the same pair through a lock file there, held for this call's turn.
            const destination = JSON.stringify([target.artifactUri, manifestArtifactPathOf(planned.artifactPath)]);
            const acrossProcesses = async () => {
              const journal = await this.openJournal();
              // Refused before the lock's folder is made in a journal inside the checkpoint.
              if (journal) assertJournalOutsidePlan(journal.dir, planned);
              return withDestinationLock(journal?.dir, destination, upload, {
                signal,
                logger: this.logger,
                onWait: () =>
                  this.logger.info(`${operation.method}: waits for another process's upload of an archive to ${planned.artifactPath} of run ${runId} to finish, so that the archive and manifest in the run are one upload's.`),
              });
            };
            try {
              return await oneDestinationAtATime(destination, acrossProcesses, {
                signal,
                onWait: () =>
                  this.logger.info(`${operation.method}: waits for the upload of another archive to ${planned.artifactPath} of run ${runId} in this process to finish, so that the archive and manifest in the run are one upload's.`),
              });
            } catch (error) {
              // Aborted while waiting its turn (in this process, or for another process's lock):
              // ends as an abort does, for any caller that joined it too.
              if (error instanceof AbortedError && signal?.aborted) return buildResult(context, planned, { status: 'failed', reason: 'aborted', error, runId, target });
              throw error;
            }
          },
          { signal },
        );
        // The upload joined was stopped by its own caller's signal (a pruned trial), not by this
        // caller's: this one was told `aborted` and its checkpoint was not in the run. It uploads
        // it itself now (or joins whoever got there first).
        if (joined && value.status === 'failed' && value.reason === 'aborted' && !signal?.aborted) {
          this.logger.info(`${operation.method}: the identical upload it joined was aborted by its own caller; uploading it itself.`);
          continue;
        }
        return joined ? joinedResult(value, progress) : value;
      }
    } catch (error) {
      // Only a caller that joined another's upload can be stopped here (by its own signal).
      if (error instanceof AbortedError && signal?.aborted) return buildResult(context, planned, { status: 'failed', reason: 'aborted', error, runId, target });
      throw error;
    }
  }

  /**
   * The resume step of one operation: the journal (opened once per uploader; without one, a
   * warning and no resume), `skipExisting` checked against the store before anything is sent,
   * and a journal inside the directory being uploaded (or archived: the archive is staged in the
   * journal) refused before anything is written there.
   */
  private async resumeStep(target: UploadTarget, planned: PlannedOperation, signal: AbortSignal | undefined): Promise<OperationResume> {
    assertSkipExisting(this.opts.skipExisting, target.store);
    const journal = await this.openJournal();
    if (journal) assertJournalOutsidePlan(journal.dir, planned);
    return new OperationResume({
      journal,
      resume: this.opts.resume ?? true,
      skipExisting: this.opts.skipExisting,
      target: target.trackingUri,
      runId: target.runId,
      store: target.store,
      logger: this.logger,
      signal,
      env: this.opts.env,
      connection: target.connection,
      // A directory sent file by file: files deleted from it since an interrupted run have uploads to give up.
      ...(planned.transfer === undefined && planned.directory !== undefined ? { scope: { directory: planned.directory, artifactPath: planned.artifactPath } } : {}),
    });
  }

  /**
   * The resume journal, opened once per uploader; without one (it cannot be opened), a warning,
   * and uploads go on without resume and without the destination locks kept in it.
   */
  private openJournal(): Promise<UploadJournal | undefined> {
    this.journalPromise ??= UploadJournal.open({ dir: this.opts.journalDir, env: this.opts.env, logger: this.logger }).catch((error: unknown) => {
      this.logger.warn(`The resume journal cannot be opened (${(error as Error).message}); uploads of this uploader cannot be resumed.`);
      return undefined;
    });
    return this.journalPromise;
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

/**
 * Refuses a journal inside the directory of the operation, or beside one of its files (an
 * archive is staged in the journal: its lock would go into the archive).
 */
function assertJournalOutsidePlan(journalDir: string, planned: PlannedOperation): void {
  if (planned.directory !== undefined) assertJournalOutside(journalDir, planned.directory);
  const inside = planned.local.files.find((f) => isInside(journalDir, f.localPath));
  if (inside) assertJournalOutside(journalDir, dirname(inside.localPath));
}
