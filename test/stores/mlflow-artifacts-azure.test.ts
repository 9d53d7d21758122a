/**
 * MLflow's proxied multipart when the server's artifacts destination is Azure Blob: a real
 * `mlflow server --serve-artifacts --artifacts-destination wasbs://...` on Azurite (started by
 * this file). `mpu/create`
 * answers with Put Block SAS URLs whose block ids MLflow names `mlflow_block_{i}`, so part 10's id
 * is longer than parts 1 to 9 and Azure (and Azurite) refuses it; `mpu/complete` commits the ids
 * it reads back from the part URLs the client sends. The store names the blocks itself, one
 * length for all, and the official Python client downloads the file byte-exact. The part PUTs
 * go through a fault proxy in front of Azurite (`rewritePartUrl`), so the test sees each block id.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import { expect, it } from 'vitest';
import { resolveMlflowConnection } from '../../src/mlflow/connection.js';
import { resolveArtifactStore } from '../../src/stores/resolve.js';
import { useFaultProxies, type FaultProxy } from '../support/fault-proxy.js';
import { pythonArtifactHashes } from '../support/python.js';
import { describeWithServers, mlflowAzureServer } from '../support/servers.js';
import { useFileMlflowServer } from '../support/file-mlflow-server.js';
import { serverRun } from '../uploader/helpers.js';

const MiB = 1024 * 1024;
const proxy = useFaultProxies();
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** The Put Block requests a proxy saw, with their block ids decoded. */
function blockPuts(p: FaultProxy): Array<{ id: string; status?: number }> {
  return p.requests
    .filter((r) => r.method === 'PUT' && new URL(r.path, 'http://x').searchParams.get('comp') === 'block')
    .map((r) => ({ id: Buffer.from(new URL(r.path, 'http://x').searchParams.get('blockid') ?? '', 'base64').toString(), status: r.status }));
}

describeWithServers('MlflowArtifactsStore multipart through an Azure Blob destination (Azurite)', () => {
  const azureProxy = useFileMlflowServer(
    'azure-proxy',
    () => ['--serve-artifacts', '--artifacts-destination', `wasbs://${mlflowAzureServer().container}@${mlflowAzureServer().account}.blob.core.windows.net/proxied`],
    () => mlflowAzureServer().env,
  );

  /** A new run of the proxying server, a store for it whose parts cross a proxy, and a 12-part file. */
  async function setUp() {
    const azure = { ...mlflowAzureServer(), proxyUrl: azureProxy.url };
    const run = await serverRun(azure.proxyUrl);
    const origin = new URL(azure.blobEndpoint).origin;
    const objectStore = await proxy(origin);
    const connection = resolveMlflowConnection({ trackingUri: azure.proxyUrl, retry: { backoffFactor: 0, backoffJitter: 0, maxRetries: 3 } }, {});
    const store = resolveArtifactStore(run.artifactUri, {
      connection,
      env: {},
      multipart: { thresholdBytes: 5 * MiB, chunkBytes: 5 * MiB, partConcurrency: 4, rewritePartUrl: (u) => u.replace(origin, objectStore.url) },
    });
    const bytes = randomBytes(55 * MiB + 12_345); // 12 parts of 5 MiB, the last short
    const file = join(mkdtempSync(join(tmpdir(), 'au-mlflow-azure-')), 'model.bin');
    writeFileSync(file, bytes);
    const container = BlobServiceClient.fromConnectionString(azure.env.AZURE_STORAGE_CONNECTION_STRING!).getContainerClient(azure.container);
    // Where the server keeps the run's artifacts: <destination>/<experiment>/<run>/artifacts.
    const blob = container.getBlockBlobClient(`proxied/0/${run.runId}/artifacts/big/model.bin`);
    return { azure, runId: run.runId, store, objectStore, bytes, file, blob };
  }

  it('12 parts go up as blocks with ids of one length (MLflow names part 10 longer, which Azure refuses), and MLflow commits them', async () => {
    const { azure, runId, store, objectStore, bytes, file, blob } = await setUp();
    const result = await store.uploadFile(file, 'big/model.bin');
    expect(result).toEqual({ bytes: bytes.length, attempts: 1, multipart: true, sha256: sha256(bytes) });
    // Azure answers Put Block without an ETag; the commit reads the ids from the part URLs.
    const puts = blockPuts(objectStore);
    expect(puts.map((p) => p.id).sort()).toEqual(Array.from({ length: 12 }, (_, i) => `mlflow_block_${String(i + 1).padStart(5, '0')}`));
    expect(puts.every((p) => p.status === 201)).toBe(true);
    expect(await pythonArtifactHashes(azure.proxyUrl, runId, 'big')).toEqual({ 'model.bin': sha256(bytes) });
    expect(sha256(await blob.downloadToBuffer())).toBe(sha256(bytes));
    expect((await blob.getBlockList('uncommitted')).uncommittedBlocks ?? []).toEqual([]);
  }, 120_000);

  it('beside the blocks a failed MLflow client left (14-byte ids), the parts go again under ids of that length, and the commit drops the others', async () => {
    const { azure, runId, store, objectStore, bytes, file, blob } = await setUp();
    // What MLflow's own client leaves after it fails at part 10: parts 1 to 9, uncommitted.
    for (let i = 1; i <= 9; i++) await blob.stageBlock(Buffer.from(`mlflow_block_${i}`).toString('base64'), Buffer.from(`left over ${i}`), `left over ${i}`.length);
    const result = await store.uploadFile(file, 'big/model.bin');
    expect(result).toMatchObject({ bytes: bytes.length, multipart: true, sha256: sha256(bytes) });
    const puts = blockPuts(objectStore);
    // The first attempt: at most one part per worker, under 18-byte ids, refused at once (400,
    // not retried) or cut off by that refusal. Then all 12 at 14 bytes, accepted.
    const first = puts.filter((p) => p.id.length === 18);
    expect(first.length).toBeLessThanOrEqual(4);
    expect(first.some((p) => p.status === 400)).toBe(true);
    expect(first.every((p) => p.status === 400 || p.status === undefined), JSON.stringify(puts)).toBe(true);
    const accepted = puts.filter((p) => p.id.length === 14);
    expect(accepted.map((p) => p.id).sort()).toEqual(Array.from({ length: 12 }, (_, i) => `mlflow_bl${String(i + 1).padStart(5, '0')}`));
    expect(accepted.every((p) => p.status === 201)).toBe(true);
    expect(puts).toHaveLength(first.length + 12);
    expect(objectStore.requests.filter((r) => r.method === 'GET' && /[?&]comp=blocklist(&|$)/.test(r.path))).toHaveLength(1);
    expect(await pythonArtifactHashes(azure.proxyUrl, runId, 'big')).toEqual({ 'model.bin': sha256(bytes) });
    expect((await blob.getBlockList('uncommitted')).uncommittedBlocks ?? []).toEqual([]);
  }, 120_000);
});
