/**
 * The `ArtifactStore` interface: where a run's artifacts go. One implementation per file in
 * this folder (`mlflow-artifacts-store.ts`, `local-file-store.ts`, ...), each exporting an
 * {@link ArtifactStoreFactory} that `resolve.ts` registers by URI scheme, as MLflow's
 * `artifact_repository_registry.py` does. Adding a store is one file plus one line there.
 *
 * @module
 */
import type { Env } from '../core/env.js';
import { InvalidArgumentError } from '../core/errors.js';
import { redact, type Logger } from '../core/logger.js';
import type { RetryEvent } from '../core/retry.js';
import type { FileSnapshot } from '../core/source-snapshot.js';
import type { MlflowConnection } from '../mlflow/connection.js';
import { assertArtifactPath, invalidArtifactPathError, joinArtifactPath, type ArtifactPathProblem } from '../mlflow/artifacts-api.js';
import type { AzureStoreOptions } from './azure-config.js';
import type { GcsStoreOptions } from './gcs-config.js';
import type { S3StoreOptions } from './s3-config.js';

/** Options of {@link ArtifactStore.uploadFile}. */
export interface UploadFileOptions {
  /**
   * Size the caller expects (from a plan). The file is stat'ed again before upload and its
   * current size wins; a difference is logged as a warning.
   */
  size?: number;
  /** Cancels the upload; a multipart upload is aborted on the server too. */
  signal?: AbortSignal;
  /**
   * Bytes of this file sent so far. It can go back down when an attempt is retried (the
   * retried bytes are counted again).
   */
  onProgress?: (loaded: number) => void;
  /** Called before each retried request of this file (single PUT or any part). */
  onRetry?: (event: RetryEvent) => void;
  /**
   * Part-level resume, for stores whose multipart protocol can list what the server holds
   * (`s3://` parts, Azure uncommitted blocks; `gs://` keeps its session as a token). Stores
   * without it ignore the field (they resume at file level only, which the
   * uploader does without them).
   */
  resume?: MultipartResume;
  /**
   * The file when its upload started ({@link snapshotFile}). A request that fails while the file
   * no longer matches it throws `SourceChangedError` (no retries), and a store that can keeps
   * nothing of it. @default none (no check)
   */
  snapshot?: FileSnapshot;
}

/** What {@link ArtifactStore.uploadFile} did. */
export interface UploadFileResult {
  /** Bytes stored (the file's size). */
  bytes: number;
  /** 1 + the number of retried requests for this file (all parts and calls together). */
  attempts: number;
  /** True when the bytes went through the server's multipart upload. */
  multipart: boolean;
  /** Bytes not sent because parts of an earlier attempt's multipart upload were reused (part-level resume). @default 0 */
  bytesReused?: number;
  /**
   * sha256 (hex) of the file's bytes as they were read for sending, each byte hashed once:
   * from the one buffer or stream of a single request, and in file order from the parts of a
   * multipart upload (parts an earlier process stored are read locally to be hashed). Every
   * built-in store reports it; `undefined` only from stores that do not hash.
   */
  sha256?: string;
  /**
   * `checksum` when the store checked the stored bytes against a checksum computed from the
   * bytes read, refusing a mismatch (S3's `x-amz-checksum-*`, Azure's `Content-MD5`), or
   * reported one that was compared with ours (GCS's `md5Hash`, S3's object checksum).
   * `undefined`: the store checked nothing beyond the byte count (the uploader's listing then
   * compares the size). See docs/integrity.md.
   */
  verified?: 'checksum';
  /**
   * The checksum that was checked, `<algorithm>:<value>` as the store spells it, e.g.
   * `sha256:<base64>`, `crc32:<base64>-3` (an S3 multipart object: a checksum of its 3 parts'
   * checksums), `md5:<base64>`; set with {@link verified}.
   */
  checksum?: string;
  /**
   * Set when the bytes were stored whole but the source's permission bits and times could not
   * be kept, because the destination's file system refused them (a `file:` store on a CIFS/SMB
   * or NFS mount: EPERM, ENOTSUP, ENOSYS, EINVAL): the refusal, e.g.
   * `EPERM: operation not permitted, fchmod`. The uploader warns once per call.
   * @default undefined (kept, or nothing to keep)
   */
  attributesNotKept?: string;
}

/** One entry of a store listing. */
export interface ArtifactEntry {
  /** Path relative to the run's artifact root, POSIX separators (e.g. `model/weights.bin`). */
  path: string;
  isDir: boolean;
  /**
   * Size in bytes, for files when the store knows it. MLflow's proxy leaves the size out for
   * empty files (on its wire 0 and "unknown" look the same), so treat `undefined` as unknown.
   */
  size?: number;
}

/**
 * Where a run's artifacts are written. Implementations stream from disk (memory stays bounded
 * whatever the file size), validate artifact paths before any I/O, and throw the library's
 * typed errors.
 *
 * @example
 * ```ts
 * const store = resolveArtifactStore(run.info.artifactUri, { connection });
 * const { bytes, multipart } = await store.uploadFile('out/model.onnx', 'model/model.onnx');
 * const entries = await store.list('model'); // [{ path: 'model/model.onnx', isDir: false, size: 1234 }]
 * ```
 */
export interface ArtifactStore {
  /** Which implementation this is, e.g. `mlflow-artifacts` or `file`. */
  readonly kind: string;
  /** The run's artifact root URI the store was made for (credentials removed). */
  readonly artifactUri: string;
  /**
   * Uploads one local file to `artifactPath`, a relative destination file path under the
   * artifact root (e.g. `checkpoints/step-100/model.safetensors`). Overwrites an existing
   * artifact of that name, as MLflow does.
   */
  uploadFile(localPath: string, artifactPath: string, options?: UploadFileOptions): Promise<UploadFileResult>;
  /**
   * Refuses the artifact paths this store cannot hold under the name it would give them (the
   * artifact root's prefix, then the path): an object name over the store's length limit. Throws
   * one `LocalPathError` `INVALID_ARTIFACT_PATH` naming every such path, with its name's length
   * and the limit; sends nothing. The uploader calls it with every path of an operation before
   * the first byte of any file is sent (a directory goes up whole or not at all), and
   * `uploadFile` checks its own path before reading the file. Stores whose names have no limit
   * beyond the artifact path rules leave it out.
   *
   * @example
   * ```ts
   * store.checkArtifactPaths?.(['model/model.safetensors', 'model/config.json']);
   * ```
   */
  checkArtifactPaths?(artifactPaths: readonly string[]): void;
  /**
   * Removes one stored file (used to take back a file whose source changed during its upload).
   * Stores that cannot delete leave it out.
   */
  delete?(artifactPath: string, options?: { signal?: AbortSignal }): Promise<void>;
  /**
   * Gives up an upload an earlier process started at `artifactPath` and that nobody will
   * continue (its local file was deleted before the rerun): aborts the multipart upload
   * `earlier.previous` names, or cancels the session `earlier.token` holds, so that its parts
   * are not left billed on the object store. Never throws (the journal never makes an upload
   * fail), and says nothing itself: it returns what became of the upload, and the caller says
   * that in its own context (a rerun, `resume clear`). Stores that keep nothing to give up
   * (uncommitted Azure blocks expire on their own) leave it out.
   *
   * @example
   * ```ts
   * declare const earlier: EarlierUpload; // a journal record's upload
   * const outcome = await store.abandonUpload?.('checkpoint/model.safetensors', earlier);
   * if (outcome?.status === 'left') console.warn(outcome.reason);
   * ```
   */
  abandonUpload?(artifactPath: string, earlier: EarlierUpload, options?: { signal?: AbortSignal }): Promise<AbandonedUpload>;
  /**
   * Lists the entries directly inside `artifactDir` (the root when omitted), with paths
   * relative to the artifact root, sorted by path. A missing directory gives `[]`.
   */
  list(artifactDir?: string, options?: { signal?: AbortSignal }): Promise<ArtifactEntry[]>;
  /** One line for logs and `--json` output: where the bytes go and how. */
  describe(): string;
  /**
   * Releases what the store holds open of its own (an SDK client, its keep-alive sockets); the
   * store is not used after. The uploader calls it from `close()` on the stores it made. Stores
   * that hold nothing of their own (they use the tracking connection's) leave it out.
   *
   * @example
   * ```ts
   * await store.close?.();
   * ```
   */
  close?(): Promise<void>;
}

/**
 * Settings of particular stores, given by the caller (the uploader's options, or
 * `resolveArtifactStore`'s) and passed through to every store factory as they are. A store
 * with settings of its own adds its field here.
 */
export interface StoreOptions {
  /** Multipart settings of the MLflow artifact proxy. @default from MLflow's env vars */
  multipart?: MultipartOptions;
  /** Settings of `s3://` artifact roots (endpoint, credentials, part size). @default from MLflow's MLFLOW_S3_* env vars */
  s3?: S3StoreOptions;
  /** Settings of `gs://` artifact roots (chunk size, endpoint, credentials file). @default from MLFLOW_GCS_UPLOAD_CHUNK_SIZE, STORAGE_EMULATOR_HOST, ... */
  gcs?: GcsStoreOptions;
  /**
   * Settings of `wasbs://` and `abfss://` artifact roots (credentials, block size, concurrency,
   * request timeout).
   * @default from AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCESS_KEY, AZURE_STORAGE_SAS_TOKEN (in MLflow's order), then `DefaultAzureCredential`; MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT
   */
  azure?: AzureStoreOptions;
}

/** What a store factory is given: the caller's {@link StoreOptions}, and what every store runs with. */
export interface ArtifactStoreContext extends StoreOptions {
  /** The tracking connection the run came from. */
  connection: MlflowConnection;
  /** Environment to read (multipart env vars, ...). */
  env: Env;
  logger: Logger;
  /** Labels of every registered store, for error messages that list what is supported. */
  supported: readonly string[];
}

/** Creates a store for the URI schemes it claims. Exported by each store file. */
export interface ArtifactStoreFactory {
  /** Lower-case schemes without the colon (`mlflow-artifacts`, `https`); `''` means a plain path. */
  readonly schemes: readonly string[];
  /** How the scheme list reads in an error message, e.g. `file: (local paths)`. */
  readonly label: string;
  create(artifactUri: string, context: ArtifactStoreContext): ArtifactStore;
}

/**
 * Multipart upload settings for stores that support it (the MLflow artifacts proxy).
 * Unset fields come from MLflow's env vars, then the defaults below.
 */
export interface MultipartOptions {
  /**
   * Use the proxy's multipart upload for files at or above `thresholdBytes`. MLflow's own
   * default is off; ours is on, because a server that cannot do it answers 501 and we fall
   * back to one PUT (once per store), while one that can uploads parts in parallel straight
   * to the object store, skipping the tracking server.
   * @default MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD, else true
   */
  enabled?: boolean;
  /**
   * Smallest file, in bytes, that goes multipart.
   * @default MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE, else 524288000 (500 MiB)
   */
  thresholdBytes?: number;
  /**
   * Part size in bytes. S3 needs at least 5 MiB for every part but the last. Grown
   * automatically when a file would need more than 10,000 parts (S3's limit).
   * @default MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE, else 10485760 (10 MiB)
   */
  chunkBytes?: number;
  /**
   * Parts of one file in flight at the start. Each is read whole into a buffer of its own,
   * reused for the next part, and sent (and re-sent on retry) from there, while the file's
   * in-order sha256 is taken from the same buffers: memory per file is `partConcurrency ×
   * chunkBytes` (40 MiB with the defaults), as for `s3://` parts. Left unset, the number adapts:
   * it starts at 4 and grows by half (up to `maxPartConcurrency`, 16 by default) while more
   * parts in flight bring more throughput (an object store a region away, where each part waits
   * round trips), steps back when a step brings nothing (loopback), and halves on a 429 or 503.
   * Buffers beyond `partConcurrency` come from a budget shared by every file of the process,
   * 128 MiB in all. A value you set is kept fixed, unless you also set `maxPartConcurrency`.
   * @default 4 (adaptive)
   */
  partConcurrency?: number;
  /**
   * The most parts of one file in flight the adaptive number may grow to, from
   * `partConcurrency`. Set it equal to `partConcurrency` to pin the number; buffers beyond
   * `partConcurrency` always stay within the process-wide part-buffer budget (128 MiB).
   * @default 16 when `partConcurrency` is unset; else `partConcurrency` (fixed)
   */
  maxPartConcurrency?: number;
  /**
   * Rewrites each presigned part URL before use. For servers that sign URLs with a host name
   * this machine reaches by another name (containers, tunnels) and object stores that do not
   * sign the host; S3 with SigV4 does sign it, so leave this unset there.
   * @default identity
   */
  rewritePartUrl?: (url: string) => string;
}

/**
 * Lists every file under `artifactDir` (the root when omitted), depth first, sorted by path.
 *
 * @example
 * ```ts
 * const files = await listArtifactsRecursive(store, 'model');
 * const total = files.reduce((n, f) => n + (f.size ?? 0), 0);
 * ```
 */
export async function listArtifactsRecursive(
  store: Pick<ArtifactStore, 'list'>,
  artifactDir?: string,
  options: { signal?: AbortSignal } = {},
): Promise<ArtifactEntry[]> {
  const out: ArtifactEntry[] = [];
  const walk = async (dir: string | undefined): Promise<void> => {
    for (const entry of await store.list(dir, options)) {
      if (entry.isDir) await walk(entry.path);
      else out.push(entry);
    }
  };
  await walk(artifactDir === undefined || artifactDir === '' ? undefined : joinArtifactPath(artifactDir));
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** A part of a multipart upload the store confirmed. */
export interface StoredPart {
  /** 1-based part number. */
  partNumber: number;
  /** Bytes in the part. */
  size: number;
  /** The ETag the store answered. */
  etag?: string;
  /** The checksum the store answered (`<algorithm>:<base64>`, e.g. `crc32:AAAAAA==`), when there is one. */
  checksum?: string;
}

/** A multipart upload an earlier attempt started, as the journal recorded it. */
export interface PreviousMultipartUpload {
  uploadId: string;
  /** Its part size: parts are reusable only at the same size. */
  partSize: number;
  /** Parts recorded as done. */
  parts: StoredPart[];
}

/**
 * How long after an attempt marked that it was creating a multipart upload the upload it created
 * may have been initiated: the create's attempts and the waits between them (minutes with
 * MLflow's retry settings), with a wide margin for a slow request timeout and the two machines'
 * clocks. A rerun right after a kill cuts at its takeover anyway; this bounds a give-up days
 * later (an expired record, `resume clear`), where "initiated before now" would take in the live
 * upload another process is sending to the same key at that moment.
 */
export const LOST_UPLOAD_WINDOW_MS = 24 * 60 * 60 * 1000;

/** An upload an earlier attempt may have created without recording its id: see {@link MultipartResume.lostUpload}. */
export interface LostUpload {
  /** Epoch ms this attempt took the earlier attempt's record over: an upload initiated since is another process's. */
  takenOverAt: number;
  /** Epoch ms the earlier attempt marked that it was creating the upload (`undefined` when not known). */
  markedAt?: number | undefined;
}

/**
 * The latest time (epoch ms, this machine's clock) the lost upload can have been initiated:
 * the takeover, or {@link LOST_UPLOAD_WINDOW_MS} after the mark, whichever is earlier.
 *
 * @example
 * ```ts
 * lostUploadCut({ takenOverAt: Date.now(), markedAt: record.creatingMultipart });
 * ```
 */
export function lostUploadCut(lost: LostUpload): number {
  return lost.markedAt === undefined ? lost.takenOverAt : Math.min(lost.takenOverAt, lost.markedAt + LOST_UPLOAD_WINDOW_MS);
}

/**
 * The part-level resume hooks of one file upload (see {@link UploadFileOptions.resume}). The
 * uploader's journal step implements them; a store that supports part-level resume:
 * - continues `previous` when it may (`reuse`, same part size, the server still has it): it asks
 *   the server which parts it holds and re-sends those missing or not matching `previous.parts`;
 * - otherwise aborts `previous` on the server (an upload nobody will complete is an orphan), and
 *   starts a new one;
 * - reports each new upload with `started`, each confirmed part with `partDone`, and an upload it
 *   aborted with `aborted`. The hooks never throw.
 */
export interface MultipartResume {
  /** An earlier attempt's multipart upload of this file. */
  previous?: PreviousMultipartUpload;
  /** False when `previous` must not be continued (the local file changed, or resume is off): abort it. */
  reuse: boolean;
  /**
   * Set when an earlier attempt died while creating a multipart upload of this file, before it
   * recorded the upload's id (the answer was lost with the process): a store that can list the
   * uploads in progress under the file's key aborts those it does not continue that were
   * initiated before `takenOverAt` (epoch ms, when this attempt took the record over), not one
   * that another process sending the same file at the same moment (without the journal) started;
   * nor one initiated more than a day after `markedAt` (epoch ms, when the dead attempt marked
   * the creation), which that attempt cannot have created ({@link lostUploadCut}).
   */
  lostUpload?: LostUpload;
  /** A new multipart upload is about to be created (recorded first, for {@link lostUpload}). */
  creating?(): Promise<void>;
  started(uploadId: string, partSize: number): Promise<void>;
  partDone(part: StoredPart): Promise<void>;
  aborted(uploadId: string): Promise<void>;
  /**
   * A store-specific token an earlier attempt saved (e.g. a GCS resumable session): a store
   * reads only its own (`store` is its `kind`), continues it when `reuse` is true, and cancels it
   * otherwise.
   */
  token?: StoreResumeToken;
  /** Saves the store-specific token of the upload in progress (the journal keeps it until the file is done). */
  saveToken(token: StoreResumeToken): Promise<void>;
  /**
   * True when the journal holds the upload in progress (its upload id or token was written):
   * an upload stopped by the caller's signal (SIGINT/SIGTERM) is then left on the server for the
   * rerun to continue, instead of being aborted. A failure, a deadline, or no record: aborted.
   * @default () => false
   */
  onRecord?(): boolean;
}

/**
 * The hooks of `resume` for a file that starts over after its earlier attempt's upload was given
 * up in the middle of the upload (a kept part or byte range turned out not to be this file's):
 * the same journal record, with no earlier upload or token left to continue or cancel.
 *
 * @example
 * ```ts
 * await multipartUpload(upload, { ...options, resume: startingOver(resume) });
 * ```
 */
export function startingOver(resume: MultipartResume): MultipartResume {
  return {
    reuse: false,
    creating: () => resume.creating?.() ?? Promise.resolve(),
    started: (uploadId, partSize) => resume.started(uploadId, partSize),
    partDone: (part) => resume.partDone(part),
    aborted: (uploadId) => resume.aborted(uploadId),
    saveToken: (token) => resume.saveToken(token),
    onRecord: () => resume.onRecord?.() === true,
  };
}

/**
 * What {@link ArtifactStore.abandonUpload} did with an earlier upload: `abandoned` (aborted,
 * cancelled, or already gone), or `left` on the store, with `reason` saying what is left, why
 * (redacted), and what removes it (a lifecycle rule, an expiry), and `cause`, the error of the
 * request that failed, when one did (a caller tells a refusal, 401 or 403, from it).
 */
export type AbandonedUpload = { status: 'abandoned' } | { status: 'left'; reason: string; cause?: unknown };

/**
 * An upload an earlier process started and left, as its journal record names it (see
 * {@link ArtifactStore.abandonUpload}): a store reads the fields it knows.
 */
export interface EarlierUpload {
  /** Its multipart upload (`s3://`, the MLflow proxy's `mpu/create`). */
  previous?: PreviousMultipartUpload;
  /** Its store-specific token (a GCS resumable session); a store reads only its own (`store` is its `kind`). */
  token?: StoreResumeToken;
  /**
   * Set when it died while creating a multipart upload, before it recorded the id: a store that
   * can list the uploads in progress under the key gives up those initiated before
   * `takenOverAt` (epoch ms) and not later than a day after `markedAt`, as for
   * {@link MultipartResume.lostUpload}.
   */
  lostUpload?: LostUpload;
}

/** A store-specific way to pick an upload up again: `store` is the store's `kind`, `value` JSON it defines. */
export interface StoreResumeToken {
  store: string;
  value: unknown;
}

/**
 * Splits `<scheme>://bucket/path` into the bucket and the key prefix of the artifact root, as
 * MLflow's `parse_s3_compliant_uri` and `parse_gcs_uri` do (the path is taken as-is, not
 * percent-decoded). One parser for every bucket store (`s3://`, `gs://`).
 *
 * @example
 * ```ts
 * parseBucketUri('s3://ml/direct/1/abc/artifacts', 's3', 'an S3'); // { bucket: 'ml', rootKey: 'direct/1/abc/artifacts' }
 * ```
 * @internal
 */
export function parseBucketUri(uri: string, scheme: string, what: string): { bucket: string; rootKey: string } {
  const match = new RegExp(`^${scheme}://([^/?#]+)(/[^?#]*)?$`, 'i').exec(uri.trim());
  if (!match?.[1]) {
    throw new InvalidArgumentError('artifactUri', `${redact(uri)} is not ${what} URI; expected ${scheme}://<bucket>/<path>.`);
  }
  return { bucket: match[1], rootKey: joinArtifactPath(match[2] ?? '') };
}

/**
 * The key prefixes a listing of `artifactDir` needs in a store whose keys are
 * `<rootPath>/<artifact path>`: `prefix` of the listed directory's keys and `rootPrefix` to strip
 * from them (both `''` or ending in `/`). Checks `artifactDir` first.
 *
 * @example
 * ```ts
 * listingPrefixes('mlflow/1/r/artifacts', 'model'); // { prefix: 'mlflow/1/r/artifacts/model/', rootPrefix: 'mlflow/1/r/artifacts/' }
 * ```
 * @internal
 */
export function listingPrefixes(rootPath: string, artifactDir: string | undefined): { prefix: string; rootPrefix: string } {
  const dir = artifactDir ? joinArtifactPath(artifactDir) : '';
  if (dir) assertArtifactPath(dir);
  const base = joinArtifactPath(rootPath, dir);
  return { prefix: base ? `${base}/` : '', rootPrefix: rootPath ? `${rootPath}/` : '' };
}

/** The longest object name a store accepts, and how the store counts its length. */
export interface ObjectNameLimit {
  /** What the store calls its object names, for messages (`S3 key`, `GCS object name`, `Azure blob name`). */
  name: string;
  /** The most units a name may have. */
  max: number;
  /**
   * `bytes`: the bytes of the name's UTF-8 (S3, GCS); `characters`: the string's length, as the
   * service counts it (Azure Storage, 1,024 characters).
   */
  unit: 'bytes' | 'characters';
}

/**
 * `name`'s length in `unit`s, as a store or a file system counts it: the bytes of its UTF-8, or
 * the string's UTF-16 units.
 *
 * @example
 * ```ts
 * nameLength('caf\u00e9', 'bytes'); // 5
 * nameLength('caf\u00e9', 'characters'); // 4
 * ```
 * @internal
 */
export function nameLength(name: string, unit: ObjectNameLimit['unit']): number {
  return unit === 'bytes' ? Buffer.byteLength(name, 'utf8') : name.length;
}

/**
 * The first name (file or directory: a `/`-separated segment) of `path` longer than `max`
 * `unit`s, with its length; `undefined` when none is. What a file system refuses with
 * `ENAMETOOLONG`: the `file:` store's own, or that of a server whose artifact store is a
 * local directory.
 *
 * @example
 * ```ts
 * overlongName(`trials/${'x'.repeat(300)}/w.bin`, 255, 'bytes'); // { name: 'xxx...', length: 300 }
 * overlongName('trials/7/w.bin', 255, 'bytes'); // undefined
 * ```
 * @internal
 */
export function overlongName(path: string, max: number, unit: ObjectNameLimit['unit']): { name: string; length: number } | undefined {
  // Most paths are short enough not to be measured: a UTF-16 unit is at most 3 bytes of UTF-8.
  if (path.length <= max / 3) return undefined;
  for (const name of path.split('/')) {
    const length = nameLength(name, unit);
    if (length > max) return { name, length };
  }
  return undefined;
}

/**
 * Throws {@link ArtifactStore.checkArtifactPaths}' error for the paths whose object name
 * (`objectName(path)`: the root's prefix and the path) is longer than `limit`; the hint names
 * the first such path, its name's length and the limit. One helper for every bucket store.
 *
 * @example
 * ```ts
 * assertObjectNamesFit(['model/w.bin'], (path) => joinArtifactPath('mlflow/1/abc/artifacts', path), { name: 'S3 key', max: 1024, unit: 'bytes' });
 * ```
 * @internal
 */
export function assertObjectNamesFit(artifactPaths: readonly string[], objectName: (artifactPath: string) => string, limit: ObjectNameLimit): void {
  const tooLong: Array<ArtifactPathProblem & { length: number }> = [];
  for (const path of artifactPaths) {
    const name = objectName(path);
    // One UTF-16 unit is at most 3 bytes of UTF-8: most names are short enough not to be encoded.
    if (name.length <= limit.max / 3) continue;
    const length = nameLength(name, limit.unit);
    if (length > limit.max) tooLong.push({ path, length, reason: `is too long for the store: its ${limit.name} would be ${length} ${limit.unit} long (at most ${limit.max})` });
  }
  const first = tooLong[0];
  if (!first) return;
  const others = tooLong.length > 1 ? ` (and ${tooLong.length - 1} more, named in the message)` : '';
  throw invalidArtifactPathError(
    tooLong,
    'Artifact path',
    `The ${limit.name} of ${JSON.stringify(first.path)}${others} would be ${first.length} ${limit.unit} long${limit.unit === 'bytes' ? ' in UTF-8' : ''}, the artifact root's prefix included; ${limit.name}s hold at most ${limit.max}. Shorten the file's name or its directories' names, exclude it, or pass a shorter artifactPath.`,
  );
}
