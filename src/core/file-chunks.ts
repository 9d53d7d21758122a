/**
 * A byte range of a local file as the chunks a request body is sent in, read into two buffers
 * that take turns: while one chunk is being sent, the next is read into the other. A file
 * stream (`fs.createReadStream`) allocates a fresh buffer for every read, and a gigabyte of
 * 1 MiB buffers left for the garbage collector cost more client CPU than the reads themselves;
 * two buffers per body cost nothing after the first chunk.
 *
 * Reusing a buffer is only safe once the bytes it held have left the process. The chunks are
 * an async iterable, so the consumer asks for chunk `n + 1` only when it is done with chunk
 * `n`, and only then is chunk `n`'s buffer read into again. `HttpClient`'s body writer
 * (`writeChunks` in core/http.ts, over Node's `http`) asks for the next chunk once the last
 * write's callback has fired: libuv has handed the bytes to the kernel by then. undici's (the
 * Hub's uploads, through `HttpClient.fetch`) asks once `socket.write()` has returned `true` or,
 * when it returned `false`, once the socket has emitted `drain`. A chunk larger than the
 * socket's high-water mark (16 KiB on Node 20, 64 KiB on 22 and later; chunks here are at least
 * 1 MiB) always makes `write()` return `false`, and `drain` comes only after every write's
 * callback has fired (the socket's buffered length is back to 0).
 *
 * @module
 */
import { open, type FileHandle } from 'node:fs/promises';
import { sourceShrankError, toLocalPathError, type LocalPathError } from './errors.js';
import { readFully } from './read-fully.js';

/**
 * Bytes per chunk of a file request body (and of {@link LocalFileBlob} streams): each body
 * holds two buffers of this size while it is sent.
 */
export const FILE_CHUNK_BYTES = 2 * 1024 * 1024;

/** Options of {@link readFileChunks}. */
export interface ReadFileChunksOptions {
  /**
   * Sees every chunk, in file order, as soon as it is read: before the consumer asks for it,
   * while the chunk before it is still being sent (a hash, a byte count). The chunk's bytes are
   * only valid during the call. A consumer that stops early may leave one chunk seen but never
   * sent.
   */
  onChunk?: (chunk: Buffer) => void;
  /** @default FILE_CHUNK_BYTES */
  chunkBytes?: number;
}

/** Chunk buffers of finished bodies, for the next ones (at most {@link SPARE_MAX}). */
const spare: Buffer[] = [];
/** 16 MiB: four file bodies sent at once (files, GCS chunks, Hub LFS uploads), two buffers each, allocate nothing after their first. */
const SPARE_MAX = 8;
/**
 * A finished body's last chunk is only known to have left the socket, under undici's writer,
 * when undici waited for `drain` after it, which it does for a chunk bigger than the socket's
 * high-water mark (at most 64 KiB); a shorter last chunk may still be in flight when the body
 * ends, so its buffer is left to the garbage collector instead of being reused.
 */
const SAFE_LAST_CHUNK = 1024 * 1024;

/**
 * Yields bytes `[start, start + length)` of `path` in chunks of `chunkBytes` (the last one
 * shorter). Each chunk is a view of one of two reused buffers: it stays valid until the
 * consumer asks for the next chunk, never longer. Bodies read in the default chunk size take
 * their buffers from a small shared pool and give them back when the consumer has read every
 * chunk (not when it stops early: its socket may still hold them). Throws a
 * {@link LocalPathError} (`PATH_UNREADABLE`) when the file ends before the range does (it
 * shrank under the upload), `PATH_NOT_FOUND` / `PATH_UNREADABLE` when it cannot be opened. The
 * file is closed when the consumer finishes, stops early (`return()`), or a read fails.
 *
 * @example
 * ```ts
 * const hash = createHash('sha256');
 * for await (const chunk of readFileChunks('model.bin', 0, size, { onChunk: (c) => hash.update(c) })) {
 *   await send(chunk); // done with it before the next one is read into the same memory
 * }
 * ```
 */
export async function* readFileChunks(path: string, start: number, length: number, options: ReadFileChunksOptions = {}): AsyncGenerator<Buffer, void, undefined> {
  if (length <= 0) return;
  const pooled = options.chunkBytes === undefined || options.chunkBytes === FILE_CHUNK_BYTES;
  const chunkBytes = pooled ? FILE_CHUNK_BYTES : Math.min(options.chunkBytes!, length);
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw toLocalPathError(error, path);
  }
  const take = () => (pooled ? spare.pop() : undefined) ?? Buffer.allocUnsafeSlow(chunkBytes);
  const buffers = [take()];
  const end = start + length;
  let position = start;
  const readNext = async (buffer: Buffer): Promise<Buffer> => {
    const at = position;
    const want = Math.min(chunkBytes, end - at);
    position += want;
    let got: number;
    try {
      got = await readFully((b, o, l, p) => handle.read(b, o, l, p), buffer, 0, want, at);
    } catch (error) {
      throw toLocalPathError(error, path);
    }
    if (got < want) throw sourceShrankError(path, end, at + got);
    const chunk = buffer.subarray(0, want);
    // Seen (hashed) as soon as it is read, while the chunk before it is still being sent: not
    // between the consumer asking for it and getting it, where it would stall the socket.
    options.onChunk?.(chunk);
    return chunk;
  };
  let pending: Promise<Buffer> | undefined = readNext(buffers[0]!);
  let last: Buffer | undefined;
  let finished = false;
  try {
    for (let n = 1; pending; n++) {
      const chunk: Buffer = await pending;
      pending = undefined;
      if (position < end) {
        // Read ahead into the other buffer: the one yielded last time is free again, because the
        // consumer asked for this chunk.
        const next = (buffers[n % 2] ??= take());
        pending = readNext(next);
        // A read that fails while the consumer still holds this chunk is reported when it is
        // awaited (or dropped in `finally`), never as an unhandled rejection.
        pending.catch(() => undefined);
      }
      last = chunk;
      yield chunk;
    }
    finished = true;
  } finally {
    // A consumer that stops early may leave a read in flight: it must end before the file closes.
    await pending?.catch(() => undefined);
    await handle.close().catch(() => undefined);
    if (pooled && finished) {
      for (const buffer of buffers) {
        const holdsLast = last !== undefined && buffer.buffer === last.buffer;
        if (buffer && (!holdsLast || last!.length >= SAFE_LAST_CHUNK) && spare.length < SPARE_MAX) spare.push(buffer);
      }
    }
  }
}
