import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
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
    const http = new HttpClient({ retry: { ...retry, timeoutMs: 200 } });
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
      res.end('token hf_secretvalue123 rejected');
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
