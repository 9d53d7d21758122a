/**
 * Loading an optional peer dependency (a cloud SDK) on first use: a package that is not
 * installed becomes a {@link MissingDependencyError} that names the install line, instead of a
 * bare `ERR_MODULE_NOT_FOUND` from deep inside an upload.
 *
 * @module
 */
import { MissingDependencyError } from './errors.js';

/**
 * Runs `loader` (an `import()` of `packageName`) and returns the module namespace, or its
 * CommonJS `default`, whichever has `member` as a function. A missing package, or one without
 * `member`, throws {@link MissingDependencyError} for `purpose`.
 *
 * @example
 * ```ts
 * const blob = await loadOptionalModule<typeof import('@azure/storage-blob')>(
 *   () => import('@azure/storage-blob'), 'BlobServiceClient', '@azure/storage-blob', 'Writing artifacts to a wasbs:// artifact root');
 * ```
 */
export async function loadOptionalModule<T>(loader: () => Promise<object>, member: string, packageName: string, purpose: string): Promise<T> {
  let namespace: object;
  try {
    namespace = await loader();
  } catch (error) {
    if (isModuleNotFound(error)) throw new MissingDependencyError([packageName], purpose, { cause: error });
    throw error;
  }
  const ns = namespace as Record<string, unknown>;
  if (typeof ns[member] === 'function') return ns as T;
  const def = ns.default as Record<string, unknown> | undefined;
  if (def && typeof def[member] === 'function') return def as T;
  throw new MissingDependencyError([packageName], purpose, {
    hint: `The installed ${packageName} has no ${member} export; install a current version: npm install ${packageName}`,
  });
}

/**
 * True when `error` (or its cause chain) says a module could not be found, in Node's words or a
 * bundler's.
 *
 * @example
 * ```ts
 * try { await import('@aws-sdk/client-s3'); } catch (e) { if (isModuleNotFound(e)) suggestInstall(); }
 * ```
 */
export function isModuleNotFound(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 4; depth++) {
    const { code, message } = current as { code?: unknown; message?: unknown };
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') return true;
    if (typeof message === 'string' && /Cannot find (package|module)|Failed to (load|resolve) (url|import)/i.test(message)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}
