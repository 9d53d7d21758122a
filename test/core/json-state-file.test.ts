/**
 * Breaking a stale lock of a JsonStateFile with several breakers at once (core/lock-breaker.ts).
 *
 * The race needs one breaker to act on a judgement made before another broke the same stale
 * lock and took a new one; in real processes that is a matter of scheduling. Here the
 * interleaving is forced, in one process, by a wrapper of `node:fs/promises`
 * (test/support/fs-hooks.ts) whose hooks hold a chosen call until the test lets it go: no timing
 * is involved, every step waits for the event it needs (the instances poll the lock as
 * processes do, and wait only for each other).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as z from 'zod';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { JsonStateFile } from '../../src/core/json-state-file.js';
import { LocalPathError } from '../../src/core/errors.js';
import { failReads, fsHooks as hooks, holdNextRead, resetFsHooks, signal } from '../support/fs-hooks.js';

vi.mock('node:fs/promises', async (importOriginal) => (await import('../support/fs-hooks.js')).hookedFs(await importOriginal()));

afterEach(resetFsHooks);

const Counter = z.object({ n: z.number() });
/** The pid of a process that has exited (spawned, waited for). */
const deadPid = () => spawnSync(process.execPath, ['-e', '']).pid!;

async function stateFile(): Promise<{ dir: string; path: string; lockPath: string; instance: () => JsonStateFile<{ n: number }> }> {
  const dir = await mkdtemp(join(tmpdir(), 'au-state-file-'));
  const path = join(dir, 'state.json');
  return { dir, path, lockPath: `${path}.lock`, instance: () => new JsonStateFile(path, async () => Counter, { empty: () => ({ n: 0 }) }) };
}

describe('JsonStateFile: breaking a stale lock', () => {
  it.each([
    ['another host\'s lock older than lockStaleMs', () => ({ pid: 1, host: `not-${hostname()}`, token: 'stale', at: Date.now() - 3_600_000 })],
    ['a lock whose process on this host is gone', () => ({ pid: deadPid(), host: hostname(), token: 'stale', at: Date.now() })],
  ])('never removes a live lock on a judgement made before another writer broke the stale one: %s', async (_, staleLock) => {
    const { dir, lockPath, instance } = await stateFile();
    await writeFile(lockPath, JSON.stringify(staleLock()));
    const [a, b, c] = [instance(), instance(), instance()] as const;

    // Who is inside update() now: a marker created with O_EXCL inside the critical section.
    const marker = join(dir, 'inside');
    const overlaps: string[] = [];
    const increment =
      (name: string, entered?: () => void, mayLeave?: Promise<void>) =>
      async (state: { n: number }) => {
        const alone = await writeFile(marker, name, { flag: 'wx' }).then(
          () => true,
          () => false,
        );
        if (!alone) overlaps.push(name);
        entered?.();
        await mayLeave;
        if (alone) await rm(marker);
        return { state: { n: state.n + 1 }, result: undefined };
      };

    // 1. B reads the stale lock and judges it stale; it is held right there, before it acts.
    const bJudged = holdNextRead(lockPath, '"token":"stale"');
    const bBrokeOnce = signal();
    const breakStaleLock = b.breakStaleLock.bind(b);
    let bBreaks = 0;
    b.breakStaleLock = async () => {
      await breakStaleLock();
      if (++bBreaks === 1) bBrokeOnce.resolve();
    };
    const bDone = b.update(increment('b'));
    await bJudged.read;

    // 2. A breaks the same stale lock, takes the lock and stays inside until B's break is over.
    const aInside = signal();
    const aDone = a.update(increment('a', aInside.resolve, bBrokeOnce.promise));
    await aInside.promise;

    // 3. C waits for the lock. Should B move A's lock aside, C takes the free name before B
    //    can link A's back (a link from a `.lock.broken-` name waits for C to be inside).
    const cInside = signal();
    hooks.beforeLink = async (src, dst) => {
      if (dst === lockPath && src.includes('.lock.broken-')) await cInside.promise;
    };
    const cDone = c.update(increment('c', cInside.resolve));

    // 4. B acts on its judgement of step 1.
    bJudged.resume();
    await Promise.all([aDone, bDone, cDone]);

    expect(overlaps).toEqual([]);
    expect(await a.read()).toEqual({ n: 3 });
    // Nothing left beside the state file: no lock, no breaker file, no lock moved aside.
    expect(await readdir(dir)).toEqual(['state.json']);
  });

  it('is not wedged by a breaker killed while breaking, and leaves a live breaker to finish', async () => {
    const dead = { pid: deadPid(), host: hostname(), token: 'stale', at: Date.now() };
    const elsewhere = { pid: 1, host: `not-${hostname()}`, token: 'stale', at: Date.now() - 3_600_000 };
    for (const breaker of [dead, elsewhere]) {
      const { dir, lockPath, instance } = await stateFile();
      await writeFile(lockPath, JSON.stringify(dead));
      await writeFile(`${lockPath}.breaking`, JSON.stringify({ ...breaker, token: 'breaker' }));
      await instance().update((s) => ({ state: { n: s.n + 1 }, result: undefined }));
      expect(await instance().read()).toEqual({ n: 1 });
      expect(await readdir(dir)).toEqual(['state.json']);
    }

    // A breaker at work (this process, just now): the stale lock is its to remove, not ours.
    const { dir, lockPath, instance } = await stateFile();
    await writeFile(lockPath, JSON.stringify(dead));
    await writeFile(`${lockPath}.breaking`, JSON.stringify({ pid: process.pid, host: hostname(), token: 'breaker', at: Date.now() }));
    const file = new JsonStateFile(join(dir, 'state.json'), async () => Counter, { empty: () => ({ n: 0 }), lockTimeoutMs: 200 });
    await expect(file.update((s) => ({ state: { n: s.n + 1 }, result: undefined }))).rejects.toBeInstanceOf(LocalPathError);
    expect((await readdir(dir)).sort()).toEqual(['state.json.lock', 'state.json.lock.breaking']);
    expect(await instance().read()).toEqual({ n: 0 });
  });
});

describe('JsonStateFile: a lock that cannot be read', () => {
  const increment = (s: { n: number }) => ({ state: { n: s.n + 1 }, result: undefined });
  /** A writer that gives up long before the lock would go stale (30 s): it gets the lock only when it is free. */
  const impatient = (path: string) => new JsonStateFile(path, async () => Counter, { empty: () => ({ n: 0 }), lockTimeoutMs: 200 });

  it.each(['EIO', 'EMFILE', 'EACCES'])('releases its own lock after a transient %s reading it, so the next writer gets it at once', async (code) => {
    const { dir, path, lockPath, instance } = await stateFile();
    const reads = failReads(lockPath, code, 2);
    await instance().update(increment);
    expect(reads.failed()).toBe(2);
    expect(await readdir(dir)).toEqual(['state.json']);
    await impatient(path).update(increment);
    expect(await instance().read()).toEqual({ n: 2 });
  });

  it('a breaker removes its own `.breaking` after a transient EIO reading it: no breaker file is left to hold up the next breaker', async () => {
    const { dir, lockPath, instance } = await stateFile();
    await writeFile(lockPath, JSON.stringify({ pid: deadPid(), host: hostname(), token: 'stale', at: Date.now() }));
    const reads = failReads(`${lockPath}.breaking`, 'EIO', 1);
    await instance().update(increment);
    expect(reads.failed()).toBe(1);
    expect(await readdir(dir)).toEqual(['state.json']);
  });

  it('fails with PATH_UNREADABLE and a hint when its own lock stays unreadable, and leaves the lock (whose it is cannot be told)', async () => {
    const { dir, lockPath, instance } = await stateFile();
    failReads(lockPath, 'EIO', Infinity);
    const error = await instance().update(increment).catch((e: unknown) => e);
    resetFsHooks();
    expect(error).toBeInstanceOf(LocalPathError);
    expect(error).toMatchObject({ code: 'PATH_UNREADABLE', path: lockPath, hint: expect.stringMatching(/delete the lock file/) });
    // The change itself was written; the lock is left for its staleness to end.
    expect(await instance().read()).toEqual({ n: 1 });
    expect((await readdir(dir)).sort()).toEqual(['state.json', 'state.json.lock']);
  });

  it('reports the change\'s own error when the change fails and the lock cannot be read either', async () => {
    const { lockPath, instance } = await stateFile();
    failReads(lockPath, 'EIO', Infinity);
    await expect(instance().update(() => Promise.reject(new Error('the change failed')))).rejects.toThrow('the change failed');
  });

  it('never breaks a live lock it cannot read: a waiter times out and the holder\'s lock stays', async () => {
    const { path, lockPath } = await stateFile();
    const live = JSON.stringify({ pid: process.pid, host: hostname(), token: 'live', at: Date.now() });
    await writeFile(lockPath, live);
    failReads(lockPath, 'EIO', Infinity);
    await expect(impatient(path).update(increment)).rejects.toMatchObject({ code: 'PATH_UNREADABLE', path: lockPath, message: expect.stringMatching(/Timed out/) });
    resetFsHooks();
    expect(await readFile(lockPath, 'utf8')).toBe(live);
  });
});

describe('JsonStateFile: modifiedAt', () => {
  it('sets the written file\'s mtime with the write: the next writer under the lock sees it, and its own write gets a fresh one', async () => {
    const { path, instance } = await stateFile();
    const old = Date.now() - 9 * 24 * 3_600_000;
    const first = instance();
    const next = instance();
    let seenByNext: number | undefined;
    // `next` asks for the lock while `first` holds it, and looks at the file when it gets it.
    let after: Promise<void> | undefined;
    await first.update(async (s) => {
      after = next.update(async (t) => {
        seenByNext = (await stat(path)).mtimeMs;
        return { state: { n: t.n + 1 }, result: undefined };
      });
      return { state: { n: s.n + 1 }, modifiedAt: old, result: undefined };
    });
    await after;
    expect(Math.round(seenByNext!)).toBe(old);
    // Its own write is not dated back: far from the old time (no wall-clock window).
    expect((await stat(path)).mtimeMs).toBeGreaterThan(old + 8 * 24 * 3_600_000);
    expect(await instance().read()).toEqual({ n: 2 });
  });
});
