import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AbortedError, HttpStatusError, InvalidResponseError, NetworkError, RequestTimeoutError } from '../../src/core/errors.js';
import { HttpClient, authorizationHeader, parseRetryAfter } from '../../src/core/http.js';
import { resolveRetryOptions } from '../../src/core/retry.js';
import { startTestServer } from '../support/http-test-server.js';

const retry = resolveRetryOptions({ backoffFactor: 0, backoffJitter: 0, maxRetries: 3, timeoutMs: 2000 }, {});
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

async function server(handler: Parameters<typeof startTestServer>[0]) {
  const s = await startTestServer(handler);
  closers.push(s.close);
  return s;
}

describe('HttpClient', () => {
  it('sends a file body with Content-Length, re-opened for each attempt', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'au-http-'));
    const file = join(dir, 'data.bin');
    const bytes = Buffer.alloc(300_000, 7);
    bytes.write('hello', 1000);
    writeFileSync(file, bytes);
    const s = await server((_req, res, i) => {
      res.writeHead(i === 0 ? 503 : 200, { 'content-type': 'application/json' });
      res.end('{}');
    });
    const http = new HttpClient({ retry });
    const progress: number[] = [];
    await http.request({ method: 'PUT', url: `${s.url}/x`, body: { kind: 'file', path: file, length: bytes.length }, onUploadProgress: (n) => progress.push(n) });
    expect(s.requests).toHaveLength(2);
    for (const req of s.requests) {
      expect(req.headers['content-length']).toBe(String(bytes.length));
      expect(req.headers['transfer-encoding']).toBeUndefined();
      expect(req.body.equals(bytes)).toBe(true);
    }
    expect(progress.at(-1)).toBe(bytes.length);
  });

  it('re-sends an in-memory body on retry and reports it as sent once the server answers', async () => {
    const bytes = Buffer.from('small file, read once');
    const s = await server((_req, res, i) => {
      res.writeHead(i === 0 ? 503 : 200, { 'content-type': 'application/json' });
      res.end('{}');
    });
    const http = new HttpClient({ retry });
    const progress: number[] = [];
    await http.request({ method: 'PUT', url: `${s.url}/x`, body: bytes, responseType: 'none', onUploadProgress: (n) => progress.push(n) });
    expect(s.requests).toHaveLength(2);
    for (const req of s.requests) {
      expect(req.headers['content-length']).toBe(String(bytes.length));
      expect(req.body.equals(bytes)).toBe(true);
    }
    expect(progress).toEqual([bytes.length, bytes.length]);
  });

  it('sends a large in-memory body (a multipart part) in views as it goes, whole again on retry', async () => {
    // 5 MiB and a bit: views of 2 MiB, 2 MiB and the rest, each reported once it has left.
    const bytes = randomBytes(5 * 1024 * 1024 + 3);
    const s = await server((_req, res, i) => {
      res.writeHead(i === 0 ? 503 : 200);
      res.end();
    });
    const http = new HttpClient({ retry });
    const progress: number[] = [];
    await http.request({ method: 'PUT', url: `${s.url}/x`, body: bytes, responseType: 'none', onUploadProgress: (n) => progress.push(n) });
    expect(s.requests).toHaveLength(2);
    for (const req of s.requests) {
      expect(req.headers['content-length']).toBe(String(bytes.length));
      expect(req.headers['transfer-encoding']).toBeUndefined();
      expect(req.body.equals(bytes)).toBe(true);
    }
    // Each attempt counts up to the whole body, one view at a time.
    const steps = [2 * 1024 * 1024, 4 * 1024 * 1024, bytes.length];
    expect(progress).toEqual([...steps, ...steps]);
  });

  it('sends a byte range of a file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'au-http-'));
    const file = join(dir, 'data.bin');
    writeFileSync(file, Buffer.from('0123456789'));
    const s = await server((_req, res) => {
      res.end('{}');
    });
    const http = new HttpClient({ retry });
    await http.request({ method: 'PUT', url: `${s.url}/x`, body: { kind: 'file', path: file, start: 3, length: 4 } });
    expect(s.requests[0]!.body.toString()).toBe('3456');
  });

  it('maps statuses to typed errors with Retry-After, and does not retry 4xx', async () => {
    const s = await server((_req, res) => {
      res.writeHead(404, { 'retry-after': '2' });
      res.end('not here');
    });
    const http = new HttpClient({ retry });
    const error = await http.request({ method: 'GET', url: `${s.url}/missing` }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpStatusError);
    expect(error).toMatchObject({ status: 404, retryAfterMs: 2000, method: 'GET' });
    expect(s.requests).toHaveLength(1);
  });

  it('times out a stalled request and retries it', async () => {
    const s = await server((_req, res, i) => {
      if (i === 0) return; // never answer
      res.end('{"ok":true}');
    });
    // The retry must be answered within the timeout too: 200 ms was short enough for a loaded
    // machine to miss it (a third request, and toHaveLength(2) failing). The stall costs 2 s.
    const http = new HttpClient({ retry: { ...retry, timeoutMs: 2000 } });
    const res = await http.request<{ ok: boolean }>({ method: 'GET', url: `${s.url}/slow` });
    expect(res.body.ok).toBe(true);
    expect(s.requests).toHaveLength(2);
  });

  it('reports a timeout as RequestTimeoutError once retries run out', async () => {
    const s = await server(() => {});
    const http = new HttpClient({ retry: { ...retry, timeoutMs: 100, maxRetries: 0 } });
    await expect(http.request({ method: 'GET', url: `${s.url}/slow` })).rejects.toBeInstanceOf(RequestTimeoutError);
  });

  it('turns a refused connection into a NetworkError', async () => {
    const s = await server(() => {});
    await s.close();
    const http = new HttpClient({ retry: { ...retry, maxRetries: 1 } });
    await expect(http.request({ method: 'GET', url: `${s.url}/` })).rejects.toBeInstanceOf(NetworkError);
  });

  it('aborts with AbortedError', async () => {
    const s = await server(() => {});
    const http = new HttpClient({ retry });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    await expect(http.request({ method: 'GET', url: `${s.url}/`, signal: controller.signal })).rejects.toBeInstanceOf(AbortedError);
  });

  it('rejects a 2xx body that is not JSON', async () => {
    const s = await server((_req, res) => {
      res.end('<html>proxy login</html>');
    });
    const http = new HttpClient({ retry });
    await expect(http.request({ method: 'GET', url: `${s.url}/` })).rejects.toBeInstanceOf(InvalidResponseError);
  });

  it('sends auth only where asked, and never puts it in errors', async () => {
    const s = await server((_req, res) => {
      res.writeHead(401);
      res.end('token hf_secretvalue123secretvalue123secret rejected');
    });
    const http = new HttpClient({ retry, auth: { token: 'tok-canary-123' } });
    const error = (await http.request({ method: 'GET', url: `${s.url}/a` }).catch((e: unknown) => e)) as Error;
    expect(s.requests[0]!.headers.authorization).toBe('Bearer tok-canary-123');
    expect(JSON.stringify({ m: error.message, j: (error as HttpStatusError).toJSON() })).not.toMatch(/tok-canary-123|hf_secretvalue123/);
    await http.request({ method: 'GET', url: `${s.url}/b`, withAuth: false }).catch(() => undefined);
    expect(s.requests[1]!.headers.authorization).toBeUndefined();
  });

  it('streams a response body', async () => {
    const s = await server((_req, res) => {
      res.end('streamed-bytes');
    });
    const http = new HttpClient({ retry });
    const res = await http.request<NodeJS.ReadableStream>({ method: 'GET', url: `${s.url}/`, responseType: 'stream' });
    const chunks: Buffer[] = [];
    for await (const c of res.body) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('streamed-bytes');
    const text = await http.request<string>({ method: 'GET', url: `${s.url}/`, responseType: 'text' });
    expect(text.body).toBe('streamed-bytes');
    const viaFetch = await http.fetch(`${s.url}/`);
    expect(await viaFetch.text()).toBe('streamed-bytes');
  });
});

/** A raw server (the scripted one reads each body whole before answering). */
async function rawServer(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; server: Server }> {
  const s = createServer(handler);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise<void>((r) => (s.closeAllConnections(), s.close(() => r()))));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, server: s };
}

function bigFile(size: number): { path: string; bytes: Buffer } {
  const path = join(mkdtempSync(join(tmpdir(), 'au-http-')), 'big.bin');
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4096) bytes.writeUInt32LE(i, i);
  writeFileSync(path, bytes);
  return { path, bytes };
}

describe('HttpClient connections (Node http)', () => {
  it('reuses one keep-alive connection for requests one after another, and close() ends it', async () => {
    const ports: number[] = [];
    const { url, server: s } = await rawServer((req, res) => {
      ports.push(req.socket.remotePort!);
      req.resume();
      req.on('end', () => res.end('{}'));
    });
    const http = new HttpClient({ retry });
    for (let i = 0; i < 3; i++) await http.request({ method: 'PUT', url: `${url}/x${i}`, body: `body ${i}` });
    expect(ports).toHaveLength(3);
    expect(new Set(ports).size).toBe(1);
    const open = () => new Promise<number>((r) => s.getConnections((_e, n) => r(n)));
    expect(await open()).toBe(1);
    await http.close();
    await expect.poll(open, { timeout: 2000 }).toBe(0);
  });

  it('stops sending a file body when the server answers first, maps the answer and does not retry a 4xx', async () => {
    const { path } = bigFile(32 * 1024 * 1024);
    let received = 0;
    let requests = 0;
    const { url } = await rawServer((req, res) => {
      requests++;
      req.on('data', (c: Buffer) => (received += c.length));
      res.writeHead(413, { 'content-type': 'text/plain' });
      res.end('request entity too large');
    });
    const http = new HttpClient({ retry });
    const error = await http.request({ method: 'PUT', url: `${url}/big`, body: { kind: 'file', path, length: 32 * 1024 * 1024 } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpStatusError);
    expect((error as HttpStatusError).status).toBe(413);
    expect((error as HttpStatusError).message).toContain('request entity too large');
    expect(requests).toBe(1);
    expect(received).toBeLessThan(32 * 1024 * 1024);
  });

  it('retries a file body whose connection drops midway, and sends it whole again', async () => {
    const size = 12 * 1024 * 1024;
    const { path, bytes } = bigFile(size);
    const bodies: Buffer[] = [];
    const { url } = await rawServer((req, res) => {
      const chunks: Buffer[] = [];
      let got = 0;
      const first = bodies.length === 0;
      bodies.push(Buffer.alloc(0));
      req.on('data', (c: Buffer) => {
        chunks.push(c);
        got += c.length;
        if (first && got > 3 * 1024 * 1024) req.socket.destroy();
      });
      req.on('end', () => {
        bodies[bodies.length - 1] = Buffer.concat(chunks);
        res.end('{}');
      });
    });
    const http = new HttpClient({ retry });
    const retries: number[] = [];
    await http.request({ method: 'PUT', url: `${url}/big`, body: { kind: 'file', path, length: size } }, { onRetry: (e) => retries.push(e.attempt) });
    expect(retries).toEqual([1]);
    expect(bodies).toHaveLength(2);
    expect(bodies[1]!.equals(bytes)).toBe(true);
  });

  it('turns a connection dropped before the answer into a NetworkError with its code', async () => {
    const { url } = await rawServer((req) => {
      req.resume();
      req.on('end', () => req.socket.destroy());
    });
    const http = new HttpClient({ retry: { ...retry, maxRetries: 0 } });
    const error = await http.request({ method: 'GET', url: `${url}/` }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NetworkError);
    expect((error as NetworkError).message).toMatch(/ECONNRESET|socket hang up/);
  });
});

describe('helpers', () => {
  it('parses Retry-After seconds and dates', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter('0.5')).toBe(500);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });

  it('prefers Basic over Bearer, as MLflow does', () => {
    expect(authorizationHeader({ token: 't0ken', username: 'u', password: 'p4ss' })).toBe(`Basic ${Buffer.from('u:p4ss').toString('base64')}`);
    expect(authorizationHeader({ token: 't0ken' })).toBe('Bearer t0ken');
    expect(authorizationHeader({ username: 'u' })).toBeUndefined();
  });
});
