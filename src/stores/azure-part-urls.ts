/**
 * MLflow's proxied multipart upload when the server's artifact destination is Azure Blob: the
 * part URLs `mpu/create` hands out are `Put Block` SAS URLs, and `mpu/complete` commits the
 * block ids it reads back from the URLs the client sends with the parts
 * (`AzureBlobArtifactRepository` in mlflow/store/artifact/azure_blob_artifact_repo.py).
 *
 * MLflow names the blocks `mlflow_block_{i}`, so part 10 has a longer id than parts 1 to 9, and
 * Azure refuses a block whose id has another length than the blob's uncommitted ones
 * (`InvalidBlobOrBlock`): MLflow 3.17.2's own client fails on every file of 10 parts or more.
 * The SAS signs the blob, not the block id, so the client may name the blocks itself: one length
 * for every part, and, beside blocks another upload left on the blob with ids of another
 * length, theirs. Azure answers `Put Block` without an ETag; the commit needs none.
 *
 * @module
 */
import { uncommittedIdLengthOf } from './azure-block-upload.js';

/** Bytes in a part's block id: `mlflow_block_00001`, MLflow's name with a fixed-width number. */
export const AZURE_PART_ID_LENGTH = 18;

/** True for an Azure `Put Block` URL (`comp=block` and a `blockid` in the query). */
export function isAzureBlockUrl(url: string): boolean {
  const query = new URL(url).searchParams;
  return query.get('comp') === 'block' && query.has('blockid');
}

/**
 * `url` with the block id of part `partNumber` at `length` bytes (before base64):
 * `mlflow_block_` cut or padded with `_` to make room for the 5-digit number (MLflow allows
 * 10,000 parts), so every part of one upload has an id of one length.
 *
 * @example
 * ```ts
 * const url = withAzureBlockId('https://a.blob.core.windows.net/c/f.bin?comp=block&blockid=bWxmbG93X2Jsb2NrXzE%3D&sig=x', 1, 18);
 * Buffer.from(new URL(url).searchParams.get('blockid')!, 'base64').toString(); // 'mlflow_block_00001'
 * ```
 */
export function withAzureBlockId(url: string, partNumber: number, length = AZURE_PART_ID_LENGTH): string {
  const digits = String(partNumber).padStart(5, '0');
  const id = `${'mlflow_block_'.slice(0, Math.max(0, length - digits.length)).padEnd(length - digits.length, '_')}${digits}`;
  // Only the block id changes: the SAS parameters stay byte for byte as the server signed them.
  return url.replace(/([?&]blockid=)[^&#]*/, `$1${encodeURIComponent(Buffer.from(id).toString('base64'))}`);
}

/** The `Get Block List` (uncommitted) URL of the blob a part URL stages into, under the same SAS. */
export function uncommittedBlockListUrl(partUrl: string): string {
  return partUrl.replace(/([?&])blockid=[^&#]*&?/, '$1').replace(/([?&])comp=block(?=&|#|$)/, '$1comp=blocklist&blocklisttype=uncommitted').replace(/[?&]$/, '');
}

/**
 * The one length (bytes, before base64) of the block ids in a `Get Block List` answer, when part
 * ids can take it (5 to 64 bytes); else undefined (no blocks, or ids of several lengths).
 *
 * @example
 * ```ts
 * blockIdLengthOf('<BlockList><UncommittedBlocks><Block><Name>bWxmbG93X2Jsb2NrXzE=</Name><Size>5</Size></Block></UncommittedBlocks></BlockList>'); // 14
 * ```
 */
export function blockIdLengthOf(blockListXml: string): number | undefined {
  return uncommittedIdLengthOf([...blockListXml.matchAll(/<Name>([^<]*)<\/Name>/g)].map((m) => m[1]!), 5);
}
