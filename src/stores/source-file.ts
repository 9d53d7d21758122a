/**
 * Checks a local file before a store uploads it, so a missing or unreadable file fails with a
 * {@link LocalPathError} that names it instead of an `ENOENT` from deep inside a stream.
 *
 * @module
 */
import { close, constants, fstat, open as openFd, read, type BigIntStats } from 'node:fs';
import { access, open, stat, type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import { LocalPathError, sourceShrankError, toLocalPathError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { readFully } from '../core/read-fully.js';

export { toLocalPathError };

/**
 * Stats `localPath` and returns its current size. Throws `PATH_NOT_FOUND`, `NOT_A_FILE` or
 * `PATH_UNREADABLE`; logs a warning when the size differs from what a plan expected.
 *
 * @example
 * ```ts
 * const size = await statSourceFile('out/model.onnx', plannedSize, logger);
 * ```
 */
export async function statSourceFile(localPath: string, expectedSize: number | undefined, logger: Logger): Promise<number> {
  return (await statSource(localPath, expectedSize, logger)).size;
}

/** {@link statSourceFile}, giving the {@link SourceRead} of a file to be streamed (its size and attributes). */
async function statSource(localPath: string, expectedSize: number | undefined, logger: Logger): Promise<SourceRead> {
  let info: BigIntStats;
  try {
    info = await stat(localPath, { bigint: true });
    if (!info.isFile()) throw notAFileError(localPath);
    await access(localPath, constants.R_OK);
  } catch (error) {
    throw toLocalPathError(error, localPath);
  }
  const size = Number(info.size);
  if (expectedSize !== undefined && expectedSize !== size) {
    logger.warn(`${localPath} changed size since it was planned (${expectedSize} -> ${size} bytes); uploading its current content.`);
  }
  return { size, attributes: sourceAttributes(info) };
}

/** The error of a source that is not a regular file (a directory, a FIFO, a socket, a device). */
function notAFileError(localPath: string): LocalPathError {
  return new LocalPathError('NOT_A_FILE', localPath, `${localPath} is not a regular file.`, {
    hint: 'Upload a directory with planDirectory + uploadPlannedFiles, or pass the path of a file.',
  });
}

/** The attributes a local copy keeps, from the stat the read already made. */
function sourceAttributes(info: BigIntStats): SourceAttributes {
  return { mode: Number(info.mode) & 0o7777, atimeNs: info.atimeNs, mtimeNs: info.mtimeNs };
}

const openAsync = promisify(openFd);
const fstatAsync = promisify(fstat);
const readAsync = promisify(read);
const closeAsync = promisify(close);

/**
 * Files up to this size are read into memory in one go by {@link readSmallSourceFile}
 * instead of being streamed: one read at most, like the 1 MiB chunks of a streamed body.
 */
export const SMALL_FILE_BYTES = 1024 * 1024;

/**
 * What a local copy keeps of its source besides the bytes, as MLflow's `LocalArtifactRepository`
 * does (`shutil.copystat` in `log_artifact`, `shutil.copy2` in `log_artifacts`): the permission
 * bits and the access and modification times. Taken from the `stat` that checks the file before
 * it is read, so it costs no call of its own.
 */
export interface SourceAttributes {
  /** Permission bits, setuid, setgid and sticky included (`st_mode & 0o7777`, Python's `S_IMODE`). */
  mode: number;
  /** Access time, in ns since the epoch. */
  atimeNs: bigint;
  /** Modification time, in ns since the epoch. */
  mtimeNs: bigint;
}

/** A source file as {@link readSourceIfSmall} left it: its size, and its bytes when it was read whole. */
export interface SourceRead {
  size: number;
  /** The whole file, when it was small ({@link SMALL_FILE_BYTES}); else it is streamed. */
  bytes?: Buffer;
  /** Its mode and times when it was checked. */
  attributes: SourceAttributes;
}

/**
 * Reads a small file whole, with the checks of {@link statSourceFile} and fewer file system
 * calls (open, fstat, read, close instead of stat, access, then a stream's open, read and
 * close). Returns the size, and the bytes unless the file is bigger than
 * {@link SMALL_FILE_BYTES} (stream that one). Throws what {@link statSourceFile} throws.
 *
 * @example
 * ```ts
 * const { size, bytes } = await readSmallSourceFile('out/metrics.json', plannedSize, logger);
 * await http.request({ method: 'PUT', url, body: bytes ?? { kind: 'file', path: 'out/metrics.json', length: size } });
 * ```
 */
export async function readSmallSourceFile(
  localPath: string,
  expectedSize: number | undefined,
  logger: Logger,
): Promise<SourceRead> {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below as NOT_A_FILE).
    fd = await openAsync(localPath, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    // statSource names the problem (missing, unreadable, a socket, ...) as it always did.
    return statSource(localPath, expectedSize, logger);
  }
  try {
    let info: BigIntStats;
    try {
      info = await fstatAsync(fd, { bigint: true });
    } catch (error) {
      throw toLocalPathError(error, localPath);
    }
    if (!info.isFile()) throw notAFileError(localPath);
    const size = Number(info.size);
    if (expectedSize !== undefined && expectedSize !== size) {
      logger.warn(`${localPath} changed size since it was planned (${expectedSize} -> ${size} bytes); uploading its current content.`);
    }
    const attributes = sourceAttributes(info);
    if (size > SMALL_FILE_BYTES) return { size, attributes };
    const bytes = Buffer.allocUnsafe(size);
    let filled: number;
    try {
      filled = await readFully((b, o, l, p) => readAsync(fd, b, o, l, p), bytes, 0, bytes.length, 0);
    } catch (error) {
      throw toLocalPathError(error, localPath);
    }
    // A file that shrank after fstat is sent as it is now.
    const body = filled === bytes.length ? bytes : bytes.subarray(0, filled);
    return { size: body.length, bytes: body, attributes };
  } finally {
    await closeAsync(fd).catch(() => undefined);
  }
}

/**
 * What a store that sends small files from memory does first: a file planned (`expectedSize`)
 * or found at most {@link SMALL_FILE_BYTES} is read whole ({@link readSmallSourceFile}); one
 * planned bigger is only stat'ed ({@link statSourceFile}), to be streamed. Returns the size, and
 * the bytes when the file was read. Throws what {@link statSourceFile} throws.
 *
 * @example
 * ```ts
 * const { size, bytes } = await readSourceIfSmall('out/metrics.json', plannedSize, logger);
 * ```
 */
export async function readSourceIfSmall(localPath: string, expectedSize: number | undefined, logger: Logger): Promise<SourceRead> {
  if (expectedSize !== undefined && expectedSize > SMALL_FILE_BYTES) return statSource(localPath, expectedSize, logger);
  return readSmallSourceFile(localPath, expectedSize, logger);
}

/**
 * Opens `localPath` for reading; an fs error becomes the {@link LocalPathError} that names it.
 *
 * @example
 * ```ts
 * const handle = await openSourceFile('out/model.bin');
 * ```
 */
export async function openSourceFile(localPath: string): Promise<FileHandle> {
  try {
    return await open(localPath, 'r');
  } catch (error) {
    throw toLocalPathError(error, localPath);
  }
}

/** An open local file being uploaded. */
export interface SourceFile {
  handle: FileHandle;
  path: string;
  /** Bytes to send: the size stat'ed before the upload, even if the file grows meanwhile. */
  size: number;
}

/**
 * Reads exactly `length` bytes at `position` of an open upload source into the start of
 * `buffer` and returns that view. A file that shrank under the upload is a
 * {@link LocalPathError} (`PATH_UNREADABLE`), not a short request the store would refuse.
 *
 * @example
 * ```ts
 * const source = { handle: await openSourceFile('model.bin'), path: 'model.bin', size };
 * const block = await readSourceRange(source, Buffer.allocUnsafe(blockSize), 0, blockSize);
 * ```
 */
export async function readSourceRange(source: SourceFile, buffer: Buffer, position: number, length: number): Promise<Buffer> {
  let filled: number;
  try {
    filled = await readFully((b, o, l, p) => source.handle.read(b, o, l, p), buffer, 0, length, position);
  } catch (error) {
    throw toLocalPathError(error, source.path);
  }
  if (filled < length) throw sourceShrankError(source.path, source.size, position + filled);
  return buffer.subarray(0, length);
}
