/**
 * Issue 13, "Why" 1 and 2: a file rewritten in place or truncated while it uploads fails at once
 * with SOURCE_CHANGED (no retries spent) and nothing is kept, on the MLflow proxy, on s3://,
 * gs:// and wasbs:// roots and on a file: store. What was read is hashed in the same pass.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync, truncateSync, utimesSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { ArtifactUploader } from '../../src/uploader/artifact-uploader.js';
import type { UploadProgressEvent } from '../../src/uploader/progress.js';
import { FAST_RETRY, listRunArtifacts } from '../faults/helpers.js';
import { describeWithServers, mlflowAzureServer, mlflowDirectS3Server, mlflowGcsServer, mlflowServer, servers } from '../support/servers.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { localRun, scratch, serverRun, sha256, writeTree } from './helpers.js';

const SIZE = 24 * 1024 * 1024;

/** Calls `change` once, when the first bytes of `name` have been sent. */
function onFirstBytes(name: string, change: () => void): (event: UploadProgressEvent) => void {
  let done = false;
  return (event) => {
    if (done || event.type !== 'file' || !event.path.endsWith(name) || event.loaded === 0) return;
    done = true;
    change();
  };
}

/**
 * Rewrites a small file in place: same size, new content, and an mtime 5 s ahead (set, so the
 * change shows even when the write lands in the same clock tick as the snapshot).
 */
function rewriteSmall(path: string, size: number): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.alloc(size, 0xee), 0, size, 0);
  closeSync(fd);
  const later = new Date(Date.now() + 5000);
  utimesSync(path, later, later);
}

/** Rewrites the first MiB of a file in place (same size, new content, new mtime). */
function rewriteHead(path: string): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.alloc(1024 * 1024, 0xee), 0, 1024 * 1024, 0);
  closeSync(fd);
}

type Target = 'mlflow' | 's3' | 'gcs' | 'azure' | 'file';

/**
 * An uploader into a fresh run of `target`'s server, and how to list what the run holds.
 * `s3Endpoint` replaces moto's address for the `s3` target (the fault proxy in front of it).
 */
async function uploaderFor(target: Target, onProgress: (event: UploadProgressEvent) => void, { s3Endpoint: endpoint }: { s3Endpoint?: string } = {}) {
  if (target === 'file') {
    const { trackingUri, run, artifactsDir } = await localRun();
    const uploader = new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri, env: {}, onProgress, progressIntervalMs: 0 });
    const stored = async (): Promise<string[]> =>
      readdirSync(artifactsDir, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => join(e.parentPath, e.name).slice(artifactsDir.length + 1));
    return { uploader, stored, artifactsDir };
  }
  if (target === 'gcs') {
    const { url, emulatorHost } = mlflowGcsServer();
    const { runId } = await serverRun(url);
    const uploader = new ArtifactUploader({
      stage: 'training',
      runId,
      trackingUri: url,
      env: { STORAGE_EMULATOR_HOST: emulatorHost },
      retry: FAST_RETRY,
      onProgress,
      progressIntervalMs: 0,
    });
    return { uploader, stored: () => listRunArtifacts(url, runId), artifactsDir: undefined };
  }
  if (target === 'azure') {
    // 24 MiB in the default 8 MiB blocks: the change lands between the first block and the commit.
    const { url, env } = mlflowAzureServer();
    const { runId } = await serverRun(url);
    const uploader = new ArtifactUploader({ stage: 'training', runId, trackingUri: url, env, retry: FAST_RETRY, onProgress, progressIntervalMs: 0 });
    return { uploader, stored: () => listRunArtifacts(url, runId), artifactsDir: undefined };
  }
  const { url, s3Endpoint: moto } = target === 's3' ? mlflowDirectS3Server() : { ...mlflowServer(), s3Endpoint: undefined };
  const s3Endpoint = moto && (endpoint ?? moto);
  const { awsEnv } = servers();
  const { runId } = await serverRun(url);
  const uploader = new ArtifactUploader({
    stage: 'training',
    runId,
    trackingUri: url,
    env: s3Endpoint ? { ...awsEnv, MLFLOW_S3_ENDPOINT_URL: s3Endpoint } : {},
    ...(s3Endpoint ? { s3: { credentials: { accessKeyId: awsEnv.AWS_ACCESS_KEY_ID!, secretAccessKey: awsEnv.AWS_SECRET_ACCESS_KEY! } } } : {}),
    retry: FAST_RETRY,
    onProgress,
    progressIntervalMs: 0,
  });
  return { uploader, stored: () => listRunArtifacts(url, runId), artifactsDir: undefined };
}

describeWithServers('a source file that changes during its upload (issue 13)', () => {
  for (const target of ['mlflow', 's3', 'gcs', 'azure', 'file'] as const) {
    it(`a file rewritten during upload fails with SOURCE_CHANGED and stores nothing (${target})`, async () => {
      const src = writeTree(scratch(), { 'big.bin': Buffer.alloc(SIZE, 1) });
      const path = join(src, 'big.bin');
      const { uploader, stored } = await uploaderFor(target, onFirstBytes('big.bin', () => rewriteHead(path)));
      const result = await uploader.uploadFile(path, { artifactPath: 'd' });
      expect(result.status).toBe('failed');
      expect(result.error).toMatchObject({ code: 'SOURCE_CHANGED', path });
      expect(result.error?.message).toMatch(/rewritten/);
      expect((await stored()).filter((p) => p.includes('big.bin'))).toEqual([]);
    });

    // Files up to 1 MiB are read whole before their request (readSourceIfSmall): the check after
    // the send still sees the change, and what was stored is taken back.
    it(`a small file (read whole up front) rewritten during upload fails with SOURCE_CHANGED and stores nothing (${target})`, async () => {
      const small = 32 * 1024;
      const src = writeTree(scratch(), { 'small.bin': randomBytes(small) });
      const path = join(src, 'small.bin');
      const { uploader, stored } = await uploaderFor(target, onFirstBytes('small.bin', () => rewriteSmall(path, small)));
      const result = await uploader.uploadFile(path, { artifactPath: 'd' });
      expect(result.status).toBe('failed');
      expect(result.error).toMatchObject({ code: 'SOURCE_CHANGED', path, before: { size: small }, after: { size: small } });
      expect(result.files[0]).toMatchObject({ status: 'failed', attempts: 1 });
      expect((await stored()).filter((p) => p.includes('small.bin'))).toEqual([]);
    });

    it(`a file truncated during upload fails at once with SOURCE_CHANGED, no retries spent (${target})`, async () => {
      const src = writeTree(scratch(), { 'big.bin': Buffer.alloc(SIZE, 2) });
      const path = join(src, 'big.bin');
      const { uploader, stored } = await uploaderFor(target, onFirstBytes('big.bin', () => truncateSync(path, 1000)));
      const result = await uploader.uploadFile(path, { artifactPath: 'd' });
      expect(result.status).toBe('failed');
      expect(result.error).toMatchObject({ code: 'SOURCE_CHANGED', path, after: { size: 1000 } });
      expect(result.error?.message).toMatch(/shrank/);
      expect(result.files[0]).toMatchObject({ status: 'failed', attempts: 1 });
      expect((await stored()).filter((p) => p.includes('big.bin'))).toEqual([]);
    });
  }

  it('a file stored while it changed that the store cannot delete again fails, and its error says what is left there', async () => {
    // moto behind the fault proxy, which refuses DeleteObject.
    const proxy = await startFaultProxy(mlflowDirectS3Server().s3Endpoint);
    try {
      proxy.addRule({ match: (r) => r.method === 'DELETE', fault: 'status', status: 403, headers: { 'content-type': 'application/xml' }, body: '<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>' });
      const small = 32 * 1024;
      const src = writeTree(scratch(), { 'kept.bin': randomBytes(small) });
      const path = join(src, 'kept.bin');
      const { uploader, stored } = await uploaderFor('s3', onFirstBytes('kept.bin', () => rewriteSmall(path, small)), { s3Endpoint: proxy.url });
      const result = await uploader.uploadFile(path, { artifactPath: 'd' });
      expect(result.status).toBe('failed');
      expect(result.error).toMatchObject({ code: 'SOURCE_CHANGED', path });
      expect(proxy.requests.filter((r) => r.method === 'DELETE').map((r) => r.status)).toEqual([403]);
      expect(result.error?.message).toMatch(/was rewritten .* the upload failed, but what it stored could not be deleted again and may mix two versions of the file: delete that artifact by hand/);
      expect((result.error?.cause as { code?: string } | undefined)?.code).toBe('AccessDenied');
      // It is still there, as the error says.
      expect(await stored()).toEqual(['d/kept.bin']);
    } finally {
      await proxy.stop();
    }
  });

  it('an unchanged file uploads as before, byte-exact, with the sha256 hashed while it was read in the result (file: store)', async () => {
    const src = writeTree(scratch(), { 'ok.bin': Buffer.alloc(3 * 1024 * 1024, 3) });
    const { uploader, artifactsDir } = await uploaderFor('file', () => undefined);
    const result = await uploader.uploadFile(join(src, 'ok.bin'), { artifactPath: 'd' });
    expect(result.status).toBe('uploaded');
    const expected = sha256(readFileSync(join(src, 'ok.bin')));
    expect(sha256(readFileSync(join(artifactsDir!, 'd', 'ok.bin')))).toBe(expected);
    // Hashed while it was copied, recorded in the result.
    expect(result.files[0]?.sha256).toBe(expected);
  });

  // How each store checks what it stored (UploadedFile.verified), for a file sent in one request
  // and one sent in parts (S3 multipart, Azure blocks, GCS resumable chunks; a single PUT through
  // the MLflow proxy, whose multipart threshold is 500 MiB).
  const expectedVerified: Record<Target, { small: 'checksum' | 'size'; big: 'checksum' | 'size' }> = {
    mlflow: { small: 'size', big: 'size' },
    s3: { small: 'checksum', big: 'checksum' },
    gcs: { small: 'checksum', big: 'size' },
    azure: { small: 'checksum', big: 'checksum' },
    file: { small: 'size', big: 'size' },
  };
  for (const target of ['mlflow', 's3', 'gcs', 'azure', 'file'] as const) {
    const { small: how, big: howBig } = expectedVerified[target];
    it(`every file reports the sha256 of the bytes read and how the store verified it: ${how} in one request, ${howBig} in parts (${target})`, async () => {
      const src = writeTree(scratch(), { 'small.bin': randomBytes(64 * 1024), 'big.bin': randomBytes(SIZE) });
      const { uploader } = await uploaderFor(target, () => undefined);
      const result = await uploader.uploadFiles([join(src, 'small.bin'), join(src, 'big.bin')], { artifactPath: 'v', verify: true });
      expect(result.status).toBe('uploaded');
      const file = (name: string) => result.files.find((f) => f.artifactPath === `v/${name}`);
      expect(file('small.bin')).toMatchObject({ status: 'uploaded', sha256: sha256(readFileSync(join(src, 'small.bin'))), verified: how });
      expect(file('big.bin')).toMatchObject({ status: 'uploaded', sha256: sha256(readFileSync(join(src, 'big.bin'))), verified: howBig });
      expect(file('big.bin')?.multipart).toBe(target !== 'mlflow' && target !== 'file');
      // A store-reported checksum names itself; a size check has none.
      for (const f of result.files) expect(f.checksum === undefined).toBe(f.verified === 'size' || target === 'azure');
      if (target === 's3') expect(file('big.bin')?.checksum).toMatch(/^crc32:[A-Za-z0-9+/]{6}==-3$/);
    });
  }

  it('with verification off, only a store that checks checksums while it uploads says so (s3 verified: checksum, the MLflow proxy nothing)', async () => {
    const src = writeTree(scratch(), { 'a.bin': randomBytes(4096) });
    for (const target of ['s3', 'mlflow'] as const) {
      const { uploader } = await uploaderFor(target, () => undefined);
      const result = await uploader.uploadFile(join(src, 'a.bin'), { artifactPath: 'off', verify: false });
      expect(result.verification?.status).toBe('not-run');
      expect(result.files[0]?.sha256).toBe(sha256(readFileSync(join(src, 'a.bin'))));
      expect(result.files[0]?.verified).toBe(target === 's3' ? 'checksum' : undefined);
    }
  });

  it('a single PUT through the MLflow server records the sha256 of the bytes it streamed', async () => {
    const src = writeTree(scratch(), { 'ok.bin': Buffer.alloc(3 * 1024 * 1024, 4) });
    const { uploader } = await uploaderFor('mlflow', () => undefined);
    const result = await uploader.uploadFile(join(src, 'ok.bin'), { artifactPath: 'd' });
    expect(result.status).toBe('uploaded');
    expect(result.files[0]?.sha256).toBe(sha256(readFileSync(join(src, 'ok.bin'))));
  });
});
