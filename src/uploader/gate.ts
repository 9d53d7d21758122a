/**
 * The gates every upload passes, in this order, and the resolution of where the bytes go:
 *
 * 1. `MLFLOW_SKIP_ARTIFACT_LOGGING=true` → skipped, `disabled-by-env`;
 * 2. the tracking config disables the stage or the artifact kind → skipped, `disabled-by-config`;
 * 3. (dry run and empty uploads stop here, without any network)
 * 4. no run id (option, active run, `MLFLOW_RUN_ID`) → skipped, `no-run`;
 * 5. the run's target: connection, `runs/get` (must exist and be active), the artifact store
 *    for its artifact URI, resolved once per run. Failures here are `failed` results with
 *    reason `run-unavailable`.
 *
 * @module
 */
import { envBool, type Env } from '../core/env.js';
import { InvalidArgumentError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { RetryOptions } from '../core/retry.js';
import { getArtifactConfig, type EffectiveArtifactConfig } from '../config/load.js';
import type { ArtifactKind, StageName, TrackingConfig } from '../config/schema.js';
import { resolveMlflowConnection, type MlflowConnection } from '../mlflow/connection.js';
import { createTrackingClient } from '../mlflow/tracking-client.js';
import type { TrackingClient } from '../mlflow/tracking-types.js';
import type { RunIdSource } from '../run/run-context.js';
import type { ArtifactStore, MultipartOptions } from '../stores/artifact-store.js';
import { resolveArtifactStore, type ResolveArtifactStoreOptions } from '../stores/resolve.js';
import type { S3StoreOptions } from '../stores/s3-config.js';
import type { GcsStoreOptions } from '../stores/gcs-config.js';

/**
 * The env var that turns every upload into a skip, as in MLflow.
 *
 * @example
 * ```ts
 * new ArtifactUploader({ stage: 'training', env: { [SKIP_ARTIFACT_LOGGING_ENV]: 'true' } }); // every call: disabled-by-env
 * ```
 */
export const SKIP_ARTIFACT_LOGGING_ENV = 'MLFLOW_SKIP_ARTIFACT_LOGGING';

/**
 * True when `MLFLOW_SKIP_ARTIFACT_LOGGING` is `true`/`1` (a malformed value is a `ConfigError`).
 *
 * @example
 * ```ts
 * artifactLoggingDisabledByEnv({ MLFLOW_SKIP_ARTIFACT_LOGGING: '1' }); // true
 * ```
 */
export function artifactLoggingDisabledByEnv(env: Env): boolean {
  return envBool(SKIP_ARTIFACT_LOGGING_ENV, env) === true;
}

/**
 * The config switch that applies to one call: the kind's, or the stage's master switch.
 *
 * @example
 * ```ts
 * configGate(config, 'training', 'checkpoint'); // { enabled: false, disabledBy: 'training.checkpoint.enabled', ... }
 * ```
 */
export function configGate(config: TrackingConfig, stage: StageName, kind: ArtifactKind | undefined): EffectiveArtifactConfig | { enabled: boolean; disabledBy?: string } {
  if (kind !== undefined) return getArtifactConfig(config, stage, kind as never);
  return config[stage].enabled ? { enabled: true } : { enabled: false, disabledBy: `${stage}.enabled` };
}

/**
 * The warning logged (once per uploader) when there is no run to upload to.
 *
 * @example
 * ```ts
 * logger.warn(NO_RUN_WARNING);
 * ```
 */
export const NO_RUN_WARNING =
  'No MLflow run to upload to, so nothing was uploaded (result: skipped, reason no-run). ' +
  'Pass `runId` to the uploader, call `startRun()` (or wrap the work in `withRun(run, fn)`) first, or set MLFLOW_RUN_ID.';

/** Where the bytes of one run go, resolved once per run and uploader. */
export interface UploadTarget {
  runId: string;
  /** Where the id came from. */
  source: RunIdSource;
  artifactUri: string;
  /** The tracking URI without credentials. */
  trackingUri: string;
  store: ArtifactStore;
}

/** What {@link resolveUploadTarget} needs. */
export interface TargetOptions {
  runId: string;
  source: RunIdSource;
  /** The tracking connection: the active run's, or the uploader's own. */
  connection: MlflowConnection;
  /** The active run's client, when its connection is used. */
  client?: TrackingClient;
  logger: Logger;
  env: Env;
  multipart?: MultipartOptions;
  s3?: S3StoreOptions;
  gcs?: GcsStoreOptions;
  resolveStore?: (artifactUri: string, options: ResolveArtifactStoreOptions) => ArtifactStore;
  signal?: AbortSignal;
}

/**
 * The uploader's own connection: the `trackingUri` option, else `MLFLOW_TRACKING_URI`, else
 * `./mlruns`. A malformed URI throws `ConfigError`.
 *
 * @example
 * ```ts
 * const connection = ownConnection({ trackingUri: 'http://127.0.0.1:5000', logger, env: process.env });
 * ```
 */
export function ownConnection(options: { trackingUri?: string; retry?: RetryOptions; logger: Logger; env: Env }): MlflowConnection {
  return resolveMlflowConnection({
    ...(options.trackingUri !== undefined ? { trackingUri: options.trackingUri } : {}),
    ...(options.retry ? { retry: options.retry } : {}),
    logger: options.logger,
    env: options.env,
  });
}

/**
 * Reads the run, refuses a deleted one, and makes the store for its artifact URI.
 *
 * @throws whatever the lookup throws: `MlflowApiError` (`RESOURCE_DOES_NOT_EXIST`, auth),
 *   `NetworkError`, `InvalidArgumentError` (deleted run), `UnsupportedArtifactStoreError`.
 * @example
 * ```ts
 * const target = await resolveUploadTarget({ runId, source: 'explicit', connection, logger, env: process.env });
 * await target.store.uploadFile('a.txt', 'a.txt');
 * ```
 */
export async function resolveUploadTarget(options: TargetOptions): Promise<UploadTarget> {
  const { connection } = options;
  const client = options.client ?? createTrackingClient(connection);
  const run = await client.getRun(options.runId, options.signal ? { signal: options.signal } : {});
  if (run.info.lifecycleStage === 'deleted') {
    throw new InvalidArgumentError('runId', `Run ${options.runId} on ${connection.displayUri} is deleted; artifacts cannot be logged to it.`, {
      hint: 'Restore it in the MLflow UI (or `mlflow runs restore`), or log to another run.',
    });
  }
  const storeOptions: ResolveArtifactStoreOptions = {
    connection,
    env: options.env,
    logger: options.logger,
    ...(options.multipart ? { multipart: options.multipart } : {}),
    ...(options.s3 ? { s3: options.s3 } : {}),
    ...(options.gcs ? { gcs: options.gcs } : {}),
  };
  const store = (options.resolveStore ?? resolveArtifactStore)(run.info.artifactUri, storeOptions);
  options.logger.debug(`uploading to run ${options.runId} (${options.source}) on ${connection.displayUri}: ${store.describe()}`);
  return { runId: options.runId, source: options.source, artifactUri: run.info.artifactUri, trackingUri: connection.displayUri, store };
}
