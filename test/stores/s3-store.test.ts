/**
 * The s3:// store against a real `mlflow server --no-serve-artifacts` whose artifact root is a
 * bucket on moto: what the store writes, the official Python client downloads byte-exact.
 * Faults come from the fault proxy put in front of moto as the S3 endpoint. All tests write into
 * one run (each under its own directory) and the last one downloads that run once with Python:
 * a cold `import mlflow` costs seconds, and the test budget is shared.
 */
import { createHash, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AbortMultipartUploadCommand, CreateMultipartUploadCommand, GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { AbortedError, HttpStatusError, NetworkError, RequestTimeoutError, SourceChangedError, UnsupportedArtifactStoreError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import { snapshotFile } from '../../src/core/source-snapshot.js';
import type { RetryEvent } from '../../src/core/retry.js';
import { resolveMlflowConnection } from '../../src/mlflow/connection.js';
import type { MultipartResume, PreviousMultipartUpload } from '../../src/stores/artifact-store.js';
import { resolveArtifactStore } from '../../src/stores/resolve.js';
import { S3ArtifactStore, type S3ArtifactStoreOptions } from '../../src/stores/s3-store.js';
import { ArtifactUploader } from '../../src/uploader/artifact-uploader.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { pythonArtifactHashes } from '../support/python.js';
import { expectRefusedBeforeAnyRequest, uploadAndListSmallFiles, writeSourceFile } from './small-files-contract.js';
import { describeWithServers, mlflowDirectS3Server, servers } from '../support/servers.js';
import { recordingLogger, serverRun } from '../uploader/helpers.js';

const MiB = 1024 * 1024;
const SECRET = 'sekrit-Q9x7-never-logged';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** A part PUT of a multipart upload, by part number. */
const isPart = (n: number) => (req: { method: string; path: string }) => req.method === 'PUT' && new RegExp(`[?&]partNumber=${n}(&|$)`).test(req.path);

describeWithServers('s3:// artifact store (moto, direct artifact root)', () => {
  let dir: string;
  let pythonEnv: Record<string, string>;
  let big: Buffer;
  let bigPath: string;
  let proxy: FaultProxy;
  let run: { runId: string; artifactUri: string };
  /** Every artifact the run must hold at the end, with its sha256. */
  const expected: Record<string, string> = {};

  /** A store on the shared run, through `endpoint` (moto, or the fault proxy in front of it). */
  function storeFor(options: S3ArtifactStoreOptions = {}, endpoint = mlflowDirectS3Server().s3Endpoint): S3ArtifactStore {
    return new S3ArtifactStore(run.artifactUri, {
      endpointUrl: endpoint,
      credentials: { accessKeyId: 'testing', secretAccessKey: SECRET },
      env: {},
      retry: { maxRetries: 3 },
      ...options,
    });
  }

  const writeLocal = (relative: string, data: Buffer | string): Promise<string> => writeSourceFile(dir, relative, data);

  function motoClient(): S3Client {
    return new S3Client({
      endpoint: mlflowDirectS3Server().s3Endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
  }

  /** In-progress multipart uploads under a key prefix, asked of moto directly. */
  async function inProgressUploads(prefix: string): Promise<string[]> {
    const client = motoClient();
    try {
      const out = await client.send(new ListMultipartUploadsCommand({ Bucket: mlflowDirectS3Server().bucket, Prefix: prefix }));
      return (out.Uploads ?? []).map((u) => u.Key ?? '');
    } finally {
      client.destroy();
    }
  }

  const resetProxy = (): void => proxy.reset();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 's3-store-'));
    pythonEnv = { ...servers().awsEnv, MLFLOW_S3_ENDPOINT_URL: mlflowDirectS3Server().s3Endpoint };
    // Above the 5 MiB part size the multipart tests use: three parts, the last one short.
    big = randomBytes(11 * MiB);
    bigPath = await writeLocal('big.bin', big);
    proxy = await startFaultProxy(mlflowDirectS3Server().s3Endpoint);
    run = await serverRun(mlflowDirectS3Server().url);
  });

  afterAll(async () => {
    await proxy?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the uploader\'s close() closes the S3 client it made: no keep-alive connection is left open', async () => {
    // The SDK client was never destroyed: its idle sockets stayed open after close(), one client's
    // worth per uploader of a sweep that makes one per trial.
    const own = await startFaultProxy(mlflowDirectS3Server().s3Endpoint, { keepAlive: true, preserveHost: true });
    try {
      const local = await writeLocal('close/a.txt', 'a');
      const uploader = new ArtifactUploader({
        stage: 'training',
        runId: run.runId,
        trackingUri: mlflowDirectS3Server().url,
        env: { MLFLOW_S3_ENDPOINT_URL: own.url },
        s3: { credentials: { accessKeyId: 'testing', secretAccessKey: SECRET } },
        retry: { maxRetries: 1 },
      });
      expect((await uploader.uploadFile(local, { artifactPath: 'close' })).status).toBe('uploaded');
      expected['close/a.txt'] = sha256(Buffer.from('a'));
      expect(own.openConnections).toBeGreaterThan(0);
      await uploader.close();
      await vi.waitUntil(() => own.openConnections === 0, { timeout: 5_000 });
      expect(own.openConnections).toBe(0);
    } finally {
      await own.stop();
    }
  });

  it('writes under the run\'s artifact URI, as MLflow lays keys out', () => {
    const { bucket } = mlflowDirectS3Server();
    expect(run.artifactUri).toMatch(new RegExp(`^s3://${bucket}/direct/0/${run.runId}/artifacts$`));
    const store = storeFor();
    expect([store.bucket, store.rootKey]).toEqual([bucket, `direct/0/${run.runId}/artifacts`]);
    expect(store.describe()).toMatch(/^S3 s3:\/\/.*\/artifacts via endpoint http:\/\/127\.0\.0\.1:\d+ \(path-style\): PutObject per file up to 8 MiB/);
  });

  it('uploads 0 B, 1 KiB and a directory with odd names, and lists them', async () => {
    // Each PutObject carried the file's sha256 as its checksum, which S3 checked and answered.
    const hashes = await uploadAndListSmallFiles(storeFor(), writeLocal, (data) => ({
      bytes: data.length,
      attempts: 1,
      multipart: false,
      sha256: sha256(data),
      verified: 'checksum',
      checksum: `sha256:${Buffer.from(sha256(data), 'hex').toString('base64')}`,
    }));
    Object.assign(expected, hashes);
  });

  it('sets Content-Type and Content-Encoding from the extension, as MLflow does', async () => {
    const store = storeFor();
    const local = await writeLocal('metrics.json', '{"loss": 0.1}');
    for (const name of ['types/metrics.json', 'types/bundle.tar.gz', 'types/model.safetensors']) {
      await store.uploadFile(local, name);
      expected[name] = sha256(Buffer.from('{"loss": 0.1}'));
    }
    const client = motoClient();
    try {
      const head = (name: string) => client.send(new HeadObjectCommand({ Bucket: store.bucket, Key: `${store.rootKey}/${name}` }));
      expect((await head('types/metrics.json')).ContentType).toBe('application/json');
      const tarball = await head('types/bundle.tar.gz');
      expect([tarball.ContentType, tarball.ContentEncoding]).toEqual(['application/x-tar', 'gzip']);
      // No guess: like MLflow, no ContentType is sent and the store keeps its default.
      expect((await head('types/model.safetensors')).ContentType).not.toBe('application/json');
    } finally {
      client.destroy();
    }
  });

  /** Part `n` answers 503 ServiceUnavailable (a transient S3 error) `times` times. */
  const partUnavailable = (n: number, times: number) => ({
    match: isPart(n),
    times,
    fault: 'status' as const,
    status: 503,
    headers: { 'content-type': 'application/xml' },
    body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>injected</Message></Error>',
  });

  it('retries a part that failed with 503 twice on its own; the other parts go once', async () => {
    resetProxy();
    proxy.addRule(partUnavailable(2, 2));
    const store = storeFor({ partSize: 5 * MiB, queueSize: 2 }, proxy.url);
    const retries: RetryEvent[] = [];
    const progress: number[] = [];
    const result = await store.uploadFile(bigPath, 'model/big.bin', { onRetry: (e) => retries.push(e), onProgress: (n) => progress.push(n) });
    expected['model/big.bin'] = sha256(big);

    expect(result).toEqual({ bytes: big.length, attempts: 3, multipart: true, sha256: sha256(big), verified: 'checksum', checksum: expect.stringMatching(/^crc32:[A-Za-z0-9+/]{6}==-3$/) });
    const partPuts = (n: number) => proxy.requests.filter((r) => isPart(n)(r));
    expect(partPuts(1).map((r) => r.status)).toEqual([200]);
    expect(partPuts(2).map((r) => r.status)).toEqual([503, 503, 200]);
    expect(partPuts(3).map((r) => r.status)).toEqual([200]);
    expect(proxy.requests.filter((r) => r.method === 'POST' && /[?&]uploads(=|&|$)/.test(r.path))).toHaveLength(1);
    expect(retries.map((e) => e.attempt)).toEqual([1, 2]);
    expect((retries[0]?.error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBe(503);
    expect(progress.at(-1)).toBe(big.length);
    expect(await inProgressUploads(`${store.rootKey}/model/`)).toEqual([]);
  });

  it('once a part is accepted, later parts skip Expect: 100-continue (a round trip each); the first part and a retried one keep it', async () => {
    resetProxy();
    proxy.addRule(partUnavailable(2, 1));
    // One part at a time, so "after the first accepted part" is exact.
    const store = storeFor({ partSize: 5 * MiB, queueSize: 1 }, proxy.url);
    const result = await store.uploadFile(bigPath, 'model/expect.bin');
    expected['model/expect.bin'] = sha256(big);

    expect(result).toMatchObject({ bytes: big.length, attempts: 2, multipart: true, sha256: sha256(big), verified: 'checksum' });
    expect(partRequests().map((r) => [Number(/[?&]partNumber=(\d+)/.exec(r.path)![1]), r.status, r.expect ?? null])).toEqual([
      [1, 200, '100-continue'],
      [2, 503, null],
      [2, 200, '100-continue'],
      // 1 MiB: under the SDK's 2 MB threshold, never with Expect.
      [3, 200, null],
    ]);
    expect(await inProgressUploads(`${store.rootKey}/model/`)).toEqual([]);
  });

  /** A 60 MiB file (12 parts of 5 MiB): enough parts for the number in flight to change. */
  let twelveParts: { data: Buffer; path: string } | undefined;
  async function twelvePartFile(): Promise<{ data: Buffer; path: string }> {
    if (!twelveParts) {
      const data = randomBytes(60 * MiB);
      twelveParts = { data, path: await writeLocal('twelve-parts.bin', data) };
    }
    return twelveParts;
  }
  /** The part PUTs the proxy saw, in arrival order, with how many requests were open then. */
  const partRequests = () => proxy.requests.filter((r) => r.method === 'PUT' && /[?&]partNumber=\d+/.test(r.path));
  /** Every part PUT waits `delayMs` at the proxy first: a link a round trip away. */
  const slowLink = (delayMs: number) => proxy.addRule({ match: (r) => r.method === 'PUT' && /[?&]partNumber=\d+/.test(r.path), fault: 'delay', delayMs });
  it('by default sends more parts at once while each waits on the link, within the part-buffer budget; the bytes arrive whole', async () => {
    resetProxy();
    const file = await twelvePartFile();
    slowLink(300);
    const store = storeFor({ partSize: 5 * MiB }, proxy.url);
    expect(store.describe()).toMatch(/parts, 4 to 16 at a time$/);
    const result = await store.uploadFile(file.path, 'adaptive/twelve.bin');
    expected['adaptive/twelve.bin'] = sha256(file.data);
    expect(result).toMatchObject({ bytes: file.data.length, attempts: 1, multipart: true, sha256: sha256(file.data), verified: 'checksum' });
    const parts = partRequests();
    expect(parts).toHaveLength(12);
    const peak = Math.max(...parts.map((r) => r.inFlightAtStart));
    // It started at 4 and grew (the first step up comes after 4 parts, whatever they measured)...
    expect(parts.slice(0, 4).map((r) => r.inFlightAtStart)).toEqual([1, 2, 3, 4]);
    expect(peak).toBeGreaterThanOrEqual(5);
    // ...never past what 64 MiB of part buffers hold (12 × 5 MiB), nor the default maximum of 16.
    expect(peak).toBeLessThanOrEqual(12);
  });

  it('keeps a queueSize set explicitly fixed, however the link behaves', async () => {
    resetProxy();
    const file = await twelvePartFile();
    slowLink(300);
    const store = storeFor({ partSize: 5 * MiB, queueSize: 3 }, proxy.url);
    expect(store.describe()).toMatch(/parts, 3 at a time$/);
    await store.uploadFile(file.path, 'fixed/twelve.bin');
    expect(Math.max(...partRequests().map((r) => r.inFlightAtStart))).toBe(3);
    expected['fixed/twelve.bin'] = sha256(file.data);
  });

  it('halves the parts in flight when S3 answers 503 SlowDown', async () => {
    resetProxy();
    const file = await twelvePartFile();
    proxy.addRule({
      match: isPart(1),
      times: 1,
      fault: 'status',
      status: 503,
      headers: { 'content-type': 'application/xml' },
      body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>',
    });
    slowLink(400);
    // Pinned at 4, so the halving is to 2 whenever the retry comes.
    const store = storeFor({ partSize: 5 * MiB, queueSize: 4 }, proxy.url);
    const retries: RetryEvent[] = [];
    const result = await store.uploadFile(file.path, 'slowdown/twelve.bin', { onRetry: (e) => retries.push(e) });
    expect(result).toMatchObject({ bytes: file.data.length, attempts: 2, multipart: true, sha256: sha256(file.data) });
    expect(retries).toHaveLength(1);
    const parts = partRequests();
    expect(parts.filter((r) => isPart(1)(r)).map((r) => r.status)).toEqual([503, 200]);
    // Before the answer, 4 at once; the parts started after it (the last ones) find at most 2 open.
    expect(Math.max(...parts.map((r) => r.inFlightAtStart))).toBe(4);
    expect(parts.slice(-3).map((r) => r.inFlightAtStart).every((n) => n <= 2)).toBe(true);
    expected['slowdown/twelve.bin'] = sha256(file.data);
  });

  it('an abort stops the parts and aborts the multipart upload: nothing stays in progress', async () => {
    resetProxy();
    // Part 2 hangs; part 1 goes through, so the multipart upload exists when we abort.
    proxy.addRule({ match: isPart(2), fault: 'stall', stallMs: 30_000 });
    const store = storeFor({ partSize: 5 * MiB, queueSize: 2 }, proxy.url);
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
    resetProxy();
    const internalError = {
      fault: 'status' as const,
      status: 500,
      headers: { 'content-type': 'application/xml' },
      body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>',
    };
    proxy.addRule({ match: isPart(3), ...internalError });
    // The first AbortMultipartUpload fails too (both attempts): the store's second try must clean up.
    const isAbortMpu = (r: { method: string; path: string }) => r.method === 'DELETE' && r.path.includes('uploadId=');
    proxy.addRule({ match: isAbortMpu, times: 2, ...internalError });
    const store = storeFor({ partSize: 5 * MiB, queueSize: 1, retry: { maxRetries: 1 } }, proxy.url);
    const error = (await store.uploadFile(bigPath, 'failed/big.bin').catch((e: unknown) => e)) as HttpStatusError;
    expect(error).toBeInstanceOf(HttpStatusError);
    expect([error.status, error.code]).toEqual([500, 'InternalError']);
    expect(error.message).toMatch(/s3:\/\/.*\/failed\/big\.bin failed after 2 attempts: 500 InternalError/);
    expect(error.hint).toMatch(/retried 1 time/);
    expect(proxy.requests.filter((r) => isPart(3)(r))).toHaveLength(2);
    expect(proxy.requests.filter(isAbortMpu).map((r) => r.status)).toEqual([500, 500, 204]);
    expect(await inProgressUploads(`${store.rootKey}/failed/`)).toEqual([]);
    expect(await store.list('failed')).toEqual([]);
  });

  /** Resume hooks handing the store `previous`, recording what it does with the journal. */
  function resumeOf(previous: PreviousMultipartUpload): { resume: MultipartResume; events: string[] } {
    const events: string[] = [];
    const resume: MultipartResume = {
      previous,
      reuse: true,
      started: async (uploadId) => void events.push(`started ${uploadId}`),
      partDone: async (part) => void events.push(`part ${part.partNumber}`),
      aborted: async (uploadId) => void events.push(`aborted ${uploadId}`),
      saveToken: async () => undefined,
    };
    return { resume, events };
  }

  /** An unfinished multipart upload of `key` (under the run) holding part 1 of big.bin, made on moto directly. */
  async function earlierUpload(store: S3ArtifactStore, key: string): Promise<PreviousMultipartUpload> {
    const client = motoClient();
    try {
      const object = { Bucket: store.bucket, Key: `${store.rootKey}/${key}` };
      const { UploadId } = await client.send(new CreateMultipartUploadCommand(object));
      const { ETag } = await client.send(new UploadPartCommand({ ...object, UploadId, PartNumber: 1, Body: big.subarray(0, 5 * MiB) }));
      return { uploadId: UploadId!, partSize: 5 * MiB, parts: [{ partNumber: 1, size: 5 * MiB, etag: ETag! }] };
    } finally {
      client.destroy();
    }
  }

  const isListParts = (r: { method: string; path: string }) => r.method === 'GET' && r.path.includes('uploadId=');
  const isAbortUpload = (r: { method: string; path: string }) => r.method === 'DELETE' && r.path.includes('uploadId=');
  const ACCESS_DENIED = {
    fault: 'status' as const,
    status: 403,
    headers: { 'content-type': 'application/xml' },
    body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>',
  };

  it('starts a resumed upload over, with a warning, when the earlier upload\'s parts cannot be listed (no s3:ListMultipartUploadParts)', async () => {
    resetProxy();
    const logger = recordingLogger();
    const store = storeFor({ partSize: 5 * MiB, logger }, proxy.url);
    const previous = await earlierUpload(store, 'resume/unlisted.bin');
    proxy.addRule({ match: isListParts, ...ACCESS_DENIED });
    const { resume, events } = resumeOf(previous);

    const result = await store.uploadFile(bigPath, 'resume/unlisted.bin', { resume });
    expect(result).toMatchObject({ bytes: big.length, multipart: true, sha256: sha256(big), verified: 'checksum' });
    expect(result.bytesReused ?? 0).toBe(0);
    // Refused once (a 403 is not retried); the old upload aborted and dropped, a new one started and completed.
    expect(proxy.requests.filter(isListParts).map((r) => r.status)).toEqual([403]);
    expect(proxy.requests.filter(isAbortUpload).map((r) => r.status)).toEqual([204]);
    expect(events[0]).toBe(`aborted ${previous.uploadId}`);
    expect(events[1]).toMatch(/^started /);
    expect(events[1]).not.toContain(previous.uploadId);
    expect(await inProgressUploads(`${store.rootKey}/resume/`)).toEqual([]);
    const warnings = logger.lines.filter(([level]) => level === 'warn').map(([, m]) => m);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/Could not list the parts of the earlier attempt's multipart upload of s3:\/\/.*resume\/unlisted\.bin, so the file starts over\. Continuing an upload needs s3:ListMultipartUploadParts/);
    expect(warnings[0]).not.toContain(SECRET);
    expected['resume/unlisted.bin'] = sha256(big);
  });

  it('a rerun with another part size does not continue the earlier upload (its parts cut elsewhere): it is aborted, not listed, and the file goes whole under a new one', async () => {
    resetProxy();
    const store = storeFor({ partSize: 6 * MiB }, proxy.url);
    const previous = await earlierUpload(store, 'resume/resized.bin'); // 5 MiB parts
    const { resume, events } = resumeOf(previous);

    const result = await store.uploadFile(bigPath, 'resume/resized.bin', { resume });
    expect(result).toMatchObject({ bytes: big.length, multipart: true, sha256: sha256(big), verified: 'checksum' });
    expect(result.bytesReused ?? 0).toBe(0);
    expect(proxy.requests.filter(isListParts)).toEqual([]);
    expect(proxy.requests.filter(isAbortUpload).map((r) => r.status)).toEqual([204]);
    expect(events[0]).toBe(`aborted ${previous.uploadId}`);
    expect(events[1]).toMatch(/^started /);
    expect(await inProgressUploads(`${store.rootKey}/resume/`)).toEqual([]);
    expected['resume/resized.bin'] = sha256(big);
  });

  it('does not fail a file whose earlier, changed upload cannot be aborted: it warns that the parts stay billed, and uploads', async () => {
    resetProxy();
    const logger = recordingLogger();
    const store = storeFor({ partSize: 5 * MiB, logger }, proxy.url);
    const previous = await earlierUpload(store, 'resume/unaborted.bin');
    proxy.addRule({ match: isAbortUpload, ...ACCESS_DENIED });
    const { resume, events } = resumeOf(previous);

    // The file changed since (reuse: false): the earlier upload is given up, and its abort is refused.
    const result = await store.uploadFile(bigPath, 'resume/unaborted.bin', { resume: { ...resume, reuse: false } });
    expect(result).toMatchObject({ bytes: big.length, multipart: true, sha256: sha256(big) });
    expect(events[0]).toBe(`aborted ${previous.uploadId}`);
    const warnings = logger.lines.filter(([level]) => level === 'warn').map(([, m]) => m);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`is not continued, and that upload (${previous.uploadId}) could not be aborted: its parts stay billed until a lifecycle rule (AbortIncompleteMultipartUpload) removes them`);
    // The refused upload is still on moto, as the warning says; clean it up for the tests after.
    expect(await inProgressUploads(`${store.rootKey}/resume/unaborted.bin`)).toEqual([`${store.rootKey}/resume/unaborted.bin`]);
    const client = motoClient();
    try {
      await client.send(new AbortMultipartUploadCommand({ Bucket: store.bucket, Key: `${store.rootKey}/resume/unaborted.bin`, UploadId: previous.uploadId }));
    } finally {
      client.destroy();
    }
    expected['resume/unaborted.bin'] = sha256(big);
  });

  it('the SDK measures S3\'s clock against ours from each answer, which abortLostUploads reads (client.config.systemClockOffset)', async () => {
    // moto answers ListMultipartUploads with a fixed Initiated (2010-11-10), so the cut itself is
    // tested on S3's documented answers in s3-resume.test.ts; this is the offset it is moved by.
    const client = motoClient();
    const now = Date.now.bind(Date);
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => now() + 10 * 60_000);
    try {
      await client.send(new ListMultipartUploadsCommand({ Bucket: mlflowDirectS3Server().bucket, Prefix: 'none/' }));
    } finally {
      spy.mockRestore();
      client.destroy();
    }
    // S3's Date has whole seconds: ours 10 minutes ahead reads as -600 s, up to a second more.
    expect(client.config.systemClockOffset).toBeLessThanOrEqual(-600_000 + 50);
    expect(client.config.systemClockOffset).toBeGreaterThan(-602_000);
  });

  it('a source that changed since its snapshot is SOURCE_CHANGED: parts are sent but never completed, and the upload is aborted', async () => {
    resetProxy();
    const local = await writeLocal('changed/parts.bin', big);
    const snapshot = await snapshotFile(local);
    await utimes(local, new Date(), new Date(Date.now() + 5000)); // rewritten in place: same size, new mtime
    const store = storeFor({ partSize: 5 * MiB }, proxy.url);
    const error = await store.uploadFile(local, 'changed/parts.bin', { snapshot }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceChangedError);
    expect(error).toMatchObject({ code: 'SOURCE_CHANGED', path: local, before: { size: big.length } });
    expect(proxy.requests.filter((r) => r.method === 'PUT' && r.path.includes('partNumber=')).map((r) => r.status)).toEqual([200, 200, 200]);
    // No CompleteMultipartUpload (a POST with the upload id); the upload aborted.
    expect(proxy.requests.filter((r) => r.method === 'POST' && r.path.includes('uploadId='))).toEqual([]);
    expect(proxy.requests.filter(isAbortUpload).map((r) => r.status)).toEqual([204]);
    expect(await inProgressUploads(`${store.rootKey}/changed/`)).toEqual([]);
    expect(await store.list('changed')).toEqual([]);
  });

  it('sends the extra args with CreateMultipartUpload and PutObject, and S3 holds the checksums it verified', async () => {
    const store = storeFor({
      partSize: 5 * MiB,
      queueSize: 3,
      uploadExtraArgs: { Metadata: { stage: 'training' }, CacheControl: 'no-cache', ContentType: 'application/x-weights' },
    });
    const small = randomBytes(4096);
    const smallPath = await writeLocal('extra/small.bin', small);
    const progress: number[] = [];
    const bigResult = await store.uploadFile(bigPath, 'extra/big.bin', { onProgress: (n) => progress.push(n) });
    expect(bigResult).toMatchObject({ bytes: big.length, attempts: 1, multipart: true, sha256: sha256(big), verified: 'checksum' });
    const smallSha256 = Buffer.from(sha256(small), 'hex').toString('base64');
    expect(await store.uploadFile(smallPath, 'extra/small.bin')).toEqual({ bytes: small.length, attempts: 1, multipart: false, sha256: sha256(small), verified: 'checksum', checksum: `sha256:${smallSha256}` });
    expected['extra/big.bin'] = sha256(big);
    expected['extra/small.bin'] = sha256(small);
    // One report per part (in completion order, so only the running total is fixed), then the size.
    expect(progress.length).toBe(4);
    expect(progress.slice(0, 3).every((n, i, all) => i === 0 || n > all[i - 1]!)).toBe(true);
    expect(progress.at(-1)).toBe(big.length);

    const client = motoClient();
    try {
      const head = (name: string) => client.send(new HeadObjectCommand({ Bucket: store.bucket, Key: `${store.rootKey}/${name}`, ChecksumMode: 'ENABLED' }));
      for (const name of ['extra/big.bin', 'extra/small.bin']) {
        const h = await head(name);
        expect([h.ContentType, h.CacheControl, h.Metadata], name).toEqual(['application/x-weights', 'no-cache', { stage: 'training' }]);
      }
      // The single PUT carried the sha256 of the file's bytes, which S3 checked and kept.
      expect((await head('extra/small.bin')).ChecksumSHA256).toBe(smallSha256);
      // The multipart object has the CRC32 of its three part checksums ("<crc>-3"): the one the
      // store computed from the parts it sent and compared.
      const composite = (await head('extra/big.bin')).ChecksumCRC32;
      expect(composite).toMatch(/^[A-Za-z0-9+/]{6}==(-3)?$/);
      expect(bigResult.checksum).toBe(`crc32:${composite!.replace(/-3$/, '')}-3`);
    } finally {
      client.destroy();
    }
  });

  it('an s3 multipart upload is verified by S3\'s checksum of its parts and reports verified: checksum with the sha256 of the whole file', async () => {
    const result = await storeFor({ partSize: 5 * MiB, queueSize: 3 }).uploadFile(bigPath, 'verified/big.bin');
    expected['verified/big.bin'] = sha256(big);
    // The object checksum S3 reports for 3 parts: the CRC32 of their CRC32s, computed here on its own.
    const partCrcs = [0, 1, 2].map((i) => {
      const crc = Buffer.alloc(4);
      crc.writeUInt32BE(crc32(big.subarray(i * 5 * MiB, Math.min(big.length, (i + 1) * 5 * MiB))));
      return crc;
    });
    const composite = Buffer.alloc(4);
    composite.writeUInt32BE(crc32(Buffer.concat(partCrcs)));
    expect(result).toEqual({ bytes: big.length, attempts: 1, multipart: true, sha256: sha256(big), verified: 'checksum', checksum: `crc32:${composite.toString('base64')}-3` });
  });

  it('with checksums off (when_required) a PutObject is signed with its sha256, hashed once, and reports no checksum verification', async () => {
    resetProxy();
    const seen: Array<Record<string, string | string[] | undefined>> = [];
    // A rule that never applies: it only sees each request's headers.
    proxy.addRule({ match: (req) => (req.method === 'PUT' && seen.push(req.headers) > 0 && false), fault: 'status', status: 500 });
    const data = randomBytes(64 * 1024);
    const local = await writeLocal('unchecked/one.bin', data);
    const previous = process.env.AWS_REQUEST_CHECKSUM_CALCULATION;
    process.env.AWS_REQUEST_CHECKSUM_CALCULATION = 'when_required';
    try {
      const result = await storeFor({}, proxy.url).uploadFile(local, 'unchecked/one.bin');
      expected['unchecked/one.bin'] = sha256(data);
      expect(result).toEqual({ bytes: data.length, attempts: 1, multipart: false, sha256: sha256(data) });
    } finally {
      if (previous === undefined) delete process.env.AWS_REQUEST_CHECKSUM_CALCULATION;
      else process.env.AWS_REQUEST_CHECKSUM_CALCULATION = previous;
    }
    expect(seen).toHaveLength(1);
    expect(seen[0]!['x-amz-content-sha256']).toBe(sha256(data));
    expect(Object.keys(seen[0]!).filter((h) => h.startsWith('x-amz-checksum-'))).toEqual([]);
  });

  it('sends each part with the CRC32 of its bytes and an unsigned payload; with checksums off (when_required), none and a signed payload', async () => {
    const partHeaders = async (key: string): Promise<Map<number, Record<string, string | string[] | undefined>>> => {
      resetProxy();
      const seen = new Map<number, Record<string, string | string[] | undefined>>();
      // A rule that never applies: it only sees each part's headers.
      const see = (req: { method: string; path: string; headers: Record<string, string | string[] | undefined> }) => {
        const n = /[?&]partNumber=(\d+)/.exec(req.path);
        if (req.method === 'PUT' && n) seen.set(Number(n[1]), req.headers);
        return false;
      };
      proxy.addRule({ match: see, fault: 'status', status: 500 });
      await storeFor({ partSize: 5 * MiB, queueSize: 2 }, proxy.url).uploadFile(bigPath, key);
      expected[key] = sha256(big);
      return seen;
    };
    const part = (n: number) => big.subarray((n - 1) * 5 * MiB, n * 5 * MiB);
    const crc = (bytes: Buffer) => {
      const out = Buffer.alloc(4);
      out.writeUInt32BE(crc32(bytes));
      return out.toString('base64');
    };

    const checked = await partHeaders('part-headers/checked.bin');
    expect([...checked.keys()].sort()).toEqual([1, 2, 3]);
    for (const [n, headers] of checked) {
      expect(headers['x-amz-checksum-crc32']).toBe(crc(part(n)));
      expect(headers['x-amz-sdk-checksum-algorithm']).toBe('CRC32');
      expect(headers['x-amz-content-sha256']).toBe('UNSIGNED-PAYLOAD');
    }

    const previous = process.env.AWS_REQUEST_CHECKSUM_CALCULATION;
    process.env.AWS_REQUEST_CHECKSUM_CALCULATION = 'when_required';
    try {
      const unchecked = await partHeaders('part-headers/unchecked.bin');
      expect([...unchecked.keys()].sort()).toEqual([1, 2, 3]);
      for (const [n, headers] of unchecked) {
        expect(Object.keys(headers).filter((h) => h.startsWith('x-amz-checksum-') || h === 'x-amz-sdk-checksum-algorithm')).toEqual([]);
        expect(headers['x-amz-content-sha256']).toBe(sha256(part(n)));
      }
    } finally {
      if (previous === undefined) delete process.env.AWS_REQUEST_CHECKSUM_CALCULATION;
      else process.env.AWS_REQUEST_CHECKSUM_CALCULATION = previous;
    }
  });

  it('a deadline (retry.totalTimeoutMs) cuts off the parts in flight and aborts the multipart upload', async () => {
    resetProxy();
    // Part 2 never gets an answer (the stall outlasts the test's timeout): only the deadline can end this.
    proxy.addRule({ match: isPart(2), fault: 'stall', stallMs: 600_000 });
    // Long enough for the create and part 1 on moto on a loaded machine (a deadline that hit the
    // create left nothing to abort, failing the DELETE count), short of the stall.
    const store = storeFor({ partSize: 5 * MiB, queueSize: 1, retry: { maxRetries: 3, totalTimeoutMs: 5000 } }, proxy.url);
    const error = (await store.uploadFile(bigPath, 'deadline/big.bin').catch((e: unknown) => e)) as AbortedError;
    expect(error).toBeInstanceOf(AbortedError);
    expect(error.message).toMatch(/did not finish within retry\.totalTimeoutMs \(5000 ms\)/);
    expect(error.hint).toMatch(/Raise retry\.totalTimeoutMs/);
    expect(proxy.requests.filter((r) => r.method === 'DELETE' && r.path.includes('uploadId='))).toHaveLength(1);
    // Part 3 never started: the queue stopped with the deadline.
    expect(proxy.requests.filter((r) => isPart(3)(r))).toHaveLength(0);
    expect(await inProgressUploads(`${store.rootKey}/deadline/`)).toEqual([]);
    expect(await store.list('deadline')).toEqual([]);
  });

  it('maps S3 refusals to typed errors with what to do, without retrying them, and never shows a credential', async () => {
    resetProxy();
    proxy.addRule({
      match: (r) => r.method === 'PUT',
      times: 1,
      fault: 'status',
      status: 403,
      headers: { 'content-type': 'application/xml' },
      body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>',
    });
    const lines: string[] = [];
    const log = (m: string, f?: Record<string, unknown>) => void lines.push(m + JSON.stringify(f ?? {}));
    const logger: Logger = { debug: log, info: log, warn: log, error: log };
    const local = await writeLocal('denied.txt', 'x');
    const denied = (await storeFor({ logger }, proxy.url).uploadFile(local, 'denied/denied.txt').catch((e: unknown) => e)) as HttpStatusError;
    expect(denied).toBeInstanceOf(HttpStatusError);
    expect([denied.status, denied.code]).toEqual([403, 'AccessDenied']);
    expect(denied.hint).toMatch(/AWS_ACCESS_KEY_ID.*s3:PutObject/);
    expect(proxy.requests.filter((r) => r.method === 'PUT')).toHaveLength(1);

    const missingBucket = new S3ArtifactStore('s3://no-such-bucket-for-tests/x', {
      endpointUrl: mlflowDirectS3Server().s3Endpoint,
      credentials: { accessKeyId: 'testing', secretAccessKey: SECRET },
      env: {},
      logger,
    });
    const noBucket = (await missingBucket.uploadFile(local, 'a.txt').catch((e: unknown) => e)) as HttpStatusError;
    expect(noBucket).toBeInstanceOf(HttpStatusError);
    expect([noBucket.status, noBucket.code]).toEqual([404, 'NoSuchBucket']);
    expect(noBucket.hint).toMatch(/Create the bucket "no-such-bucket-for-tests".*MLflow never creates buckets/);
    await expect(missingBucket.list()).rejects.toMatchObject({ code: 'NoSuchBucket', status: 404 });

    for (const text of [JSON.stringify(denied.toJSON()), JSON.stringify(noBucket.toJSON()), denied.message, noBucket.message, ...lines]) {
      expect(text).not.toContain(SECRET);
    }
  });

  it('keeps the password of an endpoint URL with userinfo out of the missing-bucket hint', async () => {
    // Some gateways in front of MinIO take basic auth in the endpoint URL; the other messages
    // that name the endpoint mask it, and so must this hint, which ends up in error.message.
    const password = 'gateway-pw-Z8q1-never-shown';
    const endpoint = mlflowDirectS3Server().s3Endpoint.replace('://', `://gw:${password}@`);
    const store = new S3ArtifactStore('s3://no-such-bucket-for-tests/x', { endpointUrl: endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: SECRET }, env: {} });
    const error = (await store.uploadFile(await writeLocal('gw.txt', 'x'), 'a.txt').catch((e: unknown) => e)) as HttpStatusError;
    expect([error.status, error.code]).toEqual([404, 'NoSuchBucket']);
    expect(error.hint).toMatch(/Create the bucket "no-such-bucket-for-tests" on http:\/\/\*+@/);
    for (const text of [error.message, error.hint ?? '', JSON.stringify(error.toJSON())]) expect(text).not.toContain(password);
  });

  it('says what to do for credential, token and checksum refusals, an unreachable endpoint and a stalled one', async () => {
    const cases: Array<[number, string, string, RegExp]> = [
      [403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.', /AWS_ACCESS_KEY_ID or AWS_PROFILE/],
      [403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided.', /AWS_SECRET_ACCESS_KEY/],
      [400, 'ExpiredToken', 'The provided token has expired.', /temporary credentials have expired/],
      [400, 'InvalidRequest', 'x-amz-checksum-crc32 is not supported', /AWS_REQUEST_CHECKSUM_CALCULATION=when_required/],
    ];
    const local = await writeLocal('refused.txt', 'x');
    for (const [status, code, message, hint] of cases) {
      resetProxy();
      proxy.addRule({
        match: (r) => r.method === 'PUT',
        fault: 'status',
        status,
        headers: { 'content-type': 'application/xml' },
        body: `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`,
      });
      const error = (await storeFor({}, proxy.url).uploadFile(local, 'refused/refused.txt').catch((e: unknown) => e)) as HttpStatusError;
      expect(error, code).toBeInstanceOf(HttpStatusError);
      expect([error.status, error.code, error.method, error.url]).toEqual([status, code, 'PUT', `${run.artifactUri}/refused/refused.txt`]);
      expect(error.hint, code).toMatch(hint);
      expect(proxy.requests.filter((r) => r.method === 'PUT'), code).toHaveLength(1);
    }
    resetProxy();

    const unreachable = storeFor({ retry: { maxRetries: 0 } }, 'http://127.0.0.1:1');
    const network = await unreachable.uploadFile(local, 'refused/x.txt').catch((e: unknown) => e);
    expect(network).toBeInstanceOf(NetworkError);
    expect((network as NetworkError).hint).toMatch(/http:\/\/127\.0\.0\.1:1 \(set by the s3\.endpointUrl option\) is reachable/);
    // The hint names the setting the endpoint came from: it said MLFLOW_S3_ENDPOINT_URL or the
    // option for one that AWS_ENDPOINT_URL_S3 set, which has nothing to change there.
    const fromAwsVariable = storeFor({ retry: { maxRetries: 0 }, endpointUrl: undefined, env: { AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:1' } });
    const awsNetwork = await fromAwsVariable.uploadFile(local, 'refused/z.txt').catch((e: unknown) => e);
    expect(awsNetwork).toBeInstanceOf(NetworkError);
    expect((awsNetwork as NetworkError).hint).toMatch(/http:\/\/127\.0\.0\.1:1 \(set by AWS_ENDPOINT_URL_S3\) is reachable/);

    proxy.addRule({ match: (r) => r.method === 'PUT', fault: 'stall', stallMs: 10_000 });
    const stalled = await storeFor({ retry: { maxRetries: 0, timeoutMs: 300 } }, proxy.url).uploadFile(local, 'refused/y.txt').catch((e: unknown) => e);
    expect(stalled).toBeInstanceOf(RequestTimeoutError);
    expect((stalled as RequestTimeoutError).timeoutMs).toBe(300);
    resetProxy();
    expect(await storeFor().list('refused')).toEqual([]);
  });

  it('refuses bad artifact paths and missing files before any request', async () => {
    resetProxy();
    await expectRefusedBeforeAnyRequest(storeFor({}, proxy.url), join(dir, 'nope.bin'), bigPath, proxy.requests);
  });

  it('is what resolveArtifactStore picks for s3:// runs, with credentials from the AWS default chain', async () => {
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'testing');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'testing');
    try {
      const { url, s3Endpoint } = mlflowDirectS3Server();
      const connection = resolveMlflowConnection({ trackingUri: url }, {});
      const store = resolveArtifactStore(run.artifactUri, { connection, env: { MLFLOW_S3_ENDPOINT_URL: s3Endpoint } });
      expect(store.kind).toBe('s3');
      expect(store.artifactUri).toBe(run.artifactUri);
      const local = await writeLocal('resolved.txt', 'through resolveArtifactStore');
      await store.uploadFile(local, 'resolved.txt');
      expected['resolved.txt'] = sha256(Buffer.from('through resolveArtifactStore'));
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('takes the endpoint from the AWS config file alone (a profile\'s endpoint_url, its services section), path style as botocore', async () => {
    const { bucket } = mlflowDirectS3Server();
    // By a host name, as MinIO's `minio:9000`: the SDK addresses an IP path style on its own, but a
    // name virtual-hosted (`mlflow-test.localhost`, which resolves nowhere) unless told otherwise.
    const s3Endpoint = mlflowDirectS3Server().s3Endpoint.replace('//127.0.0.1:', '//localhost:');
    expect(s3Endpoint).toMatch(/^http:\/\/localhost:\d+$/);
    // Only the file says where moto is: no endpoint option, no env var in `env` or in process.env.
    const configFile = join(dir, 'aws-config');
    await writeFile(
      configFile,
      ['[profile moto-own]', `endpoint_url = ${s3Endpoint}`, '', '[profile moto-services]', 'services = moto', '', '[services moto]', 's3 =', `  endpoint_url = ${s3Endpoint}`, ''].join('\n'),
    );
    vi.stubEnv('AWS_CONFIG_FILE', configFile);
    for (const name of ['MLFLOW_S3_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL', 'AWS_IGNORE_CONFIGURED_ENDPOINT_URLS']) vi.stubEnv(name, undefined);
    const client = motoClient();
    try {
      for (const profile of ['moto-own', 'moto-services']) {
        vi.stubEnv('AWS_PROFILE', profile);
        const store = new S3ArtifactStore(run.artifactUri, { credentials: { accessKeyId: 'testing', secretAccessKey: SECRET }, env: {}, retry: { maxRetries: 0 } });
        const data = Buffer.from(`endpoint of profile ${profile}`);
        await store.uploadFile(await writeLocal(`config-file/${profile}.txt`, data), `config-file/${profile}.txt`);
        expect(store.describe()).toContain(`via endpoint ${s3Endpoint} (path-style)`);
        const stored = await client.send(new GetObjectCommand({ Bucket: bucket, Key: `${store.rootKey}/config-file/${profile}.txt` }));
        expect(Buffer.from(await stored.Body!.transformToByteArray())).toEqual(data);
        expected[`config-file/${profile}.txt`] = sha256(data);
      }
      // AWS_IGNORE_CONFIGURED_ENDPOINT_URLS turns the file's endpoint off, as in botocore and the
      // SDK: AWS itself, virtual-hosted (the request is stopped before it leaves).
      const ignoring = new S3ArtifactStore(run.artifactUri, { credentials: { accessKeyId: 'testing', secretAccessKey: SECRET }, env: { AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true' }, retry: { maxRetries: 0 } });
      await expect(ignoring.list(undefined, { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(AbortedError);
      expect(ignoring.describe()).toMatch(/ via AWS( \S+)? \(virtual-hosted\)/);
    } finally {
      client.destroy();
      vi.unstubAllEnvs();
    }
  });

  // The uploader logs the store's description when it makes the store, before the SDK is loaded
  // and the AWS config file read: it said "via AWS" for an endpoint only the file gives.
  it('the debug log never names AWS for an endpoint the AWS config file gives: the store line says the file is read later, and the client line names the endpoint and where it came from', async () => {
    const s3Endpoint = mlflowDirectS3Server().s3Endpoint.replace('//127.0.0.1:', '//localhost:');
    const configFile = join(dir, 'aws-config-logged');
    await writeFile(configFile, ['[profile moto-logged]', `endpoint_url = ${s3Endpoint}`, ''].join('\n'));
    vi.stubEnv('AWS_CONFIG_FILE', configFile);
    vi.stubEnv('AWS_PROFILE', 'moto-logged');
    for (const name of ['MLFLOW_S3_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL', 'AWS_IGNORE_CONFIGURED_ENDPOINT_URLS']) vi.stubEnv(name, undefined);
    const logger = recordingLogger();
    const uploader = new ArtifactUploader({
      stage: 'training',
      runId: run.runId,
      trackingUri: mlflowDirectS3Server().url,
      env: {},
      s3: { credentials: { accessKeyId: 'testing', secretAccessKey: SECRET } },
      retry: { maxRetries: 1 },
      logger,
    });
    try {
      const data = Buffer.from('endpoint named in the log');
      expect((await uploader.uploadFile(await writeLocal('config-file/logged.txt', data), { artifactPath: 'config-file' })).status).toBe('uploaded');
      expected['config-file/logged.txt'] = sha256(data);
    } finally {
      await uploader.close();
      vi.unstubAllEnvs();
    }
    const s3Lines = logger.lines.filter(([level, line]) => level === 'debug' && line.includes('S3 s3://'));
    expect(s3Lines).toEqual([
      ['debug', expect.stringMatching(/^uploading to run \S+ \(explicit\) on .*: S3 s3:\/\/\S+ via AWS( \S+)?, unless the AWS config file names an endpoint_url \(read at the first request\) /)],
      ['debug', expect.stringContaining(`S3 endpoint from the endpoint_url of the AWS config file (or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL of this process): S3 ${run.artifactUri} via endpoint ${s3Endpoint} (path-style)`)],
    ]);
  });

  it('other object stores still fail fast, naming the proxied alternative', () => {
    const connection = resolveMlflowConnection({ trackingUri: mlflowDirectS3Server().url }, {});
    for (const uri of ['dbfs:/databricks/x', 'ftp://h/x']) {
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

  it('MlflowClient downloads the whole run byte-exact, and nothing else is there', async () => {
    expect(Object.keys(expected).length).toBeGreaterThanOrEqual(11);
    const downloaded = await pythonArtifactHashes(mlflowDirectS3Server().url, run.runId, '', pythonEnv);
    expect(downloaded).toEqual(expected);
    expect((await storeFor().list()).map((e) => e.path)).toEqual(['adaptive', 'close', 'config-file', 'extra', 'fixed', 'model', 'part-headers', 'resolved.txt', 'resume', 'slowdown', 'small', 'types', 'unchecked', 'verified']);
  });
});
