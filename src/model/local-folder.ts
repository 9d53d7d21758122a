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
