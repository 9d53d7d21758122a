/**
 * Which parts of an earlier `s3://` multipart upload a rerun keeps without the journal's word for
 * them (`verifyUnrecordedParts`): a part S3 lists is kept only when the local bytes at its range
 * give S3's own figure for it (the listed CRC32, else an MD5 ETag) at the size its number must
 * have; anything else is sent again. The end-to-end case (a part whose answer a SIGKILL lost,
 * against moto) is in test/uploader/crash-resume.test.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Part } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { verifyUnrecordedParts } from '../../src/stores/s3-resume.js';
import type { SourceFile } from '../../src/stores/source-file.js';

const partSize = 3 * 1024 * 1024 + 5; // not a multiple of the 1 MiB reads
const bytes = randomBytes(partSize * 3 + 1234); // 4 parts, the last one short
const rangeOf = (n: number) => bytes.subarray((n - 1) * partSize, Math.min(n * partSize, bytes.length));
const md5Etag = (b: Buffer) => `"${createHash('md5').update(b).digest('hex')}"`;
const crc32Of = (b: Buffer) => {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc32(b) >>> 0);
  return out.toString('base64');
};

let opened: SourceFile | undefined;
afterEach(async () => {
  await opened?.handle.close();
  opened = undefined;
});

async function source(): Promise<SourceFile> {
  const path = join(mkdtempSync(join(tmpdir(), 'au-s3-resume-')), 'weights.bin');
  writeFileSync(path, bytes);
  opened = { handle: await open(path, 'r'), path, size: bytes.length };
  return opened;
}

describe('verifyUnrecordedParts', () => {
  it('keeps a listed part whose MD5 ETag is that of the local bytes, with no checksum unless asked for one', async () => {
    const listed: Part[] = [
      { PartNumber: 2, ETag: md5Etag(rangeOf(2)), Size: partSize },
      { PartNumber: 4, ETag: md5Etag(rangeOf(4)), Size: rangeOf(4).length },
    ];
    const kept = await verifyUnrecordedParts(listed, new Map(), { partSize, source: await source(), crc32: false });
    expect([...kept.keys()]).toEqual([2, 4]);
    expect(kept.get(2)).toEqual({ completed: { PartNumber: 2, ETag: md5Etag(rangeOf(2)) }, size: partSize });
    expect(kept.get(4)!.size).toBe(rangeOf(4).length);

    // Asked for (the earlier attempt sent CRC32s): the CRC32 of the local bytes stands for the listing's.
    const withCrc = await verifyUnrecordedParts(listed, new Map(), { partSize, source: opened!, crc32: true });
    expect(withCrc.get(2)!.checksum).toBe(`crc32:${crc32Of(rangeOf(2))}`);
    expect(withCrc.get(2)!.completed).toEqual({ PartNumber: 2, ETag: md5Etag(rangeOf(2)) });
  });

  it('keeps a listed part by its CRC32 whatever its ETag (SSE-KMS), and passes the checksum on for the complete', async () => {
    const listed: Part[] = [{ PartNumber: 1, ETag: '"not-an-md5-of-anything"', Size: partSize, ChecksumCRC32: crc32Of(rangeOf(1)) }];
    const kept = await verifyUnrecordedParts(listed, new Map(), { partSize, source: await source(), crc32: false });
    expect(kept.get(1)).toEqual({
      completed: { PartNumber: 1, ETag: '"not-an-md5-of-anything"', ChecksumCRC32: crc32Of(rangeOf(1)) },
      size: partSize,
      checksum: `crc32:${crc32Of(rangeOf(1))}`,
    });
  });

  it('sends again every part S3 does not show to hold the local bytes', async () => {
    const other = randomBytes(partSize);
    const listed: Part[] = [
      // Other bytes (an MD5 ETag of something else).
      { PartNumber: 1, ETag: md5Etag(other), Size: partSize },
      // The listed CRC32 decides when there is one, even if the ETag is the right MD5.
      { PartNumber: 2, ETag: md5Etag(rangeOf(2)), Size: partSize, ChecksumCRC32: crc32Of(other) },
      // A size the part's number cannot have.
      { PartNumber: 3, ETag: md5Etag(rangeOf(3).subarray(1)), Size: partSize - 1 },
      // Nothing to check against: an ETag that is no MD5, no CRC32.
      { PartNumber: 4, ETag: '"abc-2"', Size: rangeOf(4).length },
      // Beyond the file's parts, without a number or an ETag.
      { PartNumber: 5, ETag: md5Etag(Buffer.alloc(0)), Size: 0 },
      { ETag: md5Etag(rangeOf(1)), Size: partSize },
      { PartNumber: 1, Size: partSize },
    ];
    const kept = await verifyUnrecordedParts(listed, new Map(), { partSize, source: await source(), crc32: true });
    expect(kept.size).toBe(0);
  });

  it('leaves alone the parts already kept from the journal, and stops when the signal has fired', async () => {
    const listed: Part[] = [
      { PartNumber: 1, ETag: md5Etag(rangeOf(1)), Size: partSize },
      { PartNumber: 3, ETag: md5Etag(rangeOf(3)), Size: partSize },
    ];
    const kept = await verifyUnrecordedParts(listed, new Map([[1, {}]]), { partSize, source: await source(), crc32: false });
    expect([...kept.keys()]).toEqual([3]);

    const aborted = AbortSignal.abort(new Error('stopped'));
    await expect(verifyUnrecordedParts(listed, new Map(), { partSize, source: opened!, crc32: false, signal: aborted })).rejects.toThrow('stopped');
  });
});
