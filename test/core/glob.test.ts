import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { compileGlob, createGlobMatcher } from '../../src/core/glob.js';
import { DEFAULT_SKIP_PATTERNS, DEFAULT_SKIP_RULES, findSkipRule, shouldSkipFile } from '../../src/archive/should-skip-file.js';

describe('compileGlob', () => {
  const cases: Array<[pattern: string, path: string, matches: boolean]> = [
    ['*.tmp', 'a.tmp', true],
    ['*.tmp', 'deep/dir/a.tmp', true], // no "/" in the pattern: any depth
    ['*.tmp', 'a.tmp.json', false],
    ['*.lock', '.lock', true], // "*" matches leading dots and the empty string
    ['?.txt', 'a.txt', true],
    ['?.txt', 'ab.txt', false],
    ['optimizer/', 'optimizer/', true],
    ['optimizer/', 'optimizer', false], // trailing "/" only matches directories
    ['optimizer/', 'x/optimizer/', true],
    ['logs/*.log', 'logs/a.log', true],
    ['logs/*.log', 'x/logs/a.log', false], // a "/" inside anchors at the root
    ['logs/*.log', 'logs/sub/a.log', false],
    ['logs/**', 'logs/sub/a.log', true],
    ['logs/**', 'logs/', false],
    ['**/a.log', 'a.log', true],
    ['**/a.log', 'x/y/a.log', true],
    ['a/**/b', 'a/b', true],
    ['a/**/b', 'a/x/y/b', true],
    ['/top.txt', 'top.txt', true],
    ['/top.txt', 'sub/top.txt', false],
    ['*.{bin,pt}', 'w.pt', true],
    ['*.{bin,pt}', 'w.bin', true],
    ['*.{bin,pt}', 'w.safetensors', false],
    ['shard-[0-9].bin', 'shard-3.bin', true],
    ['shard-[!0-9].bin', 'shard-3.bin', false],
    ['shard-[!0-9].bin', 'shard-x.bin', true],
    ['\\*.txt', '*.txt', true],
    ['\\*.txt', 'a.txt', false],
    ['a+b (1).txt', 'a+b (1).txt', true],
    ['日本語*', '日本語 ✓.json', true],
    ['[unclosed', '[unclosed', true],
  ];
  it.each(cases)('%s against %s → %s', (pattern, path, matches) => {
    expect(compileGlob(pattern)(path)).toBe(matches);
  });

  it('refuses empty patterns', () => {
    expect(() => compileGlob('')).toThrow(InvalidArgumentError);
    expect(() => compileGlob('a\\')).toThrow(/lone/);
  });

  it('refuses a character class the regex engine cannot compile as an InvalidArgumentError naming the pattern, not a bare SyntaxError', () => {
    for (const pattern of ['shard-[9-0].bin', '*.{pt,[z-a]}']) {
      const error = (() => {
        try {
          compileGlob(pattern);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(error, pattern).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).argument).toBe('pattern');
      expect((error as InvalidArgumentError).message).toContain(`Glob "${pattern}" has a character class that cannot match`);
      expect((error as InvalidArgumentError).hint).toMatch(/ranges in order/);
    }
  });
});

describe('createGlobMatcher', () => {
  it('matches paths inside a matched directory and says which pattern matched', () => {
    const match = createGlobMatcher(['optimizer/', '*.bak']);
    expect(match('optimizer/state/0.pt')).toBe('optimizer/');
    expect(match('x/old.bak')).toBe('*.bak');
    expect(match('model.safetensors')).toBeUndefined();
    expect(createGlobMatcher([])('anything')).toBeUndefined();
  });
});

describe('shouldSkipFile', () => {
  it('documents every rule with a category and a description', () => {
    expect(DEFAULT_SKIP_PATTERNS).toEqual(DEFAULT_SKIP_RULES.map((r) => r.pattern));
    for (const rule of DEFAULT_SKIP_RULES) expect(rule.description.length).toBeGreaterThan(5);
  });

  it('skips leftovers at any depth, and whole skipped directories', () => {
    for (const path of [
      'a.tmp',
      'x/y.temp',
      'w.safetensors.partial',
      'w.part',
      '~$notes.docx',
      '__pycache__/',
      'pkg/__pycache__/m.pyc',
      'm.pyc',
      '.pytest_cache/v/x',
      'nb/.ipynb_checkpoints/a.ipynb',
      'yarn.lock',
      '.lock',
      '.f.swp',
      '.f.swo',
      'notes~',
      '.DS_Store',
      'sub/Thumbs.db',
      '.git',
      '.git/objects/ab/cdef',
      'vendor\\.git\\HEAD',
    ]) {
      expect(shouldSkipFile(path), path).toBe(true);
    }
  });

  it('keeps checkpoint files, including look-alikes', () => {
    for (const path of [
      'model.safetensors',
      'model-00001-of-00002.safetensors',
      'adapter_config.json',
      'tokenizer.model',
      'partial_results.json',
      'locks.md',
      'pycache.txt',
      '.gitignore',
      '.github/workflows/ci.yml',
      'tmp/real-data.bin', // a directory named tmp is not a temp file
    ]) {
      expect(shouldSkipFile(path), path).toBe(false);
    }
  });

  it('names the rule that matched', () => {
    expect(findSkipRule('a/__pycache__/b.pyc')).toMatchObject({ pattern: '__pycache__/', category: 'cache' });
    expect(findSkipRule('.git/HEAD')).toMatchObject({ category: 'vcs' });
    expect(findSkipRule('model.bin')).toBeUndefined();
  });
});
