/**
 * The tracking API of an MLflow server (`/api/2.0/mlflow/...`) over the library's one
 * {@link HttpClient}: every call retried by the shared policy, every error an
 * `MlflowApiError` with MLflow's `error_code` and a hint, every answer validated with zod.
 *
 * @module
 */
import { randomUUID } from '../core/node-crypto.js';
import { MlflowApiError } from '../core/errors.js';
import type { HttpClient, HttpRequest } from '../core/http.js';
import type { Logger } from '../core/logger.js';
import { withRetry, type ResolvedRetryOptions } from '../core/retry.js';
import { mlflowRequest, type MlflowConnection, type MlflowRequestOptions } from './connection.js';
import { assertNoInternalTags, CREATE_ID_TAG, withoutInternalTags } from './internal-tags.js';
import type * as Schemas from './schemas.js';
import {
  assertEntityKey,
  assertExperimentId,
  assertExperimentName,
  assertNotDeleted,
  assertRunId,
  assertTagValue,
  chunkBatch,
  normalizeBatch,
  normalizeListPath,
} from './tracking-validation.js';
import type {
  ArtifactFileInfo,
  ArtifactListing,
  CreateRunInput,
  Experiment,
  LogBatchInput,
  Run,
  RunInfo,
  TrackingClient,
  TrackingRequestOptions,
  UpdateRunInput,
} from './tracking-types.js';
import type * as z from 'zod';

/** Safety net against a server that keeps answering with a page token. */
const MAX_LIST_PAGES = 10_000;

/**
 * A {@link TrackingClient} for an MLflow tracking server.
 *
 * @example
 * ```ts
 * const conn = resolveMlflowConnection({ trackingUri: 'http://127.0.0.1:5000' });
 * if (conn.kind === 'rest') {
 *   const client = new MlflowRestClient(conn);
 *   const run = await client.getRun('0a1b2c3d4e5f');
 * }
 * ```
 */
export class MlflowRestClient implements TrackingClient {
  readonly kind = 'rest';
  readonly trackingUri: string;
  private readonly baseUrl: string;
  private readonly http: HttpClient;
  private readonly retry: ResolvedRetryOptions;
  private readonly logger: Logger;

  constructor(connection: Extract<MlflowConnection, { kind: 'rest' }>) {
    this.baseUrl = connection.baseUrl;
    this.trackingUri = connection.displayUri;
    this.http = connection.http;
    this.retry = connection.retry;
    this.logger = connection.logger;
  }

  describe(): string {
    return `MLflow tracking server ${this.trackingUri}`;
  }

  async getExperimentByName(name: string, options: TrackingRequestOptions = {}): Promise<Experiment | undefined> {
    assertExperimentName(name);
    try {
      const body = await this.call('GET', 'experiments/get-by-name', { query: { experiment_name: name }, ...options }, (s) => s.getExperimentResponseSchema);
      return body.experiment;
    } catch (error) {
      if (isDoesNotExist(error)) return undefined;
      throw error;
    }
  }

  async getExperiment(experimentId: string, options: TrackingRequestOptions = {}): Promise<Experiment> {
    assertExperimentId(experimentId);
    const body = await this.call('GET', 'experiments/get', { query: { experiment_id: experimentId }, ...options }, (s) => s.getExperimentResponseSchema);
    return body.experiment;
  }

  async createExperiment(name: string, options: TrackingRequestOptions = {}): Promise<string> {
    assertExperimentName(name);
    try {
      const body = await this.call('POST', 'experiments/create', { json: { name }, ...options }, (s) => s.createExperimentResponseSchema);
      return body.experiment_id;
    } catch (error) {
      // Another process created it between our lookup and our create (or a retried create
      // whose first answer was lost): the experiment exists, which is all we wanted.
      if (!(error instanceof MlflowApiError && error.errorCode === 'RESOURCE_ALREADY_EXISTS')) throw error;
      const existing = await this.getExperimentByName(name, options);
      if (!existing) throw error;
      assertNotDeleted(existing, this.trackingUri);
      return existing.experimentId;
    }
  }

  async getOrCreateExperiment(name: string, options: TrackingRequestOptions = {}): Promise<Experiment> {
    const existing = await this.getExperimentByName(name, options);
    if (existing) {
      assertNotDeleted(existing, this.trackingUri);
      return existing;
    }
    const id = await this.createExperiment(name, options);
    return this.getExperiment(id, options);
  }

  async createRun(input: CreateRunInput, options: TrackingRequestOptions = {}): Promise<Run> {
    assertExperimentId(input.experimentId);
    // A caller's create id would go beside ours: the server refuses the key twice (a 400 with an SQL dump).
    assertNoInternalTags(Object.keys(input.tags ?? {}), 'tags');
    const tags = Object.entries(input.tags ?? {}).map(([key, value]) => {
      assertEntityKey(key, 'tag');
      assertTagValue(key, value);
      return { key, value };
    });
    const createId = randomUUID();
    const json = {
      experiment_id: input.experimentId,
      start_time: input.startTime ?? Date.now(),
      tags: [...tags, { key: CREATE_ID_TAG, value: createId }],
      // JSON.stringify leaves undefined fields out of the body.
      run_name: input.runName,
      user_id: input.userId,
    };
    // Retried like every call, but an attempt after a failure first looks for the run the
    // failed attempt may have made (its answer lost): one run per createRun, never two.
    const run = await withRetry(
      async (attempt, signal) => {
        if (attempt > 1) {
          const made = await this.findCreatedRun(input.experimentId, createId, signal);
          if (made) {
            this.logger.info(`run ${made.info.runId} was created by an attempt whose answer was lost; not creating another`);
            return made;
          }
        }
        const request = this.request('POST', 'runs/create', { json, signal });
        const response = await this.http.send(request);
        const { parseMlflowResponse, runResponseSchema } = await import('./schemas.js');
        return parseMlflowResponse(runResponseSchema, response.body, { method: 'POST', url: request.url }).run;
      },
      {
        retry: this.retry,
        signal: options.signal,
        onRetry: (event) =>
          this.logger.debug(`retrying POST mlflow/runs/create in ${event.delayMs} ms`, {
            attempt: event.attempt,
            error: event.error instanceof Error ? event.error.message : String(event.error),
          }),
      },
    );
    await this.call('POST', 'runs/delete-tag', { json: { run_id: run.info.runId, key: CREATE_ID_TAG }, ...options }, (s) => s.emptyResponseSchema).catch((error: unknown) => {
      this.logger.debug(`could not remove tag ${CREATE_ID_TAG} from run ${run.info.runId}: ${(error as Error).message}`);
    });
    return { ...run, data: { ...run.data, tags: withoutInternalTags(run.data.tags) } };
  }

  /** The run of this experiment tagged with `createId`, if an earlier attempt made it. One attempt: the caller retries. */
  private async findCreatedRun(experimentId: string, createId: string, signal: AbortSignal | undefined): Promise<Run | undefined> {
    const request = this.request('POST', 'runs/search', {
      json: { experiment_ids: [experimentId], filter: `tags.\`${CREATE_ID_TAG}\` = '${createId}'`, max_results: 1 },
      signal,
    });
    const response = await this.http.send(request);
    const { parseMlflowResponse, searchRunsResponseSchema } = await import('./schemas.js');
    return parseMlflowResponse(searchRunsResponseSchema, response.body, { method: 'POST', url: request.url }).runs[0];
  }

  async getRun(runId: string, options: TrackingRequestOptions = {}): Promise<Run> {
    assertRunId(runId);
    const body = await this.call('GET', 'runs/get', { query: { run_id: runId }, ...options }, (s) => s.runResponseSchema);
    return body.run;
  }

  async updateRun(input: UpdateRunInput, options: TrackingRequestOptions = {}): Promise<RunInfo> {
    assertRunId(input.runId);
    const json = {
      // JSON.stringify leaves undefined fields out of the body.
      run_id: input.runId,
      status: input.status,
      end_time: input.endTime,
      run_name: input.runName,
    };
    const body = await this.call('POST', 'runs/update', { json, ...options }, (s) => s.updateRunResponseSchema);
    return body.run_info;
  }

  async logBatch(input: LogBatchInput, options: TrackingRequestOptions = {}): Promise<void> {
    assertRunId(input.runId);
    const batch = normalizeBatch(input);
    for (const chunk of chunkBatch(batch)) {
      const json = {
        run_id: input.runId,
        // proto JSON spells non-finite doubles as strings; a bare NaN is not JSON, and the
        // server silently stores garbage for it.
        metrics: chunk.metrics.map((m) => ({ ...m, value: Number.isFinite(m.value) ? m.value : String(m.value) })),
        params: chunk.params,
        tags: chunk.tags,
      };
      await this.call('POST', 'runs/log-batch', { json, ...options }, (s) => s.emptyResponseSchema);
    }
  }

  async setTag(runId: string, key: string, value: string, options: TrackingRequestOptions = {}): Promise<void> {
    assertRunId(runId);
    assertEntityKey(key, 'tag');
    assertTagValue(key, value);
    await this.call('POST', 'runs/set-tag', { json: { run_id: runId, key, value }, ...options }, (s) => s.emptyResponseSchema);
  }

  async listArtifacts(runId: string, path?: string, options: TrackingRequestOptions = {}): Promise<ArtifactListing> {
    assertRunId(runId);
    const dir = normalizeListPath(path);
    const files: ArtifactFileInfo[] = [];
    let rootUri = '';
    let pageToken: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const query: Record<string, string> = { run_id: runId };
      if (dir) query.path = dir;
      if (pageToken) query.page_token = pageToken;
      const body = await this.call('GET', 'artifacts/list', { query, ...options }, (s) => s.listArtifactsResponseSchema);
      const listing = (await import('./schemas.js')).toArtifactListing(body);
      rootUri ||= listing.rootUri;
      files.push(...listing.files);
      pageToken = body.next_page_token || undefined;
      if (!pageToken) break;
    }
    return { rootUri, files };
  }

  /** One call under the retry policy; the answer is validated with the schema `pick` chooses (loaded with zod on first use). */
  private async call<S extends z.ZodType>(
    method: 'GET' | 'POST',
    path: string,
    options: { query?: Record<string, string>; json?: unknown; signal?: AbortSignal },
    pick: (schemas: typeof Schemas) => S,
  ): Promise<z.output<S>> {
    const request = this.request(method, path, options);
    const response = await this.http.request(request);
    const schemas = await import('./schemas.js');
    return schemas.parseMlflowResponse(pick(schemas), response.body, { method, url: request.url });
  }

  private request(method: 'GET' | 'POST', path: string, options: MlflowRequestOptions): HttpRequest {
    return mlflowRequest(this.baseUrl, method, `mlflow/${path}`, options);
  }
}

/**
 * MLflow's answer for an entity that is not there: a 404 with `RESOURCE_DOES_NOT_EXIST` (not a
 * 404 of a proxy or of a server without the route).
 *
 * @example
 * ```ts
 * const run = await client.getRun(runId).catch((error: unknown) => (isDoesNotExist(error) ? undefined : Promise.reject(error)));
 * ```
 */
export function isDoesNotExist(error: unknown): boolean {
  return error instanceof MlflowApiError && error.status === 404 && error.errorCode === 'RESOURCE_DOES_NOT_EXIST';
}
