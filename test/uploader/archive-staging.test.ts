import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, lstatSync, lutimesSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { tempFileName } from '../../src/core/atomic-write.js';
import { claimStagedArchive, removeStagedArchives, stagedArchiveDir } from '../../src/uploader/archive-staging.js';

/** A journal directory and the staging directory of one archive key in it. */
async function stage(): Promise<{ journal: string; dir: string }> {
  const root = mkdtempSync(join(tmpdir(), 'au-staging-'));
  const checkpoint = join(root, 'ckpt');
  await mkdir(checkpoint);
  writeFileSync(join(checkpoint, 'weights.bin'), 'w');
  const journal = join(root, 'journal');
  const dir = await stagedArchiveDir(journal, { target: 'http://127.0.0.1:5000/', runId: 'run-1', artifactPath: 'best.tar.gz', directory: checkpoint, level: undefined, include: [], exclude: [] });
  return { journal, dir };
}

const HOUR_AGO = new Date(Date.now() - 60 * 60_000);

let bundle: string | undefined;
/** archive-staging.ts bundled with esbuild, for a worker thread to load as a module of its own. */
async function stagingBundle(): Promise<string> {
  if (bundle) return bundle;
  const outfile = join(mkdtempSync(join(tmpdir(), 'au-staging-bundle-')), 'archive-staging.mjs');
  const root = resolve(__dirname, '../..');
  await build({ entryPoints: [join(root, 'src/uploader/archive-staging.ts')], bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile, absWorkingDir: root, logLevel: 'silent' });
  return (bundle = outfile);
}

describe('archive staging lock', () => {
  it('is created whole: the claim leaves its lock and directory, no temp file, and a second claim fails while it is held', async () => {
    const { dir } = await stage();
    const claim = (await claimStagedArchive(dir))!;
    expect(claim).toBeDefined();
    expect(readdirSync(dirname(dir)).sort()).toEqual([basename(dir), `${basename(dir)}.lock`]);
    expect(JSON.parse(readFileSync(`${dir}.lock`, 'utf8'))).toMatchObject({ pid: process.pid });
    expect(await claimStagedArchive(dir)).toBeUndefined();
    await claim.release();
    expect(readdirSync(dirname(dir))).toEqual([basename(dir)]);
  });

  it('a lock with this process\'s pid last touched before it started is a predecessor\'s (a container restarted as pid 1): taken over', async () => {
    const { dir } = await stage();
    await mkdir(dir, { recursive: true });
    writeFileSync(`${dir}.lock`, JSON.stringify({ pid: process.pid, host: hostname(), token: 'dead-run-token' }));
    utimesSync(`${dir}.lock`, HOUR_AGO, HOUR_AGO);
    const claim = await claimStagedArchive(dir);
    expect(claim).toBeDefined();
    expect(JSON.parse(readFileSync(`${dir}.lock`, 'utf8'))).toMatchObject({ pid: process.pid });
    expect(JSON.parse(readFileSync(`${dir}.lock`, 'utf8')).token).not.toBe('dead-run-token');
    // Its own live lock still keeps a second claim out.
    expect(await claimStagedArchive(dir)).toBeUndefined();
    await claim!.release();
  });

  it('a lock of this process held by another instance of the module (a worker thread) is live: not taken over', async () => {
    const { dir } = await stage();
    // The worker loads its own copy of the module (as the ESM and CJS builds side by side do).
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
      (async () => {
        const { claimStagedArchive } = await import(workerData.bundle);
        const claim = await claimStagedArchive(workerData.dir);
        parentPort.postMessage(claim !== undefined);
        parentPort.once('message', async () => { await claim?.release(); parentPort.postMessage('released'); });
      })();`,
      { eval: true, workerData: { bundle: pathToFileURL(await stagingBundle()).href, dir } },
    );
    try {
      expect(await once(worker, 'message')).toEqual([true]);
      const held = readFileSync(`${dir}.lock`, 'utf8');
      expect(JSON.parse(held)).toMatchObject({ pid: process.pid });
      expect(await claimStagedArchive(dir)).toBeUndefined();
      expect(readFileSync(`${dir}.lock`, 'utf8')).toBe(held);
      worker.postMessage('release');
      expect(await once(worker, 'message')).toEqual(['released']);
    } finally {
      await worker.terminate();
    }
  });

  it('a chmod of a checkpoint file, which tar records, gives another staging directory', async () => {
    const root = mkdtempSync(join(tmpdir(), 'au-staging-'));
    const checkpoint = join(root, 'ckpt');
    await mkdir(checkpoint);
    writeFileSync(join(checkpoint, 'run.sh'), 'echo hi');
    chmodSync(join(checkpoint, 'run.sh'), 0o644);
    const key = { target: 'http://127.0.0.1:5000/', runId: 'run-1', artifactPath: 'best.tar.gz', directory: checkpoint, level: undefined, include: [], exclude: [] };
    const before = await stagedArchiveDir(join(root, 'journal'), key);
    expect(await stagedArchiveDir(join(root, 'journal'), key)).toBe(before);
    chmodSync(join(checkpoint, 'run.sh'), 0o755);
    expect(await stagedArchiveDir(join(root, 'journal'), key)).not.toBe(before);
  });

  it('the key follows what the archive takes: left-out files and the directory times they move do not count; a kept file touched or a link re-pointed does', async () => {
    const root = mkdtempSync(join(tmpdir(), 'au-staging-'));
    const checkpoint = join(root, 'ckpt');
    await mkdir(join(checkpoint, 'wandb'), { recursive: true });
    writeFileSync(join(checkpoint, 'weights.bin'), 'w');
    writeFileSync(join(checkpoint, 'train.log'), 'step 1\n');
    symlinkSync('weights.bin', join(checkpoint, 'latest'));
    const key = { target: 'http://127.0.0.1:5000/', runId: 'run-1', artifactPath: 'best.tar.gz', directory: checkpoint, level: undefined, include: [], exclude: ['*.log', 'wandb/'] };
    const journal = join(root, 'journal');
    const before = await stagedArchiveDir(journal, key);
    appendFileSync(join(checkpoint, 'train.log'), 'step 2\n');
    writeFileSync(join(checkpoint, 'wandb', 'events.txt'), 'e');
    // A temp file made and removed beside the kept files moves the directory's mtime and ctime only.
    writeFileSync(join(checkpoint, 'x.tmp'), 't');
    rmSync(join(checkpoint, 'x.tmp'));
    expect(await stagedArchiveDir(journal, key)).toBe(before);
    // The same log kept (no exclude) is part of the archive: its growth counts.
    const keptLog = { ...key, exclude: ['wandb/'] };
    const withLog = await stagedArchiveDir(journal, keptLog);
    appendFileSync(join(checkpoint, 'train.log'), 'step 3\n');
    expect(await stagedArchiveDir(journal, keptLog)).not.toBe(withLog);
    // A link re-pointed to a target of the same length, its times put back: its target counts.
    const linkTimes = lstatSync(join(checkpoint, 'latest'));
    writeFileSync(join(checkpoint, 'weights.bak'), 'w');
    rmSync(join(checkpoint, 'latest'));
    symlinkSync('weights.bak', join(checkpoint, 'latest'));
    lutimesSync(join(checkpoint, 'latest'), linkTimes.atime, linkTimes.mtime);
    rmSync(join(checkpoint, 'weights.bak'));
    const repointed = await stagedArchiveDir(journal, key);
    expect(repointed).not.toBe(before);
    utimesSync(join(checkpoint, 'weights.bin'), HOUR_AGO, HOUR_AGO);
    expect(await stagedArchiveDir(journal, key)).not.toBe(repointed);
  });

  it('the key\'s own include and exclude decide what counts: a file outside its include grows without a new staging directory', async () => {
    const root = mkdtempSync(join(tmpdir(), 'au-staging-'));
    const checkpoint = join(root, 'ckpt');
    await mkdir(checkpoint);
    writeFileSync(join(checkpoint, 'weights.safetensors'), 'w');
    writeFileSync(join(checkpoint, 'notes.txt'), 'n');
    const key = { target: 'http://127.0.0.1:5000/', runId: 'run-1', artifactPath: 'best.tar.gz', directory: checkpoint, level: undefined, include: ['*.safetensors'], exclude: [] };
    const journal = join(root, 'journal');
    const before = await stagedArchiveDir(journal, key);
    appendFileSync(join(checkpoint, 'notes.txt'), 'more');
    expect(await stagedArchiveDir(journal, key)).toBe(before);
    appendFileSync(join(checkpoint, 'weights.safetensors'), 'more');
    expect(await stagedArchiveDir(journal, key)).not.toBe(before);
  });

  it('a lock temp file whose writer was killed before linking it is swept; a live writer\'s is kept', async () => {
    const { journal, dir } = await stage();
    const prefix = `.${basename(dir)}.lock.tmp-`;
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const deadWriters = tempFileName(prefix).replace(`-${process.pid}-`, `-${dead}-`);
    const liveWriters = tempFileName(prefix);
    // This process's pid, written before it started: a predecessor's (a container restarted as pid 1).
    const predecessors = tempFileName(prefix);
    for (const name of [deadWriters, liveWriters, predecessors]) writeFileSync(join(dirname(dir), name), '{"pid":1}');
    utimesSync(join(dirname(dir), predecessors), HOUR_AGO, HOUR_AGO);
    await removeStagedArchives(journal, { olderThanMs: 60_000 });
    expect(readdirSync(dirname(dir))).toEqual([liveWriters]);
  });

  it('the breaker file of a process killed while taking over a dead owner\'s lock is swept; a live breaker\'s is kept', async () => {
    const { journal, dir } = await stage();
    await mkdir(dirname(dir), { recursive: true });
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const breakerOf = (pid: number) => JSON.stringify({ pid, host: hostname(), token: `b${pid}`, at: Date.now() });
    const deadBreaker = `${basename(dir)}.lock.breaking`;
    const liveBreaker = `${'f'.repeat(40)}.lock.breaking`;
    writeFileSync(join(dirname(dir), deadBreaker), breakerOf(dead));
    writeFileSync(join(dirname(dir), liveBreaker), breakerOf(process.pid));
    await removeStagedArchives(journal, { olderThanMs: 60_000 });
    expect(readdirSync(dirname(dir))).toEqual([liveBreaker]);
  });
});
