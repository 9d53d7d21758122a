/**
 * A count of bytes held in buffers against a ceiling, shared by whoever draws on it: the part
 * loops of every file being uploaded draw their part buffers beyond the first few from one
 * process-wide budget (`stores/file-ranges.ts`), so raising the number of parts in flight can
 * never raise memory past it, however many files are sent at once.
 *
 * @module
 */

/**
 * Bytes held against a ceiling. {@link tryTake} refuses what would go past it; {@link take}
 * holds bytes the caller is entitled to regardless (counted, so others see them).
 *
 * @example
 * ```ts
 * const budget = new ByteBudget(64 * 1024 * 1024);
 * if (budget.tryTake(8 << 20)) {
 *   try { await sendOneMorePart(); } finally { budget.release(8 << 20); }
 * }
 * ```
 */
export class ByteBudget {
  private heldBytes = 0;
  /** Most bytes held at once so far, for reporting and tests. */
  peak = 0;

  /** @param limitBytes the ceiling {@link tryTake} keeps to. */
  constructor(readonly limitBytes: number) {
    if (!(limitBytes >= 0)) throw new RangeError(`limitBytes must be >= 0, got ${limitBytes}`);
  }

  /** Bytes held now. */
  get held(): number {
    return this.heldBytes;
  }

  /** Holds `bytes` if that stays within the ceiling; returns whether it did. */
  tryTake(bytes: number): boolean {
    if (this.heldBytes + bytes > this.limitBytes) return false;
    this.take(bytes);
    return true;
  }

  /** Holds `bytes` whatever the ceiling (the caller's guaranteed share), counted all the same. */
  take(bytes: number): void {
    this.heldBytes += bytes;
    this.peak = Math.max(this.peak, this.heldBytes);
  }

  /** Gives back `bytes` taken before. */
  release(bytes: number): void {
    this.heldBytes = Math.max(0, this.heldBytes - bytes);
  }
}
