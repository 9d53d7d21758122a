/**
 * Checks a local file before a store uploads it, so a missing or unreadable file fails with a
 * {@link LocalPathError} that names it instead of an `ENOENT` from deep inside a stream.
 *
 * @module
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { AbortedError, LocalPathError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';

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
  let size: number;
  try {
    const info = await stat(localPath);
    if (!info.isFile()) {
      throw new LocalPathError('NOT_A_FILE', localPath, `${localPath} is not a regular file.`, {
        hint: 'Upload a directory with planDirectory + uploadPlannedFiles, or pass the path of a file.',
      });
    }
    size = info.size;
    await access(localPath, constants.R_OK);
  } catch (error) {
    throw toLocalPathError(error, localPath);
  }
  if (expectedSize !== undefined && expectedSize !== size) {
    logger.warn(`${localPath} changed size since it was planned (${expectedSize} -> ${size} bytes); uploading its current content.`);
  }
  return size;
}

/**
 * Maps an fs error about `localPath` to a {@link LocalPathError}; passes others through.
 *
 * @example
 * ```ts
 * try { await readFile(p); } catch (e) { throw toLocalPathError(e, p); }
 * ```
 */
export function toLocalPathError(error: unknown, localPath: string): unknown {
  if (error instanceof LocalPathError) return error;
  const code = (error as { code?: unknown }).code;
  if (code === 'ENOENT') {
    return new LocalPathError('PATH_NOT_FOUND', localPath, `${localPath} does not exist.`, {
      hint: 'Check the path (relative paths are resolved against the working directory).',
      cause: error,
    });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new LocalPathError('PATH_UNREADABLE', localPath, `${localPath} cannot be read (${code}).`, {
      hint: 'Fix its permissions (chmod u+r) or exclude it.',
      cause: error,
    });
  }
  return error;
}

/**
 * Throws an {@link AbortedError} when `signal` has fired.
 *
 * @example
 * ```ts
 * throwIfAborted(options.signal, 'The copy');
 * ```
 */
export function throwIfAborted(signal: AbortSignal | undefined, what = 'The upload'): void {
  if (signal?.aborted) throw new AbortedError(`${what} was aborted.`, { cause: signal.reason });
}
