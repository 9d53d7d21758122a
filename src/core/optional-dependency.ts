/**
 * Loading optional peer dependencies (the cloud SDKs) on first use: telling "not installed"
 * apart from other import failures, and reading a module the same way whether `import()` gave
 * an ESM namespace or a CommonJS `module.exports`, and the `MissingDependencyError` that names
 * the install line.
 *
 * @module
 */
import { MissingDependencyError } from './errors.js';

/**
 * True when `error` (or a cause up its chain) says a module could not be found, as Node's ESM
 * and CJS loaders and bundlers word it.
 *
 * @example
 * ```ts
 * try { await import('@aws-sdk/client-s3'); } catch (e) { if (isModuleNotFound(e)) throw new MissingDependencyError(['@aws-sdk/client-s3'], 'S3 uploads'); }
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

/**
 * The module object that has `member` as a function: the ESM namespace itself, or a CommonJS
 * `module.exports` seen through `default`; `undefined` when neither has it.
 *
 * @example
 * ```ts
 * const s3 = interopModule<typeof ClientS3>(await import('@aws-sdk/client-s3'), 'S3Client');
 * ```
 */
export function interopModule<T>(namespace: object, member: string): T | undefined {
  const ns = namespace as Record<string, unknown>;
  if (typeof ns[member] === 'function') return ns as T;
  const def = ns.default as Record<string, unknown> | undefined;
  if (def && typeof def[member] === 'function') return def as T;
  return undefined;
}

/**
 * Runs `loader` (an `import()` of `packageName`) and returns the module object that has `member`
 * as a function ({@link interopModule}). A package that is not installed, or one without
 * `member` (or any of `options.alsoNeeds`), throws {@link MissingDependencyError} naming the
 * install line, for `purpose`; `options.hint` words the wrong-version case (which major to install).
 *
 * @example
 * ```ts
 * const blob = await loadOptionalModule<typeof import('@azure/storage-blob')>(
 *   () => import('@azure/storage-blob'), 'BlobServiceClient', '@azure/storage-blob', 'Writing artifacts to a wasbs:// artifact root');
 * ```
 */
export async function loadOptionalModule<T>(
  loader: () => Promise<object>,
  member: string,
  packageName: string,
  purpose: string,
  options: { alsoNeeds?: readonly string[]; hint?: string } = {},
): Promise<T> {
  let namespace: object;
  try {
    namespace = await loader();
  } catch (error) {
    if (isModuleNotFound(error)) throw new MissingDependencyError([packageName], purpose, { cause: error });
    throw error;
  }
  const module = interopModule<T>(namespace, member);
  if (module && (options.alsoNeeds ?? []).every((name) => typeof (module as Record<string, unknown>)[name] === 'function')) return module;
  throw new MissingDependencyError([packageName], purpose, {
    hint: options.hint ?? `The installed ${packageName} has no ${member} export; install a current version: npm install ${packageName}`,
  });
}
