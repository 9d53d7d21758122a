/**
 * The part loop the chunked cloud uploads share (S3 multipart parts, Azure blocks): a file cut
 * into fixed-size byte ranges, `concurrency` workers that each read the next range into a buffer
 * of their own (reused for their next range, so one file holds at most `rangeSize ×
 * concurrency` bytes) and send it, and a stop shared by all of them: once one range fails for
 * good, or the caller aborts, no new range starts. What a range request is, how it is retried
 * and what commits the ranges afterwards stays with each store.
 *
 * @module
 */
import { combineSignals } from '../core/abort.js';
import type { OrderedSha256 } from './ordered-sha256.js';
import { readSourceRange, type SourceFile } from './source-file.js';

/**
 * The shared stop of one file's ranges: fires when the caller aborts or a range fails for good.
 * The stores' per-file request trackers extend it.
 *
 * @example
 * ```ts
 * const stop = new RangeStop(options.signal);
 * stop.fail(new Error('part 3 failed')); // stop.stopped === true, stop.signal has fired
 * ```
 */
export class RangeStop {
  /** The failure that stopped the file, when one did (an abort leaves it unset). */
  firstError?: unknown;
  private readonly controller = new AbortController();
  /** Aborts when the caller's signal does or {@link fail} is called: give it to every request. */
  readonly signal: AbortSignal;

  constructor(callerSignal?: AbortSignal) {
    this.signal = combineSignals(callerSignal, this.controller.signal) ?? this.controller.signal;
  }

  /** True once a range failed for good or the caller aborted: no new range may start. */
  get stopped(): boolean {
    return this.signal.aborted;
  }

  /** Why it stopped: the first failure, or the caller's abort reason. */
  get stopReason(): unknown {
    return this.signal.reason;
  }

  /** Stops the other ranges because of `error` (the first one wins). */
  fail(error: unknown): void {
    if (this.signal.aborted) return;
    this.firstError ??= error;
    this.controller.abort(error);
  }
}

/** Options of {@link sendFileRanges}. */
export interface SendFileRangesOptions {
  /** Bytes per range; the last one is shorter. */
  rangeSize: number;
  /** Ranges in flight at once. */
  concurrency: number;
  /** Sends range `index` (0-based); `body` is only valid until this resolves. */
  send: (index: number, body: Buffer) => Promise<void>;
  /** Bytes of the ranges sent so far (counting {@link alreadyLoaded}), after each range. */
  onProgress?: ((loaded: number) => void) | undefined;
  /** Ranges (0-based) not to send: the server already holds them (part-level resume). @default none */
  skip?: ReadonlySet<number> | undefined;
  /** Bytes of the skipped ranges, reported through `onProgress` before the first range is sent. @default 0 */
  alreadyLoaded?: number | undefined;
  /**
   * Hashes the file in order from the buffers read for sending: each range is hashed once the
   * ranges before it are (while it is sent), and a buffer is reused only after that, so memory
   * stays at `rangeSize × concurrency`. Skipped ranges are read (not sent) to be hashed, in turn,
   * by one more reader beside the workers (1 MiB at a time), so the workers send the ranges
   * after them meanwhile instead of waiting for a resumed file's kept parts to be hashed first.
   * @default none (no hash)
   */
  hasher?: OrderedSha256 | undefined;
}

/**
 * Sends every range of `source` through `options.send`, `concurrency` at a time, and returns
 * once every worker has settled (none is left in flight). A range that fails for good (or a local
 * read error, e.g. a file that shrank) stops the others through `stop` and is thrown,
 * `stop.firstError` first. When the caller aborted, it returns with `stop.stopped` set and some
 * ranges unsent: the caller checks that before committing.
 *
 * @example
 * ```ts
 * await sendFileRanges(source, requests, { rangeSize: 8 << 20, concurrency: 4, send: (i, body) => uploadPart(i + 1, body) });
 * if (requests.stopped) throw new AbortedError();
 * ```
 */
export async function sendFileRanges(source: SourceFile, stop: RangeStop, options: SendFileRangesOptions): Promise<void> {
  const { rangeSize } = options;
  const count = Math.ceil(source.size / rangeSize);
  const { skip, hasher } = options;
  let next = 0;
  let loaded = options.alreadyLoaded ?? 0;
  if (loaded > 0) options.onProgress?.(loaded);
  const worker = async (): Promise<void> => {
    let buffer: Buffer | undefined;
    while (next < count && !stop.stopped) {
      const index = next++;
      if (skip?.has(index) === true) continue;
      const start = index * rangeSize;
      const length = Math.min(rangeSize, source.size - start);
      buffer ??= Buffer.allocUnsafe(rangeSize);
      const body = await readSourceRange(source, buffer, start, length);
      if (stop.stopped) return;
      // Hashed in turn while it is sent: the buffer is free again once both are done.
      await Promise.all([options.send(index, body), hasher?.hashInTurn(start, body, stop.signal)]);
      loaded += length;
      options.onProgress?.(loaded);
    }
  };
  /** Hashes the skipped ranges from the file, each once the hash has reached it (the sent ranges before it are hashed by their workers). */
  const skippedHasher = async (): Promise<void> => {
    for (let index = 0; index < count && hasher && !stop.stopped; index++) {
      if (skip?.has(index) !== true) continue;
      const start = index * rangeSize;
      await hasher.hashInTurn(start, Buffer.alloc(0), stop.signal); // waits for its turn
      if (stop.stopped) return;
      await hasher.readUpTo(source, Math.min(start + rangeSize, source.size));
    }
  };
  const runners = [...Array.from({ length: Math.min(options.concurrency, count) }, () => worker), ...(hasher && skip && skip.size > 0 ? [skippedHasher] : [])];
  const workers = runners.map((run) =>
    run().catch((error: unknown) => {
      // A local read error stops the other ranges as a failed request does.
      stop.fail(error);
      throw error;
    }),
  );
  const settled = await Promise.allSettled(workers);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw stop.firstError ?? failed.reason;
}

