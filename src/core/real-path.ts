/**
 * Where an output really lands, and whether one path is inside another: the checks that keep
 * an output from replacing its own input when the two are spelled differently (`a/../a`, a
 * symlink to the input directory, a path through a symlinked parent).
 *
 * @module
 */
import { realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';

/**
 * The real path an output written to `path` would have: its parent resolved through symlinks
 * (the nearest existing ancestor when the parent does not exist yet), the last segment as given.
 * The last segment is not followed: an output is written to a temp file and renamed onto
 * `path`, which replaces a symlink there, not the file it points to.
 *
 * @example
 * ```ts
 * // With link -> ckpt: '/work/ckpt/model.bin', also when out/ does not exist yet.
 * await realDestination('link/model.bin');
 * ```
 */
export async function realDestination(path: string): Promise<string> {
  const absolute = resolve(path);
  const parent = dirname(absolute);
  if (parent === absolute) return absolute;
  const realParent = await realpath(parent).catch(() => realDestination(parent));
  return join(realParent, basename(absolute));
}

/** Whether `child` is `parent` or inside it; both absolute, compared segment by segment. */
export function isInside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}
