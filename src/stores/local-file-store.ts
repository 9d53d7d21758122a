/**
 * The store for `file:` artifact URIs and plain paths (runs of a local `./mlruns` store, or a
 * server whose artifact root is a local directory): files are copied into the artifact
 * directory. Each copy streams into a temp file next to the destination and is renamed into
 * place only once complete and flushed, so a crash or an abort never leaves a half-written
 * artifact, and an existing artifact is replaced all at once. The copy keeps the source's
 * permission bits and times, as MLflow's `LocalArtifactRepository` does (`shutil.copystat`): the
 * temp file is created with the source's permissions (never wider than the source's, even
 * before the rename) and given its mode and times before the rename. A file system that refuses
 * them (CIFS/SMB and some NFS mounts) does not fail the copy: the file is stored whole without
 * them, and the result says so (`attributesNotKept`, one warning per upload call). A copy that fails or is aborted
 * also removes the directories it created for its file, when empty, so a run does not list an
 * empty folder for a file it never stored; so does a file taken back (`delete`).
 *
 * Temp files are named `.artifact.uploading.artifact-uploader-<pid>-<host>-<random>.tmp`:
 * `.artifact.uploading.` is the prefix MLflow's own local artifact repository uses for its temp
 * files, and its `list_artifacts` (hence `download_artifacts` and the UI) leaves such names out,
 * so even a copy cut short by SIGKILL is never listed or downloaded as an artifact. The first
 * write into a directory removes the temp files there that dead processes of this host left
 * behind (owner pid gone: at once, as the MLX conversion does; another host's once untouched for
 * a day), and those of earlier versions (`.artifact-uploader-*.tmp`, untouched for 10 minutes).
 *
 * @module
 */
import { createHash } from '../core/node-crypto.js';
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, rmdir, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { atomicWrite, removeDeadOwnersTempFiles } from '../core/atomic-write.js';
import { AbortedError, DiskFullError, diskFullError, LocalPathError, SourceChangedError } from '../core/errors.js';
import { sourceChange } from '../core/source-snapshot.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { assertArtifactPath, invalidArtifactPathError, joinArtifactPath, type ArtifactPathProblem } from '../mlflow/artifacts-api.js';
import { LEGACY_TEMP_NAME, listLocalArtifactDirectory } from '../mlflow/local-artifact-listing.js';
import { fileUriToPath } from '../mlflow/tracking-uri.js';
import { overlongName, type ArtifactEntry, type ArtifactStore, type ArtifactStoreContext, type ArtifactStoreFactory, type UploadFileOptions, type UploadFileResult } from './artifact-store.js';
import { throwIfAborted } from '../core/abort.js';
import { overlongNameText } from '../core/answer-hints.js';
import { readSourceIfSmall, toLocalPathError, type SourceAttributes } from './source-file.js';

/**
 * Temp files start with this: MLflow's reserved temp prefix (`_TEMP_ARTIFACT_PREFIX` of
 * `local_artifact_repo.py`), which its listing skips, then ours.
 */
export const UPLOADING_PREFIX = '.artifact.uploading.artifact-uploader-';
const COPY_CHUNK = 1024 * 1024;

/**
 * The longest name of one file or directory: 255 bytes of UTF-8 on the file systems of Linux
 * and macOS (ext4, XFS, Btrfs, tmpfs, APFS), 255 UTF-16 units on Windows (NTFS).
 */
const FILE_NAME_MAX = process.platform === 'win32' ? ({ max: 255, unit: 'characters' } as const) : ({ max: 255, unit: 'bytes' } as const);

/** How many times a copy creates its directory again when it vanished before the temp file was created. */
const DIRECTORY_ATTEMPTS = 5;
/** What a write returns when its temp file could not be created because its directory vanished. */
const DIRECTORY_GONE = Symbol('directory gone');

/**
 * A time in ns as the seconds `utimes` takes: Node hands libuv a double, which keeps whole
 * microseconds (it truncates the rest) only when given the middle of one, so the copy's time is
 * the source's to the microsecond (MLflow's `copystat`: to the nanosecond, which Node cannot set).
 */
function utimeSeconds(ns: bigint): number {
  return (Number(ns / 1000n) + 0.5) / 1e6;
}

/**
 * What a file system that cannot keep modes or times answers `chmod`/`utimes` with: CIFS/SMB
 * and some NFS mounts (EPERM, ENOTSUP/EOPNOTSUPP, ENOSYS, EINVAL). The bytes are written by then,
 * so the copy stands without the attributes (MLflow's `copystat` would fail the upload on them;
 * a week's checkpoint is not to be lost over file modes). Anything else (EIO) still fails it.
 */
const ATTRIBUTES_REFUSED = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EINVAL']);

/**
 * Gives a written temp file its source's mode and times (`shutil.copystat`), through the handle
 * that wrote it: after the last write, which would set the mtime again. Returns why they were
 * not kept when the file system refused them ({@link ATTRIBUTES_REFUSED}), and throws any other
 * error. The times are still tried after a refused `chmod`: a mount may take one and not the other.
 */
async function keepAttributes(handle: FileHandle, attributes: SourceAttributes): Promise<string | undefined> {
  const refusals: string[] = [];
  const refused = (error: unknown): void => {
    if (!ATTRIBUTES_REFUSED.has((error as NodeJS.ErrnoException).code ?? '')) throw error;
    refusals.push((error as Error).message);
  };
  await handle.chmod(attributes.mode).catch(refused);
  await handle.utimes(utimeSeconds(attributes.atimeNs), utimeSeconds(attributes.mtimeNs)).catch(refused);
  return refusals.length > 0 ? refusals.join('; ') : undefined;
}

/**
 * Runs what a write does to its temp file once it holds the bytes (its mode and times, the
 * flush), failing as the destination's error: an `EIO` there is the artifact directory's disk
 * or mount, and was reported as the source's ("cannot be read", naming the file being uploaded,
 * which was fine). Names `destination`, the path the copy was to be stored at (the temp file
 * beside it is removed by `atomicWrite`, and its name means nothing to the caller).
 */
async function finishStoring<T>(destination: string, finish: () => Promise<T>): Promise<T> {
  try {
    return await finish();
  } catch (error) {
    throw unwritableError(error, destination, `Cannot store ${destination}`);
  }
}

/** The temp file of one write: created exclusively, remembering why it could not be. */
class TempFile {
  /** Why the temp file could not be created: the destination's fault, not the source's. */
  createError: unknown;

  /** `open` said ENOENT: the directory is gone (another copy's cleanup removed it). */
  get directoryGone(): boolean {
    return (this.createError as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
  }

  /**
   * Creates the temp file with `mode`'s permission bits (less the umask): a `0600` source's
   * copy is never readable by others, not even under its temp name or after a power loss that
   * lost the `chmod`. The handle is writable whatever the mode.
   */
  async create(path: string, mode: number): Promise<FileHandle> {
    try {
      return await open(path, 'wx', mode & 0o777);
    } catch (error) {
      this.createError = error;
      throw error;
    }
  }
}

/** Whether `error` is a refusal to write (permissions, a read-only file system). */
function isWriteDenied(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'EACCES' || code === 'EPERM' || code === 'EROFS';
}

/**
 * The error of a temp file that could not be created in `path`, a directory (or of `path` that
 * could not be created, or of the copy to be stored at `path` that could not be finished:
 * `what`): a full disk, else a directory this user may not write to (one a container made as
 * root, a read-only mount), named as such; read as a source error, it would blame the file
 * being uploaded.
 */
function unwritableError(error: unknown, path: string, what = `Cannot create a file in the artifact directory ${path}`): Error {
  const code = (error as NodeJS.ErrnoException).code;
  const denied = isWriteDenied(error);
  return (
    diskFullError(error, path) ??
    new LocalPathError('PATH_UNWRITABLE', path, `${what}: ${(error as Error).message}.`, {
      hint: denied
        ? code === 'EROFS'
          ? 'It is on a read-only file system: point the run (or the artifact root) at a writable location.'
          : 'Make it (a directory still to be created: its parent) writable for the user running the upload (a directory a container created as root is not: chown it, or run as its owner), or point the artifact root elsewhere.'
        : 'Check the artifact directory and the file system it is on, then run again.',
      cause: error,
    })
  );
}

/**
 * The error of an artifact path where a directory is: a file cannot replace it (the rename fails
 * with `EISDIR`, as MLflow's `os.replace` does). Named as the destination's problem, with what
 * to do; read as a source error, it would be an untyped `EISDIR` naming the temp file.
 */
function directoryInTheWayError(destination: string, cause?: unknown): LocalPathError {
  return new LocalPathError('PATH_UNWRITABLE', destination, `Cannot store a file at ${destination}: a directory of that name is already in the artifact directory; nothing was written.`, {
    hint: 'Upload the file under another artifact path (a name inside that directory, e.g. "<path>/<file name>"), or remove the directory from the run first.',
    cause,
  });
}

/** The error of a failed write, or {@link DIRECTORY_GONE} when it is to be tried again. */
function failedCopy(error: unknown, temp: TempFile, localPath: string, destination: string, options: UploadFileOptions): typeof DIRECTORY_GONE {
  if (options.signal?.aborted) {
    throw new AbortedError(`Copying ${localPath} to ${destination} was aborted; nothing was written.`, { cause: options.signal.reason });
  }
  if (temp.directoryGone) return DIRECTORY_GONE;
  if (temp.createError !== undefined) throw unwritableError(temp.createError, dirname(destination));
  // The rename onto a directory made after the check in `uploadFile` (its `dest` is ours).
  const { code, dest } = error as NodeJS.ErrnoException & { dest?: string };
  if (dest === destination && (code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST')) throw directoryInTheWayError(destination, error);
  if (error instanceof DiskFullError || error instanceof SourceChangedError) throw error;
  throw toLocalPathError(error, localPath);
}

/**
 * Removes `directory` and its parents up to `outermost` (for a copy, the first directory its
 * `mkdir` created; for a delete, the top one under the artifact root), deepest first, each only
 * when empty: `rmdir`, never a recursive remove, so that a
 * directory another copy put a file (or its temp file) into meanwhile stays, and the walk stops
 * there, or at the first one that is already gone. Never throws: what stays is only an empty
 * directory, and the copy's own error is the one to report.
 */
async function removeEmptyDirectories(directory: string, outermost: string): Promise<void> {
  for (let dir = directory; dir.length >= outermost.length; dir = dirname(dir)) {
    try {
      await rmdir(dir);
    } catch {
      return;
    }
    if (dir === outermost || dirname(dir) === dir) return;
  }
}

/** Options of {@link LocalFileStore}. */
export interface LocalFileStoreOptions {
  /** The artifact URI (`file:///abs/path`, `file:relative`, or a plain path). */
  artifactUri: string;
  /** Resolves relative paths. @default process.cwd() */
  cwd?: string;
  /** @default silent */
  logger?: Logger;
}

/**
 * Copies artifacts into a local directory, atomically per file.
 *
 * @example
 * ```ts
 * const store = new LocalFileStore({ artifactUri: 'file:///tmp/mlruns/0/abc/artifacts' });
 * await store.uploadFile('metrics.json', 'eval/metrics.json');
 * ```
 */
export class LocalFileStore implements ArtifactStore {
  readonly kind = 'file';
  readonly artifactUri: string;
  /** Absolute path of the artifact root directory. */
  readonly root: string;
  private readonly logger: Logger;
  /** Directories already cleaned of stale temp files by this instance. */
  private readonly cleaned = new Set<string>();

  constructor(options: LocalFileStoreOptions) {
    this.artifactUri = options.artifactUri;
    this.root = fileUriToPath(options.artifactUri, options.cwd, 'artifactUri');
    this.logger = options.logger ?? silentLogger;
  }

  describe(): string {
    return `local directory ${this.root}: atomic copy per file (temp file + rename)`;
  }

  /**
   * Refuses a path with a file or directory name longer than a file system takes
   * ({@link FILE_NAME_MAX}). The copy failed on it with ENAMETOOLONG, said as `NOT_A_DIRECTORY`
   * ("A file may already exist where a directory is needed"), after a directory's other files
   * were stored or an archive was built: a long HPO `trialId` or run name turned into a folder.
   */
  checkArtifactPaths(artifactPaths: readonly string[]): void {
    const tooLong: ArtifactPathProblem[] = [];
    for (const path of artifactPaths) {
      const overlong = overlongName(path, FILE_NAME_MAX.max, FILE_NAME_MAX.unit);
      if (overlong) tooLong.push({ path, reason: `${overlongNameText(overlong, FILE_NAME_MAX.unit)}; a file system takes at most ${FILE_NAME_MAX.max} for the name of one file or directory` });
    }
    if (tooLong.length > 0) {
      throw invalidArtifactPathError(tooLong, 'Artifact path', `Shorten that name to at most ${FILE_NAME_MAX.max} ${FILE_NAME_MAX.unit}: the file's or a directory's, or the value that became one (a \`trialId\`, an \`artifactPath\`); or exclude the file.`);
    }
  }

  async uploadFile(localPath: string, artifactPath: string, options: UploadFileOptions = {}): Promise<UploadFileResult> {
    assertArtifactPath(artifactPath);
    // Before the file is read: the copy would fail on it only at its directory or temp file.
    this.checkArtifactPaths([artifactPath]);
    throwIfAborted(options.signal);
    // A small file is read whole (open, fstat, read, close) and written with one write; a
    // larger one is streamed. Either way: temp file, flushed, checked, renamed.
    const { size, bytes, attributes } = await readSourceIfSmall(localPath, options.size, this.logger);
    const destination = join(this.root, ...artifactPath.split('/'));
    const directory = dirname(destination);
    // A directory where the file goes would fail the rename only after the whole copy: said now,
    // before a byte is read.
    if ((await stat(destination).catch(() => undefined))?.isDirectory()) throw directoryInTheWayError(destination);
    // The outermost directory this call created for the destination: a copy that fails stored
    // nothing, and must not leave an empty `checkpoints/step_100/` either, which MLflow's UI and
    // `list_artifacts` would show as if it held something. Only what this call created goes, and
    // only while empty (removeEmptyDirectories). That opens a race: another copy (a directory
    // upload runs several at once, other processes may write there too) may have just found
    // such a directory in place, or created it again, and be about to create its temp file in
    // it. So a temp file that cannot be created because its directory vanished (ENOENT) makes
    // this call create the directory again and try again, a bounded number of times; nothing was
    // read yet at that point (the temp file is created before the source is read), so the
    // attempt starts over clean. The other design, staging the temp file in a directory that
    // exists and creating the destination's directories only just before the rename, avoids
    // the race but not the leftover (a failed rename), moves the temp file away from where a
    // killed copy's leftover is swept, and fails with EXDEV when a subdirectory is a symlink or
    // mount onto another file system.
    let created: string | undefined;
    try {
      for (let attempt = 1; ; attempt++) {
        const made = await this.makeDirectory(directory);
        // Each attempt's `mkdir` names the first directory it created; all lie on the path to
        // `directory`, so the shortest is the outermost.
        if (made !== undefined && (created === undefined || made.length < created.length)) created = made;
        const result = bytes
          ? await this.writeSmall(localPath, destination, bytes, attributes, options)
          : await this.writeStreamed(localPath, destination, size, attributes, options);
        if (result !== DIRECTORY_GONE) return result;
        if (attempt === DIRECTORY_ATTEMPTS) {
          throw new LocalPathError('PATH_NOT_FOUND', directory, `The artifact directory ${directory} was removed each time ${localPath} was about to be copied into it (${attempt} times); nothing was written.`, {
            hint: 'Something else keeps removing directories under the artifact root (another tool cleaning up?); run again once it has stopped.',
          });
        }
      }
    } catch (error) {
      if (created !== undefined) await removeEmptyDirectories(directory, created);
      throw error;
    }
  }

  /** Creates `directory` and its missing parents; returns the first one it created, if any. */
  private async makeDirectory(directory: string): Promise<string | undefined> {
    let created: string | undefined;
    try {
      created = await mkdir(directory, { recursive: true });
    } catch (error) {
      // Not writable for this user (an artifact root a container made as root): not "a file in the way".
      if (isWriteDenied(error)) throw unwritableError(error, directory, `Cannot create the artifact directory ${directory}`);
      throw diskFullError(error, directory) ?? new LocalPathError('NOT_A_DIRECTORY', directory, `Cannot create the artifact directory ${directory}: ${(error as Error).message}.`, {
        hint: 'A file may already exist where a directory is needed, or the directory is not writable.',
        cause: error,
      });
    }
    if (!this.cleaned.has(directory)) {
      this.cleaned.add(directory);
      await removeDeadOwnersTempFiles(directory, UPLOADING_PREFIX, { legacy: LEGACY_TEMP_NAME });
    }
    return created;
  }

  /**
   * A larger file, streamed into the temp file and hashed in the same pass, then given the
   * source's mode and times and flushed through the handle that wrote it. The temp file is
   * created before the source is read: a directory that vanished meanwhile ({@link DIRECTORY_GONE})
   * is found before a byte is counted or reported.
   */
  private async writeStreamed(
    localPath: string,
    destination: string,
    size: number,
    attributes: SourceAttributes,
    options: UploadFileOptions,
  ): Promise<UploadFileResult | typeof DIRECTORY_GONE> {
    let copied = 0;
    // Hashed in the same pass as the copy; the file is checked against its snapshot before the
    // rename, so a file that changed meanwhile is never stored.
    const hash = createHash('sha256');
    const temp = new TempFile();
    let attributesNotKept: string | undefined;
    try {
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          copied += chunk.length;
          hash.update(chunk);
          options.onProgress?.(copied);
          callback(null, chunk);
        },
      });
      await atomicWrite(
        destination,
        async (path) => {
          const handle = await temp.create(path, attributes.mode);
          // The write's own failure (ENOSPC: DISK_FULL), which Node 20 and 22's `pipeline`
          // reports as the AbortError it destroys the source with once the writer has failed.
          let writeError: unknown;
          try {
            await pipeline(
              createReadStream(localPath, { highWaterMark: COPY_CHUNK }),
              counter,
              // Written through the handle, which stays open for the mode, the times and the flush
              // (opening the temp file again could fail: a `0040` source's copy is not readable by
              // its owner). Not a `createWriteStream({ autoClose: false })`: its handle never closes.
              (chunks: AsyncIterable<Buffer>) =>
                writeFile(handle, chunks, options.signal ? { signal: options.signal } : {}).catch((error: unknown) => {
                  writeError = error;
                  throw error;
                }),
              options.signal ? { signal: options.signal } : {},
            ).catch((error: unknown) => {
              throw writeError ?? error;
            });
            attributesNotKept = await finishStoring(destination, async () => {
              const notKept = await keepAttributes(handle, attributes);
              await handle.sync();
              return notKept;
            });
          } finally {
            await handle.close();
          }
          const changed = options.snapshot ? await sourceChange(localPath, options.snapshot) : undefined;
          if (changed) throw changed;
        },
        // Flushed above, through the handle that wrote it.
        { prefix: UPLOADING_PREFIX, sync: false },
      );
    } catch (error) {
      return failedCopy(error, temp, localPath, destination, options);
    }
    options.onProgress?.(copied);
    if (copied !== size) this.logger.warn(`${localPath} changed while it was copied (${size} -> ${copied} bytes).`);
    return { bytes: copied, attempts: 1, multipart: false, sha256: hash.digest('hex'), ...this.notKept(destination, attributesNotKept) };
  }

  /**
   * A small file already in memory: one write into the temp file, given the source's mode and
   * times, flushed through the same handle (`fdatasync`: the data and the size, before the
   * rename, so that not even a power loss can show a partial or empty file at the final path),
   * checked against the snapshot, renamed.
   */
  private async writeSmall(
    localPath: string,
    destination: string,
    bytes: Buffer,
    attributes: SourceAttributes,
    options: UploadFileOptions,
  ): Promise<UploadFileResult | typeof DIRECTORY_GONE> {
    const temp = new TempFile();
    let attributesNotKept: string | undefined;
    try {
      await atomicWrite(
        destination,
        async (path) => {
          const handle = await temp.create(path, attributes.mode);
          try {
            attributesNotKept = await finishStoring(destination, async () => {
              await handle.writeFile(bytes);
              const notKept = await keepAttributes(handle, attributes);
              await handle.datasync();
              return notKept;
            });
          } finally {
            await handle.close();
          }
          throwIfAborted(options.signal);
          const changed = options.snapshot ? await sourceChange(localPath, options.snapshot) : undefined;
          if (changed) throw changed;
        },
        // Flushed above, through the handle that wrote it (no second open).
        { prefix: UPLOADING_PREFIX, sync: false },
      );
    } catch (error) {
      return failedCopy(error, temp, localPath, destination, options);
    }
    options.onProgress?.(bytes.length);
    return { bytes: bytes.length, attempts: 1, multipart: false, sha256: createHash('sha256').update(bytes).digest('hex'), ...this.notKept(destination, attributesNotKept) };
  }

  /**
   * The result's {@link UploadFileResult.attributesNotKept}, said per file at debug level only:
   * the uploader warns once per call (`uploadPlannedFiles`), not once per file of 20,000.
   */
  private notKept(destination: string, reason: string | undefined): Pick<UploadFileResult, 'attributesNotKept'> {
    if (reason === undefined) return {};
    this.logger.debug(`${destination} stored without its source's mode and times: ${reason}`);
    return { attributesNotKept: reason };
  }

  /**
   * Removes one stored file, then the directories above it that it leaves empty, up to (not
   * including) the artifact root: the file was taken back, so a folder kept only for it would
   * list in the MLflow UI as if it held something. A directory holding anything else stays, and
   * a copy about to write into one removed here creates it again (see `uploadFile`).
   */
  async delete(artifactPath: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    assertArtifactPath(artifactPath);
    throwIfAborted(options.signal);
    const segments = artifactPath.split('/');
    const file = join(this.root, ...segments);
    await rm(file, { force: true });
    if (segments.length > 1) await removeEmptyDirectories(dirname(file), join(this.root, segments[0]!));
  }

  async list(artifactDir?: string, options: { signal?: AbortSignal } = {}): Promise<ArtifactEntry[]> {
    const dir = artifactDir ? joinArtifactPath(artifactDir) : '';
    if (dir) assertArtifactPath(dir);
    throwIfAborted(options.signal, 'The listing');
    const absolute = dir ? join(this.root, ...dir.split('/')) : this.root;
    try {
      return await listLocalArtifactDirectory(absolute, dir, this.logger);
    } catch (error) {
      throw toLocalPathError(error, absolute);
    }
  }
}

/** Registers `file:` URIs and plain paths with the store registry. */
export const localFileStoreFactory: ArtifactStoreFactory = {
  schemes: ['file', ''],
  label: 'file: (local paths)',
  create(artifactUri: string, context: ArtifactStoreContext): ArtifactStore {
    return new LocalFileStore({ artifactUri, logger: context.logger });
  },
};
