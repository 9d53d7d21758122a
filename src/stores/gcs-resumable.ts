/**
 * GCS resumable uploads over the JSON API (https://cloud.google.com/storage/docs/resumable-uploads),
 * the protocol `google-resumable-media` speaks for `google-cloud-storage`:
 *
 * 1. `POST /upload/storage/v1/b/<bucket>/o?uploadType=resumable` with the object's metadata
 *    answers with the session URI (`Location`).
 * 2. Each chunk is a `PUT <session URI>` with `Content-Range: bytes <first>-<last>/<size>`;
 *    GCS answers `308 Resume Incomplete` with `Range: bytes=0-<last persisted>` (no `Range`:
 *    nothing persisted yet), and `200`/`201` with the object once the last byte is in.
 * 3. `PUT <session URI>` with `Content-Range: bytes *\/<size>` and no body asks how far the
 *    session got, from any process: that is how an upload resumes after a crash.
 * 4. `DELETE <session URI>` cancels the session (GCS answers `499`); nothing is ever visible at
 *    the object's name before the last chunk.
 *
 * Every chunk streams from its byte range of the file (1 MiB reads, re-opened for a retry), so
 * memory does not depend on the chunk size; each chunk is retried on its own by the caller's
 * {@link GcsRequester}, after a status query (3.) that says where the session stands.
 *
 * @module
 */
import { stat } from 'node:fs/promises';
import { InvalidResponseError, LocalPathError } from '../core/errors.js';
import type { HttpRequest, HttpResponse } from '../core/http.js';
import type { FileSnapshot } from '../core/source-snapshot.js';
import { GCS_CHUNK_MULTIPLE } from './gcs-config.js';

/**
 * A resumable upload session: what a crash-resume journal keeps to continue the upload in
 * another process (`GcsArtifactStore.uploadFile`'s `resumeSession`). The URI is a bearer
 * capability for this one upload (no other credentials are needed to write to it) until GCS
 * expires it, a week after it was created: keep it where only the user can read it.
 */
export interface GcsResumableSession {
  /** The session URI (`Location` of the initiating request). */
  uri: string;
  /** Bucket of the object. */
  bucket: string;
  /** Object name (full key, artifact root included). */
  name: string;
  /** Size of the object the session was created for, in bytes. */
  size: number;
  /** When the session was created (ms since the epoch). GCS keeps sessions for 7 days. */
  createdAt: number;
}

/** What a status query learned about a session (see `queryResumableSession`). */
export type GcsSessionStatus =
  /** GCS has the first `offset` bytes; the rest is still to send. */
  | { state: 'incomplete'; offset: number }
  /** The upload finished (the last chunk arrived, maybe in the process that crashed). */
  | { state: 'complete'; object: GcsObjectResource }
  /** The session expired or was cancelled: start a new one. */
  | { state: 'gone' };

/** The fields of a GCS object resource this library reads. */
export interface GcsObjectResource {
  name?: string;
  bucket?: string;
  /** Decimal string, as the JSON API sends it. */
  size?: string;
  contentType?: string;
  md5Hash?: string;
  crc32c?: string;
}

/** What a {@link GcsRequester} sends a request for: the operation and object, for messages. */
export interface GcsRequestContext<T> {
  operation: string;
  name: string;
  /**
   * Called before each retried attempt (not before the first): an answer that stands for the
   * attempt, or `undefined` to send the request again. `sendOnce` sends one request within the
   * attempt, without retries of its own (its failure fails the attempt, which the policy may
   * retry). A resumable chunk asks GCS here how far the session got, since the failed attempt
   * may have reached it. @default none (the request is sent again)
   */
  beforeRetry?: (sendOnce: <U>(req: HttpRequest) => Promise<HttpResponse<U>>) => Promise<HttpResponse<T> | undefined>;
}

/**
 * Sends one JSON API request with credentials, under the shared retry policy (each call is
 * retried on its own), and turns error answers into typed errors. A `308 Resume Incomplete`
 * is not an error: it comes back as a response with `status: 308`.
 */
export interface GcsRequester {
  send<T>(req: HttpRequest, context: GcsRequestContext<T>): Promise<HttpResponse<T>>;
}

/** The file a resumable upload reads from. */
export interface ResumableSource {
  path: string;
  /** Bytes to send: the size stat'ed before the upload. */
  size: number;
  /** The file when its upload started: a chunk that fails while it differs is `SOURCE_CHANGED`. */
  snapshot?: FileSnapshot;
  /** Sees each chunk read for sending, with its position in the file (the store hashes the file with it). */
  onRead?: (chunk: Buffer, position: number) => void;
}

/**
 * Starts a resumable upload of `size` bytes to `bucket/name` and returns its session.
 *
 * @example
 * ```ts
 * const session = await createResumableSession(requester, 'https://storage.googleapis.com', { bucket, name, size, contentType: 'application/json' });
 * ```
 */
export async function createResumableSession(
  requester: GcsRequester,
  apiEndpoint: string,
  object: { bucket: string; name: string; size: number; contentType: string },
  signal?: AbortSignal,
): Promise<GcsResumableSession> {
  const url = `${apiEndpoint}/upload/storage/v1/b/${encodeURIComponent(object.bucket)}/o?uploadType=resumable`;
  const response = await requester.send<unknown>(
    {
      method: 'POST',
      url,
      headers: {
        'content-type': 'application/json; charset=UTF-8',
        'x-upload-content-type': object.contentType,
        'x-upload-content-length': String(object.size),
      },
      body: JSON.stringify({ name: object.name, contentType: object.contentType }),
      responseType: 'none',
      signal,
    },
    { operation: 'resumable upload start', name: object.name },
  );
  const location = response.headers.location;
  if (!location) {
    throw new InvalidResponseError(`GCS answered the start of a resumable upload of gs://${object.bucket}/${object.name} without a session URI (Location header).`, {
      method: 'POST',
      url,
    });
  }
  return { uri: new URL(location, apiEndpoint).toString(), bucket: object.bucket, name: object.name, size: object.size, createdAt: Date.now() };
}

/**
 * Asks GCS how far a session got (`Content-Range: bytes *\/<size>`). Works from any process
 * that has the session URI.
 *
 * @example
 * ```ts
 * const status = await queryResumableSession(requester, session);
 * if (status.state === 'incomplete') console.log(`GCS has ${status.offset} bytes`);
 * ```
 */
export async function queryResumableSession(requester: GcsRequester, session: GcsResumableSession, signal?: AbortSignal): Promise<GcsSessionStatus> {
  return sessionStatus(() => requester.send<GcsObjectResource>(statusRequest(session, signal), { operation: 'resumable upload status', name: session.name }));
}

/** The status query of `session` (`Content-Range: bytes *\/<size>`, no body). */
function statusRequest(session: GcsResumableSession, signal: AbortSignal | undefined): HttpRequest {
  return { method: 'PUT', url: session.uri, headers: { 'content-range': `bytes */${session.size}` }, body: Buffer.alloc(0), responseType: 'json', signal };
}

/** What the answer to a status query (sent by `query`) says of the session. */
async function sessionStatus(query: () => Promise<HttpResponse<GcsObjectResource>>): Promise<GcsSessionStatus> {
  let response: HttpResponse<GcsObjectResource>;
  try {
    response = await query();
  } catch (error) {
    if (isSessionGone(error)) return { state: 'gone' };
    throw error;
  }
  if (response.status === 308) return { state: 'incomplete', offset: persistedBytes(response.headers.range) };
  return { state: 'complete', object: response.body };
}

/**
 * Sends `source` from byte `offset` to the end, one chunk per request, and returns the object
 * GCS made. `onProgress` gets the bytes of the file GCS has or is being sent (it goes back when
 * a chunk is retried). `beforeLastChunk` is awaited before each attempt at the chunk that ends
 * the file, which makes the object: what must hold before the object exists (its rejection
 * stops the upload with nothing made).
 */
export async function sendResumableChunks(
  requester: GcsRequester,
  session: GcsResumableSession,
  source: ResumableSource,
  offset: number,
  chunkSize: number,
  options: { signal?: AbortSignal; onProgress?: (loaded: number) => void; beforeLastChunk?: () => Promise<void> } = {},
): Promise<GcsObjectResource> {
  let stalls = 0;
  for (;;) {
    const length = Math.min(chunkSize, source.size - offset);
    if (length <= 0) {
      // Every byte is in but no answer said so (a lost response to the last chunk): ask.
      const status = await queryResumableSession(requester, session, options.signal);
      if (status.state === 'complete') return status.object;
      if (status.state === 'gone') throw sessionGoneError(session);
      if (status.offset >= source.size) throw new InvalidResponseError(`GCS has all ${source.size} bytes of gs://${session.bucket}/${session.name} but did not finish the upload.`);
      offset = status.offset;
      continue;
    }
    await assertStillLarge(source, offset + length);
    if (offset + length === source.size) await options.beforeLastChunk?.();
    const start = offset;
    const response = await requester.send<GcsObjectResource>(
      {
        method: 'PUT',
        url: session.uri,
        headers: { 'content-range': `bytes ${start}-${start + length - 1}/${source.size}` },
        body: { kind: 'file', path: source.path, start, length, snapshot: source.snapshot, onRead: source.onRead },
        responseType: 'json',
        signal: options.signal,
        onUploadProgress: (loaded) => options.onProgress?.(start + loaded),
      },
      {
        operation: 'resumable upload chunk',
        name: session.name,
        // The failed attempt may have reached GCS (its answer lost, or the connection reset
        // after GCS kept part of the chunk): sent again as it was, GCS refuses it (400, its
        // start is not the session's offset), and after the last chunk the object exists. So
        // GCS is asked first, as its resumable protocol says (and the Node SDK does), and the
        // upload goes on from where it stands.
        beforeRetry: async (sendOnce): Promise<HttpResponse<GcsObjectResource> | undefined> => {
          const status = await sessionStatus(() => sendOnce<GcsObjectResource>(statusRequest(session, options.signal)));
          if (status.state === 'complete') return { status: 200, headers: {}, body: status.object };
          // Gone: the chunk sent again gets GCS's own answer (404/410), which says so. GCS keeps
          // an unfinished session's bytes in whole 256 KiB units (every chunk but the last is
          // made of them); an offset that is none, or not past the chunk's start, is not taken
          // as progress (the emulator answers `bytes=0-0` for a session that has nothing): the
          // chunk goes again as it was.
          if (status.state === 'gone' || status.offset <= start || status.offset % GCS_CHUNK_MULTIPLE !== 0) return undefined;
          const headers: Record<string, string> = status.offset > 0 ? { range: `bytes=0-${status.offset - 1}` } : {};
          return { status: 308, headers, body: {} };
        },
      },
    );
    if (response.status !== 308) return response.body;
    const next = persistedBytes(response.headers.range);
    // GCS may keep less than it was sent; the next chunk starts where it stopped.
    if (next <= offset) {
      if (++stalls >= 3) {
        throw new InvalidResponseError(`GCS kept no byte of three chunks in a row of gs://${session.bucket}/${session.name} (it stays at ${next} of ${source.size}).`);
      }
    } else {
      stalls = 0;
    }
    offset = next;
    options.onProgress?.(offset);
  }
}

/**
 * Cancels a session (`DELETE`, which GCS answers with `499`). Returns false when the server
 * cannot cancel sessions (the emulator answers `501`); a session that is already gone counts
 * as cancelled.
 */
export async function cancelResumableSession(requester: GcsRequester, session: GcsResumableSession, signal?: AbortSignal): Promise<boolean> {
  try {
    await requester.send({ method: 'DELETE', url: session.uri, body: Buffer.alloc(0), responseType: 'none', signal }, { operation: 'resumable upload cancel', name: session.name });
    return true;
  } catch (error) {
    const status = (error as { status?: unknown }).status;
    if (status === 499 || isSessionGone(error)) return true;
    if (status === 501 || status === 405) return false;
    throw error;
  }
}

/** `Range: bytes=0-<last>` → `last + 1`; no header → 0 (the session has not begun). */
export function persistedBytes(range: string | undefined): number {
  if (!range) return 0;
  const match = /^bytes=0-(\d+)$/.exec(range.trim());
  if (!match?.[1]) throw new InvalidResponseError(`GCS answered a resumable upload with an unexpected Range header "${range}" (expected bytes=0-<end>).`);
  return Number(match[1]) + 1;
}

/** 404 and 410 on a session URI: expired, cancelled, or finished and forgotten. */
export function isSessionGone(error: unknown): boolean {
  const status = (error as { status?: unknown }).status;
  return status === 404 || status === 410;
}

function sessionGoneError(session: GcsResumableSession): InvalidResponseError {
  return new InvalidResponseError(`The resumable upload session of gs://${session.bucket}/${session.name} expired or was cancelled while it was in use.`);
}

/** A file that shrank under us fails as a local problem, not as a short request GCS refuses. */
async function assertStillLarge(source: ResumableSource, end: number): Promise<void> {
  let size: number;
  try {
    size = (await stat(source.path)).size;
  } catch (cause) {
    throw new LocalPathError('PATH_UNREADABLE', source.path, `${source.path} could not be read again while it was being uploaded.`, { cause });
  }
  if (size < end) {
    throw new LocalPathError('PATH_UNREADABLE', source.path, `${source.path} shrank while it was being uploaded (${source.size} bytes expected, it now has ${size}).`, {
      hint: 'Upload files once they are complete (e.g. after the checkpoint is written).',
    });
  }
}
