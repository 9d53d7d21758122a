import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalPathError } from '../../src/core/errors.js';
import { pathFilters, planDirectory, planLocalDirectory } from '../../src/uploader/plan.js';

function tree(files: Record<string, string | number>): string {
  const root = mkdtempSync(join(tmpdir(), 'au-plan-'));
  for (const [rel, content] of Object.entries(files)) {
    const full = join(root, rel);
    mkdirSync(join(full, '..'), { recursive: true });
    writeFileSync(full, typeof content === 'number' ? Buffer.alloc(content, 1) : content);
  }
  return root;
}

async function planError(...args: Parameters<typeof planDirectory>): Promise<LocalPathError> {
  try {
    await planDirectory(...args);
  } catch (error) {
    expect(error).toBeInstanceOf(LocalPathError);
    return error as LocalPathError;
  }
  throw new Error('expected planDirectory to throw');
}

describe('planDirectory', () => {
  it('lists nested files with POSIX artifact paths and sizes, largest first', async () => {
    const root = tree({ 'a.txt': 3, 'sub/b.bin': 10, 'sub/deeper/c.json': 5, 'z.txt': 5 });
    const plan = await planDirectory(root, { artifactPath: 'model/v1' });
    expect(plan.files.map((f) => [f.artifactPath, f.size])).toEqual([
      ['model/v1/sub/b.bin', 10],
      ['model/v1/sub/deeper/c.json', 5],
      ['model/v1/z.txt', 5],
      ['model/v1/a.txt', 3],
    ]);
    expect(plan.files[0]!.localPath).toBe(join(root, 'sub', 'b.bin'));
    expect(plan).toMatchObject({ directory: root, artifactPath: 'model/v1', totalBytes: 23, empty: false, skipped: [] });
  });

  it('says when there is nothing to upload', async () => {
    const root = mkdtempSync(join(tmpdir(), 'au-plan-'));
    mkdirSync(join(root, 'empty', 'nested'), { recursive: true });
    expect(await planDirectory(root)).toMatchObject({ files: [], totalBytes: 0, empty: true });
  });

  it('applies include and exclude globs, RegExps and predicates', async () => {
    const root = tree({ 'w.safetensors': 4, 'config.json': 2, 'logs/run.log': 1, 'cache/x.safetensors': 1, 'tmp.tmp': 1 });
    const plan = await planDirectory(root, { include: ['*.safetensors', 'config.json'], exclude: ['cache', /\.tmp$/] });
    expect(plan.files.map((f) => f.artifactPath)).toEqual(['w.safetensors', 'config.json']);
    expect(plan.skipped).toEqual(
      expect.arrayContaining([
        { relativePath: 'cache', reason: 'excluded' },
        { relativePath: 'tmp.tmp', reason: 'excluded' },
        { relativePath: 'logs/run.log', reason: 'not-included' },
      ]),
    );
    const byPredicate = await planDirectory(root, { exclude: (p) => p.startsWith('logs') });
    expect(byPredicate.files.map((f) => f.artifactPath)).not.toContain('logs/run.log');
    // Same dialect as the config file: a slash-free pattern matches a name at any depth, a
    // pattern with a slash is anchored, a trailing slash means a directory.
    const byGlob = await planDirectory(root, { exclude: ['logs/**/*.log', 'cache/'] });
    expect(byGlob.files.map((f) => f.artifactPath)).not.toContain('logs/run.log');
    expect(byGlob.skipped).toEqual(expect.arrayContaining([{ relativePath: 'cache', reason: 'excluded' }]));
  });

  it('reports symlink loops as loops: a two-link cycle like `sub/up -> ..`, not as dangling', async () => {
    const root = tree({ 'sub/keep.txt': 'k' });
    symlinkSync('b', join(root, 'a'));
    symlinkSync('a', join(root, 'b'));
    symlinkSync('..', join(root, 'sub', 'up'));
    const plan = await planDirectory(root);
    expect(plan.files.map((f) => f.artifactPath)).toEqual(['sub/keep.txt']);
    expect(plan.skipped).toEqual(
      expect.arrayContaining([
        { relativePath: 'a', reason: 'symlink-loop' },
        { relativePath: 'b', reason: 'symlink-loop' },
        { relativePath: 'sub/up', reason: 'symlink-loop' },
      ]),
    );
  });

  it('uploads the bytes of symlinks that stay inside, and walks linked directories once', async () => {
    const root = tree({ 'blobs/abc': 'weights', 'real/inner.txt': 'x' });
    mkdirSync(join(root, 'snap'));
    symlinkSync('../blobs/abc', join(root, 'snap', 'model.bin'));
    symlinkSync('real', join(root, 'linked'));
    symlinkSync('..', join(root, 'real', 'loop'));
    const plan = await planDirectory(root);
    const paths = plan.files.map((f) => f.artifactPath).sort();
    expect(paths).toEqual(['blobs/abc', 'linked/inner.txt', 'real/inner.txt', 'snap/model.bin']);
    expect(plan.files.find((f) => f.artifactPath === 'snap/model.bin')).toMatchObject({ size: 7, localPath: join(root, 'snap', 'model.bin') });
    expect(plan.skipped).toEqual(expect.arrayContaining([{ relativePath: 'real/loop', reason: 'symlink-loop' }]));

    const noFollow = await planDirectory(root, { followSymlinks: false });
    expect(noFollow.files.map((f) => f.artifactPath).sort()).toEqual(['blobs/abc', 'real/inner.txt']);
  });

  it('refuses symlinks that point outside, listing them all', async () => {
    const outside = tree({ 'secret.txt': 'x' });
    const root = tree({ 'ok.txt': 'fine' });
    symlinkSync(join(outside, 'secret.txt'), join(root, 'leak1'));
    symlinkSync(outside, join(root, 'leak2'));
    const error = await planError(root);
    expect(error.code).toBe('SYMLINK_ESCAPES');
    expect(error.message).toMatch(/2 symlink\(s\).*"leak1".*"leak2".*Nothing was uploaded/);
    expect(error.hint).toMatch(/cp -L/);
    // Excluding them is the way out.
    expect((await planDirectory(root, { exclude: ['leak*'] })).files).toHaveLength(1);
  });

  it('refuses dangling symlinks and special files', async () => {
    const root = tree({ 'ok.txt': 'x' });
    symlinkSync('missing', join(root, 'dangling'));
    expect((await planError(root)).code).toBe('PATH_NOT_FOUND');

    const fifoRoot = tree({ 'ok.txt': 'x' });
    execFileSync('mkfifo', [join(fifoRoot, 'pipe')]);
    const error = await planError(fifoRoot);
    expect(error.code).toBe('PATH_UNREADABLE');
    expect(error.message).toMatch(/"pipe" is a special file/);
  });

  it('lists every kind of problem when several occur, grouped, the most surprising kind first', async () => {
    const outside = tree({ 'secret.txt': 'x' });
    const root = tree({ 'ok.txt': 'x', 'a#1.txt': 'x', 'deep/b%41.txt': 'x' });
    symlinkSync(join(outside, 'secret.txt'), join(root, 'leak'));
    symlinkSync('missing', join(root, 'dangling'));
    execFileSync('mkfifo', [join(root, 'pipe')]);
    const error = await planError(root);
    // The code and path are the first group's, as before.
    expect(error.code).toBe('SYMLINK_ESCAPES');
    expect(error.path).toBe(join(root, 'leak'));
    expect(error.message).toMatch(
      /^1 symlink\(s\) .* point outside it: "leak" .*\. 1 symlink\(s\) .* are dangling: "dangling" .*\. 1 path\(s\) .* cannot be uploaded: "pipe" is a special file.*\. 2 file name\(s\) .* cannot be stored as MLflow artifacts: "a#1\.txt" .*; "deep\/b%41\.txt" .*\. Nothing was uploaded\./,
    );
    for (const part of ['Escaping symlinks: ', 'cp -L', 'Dangling symlinks: ', 'Unreadable paths: ', 'chmod', 'Names: ', 'Rename']) expect(error.hint).toContain(part);
  });

  it('plans a wide tree in parallel and lists it exactly as a sequential walk would', async () => {
    const files: Record<string, number> = {};
    for (let i = 0; i < 300; i++) files[`d${i % 7}/sub${i % 3}/f${String(i).padStart(3, '0')}.bin`] = i % 5;
    const root = tree(files);
    for (let i = 0; i < 3; i++) symlinkSync('missing', join(root, `d${i}`, `broken${i}`));
    const error = await planError(root);
    // Problems come in directory order (names sorted), like the skips and files.
    expect([...error.message.matchAll(/"(d\d\/broken\d)"/g)].map((m) => m[1])).toEqual(['d0/broken0', 'd1/broken1', 'd2/broken2']);
    for (let i = 0; i < 3; i++) execFileSync('rm', [join(root, `d${i}`, `broken${i}`)]);
    const plan = await planDirectory(root, { exclude: ['sub1/'] });
    const expected = Object.entries(files)
      .filter(([rel]) => !rel.includes('/sub1/'))
      .map(([rel, size]) => ({ artifactPath: rel, size }))
      .sort((a, b) => b.size - a.size || (a.artifactPath < b.artifactPath ? -1 : 1));
    expect(plan.files.map((f) => ({ artifactPath: f.artifactPath, size: f.size }))).toEqual(expected);
    expect(plan.skipped.map((s) => s.relativePath)).toEqual([0, 1, 2, 3, 4, 5, 6].map((d) => `d${d}/sub1`));
  });

  // Unreadable files: test/bad-input/unreadable.test.ts (it drops root, so it runs in CI).

  it('refuses names MLflow cannot store, all of them, before anything is uploaded', async () => {
    const root = tree({ 'ok.txt': 'x', 'a#1.txt': 'x', 'sub/back\\slash': 'x', 'new\nline': 'x', 'x%41.txt': 'x' });
    writeFileSync(Buffer.concat([Buffer.from(`${root}/latin1-`), Buffer.from([0xe9]), Buffer.from('.txt')]), 'x');
    const error = await planError(root);
    expect(error.code).toBe('INVALID_ARTIFACT_PATH');
    expect(error.message).toMatch(/^5 file name\(s\)/);
    for (const part of ['a#1.txt', 'back\\\\slash', 'new\\nline', 'x%41.txt', 'not valid UTF-8']) expect(error.message).toContain(part);
    expect(error.hint).toMatch(/Rename/);
  });

  it('an exclude predicate is told whether the entry is a directory: a directory it matches is left out whole, a file of the same name kept', async () => {
    const root = tree({ 'model.bin': 4, 'wandb/run/events.txt': 1, 'sub/wandb': 2 });
    // Walked, this name was refused (INVALID_ARTIFACT_PATH) although its directory was excluded.
    writeNonUtf8(join(root, 'wandb'), ['c', 0xfe, '.bin']);
    const seen: Array<[string, boolean]> = [];
    const plan = await planDirectory(root, {
      exclude: (path, entry) => {
        seen.push([path, entry.isDirectory]);
        return entry.isDirectory && path.split('/').pop() === 'wandb';
      },
    });
    expect(plan.files.map((f) => f.artifactPath)).toEqual(['model.bin', 'sub/wandb']);
    expect(plan.skipped).toEqual([{ relativePath: 'wandb', reason: 'excluded' }]);
    expect(seen.sort()).toEqual([['model.bin', false], ['sub', true], ['sub/wandb', false], ['wandb', true]]);
  });

  it('refuses a bad artifactPath, a missing directory and a file', async () => {
    const root = tree({ 'f.txt': 'x' });
    expect((await planError(root, { artifactPath: '../up' })).code).toBe('INVALID_ARTIFACT_PATH');
    expect((await planError(join(root, 'nope'))).code).toBe('PATH_NOT_FOUND');
    expect((await planError(join(root, 'f.txt'))).code).toBe('NOT_A_DIRECTORY');
  });
});

/** A file named `name` with the raw bytes `raw` (not UTF-8) in the middle, under `dir`. */
function writeNonUtf8(dir: string, name: [string, number, string]): void {
  writeFileSync(Buffer.concat([Buffer.from(`${dir}/${name[0]}`), Buffer.from([name[1]]), Buffer.from(name[2])]), 'x');
}

describe('excludes of the uploader plan (planLocalDirectory)', () => {
  it('a directory matched by a directories-only pattern (`cache/`, `__pycache__/`) is left out whole, not walked', async () => {
    const root = tree({ 'model.bin': 4, 'cache/a.txt': 1, 'cache/sub/b.txt': 1, '__pycache__/notes.txt': 1 });
    // Walked, this name refused the whole upload although its directory was excluded.
    writeNonUtf8(join(root, 'cache'), ['c', 0xfe, '.bin']);
    const plan = await planLocalDirectory(root, { artifactPath: 'ck', filters: pathFilters([], ['cache/']), skipDefaultFiles: true });
    expect(plan.files.map((f) => f.artifactPath)).toEqual(['ck/model.bin']);
    expect(plan.skipped).toEqual([
      { path: '__pycache__', reason: 'default skip list (__pycache__/: Python bytecode cache)' },
      { path: 'cache', reason: 'excluded by "cache/"' },
    ]);
    // Listed once and counted as directories: their files are not read, so not counted either.
    expect(plan).toMatchObject({ skippedFiles: 0, skippedBytes: 0, skippedDirectories: 2 });
  });

  it('a name that is not UTF-8 is left out by an exclude that matches it, as the refusal\'s hint says', async () => {
    const root = tree({ 'model.bin': 4 });
    writeNonUtf8(root, ['bad', 0xff, '.bin']);
    const refused = await planLocalDirectory(root, { artifactPath: 'ck', filters: pathFilters([], []), skipDefaultFiles: true }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'INVALID_ARTIFACT_PATH', hint: expect.stringContaining('exclude them') });
    const plan = await planLocalDirectory(root, { artifactPath: 'ck', filters: pathFilters([], ['bad*']), skipDefaultFiles: true });
    expect(plan.files.map((f) => f.artifactPath)).toEqual(['ck/model.bin']);
    expect(plan.skipped).toEqual([{ path: 'bad\uFFFD.bin', reason: 'excluded by "bad*"' }]);
    // The same through planDirectory's own globs.
    expect((await planDirectory(root, { exclude: ['bad*'] })).files.map((f) => f.artifactPath)).toEqual(['model.bin']);
  });
});
