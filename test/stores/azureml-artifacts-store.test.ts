/**
 * Azure ML workspaces (`azureml://` tracking and artifact URIs) against the local stand-in
 * (test/support/azureml-standin.ts: HTTPS with its own CA, MLflow routes forwarded to a real
 * `mlflow server`, run-history artifact routes, SAS URIs onto Azurite), driven in both
 * directions by the official `azureml-mlflow` plugin in a venv of its own, with the job's
 * `MLFLOW_TRACKING_TOKEN` and `REQUESTS_CA_BUNDLE`, and no network:
 * - what the plugin logs, the library lists with the right sizes (and verifies);
 * - what the library uploads (small, empty, block-uploaded, odd names, nested), the plugin lists
 *   and downloads byte-exact.
 * Every test ends with the stand-in having seen no route it does not implement.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { ArtifactUploader } from '../../src/uploader/artifact-uploader.js';
import { HttpStatusError, LocalPathError } from '../../src/core/errors.js';
import { resolveMlflowConnection } from '../../src/mlflow/connection.js';
import { listArtifactsRecursive } from '../../src/stores/artifact-store.js';
import { AzureMlArtifactStore } from '../../src/stores/azureml-artifacts-store.js';
import { resolveArtifactStore } from '../../src/stores/resolve.js';
import { verifyUploads } from '../../src/uploader/verify.js';
import { startAzureMlStandin, uniqueName, type AzureMlStandin } from '../support/azureml-standin.js';
import { tempDirEnv } from '../support/run-temp-root.js';
import { describeWithServers, mlflowAzureServer, mlflowServer, servers } from '../support/servers.js';
import { sha256 } from '../uploader/helpers.js';

const MiB = 1024 * 1024;
const PLUGIN_DRIVER = join(dirname(fileURLToPath(import.meta.url)), '..', 'support', 'azureml_plugin.py');

/** Runs the plugin driver with the plugin venv's python and the job environment of `run`. */
function plugin(standin: AzureMlStandin, run: TestRun, args: string[], token?: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    execFile(
      servers().azureMlPython,
      [PLUGIN_DRIVER, ...args],
      {
        // Only what the plugin needs: no cloud credentials, no proxy settings of the machine.
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...tempDirEnv(), PYTHONUNBUFFERED: '1', ...standin.pluginEnv(run, token) },
        timeout: 120_000,
        maxBuffer: 16 * MiB,
      },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`azureml-mlflow plugin failed: ${error.message}\n--- stderr ---\n${stderr}`));
        else resolve(JSON.parse(stdout.trim().split('\n').at(-1) ?? 'null'));
      },
    );
  });
}

interface TestRun {
  runId: string;
  experimentId: string;
  experimentName: string;
}

/** A run in a fresh experiment on the real MLflow server behind the stand-in. */
async function createRun(): Promise<TestRun> {
  const url = mlflowServer().url;
  const experimentName = uniqueName('azureml');
  const post = async (endpoint: string, body: unknown) =>
    (await (await fetch(`${url}/api/2.0/mlflow/${endpoint}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json()) as Record<string, unknown>;
  const { experiment_id: experimentId } = (await post('experiments/create', { name: experimentName })) as { experiment_id: string };
  const { run } = (await post('runs/create', { experiment_id: experimentId, start_time: Date.now() })) as { run: { info: { run_id: string } } };
  return { runId: run.info.run_id, experimentId, experimentName };
}

describeWithServers('Azure ML workspace (azureml://) through the stand-in, cross-checked with the azureml-mlflow plugin', () => {
  let standin: AzureMlStandin;
  let dir: string;

  /** A connection to the stand-in as a job has it: the azureml:// URI and MLFLOW_TRACKING_TOKEN; the stand-in's CA trusted. */
  const jobConnection = (token = standin.token) =>
    resolveMlflowConnection({ trackingUri: standin.trackingUri, token, caCertPath: standin.caPath, retry: { maxRetries: 2, backoffFactor: 0.05, backoffJitter: 0 } }, {});
  const jobEnv = (run: TestRun, extra: Record<string, string> = {}) => ({
    MLFLOW_TRACKING_URI: standin.trackingUri,
    MLFLOW_TRACKING_TOKEN: standin.token,
    MLFLOW_TRACKING_SERVER_CERT_PATH: standin.caPath,
    MLFLOW_RUN_ID: run.runId,
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: '0.05',
    ...extra,
  });
  const writeTree = async (root: string, tree: Record<string, Buffer>) => {
    for (const [path, data] of Object.entries(tree)) {
      await mkdir(dirname(join(root, path)), { recursive: true });
      await writeFile(join(root, path), data);
    }
  };

  beforeAll(async () => {
    const { blobEndpoint, account, accountKey } = mlflowAzureServer();
    // Three entries a page: every listing below spans several pages (nextLink / continuationToken).
    standin = await startAzureMlStandin({ mlflowUrl: mlflowServer().url, azurite: { blobEndpoint, account, accountKey }, pageSize: 3 });
    dir = await mkdtemp(join(tmpdir(), 'azureml-store-'));
  });

  afterEach(() => {
    expect(standin.unhandled, 'routes the stand-in does not implement').toEqual([]);
    expect(standin.failures, 'failures of the stand-in itself').toEqual([]);
    // The token goes to the workspace only, never to the storage account.
    expect(standin.requests.filter((r) => r.route === 'blob' && r.authorization !== undefined)).toEqual([]);
  });

  afterAll(async () => {
    await standin?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('what the plugin logs, the library lists with the stored sizes and verifies', async () => {
    const run = await createRun();
    const tree: Record<string, Buffer> = {
      'model/weights.bin': randomBytes(3 * MiB + 7),
      'model/config.json': Buffer.from('{"layers": 2}'),
      'model/tokenizer/vocab.txt': Buffer.from('a\nb\n'),
      'model/empty.txt': Buffer.alloc(0),
      'notes.md': Buffer.from('# run notes'),
    };
    const local = join(dir, 'plugin-logged');
    await writeTree(local, tree);
    await plugin(standin, run, ['log', local, '']);
    expect(await plugin(standin, run, ['artifact-uri'])).toEqual({ artifact_uri: `azureml://experiments/${run.experimentName}/runs/${run.runId}/artifacts` });
    expect(standin.artifactPaths(run.runId).sort()).toEqual(Object.keys(tree).sort());

    const connection = jobConnection();
    const store = resolveArtifactStore(`azureml://experiments/${run.experimentName}/runs/${run.runId}/artifacts`, { connection, env: {} });
    expect(store).toBeInstanceOf(AzureMlArtifactStore);
    expect(await store.list()).toEqual([
      { path: 'model', isDir: true },
      { path: 'notes.md', isDir: false, size: tree['notes.md']!.length },
    ]);
    expect(await listArtifactsRecursive(store)).toEqual(Object.entries(tree).map(([path, data]) => ({ path, isDir: false, size: data.length })).sort((a, b) => (a.path < b.path ? -1 : 1)));
    expect(await verifyUploads(store, Object.entries(tree).map(([artifactPath, data]) => ({ artifactPath, size: data.length })))).toEqual([]);
    // A file the run does not have, or one of another size, is a mismatch.
    expect(await verifyUploads(store, [{ artifactPath: 'model/missing.bin', size: 1 }, { artifactPath: 'notes.md', size: 3 }])).toMatchObject([
      { artifactPath: 'model/missing.bin', reason: 'missing' },
      { artifactPath: 'notes.md', reason: 'size', actualSize: tree['notes.md']!.length },
    ]);
    if (connection.kind === 'rest') await connection.http.close();
  });

  it('what the library uploads (empty, small, blocks, odd names, nested), the plugin lists and downloads byte-exact', async () => {
    const run = await createRun();
    const tree: Record<string, Buffer> = {
      'model.safetensors': randomBytes(2 * MiB + 12_345),
      'config.json': Buffer.from('{"hidden": 8}'),
      'empty.txt': Buffer.alloc(0),
      'odd names/space & plus+ (ü).txt': Buffer.from('odd'),
      'nested/deeper/tokenizer.json': Buffer.from('{}'),
    };
    const local = join(dir, 'library-uploaded');
    await writeTree(local, tree);
    const uploader = new ArtifactUploader({
      stage: 'training',
      env: jobEnv(run),
      azure: { blockSize: MiB, concurrency: 2 },
    });
    const result = await uploader.uploadDirectory(local, { artifactPath: 'ckpt', verify: true });
    expect(result).toMatchObject({ status: 'uploaded', artifactUri: `azureml://experiments/${run.experimentName}/runs/${run.runId}/artifacts`, verification: { status: 'verified' } });
    expect(Object.fromEntries(result.files.map((f) => [f.artifactPath, f.multipart]))).toEqual(
      Object.fromEntries(Object.entries(tree).map(([path, data]) => [`ckpt/${path}`, data.length > MiB])),
    );
    // The big file went up in blocks (three, then one commit) through its SAS URI.
    const blobPuts = standin.requests.filter((r) => r.route === 'blob' && r.method === 'PUT' && r.path.includes(run.runId));
    expect(blobPuts.filter((r) => /comp=block(&|$)/.test(r.query))).toHaveLength(3);
    expect(blobPuts.filter((r) => /comp=blocklist/.test(r.query))).toHaveLength(1);
    // Files that start together are registered together, as the plugin batches them.
    const batches = standin.requests.filter((r) => r.route === 'batch-metadata' && r.path.includes(run.runId));
    expect(batches.length).toBeLessThan(Object.keys(tree).length);

    const listed = (await plugin(standin, run, ['list', 'ckpt'])) as Array<{ path: string; is_dir: boolean }>;
    expect(listed.map((e) => e.path).sort()).toEqual(['ckpt/config.json', 'ckpt/empty.txt', 'ckpt/model.safetensors', 'ckpt/nested', 'ckpt/odd names']);
    const dst = join(dir, 'plugin-download');
    await mkdir(dst, { recursive: true });
    await plugin(standin, run, ['download', 'ckpt', dst]);
    for (const [path, data] of Object.entries(tree)) expect(sha256(await readFile(join(dst, 'ckpt', path))), path).toBe(sha256(data));
  });

  // The workspace's blobs hold Azure's 1,024 characters of name like any other, and the run
  // history stores a run's artifacts under `ExperimentRun/dcid.<run id>/`: a path that fits on its
  // own passes the limit with that prefix. Azurite does not check the length, so without our
  // check the file would be registered and stored (and refused by Azure, after registration).
  it('a name over Azure\'s blob name limit (the run\'s ExperimentRun/dcid.<run id> prefix counted) is refused before anything is registered or sent', async () => {
    const run = await createRun();
    // 1,000 characters: under the limit alone, over it under `ExperimentRun/dcid.<run id>/names/`.
    const long = `${Array.from({ length: 4 }, (_, i) => `${i}${'a'.repeat(199)}`).join('/')}/${'w'.repeat(192)}.bin`;
    expect(long).toHaveLength(1000);
    const local = join(dir, 'name-limit');
    await writeTree(local, { 'ok.txt': Buffer.from('short name'), [long]: Buffer.alloc(3000, 1) });
    const before = standin.requests.length;

    const uploader = new ArtifactUploader({ stage: 'training', env: jobEnv(run) });
    const refused = await uploader.uploadDirectory(local, { artifactPath: 'names' }).catch((error: unknown) => error);
    await uploader.close();

    const artifactPath = `names/${long}`;
    const blobName = `ExperimentRun/dcid.${run.runId}/${artifactPath}`;
    expect(blobName.length).toBeGreaterThan(1024);
    expect(refused).toBeInstanceOf(LocalPathError);
    expect(refused).toMatchObject({ code: 'INVALID_ARTIFACT_PATH', path: artifactPath });
    expect((refused as LocalPathError).hint).toContain(`${blobName.length} characters`);
    expect((refused as LocalPathError).hint).toContain('at most 1024');
    const sent = standin.requests.slice(before).filter((r) => r.path.includes(run.runId));
    expect(sent.filter((r) => r.route === 'batch-metadata' || r.route === 'blob')).toEqual([]);
    expect(standin.artifactPaths(run.runId)).toEqual([]);

    // The store's own uploadFile refuses it before it reads the file (which does not exist).
    const connection = jobConnection();
    const store = resolveArtifactStore(`azureml://experiments/${run.experimentName}/runs/${run.runId}/artifacts`, { connection, env: {} });
    await expect(store.uploadFile(join(dir, 'missing.bin'), artifactPath)).rejects.toMatchObject({ code: 'INVALID_ARTIFACT_PATH', path: artifactPath });
    expect(standin.artifactPaths(run.runId)).toEqual([]);
    if (connection.kind === 'rest') await connection.http.close();
  });

  it('registers the paths of files that start together in batches of at most AZUREML_ARTIFACT_BATCH_SIZE', async () => {
    const run = await createRun();
    const tree = Object.fromEntries(Array.from({ length: 7 }, (_, i) => [`f${i}.txt`, Buffer.from(`file ${i}`)]));
    const local = join(dir, 'batched');
    await writeTree(local, tree);
    const uploader = new ArtifactUploader({ stage: 'training', env: jobEnv(run, { AZUREML_ARTIFACT_BATCH_SIZE: '3' }), concurrency: 8 });
    const result = await uploader.uploadDirectory(local, { verify: true });
    expect(result.status).toBe('uploaded');
    expect(standin.artifactPaths(run.runId).sort()).toEqual(Object.keys(tree).sort());
    const sizes = standin.requests.filter((r) => r.route === 'batch-metadata' && r.path.includes(run.runId)).map((r) => r.paths ?? 0);
    expect(sizes.every((n) => n <= 3)).toBe(true);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(7);
    // Coalesced: fewer calls than files (7 files in flight make 3 calls of 3, 3 and 1 unless the machine is slow).
    expect(sizes.length).toBeLessThan(7);
  });

  it('a refused token fails at the first request, with a hint, and the token appears nowhere', async () => {
    const run = await createRun();
    const before = standin.requests.length;
    const connection = jobConnection('eyJ.not-the-job-token.sig');
    const store = new AzureMlArtifactStore(`azureml://experiments/${run.experimentName}/runs/${run.runId}/artifacts`, { connection, env: {} });
    const local = join(dir, 'refused.txt');
    await writeFile(local, 'x');
    const error = await store.uploadFile(local, 'refused.txt').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpStatusError);
    expect(error).toMatchObject({ status: 401, code: 'Unauthorized' });
    expect((error as HttpStatusError).hint).toMatch(/MLFLOW_TRACKING_TOKEN/);
    expect(JSON.stringify({ message: (error as Error).message, hint: (error as HttpStatusError).hint })).not.toContain('not-the-job-token');
    expect(standin.requests.length - before).toBe(1);
    if (connection.kind === 'rest') await connection.http.close();
  });

  it('an Entra ID credential (DefaultAzureCredential stand-in) authenticates when MLFLOW_TRACKING_TOKEN is not set', async () => {
    const run = await createRun();
    let calls = 0;
    const credential = {
      getToken: async () => {
        calls++;
        return { token: standin.token, expiresOnTimestamp: Date.now() + 3_600_000 };
      },
    };
    const connection = resolveMlflowConnection({ trackingUri: standin.trackingUri, caCertPath: standin.caPath, azureCredential: credential }, {});
    const store = new AzureMlArtifactStore(`azureml://experiments/${run.experimentName}/runs/${run.runId}/artifacts`, { connection, env: {} });
    const local = join(dir, 'aad.txt');
    await writeFile(local, 'aad');
    await store.uploadFile(local, 'aad.txt');
    expect(await store.list()).toEqual([{ path: 'aad.txt', isDir: false, size: 3 }]);
    // One token for every request while it is fresh.
    expect(calls).toBe(1);
    if (connection.kind === 'rest') await connection.http.close();
  });

  it('Basic-auth settings meant for another MLflow server (env, ~/.mlflow/credentials) are not sent to the workspace: its token is', async () => {
    // Basic wins over a token for http(s) servers, as in MLflow; for a workspace it replaced the
    // Entra ID token (or the job token), so every request was refused with 401, and the password
    // of the other server went to the workspace's host.
    const run = await createRun();
    const credentialsFile = join(dir, 'mlflow-credentials');
    await writeFile(credentialsFile, '[mlflow]\nmlflow_tracking_username = file-user\nmlflow_tracking_password = file-password-for-another-server\n');
    const env = { MLFLOW_TRACKING_USERNAME: 'env-user', MLFLOW_TRACKING_PASSWORD: 'env-password-for-another-server' };
    const credential = { getToken: async () => ({ token: standin.token, expiresOnTimestamp: Date.now() + 3_600_000 }) };
    for (const options of [{ env }, { credentialsFile, env: {} }]) {
      const before = standin.requests.length;
      const connection = resolveMlflowConnection({ trackingUri: standin.trackingUri, caCertPath: standin.caPath, azureCredential: credential, ...options });
      const store = new AzureMlArtifactStore(`azureml://experiments/${run.experimentName}/runs/${run.runId}/artifacts`, { connection, env: {} });
      const local = join(dir, 'basic.txt');
      await writeFile(local, 'no basic');
      await store.uploadFile(local, 'basic.txt');
      const sent = standin.requests.slice(before).filter((r) => r.route !== 'blob');
      expect(sent.length).toBeGreaterThan(0);
      expect(sent.every((r) => r.authorization === `Bearer ${standin.token}`)).toBe(true);
      if (connection.kind === 'rest') await connection.http.close();
    }
    expect(standin.artifactPaths(run.runId)).toContain('basic.txt');
  });

  it('inside a job, a token about to expire is renewed through the run-history token route, as the plugin renews it', async () => {
    const run = await createRun();
    // The plugin, given a job token with 60 s left, renews it through experimentids/<id>/runs/<id>/token before logging.
    const local = join(dir, 'renew.txt');
    await writeFile(local, 'renew me');
    await plugin(standin, run, ['log-file', local, 'plugin'], standin.issueToken(60));
    const pluginRenewals = standin.requests.filter((r) => r.route === 'token' && r.path.includes(run.runId));
    expect(pluginRenewals.map((r) => r.path.replace(/^.*\/workspaces\/[^/]+/, ''))).toEqual([`/experimentids/${run.experimentId}/runs/${run.runId}/token`]);

    // The library, in the same situation, renews it the same way and carries on with the new token.
    const shortLived = standin.issueToken(60);
    const renewedBefore = standin.renewedTokens.length;
    const uploader = new ArtifactUploader({
      stage: 'training',
      env: { ...jobEnv(run), MLFLOW_TRACKING_TOKEN: shortLived, MLFLOW_EXPERIMENT_ID: run.experimentId, MLFLOW_EXPERIMENT_NAME: run.experimentName },
    });
    const result = await uploader.uploadFile(local, { artifactPath: 'library', verify: true });
    expect(result.status).toBe('uploaded');
    const ours = standin.requests.filter((r) => r.route === 'token' && r.path.includes(run.runId)).slice(1);
    expect(ours.map((r) => [r.path.replace(/^.*\/workspaces\/[^/]+/, ''), r.authorization])).toEqual([[`/experimentids/${run.experimentId}/runs/${run.runId}/token`, `Bearer ${shortLived}`]]);
    const renewed = standin.renewedTokens[renewedBefore];
    const after = standin.requests.slice(standin.requests.indexOf(ours[0]!) + 1).filter((r) => r.route !== 'blob' && r.path.includes(run.runId));
    expect(after.length).toBeGreaterThan(0);
    expect(after.every((r) => r.authorization === `Bearer ${renewed}`)).toBe(true);
    expect(standin.artifactPaths(run.runId).sort()).toEqual(['library/renew.txt', 'plugin/renew.txt']);
  });
});
