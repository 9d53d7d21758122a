/**
 * The sha256 of a file whose byte ranges are read out of order (multipart parts and blocks read
 * in parallel, resumable chunks that are retried or only partly kept), hashed in one pass: each
 * byte goes into the hash once, in file order, from the buffers the upload reads anyway.
 *
 * - A range read at the position the hash has reached is hashed at once.
 * - A range read ahead of it is waited for ({@link OrderedSha256.hashInTurn}: the parallel part
 *   loop of `file-ranges.ts`, whose workers keep their buffer until it is hashed, so memory
 *   stays at their buffers and nothing is copied), or dropped ({@link OrderedSha256.update}, for
 *   streamed chunks whose read buffers are reused at once).
 * - Bytes never seen (dropped chunks, ranges an earlier process sent: part-level resume) are
 *   read from the local file once the upload is done ({@link OrderedSha256.digest}): a local
 *   read is cheap next to sending them again, and the hash stays one pass over the bytes.
 *
 * @module
 */
import type { Hash } from 'node:crypto';
import { createHash } from '../core/node-crypto.js';
import { combineSignals } from '../core/abort.js';
import { hashInOnePass, type ByteHash } from '../core/hash-in-one-pass.js';
import { openSourceFile, readSourceRange, type SourceFile } from './source-file.js';

/**
 * Bytes read at once when the hash is fed from the file rather than from a send's buffer: a gap
 * {@link OrderedSha256.digest} fills, the reader of a resumed upload (here, and in
 * file-ranges.ts).
 */
export const HASH_READ_BYTES = 1024 * 1024;

/**
 * An in-order sha256 over a file of known size, fed by ranges in any order.
 *
 * @example
 * ```ts
 * const hasher = new OrderedSha256(11);
 * hasher.update(0, Buffer.from('hello '));
 * hasher.update(6, Buffer.from('world'));
 * await hasher.digest('hello.txt'); // sha256 of 'hello world', nothing read from disk
 * ```
 */
export class OrderedSha256 {
  private readonly hash: Hash = createHash('sha256');
  /** Bytes `[0, hashed)` are in the hash. */
  private hashed = 0;
  /** The furthest byte any caller fed ({@link update}), hashed or dropped. */
  private fedUpTo = 0;
  private readonly waiters = new Set<{ position: number; wake: () => void }>();

  /** The hashes every byte goes into, in file order: the sha256, and `options.also` if given. */
  private readonly wholeFile: readonly ByteHash[];

  /**
   * @param size The file's size: the hash is complete at this many bytes.
   * @param options.also A second whole-file hash fed the same bytes in the same pass (in file
   *   order), for a store that compares the whole object with a figure of its own (a resumed
   *   GCS session's MD5). @default none
   */
  constructor(
    readonly size: number,
    options: { also?: ByteHash | undefined } = {},
  ) {
    this.wholeFile = options.also ? [this.hash, options.also] : [this.hash];
  }

  /** Bytes hashed so far (from the start of the file). */
  get position(): number {
    return this.hashed;
  }

  /**
   * Feeds the bytes of the file at `position`. Bytes already hashed are ignored (a retried
   * request reads them again); a chunk ahead of the hash is dropped and read again by
   * {@link digest} (the caller's buffer may be reused at once: file bodies read into two reused
   * buffers, see core/file-chunks.ts).
   */
  update(position: number, chunk: Buffer): void {
    const end = position + chunk.length;
    if (end > this.fedUpTo) this.fedUpTo = end;
    if (end <= this.hashed || chunk.length === 0 || position > this.hashed) return;
    hashInOnePass(chunk.subarray(this.hashed - position), this.wholeFile);
    this.advanced(end);
  }

  /** Bytes up to `end` are in the hash: wakes the ranges that waited for it. */
  private advanced(end: number): void {
    this.hashed = end;
    for (const waiter of this.waiters) if (waiter.position <= this.hashed) waiter.wake();
  }

  /**
   * Feeds `chunk` (the bytes at `position`) to `also` (a checksum the store sends with it), and
   * to this hash too when it is in turn (the hash has reached `position`): then in one pass over
   * the bytes ({@link hashInOnePass}). Returns whether this hash took the chunk; when it did not,
   * the caller feeds it later ({@link hashInTurn}, {@link update}).
   */
  updateAlongside(position: number, chunk: Buffer, also: ByteHash): boolean {
    if (position + chunk.length > this.fedUpTo) this.fedUpTo = position + chunk.length;
    if (position !== this.hashed || chunk.length === 0) {
      also.update(chunk);
      return false;
    }
    hashInOnePass(chunk, [...this.wholeFile, also]);
    this.advanced(position + chunk.length);
    return true;
  }

  /**
   * Waits until every byte before `position` is hashed, then hashes `chunk` (the bytes at
   * `position`), so the caller may reuse its buffer once this resolves. Resolves without
   * hashing when `signal` fires first (the upload stopped; its hash is not wanted).
   */
  async hashInTurn(position: number, chunk: Buffer, signal: AbortSignal): Promise<void> {
    if (position > this.hashed) {
      await new Promise<void>((resolve) => {
        const waiter = {
          position,
          wake: () => {
            this.waiters.delete(waiter);
            signal.removeEventListener('abort', waiter.wake);
            resolve();
          },
        };
        this.waiters.add(waiter);
        signal.addEventListener('abort', waiter.wake, { once: true });
        if (signal.aborted) waiter.wake();
      });
      if (position > this.hashed) return;
    }
    this.update(position, chunk);
  }

  /**
   * Hashes the bytes before `end` not fed yet by reading them from `source` (a path, or an open
   * file): e.g. the part of a resumable upload an earlier process sent, before this process
   * sends the rest. Bytes fed meanwhile ({@link update}) are not read again. Returns early,
   * short of `end`, once `signal` fires (the upload stopped), or, with `caughtUpFrom`, once the
   * hash has reached that position and every byte fed so far: from there a caller that feeds
   * the file in order (a resumed session's chunks, from `caughtUpFrom` on) is in turn, so
   * nothing it reads needs reading again. Throws the source file's `LocalPathError` when it can
   * no longer be read.
   */
  async readUpTo(source: SourceFile | string, end: number, signal?: AbortSignal, caughtUpFrom?: number): Promise<void> {
    // How far to read now: to `end`, or with `caughtUpFrom` no further than the bytes fed so far.
    const until = () => (caughtUpFrom === undefined ? end : Math.min(end, Math.max(caughtUpFrom, this.fedUpTo)));
    if (this.hashed >= until()) return;
    const file: SourceFile = typeof source === 'string' ? { handle: await openSourceFile(source), path: source, size: this.size } : source;
    try {
      const buffer = Buffer.allocUnsafe(Math.min(HASH_READ_BYTES, end - this.hashed));
      while (this.hashed < until() && signal?.aborted !== true) {
        const length = Math.min(buffer.length, until() - this.hashed);
        this.update(this.hashed, await readSourceRange(file, buffer, this.hashed, length));
      }
    } finally {
      if (typeof source === 'string') await file.handle.close().catch(() => undefined);
    }
  }

  /**
   * Completes the hash: bytes not fed yet are read from `source` ({@link readUpTo}), then the
   * hex digest is returned.
   */
  async digest(source: SourceFile | string): Promise<string> {
    await this.readUpTo(source, this.size);
    return this.hash.digest('hex');
  }
}

/**
 * Runs `send` (the rest of a resumed upload, sent in file order from `options.sendsFrom`) while
 * one more reader hashes the file into `hasher` from its start: the bytes an earlier process
 * sent, then whatever `send` read before the hash reached it (it feeds
 * {@link OrderedSha256.update}, which drops such bytes). So the first request goes at once
 * instead of after the kept bytes are hashed, as the part loops do it (stores/file-ranges.ts).
 * Once the reader has caught up with what `send` read, it stops: `send`'s later reads are in
 * turn and hashed as they come, so the file is read once beyond that point. `send` awaits
 * `beforeLastRequest` before the request that makes the object (GCS's last chunk): a read error
 * of the reader then stops the upload before the object exists, and is what is thrown. A
 * failed send stops the reader.
 *
 * @example
 * ```ts
 * const object = await sendHashingBeside(hasher, localPath, { signal, sendsFrom: offset }, ({ signal, beforeLastRequest }) =>
 *   sendResumableChunks(requester, session, source, offset, chunkSize, { signal, beforeLastChunk: beforeLastRequest }),
 * );
 * ```
 */
export async function sendHashingBeside<T>(
  hasher: OrderedSha256,
  source: SourceFile | string,
  options: {
    signal?: AbortSignal | undefined;
    /** Where `send` starts reading the file; it feeds `hasher` in order from there. @default the file's size (the reader reads the whole file) */
    sendsFrom?: number | undefined;
  },
  send: (sending: { signal?: AbortSignal; beforeLastRequest: () => Promise<void> }) => Promise<T>,
): Promise<T> {
  const { signal } = options;
  const reader = new AbortController();
  let readFailure: { error: unknown } | undefined;
  const hashed = hasher.readUpTo(source, hasher.size, reader.signal, options.sendsFrom ?? hasher.size).catch((error: unknown) => {
    readFailure = { error };
    reader.abort(error);
  });
  try {
    return await send({
      signal: combineSignals(signal, reader.signal),
      beforeLastRequest: async () => {
        await hashed;
        if (readFailure) throw readFailure.error;
      },
    });
  } catch (error) {
    throw readFailure ? readFailure.error : error;
  } finally {
    reader.abort();
    await hashed;
  }
}
