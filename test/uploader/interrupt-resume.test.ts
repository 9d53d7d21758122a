/**
 * SIGINT and SIGTERM against the real servers (docs/resume.md, "Signals"): a child CLI upload
 * gets the signal at an exact byte count, while the proxy in front of the server stops
 * answering (it reads and discards what arrives and never replies, until the child has exited:
 * see runAndInterrupt), so the child must end by its own abort. Then
 * - it exits 130 with one `error [ABORTED]` line, and `--json` says so;
 * - nothing partial is visible at a final artifact path (what the store lists is byte-exact);
 * - `resume list` reads the journal back (no corrupt record), and the rerun of the same command
 *   completes, re-sending at most what was in flight, byte-exact for the official Python client;
 * - on `s3://`, the interrupted multipart upload is kept for the rerun (a SIGTERM is usually a
 *   preemption), continued by it, and no upload is left on moto afterwards.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { runAndInterrupt, runToEnd, type ChildRun, type CliChildOptions } from '../support/crash-harness.js';
import { useFaultProxies } from '../support/fault-proxy.js';
import { motoObjects, motoUploads } from '../support/moto.js';
import { pythonArtifactHashes, pythonCreateRun } from '../support/python.js';
import { describeWithServers, mlflowDirectS3Server, mlflowServer, servers } from '../support/servers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const startProxy = useFaultProxies();
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
/** Request-body bytes of PUTs (file bodies and parts), leaving out the small JSON/XML calls. */
const putBytes = (run: ChildRun) => run.requests.filter((r) => r.method === 'PUT').reduce((n, r) => n + r.bytes, 0);

interface JournalListing {
  entries: Array<{ status?: string; corrupt?: boolean; artifactPath?: string; size?: number; bytesDone?: number; multipart?: { uploadId: string; parts: number } }>;
}

/** `resume list --json` of the journal the options point at. */
async function resumeList(options: CliChildOptions): Promise<JournalListing['entries']> {
  const listed = await runToEnd({ ...options, argv: ['resume', 'list', '--json'] });
  return (JSON.parse(listed.stdout) as JournalListing).entries;
}

/** The interrupted run ended as the docs say: 130, `ok: false`, one ABORTED line on stderr. */
function expectCleanAbort(run: ChildRun): void {
  expect(run.signal).toBeNull(); // it exited by itself
  expect(run.code).toBe(130);
  expect(JSON.parse(run.stdout)).toMatchObject({ ok: false, exitCode: 130 });
  const errorLines = run.stderr.split('\n').filter((line) => line.startsWith('error'));
  expect(errorLines).toHaveLength(1);
  expect(errorLines[0]).toMatch(/^error \[ABORTED\]: /);
  // In the CLI's words: it was a signal, not some AbortSignal of the library's API.
  expect(errorLines[0]).not.toMatch(/AbortSignal|\w+\(\)/);
}

describeWithServers('SIGINT / SIGTERM', () => {
  it('SIGTERM mid-directory on mlflow-artifacts: exit 130, one ABORTED line, nothing partial, a usable journal, and the rerun resumes', async () => {
    const { url } = mlflowServer();
    const proxy = await startProxy(url);
    const runId = await pythonCreateRun(url, 'interrupt-dir');
    const root = await mkdtemp(join(tmpdir(), 'au-interrupt-'));
    const data = join(root, 'logs');
    await mkdir(data);
    const fileSize = 128 * KiB;
    const count = 12;
    const expected: Record<string, string> = {};
    for (let i = 0; i < count; i++) {
      const bytes = randomBytes(fileSize);
      await writeFile(join(data, `log-${String(i).padStart(2, '0')}.bin`), bytes);
      expected[`log-${String(i).padStart(2, '0')}.bin`] = sha256(bytes);
    }
    const total = count * fileSize;
    const concurrency = 2;
    const options: CliChildOptions = {
      argv: ['dir', data, '--stage', 'benchmark', '--artifact-path', 'logs', '--concurrency', String(concurrency), '--json'],
      env: { MLFLOW_TRACKING_URI: proxy.url, MLFLOW_RUN_ID: runId, ARTIFACT_UPLOADER_JOURNAL_DIR: join(root, 'journal') },
      cwd: root,
      proxy,
      timeoutMs: 60_000,
    };

    const signalAt = Math.floor(total * 0.6);
    const interrupted = await runAndInterrupt({ ...options, at: { bytes: signalAt }, signal: 'SIGTERM' });
    expectCleanAbort(interrupted);
    expect(interrupted.bytesSent).toBe(signalAt);

    // Whatever the store lists is whole: the file cut mid-body never appears at its path.
    const stored = await pythonArtifactHashes(url, runId, 'logs');
    expect(Object.keys(stored).length).toBeLessThan(count);
    for (const [name, hash] of Object.entries(stored)) expect(hash).toBe(expected[name]);

    const entries = await resumeList(options);
    expect(entries.length).toBeGreaterThan(0);
    expect(entries.every((e) => e.corrupt !== true && e.status === 'uploaded')).toBe(true);

    const rerun = await runToEnd(options);
    const [result] = (JSON.parse(rerun.stdout) as { results: Array<{ metrics: { filesResumed: number; bytesResumed: number; bytesSent: number } }> }).results;
    expect(result!.metrics.filesResumed).toBe(entries.length);
    expect(result!.metrics.bytesResumed + result!.metrics.bytesSent).toBe(total);
    // At most what had not arrived plus the files in flight at the signal (one per worker).
    expect(putBytes(rerun)).toBeLessThanOrEqual(total - signalAt + concurrency * fileSize);
    expect(putBytes(rerun)).toBe(total - entries.length * fileSize);
    expect(await pythonArtifactHashes(url, runId, 'logs')).toEqual(expected);
    expect(await resumeList(options)).toEqual([]);
  }, 240_000);

  it('SIGINT mid-part of an s3:// multipart upload: the upload is kept for the rerun, which continues it; nothing at the final key until then, no upload left after', async () => {
    const { url } = mlflowDirectS3Server();
    const proxy = await startProxy(mlflowDirectS3Server().s3Endpoint, { preserveHost: true });
    const runId = await pythonCreateRun(url, 'interrupt-s3');
    const root = await mkdtemp(join(tmpdir(), 'au-interrupt-s3-'));
    const bytes = randomBytes(40 * MiB); // 5 parts of 8 MiB, 4 in flight at a time
    await writeFile(join(root, 'weights.bin'), bytes);
    const options: CliChildOptions = {
      argv: ['file', join(root, 'weights.bin'), '--stage', 'training', '--artifact-path', 'model', '--json'],
      env: { ...servers().awsEnv, MLFLOW_TRACKING_URI: url, MLFLOW_RUN_ID: runId, MLFLOW_S3_ENDPOINT_URL: proxy.url, ARTIFACT_UPLOADER_JOURNAL_DIR: join(root, 'journal') },
      cwd: root,
      proxy,
      timeoutMs: 60_000,
    };
    const pythonEnv = { ...servers().awsEnv, MLFLOW_S3_ENDPOINT_URL: mlflowDirectS3Server().s3Endpoint };

    const signalAt = 36 * MiB; // the first 4 parts are in, the 5th is on its way
    const interrupted = await runAndInterrupt({ ...options, at: { bytes: signalAt }, signal: 'SIGINT' });
    expectCleanAbort(interrupted);
    expect(interrupted.stderr).toMatch(/kept for the rerun/);
    // No AbortMultipartUpload (DELETE ?uploadId=): the upload stays, on record, for the rerun.
    expect(interrupted.requests.some((r) => r.method === 'DELETE')).toBe(false);
    const kept = await motoUploads(runId);
    expect(kept).toHaveLength(1);
    expect(await motoObjects(runId)).toEqual([]); // nothing at the final key

    const entries = await resumeList(options);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ status: 'uploading', artifactPath: 'model/weights.bin' });
    expect(kept[0]).toContain(entries[0]!.multipart!.uploadId);
    const recordedParts = entries[0]!.multipart!.parts;
    expect(recordedParts).toBeGreaterThan(0);

    const rerun = await runToEnd(options);
    expect(rerun.requests.some((r) => r.method === 'POST' && /[?&]uploads(=|&|$)/.test(r.path))).toBe(false); // no new upload
    // The recorded parts are kept, and so are parts moto stored whose answers the interrupt cut
    // off (their bytes match what moto lists): the rerun sends the rest, and counts what it kept.
    const [result] = (JSON.parse(rerun.stdout) as { results: Array<{ metrics: { bytesResumed: number; bytesSent: number } }> }).results;
    expect(result!.metrics.bytesResumed).toBeGreaterThanOrEqual(recordedParts * 8 * MiB);
    expect(result!.metrics.bytesResumed + result!.metrics.bytesSent).toBe(bytes.length);
    expect(putBytes(rerun)).toBe(result!.metrics.bytesSent);
    expect(putBytes(rerun)).toBeLessThanOrEqual(bytes.length - signalAt + 4 * 8 * MiB);
    expect(await motoUploads(runId)).toEqual([]);
    expect(await pythonArtifactHashes(url, runId, 'model', pythonEnv)).toEqual({ 'weights.bin': sha256(bytes) });
    expect(await resumeList(options)).toEqual([]);
  }, 240_000);
});
