/**
 * A `Blob` over a range of a local file that is read lazily and fast: `stream()` yields 256 KiB
 * chunks straight from `fs` (the `FileBlob` of `@huggingface/hub` yields 64 KiB web-stream
 * chunks), small files are read once and kept, and {@link HttpClient.fetch} sends a
 * `LocalFileBlob` body from the file ({@link LocalFileBlob.chunks}) with `Content-Length` instead
 * of going through `fetch`'s Blob machinery.
 *
 * A file kept in memory (a small one once read, or any after {@link LocalFileBlob.load}) is
 * served from that copy by every read, `stream()` and `chunks()` included: what a client hashes
 * from `arrayBuffer()` and what it then sends as a request body are the same bytes, whatever
 * happens to the file on disk in between.
 *
 * @module
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { FILE_CHUNK_BYTES, readFileChunks } from './file-chunks.js';
import { readFully } from './read-fully.js';

/**
 * Read size of {@link LocalFileBlob.stream} (the Hub client's oid pass over every LFS file).
 * Each chunk is a fresh buffer (a stream's consumer owns what it is given), and fresh 1 MiB
 * buffers cost more than their reads: hashing 1 GiB through `Readable.fromWeb` took 0.96–1.00 s
 * with 1 MiB chunks, 0.85–0.89 s with 256 KiB (Node 24: 1.03–1.06 s against 0.81), 0.79–0.82 s
 * with buffers reused (which a `Blob` may not do); 64 KiB chunks cost 1.13–1.17 s.
 */
export const FILE_READ_CHUNK = 256 * 1024;
/** Whole files up to this size are read once and kept in memory (model cards, configs, JSON). */
const CACHE_MAX_BYTES = 256 * 1024;

/** A lazily read range `[start, end)` of a local file. */
export class LocalFileBlob extends Blob {
  /**
   * Contents of the whole file once read (small files, or any file after {@link load}), and the
   * read in progress; shared with slices.
   */
  private cache: { bytes?: Uint8Array<ArrayBuffer>; loading?: Promise<Uint8Array<ArrayBuffer>> } = {};

  private constructor(
    /** Absolute local path. */
    readonly path: string,
    /** First byte of the range. */
    readonly start: number,
    /** Byte after the range. */
    readonly end: number,
    /** Size of the whole file, as seen when the blob was made. */
    private readonly fileSize: number,
  ) {
    super([]);
  }

  /** A blob of the whole file (`size` from `stat` unless given). */
  static async fromPath(path: string, size?: number): Promise<LocalFileBlob> {
    const fileSize = size ?? (await stat(path)).size;
    return new LocalFileBlob(path, 0, fileSize, fileSize);
  }

  /** True when the whole file is small enough to be kept in memory once read. */
  get cached(): boolean {
    return this.fileSize <= CACHE_MAX_BYTES;
  }

  /** True once the whole file is in memory: every read of this blob and its slices is served from there. */
  get loaded(): boolean {
    return this.cache.bytes !== undefined;
  }

  /**
   * Reads the whole file into memory (once; whatever its size) and keeps it, for this blob and
   * its slices: from then on nothing reads the file again. For a file whose bytes must be read
   * before they are checked and then sent as they were (see hub/publish.ts).
   *
   * @throws Error when the file is shorter than its size as seen when the blob was made (it changed).
   */
  async load(): Promise<void> {
    this.cache.loading ??= readRange(this.path, 0, this.fileSize).then(
      (bytes) => (this.cache.bytes = bytes),
      (error: unknown) => {
        this.cache.loading = undefined;
        throw error;
      },
    );
    await this.cache.loading;
  }

  /** The range from memory: the cache when loaded, else (small files) after loading it. */
  private async fromMemory(): Promise<Uint8Array<ArrayBuffer>> {
    if (!this.cache.bytes) await this.load();
    return this.cache.bytes!.subarray(this.start, this.end);
  }

  /** Whether reads are served from memory (kept, or small enough to be kept once read). */
  private get inMemory(): boolean {
    return this.cache.bytes !== undefined || this.cached;
  }

  // @ts-expect-error Blob declares `size` and `type` as properties; at runtime they are prototype getters, which these replace.
  override get size(): number {
    return this.end - this.start;
  }

  // @ts-expect-error see `size`
  override get type(): string {
    return '';
  }

  /** A sub-range (`start` inclusive, `end` exclusive); negative offsets count from the end, as for `Blob`. */
  override slice(start = 0, end = this.size): LocalFileBlob {
    const clamp = (n: number) => Math.min(Math.max(n < 0 ? this.size + n : n, 0), this.size);
    const from = clamp(start);
    const to = Math.max(clamp(end), from);
    const blob = new LocalFileBlob(this.path, this.start + from, this.start + to, this.fileSize);
    blob.cache = this.cache;
    return blob;
  }

  override async arrayBuffer(): Promise<ArrayBuffer> {
    const bytes = await this.bytes();
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  }

  override async bytes(): Promise<Uint8Array<ArrayBuffer>> {
    if (this.inMemory) return this.fromMemory();
    return readRange(this.path, this.start, this.size);
  }

  override async text(): Promise<string> {
    return Buffer.from(await this.bytes()).toString('utf8');
  }

  /**
   * The range in {@link FILE_READ_CHUNK} chunks, read one chunk ahead of the consumer (so memory
   * stays flat); from memory when the file is kept there (each chunk a copy: a stream's
   * consumer owns what it is given).
   */
  override stream(): ReadableStream<Uint8Array<ArrayBuffer>> {
    if (this.inMemory) {
      let position = 0;
      return new ReadableStream<Uint8Array<ArrayBuffer>>(
        {
          pull: async (controller) => {
            const bytes = await this.fromMemory();
            if (position >= bytes.byteLength) {
              controller.close();
              return;
            }
            controller.enqueue(bytes.slice(position, position + FILE_READ_CHUNK));
            position += FILE_READ_CHUNK;
          },
        },
        { highWaterMark: 1 },
      );
    }
    const { path, end } = this;
    let position = this.start;
    let handle: FileHandle | undefined;
    const close = async () => {
      const open = handle;
      handle = undefined;
      await open?.close();
    };
    return new ReadableStream<Uint8Array<ArrayBuffer>>(
      {
        async pull(controller) {
          try {
            const length = Math.min(FILE_READ_CHUNK, end - position);
            if (length <= 0) {
              await close();
              controller.close();
              return;
            }
            handle ??= await open(path, 'r');
            // Not zero-filled: every byte is read into it before it is handed on.
            const chunk = Buffer.allocUnsafeSlow(length) as Uint8Array<ArrayBuffer>;
            const reader = handle;
            const done = await readFully((b, o, l, p) => reader.read(b, o, l, p), chunk, 0, length, position);
            if (done < length) throw new Error(`${path} ended after ${position + done} bytes; it changed while being read.`);
            position += length;
            controller.enqueue(chunk);
          } catch (error) {
            await close().catch(() => undefined);
            throw error;
          }
        },
        cancel: close,
      },
      { highWaterMark: 1 },
    );
  }

  /**
   * The range as the chunks of a request body (see {@link readFileChunks}: each chunk is only
   * valid until the next one is asked for); an empty range yields nothing. From memory when the
   * file is kept there, so that a body sends the very bytes `arrayBuffer()` gave (the Hub client
   * hashes those into the LFS oid the upload must match).
   */
  chunks(): AsyncGenerator<Buffer, void, undefined> {
    if (this.inMemory) return this.chunksFromMemory();
    return readFileChunks(this.path, this.start, this.size);
  }

  private async *chunksFromMemory(): AsyncGenerator<Buffer, void, undefined> {
    const bytes = await this.fromMemory();
    for (let offset = 0; offset < bytes.byteLength; offset += FILE_CHUNK_BYTES) {
      yield Buffer.from(bytes.buffer, bytes.byteOffset + offset, Math.min(FILE_CHUNK_BYTES, bytes.byteLength - offset));
    }
  }
}

async function readRange(path: string, start: number, length: number): Promise<Uint8Array<ArrayBuffer>> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const done = await readFully((b, o, l, p) => handle.read(b, o, l, p), buffer, 0, length, start);
    if (done < length) throw new Error(`${path} ended after ${start + done} bytes; it changed while being read.`);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, length) as Uint8Array<ArrayBuffer>;
  } finally {
    await handle.close();
  }
}
