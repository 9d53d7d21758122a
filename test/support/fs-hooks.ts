/**
 * Hooks into `node:fs/promises`, to force an interleaving of several lock users in one process
 * (a breaker held between reading a lock and acting on it, say, or an upload held between
 * creating its directory and its temp file) without any timing: a hook may hold the call it
 * sees until the test lets it go. A test file installs the wrapper with
 *
 * ```ts
 * vi.mock('node:fs/promises', async (importOriginal) => (await import('../support/fs-hooks.js')).hookedFs(await importOriginal()));
 * ```
 *
 * and sets the hooks it needs in a test (`afterEach(resetFsHooks)` unsets them). Unset hooks pass
 * every call through.
 */
import type * as fsPromises from 'node:fs/promises';

type Fs = typeof fsPromises;

/** Hooks of the wrapper; each may hold the call it sees by returning a promise. */
export const fsHooks: {
  /** After a `readFile` of `path` has read `text`, before its caller sees it. */
  afterRead?: ((path: string, text: string) => Promise<void> | void) | undefined;
  /** Before `link(src, dst)`. */
  beforeLink?: ((src: string, dst: string) => Promise<void> | void) | undefined;
  /** After a `stat` of `path` found `mtimeMs`, before its caller sees it. */
  afterStat?: ((path: string, mtimeMs: number) => Promise<void> | void) | undefined;
  /** Before an `open` of `path` with `flags` (it may throw to fail the open, as {@link failOpens} does). */
  beforeOpen?: ((path: string, flags: unknown) => Promise<void> | void) | undefined;
  /** After an `open` of `path` with `flags` opened it (`error` undefined) or failed, before its caller sees it. */
  afterOpen?: ((path: string, flags: unknown, error: unknown) => Promise<void> | void) | undefined;
  /** After a `mkdir` of `path` returned `created` (the first directory it created, if any), before its caller sees it. */
  afterMkdir?: ((path: string, created: string | undefined) => Promise<void> | void) | undefined;
  /** After a `readdir` of `path` listed it, before its caller sees the names (to count how often a directory is read). */
  afterReaddir?: ((path: string) => Promise<void> | void) | undefined;
} = {};

/** Unsets every hook. */
export function resetFsHooks(): void {
  fsHooks.afterRead = undefined;
  fsHooks.beforeLink = undefined;
  fsHooks.afterStat = undefined;
  fsHooks.beforeOpen = undefined;
  fsHooks.afterOpen = undefined;
  fsHooks.afterMkdir = undefined;
  fsHooks.afterReaddir = undefined;
}

/** `node:fs/promises` with `readFile`, `link`, `stat`, `open`, `mkdir` and `readdir` going through {@link fsHooks}. */
export function hookedFs(actual: Fs): Fs {
  const readFile = (async (...args: Parameters<Fs['readFile']>) => {
    const result = await actual.readFile(...args);
    if (fsHooks.afterRead && typeof args[0] === 'string') await fsHooks.afterRead(args[0], String(result));
    return result;
  }) as Fs['readFile'];
  const link = async (src: Parameters<Fs['link']>[0], dst: Parameters<Fs['link']>[1]): Promise<void> => {
    if (fsHooks.beforeLink) await fsHooks.beforeLink(String(src), String(dst));
    return actual.link(src, dst);
  };
  const stat = (async (...args: Parameters<Fs['stat']>) => {
    const result = await actual.stat(...args);
    if (fsHooks.afterStat && typeof args[0] === 'string') await fsHooks.afterStat(args[0], Number(result.mtimeMs));
    return result;
  }) as Fs['stat'];
  const open = (async (...args: Parameters<Fs['open']>) => {
    let handle: Awaited<ReturnType<Fs['open']>>;
    if (fsHooks.beforeOpen && typeof args[0] === 'string') await fsHooks.beforeOpen(args[0], args[1]);
    try {
      handle = await actual.open(...args);
    } catch (error) {
      if (fsHooks.afterOpen && typeof args[0] === 'string') await fsHooks.afterOpen(args[0], args[1], error);
      throw error;
    }
    if (fsHooks.afterOpen && typeof args[0] === 'string') await fsHooks.afterOpen(args[0], args[1], undefined);
    return handle;
  }) as Fs['open'];
  const mkdir = (async (...args: Parameters<Fs['mkdir']>) => {
    const created = await actual.mkdir(...args);
    if (fsHooks.afterMkdir && typeof args[0] === 'string') await fsHooks.afterMkdir(args[0], created);
    return created;
  }) as Fs['mkdir'];
  const readdir = (async (...args: Parameters<Fs['readdir']>) => {
    const names = await actual.readdir(...args);
    if (fsHooks.afterReaddir && typeof args[0] === 'string') await fsHooks.afterReaddir(args[0]);
    return names;
  }) as Fs['readdir'];
  const hooked = { readFile, link, stat, open, mkdir, readdir };
  return { ...actual, ...hooked, default: { ...actual, ...hooked } } as Fs;
}

/** A promise and the function that resolves it (Promise.withResolvers is Node 22+). */
export function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * Holds the next `readFile` of `path` whose text includes `marker` (a lock's token, say) right
 * after it has read it, before its caller sees it: `read` resolves once it has, and `resume`
 * lets it go on. The hook unsets itself.
 */
export function holdNextRead(path: string, marker: string): { read: Promise<void>; resume: () => void } {
  const read = signal();
  const resume = signal();
  fsHooks.afterRead = async (readPath, text) => {
    if (readPath !== path || !text.includes(marker)) return;
    fsHooks.afterRead = undefined;
    read.resolve();
    await resume.promise;
  };
  return { read: read.promise, resume: resume.resolve };
}

/**
 * Makes the next `times` `readFile`s of `path` fail with an error of `code` (`EIO`, `EMFILE`,
 * `EACCES`: what a flaky disk or a process out of file descriptors gives), as Node's would;
 * `Infinity` fails every one. `path` may be a test of the path read (a lock moved aside under
 * a name not known in advance, say). The hook unsets itself after the last; `failed()` says how many failed.
 */
export function failReads(path: string | ((path: string) => boolean), code: string, times: number): { failed: () => number } {
  const matches = typeof path === 'string' ? (readPath: string) => readPath === path : path;
  let failed = 0;
  fsHooks.afterRead = (readPath) => {
    if (!matches(readPath)) return;
    failed++;
    if (failed >= times) fsHooks.afterRead = undefined;
    throw injectedError(readPath, code);
  };
  return { failed: () => failed };
}

/**
 * Makes the next `times` `open`s of `path` for reading fail with an error of `code`, before the
 * file is opened (no descriptor is left behind), as {@link failReads} does for `readFile`: for
 * readers that open a file to read part of it. The hook unsets itself after the last.
 */
export function failOpens(path: string, code: string, times: number): { failed: () => number } {
  let failed = 0;
  fsHooks.beforeOpen = (openPath, flags) => {
    if (openPath !== path || (flags !== undefined && flags !== 'r')) return;
    failed++;
    if (failed >= times) fsHooks.beforeOpen = undefined;
    throw injectedError(openPath, code);
  };
  return { failed: () => failed };
}

/** An error of `code` as Node's file system calls give it. */
function injectedError(path: string, code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected read error, open '${path}'`), { code, errno: -5, syscall: 'open', path });
}
