/**
 * The store for runs whose artifact URI is `mlflow-artifacts:` (or an `http(s)` URL of the
 * same proxy): one streamed PUT per file through the tracking server, and, for files at or
 * above a threshold, the proxy's multipart upload (parts PUT in parallel to presigned object
 * store URLs), falling back to one PUT when the server's destination cannot do multipart.
 *
 * @module
 */
import { posix } from 'node:path';
import { envBool, envNumber, type Env } from '../core/env.js';
import {
  AbortedError,
  ConfigError,
  HttpStatusError,
  InvalidArgumentError,
  InvalidResponseError,
  LocalPathError,
  MlflowApiError,
  NetworkError,
  RequestTimeoutError,
  SourceChangedError,
  UnsupportedArtifactStoreError,
} from '../core/errors.js';
import type { ErrorResponse, HttpClient } from '../core/http.js';
import { errorText, redact, redactUrl, silentLogger, type Logger } from '../core/logger.js';
import { throwIfAborted } from '../core/abort.js';
import { formatBytes } from '../core/format.js';
import { isConnectionReset, isThrottlingError, RETRYABLE_STATUSES, retryAfterHint, retryServerErrorOnce, type RetryEvent } from '../core/retry.js';
import { bodyLimitHint, overlongNameHint, overlongNameText, redirectHint } from '../core/answer-hints.js';
import { sourceChange } from '../core/source-snapshot.js';
import {
  assertArtifactPath,
  isMultipartUnsupportedError,
  joinArtifactPath,
  MlflowArtifactsApi,
  type CompletedPart,
  type MultipartCredential,
} from '../mlflow/artifacts-api.js';
import { resolveMlflowConnection, type MlflowConnection } from '../mlflow/connection.js';
import {
  overlongName,
  type ArtifactEntry,
  type ArtifactStore,
  type ArtifactStoreContext,
  type ArtifactStoreFactory,
  type AbandonedUpload,
  type EarlierUpload,
  type MultipartOptions,
  type MultipartResume,
  type UploadFileOptions,
  type UploadFileResult,
} from './artifact-store.js';
import { OrderedSha256 } from './ordered-sha256.js';
import { AZURE_PART_ID_LENGTH, blockIdLengthOf, isAzureBlockUrl, uncommittedBlockListUrl, withAzureBlockId } from './azure-part-urls.js';
import { LARGEST_RANGE_BYTES, MAX_ADAPTIVE_PARTS_IN_FLIGHT, RangeStop, sendFileRanges } from './file-ranges.js';
import { PartUrlDeadline } from './part-url-deadline.js';
import { openSourceFile, readSourceIfSmall, type SourceFile } from './source-file.js';

const MiB = 1024 * 1024;
/** MLflow's defaults (`mlflow/environment_variables.py`). */
const DEFAULT_THRESHOLD = 500 * MiB;
const DEFAULT_CHUNK = 10 * MiB;
/**
 * The longest file or directory name the server's file system takes, when its artifact store
 * is a local directory: 255 bytes (ext4, XFS, tmpfs; what an MLflow server in a container has).
 */
const SERVER_FILE_NAME_BYTES = 255;
const DEFAULT_PART_CONCURRENCY = 4;
/** S3's limit on parts per upload. */
const MAX_PARTS = 10_000;
/** S3's smallest part (all but the last). */
const S3_MIN_PART = 5 * MiB;

/** {@link MultipartOptions} with env vars and defaults applied. */
export type ResolvedMultipartOptions = Required<Omit<MultipartOptions, 'rewritePartUrl'>> & Pick<MultipartOptions, 'rewritePartUrl'>;

/**
 * Fills in {@link MultipartOptions} from the options, then MLflow's env vars
 * (`MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD`, `MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE`,
 * `MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE`), then the defaults, and checks them.
 *
 * @example
 * ```ts
 * resolveMultipartOptions({ thresholdBytes: 64 * 1024 ** 2 }); // { enabled: true, thresholdBytes: 67108864, chunkBytes: 10485760, partConcurrency: 4, maxPartConcurrency: 16 }
 * ```
 */
export function resolveMultipartOptions(options: MultipartOptions = {}, env: Env = process.env): ResolvedMultipartOptions {
  const resolved: ResolvedMultipartOptions = {
    enabled: options.enabled ?? envBool('MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD', env) ?? true,
    thresholdBytes:
      options.thresholdBytes ?? envNumber('MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE', env, { min: 0, integer: true }) ?? DEFAULT_THRESHOLD,
    chunkBytes: options.chunkBytes ?? envNumber('MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE', env, { min: 1, integer: true }) ?? DEFAULT_CHUNK,
    partConcurrency: options.partConcurrency ?? DEFAULT_PART_CONCURRENCY,
    // A partConcurrency the user chose is kept fixed unless a maximum is given too.
    maxPartConcurrency: options.maxPartConcurrency ?? options.partConcurrency ?? MAX_ADAPTIVE_PARTS_IN_FLIGHT,
    rewritePartUrl: options.rewritePartUrl,
  };
  const check = (name: string, ok: boolean, expected: string, value: unknown) => {
    if (!ok) throw new InvalidArgumentError(`multipart.${name}`, `multipart.${name} must be ${expected}, got ${String(value)}.`);
  };
  check('thresholdBytes', Number.isInteger(resolved.thresholdBytes) && resolved.thresholdBytes >= 0, 'an integer >= 0', resolved.thresholdBytes);
  // At most the largest Buffer: each part is read into one (4 GiB on Node 20), and a larger one
  // failed mid-upload, after mpu/create, with a bare RangeError.
  check(
    'chunkBytes',
    Number.isInteger(resolved.chunkBytes) && resolved.chunkBytes >= 1 && resolved.chunkBytes <= LARGEST_RANGE_BYTES,
    `an integer from 1 to ${LARGEST_RANGE_BYTES} (the largest Buffer this Node.js allocates; each part is read into one)`,
    resolved.chunkBytes,
  );
  check(
    'partConcurrency',
    Number.isInteger(resolved.partConcurrency) && resolved.partConcurrency >= 1,
    'an integer >= 1',
    resolved.partConcurrency,
  );
  check(
    'maxPartConcurrency',
    Number.isInteger(resolved.maxPartConcurrency) && resolved.maxPartConcurrency >= resolved.partConcurrency,
    `an integer >= multipart.partConcurrency (${resolved.partConcurrency})`,
    resolved.maxPartConcurrency,
  );
  return resolved;
}

/** Options of {@link MlflowArtifactsStore}. */
export interface MlflowArtifactsStoreOptions {
  /** The proxy's endpoints on the server that holds the artifacts. */
  api: MlflowArtifactsApi;
  /** Client for presigned part URLs (sent without the tracking server's credentials). */
  http: HttpClient;
  /** Server path of the run's artifact root, e.g. `1/0a1b.../artifacts`. */
  root: string;
  /** The run's artifact URI, for display. */
  artifactUri: string;
  /** Multipart settings. @default from env vars, see {@link resolveMultipartOptions} */
  multipart?: MultipartOptions;
  /** @default process.env */
  env?: Env;
  /** @default silent */
  logger?: Logger;
}

/**
 * Uploads through MLflow's artifact proxy (`mlflow server --serve-artifacts`).
 *
 * @example
 * ```ts
 * const store = resolveArtifactStore('mlflow-artifacts:/1/0a1b2c/artifacts', { connection });
 * await store.uploadFile('model.safetensors', 'model/model.safetensors', { onProgress: (n) => bar.update(n) });
 * ```
 */
export class MlflowArtifactsStore implements ArtifactStore {
  readonly kind = 'mlflow-artifacts';
  readonly artifactUri: string;
  private readonly api: MlflowArtifactsApi;
  private readonly http: HttpClient;
  private readonly root: string;
  private readonly multipart: ResolvedMultipartOptions;
  private readonly logger: Logger;
  /** Set once the server said it cannot do multipart, so later files skip asking. */
  private multipartUnsupported = false;
  /**
   * The rate (bytes per ms) of the last file whose parts were sent long enough to measure it
   * (`PartUrlDeadline.measuredRate`): a later file that cannot make its URLs' hour at that rate
   * goes as one PUT at once, instead of after half a minute of parts that are then thrown away.
   */
  private lastPartRate: number | undefined;

  constructor(options: MlflowArtifactsStoreOptions) {
    this.api = options.api;
    this.http = options.http;
    this.root = joinArtifactPath(options.root);
    assertArtifactPath(this.root, { allowEmpty: true, what: 'Artifact root' });
    this.artifactUri = redactUrl(options.artifactUri);
    this.multipart = resolveMultipartOptions(options.multipart, options.env);
    this.logger = options.logger ?? silentLogger;
  }

  describe(): string {
    const mp = this.multipart;
    const multipart = !mp.enabled
      ? 'multipart off'
      : this.multipartUnsupported
        ? 'multipart unsupported by the server'
        : `files >= ${formatBytes(mp.thresholdBytes)} go multipart in ${formatBytes(mp.chunkBytes)} parts, ${mp.maxPartConcurrency > mp.partConcurrency ? `${mp.partConcurrency} to ${mp.maxPartConcurrency}` : mp.partConcurrency} at a time`;
    return `MLflow artifact proxy ${this.api.baseUrl} (${this.artifactUri}): streamed PUT per file; ${multipart}`;
  }

  async uploadFile(localPath: string, artifactPath: string, options: UploadFileOptions = {}): Promise<UploadFileResult> {
    assertArtifactPath(artifactPath);
    throwIfAborted(options.signal);
    // A small file is read once, up front, and that buffer is what every attempt sends.
    const { size, bytes } = await readSourceIfSmall(localPath, options.size, this.logger);
    const serverPath = joinArtifactPath(this.root, artifactPath);
    // The proxy lists no parts, so an earlier attempt's multipart upload (killed before its
    // complete, and recorded by the journal) is never continued: it is aborted, not left behind.
    if (options.resume?.previous) await this.abortEarlierAttempt(artifactPath, options.resume, options.signal);
    if (this.shouldTryMultipart(size, serverPath)) {
      const result = await this.uploadMultipart(localPath, serverPath, size, options);
      if (result) return result;
    }
    // A name a file system refuses: a server storing in a local directory answers a bare 500 for
    // it every time (or resets the connection, answering before the body is read); a bucket
    // behind the server takes it. Tried once more, not for minutes, and then said as what it is.
    const overlong = overlongName(artifactPath, SERVER_FILE_NAME_BYTES, 'bytes');
    const { attempts, sha256 } = await this.api
      .putFile(
        serverPath,
        { localPath, size, ...(bytes ? { bytes } : {}), ...(options.snapshot ? { snapshot: options.snapshot } : {}) },
        { signal: options.signal, onProgress: options.onProgress, onRetry: options.onRetry, ...(overlong ? { isRetryable: retryServerErrorOnce({ resetsToo: true }) } : {}) },
      )
      .catch((error: unknown) => {
        throw (overlong && overlongNameRefusal(error, artifactPath, overlong)) || error;
      });
    return { bytes: size, attempts, multipart: false, ...(sha256 ? { sha256 } : {}) };
  }

  async abandonUpload(artifactPath: string, earlier: EarlierUpload, options: { signal?: AbortSignal } = {}): Promise<AbandonedUpload> {
    // An Azure destination has no upload id: its uncommitted blocks expire on their own.
    const uploadId = earlier.previous?.uploadId;
    if (uploadId === undefined) return { status: 'abandoned' };
    const serverPath = joinArtifactPath(this.root, artifactPath);
    if (!serverPath.includes('/')) return { status: 'abandoned' }; // a file at the proxy's root never goes multipart (shouldTryMultipart)
    try {
      assertArtifactPath(artifactPath);
      await this.api.abortMultipartUpload(posix.dirname(serverPath), posix.basename(serverPath), uploadId, { signal: options.signal });
      this.logger.debug(`aborted the multipart upload ${uploadId} of ${serverPath}`);
      return { status: 'abandoned' };
    } catch (error) {
      // Also what the server answers when that attempt's complete went through before the kill.
      return {
        status: 'left',
        reason: `the multipart upload of ${serverPath} could not be aborted through the MLflow server (${errorText(error)}): unless it was completed before it was stopped, the object store keeps its parts until a lifecycle rule (AbortIncompleteMultipartUpload on S3) removes them.`,
        cause: error,
      };
    }
  }

  async delete(artifactPath: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    assertArtifactPath(artifactPath);
    await this.api.deleteFile(joinArtifactPath(this.root, artifactPath), options);
  }

  async list(artifactDir?: string, options: { signal?: AbortSignal } = {}): Promise<ArtifactEntry[]> {
    const dir = artifactDir ? joinArtifactPath(artifactDir) : '';
    if (dir) assertArtifactPath(dir);
    const entries = await this.api.list(joinArtifactPath(this.root, dir), options);
    const out = entries.map((e) => ({ path: joinArtifactPath(dir, e.name), isDir: e.isDir, ...(e.size !== undefined ? { size: e.size } : {}) }));
    // Like MLflow: listing a file (not a directory) answers the file itself; that means "no entries".
    if (dir && out.length === 1 && !out[0]!.isDir && out[0]!.path === joinArtifactPath(dir, posix.basename(dir))) return [];
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  private shouldTryMultipart(size: number, serverPath: string): boolean {
    // The mpu routes need a directory in the URL; a file at the very root of the proxy has none.
    return this.multipart.enabled && !this.multipartUnsupported && size > 0 && size >= this.multipart.thresholdBytes && serverPath.includes('/');
  }

  /**
   * Returns `undefined` when the file goes as one PUT instead (the caller sends it): the server
   * cannot do multipart, or the part URLs it signed expire before the parts would all be sent.
   */
  private async uploadMultipart(localPath: string, serverPath: string, size: number, options: UploadFileOptions): Promise<UploadFileResult | undefined> {
    const dir = posix.dirname(serverPath);
    const fileName = posix.basename(serverPath);
    const chunk = effectiveChunkSize(size, this.multipart.chunkBytes);
    const numParts = Math.ceil(size / chunk);
    let attempts = 1;
    let requests = new RangeStop(options.signal);
    const onRetry = (event: RetryEvent) => {
      attempts++;
      // A 429/503 from the server or the object store: fewer parts of this file in flight.
      if (isThrottlingError(event.error)) requests.throttled();
      options.onRetry?.(event);
    };

    let credentials: MultipartCredential[];
    let uploadId: string | undefined;
    try {
      ({ credentials, uploadId } = await this.api.createMultipartUpload(dir, fileName, numParts, { signal: options.signal, onRetry }));
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      if (isMultipartUnsupportedError(error)) {
        this.multipartUnsupported = true;
        this.logger.info(`The server at ${this.api.baseUrl} cannot do multipart upload; sending files as single PUTs.`, { reason });
        return undefined;
      }
      // Multipart is on by default here (MLflow's client leaves it off), so a server that fails
      // to set one up must not fail the upload: e.g. a GCS destination whose credentials cannot
      // sign URLs answers 500 every time. The file goes as one PUT, which the server writes.
      if (!(error instanceof HttpStatusError && error.status === 500)) throw error;
      this.multipartUnsupported = true;
      this.logger.warn(
        `The server at ${this.api.baseUrl} failed to start a multipart upload (500); sending files as single PUTs. Its log says why (for a GCS destination, credentials that cannot sign URLs), or set MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD=false.`,
        { reason },
      );
      return undefined;
    }
    // Recorded before any part is sent, so a rerun after a kill can abort it (an S3 or GCS
    // destination; an Azure one has no upload id, and discards uncommitted blocks by itself).
    if (uploadId !== undefined) await options.resume?.started(uploadId, chunk);

    // Each part in flight (`partConcurrency`, growing up to `maxPartConcurrency` while it pays
    // off) is read whole into a buffer of its own and sent from there (sendFileRanges); the
    // file's sha256 is taken from those buffers in file order while they are sent, so no byte
    // is copied or read twice for it.
    const loaded = new Array<number>(numParts).fill(0);
    const report = () => options.onProgress?.(loaded.reduce((a, b) => a + b, 0));
    const parts = new Array<CompletedPart>(numParts);
    let hasher = new OrderedSha256(size);
    // An Azure Blob destination: the parts are Put Blocks, named by us with ids of one length
    // (azure-part-urls.ts), at the length of another upload's blocks when Azure asks for it.
    const azure = credentials.length > 0 && credentials.every((c) => isAzureBlockUrl(c.url));
    let blockIdLength = AZURE_PART_ID_LENGTH;
    const partUrl = (c: MultipartCredential) => (azure ? withAzureBlockId(c.url, c.partNumber, blockIdLength) : c.url);
    // The part URLs expire about an hour after mpu/create, and nothing signs them again
    // (part-url-deadline.ts): a part is not started once the parts cannot all be sent by then.
    // The rate of an earlier file's parts stands in until this file's own is measured.
    const partUrlDeadline = () => PartUrlDeadline.of(credentials.map((c) => c.url), size, { expectedRate: this.lastPartRate });
    let deadline = partUrlDeadline();

    let sha256: string;
    try {
      const source: SourceFile = { handle: await openSourceFile(localPath), path: localPath, size };
      try {
        for (let again = false; ; again = true) {
          const stop = requests;
          try {
            await sendFileRanges(source, stop, {
              rangeSize: chunk,
              concurrency: this.multipart.partConcurrency,
              maxConcurrency: this.multipart.maxPartConcurrency,
              logger: this.logger,
              label: `parts of ${serverPath}`,
              hasher,
              send: async (index, body) => {
                const tooLate = deadline?.partStarting(body.length);
                if (tooLate) throw new PartUrlsExpiring(tooLate);
                const credential = credentials[index]!;
                parts[index] = await this.uploadPart(body, credential, partUrl(credential), azure, { numParts, fileName, signal: stop.signal, onRetry }, (n) => {
                  loaded[index] = n;
                  report();
                });
              },
            });
            if (stop.stopped) throw stop.firstError ?? new AbortedError();
            break;
          } catch (error) {
            // Azure refused our block ids beside another upload's uncommitted blocks (ids of
            // another length): none of ours was taken, so every part goes again at their length.
            if (!azure || again || !isInvalidBlobOrBlock(error)) throw error;
            const length = await this.uncommittedBlockIdLength(credentials[0]!.url, onRetry);
            if (length === undefined || length === blockIdLength) throw error;
            this.logger.debug(`${serverPath}: Azure holds uncommitted blocks of another upload with ${length}-byte ids; sending the parts again under ids of that length`);
            blockIdLength = length;
            requests = new RangeStop(options.signal);
            hasher = new OrderedSha256(size);
            loaded.fill(0);
            // The rate is measured again from here, against the same expiry.
            deadline = partUrlDeadline();
          }
        }
        sha256 = await hasher.digest(source);
      } finally {
        this.lastPartRate = deadline?.measuredRate ?? this.lastPartRate;
        await source.handle.close().catch(() => undefined);
      }
      // A file that changed while its parts were read is not completed: nothing is stored.
      const changed = options.snapshot ? await sourceChange(localPath, options.snapshot) : undefined;
      if (changed) throw changed;
      await this.api.completeMultipartUpload(dir, fileName, uploadId, parts, { signal: options.signal, onRetry });
    } catch (error) {
      // Every part has settled by now (sendFileRanges waits for all), so none can land after the abort.
      if ((await this.abortQuietly(dir, fileName, uploadId)) && uploadId !== undefined) await options.resume?.aborted(uploadId);
      if (options.signal?.aborted) {
        throw new AbortedError(`Multipart upload of ${serverPath} was aborted; the server-side upload was aborted too.`, {
          cause: options.signal.reason,
        });
      }
      // Parts that cannot all go before their URLs expire: the whole file goes as one PUT
      // through the server, which has no deadline (and is what MLflow's own client does by
      // default). A 403 for an expired URL is the same case, seen from the object store's clock.
      const expired = error instanceof PartUrlsExpiring ? error.message : isExpiredPartUrl(error) ? 'the object store says its part URLs have expired' : undefined;
      if (expired) {
        this.logger.warn(
          `${serverPath}: sending it as one PUT through the server instead of in parts: ${expired}. MLflow signs part URLs for about an hour and cannot sign them again. To keep parts for files this large, give this machine the store itself (a --no-serve-artifacts server and an s3://, gs:// or wasbs:// root).`,
        );
        return undefined;
      }
      // A part that failed while the file no longer matches its snapshot (a truncated file makes
      // the read or the request fail): that change is the error, as for a single PUT.
      const changed = options.snapshot && !(error instanceof SourceChangedError) ? await sourceChange(localPath, options.snapshot) : undefined;
      throw changed ?? withPartSizeHint(error, chunk);
    }
    return { bytes: size, attempts, multipart: true, sha256 };
  }

  /**
   * PUTs one part to `target` (the credential's URL, or with our Azure block id). The complete
   * gets `target` back: an Azure destination commits the block ids it reads from those URLs.
   * `azureBlock`: Azure answers Put Block without an ETag, which its commit does not need.
   */
  private async uploadPart(
    body: Buffer,
    credential: MultipartCredential,
    target: string,
    azureBlock: boolean,
    part: { numParts: number; fileName: string; signal: AbortSignal; onRetry: (e: RetryEvent) => void },
    onProgress: (loaded: number) => void,
  ): Promise<CompletedPart> {
    const url = this.objectStoreUrl(target);
    const label = `part ${credential.partNumber}/${part.numParts} of ${part.fileName}`;
    let response;
    try {
      response = await this.http.request(
        {
          method: 'PUT',
          url,
          headers: credential.headers,
          // Read once into the worker's buffer: every attempt sends the same bytes, the ones hashed.
          body,
          // Presigned URLs go to the object store: the tracking server's credentials stay home.
          withAuth: false,
          responseType: 'none',
          signal: part.signal,
          onUploadProgress: onProgress,
          mapError: partErrorMapper(label),
        },
        { onRetry: part.onRetry },
      );
    } catch (error) {
      throw withoutQuery(error, label);
    }
    const etag = response.headers.etag ?? (azureBlock ? '' : undefined);
    if (etag === undefined) {
      throw new InvalidResponseError(`The object store accepted ${label} but sent no ETag header, which completing the upload needs.`, {
        method: 'PUT',
        url: stripQuery(url),
      });
    }
    onProgress(body.length);
    return { partNumber: credential.partNumber, etag, url: target };
  }

  /** A URL the server signed for the object store, as this machine reaches it (`multipart.rewritePartUrl`). */
  private objectStoreUrl(signed: string): string {
    return this.multipart.rewritePartUrl ? this.multipart.rewritePartUrl(signed) : signed;
  }

  /**
   * The length of the block ids another upload left uncommitted on the blob a part URL stages
   * into (`Get Block List` under the same SAS, which MLflow signs for read and write), when part
   * ids can take it; undefined when Azure does not say.
   */
  private async uncommittedBlockIdLength(partUrl: string, onRetry: (e: RetryEvent) => void): Promise<number | undefined> {
    const url = this.objectStoreUrl(uncommittedBlockListUrl(partUrl));
    try {
      const { body } = await this.http.request<string>({ method: 'GET', url, withAuth: false, responseType: 'text' }, { onRetry });
      return blockIdLengthOf(body);
    } catch (error) {
      this.logger.debug('could not list the uncommitted blocks of an Azure part URL', { error: error instanceof Error ? error.message : String(error) });
      return undefined;
    }
  }

  /** Aborts the upload; false (with a warning) when the server refused. */
  private async abortQuietly(dir: string, fileName: string, uploadId: string | undefined): Promise<boolean> {
    try {
      // Not the caller's signal: it may be the reason we are here.
      await this.api.abortMultipartUpload(dir, fileName, uploadId, { retry: false });
      this.logger.debug(`aborted multipart upload of ${dir}/${fileName}`);
      return true;
    } catch (error) {
      this.logger.warn(`Could not abort the multipart upload of ${dir}/${fileName}; the object store may keep its parts until they expire.`, {
        error: error instanceof Error ? error.message : String(error),
      });
      return false;
    }
  }

  /**
   * Gives up the multipart upload an earlier, killed attempt of this file left (the journal's
   * record of it), as {@link abandonUpload} does, and drops it from the record. Never throws but
   * for the caller's abort.
   */
  private async abortEarlierAttempt(artifactPath: string, resume: MultipartResume, signal: AbortSignal | undefined): Promise<void> {
    const uploadId = resume.previous?.uploadId;
    if (uploadId === undefined) return;
    const outcome = await this.abandonUpload(artifactPath, { previous: resume.previous }, signal ? { signal } : {});
    if (outcome.status === 'abandoned') {
      await resume.aborted(uploadId);
      return;
    }
    throwIfAborted(signal);
    this.logger.warn(`The multipart upload an earlier attempt left is not continued, and ${outcome.reason} The file starts over.`);
  }
}

/**
 * Part size for a file: the configured one, grown so the file needs at most 10,000 parts.
 *
 * @example
 * ```ts
 * effectiveChunkSize(200 * 1024 ** 3, 10 * 1024 ** 2); // 21 MiB: 200 GiB in <= 10,000 parts
 * ```
 */
export function effectiveChunkSize(size: number, chunkBytes: number): number {
  if (Math.ceil(size / chunkBytes) <= MAX_PARTS) return chunkBytes;
  return Math.ceil(size / MAX_PARTS / MiB) * MiB;
}

/**
 * What to set when the object store redirects a part's PUT: the server signed the URL for an
 * address the store does not take it at (S3 answers a bucket of another region so), and a
 * redirect is not followed (core/answer-hints.ts).
 */
const PART_URL_REDIRECT_FIX =
  "the server signs part URLs for an address the object store does not take them at: set the server's store address (for S3, its AWS_DEFAULT_REGION to the bucket's region, or MLFLOW_S3_ENDPOINT_URL), or map the URLs to the right address on this machine with multipart.rewritePartUrl; multipart.enabled: false (MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD=false) sends files as one PUT through the server instead.";

/**
 * What makes a part's PUT fit under a proxy's body limit: smaller parts (S3 takes none under
 * 5 MiB but the last), or no parts at all (the server's own PUT, which meets its own limit).
 */
const PART_BODY_LIMIT_FIX =
  'use smaller parts (multipart.chunkBytes or MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE; S3 takes none under 5 MiB), or send files as one PUT through the server (multipart.enabled: false, or MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD=false).';

/**
 * The typed error of a PUT of `artifactPath`, which holds a name over {@link SERVER_FILE_NAME_BYTES},
 * that the server failed with a 500 or by resetting the connection ({@link overlongNameHint}),
 * with the server's answer and the original error as its cause; `undefined` for any other
 * failure (a 403 says something else).
 */
function overlongNameRefusal(error: unknown, artifactPath: string, overlong: { name: string; length: number }): LocalPathError | undefined {
  const status = error instanceof HttpStatusError ? error.status : undefined;
  if (status !== 500 && !isConnectionReset(error)) return undefined;
  const said = error instanceof MlflowApiError ? redact(error.body?.trim() ?? '').slice(0, 200) : '';
  const answer = status === 500 ? `500${said ? ` ${JSON.stringify(said)}` : ''}` : `by resetting the connection before the file was sent (${(error as Error).message})`;
  return new LocalPathError('INVALID_ARTIFACT_PATH', artifactPath, `The MLflow server did not store ${artifactPath}, which ${overlongNameText(overlong, 'bytes')}: it answered ${answer}.`, {
    hint: overlongNameHint(answer),
    cause: error,
  });
}

/** The hint of a part PUT's non-2xx answer; `url` is the part's URL without its signature. */
function partHint(res: ErrorResponse, url: string): string | undefined {
  if (res.status === 403) {
    return "The object store refused the presigned URL: it may have expired or been signed for another host. Check that this machine reaches the store the server signs for (for S3, the server's MLFLOW_S3_ENDPOINT_URL) and that clocks agree.";
  }
  // The Location of a signed URL carries the signature too.
  if (res.status >= 300 && res.status < 400) return redirectHint('The object store', res.headers.location && stripQuery(res.headers.location), url, PART_URL_REDIRECT_FIX);
  if (res.status === 413) return bodyLimitHint('the object store', PART_BODY_LIMIT_FIX);
  if (RETRYABLE_STATUSES.has(res.status) && res.retryAfterMs !== undefined && res.retryAfterMs > 0) return retryAfterHint(`The object store answered ${res.status}`, res.retryAfterMs);
  if (RETRYABLE_STATUSES.has(res.status)) return 'The object store failed; the part was retried on its own, as often as the retry policy allows.';
  if (res.status >= 500) return 'The object store failed with a status that is not retried.';
  return undefined;
}

function partErrorMapper(label: string): (res: ErrorResponse) => HttpStatusError {
  return (res) => {
    const url = stripQuery(res.url);
    const code = /<Code>([^<]*)<\/Code>/.exec(res.bodyText)?.[1];
    const detail = /<Message>([^<]*)<\/Message>/.exec(res.bodyText)?.[1] ?? res.bodyText.trim().slice(0, 200);
    const hint = partHint(res, url);
    return new HttpStatusError(res.status, `PUT of ${label} to ${url} answered ${res.status}${code ? ` ${code}` : ''}: ${redact(detail) || '(empty body)'}`, {
      method: res.method,
      url,
      retryAfterMs: res.retryAfterMs,
      body: redact(res.bodyText.slice(0, 2000)),
      hint,
    });
  };
}

/** Thrown in the part loop when the parts cannot all be sent before their URLs expire; never leaves the store. */
class PartUrlsExpiring extends Error {}

/**
 * An object store's refusal of a signed URL past its expiry: S3's 403 `Request has expired`,
 * Azure's 403 `Signature not valid in the specified time frame`, GCS's `ExpiredToken`.
 */
function isExpiredPartUrl(error: unknown): boolean {
  // The store's own answer, not the message: the 403 hint names expiry as one possible cause.
  if (!(error instanceof HttpStatusError) || !error.body) return false;
  return (error.status === 403 && /expired|time frame/i.test(error.body)) || /ExpiredToken/.test(error.body);
}

/** Azure's refusal of a block id whose length differs from the blob's uncommitted ones. */
function isInvalidBlobOrBlock(error: unknown): boolean {
  return error instanceof HttpStatusError && error.status === 400 && (error.body ?? '').includes('<Code>InvalidBlobOrBlock</Code>');
}

/** Presigned URLs carry a signature in the query: keep it out of messages. */
function stripQuery(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : `${url.slice(0, q)}?...`;
}

function withoutQuery(error: unknown, label: string): unknown {
  if (error instanceof NetworkError && error.url?.includes('?')) {
    const url = stripQuery(error.url);
    return new NetworkError(`PUT of ${label} to ${url} failed: ${(error.cause as Error | undefined)?.message ?? 'connection error'}.`, {
      method: 'PUT',
      url,
      cause: error.cause,
      hint: `Part URLs point at the object store the server signs them for (${safeOrigin(url)}); this machine must reach it (for S3, the server's MLFLOW_S3_ENDPOINT_URL).`,
    });
  }
  if (error instanceof RequestTimeoutError && error.url?.includes('?')) {
    return new RequestTimeoutError(error.timeoutMs, { method: 'PUT', url: stripQuery(error.url), cause: error.cause });
  }
  return error;
}

function withPartSizeHint(error: unknown, chunk: number): unknown {
  if (chunk < S3_MIN_PART && error instanceof HttpStatusError && /EntityTooSmall/i.test(`${error.message} ${error.body ?? ''}`)) {
    return new HttpStatusError(error.status, error.message, {
      method: error.method,
      url: error.url,
      body: error.body,
      cause: error,
      hint: `S3 needs parts of at least 5 MiB; raise multipart.chunkBytes or MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE (now ${chunk} bytes).`,
    });
  }
  return error;
}

function safeOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

// ───────────────────────────── URI resolution ─────────────────────────────

const SERVICE_ROOTS = ['/api/2.0/mlflow-artifacts/artifacts', '/ajax-api/2.0/mlflow-artifacts/artifacts'];

/** Where a proxied artifact URI points: the server base URL and the root's server path. */
export interface ProxiedArtifactLocation {
  /** `scheme://host[:port][/prefix]` of the server holding the artifacts. */
  baseUrl: string;
  /** Server path of the artifact root (relative to the proxy root, decoded). */
  root: string;
}

/**
 * Resolves an `mlflow-artifacts:` or proxied `http(s):` artifact URI against the tracking
 * base URL, as MLflow's `MlflowArtifactsRepository.resolve_uri` does: the tracking URI's
 * scheme and path prefix, the URI's host when it has one (else the tracking host), and the
 * URI's path under `/api/2.0/mlflow-artifacts/artifacts`.
 *
 * @example
 * ```ts
 * resolveProxiedArtifactUri('mlflow-artifacts:/1/abc/artifacts', 'http://mlflow:5000/prefix');
 * // { baseUrl: 'http://mlflow:5000/prefix', root: '1/abc/artifacts' }
 * ```
 */
export function resolveProxiedArtifactUri(
  artifactUri: string,
  trackingBaseUrl: string | undefined,
  supported?: readonly string[],
): ProxiedArtifactLocation {
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(artifactUri)?.[1]?.toLowerCase();
  if (scheme === 'http' || scheme === 'https') {
    const url = new URL(artifactUri);
    const anchor = SERVICE_ROOTS.find((r) => url.pathname.endsWith(r) || url.pathname.includes(`${r}/`));
    if (!anchor) {
      throw new UnsupportedArtifactStoreError(scheme, redactUrl(artifactUri), {
        supported,
        hint: `An ${scheme}: artifact URI must point at an MLflow artifact proxy (.../api/2.0/mlflow-artifacts/artifacts/...); start the server with --serve-artifacts.`,
      });
    }
    const at = url.pathname.indexOf(anchor);
    const prefix = url.pathname.slice(0, at);
    const root = decodeSegments(url.pathname.slice(at + anchor.length));
    return { baseUrl: `${url.protocol}//${url.host}${prefix}`.replace(/\/+$/, ''), root };
  }
  if (!trackingBaseUrl) {
    throw new ConfigError(`The artifact URI ${artifactUri} needs an http(s) tracking server, but the tracking URI is a local store.`, {
      issues: [{ path: 'trackingUri', message: 'expected http(s):// for mlflow-artifacts: artifact URIs' }],
      hint: 'Set MLFLOW_TRACKING_URI (or trackingUri) to the http:// address of the MLflow server that created the run.',
    });
  }
  const rest = artifactUri.slice('mlflow-artifacts:'.length);
  let host = '';
  let path = rest;
  if (rest.startsWith('//')) {
    const end = rest.indexOf('/', 2);
    host = end === -1 ? rest.slice(2) : rest.slice(2, end);
    path = end === -1 ? '' : rest.slice(end);
  }
  if (/^\d+$/.test(host)) {
    throw new InvalidArgumentError('artifactUri', `The mlflow-artifacts URI ${artifactUri} gives a port (${host}) but no host.`, {
      hint: 'Write it as mlflow-artifacts://<host>:<port>/<path> or mlflow-artifacts:/<path>.',
    });
  }
  const tracking = new URL(trackingBaseUrl);
  const base = `${tracking.protocol}//${host || tracking.host}${tracking.pathname}`.replace(/\/+$/, '');
  const anchor = SERVICE_ROOTS.find((r) => path === r || path.startsWith(`${r}/`));
  return { baseUrl: base, root: decodeSegments(anchor ? path.slice(anchor.length) : path) };
}

function decodeSegments(path: string): string {
  return joinArtifactPath(
    ...path.split('/').map((segment) => {
      try {
        return decodeURIComponent(segment);
      } catch {
        return segment;
      }
    }),
  );
}

/** Picks the HTTP client for a base URL: the tracking connection's, or a new one for a local store. */
function httpFor(baseUrl: string, connection: MlflowConnection, env: Env): HttpClient {
  if (connection.kind === 'rest') return connection.http;
  const conn = resolveMlflowConnection({ trackingUri: baseUrl, retry: connection.retry, logger: connection.logger, env });
  if (conn.kind !== 'rest') throw new InvalidArgumentError('artifactUri', `Expected an http(s) artifact URI, got ${baseUrl}.`);
  return conn.http;
}

/** Registers `mlflow-artifacts:`, `http:` and `https:` with the store registry. */
export const mlflowArtifactsStoreFactory: ArtifactStoreFactory = {
  schemes: ['mlflow-artifacts', 'http', 'https'],
  label: 'mlflow-artifacts: and http(s): (proxied through the tracking server)',
  create(artifactUri: string, context: ArtifactStoreContext): ArtifactStore {
    const trackingBase = context.connection.kind === 'rest' ? context.connection.baseUrl : undefined;
    const { baseUrl, root } = resolveProxiedArtifactUri(artifactUri, trackingBase, context.supported);
    const http = httpFor(baseUrl, context.connection, context.env);
    return new MlflowArtifactsStore({
      api: new MlflowArtifactsApi({ http, baseUrl }),
      http,
      root,
      artifactUri,
      multipart: context.multipart,
      env: context.env,
      logger: context.logger,
    });
  },
};
