/**
 * The public shapes of MLflow's tracking entities (experiments, runs, metrics, artifact
 * listings) as the {@link TrackingClient} returns them: camelCase, tags and params as plain
 * records, numbers as numbers. The wire shapes (snake_case, int64 as number or string, empty
 * lists left out) live in `schemas.ts` and are converted there.
 *
 * @module
 */

/** A run's status, as MLflow names it. */
export type RunStatus = 'RUNNING' | 'SCHEDULED' | 'FINISHED' | 'FAILED' | 'KILLED';

/**
 * Every {@link RunStatus}, in MLflow's enum order (`RUNNING` = 1 ... `KILLED` = 5).
 *
 * @example
 * ```ts
 * RUN_STATUSES.includes(run.info.status); // true
 * ```
 */
export const RUN_STATUSES: readonly RunStatus[] = Object.freeze(['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED']);

/** An MLflow experiment. */
export interface Experiment {
  /** Server-assigned id (a string, even when it looks like a number). */
  experimentId: string;
  name: string;
  /** Where runs of this experiment put their artifacts by default. */
  artifactLocation: string;
  /** `active` or `deleted`. */
  lifecycleStage: string;
  /** Milliseconds since the epoch. */
  creationTime?: number;
  /** Milliseconds since the epoch. */
  lastUpdateTime?: number;
  /** Experiment tags. */
  tags: Record<string, string>;
}

/** A run's metadata. */
export interface RunInfo {
  runId: string;
  /** The run name (`''` when the server has none). */
  runName: string;
  experimentId: string;
  /** `''` when the server has none. */
  userId: string;
  status: RunStatus;
  /** Milliseconds since the epoch. */
  startTime?: number;
  /** Milliseconds since the epoch; absent while the run has not ended. */
  endTime?: number;
  /** Root URI of the run's artifacts (`mlflow-artifacts:/...`, `file:///...`, `s3://...`). */
  artifactUri: string;
  /** `active` or `deleted`. */
  lifecycleStage: string;
}

/** One metric value. */
export interface Metric {
  key: string;
  /** May be `NaN` or `±Infinity`. */
  value: number;
  /** Milliseconds since the epoch. */
  timestamp: number;
  step: number;
}

/** A run: metadata plus its latest metrics, params and tags. */
export interface Run {
  info: RunInfo;
  data: {
    /** The latest value of each metric. */
    metrics: Metric[];
    params: Record<string, string>;
    tags: Record<string, string>;
  };
}

/** One entry of a run's artifact listing. */
export interface ArtifactFileInfo {
  /** Path relative to the run's artifact root, `/`-separated. */
  path: string;
  isDir: boolean;
  /** Size in bytes, for files. */
  fileSize?: number;
}

/** A run's artifact listing (one directory level). */
export interface ArtifactListing {
  /** The run's artifact root URI. */
  rootUri: string;
  files: ArtifactFileInfo[];
}

/** A metric to log. */
export interface MetricInput {
  key: string;
  /** A finite number, `NaN` or `±Infinity`. */
  value: number;
  /** Milliseconds since the epoch. @default Date.now() */
  timestamp?: number;
  /** @default 0 */
  step?: number;
}

/** A param value; numbers and booleans are logged as `String(value)`. */
export type ParamValue = string | number | boolean;

/** What {@link TrackingClient.createRun} takes. */
export interface CreateRunInput {
  experimentId: string;
  /** @default a generated name (`<adjective>-<animal>-<n>`), as MLflow does */
  runName?: string;
  /** Tags set at creation. */
  tags?: Record<string, string>;
  /** Milliseconds since the epoch. @default Date.now() */
  startTime?: number;
  /** The run's `user_id`. @default '' */
  userId?: string;
}

/** What {@link TrackingClient.updateRun} takes. */
export interface UpdateRunInput {
  runId: string;
  status?: RunStatus;
  /** Milliseconds since the epoch. */
  endTime?: number;
  /** Renames the run (and its `mlflow.runName` tag). */
  runName?: string;
}

/** What {@link TrackingClient.logBatch} takes. */
export interface LogBatchInput {
  runId: string;
  metrics?: MetricInput[];
  /** Params are write-once in MLflow: logging a key again with another value fails. */
  params?: Record<string, ParamValue>;
  tags?: Record<string, string>;
}

/** Per-call options of every {@link TrackingClient} method. */
export interface TrackingRequestOptions {
  /** Cancels the call (and its retries). */
  signal?: AbortSignal;
}

/**
 * Talks to MLflow's tracking API: a REST server (`MlflowRestClient`) or a local
 * `./mlruns` FileStore (`FileTrackingStore`), with the same methods and the same errors
 * (`MlflowApiError` with MLflow's `error_code`, e.g. `RESOURCE_DOES_NOT_EXIST`).
 *
 * @example
 * ```ts
 * const client = createTrackingClient(resolveMlflowConnection());
 * const experiment = await client.getOrCreateExperiment('fine-tune');
 * const run = await client.createRun({ experimentId: experiment.experimentId, runName: 'lora-r8' });
 * await client.logBatch({ runId: run.info.runId, metrics: [{ key: 'loss', value: 0.42, step: 1 }] });
 * await client.updateRun({ runId: run.info.runId, status: 'FINISHED', endTime: Date.now() });
 * ```
 */
export interface TrackingClient {
  /** `rest` for a tracking server, `file` for a local FileStore. */
  readonly kind: 'rest' | 'file';
  /** The tracking URI, without credentials. */
  readonly trackingUri: string;
  /** One line for logs and the CLI, e.g. `MLflow tracking server http://127.0.0.1:5000`. */
  describe(): string;
  /** The experiment of that name (active or deleted), or `undefined` when there is none. */
  getExperimentByName(name: string, options?: TrackingRequestOptions): Promise<Experiment | undefined>;
  /** The experiment; `MlflowApiError` `RESOURCE_DOES_NOT_EXIST` (404) when there is none. */
  getExperiment(experimentId: string, options?: TrackingRequestOptions): Promise<Experiment>;
  /**
   * Creates an experiment and returns its id. When the name exists already (another process
   * may have created it first), returns the existing id instead of failing; a deleted
   * experiment of that name is an `InvalidArgumentError`.
   */
  createExperiment(name: string, options?: TrackingRequestOptions): Promise<string>;
  /** The active experiment of that name, created when missing. */
  getOrCreateExperiment(name: string, options?: TrackingRequestOptions): Promise<Experiment>;
  /** Creates a run (status `RUNNING`). */
  createRun(input: CreateRunInput, options?: TrackingRequestOptions): Promise<Run>;
  /** The run; `MlflowApiError` `RESOURCE_DOES_NOT_EXIST` (404) when there is none. */
  getRun(runId: string, options?: TrackingRequestOptions): Promise<Run>;
  /** Sets status, end time and/or name; returns the updated metadata. */
  updateRun(input: UpdateRunInput, options?: TrackingRequestOptions): Promise<RunInfo>;
  /**
   * Logs metrics, params and tags. Everything is validated first (names, lengths, numbers),
   * then sent in as many requests as MLflow's per-request limits need.
   */
  logBatch(input: LogBatchInput, options?: TrackingRequestOptions): Promise<void>;
  /** Sets one tag (overwriting its value). */
  setTag(runId: string, key: string, value: string, options?: TrackingRequestOptions): Promise<void>;
  /** One directory level of the run's artifacts (`path` relative to the artifact root), every page. */
  listArtifacts(runId: string, path?: string, options?: TrackingRequestOptions): Promise<ArtifactListing>;
}
