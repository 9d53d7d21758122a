import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempFileName } from '../../src/core/atomic-write.js';
import { ownerHost } from '../../src/core/host-identity.js';
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

  it('a lock with this process\'s pid but a token it never issued is a dead run\'s (a container restarted as pid 1): taken over', async () => {
    const { dir } = await stage();
    await mkdir(dir, { recursive: true });
    writeFileSync(`${dir}.lock`, JSON.stringify({ pid: process.pid, host: ownerHost(), token: 'dead-run-token' }));
    const claim = await claimStagedArchive(dir);
    expect(claim).toBeDefined();
    expect(JSON.parse(readFileSync(`${dir}.lock`, 'utf8'))).toMatchObject({ pid: process.pid });
    expect(JSON.parse(readFileSync(`${dir}.lock`, 'utf8')).token).not.toBe('dead-run-token');
    // Its own live lock still keeps a second claim out.
    expect(await claimStagedArchive(dir)).toBeUndefined();
    await claim!.release();
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

  it('a lock temp file whose writer was killed before linking it is swept; a live writer\'s is kept', async () => {
    const { journal, dir } = await stage();
    const prefix = `.${basename(dir)}.lock.tmp-`;
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const deadWriters = tempFileName(prefix).replace(`-${process.pid}-`, `-${dead}-`);
    const liveWriters = tempFileName(prefix);
    for (const name of [deadWriters, liveWriters]) writeFileSync(join(dirname(dir), name), '{"pid":1}');
    await removeStagedArchives(journal, { olderThanMs: 60_000 });
    expect(readdirSync(dirname(dir))).toEqual([liveWriters]);
  });

  it('the breaker file of a process killed while taking over a dead owner\'s lock is swept; a live breaker\'s is kept', async () => {
    const { journal, dir } = await stage();
    await mkdir(dirname(dir), { recursive: true });
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const breakerOf = (pid: number) => JSON.stringify({ pid, host: ownerHost(), token: `b${pid}`, at: Date.now() });
    const deadBreaker = `${basename(dir)}.lock.breaking`;
    const liveBreaker = `${'f'.repeat(40)}.lock.breaking`;
    writeFileSync(join(dirname(dir), deadBreaker), breakerOf(dead));
    writeFileSync(join(dirname(dir), liveBreaker), breakerOf(process.pid));
    await removeStagedArchives(journal, { olderThanMs: 60_000 });
    expect(readdirSync(dirname(dir))).toEqual([liveBreaker]);
  });
});
