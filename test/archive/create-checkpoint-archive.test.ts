import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { link, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import { Pack } from 'tar';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AbortedError, InvalidArgumentError, LocalPathError, SourceChangedError } from '../../src/core/errors.js';
import {
  createCheckpointArchive,
  DEFAULT_COMPRESSION_LEVEL,
  type ArchiveProgressEvent,
} from '../../src/archive/create-checkpoint-archive.js';
import { manifestFileName, readManifest, writeManifest } from '../../src/archive/manifest.js';
import { shouldSkipFile } from '../../src/archive/should-skip-file.js';
import { VERSION } from '../../src/version.js';
import { runPython } from '../support/python.js';

const run = promisify(execFile);

let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'au-archive-'));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** Writes files (relative path → content) under `root`, creating parents. */
async function tree(root: string, files: Record<string, Buffer | string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

/** Every regular file under `root` (relative path → sha256), as GNU tar left it. */
async function hashTree(root: string, prefix = ''): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const dirent of await readdir(join(root, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${dirent.name}` : dirent.name;
    if (dirent.isDirectory()) Object.assign(out, await hashTree(root, rel));
    else if (dirent.isFile()) out[rel] = sha256(await readFile(join(root, rel)));
  }
  return out;
}

async function gnuExtract(archive: string, dest: string): Promise<void> {
  await mkdir(dest, { recursive: true });
  const { stderr } = await run('tar', ['xzf', archive, '-C', dest]);
  expect(stderr).toBe('');
}

async function gnuList(archive: string): Promise<string[]> {
  const { stdout } = await run('tar', ['tzf', archive]);
  return stdout.split('\n').filter(Boolean);
}

const LONG_NAME = `${'deep/'.repeat(12)}${'a-rather-long-file-name-'.repeat(5)}.bin`;

async function checkpointFixture(root: string): Promise<Record<string, Buffer | string>> {
  const files: Record<string, Buffer | string> = {
    'config.json': '{"model_type":"llama"}\n',
    'model.safetensors': randomBytes(70_000),
    'empty.txt': '',
    'nested/a/b/c/weights.bin': randomBytes(1_500),
    'with space/file name.txt': 'spaces',
    'unicodé/日本語 ✓.json': '{"ok":true}',
    '@starts-with-at.txt': 'tar create() would read this as an archive',
    [LONG_NAME]: randomBytes(513),
  };
  await tree(root, files);
  await mkdir(join(root, 'empty-dir'));
  await mkdir(join(root, 'nested/empty-too'), { recursive: true });
  return files;
}

describe('createCheckpointArchive round trip', () => {
  it('GNU tar extracts every file byte-exact, as the manifest describes', async () => {
    const src = join(work, 'ckpt');
    const files = await checkpointFixture(src);
    const out = join(work, 'out', 'best.tar.gz');

    const manifest = await createCheckpointArchive(src, out);

    const expected = Object.fromEntries(Object.entries(files).map(([path, content]) => [path, sha256(content)]));
    expect(Object.fromEntries(manifest.files.map((f) => [f.path, f.sha256]))).toEqual(expected);
    for (const file of manifest.files) expect(file.size).toBe(Buffer.byteLength(files[file.path]!));
    expect(manifest.files.map((f) => f.path)).toEqual(Object.keys(files).sort());
    expect(manifest.fileCount).toBe(Object.keys(files).length);
    expect(manifest.totalBytes).toBe(Object.values(files).reduce((n, c) => n + Buffer.byteLength(c), 0));

    const dest = join(work, 'extracted');
    await gnuExtract(out, dest);
    expect(await hashTree(dest)).toEqual(expected);
    expect((await stat(join(dest, 'empty-dir'))).isDirectory()).toBe(true);
    expect((await stat(join(dest, 'nested/empty-too'))).isDirectory()).toBe(true);

    const archiveBytes = await readFile(out);
    expect(manifest.archive).toEqual({
      fileName: 'best.tar.gz',
      format: 'tar+gzip',
      compressionLevel: DEFAULT_COMPRESSION_LEVEL,
      size: archiveBytes.length,
      sha256: sha256(archiveBytes),
    });
    expect(manifest.manifestVersion).toBe(1);
    expect(manifest.tool).toEqual({ name: 'artifact-uploader', version: VERSION });
    expect(Date.parse(manifest.createdAt)).not.toBeNaN();
    expect(manifest.verification).toEqual({ status: 'not-run' });
    expect(manifest.directories).toContain('empty-dir/');
    expect(manifest.directories).toContain('nested/a/b/c/');
    expect(manifest.skipped).toEqual([]);
    // Atomic write: nothing but the archive is left in the output directory.
    expect(await readdir(join(work, 'out'))).toEqual(['best.tar.gz']);
  });

  it('writes entries in sorted order with portable headers, so equal input gives equal bytes', async () => {
    const src = join(work, 'ckpt');
    await tree(src, { 'b.txt': 'b', 'a/z.txt': 'z', 'a.txt': 'a', 'a/b/c.txt': 'c' });
    const first = await createCheckpointArchive(src, join(work, 'one.tar.gz'));
    const second = await createCheckpointArchive(src, join(work, 'two.tar.gz'));
    expect(first.archive.sha256).toBe(second.archive.sha256);
    expect(await gnuList(join(work, 'one.tar.gz'))).toEqual(['a.txt', 'a/', 'a/b/', 'a/b/c.txt', 'a/z.txt', 'b.txt']);
    const { stdout } = await run('tar', ['tvzf', join(work, 'one.tar.gz'), '--numeric-owner']);
    for (const line of stdout.trim().split('\n')) expect(line).toMatch(/^\S+ 0\/0 /);
  });

  it('gives the same bytes however the files are read, in a portable gzip that GNU tar extracts', async () => {
    // Several MiB across many gzip output chunks (1 MiB each), mixing text and random bytes.
    const src = join(work, 'ckpt');
    const files = {
      'model.safetensors': randomBytes(3 * 1024 * 1024 + 77),
      'tokenizer.json': JSON.stringify(Array.from({ length: 60_000 }, (_, i) => `tok${i}`)),
      'optimizer/state.pt': randomBytes(1024 * 1024),
      'empty.txt': '',
    };
    await tree(src, files);
    const one = await createCheckpointArchive(src, join(work, 'one.tar.gz'));
    const two = await createCheckpointArchive(src, join(work, 'two.tar.gz'), { readBufferSize: 4096 });
    const three = await createCheckpointArchive(src, join(work, 'three.tar.gz'), { readBufferSize: 512 * 1000 });
    expect(two.archive.sha256).toBe(one.archive.sha256);
    expect(three.archive.sha256).toBe(one.archive.sha256);
    const bytes = await readFile(join(work, 'one.tar.gz'));
    expect(sha256(bytes)).toBe(one.archive.sha256);
    expect(bytes.length).toBe(one.archive.size);
    // gzip header: magic, deflate, no flags, mtime 0, OS "unknown" (255) on every platform.
    expect([...bytes.subarray(0, 8)]).toEqual([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
    expect(bytes[9]).toBe(255);
    await gnuExtract(join(work, 'one.tar.gz'), join(work, 'x'));
    const expected = Object.fromEntries(Object.entries(files).map(([path, content]) => [path, sha256(content)]));
    expect(await hashTree(join(work, 'x'))).toEqual(expected);
    expect(Object.fromEntries(one.files.map((f) => [f.path, f.sha256]))).toEqual(expected);
  });

  it('hands tar a few paths ahead of the files it has finished, never the whole directory, in sorted order', async () => {
    // 300 files in 3 directories: the archive lists every one in sorted order, byte-exact, while
    // tar's Pack is never given more than a few paths beyond the files already archived (given
    // all at once, Pack holds a queued job and a stat for each until the archive ends).
    const src = join(work, 'many');
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 300; i++) files[`d${i % 3}/f${String(i).padStart(3, '0')}.bin`] = randomBytes(600 + i);
    await tree(src, files);
    const added: string[] = [];
    let filesDone = 0;
    let mostAhead = 0;
    const originalWrite = Pack.prototype.write;
    const write = vi.spyOn(Pack.prototype, 'write').mockImplementation(function (this: Pack, path) {
      added.push(String(path));
      mostAhead = Math.max(mostAhead, added.length - filesDone);
      return originalWrite.call(this, path);
    });
    try {
      const manifest = await createCheckpointArchive(src, join(work, 'many.tar.gz'), {
        progressIntervalMs: 0,
        onProgress: (event) => {
          if (event.type === 'bytes') filesDone = event.filesDone;
        },
      });
      const sorted = Object.keys(files).sort();
      expect(manifest.files.map((f) => f.path)).toEqual(sorted);
      // Each directory, then its files: what tar was handed ("d0") and what it wrote ("d0/").
      const inOrder = (dirSuffix: string) => ['d0', 'd1', 'd2'].flatMap((d) => [d + dirSuffix, ...sorted.filter((p) => p.startsWith(`${d}/`))]);
      expect(added).toEqual(inOrder(''));
      expect(mostAhead).toBeLessThanOrEqual(16);
      expect(await gnuList(join(work, 'many.tar.gz'))).toEqual(inOrder('/'));
      await gnuExtract(join(work, 'many.tar.gz'), join(work, 'x'));
      expect(await hashTree(join(work, 'x'))).toEqual(Object.fromEntries(Object.entries(files).map(([path, content]) => [path, sha256(content)])));
    } finally {
      write.mockRestore();
    }
  });

  it('archives an empty directory', async () => {
    const src = join(work, 'empty');
    await mkdir(src);
    const manifest = await createCheckpointArchive(src, join(work, 'empty.tar.gz'));
    expect(manifest.fileCount).toBe(0);
    expect(manifest.totalBytes).toBe(0);
    expect(await gnuList(join(work, 'empty.tar.gz'))).toEqual([]);
  });

  it("dates each directory by the newest file it holds: GNU tar and Python's tarfile (filter='data') restore that, the extracted checkpoint zips again, and a name made and removed in it changes no byte", async () => {
    const src = join(work, 'ckpt');
    await tree(src, { 'sub/deep/w.bin': 'w', 'sub/v.bin': 'v', 'a.txt': 'a' });
    await mkdir(join(src, 'empty-dir'));
    const at = (iso: string) => new Date(iso);
    utimesSync(join(src, 'sub/deep/w.bin'), at('2024-05-01T12:00:00Z'), at('2024-05-01T12:00:00Z'));
    utimesSync(join(src, 'sub/v.bin'), at('2024-04-01T12:00:00Z'), at('2024-04-01T12:00:00Z'));
    utimesSync(join(src, 'a.txt'), at('2024-06-01T12:00:00Z'), at('2024-06-01T12:00:00Z'));
    const out = join(work, 'd.tar.gz');
    await createCheckpointArchive(src, out);
    // What each directory is dated: its newest file at any depth; an empty one, the archive's newest.
    const expected = { sub: at('2024-05-01T12:00:00Z'), 'sub/deep': at('2024-05-01T12:00:00Z'), 'empty-dir': at('2024-06-01T12:00:00Z') };

    await gnuExtract(out, join(work, 'gnu'));
    for (const [dir, when] of Object.entries(expected)) expect((await stat(join(work, 'gnu', dir))).mtime, dir).toEqual(when);
    // Undated (node-tar's portable mode) they extracted as 1970, and zipfile refuses dates before 1980.
    const script = [
      'import json, os, shutil, sys, tarfile',
      'archive, dest = sys.argv[1:]',
      'with tarfile.open(archive) as t: t.extractall(dest, filter="data")',
      'shutil.make_archive(dest + "-again", "zip", dest)',
      `print(json.dumps({d: os.stat(os.path.join(dest, d)).st_mtime for d in ${JSON.stringify(Object.keys(expected))}}))`,
    ].join('\n');
    const mtimes = JSON.parse(await runPython(script, { args: [out, join(work, 'python')] })) as Record<string, number>;
    expect(mtimes).toEqual(Object.fromEntries(Object.entries(expected).map(([dir, when]) => [dir, when.getTime() / 1000])));

    // A lock file a training loop made and removed moves its directory's own mtime, not the archive.
    writeFileSync(join(src, 'sub', 'deep', '.lock'), '');
    unlinkSync(join(src, 'sub', 'deep', '.lock'));
    const again = join(work, 'again.tar.gz');
    await createCheckpointArchive(src, again);
    expect(readFileSync(again)).toEqual(readFileSync(out));
  });

  it('dates the directories of an archive without any file 2 January 1980 (UTC), a date zipfile takes in every time zone', async () => {
    const src = join(work, 'ckpt');
    await mkdir(join(src, 'only', 'dirs'), { recursive: true });
    const out = join(work, 'e.tar.gz');
    await createCheckpointArchive(src, out);
    await gnuExtract(out, join(work, 'gnu-e'));
    expect((await stat(join(work, 'gnu-e', 'only', 'dirs'))).mtime).toEqual(new Date('1980-01-02T00:00:00Z'));
  });

  it('stores a hard-linked file once and lists both names with the same hash', async () => {
    const src = join(work, 'ckpt');
    await tree(src, { 'a.bin': randomBytes(2_000) });
    await link(join(src, 'a.bin'), join(src, 'b.bin'));
    const manifest = await createCheckpointArchive(src, join(work, 'h.tar.gz'));
    expect(manifest.files.map((f) => f.path)).toEqual(['a.bin', 'b.bin']);
    expect(manifest.files[0]!.sha256).toBe(manifest.files[1]!.sha256);
    expect(manifest.files[1]!.size).toBe(2_000);
    const dest = join(work, 'x');
    await gnuExtract(join(work, 'h.tar.gz'), dest);
    const hashes = await hashTree(dest);
    expect(hashes['b.bin']).toBe(manifest.files[1]!.sha256);
  });

  it('archives twin names as given and names them in the manifest\'s warnings, as an upload\'s plan does', async () => {
    // Extracted on macOS or Windows, `Model.bin`/`model.bin` land on one file, and the file `A`
    // cannot sit beside the directory `a/` (nor the link `E` beside the empty directory `e/`).
    const src = join(work, 'ckpt');
    await tree(src, { 'Model.bin': 'M', 'model.bin': 'm', A: 'file', 'a/b.bin': 'b', 'Ckpt/x.bin': 'x', 'ckpt/y.bin': 'y' });
    await mkdir(join(src, 'e'));
    await symlink('A', join(src, 'E'));
    const manifestPath = join(work, 'twins.manifest.json');
    const manifest = await createCheckpointArchive(src, join(work, 'twins.tar.gz'), { manifestPath });
    expect(manifest.files.map((f) => f.path)).toEqual(['A', 'Ckpt/x.bin', 'Model.bin', 'a/b.bin', 'ckpt/y.bin', 'model.bin']);
    expect(manifest.warnings).toHaveLength(3);
    const text = manifest.warnings!.join('\n');
    expect(text).toContain('"Model.bin" and "model.bin" differ only in letter case');
    expect(text).toContain('"A" (a file) and the directory "a/" differ only in letter case');
    expect(text).toContain('"E" (a file) and the directory "e/" differ only in letter case');
    // Two directories that fold to one lose nothing: their files land in one folder.
    expect(text).not.toMatch(/ckpt/i);
    // Kept in the manifest written beside the archive, which readManifest takes.
    expect((await readManifest(manifestPath)).warnings).toEqual(manifest.warnings);
    // A checkpoint without twins has no `warnings` at all.
    const plain = join(work, 'plain');
    await tree(plain, { 'model.bin': 'm', 'a/b.bin': 'b' });
    expect('warnings' in (await createCheckpointArchive(plain, join(work, 'plain.tar.gz')))).toBe(false);
  });

  it('honours the compression level', async () => {
    const src = join(work, 'ckpt');
    await tree(src, { 'text.txt': 'the same line again\n'.repeat(5_000) });
    const stored = await createCheckpointArchive(src, join(work, 'l0.tar.gz'), { level: 0 });
    const best = await createCheckpointArchive(src, join(work, 'l9.tar.gz'), { level: 9 });
    expect(stored.archive.compressionLevel).toBe(0);
    expect(best.archive.size).toBeLessThan(stored.archive.size / 10);
    await gnuExtract(join(work, 'l0.tar.gz'), join(work, 'x0'));
    expect(await hashTree(join(work, 'x0'))).toEqual({ 'text.txt': stored.files[0]!.sha256 });
    await expect(createCheckpointArchive(src, join(work, 'bad.tar.gz'), { level: 10 })).rejects.toThrow(InvalidArgumentError);
  });

  it('writeManifest refuses what is not a manifest (a skipped upload\'s undefined), writing nothing', async () => {
    const path = join(work, 'm', 'best.manifest.json');
    for (const manifest of [undefined, null, 'manifest', { files: [] }]) {
      await expect(writeManifest(manifest as never, path)).rejects.toMatchObject({ name: 'InvalidArgumentError', argument: 'manifest' });
    }
    await expect(writeManifest({ manifestVersion: 1 } as never, 42 as never)).rejects.toMatchObject({ name: 'InvalidArgumentError', argument: 'path' });
    expect(await readdir(work)).toEqual([]);
  });

  it('refuses arguments of the wrong type with an InvalidArgumentError naming them, writing nothing', async () => {
    const src = join(work, 'ckpt');
    await tree(src, { 'w.bin': 'w', 'old.bak': 'b' });
    const out = join(work, 'out', 'bad.tar.gz');
    const cases: Array<[string, unknown[]]> = [
      ['exclude', [src, out, { exclude: '*.bak' }]],
      ['filter', [src, out, { filter: '*.bin' }]],
      ['onProgress', [src, out, { onProgress: true }]],
      ['signal', [src, out, { signal: { aborted: false } }]],
      ['manifestPath', [src, out, { manifestPath: 42 }]],
      ['progressIntervalMs', [src, out, { progressIntervalMs: Number.NaN }]],
      ['options', [src, out, null]],
      ['dir', [undefined, out]],
      ['out', [src, undefined]],
    ];
    for (const [argument, args] of cases) {
      const call = createCheckpointArchive as (...a: unknown[]) => Promise<unknown>;
      await expect(call(...args), argument).rejects.toMatchObject({ name: 'InvalidArgumentError', argument });
    }
    await expect(createCheckpointArchive(src, out, { exclude: '*.bak' as unknown as string[] })).rejects.toMatchObject({ hint: 'Pass a list, even of one pattern: exclude: ["*.bak"].' });
    expect(await readdir(work)).toEqual(['ckpt']);
  });
});

describe('what goes in', () => {
  const junk = {
    '__pycache__/mod.cpython-312.pyc': 'x',
    'src/__pycache__/deep.pyc': 'x',
    'loose.pyc': 'x',
    '.pytest_cache/v/cache/lastfailed': '{}',
    'nb/.ipynb_checkpoints/train-checkpoint.ipynb': '{}',
    'download.tmp': 'x',
    'x.temp': 'x',
    'model.safetensors.partial': 'x',
    'shard.part': 'x',
    '~$report.docx': 'x',
    'poetry.lock': 'x',
    '.lock': 'x',
    '.notes.txt.swp': 'x',
    '.notes.txt.swo': 'x',
    'notes.txt~': 'x',
    '.DS_Store': 'x',
    'Thumbs.db': 'x',
    '.git/HEAD': 'ref: refs/heads/main',
  };
  const keep = { 'model.safetensors': 'weights', 'src/tokenizer.json': '{}', 'partial_results.json': '{}', 'lockfile.md': 'x' };

  it('leaves out the default skip list and says why', async () => {
    const src = join(work, 'ckpt');
    await tree(src, { ...junk, ...keep });
    const manifest = await createCheckpointArchive(src, join(work, 'a.tar.gz'));
    expect(manifest.files.map((f) => f.path)).toEqual(Object.keys(keep).sort());
    const listed = await gnuList(join(work, 'a.tar.gz'));
    for (const path of Object.keys(junk)) expect(listed).not.toContain(path);
    const skipped = Object.fromEntries(manifest.skipped.map((s) => [s.path, `${s.reason} ${s.pattern}`]));
    expect(skipped).toMatchObject({
      '__pycache__/': 'default-skip-list __pycache__/',
      '.git/': 'default-skip-list .git',
      'download.tmp': 'default-skip-list *.tmp',
      '.lock': 'default-skip-list *.lock',
      'notes.txt~': 'default-skip-list *~',
      'nb/.ipynb_checkpoints/': 'default-skip-list .ipynb_checkpoints/',
    });
    for (const path of Object.keys(junk)) expect(shouldSkipFile(path), path).toBe(true);
    for (const path of Object.keys(keep)) expect(shouldSkipFile(path), path).toBe(false);
  });

  it('applies exclude patterns on top of the skip list', async () => {
    const src = join(work, 'ckpt');
    await tree(src, {
      'model.safetensors': 'w',
      'optimizer/state.pt': 'o',
      'logs/2024/run.log': 'l',
      'keep.bak.json': 'k',
      'old.bak': 'b',
      'sub/old.bak': 'b',
      'x.tmp': 't',
    });
    const manifest = await createCheckpointArchive(src, join(work, 'a.tar.gz'), { exclude: ['optimizer/', '/logs/**', '*.bak'] });
    expect(manifest.files.map((f) => f.path)).toEqual(['keep.bak.json', 'model.safetensors']);
    // `/logs/**` matches what is inside logs/, not logs/ itself.
    expect(manifest.directories).toEqual(['logs/', 'sub/']);
    expect(manifest.skipped).toEqual([
      { path: 'logs/2024/', reason: 'exclude', pattern: '/logs/**' },
      { path: 'old.bak', reason: 'exclude', pattern: '*.bak' },
      { path: 'optimizer/', reason: 'exclude', pattern: 'optimizer/' },
      { path: 'sub/old.bak', reason: 'exclude', pattern: '*.bak' },
      { path: 'x.tmp', reason: 'default-skip-list', pattern: '*.tmp' },
    ]);
  });

  it('a filter replaces the default skip list', async () => {
    const src = join(work, 'ckpt');
    await tree(src, { 'a.tmp': 't', 'b.txt': 'b', 'big.bin': randomBytes(3_000) });
    const seen: Array<[string, string, number]> = [];
    const manifest = await createCheckpointArchive(src, join(work, 'a.tar.gz'), {
      filter: (path, entry) => {
        seen.push([path, entry.type, entry.size]);
        return entry.size < 1_000;
      },
    });
    expect(manifest.files.map((f) => f.path)).toEqual(['a.tmp', 'b.txt']);
    expect(manifest.skipped).toEqual([{ path: 'big.bin', reason: 'filter' }]);
    expect(seen).toContainEqual(['big.bin', 'file', 3_000]);
  });

  it('never archives the output into itself', async () => {
    const src = join(work, 'ckpt');
    await tree(src, { 'a.txt': 'a' });
    const out = join(src, 'ckpt.tar.gz');
    await createCheckpointArchive(src, out);
    const again = await createCheckpointArchive(src, out);
    expect(again.files.map((f) => f.path)).toEqual(['a.txt']);
    expect(again.skipped).toEqual([{ path: 'ckpt.tar.gz', reason: 'archive-output' }]);
    expect(await gnuList(out)).toEqual(['a.txt']);
  });

  it('rewrites its own archive and manifest inside the directory on a rerun, and archives neither', async () => {
    const src = join(work, 'ckpt');
    await tree(src, { 'a.txt': 'a' });
    const out = join(src, 'ckpt.tar.gz');
    const manifestPath = join(src, 'ckpt.manifest.json');
    await createCheckpointArchive(src, out, { manifestPath });
    await writeFile(join(src, 'b.txt'), 'b');
    const again = await createCheckpointArchive(src, out, { manifestPath });
    expect(again.files.map((f) => f.path)).toEqual(['a.txt', 'b.txt']);
    expect(again.skipped).toEqual([
      { path: 'ckpt.manifest.json', reason: 'archive-output' },
      { path: 'ckpt.tar.gz', reason: 'archive-output' },
    ]);
    expect(await gnuList(out)).toEqual(['a.txt', 'b.txt']);
    expect(await readManifest(manifestPath)).toEqual(again);
    // Recognised as ours whatever the level, and for an empty directory (a tar of zeros only).
    for (const level of [0, 9]) await createCheckpointArchive(src, out, { manifestPath, level });
    const empty = join(work, 'empty');
    await mkdir(empty);
    await createCheckpointArchive(empty, join(empty, 'e.tar.gz'));
    expect((await createCheckpointArchive(empty, join(empty, 'e.tar.gz'))).skipped).toEqual([{ path: 'e.tar.gz', reason: 'archive-output' }]);
  });

  it("refuses an out or manifestPath that would replace one of the checkpoint's own files, before writing anything", async () => {
    const src = join(work, 'ckpt');
    const weights = randomBytes(300_000);
    await tree(src, { 'a.txt': 'a', 'sub/w.bin': weights });
    await run('tar', ['czf', join(src, 'data.tar.gz'), '-C', src, 'a.txt']);
    const before = await hashTree(src);

    const out = join(work, 'out', 'ckpt.tar.gz');
    const refusals: Array<[string, Parameters<typeof createCheckpointArchive>[2], string]> = [
      [join(src, 'sub', 'w.bin'), {}, 'out'],
      // A .tar.gz of GNU tar among the checkpoint's files is theirs, not an earlier archive of ours.
      [join(src, 'data.tar.gz'), {}, 'out'],
      [out, { manifestPath: join(src, 'a.txt') }, 'manifestPath'],
      // Another spelling of the same file: through a symlink to the checkpoint directory.
      [join(work, 'alias', 'sub', 'w.bin'), {}, 'out'],
    ];
    await symlink(src, join(work, 'alias'));
    for (const [archivePath, options, argument] of refusals) {
      const error = await createCheckpointArchive(src, archivePath, options).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error).toMatchObject({ argument, hint: expect.stringContaining(`\`${argument}\``) });
    }
    // The checkpoint is as it was (no temp file either), and no archive was written elsewhere.
    expect(await hashTree(src)).toEqual(before);
    expect(await readdir(work)).toEqual(['alias', 'ckpt']);
  });

  it('refuses a manifestPath that is the archive path, however it is spelled, before writing anything', async () => {
    const src = join(work, 'ckpt');
    await tree(src, { 'a.txt': 'a' });
    await mkdir(join(work, 'out'));
    await symlink(join(work, 'out'), join(work, 'alias'));
    const out = join(work, 'out', 'ckpt.tar.gz');
    for (const manifestPath of [out, join(work, 'out', '..', 'out', 'ckpt.tar.gz'), join(work, 'alias', 'ckpt.tar.gz')]) {
      await expect(createCheckpointArchive(src, out, { manifestPath })).rejects.toMatchObject({ name: 'InvalidArgumentError', argument: 'manifestPath' });
    }
    expect(await readdir(join(work, 'out'))).toEqual([]);
  });
});

describe('symlinks', () => {
  it('keeps a relative link that stays inside, as a link', async () => {
    const src = join(work, 'ckpt');
    await tree(src, { 'blobs/abc': 'weights' });
    await symlink('blobs/abc', join(src, 'model.safetensors'));
    const manifest = await createCheckpointArchive(src, join(work, 'a.tar.gz'));
    expect(manifest.symlinks).toEqual([{ path: 'model.safetensors', target: 'blobs/abc' }]);
    expect(manifest.files.map((f) => f.path)).toEqual(['blobs/abc']);
    const dest = join(work, 'x');
    await gnuExtract(join(work, 'a.tar.gz'), dest);
    expect((await lstat(join(dest, 'model.safetensors'))).isSymbolicLink()).toBe(true);
    expect(await readlink(join(dest, 'model.safetensors'))).toBe('blobs/abc');
    expect(await readFile(join(dest, 'model.safetensors'), 'utf8')).toBe('weights');
  });

  it('refuses a link that escapes the directory, relative or absolute', async () => {
    const src = join(work, 'ckpt');
    await tree(work, { 'outside.txt': 'secret', 'ckpt/a.txt': 'a' });
    await symlink('../outside.txt', join(src, 'escape'));
    const error = await createCheckpointArchive(src, join(work, 'a.tar.gz')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LocalPathError);
    expect((error as LocalPathError).code).toBe('SYMLINK_ESCAPES');
    expect((error as LocalPathError).message).toContain('Symlink escape -> ../outside.txt points outside the checkpoint directory');
    await expect(readdir(work)).resolves.not.toContain('a.tar.gz');

    await rm(join(src, 'escape'));
    await symlink(join(src, 'a.txt'), join(src, 'absolute'));
    await expect(createCheckpointArchive(src, join(work, 'a.tar.gz'))).rejects.toMatchObject({
      code: 'SYMLINK_ESCAPES',
      message: expect.stringContaining('has an absolute target'),
    });

    // Excluded links are not looked at.
    const manifest = await createCheckpointArchive(src, join(work, 'a.tar.gz'), { exclude: ['absolute'] });
    expect(manifest.files.map((f) => f.path)).toEqual(['a.txt']);
  });

  it('refuses a chain of links that leaves the directory', async () => {
    const src = join(work, 'ckpt');
    await tree(work, { 'outside.txt': 'secret', 'ckpt/a.txt': 'a' });
    await symlink('../outside.txt', join(src, 'hop2'));
    await symlink('hop2', join(src, 'hop1'));
    await expect(createCheckpointArchive(src, join(work, 'a.tar.gz'), { exclude: ['hop2'] })).rejects.toMatchObject({
      code: 'SYMLINK_ESCAPES',
      message: expect.stringContaining('resolves outside'),
    });
  });
});

describe('errors, progress and abort', () => {
  it('refuses a missing directory, a file, and an out that is a directory', async () => {
    await expect(createCheckpointArchive(join(work, 'missing'), join(work, 'a.tar.gz'))).rejects.toMatchObject({
      name: 'LocalPathError',
      code: 'PATH_NOT_FOUND',
      message: expect.stringContaining(join(work, 'missing')),
    });
    await writeFile(join(work, 'file'), 'x');
    await expect(createCheckpointArchive(join(work, 'file'), join(work, 'a.tar.gz'))).rejects.toMatchObject({ code: 'NOT_A_DIRECTORY' });
    await mkdir(join(work, 'src'));
    await expect(createCheckpointArchive(join(work, 'src'), work)).rejects.toMatchObject({ code: 'NOT_A_FILE' });
  });

  it('reports phases in order and byte progress up to the totals', async () => {
    const src = join(work, 'ckpt');
    // Just over one 1 MiB read buffer, so a.bin takes two reads.
    await tree(src, { 'a.bin': randomBytes(1024 * 1024 + 5), 'b.txt': 'hello', 'c.txt': '' });
    const events: ArchiveProgressEvent[] = [];
    await createCheckpointArchive(src, join(work, 'a.tar.gz'), { onProgress: (e) => events.push(e), progressIntervalMs: 0 });
    expect(events.filter((e) => e.type === 'phase').map((e) => e.phase)).toEqual(['scanning', 'archiving', 'done']);
    const bytes = events.filter((e) => e.type === 'bytes');
    expect(bytes.filter((e) => e.path === 'a.bin').map((e) => [e.loaded, e.total])).toEqual([
      [1024 * 1024, 1024 * 1024 + 5],
      [1024 * 1024 + 5, 1024 * 1024 + 5],
    ]);
    const last = bytes.at(-1)!;
    expect(last).toMatchObject({ bytesDone: 1024 * 1024 + 10, bytesTotal: 1024 * 1024 + 10, filesDone: 3, filesTotal: 3 });
    expect(events.at(-1)).toEqual({ type: 'phase', phase: 'done' });
  });

  it('always sends the final byte event, however coarse the throttle', async () => {
    const src = join(work, 'ckpt');
    await tree(src, { 'a.txt': 'a', 'b.txt': 'bb' });
    const bytes: ArchiveProgressEvent[] = [];
    await createCheckpointArchive(src, join(work, 'a.tar.gz'), {
      onProgress: (e) => e.type === 'bytes' && bytes.push(e),
      progressIntervalMs: 3_600_000,
    });
    expect(bytes.at(-1)).toMatchObject({ bytesDone: 3, bytesTotal: 3, filesDone: 2, filesTotal: 2 });
  });

  it('aborts cleanly: AbortedError, no archive, no temp file', async () => {
    const src = join(work, 'ckpt');
    await tree(src, { 'a.bin': randomBytes(4096), 'b.bin': randomBytes(1024) });
    const out = join(work, 'out', 'a.tar.gz');

    const before = new AbortController();
    before.abort();
    await expect(createCheckpointArchive(src, out, { signal: before.signal })).rejects.toThrow(AbortedError);

    const during = new AbortController();
    const error = await createCheckpointArchive(src, out, {
      signal: during.signal,
      progressIntervalMs: 0,
      onProgress: (e) => {
        if (e.type === 'bytes') during.abort();
      },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AbortedError);
    expect(await readdir(join(work, 'out'))).toEqual([]);
  });

  it('an aborted archive says what was left (an earlier archive and manifest as they were, no temp file) and what to do', async () => {
    // The error said only "Archiving was aborted.": no hint, nothing on whether the earlier
    // archive survived or whether a rerun resumes.
    const src = join(work, 'ckpt');
    await tree(src, { 'a.bin': randomBytes(4096), 'b.bin': randomBytes(1024) });
    const out = join(work, 'out', 'a.tar.gz');
    const manifestPath = join(work, 'out', 'a.manifest.json');
    await tree(join(work, 'out'), { 'a.tar.gz': 'earlier archive', 'a.manifest.json': '{"earlier": true}' });

    for (const phase of ['scanning', 'bytes'] as const) {
      const controller = new AbortController();
      const error = await createCheckpointArchive(src, out, {
        manifestPath,
        signal: controller.signal,
        progressIntervalMs: 0,
        onProgress: (e) => {
          if (e.type === phase || (e.type === 'phase' && e.phase === phase)) controller.abort();
        },
      }).catch((e: unknown) => e);
      expect(error, phase).toBeInstanceOf(AbortedError);
      expect(error, phase).toMatchObject({
        code: 'ABORTED',
        message: expect.stringContaining(`Archiving ${src} was aborted by its AbortSignal; nothing was written (${out} and ${manifestPath} as before the call, no temp file left).`),
        hint: expect.stringMatching(/^Run the same call again when ready: archiving starts over from the first file/),
      });
      expect((await readdir(join(work, 'out'))).sort(), phase).toEqual(['a.manifest.json', 'a.tar.gz']);
      expect(await readFile(out, 'utf8'), phase).toBe('earlier archive');
      expect(await readFile(manifestPath, 'utf8'), phase).toBe('{"earlier": true}');
    }
  });

  it('an archive aborted before it started names the directory as one aborted later does (resolved), with the same hint', async () => {
    // The "before it started" error was built apart from the others: it named the directory as
    // given (relative to the working directory), where every later abort names the resolved one.
    const src = join(work, 'ckpt');
    await tree(src, { 'a.bin': randomBytes(1024) });
    const controller = new AbortController();
    controller.abort();
    const error = await createCheckpointArchive(relative(process.cwd(), src), join(work, 'a.tar.gz'), { signal: controller.signal }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AbortedError);
    expect(error).toMatchObject({
      code: 'ABORTED',
      message: expect.stringContaining(`Archiving ${src} was aborted by its AbortSignal before it started; nothing was written. `),
      hint: expect.stringMatching(/^Run the same call again when ready: archiving starts over from the first file/),
    });
    expect(await readdir(work)).toEqual(['ckpt']);
  });

  it.runIf(process.platform === 'linux')('stops reading and closes its files when aborted', async () => {
    const openFds = () => readdirSync('/proc/self/fd').length;
    const src = join(work, 'ckpt');
    // Files several read buffers long: node-tar keeps them open between reads.
    await tree(src, Object.fromEntries(['a', 'b', 'c', 'd', 'e', 'f'].map((n) => [`${n}.bin`, randomBytes(16 * 1024)])));
    const before = openFds();
    const controller = new AbortController();
    let eventsAfterAbort = 0;
    await expect(
      createCheckpointArchive(src, join(work, 'a.tar.gz'), {
        signal: controller.signal,
        readBufferSize: 1024,
        progressIntervalMs: 0,
        onProgress: (e) => {
          if (controller.signal.aborted) eventsAfterAbort++;
          if (e.type === 'bytes') controller.abort();
        },
      }),
    ).rejects.toThrow(AbortedError);
    // Descriptors close asynchronously (on libuv's pool, slow on a loaded machine): wait for
    // them, bounded at ~30 s. Left alone, node-tar would only close them after reading every
    // remaining file into the dead stream.
    for (let i = 0; i < 3000 && openFds() > before; i++) await new Promise((r) => setTimeout(r, 10));
    expect(openFds()).toBe(before);
    expect(eventsAfterAbort).toBe(0);
    expect(await readdir(work)).toEqual(['ckpt']);
  });

  it('fails with PATH_UNREADABLE, leaving nothing behind, when a file shrinks while it is read', async () => {
    const src = join(work, 'ckpt');
    await tree(src, { 'a.bin': randomBytes(4096) });
    const error = await createCheckpointArchive(src, join(work, 'a.tar.gz'), {
      readBufferSize: 1024,
      progressIntervalMs: 0,
      onProgress: (e) => {
        if (e.type === 'bytes' && e.loaded === 1024) truncateSync(join(src, 'a.bin'), 10);
      },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LocalPathError);
    expect(error).toMatchObject({ code: 'PATH_UNREADABLE', message: expect.stringContaining('unexpected EOF') });
    expect(await readdir(work)).toEqual(['ckpt']);
  });

  it('fails with SOURCE_CHANGED, leaving nothing behind, when a file is rewritten in place while it is read', async () => {
    const src = join(work, 'ckpt');
    await tree(src, { 'a.bin': randomBytes(4096), 'b.bin': randomBytes(1024) });
    const path = join(src, 'a.bin');
    const error = await createCheckpointArchive(src, join(work, 'a.tar.gz'), {
      readBufferSize: 1024,
      progressIntervalMs: 0,
      onProgress: (e) => {
        if (e.type !== 'bytes' || e.path !== 'a.bin' || e.loaded !== 1024) return;
        // Same size, other bytes: the rest of what tar reads is the new version. The mtime is
        // moved on explicitly, as a writer seconds later would (a coarse clock could keep it).
        const { mtime } = statSync(path);
        writeFileSync(path, randomBytes(4096));
        utimesSync(path, mtime, new Date(mtime.getTime() + 10_000));
      },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceChangedError);
    expect(error).toMatchObject({ code: 'SOURCE_CHANGED', path: expect.stringMatching(/a\.bin$/), message: expect.stringContaining('was rewritten (its modification time changed) while it was being archived') });
    expect(await readdir(work)).toEqual(['ckpt']);
  });

  it('fails with SOURCE_CHANGED when a file grows while it is read (tar would store the first bytes only)', async () => {
    const src = join(work, 'ckpt');
    await tree(src, { 'log.txt': 'x'.repeat(4096) });
    const error = await createCheckpointArchive(src, join(work, 'a.tar.gz'), {
      readBufferSize: 1024,
      progressIntervalMs: 0,
      onProgress: (e) => {
        if (e.type === 'bytes' && e.path === 'log.txt' && e.loaded === 1024) appendFileSync(join(src, 'log.txt'), 'more');
      },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceChangedError);
    expect(error).toMatchObject({ code: 'SOURCE_CHANGED', before: { size: 4096 }, after: { size: 4100 } });
    expect(await readdir(work)).toEqual(['ckpt']);
  });

  it('fails with PATH_UNREADABLE when a scanned file is a directory by the time tar gets to it', async () => {
    const src = join(work, 'ckpt');
    await tree(src, { 'a.bin': randomBytes(1024), 'b.bin': randomBytes(1024) });
    const error = await createCheckpointArchive(src, join(work, 'a.tar.gz'), {
      onProgress: (e) => {
        if (e.type !== 'phase' || e.phase !== 'archiving') return;
        rmSync(join(src, 'b.bin'));
        mkdirSync(join(src, 'b.bin'));
      },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LocalPathError);
    expect(error).toMatchObject({ code: 'PATH_UNREADABLE', message: expect.stringContaining('b.bin was a file when the checkpoint was scanned and is a directory now') });
    expect(await readdir(work)).toEqual(['ckpt']);
  });

  it('a throwing progress callback fails the archive with its error', async () => {
    const src = join(work, 'ckpt');
    await tree(src, { 'a.bin': randomBytes(2048) });
    const boom = new Error('callback failed');
    await expect(
      createCheckpointArchive(src, join(work, 'a.tar.gz'), {
        onProgress: (e) => {
          if (e.type === 'bytes') throw boom;
        },
      }),
    ).rejects.toBe(boom);
    expect(await readdir(work)).toEqual(['ckpt']);
  });
});

describe('manifest files', () => {
  it('writeManifest and readManifest round-trip; names follow the archive', async () => {
    const src = join(work, 'ckpt');
    await tree(src, { 'a.txt': 'a' });
    const manifest = await createCheckpointArchive(src, join(work, 'best_trial_checkpoint.tar.gz'));
    const path = join(work, 'meta', manifestFileName('best_trial_checkpoint.tar.gz'));
    expect(path.endsWith('best_trial_checkpoint.manifest.json')).toBe(true);
    await writeManifest(manifest, path);
    expect(await readManifest(path)).toEqual(manifest);
    expect(await readdir(join(work, 'meta'))).toEqual(['best_trial_checkpoint.manifest.json']);

    const verified = { ...manifest, verification: { status: 'verified' as const, verifiedAt: new Date().toISOString(), checks: ['size' as const] } };
    await writeManifest(verified, path);
    expect((await readManifest(path)).verification).toEqual(verified.verification);
    expect(manifestFileName('x.tgz')).toBe('x.manifest.json');
    expect(manifestFileName('dir/x.zip')).toBe('x.zip.manifest.json');
  });

  it('readManifest refuses a manifest whose fileCount or totalBytes disagree with its files (edited, truncated)', async () => {
    const src = join(work, 'ckpt-totals');
    await tree(src, { 'a.txt': 'aaa', 'b/c.txt': 'cc' });
    const manifest = await createCheckpointArchive(src, join(work, 'totals.tar.gz'));
    expect(manifest).toMatchObject({ fileCount: 2, totalBytes: 5 });
    // Cut short: the last file fell off the list, the totals still count it.
    const truncated = join(work, 'truncated.manifest.json');
    await writeManifest({ ...manifest, files: manifest.files.slice(0, 1) }, truncated);
    const error = await readManifest(truncated).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'InvalidArgumentError', code: 'INVALID_ARGUMENT', argument: 'manifest' });
    expect((error as Error).message).toContain('fileCount: 2, but `files` lists 1 files');
    expect((error as Error).message).toContain('totalBytes: 5, but the sizes in `files` add up to 3');
    expect((error as { hint?: string }).hint).toMatch(/edited or truncated.*createCheckpointArchive/);
    // Edited by hand: a size changed, the total did not.
    const edited = join(work, 'edited.manifest.json');
    await writeManifest({ ...manifest, files: manifest.files.map((f, i) => (i === 0 ? { ...f, size: f.size + 1 } : f)) }, edited);
    await expect(readManifest(edited)).rejects.toThrow(/totalBytes: 5, but the sizes in `files` add up to 6/);
  });

  it('readManifest refuses missing files and foreign JSON', async () => {
    await expect(readManifest(join(work, 'nope.json'))).rejects.toMatchObject({ code: 'PATH_NOT_FOUND' });
    await writeFile(join(work, 'bad.json'), JSON.stringify({ manifestVersion: 1, files: 'no' }));
    await expect(readManifest(join(work, 'bad.json'))).rejects.toThrow(/is not a checkpoint manifest \(/);
  });
});
