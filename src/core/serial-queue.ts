/**
 * Runs async tasks one after another per key, within this process: a task starts once every
 * earlier task of its key has settled (fulfilled or not), while tasks of other keys run freely.
 * Used where one process must not interleave its own read-modify-writes of the same record (the
 * resume journal's records, the Hub tracker's decisions); other processes are kept apart by
 * the file lock, not by this.
 *
 * @module
 */

/**
 * Per-key serialization of async tasks; a key's chain is forgotten once its last task settles.
 *
 * @example
 * ```ts
 * const queue = new SerialQueue();
 * await Promise.all([queue.run('a', writeFirst), queue.run('a', writeSecond), queue.run('b', other)]);
 * ```
 */
export class SerialQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Whether a task of `key` is running or waiting: one run now would wait for it. */
  busy(key: string): boolean {
    return this.tails.has(key);
  }

  /** Runs `task` after every earlier task of `key`; resolves or rejects as `task` does. */
  run<R>(key: string, task: () => Promise<R>): Promise<R> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const next = previous.then(task, task);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }
}
