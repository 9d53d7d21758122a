/**
 * Vitest global setup: installs (once) the pinned Python test venv, then starts, in parallel
 * (an mlflow server once its store answers), the real servers the integration tests use and
 * hands their addresses to the tests:
 * - `plain`: `mlflow server` with a sqlite backend and a local artifacts destination;
 * - `s3`: `mlflow server` proxying to an S3 artifacts destination on moto (multipart capable);
 * - `direct`: `mlflow server --no-serve-artifacts` with an `s3://` default artifact root on
 *   the same moto, for clients that write to the bucket themselves;
 * - `gcs`: `mlflow server --no-serve-artifacts` with a `gs://` default artifact root on
 *   `gcp-storage-emulator` (in memory, with the bucket made at start), found by the server and
 *   the Python client through `STORAGE_EMULATOR_HOST`;
 * - `azure`: Azurite's Blob service (`--inMemoryPersistence --disableTelemetry`: without the
 *   latter Azurite phones home) and `mlflow server --no-serve-artifacts` with a `wasbs://`
 *   default artifact root on it, reached through `AZURE_STORAGE_CONNECTION_STRING`;
 * - the `azureml-mlflow` plugin's own venv (test/azureml-requirements.txt), for the Azure ML
 *   stand-in (test/support/azureml-standin.ts, started by its tests on Azurite and `plain`).
 * All on 127.0.0.1 and free ports; a server whose port another process took meanwhile starts
 * again on a new one (startServer in test/support/processes.ts).
 *
 * The run leaves nothing behind: everything it writes to a temp dir lands in one temp root,
 * `<tmpdir>/au-test-<pid>-XXXXXX` (TMPDIR, TMP and TEMP point there for the servers, the test
 * workers and every process they start; test/support/run-temp-root.ts), removed at the end, and
 * every test process gets a HOME and journal dir inside it (see isolateHome), so no test reads
 * or writes the developer's ~/.cache/artifact-uploader/journal.
 *
 * No server outlives the run: each runs under a watchdog that stops it when this process ends,
 * even by SIGKILL (test/support/server-watchdog.mjs), and whatever a run killed with its watchdogs
 * left (servers, its temp root) is removed when the next run starts (test/support/leftovers.ts).
 * Two runs in one checkout would share dist/, coverage/ and vitest.json: the second stops at
 * once (test/support/checkout-lock.ts, taken by vitest.config.ts).
 *
 * Vitest hands the workers the environment of this process as it is when the tests start, after
 * this setup (checked by test/support/run-temp-root.test.ts): so setting process.env here reaches them.
 *
 * Set ARTIFACT_UPLOADER_TEST_SERVERS=none to skip them for quick unit runs (the server tests
 * then skip loudly; with CI=true they fail instead). Set ARTIFACT_UPLOADER_KEEP_SERVER_LOGS=1
 * to keep the servers' logs and data (moved to `<tmpdir>/au-server-logs-XXXXXX`).
 */
import { chmodSync, mkdirSync, mkdtempSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { sweepLeftovers } from './leftovers.js';
import { AZUREML_REQUIREMENTS_FILE, cacheRoot, ensurePythonEnv, venvBin, venvDir } from './python-env.js';
import { mlflowServerSpec, startServer, waitForHttp, type ManagedProcess, type ServerSpec } from './processes.js';
import { enterRunTempRoot, RUN_ROOT_PREFIX } from './run-temp-root.js';
import type { ServersInfo } from './servers-types.js';

const BUCKET = 'mlflow-test';
const GCS_BUCKET = 'mlflow-gcs-test';
const AWS_ENV = {
  AWS_ACCESS_KEY_ID: 'testing',
  AWS_SECRET_ACCESS_KEY: 'testing',
  AWS_DEFAULT_REGION: 'us-east-1',
};

/** Azurite's well-known development account (public, documented by Microsoft). */
const AZURITE_ACCOUNT = 'devstoreaccount1';
const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const AZURE_CONTAINER = 'mlflow-test';

/**
 * The run dirs a killed run leaves in the temp dir, for the next run to remove: its temp root,
 * and the separate servers dir of versions before it (their home dir, `au-test-home-`, shares
 * the root's prefix).
 */
const RUN_DIR_PREFIXES = [RUN_ROOT_PREFIX, 'au-servers-'];

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const log = (line: string) => process.stderr.write(`[test servers] ${line}\n`);
  const outerTmpdir = tmpdir();
  const swept = sweepLeftovers(RUN_DIR_PREFIXES, outerTmpdir);
  if (swept.processes.length > 0 || swept.dirs.length > 0) {
    log(`removed what killed test runs left: processes ${swept.processes.join(', ') || 'none'}; dirs ${swept.dirs.join(', ') || 'none'}`);
  }
  const tempRoot = enterRunTempRoot(outerTmpdir);
  const processes: ManagedProcess[] = [];
  const root = join(tempRoot.root, 'servers');
  mkdirSync(root);
  let restoreEnv = () => {};
  const stopServers = () => Promise.all(processes.map((p) => p.stop()));
  const teardown = async () => {
    restoreEnv();
    await stopServers();
    if (process.env.ARTIFACT_UPLOADER_KEEP_SERVER_LOGS) {
      const kept = mkdtempSync(join(outerTmpdir, 'au-server-logs-'));
      renameSync(root, kept);
      log(`server logs and data kept in ${kept}`);
    }
    tempRoot.leave();
  };

  let info: ServersInfo;
  if (process.env.ARTIFACT_UPLOADER_TEST_SERVERS === 'none') {
    info = { available: false, reason: 'ARTIFACT_UPLOADER_TEST_SERVERS=none' };
  } else {
    try {
      info = await startAll(root, processes, log);
    } catch (error) {
      const reason = (error as Error).message;
      if (process.env.CI === 'true' || process.env.CI === '1') {
        await teardown();
        throw new Error(`CI=true and the real test servers could not start: ${reason}`);
      }
      // The run goes on without them, in its temp root (removed by the teardown as usual).
      await stopServers();
      log(`!!! real-server tests will be SKIPPED: ${reason}`);
      info = { available: false, reason };
    }
  }
  restoreEnv = isolateHome(join(tempRoot.root, 'home'));
  project.provide('servers', info);
  return teardown;
}

/**
 * Gives every test process (the workers start after this setup, and the children they spawn
 * inherit it) a HOME, XDG_CACHE_HOME and ARTIFACT_UPLOADER_JOURNAL_DIR in the run's temp root,
 * so no test reads or writes the developer's real cache: a test that passes `env: {}` falls back
 * to `~/.cache` through os.homedir(), which reads HOME. The test venv stays where it is
 * (ARTIFACT_UPLOADER_TEST_CACHE is pinned to it first). The home is world-writable (sticky), like
 * /tmp, so tests that drop root to `nobody` can use it too. Returns a function that puts the
 * environment back (the home goes with the temp root).
 */
function isolateHome(home: string): () => void {
  const saved = Object.fromEntries(ISOLATED_VARS.map((name) => [name, process.env[name]]));
  process.env.ARTIFACT_UPLOADER_TEST_CACHE = cacheRoot();
  mkdirSync(join(home, '.cache'), { recursive: true });
  chmodSync(home, 0o1777);
  chmodSync(join(home, '.cache'), 0o1777);
  process.env.HOME = home;
  process.env.XDG_CACHE_HOME = join(home, '.cache');
  process.env.ARTIFACT_UPLOADER_JOURNAL_DIR = join(home, '.cache', 'artifact-uploader', 'journal');
  return () => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}

const ISOLATED_VARS = ['HOME', 'XDG_CACHE_HOME', 'ARTIFACT_UPLOADER_JOURNAL_DIR', 'ARTIFACT_UPLOADER_TEST_CACHE'] as const;

/**
 * Starts the servers, each as soon as what it needs runs: an mlflow server is given its store's
 * address when it starts, so it waits for that store (whose port may change on a collision).
 */
async function startAll(root: string, processes: ManagedProcess[], log: (line: string) => void): Promise<ServersInfo> {
  const started = Date.now();
  // The azureml-mlflow plugin's own venv (for the Azure ML stand-in tests) installs beside the main one.
  const azureMlVenv = ensurePythonEnv(log, AZUREML_REQUIREMENTS_FILE);
  azureMlVenv.catch(() => undefined);
  await ensurePythonEnv(log);
  const logDir = join(root, 'logs');
  const common = { logDir, log, onStart: (proc: ManagedProcess) => processes.push(proc) } satisfies Partial<ServerSpec>;

  const motoStarted = startServer({
    ...common,
    name: 'moto',
    command: venvBin('moto_server'),
    args: (port) => ['-H', '127.0.0.1', '-p', String(port)],
    ready: (port, proc) => waitForHttp(`http://127.0.0.1:${port}/moto-api/`, proc, 60_000),
  }).then(async ({ port }) => {
    const s3Endpoint = `http://127.0.0.1:${port}`;
    const bucket = await fetch(`${s3Endpoint}/${BUCKET}`, { method: 'PUT' });
    if (!bucket.ok) throw new Error(`creating bucket ${BUCKET} on moto failed: ${bucket.status} ${await bucket.text()}`);
    return s3Endpoint;
  });

  const gcsStarted = startServer({
    ...common,
    name: 'gcs-emulator',
    command: venvBin('gcp-storage-emulator'),
    args: (port) => ['start', '--host', '127.0.0.1', '--port', String(port), '--in-memory', '--default-bucket', GCS_BUCKET],
    // The emulator's health check is GET / (it makes the default bucket before it listens).
    ready: (port, proc) => waitForHttp(`http://127.0.0.1:${port}/`, proc, 60_000),
  }).then(({ port }) => `http://127.0.0.1:${port}`);

  const azuriteMain = createRequire(import.meta.url).resolve('azurite/dist/src/blob/main.js');
  const azuriteStarted = startServer({
    ...common,
    name: 'azurite',
    command: process.execPath,
    args: (port) => [azuriteMain, '--blobHost', '127.0.0.1', '--blobPort', String(port), '--inMemoryPersistence', '--disableTelemetry', '--skipApiVersionCheck', '--loose', '--silent'],
    // Creating the container is the readiness check (Azurite has no health route).
    ready: (port, proc) => createAzuriteContainer(azuriteConnectionString(port), AZURE_CONTAINER, proc),
    // In memory, so nothing is written (Azurite refuses --location together with it); cwd is the temp root all the same.
    cwd: root,
  }).then(({ port }) => port);

  const startMlflow = async (name: string, args: string[], env: Record<string, string> = {}) => {
    const dir = join(root, name);
    const { port } = await startServer({
      ...common,
      name: `mlflow-${name}`,
      ...mlflowServerSpec(venvBin('mlflow'), dir, args, env),
      cwd: root,
    });
    return { url: `http://127.0.0.1:${port}`, dir };
  };

  const plainArtifacts = join(root, 'plain', 'artifacts');
  const s3Env = motoStarted.then((s3Endpoint) => ({ ...AWS_ENV, MLFLOW_S3_ENDPOINT_URL: s3Endpoint }));
  const azureEnv = azuriteStarted.then((port) => ({ AZURE_STORAGE_CONNECTION_STRING: azuriteConnectionString(port) }));
  const azureRoot = `wasbs://${AZURE_CONTAINER}@${AZURITE_ACCOUNT}.blob.core.windows.net/direct`;
  const starts = [
    startMlflow('plain', ['--serve-artifacts', '--artifacts-destination', plainArtifacts]),
    s3Env.then((env) => startMlflow('s3', ['--serve-artifacts', '--artifacts-destination', `s3://${BUCKET}/mlartifacts`], env)),
    s3Env.then((env) => startMlflow('direct', ['--no-serve-artifacts', '--default-artifact-root', `s3://${BUCKET}/direct`], env)),
    gcsStarted.then((emulatorHost) => startMlflow('gcs', ['--no-serve-artifacts', '--default-artifact-root', `gs://${GCS_BUCKET}/mlflow`], { STORAGE_EMULATOR_HOST: emulatorHost })),
    azureEnv.then((env) => startMlflow('azure', ['--no-serve-artifacts', '--default-artifact-root', azureRoot], env)),
    azuriteStarted,
    azureMlVenv,
  ] as const;
  // Every start settles before this returns or throws, so that none starts a server after the teardown ran.
  await Promise.allSettled(starts);
  const [plain, s3, direct, gcs, azure, azuritePort] = await Promise.all(starts);
  const s3Endpoint = (await s3Env).MLFLOW_S3_ENDPOINT_URL;
  const gcsEndpoint = await gcsStarted;
  const blobEndpoint = azuriteBlobEndpoint(azuritePort);
  log(
    `mlflow servers up in ${((Date.now() - started) / 1000).toFixed(1)} s (plain ${plain.url}, s3 ${s3.url}, direct ${direct.url}, gcs ${gcs.url}, azure ${azure.url}, moto ${s3Endpoint}, gcs emulator ${gcsEndpoint}, azurite ${blobEndpoint})`,
  );

  return {
    available: true,
    venv: venvDir(),
    python: venvBin('python'),
    azureMlPython: venvBin('python', AZUREML_REQUIREMENTS_FILE),
    plain: { url: plain.url, artifactsDir: plainArtifacts },
    s3: { url: s3.url, s3Endpoint, bucket: BUCKET },
    direct: { url: direct.url, s3Endpoint, bucket: BUCKET, artifactRoot: `s3://${BUCKET}/direct` },
    gcs: { url: gcs.url, emulatorHost: gcsEndpoint, bucket: GCS_BUCKET, artifactRoot: `gs://${GCS_BUCKET}/mlflow` },
    awsEnv: AWS_ENV,
    azure: {
      url: azure.url,
      blobEndpoint,
      account: AZURITE_ACCOUNT,
      accountKey: AZURITE_KEY,
      container: AZURE_CONTAINER,
      artifactRoot: azureRoot,
      env: await azureEnv,
    },
  };
}

function azuriteBlobEndpoint(port: number): string {
  return `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
}

function azuriteConnectionString(port: number): string {
  return `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${azuriteBlobEndpoint(port)};`;
}

/** Creates the container once Azurite answers (it has no health route: this is the readiness check). */
async function createAzuriteContainer(connectionString: string, container: string, proc: ManagedProcess): Promise<void> {
  const { BlobServiceClient } = await import('@azure/storage-blob');
  const client = BlobServiceClient.fromConnectionString(connectionString, { retryOptions: { maxTries: 1 } }).getContainerClient(container);
  const deadline = Date.now() + 60_000;
  let lastError = '';
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null) throw new Error(`azurite exited with code ${proc.child.exitCode}; see ${proc.logFile}`);
    try {
      await client.createIfNotExists();
      return;
    } catch (error) {
      lastError = (error as Error).message;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`azurite did not answer within 60 s (${lastError}); see ${proc.logFile}`);
}
