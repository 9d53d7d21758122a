/**
 * What every object store (s3://, gs://, wasbs://) must do with small files: upload 0 B, 1 KiB
 * and a directory with odd names one request each, without retries, reporting progress, and
 * list them back one level at a time with sizes; and refuse bad input before any request.
 * Shared so each store test runs the same checks.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { expect } from 'vitest';
import { LocalPathError } from '../../src/core/errors.js';
import type { RetryEvent } from '../../src/core/retry.js';
import { listArtifactsRecursive, type ArtifactStore, type UploadFileResult } from '../../src/stores/artifact-store.js';
import { sha256 } from '../uploader/helpers.js';

/**
 * Uploads the small files through `store` (each written locally by `writeLocal` first), checks
 * every result with `resultFor`, the listings, and returns `{ artifactPath: sha256 }` for the
 * final cross-check with the Python client.
 */
export async function uploadAndListSmallFiles(
  store: ArtifactStore,
  writeLocal: (relative: string, data: Buffer) => Promise<string>,
  resultFor: (data: Buffer) => UploadFileResult,
): Promise<Record<string, string>> {
  const files: Record<string, Buffer> = {
    'small/empty.txt': Buffer.alloc(0),
    'small/one-kib.bin': randomBytes(1024),
    'small/ckpt/step 100/model.safetensors': randomBytes(3000),
    'small/ckpt/step 100/config.json': Buffer.from('{"a": 1}'),
    // ("?", "#" and "%XX" are refused before any byte: MLflow's Python client cannot download them.)
    'small/ckpt/ünïcødé 模型/weights (copy) [1] & co+=;@,!.bin': randomBytes(777),
    // Bytes that look like a multipart boundary, for stores that frame bodies that way (gs://).
    'small/ckpt/.hidden/a..b': Buffer.from('\r\n--boundary--\r\n\r\n'),
  };
  const hashes: Record<string, string> = {};
  const retries: RetryEvent[] = [];
  for (const [artifactPath, data] of Object.entries(files)) {
    const local = await writeLocal(artifactPath, data);
    const progress: number[] = [];
    const result = await store.uploadFile(local, artifactPath, { onProgress: (n) => progress.push(n), onRetry: (e) => retries.push(e) });
    expect(result).toEqual(resultFor(data));
    expect(progress.at(-1)).toBe(data.length);
    hashes[artifactPath] = sha256(data);
  }
  expect(retries).toEqual([]);

  // One level at a time, sizes included, sorted; a missing directory is empty.
  expect(await store.list('small')).toEqual([
    { path: 'small/ckpt', isDir: true },
    { path: 'small/empty.txt', isDir: false, size: 0 },
    { path: 'small/one-kib.bin', isDir: false, size: 1024 },
  ]);
  expect(await store.list('small/ckpt/step 100')).toEqual([
    { path: 'small/ckpt/step 100/config.json', isDir: false, size: 8 },
    { path: 'small/ckpt/step 100/model.safetensors', isDir: false, size: 3000 },
  ]);
  expect(await store.list('nothing/here')).toEqual([]);
  expect((await listArtifactsRecursive(store, 'small')).map((e) => e.path)).toEqual(Object.keys(files).sort());
  return hashes;
}

/**
 * A missing local file, an escaping artifact path, one with `#` and one with an unpaired
 * surrogate are refused with a `LocalPathError` before any request reaches `requests` (the
 * fault proxy's log, cleared first).
 */
export async function expectRefusedBeforeAnyRequest(store: ArtifactStore, missingPath: string, existingPath: string, requests: unknown[]): Promise<void> {
  await expect(store.uploadFile(missingPath, 'nope.bin')).rejects.toMatchObject({ code: 'PATH_NOT_FOUND' });
  await expect(store.uploadFile(existingPath, '../escape.bin')).rejects.toBeInstanceOf(LocalPathError);
  await expect(store.uploadFile(existingPath, 'a#b.bin')).rejects.toMatchObject({ code: 'INVALID_ARTIFACT_PATH' });
  // A string with half of a surrogate pair has no UTF-8 form: the Azure SDK threw a bare
  // URIError on it, and GCS stored a name MLflow's client could not download.
  await expect(store.uploadFile(existingPath, 'half-\ud83d.bin')).rejects.toMatchObject({ code: 'INVALID_ARTIFACT_PATH', message: expect.stringContaining('unpaired UTF-16 surrogate') });
  expect(requests).toEqual([]);
}

/** Writes `data` to `<dir>/src/<relative>` (directories made) and returns that path: the local side of an upload. */
export async function writeSourceFile(dir: string, relative: string, data: Buffer | string): Promise<string> {
  const local = join(dir, 'src', relative);
  await mkdir(dirname(local), { recursive: true });
  await writeFile(local, data);
  return local;
}
