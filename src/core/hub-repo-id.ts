/**
 * What the Hub accepts as a repo id, checked here so that a publish is refused before anything
 * is validated, converted or uploaded rather than by the Hub at the end (a repo it will not
 * create, a model card whose `base_model` it will not commit). In core/, not hub/: the config
 * file's `hub.repoId` is checked with the same rule when the config loads, and config/ does
 * not import hub/.
 *
 * The rules are `huggingface_hub`'s `validate_repo_id` (utils/_validators.py, which mirrors the
 * Hub's own check): ASCII letters, digits, `-`, `_` and `.`; each part at most 96 characters,
 * ending with a letter, digit or `_`; no `--` or `..` anywhere; no `.git` at the end. Parts
 * start with a letter or digit here, as the Hub's repo creation wants.
 *
 * @module
 */

/** One part (namespace or name) of a repo id. */
const REPO_ID_PART = /^[A-Za-z0-9](?:[\w.-]{0,94}\w)?$/;

/**
 * True when `value` is a repo id the Hub accepts: `namespace/name`, or with
 * `namespace: 'optional'` also a bare `name` (the Hub's canonical models, such as `gpt2`).
 *
 * @example
 * ```ts
 * isHubRepoId('my-org/llama-lora'); // true
 * isHubRepoId('my-org/llama-lora.git'); // false
 * isHubRepoId('gpt2', { namespace: 'optional' }); // true
 * ```
 */
export function isHubRepoId(value: unknown, options: { namespace?: 'required' | 'optional' } = {}): value is string {
  if (typeof value !== 'string') return false;
  const parts = value.split('/');
  if (parts.length > 2 || (parts.length === 1 && options.namespace !== 'optional')) return false;
  return parts.every((part) => REPO_ID_PART.test(part)) && !value.includes('--') && !value.includes('..') && !value.endsWith('.git');
}
