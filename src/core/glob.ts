/**
 * The glob dialect of include/exclude patterns, gitignore-like and small enough to read:
 *
 * - paths are relative, `/`-separated; a directory is written with a trailing `/`;
 * - a pattern without `/` (`*.tmp`, `__pycache__/`) matches a name at any depth;
 * - a pattern with a `/` inside (`optimizer/**`, `/logs`) is anchored at the root;
 * - a trailing `/` matches directories only;
 * - `*` matches within one segment (leading dots included), `?` one character, `**` any number
 *   of segments, `[abc]` / `[!abc]` a class, `{a,b}` alternatives, `\` escapes.
 *
 * Matching is case-sensitive. A file inside a matched directory is matched too.
 *
 * @module
 */
import { InvalidArgumentError } from './errors.js';

const SPECIAL = /[.+^$()|\\{}[\]*?]/g;

/** Translates one glob (no trailing `/`, no leading `/`) to a regex source. */
function translate(glob: string, pattern: string): string {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '\\') {
      const next = glob[++i];
      if (next === undefined) throw new InvalidArgumentError('pattern', `Glob "${pattern}" ends with a lone "\\".`);
      out += next.replace(SPECIAL, '\\$&');
    } else if (c === '*') {
      if (glob[i + 1] === '*') {
        const atSegmentStart = i === 0 || glob[i - 1] === '/';
        while (glob[i + 1] === '*') i++;
        if (atSegmentStart && glob[i + 1] === '/') {
          out += '(?:.*/)?'; // `**/` : zero or more directories
          i++;
        } else {
          out += '.*';
        }
      } else {
        out += '[^/]*';
      }
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const close = glob.indexOf(']', i + 2);
      if (close === -1) {
        out += '\\[';
        continue;
      }
      let body = glob.slice(i + 1, close);
      const negate = body.startsWith('!') || body.startsWith('^');
      if (negate) body = body.slice(1);
      out += `[${negate ? '^/' : ''}${body.replace(/\\/g, '\\\\').replace(/\]/g, '\\]')}]`;
      i = close;
    } else if (c === '{') {
      const close = glob.indexOf('}', i + 1);
      if (close === -1) {
        out += '\\{';
        continue;
      }
      const alternatives = glob.slice(i + 1, close).split(',');
      out += `(?:${alternatives.map((alt) => translate(alt, pattern)).join('|')})`;
      i = close;
    } else {
      out += c.replace(SPECIAL, '\\$&');
    }
  }
  return out;
}

/**
 * The regex of a translated glob. A class the regex engine refuses (`[z-a]`, a range out of
 * order) is the pattern's fault, not ours: it becomes an {@link InvalidArgumentError} naming the
 * pattern, where the engine's bare `SyntaxError` named neither the pattern nor where it came from.
 */
function globRegex(source: string, pattern: string): RegExp {
  try {
    return new RegExp(`^${source}$`, 'u');
  } catch (error) {
    const reason = (error as Error).message.replace(/^Invalid regular expression: \/.*\/u?: /, '');
    throw new InvalidArgumentError('pattern', `Glob "${pattern}" has a character class that cannot match (${reason.toLowerCase()}).`, {
      hint: 'Write its ranges in order ("[a-z]", "[0-9]"), or escape "[" as "\\[" to match it literally.',
      cause: error,
    });
  }
}

/** A compiled pattern: tests one path (not its ancestors). */
export type CompiledGlob = (path: string) => boolean;

/**
 * Compiles one pattern. The returned function tests a single path; a directory path must end
 * with `/` for directory-only patterns to match it.
 *
 * @throws {InvalidArgumentError} for an empty pattern, a trailing lone `\`, or a class the regex
 *   engine refuses (`[z-a]`).
 * @example
 * ```ts
 * compileGlob('*.tmp')('logs/run.tmp');        // true: no "/" in the pattern, any depth
 * compileGlob('optimizer/**')('optimizer/a/b'); // true
 * compileGlob('cache/')('cache');               // false: "cache" is not written as a directory
 * ```
 */
export function compileGlob(pattern: string): CompiledGlob {
  if (typeof pattern !== 'string' || pattern.length === 0 || pattern === '/') {
    throw new InvalidArgumentError('pattern', `Glob patterns must be non-empty strings, got ${JSON.stringify(pattern)}.`);
  }
  let glob = pattern;
  const directoryOnly = glob.endsWith('/');
  if (directoryOnly) glob = glob.slice(0, -1);
  const anchored = glob.startsWith('/');
  if (anchored) glob = glob.slice(1);
  const basenameOnly = !anchored && !glob.includes('/');
  const regex = globRegex(translate(glob, pattern), pattern);
  return (path) => {
    const isDirectory = path.endsWith('/');
    if (directoryOnly && !isDirectory) return false;
    const subject = normalise(path);
    return regex.test(basenameOnly ? subject.slice(subject.lastIndexOf('/') + 1) : subject);
  };
}

/** `./a\\b/` → `a/b`. */
function normalise(path: string): string {
  let p = path.replace(/\\/g, '/');
  while (p.startsWith('./')) p = p.slice(2);
  if (p.endsWith('/')) p = p.slice(0, -1);
  return p;
}

/**
 * A matcher for a list of patterns that also matches paths *inside* a matched directory, as
 * excludes and includes need. Returns the first pattern that matched, or `undefined`.
 *
 * @example
 * ```ts
 * const excluded = createGlobMatcher(['__pycache__/', '*.tmp']);
 * excluded('pkg/__pycache__/mod.pyc'); // '__pycache__/'
 * excluded('model.safetensors');       // undefined
 * ```
 */
export function createGlobMatcher(patterns: readonly string[]): (path: string) => string | undefined {
  const compiled = patterns.map((pattern) => [pattern, compileGlob(pattern)] as const);
  return (path) => {
    if (compiled.length === 0) return undefined;
    const segments = normalise(path).split('/');
    const isDirectory = path.endsWith('/');
    let prefix = '';
    for (let i = 0; i < segments.length; i++) {
      prefix += segments[i];
      const candidate = i < segments.length - 1 || isDirectory ? `${prefix}/` : prefix;
      for (const [pattern, test] of compiled) if (test(candidate)) return pattern;
      prefix += '/';
    }
    return undefined;
  };
}
