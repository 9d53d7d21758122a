/**
 * The hints of Azure's refusals of a write that depend on the blob at the name (a lease, a
 * policy, its tier or kind, the blocks another upload left), not on the credentials: the same
 * for the `wasbs://`/`abfss://` store (`azure-blob-store.ts`) and for the SAS URLs an Azure ML
 * workspace hands out (`azure-sas-blob.ts`). None of these is retried (`core/retry.ts` retries
 * 408, 429 and 5xx): the same request gets the same answer until someone changes the blob.
 *
 * @module
 */

/**
 * The hint of Azure's error `code` for a write of a blob in `container` (named in the `az`
 * commands it suggests; `<container>` when unknown), or `undefined` for a code that does not
 * depend on the blob at the name (credentials, a missing container, a busy account).
 *
 * @example
 * ```ts
 * blobRefusalHint('BlobArchived', 'mlflow');
 * // 'The blob at this artifact path is in the archive tier ... (`az storage blob delete --container-name mlflow --name <name>`) ...'
 * ```
 */
export function blobRefusalHint(code: string | undefined, container?: string): string | undefined {
  const containerName = container ?? '<container>';
  switch (code) {
    case 'InvalidMd5':
    case 'Md5Mismatch':
      return 'The bytes were damaged on the way (the MD5 Azure computed does not match); upload again.';
    case 'InvalidBlockList':
      return 'A block went missing before the commit (another upload of the same artifact at the same time?); upload again.';
    case 'InvalidBlobOrBlock':
      // Azure wants one block id length per blob; ours take the length of another upload's
      // (azure-block-upload.ts), down to 12 bytes (docs/azure.md).
      return 'Azure refused the block beside uncommitted blocks that another upload of this blob left, whose ids are shorter than the 12 bytes this library needs (another tool, or an upload killed within the last week). Azure discards them at the blob\'s next commit or after about a week: finish that other upload with the tool that started it, or wait, then upload again.';
    case 'BlockCountExceedsLimit':
      // Put Block (409): a blob name holds at most 100,000 uncommitted blocks. One upload of ours
      // cannot get there (a file is at most 50,000 blocks, and its ids name their bytes, so a
      // rerun of the same bytes stages the same ids again): it takes uploads that never
      // committed, of other bytes or by another tool (random ids per attempt), kept for a week
      // after the name's last Put Block. A commit or a Put Blob at the name discards them (Put
      // Block List's remarks); 409 is not retried, and the same block gets the same answer.
      return `Azure holds 100,000 uncommitted blocks for this blob, its limit: blocks staged by uploads of it that never committed (killed or failed uploads of other bytes, or of another tool), kept until a blob is written at the name or for a week after the last block staged there. Stop whatever keeps staging blocks there, then write an empty blob at the name in one request, which discards them (\`az storage blob upload --container-name ${containerName} --name <name> --file <an empty file> --overwrite\`; this upload then replaces it), and upload again; or upload under another artifact path.`;
    case 'LeaseIdMissing':
    case 'LeaseIdMismatchWithBlobOperation':
      // Not retried (412): the lease stays until its holder releases it, or for ever (infinite leases).
      return `Another client holds a lease on this blob: Azure takes writes to it only with that lease's id, which this upload does not have. Wait until that client is done with it, or break the lease (\`az storage blob lease break --container-name ${containerName} --blob-name <name>\`) if nothing should hold it, then upload again.`;
    case 'BlobArchived':
      // Not retried (409), as every code below: the blob stays as it is until someone acts on it.
      return `The blob at this artifact path is in the archive tier (moved there by a lifecycle rule, or by hand), and an archived blob cannot be overwritten. Upload under another artifact path or to another run, or delete the archived blob (\`az storage blob delete --container-name ${containerName} --name <name>\`) and upload again.`;
    case 'BlobBeingRehydrated':
      return `The blob at this artifact path is being rehydrated from the archive tier, which takes up to hours, and cannot be overwritten meanwhile: upload again once it is done (\`az storage blob show --container-name ${containerName} --name <name> --query properties.rehydrationStatus\`), or under another artifact path or to another run.`;
    case 'InvalidBlobType':
    case 'OperationNotAllowedOnIncrementalCopyBlob':
    case 'BlobOperationNotSupported':
      // Another tool's blob at the name: an append or page blob (InvalidBlobType), an incremental
      // copy (a page blob), or a file made through the Data Lake API of an HNS account.
      return `The blob at this artifact path is not a block blob this upload can write over (an append or page blob, an incremental copy, or a file written through the Data Lake API of an abfss:// account): Azure refuses its blocks. Delete it (\`az storage blob delete --container-name ${containerName} --name <name>\`) if nothing needs it and upload again, or upload under another artifact path.`;
    case 'BlobImmutableDueToPolicy':
    case 'BlobImmutableDueToLegalHold':
      // Not retried (409): the policy holds until the retention period ends or the hold is lifted.
      return `The container${container !== undefined ? ` "${container}"` : ''} is under an immutability policy (time-based retention or a legal hold): a blob there cannot be overwritten or deleted while it holds. Upload under another artifact path or to another run, or have the policy lifted by the storage account's owner.`;
    default:
      return undefined;
  }
}
