/**
 * The store for `file:` artifact URIs and plain paths (runs of a local `./mlruns` store, or a
 * server whose artifact root is a local directory): files are copied into the artifact
 * directory. Each copy streams into a temp file next to the destination and is renamed into
 * place only once complete and flushed, so a crash or an abort never leaves a half-written
 * artifact, and an existing artifact is replaced all at once.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AbortedError, LocalPathError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { assertArtifactPath, joinArtifactPath } from '../mlflow/artifacts-api.js';
import { fileUriToPath } from '../mlflow/connection.js';
import type { ArtifactEntry, ArtifactStore, ArtifactStoreContext, ArtifactStoreFactory, UploadFileOptions, UploadFileResult } from './artifact-store.js';
import { throwIfAborted } from '../core/abort.js';
import { statSourceFile, toLocalPathError } from './source-file.js';

/** Temp files start with this, so listings can leave them out. */
const TEMP_PREFIX = '.artifact-uploader-';
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

  constructor(options: LocalFileStoreOptions) {
    this.artifactUri = options.artifactUri;
    this.root = fileUriToPath(options.artifactUri, options.cwd);
    this.logger = options.logger ?? silentLogger;
  }

  describe(): string {
    return `local directory ${this.root}: atomic copy per file (temp file + rename)`;
  }

  async uploadFile(localPath: string, artifactPath: string, options: UploadFileOptions = {}): Promise<UploadFileResult> {
    assertArtifactPath(artifactPath);
    throwIfAborted(options.signal);
    const size = await statSourceFile(localPath, options.size, this.logger);
    const destination = join(this.root, ...artifactPath.split('/'));
    const directory = dirname(destination);
    try {
      await mkdir(directory, { recursive: true });
    } catch (error) {
      throw new LocalPathError('NOT_A_DIRECTORY', directory, `Cannot create the artifact directory ${directory}: ${(error as Error).message}.`, {
        hint: 'A file may already exist where a directory is needed, or the directory is not writable.',
        cause: error,
      });
    }
    const temp = join(directory, `${TEMP_PREFIX}${randomBytes(6).toString('hex')}.tmp`);
    let copied = 0;
    try {
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          copied += chunk.length;
          options.onProgress?.(copied);
          callback(null, chunk);
        },
      });
      await pipeline(
        createReadStream(localPath, { highWaterMark: COPY_CHUNK }),
        counter,
        createWriteStream(temp, { flags: 'wx' }),
        options.signal ? { signal: options.signal } : {},
      );
      // Flushed before the rename, so a crash cannot leave a renamed but empty file.
      const handle = await open(temp, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, destination);
    } catch (error) {
      await rm(temp, { force: true }).catch(() => undefined);
      if (options.signal?.aborted) {
        throw new AbortedError(`Copying ${localPath} to ${destination} was aborted; nothing was written.`, { cause: options.signal.reason });
      }
      throw toLocalPathError(error, localPath);
    }
    options.onProgress?.(copied);
    if (copied !== size) this.logger.warn(`${localPath} changed while it was copied (${size} -> ${copied} bytes).`);
    return { bytes: copied, attempts: 1, multipart: false };
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
      if (entry.name.startsWith(TEMP_PREFIX)) continue;
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
