/**
 * Entra ID (AAD) tokens for Azure ML workspaces outside a job, as the `azureml-mlflow` plugin
 * gets them: `DefaultAzureCredential` from the optional peer `@azure/identity` (imported on the
 * first request), scope `https://management.azure.com/.default`. The token is cached and
 * fetched again {@link AZUREML_TOKEN_REFRESH_MARGIN_MS} before it expires, so an upload that
 * runs for hours keeps working; concurrent requests share one fetch. Every token is registered
 * as a secret, so it never reaches a log, an error or `--json`.
 *
 * @module
 */
import { ConfigError, MissingDependencyError, NetworkError } from '../core/errors.js';
import { redact, registerSecret } from '../core/logger.js';
import { firstLine } from '../core/format.js';
import { loadOptionalModule } from '../core/optional-dependency.js';
import { isRetryableError, isTransientCredentialError, RETRYABLE_STATUSES } from '../core/retry.js';
import type { HttpClient } from '../core/http.js';
import type { Logger } from '../core/logger.js';
import { fetchJobToken, type AzureMlJobRef } from './azureml-run-history.js';
import type { AzureMlWorkspace } from './azureml-workspace.js';

/** A job token is renewed when it has less than this left: the plugin's `EXPIRATION_THRESHOLD_IN_SECONDS` (95 s). */
export const AZUREML_JOB_TOKEN_REFRESH_MARGIN_MS = 95_000;

/** The scope the plugin asks for (`cloud._get_default_scope()` of the public cloud). */
export const AZUREML_TOKEN_SCOPE = 'https://management.azure.com/.default';
/** A cached token is fetched again when it has less than this left (5 minutes). */
export const AZUREML_TOKEN_REFRESH_MARGIN_MS = 5 * 60_000;

/**
 * A credential object of `@azure/identity` (or anything with the same `getToken`), e.g.
 * `new ManagedIdentityCredential()`. Typed loosely so the SDK's types stay out of ours.
 */
export interface AzureTokenCredential {
  getToken(scopes: string | string[], options?: object): Promise<{ token: string; expiresOnTimestamp: number; refreshAfterTimestamp?: number } | null>;
}

/** Options of {@link azureMlTokenSource}. */
export interface AzureMlTokenSourceOptions {
  /** @default `new DefaultAzureCredential()` of `@azure/identity` */
  credential?: AzureTokenCredential;
  /** @default {@link AZUREML_TOKEN_SCOPE} */
  scope?: string;
  /** @default {@link AZUREML_TOKEN_REFRESH_MARGIN_MS} */
  refreshMarginMs?: number;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
  /** Replace only to simulate a missing install in tests. @default `import('@azure/identity')` */
  loadIdentity?: () => Promise<object>;
}

/**
 * A token source for `HttpAuth.tokenSource`: returns a cached token while it has more than the
 * margin left, else fetches a new one (one fetch at a time). No credential at all is a
 * `ConfigError` saying what to set; a missing `@azure/identity` a `MissingDependencyError`.
 *
 * @example
 * ```ts
 * const source = azureMlTokenSource();
 * const http = new HttpClient({ retry: resolveRetryOptions(), auth: { tokenSource: source } });
 * ```
 */
export function azureMlTokenSource(options: AzureMlTokenSourceOptions = {}): () => Promise<string> {
  const scope = options.scope ?? AZUREML_TOKEN_SCOPE;
  const margin = options.refreshMarginMs ?? AZUREML_TOKEN_REFRESH_MARGIN_MS;
  const now = options.now ?? Date.now;
  let credential: Promise<AzureTokenCredential> | undefined;
  let cached: { token: string; refreshAt: number } | undefined;
  let pending: Promise<string> | undefined;

  const fetchToken = async (): Promise<string> => {
    credential ??= (options.credential ? Promise.resolve(options.credential) : defaultCredential(options.loadIdentity)).then(keepingTokenOutage);
    let answer: Awaited<ReturnType<AzureTokenCredential['getToken']>>;
    try {
      answer = await (await credential).getToken(scope);
    } catch (error) {
      if (error instanceof MissingDependencyError) credential = undefined;
      throw credentialError(error);
    }
    if (!answer?.token) throw credentialError(new Error('the credential returned no token'));
    registerSecret(answer.token);
    const expiresAt = answer.expiresOnTimestamp;
    // Whichever comes first: the credential's own refresh hint, or the margin before expiry.
    const refreshAt = Math.min(expiresAt - margin, answer.refreshAfterTimestamp ?? Number.POSITIVE_INFINITY);
    cached = { token: answer.token, refreshAt };
    return answer.token;
  };

  return async () => {
    if (cached && now() < cached.refreshAt) return cached.token;
    pending ??= fetchToken().finally(() => {
      pending = undefined;
    });
    return pending;
  };
}

/** OAuth 2.0's error codes for a refused token request (RFC 6749, 5.2): the credential's fault. */
const OAUTH_REFUSALS = /\b(?:invalid_request|invalid_client|invalid_grant|unauthorized_client|unsupported_grant_type|invalid_scope|access_denied)\b/;

/**
 * `credential` with the cause of a token outage kept. Once a token endpoint has answered 429 or
 * 5xx, MSAL (under `@azure/identity`'s client secret and certificate credentials) answers the same
 * token request from its throttling cache for 60 s, or the endpoint's Retry-After, without asking
 * it (msal-common `ThrottlingUtils`), with an error that has lost the status and the OAuth error
 * code. Read as a refused credential, it ended an upload's retries ("No usable Azure credential"
 * of the Blob stores, "No Entra ID token" of the Azure ML workspace) while Entra ID was down.
 * Until a token comes, such a replay is reported as the transient failure that started it. What
 * the replay keeps is the answer's `error_description`, so only a failure that carries the
 * outage's description is read as its replay: a new failure (a managed identity endpoint that now
 * refuses, `az login` expired) is reported as itself, and so is an answer that names a refusal
 * (`invalid_client`). An outage whose answer had no description leaves nothing to recognise its
 * replay by; then any failure without an OAuth error code is read as the replay.
 *
 * @example
 * ```ts
 * const credential = keepingTokenOutage(new DefaultAzureCredential());
 * ```
 */
export function keepingTokenOutage(credential: AzureTokenCredential): AzureTokenCredential {
  let outage: { error: unknown; description: string | undefined } | undefined;
  return {
    getToken: async (scopes, options) => {
      try {
        const token = await credential.getToken(scopes, options);
        outage = undefined;
        return token;
      } catch (error) {
        if (isTransientCredentialError(error)) outage = { error, description: answerDescription(error) };
        else if (outage !== undefined && isReplayOf(error, outage.description)) throw outage.error;
        throw error;
      }
    },
  };
}

/**
 * The `error_description` of the token endpoint's answer inside an `@azure/identity` error: MSAL
 * writes every error answer as `Error(s): … - Description: <error_description> - Correlation ID: …`
 * (msal-common `ResponseHandler.validateTokenResponse`), and `undefined` when it had none
 * (`Not Available`).
 */
function answerDescription(error: unknown): string | undefined {
  const description = /- Description: ([\s\S]*?) - Correlation ID:/.exec(messagesOf(error))?.[1]?.trim();
  return description && description !== 'Not Available' ? description : undefined;
}

/**
 * Whether `error` is MSAL's throttled replay of an outage whose answer had `description`: the
 * replay is `<error_codes>: <error_description>` of the cached answer, so it carries that
 * description and no OAuth error code.
 */
function isReplayOf(error: unknown, description: string | undefined): boolean {
  const text = messagesOf(error);
  return !OAUTH_REFUSALS.test(text) && (description === undefined || text.includes(description));
}

/** The messages of an error, its causes and the errors of a chain (`DefaultAzureCredential`), one per line. */
function messagesOf(error: unknown): string {
  const messages: string[] = [];
  const pending: unknown[] = [error];
  // Bounded: a cause chain that loops back on itself must not hang a token request.
  for (let seen = 0; pending.length > 0 && seen < 20; seen++) {
    const current = pending.shift();
    if (typeof current !== 'object' || current === null) {
      if (current !== undefined) messages.push(String(current));
      continue;
    }
    const { message, cause, errors } = current as { message?: unknown; cause?: unknown; errors?: unknown };
    if (typeof message === 'string') messages.push(message);
    pending.push(cause, ...(Array.isArray(errors) ? errors : []));
  }
  return messages.join('\n');
}

async function defaultCredential(loadIdentity: (() => Promise<object>) | undefined): Promise<AzureTokenCredential> {
  const identity = await loadOptionalModule<{ DefaultAzureCredential: new () => AzureTokenCredential }>(
    loadIdentity ?? (() => import('@azure/identity')),
    'DefaultAzureCredential',
    '@azure/identity',
    'An azureml:// tracking URI without MLFLOW_TRACKING_TOKEN (Entra ID sign-in through DefaultAzureCredential)',
  );
  return new identity.DefaultAzureCredential();
}

/**
 * What `@azure/identity` throws, as one of ours: no or refused credentials are permanent; an
 * answer the shared classifier retries (an `AuthenticationError` with a 429 or 5xx status from
 * the token endpoint) and anything else (the sign-in endpoint unreachable) is retried.
 */
function credentialError(error: unknown): Error {
  if (error instanceof MissingDependencyError) return error;
  const name = (error as { name?: unknown }).name;
  const message = redact(firstLine(error instanceof Error ? error.message : String(error)));
  const status = (error as { statusCode?: unknown }).statusCode;
  // An answer's status, or what is left of it (EnvironmentCredential reports a 503 as a 400).
  if ((typeof status === 'number' && isRetryableError(error)) || isTransientCredentialError(error)) {
    const answered = typeof status === 'number' && RETRYABLE_STATUSES.has(status) ? `answered ${status}` : 'failed';
    return new NetworkError(`Getting an Entra ID token for the Azure ML workspace failed: the sign-in endpoint ${answered}${message ? ` (${message})` : ''}.`, {
      cause: error,
      hint: 'The Entra ID sign-in endpoint (login.microsoftonline.com, or the managed identity endpoint) is busy or failing; this is retried.',
    });
  }
  if (name === 'CredentialUnavailableError' || name === 'AggregateAuthenticationError' || name === 'AuthenticationRequiredError' || name === 'AuthenticationError' || !name || name === 'Error') {
    return new ConfigError(`No Entra ID token for the Azure ML workspace: ${message || String(name)}.`, {
      issues: [{ path: 'MLFLOW_TRACKING_TOKEN', message: 'not set, and DefaultAzureCredential found no usable sign-in' }],
      hint: 'Inside an Azure ML job MLFLOW_TRACKING_TOKEN is set for you. Elsewhere sign in for DefaultAzureCredential (`az login`, AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, workload or managed identity), or set MLFLOW_TRACKING_TOKEN to a token for https://management.azure.com.',
      cause: error,
    });
  }
  return new NetworkError(`Getting an Entra ID token for the Azure ML workspace failed: ${message || String(name)}.`, {
    cause: error,
    hint: 'Check that the Entra ID sign-in endpoint (login.microsoftonline.com, or the managed identity endpoint) is reachable; this is retried.',
  });
}

/** Options of {@link azureMlJobTokenSource}. */
export interface AzureMlJobTokenSourceOptions {
  /** The job's token (`MLFLOW_TRACKING_TOKEN`). */
  token: string;
  workspace: AzureMlWorkspace;
  /** `MLFLOW_RUN_ID` and `MLFLOW_EXPERIMENT_ID` / `_NAME` of the job. */
  job: AzureMlJobRef;
  /** The client the renewal goes through (called when it is needed: it is made after the source). */
  http: () => HttpClient;
  logger?: Logger;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
}

/**
 * The token source of an Azure ML job, as the plugin keeps its job token alive: the job's
 * `MLFLOW_TRACKING_TOKEN` while it has more than {@link AZUREML_JOB_TOKEN_REFRESH_MARGIN_MS} left
 * (its JWT `exp`), then a renewed one from the run-history token route ({@link fetchJobToken}).
 * A renewal that fails while the old token is still valid is tried again at the next request;
 * once it has expired, the failure is the request's error. A token that is not a JWT with `exp`
 * is used as it is.
 *
 * @example
 * ```ts
 * const source = azureMlJobTokenSource({ token, workspace, job: { runId, experimentId }, http: () => http });
 * ```
 */
export function azureMlJobTokenSource(options: AzureMlJobTokenSourceOptions): () => Promise<string> {
  const now = options.now ?? Date.now;
  registerSecret(options.token);
  let current = { token: options.token, expiresAt: jwtExpiry(options.token) };
  let pending: Promise<string> | undefined;
  const renew = async (): Promise<string> => {
    try {
      const token = await fetchJobToken(options.http(), options.workspace, options.job, current.token);
      current = { token, expiresAt: jwtExpiry(token) };
      return token;
    } catch (error) {
      if (current.expiresAt !== undefined && now() < current.expiresAt) {
        options.logger?.warn('Renewing the Azure ML job token failed; the current one is used while it lasts.', { error: error instanceof Error ? error.message : String(error) });
        return current.token;
      }
      throw error;
    }
  };
  return async () => {
    const { expiresAt } = current;
    if (expiresAt === undefined || now() < expiresAt - AZUREML_JOB_TOKEN_REFRESH_MARGIN_MS) return current.token;
    pending ??= renew().finally(() => {
      pending = undefined;
    });
    return pending;
  };
}

/** `exp` of a JWT, in ms, without checking the signature (as the plugin reads it); `undefined` when it has none. */
function jwtExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
