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
import { DESTINATION_LOCKS_FOLDER, holdDestinationLock } from '../../src/uploader/destination-lock.js';
import { fsHooks, resetFsHooks, signal } from '../support/fs-hooks.js';

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
