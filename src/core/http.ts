/**
 * The one HTTP wrapper of the library: auth headers, TLS settings, an idle timeout that covers
 * connecting, sending and receiving, `AbortSignal`, redaction of every URL and body that ends up
 * in an error, and bodies that can be re-sent on retry without reading a file into memory (a
 * file body is re-opened for each attempt and read in chunks into two reused buffers,
 * `core/file-chunks.ts`). Every PUT with a body carries `Content-Length` and is never chunked.
 *
 * Requests go through Node's own `http`/`https` (keep-alive agents, one pair per client). Only
 * {@link HttpClient.fetch} (for `@huggingface/hub`) loads undici. undici parses responses with
 * llhttp compiled to WebAssembly: loading it costs about 17 MiB of RSS, and the first response
 * it parses makes V8 optimise that parser on a background thread, a transient 35 MiB on Node 20
 * (measured for issue 18: a 2 GiB upload peaked at 112 MiB, 78 MiB of it steady). Node's `http`
 * parses with llhttp compiled into the binary: neither cost.
 *
 * @module
 */
import { createHash } from './node-crypto.js';
import { readFileSync } from 'node:fs';
import type { Agent as NodeAgent, ClientRequest, IncomingMessage, RequestOptions as NodeRequestOptions } from 'node:http';
import type { Readable } from 'node:stream';
import type { Agent, Dispatcher } from 'undici';
import { IdleTimer } from './abort.js';
import { LocalFileBlob } from './file-blob.js';
import { FILE_CHUNK_BYTES, readFileChunks } from './file-chunks.js';
import { readCaCertificates } from './ca-certificates.js';
import { sourceChange, type FileSnapshot } from './source-snapshot.js';
import { AbortedError, ArtifactUploaderError, ConfigError, HttpStatusError, InvalidResponseError, NetworkError, RequestTimeoutError } from './errors.js';
import { redact, redactUrl, registerSecret, silentLogger, type Logger } from './logger.js';
import { withRetry, type ResolvedRetryOptions, type RetryEvent } from './retry.js';
import { MLFLOW_CERTIFICATE_FILES, permanentTlsFailure, unreadableCertificateError, type CertificateFileSetting, type CertificateFileSettings, type TlsSettingNames } from './tls-failure.js';

/** Credentials sent with every request to the server they belong to. */
export interface HttpAuth {
  /** Bearer token (`Authorization: Bearer <token>`). */
  token?: string;
  /** Basic auth user; wins over `token` when a password is set too, as in MLflow. */
  username?: string;
  /** Basic auth password. */
  password?: string;
  /**
   * A bearer token fetched before each request (and cached by the source): for tokens that
   * expire during a long upload, such as Entra ID tokens. Used when `token` and Basic auth are
   * not set. The source registers each token it returns as a secret.
   */
  tokenSource?: () => Promise<string>;
}

/** TLS settings, as MLflow reads them from `MLFLOW_TRACKING_INSECURE_TLS` / `..._SERVER_CERT_PATH` / `..._CLIENT_CERT_PATH`. */
export interface TlsOptions {
  /** Skip certificate verification. @default false */
  insecure?: boolean;
  /**
   * Path to a PEM CA bundle to trust, or to a directory of CA certificates (its `<hash>.0`
   * files, as OpenSSL reads it for `requests`, and its `*.pem` / `*.crt` files); read at the
   * first https request, as `requests` reads it for MLflow.
   */
  caCertPath?: string;
  /** Path to one PEM file holding a client certificate and its private key (mutual TLS). */
  clientCertPath?: string;
}

/**
 * A request body that can be sent more than once. A `file` body is re-opened (from `start`)
 * for every attempt, so a retried 2 GiB upload never holds the file in memory.
 */
export type RequestBody =
  | string
  | Uint8Array
  | {
      kind: 'file';
      path: string;
      start?: number;
      length: number;
      /**
       * The file when its upload started: a request that fails while the file no longer
       * matches it throws {@link SourceChangedError} (never retried) instead of a network error
       * (a truncated file makes undici fail with a content-length mismatch).
       */
      snapshot?: FileSnapshot;
      /** Receives the sha256 (hex) of the bytes sent, computed as they are read, per attempt. */
      digest?: { sha256?: string };
      /**
       * Sees each chunk read from the file, with its position in the file (e.g. to hash a file
       * sent in parts, in order). The chunk is a view of a reused read buffer, valid only during
       * the call: copy it to keep it.
       */
      onRead?: (chunk: Buffer, position: number) => void;
    };

/** One HTTP request. */
export interface HttpRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'HEAD' | 'PATCH';
  url: string;
  headers?: Record<string, string>;
  body?: RequestBody;
  /** Send the client's auth headers. Off for presigned URLs. @default true */
  withAuth?: boolean;
  /** How to read the response body. @default 'json' */
  responseType?: 'json' | 'text' | 'buffer' | 'stream' | 'none';
  /** Cancels the request (and its retries). */
  signal?: AbortSignal;
  /** Bytes of the body sent so far, on this attempt. */
  onUploadProgress?: (loaded: number) => void;
  /**
   * Turns a non-2xx answer into an error; the default makes an {@link HttpStatusError}.
   * Callers that know the protocol (MLflow, the Hub) pass their own.
   */
  mapError?: (response: ErrorResponse) => Error;
}

/** What {@link HttpRequest.mapError} is given. */
export interface ErrorResponse {
  status: number;
  headers: Record<string, string>;
  /** Response body text (at most 64 KiB), not yet redacted. */
  bodyText: string;
  method: string;
  /** URL with credentials removed. */
  url: string;
  /** `Retry-After`, parsed, in ms. */
  retryAfterMs?: number;
  /** Whether the request carried an `Authorization` header (a 401 then means it was refused, not missing). */
  sentAuthorization?: boolean;
}

/** A successful response. */
export interface HttpResponse<T = unknown> {
  status: number;
  headers: Record<string, string>;
  body: T;
}

/** What an https connection of {@link HttpClient} uses besides the pool's settings. */
interface HttpsSettings {
  rejectUnauthorized: boolean;
  ca?: Buffer[];
  cert?: Buffer;
  key?: Buffer;
}

/** Options of {@link HttpClient}. */
export interface HttpClientOptions {
  /** Retry and timeout policy (see `resolveRetryOptions`). */
  retry: ResolvedRetryOptions;
  auth?: HttpAuth;
  tls?: TlsOptions;
  /** Sent as `User-Agent`. */
  userAgent?: string;
  /**
   * The settings that fix this client's TLS, as the hint of a TLS failure names them.
   * @default the MLflow connection's (`MLFLOW_TLS_SETTINGS`)
   */
  tlsSettings?: TlsSettingNames;
  /**
   * The settings of `tls.caCertPath` and `tls.clientCertPath`, as the error for a certificate
   * file that cannot be read names them.
   * @default the MLflow connection's (`MLFLOW_CERTIFICATE_FILES`: `MLFLOW_TRACKING_SERVER_CERT_PATH`, `MLFLOW_TRACKING_CLIENT_CERT_PATH`)
   */
  certificateFiles?: CertificateFileSettings;
  logger?: Logger;
  /** Called before every retry of every request (for statistics). */
  onRetry?: (event: RetryEvent & { method: string; url: string }) => void;
}

const MAX_ERROR_BODY = 64 * 1024;

/**
 * A small HTTP client: {@link HttpClient.request} sends with retries, {@link HttpClient.send}
 * makes one attempt. One instance per server keeps one connection pool.
 *
 * @example
 * ```ts
 * const http = new HttpClient({ retry: resolveRetryOptions(), auth: { token } });
 * const { body } = await http.request<{ run: unknown }>({ method: 'GET', url });
 * ```
 */
export class HttpClient {
  readonly retry: ResolvedRetryOptions;
  /** The pool's settings besides TLS's ({@link httpsSettings}). */
  private readonly agentOptions: Agent.Options;
  private readonly tls: TlsOptions;
  /** Names the certificate files' settings when one cannot be read. */
  private readonly certificateFiles: CertificateFileSettings;
  /** The client certificate and key, read when the client is made. */
  private readonly clientCertificate?: { cert: Buffer; key: Buffer };
  /** What an https connection uses, once the first https request has read it. */
  private https?: HttpsSettings;
  /** undici and its connection pool, made on the first {@link HttpClient.fetch} (undici loads on first use). */
  private pool?: Promise<{ undici: typeof import('undici'); dispatcher: Dispatcher }>;
  /** Node's keep-alive agent per protocol, made on the first request of that protocol. */
  private readonly agents = new Map<string, Promise<NodeTransport>>();
  private closed = false;
  private readonly authHeader?: string;
  private readonly tokenSource?: () => Promise<string>;
  private readonly userAgent: string;
  private readonly logger: Logger;
  private readonly onRetryHook?: HttpClientOptions['onRetry'];
  private readonly tlsSettings?: TlsSettingNames;

  constructor(options: HttpClientOptions) {
    this.retry = options.retry;
    this.logger = options.logger ?? silentLogger;
    this.userAgent = options.userAgent ?? 'artifact-uploader';
    this.onRetryHook = options.onRetry;
    this.tlsSettings = options.tlsSettings;
    this.authHeader = authorizationHeader(options.auth);
    if (!this.authHeader) this.tokenSource = options.auth?.tokenSource;
    this.tls = options.tls ?? {};
    this.certificateFiles = options.certificateFiles ?? MLFLOW_CERTIFICATE_FILES;
    if (this.tls.clientCertPath) this.clientCertificate = clientCertificate(this.tls.clientCertPath, this.certificateFiles.client);
    this.agentOptions = {
      keepAliveTimeout: 30_000,
      connections: 32,
      headersTimeout: this.retry.timeoutMs,
      bodyTimeout: this.retry.timeoutMs,
      connect: { timeout: this.retry.timeoutMs },
    };
  }

  /**
   * The TLS settings of an https connection. The CA bundle (or directory, `readCaCertificates`)
   * is read at the first https request, not when the client is made, as `requests` reads
   * MLflow's `verify=` path for https URLs only (adapters.py `cert_verify`): a client of an
   * http:// server works with a CA path that does not exist, and the first https request fails
   * with {@link unreadableCertificateError} before it connects (again on the next, until the
   * file is there).
   */
  private httpsSettings(): HttpsSettings {
    if (this.https) return this.https;
    const { caCertPath } = this.tls;
    const ca = caCertPath ? readCaCertificates(caCertPath, this.certificateFiles.ca, this.logger) : undefined;
    this.https = { rejectUnauthorized: !this.tls.insecure, ...(ca ? { ca } : {}), ...this.clientCertificate };
    return this.https;
  }

  /**
   * Node's `http` or `https` and this client's keep-alive agent for `protocol`, made on first
   * use: up to 32 connections per origin, idle ones closed after 30 s, the TLS settings of
   * {@link httpsSettings} (undici's pool had the same).
   */
  private transport(protocol: string): Promise<NodeTransport> {
    let made = this.agents.get(protocol);
    if (!made) {
      const options = { keepAlive: true, maxSockets: 32, timeout: 30_000 };
      if (protocol === 'https:') {
        const tls = this.httpsSettings();
        made = import('node:https').then((https) => ({ request: https.request, agent: new https.Agent({ ...options, ...tls }) }));
      } else {
        made = import('node:http').then((http) => ({ request: http.request, agent: new http.Agent(options) }));
      }
      this.agents.set(protocol, made);
    }
    return made;
  }

  /**
   * undici and this client's pool (for {@link HttpClient.fetch}); both are made on first use. The
   * pool serves http and https alike, so it reads the CA bundle when it is made, whatever the
   * first URL's scheme ({@link HttpClient.fetch} is the Hub's, which is https).
   */
  private connectionPool(): Promise<{ undici: typeof import('undici'); dispatcher: Dispatcher }> {
    if (!this.pool) {
      const connect = { ...this.agentOptions.connect, ...this.httpsSettings() };
      this.pool = import('undici').then((undici) => ({ undici, dispatcher: new undici.Agent({ ...this.agentOptions, connect }) }));
    }
    return this.pool;
  }

  /** Sends with retries under the client's policy (`hooks.isRetryable`: another classifier from core/retry.ts for this call). */
  async request<T = unknown>(
    req: HttpRequest,
    hooks: { onRetry?: (event: RetryEvent) => void; isRetryable?: (error: unknown) => boolean } = {},
  ): Promise<HttpResponse<T>> {
    return withRetry((_attempt, signal) => this.send<T>({ ...req, signal }), {
      retry: this.retry,
      signal: req.signal,
      ...(hooks.isRetryable ? { isRetryable: hooks.isRetryable } : {}),
      onRetry: (event) => {
        const url = redactUrl(req.url);
        this.logger.debug(`retrying ${req.method} ${url} in ${event.delayMs} ms`, {
          attempt: event.attempt,
          error: event.error instanceof Error ? event.error.message : String(event.error),
        });
        hooks.onRetry?.(event);
        this.onRetryHook?.({ ...event, method: req.method, url });
      },
    });
  }

  /** Makes one attempt. Throws {@link NetworkError}, {@link RequestTimeoutError}, {@link AbortedError} or the mapped status error. */
  async send<T = unknown>(req: HttpRequest): Promise<HttpResponse<T>> {
    // Redacting parses the URL: done only when a message needs it, not for every request.
    let redacted: string | undefined;
    const safeUrl = () => (redacted ??= redactUrl(req.url));
    if (req.signal?.aborted) throw new AbortedError(undefined, { cause: req.signal.reason });
    // Fetched before the idle timer starts; a source that fails (no credential, sign-in
    // refused) fails this attempt with its own typed error.
    const bearer = req.withAuth !== false && this.tokenSource && !this.authHeader && !hasAuthorization(req.headers) ? `Bearer ${await this.tokenSource()}` : undefined;
    const idle = new IdleTimer(this.retry.timeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, idle.signal]) : idle.signal;
    const headers: Record<string, string> = { 'user-agent': this.userAgent, ...lowerCaseKeys(req.headers) };
    if (req.withAuth !== false && this.authHeader && !headers.authorization) headers.authorization = this.authHeader;
    if (bearer) headers.authorization = bearer;
    const { body, length, streamed } = openBody(req.body, (loaded) => {
      idle.touch();
      req.onUploadProgress?.(loaded);
    });
    if (length !== undefined) headers['content-length'] = String(length);

    let response: IncomingMessage;
    try {
      const url = new URL(req.url);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`unsupported protocol ${url.protocol}`);
      response = await dispatch(await this.transport(url.protocol), url, { method: req.method, headers, signal }, body, streamed === true);
    } catch (error) {
      idle.stop();
      // writeChunks closes a body it started writing; one it never started holds no file yet.
      if (streamed) void (body as AsyncGenerator<Uint8Array>).return(undefined).catch(() => undefined);
      const file = typeof req.body === 'object' && !(req.body instanceof Uint8Array) ? req.body : undefined;
      const changed = file?.snapshot ? await sourceChange(file.path, file.snapshot) : undefined;
      if (changed) throw changed;
      throw this.translate(error, req, safeUrl(), idle);
    }
    // An in-memory body is handed over whole: once the server answers, all of it was sent.
    if (length !== undefined && length > 0 && !streamed) req.onUploadProgress?.(length);

    const status = response.statusCode ?? 0;
    try {
      const responseHeaders = flattenHeaders(response.headers);
      if (status < 200 || status >= 300) {
        const bodyText = await readLimited(response, MAX_ERROR_BODY, idle);
        const info: ErrorResponse = {
          status,
          headers: responseHeaders,
          bodyText,
          method: req.method,
          url: safeUrl(),
          retryAfterMs: parseRetryAfter(responseHeaders['retry-after']),
          sentAuthorization: headers.authorization !== undefined,
        };
        throw (req.mapError ?? defaultMapError)(info);
      }
      const type = req.responseType ?? 'json';
      if (type === 'stream') {
        idle.stop();
        // Cast: with responseType 'stream' the caller's T is the body stream itself (see HttpRequest).
        return { status, headers: responseHeaders, body: response as unknown as T };
      }
      if (type === 'none') {
        // Read to the end (not dropped), so that the connection goes back to the pool.
        for await (const _chunk of response) idle.touch();
        return { status, headers: responseHeaders, body: undefined as T };
      }
      const buffer = await readAll(response, idle);
      let parsed: unknown = buffer;
      if (type === 'text') parsed = buffer.toString('utf8');
      if (type === 'json') parsed = parseJson(buffer, req.method, safeUrl());
      return { status, headers: responseHeaders, body: parsed as T };
    } catch (error) {
      if (!response.destroyed) response.destroy();
      throw this.translate(error, req, safeUrl(), idle);
    } finally {
      idle.stop();
    }
  }

  /**
   * A `fetch` that goes through this client's connection pool and TLS settings (no retries:
   * for libraries such as `@huggingface/hub` that take a `fetch` option). A {@link LocalFileBlob}
   * body is streamed from the file in chunks with `Content-Length` (`undici.request`),
   * which is several times cheaper than `fetch` reading a `Blob` through web streams.
   */
  get fetch(): typeof fetch {
    return (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
      const { undici, dispatcher } = await this.connectionPool();
      if (init?.body instanceof LocalFileBlob && typeof input === 'string') return sendFileBlob(undici, input, init, init.body, dispatcher);
      // Casts: undici's fetch and the global fetch have structurally different (DOM vs undici)
      // Request/Response types for the same objects; the dispatcher option is undici's own.
      return undici.fetch(input as never, { ...(init as object), dispatcher } as never);
    }) as unknown as typeof fetch;
  }

  /** Closes the connections. The client must not be used afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A client that never sent a request has no agent or pool to close.
    for (const transport of this.agents.values()) (await transport).agent.destroy();
    if (this.pool) await (await this.pool).dispatcher.close();
  }

  private translate(error: unknown, req: HttpRequest, safeUrl: string, idle: IdleTimer): unknown {
    if (error instanceof ArtifactUploaderError) return error;
    if (idle.fired) return new RequestTimeoutError(this.retry.timeoutMs, { method: req.method, url: safeUrl, cause: error });
    if (req.signal?.aborted) return new AbortedError(`${req.method} ${safeUrl} was aborted.`, { cause: req.signal.reason });
    const code = (error as { code?: string }).code;
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
      return new RequestTimeoutError(this.retry.timeoutMs, { method: req.method, url: safeUrl, cause: error });
    }
    const tls = permanentTlsFailure(error, this.tlsSettings);
    if (tls) {
      return new ConfigError(`${req.method} ${safeUrl} failed: ${tls.what} (${tls.code}).`, {
        issues: [{ path: safeUrl, message: tls.what }],
        hint: tls.hint,
        cause: error,
      });
    }
    const message = error instanceof Error ? redact(error.message) : String(error);
    return new NetworkError(`${req.method} ${safeUrl} failed: ${message}${code ? ` (${code})` : ''}.`, {
      method: req.method,
      url: safeUrl,
      cause: error,
      hint: 'Check that the server is running and reachable; transient failures are retried automatically.',
    });
  }
}

/** Builds the Authorization header MLflow's client would send: Basic wins over Bearer. */
export function authorizationHeader(auth: HttpAuth | undefined): string | undefined {
  if (!auth) return undefined;
  registerSecret(auth.token);
  registerSecret(auth.password);
  if (auth.username && auth.password) {
    const encoded = Buffer.from(`${auth.username}:${auth.password}`).toString('base64');
    registerSecret(encoded);
    return `Basic ${encoded}`;
  }
  if (auth.token) return `Bearer ${auth.token}`;
  return undefined;
}

function hasAuthorization(headers: Record<string, string> | undefined): boolean {
  return Object.keys(headers ?? {}).some((key) => key.toLowerCase() === 'authorization');
}

function defaultMapError(res: ErrorResponse): Error {
  return new HttpStatusError(res.status, `${res.method} ${res.url} answered ${res.status}: ${redact(res.bodyText.slice(0, 300)).trim() || '(empty body)'}`, {
    method: res.method,
    url: res.url,
    retryAfterMs: res.retryAfterMs,
    body: redact(res.bodyText.slice(0, 2000)),
  });
}

/** Parses `Retry-After` (seconds or an HTTP date) into milliseconds. */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

function parseJson(buffer: Buffer, method: string, url: string): unknown {
  if (buffer.length === 0) return {};
  try {
    return JSON.parse(buffer.toString('utf8'));
  } catch (error) {
    throw new InvalidResponseError(`Expected JSON from ${method} ${url}, got: ${redact(buffer.subarray(0, 200).toString('utf8'))}`, {
      method,
      url,
      cause: error,
    });
  }
}

/** Node's `request` of one protocol and the client's keep-alive agent for it. */
interface NodeTransport {
  request: (url: URL, options: NodeRequestOptions) => ClientRequest;
  agent: NodeAgent;
}

/**
 * Sends one request through Node's `http`/`https` and resolves with the response once its
 * headers arrive (the body is sent on, or stopped, in the background). Rejects with the
 * request's error: the socket's (`ECONNREFUSED`, `ECONNRESET`, ...), the signal's, or the one
 * the file body threw (a source that shrank).
 *
 * A file body is written chunk by chunk, and the next chunk is asked for only once the write
 * callback of the last one has fired, that is once libuv has handed all its bytes to the kernel:
 * that is what lets `core/file-chunks.ts` read the next chunk into the buffer just sent.
 */
function dispatch(
  transport: NodeTransport,
  url: URL,
  options: { method: string; headers: Record<string, string>; signal: AbortSignal },
  body: OpenedBody['body'],
  streamed: boolean,
): Promise<IncomingMessage> {
  return new Promise<IncomingMessage>((resolve, reject) => {
    const request = transport.request(url, { ...options, agent: transport.agent });
    let answer: IncomingMessage | undefined;
    // `on`, not `once`: an error after the response (the body's write failing) must not go unhandled.
    request.on('error', reject);
    request.once('response', (response: IncomingMessage) => {
      answer = response;
      resolve(response);
    });
    if (body === undefined) request.end();
    else if (!streamed) request.end(body);
    else {
      writeChunks(request, body as AsyncGenerator<Uint8Array, void, undefined>, () => answer !== undefined).then(
        (sentAll) => {
          if (request.destroyed) return;
          if (sentAll) return request.end();
          // The server answered before the whole body was sent (a 4xx, typically): the answer is
          // read as usual, then the connection, left mid-body, is closed instead of reused.
          if (answer!.complete) request.destroy();
          else answer!.once('end', () => request.destroy());
        },
        (error: unknown) => request.destroy(error instanceof Error ? error : new Error(String(error))),
      );
    }
  });
}

/**
 * Writes every chunk of `chunks`, each once the last one's bytes have left the process. Stops
 * (and resolves `false`) when the request ends or the server has answered.
 */
async function writeChunks(request: ClientRequest, chunks: AsyncGenerator<Uint8Array, void, undefined>, answered: () => boolean): Promise<boolean> {
  try {
    for await (const chunk of chunks) {
      if (request.destroyed || answered()) return false;
      await new Promise<void>((resolve, reject) => {
        // A write still queued when the request is destroyed never calls back: `close` ends the wait.
        const onClose = () => reject(new Error('the request was closed while its body was being sent'));
        request.once('close', onClose);
        request.write(chunk, (error) => {
          request.off('close', onClose);
          if (error) reject(error);
          else resolve();
        });
      });
    }
    return true;
  } finally {
    // Stopped early (the server answered or the connection failed): the file is closed.
    await chunks.return(undefined).catch(() => undefined);
  }
}

/** A request body as it is sent; `streamed` when it is written chunk by chunk as it is read (a file, a large buffer). */
interface OpenedBody {
  body?: string | Uint8Array | AsyncGenerator<Uint8Array, void, undefined>;
  length?: number;
  streamed?: boolean;
}

function openBody(body: RequestBody | undefined, onProgress: (loaded: number) => void): OpenedBody {
  if (body === undefined) return {};
  if (typeof body === 'string') {
    const bytes = Buffer.from(body, 'utf8');
    return { body: bytes, length: bytes.length };
  }
  if (body instanceof Uint8Array) {
    if (body.byteLength <= FILE_CHUNK_BYTES) return { body, length: body.byteLength };
    return { body: bufferChunks(body, onProgress), length: body.byteLength, streamed: true };
  }
  if (body.length === 0) return { body: Buffer.alloc(0), length: 0 };
  let loaded = 0;
  // Hashed in the same pass as it is sent (a retry starts a new hash).
  const hash = body.digest ? createHash('sha256') : undefined;
  const { digest } = body;
  if (digest) delete digest.sha256;
  const { onRead } = body;
  const start = body.start ?? 0;
  // An async iterable, not a stream: the next chunk is asked for only once the last one has left
  // the socket (`writeChunks`), which is what lets the chunks reuse two buffers (see core/file-chunks.ts).
  // So `onRead` sees a borrowed view, valid only during the call: whoever keeps it must copy it.
  const chunks = readFileChunks(body.path, start, body.length, {
    onChunk: (chunk) => {
      onRead?.(chunk, start + loaded);
      loaded += chunk.length;
      hash?.update(chunk);
      if (hash && digest && loaded === body.length) digest.sha256 = hash.digest('hex');
      onProgress(loaded);
    },
  });
  return { body: chunks, length: body.length, streamed: true };
}

/**
 * A large in-memory body (a multipart part read whole) as views of {@link FILE_CHUNK_BYTES}: the
 * next view is asked for once the last has left the process (`writeChunks`), so the progress callback (and the
 * idle timer it touches) follows the bytes as they go, as it does for a file body, instead of a
 * 10 MiB write that shows nothing until the server answers. Views, not copies.
 */
async function* bufferChunks(bytes: Uint8Array, onProgress: (loaded: number) => void): AsyncGenerator<Uint8Array, void, undefined> {
  for (let at = 0; at < bytes.byteLength; at += FILE_CHUNK_BYTES) {
    const end = Math.min(at + FILE_CHUNK_BYTES, bytes.byteLength);
    yield bytes.subarray(at, end);
    onProgress(end);
  }
}

/**
 * undici sends an async iterable body (its docs list `AsyncIterable` for `body`), but its types
 * list streams only: the one cast of a body, here.
 */
function undiciBody(body: OpenedBody['body']): Dispatcher.RequestOptions['body'] {
  return body as unknown as Dispatcher.RequestOptions['body'];
}

async function readAll(stream: Readable, idle: IdleTimer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    idle.touch();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

async function readLimited(stream: Readable, limit: number, idle: IdleTimer): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    idle.touch();
    if (size < limit) chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}

function flattenHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers)) {
    if (value !== undefined) out[key.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

function lowerCaseKeys(headers: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers ?? {})) out[key.toLowerCase()] = value;
  return out;
}

/** A PEM file with the certificate and the key, as `requests`' `cert=` takes it: OpenSSL picks each block out. */
function clientCertificate(path: string, setting: CertificateFileSetting): { cert: Buffer; key: Buffer } {
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (cause) {
    throw unreadableCertificateError(path, setting, cause);
  }
  return { cert: pem, key: pem };
}

/**
 * Sends a file-backed body the way `fetch` would (same errors: `TypeError: fetch failed` with
 * the cause, `AbortError` on abort) but read from the file as it is sent, through `undici.request`, and answers
 * with a standard `Response`.
 */
async function sendFileBlob(undici: typeof import('undici'), url: string, init: RequestInit, blob: LocalFileBlob, dispatcher: Dispatcher): Promise<Response> {
  const signal = init.signal ?? undefined;
  signal?.throwIfAborted();
  const headers: Record<string, string> = {};
  new Headers(init.headers).forEach((value, key) => {
    headers[key] = value;
  });
  headers['content-length'] = String(blob.size);
  const body = blob.chunks();
  try {
    const response = await undici.request(url, {
      method: (init.method ?? 'PUT') as Dispatcher.HttpMethod,
      headers,
      body: undiciBody(body),
      signal,
      dispatcher,
    });
    const answer = await response.body.arrayBuffer();
    const responseHeaders = new Headers();
    for (const [key, value] of Object.entries(response.headers)) {
      for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) responseHeaders.append(key, v);
    }
    const status = response.statusCode;
    const result = new Response([101, 204, 205, 304].includes(status) ? null : answer, { status, headers: responseHeaders });
    // As a fetch Response would: error messages of the Hub client name the URL.
    Object.defineProperty(result, 'url', { value: url });
    return result;
  } catch (error) {
    void body.return(undefined).catch(() => undefined);
    if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new DOMException('This operation was aborted', 'AbortError');
    throw new TypeError('fetch failed', { cause: error });
  }
}
