/**
 * Typed calls of MLflow's proxied artifact API (`/api/2.0/mlflow-artifacts/...`, served by
 * `mlflow server --serve-artifacts`): streamed PUT and GET of one file, listing, and the proxy's
 * multipart upload (`mpu/create`, `mpu/complete`, `mpu/abort`). Every response is validated
 * with zod, and every artifact path is checked against the server's own rules
 * (`validate_path_is_safe`) before any request, so a bad name fails here with a
 * {@link LocalPathError} that says what to rename instead of as a 400 halfway through a
 * directory.
 *
 * Paths given to {@link MlflowArtifactsApi} are "server paths": relative to the proxy's root,
 * i.e. `<experiment>/<run>/artifacts/<artifact path>` for a run created by a proxying server.
 *
 * @module
 */
import { createHash } from '../core/node-crypto.js';
import { basename } from 'node:path';
import type { Readable } from 'node:stream';
import { guessMimeType } from '../core/mime.js';
import { InvalidResponseError, LocalPathError } from '../core/errors.js';
import type { HttpClient } from '../core/http.js';
import { redactUrl } from '../core/logger.js';
import { isRetryableWithFallback, retryServerErrorOnce, type RetryEvent } from '../core/retry.js';
import type { FileSnapshot } from '../core/source-snapshot.js';
import { mlflowErrorMapper } from './connection.js';
import { artifactPathProblem, joinArtifactPath, type ArtifactPathProblem } from '../core/artifact-path-rules.js';

// ───────────────────────────── artifact paths ─────────────────────────────

// The rules themselves live in core/ (the config file checks its artifact paths with them too).
export { MLFLOW_RESERVED_PREFIX, artifactPathProblem, joinArtifactPath, type ArtifactPathProblem } from '../core/artifact-path-rules.js';

/**
 * Throws a {@link LocalPathError} `INVALID_ARTIFACT_PATH` when {@link artifactPathProblem}
 * finds something, naming the path and what to rename.
 *
 * @example
 * ```ts
 * assertArtifactPath('checkpoints/step-100/model.safetensors');
 * ```
 */
export function assertArtifactPath(path: string, options: { allowEmpty?: boolean; what?: string } = {}): void {
  const problem = artifactPathProblem(path, options);
  if (problem) throw invalidArtifactPathError([problem], options.what);
}

/** The hint of a bad path made of file names (for a bad option value, the caller passes its own). */
const RENAME_HINT = 'Rename the file(s) (e.g. replace "#", "?", "%", "\\" and control characters with "_"), exclude them, or pass another artifactPath.';

/**
 * Builds the `INVALID_ARTIFACT_PATH` error for one or more offending paths. The default hint is
 * about file names; `hint` replaces it when the path is an option's value, which no renaming of
 * files would fix.
 *
 * @example
 * ```ts
 * throw invalidArtifactPathError([{ path: 'a#b', reason: 'contains "#"' }]);
 * ```
 */
export function invalidArtifactPathError(problems: ArtifactPathProblem[], what = 'Artifact path', hint = RENAME_HINT): LocalPathError {
  const shown = problems.slice(0, 10).map((p) => `${JSON.stringify(p.path)} ${p.reason}`);
  const more = problems.length > 10 ? ` (and ${problems.length - 10} more)` : '';
  const head =
    problems.length === 1 ? `${what} ${shown[0]}.` : `${problems.length} artifact paths cannot be uploaded: ${shown.join('; ')}${more}.`;
  return new LocalPathError('INVALID_ARTIFACT_PATH', problems[0]?.path ?? '', `${head} Nothing was uploaded.`, { hint });
}

/**
 * Percent-encodes each segment of a relative artifact path for use in a URL path.
 *
 * @example
 * ```ts
 * encodeArtifactPath('my model/ü.bin'); // 'my%20model/%C3%BC.bin'
 * ```
 */
export function encodeArtifactPath(path: string): string {
  return path
    .split('/')
    .map((segment) => encodeURIComponent(segment))
    .join('/');
}


// ───────────────────────────── content types ─────────────────────────────

/** Extensions MLflow uploads as `text/plain` (`mlflow/utils/mime_type_utils.py`). */
const TEXT_EXTENSIONS = new Set([
  'txt', 'log', 'err', 'cfg', 'conf', 'cnf', 'cf', 'ini', 'properties', 'prop', 'hocon', 'toml', 'yaml', 'yml',
  'xml', 'json', 'js', 'py', 'py3', 'csv', 'tsv', 'md', 'rst', 'ipynb', 'MLmodel', 'mlproject',
]);

/**
 * The `Content-Type` MLflow's Python client sends for a file name: `text/plain` for common text
 * extensions (and `MLmodel`), else the type for the extension, else `application/octet-stream`.
 *
 * @example
 * ```ts
 * guessContentType('metrics.json'); // 'text/plain'
 * guessContentType('model.safetensors'); // 'application/octet-stream'
 * ```
 */
export function guessContentType(fileName: string): string {
  // mlflow/utils/mime_type_utils.py `_guess_mime_type`: names without an extension (MLmodel)
  // are looked up whole; then Python's mimetypes; then binary.
  const name = basename(fileName);
  const dot = name.lastIndexOf('.');
  const extension = dot > 0 ? name.slice(dot + 1) : name;
  if (TEXT_EXTENSIONS.has(extension)) return 'text/plain';
  return guessMimeType(name).type ?? 'application/octet-stream';
}

/** One entry of a listing: a file or directory directly inside the listed directory. */
export interface ArtifactListEntry {
  /** Base name of the entry (the server returns base names only). */
  name: string;
  isDir: boolean;
  /** Size in bytes, for files. */
  size?: number;
}

/** A presigned URL the server hands out for one part of a multipart upload. */
export interface MultipartCredential {
  /** 1-based part number. */
  partNumber: number;
  /** Presigned URL to PUT the part's bytes to (goes to the object store, not to MLflow). */
  url: string;
  /** Headers to send with the part, as the server asks. */
  headers: Record<string, string>;
}

/** What `mpu/create` returned. */
export interface MultipartUpload {
  /** The object store's upload id (absent on Azure, which needs none). */
  uploadId?: string;
  /** One presigned URL per part, sorted by part number. */
  credentials: MultipartCredential[];
}

/** One uploaded part, for `mpu/complete`. */
export interface CompletedPart {
  partNumber: number;
  /** The `ETag` the object store answered. */
  etag: string;
  /** The presigned URL the part went to; Azure reads its block id from it. */
  url: string;
}

/** Per-call options shared by the API methods. */
export interface ArtifactsCallOptions {
  /** Cancels the call (and its retries). */
  signal?: AbortSignal;
  /** Called before each retry. */
  onRetry?: (event: RetryEvent) => void;
}

/** Options of {@link MlflowArtifactsApi}. */
export interface MlflowArtifactsApiOptions {
  /** The client for the tracking server (auth, TLS, retries). */
  http: HttpClient;
  /**
   * Base URL of the server, `scheme://host[:port][/prefix]`, without `/api/...` and without a
   * trailing slash.
   */
  baseUrl: string;
}

/**
 * The proxied artifact endpoints of one MLflow server. Paths are server paths (relative to the
 * proxy root, `<exp>/<run>/artifacts/...`) and are validated before any request.
 *
 * @example
 * ```ts
 * const conn = resolveMlflowConnection({ trackingUri: 'http://127.0.0.1:5000' });
 * if (conn.kind === 'rest') {
 *   const api = new MlflowArtifactsApi({ http: conn.http, baseUrl: conn.baseUrl });
 *   await api.putFile('0/abc123/artifacts/metrics.json', { localPath: 'metrics.json', size: 120 });
 *   const entries = await api.list('0/abc123/artifacts');
 * }
 * ```
 */
export class MlflowArtifactsApi {
  readonly baseUrl: string;
  private readonly http: HttpClient;

  constructor(options: MlflowArtifactsApiOptions) {
    this.http = options.http;
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
  }

  /** URL of a file under the proxy root (for display and for GET/PUT). */
  artifactUrl(serverPath: string): string {
    return `${this.baseUrl}/api/2.0/mlflow-artifacts/artifacts/${encodeArtifactPath(serverPath)}`;
  }

  /**
   * Uploads one local file (or a byte range of it) to `serverPath` with a streamed PUT that
   * carries `Content-Length` (never chunked: see the interop notes in the docs). Retried under
   * the client's policy; the file is re-opened for each attempt, unless its `bytes` are given
   * (a small file read once by the caller), which every attempt then sends. The answer must be
   * MLflow's JSON (`{}`): a 200 that is not came from something in between (an auth gateway's
   * login page), which MLflow never saw, and throws {@link InvalidResponseError}.
   */
  async putFile(
    serverPath: string,
    body: { localPath: string; size: number; contentType?: string; bytes?: Uint8Array; snapshot?: FileSnapshot },
    options: ArtifactsCallOptions & {
      onProgress?: (loaded: number) => void;
      /** What is retried (a classifier of core/retry.ts). @default the client's policy */
      isRetryable?: (error: unknown) => boolean;
    } = {},
  ): Promise<{ attempts: number; sha256?: string }> {
    assertArtifactPath(serverPath);
    let attempts = 1;
    // sha256 of what was sent: of the buffer, or hashed while the file streams out.
    const digest: { sha256?: string } = body.bytes ? { sha256: createHash('sha256').update(body.bytes).digest('hex') } : {};
    const url = this.artifactUrl(serverPath);
    const response = await this.http.request(
      {
        method: 'PUT',
        url,
        headers: { 'content-type': body.contentType ?? guessContentType(serverPath) },
        body: body.bytes ?? { kind: 'file', path: body.localPath, start: 0, length: body.size, digest, ...(body.snapshot ? { snapshot: body.snapshot } : {}) },
        signal: options.signal,
        onUploadProgress: options.onProgress,
        mapError: mlflowErrorMapper('mlflow-artifacts/artifacts'),
      },
      {
        onRetry: (event) => {
          attempts++;
          options.onRetry?.(event);
        },
        ...(options.isRetryable ? { isRetryable: options.isRetryable } : {}),
      },
    );
    await expectEmptyAnswer(response.body, { method: 'PUT', url });
    return { attempts, ...(digest.sha256 ? { sha256: digest.sha256 } : {}) };
  }

  /**
   * Deletes one file (`DELETE /mlflow-artifacts/artifacts/<path>`).
   *
   * @example
   * ```ts
   * await api.deleteFile('1/abc/artifacts/model.onnx');
   * ```
   */
  async deleteFile(serverPath: string, options: ArtifactsCallOptions = {}): Promise<void> {
    assertArtifactPath(serverPath);
    await this.http.request(
      {
        method: 'DELETE',
        url: this.artifactUrl(serverPath),
        responseType: 'none',
        signal: options.signal,
        mapError: mlflowErrorMapper('mlflow-artifacts/artifacts'),
      },
      { onRetry: options.onRetry },
    );
  }

  /** Downloads one file as a stream. The caller must consume or destroy it. */
  async getFile(serverPath: string, options: ArtifactsCallOptions = {}): Promise<Readable> {
    assertArtifactPath(serverPath);
    const response = await this.http.request<Readable>(
      {
        method: 'GET',
        url: this.artifactUrl(serverPath),
        responseType: 'stream',
        signal: options.signal,
        mapError: mlflowErrorMapper('mlflow-artifacts/artifacts'),
      },
      { onRetry: options.onRetry },
    );
    return response.body;
  }

  /**
   * Lists the entries directly inside `serverPath` (base names, as the server returns them).
   * An empty or missing directory gives `[]`.
   */
  async list(serverPath: string, options: ArtifactsCallOptions = {}): Promise<ArtifactListEntry[]> {
    assertArtifactPath(serverPath, { allowEmpty: true });
    const url = `${this.baseUrl}/api/2.0/mlflow-artifacts/artifacts?path=${encodeURIComponent(serverPath)}`;
    const { body } = await this.http.request(
      { method: 'GET', url, signal: options.signal, mapError: mlflowErrorMapper('mlflow-artifacts/artifacts/list') },
      { onRetry: options.onRetry },
    );
    const { artifactsListResponseSchema, parseMlflowResponse } = await import('./schemas.js');
    const parsed = parseMlflowResponse(artifactsListResponseSchema, body, { method: 'GET', url });
    return (parsed.files ?? []).map((f) => ({
      name: f.path,
      isDir: f.is_dir ?? false,
      ...(f.file_size !== undefined ? { size: f.file_size } : {}),
    }));
  }

  /**
   * Starts a multipart upload of `fileName` into the directory `serverDir`. Only the file's
   * base name is sent (the Python client sends its local absolute path, which leaks it).
   * Throws {@link MlflowApiError} 501 `NOT_IMPLEMENTED` when the server's artifact destination
   * cannot do multipart (see {@link isMultipartUnsupportedError}). A 500 is not retried: the
   * caller sends the file as one PUT instead (see {@link isRetryableWithFallback}).
   */
  async createMultipartUpload(serverDir: string, fileName: string, numParts: number, options: ArtifactsCallOptions = {}): Promise<MultipartUpload> {
    assertArtifactPath(serverDir);
    assertArtifactPath(fileName);
    const url = this.mpuUrl('create', serverDir);
    const { body } = await this.http.request(
      {
        method: 'POST',
        url,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ path: fileName, num_parts: numParts }),
        signal: options.signal,
        mapError: mlflowErrorMapper('mlflow-artifacts/mpu/create'),
      },
      { onRetry: options.onRetry, isRetryable: isRetryableWithFallback },
    );
    try {
      const { createMultipartResponseSchema, parseMlflowResponse } = await import('./schemas.js');
      const parsed = parseMlflowResponse(createMultipartResponseSchema, body, { method: 'POST', url });
      const credentials = (parsed.credentials ?? [])
        .map((c) => ({ partNumber: c.part_number, url: c.url, headers: c.headers ?? {} }))
        .sort((a, b) => a.partNumber - b.partNumber);
      const numbers = credentials.map((c) => c.partNumber);
      if (credentials.length !== numParts || numbers.some((n, i) => n !== i + 1)) {
        throw new InvalidResponseError(
          `MLflow mpu/create for ${fileName} asked for ${numParts} part(s) but returned part numbers [${numbers.slice(0, 20).join(', ')}].`,
          { method: 'POST', url: redactUrl(url) },
        );
      }
      const unusable = credentials.find((c) => !/^https?:$/.test(URL.parse(c.url)?.protocol ?? ''));
      if (unusable) {
        throw new InvalidResponseError(`MLflow mpu/create for ${fileName} returned a part URL that is not an http(s) URL (part ${unusable.partNumber}).`, {
          method: 'POST',
          url: redactUrl(url),
        });
      }
      return { ...(parsed.upload_id !== undefined ? { uploadId: parsed.upload_id } : {}), credentials };
    } catch (error) {
      // The server has made the upload, but its answer cannot be used: abort it (best effort),
      // so that no upload is left in progress on the object store, then say why.
      const uploadId = (body as { upload_id?: unknown } | undefined)?.upload_id;
      await this.abortMultipartUpload(serverDir, fileName, typeof uploadId === 'string' ? uploadId : undefined, { signal: options.signal, retry: false }).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Completes a multipart upload. Parts are sent sorted by part number, each with its `url`.
   * The answer is checked as {@link putFile}'s is: an {@link InvalidResponseError} here means the
   * object was never assembled, and the caller aborts the upload.
   */
  async completeMultipartUpload(
    serverDir: string,
    fileName: string,
    uploadId: string | undefined,
    parts: CompletedPart[],
    options: ArtifactsCallOptions = {},
  ): Promise<void> {
    assertArtifactPath(serverDir);
    assertArtifactPath(fileName);
    const sorted = [...parts].sort((a, b) => a.partNumber - b.partNumber);
    const url = this.mpuUrl('complete', serverDir);
    const { body } = await this.http.request(
      {
        method: 'POST',
        url,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          path: fileName,
          upload_id: uploadId,
          parts: sorted.map((p) => ({ part_number: p.partNumber, etag: p.etag, url: p.url })),
        }),
        signal: options.signal,
        mapError: mlflowErrorMapper('mlflow-artifacts/mpu/complete'),
      },
      { onRetry: options.onRetry },
    );
    await expectEmptyAnswer(body, { method: 'POST', url });
  }

  /**
   * Aborts a multipart upload so the object store drops its parts. `retry: false` makes a
   * single attempt (for best-effort cleanup after a failure). A 500 is retried once only
   * ({@link retryServerErrorOnce}): it is what MLflow answers (a bare HTML 500) when the object
   * store says the upload does not exist, as when an earlier attempt completed it or a lifecycle
   * rule aborted it, and that answer does not change; retried by the whole policy it held a
   * rerun, a `resume clear` or a give-up for minutes, only to leave the upload as it was.
   */
  async abortMultipartUpload(
    serverDir: string,
    fileName: string,
    uploadId: string | undefined,
    options: ArtifactsCallOptions & { retry?: boolean } = {},
  ): Promise<void> {
    assertArtifactPath(serverDir);
    assertArtifactPath(fileName);
    const req = {
      method: 'POST' as const,
      url: this.mpuUrl('abort', serverDir),
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ path: fileName, upload_id: uploadId }),
      responseType: 'none' as const,
      signal: options.signal,
      mapError: mlflowErrorMapper('mlflow-artifacts/mpu/abort'),
    };
    if (options.retry === false) await this.http.send(req);
    else await this.http.request(req, { onRetry: options.onRetry, isRetryable: retryServerErrorOnce() });
  }

  private mpuUrl(action: 'create' | 'complete' | 'abort', serverDir: string): string {
    return `${this.baseUrl}/api/2.0/mlflow-artifacts/mpu/${action}/${encodeArtifactPath(serverDir)}`;
  }
}

/**
 * Checks that a write's 2xx answer is MLflow's JSON (`{}`, `_wrap_response` of an empty message):
 * a body that is not JSON has already failed in the HTTP client, and JSON that is not an object
 * fails here, both as {@link InvalidResponseError}. What answered was not MLflow, so nothing was
 * written.
 */
async function expectEmptyAnswer(body: unknown, where: { method: string; url: string }): Promise<void> {
  // Any JSON object passes `emptyResponseSchema` (`z.object({})`), so an object is settled here
  // without the schema module's await on each file's PUT; only a wrong answer loads it, for the
  // error it words.
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) return;
  const { emptyResponseSchema, parseMlflowResponse } = await import('./schemas.js');
  parseMlflowResponse(emptyResponseSchema, body, where);
}

/** MLflow's message for a destination without multipart support (`mlflow/exceptions.py`). */
const MULTIPART_UNSUPPORTED_MESSAGE = 'Multipart upload is not supported';

/**
 * True when `mpu/create` failed because the server cannot do multipart upload: 501
 * `NOT_IMPLEMENTED` or MLflow's "not supported" message (what the Python client checks), or a
 * 404 from a server too old to have the route. The caller then falls back to a single PUT.
 *
 * @example
 * ```ts
 * try { await api.createMultipartUpload(dir, name, 3); } catch (e) { if (isMultipartUnsupportedError(e)) usePut(); else throw e; }
 * ```
 */
export function isMultipartUnsupportedError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as { status?: unknown; errorCode?: unknown; body?: unknown; endpoint?: unknown };
  if (e.endpoint !== undefined && e.endpoint !== 'mlflow-artifacts/mpu/create') return false;
  if (e.status === 501 || e.errorCode === 'NOT_IMPLEMENTED') return true;
  if (typeof e.body === 'string' && e.body.includes(MULTIPART_UNSUPPORTED_MESSAGE)) return true;
  return e.status === 404 && (e.errorCode === 'ENDPOINT_NOT_FOUND' || e.errorCode === 'HTTP_404');
}
