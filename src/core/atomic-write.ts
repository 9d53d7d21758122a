/**
 * The one way this library replaces a file: write a temp file, flush it to disk, rename it over
 * the target. Readers see the old content or the new, never a part; a failure (or abort)
 * removes the temp file and leaves the target as it was.
 *
 * - **Named by owner.** Every temp file is `<prefix><pid>-<host>-<random>.tmp`, so a later run
 *   can tell a temp file a dead process left behind (owner pid gone on this host, and untouched
 *   for {@link STALE_TEMP_MS}, or at once: {@link removeDeadOwnersTempFiles}) from one a live
 *   process is still writing, and remove only the first ({@link removeStaleTempFiles}). SIGKILL
 *   skips every `finally`; this is what cleans up after it.
 * - **Replaced together.** {@link stageFile} writes and flushes without renaming;
 *   {@link commitStaged} then renames several staged files (an archive and its manifest), and
 *   if one rename fails it puts the earlier targets back, so the pair is old or new, never mixed.
 * - **A full disk says so.** `ENOSPC` and `EDQUOT` become a {@link DiskFullError} naming the
 *   destination, wherever in the write they happen.
 *
 * @module
 */
import { createHash, randomBytes } from './node-crypto.js';
import { link, lstat, mkdir, open, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { diskFullError } from './errors.js';

/** A temp file untouched for this long, whose owner process is gone, is left over: 10 minutes. */
export const STALE_TEMP_MS = 10 * 60_000;
/** A temp file of another host (a shared disk) is only taken as left over after a day. */
const OTHER_HOST_STALE_MS = 24 * 60 * 60_000;

/** Where and under which name a temp file is written. */
export interface TempFileOptions {
  /**
   * Directory of the temp file. Must be on the same file system as the target (rename).
   * @default dirname(target)
   */
  tempDir?: string;
  /**
   * Start of the temp file's name; the owner's pid, host and a random part follow.
   * @default `${basename(target)}.tmp-`
   */
  prefix?: string;
  /**
   * Flush the temp file to disk before the rename (durable across a power loss). Without it
   * the replacement is still atomic against a crashed or killed process (the rename is).
   * @default true
   */
  sync?: boolean;
}

/** A file written and flushed under its temp name, not yet renamed into place. */
export interface StagedFile {
  /** The path it will replace. */
  readonly target: string;
  /** Where its content is now. */
  readonly temp: string;
}

let hostTagValue: string | undefined;
/** Six hex digits standing for this host in temp names (a host name may be long or odd); hashed on first use. */
const hostTag = (): string => (hostTagValue ??= createHash('sha256').update(hostname()).digest('hex').slice(0, 6));

/**
 * True when a process with this pid exists on this host.
 *
 * @example
 * ```ts
 * processAlive(process.pid); // true
 * ```
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A fresh temp file name for this process: `<prefix><pid>-<host>-<random>.tmp`.
 *
 * @example
 * ```ts
 * tempFileName('ckpt.tar.gz.tmp-'); // 'ckpt.tar.gz.tmp-4242-3fa9c1-9b1e0c7d2a44.tmp'
 * ```
 */
export function tempFileName(prefix: string): string {
  return `${prefix}${process.pid}-${hostTag()}-${randomBytes(6).toString('hex')}.tmp`;
}

/**
 * The owner of a temp file named by {@link tempFileName}, or `undefined` for any other name.
 *
 * @example
 * ```ts
 * tempFileOwner('m.json.tmp-4242-3fa9c1-9b1e0c7d2a44.tmp', 'm.json.tmp-'); // { pid: 4242, host: '3fa9c1' }
 * ```
 */
export function tempFileOwner(name: string, prefix: string): { pid: number; host: string } | undefined {
  if (!name.startsWith(prefix)) return undefined;
  const match = /^(\d+)-([0-9a-f]{6})-[0-9a-f]{12}\.tmp$/.exec(name.slice(prefix.length));
  return match ? { pid: Number(match[1]), host: match[2]! } : undefined;
}

/**
 * True when `name` is a temp file named by {@link tempFileName} (any prefix ending in `.tmp-`)
 * whose owner is a process of this host that is gone: nobody can still be writing it, whatever
 * its age. Another host's, or a name of another shape, is never judged here.
 *
 * Pass `mtimeMs`, when known, for a name of this process's own pid: one last written before this
 * process started is a predecessor's with the same pid (a container restarted as pid 1, a
 * machine rebooted), left over. Without it such a name always reads as this process's, alive.
 *
 * @example
 * ```ts
 * const info = await lstat(join(dir, name));
 * if (leftByDeadWriter(name, info.mtimeMs)) await rm(join(dir, name), { force: true });
 * ```
 */
export function leftByDeadWriter(name: string, mtimeMs?: number): boolean {
  const at = name.lastIndexOf('.tmp-');
  const owner = at < 0 ? undefined : tempFileOwner(name, name.slice(0, at + '.tmp-'.length));
  return owner !== undefined && owner.host === hostTag() && !ownerMayBeAlive(owner, mtimeMs === undefined ? 0 : Date.now() - mtimeMs);
}

/**
 * Whether a file (a temp file, a lock) named by this process's pid, last written at `mtimeMs`,
 * is this process's: written since it started. One written before is a predecessor's with the
 * same pid (a container restarted with its hostname kept, its Node process pid 1 again; a machine
 * rebooted). Judged by time, not by a set of tokens this module instance issued: the ESM and CJS
 * builds loaded side by side, and worker threads, are one process with several module instances,
 * and none may take another's live file for a predecessor's.
 *
 * @example
 * ```ts
 * const mine = owner.pid === process.pid && touchedByThisProcess((await stat(lockPath)).mtimeMs);
 * ```
 */
export function touchedByThisProcess(mtimeMs: number): boolean {
  // process.uptime(): since the process started, also in a worker thread (performance.now()
  // would count from the thread's start); a second of slack for clock granularity.
  return mtimeMs >= Date.now() - process.uptime() * 1000 - 1000;
}

/** A file waiting to be created whole where none exists ({@link prepareExclusiveFile}). */
export interface ExclusiveFile {
  /** Links the written content to the target; `false` when the target exists (nothing changed). */
  tryCreate(): Promise<boolean>;
  /** Removes the temp file (the target, if created, stays). */
  discard(): Promise<void>;
}

/**
 * Writes `content` to a temp file beside `target` (named by {@link tempFileName}, so a kill's
 * leftover is swept like any other), for {@link ExclusiveFile.tryCreate} to hard-link to
 * `target`: `link` fails with `EEXIST` like `O_EXCL`, so exactly one process creates it, and
 * nobody ever sees it empty or half-written. That is what a lock needs: created with `O_EXCL`
 * and written after, a lock whose process was killed in between stays empty, and nobody can
 * tell that its owner is dead. Call {@link ExclusiveFile.discard} when done trying.
 *
 * @example
 * ```ts
 * const lock = await prepareExclusiveFile('state.json.lock', JSON.stringify({ pid: process.pid }), { prefix: '.state.json.tmp-' });
 * try {
 *   if (!(await lock.tryCreate())) console.log('someone else holds it');
 * } finally {
 *   await lock.discard();
 * }
 * ```
 */
export async function prepareExclusiveFile(target: string, content: string, options: { prefix?: string; mode?: number } = {}): Promise<ExclusiveFile> {
  const temp = join(dirname(target), tempFileName(options.prefix ?? `.${basename(target)}.tmp-`));
  await writeFile(temp, content, { flag: 'wx', ...(options.mode !== undefined ? { mode: options.mode } : {}) });
  return {
    tryCreate: async () => {
      try {
        await link(temp, target);
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw error;
      }
    },
    discard: () => rm(temp, { force: true }),
  };
}

/**
 * True when the owner of a temp file (named by {@link tempFileName}) may still be writing it,
 * given how long ago the file was last written. A file of this process's pid untouched since
 * before this process started is a predecessor's ({@link touchedByThisProcess}), and its
 * leftovers must not live forever.
 */
function ownerMayBeAlive(owner: { pid: number; host: string }, ageMs: number): boolean {
  if (owner.host !== hostTag()) return ageMs <= OTHER_HOST_STALE_MS;
  if (owner.pid === process.pid) return touchedByThisProcess(Date.now() - ageMs);
  return processAlive(owner.pid);
}

/** Options of {@link removeStaleTempFiles}. */
export interface StaleTempFilesOptions {
  /** How long a temp file with an owner must be untouched. @default STALE_TEMP_MS */
  olderThanMs?: number;
  /** Owner-less temp names of earlier versions, removed once old. @default none */
  legacy?: RegExp;
  /** How long a `legacy` name must be untouched. @default olderThanMs */
  legacyOlderThanMs?: number;
  /**
   * The names in `dir`, when the caller has just read it for another sweep of its own: one
   * reading then serves both. A name gone meanwhile is skipped; one created since is not seen,
   * which costs nothing, since a temp file that new is a live writer's.
   * @default read here
   */
  names?: readonly string[];
}

/**
 * Removes the temp files (or temp directories) in `dir` that start with `prefix` and that a dead
 * process left behind: untouched for `olderThanMs` and their owner pid gone (on this host; a day
 * for another host's). Names without an owner are kept, unless `legacy` matches them and they
 * are older than `legacyOlderThanMs` (temp names of earlier versions, whose owner cannot be
 * told; by default the same age). Never throws: a directory that cannot be read is simply not
 * cleaned. Returns the removed paths.
 *
 * @example
 * ```ts
 * await removeStaleTempFiles('out', 'ckpt.tar.gz.tmp-');
 * ```
 */
export async function removeStaleTempFiles(dir: string, prefix: string, options: StaleTempFilesOptions = {}): Promise<string[]> {
  const olderThanMs = options.olderThanMs ?? STALE_TEMP_MS;
  const legacyOlderThanMs = options.legacyOlderThanMs ?? olderThanMs;
  const names = options.names ?? (await readdir(dir).catch(() => [] as string[]));
  const removed: string[] = [];
  for (const name of names) {
    const owner = tempFileOwner(name, prefix);
    if (!owner && !options.legacy?.test(name)) continue;
    const path = join(dir, name);
    const info = await lstat(path).catch(() => undefined);
    if (!info) continue;
    const ageMs = Date.now() - info.mtimeMs;
    if (ageMs <= (owner ? olderThanMs : legacyOlderThanMs)) continue;
    if (owner && ownerMayBeAlive(owner, ageMs)) continue;
    await rm(path, { recursive: true, force: true }).then(
      () => removed.push(path),
      () => undefined,
    );
  }
  return removed;
}

/**
 * Removes the temp files in `dir` (see {@link removeStaleTempFiles}) whose owner, named in them,
 * is a process of this host that is gone, whatever their age: nobody writes them any more, and
 * waiting for them to age would leave a killed writer's bytes (a checkpoint's worth) on the disk
 * for another run. A live owner's stays, however old; another host's (a shared disk, whose pids
 * say nothing here) once untouched for a day; the owner-less names of earlier versions
 * (`legacy`) once untouched for {@link STALE_TEMP_MS}, since their owner cannot be told. The
 * `file:` store and the MLX conversion sweep their leftovers this one way.
 *
 * @example
 * ```ts
 * await removeDeadOwnersTempFiles('out/artifacts', '.artifact.uploading.artifact-uploader-');
 * ```
 */
export function removeDeadOwnersTempFiles(dir: string, prefix: string, options: Pick<StaleTempFilesOptions, 'legacy' | 'names'> = {}): Promise<string[]> {
  return removeStaleTempFiles(dir, prefix, { ...options, olderThanMs: 0, legacyOlderThanMs: STALE_TEMP_MS });
}

/** Rethrows `error` as a {@link DiskFullError} for `destination` when the disk is full. */
function rethrow(error: unknown, destination: string): never {
  throw diskFullError(error, destination) ?? error;
}

/** Flushes a file's content to disk. */
async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Flushes a directory's entries to disk: after a rename, what makes the new name survive a
 * power loss (the file's own flush covers its content, not the name). A platform that cannot
 * open a directory for that (Windows) is left as it is.
 *
 * @example
 * ```ts
 * await writeFileAtomic('journal/rec.json', json);
 * await syncDirectory('journal');
 * ```
 */
export async function syncDirectory(dir: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EBADF') throw error;
  } finally {
    await handle?.close();
  }
}

/**
 * Writes `target`'s new content under a temp name (by `write`, which must create the file it is
 * given, e.g. with flag `wx`) and flushes it, without renaming. On failure the temp file is
 * removed. Follow with {@link commitStaged} or {@link discardStaged}.
 *
 * @throws {DiskFullError} when the file system is full (or over quota).
 * @example
 * ```ts
 * const archive = await stageFile('out/ckpt.tar.gz', (temp) => pipeline(source, createWriteStream(temp, { flags: 'wx' })));
 * const manifest = await stageFile('out/ckpt.manifest.json', (temp) => writeFile(temp, json, { flag: 'wx' }));
 * await commitStaged([archive, manifest]);
 * ```
 */
export async function stageFile(target: string, write: (temp: string) => Promise<void>, options: TempFileOptions = {}): Promise<StagedFile> {
  const temp = join(options.tempDir ?? dirname(target), tempFileName(options.prefix ?? `${basename(target)}.tmp-`));
  try {
    await write(temp);
    if (options.sync !== false) await syncFile(temp);
  } catch (error) {
    await rm(temp, { force: true }).catch(() => undefined);
    rethrow(error, target);
  }
  return { target, temp };
}

/** Removes staged files that will not be committed. Never throws. */
export async function discardStaged(files: readonly StagedFile[]): Promise<void> {
  await Promise.all(files.map((file) => rm(file.temp, { force: true }).catch(() => undefined)));
}

/**
 * Renames staged files over their targets, in order. When a rename fails, the targets already
 * replaced get their old content back (kept meanwhile as a hard link beside each; a target that
 * did not exist is removed again), every temp file is removed, and the error is thrown: all old,
 * or all new. (A crash between two renames can still leave the first one new.)
 *
 * @throws {DiskFullError} when the file system is full.
 * @example
 * ```ts
 * await commitStaged([await stageFile(archivePath, writeArchive), await stageFile(manifestPath, writeManifestTo)]);
 * ```
 */
export async function commitStaged(files: readonly StagedFile[]): Promise<void> {
  if (files.length === 1) {
    const [file] = files as [StagedFile];
    try {
      await rename(file.temp, file.target);
    } catch (error) {
      await discardStaged(files);
      rethrow(error, file.target);
    }
    return;
  }
  // Old content kept aside (hard links cost no copy); `null` = the target did not exist.
  const backups: Array<string | null | undefined> = [];
  let done = 0;
  try {
    for (const file of files) {
      const backup = join(dirname(file.temp), tempFileName(`${basename(file.target)}.tmp-`));
      backups.push(
        await link(file.target, backup).then(
          () => backup,
          // ENOENT: nothing to restore, remove the new file on rollback; else (no hard links on
          // this file system) the old content cannot be kept, and rollback leaves the new one.
          (error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? null : undefined),
        ),
      );
    }
    for (const file of files) {
      await rename(file.temp, file.target);
      done++;
    }
  } catch (error) {
    for (let i = 0; i < done; i++) {
      const backup = backups[i];
      if (backup) await rename(backup, files[i]!.target).catch(() => undefined);
      else if (backup === null) await rm(files[i]!.target, { force: true }).catch(() => undefined);
    }
    await discardStaged(files);
    await Promise.all(backups.map((b) => (b ? rm(b, { force: true }).catch(() => undefined) : undefined)));
    rethrow(error, files[done]?.target ?? files[0]!.target);
  }
  await Promise.all(backups.map((b) => (b ? rm(b, { force: true }).catch(() => undefined) : undefined)));
}

/**
 * Replaces `target` by what `write` writes into the temp file it is given: stage, flush, rename.
 *
 * @throws {DiskFullError} when the file system is full.
 * @example
 * ```ts
 * await atomicWrite('out/model.bin', (temp) => pipeline(createReadStream('model.bin'), createWriteStream(temp, { flags: 'wx' })));
 * ```
 */
export async function atomicWrite(target: string, write: (temp: string) => Promise<void>, options: TempFileOptions = {}): Promise<void> {
  await commitStaged([await stageFile(target, write, options)]);
}

/**
 * Replaces `target` by `data` atomically (see {@link atomicWrite}), creating the parent
 * directory when `mkdir` is set.
 *
 * @throws {DiskFullError} when the file system is full.
 * @example
 * ```ts
 * await writeFileAtomic('state/publishes.json', JSON.stringify(state), { mkdir: true });
 * ```
 */
export async function writeFileAtomic(
  target: string,
  data: string | Uint8Array,
  options: TempFileOptions & {
    /** Create the parent directory (with `dirMode`) when missing. */
    mkdir?: boolean;
    /** Mode of a directory created by `mkdir`. @default 0o777 less the umask */
    dirMode?: number;
    /** Mode of the file written. @default 0o666 less the umask */
    mode?: number;
  } = {},
): Promise<void> {
  if (options.mkdir) await mkdir(dirname(target), { recursive: true, mode: options.dirMode }).catch((error: unknown) => rethrow(error, target));
  await atomicWrite(target, (temp) => writeFile(temp, data, { flag: 'wx', mode: options.mode }), options);
}

/**
 * Creates a scratch directory `<os tmpdir>/<prefix><pid>-<host>-<random>.tmp`, first removing
 * the ones with the same prefix that dead processes left behind. Remove it when done.
 *
 * @throws {DiskFullError} when the temp file system is full.
 * @example
 * ```ts
 * const work = await makeTempDir('artifact-uploader-archive-');
 * try { ... } finally { await rm(work, { recursive: true, force: true }); }
 * ```
 */
export async function makeTempDir(prefix: string, parent = tmpdir()): Promise<string> {
  await removeStaleTempFiles(parent, prefix);
  const dir = join(parent, tempFileName(prefix));
  await mkdir(dir, { mode: 0o700 }).catch((error: unknown) => rethrow(error, dir));
  return dir;
}
