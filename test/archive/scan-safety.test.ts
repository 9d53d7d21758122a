/**
 * What the scan of createCheckpointArchive refuses, and what it still keeps, seen from outside:
 * the error raised and the archive (or its absence) on disk. Symlinks re-pointed between the
 * scan and tar's read of them, links whose path leaves the directory through another link,
 * and the file system errors of the scan itself (entries vanishing under it, names that are not
 * UTF-8), each as a typed error with a hint. The unreadable-directory case runs as `nobody` in
 * unreadable-scan.test.ts.
 */
import { execFile } from 'node:child_process';
import { readdirSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCheckpointArchive } from '../../src/archive/create-checkpoint-archive.js';
import { LocalPathError, SourceChangedError } from '../../src/core/errors.js';

const run = promisify(execFile);

let work: string;
let src: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'au-archive-scan-'));
  src = join(work, 'ckpt');
  await mkdir(src);
  await writeFile(join(src, 'a.txt'), 'a');
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

/** The rejection of `action`, which must reject. */
async function failure(action: Promise<unknown>): Promise<unknown> {
  const outcome = await action.then(
    () => ({ resolved: true as const }),
    (error: unknown) => ({ resolved: false as const, error }),
  );
  expect(outcome.resolved, 'expected the call to fail').toBe(false);
  return (outcome as { error: unknown }).error;
}

describe('a symlink re-pointed after the scan', () => {
  it('fails with SOURCE_CHANGED and leaves the earlier archive as it was, with no temp file', async () => {
    await symlink('a.txt', join(src, 'link'));
    const out = join(work, 'out', 'ckpt.tar.gz');
    await createCheckpointArchive(src, out);
    const earlier = await readFile(out);

    const error = await failure(
      createCheckpointArchive(src, out, {
        onProgress: (e) => {
          // The scan has read and checked the link; tar reads it again when it writes the entry.
          if (e.type !== 'phase' || e.phase !== 'archiving') return;
          rmSync(join(src, 'link'));
          symlinkSync('/etc/passwd', join(src, 'link'));
        },
      }),
    );
    expect(error).toBeInstanceOf(SourceChangedError);
    expect(error).toMatchObject({
      code: 'SOURCE_CHANGED',
      path: join(src, 'link'),
      message: expect.stringContaining('link was re-pointed from a.txt to /etc/passwd while it was being archived'),
      hint: expect.stringContaining('once it is complete'),
    });
    expect(await readFile(out)).toEqual(earlier);
    expect(await readdir(join(work, 'out'))).toEqual(['ckpt.tar.gz']);
    const { stdout } = await run('tar', ['tvzf', out]);
    expect(stdout).toMatch(/link -> a\.txt$/m);
    expect(stdout).not.toContain('/etc/passwd');
  });

  it('fails just the same when the new target stays inside the directory: the manifest would be wrong', async () => {
    await writeFile(join(src, 'b.txt'), 'b');
    await symlink('a.txt', join(src, 'link'));
    const error = await failure(
      createCheckpointArchive(src, join(work, 'ckpt.tar.gz'), {
        onProgress: (e) => {
          if (e.type !== 'phase' || e.phase !== 'archiving') return;
          rmSync(join(src, 'link'));
          symlinkSync('b.txt', join(src, 'link'));
        },
      }),
    );
    expect(error).toBeInstanceOf(SourceChangedError);
    expect(await readdir(work)).toEqual(['ckpt']);
  });
});

describe('links whose path leaves the directory through another link', () => {
  it('refuses one whose final target is missing (realpath cannot tell), and writes nothing', async () => {
    // Lexically s/../outside.txt is <dir>/outside.txt; really s is <dir>, so it is <dir>/../outside.txt.
    await symlink('.', join(src, 's'));
    await symlink('s/../outside.txt', join(src, 'a'));
    const error = await failure(createCheckpointArchive(src, join(work, 'ckpt.tar.gz')));
    expect(error).toBeInstanceOf(LocalPathError);
    expect(error).toMatchObject({
      code: 'SYMLINK_ESCAPES',
      path: join(src, 'a'),
      message: expect.stringContaining('Symlink a -> s/../outside.txt resolves outside the checkpoint directory'),
      hint: expect.stringContaining('exclude'),
    });
    expect(await readdir(work)).toEqual(['ckpt']);
  });

  it('refuses one that leaves through a link deeper down, or through a missing name after a link', async () => {
    await mkdir(join(src, 'sub'));
    await symlink('..', join(src, 'sub/up')); // <dir> itself: inside
    // Lexically sub/up/../x is sub/x; really sub/up is <dir>, and <dir>/../x is outside.
    await symlink('up/../x', join(src, 'sub/esc'));
    await expect(createCheckpointArchive(src, join(work, 'ckpt.tar.gz'))).rejects.toMatchObject({
      code: 'SYMLINK_ESCAPES',
      path: join(src, 'sub/esc'),
      message: expect.stringContaining('resolves outside'),
    });
    await rm(join(src, 'sub/esc'));

    // s is <dir>; "missing" does not exist, so the rest is read lexically from <dir>/missing.
    await symlink('.', join(src, 's'));
    await symlink('s/missing/../../ckpt-sibling', join(src, 'via-missing'));
    await expect(createCheckpointArchive(src, join(work, 'ckpt.tar.gz'))).rejects.toMatchObject({ code: 'SYMLINK_ESCAPES', path: join(src, 'via-missing') });
    expect(await readdir(work)).toEqual(['ckpt']);
  });

  it('refuses one that steps out of the directory and back in: extracted elsewhere it leads outside', async () => {
    await symlink('../ckpt/a.txt', join(src, 'round-trip'));
    await expect(createCheckpointArchive(src, join(work, 'ckpt.tar.gz'))).rejects.toMatchObject({
      code: 'SYMLINK_ESCAPES',
      message: expect.stringContaining('Symlink round-trip -> ../ckpt/a.txt points outside the checkpoint directory'),
    });
    expect(await readdir(work)).toEqual(['ckpt']);
  });

  it('keeps chains that stay inside, dangling links and loops, and GNU tar extracts them as they were', async () => {
    await mkdir(join(src, 'nested'));
    await symlink('.', join(src, 's'));
    await symlink('s/nested/../a.txt', join(src, 'via-s'));
    await symlink('s/not-yet-written.bin', join(src, 'dangling'));
    await symlink('loop2', join(src, 'loop1'));
    await symlink('loop1', join(src, 'loop2'));

    const manifest = await createCheckpointArchive(src, join(work, 'ckpt.tar.gz'));
    expect(manifest.symlinks).toEqual([
      { path: 'dangling', target: 's/not-yet-written.bin' },
      { path: 'loop1', target: 'loop2' },
      { path: 'loop2', target: 'loop1' },
      { path: 's', target: '.' },
      { path: 'via-s', target: 's/nested/../a.txt' },
    ]);
    const dest = join(work, 'x');
    await mkdir(dest);
    await run('tar', ['xzf', join(work, 'ckpt.tar.gz'), '-C', dest]);
    expect(await readlink(join(dest, 'via-s'))).toBe('s/nested/../a.txt');
    expect(await readFile(join(dest, 'via-s'), 'utf8')).toBe('a');
  });
});

describe('file system errors of the scan', () => {
  it('a name that is not UTF-8 is INVALID_ARTIFACT_PATH with a hint, and `exclude` leaves it out', async () => {
    // Bytes no UTF-8 decoding round-trips: readdir hands back "bad\uFFFD.bin", which names no file.
    writeFileSync(Buffer.concat([Buffer.from(join(src, 'bad')), Buffer.from([0xff]), Buffer.from('.bin')]), 'x');
    const error = await failure(createCheckpointArchive(src, join(work, 'ckpt.tar.gz')));
    expect(error).toBeInstanceOf(LocalPathError);
    expect(error).toMatchObject({
      code: 'INVALID_ARTIFACT_PATH',
      path: 'bad\uFFFD.bin',
      message: expect.stringContaining('is not valid UTF-8'),
      hint: expect.stringMatching(/Rename it.*exclude/),
    });
    expect(await readdir(work)).toEqual(['ckpt']);

    const manifest = await createCheckpointArchive(src, join(work, 'ckpt.tar.gz'), { exclude: ['bad*.bin'] });
    expect(manifest.files.map((f) => f.path)).toEqual(['a.txt']);

    // A link whose target is not UTF-8 would be stored pointing at the lossy name.
    symlinkSync(Buffer.from([0x62, 0xff]), join(src, 'link'));
    await expect(createCheckpointArchive(src, join(work, 'other.tar.gz'), { exclude: ['bad*.bin'] })).rejects.toMatchObject({
      name: 'LocalPathError',
      code: 'INVALID_ARTIFACT_PATH',
      path: 'link',
      message: expect.stringContaining(`The target of symlink ${join(src, 'link')} is not valid UTF-8`),
    });
    expect(await readdir(work)).toEqual(['ckpt', 'ckpt.tar.gz']);
  });

  it('a file, directory or symlink deleted between readdir and its own look-up is PATH_NOT_FOUND with a hint', async () => {
    // Two entries of one kind: the filter runs for the first one visited (after its look-up),
    // and deleting the other one there lands between readdir and the scan's look-up of it.
    for (const kind of ['file', 'directory', 'symlink'] as const) {
      const dir = join(work, kind);
      await mkdir(dir);
      for (const name of ['one', 'two']) {
        if (kind === 'file') await writeFile(join(dir, name), 'x');
        if (kind === 'directory') await mkdir(join(dir, name));
        if (kind === 'symlink') await symlink('elsewhere-in-dir', join(dir, name));
      }
      let deleted: string | undefined;
      const error = await failure(
        createCheckpointArchive(dir, join(work, `${kind}.tar.gz`), {
          filter: (path) => {
            const name = path.replace(/\/$/, '');
            if (deleted === undefined) {
              deleted = name === 'one' ? 'two' : 'one';
              if (kind === 'directory') rmdirSync(join(dir, deleted));
              else rmSync(join(dir, deleted));
            }
            return true;
          },
        }),
      );
      expect(error, kind).toBeInstanceOf(LocalPathError);
      expect(error, kind).toMatchObject({
        code: 'PATH_NOT_FOUND',
        path: join(dir, deleted!),
        message: expect.stringContaining('disappeared while the checkpoint was scanned'),
        hint: expect.stringContaining('while it is archived'),
      });
    }
    expect((await readdir(work)).sort()).toEqual(['ckpt', 'directory', 'file', 'symlink']);
  });
});
