/**
 * Issue 13, "Stored bytes are the bytes read" for checkpoint archives: the uploaded manifest
 * records the sha256 of the archive bytes that were sent (hashed while they were read) next to
 * the archive's own sha256, and an archive that no longer matches its manifest fails
 * verification instead of being published under it. Against a `file:` store and an `s3://` root
 * (moto behind `mlflow server --no-serve-artifacts`), read back with MLflow's Python client.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import { createCheckpointArchive } from '../../src/archive/create-checkpoint-archive.js';
import type { CheckpointManifest } from '../../src/archive/manifest.js';
import { ArtifactUploader } from '../../src/uploader/artifact-uploader.js';
import { FAST_RETRY } from '../faults/helpers.js';
import { describeWithServers, mlflowDirectS3Server, servers } from '../support/servers.js';
import { localRun, pythonDownloadAll, scratch, serverRun, sha256, writeTree } from './helpers.js';

/** A checkpoint directory archived with its manifest beside it. */
async function archived(): Promise<{ archive: string; manifest: CheckpointManifest }> {
  const dir = writeTree(scratch(), { 'model.safetensors': randomBytes(200 * 1024), 'config.json': '{"r": 8}' });
  const archive = join(scratch(), 'ckpt.tar.gz');
  const manifest = await createCheckpointArchive(dir, archive, { manifestPath: join(archive, '..', 'ckpt.manifest.json') });
  return { archive, manifest };
}

describeWithServers('checkpoint archives: the manifest records the uploaded sha256 (issue 13)', () => {
  it('the uploaded manifest records the sha256 of the archive bytes sent, equal to the archive\'s, checked as size and sha256 (file: store)', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const { archive, manifest } = await archived();
    const uploader = new ArtifactUploader({ stage: 'hpo', runId: run.runId, trackingUri, env: {} });
    const result = await uploader.uploadCheckpointArchive(archive);
    expect(result.status).toBe('uploaded');
    const stored = JSON.parse(readFileSync(join(artifactsDir, 'best_trial_checkpoint.manifest.json'), 'utf8')) as CheckpointManifest;
    expect(stored.archive.sha256).toBe(manifest.archive.sha256);
    expect(stored.verification).toMatchObject({ status: 'verified', checks: ['size', 'sha256'], sha256: manifest.archive.sha256, storeVerified: 'size' });
    expect(sha256(readFileSync(join(artifactsDir, 'best_trial_checkpoint.tar.gz')))).toBe(manifest.archive.sha256);
  });

  it('a manifest given as an object whose totals disagree with its files is refused before anything is sent, as one read from a file (file: store)', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const { archive, manifest } = await archived();
    const uploader = new ArtifactUploader({ stage: 'hpo', runId: run.runId, trackingUri, env: {} });
    const truncated = { ...manifest, files: manifest.files.slice(1) };
    const error = await uploader.uploadCheckpointArchive(archive, { manifest: truncated }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'manifest', message: expect.stringContaining('The manifest given does not agree with itself') });
    expect(readdirSync(artifactsDir)).toEqual([]);
  });

  it('an archive changed after its manifest was written (same size) fails with VERIFICATION_FAILED, and the uploaded manifest says why (file: store)', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const { archive, manifest } = await archived();
    // Same size, other bytes: the size check alone would pass.
    const bytes = readFileSync(archive);
    const middle = bytes.length >> 1;
    bytes[middle] = bytes[middle]! ^ 0xff;
    writeFileSync(archive, bytes);
    const uploader = new ArtifactUploader({ stage: 'hpo', runId: run.runId, trackingUri, env: {} });
    const result = await uploader.uploadCheckpointArchive(archive);
    expect(result.status).toBe('failed');
    expect(result.reason).toBe('verification-failed');
    expect(result.error).toMatchObject({ code: 'VERIFICATION_FAILED' });
    expect(result.error?.hint).toContain(manifest.archive.sha256);
    const stored = JSON.parse(readFileSync(join(artifactsDir, 'best_trial_checkpoint.manifest.json'), 'utf8')) as CheckpointManifest;
    expect(stored.verification).toMatchObject({
      status: 'failed',
      checks: ['size', 'sha256'],
      sha256: sha256(bytes),
      mismatches: [{ path: 'best_trial_checkpoint.tar.gz', reason: 'checksum' }],
    });
  });

  it('verify: false, a manifest of another archive of the same size: refused by the sha256 hashed while sending, and the uploaded manifest says so (file: store)', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const { archive, manifest } = await archived();
    const bytes = readFileSync(archive);
    const middle = bytes.length >> 1;
    bytes[middle] = bytes[middle]! ^ 0xff;
    const other = join(scratch(), 'other.tar.gz');
    writeFileSync(other, bytes);
    const uploader = new ArtifactUploader({ stage: 'hpo', runId: run.runId, trackingUri, env: {}, verify: false });
    const result = await uploader.uploadCheckpointArchive(other, { manifest });
    expect(result.status).toBe('failed');
    expect(result.reason).toBe('verification-failed');
    expect(result.error).toMatchObject({ code: 'VERIFICATION_FAILED' });
    expect(result.error?.hint).toContain(manifest.archive.sha256);
    const stored = JSON.parse(readFileSync(join(artifactsDir, 'best_trial_checkpoint.manifest.json'), 'utf8')) as CheckpointManifest;
    expect(stored.verification).toMatchObject({ status: 'failed', checks: ['sha256'], sha256: sha256(bytes), mismatches: [{ path: 'best_trial_checkpoint.tar.gz', reason: 'checksum' }] });
    // The manifest of the archive itself, with verify: false, still goes up unverified.
    const ok = await uploader.uploadCheckpointArchive(archive, { manifest, artifactPath: 'again/best.tar.gz' });
    expect(ok.status).toBe('uploaded');
    expect(JSON.parse(readFileSync(join(artifactsDir, 'again', 'best.manifest.json'), 'utf8')).verification).toEqual({ status: 'not-run' });
  });

  it('an archive uploaded to s3:// is verified by S3\'s checksum; its manifest says so, and MlflowClient downloads both byte-exact', async () => {
    const { url, s3Endpoint } = mlflowDirectS3Server();
    const { awsEnv } = servers();
    const { runId } = await serverRun(url);
    const { archive, manifest } = await archived();
    const uploader = new ArtifactUploader({
      stage: 'hpo',
      runId,
      trackingUri: url,
      env: { ...awsEnv, MLFLOW_S3_ENDPOINT_URL: s3Endpoint },
      s3: { credentials: { accessKeyId: awsEnv.AWS_ACCESS_KEY_ID!, secretAccessKey: awsEnv.AWS_SECRET_ACCESS_KEY! } },
      retry: FAST_RETRY,
    });
    const result = await uploader.uploadCheckpointArchive(archive);
    expect(result.status).toBe('uploaded');
    expect(result.files[0]).toMatchObject({ artifactPath: 'best_trial_checkpoint.tar.gz', sha256: manifest.archive.sha256, verified: 'checksum' });
    expect(result.manifest?.verification).toMatchObject({
      status: 'verified',
      checks: ['size', 'sha256'],
      sha256: manifest.archive.sha256,
      storeVerified: 'checksum',
      checksum: `sha256:${Buffer.from(manifest.archive.sha256, 'hex').toString('base64')}`,
    });
    const [out] = await pythonDownloadAll([{ trackingUri: url, runId }], { ...awsEnv, MLFLOW_S3_ENDPOINT_URL: s3Endpoint });
    expect(sha256(readFileSync(join(out!, 'best_trial_checkpoint.tar.gz')))).toBe(manifest.archive.sha256);
    const downloaded = JSON.parse(readFileSync(join(out!, 'best_trial_checkpoint.manifest.json'), 'utf8')) as CheckpointManifest;
    expect(downloaded.verification).toMatchObject({ status: 'verified', sha256: manifest.archive.sha256 });
  });
});
