/**
 * The gs:// store against a real `mlflow server --no-serve-artifacts` whose artifact root is a
 * bucket on gcp-storage-emulator: what the store writes, MLflow's Python client (through
 * google-cloud-storage) downloads byte-exact. Faults come from the fault proxy put in front of
 * the emulator as the API endpoint (it keeps the Host header, so the emulator's session URIs
 * point back at the proxy). All tests write into one run and the last one downloads it once
 * with Python: a cold `import mlflow` costs seconds.
 */
import { createHash, randomBytes } from 'node:crypto';
import { truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, stat, utimes } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AbortedError, ConfigError, HttpStatusError, LocalPathError, RequestTimeoutError, SourceChangedError } from '../../src/core/errors.js';
import { snapshotFile } from '../../src/core/source-snapshot.js';
import type { RetryEvent } from '../../src/core/retry.js';
import { resolveMlflowConnection } from '../../src/mlflow/connection.js';
import type { GcsResumableSession } from '../../src/stores/gcs-resumable.js';
import { GcsArtifactStore, type GcsArtifactStoreOptions } from '../../src/stores/gcs-store.js';
import { resolveArtifactStore } from '../../src/stores/resolve.js';
import { ArtifactUploader } from '../../src/uploader/artifact-uploader.js';
import { startFaultProxy, type FaultProxy, type ProxyLogEntry } from '../support/fault-proxy.js';
import { pythonArtifactHashes, runPython } from '../support/python.js';
import { describeWithServers, mlflowGcsServer } from '../support/servers.js';
import { recordingLogger, serverRun, sha256 } from '../uploader/helpers.js';
import { expectRefusedBeforeAnyRequest, uploadAndListSmallFiles, writeSourceFile } from './small-files-contract.js';

const KiB = 1024;
const CHUNK = 256 * KiB;
/** A resumable chunk PUT starting at `start`. */
const chunkAt = (start: number) => (req: { method: string; headers: Record<string, string | string[] | undefined> }) =>
  req.method === 'PUT' && typeof req.headers['content-range'] === 'string' && req.headers['content-range'].startsWith(`bytes ${start}-`);
const isChunk = (r: ProxyLogEntry) => r.method === 'PUT' && /^bytes \d+-\d+\/\d+$/.test(r.contentRange ?? '');
const isStatusQuery = (r: ProxyLogEntry) => r.method === 'PUT' && /^bytes \*\/\d+$/.test(r.contentRange ?? '');

describeWithServers('gs:// artifact store (gcp-storage-emulator, direct artifact root)', () => {
  let dir: string;
  let big: Buffer;
  let bigPath: string;
  let proxy: FaultProxy;
  let run: { runId: string; artifactUri: string };
  const expected: Record<string, string> = {};

  /** A store on the shared run through `endpoint` (the emulator, or the fault proxy), with small chunks. */
  function storeFor(options: GcsArtifactStoreOptions = {}, endpoint = mlflowGcsServer().emulatorHost): GcsArtifactStore {
    return new GcsArtifactStore(run.artifactUri, {
      env: { STORAGE_EMULATOR_HOST: endpoint },
      retry: { maxRetries: 3, backoffFactor: 0.01, backoffJitter: 0 },
      resumableThreshold: 4 * CHUNK,
      chunkSize: CHUNK,
      ...options,
    });
  }

  const writeLocal = (relative: string, data: Buffer | string): Promise<string> => writeSourceFile(dir, relative, data);

  /** Object metadata straight from the emulator (undefined when there is no such object). */
  async function objectMeta(name: string): Promise<{ size: string; contentType: string } | undefined> {
    const { emulatorHost, bucket } = mlflowGcsServer();
    const res = await fetch(`${emulatorHost}/storage/v1/b/${bucket}/o/${encodeURIComponent(name)}`);
    if (res.status === 404) return undefined;
    return (await res.json()) as { size: string; contentType: string };
  }

  const resetProxy = (): void => proxy.reset();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gcs-store-'));
    // Above the 1 MiB threshold the tests use: five 256 KiB chunks and a short sixth.
    big = randomBytes(5 * CHUNK + 1234);
    bigPath = await writeLocal('big.bin', big);
    proxy = await startFaultProxy(mlflowGcsServer().emulatorHost, { preserveHost: true });
    run = await serverRun(mlflowGcsServer().url);
  });

  afterAll(async () => {
    await proxy?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("writes under the run's gs:// artifact URI, as MLflow lays names out", () => {
    const { bucket } = mlflowGcsServer();
    expect(run.artifactUri).toMatch(new RegExp(`^gs://${bucket}/mlflow/0/${run.runId}/artifacts$`));
    const store = storeFor();
    expect([store.bucket, store.rootKey]).toEqual([bucket, `mlflow/0/${run.runId}/artifacts`]);
    expect(store.describe()).toMatch(/^GCS gs:\/\/.*\/artifacts via http:\/\/127\.0\.0\.1:\d+ \(STORAGE_EMULATOR_HOST\), no credentials: one request per file up to 1 MiB, resumable above in 256 KiB chunks$/);
  });

  it('uploads 0 B, 1 KiB and a directory with odd names in one request each, and lists them', async () => {
    const store = storeFor();
    Object.assign(expected, await uploadAndListSmallFiles(store, writeLocal, (data) => ({
        bytes: data.length,
        attempts: 1,
        multipart: false,
        resumedBytes: 0,
        sha256: sha256(data),
        // GCS answered with the MD5 of what it stored, the one we sent.
        verified: 'checksum',
        checksum: `md5:${createHash('md5').update(data).digest('base64')}`,
      })));
    // The type google-cloud-storage would send: a guess from the name, else octet-stream.
    expect((await objectMeta(`${store.rootKey}/small/ckpt/step 100/config.json`))?.contentType).toBe('application/json');
    expect((await objectMeta(`${store.rootKey}/small/one-kib.bin`))?.contentType).toBe('application/octet-stream');
  });

  it('uploads a file above the threshold as a resumable upload in chunks, picked by resolveArtifactStore', async () => {
    const connection = resolveMlflowConnection({ trackingUri: mlflowGcsServer().url, env: {} });
    const store = resolveArtifactStore(run.artifactUri, {
      connection,
      env: { STORAGE_EMULATOR_HOST: proxy.url, MLFLOW_GCS_UPLOAD_CHUNK_SIZE: String(CHUNK) },
      gcs: { resumableThreshold: 4 * CHUNK },
    });
    expect(store.kind).toBe('gcs');
    resetProxy();
    const progress: number[] = [];
    const result = await store.uploadFile(bigPath, 'model/big.bin', { onProgress: (n) => progress.push(n) });
    expected['model/big.bin'] = sha256(big);
    expect(result).toMatchObject({ bytes: big.length, attempts: 1, multipart: true });
    expect(proxy.requests.filter(isChunk).map((r) => r.contentRange)).toEqual([
      ...[0, 1, 2, 3, 4].map((i) => `bytes ${i * CHUNK}-${(i + 1) * CHUNK - 1}/${big.length}`),
      `bytes ${5 * CHUNK}-${big.length - 1}/${big.length}`,
    ]);
    expect(proxy.requests.filter((r) => r.method === 'POST').map((r) => r.path)).toEqual([expect.stringMatching(/\/upload\/storage\/v1\/b\/[^/]+\/o\?uploadType=resumable$/)]);
    expect(progress.at(-1)).toBe(big.length);
    expect(progress.every((n, i) => i === 0 || n >= (progress[i - 1] ?? 0))).toBe(true);
    expect((await store.list('model')).find((e) => e.path === 'model/big.bin')?.size).toBe(big.length);
  });

  it('retries a chunk that failed with 503 twice on its own; the other chunks go once', async () => {
    resetProxy();
    proxy.addRule({ match: chunkAt(2 * CHUNK), times: 2, fault: 'status', status: 503, body: JSON.stringify({ error: { code: 503, message: 'injected', errors: [{ reason: 'backendError' }] } }) });
    const store = storeFor({}, proxy.url);
    const retries: RetryEvent[] = [];
    const result = await store.uploadFile(bigPath, 'model/big-retried.bin', { onRetry: (e) => retries.push(e) });
    expected['model/big-retried.bin'] = sha256(big);
    expect(result).toEqual({ bytes: big.length, attempts: 3, multipart: true, resumedBytes: 0, sha256: sha256(big) });
    const starts = proxy.requests.filter(isChunk).map((r) => `${r.contentRange?.split('-')[0]}:${r.status}`);
    expect(starts).toEqual(['bytes 0:308', `bytes ${CHUNK}:308`, `bytes ${2 * CHUNK}:503`, `bytes ${2 * CHUNK}:503`, `bytes ${2 * CHUNK}:308`, `bytes ${3 * CHUNK}:308`, `bytes ${4 * CHUNK}:308`, `bytes ${5 * CHUNK}:200`]);
    expect(retries.map((e) => [e.attempt, (e.error as HttpStatusError).status, (e.error as HttpStatusError).code])).toEqual([
      [1, 503, 'backendError'],
      [2, 503, 'backendError'],
    ]);
  });

  it('a chunk GCS kept whose answer was lost is not sent again: GCS is asked how far the session got, and the upload goes on from there (a first chunk cut off goes again from 0)', async () => {
    resetProxy();
    // GCS keeps the third chunk, and the client never hears: sent again as it was, GCS refused
    // it (400 "Invalid Content-Range start"), and the upload failed.
    proxy.addRule({ match: chunkAt(2 * CHUNK), times: 1, fault: 'drop-response' });
    const result = await storeFor({}, proxy.url).uploadFile(bigPath, 'lost-answer/big.bin');
    expected['lost-answer/big.bin'] = sha256(big);
    expect(result).toEqual({ bytes: big.length, attempts: 2, multipart: true, resumedBytes: 0, sha256: sha256(big) });
    expect(proxy.requests.filter((r) => r.method === 'PUT').map((r) => `${r.contentRange?.split('-')[0]}:${r.fault ?? r.status}`)).toEqual([
      'bytes 0:308',
      `bytes ${CHUNK}:308`,
      `bytes ${2 * CHUNK}:drop-response`,
      `bytes */${big.length}:308`,
      `bytes ${3 * CHUNK}:308`,
      `bytes ${4 * CHUNK}:308`,
      `bytes ${5 * CHUNK}:200`,
    ]);
    expect(Number((await objectMeta(`${storeFor().rootKey}/lost-answer/big.bin`))?.size)).toBe(big.length);

    // A first chunk cut off goes again from byte 0 (the emulator's status answer for a session
    // with nothing, `bytes=0-0`, is not taken for one byte kept).
    resetProxy();
    proxy.addRule({ match: chunkAt(0), times: 1, fault: 'drop-mid-body' });
    await expect(storeFor({}, proxy.url).uploadFile(bigPath, 'lost-answer/first-cut.bin')).resolves.toMatchObject({ bytes: big.length, attempts: 2 });
    expected['lost-answer/first-cut.bin'] = sha256(big);
    expect(proxy.requests.filter(isChunk).map((r) => `${r.contentRange?.split('-')[0]}:${r.fault ?? r.status}`).slice(0, 3)).toEqual(['bytes 0:drop-mid-body', 'bytes 0:308', `bytes ${CHUNK}:308`]);
  });

  it('retries 429 and 403 rateLimitExceeded, as google-cloud-storage does', async () => {
    resetProxy();
    proxy.addRule({ match: (r) => r.method === 'POST', times: 1, fault: 'status', status: 429, body: '{"error":{"code":429,"message":"slow down"}}' });
    proxy.addRule({ match: (r) => r.method === 'POST', times: 1, fault: 'status', status: 403, body: JSON.stringify({ error: { code: 403, message: 'Rate limit', errors: [{ reason: 'rateLimitExceeded' }] } }) });
    const local = await writeLocal('throttled.txt', 'throttled');
    const result = await storeFor({}, proxy.url).uploadFile(local, 'throttled.txt');
    expected['throttled.txt'] = sha256(Buffer.from('throttled'));
    expect(result.attempts).toBe(3);
    expect(proxy.requests.map((r) => r.status)).toEqual([429, 403, 200]);
  });

  it('MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT past what a timer holds (3000000 s, "no timeout") lets requests finish, not cut them off after 1 ms', async () => {
    resetProxy();
    const data = Buffer.from('with a huge request timeout');
    const local = await writeLocal('huge-timeout.txt', data);
    // No retry: before, every request (the one-request upload, the session, each chunk) was cut off at once.
    const store = storeFor({ env: { STORAGE_EMULATOR_HOST: proxy.url, MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT: '3000000' }, retry: { maxRetries: 0 } });
    await expect(store.uploadFile(local, 'huge-timeout.txt')).resolves.toMatchObject({ bytes: data.length, attempts: 1 });
    await expect(store.uploadFile(bigPath, 'huge-timeout.bin')).resolves.toMatchObject({ bytes: big.length, attempts: 1, multipart: true });
    expected['huge-timeout.txt'] = sha256(data);
    expected['huge-timeout.bin'] = sha256(big);
    expect(proxy.requests.filter(isChunk).map((r) => r.status)).toEqual([308, 308, 308, 308, 308, 200]);
    expect((await objectMeta(`${store.rootKey}/huge-timeout.bin`))?.size).toBe(String(big.length));
  });

  it('a request that gets no answer within MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT is a RequestTimeoutError whose hint names that variable', async () => {
    resetProxy();
    proxy.addRule({ match: (r) => r.method === 'POST', fault: 'stall' });
    const local = await writeLocal('never-answered.txt', 'never answered');
    const error = await storeFor({ env: { STORAGE_EMULATOR_HOST: proxy.url, MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT: '1' }, retry: { maxRetries: 0 } })
      .uploadFile(local, 'never-answered.txt')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RequestTimeoutError);
    expect(error).toMatchObject({ code: 'REQUEST_TIMEOUT', timeoutMs: 1000, method: 'POST' });
    // The timeout this store reads, not the tracking client's MLFLOW_HTTP_REQUEST_TIMEOUT, which changes nothing here.
    expect((error as RequestTimeoutError).hint).toMatch(/raise MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT \(seconds, -1 for none\) or the gcs\.timeoutMs option/);
    expect((error as RequestTimeoutError).hint).not.toMatch(/raise MLFLOW_HTTP_REQUEST_TIMEOUT/);
    expect(await objectMeta(`${storeFor().rootKey}/never-answered.txt`)).toBeUndefined();
    resetProxy();
  });

  it('fails at the first request, with a typed error and a hint, on 401, 403 and a missing bucket', async () => {
    const local = await writeLocal('refused.txt', 'refused');
    for (const [status, reason, hint] of [
      [401, 'required', /No Google credentials were found.*GOOGLE_APPLICATION_CREDENTIALS/],
      [403, 'forbidden', /storage\.objects\.create on bucket/],
    ] as const) {
      resetProxy();
      proxy.addRule({ fault: 'status', status, body: JSON.stringify({ error: { code: status, message: 'nope', errors: [{ reason }] } }) });
      const error = await storeFor({}, proxy.url).uploadFile(local, 'refused.txt').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HttpStatusError);
      expect(error).toMatchObject({ status, code: reason, hint: expect.stringMatching(hint) });
      expect(proxy.requests).toHaveLength(1);
    }
    resetProxy();
    const missing = new GcsArtifactStore('gs://no-such-bucket/mlflow/0/abc/artifacts', { env: { STORAGE_EMULATOR_HOST: proxy.url }, retry: { maxRetries: 3 } });
    const error = await missing.uploadFile(local, 'refused.txt').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpStatusError);
    expect(error).toMatchObject({ status: 404, hint: expect.stringMatching(/The bucket "no-such-bucket" does not exist.*MLflow never creates buckets/) });
    expect(proxy.requests).toHaveLength(1);
    await expect(missing.list()).rejects.toMatchObject({ status: 404 });
  });

  it('an abort mid-upload cancels the session (DELETE) and leaves no object', async () => {
    resetProxy();
    const controller = new AbortController();
    const store = storeFor({}, proxy.url);
    const error = await store
      .uploadFile(bigPath, 'model/aborted.bin', {
        signal: controller.signal,
        onProgress: (n) => {
          if (n > 2 * CHUNK) controller.abort(new Error('user pressed Ctrl-C'));
        },
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AbortedError);
    expect((error as Error).message).toMatch(/aborted; its resumable session was cancelled/);
    const cancels = proxy.requests.filter((r) => r.method === 'DELETE');
    expect(cancels).toHaveLength(1);
    expect(cancels[0]?.path).toMatch(/upload_id=/);
    expect(proxy.requests.filter(isChunk).every((r) => r.status !== 200)).toBe(true);
    expect(await objectMeta(`${store.rootKey}/model/aborted.bin`)).toBeUndefined();
  });

  it('a chunk that keeps failing fails the upload, cancels the session, and leaves no object', async () => {
    resetProxy();
    proxy.addRule({ match: chunkAt(CHUNK), fault: 'status', status: 500, body: '{"error":{"code":500,"message":"boom"}}' });
    const store = storeFor({ retry: { maxRetries: 1, backoffFactor: 0, backoffJitter: 0 } }, proxy.url);
    const error = await store.uploadFile(bigPath, 'model/failed.bin').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpStatusError);
    expect(error).toMatchObject({ status: 500, hint: expect.stringMatching(/retried 1 time/) });
    expect(proxy.requests.filter((r) => r.method === 'DELETE')).toHaveLength(1);
    expect(await objectMeta(`${store.rootKey}/model/failed.bin`)).toBeUndefined();
  });

  it('a 412 on the last resumable chunk (an organization policy, a precondition of a session started elsewhere) fails at once with a hint, cancels the session, and leaves no object', async () => {
    // A 412 had no hint at all. GCS answers 412 for a precondition that did not hold
    // (conditionNotMet) or an organization policy the write violates (orgPolicyConstraintFailed);
    // a session carries the preconditions it was started with to its last chunk, which makes the object.
    const last = chunkAt(5 * CHUNK);
    for (const [reason, hint] of [
      ['orgPolicyConstraintFailed', /organization policy of the bucket's project refuses this write.*names the constraint.*--default-artifact-root/],
      ['conditionNotMet', /session was started with a precondition.*no longer holds.*starts its sessions without one.*resumeSession.*upload the file again/],
    ] as const) {
      resetProxy();
      proxy.addRule({ match: last, fault: 'status', status: 412, body: JSON.stringify({ error: { code: 412, message: 'Precondition Failed', errors: [{ reason, message: 'Precondition Failed' }] } }) });
      const store = storeFor({}, proxy.url);
      const error = await store.uploadFile(bigPath, `model/precondition-${reason}.bin`).catch((e: unknown) => e);
      expect(error, reason).toBeInstanceOf(HttpStatusError);
      expect(error, reason).toMatchObject({ status: 412, code: reason, hint: expect.stringMatching(hint) });
      // Not retried: the same answer every time.
      expect(proxy.requests.filter((r) => isChunk(r) && r.status === 412), reason).toHaveLength(1);
      expect(proxy.requests.filter((r) => r.method === 'DELETE'), reason).toHaveLength(1);
      expect(await objectMeta(`${store.rootKey}/model/precondition-${reason}.bin`), reason).toBeUndefined();
    }
    resetProxy();
  });

  it('a one-request upload refused with 412, or with 403 for an object under retention or a hold, says what to do, not that a permission is missing', async () => {
    // 412 had no hint; 403 retentionPolicyNotMet and objectUnderActiveHold got the hint of a
    // missing permission (storage.objects.create), which granting changes nothing to.
    const local = await writeLocal('kept.txt', 'kept');
    for (const [status, reason, hint] of [
      [412, 'orgPolicyConstraintFailed', /organization policy of the bucket's project refuses this write/],
      [412, 'conditionNotMet', /sends no precondition.*came from http:\/\/127\.0\.0\.1:\d+ \(STORAGE_EMULATOR_HOST\) or something between this machine and it/],
      [403, 'retentionPolicyNotMet', /under retention.*cannot be replaced.*another artifact path/],
      [403, 'objectUnderActiveHold', /hold on the object.*cannot be replaced.*released/],
    ] as const) {
      resetProxy();
      proxy.addRule({ fault: 'status', status, body: JSON.stringify({ error: { code: status, message: 'refused', errors: [{ reason, message: 'refused' }] } }) });
      const error = await storeFor({}, proxy.url).uploadFile(local, 'kept.txt').catch((e: unknown) => e);
      expect(error, reason).toBeInstanceOf(HttpStatusError);
      expect(error, reason).toMatchObject({ status, code: reason, hint: expect.stringMatching(hint) });
      expect((error as HttpStatusError).hint, reason).not.toMatch(/storage\.objects\.create/);
      expect(proxy.requests, reason).toHaveLength(1);
    }
    resetProxy();
  });

  it('a file that shrinks during a resumable upload fails with PATH_UNREADABLE and leaves no object', async () => {
    resetProxy();
    const local = await writeLocal('shrinking.bin', big);
    const store = storeFor({}, proxy.url);
    let cut = false;
    const error = await store
      .uploadFile(local, 'shrinking.bin', {
        onProgress: (n) => {
          if (!cut && n >= CHUNK) {
            cut = true;
            truncateSync(local, 2 * CHUNK);
          }
        },
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LocalPathError);
    expect(error).toMatchObject({ code: 'PATH_UNREADABLE', message: expect.stringMatching(/shrank while it was being uploaded/) });
    expect(proxy.requests.filter((r) => r.method === 'DELETE')).toHaveLength(1);
    expect(await objectMeta(`${store.rootKey}/shrinking.bin`)).toBeUndefined();
  });

  it('a source that changed since its snapshot is SOURCE_CHANGED: the last chunk, which makes the object, is not sent, and the session is cancelled', async () => {
    resetProxy();
    const local = await writeLocal('changed/chunks.bin', big);
    const snapshot = await snapshotFile(local);
    await utimes(local, new Date(), new Date(Date.now() + 5000)); // rewritten in place: same size, new mtime
    const error = await storeFor({}, proxy.url)
      .uploadFile(local, 'changed/chunks.bin', { snapshot })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceChangedError);
    expect(error).toMatchObject({ code: 'SOURCE_CHANGED', path: local, before: { size: big.length } });
    // Five chunks went (308 each); the sixth, which would have made the object, did not.
    expect(proxy.requests.filter(isChunk).map((r) => r.status)).toEqual([308, 308, 308, 308, 308]);
    expect(proxy.requests.filter((r) => r.method === 'DELETE')).toHaveLength(1);
    expect(await objectMeta(`${storeFor().rootKey}/changed/chunks.bin`)).toBeUndefined();
  });

  it('a source that changes before a retry of its last chunk (read again) is SOURCE_CHANGED, and the object is taken back', async () => {
    resetProxy();
    const local = await writeLocal('changed/retried.bin', big);
    const snapshot = await snapshotFile(local);
    // The last chunk is refused once; before it goes again, the file is rewritten in place.
    proxy.addRule({ match: chunkAt(5 * CHUNK), times: 1, fault: 'status', status: 503, body: JSON.stringify({ error: { code: 503, message: 'injected' } }) });
    let rewritten = false;
    const rewrite = () => {
      if (rewritten) return;
      rewritten = true;
      writeFileSync(local, Buffer.alloc(big.length, 0xee));
      utimesSync(local, new Date(), new Date(Date.now() + 5000));
    };
    const error = await storeFor({}, proxy.url)
      .uploadFile(local, 'changed/retried.bin', { snapshot, onRetry: rewrite })
      .catch((e: unknown) => e);
    expect(rewritten).toBe(true);
    expect(error).toBeInstanceOf(SourceChangedError);
    expect(error).toMatchObject({ code: 'SOURCE_CHANGED', path: local });
    expect(proxy.requests.filter((r) => isChunk(r) && r.contentRange?.startsWith(`bytes ${5 * CHUNK}-`)).map((r) => r.status)).toEqual([503, 200]);
    expect(await objectMeta(`${storeFor().rootKey}/changed/retried.bin`)).toBeUndefined();
  });

  it("a changed file whose DELETE answer is lost: the retry's 404 means it is gone, so it counts as taken back; delete() of a missing name is no error", async () => {
    resetProxy();
    const local = await writeLocal('changed/lost-delete.bin', randomBytes(4096));
    const snapshot = await snapshotFile(local);
    truncateSync(local, 100);
    // GCS deletes the object, and the answer never reaches the client, which sends the DELETE again.
    proxy.addRule({ match: (r) => r.method === 'DELETE', times: 1, fault: 'drop-response' });
    const error = await storeFor({}, proxy.url)
      .uploadFile(local, 'changed/lost-delete.bin', { snapshot })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceChangedError);
    expect(error).toMatchObject({ code: 'SOURCE_CHANGED', path: local, before: { size: 4096 }, after: { size: 100 } });
    expect((error as SourceChangedError).leftStored).toBeUndefined();
    expect((error as Error).message).not.toMatch(/could not be deleted/);
    expect(proxy.requests.filter((r) => r.method === 'DELETE').map((r) => r.fault ?? r.status)).toEqual(['drop-response', 404]);
    expect(await objectMeta(`${storeFor().rootKey}/changed/lost-delete.bin`)).toBeUndefined();
    await expect(storeFor().delete('changed/never-there.bin')).resolves.toBeUndefined();
  });

  /** A resumable upload stopped (aborted) in its third chunk, as a process that crashed there: its one session. */
  async function stoppedInThirdChunk(store: GcsArtifactStore, path: string, artifactPath: string): Promise<GcsResumableSession> {
    const sessions: GcsResumableSession[] = [];
    const controller = new AbortController();
    await store
      .uploadFile(path, artifactPath, {
        signal: controller.signal,
        onSession: (s) => void sessions.push(s),
        onProgress: (n) => {
          if (n > 2 * CHUNK + 1000) controller.abort();
        },
      })
      .catch(() => undefined);
    expect(sessions).toHaveLength(1);
    return sessions[0]!;
  }

  it('a second process resumes the session from the offset GCS reports and sends only the rest', async () => {
    resetProxy();
    // The first process "crashes" in chunk 3: its cancel never reaches the server.
    proxy.addRule({ match: (r) => r.method === 'DELETE', fault: 'drop' });
    const first = storeFor({ retry: { maxRetries: 0 } }, proxy.url);
    const session = await stoppedInThirdChunk(first, bigPath, 'model/resumed.bin');
    expect(session).toMatchObject({ bucket: first.bucket, name: `${first.rootKey}/model/resumed.bin`, size: big.length, uri: expect.stringMatching(/upload_id=/) });
    // The session can be passed through JSON (a journal file) and still be used.
    const persisted = JSON.parse(JSON.stringify(session)) as GcsResumableSession;
    expect(await objectMeta(session.name)).toBeUndefined();

    resetProxy();
    const second = storeFor({}, proxy.url);
    const status = await second.querySession(persisted);
    // Two chunks were acknowledged; the emulator also keeps what arrived of the third before
    // the cut (real GCS may keep part of a chunk too), so the offset is in the third chunk.
    expect(status.state).toBe('incomplete');
    const offset = status.state === 'incomplete' ? status.offset : -1;
    expect(offset).toBeGreaterThanOrEqual(2 * CHUNK);
    expect(offset).toBeLessThan(3 * CHUNK);
    const progress: number[] = [];
    const result = await second.uploadFile(bigPath, 'model/resumed.bin', { resumeSession: persisted, onProgress: (n) => progress.push(n) });
    expected['model/resumed.bin'] = sha256(big);
    // The bytes the first process sent are read here (not sent again) to hash the whole file.
    expect(result).toEqual({ bytes: big.length, attempts: 1, multipart: true, resumedBytes: offset, bytesReused: offset, sha256: sha256(big) });
    expect(progress[0]).toBe(offset);
    expect(proxy.requests.filter((r) => r.method === 'POST')).toEqual([]);
    expect(proxy.requests.filter(isStatusQuery).map((r) => r.contentRange)).toEqual([`bytes */${big.length}`, `bytes */${big.length}`]);
    // Only the rest is sent, from GCS's offset, in whole chunks.
    const rest: string[] = [];
    for (let start = offset; start < big.length; start += CHUNK) rest.push(`bytes ${start}-${Math.min(start + CHUNK, big.length) - 1}/${big.length}`);
    expect(proxy.requests.filter(isChunk).map((r) => r.contentRange)).toEqual(rest);
    // Asked again once the upload finished: GCS answers with the object; the emulator has
    // forgotten the session. Either way nothing is sent again.
    expect(['complete', 'gone']).toContain((await second.querySession(persisted)).state);
  });

  /**
   * A resumable upload of a new file `name` stopped after two chunks (its cancel never arrives),
   * then the file rewritten in place where GCS already holds its bytes (the first chunk), with
   * its size kept and its times put back: what a resume journal compares says nothing changed.
   */
  async function interruptedThenRewritten(name: string): Promise<{ path: string; session: GcsResumableSession; rewritten: Buffer }> {
    resetProxy();
    proxy.addRule({ match: (r) => r.method === 'DELETE', fault: 'drop' });
    const original = randomBytes(big.length);
    const path = await writeLocal(name, original);
    const wholeSecond = new Date(Math.floor(Date.now() / 1000) * 1000 - 3600_000); // utimes puts whole seconds back exactly
    await utimes(path, wholeSecond, wholeSecond);
    const session = await stoppedInThirdChunk(storeFor({ retry: { maxRetries: 0 } }, proxy.url), path, `model/${name}`);
    const before = await stat(path, { bigint: true });
    const file = await open(path, 'r+');
    await file.write(randomBytes(4096), 0, 4096, 1000);
    await file.close();
    await utimes(path, wholeSecond, wholeSecond);
    const after = await stat(path, { bigint: true });
    expect([after.size, after.mtimeNs, after.ino]).toEqual([before.size, before.mtimeNs, before.ino]);
    const rewritten = await readFile(path);
    expect(rewritten.equals(original)).toBe(false);
    resetProxy();
    return { path, session, rewritten };
  }

  it('a session continued for a file rewritten since, keeping its size and mtime: the object made of both versions is deleted, and the file starts over', async () => {
    const { path, session, rewritten } = await interruptedThenRewritten('rewritten.bin');
    const logger = recordingLogger();
    const result = await storeFor({ logger }, proxy.url).uploadFile(path, 'model/rewritten.bin', { resumeSession: session });
    expected['model/rewritten.bin'] = sha256(rewritten); // the last test downloads it with Python
    // The whole file again, in a session of its own: nothing of the earlier attempt is kept.
    expect(result).toEqual({ bytes: rewritten.length, attempts: 1, multipart: true, resumedBytes: 0, sha256: sha256(rewritten) });
    const name = `${storeFor().rootKey}/model/rewritten.bin`;
    expect(proxy.requests.filter((r) => r.method === 'DELETE').map((r) => [decodeURIComponent(r.path.split('?')[0]!).endsWith(`/o/${name}`), r.status! < 300])).toEqual([[true, true]]);
    expect(proxy.requests.filter((r) => r.method === 'POST')).toHaveLength(1); // the new session
    expect(proxy.requests.filter(isChunk).at(-1)?.contentRange).toBe(`bytes ${5 * CHUNK}-${rewritten.length - 1}/${rewritten.length}`);
    expect(logger.lines.filter(([level]) => level === 'warn').map(([, line]) => line)).toEqual([
      expect.stringMatching(/rewritten\.bin changed since the earlier attempt to upload it to .*the object GCS made from that attempt's bytes and the rest was not this file, and was deleted\. The file starts over\.$/),
    ]);
    const { emulatorHost, bucket } = mlflowGcsServer();
    const stored = Buffer.from(await (await fetch(`${emulatorHost}/download/storage/v1/b/${bucket}/o/${encodeURIComponent(name)}?alt=media`)).arrayBuffer());
    expect(stored.equals(rewritten)).toBe(true);
  });

  it('when that object cannot be deleted, the upload fails saying it is left there and may mix two versions, with the refusal as its cause', async () => {
    const { path, session } = await interruptedThenRewritten('rewritten-kept.bin');
    proxy.addRule({ match: (r) => r.method === 'DELETE', fault: 'status', status: 403, body: '{"error":{"code":403,"message":"denied","errors":[{"reason":"forbidden"}]}}' });
    const error = await storeFor({}, proxy.url)
      .uploadFile(path, 'model/rewritten-kept.bin', { resumeSession: session })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceChangedError);
    expect(error).toMatchObject({ code: 'SOURCE_CHANGED', sinceEarlierAttempt: true, leftStored: true, cause: { status: 403 } });
    expect((error as Error).message).toMatch(/since an earlier, interrupted attempt stored part of it.*could not be deleted again and may mix two versions of the file: delete that artifact by hand, or upload the file again with --no-resume\./);
    expect(proxy.requests.filter((r) => r.method === 'POST')).toEqual([]); // not started over
    // Left there, as the error says; removed here so the last test's download sees only good objects.
    await storeFor().delete('model/rewritten-kept.bin');
  });

  it('starts a new session when the one to resume is unknown to GCS or made for another size', async () => {
    resetProxy();
    const store = storeFor({}, proxy.url);
    const logger = recordingLogger();
    const local = await writeLocal('restart.bin', big.subarray(0, 5 * CHUNK));
    const name = `${store.rootKey}/restart.bin`;
    const stale: GcsResumableSession = { uri: `${proxy.url}/upload/storage/v1/b/${store.bucket}/o?uploadType=resumable&upload_id=gone`, bucket: store.bucket, name, size: 5 * CHUNK, createdAt: 0 };
    const created: GcsResumableSession[] = [];
    const withLogger = new GcsArtifactStore(run.artifactUri, { env: { STORAGE_EMULATOR_HOST: proxy.url }, resumableThreshold: CHUNK, chunkSize: CHUNK, logger });
    const result = await withLogger.uploadFile(local, 'restart.bin', { resumeSession: stale, onSession: (s) => void created.push(s) });
    expected['restart.bin'] = sha256(big.subarray(0, 5 * CHUNK));
    expect(result.resumedBytes).toBe(0);
    expect(created).toHaveLength(1);
    expect(created[0]?.uri).not.toBe(stale.uri);
    expect(logger.lines.some(([, l]) => /expired or was cancelled; starting over/.test(l))).toBe(true);
    // Never logged: the session URI is a credential for the upload.
    expect(JSON.stringify(logger.lines)).not.toContain('upload_id=gone');

    const otherSize = await withLogger.uploadFile(local, 'restart.bin', { resumeSession: { ...stale, size: 1 } });
    expect(otherSize.resumedBytes).toBe(0);
    expect(logger.lines.some(([, l]) => /made for another object or size/.test(l))).toBe(true);
  });

  it('falls back to anonymous requests without credentials, as MLflow does, and says so', async () => {
    const logger = recordingLogger();
    const previous = process.env.METADATA_SERVER_DETECTION;
    // No metadata server here: tell google-auth-library not to probe for one.
    process.env.METADATA_SERVER_DETECTION = 'none';
    try {
      const store = new GcsArtifactStore(run.artifactUri, {
        apiEndpoint: mlflowGcsServer().emulatorHost,
        useAuthWithCustomEndpoint: true,
        env: { HOME: dir },
        logger,
      });
      expect(store.config.authenticated).toBe(true);
      const local = await writeLocal('anonymous.txt', 'anonymous');
      await store.uploadFile(local, 'anonymous.txt');
      expected['anonymous.txt'] = sha256(Buffer.from('anonymous'));
      expect(logger.lines.filter(([level]) => level === 'warn')).toEqual([['warn', expect.stringMatching(/No Google credentials found.*anonymously, as MLflow does/)]]);
    } finally {
      if (previous === undefined) delete process.env.METADATA_SERVER_DETECTION;
      else process.env.METADATA_SERVER_DETECTION = previous;
    }
  });

  it('sends a Bearer token from Application Default Credentials (the metadata server) and never logs it', async () => {
    // A stand-in for the GCE metadata server, driven by the official google-auth-library.
    const token = 'ya29.metadata-token-7Qx9-never-logged';
    await withMetadataServer(() => token, async (metadataRequests) => {
      resetProxy();
      const authorizations = recordAuthorizations(proxy);
      const logger = recordingLogger();
      const store = new GcsArtifactStore(run.artifactUri, {
        apiEndpoint: proxy.url,
        useAuthWithCustomEndpoint: true,
        env: { HOME: dir },
        retry: { maxRetries: 0 },
        resumableThreshold: CHUNK,
        chunkSize: CHUNK,
        logger,
      });
      const local = await writeLocal('with-adc.bin', big.subarray(0, 2 * CHUNK + 10));
      await store.uploadFile(local, 'with-adc.bin');
      expected['with-adc.bin'] = sha256(big.subarray(0, 2 * CHUNK + 10));
      // Start, three chunks: every request carried the token.
      expect(authorizations).toEqual(Array.from({ length: 4 }, () => `Bearer ${token}`));
      expect(metadataRequests.some((u) => u.includes('/token'))).toBe(true);
      // A refusal names no token either.
      proxy.addRule({ fault: 'status', status: 403, body: JSON.stringify({ error: { code: 403, message: `denied for Bearer ${token}`, errors: [{ reason: 'forbidden' }] } }) });
      const error = await store.uploadFile(local, 'with-adc-refused.bin').catch((e: unknown) => e);
      expect(error).toMatchObject({ status: 403, code: 'forbidden' });
      expect(JSON.stringify((error as HttpStatusError).toJSON()) + (error as Error).message + JSON.stringify(logger.lines)).not.toContain(token);
    });
  });

  it('retries a token the metadata server fails to give (503) under the retry policy, instead of a ConfigError at once', async () => {
    // The GCE metadata server stand-in: busy for the first four token requests, which is all
    // google-auth-library's own retries make in one attempt (a node starting up, say).
    await withMetadataServer((n) => (n <= 4 ? 503 : 'ya29.after-503'), async (metadataRequests) => {
      resetProxy();
      const retries: RetryEvent[] = [];
      const store = new GcsArtifactStore(run.artifactUri, {
        apiEndpoint: proxy.url,
        useAuthWithCustomEndpoint: true,
        env: { HOME: dir },
        retry: { maxRetries: 2, backoffFactor: 0.01, backoffJitter: 0 },
      });
      const local = await writeLocal('after-metadata-503.txt', 'after a busy metadata server');
      const result = await store.uploadFile(local, 'after-metadata-503.txt', { onRetry: (event) => void retries.push(event) });
      expected['after-metadata-503.txt'] = sha256(Buffer.from('after a busy metadata server'));
      expect(result).toMatchObject({ bytes: 28, attempts: 2 });
      expect(retries.map((e) => (e.error as Error).name)).toEqual(['NetworkError']);
      expect(metadataRequests.filter((u) => u.includes('/token'))).toHaveLength(5);
      // Nothing went to GCS before there was a token; then the one upload.
      expect(proxy.requests.map((r) => [r.method, r.status])).toEqual([['POST', 200]]);
      expect((await objectMeta(`${store.rootKey}/after-metadata-503.txt`))?.size).toBe('28');
    });
  });

  it('sends the Application Default Credentials token to an API_ENDPOINT_OVERRIDE endpoint, as MLflow does (google-cloud-storage authenticates to it)', async () => {
    const token = 'ya29.override-endpoint-token';
    await withMetadataServer(() => token, async () => {
      resetProxy();
      const authorizations = recordAuthorizations(proxy);
      // A private endpoint (Private Service Connect, a regional one) set the way MLflow users set it.
      const store = new GcsArtifactStore(run.artifactUri, { env: { API_ENDPOINT_OVERRIDE: proxy.url, HOME: dir }, retry: { maxRetries: 0 } });
      expect(store.describe()).toMatch(/\(API_ENDPOINT_OVERRIDE\), Application Default Credentials:/);
      const local = await writeLocal('override-endpoint.txt', 'to a private endpoint');
      await store.uploadFile(local, 'override-endpoint.txt');
      expected['override-endpoint.txt'] = sha256(Buffer.from('to a private endpoint'));
      expect(authorizations).toEqual([`Bearer ${token}`]);
      expect((await objectMeta(`${store.rootKey}/override-endpoint.txt`))?.size).toBe('21');
    });
  });

  it('refuses an unusable GOOGLE_APPLICATION_CREDENTIALS with a ConfigError before sending anything', async () => {
    resetProxy();
    const store = new GcsArtifactStore(run.artifactUri, {
      apiEndpoint: proxy.url,
      useAuthWithCustomEndpoint: true,
      env: { GOOGLE_APPLICATION_CREDENTIALS: join(dir, 'no-such-key.json') },
    });
    const local = await writeLocal('never.txt', 'never');
    const error = await store.uploadFile(local, 'never.txt').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/GOOGLE_APPLICATION_CREDENTIALS.*no-such-key\.json/);
    expect(proxy.requests).toEqual([]);
  });

  it('refuses bad artifact paths and missing files before any request', async () => {
    resetProxy();
    await expectRefusedBeforeAnyRequest(storeFor({}, proxy.url), join(dir, 'nope.bin'), bigPath, proxy.requests);
  });

  it('ArtifactUploader uploads a directory to the gs:// run end to end, verified against the bucket listing', async () => {
    const tree: Record<string, Buffer> = {
      'metrics.json': Buffer.from('{"acc": 0.91}'),
      'ckpt/model.safetensors': big.subarray(0, 4 * CHUNK + 77),
      'ckpt/nested/tokenizer.json': Buffer.from('{"t": 1}'),
      'ckpt/empty.txt': Buffer.alloc(0),
    };
    for (const [path, data] of Object.entries(tree)) await writeLocal(`tree/${path}`, data);
    const uploader = new ArtifactUploader({
      stage: 'training',
      runId: run.runId,
      trackingUri: mlflowGcsServer().url,
      env: { STORAGE_EMULATOR_HOST: mlflowGcsServer().emulatorHost },
      gcs: { resumableThreshold: 2 * CHUNK, chunkSize: CHUNK },
      verify: true,
      retry: { maxRetries: 2, backoffFactor: 0, backoffJitter: 0 },
    });
    const result = await uploader.uploadDirectory(join(dir, 'src', 'tree'), { artifactPath: 'tree' });
    expect(result).toMatchObject({ status: 'uploaded', runId: run.runId, artifactUri: run.artifactUri, verification: { status: 'verified' } });
    expect(uploader.stats()).toMatchObject({ uploaded: 1, filesSent: 4, retries: 0 });
    for (const [path, data] of Object.entries(tree)) expected[`tree/${path}`] = sha256(data);
  });

  it('the official Python client (google-cloud-storage under MLflow) downloads every artifact byte-exact', async () => {
    const env = { STORAGE_EMULATOR_HOST: mlflowGcsServer().emulatorHost };
    const hashes = await pythonArtifactHashes(mlflowGcsServer().url, run.runId, '', env);
    expect(hashes).toEqual(expected);
    // And google-cloud-storage itself lists the objects with the sizes we sent.
    const listed = await runPython(
      `
import json, os, sys
from google.cloud import storage
client = storage.Client()
print(json.dumps({b.name: b.size for b in client.list_blobs(sys.argv[1], prefix=sys.argv[2] + "/model/")}))
`,
      { env, args: [mlflowGcsServer().bucket, `mlflow/0/${run.runId}/artifacts`] },
    );
    const sizes = JSON.parse(listed.trim().split('\n').pop() ?? '{}') as Record<string, number>;
    expect(Object.entries(sizes).map(([name, size]) => [name.split('/').pop(), size])).toEqual(
      ['big-retried.bin', 'big.bin', 'resumed.bin', 'rewritten.bin'].map((n) => [n, big.length]),
    );
  });
});

/** The `Authorization` header of every request through `proxy` from now on, in order (a rule that matches none). */
function recordAuthorizations(proxy: FaultProxy): unknown[] {
  const authorizations: unknown[] = [];
  proxy.addRule({
    match: (r) => {
      authorizations.push(r.headers.authorization);
      return false;
    },
    fault: 'drop',
  });
  return authorizations;
}

/**
 * Runs `fn` with a stand-in for the GCE metadata server, which the official google-auth-library
 * finds through METADATA_SERVER_DETECTION and GCE_METADATA_HOST (both restored afterwards). Its
 * n-th token request (from 1) is answered by `token(n)`: an access token, or the status to fail
 * it with. `fn` gets the paths asked for, as they come.
 */
async function withMetadataServer(token: (n: number) => string | number, fn: (requests: readonly string[]) => Promise<void>): Promise<void> {
  const requests: string[] = [];
  let tokenRequests = 0;
  const metadata = createServer((req, res) => {
    requests.push(req.url ?? '');
    const headers = { 'metadata-flavor': 'Google' };
    if (req.headers['metadata-flavor'] !== 'Google') return void res.writeHead(403, headers).end();
    if (req.url?.startsWith('/computeMetadata/v1/instance/service-accounts/default/token')) {
      const answer = token(++tokenRequests);
      if (typeof answer === 'number') return void res.writeHead(answer, headers).end('metadata server busy');
      return void res.writeHead(200, { ...headers, 'content-type': 'application/json' }).end(JSON.stringify({ access_token: answer, expires_in: 3599, token_type: 'Bearer' }));
    }
    if (req.url === '/computeMetadata/v1/universe/universe-domain') return void res.writeHead(200, { ...headers, 'content-type': 'text/plain' }).end('googleapis.com');
    res.writeHead(404, headers).end();
  });
  await new Promise<void>((resolve) => metadata.listen(0, '127.0.0.1', resolve));
  const saved = { detection: process.env.METADATA_SERVER_DETECTION, host: process.env.GCE_METADATA_HOST };
  process.env.METADATA_SERVER_DETECTION = 'assume-present';
  process.env.GCE_METADATA_HOST = `127.0.0.1:${(metadata.address() as AddressInfo).port}`;
  try {
    await fn(requests);
  } finally {
    for (const [key, value] of [['METADATA_SERVER_DETECTION', saved.detection], ['GCE_METADATA_HOST', saved.host]] as const) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
    await new Promise<void>((resolve) => metadata.close(() => resolve()));
  }
}
