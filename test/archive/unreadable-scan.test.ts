/**
 * A directory of the checkpoint that cannot be listed fails the archive with PATH_UNREADABLE and
 * a hint, not a raw EACCES (which the CLI printed as INTERNAL_ERROR). Root lists every
 * directory, so when the tests run as root (as CI does) this file drops root for good once its
 * fixtures exist (test/support/unprivileged.ts): the case runs for real everywhere.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createCheckpointArchive } from '../../src/archive/create-checkpoint-archive.js';
import { LocalPathError } from '../../src/core/errors.js';
import { dropRootForGood, giveToNobody, isRoot, NOBODY } from '../support/unprivileged.js';

let work: string;
let ckpt: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'au-archive-unreadable-'));
  ckpt = join(work, 'ckpt');
  mkdirSync(join(ckpt, 'locked'), { recursive: true });
  writeFileSync(join(ckpt, 'a.txt'), 'a');
  writeFileSync(join(ckpt, 'locked', 'w.bin'), 'w');
  giveToNobody(work);
  chmodSync(join(ckpt, 'locked'), 0o000); // its owner (nobody, or the current user) may not list it
  dropRootForGood();
  if (isRoot) expect(process.getuid?.()).toBe(NOBODY);
});
afterAll(() => {
  if (!work) return;
  chmodSync(join(ckpt, 'locked'), 0o700);
  rmSync(work, { recursive: true, force: true });
});

it('a directory that cannot be listed is PATH_UNREADABLE with a hint, and nothing is written; `exclude` leaves it out', async () => {
  const error = await createCheckpointArchive(ckpt, join(work, 'ckpt.tar.gz')).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(LocalPathError);
  expect(error).toMatchObject({
    code: 'PATH_UNREADABLE',
    path: join(ckpt, 'locked'),
    message: expect.stringContaining('cannot be read (EACCES)'),
    hint: expect.stringMatching(/permissions.*exclude/),
  });
  expect(await readdir(work)).toEqual(['ckpt']);

  const manifest = await createCheckpointArchive(ckpt, join(work, 'ckpt.tar.gz'), { exclude: ['locked/'] });
  expect(manifest.files.map((f) => f.path)).toEqual(['a.txt']);
});
