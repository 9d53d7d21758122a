/**
 * What a real checkpoint folder holds, archived and uploaded in one call
 * (`archiveAndUploadCheckpoint`, `uploadHpoArtifacts({ checkpointDir })`, `hpo --checkpoint-dir`):
 * the folder becomes one archive, so its names are not MLflow artifact paths, its dangling
 * links are kept as links and its FIFOs are left out, as `createCheckpointArchive` does. The
 * upload's plan used to apply the rules of a plain directory upload and refused all three before
 * archiving. Against a real `file:` store; the uploaded archive is extracted with GNU tar.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readlinkSync, symlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CheckpointManifest } from '../../src/archive/manifest.js';
import { ArtifactUploader } from '../../src/uploader/artifact-uploader.js';
import { gnuTarExtract, localRun, scratch, sha256, writeTree } from './helpers.js';

/** Names a plain directory upload refuses (MLflow cannot store them as artifact paths), which an archive holds as they are. */
const ODD_NAMES = ['a#b.txt', 'what?.json', '100%25.txt', 'new\nline.txt', ' leading-space.txt', 'back\\slash.txt', '.artifact.uploading.x'];

describe('archiveAndUploadCheckpoint archives what createCheckpointArchive archives (file: store)', () => {
  it('names MLflow could not store, a dangling link and a FIFO: archived as they are, the FIFO left out and said so', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const ckpt = writeTree(scratch(), {
      'model.safetensors': Buffer.alloc(2048, 7),
      ...Object.fromEntries(ODD_NAMES.map((name) => [`odd/${name}`, `bytes of ${name}`])),
    });
    symlinkSync('optimizer.pt', join(ckpt, 'latest-optimizer')); // written later in training, or never
    execFileSync('mkfifo', [join(ckpt, 'progress.pipe')]);
    const options = { stage: 'hpo', runId: run.runId, trackingUri, env: {} } as const;

    const dryRun = await new ArtifactUploader({ ...options, dryRun: true }).archiveAndUploadCheckpoint(ckpt, { artifactPath: 'best/ckpt.tar.gz' });
    expect(dryRun).toMatchObject({ status: 'skipped', reason: 'dry-run' });
    expect(dryRun.skippedFiles).toEqual([{ path: 'progress.pipe', reason: 'special file (FIFO, socket or device)' }]);

    const uploader = new ArtifactUploader(options);

    const result = await uploader.archiveAndUploadCheckpoint(ckpt, { artifactPath: 'best/ckpt.tar.gz' });
    expect(result).toMatchObject({ status: 'uploaded', verification: { status: 'verified' } });
    expect(result.skippedFiles).toEqual([{ path: 'progress.pipe', reason: 'special file (FIFO, socket or device)' }]);

    const manifest = JSON.parse(readFileSync(join(artifactsDir, 'best', 'ckpt.manifest.json'), 'utf8')) as CheckpointManifest;
    expect(manifest.files.map((f) => f.path)).toEqual(['model.safetensors', ...ODD_NAMES.map((name) => `odd/${name}`)].sort());
    expect(manifest.symlinks).toEqual([{ path: 'latest-optimizer', target: 'optimizer.pt' }]);
    expect(manifest.skipped).toEqual([{ path: 'progress.pipe', reason: 'unsupported-type' }]);

    const extracted = await gnuTarExtract(join(artifactsDir, 'best', 'ckpt.tar.gz'));
    for (const file of manifest.files) expect(sha256(readFileSync(join(extracted, file.path)))).toBe(file.sha256);
    expect(readlinkSync(join(extracted, 'latest-optimizer'))).toBe('optimizer.pt');
  });

  it('still refuses a link that leads outside the folder, before anything is stored', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const ckpt = writeTree(scratch(), { 'model.safetensors': 'w' });
    const outside = writeTree(scratch(), { 'credentials.json': '{}' });
    symlinkSync(relative(ckpt, join(outside, 'credentials.json')), join(ckpt, 'credentials.json'));
    const uploader = new ArtifactUploader({ stage: 'hpo', runId: run.runId, trackingUri, env: {} });
    await expect(uploader.archiveAndUploadCheckpoint(ckpt, { artifactPath: 'best/ckpt.tar.gz' })).rejects.toMatchObject({ code: 'SYMLINK_ESCAPES' });
    expect(() => readFileSync(join(artifactsDir, 'best', 'ckpt.tar.gz'))).toThrow(/ENOENT/);
  });
});
