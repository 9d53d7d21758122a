/**
 * The measuring half of a concurrency limit that follows the link: how many requests should be
 * in flight, learnt from their completions. On a remote server every request waits a round trip
 * (and a part on a fresh connection waits for TCP slow start too), so more in flight means more
 * throughput, until the server or the link is the limit; on loopback the server's CPU is the
 * limit from the start, and more in flight only queues. {@link AdaptiveLimit} finds out which by
 * measuring, rather than guessing from the address:
 *
 * - it measures windows of `limit` completions, and compares each window's throughput
 *   (completions and bytes per second, whichever grew more) with the one before. A window counts
 *   only requests started at its limit: one started before the last step ran, at least in part,
 *   with the old number in flight, and would blur the two steps into each other;
 * - a window's throughput is Little's law over its requests: the mean number in flight (as each
 *   of them ended, itself included; the limit, while the caller keeps it full) over their mean
 *   time, in requests a second. The mean of every request's time is steadier than the span
 *   between a handful of completions, which arrive in clumps (a step once read as no gain on an
 *   80 ms link and kept an upload at 5 parts in flight). The number really in flight, not the
 *   limit, because something else may hold it lower (a file pool's memory budget), and a
 *   higher limit then buys nothing;
 * - it grows by half (or by `growthFactor`) while a step up paid off (at least {@link GAIN} more throughput), and
 *   steps back down, then stops growing, when one did not;
 * - a throttling answer (429, 503: `isThrottlingError` in core/retry.ts) halves it at once and
 *   stops growth for good: the server said what it copes with.
 *
 * It only decides the number: the callers hold the queue (files: `uploader/concurrency.ts`;
 * parts of one file: `stores/file-ranges.ts`) and the memory each request in flight costs.
 *
 * @module
 */

/** A window must beat the previous one by this factor for a step up to count as paying off. */
export const GAIN = 1.15;

/** Options of {@link AdaptiveLimit}. */
export interface AdaptiveLimitOptions {
  /** Requests in flight at the start (and always, when `max` equals it). */
  initial: number;
  /** The most it may grow to. Equal to `initial` (or less): a fixed limit. */
  max: number;
  /**
   * How much each step up multiplies the limit by (at least +1). Smaller steps cost less when
   * one does not pay off: each request in flight may hold a large buffer (a multipart part).
   * @default 1.5
   */
  growthFactor?: number;
  /** Clock, for tests. @default performance.now */
  now?: () => number;
}

/**
 * How many requests may be in flight, adapted to the throughput their completions show (see the
 * module doc). The caller reports each completion ({@link completed}) and each throttling answer
 * ({@link throttled}), and starts requests while fewer than {@link limit} are in flight.
 *
 * @example
 * ```ts
 * const parts = new AdaptiveLimit({ initial: 4, max: 16 });
 * // when a part starts: const startedAt = parts.started();
 * // after it, with `inFlight` parts in flight, itself included: if (parts.completed(part.length, startedAt, inFlight)) startMore();
 * // on a 503 SlowDown: parts.throttled();
 * ```
 */
export class AdaptiveLimit {
  /** Where it started. */
  readonly initial: number;
  private readonly max: number;
  private readonly now: () => number;
  private readonly growthFactor: number;
  private current: number;
  private growing: boolean;
  /**
   * The window being measured: completions of requests started at the current limit, the time
   * they took, and the sum of the numbers in flight as they ended.
   */
  private window = { started: 0, count: 0, bytes: 0, busyMs: 0, inFlightSum: 0 };
  /** The last full window's throughput and the limit it ran at. */
  private previous: { limit: number; perS: number; bytesPerS: number } | undefined;
  /** Completions since the last halving; undefined before the first. */
  private sinceThrottle: number | undefined;
  /** Highest limit reached, for reporting. */
  peak: number;

  constructor(options: AdaptiveLimitOptions) {
    if (!Number.isInteger(options.initial) || options.initial < 1) throw new RangeError(`initial must be an integer >= 1, got ${options.initial}`);
    this.initial = options.initial;
    this.current = options.initial;
    this.max = Math.max(options.initial, options.max);
    this.now = options.now ?? (() => performance.now());
    this.growthFactor = options.growthFactor ?? 1.5;
    this.growing = this.max > this.current;
    this.peak = this.current;
    this.window.started = this.now();
  }

  /** The current limit on requests in flight. */
  get limit(): number {
    return this.current;
  }

  /** Whether the limit may still grow. */
  get adapting(): boolean {
    return this.growing;
  }

  /**
   * A request starts now: returns its start, to pass to {@link completed} when it ends.
   */
  started(): number {
    return this.now();
  }

  /**
   * The request started at `startedAt` ({@link started}) completed with `bytes` sent (a failed
   * one: 0), `inFlight` requests being in flight as it ended, itself included. Returns true when
   * the limit changed (grew, or stepped back), so the caller can start more requests or hold
   * back.
   */
  completed(bytes: number, startedAt: number, inFlight: number): boolean {
    if (this.sinceThrottle !== undefined) this.sinceThrottle++;
    // Started before the limit last changed: it measures the step before.
    if (!this.growing || startedAt < this.window.started) return false;
    this.window.count++;
    this.window.bytes += bytes;
    this.window.busyMs += this.now() - startedAt;
    this.window.inFlightSum += inFlight;
    if (this.window.count < this.current) return false;
    // Little's law: the mean in flight (inFlightSum / count) over the mean time (busy / count).
    const perS = this.window.inFlightSum / (Math.max(this.window.busyMs, 1) / 1000);
    const measured = { limit: this.current, perS, bytesPerS: (perS * this.window.bytes) / this.window.count };
    const before = this.previous;
    if (before && before.limit < measured.limit) {
      const gain = Math.max(measured.perS / before.perS, before.bytesPerS > 0 ? measured.bytesPerS / before.bytesPerS : 0);
      if (gain < GAIN) {
        // The step up bought nothing: the link is not what limits us. Back to where we were.
        this.current = before.limit;
        this.growing = false;
        return true;
      }
    }
    this.previous = measured;
    this.current = Math.min(this.max, Math.max(this.current + 1, Math.ceil(this.current * this.growthFactor)));
    this.peak = Math.max(this.peak, this.current);
    if (this.current === this.max) this.growing = false;
    this.resetWindow();
    return true;
  }

  /**
   * The server asked us to slow down (429/503): halve the limit and stop growing. The requests
   * already in flight when it said so may all be told the same; only once as many requests as
   * the new limit have completed does another throttling answer halve it again.
   */
  throttled(): void {
    this.growing = false;
    if (this.sinceThrottle !== undefined && this.sinceThrottle < this.current) return;
    this.current = Math.max(1, Math.floor(this.current / 2));
    this.sinceThrottle = 0;
    this.resetWindow();
  }

  /**
   * The caller cannot put more than `inFlight` in flight for now (its memory budget is spent):
   * the limit stays there and stops growing, so windows measure what was really in flight.
   */
  holdAt(inFlight: number): void {
    if (inFlight >= this.current) return;
    this.current = Math.max(1, inFlight);
    this.growing = false;
  }

  private resetWindow(): void {
    this.window = { started: this.now(), count: 0, bytes: 0, busyMs: 0, inFlightSum: 0 };
  }
}
