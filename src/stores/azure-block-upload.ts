/**
 * The block-blob upload engine of the Azure stores, independent of the SDK: a file up to
 * `maxSinglePutSize` goes as one `Put Blob`; a larger one as staged blocks (`Put Block`),
 * `concurrency` in flight, each block retried on its own under the shared retry policy
 * (`core/retry.ts`), and a `Put Block List` once every block has arrived. Until that commit
 * nothing is visible: an abort or a failure leaves no blob (and no partly written one), only
 * uncommitted blocks that Azure discards by itself (after 7 days, or at the next commit of
 * that name). Those blocks are what a rerun resumes from (`resume`: the journal records the
 * block ids, Get Block List says which Azure still has). The same holds for a source file that changed while it was read (`snapshot`):
 * its blocks are never committed, and a single `Put Blob` of it is deleted again.
 *
 * Memory: each block in flight reads its byte range into a buffer of its own, reused for the
 * next block, so one file holds at most `blockSize × concurrency` bytes.
 *
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { AbortedError, RequestTimeoutError } from '../core/errors.js';
import { combineSignals } from '../core/abort.js';
import { errorText, type Logger } from '../core/logger.js';
import { sourceChange, type FileSnapshot } from '../core/source-snapshot.js';
import { withRetry, type ResolvedRetryOptions, type RetryEvent } from '../core/retry.js';
import { sha256AndMd5 } from '../core/hash-in-one-pass.js';
import { RangeStop, sendFileRanges } from './file-ranges.js';
import { OrderedSha256 } from './ordered-sha256.js';
import { openSourceFile, readSourceRange, type SourceFile, type SourceRead } from './source-file.js';
import type { MultipartResume, UploadFileOptions, UploadFileResult } from './artifact-store.js';
import { effectiveBlockSize, type AzureTransferSettings } from './azure-config.js';

/** The requests of a block blob upload, bound to one blob. Each gets a signal to honour. */
export interface BlockBlobRequests {
  /** `Put Blob`: the whole body in one request (`contentMd5` is its MD5, which Azure checks). */
  putBlob(body: Buffer, contentMd5: Uint8Array, signal: AbortSignal): Promise<void>;
  /** `Put Block`: one block under `blockId` (base64), checked by Azure against `contentMd5`. */
  stageBlock(blockId: string, body: Buffer, contentMd5: Uint8Array, signal: AbortSignal): Promise<void>;
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
   * size. @default none (a new prefix every time)
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
    await run.request('PUT', (signal) => requests.putBlob(body, md5, signal));
    const changed = options.snapshot ? await sourceChange(source.path, options.snapshot) : undefined;
    if (changed) {
      // Already visible: take it back, so no reader ever gets a mix of two versions of the file.
      await run.request('DELETE', (signal) => requests.deleteBlob(signal)).catch((error: unknown) => {
        options.logger?.warn(`Could not delete ${options.describe.url} after its source changed during the upload; delete it by hand.`, { error: errorText(error) });
      });
      throw changed;
    }
    return { blocks: false, retries: run.retries, sha256, bytesReused: 0 };
  }

  const count = Math.ceil(source.size / options.blockSize);
  const { resume } = options;
  const kept = resume ? await blocksToKeep(source.size, requests, options, run) : undefined;
  const prefix = kept?.prefix ?? randomBytes(6).toString('hex');
  if (resume && !kept) await resume.started(prefix, options.blockSize);
  const ids = blockIds(count, prefix);
  const bytesReused = [...(kept?.indexes ?? [])].reduce((n, i) => n + blockLength(i, source.size, options.blockSize), 0);
  const hasher = new OrderedSha256(source.size);
  await sendFileRanges(source, run, {
    rangeSize: options.blockSize,
    concurrency: options.concurrency,
    onProgress: options.onProgress,
    skip: kept?.indexes,
    alreadyLoaded: bytesReused,
    hasher,
    // Each block's MD5, in one pass with the file's sha256.
    rangeChecksum: () => createHash('md5'),
    send: async (index, body, checksum) => {
      const md5 = checksum!;
      await run.request('PUT', (signal) => requests.stageBlock(ids[index]!, body, md5, signal));
      await resume?.partDone({ partNumber: index + 1, size: body.length, etag: ids[index]!, checksum: `md5:${md5.toString('base64')}` });
    },
  });
  if (run.stopped) throw new AbortedError(undefined, { cause: options.signal?.reason });
  // Checked before the commit: blocks of a file that changed stay uncommitted (no blob at all).
  const changed = options.snapshot ? await sourceChange(source.path, options.snapshot) : undefined;
  if (changed) throw changed;
  const sha256 = await hasher.digest(source);
  await run.request('PUT', (signal) => requests.commitBlockList(ids, signal));
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
  try {
    const requests = await upload.requests(signal);
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
    // (a kept block was checked when an earlier run staged it).
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
      const kept = options.resume?.onRecord?.() === true ? '; its uncommitted blocks are kept for the rerun to continue' : '';
      throw new AbortedError(`Upload of ${where} was aborted; no blob was committed${kept}.`, { cause: options.signal.reason ?? error });
    }
    // A file that changed under the reads (e.g. shrank) says so, whatever the read saw.
    const changed = options.snapshot ? await sourceChange(localPath, options.snapshot) : undefined;
    if (changed) throw changed;
    throw upload.mapError(error);
  } finally {
    await file?.close().catch(() => undefined);
  }
}

/**
 * The earlier attempt's blocks to keep: when the journal may continue it (same file, same block
 * size), the recorded blocks that Azure lists uncommitted under the same id with the expected
 * size. Otherwise (or when Azure has none of them) nothing: the record is dropped, and the old
 * blocks are left to Azure, which discards uncommitted blocks at the blob's next commit (there
 * is no call to delete them).
 */
async function blocksToKeep(
  size: number,
  requests: BlockBlobRequests,
  options: BlockUploadOptions,
  run: FileRun,
): Promise<{ prefix: string; indexes: Set<number> } | undefined> {
  const resume = options.resume!;
  const previous = resume.previous;
  if (!previous) return undefined;
  const count = Math.ceil(size / options.blockSize);
  const list = requests.uncommittedBlocks?.bind(requests);
  if (list && resume.reuse && previous.partSize === options.blockSize && /^[0-9a-f]{12}$/.test(previous.uploadId)) {
    let held = new Map<string, number>();
    await run.request('GET', async (signal) => {
      held = await list(signal);
    });
    const ids = blockIds(count, previous.uploadId);
    const indexes = new Set<number>();
    for (const part of previous.parts) {
      const index = part.partNumber - 1;
      if (index < 0 || index >= count) continue;
      const expected = blockLength(index, size, options.blockSize);
      if (part.etag === ids[index] && part.size === expected && held.get(ids[index]!) === expected) indexes.add(index);
    }
    if (indexes.size > 0) return { prefix: previous.uploadId, indexes };
  }
  await resume.aborted(previous.uploadId);
  return undefined;
}

/**
 * `count` block ids of one upload: base64 of the upload's prefix (12 hex digits, random for a new
 * upload) plus the zero-padded index, all the same length as Azure requires. Deterministic per
 * prefix and index (so per offset, at one block size): a resumed upload finds its blocks again,
 * while a concurrent or earlier (abandoned) upload of the same blob never mixes its blocks into
 * ours.
 *
 * @example
 * ```ts
 * blockIds(3).map((id) => Buffer.from(id, 'base64').toString()); // ['3f9a0c1b2d4e-000000', '3f9a0c1b2d4e-000001', ...]
 * ```
 */
export function blockIds(count: number, prefix = randomBytes(6).toString('hex')): string[] {
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

  /** One request under the policy; `send` gets a signal that also fires after the request timeout. */
  request(method: string, send: (signal: AbortSignal) => Promise<void>): Promise<void> {
    const { retry, requestTimeoutMs, describe } = this.options;
    return withRetry(
      async (_attempt, outer) => {
        const timer = AbortSignal.timeout(requestTimeoutMs);
        const sent = send(combineSignals(outer, timer)!);
        this.inFlight.add(sent);
        try {
          await sent;
        } catch (error) {
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
