/**
 * A directory of the checkpoint that cannot be listed fails the archive with PATH_UNREADABLE and
 * a hint, not a raw EACCES (which the CLI printed as INTERNAL_ERROR); so does a file that cannot
 * be read, found by the scan before any file is archived. Root lists every
 * directory, so when the tests run as root (as CI does) this file drops root for good once its
 * fixtures exist (test/support/unprivileged.ts): the case runs for real everywhere.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createCheckpointArchive } from '../../src/archive/create-checkpoint-archive.js';
import { LocalPathError } from '../../src/core/errors.js';
import { dropRootForGood, giveToNobody, isRoot, NOBODY } from '../support/unprivileged.js';

let work: string;
let ckpt: string;
/** A checkpoint whose files can all be listed, one of which cannot be read. */
let sealed: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'au-archive-unreadable-'));
  ckpt = join(work, 'ckpt');
  mkdirSync(join(ckpt, 'locked'), { recursive: true });
  writeFileSync(join(ckpt, 'a.txt'), 'a');
  writeFileSync(join(ckpt, 'locked', 'w.bin'), 'w');
  sealed = join(work, 'sealed');
  mkdirSync(join(sealed, 'z'), { recursive: true });
  writeFileSync(join(sealed, 'a.bin'), 'a'.repeat(4096));
  writeFileSync(join(sealed, 'z', 'secret.bin'), 's');
  giveToNobody(work);
  chmodSync(join(ckpt, 'locked'), 0o000); // its owner (nobody, or the current user) may not list it
  chmodSync(join(sealed, 'z', 'secret.bin'), 0o000); // nor read this file
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
  expect((await readdir(work)).sort()).toEqual(['ckpt', 'sealed']);

  const manifest = await createCheckpointArchive(ckpt, join(work, 'ckpt.tar.gz'), { exclude: ['locked/'] });
  expect(manifest.files.map((f) => f.path)).toEqual(['a.txt']);
});

it('a file that cannot be read is PATH_UNREADABLE with a permissions hint, found by the scan before any file is read; `exclude` leaves it out', async () => {
  const out = join(work, 'sealed.tar.gz');
  const events: string[] = [];
  const error = await createCheckpointArchive(sealed, out, { progressIntervalMs: 0, onProgress: (e) => events.push(e.type === 'phase' ? e.phase : e.path) }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(LocalPathError);
  expect(error).toMatchObject({
    code: 'PATH_UNREADABLE',
    path: join(sealed, 'z', 'secret.bin'),
    message: expect.stringContaining('cannot be read (EACCES)'),
    hint: expect.stringMatching(/permissions.*exclude/),
  });
  // Refused while scanning: a.bin, before it in the archive, was never read.
  expect(events).toEqual(['scanning']);
  expect((await readdir(work)).filter((name) => name.startsWith('sealed.tar.gz'))).toEqual([]);

  const manifest = await createCheckpointArchive(sealed, out, { exclude: ['secret.bin'] });
  expect(manifest.files.map((f) => f.path)).toEqual(['a.bin']);
});

it('a file made unreadable after the scan gets the same error and hint, and the archive is not replaced', async () => {
  const out = join(work, 'late.tar.gz');
  const before = await createCheckpointArchive(sealed, out, { exclude: ['secret.bin'] });
  const error = await createCheckpointArchive(sealed, out, {
    exclude: ['secret.bin'],
    // The scan is done, no file is read yet: the barrier where a permission change lands late.
    onProgress: (e) => e.type === 'phase' && e.phase === 'archiving' && chmodSync(join(sealed, 'a.bin'), 0o000),
  }).catch((e: unknown) => e);
  chmodSync(join(sealed, 'a.bin'), 0o644);
  expect(error).toBeInstanceOf(LocalPathError);
  expect(error).toMatchObject({
    code: 'PATH_UNREADABLE',
    path: join(sealed, 'a.bin'),
    message: expect.stringContaining('cannot be read (EACCES)'),
    hint: expect.stringMatching(/permissions.*exclude/),
  });
  expect(createHash('sha256').update(await readFile(out)).digest('hex')).toBe(before.archive.sha256);
  expect((await readdir(work)).filter((name) => name.startsWith('late.tar.gz.tmp-'))).toEqual([]);
});
