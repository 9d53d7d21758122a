/**
 * Logging and redaction. The library never writes to stdout/stderr by itself: it logs through
 * an injected {@link Logger}, silent by default. Everything logged, and every error message
 * built from server answers or URLs, passes through {@link redact} first, so tokens,
 * passwords and URL userinfo never reach a log.
 *
 * @module
 */

/** Log levels, most verbose first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** The logger interface the library logs through. `console` satisfies it. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** A logger that drops everything: the default. */
export const silentLogger: Logger = Object.freeze({
  debug() {},
  info() {},
  warn() {},
  error() {},
});

const LEVEL_ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/**
 * A logger that writes one line per message to a stream (stderr by default), at or above
 * `level`, with secrets redacted.
 *
 * @example
 * ```ts
 * const uploader = new ArtifactUploader({ stage: 'training', logger: createStreamLogger({ level: 'info' }) });
 * ```
 */
export function createStreamLogger(options: { level?: LogLevel; stream?: NodeJS.WritableStream } = {}): Logger {
  const threshold = LEVEL_ORDER[options.level ?? 'info'];
  const stream = options.stream ?? process.stderr;
  const write = (level: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    if (LEVEL_ORDER[level] < threshold) return;
    // The fields are redacted as values, not as text: see redactForJson.
    const suffix = fields && Object.keys(fields).length > 0 ? ` ${safeStringify(fields)}` : '';
    stream.write(`${redact(`[artifact-uploader] ${level}: ${message}`)}${suffix}\n`);
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

/**
 * Wraps a logger so that every message and field is redacted before it reaches it. The library
 * wraps whatever logger it is given with this, so a user's logger never sees a secret.
 */
export function redactingLogger(inner: Logger): Logger {
  if (inner === silentLogger) return inner;
  const wrap =
    (level: LogLevel) =>
    (message: string, fields?: Record<string, unknown>): void => {
      const safeFields = fields ? safeFieldValues(fields) : undefined;
      inner[level](redact(message), safeFields);
    };
  return { debug: wrap('debug'), info: wrap('info'), warn: wrap('warn'), error: wrap('error') };
}

/** Redacted JSON text of log fields; a value JSON cannot hold (a cycle) says so instead of throwing. */
function safeStringify(fields: Record<string, unknown>): string {
  try {
    return JSON.stringify(redactForJson(fields)) ?? '"[unserializable]"';
  } catch {
    return '"[unserializable]"';
  }
}

/** Redacted plain copy of log fields for a user's logger; logging must never throw. */
function safeFieldValues(fields: Record<string, unknown>): Record<string, unknown> {
  try {
    return redactForJson(fields) as Record<string, unknown>;
  } catch {
    return { unserializable: true };
  }
}

// ───────────────────────────── redaction ─────────────────────────────

/** Environment variables whose values are secrets wherever they show up. */
export const SECRET_ENV_VARS = [
  'MLFLOW_TRACKING_TOKEN',
  'MLFLOW_TRACKING_PASSWORD',
  'HF_TOKEN',
  'HUGGING_FACE_HUB_TOKEN',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AZURE_STORAGE_CONNECTION_STRING',
  'AZURE_STORAGE_ACCESS_KEY',
  'AZURE_STORAGE_SAS_TOKEN',
  'AZURE_CLIENT_SECRET',
] as const;

const registeredSecrets = new Set<string>();

/**
 * Registers a secret value (a token passed as an option, say) so that {@link redact} masks it
 * from then on. Values shorter than 4 characters are ignored: masking them would garble text.
 */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 4) registeredSecrets.add(value);
}

/**
 * Registers the signature of an Azure SAS (a token `sv=...&sig=...`, or a URL carrying one), as
 * sent (percent-encoded) and decoded, so it is masked even outside a URL.
 *
 * @example
 * ```ts
 * registerSasSignature('https://acct.blob.core.windows.net/c/b?sv=2021-12-02&sig=abc%2Bdef');
 * ```
 */
export function registerSasSignature(sas: string): void {
  const sig = /(?:^|[?&])sig=([^&#]+)/.exec(sas)?.[1];
  if (!sig) return;
  registerSecret(sig);
  try {
    registerSecret(decodeURIComponent(sig));
  } catch {
    // Not valid percent-encoding: the raw value is masked already.
  }
}

const MASK = '***';

/**
 * Masks secrets in a text: registered secrets, the values of {@link SECRET_ENV_VARS}, URL
 * userinfo (`https://user:pass@host`), `Authorization` header values, Hub-style tokens and the
 * signature/credential query parameters of presigned URLs (`X-Amz-Signature`, `sig`, ...).
 *
 * The userinfo of Azure Storage URIs (`wasbs://container@account...`, `abfss://filesystem@...`)
 * names a container, not a credential: a valid container name is kept, a `user:password` is not.
 * A mask never takes the backslash of an escaped quote (`\"`), so JSON quoted inside a text
 * keeps its escapes.
 *
 * For JSON documents use {@link redactForJson}: it redacts the values before they are
 * serialised, so a secret that also occurs in a number cannot break the document.
 *
 * @example
 * ```ts
 * redact('GET https://bob:hunter22@mlflow.example.com/api'); // 'GET https://***@mlflow.example.com/api'
 * ```
 */
export function redact(text: string): string {
  return redactWith(text, activeSecrets());
}

/** Registered secrets and the values of the secret env vars, longest first. */
function activeSecrets(): string[] {
  const secrets = new Set(registeredSecrets);
  for (const name of SECRET_ENV_VARS) {
    const value = process.env[name];
    if (value && value.length >= 4) secrets.add(value);
  }
  // Longest first, so a secret that contains another is masked whole.
  return [...secrets].sort((a, b) => b.length - a.length);
}

function redactWith(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    out = out.split(secret).join(MASK);
    const encoded = encodeURIComponent(secret);
    if (encoded !== secret) out = out.split(encoded).join(MASK);
  }
  return out
    .replace(URL_USERINFO, (match, scheme: string, userinfo: string) => (isAzureContainer(scheme, userinfo) ? match : `${scheme}${MASK}@`))
    .replace(AUTHORIZATION_VALUE, (_m, head: string, scheme?: string) => (scheme ? `${head}${scheme} ${MASK}` : `${head}${MASK}`))
    .replace(HUB_TOKEN, `hf_${MASK}`)
    .replace(PRESIGNED_QUERY_SECRET, `$1${MASK}`)
    .replace(SIGNATURE_PROVIDED, `$1${MASK}`)
    .replace(CONNECTION_STRING_SECRET, `$1${MASK}`);
}

/**
 * A Hugging Face token met in a text (not registered, not in an env var): `hf_` and 34 letters or
 * digits, the shape the Hub hands out. Not fewer: with 6 or more, the names of files such as
 * `hf_weights.bin` and `hf_export/` were masked in the CLI's output (its `--json` manifest said
 * `hf_***.bin`) and in every log line. Tokens the process knows are masked whatever their shape.
 */
const HUB_TOKEN = /\bhf_[A-Za-z0-9]{34,}\b/g;

/**
 * `scheme://userinfo@`: what is before the `@` is masked (except an Azure container, see
 * {@link isAzureContainer}). Up to the LAST `@` of the authority, as URL parsers read it: a
 * password written with an unescaped `@` (`bob:p@ss@host`) is userinfo to its end, and stopping
 * at the first `@` showed the rest of it.
 */
const URL_USERINFO = /([a-z][a-z0-9+.-]*:\/\/)([^/\s?#"'<>]+)@/gi;

// The three rules below end a masked value at whitespace, at a delimiter, or at a backslash that
// escapes a quote: `(?:[^\s<delimiters>\\]|\\(?!\\*["']))+`. In JSON quoted inside a text
// (`{\"message\":\"Bearer abc\"}`) the backslash before the closing quote belongs to the
// escape, not to the value; taking it would leave the quote unescaped and the JSON broken.
// Credentials (token68, base64, percent-encoded signatures) hold no backslash, so nothing leaks.

/**
 * The value of an `Authorization` header, as text (`Authorization: Bearer x`), as JSON
 * (`"Authorization":"Basic x"`) and as JSON quoted inside a text (`\"Authorization\":\"x\"`).
 */
const AUTHORIZATION_VALUE = /\b(authorization(?:\\*["'])?\s*[:=]\s*(?:\\*["'])?)(bearer|basic)?\s*(?:[^\s"',}\\]|\\(?!\\*["']))+/gi;

/** The key and SAS of an Azure Storage connection string (`AccountKey=...;`, `SharedAccessSignature=...`). */
const CONNECTION_STRING_SECRET = /\b(AccountKey=|SharedAccessSignature=)(?:[^;\s"'\\]|\\(?!\\*["']))+/gi;

/**
 * Query parameters of presigned URLs (S3 SigV4 and SigV2, GCS, Azure SAS) and GCS resumable
 * session URIs (`upload_id`) that grant access until they expire: a multipart part URL or a
 * session URI in a log must not be usable by whoever reads the log. Also after `&amp;`, the
 * `&` of a query string quoted in XML: an object store's error body quotes the request so (S3's
 * SignatureDoesNotMatch, in its `<CanonicalRequest>`), and the credential and security token
 * after `&amp;` were shown as they are.
 */
const PRESIGNED_QUERY_SECRET =
  /([?&](?:amp;)?(?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|X-Goog-Signature|X-Goog-Credential|Signature|sig|upload_id)=)(?:[^&#\s"'<>\\]|\\(?!\\*["']))+/gi;

/**
 * The signature S3 quotes back in its SignatureDoesNotMatch body: a presigned URL's
 * `X-Amz-Signature`, outside any query string.
 */
const SIGNATURE_PROVIDED = /(<SignatureProvided>)[^<]*/gi;

/**
 * Schemes of Azure Storage URIs, whose userinfo is the container (Blob) or file system (ADLS
 * Gen2): `wasbs://container@account.blob.core.windows.net/path`, as MLflow and Hadoop write them.
 */
const AZURE_CONTAINER_SCHEMES = new Set(['wasb://', 'wasbs://', 'abfs://', 'abfss://']);

/**
 * A name Azure accepts for a container or file system: 3 to 63 lower-case letters, digits and
 * hyphens, or one of the reserved `$root`, `$web`, `$logs`. Anything else there (a `:password`,
 * upper case, a percent-escape) is not a container name and is masked as userinfo.
 */
const AZURE_CONTAINER_NAME = /^(?:\$root|\$web|\$logs|[a-z0-9][a-z0-9-]{1,61}[a-z0-9])$/;

/** True when `userinfo` of a `scheme://userinfo@` is an Azure container name: shown, not masked. */
function isAzureContainer(scheme: string, userinfo: string): boolean {
  return AZURE_CONTAINER_SCHEMES.has(scheme.toLowerCase()) && AZURE_CONTAINER_NAME.test(userinfo);
}

/** `Authorization` and `Proxy-Authorization` as an object key: the whole value is a credential. */
const AUTHORIZATION_KEY = /\bauthorization$/i;

/**
 * A plain copy of `value` as `JSON.stringify` would see it (`toJSON()` applied, errors as name
 * and message, bigints as strings), with every string and object key in it redacted; numbers,
 * booleans and null are left as they are. Serialise the result with `JSON.stringify`.
 *
 * Redacting the values one by one rather than the JSON text keeps the document valid: a secret
 * that is a run of digits cannot turn `"size": 12345` into `"size": 1***`, a mask cannot take
 * the backslash of an escaped quote, and a secret holding a quote or backslash is found as it
 * is, not in its escaped form. A string under an `Authorization` key is masked whole, as the text
 * rule masks `"Authorization":"Bearer x"`.
 *
 * @throws TypeError for a circular structure, as `JSON.stringify` does.
 *
 * @example
 * ```ts
 * JSON.stringify(redactForJson({ url: 'https://bob:pw@host/x', size: 12345 })); // '{"url":"https://***@host/x","size":12345}'
 * ```
 */
export function redactForJson(value: unknown): unknown {
  const secrets = activeSecrets();
  const inProgress = new Set<object>();
  const walk = (holderKey: string, input: unknown, credential: boolean): unknown => {
    let v = input;
    if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') v = (v as { toJSON(key: string): unknown }).toJSON(holderKey);
    if (v instanceof Error) v = { name: v.name, message: v.message };
    if (typeof v === 'string') return credential ? maskCredential(v) : redactWith(v, secrets);
    // A bigint is a number: left alone, like the others.
    if (typeof v === 'bigint') return v.toString();
    if (typeof v === 'function' || typeof v === 'symbol') return undefined;
    if (v === null || typeof v !== 'object') return v;
    if (inProgress.has(v)) throw new TypeError('Converting circular structure to JSON');
    inProgress.add(v);
    try {
      if (Array.isArray(v)) return v.map((item, i) => walk(String(i), item, credential));
      // Left out like JSON.stringify leaves them out: undefined, functions, symbols. fromEntries
      // defines each key as an own property, even "__proto__".
      return Object.fromEntries(
        Object.entries(v)
          .map(([key, item]) => [redactWith(key, secrets), walk(key, item, credential || AUTHORIZATION_KEY.test(key))] as const)
          .filter(([, item]) => item !== undefined),
      );
    } finally {
      inProgress.delete(v);
    }
  };
  return walk('', value, false);
}

/** The value of an `Authorization` header: its scheme stays readable, the rest is masked. */
function maskCredential(value: string): string {
  const scheme = /^\s*(bearer|basic)\b/i.exec(value)?.[1];
  return scheme ? `${scheme} ${MASK}` : MASK;
}

/**
 * `Name: message` of an error (or its string form), redacted: for a log line's `error` field.
 *
 * @example
 * ```ts
 * logger.debug('retrying', { error: errorText(error) }); // 'HttpStatusError: PUT ... answered 503'
 * ```
 */
export function errorText(error: unknown): string {
  return redact(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
}

/**
 * A server address as a user gave it, for a message: URL userinfo masked ({@link redact}), and
 * in an address written without its `scheme://` (`user:password@host:5000`), which no URL
 * parser reads as userinfo, everything before the last `@` (a password may hold an `@`; a
 * URL's userinfo ends at the last one).
 *
 * @example
 * ```ts
 * redactAddress('bob:p@ss@127.0.0.1:5000'); // '***@127.0.0.1:5000'
 * ```
 */
export function redactAddress(address: string): string {
  return address.includes('://') ? redact(address) : redact(address.replace(/^\S*@/, `${MASK}@`));
}

/**
 * Removes userinfo from a URL string for display (but keeps the container of an Azure Storage
 * URI, see {@link redact}) and redacts the rest; leaves non-URLs untouched. A `scheme://...@`
 * string that does not parse loses everything from `://` to its last `@`: a password holding
 * `/`, `#` or `?` unencoded is what made it unparsable, and it ends no earlier than that `@`.
 */
export function redactUrl(url: string | URL): string {
  try {
    const parsed = new URL(String(url));
    // An Azure URI's user name is its container, not a credential.
    const container = !parsed.password && isAzureContainer(`${parsed.protocol}//`, parsed.username);
    if ((parsed.username || parsed.password) && !container) {
      parsed.username = '';
      parsed.password = '';
    }
    return redact(parsed.toString());
  } catch {
    return redact(String(url).replace(UNPARSED_USERINFO, `$1${MASK}@`));
  }
}

/** `scheme://` up to the last `@` (before any whitespace) of a URL that does not parse. */
const UNPARSED_USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)\S*@/i;
