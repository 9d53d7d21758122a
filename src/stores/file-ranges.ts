/**
 * The part loop the chunked cloud uploads share (S3 multipart parts, the MLflow proxy's
 * multipart parts, Azure blocks): a file cut into fixed-size byte ranges, each read into a
 * buffer (reused for a later range) and sent, as many at once as the file's limit allows, and a
 * stop shared by all of them: once one range fails for good, or the caller aborts, no new range
 * starts. What a range request is, how it is retried and what commits the ranges afterwards
 * stays with each store.
 *
 * How many ranges are in flight is either fixed (a number) or an {@link AdaptiveLimit} that
 * starts there and follows the link: through a long round trip each part on a new connection
 * spends most of its time in TCP slow start, so more parts at once pay off; on loopback the
 * server is the limit and the number stays where it started. Memory stays bounded whatever the
 * limit: a file always holds its starting number of buffers (`rangeSize × initial`, as it did
 * before parts adapted), and every buffer beyond that is drawn from one process-wide budget of
 * {@link PART_BUFFER_BUDGET_BYTES} shared by all files' part loops (the starting buffers count
 * toward it too), so growth never takes memory past it.
 *
 * @module
 */
import { constants as bufferConstants } from 'node:buffer';
import { AdaptiveLimit } from '../core/adaptive-limit.js';
import { ByteBudget } from '../core/byte-budget.js';
import { combineSignals } from '../core/abort.js';
import type { ByteHash } from '../core/hash-in-one-pass.js';
import type { Logger } from '../core/logger.js';
import { HASH_READ_BYTES, type OrderedSha256 } from './ordered-sha256.js';
import { readSourceRange, type SourceFile } from './source-file.js';

/**
 * Bytes of part buffers that all files' part loops together may hold (128 MiB; each file's
 * starting share counts toward it but is always granted): what lets parts in flight grow on a
 * slow link. With 8 MiB `s3://` parts that is up to 16 parts of one file, as many as
 * {@link MAX_ADAPTIVE_PARTS_IN_FLIGHT}; with the proxy's 10 MiB parts, 12. At 64 MiB one file
 * stopped at 8 parts of 8 MiB, where an 80 ms link to moto still paid for 10 (6.5 s against
 * 7.3 s for 1 GiB: docs/benchmarks-history.md, "Adaptive concurrency measured by Little's law").
 */
export const PART_BUFFER_BUDGET_BYTES = 128 * 1024 * 1024;

/** The most parts of one file in flight that the default, adaptive part concurrency grows to. */
export const MAX_ADAPTIVE_PARTS_IN_FLIGHT = 16;

/**
 * The largest range this module sends: each is read into one Buffer, and Node 20 caps a Buffer
 * at 4 GiB (later lines allow more). A larger part failed mid-upload, after the multipart upload
 * was created, with a bare RangeError; the stores refuse such a part size up front.
 */
export const LARGEST_RANGE_BYTES: number = bufferConstants.MAX_LENGTH;

/**
 * How much each step up multiplies a file's parts in flight by (4 → 6 → 9 → 14 → 16), as files
 * grow. It was a quarter (4 → 5 → 7 → 9 → 12 → 15), so that a step that does not pay off
 * (loopback) cost only a part buffer or two for a moment; but each step is measured over as many
 * parts as are then in flight, after those started before it, so a 1 GiB file through an 80 ms
 * link spent most of its parts getting there (7.4–7.6 s against 7.1–7.3 s with half). A step
 * that does not pay off still only borrows buffers from the budget, for one window.
 */
export const PART_GROWTH_FACTOR = 1.5;

/** The process-wide budget of part buffers ({@link PART_BUFFER_BUDGET_BYTES}). */
const partBuffers = new ByteBudget(PART_BUFFER_BUDGET_BYTES);

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

  /**
   * A request of this file was answered with a throttling status (429, 503 SlowDown: see
   * `isThrottlingError` in core/retry.ts): an adaptive limit of its ranges in flight halves and
   * grows no more, fixed or not (as the limit on files does).
   */
  throttled(): void {
    this.rangeLimit?.throttled();
  }

  /** The limit of the file's ranges in flight, set by {@link sendFileRanges} while it runs. */
  rangeLimit?: AdaptiveLimit;
}

/** A checksum a store sends with each range (S3's part CRC32, Azure's block MD5). */
export interface RangeChecksum extends ByteHash {
  /** The checksum of the bytes fed, asked once. */
  digest(): Buffer;
}

/**
 * The check of one skipped range (a part the server kept from an earlier attempt) against the
 * file's bytes there now: see {@link SendFileRangesOptions.checkSkipped}.
 */
export interface SkippedRangeCheck {
  /** Fed the range's bytes, in order, in one pass with the file's sha256. */
  checksum: RangeChecksum;
  /** Called with the checksum's digest once the whole range is fed; throws (or rejects) when the server holds other bytes. */
  check(digest: Buffer): void | Promise<void>;
}

/** Options of {@link sendFileRanges}. */
export interface SendFileRangesOptions {
  /** Bytes per range; the last one is shorter. */
  rangeSize: number;
  /**
   * Ranges in flight at the start: a number (growing up to {@link maxConcurrency} while more in
   * flight pay off, by {@link PART_GROWTH_FACTOR} a step), or an {@link AdaptiveLimit} of the
   * caller's. The caller reports throttling answers through `stop.throttled()`
   * ({@link RangeStop.throttled}).
   */
  concurrency: number | AdaptiveLimit;
  /** The most ranges in flight a numeric `concurrency` may grow to. @default concurrency (fixed) */
  maxConcurrency?: number | undefined;
  /**
   * Where buffers beyond the limit's initial number come from.
   * @default the process-wide budget of {@link PART_BUFFER_BUDGET_BYTES}
   */
  budget?: ByteBudget | undefined;
  /** Told (debug) how far the number of ranges in flight grew, when it did. @default silent */
  logger?: Logger | undefined;
  /** What the ranges are, for that message. @default 'ranges' */
  label?: string | undefined;
  /**
   * Sends range `index` (0-based); `body` is only valid until this resolves. `checksum` is the
   * range's {@link rangeChecksum}, when there is one. Resolves `'held'` when it sent nothing
   * because the server already holds these very bytes (a part a killed attempt stored, whose
   * answer was lost: see `holdsBytes` in s3-resume.ts): the range counts as loaded, hashed as
   * any other, but not as a request the limit measures.
   */
  send: (index: number, body: Buffer, checksum: Buffer | undefined) => Promise<void | 'held'>;
  /**
   * A new checksum for each range, to send with it: computed as soon as the range is read, in
   * the same pass over its bytes as the file's sha256 when the range is in turn for that
   * (`OrderedSha256.updateAlongside`, see core/hash-in-one-pass.ts), which is almost always.
   * @default none
   */
  rangeChecksum?: (() => RangeChecksum) | undefined;
  /** Bytes of the ranges sent so far (counting {@link alreadyLoaded}), after each range. */
  onProgress?: ((loaded: number) => void) | undefined;
  /** Ranges (0-based) not to send: the server already holds them (part-level resume). @default none */
  skip?: ReadonlySet<number> | undefined;
  /** Bytes of the skipped ranges, reported through `onProgress` before the first range is sent. @default 0 */
  alreadyLoaded?: number | undefined;
  /**
   * Hashes the file in order. Without {@link skip}: from the buffers read for sending, each
   * range once the ranges before it are (while it is sent), a buffer reused only after that, so
   * no byte is read twice and memory stays at one buffer per range in flight.
   *
   * With ranges skipped (a resumed upload), their bytes must be read from the file to be hashed,
   * and a range sent after them could only be hashed once they were: holding its buffer until
   * then stalled the sends for as long as the kept ranges took to hash (~0.6 s for 512 MiB). So
   * one more reader hashes the file from its start, beside the ranges in flight, 1 MiB at a
   * time, and no send ever waits for it. It reads from the file only what no buffer holds: the
   * kept ranges, and ranges sent before it got to them (read twice, from the page cache as a
   * rule). A range whose buffer is still being sent it hashes from that buffer; at a range not
   * read yet it waits for that read, which then hashes it in turn, in one pass with its
   * {@link rangeChecksum}. Once it has caught up with the sends, every later range is read
   * once.
   * @default none (no hash)
   */
  hasher?: OrderedSha256 | undefined;
  /**
   * Resumed: checks each skipped range against what the server holds of it, from the bytes the
   * reader of {@link hasher} reads from the file anyway (no second read, and in one pass with
   * the sha256). The journal recognises a file by its size, modification time and inode, which a
   * rewrite that keeps them does not change; kept unchecked, such a range would put the old
   * version's bytes into the object beside the new version's. A check that throws stops the
   * ranges as a failed request does, and is what this throws: before the caller commits, since
   * every skipped range is checked before this returns. Needs `hasher`.
   * @default none (skipped ranges are taken as they are)
   */
  checkSkipped?: ((index: number) => SkippedRangeCheck) | undefined;
}

/**
 * Sends every range of `source` through `options.send`, as many at a time as
 * `options.concurrency` allows, and returns once every range in flight has settled. A range
 * that fails for good (or a local read error, e.g. a file that shrank) stops the others through
 * `stop` and is thrown, `stop.firstError` first. When the caller aborted, it returns with
 * `stop.stopped` set and some ranges unsent: the caller checks that before committing.
 *
 * Buffers: one per range in flight, reused for later ranges. The first `initial` (the limit's
 * starting value) are the file's own; more are drawn from `options.budget` and given back as
 * soon as the limit no longer needs them. When the budget is spent the limit stays at what is in
 * flight and stops growing.
 *
 * @example
 * ```ts
 * await sendFileRanges(source, requests, { rangeSize: 8 << 20, concurrency: 4, maxConcurrency: 16, send: (i, body) => uploadPart(i + 1, body) });
 * if (requests.stopped) throw new AbortedError();
 * ```
 */
export async function sendFileRanges(source: SourceFile, stop: RangeStop, options: SendFileRangesOptions): Promise<void> {
  const { rangeSize, skip, hasher, checkSkipped } = options;
  const count = Math.ceil(source.size / rangeSize);
  // A check nobody would run would let kept ranges through unchecked: refused rather than skipped.
  if (checkSkipped && !hasher) throw new Error('Internal error: checkSkipped needs a hasher, whose reader reads the skipped ranges.');
  /** A resumed file: hashed by a reader of its own (see `hasher`), not in turn from the buffers sent. */
  const hashedFromFile = hasher !== undefined && skip !== undefined && skip.size > 0;
  /** Resumed: the ranges read for sending, and the buffers of those still being sent (for that reader). */
  const readForSending = new Set<number>();
  const beingSent = new Map<number, Buffer>();
  /** Wakes that reader when it waits for a range's read (a read done, or the stop). */
  let wakeReader: (() => void) | undefined;
  const limit =
    typeof options.concurrency === 'number'
      ? new AdaptiveLimit({ initial: options.concurrency, max: options.maxConcurrency ?? options.concurrency, growthFactor: PART_GROWTH_FACTOR })
      : options.concurrency;
  const budget = options.budget ?? partBuffers;
  const own = limit.initial;
  const spare: Buffer[] = [];
  let buffers = 0;
  let inFlight = 0;
  let next = 0;
  let failure: { error: unknown } | undefined;
  /** A range failed for good, or a local read did: the first failure is thrown, the rest stop. */
  const fail = (error: unknown): void => {
    failure ??= { error };
    stop.fail(error);
  };
  let loaded = options.alreadyLoaded ?? 0;
  if (loaded > 0) options.onProgress?.(loaded);

  /** Reads range `index` into `buffer` and sends it; the bytes sent (0 when the server held them). */
  const sendRange = async (index: number, buffer: Buffer): Promise<number> => {
    let outcome: void | 'held';
    const start = index * rangeSize;
    const length = Math.min(rangeSize, source.size - start);
    const body = await readSourceRange(source, buffer, start, length);
    if (stop.stopped) return 0;
    const checksum = options.rangeChecksum?.();
    // With the sha256 in one pass when the range is in turn for it (almost always).
    let hashed = false;
    if (checksum && hasher) hashed = hasher.updateAlongside(start, body, checksum);
    else checksum?.update(body);
    const digest = checksum?.digest();
    if (hashedFromFile) {
      // Resumed: hashed now if the hash has reached it, else by the reader (from this buffer
      // while it is sent, from the file after).
      if (!hashed) hasher?.update(start, body);
      readForSending.add(index);
      beingSent.set(index, body);
      wakeReader?.();
      try {
        outcome = await options.send(index, body, digest);
      } finally {
        beingSent.delete(index);
      }
    }
    // Hashed in turn while it is sent: the buffer is free again once both are done.
    else if (hashed) outcome = await options.send(index, body, digest);
    else [outcome] = await Promise.all([options.send(index, body, digest), hasher?.hashInTurn(start, body, stop.signal)]);
    loaded += length;
    options.onProgress?.(loaded);
    return outcome === 'held' ? 0 : length;
  };
  /** A spare buffer, else a new one (the file's own up to `own`, beyond that from the budget). */
  const bufferFor = (): Buffer | undefined => {
    const reused = spare.pop();
    if (reused) return reused;
    if (buffers < own) budget.take(rangeSize);
    else if (!budget.tryTake(rangeSize)) {
      limit.holdAt(inFlight);
      return undefined;
    }
    buffers++;
    return Buffer.allocUnsafe(rangeSize);
  };
  /** Keeps a freed buffer for the next range, or gives it back when the limit shrank below it. */
  const giveBack = (buffer: Buffer): void => {
    if (buffers > own && buffers > limit.limit) {
      buffers--;
      budget.release(rangeSize);
    } else spare.push(buffer);
  };

  stop.rangeLimit = limit;
  /** The checks of skipped ranges the reader has begun and not finished (one at a time, as it reads in order). */
  const checks = new Map<number, SkippedRangeCheck>();
  let checked = 0;
  /**
   * Hashes `bytes`, read from the file at `at` (where the hash is), and feeds each skipped
   * range's share of them to its check (`checkSkipped`), in one pass; a range whose last byte
   * is in is judged at once.
   */
  const hashFromFile = async (hasher: OrderedSha256, at: number, bytes: Buffer): Promise<void> => {
    if (!checkSkipped) return hasher.update(at, bytes);
    for (let offset = 0; offset < bytes.length; ) {
      const position = at + offset;
      const index = Math.floor(position / rangeSize);
      const rangeEnd = Math.min(source.size, (index + 1) * rangeSize);
      const piece = bytes.subarray(offset, Math.min(bytes.length, rangeEnd - at));
      offset += piece.length;
      if (!skip!.has(index)) {
        hasher.update(position, piece);
        continue;
      }
      let range = checks.get(index);
      if (!range) checks.set(index, (range = checkSkipped(index)));
      hasher.updateAlongside(position, piece, range.checksum);
      if (position + piece.length < rangeEnd) continue;
      checks.delete(index);
      await range.check(range.checksum.digest());
      checked++;
    }
  };
  // A resumed file is hashed by a reader of its own (see `hasher`). A local read error there
  // (or a skipped range that fails its check) stops the ranges as a failed request does.
  const hashResumed = async (hasher: OrderedSha256): Promise<void> => {
    const onStop = () => wakeReader?.();
    stop.signal.addEventListener('abort', onStop, { once: true });
    try {
      /** Bytes no buffer holds or will hold: a kept range, or one sent already. */
      const onlyInFile = (index: number) => skip!.has(index) || (readForSending.has(index) && !beingSent.has(index));
      const scratch = Buffer.allocUnsafe(Math.min(HASH_READ_BYTES, source.size));
      while (hasher.position < source.size && !stop.stopped) {
        const at = hasher.position;
        const index = Math.floor(at / rangeSize);
        const held = beingSent.get(index);
        if (held) hasher.update(index * rangeSize, held);
        else if (!onlyInFile(index)) {
          // Not read yet: its read hashes it in turn (in one pass with its checksum).
          await new Promise<void>((resolve) => (wakeReader = resolve));
          wakeReader = undefined;
        } else {
          // Up to HASH_READ_BYTES, across ranges only as long as they are in the file alone.
          let until = Math.min(source.size, at + scratch.length);
          for (let next = index + 1; next * rangeSize < until; next++) {
            if (!onlyInFile(next)) until = next * rangeSize;
          }
          await hashFromFile(hasher, at, await readSourceRange(source, scratch, at, until - at));
        }
      }
    } finally {
      stop.signal.removeEventListener('abort', onStop);
    }
  };
  const fileHashed = hashedFromFile ? hashResumed(hasher).catch(fail) : undefined;
  try {
    await new Promise<void>((resolve) => {
      const pump = (): void => {
        try {
          while (!stop.stopped && next < count && inFlight < limit.limit) {
            const index = next;
            if (skip?.has(index) === true) {
              next++;
              continue;
            }
            const buffer = bufferFor();
            if (!buffer) break;
            next++;
            inFlight++;
            const startedAt = limit.started();
            sendRange(index, buffer).then(
              (sent) => {
                inFlight--;
                giveBack(buffer);
                if (sent > 0) limit.completed(sent, startedAt, inFlight + 1); // itself included
                pump();
              },
              (error: unknown) => {
                inFlight--;
                giveBack(buffer);
                // A local read error stops the other ranges as a failed request does.
                fail(error);
                pump();
              },
            );
          }
        } catch (error) {
          fail(error);
        }
        if (inFlight === 0 && (stop.stopped || next >= count)) resolve();
      };
      pump();
    });
    await fileHashed;
  } finally {
    stop.rangeLimit = undefined;
    budget.release(buffers * rangeSize);
  }
  if (limit.peak > limit.initial) {
    options.logger?.debug(`${options.label ?? 'ranges'} in flight grew from ${limit.initial} to ${limit.peak} (${limit.limit} at the end; ${buffers} buffers of ${rangeSize} bytes)`);
  }
  if (failure) throw stop.firstError ?? failure.error;
  // Every skipped range is read by the reader, whole and in order, unless the ranges stopped;
  // one that was not checked would be committed unchecked.
  if (checkSkipped && hashedFromFile && !stop.stopped && checked !== skip!.size) {
    throw new Error(`Internal error: ${skip!.size - checked} of ${skip!.size} kept ranges of ${source.path} were not checked against the file.`);
  }
}
