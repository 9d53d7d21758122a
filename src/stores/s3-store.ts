/**
 * The store for runs whose artifact URI is `s3://bucket/path` (a tracking server started with
 * `--no-serve-artifacts --default-artifact-root s3://...`): the client writes to the bucket
 * itself, as MLflow's Python client does with boto3. Built on the optional peer dependency
 * `@aws-sdk/client-s3`, imported only when an `s3://` URI is used.
 *
 * - Keys are MLflow's: `<path of the artifact URI>/<artifact path>`, so `MlflowClient` and
 *   `mlflow ui` list and download what this store writes.
 * - Files up to `partSize` go in one `PutObject`; larger ones as a multipart upload driven here
 *   (`CreateMultipartUpload`, `UploadPart`, `CompleteMultipartUpload`), `queueSize` parts in
 *   flight (by default adaptive, up to `maxQueueSize`). Each part in flight reads its byte range
 *   of the file into a buffer of its own, reused for the next part, so memory per file stays
 *   near `partSize × queueSize`, and growth stays within the process-wide part-buffer budget.
 * - Every request (each part on its own) is retried by the SDK, `retry.maxRetries` times.
 * - Integrity: a single `PutObject` carries the file's sha256 (hashed once, from the buffer sent)
 *   as its `x-amz-checksum-sha256`; every part carries a CRC32 checksum (computed natively,
 *   `zlib.crc32`), as the SDK's `requestChecksumCalculation: WHEN_SUPPORTED` default asks, and
 *   the object's composite checksum is compared once it is complete. S3 refuses a body that does
 *   not match its checksum; with a checksum present the payload is not hashed again for the
 *   signature (`UNSIGNED-PAYLOAD`). Without one (`AWS_REQUEST_CHECKSUM_CALCULATION=when_required`)
 *   the payload is SHA-256 signed (a single `PutObject` reuses the file's sha256 for it).
 * - A failure or an abort stops the other parts at once and aborts the multipart upload once
 *   every part has settled, so no parts stay billed.
 *
 * No AWS SDK type appears in this module's exported signatures (toolchain gotcha G6): users
 * without the peers installed still get clean `.d.ts` files.
 *
 * @module
 */
import type { FileHandle } from 'node:fs/promises';
import type * as ClientS3 from '@aws-sdk/client-s3';
import type { Env } from '../core/env.js';
import {
  AbortedError,
  ArtifactUploaderError,
  ConfigError,
  HttpStatusError,
  InvalidResponseError,
  NetworkError,
  RequestTimeoutError,
  SourceChangedError,
  VerificationError,
} from '../core/errors.js';
import { errorText, redact, silentLogger, type Logger } from '../core/logger.js';
import { loadOptionalModule } from '../core/optional-dependency.js';
import {
  isLowLevelNetworkError,
  toResolvedRetryOptions,
  type ResolvedRetryOptions,
  type RetryOptions,
} from '../core/retry.js';
import { assertArtifactPath, joinArtifactPath } from '../mlflow/artifacts-api.js';
import type {
  ArtifactEntry,
  ArtifactStore,
  ArtifactStoreContext,
  ArtifactStoreFactory,
  AbandonedUpload,
  EarlierUpload,
  MultipartResume,
  UploadFileOptions,
  UploadFileResult,
} from './artifact-store.js';
import { assertObjectNamesFit, parseBucketUri, startingOver, type ObjectNameLimit } from './artifact-store.js';
import { formatBytes } from '../core/format.js';
import { guessMimeType } from '../core/mime.js';
import { checkS3EndpointUrl, forcePathStyleFor, resolveS3Config, type ResolvedS3Config, type S3StoreOptions } from './s3-config.js';
import { combineSignals, throwIfAborted } from '../core/abort.js';
import { sourceChange } from '../core/source-snapshot.js';
import {
  abortMultipartUpload,
  effectivePartSize,
  FileRequests,
  multipartUpload,
  putObject,
  type ClientS3Module,
  type ObjectIntegrity,
  type Sdk,
} from './s3-multipart.js';
import { abandonEarlierUpload, abortLostUploads, giveUpEarlierUpload } from './s3-resume.js';
import { openSourceFile, readSourceIfSmall, readSourceRange, type SourceFile } from './source-file.js';

/** S3's limit on object keys: 1,024 bytes of UTF-8 (S3 refuses a longer one with `KeyTooLongError`). */
const S3_KEY_LIMIT: ObjectNameLimit = { name: 'S3 key', max: 1024, unit: 'bytes' };

/**
 * The npm packages the `s3://` store needs, in the order `npm install` is told about them.
 * Only `@aws-sdk/client-s3` since the store drives multipart uploads itself; an installed
 * `@aws-sdk/lib-storage` is simply not used.
 */
export const S3_PEER_PACKAGES: readonly string[] = ['@aws-sdk/client-s3'];

/**
 * The optional peer module as `import()` returns it. Typed loosely on purpose: naming the SDK's
 * types here would put them into our `.d.ts` files.
 */
export interface AwsSdkModules {
  /** The namespace of `@aws-sdk/client-s3`. */
  clientS3: object;
  /** No longer used (the store does not need `@aws-sdk/lib-storage`); accepted and ignored. */
  libStorage?: object;
}

/** Loads {@link AwsSdkModules}. The default uses `import()`; tests inject failures. */
export type AwsSdkLoader = () => Promise<AwsSdkModules>;

/** Options of {@link S3ArtifactStore}: the S3 settings plus what the store runs with. */
export interface S3ArtifactStoreOptions extends S3StoreOptions {
  /**
   * Retry and timeout policy. `maxRetries` becomes the SDK's `maxAttempts` (+1) for every
   * request, each multipart part on its own; `timeoutMs` is the socket idle timeout;
   * `totalTimeoutMs` bounds one file. Backoff between attempts is the SDK's own (exponential
   * from 100 ms, or 500 ms when throttled, with jitter, at most 20 s).
   * @default from MLflow's env vars (`MLFLOW_HTTP_REQUEST_MAX_RETRIES`, `MLFLOW_HTTP_REQUEST_TIMEOUT`), else MLflow's defaults
   */
  retry?: RetryOptions | ResolvedRetryOptions;
  /** Environment to read instead of `process.env`. */
  env?: Env;
  /** Where to log (debug lines on retries and aborts). @default silent */
  logger?: Logger;
  /**
   * Loads the AWS SDK. Replace it only to simulate a missing install in tests.
   * @default `import('@aws-sdk/client-s3')`
   */
  loadSdk?: AwsSdkLoader;
}


/**
 * Writes a run's artifacts straight to an S3 (or S3-compatible) bucket.
 *
 * @example
 * ```ts
 * const store = new S3ArtifactStore('s3://ml-artifacts/mlflow/1/0a1b2c/artifacts', { endpointUrl: 'http://127.0.0.1:9000' });
 * await store.uploadFile('out/model.safetensors', 'model/model.safetensors');
 * await store.list('model'); // [{ path: 'model/model.safetensors', isDir: false, size: 123456 }]
 * ```
 */
export class S3ArtifactStore implements ArtifactStore {
  readonly kind = 's3';
  readonly artifactUri: string;
  /** Bucket of the artifact URI. */
  readonly bucket: string;
  /** Key prefix of the run's artifact root (no leading or trailing `/`; may be empty). */
  readonly rootKey: string;
  /** The settings in force; the AWS config file's endpoint joins them once the SDK is loaded (`createClient`). */
  private config: ResolvedS3Config;
  private readonly retry: ResolvedRetryOptions;
  private readonly logger: Logger;
  private readonly loadSdk: AwsSdkLoader;
  private clientPromise?: Promise<{ sdk: Sdk; client: ClientS3.S3Client }>;
  /** Whether `createClient` has looked for the AWS config file's endpoint (which {@link describe} names once it has). */
  private configFileEndpointRead = false;

  constructor(artifactUri: string, options: S3ArtifactStoreOptions = {}) {
    const { bucket, rootKey } = parseS3Uri(artifactUri);
    this.bucket = bucket;
    this.rootKey = rootKey;
    this.artifactUri = `s3://${bucket}${rootKey ? `/${rootKey}` : ''}`;
    const env = options.env ?? process.env;
    this.config = resolveS3Config(options, env);
    this.retry = toResolvedRetryOptions(options.retry, env);
    this.logger = options.logger ?? silentLogger;
    this.loadSdk = options.loadSdk ?? importAwsSdk;
  }

  describe(): string {
    const c = this.config;
    // Before the first request the AWS config file's endpoint is not read yet (it takes the SDK,
    // loaded then): "AWS" alone named a host the requests may never go to.
    const unread = c.endpointUrl === undefined && !c.ignoreConfiguredEndpointUrls && !this.configFileEndpointRead ? ', unless the AWS config file names an endpoint_url (read at the first request)' : '';
    const where = c.endpointUrl ? `endpoint ${redact(c.endpointUrl)}` : `AWS${c.region ? ` ${c.region}` : ''}${unread}`;
    const style = c.forcePathStyle ? 'path-style' : 'virtual-hosted';
    return `S3 ${this.artifactUri} via ${where} (${style}): PutObject per file up to ${formatBytes(c.partSize)}, multipart above in ${formatBytes(c.partSize)} parts, ${c.maxQueueSize > c.queueSize ? `${c.queueSize} to ${c.maxQueueSize}` : c.queueSize} at a time`;
  }

  checkArtifactPaths(artifactPaths: readonly string[]): void {
    assertObjectNamesFit(artifactPaths, (artifactPath) => joinArtifactPath(this.rootKey, artifactPath), S3_KEY_LIMIT);
  }

  async uploadFile(localPath: string, artifactPath: string, options: UploadFileOptions = {}): Promise<UploadFileResult> {
    assertArtifactPath(artifactPath);
    // Before the file is read: S3 would refuse the key (KeyTooLongError) only once the bytes were sent.
    this.checkArtifactPaths([artifactPath]);
    throwIfAborted(options.signal);
    // A small file is read whole up front (open, fstat, read, close), as the other stores do:
    // no stat and access before it, and that buffer is what every attempt of its PutObject sends.
    const { size, bytes } = await readSourceIfSmall(localPath, options.size, this.logger);
    const key = joinArtifactPath(this.rootKey, artifactPath);
    const { sdk, client } = await this.getClient();
    throwIfAborted(options.signal);

    const partSize = effectivePartSize(size, this.config.partSize);
    const multipart = size > partSize;
    const deadline = this.retry.totalTimeoutMs !== undefined ? AbortSignal.timeout(this.retry.totalTimeoutMs) : undefined;
    const fileRequests = () =>
      new FileRequests(sdk, client, {
        signal: combineSignals(options.signal, deadline),
        onRetry: (event) => {
          this.logger.debug(`retrying S3 request for ${this.target(key)}`, { attempt: event.attempt, error: errorText(event.error) });
          options.onRetry?.(event);
        },
      });
    let requests = fileRequests();
    /** Retried requests of a multipart upload given up for a new one (the file started over). */
    let retriedBefore = 0;

    let file: FileHandle | undefined;
    let bytesReused = 0;
    let integrity: ObjectIntegrity;
    const { resume } = options;
    try {
      if (!multipart && resume?.previous) {
        // The file goes in one PutObject now: an earlier attempt's multipart upload of it is not wanted.
        await giveUpEarlierUpload((command) => client.send(command as ClientS3.AbortMultipartUploadCommand), sdk.s3, { Bucket: this.bucket, Key: key, ...this.ownerParam() }, resume, {
          target: this.target(key),
          logger: this.logger,
        });
      }
      if (!multipart && resume?.lostUpload) {
        // An earlier attempt died creating a multipart upload of it, before recording its id.
        await abortLostUploads((command) => client.send(command as ClientS3.ListMultipartUploadsCommand), sdk.s3, { Bucket: this.bucket, Key: key, ...this.ownerParam() }, {
          target: this.target(key),
          logger: this.logger,
          lost: resume.lostUpload,
          clockOffsetMs: () => client.config.systemClockOffset,
        });
      }
      const object = { sdk, requests, params: this.objectParams(key), target: this.target(key), artifactPath };
      if (!multipart && bytes) integrity = await putObject({ ...object, body: bytes });
      else {
        file = await openSourceFile(localPath);
        const source: SourceFile = { handle: file, path: localPath, size };
        const sendParts = (partResume: MultipartResume | undefined) =>
          multipartUpload(
            { ...object, requests, source },
            { partSize, queueSize: this.config.queueSize, maxQueueSize: this.config.maxQueueSize, logger: this.logger, onProgress: options.onProgress, resume: partResume, snapshot: options.snapshot },
          );
        if (multipart) {
          try {
            ({ bytesReused, ...integrity } = await sendParts(resume));
          } catch (error) {
            if (!(resume && error instanceof SourceChangedError && error.sinceEarlierAttempt)) throw error;
            // A part kept from the earlier attempt does not hold the file's bytes: the file was
            // rewritten since, keeping its size and mtime. Nothing was completed; that upload is
            // aborted (no orphan) and dropped from the journal, and the file starts over under a
            // new one, every byte read and sent again, so what is stored is this version alone.
            // The stopped requests of that attempt cannot send again: new ones.
            await giveUpEarlierUpload((command) => client.send(command as ClientS3.AbortMultipartUploadCommand), sdk.s3, { Bucket: this.bucket, Key: key, ...this.ownerParam() }, resume, {
              target: this.target(key),
              logger: this.logger,
              changed: error,
            });
            retriedBefore = requests.retries;
            requests = fileRequests();
            ({ bytesReused, ...integrity } = await sendParts(startingOver(resume)));
          }
        }
        // Above SMALL_FILE_BYTES, up to the part size: read whole (exactly `size` bytes) for its one PutObject.
        else integrity = await putObject({ ...object, body: await readSourceRange(source, Buffer.allocUnsafe(size), 0, size) });
      }
    } catch (error) {
      if (error instanceof VerificationError) {
        // Stored, but not what was read: nobody may download it as if it were.
        await requests.client.send(new sdk.s3.DeleteObjectCommand({ Bucket: this.bucket, Key: key, ...this.ownerParam() })).catch(() => undefined);
      }
      // Stopped by the caller (SIGINT/SIGTERM: often a preemption) with the upload on record: it
      // stays for the rerun to continue (docs/resume.md); anything else is aborted on the bucket.
      const keptForRerun = multipart && requests.uploadId !== undefined && options.signal?.aborted === true && !deadline?.aborted && resume?.onRecord?.() === true;
      if (multipart && !keptForRerun) {
        await abortMultipartUpload(sdk, requests, { Bucket: this.bucket, Key: key, ...this.ownerParam() }, this.target(key), this.logger);
        if (requests.abortedOnServer && requests.uploadId) await resume?.aborted(requests.uploadId);
      }
      if (deadline?.aborted) {
        throw new AbortedError(`Upload of ${this.target(key)} did not finish within retry.totalTimeoutMs (${this.retry.totalTimeoutMs} ms).`, {
          hint: 'Raise retry.totalTimeoutMs, or check why the object store is slow.',
          cause: error,
        });
      }
      if (options.signal?.aborted) {
        throw new AbortedError(
          `Upload of ${this.target(key)} was aborted${requests.abortedOnServer ? '; its multipart upload was aborted on the bucket too' : keptForRerun ? '; its multipart upload is kept for the rerun to continue' : ''}.`,
          { cause: options.signal.reason ?? error, ...(keptForRerun ? { hint: 'Run the same command again to resume, or with --no-resume to start over (which aborts the kept upload).' } : {}) },
        );
      }
      // A file that changed under the reads (e.g. shrank) says so, whatever the read saw.
      const changed = options.snapshot ? await sourceChange(localPath, options.snapshot) : undefined;
      if (changed) throw changed;
      throw this.toError(requests.firstError ?? error, multipart ? 'multipart upload' : 'PutObject', key);
    } finally {
      await file?.close().catch(() => undefined);
    }
    options.onProgress?.(size);
    return { bytes: size, attempts: 1 + retriedBefore + requests.retries, multipart, ...(bytesReused > 0 ? { bytesReused } : {}), ...integrity };
  }

  async abandonUpload(artifactPath: string, earlier: EarlierUpload, options: { signal?: AbortSignal } = {}): Promise<AbandonedUpload> {
    if (earlier.previous === undefined && earlier.lostUpload === undefined) return { status: 'abandoned' };
    const key = joinArtifactPath(this.rootKey, artifactPath);
    let loaded: { sdk: Sdk; client: ClientS3.S3Client };
    try {
      assertArtifactPath(artifactPath);
      loaded = await this.getClient();
    } catch (error) {
      return {
        status: 'left',
        reason: `the multipart upload of ${this.target(key)} could not be aborted (${errorText(error)}): its parts stay billed until a lifecycle rule (AbortIncompleteMultipartUpload) removes them.`,
      };
    }
    const { sdk, client } = loaded;
    // Cut off by options.signal (SIGINT in `resume clear`, the time budget of an upload giving
    // up expired records), as the proxy's mpu/abort is: without it the SDK's retries and idle
    // timeouts (8 attempts of up to 120 s by default) would hold the caller for many minutes.
    // One cut off is `left`; it may have gone through, and aborting it again is harmless.
    const { signal } = options;
    return abandonEarlierUpload((command) => client.send(command as ClientS3.AbortMultipartUploadCommand, signal ? { abortSignal: signal } : {}), sdk.s3, { Bucket: this.bucket, Key: key, ...this.ownerParam() }, earlier, {
      target: this.target(key),
      logger: this.logger,
      clockOffsetMs: () => client.config.systemClockOffset,
      signal,
    });
  }

  async delete(artifactPath: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    assertArtifactPath(artifactPath);
    const key = joinArtifactPath(this.rootKey, artifactPath);
    const { sdk, client } = await this.getClient();
    const requests = new FileRequests(sdk, client, { signal: options.signal, onRetry: () => undefined });
    try {
      await requests.send(new sdk.s3.DeleteObjectCommand({ Bucket: this.bucket, Key: key, ...this.ownerParam() }));
    } catch (error) {
      throw this.toError(requests.firstError ?? error, 'DeleteObject', key);
    }
  }

  async list(artifactDir?: string, options: { signal?: AbortSignal } = {}): Promise<ArtifactEntry[]> {
    const dir = artifactDir ? joinArtifactPath(artifactDir) : '';
    if (dir) assertArtifactPath(dir);
    const base = joinArtifactPath(this.rootKey, dir);
    const prefix = base ? `${base}/` : '';
    const rootPrefix = this.rootKey ? `${this.rootKey}/` : '';
    const { sdk, client } = await this.getClient();
    const relative = (key: string): string => {
      // MLflow checks the same thing (`_verify_listed_object_contains_artifact_path_prefix`).
      if (!key.startsWith(rootPrefix)) {
        throw new InvalidResponseError(`S3 listed ${key}, which is outside the artifact root ${this.rootKey}.`, { method: 'GET', url: this.target(prefix) });
      }
      return key.slice(rootPrefix.length).replace(/\/+$/, '');
    };
    const out: ArtifactEntry[] = [];
    let token: string | undefined;
    do {
      let page: ClientS3.ListObjectsV2CommandOutput;
      try {
        page = await client.send(
          new sdk.s3.ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: prefix,
            Delimiter: '/',
            ContinuationToken: token,
            ...this.ownerParam(),
          }),
          options.signal ? { abortSignal: options.signal } : {},
        );
      } catch (error) {
        throw this.toError(error, 'ListObjectsV2', prefix, options.signal);
      }
      for (const p of page.CommonPrefixes ?? []) {
        if (p.Prefix) out.push({ path: relative(p.Prefix), isDir: true });
      }
      for (const object of page.Contents ?? []) {
        if (!object.Key || object.Key === prefix) continue;
        // A zero-byte "folder/" object some consoles create; MLflow skips it too.
        if (object.Key.endsWith('/') && (object.Size ?? 0) === 0) continue;
        out.push({ path: relative(object.Key), isDir: false, ...(object.Size !== undefined ? { size: object.Size } : {}) });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  /** `s3://bucket/key` for messages. */
  private target(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }

  private ownerParam(): { ExpectedBucketOwner?: string } {
    return this.config.expectedBucketOwner ? { ExpectedBucketOwner: this.config.expectedBucketOwner } : {};
  }

  /** What MLflow's `_upload_file` sends: guessed type and encoding, bucket owner, then the extra args. */
  private objectParams(key: string): ClientS3.PutObjectCommandInput {
    const guess = guessMimeType(key);
    return {
      Bucket: this.bucket,
      Key: key,
      ...(guess.type ? { ContentType: guess.type } : {}),
      ...(guess.encoding ? { ContentEncoding: guess.encoding } : {}),
      ...this.ownerParam(),
      ...(this.config.uploadExtraArgs as Partial<ClientS3.PutObjectCommandInput>),
    };
  }

  private getClient(): Promise<{ sdk: Sdk; client: ClientS3.S3Client }> {
    this.clientPromise ??= this.createClient().catch((error: unknown) => {
      this.clientPromise = undefined;
      throw error;
    });
    return this.clientPromise;
  }

  /** Destroys the SDK client, if one was made: its keep-alive sockets are closed now, not when idle. */
  async close(): Promise<void> {
    const made = this.clientPromise;
    this.clientPromise = undefined;
    (await made?.catch(() => undefined))?.client.destroy();
  }

  private async createClient(): Promise<{ sdk: Sdk; client: ClientS3.S3Client }> {
    const sdk = await loadSdkModules(this.loadSdk);
    if (this.config.endpointUrl === undefined && !this.config.ignoreConfiguredEndpointUrls) {
      // The SDK would send to an endpoint the AWS config file gives (a profile's endpoint_url, its
      // services section) on its own, addressing `bucket.minio:9000`; botocore counts it as custom,
      // so path style, as for the env vars: it is resolved here too, for the addressing style,
      // describe() and the error hints.
      const endpointUrl = await configuredEndpoint(sdk);
      this.configFileEndpointRead = true;
      if (endpointUrl !== undefined) {
        this.config = { ...this.config, endpointUrl, endpointSource: CONFIG_FILE_ENDPOINT, forcePathStyle: forcePathStyleFor(this.config.addressingStyle, endpointUrl) };
        // The store's first description (the uploader logs it when it makes the store) could not know it.
        this.logger.debug(`S3 endpoint from the ${CONFIG_FILE_ENDPOINT}: ${this.describe()}`);
      }
    }
    const c = this.config;
    const region = c.region ?? (await profileRegion(sdk)) ?? 'us-east-1';
    const client = new sdk.s3.S3Client({
      region,
      ...(c.endpointUrl ? { endpoint: c.endpointUrl } : {}),
      forcePathStyle: c.forcePathStyle,
      // Our env says so (it may not be process.env, which is what the SDK reads).
      ...(c.ignoreConfiguredEndpointUrls ? { ignoreConfiguredEndpointUrls: true } : {}),
      // boto3 follows a bucket's region on a 301/400 redirect; so do we.
      followRegionRedirects: true,
      maxAttempts: this.retry.maxRetries + 1,
      ...(c.credentials ? { credentials: { ...c.credentials } } : {}),
      requestHandler: {
        // An idle timeout like MLflow's: a slow but moving transfer never trips it.
        socketTimeout: this.retry.timeoutMs,
        connectionTimeout: this.retry.timeoutMs,
        ...(c.ignoreTls ? { httpsAgent: { rejectUnauthorized: false } } : {}),
      },
    });
    return { sdk, client };
  }

  /** Maps an AWS SDK error to the library's typed errors, with a hint that says what to do. */
  private toError(error: unknown, operation: string, key: string, signal?: AbortSignal): unknown {
    if (error instanceof ArtifactUploaderError) return error;
    const e = (error ?? {}) as AwsErrorLike;
    const name = typeof e.name === 'string' ? e.name : 'Error';
    const message = redact(typeof e.message === 'string' && e.message !== name ? e.message : '');
    const url = this.target(key);
    const method = operationMethod(operation);
    if (name === 'AbortError' || signal?.aborted) {
      return new AbortedError(`S3 ${operation} of ${url} was aborted.`, { cause: signal?.reason ?? error });
    }
    if (name === 'CredentialsProviderError' || /could not load credentials/i.test(message)) {
      return new ConfigError(`No AWS credentials found for ${url}: ${message || name}.`, {
        hint: 'Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE for a profile in ~/.aws, or run where an instance/container role is available.',
        issues: [{ path: 'AWS credentials', message: 'none found by the AWS SDK default chain' }],
        cause: error,
      });
    }
    const status = e.$metadata?.httpStatusCode;
    const attempts = e.$metadata?.attempts;
    if (typeof status === 'number' && status >= 300) {
      const tries = attempts && attempts > 1 ? ` after ${attempts} attempts` : '';
      const hint = this.hintFor(name, status, message);
      return new HttpStatusError(status, `S3 ${operation} of ${url} failed${tries}: ${status} ${name}${message ? `: ${message}` : ''}`, {
        method,
        url,
        code: name,
        cause: error,
        hint,
      });
    }
    if (name === 'TimeoutError' || e.code === 'ETIMEDOUT' || e.code === 'ECONNABORTED') {
      return new RequestTimeoutError(this.retry.timeoutMs, { method, url, cause: error });
    }
    if (isLowLevelNetworkError(error) || /ECONNREFUSED|ECONNRESET|EPIPE|ENOTFOUND|EAI_AGAIN|socket hang up/i.test(`${e.code ?? ''} ${message}`)) {
      // Masked: an endpoint URL may carry userinfo (a password must not reach a message).
      const endpoint = this.config.endpointUrl ? redact(this.config.endpointUrl) : 'AWS';
      return new NetworkError(`S3 ${operation} of ${url} could not reach ${endpoint}: ${message || name}.`, {
        method,
        url,
        cause: error,
        hint: this.config.endpointUrl
          ? `Check that the S3 endpoint ${endpoint} (set by ${this.config.endpointSource === 's3.endpointUrl' ? 'the s3.endpointUrl option' : this.config.endpointSource}) is reachable from this machine, or point that setting at the right address.`
          : 'Check the network path to S3 (proxy settings, VPC endpoint) and the region (AWS_DEFAULT_REGION).',
      });
    }
    return error;
  }

  private hintFor(name: string, status: number, message: string): string | undefined {
    const owner = this.config.expectedBucketOwner;
    switch (name) {
      case 'NoSuchBucket':
        // Masked like every other mention of the endpoint: its userinfo may hold a password.
        return `Create the bucket "${this.bucket}"${this.config.endpointUrl ? ` on ${redact(this.config.endpointUrl)}` : ''}; MLflow never creates buckets. Also check the server's --default-artifact-root and, for S3-compatible servers, MLFLOW_S3_ENDPOINT_URL here.`;
      case 'AccessDenied':
      case 'AllAccessDisabled':
      case 'Forbidden':
        return `Check the AWS credentials this process uses (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the instance/container role) and that they allow s3:PutObject, s3:ListBucket and s3:AbortMultipartUpload on "${this.bucket}"${owner ? `; MLFLOW_S3_EXPECTED_BUCKET_OWNER=${owner} must be the account that owns the bucket` : ''}.`;
      case 'InvalidAccessKeyId':
        return 'The access key id is unknown to this endpoint: check AWS_ACCESS_KEY_ID or AWS_PROFILE (and MLFLOW_S3_ENDPOINT_URL for an S3-compatible server).';
      case 'SignatureDoesNotMatch':
        return 'The secret key does not match the access key id: check AWS_SECRET_ACCESS_KEY or the profile\'s credentials.';
      case 'ExpiredToken':
      case 'TokenRefreshRequired':
      case 'InvalidToken':
        return 'The temporary credentials have expired: refresh them (new AWS_SESSION_TOKEN, `aws sso login`).';
      case 'PermanentRedirect':
      case 'AuthorizationHeaderMalformed':
      case 'IllegalLocationConstraintException':
        return `The bucket lives in another region: set AWS_DEFAULT_REGION (or the region option) to the region of "${this.bucket}".`;
      case 'NoSuchUpload':
        return 'The multipart upload was aborted or expired on the bucket (a lifecycle rule?); upload the file again.';
      case 'EntityTooSmall':
        return 'S3 needs every part but the last to be at least 5 MiB: raise the partSize option.';
      case 'InvalidArgument':
      case 'InvalidRequest':
      case 'NotImplemented':
        if (/checksum|crc|sha256|trailer|chunked/i.test(message) || name === 'NotImplemented') {
          return 'An S3-compatible server may not support the checksums recent AWS SDKs send: set AWS_REQUEST_CHECKSUM_CALCULATION=when_required (and AWS_RESPONSE_CHECKSUM_VALIDATION=when_required).';
        }
        return 'Check MLFLOW_S3_UPLOAD_EXTRA_ARGS (or the uploadExtraArgs option): S3 refused the request parameters.';
      default:
        if (status >= 500 || status === 429 || name === 'SlowDown') {
          return `The object store kept failing; every request was retried ${this.retry.maxRetries} time(s) (raise MLFLOW_HTTP_REQUEST_MAX_RETRIES or retry.maxRetries), then upload again.`;
        }
        if (status === 403) return this.hintFor('AccessDenied', status, message);
        if (status === 404) return this.hintFor('NoSuchBucket', status, message);
        return undefined;
    }
  }
}

/**
 * The factory `resolve.ts` registers for `s3:` URIs. Retries follow the tracking connection's
 * policy; S3 settings come from `context.s3`, then MLflow's env vars.
 */
export const s3StoreFactory: ArtifactStoreFactory = {
  schemes: ['s3'],
  label: 's3: (written directly to the bucket; needs @aws-sdk/client-s3)',
  create(artifactUri: string, context: ArtifactStoreContext): ArtifactStore {
    return new S3ArtifactStore(artifactUri, { ...context.s3, retry: context.connection.retry, env: context.env, logger: context.logger });
  },
};

/** The fields of an AWS SDK error this store reads. */
interface AwsErrorLike {
  name?: unknown;
  message?: unknown;
  code?: string;
  $metadata?: { httpStatusCode?: number; attempts?: number };
}

// ───────────────────────────── SDK loading ─────────────────────────────

/** The default loader: a plain dynamic import, left as-is by tsup in both builds. */
async function importAwsSdk(): Promise<AwsSdkModules> {
  return { clientS3: await import('@aws-sdk/client-s3') };
}

/**
 * Runs the loader and checks what it returned ({@link loadOptionalModule}): a module that cannot
 * be found, or an SDK that is not v3, becomes a `MissingDependencyError` naming the install.
 */
async function loadSdkModules(loader: AwsSdkLoader): Promise<Sdk> {
  const s3 = await loadOptionalModule<ClientS3Module>(async () => (await loader()).clientS3, 'S3Client', S3_PEER_PACKAGES[0]!, 'Writing artifacts to an s3:// artifact root', {
    alsoNeeds: ['UploadPartCommand'],
    hint: `The installed AWS SDK does not look like v3 (no S3Client export). Install v3: npm install ${S3_PEER_PACKAGES.join(' ')}`,
  });
  return { s3 };
}

/** The region of the SDK's own chain (`AWS_REGION`, the profile in `~/.aws/config`), if any. */
async function profileRegion(sdk: Sdk): Promise<string | undefined> {
  const probe = new sdk.s3.S3Client({});
  try {
    const region = await probe.config.region();
    return region || undefined;
  } catch {
    return undefined;
  } finally {
    probe.destroy();
  }
}

/** Where the SDK's own endpoint reading finds it, as messages name it. */
const CONFIG_FILE_ENDPOINT = 'endpoint_url of the AWS config file (or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL of this process)';

/**
 * The endpoint the SDK's own chain configures, if any: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`,
 * then, in the AWS config file (`AWS_CONFIG_FILE`, else `~/.aws/config`), the `s3` `endpoint_url`
 * of the profile's `services` section, else the profile's own `endpoint_url`; none when
 * `ignore_configured_endpoint_urls` is set (`@smithy/core`'s `getEndpointFromConfig`, botocore's
 * `ConfiguredEndpointProvider`). Checked like an env var's: a `ConfigError` when it is no
 * http(s) URL, or when the profile names a services section the file does not have.
 */
async function configuredEndpoint(sdk: Sdk): Promise<string | undefined> {
  // `serviceConfiguredEndpoint` is what the SDK's endpoint middleware itself reads (marked
  // internal in @smithy/core's types, the only way to its reading of the file); an SDK without it
  // leaves the endpoint to the SDK, as before.
  const probe = new sdk.s3.S3Client({});
  let raw: string | undefined;
  try {
    raw = await probe.config.serviceConfiguredEndpoint?.();
  } catch (error) {
    throw new ConfigError(`The AWS config file's endpoint settings cannot be read: ${errorText(error)}`, {
      issues: [{ path: 'AWS config file', message: 'endpoint_url or services section' }],
      hint: 'Fix the profile in the AWS config file (AWS_CONFIG_FILE, else ~/.aws/config; the profile is AWS_PROFILE, else default), or set MLFLOW_S3_ENDPOINT_URL, which wins over it.',
      cause: error,
    });
  } finally {
    probe.destroy();
  }
  return raw === undefined ? undefined : checkS3EndpointUrl(raw, CONFIG_FILE_ENDPOINT);
}

// ───────────────────────────── helpers ─────────────────────────────

/**
 * Splits `s3://bucket/path` into the bucket and the key prefix of the artifact root, as
 * MLflow's `parse_s3_compliant_uri` does (the path is taken as-is, not percent-decoded).
 *
 * @example
 * ```ts
 * parseS3Uri('s3://ml/direct/1/abc/artifacts'); // { bucket: 'ml', rootKey: 'direct/1/abc/artifacts' }
 * ```
 */
export function parseS3Uri(uri: string): { bucket: string; rootKey: string } {
  return parseBucketUri(uri, 's3', 'an S3');
}


function operationMethod(operation: string): string {
  return operation === 'ListObjectsV2' ? 'GET' : 'PUT';
}


