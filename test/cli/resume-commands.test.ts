/**
 * `resume list` and `resume clear` on a real journal directory, in-process; `--no-resume` and
 * `--journal-dir` parse as global options.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CliContext } from '../../src/cli/context.js';
import { createProgram, parseAge } from '../../src/cli/program.js';
import { localFileIdentity, UploadJournal, type JournalKey } from '../../src/uploader/journal.js';
import { claimStagedArchive, stagedArchiveDir } from '../../src/uploader/archive-staging.js';
import { createCheckpointArchive } from '../../src/archive/create-checkpoint-archive.js';
import { baseEnv, cli, tempDir } from './helpers.js';
import { assertBuilt, DIST_INDEX, startChild } from '../support/child-node.js';
import { failReads, resetFsHooks } from '../support/fs-hooks.js';

// Every call passes through, unless a test makes the reads of a record fail (failReads).
vi.mock('node:fs/promises', async (importOriginal) => (await import('../support/fs-hooks.js')).hookedFs(await importOriginal()));
afterEach(resetFsHooks);

async function seed(root: string): Promise<{ dir: string; keys: JournalKey[] }> {
  const dir = join(root, 'journal');
  const journal = await UploadJournal.open({ dir });
  const keys: JournalKey[] = [];
  for (const name of ['a.bin', 'b.bin']) {
    await writeFile(join(root, name), 'z'.repeat(2048));
    keys.push({ target: 'http://127.0.0.1:5000', runId: 'run-7', artifactPath: `ckpt/${name}`, local: await localFileIdentity(join(root, name)) });
  }
  await (await journal.begin(keys[0]!))!.finish({ sha256: 'b'.repeat(64) });
  const partial = (await journal.begin(keys[1]!))!;
  await partial.startMultipart('mpu-123', 1024);
  await partial.recordParts({ partNumber: 1, size: 1024, etag: '"x"' });
  return { dir, keys };
}

/** Makes the record of `artifactPath` look `ageMs` old. */
async function age(dir: string, artifactPath: string, ageMs: number): Promise<void> {
  for (const name of await readdir(dir)) {
    const record = JSON.parse(await readFile(join(dir, name), 'utf8')) as { key: { artifactPath: string }; updatedAt: number };
    if (record.key.artifactPath !== artifactPath) continue;
    record.updatedAt = Date.now() - ageMs;
    await writeFile(join(dir, name), JSON.stringify(record));
  }
}

describe('artifact-uploader resume', () => {
  it('list shows each record (uploaded, partial with its parts), in text and --json', async () => {
    const root = tempDir();
    const { dir } = await seed(root);
    const text = await cli(['resume', 'list', '--journal-dir', dir]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`2 record(s) in the resume journal (${dir})`);
    expect(text.stdout).toMatch(/uploaded\s+2(?:\.0)? KiB\s+run-7\s+http:\/\/127\.0\.0\.1:5000\/ ckpt\/a\.bin/);
    expect(text.stdout).toMatch(/uploading\s+1(?:\.0)? KiB of 2(?:\.0)? KiB\s+run-7 .*ckpt\/b\.bin .*multipart 1 part\(s\)/);

    const json = (await cli(['resume', 'list', '--json'], { env: baseEnv({ ARTIFACT_UPLOADER_JOURNAL_DIR: dir }) })).json();
    expect(json).toMatchObject({ ok: true, command: 'resume list', journalDir: dir });
    const byPath = Object.fromEntries((json.entries as Array<Record<string, any>>).map((e) => [e.artifactPath, e]));
    expect(byPath['ckpt/a.bin']).toMatchObject({ status: 'uploaded', size: 2048, bytesDone: 2048, sha256: 'b'.repeat(64), runId: 'run-7', inUse: false });
    expect(byPath['ckpt/b.bin']).toMatchObject({ status: 'uploading', bytesDone: 1024, multipart: { uploadId: 'mpu-123', partSize: 1024, parts: 1 } });
  });

  it("list --json: every field of an entry (nested ones too) is named in docs/cli.md's resume list section", async () => {
    const root = tempDir();
    const { dir } = await seed(root);
    await writeFile(join(dir, `${'c'.repeat(40)}.json`), '{ not json');
    const entries = (await cli(['resume', 'list', '--json', '--journal-dir', dir])).json().entries as Array<Record<string, unknown>>;
    const doc = readFileSync(join(__dirname, '..', '..', 'docs', 'cli.md'), 'utf8');
    const section = doc.slice(doc.indexOf('### `artifact-uploader resume list`'), doc.indexOf('### `artifact-uploader resume clear`'));
    const fields = new Set<string>();
    for (const entry of entries) {
      for (const [key, value] of Object.entries(entry)) {
        fields.add(key);
        if (value !== null && typeof value === 'object') for (const inner of Object.keys(value)) fields.add(`${key}.${inner}`);
      }
    }
    expect([...fields]).toEqual(expect.arrayContaining(['corrupt', 'multipart.uploadId', 'sha256', 'owner.pid']));
    // Named in backticks, alone or with its value (`corrupt: true`).
    const undocumented = [...fields].filter((field) => !new RegExp(`\`${field.split('.').at(-1)}[\`:]`).test(section));
    expect(undocumented).toEqual([]);
  });

  it('list shows staged archives (destination, size, age, complete, in use) in text and --json', async () => {
    const root = tempDir();
    const dir = join(root, 'journal');
    const checkpoint = join(root, 'ckpt');
    await mkdir(checkpoint);
    await writeFile(join(checkpoint, 'weights.bin'), 'w'.repeat(4096));
    const key = { target: 'http://127.0.0.1:5000/', runId: 'run-9', artifactPath: 'best.tar.gz', directory: checkpoint, level: undefined, include: [], exclude: [] };
    const stage = await stagedArchiveDir(dir, key);
    const claim = (await claimStagedArchive(stage, key))!;
    const manifest = await createCheckpointArchive(checkpoint, join(stage, 'best.tar.gz'), { manifestPath: join(stage, 'best.manifest.json') });

    // Held by this (live) process: in use.
    const held = (await cli(['resume', 'list', '--json', '--journal-dir', dir])).json();
    expect(held.archives).toEqual([expect.objectContaining({ dir: stage, runId: 'run-9', artifactPath: 'best.tar.gz', directory: checkpoint, complete: true, inUse: true })]);
    expect((await cli(['resume', 'clear', '--dry-run', '--json', '--journal-dir', dir])).json().archives).toEqual([]);
    await claim.release();

    const text = await cli(['resume', 'list', '--journal-dir', dir]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('No pending uploads');
    expect(text.stdout).toContain('1 staged archive(s)');
    expect(text.stdout).toMatch(/run-9\s+http:\/\/127\.0\.0\.1:5000\/ best\.tar\.gz \(from .*ckpt\)\s+\d+(?:\.\d+)? ?\w* ago\s+complete/);
    const json = (await cli(['resume', 'list', '--json', '--journal-dir', dir])).json();
    const [staged] = json.archives as Array<Record<string, any>>;
    expect(staged).toMatchObject({ dir: stage, complete: true, inUse: false });
    expect(staged!.size).toBeGreaterThan(manifest.archive.size);
    expect(staged!.ageMs).toBeGreaterThanOrEqual(0);

    // `--dry-run` names it as what clear would delete (and deletes nothing); `--older-than` younger than it does not.
    const dry = await cli(['resume', 'clear', '--dry-run', '--journal-dir', dir]);
    expect(dry.stdout).toContain('Would remove 1 staged archive(s)');
    expect((await cli(['resume', 'clear', '--dry-run', '--json', '--journal-dir', dir])).json().archives).toEqual([stage]);
    expect((await cli(['resume', 'clear', '--dry-run', '--json', '--older-than', '1d', '--journal-dir', dir])).json().archives).toEqual([]);
    expect((await cli(['resume', 'list', '--json', '--journal-dir', dir])).json().archives).toHaveLength(1);

    // `resume clear` deletes it (and its lock): the list is empty again.
    await cli(['resume', 'clear', '--keep-uploads', '--journal-dir', dir]);
    expect((await cli(['resume', 'list', '--json', '--journal-dir', dir])).json().archives).toEqual([]);
    expect(await readdir(join(dir, 'archives')).catch(() => [])).toEqual([]);
  });

  it('list says so when the journal is empty or missing, and lists a corrupt record as corrupt', async () => {
    const root = tempDir();
    const empty = await cli(['resume', 'list', '--journal-dir', join(root, 'none')]);
    expect(empty.code).toBe(0);
    expect(empty.stdout).toContain('No pending uploads');
    const { dir } = await seed(root);
    const [name] = await readdir(dir);
    await writeFile(join(dir, name!), '{ not json');
    const json = (await cli(['resume', 'list', '--json', '--journal-dir', dir])).json();
    expect((json.entries as unknown[]).filter((e) => (e as { corrupt?: boolean }).corrupt)).toHaveLength(1);
  });

  it('clear --older-than --keep-uploads deletes only old records and names the multipart upload it leaves; --dry-run deletes nothing', async () => {
    const root = tempDir();
    const { dir, keys } = await seed(root);
    await age(dir, 'ckpt/b.bin', 3 * 86_400_000);

    const dry = await cli(['resume', 'clear', '--older-than', '2d', '--dry-run', '--journal-dir', dir]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('Would remove 1 record(s)');
    expect(await readdir(dir)).toHaveLength(2);

    // The seeded records' server (127.0.0.1:5000) is not this test's: records only, no request.
    const run = await cli(['resume', 'clear', '--older-than', '2d', '--keep-uploads', '--journal-dir', dir]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('Removed 1 record(s)');
    expect(run.stdout).toMatch(/1 unfinished upload\(s\) they named were left on the store.*AbortIncompleteMultipartUpload/);
    expect(run.stdout).toMatch(/ckpt\/b\.bin \(multipart upload, upload id mpu-123\): kept \(--keep-uploads\)/);
    const journal = await UploadJournal.open({ dir, sweep: false });
    expect((await journal.lookup(keys[0]!)).state).toBe('uploaded');
    expect((await journal.lookup(keys[1]!)).state).toBe('none');

    const all = (await cli(['resume', 'clear', '--json', '--journal-dir', dir])).json();
    expect(all).toMatchObject({ ok: true, command: 'resume clear', dryRun: false, inUse: [] });
    expect(all.removed).toHaveLength(1);
    expect(await readdir(dir)).toEqual([]);
  });

  it("clear leaves a record of a newer journal format (a later artifact-uploader's, sharing the journal) and says so, in text and --json; list shows it as such, not as corrupt", async () => {
    const root = tempDir();
    const { dir, keys } = await seed(root);
    // The multipart record rewritten by a later version: this one cannot tell what upload it names.
    const [newerName] = (await readdir(dir)).filter((n) => JSON.parse(readFileSync(join(dir, n), 'utf8')).key.artifactPath === 'ckpt/b.bin');
    const newerPath = join(dir, newerName!);
    const newer = JSON.stringify({ ...JSON.parse(await readFile(newerPath, 'utf8')), version: 2, owner: { pid: 1, host: 'elsewhere', token: 'later' } });
    await writeFile(newerPath, newer);

    const list = (await cli(['resume', 'list', '--json', '--journal-dir', dir])).json();
    expect(list.entries).toContainEqual(expect.objectContaining({ file: newerPath, newerFormat: true, version: 2 }));
    const listed = list.entries.find((e: { file: string }) => e.file === newerPath);
    expect(listed).not.toHaveProperty('corrupt');
    // One wording wherever it is said: the --json hint, the list's row, the clear's lines.
    const hint: string = listed.hint;
    expect(hint).toMatch(/^Written by a newer version of artifact-uploader.*left alone.*[Uu]pgrade artifact-uploader .*to clear it\.$/);
    const listText = await cli(['resume', 'list', '--journal-dir', dir]);
    expect(listText.stdout).toMatch(/newer format .*version 2/);
    expect(listText.stdout).toContain(hint);

    const dry = await cli(['resume', 'clear', '--dry-run', '--json', '--journal-dir', dir]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.json().removed.map((r: { artifactPath: string }) => r.artifactPath)).toEqual(['ckpt/a.bin']);
    expect(dry.json().newerFormat).toEqual([expect.objectContaining({ file: newerPath, newerFormat: true, version: 2, hint })]);

    const text = await cli(['resume', 'clear', '--journal-dir', dir]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('Removed 1 record(s)');
    expect(text.stdout).toContain('Left 1 record(s) of a newer journal format');
    expect(text.stdout).toContain(`  ${newerPath} (version 2)`);
    expect(text.stdout).toContain(hint);
    expect(await readdir(dir)).toEqual([newerName]);
    expect(await readFile(newerPath, 'utf8')).toBe(newer);
    expect((await (await UploadJournal.open({ dir, sweep: false })).lookup(keys[0]!)).state).toBe('none');

    const json = await cli(['resume', 'clear', '--json', '--journal-dir', dir]);
    expect(json.code, json.stderr).toBe(0);
    expect(json.json()).toMatchObject({ removed: [], newerFormat: [expect.objectContaining({ file: newerPath, version: 2, hint })] });
    expect(await readFile(newerPath, 'utf8')).toBe(newer);

    // The library's clear() leaves it too, and returns it apart.
    const cleared = await (await UploadJournal.open({ dir, sweep: false })).clear();
    expect(cleared.removed).toEqual([]);
    expect(cleared.newerFormat).toEqual([expect.objectContaining({ file: newerPath, newerFormat: 2 })]);
    expect(await readFile(newerPath, 'utf8')).toBe(newer);
  });

  it("an operation log of a newer journal format (its header's version) is listed as such and left by clear, with the records' wording", async () => {
    const dir = join(tempDir(), 'journal');
    await mkdir(dir, { recursive: true });
    // A later artifact-uploader's log of finished files: its header says version 2.
    const logPath = join(dir, `${'a'.repeat(40)}-${'b'.repeat(16)}.log`);
    const log = `${JSON.stringify({ version: 2, kind: 'finished-files', key: { target: 'http://127.0.0.1:5000/', runId: 'r1' }, owner: { pid: 1, host: 'elsewhere', token: 'later' }, createdAt: Date.now() })}\n`;
    await writeFile(logPath, log);

    const [listed] = (await cli(['resume', 'list', '--json', '--journal-dir', dir])).json().entries;
    expect(listed).toMatchObject({ file: logPath, newerFormat: true, version: 2, hint: expect.stringMatching(/^Written by a newer version of artifact-uploader/) });
    expect(listed).not.toHaveProperty('corrupt');
    expect((await cli(['resume', 'list', '--journal-dir', dir])).stdout).toContain(listed.hint);
    const text = await cli(['resume', 'clear', '--journal-dir', dir]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('Removed 0 record(s)');
    expect(text.stdout).toContain(`  ${logPath} (version 2)`);
    expect(text.stdout).toContain(listed.hint);
    expect(await readFile(logPath, 'utf8')).toBe(log);
  });

  it('clear leaves a record it cannot read now (EIO) and says so, in text and --json; list shows it as unreadable; --remove-unreadable removes it, saying its upload is not given up', async () => {
    const root = tempDir();
    const { dir, keys } = await seed(root);
    // The multipart record: the only handle to upload mpu-123.
    const [name] = (await readdir(dir)).filter((n) => JSON.parse(readFileSync(join(dir, n), 'utf8')).key.artifactPath === 'ckpt/b.bin');
    const path = join(dir, name!);
    const before = await readFile(path, 'utf8');

    failReads(path, 'EIO', Infinity);
    const list = (await cli(['resume', 'list', '--json', '--journal-dir', dir])).json();
    const listed = list.entries.find((e: { file: string }) => e.file === path);
    expect(listed).toMatchObject({ file: path, unreadable: true, hint: expect.stringMatching(/^Could not be read now .*left alone\..*--remove-unreadable/) });
    expect(listed).not.toHaveProperty('corrupt');
    const hint: string = listed.hint;
    expect((await cli(['resume', 'list', '--journal-dir', dir])).stdout).toMatch(/unreadable .*Could not be read now/);

    const text = await cli(['resume', 'clear', '--keep-uploads', '--journal-dir', dir]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('Removed 1 record(s)');
    expect(text.stdout).toContain(`Left 1 record(s) that could not be read:\n  ${path}\n${hint}`);
    resetFsHooks();
    expect(await readdir(dir)).toEqual([name]);
    expect(await readFile(path, 'utf8')).toBe(before);
    expect((await (await UploadJournal.open({ dir, sweep: false })).lookup(keys[0]!)).state).toBe('none');

    failReads(path, 'EIO', Infinity);
    const json = (await cli(['resume', 'clear', '--json', '--journal-dir', dir])).json();
    expect(json).toMatchObject({ removed: [], unreadable: [expect.objectContaining({ file: path, unreadable: true, hint })] });
    const forced = await cli(['resume', 'clear', '--remove-unreadable', '--json', '--journal-dir', dir]);
    resetFsHooks();
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.json()).toMatchObject({ removed: [expect.objectContaining({ file: path, unreadable: true, upload: 'unknown' })], unreadable: [] });
    expect(await readdir(dir)).toEqual([]);
  });

  it('list and clear on a --journal-dir that is a file: a path error (2) naming it, not an internal error', async () => {
    const root = tempDir();
    const file = join(root, 'metrics.json');
    await writeFile(file, '{}');
    for (const command of [['resume', 'list'], ['resume', 'clear'], ['resume', 'clear', '--dry-run']]) {
      const run = await cli([...command, '--journal-dir', file, '--json']);
      expect(run.code, `${command.join(' ')}\n${run.stderr}`).toBe(2);
      expect(run.json().error).toMatchObject({ code: 'NOT_A_DIRECTORY', path: file, message: expect.stringContaining(`The resume journal ${file} is not a directory`) });
      expect(run.stderr).not.toMatch(/looks like a bug|INTERNAL_ERROR/);
    }
    expect(await readFile(file, 'utf8')).toBe('{}');
  });

  it('refuses a malformed --older-than as a usage error', async () => {
    const run = await cli(['resume', 'clear', '--older-than', 'soon']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('expected a number and a unit');
    expect(parseAge('90s')).toBe(90_000);
    expect(parseAge('1.5h')).toBe(5_400_000);
    expect(parseAge('2w')).toBe(14 * 86_400_000);
  });

  it('a --journal-dir inside the folder being uploaded is refused (2) before anything is written or sent, --no-resume and --dry-run too', async () => {
    const cwd = tempDir();
    await mkdir(join(cwd, 'ckpt'));
    await writeFile(join(cwd, 'ckpt', 'weights.bin'), 'w'.repeat(4096));
    const start = await cli(['runs', 'start'], { cwd });
    expect(start.code).toBe(0);
    const env = baseEnv({ MLFLOW_RUN_ID: start.stdout.trim() });
    const calls = [
      ['dir', '--stage', 'training', 'ckpt'],
      ['dir', '--stage', 'training', 'ckpt', '--no-resume'],
      // A dry run refuses it as the real run would.
      ['dir', '--stage', 'training', 'ckpt', '--dry-run'],
      ['training', 'ckpt'],
      // Its archive is staged in the journal: the staging lock went into the checkpoint archive.
      ['hpo', '--checkpoint-dir', 'ckpt'],
    ];
    for (const call of calls) {
      const run = await cli([...call, '--journal-dir', 'ckpt/.journal', '--json'], { cwd, env });
      expect(run.code, `${call.join(' ')}\n${run.stderr}`).toBe(2);
      const { error } = run.json();
      expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(`inside the folder being uploaded (${join(cwd, 'ckpt')})`) });
      expect(error.hint).toContain('--journal-dir');
      expect(error.hint).not.toContain('--no-resume'); // the journal is written with it too
    }
    expect(readdirSync(join(cwd, 'ckpt'))).toEqual(['weights.bin']);
    const artifacts = join(cwd, 'mlruns', '0', start.stdout.trim(), 'artifacts');
    expect(existsSync(artifacts) ? readdirSync(artifacts) : []).toEqual([]);
  });

  it("clear during a sweep names each trial process that keeps records once, with its count, not once per record", async () => {
    assertBuilt();
    const root = tempDir();
    const dir = join(root, 'journal');
    // Two trials mid-upload (live processes of the built package): each owns a record per file it sends.
    const trial = (files: number) =>
      startChild(
        `import { UploadJournal, localFileIdentity } from ${JSON.stringify(DIST_INDEX)};
        import { writeFileSync } from 'node:fs';
        import { join } from 'node:path';
        const journal = await UploadJournal.open({ dir: process.env.JOURNAL });
        for (let i = 0; i < ${files}; i++) {
          const path = join(process.env.ROOT, 'f' + process.pid + '-' + i + '.bin');
          writeFileSync(path, 'z'.repeat(1024));
          await journal.begin({ target: 'http://127.0.0.1:5000', runId: 'sweep-run', artifactPath: 'trials/' + process.pid + '/f' + i + '.bin', local: await localFileIdentity(path) });
        }
        console.log('uploading');
        process.stdin.resume();`,
        { env: { JOURNAL: dir, ROOT: root }, stdin: true },
      );
    const trials = [trial(3), trial(2)];
    try {
      await Promise.all(trials.map((t) => t.waitFor('uploading')));
      const run = await cli(['resume', 'clear', '--journal-dir', dir]);
      expect(run.code).toBe(0);
      const kept = run.stdout.split('\n').find((line) => line.startsWith('Kept '));
      expect(kept).toMatch(/^Kept 5 record\(s\) of uploads running now \(.*\)\.$/);
      expect(kept).toContain(`pid ${trials[0]!.pid}: 3`);
      expect(kept).toContain(`pid ${trials[1]!.pid}: 2`);
      // Each owner once: the line stays one entry per running trial, however many files it sends.
      expect(kept!.match(/pid \d+/g)).toHaveLength(2);
      expect(await readdir(dir)).toHaveLength(5);
    } finally {
      await Promise.all(trials.map((t) => t.kill()));
    }
  });

  it('--no-resume and --journal-dir are global options every command sees', () => {
    let seen: Record<string, unknown> | undefined;
    const program = createProgram({ stdout: { write: () => true }, stderr: { write: () => true } }, (pending) => (seen = pending.globals as Record<string, unknown>));
    program.parse(['dir', 'out', '--stage', 'training', '--no-resume', '--journal-dir', 'j'], { from: 'user' });
    expect(seen).toMatchObject({ resume: false, journalDir: 'j' });
    const ctx = new CliContext({ stdout: { write: () => true }, stderr: { write: () => true }, env: {}, cwd: '/work/here' }, seen as never);
    expect(ctx.resumeEnabled()).toBe(false);
    expect(ctx.journalDir()).toBe('/work/here/j');
    program.parse(['dir', 'out', '--stage', 'training'], { from: 'user' });
    expect(seen).toMatchObject({ resume: true });
  });
});
