/**
 * What the four stage helpers share: their options (the uploader's, without `stage`) and the
 * life cycle of the uploader each one makes for a single call.
 *
 * @module
 */
import { InvalidArgumentError } from '../core/errors.js';
import type { StageName } from '../config/schema.js';
import { ArtifactUploader } from '../uploader/artifact-uploader.js';
import type { ArtifactUploaderOptions } from '../uploader/options.js';

/**
 * Options every stage helper takes: those of `new ArtifactUploader()` (`runId`, `configDir`,
 * `trackingUri`, `onProgress`, `onError`, `dryRun`, ...). `stage` may be given but must be the
 * helper's own.
 */
export type StageHelperOptions = Omit<ArtifactUploaderOptions, 'stage'> & { stage?: StageName };

/**
 * Runs `fn` with a new uploader for `stage`, closing it afterwards.
 *
 * @example
 * ```ts
 * return withStageUploader('benchmark', 'uploadBenchmarkArtifacts', options, (uploader) => uploader.uploadFile(path, { kind: 'results' }));
 * ```
 * @internal
 */
export async function withStageUploader<T>(
  stage: StageName,
  helper: string,
  options: StageHelperOptions,
  fn: (uploader: ArtifactUploader) => Promise<T>,
): Promise<T> {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', `${helper}() needs an options object.`);
  if (options.stage !== undefined && options.stage !== stage) {
    throw new InvalidArgumentError('stage', `${helper}() uploads under the ${stage} stage, but stage "${options.stage}" was passed.`, {
      hint: `Drop \`stage\`, or use new ArtifactUploader({ stage: '${options.stage}' }) directly.`,
    });
  }
  const uploader = new ArtifactUploader({ ...options, stage });
  try {
    return await fn(uploader);
  } finally {
    await uploader.close();
  }
}
