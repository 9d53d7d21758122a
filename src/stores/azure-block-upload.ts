/**
 * The block-blob upload engine of the Azure stores, independent of the SDK: a file up to
 * `maxSinglePutSize` goes as one `Put Blob`; a larger one as staged blocks (`Put Block`),
 * `concurrency` in flight, each block retried on its own under the shared retry policy
 * (`core/retry.ts`), and a `Put Block List` once every block has arrived. Until that commit
 * nothing is visible: an abort or a failure leaves no blob (and no partly written one), only
 * uncommitted blocks that Azure discards by itself (after 7 days, or at the next commit of
 * that name). Those blocks are what a rerun resumes from (`resume`: the journal records the
 * block ids, Get Block List says which Azure still has). A block's id names its bytes (its
 * index and MD5, see {@link blockId}), so a rerun also keeps the blocks Azure stored whose
 * answers a crash lost: it reads them to send them, and finds their id already listed. The
 * blocks it keeps unsent are read to hash the file anyway, and checked against their ids before
 * the commit: a file rewritten since the earlier attempt, keeping its size and mtime, starts
 * over rather than commit a blob of two versions. The
 * same holds for a source file that changed while it was read (`snapshot`): its blocks are
 * never committed, and a single `Put Blob` of it is deleted again.
 *
 * Memory: each block in flight reads its byte range into a buffer of its own, reused for the
 * next block, so one file holds at most `blockSize × concurrency` bytes.
 *
 * @module
 */
import { createHash, randomBytes } from '../core/node-crypto.js';
import type { FileHandle } from 'node:fs/promises';
import { AbortedError, RequestTimeoutError, SourceChangedError } from '../core/errors.js';
import { combineSignals, IdleTimer } from '../core/abort.js';
import { errorText, type Logger } from '../core/logger.js';
import { sourceChange, takeBackChanged, type FileSnapshot } from '../core/source-snapshot.js';
import { withRetry, type ResolvedRetryOptions, type RetryEvent } from '../core/retry.js';
import { sha256AndMd5 } from '../core/hash-in-one-pass.js';
import { RangeStop, sendFileRanges } from './file-ranges.js';
import { OrderedSha256 } from './ordered-sha256.js';
import { openSourceFile, readSourceRange, type SourceFile, type SourceRead } from './source-file.js';
import type { MultipartResume, UploadFileOptions, UploadFileResult } from './artifact-store.js';
import { effectiveBlockSize, type AzureTransferSettings } from './azure-config.js';

/**
 * The requests of a block blob upload, bound to one blob. Each gets a signal to honour; the two
 * with a body also get `onProgress`, to call as its bytes leave (see
 * {@link BlockUploadOptions.stallTimeoutMs}).
 */
export interface BlockBlobRequests {
  /** `Put Blob`: the whole body in one request (`contentMd5` is its MD5, which Azure checks). */
  putBlob(body: Buffer, contentMd5: Uint8Array, signal: AbortSignal, onProgress: () => void): Promise<void>;
  /** `Put Block`: one block under `blockId` (base64), checked by Azure against `contentMd5`. */
  stageBlock(blockId: string, body: Buffer, contentMd5: Uint8Array, signal: AbortSignal, onProgress: () => void): Promise<void>;
  /** `Put Block List`: makes the blob out of these blocks, in this order. */
  commitBlockList(blockIds: string[], signal: AbortSignal): Promise<void>;
  /** `Delete Blob` (a missing blob is not an error): takes back a `Put Blob` whose source changed. */
  deleteBlob(signal: AbortSignal): Promise<void>;
  /**
   * `Get Block List` (uncommitted): the blocks Azure holds for the blob, id → size; none when
   * there is no blob yet. Without it, an earlier attempt's blocks are never kept.
   */
  uncommittedBlocks?(signal: AbortSignal): Promise<Map<string, number>>;
}

/**
 * A small file read whole up front (`readSourceIfSmall`, source-file.ts): its bytes go as the one
 * `Put Blob`, resent as they are on every attempt, and no file handle is kept.
 */
export interface SourceBytes {
  path: string;
  /** `bytes.length`. */
  size: number;
  bytes: Buffer;
}

/** Options of {@link uploadBlockBlob}. */
export interface BlockUploadOptions {
  /** Block size for this file (already grown to fit Azure's 50,000-block limit). */
  blockSize: number;
  /** Files up to this size go as one `Put Blob`. */
  maxSinglePutSize: number;
  /** Blocks in flight at once. */
  concurrency: number;
  /** Retry policy of every request (its `totalTimeoutMs` is the caller's to apply). */
  retry: ResolvedRetryOptions;
  /** Longest time one request may take before it is cut off and retried. */
  requestTimeoutMs: number;
  /**
   * Longest time one request may make no progress (no byte of its body sent, no answer) before
   * it is cut off and retried, for requests whose client has no idle timeout of its own (the
   * Azure SDK's). @default none (only `requestTimeoutMs`)
   */
  stallTimeoutMs?: number | undefined;
  /** The caller's abort (and deadline). */
  signal?: AbortSignal;
  /** Bytes acknowledged by Azure so far (block by block). */
  onProgress?: (loaded: number) => void;
  /** Called before each retried request. */
  onRetry?: (event: RetryEvent) => void;
  /** For timeout errors: the method and (credential-free) URL of the blob. */
  describe: { url: string };
  /**
   * The file when its upload started: checked once every byte is sent. If it changed, the block
   * list is not committed (a single `Put Blob` is deleted again) and a `SourceChangedError` is
   * thrown. @default none (no check)
   */
  snapshot?: FileSnapshot | undefined;
  /** Where a failed clean-up is reported. @default silent */
  logger?: Logger | undefined;
  /**
   * Block-level resume (the journal's hooks, as for `s3://` parts): the upload id is the block
   * id prefix, each staged block is recorded (id as `etag`, its MD5 as `checksum`), and a rerun
   * keeps the blocks that Azure still holds uncommitted under the recorded ids with the expected
   * size, once the file's bytes at their ranges give those ids (else the file starts over).
   * @default none (a new prefix every time)
   */
  resume?: MultipartResume | undefined;
}

/** What {@link uploadBlockBlob} did. */
export interface BlockUploadResult {
  /** True when the file went up in blocks. */
  blocks: boolean;
  /** Retried requests over the whole file. */
  retries: number;
  /** sha256 (hex) of the file's bytes, hashed from the buffers sent (blocks in file order, `ordered-sha256.ts`; kept blocks read again from the file). */
  sha256: string;
  /** Bytes not sent because an earlier attempt's uncommitted blocks were kept. */
  bytesReused: number;
}

/**
 * Uploads `source` through `requests`: single `Put Blob` or staged blocks plus a commit (see the
 * module comment); a {@link SourceBytes} (at most `maxSinglePutSize`) is that `Put Blob` as it
 * is. Throws the first error that ended it (after its retries): the SDK's own error for the
 * caller to map, a `LocalPathError` for a file that shrank, a `SourceChangedError` for one that
 * changed (`options.snapshot`), or an {@link AbortedError}.
 *
 * @example
 * ```ts
 * const handle = await open('model.bin', 'r');
 * await uploadBlockBlob({ handle, path: 'model.bin', size }, requestsForBlob, {
 *   blockSize: 8 << 20, maxSinglePutSize: 8 << 20, concurrency: 4, retry, requestTimeoutMs: 600_000, describe: { url },
 * });
 * ```
 */
export async function uploadBlockBlob(source: SourceFile | SourceBytes, requests: BlockBlobRequests, options: BlockUploadOptions): Promise<BlockUploadResult> {
  const run = new FileRun(options);
  try {
    return await upload(source, requests, options, run);
  } finally {
    // An aborted request may still be on its way out of the SDK: return only once none is left.
    await run.settled();
  }
}

async function upload(source: SourceFile | SourceBytes, requests: BlockBlobRequests, options: BlockUploadOptions, run: FileRun): Promise<BlockUploadResult> {
  if ('bytes' in source || source.size <= options.maxSinglePutSize) {
    const body = 'bytes' in source ? source.bytes : await readSourceRange(source, Buffer.allocUnsafe(source.size), 0, source.size);
    const { sha256, md5 } = sha256AndMd5(body);
    await run.request('PUT', (signal, onProgress) => requests.putBlob(body, md5, signal, onProgress));
    const changed = options.snapshot ? await sourceChange(source.path, options.snapshot) : undefined;
    // Already visible: take it back, so no reader ever gets a mix of two versions of the file;
    // when Azure refuses the delete, the error says the blob is left there.
    if (changed) throw await takeBackChanged(changed, () => run.request('DELETE', (signal) => requests.deleteBlob(signal)));
    return { blocks: false, retries: run.retries, sha256, bytesReused: 0 };
  }

  const continued = options.resume ? await continueUpload(source.size, requests, options, run) : undefined;
  try {
    return await uploadBlocks(source, requests, options, run, continued, continued?.idLength ?? BLOCK_ID_LENGTH);
  } catch (error) {
    if (continued && error instanceof SourceChangedError && error.sinceEarlierAttempt) {
      // A block kept from the earlier attempt does not hold the file's bytes: the file was
      // rewritten since, keeping its size and mtime. Nothing was committed; the record is
      // dropped and the file starts over, every block read and staged again, so the commit names
      // blocks of this version alone (it discards the earlier attempt's). The first attempt
      // stopped at the mismatch, so a new one, under ids of the length Azure holds for the blob.
      options.logger?.warn(
        `${error.path} changed since the earlier attempt to upload it to ${options.describe.url}, though its size and modification time are the same: a block that attempt staged does not hold the file's bytes at its range now. Its blocks are not committed, and the file starts over.`,
        { error: errorText(error) },
      );
      await options.resume?.aborted(continued.uploadId);
      const again = new FileRun(options);
      try {
        const result = await uploadBlocks(source, requests, options, again, undefined, continued.idLength);
        return { ...result, retries: run.retries + result.retries };
      } finally {
        await again.settled();
      }
    }
    // Another upload of this blob (another tool's) left uncommitted blocks whose ids have another
    // length, and Azure refuses ours beside them: stage ours again under ids of their length,
    // which the commit then discards. The first attempt stopped at the refusal, so a new one.
    if ((error as { code?: unknown }).code !== 'InvalidBlobOrBlock') throw error;
    const again = new FileRun(options);
    try {
      const length = await uncommittedIdLength(requests, again);
      if (length === undefined) throw error;
      options.logger?.debug(`${options.describe.url} has uncommitted blocks of another upload with ${length}-byte ids; staging ours under ids of that length`);
      const result = await uploadBlocks(source, requests, options, again, undefined, length);
      return { ...result, retries: run.retries + result.retries };
    } finally {
      await again.settled();
    }
  }
}

/** The staged blocks and the commit of `source` (above one Put Blob), its ids `idLength` bytes long. */
async function uploadBlocks(
  source: SourceFile,
  requests: BlockBlobRequests,
  options: BlockUploadOptions,
  run: FileRun,
  continued: ContinuedUpload | undefined,
  idLength: number,
): Promise<BlockUploadResult> {
  const count = Math.ceil(source.size / options.blockSize);
  const { resume } = options;
  const uploadId = continued?.uploadId ?? `${CONTENT_IDS_UPLOAD}${randomBytes(6).toString('hex')}`;
  if (resume && !continued) await resume.started(uploadId, options.blockSize);
  // An upload recorded by a version before content ids goes on with its prefix ids.
  const ids: Array<string | undefined> = continued?.ids ?? new Array<string | undefined>(count);
  const contentIds = uploadId.startsWith(CONTENT_IDS_UPLOAD);
  const kept = continued?.indexes;
  let bytesReused = [...(kept ?? [])].reduce((n, i) => n + blockLength(i, source.size, options.blockSize), 0);
  let keptUnrecorded = 0;
  const hasher = new OrderedSha256(source.size);
  await sendFileRanges(source, run, {
    rangeSize: options.blockSize,
    concurrency: options.concurrency,
    onProgress: options.onProgress,
    skip: kept,
    alreadyLoaded: bytesReused,
    hasher,
    // Each block's MD5, in one pass with the file's sha256.
    rangeChecksum: () => createHash('md5'),
    // A kept block is checked against the file from the bytes read for the sha256 anyway (its
    // MD5 against its id, or the journal's MD5 for a prefix id): the file may have been rewritten
    // since the earlier attempt in a way the journal's identity (size, mtime, inode) does not
    // show, and committing would then make a blob of two versions.
    checkSkipped: (index) => {
      const checksum = createHash('md5');
      return {
        checksum,
        check: async (md5) => {
          if (contentIds ? blockId(index, md5, idLength) === ids[index] : continued?.md5s.get(index)?.equals(md5) === true) return;
          const now = options.snapshot ?? (await source.handle.stat());
          throw new SourceChangedError(source.path, now, now, {
            sinceEarlierAttempt: true,
            change: `was rewritten (the block ${index} Azure holds uncommitted for ${options.describe.url} is not the file's bytes at its range now: their MD5 differs)`,
          });
        },
      };
    },
    send: async (index, body, checksum) => {
      const md5 = checksum!;
      const id = contentIds ? blockId(index, md5, idLength) : ids[index]!;
      ids[index] = id;
      const record = { partNumber: index + 1, size: body.length, etag: id, checksum: `md5:${md5.toString('base64')}` };
      if (contentIds && continued?.held.get(id) === body.length) {
        // Azure holds these very bytes under this id (it checked their MD5 when the earlier
        // attempt staged them), which died before the answer came: nothing to send.
        bytesReused += body.length;
        keptUnrecorded++;
        await resume?.partDone(record);
        return 'held';
      }
      await run.request('PUT', (signal, onProgress) => requests.stageBlock(id, body, md5, signal, onProgress));
      await resume?.partDone(record);
    },
  });
  if (run.stopped) throw new AbortedError(undefined, { cause: options.signal?.reason });
  if (keptUnrecorded > 0) {
    options.logger?.debug(`kept ${keptUnrecorded} uncommitted block(s) of ${options.describe.url} that the earlier attempt staged but never heard back about (their ids name their bytes)`);
  }
  // Checked before the commit: blocks of a file that changed stay uncommitted (no blob at all).
  const changed = options.snapshot ? await sourceChange(source.path, options.snapshot) : undefined;
  if (changed) throw changed;
  const sha256 = await hasher.digest(source);
  const blockList = ids.filter((id): id is string => id !== undefined);
  // Every block was kept, sent or held above; a gap would commit a blob with a hole.
  if (blockList.length !== count) throw new Error(`Internal error: ${count - blockList.length} of ${count} blocks of ${options.describe.url} have no id at the commit.`);
  await run.request('PUT', (signal) => requests.commitBlockList(blockList, signal));
  return { blocks: true, retries: run.retries, sha256, bytesReused };
}

/** Bytes of block `index` of a file of `size`. */
function blockLength(index: number, size: number, blockSize: number): number {
  return Math.min(blockSize, size - index * blockSize);
}

/** What {@link uploadFileAsBlockBlob} needs besides the file: one store's settings and ways. */
export interface FileBlockBlobUpload {
  /** The blob's requests, made inside the file's deadline (e.g. after asking a workspace for the blob's SAS URL). */
  requests: (signal: AbortSignal | undefined) => Promise<BlockBlobRequests>;
  settings: AzureTransferSettings;
  retry: ResolvedRetryOptions;
  /** See {@link BlockUploadOptions.stallTimeoutMs}. @default none */
  stallTimeoutMs?: number;
  /** The blob for messages, never a credential (`wasbs://c@a.../name`, `azureml://experiments/...`). */
  where: string;
  /** What to check when the per-file deadline passes, e.g. `the storage account`. */
  slowPart: string;
  logger: Logger;
  /** Turns any other failure into the store's typed error. */
  mapError: (error: unknown) => unknown;
}

/**
 * One local file of a store's `uploadFile` as a block blob, as `readSourceIfSmall` left it
 * (`read`: its size, and its bytes when it was small): sends those bytes when they fit one
 * `Put Blob`, else opens the file; bounds it by
 * `retry.totalTimeoutMs`, runs {@link uploadBlockBlob} with the store's settings and the caller's
 * hooks, and turns the end into an `UploadFileResult` or the error that says why (deadline,
 * abort, a source that changed, else `mapError`). Shared by the `wasbs://`/`abfss://` and
 * `azureml://` stores.
 *
 * @example
 * ```ts
 * const read = await readSourceIfSmall(localPath, options.size, logger);
 * return uploadFileAsBlockBlob(localPath, read, options, { requests: async () => requests, settings, retry, where, slowPart: 'the storage account', logger, mapError });
 * ```
 */
export async function uploadFileAsBlockBlob(
  localPath: string,
  read: SourceRead,
  options: UploadFileOptions,
  upload: FileBlockBlobUpload,
): Promise<UploadFileResult> {
  const { settings, retry, where, logger } = upload;
  const { size } = read;
  // Read whole already (readSourceIfSmall) and within one Put Blob: sent from memory, no handle.
  const bytes = read.bytes && size <= settings.maxSinglePutSize ? read.bytes : undefined;
  const deadline = retry.totalTimeoutMs !== undefined ? AbortSignal.timeout(retry.totalTimeoutMs) : undefined;
  const signal = combineSignals(options.signal, deadline);
  let file: FileHandle | undefined;
  /** Whether a rerun can continue from staged blocks: only where the blob's blocks can be listed. */
  let listable = false;
  try {
    const requests = await upload.requests(signal);
    listable = requests.uncommittedBlocks !== undefined;
    let source: SourceFile | SourceBytes;
    if (bytes) source = { path: localPath, size, bytes };
    else {
      file = await openSourceFile(localPath);
      source = { handle: file, path: localPath, size };
    }
    const result = await uploadBlockBlob(source, requests, {
      blockSize: effectiveBlockSize(size, settings.blockSize),
      maxSinglePutSize: settings.maxSinglePutSize,
      concurrency: settings.concurrency,
      retry,
      requestTimeoutMs: settings.requestTimeoutMs,
      stallTimeoutMs: upload.stallTimeoutMs,
      ...(signal ? { signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      onRetry: (event) => {
        logger.debug(`retrying Azure request for ${where}`, { attempt: event.attempt, error: errorText(event.error) });
        options.onRetry?.(event);
      },
      describe: { url: where },
      snapshot: options.snapshot,
      logger,
      resume: options.resume,
    });
    options.onProgress?.(size);
    // Every Put Blob and Put Block carried the Content-MD5 of its buffer, which Azure checks
    // (a kept block was checked when an earlier run staged it, and its id against the file's
    // bytes before the commit).
    return {
      bytes: size,
      attempts: 1 + result.retries,
      multipart: result.blocks,
      sha256: result.sha256,
      verified: 'checksum',
      ...(result.bytesReused > 0 ? { bytesReused: result.bytesReused } : {}),
    };
  } catch (error) {
    if (deadline?.aborted) {
      throw new AbortedError(`Upload of ${where} did not finish within retry.totalTimeoutMs (${retry.totalTimeoutMs} ms); no blob was committed.`, {
        hint: `Raise retry.totalTimeoutMs, or check why ${upload.slowPart} is slow.`,
        cause: error,
      });
    }
    if (options.signal?.aborted) {
      // Azure ML's SAS requests cannot list blocks: there a rerun starts the file over.
      const kept = listable && options.resume?.onRecord?.() === true ? '; its uncommitted blocks are kept for the rerun to continue' : '';
      throw new AbortedError(`Upload of ${where} was aborted; no blob was committed${kept}.`, { cause: options.signal.reason ?? error });
    }
    // A file that changed under the reads (e.g. shrank) says so, whatever the read saw. One
    // found changed already goes as it is: it says whether the stored blob was taken back.
    if (error instanceof SourceChangedError) throw error;
    const changed = options.snapshot ? await sourceChange(localPath, options.snapshot) : undefined;
    if (changed) throw changed;
    throw upload.mapError(error);
  } finally {
    await file?.close().catch(() => undefined);
  }
}

/**
 * The upload id (journal label) of an upload whose block ids name their bytes ({@link blockId}):
 * this prefix plus 12 random hex digits. Uploads recorded by earlier versions have a bare
 * 12-hex-digit prefix, which their block ids start with ({@link blockIds}).
 */
const CONTENT_IDS_UPLOAD = 'md5-';

/**
 * True when a recorded upload id is the label of a staged-block upload of this module (its
 * content-id form, or the prefix of an earlier version's), not a multipart upload id: Azure
 * discards uncommitted blocks on its own (after about a week), so the journal's sweep may
 * forget such a record, where an S3 multipart upload stays billed until it is aborted.
 *
 * @example
 * ```ts
 * isBlockUploadLabel('md5-0123456789ab'); // true
 * ```
 */
export function isBlockUploadLabel(uploadId: string): boolean {
  return /^(?:md5-)?[0-9a-f]{12}$/.test(uploadId);
}

/** An earlier attempt's upload that a rerun continues. */
interface ContinuedUpload {
  uploadId: string;
  /** Block ids by index: every one for a prefix-id upload; for a content-id upload the kept ones. */
  ids: Array<string | undefined>;
  /** The blocks recorded in the journal that Azure still holds: not read to be sent. */
  indexes: Set<number>;
  /** Every uncommitted block Azure lists, id → size. */
  held: Map<string, number>;
  /** The MD5 the journal recorded for each kept block: what a kept prefix-id block is checked by (a content id names its own). */
  md5s: Map<number, Buffer>;
  /** Bytes in each of its content ids: {@link BLOCK_ID_LENGTH}, or the length of another upload's ids that it took. */
  idLength: number;
}

/**
 * Continues the earlier attempt when the journal may (same file, same block size) and Azure still
 * holds some of its blocks uncommitted: the recorded blocks that Azure lists under the same id
 * with the expected size are kept, and (content ids) the list is handed on, so a block staged but
 * never answered is found again by its id once it is read. Otherwise nothing: the record is
 * dropped, and the old blocks are left to Azure, which discards uncommitted blocks at the blob's
 * next commit (there is no call to delete them).
 */
async function continueUpload(size: number, requests: BlockBlobRequests, options: BlockUploadOptions, run: FileRun): Promise<ContinuedUpload | undefined> {
  const resume = options.resume!;
  const previous = resume.previous;
  if (!previous) return undefined;
  const count = Math.ceil(size / options.blockSize);
  const list = requests.uncommittedBlocks?.bind(requests);
  const contentIds = isBlockUploadLabel(previous.uploadId) && previous.uploadId.startsWith(CONTENT_IDS_UPLOAD);
  if (list && resume.reuse && previous.partSize === options.blockSize && isBlockUploadLabel(previous.uploadId)) {
    let held: Map<string, number>;
    try {
      held = await listUncommitted(list, run);
    } catch (error) {
      // The journal must never make an upload fail: a list that is refused (a SAS without `r`)
      // or keeps failing starts the file over, as a rerun without a record would.
      if (options.signal?.aborted) throw error;
      options.logger?.warn(
        `Could not list the blocks the earlier attempt staged for ${options.describe.url}, so the file starts over. Continuing an upload needs read access to the blob (a SAS's r permission).`,
        { error: errorText(error) },
      );
      await resume.aborted(previous.uploadId);
      return undefined;
    }
    const ids: Array<string | undefined> = contentIds ? new Array<string | undefined>(count) : blockIds(count, previous.uploadId);
    const indexes = new Set<number>();
    const md5s = new Map<number, Buffer>();
    for (const part of previous.parts) {
      const index = part.partNumber - 1;
      if (index < 0 || index >= count) continue;
      const expected = blockLength(index, size, options.blockSize);
      const id = contentIds ? (part.etag !== undefined && blockIdIndex(part.etag) === index ? part.etag : undefined) : ids[index];
      const md5 = part.checksum?.startsWith('md5:') ? Buffer.from(part.checksum.slice('md5:'.length), 'base64') : undefined;
      // A kept block is checked against the file before the commit (`checkSkipped`): a
      // prefix id says nothing of its bytes, so one without a recorded MD5 is sent again.
      if (id !== undefined && part.etag === id && part.size === expected && held.get(id) === expected && (contentIds || md5 !== undefined)) {
        ids[index] = id;
        indexes.add(index);
        if (md5) md5s.set(index, md5);
      }
    }
    // Azure holds one id length per blob: the length its content ids took (see blockId).
    const listedLength = held.size === 0 ? BLOCK_ID_LENGTH : uncommittedIdLengthOf(held.keys(), MIN_BLOCK_ID_LENGTH);
    const fits = !contentIds || listedLength !== undefined;
    if (fits && (indexes.size > 0 || (contentIds && held.size > 0))) return { uploadId: previous.uploadId, ids, indexes, held, md5s, idLength: listedLength ?? BLOCK_ID_LENGTH };
  }
  await resume.aborted(previous.uploadId);
  return undefined;
}

/** Bytes in a block id (before base64): the length of the prefix ids before {@link blockId}. */
const BLOCK_ID_LENGTH = 19;
/** The fewest bytes of a {@link blockId}: the index and 8 characters (48 bits) of the MD5. */
const MIN_BLOCK_ID_LENGTH = 12;

/**
 * The id of block `index` whose bytes have the MD5 `md5`: base64 of the index (4 base-36 digits)
 * and the first 15 characters (90 bits) of the MD5 in base64url, 19 bytes in all; for another
 * `length`, padded with `.` up to it, or with fewer MD5 characters (at least 8) down to it.
 *
 * - Azure checks every `Put Block` body against its Content-MD5, so a block it lists under this
 *   id holds these bytes: a rerun that finds the id listed keeps the block instead of sending it,
 *   even when the crash lost Azure's answer and the journal never recorded it.
 * - Another attempt's block can match only with the same bytes at the same index, which is then
 *   the same block.
 * - Azure refuses a block whose id has another length than the blob's uncommitted ones
 *   (`InvalidBlobOrBlock`). 19 bytes is the length of the prefix ids before ({@link blockIds}),
 *   whose blocks an earlier version may have left for about a week; beside another tool's
 *   blocks, ids take their length (`length`, 12 to Azure's 64): `azure-storage-blob` for
 *   Python names blocks with 48 bytes, MLflow's proxied multipart on Azure with 14 to 18
 *   (`mlflow_block_1`, ...).
 *
 * @example
 * ```ts
 * const id = blockId(2, createHash('md5').update(block).digest());
 * Buffer.from(id, 'base64').toString().slice(0, 4); // '0002'
 * ```
 */
export function blockId(index: number, md5: Uint8Array, length = BLOCK_ID_LENGTH): string {
  const digest = Buffer.from(md5).toString('base64url').slice(0, Math.min(15, length - 4));
  return Buffer.from(`${index.toString(36).padStart(4, '0')}${digest}`.padEnd(length, '.')).toString('base64');
}

/** The index a {@link blockId} names, or undefined for another kind of id. */
function blockIdIndex(id: string): number | undefined {
  const raw = Buffer.from(id, 'base64').toString();
  return /^[0-9a-z]{4}[\w-]{8,15}\.*$/.test(raw) ? Number.parseInt(raw.slice(0, 4), 36) : undefined;
}

/**
 * The one length of the ids of the blob's uncommitted blocks, when {@link blockId} can take it
 * (12 to 64 bytes, other than 19); else undefined. Without Get Block List, undefined.
 */
async function uncommittedIdLength(requests: BlockBlobRequests, run: FileRun): Promise<number | undefined> {
  const list = requests.uncommittedBlocks?.bind(requests);
  if (!list) return undefined;
  const length = uncommittedIdLengthOf((await listUncommitted(list, run)).keys(), MIN_BLOCK_ID_LENGTH);
  return length !== BLOCK_ID_LENGTH ? length : undefined;
}

/** `Get Block List` (uncommitted) under the file's retry policy: id → size. */
async function listUncommitted(list: NonNullable<BlockBlobRequests['uncommittedBlocks']>, run: FileRun): Promise<Map<string, number>> {
  let held = new Map<string, number>();
  await run.request('GET', async (signal) => {
    held = await list(signal);
  });
  return held;
}

/**
 * The one length (bytes, before base64) of `ids`, the ids of a blob's uncommitted blocks (Azure
 * holds one length per blob), when block ids of ours can take it: `min` to Azure's 64 bytes.
 * Undefined for no ids, ids of several lengths, or a length out of that range. Shared by the
 * block uploads here and the part URLs of MLflow's proxied multipart (azure-part-urls.ts).
 *
 * @example
 * ```ts
 * uncommittedIdLengthOf([Buffer.from('mlflow_block_1').toString('base64')], 12); // 14
 * ```
 */
export function uncommittedIdLengthOf(ids: Iterable<string>, min: number): number | undefined {
  const lengths = new Set([...ids].map((id) => Buffer.from(id, 'base64').length));
  const [length] = lengths;
  return lengths.size === 1 && length! >= min && length! <= 64 ? length : undefined;
}

/**
 * `count` block ids of an upload recorded by a version before {@link blockId}: base64 of the
 * upload's prefix (12 hex digits) plus the zero-padded index, all the same length as Azure
 * requires. A rerun continues such an upload under these ids.
 *
 * @example
 * ```ts
 * blockIds(3, '3f9a0c1b2d4e').map((id) => Buffer.from(id, 'base64').toString()); // ['3f9a0c1b2d4e-000000', '3f9a0c1b2d4e-000001', ...]
 * ```
 */
export function blockIds(count: number, prefix: string): string[] {
  return Array.from({ length: count }, (_, i) => Buffer.from(`${prefix}-${String(i).padStart(6, '0')}`).toString('base64'));
}

/**
 * The requests of one file: each under the retry policy with its own timeout, all stopped as
 * soon as one fails for good or the caller aborts.
 */
class FileRun extends RangeStop {
  retries = 0;
  /** SDK calls not settled yet: the retry loop gives up at once on an abort, the SDK call may not. */
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly options: BlockUploadOptions) {
    super(options.signal);
  }

  /** Resolves once every SDK call of this file has settled (they were all given the abort signal). */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /**
   * One request under the policy; `send` gets a signal that also fires after the request
   * timeout, or after `stallTimeoutMs` without a call of its `onProgress`.
   */
  request(method: string, send: (signal: AbortSignal, onProgress: () => void) => Promise<void>): Promise<void> {
    const { retry, requestTimeoutMs, stallTimeoutMs, describe } = this.options;
    return withRetry(
      async (_attempt, outer) => {
        const timer = AbortSignal.timeout(requestTimeoutMs);
        const idle = stallTimeoutMs !== undefined && stallTimeoutMs < requestTimeoutMs ? new IdleTimer(stallTimeoutMs) : undefined;
        const sent = send(combineSignals(outer, timer, idle?.signal)!, () => idle?.touch());
        this.inFlight.add(sent);
        try {
          await sent;
        } catch (error) {
          if (idle?.fired && !outer?.aborted) {
            // RequestTimeoutError's own hint names what sets it (MLFLOW_HTTP_REQUEST_TIMEOUT).
            throw new RequestTimeoutError(idle.ms, { method, url: describe.url, cause: error });
          }
          if (timer.aborted && !outer?.aborted) {
            throw new RequestTimeoutError(requestTimeoutMs, {
              method,
              url: describe.url,
              cause: error,
              hint: 'If the store is slow rather than down, raise MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT (seconds) or the requestTimeoutSeconds option, or lower blockSize.',
            });
          }
          throw error;
        } finally {
          idle?.stop();
          this.inFlight.delete(sent);
        }
      },
      {
        // The per-file deadline is the caller's (one signal for every block), not one per request.
        retry: { ...retry, totalTimeoutMs: undefined },
        signal: this.signal,
        onRetry: (event) => {
          this.retries++;
          this.options.onRetry?.(event);
        },
      },
    );
  }
}
