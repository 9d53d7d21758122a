/**
 * The block ids of Azure block uploads (pure): an id names its block's index and bytes, and has
 * the length of the ids earlier versions gave, since Azure refuses a block id of another length
 * than the blob's uncommitted ones.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { blockId, blockIds } from '../../src/stores/azure-block-upload.js';

const md5 = (data: string) => createHash('md5').update(data).digest();
const raw = (id: string) => Buffer.from(id, 'base64').toString();

describe('blockId', () => {
  it('is the index in 4 base-36 digits and 15 characters of the MD5, 19 bytes like the prefix ids before it', () => {
    const id = blockId(2, md5('block two'));
    expect(raw(id)).toBe(`0002${md5('block two').toString('base64url').slice(0, 15)}`);
    expect(raw(id)).toHaveLength(19);
    expect(raw(blockIds(1, '3f9a0c1b2d4e')[0]!)).toHaveLength(19);
    // Azure's last block index (50,000 blocks) still fits the 4 digits.
    expect(raw(blockId(49_999, md5('x'))).slice(0, 4)).toBe('12kv');
    expect(Buffer.from(id, 'base64').toString('base64')).toBe(id); // canonical base64, as Azure checks
  });

  it('pads to another upload\'s id length with dots, keeping the index and MD5 first', () => {
    const id = raw(blockId(2, md5('block two'), 48));
    expect(id).toHaveLength(48);
    expect(id).toBe(raw(blockId(2, md5('block two'))).padEnd(48, '.'));
  });

  it('takes a shorter length with fewer MD5 characters, down to 8', () => {
    expect(raw(blockId(2, md5('block two'), 18))).toBe(`0002${md5('block two').toString('base64url').slice(0, 14)}`);
    expect(raw(blockId(2, md5('block two'), 12))).toBe(`0002${md5('block two').toString('base64url').slice(0, 8)}`);
  });

  it('names the bytes: the same block gives the same id, other bytes or another index another', () => {
    expect(blockId(7, md5('a'))).toBe(blockId(7, md5('a')));
    expect(blockId(7, md5('b'))).not.toBe(blockId(7, md5('a')));
    expect(blockId(8, md5('a'))).not.toBe(blockId(7, md5('a')));
  });
});

describe('blockIds (uploads recorded before blockId)', () => {
  it('is the prefix and the zero-padded index', () => {
    expect(blockIds(2, '3f9a0c1b2d4e').map(raw)).toEqual(['3f9a0c1b2d4e-000000', '3f9a0c1b2d4e-000001']);
  });
});
