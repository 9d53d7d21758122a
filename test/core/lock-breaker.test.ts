/**
 * core/lock-breaker.ts on its own: what a breaker does with a lock it cannot read. The
 * interleaving (a lock released and taken again between the breaker's judgement and its move)
 * is forced by the wrapper of `node:fs/promises` (test/support/fs-hooks.ts), and the reads are
 * made to fail by it: no timing involved. The races among several breakers are tested where the
 * locks are used (test/core/json-state-file.test.ts, test/uploader/archive-staging-race.test.ts,
 * test/mlflow/file-store-lock-race.test.ts).
 */
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { breakLockIfStale, judgeTimedLock } from '../../src/core/lock-breaker.js';
import { failReads, fsHooks, resetFsHooks, signal } from '../support/fs-hooks.js';

vi.mock('node:fs/promises', async (importOriginal) => (await import('../support/fs-hooks.js')).hookedFs(await importOriginal()));

afterEach(resetFsHooks);

/** A lock of the `{pid, host, token, at}` kind, its file dated `ageMs` ago. */
async function timedLock(path: string, token: string, ageMs: number): Promise<string> {
  const at = Date.now() - ageMs;
  const text = JSON.stringify({ pid: process.pid, host: hostname(), token, at });
  await writeFile(path, text);
  await utimes(path, new Date(at), new Date(at));
  return text;
}

const STALE_MS = 30_000;
const judge = (path: string) => judgeTimedLock(path, STALE_MS);

describe('breakLockIfStale: a lock that cannot be read', () => {
  it('never removes a live lock taken in between when neither its read nor the stale one\'s gives a token: the moved lock is put back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'au-lock-breaker-'));
    const lockPath = join(dir, 'state.json.lock');
    await timedLock(lockPath, 'old', 3_600_000);
    // Every read of the lock fails, at its name and moved aside: no token tells two locks apart.
    failReads((path) => path === lockPath || path.startsWith(`${lockPath}.broken-`), 'EIO', Infinity);

    // The breaker's second judgement (under `.breaking`) is held after it dated the old lock; its
    // holder, alive past the stale bound, lets go, and another process takes the lock, fresh.
    const judged = signal();
    const resume = signal();
    let stats = 0;
    fsHooks.afterStat = async (path) => {
      if (path !== lockPath || ++stats !== 2) return;
      judged.resolve();
      await resume.promise;
    };
    const breaking = breakLockIfStale(lockPath, judge);
    await judged.promise;
    await rm(lockPath);
    const live = await timedLock(lockPath, 'live', 0);
    resume.resolve();

    expect(await breaking).toBe(false);
    resetFsHooks();
    expect(await readFile(lockPath, 'utf8')).toBe(live);
    expect(await readdir(dir)).toEqual(['state.json.lock']);
  });

  it('still removes a stale lock it cannot read, moved aside and judged stale again on its own', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'au-lock-breaker-'));
    const lockPath = join(dir, 'state.json.lock');
    await timedLock(lockPath, 'old', 3_600_000);
    const reads = failReads((path) => path === lockPath || path.startsWith(`${lockPath}.broken-`), 'EIO', Infinity);
    expect(await breakLockIfStale(lockPath, judge)).toBe(true);
    expect(reads.failed()).toBe(3);
    expect(await readdir(dir)).toEqual([]);
  });
});
