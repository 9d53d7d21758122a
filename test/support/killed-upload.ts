/**
 * What a CLI upload killed mid-file leaves, read back: the journal's per-file records and files,
 * a kill point on its parts, the checkpoint directory such a test uploads, and the environment
 * and kill point of one through the MLflow proxy's multipart upload. Shared by the tests of a
 * rerun (test/uploader/deleted-source.test.ts, test/uploader/crash-resume.test.ts) and of
 * `resume clear` (test/cli/resume-clear-uploads.test.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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
