/**
 * Where the MLflow tracking server is and how to talk to it, resolved the way MLflow's Python
 * client resolves it: the `trackingUri` option, else `MLFLOW_TRACKING_URI`, else the embedded
 * default (a local `./mlruns` store in MLflow's FileStore layout). Auth and TLS come from the
 * options, else `MLFLOW_TRACKING_TOKEN`, `MLFLOW_TRACKING_USERNAME`/`PASSWORD` (or userinfo in
 * the URI, else `~/.mlflow/credentials`), `MLFLOW_TRACKING_INSECURE_TLS`,
 * `MLFLOW_TRACKING_SERVER_CERT_PATH` and `MLFLOW_TRACKING_CLIENT_CERT_PATH`.
 *
 * @module
 */
import { envBool, envString, type Env } from '../core/env.js';
import { ConfigError, InvalidArgumentError, MLFLOW_ENDPOINT_DISABLED, MlflowApiError } from '../core/errors.js';
import { HttpClient, type ErrorResponse, type HttpRequest } from '../core/http.js';
import { redact, redactingLogger, redactUrl, registerSecret, silentLogger, type Logger } from '../core/logger.js';
import { RETRYABLE_STATUSES, resolveRetryOptions, retryAfterHint, type ResolvedRetryOptions, type RetryEvent, type RetryOptions } from '../core/retry.js';
import { assertCertificateReadable, MLFLOW_CA_CERT, MLFLOW_CLIENT_CERT } from '../core/tls-failure.js';
import { bodyLimitHint, redirectHint } from '../core/answer-hints.js';
import { VERSION } from '../version.js';
import { azureMlJobTokenSource, azureMlTokenSource, type AzureTokenCredential } from './azureml-auth.js';
import { parseAzureMlTrackingUri, type AzureMlWorkspace } from './azureml-workspace.js';
import { defaultCredentialsPath, readMlflowCredentialsFile } from './credentials-file.js';
import { blankTrackingUriError, checkTrackingUri, fileUriToPath, invalidTrackingUrlError, trackingUriScheme } from './tracking-uri.js';

/** The tracking URI used when none is configured: a FileStore under the working directory. */
export const DEFAULT_TRACKING_URI = 'file:./mlruns';

/** Options for connecting to MLflow. Every field is optional. */
export interface MlflowConnectionOptions {
  /**
   * `http(s)://host[:port][/prefix]` for a tracking server, or `file:/path` (or a plain path)
   * for a local FileStore.
   * @default MLFLOW_TRACKING_URI, else `file:./mlruns`
   */
  trackingUri?: string;
  /**
   * Bearer token. With an `azureml://` tracking URI and no token, an Entra ID token from
   * {@link azureCredential} is used instead.
   * @default MLFLOW_TRACKING_TOKEN
   */
  token?: string;
  /**
   * The credential for an `azureml://` tracking URI without a token: its tokens (scope
   * `https://management.azure.com/.default`) are cached and fetched again 5 minutes before they
   * expire.
   * @default `new DefaultAzureCredential()` of the optional peer `@azure/identity`
   */
  azureCredential?: AzureTokenCredential;
  /**
   * Basic-auth user.
   * @default MLFLOW_TRACKING_USERNAME, else `mlflow_tracking_username` of {@link credentialsFile}, else userinfo in the URI
   */
  username?: string;
  /**
   * Basic-auth password.
   * @default MLFLOW_TRACKING_PASSWORD, else `mlflow_tracking_password` of {@link credentialsFile}, else userinfo in the URI
   */
  password?: string;
  /**
   * MLflow's credentials file (INI, section `[mlflow]`), read as MLflow's Python client reads it;
   * the environment variables win field by field. `false` ignores it.
   * @default `$HOME/.mlflow/credentials` (with an injected `env`, only when it sets `HOME`)
   */
  credentialsFile?: string | false;
  /** Skip TLS verification. @default MLFLOW_TRACKING_INSECURE_TLS, else false */
  insecureTls?: boolean;
  /**
   * CA bundle to trust, or a directory of CA certificates (its `<hash>.0`, `*.pem` and `*.crt`
   * files), as MLflow's client takes either.
   * @default MLFLOW_TRACKING_SERVER_CERT_PATH
   */
  caCertPath?: string;
  /**
   * Client certificate for mutual TLS: one PEM file with the certificate and its private key
   * (what MLflow hands to `requests` as `cert=`).
   * @default MLFLOW_TRACKING_CLIENT_CERT_PATH
   */
  clientCertPath?: string;
  /** Retry and timeout policy. @default from MLflow's env vars, else MLflow's defaults */
  retry?: RetryOptions;
  /** Where to log (redacted). @default silent */
  logger?: Logger;
  /** Called before every retried request, for statistics. */
  onRetry?: (event: RetryEvent & { method: string; url: string }) => void;
  /** Environment to read instead of `process.env`. */
  env?: Env;
}

/** A resolved connection: either a REST server or a local FileStore. */
export type MlflowConnection =
  | {
      kind: 'rest';
      /** Tracking URI for display (no credentials). */
      displayUri: string;
      /** `scheme://host[:port][/prefix]`, no trailing slash, no credentials. */
      baseUrl: string;
      /** The HTTP client of this connection (keep-alive pool, retries, TLS). @internal */
      http: HttpClient;
      retry: ResolvedRetryOptions;
      logger: Logger;
      /** The Azure ML workspace, for an `azureml://` tracking URI (its run-history API holds the run's artifacts). */
      azureMl?: AzureMlWorkspace;
    }
  | {
      kind: 'file';
      displayUri: string;
      /** Absolute path of the FileStore root (the `mlruns` directory). */
      root: string;
      retry: ResolvedRetryOptions;
      logger: Logger;
    };

/**
 * Resolves options and environment into a connection.
 *
 * @example
 * ```ts
 * const conn = resolveMlflowConnection({ trackingUri: 'http://127.0.0.1:5000' });
 * conn.kind; // 'rest'
 * ```
 */
export function resolveMlflowConnection(options: MlflowConnectionOptions = {}, envArg?: Env): MlflowConnection {
  const env = options.env ?? envArg ?? process.env;
  const logger = redactingLogger(options.logger ?? silentLogger);
  const retry = resolveRetryOptions(options.retry, env);
  const setting = options.trackingUri !== undefined ? 'trackingUri' : 'MLFLOW_TRACKING_URI';
  // An empty MLFLOW_TRACKING_URI is unset, as MLflow's client reads it; an empty option is a mistake.
  const given = (options.trackingUri ?? envString('MLFLOW_TRACKING_URI', env) ?? DEFAULT_TRACKING_URI).trim();
  if (given === '' && setting === 'MLFLOW_TRACKING_URI') throw blankTrackingUriError(setting);
  if (given === '') {
    throw new InvalidArgumentError('trackingUri', 'trackingUri is empty.', {
      hint: 'Pass the http(s):// address of the tracking server or a file: URI / path, or leave it out to use MLFLOW_TRACKING_URI (else ./mlruns).',
    });
  }
  // Before anything reads it as a path: a slip (databricks, 127.0.0.1:5000) would become a directory.
  checkTrackingUri(given, setting);
  const azureml = /^azureml:/i.test(given) ? parseAzureMlTrackingUri(given) : undefined;
  const raw = azureml?.mlflowBaseUrl ?? given;

  const scheme = trackingUriScheme(raw);
  if (scheme === undefined || scheme === 'file') {
    return { kind: 'file', displayUri: raw, root: fileUriToPath(raw, undefined, setting), retry, logger };
  }

  let url: URL;
  try {
    url = new URL(raw);
  } catch (cause) {
    throw invalidTrackingUrlError(raw, setting, cause);
  }
  const uriUser = url.username ? decodeUserinfo(url.username) : undefined;
  const uriPassword = url.password ? decodeUserinfo(url.password) : undefined;
  registerSecret(uriPassword);
  // Masked as written too, in case it shows up undecoded somewhere.
  if (url.password && url.password !== uriPassword) registerSecret(url.password);
  url.username = '';
  url.password = '';
  url.search = '';
  url.hash = '';
  const baseUrl = url.toString().replace(/\/+$/, '');

  const token = options.token ?? envString('MLFLOW_TRACKING_TOKEN', env);
  assertHeaderSafeToken(token, options.token !== undefined ? 'token' : 'MLFLOW_TRACKING_TOKEN');
  // Azure ML: inside a job (the job sets the token, the run and its experiment) the job token,
  // renewed before it expires as the plugin renews it; elsewhere an Entra ID token, fetched on
  // the first request and refreshed before it expires.
  const runId = envString('MLFLOW_RUN_ID', env);
  const experimentId = envString('MLFLOW_EXPERIMENT_ID', env);
  const experimentName = envString('MLFLOW_EXPERIMENT_NAME', env);
  const inJob = azureml !== undefined && token !== undefined && runId !== undefined && (experimentId !== undefined || experimentName !== undefined);
  let http: HttpClient | undefined;
  const tokenSource =
    azureml && token === undefined
      ? azureMlTokenSource({ credential: options.azureCredential })
      : azureml && inJob
        ? azureMlJobTokenSource({ token: token!, workspace: azureml, job: { runId: runId!, experimentId, experimentName }, http: () => http!, logger })
        : undefined;
  const credentialsPath = options.credentialsFile === false ? undefined : (options.credentialsFile ?? defaultCredentialsPath(env));
  const fromFile = credentialsPath ? readMlflowCredentialsFile(credentialsPath) : undefined;
  registerSecret(fromFile?.password);
  // An Azure ML workspace takes a bearer token only (the plugin sends nothing else): Basic
  // settings there are another server's, and would replace the token and go to Microsoft's host.
  const username = azureml ? undefined : (options.username ?? envString('MLFLOW_TRACKING_USERNAME', env) ?? fromFile?.username ?? uriUser);
  const password = azureml ? undefined : (options.password ?? envString('MLFLOW_TRACKING_PASSWORD', env) ?? fromFile?.password ?? uriPassword);
  const insecure = options.insecureTls ?? envBool('MLFLOW_TRACKING_INSECURE_TLS', env) ?? false;
  const caCertPath = options.caCertPath ?? envString('MLFLOW_TRACKING_SERVER_CERT_PATH', env);
  const clientCertPath = options.clientCertPath ?? envString('MLFLOW_TRACKING_CLIENT_CERT_PATH', env);
  if (insecure && caCertPath) {
    throw new ConfigError('MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH cannot both be set.', {
      issues: [{ path: 'MLFLOW_TRACKING_INSECURE_TLS', message: 'conflicts with MLFLOW_TRACKING_SERVER_CERT_PATH' }],
      hint: 'Trust the server with a CA bundle (MLFLOW_TRACKING_SERVER_CERT_PATH) or skip verification, not both.',
    });
  }
  // MLflow's client (requests, adapters.py `cert_verify`) reads the CA bundle for https URLs only,
  // so an http:// server works with a stale MLFLOW_TRACKING_SERVER_CERT_PATH there, and here: the
  // HTTP client refuses it at its first https request (an https artifact URL), before that request
  // connects. The client certificate is checked for every URL there, and so here.
  if (url.protocol === 'https:') assertCertificateReadable(caCertPath, MLFLOW_CA_CERT);
  assertCertificateReadable(clientCertPath, MLFLOW_CLIENT_CERT);
  http = new HttpClient({
    retry,
    auth: { token: inJob ? undefined : token, username, password, tokenSource },
    tls: { insecure, caCertPath, clientCertPath },
    userAgent: `artifact-uploader/${VERSION}`,
    logger,
    onRetry: options.onRetry,
  });
  return { kind: 'rest', displayUri: azureml ? redactUrl(given) : baseUrl, baseUrl, http, retry, logger, ...(azureml ? { azureMl: azureml } : {}) };
}

/**
 * What Node accepts in a header value: tab, visible ASCII and Latin-1 (`checkInvalidHeaderChar`).
 * A Basic header is base64 and always fits; a bearer token goes out as it is.
 */
const HEADER_UNSAFE = /[^\t\x20-\x7e\x80-\xff]/;

/**
 * Refuses, naming where it came from but not its value, a token that cannot be sent as
 * `Authorization: Bearer <token>`. The usual one ends in a line break (a Kubernetes secret made
 * with `--from-file`, a `.env` file with CRLF ends): Node refuses such a header on every attempt,
 * with an error that reads as a network failure, so it was retried for minutes and then blamed
 * on the server. MLflow's client refuses it too (`requests`' `InvalidHeader`); it is not trimmed
 * here either, since a credential is sent as given or not at all.
 */
function assertHeaderSafeToken(token: string | undefined, source: string): void {
  if (token === undefined || !HEADER_UNSAFE.test(token)) return;
  const what = /[\r\n]/.test(token) ? 'a line break' : 'a character that cannot go into an HTTP header';
  throw new ConfigError(`The tracking token (${source}) contains ${what}, so it cannot be sent as "Authorization: Bearer <token>".`, {
    issues: [{ path: source, message: `contains ${what}` }],
    hint: `Remove the line break or control character from ${source} (a secret file's trailing newline: \`tr -d '\\r\\n'\`, or create the secret with --from-literal).`,
  });
}

/** What {@link mlflowRequest} takes besides the endpoint. */
export interface MlflowRequestOptions {
  /** Query parameters (GET). */
  query?: Record<string, string>;
  /** JSON body (POST, PATCH, DELETE). */
  json?: unknown;
  signal?: AbortSignal;
}

/**
 * One REST request to `<baseUrl>/api/2.0/<endpoint>`, with MLflow's error mapping: the JSON
 * body and query as MLflow's handlers read them.
 *
 * @example
 * ```ts
 * const req = mlflowRequest(conn.baseUrl, 'GET', 'mlflow/runs/get', { query: { run_id: runId } });
 * const { body } = await conn.http.request(req);
 * ```
 */
export function mlflowRequest(baseUrl: string, method: HttpRequest['method'], endpoint: string, options: MlflowRequestOptions = {}): HttpRequest {
  const url = new URL(`${baseUrl}/api/2.0/${endpoint}`);
  for (const [key, value] of Object.entries(options.query ?? {})) url.searchParams.set(key, value);
  return {
    method,
    url: url.toString(),
    mapError: mlflowErrorMapper(endpoint),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.json !== undefined ? { body: JSON.stringify(options.json), headers: { 'content-type': 'application/json' } } : {}),
  };
}

/**
 * What MLflow 3.x answers (503) on a route its server's flags switch off: the artifact proxy's
 * routes, served by FastAPI since 3.x (`server/artifact_router.py`: JSON, `{"detail": "Artifact
 * serving is disabled. ..."}`), and the Flask handlers' plain text (`server/handlers.py`,
 * `_disable_unless_serve_artifacts`, `_disable_if_artifacts_only`: `Endpoint: ... disabled due
 * to the mlflow server running with \`--no-serve-artifacts\`` or `in \`--artifacts-only\` mode`).
 */
const ENDPOINT_DISABLED_BODY = /Artifact serving is disabled\.|disabled due to the mlflow server running (with `--no-serve-artifacts`|in `--artifacts-only` mode)/;

/**
 * A userinfo part as `requests` reads it (`urllib.parse.unquote`): percent escapes decoded, and
 * text that is not a valid escape (`pa%ss`, `100%`) kept as written, where `decodeURIComponent`
 * would throw a bare `URIError`.
 */
function decodeUserinfo(text: string): string {
  return text.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return run;
    }
  });
}

/**
 * Builds the error mapper for one MLflow endpoint: parses MLflow's JSON error body
 * (`{error_code, message}`), falls back to the HTTP status for plain-text or HTML bodies (proxies,
 * `--no-serve-artifacts`), and adds a hint that says what to do.
 *
 * @example
 * ```ts
 * await http.request({ method: 'GET', url, mapError: mlflowErrorMapper('mlflow/runs/get') });
 * ```
 */
export function mlflowErrorMapper(endpoint: string): (res: ErrorResponse) => MlflowApiError {
  return (res) => {
    let errorCode = `HTTP_${res.status}`;
    let serverMessage = res.bodyText.trim().slice(0, 500);
    try {
      const parsed = JSON.parse(res.bodyText) as { error_code?: unknown; message?: unknown };
      if (typeof parsed.error_code === 'string') errorCode = parsed.error_code;
      else if (typeof parsed.error_code === 'number') errorCode = `HTTP_${parsed.error_code}`;
      if (typeof parsed.message === 'string') serverMessage = parsed.message;
      // FastAPI's error shape (MLflow's artifact routes since 3.x).
      else if (typeof (parsed as { detail?: unknown }).detail === 'string') serverMessage = (parsed as { detail: string }).detail;
    } catch {
      // Not MLflow JSON: a proxy, an auth gateway or a plain-text 503.
      if (/<html/i.test(serverMessage)) serverMessage = '(HTML error page)';
    }
    // MLflow's own 503 for a route its configuration switches off: permanent, not load.
    if (res.status === 503 && ENDPOINT_DISABLED_BODY.test(res.bodyText)) errorCode = MLFLOW_ENDPOINT_DISABLED;
    const message = `MLflow ${res.method} ${endpoint} failed with ${res.status} ${errorCode}: ${redact(serverMessage) || '(empty body)'}`;
    return new MlflowApiError(res.status, errorCode, endpoint, message, {
      method: res.method,
      url: res.url,
      retryAfterMs: res.retryAfterMs,
      body: redact(res.bodyText.slice(0, 2000)),
      hint: mlflowHint(res.status, errorCode, endpoint, res.url, res.bodyText, res.sentAuthorization === true, res.headers.location, res.retryAfterMs),
    });
  };
}

function mlflowHint(
  status: number,
  errorCode: string,
  endpoint: string,
  url: string,
  body: string,
  sentAuthorization = false,
  location?: string,
  retryAfterMs?: number,
): string | undefined {
  const origin = safeOrigin(url);
  // Redirects are not followed: the request (an upload, with the tracking credentials) would go
  // to an address the user never named. So the answer says where the server points instead.
  if (status >= 300 && status < 400) {
    return redirectHint('The server', location, url, 'set MLFLOW_TRACKING_URI (or trackingUri) to the address it redirects to (https:// for http://, another host or path prefix).');
  }
  // Credentials were sent and refused: "set MLFLOW_TRACKING_TOKEN" would send the user to what is set already.
  if (status === 401 && sentAuthorization) {
    return 'The server refused the credentials sent (MLFLOW_TRACKING_TOKEN, MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, userinfo in the tracking URI, or ~/.mlflow/credentials): check that they are current and meant for this server.';
  }
  if (status === 401) return 'The server wants credentials: set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD.';
  if (status === 403) return 'The credentials were accepted but lack permission for this experiment or run; ask for EDIT permission.';
  const multipart = endpoint.startsWith('mlflow-artifacts/mpu/');
  if (multipart && (status === 501 || errorCode === 'NOT_IMPLEMENTED' || (status === 404 && (errorCode.startsWith('HTTP_') || errorCode === 'ENDPOINT_NOT_FOUND')))) {
    return "The server's artifact destination cannot do multipart upload (or the server is too old to have the route); send the file as a single PUT (multipart.enabled: false, or MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD=false). Not retried.";
  }
  // A 404 without MLflow's JSON is the web server's, not MLflow's: wrong host or prefix.
  if (status === 404 && errorCode.startsWith('HTTP_')) {
    return `${origin} does not look like an MLflow tracking server (or it needs a --static-prefix in the tracking URI).`;
  }
  if (status === 404 && endpoint === 'mlflow/runs/create') {
    return `The experiment id does not exist on the server at ${origin}. Check experimentId / MLFLOW_EXPERIMENT_ID, or pick the experiment by name (MLFLOW_EXPERIMENT_NAME), which creates it when missing.`;
  }
  if (status === 404 && (endpoint.startsWith('mlflow/runs/') || endpoint === 'mlflow/artifacts/list')) {
    return `The run id does not exist on the server at ${origin}. Check that runId / MLFLOW_RUN_ID and the tracking URI (the trackingUri option, else MLFLOW_TRACKING_URI) point to the same server.`;
  }
  if (status === 404 && endpoint.includes('experiments')) return `No such experiment on ${origin}.`;
  if (errorCode === MLFLOW_ENDPOINT_DISABLED && /--artifacts-only/.test(body)) {
    return 'The server runs with `--artifacts-only` and serves no tracking API: point the tracking URI at the tracking server. Not retried.';
  }
  if (status === 503 && endpoint.startsWith('mlflow-artifacts') && (errorCode === MLFLOW_ENDPOINT_DISABLED || !body.trim().startsWith('{'))) {
    return 'The tracking server does not serve artifacts: start it with `mlflow server --serve-artifacts` (the default), or use a direct artifact store.';
  }
  if (status === 400 && errorCode === 'INVALID_PARAMETER_VALUE' && /deleted/i.test(body)) {
    return 'The run has been deleted; restore it in the MLflow UI or log to another run.';
  }
  if (status === 400 && /Invalid path/i.test(body)) {
    return 'Artifact paths may not contain "#", "..", backslashes or be absolute; rename the file or pass another artifactPath.';
  }
  if (status === 413) {
    // Multipart is on by default, so "enable it" named a setting the user has: for a file, what
    // takes it past the proxy is the size from which files go in parts to the object store.
    if (endpoint === 'mlflow-artifacts/artifacts') {
      return bodyLimitHint('MLflow', "send files this large in parts straight to the object store (an S3, GCS or Azure destination): lower multipart.thresholdBytes or MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE below the proxy's limit.");
    }
    // mpu/complete sends one presigned URL per part (about 400 bytes on S3, over 1 KiB with
    // temporary credentials): larger parts, fewer of them.
    if (endpoint === 'mlflow-artifacts/mpu/complete') {
      return bodyLimitHint('MLflow', 'use larger parts: the complete lists every part with its presigned URL, so fewer parts make it smaller (multipart.chunkBytes or MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE).');
    }
    return bodyLimitHint('MLflow');
  }
  if (status === 501) return 'The server does not implement this request (an older MLflow, or a feature its configuration lacks). Not retried.';
  // A Retry-After past retry.maxRetryAfterMs fails the request at once (core/retry.ts), so the
  // hints below, about retries that ran out, would be wrong: say what the server asked instead.
  if (RETRYABLE_STATUSES.has(status) && retryAfterMs !== undefined && retryAfterMs > 0) {
    return retryAfterHint(status === 429 ? 'The server is rate-limiting the requests (429)' : `The server is unavailable (${status})`, retryAfterMs);
  }
  if (status === 429) return 'The server kept rate-limiting the requests (429) through every retry the retry policy allows; try again later, or send fewer at once (a lower concurrency).';
  if (RETRYABLE_STATUSES.has(status)) return 'The server failed, and was retried as often as the retry policy allows. Check the server logs.';
  if (status >= 500) return 'The server failed with a status that is not retried. Check the server logs.';
  return undefined;
}

function safeOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}
