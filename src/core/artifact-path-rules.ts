/**
 * The rules an artifact path must follow, MLflow's server's (`validate_path_is_safe`) and its
 * Python client's: here in core/ so that the config file's `artifactPath` values are checked by
 * the same rules, when the config loads, as the uploader checks every path before it sends a
 * byte (mlflow/artifacts-api.ts re-exports them).
 *
 * @module
 */

/**
 * The name prefix MLflow's local artifact repository reserves for its temp files
 * (`_TEMP_ARTIFACT_PREFIX`): its `list_artifacts` leaves such names out, and so do ours.
 *
 * @example
 * ```ts
 * '.artifact.uploading.abc123'.startsWith(MLFLOW_RESERVED_PREFIX); // true: a copy in flight (or one a crash left), not an artifact
 * ```
 */
export const MLFLOW_RESERVED_PREFIX = '.artifact.uploading.';

/** What {@link artifactPathProblem} found wrong with a path, in words, with the fix. */
export interface ArtifactPathProblem {
  /** The offending path as given. */
  path: string;
  /** Why MLflow (or this library) refuses it. */
  reason: string;
}

/**
 * The URL schemes Python's `urlunparse` writes back with an authority (`urllib.parse.uses_netloc`
 * of Python 3.11 to 3.13): MLflow's Python client checks every name a listing returns with
 * `validate_path_is_safe`, which round-trips it through `urlparse`/`urlunparse`, so a name
 * `git:abc` comes back as `git:///abc`, `file:x` as the absolute `/x` (refused: "Invalid path")
 * and `file:` as nothing. The folder holding such a name cannot be listed or downloaded
 * with the Python client. Other prefixes (`s3:x`, `model:v1`, `n:n.txt`) round-trip.
 */
const URL_LIKE_SCHEMES = new Set(['ftp', 'http', 'gopher', 'nntp', 'telnet', 'imap', 'wais', 'file', 'mms', 'https', 'shttp', 'snews', 'prospero', 'rtsp', 'rtsps', 'rtspu', 'rsync', 'svn', 'svn+ssh', 'sftp', 'nfs', 'git', 'git+ssh', 'ws', 'wss', 'itms-services']);

/**
 * Checks one relative artifact path (POSIX separators) against the rules MLflow's server
 * applies to every artifact route, plus the ones that would silently change the name:
 * no `#` or `?`, no `..` / `.` / empty segment, no backslash, not absolute, no control
 * characters (NUL, newlines), no unpaired UTF-16 surrogate (not valid Unicode), no `%XX` escape (the server percent-decodes paths repeatedly, so
 * `a%2Fb` would become `a/b`), and no name starting with `.artifact.uploading.` (MLflow's temp
 * files, left out of its listings), no name starting with a space, and no name starting with a
 * URL scheme that Python writes back with `//` (`git:abc`, `http:x`, `file:x`: the schemes of
 * Python's `urllib.parse.uses_netloc`). `#`, `?` and `%XX` are exactly the printable ASCII that MLflow's
 * Python client cannot round-trip, and a leading space or such a scheme the edges of a name it
 * loses (test/mlflow/artifact-names.test.ts checks every class against it). Returns
 * `undefined` when the path is fine.
 *
 * @example
 * ```ts
 * artifactPathProblem('models/v1/model.onnx'); // undefined
 * artifactPathProblem('notes#1.txt')?.reason; // 'contains "#", which MLflow rejects'
 * ```
 */
export function artifactPathProblem(path: string, { allowEmpty = false }: { allowEmpty?: boolean } = {}): ArtifactPathProblem | undefined {
  const problem = (reason: string): ArtifactPathProblem => ({ path, reason });
  if (path === '') return allowEmpty ? undefined : problem('is empty');
  if (/[\u0000-\u001f\u007f]/.test(path)) return problem('contains a control character (NUL, newline, tab, ...)');
  // Only a string can hold one (a file name read from disk never does): UTF-8 has no form for it,
  // so the Azure SDK threw a bare URIError on it and GCS stored a name MLflow cannot download.
  if (/\p{Cs}/u.test(path)) return problem('contains an unpaired UTF-16 surrogate, which is not valid Unicode (no store can name it as it is)');
  if (path.includes('\\')) return problem('contains a backslash, which MLflow rejects (use "/" between directories)');
  if (path.includes('#')) return problem('contains "#", which MLflow rejects');
  // MLflow's Python client puts names into URLs unescaped: "a?b" would be fetched as "a".
  if (path.includes('?')) return problem('contains "?", which MLflow\'s Python client cannot download (it reads the rest as a query string)');
  if (/%[0-9A-Fa-f]{2}/.test(path)) return problem('contains a %XX sequence, which the server would decode into another name');
  // "C:/x" is absolute on Windows; "n:n.txt" is a plain name (the Python client round-trips it).
  if (path.startsWith('/') || /^[A-Za-z]:\//.test(path)) return problem('is absolute; artifact paths are relative to the run\'s artifact root');
  for (const segment of path.split('/')) {
    if (segment === '..') return problem('contains a ".." segment, which MLflow rejects');
    if (segment === '.') return problem('contains a "." segment; give the path in normal form');
    if (segment === '') return problem('contains an empty segment ("//" or a trailing "/")');
    if (segment.startsWith(MLFLOW_RESERVED_PREFIX)) return problem(`starts a name with "${MLFLOW_RESERVED_PREFIX}", which MLflow reserves for temp files and never lists`);
    if (segment.startsWith(' ')) return problem('starts a name with a space, which MLflow\'s Python client loses (it cannot download the file)');
    // As `urlsplit` reads a scheme: a letter, then letters, digits, "+", "-" or "."; any case.
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(segment)?.[1];
    if (scheme !== undefined && URL_LIKE_SCHEMES.has(scheme.toLowerCase())) {
      return problem(`starts a name with "${scheme}:", which MLflow's Python client reads as a URL (it cannot list or download the folder that holds it)`);
    }
  }
  return undefined;
}

/**
 * Joins relative artifact path parts with `/`, skipping empty ones and stray slashes.
 *
 * @example
 * ```ts
 * joinArtifactPath('0/abc/artifacts', undefined, 'model/'); // '0/abc/artifacts/model'
 * ```
 */
export function joinArtifactPath(...parts: Array<string | undefined>): string {
  return parts
    .filter((p): p is string => p !== undefined && p !== '')
    .map((p) => p.replace(/^\/+|\/+$/g, ''))
    .filter((p) => p !== '')
    .join('/');
}
