import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { tempFileName } from '../../src/core/atomic-write.js';
import { AbortedError, InvalidArgumentError, LocalPathError, SourceChangedError } from '../../src/core/errors.js';
import { snapshotFile } from '../../src/core/source-snapshot.js';
import { listArtifactsRecursive } from '../../src/stores/artifact-store.js';
import { LocalFileStore, UPLOADING_PREFIX } from '../../src/stores/local-file-store.js';
import { SMALL_FILE_BYTES } from '../../src/stores/source-file.js';
import { planDirectory } from '../../src/uploader/plan.js';
import { uploadPlannedFiles } from '../../src/uploader/transfer.js';
import { fsHooks, resetFsHooks, signal } from '../support/fs-hooks.js';
import { recordingLogger } from '../uploader/helpers.js';
import { runPython } from '../support/python.js';
import { describeWithServers } from '../support/servers.js';

// Passes every call through unless a test sets a hook (the race of a failed copy's cleanup).
vi.mock('node:fs/promises', async (importOriginal) => (await import('../support/fs-hooks.js')).hookedFs(await importOriginal()));

afterEach(resetFsHooks);

function scratch(): { src: string; dest: string; store: LocalFileStore } {
  const base = mkdtempSync(join(tmpdir(), 'au-fstore-'));
  const src = join(base, 'src');
  const dest = join(base, 'mlruns', '0', 'run', 'artifacts');
  mkdirSync(src);
  return { src, dest, store: new LocalFileStore({ artifactUri: pathToFileURL(dest).href }) };
}

/** Every file under `dir`, hidden temp files included, as relative paths. */
function allFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

/** What `store.uploadFile(localPath, artifactPath)` fails with when aborted once its first bytes were copied. */
function abortedCopy(store: LocalFileStore, localPath: string, artifactPath: string): Promise<unknown> {
  const controller = new AbortController();
  return store.uploadFile(localPath, artifactPath, { signal: controller.signal, onProgress: (n) => n > 0 && controller.abort() }).catch((e: unknown) => e);
}

/** Every directory under `dir`, as relative paths. */
function allDirectories(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

/** A source file, and a snapshot of it taken before it was rewritten: its upload is refused. */
async function changedSinceSnapshot(path: string): Promise<Awaited<ReturnType<typeof snapshotFile>>> {
  writeFileSync(path, 'before');
  const snapshot = await snapshotFile(path);
  writeFileSync(path, 'after!');
  utimesSync(path, new Date(), new Date(Date.now() + 5_000));
  return snapshot;
}

describe('LocalFileStore', () => {
  it('copies into the artifact directory, creating parents, byte-exact', async () => {
    const { src, dest, store } = scratch();
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    writeFileSync(join(src, 'w.bin'), bytes);
    writeFileSync(join(src, 'empty'), '');
    const progress: number[] = [];
    const result = await store.uploadFile(join(src, 'w.bin'), 'model/ünï code/w.bin', { onProgress: (n) => progress.push(n) });
    expect(result).toEqual({ bytes: bytes.length, attempts: 1, multipart: false, sha256: createHash('sha256').update(bytes).digest('hex') });
    expect(readFileSync(join(dest, 'model', 'ünï code', 'w.bin')).equals(bytes)).toBe(true);
    expect(progress.at(-1)).toBe(bytes.length);
    expect(await store.uploadFile(join(src, 'empty'), 'empty')).toMatchObject({ bytes: 0 });
    expect(readFileSync(join(dest, 'empty'))).toHaveLength(0);
    expect(allFiles(dest)).toEqual(['empty', join('model', 'ünï code', 'w.bin')]);
  });

  it('a small file (read whole, one write) is stored byte-exact with its sha256; one changed since its snapshot is not stored at all', async () => {
    const { src, dest, store } = scratch();
    const bytes = randomBytes(32 * 1024);
    writeFileSync(join(src, 's.bin'), bytes);
    const snapshot = await snapshotFile(join(src, 's.bin'));
    const progress: number[] = [];
    const result = await store.uploadFile(join(src, 's.bin'), 'small/s.bin', { snapshot, size: bytes.length, onProgress: (n) => progress.push(n) });
    expect(result).toEqual({ bytes: bytes.length, attempts: 1, multipart: false, sha256: createHash('sha256').update(bytes).digest('hex') });
    expect(readFileSync(join(dest, 'small', 's.bin')).equals(bytes)).toBe(true);
    expect(progress).toEqual([bytes.length]);

    // Rewritten after its snapshot (same size, new content and mtime): refused before the rename.
    writeFileSync(join(src, 's.bin'), randomBytes(32 * 1024));
    utimesSync(join(src, 's.bin'), new Date(), new Date(Date.now() + 5_000));
    await expect(store.uploadFile(join(src, 's.bin'), 'small/t.bin', { snapshot, size: bytes.length })).rejects.toBeInstanceOf(SourceChangedError);
    expect(allFiles(dest)).toEqual([join('small', 's.bin')]);
  });

  it('replaces an existing artifact all at once, and leaves it intact when the copy is aborted', async () => {
    const { src, dest, store } = scratch();
    writeFileSync(join(src, 'v1'), 'old content');
    await store.uploadFile(join(src, 'v1'), 'f.txt');
    const big = randomBytes(4 * 1024 * 1024);
    writeFileSync(join(src, 'v2'), big);

    expect(await abortedCopy(store, join(src, 'v2'), 'f.txt')).toBeInstanceOf(AbortedError);
    // No half-written artifact, no temp file left behind.
    expect(readFileSync(join(dest, 'f.txt'), 'utf8')).toBe('old content');
    expect(allFiles(dest)).toEqual(['f.txt']);

    await store.uploadFile(join(src, 'v2'), 'f.txt');
    expect(readFileSync(join(dest, 'f.txt')).equals(big)).toBe(true);
    expect(allFiles(dest)).toEqual(['f.txt']);
  });

  it('a copy that fails or is aborted removes the directories it created for it', async () => {
    const { src, dest, store } = scratch();
    mkdirSync(dest, { recursive: true });
    const big = randomBytes(4 * 1024 * 1024);
    writeFileSync(join(src, 'big.bin'), big);

    // Aborted while streaming.
    expect(await abortedCopy(store, join(src, 'big.bin'), 'a/b/c/file.bin')).toBeInstanceOf(AbortedError);
    expect(readdirSync(dest)).toEqual([]);

    // Changed during the streamed copy (its mtime moves once the first chunk is read).
    const snapshot = await snapshotFile(join(src, 'big.bin'));
    let touched = false;
    const onProgress = () => {
      if (touched) return;
      touched = true;
      utimesSync(join(src, 'big.bin'), new Date(), new Date(Date.now() + 5_000));
    };
    await expect(store.uploadFile(join(src, 'big.bin'), 'a/b/c/file.bin', { snapshot, onProgress })).rejects.toBeInstanceOf(SourceChangedError);
    expect(touched).toBe(true);
    expect(readdirSync(dest)).toEqual([]);

    // A small file (one write) changed since its snapshot.
    const small = await changedSinceSnapshot(join(src, 's.bin'));
    await expect(store.uploadFile(join(src, 's.bin'), 'a/b/c/s.bin', { snapshot: small })).rejects.toBeInstanceOf(SourceChangedError);
    expect(readdirSync(dest)).toEqual([]);

    // The artifact root itself, when this copy created it, goes too.
    expect(existsSync(dirname(dirname(dirname(dest))))).toBe(true);
    rmSync(dest, { recursive: true });
    await expect(store.uploadFile(join(src, 's.bin'), 'a/s.bin', { snapshot: small })).rejects.toBeInstanceOf(SourceChangedError);
    expect(existsSync(dirname(dest))).toBe(true);
    expect(existsSync(dest)).toBe(false);

    // And the copy goes through afterwards.
    await store.uploadFile(join(src, 'big.bin'), 'a/b/c/file.bin');
    expect(readFileSync(join(dest, 'a', 'b', 'c', 'file.bin')).equals(big)).toBe(true);
  });

  it('a failed copy keeps the directories that existed before it, or that another upload put a file into', async () => {
    const { src, dest, store } = scratch();
    mkdirSync(join(dest, 'a'), { recursive: true });
    const snapshot = await changedSinceSnapshot(join(src, 's.bin'));
    await expect(store.uploadFile(join(src, 's.bin'), 'a/b/c/s.bin', { snapshot })).rejects.toBeInstanceOf(SourceChangedError);
    // `a` existed (empty): it stays, empty; `a/b` and `a/b/c` were this copy's.
    expect(allDirectories(dest)).toEqual(['a']);

    // Another upload stores a/b/other.txt while this copy streams into a/b/c: a/b keeps it.
    writeFileSync(join(src, 'big.bin'), randomBytes(4 * 1024 * 1024));
    const controller = new AbortController();
    const onProgress = (n: number) => {
      if (n === 0 || controller.signal.aborted) return;
      writeFileSync(join(dest, 'a', 'b', 'other.txt'), 'kept');
      controller.abort();
    };
    await expect(store.uploadFile(join(src, 'big.bin'), 'a/b/c/file.bin', { signal: controller.signal, onProgress })).rejects.toBeInstanceOf(AbortedError);
    expect(allDirectories(dest)).toEqual(['a', join('a', 'b')]);
    expect(allFiles(dest)).toEqual([join('a', 'b', 'other.txt')]);
  });

  it('delete takes back one file and the directories it leaves empty, never the artifact root or a directory holding anything else', async () => {
    const { src, dest, store } = scratch();
    writeFileSync(join(src, 'f.bin'), 'x');
    await store.uploadFile(join(src, 'f.bin'), 'a/b/c/f.bin');
    await store.uploadFile(join(src, 'f.bin'), 'a/kept.bin');
    await store.uploadFile(join(src, 'f.bin'), 'top.bin');

    await store.delete('a/b/c/f.bin');
    expect(allDirectories(dest)).toEqual(['a']);
    expect(allFiles(dest)).toEqual([join('a', 'kept.bin'), 'top.bin']);
    await store.delete('a/kept.bin');
    await store.delete('top.bin');
    expect(readdirSync(dest)).toEqual([]);
    // A file already gone is no error, and removes nothing that holds something.
    await store.uploadFile(join(src, 'f.bin'), 'a/other.bin');
    await store.delete('a/missing.bin');
    expect(allFiles(dest)).toEqual([join('a', 'other.bin')]);
  });

  it.each([
    ['small (one write)', 64 * 1024],
    ['streamed', 3 * 1024 * 1024 + 5],
  ])('a failed copy removing its new directory does not break a %s copy about to write into it', async (_kind, size) => {
    const { src, dest, store } = scratch();
    mkdirSync(dest, { recursive: true });
    const snapshot = await changedSinceSnapshot(join(src, 'a.bin'));
    const bytes = randomBytes(size);
    writeFileSync(join(src, 'b.bin'), bytes);
    const directory = join(dest, 'new', 'x');

    // A creates new/x and is held there; B finds new/x in place and is held before it creates
    // its temp file in it; A then fails and removes new/x (and new) under B.
    const aMade = signal();
    const aGo = signal();
    const bMade = signal();
    const bGo = signal();
    let calls = 0;
    fsHooks.afterMkdir = async (path) => {
      if (path !== directory) return;
      calls++;
      if (calls === 1) {
        aMade.resolve();
        await aGo.promise;
      } else if (calls === 2) {
        bMade.resolve();
        await bGo.promise;
      }
    };
    const a = store.uploadFile(join(src, 'a.bin'), 'new/x/a.bin', { snapshot }).catch((e: unknown) => e);
    await aMade.promise;
    const b = store.uploadFile(join(src, 'b.bin'), 'new/x/b.bin', { size });
    await bMade.promise;
    aGo.resolve();
    expect(await a).toBeInstanceOf(SourceChangedError);
    expect(readdirSync(dest), 'A removed the directory B found in place (the race was forced)').toEqual([]);
    bGo.resolve();

    expect(await b).toEqual({ bytes: size, attempts: 1, multipart: false, sha256: createHash('sha256').update(bytes).digest('hex') });
    expect(readFileSync(join(directory, 'b.bin')).equals(bytes)).toBe(true);
    expect(allFiles(dest)).toEqual([join('new', 'x', 'b.bin')]);
  });

  it('fails with typed errors before touching the destination', async () => {
    const { src, dest, store } = scratch();
    writeFileSync(join(src, 'ok'), 'x');
    await expect(store.uploadFile(join(src, 'missing'), 'x')).rejects.toMatchObject({ code: 'PATH_NOT_FOUND' });
    await expect(store.uploadFile(src, 'x')).rejects.toMatchObject({ code: 'NOT_A_FILE' });
    await expect(store.uploadFile(join(src, 'ok'), '../escape')).rejects.toBeInstanceOf(LocalPathError);
    await expect(store.uploadFile(join(src, 'ok'), '/abs')).rejects.toMatchObject({ code: 'INVALID_ARTIFACT_PATH' });
    expect(existsSync(dest)).toBe(false);
  });

  it('a directory where the file goes is a PATH_UNWRITABLE naming the destination: before a byte is read, or at the rename when it appears meanwhile', async () => {
    const { src, dest, store } = scratch();
    writeFileSync(join(src, 'model.bin'), randomBytes(4096));
    mkdirSync(join(dest, 'model.bin'), { recursive: true });
    writeFileSync(join(dest, 'model.bin', 'kept'), 'k');
    let progress = 0;
    const before = await store.uploadFile(join(src, 'model.bin'), 'model.bin', { onProgress: (n) => (progress = n) }).catch((e: unknown) => e);
    expect(before).toBeInstanceOf(LocalPathError);
    expect(before).toMatchObject({ code: 'PATH_UNWRITABLE', path: join(dest, 'model.bin'), hint: expect.stringMatching(/another artifact path/) });
    expect(progress).toBe(0);

    // The directory appears once the temp file exists: the rename fails (EISDIR), said the same way.
    fsHooks.afterOpen = (path, _flags, error) => {
      if (error === undefined && path.includes(UPLOADING_PREFIX)) mkdirSync(join(dest, 'late.bin'));
    };
    const during = await store.uploadFile(join(src, 'model.bin'), 'late.bin').catch((e: unknown) => e);
    expect(during).toMatchObject({ code: 'PATH_UNWRITABLE', path: join(dest, 'late.bin'), hint: expect.stringMatching(/another artifact path/) });
    expect(allFiles(dest)).toEqual([join('model.bin', 'kept')]);
  });

  it('lists like MLflow: relative paths, sizes, directories, [] for missing', async () => {
    const { src, store } = scratch();
    writeFileSync(join(src, 'a'), 'abc');
    await store.uploadFile(join(src, 'a'), 'd/a.txt');
    await store.uploadFile(join(src, 'a'), 'top.txt');
    expect(await store.list()).toEqual([
      { path: 'd', isDir: true },
      { path: 'top.txt', isDir: false, size: 3 },
    ]);
    expect(await store.list('d')).toEqual([{ path: 'd/a.txt', isDir: false, size: 3 }]);
    expect(await store.list('nope')).toEqual([]);
    expect(await listArtifactsRecursive(store)).toEqual([
      { path: 'd/a.txt', isDir: false, size: 3 },
      { path: 'top.txt', isDir: false, size: 3 },
    ]);
  });
});

/** Permission bits and mtime (to the microsecond: what Node can set) of every file under `dir`. */
function modesAndTimes(dir: string): Record<string, { mode: string; mtimeUs: string }> {
  return Object.fromEntries(
    allFiles(dir).map((rel) => {
      const info = statSync(join(dir, rel), { bigint: true });
      return [rel, { mode: (Number(info.mode) & 0o7777).toString(8), mtimeUs: (info.mtimeNs / 1000n).toString() }];
    }),
  );
}

/**
 * Source files whose copies must keep mode and mtime: a secret (`0600`), a script (`0755`), a
 * read-only file (`0444`), a setuid tool and a setgid+sticky file (`shutil.copystat` keeps
 * `S_IMODE`, those bits included; as nobody: local-file-store-unprivileged.test.ts), small
 * (read whole) and over 1 MiB (streamed), with an old mtime that has a fractional second.
 */
function filesWithModes(src: string): Array<{ name: string; mode: number }> {
  const files = [
    { name: 'secret.env', mode: 0o600, size: 12 },
    { name: 'run.sh', mode: 0o755, size: 40 },
    { name: 'frozen.bin', mode: 0o444, size: SMALL_FILE_BYTES + 5 },
    { name: 'big-secret.bin', mode: 0o600, size: 2 * SMALL_FILE_BYTES },
    { name: 'setuid-tool', mode: 0o4755, size: 30 },
    { name: 'setgid-sticky.bin', mode: 0o3750, size: SMALL_FILE_BYTES + 7 },
  ];
  for (const [i, file] of files.entries()) {
    const path = join(src, file.name);
    writeFileSync(path, randomBytes(file.size));
    chmodSync(path, file.mode);
    utimesSync(path, new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678)), 981_173_106.123_456 + i);
  }
  return files;
}

describe('LocalFileStore: what is kept besides the bytes', () => {
  it("keeps the source's permission bits and times (as MLflow's shutil.copystat), small and streamed, replacing a read-only copy", async () => {
    const { src, dest, store } = scratch();
    const files = filesWithModes(src);
    for (const { name } of files) await store.uploadFile(join(src, name), `m/${name}`);
    // Again: a read-only artifact is replaced like any other (the rename does not need its write bit).
    await store.uploadFile(join(src, 'frozen.bin'), 'm/frozen.bin');

    const expected = Object.fromEntries(Object.entries(modesAndTimes(src)).map(([name, attributes]) => [join('m', name), attributes]));
    expect(modesAndTimes(dest)).toEqual(expected);
    expect(modesAndTimes(dest)[join('m', 'secret.env')]?.mode).toBe('600');
    expect(modesAndTimes(dest)[join('m', 'run.sh')]?.mode).toBe('755');
    expect(modesAndTimes(dest)[join('m', 'setuid-tool')]?.mode).toBe('4755');
  });
});

describeWithServers("LocalFileStore and MLflow's LocalArtifactRepository", () => {
  it('stores the same mode and mtime as log_artifact and log_artifacts do for the same files', async () => {
    const { src, dest, store } = scratch();
    filesWithModes(src);
    for (const name of readdirSync(src)) await store.uploadFile(join(src, name), `one/${name}`);
    const plan = await planDirectory(src, { artifactPath: 'tree' });
    await uploadPlannedFiles(store, plan);

    const theirs = join(dirname(dest), 'mlflow-artifacts');
    await runPython(
      `
import os, sys
from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository
repo = LocalArtifactRepository(sys.argv[1])
for name in sorted(os.listdir(sys.argv[2])):
    repo.log_artifact(os.path.join(sys.argv[2], name), 'one')
repo.log_artifacts(sys.argv[2], 'tree')
`,
      { args: [pathToFileURL(theirs).href, src] },
    );
    expect(Object.keys(modesAndTimes(theirs))).toHaveLength(12);
    expect(modesAndTimes(dest)).toEqual(modesAndTimes(theirs));
  });
});

describe('uploadPlannedFiles', () => {
  it('uploads a planned directory with bounded concurrency and reports each file', async () => {
    const { src, dest, store } = scratch();
    for (let i = 0; i < 12; i++) {
      mkdirSync(join(src, `d${i % 3}`), { recursive: true });
      writeFileSync(join(src, `d${i % 3}`, `f${i}.bin`), randomBytes(1000 + i));
    }
    let inFlight = 0;
    let maxInFlight = 0;
    const counting = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop !== 'uploadFile') return Reflect.get(target, prop, receiver);
        return async (...args: Parameters<LocalFileStore['uploadFile']>) => {
          maxInFlight = Math.max(maxInFlight, ++inFlight);
          try {
            return await target.uploadFile(...args);
          } finally {
            inFlight--;
          }
        };
      },
    });
    const done: string[] = [];
    const plan = await planDirectory(src, { artifactPath: 'out' });
    const outcomes = await uploadPlannedFiles(counting, plan, { concurrency: 3, onFileDone: (o) => done.push(o.file.artifactPath) });
    expect(maxInFlight).toBeLessThanOrEqual(3);
    expect(outcomes.map((o) => o.status)).toEqual(Array(12).fill('uploaded'));
    expect(outcomes.map((o) => o.file)).toEqual(plan.files);
    expect(done.sort()).toEqual(plan.files.map((f) => f.artifactPath).sort());
    for (const f of plan.files) expect(readFileSync(join(dest, f.artifactPath)).equals(readFileSync(f.localPath))).toBe(true);
  });

  it('reports a failed file without stopping the others, and cancels unstarted files on abort', async () => {
    const { src, store } = scratch();
    writeFileSync(join(src, 'a'), 'aaaa');
    writeFileSync(join(src, 'b'), 'bb');
    const plan = await planDirectory(src);
    const broken = { ...plan, files: [{ localPath: join(src, 'gone'), artifactPath: 'gone', size: 9 }, ...plan.files] };
    const outcomes = await uploadPlannedFiles(store, broken, { concurrency: 1 });
    expect(outcomes.map((o) => o.status)).toEqual(['failed', 'uploaded', 'uploaded']);
    expect(outcomes[0]!.error).toMatchObject({ code: 'PATH_NOT_FOUND' });

    const controller = new AbortController();
    const aborted = await uploadPlannedFiles(store, plan, { concurrency: 1, signal: controller.signal, onFileDone: () => controller.abort() });
    expect(aborted.map((o) => o.status)).toEqual(['uploaded', 'cancelled']);
    expect(aborted[1]!.error).toBeInstanceOf(AbortedError);
    await expect(uploadPlannedFiles(store, plan, { concurrency: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});

/** A file system error as Node raises it (`code`, `syscall`), e.g. a CIFS mount's answer to `fchmod`. */
function fsError(code: string, syscall: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: refused by the test's mount, ${syscall}`), { code, syscall });
}

/**
 * The prototype of Node's `FileHandle`: what the copy keeps the mode and times through. A mount
 * that refuses `chmod` (CIFS, some NFS) cannot be made on this machine, so its answer is injected
 * there and nowhere else: the bytes, the rename and the directory are real.
 */
async function fileHandlePrototype(): Promise<FileHandleMethods> {
  const handle = await open(import.meta.filename ?? new URL(import.meta.url).pathname, 'r');
  await handle.close();
  return Object.getPrototypeOf(handle) as FileHandleMethods;
}
type FileHandleMethods = Pick<FileHandle, 'chmod' | 'utimes' | 'sync' | 'datasync'>;

describe('LocalFileStore on a file system that refuses modes and times', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it.each(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EINVAL'])('%s from chmod and utimes: every file is stored whole, with one warning for the whole call', async (code) => {
    const { src, dest, store } = scratch();
    const small = randomBytes(100);
    const streamed = randomBytes(SMALL_FILE_BYTES + 4096);
    writeFileSync(join(src, 'a.json'), small);
    writeFileSync(join(src, 'b.json'), small);
    writeFileSync(join(src, 'weights.bin'), streamed);
    const proto = await fileHandlePrototype();
    vi.spyOn(proto, 'chmod').mockRejectedValue(fsError(code, 'fchmod'));
    vi.spyOn(proto, 'utimes').mockRejectedValue(fsError(code, 'futime'));
    const logger = recordingLogger();

    const outcomes = await uploadPlannedFiles(store, await planDirectory(src, { artifactPath: 'ckpt' }), { concurrency: 2, logger });

    expect(outcomes.map((o) => o.status)).toEqual(['uploaded', 'uploaded', 'uploaded']);
    expect(readFileSync(join(dest, 'ckpt', 'weights.bin')).equals(streamed)).toBe(true);
    expect(readFileSync(join(dest, 'ckpt', 'a.json')).equals(small)).toBe(true);
    expect(readFileSync(join(dest, 'ckpt', 'b.json')).equals(small)).toBe(true);
    expect(allFiles(dest)).toEqual(['ckpt/a.json', 'ckpt/b.json', 'ckpt/weights.bin']);
    const warnings = logger.lines.filter(([level]) => level === 'warn').map(([, line]) => line);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('3 of 3 file(s)');
    expect(warnings[0]).toContain(`${code}: refused by the test's mount, fchmod`);
  });

  it.each([
    ['chmod', 'fchmod', SMALL_FILE_BYTES / 2],
    ['chmod', 'fchmod', SMALL_FILE_BYTES + 4096],
    ['utimes', 'futime', SMALL_FILE_BYTES / 2],
    ['utimes', 'futime', SMALL_FILE_BYTES + 4096],
    ['datasync', 'fdatasync', SMALL_FILE_BYTES / 2],
    ['sync', 'fsync', SMALL_FILE_BYTES + 4096],
  ] as const)('EIO from %s still fails the copy (%s, %d bytes) with a typed error naming the destination, leaving no temp file', async (method, syscall, size) => {
    const { src, dest, store } = scratch();
    writeFileSync(join(src, 'w.bin'), randomBytes(size));
    vi.spyOn(await fileHandlePrototype(), method).mockRejectedValue(fsError('EIO', syscall));

    const error = await store.uploadFile(join(src, 'w.bin'), 'ckpt/w.bin').catch((e: unknown) => e);

    expect(error).toBeInstanceOf(LocalPathError);
    // The artifact directory's disk failed, not the source: the error names where the copy was
    // to be stored (it named the source file, "could not be read").
    expect(error).toMatchObject({ code: 'PATH_UNWRITABLE', path: join(dest, 'ckpt', 'w.bin') });
    expect((error as LocalPathError).message).toContain(`Cannot store ${join(dest, 'ckpt', 'w.bin')}: EIO`);
    expect((error as LocalPathError).message).not.toContain(join(src, 'w.bin'));
    expect((error as LocalPathError).hint).toContain('Check the artifact directory and the file system it is on');
    expect(existsSync(dest) ? allFiles(dest) : []).toEqual([]);
  });
});

describe('LocalFileStore: temp files left behind', () => {
  it("a dead owner's temp file goes at the next write into its directory, however fresh; a live owner's, another host's and a fresh owner-less one stay", async () => {
    const { src, dest, store } = scratch();
    writeFileSync(join(src, 'a.txt'), 'a');
    const dir = join(dest, 'ckpt');
    mkdirSync(dir, { recursive: true });
    // Real pids: one of a process that has exited, one of a process that is running (vitest's parent).
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
    const ours = tempFileName(UPLOADING_PREFIX);
    const owned = (pid: number) => ours.replace(`-${process.pid}-`, `-${pid}-`);
    const names = {
      deadFresh: owned(deadPid),
      liveOld: owned(process.ppid),
      otherHostOld: owned(deadPid).replace(/-[0-9a-f]{6}-/, (host) => (host === '-000000-' ? '-ffffff-' : '-000000-')),
      legacyFresh: '.artifact-uploader-0123456789ab.tmp',
      legacyOld: '.artifact-uploader-ba9876543210.tmp',
    };
    for (const name of Object.values(names)) writeFileSync(join(dir, name), 'left');
    const hourAgo = new Date(Date.now() - 60 * 60_000);
    for (const name of [names.liveOld, names.otherHostOld, names.legacyOld]) utimesSync(join(dir, name), hourAgo, hourAgo);

    await store.uploadFile(join(src, 'a.txt'), 'ckpt/a.txt');

    expect(readdirSync(dir).sort()).toEqual(['a.txt', names.liveOld, names.otherHostOld, names.legacyFresh].sort());
  });
});
