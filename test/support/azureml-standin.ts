/**
 * A local stand-in for an Azure ML workspace, served over HTTPS with a CA made at start
 * (openssl), so the official `azureml-mlflow` plugin and our library talk to it exactly as to a
 * workspace. It implements only the routes those clients were seen to use, and answers 500 (and
 * records the route in `unhandled`, which every test asserts is empty) for anything else, so it
 * cannot drift into a private dialect:
 *
 * - `GET /metadata/endpoints`: the ARM cloud metadata the plugin loads (ARM_CLOUD_METADATA_URL;
 *   without it the plugin asks management.azure.com);
 * - `/mlflow/v2.0/subscriptions/.../workspaces/<ws>/api/2.0/mlflow/...`: forwarded to a real
 *   `mlflow server`, with every run's `artifact_uri` answered as Azure ML does:
 *   `azureml://experiments/<experiment name>/runs/<run id>/artifacts`;
 * - the job token's renewal, `GET .../experimentids/<id>/runs/<run id>/token` (and
 *   `experiments/<name>/...`), answering a new token (`TokenResult`);
 * - the run-history artifact routes under
 *   `/history/v1.0/subscriptions/.../workspaces/<ws>/experiments/<name>/runs/<id>/` (and the
 *   `experimentids/<id>` variants): `POST artifacts/batch/metadata`, `GET artifacts` (paged:
 *   `pageSize` per page, with `nextLink` and `continuationToken`), `GET artifacts/contentinfo`,
 *   with the plugin's msrest model keys;
 * - a Blob front for Azurite: SAS URIs are handed out as
 *   `https://<stand-in>/<account>.blob.core.windows.net/<container>/<blob>?<sas>` and forwarded to
 *   Azurite's `/<account>/<container>/<blob>`. The plugin downloads only from URLs matching
 *   `^https://.*\.blob\.core\.windows\.net/.*\/.*\?` (`is_source_uri_matches_storage_blob`), which
 *   this path does, with no change to the plugin; Azurite checks the SAS itself.
 *
 * Workspace routes want `Authorization: Bearer <token>`; Blob routes must carry none (recorded).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHmac, randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';

export const STANDIN_SUBSCRIPTION = '00000000-0000-0000-0000-000000000001';
export const STANDIN_RESOURCE_GROUP = 'rg-test';
export const STANDIN_WORKSPACE = 'ws-test';
/** Container of the workspace's storage account holding run artifacts. */
export const STANDIN_CONTAINER = 'azureml';

export interface AzureMlStandinOptions {
  /** The real `mlflow server` the MLflow REST routes go to. */
  mlflowUrl: string;
  /** Azurite: `http://127.0.0.1:<port>/<account>`, the account and its key. */
  azurite: { blobEndpoint: string; account: string; accountKey: string };
  /** Entries per page of the artifact listing. @default 1000 */
  pageSize?: number;
}

export interface StandinRequest {
  method: string;
  path: string;
  /** The route it matched: `mlflow`, `batch-metadata`, `list`, `contentinfo`, `blob`, `metadata`. */
  route: string;
  authorization?: string;
  query: string;
  /** For `batch-metadata`: how many paths it registered. */
  paths?: number;
}

export interface AzureMlStandin {
  /** `https://127.0.0.1:<port>`. */
  origin: string;
  /** The workspace's tracking URI, `azureml://127.0.0.1:<port>/mlflow/v2.0/subscriptions/...`. */
  trackingUri: string;
  /** PEM CA bundle that signed the stand-in's certificate. */
  caPath: string;
  /** A JWT (HS256, `exp` a day ahead) the stand-in accepts as the job token. */
  token: string;
  /** A job token the stand-in accepts that expires in `ttlSeconds` (to make clients renew it). */
  issueToken(ttlSeconds: number): string;
  /** Tokens handed out by the token route (`GET .../runs/<id>/token`), in order. */
  renewedTokens: string[];
  requests: StandinRequest[];
  /** Routes it does not implement that were called (each answered 500). Must stay empty. */
  unhandled: string[];
  /** Failures of its own (bugs of the stand-in), also answered 500. Must stay empty. */
  failures: string[];
  /** Registered artifact paths of a run, in registration order. */
  artifactPaths(runId: string): string[];
  /** The environment the plugin needs to talk to the stand-in as a job would. */
  pluginEnv(run: { runId: string; experimentId: string; experimentName: string }, token?: string): Record<string, string>;
  close(): Promise<void>;
}

const SCOPE = `/subscriptions/${STANDIN_SUBSCRIPTION}/resourceGroups/${STANDIN_RESOURCE_GROUP}/providers/Microsoft.MachineLearningServices/workspaces/${STANDIN_WORKSPACE}`;

/** An HS256 JWT with `exp` `ttlSeconds` ahead (a day by default): the plugin decodes it (unverified) to read `exp`. */
export function makeJobToken(ttlSeconds = 86_400, secret = 'stand-in'): string {
  const b64 = (value: object | Buffer) => (Buffer.isBuffer(value) ? value : Buffer.from(JSON.stringify(value))).toString('base64url');
  const head = b64({ alg: 'HS256', typ: 'JWT' });
  const body = b64({ exp: Math.floor(Date.now() / 1000) + ttlSeconds, sub: 'job', aud: 'https://management.azure.com', jti: randomUUID() });
  return `${head}.${body}.${b64(createHmac('sha256', secret).update(`${head}.${body}`).digest())}`;
}

export async function startAzureMlStandin(options: AzureMlStandinOptions): Promise<AzureMlStandin> {
  const dir = mkdtempSync(join(tmpdir(), 'au-azureml-'));
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=azureml-standin-ca');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext');

  const { BlobServiceClient, StorageSharedKeyCredential, generateBlobSASQueryParameters, BlobSASPermissions } = await import('@azure/storage-blob');
  const sharedKey = new StorageSharedKeyCredential(options.azurite.account, options.azurite.accountKey);
  await new BlobServiceClient(options.azurite.blobEndpoint, sharedKey, { retryOptions: { maxTries: 1 } }).getContainerClient(STANDIN_CONTAINER).createIfNotExists();
  const azurite = new URL(options.azurite.blobEndpoint);
  const blobHostSegment = `${options.azurite.account}.blob.core.windows.net`;

  const token = makeJobToken();
  const validTokens = new Set([token]);
  const renewedTokens: string[] = [];
  const requests: StandinRequest[] = [];
  const unhandled: string[] = [];
  const failures: string[] = [];
  const pageSize = options.pageSize ?? 1000;
  /** run id → registered paths (insertion order) → artifact id. */
  const runs = new Map<string, Map<string, string>>();
  const experimentNames = new Map<string, string>();
  let origin = '';

  const blobName = (runId: string, path: string) => `ExperimentRun/dcid.${runId}/${path}`;
  const sasUrl = (runId: string, path: string, permissions: string) => {
    const name = blobName(runId, path);
    const sas = generateBlobSASQueryParameters(
      { containerName: STANDIN_CONTAINER, blobName: name, permissions: BlobSASPermissions.parse(permissions), expiresOn: new Date(Date.now() + 3_600_000), version: '2021-12-02' },
      sharedKey,
    ).toString();
    return `${origin}/${blobHostSegment}/${STANDIN_CONTAINER}/${name.split('/').map(encodeURIComponent).join('/')}?${sas}`;
  };
  const contentInfo = (runId: string, path: string, permissions: string) => ({
    contentUri: sasUrl(runId, path, permissions),
    origin: 'ExperimentRun',
    container: `dcid.${runId}`,
    path,
  });

  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const readBody = async (req: IncomingMessage) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  };
  const authorized = (req: IncomingMessage, res: ServerResponse) => {
    const presented = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (presented && validTokens.has(presented)) return true;
    json(res, 401, { error: { code: 'Unauthorized', message: 'The token is missing or not valid.' } });
    return false;
  };

  const experimentName = async (experimentId: string): Promise<string> => {
    const known = experimentNames.get(experimentId);
    if (known) return known;
    const answer = (await (await fetch(`${options.mlflowUrl}/api/2.0/mlflow/experiments/get?experiment_id=${encodeURIComponent(experimentId)}`)).json()) as { experiment?: { name?: string } };
    const name = answer.experiment?.name ?? experimentId;
    experimentNames.set(experimentId, name);
    return name;
  };
  /** Every run info in an MLflow answer gets the artifact URI an Azure ML run has. */
  const rewriteArtifactUris = async (value: unknown): Promise<void> => {
    if (Array.isArray(value)) {
      for (const item of value) await rewriteArtifactUris(item);
      return;
    }
    if (!value || typeof value !== 'object') return;
    const record = value as Record<string, unknown>;
    const runId = record.run_id ?? record.run_uuid;
    if (typeof record.artifact_uri === 'string' && typeof runId === 'string' && typeof record.experiment_id === 'string') {
      record.artifact_uri = `azureml://experiments/${await experimentName(record.experiment_id)}/runs/${runId}/artifacts`;
    }
    for (const child of Object.values(record)) await rewriteArtifactUris(child);
  };

  const forwardToMlflow = async (req: IncomingMessage, res: ServerResponse, rest: string, query: string) => {
    const body = await readBody(req);
    const answer = await fetch(`${options.mlflowUrl}/api/2.0/mlflow/${rest}${query}`, {
      method: req.method,
      headers: req.headers['content-type'] ? { 'content-type': req.headers['content-type'] } : {},
      ...(body.length > 0 ? { body } : {}),
    });
    const text = await answer.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'text/plain' });
      res.end(text);
      return;
    }
    await rewriteArtifactUris(parsed);
    json(res, answer.status, parsed);
  };

  const forwardToAzurite = (req: IncomingMessage, res: ServerResponse, blobPath: string, query: string) =>
    new Promise<void>((resolve, reject) => {
      const headers = { ...req.headers, host: azurite.host };
      const upstream = httpRequest(
        { host: azurite.hostname, port: azurite.port, method: req.method, path: `/${options.azurite.account}/${blobPath}${query}`, headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          answer.on('end', resolve);
          answer.on('error', reject);
        },
      );
      upstream.on('error', reject);
      req.pipe(upstream);
    });

  const tokenRoute =
    /^\/history\/v1\.0\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.MachineLearningServices\/workspaces\/([^/]+)\/(experiments|experimentids)\/([^/]+)\/runs\/([^/]+)\/token$/;
  const historyRoute =
    /^\/history\/v1\.0\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.MachineLearningServices\/workspaces\/([^/]+)\/(experiments|experimentids)\/([^/]+)\/runs\/([^/]+)\/artifacts(\/batch\/metadata|\/contentinfo)?$/;
  const mlflowRoute = /^\/mlflow\/v2\.0\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.MachineLearningServices\/workspaces\/([^/]+)\/api\/2\.0\/mlflow\/(.+)$/;
  const sameWorkspace = (m: RegExpExecArray) => m[1] === STANDIN_SUBSCRIPTION && m[2] === STANDIN_RESOURCE_GROUP && m[3] === STANDIN_WORKSPACE;

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'https://standin');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const record = (route: string): StandinRequest => {
      const entry: StandinRequest = { method, path, route, query: url.search, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) };
      requests.push(entry);
      return entry;
    };

    if (method === 'GET' && path === '/metadata/endpoints') {
      record('metadata');
      return json(res, 200, [
        {
          name: 'AzureCloud',
          authentication: { audiences: ['https://management.core.windows.net/'], loginEndpoint: `${origin}/login`, tenant: 'common' },
          resourceManager: `${origin}/`,
          suffixes: { storage: 'core.windows.net', keyVaultDns: 'vault.azure.net' },
        },
      ]);
    }
    if (path.startsWith(`/${blobHostSegment}/`)) {
      record('blob');
      return forwardToAzurite(req, res, path.slice(blobHostSegment.length + 2), url.search);
    }
    const mlflow = mlflowRoute.exec(path);
    if (mlflow && sameWorkspace(mlflow)) {
      record('mlflow');
      if (!authorized(req, res)) return;
      return forwardToMlflow(req, res, mlflow[4]!, url.search);
    }
    const renew = tokenRoute.exec(path);
    if (renew && sameWorkspace(renew) && method === 'GET') {
      record('token');
      if (!authorized(req, res)) return;
      const fresh = makeJobToken();
      validTokens.add(fresh);
      renewedTokens.push(fresh);
      return json(res, 200, { token: fresh, expiryTimeUtc: new Date(Date.now() + 86_400_000).toISOString() });
    }
    const history = historyRoute.exec(path);
    if (history && sameWorkspace(history)) {
      const [, , , , , , runId, action] = history;
      const artifacts = runs.get(runId!) ?? new Map<string, string>();
      runs.set(runId!, artifacts);
      if (method === 'POST' && action === '/batch/metadata') {
        const entry = record('batch-metadata');
        if (!authorized(req, res)) return;
        const body = JSON.parse((await readBody(req)).toString('utf8')) as { paths?: Array<{ path?: unknown }> };
        entry.paths = body.paths?.length ?? 0;
        const out = { artifacts: {} as Record<string, unknown>, artifactContentInformation: {} as Record<string, unknown>, errors: {} as Record<string, unknown> };
        for (const { path: p } of body.paths ?? []) {
          if (typeof p !== 'string' || p === '' || p.startsWith('/') || p.split('/').includes('..')) {
            out.errors[String(p)] = { error: { code: 'UserError', message: `Invalid artifact path "${String(p)}".` } };
            continue;
          }
          const artifactId = artifacts.get(p) ?? `ExperimentRun/dcid.${runId}/${p}`;
          artifacts.set(p, artifactId);
          out.artifacts[p] = { artifactId, origin: 'ExperimentRun', container: `dcid.${runId}`, path: p, createdTime: new Date().toISOString() };
          out.artifactContentInformation[p] = contentInfo(runId!, p, 'cw');
        }
        return json(res, 200, out);
      }
      if (method === 'GET' && action === undefined) {
        record('list');
        if (!authorized(req, res)) return;
        const all = [...artifacts.keys()];
        const start = Number(url.searchParams.get('continuationToken') ?? '0');
        const page = all.slice(start, start + pageSize);
        const next = start + pageSize < all.length ? String(start + pageSize) : null;
        return json(res, 200, {
          value: page.map((p) => ({ artifactId: artifacts.get(p), origin: 'ExperimentRun', container: `dcid.${runId}`, path: p })),
          continuationToken: next,
          nextLink: next ? `${origin}${path}?continuationToken=${next}` : null,
        });
      }
      if (method === 'GET' && action === '/contentinfo') {
        record('contentinfo');
        if (!authorized(req, res)) return;
        const p = url.searchParams.get('path') ?? '';
        if (!artifacts.has(p)) return json(res, 404, { error: { code: 'UserError', message: `Artifact ${p} not found.` } });
        return json(res, 200, contentInfo(runId!, p, 'r'));
      }
    }
    record('unhandled');
    unhandled.push(`${method} ${path}${url.search}`);
    return json(res, 500, { error: { code: 'NotImplementedInStandin', message: `The Azure ML stand-in does not implement ${method} ${path}.` } });
  };

  const server: Server = createServer({ key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.pem')) }, (req, res) => {
    handle(req, res).catch((error: unknown) => {
      failures.push(`${req.method} ${req.url}: ${(error as Error).stack ?? String(error)}`);
      if (!res.headersSent) json(res, 500, { error: { code: 'StandinFailure', message: String(error) } });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const caPath = join(dir, 'ca.pem');
  const trackingUri = `azureml://${origin.slice('https://'.length)}/mlflow/v2.0${SCOPE}`;

  return {
    origin,
    trackingUri,
    caPath,
    token,
    issueToken: (ttlSeconds) => {
      const issued = makeJobToken(ttlSeconds);
      validTokens.add(issued);
      return issued;
    },
    renewedTokens,
    requests,
    unhandled,
    failures,
    artifactPaths: (runId) => [...(runs.get(runId)?.keys() ?? [])],
    pluginEnv: (run, jobToken = token) => ({
      MLFLOW_TRACKING_URI: trackingUri,
      MLFLOW_TRACKING_TOKEN: jobToken,
      MLFLOW_RUN_ID: run.runId,
      MLFLOW_EXPERIMENT_ID: run.experimentId,
      MLFLOW_EXPERIMENT_NAME: run.experimentName,
      REQUESTS_CA_BUNDLE: caPath,
      ARM_CLOUD_METADATA_URL: `${origin}/metadata/endpoints`,
      // No proxy, no telemetry: nothing may leave 127.0.0.1.
      NO_PROXY: '127.0.0.1',
      no_proxy: '127.0.0.1',
    }),
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A fresh experiment name for one test. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}
