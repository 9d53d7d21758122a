/**
 * The staged archive of `archiveAndUploadCheckpoint` is found again by what the archive takes
 * (docs/resume.md, "Archives"): files it leaves out (an `exclude`d log the training keeps
 * appending to, a `wandb/` folder, a `__pycache__/` of the default skip list) may change between
 * the interrupted run and the rerun without the archive being built again; any change to a file
 * it takes still gives a fresh archive. Against a real `file:` store; the first run's archive
 * upload fails (the store refuses it), which keeps the staged archive as a kill would.
 */
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CheckpointManifest } from '../../src/archive/manifest.js';
import { ArtifactUploader } from '../../src/uploader/artifact-uploader.js';
import { localRun, recordingLogger, scratch, sha256, wrappedStore, writeTree } from './helpers.js';

const ARCHIVE = 'best/ckpt.tar.gz';
const RESUMED = /Resuming with the archive an interrupted run built/;

/** A checkpoint with files the archive leaves out, and a first run whose archive upload failed, its staged archive kept. */
async function interruptedRun() {
  const { trackingUri, run, artifactsDir } = await localRun();
  const ckpt = writeTree(scratch(), {
    'model.safetensors': Buffer.alloc(4096, 7),
    'config.json': '{"layers":2}',
    'train.log': 'step 1\n',
    'wandb/run-1/events.txt': 'e1',
    '__pycache__/callbacks.cpython-312.pyc': 'pyc',
  });
  const journalDir = scratch('au-journal-');
  const options = { stage: 'hpo', runId: run.runId, trackingUri, env: {}, journalDir } as const;
  const refused = new ArtifactUploader({
    ...options,
    resolveStore: wrappedStore((path, upload) => (path === ARCHIVE ? Promise.reject(new Error('store refused the archive (test)')) : upload())),
  });
  const first = await refused.archiveAndUploadCheckpoint(ckpt, { artifactPath: ARCHIVE, exclude: ['*.log', 'wandb/'] });
  expect(first.status).toBe('failed');
  const staged = readdirSync(join(journalDir, 'archives'));
  expect(staged).toHaveLength(1);
  const stagedManifest = readFileSync(join(journalDir, 'archives', staged[0]!, 'ckpt.manifest.json'), 'utf8');
  return { ckpt, artifactsDir, options, stagedManifest };
}

describe('a staged archive is reused by what the archive takes', () => {
  it('files left out by `exclude` and the default skip list changed: the rerun resumes with the staged archive', async () => {
    const { ckpt, artifactsDir, options, stagedManifest } = await interruptedRun();
    appendFileSync(join(ckpt, 'train.log'), 'step 2\n'.repeat(100));
    writeTree(ckpt, { 'wandb/run-1/events.txt': 'e1 e2', 'wandb/run-1/more.txt': 'm', '__pycache__/callbacks.cpython-312.pyc': 'recompiled' });

    const logger = recordingLogger();
    const result = await new ArtifactUploader({ ...options, logger }).archiveAndUploadCheckpoint(ckpt, { artifactPath: ARCHIVE, exclude: ['*.log', 'wandb/'] });
    expect(result).toMatchObject({ status: 'uploaded', verification: { status: 'verified' } });
    expect(logger.lines.some(([level, line]) => level === 'info' && RESUMED.test(line))).toBe(true);
    // The very archive the interrupted run staged (its manifest uploaded with the verification added).
    const staged = JSON.parse(stagedManifest) as CheckpointManifest;
    const uploaded = JSON.parse(readFileSync(join(artifactsDir, 'best', 'ckpt.manifest.json'), 'utf8')) as CheckpointManifest;
    expect({ ...uploaded, verification: undefined }).toEqual({ ...staged, verification: undefined });
    expect(staged.files.map((f) => f.path)).toEqual(['config.json', 'model.safetensors']);
    expect(sha256(readFileSync(join(artifactsDir, 'best', 'ckpt.tar.gz')))).toBe(staged.archive.sha256);
  });

  it('a file the archive takes changed: the rerun builds a fresh archive with the new bytes', async () => {
    const { ckpt, artifactsDir, options, stagedManifest } = await interruptedRun();
    writeFileSync(join(ckpt, 'config.json'), '{"layers":3}');

    const logger = recordingLogger();
    const result = await new ArtifactUploader({ ...options, logger }).archiveAndUploadCheckpoint(ckpt, { artifactPath: ARCHIVE, exclude: ['*.log', 'wandb/'] });
    expect(result).toMatchObject({ status: 'uploaded', verification: { status: 'verified' } });
    expect(logger.lines.some(([, line]) => RESUMED.test(line))).toBe(false);
    const uploaded = JSON.parse(readFileSync(join(artifactsDir, 'best', 'ckpt.manifest.json'), 'utf8')) as CheckpointManifest;
    expect(uploaded.archive.sha256).not.toBe((JSON.parse(stagedManifest) as CheckpointManifest).archive.sha256);
    const config = uploaded.files.find((f) => f.path === 'config.json')!;
    expect(config.sha256).toBe(sha256(Buffer.from('{"layers":3}')));
  });

  it('a new name the manifest lists as left out (a second log): a fresh archive, so the uploaded manifest says what was left out', async () => {
    const { ckpt, artifactsDir, options } = await interruptedRun();
    writeTree(ckpt, { 'eval.log': 'eval 1\n' });
    const logger = recordingLogger();
    const result = await new ArtifactUploader({ ...options, logger }).archiveAndUploadCheckpoint(ckpt, { artifactPath: ARCHIVE, exclude: ['*.log', 'wandb/'] });
    expect(result.status).toBe('uploaded');
    expect(logger.lines.some(([, line]) => RESUMED.test(line))).toBe(false);
    const manifest = JSON.parse(readFileSync(join(artifactsDir, 'best', 'ckpt.manifest.json'), 'utf8')) as CheckpointManifest;
    expect(manifest.skipped.map((s) => s.path)).toEqual(['__pycache__/', 'eval.log', 'train.log', 'wandb/']);
  });
});
