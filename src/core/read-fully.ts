/**
 * The one loop that reads a byte range of a file whole: a positioned read may return fewer
 * bytes than asked (signals, network file systems), so it is repeated until the range is full
 * or the file ends. What a file that ends early means is the caller's to say: a shrinking
 * upload source, a truncated safetensors file, or "send what is there".
 *
 * @module
 */

/** A positioned read, as `FileHandle.read` and a promisified `fs.read` both offer it. */
export type PositionedRead = (buffer: Uint8Array, offset: number, length: number, position: number) => Promise<{ bytesRead: number }>;

/**
 * Reads `length` bytes at file `position` into `buffer` from `offset`, until they are all there
 * or the file ends. Returns the bytes read: less than `length` only when the file ended first.
 * Errors of `read` are passed on as they are.
 *
 * @example
 * ```ts
 * const handle = await open('weights.safetensors', 'r');
 * const buffer = Buffer.alloc(8);
 * const got = await readFully((b, o, l, p) => handle.read(b, o, l, p), buffer, 0, 8, 0);
 * if (got < 8) throw new Error('the file ended inside its header length');
 * ```
 */
export async function readFully(read: PositionedRead, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await read(buffer, offset + done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}
