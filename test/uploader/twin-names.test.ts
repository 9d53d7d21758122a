/**
 * Names that differ only in letter case (`Model.bin`, `model.bin`) or in Unicode normalization
 * (`café` NFC and NFD) are stored as given, as Linux and the stores tell them apart, but collide
 * when the artifacts are downloaded or the archive extracted on macOS or Windows: one file
 * silently replaces the other. The plan warns, naming both paths, through the result's
 * `warnings` and the logger; it never refuses. Against a real `./mlruns` store.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pathFilters, planLocalDirectory } from '../../src/uploader/plan.js';
import { ArtifactUploader } from '../../src/uploader/artifact-uploader.js';
import { localRun, recordingLogger, scratch, writeTree } from './helpers.js';

const NFC = 'caf\u00e9.txt';
const NFD = 'cafe\u0301.txt';

function twins(): string {
  return writeTree(scratch(), { 'Model.bin': 'A', 'model.bin': 'a', [NFC]: 'c', [NFD]: 'd', 'config.json': '{}' });
}

describe('twin names', () => {
  it('the plan warns once per group, naming both paths and what happens, and keeps every file', async () => {
    const plan = await planLocalDirectory(twins(), { artifactPath: 'ck', filters: pathFilters([], []), skipDefaultFiles: true });
    expect(plan.files.map((f) => f.artifactPath).sort()).toEqual(['ck/Model.bin', `ck/${NFD}`, `ck/${NFC}`, 'ck/config.json', 'ck/model.bin'].sort());
    expect(plan.warnings).toHaveLength(2);
    const byCase = plan.warnings.find((w) => w.includes('letter case'));
    expect(byCase).toContain('"ck/Model.bin" and "ck/model.bin" differ only in letter case');
    expect(byCase).toContain('on macOS and Windows they land on one file, the others silently replaced');
    const byForm = plan.warnings.find((w) => w.includes('normalization'));
    expect(byForm).toContain(`${JSON.stringify(`ck/${NFD}`)} (Unicode NFD)`);
    expect(byForm).toContain(JSON.stringify(`ck/${NFC}`));
    expect(byForm).toContain('on macOS they land on one file');
    // A name without a twin says nothing.
    const single = await planLocalDirectory(writeTree(scratch(), { 'Model.bin': 'A', 'config.json': '{}' }), { artifactPath: '', filters: pathFilters([], []), skipDefaultFiles: true });
    expect(single.warnings).toEqual([]);
  });

  it('warns about a file whose name folds to a directory\'s, not about two directories that fold to one', async () => {
    // `A` and `a/b.bin`: on macOS or Windows a file and a directory cannot both be named `a`, so
    // one of them is lost. `Ckpt/x.bin` and `ckpt/y.bin` land in one folder there, both kept.
    const dir = writeTree(scratch(), { A: 'file', 'a/b.bin': 'x', 'Ckpt/x.bin': '1', 'ckpt/y.bin': '2', [NFC]: 'c', [`${NFD}/inner.bin`]: 'd' });
    const plan = await planLocalDirectory(dir, { artifactPath: 'ck', filters: pathFilters([], []), skipDefaultFiles: true });
    expect(plan.files).toHaveLength(6);
    expect(plan.warnings).toHaveLength(2);
    const byCase = plan.warnings.find((w) => w.includes('letter case'));
    expect(byCase).toContain('"ck/A" (a file) and the directory "ck/a/" differ only in letter case');
    expect(byCase).toContain('on macOS and Windows a file and a directory cannot both have that name, so the file or the directory with everything in it is lost');
    const byForm = plan.warnings.find((w) => w.includes('normalization'));
    expect(byForm).toContain(`${JSON.stringify(`ck/${NFC}`)} (a file) and the directory ${JSON.stringify(`ck/${NFD}/`)} (Unicode NFD) differ only in Unicode normalization (NFC/NFD)`);
    expect(byForm).toContain('on macOS a file and a directory');
    expect(plan.warnings.join('\n')).not.toMatch(/ckpt/i);
  });

  it('uploadDirectory and archiveAndUploadCheckpoint upload all of them, with the warnings in the result and the log', async () => {
    const dir = twins();
    const { trackingUri, run, artifactsDir } = await localRun();
    const logger = recordingLogger();
    const uploader = new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri, env: {}, logger });
    const plain = await uploader.uploadDirectory(dir, { artifactPath: 'plain' });
    expect(plain.status).toBe('uploaded');
    expect(readdirSync(join(artifactsDir, 'plain')).sort()).toEqual(['Model.bin', NFD, NFC, 'config.json', 'model.bin'].sort());
    expect(plain.warnings).toHaveLength(2);
    expect(plain.warnings!.join('\n')).toContain('"plain/Model.bin" and "plain/model.bin" differ only in letter case');
    const warned = logger.lines.filter(([level]) => level === 'warn').map(([, line]) => line);
    expect(warned).toEqual(plain.warnings!.map((w) => `uploadDirectory: ${w}`));

    const archived = await uploader.archiveAndUploadCheckpoint(dir, { artifactPath: 'best/ckpt.tar.gz' });
    expect(archived.status).toBe('uploaded');
    expect(archived.warnings!.join('\n')).toContain('"Model.bin" and "model.bin" differ only in letter case');
    expect(archived.manifest!.files.map((f) => f.path).sort()).toEqual(['Model.bin', NFD, NFC, 'config.json', 'model.bin'].sort());
    // The archive's manifest names them too, for whoever extracts it; logged once, by the plan.
    expect(archived.manifest!.warnings).toEqual(archived.warnings);
    const archiveWarned = logger.lines.filter(([level, line]) => level === 'warn' && line.startsWith('archiveAndUploadCheckpoint')).map(([, line]) => line);
    expect(archiveWarned).toEqual(archived.warnings!.map((w) => `archiveAndUploadCheckpoint: ${w}`));
    await uploader.close();
  });
});
