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
 *   flight. Each part in flight reads its byte range of the file into a buffer of its own, reused
 *   for the next part, so memory per file stays near `partSize × queueSize`.
 * - Every request (each part on its own) is retried by the SDK, `retry.maxRetries` times.
 * - Integrity: every body carries a CRC32 checksum (computed natively, `zlib.crc32`) that S3
 *   verifies, as the SDK's `requestChecksumCalculation: WHEN_SUPPORTED` default asks; with a
 *   checksum present the payload is not hashed again for the signature (`UNSIGNED-PAYLOAD`).
 *   Without one (`AWS_REQUEST_CHECKSUM_CALCULATION=when_required`) the payload is SHA-256 signed.
 * - A failure or an abort stops the other parts at once and aborts the multipart upload once
 *   every part has settled, so no parts stay billed.
 *
 * No AWS SDK type appears in this module's exported signatures (toolchain gotcha G6): users
 * without the peers installed still get clean `.d.ts` files.
 *
 * @module
 */
import { open, type FileHandle } from 'node:fs/promises';
import type * as ClientS3 from '@aws-sdk/client-s3';
import type { Env } from '../core/env.js';
import {
  AbortedError,
  ArtifactUploaderError,
  ConfigError,
  HttpStatusError,
  InvalidArgumentError,
  LocalPathError,
  MissingDependencyError,
  NetworkError,
  RequestTimeoutError,
} from '../core/errors.js';
import { redact, silentLogger, type Logger } from '../core/logger.js';
import {
  combineSignals,
  isLowLevelNetworkError,
  resolveRetryOptions,
  type ResolvedRetryOptions,
  type RetryEvent,
  type RetryOptions,
} from '../core/retry.js';
import { sourceChange } from '../core/source-snapshot.js';
import { assertArtifactPath, joinArtifactPath } from '../mlflow/artifacts-api.js';
import type {
  ArtifactEntry,
  ArtifactStore,
  ArtifactStoreContext,
  ArtifactStoreFactory,
  UploadFileOptions,
  UploadFileResult,
} from './artifact-store.js';
import { guessMimeType } from '../core/mime.js';
import { readFully } from '../core/read-fully.js';
import { MAX_S3_PARTS, resolveS3Config, type ResolvedS3Config, type S3StoreOptions } from './s3-config.js';
import { statSourceFile, throwIfAborted, toLocalPathError } from './source-file.js';

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

type ClientS3Module = typeof ClientS3;
interface Sdk {
  s3: ClientS3Module;
}
type S3Command = Parameters<ClientS3.S3Client['send']>[0];

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
  private readonly config: ResolvedS3Config;
  private readonly retry: ResolvedRetryOptions;
  private readonly logger: Logger;
  private readonly loadSdk: AwsSdkLoader;
  private clientPromise?: Promise<{ sdk: Sdk; client: ClientS3.S3Client }>;

  constructor(artifactUri: string, options: S3ArtifactStoreOptions = {}) {
    const { bucket, rootKey } = parseS3Uri(artifactUri);
    this.bucket = bucket;
    this.rootKey = rootKey;
    this.artifactUri = `s3://${bucket}${rootKey ? `/${rootKey}` : ''}`;
    const env = options.env ?? process.env;
    this.config = resolveS3Config(options, env);
    this.retry = isResolvedRetry(options.retry) ? options.retry : resolveRetryOptions(options.retry, env);
    this.logger = options.logger ?? silentLogger;
    this.loadSdk = options.loadSdk ?? importAwsSdk;
  }

  describe(): string {
    const c = this.config;
    const where = c.endpointUrl ? `endpoint ${c.endpointUrl}` : `AWS${c.region ? ` ${c.region}` : ''}`;
    const style = c.forcePathStyle ? 'path-style' : 'virtual-hosted';
    return `S3 ${this.artifactUri} via ${where} (${style}): PutObject per file up to ${formatBytes(c.partSize)}, multipart above in ${formatBytes(c.partSize)} parts, ${c.queueSize} at a time`;
  }

  async uploadFile(localPath: string, artifactPath: string, options: UploadFileOptions = {}): Promise<UploadFileResult> {
    assertArtifactPath(artifactPath);
    throwIfAborted(options.signal);
    const size = await statSourceFile(localPath, options.size, this.logger);
    const key = joinArtifactPath(this.rootKey, artifactPath);
    const { sdk, client } = await this.getClient();
    throwIfAborted(options.signal);

    const partSize = effectivePartSize(size, this.config.partSize);
    const multipart = size > partSize;
    const deadline = this.retry.totalTimeoutMs !== undefined ? AbortSignal.timeout(this.retry.totalTimeoutMs) : undefined;
    const requests = new FileRequests(sdk, client, {
      signal: combineSignals(options.signal, deadline),
      onRetry: (event) => {
        this.logger.debug(`retrying S3 request for ${this.target(key)}`, { attempt: event.attempt, error: errorText(event.error) });
        options.onRetry?.(event);
      },
    });

    let file: FileHandle | undefined;
    try {
      try {
        file = await open(localPath, 'r');
      } catch (error) {
        throw toLocalPathError(error, localPath);
      }
      const source: SourceFile = { handle: file, path: localPath, size };
      if (multipart) await this.multipartUpload(sdk, requests, key, source, partSize, options.onProgress);
      else await this.putObject(sdk, requests, key, source);
    } catch (error) {
      if (multipart) await this.cleanUp(sdk, key, requests);
      if (deadline?.aborted) {
        throw new AbortedError(`Upload of ${this.target(key)} did not finish within retry.totalTimeoutMs (${this.retry.totalTimeoutMs} ms).`, {
          hint: 'Raise retry.totalTimeoutMs, or check why the object store is slow.',
          cause: error,
        });
      }
      if (options.signal?.aborted) {
        throw new AbortedError(
          `Upload of ${this.target(key)} was aborted${requests.abortedOnServer ? '; its multipart upload was aborted on the bucket too' : ''}.`,
          { cause: options.signal.reason ?? error },
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
    return { bytes: size, attempts: 1 + requests.retries, multipart };
  }

  /** A file up to `partSize`: read into one buffer (exactly `size` bytes), one `PutObject`. */
  private async putObject(sdk: Sdk, requests: FileRequests, key: string, source: SourceFile): Promise<void> {
    const body = await readRange(source, Buffer.allocUnsafe(source.size), 0, source.size);
    await requests.send(new sdk.s3.PutObjectCommand({ ...this.objectParams(key), Body: body, ContentLength: source.size }));
  }

  /**
   * `CreateMultipartUpload`, then `queueSize` workers that each read the next part's byte range
   * into their own buffer and upload it, then `CompleteMultipartUpload` with the parts in order.
   * A part that fails for good (or an abort) stops the others through {@link FileRequests}; the
   * caller aborts the multipart upload once this has returned or thrown, i.e. once every part
   * has settled.
   */
  private async multipartUpload(
    sdk: Sdk,
    requests: FileRequests,
    key: string,
    source: SourceFile,
    partSize: number,
    onProgress: ((loaded: number) => void) | undefined,
  ): Promise<void> {
    const params = this.objectParams(key);
    // What lib-storage and boto3 do: ask for a checksum of the whole object (CRC32 unless the
    // extra args name another algorithm) when the SDK sends checksums at all.
    const checksums = (await requests.client.config.requestChecksumCalculation()) === 'WHEN_SUPPORTED';
    const checksumAlgorithm = params.ChecksumAlgorithm ?? (checksums ? sdk.s3.ChecksumAlgorithm.CRC32 : undefined);
    await requests.send(new sdk.s3.CreateMultipartUploadCommand({ ...params, ...(checksumAlgorithm ? { ChecksumAlgorithm: checksumAlgorithm } : {}) }));
    const uploadId = requests.uploadId;
    if (!uploadId) throw new Error(`S3 CreateMultipartUpload of ${this.target(key)} returned no UploadId.`);
    // The object-level parameters every later request of the upload must repeat.
    const shared = pick(params, ['Bucket', 'Key', 'ExpectedBucketOwner', 'RequestPayer', 'SSECustomerAlgorithm', 'SSECustomerKey', 'SSECustomerKeyMD5']);

    const count = Math.ceil(source.size / partSize);
    const parts: ClientS3.CompletedPart[] = new Array<ClientS3.CompletedPart>(count);
    let next = 0;
    let loaded = 0;
    const worker = async (): Promise<void> => {
      let buffer: Buffer | undefined;
      while (next < count && !requests.stopped) {
        const index = next++;
        const start = index * partSize;
        const length = Math.min(partSize, source.size - start);
        buffer ??= Buffer.allocUnsafe(partSize);
        const body = await readRange(source, buffer, start, length);
        if (requests.stopped) return;
        const output = (await requests.send(
          new sdk.s3.UploadPartCommand({
            ...shared,
            UploadId: uploadId,
            PartNumber: index + 1,
            Body: body,
            ContentLength: length,
            ...(params.ChecksumAlgorithm ? { ChecksumAlgorithm: params.ChecksumAlgorithm } : {}),
          }),
        )) as ClientS3.UploadPartCommandOutput;
        if (!output.ETag) throw new Error(`S3 returned no ETag for part ${index + 1} of ${this.target(key)}.`);
        parts[index] = {
          PartNumber: index + 1,
          ETag: output.ETag,
          ...(output.ChecksumCRC32 ? { ChecksumCRC32: output.ChecksumCRC32 } : {}),
          ...(output.ChecksumCRC32C ? { ChecksumCRC32C: output.ChecksumCRC32C } : {}),
          ...(output.ChecksumCRC64NVME ? { ChecksumCRC64NVME: output.ChecksumCRC64NVME } : {}),
          ...(output.ChecksumSHA1 ? { ChecksumSHA1: output.ChecksumSHA1 } : {}),
          ...(output.ChecksumSHA256 ? { ChecksumSHA256: output.ChecksumSHA256 } : {}),
        };
        loaded += length;
        onProgress?.(loaded);
      }
    };
    const workers = Array.from({ length: Math.min(this.config.queueSize, count) }, () =>
      worker().catch((error: unknown) => {
        // A local read error stops the other parts as an S3 failure does.
        requests.fail(error);
        throw error;
      }),
    );
    const settled = await Promise.allSettled(workers);
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    if (requests.stopped) throw abortError(requests.stopReason);
    await requests.send(new sdk.s3.CompleteMultipartUploadCommand({ ...shared, UploadId: uploadId, MultipartUpload: { Parts: parts } }));
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
      if (!key.startsWith(rootPrefix)) throw new Error(`S3 listed ${key}, which is outside the artifact root ${this.rootKey}.`);
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
            ...(token ? { ContinuationToken: token } : {}),
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

  /**
   * After a failed multipart upload (every part has settled), aborts it on the bucket: once
   * with the SDK's retries, and if that did not go through, once more.
   */
  private async cleanUp(sdk: Sdk, key: string, requests: FileRequests): Promise<void> {
    for (let round = 0; round < 2; round++) {
      if (!requests.uploadId || requests.completed || requests.abortedOnServer) return;
      try {
        await requests.send(new sdk.s3.AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: requests.uploadId, ...this.ownerParam() }));
        this.logger.debug(`aborted the multipart upload of ${this.target(key)}`);
        return;
      } catch (error) {
        if (requests.abortedOnServer) return;
        if (round === 1) {
          this.logger.warn(
            `Could not abort the multipart upload ${requests.uploadId} of ${this.target(key)}; its parts stay billed until a lifecycle rule (AbortIncompleteMultipartUpload) removes them.`,
            { error: errorText(error) },
          );
        }
      }
    }
  }

  private getClient(): Promise<{ sdk: Sdk; client: ClientS3.S3Client }> {
    this.clientPromise ??= this.createClient().catch((error: unknown) => {
      this.clientPromise = undefined;
      throw error;
    });
    return this.clientPromise;
  }

  private async createClient(): Promise<{ sdk: Sdk; client: ClientS3.S3Client }> {
    const sdk = await loadSdkModules(this.loadSdk);
    const c = this.config;
    const region = c.region ?? (await profileRegion(sdk)) ?? 'us-east-1';
    const client = new sdk.s3.S3Client({
      region,
      ...(c.endpointUrl ? { endpoint: c.endpointUrl } : {}),
      forcePathStyle: c.forcePathStyle,
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
        ...(hint ? { hint } : {}),
      });
    }
    if (name === 'TimeoutError' || e.code === 'ETIMEDOUT' || e.code === 'ECONNABORTED') {
      return new RequestTimeoutError(this.retry.timeoutMs, { method, url, cause: error });
    }
    if (isLowLevelNetworkError(error) || /ECONNREFUSED|ECONNRESET|EPIPE|ENOTFOUND|EAI_AGAIN|socket hang up/i.test(`${e.code ?? ''} ${message}`)) {
      const endpoint = this.config.endpointUrl ?? 'AWS';
      return new NetworkError(`S3 ${operation} of ${url} could not reach ${endpoint}: ${message || name}.`, {
        method,
        url,
        cause: error,
        hint: this.config.endpointUrl
          ? `Check that the S3 endpoint ${this.config.endpointUrl} (MLFLOW_S3_ENDPOINT_URL or the endpointUrl option) is reachable from this machine.`
          : 'Check the network path to S3 (proxy settings, VPC endpoint) and the region (AWS_DEFAULT_REGION).',
      });
    }
    return error;
  }

  private hintFor(name: string, status: number, message: string): string | undefined {
    const owner = this.config.expectedBucketOwner;
    switch (name) {
      case 'NoSuchBucket':
        return `Create the bucket "${this.bucket}"${this.config.endpointUrl ? ` on ${this.config.endpointUrl}` : ''}; MLflow never creates buckets. Also check the server's --default-artifact-root and, for S3-compatible servers, MLFLOW_S3_ENDPOINT_URL here.`;
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

// ───────────────────────────── per-file request tracking ─────────────────────────────

interface AwsErrorLike {
  name?: unknown;
  message?: unknown;
  code?: string;
  $metadata?: { httpStatusCode?: number; attempts?: number };
}

/** The open source file of one upload. */
interface SourceFile {
  handle: FileHandle;
  path: string;
  /** Bytes to send: the size stat'ed before the upload, even if the file grows meanwhile. */
  size: number;
}

/**
 * Reads exactly `length` bytes at `position` into the start of `buffer` and returns that view.
 * A file that shrank under us is a {@link LocalPathError}, not a short request S3 would refuse.
 */
async function readRange(source: SourceFile, buffer: Buffer, position: number, length: number): Promise<Buffer> {
  let filled: number;
  try {
    filled = await readFully((b, o, l, p) => source.handle.read(b, o, l, p), buffer, 0, length, position);
  } catch (error) {
    throw toLocalPathError(error, source.path);
  }
  if (filled < length) {
    throw new LocalPathError('PATH_UNREADABLE', source.path, `${source.path} shrank while it was being uploaded (${source.size} bytes expected, it ends at ${position + filled}).`, {
      hint: 'Upload files once they are complete (e.g. after the checkpoint is written).',
    });
  }
  return buffer.subarray(0, length);
}

/** The request header of each checksum S3 verifies against the body. */
const CHECKSUM_HEADER = /^x-amz-checksum-(crc32|crc32c|crc64nvme|sha1|sha256)$/i;

/**
 * The requests of one file over the shared client: counts attempts (a middleware inside the
 * SDK's retry loop), stops every part as soon as one fails for good or the caller aborts, and
 * remembers the multipart upload id so the upload can be aborted. Commands that create,
 * complete or abort the multipart upload are never cut off mid-flight: the server might act on
 * them without us learning the outcome.
 */
class FileRequests {
  /** Retried requests over all commands of this file. */
  retries = 0;
  uploadId?: string;
  completed = false;
  abortedOnServer = false;
  firstError?: unknown;
  private readonly stop = new AbortController();
  private readonly signal: AbortSignal;

  constructor(
    private readonly sdk: Sdk,
    readonly client: ClientS3.S3Client,
    private readonly options: { signal?: AbortSignal; onRetry: (event: RetryEvent) => void },
  ) {
    this.signal = combineSignals(options.signal, this.stop.signal)!;
  }

  /** True once a request failed for good or the caller aborted: no new part may start. */
  get stopped(): boolean {
    return this.signal.aborted;
  }

  get stopReason(): unknown {
    return this.signal.reason;
  }

  /** Stops the other parts of the file because of `error` (the first one wins). */
  fail(error: unknown): void {
    if (this.signal.aborted) return;
    this.firstError ??= error;
    this.stop.abort(error);
  }

  /** Sends one command of this file (any `@aws-sdk/client-s3` command; typed loosely as the SDK's per-command types do not unify). */
  async send(sent: object): Promise<unknown> {
    const command = sent as S3Command;
    const s3 = this.sdk.s3;
    this.countAttempts(command);
    const transfer = command instanceof s3.UploadPartCommand || command instanceof s3.PutObjectCommand;
    if (transfer) unsignedWithChecksum(command);
    const isAbort = command instanceof s3.AbortMultipartUploadCommand;
    if (!isAbort && this.signal.aborted) throw abortError(this.signal.reason);
    try {
      const output = await this.client.send(command as ClientS3.PutObjectCommand, transfer ? { abortSignal: this.signal } : {});
      if (command instanceof s3.CreateMultipartUploadCommand) this.uploadId = (output as ClientS3.CreateMultipartUploadCommandOutput).UploadId;
      if (command instanceof s3.CompleteMultipartUploadCommand) this.completed = true;
      if (isAbort) this.abortedOnServer = true;
      return output;
    } catch (error) {
      if (isAbort) {
        if ((error as { name?: string }).name === 'NoSuchUpload') this.abortedOnServer = true;
        throw error;
      }
      this.fail(error);
      throw error;
    }
  }

  /** A middleware inside the SDK's retry loop runs once per attempt. */
  private countAttempts(command: S3Command): void {
    let attempt = 0;
    let lastError: unknown;
    let failedAt = 0;
    command.middlewareStack.add(
      (next) => async (args) => {
        attempt++;
        if (attempt > 1) {
          this.retries++;
          this.options.onRetry({ attempt: attempt - 1, error: lastError, delayMs: Date.now() - failedAt });
        }
        try {
          return await next(args);
        } catch (error) {
          lastError = error;
          failedAt = Date.now();
          throw error;
        }
      },
      { step: 'finalizeRequest', priority: 'low', name: 'artifactUploaderAttempts', override: true },
    );
  }
}

/**
 * Lets a body that carries a checksum S3 verifies (the flexible-checksums middleware has run:
 * this sits after it in the build step) skip the SHA-256 payload hash of the signature, as the
 * SDK does for every streamed body and boto3 does over TLS. The checksum, not the signature,
 * guards the bytes; without a checksum the payload is still SHA-256 signed.
 */
function unsignedWithChecksum(command: S3Command): void {
  command.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers && Object.keys(request.headers).some((name) => CHECKSUM_HEADER.test(name))) {
        request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      }
      return next(args);
    },
    { step: 'build', priority: 'low', name: 'artifactUploaderUnsignedWithChecksum', override: true },
  );
}

function abortError(reason: unknown): Error {
  return Object.assign(new Error('Request aborted: the upload of this file was stopped.'), { name: 'AbortError', cause: reason });
}

// ───────────────────────────── SDK loading ─────────────────────────────

/** The default loader: a plain dynamic import, left as-is by tsup in both builds. */
async function importAwsSdk(): Promise<AwsSdkModules> {
  return { clientS3: await import('@aws-sdk/client-s3') };
}

/**
 * Runs the loader and checks what it returned; a module that cannot be found becomes a
 * {@link MissingDependencyError} naming the package and the install command.
 */
async function loadSdkModules(loader: AwsSdkLoader): Promise<Sdk> {
  let modules: AwsSdkModules;
  try {
    modules = await loader();
  } catch (error) {
    if (isModuleNotFound(error)) throw new MissingDependencyError([...S3_PEER_PACKAGES], 'Writing artifacts to an s3:// artifact root', { cause: error });
    throw error;
  }
  const s3 = interop<ClientS3Module>(modules.clientS3, 'S3Client');
  if (!s3 || typeof s3.UploadPartCommand !== 'function') {
    throw new MissingDependencyError([...S3_PEER_PACKAGES], 'Writing artifacts to an s3:// artifact root', {
      hint: `The installed AWS SDK does not look like v3 (no S3Client export). Install v3: npm install ${S3_PEER_PACKAGES.join(' ')}`,
    });
  }
  return { s3 };
}

/** Accepts an ESM namespace or a CommonJS `module.exports` seen through `default`. */
function interop<T>(namespace: object, member: string): T | undefined {
  const ns = namespace as Record<string, unknown>;
  if (typeof ns[member] === 'function') return ns as T;
  const def = ns.default as Record<string, unknown> | undefined;
  if (def && typeof def[member] === 'function') return def as T;
  return undefined;
}

function isModuleNotFound(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 4; depth++) {
    const { code, message } = current as { code?: unknown; message?: unknown };
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') return true;
    if (typeof message === 'string' && /Cannot find (package|module)|Failed to (load|resolve) (url|import)/i.test(message)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
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
  const match = /^s3:\/\/([^/?#]+)(\/[^?#]*)?$/i.exec(uri.trim());
  if (!match?.[1]) {
    throw new InvalidArgumentError('artifactUri', `${redact(uri)} is not an S3 URI; expected s3://<bucket>/<path>.`);
  }
  return { bucket: match[1], rootKey: joinArtifactPath(match[2] ?? '') };
}

/** The configured part size, grown (in whole MiB) so a file needs at most 10,000 parts. */
export function effectivePartSize(size: number, partSize: number): number {
  if (Math.ceil(size / partSize) <= MAX_S3_PARTS) return partSize;
  const MiB = 1024 * 1024;
  return Math.ceil(size / MAX_S3_PARTS / MiB) * MiB;
}

function isResolvedRetry(retry: RetryOptions | ResolvedRetryOptions | undefined): retry is ResolvedRetryOptions {
  return (
    retry !== undefined &&
    typeof retry.maxRetries === 'number' &&
    typeof retry.backoffFactor === 'number' &&
    typeof retry.backoffJitter === 'number' &&
    typeof retry.maxBackoff === 'number' &&
    typeof retry.timeoutMs === 'number' &&
    typeof retry.maxRetryAfterMs === 'number'
  );
}

/** The listed keys of `object` that are set. */
function pick<T extends object, K extends keyof T>(object: T, keys: readonly K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const key of keys) if (object[key] !== undefined) out[key] = object[key];
  return out;
}

function operationMethod(operation: string): string {
  return operation === 'ListObjectsV2' ? 'GET' : 'PUT';
}

function errorText(error: unknown): string {
  return redact(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
}

function formatBytes(n: number): string {
  const MiB = 1024 * 1024;
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  return `${n} bytes`;
}
