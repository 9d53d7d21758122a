/**
 * File names that are not UTF-8. Node decodes every name readdir returns as UTF-8, and bytes
 * that do not decode become U+FFFD: the string it hands back names no file (lstat, open and tar
 * answer ENOENT) and cannot name it in JSON or in an artifact path either. Those names are
 * found by reading the directory again as bytes, only when a name holds U+FFFD at all.
 *
 * @module
 */
import { readdir } from 'node:fs/promises';

/**
 * The names in `dir` whose bytes are not valid UTF-8: the lossy string readdir gives for each,
 * mapped to its real bytes (a Buffer path reaches the file).
 *
 * @example
 * ```ts
 * const entries = await readdir(dir, { withFileTypes: true });
 * const undecodable = entries.some((e) => e.name.includes('\uFFFD')) ? await nonUtf8Names(dir) : new Map();
 * ```
 */
export async function nonUtf8Names(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const raw of await readdir(dir, { encoding: 'buffer' })) {
    if (!isUtf8(raw)) out.set(raw.toString('utf8'), raw);
  }
  return out;
}

/** Whether `bytes` (a name or a link target) is valid UTF-8, that is, survives decoding. */
export function isUtf8(bytes: Buffer): boolean {
  return Buffer.from(bytes.toString('utf8'), 'utf8').equals(bytes);
}
