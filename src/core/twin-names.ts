/**
 * Names that one file system tells apart and another folds into one: letter case (macOS,
 * Windows) and Unicode normalization (macOS). Shared by the upload plan (artifact paths) and
 * the model validator (a model folder's files), so both say the same thing about the same names.
 *
 * @module
 */

/**
 * One warning per group of paths that differ only in letter case (`Model.bin`, `model.bin`) or
 * in Unicode normalization (`café` written NFC and NFD): stored as given (MLflow and the stores
 * tell them apart, and so does Linux), but a download or an extraction on macOS (whose file
 * systems fold both) or Windows (which folds case) keeps one file, the other silently replaced.
 * Named so the user can rename one; never refused, since on Linux both are fine.
 *
 * @example
 * ```ts
 * twinNameWarnings(['ck/Model.bin', 'ck/model.bin', 'ck/config.json']);
 * // ['"ck/Model.bin" and "ck/model.bin" differ only in letter case: ...']
 * ```
 */
export function twinNameWarnings(paths: readonly string[]): string[] {
  const groups = new Map<string, string[]>();
  for (const path of paths) {
    const folded = path.normalize('NFC').toLowerCase();
    const group = groups.get(folded);
    if (group) group.push(path);
    else groups.set(folded, [path]);
  }
  const warnings: string[] = [];
  for (const group of groups.values()) {
    if (group.length < 2) continue;
    // NTFS keeps NFC and NFD names apart (it folds case only): those twins collide on macOS alone.
    const caseOnly = new Set(group.map((p) => p.normalize('NFC'))).size > 1;
    const named = group.map((p) => `${JSON.stringify(p)}${p === p.normalize('NFC') ? '' : ' (Unicode NFD)'}`);
    const how = caseOnly ? 'letter case' : 'Unicode normalization (NFC/NFD)';
    const where = caseOnly ? 'macOS and Windows' : 'macOS';
    warnings.push(
      `${named.slice(0, -1).join(', ')} and ${named.at(-1)} differ only in ${how}: they are stored as given, but downloaded or extracted on ${where} they land on one file, the others silently replaced. Rename all but one to keep them apart there.`,
    );
  }
  return warnings;
}
