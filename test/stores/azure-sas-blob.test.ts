/**
 * The Blob requests of a SAS URL (stores/azure-sas-blob.ts) under the block engine, against a
 * scripted server: what is sent (MD5s, version, no Authorization), a 503 block retried alone, a
 * refused SAS failing at once with its signature redacted. Against Azurite through the Azure ML
 * stand-in: test/stores/azureml-artifacts-store.test.ts.
 */
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HttpStatusError } from '../../src/core/errors.js';
import { HttpClient } from '../../src/core/http.js';
import { resolveRetryOptions } from '../../src/core/retry.js';
import { uploadBlockBlob } from '../../src/stores/azure-block-upload.js';
import { sasBlockBlobRequests } from '../../src/stores/azure-sas-blob.js';
import { startTestServer } from '../support/http-test-server.js';

describe('blob requests on a SAS URL (azure-sas-blob.ts, under the block engine)', () => {
  const settings = (retry = resolveRetryOptions({ maxRetries: 3, backoffFactor: 0.01, backoffJitter: 0 }, {})) => ({
    blockSize: 4,
    maxSinglePutSize: 4,
    concurrency: 2,
    retry,
    requestTimeoutMs: 10_000,
    describe: { url: 'azureml://experiments/e/runs/r/artifacts/f.bin' },
  });

  it('sends blocks with their MD5 and no Authorization, retries a 503 ServerBusy block alone, and commits the list', async () => {
    let failed = false;
    const server = await startTestServer((req, res) => {
      const query = new URL(req.url, 'http://x').searchParams;
      if (query.get('comp') === 'block' && Buffer.from(query.get('blockid') ?? '', 'base64').toString().startsWith('0001') && !failed) {
        failed = true;
        res.writeHead(503, { 'x-ms-error-code': 'ServerBusy' });
        res.end('<?xml version="1.0"?><Error><Code>ServerBusy</Code><Message>busy</Message></Error>');
        return;
      }
      res.writeHead(201);
      res.end();
    });
    const dir = await mkdtemp(join(tmpdir(), 'sas-blob-'));
    try {
      const path = join(dir, 'f.bin');
      await writeFile(path, 'abcdefghij');
      const handle = await open(path, 'r');
      const client = new HttpClient({ retry: resolveRetryOptions({}, {}), auth: { token: 'never-sent-to-storage' } });
      const result = await uploadBlockBlob({ handle, path, size: 10 }, sasBlockBlobRequests(client, `${server.url}/acct/c/f.bin?sv=1&sig=abc`, 'application/octet-stream'), settings());
      await handle.close();
      expect(result).toMatchObject({ blocks: true, retries: 1 });
      const blocks = server.requests.filter((r) => r.url.includes('comp=block&'));
      expect(blocks).toHaveLength(4);
      expect(blocks.every((r) => typeof r.headers['content-md5'] === 'string' && r.headers['x-ms-version'])).toBe(true);
      const commit = server.requests.find((r) => r.url.includes('comp=blocklist'))!;
      expect(commit.body.toString()).toMatch(/^<\?xml version="1.0" encoding="utf-8"\?><BlockList>(<Latest>[^<]+<\/Latest>){3}<\/BlockList>$/);
      expect(commit.headers['x-ms-blob-content-type']).toBe('application/octet-stream');
      expect(server.requests.every((r) => r.headers.authorization === undefined)).toBe(true);
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a refused SAS (403 AuthenticationFailed) fails at the first request, its signature redacted', async () => {
    const server = await startTestServer((_req, res) => {
      res.writeHead(403, { 'x-ms-error-code': 'AuthenticationFailed' });
      res.end('<?xml version="1.0"?><Error><Code>AuthenticationFailed</Code><Message>Signature did not match.</Message></Error>');
    });
    const dir = await mkdtemp(join(tmpdir(), 'sas-blob-'));
    try {
      const path = join(dir, 'f.bin');
      await writeFile(path, 'abc');
      const handle = await open(path, 'r');
      const client = new HttpClient({ retry: resolveRetryOptions({}, {}) });
      const error = await uploadBlockBlob({ handle, path, size: 3 }, sasBlockBlobRequests(client, `${server.url}/acct/c/f.bin?sv=1&sig=the-sas-signature`, undefined), settings()).catch((e: unknown) => e);
      await handle.close();
      expect(error).toBeInstanceOf(HttpStatusError);
      expect(error).toMatchObject({ status: 403, code: 'AuthenticationFailed' });
      expect((error as HttpStatusError).hint).toMatch(/refused the SAS URL/);
      expect((error as Error).message).not.toContain('the-sas-signature');
      expect(server.requests).toHaveLength(1);
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
