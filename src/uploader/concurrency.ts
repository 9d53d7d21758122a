/**
 * How many files are in flight at once: a limiter that starts at the configured concurrency and
 * follows the link. The measuring (windows of completions timed by Little's law, grow by half
 * while it pays off, step back when not, halve on 429/503) is core/adaptive-limit.ts's
 * {@link AdaptiveLimit}, shared with the part loop of multipart uploads; this file adds the
 * queue of files (telling the limit when each starts, and how many are in flight as it ends)
 * and their memory:
 * every file in flight also holds a share of a byte budget (its size, at most one ~1 MiB
 * buffer), so many 1 MiB files never take the limit's worth of buffers beyond
 * {@link ConcurrencyOptions.memoryBudgetBytes}.
 *
 * @module
 */
import { AdaptiveLimit } from '../core/adaptive-limit.js';

/** Options of {@link AdaptiveConcurrency}. */
export interface ConcurrencyOptions {
  /** Files in flight at the start (and always, when `max` equals it). */
  initial: number;
  /** The most files in flight it may grow to. Equal to `initial`: a fixed limit. */
  max: number;
  /**
   * Bytes that files in flight may hold in buffers at once; each file counts its size, at most
   * `bufferBytes`.
   * @default 64 MiB
   */
  memoryBudgetBytes?: number;
  /**
   * The most one file holds in memory while it is sent (a small file is read whole, a large one
   * streams through one buffer).
   * @default 1 MiB
   */
  bufferBytes?: number;
  /** Clock, for tests. @default performance.now */
  now?: () => number;
}

interface Waiter {
  cost: number;
  start: () => void;
}

/**
 * A concurrency limiter whose limit adapts to what the link and server sustain. `pool` runs a
 * task per item, pulling the next item whenever the limit and the memory budget have room (only
 * the items in flight cost a promise); `run` queues one task until there is room for it. Tasks
 * start in the order given.
 *
 * @example
 * ```ts
 * const limit = new AdaptiveConcurrency({ initial: 8, max: 64 });
 * const results = await limit.pool(files, (f) => f.size, (f) => upload(f));
 * ```
 */
export class AdaptiveConcurrency {
  private readonly budget: number;
  private readonly bufferBytes: number;
  /** The limit itself: how many files may be in flight, learnt from their completions. */
  private readonly measure: AdaptiveLimit;
  private active = 0;
  private heldBytes = 0;
  private readonly queue: Waiter[] = [];

  constructor(options: ConcurrencyOptions) {
    this.measure = new AdaptiveLimit({ initial: options.initial, max: options.max, ...(options.now ? { now: options.now } : {}) });
    this.bufferBytes = options.bufferBytes ?? 1024 * 1024;
    this.budget = Math.max(options.memoryBudgetBytes ?? 64 * 1024 * 1024, this.bufferBytes);
  }

  /** The current limit on files in flight. */
  get limit(): number {
    return this.measure.limit;
  }

  /** Highest limit reached, for reporting. */
  get peak(): number {
    return this.measure.peak;
  }

  /**
   * Runs `task` once there is room for one more file of `sizeBytes`; its completion feeds the
   * measurement (a failed task counts as a completion with no bytes).
   */
  async run<T>(sizeBytes: number, task: () => Promise<T>): Promise<T> {
    const cost = this.costOf(sizeBytes);
    await this.acquire(cost);
    const startedAt = this.measure.started();
    let bytes = 0;
    try {
      const value = await task();
      bytes = sizeBytes;
      return value;
    } finally {
      this.finish(cost, bytes, startedAt);
    }
  }

  /**
   * Runs `task` for every item, pulling the next one whenever the limit and the memory budget
   * have room for it (each completion feeds the measurement, as with {@link run}), and resolves
   * with the results in the order of `items`. Nothing is queued up front: only the items in
   * flight hold a task, a promise and its callbacks, so 20,000 files cost 20,000 results, not
   * 20,000 pending promises. A task that throws stops the pulling: no further item starts, and
   * once those in flight have settled the pool rejects with the first error.
   *
   * Not to be mixed with {@link run} on the same limiter while either is busy.
   */
  pool<T, R>(items: readonly T[], sizeOf: (item: T) => number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
    const results = new Array<R>(items.length);
    let next = 0;
    let running = 0;
    let failure: { error: unknown } | undefined;
    return new Promise<R[]>((resolve, reject) => {
      const settle = () => {
        if (running > 0) return;
        if (failure) reject(failure.error);
        else if (next >= items.length) resolve(results);
      };
      const pull = () => {
        while (failure === undefined && next < items.length) {
          const index = next;
          const item = items[index]!;
          const size = Math.max(sizeOf(item), 0);
          const cost = this.costOf(size);
          if (this.queue.length > 0 || !this.hasRoom(cost)) break;
          next++;
          running++;
          this.take(cost);
          const startedAt = this.measure.started();
          let started: Promise<R>;
          try {
            started = task(item, index);
          } catch (error) {
            started = Promise.reject(error);
          }
          started.then(
            (value) => {
              results[index] = value;
              finished(cost, size, startedAt);
            },
            (error: unknown) => {
              failure ??= { error };
              finished(cost, 0, startedAt);
            },
          );
        }
        settle();
      };
      // One completion frees room (or grows the limit): pull again from there.
      const finished = (cost: number, bytes: number, startedAt: number) => {
        running--;
        this.finish(cost, bytes, startedAt);
        pull();
      };
      pull();
    });
  }

  /** The share of the byte budget a file of `sizeBytes` holds while it is in flight. */
  private costOf(sizeBytes: number): number {
    return Math.min(Math.max(sizeBytes, 0), this.bufferBytes);
  }

  /**
   * The server asked us to slow down (429/503): halve the limit and stop growing (see
   * {@link AdaptiveLimit.throttled}).
   */
  throttled(): void {
    this.measure.throttled();
  }

  private acquire(cost: number): Promise<void> {
    if (this.queue.length === 0 && this.hasRoom(cost)) {
      this.take(cost);
      return Promise.resolve();
    }
    return new Promise((resolve) => this.queue.push({ cost, start: resolve }));
  }

  private hasRoom(cost: number): boolean {
    // One file always fits, however large the budget's share it would need.
    return this.active < this.measure.limit && (this.active === 0 || this.heldBytes + cost <= this.budget);
  }

  private take(cost: number): void {
    this.active++;
    this.heldBytes += cost;
  }

  /** A file in flight ended: its share of the budget goes back, and it feeds the measurement. */
  private finish(cost: number, bytes: number, startedAt: number): void {
    const inFlight = this.active; // itself included
    this.active--;
    this.heldBytes -= cost;
    this.drain();
    if (this.measure.completed(bytes, startedAt, inFlight)) this.drain();
  }

  private drain(): void {
    while (this.queue.length > 0 && this.hasRoom(this.queue[0]!.cost)) {
      const next = this.queue.shift()!;
      this.take(next.cost);
      next.start();
    }
  }
}
