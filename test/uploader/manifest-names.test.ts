/**
 * Two archives whose manifests would share a name in one artifact folder (`a.tar.gz` and
 * `a.tgz` in one HPO trial's folder): the second upload would overwrite the first one's
 * manifest. It is refused before anything is sent. Against a real `file:` store and the
 * `mlflow server` artifact proxy.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createCheckpointArchive } from '../../src/archive/create-checkpoint-archive.js';
import { manifestFileName, type CheckpointManifest } from '../../src/archive/manifest.js';
import { ArtifactUploader } from '../../src/uploader/artifact-uploader.js';
import { uploadHpoArtifacts } from '../../src/stages/hpo.js';
import { FAST_RETRY } from '../faults/helpers.js';
import { describeWithServers, mlflowServer } from '../support/servers.js';
import { localRun, scratch, serverRun, writeTree } from './helpers.js';

/** A checkpoint archived as `name`, with its manifest beside it. */
async function archived(name: string): Promise<{ archive: string; manifest: CheckpointManifest }> {
  const dir = writeTree(scratch(), { 'model.safetensors': randomBytes(4096), 'config.json': `{"name": "${name}"}` });
  const archive = join(scratch(), name);
  const manifest = await createCheckpointArchive(dir, archive, { manifestPath: join(archive, '..', manifestFileName(name)) });
  return { archive, manifest };
}

describe('manifestFileName', () => {
  it('strips the archive suffix whatever its case', () => {
    expect(manifestFileName('x.tar.gz')).toBe('x.manifest.json');
    expect(manifestFileName('A.TAR.GZ')).toBe('A.manifest.json');
    expect(manifestFileName('B.Tgz')).toBe('B.manifest.json');
    expect(manifestFileName('dir/C.TAR')).toBe('C.manifest.json');
    expect(manifestFileName('weights.bin')).toBe('weights.bin.manifest.json');
  });
});

describe('two archives whose manifests share a name, in one folder (file: store)', () => {
  it('uploadHpoArtifacts: a.tgz after a.tar.gz in the same trial is refused before anything is sent; the first manifest stays', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const first = await archived('a.tar.gz');
    const second = await archived('a.tgz');
    const common = { runId: run.runId, trackingUri, env: {}, trialId: 7 };
    expect((await uploadHpoArtifacts({ ...common, archivePath: first.archive })).status).toBe('uploaded');
    const trialDir = join(artifactsDir, 'trials', '7');
    expect(readdirSync(trialDir).sort()).toEqual(['a.manifest.json', 'a.tar.gz']);

    const refused = await uploadHpoArtifacts({ ...common, archivePath: second.archive }).catch((error: unknown) => error);
    expect(refused).toMatchObject({ name: 'InvalidArgumentError', code: 'INVALID_ARGUMENT', argument: 'artifactPath' });
    expect((refused as Error).message).toContain('a.tar.gz');
    expect((refused as { hint?: string }).hint).toContain('a name of its own');
    // Nothing was sent: the folder holds the first archive and its own manifest.
    expect(readdirSync(trialDir).sort()).toEqual(['a.manifest.json', 'a.tar.gz']);
    const stored = JSON.parse(readFileSync(join(trialDir, 'a.manifest.json'), 'utf8')) as CheckpointManifest;
    expect(stored.archive.sha256).toBe(first.manifest.archive.sha256);
  });

  it('A.TAR.GZ after a.tar.gz differ in their manifest names; A.TAR.GZ after A.tar.gz is refused', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const uploader = new ArtifactUploader({ stage: 'hpo', runId: run.runId, trackingUri, env: {} });
    const lower = await archived('a.tar.gz');
    const upper = await archived('A.TAR.GZ');
    const mixed = await archived('A.tar.gz');
    expect((await uploader.uploadCheckpointArchive(lower.archive, { artifactPath: 'ckpt/a.tar.gz' })).status).toBe('uploaded');
    expect((await uploader.uploadCheckpointArchive(upper.archive, { artifactPath: 'ckpt/A.TAR.GZ' })).status).toBe('uploaded');
    expect(readdirSync(join(artifactsDir, 'ckpt')).sort()).toEqual(['A.TAR.GZ', 'A.manifest.json', 'a.manifest.json', 'a.tar.gz']);
    await expect(uploader.uploadCheckpointArchive(mixed.archive, { artifactPath: 'ckpt/A.tar.gz' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(existsSync(join(artifactsDir, 'ckpt', 'A.tar.gz'))).toBe(false);
  });

  it('a file that is no archive (model beside model.tar.gz) has no manifest to replace: the archive is uploaded', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const uploader = new ArtifactUploader({ stage: 'hpo', runId: run.runId, trackingUri, env: {} });
    const plain = join(scratch(), 'model');
    writeFileSync(plain, 'not an archive');
    expect((await uploader.uploadFile(plain, { artifactPath: 'ckpt' })).status).toBe('uploaded');
    const archive = await archived('model.tar.gz');
    expect((await uploader.uploadCheckpointArchive(archive.archive, { artifactPath: 'ckpt/model.tar.gz' })).status).toBe('uploaded');
    expect(readdirSync(join(artifactsDir, 'ckpt')).sort()).toEqual(['model', 'model.manifest.json', 'model.tar.gz']);
  });

  it('an A.TAR.GZ whose manifest beside it has the name earlier versions gave it (A.TAR.GZ.manifest.json) is uploaded with it', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const dir = writeTree(scratch(), { 'w.bin': randomBytes(1024) });
    const archive = join(scratch(), 'A.TAR.GZ');
    const manifest = await createCheckpointArchive(dir, archive, { manifestPath: `${archive}.manifest.json` });
    const uploader = new ArtifactUploader({ stage: 'hpo', runId: run.runId, trackingUri, env: {} });
    const result = await uploader.uploadCheckpointArchive(archive, { artifactPath: 'ckpt/A.TAR.GZ' });
    expect(result.manifest?.archive.sha256).toBe(manifest.archive.sha256);
    expect(readdirSync(join(artifactsDir, 'ckpt')).sort()).toEqual(['A.TAR.GZ', 'A.manifest.json']);
  });

  it('archiveAndUploadCheckpoint beside an archive of the same manifest name is refused before it archives or stages anything', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const journalDir = scratch();
    const uploader = new ArtifactUploader({ stage: 'hpo', runId: run.runId, trackingUri, env: {}, journalDir });
    const { archive } = await archived('a.tgz');
    expect((await uploader.uploadCheckpointArchive(archive, { artifactPath: 'ckpt/a.tgz' })).status).toBe('uploaded');
    const checkpoint = writeTree(scratch(), { 'model.safetensors': randomBytes(4096) });
    await expect(uploader.archiveAndUploadCheckpoint(checkpoint, { artifactPath: 'ckpt/a.tar.gz' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'artifactPath' });
    expect(readdirSync(join(artifactsDir, 'ckpt')).sort()).toEqual(['a.manifest.json', 'a.tgz']);
    // No archive was built into the journal's staging area for a rerun that would be refused again.
    expect(existsSync(join(journalDir, 'archives')) ? readdirSync(join(journalDir, 'archives')) : []).toEqual([]);
  });

  it('the same archive uploaded again to the same place is not a collision', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const uploader = new ArtifactUploader({ stage: 'hpo', runId: run.runId, trackingUri, env: {} });
    const { archive } = await archived('a.tgz');
    expect((await uploader.uploadCheckpointArchive(archive, { artifactPath: 'ckpt/a.tgz' })).status).toBe('uploaded');
    expect((await uploader.uploadCheckpointArchive(archive, { artifactPath: 'ckpt/a.tgz' })).status).toBe('uploaded');
    expect(readdirSync(join(artifactsDir, 'ckpt')).sort()).toEqual(['a.manifest.json', 'a.tgz']);
  });
});

describeWithServers('two archives whose manifests share a name, in one folder (mlflow server)', () => {
  it('a.tar.gz after a.tgz in the same trial is refused; the server holds the first pair only', async () => {
    const { url } = mlflowServer();
    const { runId } = await serverRun(url);
    const first = await archived('a.tgz');
    const second = await archived('a.tar.gz');
    const common = { runId, trackingUri: url, env: {}, retry: FAST_RETRY, trialId: 'x' };
    expect((await uploadHpoArtifacts({ ...common, archivePath: first.archive })).status).toBe('uploaded');
    await expect(uploadHpoArtifacts({ ...common, archivePath: second.archive })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'artifactPath' });
    const res = await fetch(`${url}/api/2.0/mlflow/artifacts/list?run_id=${runId}&path=trials/x`);
    const listed = ((await res.json()) as { files: Array<{ path: string }> }).files.map((f) => f.path).sort();
    expect(listed).toEqual(['trials/x/a.manifest.json', 'trials/x/a.tgz']);
    const manifest = (await (await fetch(`${url}/get-artifact?run_id=${runId}&path=trials/x/a.manifest.json`)).json()) as CheckpointManifest;
    expect(manifest.archive.sha256).toBe(first.manifest.archive.sha256);
  });
});
