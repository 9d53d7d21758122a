/**
 * Names that collide where a file system folds case or Unicode normalization: the one check the
 * uploader's plan, `createCheckpointArchive` and the model validator share, so an upload, an
 * archive and a validation of the same directory warn about the same names.
 *
 * @module
 */

/** How macOS (case and NFC/NFD) and Windows (case only) see a name: one key per spelling that lands on one entry. */
function folded(path: string): string {
  return path.normalize('NFC').toLowerCase();
}

/** A path as a warning names it, marked when it is written NFD (two spellings look the same on screen). */
function named(path: string): string {
  return `${JSON.stringify(path)}${path === path.normalize('NFC') ? '' : ' (Unicode NFD)'}`;
}

/** What two spellings differ in, and where that makes them one. NTFS keeps NFC and NFD apart (it folds case only): those collide on macOS alone. */
function difference(spellings: readonly string[]): { how: string; where: string } {
  const caseOnly = new Set(spellings.map((p) => p.normalize('NFC'))).size > 1;
  return caseOnly ? { how: 'letter case', where: 'macOS and Windows' } : { how: 'Unicode normalization (NFC/NFD)', where: 'macOS' };
}

/**
 * The warnings of names that are stored as given (MLflow and the stores tell them apart, and so
 * does Linux) but collide when downloaded or extracted on macOS (whose file systems fold case and
 * NFC/NFD) or Windows (which folds case):
 *
 * - one per group of `paths` that differ only in letter case (`Model.bin`, `model.bin`) or in
 *   Unicode normalization (`café` written NFC and NFD): they land on one file, the others
 *   silently replaced;
 * - one per path that folds to the name of a directory (`A` beside `a/b.bin`): the file and the
 *   directory cannot both exist there, so the file or the directory, with everything in it, is lost.
 *
 * Two directories that fold to one (`Ckpt/x.bin`, `ckpt/y.bin`) are not warned about: their files
 * land in one folder and none is lost (files that then collide are a group of the first kind).
 * Named so the user can rename one; never refused, since on Linux all of them are fine. Linear
 * in the number of paths (a map per kind of name, no pairwise compare): a plan of 20,000 files costs one pass.
 *
 * @param paths Every entry that is not a directory (files, links), `/`-separated.
 * @param directories Directories besides the parents of `paths` (an archive's empty ones), with
 *   or without a trailing `/`; none by default.
 * @example
 * ```ts
 * twinNameWarnings(['ck/Model.bin', 'ck/model.bin', 'ck/config.json']);
 * // ['"ck/Model.bin" and "ck/model.bin" differ only in letter case: ...']
 * twinNameWarnings(['ck/A', 'ck/a/b.bin']);
 * // ['"ck/A" (a file) and the directory "ck/a/" differ only in letter case: ...']
 * ```
 */
export function twinNameWarnings(paths: readonly string[], directories: readonly string[] = []): string[] {
  const groups = new Map<string, string[]>();
  for (const path of paths) {
    const key = folded(path);
    const group = groups.get(key);
    if (group) group.push(path);
    else groups.set(key, [path]);
  }
  // Each directory once, by its folded name (the first spelling met stands for the others).
  const directoryByFold = new Map<string, string>();
  const seenDirectories = new Set<string>();
  const addDirectory = (directory: string): boolean => {
    if (seenDirectories.has(directory)) return false;
    seenDirectories.add(directory);
    const key = folded(directory);
    if (!directoryByFold.has(key)) directoryByFold.set(key, directory);
    return true;
  };
  // Deepest parent first: a directory seen already has had its own parents added, so the walk
  // stops there, and the files of one directory cost one look-up each.
  const addParents = (path: string): void => {
    for (let end = path.lastIndexOf('/'); end > 0; end = path.lastIndexOf('/', end - 1)) {
      if (!addDirectory(path.slice(0, end))) break;
    }
  };
  for (const directory of directories) {
    const bare = directory.endsWith('/') ? directory.slice(0, -1) : directory;
    if (bare !== '' && addDirectory(bare)) addParents(bare);
  }
  for (const path of paths) addParents(path);

  const warnings: string[] = [];
  for (const group of groups.values()) {
    if (group.length < 2) continue;
    const { how, where } = difference(group);
    const names = group.map(named);
    warnings.push(
      `${names.slice(0, -1).join(', ')} and ${names.at(-1)} differ only in ${how}: they are stored as given, but downloaded or extracted on ${where} they land on one file, the others silently replaced. Rename all but one to keep them apart there.`,
    );
  }
  for (const [key, group] of groups) {
    const directory = directoryByFold.get(key);
    // The same spelling as a file cannot be a directory on any file system: not a twin.
    if (directory === undefined || group.includes(directory)) continue;
    const { how, where } = difference([...group, directory]);
    warnings.push(
      `${group.map((p) => `${named(p)} (a file)`).join(', ')} and the directory ${named(`${directory}/`)} differ only in ${how}: they are stored as given, but downloaded or extracted on ${where} a file and a directory cannot both have that name, so the file or the directory with everything in it is lost. Rename one of them to keep both there.`,
    );
  }
  return warnings;
}
