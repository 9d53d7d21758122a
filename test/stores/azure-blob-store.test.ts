/**
 * The wasbs:// and abfss:// stores against Azurite (the Azure Storage emulator) and a real
 * `mlflow server --no-serve-artifacts` whose artifact root is a wasbs:// container on it: what
 * the store writes, the official Python clients (MlflowClient over azure-storage-blob, and
 * azure-storage-blob itself) download byte-exact. Faults come from the fault proxy put in front
 * of Azurite as the Blob endpoint. The block threshold is lowered (1 MiB blocks) so the block
 * tests stay small.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, truncate, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccountSASPermissions, AccountSASResourceTypes, AccountSASServices, BlobServiceClient, generateAccountSASQueryParameters, StorageSharedKeyCredential } from '@azure/storage-blob';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { AbortedError, ConfigError, HttpStatusError, MissingDependencyError, NetworkError, RequestTimeoutError, SourceChangedError } from '../../src/core/errors.js';
import { snapshotFile } from '../../src/core/source-snapshot.js';
import type { Logger } from '../../src/core/logger.js';
import { resolveRetryOptions, type RetryEvent } from '../../src/core/retry.js';
import { HttpClient } from '../../src/core/http.js';
import { ArtifactUploader } from '../../src/uploader/artifact-uploader.js';
import { resolveMlflowConnection } from '../../src/mlflow/connection.js';
import { listArtifactsRecursive, type MultipartResume, type PreviousMultipartUpload, type StoredPart } from '../../src/stores/artifact-store.js';
import { AzureBlobArtifactStore, type AzureBlobArtifactStoreOptions } from '../../src/stores/azure-blob-store.js';
import { blockId, uploadBlockBlob } from '../../src/stores/azure-block-upload.js';
import { sasBlockBlobRequests } from '../../src/stores/azure-sas-blob.js';
import { normalizeAzureConnectionString } from '../../src/stores/azure-config.js';
import { resolveArtifactStore } from '../../src/stores/resolve.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { expectRefusedBeforeAnyRequest, uploadAndListSmallFiles, writeSourceFile } from './small-files-contract.js';
import { pythonArtifactHashes, runPython } from '../support/python.js';
import { describeWithServers, mlflowAzureServer } from '../support/servers.js';
import { recordingLogger, serverRun, sha256 } from '../uploader/helpers.js';

const MiB = 1024 * 1024;

/** The connection string of Azurite's account with its Blob endpoint at `endpoint` (Azurite or a proxy). */
function connectionString(endpoint: string, key = mlflowAzureServer().accountKey): string {
  const { account } = mlflowAzureServer();
  return `DefaultEndpointsProtocol=http;AccountName=${account};AccountKey=${key};BlobEndpoint=${endpoint}/${account};`;
}

/** The 0-based index of the block a `Put Block` request stages (from its base64 `blockid`), or -1. */
function blockIndex(req: { method: string; path: string }): number {
  if (req.method !== 'PUT') return -1;
  const query = new URL(req.path, 'http://x').searchParams;
  if (query.get('comp') !== 'block') return -1;
  // A block id is its index in 4 base-36 digits, then 15 characters of its MD5 (blockId).
  const id = Buffer.from(query.get('blockid') ?? '', 'base64').toString();
  return Number.parseInt(id.slice(0, 4), 36);
}
/** A block id as azure-storage-blob for Python makes it (`_shared/uploads.py`): base64 of a 48-digit decimal. */
const pythonSdkBlockId = (): string => Buffer.from(BigInt(`0x${randomBytes(16).toString('hex')}`).toString().padStart(48, '0')).toString('base64');
/** Resume hooks that continue `previous` and keep what the store records; starting over or dropping it fails the upload. */
function continuing(previous: PreviousMultipartUpload): { resume: MultipartResume; recorded: StoredPart[] } {
  const recorded: StoredPart[] = [];
  const resume: MultipartResume = {
    previous,
    reuse: true,
    started: () => Promise.reject(new Error('a new upload was started')),
    partDone: async (part) => void recorded.push(part),
    aborted: () => Promise.reject(new Error('the recorded upload was dropped')),
    saveToken: async () => undefined,
  };
  return { resume, recorded };
}
const isCommit = (req: { method: string; path: string }) => req.method === 'PUT' && /[?&]comp=blocklist(&|$)/.test(req.path);
const isPutBlob = (req: { method: string; path: string }) => req.method === 'PUT' && !/[?&]comp=/.test(req.path);

const SERVER_BUSY = {
  fault: 'status' as const,
  status: 503,
  headers: { 'content-type': 'application/xml', 'x-ms-error-code': 'ServerBusy' },
  body: '<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>The server is currently unable to receive requests. Please retry your request.</Message></Error>',
};

describeWithServers('wasbs:// and abfss:// artifact stores (Azurite, direct artifact root)', () => {
  let dir: string;
  let big: Buffer;
  let bigPath: string;
  let proxy: FaultProxy;
  let run: { runId: string; artifactUri: string };
  /** Every artifact the run must hold at the end, with its sha256. */
  const expected: Record<string, string> = {};

  /** A store on the shared run, through `endpoint` (Azurite, or the fault proxy in front of it). */
  function storeFor(options: AzureBlobArtifactStoreOptions = {}, endpoint = mlflowAzureServer().blobEndpoint.replace(/\/[^/]+$/, '')): AzureBlobArtifactStore {
    return new AzureBlobArtifactStore(run.artifactUri, {
      connectionString: connectionString(endpoint),
      env: {},
      retry: { maxRetries: 3, backoffFactor: 0.05, backoffJitter: 0 },
      blockSize: MiB,
      concurrency: 2,
      ...options,
    });
  }

  function containerClient() {
    const { blobEndpoint, container } = mlflowAzureServer();
    return BlobServiceClient.fromConnectionString(connectionString(blobEndpoint.replace(/\/[^/]+$/, ''))).getContainerClient(container);
  }

  /** Committed blob names under `prefix`, and whether any uncommitted blob is there too. */
  async function blobsUnder(prefix: string): Promise<{ committed: string[]; uncommitted: string[] }> {
    const committed: string[] = [];
    const uncommitted: string[] = [];
    for await (const item of containerClient().listBlobsFlat({ prefix, includeUncommitedBlobs: true })) {
      const exists = await containerClient().getBlobClient(item.name).exists();
      (exists ? committed : uncommitted).push(item.name);
    }
    return { committed, uncommitted };
  }

  const writeLocal = (relative: string, data: Buffer | string): Promise<string> => writeSourceFile(dir, relative, data);

  const resetProxy = (): void => proxy.reset();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'azure-store-'));
    // Above the 1 MiB block size the block tests use: six blocks, the last one short.
    big = randomBytes(5 * MiB + 12_345);
    bigPath = await writeLocal('big.bin', big);
    proxy = await startFaultProxy(new URL(mlflowAzureServer().blobEndpoint).origin);
    run = await serverRun(mlflowAzureServer().url);
  });

  afterAll(async () => {
    await proxy?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("writes under the run's wasbs:// artifact URI, as MLflow lays blobs out", () => {
    const { container, account } = mlflowAzureServer();
    expect(run.artifactUri).toBe(`wasbs://${container}@${account}.blob.core.windows.net/direct/0/${run.runId}/artifacts`);
    const store = storeFor();
    expect(store.kind).toBe('azure-blob');
    expect(store.artifactUri).toBe(run.artifactUri);
    expect([store.location.container, store.location.rootPath]).toEqual([container, `direct/0/${run.runId}/artifacts`]);
    expect(store.describe()).toMatch(/^Azure Blob wasbs:\/\/.*\/artifacts via the endpoint of the connectionString option .*Put Blob per file up to 1 MiB, blocks of 1 MiB above, 2 at a time$/);
    expect(store.describe()).not.toContain(mlflowAzureServer().accountKey);
  });

  it('uploads 0 B, 1 KiB and a directory with odd names as single Put Blobs, and lists them', async () => {
    resetProxy();
    const store = storeFor({}, proxy.url);
    Object.assign(expected, await uploadAndListSmallFiles(store, writeLocal, (data) => ({ bytes: data.length, attempts: 1, multipart: false, sha256: sha256(data), verified: 'checksum' })));
    expect(proxy.requests.filter(isPutBlob)).toHaveLength(6);
    expect(proxy.requests.filter((r) => blockIndex(r) >= 0 || isCommit(r))).toEqual([]);
    // Content-Type from the extension (the guessed MIME type), as browsers of the container expect.
    const props = await containerClient().getBlobClient(`${store.location.rootPath}/small/ckpt/step 100/config.json`).getProperties();
    expect(props.contentType).toBe('application/json');
    expect(Buffer.from(props.contentMD5 ?? new Uint8Array()).toString('hex')).toBe(createHash('md5').update('{"a": 1}').digest('hex'));
  });

  it('continues a block upload that an earlier version recorded (prefix block ids) under its own ids, and sends only the blocks Azure lacks', async () => {
    resetProxy();
    const store = storeFor({}, proxy.url);
    const blob = containerClient().getBlockBlobClient(`${store.location.rootPath}/resume/big-v1.bin`);
    const prefix = '0123456789ab';
    const prefixId = (i: number) => Buffer.from(`${prefix}-${String(i).padStart(6, '0')}`).toString('base64');
    // What the earlier version staged before it was killed: blocks 0 and 1, recorded with their
    // MD5 as it wrote them (what a kept block is checked by against the file: a prefix id says
    // nothing of its bytes); and block 2, recorded without one, which is sent again.
    for (const i of [0, 1, 2]) await blob.stageBlock(prefixId(i), big.subarray(i * MiB, (i + 1) * MiB), MiB);
    const md5 = (i: number) => `md5:${createHash('md5').update(big.subarray(i * MiB, (i + 1) * MiB)).digest('base64')}`;
    const { resume, recorded } = continuing({
      uploadId: prefix,
      partSize: MiB,
      parts: [0, 1, 2].map((i) => ({ partNumber: i + 1, size: MiB, etag: prefixId(i), ...(i < 2 ? { checksum: md5(i) } : {}) })),
    });
    const result = await store.uploadFile(bigPath, 'resume/big-v1.bin', { resume });
    expected['resume/big-v1.bin'] = sha256(big);
    expect(result).toMatchObject({ bytes: big.length, multipart: true, sha256: sha256(big), bytesReused: 2 * MiB });
    const staged = proxy.requests.filter((r) => r.method === 'PUT' && new URL(r.path, 'http://x').searchParams.get('comp') === 'block');
    expect(staged.map((r) => new URL(r.path, 'http://x').searchParams.get('blockid')).sort()).toEqual([2, 3, 4, 5].map(prefixId));
    expect(recorded.map((p) => p.etag).sort()).toEqual([2, 3, 4, 5].map(prefixId));
    expect(sha256(await blob.downloadToBuffer())).toBe(sha256(big));
  });

  // How azure-storage-blob for Python names a block (encode_base64(f"{uuid4().int:048d}"), 48
  // bytes), and MLflow's proxied multipart on Azure (`mlflow_block_{i}`, 14 bytes below 10
  // parts: mlflow/store/artifact/azure_blob_artifact_repo.py).
  it.each([
    ['azure-storage-blob for Python', 48, pythonSdkBlockId()],
    ["MLflow's proxied multipart", 14, Buffer.from('mlflow_block_1').toString('base64')],
  ])("%s left uncommitted blocks with %i-byte ids: Azure refuses ours (InvalidBlobOrBlock), so they go again under ids of that length, and the commit drops the other blocks", async (tool, length, foreignId) => {
    resetProxy();
    const store = storeFor({}, proxy.url);
    const name = `resume/foreign-${length}.bin`;
    const blob = containerClient().getBlockBlobClient(`${store.location.rootPath}/${name}`);
    await blob.stageBlock(foreignId, Buffer.from('x'), 1);
    const result = await store.uploadFile(bigPath, name);
    expected[name] = sha256(big);
    expect(result).toMatchObject({ bytes: big.length, multipart: true, sha256: sha256(big) });
    const staged = proxy.requests.filter((r) => blockIndex(r) >= 0);
    const idLength = (r: { path: string }) => Buffer.from(new URL(r.path, 'http://x').searchParams.get('blockid') ?? '', 'base64').length;
    // The first attempt: at most one block per worker, under 19-byte ids, refused at once (400,
    // not retried) or cut off by that refusal. Then all six at that length, accepted.
    const first = staged.filter((r) => idLength(r) === 19);
    expect(first.length).toBeLessThanOrEqual(2);
    expect(first.some((r) => r.status === 400)).toBe(true);
    expect(first.every((r) => r.status === 400 || r.status === undefined), JSON.stringify(staged)).toBe(true);
    const accepted = staged.filter((r) => idLength(r) === length);
    expect(accepted.map(blockIndex).sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(accepted.every((r) => r.status === 201), tool).toBe(true);
    expect(staged).toHaveLength(first.length + 6);
    expect(proxy.requests.filter(isCommit).map((r) => r.status)).toEqual([201]);
    expect(sha256(await blob.downloadToBuffer())).toBe(sha256(big));
    expect((await blob.getBlockList('all')).uncommittedBlocks ?? []).toEqual([]);
  });

  it('continues an upload whose ids were padded to another tool\'s: keeps the recorded block and the unrecorded one Azure holds, sends the rest at that length', async () => {
    resetProxy();
    const store = storeFor({}, proxy.url);
    const blob = containerClient().getBlockBlobClient(`${store.location.rootPath}/resume/padded.bin`);
    const foreignId = pythonSdkBlockId();
    await blob.stageBlock(foreignId, Buffer.from('x'), 1);
    // The earlier attempt: blocks 0 and 1 staged under 48-byte ids; only block 0's answer recorded.
    const block = (i: number) => big.subarray(i * MiB, (i + 1) * MiB);
    const padded = (i: number) => blockId(i, createHash('md5').update(block(i)).digest(), 48);
    for (const i of [0, 1]) await blob.stageBlock(padded(i), block(i), MiB);
    const { resume, recorded } = continuing({ uploadId: 'md5-0123456789ab', partSize: MiB, parts: [{ partNumber: 1, size: MiB, etag: padded(0) }] });
    const result = await store.uploadFile(bigPath, 'resume/padded.bin', { resume });
    expected['resume/padded.bin'] = sha256(big);
    expect(result).toMatchObject({ bytes: big.length, multipart: true, sha256: sha256(big), bytesReused: 2 * MiB });
    const staged = proxy.requests.filter((r) => blockIndex(r) >= 0);
    expect(staged.map(blockIndex).sort()).toEqual([2, 3, 4, 5]);
    expect(staged.every((r) => r.status === 201 && Buffer.from(new URL(r.path, 'http://x').searchParams.get('blockid') ?? '', 'base64').length === 48)).toBe(true);
    expect(recorded.map((p) => p.partNumber).sort()).toEqual([2, 3, 4, 5, 6]);
    expect(sha256(await blob.downloadToBuffer())).toBe(sha256(big));
  });

  it('starts a resumed block upload over, with a warning, when the blob\'s blocks cannot be listed (a SAS without r)', async () => {
    resetProxy();
    const logger = recordingLogger();
    const store = storeFor({ logger }, proxy.url);
    const name = 'resume/unlisted.bin';
    const blob = containerClient().getBlockBlobClient(`${store.location.rootPath}/${name}`);
    // The earlier attempt staged and recorded block 0.
    const block0 = big.subarray(0, MiB);
    const id0 = blockId(0, createHash('md5').update(block0).digest(), 19);
    await blob.stageBlock(id0, block0, MiB);
    const isGetBlockList = (r: { method: string; path: string }) => r.method === 'GET' && /[?&]comp=blocklist(&|$)/.test(r.path);
    proxy.addRule({
      match: isGetBlockList,
      fault: 'status',
      status: 403,
      headers: { 'content-type': 'application/xml', 'x-ms-error-code': 'AuthorizationPermissionMismatch' },
      body: '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationPermissionMismatch</Code><Message>This request is not authorized to perform this operation using this permission.</Message></Error>',
    });
    const events: string[] = [];
    const resume: MultipartResume = {
      previous: { uploadId: 'md5-0123456789ab', partSize: MiB, parts: [{ partNumber: 1, size: MiB, etag: id0 }] },
      reuse: true,
      started: async (uploadId) => void events.push(`started ${uploadId}`),
      partDone: async () => undefined,
      aborted: async (uploadId) => void events.push(`aborted ${uploadId}`),
      saveToken: async () => undefined,
    };

    const result = await store.uploadFile(bigPath, name, { resume });
    expected[name] = sha256(big);
    expect(result).toMatchObject({ bytes: big.length, multipart: true, sha256: sha256(big) });
    expect(result.bytesReused ?? 0).toBe(0);
    // Refused once (not retried); the record dropped, a new upload recorded, every block sent.
    expect(proxy.requests.filter(isGetBlockList).map((r) => r.status)).toEqual([403]);
    expect(events[0]).toBe('aborted md5-0123456789ab');
    expect(events[1]).toMatch(/^started md5-/);
    expect(proxy.requests.filter((r) => blockIndex(r) >= 0).map(blockIndex).sort()).toEqual([0, 1, 2, 3, 4, 5]);
    const warnings = logger.lines.filter(([level]) => level === 'warn').map(([, m]) => m);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/Could not list the blocks the earlier attempt staged for .*resume\/unlisted\.bin, so the file starts over\. Continuing an upload needs read access to the blob \(a SAS's r permission\)/);
    expect(warnings[0]).not.toContain(mlflowAzureServer().accountKey);
    expect(sha256(await blob.downloadToBuffer())).toBe(sha256(big));
  });

  it("another tool's uncommitted blocks with ids shorter than 12 bytes: refused (InvalidBlobOrBlock) at the first block, not retried, with a hint", async () => {
    resetProxy();
    const store = storeFor({}, proxy.url);
    // azure-storage-blob for Python names blocks with 9 random bytes when it streams sub-blocks.
    await containerClient().getBlockBlobClient(`${store.location.rootPath}/resume/short-ids.bin`).stageBlock(randomBytes(9).toString('base64'), Buffer.from('x'), 1);
    const error = (await store.uploadFile(bigPath, 'resume/short-ids.bin').catch((e: unknown) => e)) as HttpStatusError;
    expect(error).toBeInstanceOf(HttpStatusError);
    expect([error.status, error.code]).toEqual([400, 'InvalidBlobOrBlock']);
    expect(error.hint).toMatch(/uncommitted blocks that another upload of this blob left, whose ids are shorter than the 12 bytes/);
    // One attempt per block sent (two at a time), Get Block List, no commit.
    const staged = proxy.requests.filter((r) => blockIndex(r) >= 0);
    expect(staged.length).toBeLessThanOrEqual(2);
    expect(new Set(staged.map(blockIndex)).size).toBe(staged.length);
    expect(proxy.requests.filter((r) => r.method === 'GET' && /[?&]comp=blocklist(&|$)/.test(r.path))).toHaveLength(1);
    expect(proxy.requests.filter(isCommit)).toEqual([]);
    expect((await blobsUnder(`${store.location.rootPath}/resume/short-ids.bin`)).committed).toEqual([]);
  });

  it('a blob name holding 100,000 uncommitted blocks (409 BlockCountExceedsLimit, which Azurite cannot produce): refused at the first block, not retried, with a hint that says how to discard them', async () => {
    resetProxy();
    const code = 'BlockCountExceedsLimit';
    // Azure's answer to a Put Block beyond the limit of uncommitted blocks per blob.
    proxy.addRule({
      match: (r) => blockIndex(r) >= 0,
      fault: 'status',
      status: 409,
      headers: { 'content-type': 'application/xml', 'x-ms-error-code': code },
      body: `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>The uncommitted block count cannot exceed the maximum limit of 100,000 blocks.\nRequestId:0f0e\nTime:2026-12-07T07:00:00.0000000Z</Message></Error>`,
    });
    const store = storeFor({}, proxy.url);
    const retries: RetryEvent[] = [];
    const error = (await store.uploadFile(bigPath, 'resume/too-many-blocks.bin', { onRetry: (e) => retries.push(e) }).catch((e: unknown) => e)) as HttpStatusError;
    expect(error).toBeInstanceOf(HttpStatusError);
    expect([error.status, error.code]).toEqual([409, code]);
    expect(error.hint).toMatch(/^Azure holds 100,000 uncommitted blocks for this blob, its limit: blocks staged by uploads of it that never committed/);
    expect(error.hint).toContain(`az storage blob upload --container-name ${store.location.container} --name <name> --file <an empty file> --overwrite`);
    expect(retries).toEqual([]);
    // One attempt per block sent (two at a time), no commit, no blob.
    const staged = proxy.requests.filter((r) => blockIndex(r) >= 0);
    expect(staged.length).toBeLessThanOrEqual(2);
    expect(new Set(staged.map(blockIndex)).size).toBe(staged.length);
    expect(proxy.requests.filter(isCommit)).toEqual([]);
    expect(await storeFor().list('resume/too-many-blocks.bin')).toEqual([]);
  });

  it('uploads a file above the block threshold in blocks, two at a time, and commits them once', async () => {
    resetProxy();
    const progress: number[] = [];
    const result = await storeFor({}, proxy.url).uploadFile(bigPath, 'model/big.bin', { onProgress: (n) => progress.push(n) });
    expected['model/big.bin'] = sha256(big);
    expect(result).toEqual({ bytes: big.length, attempts: 1, multipart: true, sha256: sha256(big), verified: 'checksum' });
    const blocks = proxy.requests.filter((r) => blockIndex(r) >= 0);
    expect(blocks.map(blockIndex).sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(blocks.every((r) => r.status === 201)).toBe(true);
    expect(proxy.requests.filter(isCommit).map((r) => r.status)).toEqual([201]);
    expect(proxy.requests.filter(isPutBlob)).toEqual([]);
    expect(progress.at(-1)).toBe(big.length);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    const blockList = await containerClient().getBlockBlobClient(`${storeFor().location.rootPath}/model/big.bin`).getBlockList('committed');
    expect(blockList.committedBlocks?.map((b) => b.size)).toEqual([MiB, MiB, MiB, MiB, MiB, 12_345]);
  });

  it('retries a block that failed with 503 ServerBusy twice on its own; the other blocks go once', async () => {
    resetProxy();
    proxy.addRule({ match: (r) => blockIndex(r) === 2, times: 2, ...SERVER_BUSY });
    const retries: RetryEvent[] = [];
    const result = await storeFor({}, proxy.url).uploadFile(bigPath, 'model/retried.bin', { onRetry: (e) => retries.push(e) });
    expected['model/retried.bin'] = sha256(big);
    expect(result).toEqual({ bytes: big.length, attempts: 3, multipart: true, sha256: sha256(big), verified: 'checksum' });
    const statuses = (n: number) => proxy.requests.filter((r) => blockIndex(r) === n).map((r) => r.status);
    expect(statuses(2)).toEqual([503, 503, 201]);
    for (const n of [0, 1, 3, 4, 5]) expect(statuses(n), `block ${n}`).toEqual([201]);
    expect(proxy.requests.filter(isCommit)).toHaveLength(1);
    expect(retries.map((e) => e.attempt)).toEqual([1, 2]);
    expect(retries.map((e) => (e.error as { code?: string }).code)).toEqual(['ServerBusy', 'ServerBusy']);
  });

  it('retries a dropped connection and a 500 on a single Put Blob', async () => {
    resetProxy();
    proxy.addRule({ match: isPutBlob, times: 1, fault: 'drop' });
    proxy.addRule({ match: isPutBlob, times: 1, fault: 'status', status: 500, headers: { 'x-ms-error-code': 'InternalError' }, body: '' });
    const data = randomBytes(4096);
    const local = await writeLocal('flaky/one.bin', data);
    const result = await storeFor({}, proxy.url).uploadFile(local, 'flaky/one.bin');
    expected['flaky/one.bin'] = sha256(data);
    expect(result).toEqual({ bytes: data.length, attempts: 3, multipart: false, sha256: sha256(data), verified: 'checksum' });
    expect(proxy.requests.filter(isPutBlob).map((r) => r.fault ?? r.status)).toEqual(['drop', 'status', 201]);
  });

  it('an abort stops the blocks and commits nothing: no blob appears', async () => {
    resetProxy();
    // Block 1 hangs; block 0 goes through, so staged blocks exist when we abort.
    proxy.addRule({ match: (r) => blockIndex(r) === 1, fault: 'stall', stallMs: 30_000 });
    const controller = new AbortController();
    const pending = storeFor({}, proxy.url).uploadFile(bigPath, 'aborted/big.bin', { signal: controller.signal });
    await vi.waitFor(() => expect(proxy.requests.some((r) => blockIndex(r) === 1)).toBe(true), { timeout: 20_000, interval: 20 });
    await vi.waitFor(() => expect(proxy.requests.some((r) => blockIndex(r) === 0 && r.status === 201)).toBe(true), { timeout: 20_000, interval: 20 });
    controller.abort(new Error('user pressed ctrl-c'));
    const error = await pending.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AbortedError);
    expect((error as AbortedError).message).toMatch(/aborted; no blob was committed/);
    expect(proxy.requests.filter(isCommit)).toEqual([]);
    expect(await storeFor().list('aborted')).toEqual([]);
    const { committed } = await blobsUnder(`${storeFor().location.rootPath}/aborted/`);
    expect(committed).toEqual([]);
  });

  it('a source that changed since its snapshot is SOURCE_CHANGED: blocks are staged but never committed', async () => {
    resetProxy();
    const local = await writeLocal('changed/blocks.bin', randomBytes(3 * MiB));
    const snapshot = await snapshotFile(local);
    await utimes(local, new Date(), new Date(Date.now() + 5000)); // rewritten in place: same size, new mtime
    const error = await storeFor({}, proxy.url)
      .uploadFile(local, 'changed/blocks.bin', { snapshot })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceChangedError);
    expect(error).toMatchObject({ code: 'SOURCE_CHANGED', path: local, before: { size: 3 * MiB } });
    expect(proxy.requests.filter((r) => blockIndex(r) >= 0).map((r) => r.status)).toEqual([201, 201, 201]);
    expect(proxy.requests.filter(isCommit)).toEqual([]);
    expect(await storeFor().list('changed')).toEqual([]);
    expect((await blobsUnder(`${storeFor().location.rootPath}/changed/`)).committed).toEqual([]);
  });

  it('a source that changed during a single Put Blob is SOURCE_CHANGED and the blob is deleted again', async () => {
    resetProxy();
    const local = await writeLocal('changed/single.bin', randomBytes(4096));
    const snapshot = await snapshotFile(local);
    await truncate(local, 100);
    const error = await storeFor({}, proxy.url)
      .uploadFile(local, 'changed/single.bin', { snapshot })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'SOURCE_CHANGED', path: local, before: { size: 4096 }, after: { size: 100 } });
    // The file was read after it shrank, so the Put Blob went out (100 bytes) and was taken back.
    expect(proxy.requests.filter(isPutBlob).map((r) => r.status)).toEqual([201]);
    expect(proxy.requests.filter((r) => r.method === 'DELETE').map((r) => r.status)).toEqual([202]);
    expect(await storeFor().list('changed')).toEqual([]);
  });

  it('a changed single Put Blob whose delete is refused says the blob is left stored, with the refusal as its cause', async () => {
    resetProxy();
    proxy.addRule({ match: (r) => r.method === 'DELETE', times: 1, fault: 'status', status: 403, headers: { 'x-ms-error-code': 'AuthorizationPermissionMismatch' }, body: '' });
    const local = await writeLocal('changed/refused.bin', randomBytes(4096));
    const snapshot = await snapshotFile(local);
    await truncate(local, 100);
    const error = await storeFor({}, proxy.url)
      .uploadFile(local, 'changed/refused.bin', { snapshot })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceChangedError);
    expect(error).toMatchObject({ code: 'SOURCE_CHANGED', path: local });
    expect((error as SourceChangedError).message).toContain('could not be deleted again and may mix two versions of the file');
    expect((error as SourceChangedError).cause).toMatchObject({ statusCode: 403 });
    expect(proxy.requests.filter((r) => r.method === 'DELETE').map((r) => r.fault ?? r.status)).toEqual(['status']);
    // It is there, as the error says: the caller can find and delete it.
    expect((await storeFor().list('changed')).map((f) => f.path)).toContain('changed/refused.bin');
    await storeFor().delete('changed/refused.bin');
  });

  it('delete() removes one blob, retries a 503 on its own, and a blob that is not there is no error', async () => {
    resetProxy();
    const local = await writeLocal('deleted/one.bin', randomBytes(1000));
    const store = storeFor({}, proxy.url);
    await store.uploadFile(local, 'deleted/one.bin');
    await store.uploadFile(local, 'deleted/kept.bin');
    expected['deleted/kept.bin'] = sha256(await readFile(local));
    proxy.addRule({ match: (r) => r.method === 'DELETE', times: 1, ...SERVER_BUSY });
    await store.delete('deleted/one.bin');
    expect(proxy.requests.filter((r) => r.method === 'DELETE').map((r) => r.status)).toEqual([503, 202]);
    expect((await store.list('deleted')).map((e) => e.path)).toEqual(['deleted/kept.bin']);
    await expect(store.delete('deleted/one.bin')).resolves.toBeUndefined();
    await expect(store.delete('a#b.bin')).rejects.toMatchObject({ code: 'INVALID_ARTIFACT_PATH' });
  });

  it('a block that keeps failing fails the file with a typed error after its retries, and commits nothing', async () => {
    resetProxy();
    proxy.addRule({ match: (r) => blockIndex(r) === 4, fault: 'status', status: 500, headers: { 'x-ms-error-code': 'InternalError' }, body: '' });
    const error = (await storeFor({ retry: { maxRetries: 1, backoffFactor: 0, backoffJitter: 0 } }, proxy.url)
      .uploadFile(bigPath, 'failed/big.bin')
      .catch((e: unknown) => e)) as HttpStatusError;
    expect(error).toBeInstanceOf(HttpStatusError);
    expect([error.status, error.code, error.method]).toEqual([500, 'InternalError', 'PUT']);
    expect(error.url).toBe(`${run.artifactUri}/failed/big.bin`);
    expect(error.hint).toMatch(/retried 1 time/);
    expect(proxy.requests.filter((r) => blockIndex(r) === 4)).toHaveLength(2);
    expect(proxy.requests.filter(isCommit)).toEqual([]);
    expect(await storeFor().list('failed')).toEqual([]);
  });

  it('a request that takes longer than MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT is cut off and retried', async () => {
    resetProxy();
    proxy.addRule({ match: isPutBlob, times: 1, fault: 'stall', stallMs: 10_000 });
    const data = Buffer.from('slow then fine');
    const local = await writeLocal('slow/one.txt', data);
    // The retry goes to Azurite and must beat the timeout: 0.5 s was within reach of a loaded machine.
    const store = storeFor({ env: { MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT: '2' } }, proxy.url);
    const retries: RetryEvent[] = [];
    const result = await store.uploadFile(local, 'slow/one.txt', { onRetry: (e) => retries.push(e) });
    expected['slow/one.txt'] = sha256(data);
    expect(result.attempts).toBe(2);
    expect(retries[0]?.error).toBeInstanceOf(RequestTimeoutError);
    expect((retries[0]?.error as RequestTimeoutError).timeoutMs).toBe(2000);

    resetProxy();
    proxy.addRule({ match: isPutBlob, fault: 'stall', stallMs: 10_000 });
    const stalled = await storeFor({ requestTimeoutSeconds: 0.3, retry: { maxRetries: 0 } }, proxy.url)
      .uploadFile(local, 'slow/never.txt')
      .catch((e: unknown) => e);
    expect(stalled).toBeInstanceOf(RequestTimeoutError);
    expect((stalled as RequestTimeoutError).hint).toMatch(/MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT/);

    // retry.totalTimeoutMs bounds the whole file: the stalled block is cut off and nothing is committed.
    resetProxy();
    proxy.addRule({ match: (r) => blockIndex(r) === 3, fault: 'stall', stallMs: 10_000 });
    const late = await storeFor({ retry: { maxRetries: 3, totalTimeoutMs: 800 } }, proxy.url)
      .uploadFile(bigPath, 'slow/big.bin')
      .catch((e: unknown) => e);
    expect(late).toBeInstanceOf(AbortedError);
    expect((late as AbortedError).message).toMatch(/did not finish within retry\.totalTimeoutMs \(800 ms\); no blob was committed/);
    expect(proxy.requests.filter(isCommit)).toEqual([]);
    expect((await storeFor().list('slow')).map((e) => e.path)).toEqual(['slow/one.txt']);
    resetProxy();
  });

  it('MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT past what a timer holds (3000000 s, "no timeout") lets requests finish, not cut them off after 1 ms', async () => {
    resetProxy();
    const data = Buffer.from('with a huge request timeout');
    const local = await writeLocal('slow/huge-timeout.txt', data);
    // No retry: before, every request (the Put Blob, each block) was cut off at once.
    const store = storeFor({ env: { MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT: '3000000' }, retry: { maxRetries: 0 } }, proxy.url);
    await expect(store.uploadFile(local, 'slow/huge-timeout.txt')).resolves.toMatchObject({ bytes: data.length, attempts: 1 });
    await expect(store.uploadFile(bigPath, 'slow/huge-timeout.bin')).resolves.toMatchObject({ bytes: big.length, attempts: 1, multipart: true });
    expected['slow/huge-timeout.txt'] = sha256(data);
    expected['slow/huge-timeout.bin'] = sha256(big);
    expect(proxy.requests.map((r) => r.status)).toEqual([201, ...Array.from({ length: 6 }, () => 201), 201]);
    expect((await storeFor().list('slow')).filter((e) => e.path.includes('huge')).map((e) => [e.path, e.size])).toEqual([
      ['slow/huge-timeout.bin', big.length],
      ['slow/huge-timeout.txt', data.length],
    ]);
  });

  it('a block that stalls is cut off after MLFLOW_HTTP_REQUEST_TIMEOUT without progress, not the 600 s request timeout, and retried: the blob is whole', async () => {
    resetProxy();
    // Held unanswered until the client gives up: the SDK's request waited out the whole
    // MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT (600 s here, the default) for it.
    proxy.addRule({ match: (r) => blockIndex(r) === 2, times: 1, fault: 'hold' });
    const retries: RetryEvent[] = [];
    // 2 s of no progress (MLFLOW_HTTP_REQUEST_TIMEOUT's option): within reach of the other blocks' answers on a loaded machine.
    const store = storeFor({ retry: { maxRetries: 3, backoffFactor: 0, backoffJitter: 0, timeoutMs: 2000 } }, proxy.url);
    const result = await store.uploadFile(bigPath, 'slow/stalled-block.bin', { onRetry: (e) => retries.push(e) });
    expected['slow/stalled-block.bin'] = sha256(big);
    expect(result).toMatchObject({ bytes: big.length, multipart: true, sha256: sha256(big) });
    const stalled = retries.map((e) => e.error).filter((e): e is RequestTimeoutError => e instanceof RequestTimeoutError);
    expect(stalled.map((e) => [e.timeoutMs, e.method, e.url])).toContainEqual([2000, 'PUT', `${run.artifactUri}/slow/stalled-block.bin`]);
    expect(stalled[0]?.hint).toMatch(/MLFLOW_HTTP_REQUEST_TIMEOUT/);
    expect(proxy.requests.filter((r) => blockIndex(r) === 2).length).toBeGreaterThanOrEqual(2);
    const stored = await containerClient().getBlobClient(`${store.location.rootPath}/slow/stalled-block.bin`).downloadToBuffer();
    expect(sha256(stored)).toBe(sha256(big));
    resetProxy();
  });

  it('refusals fail at the first request with a typed error and a hint: bad key, missing container, never a secret', async () => {
    const lines: string[] = [];
    const log = (m: string, f?: Record<string, unknown>) => void lines.push(m + JSON.stringify(f ?? {}));
    const logger: Logger = { debug: log, info: log, warn: log, error: log };
    const local = await writeLocal('denied.txt', 'x');

    // What Azure itself answers a wrong key with (Azurite says AuthorizationFailure instead, below).
    resetProxy();
    proxy.addRule({
      fault: 'status',
      status: 403,
      headers: { 'content-type': 'application/xml', 'x-ms-error-code': 'AuthenticationFailed' },
      body: '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.\nRequestId:0f0e\nTime:2026-12-04T20:00:00.0000000Z</Message><AuthenticationErrorDetail>The MAC signature found in the HTTP request is not the same as any computed signature.</AuthenticationErrorDetail></Error>',
    });
    const denied = (await storeFor({ logger }, proxy.url).uploadFile(local, 'denied/denied.txt').catch((e: unknown) => e)) as HttpStatusError;
    expect(denied).toBeInstanceOf(HttpStatusError);
    expect([denied.status, denied.code, denied.url]).toEqual([403, 'AuthenticationFailed', `${run.artifactUri}/denied/denied.txt`]);
    expect(denied.message).toMatch(/Azure Put Blob of wasbs:\/\/.*\/denied\/denied\.txt failed: 403 AuthenticationFailed: Server failed to authenticate the request\./);
    expect(denied.hint).toMatch(/refused the credentials from the connectionString option/);
    expect(proxy.requests).toHaveLength(1);

    resetProxy();
    const wrongKey = Buffer.from('not the key of this account, but base64 all the same').toString('base64');
    const badKey = new AzureBlobArtifactStore(run.artifactUri, { connectionString: connectionString(proxy.url, wrongKey), env: {}, logger, blockSize: MiB, concurrency: 2 });
    const wrong = (await badKey.uploadFile(bigPath, 'denied/big.bin').catch((e: unknown) => e)) as HttpStatusError;
    expect(wrong).toBeInstanceOf(HttpStatusError);
    expect([wrong.status, wrong.code]).toEqual([403, 'AuthorizationFailure']);
    expect(wrong.hint).toMatch(/credentials from the connectionString option: check the account key/);
    // The first refusal ends the file: the block sent alongside it is the only other request,
    // nothing is retried, and nothing is still on its way once uploadFile has returned.
    const seen = proxy.requests.length;
    expect(seen).toBeLessThanOrEqual(2);
    expect(proxy.requests.filter((r) => blockIndex(r) >= 2 || isCommit(r))).toEqual([]);
    await new Promise((r) => setTimeout(r, 300));
    expect(proxy.requests).toHaveLength(seen);
    resetProxy();
    await expect(badKey.list()).rejects.toMatchObject({ status: 403, code: 'AuthorizationFailure' });
    expect(proxy.requests).toHaveLength(1);

    resetProxy();
    const { account } = mlflowAzureServer();
    const noContainer = new AzureBlobArtifactStore(`wasbs://no-such-container@${account}.blob.core.windows.net/x`, {
      connectionString: connectionString(proxy.url),
      env: {},
      logger,
    });
    const missing = (await noContainer.uploadFile(local, 'a.txt').catch((e: unknown) => e)) as HttpStatusError;
    expect(missing).toBeInstanceOf(HttpStatusError);
    expect([missing.status, missing.code]).toEqual([404, 'ContainerNotFound']);
    expect(missing.hint).toMatch(/Create the container "no-such-container".*MLflow never creates it/);
    expect(proxy.requests).toHaveLength(1);

    const malformed = await new AzureBlobArtifactStore(run.artifactUri, { connectionString: 'AccountKey=sekrit-Q9x7;nonsense', env: {} })
      .uploadFile(local, 'a.txt')
      .catch((e: unknown) => e);
    expect(malformed).toBeInstanceOf(ConfigError);
    expect((malformed as ConfigError).message).toMatch(/not a valid Azure Storage connection string/);

    for (const text of [JSON.stringify(denied.toJSON()), JSON.stringify(wrong.toJSON()), denied.message, wrong.message, missing.message, (malformed as Error).message, ...lines]) {
      expect(text).not.toContain(wrongKey);
      expect(text).not.toContain(mlflowAzureServer().accountKey);
      expect(text).not.toContain('sekrit-Q9x7');
    }

    resetProxy();
    const unreachable = await storeFor({ retry: { maxRetries: 0 } }, 'http://127.0.0.1:1').uploadFile(local, 'x.txt').catch((e: unknown) => e);
    expect(unreachable).toBeInstanceOf(NetworkError);
    expect((unreachable as NetworkError).hint).toMatch(/reachable/);
  });

  it('a blob another client holds a lease on is refused at the first request, not retried, with a hint that names the lease; it keeps its bytes', async () => {
    const root = storeFor().location.rootPath;
    const theirs = { 'leased/small.txt': Buffer.from("the leaseholder's bytes"), 'leased/big.bin': randomBytes(100) };
    const blobs = Object.entries(theirs).map(([path, data]) => ({ path, data, blob: containerClient().getBlockBlobClient(`${root}/${path}`) }));
    for (const { data, blob } of blobs) await blob.upload(data, data.length);
    const leases = blobs.map(({ blob }) => blob.getBlobLeaseClient());
    for (const lease of leases) await lease.acquireLease(-1);
    try {
      // One Put Blob, and blocks (the file is above the 1 MiB block size).
      const small = await writeLocal('leased/small.txt', 'ours');
      for (const [local, artifactPath, operation] of [[small, 'leased/small.txt', 'Put Blob'], [bigPath, 'leased/big.bin', 'block upload']] as const) {
        resetProxy();
        const retries: RetryEvent[] = [];
        const error = await storeFor({}, proxy.url)
          .uploadFile(local, artifactPath, { onRetry: (e) => retries.push(e) })
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(HttpStatusError);
        expect(error).toMatchObject({ status: 412, code: 'LeaseIdMissing', message: expect.stringContaining(`Azure ${operation} of ${run.artifactUri}/${artifactPath} failed: 412 LeaseIdMissing`) });
        expect((error as HttpStatusError).hint).toMatch(/^Another client holds a lease on this blob.*az storage blob lease break --container-name /);
        expect((error as HttpStatusError).hint).toContain(`--container-name ${mlflowAzureServer().container} `);
        expect(retries).toEqual([]);
        expect(proxy.requests.filter(isCommit)).toEqual([]);
      }
    } finally {
      for (const lease of leases) await lease.releaseLease();
    }
    for (const { path, data, blob } of blobs) {
      expect(await blob.downloadToBuffer()).toEqual(data);
      expected[path] = sha256(data);
    }
  });

  it("a workspace's SAS URL (azure-sas-blob.ts, the azureml:// store's requests) onto a leased or an archived blob gets the store's hint, not none", async () => {
    // Azurite answers as Azure does; the SAS requests had hints for MD5s and block lists only.
    const root = storeFor().location.rootPath;
    const { account, accountKey } = mlflowAzureServer();
    const leased = containerClient().getBlockBlobClient(`${root}/sas/leased.bin`);
    const archived = containerClient().getBlockBlobClient(`${root}/sas/archived.bin`);
    await leased.upload(Buffer.from('leased'), 6);
    await archived.upload(Buffer.from('archived'), 8);
    await archived.setAccessTier('Archive');
    const lease = leased.getBlobLeaseClient();
    await lease.acquireLease(-1);
    const sas = generateAccountSASQueryParameters(
      { services: AccountSASServices.parse('b').toString(), resourceTypes: AccountSASResourceTypes.parse('o').toString(), permissions: AccountSASPermissions.parse('rcw'), expiresOn: new Date(Date.now() + 3_600_000) },
      new StorageSharedKeyCredential(account, accountKey),
    ).toString();
    const http = new HttpClient({ retry: resolveRetryOptions({ maxRetries: 3, backoffFactor: 0.01, backoffJitter: 0 }, {}) });
    const settings = { blockSize: MiB, maxSinglePutSize: MiB, concurrency: 2, retry: resolveRetryOptions({ maxRetries: 3, backoffFactor: 0.01, backoffJitter: 0 }, {}), requestTimeoutMs: 30_000, describe: { url: 'azureml://experiments/e/runs/r/artifacts/f.bin' } };
    try {
      for (const [blob, status, code, hint] of [
        [leased, 412, 'LeaseIdMissing', /^Another client holds a lease on this blob.*az storage blob lease break --container-name <container>/],
        [archived, 409, 'BlobArchived', /^The blob at this artifact path is in the archive tier.*cannot be overwritten/],
      ] as const) {
        const retries: RetryEvent[] = [];
        const error = await uploadBlockBlob({ path: 'f.bin', size: 4, bytes: Buffer.from('ours') }, sasBlockBlobRequests(http, `${blob.url}?${sas}`, 'application/octet-stream'), { ...settings, onRetry: (e) => retries.push(e) }).catch((e: unknown) => e);
        expect(error, code).toBeInstanceOf(HttpStatusError);
        expect(error, code).toMatchObject({ status, code });
        expect((error as HttpStatusError).hint, code).toMatch(hint);
        expect(retries, code).toEqual([]);
      }
      expect((await leased.downloadToBuffer()).toString()).toBe('leased');
      expect((await archived.getProperties()).accessTier).toBe('Archive');
    } finally {
      await lease.releaseLease();
      await leased.delete();
      await archived.delete();
    }
  });

  it('a commit refused by an immutability policy (409 BlobImmutableDueToPolicy) fails at once with a hint and leaves no blob', async () => {
    // Injected with Azure's answer: Azurite has no immutability policies.
    resetProxy();
    proxy.addRule({
      match: isCommit,
      fault: 'status',
      status: 409,
      headers: { 'content-type': 'application/xml', 'x-ms-error-code': 'BlobImmutableDueToPolicy' },
      body: '<?xml version="1.0" encoding="utf-8"?><Error><Code>BlobImmutableDueToPolicy</Code><Message>This operation is not permitted as the blob is immutable due to a policy.\nRequestId:0f0e\nTime:2026-12-07T07:00:00.0000000Z</Message></Error>',
    });
    const retries: RetryEvent[] = [];
    const error = await storeFor({}, proxy.url)
      .uploadFile(bigPath, 'immutable/big.bin', { onRetry: (e) => retries.push(e) })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpStatusError);
    expect(error).toMatchObject({ status: 409, code: 'BlobImmutableDueToPolicy' });
    expect((error as HttpStatusError).hint).toBe(
      `The container "${mlflowAzureServer().container}" is under an immutability policy (time-based retention or a legal hold): a blob there cannot be overwritten or deleted while it holds. Upload under another artifact path or to another run, or have the policy lifted by the storage account's owner.`,
    );
    expect(retries).toEqual([]);
    expect(proxy.requests.filter(isCommit)).toHaveLength(1);
    expect(await storeFor().list('immutable')).toEqual([]);
  });

  it('a blob of another type (an append blob) at the name refuses the blocks (409 InvalidBlobType) at once, with a hint, and keeps its bytes', async () => {
    // Azurite answers as Azure does; the error had no hint.
    const root = storeFor().location.rootPath;
    const theirs = containerClient().getAppendBlobClient(`${root}/other-type/big.bin`);
    await theirs.create();
    await theirs.appendBlock(Buffer.from('a log line\n'), 11);
    try {
      resetProxy();
      const retries: RetryEvent[] = [];
      const error = await storeFor({}, proxy.url)
        .uploadFile(bigPath, 'other-type/big.bin', { onRetry: (e) => retries.push(e) })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HttpStatusError);
      expect(error).toMatchObject({ status: 409, code: 'InvalidBlobType' });
      expect((error as HttpStatusError).hint).toMatch(/^The blob at this artifact path is not a block blob.*append or page blob.*Delete it \(`az storage blob delete --container-name \S+ --name <name>`\).*or upload under another artifact path/);
      expect(retries).toEqual([]);
      expect(proxy.requests.filter(isCommit)).toEqual([]);
      expect((await theirs.downloadToBuffer()).toString()).toBe('a log line\n');
    } finally {
      await theirs.delete();
    }
  });

  it('an archived blob at the name is not overwritten (409 BlobArchived): refused at once, with a hint, and it stays archived', async () => {
    // Azurite answers as Azure does (an archived blob cannot be overwritten); the error had no hint.
    const root = storeFor().location.rootPath;
    const earlier = containerClient().getBlockBlobClient(`${root}/archived/small.txt`);
    await earlier.upload(Buffer.from('archived'), 8);
    await earlier.setAccessTier('Archive');
    try {
      resetProxy();
      const retries: RetryEvent[] = [];
      const local = await writeLocal('archived/small.txt', 'ours');
      const error = await storeFor({}, proxy.url)
        .uploadFile(local, 'archived/small.txt', { onRetry: (e) => retries.push(e) })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HttpStatusError);
      expect(error).toMatchObject({ status: 409, code: 'BlobArchived' });
      expect((error as HttpStatusError).hint).toMatch(/^The blob at this artifact path is in the archive tier.*cannot be overwritten.*another artifact path.*az storage blob delete/);
      expect(retries).toEqual([]);
      expect(proxy.requests.filter(isPutBlob)).toHaveLength(1);
      expect((await earlier.getProperties()).accessTier).toBe('Archive');
    } finally {
      await earlier.delete();
    }
  });

  it.each([
    [409, 'BlobBeingRehydrated', /^The blob at this artifact path is being rehydrated from the archive tier.*upload again once/],
    [409, 'BlobImmutableDueToLegalHold', /^The container "\S+" is under an immutability policy \(time-based retention or a legal hold\)/],
    [409, 'OperationNotAllowedOnIncrementalCopyBlob', /^The blob at this artifact path is not a block blob.*an incremental copy/],
    [409, 'BlobOperationNotSupported', /^The blob at this artifact path is not a block blob.*Data Lake API/],
    [403, 'UnauthorizedBlobOverwrite', /may create blobs but not overwrite them.*w \(write\) permission/],
  ] as const)('a commit refused with %i %s (which Azurite cannot produce) fails at once with a hint that says what to do, and leaves no blob', async (status, code, hint) => {
    // Injected with Azure's answer; each had no hint (403 UnauthorizedBlobOverwrite the one of a wrong key).
    resetProxy();
    proxy.addRule({
      match: isCommit,
      fault: 'status',
      status,
      headers: { 'content-type': 'application/xml', 'x-ms-error-code': code },
      body: `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>Refused.\nRequestId:0f0e\nTime:2026-12-07T07:00:00.0000000Z</Message></Error>`,
    });
    const retries: RetryEvent[] = [];
    const error = await storeFor({}, proxy.url)
      .uploadFile(bigPath, `refused-${code}/big.bin`, { onRetry: (e) => retries.push(e) })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpStatusError);
    expect(error).toMatchObject({ status, code, message: expect.stringContaining(`failed: ${status} ${code}: Refused.`) });
    expect((error as HttpStatusError).hint).toMatch(hint);
    expect(retries).toEqual([]);
    expect(proxy.requests.filter(isCommit)).toHaveLength(1);
    expect(await storeFor().list(`refused-${code}`)).toEqual([]);
  });

  it('refuses bad artifact paths and missing files before any request', async () => {
    resetProxy();
    await expectRefusedBeforeAnyRequest(storeFor({}, proxy.url), join(dir, 'nope.bin'), bigPath, proxy.requests);
  });

  it('names the package to install when @azure/storage-blob or @azure/identity is missing', async () => {
    const notFound = () => Promise.reject(Object.assign(new Error("Cannot find package '@azure/storage-blob'"), { code: 'ERR_MODULE_NOT_FOUND' }));
    const local = await writeLocal('dep.txt', 'x');
    const noBlob = await storeFor({ loadSdk: { storageBlob: notFound } }).uploadFile(local, 'dep.txt').catch((e: unknown) => e);
    expect(noBlob).toBeInstanceOf(MissingDependencyError);
    expect((noBlob as MissingDependencyError).message).toMatch(/wasbs:\/\/ artifact root needs @azure\/storage-blob.*npm install @azure\/storage-blob$/);
    const noIdentity = await new AzureBlobArtifactStore(run.artifactUri, { env: {}, loadSdk: { identity: notFound } })
      .uploadFile(local, 'dep.txt')
      .catch((e: unknown) => e);
    expect(noIdentity).toBeInstanceOf(MissingDependencyError);
    expect((noIdentity as MissingDependencyError).message).toMatch(/without AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCESS_KEY needs @azure\/identity/);
  });

  it('is what resolveArtifactStore picks for wasbs:// runs, with AZURE_STORAGE_CONNECTION_STRING', async () => {
    const { url, env } = mlflowAzureServer();
    const connection = resolveMlflowConnection({ trackingUri: url }, {});
    const store = resolveArtifactStore(run.artifactUri, { connection, env, azure: { blockSize: MiB } });
    expect(store.kind).toBe('azure-blob');
    expect(store.artifactUri).toBe(run.artifactUri);
    expect(store.describe()).toMatch(/via the endpoint of AZURE_STORAGE_CONNECTION_STRING/);
    const data = randomBytes(2 * MiB + 1);
    const local = await writeLocal('resolved.bin', data);
    expect(await store.uploadFile(local, 'resolved.bin')).toMatchObject({ multipart: true, bytes: data.length });
    expected['resolved.bin'] = sha256(data);
  });

  it('ArtifactUploader uploads a directory to a wasbs:// run end to end, blocks included, and verifies it', async () => {
    const { url, env } = mlflowAzureServer();
    const tree: Record<string, Buffer> = {
      'ckpt/model.safetensors': randomBytes(2 * MiB + 3),
      'ckpt/config.json': Buffer.from('{"hidden": 8}'),
      'ckpt/nested/deeper/tokenizer.json': Buffer.from('{}'),
    };
    for (const [path, data] of Object.entries(tree)) await writeLocal(`tree/${path}`, data);
    const uploader = new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri: url, env, azure: { blockSize: MiB } });
    const result = await uploader.uploadDirectory(join(dir, 'src', 'tree', 'ckpt'), { artifactPath: 'uploader', verify: true });
    expect(result).toMatchObject({ status: 'uploaded', artifactUri: run.artifactUri, verification: { status: 'verified' } });
    expect(result.files.map((f) => [f.artifactPath, f.multipart])).toEqual([
      ['uploader/model.safetensors', true],
      ['uploader/config.json', false],
      ['uploader/nested/deeper/tokenizer.json', false],
    ]);
    for (const [path, data] of Object.entries(tree)) expected[path.replace(/^ckpt/, 'uploader')] = sha256(data);
  });

  it('takes the connection strings MLflow takes (azure-storage-blob for Python): keys in any case, no DefaultEndpointsProtocol, no EndpointSuffix', async () => {
    const { account, accountKey, container, blobEndpoint } = mlflowAzureServer();
    const uri = `wasbs://${container}@${account}.blob.core.windows.net/connstr/${run.runId}/artifacts`;
    // Forms Python's parse_connection_str reads (keys upper-cased, https and core.windows.net by
    // default) and @azure/storage-blob's fromConnectionString refuses.
    const forms: Record<string, string> = {
      'no-protocol.txt': `AccountName=${account};AccountKey=${accountKey};BlobEndpoint=${blobEndpoint}`,
      'lower-case.txt': `defaultendpointsprotocol=http;accountname=${account};accountkey=${accountKey};blobendpoint=${blobEndpoint};`,
    };
    for (const [artifactPath, connectionString] of Object.entries(forms)) {
      const store = new AzureBlobArtifactStore(uri, { env: { AZURE_STORAGE_CONNECTION_STRING: connectionString }, retry: { maxRetries: 0 } });
      await store.uploadFile(await writeLocal(`connstr/${artifactPath}`, artifactPath), artifactPath);
    }
    // Python reads each blob back through the very connection string it was written with, and
    // resolves the endpoint-less forms (which only a real account answers) where this store does.
    const endpointless = [
      `DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=${accountKey}`,
      `AccountName=acct;AccountKey=${accountKey}`,
      `DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=${accountKey};EndpointSuffix=core.chinacloudapi.cn`,
      'AccountName=acct;SharedAccessSignature=sv=2021-12-02&sig=c2lnbmF0dXJl',
    ];
    const script = `
import hashlib, json, sys
from azure.storage.blob import BlobServiceClient
forms, endpointless, container, prefix = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
read = {name: BlobServiceClient.from_connection_string(cs).get_container_client(container).download_blob(prefix + name).readall().decode() for name, cs in forms.items()}
urls = [BlobServiceClient.from_connection_string(cs).url.split("?")[0].rstrip("/") for cs in endpointless]
print(json.dumps({"read": read, "urls": urls}))
`;
    const stdout = await runPython(script, { args: [JSON.stringify(forms), JSON.stringify(endpointless), container, `connstr/${run.runId}/artifacts/`] });
    const python = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { read: Record<string, string>; urls: string[] };
    expect(python.read).toEqual({ 'no-protocol.txt': 'no-protocol.txt', 'lower-case.txt': 'lower-case.txt' });
    expect(endpointless.map((cs) => /BlobEndpoint=([^;]*)/.exec(normalizeAzureConnectionString(cs))?.[1])).toEqual(python.urls);
  });

  /** An account SAS (query string, no `?`) of Azurite's account for the Blob service, valid for an hour. */
  function accountSas(permissions: string): string {
    const { account, accountKey } = mlflowAzureServer();
    return generateAccountSASQueryParameters(
      {
        expiresOn: new Date(Date.now() + 3600_000),
        permissions: AccountSASPermissions.parse(permissions),
        resourceTypes: AccountSASResourceTypes.parse('co').toString(),
        services: AccountSASServices.parse('b').toString(),
      },
      new StorageSharedKeyCredential(account, accountKey),
    ).toString();
  }

  it('writes abfss:// roots through the Blob endpoint with AZURE_STORAGE_SAS_TOKEN, and azure-storage-blob reads them back', async () => {
    const { account, container, blobEndpoint } = mlflowAzureServer();
    const sas = accountSas('rwlc');
    const uri = `abfss://${container}@${account}.dfs.core.windows.net/adls/${run.runId}/artifacts`;
    const store = new AzureBlobArtifactStore(uri, { env: { AZURE_STORAGE_SAS_TOKEN: sas }, blobEndpoint, blockSize: MiB, retry: { maxRetries: 1 } });
    expect(store.kind).toBe('azure-adls');
    expect(store.location.blobAccountUrl).toBe(`https://${account}.blob.core.windows.net`);
    expect(store.describe()).toMatch(/ADLS Gen2 \(Blob endpoint\).*\(AZURE_STORAGE_SAS_TOKEN\)/);
    const small = Buffer.from('adls small');
    const files: Record<string, Buffer> = { 'small.txt': small, 'dir/big.bin': big, 'dir/empty': Buffer.alloc(0) };
    for (const [artifactPath, data] of Object.entries(files)) {
      await store.uploadFile(await writeLocal(`adls/${artifactPath}`, data), artifactPath);
    }
    expect((await listArtifactsRecursive(store)).map((e) => [e.path, e.size])).toEqual([
      ['dir/big.bin', big.length],
      ['dir/empty', 0],
      ['small.txt', small.length],
    ]);
    const downloaded = await pythonBlobHashes(`adls/${run.runId}/artifacts/`);
    expect(downloaded).toEqual(Object.fromEntries(Object.entries(files).map(([p, d]) => [p, sha256(d)])));

    // A SAS without write permission is refused at the first request, with what the SAS needs.
    const readOnly = sas.replace(/sp=[a-z]+/, 'sp=rl');
    const refused = await new AzureBlobArtifactStore(uri, { sasToken: `?${readOnly}`, env: {}, blobEndpoint })
      .uploadFile(await writeLocal('adls/ro.txt', 'x'), 'ro.txt')
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(HttpStatusError);
    expect((refused as HttpStatusError).status).toBe(403);
    expect((refused as HttpStatusError).message).not.toContain(/sig=([^&]+)/.exec(sas)![1]!);
  });

  it('lists the directories of a hierarchical-namespace account (0-byte blobs with hdi_isfolder=true) once, as directories', async () => {
    // What the Blob API lists on an ADLS Gen2 account: each directory is a 0-byte blob with
    // metadata hdi_isfolder=true, beside the prefix of its children. Azurite has no hierarchical
    // namespace, but stores and lists such blobs as Azure does.
    const { account, container, blobEndpoint } = mlflowAzureServer();
    const root = `hns/${run.runId}/artifacts`;
    const folder = { metadata: { hdi_isfolder: 'true' } };
    const weights = Buffer.from('weights of the model');
    for (const name of ['model', 'model/empty', 'logs']) await containerClient().getBlockBlobClient(`${root}/${name}`).upload('', 0, folder);
    await containerClient().getBlockBlobClient(`${root}/model/weights.bin`).upload(weights, weights.length);
    await containerClient().getBlockBlobClient(`${root}/model/zero`).upload('', 0);

    const store = new AzureBlobArtifactStore(`abfss://${container}@${account}.dfs.core.windows.net/${root}`, { sasToken: accountSas('rl'), env: {}, blobEndpoint });
    expect(await store.list()).toEqual([
      { path: 'logs', isDir: true },
      { path: 'model', isDir: true },
    ]);
    expect(await store.list('model')).toEqual([
      { path: 'model/empty', isDir: true },
      { path: 'model/weights.bin', isDir: false, size: weights.length },
      { path: 'model/zero', isDir: false, size: 0 },
    ]);
    expect((await listArtifactsRecursive(store)).map((e) => [e.path, e.size])).toEqual([
      ['model/weights.bin', weights.length],
      ['model/zero', 0],
    ]);
  });

  it('MlflowClient (azure-storage-blob underneath) downloads the whole run byte-exact, and nothing else is there', async () => {
    expect(Object.keys(expected).length).toBeGreaterThanOrEqual(11);
    const downloaded = await pythonArtifactHashes(mlflowAzureServer().url, run.runId, '', mlflowAzureServer().env);
    expect(downloaded).toEqual(expected);
    expect((await storeFor().list()).map((e) => e.path)).toEqual(['deleted', 'flaky', 'leased', 'model', 'resolved.bin', 'resume', 'slow', 'small', 'uploader']);
  });

  /** `{ relative name: sha256 }` of every blob under `prefix`, downloaded with the official Python azure-storage-blob. */
  async function pythonBlobHashes(prefix: string): Promise<Record<string, string>> {
    const script = `
import hashlib, json, os, sys
from azure.storage.blob import BlobServiceClient
container = BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"]).get_container_client(sys.argv[1])
prefix = sys.argv[2]
out = {}
for blob in container.list_blobs(name_starts_with=prefix):
    data = container.download_blob(blob.name).readall()
    out[blob.name[len(prefix):]] = hashlib.sha256(data).hexdigest()
print(json.dumps(out))
`;
    const stdout = await runPython(script, { args: [mlflowAzureServer().container, prefix], env: mlflowAzureServer().env });
    return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Record<string, string>;
  }
});
