/**
 * Percent-decoding as Python's `urllib.parse.unquote` does it, which MLflow applies to local
 * paths (`file:` URIs and plain paths, through `url2pathname`) and to `abfss://` paths: the same
 * URI must name the same place for a Python step and this one.
 *
 * @module
 */

/**
 * Python's `urllib.parse.unquote`: each run of `%XX` escapes is decoded as UTF-8 (a byte that
 * is not valid UTF-8 becomes U+FFFD, Python's `errors='replace'`), and a `%` that starts no
 * escape (`100%`, `%zz`) stays as it is, where `decodeURIComponent` throws.
 *
 * @example
 * ```ts
 * unquote('/x/my%20runs/100%'); // '/x/my runs/100%'
 * ```
 * @internal
 */
export function unquote(text: string): string {
  return text.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => Buffer.from(run.replace(/%/g, ''), 'hex').toString('utf8'));
}
