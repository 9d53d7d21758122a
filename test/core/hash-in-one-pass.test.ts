/**
 * Several hashes of the same bytes in one pass, slice by slice: each ends exactly as if it had
 * been fed the bytes whole, whatever the length against the slice size.
 */
import { createHash, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Crc32, hashInOnePass, ONE_PASS_SLICE_BYTES, sha256AndMd5 } from '../../src/core/hash-in-one-pass.js';

describe('hashInOnePass', () => {
  it.each([0, 1, ONE_PASS_SLICE_BYTES - 1, ONE_PASS_SLICE_BYTES, ONE_PASS_SLICE_BYTES + 1, 8 * ONE_PASS_SLICE_BYTES + 3])('gives each hash the digest of the whole %i bytes', (length) => {
    const bytes = randomBytes(length);
    const sha256 = createHash('sha256');
    const md5 = createHash('md5');
    const crc = new Crc32();
    hashInOnePass(bytes, [sha256, md5, crc]);
    expect(sha256.digest('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(md5.digest('hex')).toBe(createHash('md5').update(bytes).digest('hex'));
    expect(crc.digest().readUInt32BE()).toBe(crc32(bytes) >>> 0);
  });

  it('continues hashes already fed, in order', () => {
    const bytes = randomBytes(3 * ONE_PASS_SLICE_BYTES + 5);
    const sha256 = createHash('sha256').update(bytes.subarray(0, 100));
    const crc = new Crc32().update(bytes.subarray(0, 100));
    hashInOnePass(bytes.subarray(100), [sha256, crc]);
    expect(sha256.digest('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(crc.digest().toString('base64')).toBe(new Crc32().update(bytes).digest().toString('base64'));
  });
});

describe('sha256AndMd5', () => {
  it('gives the sha256 (hex) and the MD5 (bytes) of a body', () => {
    const bytes = randomBytes(3 * ONE_PASS_SLICE_BYTES + 11);
    expect(sha256AndMd5(bytes)).toEqual({ sha256: createHash('sha256').update(bytes).digest('hex'), md5: createHash('md5').update(bytes).digest() });
  });
});

describe('Crc32', () => {
  it('is S3\'s x-amz-checksum-crc32: the big-endian CRC32, fed in pieces or whole', () => {
    expect(new Crc32().update(Buffer.from('hello')).digest().toString('base64')).toBe('NhCmhg==');
    expect(new Crc32().update(Buffer.from('hel')).update(Buffer.from('lo')).digest().toString('base64')).toBe('NhCmhg==');
    expect(new Crc32().digest().toString('base64')).toBe('AAAAAA==');
  });
});
