/**
 * Vitest global setup: installs (once) the pinned Python test venv, then starts, in parallel,
 * the real servers the integration tests use and hands their addresses to the tests:
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
 * All on 127.0.0.1 and free ports, with temp dirs removed at the end.
 *
 * No server outlives the run: each runs under a watchdog that stops it when this process ends,
 * even by SIGKILL (test/support/server-watchdog.mjs), and whatever a run killed with its watchdogs
 * left (servers, temp dirs) is removed when the next run starts (test/support/leftovers.ts).
 * Two runs in one checkout would share dist/, coverage/ and vitest.json: the second stops at
 * once (test/support/checkout-lock.ts, taken by vitest.config.ts).
 *
 * Every test process gets a temp HOME and journal dir (see isolateHome).
 *
 * Set ARTIFACT_UPLOADER_TEST_SERVERS=none to skip them for quick unit runs (the server tests
 * then skip loudly; with CI=true they fail instead).
 */
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { makeRunDir, RUN_DIR_OWNER_FILE, sweepLeftovers } from './leftovers.js';
import { AZUREML_REQUIREMENTS_FILE, cacheRoot, ensurePythonEnv, venvBin, venvDir } from './python-env.js';
import { freePort, startProcess, waitForHttp, type ManagedProcess } from './processes.js';
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

/** The run's temp dirs (in os.tmpdir()): a later run removes those of a run that was killed. */
const SERVERS_DIR_PREFIX = 'au-servers-';
const HOME_DIR_PREFIX = 'au-test-home-';
const RUN_DIR_PREFIXES = [SERVERS_DIR_PREFIX, HOME_DIR_PREFIX];

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const log = (line: string) => process.stderr.write(`[test servers] ${line}\n`);
  const swept = sweepLeftovers(RUN_DIR_PREFIXES);
  if (swept.processes.length > 0 || swept.dirs.length > 0) {
    log(`removed what killed test runs left: processes ${swept.processes.join(', ') || 'none'}; dirs ${swept.dirs.join(', ') || 'none'}`);
  }
  const processes: ManagedProcess[] = [];
  const root = makeRunDir(SERVERS_DIR_PREFIX);
  let restoreEnv = () => {};
  const teardown = async () => {
    restoreEnv();
    await Promise.all(processes.map((p) => p.stop()));
    if (!process.env.ARTIFACT_UPLOADER_KEEP_SERVER_LOGS) rmSync(root, { recursive: true, force: true });
    // Kept on purpose: no longer a run dir for the next run to sweep.
    else rmSync(join(root, RUN_DIR_OWNER_FILE), { force: true });
  };

  let info: ServersInfo;
  if (process.env.ARTIFACT_UPLOADER_TEST_SERVERS === 'none') {
    info = { available: false, reason: 'ARTIFACT_UPLOADER_TEST_SERVERS=none' };
  } else {
    try {
      info = await startAll(root, processes, log);
    } catch (error) {
      await teardown();
      const reason = (error as Error).message;
      if (process.env.CI === 'true' || process.env.CI === '1') {
        throw new Error(`CI=true and the real test servers could not start: ${reason}`);
      }
      log(`!!! real-server tests will be SKIPPED: ${reason}`);
      info = { available: false, reason };
    }
  }
  restoreEnv = isolateHome();
  project.provide('servers', info);
  return teardown;
}

/**
 * Gives every test process (the workers start after this setup, and the children they spawn
 * inherit it) a temp HOME, XDG_CACHE_HOME and ARTIFACT_UPLOADER_JOURNAL_DIR, so no test writes to
 * the developer's real cache: a test that passes `env: {}` falls back to `~/.cache` through
 * os.homedir(), which reads HOME. The test venv stays where it is (ARTIFACT_UPLOADER_TEST_CACHE
 * is pinned to it first). The home is world-writable (sticky), like /tmp, so tests that drop
 * root to `nobody` can use it too. Returns a function that puts the environment back.
 */
function isolateHome(): () => void {
  const saved = Object.fromEntries(ISOLATED_VARS.map((name) => [name, process.env[name]]));
  process.env.ARTIFACT_UPLOADER_TEST_CACHE = cacheRoot();
  const home = makeRunDir(HOME_DIR_PREFIX);
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
    rmSync(home, { recursive: true, force: true });
  };
}

const ISOLATED_VARS = ['HOME', 'XDG_CACHE_HOME', 'ARTIFACT_UPLOADER_JOURNAL_DIR', 'ARTIFACT_UPLOADER_TEST_CACHE'] as const;

async function startAll(root: string, processes: ManagedProcess[], log: (line: string) => void): Promise<ServersInfo> {
  const started = Date.now();
  // The azureml-mlflow plugin's own venv (for the Azure ML stand-in tests) installs beside the main one.
  const azureMlVenv = ensurePythonEnv(log, AZUREML_REQUIREMENTS_FILE);
  azureMlVenv.catch(() => undefined);
  await ensurePythonEnv(log);
  const logDir = join(root, 'logs');

  const motoPort = await freePort();
  const moto = startProcess(venvBin('moto_server'), ['-H', '127.0.0.1', '-p', String(motoPort)], { logDir, name: 'moto' });
  processes.push(moto);
  const s3Endpoint = `http://127.0.0.1:${motoPort}`;

  const gcsPort = await freePort();
  const gcsEmulator = startProcess(
    venvBin('gcp-storage-emulator'),
    ['start', '--host', '127.0.0.1', '--port', String(gcsPort), '--in-memory', '--default-bucket', GCS_BUCKET],
    { logDir, name: 'gcs-emulator' },
  );
  processes.push(gcsEmulator);
  const gcsEndpoint = `http://127.0.0.1:${gcsPort}`;
  const gcsEnv = { STORAGE_EMULATOR_HOST: gcsEndpoint };

  const startMlflow = async (name: string, args: string[], env: Record<string, string> = {}) => {
    const port = await freePort();
    const dir = join(root, name);
    const proc = startProcess(
      venvBin('mlflow'),
      ['server', '--host', '127.0.0.1', '--port', String(port), '--workers', '1', '--backend-store-uri', `sqlite:///${join(dir, 'mlflow.db')}`, ...args],
      { logDir, name: `mlflow-${name}`, env: { MLFLOW_SERVER_ENABLE_JOB_EXECUTION: 'false', ...env }, cwd: root },
    );
    processes.push(proc);
    const url = `http://127.0.0.1:${port}`;
    return { proc, url, dir };
  };

  const plainArtifacts = join(root, 'plain', 'artifacts');
  const plain = await startMlflow('plain', ['--serve-artifacts', '--artifacts-destination', plainArtifacts]);
  const s3Env = { ...AWS_ENV, MLFLOW_S3_ENDPOINT_URL: s3Endpoint };
  const s3 = await startMlflow('s3', ['--serve-artifacts', '--artifacts-destination', `s3://${BUCKET}/mlartifacts`], s3Env);
  const direct = await startMlflow('direct', ['--no-serve-artifacts', '--default-artifact-root', `s3://${BUCKET}/direct`], s3Env);
  const gcs = await startMlflow('gcs', ['--no-serve-artifacts', '--default-artifact-root', `gs://${GCS_BUCKET}/mlflow`], gcsEnv);

  const azuritePort = await freePort();
  const azuriteMain = createRequire(import.meta.url).resolve('azurite/dist/src/blob/main.js');
  const azuriteArgs = ['--blobHost', '127.0.0.1', '--blobPort', String(azuritePort), '--inMemoryPersistence', '--disableTelemetry', '--skipApiVersionCheck', '--loose', '--silent'];
  // In memory, so nothing is written (Azurite refuses --location together with it); cwd is the temp root all the same.
  const azurite = startProcess(process.execPath, [azuriteMain, ...azuriteArgs], { logDir, name: 'azurite', cwd: root });
  processes.push(azurite);
  const blobEndpoint = `http://127.0.0.1:${azuritePort}/${AZURITE_ACCOUNT}`;
  const connectionString = `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${blobEndpoint};`;
  const azureRoot = `wasbs://${AZURE_CONTAINER}@${AZURITE_ACCOUNT}.blob.core.windows.net/direct`;
  const azureEnv = { AZURE_STORAGE_CONNECTION_STRING: connectionString };
  const azure = await startMlflow('azure', ['--no-serve-artifacts', '--default-artifact-root', azureRoot], azureEnv);
  await createAzuriteContainer(connectionString, AZURE_CONTAINER, azurite);
  await azureMlVenv;

  await waitForHttp(`${s3Endpoint}/moto-api/`, moto, 60_000);
  const bucket = await fetch(`${s3Endpoint}/${BUCKET}`, { method: 'PUT' });
  if (!bucket.ok) throw new Error(`creating bucket ${BUCKET} on moto failed: ${bucket.status} ${await bucket.text()}`);
  // The emulator's health check is GET / (it makes the default bucket before it listens).
  await waitForHttp(`${gcsEndpoint}/`, gcsEmulator, 60_000);
  await Promise.all([plain, s3, direct, gcs, azure].map((s) => waitForHttp(`${s.url}/health`, s.proc, 120_000)));
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
      env: azureEnv,
    },
  };
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
