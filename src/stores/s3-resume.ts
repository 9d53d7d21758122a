/**
 * Part-level resume of `s3://` multipart uploads (see `MultipartResume` in artifact-store.ts):
 * which parts of an earlier attempt's upload S3 still holds (`ListParts`, paged), which of them
 * match what the journal recorded (same part number, size, ETag, and checksum when both have
 * one), and aborting an upload nobody will complete.
 *
 * Only types of `@aws-sdk/client-s3` are imported here; the store passes the loaded SDK.
 *
 * @module
 */
import type * as ClientS3 from '@aws-sdk/client-s3';
import type { PreviousMultipartUpload, StoredPart } from './artifact-store.js';

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
  const count = Math.ceil(size / partSize);
  const keep = new Map<number, ClientS3.CompletedPart & { Size: number }>();
  for (const part of listed) {
    const n = part.PartNumber;
    if (n === undefined || n < 1 || n > count || !part.ETag) continue;
    const expected = Math.min(partSize, size - (n - 1) * partSize);
    const mine = recorded.get(n);
    if (!mine || part.Size !== expected || mine.size !== expected || mine.etag !== part.ETag) continue;
    const theirs = partChecksum(part);
    if (mine.checksum && theirs && mine.checksum !== theirs) continue;
    keep.set(n, { PartNumber: n, ETag: part.ETag, Size: expected, ...checksumFields(part) });
  }
  return keep;
}

/**
 * Aborts a multipart upload; one that is already gone counts as aborted.
 *
 * @example
 * ```ts
 * await abortUpload(send, sdk.s3, shared, previous.uploadId);
 * ```
 */
export async function abortUpload(send: SendCommand, s3: typeof ClientS3, shared: SharedParams, uploadId: string): Promise<void> {
  try {
    await send(new s3.AbortMultipartUploadCommand({ Bucket: shared.Bucket, Key: shared.Key, UploadId: uploadId, ...(shared.ExpectedBucketOwner ? { ExpectedBucketOwner: shared.ExpectedBucketOwner } : {}) }));
  } catch (error) {
    if (!isNoSuchUpload(error)) throw error;
  }
}

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
