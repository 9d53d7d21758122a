/**
 * A small JSON state file that several processes may share safely:
 *
 * - **Atomic writes.** The new content goes to a temp file in the same directory, is fsynced and
 *   renamed over the old one (then the directory is fsynced), so a reader sees the old file or
 *   the new one, never half of it.
 * - **Read-modify-write under a lock.** {@link JsonStateFile.update} holds `<file>.lock`, written
 *   whole to a temp file and hard-linked to its name (`link` fails when it exists, like
 *   `O_EXCL`), which exactly one process can win and nobody ever sees empty. The lock holds
 *   `{pid, host, token, at}`. A lock is stale when its process is gone (same host) or it is older
 *   than `lockStaleMs` (any host, e.g. on a shared disk). A stale lock is broken by one process
 *   at a time: under `<file>.lock.breaking` the breaker reads the lock again and judges it again
 *   before it moves it aside (core/lock-breaker.ts says why: acting on a judgement made before,
 *   a breaker could remove the live lock of a process that broke the stale one first, and two
 *   processes would then hold it). Locks are held for the milliseconds of one read and one
 *   write; an uncontended lock costs one `link`, a live one found held one read per retry. The
 *   holder releases its lock only when the lock still holds its token, read with a few quick
 *   tries on a read error (core/lock-breaker.ts `releaseOwnLock`): taken for "not mine", a
 *   transient EIO or EMFILE left the holder's own lock behind for every later writer to wait out.
 * - Plain reads take no lock: thanks to the rename they always see a complete file.
 *
 * @module
 */
import { randomBytes } from './node-crypto.js';
import { mkdir, readFile, rm, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname } from 'node:path';
import type * as z from 'zod';
import { prepareExclusiveFile, processAlive, removeStaleTempFiles, syncDirectory, writeFileAtomic } from './atomic-write.js';
import { AbortedError, LocalPathError } from './errors.js';
import { breakerPath, breakLockIfStale, judgeTimedLock, releaseOwnLock, removeStaleBreaker, type TimedLockOwner } from './lock-breaker.js';
import { sleep } from './abort.js';

/** Options of {@link JsonStateFile}. */
export interface JsonStateFileOptions<T> {
  /** The value of a file that does not exist yet. */
  empty: () => T;
  /**
   * A lock older than this is considered abandoned, in ms.
   * @default 30000
   */
  lockStaleMs?: number;
  /**
   * How long to wait for the lock before failing, in ms.
   * @default 15000
   */
  lockTimeoutMs?: number;
  /**
   * fsync each write before the rename, and the directory after it (durable across a power
   * loss: the content and the name). Without it a write is
   * still atomic against a crashed or killed process (the rename is); after a power loss the
   * file may hold the old state, or read as corrupt.
   * @default true
   */
  sync?: boolean;
  /**
   * Readable by the owner only: the file (and its lock) is created with mode 0600, and the
   * directories created for it with 0700. For state that holds capabilities (upload session URIs).
   * @default false
   */
  ownerOnly?: boolean;
  /** The hint of the error a corrupt file raises: what the user may do about it. */
  corruptHint?: string;
  /**
   * What a corrupt file (not JSON, or not matching the schema) reads as. Without it, reading a
   * corrupt file throws; with it, the file reads as the value returned (and the next
   * {@link JsonStateFile.update} that writes replaces it). `parsed` is the file's JSON when it is
   * JSON that the schema refused (`undefined` when it is not JSON), for a caller that tells a
   * format it does not read (a later version's) from damage.
   */
  onCorrupt?: (error: LocalPathError, parsed: unknown) => T;
  /**
   * On the first write, remove temp files that writers killed between write and rename left
   * beside the file (owner gone, older than ten minutes). Off for callers that keep many such
   * files in one directory and sweep it themselves (the resume journal).
   * @default true
   */
  sweepTempFiles?: boolean;
}

/** What the `change` of {@link JsonStateFile.update} returns. */
export interface StateChange<T, R> {
  /** The new state; `undefined` leaves the file as it is. */
  state?: T;
  /** Delete the file instead (wins over `state`). */
  remove?: boolean;
  /** fsync this write, whatever the file's `sync` option says. */
  sync?: boolean;
  /**
   * The written file's modification time (epoch ms), set before the lock is released: for a
   * state put back as old as it was, which no other writer may see with a fresh time (a sweep
   * reads the age from it), nor give its own write an old one.
   * @default the time of the write
   */
  modifiedAt?: number;
  /** What `update` returns. */
  result: R;
}

/** Re-exported: the hub's lock and tracker check owners with the same test as temp files. */
export { processAlive };

/** How old a prepared lock's `at` may be when it is taken (it is written again when older). */
const LOCK_STAMP_MAX_AGE_MS = 100;

/** A JSON file validated by a zod schema, shared safely between processes. */
export class JsonStateFile<T> {
  readonly path: string;
  private readonly lockPath: string;
  private readonly lockStaleMs: number;
  private readonly lockTimeoutMs: number;

  constructor(
    path: string,
    /** Loads the schema the file is validated with (on first read: zod loads on first use). */
    private readonly loadSchema: () => Promise<z.ZodType<T>>,
    private readonly options: JsonStateFileOptions<T>,
  ) {
    this.path = path;
    this.lockPath = `${path}.lock`;
    this.lockStaleMs = options.lockStaleMs ?? 30_000;
    this.lockTimeoutMs = options.lockTimeoutMs ?? 15_000;
  }

  /** Reads the current state (no lock needed). */
  async read(): Promise<T> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return this.options.empty();
      throw new LocalPathError('PATH_UNREADABLE', this.path, `Cannot read the state file ${this.path}: ${(error as Error).message}.`, { cause: error });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      return this.corrupt(`it is not JSON (${(error as Error).message})`, error, undefined);
    }
    const result = (await this.loadSchema()).safeParse(parsed);
    if (!result.success) return this.corrupt(result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; '), result.error, parsed);
    return result.data;
  }

  /** Deletes the file under the lock (nothing happens when it does not exist). */
  remove(signal?: AbortSignal): Promise<void> {
    return this.update(() => ({ remove: true, result: undefined }), signal);
  }

  /**
   * Reads, changes and writes the state under the lock. `change` returns the new state, or
   * `undefined` to leave the file as it is, or `remove: true` to delete the file; its result is
   * returned either way.
   *
   * @throws {LocalPathError} `PATH_UNREADABLE` when the lock cannot be had in `lockTimeoutMs`,
   *   and when, the change written, this writer's own lock cannot be read to release it (a read
   *   error that lasts past a few quick tries: the lock then stays until it goes stale).
   */
  async update<R>(change: (state: T) => StateChange<T, R> | Promise<StateChange<T, R>>, signal?: AbortSignal): Promise<R> {
    const token = await this.lock(signal);
    let outcome: R;
    try {
      const { state, remove, sync, modifiedAt, result } = await change(await this.read());
      if (remove) await rm(this.path, { force: true });
      else if (state !== undefined) {
        await this.write(state, sync ?? this.options.sync ?? true);
        if (modifiedAt !== undefined) await utimes(this.path, new Date(), new Date(modifiedAt));
      }
      outcome = result;
    } catch (error) {
      // The change's error is the one to report; a lock that cannot be released as well is
      // reported to the next writer, which waits for it.
      await releaseOwnLock(this.lockPath, token).catch(() => undefined);
      throw error;
    }
    // Throws (PATH_UNREADABLE) when our own lock cannot be read to release it: left silently, it
    // made every writer after us wait lockStaleMs, longer than lockTimeoutMs.
    await releaseOwnLock(this.lockPath, token);
    return outcome;
  }

  /** Throws the corrupt-file error, or returns what `onCorrupt` makes of it. */
  private corrupt(reason: string, cause: unknown, parsed: unknown): T {
    const error = new LocalPathError('PATH_UNREADABLE', this.path, `The state file ${this.path} is corrupt: ${reason}.`, {
      cause,
      hint: this.options.corruptHint ?? 'Inspect it and fix or delete it.',
    });
    if (this.options.onCorrupt) return this.options.onCorrupt(error, parsed);
    throw error;
  }

  /** Mode of directories created for the file. */
  private get dirMode(): number | undefined {
    return this.options.ownerOnly ? 0o700 : undefined;
  }

  /** Mode of files created. */
  private get fileMode(): number | undefined {
    return this.options.ownerOnly ? 0o600 : undefined;
  }

  private async write(state: T, sync: boolean): Promise<void> {
    const prefix = `.${basename(this.path)}.tmp-`;
    await writeFileAtomic(this.path, `${JSON.stringify(state, null, 2)}\n`, { mkdir: true, dirMode: this.dirMode, mode: this.fileMode, prefix, sync });
    // A write that must survive a power loss: the rename too, not only the content.
    if (sync) await syncDirectory(dirname(this.path));
    // Temp files of writers killed between write and rename (once per instance: one readdir).
    if (!this.cleaned && this.options.sweepTempFiles !== false) {
      this.cleaned = true;
      await removeStaleTempFiles(dirname(this.path), prefix);
    }
  }

  /** Whether this instance has swept its directory for dead writers' temp files. */
  private cleaned = false;

  private async lock(signal?: AbortSignal): Promise<string> {
    await mkdir(dirname(this.path), { recursive: true, mode: this.dirMode });
    const token = randomBytes(8).toString('hex');
    const deadline = Date.now() + this.lockTimeoutMs;
    // The lock appears whole or not at all (`prepareExclusiveFile`: written to a temp file,
    // then hard-linked to its name). Created with O_EXCL and written after, a lock whose process
    // was killed in between stayed empty, so nobody could tell that its owner was dead until it
    // aged past lockStaleMs (a rerun after a SIGKILL timed out first, and lost its journal
    // record). A temp file left by a kill is swept like the state file's own (same prefix).
    const prepare = async () => {
      const at = Date.now();
      const file = await prepareExclusiveFile(this.lockPath, JSON.stringify({ pid: process.pid, host: hostname(), token, at } satisfies TimedLockOwner), {
        prefix: `.${basename(this.path)}.tmp-`,
        ...(this.fileMode !== undefined ? { mode: this.fileMode } : {}),
      });
      return { at, file };
    };
    let lock = await prepare();
    try {
      for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
        if (signal?.aborted) throw new AbortedError('Waiting for the state file lock was aborted.', { cause: signal.reason });
        // The lock says when it was taken, not when its owner began to wait: others judge it
        // stale by that time, so one prepared long ago would be broken early.
        if (Date.now() - lock.at > LOCK_STAMP_MAX_AGE_MS) {
          await lock.file.discard();
          lock = await prepare();
        }
        if (await lock.file.tryCreate()) return token;
        await this.breakStaleLock();
        if (Date.now() > deadline) {
          throw new LocalPathError('PATH_UNREADABLE', this.lockPath, `Timed out after ${this.lockTimeoutMs} ms waiting for the lock ${this.lockPath}.`, {
            hint: 'Another process holds it. If no other process uses this state file, delete the lock file.',
          });
        }
        await sleep(wait, signal);
      }
    } finally {
      await lock.file.discard();
    }
  }

  /**
   * Removes the lock when its holder is gone (same host: its process has exited; any host: it
   * is older than `lockStaleMs`), without taking it: what a writer waiting for it does, and
   * what a sweep does for a lock left by a killed writer whose state file nobody updates again.
   * One breaker at a time, judging again under `<file>.lock.breaking` (core/lock-breaker.ts).
   */
  async breakStaleLock(): Promise<void> {
    await breakLockIfStale(this.lockPath, (path) => judgeTimedLock(path, this.lockStaleMs), {
      prefix: `.${basename(this.path)}.tmp-`,
      ...(this.fileMode !== undefined ? { mode: this.fileMode } : {}),
      breakerStaleMs: this.breakerStaleMs,
    });
  }

  /**
   * Removes `<file>.lock.breaking` when the breaker holding it was killed: for a sweep, when no
   * lock is left to break (a writer waiting for the lock removes a stale one itself).
   */
  async removeStaleBreaker(): Promise<void> {
    await removeStaleBreaker(breakerPath(this.lockPath), { breakerStaleMs: this.breakerStaleMs });
  }

  /** A breaker holds `<file>.lock.breaking` for a few file operations; never longer than a lock may be held. */
  private get breakerStaleMs(): number {
    return Math.min(this.lockStaleMs, 5_000);
  }
}
