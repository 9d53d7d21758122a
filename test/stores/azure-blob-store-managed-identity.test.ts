/**
 * A managed identity whose endpoint gives no answer, through the real `@azure/identity`
 * `ManagedIdentityCredential` and the abfss:// store, its endpoint the test's own. In a file of
 * its own: MSAL keeps the first managed identity source it builds, endpoint included, for the
 * whole process (`ManagedIdentityClient.identitySource` is static). Beside the other credential
 * tests (azure-blob-store-credentials.test.ts), this one asked the endpoint of the file's first
 * managed identity test, closed by then, and never its own: it passed without testing what it
 * says. The storage request never goes out (the token comes first), so no storage server is
 * needed.
 */
import { ManagedIdentityCredential } from '@azure/identity';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { isRetryableError } from '../../src/core/retry.js';
import type { AzureTokenCredential } from '../../src/stores/azure-config.js';
import { startTestServer } from '../support/http-test-server.js';
import { restoreIdentityEnvAfterEach } from '../support/identity-endpoint-env.js';
import { uploadWithCredential } from './azure-token-upload.js';

const servers = restoreIdentityEnvAfterEach();


describe('Entra ID token failures of the Azure store: a managed identity endpoint that does not answer', () => {
  it('a managed identity that gets no answer stays a credential error: a machine without one fails the same way', async () => {
    // The endpoint takes the request and closes the connection without a word: what
    // DefaultAzureCredential's managed identity meets on a laptop (IMDS out of reach) looks the
    // same to the client, and must not be retried for minutes. Recorded, so that the test shows
    // the request went to this endpoint and nowhere else.
    const endpoint = await startTestServer((_req, res) => {
      res.socket?.destroy();
    });
    servers.push(endpoint);
    // App Service's managed identity (IDENTITY_ENDPOINT, IDENTITY_HEADER); its own retries off:
    // the store's policy is the one under test.
    process.env.IDENTITY_ENDPOINT = `${endpoint.url}/msi/token`;
    process.env.IDENTITY_HEADER = 'identity-header';
    const credential = new ManagedIdentityCredential({ retryOptions: { maxRetries: 0 } }) as AzureTokenCredential;
    const error = await uploadWithCredential(credential, 2);

    // Asked once, here: a credential error is not retried (the store's 2 retries would ask 3 times).
    expect(endpoint.requests.map((r) => r.url.split('?')[0])).toEqual(['/msi/token']);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(/^No usable Azure credential for abfss:\/\/fs@acct\.dfs\.core\.windows\.net\/runs\/1\/artifacts\/a\.txt: ManagedIdentityCredential: /);
    expect(isRetryableError((error as ConfigError).cause)).toBe(false);
  });
});
