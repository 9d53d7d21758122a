import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { atomicWrite, commitStaged, leftByDeadWriter, makeTempDir, prepareExclusiveFile, removeStaleTempFiles, stageFile, tempFileName, tempFileOwner, writeFileAtomic } from '../../src/core/atomic-write.js';
import { DiskFullError, diskFullError } from '../../src/core/errors.js';
import { JsonStateFile } from '../../src/core/json-state-file.js';
import { statSync } from 'node:fs';

const HOUR_AGO = new Date(Date.now() - 60 * 60_000);
const scratch = () => mkdtempSync(join(tmpdir(), 'au-atomic-'));
/** The pid of a process that has exited (spawned, waited for). */
const deadPid = () => spawnSync(process.execPath, ['-e', '']).pid!;

describe('atomic write', () => {
  it('names temp files by owner, and reads the owner back', () => {
    const name = tempFileName('m.json.tmp-');
    expect(tempFileOwner(name, 'm.json.tmp-')).toEqual({ pid: process.pid, host: expect.stringMatching(/^[0-9a-f]{6}$/) });
    expect(tempFileOwner('m.json.tmp-whatever', 'm.json.tmp-')).toBeUndefined();
    expect(tempFileOwner(name, 'other-')).toBeUndefined();
  });

  it('tells a temp file whose writer on this host is gone, by its name alone', () => {
    const mine = tempFileName('.r.json.tmp-');
    expect(leftByDeadWriter(mine)).toBe(false);
    expect(leftByDeadWriter(mine.replace(`-${process.pid}-`, `-${deadPid()}-`))).toBe(true);
    // Another host's writer, or a name of another shape, is never judged dead here.
    expect(leftByDeadWriter(mine.replace(/-([0-9a-f]{6})-/, (m, h: string) => `-${h === '000000' ? '111111' : '000000'}-`).replace(`-${process.pid}-`, `-${deadPid()}-`))).toBe(false);
    expect(leftByDeadWriter('.r.json.tmp-whatever.tmp')).toBe(false);
    expect(leftByDeadWriter('notes.txt')).toBe(false);
  });

  it('tells a predecessor\'s temp file with this process\'s pid by the mtime it is given', () => {
    const mine = tempFileName('.r.json.tmp-');
    // Written since this process started: its own, alive.
    expect(leftByDeadWriter(mine, Date.now())).toBe(false);
    // Written before: a predecessor's with the same pid (a container restarted as pid 1).
    expect(leftByDeadWriter(mine, HOUR_AGO.getTime())).toBe(true);
    // Another host's stays another host's, however old.
    const otherHosts = mine.replace(/-([0-9a-f]{6})-/, (m, h: string) => `-${h === '000000' ? '111111' : '000000'}-`);
    expect(leftByDeadWriter(otherHosts, HOUR_AGO.getTime())).toBe(false);
  });

  it('creates a file whole where none exists, and only once; the temp file goes with discard()', async () => {
    const dir = scratch();
    const target = join(dir, 'state.json.lock');
    const first = await prepareExclusiveFile(target, '{"pid":1}', { mode: 0o600 });
    const second = await prepareExclusiveFile(target, '{"pid":2}');
    // Before it is linked, the target does not exist: nobody can see it empty.
    expect(readdirSync(dir).filter((n) => n === 'state.json.lock')).toEqual([]);
    expect(await first.tryCreate()).toBe(true);
    expect(await second.tryCreate()).toBe(false);
    expect(readFileSync(target, 'utf8')).toBe('{"pid":1}');
    expect(statSync(target).mode & 0o777).toBe(0o600);
    await Promise.all([first.discard(), second.discard()]);
    expect(readdirSync(dir)).toEqual(['state.json.lock']);
  });

  it('replaces a file and leaves no temp file; a failing writer leaves the old content and no temp file', async () => {
    const dir = scratch();
    const target = join(dir, 'state.json');
    await writeFileAtomic(target, 'one');
    await writeFileAtomic(target, 'two');
    expect(readFileSync(target, 'utf8')).toBe('two');
    await expect(
      atomicWrite(target, async (temp) => {
        writeFileSync(temp, 'half');
        throw new Error('writer failed');
      }),
    ).rejects.toThrow('writer failed');
    expect(readFileSync(target, 'utf8')).toBe('two');
    expect(readdirSync(dir)).toEqual(['state.json']);
  });

  it('commits staged files together: when the second rename fails, the first target gets its old content back', async () => {
    const dir = scratch();
    writeFileSync(join(dir, 'a'), 'old a');
    const a = await stageFile(join(dir, 'a'), (temp) => Promise.resolve(writeFileSync(temp, 'new a')));
    mkdirSync(join(dir, 'b', 'full'), { recursive: true }); // a non-empty directory cannot be renamed over
    const b = await stageFile(join(dir, 'b'), (temp) => Promise.resolve(writeFileSync(temp, 'new b')));
    await expect(commitStaged([a, b])).rejects.toThrow();
    expect(readFileSync(join(dir, 'a'), 'utf8')).toBe('old a');
    expect(readdirSync(dir).sort()).toEqual(['a', 'b']);

    // A target that did not exist before is removed again.
    const c = await stageFile(join(dir, 'c'), (temp) => Promise.resolve(writeFileSync(temp, 'new c')));
    const b2 = await stageFile(join(dir, 'b'), (temp) => Promise.resolve(writeFileSync(temp, 'new b')));
    await expect(commitStaged([c, b2])).rejects.toThrow();
    expect(readdirSync(dir).sort()).toEqual(['a', 'b']);
  });

  it('removes only temp files that are old AND whose owner is gone', async () => {
    const dir = scratch();
    const dead = deadPid();
    const names = {
      deadOld: tempFileName('x.tmp-').replace(`-${process.pid}-`, `-${dead}-`),
      deadFresh: tempFileName('x.tmp-').replace(`-${process.pid}-`, `-${dead}-`),
      aliveOld: tempFileName('x.tmp-'),
      otherPrefix: tempFileName('y.tmp-').replace(`-${process.pid}-`, `-${dead}-`),
      notOurs: 'x.tmp-something-else',
    };
    for (const name of Object.values(names)) writeFileSync(join(dir, name), '');
    for (const name of [names.deadOld, names.aliveOld, names.otherPrefix, names.notOurs]) utimesSync(join(dir, name), HOUR_AGO, HOUR_AGO);
    // aliveOld has this process's pid but was last written an hour ago, before this process
    // started: a predecessor's with the same pid (a container restarted as pid 1), removed.
    expect((await removeStaleTempFiles(dir, 'x.tmp-')).sort()).toEqual([join(dir, names.deadOld), join(dir, names.aliveOld)].sort());
    expect(readdirSync(dir).sort()).toEqual([names.deadFresh, names.otherPrefix, names.notOurs].sort());
    expect(await removeStaleTempFiles(join(dir, 'missing'), 'x.tmp-')).toEqual([]);
    // One of this process's, written since it started, is kept however old it is allowed to be.
    const ours = join(scratch(), tempFileName('x.tmp-'));
    writeFileSync(ours, '');
    utimesSync(ours, new Date(Date.now() - 10), new Date(Date.now() - 10));
    expect(await removeStaleTempFiles(dirname(ours), 'x.tmp-', { olderThanMs: 0 })).toEqual([]);
  });

  it('makeTempDir creates an owner-named directory and removes stale ones first', async () => {
    const parent = scratch();
    const stale = join(parent, tempFileName('au-test-').replace(`-${process.pid}-`, `-${deadPid()}-`));
    mkdirSync(stale);
    writeFileSync(join(stale, 'left.bin'), 'x');
    utimesSync(stale, HOUR_AGO, HOUR_AGO);
    const dir = await makeTempDir('au-test-', parent);
    expect(readdirSync(parent)).toEqual([dir.slice(parent.length + 1)]);
    expect(tempFileOwner(dir.slice(parent.length + 1), 'au-test-')?.pid).toBe(process.pid);
  });

  it('maps ENOSPC and EDQUOT to DiskFullError naming the destination', () => {
    const full = diskFullError(Object.assign(new Error('write ENOSPC'), { code: 'ENOSPC' }), '/data/out.bin');
    expect(full).toBeInstanceOf(DiskFullError);
    expect(full).toMatchObject({ code: 'DISK_FULL', path: '/data/out.bin', errno: 'ENOSPC' });
    expect(full?.message).toContain('/data/out.bin');
    expect(diskFullError(Object.assign(new Error('quota'), { code: 'EDQUOT' }), '/q')?.message).toMatch(/quota/);
    expect(diskFullError(Object.assign(new Error('nope'), { code: 'EACCES' }), '/q')).toBeUndefined();
  });

  it('a JSON state file writes through it (owner-only modes kept) and sweeps a dead writer\'s temp file once', async () => {
    const dir = scratch();
    const path = join(dir, 'state', 'tracker.json');
    mkdirSync(join(dir, 'state'));
    const left = join(dir, 'state', tempFileName('.tracker.json.tmp-').replace(`-${process.pid}-`, `-${deadPid()}-`));
    writeFileSync(left, '{"half":');
    utimesSync(left, HOUR_AGO, HOUR_AGO);
    const { z } = await import('zod');
    const file = new JsonStateFile(path, async () => z.object({ n: z.number() }), { empty: () => ({ n: 0 }), ownerOnly: true });
    await file.update((s) => ({ state: { n: s.n + 1 }, result: undefined }));
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ n: 1 });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(dir, 'state')).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});
