/**
 * The store for runs whose artifact URI is `wasbs://<container>@<account>.blob.core.windows.net/<path>`
 * (Azure Blob Storage) or `abfss://<filesystem>@<account>.dfs.core.windows.net/<path>` (ADLS
 * Gen2): a tracking server started with `--no-serve-artifacts --default-artifact-root` on one of
 * them, where the client writes to the storage account itself, as MLflow's Python client does.
 * Built on the optional peer dependency `@azure/storage-blob` (plus `@azure/identity` for
 * Entra ID credentials), imported only when such a URI is used.
 *
 * - Blob names are MLflow's: `<path of the artifact URI>/<artifact path>`, so `MlflowClient`
 *   and `mlflow ui` list and download what this store writes.
 * - `abfss://` goes to the account's Blob endpoint (`dfs` → `blob` in the host name), which
 *   writes the same files as the DataLake API on a hierarchical-namespace account (Azure's
 *   multi-protocol access); see docs/azure.md for what that covers.
 * - Upload: `azure-block-upload.ts` (single `Put Blob` for small files, staged blocks with
 *   bounded concurrency and one commit for large ones). The SDK's own retries are off: every
 *   request goes through the shared policy (`core/retry.ts`), so each block is retried alone.
 * - Resume (`UploadFileOptions.resume`): block ids are recorded in the journal, and a rerun
 *   keeps the blocks Azure still holds uncommitted (Get Block List) instead of sending them.
 * - A source that changed during its upload (`UploadFileOptions.snapshot`) is
 *   `SOURCE_CHANGED` and leaves no blob: its blocks are not committed, a single `Put Blob` is
 *   deleted again.
 *
 * No Azure SDK type appears in this module's exported signatures: users without the peers
 * installed still get clean `.d.ts` files.
 *
 * @module
 */
import { Readable } from 'node:stream';
import type * as StorageBlob from '@azure/storage-blob';
import type { Env } from '../core/env.js';
import { AbortedError, ArtifactUploaderError, ConfigError, HttpStatusError, NetworkError } from '../core/errors.js';
import { guessMimeType } from '../core/mime.js';
import { redact, silentLogger, type Logger } from '../core/logger.js';
import { loadOptionalModule } from '../core/optional-dependency.js';
import { throwIfAborted } from '../core/abort.js';
import { FILE_CHUNK_BYTES } from '../core/file-chunks.js';
import { firstLine, formatBytes } from '../core/format.js';
import {
  isLowLevelNetworkError,
  isTransientCredentialError,
  toResolvedRetryOptions,
  withRetry,
  type ResolvedRetryOptions,
  type RetryOptions,
} from '../core/retry.js';
import { assertArtifactPath, joinArtifactPath } from '../mlflow/artifacts-api.js';
import { keepingTokenOutage } from '../mlflow/azureml-auth.js';
import { assertObjectNamesFit, listingPrefixes, type ArtifactEntry, type ArtifactStore, type ArtifactStoreContext, type ArtifactStoreFactory, type UploadFileOptions, type UploadFileResult } from './artifact-store.js';
import { uploadFileAsBlockBlob, type BlockBlobRequests } from './azure-block-upload.js';
import { blobRefusalHint } from './azure-blob-refusals.js';
import {
  AZURE_BLOB_NAME_LIMIT,
  normalizeAzureConnectionString,
  parseAzureUri,
  resolveAzureConfig,
  type AzureArtifactLocation,
  type AzureStoreOptions,
  type AzureTokenCredential,
  type ResolvedAzureConfig,
} from './azure-config.js';
import { readSourceIfSmall } from './source-file.js';

/** The npm package every Azure artifact URI needs. */
export const AZURE_BLOB_PEER_PACKAGE = '@azure/storage-blob';
/** The npm package Entra ID credentials (`DefaultAzureCredential`) need. */
export const AZURE_IDENTITY_PEER_PACKAGE = '@azure/identity';

/** Loads the Azure SDK modules. The defaults use `import()`; tests inject failures. */
export interface AzureSdkLoaders {
  /** @default `import('@azure/storage-blob')` */
  storageBlob?: () => Promise<object>;
  /** @default `import('@azure/identity')` */
  identity?: () => Promise<object>;
}

/** Options of {@link AzureBlobArtifactStore}: the Azure settings plus what the store runs with. */
export interface AzureBlobArtifactStoreOptions extends AzureStoreOptions {
  /**
   * Retry policy of every request, each block on its own (`maxRetries`, backoff); its
   * `totalTimeoutMs` bounds one file.
   * @default from MLflow's env vars (`MLFLOW_HTTP_REQUEST_MAX_RETRIES`, ...), else MLflow's defaults
   */
  retry?: RetryOptions | ResolvedRetryOptions;
  /** Environment to read instead of `process.env`. */
  env?: Env;
  /** Where to log (debug lines on retries). @default silent */
  logger?: Logger;
  /** Replace only to simulate a missing install in tests. */
  loadSdk?: AzureSdkLoaders;
}

type StorageBlobModule = typeof StorageBlob;

/**
 * Writes a run's artifacts straight to an Azure Blob container (`wasbs://`) or an ADLS Gen2
 * file system (`abfss://`, through its Blob endpoint).
 *
 * @example
 * ```ts
 * const store = new AzureBlobArtifactStore('wasbs://ml@acct.blob.core.windows.net/mlflow/1/0a1b2c/artifacts', {
 *   connectionString: process.env.AZURE_STORAGE_CONNECTION_STRING,
 * });
 * await store.uploadFile('out/model.safetensors', 'model/model.safetensors');
 * await store.list('model'); // [{ path: 'model/model.safetensors', isDir: false, size: 123456 }]
 * ```
 */
export class AzureBlobArtifactStore implements ArtifactStore {
  readonly kind: 'azure-blob' | 'azure-adls';
  readonly artifactUri: string;
  /** The parsed URI: container, account, root path. */
  readonly location: AzureArtifactLocation;
  private readonly config: ResolvedAzureConfig;
  private readonly retry: ResolvedRetryOptions;
  private readonly logger: Logger;
  private readonly loaders: Required<AzureSdkLoaders>;
  private containerPromise?: Promise<StorageBlob.ContainerClient>;

  constructor(artifactUri: string, options: AzureBlobArtifactStoreOptions = {}) {
    this.location = parseAzureUri(artifactUri);
    const { kind, container, account, suffix, rootPath } = this.location;
    this.kind = kind === 'wasbs' ? 'azure-blob' : 'azure-adls';
    this.artifactUri = `${kind}://${container}@${account}.${suffix}${rootPath ? `/${rootPath}` : ''}`;
    const env = options.env ?? process.env;
    this.config = resolveAzureConfig(kind, options, env);
    this.retry = toResolvedRetryOptions(options.retry, env);
    this.logger = options.logger ?? silentLogger;
    this.loaders = {
      storageBlob: options.loadSdk?.storageBlob ?? (() => import('@azure/storage-blob')),
      identity: options.loadSdk?.identity ?? (() => import('@azure/identity')),
    };
  }

  describe(): string {
    const c = this.config;
    const where = c.auth.kind === 'connection-string' ? `the endpoint of ${c.auth.source}` : (c.blobEndpoint ?? this.location.blobAccountUrl);
    return `Azure ${this.kind === 'azure-blob' ? 'Blob' : 'ADLS Gen2 (Blob endpoint)'} ${this.artifactUri} via ${where} (${c.auth.source}): Put Blob per file up to ${formatBytes(c.maxSinglePutSize)}, blocks of ${formatBytes(c.blockSize)} above, ${c.concurrency} at a time`;
  }

  checkArtifactPaths(artifactPaths: readonly string[]): void {
    assertObjectNamesFit(artifactPaths, (artifactPath) => joinArtifactPath(this.location.rootPath, artifactPath), AZURE_BLOB_NAME_LIMIT);
  }

  async uploadFile(localPath: string, artifactPath: string, options: UploadFileOptions = {}): Promise<UploadFileResult> {
    assertArtifactPath(artifactPath);
    // Before the file is read: Azure would refuse the name (400) only once the bytes were sent.
    this.checkArtifactPaths([artifactPath]);
    throwIfAborted(options.signal);
    // A small file is read whole up front (open, fstat, read, close), as the other stores do:
    // its Put Blob sends that buffer on every attempt, with no file handle kept.
    const read = await readSourceIfSmall(localPath, options.size, this.logger);
    const name = joinArtifactPath(this.location.rootPath, artifactPath);
    const url = this.target(name);
    const container = await this.getContainer();
    throwIfAborted(options.signal);

    const blob = container.getBlockBlobClient(name);
    const contentType = guessMimeType(name).type;
    const headers: StorageBlob.BlobHTTPHeaders = contentType ? { blobContentType: contentType } : {};
    const requests: BlockBlobRequests = {
      putBlob: async (body, contentMd5, abortSignal, onProgress) => {
        await blob.upload(inSlices(body), body.length, { abortSignal, onProgress, blobHTTPHeaders: { ...headers, blobContentMD5: contentMd5 } });
      },
      stageBlock: async (blockId, body, contentMd5, abortSignal, onProgress) => {
        await blob.stageBlock(blockId, inSlices(body), body.length, { abortSignal, onProgress, transactionalContentMD5: contentMd5 });
      },
      commitBlockList: async (blockIds, abortSignal) => {
        await blob.commitBlockList(blockIds, { abortSignal, blobHTTPHeaders: headers });
      },
      deleteBlob: async (abortSignal) => {
        await blob.deleteIfExists({ abortSignal });
      },
      uncommittedBlocks: async (abortSignal) => {
        try {
          const list = await blob.getBlockList('uncommitted', { abortSignal });
          return new Map((list.uncommittedBlocks ?? []).map((b) => [b.name, b.size]));
        } catch (error) {
          if ((error as { statusCode?: number }).statusCode === 404) return new Map(); // no blob and no blocks
          throw error;
        }
      },
    };
    return uploadFileAsBlockBlob(localPath, read, options, {
      requests: async () => requests,
      settings: this.config,
      retry: this.retry,
      // The SDK's requests have no idle timeout, only MLflow's 600 s for the whole request: a
      // stalled block waited it out. Our HTTP client's (MLFLOW_HTTP_REQUEST_TIMEOUT) applies.
      stallTimeoutMs: this.retry.timeoutMs,
      where: url,
      slowPart: 'the storage account',
      logger: this.logger,
      mapError: (error) => this.toError(error, read.size > this.config.maxSinglePutSize ? 'block upload' : 'Put Blob', name),
    });
  }

  /**
   * Deletes one blob (`Delete Blob`, retried under the store's policy); a blob that is not there
   * is not an error. Used to take back a file whose source changed during its upload.
   */
  async delete(artifactPath: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    assertArtifactPath(artifactPath);
    const name = joinArtifactPath(this.location.rootPath, artifactPath);
    const blob = (await this.getContainer()).getBlockBlobClient(name);
    try {
      await withRetry(
        async (_attempt, signal) => {
          await blob.deleteIfExists(signal ? { abortSignal: signal } : {});
        },
        { retry: this.retry, ...(options.signal ? { signal: options.signal } : {}) },
      );
    } catch (error) {
      if (options.signal?.aborted) throw new AbortedError(`Deleting ${this.target(name)} was aborted.`, { cause: options.signal.reason ?? error });
      throw this.toError(error, 'Delete Blob', name);
    }
  }

  async list(artifactDir?: string, options: { signal?: AbortSignal } = {}): Promise<ArtifactEntry[]> {
    const { prefix, rootPrefix } = listingPrefixes(this.location.rootPath, artifactDir);
    const container = await this.getContainer();
    const relative = (name: string): string => {
      // MLflow checks the same thing (`_is_object_key_within_path`).
      if (!name.startsWith(rootPrefix)) throw new Error(`Azure listed ${name}, which is outside the artifact root ${this.location.rootPath}.`);
      return name.slice(rootPrefix.length).replace(/\/+$/, '');
    };
    const out: ArtifactEntry[] = [];
    const dirs = new Set<string>();
    const addDir = (path: string): void => {
      if (dirs.has(path)) return;
      dirs.add(path);
      out.push({ path, isDir: true });
    };
    let continuationToken: string | undefined;
    try {
      do {
        const page = await withRetry(
          async (_attempt, signal) => {
            // Metadata rides in the same List Blobs answer (include=metadata): no request more.
            const pages = container
              .listBlobsByHierarchy('/', { prefix, includeMetadata: true, ...(signal ? { abortSignal: signal } : {}) })
              .byPage({ ...(continuationToken ? { continuationToken } : {}), maxPageSize: 5000 });
            const next = await pages.next();
            return next.done ? undefined : next.value;
          },
          { retry: this.retry, ...(options.signal ? { signal: options.signal } : {}) },
        );
        if (!page) break;
        for (const p of page.segment.blobPrefixes ?? []) addDir(relative(p.name));
        for (const item of page.segment.blobItems) {
          if (item.name === prefix) continue;
          // A zero-byte "folder/" blob some tools create; MLflow skips it too.
          if (item.name.endsWith('/') && (item.properties.contentLength ?? 0) === 0) continue;
          // A directory of a hierarchical-namespace (ADLS Gen2) account, which the Blob API lists
          // as a 0-byte blob beside the prefix of its children: one directory, as MLflow's
          // abfss:// listing (Data Lake `get_paths`) shows it, also when it has no children.
          if (isHnsDirectory(item.metadata)) {
            addDir(relative(item.name));
            continue;
          }
          const size = item.properties.contentLength;
          out.push({ path: relative(item.name), isDir: false, ...(size !== undefined ? { size } : {}) });
        }
        continuationToken = page.continuationToken || undefined;
      } while (continuationToken);
    } catch (error) {
      if (options.signal?.aborted) throw new AbortedError(`Listing ${this.target(prefix)} was aborted.`, { cause: options.signal.reason ?? error });
      throw this.toError(error, 'List Blobs', prefix);
    }
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  /** `wasbs://container@account.suffix/name` for messages (never a credential). */
  private target(name: string): string {
    const { kind, container, account, suffix } = this.location;
    return `${kind}://${container}@${account}.${suffix}/${name}`;
  }

  private getContainer(): Promise<StorageBlob.ContainerClient> {
    this.containerPromise ??= this.createContainer().catch((error: unknown) => {
      this.containerPromise = undefined;
      throw error;
    });
    return this.containerPromise;
  }

  private async createContainer(): Promise<StorageBlob.ContainerClient> {
    const sdk = await loadOptionalModule<StorageBlobModule>(this.loaders.storageBlob, 'BlobServiceClient', AZURE_BLOB_PEER_PACKAGE, this.usage());
    // Retries are ours (one policy, each block alone), so the SDK makes one attempt per call.
    const pipeline: StorageBlob.StoragePipelineOptions = { retryOptions: { maxTries: 1 } };
    const { auth, blobEndpoint } = this.config;
    const accountUrl = blobEndpoint ?? this.location.blobAccountUrl;
    let service: StorageBlob.BlobServiceClient;
    switch (auth.kind) {
      case 'connection-string':
        try {
          service = sdk.BlobServiceClient.fromConnectionString(normalizeAzureConnectionString(auth.connectionString), pipeline);
        } catch (error) {
          throw new ConfigError(`${auth.source} is not a valid Azure Storage connection string: ${redact(errorMessage(error))}.`, {
            hint: 'Copy it from the storage account\'s "Access keys" page: DefaultEndpointsProtocol=https;AccountName=<account>;AccountKey=<key>;EndpointSuffix=core.windows.net (or BlobEndpoint=...;SharedAccessSignature=...).',
            issues: [{ path: auth.source, message: 'not a valid connection string' }],
          });
        }
        break;
      case 'account-key': {
        let credential: StorageBlob.StorageSharedKeyCredential;
        try {
          credential = new sdk.StorageSharedKeyCredential(this.location.account, auth.accountKey);
        } catch (error) {
          throw new ConfigError(`${auth.source} is not a valid storage account key: ${redact(errorMessage(error))}.`, {
            hint: 'Use key1 or key2 from the storage account\'s "Access keys" page (base64).',
            issues: [{ path: auth.source, message: 'not a base64 account key' }],
          });
        }
        service = new sdk.BlobServiceClient(accountUrl, credential, pipeline);
        break;
      }
      case 'sas-token':
        service = new sdk.BlobServiceClient(`${accountUrl}?${auth.sasToken}`, new sdk.AnonymousCredential(), pipeline);
        break;
      case 'token-credential':
        service = new sdk.BlobServiceClient(accountUrl, keepingTokenOutage(auth.credential) as unknown as StorageBlob.StorageSharedKeyCredential, pipeline);
        break;
      case 'default-azure-credential': {
        const identity = await loadOptionalModule<{ DefaultAzureCredential: new () => AzureTokenCredential }>(
          this.loaders.identity,
          'DefaultAzureCredential',
          AZURE_IDENTITY_PEER_PACKAGE,
          `${this.usage()} without ${this.location.kind === 'wasbs' ? 'AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCESS_KEY' : 'AZURE_STORAGE_SAS_TOKEN'}`,
        );
        service = new sdk.BlobServiceClient(accountUrl, keepingTokenOutage(new identity.DefaultAzureCredential()) as unknown as StorageBlob.StorageSharedKeyCredential, pipeline);
        break;
      }
    }
    return service.getContainerClient(this.location.container);
  }

  private usage(): string {
    return `Writing artifacts to an ${this.location.kind}:// artifact root`;
  }

  /** Maps an Azure SDK error to the library's typed errors, with a hint that says what to do. */
  private toError(error: unknown, operation: string, name: string): unknown {
    if (error instanceof ArtifactUploaderError) return error;
    const e = (error ?? {}) as { name?: unknown; message?: unknown; code?: unknown; statusCode?: unknown; response?: { headers?: { get?(name: string): string | undefined } } };
    const errorName = typeof e.name === 'string' ? e.name : 'Error';
    // Azure names the error in a header too; the SDK only reads it from the body, which a HEAD or a proxy may leave empty.
    const code = (typeof e.code === 'string' ? e.code : undefined) ?? e.response?.headers?.get?.('x-ms-error-code');
    const message = redact(firstLine(typeof e.message === 'string' ? e.message : ''));
    const url = this.target(name);
    const method = operation === 'List Blobs' ? 'GET' : operation === 'Delete Blob' ? 'DELETE' : 'PUT';
    // The token endpoint failing (5xx, 429, out of reach) after every retry: not the credentials'
    // fault, so not the ConfigError below that told the user to set them.
    if (isTransientCredentialError(error)) {
      return new NetworkError(`Azure ${operation} of ${url} got no Entra ID token: ${message || errorName}.`, {
        method,
        url,
        cause: error,
        hint: `The token endpoint (login.microsoftonline.com, or the managed identity endpoint) kept failing or could not be reached; every request was retried ${this.retry.maxRetries} time(s). Try again later, and check that this machine reaches that endpoint (proxy settings, firewall, AZURE_AUTHORITY_HOST).`,
      });
    }
    if (errorName === 'CredentialUnavailableError' || errorName === 'AggregateAuthenticationError' || errorName === 'AuthenticationError' || errorName === 'AuthenticationRequiredError') {
      return new ConfigError(`No usable Azure credential for ${url}: ${message || errorName}.`, {
        hint:
          this.location.kind === 'wasbs'
            ? 'Set AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCESS_KEY, or sign in for DefaultAzureCredential (AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, a managed identity, or `az login`).'
            : 'Set AZURE_STORAGE_SAS_TOKEN, or sign in for DefaultAzureCredential (AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, a managed identity, or `az login`).',
        issues: [{ path: 'Azure credentials', message: 'none found by DefaultAzureCredential' }],
        cause: error,
      });
    }
    const status = typeof e.statusCode === 'number' ? e.statusCode : undefined;
    if (status !== undefined && status >= 300) {
      const hint = this.hintFor(code, status);
      return new HttpStatusError(status, `Azure ${operation} of ${url} failed: ${status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`, {
        method,
        url,
        code: code ?? `HTTP_${status}`,
        cause: error,
        ...(hint ? { hint } : {}),
      });
    }
    if (isLowLevelNetworkError(error) || code === 'REQUEST_SEND_ERROR' || /ECONNREFUSED|ECONNRESET|EPIPE|ENOTFOUND|EAI_AGAIN|socket hang up/i.test(`${code ?? ''} ${message}`)) {
      const endpoint = this.config.auth.kind === 'connection-string' ? `the endpoint of ${this.config.auth.source}` : redact(this.config.blobEndpoint ?? this.location.blobAccountUrl);
      return new NetworkError(`Azure ${operation} of ${url} could not reach ${endpoint}: ${message || errorName}.`, {
        method,
        url,
        cause: error,
        hint: `Check that ${endpoint} is reachable from this machine (proxy settings, private endpoint DNS, firewall rules of the storage account).`,
      });
    }
    return error;
  }

  private hintFor(code: string | undefined, status: number): string | undefined {
    const { container, account } = this.location;
    const source = this.config.auth.source;
    const atTheName = blobRefusalHint(code, container);
    if (atTheName) return atTheName;
    switch (code) {
      case 'ContainerNotFound':
      case 'FilesystemNotFound':
        return `Create the container "${container}" in storage account "${account}" (MLflow never creates it). Also check the server's --default-artifact-root and that ${source} points at the same account.`;
      case 'AuthenticationFailed':
      case 'InvalidAuthenticationInfo':
        return `The storage account refused the credentials from ${source}: check the account key or SAS token (and that it has not expired), and that this machine's clock is right.`;
      case 'AuthorizationFailure':
        return `The storage account refused the request made with the credentials from ${source}: check the account key or SAS token (Azurite answers a wrong key with this code), that a SAS grants the b(lob) service and the c,w (create, write) and l (list) permissions, and the account's network rules.`;
      case 'AuthorizationPermissionMismatch':
      case 'AuthorizationResourceTypeMismatch':
      case 'AuthorizationServiceMismatch':
      case 'AuthorizationSourceIPMismatch':
      case 'AuthorizationProtocolMismatch':
        return `The credentials from ${source} are not allowed to write blobs to "${container}": a SAS needs the b(lob) service and the c,w (create, write) and l (list) permissions (d, delete, to take back a file that changed during its upload); an Entra ID identity needs the "Storage Blob Data Contributor" role; check the account's network rules too.`;
      case 'UnauthorizedBlobOverwrite':
        // A 403 the wrong-key hint below misread: the credentials work, for new blobs only.
        return `The credentials from ${source} may create blobs but not overwrite them, and a blob is already at this artifact path: a SAS needs the w (write) permission besides c (create). Or upload under another artifact path or to another run.`;
      case 'InvalidResourceName':
        return 'The container or blob name is not valid in Azure Storage: check the artifact URI and the artifact path.';
      case 'AccountIsDisabled':
        return `The storage account "${account}" is disabled.`;
      default:
        if (status >= 500 || status === 429 || status === 408) {
          return `The storage account kept failing; every request was retried ${this.retry.maxRetries} time(s) (raise MLFLOW_HTTP_REQUEST_MAX_RETRIES or retry.maxRetries), then upload again.`;
        }
        if (status === 403) return this.hintFor('AuthenticationFailed', status);
        if (status === 404) return this.hintFor('ContainerNotFound', status);
        return undefined;
    }
  }
}

/**
 * The factory `resolve.ts` registers for `wasbs:` and `abfss:` URIs. Retries follow the tracking
 * connection's policy; Azure settings come from `context.azure`, then MLflow's env vars.
 */
export const azureBlobStoreFactory: ArtifactStoreFactory = {
  schemes: ['wasbs', 'abfss'],
  label: 'wasbs: and abfss: (written directly to Azure Storage; needs @azure/storage-blob)',
  create(artifactUri: string, context: ArtifactStoreContext): ArtifactStore {
    return new AzureBlobArtifactStore(artifactUri, { ...context.azure, retry: context.connection.retry, env: context.env, logger: context.logger });
  },
};

// ───────────────────────────── helpers ─────────────────────────────

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A request body as a stream of {@link FILE_CHUNK_BYTES} slices, for the SDK's `onProgress`: it
 * reports a chunk as it goes to the socket, and a Buffer is one chunk, reported at once, so a
 * stall after it never showed. The slices are views of `body`, not copies.
 */
function inSlices(body: Buffer): Buffer | (() => NodeJS.ReadableStream) {
  if (body.length <= FILE_CHUNK_BYTES) return body;
  return () =>
    Readable.from(
      (function* () {
        for (let start = 0; start < body.length; start += FILE_CHUNK_BYTES) yield body.subarray(start, start + FILE_CHUNK_BYTES);
      })(),
      { objectMode: false },
    );
}

/**
 * Whether a listed blob is a directory of a hierarchical-namespace account: Azure marks it with
 * the metadata `hdi_isfolder=true` (metadata names are case-insensitive in Azure).
 */
function isHnsDirectory(metadata: Record<string, string> | undefined): boolean {
  if (!metadata) return false;
  return Object.entries(metadata).some(([key, value]) => key.toLowerCase() === 'hdi_isfolder' && value.toLowerCase() === 'true');
}
