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
import { redact, redactAddress, redactUrl } from '../core/logger.js';
import { unquote } from '../core/unquote.js';

/**
 * MLflow's Databricks stores: each name is both a scheme (`databricks://profile`,
 * `databricks-uc://...`, `uc:...`) and, bare, a value MLflow's client maps to that store rather
 * than to a directory (`StoreRegistry.get_store_builder`: Databricks, Databricks / OSS Unity Catalog).
 */
const DATABRICKS_STORES = new Set(['databricks', 'databricks-uc', 'uc']);

/** Schemes of the tracking URIs {@link checkTrackingUri} lets through. */
const SUPPORTED_SCHEMES = new Set(['http', 'https', 'file', 'azureml']);

/**
 * An IP address and port with no scheme (`127.0.0.1:5917`, `[::1]:5000/prefix`): MLflow's
 * `urlparse` finds no scheme (one cannot start with a digit or `[`) and makes a directory of that
 * name. Nobody names a store that way; it is a server address whose `http://` was left out.
 */
const IP_AND_PORT = /^(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}(?:\/\S*)?$/;

/**
 * A host name and port with no scheme (`localhost:5917`, `mlflow.internal:443/x`): MLflow reads
 * the host as the scheme and refuses it.
 */
const HOST_AND_PORT = /^[a-zA-Z][a-zA-Z0-9-]*(?:\.[a-zA-Z0-9-]+)*:\d{1,5}(?:\/\S*)?$/;

/** The scheme of a URI (lower case), or `undefined` for a path (a Windows drive letter included). */
export function trackingUriScheme(uri: string): string | undefined {
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(uri)?.[1]?.toLowerCase();
  // A Windows drive letter ("C:\\..." or "C:/...") is a path, not a scheme.
  if (scheme === undefined || (scheme.length === 1 && /^[a-zA-Z]:[\\/]/.test(uri))) return undefined;
  return scheme;
}

/**
 * True for a scheme a tracking URI has ({@link trackingUriScheme}: `http(s)`, `file`, `azureml`,
 * or none, a path), false for a store's (`s3`, `gs`, `mlflow-artifacts` ...): the resume
 * journal's target is one or the other.
 *
 * @example
 * ```ts
 * isTrackingUriScheme(trackingUriScheme('s3://bucket/1/abc/artifacts')); // false
 * ```
 */
export function isTrackingUriScheme(scheme: string | undefined): boolean {
  return scheme === undefined || SUPPORTED_SCHEMES.has(scheme);
}

/**
 * Refuses, before it is used, a tracking URI that names no store artifact-uploader can write:
 * a scheme other than `http(s):`, `file:` and `azureml:` (`sqlite:`, `databricks://`, ...), a
 * bare name MLflow reads as Databricks (`databricks`), a server address without its scheme
 * (`127.0.0.1:5917`, `localhost:5917`), a `file://` URL with a host, or a `file:` URI whose scheme
 * is not in lower case (`FILE:///x`, see {@link fileUriToPath}). A scheme-less value MLflow
 * would take as a directory of that name is otherwise left alone: it is a path.
 *
 * @param uri The tracking URI, trimmed and not empty.
 * @param setting Where it came from, named in the error: `trackingUri`, `MLFLOW_TRACKING_URI`, `--tracking-uri`.
 * @throws {ConfigError} with a hint that says what to write instead.
 * @example
 * ```ts
 * checkTrackingUri('http://127.0.0.1:5000', 'trackingUri'); // fine
 * checkTrackingUri('127.0.0.1:5000', 'trackingUri'); // ConfigError: did you mean http://127.0.0.1:5000?
 * ```
 */
export function checkTrackingUri(uri: string, setting: string): void {
  if (QUOTED.test(uri)) throw quotedTrackingUriError(uri, setting);
  const shown = redactUrl(uri);
  if (DATABRICKS_STORES.has(uri)) {
    const store = uri === 'databricks' ? 'a Databricks workspace' : 'a Unity Catalog store on Databricks';
    throw new ConfigError(`Tracking URI "${uri}" (${setting}) names ${store}, as MLflow reads it, not a local directory.`, {
      issues: [{ path: setting, message: 'Databricks tracking URIs are not supported' }],
      hint: `${DATABRICKS_HINT} For a local store in a directory named ${uri}, write file:${uri} or ./${uri}.`,
    });
  }
  const scheme = trackingUriScheme(uri);
  if (scheme === undefined) {
    if (IP_AND_PORT.test(uri)) throw missingScheme(uri, setting, 'MLflow would make a local directory of that name', true);
    return;
  }
  if (scheme === 'file') {
    // The forms fileUriToPath refuses: a `file://` host, an upper-case scheme.
    if (uri.startsWith('file://') || !uri.startsWith('file:')) fileUriToPath(uri, undefined, setting);
    return;
  }
  if (scheme === 'http' || scheme === 'https') {
    try {
      new URL(uri);
    } catch (cause) {
      throw invalidTrackingUrlError(uri, setting, cause);
    }
    return;
  }
  if (SUPPORTED_SCHEMES.has(scheme)) return;
  // `user:password@host:port` with its `http://` left out: the user name reads as the scheme,
  // and no URL parser sees userinfo to mask, so the message must not show what is before the `@`.
  if (!uri.includes('://') && /^\S+@[^\s@]+$/.test(uri)) throw missingScheme(redactAddress(uri), setting, 'the user name would be read as its scheme', false);
  if (HOST_AND_PORT.test(uri)) throw missingScheme(uri, setting, `"${scheme}:" would be read as its scheme`, false);
  throw new ConfigError(`Tracking URI scheme "${scheme}:" is not supported (${shown}).`, {
    issues: [{ path: setting, message: 'expected http(s)://, file: or a local path' }],
    hint: DATABRICKS_STORES.has(scheme)
      ? DATABRICKS_HINT
      : scheme === 'sqlite' || scheme.startsWith('postgres') || scheme.startsWith('mysql') || scheme === 'mssql'
        ? `Run \`mlflow server --backend-store-uri ${scheme}:...\` and set MLFLOW_TRACKING_URI to its http:// address, or use a file: URI.`
        : 'Use the http(s):// address of an MLflow tracking server, or a file: URI / path for a local store.',
  });
}

/**
 * A value that starts or ends with a quote: quotes that became part of it (`docker run
 * --env-file`, a Kubernetes `value: '"http://..."'`, a CI variable). With a leading quote it
 * has no scheme, so it would be a local directory named `"http:/mlflow:5000"`, and the uploads
 * would land there while the job reports success. No store is named so on purpose; a quote
 * inside a path (`/srv/bob's runs`) is left alone.
 */
const QUOTED = /^["'\u201c\u2018]|["'\u201d\u2019]$/;

function quotedTrackingUriError(uri: string, setting: string): ConfigError {
  const unquoted = uri.replace(/^["'\u201c\u2018]+|["'\u201d\u2019]+$/g, '');
  // Masked without its quotes, which would hide a URL's userinfo from the masking.
  const shown = uri.replace(unquoted, redactUrl(unquoted));
  return new ConfigError(`Tracking URI ${shown} (${setting}) is wrapped in quotes, which became part of the value.`, {
    issues: [{ path: setting, message: 'starts or ends with a quote' }],
    hint: `Set ${setting} without the quotes: ${redactUrl(unquoted)} (\`docker run --env-file\` and Kubernetes values keep quotes as written).`,
  });
}

/**
 * The error of an http(s) tracking URI that does not parse (`http://`, `http://[bad`).
 *
 * @example
 * ```ts
 * throw invalidTrackingUrlError('http://', 'trackingUri', new TypeError('Invalid URL'));
 * ```
 */
export function invalidTrackingUrlError(uri: string, setting: string, cause: unknown): ConfigError {
  return new ConfigError(`Tracking URI ${redactUrl(uri)} is not a valid URL.`, {
    issues: [{ path: setting, message: 'expected a valid http(s) URL' }],
    hint: `Set ${setting} to the tracking server's address as http(s)://host[:port][/prefix], e.g. http://127.0.0.1:5000.`,
    cause: withoutUrlInput(cause),
  });
}

/**
 * Node's `Invalid URL` TypeError keeps the whole string it was given as `input`, and
 * `console.error(error)` prints a cause's properties: a password in the URI would be printed
 * there even though the message masks it. The cause keeps its code, with `input` masked.
 */
function withoutUrlInput(cause: unknown): unknown {
  const error = cause as { input?: unknown } | undefined;
  if (cause instanceof Error && typeof error?.input === 'string') error.input = redactUrl(error.input);
  return cause;
}

const DATABRICKS_HINT =
  "Databricks-hosted MLflow is not supported (its runs keep their artifacts in dbfs:/ or Unity Catalog volumes, which artifact-uploader cannot write): use an MLflow tracking server's http(s):// address, or a file: URI / path for a local store.";

/**
 * A server address whose `http://` was left out. `asPath`: MLflow would have taken it as a
 * directory, so say how to name one of that name on purpose.
 */
function missingScheme(uri: string, setting: string, why: string, asPath: boolean): ConfigError {
  const port = /:(\d{1,5})(?:\/|$)/.exec(uri.replace(/^\[[^\]]*\]/, ''))?.[1];
  const suggestion = `${port === '443' ? 'https' : 'http'}://${uri}`;
  return new ConfigError(`Tracking URI "${uri}" (${setting}) looks like a server address without http:// (${why}).`, {
    issues: [{ path: setting, message: 'expected http(s)://host:port, file: or a local path' }],
    hint: `Did you mean ${suggestion}?${asPath ? ` For a local store in a directory of that name, write file:${uri} or ./${uri}.` : ''}`,
  });
}

/**
 * The error of a tracking URI given as empty or blank. MLflow's client takes an empty
 * `MLFLOW_TRACKING_URI` as unset (its default store), and so do we; but an option or flag given
 * explicitly, or a variable holding only spaces, is a mistake (in a script, `--tracking-uri
 * "$VAR"` with `VAR` unset), and falling back to `./mlruns` would write the artifacts locally
 * while the job reports success.
 *
 * @example
 * ```ts
 * if (flag !== undefined && flag.trim() === '') throw blankTrackingUriError('--tracking-uri');
 * ```
 */
export function blankTrackingUriError(setting: string): ConfigError {
  const fromEnv = setting === 'MLFLOW_TRACKING_URI';
  return new ConfigError(`${fromEnv ? 'Environment variable MLFLOW_TRACKING_URI' : setting} is ${fromEnv ? 'blank' : 'empty'}.`, {
    issues: [{ path: setting, message: 'expected an http(s):// address, a file: URI or a local path' }],
    hint: fromEnv
      ? 'Set it to the http(s):// address of the tracking server or to a file: URI / path, or unset it (or leave it empty) for ./mlruns.'
      : `Pass the http(s):// address of the tracking server or a file: URI / path, or leave ${setting} out to use MLFLOW_TRACKING_URI (else ./mlruns). In a script, check that the variable passed to it is set.`,
  });
}

/**
 * Turns `file:./mlruns`, `file:///abs/mlruns` or a plain path into an absolute path. Percent
 * escapes are decoded in every form (`file:/x/my%20runs` is `/x/my runs`), as MLflow's
 * `local_file_uri_to_path` decodes them (`url2pathname`): the same MLFLOW_TRACKING_URI must
 * name the same directory for a Python step and this one, and MLflow writes a run's
 * `artifact_uri` under such a root as the root was written.
 *
 * A scheme not in lower case (`FILE:///x`, `File:/x`) is refused: MLflow picks its local store
 * by the scheme lower-cased (`urlparse`), but `local_file_uri_to_path` strips only a lower-case
 * `file:`, so its client makes a directory named `FILE:` in the working directory
 * (`./FILE:/x`); taken as `/x`, the same URI would name another directory for a Python step.
 *
 * @param setting The setting the URI came from, named in the error (`trackingUri`, `artifactUri`).
 * @throws {ConfigError} for a `file:` URI that names no local path: a host (`file://mlruns`),
 *   an encoded `/`, a malformed URL, or a scheme not in lower case.
 * @example
 * ```ts
 * fileUriToPath('file:./mlruns', '/work'); // '/work/mlruns'
 * ```
 */
export function fileUriToPath(uri: string, cwd: string = process.cwd(), setting = 'trackingUri'): string {
  if (!uri.startsWith('file:') && /^file:/i.test(uri)) throw upperCaseFileSchemeError(uri, setting);
  if (uri.startsWith('file://')) {
    try {
      return fileURLToPath(uri);
    } catch (cause) {
      throw fileUrlError(uri, setting, cause);
    }
  }
  const path = unquote(uri.startsWith('file:') ? uri.slice('file:'.length) : uri);
  return isAbsolute(path) ? path : resolvePath(cwd, path);
}

/**
 * A `file:` URI as an error shows it: as given (redactUrl would rewrite it: `file://mlruns/`,
 * `FILE:` in lower case), unless it may carry userinfo: any "@" counts, since a password
 * holding "/" is what may have made it unparsable.
 */
function shownFileUri(uri: string): string {
  return /^file:\/\/\S*@/i.test(uri) ? redactUrl(uri) : redact(uri);
}

/** Why `FILE:///x` is refused (see {@link fileUriToPath}), and how to write it. */
function upperCaseFileSchemeError(uri: string, setting: string): ConfigError {
  const scheme = uri.slice(0, 'file:'.length);
  return new ConfigError(`${shownFileUri(uri)} writes its scheme "${scheme}" in capitals: MLflow's client would take it for a relative path and use a directory named "${scheme}" in the working directory.`, {
    issues: [{ path: setting, message: 'file: URI with a scheme not in lower case' }],
    hint: `Write the scheme in lower case: ${shownFileUri(`file:${uri.slice(scheme.length)}`)} (or give a plain path).`,
  });
}

/**
 * Why a `file://` URL names no local path, and how to write the one meant. `file://mlruns` is
 * the usual slip (two slashes make `mlruns` the host): MLflow's Python client drops that host
 * and would use the working directory itself as the store, so it is refused rather than guessed.
 */
function fileUrlError(uri: string, setting: string, cause: unknown): ConfigError {
  const code = (cause as { code?: unknown }).code;
  const shown = shownFileUri(uri);
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
    cause: withoutUrlInput(cause),
  });
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
