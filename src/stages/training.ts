/**
 * `uploadTrainingArtifacts`: a training job's checkpoint directory and metrics JSON.
 *
 * @module
 */
import { stat } from 'node:fs/promises';
import { LocalPathError } from '../core/errors.js';
import type { RegisterModelResult } from '../registry/register-model.js';
import { planAhead, runOperation } from '../uploader/artifact-uploader.js';
import { checkpointOperation, fileOperation } from '../uploader/operation.js';
import type { UploadResult } from '../uploader/result.js';
import { checkStageRegister, registerStageUpload, stageOptions, withStageUploader, type StageHelper, type StageHelperOptions, type StageRegisterOptions } from './stage-uploader.js';

/** Options of {@link uploadTrainingArtifacts}. */
export interface TrainingArtifactsOptions extends StageHelperOptions {
  /** The checkpoint directory, uploaded file by file under `training.checkpoint.artifactPath` (`checkpoint`). */
  checkpointDir: string;
  /** A metrics JSON file, uploaded to `<training.metrics.artifactPath>/<name>` (`metrics/<name>`). */
  metricsJsonPath?: string;
  /**
   * Also register the uploaded checkpoint folder as a new version of this registered model,
   * with MLflow 3 lineage (see docs/registry.md). Needs a tracking server.
   * @default no registration
   */
  register?: StageRegisterOptions;
}

/** What {@link uploadTrainingArtifacts} returns: one result per artifact. */
export interface TrainingArtifactsResult {
  checkpoint: UploadResult;
  /** Present when `metricsJsonPath` was given. */
  metrics?: UploadResult;
  /** The registered checkpoint version; absent without `register`, or when the checkpoint upload did not happen. */
  registeredModel?: RegisterModelResult;
}

/** uploadTrainingArtifacts() as its options are checked: a field of these options not listed here is a compile error. */
const TRAINING_HELPER: StageHelper<TrainingArtifactsOptions> = {
  name: 'uploadTrainingArtifacts',
  stage: 'training',
  fields: { checkpointDir: true, metricsJsonPath: true, register: true },
};

/**
 * Uploads a training job's artifacts under the `training` stage config: the checkpoint
 * directory (kind `checkpoint`, via `uploadCheckpoint`: default skip list applied) and, when
 * given, the metrics JSON (kind `metrics`). Both paths are checked before anything is sent.
 *
 * @throws {LocalPathError} when `checkpointDir` is not a directory or `metricsJsonPath` not a file,
 *   or either holds a name MLflow cannot store (before anything is sent).
 * @example
 * ```ts
 * const { checkpoint, metrics } = await uploadTrainingArtifacts({
 *   checkpointDir: 'out/checkpoint-500',
 *   metricsJsonPath: 'out/metrics.json',
 *   runId: process.env.RUN_ID,
 * });
 * console.log(checkpoint.status, metrics?.status);
 * const { registeredModel } = await uploadTrainingArtifacts({ checkpointDir: 'out/checkpoint-500', register: { name: 'llama-lora', alias: 'latest-train' } });
 * ```
 */
export async function uploadTrainingArtifacts(options: TrainingArtifactsOptions): Promise<TrainingArtifactsResult> {
  const { checkpointDir, metricsJsonPath, register, ...rest } = stageOptions(options, TRAINING_HELPER);
  checkStageRegister(register, rest);
  const uploaded: TrainingArtifactsResult = await withStageUploader(TRAINING_HELPER, rest, async (uploader) => {
    const context = { stage: uploader.stage, caller: 'uploadTrainingArtifacts' };
    const checkpoint = checkpointOperation(context, checkpointDir, {});
    const metrics = metricsJsonPath === undefined ? undefined : fileOperation(context, 'uploadFile', [metricsJsonPath], { kind: 'metrics' });
    // Both paths are checked before anything is sent; each operation keeps its one `stat`.
    await checkpoint.check();
    await metrics?.check().catch(async (error: unknown) => {
      throw await asMetricsPathError(error);
    });
    // Planned now too (the checkpoint's gate plans it before it sends): a metrics name MLflow
    // cannot store (`metrics#1.json`) threw after the checkpoint was up, its result lost.
    if (metrics !== undefined) await planAhead(uploader, [metrics]);
    const checkpointResult = await runOperation(uploader, checkpoint);
    if (metrics === undefined) return { checkpoint: checkpointResult };
    return { checkpoint: checkpointResult, metrics: await runOperation(uploader, metrics) };
  });
  const registeredModel = await registerStageUpload(register, uploaded.checkpoint, rest, uploaded);
  return registeredModel ? { ...uploaded, registeredModel } : uploaded;
}

/**
 * `metricsJsonPath` that is not a file, said as that option: `uploadFile()`'s own error would
 * suggest uploading the directory with `uploadDirectory()`, which is not what a metrics path
 * pointing at a folder (`--metrics out/` for `--metrics out/metrics.json`) needs.
 */
async function asMetricsPathError(error: unknown): Promise<unknown> {
  if (!(error instanceof LocalPathError) || error.code !== 'NOT_A_FILE') return error;
  const isDirectory = (await stat(error.path).catch(() => undefined))?.isDirectory() === true;
  return new LocalPathError('NOT_A_FILE', error.path, `uploadTrainingArtifacts() expects a file as metricsJsonPath (the metrics JSON), but ${error.path} is ${isDirectory ? 'a directory' : 'not a regular file'}.`, {
    hint: 'Pass the path of the metrics JSON file as metricsJsonPath; the checkpoint directory goes in checkpointDir.',
    cause: error,
  });
}
