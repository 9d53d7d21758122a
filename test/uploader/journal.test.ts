/**
 * The resume journal on real files, and shared by real concurrent child processes (the module
 * under test is bundled with esbuild for them, as the built package would carry it).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { tempFileName } from '../../src/core/atomic-write.js';
import { InvalidArgumentError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import {
  assertJournalOutside,
  journalTarget,
  localFileIdentity,
  resolveJournalDir,
  UploadJournal,
  type JournalKey,
  type JournalRecord,
} from '../../src/uploader/journal.js';
import { failOpens, failReads, fsHooks, resetFsHooks } from '../support/fs-hooks.js';

// Sees which files are read whole (fsHooks.afterRead) and opened; every call passes through.
vi.mock('node:fs/promises', async (importOriginal) => (await import('../support/fs-hooks.js')).hookedFs(await importOriginal()));
afterEach(resetFsHooks);

const tempDir = (prefix = 'au-journal-') => mkdtemp(join(tmpdir(), prefix));

function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, debug() {}, info() {}, warn: (m: string) => void warnings.push(m), error() {} };
}

async function keyFor(root: string, name = 'weights.bin', content = 'x'.repeat(1000)): Promise<JournalKey> {
  const path = join(root, 'data', name);
  await writeFile(path, content, { flag: 'w' }).catch(async () => {
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(root, 'data'), { recursive: true });
    await writeFile(path, content);
  });
  return { target: 'http://127.0.0.1:5000', runId: 'run1', artifactPath: `model/${name}`, local: await localFileIdentity(path) };
}

async function recordFiles(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json'));
}

describe('resolveJournalDir', () => {
  it('takes the option, then ARTIFACT_UPLOADER_JOURNAL_DIR, then XDG_CACHE_HOME, then ~/.cache', () => {
    expect(resolveJournalDir({ dir: '/a/b', env: { ARTIFACT_UPLOADER_JOURNAL_DIR: '/c' } })).toBe('/a/b');
    expect(resolveJournalDir({ env: { ARTIFACT_UPLOADER_JOURNAL_DIR: '/c', XDG_CACHE_HOME: '/x' } })).toBe('/c');
    expect(resolveJournalDir({ env: { XDG_CACHE_HOME: '/x', HOME: '/home/me' } })).toBe('/x/artifact-uploader/journal');
    // A relative XDG_CACHE_HOME is invalid per the XDG spec and ignored.
    expect(resolveJournalDir({ env: { XDG_CACHE_HOME: 'rel', HOME: '/home/me' } })).toBe('/home/me/.cache/artifact-uploader/journal');
    expect(resolveJournalDir({ env: { HOME: '/home/me' } })).toBe('/home/me/.cache/artifact-uploader/journal');
  });

  it('expands a leading ~ in ARTIFACT_UPLOADER_JOURNAL_DIR, as the CLI does; ~user and the option stay as written', () => {
    expect(resolveJournalDir({ env: { HOME: '/home/me', ARTIFACT_UPLOADER_JOURNAL_DIR: '~/journal' } })).toBe('/home/me/journal');
    expect(resolveJournalDir({ env: { HOME: '/home/me', ARTIFACT_UPLOADER_JOURNAL_DIR: '~' } })).toBe('/home/me');
    expect(resolveJournalDir({ env: { HOME: '/home/me', ARTIFACT_UPLOADER_JOURNAL_DIR: '~me/journal' } })).toBe(resolve('~me/journal'));
    expect(resolveJournalDir({ dir: '~/journal', env: { HOME: '/home/me' } })).toBe(resolve('~/journal'));
  });

  it('refuses a journal inside the folder being uploaded', () => {
    expect(() => assertJournalOutside('/data/ckpt/.journal', '/data/ckpt')).toThrow(InvalidArgumentError);
    expect(() => assertJournalOutside('/data/ckpt', '/data/ckpt')).toThrow(/inside the folder being uploaded/);
    expect(() => assertJournalOutside('/home/me/.cache/artifact-uploader/journal', '/data/ckpt')).not.toThrow();
    expect(() => assertJournalOutside('/data/ckpt-journal', '/data/ckpt')).not.toThrow();
    // A folder whose name starts with two dots is inside all the same.
    expect(() => assertJournalOutside('/data/ckpt/..journal', '/data/ckpt')).toThrow(/inside the folder being uploaded/);
  });

  it('strips credentials, query and fragment from the target', () => {
    expect(journalTarget('https://user:secret@mlflow.example.com/path?token=abc#x')).toBe('https://mlflow.example.com/path');
    expect(journalTarget('s3://bucket/prefix')).toBe('s3://bucket/prefix');
    expect(journalTarget('file:/tmp/mlruns')).toBe('file:/tmp/mlruns');
  });
});

describe('UploadJournal on real files', () => {
  it('walks a file from none to partial (with parts) to uploaded, and forgets it', async () => {
    const root = await tempDir();
    const dir = join(root, 'journal');
    const journal = await UploadJournal.open({ dir });
    const key = await keyFor(root);
    expect(await journal.lookup(key)).toEqual({ state: 'none' });

    const entry = await journal.begin(key);
    expect(entry).toBeDefined();
    expect(entry!.previous).toBeUndefined();
    expect((await journal.lookup(key)).state).toBe('partial');

    expect(await entry!.startMultipart('upload-1', 400)).toBe(true);
    // Parts finish in any order and concurrently; every one is kept.
    await Promise.all([3, 1, 2].map((n) => entry!.recordParts({ partNumber: n, size: n === 3 ? 200 : 400, etag: `"e${n}"`, checksum: `crc32:${n}` })));
    const partial = await journal.lookup(key);
    expect(partial.state).toBe('partial');
    expect(partial.state === 'partial' && partial.record.multipart).toEqual({
      uploadId: 'upload-1',
      partSize: 400,
      parts: [1, 2, 3].map((n) => ({ partNumber: n, size: n === 3 ? 200 : 400, etag: `"e${n}"`, checksum: `crc32:${n}` })),
    });
    expect((await journal.list())[0]).toMatchObject({ bytesDone: 1000, inUse: false });

    const sha256 = 'a'.repeat(64);
    expect(await entry!.finish({ sha256 })).toBe(true);
    const done = await journal.lookup(key);
    expect(done.state).toBe('uploaded');
    expect(done.state === 'uploaded' && done.record).toMatchObject({ status: 'uploaded', sha256 });
    expect(done.state === 'uploaded' && done.record.multipart).toBeUndefined();

    // The record on disk is plain JSON, without temp or lock files left beside it.
    const names = await readdir(dir);
    expect(names).toHaveLength(1);
    expect(JSON.parse(await readFile(join(dir, names[0]!), 'utf8'))).toMatchObject({ version: 1, key: { runId: 'run1', artifactPath: 'model/weights.bin' } });

    await journal.forget(key);
    expect(await readdir(dir)).toEqual([]);
    expect(await journal.lookup(key)).toEqual({ state: 'none' });
  });

  it('treats a file changed since (size or mtime) as changed, and begin() starts over with the old record as previous', async () => {
    const root = await tempDir();
    const journal = await UploadJournal.open({ dir: join(root, 'journal') });
    const key = await keyFor(root);
    const entry = await journal.begin(key);
    await entry!.startMultipart('upload-old', 500);
    await entry!.recordParts({ partNumber: 1, size: 500, etag: '"a"' });

    // Same size, new mtime.
    await utimes(key.local.path, new Date(), new Date(Date.now() + 5000));
    const touched = { ...key, local: await localFileIdentity(key.local.path) };
    const lookup = await journal.lookup(touched);
    expect(lookup.state).toBe('changed');

    const again = await journal.begin(touched);
    expect(again!.previous?.multipart?.uploadId).toBe('upload-old'); // for the caller to abort
    expect(again!.record.multipart).toBeUndefined();
    expect(again!.record.status).toBe('uploading');
    // The first entry lost the record: its writes are refused, not merged.
    expect(await entry!.recordParts({ partNumber: 2, size: 500 })).toBe(false);
    expect((await journal.lookup(touched)).state).toBe('partial');

    // Another size: changed too.
    await writeFile(key.local.path, 'y'.repeat(10));
    expect((await journal.lookup({ ...key, local: await localFileIdentity(key.local.path) })).state).toBe('changed');
  });

  it('keeps records of different runs, targets and artifact paths apart', async () => {
    const root = await tempDir();
    const journal = await UploadJournal.open({ dir: join(root, 'journal') });
    const key = await keyFor(root);
    await (await journal.begin(key))!.finish();
    expect((await journal.lookup({ ...key, runId: 'run2' })).state).toBe('none');
    expect((await journal.lookup({ ...key, target: 'http://127.0.0.1:5001' })).state).toBe('none');
    expect((await journal.lookup({ ...key, artifactPath: 'other/weights.bin' })).state).toBe('none');
    // Credentials in the target do not make another key, and are not written.
    expect((await journal.lookup({ ...key, target: 'http://u:p@127.0.0.1:5000' })).state).toBe('uploaded');
    await (await journal.begin({ ...key, target: 'http://user:hunter2@127.0.0.1:5000/?token=tok-xyz987' }))!.finish();
    for (const name of await recordFiles(join(root, 'journal'))) {
      const text = await readFile(join(root, 'journal', name), 'utf8');
      expect(text).not.toContain('hunter2');
      expect(text).not.toContain('tok-xyz987');
    }
  });

  it('ignores a corrupt record with a warning, and the next write replaces it', async () => {
    const root = await tempDir();
    const dir = join(root, 'journal');
    const logger = recordingLogger();
    const journal = await UploadJournal.open({ dir, logger });
    const key = await keyFor(root);
    await (await journal.begin(key))!.finish();
    const [name] = await recordFiles(dir);
    for (const garbage of ['{"version": 1, "key": {', '{"version": 1}', '\u0000\u0000\u0000']) {
      await writeFile(join(dir, name!), garbage);
      expect(await journal.lookup(key)).toEqual({ state: 'none' });
      expect(logger.warnings.at(-1)).toMatch(/corrupt resume journal record/);
    }
    const listed = await journal.list();
    expect(listed).toHaveLength(1);
    expect(listed[0]!.record).toBeUndefined();
    const entry = await journal.begin(key);
    expect(entry).toBeDefined();
    await entry!.finish();
    expect((await journal.lookup(key)).state).toBe('uploaded');
  });

  it("leaves a record of a newer journal format (a later artifact-uploader's, sharing the journal) alone: begin() and markUploaded() do not overwrite it, forget() does not delete it", async () => {
    const root = await tempDir();
    const dir = join(root, 'journal');
    const logger = recordingLogger();
    const journal = await UploadJournal.open({ dir, logger });
    const key = await keyFor(root);
    await (await journal.begin(key))!.startMultipart('mpu-of-a-later-version', 5 * 1024 * 1024);
    const [name] = await recordFiles(dir);
    const path = join(dir, name!);
    const newer = JSON.stringify({ ...JSON.parse(await readFile(path, 'utf8')), version: 2, owner: { pid: 1, host: 'elsewhere', token: 'later' } });
    await writeFile(path, newer);

    expect(await journal.lookup(key)).toEqual({ state: 'none' });
    expect(await journal.begin(key)).toBeUndefined();
    expect(logger.warnings.at(-1)).toMatch(/written by a newer version of artifact-uploader.*left alone.*cannot be resumed if interrupted/);
    await journal.markUploaded(key);
    await journal.forget(key);
    expect(await readFile(path, 'utf8')).toBe(newer);
    // Every read said what happens to it: left alone, never "corrupt ... replaced on the next write".
    expect(logger.warnings.length).toBeGreaterThanOrEqual(4);
    for (const warning of logger.warnings) expect(warning).toBe(`The resume journal record ${path} was written by a newer version of artifact-uploader; it is left alone, and this upload cannot be resumed if interrupted.`);
  });

  it('never fails an upload when the journal cannot be written', async () => {
    const root = await tempDir();
    const blocker = join(root, 'not-a-dir');
    await writeFile(blocker, 'a file where the journal directory should be');
    const logger = recordingLogger();
    const journal = await UploadJournal.open({ dir: join(blocker, 'journal'), logger });
    const key = await keyFor(root);
    expect(await journal.lookup(key)).toEqual({ state: 'none' });
    expect(await journal.begin(key)).toBeUndefined();
    expect(logger.warnings.join('\n')).toMatch(/cannot be resumed if interrupted/);
  });

  it('deletes expired records and crash leftovers when opened, and keeps within its bounds', async () => {
    const root = await tempDir();
    const dir = join(root, 'journal');
    const journal = await UploadJournal.open({ dir });
    const keys: JournalKey[] = [];
    for (let i = 0; i < 5; i++) {
      const key = await keyFor(root, `f${i}.bin`);
      keys.push(key);
      await (await journal.begin(key))!.finish();
    }
    const names = await recordFiles(dir);
    // Make the record of f0 eight days old, f1..f4 1..4 minutes old (f1 oldest).
    const now = Date.now();
    for (const name of names) {
      const record = JSON.parse(await readFile(join(dir, name), 'utf8')) as { key: { artifactPath: string } };
      const i = Number(/f(\d)/.exec(record.key.artifactPath)![1]);
      const when = new Date(i === 0 ? now - 8 * 24 * 3600_000 : now - (5 - i) * 60_000);
      await utimes(join(dir, name), when, when);
    }
    const temp = join(dir, '.abc.json.123.deadbeef.tmp');
    await writeFile(temp, '{');
    await utimes(temp, new Date(now - 3600_000), new Date(now - 3600_000));

    const reopened = await UploadJournal.open({ dir, maxEntries: 2, logger: recordingLogger() });
    expect(await readdir(dir).then((n) => n.includes('.abc.json.123.deadbeef.tmp'))).toBe(false);
    const states = await Promise.all(keys.map(async (k) => (await reopened.lookup(k)).state));
    expect(states).toEqual(['none', 'none', 'none', 'uploaded', 'uploaded']);

    // The byte bound, too.
    const small = await UploadJournal.open({ dir, maxBytes: 1 });
    expect(await recordFiles(dir)).toEqual([]);
    expect(small.dir).toBe(dir);
  });

  describe('the sweep and the uploads a record names (an S3 multipart upload stays billed until aborted)', () => {
    const DAY = 24 * 3600_000;
    /** Sets a record file's age (the sweep reads its mtime; `resume list` its updatedAt). */
    async function age(dir: string, name: string, ms: number): Promise<void> {
      const path = join(dir, name);
      const record = JSON.parse(await readFile(path, 'utf8')) as JournalRecord;
      const when = Date.now() - ms;
      await writeFile(path, JSON.stringify({ ...record, updatedAt: when }));
      await utimes(path, new Date(when), new Date(when));
    }
    /** Records of six kinds, each of a file of its own: name by kind. */
    async function sixRecords(root: string, dir: string) {
      const journal = await UploadJournal.open({ dir });
      const names: Record<string, string> = {};
      const add = async (kind: string, write: (entry: NonNullable<Awaited<ReturnType<UploadJournal['begin']>>>) => Promise<unknown>) => {
        const before = new Set(await recordFiles(dir));
        await write((await journal.begin(await keyFor(root, `${kind}.bin`)))!);
        names[kind] = (await recordFiles(dir)).find((n) => !before.has(n))!;
      };
      await add('s3', (e) => e.startMultipart('2~VEryLongS3UploadIdOfMotoOrAws.Xyz', 8 * 1024 * 1024));
      await add('creating', (e) => e.creatingMultipart());
      await add('gcs', (e) => e.setResumeToken({ store: 'gcs', value: { uri: 'https://storage.googleapis.com/upload?upload_id=x' } }));
      await add('azure', (e) => e.startMultipart('md5-0123456789ab', 4 * 1024 * 1024));
      await add('azure-old', (e) => e.startMultipart('0123456789ab', 4 * 1024 * 1024));
      await add('uploaded', (e) => e.finish());
      return names;
    }

    it('past maxAgeMs: keeps the records of an S3 (or proxied) multipart upload and of one being created, for takeExpired(); deletes GCS sessions, Azure blocks and finished files', async () => {
      const root = await tempDir();
      const dir = join(root, 'journal');
      const names = await sixRecords(root, dir);
      for (const [kind, name] of Object.entries(names)) await age(dir, name, kind === 's3' ? 9 * DAY : 8 * DAY);

      const reopened = await UploadJournal.open({ dir });
      expect((await recordFiles(dir)).sort()).toEqual([names.s3, names.creating].sort());
      // Oldest first, as read; taken once.
      const expired = reopened.takeExpired();
      expect(expired.map((e) => e.name)).toEqual([names.s3, names.creating]);
      expect(expired[0]!.record.multipart?.uploadId).toBe('2~VEryLongS3UploadIdOfMotoOrAws.Xyz');
      expect(reopened.takeExpired()).toEqual([]);
      // A fresh record of either kind is not expired.
      const fresh = await UploadJournal.open({ dir, maxAgeMs: 10 * DAY });
      expect(fresh.takeExpired()).toEqual([]);
    });

    it('over the bounds: deletes the oldest records without a lasting upload first, keeps those with one even past the bound, and says so', async () => {
      const root = await tempDir();
      const dir = join(root, 'journal');
      const names = await sixRecords(root, dir);
      // s3 oldest, creating next, then the others; none expired.
      const order = ['s3', 'creating', 'gcs', 'azure', 'azure-old', 'uploaded'];
      for (const [i, kind] of order.entries()) await age(dir, names[kind]!, (10 - i) * 60_000);

      const logger = recordingLogger();
      await UploadJournal.open({ dir, maxEntries: 3, logger });
      // Three deleted, the oldest without a lasting upload (gcs, azure, azure-old); s3 and creating kept though oldest.
      expect((await recordFiles(dir)).sort()).toEqual([names.s3, names.creating, names.uploaded].sort());
      expect(logger.warnings.join('\n')).toMatch(/over its bounds \(3 records.*the 3 oldest record\(s\) were deleted\.$/);

      // Only lasting ones left over the bound: kept, with a warning that says what to do.
      const tight = recordingLogger();
      await UploadJournal.open({ dir, maxEntries: 1, logger: tight });
      expect((await recordFiles(dir)).sort()).toEqual([names.s3, names.creating].sort());
      expect(tight.warnings.join('\n')).toMatch(/the 1 oldest record\(s\) were deleted\. 2 record\(s\) that name an unfinished S3 multipart upload were kept .*`artifact-uploader resume clear` gives their uploads up/);
      await UploadJournal.open({ dir, maxBytes: 1 });
      expect(await recordFiles(dir)).toHaveLength(2);
    });

    it('a record that cannot be read now (EIO) is kept by the sweep, past maxAgeMs and over the bounds: whose it is and what upload it names are unknown', async () => {
      const root = await tempDir();
      const dir = join(root, 'journal');
      const names = await sixRecords(root, dir);
      for (const name of Object.values(names)) await age(dir, name, 8 * DAY);
      // Past maxAgeMs: a finished file's record goes when it can be read, and stays when it cannot.
      failReads(join(dir, names.uploaded!), 'EIO', Infinity);
      await UploadJournal.open({ dir });
      resetFsHooks();
      expect((await recordFiles(dir)).sort()).toEqual([names.s3, names.creating, names.uploaded].sort());

      // Over the bounds (none expired): the unreadable one is not among those deleted.
      const fresh = await sixRecords(root, join(root, 'journal2'));
      for (const [i, kind] of ['gcs', 'azure', 'azure-old', 'uploaded', 's3', 'creating'].entries()) await age(join(root, 'journal2'), fresh[kind]!, (10 - i) * 60_000);
      failReads(join(root, 'journal2', fresh.gcs!), 'EMFILE', Infinity);
      await UploadJournal.open({ dir: join(root, 'journal2'), maxEntries: 3, logger: recordingLogger() });
      resetFsHooks();
      expect((await recordFiles(join(root, 'journal2'))).sort()).toEqual([fresh.gcs, fresh.s3, fresh.creating].sort());
    });

    it('clear() leaves a record (or log) it cannot read now (EIO), lists it as unreadable, and removes it only with removeUnreadable: it may be the only handle to a billed S3 multipart upload', async () => {
      const root = await tempDir();
      const dir = join(root, 'journal');
      const names = await sixRecords(root, dir);
      const journal = await UploadJournal.open({ dir, sweep: false });
      const log = journal.operationLog('http://127.0.0.1:5000', 'run1');
      await log.record({ artifactPath: 'm/a', localPath: '/d/a', local: { size: 10, mtimeNs: '1', ino: '2', dev: '3' }, at: Date.now() });
      await log.close();
      const s3 = join(dir, names.s3!);
      const before = await readFile(s3, 'utf8');
      const unreadable = [s3, log.path];
      const failing = () => failReads((path) => unreadable.includes(path), 'EIO', Infinity);

      failing();
      const listed = await journal.list();
      expect(listed.filter((e) => e.unreadable).map((e) => e.file).sort()).toEqual([...unreadable].sort());
      expect(listed.find((e) => e.file === s3)).toMatchObject({ unreadable: true, record: undefined, inUse: false });
      const dry = await journal.clear({ dryRun: true });
      expect(dry.unreadable.map((e) => e.file).sort()).toEqual([...unreadable].sort());
      expect(dry.removed.map((e) => e.file)).not.toContain(s3);
      const cleared = await journal.clear();
      resetFsHooks();
      expect(cleared.unreadable.map((e) => e.file).sort()).toEqual([...unreadable].sort());
      expect(cleared.removed).toHaveLength(5);
      expect((await readdir(dir)).sort()).toEqual([names.s3, basename(log.path)].sort());
      expect(await readFile(s3, 'utf8')).toBe(before);

      // Asked to: removed as they are, unread.
      failing();
      const forced = await journal.clear({ removeUnreadable: true });
      resetFsHooks();
      expect(forced.unreadable).toEqual([]);
      expect(forced.removed.map((e) => e.file).sort()).toEqual([...unreadable].sort());
      expect(await readdir(dir)).toEqual([]);
    });

    it("a record of a newer journal format (a later artifact-uploader's, sharing the journal) is never deleted by age or bounds: what upload it names is not this version's to judge; a corrupt one is", async () => {
      const root = await tempDir();
      const dir = join(root, 'journal');
      const names = await sixRecords(root, dir);
      // The later version's s3 record, and the uploaded one turned into garbage.
      const newer = join(dir, names.s3!);
      await writeFile(newer, JSON.stringify({ ...JSON.parse(await readFile(newer, 'utf8')), version: 2, parts: 'laid out differently' }));
      await writeFile(join(dir, names.uploaded!), '{"version":1,');
      for (const name of Object.values(names)) await utimes(join(dir, name), new Date(Date.now() - 8 * DAY), new Date(Date.now() - 8 * DAY));

      await UploadJournal.open({ dir });
      expect((await recordFiles(dir)).sort()).toEqual([names.s3, names.creating].sort());
      expect(JSON.parse(await readFile(newer, 'utf8'))).toMatchObject({ version: 2 });
      await UploadJournal.open({ dir, maxAgeMs: 10 * DAY, maxEntries: 0 });
      expect((await recordFiles(dir)).sort()).toEqual([names.s3, names.creating].sort());
    });

    it('handBack() puts a record taken over back as it was, its age included, so it stays expired', async () => {
      const root = await tempDir();
      const dir = join(root, 'journal');
      const names = await sixRecords(root, dir);
      await age(dir, names.s3!, 9 * DAY);
      const journal = await UploadJournal.open({ dir });
      const [expired] = journal.takeExpired();
      const before = await readFile(join(dir, expired!.name), 'utf8');
      const entry = (await journal.takeOver(expired!.name, expired!.record))!;
      expect(entry).toBeDefined();
      await journal.handBack(entry);
      expect(JSON.parse(await readFile(join(dir, expired!.name), 'utf8'))).toEqual(JSON.parse(before));
      expect((await UploadJournal.open({ dir })).takeExpired().map((e) => e.name)).toEqual([expired!.name]);
    });

    it('restore() writes a record clear() removed back as it was, its age included (still expired), unless a rerun began that file afresh since', async () => {
      const root = await tempDir();
      const dir = join(root, 'journal');
      const names = await sixRecords(root, dir);
      await age(dir, names.s3!, 9 * DAY);
      const before = await readFile(join(dir, names.s3!), 'utf8');
      const journal = await UploadJournal.open({ dir, sweep: false });
      const removed = (await journal.clear()).removed.find((e) => e.file === join(dir, names.s3!))!;
      expect(await recordFiles(dir)).toEqual([]);
      expect(await journal.restore(removed)).toBe(true);
      expect(JSON.parse(await readFile(join(dir, names.s3!), 'utf8'))).toEqual(JSON.parse(before));
      expect((await UploadJournal.open({ dir })).takeExpired().map((e) => e.name)).toEqual([names.s3]);

      // Removed again, and the file begun afresh meanwhile: the new record stays as it is.
      await journal.clear();
      const fresh = (await journal.begin(await keyFor(root, 's3.bin')))!;
      await fresh.startMultipart('2~TheRerunsOwnUploadId', 8 * 1024 * 1024);
      const rerun = await readFile(join(dir, names.s3!), 'utf8');
      expect(await journal.restore(removed)).toBe(false);
      expect(await readFile(join(dir, names.s3!), 'utf8')).toBe(rerun);
    });
  });

  it('an operation log the sweep cannot read now (EIO) is not deleted to meet the bounds: whether its operation runs cannot be told', async () => {
    const root = await tempDir();
    const dir = join(root, 'journal');
    const journal = await UploadJournal.open({ dir });
    const local = { size: 10, mtimeNs: '1', ino: '2', dev: '3' };
    const logs = ['run1', 'run2'].map((run) => journal.operationLog('http://127.0.0.1:5000', run));
    for (const log of logs) {
      await log.record({ artifactPath: 'm/a', localPath: '/d/a', local, at: Date.now() });
      await log.close();
    }
    failReads(logs[0]!.path, 'EIO', Infinity);
    await UploadJournal.open({ dir, maxEntries: 0, logger: recordingLogger() });
    resetFsHooks();
    expect(await readdir(dir)).toEqual([basename(logs[0]!.path)]);
  });

  it('an expired operation log the sweep cannot read now (EIO, EMFILE) is kept, as an unreadable record is: a later sweep that can read it decides', async () => {
    const root = await tempDir();
    const dir = join(root, 'journal');
    const journal = await UploadJournal.open({ dir });
    const local = { size: 10, mtimeNs: '1', ino: '2', dev: '3' };
    const log = journal.operationLog('http://127.0.0.1:5000', 'run1');
    await log.record({ artifactPath: 'm/a', localPath: '/d/a', local, at: Date.now() });
    await log.close();
    const old = new Date(Date.now() - 8 * 24 * 3600_000);
    await utimes(log.path, old, old);
    for (const code of ['EIO', 'EMFILE']) {
      // However the sweep reads it (whole, or its header line through a descriptor).
      const reads = failReads(log.path, code, Infinity);
      const opens = failOpens(log.path, code, Infinity);
      await UploadJournal.open({ dir });
      resetFsHooks();
      expect(reads.failed() + opens.failed()).toBeGreaterThan(0);
      expect(await readdir(dir)).toEqual([basename(log.path)]);
    }
    // Readable again: expired, and this version's, it goes.
    await UploadJournal.open({ dir });
    expect(await readdir(dir)).toEqual([]);
  });

  it('operation logs: scan() reads a run\'s logs only, list() shows each file, clear() and the sweep remove a log whole', async () => {
    const root = await tempDir();
    const dir = join(root, 'journal');
    const journal = await UploadJournal.open({ dir });
    const local = { size: 10, mtimeNs: '1', ino: '2', dev: '3' };
    const log = journal.operationLog('http://u:pw@127.0.0.1:5000/?t=x', 'run1');
    await Promise.all(['a', 'b', 'c'].map((n) => log.record({ artifactPath: `m/${n}`, localPath: `/d/${n}`, local, at: Date.now() })));
    await log.close();
    const other = journal.operationLog('http://127.0.0.1:5000', 'run2');
    await other.record({ artifactPath: 'm/z', localPath: '/d/z', local, at: Date.now() });
    await other.close();

    const scan = await journal.scan('http://127.0.0.1:5000/', 'run1');
    expect(scan.logs).toHaveLength(1);
    expect(scan.logs[0]!.header.key).toEqual({ target: 'http://127.0.0.1:5000/', runId: 'run1' });
    expect(scan.logs[0]!.lines.map((l) => l.artifactPath).sort()).toEqual(['m/a', 'm/b', 'm/c']);
    expect(await readFile(log.path, 'utf8')).not.toContain('pw');
    expect((await stat(log.path)).mode & 0o777).toBe(0o600);
    const listed = await journal.list();
    expect(listed.map((e) => e.record?.key.artifactPath).sort()).toEqual(['m/a', 'm/b', 'm/c', 'm/z']);
    expect(listed.every((e) => e.record?.status === 'uploaded' && e.bytesDone === 10 && !e.inUse)).toBe(true);

    const { removed } = await journal.clear();
    expect(removed).toHaveLength(4);
    expect(await readdir(dir)).toEqual([]);

    // An expired log goes with the sweep when the journal is opened.
    const stale = journal.operationLog('http://127.0.0.1:5000', 'run3');
    await stale.record({ artifactPath: 'm/y', localPath: '/d/y', local, at: Date.now() });
    await stale.close();
    const old = new Date(Date.now() - 8 * 24 * 3600_000);
    await utimes(stale.path, old, old);
    await UploadJournal.open({ dir });
    expect(await readdir(dir)).toEqual([]);
  });

  it("an operation log of a newer journal format (its header's version) is kept and listed as such, never deleted by clear() or the sweep; a corrupt one still is", async () => {
    const root = await tempDir();
    const dir = join(root, 'journal');
    const journal = await UploadJournal.open({ dir });
    const local = { size: 10, mtimeNs: '1', ino: '2', dev: '3' };
    const written = async (runId: string) => {
      const log = journal.operationLog('http://127.0.0.1:5000', runId);
      await log.record({ artifactPath: 'm/a', localPath: '/d/a', local, at: Date.now() });
      await log.close();
      return log.path;
    };
    // A later artifact-uploader's log: its header says version 2, and its lines are its own.
    const newer = await written('run1');
    const [header] = (await readFile(newer, 'utf8')).split('\n');
    await writeFile(newer, `${JSON.stringify({ ...JSON.parse(header!), version: 2, kind: 'finished-files-v2' })}\n{"files":["m/a"]}\n`);
    const corrupt = await written('run2');
    await writeFile(corrupt, 'not a header\n');

    const logger = recordingLogger();
    const reader = await UploadJournal.open({ dir, logger, sweep: false });
    expect((await reader.scan('http://127.0.0.1:5000', 'run1')).logs).toEqual([]);
    expect(logger.warnings).toEqual([`The resume journal log ${newer} was written by a newer version of artifact-uploader; it is left alone, and the files it names are sent again.`]);
    expect(await reader.list()).toContainEqual({ file: newer, updatedAt: expect.any(Number), newerFormat: 2, inUse: false, bytesDone: 0 });

    const dry = await reader.clear({ dryRun: true });
    expect(dry.newerFormat.map((e) => [e.file, e.newerFormat])).toEqual([[newer, 2]]);
    expect(dry.removed.map((e) => e.file)).toEqual([corrupt]);
    const cleared = await reader.clear();
    expect(cleared.newerFormat.map((e) => [e.file, e.newerFormat])).toEqual([[newer, 2]]);
    expect(cleared.removed.map((e) => e.file)).toEqual([corrupt]);
    expect(await readdir(dir)).toEqual([basename(newer)]);

    // Neither by age nor by bounds.
    const DAY = 24 * 3600_000;
    const old = new Date(Date.now() - 8 * DAY);
    await utimes(newer, old, old);
    await UploadJournal.open({ dir });
    await UploadJournal.open({ dir, maxAgeMs: 10 * DAY, maxEntries: 0 });
    expect(await readdir(dir)).toEqual([basename(newer)]);
    expect(JSON.parse((await readFile(newer, 'utf8')).split('\n')[0]!)).toMatchObject({ version: 2 });
  });

  it('the sweep reads only the header line of an expired operation log (a line per finished file follows it), and still keeps a newer format\'s', async () => {
    const root = await tempDir();
    const dir = join(root, 'journal');
    const journal = await UploadJournal.open({ dir });
    const local = { size: 10, mtimeNs: '1', ino: '2', dev: '3' };
    // Logs of a 20,000-file upload: this version's, and a later version's (its header's version).
    const written = async (runId: string, version: number, extra: Record<string, unknown> = {}) => {
      const log = journal.operationLog('http://127.0.0.1:5000', runId);
      await log.record({ artifactPath: 'm/f0', localPath: '/d/f0', local, at: Date.now() });
      await log.close();
      const [header, line] = (await readFile(log.path, 'utf8')).split('\n');
      await writeFile(log.path, `${JSON.stringify({ ...JSON.parse(header!), version, ...extra })}\n${`${line!}\n`.repeat(20_000)}`);
      const old = new Date(Date.now() - 8 * 24 * 3600_000);
      await utimes(log.path, old, old);
      return log.path;
    };
    const ours = await written('run1', 1);
    // Its header longer than one read (64 KiB): read on to the end of the line.
    const newer = await written('run2', 2, { note: 'x'.repeat(100_000) });
    const readWhole: string[] = [];
    const opened: string[] = [];
    fsHooks.afterRead = (path) => {
      readWhole.push(path);
    };
    fsHooks.afterOpen = (path) => {
      opened.push(path);
    };

    await UploadJournal.open({ dir });

    expect(await readdir(dir)).toEqual([basename(newer)]);
    expect(readWhole.filter((path) => path === ours || path === newer), 'an expired log read whole').toEqual([]);
    expect(opened).toContain(newer);
  });

  it('the sweep removes a fresh temp file at once when its writer is gone (killed mid-write or mid-lock), and keeps a live writer\'s', async () => {
    const dir = await tempDir();
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const prefix = `.${'a'.repeat(40)}.json.tmp-`;
    const deadWriters = tempFileName(prefix).replace(`-${process.pid}-`, `-${dead}-`);
    const liveWriters = tempFileName(prefix);
    await writeFile(join(dir, deadWriters), '{"pid"');
    await writeFile(join(dir, liveWriters), '{"pid"');
    await UploadJournal.open({ dir });
    expect(await readdir(dir)).toEqual([liveWriters]);
  });

  it('the sweep removes a record\'s lock its holder left when it was killed holding it (its record gone or not), and keeps a live holder\'s', async () => {
    // What a SIGKILL during forget() leaves (the record deleted, its lock not yet): no later run
    // locks that record again, so only the sweep can remove the lock.
    const root = await tempDir();
    const dir = join(root, 'journal');
    const journal = await UploadJournal.open({ dir });
    const kept = await keyFor(root, 'kept.bin');
    await (await journal.begin(kept))!.finish();
    const [keptRecord] = await recordFiles(dir);
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const lockOf = (pid: number) => JSON.stringify({ pid, host: hostname(), token: `t${pid}`, at: Date.now() });
    const orphanLock = `${'b'.repeat(40)}.json.lock`; // its record is gone
    const deadHoldersLock = `${keptRecord}.lock`; // beside its record
    const liveHoldersLock = `${'c'.repeat(40)}.json.lock`;
    await writeFile(join(dir, orphanLock), lockOf(dead));
    await writeFile(join(dir, deadHoldersLock), lockOf(dead));
    await writeFile(join(dir, liveHoldersLock), lockOf(process.pid));

    const reopened = await UploadJournal.open({ dir });
    expect((await readdir(dir)).sort()).toEqual([keptRecord, liveHoldersLock].sort());
    // The record the dead holder had locked is intact, and can be locked again at once.
    expect((await reopened.lookup(kept)).state).toBe('uploaded');
    await reopened.forget(kept);
    expect(await readdir(dir)).toEqual([liveHoldersLock]);
  });

  it('the sweep removes what a process killed while breaking a record\'s stale lock left (breaker file, lock moved aside), and keeps a live breaker\'s', async () => {
    const dir = await tempDir();
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const breakerOf = (pid: number) => JSON.stringify({ pid, host: hostname(), token: `b${pid}`, at: Date.now() });
    // Killed after it moved the lock aside (no lock left), and before it took the breaker file.
    const deadBreaker = `${'d'.repeat(40)}.json.lock.breaking`;
    const liveBreaker = `${'e'.repeat(40)}.json.lock.breaking`;
    const movedAside = `${'d'.repeat(40)}.json.lock.broken-0123abcd`;
    await writeFile(join(dir, deadBreaker), breakerOf(dead));
    await writeFile(join(dir, liveBreaker), breakerOf(process.pid));
    await writeFile(join(dir, movedAside), JSON.stringify({ pid: dead, host: hostname(), token: 'gone', at: Date.now() }));
    const old = new Date(Date.now() - 5 * 60_000);
    await utimes(join(dir, movedAside), old, old);
    await UploadJournal.open({ dir });
    expect(await readdir(dir)).toEqual([liveBreaker]);
  });

  it('clear() deletes all records, or those older than a given age', async () => {
    const root = await tempDir();
    const dir = join(root, 'journal');
    const journal = await UploadJournal.open({ dir });
    const old = await keyFor(root, 'old.bin');
    const fresh = await keyFor(root, 'fresh.bin');
    await (await journal.begin(old))!.finish();
    await (await journal.begin(fresh))!.finish();
    // clear() goes by the record's own updatedAt: rewrite it as two days old.
    const [oldName] = (await Promise.all((await recordFiles(dir)).map(async (n) => [n, await readFile(join(dir, n), 'utf8')] as const))).find(([, text]) => text.includes('old.bin'))!;
    const record = JSON.parse(await readFile(join(dir, oldName), 'utf8')) as { updatedAt: number };
    record.updatedAt = Date.now() - 2 * 24 * 3600_000;
    await writeFile(join(dir, oldName), JSON.stringify(record));

    const first = await journal.clear({ olderThanMs: 24 * 3600_000 });
    expect(first.removed.map((e) => e.record?.key.artifactPath)).toEqual(['model/old.bin']);
    expect((await journal.lookup(fresh)).state).toBe('uploaded');
    const second = await journal.clear();
    expect(second.removed).toHaveLength(1);
    expect(await recordFiles(dir)).toEqual([]);
  });

  it('takeOver() takes a record as it was read, and refuses one that changed since or a live process owns', async () => {
    const root = await tempDir();
    const dir = join(root, 'journal');
    const journal = await UploadJournal.open({ dir });
    await (await journal.begin(await keyFor(root, 'a.bin')))!.startMultipart('upload-a', 8);
    const [name] = await recordFiles(dir);
    const [{ record }] = (await journal.readRecords([name!, 'not-a-record.json', `${'0'.repeat(40)}.json`])) as [{ name: string; record: JournalRecord }];
    const owned = (pid: number, token = record.owner.token) => writeFile(join(dir, name!), JSON.stringify({ ...record, owner: { ...record.owner, pid, token } }));

    // A live process of this host (not this one) owns it: left alone.
    const live = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    try {
      await owned(live.pid!);
      expect(await journal.takeOver(name!, record)).toBeUndefined();
    } finally {
      live.kill('SIGKILL');
    }
    // Its owner is gone, but the record is not the one read (another process took it over since).
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    await owned(dead, 'someone-else');
    expect(await journal.takeOver(name!, record)).toBeUndefined();
    // As read, owner gone: taken over (this process owns it now), and removed by its entry.
    await owned(dead);
    const entry = await journal.takeOver(name!, record);
    expect(entry?.record).toMatchObject({ owner: { pid: process.pid }, multipart: { uploadId: 'upload-a' } });
    expect(entry?.previous?.owner.pid).toBe(dead);
    expect(await entry!.remove()).toBe(true);
    expect(await recordFiles(dir)).toEqual([]);
  });
});

// ───────────────────────── several processes ─────────────────────────

let bundle: string;

beforeAll(async () => {
  const out = await mkdtemp(join(tmpdir(), 'au-journal-bundle-'));
  bundle = join(out, 'journal.mjs');
  await build({
    entryPoints: [resolve(__dirname, '../../src/uploader/journal.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: bundle,
    absWorkingDir: resolve(__dirname, '../..'),
    logLevel: 'silent',
  });
}, 60_000);

/**
 * A child process working on the journal. Commands (one JSON line each on stdin) and answers
 * (one JSON line each on stdout): begin, parts, finish, exit.
 */
const CHILD = `
const [bundle, dir, keyJson] = process.argv.slice(1);
const { UploadJournal } = await import(bundle);
const journal = await UploadJournal.open({ dir });
const key = JSON.parse(keyJson);
let entry;
const answer = (value) => process.stdout.write(JSON.stringify(value) + '\\n');
let buffer = '';
process.stdin.on('data', async (chunk) => {
  buffer += chunk;
  let at;
  while ((at = buffer.indexOf('\\n')) >= 0) {
    const command = JSON.parse(buffer.slice(0, at));
    buffer = buffer.slice(at + 1);
    if (command.op === 'begin') {
      entry = await journal.begin(key);
      answer({ op: 'begin', claimed: entry !== undefined, previousParts: entry?.previous?.multipart?.parts.length ?? 0 });
    } else if (command.op === 'parts') {
      if (!entry.record.multipart) await entry.startMultipart('u-' + process.pid, 1);
      const results = await Promise.all(command.numbers.map((n) => entry.recordParts({ partNumber: n, size: 1, etag: 'e' + n })));
      answer({ op: 'parts', ok: results.every(Boolean) });
    } else if (command.op === 'finish') {
      answer({ op: 'finish', ok: await entry.finish() });
    }
  }
});
answer({ op: 'ready', pid: process.pid });
`;

interface Child {
  process: ChildProcess;
  send(command: Record<string, unknown>): Promise<Record<string, unknown>>;
}

async function startChild(dir: string, key: JournalKey): Promise<Child> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, pathToFileURL(bundle).href, dir, JSON.stringify(key)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const waiting: Array<(line: Record<string, unknown>) => void> = [];
  let out = '';
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
    let at;
    while ((at = out.indexOf('\n')) >= 0) {
      const line = JSON.parse(out.slice(0, at)) as Record<string, unknown>;
      out = out.slice(at + 1);
      waiting.shift()?.(line);
    }
  });
  const next = () =>
    new Promise<Record<string, unknown>>((resolveLine, reject) => {
      waiting.push(resolveLine);
      child.once('exit', (code, signal) => reject(new Error(`child exited (${code ?? signal}): ${err}`)));
    });
  await next(); // ready
  return {
    process: child,
    send(command) {
      const answer = next();
      child.stdin!.write(`${JSON.stringify(command)}\n`);
      return answer;
    },
  };
}

function kill(child: Child): Promise<void> {
  return new Promise((done) => {
    child.process.once('exit', () => done());
    child.process.kill('SIGKILL');
  });
}

describe('UploadJournal shared by processes', () => {
  it('four processes begin the same key at once: exactly one owns it; after it is SIGKILLed the next takes over its parts', async () => {
    const root = await tempDir();
    const dir = join(root, 'journal');
    const key = await keyFor(root);
    const children = await Promise.all([0, 1, 2, 3].map(() => startChild(dir, key)));
    try {
      const begun = await Promise.all(children.map((c) => c.send({ op: 'begin' })));
      expect(begun.filter((b) => b.claimed)).toHaveLength(1);
      const owner = children[begun.findIndex((b) => b.claimed)]!;
      const others = children.filter((c) => c !== owner);

      // The owner records 40 parts concurrently (one process, one queue): all of them land.
      expect(await owner.send({ op: 'parts', numbers: Array.from({ length: 40 }, (_, i) => i + 1) })).toEqual({ op: 'parts', ok: true });
      await kill(owner);

      // The owner is gone: the next process takes over, with the 40 parts.
      const takeover = await others[0]!.send({ op: 'begin' });
      expect(takeover).toEqual({ op: 'begin', claimed: true, previousParts: 40 });
      // ... and the others now see a live owner again.
      expect((await others[1]!.send({ op: 'begin' })).claimed).toBe(false);
      expect(await others[0]!.send({ op: 'finish' })).toEqual({ op: 'finish', ok: true });

      const journal = await UploadJournal.open({ dir });
      expect((await journal.lookup(key)).state).toBe('uploaded');
      expect((await readdir(dir)).filter((n) => !n.endsWith('.json'))).toEqual([]); // no lock or temp left
    } finally {
      await Promise.all(children.filter((c) => c.process.exitCode === null && c.process.signalCode === null).map(kill));
    }
  }, 60_000);

  it('processes writing their own records into one journal at once leave every record whole', async () => {
    const root = await tempDir();
    const dir = join(root, 'journal');
    const keys = await Promise.all([0, 1, 2, 3].map((i) => keyFor(root, `w${i}.bin`)));
    const children = await Promise.all(keys.map((k) => startChild(dir, k)));
    try {
      expect((await Promise.all(children.map((c) => c.send({ op: 'begin' })))).every((b) => b.claimed)).toBe(true);
      // Interleaved writes; a sweeping reader runs alongside.
      const numbers = Array.from({ length: 25 }, (_, i) => i + 1);
      const sweeping = (async () => {
        for (let i = 0; i < 10; i++) await (await UploadJournal.open({ dir })).list();
      })();
      const results = await Promise.all(children.map((c) => c.send({ op: 'parts', numbers })));
      await sweeping;
      expect(results.every((r) => r.ok)).toBe(true);
      const journal = await UploadJournal.open({ dir });
      for (const key of keys) {
        const lookup = await journal.lookup(key);
        expect(lookup.state).toBe('partial');
        expect(lookup.state === 'partial' && lookup.record.multipart?.parts.map((p) => p.partNumber)).toEqual(numbers);
      }
      const listed = await journal.list();
      expect(listed).toHaveLength(4);
      expect(listed.every((e) => e.inUse && e.bytesDone === 25)).toBe(true);
      const cleared = await journal.clear();
      expect(cleared).toMatchObject({ removed: [], inUse: expect.any(Array) });
      expect(cleared.inUse).toHaveLength(4);
    } finally {
      await Promise.all(children.map(kill));
    }
    // Everyone is gone: the records are not in use any more and can be cleared.
    const journal = await UploadJournal.open({ dir });
    expect((await journal.clear()).removed).toHaveLength(4);
    expect((await stat(dir)).isDirectory()).toBe(true);
  }, 60_000);
});
