/**
 * The multipart protocol details a real server does not let us provoke: a part answered
 * without an ETag, a presigned URL refused, the part concurrency bound, which requests carry
 * the tracking credentials, and what `mpu/complete` receives. A scripted server plays MLflow
 * and the object store at once.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpStatusError, InvalidResponseError } from '../../src/core/errors.js';
import { resolveMlflowConnection } from '../../src/mlflow/connection.js';
import type { Logger } from '../../src/core/logger.js';
import { resolveArtifactStore } from '../../src/stores/resolve.js';
import { startTestServer, type RecordedRequest } from '../support/http-test-server.js';
import { recordingLogger } from '../uploader/helpers.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

interface Script {
  /** Answer for the PUT of part `n`: status and whether to send an ETag. */
  part?: (n: number) => { status: number; etag: boolean; body?: string };
  /** How long each part's answer is held. @default 15 */
  partDelayMs?: number;
  /** Query parameters added to every part URL (an expiry, say). */
  partQuery?: () => string;
  /** Changes the part credentials `mpu/create` answers with (a server or proxy that gets them wrong). */
  credentials?: (credentials: Array<{ part_number: number; url: string }>) => unknown[];
}

async function fakeServer(script: Script = {}) {
  let inFlight = 0;
  const state = { maxInFlight: 0, parts: [] as RecordedRequest[], api: [] as RecordedRequest[] };
  const server = await startTestServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/part') {
      state.parts.push(req);
      state.maxInFlight = Math.max(state.maxInFlight, ++inFlight);
      const n = Number(url.searchParams.get('n'));
      const answer = script.part?.(n) ?? { status: 200, etag: true };
      // Hold the answer a little so concurrent parts overlap.
      setTimeout(() => {
        inFlight--;
        res.writeHead(answer.status, answer.etag ? { etag: `"etag-${n}"` } : {});
        res.end(answer.body ?? '');
      }, script.partDelayMs ?? 15);
      return;
    }
    state.api.push(req);
    res.writeHead(200, { 'content-type': 'application/json' });
    if (url.pathname.includes('/mpu/create/')) {
      const { num_parts } = JSON.parse(req.body.toString()) as { num_parts: number };
      // Handed out in reverse order: the client must sort by part number.
      const credentials = Array.from({ length: num_parts }, (_, i) => ({
        part_number: num_parts - i,
        url: `${server.url}/part?n=${num_parts - i}${script.partQuery?.() ?? ''}&X-Amz-Signature=sekret-signature`,
        headers: { 'x-part-header': 'yes' },
      }));
      res.end(JSON.stringify({ upload_id: 'upload-1', credentials: script.credentials?.(credentials) ?? credentials }));
    } else res.end('{}');
  });
  closers.push(server.close);
  return { server, state };
}

function storeFor(url: string, partConcurrency = 2, logger?: Logger) {
  const connection = resolveMlflowConnection({ trackingUri: url, token: 'tracking-token-123', retry: { maxRetries: 1, backoffFactor: 0, backoffJitter: 0 } }, {});
  return resolveArtifactStore('mlflow-artifacts:/0/run/artifacts', {
    connection,
    env: {},
    multipart: { thresholdBytes: 1000, chunkBytes: 1000, partConcurrency },
    ...(logger ? { logger } : {}),
  });
}

const warningsOf = (logger: ReturnType<typeof recordingLogger>) => logger.lines.filter(([level]) => level === 'warn').map(([, message]) => message);

/** SigV4's `X-Amz-Date` of `ms` (whole seconds, as boto3 writes it). */
const amzDate = (ms: number) => new Date(ms).toISOString().replace(/[-:]|\.\d{3}/g, '');

function file(size: number): { path: string; bytes: Buffer } {
  const bytes = randomBytes(size);
  const path = join(mkdtempSync(join(tmpdir(), 'au-mpu-')), 'f.bin');
  writeFileSync(path, bytes);
  return { path, bytes };
}

const apiCalls = (state: { api: RecordedRequest[] }) => state.api.map((r) => r.url.replace(/\/api\/2\.0\/mlflow-artifacts\//, '').replace(/\/0\/run.*$/, ''));

describe('proxied multipart upload protocol', () => {
  it('sends byte ranges of the file, bounded in parallel, without the tracking credentials, then completes with sorted parts and urls', async () => {
    const { server, state } = await fakeServer();
    const { path, bytes } = file(4500);
    const progress: number[] = [];
    const result = await storeFor(server.url, 2).uploadFile(path, 'models/m.bin', { onProgress: (n) => progress.push(n) });

    // The parts streamed in parallel; the sha256 is of the whole file, hashed in file order.
    expect(result).toEqual({ bytes: 4500, attempts: 1, multipart: true, sha256: createHash('sha256').update(bytes).digest('hex') });
    expect(state.maxInFlight).toBe(2);
    const byPart = new Map(state.parts.map((r) => [Number(new URL(r.url, 'http://x').searchParams.get('n')), r]));
    expect([...byPart.keys()].sort()).toEqual([1, 2, 3, 4, 5]);
    for (const [n, req] of byPart) {
      expect(req.body.equals(bytes.subarray((n - 1) * 1000, n * 1000)), `part ${n}`).toBe(true);
      expect(req.headers['content-length']).toBe(String(req.body.length));
      expect(req.headers['x-part-header']).toBe('yes');
      expect(req.headers.authorization).toBeUndefined();
    }
    expect(apiCalls(state)).toEqual(['mpu/create', 'mpu/complete']);
    const [create, complete] = state.api;
    expect(create!.headers.authorization).toBe('Bearer tracking-token-123');
    expect(create!.url).toBe('/api/2.0/mlflow-artifacts/mpu/create/0/run/artifacts/models');
    expect(JSON.parse(create!.body.toString())).toEqual({ path: 'm.bin', num_parts: 5 });
    const body = JSON.parse(complete!.body.toString()) as { path: string; upload_id: string; parts: Array<{ part_number: number; etag: string; url: string }> };
    expect(body.path).toBe('m.bin');
    expect(body.upload_id).toBe('upload-1');
    expect(body.parts.map((p) => p.part_number)).toEqual([1, 2, 3, 4, 5]);
    expect(body.parts[0]).toEqual({ part_number: 1, etag: '"etag-1"', url: `${server.url}/part?n=1&X-Amz-Signature=sekret-signature` });
    expect(progress.at(-1)).toBe(4500);
  });

  it('treats a part without an ETag as a broken server, and aborts the upload', async () => {
    const { server, state } = await fakeServer({ part: (n) => ({ status: 200, etag: n !== 2 }) });
    const { path } = file(3000);
    const error = await storeFor(server.url).uploadFile(path, 'm.bin').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidResponseError);
    expect((error as Error).message).toMatch(/part 2\/3 of m\.bin.*no ETag/);
    expect(apiCalls(state)).toEqual(['mpu/create', 'mpu/abort']);
    expect(JSON.parse(state.api[1]!.body.toString())).toEqual({ path: 'm.bin', upload_id: 'upload-1' });
  });

  it('says what a refused presigned URL means, without leaking its signature', async () => {
    const { server, state } = await fakeServer({
      part: () => ({ status: 403, etag: false, body: '<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message></Error>' }),
    });
    const { path } = file(2000);
    const error = (await storeFor(server.url).uploadFile(path, 'm.bin').catch((e: unknown) => e)) as HttpStatusError;
    expect(error).toBeInstanceOf(HttpStatusError);
    expect(error.status).toBe(403);
    expect(error.message).toMatch(/SignatureDoesNotMatch: The request signature/);
    expect(error.hint).toMatch(/presigned URL/);
    expect(JSON.stringify(error.toJSON())).not.toContain('sekret');
    expect(error.message).not.toContain('sekret');
    expect(apiCalls(state)).toEqual(['mpu/create', 'mpu/abort']);
  });

  it('sends the file as one PUT through the server when the parts would not all go before their URLs expire, and aborts the parts', async () => {
    // URLs signed for 5 s, parts answered after 200 ms one at a time: 40 parts would take 8 s.
    const { server, state } = await fakeServer({ partDelayMs: 200, partQuery: () => `&X-Amz-Date=${amzDate(Date.now())}&X-Amz-Expires=5` });
    const { path, bytes } = file(40_000);
    const logger = recordingLogger();
    const progress: number[] = [];
    const result = await storeFor(server.url, 1, logger).uploadFile(path, 'models/m.bin', { onProgress: (n) => progress.push(n) });

    expect(result).toMatchObject({ bytes: 40_000, multipart: false, sha256: createHash('sha256').update(bytes).digest('hex') });
    // It stopped once the rate was measured (a tenth of the URLs' life), long before part 40.
    expect(state.parts.length).toBeGreaterThan(0);
    expect(state.parts.length).toBeLessThan(15);
    expect(apiCalls(state)).toEqual(['mpu/create', 'mpu/abort', 'artifacts']);
    const put = state.api[2]!;
    expect(put.method).toBe('PUT');
    expect(put.url).toBe('/api/2.0/mlflow-artifacts/artifacts/0/run/artifacts/models/m.bin');
    expect(put.body.equals(bytes)).toBe(true);
    expect(progress.at(-1)).toBe(40_000);
    const warnings = warningsOf(logger);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/models\/m\.bin: sending it as one PUT .*part URLs expire at .*would take until/);
    expect(warnings[0]).not.toContain('sekret');
  });

  it('sends a later file as one PUT at once when the rate an earlier file\'s parts went at cannot make it', async () => {
    const { server, state } = await fakeServer({ partDelayMs: 200, partQuery: () => `&X-Amz-Date=${amzDate(Date.now())}&X-Amz-Expires=5` });
    const logger = recordingLogger();
    const store = storeFor(server.url, 1, logger);
    await store.uploadFile(file(40_000).path, 'first.bin');
    const partsOfTheFirst = state.parts.length;
    const second = file(40_000);
    const result = await store.uploadFile(second.path, 'second.bin');

    // The second file's parts would take 6 s or more at the first one's rate, past its URLs' 5 s: not one part sent.
    expect(result).toMatchObject({ bytes: 40_000, multipart: false });
    expect(state.parts.length).toBe(partsOfTheFirst);
    expect(apiCalls(state)).toEqual(['mpu/create', 'mpu/abort', 'artifacts', 'mpu/create', 'mpu/abort', 'artifacts']);
    expect(state.api[5]!.body.equals(second.bytes)).toBe(true);
    expect(warningsOf(logger)[1]).toMatch(/second\.bin: sending it as one PUT .*\(the rate an earlier file's parts were sent at\) the parts would take until/);
  });

  it('aborts the upload the server made when its mpu/create answer cannot be used (a part missing, a URL that is not http), and sends nothing', async () => {
    const wrong = [
      (credentials: Array<{ part_number: number; url: string }>) => credentials.slice(1),
      (credentials: Array<{ part_number: number; url: string }>) => credentials.map((c, i) => (i === 0 ? { ...c, url: 'ftp://elsewhere/part' } : c)),
    ];
    for (const credentials of wrong) {
      const { server, state } = await fakeServer({ credentials });
      const error = await storeFor(server.url).uploadFile(file(3000).path, 'm.bin').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidResponseError);
      expect(apiCalls(state)).toEqual(['mpu/create', 'mpu/abort']);
      expect(JSON.parse(state.api[1]!.body.toString())).toMatchObject({ path: 'm.bin', upload_id: 'upload-1' });
      expect(state.parts).toEqual([]);
    }
  });

  it("gives up an upload the object store no longer has after one retry: MLflow's bare 500 for NoSuchUpload is not retried for the whole policy", async () => {
    const aborts: RecordedRequest[] = [];
    const server = await startTestServer((req, res) => {
      aborts.push(req);
      // What MLflow 3.17 answers when the object store raises NoSuchUpload for mpu/abort.
      res.writeHead(500, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>');
    });
    closers.push(server.close);
    const connection = resolveMlflowConnection({ trackingUri: server.url, retry: { maxRetries: 5, backoffFactor: 0, backoffJitter: 0 } }, {});
    const store = await resolveArtifactStore('mlflow-artifacts:/0/run/artifacts', { connection, env: {} });
    const outcome = await store.abandonUpload!('ckpt/m.bin', { previous: { uploadId: 'completed-before-the-kill', partSize: 1000, parts: [] } });
    expect(outcome).toMatchObject({ status: 'left' });
    expect(aborts.map((r) => r.url)).toEqual(Array(2).fill('/api/2.0/mlflow-artifacts/mpu/abort/0/run/artifacts/ckpt'));
  });

  it('sends the file as one PUT when the object store says a part URL has expired', async () => {
    const { server, state } = await fakeServer({
      part: (n) => (n === 2 ? { status: 403, etag: false, body: '<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>' } : { status: 200, etag: true }),
    });
    const { path, bytes } = file(3000);
    const logger = recordingLogger();
    const result = await storeFor(server.url, 1, logger).uploadFile(path, 'm.bin');

    expect(result).toMatchObject({ bytes: 3000, multipart: false });
    expect(apiCalls(state)).toEqual(['mpu/create', 'mpu/abort', 'artifacts']);
    expect(state.api[2]!.body.equals(bytes)).toBe(true);
    expect(warningsOf(logger)[0]).toMatch(/the object store says its part URLs have expired/);
  });
});
