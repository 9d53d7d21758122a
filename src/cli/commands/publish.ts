/**
 * `publish`: find the model directory (`--model-dir`, or the newest timestamped one in
 * `--fine-tuned-models-dir`), then `publishToHub`; with a run id, tag the MLflow run with the
 * Hub commit. Options fall back to the `hub` section of the tracking config file.
 *
 * @module
 */
import { resolveTrackingConfig } from '../../config/load.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { publishToHub, type PublishResult } from '../../hub/publish.js';
import { resolveMlflowConnection } from '../../mlflow/connection.js';
import { createTrackingClient } from '../../mlflow/tracking-client.js';
import { resolveModelDir } from '../../model/resolve-model-dir.js';
import type { CliContext, CommandOutcome } from '../context.js';
import { EXIT_CODES } from '../exit-codes.js';
import { formatBytes } from '../../core/format.js';
import { table } from '../format.js';
import { closeConnection } from './runs.js';

function summary(result: PublishResult, modelDir: string): string {
  const kind = result.format === 'lora' ? `LoRA adapter (${result.flavour ?? '?'}${result.converted ? ', converted to PEFT' : ''})` : 'fused model';
  const head =
    result.status === 'dry-run'
      ? `Dry run: would publish ${kind} ${modelDir} to ${result.repoUrl} (${result.files.length} files, ${formatBytes(result.bytes)}); nothing was uploaded.`
      : result.status === 'already-published'
        ? `Already published: ${result.commitUrl} (nothing uploaded)`
        : `Published ${kind} ${modelDir} to ${result.repoUrl}\n  commit: ${result.commitUrl}`;
  const lines = [head, table(result.files.map((f) => [formatBytes(f.size), f.path]))];
  if (result.mlflowTagged) lines.push('  MLflow run tagged with the commit (hf_hub.*).');
  for (const warning of result.warnings) lines.push(`warning: ${warning}`);
  return lines.join('\n');
}

/** `publish`. */
export async function runPublish(ctx: CliContext, _args: unknown[], options: Record<string, unknown>): Promise<CommandOutcome> {
  // Read for the `hub` section: a bad ARTIFACT_UPLOADER_CONCURRENCY, which publishing never uses, is a warning, not a refusal.
  const { config, warnings } = await resolveTrackingConfig({ ...ctx.configLocation(), concurrencyUnused: true });
  for (const warning of warnings) ctx.logger.warn(warning);
  const hub = config.hub;
  const repoId = (options.repoId as string | undefined) ?? hub.repoId;
  if (!repoId) {
    throw new InvalidArgumentError('--repo-id', 'No Hub repo to publish to.', {
      hint: 'Pass --repo-id namespace/name, or set hub.repoId in artifact-uploader.yaml.',
    });
  }
  const resolved = await resolveModelDir({
    modelDir: options.modelDir !== undefined ? ctx.path(String(options.modelDir)) : undefined,
    baseDir: options.fineTunedModelsDir !== undefined ? ctx.path(String(options.fineTunedModelsDir)) : undefined,
    configBaseDir: hub.fineTunedModelsDir,
    pattern: (options.pattern as string | undefined) ?? hub.pattern,
  });
  if (resolved.source === 'search') ctx.note(`Publishing the newest of ${resolved.candidates.length} model directories in ${resolved.baseDir}: ${resolved.dir}`);

  const dryRun = ctx.globals.dryRun === true;
  const runId = ctx.globals.runId ?? (ctx.env.MLFLOW_RUN_ID?.trim() || undefined);
  const trackingUri = ctx.trackingUri();
  const connection = runId && !dryRun ? resolveMlflowConnection({ trackingUri, env: ctx.env, logger: ctx.logger }) : undefined;
  const client = connection ? createTrackingClient(connection) : undefined;
  let experimentId: string | undefined;
  if (client && runId) {
    // Only for the model card's link to the run; publishing goes on without it.
    experimentId = await client.getRun(runId, { signal: ctx.signal }).then(
      (run) => run.info.experimentId,
      (error: unknown) => {
        ctx.logger.warn(`could not read MLflow run ${runId} (the model card will not link to it): ${(error as Error).message}`);
        return undefined;
      },
    );
  }

  const progress = await ctx.progress();
  let result: PublishResult;
  try {
    result = await publishToHub({
      modelDir: resolved.dir,
      repoId,
      private: options.private === true ? true : hub.private,
      hubUrl: options.hubUrl as string | undefined,
      baseModel: options.baseModel as string | undefined,
      includeSensitiveFiles: options.includeSensitive as string[] | undefined,
      commitMessage: options.commitMessage as string | undefined,
      revision: options.revision as string | undefined,
      idempotencyKey: options.idempotencyKey as string | undefined,
      dryRun,
      runId,
      mlflow: { trackingUri: /^https?:/i.test(trackingUri) ? trackingUri : undefined, experimentId },
      tagRun: client ? (id, key, value) => client.setTag(id, key, value, { signal: ctx.signal }) : undefined,
      onProgress: (event) => {
        if (event.type === 'phase' && event.phase === 'uploading') progress.phase('publishing');
        if (event.type === 'bytes') progress.update({ bytesDone: event.loaded, bytesTotal: event.total });
      },
      signal: ctx.signal,
      logger: ctx.logger,
      env: ctx.env,
    });
  } finally {
    progress.stop();
    if (connection) await closeConnection(connection);
  }
  return {
    exitCode: EXIT_CODES.OK,
    data: { modelDir: resolved.dir, modelDirSource: resolved.source, result },
    text: summary(result, resolved.dir),
  };
}
