/**
 * Staged archives: where `archiveAndUploadCheckpoint` builds its archive and manifest so that a
 * rerun after a kill finds them again and the upload resumes (file level, and part level on
 * `s3://` and `gs://`) instead of starting over with a new archive (docs/resume.md).
 *
 * An archive is staged under `<journal dir>/archives/<key>/`, where the key hashes the upload's
 * destination (tracking target, run, artifact path), how it is archived (directory, gzip level,
 * include and exclude globs) and the identity of every entry of the checkpoint directory the
 * archive takes (path, type, mode, size, mtime, inode, link target), with the names of those it
 * leaves out as its manifest lists them. The same command over a directory whose archived files
 * are unchanged finds the archive it built before (the very same file, so the journal's record
 * of it still matches), however much a file it leaves out (a growing `*.log`, `wandb/`) changed;
 * any change to what it archives gives a new key and a fresh archive. `createCheckpointArchive`
 * writes archive and manifest under temp names and renames them as a pair, so a staged archive
 * is either complete or absent, whatever instant a kill comes at.
 *
 * A staging directory is removed when its upload completed, when its archiving failed (it holds
 * no archive then), by `resume clear` ({@link removeStagedArchives}), and when unused for as long
 * as a journal record lives.
 *
 * **One process per staging directory.** Two processes archiving the same unchanged directory to
 * the same run and path at once would compute the same key. They take turns at the destination
 * (destination-lock.ts: the second stages after the first's upload ended), so this is for when
 * they do not (that lock could not be written). The one that stages takes
 * `archives/<key>.lock` first ({@link claimStagedArchive}: created whole or not at all, like
 * `O_EXCL`, holding its owner's pid, host and token, refreshed every minute); the other finds the owner alive and builds its archive
 * in a private temp directory, as without a journal (the two uploads race as two uploads of the
 * same bytes to one path do; the store keeps one whole copy). A lock whose owner died (same host:
 * its pid is gone; another host: not refreshed for 10 minutes) is taken over, with the staged
 * archive it guards, by the next run: broken one process at a time, judged again under
 * `<key>.lock.breaking` (core/lock-breaker.ts), so a process acting on its judgement of the dead
 * lock never removes the lock of the one that took the directory over first. The lock lives
 * beside the directory, not in it, so the owner can delete the directory before it lets go of
 * the lock; {@link removeStagedArchives} deletes an abandoned directory holding its lock too.
 *
 * @module
 */
import { createHash, randomBytes } from '../core/node-crypto.js';
import { lstat, mkdir, readdir, readFile, readlink, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { leftByDeadWriter, prepareExclusiveFile, processAlive, touchedByThisProcess, type ExclusiveFile } from '../core/atomic-write.js';
import { breakLockIfStale, readLockOwnerPatiently, releaseOwnLock, removeStaleBreaker, type LockVerdict } from '../core/lock-breaker.js';
import { archiveSelector, type ArchiveSelection, type ArchiveSelector } from '../archive/create-checkpoint-archive.js';
import { walkAsArchived } from '../archive/walk-as-archived.js';
import { readManifest, manifestFileName, type CheckpointManifest } from '../archive/manifest.js';
import { shouldSkipFile } from '../archive/should-skip-file.js';
import { pathFilters, type PathFilters } from './plan.js';

/** The folder of the journal directory that holds staged archives. */
export const STAGED_ARCHIVES_FOLDER = 'archives';

/** What a staged archive is for and made of: everything that changes its bytes or its destination. */
export interface StagedArchiveKey {
  /** Tracking target without credentials. */
  target: string;
  runId: string;
  /** Artifact path of the archive. */
  artifactPath: string;
  /** The checkpoint directory (absolute). */
  directory: string;
  level: number | undefined;
  include: readonly string[];
  exclude: readonly string[];
}

/** A staged archive found complete. */
export interface StagedArchive {
  archivePath: string;
  manifest: CheckpointManifest;
}

/**
 * One line per entry under `dir` as the archive sees it (sorted): what `leftOut` leaves out only
 * by its manifest record (path, reason, pattern), never looked into, so a log the archive leaves
 * out can grow, and a left-out `wandb/` or `__pycache__/` fill up, without the archive being
 * built again; and everything the archive takes in full (type, mode, size, mtime and ctime in ns,
 * inode, a link's target), so any file added, removed, rewritten, touched, `chmod`ed or re-pointed
 * changes it. The mode goes into the archive's tar headers; the ctime also catches a rewrite
 * whose mtime was put back. A directory's own times and size are not in it: they move whenever a
 * name is made or removed in it (a left-out log rotated, a temp file), and the archive dates a
 * directory by the files it holds (`directoryTimes` in create-checkpoint-archive.ts), which are.
 */
async function directoryIdentity(dir: string, leftOut: ArchiveSelector): Promise<string> {
  const lines: string[] = [];
  // The archive's own walk (walkAsArchived): the same entries taken and left out as its scan.
  await walkAsArchived(dir, {
    leftOut,
    lookUp: (path) => lstat(path, { bigint: true }),
    onSkipped: (skipped) => lines.push(`s ${JSON.stringify(skipped)}`),
    onTaken: async ({ path, type, lookup, fileInfo }) => {
      const info = fileInfo ?? (await lstat(lookup, { bigint: true }));
      if (type === 'directory') {
        lines.push(`d ${info.mode.toString(8)} ${info.ino} ${JSON.stringify(path)}`);
        return;
      }
      const target = type === 'symlink' ? ` -> ${JSON.stringify((await readlink(lookup)).toString())}` : '';
      lines.push(`${type === 'file' ? 'f' : 'l'} ${info.mode.toString(8)} ${info.size} ${info.mtimeNs} ${info.ctimeNs} ${info.ino} ${JSON.stringify(path)}${target}`);
    },
  });
  return lines.join('\n');
}

/**
 * What the archive of a directory takes, by the upload's filters: the archive is built with it
 * and the staging key is computed with it ({@link stagedArchiveDir}), so that a file the archive
 * leaves out never decides whether a staged archive is reused (docs/resume.md).
 *
 * @example
 * ```ts
 * const selection = archiveSelectionOf(pathFilters(['*.safetensors'], ['*.log']));
 * await createCheckpointArchive(directory, out, { ...selection, level: 1 });
 * ```
 */
export function archiveSelectionOf(filters: PathFilters): ArchiveSelection {
  return {
    exclude: filters.exclude,
    // Only with an include list: the default filter records its skips as `default-skip-list`.
    filter:
      filters.include.length > 0
        ? (path: string, entry: { type: string }) => !shouldSkipFile(path) && (entry.type === 'directory' || filters.included(path) !== undefined)
        : undefined,
  };
}

/**
 * The staging directory of an archive: `<journalDir>/archives/<sha256 of key + directory
 * identity>`. The identity is taken with the selection the archive is built with, from the
 * key's own `include` and `exclude` ({@link archiveSelectionOf}): it covers what the archive
 * takes, and only the names of what it leaves out. Only `archives/` is made (owner only); the
 * directory itself is made by {@link claimStagedArchive}, by the process that owns it. Costs one
 * `lstat` per entry the archive takes (and per file it leaves out); a directory it leaves out is
 * not read at all.
 *
 * @example
 * ```ts
 * const stage = await stagedArchiveDir(journal.dir, { target, runId, artifactPath: 'best.tar.gz', directory, level: undefined, include: [], exclude: ['*.log'] });
 * ```
 */
export async function stagedArchiveDir(journalDir: string, key: StagedArchiveKey): Promise<string> {
  // The selection from the key, never passed beside it: a key and a selection that disagree
  // would file an archive under filters it was not built with.
  const selection = archiveSelectionOf(pathFilters(key.include, key.exclude));
  const hash = createHash('sha256')
    .update(JSON.stringify({ ...key, level: key.level ?? null }))
    .update('\n')
    .update(await directoryIdentity(key.directory, archiveSelector(selection)))
    .digest('hex');
  const root = join(journalDir, STAGED_ARCHIVES_FOLDER);
  await mkdir(root, { recursive: true, mode: 0o700 });
  return join(root, hash.slice(0, 40));
}

/** The file of a staging directory that says what the archive is for ({@link StagedArchiveKey}). */
const STAGE_INFO_FILE = 'stage.json';

/** A lock of another host not refreshed for this long is taken for abandoned (as the journal's records: 10 minutes). */
const STAGE_OWNER_STALE_MS = 10 * 60_000;
/** How often an owner refreshes its lock (its mtime), so that another host sees it alive. */
const STAGE_LOCK_REFRESH_MS = 60_000;

/** What a staging lock holds. */
interface StageLockOwner {
  pid: number;
  host: string;
  token: string;
}

/** This process's hold on a staging directory: {@link StageClaim.release} once the directory is deleted (or kept for a rerun). */
export interface StageClaim {
  release(): Promise<void>;
}

/** The lock of a staging directory: beside it, so the directory can go before the lock does. */
function stageLockPath(stageDir: string): string {
  return `${stageDir}.lock`;
}

/**
 * What a staging lock says of its owner: the owner; nothing when it is torn (or gone); or
 * `unreadable` when it is there and could not be read even after a few tries
 * (`readLockOwnerPatiently`).
 */
function readStageLock(path: string): Promise<{ owner?: StageLockOwner; unreadable?: true }> {
  return readLockOwnerPatiently<StageLockOwner>(path);
}

/** True when the lock at `path` may belong to a live process (other than a dead one on this host or a silent one elsewhere). */
async function stageLockLive(path: string, now = Date.now()): Promise<boolean> {
  const info = await stat(path).catch(() => undefined);
  return info !== undefined && stageOwnerLive(await readStageLock(path), info.mtimeMs, now);
}

/**
 * Whether the owner a lock names may be alive, the lock last refreshed at `mtimeMs`. A lock that
 * cannot be read is: a lock of a live process on this host is live however old its heartbeat
 * (a stopped process, a refresh that failed), so whose it is must be known to judge it stale.
 * Read by age, a transient read error broke such a lock; read as "no owner" at once, it made a
 * rerun after a kill build its archive elsewhere instead of resuming (the read is tried again
 * first, which settles a transient error).
 */
function stageOwnerLive(read: { owner?: StageLockOwner; unreadable?: true }, mtimeMs: number, now = Date.now()): boolean {
  if (read.unreadable) return true;
  const { owner } = read;
  // A lock of this process's pid is ours when touched since this process started (its owner
  // refreshes it every minute); one touched before is a predecessor's with the same pid, whose
  // archive must be resumed, not left forever (touchedByThisProcess: not a set of the tokens this
  // module instance issued, which another instance in this process, a worker thread or the other
  // build, would not know).
  if (owner?.host === hostname()) return owner.pid === process.pid ? touchedByThisProcess(mtimeMs) : processAlive(owner.pid);
  // Another host's (or a torn lock, of an earlier version): alive while refreshed.
  return now - mtimeMs < STAGE_OWNER_STALE_MS;
}

/** A staging lock as core/lock-breaker.ts judges it: stale when it exists and its owner is gone; with its token. */
async function judgeStageLock(path: string): Promise<LockVerdict> {
  const info = await stat(path).catch(() => undefined);
  if (!info) return { stale: false, token: undefined };
  const read = await readStageLock(path);
  return { stale: !stageOwnerLive(read, info.mtimeMs), token: read.owner?.token };
}

/**
 * Removes a staging lock whose owner died, one breaker at a time (core/lock-breaker.ts): a
 * process acting on its judgement of the dead lock after another took the directory over would
 * remove the new owner's lock, and two processes would build and upload in the same directory.
 */
function breakStageLock(lockPath: string): Promise<boolean> {
  return breakLockIfStale(lockPath, judgeStageLock, { mode: 0o600 });
}

/** How many times a claim makes `archives/` again when another upload removed it, empty, under it. */
const FOLDER_ATTEMPTS = 5;

/**
 * The lock's temp file, written in `archives/`, made again when it is gone. Every upload that
 * ends removes `archives/` once it is empty (transfer.ts), so with trials of a sweep sharing the
 * journal, one trial finishing between another's `mkdir` of the folder ({@link stagedArchiveDir})
 * and this write took the folder away: the claim failed with ENOENT, and that trial's archive
 * was built in a temp directory (with a warning), where a rerun after a kill cannot find it.
 * Once the temp file is in it, the folder is not empty and stays.
 */
async function prepareStageLock(lockPath: string, content: string): Promise<ExclusiveFile> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await prepareExclusiveFile(lockPath, content, { mode: 0o600 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= FOLDER_ATTEMPTS) throw error;
      await mkdir(dirname(lockPath), { recursive: true, mode: 0o700 });
    }
  }
}

/**
 * Takes the staging directory for this process: creates `<stageDir>.lock` (whole, where none exists) and
 * the directory, with `key` written in it for `resume list`. Returns `undefined` when a live process holds it (the caller builds its archive
 * elsewhere); a lock whose owner died is taken over. The lock is refreshed every minute while held.
 *
 * @example
 * ```ts
 * const claim = await claimStagedArchive(stage, key);
 * if (!claim) console.log('another process is archiving this; build elsewhere');
 * await claim?.release();
 * ```
 */
export async function claimStagedArchive(stageDir: string, key?: StagedArchiveKey): Promise<StageClaim | undefined> {
  const lockPath = stageLockPath(stageDir);
  const token = randomBytes(8).toString('hex');
  // Whole or not at all: an empty lock (its owner killed between creating and writing it) would
  // read as another host's and count as live for STAGE_OWNER_STALE_MS.
  const lock = await prepareStageLock(lockPath, JSON.stringify({ pid: process.pid, host: hostname(), token } satisfies StageLockOwner));
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      if (!(await lock.tryCreate())) {
        if (await stageLockLive(lockPath)) return undefined;
        // Its owner died: remove its lock (unless another process is at it) and try again.
        await breakStageLock(lockPath);
        continue;
      }
      await mkdir(stageDir, { recursive: true, mode: 0o700 });
      // What it is for, for `resume list` (no secret: the target has none).
      if (key) await writeFile(join(stageDir, STAGE_INFO_FILE), `${JSON.stringify(key)}\n`, { mode: 0o600 }).catch(() => undefined);
      const refresh = setInterval(() => {
        const now = new Date();
        void utimes(lockPath, now, now).catch(() => undefined);
      }, STAGE_LOCK_REFRESH_MS);
      refresh.unref();
      return {
        release: async () => {
          clearInterval(refresh);
          // Only our own lock: a slow owner whose lock was taken over leaves the new one alone. A
          // read error is tried again (releaseOwnLock): taken for another's lock, ours stayed, and
          // a rerun in this process found the directory held and could not resume. Still
          // unreadable, it is left: the journal never makes an upload fail, and the lock is taken
          // over once this process is gone.
          await releaseOwnLock(lockPath, token).catch(() => undefined);
        },
      };
    }
    return undefined;
  } finally {
    await lock.discard();
  }
}

/**
 * The archive a killed earlier run completed in `stageDir`, if any: archive and manifest both
 * present and the archive of the manifest's size. A found archive's directory is touched (unless
 * `touch: false`), so its age counts from its last use.
 *
 * @example
 * ```ts
 * const staged = await findStagedArchive(stage, 'best.tar.gz');
 * ```
 */
export async function findStagedArchive(stageDir: string, archiveName: string, options: { touch?: boolean } = {}): Promise<StagedArchive | undefined> {
  const archivePath = join(stageDir, archiveName);
  const manifest = await readManifest(join(stageDir, manifestFileName(archiveName))).catch(() => undefined);
  if (!manifest) return undefined;
  const size = (await stat(archivePath).catch(() => undefined))?.size;
  if (size !== manifest.archive.size) return undefined;
  if (options.touch === false) return { archivePath, manifest };
  const now = new Date();
  await utimes(stageDir, now, now).catch(() => undefined);
  return { archivePath, manifest };
}

/**
 * Whether the journal holds anything under its staged-archives folder (a staged archive, a lock,
 * a lock's leftovers): what {@link removeStagedArchives} may have to delete.
 *
 * @example
 * ```ts
 * if (await hasStagedArchives(journalDir)) console.log('staged archives to look at');
 * ```
 */
export async function hasStagedArchives(journalDir: string): Promise<boolean> {
  return (await readdir(join(journalDir, STAGED_ARCHIVES_FOLDER)).catch(() => [] as string[])).length > 0;
}

/**
 * Whether `resume clear` deletes a staged archive ({@link removeStagedArchives}): not held by an
 * upload running now, and unused for `olderThanMs` when that is given. What `--dry-run` lists
 * by the same rule.
 *
 * @example
 * ```ts
 * const due = (await listStagedArchives(dir)).filter((a) => isDueForClear(a, 7 * 24 * 3600_000, Date.now()));
 * ```
 */
export function isDueForClear(archive: Pick<StagedArchiveEntry, 'usedAt' | 'inUse'>, olderThanMs: number | undefined, now: number): boolean {
  return !archive.inUse && (olderThanMs === undefined || now - archive.usedAt >= olderThanMs);
}

/**
 * Deletes staged archives: all of them, or those not used for `olderThanMs`, except those a live
 * process holds (its upload in progress), with their locks (each deleted holding its lock, taken
 * over from a dead owner as a claimer would); and the locks dead owners left without a
 * directory, and what killed breakers left. Returns the directories removed. A missing journal
 * directory has none.
 *
 * @example
 * ```ts
 * await removeStagedArchives(journal.dir, { olderThanMs: 7 * 24 * 3600_000 });
 * ```
 */
export async function removeStagedArchives(journalDir: string, options: { olderThanMs?: number } = {}): Promise<string[]> {
  const root = join(journalDir, STAGED_ARCHIVES_FOLDER);
  const names = await readdir(root).catch(() => [] as string[]);
  const removed: string[] = [];
  const now = Date.now();
  for (const name of names) {
    const path = join(root, name);
    if (name.endsWith('.lock')) {
      // A lock without its directory (its owner killed between the two): gone with its owner.
      const dir = path.slice(0, -'.lock'.length);
      // Broken like a claimer breaks it: by name, after the check, it could be a new owner's.
      if (!names.includes(dir.slice(root.length + 1))) await breakStageLock(path);
      continue;
    }
    // A process killed while it broke a dead owner's lock: gone with its process.
    if (name.endsWith('.lock.breaking')) {
      await removeStaleBreaker(path);
      continue;
    }
    // A lock moved aside, or a lock's temp file whose writer was killed before it was linked.
    if (name.includes('.lock.broken-') || (name.includes('.tmp-') && leftByDeadWriter(name, (await lstat(path).catch(() => undefined))?.mtimeMs))) {
      await rm(path, { force: true });
      continue;
    }
    const info = await stat(path).catch(() => undefined);
    if (!info?.isDirectory()) continue;
    if (!isDueForClear({ usedAt: info.mtimeMs, inUse: false }, options.olderThanMs, now)) continue;
    if (await stageLockLive(stageLockPath(path), now)) continue;
    // Deleted holding its lock, as its owner would: checked and deleted without it, a rerun
    // could take the directory over in between and lose it (archive, then lock) mid-upload.
    const claim = await claimStagedArchive(path);
    if (!claim) continue;
    try {
      await rm(path, { recursive: true, force: true });
    } finally {
      await claim.release();
    }
    removed.push(path);
  }
  return removed;
}

/** A staging directory, as `resume list` shows it. */
export interface StagedArchiveEntry {
  /** The staging directory (its name is the key). */
  dir: string;
  /** What it was staged for, when known (written when it was claimed). */
  key?: StagedArchiveKey;
  /** Bytes it holds (archive, manifest, a killed writer's temp file). */
  size: number;
  /** True when archive and manifest are both complete (a rerun reuses them). */
  complete: boolean;
  /** Epoch ms of its last use. */
  usedAt: number;
  /** True when a live process holds it (an archive upload running now). */
  inUse: boolean;
}

/**
 * The staged archives of a journal directory, most recently used first. A missing journal
 * directory has none.
 *
 * @example
 * ```ts
 * for (const staged of await listStagedArchives(journal.dir)) console.log(staged.dir, staged.size);
 * ```
 */
export async function listStagedArchives(journalDir: string): Promise<StagedArchiveEntry[]> {
  const root = join(journalDir, STAGED_ARCHIVES_FOLDER);
  const out: StagedArchiveEntry[] = [];
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const dir = join(root, name);
    const info = await stat(dir).catch(() => undefined);
    if (!info?.isDirectory()) continue;
    let size = 0;
    const files = await readdir(dir).catch(() => [] as string[]);
    for (const file of files) size += (await stat(join(dir, file)).catch(() => undefined))?.size ?? 0;
    const key = await readFile(join(dir, STAGE_INFO_FILE), 'utf8').then((t) => JSON.parse(t) as StagedArchiveKey, () => undefined);
    const archiveName = key ? key.artifactPath.split('/').pop()! : files.find((f) => f.endsWith('.tar.gz'));
    const complete = archiveName !== undefined && (await findStagedArchive(dir, archiveName, { touch: false })) !== undefined;
    out.push({ dir, ...(key ? { key } : {}), size, complete, usedAt: info.mtimeMs, inUse: await stageLockLive(stageLockPath(dir)) });
  }
  return out.sort((a, b) => b.usedAt - a.usedAt);
}
