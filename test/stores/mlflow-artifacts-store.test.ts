/**
 * The MLflow artifact proxy store against real `mlflow server`s (local and S3-on-moto
 * destinations), cross-checked with the official Python client.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { expect, it, vi } from 'vitest';
import { AbortedError, LocalPathError, MlflowApiError } from '../../src/core/errors.js';
import { isThrottlingError, type RetryEvent } from '../../src/core/retry.js';
import { MlflowArtifactsApi } from '../../src/mlflow/artifacts-api.js';
import { resolveMlflowConnection } from '../../src/mlflow/connection.js';
import { listArtifactsRecursive, type MultipartOptions } from '../../src/stores/artifact-store.js';
import { planDirectory } from '../../src/uploader/plan.js';
import { resolveArtifactStore } from '../../src/stores/resolve.js';
import { uploadPlannedFiles } from '../../src/uploader/transfer.js';
import { useFaultProxies, type FaultProxy } from '../support/fault-proxy.js';
import type { Logger } from '../../src/core/logger.js';
import { pythonArtifactHashes, runPython } from '../support/python.js';
import { describeWithServers, mlflowDirectS3Server, mlflowS3Server, mlflowServer, servers } from '../support/servers.js';
import { recordingLogger, serverRun } from '../uploader/helpers.js';

const MiB = 1024 * 1024;
const proxy = useFaultProxies();

function storeFor(trackingUrl: string, artifactUri: string, multipart?: MultipartOptions, logger?: Logger) {
  // Fast retries, and an empty env so the developer's MLFLOW_* variables cannot leak in.
  const connection = resolveMlflowConnection({ trackingUri: trackingUrl, retry: { backoffFactor: 0, backoffJitter: 0, maxRetries: 3 } }, {});
  return resolveArtifactStore(artifactUri, { connection, env: {}, ...(multipart ? { multipart } : {}), ...(logger ? { logger } : {}) });
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** The keys of the run's multipart uploads moto still holds in progress, as boto3 lists them. */
async function multipartUploadsInProgress(s3: ReturnType<typeof mlflowS3Server>, runId: string): Promise<string[]> {
  const listed = await runPython(
    `
import boto3, json, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
res = s3.list_multipart_uploads(Bucket=sys.argv[2], Prefix=sys.argv[3])
print(json.dumps([u["Key"] for u in res.get("Uploads", [])]))
`,
    { args: [s3.s3Endpoint, s3.bucket, `mlartifacts/0/${runId}/`], env: servers().awsEnv },
  );
  return JSON.parse(listed.trim()) as string[];
}
const scratch = () => mkdtempSync(join(tmpdir(), 'au-mlflow-store-'));
const count = (p: FaultProxy, re: RegExp, method?: string) => p.requests.filter((r) => re.test(r.path) && (!method || r.method === method)).length;

describeWithServers('MlflowArtifactsStore on a real MLflow server', () => {
  it('uploads single files and a directory byte-exact, as the official client reads them back', async () => {
    const { url, artifactsDir } = mlflowServer();
    const { runId, artifactUri } = await serverRun(url);
    expect(artifactUri).toMatch(/^mlflow-artifacts:/);
    const store = storeFor(url, artifactUri);

    const dir = scratch();
    const singles: Record<string, Buffer> = {
      'empty.bin': Buffer.alloc(0),
      'one-kib.bin': randomBytes(1024),
      'with space and ünïcødé 模型.txt': Buffer.from('odd but legal\n'),
      'metrics.json': Buffer.from('{"acc": 0.9}'),
    };
    const expected: Record<string, string> = {};
    for (const [name, bytes] of Object.entries(singles)) {
      writeFileSync(join(dir, name), bytes);
      const result = await store.uploadFile(join(dir, name), `single/${name}`);
      expect(result).toEqual({ bytes: bytes.length, attempts: 1, multipart: false, sha256: sha256(bytes) });
      expected[`single/${name}`] = sha256(bytes);
    }
    // The server stored exactly the bytes sent (Content-Length, never a chunked or empty body).
    const stored = join(artifactsDir, ...artifactUri.slice('mlflow-artifacts:/'.length).split('/'));
    expect(statSync(join(stored, 'single', 'one-kib.bin')).size).toBe(1024);
    expect(readFileSync(join(stored, 'single', 'with space and ünïcødé 模型.txt')).equals(singles['with space and ünïcødé 模型.txt']!)).toBe(true);

    const tree = join(dir, 'tree');
    for (let i = 0; i < 10; i++) {
      const sub = join(tree, `level-${i % 3}`, i % 2 ? 'deeper' : '');
      mkdirSync(sub, { recursive: true });
      const bytes = randomBytes(500 + i * 97);
      writeFileSync(join(sub, `file ${i}.bin`), bytes);
    }
    const plan = await planDirectory(tree, { artifactPath: 'dir' });
    expect(plan.files).toHaveLength(10);
    const outcomes = await uploadPlannedFiles(store, plan, { concurrency: 4 });
    expect(outcomes.filter((o) => o.status !== 'uploaded')).toEqual([]);
    for (const f of plan.files) expected[f.artifactPath] = sha256(readFileSync(f.localPath));

    const sizes = Object.fromEntries((await listArtifactsRecursive(store)).map((e) => [e.path, e.size]));
    expect(Object.keys(sizes).sort()).toEqual(Object.keys(expected).sort());
    for (const f of plan.files) expect(sizes[f.artifactPath]).toBe(f.size);
    // MLflow leaves the size of an empty file out of listings.
    expect(sizes['single/empty.bin']).toBeUndefined();
    expect(sizes['single/one-kib.bin']).toBe(1024);
    expect(await store.list('single/one-kib.bin')).toEqual([]);

    // GET streams the stored bytes back.
    const connection = resolveMlflowConnection({ trackingUri: url }, {});
    if (connection.kind !== 'rest') throw new Error('expected a REST connection');
    const api = new MlflowArtifactsApi({ http: connection.http, baseUrl: connection.baseUrl });
    const root = artifactUri.slice('mlflow-artifacts:/'.length);
    expect(await buffer(await api.getFile(`${root}/single/with space and ünïcødé 模型.txt`))).toEqual(singles['with space and ünïcødé 模型.txt']);
    await expect(api.getFile(`${root}/single/missing.bin`)).rejects.toMatchObject({ status: 404 });

    expect(await pythonArtifactHashes(url, runId)).toEqual(expected);
  });

  it('falls back to one PUT when the server cannot do multipart, and asks only once', async () => {
    const { url, artifactsDir } = mlflowServer();
    const front = await proxy(url);
    const { artifactUri } = await serverRun(url);
    const store = storeFor(front.url, artifactUri, { thresholdBytes: 1024, chunkBytes: 1024 });
    const dir = scratch();
    const files = [randomBytes(4096), randomBytes(3000)];
    for (const [i, bytes] of files.entries()) {
      writeFileSync(join(dir, `f${i}`), bytes);
      expect(await store.uploadFile(join(dir, `f${i}`), `fallback/f${i}.bin`)).toMatchObject({ bytes: bytes.length, multipart: false });
    }
    expect(count(front, /\/mpu\/create\//)).toBe(1);
    expect(front.requests.find((r) => r.path.includes('/mpu/create/'))?.status).toBe(501);
    expect(count(front, /\/mlflow-artifacts\/artifacts\/.*fallback/, 'PUT')).toBe(2);
    expect(store.describe()).toMatch(/multipart unsupported/);
    const stored = join(artifactsDir, ...artifactUri.slice('mlflow-artifacts:/'.length).split('/'), 'fallback');
    for (const [i, bytes] of files.entries()) expect(readFileSync(join(stored, `f${i}.bin`)).equals(bytes)).toBe(true);
  });

  it('fails at once with typed errors on 401, 403 and 404', async () => {
    const { url } = mlflowServer();
    const front = await proxy(url);
    const { artifactUri } = await serverRun(url);
    const store = storeFor(front.url, artifactUri);
    const file = join(scratch(), 'x.txt');
    writeFileSync(file, 'x');
    const codes = { 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'RESOURCE_DOES_NOT_EXIST' } as const;
    for (const [status, errorCode] of Object.entries(codes)) {
      front.clearRules();
      front.addRule({ fault: 'status', status: Number(status), body: JSON.stringify({ error_code: errorCode, message: 'injected' }) });
      const before = front.requests.length;
      const error = await store.uploadFile(file, `denied/${status}.txt`).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MlflowApiError);
      expect(error).toMatchObject({ status: Number(status), errorCode, endpoint: 'mlflow-artifacts/artifacts' });
      expect(front.requests.length - before).toBe(1);
    }
    front.clearRules();
  });

  it('fails at once, not retried as load, when the server runs with --no-serve-artifacts (its plain-text 503)', async () => {
    // A real `mlflow server --no-serve-artifacts`, asked through the artifact proxy's routes.
    const { url } = mlflowDirectS3Server();
    const front = await proxy(url);
    const { runId } = await serverRun(url);
    const store = storeFor(front.url, `mlflow-artifacts:/0/${runId}/artifacts`);
    const file = join(scratch(), 'x.txt');
    writeFileSync(file, 'x');
    const retries: RetryEvent[] = [];
    const error = await store.uploadFile(file, 'x.txt', { onRetry: (event) => retries.push(event) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MlflowApiError);
    expect(error).toMatchObject({ status: 503, errorCode: 'ENDPOINT_DISABLED', hint: expect.stringMatching(/does not serve artifacts: start it with `mlflow server --serve-artifacts`/) });
    expect(front.requests.filter((r) => r.method === 'PUT').map((r) => r.status)).toEqual([503]);
    expect(retries).toEqual([]);
    expect(isThrottlingError(error)).toBe(false);
  });

  it('rejects names MLflow cannot store before sending anything', async () => {
    const { url } = mlflowServer();
    const front = await proxy(url);
    const { artifactUri } = await serverRun(url);
    const store = storeFor(front.url, artifactUri);
    const dir = scratch();
    writeFileSync(join(dir, 'ok.txt'), 'x');
    for (const bad of ['a#b.txt', '../up.txt', 'sub\\file', '/abs.txt', 'x\ny', 'a%2Fb']) {
      const error = await store.uploadFile(join(dir, 'ok.txt'), bad).catch((e: unknown) => e);
      expect(error, bad).toBeInstanceOf(LocalPathError);
      expect((error as LocalPathError).code).toBe('INVALID_ARTIFACT_PATH');
    }
    writeFileSync(join(dir, 'bad#name.txt'), 'x');
    await expect(planDirectory(dir)).rejects.toMatchObject({ code: 'INVALID_ARTIFACT_PATH' });
    expect(front.requests).toEqual([]);
  });
});

describeWithServers('MlflowArtifactsStore multipart through the S3 proxy (moto)', () => {
  it('uploads parts in parallel, retries a failed part on its own, and the bytes arrive exact', async () => {
    const s3 = mlflowS3Server();
    const front = await proxy(s3.url);
    const objectStore = await proxy(s3.s3Endpoint);
    // Two 503s on part 2 only (S3's own error shape).
    objectStore.addRule({
      match: (r) => r.method === 'PUT' && /[?&]partNumber=2(&|$)/.test(r.path),
      times: 2,
      fault: 'status',
      status: 503,
      body: '<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>',
      headers: { 'content-type': 'application/xml' },
    });
    const { runId, artifactUri } = await serverRun(s3.url);
    const store = storeFor(front.url, artifactUri, {
      thresholdBytes: 5 * MiB,
      chunkBytes: 5 * MiB,
      partConcurrency: 2,
      rewritePartUrl: (u) => u.replace(s3.s3Endpoint, objectStore.url),
    });
    const bytes = randomBytes(11 * MiB);
    const file = join(scratch(), 'big.bin');
    writeFileSync(file, bytes);
    let last = 0;
    const retries: number[] = [];
    const result = await store.uploadFile(file, 'big/model.bin', { onProgress: (n) => (last = n), onRetry: (e) => retries.push(e.attempt) });

    // The parts streamed in parallel; the file's sha256 was hashed from them in file order.
    expect(result).toEqual({ bytes: bytes.length, attempts: 3, multipart: true, sha256: sha256(bytes) });
    expect(last).toBe(bytes.length);
    expect(retries).toEqual([1, 2]);
    for (const [part, times] of [[1, 1], [2, 3], [3, 1]] as const) {
      expect(count(objectStore, new RegExp(`[?&]partNumber=${part}(&|$)`), 'PUT'), `part ${part}`).toBe(times);
    }
    expect(count(front, /\/mpu\/create\//)).toBe(1);
    expect(count(front, /\/mpu\/complete\//)).toBe(1);
    expect(count(front, /\/mpu\/abort\//)).toBe(0);
    expect(count(front, /\/mlflow-artifacts\/artifacts\//, 'PUT')).toBe(0);
    expect(await store.list('big')).toEqual([{ path: 'big/model.bin', isDir: false, size: bytes.length }]);
    expect(await pythonArtifactHashes(s3.url, runId, 'big')).toEqual({ 'model.bin': sha256(bytes) });
  });

  it('reports the sha256 of the file when parts finish out of order and are retried (the retries resend the bytes that were hashed)', async () => {
    const s3 = mlflowS3Server();
    const front = await proxy(s3.url);
    const objectStore = await proxy(s3.s3Endpoint);
    const partPut = (n: number) => (r: { method: string; path: string }) => r.method === 'PUT' && new RegExp(`[?&]partNumber=${n}(&|$)`).test(r.path);
    const answered = (n: number) => objectStore.requests.some((r) => partPut(n)(r) && r.status === 200);
    // Part 1 is held until every later part has been stored, then its connection drops: it is
    // the last to finish, on its second attempt. Part 3 loses its connection halfway through.
    objectStore.addRule({
      match: partPut(1),
      times: 1,
      fault: 'hold',
      onHold: () =>
        void (async () => {
          while (![2, 3, 4].every(answered)) await new Promise((resolve) => setTimeout(resolve, 20));
          objectStore.thaw();
        })(),
    });
    objectStore.addRule({ match: partPut(3), times: 1, fault: 'drop-mid-body' });
    const { runId, artifactUri } = await serverRun(s3.url);
    const store = storeFor(front.url, artifactUri, {
      thresholdBytes: 5 * MiB,
      chunkBytes: 5 * MiB,
      partConcurrency: 4,
      rewritePartUrl: (u) => u.replace(s3.s3Endpoint, objectStore.url),
    });
    const bytes = randomBytes(15 * MiB + 100 * 1024);
    const file = join(scratch(), 'shuffled.bin');
    writeFileSync(file, bytes);
    const result = await store.uploadFile(file, 'shuffled/model.bin');

    expect(result).toEqual({ bytes: bytes.length, attempts: 3, multipart: true, sha256: sha256(bytes) });
    const order = objectStore.requests.filter((r) => r.method === 'PUT' && r.status === 200).map((r) => /[?&]partNumber=(\d+)/.exec(r.path)?.[1]);
    expect(order.at(-1)).toBe('1');
    for (const [part, times] of [[1, 2], [2, 1], [3, 2], [4, 1]] as const) {
      expect(count(objectStore, new RegExp(`[?&]partNumber=${part}(&|$)`), 'PUT'), `part ${part}`).toBe(times);
    }
    expect(await pythonArtifactHashes(s3.url, runId, 'shuffled')).toEqual({ 'model.bin': sha256(bytes) });
  });

  it('sends more parts at once while each waits on a slow object store (default partConcurrency), within the part-buffer budget', async () => {
    const s3 = mlflowS3Server();
    const front = await proxy(s3.url);
    const objectStore = await proxy(s3.s3Endpoint);
    const isPartPut = (r: { method: string; path: string }) => r.method === 'PUT' && /[?&]partNumber=\d+/.test(r.path);
    // Every part waits 300 ms at the object store's door: a link a round trip away.
    objectStore.addRule({ match: isPartPut, fault: 'delay', delayMs: 300 });
    const { runId, artifactUri } = await serverRun(s3.url);
    const store = storeFor(front.url, artifactUri, { thresholdBytes: 5 * MiB, chunkBytes: 5 * MiB, rewritePartUrl: (u) => u.replace(s3.s3Endpoint, objectStore.url) });
    expect(store.describe()).toMatch(/parts, 4 to 16 at a time/);
    const bytes = randomBytes(60 * MiB);
    const file = join(scratch(), 'twelve.bin');
    writeFileSync(file, bytes);
    const result = await store.uploadFile(file, 'adaptive/model.bin');

    expect(result).toEqual({ bytes: bytes.length, attempts: 1, multipart: true, sha256: sha256(bytes) });
    const parts = objectStore.requests.filter(isPartPut);
    expect(parts).toHaveLength(12);
    // 4 at first; after 4 parts one more; never past 64 MiB of part buffers (12 × 5 MiB).
    expect(parts.slice(0, 4).map((r) => r.inFlightAtStart)).toEqual([1, 2, 3, 4]);
    const peak = Math.max(...parts.map((r) => r.inFlightAtStart));
    expect(peak).toBeGreaterThanOrEqual(5);
    expect(peak).toBeLessThanOrEqual(12);
    expect(await pythonArtifactHashes(s3.url, runId, 'adaptive')).toEqual({ 'model.bin': sha256(bytes) });
  });

  it('sends the file as one PUT when the part URLs MLflow signed have expired, and leaves no upload in progress', async () => {
    const s3 = mlflowS3Server();
    const front = await proxy(s3.url);
    const objectStore = await proxy(s3.s3Endpoint);
    const { runId, artifactUri } = await serverRun(s3.url);
    const logger = recordingLogger();
    const store = storeFor(front.url, artifactUri, { thresholdBytes: 5 * MiB, chunkBytes: 5 * MiB, rewritePartUrl: (u) => u.replace(s3.s3Endpoint, objectStore.url) }, logger);
    const bytes = randomBytes(11 * MiB);
    const file = join(scratch(), 'late.bin');
    writeFileSync(file, bytes);
    // This machine's clock two hours on: boto3 signed the part URLs (on the server) for one.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 2 * 3600_000 });
    let result;
    try {
      result = await store.uploadFile(file, 'late/model.bin');
    } finally {
      vi.useRealTimers();
    }

    expect(result).toEqual({ bytes: bytes.length, attempts: 1, multipart: false, sha256: sha256(bytes) });
    expect(objectStore.requests.filter((r) => r.method === 'PUT')).toHaveLength(0);
    expect(count(front, /\/mpu\/create\//)).toBe(1);
    expect(count(front, /\/mpu\/abort\//)).toBe(1);
    expect(count(front, /\/mpu\/complete\//)).toBe(0);
    expect(count(front, /\/mlflow-artifacts\/artifacts\//, 'PUT')).toBe(1);
    expect(logger.lines.filter(([level]) => level === 'warn').map(([, message]) => message)).toEqual([
      expect.stringMatching(/late\/model\.bin: sending it as one PUT through the server instead of in parts: its part URLs expire at /),
    ]);
    expect(await pythonArtifactHashes(s3.url, runId, 'late')).toEqual({ 'model.bin': sha256(bytes) });
    expect(await multipartUploadsInProgress(s3, runId)).toEqual([]);
  });

  // A Retry-After past retry.maxRetryAfterMs fails the part at once; the hint said the part had
  // been "retried on its own, as often as the retry policy allows".
  it('a part answered 429 with a Retry-After of a day fails at once, aborted, with a hint that says what the store asked', async () => {
    const s3 = mlflowS3Server();
    const front = await proxy(s3.url);
    const objectStore = await proxy(s3.s3Endpoint);
    objectStore.addRule({
      match: (r) => r.method === 'PUT' && /[?&]partNumber=\d+/.test(r.path),
      fault: 'status',
      status: 429,
      headers: { 'retry-after': '86400', 'content-type': 'application/xml' },
      body: '<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>',
    });
    const { runId, artifactUri } = await serverRun(s3.url);
    const store = storeFor(front.url, artifactUri, { thresholdBytes: 5 * MiB, chunkBytes: 5 * MiB, partConcurrency: 1, rewritePartUrl: (u) => u.replace(s3.s3Endpoint, objectStore.url) });
    const file = join(scratch(), 'throttled.bin');
    writeFileSync(file, randomBytes(11 * MiB));
    const error = await store.uploadFile(file, 'throttled/model.bin').catch((e: unknown) => e);

    expect(error).toMatchObject({ status: 429 });
    expect((error as { hint?: string }).hint).toMatch(/asked to wait 86400 s \(Retry-After\)/);
    expect((error as { hint?: string }).hint).toMatch(/retry\.maxRetryAfterMs/);
    expect((error as { hint?: string }).hint).not.toMatch(/as often as the retry policy allows/);
    expect(objectStore.requests.filter((r) => r.method === 'PUT')).toHaveLength(1);
    expect(count(front, /\/mpu\/abort\//)).toBe(1);
    expect(await multipartUploadsInProgress(s3, runId)).toEqual([]);
  });

  it('aborts the server-side upload when the caller aborts, leaving no upload in progress', async () => {
    const s3 = mlflowS3Server();
    const front = await proxy(s3.url);
    const { runId, artifactUri } = await serverRun(s3.url);
    // Parts below S3's 5 MiB minimum are fine here: the upload is never completed.
    const chunk = 64 * 1024;
    const store = storeFor(front.url, artifactUri, { thresholdBytes: chunk, chunkBytes: chunk, partConcurrency: 1 });
    const file = join(scratch(), 'aborted.bin');
    writeFileSync(file, randomBytes(3 * chunk));
    const controller = new AbortController();
    const error = await store
      .uploadFile(file, 'aborted/model.bin', { signal: controller.signal, onProgress: (n) => n >= chunk && controller.abort() })
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(AbortedError);
    expect((error as Error).message).toMatch(/aborted too/);
    expect(count(front, /\/mpu\/create\//)).toBe(1);
    expect(count(front, /\/mpu\/abort\//)).toBe(1);
    expect(count(front, /\/mpu\/complete\//)).toBe(0);
    expect(await store.list('aborted')).toEqual([]);

    expect(await multipartUploadsInProgress(s3, runId)).toEqual([]);
  });
});

describeWithServers('a name longer than the server\'s file system takes (255 bytes)', () => {
  const longName = 'w'.repeat(300);
  it.each([
    ['a directory name, small file: a bare 500 after the body', `trials/${longName}/w.bin`, 5],
    ['the file\'s own name, larger file: the 500 comes before the body is read, the client sees the connection reset', `trials/${longName}`, 8 * MiB],
  ])('%s: INVALID_ARTIFACT_PATH naming the name and the server\'s answer, tried once more, not for the whole policy', async (_case, artifactPath, size) => {
    const { artifactUri } = await serverRun(mlflowServer().url);
    const dir = mkdtempSync(join(tmpdir(), 'au-long-'));
    writeFileSync(join(dir, 'w.bin'), randomBytes(size));
    const retries: RetryEvent[] = [];

    const error = await storeFor(mlflowServer().url, artifactUri)
      .uploadFile(join(dir, 'w.bin'), artifactPath, { onRetry: (event) => retries.push(event) })
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(LocalPathError);
    expect(error).toMatchObject({ code: 'INVALID_ARTIFACT_PATH', path: artifactPath });
    expect((error as LocalPathError).message).toContain('holds a name of 300 bytes of UTF-8');
    expect((error as LocalPathError).hint).toMatch(/The server answered (500 "Internal Server Error"|by resetting the connection)/);
    expect((error as LocalPathError).hint).toContain('Shorten that name to at most 255 bytes');
    expect(retries).toHaveLength(1);
  });

  it('a server storing in a bucket (S3 on moto) takes the same name: nothing is refused before it is tried', async () => {
    const { artifactUri } = await serverRun(mlflowS3Server().url);
    const dir = mkdtempSync(join(tmpdir(), 'au-long-'));
    writeFileSync(join(dir, 'w.bin'), 'stored');
    const store = storeFor(mlflowS3Server().url, artifactUri);
    await store.uploadFile(join(dir, 'w.bin'), `trials/${longName}/w.bin`);
    expect(await listArtifactsRecursive(store, 'trials')).toEqual([expect.objectContaining({ path: `trials/${longName}/w.bin`, size: 6 })]);
  });
});
