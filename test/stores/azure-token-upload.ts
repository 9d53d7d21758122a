/**
 * One upload through an `abfss://` store with the credential under test, to a Blob endpoint
 * nothing listens on: the token comes first, so what the credential does is all that happens.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AzureBlobArtifactStore } from '../../src/stores/azure-blob-store.js';
import type { AzureTokenCredential } from '../../src/stores/azure-config.js';
import { writeSourceFile } from './small-files-contract.js';

/**
 * Uploads a one-byte `a.txt` with `credential` under the store's retry policy (`maxRetries`, no
 * backoff) and returns the error it fails with (or the result, should it not fail).
 *
 * @example
 * ```ts
 * const error = await uploadWithCredential(credential, 2);
 * ```
 */
export async function uploadWithCredential(credential: AzureTokenCredential, maxRetries = 2): Promise<unknown> {
  const dir = await mkdtemp(join(tmpdir(), 'azure-token-'));
  const local = await writeSourceFile(dir, 'a.txt', 'x');
  const store = new AzureBlobArtifactStore('abfss://fs@acct.dfs.core.windows.net/runs/1/artifacts', {
    credential,
    blobEndpoint: 'https://127.0.0.1:1/acct',
    env: {},
    retry: { maxRetries, backoffFactor: 0, backoffJitter: 0 },
  });
  return store.uploadFile(local, 'a.txt').catch((e: unknown) => e);
}
