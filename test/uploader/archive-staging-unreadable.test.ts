/**
 * A folder the archive leaves out is not read to find the staged archive again: one that cannot
 * be listed (EACCES) made the staging key fail with a "Cannot stage the archive in the resume
 * journal" warning, and the archive went to a temp directory that no rerun could resume from,
 * although the archive and its upload never needed the folder. Root lists every directory, so
 * this file drops root for good once its fixtures exist (test/support/unprivileged.ts), as
 * test/archive/unreadable-scan.test.ts does; against a real `file:` store. The same folder, not
 * excluded, refuses a plain upload with a hint that names the permission a directory needs;
 * excluded from a plain upload, it is counted as one directory left out (`directoriesSkipped`).
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LocalPathError } from '../../src/core/errors.js';
import { planDirectory } from '../../src/uploader/plan.js';
import { ArtifactUploader } from '../../src/uploader/artifact-uploader.js';
import { dropRootForGood, giveToNobody, isRoot, NOBODY } from '../support/unprivileged.js';
import { localRun, recordingLogger, wrappedStore, writeTree } from './helpers.js';

const ARCHIVE = 'best/ckpt.tar.gz';
let work: string | undefined;
let ckpt: string;
let journalDir: string;
let local: Awaited<ReturnType<typeof localRun>>;

beforeAll(async () => {
  // Everything needing root first: the fixtures, handed to nobody, then root dropped.
  work = mkdtempSync(join(tmpdir(), 'au-staging-unreadable-'));
  local = await localRun(work);
  ckpt = writeTree(join(work, 'ckpt'), { 'model.safetensors': Buffer.alloc(4096, 7), 'cache/blob.bin': 'b' });
  journalDir = join(work, 'journal');
  mkdirSync(journalDir);
  giveToNobody(work);
  chmodSync(join(ckpt, 'cache'), 0o000); // its owner (nobody, or the current user) may not list it
  dropRootForGood();
  if (isRoot) expect(process.getuid?.()).toBe(NOBODY);
});
afterAll(() => {
  if (!work) return;
  chmodSync(join(work, 'ckpt', 'cache'), 0o700);
  rmSync(work, { recursive: true, force: true });
});

it('an excluded folder that cannot be listed: the archive is staged (no warning), kept after a failed upload, and the rerun resumes with it', async () => {
  const { trackingUri, run, artifactsDir } = local;
  const options = { stage: 'hpo', runId: run.runId, trackingUri, env: {}, journalDir } as const;
  const firstLog = recordingLogger();
  const refused = new ArtifactUploader({
    ...options,
    logger: firstLog,
    resolveStore: wrappedStore((path, upload) => (path === ARCHIVE ? Promise.reject(new Error('store refused the archive (test)')) : upload())),
  });
  expect((await refused.archiveAndUploadCheckpoint(ckpt, { artifactPath: ARCHIVE, exclude: ['cache/'] })).status).toBe('failed');
  expect(firstLog.lines.filter(([, line]) => /Cannot stage/.test(line))).toEqual([]);
  expect(readdirSync(join(journalDir, 'archives')).filter((name) => !name.endsWith('.lock'))).toHaveLength(1);

  const logger = recordingLogger();
  const result = await new ArtifactUploader({ ...options, logger }).archiveAndUploadCheckpoint(ckpt, { artifactPath: ARCHIVE, exclude: ['cache/'] });
  expect(result).toMatchObject({ status: 'uploaded', verification: { status: 'verified' } });
  expect(logger.lines.filter(([level]) => level === 'warn')).toEqual([]);
  expect(logger.lines.some(([, line]) => /Resuming with the archive an interrupted run built/.test(line))).toBe(true);
  expect(readdirSync(join(artifactsDir, 'best')).sort()).toEqual(['ckpt.manifest.json', 'ckpt.tar.gz']);
});

it('the same folder excluded from a plain upload: uploaded, and the result counts it as one directory left out, never read', async () => {
  const { trackingUri, run } = await localRun(mkdtempSync(join(work!, 'excluded-')));
  const result = await new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri, env: {} }).uploadCheckpoint(ckpt, { exclude: ['cache/'] });
  expect(result).toMatchObject({ status: 'uploaded', skippedFiles: [{ path: 'cache', reason: 'excluded by "cache/"' }] });
  expect(result.metrics).toMatchObject({ filesSent: 1, filesSkipped: 0, bytesSkipped: 0, directoriesSkipped: 1 });
});

it('the same folder not excluded: a plain upload is refused with a hint to chmod u+rx (a directory is listed and searched), and nothing is sent', async () => {
  const error = await planDirectory(ckpt).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(LocalPathError);
  expect(error).toMatchObject({ code: 'PATH_UNREADABLE', message: expect.stringContaining('directory cannot be read (EACCES)'), hint: expect.stringContaining('u+rx for a directory') });
  const { trackingUri, run } = await localRun(mkdtempSync(join(work!, 'plain-')));
  const uploaded = await new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri, env: {} }).uploadCheckpoint(ckpt).catch((e: unknown) => e);
  expect(uploaded).toMatchObject({ code: 'PATH_UNREADABLE', hint: expect.stringContaining('u+rx for a directory') });
});
