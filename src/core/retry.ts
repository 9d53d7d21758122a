/**
 * The one retry policy of the library, built on p-retry and configured like MLflow's Python
 * client (`mlflow/utils/rest_utils.py`): the same env vars, the same defaults, the same
 * backoff curve (first retry at once, then `factor·2^(n-1)` seconds plus jitter, capped at
 * 120 s), `Retry-After` honoured. Only this module decides what is retried.
 *
 * @module
 */
import pRetry from 'p-retry';
import type { Env } from './env.js';
import { envNumber } from './env.js';
import { combineSignals, MAX_TIMER_MS, sleep } from './abort.js';
import { permanentTlsFailure } from './tls-failure.js';
import {
  AbortedError,
  ArtifactUploaderError,
  HttpStatusError,
  HubError,
  InvalidArgumentError,
  MLFLOW_ENDPOINT_DISABLED,
  MlflowApiError,
  NetworkError,
  RequestTimeoutError,
} from './errors.js';

/**
 * Retry and timeout settings. Every field is optional; unset fields come from MLflow's env vars,
 * then MLflow's defaults.
 */
export interface RetryOptions {
  /**
   * Retries after the first attempt (0 disables retrying).
   * @default MLFLOW_HTTP_REQUEST_MAX_RETRIES, else 7 (at most 10, as in MLflow)
   */
  maxRetries?: number;
  /**
   * Backoff factor in seconds: before the n-th consecutive retry (n ≥ 2) the policy sleeps
   * `backoffFactor · 2^(n-1)` seconds; the first retry is immediate.
   * @default MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, else 2 (at most 120)
   */
  backoffFactor?: number;
  /**
   * Upper bound, in seconds, of the uniform random delay added to each backoff.
   * @default MLFLOW_HTTP_REQUEST_BACKOFF_JITTER, else 1
   */
  backoffJitter?: number;
  /**
   * Cap of one backoff sleep, in seconds.
   * @default 120
   */
  maxBackoff?: number;
  /**
   * Per-request timeout in milliseconds: a request that makes no progress (connecting,
   * sending or receiving) for this long is abandoned and retried. Like MLflow's, it is an idle
   * timeout, not a bound on the whole transfer, so a large upload at a steady pace never hits it.
   * @default MLFLOW_HTTP_REQUEST_TIMEOUT (seconds) × 1000, else 120000
   */
  timeoutMs?: number;
  /**
   * Longest `Retry-After` the policy obeys, in milliseconds; a longer one fails the attempt
   * instead of sleeping for hours.
   * @default 300000
   */
  maxRetryAfterMs?: number;
  /**
   * Overall deadline for one operation, retries and sleeps included, in milliseconds.
   * When it passes, the operation stops with an {@link AbortedError}.
   * @default no deadline
   */
  totalTimeoutMs?: number;
}

/** {@link RetryOptions} with every default filled in. */
export type ResolvedRetryOptions = Required<Omit<RetryOptions, 'totalTimeoutMs'>> & { totalTimeoutMs?: number };

/** MLflow's defaults (`mlflow/environment_variables.py`). */
export const DEFAULT_RETRY_OPTIONS: ResolvedRetryOptions = Object.freeze({
  maxRetries: 7,
  backoffFactor: 2,
  backoffJitter: 1,
  maxBackoff: 120,
  timeoutMs: 120_000,
  maxRetryAfterMs: 300_000,
});

/**
 * Fills in a {@link RetryOptions} from the options, then MLflow's env vars, then defaults,
 * and checks the ranges MLflow enforces.
 *
 * @example
 * ```ts
 * resolveRetryOptions({ maxRetries: 3 }); // { maxRetries: 3, backoffFactor: 2, ... }
 * ```
 */
export function resolveRetryOptions(options: RetryOptions = {}, env: Env = process.env): ResolvedRetryOptions {
  // 0 is no timeout at all to requests (which MLflow's client uses): refused there too.
  const timeoutSeconds = envNumber('MLFLOW_HTTP_REQUEST_TIMEOUT', env, { above: 0 });
  const resolved: ResolvedRetryOptions = {
    maxRetries:
      options.maxRetries ??
      envNumber('MLFLOW_HTTP_REQUEST_MAX_RETRIES', env, { min: 0, max: 10, integer: true }) ??
      DEFAULT_RETRY_OPTIONS.maxRetries,
    backoffFactor:
      options.backoffFactor ??
      envNumber('MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR', env, { min: 0, max: 120 }) ??
      DEFAULT_RETRY_OPTIONS.backoffFactor,
    backoffJitter:
      options.backoffJitter ?? envNumber('MLFLOW_HTTP_REQUEST_BACKOFF_JITTER', env, { min: 0 }) ?? DEFAULT_RETRY_OPTIONS.backoffJitter,
    maxBackoff: options.maxBackoff ?? DEFAULT_RETRY_OPTIONS.maxBackoff,
    timeoutMs: options.timeoutMs ?? (timeoutSeconds !== undefined ? timeoutSeconds * 1000 : DEFAULT_RETRY_OPTIONS.timeoutMs),
    maxRetryAfterMs: options.maxRetryAfterMs ?? DEFAULT_RETRY_OPTIONS.maxRetryAfterMs,
    totalTimeoutMs: options.totalTimeoutMs,
  };
  const check = (name: keyof RetryOptions, ok: boolean, expected: string) => {
    if (!ok) throw new InvalidArgumentError(`retry.${name}`, `retry.${name} must be ${expected}, got ${String(resolved[name])}.`);
  };
  check('maxRetries', Number.isInteger(resolved.maxRetries) && resolved.maxRetries >= 0 && resolved.maxRetries <= 10, 'an integer from 0 to 10');
  check('backoffFactor', resolved.backoffFactor >= 0 && resolved.backoffFactor <= 120, 'a number from 0 to 120');
  check('backoffJitter', resolved.backoffJitter >= 0, 'a number >= 0');
  check('maxBackoff', resolved.maxBackoff >= 0, 'a number >= 0');
  check('timeoutMs', resolved.timeoutMs > 0, 'a number > 0');
  check('maxRetryAfterMs', resolved.maxRetryAfterMs >= 0, 'a number >= 0');
  if (resolved.totalTimeoutMs !== undefined) check('totalTimeoutMs', resolved.totalTimeoutMs > 0, 'a number > 0');
  // Node's timers take whole milliseconds up to MAX_TIMER_MS, and fire at once above it: a
  // "no timeout" value (MLFLOW_HTTP_REQUEST_TIMEOUT=3000000, Infinity) made every request time
  // out after 1 ms. Held at the largest timer, ~24.8 days, which is as good as none.
  const asTimer = (ms: number) => Math.min(Math.ceil(ms), MAX_TIMER_MS);
  resolved.timeoutMs = asTimer(resolved.timeoutMs);
  resolved.maxRetryAfterMs = asTimer(resolved.maxRetryAfterMs);
  if (resolved.totalTimeoutMs !== undefined) resolved.totalTimeoutMs = asTimer(resolved.totalTimeoutMs);
  return resolved;
}

/**
 * Takes a policy that is already resolved as it is, and resolves anything else (options from
 * a caller, or nothing) against `env`: what a store given "the connection's policy, or
 * options" does.
 *
 * @example
 * ```ts
 * const retry = toResolvedRetryOptions(options.retry, env); // connection.retry passes through untouched
 * ```
 */
export function toResolvedRetryOptions(retry: RetryOptions | ResolvedRetryOptions | undefined, env: Env = process.env): ResolvedRetryOptions {
  const resolved =
    retry !== undefined &&
    typeof retry.maxRetries === 'number' &&
    typeof retry.backoffFactor === 'number' &&
    typeof retry.backoffJitter === 'number' &&
    typeof retry.maxBackoff === 'number' &&
    typeof retry.timeoutMs === 'number' &&
    typeof retry.maxRetryAfterMs === 'number';
  return resolved ? (retry as ResolvedRetryOptions) : resolveRetryOptions(retry, env);
}

/** HTTP statuses worth retrying: MLflow's transient set (408, 429, 500, 502, 503, 504). */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

/**
 * The hint of a retryable answer that carried a `Retry-After`: what the server asked for, and
 * that {@link withRetry} waits it out only up to `retry.maxRetryAfterMs` and fails at once past
 * it. A hint about retries that ran out would be wrong for that answer, which was never retried.
 *
 * @example
 * ```ts
 * retryAfterHint('The object store is rate-limiting the requests (429)', 86_400_000);
 * // 'The object store is rate-limiting the requests (429) and asked to wait 86400 s (Retry-After). ...'
 * ```
 */
export function retryAfterHint(what: string, retryAfterMs: number): string {
  return `${what} and asked to wait ${Math.ceil(retryAfterMs / 1000)} s (Retry-After). The retry policy waits out a Retry-After up to retry.maxRetryAfterMs (5 minutes by default), as often as its retries allow, and fails at once on a longer one: try again later, or raise retry.maxRetryAfterMs to wait that long.`;
}

/**
 * Google Cloud Storage error reasons (`error.errors[].reason` of a JSON API answer, which the
 * `gs://` store puts in {@link HttpStatusError.code}) that are transient whatever the status:
 * `google-cloud-storage`'s `_RETRYABLE_REASONS`. A `403 rateLimitExceeded` is a throttle, not
 * a refusal.
 */
export const GCS_RETRYABLE_REASONS: ReadonlySet<string> = new Set(['rateLimitExceeded', 'userRateLimitExceeded', 'backendError', 'internalError', 'badGateway', 'serviceUnavailable']);

/**
 * The one classifier: network errors, timeouts, 408/429/5xx (and 413 with `Retry-After`, as
 * urllib3 does) are transient, and so are GCS's throttling and backend reasons
 * ({@link GCS_RETRYABLE_REASONS}); aborts, other 4xx and programmer errors are not.
 */
export function isRetryableError(error: unknown): boolean {
  if (error instanceof AbortedError) return false;
  if (error instanceof NetworkError || error instanceof RequestTimeoutError) return true;
  if (error instanceof HttpStatusError) {
    if (isDisabledEndpoint(error)) return false;
    if (RETRYABLE_STATUSES.has(error.status)) return true;
    if (GCS_RETRYABLE_REASONS.has(error.code)) return true;
    return error.status === 413 && error.retryAfterMs !== undefined;
  }
  if (error instanceof ArtifactUploaderError) return false;
  // Before the status: @azure/identity's EnvironmentCredential reports any failure as a 400.
  if (isTransientCredentialError(error)) return true;
  // Errors from other libraries (the Hub client, the AWS SDK, the Azure SDK's RestError) carry
  // a status code somewhere. Azure's 503 ServerBusy and 500 OperationTimedOut are retried with
  // the other 5xx; its refusals (403 AuthenticationFailed, 404 ContainerNotFound) are not.
  const status = statusOf(error);
  if (status !== undefined) return RETRYABLE_STATUSES.has(status);
  return isLowLevelNetworkError(error) || isAzureSendError(error);
}

/**
 * MLflow's 503 for a route its server's flags switch off (`--no-serve-artifacts`,
 * `--artifacts-only`): the same answer every time, so neither retried nor read as load. MLflow's
 * own client retries it for minutes (urllib3 retries every 503); a permanent fault fails at once.
 */
function isDisabledEndpoint(error: unknown): boolean {
  return error instanceof MlflowApiError && error.errorCode === MLFLOW_ENDPOINT_DISABLED;
}

/**
 * The classifier for a request whose caller has another way when it fails: what
 * {@link isRetryableError} retries, except a 500. A server that cannot do what was asked
 * answers 500 every time (MLflow's `mpu/create` on a GCS destination whose credentials cannot
 * sign URLs), and retrying it would only delay that other way by minutes of backoff.
 *
 * @example
 * ```ts
 * isRetryableWithFallback(new HttpStatusError(503, 'busy')); // true
 * isRetryableWithFallback(new HttpStatusError(500, 'failed')); // false: take the other way
 * ```
 */
export function isRetryableWithFallback(error: unknown): boolean {
  return statusOf(error) !== 500 && isRetryableError(error);
}

/**
 * A classifier for a request whose 500 is more likely a lasting answer than a fault: what
 * {@link isRetryableError} retries, but a 500 once only (one classifier per request). MLflow
 * answers `mpu/abort` of an upload the object store no longer has (an earlier attempt completed
 * it, a lifecycle rule aborted it) with a bare 500, every time; a fault inside the server on its
 * way to the object store answers the same and may pass. One retry gives the fault its chance
 * without holding the caller (a rerun, `resume clear`) for the minutes of the whole policy.
 * `resetsToo`: a connection reset while sending counts as that 500 (see {@link isConnectionReset}):
 * a PUT of a name longer than a file system takes, which a server whose artifact store is a local
 * directory refuses before it reads the body.
 *
 * @example
 * ```ts
 * const isRetryable = retryServerErrorOnce();
 * isRetryable(new HttpStatusError(500, 'failed')); // true
 * isRetryable(new HttpStatusError(500, 'failed')); // false: the same answer twice
 * ```
 */
export function retryServerErrorOnce(options: { resetsToo?: boolean } = {}): (error: unknown) => boolean {
  let serverErrors = 0;
  return (error) => (statusOf(error) === 500 || (options.resetsToo === true && isConnectionReset(error)) ? ++serverErrors <= 1 : isRetryableError(error));
}

/**
 * Whether the connection was reset while the request was still being sent (ECONNRESET, EPIPE):
 * what a client sees of a server that answered before reading the body and closed the
 * connection (MLflow's 500 for a file name its artifact directory cannot take).
 */
export function isConnectionReset(error: unknown): boolean {
  if (!(error instanceof NetworkError)) return false;
  for (let current: unknown = error.cause, depth = 0; depth < 5 && current && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET') return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** The error classes of `@azure/identity` a credential's `getToken` throws. */
const AZURE_IDENTITY_ERRORS: ReadonlySet<string> = new Set(['CredentialUnavailableError', 'AuthenticationError', 'AuthenticationRequiredError', 'AggregateAuthenticationError']);

/**
 * Whether an `@azure/identity` error says that the token endpoint (Entra ID, a managed
 * identity endpoint) was down, busy or out of reach, rather than that the credential is missing
 * or refused. `@azure/identity` keeps the status of the answer in few places: a managed identity
 * wraps MSAL's error (its `status`) in a `CredentialUnavailableError`, a client secret or
 * certificate keeps only MSAL's message, whose OAuth error code says it (`temporarily_unavailable`,
 * `server_error`; `network_error` for no answer or one that is not JSON), and
 * `EnvironmentCredential` turns every failure into a 400 with that message inside. So the whole
 * error is searched: its causes, the errors of a chain (`DefaultAzureCredential`), their statuses
 * and those codes. A refusal (`invalid_client`: a wrong secret; no credential at all) is not, nor is
 * a managed identity that got no answer: that is also how a machine without one fails.
 *
 * @example
 * ```ts
 * isTransientCredentialError(Object.assign(new Error('temporarily_unavailable: ...'), { name: 'AuthenticationRequiredError' })); // true
 * isTransientCredentialError(Object.assign(new Error('invalid_client: ...'), { name: 'AuthenticationRequiredError' })); // false
 * ```
 */
export function isTransientCredentialError(error: unknown): boolean {
  const name = (error as { name?: unknown } | null)?.name;
  if (typeof name !== 'string' || !AZURE_IDENTITY_ERRORS.has(name)) return false;
  // `answered`: only an answer's status counts below a CredentialUnavailableError. A managed
  // identity reports "no managed identity on this machine" (IMDS out of reach, as on a laptop) as
  // the same unavailable network_error as an identity endpoint that is down; read as transient,
  // DefaultAzureCredential without any credential was retried for minutes instead of failing.
  const pending: { error: unknown; answered: boolean }[] = [{ error, answered: false }];
  for (let seen = 0; pending.length > 0 && seen < 20; seen++) {
    const { error: current, answered } = pending.shift()!;
    if (typeof current !== 'object' || current === null) continue;
    const { name: currentName, message, status, statusCode, errorCode, cause, errors } = current as {
      name?: unknown;
      message?: unknown;
      status?: unknown;
      statusCode?: unknown;
      errorCode?: unknown;
      cause?: unknown;
      errors?: unknown;
    };
    for (const candidate of [status, statusCode]) {
      if (typeof candidate === 'number' && RETRYABLE_STATUSES.has(candidate)) return true;
    }
    const onlyAnswers = answered || currentName === 'CredentialUnavailableError';
    if (!onlyAnswers) {
      if (isLowLevelNetworkError(current)) return true;
      if (typeof errorCode === 'string' && TRANSIENT_OAUTH_ERRORS.test(errorCode)) return true;
      if (typeof message === 'string' && TRANSIENT_OAUTH_ERRORS.test(message)) return true;
    }
    for (const next of [cause, ...(Array.isArray(errors) ? errors : [])]) pending.push({ error: next, answered: onlyAnswers });
  }
  return false;
}

/**
 * OAuth 2.0's error codes for a server that cannot answer now (RFC 6749, 4.1.2.1), and MSAL's
 * for a request that got no usable answer.
 */
const TRANSIENT_OAUTH_ERRORS = /\b(?:temporarily_unavailable|server_error|network_error)\b/;

/**
 * The Azure SDK's `RestError` for a request that got no answer (connection refused, reset,
 * dropped mid-body): code `REQUEST_SEND_ERROR` when the socket error's own code was not kept.
 */
function isAzureSendError(error: unknown): boolean {
  const e = error as { name?: unknown; code?: unknown; statusCode?: unknown };
  return typeof error === 'object' && error !== null && e.name === 'RestError' && e.code === 'REQUEST_SEND_ERROR' && e.statusCode === undefined;
}

/**
 * Statuses after which a conditional write (a Hub commit on a parent revision) may be tried
 * again once the caller has checked that the earlier attempt did not land: 409 (conflict) and
 * 412 (the parent moved).
 */
export const CONFLICT_STATUSES: ReadonlySet<number> = new Set([409, 412]);

/**
 * Whether a failed commit attempt may be tried again: what {@link isRetryableError} retries,
 * plus 409/412 conflicts. Only for writes whose caller first checks, by a one-off id, that the
 * earlier attempt did not land (see hub/publish.ts).
 */
export function isRetryableCommitError(error: unknown): boolean {
  if (isRetryableError(error)) return true;
  const status = statusOf(error);
  return status !== undefined && CONFLICT_STATUSES.has(status);
}

/**
 * Whether a failure is worth trying again by a later call (not an immediate retry): network
 * errors, timeouts and aborts, Hub errors that are transient, conflicts or carry no status,
 * and whatever {@link isRetryableError} retries. Invalid input, refused tokens and other
 * permanent errors are not. Used by the publish tracker's automatic retries.
 */
export function isTransientFailure(error: unknown): boolean {
  if (error instanceof AbortedError || error instanceof NetworkError || error instanceof RequestTimeoutError) return true;
  if (error instanceof HubError) return error.status === undefined || RETRYABLE_STATUSES.has(error.status) || CONFLICT_STATUSES.has(error.status);
  if (error instanceof ArtifactUploaderError) return false;
  return isRetryableError(error);
}

/**
 * How a process re-reads its own lock file to release it (core/lock-breaker.ts
 * `releaseOwnLock`): a few quick tries, about 0.75 s in all (0, 50, 100, 200, 400 ms apart,
 * plus up to 5 ms of jitter each). A read that failed for another reason than the lock being
 * gone (EIO, EMFILE, EACCES on a network disk) says nothing about whose lock it is; given up at
 * once, it left the holder's own lock behind, and the next writer waited it out until it aged
 * stale (longer than a state file's `lockTimeoutMs`: that writer failed).
 */
export const LOCK_RELEASE_RETRY: ResolvedRetryOptions = Object.freeze({
  maxRetries: 5,
  backoffFactor: 0.025,
  backoffJitter: 0.005,
  maxBackoff: 0.4,
  timeoutMs: 1_000,
  maxRetryAfterMs: 0,
});

/**
 * Whether a failed read of a lock file is worth another try ({@link LOCK_RELEASE_RETRY}): any
 * file-system error (`EIO`, `EMFILE`, `ENFILE`, `EACCES`, `EAGAIN`, ...) but those that say the
 * lock is not there (`ENOENT`, `ENOTDIR`), which are no error to whoever reads a lock.
 *
 * @example
 * ```ts
 * isRetryableLockReadError(Object.assign(new Error('i/o error'), { code: 'EIO' })); // true
 * ```
 */
export function isRetryableLockReadError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && code !== 'ENOENT' && code !== 'ENOTDIR';
}

/**
 * Whether a failure is the server asking for less load (429 Too Many Requests, 503 Service
 * Unavailable: MLflow's server, S3's SlowDown, Azure's ServerBusy, GCS's rate limits), as opposed
 * to a fault: the uploader's adaptive concurrency halves on these. Retried all the same.
 *
 * @example
 * ```ts
 * isThrottlingError(new HttpStatusError(503, 'Service Unavailable')); // true
 * ```
 */
export function isThrottlingError(error: unknown): boolean {
  if (error instanceof HttpStatusError && GCS_THROTTLING_REASONS.has(error.code)) return true;
  if (isDisabledEndpoint(error)) return false;
  const status = error instanceof HttpStatusError ? error.status : statusOf(error);
  return status === 429 || status === 503;
}

/**
 * Whether a write lost a race against the same write by another client: the server's database
 * refused a row another request inserted a moment earlier (MLflow's alias and tag setters read,
 * then insert, so two concurrent setters of one alias can make the second fail with a 400
 * carrying the database's unique-constraint error). Repeating the write then updates the row the
 * other client made. Not a transient fault: only callers whose write is idempotent (setting an
 * alias or a tag to a value) may repeat it, a bounded number of times.
 *
 * @example
 * ```ts
 * isWriteRaceError(new HttpStatusError(400, 'UNIQUE constraint failed: registered_model_aliases.name'));
 * // true
 * ```
 */
export function isWriteRaceError(error: unknown): boolean {
  if (!(error instanceof HttpStatusError) || error.status !== 400) return false;
  const text = `${error.message}\n${error.body ?? ''}`;
  return /UNIQUE constraint failed|IntegrityError|duplicate key value|Duplicate entry/i.test(text);
}

/** GCS's reasons that mean "slow down" whatever the status (a 403 `rateLimitExceeded`), not "forbidden". */
export const GCS_THROTTLING_REASONS: ReadonlySet<string> = new Set(['rateLimitExceeded', 'userRateLimitExceeded']);

function statusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const e = error as { statusCode?: unknown; status?: unknown; $metadata?: { httpStatusCode?: unknown } };
  for (const candidate of [e.statusCode, e.status, e.$metadata?.httpStatusCode]) {
    if (typeof candidate === 'number') return candidate;
  }
  return undefined;
}

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
]);

/** True for socket-level failures from Node, undici or fetch (`TypeError: fetch failed`). */
export function isLowLevelNetworkError(error: unknown): boolean {
  // A `fetch failed` (the Hub client's) whose cause is a certificate or protocol failure: every attempt fails alike.
  if (permanentTlsFailure(error)) return false;
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current; depth++) {
    if (typeof current !== 'object') return false;
    const { code, message, name } = current as { code?: unknown; message?: unknown; name?: unknown };
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
    if (name === 'TypeError' && message === 'fetch failed') return true;
    if (name === 'SocketError' || name === 'HeadersTimeoutError' || name === 'BodyTimeoutError') return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * Backoff before a retry, in milliseconds, after `consecutiveFailures` failed attempts
 * (urllib3's curve: 0 after the first failure, then `factor·2^(n-1)` s + jitter, capped).
 */
export function backoffDelayMs(consecutiveFailures: number, options: ResolvedRetryOptions, random: () => number = Math.random): number {
  if (consecutiveFailures <= 1) return 0;
  const base = Math.min(options.backoffFactor * 2 ** (consecutiveFailures - 1), options.maxBackoff);
  return Math.round((base + random() * options.backoffJitter) * 1000);
}

/** What a retry hook is told before each retry. */
export interface RetryEvent {
  /** The attempt that just failed (1-based). */
  attempt: number;
  /** Why it failed. */
  error: unknown;
  /** How long the policy will wait before the next attempt, in ms. */
  delayMs: number;
}

/** Options of {@link withRetry}. */
export interface WithRetryOptions {
  /** The resolved policy. */
  retry: ResolvedRetryOptions;
  /** Stops retrying and sleeping at once when it fires. */
  signal?: AbortSignal;
  /** Called before each retry (for counting and logging). */
  onRetry?: (event: RetryEvent) => void;
  /** Overrides the classifier for one call site; defaults to {@link isRetryableError}. */
  isRetryable?: (error: unknown) => boolean;
}

/**
 * Runs `fn` under the policy: retries transient errors with backoff (or the server's
 * `Retry-After`), gives up at once on permanent ones, and converts an abort into an
 * {@link AbortedError}. `fn` gets the attempt number and a signal to pass to its I/O.
 *
 * @example
 * ```ts
 * const run = await withRetry((attempt, signal) => client.getRun(runId, { signal }), { retry: resolveRetryOptions() });
 * ```
 */
export async function withRetry<T>(fn: (attempt: number, signal: AbortSignal | undefined) => Promise<T>, options: WithRetryOptions): Promise<T> {
  const { retry } = options;
  const deadline = retry.totalTimeoutMs !== undefined ? AbortSignal.timeout(retry.totalTimeoutMs) : undefined;
  const signal = combineSignals(options.signal, deadline);
  const classify = options.isRetryable ?? isRetryableError;
  let consecutiveFailures = 0;
  try {
    return await pRetry((attempt) => fn(attempt, signal), {
      retries: retry.maxRetries,
      minTimeout: 0,
      maxTimeout: 0,
      signal,
      onFailedAttempt: () => {
        consecutiveFailures++;
      },
      // p-retry's own delay is zero; the sleep happens here so it can follow Retry-After.
      shouldRetry: async ({ error, attemptNumber }) => {
        if (signal?.aborted || !classify(error)) return false;
        const retryAfterMs = (error as { retryAfterMs?: unknown }).retryAfterMs;
        let delayMs = backoffDelayMs(consecutiveFailures, retry);
        // As urllib3 (`Retry.sleep`): a Retry-After of 0 (or a date already past) is no wait at
        // all, so the backoff applies; taken as it was, every retry went out at once.
        if (typeof retryAfterMs === 'number' && retryAfterMs > 0) {
          if (retryAfterMs > retry.maxRetryAfterMs) return false;
          delayMs = retryAfterMs;
        }
        options.onRetry?.({ attempt: attemptNumber, error, delayMs });
        await sleep(delayMs, signal);
        return true;
      },
    });
  } catch (error) {
    throw toAbortedError(error, options.signal, deadline, retry.totalTimeoutMs) ?? error;
  }
}

function toAbortedError(error: unknown, userSignal: AbortSignal | undefined, deadline: AbortSignal | undefined, totalTimeoutMs?: number): AbortedError | undefined {
  if (deadline?.aborted) {
    return new AbortedError(`The overall deadline of ${totalTimeoutMs} ms passed before the operation finished.`, {
      hint: 'Raise retry.totalTimeoutMs, or check why the server is slow.',
      cause: error,
    });
  }
  if (userSignal?.aborted) return new AbortedError('The operation was aborted by its AbortSignal.', { cause: userSignal.reason ?? error });
  if (error instanceof AbortedError) return error;
  return undefined;
}
