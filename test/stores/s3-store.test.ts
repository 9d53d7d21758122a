/**
 * The s3:// store against a real `mlflow server --no-serve-artifacts` whose artifact root is a
 * bucket on moto: what the store writes, the official Python client downloads byte-exact.
 * Faults come from the fault proxy put in front of moto as the S3 endpoint.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { AbortedError, HttpStatusError, LocalPathError, UnsupportedArtifactStoreError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import type { RetryEvent } from '../../src/core/retry.js';
import { resolveMlflowConnection } from '../../src/mlflow/connection.js';
import { listArtifactsRecursive } from '../../src/stores/artifact-store.js';
import { resolveArtifactStore } from '../../src/stores/resolve.js';
import { S3ArtifactStore, type S3ArtifactStoreOptions } from '../../src/stores/s3-store.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { pythonArtifactHashes, pythonCreateRun } from '../support/python.js';
import { describeWithServers, mlflowDirectS3Server, servers } from '../support/servers.js';

const MiB = 1024 * 1024;
const SECRET = 'sekrit-Q9x7-never-logged';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** The run's artifact URI as the tracking server reports it (`s3://<bucket>/direct/<exp>/<run>/artifacts`). */
async function artifactUriOf(trackingUri: string, runId: string): Promise<string> {
  const res = await fetch(`${trackingUri}/api/2.0/mlflow/runs/get?run_id=${runId}`);
  const body = (await res.json()) as { run: { info: { artifact_uri: string } } };
  return body.run.info.artifact_uri;
}

/** A part PUT of a multipart upload, by part number. */
const isPart = (n: number) => (req: { method: string; path: string }) => req.method === 'PUT' && new RegExp(`[?&]partNumber=${n}(&|$)`).test(req.path);

describeWithServers('s3:// artifact store (moto, direct artifact root)', () => {
  let dir: string;
  let pythonEnv: Record<string, string>;
  let big: Buffer;
  let bigPath: string;
  let proxy: FaultProxy;

  /** A store on a fresh run of the direct server, through `endpoint` (moto, or the proxy). */
  async function newRun(options: S3ArtifactStoreOptions = {}, endpoint = mlflowDirectS3Server().s3Endpoint) {
    const { url } = mlflowDirectS3Server();
    const runId = await pythonCreateRun(url, 's3-store', pythonEnv);
    const artifactUri = await artifactUriOf(url, runId);
    const store = new S3ArtifactStore(artifactUri, {
      endpointUrl: endpoint,
      credentials: { accessKeyId: 'testing', secretAccessKey: SECRET },
      env: {},
      retry: { maxRetries: 3 },
      ...options,
    });
    return { runId, artifactUri, store };
  }

  /** In-progress multipart uploads under a key prefix, asked of moto directly. */
  async function inProgressUploads(prefix: string): Promise<string[]> {
    const client = new S3Client({
      endpoint: mlflowDirectS3Server().s3Endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    try {
      const out = await client.send(new ListMultipartUploadsCommand({ Bucket: mlflowDirectS3Server().bucket, Prefix: prefix }));
      return (out.Uploads ?? []).map((u) => u.Key ?? '');
    } finally {
      client.destroy();
    }
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 's3-store-'));
    pythonEnv = { ...servers().awsEnv, MLFLOW_S3_ENDPOINT_URL: mlflowDirectS3Server().s3Endpoint };
    // Above the 5 MiB part size the tests use: three parts, the last one short.
    big = randomBytes(11 * MiB);
    bigPath = join(dir, 'big.bin');
    await writeFile(bigPath, big);
    proxy = await startFaultProxy(mlflowDirectS3Server().s3Endpoint);
  });

  afterAll(async () => {
    await proxy?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('uploads 0 B, 1 KiB and a directory with odd names that MlflowClient downloads byte-exact', async () => {
    const { runId, store, artifactUri } = await newRun();
    expect(artifactUri).toMatch(new RegExp(`^s3://${mlflowDirectS3Server().bucket}/direct/\\d+/${runId}/artifacts$`));
    const files: Record<string, Buffer> = {
      'empty.txt': Buffer.alloc(0),
      'one-kib.bin': randomBytes(1024),
      'ckpt/step 100/model.safetensors': randomBytes(3000),
      'ckpt/step 100/config.json': Buffer.from('{"a": 1}'),
      'ckpt/ünïcødé 模型/weights (copy) [1] & co+=.bin': randomBytes(777),
      'ckpt/.hidden/a..b': randomBytes(10),
      'ckpt/archive.tar.gz': randomBytes(64),
    };
    const sent: RetryEvent[] = [];
    for (const [artifactPath, data] of Object.entries(files)) {
      const local = join(dir, 'src', artifactPath);
      await mkdir(join(local, '..'), { recursive: true });
      await writeFile(local, data);
      const progress: number[] = [];
      const result = await store.uploadFile(local, artifactPath, { onProgress: (n) => progress.push(n), onRetry: (e) => sent.push(e) });
      expect(result).toEqual({ bytes: data.length, attempts: 1, multipart: false });
      expect(progress.at(-1)).toBe(data.length);
    }
    expect(sent).toEqual([]);

    const downloaded = await pythonArtifactHashes(mlflowDirectS3Server().url, runId, '', pythonEnv);
    expect(downloaded).toEqual(Object.fromEntries(Object.entries(files).map(([p, d]) => [p, sha256(d)])));

    // Listing: MLflow's layout, one level at a time, sizes included.
    expect(await store.list()).toEqual([
      { path: 'ckpt', isDir: true },
      { path: 'empty.txt', isDir: false, size: 0 },
      { path: 'one-kib.bin', isDir: false, size: 1024 },
    ]);
    expect(await store.list('ckpt/step 100')).toEqual([
      { path: 'ckpt/step 100/config.json', isDir: false, size: 8 },
      { path: 'ckpt/step 100/model.safetensors', isDir: false, size: 3000 },
    ]);
    expect(await store.list('nothing/here')).toEqual([]);
    expect((await listArtifactsRecursive(store)).map((e) => e.path)).toEqual(Object.keys(files).sort());
  });

  it('sets Content-Type and Content-Encoding from the extension, as MLflow does', async () => {
    const { store, runId } = await newRun();
    const local = join(dir, 'metrics.json');
    await writeFile(local, '{"loss": 0.1}');
    await store.uploadFile(local, 'metrics.json');
    await store.uploadFile(local, 'bundle.tar.gz');
    await store.uploadFile(local, 'model.safetensors');
    const client = new S3Client({
      endpoint: mlflowDirectS3Server().s3Endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    try {
      const { HeadObjectCommand } = await import('@aws-sdk/client-s3');
      const head = (name: string) => client.send(new HeadObjectCommand({ Bucket: store.bucket, Key: `${store.rootKey}/${name}` }));
      expect((await head('metrics.json')).ContentType).toBe('application/json');
      const tarball = await head('bundle.tar.gz');
      expect([tarball.ContentType, tarball.ContentEncoding]).toEqual(['application/x-tar', 'gzip']);
      // No guess: MLflow sends no ContentType and S3 stores its default.
      expect((await head('model.safetensors')).ContentType).not.toBe('application/json');
    } finally {
      client.destroy();
    }
    expect(store.rootKey).toContain(runId);
  });

  it('retries a part that failed with 503 twice on its own; the other parts go once', async () => {
    proxy.clearRules();
    proxy.requests.length = 0;
    proxy.addRule({
      match: isPart(2),
      times: 2,
      fault: 'status',
      status: 503,
      headers: { 'content-type': 'application/xml' },
      body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>injected</Message></Error>',
    });
    const { runId, store } = await newRun({ partSize: 5 * MiB, queueSize: 2 }, proxy.url);
    const retries: RetryEvent[] = [];
    const progress: number[] = [];
    const result = await store.uploadFile(bigPath, 'model/big.bin', { onRetry: (e) => retries.push(e), onProgress: (n) => progress.push(n) });

    expect(result).toEqual({ bytes: big.length, attempts: 3, multipart: true });
    const partPuts = (n: number) => proxy.requests.filter((r) => isPart(n)(r));
    expect(partPuts(1).map((r) => r.status)).toEqual([200]);
    expect(partPuts(2).map((r) => r.status)).toEqual([503, 503, 200]);
    expect(partPuts(3).map((r) => r.status)).toEqual([200]);
    expect(proxy.requests.filter((r) => r.method === 'POST' && r.path.includes('uploads'))).toHaveLength(1);
    expect(retries.map((e) => e.attempt)).toEqual([1, 2]);
    expect((retries[0]?.error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBe(503);
    expect(progress.at(-1)).toBe(big.length);

    const downloaded = await pythonArtifactHashes(mlflowDirectS3Server().url, runId, 'model', pythonEnv);
    expect(downloaded).toEqual({ 'big.bin': sha256(big) });
    expect(await inProgressUploads(store.rootKey)).toEqual([]);
  });

  it('an abort stops the parts and aborts the multipart upload: nothing stays in progress', async () => {
    proxy.clearRules();
    proxy.requests.length = 0;
    // Part 2 hangs; part 1 goes through, so the multipart upload exists when we abort.
    proxy.addRule({ match: isPart(2), fault: 'stall', stallMs: 30_000 });
    const { store } = await newRun({ partSize: 5 * MiB, queueSize: 2 }, proxy.url);
    const controller = new AbortController();
    const pending = store.uploadFile(bigPath, 'aborted/big.bin', { signal: controller.signal });
    await vi.waitFor(() => expect(proxy.requests.some((r) => isPart(2)(r))).toBe(true), { timeout: 20_000, interval: 20 });
    controller.abort(new Error('user pressed ctrl-c'));

    const error = await pending.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AbortedError);
    expect((error as AbortedError).message).toMatch(/aborted on the bucket too/);
    expect(proxy.requests.filter((r) => r.method === 'DELETE' && r.path.includes('uploadId='))).toHaveLength(1);
    expect(await inProgressUploads(`${store.rootKey}/aborted/`)).toEqual([]);
    expect(await store.list('aborted')).toEqual([]);
  });

  it('a part that keeps failing fails the file with a typed error and aborts the multipart upload', async () => {
    proxy.clearRules();
    proxy.requests.length = 0;
    proxy.addRule({
      match: isPart(3),
      fault: 'status',
      status: 500,
      headers: { 'content-type': 'application/xml' },
      body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>',
    });
    const { store } = await newRun({ partSize: 5 * MiB, queueSize: 1, retry: { maxRetries: 1 } }, proxy.url);
    const error = (await store.uploadFile(bigPath, 'failed/big.bin').catch((e: unknown) => e)) as HttpStatusError;
    expect(error).toBeInstanceOf(HttpStatusError);
    expect(error.status).toBe(500);
    expect(error.code).toBe('InternalError');
    expect(error.message).toMatch(/s3:\/\/.*\/failed\/big\.bin failed after 2 attempts: 500 InternalError/);
    expect(error.hint).toMatch(/retried 1 time/);
    expect(proxy.requests.filter((r) => isPart(3)(r))).toHaveLength(2);
    expect(await inProgressUploads(`${store.rootKey}/failed/`)).toEqual([]);
  });

  it('maps S3 refusals to typed errors with what to do, without retrying them', async () => {
    proxy.clearRules();
    proxy.requests.length = 0;
    proxy.addRule({
      match: (r) => r.method === 'PUT',
      times: 1,
      fault: 'status',
      status: 403,
      headers: { 'content-type': 'application/xml' },
      body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>',
    });
    const lines: string[] = [];
    const logger: Logger = {
      debug: (m, f) => lines.push(m + JSON.stringify(f ?? {})),
      info: (m, f) => lines.push(m + JSON.stringify(f ?? {})),
      warn: (m, f) => lines.push(m + JSON.stringify(f ?? {})),
      error: (m, f) => lines.push(m + JSON.stringify(f ?? {})),
    };
    const { store } = await newRun({ logger }, proxy.url);
    const local = join(dir, 'denied.txt');
    await writeFile(local, 'x');
    const denied = (await store.uploadFile(local, 'denied.txt').catch((e: unknown) => e)) as HttpStatusError;
    expect(denied).toBeInstanceOf(HttpStatusError);
    expect([denied.status, denied.code]).toEqual([403, 'AccessDenied']);
    expect(denied.hint).toMatch(/AWS_ACCESS_KEY_ID.*s3:PutObject/);
    expect(proxy.requests.filter((r) => r.method === 'PUT')).toHaveLength(1);

    const missingBucket = new S3ArtifactStore('s3://no-such-bucket-for-tests/x', {
      endpointUrl: mlflowDirectS3Server().s3Endpoint,
      credentials: { accessKeyId: 'testing', secretAccessKey: SECRET },
      env: {},
    });
    const noBucket = (await missingBucket.uploadFile(local, 'a.txt').catch((e: unknown) => e)) as HttpStatusError;
    expect(noBucket).toBeInstanceOf(HttpStatusError);
    expect([noBucket.status, noBucket.code]).toEqual([404, 'NoSuchBucket']);
    expect(noBucket.hint).toMatch(/Create the bucket "no-such-bucket-for-tests".*MLflow never creates buckets/);
    await expect(missingBucket.list()).rejects.toMatchObject({ code: 'NoSuchBucket', status: 404 });

    // Never a credential in an error or a log line.
    for (const text of [JSON.stringify(denied.toJSON()), JSON.stringify(noBucket.toJSON()), denied.message, noBucket.message, ...lines]) {
      expect(text).not.toContain(SECRET);
    }
  });

  it('refuses bad paths and missing files before any request', async () => {
    const { store } = await newRun();
    await expect(store.uploadFile(join(dir, 'nope.bin'), 'nope.bin')).rejects.toMatchObject({ code: 'PATH_NOT_FOUND' });
    await expect(store.uploadFile(bigPath, '../escape.bin')).rejects.toBeInstanceOf(LocalPathError);
    expect(store.describe()).toMatch(/^S3 s3:\/\/.*\/artifacts via endpoint http:\/\/127\.0\.0\.1:\d+ \(path-style\): PutObject per file up to 8 MiB/);
  });

  it('is what resolveArtifactStore picks for s3:// runs, with credentials from the AWS default chain', async () => {
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'testing');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'testing');
    try {
      const { url, s3Endpoint } = mlflowDirectS3Server();
      const runId = await pythonCreateRun(url, 's3-store', pythonEnv);
      const connection = resolveMlflowConnection({ trackingUri: url }, {});
      const store = resolveArtifactStore(await artifactUriOf(url, runId), { connection, env: { MLFLOW_S3_ENDPOINT_URL: s3Endpoint } });
      expect(store.kind).toBe('s3');
      const local = join(dir, 'resolved.txt');
      await writeFile(local, 'through resolveArtifactStore');
      await store.uploadFile(local, 'resolved.txt');
      expect(await pythonArtifactHashes(url, runId, '', pythonEnv)).toEqual({ 'resolved.txt': sha256(Buffer.from('through resolveArtifactStore')) });
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('other object stores still fail fast, naming the proxied alternative', () => {
    const connection = resolveMlflowConnection({ trackingUri: mlflowDirectS3Server().url }, {});
    for (const uri of ['gs://b/x', 'wasbs://c@acct.blob.core.windows.net/x', 'abfss://c@a.dfs.core.windows.net/x', 'dbfs:/databricks/x']) {
      let error: unknown;
      try {
        resolveArtifactStore(uri, { connection });
      } catch (e) {
        error = e;
      }
      expect(error, uri).toBeInstanceOf(UnsupportedArtifactStoreError);
      const e = error as UnsupportedArtifactStoreError;
      expect(e.message).toContain(`"${uri.slice(0, uri.indexOf(':'))}:"`);
      expect(e.message).toMatch(/Supported: .*s3:/);
      expect(e.hint).toMatch(/mlflow server --serve-artifacts/);
    }
  });
});
