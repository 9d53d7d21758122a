/**
 * `resume clear` on a journal this user may read but not write (one a container made as root,
 * another user's shared journal): a PATH_UNWRITABLE error naming it, exit 2, before any record
 * is removed or any upload given up; `resume list` still lists it. Root writes everywhere, so
 * when the tests run as root (as CI does) this file drops root for good once its fixtures
 * exist (test/support/unprivileged.ts): the case runs for real everywhere, never skipped.
 */
import { chmodSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { LocalPathError } from '../../src/core/errors.js';
import { localFileIdentity, UploadJournal } from '../../src/uploader/journal.js';
import { dropRootForGood } from '../support/unprivileged.js';
import { cli } from './helpers.js';

let dir: string;
let names: string[];

beforeAll(async () => {
  // Made by the current user (root in CI), readable by all, writable by its owner only; then
  // root dropped, or (not root) the directory made read-only for its owner too.
  const root = mkdtempSync(join(tmpdir(), 'au-unwritable-journal-'));
  chmodSync(root, 0o755);
  dir = join(root, 'journal');
  const journal = await UploadJournal.open({ dir });
  for (const name of ['a.bin', 'b.bin']) writeFileSync(join(root, name), 'z'.repeat(2048));
  const key = async (name: string) => ({ target: 'http://127.0.0.1:9/', runId: 'run-7', artifactPath: `ckpt/${name}`, local: await localFileIdentity(join(root, name)) });
  await (await journal.begin(await key('a.bin')))!.finish();
  const partial = (await journal.begin(await key('b.bin')))!;
  await partial.startMultipart('mpu-123', 1024);
  names = readdirSync(dir).sort();
  for (const name of names) chmodSync(join(dir, name), 0o644);
  chmodSync(dir, process.getuid?.() === 0 ? 0o755 : 0o555);
  dropRootForGood();
});

describe('a resume journal this user cannot write', () => {
  it('resume clear (and --keep-uploads, and the library) refuse it with PATH_UNWRITABLE before anything is removed or given up; list still lists it', async () => {
    for (const extra of [[], ['--keep-uploads']]) {
      const run = await cli(['resume', 'clear', '--journal-dir', dir, '--tracking-uri', 'http://127.0.0.1:9', '--json', ...extra]);
      expect(run.code, run.stderr).toBe(2);
      expect(run.json().error).toMatchObject({ code: 'PATH_UNWRITABLE', path: dir, message: expect.stringContaining(`The resume journal ${dir} cannot be written`), hint: expect.stringMatching(/user who owns it/) });
      expect(run.stderr).not.toMatch(/looks like a bug|INTERNAL_ERROR/);
      expect((await readdir(dir)).sort()).toEqual(names);
    }
    const refused = await (await UploadJournal.open({ dir, sweep: false })).clear().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(LocalPathError);
    expect(refused).toMatchObject({ code: 'PATH_UNWRITABLE', path: dir });
    expect((await readdir(dir)).sort()).toEqual(names);

    const list = await cli(['resume', 'list', '--journal-dir', dir, '--json']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.json().entries.map((e: { artifactPath: string }) => e.artifactPath).sort()).toEqual(['ckpt/a.bin', 'ckpt/b.bin']);
  });
});
