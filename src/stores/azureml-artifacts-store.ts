/**
 * The store for runs of an Azure ML workspace, whose artifact URI is
 * `azureml://experiments/<experiment>/runs/<run id>/artifacts` (or the long form with the
 * workspace, `azureml://<host>/mlflow/v2.0/subscriptions/.../workspaces/<ws>/experiments/...`).
 * It writes the way the `azureml-mlflow` plugin's `RunArtifactsClient` does:
 *
 * 1. `POST .../runs/<id>/artifacts/batch/metadata` with the paths registers them and answers one
 *    SAS content URI per path. Paths asked for together (the uploader's files in flight) go in
 *    one request of at most `AZUREML_ARTIFACT_BATCH_SIZE` (50, the plugin's batch size);
 * 2. each file goes to its SAS URI with the block engine of the Azure stores
 *    (`azure-block-upload.ts`): one `Put Blob` up to `maxSinglePutSize`, staged blocks and one
 *    commit above, each block retried on its own; no Azure SDK is needed.
 *
 * The workspace and its token come from the tracking connection (an `azureml://` tracking URI),
 * as the plugin takes them from its tracking store. Listing reads the run-history listing
 * (`GET .../artifacts`, which has no sizes) and asks each listed file's size from the blob itself
 * (`GET .../artifacts/contentinfo` for a read SAS, then `Get Blob Properties`), so verification
 * compares the bytes stored, not only the names.
 *
 * @module
 */
import pLimit from 'p-limit';
import { envNumber, type Env } from '../core/env.js';
import { AbortedError, ConfigError, RemoteError, UnsupportedArtifactStoreError } from '../core/errors.js';
import { throwIfAborted } from '../core/abort.js';
import { formatBytes } from '../core/format.js';
import { redactUrl, silentLogger, type Logger } from '../core/logger.js';
import { guessMimeType } from '../core/mime.js';
import { withRetry, type ResolvedRetryOptions } from '../core/retry.js';
import type { HttpClient } from '../core/http.js';
import { assertArtifactPath, joinArtifactPath } from '../mlflow/artifacts-api.js';
import { AzureMlRunHistoryClient, type AzureMlRunRef, type ContentUriResult } from '../mlflow/azureml-run-history.js';
import type { AzureMlWorkspace } from '../mlflow/azureml-workspace.js';
import type { MlflowConnection } from '../mlflow/connection.js';
import { assertObjectNamesFit, listingPrefixes, type ArtifactEntry, type ArtifactStore, type ArtifactStoreContext, type ArtifactStoreFactory, type UploadFileOptions, type UploadFileResult } from './artifact-store.js';
import { uploadFileAsBlockBlob } from './azure-block-upload.js';
import { AZURE_BLOB_NAME_LIMIT, resolveAzureTransferSettings, type AzureStoreOptions, type AzureTransferSettings } from './azure-config.js';
import { sasBlobSize, sasBlockBlobRequests } from './azure-sas-blob.js';
import { readSourceIfSmall } from './source-file.js';

/** The plugin's batch size of `batch/metadata` (`ARTIFACTS_BATCH_SIZE_DEFAULT`). */
export const DEFAULT_AZUREML_ARTIFACT_BATCH_SIZE = 50;
/** How long a batch of `batch/metadata` paths stays open for more files (a round trip saved per file for 10 ms once). */
const BATCH_WINDOW_MS = 10;
/** Blob size look-ups in flight at once while listing. */
const SIZE_LOOKUP_CONCURRENCY = 8;

/** A parsed `azureml://` run artifact URI. */
export interface AzureMlArtifactLocation extends AzureMlRunRef {
  /** Path under the run's artifacts the URI points at (`''` for the root). */
  rootPath: string;
}

/**
 * Parses a run artifact URI the way the plugin's `artifact_uri_decomp` does: the experiment and
 * run come from `.../experiments/<experiment>/runs/<run id>[/artifacts[/<path>]]`. Model registry
 * URIs (`azureml://.../registries/...`) and other Azure ML URIs (datastores, `<origin>/<container>`
 * locations) are an {@link UnsupportedArtifactStoreError} saying what to do instead.
 *
 * @example
 * ```ts
 * parseAzureMlArtifactUri('azureml://experiments/train/runs/run-1/artifacts'); // { experiment: 'train', runId: 'run-1', rootPath: '' }
 * ```
 */
export function parseAzureMlArtifactUri(uri: string): AzureMlArtifactLocation {
  const trimmed = uri.trim();
  let path: string;
  try {
    path = new URL(trimmed).pathname;
  } catch {
    path = '';
  }
  const authority = /^azureml:\/\/([^/?#]*)/i.exec(trimmed)?.[1] ?? '';
  // `azureml://experiments/...`: the URL parser takes "experiments" for a host.
  const full = authority.toLowerCase() === 'experiments' ? `/experiments${path}` : path;
  const match = /(?:^|\/)experiments\/([^/]+)\/runs\/([^/]+)(\/artifacts(?:\/.*)?)?$/.exec(full);
  if (!match || /\/registries\//i.test(full) || (match[3] === undefined && /\/artifacts\b/.test(full))) {
    throw new UnsupportedArtifactStoreError('azureml', redactUrl(trimmed), {
      hint: /\/registries\//i.test(full)
        ? 'azureml:// registry URIs are models in an Azure ML registry, which this library does not write to: log the files to a run and register the model from it.'
        : 'Only the artifact URIs of Azure ML runs (azureml://experiments/<experiment>/runs/<run id>/artifacts) can be written to: upload to the run itself, or log these files with the azureml-mlflow Python plugin.',
    });
  }
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  const rest = (match[3] ?? '').slice('/artifacts'.length);
  return { experiment: decode(match[1]!), runId: decode(match[2]!), rootPath: joinArtifactPath(decode(rest)) };
}

/** Options of {@link AzureMlArtifactStore}. */
export interface AzureMlArtifactStoreOptions extends AzureStoreOptions {
  /** The connection of the `azureml://` tracking URI the run belongs to (its workspace, token and retry policy). */
  connection: MlflowConnection;
  /** @default process.env */
  env?: Env;
  /** @default silent */
  logger?: Logger;
}

/**
 * Writes and lists the artifacts of one Azure ML run through its workspace's run-history API
 * and the SAS URIs it hands out (see the module comment).
 *
 * @example
 * ```ts
 * const connection = resolveMlflowConnection({ trackingUri: process.env.MLFLOW_TRACKING_URI });
 * const store = new AzureMlArtifactStore('azureml://experiments/train/runs/run-1/artifacts', { connection });
 * await store.uploadFile('out/model.safetensors', 'model/model.safetensors');
 * ```
 */
export class AzureMlArtifactStore implements ArtifactStore {
  readonly kind = 'azureml';
  readonly artifactUri: string;
  readonly location: AzureMlArtifactLocation;
  readonly workspace: AzureMlWorkspace;
  private readonly http: HttpClient;
  private readonly retry: ResolvedRetryOptions;
  private readonly settings: AzureTransferSettings;
  private readonly logger: Logger;
  private readonly history: AzureMlRunHistoryClient;
  private readonly batches: ContentUriBatcher;

  constructor(artifactUri: string, options: AzureMlArtifactStoreOptions) {
    this.location = parseAzureMlArtifactUri(artifactUri);
    const { connection } = options;
    if (connection.kind !== 'rest' || !connection.azureMl) {
      throw new ConfigError(`The run's artifact URI ${redactUrl(artifactUri)} is in an Azure ML workspace, but the tracking URI (${connection.displayUri}) is not that workspace's azureml:// URI.`, {
        issues: [{ path: 'MLFLOW_TRACKING_URI', message: 'expected the azureml:// tracking URI of the workspace' }],
        hint: 'Set MLFLOW_TRACKING_URI to the workspace\'s azureml://<region>.api.azureml.ms/mlflow/v2.0/subscriptions/... URI (Azure ML jobs set it for you).',
      });
    }
    this.workspace = connection.azureMl;
    this.http = connection.http;
    this.retry = connection.retry;
    const env = options.env ?? process.env;
    this.settings = resolveAzureTransferSettings(options, env);
    this.logger = options.logger ?? silentLogger;
    const { experiment, runId, rootPath } = this.location;
    this.artifactUri = `azureml://experiments/${experiment}/runs/${runId}/artifacts${rootPath ? `/${rootPath}` : ''}`;
    this.history = new AzureMlRunHistoryClient(this.http, this.workspace, this.location);
    const batchSize = envNumber('AZUREML_ARTIFACT_BATCH_SIZE', env, { min: 1, integer: true }) ?? DEFAULT_AZUREML_ARTIFACT_BATCH_SIZE;
    this.batches = new ContentUriBatcher((paths, signal) => this.history.createEmptyArtifacts(paths, signal), batchSize);
  }

  describe(): string {
    const s = this.settings;
    return `Azure ML run ${this.location.runId} (experiment ${this.location.experiment}) in workspace ${this.workspace.workspace} via ${this.workspace.origin}: run-history SAS URIs, Put Blob per file up to ${formatBytes(s.maxSinglePutSize)}, blocks of ${formatBytes(s.blockSize)} above, ${s.concurrency} at a time`;
  }

  /**
   * Refuses paths whose blob name in the workspace's storage would pass Azure's 1,024
   * characters. The run history stores a run's artifact at `<origin>/<container>/<path>`, which
   * its answers give as `ExperimentRun` and `dcid.<run id>`: that prefix counts too.
   */
  checkArtifactPaths(artifactPaths: readonly string[]): void {
    const runPrefix = `ExperimentRun/dcid.${this.location.runId}`;
    assertObjectNamesFit(artifactPaths, (artifactPath) => joinArtifactPath(runPrefix, joinArtifactPath(this.location.rootPath, artifactPath)), AZURE_BLOB_NAME_LIMIT);
  }

  async uploadFile(localPath: string, artifactPath: string, options: UploadFileOptions = {}): Promise<UploadFileResult> {
    assertArtifactPath(artifactPath);
    // Before the file is read and before batch/metadata registers the path: Azure would refuse
    // the name (400) only once the run history had registered it and the bytes were sent.
    this.checkArtifactPaths([artifactPath]);
    throwIfAborted(options.signal);
    // A small file is read whole up front (open, fstat, read, close), as the other stores do:
    // its Put Blob sends that buffer on every attempt, with no file handle kept.
    const read = await readSourceIfSmall(localPath, options.size, this.logger);
    const name = joinArtifactPath(this.location.rootPath, artifactPath);
    const where = `azureml://experiments/${this.location.experiment}/runs/${this.location.runId}/artifacts/${name}`;
    return uploadFileAsBlockBlob(localPath, read, options, {
      requests: async (signal) => sasBlockBlobRequests(this.http, await this.batches.contentUri(name, signal), guessMimeType(name).type),
      settings: this.settings,
      retry: this.retry,
      where,
      slowPart: 'the workspace storage',
      logger: this.logger,
      mapError: (error) => error,
    });
  }

  async list(artifactDir?: string, options: { signal?: AbortSignal } = {}): Promise<ArtifactEntry[]> {
    const { prefix, rootPrefix } = listingPrefixes(this.location.rootPath, artifactDir);
    const all = await this.history.listArtifactPaths(options.signal);
    // Direct children of `dir`, as the plugin's list_artifacts derives them from the flat listing.
    const files = new Set<string>();
    const dirs = new Set<string>();
    for (const full of all) {
      if (!full.startsWith(prefix) || full.length === prefix.length) continue;
      const rest = full.slice(prefix.length);
      const slash = rest.indexOf('/');
      if (slash === -1) files.add(full);
      else dirs.add(`${prefix}${rest.slice(0, slash)}`);
    }
    const limit = pLimit(SIZE_LOOKUP_CONCURRENCY);
    const entries = await Promise.all([
      ...[...dirs].map(async (d): Promise<ArtifactEntry> => ({ path: d.slice(rootPrefix.length), isDir: true })),
      ...[...files].map((f) =>
        limit(async (): Promise<ArtifactEntry> => {
          const size = await this.blobSize(f, options.signal);
          return { path: f.slice(rootPrefix.length), isDir: false, ...(size !== undefined ? { size } : {}) };
        }),
      ),
    ]);
    return entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  /** The stored size of one artifact: a read SAS from the run history, then the blob's properties. `undefined` when either is missing. */
  private async blobSize(name: string, signal: AbortSignal | undefined): Promise<number | undefined> {
    const readUri = await this.history.contentUri(name, signal);
    if (readUri === undefined) return undefined;
    return withRetry(() => sasBlobSize(this.http, readUri, signal), { retry: this.retry, ...(signal ? { signal } : {}) });
  }
}

/**
 * Coalesces the content-URI requests of files that start together into `batch/metadata` calls
 * of at most `batchSize` paths: the first request opens a batch, which is sent
 * {@link BATCH_WINDOW_MS} later (files that start together reach it after reading or stat'ing their file), or as
 * soon as it is full.
 */
class ContentUriBatcher {
  private open: Array<{ path: string; resolve: (uri: string) => void; reject: (error: unknown) => void }> = [];
  private scheduled = false;

  constructor(
    private readonly send: (paths: string[], signal?: AbortSignal) => Promise<Map<string, ContentUriResult>>,
    private readonly batchSize: number,
  ) {}

  contentUri(path: string, signal?: AbortSignal): Promise<string> {
    throwIfAborted(signal);
    return new Promise<string>((resolve, reject) => {
      // An aborted file stops waiting; the batch goes on for the others.
      const onAbort = () => reject(new AbortedError(undefined, { cause: signal?.reason }));
      signal?.addEventListener('abort', onAbort, { once: true });
      const settle = () => signal?.removeEventListener('abort', onAbort);
      this.open.push({
        path,
        resolve: (uri) => {
          settle();
          resolve(uri);
        },
        reject: (error) => {
          settle();
          reject(error);
        },
      });
      if (this.open.length >= this.batchSize) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setTimeout(() => this.flush(), BATCH_WINDOW_MS);
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.open.splice(0, this.batchSize);
    if (this.open.length > 0 && !this.scheduled) {
      this.scheduled = true;
      setTimeout(() => this.flush(), BATCH_WINDOW_MS);
    }
    if (batch.length === 0) return;
    // One path may be asked for twice in a batch (two uploads of one name): registered once.
    const paths = [...new Set(batch.map((b) => b.path))];
    this.send(paths).then(
      (results) => {
        for (const { path, resolve, reject } of batch) {
          const result = results.get(path);
          if (result && 'contentUri' in result) resolve(result.contentUri);
          else {
            const error = result?.error ?? { code: 'NoContentUri', message: 'no answer for this path' };
            reject(
              new RemoteError(`AZUREML_ARTIFACT_${error.code}`, `The Azure ML workspace refused the artifact ${path}: ${error.code}: ${error.message}`, {
                hint: 'Check the artifact path (the run history refuses some names) and that the run is not finished or deleted; upload again to retry.',
              }),
            );
          }
        }
      },
      (error: unknown) => {
        for (const { reject } of batch) reject(error);
      },
    );
  }
}

/**
 * The factory `resolve.ts` registers for `azureml:` URIs: the workspace, token and retry policy
 * come from the tracking connection; block settings from `context.azure`, then the env vars.
 */
export const azureMlArtifactsStoreFactory: ArtifactStoreFactory = {
  schemes: ['azureml'],
  label: 'azureml: (runs of an Azure ML workspace, through its run-history API; needs the azureml:// tracking URI)',
  create(artifactUri: string, context: ArtifactStoreContext): ArtifactStore {
    return new AzureMlArtifactStore(artifactUri, { ...context.azure, connection: context.connection, env: context.env, logger: context.logger });
  },
};
