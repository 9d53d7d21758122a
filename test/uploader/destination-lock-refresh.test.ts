/**
 * The refresh of a held destination lock (uploader/destination-lock.ts): its holder sets the
 * lock's mtime to now every DESTINATION_LOCK_REFRESH_MS, which is what keeps a lock held through
 * a long upload from being judged abandoned (not refreshed for DESTINATION_LOCK_STALE_MS), by
 * this host or another; the timer never keeps the process alive and stops at release.
 *
 * Only `setInterval`/`clearInterval` are faked (the refresh timer's): the file system, the
 * waiters' `setTimeout` and `Date` stay real, and each refresh is seen as the lock's new mtime
 * on disk.
 */
import { mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AbortedError } from '../../src/core/errors.js';
import { DESTINATION_LOCK_REFRESH_MS, DESTINATION_LOCK_STALE_MS, DESTINATION_LOCKS_FOLDER, holdDestinationLock } from '../../src/uploader/destination-lock.js';
import { scratch } from './helpers.js';

afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

/** Long enough unrefreshed to be abandoned on any host, and older than this process (so not "touched since it started"). */
function abandonedSince(): Date {
  return new Date(Date.now() - Math.max(DESTINATION_LOCK_STALE_MS, process.uptime() * 1000) - 60_000);
}

/** Resolves once `path`'s mtime is no longer `mtimeMs`: the refresh's write has landed (each refresh is a real `utimes`). */
async function mtimeChangedFrom(path: string, mtimeMs: number): Promise<number> {
  for (;;) {
    const now = statSync(path).mtimeMs;
    if (now !== mtimeMs) return now;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('the refresh of a held destination lock', () => {
  it('sets the lock\'s mtime to now every DESTINATION_LOCK_REFRESH_MS, so a waiter keeps waiting for a long upload; unref()d, and stopped at release', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const setIntervalCalls = vi.spyOn(globalThis, 'setInterval');
    const journal = join(scratch('au-destlock-refresh-'), 'journal');
    const lock = await holdDestinationLock(journal, 'destination');
    const folder = join(journal, DESTINATION_LOCKS_FOLDER);
    const [name] = readdirSync(folder);
    const lockPath = join(folder, name!);
    const ours = readFileSync(lockPath, 'utf8');

    // One timer, and it does not keep the process alive (a CLI whose upload is over exits).
    expect(vi.getTimerCount()).toBe(1);
    expect(setIntervalCalls).toHaveBeenCalledTimes(1);
    expect((setIntervalCalls.mock.results[0]!.value as NodeJS.Timeout).hasRef()).toBe(false);

    // Twice: the lock made to look abandoned, then one refresh period; each time it is fresh again.
    for (let refresh = 1; refresh <= 2; refresh++) {
      const silent = abandonedSince();
      utimesSync(lockPath, silent, silent);
      const silentMs = statSync(lockPath).mtimeMs;
      const before = Date.now();
      vi.advanceTimersByTime(DESTINATION_LOCK_REFRESH_MS);
      // Set to the time of the refresh (utimes takes whole milliseconds, hence the 1 ms).
      expect(await mtimeChangedFrom(lockPath, silentMs)).toBeGreaterThanOrEqual(before - 1);
    }

    // Refreshed, the lock is live to a waiter: it waits (stopped here at its signal), and the lock stays ours.
    const controller = new AbortController();
    let waits = 0;
    await expect(holdDestinationLock(journal, 'destination', { signal: controller.signal, onWait: () => (waits++, controller.abort()) })).rejects.toBeInstanceOf(AbortedError);
    expect(waits).toBe(1);
    expect(readFileSync(lockPath, 'utf8')).toBe(ours);

    // Released: the timer is gone, and a lock at that path (another holder's, taken since) is never touched again by it.
    await lock.release();
    expect(vi.getTimerCount()).toBe(0);
    const other = JSON.stringify({ pid: 1, host: 'another-host.invalid', token: 'f'.repeat(16) });
    mkdirSync(folder, { recursive: true });
    writeFileSync(lockPath, other);
    const silent = abandonedSince();
    utimesSync(lockPath, silent, silent);
    const silentMs = statSync(lockPath).mtimeMs;
    vi.advanceTimersByTime(DESTINATION_LOCK_STALE_MS);
    expect(statSync(lockPath).mtimeMs).toBe(silentMs);
  });
});
