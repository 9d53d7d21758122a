/**
 * Hints for two answers any server (or a proxy in front of it) can give, which no retry mends:
 * a redirect, which the HTTP client does not follow, and a 413 from a body-size limit. The
 * MLflow API's errors (`mlflow/connection.ts`) and a presigned part URL's
 * (`stores/mlflow-artifacts-store.ts`) say them the same way, each with its own fix.
 *
 * @module
 */
import { redactUrl } from './logger.js';

/**
 * The hint of a 3xx answer: where it points (the `Location`, resolved against the request URL
 * and redacted) and `fix`, what to set so the request goes there in the first place. Redirects
 * are not followed: the request, its body and its credentials would go to an address the user
 * never named.
 *
 * @example
 * ```ts
 * redirectHint('The server', 'https://mlflow.example.com/', 'http://mlflow.example.com/api', 'set MLFLOW_TRACKING_URI to it.');
 * // 'The server redirects to https://mlflow.example.com/, and redirects are not followed: set MLFLOW_TRACKING_URI to it.'
 * ```
 */
export function redirectHint(who: string, location: string | undefined, requestUrl: string, fix: string): string {
  const target = location ? redactUrl(URL.parse(location, requestUrl)?.href ?? location) : undefined;
  return `${who} redirects ${target ? `to ${target}` : 'elsewhere (without a Location)'}, and redirects are not followed: ${fix}`;
}

/**
 * The hint of a 413: a proxy in front of `behind` limits the body size (nginx's default is
 * 1 MiB), so raise its limit, or `remedy` (what makes this request's body smaller).
 *
 * @example
 * ```ts
 * bodyLimitHint('MLflow', 'use larger parts (multipart.chunkBytes).');
 * // "A proxy in front of MLflow limits the body size (nginx's client_max_body_size, 1 MiB by default): raise its limit, or use larger parts (multipart.chunkBytes)."
 * ```
 */
export function bodyLimitHint(behind: string, remedy?: string): string {
  const limit = `A proxy in front of ${behind} limits the body size (nginx's client_max_body_size, 1 MiB by default): raise its limit`;
  return remedy ? `${limit}, or ${remedy}` : `${limit}.`;
}
