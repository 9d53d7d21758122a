/**
 * Listing the files of a model directory, the way the validator and publishers see it:
 * recursively, relative paths with `/`, hidden directories (`.git`, `.cache`, ...) skipped,
 * symlinked directories not followed (no cycles), symlinked files followed, symlinks to missing
 * targets left out (and reported through `onDanglingSymlink`).
 *
 * @module
 */
import { lstat, readdir, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** One file of a model directory. */
export interface ModelFile {
  /** Path relative to the model directory, `/`-separated. */
  path: string;
  /** Size in bytes. */
  size: number;
}

/** Options of {@link listModelFiles}. */
export interface ListModelFilesOptions {
  /**
   * Called with the relative path (`/`-separated) of every hidden directory skipped, in no set
   * order, so that a caller can say what was left out (its contents are never walked).
   * @default none
   */
  onHiddenDirectory?: (path: string) => void;
  /**
   * Called with the relative path (`/`-separated) and the target (as the link holds it) of
   * every symlink whose target does not exist, in no set order. Such a link is no file of the
   * listing; a caller that publishes the listing must say so (the upload plan refuses it).
   * @default none
   */
  onDanglingSymlink?: (path: string, target: string) => void;
}

/**
 * Lists every file under `dir`, sorted by path. Hidden directories are skipped (hidden files
 * are kept: a stray `.gitattributes` is still part of a repository).
 *
 * @example
 * ```ts
 * const files = await listModelFiles('out/llama-lora_20240501_093000');
 * const total = files.reduce((sum, f) => sum + f.size, 0);
 * ```
 */
export async function listModelFiles(dir: string, options: ListModelFilesOptions = {}): Promise<ModelFile[]> {
  const out: ModelFile[] = [];
  // The entries of a directory are statted together (a model can have hundreds of small files).
  const walk = async (absolute: string, relative: string): Promise<void> => {
    const names = (await readdir(absolute)).sort();
    await Promise.all(
      names.map(async (name) => {
        const full = join(absolute, name);
        const rel = relative === '' ? name : `${relative}/${name}`;
        const link = await lstat(full);
        if (link.isDirectory()) {
          if (!name.startsWith('.')) await walk(full, rel);
          else options.onHiddenDirectory?.(rel);
          return;
        }
        const info = link.isSymbolicLink() ? await stat(full).catch((error: NodeJS.ErrnoException) => error) : link;
        if (info instanceof Error) {
          if (info.code === 'ENOENT' || info.code === 'ENOTDIR') options.onDanglingSymlink?.(rel, await readlink(full).catch(() => '?'));
          return;
        }
        if (info.isFile()) out.push({ path: rel, size: info.size });
      }),
    );
  };
  await walk(dir, '');
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
