/**
 * Hints for answers any server (or a proxy in front of it) can give, which no retry mends:
 * a redirect, which the HTTP client does not follow, a 413 from a body-size limit, and the bare
 * 500 of a server whose file system refused a name too long. The MLflow API's errors
 * (`mlflow/connection.ts`) and a presigned part URL's (`stores/mlflow-artifacts-store.ts`) say
 * them the same way, each with its own fix.
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

/**
 * A name too long for a file system, as errors say it: its length, in `unit`s, and its start.
 *
 * @example
 * ```ts
 * overlongNameText({ name: 'x'.repeat(300), length: 300 }, 'bytes');
 * // 'holds a name of 300 bytes of UTF-8 ("xxxxxxxxxxxxxxxxxxxxxxxx...")'
 * ```
 */
export function overlongNameText(overlong: { name: string; length: number }, unit: 'bytes' | 'characters'): string {
  return `holds a name of ${overlong.length} ${unit}${unit === 'bytes' ? ' of UTF-8' : ''} (${JSON.stringify(`${overlong.name.slice(0, 24)}...`)})`;
}

/**
 * The hint of a server's failure to store a path holding a name of more than 255 bytes (see
 * {@link overlongNameText}): a server whose artifact store is a local directory cannot (its
 * file system answers ENAMETOOLONG), and MLflow's server says so only as a bare 500, before it
 * reads the body when the name is the file's own (a client still sending sees the connection
 * reset). `answer` is what the server said.
 *
 * @example
 * ```ts
 * overlongNameHint('500 "Internal Server Error"');
 * ```
 */
export function overlongNameHint(answer: string): string {
  return `The server answered ${answer}, as an MLflow server whose artifact store is a local directory (\`mlflow server --artifacts-destination <dir>\`, or its default ./mlartifacts) answers every time for a name its file system refuses (ENAMETOOLONG; at most 255 bytes per file or directory name). Shorten that name to at most 255 bytes of UTF-8 (the file's or a directory's, or the value that became one: a \`trialId\`, an \`artifactPath\`), or exclude the file. If the server stores artifacts in a bucket, the name is not the cause: its log says what is.`;
}
