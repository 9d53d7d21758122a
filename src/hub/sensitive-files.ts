/**
 * Files of a model directory that hold credentials: a `.env`, a `.netrc`, an `.npmrc`, cloud
 * credentials, an SSH or PEM private key. They are never needed to load a model, and once
 * committed to a Hub repo they stay in its history (a later delete leaves them in the earlier
 * commit), public by default. `huggingface_hub`'s `upload_folder` uploads them: its
 * `DEFAULT_IGNORE_PATTERNS` cover only `.git` and `.cache/huggingface`.
 *
 * @module
 */
import { open } from 'node:fs/promises';

/** Names that hold credentials whatever their content (at any depth). */
const SENSITIVE_NAMES = new Set([
  '.env',
  '.netrc',
  '_netrc',
  '.npmrc',
  '.pypirc',
  '.git-credentials',
  'credentials',
  'credentials.json',
  'application_default_credentials.json',
  'id_rsa',
  'id_dsa',
  'id_ecdsa',
  'id_ed25519',
]);

/** `.env.local`, `.env.production`: dotenv's variants; the examples checked in beside them hold no secret. */
const DOTENV_VARIANT = /^\.env\.(?!(?:example|sample|template|dist)$)[^/]+$/i;

/** Key files: a private key only when the content says so (a `.pem` may as well be a CA certificate). */
const KEY_FILE = /\.(?:pem|key)$/i;

/** How much of a key file is read to find a private-key block (PEM files are small). */
const KEY_SNIFF_BYTES = 64 * 1024;

async function holdsPrivateKey(localPath: string): Promise<boolean> {
  const handle = await open(localPath, 'r').catch(() => undefined);
  if (!handle) return false;
  try {
    const buffer = Buffer.alloc(KEY_SNIFF_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, KEY_SNIFF_BYTES, 0);
    return /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(buffer.subarray(0, bytesRead).toString('latin1'));
  } finally {
    await handle.close();
  }
}

/**
 * True when the file at `path` (in the repo, `/`-separated; read at `localPath`) holds
 * credentials by its name, or is a `.pem`/`.key` file with a private key in it.
 *
 * @example
 * ```ts
 * await isSensitiveFile('.env', '/work/model/.env'); // true
 * await isSensitiveFile('.gitattributes', '/work/model/.gitattributes'); // false
 * ```
 * @internal
 */
export async function isSensitiveFile(path: string, localPath: string): Promise<boolean> {
  const name = path.split('/').pop() ?? path;
  if (SENSITIVE_NAMES.has(name.toLowerCase()) || DOTENV_VARIANT.test(name)) return true;
  return KEY_FILE.test(name) && (await holdsPrivateKey(localPath));
}
