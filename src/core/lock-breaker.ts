/**
 * Breaking a stale lock file when several processes may try at once.
 *
 * The lock files of this library (core/json-state-file.ts, uploader/archive-staging.ts) are
 * created whole where none exists (`prepareExclusiveFile`: a hard link, which fails like
 * `O_EXCL`; the `./mlruns` experiments lock of mlflow/file-store-format.ts with `O_EXCL`) and
 * removed by their holder. When the holder is gone, a waiting process must remove
 * the lock for it, and that is where the race is: the breaker judges the lock it *read* stale,
 * but removes whatever lock is at the name *now*. Two breakers A and B read the same stale lock;
 * A removes it and takes the lock; B, acting on its earlier judgement, removes A's live lock.
 * Renaming the lock aside and checking its token (what the journal did) catches that, but cannot
 * undo it: putting A's lock back (`link`, which never overwrites) fails when a third process C
 * has taken the free name in between, and then A and C both hold the lock.
 *
 * So breaking is done by **one process at a time**, and only on a judgement made while it is the
 * only one: a breaker first creates `<lock>.breaking` (whole and exclusive, like the lock), then
 * reads the lock again, judges it again, and only then moves it aside. In the race above,
 * whichever of A and B takes `.breaking` first removes the stale lock; the other finds
 * `.breaking` held (and leaves the lock alone; its caller tries again), or takes it once the
 * first let go, reads the live lock the first has taken since, and leaves it. A lock is removed only by its holder or by
 * the one breaker holding `.breaking`, so the lock a breaker judged under it is still the lock at
 * the name when it moves it aside, unless its own holder removed it in between. A holder judged
 * stale can do that only when it was judged by age while still alive (it held the lock past the
 * stale bound, its exclusion already lost); the token check after the move puts a lock taken in
 * that gap back, as before (and, when neither read gives a token, the moved lock's own
 * judgement: see `moveAsideIfStale`).
 *
 * Why not something else: a lock is removed by name, and POSIX has no "unlink this name if it is
 * still that file", so some judgement must be made while nobody else can change the name; the
 * lock's own format and fast path (one `link`) stay as they were, and older versions of the
 * library sharing a journal directory still read and take the same lock (they still break it
 * the old way, though: the guarantee holds among processes of this version). The extra cost is
 * paid only by a process that found the lock stale.
 *
 * **A breaker killed while it holds `.breaking`** (it holds it for a few file operations) must
 * not wedge everyone: `.breaking` is stale when its process is gone (same host) or it is older
 * than a short bound (`breakerStaleMs`, any host: the hosts' clocks must agree that closely, as
 * they must within `lockStaleMs` for the lock), and a stale one is moved aside the old way
 * (rename, check its token, link back when it was not the one judged stale). That removal has
 * the original race one level down, and it is left so: to hurt, it needs a breaker killed (or
 * frozen past the bound) within its milliseconds under `.breaking`, then three processes racing
 * to remove that one, two of them ending up as breakers together, and then one of those
 * re-reading the stale lock before the other moves it and moving it only after a third process
 * took the lock in between. Each step is already rare; avoiding it would take the same
 * construction again, one more level down.
 *
 * The three-process race and the breakers' bookkeeping are tested with the interleaving forced
 * (test/core/json-state-file.test.ts, test/uploader/archive-staging-race.test.ts,
 * test/mlflow/file-store-lock-race.test.ts).
 *
 * Leftovers a kill can leave: `<lock>.breaking` (removed by the next breaker, and by the sweeps
 * that remove stale locks: {@link removeStaleBreaker}), a lock moved aside, `<lock>.broken-*`
 * (swept with the other `.lock.broken-` leftovers), and a temp file named by its owner (swept
 * like every temp file).
 *
 * @module
 */
import { randomBytes } from './node-crypto.js';
import { link, readFile, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { prepareExclusiveFile, processAlive } from './atomic-write.js';
import { LocalPathError } from './errors.js';
import { isRetryableLockReadError, LOCK_RELEASE_RETRY, withRetry } from './retry.js';

/** What a breaker makes of a lock file: stale or not, and the token that names this very lock. */
export interface LockVerdict {
  /** True when its holder is gone; false for a live lock, and when there is no lock at all. */
  stale: boolean;
  /** The lock's token, `undefined` when it cannot be read (torn, or absent). */
  token: string | undefined;
}

/** Where and how the breaker file and the moved-aside lock are written. */
export interface BreakLockOptions {
  /** Start of the temp file name of `<lock>.breaking` (so the caller's sweep of temp files finds it). */
  prefix?: string;
  /** Mode of `<lock>.breaking`. */
  mode?: number;
  /**
   * A `<lock>.breaking` older than this is abandoned, in ms (one whose process is gone on this
   * host is abandoned at once). Breaking takes a few file operations.
   * @default 5000
   */
  breakerStaleMs?: number;
}

/**
 * What a lock of the `{pid, host, token, at}` kind holds (core/json-state-file.ts's lock, and
 * `<lock>.breaking`): its owner, and when it was taken (epoch ms).
 */
export interface TimedLockOwner {
  pid: number;
  host: string;
  token: string;
  at: number;
}

const DEFAULT_BREAKER_STALE_MS = 5_000;

/**
 * The breaker file of a lock: the one process that may remove the lock for a dead holder holds it.
 *
 * @example
 * ```ts
 * breakerPath('state.json.lock'); // 'state.json.lock.breaking'
 * ```
 */
export function breakerPath(lockPath: string): string {
  return `${lockPath}.breaking`;
}

/** A name beside the lock to move it (or its breaker file) to: swept as `.lock.broken-` when a kill leaves it. */
function asideName(lockPath: string): string {
  return `${lockPath}.broken-${randomBytes(4).toString('hex')}`;
}

/**
 * The owner a lock file names (its JSON, with a `token` and a `pid`), or `undefined` when it is
 * absent, cannot be read (being written; torn by a crash; a read error) or is of another shape.
 * For every lock of the library: the state file's, `<lock>.breaking`, a destination lock. For
 * the judges of stale locks whose rule judges a lock of that age stale whoever holds it, which
 * judge a lock they cannot read by its file's age or heartbeat alone. Not for a judge whose rule
 * needs the owner (a lock of a live process on this host that never goes stale by age: a staged
 * archive's), nor for a holder releasing its lock: a read error says nothing about whose lock it
 * is ({@link readLockOwnerPatiently}, {@link releaseOwnLock}).
 *
 * @example
 * ```ts
 * const owner = await readLockOwner<TimedLockOwner>('state.json.lock'); // { pid, host, token, at } | undefined
 * ```
 */
export async function readLockOwner<T extends { pid: number; token: string }>(path: string): Promise<T | undefined> {
  return readLockOwnerOrThrow<T>(path).catch(() => undefined);
}

/**
 * {@link readLockOwner}, but a lock that exists and cannot be read (EIO, EMFILE, EACCES) throws
 * the read's error instead of reading as "no owner".
 */
async function readLockOwnerOrThrow<T extends { pid: number; token: string }>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (!isRetryableLockReadError(error)) return undefined; // absent: released, or broken
    throw error;
  }
  try {
    const owner = JSON.parse(text) as T;
    return typeof owner.token === 'string' && typeof owner.pid === 'number' ? owner : undefined;
  } catch {
    return undefined;
  }
}

/** {@link readLockOwnerOrThrow}, a read error tried again briefly (`LOCK_RELEASE_RETRY`) before it is thrown. */
function readLockOwnerRetrying<T extends { pid: number; token: string }>(path: string): Promise<T | undefined> {
  return withRetry(() => readLockOwnerOrThrow<T>(path), { retry: LOCK_RELEASE_RETRY, isRetryable: isRetryableLockReadError });
}

/**
 * The owner a lock file names, as {@link readLockOwner} reads it, except that a lock that is
 * there and cannot be read (EIO, EMFILE, EACCES) is read again briefly (`LOCK_RELEASE_RETRY`,
 * core/retry.ts: a transient error costs a few tries, not a wrong judgement), and when it still
 * cannot be, says so (`unreadable`) instead of reading as "no owner". For a judge whose rule
 * needs the owner (a lock of a live process on this host, which never goes stale by age): to it
 * an unreadable lock is not stale, as whose it is cannot be told, and a live lock is never broken.
 *
 * @example
 * ```ts
 * const { owner, unreadable } = await readLockOwnerPatiently<{ pid: number; host: string; token: string }>('archives/0a1b.lock');
 * ```
 */
export async function readLockOwnerPatiently<T extends { pid: number; token: string }>(path: string): Promise<{ owner?: T; unreadable?: true }> {
  try {
    const owner = await readLockOwnerRetrying<T>(path);
    return owner ? { owner } : {};
  } catch {
    return { unreadable: true };
  }
}

/**
 * Removes the lock at `path` when it is still this holder's (its `token`), and leaves it when it
 * is another's (a holder judged stale whose lock was broken and taken since). A read that fails
 * for another reason than the lock being gone is tried again briefly
 * (`LOCK_RELEASE_RETRY`, core/retry.ts): taken for "not ours", it left the holder's own lock
 * behind, and whoever came next waited for it until it went stale.
 *
 * @throws {LocalPathError} `PATH_UNREADABLE` when the lock still cannot be read after those
 *   tries (it is left where it is: whose it is cannot be told).
 * @example
 * ```ts
 * await releaseOwnLock('state.json.lock', token);
 * ```
 */
export async function releaseOwnLock(path: string, token: string): Promise<void> {
  let owner: { pid: number; token: string } | undefined;
  try {
    owner = await readLockOwnerRetrying(path);
  } catch (error) {
    throw new LocalPathError('PATH_UNREADABLE', path, `Cannot release the lock ${path}: it cannot be read to tell whether it is still this process's (${(error as Error).message}).`, {
      cause: error,
      hint: 'Check the disk it is on. When no process of artifact-uploader uses it any more, delete the lock file; until then, others wait for it until it goes stale.',
    });
  }
  if (owner?.token === token) await rm(path, { force: true });
}

/**
 * Whether a lock of the {@link TimedLockOwner} kind at `path` (or moved aside to it) is stale,
 * and its token: stale when older than `staleMs` (any host), or when its process is gone (this
 * host). One that cannot be read (being written right now, or left empty by a crash between
 * create and write, as locks of earlier versions were) is stale by its file's age; an absent
 * one is not stale.
 *
 * @example
 * ```ts
 * await breakLockIfStale('state.json.lock', (path) => judgeTimedLock(path, 30_000));
 * ```
 */
export async function judgeTimedLock(path: string, staleMs: number): Promise<LockVerdict> {
  const info = await readLockOwner<TimedLockOwner>(path);
  if (info) return { stale: Date.now() - info.at > staleMs || (info.host === hostname() && !processAlive(info.pid)), token: info.token };
  const age = await stat(path).then(
    (s) => Date.now() - s.mtimeMs,
    () => 0,
  );
  return { stale: age > staleMs, token: undefined };
}

/**
 * Moves `path` aside when `judge` finds it stale, and removes it, unless what was moved is not
 * the file judged (another token): then it is linked back (which fails, and leaves it removed,
 * only when a third process took the name in between). The unguarded break, used for the
 * breaker file itself (see the module comment) and under the breaker file for the lock.
 *
 * When neither read gave a token (both failed, EIO or EMFILE, or both files are torn), the
 * tokens cannot tell the file judged from a lock taken in between, so the file moved is removed
 * only when it is stale on its own judgement: a lock taken meanwhile is fresh, and goes back
 * whatever its read says. Taking "no token" twice for "the same file" removed it.
 */
async function moveAsideIfStale(path: string, judge: (path: string) => Promise<LockVerdict>, verdict?: LockVerdict): Promise<boolean> {
  const judged = verdict ?? (await judge(path));
  if (!judged.stale) return false;
  const aside = asideName(path.endsWith('.breaking') ? path.slice(0, -'.breaking'.length) : path);
  try {
    await rename(path, aside);
  } catch {
    return false; // gone already: released, or removed by whoever broke it first
  }
  const moved = await judge(aside);
  const sameFile = moved.token !== undefined || judged.token !== undefined ? moved.token === judged.token : moved.stale;
  if (!sameFile) {
    // Not the file judged (or not known to be, and live): its holder let go and another took the
    // name in between. Give it back (link never overwrites, so a lock taken meanwhile by yet
    // another process is not clobbered).
    await link(aside, path).catch(() => undefined);
    await rm(aside, { force: true });
    return false;
  }
  await rm(aside, { force: true });
  return true;
}

/**
 * Removes the lock at `lockPath` when `judge` finds its holder gone, without taking it: safe
 * against other breakers of the same lock (see the module comment). `judge` reads a lock file
 * (the lock, or the lock moved aside) and says whether it is stale, and its token. Returns true
 * when it removed the lock; false when the lock is live or absent, or another process is breaking
 * it right now (try again later, as a waiting writer does).
 *
 * The lock is read and judged first without the breaker file, so a live lock costs one read, as
 * before; only a lock found stale is read and judged again under it.
 *
 * @example
 * ```ts
 * const judge = async (path: string) => {
 *   const info = JSON.parse(await readFile(path, 'utf8').catch(() => '{}')) as { pid?: number; token?: string };
 *   return { stale: info.pid !== undefined && !processAlive(info.pid), token: info.token };
 * };
 * await breakLockIfStale('state.json.lock', judge);
 * ```
 */
export async function breakLockIfStale(lockPath: string, judge: (path: string) => Promise<LockVerdict>, options: BreakLockOptions = {}): Promise<boolean> {
  if (!(await judge(lockPath)).stale) return false;
  const guard = breakerPath(lockPath);
  const staleMs = options.breakerStaleMs ?? DEFAULT_BREAKER_STALE_MS;
  const token = randomBytes(8).toString('hex');
  const breaker = await prepareExclusiveFile(guard, JSON.stringify({ pid: process.pid, host: hostname(), token, at: Date.now() } satisfies TimedLockOwner), {
    ...(options.prefix !== undefined ? { prefix: options.prefix } : {}),
    ...(options.mode !== undefined ? { mode: options.mode } : {}),
  });
  try {
    let held = await breaker.tryCreate();
    // Another breaker's: leave it to finish, unless it was killed holding it.
    if (!held && (await moveAsideIfStale(guard, (path) => judgeTimedLock(path, staleMs)))) held = await breaker.tryCreate();
    if (!held) return false;
    try {
      // The judgement that counts: made while no other breaker can change the name.
      return await moveAsideIfStale(lockPath, judge);
    } finally {
      // Left behind when it cannot be read even so: it is abandoned after breakerStaleMs (or at
      // once, once this process is gone), and the break itself is done.
      await releaseOwnLock(guard, token).catch(() => undefined);
    }
  } finally {
    await breaker.discard();
  }
}

/**
 * Removes `<lock>.breaking` when its breaker was killed holding it, for sweeps that clean up
 * after killed processes (a lock nobody breaks again would otherwise keep it forever). Pass the
 * breaker file's path. Returns true when it removed it.
 *
 * @example
 * ```ts
 * if (name.endsWith('.lock.breaking')) await removeStaleBreaker(join(dir, name));
 * ```
 */
export function removeStaleBreaker(path: string, options: { breakerStaleMs?: number } = {}): Promise<boolean> {
  const staleMs = options.breakerStaleMs ?? DEFAULT_BREAKER_STALE_MS;
  return moveAsideIfStale(path, (p) => judgeTimedLock(p, staleMs));
}
