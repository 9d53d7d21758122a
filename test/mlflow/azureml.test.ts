/**
 * Azure ML pieces without a workspace: the Entra ID token source (cache, refresh before expiry,
 * one fetch for concurrent requests, typed errors, missing peer), the workspace URI parser, and
 * the run-history client's retry and error behaviour against a scripted server. The end-to-end
 * checks with the official plugin are in test/stores/azureml-artifacts-store.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, HttpStatusError, MissingDependencyError, NetworkError } from '../../src/core/errors.js';
import { HttpClient } from '../../src/core/http.js';
import { redact } from '../../src/core/logger.js';
import { resolveRetryOptions } from '../../src/core/retry.js';
import { AZUREML_TOKEN_SCOPE, azureMlJobTokenSource, azureMlTokenSource } from '../../src/mlflow/azureml-auth.js';
import { AzureMlRunHistoryClient } from '../../src/mlflow/azureml-run-history.js';
import { parseAzureMlTrackingUri, type AzureMlWorkspace } from '../../src/mlflow/azureml-workspace.js';
import { parseAzureMlArtifactUri } from '../../src/stores/azureml-artifacts-store.js';
import { UnsupportedArtifactStoreError } from '../../src/core/errors.js';
import { startTestServer } from '../support/http-test-server.js';

describe('Entra ID token source (DefaultAzureCredential)', () => {
  it('asks for the management scope, caches the token, and fetches a new one 5 minutes before it expires', async () => {
    let now = 1_000_000;
    const scopes: unknown[] = [];
    let issued = 0;
    const credential = {
      getToken: async (scope: string | string[]) => {
        scopes.push(scope);
        issued++;
        return { token: `token-number-${issued}`, expiresOnTimestamp: now + 60 * 60_000 };
      },
    };
    const source = azureMlTokenSource({ credential, now: () => now });
    expect(await source()).toBe('token-number-1');
    now += 54 * 60_000; // 6 minutes left: still fresh
    expect(await source()).toBe('token-number-1');
    now += 2 * 60_000; // 4 minutes left: inside the margin
    expect(await source()).toBe('token-number-2');
    expect(scopes).toEqual([AZUREML_TOKEN_SCOPE, AZUREML_TOKEN_SCOPE]);
    // Every token is a registered secret.
    expect(redact('Bearer token-number-2 in a message')).not.toContain('token-number-2');
  });

  it('honours the credential\'s own refresh hint, and concurrent requests share one fetch', async () => {
    let now = 0;
    let calls = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const credential = {
      getToken: async () => {
        calls++;
        await gate;
        return { token: `shared-${calls}-abcdef`, expiresOnTimestamp: now + 3_600_000, refreshAfterTimestamp: now + 60_000 };
      },
    };
    const source = azureMlTokenSource({ credential, now: () => now });
    const tokens = Promise.all([source(), source(), source()]);
    release();
    expect(await tokens).toEqual(['shared-1-abcdef', 'shared-1-abcdef', 'shared-1-abcdef']);
    now = 61_000;
    expect(await source()).toBe('shared-2-abcdef');
    expect(calls).toBe(2);
  });

  it('no sign-in is a ConfigError saying what to set; an unreachable sign-in endpoint a (retried) NetworkError', async () => {
    const unavailable = azureMlTokenSource({
      credential: { getToken: () => Promise.reject(Object.assign(new Error('DefaultAzureCredential failed to retrieve a token.\nEnvironmentCredential is unavailable.'), { name: 'CredentialUnavailableError' })) },
    });
    const config = await unavailable().catch((e: unknown) => e);
    expect(config).toBeInstanceOf(ConfigError);
    expect((config as ConfigError).hint).toMatch(/az login.*MLFLOW_TRACKING_TOKEN/);
    const offline = azureMlTokenSource({ credential: { getToken: () => Promise.reject(Object.assign(new Error('getaddrinfo ENOTFOUND login.microsoftonline.com'), { name: 'RestError' })) } });
    expect(await offline().catch((e: unknown) => e)).toBeInstanceOf(NetworkError);
  });

  it('a sign-in endpoint answering 503 or 429 (AuthenticationError with that status) is retried, not a ConfigError telling to sign in', async () => {
    // @azure/identity's own error for a token endpoint's error answer (IMDS, Entra ID): a 503 is
    // as transient as an unreachable endpoint. It was a ConfigError ("sign in for
    // DefaultAzureCredential"), which nothing retries, ending an upload that would have worked.
    const { AuthenticationError } = await import('@azure/identity');
    let calls = 0;
    const source = azureMlTokenSource({
      credential: {
        getToken: async () => {
          calls++;
          if (calls === 1) throw new AuthenticationError(503, { error: 'temporarily_unavailable', error_description: 'The service is temporarily unavailable.' });
          if (calls === 2) throw new AuthenticationError(429, { error: 'throttled', error_description: 'Too many requests.' });
          return { token: 'fresh-entra-token-123', expiresOnTimestamp: Date.now() + 3_600_000 };
        },
      },
    });
    const server = await startTestServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
    try {
      const http = new HttpClient({ retry: resolveRetryOptions({ maxRetries: 3, backoffFactor: 0, backoffJitter: 0 }, {}), auth: { tokenSource: source } });
      await http.request({ method: 'GET', url: `${server.url}/ok` });
      expect(calls).toBe(3);
      expect(server.requests.map((r) => r.headers.authorization)).toEqual(['Bearer fresh-entra-token-123']);
    } finally {
      await server.close();
    }
    // A refusal stays a ConfigError: a wrong client secret (400 invalid_client) is not retried.
    const refused = azureMlTokenSource({ credential: { getToken: () => Promise.reject(new AuthenticationError(400, { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.' })) } });
    expect(await refused().catch((e: unknown) => e)).toBeInstanceOf(ConfigError);
    // EnvironmentCredential (DefaultAzureCredential's first) reports every failure as a 400, the
    // OAuth code of Entra ID's 503 inside: transient all the same, and not said to be a 400.
    const wrapped = azureMlTokenSource({
      credential: {
        getToken: () =>
          Promise.reject(new AuthenticationError(400, { error: 'EnvironmentCredential authentication failed.', error_description: 'temporarily_unavailable: Error(s): 90033 - Description: AADSTS90033: A transient error has occurred.' })),
      },
    });
    const busy = await wrapped().catch((e: unknown) => e);
    expect(busy).toBeInstanceOf(NetworkError);
    expect((busy as NetworkError).message).toMatch(/the sign-in endpoint failed \(EnvironmentCredential authentication failed/);
  });

  it('names the package to install when @azure/identity is missing', async () => {
    const source = azureMlTokenSource({ loadIdentity: () => Promise.reject(Object.assign(new Error("Cannot find package '@azure/identity'"), { code: 'ERR_MODULE_NOT_FOUND' })) });
    const error = await source().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MissingDependencyError);
    expect((error as Error).message).toMatch(/azureml:\/\/ tracking URI without MLFLOW_TRACKING_TOKEN.*npm install @azure\/identity/);
  });
});

describe('Azure ML URIs', () => {
  const scope = '/subscriptions/s-1/resourceGroups/rg-1/providers/Microsoft.MachineLearningServices/workspaces/ws-1';

  it('parses workspace tracking URIs as the plugin does (always https)', () => {
    expect(parseAzureMlTrackingUri(`azureml://eastus.api.azureml.ms/mlflow/v2.0${scope}?auth=x`)).toMatchObject({
      origin: 'https://eastus.api.azureml.ms',
      workspace: 'ws-1',
      historyBaseUrl: `https://eastus.api.azureml.ms/history/v1.0${scope}`,
    });
    // As jobs set it (mlflow/mlflow#7806): v1.0 and a trailing "?".
    expect(parseAzureMlTrackingUri(`azureml://eastus2.api.azureml.ms/mlflow/v1.0${scope}?`).mlflowBaseUrl).toBe(`https://eastus2.api.azureml.ms/mlflow/v1.0${scope}`);
    expect(() => parseAzureMlTrackingUri('azureml://eastus.api.azureml.ms/mlflow/v2.0/registries/r')).toThrow(ConfigError);
  });

  it('parses run artifact URIs, short and long, with a path under the artifacts', () => {
    expect(parseAzureMlArtifactUri('azureml://experiments/train/runs/run-1/artifacts')).toEqual({ experiment: 'train', runId: 'run-1', rootPath: '' });
    expect(parseAzureMlArtifactUri('azureml://experiments/my%20exp/runs/run-1/artifacts/model/sub')).toEqual({ experiment: 'my exp', runId: 'run-1', rootPath: 'model/sub' });
    expect(parseAzureMlArtifactUri(`azureml://eastus.api.azureml.ms/mlflow/v2.0${scope}/experiments/train/runs/run-2/artifacts`)).toEqual({ experiment: 'train', runId: 'run-2', rootPath: '' });
    expect(parseAzureMlArtifactUri('azureml://experiments/train/runs/run-3')).toEqual({ experiment: 'train', runId: 'run-3', rootPath: '' });
    // As reported for runs made outside a job (mlflow/mlflow#9495): the long form, an experiment id, a trailing slash.
    expect(parseAzureMlArtifactUri(`azureml://eastus.api.azureml.ms/mlflow/v2.0${scope}/experiments/0c1d2e3f-aaaa/runs/run-4/artifacts/`)).toEqual({ experiment: '0c1d2e3f-aaaa', runId: 'run-4', rootPath: '' });
  });

  it('refuses registry, datastore and other Azure ML URIs with a hint', () => {
    for (const uri of [
      'azureml://eastus.api.azureml.ms/mlflow/v2.0/registries/reg/models/m/versions/1/storage/s/paths/p/x',
      'azureml://datastores/workspaceblobstore/paths/data/x',
      'azureml://ExperimentRun/dcid.run-1/outputs',
    ]) {
      const error = (() => {
        try {
          parseAzureMlArtifactUri(uri);
        } catch (e) {
          return e;
        }
      })();
      expect(error, uri).toBeInstanceOf(UnsupportedArtifactStoreError);
      expect((error as UnsupportedArtifactStoreError).hint, uri).toMatch(/registry|runs/);
    }
  });
});

describe('run-history client', () => {
  const workspaceAt = (origin: string): AzureMlWorkspace => ({
    origin,
    subscriptionId: 's',
    resourceGroup: 'rg',
    workspace: 'ws',
    mlflowBaseUrl: `${origin}/mlflow/v2.0/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws`,
    historyBaseUrl: `${origin}/history/v1.0/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws`,
  });
  const http = () => new HttpClient({ retry: resolveRetryOptions({ maxRetries: 3, backoffFactor: 0.01, backoffJitter: 0 }, {}), auth: { token: 'job-token-123456' } });

  it('retries 503 and 429 on batch/metadata, quotes the experiment as msrest does, and reads per-path errors', async () => {
    const server = await startTestServer((req, res, i) => {
      if (i < 2) {
        res.writeHead(i === 0 ? 503 : 429, { 'content-type': 'application/json', 'retry-after': '0' });
        res.end(JSON.stringify({ error: { code: 'ServiceBusy', message: 'later' } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          artifacts: { 'a.txt': { path: 'a.txt' } },
          artifactContentInformation: { 'a.txt': { contentUri: 'https://acct.blob.core.windows.net/c/a.txt?sv=1&sig=secret-signature-xyz' } },
          errors: { 'b/../c': { error: { code: 'UserError', message: 'Invalid path' } } },
        }),
      );
    });
    try {
      const client = new AzureMlRunHistoryClient(http(), workspaceAt(server.url), { experiment: "exp (1)'s", runId: 'run-1' });
      const results = await client.createEmptyArtifacts(['a.txt', 'b/../c']);
      expect(results.get('a.txt')).toEqual({ contentUri: 'https://acct.blob.core.windows.net/c/a.txt?sv=1&sig=secret-signature-xyz' });
      expect(results.get('b/../c')).toEqual({ error: { code: 'UserError', message: 'Invalid path' } });
      expect(server.requests).toHaveLength(3);
      expect(server.requests[2]!.url).toBe('/history/v1.0/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/experiments/exp%20%281%29%27s/runs/run-1/artifacts/batch/metadata');
      expect(JSON.parse(server.requests[2]!.body.toString())).toEqual({ paths: [{ path: 'a.txt' }, { path: 'b/../c' }] });
      expect(server.requests[2]!.headers.authorization).toBe('Bearer job-token-123456');
      // The SAS signature is a registered secret from now on.
      expect(redact('secret-signature-xyz')).not.toContain('secret-signature-xyz');
    } finally {
      await server.close();
    }
  });

  it('fails at the first 403, with the service\'s code and a hint; follows nextLink and continuationToken when listing', async () => {
    const server = await startTestServer((req, res) => {
      res.writeHead(req.method === 'POST' ? 403 : 200, { 'content-type': 'application/json' });
      const token = new URL(req.url, 'http://x').searchParams.get('continuationToken');
      if (req.method === 'POST') res.end(JSON.stringify({ error: { code: 'AuthorizationFailed', message: 'no write access' } }));
      else if (token === null) res.end(JSON.stringify({ value: [{ path: 'a' }], nextLink: `${server.url}${req.url.split('?')[0]}?continuationToken=p2` }));
      else if (token === 'p2') res.end(JSON.stringify({ value: [{ path: 'b' }], continuationToken: 'p3', nextLink: null }));
      else res.end(JSON.stringify({ value: [{ path: 'c/d' }], continuationToken: null }));
    });
    try {
      const client = new AzureMlRunHistoryClient(http(), workspaceAt(server.url), { experiment: 'e', runId: 'r' });
      const error = await client.createEmptyArtifacts(['a']).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HttpStatusError);
      expect(error).toMatchObject({ status: 403, code: 'AuthorizationFailed' });
      expect((error as HttpStatusError).hint).toMatch(/AzureML Data Scientist/);
      expect(server.requests).toHaveLength(1);
      expect(await client.listArtifactPaths()).toEqual(['a', 'b', 'c/d']);
    } finally {
      await server.close();
    }
  });
});

describe('job token renewal (azureMlJobTokenSource)', () => {
  const jwt = (expSeconds: number) => `h.${Buffer.from(JSON.stringify({ exp: expSeconds })).toString('base64url')}.s`;
  const workspaceAt = (origin: string): AzureMlWorkspace => ({
    ...parseAzureMlTrackingUri('azureml://h/mlflow/v2.0/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws'),
    historyBaseUrl: `${origin}/history/v1.0/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws`,
  });

  it('keeps the job token while it has more than 95 s left, then renews it by experiment name when there is no id', async () => {
    let now = 1_000_000_000_000;
    const fresh = jwt(now / 1000 + 86_400);
    const server = await startTestServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token: fresh, expiryTimeUtc: '2030-01-01T00:00:00Z' }));
    });
    try {
      const old = jwt(now / 1000 + 600);
      const http = new HttpClient({ retry: resolveRetryOptions({ maxRetries: 0 }, {}) });
      const source = azureMlJobTokenSource({ token: old, workspace: workspaceAt(server.url), job: { runId: 'r1', experimentName: 'my exp' }, http: () => http, now: () => now });
      expect(await source()).toBe(old);
      now += 510_000; // 90 s left
      expect(await source()).toBe(fresh);
      expect(await source()).toBe(fresh);
      expect(server.requests.map((r) => [r.url.replace(/^.*\/workspaces\/ws/, ''), r.headers.authorization])).toEqual([['/experiments/my%20exp/runs/r1/token', `Bearer ${old}`]]);
    } finally {
      await server.close();
    }
  });

  it('a failed renewal keeps the old token while it is valid, and is the error once it has expired', async () => {
    let now = 1_000_000_000_000;
    const server = await startTestServer((_req, res) => {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'Forbidden', message: 'no' } }));
    });
    try {
      const old = jwt(now / 1000 + 60);
      const http = new HttpClient({ retry: resolveRetryOptions({ maxRetries: 0 }, {}) });
      const source = azureMlJobTokenSource({ token: old, workspace: workspaceAt(server.url), job: { runId: 'r1', experimentId: '7' }, http: () => http, now: () => now });
      expect(await source()).toBe(old);
      now += 61_000;
      expect(await source().catch((e: unknown) => e)).toBeInstanceOf(HttpStatusError);
      expect(server.requests[0]!.url).toMatch(/\/experimentids\/7\/runs\/r1\/token$/);
    } finally {
      await server.close();
    }
  });
});
