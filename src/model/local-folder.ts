/**
 * Telling a local folder from a Hub repo id when both read alike: `models/llama` passes the
 * Hub's repo-id rule, yet it is what `mlx_lm.lora --model models/llama` or
 * `from_pretrained("models/llama")` records when the base model was loaded from disk. When a
 * folder of that name is there, the value is almost surely that folder.
 *
 * @module
 */
import { stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { isHubRepoId } from '../core/hub-repo-id.js';

/**
 * The folder on this machine that `name` designates, relative to the working directory or to
 * one of `dirs` (tried in that order), or `undefined` when there is none (an absolute path is
 * checked as it is).
 *
 * @example
 * ```ts
 * await localFolderNamed('models/llama', ['/work/out/llama-lora']); // '/work/out/llama-lora/models/llama' when that folder exists
 * await localFolderNamed('meta-llama/Llama-3.2-1B', []); // undefined, unless such a folder is in the working directory
 * ```
 * @internal
 */
export async function localFolderNamed(name: unknown, dirs: readonly string[]): Promise<string | undefined> {
  if (typeof name !== 'string' || name === '') return undefined;
  const candidates = isAbsolute(name) ? [name] : [process.cwd(), ...dirs].map((dir) => resolve(dir, name));
  for (const candidate of candidates) {
    const info = await stat(candidate).catch(() => undefined);
    if (info?.isDirectory()) return candidate;
  }
  return undefined;
}

/** What a model name designates: see {@link modelNameKind}. */
export type ModelNameKind = 'hub' | 'local' | 'neither';

/**
 * What a model name found in a model's files (the MLX config's `model`, PEFT's
 * `base_model_name_or_path`) designates, so that a warning about it says what it is:
 * - `'hub'`: a Hub repo id (`namespace/name`, or a bare `name` such as `gpt2`) that is no folder here;
 * - `'local'`: a folder on this machine ({@link localFolderNamed}), or a value written as a path
 *   (absolute, `./`, `../`, `~`) that may name one on the machine that trained the model;
 * - `'neither'`: anything else (`"Llama 3"`, a repo id with a typo): no repo id the Hub accepts,
 *   no folder here, and nothing that reads as a path; calling it "a local path" sent users
 *   looking for a folder that never existed.
 *
 * @example
 * ```ts
 * await modelNameKind('meta-llama/Llama-3.2-1B', []); // 'hub'
 * await modelNameKind('/Users/alice/models/llama', []); // 'local'
 * await modelNameKind('Llama 3', []); // 'neither', unless a folder of that name is here
 * ```
 * @internal
 */
export async function modelNameKind(name: string, dirs: readonly string[]): Promise<ModelNameKind> {
  // A folder here wins over a repo id that reads alike (see the module comment).
  if ((await localFolderNamed(name, dirs)) !== undefined || isAbsolute(name) || name.startsWith('.') || name.startsWith('~')) return 'local';
  return isHubRepoId(name, { namespace: 'optional' }) ? 'hub' : 'neither';
}
