/**
 * The part URLs of MLflow's proxied multipart on an Azure Blob destination (pure): block ids of
 * one length put into the SAS URLs without touching the signature, the block list URL, and the
 * id length a Get Block List answer shows.
 */
import { describe, expect, it } from 'vitest';
import { blockIdLengthOf, isAzureBlockUrl, uncommittedBlockListUrl, withAzureBlockId } from '../../src/stores/azure-part-urls.js';

// The shape MLflow 3.17.2 answers mpu/create with (azure_blob_artifact_repo.py).
const sas = 'se=2026-12-06T01%3A26%3A19Z&sp=rw&sv=2026-10-06&sr=b&sig=ogMyRm%2BPgfWpu6ykCg2oybxS36Cosn1a5K6SmHZLIFc%3D';
const part = (i: number) => `https://acct.blob.core.windows.net/c/0/run/artifacts/model.bin?comp=block&blockid=${encodeURIComponent(Buffer.from(`mlflow_block_${i}`).toString('base64'))}&${sas}`;
const idOf = (url: string) => Buffer.from(new URL(url).searchParams.get('blockid')!, 'base64').toString();

describe('Azure part URLs of MLflow proxied multipart', () => {
  it('recognises Put Block URLs only', () => {
    expect(isAzureBlockUrl(part(1))).toBe(true);
    expect(isAzureBlockUrl('https://bucket.s3.amazonaws.com/key?partNumber=1&uploadId=x&X-Amz-Signature=y')).toBe(false);
    expect(isAzureBlockUrl('https://acct.blob.core.windows.net/c/f?comp=blocklist&sig=x')).toBe(false);
  });

  it('gives every part an id of one length, 18 bytes by default, and leaves the SAS byte for byte', () => {
    expect(idOf(withAzureBlockId(part(1), 1))).toBe('mlflow_block_00001');
    expect(idOf(withAzureBlockId(part(10), 10))).toBe('mlflow_block_00010');
    expect(withAzureBlockId(part(10), 10).endsWith(`&${sas}`)).toBe(true);
    // Another upload's length: cut or padded, the 5-digit number kept.
    expect(idOf(withAzureBlockId(part(3), 3, 14))).toBe('mlflow_bl00003');
    expect(idOf(withAzureBlockId(part(3), 3, 5))).toBe('00003');
    expect(idOf(withAzureBlockId(part(3), 3, 22))).toBe('mlflow_block_____00003');
  });

  it('lists the uncommitted blocks of the same blob under the same SAS', () => {
    expect(uncommittedBlockListUrl(part(2))).toBe(`https://acct.blob.core.windows.net/c/0/run/artifacts/model.bin?comp=blocklist&blocklisttype=uncommitted&${sas}`);
  });

  it('reads the one id length of a Get Block List answer', () => {
    const list = (...names: string[]) =>
      `<?xml version="1.0" encoding="utf-8"?><BlockList><CommittedBlocks /><UncommittedBlocks>${names.map((n) => `<Block><Name>${Buffer.from(n).toString('base64')}</Name><Size>3</Size></Block>`).join('')}</UncommittedBlocks></BlockList>`;
    expect(blockIdLengthOf(list('mlflow_block_1', 'mlflow_block_2'))).toBe(14);
    expect(blockIdLengthOf(list())).toBeUndefined();
    expect(blockIdLengthOf(list('abcd'))).toBeUndefined(); // too short for a 5-digit part number
    expect(blockIdLengthOf(list('x'.repeat(65)))).toBeUndefined();
  });
});
