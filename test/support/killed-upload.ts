/**
 * What a CLI upload killed mid-file leaves, read back: the journal's per-file records and files,
 * a kill point on its parts, the checkpoint directory such a test uploads, and the environment
 * and kill point of one through the MLflow proxy's multipart upload, and that upload killed.
 * Shared by the tests of a rerun (test/uploader/deleted-source.test.ts,
 * test/uploader/crash-resume.test.ts), of `resume clear` (test/cli/resume-clear-uploads.test.ts)
 * and of expired records (test/uploader/expired-records.test.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { runAndKill, type CliChildOptions } from './crash-harness.js';
import type { FaultProxy } from './fault-proxy.js';
import { motoUploads } from './moto.js';
import { pythonCreateRun } from './python.js';
import { mlflowDirectS3Server, mlflowS3Server, servers } from './servers.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

export type RecordJson = {
  key: { localPath: string; artifactPath: string };
  owner: { pid: number };
  multipart?: { uploadId: string; parts: unknown[] };
  resumeToken?: { store: string; value: { uri: string } };
};

/** The per-file records in `journalDir`, by file name. */
export async function records(journalDir: string): Promise<Map<string, RecordJson>> {
  const out = new Map<string, RecordJson>();
  const names = await readdir(journalDir).catch(() => [] as string[]);
  for (const name of names.filter((n) => n.endsWith('.json'))) {
    const text = await readFile(join(journalDir, name), 'utf8').catch(() => undefined);
    if (text) out.set(name, JSON.parse(text) as RecordJson);
  }
  return out;
}

/** What the journal holds besides staged archives: records, logs, locks. */
export async function journalFiles(journalDir: string): Promise<string[]> {
  return (await readdir(journalDir)).filter((n) => n.endsWith('.json') || n.endsWith('.log') || n.endsWith('.lock'));
}

/** Kill point: the record of `big.bin` names a multipart upload with at least `parts` parts done. */
export const partsRecorded = (journalDir: string, parts: number) => async () =>
  [...(await records(journalDir)).values()].some((r) => r.key.localPath.endsWith('big.bin') && (r.multipart?.parts.length ?? 0) >= parts);

/**
 * A checkpoint directory `ckpt` of two small files and `big.bin` of `bigBytes` (a multipart or
 * resumable upload), in a new temp root that also holds the journal. `small` is the sha256 of
 * each small file, by name.
 */
export async function checkpointDir(bigBytes: number) {
  const root = await mkdtemp(join(tmpdir(), 'au-deleted-source-'));
  const data = join(root, 'ckpt');
  await mkdir(data);
  const small: Record<string, string> = {};
  for (const name of ['config.json', 'tokenizer.json']) {
    const bytes = randomBytes(64 * 1024);
    await writeFile(join(data, name), bytes);
    small[name] = sha256(bytes);
  }
  await writeFile(join(data, 'big.bin'), randomBytes(bigBytes));
  return { root, data, journalDir: join(root, 'journal'), small };
}

/** S3's AbortMultipartUpload: `DELETE /<key>?uploadId=...`. */
export const isAbort = (r: { method: string; path: string }) => r.method === 'DELETE' && r.path.includes('uploadId=');

/**
 * The environment of a CLI upload through the MLflow proxy's multipart upload (an S3 destination)
 * that records in `journalDir`: files from 8 MiB go in parts of 5 MiB.
 */
export function proxyMultipartEnv(trackingUri: string, runId: string, journalDir: string): Record<string, string> {
  const MiB = 1024 * 1024;
  return {
    MLFLOW_TRACKING_URI: trackingUri,
    MLFLOW_RUN_ID: runId,
    ARTIFACT_UPLOADER_JOURNAL_DIR: journalDir,
    MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE: String(8 * MiB),
    MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE: String(5 * MiB),
  };
}

/** The proxy's `mpu/<what>` call (`create`, `complete`, `abort`): a POST. */
export const isMpu = (what: string) => (r: { method: string; path: string }) => r.method === 'POST' && r.path.includes(`/mpu/${what}`);

/**
 * A directory upload killed with its proxied multipart upload in progress: the built CLI uploads
 * {@link checkpointDir} (`big.bin` of 12 MiB: three parts of 5 MiB) to a new run through the
 * MLflow proxy (`proxyFor`, a fault proxy in front of the `mlflow server` with an S3 destination
 * on moto), and is killed when its `mpu/complete` arrives (held there): every part is in the
 * bucket, the upload is in progress on moto, and the journal holds `big.bin`'s record.
 * `options` runs the same upload again.
 */
export async function killedProxyMultipartUpload(proxyFor: (url: string) => Promise<FaultProxy>, runName: string) {
  const { url } = mlflowS3Server();
  const proxy = await proxyFor(url);
  const runId = await pythonCreateRun(url, runName);
  const dir = await checkpointDir(12 * 1024 * 1024);
  const options: CliChildOptions = {
    argv: ['dir', dir.data, '--stage', 'training', '--artifact-path', 'ckpt', '--json'],
    env: proxyMultipartEnv(proxy.url, runId, dir.journalDir),
    cwd: dir.root,
    proxy,
  };
  const killed = await runAndKill({ ...options, at: { request: isMpu('complete') } });
  expect(killed.requests.some(isMpu('create'))).toBe(true);
  expect(await motoUploads(runId)).toHaveLength(1);
  expect([...(await records(dir.journalDir)).values()].map((r) => [r.key.artifactPath, r.multipart !== undefined])).toEqual([['ckpt/big.bin', true]]);
  return { url, proxy, runId, ...dir, options };
}

/**
 * A directory upload killed mid-multipart on an `s3://` artifact root: the built CLI uploads
 * {@link checkpointDir} (`big.bin` of 40 MiB: five parts of 8 MiB) to a new run on the
 * `mlflow server --no-serve-artifacts` with an `s3://` root on moto, the tracking server and moto
 * each behind a recording fault proxy (`proxyFor`), and is killed once `big.bin` has two parts
 * on record. `env` is the upload's environment without `MLFLOW_RUN_ID` (the killed run is
 * `runId`), so that a test may run the next upload to another run.
 */
export async function killedS3Upload(proxyFor: (url: string, options?: { preserveHost?: boolean }) => Promise<FaultProxy>, runName: string) {
  const { url, s3Endpoint } = mlflowDirectS3Server();
  const s3 = await proxyFor(s3Endpoint, { preserveHost: true });
  const tracking = await proxyFor(url);
  const runId = await pythonCreateRun(url, runName);
  const dir = await checkpointDir(40 * 1024 * 1024);
  const env = { ...servers().awsEnv, MLFLOW_TRACKING_URI: tracking.url, MLFLOW_S3_ENDPOINT_URL: s3.url, ARTIFACT_UPLOADER_JOURNAL_DIR: dir.journalDir };
  await runAndKill({ argv: ['dir', dir.data, '--stage', 'training', '--artifact-path', 'ckpt', '--json'], env: { ...env, MLFLOW_RUN_ID: runId }, cwd: dir.root, proxy: s3, at: { until: partsRecorded(dir.journalDir, 2) } });
  const [left] = await motoUploads(runId);
  expect(left).toBeDefined();
  expect([...(await records(dir.journalDir)).values()].map((r) => r.key.artifactPath)).toEqual(['ckpt/big.bin']);
  return { url, s3, tracking, runId, left: left!, ...dir, env };
}

/** A port nothing listens on: bound, then closed. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
