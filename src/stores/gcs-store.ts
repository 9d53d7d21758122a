/**
 * The store for runs whose artifact URI is `gs://bucket/path` (a tracking server started with
 * `--no-serve-artifacts --default-artifact-root gs://...`): the client writes to the bucket
 * itself, as MLflow's Python client does with `google-cloud-storage`.
 *
 * - Object names are MLflow's: `<path of the artifact URI>/<artifact path>`, so `MlflowClient`
 *   and `mlflow ui` list and download what this store writes.
 * - Files up to `resumableThreshold` (8 MiB) go in one request (`uploadType=multipart`, with an
 *   MD5 GCS checks, and compared with the `md5Hash` GCS answers: `verified: 'checksum'`);
 *   larger ones as a resumable upload in `chunkSize` chunks (`gcs-resumable.ts`), each chunk
 *   retried on its own and streamed from its byte range of the file, so memory stays near 1 MiB
 *   per file whatever the chunk size. Those are checked by size only: GCS reports MD5 and
 *   CRC32C, and hashing every byte with one of them too would double the hashing cost.
 * - Every upload reports the file's sha256, hashed once as the bytes are read (chunks in order).
 * - Requests go to the JSON API through the library's HTTP client, under the shared retry
 *   policy (`core/retry.ts`). The optional peer `@google-cloud/storage` is loaded only for
 *   credentials (Application Default Credentials through its `google-auth-library`), and only
 *   when credentials are used at all (not against an emulator).
 * - A failed or aborted resumable upload is cancelled (`DELETE` of the session), and GCS never
 *   shows an object before its last chunk, so nothing partial is left. A session survives the
 *   process: `uploadFile`'s `resumeSession` continues one from the offset GCS reports.
 *
 * No Google SDK type appears in this module's exported signatures (toolchain gotcha G6).
 *
 * @module
 */
import { randomBytes } from '../core/node-crypto.js';
import { readFile } from 'node:fs/promises';
import type { Env } from '../core/env.js';
import {
  AbortedError,
  ArtifactUploaderError,
  ConfigError,
  HttpStatusError,
  InvalidResponseError,
  LocalPathError,
  NetworkError,
  RequestTimeoutError,
  SourceChangedError,
  VerificationError,
} from '../core/errors.js';
import { HttpClient, type ErrorResponse, type HttpRequest, type HttpResponse } from '../core/http.js';
import { errorText, redact, redactUrl, registerSecret, silentLogger, type Logger } from '../core/logger.js';
import { formatBytes } from '../core/format.js';
import { guessMimeType } from '../core/mime.js';
import { sha256AndMd5 } from '../core/hash-in-one-pass.js';
import { loadOptionalModule } from '../core/optional-dependency.js';
import {
  GCS_THROTTLING_REASONS,
  isLowLevelNetworkError,
  isRetryableError,
  toResolvedRetryOptions,
  withRetry,
  type ResolvedRetryOptions,
  type RetryEvent,
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
  UploadFileOptions,
  UploadFileResult,
} from './artifact-store.js';
import { assertObjectNamesFit, parseBucketUri, startingOver, type ObjectNameLimit } from './artifact-store.js';
import { resolveGcsConfig, type GcsStoreOptions, type ResolvedGcsConfig } from './gcs-config.js';
import {
  cancelResumableSession,
  createResumableSession,
  queryResumableSession,
  sendResumableChunks,
  type GcsObjectResource,
  type GcsRequestContext,
  type GcsRequester,
  type GcsResumableSession,
  type GcsSessionStatus,
} from './gcs-resumable.js';
import { OrderedSha256, sendHashingBeside } from './ordered-sha256.js';
import { readSourceIfSmall, toLocalPathError, type SourceRead } from './source-file.js';
import { combineSignals, throwIfAborted } from '../core/abort.js';
import { snapshotFile, sourceChange, takeBackChanged } from '../core/source-snapshot.js';
import { createHash } from '../core/node-crypto.js';

/**
 * GCS's limit on object names: 1,024 bytes of UTF-8. (Its other rule, no carriage return or line
 * feed, is the artifact path rules' already: no control characters.)
 */
const GCS_NAME_LIMIT: ObjectNameLimit = { name: 'GCS object name', max: 1024, unit: 'bytes' };

/** The npm package the `gs://` store needs for credentials. */
export const GCS_PEER_PACKAGES: readonly string[] = ['@google-cloud/storage'];

/**
 * The optional peer module as `import()` returns it. Typed loosely on purpose: naming the SDK's
 * types here would put them into our `.d.ts` files.
 */
export interface GcsSdkModules {
  /** The namespace of `@google-cloud/storage`. */
  storage: object;
}

/** Loads {@link GcsSdkModules}. The default uses `import()`; tests inject failures. */
export type GcsSdkLoader = () => Promise<GcsSdkModules>;

/** Options of {@link GcsArtifactStore}: the GCS settings plus what the store runs with. */
export interface GcsArtifactStoreOptions extends GcsStoreOptions {
  /**
   * Retry policy of every request (each resumable chunk on its own). Its `timeoutMs` is
   * replaced by the GCS timeout ({@link GcsStoreOptions.timeoutMs}); `totalTimeoutMs` bounds one file.
   * @default from MLflow's env vars (`MLFLOW_HTTP_REQUEST_MAX_RETRIES`, ...), else MLflow's defaults
   */
  retry?: RetryOptions | ResolvedRetryOptions;
  /** Environment to read instead of `process.env`. */
  env?: Env;
  /** Where to log (warnings, and debug lines on retries and cancels). @default silent */
  logger?: Logger;
  /**
   * Loads `@google-cloud/storage`. Replace it only to simulate a missing install in tests.
   * @default `import('@google-cloud/storage')`
   */
  loadSdk?: GcsSdkLoader;
}

/** Options of `GcsArtifactStore.uploadFile`: the common ones plus the resume hooks. */
export interface GcsUploadFileOptions extends UploadFileOptions {
  /**
   * A resumable session an earlier process created for this file (from {@link onSession}).
   * The store asks GCS how far it got and sends only the rest; a session that expired, was
   * cancelled, or was made for another object or size is replaced by a new one (and
   * {@link onSession} is told). Ignored for files that go in one request.
   */
  resumeSession?: GcsResumableSession;
  /**
   * Called (and awaited) once a resumable session exists, before its first chunk is sent: the
   * place to persist it so a later process can pass it back as {@link resumeSession}.
   */
  onSession?: (session: GcsResumableSession) => void | Promise<void>;
}

/** What `GcsArtifactStore.uploadFile` did. */
export interface GcsUploadFileResult extends UploadFileResult {
  /** Bytes GCS already had from an earlier process ({@link GcsUploadFileOptions.resumeSession}); not sent again. */
  resumedBytes: number;
}

interface GoogleAuthLike {
  getClient(): Promise<unknown>;
  getRequestHeaders(url?: string): Promise<Record<string, string> | { forEach(cb: (value: string, key: string) => void): void }>;
}
interface StorageModule {
  Storage: new (options: Record<string, unknown>) => { authClient: GoogleAuthLike };
}

/** Internal marker: a `308 Resume Incomplete` answer, which is progress, not a failure. */
interface ResumeIncomplete {
  resumeIncomplete: true;
  status: 308;
  headers: Record<string, string>;
}

/**
 * Writes a run's artifacts straight to a Google Cloud Storage bucket.
 *
 * @example
 * ```ts
 * const store = new GcsArtifactStore('gs://ml-artifacts/mlflow/1/0a1b2c/artifacts', { apiEndpoint: 'http://127.0.0.1:9023' });
 * await store.uploadFile('out/model.safetensors', 'model/model.safetensors');
 * await store.list('model'); // [{ path: 'model/model.safetensors', isDir: false, size: 123456 }]
 * ```
 */
export class GcsArtifactStore implements ArtifactStore {
  readonly kind = 'gcs';
  readonly artifactUri: string;
  /** Bucket of the artifact URI. */
  readonly bucket: string;
  /** Object name prefix of the run's artifact root (no leading or trailing `/`; may be empty). */
  readonly rootKey: string;
  /** The settings in force (env vars and defaults applied). */
  readonly config: ResolvedGcsConfig;
  private readonly retry: ResolvedRetryOptions;
  private readonly logger: Logger;
  private readonly loadSdk: GcsSdkLoader;
  private readonly http: HttpClient;
  private authPromise?: Promise<GoogleAuthLike | undefined>;
  private warned = false;

  constructor(artifactUri: string, options: GcsArtifactStoreOptions = {}) {
    const { bucket, rootKey } = parseGcsUri(artifactUri);
    this.bucket = bucket;
    this.rootKey = rootKey;
    this.artifactUri = `gs://${bucket}${rootKey ? `/${rootKey}` : ''}`;
    const env = options.env ?? process.env;
    this.config = resolveGcsConfig(options, env);
    const retry = toResolvedRetryOptions(options.retry, env);
    this.retry = { ...retry, timeoutMs: this.config.timeoutMs };
    this.logger = options.logger ?? silentLogger;
    this.loadSdk = options.loadSdk ?? importGcsSdk;
    // It reads no TLS setting (MLflow's are the tracking server's): Node's own CA variable is what adds a CA.
    this.http = new HttpClient({ retry: this.retry, logger: this.logger, userAgent: 'artifact-uploader (gcs)', tlsSettings: { ca: 'NODE_EXTRA_CA_CERTS (read when Node starts)' } });
  }

  describe(): string {
    const c = this.config;
    const where = c.endpointSource === 'default' ? 'the JSON API' : `${redact(c.apiEndpoint)} (${c.endpointSource === 'option' ? 'apiEndpoint' : c.endpointSource})`;
    const auth = c.authenticated ? 'Application Default Credentials' : 'no credentials';
    return `GCS ${this.artifactUri} via ${where}, ${auth}: one request per file up to ${formatBytes(c.resumableThreshold)}, resumable above in ${formatBytes(c.chunkSize)} chunks`;
  }

  checkArtifactPaths(artifactPaths: readonly string[]): void {
    assertObjectNamesFit(artifactPaths, (artifactPath) => joinArtifactPath(this.rootKey, artifactPath), GCS_NAME_LIMIT);
  }

  async uploadFile(localPath: string, artifactPath: string, options: GcsUploadFileOptions = {}): Promise<GcsUploadFileResult> {
    assertArtifactPath(artifactPath);
    // Before the file is read: GCS would refuse the name (400 invalid) only once the bytes were sent.
    this.checkArtifactPaths([artifactPath]);
    throwIfAborted(options.signal);
    this.warnOnce();
    // A small file is read whole up front (open, fstat, read, close), as the other stores do:
    // no stat and access before it, and that buffer is what every attempt of its request sends.
    const { size, bytes } = await readSourceIfSmall(localPath, options.size, this.logger);
    const name = joinArtifactPath(this.rootKey, artifactPath);
    const contentType = contentTypeFor(name);
    const deadline = this.retry.totalTimeoutMs !== undefined ? AbortSignal.timeout(this.retry.totalTimeoutMs) : undefined;
    const signal = combineSignals(options.signal, deadline);
    let retries = 0;
    const requester = this.requester(signal, (event, what) => {
      retries++;
      this.logger.debug(`retrying GCS ${what} of ${this.target(name)}`, { attempt: event.attempt, error: errorText(event.error) });
      options.onRetry?.(event);
    });
    const resumable = size > this.config.resumableThreshold;
    let session: GcsResumableSession | undefined;
    let resumedBytes = 0;
    /** A continued session's whole file, MD5 (base64), to compare with the object's. */
    let wholeMd5: string | undefined;
    /** Set when the object GCS made from a continued session was not this file's, and was deleted. */
    let startedOver: SourceChangedError | undefined;
    // The pipeline's journal (UploadFileOptions.resume) keeps the session as this store's token.
    const journal = options.resume;
    const recorded = journal?.token?.store === this.kind ? asSession(journal.token.value) : undefined;
    if (recorded && (!journal?.reuse || !resumable)) await this.cancelQuietly(recorded); // not wanted any more
    const sessionOptions: GcsUploadFileOptions = {
      ...options,
      resumeSession: options.resumeSession ?? (journal?.reuse && resumable ? recorded : undefined),
      onSession: async (created) => {
        await options.onSession?.(created);
        await journal?.saveToken({ store: this.kind, value: created });
      },
    };
    try {
      let object: GcsObjectResource;
      let integrity: Pick<UploadFileResult, 'sha256' | 'verified' | 'checksum'>;
      if (!resumable) {
        ({ object, ...integrity } = await this.uploadInOneRequest(requester, { localPath, size, bytes }, artifactPath, contentType, signal));
      } else {
        // Chunks go in file order: the sha256 is hashed as they are read (a retried chunk, or
        // the part GCS did not keep, is not hashed twice); what an earlier process sent is read
        // from the file beside the chunks (sendHashingBeside).
        const started = await this.openSession(requester, name, size, contentType, sessionOptions, signal);
        session = started.session;
        resumedBytes = started.offset;
        // What an earlier process sent is kept unread by GCS's offset, and GCS reports no figure
        // of an unfinished session to check it by: a file rewritten since, keeping its size and
        // mtime (what the journal compares), would make an object of two versions. So a
        // continued session's whole file is MD5-hashed in the sha256's pass, and compared with
        // the md5Hash of the object GCS made, below.
        const earlierBytes = started.offset > 0 || started.object !== undefined ? createHash('md5') : undefined;
        const hasher = new OrderedSha256(size, { also: earlierBytes });
        if (started.object) {
          object = started.object;
        } else {
          options.onProgress?.(started.offset);
          const source = { path: localPath, size, snapshot: options.snapshot, onRead: (chunk: Buffer, position: number) => hasher.update(position, chunk) };
          const send = (sending: { signal?: AbortSignal; beforeLastRequest?: () => Promise<void> }) =>
            sendResumableChunks(requester, started.session, source, started.offset, this.config.chunkSize, {
              signal: sending.signal,
              // The last chunk makes the object: not from a file that changed since its first
              // chunks were read (they would mix two versions of it); the session is cancelled.
              beforeLastChunk: async () => {
                await sending.beforeLastRequest?.();
                const changed = options.snapshot ? await sourceChange(localPath, options.snapshot) : undefined;
                if (changed) throw changed;
              },
              onProgress: options.onProgress,
            });
          object = started.offset > 0 ? await sendHashingBeside(hasher, localPath, { signal, sendsFrom: started.offset }, send) : await send({ signal });
        }
        integrity = { sha256: await hasher.digest(localPath) };
        wholeMd5 = earlierBytes?.digest('base64');
      }
      // A chunk that is retried is read from the file again, the last one (which makes the
      // object) included: a file that changed meanwhile may be stored as a mix of two versions.
      // Taken back here, so that this store never reports such an object as uploaded.
      const changedAfter = options.snapshot ? await sourceChange(localPath, options.snapshot) : undefined;
      if (changedAfter) throw await takeBackChanged(changedAfter, () => this.delete(artifactPath));
      if (object.size !== undefined && Number(object.size) !== size) {
        throw new InvalidResponseError(`GCS stored ${object.size} bytes for ${this.target(name)}, but ${size} were sent.`, {
          url: this.target(name),
          hint: 'Upload the file again; if it repeats, a proxy may be truncating request bodies.',
        });
      }
      if (wholeMd5 !== undefined && object.md5Hash !== undefined && object.md5Hash !== wholeMd5) {
        // The bytes the earlier attempt sent are not this file's: it was rewritten since,
        // keeping its size and mtime. Taken back (or the error says it is left there); the file
        // then starts over in a session of its own, below.
        const now = options.snapshot ?? (await snapshotFile(localPath));
        const changed = new SourceChangedError(localPath, now, now, {
          sinceEarlierAttempt: true,
          change: `was rewritten (GCS made ${this.target(name)} from the ${resumedBytes} bytes an earlier attempt sent and the rest with the MD5 ${object.md5Hash}, but the file's bytes give ${wholeMd5})`,
        });
        const takenBack = await takeBackChanged(changed, () => this.delete(artifactPath));
        if (takenBack !== changed) throw takenBack;
        startedOver = changed;
      } else {
        options.onProgress?.(size);
        return { bytes: size, attempts: 1 + retries, multipart: resumable, resumedBytes, ...(resumedBytes > 0 ? { bytesReused: resumedBytes } : {}), ...integrity };
      }
    } catch (error) {
      // As s3-store: a session on record, stopped by the caller's signal, stays for the rerun.
      const keptForRerun = session !== undefined && options.signal?.aborted === true && !deadline?.aborted && journal?.onRecord?.() === true;
      if (session && !keptForRerun) await this.cancelQuietly(session);
      // Stored, but not what was read: nobody may download it as if it were.
      if (error instanceof VerificationError) await this.delete(artifactPath).catch(() => undefined);
      if (deadline?.aborted) {
        throw new AbortedError(`Upload of ${this.target(name)} did not finish within retry.totalTimeoutMs (${this.retry.totalTimeoutMs} ms).`, {
          hint: 'Raise retry.totalTimeoutMs, or check why the object store is slow.',
          cause: error,
        });
      }
      if (options.signal?.aborted) {
        throw new AbortedError(`Upload of ${this.target(name)} was aborted${keptForRerun ? '; its resumable session is kept for the rerun to continue' : session ? '; its resumable session was cancelled' : ''}.`, {
          cause: options.signal.reason ?? error,
        });
      }
      // A file that changed under the reads (e.g. shrank) says so, whatever the read saw.
      if (error instanceof SourceChangedError) throw error;
      const changed = options.snapshot ? await sourceChange(localPath, options.snapshot) : undefined;
      throw changed ?? error;
    }
    // The object made from the earlier attempt's bytes was deleted (above): the whole file again,
    // in a new session, with the journal's record kept for it. Once: no earlier bytes are left.
    this.logger.warn(
      `${localPath} changed since the earlier attempt to upload it to ${this.target(name)}, though its size and modification time are the same: the object GCS made from that attempt's bytes and the rest was not this file, and was deleted. The file starts over.`,
      { error: errorText(startedOver) },
    );
    const { resumeSession: _earlier, ...rest } = options;
    return this.uploadFile(localPath, artifactPath, { ...rest, ...(journal ? { resume: startingOver(journal) } : {}) });
  }

  /**
   * Asks GCS how far a resumable session got, from any process: `incomplete` with the bytes
   * GCS has, `complete` when the last chunk arrived, `gone` when it expired or was cancelled.
   *
   * @example
   * ```ts
   * const status = await store.querySession(savedSession); // { state: 'incomplete', offset: 268435456 }
   * ```
   */
  async querySession(session: GcsResumableSession, options: { signal?: AbortSignal } = {}): Promise<GcsSessionStatus> {
    return queryResumableSession(this.requester(options.signal), session, options.signal);
  }

  /**
   * Cancels a resumable session an earlier process left (a journal entry nobody wants any
   * more). Returns false when the server cannot cancel sessions (the emulator); GCS itself
   * forgets unfinished sessions after a week, and none of them ever shows as an object.
   *
   * @example
   * ```ts
   * await store.cancelSession(savedSession);
   * ```
   */
  async cancelSession(session: GcsResumableSession, options: { signal?: AbortSignal } = {}): Promise<boolean> {
    return cancelResumableSession(this.requester(options.signal), session, options.signal);
  }

  async abandonUpload(_artifactPath: string, earlier: EarlierUpload): Promise<AbandonedUpload> {
    // Only a session of this store's (a record another store wrote is not ours to read); its URI
    // is a capability, so the reasons name the object, never the session.
    const session = earlier.token?.store === this.kind ? asSession(earlier.token.value) : undefined;
    if (!session) return { status: 'abandoned' };
    const signal = AbortSignal.timeout(Math.min(this.retry.timeoutMs, 30_000) * 2);
    try {
      if (await cancelResumableSession(this.requester(signal), session, signal)) return { status: 'abandoned' };
      return { status: 'left', reason: `the server cannot cancel resumable sessions: the one of ${this.target(session.name)} stays until it expires (a week; no object is made at its name).` };
    } catch (error) {
      return { status: 'left', reason: `the resumable upload session of ${this.target(session.name)} could not be cancelled (${errorText(error)}): GCS forgets it after a week, and no object is made at its name.` };
    }
  }

  /**
   * Deletes one object (retried under the store's policy); an object that is not there is not
   * an error. Used to take back a file whose source changed during its upload.
   */
  async delete(artifactPath: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    assertArtifactPath(artifactPath);
    const name = joinArtifactPath(this.rootKey, artifactPath);
    const url = `${this.config.apiEndpoint}/storage/v1/b/${encodeURIComponent(this.bucket)}/o/${encodeURIComponent(name)}`;
    try {
      await this.requester(options.signal).send({ method: 'DELETE', url, signal: options.signal, responseType: 'none' }, { operation: 'delete', name });
    } catch (error) {
      // A retried DELETE whose first attempt GCS carried out (its answer was lost) finds nothing:
      // the object is gone, which is what was asked. Reporting it as left stored sent users to
      // delete by hand an object that no longer exists.
      if (error instanceof HttpStatusError && error.status === 404) return;
      throw error;
    }
  }

  async list(artifactDir?: string, options: { signal?: AbortSignal } = {}): Promise<ArtifactEntry[]> {
    const dir = artifactDir ? joinArtifactPath(artifactDir) : '';
    if (dir) assertArtifactPath(dir);
    const base = joinArtifactPath(this.rootKey, dir);
    const prefix = base ? `${base}/` : '';
    const rootPrefix = this.rootKey ? `${this.rootKey}/` : '';
    const requester = this.requester(options.signal);
    const relative = (name: string): string => {
      // MLflow's list_artifacts strips the root the same way.
      if (!name.startsWith(rootPrefix)) throw new Error(`GCS listed ${name}, which is outside the artifact root ${this.rootKey}.`);
      return name.slice(rootPrefix.length).replace(/\/+$/, '');
    };
    const out: ArtifactEntry[] = [];
    let pageToken: string | undefined;
    do {
      const query = new URLSearchParams({ delimiter: '/', prefix, fields: 'items(name,size),prefixes,nextPageToken' });
      if (pageToken) query.set('pageToken', pageToken);
      const url = `${this.config.apiEndpoint}/storage/v1/b/${encodeURIComponent(this.bucket)}/o?${query.toString()}`;
      const { body } = await requester.send<{ items?: Array<{ name?: string; size?: string }>; prefixes?: string[]; nextPageToken?: string }>(
        { method: 'GET', url, signal: options.signal },
        { operation: 'list', name: prefix },
      );
      for (const p of body.prefixes ?? []) out.push({ path: relative(p), isDir: true });
      for (const item of body.items ?? []) {
        if (!item.name || item.name === prefix) continue;
        // A zero-byte "folder/" object the console creates; MLflow shows none either.
        if (item.name.endsWith('/') && Number(item.size ?? 0) === 0) continue;
        out.push({ path: relative(item.name), isDir: false, ...(item.size !== undefined ? { size: Number(item.size) } : {}) });
      }
      pageToken = body.nextPageToken || undefined;
    } while (pageToken);
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  /** Closes the store's connections. */
  async close(): Promise<void> {
    await this.http.close();
  }

  // ───────────────────────────── uploads ─────────────────────────────

  /**
   * What `google-cloud-storage` does up to 8 MiB: one `uploadType=multipart` request, metadata
   * (name, type, MD5 for GCS to check) and bytes together. The file is read into memory once:
   * a small one already was (`source.bytes`, {@link readSourceIfSmall}), a bigger one here.
   */
  private async uploadInOneRequest(
    requester: GcsRequester,
    source: Pick<SourceRead, 'size' | 'bytes'> & { localPath: string },
    artifactPath: string,
    contentType: string,
    signal?: AbortSignal,
  ): Promise<{ object: GcsObjectResource; sha256: string; verified?: 'checksum'; checksum?: string }> {
    const name = joinArtifactPath(this.rootKey, artifactPath);
    const { localPath, size } = source;
    let bytes: Buffer;
    try {
      bytes = source.bytes ?? (await readFile(localPath, signal ? { signal } : {}));
    } catch (error) {
      if (signal?.aborted) throw new AbortedError(undefined, { cause: signal.reason });
      throw toLocalPathError(error, localPath);
    }
    if (bytes.length < size) {
      throw new LocalPathError('PATH_UNREADABLE', localPath, `${localPath} shrank while it was being uploaded (${size} bytes expected, it has ${bytes.length}).`, {
        hint: 'Upload files once they are complete (e.g. after the checkpoint is written).',
      });
    }
    // Grown since the stat: send the size planned, as the resumable path does.
    if (bytes.length > size) bytes = bytes.subarray(0, size);
    const boundary = `===============${randomBytes(12).toString('hex')}==`;
    const { sha256, md5 } = sha256AndMd5(bytes);
    const md5Hash = md5.toString('base64');
    const metadata = JSON.stringify({ name, contentType, md5Hash });
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n${metadata}\r\n--${boundary}\r\ncontent-type: ${contentType}\r\n\r\n`),
      bytes,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const url = `${this.config.apiEndpoint}/upload/storage/v1/b/${encodeURIComponent(this.bucket)}/o?uploadType=multipart`;
    const { body: object } = await requester.send<GcsObjectResource>(
      { method: 'POST', url, headers: { 'content-type': `multipart/related; boundary="${boundary}"` }, body, signal },
      { operation: 'upload', name },
    );
    // GCS refuses a body whose MD5 is not the one sent, and reports the MD5 of what it stored.
    if (object.md5Hash === undefined) return { object, sha256 };
    if (object.md5Hash !== md5Hash) {
      throw new VerificationError([{ artifactPath, expectedSize: size, actualSize: Number(object.size ?? size), reason: 'checksum' }], {
        hint: `GCS stored ${this.target(name)} with the MD5 ${object.md5Hash}, not the ${md5Hash} of the bytes sent; upload it again.`,
      });
    }
    return { object, sha256, verified: 'checksum', checksum: `md5:${md5Hash}` };
  }

  /** A new session, or the caller's earlier one continued from what GCS has. */
  private async openSession(
    requester: GcsRequester,
    name: string,
    size: number,
    contentType: string,
    options: GcsUploadFileOptions,
    signal?: AbortSignal,
  ): Promise<{ session: GcsResumableSession; offset: number; object?: GcsObjectResource }> {
    const earlier = options.resumeSession;
    if (earlier) {
      if (earlier.bucket !== this.bucket || earlier.name !== name || earlier.size !== size) {
        this.logger.warn(`Not resuming the GCS session of gs://${earlier.bucket}/${earlier.name} (${earlier.size} bytes) for ${this.target(name)} (${size} bytes): it was made for another object or size.`);
      } else {
        const status = await queryResumableSession(requester, earlier, signal);
        if (status.state === 'complete') return { session: earlier, offset: size, object: status.object };
        if (status.state === 'incomplete') {
          this.logger.debug(`resuming the GCS upload of ${this.target(name)} at byte ${status.offset} of ${size}`);
          return { session: earlier, offset: status.offset };
        }
        this.logger.info(`The earlier GCS upload session of ${this.target(name)} expired or was cancelled; starting over.`);
      }
    }
    const session = await createResumableSession(requester, this.config.apiEndpoint, { bucket: this.bucket, name, size, contentType }, signal);
    try {
      await options.onSession?.(session);
    } catch (error) {
      await this.cancelQuietly(session);
      throw error;
    }
    return { session, offset: 0 };
  }

  /**
   * After a failure or an abort: cancels the session with a signal of its own (the caller's
   * has fired), once with retries; a server that cannot cancel (the emulator) is only logged.
   */
  private async cancelQuietly(session: GcsResumableSession): Promise<void> {
    const signal = AbortSignal.timeout(Math.min(this.retry.timeoutMs, 30_000) * 2);
    try {
      const cancelled = await cancelResumableSession(this.requester(signal), session, signal);
      if (cancelled) this.logger.debug(`cancelled the resumable upload session of ${this.target(session.name)}`);
      else this.logger.debug(`the server cannot cancel resumable sessions; the one of ${this.target(session.name)} stays until it expires (nothing is visible at its name)`);
    } catch (error) {
      this.logger.warn(`Could not cancel the resumable upload session of ${this.target(session.name)}; GCS forgets it after a week, and no object was made.`, { error: errorText(error) });
    }
  }

  // ───────────────────────────── requests ─────────────────────────────

  /**
   * Sends JSON API requests for one operation: fresh credentials on every attempt, the shared
   * retry policy per request, GCS error answers mapped to typed errors with hints.
   */
  private requester(signal: AbortSignal | undefined, onRetry?: (event: RetryEvent, what: string) => void): GcsRequester {
    /** One attempt at `req`: fresh credentials, the answer mapped, a 308 returned as progress. */
    const sendOnce = async <U>(req: HttpRequest, attemptSignal: AbortSignal | undefined, context: GcsRequestContext<unknown>): Promise<HttpResponse<U>> => {
      const auth = await this.authHeaders(req.url);
      try {
        return await this.http.send<U>({
          ...req,
          headers: { ...req.headers, ...auth },
          signal: attemptSignal,
          mapError: (res) => this.mapError(res, context),
        });
      } catch (error) {
        const incomplete = error as Partial<ResumeIncomplete>;
        if (incomplete.resumeIncomplete) return { status: 308, headers: incomplete.headers ?? {}, body: undefined as U };
        throw error;
      }
    };
    return {
      send: async <T>(req: HttpRequest, context: GcsRequestContext<T>): Promise<HttpResponse<T>> => {
        try {
          return await withRetry(
            async (attempt, attemptSignal) => {
              if (attempt > 1 && context.beforeRetry) {
                const settled = await context.beforeRetry((other) => sendOnce(other, combineSignals(attemptSignal, other.signal), context));
                if (settled) return settled;
              }
              return sendOnce<T>(req, attemptSignal, context);
            },
            { retry: this.retry, signal: combineSignals(signal, req.signal), onRetry: (event) => onRetry?.(event, context.operation) },
          );
        } catch (error) {
          throw this.withHint(error, context);
        }
      },
    };
  }

  private mapError(res: ErrorResponse, context: { operation: string; name: string }): Error {
    // Progress, not a failure; an error of the tree so the HTTP client passes it through as is.
    if (res.status === 308) return Object.assign(new HttpStatusError(308, '308 Resume Incomplete', { code: 'RESUME_INCOMPLETE' }), { resumeIncomplete: true, headers: res.headers });
    let reason: string | undefined;
    let message = '';
    try {
      const parsed = JSON.parse(res.bodyText) as { error?: { message?: string; errors?: Array<{ reason?: string; message?: string }> } };
      reason = parsed.error?.errors?.[0]?.reason;
      message = parsed.error?.message ?? parsed.error?.errors?.[0]?.message ?? '';
    } catch {
      message = res.bodyText.slice(0, 300).trim();
    }
    const target = context.operation === 'list' ? `gs://${this.bucket}/${context.name}` : this.target(context.name);
    const hint = this.hintFor(res.status, reason, context.operation);
    return new HttpStatusError(res.status, `GCS ${context.operation} of ${target} failed: ${res.status}${reason ? ` ${reason}` : ''}${message ? `: ${redact(message)}` : ''}`, {
      method: res.method,
      url: redactUrl(res.url),
      retryAfterMs: res.retryAfterMs,
      body: redact(res.bodyText.slice(0, 2000)),
      ...(reason ? { code: reason } : {}),
      ...(hint ? { hint } : {}),
    });
  }

  private hintFor(status: number, reason: string | undefined, operation: string): string | undefined {
    const anonymous = !this.config.authenticated || this.anonymous;
    const emulator = this.config.endpointSource === 'STORAGE_EMULATOR_HOST' ? ` (STORAGE_EMULATOR_HOST=${redact(this.config.apiEndpoint)})` : '';
    if (operation.startsWith('resumable upload') && (status === 404 || status === 410)) {
      return 'The resumable upload session expired or was cancelled; upload the file again.';
    }
    if (status === 401) {
      return anonymous
        ? 'No Google credentials were found, so the request went anonymously (as MLflow does), and the bucket does not allow that. Set GOOGLE_APPLICATION_CREDENTIALS to a service account key file, run `gcloud auth application-default login`, or run where the metadata server provides a service account.'
        : 'Google refused the credentials: check GOOGLE_APPLICATION_CREDENTIALS (or `gcloud auth application-default login`) and that the account is not disabled.';
    }
    // Before the 403 of a missing permission: granting one changes nothing to these. GCS
    // refuses to replace an object under retention or a hold (status-codes page of the JSON API).
    if (reason === 'retentionPolicyNotMet') {
      return `The object at this artifact path is under retention (the bucket's retention policy, or the object's own retention configuration): GCS says until when, and it cannot be replaced before then. Upload under another artifact path or to another run, or wait until the retention ends.`;
    }
    if (reason === 'objectUnderActiveHold') {
      return `There is a hold on the object at this artifact path (event-based or temporary): it cannot be replaced while the hold is on. Upload under another artifact path or to another run, or have the hold released (\`gcloud storage objects update gs://${this.bucket}/<name> --no-temporary-hold --no-event-based-hold\`) by someone allowed to.`;
    }
    if (status === 412) return this.preconditionHint(reason, operation);
    if (status === 403 && !GCS_THROTTLING_REASONS.has(reason ?? '')) {
      return `${anonymous ? 'The request went without credentials (none were found). ' : ''}The account needs storage.objects.create on bucket "${this.bucket}" (and storage.objects.delete to overwrite an artifact, storage.objects.list to list them), e.g. the role roles/storage.objectUser.`;
    }
    if (status === 404) {
      return `The bucket "${this.bucket}" does not exist${emulator}: create it; MLflow never creates buckets. Also check the tracking server's --default-artifact-root.`;
    }
    if (status === 429 || status >= 500 || GCS_THROTTLING_REASONS.has(reason ?? '')) {
      return `GCS kept failing; every request was retried ${this.retry.maxRetries} time(s) (raise MLFLOW_HTTP_REQUEST_MAX_RETRIES or retry.maxRetries), then upload again.`;
    }
    if (status === 400 && reason === 'invalid') return 'GCS refused the request as invalid; check the artifact path (object names are at most 1024 bytes of UTF-8).';
    return undefined;
  }

  /**
   * The hint of a 412, which no retry mends (`core/retry.ts` does not retry it). GCS answers 412
   * for a request that violates an organization policy (`orgPolicyConstraintFailed`), and for a
   * precondition that did not hold (`conditionNotMet`): a session keeps the preconditions it was
   * started with (`ifGenerationMatch`, ...) and checks them at its last chunk, which makes the
   * object. This store sends none, on a session or a one-request upload; the failed session is
   * cancelled, so nothing is left at the name.
   */
  private preconditionHint(reason: string | undefined, operation: string): string {
    if (reason === 'orgPolicyConstraintFailed') {
      return `An organization policy of the bucket's project refuses this write; GCS's message names the constraint (e.g. constraints/gcp.restrictNonCmekServices, which wants a customer-managed default key on the bucket). Have the bucket or the policy changed by an organization policy administrator, or point the tracking server's --default-artifact-root at a bucket the policy allows.`;
    }
    if (operation.startsWith('resumable upload')) {
      return 'The resumable session was started with a precondition (ifGenerationMatch, ifMetagenerationMatch) that no longer holds: the object at this name changed since the session started. This store starts its sessions without one, so the session came from another tool (resumeSession); it was cancelled: upload the file again, in a session of its own.';
    }
    const sendsNone = 'This store sends no precondition (ifGenerationMatch, ifMetagenerationMatch) with its requests';
    if (this.config.endpointSource === 'default') return `${sendsNone}, so the 412 came from something between this machine and GCS that adds one (a proxy): check the network path to storage.googleapis.com, then upload again.`;
    const endpoint = `${redact(this.config.apiEndpoint)} (${this.config.endpointSource === 'option' ? 'the apiEndpoint option' : this.config.endpointSource})`;
    return `${sendsNone}, so the 412 came from ${endpoint} or something between this machine and it (a proxy that adds one): check that it is GCS or an emulator of it, then upload again.`;
  }

  /** Adds the store's context to network errors and timeouts from the HTTP client. */
  private withHint(error: unknown, context: { operation: string; name: string }): unknown {
    if (error instanceof RequestTimeoutError) {
      // The HTTP client's hint names MLFLOW_HTTP_REQUEST_TIMEOUT, which this store does not read
      // (its timeout is MLflow's GCS one): raising it changed nothing.
      return new RequestTimeoutError(error.timeoutMs, {
        method: error.method,
        url: error.url,
        cause: error,
        hint: 'If GCS is slow rather than down, raise MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT (seconds, -1 for none) or the gcs.timeoutMs option; the gs:// store does not read MLFLOW_HTTP_REQUEST_TIMEOUT.',
      });
    }
    if (error instanceof NetworkError && this.config.endpointSource !== 'default') {
      return new NetworkError(`GCS ${context.operation} of ${this.target(context.name)} could not reach ${redact(this.config.apiEndpoint)}: ${error.message}`, {
        method: error.method,
        url: error.url,
        cause: error,
        hint: `Check that ${redact(this.config.apiEndpoint)} (${this.config.endpointSource === 'option' ? 'the apiEndpoint option' : this.config.endpointSource}) is reachable from this machine.`,
      });
    }
    return error;
  }

  // ───────────────────────────── credentials ─────────────────────────────

  /** True once Application Default Credentials were looked for and none were found. */
  private anonymous = false;

  private async authHeaders(url: string): Promise<Record<string, string>> {
    if (!this.config.authenticated) return {};
    const auth = await this.getAuth();
    if (!auth) return {};
    let headers: Awaited<ReturnType<GoogleAuthLike['getRequestHeaders']>>;
    try {
      headers = await auth.getRequestHeaders(url);
    } catch (error) {
      throw credentialsError(error, this.config);
    }
    const out: Record<string, string> = {};
    // Refreshed tokens are registered too: a server that echoes the header must not leak it.
    const remember = (key: string, value: string) => {
      out[key.toLowerCase()] = value;
      if (key.toLowerCase() === 'authorization') registerSecret(value.replace(/^Bearer\s+/i, ''));
    };
    if (typeof (headers as { forEach?: unknown }).forEach === 'function') {
      (headers as { forEach(cb: (value: string, key: string) => void): void }).forEach((value, key) => remember(key, value));
    } else {
      for (const [key, value] of Object.entries(headers as Record<string, string>)) remember(key, value);
    }
    return out;
  }

  private getAuth(): Promise<GoogleAuthLike | undefined> {
    this.authPromise ??= this.createAuth().catch((error: unknown) => {
      this.authPromise = undefined;
      throw error;
    });
    return this.authPromise;
  }

  /**
   * Application Default Credentials through the SDK's `google-auth-library`; none at all means
   * anonymous requests, as MLflow's `Client.create_anonymous_client()` fallback.
   */
  private async createAuth(): Promise<GoogleAuthLike | undefined> {
    const sdk = await loadGcsSdk(this.loadSdk);
    const storage = new sdk.Storage({ ...(this.config.keyFilename ? { keyFilename: this.config.keyFilename } : {}) });
    const auth = storage.authClient;
    try {
      await auth.getClient();
    } catch (error) {
      if (!this.config.keyFilename && /could not load the default credentials/i.test(String((error as Error).message))) {
        this.anonymous = true;
        this.logger.warn('No Google credentials found (Application Default Credentials); sending GCS requests anonymously, as MLflow does. Only buckets open to allUsers accept them.');
        return undefined;
      }
      throw credentialsError(error, this.config);
    }
    return auth;
  }

  private warnOnce(): void {
    if (this.warned) return;
    this.warned = true;
    for (const warning of this.config.warnings) this.logger.warn(warning);
  }

  /** `gs://bucket/name` for messages. */
  private target(name: string): string {
    return `gs://${this.bucket}/${name}`;
  }
}


/**
 * The factory `resolve.ts` registers for `gs:` URIs. Retries follow the tracking connection's
 * policy; GCS settings come from `context.gcs`, then the env vars MLflow reads.
 */
export const gcsStoreFactory: ArtifactStoreFactory = {
  schemes: ['gs'],
  label: 'gs: (written directly to the bucket; @google-cloud/storage for credentials)',
  create(artifactUri: string, context: ArtifactStoreContext): ArtifactStore {
    return new GcsArtifactStore(artifactUri, { ...context.gcs, retry: context.connection.retry, env: context.env, logger: context.logger });
  },
};

// ───────────────────────────── SDK loading ─────────────────────────────

/** The default loader: a plain dynamic import, left as-is by tsup in both builds. */
async function importGcsSdk(): Promise<GcsSdkModules> {
  return { storage: await import('@google-cloud/storage') };
}

async function loadGcsSdk(loader: GcsSdkLoader): Promise<StorageModule> {
  return loadOptionalModule<StorageModule>(async () => (await loader()).storage, 'Storage', GCS_PEER_PACKAGES[0]!, 'Writing artifacts to a gs:// artifact root with credentials', {
    hint: `The installed @google-cloud/storage has no Storage export. Install version 7: npm install ${GCS_PEER_PACKAGES.join(' ')}@7`,
  });
}


/** A credentials problem (a bad key file, a token the server refused) as a typed error. */
function credentialsError(error: unknown, config: ResolvedGcsConfig): unknown {
  if (error instanceof ArtifactUploaderError) return error;
  // Unreachable, or answering 429/5xx (google-auth-library's GaxiosError carries the status): a
  // fault of the token endpoint or of the metadata server, retried with the request it was for.
  // A ConfigError here failed the upload at once, saying the credentials were unusable, when
  // the metadata server of a node that is starting up was only busy.
  if (isLowLevelNetworkError(error) || isRetryableError(error)) {
    return new NetworkError(`Could not get a Google access token: ${errorText(error)}.`, {
      cause: error,
      hint: 'Check the network path to Google (oauth2.googleapis.com, or the metadata server on GCP); a token endpoint that is busy or failing is retried like any request (MLFLOW_HTTP_REQUEST_MAX_RETRIES).',
    });
  }
  const source = config.keyFilename ? `GOOGLE_APPLICATION_CREDENTIALS (or keyFilename) = ${config.keyFilename}` : 'Application Default Credentials';
  return new ConfigError(`Google credentials from ${source} could not be used: ${errorText(error)}.`, {
    hint: 'Point GOOGLE_APPLICATION_CREDENTIALS at a valid service account key file, or run `gcloud auth application-default login`.',
    issues: [{ path: 'GOOGLE_APPLICATION_CREDENTIALS', message: 'credentials could not be loaded' }],
    cause: error,
  });
}

// ───────────────────────────── helpers ─────────────────────────────

/**
 * Splits `gs://bucket/path` into the bucket and the object name prefix of the artifact root,
 * as MLflow's `parse_gcs_uri` does (the path is taken as-is, not percent-decoded).
 *
 * @example
 * ```ts
 * parseGcsUri('gs://ml/direct/1/abc/artifacts'); // { bucket: 'ml', rootKey: 'direct/1/abc/artifacts' }
 * ```
 */
export function parseGcsUri(uri: string): { bucket: string; rootKey: string } {
  return parseBucketUri(uri, 'gs', 'a GCS');
}

/**
 * The Content-Type `google-cloud-storage` sends: Python's `mimetypes` guess of the name, else
 * `application/octet-stream`. Unlike the S3 store no Content-Encoding is set: on GCS a
 * `gzip` encoding makes downloads decompress the bytes (transcoding), so a `.tar.gz` would not
 * come back as it was sent.
 */
function contentTypeFor(name: string): string {
  return guessMimeType(name).type ?? 'application/octet-stream';
}

/** A session as the journal stored it, if it has the shape of one. */
function asSession(value: unknown): GcsResumableSession | undefined {
  const v = value as Partial<GcsResumableSession> | null;
  if (!v || typeof v !== 'object') return undefined;
  if (typeof v.uri !== 'string' || typeof v.bucket !== 'string' || typeof v.name !== 'string' || typeof v.size !== 'number' || typeof v.createdAt !== 'number') return undefined;
  return { uri: v.uri, bucket: v.bucket, name: v.name, size: v.size, createdAt: v.createdAt };
}
