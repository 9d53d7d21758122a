/**
 * Entra ID token failures of the wasbs:// and abfss:// stores, through the real `@azure/identity`
 * credentials (a managed identity, a client secret) against a token endpoint of the test's own:
 * Entra ID and managed identity endpoints cannot run here. The storage request never goes out
 * (the token comes first), so no storage server is needed: the Blob endpoint is an https:// URL
 * nothing listens on (the SDK sends bearer tokens over https only).
 *
 * Only one managed identity endpoint per file is ever asked: MSAL keeps the first managed identity
 * source it builds, endpoint included, for the whole process (`ManagedIdentityClient.identitySource`
 * is static). A managed identity test with an endpoint of its own goes in a file of its own
 * (azure-blob-store-managed-identity.test.ts).
 */
import { readFileSync } from 'node:fs';
import { ClientSecretCredential, ManagedIdentityCredential } from '@azure/identity';
import { describe, expect, it } from 'vitest';
import { ConfigError, NetworkError } from '../../src/core/errors.js';
import { HttpClient } from '../../src/core/http.js';
import { isRetryableError, resolveRetryOptions } from '../../src/core/retry.js';
import { azureMlTokenSource } from '../../src/mlflow/azureml-auth.js';
import type { AzureTokenCredential } from '../../src/stores/azure-config.js';
import { startTestServer, type Handler } from '../support/http-test-server.js';
import { restoreIdentityEnvAfterEach } from '../support/identity-endpoint-env.js';
import { uploadWithCredential } from './azure-token-upload.js';

const CLIENT_SECRET = 'client-secret-Q9x7-never-shown';
const servers = restoreIdentityEnvAfterEach();


/** An OAuth error answer, as Entra ID and the managed identity endpoints send them. */
function oauthError(status: number, error: string): Handler {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error, error_description: `AADSTS: ${error} (${status})` }));
  };
}

/** Entra ID's own 503 for an outage: MSAL's replay of it keeps only the description, without the code. */
const entraIdTransientError: Handler = (_req, res) => {
  res.writeHead(503, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: 'temporarily_unavailable', error_description: 'AADSTS90033: A transient error has occurred. Please try again.', error_codes: [90033] }));
};

/** A managed identity as App Service sets one up (IDENTITY_ENDPOINT, IDENTITY_HEADER), its endpoint at `url`. */
function managedIdentityAt(url: string): AzureTokenCredential {
  process.env.IDENTITY_ENDPOINT = url;
  process.env.IDENTITY_HEADER = 'identity-header';
  // Its own retries off: the store's policy is the one under test.
  return new ManagedIdentityCredential({ retryOptions: { maxRetries: 0 } }) as AzureTokenCredential;
}

/** A managed identity whose endpoint answers with `handler`. */
async function managedIdentity(handler: Handler) {
  const endpoint = await startTestServer(handler);
  servers.push(endpoint);
  return { endpoint, credential: managedIdentityAt(`${endpoint.url}/msi/token`) };
}

/** A service principal with a client secret, whose Entra ID (over TLS, as MSAL requires) answers token requests with `handler`. */
async function servicePrincipal(handler: Handler) {
  let base = '';
  const tokenRequests: string[] = [];
  const authority = await startTestServer(
    (req, res, index) => {
      if (req.url.includes('openid-configuration')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        const tenant = `${base}/tenant`;
        // What MSAL checks a discovery document for.
        res.end(JSON.stringify({ token_endpoint: `${tenant}/oauth2/v2.0/token`, issuer: `${tenant}/v2.0`, authorization_endpoint: `${tenant}/oauth2/v2.0/authorize`, end_session_endpoint: `${tenant}/oauth2/v2.0/logout`, jwks_uri: `${tenant}/discovery/v2.0/keys` }));
        return;
      }
      tokenRequests.push(req.body.toString());
      return handler(req, res, index);
    },
    { tls: true },
  );
  servers.push(authority);
  base = authority.url;
  const credential = new ClientSecretCredential('tenant', 'client', CLIENT_SECRET, {
    authorityHost: authority.url,
    disableInstanceDiscovery: true,
    retryOptions: { maxRetries: 0 },
    tlsOptions: { ca: readFileSync(authority.certPath!) },
  } as ConstructorParameters<typeof ClientSecretCredential>[3]) as AzureTokenCredential;
  return { tokenRequests, credential };
}


describe('Entra ID token failures of the Azure store', () => {
  it('a managed identity endpoint answering 503 after the retries is a retried NetworkError, not "no usable credential"', async () => {
    const { endpoint, credential } = await managedIdentity(oauthError(503, 'temporarily_unavailable'));
    const error = await uploadWithCredential(credential, 2);
    expect(error).toBeInstanceOf(NetworkError);
    expect(isRetryableError(error)).toBe(true);
    const network = error as NetworkError;
    expect(network.message).toMatch(/^Azure Put Blob of abfss:\/\/fs@acct\.dfs\.core\.windows\.net\/runs\/1\/artifacts\/a\.txt got no Entra ID token: /);
    expect(network.hint).toMatch(/token endpoint .* kept failing or could not be reached; every request was retried 2 time\(s\)\. Try again later/);
    // The first attempt and both retries each asked for a token.
    expect(endpoint.requests.map((r) => r.url.split('?')[0])).toEqual(['/msi/token', '/msi/token', '/msi/token']);
  });

  it('Entra ID answering 503 temporarily_unavailable (a client secret) is a NetworkError after the retries; 400 invalid_client stays a ConfigError, not retried, without the secret', async () => {
    const busy = await servicePrincipal(oauthError(503, 'temporarily_unavailable'));
    const transient = await uploadWithCredential(busy.credential, 2);
    expect(transient).toBeInstanceOf(NetworkError);
    expect((transient as NetworkError).message).toMatch(/got no Entra ID token: .*temporarily_unavailable/);
    expect((transient as NetworkError).hint).toMatch(/retried 2 time\(s\)\. Try again later/);
    // MSAL answered the retries from its throttling cache (60 s after a 5xx), without asking.
    expect(busy.tokenRequests).toHaveLength(1);

    const refused = await servicePrincipal(oauthError(401, 'invalid_client'));
    const config = await uploadWithCredential(refused.credential, 3);
    expect(config).toBeInstanceOf(ConfigError);
    expect((config as ConfigError).message).toMatch(/No usable Azure credential for abfss:\/\/.*invalid_client/);
    expect((config as ConfigError).hint).toMatch(/sign in for DefaultAzureCredential/);
    expect(refused.tokenRequests).toHaveLength(1);
    // MSAL sent the secret, and nothing shows it.
    expect(refused.tokenRequests[0]).toContain(`client_secret=${CLIENT_SECRET}`);
    for (const e of [transient as Error, config as Error]) {
      expect(`${e.message} ${JSON.stringify((e as ConfigError).toJSON())}`).not.toContain(CLIENT_SECRET);
    }
  });
});

describe('Entra ID token failures of the Azure ML token source', () => {
  it('Entra ID answering 503 (a client secret) stays a retried NetworkError through MSAL\'s throttled replays, not "No Entra ID token"', async () => {
    // The same outage as the store's above, through azureml://'s token source: after the 503,
    // MSAL answers the retries from its throttling cache with an error that has lost the status.
    const busy = await servicePrincipal(entraIdTransientError);
    const workspace = await startTestServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
    servers.push(workspace);
    const http = new HttpClient({ retry: resolveRetryOptions({ maxRetries: 2, backoffFactor: 0, backoffJitter: 0 }, {}), auth: { tokenSource: azureMlTokenSource({ credential: busy.credential }) } });

    const error = await http.request({ method: 'GET', url: `${workspace.url}/history` }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(NetworkError);
    expect((error as NetworkError).message).toMatch(/Entra ID token .*temporarily_unavailable/);
    expect(busy.tokenRequests).toHaveLength(1);
    expect(workspace.requests).toHaveLength(0);
    expect(`${(error as Error).message} ${JSON.stringify((error as NetworkError).toJSON())}`).not.toContain(CLIENT_SECRET);
  });

  it('after an outage, MSAL\'s replay still reads as the outage and a new failure as itself', async () => {
    const busy = await servicePrincipal(entraIdTransientError);
    let failure: Error | undefined;
    // The client secret's replays, then (the secret's credential replaced, as DefaultAzureCredential
    // moves on) a failure of another kind: no OAuth error code, no description of the outage.
    const credential: AzureTokenCredential = { getToken: (scopes, options) => (failure ? Promise.reject(failure) : busy.credential.getToken(scopes, options)) };
    const source = azureMlTokenSource({ credential });

    const outage = await source().catch((e: unknown) => e);
    const replay = await source().catch((e: unknown) => e);
    failure = Object.assign(new Error('ManagedIdentityCredential: Authentication failed. Message : Unable to load the proper Managed Identity.'), { name: 'CredentialUnavailableError' });
    const later = await source().catch((e: unknown) => e);

    expect(busy.tokenRequests).toHaveLength(1);
    expect(outage).toBeInstanceOf(NetworkError);
    expect((outage as NetworkError).message).toMatch(/answered 503|temporarily_unavailable/);
    expect(replay).toBeInstanceOf(NetworkError);
    expect((replay as NetworkError).message).toBe((outage as NetworkError).message);
    expect(later).toBeInstanceOf(ConfigError);
    expect((later as ConfigError).message).toMatch(/No Entra ID token .*Unable to load the proper Managed Identity/);
  });
});
