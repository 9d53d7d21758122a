/**
 * The whole error tree of artifact-uploader. Every error the library throws or returns is an
 * {@link ArtifactUploaderError}: it has a stable `code` to branch on, a `hint` that says what
 * to do, and the context that explains it (status, path, endpoint, ...). Messages never carry
 * secrets: URLs and texts pass through the redactor before they get here.
 *
 * Only this module defines error classes; every other module imports them from here.
 *
 * @example
 * ```ts
 * // onError: 'throw' makes a failed upload throw instead of returning a `failed` result.
 * const uploader = new ArtifactUploader({ stage: 'conversion', onError: 'throw' });
 * try {
 *   await uploader.uploadFile('out/model.onnx', { kind: 'onnxModel' });
 * } catch (error) {
 *   if (isArtifactUploaderError(error)) console.error(error.code, error.hint);
 * }
 * ```
 * @module
 */

import type { inspect as nodeInspect, InspectOptionsStylized } from 'node:util';
import { redact } from './logger.js';

/** Options every error class accepts. */
export interface ErrorOptions {
  /** What the caller should do about it; appended to the message. */
  hint?: string;
  /** The underlying error. */
  cause?: unknown;
}

/**
 * `message` as a finished sentence, so the hint after it does not run on: a server's own text
 * (`Run 'abc' not found`) read `Run 'abc' not found The run id does not exist...`. A message
 * ending in whitespace (a list of issues ending in `"\n "`) has set its own separator.
 */
function endSentence(message: string): string {
  return /(?:[.!?:]['"`)\]]*|\s)$/.test(message) ? message : `${message}.`;
}

/** `util.inspect.custom`, by its registered name: the key Node's `inspect` looks a custom rendering up by. */
const INSPECT_CUSTOM = Symbol.for('nodejs.util.inspect.custom');

/** Errors whose inspection is under way: their custom inspect hands them to Node's default rendering. */
const beingInspected = new WeakSet<object>();

/** Base class of every error raised by this library. */
export class ArtifactUploaderError extends Error {
  override name = 'ArtifactUploaderError';
  /** Stable, machine-readable code (e.g. `MLFLOW_API_ERROR`, `PATH_NOT_FOUND`). */
  readonly code: string;
  /** What to do about it, in a sentence. Also part of `message`. */
  readonly hint?: string;

  constructor(code: string, message: string, options: ErrorOptions = {}) {
    super(options.hint ? `${endSentence(message)} ${options.hint}` : message, { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
  }

  /**
   * What `util.inspect` shows, and so `console.log(error)`, a test runner's report or a log
   * collector's serialiser: Node's own rendering (stack, own properties, the whole `cause`
   * chain), redacted as one text. The `cause` is the third party's error as it was thrown (an
   * SDK's, a server's answer quoted in it) and nothing redacted it: a Hub that echoed the
   * request's token in its error body showed that token in the `[cause]` Node prints.
   *
   * @example
   * ```ts
   * declare const error: ArtifactUploaderError;
   * console.error(error); // the stack, the fields and every cause, with secrets masked
   * ```
   */
  [INSPECT_CUSTOM](depth: number, options: InspectOptionsStylized, render: typeof nodeInspect): string | this {
    // Node renders an object whose custom inspect returns the object itself as it would without
    // one: that is the rendering redacted here, asked for once per error.
    if (beingInspected.has(this)) return this;
    beingInspected.add(this);
    try {
      return redact(render(this, { ...options, depth }));
    } finally {
      beingInspected.delete(this);
    }
  }

  /** A plain object for `--json` output and structured logs (no stack, no cause chain). */
  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { name: this.name, code: this.code, message: this.message };
    for (const [key, value] of Object.entries(this)) {
      if (key === 'cause' || value === undefined || typeof value === 'function') continue;
      out[key] = value;
    }
    return out;
  }
}

/**
 * True for any error of this library, also across two copies of it (ESM and CJS builds
 * loaded side by side), where `instanceof` would fail.
 */
export function isArtifactUploaderError(error: unknown): error is ArtifactUploaderError {
  return (
    error instanceof ArtifactUploaderError ||
    (error instanceof Error && typeof (error as { code?: unknown }).code === 'string' && 'hint' in error)
  );
}

// ───────────────────────────── usage and configuration ─────────────────────────────

/** A programmer error: an option of the wrong type, an unknown stage, conflicting options. */
export class InvalidArgumentError extends ArtifactUploaderError {
  override name = 'InvalidArgumentError';
  /** The option or argument at fault. */
  readonly argument: string;
  constructor(argument: string, message: string, options: ErrorOptions = {}) {
    super('INVALID_ARGUMENT', message, options);
    this.argument = argument;
  }
}

/** One problem found in a configuration file or value. */
export interface ConfigIssue {
  /** Dotted key path, e.g. `training.checkpoint.enabled`. Empty for the root. */
  path: string;
  /** What was wrong and what was expected. */
  message: string;
}

/** A tracking config file (or env override) that does not match the schema. */
export class ConfigError extends ArtifactUploaderError {
  override name = 'ConfigError';
  /** The file the bad value came from, when it came from a file. */
  readonly file?: string;
  /** Every problem found, with its key path. */
  readonly issues: ConfigIssue[];
  constructor(message: string, details: { file?: string; issues?: ConfigIssue[] } & ErrorOptions = {}) {
    super('CONFIG_INVALID', message, details);
    this.file = details.file;
    this.issues = details.issues ?? [];
  }
}

// ───────────────────────────── local files ─────────────────────────────

/** Codes of {@link LocalPathError}. */
export type LocalPathErrorCode =
  | 'PATH_NOT_FOUND'
  | 'NOT_A_FILE'
  | 'NOT_A_DIRECTORY'
  | 'NOT_A_GZIP_ARCHIVE'
  | 'PATH_UNREADABLE'
  | 'PATH_UNWRITABLE'
  | 'SYMLINK_ESCAPES'
  | 'INVALID_ARTIFACT_PATH';

/** A local path that cannot be uploaded as asked: missing, wrong kind, unreadable, escaping. */
export class LocalPathError extends ArtifactUploaderError {
  override name = 'LocalPathError';
  override readonly code: LocalPathErrorCode;
  /** The local path (or artifact path for `INVALID_ARTIFACT_PATH`). */
  readonly path: string;
  constructor(code: LocalPathErrorCode, path: string, message: string, options: ErrorOptions = {}) {
    super(code, message, options);
    this.code = code;
    this.path = path;
  }
}

/**
 * The error of a file that ended before the bytes an upload had stat'ed were read: it shrank
 * under the upload (`PATH_UNREADABLE`), which no retry can fix. `expectedEnd` is where the file
 * should have ended, `endsAt` where the read found its end.
 *
 * @example
 * ```ts
 * if (got < want) throw sourceShrankError('model.bin', size, position + got);
 * ```
 */
export function sourceShrankError(localPath: string, expectedEnd: number, endsAt: number): LocalPathError {
  return new LocalPathError('PATH_UNREADABLE', localPath, `${localPath} shrank while it was being uploaded (${expectedEnd} bytes expected, it ends at ${endsAt}).`, {
    hint: 'Upload files once they are complete (e.g. after the checkpoint is written).',
  });
}

/**
 * Maps an fs error about `localPath` to a {@link LocalPathError}; passes others through.
 *
 * @example
 * ```ts
 * try { await readFile(p); } catch (e) { throw toLocalPathError(e, p); }
 * ```
 */
export function toLocalPathError(error: unknown, localPath: string): unknown {
  if (error instanceof LocalPathError) return error;
  const code = (error as { code?: unknown }).code;
  if (code === 'ENOENT') {
    return new LocalPathError('PATH_NOT_FOUND', localPath, `${localPath} does not exist.`, {
      hint: 'Check the path (relative paths are resolved against the working directory).',
      cause: error,
    });
  }
  // A symlink in a cycle of links (`a -> b -> a`, a link to itself): like a dangling one, it
  // leads to no file; untyped, it would surface as a bare "too many symbolic links".
  if (code === 'ELOOP') {
    return new LocalPathError('PATH_NOT_FOUND', localPath, `${localPath} leads to no file: it goes through a symlink in a cycle of links (ELOOP).`, {
      hint: 'Point the link at the file or directory it stands for (`ls -l` shows where each link leads), or pass the real path.',
      cause: error,
    });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new LocalPathError('PATH_UNREADABLE', localPath, `${localPath} cannot be read (${code}).`, {
      // A directory is listed (r) and its entries looked up (x): u+r alone still fails on one.
      hint: 'Fix its permissions (chmod u+r for a file, u+rx for a directory) or exclude it.',
      cause: error,
    });
  }
  if (typeof code === 'string' && DEVICE_ERROR_CODES.has(code)) {
    return new LocalPathError('PATH_UNREADABLE', localPath, `${localPath} could not be read: the file system answered ${code}.`, {
      hint: 'Check the disk or mount it is on (an NFS or FUSE mount that went away answers this way), then run again.',
      cause: error,
    });
  }
  return error;
}

/**
 * What to do about a source path the system refuses as too long (ENAMETOOLONG), for the scans
 * that walk a directory (an archive's, a plan's): no permission or retry helps, only a shorter
 * path. Not in {@link toLocalPathError}: a store's write that fails so is about its destination.
 */
export const PATH_TOO_LONG_HINT =
  'The system refuses paths longer than 4096 bytes (PATH_MAX on Linux) and names longer than 255 bytes: shorten the path (move the directory to a shorter place, or rename its deeply nested folders), or leave that folder out with `exclude`.';

/**
 * `errno` codes of a read the device or mount under the file failed (a disk error, an NFS
 * handle gone stale, a device or FUSE mount that went away): not the file's fault, not the
 * network's, and not worth retrying at once.
 */
const DEVICE_ERROR_CODES = new Set(['EIO', 'ESTALE', 'ENXIO', 'ENODEV']);

/** The `errno` codes of a full file system (`ENOSPC`) or an exhausted quota (`EDQUOT`). */
const DISK_FULL_CODES = new Set(['ENOSPC', 'EDQUOT']);

/**
 * A write failed because the file system is full or the user's quota is used up. Names the
 * destination; nothing half-written was left there. Not retried: space must be freed first.
 */
export class DiskFullError extends ArtifactUploaderError {
  override name = 'DiskFullError';
  override readonly code = 'DISK_FULL' as const;
  /** The file (or directory) that could not be written. */
  readonly path: string;
  /** `ENOSPC` (no space left) or `EDQUOT` (quota exceeded). */
  readonly errno: string;
  constructor(path: string, errno: string, options: ErrorOptions = {}) {
    super(
      'DISK_FULL',
      `Cannot write ${path}: ${errno === 'EDQUOT' ? 'the disk quota is exceeded' : 'no space left on the device'} (${errno}). Nothing half-written was left there.`,
      { hint: 'Free space (or raise the quota) on that file system, or write somewhere else (for temp files: set TMPDIR), then run again.', ...options },
    );
    this.path = path;
    this.errno = errno;
  }
}

/**
 * A {@link DiskFullError} for `destination` when `error` is `ENOSPC`/`EDQUOT` (or already a
 * `DiskFullError`), else `undefined`.
 *
 * @example
 * ```ts
 * throw diskFullError(error, '/data/out/ckpt.tar.gz') ?? error;
 * ```
 */
export function diskFullError(error: unknown, destination: string): DiskFullError | undefined {
  if (error instanceof DiskFullError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && DISK_FULL_CODES.has(code) ? new DiskFullError(destination, code, { cause: error }) : undefined;
}

/** A file's size and modification time, as {@link SourceChangedError} reports them. */
export interface SourceFileState {
  /** Size in bytes. */
  size: number;
  /** Modification time, in ms since the epoch. */
  mtimeMs: number;
}

/** Options of {@link SourceChangedError}: what was being done with the file. */
export interface SourceChangedErrorOptions extends ErrorOptions {
  /** What the file changed during, for the message. @default 'upload' */
  activity?: 'upload' | 'archive';
  /**
   * The upload had stored the file before the change showed, and the store could not delete it
   * again (a refused delete, or a store that cannot delete): the message says it is left there.
   * @default false
   */
  leftStored?: boolean;
  /**
   * How the file changed, when size and modification time do not say it: a symlink re-pointed
   * to another target keeps neither in a telling way. Replaces the "was rewritten" wording.
   */
  change?: string;
  /**
   * The change showed in what an earlier, interrupted attempt stored of the file, not during
   * this upload: a part or block of that attempt, which this one was to keep, no longer holds the
   * file's bytes at its range. The file was rewritten since in a way its size, modification time
   * and inode (what the resume journal compares) do not show. The stores start such a file over
   * instead; the message is worded for a caller that cannot. @default false
   */
  sinceEarlierAttempt?: boolean;
}

/**
 * A source file changed (rewritten, truncated, replaced or deleted) while it was uploaded, so
 * the bytes sent are not one version of it. Raised at once, with no retries spent; what was
 * stored is removed where the store can.
 */
export class SourceChangedError extends ArtifactUploaderError {
  override name = 'SourceChangedError';
  override readonly code = 'SOURCE_CHANGED' as const;
  /** The local file. */
  readonly path: string;
  /** The file when its upload started. */
  readonly before: SourceFileState;
  /** The file after the bytes were sent; `undefined` when it was gone. */
  readonly after?: SourceFileState;
  /** Set when the change showed in what an earlier attempt stored (see {@link SourceChangedErrorOptions.sinceEarlierAttempt}). */
  readonly sinceEarlierAttempt?: true;
  /** Set when what was stored could not be taken back (see {@link SourceChangedErrorOptions.leftStored}). */
  readonly leftStored?: true;
  /** How the file changed, when the constructor was told ({@link SourceChangedErrorOptions.change}). */
  readonly change?: string;
  constructor(path: string, before: SourceFileState, after: SourceFileState | undefined, options: SourceChangedErrorOptions = {}) {
    const { activity = 'upload', leftStored = false, change, sinceEarlierAttempt = false, ...rest } = options;
    const what =
      change ??
      (!after
        ? 'was deleted'
        : after.size < before.size
          ? `shrank from ${before.size} to ${after.size} bytes`
          : after.size !== before.size
            ? `grew from ${before.size} to ${after.size} bytes`
            : 'was rewritten (its modification time changed)');
    super(
      'SOURCE_CHANGED',
      activity === 'archive'
        ? `${path} ${what} while it was being archived, so the archive would not hold one version of it; the archive was not written.`
        : sinceEarlierAttempt
          ? leftStored
            ? `${path} ${what} since an earlier, interrupted attempt stored part of it, though its size and modification time are the same; the object made of that part and this version could not be deleted again and may mix two versions of the file: delete that artifact by hand, or upload the file again with --no-resume.`
            : `${path} ${what} since an earlier, interrupted attempt stored part of it, though its size and modification time are the same; that part is not of this version of the file, so the upload was not completed.`
          : leftStored
            ? `${path} ${what} while it was being uploaded, so what was sent is not one version of it; the upload failed, but what it stored could not be deleted again and may mix two versions of the file: delete that artifact by hand, or upload the file again once it is complete.`
            : `${path} ${what} while it was being uploaded, so what was sent is not one version of it; the upload failed and was not kept.`,
      {
        hint:
          activity === 'archive'
            ? 'Archive a checkpoint once it is complete: wait for the process writing it to finish, then archive again.'
            : sinceEarlierAttempt
              ? 'Upload it again with --no-resume (resume: false), which sends the whole file.'
              : 'Upload files once they are complete: wait for the process writing it to finish (or write to a temp name and rename when done), then upload again.',
        ...rest,
      },
    );
    this.path = path;
    if (sinceEarlierAttempt) this.sinceEarlierAttempt = true;
    if (leftStored) this.leftStored = true;
    if (change !== undefined) this.change = change;
    this.before = { size: before.size, mtimeMs: before.mtimeMs };
    if (after) this.after = { size: after.size, mtimeMs: after.mtimeMs };
  }
}

// ───────────────────────────── network ─────────────────────────────

/** Base of errors that come from talking to a server (MLflow, S3, the Hub). */
export class RemoteError extends ArtifactUploaderError {
  override name = 'RemoteError';
  /** HTTP method of the failed request. */
  readonly method?: string;
  /** URL of the failed request, with credentials removed. */
  readonly url?: string;
  constructor(code: string, message: string, details: { method?: string; url?: string } & ErrorOptions = {}) {
    super(code, message, details);
    this.method = details.method;
    this.url = details.url;
  }
}

/** The connection failed or dropped before a complete response arrived. Retried. */
export class NetworkError extends RemoteError {
  override name = 'NetworkError';
  constructor(message: string, details: { method?: string; url?: string } & ErrorOptions = {}) {
    super('NETWORK_ERROR', message, details);
  }
}

/** A request made no progress for longer than its timeout. Retried. */
export class RequestTimeoutError extends RemoteError {
  override name = 'RequestTimeoutError';
  /** The timeout that fired, in milliseconds. */
  readonly timeoutMs: number;
  constructor(timeoutMs: number, details: { method?: string; url?: string } & ErrorOptions = {}) {
    super(
      'REQUEST_TIMEOUT',
      `${details.method ?? 'Request'} ${details.url ?? ''} made no progress for ${timeoutMs} ms.`.replace(' .', '.'),
      {
        hint: 'If the server is slow rather than down, raise MLFLOW_HTTP_REQUEST_TIMEOUT (seconds) or the `retry.timeoutMs` option.',
        ...details,
      },
    );
    this.timeoutMs = timeoutMs;
  }
}

/** The caller's AbortSignal fired, or an overall deadline passed. Never retried. */
export class AbortedError extends ArtifactUploaderError {
  override name = 'AbortedError';
  /**
   * Set when a publish was aborted after its commit request was sent, so that the commit may
   * be on the Hub: publishing again with this as `idempotencyKey` finds it instead of committing
   * twice (as {@link HubError.publishId}).
   */
  readonly publishId?: string;
  constructor(message = 'The operation was aborted.', options: ErrorOptions & { publishId?: string } = {}) {
    super('ABORTED', message, options);
    this.publishId = options.publishId;
  }
}

/** A non-2xx HTTP answer from a server other than MLflow (object stores, part URLs). */
export class HttpStatusError extends RemoteError {
  override name = 'HttpStatusError';
  /** HTTP status code. */
  readonly status: number;
  /** Milliseconds the server asked us to wait (`Retry-After`), if it said. */
  readonly retryAfterMs?: number;
  /** Start of the response body, redacted, for diagnosis. */
  readonly body?: string;
  constructor(
    status: number,
    message: string,
    details: { method?: string; url?: string; retryAfterMs?: number; body?: string; code?: string } & ErrorOptions = {},
  ) {
    super(details.code ?? 'HTTP_ERROR', message, details);
    this.status = status;
    this.retryAfterMs = details.retryAfterMs;
    this.body = details.body;
  }
}

/**
 * An MLflow tracking server answered with an error. Carries the HTTP status, MLflow's
 * `error_code` (e.g. `RESOURCE_DOES_NOT_EXIST`) and the endpoint, and says what to do.
 */
/**
 * The `errorCode` of an {@link MlflowApiError} for MLflow's plain-text 503 on a route its
 * server's flags switch off (`--no-serve-artifacts`, `--artifacts-only`): the server's
 * configuration, not its load, so it is never retried.
 */
export const MLFLOW_ENDPOINT_DISABLED = 'ENDPOINT_DISABLED';

export class MlflowApiError extends HttpStatusError {
  override name = 'MlflowApiError';
  /** MLflow's `error_code`, or `HTTP_<status>` when the body was not MLflow JSON. */
  readonly errorCode: string;
  /** The REST endpoint, e.g. `mlflow/runs/get`. */
  readonly endpoint: string;
  constructor(
    status: number,
    errorCode: string,
    endpoint: string,
    message: string,
    details: { method?: string; url?: string; retryAfterMs?: number; body?: string } & ErrorOptions = {},
  ) {
    super(status, message, { ...details, code: 'MLFLOW_API_ERROR' });
    this.errorCode = errorCode;
    this.endpoint = endpoint;
  }
}

/** A server answered 2xx with a body that does not match the documented protocol. */
export class InvalidResponseError extends RemoteError {
  override name = 'InvalidResponseError';
  constructor(message: string, details: { method?: string; url?: string } & ErrorOptions = {}) {
    super('INVALID_RESPONSE', message, {
      hint: 'The server may be a different version than expected or a proxy may have answered instead.',
      ...details,
    });
  }
}

// ───────────────────────────── artifact stores ─────────────────────────────

/** A run's artifact URI uses a scheme this library cannot write to. */
export class UnsupportedArtifactStoreError extends ArtifactUploaderError {
  override name = 'UnsupportedArtifactStoreError';
  /** The scheme, e.g. `gs`. */
  readonly scheme: string;
  /** The artifact URI, with credentials removed. */
  readonly artifactUri: string;
  constructor(scheme: string, artifactUri: string, options: ErrorOptions & { supported?: readonly string[] } = {}) {
    const supported = options.supported ?? ['mlflow-artifacts:', 'http(s): (proxied through the tracking server)', 'file: (local paths)', 's3:', 'gs:', 'wasbs:', 'abfss:'];
    super(
      'UNSUPPORTED_ARTIFACT_STORE',
      `Artifact URI ${artifactUri} uses the "${scheme}:" scheme, which artifact-uploader cannot write to. Supported: ${supported.join(', ')}.`,
      {
        hint: 'Start the tracking server with `mlflow server --serve-artifacts` so artifacts are proxied through it, or use an s3://, gs://, wasbs:// or abfss:// artifact root.',
        ...options,
      },
    );
    this.scheme = scheme;
    this.artifactUri = artifactUri;
  }
}

/** An optional peer dependency is needed for this operation but is not installed. */
export class MissingDependencyError extends ArtifactUploaderError {
  override name = 'MissingDependencyError';
  /** The npm packages to install. */
  readonly packages: string[];
  constructor(packages: string[], purpose: string, options: ErrorOptions = {}) {
    super('MISSING_DEPENDENCY', `${purpose} needs ${packages.join(' and ')}, which ${packages.length > 1 ? 'are' : 'is'} not installed.`, {
      hint: `Install ${packages.length > 1 ? 'them' : 'it'}: npm install ${packages.join(' ')}`,
      ...options,
    });
    this.packages = packages;
  }
}

/** One file whose uploaded copy does not match the local file. */
export interface VerificationMismatch {
  /** Artifact path relative to the run's artifact root. */
  artifactPath: string;
  /** Expected size in bytes. */
  expectedSize: number;
  /** Size the store reports, or `undefined` when the file is missing there. */
  actualSize?: number;
  /** Why it does not match (`missing`, `size`, `checksum`). */
  reason: 'missing' | 'size' | 'checksum';
}

/** After upload, the store's listing did not match what was sent. */
export class VerificationError extends ArtifactUploaderError {
  override name = 'VerificationError';
  /** Every mismatching file. */
  readonly mismatches: VerificationMismatch[];
  constructor(mismatches: VerificationMismatch[], options: ErrorOptions = {}) {
    const shown = mismatches
      .slice(0, 5)
      .map((m) => `${m.artifactPath} (${m.reason}${m.reason === 'size' ? `: expected ${m.expectedSize}, got ${m.actualSize}` : ''})`)
      .join(', ');
    super(
      'VERIFICATION_FAILED',
      `Verification failed for ${mismatches.length} file(s): ${shown}${mismatches.length > 5 ? ', ...' : ''}.`,
      // Another writer of the same path is named first: HPO trials run as separate processes each
      // store their best checkpoint at one path, and a listing taken after another's write
      // showed another size, which the hint put down to a proxy alone. Archive uploads of
      // processes sharing a journal directory take turns (uploader/destination-lock.ts); others do not.
      {
        hint: 'Was there another upload to the same artifact path at the same time (another process, e.g. a sweep trial on another machine or with another journal directory)? Then it replaced this one: upload from one process, share one journal directory, or give each its own path (trialId). Otherwise upload again; if it repeats, a proxy may be truncating bodies (check its body size limit).',
        ...options,
      },
    );
    this.mismatches = mismatches;
  }
}

// ───────────────────────────── model registry ─────────────────────────────

/** Codes of {@link RegistryError}. */
export type RegistryErrorCode =
  | 'REGISTRY_INVALID_NAME'
  | 'REGISTRY_INVALID_ALIAS'
  | 'REGISTRY_SOURCE_NOT_FOUND'
  | 'REGISTRY_SOURCE_TOO_LARGE'
  | 'REGISTRY_LOCAL_MISMATCH'
  | 'REGISTRY_UNAVAILABLE'
  | 'REGISTRY_UNSUPPORTED_STORE'
  | 'REGISTRY_VERSION_FAILED'
  | 'REGISTRY_VERSION_TIMEOUT'
  /** The call failed after making its version, and could not remove it; the failure is the `cause`. */
  | 'REGISTRY_INCOMPLETE'
  /**
   * A stage helper's `register` failed after its upload succeeded: the files are in the run
   * (`runId`, `artifactPath`, `uploaded`), only the registration is missing; the failure is the `cause`.
   */
  | 'REGISTRY_AFTER_UPLOAD';

/**
 * One upload as a `REGISTRY_AFTER_UPLOAD` error carries it: the fields of the uploader's
 * `UploadResult` that say where the files went. Declared here, structurally, because core/
 * may not import the uploader's types; every `UploadResult` is one (the stage helpers that set
 * it are checked against it by the compiler), and the object is the whole result.
 *
 * @example
 * ```ts
 * declare const upload: UploadedBeforeRegistration;
 * const sent = upload.files.filter((f) => f.status === 'uploaded' || f.status === 'resumed');
 * ```
 */
export interface UploadedBeforeRegistration {
  /** `uploaded` whenever the error is thrown: a registration only follows an upload. */
  status: 'uploaded' | 'skipped' | 'failed';
  /** The run the files are in. */
  runId?: string;
  /** Where in the run's artifacts they are. */
  artifactPath?: string;
  /** The upload's files: local path, artifact path, size and what happened to each. */
  files: ReadonlyArray<{ localPath: string; artifactPath: string; size: number; status: 'uploaded' | 'resumed' | 'failed' | 'planned' | 'cancelled' }>;
}

/**
 * What a stage helper would have returned without `register`, as {@link RegistryError.uploaded}
 * holds it: one upload (`uploadConversionArtifacts`), or the checkpoint's and the metrics'
 * (`uploadTrainingArtifacts`; the checkpoint is what was to be registered).
 *
 * @example
 * ```ts
 * declare const uploaded: StageUploadBeforeRegistration;
 * const registered = 'checkpoint' in uploaded ? uploaded.checkpoint : uploaded;
 * ```
 */
export type StageUploadBeforeRegistration = UploadedBeforeRegistration | { checkpoint: UploadedBeforeRegistration; metrics?: UploadedBeforeRegistration };

/**
 * Registering a model (MLflow logged model → registered model → version → aliases) failed or
 * was refused: a bad name or alias, a source path the run does not have, a server without a
 * Model Registry, the embedded `./mlruns` store, or a version that never became READY.
 * Whatever the call had made by then was removed (or its logged model marked FAILED), except
 * with `REGISTRY_INCOMPLETE`: its version could not be deleted, and `version` names it. A stage
 * helper's `register` that fails after the upload throws `REGISTRY_AFTER_UPLOAD`, with the
 * upload's result in `uploaded` and the failure as `cause`.
 *
 * @example
 * ```ts
 * try {
 *   await registerModel({ name: 'fraud-classifier', artifactPath: 'onnx' });
 * } catch (error) {
 *   if (error instanceof RegistryError && error.code === 'REGISTRY_SOURCE_NOT_FOUND') console.error(error.hint);
 * }
 * ```
 * @example
 * ```ts
 * declare const checkpointDir: string;
 * try {
 *   await uploadTrainingArtifacts({ checkpointDir, register: { name: 'llama-lora' } });
 * } catch (error) {
 *   // The files are in the run: register them later instead of uploading them again.
 *   if (error instanceof RegistryError && error.code === 'REGISTRY_AFTER_UPLOAD' && error.uploaded) {
 *     const upload = 'checkpoint' in error.uploaded ? error.uploaded.checkpoint : error.uploaded;
 *     console.error(`${upload.files.length} files are in run ${upload.runId} at ${upload.artifactPath}`);
 *   }
 * }
 * ```
 */
export class RegistryError extends ArtifactUploaderError {
  override name = 'RegistryError';
  override readonly code: RegistryErrorCode;
  /** The registered model name the call was about. */
  readonly modelName?: string;
  /** The model version, when one had been created. */
  readonly version?: string;
  /** With `REGISTRY_AFTER_UPLOAD`: the run the stage helper uploaded to. */
  readonly runId?: string;
  /** With `REGISTRY_AFTER_UPLOAD`: where in the run's artifacts the files to register are. */
  readonly artifactPath?: string;
  /**
   * With `REGISTRY_AFTER_UPLOAD`: what the stage helper would have returned without `register`
   * (a `ConversionArtifactsResult`, one upload, or a `TrainingArtifactsResult`, whose
   * `checkpoint` is the upload to register): the upload happened. `'checkpoint' in uploaded`
   * tells them apart.
   */
  readonly uploaded?: StageUploadBeforeRegistration;
  constructor(
    code: RegistryErrorCode,
    message: string,
    details: { modelName?: string; version?: string; runId?: string; artifactPath?: string; uploaded?: StageUploadBeforeRegistration } & ErrorOptions = {},
  ) {
    super(code, message, details);
    this.code = code;
    this.modelName = details.modelName;
    this.version = details.version;
    this.runId = details.runId;
    this.artifactPath = details.artifactPath;
    this.uploaded = details.uploaded;
  }
}

// ───────────────────────────── models ─────────────────────────────

/** No model directory could be found, or the given one is unusable. */
export class ModelDirectoryError extends ArtifactUploaderError {
  override name = 'ModelDirectoryError';
  /** The directory searched (or given). */
  readonly directory: string;
  /** The glob pattern used, if any. */
  readonly pattern?: string;
  /** What was found there instead (names), to help spot a typo. */
  readonly found: string[];
  constructor(
    directory: string,
    message: string,
    details: { pattern?: string; found?: string[] } & ErrorOptions = {},
  ) {
    super('MODEL_DIRECTORY_NOT_FOUND', message, details);
    this.directory = directory;
    this.pattern = details.pattern;
    this.found = details.found ?? [];
  }
}

/** A directory that is neither a LoRA adapter nor a fused model. */
export class InvalidModelStructureError extends ArtifactUploaderError {
  override name = 'InvalidModelStructureError';
  /** The model directory. */
  readonly directory: string;
  /** Files missing for each expected layout, keyed by layout name. */
  readonly missing: Record<string, string[]>;
  constructor(directory: string, message: string, details: { missing?: Record<string, string[]> } & ErrorOptions = {}) {
    super('INVALID_MODEL_STRUCTURE', message, details);
    this.directory = directory;
    this.missing = details.missing ?? {};
  }
}

/** A safetensors file whose header or layout is corrupt. */
export class SafetensorsError extends ArtifactUploaderError {
  override name = 'SafetensorsError';
  /** The file. */
  readonly path: string;
  /** What is wrong with it, without the path (e.g. `header length 4096 is larger than the file (100 bytes)`). */
  readonly reason: string;
  constructor(path: string, message: string, options: { reason?: string } & ErrorOptions = {}) {
    super('SAFETENSORS_INVALID', message, options);
    this.path = path;
    this.reason = options.reason ?? message;
  }
}

/**
 * A model failed validation before publishing. `report` is the full validation report
 * (see `validateModelArtifacts`).
 */
export class ModelValidationError extends ArtifactUploaderError {
  override name = 'ModelValidationError';
  /** The validation report that failed. */
  readonly report: unknown;
  /** The model directory. */
  readonly directory: string;
  constructor(directory: string, errors: string[], report: unknown, options: ErrorOptions = {}) {
    // Each error is a sentence already; a second period read `adapters/).. Run ...`.
    super('MODEL_INVALID', endSentence(`Model in ${directory} failed validation: ${errors.slice(0, 5).join('; ')}${errors.length > 5 ? '; ...' : ''}`), {
      hint: 'Run `artifact-uploader validate <dir>` for the full report and fix the listed problems before publishing.',
      ...options,
    });
    this.report = report;
    this.directory = directory;
  }
}

/** MLX → PEFT conversion could not be done (e.g. a fused model, an unknown key layout). */
export class ConversionError extends ArtifactUploaderError {
  override name = 'ConversionError';
  /** The input directory. */
  readonly directory: string;
  constructor(directory: string, message: string, options: ErrorOptions = {}) {
    super('CONVERSION_FAILED', message, options);
    this.directory = directory;
  }
}

// ───────────────────────────── Hugging Face Hub ─────────────────────────────

/** A Hub call failed (after retries where retrying was safe). */
export class HubError extends RemoteError {
  override name = 'HubError';
  /** HTTP status, when the Hub answered. */
  readonly status?: number;
  /** The Hub's `X-Error-Code`, when it sent one. */
  readonly hubErrorCode?: string;
  /**
   * Set when a publish failed after its commit request was sent, so that the commit may be on
   * the Hub: publishing again with this as `idempotencyKey` finds it instead of committing twice.
   */
  readonly publishId?: string;
  /**
   * `true` when the publish that failed had created the repo (it did not exist before) and
   * failed before its commit was known to be on the Hub: the repo is left behind, and the hint
   * says whether it is still empty. Publishing again reuses it. Unset otherwise, also when the
   * create's answer was lost and its retry found the repo (see `PublishResult.repoCreated`).
   */
  readonly repoCreated?: boolean;
  constructor(
    message: string,
    details: { status?: number; hubErrorCode?: string; method?: string; url?: string; publishId?: string; repoCreated?: boolean } & ErrorOptions = {},
  ) {
    super('HUB_ERROR', message, details);
    this.status = details.status;
    this.hubErrorCode = details.hubErrorCode;
    this.publishId = details.publishId;
    this.repoCreated = details.repoCreated;
  }
}

/** Publishing to the public Hub from inside a test run was refused. */
export class PublicHubInTestError extends ArtifactUploaderError {
  override name = 'PublicHubInTestError';
  /** What gave the test runner away (e.g. `VITEST`, `NODE_ENV=test`). */
  readonly detectedBy: string;
  constructor(detectedBy: string, options: ErrorOptions = {}) {
    super(
      'PUBLIC_HUB_IN_TEST',
      `Refusing to publish to the public Hugging Face Hub from a test run (detected: ${detectedBy}).`,
      {
        hint: 'Point hubUrl (or HF_ENDPOINT) at a local Hub, or pass allowPublicHubInTests: true if this is really intended.',
        ...options,
      },
    );
    this.detectedBy = detectedBy;
  }
}
