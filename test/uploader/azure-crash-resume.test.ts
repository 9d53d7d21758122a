/**
 * Crash-resume on Azure Blob (docs/resume.md): Azurite behind the real `mlflow server
 * --no-serve-artifacts` with a `wasbs://` artifact root. A child CLI upload of a large file
 * (staged blocks) is SIGKILLed mid-block; the rerun keeps the blocks Azure holds uncommitted
 * under the journal's block ids (Get Block List), and those staged whose answers the kill lost
 * (a block's id names its bytes), sends the rest under the same ids, commits,
 * and the blob is byte-exact for the official Python client. Nothing is visible at the final
 * path before the commit. A file rewritten in place between the kill and the rerun, keeping its
 * size, mtime and inode, starts over (a kept block's id no longer names its bytes) rather than
 * commit a blob of two versions.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import { expect, it } from 'vitest';
import { runAndKill, runToEnd, type ChildRun } from '../support/crash-harness.js';
import { useFaultProxies } from '../support/fault-proxy.js';
import { pythonArtifactHashes, pythonCreateRun } from '../support/python.js';
import { describeWithServers, mlflowAzureServer } from '../support/servers.js';

const MiB = 1024 * 1024;
const BLOCK = 8 * MiB; // the default block size
const startProxy = useFaultProxies();
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
/** Request-body bytes of Put Block requests (leaving out the block list commit). */
const blockBytes = (run: ChildRun) => run.requests.filter((r) => r.method === 'PUT' && /[?&]comp=block(&|$)/.test(r.path)).reduce((n, r) => n + r.bytes, 0);

/** Azurite's account with its Blob endpoint at `origin` (Azurite itself, or the proxy). */
function connectionString(origin: string): string {
  const { account, accountKey } = mlflowAzureServer();
  return `DefaultEndpointsProtocol=http;AccountName=${account};AccountKey=${accountKey};BlobEndpoint=${origin}/${account};`;
}

/** The block ids (base64, as sent in `blockid`) of a run's Put Block requests, by block index (`blockId`: 4 base-36 digits first). */
function blockIdsByIndex(run: ChildRun): Map<number, string> {
  const ids = new Map<number, string>();
  for (const r of run.requests) {
    const query = new URL(r.path, 'http://x').searchParams;
    if (r.method !== 'PUT' || query.get('comp') !== 'block') continue;
    const id = query.get('blockid') ?? '';
    ids.set(Number.parseInt(Buffer.from(id, 'base64').toString().slice(0, 4), 36), id);
  }
  return ids;
}

/** A child CLI upload of `bytes` as `weights.bin` to a new wasbs:// run, every Azure request through a fault proxy. */
async function azureFileUpload(experiment: string, bytes: Buffer) {
  const { url, blobEndpoint } = mlflowAzureServer();
  const proxy = await startProxy(new URL(blobEndpoint).origin);
  const runId = await pythonCreateRun(url, experiment, mlflowAzureServer().env);
  const root = await mkdtemp(join(tmpdir(), 'au-crash-azure-'));
  await writeFile(join(root, 'weights.bin'), bytes);
  const journalDir = join(root, 'journal');
  const options = {
    argv: ['file', join(root, 'weights.bin'), '--stage', 'training', '--artifact-path', 'model', '--json'],
    env: { MLFLOW_TRACKING_URI: url, MLFLOW_RUN_ID: runId, AZURE_STORAGE_CONNECTION_STRING: connectionString(proxy.url), ARTIFACT_UPLOADER_JOURNAL_DIR: journalDir },
    cwd: root,
    proxy,
  };
  return { url, runId, journalDir, options, path: join(root, 'weights.bin') };
}

/** The container on Azurite itself (not through a proxy). */
function azuriteContainer() {
  return BlobServiceClient.fromConnectionString(connectionString(new URL(mlflowAzureServer().blobEndpoint).origin)).getContainerClient(mlflowAzureServer().container);
}

type RerunResult = { metrics: { bytesResumed: number; bytesSent: number } };

describeWithServers('Azure crash-resume', () => {
  it('a wasbs:// block upload killed mid-block: the rerun keeps the uncommitted blocks Azure has, sends the rest under the same ids, and commits', async () => {
    const { container } = mlflowAzureServer();
    const bytes = randomBytes(40 * MiB); // 5 blocks of 8 MiB, 4 in flight at a time
    const { url, runId, journalDir, options } = await azureFileUpload('crash-resume-azure', bytes);
    // Past the first 4 blocks: the 5th started, so one of them is in and recorded.
    const killAt = 36 * MiB;
    const killed = await runAndKill({ ...options, at: { bytes: killAt } });
    expect(killed.bytesSent).toBe(killAt);
    // Nothing at the final path: the blocks are uncommitted.
    const containerClient = BlobServiceClient.fromConnectionString(connectionString(new URL(mlflowAzureServer().blobEndpoint).origin)).getContainerClient(container);
    const names: string[] = [];
    for await (const blob of containerClient.listBlobsFlat()) if (blob.name.includes(runId)) names.push(blob.name);
    expect(names).toEqual([]);

    const rerun = await runToEnd(options);
    const [result] = (JSON.parse(rerun.stdout) as { results: RerunResult[] }).results;
    // Get Block List, then the blocks Azure lacked, each under the id the killed run gave the
    // same block (its index and MD5), then the commit.
    expect(rerun.requests.some((r) => r.method === 'GET' && /[?&]comp=blocklist(&|$)/.test(r.path))).toBe(true);
    const before = blockIdsByIndex(killed);
    for (const [index, id] of blockIdsByIndex(rerun)) if (before.has(index)) expect(id).toBe(before.get(index));
    expect(result!.metrics.bytesResumed).toBeGreaterThanOrEqual(BLOCK);
    expect(result!.metrics.bytesResumed + result!.metrics.bytesSent).toBe(bytes.length);
    // At most what had not arrived plus one block per worker (4 × 8 MiB).
    expect(blockBytes(rerun)).toBeLessThanOrEqual(bytes.length - killAt + 4 * BLOCK);
    expect(blockBytes(rerun)).toBe(bytes.length - result!.metrics.bytesResumed);
    expect(await pythonArtifactHashes(url, runId, 'model', mlflowAzureServer().env)).toEqual({ 'weights.bin': sha256(bytes) });
    expect((await readdir(journalDir)).filter((n) => n.endsWith('.json') || n.endsWith('.log'))).toEqual([]);
  }, 300_000);

  it('a file rewritten in place since the killed attempt, keeping its size, mtime and inode: the rerun finds a kept block that no longer holds its bytes and starts over, and the blob is the new bytes alone', async () => {
    const bytes = randomBytes(40 * MiB); // 5 blocks of 8 MiB, 4 in flight at a time
    const { runId, journalDir, options, path } = await azureFileUpload('crash-resume-azure-rewritten', bytes);
    // Whole seconds, which utimes puts back to the nanosecond (it takes seconds as a double).
    const at = new Date(Math.floor(Date.now() / 1000) * 1000 - 3600_000);
    await utimes(path, at, at);
    await runAndKill({ ...options, at: { bytes: 36 * MiB } });
    const names = (await readdir(journalDir)).filter((n) => n.endsWith('.json'));
    expect(names).toHaveLength(1);
    const record = JSON.parse(await readFile(join(journalDir, names[0]!), 'utf8')) as { local: Record<string, unknown>; multipart: { parts: Array<{ partNumber: number }> } };
    const blocks = record.multipart.parts.map((p) => p.partNumber - 1);
    expect(blocks.length).toBeGreaterThanOrEqual(1);

    // The file rewritten in place (the same inode, opened r+), new bytes in the middle of every
    // block the journal recorded, its times put back: the journal takes it as unchanged.
    const before = await stat(path);
    const file = await open(path, 'r+');
    try {
      for (const index of blocks) await file.write(randomBytes(4096), 0, 4096, index * BLOCK + BLOCK / 2);
    } finally {
      await file.close();
    }
    await utimes(path, before.atime, before.mtime);
    const rewritten = await readFile(path);
    expect(rewritten.equals(bytes)).toBe(false);
    const now = await stat(path, { bigint: true });
    expect({ size: Number(now.size), mtimeNs: now.mtimeNs.toString(), ino: now.ino.toString(), dev: now.dev.toString() }).toEqual(record.local);

    const rerun = await runToEnd(options);
    const [result] = (JSON.parse(rerun.stdout) as { results: Array<RerunResult & { files: Array<{ status: string; sha256?: string }> }> }).results;
    const why = JSON.stringify({ blocks, rerun: rerun.requests, stderr: rerun.stderr.slice(-3000) });
    const blobNames: string[] = [];
    for await (const blob of azuriteContainer().listBlobsFlat()) if (blob.name.includes(runId)) blobNames.push(blob.name);
    expect(blobNames).toHaveLength(1);
    const blob = azuriteContainer().getBlockBlobClient(blobNames[0]!);
    // The blob is the new file, every byte of it, and so is the sha256 reported for it.
    expect((await blob.downloadToBuffer()).equals(rewritten), why).toBe(true);
    expect(result!.files[0]).toMatchObject({ status: 'uploaded', sha256: sha256(rewritten) });
    // Started over: nothing kept, every block staged again; the commit left no block uncommitted.
    expect(result!.metrics.bytesResumed, why).toBe(0);
    expect(result!.metrics.bytesSent).toBe(bytes.length);
    expect((await blob.getBlockList('uncommitted')).uncommittedBlocks ?? []).toEqual([]);
    expect(rerun.stderr, why).toMatch(/weights\.bin changed since the earlier attempt to upload it .*the file starts over/);
    expect((await readdir(journalDir)).filter((n) => n.endsWith('.json') || n.endsWith('.log'))).toEqual([]);
  }, 300_000);

  it('a block Azure staged whose answer the crash lost is not sent again: its id, which names its bytes, is listed', async () => {
    const bytes = randomBytes(40 * MiB); // 5 blocks of 8 MiB, 4 in flight at a time
    const { url, runId, options } = await azureFileUpload('crash-resume-azure-unanswered', bytes);
    const isBlock = (index: number) => (r: { method: string; path: string }) => {
      const query = new URL(r.path, 'http://x').searchParams;
      return r.method === 'PUT' && query.get('comp') === 'block' && Buffer.from(query.get('blockid') ?? '', 'base64').toString().startsWith(index.toString(36).padStart(4, '0'));
    };
    // Azure stages the 5th block and answers; the answer is dropped and the child killed as it
    // arrives, so the journal never records that block.
    const killed = await runAndKill({ ...options, at: { answer: isBlock(4) } });
    expect(killed.requests.find(isBlock(4))?.status, JSON.stringify(killed.requests)).toBe(201);

    const rerun = await runToEnd(options);
    const [result] = (JSON.parse(rerun.stdout) as { results: RerunResult[] }).results;
    // The 5th block is not sent again, nor any block Azure answered (whether the child saw it or
    // not): only those cut mid-body at the kill (one of the first four may still be on its way).
    const why = JSON.stringify({ killed: killed.requests, rerun: rerun.requests, stderr: rerun.stderr.slice(-2000) });
    expect(rerun.requests.some(isBlock(4)), why).toBe(false);
    const cut = new Set([...blockIdsByIndex({ ...killed, requests: killed.requests.filter((r) => r.status === undefined) }).keys()]);
    expect([...blockIdsByIndex(rerun).keys()].every((index) => cut.has(index)), why).toBe(true);
    expect(rerun.requests.some((r) => r.method === 'GET' && /[?&]comp=blocklist(&|$)/.test(r.path))).toBe(true);
    expect(result!.metrics.bytesResumed + result!.metrics.bytesSent).toBe(bytes.length);
    expect(blockBytes(rerun)).toBe(result!.metrics.bytesSent);
    expect(result!.metrics.bytesResumed).toBeGreaterThanOrEqual(bytes.length - cut.size * BLOCK);
    expect(await pythonArtifactHashes(url, runId, 'model', mlflowAzureServer().env)).toEqual({ 'weights.bin': sha256(bytes) });
  }, 300_000);
});
