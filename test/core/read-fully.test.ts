/** readFully: loops over short reads, stops at the end of the file, passes read errors on. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readFully, type PositionedRead } from '../../src/core/read-fully.js';

describe('readFully', () => {
  it('keeps reading when a read returns fewer bytes than asked', async () => {
    const source = Buffer.from('0123456789abcdef');
    const calls: Array<[number, number, number]> = [];
    // At most 3 bytes per call, as a signal-interrupted or network file system read may return.
    const stingy: PositionedRead = async (buffer, offset, length, position) => {
      calls.push([offset, length, position]);
      const n = Math.min(3, length, source.length - position);
      buffer.set(source.subarray(position, position + n), offset);
      return { bytesRead: Math.max(n, 0) };
    };
    const buffer = Buffer.alloc(12, 0x2e);
    expect(await readFully(stingy, buffer, 2, 10, 4)).toBe(10);
    expect(buffer.toString()).toBe('..456789abcd');
    expect(calls).toEqual([[2, 10, 4], [5, 7, 7], [8, 4, 10], [11, 1, 13]]);
  });

  it('returns what there was when the file ends first, and passes read errors on', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'au-readfully-')), 'short.bin');
    writeFileSync(path, 'hello');
    const handle = await open(path, 'r');
    try {
      const buffer = Buffer.alloc(8);
      expect(await readFully((b, o, l, p) => handle.read(b, o, l, p), buffer, 0, 8, 2)).toBe(3);
      expect(buffer.subarray(0, 3).toString()).toBe('llo');
    } finally {
      await handle.close();
    }
    const failing: PositionedRead = async () => {
      throw Object.assign(new Error('EIO'), { code: 'EIO' });
    };
    await expect(readFully(failing, Buffer.alloc(1), 0, 1, 0)).rejects.toThrow('EIO');
  });
});
