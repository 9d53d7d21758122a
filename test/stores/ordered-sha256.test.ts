/**
 * The in-order sha256 of a file read in ranges out of order (multipart parts, blocks, resumable
 * chunks): every byte hashed once, in file order, whatever order and repeats the ranges come in;
 * bytes never fed (dropped, or sent by an earlier process) read from the file at the end; and the
 * parallel part loop (`sendFileRanges`) hashing from the buffers it sends, or, for a resumed file
 * (parts skipped), with a reader of its own that no send waits for.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RangeStop, sendFileRanges } from '../../src/stores/file-ranges.js';
import { OrderedSha256, sendHashingBeside } from '../../src/stores/ordered-sha256.js';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

function fileOf(bytes: Buffer): string {
  const path = join(mkdtempSync(join(tmpdir(), 'au-ordered-sha256-')), 'f.bin');
  writeFileSync(path, bytes);
  return path;
}

/**
 * An open file whose reads below `heldBelow` wait until `release()` is called; with `failAt`,
 * the read that reaches that position fails instead (as a disk error would). `bytesRead()`
 * counts what was read through it.
 */
async function heldFile(path: string, heldBelow: number, failAt?: number): Promise<{ handle: FileHandle; release: () => void; bytesRead: () => number; close: () => Promise<void> }> {
  const real = await open(path, 'r');
  let release!: () => void;
  let read = 0;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const handle = {
    read: async (buffer: Buffer, offset: number, length: number, position: number) => {
      if (position < heldBelow) await gate;
      if (failAt !== undefined && position + length > failAt) throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
      const result = await real.read(buffer, offset, length, position);
      read += result.bytesRead;
      return result;
    },
  } as unknown as FileHandle;
  return { handle, release, bytesRead: () => read, close: () => real.close() };
}

describe('OrderedSha256', () => {
  it('hashes chunks fed in order, repeated and overlapping, as the file, reading nothing', async () => {
    const bytes = randomBytes(1000);
    const hasher = new OrderedSha256(bytes.length);
    hasher.update(0, bytes.subarray(0, 200));
    hasher.update(0, bytes.subarray(0, 200)); // a retried request reads it again
    hasher.update(100, bytes.subarray(100, 350)); // a chunk GCS kept only part of, sent again
    hasher.update(350, bytes.subarray(350, 1000));
    expect(hasher.position).toBe(1000);
    // Nothing left to read: a path that does not exist is never opened.
    expect(await hasher.digest('/nonexistent/never-read')).toBe(sha256(bytes));
  });

  it('drops chunks fed ahead of the hash (nothing is copied); the gaps are read from the file at the end', async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    const hasher = new OrderedSha256(bytes.length);
    for (let start = 1024 * 1024; start < bytes.length; start += 64 * 1024) hasher.update(start, bytes.subarray(start, start + 64 * 1024));
    expect(hasher.position).toBe(0);
    hasher.update(0, bytes.subarray(0, 1000));
    expect(hasher.position).toBe(1000);
    expect(await hasher.digest(fileOf(bytes))).toBe(sha256(bytes));
  });

  it('reads what an earlier process sent (readUpTo) before the rest is fed', async () => {
    const bytes = randomBytes(5000);
    const hasher = new OrderedSha256(bytes.length);
    await hasher.readUpTo(fileOf(bytes), 3000);
    expect(hasher.position).toBe(3000);
    hasher.update(3000, bytes.subarray(3000));
    expect(await hasher.digest('/nonexistent/never-read')).toBe(sha256(bytes));
  });

  it('fails with PATH_UNREADABLE when a gap cannot be read because the file shrank', async () => {
    const bytes = randomBytes(5000);
    const hasher = new OrderedSha256(bytes.length + 100);
    await expect(hasher.digest(fileOf(bytes))).rejects.toMatchObject({ code: 'PATH_UNREADABLE' });
  });

  it('hashInTurn waits for the ranges before it, and gives up without hashing when the upload stops', async () => {
    const bytes = randomBytes(300);
    const hasher = new OrderedSha256(bytes.length);
    const stop = new AbortController();
    const second = hasher.hashInTurn(100, bytes.subarray(100, 200), stop.signal);
    const third = hasher.hashInTurn(200, bytes.subarray(200), stop.signal);
    await Promise.resolve();
    expect(hasher.position).toBe(0);
    await hasher.hashInTurn(0, bytes.subarray(0, 100), stop.signal);
    await Promise.all([second, third]);
    expect(await hasher.digest('/nonexistent/never-read')).toBe(sha256(bytes));

    const stopped = new OrderedSha256(10);
    const waiting = stopped.hashInTurn(5, Buffer.alloc(5), stop.signal);
    stop.abort();
    await waiting;
    expect(stopped.position).toBe(0);
  });
});

describe('OrderedSha256.updateAlongside (a checksum sent with each range)', () => {
  it('feeds the checksum every range, and the sha256 only the range in turn, in one pass', async () => {
    const bytes = randomBytes(300 * 1024 + 7);
    const hasher = new OrderedSha256(bytes.length);
    const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
    const ahead = createHash('md5');
    // Ahead of the hash: only the checksum takes it; the caller hashes it in turn later.
    expect(hasher.updateAlongside(200 * 1024, bytes.subarray(200 * 1024), ahead)).toBe(false);
    expect(hasher.position).toBe(0);
    expect(ahead.digest('hex')).toBe(md5(bytes.subarray(200 * 1024)));
    // In turn: both, and a range waiting for it is woken.
    const waiting = hasher.hashInTurn(200 * 1024, bytes.subarray(200 * 1024), new AbortController().signal);
    const inTurn = createHash('md5');
    expect(hasher.updateAlongside(0, bytes.subarray(0, 200 * 1024), inTurn)).toBe(true);
    expect(inTurn.digest('hex')).toBe(md5(bytes.subarray(0, 200 * 1024)));
    await waiting;
    expect(hasher.position).toBe(bytes.length);
    expect(await hasher.digest('/nonexistent/never-read')).toBe(sha256(bytes));
  });
});

describe('sendFileRanges with a hasher', () => {
  it('sends each range with its own checksum: in one pass with the sha256 when in turn, alone when read ahead', async () => {
    const rangeSize = 200 * 1024;
    const bytes = randomBytes(4 * rangeSize + 999);
    const path = fileOf(bytes);
    // Range 0's read waits until range 1 was sent: range 1 is read ahead of the hash.
    const { handle, release, close } = await heldFile(path, rangeSize);
    try {
      const hasher = new OrderedSha256(bytes.length);
      const seen: Array<{ index: number; hashedAtSend: number }> = [];
      await sendFileRanges({ handle, path, size: bytes.length }, new RangeStop(), {
        rangeSize,
        concurrency: 2,
        hasher,
        rangeChecksum: () => createHash('md5'),
        send: async (index, body, checksum) => {
          expect(checksum?.toString('hex')).toBe(createHash('md5').update(body).digest('hex'));
          expect(body.equals(bytes.subarray(index * rangeSize, index * rangeSize + body.length))).toBe(true);
          seen.push({ index, hashedAtSend: hasher.position });
          if (index === 1) release();
        },
      });
      // Range 1 went before the hash reached it; range 0 (in turn) was hashed before it was sent.
      expect(seen[0]).toEqual({ index: 1, hashedAtSend: 0 });
      expect(seen.find((s) => s.index === 0)?.hashedAtSend).toBeGreaterThanOrEqual(rangeSize);
      expect(seen.map((s) => s.index).sort()).toEqual([0, 1, 2, 3, 4]);
      expect(await hasher.digest('/nonexistent/never-read')).toBe(sha256(bytes));
    } finally {
      await close();
    }
  });

  it('reads a resumed file once: the reader reads the kept ranges, and hashes the rest from the buffers being sent, in one pass with their checksums', async () => {
    const rangeSize = 64 * 1024;
    const bytes = randomBytes(16 * rangeSize);
    const path = fileOf(bytes);
    const { handle, bytesRead, close } = await heldFile(path, 0);
    try {
      const hasher = new OrderedSha256(bytes.length);
      const checksums = new Map<number, string>();
      await sendFileRanges({ handle, path, size: bytes.length }, new RangeStop(), {
        rangeSize,
        concurrency: 3,
        skip: new Set([0, 1, 2, 3]),
        hasher,
        rangeChecksum: () => createHash('md5'),
        send: async (index, body, checksum) => {
          checksums.set(index, checksum!.toString('hex'));
          // Each send ends only once the hash has passed its range: no range is done (its
          // buffer gone) before the reader gets to it, so none needs reading from the file again.
          while (hasher.position < (index + 1) * rangeSize) await new Promise((resolve) => setImmediate(resolve));
        },
      });
      expect(bytesRead()).toBe(bytes.length);
      expect([...checksums.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i + 4));
      for (const [index, checksum] of checksums) expect(checksum).toBe(createHash('md5').update(bytes.subarray(index * rangeSize, (index + 1) * rangeSize)).digest('hex'));
      expect(await hasher.digest('/nonexistent/never-read')).toBe(sha256(bytes));
    } finally {
      await close();
    }
  });

  it('hashes a resumed file (some ranges skipped) whole and in order, never more buffers than workers, each range sent with its checksum', async () => {
    const bytes = randomBytes(10 * 1000 + 123);
    const path = fileOf(bytes);
    const handle = await open(path, 'r');
    try {
      const hasher = new OrderedSha256(bytes.length);
      const sent: number[] = [];
      const buffers = new Set<ArrayBufferLike>();
      await sendFileRanges({ handle, path, size: bytes.length }, new RangeStop(), {
        rangeSize: 1000,
        concurrency: 3,
        skip: new Set([0, 4, 5]),
        hasher,
        rangeChecksum: () => createHash('md5'),
        // Later ranges answer sooner: the hash must still go in file order.
        send: async (index, body, checksum) => {
          expect(checksum?.toString('hex')).toBe(createHash('md5').update(bytes.subarray(index * 1000, index * 1000 + body.length)).digest('hex'));
          buffers.add(body.buffer);
          expect(body.equals(bytes.subarray(index * 1000, index * 1000 + body.length))).toBe(true);
          for (let turn = 0; turn < 11 - index; turn++) await new Promise((resolve) => setImmediate(resolve));
          // A retry sends the buffer again: it must still hold this range, untouched by the hash or another read.
          expect(body.equals(bytes.subarray(index * 1000, index * 1000 + body.length))).toBe(true);
          sent.push(index);
        },
      });
      expect(sent.sort((a, b) => a - b)).toEqual([1, 2, 3, 6, 7, 8, 9, 10]);
      expect(buffers.size).toBeLessThanOrEqual(3);
      expect(hasher.position).toBe(bytes.length);
      expect(await hasher.digest(path)).toBe(sha256(bytes));
    } finally {
      await handle.close();
    }
  });

  it('never holds a send for the hash of a resumed file: every range goes while the kept ranges are still unread', async () => {
    const rangeSize = 64 * 1024;
    const bytes = randomBytes(32 * rangeSize);
    const path = fileOf(bytes);
    const kept = 16; // ranges 0-15 an earlier process sent
    // The kept bytes can be read only once every range was sent: a send that waited for their hash would never happen.
    const { handle, release, close } = await heldFile(path, kept * rangeSize);
    try {
      const hasher = new OrderedSha256(bytes.length);
      const sent: number[] = [];
      const buffers = new Set<ArrayBufferLike>();
      const done = sendFileRanges({ handle, path, size: bytes.length }, new RangeStop(), {
        rangeSize,
        concurrency: 2,
        skip: new Set(Array.from({ length: kept }, (_, i) => i)),
        hasher,
        send: async (index, body) => {
          buffers.add(body.buffer);
          expect(body.equals(bytes.subarray(index * rangeSize, (index + 1) * rangeSize))).toBe(true);
          sent.push(index);
          if (sent.length === 32 - kept) release();
        },
      });
      await done;
      // Two in flight: their reads may finish in either order.
      expect(sent.sort((a, b) => a - b)).toEqual(Array.from({ length: 32 - kept }, (_, i) => kept + i));
      expect(buffers.size).toBeLessThanOrEqual(2);
      expect(hasher.position).toBe(bytes.length);
      expect(await hasher.digest('/nonexistent/never-read')).toBe(sha256(bytes));
    } finally {
      await close();
    }
  });

  it('a stop while kept ranges are being hashed ends every worker and the file reader, which reads no further', async () => {
    const MiB = 1024 * 1024;
    const bytes = randomBytes(4 * MiB);
    const path = fileOf(bytes);
    // The reader's first 1 MiB read is held until the failure has stopped the upload.
    const { handle, release, close } = await heldFile(path, 2 * MiB);
    try {
      const hasher = new OrderedSha256(bytes.length);
      const stop = new RangeStop();
      const failure = new Error('part failed for good');
      await expect(
        sendFileRanges({ handle, path, size: bytes.length }, stop, {
          rangeSize: 64 * 1024,
          concurrency: 3,
          skip: new Set(Array.from({ length: 32 }, (_, i) => i)), // the first 2 MiB
          hasher,
          send: async () => {
            stop.fail(failure);
            release();
            throw failure;
          },
        }),
      ).rejects.toBe(failure);
      // The read in progress when the upload stopped is hashed; nothing after it is read.
      expect(hasher.position).toBe(MiB);
    } finally {
      await close();
    }
  });
});

describe('sendHashingBeside (a resumed GCS session)', () => {
  const MiB = 1024 * 1024;

  it('sends at once while the kept bytes are still unread, and the request that makes the object waits for the whole hash', async () => {
    const bytes = randomBytes(3 * MiB);
    const path = fileOf(bytes);
    const { handle, release, close } = await heldFile(path, 2 * MiB);
    try {
      const hasher = new OrderedSha256(bytes.length);
      const events: string[] = [];
      const result = await sendHashingBeside(hasher, { handle, path, size: bytes.length }, {}, async ({ beforeLastRequest }) => {
        // Would never run if the kept bytes had to be hashed first: only this releases them.
        events.push(`sent while ${hasher.position} hashed`);
        release();
        await beforeLastRequest();
        events.push(`last request after ${hasher.position} hashed`);
        return 'object';
      });
      expect(result).toBe('object');
      expect(events).toEqual(['sent while 0 hashed', `last request after ${bytes.length} hashed`]);
      expect(await hasher.digest('/nonexistent/never-read')).toBe(sha256(bytes));
    } finally {
      await close();
    }
  });

  it('stops reading once it has caught up with what the send read: the file is read once beyond that', async () => {
    const chunk = 256 * 1024;
    const bytes = randomBytes(4 * MiB);
    const path = fileOf(bytes);
    // The reader's reads of the kept half wait until the send has read two chunks ahead of the hash.
    const { handle, release, bytesRead, close } = await heldFile(path, 2 * MiB);
    try {
      const hasher = new OrderedSha256(bytes.length);
      await sendHashingBeside(hasher, { handle, path, size: bytes.length }, { sendsFrom: 2 * MiB }, async ({ beforeLastRequest }) => {
        for (let position = 2 * MiB; position < bytes.length; position += chunk) {
          // The first two chunks go ahead of the hash (dropped); the rest once it has reached them.
          if (position === 2 * MiB + 2 * chunk) release();
          if (position >= 2 * MiB + 2 * chunk) while (hasher.position < position) await new Promise((resolve) => setImmediate(resolve));
          hasher.update(position, bytes.subarray(position, position + chunk));
        }
        await beforeLastRequest();
      });
      // The kept half and the two chunks sent ahead of the hash, nothing more.
      expect(bytesRead()).toBe(2 * MiB + 2 * chunk);
      expect(await hasher.digest('/nonexistent/never-read')).toBe(sha256(bytes));
    } finally {
      await close();
    }
  });

  it('a read error of the reader stops the send before the last request, and is what is thrown', async () => {
    const bytes = randomBytes(3 * MiB);
    const path = fileOf(bytes);
    const { handle, release, close } = await heldFile(path, 0, 2 * MiB);
    try {
      let lastRequestSent = false;
      let sendSignal: AbortSignal | undefined;
      const error = await sendHashingBeside(new OrderedSha256(bytes.length), { handle, path, size: bytes.length }, {}, async ({ signal, beforeLastRequest }) => {
        sendSignal = signal;
        release();
        await beforeLastRequest();
        lastRequestSent = true;
      }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'PATH_UNREADABLE', cause: { code: 'EIO' } });
      expect(lastRequestSent).toBe(false);
      expect(sendSignal?.aborted).toBe(true);
    } finally {
      await close();
    }
  });

  it('a failed send stops the reader after its read in progress, and the send\'s error is thrown', async () => {
    const bytes = randomBytes(4 * MiB);
    const path = fileOf(bytes);
    const { handle, release, close } = await heldFile(path, 2 * MiB);
    try {
      const hasher = new OrderedSha256(bytes.length);
      const failure = new Error('chunk refused for good');
      const error = await sendHashingBeside(hasher, { handle, path, size: bytes.length }, {}, async () => {
        release();
        throw failure;
      }).catch((e: unknown) => e);
      expect(error).toBe(failure);
      expect(hasher.position).toBe(MiB);
    } finally {
      await close();
    }
  });
});
