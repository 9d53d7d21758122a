/**
 * The destination lock's folder comes and goes (uploader/destination-lock.ts: a holder letting
 * go removes it when empty): a waiter caught between creating the folder and writing its lock's
 * temp file there tries again instead of giving the lock up. The interleaving is forced by a
 * wrapper of `node:fs/promises` (test/support/fs-hooks.ts): no timing involved.
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DESTINATION_LOCKS_FOLDER, holdDestinationLock, withDestinationLock } from '../../src/uploader/destination-lock.js';
import { failReads, fsHooks, resetFsHooks, signal } from '../support/fs-hooks.js';

vi.mock('node:fs/promises', async (importOriginal) => (await import('../support/fs-hooks.js')).hookedFs(await importOriginal()));

afterEach(resetFsHooks);

describe('destination lock: its folder removed under a waiter', () => {
  it('a waiter whose folder the holder removed, letting go between the waiter\'s mkdir and its temp file, tries again and takes the lock', async () => {
    const journal = join(await mkdtemp(join(tmpdir(), 'au-destlock-race-')), 'journal');
    const folder = join(journal, DESTINATION_LOCKS_FOLDER);
    const first = await holdDestinationLock(journal, 'destination');
    // The second's mkdir finds the folder (the first holds the lock in it) and is held there.
    const madeFolder = signal();
    const goOn = signal();
    fsHooks.afterMkdir = async (path) => {
      if (path !== folder) return;
      fsHooks.afterMkdir = undefined;
      madeFolder.resolve();
      await goOn.promise;
    };
    const second = holdDestinationLock(journal, 'destination');
    await madeFolder.promise;
    // The first lets go: its lock and the folder, empty, are removed.
    await first.release();
    expect(existsSync(folder)).toBe(false);
    goOn.resolve();
    const lock = await second;
    expect(readdirSync(folder)).toHaveLength(1);
    await lock.release();
    expect(existsSync(folder)).toBe(false);
  });
});

describe('destination lock: its own lock unreadable when it lets go', () => {
  /** A journal with this process holding the lock of `destination`, and the lock's path. */
  async function holding(destination: string) {
    const journal = join(await mkdtemp(join(tmpdir(), 'au-destlock-read-')), 'journal');
    const folder = join(journal, DESTINATION_LOCKS_FOLDER);
    const lock = await holdDestinationLock(journal, destination);
    const [name] = readdirSync(folder);
    return { journal, folder, lock, lockPath: join(folder, name!) };
  }

  it('removes its own lock after a transient EIO reading it: the next upload to the destination is not held up', async () => {
    const { journal, folder, lock, lockPath } = await holding('destination');
    const reads = failReads(lockPath, 'EIO', 1);
    await lock.release();
    expect(reads.failed()).toBe(1);
    // Lock and folder gone; before, the lock stayed and the next holder in this process waited 5 minutes.
    expect(existsSync(folder)).toBe(false);
    const next = await holdDestinationLock(journal, 'destination');
    expect(readdirSync(folder)).toHaveLength(1);
    await next.release();
    expect(existsSync(folder)).toBe(false);
  });

  it('an upload whose lock stays unreadable is not failed by it: withDestinationLock returns its result and warns', async () => {
    const journal = join(await mkdtemp(join(tmpdir(), 'au-destlock-read-')), 'journal');
    const folder = join(journal, DESTINATION_LOCKS_FOLDER);
    const warnings: string[] = [];
    const logger = { debug: () => {}, info: () => {}, warn: (m: string) => warnings.push(m), error: () => {} };
    const result = await withDestinationLock(
      journal,
      'destination',
      async () => {
        failReads(join(folder, readdirSync(folder)[0]!), 'EIO', Infinity);
        return 'uploaded';
      },
      { logger },
    );
    resetFsHooks();
    expect(result).toBe('uploaded');
    expect(warnings).toEqual([expect.stringMatching(/Cannot release the lock .*EIO.*waits for it until it goes stale/)]);
    expect(readdirSync(folder)).toHaveLength(1);
  });
});
