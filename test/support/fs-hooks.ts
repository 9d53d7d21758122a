/**
 * Hooks into `node:fs/promises`, to force an interleaving of several lock users in one process
 * (a breaker held between reading a lock and acting on it, say) without any timing: a hook may
 * hold the call it sees until the test lets it go. A test file installs the wrapper with
 *
 * ```ts
 * vi.mock('node:fs/promises', async (importOriginal) => (await import('../support/fs-hooks.js')).hookedFs(await importOriginal()));
 * ```
 *
 * and sets `fsHooks.afterRead` / `fsHooks.beforeLink` in a test (unset them after it: `resetFsHooks`).
 * Unset hooks pass every call through.
 */
import type * as fsPromises from 'node:fs/promises';

type Fs = typeof fsPromises;

/** Hooks of the wrapper; each may hold the call it sees by returning a promise. */
export const fsHooks: {
  /** After a `readFile` of `path` has read `text`, before its caller sees it. */
  afterRead?: ((path: string, text: string) => Promise<void> | void) | undefined;
  /** Before `link(src, dst)`. */
  beforeLink?: ((src: string, dst: string) => Promise<void> | void) | undefined;
} = {};

/** Unsets every hook. */
export function resetFsHooks(): void {
  fsHooks.afterRead = undefined;
  fsHooks.beforeLink = undefined;
}

/** `node:fs/promises` with `readFile` and `link` going through {@link fsHooks}. */
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
  return { ...actual, readFile, link, default: { ...actual, readFile, link } } as Fs;
}

/** A promise and the function that resolves it (Promise.withResolvers is Node 22+). */
export function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
