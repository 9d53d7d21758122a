/**
 * `resume clear` on a journal this user may read but not write (one a container made as root,
 * another user's shared journal): a PATH_UNWRITABLE error naming it, exit 2, before any record
 * is removed or any upload given up, and `--dry-run` says so the same way; `resume list` still lists it. In a shared journal (a sticky
 * directory, as `/tmp`), `resume clear` removes this user's records and leaves another user's
 * (unread, as a record it cannot read; with a warning when `--remove-unreadable` tries to delete
 * it), instead of stopping half-way. Root writes everywhere, so
 * when the tests run as root (as CI does) this file drops root for good once its fixtures
 * exist (test/support/unprivileged.ts): the case runs for real everywhere, never skipped.
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { LocalPathError } from '../../src/core/errors.js';
import { localFileIdentity, UploadJournal } from '../../src/uploader/journal.js';
import { dropRootForGood, giveToNobody, isRoot } from '../support/unprivileged.js';
import { cli } from './helpers.js';

let dir: string;
let names: string[];
/** A shared journal (sticky, like `/tmp`): this user's record, and one it may not delete. */
let shared: { dir: string; mine: string; others: string };

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

  const sharedDir = join(root, 'shared-journal');
  const sharedJournal = await UploadJournal.open({ dir: sharedDir });
  const before = new Set<string>();
  const recordOf = async (name: string) => {
    await (await sharedJournal.begin(await key(name)))!.finish();
    const made = readdirSync(sharedDir).find((n) => !before.has(n))!;
    before.add(made);
    return join(sharedDir, made);
  };
  shared = { dir: sharedDir, mine: await recordOf('a.bin'), others: await recordOf('b.bin') };
  chmodSync(sharedDir, 0o1777);
  giveToNobody(shared.mine);
  if (isRoot) chmodSync(shared.others, 0o600); // root's: nobody may neither read nor delete it in a sticky directory
  else {
    // Not root: no other user to own it; a directory under a record's name is as undeletable by unlink.
    rmSync(shared.others);
    mkdirSync(shared.others);
  }
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

  it('resume clear --dry-run is refused with the PATH_UNWRITABLE a real clear gets (exit 2), not "Would remove"; with nothing due it succeeds, as the real clear does', async () => {
    for (const extra of [[], ['--keep-uploads']]) {
      const run = await cli(['resume', 'clear', '--dry-run', '--journal-dir', dir, '--tracking-uri', 'http://127.0.0.1:9', '--json', ...extra]);
      expect(run.code, run.stderr).toBe(2);
      expect(run.json().error).toMatchObject({ code: 'PATH_UNWRITABLE', path: dir, message: expect.stringContaining(`The resume journal ${dir} cannot be written`), hint: expect.stringMatching(/user who owns it/) });
      expect(run.stdout).not.toContain('Would remove');
    }
    const text = await cli(['resume', 'clear', '--dry-run', '--journal-dir', dir]);
    expect(text.code, text.stderr).toBe(2);
    expect(text.stdout).not.toContain('Would remove');
    expect(text.stderr).toContain(`The resume journal ${dir} cannot be written`);
    expect(await (await UploadJournal.open({ dir, sweep: false })).clear({ dryRun: true }).catch((e: unknown) => e)).toMatchObject({ code: 'PATH_UNWRITABLE', path: dir });

    const nothingDue = await cli(['resume', 'clear', '--dry-run', '--older-than', '30d', '--journal-dir', dir, '--json']);
    expect(nothingDue.code, nothingDue.stderr).toBe(0);
    expect(nothingDue.json()).toMatchObject({ dryRun: true, removed: [], archives: [] });
    expect((await readdir(dir)).sort()).toEqual(names);
  });

  it('resume clear with nothing to remove there (nothing older than --older-than) succeeds and leaves it as it is: no PATH_UNWRITABLE for a clear that deletes nothing', async () => {
    const run = await cli(['resume', 'clear', '--older-than', '30d', '--journal-dir', dir, '--tracking-uri', 'http://127.0.0.1:9', '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.json()).toMatchObject({ removed: [], archives: [] });
    const cleared = await (await UploadJournal.open({ dir, sweep: false })).clear({ olderThanMs: 30 * 24 * 3600_000 });
    expect(cleared).toMatchObject({ removed: [], archives: [] });
    expect((await readdir(dir)).sort()).toEqual(names);
  });

  it("resume clear in a shared (sticky) journal removes this user's records and leaves another user's, unread, or with a warning when --remove-unreadable tries it, instead of failing half-way", async () => {
    const run = await cli(['resume', 'clear', '--journal-dir', shared.dir, '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).not.toMatch(/looks like a bug|INTERNAL_ERROR/);
    expect(run.json().removed.map((r: { file: string }) => r.file)).toEqual([shared.mine]);
    // Not this user's to read (EACCES): what it names is unknown, so it is left as unreadable.
    expect(run.json().unreadable).toEqual([expect.objectContaining({ file: shared.others, unreadable: true })]);
    expect(readdirSync(shared.dir)).toEqual([basename(shared.others)]);

    // Asked to remove it all the same: not this user's to delete either, and the clear goes on.
    const forced = await cli(['resume', 'clear', '--remove-unreadable', '--journal-dir', shared.dir, '--json']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stderr).not.toMatch(/looks like a bug|INTERNAL_ERROR/);
    expect(forced.stderr).toContain(`Could not remove the resume journal record ${shared.others}`);
    expect(readdirSync(shared.dir)).toEqual([basename(shared.others)]);
  });
});
