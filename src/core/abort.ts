/**
 * Cancellation helpers: combining signals, the abort check every store and step makes before
 * it starts work, and a sleep that an abort cuts short. Nothing here decides what is retried
 * (that is `retry.ts`); these are the waiting and stopping parts that retries, polls and
 * uploads share.
 *
 * @module
 */
import { AbortedError } from './errors.js';

/**
 * Combines optional signals into one (any of them aborts it); `undefined` when none is given.
 *
 * @example
 * ```ts
 * const signal = combineSignals(options.signal, AbortSignal.timeout(30_000));
 * ```
 */
export function combineSignals(...signals: Array<AbortSignal | undefined>): AbortSignal | undefined {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  if (present.length <= 1) return present[0];
  return AbortSignal.any(present);
}

/**
 * Throws an {@link AbortedError} (`<what> was aborted.`) when `signal` has fired.
 *
 * @example
 * ```ts
 * throwIfAborted(options.signal, 'The copy');
 * ```
 */
export function throwIfAborted(signal: AbortSignal | undefined, what = 'The upload'): void {
  if (signal?.aborted) throw new AbortedError(`${what} was aborted.`, { cause: signal.reason });
}

/**
 * `promise`, or an {@link AbortedError} (`message`, the signal's reason as its cause) as soon as
 * `signal` fires, whichever comes first. For work shared between callers (an upload several
 * joined, a run lookup several calls wait for): one caller's abort stops its own wait, while
 * the work goes on for the others.
 *
 * @example
 * ```ts
 * const value = await waitUnlessAborted(shared, signal, 'The upload was aborted while it waited.');
 * ```
 */
export function waitUnlessAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined, message: string): Promise<T> {
  if (!signal) return promise;
  const aborted = () => new AbortedError(message, { cause: signal.reason });
  if (signal.aborted) return Promise.reject(aborted());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(aborted());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/**
 * The longest delay a Node timer takes (2^31 − 1 ms, ~24.8 days): a longer one fires after 1 ms.
 * Timeouts and waits above it are held at it, which is as good as no limit.
 */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * Sleeps `ms`, rejecting with an {@link AbortedError} at once when `signal` aborts. The timer is
 * deliberately not unref'd: a CLI whose only pending work is a backoff sleep must not exit
 * mid-upload.
 *
 * @example
 * ```ts
 * await sleep(250, signal);
 * ```
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(new AbortedError(undefined, { cause: signal.reason }));
  if (ms <= 0) return Promise.resolve();
  // A longer timer fires at once (Node warns and waits 1 ms): ~24.8 days is "as good as never".
  ms = Math.min(ms, MAX_TIMER_MS);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AbortedError(undefined, { cause: signal?.reason }));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * An abort signal that fires when {@link IdleTimer.touch} has not been called for `ms`: a
 * request's timeout that measures idleness (no byte sent or received), not its length. Used by
 * the HTTP client per request and by the Azure SDK's block uploads.
 *
 * @example
 * ```ts
 * const idle = new IdleTimer(120_000);
 * try {
 *   await send({ signal: idle.signal, onProgress: () => idle.touch() });
 * } finally {
 *   idle.stop();
 * }
 * ```
 */
export class IdleTimer {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  /** True once the timer fired (the signal aborted for idleness, not for another reason). */
  fired = false;
  /** @param ms How long without {@link IdleTimer.touch} until the signal fires. */
  constructor(readonly ms: number) {
    this.arm();
  }
  get signal(): AbortSignal {
    return this.controller.signal;
  }
  /** Progress: the idle time starts again. */
  touch(): void {
    if (this.timer) this.timer.refresh();
  }
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
  private arm(): void {
    this.timer = setTimeout(() => {
      this.fired = true;
      this.controller.abort(new Error(`no progress for ${this.ms} ms`));
    }, this.ms);
  }
}
