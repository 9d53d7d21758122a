import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FILE_READ_CHUNK, LocalFileBlob } from '../../src/core/file-blob.js';
import { HttpClient } from '../../src/core/http.js';
import { resolveRetryOptions } from '../../src/core/retry.js';
import { startTestServer } from '../support/http-test-server.js';

const retry = resolveRetryOptions({ backoffFactor: 0, backoffJitter: 0, maxRetries: 0, timeoutMs: 2000 }, {});
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

function fileOf(bytes: Buffer): string {
  const file = join(mkdtempSync(join(tmpdir(), 'au-blob-')), 'data.bin');
  writeFileSync(file, bytes);
  return file;
}

function pattern(length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + (i >> 8)) & 0xff;
  return out;
}

describe('LocalFileBlob', () => {
  it('reads, slices and streams a large file in 1 MiB chunks', async () => {
    const bytes = pattern(FILE_READ_CHUNK * 2 + 12345);
    const blob = await LocalFileBlob.fromPath(fileOf(bytes));
    expect(blob).toBeInstanceOf(Blob);
    expect(blob.size).toBe(bytes.length);
    expect(blob.cached).toBe(false);
    const chunks: Uint8Array[] = [];
    for await (const chunk of blob.stream()) chunks.push(chunk);
    expect(chunks.map((c) => c.byteLength)).toEqual([FILE_READ_CHUNK, FILE_READ_CHUNK, 12345]);
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
    const part = blob.slice(FILE_READ_CHUNK - 10, FILE_READ_CHUNK + 20);
    expect(part.size).toBe(30);
    expect(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(FILE_READ_CHUNK - 10, FILE_READ_CHUNK + 20))).toBe(true);
    expect(Buffer.from(await part.slice(5, 10).arrayBuffer()).equals(bytes.subarray(FILE_READ_CHUNK - 5, FILE_READ_CHUNK))).toBe(true);
    // Like Blob: negative offsets from the end, ranges clamped, empty slices empty.
    expect(Buffer.from(await blob.slice(-3).arrayBuffer()).equals(bytes.subarray(-3))).toBe(true);
    expect(blob.slice(10, 5).size).toBe(0);
    expect(blob.slice(0, bytes.length * 2).size).toBe(bytes.length);
    expect(Buffer.from(await new Response(blob.slice(7, 7).stream()).arrayBuffer()).length).toBe(0);
  });

  it('reads a small file once and serves slices and text from memory', async () => {
    const file = fileOf(Buffer.from('{"hello": "world"}'));
    const blob = await LocalFileBlob.fromPath(file);
    expect(blob.cached).toBe(true);
    expect(await blob.text()).toBe('{"hello": "world"}');
    writeFileSync(file, 'changed on disk afterwards');
    expect(await blob.slice(2, 7).text()).toBe('hello');
    expect(await blob.text()).toBe('{"hello": "world"}');
  });
});

describe('LocalFileBlob kept in memory', () => {
  async function drain(chunks: AsyncIterable<Uint8Array>): Promise<Buffer> {
    const out: Buffer[] = [];
    for await (const chunk of chunks) out.push(Buffer.from(chunk));
    return Buffer.concat(out);
  }

  it('sends a small file read once from that read: chunks() and stream() give the bytes arrayBuffer() gave', async () => {
    const before = pattern(5000);
    const file = fileOf(before);
    const blob = await LocalFileBlob.fromPath(file);
    const hashed = Buffer.from(await blob.arrayBuffer());
    writeFileSync(file, Buffer.alloc(5000, 7)); // rewritten between the hash and the upload
    expect(hashed.equals(before)).toBe(true);
    expect((await drain(blob.chunks())).equals(before)).toBe(true);
    expect((await drain(blob.stream())).equals(before)).toBe(true);
    expect((await drain(blob.slice(100, 200).chunks())).equals(before.subarray(100, 200))).toBe(true);
  });

  it('reads a small file once even when chunks() comes first', async () => {
    const before = pattern(3000);
    const file = fileOf(before);
    const blob = await LocalFileBlob.fromPath(file);
    expect((await drain(blob.chunks())).equals(before)).toBe(true);
    writeFileSync(file, Buffer.alloc(3000, 1));
    expect(Buffer.from(await blob.arrayBuffer()).equals(before)).toBe(true);
  });

  it('load() keeps a large file in memory for every read, slices included', async () => {
    const before = pattern(FILE_READ_CHUNK * 2 + 99);
    const file = fileOf(before);
    const blob = await LocalFileBlob.fromPath(file);
    expect(blob.cached).toBe(false);
    expect(blob.loaded).toBe(false);
    await blob.load();
    expect(blob.loaded).toBe(true);
    writeFileSync(file, Buffer.alloc(10, 1)); // shorter: a read from disk would fail
    expect(Buffer.from(await blob.arrayBuffer()).equals(before)).toBe(true);
    expect((await drain(blob.stream())).equals(before)).toBe(true);
    expect((await drain(blob.chunks())).equals(before)).toBe(true);
    const part = blob.slice(FILE_READ_CHUNK - 5, FILE_READ_CHUNK + 5);
    expect((await drain(part.chunks())).equals(before.subarray(FILE_READ_CHUNK - 5, FILE_READ_CHUNK + 5))).toBe(true);
  });

  it('load() of a file that shrank since the blob was made fails, and a later load() reads again', async () => {
    const file = fileOf(pattern(FILE_READ_CHUNK + 10));
    const blob = await LocalFileBlob.fromPath(file);
    writeFileSync(file, pattern(100));
    await expect(blob.load()).rejects.toThrow(/changed while being read/);
    writeFileSync(file, pattern(FILE_READ_CHUNK + 10));
    await blob.load();
    expect(blob.loaded).toBe(true);
  });
});

describe('HttpClient.fetch with a LocalFileBlob body', () => {
  it('streams the file range with Content-Length and answers with a Response', async () => {
    const bytes = pattern(3 * 1024 * 1024 + 17);
    const s = await startTestServer((_req, res) => {
      res.writeHead(200, { etag: '"abc"', 'x-multi': ['1', '2'] });
      res.end('stored');
    });
    closers.push(s.close);
    const http = new HttpClient({ retry });
    closers.push(() => http.close());
    const blob = (await LocalFileBlob.fromPath(fileOf(bytes))).slice(1024, 1024 + 2 * 1024 * 1024);
    const response = await http.fetch(`${s.url}/part/1`, { method: 'PUT', body: blob, headers: { 'x-request-id': 'r1' } });
    expect(response).toBeInstanceOf(Response);
    expect(response.status).toBe(200);
    expect(response.ok).toBe(true);
    expect(response.url).toBe(`${s.url}/part/1`);
    expect(response.headers.get('etag')).toBe('"abc"');
    expect(response.headers.get('x-multi')).toBe('1, 2');
    expect(await response.text()).toBe('stored');
    const req = s.requests[0]!;
    expect(req.method).toBe('PUT');
    expect(req.headers['content-length']).toBe(String(2 * 1024 * 1024));
    expect(req.headers['transfer-encoding']).toBeUndefined();
    expect(req.headers['x-request-id']).toBe('r1');
    expect(req.body.equals(bytes.subarray(1024, 1024 + 2 * 1024 * 1024))).toBe(true);
  });

  it('hands error answers over as they are, and fails like fetch when the server is gone', async () => {
    const s = await startTestServer((_req, res) => {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end('{"error":"expired"}');
    });
    closers.push(s.close);
    const http = new HttpClient({ retry });
    closers.push(() => http.close());
    const blob = await LocalFileBlob.fromPath(fileOf(pattern(1000)));
    const refused = await http.fetch(`${s.url}/x`, { method: 'PUT', body: blob });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toEqual({ error: 'expired' });

    const url = s.url;
    await s.close();
    const error = await http.fetch(`${url}/x`, { method: 'PUT', body: blob }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toBe('fetch failed');
    expect((error as Error).cause).toBeDefined();

    const controller = new AbortController();
    controller.abort();
    await expect(http.fetch(`${url}/x`, { method: 'PUT', body: blob, signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
  });
});
