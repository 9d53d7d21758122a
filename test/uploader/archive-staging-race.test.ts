/**
 * Taking over a dead owner's staging lock with two claimers at once, and sweeping beside a
 * claimer (uploader/archive-staging.ts, core/lock-breaker.ts). The interleaving is forced by a
 * wrapper of `node:fs/promises` (test/support/fs-hooks.ts) that holds one process's read of the
 * dead lock until the other has taken the directory over: no timing involved. And two trials
 * sharing the journal, one held after it made `archives/` while the other's upload ends and
 * removes the emptied folder.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { claimStagedArchive, removeStagedArchives } from '../../src/uploader/archive-staging.js';
import { uploadHpoArtifacts } from '../../src/stages/hpo.js';
import { failReads, fsHooks, holdNextRead, resetFsHooks, signal } from '../support/fs-hooks.js';
import { localRun, recordingLogger, scratch, silentLogger, writeTree } from './helpers.js';

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

describe('archive staging: trials sharing one journal, one finishing while another starts', () => {
  it("stages a trial's archive in the journal when another trial's upload removes the emptied archives/ folder between its mkdir and its claim", async () => {
    const root = scratch('au-staging-folder-');
    const journal = join(root, 'journal');
    const sweep = writeTree(join(root, 'sweep'), { 'trial-0/adapter.bin': randomBytes(4096), 'trial-1/adapter.bin': randomBytes(4096) });
    const { trackingUri, run, artifactsDir } = await localRun(root);
    const archives = join(journal, 'archives');
    // Trial 1 is held right after it made `archives/` (before it claims its staging directory
    // there); trial 0 runs meanwhile from start to end, and, the last staged archive gone,
    // removes the empty `archives/` folder, as every finished upload does.
    const madeArchives = signal();
    const goOn = signal();
    let held = false;
    fsHooks.afterMkdir = async (path) => {
      if (path !== archives || held) return;
      held = true;
      madeArchives.resolve();
      await goOn.promise;
    };
    const logger = recordingLogger();
    const trial = (t: number, log = silentLogger) =>
      uploadHpoArtifacts({ checkpointDir: join(sweep, `trial-${t}`), trialId: t, runId: run.runId, trackingUri, journalDir: journal, logger: log });
    const second = trial(1, logger);
    await madeArchives.promise;
    const first = await trial(0);
    expect(first.status).toBe('uploaded');
    expect(existsSync(archives)).toBe(false);
    goOn.resolve();
    const result = await second;
    expect(result.status).toBe('uploaded');
    expect(logger.lines.filter(([level]) => level === 'warn')).toEqual([]);
    // Staged where a rerun after a kill finds it, not in a temp directory that cannot be resumed.
    expect(result.files[0]!.localPath.startsWith(`${archives}/`)).toBe(true);
    expect(readdirSync(join(artifactsDir, 'trials', '1')).sort()).toEqual(['best_trial_checkpoint.manifest.json', 'best_trial_checkpoint.tar.gz']);
  });
});

describe('archive staging lock: another process\'s lock that cannot be read', () => {
  it('a dead owner\'s lock read with a transient EIO is still taken over, and its archive resumed, not taken for a live owner\'s', async () => {
    const { dir, lockPath } = await deadOwnersStage();
    const reads = failReads(lockPath, 'EIO', 1);
    const claim = await claimStagedArchive(dir);
    expect(reads.failed()).toBe(1);
    expect(claim).toBeDefined();
    expect(await readFile(join(dir, 'best.tar.gz'), 'utf8')).toBe('archive');
    await claim!.release();
  });

  it('a live owner\'s lock on this host that cannot be read is never broken, however old its heartbeat (a stopped process): neither by a claimer nor by resume clear', async () => {
    const journal = join(await mkdtemp(join(tmpdir(), 'au-staging-race-')), 'journal');
    const dir = join(journal, 'archives', 'd'.repeat(40));
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'best.tar.gz'), 'archive');
    const lockPath = `${dir}.lock`;
    // The parent of this test process: alive, on this host; its lock not refreshed for 11 minutes.
    const live = JSON.stringify({ pid: process.ppid, host: hostname(), token: 'live' });
    await writeFile(lockPath, live);
    const old = new Date(Date.now() - 11 * 60_000);
    await utimes(lockPath, old, old);
    // Every read fails, at its name and moved aside.
    const reads = failReads((path) => path === lockPath || path.startsWith(`${lockPath}.broken-`), 'EIO', Infinity);

    expect(await claimStagedArchive(dir)).toBeUndefined();
    expect(await removeStagedArchives(journal)).toEqual([]);
    expect(reads.failed()).toBeGreaterThan(0);
    resetFsHooks();
    expect(await readFile(lockPath, 'utf8')).toBe(live);
    expect(await readFile(join(dir, 'best.tar.gz'), 'utf8')).toBe('archive');
    expect((await readdir(dirname(dir))).sort()).toEqual([basename(dir), basename(lockPath)]);
  });
});
