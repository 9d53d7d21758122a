/**
 * The store for `file:` artifact URIs and plain paths (runs of a local `./mlruns` store, or a
 * server whose artifact root is a local directory): files are copied into the artifact
 * directory. Each copy streams into a temp file next to the destination and is renamed into
 * place only once complete and flushed, so a crash or an abort never leaves a half-written
 * artifact, and an existing artifact is replaced all at once.
 *
 * Temp files are named `.artifact.uploading.artifact-uploader-<pid>-<host>-<random>.tmp`:
 * `.artifact.uploading.` is the prefix MLflow's own local artifact repository uses for its temp
 * files, and its `list_artifacts` (hence `download_artifacts` and the UI) leaves such names out,
 * so even a copy cut short by SIGKILL is never listed or downloaded as an artifact. The first
 * write into a directory removes the temp files there that dead processes left behind (owner
 * pid gone, untouched for 10 minutes), and those of earlier versions (`.artifact-uploader-*.tmp`).
 *
 * @module
 */
import { createHash } from '../core/node-crypto.js';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { atomicWrite, removeStaleTempFiles } from '../core/atomic-write.js';
import { AbortedError, DiskFullError, diskFullError, LocalPathError, SourceChangedError } from '../core/errors.js';
import { sourceChange } from '../core/source-snapshot.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { assertArtifactPath, joinArtifactPath } from '../mlflow/artifacts-api.js';
import { fileUriToPath } from '../mlflow/tracking-uri.js';
import type { ArtifactEntry, ArtifactStore, ArtifactStoreContext, ArtifactStoreFactory, UploadFileOptions, UploadFileResult } from './artifact-store.js';
import { throwIfAborted } from '../core/abort.js';
import { readSourceIfSmall, toLocalPathError } from './source-file.js';

/**
 * Temp files start with this: MLflow's reserved temp prefix (`_TEMP_ARTIFACT_PREFIX` of
 * `local_artifact_repo.py`), which its listing skips, then ours.
 */
export const UPLOADING_PREFIX = '.artifact.uploading.artifact-uploader-';
/** MLflow's reserved prefix: names starting with it are never listed, by MLflow or by us. */
const MLFLOW_TEMP_PREFIX = '.artifact.uploading.';
/** Temp names of versions before 0.x that were listed by MLflow (`.artifact-uploader-<hex>.tmp`). */
const LEGACY_TEMP_NAME = /^\.artifact-uploader-[0-9a-f]{12}\.tmp$/;
const COPY_CHUNK = 1024 * 1024;

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

  async uploadFile(localPath: string, artifactPath: string, options: UploadFileOptions = {}): Promise<UploadFileResult> {
    assertArtifactPath(artifactPath);
    throwIfAborted(options.signal);
    // A small file is read whole (open, fstat, read, close) and written with one write; a
    // larger one is streamed. Either way: temp file, flushed, checked, renamed.
    const { size, bytes } = await readSourceIfSmall(localPath, options.size, this.logger);
    const destination = join(this.root, ...artifactPath.split('/'));
    const directory = dirname(destination);
    try {
      await mkdir(directory, { recursive: true });
    } catch (error) {
      throw diskFullError(error, directory) ?? new LocalPathError('NOT_A_DIRECTORY', directory, `Cannot create the artifact directory ${directory}: ${(error as Error).message}.`, {
        hint: 'A file may already exist where a directory is needed, or the directory is not writable.',
        cause: error,
      });
    }
    if (!this.cleaned.has(directory)) {
      this.cleaned.add(directory);
      await removeStaleTempFiles(directory, UPLOADING_PREFIX, { legacy: LEGACY_TEMP_NAME });
    }
    if (bytes) return this.writeSmall(localPath, destination, bytes, options);
    let copied = 0;
    // Hashed in the same pass as the copy; the file is checked against its snapshot before the
    // rename, so a file that changed meanwhile is never stored.
    const hash = createHash('sha256');
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
        async (temp) => {
          await pipeline(
            createReadStream(localPath, { highWaterMark: COPY_CHUNK }),
            counter,
            createWriteStream(temp, { flags: 'wx' }),
            options.signal ? { signal: options.signal } : {},
          );
          const changed = options.snapshot ? await sourceChange(localPath, options.snapshot) : undefined;
          if (changed) throw changed;
        },
        { prefix: UPLOADING_PREFIX },
      );
    } catch (error) {
      if (options.signal?.aborted) {
        throw new AbortedError(`Copying ${localPath} to ${destination} was aborted; nothing was written.`, { cause: options.signal.reason });
      }
      if (error instanceof DiskFullError || error instanceof SourceChangedError) throw error;
      throw toLocalPathError(error, localPath);
    }
    options.onProgress?.(copied);
    if (copied !== size) this.logger.warn(`${localPath} changed while it was copied (${size} -> ${copied} bytes).`);
    return { bytes: copied, attempts: 1, multipart: false, sha256: hash.digest('hex') };
  }

  /**
   * A small file already in memory: one write into the temp file, flushed through the same
   * handle (`fdatasync`: the data and the size, before the rename, so that not even a power loss
   * can show a partial or empty file at the final path), checked against the snapshot, renamed.
   */
  private async writeSmall(localPath: string, destination: string, bytes: Buffer, options: UploadFileOptions): Promise<UploadFileResult> {
    try {
      await atomicWrite(
        destination,
        async (temp) => {
          const handle = await open(temp, 'wx');
          try {
            await handle.writeFile(bytes);
            await handle.datasync();
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
      if (options.signal?.aborted) {
        throw new AbortedError(`Copying ${localPath} to ${destination} was aborted; nothing was written.`, { cause: options.signal.reason });
      }
      if (error instanceof DiskFullError || error instanceof SourceChangedError) throw error;
      throw toLocalPathError(error, localPath);
    }
    options.onProgress?.(bytes.length);
    return { bytes: bytes.length, attempts: 1, multipart: false, sha256: createHash('sha256').update(bytes).digest('hex') };
  }

  async delete(artifactPath: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    assertArtifactPath(artifactPath);
    throwIfAborted(options.signal);
    await rm(join(this.root, ...artifactPath.split('/')), { force: true });
  }

  async list(artifactDir?: string, options: { signal?: AbortSignal } = {}): Promise<ArtifactEntry[]> {
    const dir = artifactDir ? joinArtifactPath(artifactDir) : '';
    if (dir) assertArtifactPath(dir);
    throwIfAborted(options.signal, 'The listing');
    const absolute = dir ? join(this.root, ...dir.split('/')) : this.root;
    let names;
    try {
      names = await readdir(absolute, { withFileTypes: true });
    } catch (error) {
      // As MLflow's local repository: a missing directory, or a file, lists as empty.
      const code = (error as { code?: unknown }).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return [];
      throw toLocalPathError(error, absolute);
    }
    const out: ArtifactEntry[] = [];
    for (const entry of names) {
      if (entry.name.startsWith(MLFLOW_TEMP_PREFIX) || LEGACY_TEMP_NAME.test(entry.name)) continue;
      const path = joinArtifactPath(dir, entry.name);
      const full = `${absolute}${sep}${entry.name}`;
      // stat follows symlinks, as MLflow's listing does; a dangling link shows without a size.
      const info = await stat(full).catch(() => undefined);
      if (info?.isDirectory() ?? entry.isDirectory()) out.push({ path, isDir: true });
      else out.push({ path, isDir: false, ...(info ? { size: info.size } : {}) });
    }
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
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
