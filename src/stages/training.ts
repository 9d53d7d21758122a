/**
 * `uploadTrainingArtifacts`: a training job's checkpoint directory and metrics JSON.
 *
 * @module
 */
import type { UploadResult } from '../uploader/result.js';
import { checkLocalPath } from '../uploader/plan.js';
import { withStageUploader, type StageHelperOptions } from './stage-uploader.js';

/** Options of {@link uploadTrainingArtifacts}. */
export interface TrainingArtifactsOptions extends StageHelperOptions {
  /** The checkpoint directory, uploaded file by file under `training.checkpoint.artifactPath` (`checkpoint`). */
  checkpointDir: string;
  /** A metrics JSON file, uploaded to `<training.metrics.artifactPath>/<name>` (`metrics/<name>`). */
  metricsJsonPath?: string;
}

/** What {@link uploadTrainingArtifacts} returns: one result per artifact. */
export interface TrainingArtifactsResult {
  checkpoint: UploadResult;
  /** Present when `metricsJsonPath` was given. */
  metrics?: UploadResult;
}

/**
 * Uploads a training job's artifacts under the `training` stage config: the checkpoint
 * directory (kind `checkpoint`, via `uploadCheckpoint`: default skip list applied) and, when
 * given, the metrics JSON (kind `metrics`). Both paths are checked before anything is sent.
 *
 * @throws {LocalPathError} when `checkpointDir` is not a directory or `metricsJsonPath` not a file.
 * @example
 * ```ts
 * const { checkpoint, metrics } = await uploadTrainingArtifacts({
 *   checkpointDir: 'out/checkpoint-500',
 *   metricsJsonPath: 'out/metrics.json',
 *   runId: process.env.RUN_ID,
 * });
 * console.log(checkpoint.status, metrics?.status);
 * ```
 */
export async function uploadTrainingArtifacts(options: TrainingArtifactsOptions): Promise<TrainingArtifactsResult> {
  const { checkpointDir, metricsJsonPath, ...rest } = options;
  await checkLocalPath(checkpointDir, 'directory', 'uploadTrainingArtifacts');
  if (metricsJsonPath !== undefined) await checkLocalPath(metricsJsonPath, 'file', 'uploadTrainingArtifacts');
  return withStageUploader('training', 'uploadTrainingArtifacts', rest, async (uploader) => {
    const checkpoint = await uploader.uploadCheckpoint(checkpointDir);
    if (metricsJsonPath === undefined) return { checkpoint };
    return { checkpoint, metrics: await uploader.uploadFile(metricsJsonPath, { kind: 'metrics' }) };
  });
}
