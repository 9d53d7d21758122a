import { createHash } from 'node:crypto';
import { mkdtempSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalPathError } from '../../src/core/errors.js';
import { FILE_CHUNK_BYTES, readFileChunks } from '../../src/core/file-chunks.js';
import { HttpClient } from '../../src/core/http.js';
import { resolveRetryOptions } from '../../src/core/retry.js';

const MiB = 1024 * 1024;
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

function fileOf(bytes: Buffer): string {
  const file = join(mkdtempSync(join(tmpdir(), 'au-chunks-')), 'data.bin');
  writeFileSync(file, bytes);
  return file;
}

/** Bytes that differ from chunk to chunk, so a chunk sent from a reused buffer too early shows. */
function pattern(length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i + 4 <= length; i += 4) out.writeUInt32LE(i, i);
  return out;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('readFileChunks', () => {
  it('yields a byte range in chunks read into two buffers that take turns', async () => {
    const bytes = pattern(10 * MiB + 1000);
    const file = fileOf(bytes);
    const seen: Buffer[] = [];
    const memory = new Set<ArrayBufferLike>();
    for await (const chunk of readFileChunks(file, 1000, 10 * MiB, { chunkBytes: MiB })) {
      memory.add(chunk.buffer);
      seen.push(Buffer.from(chunk)); // a copy: the chunk itself is only valid until the next
    }
    expect(seen.map((c) => c.length)).toEqual(Array(10).fill(MiB));
    expect(Buffer.concat(seen).equals(bytes.subarray(1000))).toBe(true);
    // Ten reads, two buffers: no fresh allocation per read.
    expect(memory.size).toBe(2);
  });

  it('hands the buffers of a body read to its end to the next body (multipart parts allocate nothing after the first)', async () => {
    const bytes = pattern(3 * FILE_CHUNK_BYTES);
    const file = fileOf(bytes);
    const memory = new Set<ArrayBufferLike>();
    for (let part = 0; part < 3; part++) {
      const seen: Buffer[] = [];
      for await (const chunk of readFileChunks(file, part * FILE_CHUNK_BYTES, FILE_CHUNK_BYTES + (part < 2 ? FILE_CHUNK_BYTES / 2 : 0))) {
        memory.add(chunk.buffer);
        seen.push(Buffer.from(chunk));
      }
      const from = part * FILE_CHUNK_BYTES;
      expect(Buffer.concat(seen).equals(bytes.subarray(from, from + FILE_CHUNK_BYTES + (part < 2 ? FILE_CHUNK_BYTES / 2 : 0)))).toBe(true);
    }
    expect(memory.size).toBe(2);
  });

  it('gives a short last chunk and nothing for an empty range', async () => {
    const file = fileOf(pattern(3 * MiB + 5));
    const sizes: number[] = [];
    for await (const chunk of readFileChunks(file, 0, 3 * MiB + 5, { chunkBytes: 2 * MiB })) sizes.push(chunk.length);
    expect(sizes).toEqual([2 * MiB, MiB + 5]);
    let any = false;
    for await (const _ of readFileChunks(file, 0, 0)) any = true;
    expect(any).toBe(false);
  });

  it('fails with PATH_UNREADABLE when the file shrinks under it, and PATH_NOT_FOUND when it is gone', async () => {
    const file = fileOf(pattern(4 * MiB));
    const read = async () => {
      let first = true;
      for await (const _ of readFileChunks(file, 0, 4 * MiB, { chunkBytes: MiB })) {
        if (first) truncateSync(file, MiB + 10);
        first = false;
      }
    };
    const error = await read().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LocalPathError);
    expect(error).toMatchObject({ code: 'PATH_UNREADABLE', path: file, message: expect.stringMatching(/shrank while it was being uploaded/) });
    await expect(readFileChunks(join(tmpdir(), 'au-no-such-dir', 'x.bin'), 0, 10).next()).rejects.toMatchObject({ code: 'PATH_NOT_FOUND' });
  });

  it('fails with PATH_UNREADABLE, saying so, when the file system answers a read with EIO', async () => {
    // A real EIO: /proc/self/mem opens, and a read where nothing is mapped fails with it.
    const error = await readFileChunks('/proc/self/mem', 0, 10)
      .next()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LocalPathError);
    expect(error).toMatchObject({ code: 'PATH_UNREADABLE', path: '/proc/self/mem', message: expect.stringMatching(/file system answered EIO/), hint: expect.stringMatching(/disk or mount/) });
    expect((error as LocalPathError).cause).toMatchObject({ code: 'EIO' });
  });

  it('a consumer that stops early ends the reads cleanly', async () => {
    const file = fileOf(pattern(8 * MiB));
    const chunks = readFileChunks(file, 0, 8 * MiB, { chunkBytes: MiB });
    const first = await chunks.next();
    expect(first.done).toBe(false);
    // The read-ahead of the second chunk is in flight: return() waits for it, then closes.
    await expect(chunks.return(undefined)).resolves.toEqual({ done: true, value: undefined });
    await expect(chunks.next()).resolves.toEqual({ done: true, value: undefined });
  });
});

describe('HttpClient file bodies from reused buffers', () => {
  it('arrive byte-exact at a server that reads slowly (the socket pushes back on every chunk), with the sha256 of what was sent', async () => {
    const bytes = pattern(24 * MiB + 123);
    const file = fileOf(bytes);
    const received: Array<{ sha256: string; length: number }> = [];
    // Pauses after every chunk it reads, so the client's socket buffer fills and each body
    // chunk waits for `drain`: a buffer reused before its bytes left would corrupt the upload.
    const server = createServer((req, res) => {
      const hash = createHash('sha256');
      let length = 0;
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        length += chunk.length;
        req.pause();
        setImmediate(() => req.resume());
      });
      req.on('end', () => {
        received.push({ sha256: hash.digest('hex'), length });
        res.end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise<void>((r) => server.close(() => r())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/x`;
    const http = new HttpClient({ retry: resolveRetryOptions({ maxRetries: 0, timeoutMs: 30_000 }, {}) });
    closers.push(() => http.close());
    const digest: { sha256?: string } = {};
    const progress: number[] = [];
    await http.request({ method: 'PUT', url, body: { kind: 'file', path: file, start: 123, length: 24 * MiB, digest }, onUploadProgress: (n) => progress.push(n) });
    const expected = sha256(bytes.subarray(123));
    expect(received).toEqual([{ sha256: expected, length: 24 * MiB }]);
    expect(digest.sha256).toBe(expected);
    expect(progress.at(-1)).toBe(24 * MiB);

    // Parts in flight at once share the pool of chunk buffers: each still arrives intact, the
    // ones whose last chunk is short (kept out of the pool) as well as the others.
    received.length = 0;
    const parts = [0, 1, 2, 3, 4, 5].map((i) => ({ start: i * 4 * MiB, length: i % 2 ? 4 * MiB : 3 * MiB + 777 }));
    await Promise.all(parts.map((part) => http.request({ method: 'PUT', url, body: { kind: 'file', path: file, ...part } })));
    expect(received.map((r) => r.sha256).sort()).toEqual(parts.map((part) => sha256(bytes.subarray(part.start, part.start + part.length))).sort());
  });

  it('a file that shrinks during the request fails with PATH_UNREADABLE, not a retried network error', async () => {
    const file = fileOf(pattern(16 * MiB));
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('{}'));
      req.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/x`;
    const http = new HttpClient({ retry: resolveRetryOptions({ maxRetries: 3, backoffFactor: 0, backoffJitter: 0, timeoutMs: 10_000 }, {}) });
    closers.push(() => http.close());
    let cut = false;
    let retries = 0;
    const error = await http
      .request(
        {
          method: 'PUT',
          url,
          body: { kind: 'file', path: file, length: 16 * MiB },
          onUploadProgress: () => {
            if (cut) return;
            cut = true;
            truncateSync(file, MiB);
          },
        },
        { onRetry: () => retries++ },
      )
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LocalPathError);
    expect(error).toMatchObject({ code: 'PATH_UNREADABLE', message: expect.stringMatching(/shrank/) });
    expect(retries).toBe(0);
  });
});
