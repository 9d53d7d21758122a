/**
 * Breaking the stale experiments lock of `./mlruns` with two processes at once
 * (mlflow/file-store-format.ts `withLockFile`, core/lock-breaker.ts). The interleaving is forced
 * by a wrapper of `node:fs/promises` (test/support/fs-hooks.ts): no timing involved.
 */
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { withLockFile } from '../../src/mlflow/file-store-format.js';
import { fsHooks, resetFsHooks, signal } from '../support/fs-hooks.js';

vi.mock('node:fs/promises', async (importOriginal) => (await import('../support/fs-hooks.js')).hookedFs(await importOriginal()));

afterEach(resetFsHooks);

describe('withLockFile: a stale lock broken by two at once', () => {
  it('never lets a process that judged the old lock stale remove the lock another took meanwhile', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'au-lock-race-'));
    const lock = join(dir, '.artifact-uploader-experiments.lock');
    await writeFile(lock, '999999\n');
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);

    // Who is inside: a marker created with O_EXCL inside the critical section.
    const marker = join(dir, 'inside');
    const overlaps: string[] = [];
    const inside = async (name: string, mayLeave?: Promise<void>, onOverlap?: () => void) => {
      const alone = await writeFile(marker, name, { flag: 'wx' }).then(
        () => true,
        () => false,
      );
      if (!alone) {
        overlaps.push(name);
        onOverlap?.();
      }
      await mayLeave;
      if (alone) await rm(marker);
      return name;
    };

    // 1. B finds the old lock and is held right after it saw its age.
    const bJudged = signal();
    const bResume = signal();
    fsHooks.afterStat = async (path, mtimeMs) => {
      if (path !== lock || mtimeMs > old.getTime() + 1000) return;
      fsHooks.afterStat = undefined;
      bJudged.resolve();
      await bResume.promise;
    };
    const aMayLeave = signal();
    const bDone = withLockFile(lock, () => inside('b', undefined, aMayLeave.resolve));
    await bJudged.promise;

    // 2. A breaks the old lock and takes it; it stays inside until B has tried again: B's next
    //    try to create the lock fails (A leaves), or B gets in beside A (the race; A leaves then).
    const aInside = signal();
    const aDone = withLockFile(lock, async () => {
      aInside.resolve();
      return inside('a', aMayLeave.promise);
    });
    await aInside.promise;
    fsHooks.afterOpen = (path, _flags, error) => {
      if (path !== lock || error === undefined) return;
      fsHooks.afterOpen = undefined;
      aMayLeave.resolve();
    };

    // 3. B acts on its judgement of step 1.
    bResume.resolve();
    expect(await Promise.all([aDone, bDone])).toEqual(['a', 'b']);
    expect(overlaps).toEqual([]);
    expect(await readdir(dir)).toEqual([]);
  });
});
