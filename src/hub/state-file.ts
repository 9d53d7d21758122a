/**
 * A small JSON state file that several processes may share safely:
 *
 * - **Atomic writes.** The new content goes to a temp file in the same directory, is fsynced and
 *   renamed over the old one, so a reader sees the old file or the new one, never half of it.
 * - **Read-modify-write under a lock.** {@link JsonStateFile.update} holds `<file>.lock`, created
 *   with `O_CREAT|O_EXCL` (`open(..., 'wx')`), which exactly one process can win. The lock holds
 *   `{pid, host, token, at}`. A lock is stale when its process is gone (same host) or it is older
 *   than `lockStaleMs` (any host, e.g. on a shared disk); a stale lock is broken by renaming it
 *   away and checking that the renamed file is still the one judged stale. Locks are held for
 *   the milliseconds of one read and one write.
 * - Plain reads take no lock: thanks to the rename they always see a complete file.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { z } from 'zod';
import { AbortedError, LocalPathError } from '../core/errors.js';
import { sleep } from '../core/abort.js';

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
}

interface LockInfo {
  pid: number;
  host: string;
  token: string;
  at: number;
}

/** True when a process with this pid exists on this host. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A JSON file validated by a zod schema, shared safely between processes. */
export class JsonStateFile<T> {
  readonly path: string;
  private readonly lockPath: string;
  private readonly lockStaleMs: number;
  private readonly lockTimeoutMs: number;

  constructor(
    path: string,
    private readonly schema: z.ZodType<T>,
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
      throw this.corrupt(`it is not JSON (${(error as Error).message})`, error);
    }
    const result = this.schema.safeParse(parsed);
    if (!result.success) throw this.corrupt(result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; '), result.error);
    return result.data;
  }

  /**
   * Reads, changes and writes the state under the lock. `change` returns the new state, or
   * `undefined` to leave the file as it is; its result is returned either way.
   */
  async update<R>(change: (state: T) => { state?: T; result: R } | Promise<{ state?: T; result: R }>, signal?: AbortSignal): Promise<R> {
    const token = await this.lock(signal);
    try {
      const { state, result } = await change(await this.read());
      if (state !== undefined) await this.write(state);
      return result;
    } finally {
      await this.unlock(token);
    }
  }

  private corrupt(reason: string, cause: unknown): LocalPathError {
    return new LocalPathError('PATH_UNREADABLE', this.path, `The state file ${this.path} is corrupt: ${reason}.`, {
      cause,
      hint: 'Inspect it and fix or delete it; a deleted state file forgets past publishes, but publishes already on the Hub are still found by their publish id and not uploaded again.',
    });
  }

  private async write(state: T): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    const temp = join(dirname(this.path), `.${basename(this.path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    const handle = await open(temp, 'w');
    try {
      await handle.writeFile(`${JSON.stringify(state, null, 2)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await rename(temp, this.path);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }

  private async lock(signal?: AbortSignal): Promise<string> {
    await mkdir(dirname(this.path), { recursive: true });
    const token = randomBytes(8).toString('hex');
    const deadline = Date.now() + this.lockTimeoutMs;
    for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
      if (signal?.aborted) throw new AbortedError('Waiting for the state file lock was aborted.', { cause: signal.reason });
      try {
        const handle = await open(this.lockPath, 'wx');
        try {
          await handle.writeFile(JSON.stringify({ pid: process.pid, host: hostname(), token, at: Date.now() } satisfies LockInfo));
        } finally {
          await handle.close();
        }
        return token;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      await this.breakIfStale();
      if (Date.now() > deadline) {
        throw new LocalPathError('PATH_UNREADABLE', this.lockPath, `Timed out after ${this.lockTimeoutMs} ms waiting for the lock ${this.lockPath}.`, {
          hint: 'Another process holds it. If no other process uses this state file, delete the lock file.',
        });
      }
      await sleep(wait, signal);
    }
  }

  private async readLock(path: string): Promise<LockInfo | undefined> {
    try {
      const info = JSON.parse(await readFile(path, 'utf8')) as LockInfo;
      return typeof info.token === 'string' ? info : undefined;
    } catch {
      return undefined;
    }
  }

  private async breakIfStale(): Promise<void> {
    const info = await this.readLock(this.lockPath);
    let stale: boolean;
    if (info) {
      stale = Date.now() - info.at > this.lockStaleMs || (info.host === hostname() && !processAlive(info.pid));
    } else {
      // Unreadable: being written right now, or left empty by a crash between create and write.
      const age = await stat(this.lockPath).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      stale = age > this.lockStaleMs;
    }
    if (!stale) return;
    const aside = `${this.lockPath}.broken-${randomBytes(4).toString('hex')}`;
    try {
      await rename(this.lockPath, aside);
    } catch {
      return; // someone else broke or released it first
    }
    const moved = await this.readLock(aside);
    if (info && moved && moved.token !== info.token) {
      // A fresh lock was created between our check and the rename: give it back (link never
      // overwrites, so a lock taken meanwhile by a third process is not clobbered).
      await link(aside, this.lockPath).catch(() => undefined);
      await rm(aside, { force: true });
      return;
    }
    await rm(aside, { force: true });
  }

  private async unlock(token: string): Promise<void> {
    const info = await this.readLock(this.lockPath);
    if (info?.token === token) await rm(this.lockPath, { force: true });
  }
}
