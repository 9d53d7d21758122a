/**
 * Part-level resume of `s3://` multipart uploads (see `MultipartResume` in artifact-store.ts):
 * which parts of an earlier attempt's upload S3 still holds (`ListParts`, paged), which of them
 * match what the journal recorded (same part number, size, ETag, and checksum when both have
 * one), which of the others S3's listing could show to hold this file's very bytes (the parts
 * in flight when the earlier attempt died: stored, but never answered) and whether the bytes
 * read for sending one are those, what a kept part is checked by against the file before the
 * complete ({@link keptPartFigure}), and aborting an upload nobody will complete.
 *
 * Only types of `@aws-sdk/client-s3` are imported here; the store passes the loaded SDK.
 *
 * @module
 */
import { createHash } from '../core/node-crypto.js';
import type * as ClientS3 from '@aws-sdk/client-s3';
import { Crc32 } from '../core/hash-in-one-pass.js';
import type { SourceChangedError } from '../core/errors.js';
import { errorText, type Logger } from '../core/logger.js';
import { lostUploadCut, type AbandonedUpload, type LostUpload, type MultipartResume, type PreviousMultipartUpload, type StoredPart } from './artifact-store.js';
import type { RangeChecksum } from './file-ranges.js';

/** Sends one command of the file's upload (the store's per-file request tracker). */
export type SendCommand = (command: object) => Promise<unknown>;

/** The object-level parameters every request of a multipart upload repeats. */
export type SharedParams = Pick<ClientS3.UploadPartCommandInput, 'Bucket' | 'Key' | 'ExpectedBucketOwner' | 'RequestPayer' | 'SSECustomerAlgorithm' | 'SSECustomerKey' | 'SSECustomerKeyMD5'>;

const CHECKSUM_FIELDS = ['ChecksumCRC32', 'ChecksumCRC32C', 'ChecksumCRC64NVME', 'ChecksumSHA1', 'ChecksumSHA256'] as const;
type ChecksumField = (typeof CHECKSUM_FIELDS)[number];

/**
 * The checksum of a part as the journal writes it, `<algorithm>:<base64>` (e.g. `crc32:AAAAAA==`),
 * from an `UploadPart` answer or a `ListParts` entry.
 *
 * @example
 * ```ts
 * partChecksum({ ChecksumCRC32: 'AAAAAA==' }); // 'crc32:AAAAAA=='
 * ```
 */
export function partChecksum(part: Partial<Record<ChecksumField, string | undefined>>): string | undefined {
  for (const field of CHECKSUM_FIELDS) {
    const value = part[field];
    if (value) return `${field.slice('Checksum'.length).toLowerCase()}:${value}`;
  }
  return undefined;
}

/** The checksum fields of a part, for `CompleteMultipartUpload`. */
export function checksumFields(part: Partial<Record<ChecksumField, string | undefined>>): Partial<Record<ChecksumField, string>> {
  const out: Partial<Record<ChecksumField, string>> = {};
  for (const field of CHECKSUM_FIELDS) {
    const value = part[field];
    if (value) out[field] = value;
  }
  return out;
}

/**
 * The parts S3 holds for `uploadId` (every page), or `undefined` when the upload is gone
 * (completed, aborted by hand or by a lifecycle rule).
 *
 * @example
 * ```ts
 * const parts = await listUploadedParts(send, sdk.s3, shared, previous.uploadId);
 * ```
 */
export async function listUploadedParts(send: SendCommand, s3: typeof ClientS3, shared: SharedParams, uploadId: string): Promise<ClientS3.Part[] | undefined> {
  const parts: ClientS3.Part[] = [];
  let marker: string | undefined;
  for (let page = 0; page < 1000; page++) {
    let output: ClientS3.ListPartsCommandOutput;
    try {
      output = (await send(new s3.ListPartsCommand({ ...pickListParams(shared), UploadId: uploadId, ...(marker ? { PartNumberMarker: marker } : {}) }))) as ClientS3.ListPartsCommandOutput;
    } catch (error) {
      if (isNoSuchUpload(error)) return undefined;
      throw error;
    }
    parts.push(...(output.Parts ?? []));
    if (!output.IsTruncated || !output.NextPartNumberMarker) break;
    marker = output.NextPartNumberMarker;
  }
  return parts;
}

/**
 * The parts of an earlier upload to keep: those S3 lists that the journal recorded with the
 * same size, ETag and (when both have one) checksum, and whose size is the one this file's part
 * must have at `partSize`. Every other part is sent again.
 *
 * @example
 * ```ts
 * const keep = partsToKeep(listed, previous, 8 << 20, size); // Map partNumber → CompletedPart
 * ```
 */
export function partsToKeep(listed: readonly ClientS3.Part[], previous: PreviousMultipartUpload, partSize: number, size: number): Map<number, ClientS3.CompletedPart & { Size: number }> {
  const recorded = new Map<number, StoredPart>(previous.parts.map((p) => [p.partNumber, p]));
  const keep = new Map<number, ClientS3.CompletedPart & { Size: number }>();
  for (const part of listed) {
    const ours = partOfFile(part, partSize, size);
    const mine = ours && recorded.get(ours.n);
    if (!ours || !mine || mine.size !== ours.size || mine.etag !== ours.etag) continue;
    const theirs = partChecksum(part);
    if (mine.checksum && theirs && mine.checksum !== theirs) continue;
    keep.set(ours.n, { PartNumber: ours.n, ETag: ours.etag, Size: ours.size, ...checksumFields(part) });
  }
  return keep;
}

/** An ETag that is the part's MD5: S3 without SSE-KMS or SSE-C, and moto. */
const MD5_ETAG = /^"?([0-9a-f]{32})"?$/i;

/**
 * The parts of an earlier upload that S3 lists but the journal never recorded, and that S3's
 * listing could show to be this file's bytes: of the size their number must have, with a CRC32
 * listed or an MD5 ETag to check them by ({@link holdsBytes}). Those are the parts in flight when
 * the earlier attempt died: S3 stored them (a listed part was whole and matched the checksum it
 * was sent with), but their answers were lost with the process, so the journal has no line for
 * them; with 16 parts of 64 MiB in flight on a fast link that is up to 1 GiB. Each is read for
 * sending as usual, and kept instead of sent when its bytes hold ({@link holdsBytes}).
 *
 * @example
 * ```ts
 * const maybeStored = unrecordedParts(listed, kept, 8 << 20, source.size); // Map partNumber → Part
 * ```
 */
export function unrecordedParts(listed: readonly ClientS3.Part[], kept: ReadonlyMap<number, unknown>, partSize: number, size: number): Map<number, ClientS3.Part> {
  const out = new Map<number, ClientS3.Part>();
  for (const part of listed) {
    const ours = partOfFile(part, partSize, size);
    if (!ours || kept.has(ours.n) || out.has(ours.n)) continue;
    if (part.ChecksumCRC32 || MD5_ETAG.test(ours.etag)) out.set(ours.n, part);
  }
  return out;
}

/**
 * A listed part that can be one of the parts of a file of `size` bytes cut at `partSize`: a
 * whole number within the file's parts, an ETag, and the size its number must have. Its
 * number, size and ETag; otherwise `undefined`.
 */
function partOfFile(part: ClientS3.Part, partSize: number, size: number): { n: number; size: number; etag: string } | undefined {
  const n = part.PartNumber;
  if (n === undefined || !Number.isInteger(n) || n < 1 || n > Math.ceil(size / partSize) || !part.ETag) return undefined;
  const expected = Math.min(partSize, size - (n - 1) * partSize);
  return part.Size === expected ? { n, size: expected, etag: part.ETag } : undefined;
}

/**
 * Whether S3's listing of `part` shows it holds exactly `body`: the listed CRC32, when there is
 * one (S3 lists it for uploads with a checksum algorithm, the default of every current SDK), is
 * the body's, else the ETag is the body's MD5. `crc32` is the body's CRC32 when the caller has
 * computed it already (the part's own checksum, in the same pass as the file's sha256), so that
 * case costs nothing more. A part with neither figure (an SSE-KMS part listed without a CRC32)
 * does not hold.
 *
 * @example
 * ```ts
 * if (holdsBytes(listedPart, body, crc32)) keep(listedPart); // else send body
 * ```
 */
export function holdsBytes(part: ClientS3.Part, body: Buffer, crc32?: Buffer): boolean {
  if (part.Size !== body.length || !part.ETag) return false;
  if (part.ChecksumCRC32) return (crc32 ?? new Crc32().update(body).digest()).toString('base64') === part.ChecksumCRC32;
  const md5 = MD5_ETAG.exec(part.ETag)?.[1]?.toLowerCase();
  return md5 !== undefined && createHash('md5').update(body).digest('hex') === md5;
}

/**
 * What a part kept from the earlier attempt must come to, checked over the file's bytes at its
 * range before the upload is completed ({@link keptPartFigure}).
 */
export interface KeptPartFigure {
  /** For messages: `CRC32`, `SHA-256`, `SHA-1`, or `MD5 (its ETag)`. */
  name: string;
  /** The figure, binary. */
  expected: Buffer;
  /** A new hash of that kind, to feed the part's bytes to. */
  hash(): RangeChecksum;
}

/**
 * The figure a part kept from the earlier attempt (listed by S3 and recorded by the journal)
 * is checked by, over the file's bytes at its range, before the upload is completed: the
 * journal recognises a file by its size, modification time and inode, and a rewrite that keeps
 * them would otherwise complete an object of old bytes in the kept parts and new ones in the
 * rest. In order: the CRC32 S3 lists for the part, or else the one its answer gave when it was
 * sent (the journal's `checksum`): the SDK's default, and cheap (`zlib.crc32`); a SHA-256 or
 * SHA-1 the same way (a checksum algorithm chosen in the extra args); else its ETag when that is
 * an MD5 (S3 without SSE-KMS or SSE-C, moto; with them an ETag that is no MD5 fails the check,
 * which starts the file over). `undefined` when the part has none of these (CRC32C or CRC64NVME
 * only, and an ETag that is no MD5): such a part is sent again rather than kept unchecked.
 *
 * @example
 * ```ts
 * const figure = keptPartFigure(listedPart, recordedPart.checksum); // { name: 'CRC32', expected, hash }
 * ```
 */
export function keptPartFigure(part: Pick<ClientS3.Part, 'ETag' | ChecksumField>, recorded: string | undefined): KeptPartFigure | undefined {
  const checksum = (algorithm: string) => {
    const listed = part[`Checksum${algorithm.toUpperCase()}` as ChecksumField];
    const value = listed ?? (recorded?.startsWith(`${algorithm}:`) ? recorded.slice(algorithm.length + 1) : undefined);
    return value ? Buffer.from(value, 'base64') : undefined;
  };
  const crc32 = checksum('crc32');
  if (crc32) return { name: 'CRC32', expected: crc32, hash: () => new Crc32() };
  for (const [algorithm, name] of [['sha256', 'SHA-256'], ['sha1', 'SHA-1']] as const) {
    const expected = checksum(algorithm);
    if (expected) return { name, expected, hash: () => createHash(algorithm) };
  }
  const md5 = part.ETag ? MD5_ETAG.exec(part.ETag)?.[1] : undefined;
  if (md5) return { name: 'MD5 (its ETag)', expected: Buffer.from(md5, 'hex'), hash: () => createHash('md5') };
  return undefined;
}

/** Aborts a multipart upload; one that is already gone counts as aborted. */
async function abortUpload(send: SendCommand, s3: typeof ClientS3, shared: SharedParams, uploadId: string): Promise<void> {
  try {
    await send(new s3.AbortMultipartUploadCommand({ Bucket: shared.Bucket, Key: shared.Key, UploadId: uploadId, ...(shared.ExpectedBucketOwner ? { ExpectedBucketOwner: shared.ExpectedBucketOwner } : {}) }));
  } catch (error) {
    if (!isNoSuchUpload(error)) throw error;
  }
}

/** A difference between S3's clock and ours up to this (ms) is taken as none by {@link abortLostUploads}. */
export const MAX_UNCORRECTED_SKEW_MS = 2000;

/**
 * Aborts the multipart uploads in progress under the file's key that an earlier attempt may have
 * created without learning their id (`MultipartResume.lostUpload`: it died between sending
 * `CreateMultipartUpload` and recording the answer), but `keep` (an upload being continued) and
 * those initiated after {@link lostUploadCut} of `lost` (this machine's clock: the takeover, or a
 * day after the earlier attempt marked the creation; a give-up days after the kill must not take
 * in the live upload another process is sending to the same key).
 * Lists them with `ListMultipartUploads` (every page, the exact key only). Never fails the
 * file: a listing or an abort that fails is warned about (the upload's parts stay billed until a
 * lifecycle rule removes them). Returns false only when `signal` cut it off (sends are cut off
 * by the caller's `send`), so that the caller keeps its record of the lost upload.
 *
 * S3's `Initiated` is S3's clock: `clockOffsetMs` (S3's minus ours, which the SDK measures from
 * the `Date` of each answer: `client.config.systemClockOffset`) moves `initiatedBefore` onto it
 * when the two differ by more than {@link MAX_UNCORRECTED_SKEW_MS}. Without that, a machine
 * whose clock runs ahead of S3's (SigV4 lets it by up to 15 minutes) would abort the upload
 * another process started since the takeover. A smaller offset is left alone: the `Date` header
 * has whole seconds, so correcting by it would move the cut up to a second early, before a lost
 * upload that a rerun right after the kill should still abort.
 *
 * @example
 * ```ts
 * if (resume.lostUpload) await abortLostUploads(send, sdk.s3, shared, { target: 's3://b/k', logger, lost: resume.lostUpload, clockOffsetMs: () => client.config.systemClockOffset });
 * ```
 */
export async function abortLostUploads(
  send: SendCommand,
  s3: typeof ClientS3,
  shared: SharedParams,
  options: { target: string; logger?: Logger | undefined; keep?: string | undefined; lost: LostUpload; clockOffsetMs?: () => number | undefined; signal?: AbortSignal | undefined },
): Promise<boolean> {
  const owner = shared.ExpectedBucketOwner ? { ExpectedBucketOwner: shared.ExpectedBucketOwner } : {};
  const found: string[] = [];
  try {
    let markers: Pick<ClientS3.ListMultipartUploadsCommandInput, 'KeyMarker' | 'UploadIdMarker'> = {};
    for (;;) {
      const page = (await send(new s3.ListMultipartUploadsCommand({ Bucket: shared.Bucket, Prefix: shared.Key, ...owner, ...markers }))) as ClientS3.ListMultipartUploadsCommandOutput;
      // Read after an answer: the SDK has just measured it from that answer's Date.
      const offset = options.clockOffsetMs?.() ?? 0;
      const initiatedBefore = lostUploadCut(options.lost) + (Math.abs(offset) > MAX_UNCORRECTED_SKEW_MS ? offset : 0);
      for (const upload of page.Uploads ?? []) {
        // One initiated after this attempt took the record over is another process's, sending the same file right now.
        const earlier = upload.Initiated === undefined || upload.Initiated.getTime() <= initiatedBefore;
        if (upload.Key === shared.Key && upload.UploadId && upload.UploadId !== options.keep && earlier) found.push(upload.UploadId);
      }
      if (!page.IsTruncated || (!page.NextKeyMarker && !page.NextUploadIdMarker)) break;
      markers = { KeyMarker: page.NextKeyMarker, UploadIdMarker: page.NextUploadIdMarker };
    }
    for (const uploadId of found) await abortUpload(send, s3, shared, uploadId);
    if (found.length > 0) options.logger?.debug(`aborted ${found.length} multipart upload(s) of ${options.target} an earlier attempt created without recording their id`);
    return true;
  } catch (error) {
    // Cut off by the caller (an interrupt, a give-up's time budget): not a refusal, and not done.
    if (options.signal?.aborted) return false;
    options.logger?.warn(
      `An earlier attempt to upload ${options.target} was stopped while it created a multipart upload, and that upload could not be looked for or aborted: its parts stay billed until a lifecycle rule (AbortIncompleteMultipartUpload) removes them. Looking for it needs s3:ListBucketMultipartUploads, and aborting it s3:AbortMultipartUpload.`,
      { error: errorText(error) },
    );
    return true;
  }
}

/**
 * Gives up an earlier attempt's multipart upload that will not be continued (gone, another part
 * size, the file changed, resume off, or its parts could not be listed: `checkFailed`): aborts
 * it on the bucket and drops it from the journal. It never fails the file, as the journal must
 * never make an upload fail: an abort that fails is warned about (the upload's parts stay billed
 * until a lifecycle rule removes them), as is a check that failed. `changed`: a part kept from
 * that upload turned out not to hold the file's bytes (the file was rewritten since, keeping its
 * size and modification time); that is warned about too, as the file then starts over.
 *
 * @example
 * ```ts
 * await giveUpEarlierUpload(send, sdk.s3, shared, resume, { target: 's3://b/k', logger });
 * ```
 */
export async function giveUpEarlierUpload(
  send: SendCommand,
  s3: typeof ClientS3,
  shared: SharedParams,
  resume: MultipartResume,
  options: { target: string; logger?: Logger | undefined; checkFailed?: unknown; changed?: SourceChangedError | undefined },
): Promise<void> {
  const uploadId = resume.previous?.uploadId;
  if (uploadId === undefined) return;
  const { checkFailed, changed } = options;
  let abortFailed: unknown;
  try {
    await abortUpload(send, s3, shared, uploadId);
  } catch (error) {
    abortFailed = error;
  }
  if (checkFailed !== undefined || abortFailed !== undefined || changed !== undefined) {
    const what =
      changed !== undefined
        ? `${changed.path} changed since the earlier attempt to upload it to ${options.target}, though its size and modification time are the same: a part that attempt stored does not hold the file's bytes at its range now. Its multipart upload is not completed, and the file starts over`
        : checkFailed !== undefined
          ? `Could not list the parts of the earlier attempt's multipart upload of ${options.target}, so the file starts over`
          : `The earlier attempt's multipart upload of ${options.target} is not continued`;
    const orphan = abortFailed !== undefined ? `, and that upload (${uploadId}) could not be aborted: its parts stay billed until a lifecycle rule (AbortIncompleteMultipartUpload) removes them` : '';
    const permissions = checkFailed !== undefined || abortFailed !== undefined ? ' Continuing an upload needs s3:ListMultipartUploadParts, and aborting one s3:AbortMultipartUpload.' : '';
    options.logger?.warn(`${what}${orphan}.${permissions}`, {
      error: errorText(checkFailed ?? abortFailed ?? changed),
    });
  }
  await resume.aborted(uploadId);
}

/**
 * Gives up the multipart upload an earlier attempt left of a file nobody will upload again (its
 * local file was deleted before the rerun, `ArtifactStore.abandonUpload`): aborts
 * `earlier.previous` on the bucket, and with `earlier.lostUpload` the uploads in progress under
 * the key initiated before it ({@link abortLostUploads}, which warns itself about a listing it
 * could not make). Never throws: an abort that fails is `left`, with the upload, the permission
 * it needs and the lifecycle rule that removes it; one that `signal` cut off (the caller's
 * `send` passes it to the SDK) is `left` as interrupted.
 *
 * @example
 * ```ts
 * const outcome = await abandonEarlierUpload(send, sdk.s3, shared, { previous }, { target: 's3://b/k', logger });
 * ```
 */
export async function abandonEarlierUpload(
  send: SendCommand,
  s3: typeof ClientS3,
  shared: SharedParams,
  earlier: { previous?: PreviousMultipartUpload | undefined; lostUpload?: LostUpload | undefined },
  options: { target: string; logger?: Logger | undefined; clockOffsetMs?: () => number | undefined; signal?: AbortSignal | undefined },
): Promise<AbandonedUpload> {
  const uploadId = earlier.previous?.uploadId;
  let outcome: AbandonedUpload = { status: 'abandoned' };
  if (uploadId !== undefined) {
    try {
      await abortUpload(send, s3, shared, uploadId);
      options.logger?.debug(`aborted the multipart upload ${uploadId} of ${options.target}`);
    } catch (error) {
      // Cut off by the caller: left (an abort sent anyway is harmless: aborting again finds NoSuchUpload).
      if (options.signal?.aborted) return INTERRUPTED;
      outcome = {
        status: 'left',
        reason: `the multipart upload ${uploadId} of ${options.target} could not be aborted (${errorText(error)}): its parts stay billed until a lifecycle rule (AbortIncompleteMultipartUpload) removes them. Aborting it needs s3:AbortMultipartUpload.`,
      };
    }
  }
  if (earlier.lostUpload) {
    const lookedThrough = await abortLostUploads(send, s3, shared, { target: options.target, logger: options.logger, keep: uploadId, lost: earlier.lostUpload, clockOffsetMs: options.clockOffsetMs, signal: options.signal });
    // A search cut off is not a give-up: the record (the only handle to the lost upload) stays.
    if (!lookedThrough) return INTERRUPTED;
  }
  return outcome;
}

/** What {@link abandonEarlierUpload} returns when the caller's signal cut it off. */
const INTERRUPTED: AbandonedUpload = { status: 'left', reason: 'interrupted before it was given up' };

function pickListParams(shared: SharedParams): Pick<ClientS3.ListPartsCommandInput, 'Bucket' | 'Key' | 'ExpectedBucketOwner' | 'RequestPayer' | 'SSECustomerAlgorithm' | 'SSECustomerKey' | 'SSECustomerKeyMD5'> {
  const { Bucket, Key, ExpectedBucketOwner, RequestPayer, SSECustomerAlgorithm, SSECustomerKey, SSECustomerKeyMD5 } = shared;
  return {
    Bucket,
    Key,
    ...(ExpectedBucketOwner ? { ExpectedBucketOwner } : {}),
    ...(RequestPayer ? { RequestPayer } : {}),
    ...(SSECustomerAlgorithm ? { SSECustomerAlgorithm } : {}),
    ...(SSECustomerKey ? { SSECustomerKey } : {}),
    ...(SSECustomerKeyMD5 ? { SSECustomerKeyMD5 } : {}),
  };
}

function isNoSuchUpload(error: unknown): boolean {
  const e = error as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  return e?.name === 'NoSuchUpload' || e?.Code === 'NoSuchUpload' || e?.$metadata?.httpStatusCode === 404;
}
