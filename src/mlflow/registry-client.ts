/**
 * MLflow 3's logged models and Model Registry over REST (`/api/2.0/mlflow/logged-models`,
 * `registered-models/*`, `model-versions/*`, `runs/outputs`), checked against MLflow 3.17's
 * handlers. Every call is retried by the shared policy; the two creates that must not repeat
 * look for what an attempt whose answer was lost made before trying again, by a one-off id: a
 * logged model by a one-off tag, as `createRun` does; a model version by its source, the
 * logged model the registration made (no tag on the version, which a killed process would
 * leave there for good). A server without these routes (no registry, or
 * older than MLflow 3) is a {@link RegistryError} `REGISTRY_UNAVAILABLE`.
 *
 * @module
 */
import { randomUUID } from '../core/node-crypto.js';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MlflowApiError, RegistryError } from '../core/errors.js';
import type { HttpClient, HttpRequest } from '../core/http.js';
import type { Logger } from '../core/logger.js';
import { withRetry } from '../core/retry.js';
import { mlflowErrorMapper, mlflowRequest, type MlflowConnection, type MlflowRequestOptions } from './connection.js';
import { CREATE_ID_TAG, withoutInternalTags } from './internal-tags.js';
import type { LoggedModel, ModelVersion } from './registry-types.js';
import type * as z from 'zod';

type Schemas = typeof import('./schemas.js') & typeof import('./registry-schemas.js');

/** The answer schemas, and zod with them, load with the first answer, not when the package is imported. */
async function loadSchemas(): Promise<Schemas> {
  const [tracking, registry] = await Promise.all([import('./schemas.js'), import('./registry-schemas.js')]);
  return { ...tracking, ...registry };
}

/** Safety net against a server that keeps answering with a page token. */
const MAX_PAGES = 1000;
/** How long an aborted create looks for what it may have made before giving up on removing it. */
const ABORTED_CREATE_LOOKUP_MS = 10_000;

/** Per-call options. */
export interface RegistryRequestOptions {
  /** Cancels the call (and its retries). */
  signal?: AbortSignal;
}

/** What {@link MlflowRegistryClient.createLoggedModel} takes. */
export interface CreateLoggedModelInput {
  experimentId: string;
  name: string;
  /** The run that produced the model. */
  sourceRunId?: string;
  tags?: Record<string, string>;
}

/** What {@link MlflowRegistryClient.createModelVersion} takes. */
export interface CreateModelVersionInput {
  name: string;
  /** `models:/<model id>` for a logged model. */
  source: string;
  runId?: string;
  modelId?: string;
  tags?: Record<string, string>;
  description?: string;
}

/**
 * Logged models and the Model Registry of an MLflow tracking server.
 *
 * @example
 * ```ts
 * const conn = resolveMlflowConnection({ trackingUri: 'http://127.0.0.1:5000' });
 * if (conn.kind === 'rest') {
 *   const registry = new MlflowRegistryClient(conn);
 *   const version = await registry.getModelVersion('llama-lora', '3');
 * }
 * ```
 */
export class MlflowRegistryClient {
  constructor(private readonly connection: Extract<MlflowConnection, { kind: 'rest' }>) {}

  private get baseUrl(): string {
    return this.connection.baseUrl;
  }

  private get http(): HttpClient {
    return this.connection.http;
  }

  private get logger(): Logger {
    return this.connection.logger;
  }

  // ───────────────────────────── logged models ─────────────────────────────

  /** Creates a logged model (status PENDING); one per call, also when an answer is lost. */
  async createLoggedModel(input: CreateLoggedModelInput, options: RegistryRequestOptions = {}): Promise<LoggedModel> {
    const createId = randomUUID();
    const json = {
      experiment_id: input.experimentId,
      name: input.name,
      ...(input.sourceRunId ? { source_run_id: input.sourceRunId } : {}),
      tags: toTagList({ ...input.tags, [CREATE_ID_TAG]: createId }),
    };
    const model = await this.createOnce(
      'mlflow/logged-models',
      async (signal) => (await this.searchLoggedModels(input.experimentId, `tags.\`${CREATE_ID_TAG}\` = '${createId}'`, { signal }))[0],
      async (signal) => (await this.send('POST', 'mlflow/logged-models', { json, signal }, (s) => s.loggedModelResponseSchema)).model,
      options,
      async (made) => {
        await this.finalizeLoggedModel(made.modelId, 'FAILED');
        await this.deleteLoggedModel(made.modelId);
      },
    );
    await this.call('DELETE', `mlflow/logged-models/${encodeURIComponent(model.modelId)}/tags/${encodeURIComponent(CREATE_ID_TAG)}`, options, (s) => s.emptyResponseSchema).catch(
      (error: unknown) => this.logger.debug(`could not remove tag ${CREATE_ID_TAG} from logged model ${model.modelId}: ${(error as Error).message}`),
    );
    return { ...model, tags: withoutInternalTags(model.tags) };
  }

  /**
   * Logged models of an experiment matching an MLflow search filter, every page (100 a page, the
   * server's default). The first page alone missed the 101st model a key's look-ups must see: the
   * clean-up of killed attempts and the reuse of a READY one (registry/register-model.ts).
   */
  async searchLoggedModels(experimentId: string, filter: string, options: RegistryRequestOptions = {}): Promise<LoggedModel[]> {
    const out: LoggedModel[] = [];
    let pageToken: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const json = { experiment_ids: [experimentId], filter, max_results: 100, ...(pageToken ? { page_token: pageToken } : {}) };
      const body = await this.call('POST', 'mlflow/logged-models/search', { json, ...options }, (s) => s.searchLoggedModelsResponseSchema);
      out.push(...body.models);
      pageToken = body.next_page_token || undefined;
      if (!pageToken) break;
    }
    return out;
  }

  /** The logged model. */
  async getLoggedModel(modelId: string, options: RegistryRequestOptions = {}): Promise<LoggedModel> {
    return (await this.call('GET', `mlflow/logged-models/${encodeURIComponent(modelId)}`, options, (s) => s.loggedModelResponseSchema)).model;
  }

  /** Sets a logged model's final status. */
  async finalizeLoggedModel(modelId: string, status: 'READY' | 'FAILED', options: RegistryRequestOptions = {}): Promise<LoggedModel> {
    const json = { model_id: modelId, status: `LOGGED_MODEL_${status}` };
    return (await this.call('PATCH', `mlflow/logged-models/${encodeURIComponent(modelId)}`, { json, ...options }, (s) => s.loggedModelResponseSchema)).model;
  }

  /** Deletes a logged model (MLflow keeps it as `deleted` until `mlflow gc`). */
  async deleteLoggedModel(modelId: string, options: RegistryRequestOptions = {}): Promise<void> {
    await this.call('DELETE', `mlflow/logged-models/${encodeURIComponent(modelId)}`, { json: { model_id: modelId }, ...options }, (s) => s.emptyResponseSchema);
  }

  /**
   * Records logged models as outputs of a run (`runs/outputs`), which the run page lists. Not
   * idempotent on the server (a second insert fails on a UNIQUE constraint, a 400): a retry
   * first reads the run's outputs, and does not send again what an attempt whose answer was
   * lost recorded. `mayBeLogged`: the first attempt reads them too (a logged model an earlier,
   * killed process made and may have recorded already).
   */
  async logRunOutputs(runId: string, modelIds: readonly string[], options: RegistryRequestOptions & { mayBeLogged?: boolean } = {}): Promise<void> {
    const json = { run_id: runId, models: modelIds.map((modelId) => ({ model_id: modelId, step: 0 })) };
    await this.createWithRetries(
      'mlflow/runs/outputs',
      async (signal) => {
        const outputs = await this.send('GET', 'mlflow/runs/get', { query: { run_id: runId }, signal }, (s) => s.runModelOutputsResponseSchema);
        return modelIds.every((id) => outputs.includes(id)) ? true : undefined;
      },
      async (signal) => {
        await this.send('POST', 'mlflow/runs/outputs', { json, signal }, (s) => s.emptyResponseSchema);
        return true;
      },
      options,
      options.mayBeLogged === true,
    );
  }

  // ───────────────────────────── registered models and versions ─────────────────────────────

  /**
   * Creates the registered model; `false` when it exists already (made earlier, or by another
   * process a moment ago: MLflow's `RESOURCE_ALREADY_EXISTS` is not an error here).
   */
  async createRegisteredModel(name: string, options: RegistryRequestOptions = {}): Promise<boolean> {
    try {
      await this.call('POST', 'mlflow/registered-models/create', { json: { name }, ...options }, (s) => s.registeredModelResponseSchema);
      return true;
    } catch (error) {
      if (error instanceof MlflowApiError && (error.errorCode === 'RESOURCE_ALREADY_EXISTS' || error.errorCode === 'ALREADY_EXISTS')) return false;
      throw error;
    }
  }

  /**
   * Creates a model version; one per call, also when an answer is lost. `source` must be a
   * source no other call registers under `name` (the logged model this registration just made,
   * `models:/<model id>`): it is the one-off id a retry looks for. A one-off tag would do the
   * same, but removing it takes a request after the create, and a process killed before that
   * left it on the version for good (in the MLflow UI, and in what a later call with the same
   * idempotency key returned); no later call can tell a dead process's tag from a live one's.
   */
  async createModelVersion(input: CreateModelVersionInput, options: RegistryRequestOptions = {}): Promise<ModelVersion> {
    const json = {
      name: input.name,
      source: input.source,
      ...(input.runId ? { run_id: input.runId } : {}),
      ...(input.modelId ? { model_id: input.modelId } : {}),
      ...(input.description ? { description: input.description } : {}),
      ...(input.tags ? { tags: toTagList(input.tags) } : {}),
    };
    return this.createOnce(
      'mlflow/model-versions/create',
      async (signal) => (await this.searchModelVersionsOf(input.name, 'source_path', input.source, { signal })).find((v) => v.source === input.source),
      async (signal) => (await this.send('POST', 'mlflow/model-versions/create', { json, signal }, (s) => s.modelVersionResponseSchema)).model_version,
      options,
      (made) => this.deleteModelVersion(made.name, made.version),
    );
  }

  /** The model version. */
  async getModelVersion(name: string, version: string, options: RegistryRequestOptions = {}): Promise<ModelVersion> {
    return (await this.call('GET', 'mlflow/model-versions/get', { query: { name, version }, ...options }, (s) => s.modelVersionResponseSchema)).model_version;
  }

  /** Every model version matching an MLflow search filter (e.g. `name='m' and tags.k = 'v'`), every page. */
  async searchModelVersions(filter: string, options: RegistryRequestOptions = {}): Promise<ModelVersion[]> {
    const out: ModelVersion[] = [];
    let pageToken: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const query: Record<string, string> = { filter, max_results: '1000' };
      if (pageToken) query.page_token = pageToken;
      const body = await this.call('GET', 'mlflow/model-versions/search', { query, ...options }, (s) => s.searchModelVersionsResponseSchema);
      out.push(...body.model_versions);
      pageToken = body.next_page_token || undefined;
      if (!pageToken) break;
    }
    return out;
  }

  /**
   * The versions of registered model `name` carrying tag `key` = `value` (a value without quotes
   * or spaces, such as an idempotency key or a one-off id). MLflow's filter has no escape for a
   * quote inside a string (`'o''brien'` is the literal `o''brien`): the name is quoted with the
   * quote it does not hold, and a name holding both, or ending with `\` (which escapes the closing
   * quote), is left out of the filter; the versions are matched by name here in every case.
   */
  async searchModelVersionsByTag(name: string, key: string, value: string, options: RegistryRequestOptions = {}): Promise<ModelVersion[]> {
    return this.searchModelVersionsOf(name, `tags.\`${key}\``, value, options);
  }

  /**
   * The versions of registered model `name` whose `field` (a search key of MLflow's filter:
   * `source_path`, `run_id`, a tag) is `value`, a value without `'`; the name is quoted as in
   * {@link searchModelVersionsByTag}, and the versions are matched by name here.
   */
  private async searchModelVersionsOf(name: string, field: string, value: string, options: RegistryRequestOptions): Promise<ModelVersion[]> {
    // A name ending with `\` cannot be quoted at all: the parser reads `\'` (or `\"`) as an
    // escaped quote, the string never closes, and the whole filter is a 400 "Invalid clause(s)".
    const quote = name.endsWith('\\') ? undefined : !name.includes("'") ? "'" : !name.includes('"') ? '"' : undefined;
    const clause = `${field} = '${value}'`;
    const filter = quote === undefined ? clause : `name=${quote}${name}${quote} and ${clause}`;
    return (await this.searchModelVersions(filter, options)).filter((v) => v.name === name);
  }

  /** Deletes a model version. */
  async deleteModelVersion(name: string, version: string, options: RegistryRequestOptions = {}): Promise<void> {
    await this.call('DELETE', 'mlflow/model-versions/delete', { json: { name, version }, ...options }, (s) => s.emptyResponseSchema);
  }

  /** Sets (or overwrites) a tag of a model version. */
  async setModelVersionTag(name: string, version: string, key: string, value: string, options: RegistryRequestOptions = {}): Promise<void> {
    await this.call('POST', 'mlflow/model-versions/set-tag', { json: { name, version, key, value }, ...options }, (s) => s.emptyResponseSchema);
  }

  /**
   * The aliases of registered model `name`, alias → the version it points at.
   *
   * @example
   * ```ts
   * const conn = resolveMlflowConnection({ trackingUri: 'http://127.0.0.1:5000' });
   * if (conn.kind === 'rest') {
   *   const aliases = await new MlflowRegistryClient(conn).getRegisteredModelAliases('llama-lora');
   *   aliases.champion; // '3'
   * }
   * ```
   */
  async getRegisteredModelAliases(name: string, options: RegistryRequestOptions = {}): Promise<Record<string, string>> {
    return this.call('GET', 'mlflow/registered-models/get', { query: { name }, ...options }, (s) => s.registeredModelAliasesResponseSchema);
  }

  /** Points an alias at a version (moving it from another version, if it was there). */
  async setAlias(name: string, alias: string, version: string, options: RegistryRequestOptions = {}): Promise<void> {
    await this.call('POST', 'mlflow/registered-models/alias', { json: { name, alias, version }, ...options }, (s) => s.emptyResponseSchema);
  }

  // ───────────────────────────── run artifacts ─────────────────────────────

  /**
   * Downloads one run artifact to `destination` through the server's `/get-artifact` route,
   * which reads every artifact store the server can (proxied, `s3:`, local). A partial file is
   * removed before a retry and after a failure.
   */
  async downloadRunArtifact(runId: string, artifactPath: string, destination: string, options: RegistryRequestOptions = {}): Promise<void> {
    const url = new URL(`${this.baseUrl}/get-artifact`);
    url.searchParams.set('run_id', runId);
    url.searchParams.set('path', artifactPath);
    await mkdir(dirname(destination), { recursive: true });
    try {
      await withRetry(
        async (_attempt, signal) => {
          const request: HttpRequest = { method: 'GET', url: url.toString(), responseType: 'stream', mapError: mlflowErrorMapper('get-artifact'), ...(signal ? { signal } : {}) };
          const response = await this.http.send<Readable>(request);
          await pipeline(response.body, createWriteStream(destination), signal ? { signal } : {});
        },
        { retry: this.connection.retry, ...(options.signal ? { signal: options.signal } : {}) },
      );
    } catch (error) {
      await rm(destination, { force: true });
      throw error;
    }
  }

  // ───────────────────────────── plumbing ─────────────────────────────

  /**
   * Creates once: a retry first looks for what an attempt whose answer was lost made (`find`,
   * by the one-off id the create carries). An abort can land in the same gap, after the server
   * made the thing and before its answer arrived, and then the caller never learns it exists:
   * so an aborted create looks it up once more, without the aborted signal (bounded), and
   * `discard`s it, leaving nothing behind.
   */
  private async createOnce<T>(
    endpoint: string,
    find: (signal: AbortSignal | undefined) => Promise<T | undefined>,
    create: (signal: AbortSignal | undefined) => Promise<T>,
    options: RegistryRequestOptions,
    discard: (made: T) => Promise<void>,
  ): Promise<T> {
    try {
      return await this.createWithRetries(endpoint, find, create, options);
    } catch (error) {
      if (options.signal?.aborted) {
        const made = await find(AbortSignal.timeout(ABORTED_CREATE_LOOKUP_MS)).catch(() => undefined);
        if (made) {
          this.logger.info(`${endpoint}: the aborted call had been answered; removing what it made`);
          await discard(made).catch((discardError: unknown) => this.logger.warn(`${endpoint}: could not remove what the aborted call made: ${(discardError as Error).message}`));
        }
      }
      throw error;
    }
  }

  /**
   * Runs a create under the retry policy; an attempt after a failure first looks for what the
   * failed one may have made (with `findFirst`, the first attempt too).
   */
  private createWithRetries<T>(
    endpoint: string,
    find: (signal: AbortSignal | undefined) => Promise<T | undefined>,
    create: (signal: AbortSignal | undefined) => Promise<T>,
    options: RegistryRequestOptions,
    findFirst = false,
  ): Promise<T> {
    return withRetry(
      async (attempt, signal) => {
        try {
          if (attempt > 1 || findFirst) {
            const made = await find(signal);
            if (made) {
              this.logger.info(`${endpoint}: an attempt whose answer was lost had made it; not creating another`);
              return made;
            }
          }
          return await create(signal);
        } catch (error) {
          throw unavailable(error, endpoint);
        }
      },
      {
        retry: this.connection.retry,
        ...(options.signal ? { signal: options.signal } : {}),
        onRetry: (event) => this.logger.debug(`retrying ${endpoint} in ${event.delayMs} ms`, { attempt: event.attempt }),
      },
    );
  }

  /** One attempt (no retries). */
  private async send<S extends z.ZodType>(method: HttpRequest['method'], endpoint: string, options: MlflowRequestOptions, pick: (schemas: Schemas) => S): Promise<z.output<S>> {
    const request = mlflowRequest(this.baseUrl, method, endpoint, options);
    const response = await this.http.send(request);
    const schemas = await loadSchemas();
    return schemas.parseMlflowResponse(pick(schemas), response.body, { method, url: request.url });
  }

  /** With retries. */
  private async call<S extends z.ZodType>(method: HttpRequest['method'], endpoint: string, options: MlflowRequestOptions, pick: (schemas: Schemas) => S): Promise<z.output<S>> {
    const request = mlflowRequest(this.baseUrl, method, endpoint, options);
    try {
      const response = await this.http.request(request);
      const schemas = await loadSchemas();
      return schemas.parseMlflowResponse(pick(schemas), response.body, { method, url: request.url });
    } catch (error) {
      throw unavailable(error, endpoint);
    }
  }
}

function toTagList(tags: Record<string, string>): Array<{ key: string; value: string }> {
  return Object.entries(tags).map(([key, value]) => ({ key, value }));
}

/**
 * A registry route the server does not have (a 404 that is not MLflow's JSON, or
 * `ENDPOINT_NOT_FOUND`; a 501) means no Model Registry there: said once, clearly.
 */
function unavailable(error: unknown, endpoint: string): unknown {
  if (!(error instanceof MlflowApiError)) return error;
  const missingRoute = (error.status === 404 && (error.errorCode.startsWith('HTTP_') || error.errorCode === 'ENDPOINT_NOT_FOUND')) || error.status === 501 || error.status === 405;
  if (!missingRoute) return error;
  return new RegistryError('REGISTRY_UNAVAILABLE', `The MLflow server does not offer ${endpoint} (${error.status} ${error.errorCode}): its Model Registry or MLflow 3 logged models are not available there.`, {
    hint: 'Use an MLflow 3 tracking server with a database backend (e.g. `mlflow server --backend-store-uri sqlite:///mlflow.db`), and check that no proxy blocks the /api/2.0/mlflow/registered-models, model-versions and logged-models routes.',
    cause: error,
  });
}
