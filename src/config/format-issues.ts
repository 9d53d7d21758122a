/**
 * Turns zod's validation issues into {@link ConfigIssue}s a person can act on: the dotted key
 * path, what was expected, what was found, and for an unknown key the closest valid one.
 *
 * @module
 */
import type * as z from 'zod';
import type { ConfigIssue } from '../core/errors.js';
import { closestMatch } from './did-you-mean.js';
import type { keysAt } from './file-schema.js';

/** A dotted key path; `(top level)` for the root. */
export function dottedPath(path: readonly PropertyKey[]): string {
  return path.map(String).join('.');
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const segment of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[segment as string];
  }
  return value;
}

/** `the string "yes"`, `the number 3`, `a list`, `null (an empty value)`. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null (an empty value)';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return `the ${typeof value} ${String(value)}`;
}

const EXPECTED: Record<string, string> = {
  boolean: 'true or false',
  number: 'a number',
  int: 'an integer',
  string: 'a string',
  array: 'a list',
  object: 'a mapping of keys to values',
};

/**
 * YAML 1.1's merge key. YAML 1.2 (and this library) reads `<<: *defaults` as a key named `<<`,
 * which "unknown key" alone left a user of docker-compose-style anchors to puzzle over.
 */
const MERGE_KEY = '<<';
const MERGE_KEY_MESSAGE =
  'merge keys ("<<: *alias") are YAML 1.1, not read here (YAML 1.2): write the keys out, or alias a whole section ("metrics: *off" after "checkpoint: &off {enabled: false}")';

/** YAML 1.1 booleans that YAML 1.2 (and this library) read as plain strings. */
const YAML11_BOOLEANS = new Set(['yes', 'no', 'on', 'off', 'y', 'n']);

function bound(issue: { minimum?: unknown; maximum?: unknown; inclusive?: boolean }, op: '>' | '<'): string {
  const limit = op === '>' ? issue.minimum : issue.maximum;
  return `${op}${issue.inclusive === false ? '' : '='} ${String(limit)}`;
}

function explain(issue: z.core.$ZodIssue, input: unknown): string {
  const got = describeValue(valueAt(input, issue.path));
  switch (issue.code) {
    case 'invalid_type': {
      const value = valueAt(input, issue.path);
      // YAML's .inf and .nan are numbers: "expected a number, got the number Infinity" read as
      // a contradiction.
      if (typeof value === 'number' && !Number.isFinite(value)) return `expected a finite number, got the number ${String(value)}`;
      const expected = EXPECTED[issue.expected] ?? issue.expected;
      const yamlNote =
        issue.expected === 'boolean' && typeof value === 'string' && YAML11_BOOLEANS.has(value.toLowerCase())
          ? ' (YAML 1.2 reads yes/no/on/off as strings: write true or false)'
          : '';
      return `expected ${expected}, got ${got}${yamlNote}`;
    }
    case 'invalid_value':
      return `expected ${issue.values.map((v) => JSON.stringify(v)).join(' or ')}, got ${got}`;
    case 'too_small':
      if (issue.origin === 'string') return `expected a non-empty string, got ${got}`;
      if (issue.origin === 'array') return `expected a list with at least ${String(issue.minimum)} item(s)`;
      return `expected a number ${bound(issue, '>')}, got ${got}`;
    case 'too_big':
      if (issue.origin === 'array') return `expected a list with at most ${String(issue.maximum)} item(s)`;
      return `expected a number ${bound(issue, '<')}, got ${got}`;
    case 'invalid_format':
    case 'custom':
      // Our own refinements carry a complete "expected ..." sentence.
      return `${issue.message}, got ${got}`;
    default:
      return issue.message;
  }
}

/**
 * Readable issues for every problem zod found. Unknown keys become one issue each, at the
 * unknown key's own path, with a suggestion when one valid key is close. `allowedKeys` is the
 * schema's `keysAt` (passed in, so this module loads without the schema and zod).
 */
export function formatZodIssues(issues: readonly z.core.$ZodIssue[], input: unknown, allowedKeys: typeof keysAt): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of issues) {
    // zod's own safe-integer bound (±2^53 − 1) comes with the schema's bound for the same value:
    // one value, one problem, the bound the schema set ("<= 64", not "<= 9007199254740991").
    const safeIntegerBound = issue.code === 'too_big' || issue.code === 'too_small' ? issue.origin === 'int' : false;
    if (safeIntegerBound && issues.some((other) => other !== issue && dottedPath(other.path) === dottedPath(issue.path))) continue;
    if (issue.code === 'unrecognized_keys') {
      const allowed = allowedKeys(issue.path) ?? [];
      for (const key of issue.keys) {
        if (key === MERGE_KEY) {
          out.push({ path: dottedPath([...issue.path, key]), message: MERGE_KEY_MESSAGE });
          continue;
        }
        const suggestion = closestMatch(key, allowed);
        out.push({
          path: dottedPath([...issue.path, key]),
          message:
            `unknown key${suggestion ? `; did you mean "${suggestion}"?` : '.'}` +
            (allowed.length > 0 ? ` Allowed here: ${allowed.join(', ')}.` : ''),
        });
      }
      continue;
    }
    out.push({ path: dottedPath(issue.path), message: explain(issue, input) });
  }
  return out;
}
