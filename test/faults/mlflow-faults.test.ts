/**
 * The uploader against a real MLflow server behind a fault-injecting proxy: transient failures
 * are retried until every byte arrives exactly once, stalls are cut by the per-request timeout,
 * deadlines and aborts stop promptly and clean up multipart uploads, and permanent refusals
 * are not retried at all.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { expect, it } from 'vitest';
import { AbortedError, ArtifactUploaderError, InvalidResponseError, MlflowApiError, RequestTimeoutError } from '../../src/core/errors.js';
import { ArtifactUploader, type ArtifactUploaderOptions } from '../../src/index.js';
import { useFaultProxies, type FaultRule } from '../support/fault-proxy.js';
import { pythonArtifactHashes } from '../support/python.js';
import { describeWithServers, mlflowS3Server, mlflowServer, servers } from '../support/servers.js';
import { FAST_RETRY, listRunArtifacts, tempDir } from './helpers.js';
import { serverRun } from '../uploader/helpers.js';

const proxy = useFaultProxies();

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const ARTIFACT_PUT = (r: { method: string; path: string }) => r.method === 'PUT' && r.path.startsWith('/api/2.0/mlflow-artifacts/artifacts/');
/** What nginx answers past its `client_max_body_size` (1 MiB by default). */
/** A 200 that is not MLflow's JSON: an auth gateway's login page, once its session ran out mid-run. */
const LOGIN_PAGE_ANSWER = {
  fault: 'status',
  status: 200,
  headers: { 'content-type': 'text/html' },
  body: '<html><head><title>Sign in</title></head><body>Sign in to continue</body></html>',
} as const;
const NGINX_413 = '<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n</body>\r\n</html>\r\n';
const PART_PUT = (r: { method: string; path: string }) => r.method === 'PUT' && /[?&]partNumber=\d+/.test(r.path);

async function uploaderFor(trackingUri: string, runId: string, options: Partial<ArtifactUploaderOptions> = {}): Promise<ArtifactUploader> {
  return new ArtifactUploader({ stage: 'training', runId, trackingUri, retry: FAST_RETRY, env: {}, configDir: await tempDir('au-faults-config-'), ...options });
}

async function inProgressUploads(prefix: string): Promise<string[]> {
  const { s3Endpoint, bucket } = mlflowS3Server();
  const client = new S3Client({
    endpoint: s3Endpoint,
    region: servers().awsEnv.AWS_DEFAULT_REGION!,
    forcePathStyle: true,
    credentials: { accessKeyId: servers().awsEnv.AWS_ACCESS_KEY_ID!, secretAccessKey: servers().awsEnv.AWS_SECRET_ACCESS_KEY! },
  });
  try {
    const res = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
    return (res.Uploads ?? []).map((u) => u.Key ?? '');
  } finally {
    client.destroy();
  }
}

describeWithServers('fault suite: MLflow artifact proxy', () => {
  /** A 2 KiB file uploaded through a proxy in front of the MLflow server that answers its PUT with `answer`. */
  async function uploadAnswered(answer: Omit<FaultRule, 'match'>) {
    const { url } = mlflowServer();
    const front = await proxy(url);
    front.addRule({ match: ARTIFACT_PUT, ...answer });
    const { runId } = await serverRun(url);
    const file = join(await tempDir(), 'model.onnx');
    await writeFile(file, randomBytes(2048));
    return { url, front, runId, result: await (await uploaderFor(front.url, runId)).uploadFile(file) };
  }

  it('500 files through 503s, connections dropped mid-body and 429 + Retry-After arrive byte-exact, each stored once', async () => {
    const { url } = mlflowServer();
    const front = await proxy(url);
    front.addRule({ match: ARTIFACT_PUT, probability: 0.2, fault: 'status', status: 503 });
    front.addRule({ match: ARTIFACT_PUT, probability: 0.05 / 0.8, fault: 'drop-mid-body' });
    front.addRule({
      match: ARTIFACT_PUT,
      probability: 0.05,
      times: 25,
      fault: 'status',
      status: 429,
      headers: { 'retry-after': '0.1' },
      body: JSON.stringify({ error_code: 'REQUEST_LIMIT_EXCEEDED', message: 'slow down' }),
    });
    const { runId } = await serverRun(url);
    const dir = await tempDir();
    const expected: Record<string, string> = {};
    for (let i = 0; i < 500; i++) {
      const rel = `part-${i % 5}/file-${String(i).padStart(3, '0')}.bin`;
      const bytes = randomBytes(1024 + ((i * 61) % 3073)); // 1–4 KiB
      await mkdir(join(dir, `part-${i % 5}`), { recursive: true });
      await writeFile(join(dir, rel), bytes);
      expected[rel] = sha256(bytes);
    }

    const uploader = await uploaderFor(front.url, runId, { concurrency: 8 });
    const result = await uploader.uploadDirectory(dir, { artifactPath: 'many' });

    expect(result.error).toBeUndefined();
    expect(result.status).toBe('uploaded');
    expect(result.metrics.filesSent).toBe(500);
    const puts = front.requests.filter(ARTIFACT_PUT);
    const faulted = puts.filter((r) => r.fault !== undefined);
    // The faults did happen, in every flavour...
    expect(faulted.filter((r) => r.status === 503).length).toBeGreaterThan(50);
    expect(faulted.filter((r) => r.fault === 'drop-mid-body').length).toBeGreaterThan(5);
    expect(faulted.filter((r) => r.status === 429).length).toBeGreaterThan(5);
    // ...each cost exactly one retry, and the result counts them.
    expect(result.metrics.retries).toBe(faulted.length);
    expect(result.metrics.attempts).toBe(500 + faulted.length);
    expect(result.files.reduce((n, f) => n + (f.attempts ?? 0), 0)).toBe(500 + faulted.length);
    // Every file reached the server exactly once.
    const stored = new Map<string, number>();
    for (const r of puts) if (r.status === 200) stored.set(r.path, (stored.get(r.path) ?? 0) + 1);
    expect(stored.size).toBe(500);
    expect([...stored.values()].every((n) => n === 1)).toBe(true);
    // And the official client reads back exactly the bytes.
    expect(await pythonArtifactHashes(url, runId, 'many')).toEqual(expected);
  });

  // Timeouts are tested against a request that never gets an answer (a stall that outlasts the
  // test), never against a slow one: which side of a 400 ms race a loaded machine lands on is luck.
  it('a request that never gets an answer is cut by the per-request timeout and the retry succeeds', async () => {
    const { url } = mlflowServer();
    const front = await proxy(url);
    front.addRule({ match: ARTIFACT_PUT, times: 1, fault: 'stall', stallMs: 600_000 });
    const { runId } = await serverRun(url);
    const file = join(await tempDir(), 'metrics.json');
    await writeFile(file, '{"loss": 0.25}');

    // Long enough that a real answer never meets it, however loaded the machine.
    const uploader = await uploaderFor(front.url, runId, { retry: { ...FAST_RETRY, timeoutMs: 5000 } });
    const result = await uploader.uploadFile(file);

    expect(result.status).toBe('uploaded');
    expect(result.files[0]).toMatchObject({ artifactPath: 'metrics.json', status: 'uploaded', attempts: 2 });
    expect(result.metrics.retries).toBe(1);
    expect(front.requests.filter(ARTIFACT_PUT).map((r) => r.fault ?? r.status)).toEqual(['stall', 200]);
    expect(await listRunArtifacts(url, runId)).toEqual(['metrics.json']);
  });

  it('without retries left, a stall ends in a typed timeout error, and nothing is stored', async () => {
    const { url } = mlflowServer();
    const front = await proxy(url);
    front.addRule({ match: ARTIFACT_PUT, fault: 'stall', stallMs: 600_000 }); // no PUT is ever answered
    const { runId } = await serverRun(url);
    const file = join(await tempDir(), 'metrics.json');
    await writeFile(file, '{"loss": 0.25}');

    // The run lookup goes through the same proxy to the real server, and must beat the timeout
    // (twice at most): 300 ms was within reach of a loaded machine. The two stalled PUTs cost 4 s.
    const uploader = await uploaderFor(front.url, runId, { retry: { ...FAST_RETRY, maxRetries: 1, timeoutMs: 2000 } });
    const result = await uploader.uploadFile(file);

    expect(result).toMatchObject({ status: 'failed', reason: 'upload-failed' });
    expect(result.error).toBeInstanceOf(RequestTimeoutError);
    expect(result.files[0]).toMatchObject({ status: 'failed', attempts: 2 });
    expect(front.requests.filter(ARTIFACT_PUT)).toHaveLength(2);
    expect(await listRunArtifacts(url, runId)).toEqual([]);
  });

  // What each refusal looks like in the wild: MLflow's JSON for auth and bad paths, a web
  // server's plain 404 for a wrong host or prefix.
  for (const [status, body, hint] of [
    [401, JSON.stringify({ error_code: 'UNAUTHENTICATED', message: 'You are not authenticated.' }), /MLFLOW_TRACKING_TOKEN/],
    [403, JSON.stringify({ error_code: 'PERMISSION_DENIED', message: 'Permission denied' }), /permission/i],
    [404, '404 page not found', /does not look like an MLflow tracking server/],
    [400, JSON.stringify({ error_code: 'INVALID_PARAMETER_VALUE', message: 'Invalid path' }), /rename the file or pass another artifactPath/],
  ] as const) {
    it(`${status} on the upload: one request, no retry, a typed error with the status and what to do`, async () => {
      const { url } = mlflowServer();
      const front = await proxy(url);
      front.addRule({ match: ARTIFACT_PUT, fault: 'status', status, body });
      const { runId } = await serverRun(url);
      const file = join(await tempDir(), 'model.onnx');
      await writeFile(file, randomBytes(2048));

      const uploader = await uploaderFor(front.url, runId);
      const result = await uploader.uploadFile(file);

      expect(result).toMatchObject({ status: 'failed', reason: 'upload-failed' });
      expect(result.error).toBeInstanceOf(ArtifactUploaderError);
      expect(result.error).toMatchObject({ status });
      expect(result.error?.hint ?? '').toMatch(hint);
      expect(result.error?.message).toContain(String(status));
      expect(result.metrics).toMatchObject({ attempts: 1, retries: 0 });
      expect(front.requests.filter(ARTIFACT_PUT)).toHaveLength(1);

      // With onError: 'throw' the same error is thrown.
      const throwing = await uploaderFor(front.url, runId, { onError: 'throw' });
      const thrown = await throwing.uploadFile(file).catch((e: unknown) => e);
      expect(thrown).toBeInstanceOf(MlflowApiError);
      expect(thrown).toMatchObject({ status });
      expect(front.requests.filter(ARTIFACT_PUT)).toHaveLength(2);
    });
  }

  // Multipart is on by default (for files of 500 MiB and more), so "enable multipart" sent users
  // to a setting they had: what lets a file past the proxy is the threshold.
  it('a 413 from a reverse proxy on the upload: one request, and a hint that names the proxy\'s limit and the multipart threshold', async () => {
    const { url, runId, result } = await uploadAnswered({ fault: 'status', status: 413, headers: { 'content-type': 'text/html' }, body: NGINX_413 });

    expect(result).toMatchObject({ status: 'failed', reason: 'upload-failed' });
    expect(result.error).toMatchObject({ status: 413 });
    expect(result.error?.hint).toMatch(/client_max_body_size/);
    expect(result.error?.hint).toMatch(/MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE/);
    expect(result.error?.hint).not.toMatch(/enable multipart/);
    expect(result.metrics).toMatchObject({ attempts: 1, retries: 0 });
    expect(await listRunArtifacts(url, runId)).toEqual([]);
  });

  // A Retry-After past retry.maxRetryAfterMs is not waited out: the request fails at once. The
  // hint said the server had kept failing "through every retry the retry policy allows".
  for (const status of [429, 503]) {
    it(`a ${status} whose Retry-After is a day: one request, and a hint that says what the server asked and which setting waits that long`, async () => {
      const { url, runId, result } = await uploadAnswered({ fault: 'status', status, headers: { 'retry-after': '86400' } });

      expect(result).toMatchObject({ status: 'failed', reason: 'upload-failed' });
      expect(result.error).toMatchObject({ status });
      expect(result.error?.hint).toMatch(/asked to wait 86400 s \(Retry-After\)/);
      expect(result.error?.hint).toMatch(/retry\.maxRetryAfterMs/);
      expect(result.error?.hint).not.toMatch(/every retry|was retried as often/);
      expect(result.metrics).toMatchObject({ attempts: 1, retries: 0 });
    });
  }

  // MLflow answers a stored file with JSON ({}); a 200 that is not came from something in between
  // (an auth gateway's login page once its session ran out mid-run), and MLflow never got the file.
  it('a 200 on the upload that is not MLflow\'s JSON fails the file, not reported uploaded with nothing stored', async () => {
    const { url, runId, result } = await uploadAnswered(LOGIN_PAGE_ANSWER);

    expect(result).toMatchObject({ status: 'failed', reason: 'upload-failed' });
    expect(result.error).toBeInstanceOf(InvalidResponseError);
    expect(result.error?.hint).toMatch(/proxy may have answered/);
    expect(result.metrics).toMatchObject({ attempts: 1, retries: 0 });
    expect(await listRunArtifacts(url, runId)).toEqual([]);
  });

  // JSON, but not MLflow's object: the check settles objects without loading the schemas, so
  // this answer is the one that takes the schema path for its error.
  it('a 200 on the upload whose JSON is not an object fails the file the same way', async () => {
    const { url, runId, result } = await uploadAnswered({ fault: 'status', status: 200, headers: { 'content-type': 'application/json' }, body: '["ok"]' });

    expect(result).toMatchObject({ status: 'failed', reason: 'upload-failed' });
    expect(result.error).toBeInstanceOf(InvalidResponseError);
    expect(result.error?.message).toMatch(/PUT .*\(root\)/);
    expect(await listRunArtifacts(url, runId)).toEqual([]);
  });

  // A redirect is not followed (it would send the file, and the credentials, to another address
  // the user never named), so it is a refusal like the ones above: it must say where it points.
  for (const status of [301, 307, 308]) {
    it(`a ${status} redirect on the upload: one request, and a hint that names where it points and what to set`, async () => {
      const location = 'https://mlflow.example.com/api/2.0/mlflow-artifacts/artifacts/x/model.onnx';
      const { url, front, runId, result } = await uploadAnswered({ fault: 'status', status, headers: { location, 'content-type': 'text/html' }, body: '<html><body>Moved</body></html>' });

      expect(result).toMatchObject({ status: 'failed', reason: 'upload-failed' });
      expect(result.error).toBeInstanceOf(MlflowApiError);
      expect(result.error).toMatchObject({ status });
      expect(result.error?.hint).toContain(location);
      expect(result.error?.hint).toMatch(/MLFLOW_TRACKING_URI/);
      expect(result.metrics).toMatchObject({ attempts: 1, retries: 0 });
      expect(front.requests.filter(ARTIFACT_PUT)).toHaveLength(1);
      expect(await listRunArtifacts(url, runId)).toEqual([]);
    });
  }
});

describeWithServers('fault suite: deadlines and aborts during multipart uploads (S3 proxy on moto)', () => {
  // Parts below S3's 5 MiB minimum are fine: these uploads are never completed.
  const chunk = 64 * 1024;

  async function stalledMultipart() {
    const s3 = mlflowS3Server();
    const front = await proxy(s3.url);
    const objectStore = await proxy(s3.s3Endpoint);
    objectStore.addRule({ match: PART_PUT, fault: 'stall', stallMs: 120_000 });
    const { runId } = await serverRun(s3.url);
    const file = join(await tempDir(), 'weights.bin');
    await writeFile(file, randomBytes(4 * chunk));
    const multipart = { enabled: true, thresholdBytes: chunk, chunkBytes: chunk, partConcurrency: 2, rewritePartUrl: (u: string) => u.replace(s3.s3Endpoint, objectStore.url) };
    return { s3, front, objectStore, runId, file, multipart };
  }

  it('the overall deadline (retry.totalTimeoutMs) stops a stalled multipart upload and aborts it on the server', async () => {
    const { s3, front, objectStore, runId, file, multipart } = await stalledMultipart();
    // The deadline must leave time for the run lookup and the create (the server's worker may
    // import boto3 on that first call) on a loaded machine, or nothing is there to abort.
    const uploader = await uploaderFor(front.url, runId, { multipart, retry: { ...FAST_RETRY, timeoutMs: 60_000, totalTimeoutMs: 5000 } });
    const result = await uploader.uploadFile(file);

    expect(result.status).toBe('failed');
    expect(result.error).toBeInstanceOf(AbortedError);
    expect(result.error?.message).toMatch(/deadline/);
    expect(objectStore.requests.filter(PART_PUT).length).toBeGreaterThan(0);
    expect(front.requests.filter((r) => r.path.includes('/mpu/create/'))).toHaveLength(1);
    expect(front.requests.filter((r) => r.path.includes('/mpu/abort/'))).toHaveLength(1);
    expect(front.requests.filter((r) => r.path.includes('/mpu/complete/'))).toHaveLength(0);
    expect(await inProgressUploads(`mlartifacts/0/${runId}/`)).toEqual([]);
    expect(await listRunArtifacts(s3.url, runId)).toEqual([]);
  });

  /**
   * A multipart upload of four chunks through a proxy in front of the S3-backed server, and one
   * in front of the object store its part URLs point at: `mpu/complete` (at the server) or every
   * part's PUT (at the object store) is answered with `answer`.
   */
  async function multipartAnswered(request: 'mpu/complete' | 'part PUT', answer: Omit<FaultRule, 'match'>) {
    const s3 = mlflowS3Server();
    const front = await proxy(s3.url);
    const objectStore = await proxy(s3.s3Endpoint);
    if (request === 'mpu/complete') front.addRule({ match: (r) => r.path.includes('/mpu/complete/'), ...answer });
    else objectStore.addRule({ match: PART_PUT, ...answer });
    const { runId } = await serverRun(s3.url);
    const file = join(await tempDir(), 'weights.bin');
    await writeFile(file, randomBytes(4 * chunk));
    const multipart = { enabled: true, thresholdBytes: chunk, chunkBytes: chunk, rewritePartUrl: (u: string) => u.replace(s3.s3Endpoint, objectStore.url) };
    const uploader = await uploaderFor(front.url, runId, { multipart });
    return { s3, front, objectStore, runId, result: await uploader.uploadFile(file) };
  }
  /**
   * After the object store refused the part PUTs ({@link multipartAnswered}): parts were sent,
   * the upload was aborted at the server and never completed, and nothing is left in progress
   * in the bucket or stored in the run.
   */
  async function expectRefusedPartsAborted({ s3, front, objectStore, runId }: Omit<Awaited<ReturnType<typeof multipartAnswered>>, 'result'>): Promise<void> {
    expect(partNumbersSent(objectStore).length).toBeGreaterThan(0);
    expect(front.requests.filter((r) => r.path.includes('/mpu/complete/'))).toHaveLength(0);
    expect(front.requests.filter((r) => r.path.includes('/mpu/abort/'))).toHaveLength(1);
    expect(await inProgressUploads(`mlartifacts/0/${runId}/`)).toEqual([]);
    expect(await listRunArtifacts(s3.url, runId)).toEqual([]);
  }
  const multipartWithCompleteAnswered = (answer: Omit<FaultRule, 'match'>) => multipartAnswered('mpu/complete', answer);

  // MLflow answers mpu/complete with JSON ({}); a 200 that is not JSON came from something in
  // between (an auth gateway's login page, an error page served as 200), and MLflow never saw the
  // complete: reported uploaded, the file was missing and its parts stayed billed in the bucket.
  it('a 200 from mpu/complete that is not MLflow\'s JSON fails the file, and the upload is aborted, not left in progress', async () => {
    const { s3, front, runId, result } = await multipartWithCompleteAnswered(LOGIN_PAGE_ANSWER);

    expect(result).toMatchObject({ status: 'failed', reason: 'upload-failed' });
    expect(result.error).toBeInstanceOf(InvalidResponseError);
    expect(result.error?.message).toMatch(/mpu\/complete/);
    expect(result.error?.hint).toMatch(/proxy may have answered/);
    expect(front.requests.filter((r) => r.path.includes('/mpu/complete/'))).toHaveLength(1);
    expect(front.requests.filter((r) => r.path.includes('/mpu/abort/'))).toHaveLength(1);
    expect(await inProgressUploads(`mlartifacts/0/${runId}/`)).toEqual([]);
    expect(await listRunArtifacts(s3.url, runId)).toEqual([]);
  });

  // mpu/complete sends one presigned URL per part (about 400 bytes on S3, more with temporary
  // credentials): a few thousand parts pass nginx's default limit of 1 MiB. Larger parts make
  // that list shorter.
  it('a 413 from a reverse proxy on mpu/complete: not retried, the upload aborted, and a hint that says to use larger parts', async () => {
    const { s3, front, runId, result } = await multipartWithCompleteAnswered({ fault: 'status', status: 413, headers: { 'content-type': 'text/html' }, body: NGINX_413 });

    expect(result).toMatchObject({ status: 'failed', reason: 'upload-failed' });
    expect(result.error).toMatchObject({ status: 413 });
    expect(result.error?.hint).toMatch(/client_max_body_size/);
    expect(result.error?.hint).toMatch(/MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE/);
    expect(result.error?.hint).not.toMatch(/enable multipart/);
    expect(front.requests.filter((r) => r.path.includes('/mpu/complete/'))).toHaveLength(1);
    expect(front.requests.filter((r) => r.path.includes('/mpu/abort/'))).toHaveLength(1);
    expect(await inProgressUploads(`mlartifacts/0/${runId}/`)).toEqual([]);
    expect(await listRunArtifacts(s3.url, runId)).toEqual([]);
  });

  /** The part numbers the object store was sent, each once: a refused part was not retried. */
  const partNumbersSent = (objectStore: { requests: Array<{ method: string; path: string }> }) => {
    const numbers = objectStore.requests.filter(PART_PUT).map((r) => /[?&]partNumber=(\d+)/.exec(r.path)![1]);
    expect(new Set(numbers).size).toBe(numbers.length);
    return numbers;
  };

  // The presigned part URLs go to the object store, not through MLflow: a redirect or a proxy's
  // body limit there had no hint at all (the proxied PUT and mpu/complete had theirs).
  for (const status of [301, 307]) {
    it(`a ${status} redirect on a presigned part URL: not retried, the upload aborted, and a hint that names where it points (without its signature) and what to set`, async () => {
      const location = 'https://bucket.s3.eu-west-3.amazonaws.com/mlartifacts/weights.bin?partNumber=1&uploadId=u&X-Amz-Signature=0123456789abcdef';
      const { s3, front, objectStore, runId, result } = await multipartAnswered('part PUT', {
        fault: 'status',
        status,
        headers: { location, 'content-type': 'application/xml' },
        body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>TemporaryRedirect</Code><Message>Please re-send this request to the specified temporary endpoint.</Message></Error>',
      });

      expect(result).toMatchObject({ status: 'failed', reason: 'upload-failed' });
      expect(result.error).toMatchObject({ status });
      expect(result.error?.hint).toContain('The object store redirects to https://bucket.s3.eu-west-3.amazonaws.com/mlartifacts/weights.bin?...');
      expect(result.error?.hint).toMatch(/AWS_DEFAULT_REGION/);
      expect(result.error?.hint).toMatch(/multipart\.rewritePartUrl/);
      expect(JSON.stringify(result.error)).not.toContain('0123456789abcdef');
      await expectRefusedPartsAborted({ s3, front, objectStore, runId });
    });
  }

  it('a 413 from a reverse proxy on a presigned part URL: not retried, the upload aborted, and a hint that names the limit and smaller parts', async () => {
    const { s3, front, objectStore, runId, result } = await multipartAnswered('part PUT', { fault: 'status', status: 413, headers: { 'content-type': 'text/html' }, body: NGINX_413 });

    expect(result).toMatchObject({ status: 'failed', reason: 'upload-failed' });
    expect(result.error).toMatchObject({ status: 413 });
    expect(result.error?.hint).toMatch(/^A proxy in front of the object store limits the body size \(nginx's client_max_body_size/);
    expect(result.error?.hint).toMatch(/MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE/);
    expect(result.error?.hint).toMatch(/MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD=false/);
    await expectRefusedPartsAborted({ s3, front, objectStore, runId });
  });

  it('an AbortSignal stops a stalled multipart upload at once and aborts it on the server', async () => {
    const { s3, front, objectStore, runId, file, multipart } = await stalledMultipart();
    const controller = new AbortController();
    const uploader = await uploaderFor(front.url, runId, { multipart, signal: controller.signal, retry: { ...FAST_RETRY, timeoutMs: 60_000 } });
    const pending = uploader.uploadFile(file);
    while (objectStore.requests.filter(PART_PUT).length === 0) await new Promise((r) => setTimeout(r, 10));
    controller.abort(new Error('user pressed Ctrl-C'));
    const result = await pending;

    expect(result).toMatchObject({ status: 'failed', reason: 'aborted' });
    expect(result.error).toBeInstanceOf(AbortedError);
    expect(front.requests.filter((r) => r.path.includes('/mpu/abort/'))).toHaveLength(1);
    expect(front.requests.filter((r) => r.path.includes('/mpu/complete/'))).toHaveLength(0);
    expect(await inProgressUploads(`mlartifacts/0/${runId}/`)).toEqual([]);
    expect(await listRunArtifacts(s3.url, runId)).toEqual([]);
  });
});
