/**
 * The gs:// store's settings, read as MLflow's GCSArtifactRepository and google-cloud-storage
 * read them, and what the store does before any request: URI parsing, a missing SDK, GCS's
 * retryable reasons, session URIs kept out of logs. No server needed.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, HttpStatusError, InvalidArgumentError, MissingDependencyError } from '../../src/core/errors.js';
import { redact } from '../../src/core/logger.js';
import { isRetryableError } from '../../src/core/retry.js';
import { resolveMlflowConnection } from '../../src/mlflow/connection.js';
import { DEFAULT_GCS_CHUNK_SIZE, GCS_NO_TIMEOUT_MS, resolveGcsConfig } from '../../src/stores/gcs-config.js';
import { persistedBytes } from '../../src/stores/gcs-resumable.js';
import { GcsArtifactStore, parseGcsUri } from '../../src/stores/gcs-store.js';
import { resolveArtifactStore } from '../../src/stores/resolve.js';
import { startTestServer } from '../support/http-test-server.js';

const thrown = (fn: () => unknown): unknown => {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
};

describe('resolveGcsConfig', () => {
  it("defaults to google-cloud-storage's: the public endpoint with credentials, 100 MiB chunks above 8 MiB, 60 s", () => {
    expect(resolveGcsConfig({}, {})).toEqual({
      apiEndpoint: 'https://storage.googleapis.com',
      endpointSource: 'default',
      authenticated: true,
      keyFilename: undefined,
      chunkSize: DEFAULT_GCS_CHUNK_SIZE,
      resumableThreshold: 8 * 1024 * 1024,
      timeoutMs: 60_000,
      warnings: [],
    });
  });

  it('reads MLFLOW_GCS_UPLOAD_CHUNK_SIZE and MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT (-1: none); options win', () => {
    const env = { MLFLOW_GCS_UPLOAD_CHUNK_SIZE: String(8 * 1024 * 1024), MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT: '300' };
    expect(resolveGcsConfig({}, env)).toMatchObject({ chunkSize: 8 * 1024 * 1024, timeoutMs: 300_000 });
    expect(resolveGcsConfig({ chunkSize: 512 * 1024, timeoutMs: 5000 }, env)).toMatchObject({ chunkSize: 512 * 1024, timeoutMs: 5000 });
    expect(resolveGcsConfig({}, { MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT: '-1' }).timeoutMs).toBe(GCS_NO_TIMEOUT_MS);
    // Node's largest timer, as -1: a larger one fires after 1 ms.
    expect(resolveGcsConfig({}, { MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT: '3000000' }).timeoutMs).toBe(GCS_NO_TIMEOUT_MS);
    expect(resolveGcsConfig({ timeoutMs: 1e12 }, {}).timeoutMs).toBe(GCS_NO_TIMEOUT_MS);
  });

  it('refuses a chunk size that is not a multiple of 256 KiB, and a timeout of 0, naming the variable', () => {
    const bad = thrown(() => resolveGcsConfig({}, { MLFLOW_GCS_UPLOAD_CHUNK_SIZE: '1000000' }));
    expect(bad).toBeInstanceOf(ConfigError);
    expect(bad).toMatchObject({ message: expect.stringMatching(/MLFLOW_GCS_UPLOAD_CHUNK_SIZE must be a positive multiple of 262144/) });
    expect(thrown(() => resolveGcsConfig({}, { MLFLOW_GCS_UPLOAD_CHUNK_SIZE: 'big' }))).toBeInstanceOf(ConfigError);
    expect(thrown(() => resolveGcsConfig({ chunkSize: 100 }, {}))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => resolveGcsConfig({ resumableThreshold: -1 }, {}))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => resolveGcsConfig({}, { MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT: '0' }))).toMatchObject({
      message: expect.stringMatching(/MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT must be a number of seconds > 0, or -1/),
      hint: expect.stringMatching(/Set MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT to/),
    });
  });

  it('warns that the deprecated MLFLOW_GCS_DEFAULT_TIMEOUT is not read (MLflow does not read it either)', () => {
    const config = resolveGcsConfig({}, { MLFLOW_GCS_DEFAULT_TIMEOUT: '30' });
    expect(config.timeoutMs).toBe(60_000);
    expect(config.warnings).toEqual([expect.stringMatching(/MLFLOW_GCS_DEFAULT_TIMEOUT is deprecated.*MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT/)]);
  });

  it('uses STORAGE_EMULATOR_HOST (scheme optional) without credentials; API_ENDPOINT_OVERRIDE with them, as MLflow; the apiEndpoint option only with useAuthWithCustomEndpoint', () => {
    expect(resolveGcsConfig({}, { STORAGE_EMULATOR_HOST: 'http://127.0.0.1:9023/' })).toMatchObject({
      apiEndpoint: 'http://127.0.0.1:9023',
      endpointSource: 'STORAGE_EMULATOR_HOST',
      authenticated: false,
    });
    expect(resolveGcsConfig({ useAuthWithCustomEndpoint: true }, { STORAGE_EMULATOR_HOST: 'localhost:9023' })).toMatchObject({
      apiEndpoint: 'http://localhost:9023',
      authenticated: false,
    });
    // google-cloud-storage's Client(use_auth_w_custom_endpoint=True), which MLflow makes with no arguments.
    expect(resolveGcsConfig({}, { API_ENDPOINT_OVERRIDE: 'https://storage.example.com' })).toMatchObject({ endpointSource: 'API_ENDPOINT_OVERRIDE', authenticated: true });
    expect(resolveGcsConfig({ useAuthWithCustomEndpoint: false }, { API_ENDPOINT_OVERRIDE: 'https://storage.example.com' })).toMatchObject({ authenticated: false });
    expect(resolveGcsConfig({ apiEndpoint: 'https://gcs.internal' }, {})).toMatchObject({ endpointSource: 'option', authenticated: false });
    expect(resolveGcsConfig({ apiEndpoint: 'https://gcs.internal', useAuthWithCustomEndpoint: true }, { STORAGE_EMULATOR_HOST: 'x:1' })).toMatchObject({
      apiEndpoint: 'https://gcs.internal',
      endpointSource: 'option',
      authenticated: true,
    });
    expect(thrown(() => resolveGcsConfig({}, { STORAGE_EMULATOR_HOST: 'ftp://x' }))).toMatchObject({ name: 'ConfigError', hint: expect.stringMatching(/http:\/\/127\.0\.0\.1:9023/) });
    expect(thrown(() => resolveGcsConfig({ apiEndpoint: 'http://[x' }, {}))).toMatchObject({ name: 'ConfigError', hint: expect.stringMatching(/http:\/\/127\.0\.0\.1:9023/) });
    expect(resolveGcsConfig({}, { GOOGLE_APPLICATION_CREDENTIALS: '/keys/sa.json' }).keyFilename).toBe('/keys/sa.json');
  });
});

describe('the gs:// store before any request', () => {
  let dir: string;
  let file: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gcs-config-'));
    file = join(dir, 'a.txt');
    await writeFile(file, 'hello');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('parses gs:// URIs as MLflow does', () => {
    expect(parseGcsUri('gs://ml/direct/1/abc/artifacts')).toEqual({ bucket: 'ml', rootKey: 'direct/1/abc/artifacts' });
    expect(parseGcsUri('gs://ml')).toEqual({ bucket: 'ml', rootKey: '' });
    expect(thrown(() => parseGcsUri('s3://ml/x'))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => parseGcsUri('gs:///x'))).toBeInstanceOf(InvalidArgumentError);
  });

  it('is what resolveArtifactStore picks for gs:// URIs', () => {
    const connection = resolveMlflowConnection({ trackingUri: 'http://127.0.0.1:1' }, {});
    const store = resolveArtifactStore('gs://bucket/mlflow/0/r/artifacts', { connection, env: { STORAGE_EMULATOR_HOST: 'http://127.0.0.1:2' }, gcs: { chunkSize: 8 * 1024 * 1024 } });
    expect(store).toBeInstanceOf(GcsArtifactStore);
    expect(store.artifactUri).toBe('gs://bucket/mlflow/0/r/artifacts');
    expect(store.describe()).toBe(
      'GCS gs://bucket/mlflow/0/r/artifacts via http://127.0.0.1:2 (STORAGE_EMULATOR_HOST), no credentials: one request per file up to 8 MiB, resumable above in 8 MiB chunks',
    );
  });

  it('names @google-cloud/storage and the install line when credentials are needed and it is missing', async () => {
    const store = new GcsArtifactStore('gs://bucket/x', {
      env: {},
      loadSdk: () => Promise.reject(Object.assign(new Error("Cannot find package '@google-cloud/storage'"), { code: 'ERR_MODULE_NOT_FOUND' })),
    });
    const error = await store.uploadFile(file, 'a.txt').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MissingDependencyError);
    expect(error).toMatchObject({ packages: ['@google-cloud/storage'], hint: 'Install it: npm install @google-cloud/storage' });
  });

  it('refuses bad artifact paths before anything else', async () => {
    const store = new GcsArtifactStore('gs://bucket/x', { env: { STORAGE_EMULATOR_HOST: 'http://127.0.0.1:1' } });
    await expect(store.uploadFile(file, '../escape.txt')).rejects.toMatchObject({ code: 'INVALID_ARTIFACT_PATH' });
  });

  it('an endpoint whose TLS certificate this machine does not trust: the hint names no MLflow setting (the gs:// client reads none)', async () => {
    const untrusted = await startTestServer((_req, res) => void res.end('{}'), { tls: true });
    try {
      const store = new GcsArtifactStore('gs://bucket/x', { env: { STORAGE_EMULATOR_HOST: untrusted.url }, retry: { maxRetries: 0 } });
      const error = await store.uploadFile(file, 'a.txt').catch((e: unknown) => e);
      expect(error).toMatchObject({ message: expect.stringContaining("this machine does not trust the server's TLS certificate"), hint: expect.stringContaining('NODE_EXTRA_CA_CERTS') });
      // Setting them would change nothing for this client.
      expect((error as ConfigError).hint).not.toMatch(/MLFLOW_TRACKING_/);
    } finally {
      await untrusted.close();
    }
  });
});

describe('GCS answers', () => {
  it("retries GCS's transient reasons even on a 403, as google-cloud-storage does, and not a plain 403", () => {
    const gcsError = (status: number, reason: string) => new HttpStatusError(status, 'x', { code: reason });
    expect(isRetryableError(gcsError(403, 'rateLimitExceeded'))).toBe(true);
    expect(isRetryableError(gcsError(403, 'userRateLimitExceeded'))).toBe(true);
    expect(isRetryableError(gcsError(403, 'forbidden'))).toBe(false);
    expect(isRetryableError(gcsError(401, 'required'))).toBe(false);
    expect(isRetryableError(gcsError(404, 'notFound'))).toBe(false);
    expect(isRetryableError(gcsError(503, 'backendError'))).toBe(true);
    expect(isRetryableError(gcsError(308, 'RESUME_INCOMPLETE'))).toBe(false);
  });

  it('reads the Range of a 308 as the bytes GCS persisted (none without one)', () => {
    expect(persistedBytes(undefined)).toBe(0);
    expect(persistedBytes('bytes=0-262143')).toBe(262144);
    expect(thrown(() => persistedBytes('bytes=5-9'))).toMatchObject({ code: 'INVALID_RESPONSE' });
  });

  it('keeps resumable session URIs out of logs and errors', () => {
    const uri = 'https://storage.googleapis.com/upload/storage/v1/b/b/o?uploadType=resumable&upload_id=ADPycdsSECRETsession';
    expect(redact(`PUT ${uri} failed`)).toBe('PUT https://storage.googleapis.com/upload/storage/v1/b/b/o?uploadType=resumable&upload_id=*** failed');
  });
});
