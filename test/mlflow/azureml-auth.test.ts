/**
 * `keepingTokenOutage` through a real `@azure/identity` managed identity, its endpoint the test's
 * own. In a file of its own: MSAL keeps the first managed identity source it builds, endpoint
 * included, for the whole process (`ManagedIdentityClient.identitySource` is static), so a
 * second endpoint in the same file would never be asked.
 */
import { ManagedIdentityCredential } from '@azure/identity';
import { describe, expect, it } from 'vitest';
import { ConfigError, NetworkError } from '../../src/core/errors.js';
import { azureMlTokenSource, type AzureTokenCredential } from '../../src/mlflow/azureml-auth.js';
import { startTestServer } from '../support/http-test-server.js';
import { restoreIdentityEnvAfterEach } from '../support/identity-endpoint-env.js';

const servers = restoreIdentityEnvAfterEach();


describe('keepingTokenOutage', () => {
  it('a failure after a kept outage is reported as itself: an identity endpoint that answered 503 and then refuses (400, no OAuth code) is a ConfigError', async () => {
    // The outage first, then a new answer of another kind: App Service's identity endpoint once
    // the identity is gone, a message and no OAuth error code.
    const endpoint = await startTestServer((_req, res, index) => {
      res.writeHead(index === 0 ? 503 : 400, { 'content-type': 'application/json' });
      res.end(JSON.stringify(index === 0 ? { error: 'temporarily_unavailable', error_description: 'The service is busy.' } : { statusCode: 400, message: 'Unable to load the proper Managed Identity.' }));
    });
    servers.push(endpoint);
    process.env.IDENTITY_ENDPOINT = `${endpoint.url}/msi/token`;
    process.env.IDENTITY_HEADER = 'identity-header';
    const source = azureMlTokenSource({ credential: new ManagedIdentityCredential({ retryOptions: { maxRetries: 0 } }) as AzureTokenCredential });

    const outage = await source().catch((e: unknown) => e);
    const refusal = await source().catch((e: unknown) => e);

    expect(endpoint.requests).toHaveLength(2);
    expect(outage).toBeInstanceOf(NetworkError);
    expect((outage as NetworkError).message).toMatch(/sign-in endpoint failed .*The service is busy/);
    expect(refusal).toBeInstanceOf(ConfigError);
    expect((refusal as ConfigError).message).toMatch(/^No Entra ID token for the Azure ML workspace: .*Unable to load the proper Managed Identity/);
  });
});
