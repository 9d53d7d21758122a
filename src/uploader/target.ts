/**
 * Target: where the bytes of one run go. The run id comes from the gate (option, active run,
 * `MLFLOW_RUN_ID`); here it becomes a connection, a `runs/get` (the run must exist and not be
 * deleted), and the artifact store for the run's artifact URI. {@link RunTargets} resolves each
 * run once per uploader and keeps the connection the uploader made itself. Failures are
 * returned, not thrown: they end the operation as `failed` / `run-unavailable`.
 *
 * @module
 */
import { waitUnlessAborted } from '../core/abort.js';
import { InvalidArgumentError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { resolveMlflowConnection, type MlflowConnection } from '../mlflow/connection.js';
import { createTrackingClient } from '../mlflow/tracking-client.js';
import type { TrackingClient } from '../mlflow/tracking-types.js';
import type { ActiveRun, RunIdSource } from '../run/run-context.js';
import type { ArtifactStore, StoreOptions } from '../stores/artifact-store.js';
import { resolveArtifactStore } from '../stores/resolve.js';
import type { ResolvedUploaderOptions } from './options.js';

/** Where the bytes of one run go, resolved once per run and uploader. */
export interface UploadTarget {
  runId: string;
  /** Where the id came from. */
  source: RunIdSource;
  artifactUri: string;
  /** The tracking URI without credentials. */
  trackingUri: string;
  store: ArtifactStore;
  /** The connection the run was looked up over (the uploader's own, or the active run's). */
  connection?: MlflowConnection | undefined;
}

/** A run id as the gate found it (`resolveMlflowRunId`). */
export interface RunRef {
  runId: string;
  source: RunIdSource;
  /** The active run, when the id came from one. */
  run?: ActiveRun | undefined;
}

/** The uploader options a target is made with: passed through, not declared again. */
export type TargetOptions = Pick<ResolvedUploaderOptions, 'trackingUri' | 'retry' | 'env' | keyof StoreOptions | 'resolveStore' | 'signal'> & {
  logger: Logger;
};

/**
 * The uploader's own connection: the `trackingUri` option, else `MLFLOW_TRACKING_URI`, else
 * `./mlruns`. A malformed URI throws `ConfigError`.
 *
 * @example
 * ```ts
 * const connection = ownConnection({ trackingUri: 'http://127.0.0.1:5000', logger, env: process.env });
 * ```
 */
export function ownConnection(options: Pick<TargetOptions, 'trackingUri' | 'retry' | 'logger' | 'env'>): MlflowConnection {
  return resolveMlflowConnection({ trackingUri: options.trackingUri, retry: options.retry, logger: options.logger, env: options.env });
}

/**
 * Reads the run, refuses a deleted one, and makes the store for its artifact URI.
 *
 * @throws whatever the lookup throws: `MlflowApiError` (`RESOURCE_DOES_NOT_EXIST`, auth),
 *   `NetworkError`, `InvalidArgumentError` (deleted run), `UnsupportedArtifactStoreError`.
 * @example
 * ```ts
 * const target = await resolveUploadTarget({ runId, source: 'explicit' }, connection, undefined, { logger, env: process.env });
 * await target.store.uploadFile('a.txt', 'a.txt');
 * ```
 */
export async function resolveUploadTarget(
  ref: Pick<RunRef, 'runId' | 'source'> & {
    /**
     * Take a deleted run's store too: for giving up an earlier upload of it (`resume clear`,
     * expired records), which logs nothing to the run, and is what a run deleted since the
     * upload was interrupted still needs (its multipart upload stays billed until aborted).
     * @default false
     */
    deletedToo?: boolean;
  },
  connection: MlflowConnection,
  client: TrackingClient | undefined,
  options: TargetOptions,
): Promise<UploadTarget> {
  const run = await (client ?? createTrackingClient(connection)).getRun(ref.runId, { signal: options.signal });
  if (run.info.lifecycleStage === 'deleted' && ref.deletedToo !== true) {
    throw new InvalidArgumentError('runId', `Run ${ref.runId} on ${connection.displayUri} is deleted; artifacts cannot be logged to it.`, {
      hint: 'Restore it in the MLflow UI (or `mlflow runs restore`), or log to another run.',
    });
  }
  // Every store setting, passed on as given: a field added to StoreOptions and not listed here
  // is a compile error, not a setting silently dropped.
  const storeOptions: { [K in keyof Required<StoreOptions>]: StoreOptions[K] } = {
    multipart: options.multipart,
    s3: options.s3,
    gcs: options.gcs,
    azure: options.azure,
  };
  const store = (options.resolveStore ?? resolveArtifactStore)(run.info.artifactUri, { ...storeOptions, connection, env: options.env, logger: options.logger });
  options.logger.debug(`uploading to run ${ref.runId} (${ref.source}) on ${connection.displayUri}: ${store.describe()}`);
  return { runId: ref.runId, source: ref.source, artifactUri: run.info.artifactUri, trackingUri: connection.displayUri, store, connection };
}

/**
 * The targets of one uploader: each run looked up once (a `withRun` context can change the run
 * between calls), kept once the lookup succeeds; a failed lookup is retried by the next call.
 *
 * @example
 * ```ts
 * const targets = new RunTargets(options);
 * const resolved = await targets.get(ref); // { target } or { error }
 * await targets.close();
 * ```
 */
export class RunTargets {
  private readonly targets = new Map<string, Promise<UploadTarget>>();
  /** The connection this uploader made (and closes), made at first need. */
  private connection?: MlflowConnection | undefined;

  constructor(private readonly options: TargetOptions) {}

  /**
   * The target of `ref`, or the error its lookup failed with. The lookup is shared by the calls
   * that need it (and runs under the uploader's signal); a call's own `signal` ends its wait at
   * once (an `AbortedError` as the error) and leaves the lookup to the others. It used to wait
   * out the lookup: against a tracking server that does not answer, its timeouts and retries.
   */
  async get(ref: RunRef, signal?: AbortSignal): Promise<{ target: UploadTarget } | { error: unknown }> {
    // An active run started with its own tracking URI is logged to there, unless the uploader names one.
    const active = this.options.trackingUri === undefined ? ref.run?.connection : undefined;
    const key = `${ref.runId}\n${active ? active.displayUri : ''}`;
    let promise = this.targets.get(key);
    if (!promise) {
      promise = (async () => {
        const connection = active ?? (this.connection ??= ownConnection(this.options));
        return resolveUploadTarget(ref, connection, active ? ref.run?.client : undefined, this.options);
      })();
      const settled = promise;
      this.targets.set(key, settled);
      settled.catch(() => {
        if (this.targets.get(key) === settled) this.targets.delete(key);
      });
    }
    try {
      return { target: await waitUnlessAborted(promise, signal, 'The upload was aborted while its run was looked up.') };
    } catch (error) {
      return { error };
    }
  }

  /**
   * Forgets every target, closes the stores made for them (not those of a caller's
   * `resolveStore`, which the caller owns) and the connection this uploader made.
   */
  async close(): Promise<void> {
    const targets = [...this.targets.values()];
    this.targets.clear();
    if (this.options.resolveStore === undefined) {
      for (const settled of await Promise.allSettled(targets)) {
        if (settled.status === 'fulfilled') await settled.value.store.close?.().catch(() => undefined);
      }
    }
    if (this.connection?.kind === 'rest') await this.connection.http.close().catch(() => undefined);
    this.connection = undefined;
  }
}
