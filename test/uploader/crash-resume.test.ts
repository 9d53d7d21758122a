/**
 * Crash-resume against the real servers (docs/resume.md): a child CLI upload is SIGKILLed, the
 * same command runs again, and
 * - every artifact is byte-exact, read back by the official Python client;
 * - the rerun re-sends at most what was in flight at the kill (counted by the byte-counting
 *   proxy: the files in flight, or one part per worker);
 * - no multipart upload is left on moto once the rerun completed;
 * - the journal is empty again;
 * - a file rewritten in place between the kill and the rerun, keeping the size, mtime and inode
 *   the journal compares, is not completed as a mix of kept old parts and new ones: the rerun
 *   starts it over (with a warning) and S3 holds the new bytes alone;
 * - a file killed in the middle of the MLflow proxy's multipart upload (which cannot be
 *   continued) starts over, and the killed attempt's upload is aborted, not left in the bucket.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { runAndKill, runToEnd, type ChildRun } from '../support/crash-harness.js';
import { useFaultProxies } from '../support/fault-proxy.js';
import { isMpu, proxyMultipartEnv } from '../support/killed-upload.js';
import { motoUploads, onMoto } from '../support/moto.js';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { pythonArtifactHashes, pythonCreateRun } from '../support/python.js';
import { describeWithServers, mlflowDirectS3Server, mlflowS3Server, mlflowServer, servers } from '../support/servers.js';

const MiB = 1024 * 1024;
const startProxy = useFaultProxies();

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
/** Request-body bytes of PUTs (file bodies and parts), leaving out the small JSON/XML calls. */
const putBytes = (run: ChildRun) => run.requests.filter((r) => r.method === 'PUT').reduce((n, r) => n + r.bytes, 0);

async function workDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'au-crash-resume-'));
}

/** The fields of an `UploadedFile` in `--json` these tests read. */
type ResultFile = { status: string; sha256?: string; verified?: string; checksum?: string };

/**
 * An `s3://` file upload through a fault proxy in front of moto (the direct server's artifact
 * root): the CLI options of a child run, and what a test reads back with.
 */
async function s3FileUpload(runName: string, fileName: string, bytes: Buffer, artifactPath?: string) {
  const { url } = mlflowDirectS3Server();
  const proxy = await startProxy(mlflowDirectS3Server().s3Endpoint, { preserveHost: true });
  const runId = await pythonCreateRun(url, runName);
  const root = await workDir();
  await writeFile(join(root, fileName), bytes);
  const journalDir = join(root, 'journal');
  const options = {
    argv: ['file', join(root, fileName), '--stage', 'training', ...(artifactPath ? ['--artifact-path', artifactPath] : []), '--json'],
    env: { ...servers().awsEnv, MLFLOW_TRACKING_URI: url, MLFLOW_RUN_ID: runId, MLFLOW_S3_ENDPOINT_URL: proxy.url, ARTIFACT_UPLOADER_JOURNAL_DIR: journalDir },
    cwd: root,
    proxy,
  };
  /** The environment the official Python client reads moto with (past the proxy). */
  const pythonEnv = { ...servers().awsEnv, MLFLOW_S3_ENDPOINT_URL: mlflowDirectS3Server().s3Endpoint };
  return { url, runId, journalDir, options, pythonEnv, path: join(root, fileName) };
}

/** The bytes of the one object on moto whose key contains `runId` and ends with `/<name>`. */
function motoObjectBytes(runId: string, name: string): Promise<Buffer> {
  return onMoto(async (client, Bucket) => {
    const keys = ((await client.send(new ListObjectsV2Command({ Bucket }))).Contents ?? []).flatMap((o) => (o.Key?.includes(runId) && o.Key.endsWith(`/${name}`) ? [o.Key] : []));
    expect(keys).toHaveLength(1);
    const object = await client.send(new GetObjectCommand({ Bucket, Key: keys[0] }));
    return Buffer.from(await object.Body!.transformToByteArray());
  });
}

/** The part (or block) numbers of the one per-file journal record in `journalDir`, and the identity it recorded. */
async function recordedParts(journalDir: string): Promise<{ parts: number[]; local: { size: number; mtimeNs: string; ino: string; dev: string } }> {
  const names = (await readdir(journalDir)).filter((n) => n.endsWith('.json'));
  expect(names).toHaveLength(1);
  const record = JSON.parse(await readFile(join(journalDir, names[0]!), 'utf8')) as { local: { size: number; mtimeNs: string; ino: string; dev: string }; multipart?: { parts: Array<{ partNumber: number }> } };
  return { parts: (record.multipart?.parts ?? []).map((p) => p.partNumber), local: record.local };
}

/**
 * Rewrites `path` in place, as a tool that hides it would: the same inode (opened `r+`, never
 * replaced), the same size, new bytes in the middle of each of `parts` (1-based, `partSize`
 * each), and its access and modification times put back. Those times are whole seconds (see
 * {@link wholeSecondTimes}), so `utimes` puts them back to the nanosecond, which is what the
 * journal compares. Returns the file's new bytes.
 */
async function rewriteInPlaceKeepingIdentity(path: string, parts: readonly number[], partSize: number): Promise<Buffer> {
  const before = await stat(path);
  const file = await open(path, 'r+');
  try {
    for (const n of parts) await file.write(randomBytes(4096), 0, 4096, (n - 1) * partSize + partSize / 2);
  } finally {
    await file.close();
  }
  await utimes(path, before.atime, before.mtime);
  return readFile(path);
}

/** Sets `path`'s access and modification times to a whole second, which `utimes` can put back exactly (it takes seconds as a double, not nanoseconds). */
async function wholeSecondTimes(path: string): Promise<void> {
  const at = new Date(Math.floor(Date.now() / 1000) * 1000 - 3600_000);
  await utimes(path, at, at);
}

describeWithServers('crash-resume', () => {
  it('a directory on mlflow-artifacts killed mid-file: the rerun sends only what had not arrived, and resumed files count as resumed', async () => {
    const { url } = mlflowServer();
    const proxy = await startProxy(url);
    const runId = await pythonCreateRun(url, 'crash-resume');
    const root = await workDir();
    const data = join(root, 'ckpt');
    await mkdir(data);
    const expected: Record<string, string> = {};
    const fileSize = 256 * 1024;
    const count = 24;
    for (let i = 0; i < count; i++) {
      const bytes = randomBytes(fileSize);
      await writeFile(join(data, `shard-${String(i).padStart(2, '0')}.bin`), bytes);
      expected[`shard-${String(i).padStart(2, '0')}.bin`] = sha256(bytes);
    }
    const total = count * fileSize;
    const concurrency = 2;
    const journalDir = join(root, 'journal');
    const options = {
      argv: ['dir', data, '--stage', 'training', '--artifact-path', 'ckpt', '--concurrency', String(concurrency), '--json'],
      env: { MLFLOW_TRACKING_URI: proxy.url, MLFLOW_RUN_ID: runId, ARTIFACT_UPLOADER_JOURNAL_DIR: journalDir },
      cwd: root,
      proxy,
    };

    const killAt = Math.floor(total * 0.5);
    const killed = await runAndKill({ ...options, at: { bytes: killAt } });
    expect(killed.bytesSent).toBe(killAt);
    // The files that finished are lines of the operation's log (no per-file record for a file sent in one request).
    expect((await readdir(journalDir)).filter((n) => n.endsWith('.log'))).toHaveLength(1);
    expect((await readdir(journalDir)).filter((n) => n.endsWith('.json'))).toEqual([]);

    const rerun = await runToEnd(options);
    const json = JSON.parse(rerun.stdout) as { ok: boolean; results: Array<{ metrics: { filesResumed: number; bytesResumed: number; bytesSent: number }; files: Array<{ status: string; artifactPath: string; sha256?: string }> }> };
    expect(json.ok).toBe(true);
    const [result] = json.results;
    // At most what had not arrived, plus the files in flight at the kill (one per worker).
    expect(putBytes(rerun)).toBeLessThanOrEqual(total - killAt + concurrency * fileSize);
    expect(result!.metrics.filesResumed).toBeGreaterThan(0);
    expect(result!.metrics.bytesResumed + result!.metrics.bytesSent).toBe(total);
    expect(result!.metrics.bytesSent).toBe(putBytes(rerun));
    expect(result!.files.filter((f) => f.status === 'resumed')).toHaveLength(result!.metrics.filesResumed);
    // Every file carries the sha256 of its local bytes, resumed ones the one their journal line recorded.
    for (const f of result!.files) expect(f.sha256, f.artifactPath).toBe(expected[f.artifactPath.replace(/^ckpt\//, '')]);
    expect(await pythonArtifactHashes(url, runId, 'ckpt')).toEqual(expected);
    expect((await readdir(journalDir)).filter((n) => n.endsWith('.json') || n.endsWith('.log'))).toEqual([]);

    // --no-resume sends everything again.
    const again = await runToEnd({ ...options, argv: [...options.argv, '--no-resume'] });
    expect(putBytes(again)).toBe(total);
  }, 300_000);

  it('an s3:// multipart upload killed mid-part continues the same upload: parts S3 has are not sent again, no upload is left', async () => {
    const bytes = randomBytes(48 * MiB); // 6 parts of 8 MiB, 4 in flight at a time
    const { url, runId, journalDir, options, pythonEnv } = await s3FileUpload('crash-resume-s3', 'weights.bin', bytes, 'model');
    const killAt = 44 * MiB;
    const killed = await runAndKill({ ...options, at: { bytes: killAt } });
    expect(killed.requests.some((r) => r.method === 'POST' && r.path.includes('uploads'))).toBe(true);
    expect(await motoUploads(runId)).toHaveLength(1); // left by the kill

    const rerun = await runToEnd(options);
    const [result] = (JSON.parse(rerun.stdout) as { results: Array<{ metrics: { filesResumed: number; bytesResumed: number; bytesSent: number }; files: ResultFile[] }> }).results;
    // The parts S3 had were read locally to hash the whole file; S3 checked every part's checksum.
    expect(result!.files[0]).toMatchObject({ status: 'uploaded', sha256: sha256(bytes), verified: 'checksum', checksum: expect.stringMatching(/^crc32:.*-6$/) });
    // No new upload: the same UploadId was listed and continued.
    expect(rerun.requests.some((r) => r.method === 'POST' && /[?&]uploads(=|&|$)/.test(r.path))).toBe(false);
    expect(rerun.requests.some((r) => r.method === 'GET' && r.path.includes('uploadId='))).toBe(true); // ListParts
    // Nothing per kept part: one ListParts, a PUT for each part S3 lacked, one CompleteMultipartUpload,
    // at most one HEAD (the object's checksum, where the complete answer carries none).
    const count = (method: string) => rerun.requests.filter((r) => r.method === method).length;
    const keptParts = result!.metrics.bytesResumed / (8 * MiB);
    expect(Number.isInteger(keptParts) && keptParts >= 1).toBe(true);
    expect({ GET: count('GET'), PUT: count('PUT'), POST: count('POST') }).toEqual({ GET: 1, PUT: 6 - keptParts, POST: 1 });
    expect(count('HEAD')).toBeLessThanOrEqual(1);
    expect(rerun.requests.length).toBe(2 + (6 - keptParts) + count('HEAD'));
    // At most what had not arrived plus one part per worker (4 × 8 MiB).
    expect(putBytes(rerun)).toBeLessThanOrEqual(bytes.length - killAt + 4 * 8 * MiB);
    expect(result!.metrics.bytesResumed).toBeGreaterThanOrEqual(8 * MiB);
    expect(result!.metrics.bytesResumed + result!.metrics.bytesSent).toBe(bytes.length);
    expect(await motoUploads(runId)).toEqual([]);
    expect(await pythonArtifactHashes(url, runId, 'model', pythonEnv)).toEqual({ 'weights.bin': sha256(bytes) });
    expect((await readdir(journalDir)).filter((n) => n.endsWith('.json') || n.endsWith('.log'))).toEqual([]);
  }, 300_000);

  it('an s3:// part S3 stored whose answer the crash lost is not sent again: its local bytes match what S3 lists for it', async () => {
    const bytes = randomBytes(48 * MiB); // 6 parts of 8 MiB
    const { url, runId, options, pythonEnv } = await s3FileUpload('crash-resume-s3-unanswered', 'weights.bin', bytes, 'model');
    const isPart = (n: number) => (r: { method: string; path: string }) => r.method === 'PUT' && new RegExp(`[?&]partNumber=${n}(&|$)`).test(r.path);
    // moto stores part 5 and answers; the answer is dropped and the child killed as it arrives,
    // so the journal never records part 5. (Part 5 starts once an earlier part's answer is in
    // the journal: that one shows the rerun the earlier attempt sent CRC32s, which moto's
    // ListParts does not say.)
    const killed = await runAndKill({ ...options, at: { answer: isPart(5) } });
    // moto stored it: its answer (dropped) was a success.
    expect(killed.requests.find(isPart(5))?.status, JSON.stringify(killed.requests)).toBe(200);

    const rerun = await runToEnd(options);
    const [result] = (JSON.parse(rerun.stdout) as { results: Array<{ metrics: { bytesResumed: number; bytesSent: number }; files: ResultFile[] }> }).results;
    // Part 5 is kept: S3 lists it with the MD5 (moto's ETag) of the local bytes at its range.
    expect(rerun.requests.some(isPart(5)), JSON.stringify({ killed: killed.requests, rerun: rerun.requests, stderr: rerun.stderr.slice(-2000) })).toBe(false);
    expect(result!.metrics.bytesResumed).toBeGreaterThanOrEqual(8 * MiB);
    expect(result!.metrics.bytesResumed + result!.metrics.bytesSent).toBe(bytes.length);
    expect(putBytes(rerun)).toBe(result!.metrics.bytesSent);
    // The object S3 assembled is checked against the parts' checksums, part 5's among them.
    expect(result!.files[0]).toMatchObject({ status: 'uploaded', sha256: sha256(bytes), verified: 'checksum', checksum: expect.stringMatching(/^crc32:.*-6$/) });
    expect(await motoUploads(runId)).toEqual([]);
    expect(await pythonArtifactHashes(url, runId, 'model', pythonEnv)).toEqual({ 'weights.bin': sha256(bytes) });
  }, 300_000);

  it('an s3:// file rewritten in place since the killed attempt, keeping its size, mtime and inode: the rerun finds a kept part that no longer holds its bytes, aborts that upload and starts over, and S3 holds the new bytes alone', async () => {
    const partSize = 8 * MiB;
    const bytes = randomBytes(48 * MiB); // 6 parts of 8 MiB, 4 in flight at a time
    const { runId, journalDir, options, path } = await s3FileUpload('crash-resume-s3-rewritten', 'weights.bin', bytes, 'model');
    await wholeSecondTimes(path);
    const killed = await runAndKill({ ...options, at: { bytes: 44 * MiB } });
    expect(await motoUploads(runId)).toHaveLength(1); // left by the kill
    const { parts, local } = await recordedParts(journalDir);
    expect(parts.length, JSON.stringify(killed.requests)).toBeGreaterThanOrEqual(1);

    // New bytes in every part the journal recorded (the parts a rerun keeps without sending).
    const rewritten = await rewriteInPlaceKeepingIdentity(path, parts, partSize);
    expect(rewritten.equals(bytes)).toBe(false);
    const now = await stat(path, { bigint: true });
    // What the journal compares is as it recorded it: the rerun takes the file as unchanged.
    expect({ size: Number(now.size), mtimeNs: now.mtimeNs.toString(), ino: now.ino.toString(), dev: now.dev.toString() }).toEqual(local);

    const rerun = await runToEnd(options);
    const [result] = (JSON.parse(rerun.stdout) as { results: Array<{ metrics: { bytesResumed: number; bytesSent: number }; files: ResultFile[] }> }).results;
    const why = JSON.stringify({ parts, rerun: rerun.requests, stderr: rerun.stderr.slice(-3000) });
    // The object is the new file, every byte of it, and so is the sha256 reported for it.
    expect((await motoObjectBytes(runId, 'weights.bin')).equals(rewritten), why).toBe(true);
    expect(result!.files[0]).toMatchObject({ status: 'uploaded', sha256: sha256(rewritten), verified: 'checksum' });
    // Started over: nothing kept, under a new upload; the earlier one was aborted, none is left.
    expect(result!.metrics.bytesResumed, why).toBe(0);
    expect(result!.metrics.bytesSent).toBe(bytes.length);
    expect(rerun.requests.some((r) => r.method === 'POST' && /[?&]uploads(=|&|$)/.test(r.path)), why).toBe(true);
    expect(rerun.requests.some((r) => r.method === 'DELETE' && r.path.includes('uploadId=')), why).toBe(true); // AbortMultipartUpload
    expect(await motoUploads(runId)).toEqual([]);
    expect(rerun.stderr, why).toMatch(/weights\.bin changed since the earlier attempt to upload it .*the file starts over/);
    expect((await readdir(journalDir)).filter((n) => n.endsWith('.json') || n.endsWith('.log'))).toEqual([]);
  }, 300_000);

  it('an s3:// multipart upload killed between its last part and complete: the rerun sends no part again, only completes', async () => {
    const bytes = randomBytes(20 * MiB); // 3 parts
    const { url, runId, options, pythonEnv } = await s3FileUpload('crash-resume-s3-complete', 'model.safetensors', bytes);
    // CompleteMultipartUpload: POST ...?uploadId=...
    const killed = await runAndKill({ ...options, at: { request: (r) => r.method === 'POST' && r.path.includes('uploadId=') } });
    expect(putBytes(killed)).toBe(bytes.length);

    const rerun = await runToEnd(options);
    expect(putBytes(rerun)).toBe(0);
    const [result] = (JSON.parse(rerun.stdout) as { results: Array<{ metrics: { filesResumed: number; bytesResumed: number; bytesSent: number }; files: ResultFile[] }> }).results;
    expect(result!.metrics.bytesResumed).toBe(bytes.length);
    // Nothing was sent, every part read locally: the sha256 of the whole file all the same.
    expect(result!.files[0]).toMatchObject({ status: 'uploaded', sha256: sha256(bytes), verified: 'checksum', checksum: expect.stringMatching(/^crc32:.*-3$/) });
    expect(await motoUploads(runId)).toEqual([]);
    expect(await pythonArtifactHashes(url, runId, '', pythonEnv)).toEqual({ 'model.safetensors': sha256(bytes) });
  }, 300_000);

  it('an s3:// multipart upload whose CreateMultipartUpload answer the crash lost: the rerun aborts that upload, so none is left in the bucket', async () => {
    const bytes = randomBytes(20 * MiB); // 3 parts
    const { url, runId, journalDir, options, pythonEnv } = await s3FileUpload('crash-resume-s3-create-lost', 'weights.bin', bytes, 'model');
    const isCreate = (r: { method: string; path: string }) => r.method === 'POST' && /[?&]uploads(=|&|$)/.test(r.path);
    // S3 creates the upload and answers; the answer is dropped and the child killed as it
    // arrives, so the child never learnt the upload id.
    const killed = await runAndKill({ ...options, at: { answer: isCreate } });
    expect(killed.requests.find(isCreate)?.status).toBe(200);
    expect(await motoUploads(runId)).toHaveLength(1); // left by the kill

    const rerun = await runToEnd(options);
    const why = JSON.stringify({ killed: killed.requests, rerun: rerun.requests, stderr: rerun.stderr.slice(-2000) });
    const [result] = (JSON.parse(rerun.stdout) as { results: Array<{ files: ResultFile[] }> }).results;
    expect(result!.files[0]).toMatchObject({ status: 'uploaded', sha256: sha256(bytes), verified: 'checksum' });
    expect(await pythonArtifactHashes(url, runId, 'model', pythonEnv)).toEqual({ 'weights.bin': sha256(bytes) });
    expect(await motoUploads(runId), why).toEqual([]);
    expect((await readdir(journalDir)).filter((n) => n.endsWith('.json') || n.endsWith('.log') || n.endsWith('.lock'))).toEqual([]);
  }, 300_000);

  it('an mlflow-artifacts multipart upload (S3 destination) killed before its complete: the rerun sends the file again and aborts the killed attempt\'s upload, so none is left in the bucket', async () => {
    const { url } = mlflowS3Server();
    const proxy = await startProxy(url);
    const runId = await pythonCreateRun(url, 'crash-resume-proxy-mpu');
    const root = await workDir();
    const bytes = randomBytes(12 * MiB); // 3 parts of 5 MiB through the proxy's multipart upload
    await writeFile(join(root, 'weights.bin'), bytes);
    const journalDir = join(root, 'journal');
    const options = {
      argv: ['file', join(root, 'weights.bin'), '--stage', 'training', '--artifact-path', 'model', '--json'],
      env: proxyMultipartEnv(proxy.url, runId, journalDir),
      cwd: root,
      proxy,
    };
    // Every part is in the bucket (the parts go to the presigned URLs, past the proxy); the
    // child is killed when its mpu/complete arrives, which is held.
    const killed = await runAndKill({ ...options, at: { request: isMpu('complete') } });
    expect(killed.requests.some(isMpu('create'))).toBe(true);
    expect(await motoUploads(runId)).toHaveLength(1); // left by the kill

    const rerun = await runToEnd(options);
    const why = JSON.stringify({ killed: killed.requests, rerun: rerun.requests, stderr: rerun.stderr.slice(-2000) });
    const [result] = (JSON.parse(rerun.stdout) as { results: Array<{ files: ResultFile[] }> }).results;
    expect(result!.files[0]).toMatchObject({ status: 'uploaded', sha256: sha256(bytes) });
    expect(await pythonArtifactHashes(url, runId, 'model')).toEqual({ 'weights.bin': sha256(bytes) });
    // The killed attempt's upload cannot be continued (the proxy lists no parts): it is aborted.
    expect(rerun.requests.some(isMpu('abort')), why).toBe(true);
    expect(await motoUploads(runId), why).toEqual([]);
    expect((await readdir(journalDir)).filter((n) => n.endsWith('.json') || n.endsWith('.log') || n.endsWith('.lock'))).toEqual([]);
  }, 300_000);
});
