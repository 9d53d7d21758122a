/**
 * A checkpoint nested deeper than the system's path limit (PATH_MAX, 4096 bytes on Linux): the
 * plain upload's plan and the archive's scan both meet ENAMETOOLONG listing its deepest folder.
 * Both refused it typed, with a hint about permissions (`chmod u+r`) or concurrent writers
 * ("make sure nothing writes...") that no one could follow; they now say the path is too long
 * and what to do. The tree is real: built by bash, `cd -P` one relative step at a time
 * (a relative chdir works past PATH_MAX; process.chdir is not allowed in vitest workers), and
 * removed by GNU `rm`, which walks it the same way (Node's recursive rm uses whole paths).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createCheckpointArchive } from '../../src/archive/create-checkpoint-archive.js';
import { LocalPathError } from '../../src/core/errors.js';
import { ArtifactUploader } from '../../src/uploader/artifact-uploader.js';
import { localRun } from './helpers.js';

/** 22 folders of 200 bytes: over 4400 bytes below the checkpoint, past PATH_MAX wherever the temp root is. */
const FOLDER = 'd'.repeat(200);
const DEPTH = 22;
const TOO_LONG_HINT = /longer than 4096 bytes \(PATH_MAX.*shorten the path.*`exclude`/;

let root: string;
let ckpt: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'au-too-long-'));
  ckpt = join(root, 'ckpt');
  const made = spawnSync('bash', ['-c', `set -e; mkdir ckpt; echo w > ckpt/model.bin; cd -P ckpt; for i in $(seq ${DEPTH}); do mkdir ${FOLDER}; cd -P ${FOLDER}; done; echo deep > deep.bin`], { cwd: root });
  expect(made.status, made.stderr.toString()).toBe(0);
  expect(join(ckpt, ...Array<string>(DEPTH).fill(FOLDER), 'deep.bin').length).toBeGreaterThan(4096);
});
afterAll(() => {
  if (root) expect(spawnSync('rm', ['-rf', root]).status).toBe(0);
});

async function failure(action: Promise<unknown>): Promise<LocalPathError> {
  const error = await action.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LocalPathError);
  return error as LocalPathError;
}

it('a plain upload of the directory is refused before any byte is sent, with a hint to shorten the path, not to chmod', async () => {
  const { trackingUri, run, artifactsDir } = await localRun();
  const uploader = new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri, env: {} });
  const error = await failure(uploader.uploadCheckpoint(ckpt));
  expect(error.code).toBe('PATH_UNREADABLE');
  expect(error.message).toMatch(/directory cannot be read \(ENAMETOOLONG\)/);
  expect(error.hint).toMatch(TOO_LONG_HINT);
  expect(error.hint).not.toMatch(/chmod/);
  expect(readdirSync(artifactsDir)).toEqual([]);
});

it('an archive of the directory is refused with the same hint, not one about concurrent writers, and nothing is written', async () => {
  const out = join(root, 'ckpt.tar.gz');
  const error = await failure(createCheckpointArchive(ckpt, out));
  expect(error.code).toBe('PATH_UNREADABLE');
  expect(error.message).toMatch(/longer than the system allows \(ENAMETOOLONG\)/);
  expect(error.hint).toMatch(TOO_LONG_HINT);
  expect(readdirSync(root)).toEqual(['ckpt']);
});
