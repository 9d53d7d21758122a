/**
 * What the direct object-store tests (s3://, wasbs://) upload first: empty, small and
 * odd-named files, each as a single request, with the checks every store must pass.
 */
import { createHash, randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { LocalPathError } from '../../src/core/errors.js';
import type { RetryEvent } from '../../src/core/retry.js';
import type { ArtifactStore } from '../../src/stores/artifact-store.js';

/** 0 B, 1 KiB and a small directory with spaces, unicode, brackets and dots in its names. */
export function smallOddNamedArtifacts(): Record<string, Buffer> {
  return {
    'small/empty.txt': Buffer.alloc(0),
    'small/one-kib.bin': randomBytes(1024),
    'small/ckpt/step 100/model.safetensors': randomBytes(3000),
    'small/ckpt/step 100/config.json': Buffer.from('{"a": 1}'),
    'small/ckpt/ünïcødé 模型/weights (copy) [1] & co+=.bin': randomBytes(777),
    'small/ckpt/.hidden/a..b': randomBytes(10),
  };
}

/**
 * Uploads each file with `store.uploadFile` (written locally by `writeLocal` first), checks that
 * each went as one request with its progress reaching its size and nothing retried, and records
 * its sha256 in `expected`.
 */
export async function uploadEachOnce(
  store: ArtifactStore,
  files: Record<string, Buffer>,
  writeLocal: (relative: string, data: Buffer) => Promise<string>,
  expected: Record<string, string>,
): Promise<void> {
  const retries: RetryEvent[] = [];
  for (const [artifactPath, data] of Object.entries(files)) {
    const local = await writeLocal(artifactPath, data);
    const progress: number[] = [];
    const result = await store.uploadFile(local, artifactPath, { onProgress: (n) => progress.push(n), onRetry: (e) => retries.push(e) });
    expect(result, artifactPath).toEqual({ bytes: data.length, attempts: 1, multipart: false });
    expect(progress.at(-1), artifactPath).toBe(data.length);
    expected[artifactPath] = createHash('sha256').update(data).digest('hex');
  }
  expect(retries).toEqual([]);
}

/**
 * A missing local file, an escaping artifact path and one with `#` are refused with a
 * `LocalPathError` before any request reaches `requests` (the fault proxy's log, cleared first).
 */
export async function expectRefusedBeforeAnyRequest(store: ArtifactStore, missingPath: string, existingPath: string, requests: unknown[]): Promise<void> {
  await expect(store.uploadFile(missingPath, 'nope.bin')).rejects.toMatchObject({ code: 'PATH_NOT_FOUND' });
  await expect(store.uploadFile(existingPath, '../escape.bin')).rejects.toBeInstanceOf(LocalPathError);
  await expect(store.uploadFile(existingPath, 'a#b.bin')).rejects.toMatchObject({ code: 'INVALID_ARTIFACT_PATH' });
  expect(requests).toEqual([]);
}
