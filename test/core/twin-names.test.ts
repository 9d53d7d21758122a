/**
 * `twinNameWarnings` on its own: the directories it is given (an archive's empty ones) count
 * with their parents, as the parents of the paths do. The plan's and the archive's warnings are
 * tested through them (test/uploader/twin-names.test.ts, test/archive/create-checkpoint-archive.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { twinNameWarnings } from '../../src/core/twin-names.js';

describe('twinNameWarnings', () => {
  it('a directory given, deepest first, brings its parents: a file that folds to one of them is named', () => {
    const warnings = twinNameWarnings(['A', 'b.bin'], ['a/empty/inner/', 'a/empty/']);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('"A" (a file) and the directory "a/" differ only in letter case');
    expect(twinNameWarnings(['A/x.bin', 'a/y.bin'], ['a/empty/'])).toEqual([]);
  });
});
