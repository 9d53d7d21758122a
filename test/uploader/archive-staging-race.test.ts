/**
 * Taking over a dead owner's staging lock with two claimers at once, and sweeping beside a
 * claimer (uploader/archive-staging.ts, core/lock-breaker.ts). The interleaving is forced by a
 * wrapper of `node:fs/promises` (test/support/fs-hooks.ts) that holds one process's read of the
 * dead lock until the other has taken the directory over: no timing involved.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { claimStagedArchive, removeStagedArchives } from '../../src/uploader/archive-staging.js';
import { failReads, holdNextRead, resetFsHooks } from '../support/fs-hooks.js';

vi.mock('node:fs/promises', async (importOriginal) => (await import('../support/fs-hooks.js')).hookedFs(await importOriginal()));

afterEach(resetFsHooks);

/** A staging directory (under `<journal>/archives/`) whose lock a dead process left. */
async function deadOwnersStage(): Promise<{ journal: string; dir: string; lockPath: string }> {
  const journal = join(await mkdtemp(join(tmpdir(), 'au-staging-race-')), 'journal');
  const dir = join(journal, 'archives', 'a'.repeat(40));
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'best.tar.gz'), 'archive');
  const dead = spawnSync(process.execPath, ['-e', '']).pid!;
  await writeFile(`${dir}.lock`, JSON.stringify({ pid: dead, host: hostname(), token: 'dead' }));
  return { journal, dir, lockPath: `${dir}.lock` };
}

describe('archive staging lock: a dead owner\'s lock taken over by two at once', () => {
  it('gives the directory to one claimer only, when the other acts on its judgement of the dead lock after the first took it over', async () => {
    const { dir, lockPath } = await deadOwnersStage();
    // B reads the dead lock and is held there; A takes the directory over meanwhile.
    const held = holdNextRead(lockPath, '"token":"dead"');
    const second = claimStagedArchive(dir);
    await held.read;
    const first = await claimStagedArchive(dir);
    expect(first).toBeDefined();
    const firstLock = await readFile(lockPath, 'utf8');
    held.resume();
    expect(await second).toBeUndefined();
    expect(await readFile(lockPath, 'utf8')).toBe(firstLock);
    await first!.release();
    expect((await readdir(dirname(dir))).sort()).toEqual([basename(dir)]);
  });

  it('a sweep that found the directory abandoned leaves it to a run that took it over meanwhile', async () => {
    const { journal, dir, lockPath } = await deadOwnersStage();
    // The sweep reads the dead lock and is held there; a rerun takes the directory over meanwhile.
    const held = holdNextRead(lockPath, '"token":"dead"');
    const sweep = removeStagedArchives(journal);
    await held.read;
    const claim = await claimStagedArchive(dir);
    expect(claim).toBeDefined();
    const claimLock = await readFile(lockPath, 'utf8');
    held.resume();
    expect(await sweep).toEqual([]);
    // The rerun's archive and lock are where it left them.
    expect(await readFile(join(dir, 'best.tar.gz'), 'utf8')).toBe('archive');
    expect(await readFile(lockPath, 'utf8')).toBe(claimLock);
    await claim!.release();
    // Abandoned again: the next sweep removes it, and nothing is left beside it.
    expect(await removeStagedArchives(journal)).toEqual([dir]);
    expect(await readdir(dirname(dir))).toEqual([]);
  });
});

describe('archive staging lock: its own lock unreadable when it lets go', () => {
  it('removes its own lock after a transient EIO reading it: a rerun in this process claims the directory and resumes', async () => {
    const journal = join(await mkdtemp(join(tmpdir(), 'au-staging-read-')), 'journal');
    const dir = join(journal, 'archives', 'b'.repeat(40));
    await mkdir(dirname(dir), { recursive: true });
    const claim = await claimStagedArchive(dir);
    expect(claim).toBeDefined();
    const reads = failReads(`${dir}.lock`, 'EIO', 1);
    await claim!.release();
    expect(reads.failed()).toBe(1);
    expect(await readdir(dirname(dir))).toEqual([basename(dir)]);
    // Before, the lock stayed, read as this live process's, and every rerun here built elsewhere.
    const again = await claimStagedArchive(dir);
    expect(again).toBeDefined();
    await again!.release();
  });

  it('a lock that stays unreadable does not fail the release (the journal never fails an upload), and is left', async () => {
    const journal = join(await mkdtemp(join(tmpdir(), 'au-staging-read-')), 'journal');
    const dir = join(journal, 'archives', 'c'.repeat(40));
    await mkdir(dirname(dir), { recursive: true });
    const claim = await claimStagedArchive(dir);
    failReads(`${dir}.lock`, 'EIO', Infinity);
    await expect(claim!.release()).resolves.toBeUndefined();
    resetFsHooks();
    expect((await readdir(dirname(dir))).sort()).toEqual([basename(dir), `${basename(dir)}.lock`]);
  });
});
