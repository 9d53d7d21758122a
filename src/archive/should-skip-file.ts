/**
 * The default filter of checkpoint archives: files that never belong in a checkpoint
 * (temporary files, caches, lock files, editor and OS leftovers, version-control folders).
 * They waste bytes at best and, at worst, carry a half-written `*.partial` into the archive
 * that a later `from_pretrained` trips over.
 *
 * @module
 */
import { compileGlob } from '../core/glob.js';

/** Why a default skip rule exists. */
export type SkipCategory = 'temporary' | 'cache' | 'lock' | 'editor' | 'vcs';

/** One entry of the default skip list. */
export interface SkipRule {
  /** Glob (see `compileGlob`): no `/` means any depth; a trailing `/` means directories only. */
  readonly pattern: string;
  /** What kind of leftover it is. */
  readonly category: SkipCategory;
  /** What produces it. */
  readonly description: string;
}

/**
 * The default skip list, in the order it is checked. A directory that matches is skipped with
 * everything inside it. Matching is case-sensitive and `*` also matches names starting with a
 * dot, so `*.lock` covers a bare `.lock` too.
 */
export const DEFAULT_SKIP_RULES: readonly SkipRule[] = Object.freeze([
  { pattern: '*.tmp', category: 'temporary', description: 'temporary file' },
  { pattern: '*.temp', category: 'temporary', description: 'temporary file' },
  { pattern: '*.partial', category: 'temporary', description: 'partial download or interrupted write' },
  { pattern: '*.part', category: 'temporary', description: 'partial download' },
  { pattern: '~$*', category: 'temporary', description: 'Microsoft Office owner file' },
  { pattern: '__pycache__/', category: 'cache', description: 'Python bytecode cache' },
  { pattern: '*.pyc', category: 'cache', description: 'Python bytecode' },
  { pattern: '*.pyo', category: 'cache', description: 'Python optimised bytecode' },
  { pattern: '.pytest_cache/', category: 'cache', description: 'pytest cache' },
  { pattern: '.ipynb_checkpoints/', category: 'cache', description: 'Jupyter autosaves' },
  { pattern: '*.lock', category: 'lock', description: 'lock file (also a bare .lock)' },
  { pattern: '*.swp', category: 'editor', description: 'Vim swap file' },
  { pattern: '*.swo', category: 'editor', description: 'Vim swap file' },
  { pattern: '*~', category: 'editor', description: 'editor backup file' },
  { pattern: '.DS_Store', category: 'editor', description: 'macOS Finder metadata' },
  { pattern: 'Thumbs.db', category: 'editor', description: 'Windows thumbnail cache' },
  { pattern: '.git', category: 'vcs', description: 'Git repository (directory, or worktree/submodule pointer file)' },
]);

/** The patterns of {@link DEFAULT_SKIP_RULES}, e.g. to extend them in your own `filter`. */
export const DEFAULT_SKIP_PATTERNS: readonly string[] = Object.freeze(DEFAULT_SKIP_RULES.map((rule) => rule.pattern));

const compiledRules = DEFAULT_SKIP_RULES.map((rule) => [rule, compileGlob(rule.pattern)] as const);

/**
 * The default skip rule that matches `path` (or one of its parent directories), or
 * `undefined` when the file belongs in an archive.
 *
 * @example
 * ```ts
 * findSkipRule('model/__pycache__/x.pyc')?.pattern; // '__pycache__/'
 * ```
 */
export function findSkipRule(path: string): SkipRule | undefined {
  const segments = path.replace(/\\/g, '/').replace(/^(\.\/)+/, '').split('/');
  const isDirectory = path.endsWith('/');
  if (isDirectory) segments.pop();
  for (let i = 0; i < segments.length; i++) {
    const name = segments[i]!;
    const candidate = i < segments.length - 1 || isDirectory ? `${name}/` : name;
    for (const [rule, test] of compiledRules) if (test(candidate)) return rule;
  }
  return undefined;
}

/**
 * True when `path` is a file that does not belong in a checkpoint archive, by the default skip
 * list ({@link DEFAULT_SKIP_RULES}). `path` is relative to the checkpoint directory, `/` or `\`
 * separated; write directories with a trailing `/` (`__pycache__/`) so directory-only rules
 * apply to them. A file inside a skipped directory is skipped too.
 *
 * @example
 * ```ts
 * shouldSkipFile('adapter_model.safetensors');  // false
 * shouldSkipFile('optimizer.pt.tmp');           // true
 * shouldSkipFile('.ipynb_checkpoints/a.ipynb'); // true
 * // Keep lock files but skip everything else on the list:
 * const filter = (p: string) => !shouldSkipFile(p) || findSkipRule(p)?.category === 'lock';
 * ```
 */
export function shouldSkipFile(path: string): boolean {
  return findSkipRule(path) !== undefined;
}
