/**
 * One archive upload per destination at a time **across processes** that share a journal
 * directory. An archive and its manifest are two writes: two trials run as separate processes
 * (one `artifact-uploader hpo` call each) that stored different best checkpoints at the same
 * path at once went archive, archive, manifest, manifest, and the run could keep one trial's
 * archive beside the other's manifest (and the trial whose archive was replaced before it was
 * verified failed with `VERIFICATION_FAILED`). Within one process, `oneDestinationAtATime`
 * (dedupe.ts) orders the calls without touching the disk; around each call's turn this module
 * holds `<journal dir>/destinations/<hash of the destination>.lock`, so that the archive and
 * manifest in the run are one upload's, whichever process made it.
 *
 * **The lock.** Created whole where none exists (`prepareExclusiveFile`: written to a temp file,
 * then hard-linked to its name, which fails like `O_EXCL`), holding its holder's pid, host and a
 * one-off token; removed by its holder when the upload ends (uploaded, failed or aborted), and
 * the folder with it once empty. The name hashes the destination (the run's artifact URI and the
 * manifest's path), so nothing of a URI, a credential included, is written to disk.
 *
 * **Staleness.** The lock is held for a whole upload, minutes for a multi-GB archive, so its age
 * says nothing. It is stale when
 * - its holder's process is gone (same host: the pid in the lock no longer exists; a lock of
 *   this process's pid last touched before this process started is a predecessor's, e.g. a
 *   container restarted with its hostname and pid 1 kept), or
 * - its holder stopped refreshing it: the holder sets the lock's mtime to now every
 *   {@link DESTINATION_LOCK_REFRESH_MS} (30 s, an `unref()`d timer), and a lock not refreshed
 *   for {@link DESTINATION_LOCK_STALE_MS} (5 minutes, ten refreshes missed) is abandoned, on any
 *   host: what tells a dead holder on another host sharing the journal directory, and a pid
 *   reused by an unrelated process. The hosts' clocks must agree within that bound. A holder
 *   whose event loop is blocked (or whose process is stopped) for longer loses its exclusion.
 *
 * A stale lock is broken one process at a time through core/lock-breaker.ts (judged again under
 * `<lock>.breaking`), by a waiter, or by the journal's sweep ({@link sweepDestinationLocks})
 * with the leftovers of killed breakers and writers.
 *
 * **Waiting.** A waiter tries again with a bounded backoff (10 ms doubling to
 * {@link MAX_POLL_MS}: one `link` attempt and one read of the lock per try), stops at once with an
 * {@link AbortedError} when its `signal` fires, and is told once that it waits (`onWait`, an info
 * line). The order across processes is not first come, first served: the pair in the run is the
 * last holder's, whole.
 *
 * **What it does not cover.** Processes whose journal directories differ (different users,
 * different `journalDir`s, different machines without a shared journal directory) do not see
 * each other's locks. A lock that cannot be taken because the journal directory cannot be written
 * is given up with a warning and the upload goes on (the journal never makes an upload fail), as
 * it does without a journal.
 *
 * @module
 */
import { createHash, randomBytes } from '../core/node-crypto.js';
import { mkdir, readdir, rm, rmdir, stat, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { sleep } from '../core/abort.js';
import { leftByDeadWriter, prepareExclusiveFile, processAlive, touchedByThisProcess } from '../core/atomic-write.js';
import { AbortedError } from '../core/errors.js';
import { breakLockIfStale, readLockOwner, releaseOwnLock, removeStaleBreaker, type LockVerdict } from '../core/lock-breaker.js';
import type { Logger } from '../core/logger.js';

/** The folder of the journal directory that holds the destination locks. */
export const DESTINATION_LOCKS_FOLDER = 'destinations';

/** How often a holder sets its lock's mtime to now, in ms. */
export const DESTINATION_LOCK_REFRESH_MS = 30_000;

/** A lock not refreshed for this long is abandoned, in ms (any host): ten refreshes missed. */
export const DESTINATION_LOCK_STALE_MS = 10 * DESTINATION_LOCK_REFRESH_MS;

/** The longest pause between two tries of a waiter, in ms. */
const MAX_POLL_MS = 500;

/** A temp file (of a lock being created) or a lock moved aside, untouched for this long, was left by a killed process. */
const LEFTOVER_MS = 60_000;

/** What a destination lock holds. */
interface DestinationLockOwner {
  pid: number;
  host: string;
  token: string;
}

/** The lock file of a destination (a hash: no URI on disk). */
function lockPathOf(journalDir: string, destination: string): string {
  const hash = createHash('sha256').update(destination).digest('hex').slice(0, 40);
  return join(journalDir, DESTINATION_LOCKS_FOLDER, `${hash}.lock`);
}

/** Temp files of a lock being created (and of its breaker file): `.<name>.tmp-<owner>`, swept by owner. */
function tempPrefix(lockPath: string): string {
  return `.${basename(lockPath)}.tmp-`;
}

/** A destination lock as core/lock-breaker.ts judges it (see the module comment); absent is not stale. */
async function judgeDestinationLock(path: string): Promise<LockVerdict> {
  const info = await stat(path).catch(() => undefined);
  if (!info) return { stale: false, token: undefined };
  const silent = Date.now() - info.mtimeMs > DESTINATION_LOCK_STALE_MS;
  const owner = await readLockOwner<DestinationLockOwner>(path);
  if (!owner) return { stale: silent, token: undefined };
  const gone = owner.host === hostname() && (owner.pid === process.pid ? !touchedByThisProcess(info.mtimeMs) : !processAlive(owner.pid));
  return { stale: gone || silent, token: owner.token };
}

/** Breaks the lock at `lockPath` when its holder is gone, one breaker at a time. */
function breakDestinationLock(lockPath: string): Promise<boolean> {
  return breakLockIfStale(lockPath, judgeDestinationLock, { prefix: tempPrefix(lockPath), mode: 0o600 });
}

/** Removes the locks folder when it is empty (a normal run leaves nothing); never throws. */
async function removeFolderIfEmpty(folder: string): Promise<void> {
  await rmdir(folder).catch(() => undefined);
}

/** This process's hold on a destination: {@link DestinationLock.release} once the upload ended. */
export interface DestinationLock {
  /**
   * Removes the lock (when it is still ours) and the locks folder once empty.
   * @throws {LocalPathError} `PATH_UNREADABLE` when the lock cannot be read to tell whether it is ours (it stays).
   */
  release(): Promise<void>;
}

/** Options of {@link holdDestinationLock}. */
export interface HoldDestinationLockOptions {
  /** Stops the wait at once (an {@link AbortedError}). */
  signal?: AbortSignal;
  /** Called once, when the lock is held by another process and the call has to wait. */
  onWait?: () => void;
}

/**
 * Takes the lock of `destination` in `journalDir`, waiting while a live process holds it and
 * breaking it when its holder is gone (see the module comment). The lock is refreshed while held.
 *
 * @throws {AbortedError} when `signal` fires while it waits.
 * @example
 * ```ts
 * const lock = await holdDestinationLock(journal.dir, JSON.stringify([artifactUri, 'best.manifest.json']), { signal });
 * try { await upload(); } finally { await lock.release(); }
 * ```
 */
export async function holdDestinationLock(journalDir: string, destination: string, options: HoldDestinationLockOptions = {}): Promise<DestinationLock> {
  const { signal, onWait } = options;
  const lockPath = lockPathOf(journalDir, destination);
  const folder = join(journalDir, DESTINATION_LOCKS_FOLDER);
  const token = randomBytes(8).toString('hex');
  const content = JSON.stringify({ pid: process.pid, host: hostname(), token } satisfies DestinationLockOwner);
  const aborted = () => new AbortedError('The upload was aborted while it waited for another process\'s upload to the same destination.', { cause: signal?.reason });
  let waited = false;
  for (let wait = 10; ; wait = Math.min(wait * 2, MAX_POLL_MS)) {
    if (signal?.aborted) throw aborted();
    let attempt: 'taken' | 'broken' | 'held';
    try {
      attempt = await tryTake(lockPath, folder, content);
    } catch (error) {
      // The folder was removed, empty, by a holder letting go (or a sweep) in the middle of the
      // try (the mkdir's check, the write of the temp file or of the breaker's): again.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    if (attempt === 'taken') return held(lockPath, folder, token);
    if (attempt === 'broken') continue;
    if (!waited) {
      waited = true;
      onWait?.();
    }
    await sleep(wait, signal).catch(() => {
      throw aborted();
    });
  }
}

/**
 * One try: the lock created (`taken`), or found held by a process that is gone and removed
 * (`broken`: try again at once), or held by a live one (`held`).
 */
async function tryTake(lockPath: string, folder: string, content: string): Promise<'taken' | 'broken' | 'held'> {
  await mkdir(folder, { recursive: true, mode: 0o700 });
  // Prepared afresh for each try: the lock's mtime is its heartbeat, and a lock linked from a
  // temp file written minutes ago would read as abandoned the moment it is taken.
  const file = await prepareExclusiveFile(lockPath, content, { prefix: tempPrefix(lockPath), mode: 0o600 });
  try {
    if (await file.tryCreate()) return 'taken';
  } finally {
    await file.discard();
  }
  // Its holder died: removed (unless another process is at it right now).
  return (await breakDestinationLock(lockPath)) ? 'broken' : 'held';
}

/** The lock just taken: refreshed until released. */
function held(lockPath: string, folder: string, token: string): DestinationLock {
  const refresh = setInterval(() => {
    const now = new Date();
    void utimes(lockPath, now, now).catch(() => undefined);
  }, DESTINATION_LOCK_REFRESH_MS);
  // A CLI whose upload is over must not stay alive for the heartbeat.
  refresh.unref();
  let released: Promise<void> | undefined;
  return {
    release: () =>
      (released ??= (async () => {
        clearInterval(refresh);
        // Only our own: a holder judged stale whose lock was broken leaves the new holder's alone.
        // A read error is tried again (releaseOwnLock): taken for another's lock, ours stayed,
        // and the next upload to this destination, in this process too, waited minutes for it.
        await releaseOwnLock(lockPath, token);
        await removeFolderIfEmpty(folder);
      })()),
  };
}

/**
 * Runs `fn` holding the lock of `destination` in `journalDir` ({@link holdDestinationLock}); without a
 * journal directory, runs it at once (only the process's own queue orders it then). A lock that
 * cannot be taken for another reason than an abort (the journal directory cannot be written) is
 * given up with a warning: the upload goes on, as without a journal.
 *
 * @throws {AbortedError} when `signal` fires while it waits for the lock.
 * @example
 * ```ts
 * const result = await withDestinationLock(journal?.dir, JSON.stringify([artifactUri, 'best.manifest.json']), () => upload(), { signal, logger });
 * ```
 */
export async function withDestinationLock<T>(
  journalDir: string | undefined,
  destination: string,
  fn: () => Promise<T>,
  options: HoldDestinationLockOptions & { logger: Logger },
): Promise<T> {
  if (journalDir === undefined) return fn();
  let lock: DestinationLock | undefined;
  try {
    lock = await holdDestinationLock(journalDir, destination, options);
  } catch (error) {
    if (error instanceof AbortedError) throw error;
    options.logger.warn(
      `Cannot take the lock of this archive's destination in the resume journal ${journalDir} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); this upload does not wait for other processes' uploads to the same destination.`,
    );
  }
  try {
    return await fn();
  } finally {
    // The journal never makes an upload fail: a lock left behind is broken once it goes stale.
    await lock?.release().catch((error: unknown) => options.logger.warn(`${(error as Error).message} The next upload to this destination waits for it until it goes stale.`));
  }
}

/**
 * Removes what dead processes left in the journal's `destinations/`: locks whose holder is gone
 * (broken as a waiter breaks them), `<lock>.breaking` of killed breakers, locks moved aside, and
 * temp files of killed writers; then the folder when it is empty. Live locks stay. Never throws.
 *
 * @example
 * ```ts
 * await sweepDestinationLocks(journal.dir);
 * ```
 */
export async function sweepDestinationLocks(journalDir: string): Promise<void> {
  const folder = join(journalDir, DESTINATION_LOCKS_FOLDER);
  const names = await readdir(folder).catch(() => [] as string[]);
  if (names.length === 0) return;
  const now = Date.now();
  for (const name of names) {
    const path = join(folder, name);
    try {
      if (name.endsWith('.lock')) await breakDestinationLock(path);
      else if (name.endsWith('.lock.breaking')) await removeStaleBreaker(path);
      else if (/\.tmp$|\.lock\.broken-/.test(name)) {
        // As the journal's sweep judges them: a breaker moves a lock aside for milliseconds.
        const info = await stat(path).catch(() => undefined);
        if (info && (now - info.mtimeMs > LEFTOVER_MS || leftByDeadWriter(name, info.mtimeMs))) await rm(path, { force: true });
      }
    } catch {
      // A leftover that cannot be removed now is removed by a later sweep.
    }
  }
  await removeFolderIfEmpty(folder);
}
