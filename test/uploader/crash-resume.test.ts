/**
 * Crash-resume against the real servers (docs/resume.md): a child CLI upload is SIGKILLed, the
 * same command runs again, and
 * - every artifact is byte-exact, read back by the official Python client;
 * - the rerun re-sends at most what was in flight at the kill (counted by the byte-counting
 *   proxy: the files in flight, or one part per worker);
 * - no multipart upload is left on moto once the rerun completed;
 * - the journal is empty again.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { runAndKill, runToEnd, type ChildRun } from '../support/crash-harness.js';
import { useFaultProxies } from '../support/fault-proxy.js';
import { motoUploads } from '../support/moto.js';
import { pythonArtifactHashes, pythonCreateRun } from '../support/python.js';
import { describeWithServers, mlflowDirectS3Server, mlflowServer, servers } from '../support/servers.js';

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
  return { url, runId, journalDir, options, pythonEnv };
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
});
