/**
 * Picks the {@link ArtifactStore} for a run's artifact URI by scheme, as MLflow's
 * `artifact_repository_registry.py` does. The registry is the list below: a new store is one
 * file exporting an {@link ArtifactStoreFactory} plus one line in {@link STORE_FACTORIES}.
 *
 * @module
 */
import type { Env } from '../core/env.js';
import { UnsupportedArtifactStoreError } from '../core/errors.js';
import { redactUrl, type Logger } from '../core/logger.js';
import type { MlflowConnection } from '../mlflow/connection.js';
import type { ArtifactStore, ArtifactStoreFactory, StoreOptions } from './artifact-store.js';
import { azureBlobStoreFactory } from './azure-blob-store.js';
import { azureMlArtifactsStoreFactory } from './azureml-artifacts-store.js';
import { gcsStoreFactory } from './gcs-store.js';
import { localFileStoreFactory } from './local-file-store.js';
import { mlflowArtifactsStoreFactory } from './mlflow-artifacts-store.js';
import { s3StoreFactory } from './s3-store.js';

/**
 * The registry. Order does not matter; each scheme belongs to one factory.
 */
const STORE_FACTORIES: readonly ArtifactStoreFactory[] = [
  mlflowArtifactsStoreFactory,
  localFileStoreFactory,
  s3StoreFactory,
  gcsStoreFactory,
  azureBlobStoreFactory,
  azureMlArtifactsStoreFactory,
];

/** Why each scheme we cannot write to is refused, and what to do instead. */
const UNSUPPORTED_HINTS: Record<string, string> = {
  runs: 'runs:/ URIs are references to another run\'s artifacts, not a place to write: upload to the run itself (pass its run id).',
  models: 'models:/ URIs are read-only references; log artifacts to a run instead.',
};
const PROXY_HINT =
  'Start the tracking server with `mlflow server --serve-artifacts --artifacts-destination <this store>` so artifacts are proxied through it (runs then get mlflow-artifacts: URIs), or use a file: artifact root.';

/** Options of {@link resolveArtifactStore}: the {@link StoreOptions}, passed to the store as they are. */
export interface ResolveArtifactStoreOptions extends StoreOptions {
  /** The tracking connection the run belongs to (`resolveMlflowConnection`). */
  connection: MlflowConnection;
  /** Environment to read (multipart, S3, GCS and Azure env vars). @default process.env */
  env?: Env;
  /** @default the connection's logger */
  logger?: Logger;
}

/**
 * Returns the store that writes to `artifactUri`: `mlflow-artifacts:` and proxied `http(s):`
 * URIs go through the tracking server (streamed PUT, multipart for large files); `file:` URIs
 * and plain paths are copied locally; `s3:`, `gs:` and `wasbs:`/`abfss:` URIs are written to
 * the bucket or storage account directly (the AWS SDK, `@google-cloud/storage` and
 * `@azure/storage-blob`, optional peer dependencies); `azureml:` URIs (runs of an Azure ML
 * workspace) through the workspace's run-history API and the SAS URIs it hands out. Anything else (`dbfs:`, `runs:` ...)
 * throws {@link UnsupportedArtifactStoreError} naming the scheme and the proxied alternative.
 *
 * @example
 * ```ts
 * const connection = resolveMlflowConnection({ trackingUri: 'http://127.0.0.1:5000' });
 * const store = resolveArtifactStore('mlflow-artifacts:/1/0a1b2c/artifacts', { connection });
 * await store.uploadFile('model.onnx', 'model/model.onnx');
 * ```
 */
export function resolveArtifactStore(artifactUri: string, options: ResolveArtifactStoreOptions): ArtifactStore {
  const uri = artifactUri.trim();
  const scheme = uriScheme(uri);
  const factory = STORE_FACTORIES.find((f) => f.schemes.includes(scheme));
  const supported = supportedArtifactStores();
  if (!factory) {
    throw new UnsupportedArtifactStoreError(scheme, redactUrl(uri), { supported, hint: UNSUPPORTED_HINTS[scheme] ?? PROXY_HINT });
  }
  return factory.create(uri, {
    ...options,
    env: options.env ?? process.env,
    logger: options.logger ?? options.connection.logger,
    supported,
  });
}

/**
 * The artifact URI schemes this library can write to, as they read in error messages.
 *
 * @example
 * ```ts
 * supportedArtifactStores(); // ['mlflow-artifacts: and http(s): (proxied through the tracking server)', 'file: (local paths)', ...]
 * ```
 */
export function supportedArtifactStores(): string[] {
  return STORE_FACTORIES.map((f) => f.label);
}

/** Lower-case scheme of a URI; `''` for a plain path (including Windows `C:\...`). */
function uriScheme(uri: string): string {
  const match = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(uri);
  if (!match?.[1] || (match[1].length === 1 && /^[a-zA-Z]:[\\/]/.test(uri))) return '';
  return match[1].toLowerCase();
}
