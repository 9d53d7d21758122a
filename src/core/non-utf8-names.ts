/**
 * File names that are not UTF-8. Node decodes every name readdir returns as UTF-8, and bytes
 * that do not decode become U+FFFD: the string it hands back names no file (lstat, open and tar
 * answer ENOENT) and cannot name it in JSON or in an artifact path either. Those names are
 * found by reading the directory again as bytes, only when a name holds U+FFFD at all.
 *
 * @module
 */
import { existsSync, readdirSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { LocalPathError } from './errors.js';

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

/** What Node.js makes of bytes that are not UTF-8 when it decodes its arguments and environment. */
const REPLACEMENT_CHARACTER = '\uFFFD';

/**
 * Whether `path` names nothing because one of its components stands for a name on disk that is
 * not valid UTF-8 (Latin-1 bytes from Python's `subprocess.run([b'...'])`), which Node.js
 * decoded into another name on the way in (an argument, or a variable of the environment): the
 * component after the deepest directory that exists is the lossy decoding of one of that
 * directory's names. A name that holds U+FFFD for real (valid UTF-8), or a path still to be
 * written (`archive -o`), is not such a path. Reads the disk only for a path that holds U+FFFD.
 *
 * @example
 * ```ts
 * if (namesUndecodableEntry(dir)) throw notUtf8PathError(dir);
 * ```
 */
export function namesUndecodableEntry(path: string): boolean {
  if (!path.includes(REPLACEMENT_CHARACTER) || existsSync(path)) return false;
  let dir = path;
  let missing = '';
  while (!existsSync(dir)) {
    if (dirname(dir) === dir) return false;
    missing = basename(dir);
    dir = dirname(dir);
  }
  if (!missing.includes(REPLACEMENT_CHARACTER)) return false;
  try {
    return readdirSync(dir, { encoding: 'buffer' }).some((raw) => !isUtf8(raw) && raw.toString('utf8') === missing);
  } catch {
    return false; // unreadable: the caller's own check reports it
  }
}

/**
 * The error for a path {@link namesUndecodableEntry} found: "does not exist. Check the path" sent
 * the user looking at a path that was there. No spelling on the command line (nor in a
 * variable) reaches the name.
 *
 * @param variable The environment variable the path came from; `undefined` for the command line.
 * @example
 * ```ts
 * throw notUtf8PathError('/data/caf\uFFFD', 'ARTIFACT_UPLOADER_CONFIG_DIR');
 * ```
 */
export function notUtf8PathError(path: string, variable?: string): LocalPathError {
  const hint = `Rename it to a UTF-8 name, or ${variable ? `set ${variable} to` : 'pass'} a symlink with a UTF-8 name that points at it (\`ln -s\`).`;
  return new LocalPathError(
    'PATH_NOT_FOUND',
    path,
    `${path} does not exist: its name holds "${REPLACEMENT_CHARACTER}", which is what a name that is not valid UTF-8 becomes on the way in (Node.js reads its arguments and environment as UTF-8), so such a file or directory cannot be named ${variable ? `in ${variable}` : 'on the command line'}. ${hint}`,
    { hint },
  );
}
