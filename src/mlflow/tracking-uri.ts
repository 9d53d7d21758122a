/**
 * Reading a tracking URI's shape, with no I/O: a `file:` URI or plain path as a local path, and
 * the values that are a slip rather than a store. Kept apart from `connection.ts` (HTTP, auth,
 * TLS) so that the CLI can check `--tracking-uri` without loading any of that.
 *
 * @module
 */
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../core/errors.js';
import { redact, redactUrl } from '../core/logger.js';

/**
 * Turns `file:./mlruns`, `file:///abs/mlruns` or a plain path into an absolute path.
 *
 * @param setting The setting the URI came from, named in the error (`trackingUri`, `artifactUri`).
 * @throws {ConfigError} for a `file://` URL that names no local path: a host (`file://mlruns`),
 *   an encoded `/`, or a malformed URL.
 * @example
 * ```ts
 * fileUriToPath('file:./mlruns', '/work'); // '/work/mlruns'
 * ```
 */
export function fileUriToPath(uri: string, cwd: string = process.cwd(), setting = 'trackingUri'): string {
  if (uri.startsWith('file://')) {
    try {
      return fileURLToPath(uri);
    } catch (cause) {
      throw fileUrlError(uri, setting, cause);
    }
  }
  const path = uri.startsWith('file:') ? uri.slice('file:'.length) : uri;
  return isAbsolute(path) ? path : resolvePath(cwd, path);
}

/**
 * Why a `file://` URL names no local path, and how to write the one meant. `file://mlruns` is
 * the usual slip (two slashes make `mlruns` the host): MLflow's Python client drops that host
 * and would use the working directory itself as the store, so it is refused rather than guessed.
 */
function fileUrlError(uri: string, setting: string, cause: unknown): ConfigError {
  const code = (cause as { code?: unknown }).code;
  // Shown as given (redactUrl would rewrite it: file://mlruns/), unless it carries userinfo.
  const shown = /^file:\/\/[^/]*@/i.test(uri) ? redactUrl(uri) : redact(uri);
  if (code === 'ERR_INVALID_FILE_URL_HOST') {
    const url = new URL(uri); // it parsed, or Node would not have got to the host
    const host = url.hostname;
    const path = url.pathname === '/' ? '' : safeDecode(url.pathname);
    const rest = `${host}${path}`;
    return new ConfigError(`${shown} names host "${host}", and a file: URI here must name a local path.`, {
      issues: [{ path: setting, message: 'file:// URL with a host other than localhost' }],
      hint: `Use file:${rest}, file:///abs/path or a plain path (after "file://" comes a host name; a relative path takes "file:" alone).`,
      cause,
    });
  }
  if (code === 'ERR_INVALID_FILE_URL_PATH') {
    return new ConfigError(`${shown} encodes a "/" (%2F) in its path, which names no local file.`, {
      issues: [{ path: setting, message: 'file:// URL with an encoded /' }],
      hint: 'Write the path with plain "/" separators, or give a plain path instead of a file: URI.',
      cause,
    });
  }
  return new ConfigError(`${shown} is not a valid file: URL.`, {
    issues: [{ path: setting, message: 'expected file:relative/path, file:///abs/path or a plain path' }],
    hint: 'Use file:relative/path, file:///abs/path or a plain path.',
    cause,
  });
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
