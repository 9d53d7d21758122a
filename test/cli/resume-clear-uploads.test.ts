/**
 * `resume clear` gives up the unfinished uploads of the records it removes (docs/resume.md,
 * "Clearing the journal"). Against the real servers, a child CLI `dir` upload is SIGKILLed while
 * its large file is in a multipart upload, then the built CLI runs `resume clear`:
 * - `s3://` (MLflow with an s3 artifact root on moto): S3's AbortMultipartUpload is sent, moto
 *   lists no upload for the run, the journal is empty, `--json` says `aborted`;
 *   `--dry-run` before it sends nothing and removes nothing (`would-abort`);
 * - the MLflow proxy with an S3 destination: `mpu/abort` is sent, moto lists no upload;
 * - `--keep-uploads`: the records go, no request is sent, the upload stays on moto;
 * - a tracking server that cannot be reached (a closed port): the record goes, exit 0, the
 *   output says the upload is left, why, and what removes it, and no password is shown;
 * - SIGINT while a run is looked up (a server that never answers): exit 130 at once, the record
 *   gone, its upload said left.
 */
import { createServer as createHttpServer } from 'node:http';
import { copyFile, mkdtemp, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { runToEnd } from '../support/crash-harness.js';
import { startTestServer } from '../support/http-test-server.js';
import { useFaultProxies, type FaultProxy } from '../support/fault-proxy.js';
import { closedPort, isAbort, isMpu, journalFiles, killedProxyMultipartUpload, killedS3Upload as killed, records } from '../support/killed-upload.js';
import { motoUploads } from '../support/moto.js';
import { describeWithServers } from '../support/servers.js';
import { resolveMlflowConnection } from '../../src/mlflow/connection.js';
import { localFileIdentity, UploadJournal } from '../../src/uploader/journal.js';
import { baseEnv, cli } from './helpers.js';
import { deleteRun } from '../faults/helpers.js';

const startProxy = useFaultProxies();

/** What `--json` says of each removed file's upload, by artifact path (the killed run's finished small files too: `none`). */
const uploads = (json: ClearJson) => Object.fromEntries(json.removed.map((r) => [r.artifactPath, r.reason === undefined ? r.upload : `${r.upload}: ${r.reason}`]));
const smallFiles = { 'ckpt/config.json': 'none', 'ckpt/tokenizer.json': 'none' };

type ClearJson = { ok: boolean; dryRun: boolean; keepUploads: boolean; removed: Array<{ artifactPath: string; upload: string; reason?: string }> };

/**
 * A `dir` upload to `ckpt` of a new run on the `s3://` server, killed once `big.bin` has two
 * parts on record ({@link killed}); the tracking server and moto each behind a recording proxy,
 * so that every request `resume clear` makes is seen. `clear(args)` runs the built CLI's
 * `resume clear --json`.
 */
async function killedS3Upload(runName: string) {
  const { runId, journalDir, left, root, env, s3, tracking } = await killed(startProxy, runName);
  const clear = async (args: string[] = []) => {
    const trackingBefore = tracking.requests.length;
    const run = await runToEnd({ argv: ['resume', 'clear', '--json', ...args], env: { ...env, MLFLOW_RUN_ID: runId }, cwd: root, proxy: s3 });
    return { ...run, json: JSON.parse(run.stdout) as ClearJson, trackingRequests: tracking.requests.slice(trackingBefore) };
  };
  return { runId, journalDir, left, clear };
}

/**
 * A journal, in a new temp root (`journalName` in it), holding the record of `ckpt/big.bin`
 * (a local file of the root) uploaded to `target`, run `runId`, in the multipart upload `uploadId`.
 */
async function journalWithUpload(target: string, runId: string, uploadId: string, journalName = 'journal') {
  const root = await mkdtemp(join(tmpdir(), 'au-resume-clear-'));
  const dir = join(root, journalName);
  await writeFile(join(root, 'big.bin'), 'z'.repeat(4096));
  const journal = await UploadJournal.open({ dir });
  const entry = (await journal.begin({ target, runId, artifactPath: 'ckpt/big.bin', local: await localFileIdentity(join(root, 'big.bin')) }))!;
  await entry.startMultipart(uploadId, 1024);
  return { root, dir, journal, entry };
}

describeWithServers('resume clear gives up the uploads of the records it removes', () => {
  it('s3://: --dry-run sends nothing and removes nothing; then clear aborts the multipart upload (none left on moto), empties the journal, and --json says aborted', async () => {
    const { runId, journalDir, left, clear } = await killedS3Upload('resume-clear-s3');

    const before = await journalFiles(journalDir); // the record of big.bin, the log of the files finished
    const dry = await clear(['--dry-run']);
    expect(dry.requests).toEqual([]);
    expect(dry.trackingRequests).toEqual([]);
    expect(dry.json).toMatchObject({ ok: true, dryRun: true });
    expect(uploads(dry.json)).toMatchObject({ 'ckpt/big.bin': 'would-abort' });
    expect(await motoUploads(runId)).toEqual([left]);
    expect(await journalFiles(journalDir)).toEqual(before);

    const run = await clear();
    const why = JSON.stringify({ requests: run.requests, stderr: run.stderr.slice(-2000) });
    expect(run.json, why).toMatchObject({ ok: true, dryRun: false, keepUploads: false });
    expect(uploads(run.json), why).toEqual({ 'ckpt/big.bin': 'aborted', ...smallFiles });
    expect(run.requests.filter(isAbort), why).toHaveLength(1);
    expect(run.trackingRequests.map((r) => r.path).some((p) => p.includes('/runs/get'))).toBe(true); // the run's artifact URI, looked up
    expect(await motoUploads(runId), why).toEqual([]);
    expect(await journalFiles(journalDir)).toEqual([]);
  }, 300_000);

  it('s3://: a run deleted since the kill: clear still aborts its multipart upload (a deleted run keeps its artifact URI, and an abort logs nothing to it)', async () => {
    const { url, runId, journalDir, root, env, s3 } = await killed(startProxy, 'resume-clear-s3-deleted-run');
    await deleteRun(url, runId);
    const run = await runToEnd({ argv: ['resume', 'clear', '--json'], env, cwd: root, proxy: s3 });
    const json = JSON.parse(run.stdout) as ClearJson;
    const why = JSON.stringify({ requests: run.requests, stderr: run.stderr.slice(-2000) });
    expect(json, why).toMatchObject({ ok: true });
    expect(uploads(json), why).toEqual({ 'ckpt/big.bin': 'aborted', ...smallFiles });
    expect(await motoUploads(runId), why).toEqual([]);
    expect(await journalFiles(journalDir)).toEqual([]);
  }, 300_000);

  it('s3://: --keep-uploads removes the records only: no request, the upload stays on moto, and --json says left (kept)', async () => {
    const { runId, journalDir, left, clear } = await killedS3Upload('resume-clear-s3-keep');
    const run = await clear(['--keep-uploads']);
    expect(run.requests).toEqual([]);
    expect(run.trackingRequests).toEqual([]);
    expect(run.json).toMatchObject({ ok: true, keepUploads: true });
    expect(uploads(run.json)).toEqual({ 'ckpt/big.bin': 'left: kept (--keep-uploads)', ...smallFiles });
    expect(await motoUploads(runId)).toEqual([left]);
    expect(await journalFiles(journalDir)).toEqual([]);
  }, 300_000);

  it("credentials go only to the command's tracking server: another server's record is kept when it refuses without them, and a clear pointed at it gives its upload up", async () => {
    // Two tracking servers that want Basic credentials (MLflow's basic-auth app answers 401 without them), each its own user.
    const a = await killed(startProxy, 'resume-clear-creds-a');
    const b = await killed(startProxy, 'resume-clear-creds-b');
    const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    const seenAt = new Map<FaultProxy, Array<string | undefined>>([[a.tracking, []], [b.tracking, []]]);
    const gate = (proxy: FaultProxy, authorization: string) =>
      proxy.addRule({
        match: ({ headers }) => (seenAt.get(proxy)!.push(headers.authorization as string | undefined), headers.authorization !== authorization),
        fault: 'status',
        status: 401,
        headers: { 'www-authenticate': 'Basic realm="mlflow"' },
        body: 'You are not authenticated. Please see https://www.mlflow.org/docs/latest/auth/index.html#authenticating-to-mlflow on how to authenticate.',
      });
    gate(a.tracking, basic('alice', 'pw-of-a'));
    gate(b.tracking, basic('bob', 'pw-of-b'));
    // One journal with both records (and the logs of the files each finished).
    for (const name of await journalFiles(b.journalDir)) await copyFile(join(b.journalDir, name), join(a.journalDir, name));
    const bRecord = [...(await records(b.journalDir)).keys()];
    const clear = (argv: string[], env: Record<string, string>) => runToEnd({ argv: ['resume', 'clear', ...argv], env: { ...a.env, ...env }, cwd: a.root, proxy: a.s3 });
    const aliceEnv = { MLFLOW_TRACKING_USERNAME: 'alice', MLFLOW_TRACKING_PASSWORD: 'pw-of-a' };

    // A dry run says that B's records may be kept, and sends nothing.
    const dry = await clear(['--dry-run'], aliceEnv);
    expect(dry.stdout).toContain(`Records of ${b.tracking.url}/ are asked there without credentials (they go only to ${a.tracking.url}/); if that server refuses, they are kept, not removed.`);
    expect(seenAt.get(b.tracking)).toEqual([]);

    const first = await clear(['--json'], aliceEnv);
    const json = JSON.parse(first.stdout) as ClearJson & { kept: Array<{ artifactPath: string; runId: string; upload: string; reason: string; server: string }> };
    const why = JSON.stringify({ json, stderr: first.stderr.slice(-2000) });
    expect(uploads(json), why).toEqual({ 'ckpt/big.bin': 'aborted', ...smallFiles }); // both runs' small files: the same paths
    expect(json.removed.filter((r) => r.artifactPath === 'ckpt/big.bin').map((r) => (r as { runId?: string }).runId), why).toEqual([a.runId]);
    expect(json.kept, why).toEqual([
      expect.objectContaining({ artifactPath: 'ckpt/big.bin', runId: b.runId, upload: 'left', server: `${b.tracking.url}/`, reason: `${b.tracking.url}/ answered 401 to the lookup of its run ${b.runId}, asked without credentials` }),
    ]);
    expect(await motoUploads(a.runId), why).toEqual([]);
    expect(await motoUploads(b.runId), why).toEqual([b.left]);
    expect([...(await records(a.journalDir)).keys()], why).toEqual(bRecord);
    // Server B was asked (runs/get), and never shown alice's password, nor any credential.
    expect(seenAt.get(b.tracking)!.length, why).toBeGreaterThan(0);
    expect(seenAt.get(b.tracking), why).toEqual(seenAt.get(b.tracking)!.map(() => undefined));
    expect(`${first.stdout}${first.stderr}`).not.toContain('pw-of-a');

    // Said in text, with the command that gives it up; the record stays (as old as it was).
    const again = await clear([], aliceEnv);
    expect(again.stdout).toContain('Removed 0 record(s)');
    expect(again.stdout).toMatch(/Kept 1 record\(s\) whose tracking server refused .* only to its own tracking server \(http:\/\/127\.0\.0\.1:\d+\/\)/);
    expect(again.stdout).toContain(`artifact-uploader resume clear --tracking-uri ${b.tracking.url}/`);
    expect([...(await records(a.journalDir)).keys()]).toEqual(bRecord);

    // That command, with bob's credentials: B's upload is aborted, the journal empty, A not asked.
    const aRequests = seenAt.get(a.tracking)!.length;
    const last = await clear(['--json', '--tracking-uri', `${b.tracking.url}/`], { MLFLOW_TRACKING_USERNAME: 'bob', MLFLOW_TRACKING_PASSWORD: 'pw-of-b' });
    expect(uploads(JSON.parse(last.stdout) as ClearJson), last.stderr).toEqual({ 'ckpt/big.bin': 'aborted' });
    expect(await motoUploads(b.runId)).toEqual([]);
    expect(await records(a.journalDir)).toEqual(new Map());
    expect(seenAt.get(a.tracking)!.length).toBe(aRequests);
  }, 300_000);

  it("mlflow-artifacts (S3 destination): clear aborts the proxy's multipart upload (mpu/abort); none is left on moto", async () => {
    const { proxy, runId, root, journalDir, options } = await killedProxyMultipartUpload(startProxy, 'resume-clear-proxy-mpu');
    const { env } = options;

    const run = await runToEnd({ argv: ['resume', 'clear', '--json'], env, cwd: root, proxy });
    const why = JSON.stringify({ requests: run.requests, stderr: run.stderr.slice(-2000) });
    expect(run.requests.filter(isMpu('abort')), why).toHaveLength(1);
    expect(uploads(JSON.parse(run.stdout) as ClearJson), why).toMatchObject({ 'ckpt/big.bin': 'aborted' });
    expect(await motoUploads(runId), why).toEqual([]);
    expect(await journalFiles(journalDir)).toEqual([]);
  }, 300_000);
});

it('a tracking server that cannot be reached: the record goes, exit 0, the output says the upload is left and why, and no password shows', async () => {
  const password = 'hunter2-Secret-pw';
  const trackingUri = `http://alice:${password}@127.0.0.1:${await closedPort()}`;
  const { root, dir, journal, entry } = await journalWithUpload(trackingUri, 'run-gone', 'mpu-left-1');
  await entry.recordParts({ partNumber: 1, size: 1024, etag: '"x"' });

  // One attempt: the retry policy's backoff is not what this test is about.
  const env = baseEnv({ MLFLOW_TRACKING_URI: trackingUri, MLFLOW_TRACKING_USERNAME: 'alice', MLFLOW_TRACKING_PASSWORD: password, MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0' });
  const text = await cli(['resume', 'clear', '--journal-dir', dir], { env });
  expect(text.code, text.stderr).toBe(0);
  expect(text.stdout).toContain('Removed 1 record(s)');
  expect(text.stdout).toMatch(/1 unfinished upload\(s\) they named were left on the store.*AbortIncompleteMultipartUpload/);
  expect(text.stdout).toMatch(/http:\/\/127\.0\.0\.1:\d+\/ ckpt\/big\.bin \(multipart upload, upload id mpu-left-1\): its run run-gone could not be looked up on http:\/\/127\.0\.0\.1:\d+\/: .*ECONNREFUSED/);
  expect(text.stderr).toMatch(/warn.*Left the unfinished upload of .*ckpt\/big\.bin.*ECONNREFUSED/);
  expect(`${text.stdout}${text.stderr}`).not.toContain(password);
  expect(await readdir(dir)).toEqual([]);

  // The same in --json: the record is reported removed, its upload left, with the reason.
  const again = (await journal.begin({ target: trackingUri, runId: 'run-gone', artifactPath: 'ckpt/big.bin', local: await localFileIdentity(join(root, 'big.bin')) }))!;
  await again.startMultipart('mpu-left-2', 1024);
  const json = await cli(['resume', 'clear', '--json', '--journal-dir', dir], { env });
  expect(json.code, json.stderr).toBe(0);
  const doc = json.json<ClearJson>();
  expect(doc).toMatchObject({ ok: true, removed: [{ artifactPath: 'ckpt/big.bin', upload: 'left', reason: expect.stringMatching(/ECONNREFUSED/) }] });
  expect(`${json.stdout}${json.stderr}`).not.toContain(password);
  expect(await readdir(dir)).toEqual([]);
});

it('SIGINT while a run is looked up stops clear at once (130): the record is gone, its upload said left, interrupted', async () => {
  const root = await mkdtemp(join(tmpdir(), 'au-resume-clear-'));
  const dir = join(root, 'journal');
  const interrupt = new AbortController();
  // A tracking server that never answers: the interrupt comes when runs/get has arrived.
  const server = createHttpServer(() => interrupt.abort());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const trackingUri = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    await writeFile(join(root, 'big.bin'), 'z'.repeat(4096));
    const journal = await UploadJournal.open({ dir });
    const entry = (await journal.begin({ target: trackingUri, runId: 'run-slow', artifactPath: 'ckpt/big.bin', local: await localFileIdentity(join(root, 'big.bin')) }))!;
    await entry.startMultipart('mpu-interrupted', 1024);

    const run = await cli(['resume', 'clear', '--json', '--journal-dir', dir], { env: baseEnv({ MLFLOW_TRACKING_URI: trackingUri }), signal: interrupt.signal });
    expect(interrupt.signal.aborted).toBe(true);
    expect(run.code, run.stderr).toBe(130);
    expect(run.json<ClearJson>().removed).toMatchObject([{ artifactPath: 'ckpt/big.bin', upload: 'left', reason: 'interrupted before it was given up' }]);
    expect(await readdir(dir)).toEqual([]);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

/**
 * A tracking server on 127.0.0.1 that wants `Authorization: Bearer <token>` under `prefix`: 401
 * without it (with `anonymousReads`, for POSTs only, as a proxy that lets anyone read); `runs/get`
 * answers a run whose artifacts the server proxies (`mlflow-artifacts:/1/<run>/artifacts`), and
 * `mpu/abort` answers `{}`. Every request is recorded.
 */
async function tokenGatedServer(token: string, prefix = '', { anonymousReads = false } = {}) {
  return startTestServer((req, res) => {
    const path = req.url.split('?')[0]!;
    if (req.headers.authorization !== `Bearer ${token}` && !(anonymousReads && req.method === 'GET')) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error_code: 'UNAUTHENTICATED', message: 'You are not authenticated.' }));
    } else if (path === `${prefix}/api/2.0/mlflow/runs/get`) {
      const runId = new URL(req.url, 'http://x').searchParams.get('run_id')!;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ run: { info: { run_id: runId, experiment_id: '1', artifact_uri: `mlflow-artifacts:/1/${runId}/artifacts`, lifecycle_stage: 'active' } } }));
    } else if (path.startsWith(`${prefix}/api/2.0/mlflow-artifacts/mpu/abort/`)) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    } else {
      res.writeHead(404);
      res.end();
    }
  });
}

it("the command's own tracking server, named with a trailing slash after its --static-prefix, gets its credentials: its record's upload is aborted, not kept as another server's", async () => {
  const server = await tokenGatedServer('tok-of-own-server', '/mlflow');
  onTestFinished(() => server.close());
  const named = `${server.url}/mlflow/`;
  // The record an upload to `named` writes: its target is the connection's address (no trailing slash).
  const { dir } = await journalWithUpload(resolveMlflowConnection({ trackingUri: named }).displayUri, 'run-own', 'mpu-own-1');

  const run = await cli(['resume', 'clear', '--json', '--journal-dir', dir, '--tracking-uri', named], { env: baseEnv({ MLFLOW_TRACKING_TOKEN: 'tok-of-own-server', MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0' }) });
  const why = JSON.stringify({ stdout: run.stdout, stderr: run.stderr, requests: server.requests.map((r) => `${r.method} ${r.url} ${r.headers.authorization}`) });
  expect(run.code, why).toBe(0);
  expect(run.json<ClearJson & { kept: unknown[] }>(), why).toMatchObject({ removed: [{ artifactPath: 'ckpt/big.bin', upload: 'aborted' }], kept: [] });
  expect(server.requests.map((r) => `${r.method} ${r.url.split('?')[0]} ${r.headers.authorization}`), why).toEqual([
    'GET /mlflow/api/2.0/mlflow/runs/get Bearer tok-of-own-server',
    'POST /mlflow/api/2.0/mlflow-artifacts/mpu/abort/1/run-own/artifacts/ckpt Bearer tok-of-own-server',
  ]);
  expect(await readdir(dir)).toEqual([]);
});

it("a record whose target is a store's mlflow-artifacts://<host> URI: that host is asked without the credentials meant for the command's own tracking server", async () => {
  const own = await tokenGatedServer('tok-of-own-server');
  const other = await startTestServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
  onTestFinished(() => Promise.all([own.close(), other.close()]).then(() => undefined));
  const { dir } = await journalWithUpload(`mlflow-artifacts://${new URL(other.url).host}/1/run-other/artifacts`, 'run-other', 'mpu-other-1');

  // Named as its records name it (with the trailing slash): the command's own server, whose connection has the token.
  const env = baseEnv({ MLFLOW_TRACKING_URI: `${own.url}/`, MLFLOW_TRACKING_TOKEN: 'tok-of-own-server', MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0' });
  const run = await cli(['resume', 'clear', '--json', '--journal-dir', dir], { env });
  const why = JSON.stringify({ stdout: run.stdout, stderr: run.stderr });
  expect(run.code, why).toBe(0);
  expect(other.requests.map((r) => `${r.method} ${r.url}`), why).toEqual(['POST /api/2.0/mlflow-artifacts/mpu/abort/1/run-other/artifacts/ckpt']);
  expect(other.requests.map((r) => r.headers.authorization), why).toEqual([undefined]);
  expect(own.requests, why).toEqual([]);
  expect(run.json<ClearJson>().removed, why).toMatchObject([{ artifactPath: 'ckpt/big.bin', upload: 'aborted' }]);
});

it("a record whose target is a store's mlflow-artifacts:/<path> URI (no host) is given up through the command's own tracking server, with its credentials", async () => {
  const own = await tokenGatedServer('tok-of-own-server');
  onTestFinished(() => own.close());
  const { dir } = await journalWithUpload('mlflow-artifacts:/1/run-own/artifacts', 'run-own', 'mpu-own-2');

  // Written as people write it (no trailing slash), unlike a record's target.
  const env = baseEnv({ MLFLOW_TRACKING_URI: own.url, MLFLOW_TRACKING_TOKEN: 'tok-of-own-server', MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0' });
  const run = await cli(['resume', 'clear', '--json', '--journal-dir', dir], { env });
  const why = JSON.stringify({ stdout: run.stdout, stderr: run.stderr });
  expect(run.code, why).toBe(0);
  expect(own.requests.map((r) => `${r.method} ${r.url} ${r.headers.authorization}`), why).toEqual(['POST /api/2.0/mlflow-artifacts/mpu/abort/1/run-own/artifacts/ckpt Bearer tok-of-own-server']);
  expect(run.json<ClearJson>().removed, why).toMatchObject([{ artifactPath: 'ckpt/big.bin', upload: 'aborted' }]);
  expect(await readdir(dir)).toEqual([]);
});

it("a record of another Azure ML workspace (azureml://) is not asked: it would take the environment's token; the record goes, its blocks left to expire", async () => {
  // An https server standing in for a workspace on 127.0.0.1 (a self-signed certificate, trusted below).
  const workspace = await startTestServer((_req, res) => {
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end('{"error":{"code":"Unauthorized"}}');
  }, { tls: true });
  onTestFinished(() => workspace.close());
  const { port } = new URL(workspace.url);
  const target = `azureml://127.0.0.1:${port}/mlflow/v2.0/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws`;

  const { dir } = await journalWithUpload(target, 'run-azure', 'mpu-azure-1');

  const env = baseEnv({
    MLFLOW_TRACKING_URI: `http://127.0.0.1:${await closedPort()}`,
    MLFLOW_TRACKING_TOKEN: 'tok-of-own-server',
    MLFLOW_TRACKING_SERVER_CERT_PATH: workspace.certPath!,
    MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0',
  });
  const dry = await cli(['resume', 'clear', '--dry-run', '--journal-dir', dir], { env });
  expect(dry.stdout, dry.stderr).toMatch(/Records of the Azure ML workspace\(s\) azureml:\/\/127\.0\.0\.1:\d+\/mlflow\/\S+ are not asked .*: they are removed, and their uncommitted blocks expire on their own\./);
  const run = await cli(['resume', 'clear', '--json', '--journal-dir', dir], { env });
  const why = JSON.stringify({ stdout: run.stdout, stderr: run.stderr });
  expect(run.code, why).toBe(0);
  expect(workspace.requests, why).toEqual([]);
  expect(run.json<ClearJson>().removed, why).toMatchObject([{ artifactPath: 'ckpt/big.bin', upload: 'left', reason: expect.stringMatching(/Azure ML workspace/) }]);
  expect(`${run.stdout}${run.stderr}`).not.toContain('tok-of-own-server');
  expect(await readdir(dir)).toEqual([]);
});

it('the command printed for a kept record of another server clears the same journal, and no younger records than asked: --journal-dir and --older-than as given', async () => {
  const other = await tokenGatedServer('tok-of-other-server');
  onTestFinished(() => other.close());
  const { dir } = await journalWithUpload(other.url, 'run-other', 'mpu-other-2', "my journal's dir");
  // Two days old (its own updatedAt and its file's mtime), so `--older-than 1d` selects it.
  const [name] = (await readdir(dir)).filter((n) => n.endsWith('.json'));
  const twoDaysAgo = Date.now() - 2 * 86_400_000;
  await writeFile(join(dir, name!), JSON.stringify({ ...(JSON.parse(await readFile(join(dir, name!), 'utf8')) as object), updatedAt: twoDaysAgo }));
  await utimes(join(dir, name!), new Date(twoDaysAgo), new Date(twoDaysAgo));

  const env = baseEnv({ MLFLOW_TRACKING_URI: `http://127.0.0.1:${await closedPort()}`, MLFLOW_TRACKING_TOKEN: 'tok-of-own-server', MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0' });
  const run = await cli(['resume', 'clear', '--journal-dir', dir, '--older-than', '1d'], { env });
  expect(run.code, run.stderr).toBe(0);
  expect(run.stdout, run.stderr).toContain('Kept 1 record(s) whose tracking server refused');
  const printed = /`(artifact-uploader resume clear [^`]*)`/.exec(run.stdout)?.[1];
  expect(printed, run.stdout).toBe(`artifact-uploader resume clear --tracking-uri ${other.url}/ --journal-dir '${dir.replace("'", "'\\''")}' --older-than 1d`);
  expect(other.requests.map((r) => r.headers.authorization)).toEqual([undefined]);

  // Run as printed (its words as a shell splits them), with that server's token: the upload is given up, the journal empty.
  const words = ['resume', 'clear', '--tracking-uri', `${other.url}/`, '--journal-dir', dir, '--older-than', '1d'];
  const last = await cli(words, { env: { ...env, MLFLOW_TRACKING_TOKEN: 'tok-of-other-server' } });
  expect(last.code, last.stderr).toBe(0);
  expect(last.stdout, last.stderr).toMatch(/Gave up 1 unfinished upload/);
  expect(await readdir(dir)).toEqual([]);
});

it("another server that lets anyone look the run up but refuses the abort without credentials: its record is kept, with the command that gives it up, not dropped with its upload left", async () => {
  const other = await tokenGatedServer('tok-of-other-server', '', { anonymousReads: true });
  onTestFinished(() => other.close());
  const { dir } = await journalWithUpload(`${other.url}/`, 'run-reads', 'mpu-reads-1');
  const [name] = (await readdir(dir)).filter((n) => n.endsWith('.json'));
  const before = await readFile(join(dir, name!), 'utf8');

  const env = baseEnv({ MLFLOW_TRACKING_URI: `http://127.0.0.1:${await closedPort()}`, MLFLOW_TRACKING_TOKEN: 'tok-of-own-server', MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0' });
  const run = await cli(['resume', 'clear', '--json', '--journal-dir', dir], { env });
  const why = JSON.stringify({ stdout: run.stdout, stderr: run.stderr, requests: other.requests.map((r) => `${r.method} ${r.url} ${r.headers.authorization}`) });
  expect(run.code, why).toBe(0);
  // Looked up (anyone may), then the abort refused: neither carried the own server's token.
  expect(other.requests.map((r) => `${r.method} ${r.url.split('?')[0]} ${r.headers.authorization}`), why).toEqual([
    'GET /api/2.0/mlflow/runs/get undefined',
    'POST /api/2.0/mlflow-artifacts/mpu/abort/1/run-reads/artifacts/ckpt undefined',
  ]);
  const json = run.json<ClearJson & { kept: unknown[] }>();
  expect(json.removed, why).toEqual([]);
  expect(json.kept, why).toEqual([
    expect.objectContaining({ artifactPath: 'ckpt/big.bin', upload: 'left', server: `${other.url}/`, reason: `${other.url}/ answered 401 to the abort of its multipart upload (run run-reads), asked without credentials` }),
  ]);
  expect(await readFile(join(dir, name!), 'utf8'), why).toBe(before);

  // The command it prints, with that server's token, gives the upload up.
  const text = await cli(['resume', 'clear', '--journal-dir', dir], { env });
  expect(text.stdout, text.stderr).toContain(`artifact-uploader resume clear --tracking-uri ${other.url}/ --journal-dir ${dir}`);
  const last = await cli(['resume', 'clear', '--json', '--journal-dir', dir, '--tracking-uri', `${other.url}/`], { env: { ...env, MLFLOW_TRACKING_TOKEN: 'tok-of-other-server' } });
  expect(last.json<ClearJson>().removed, last.stderr).toMatchObject([{ artifactPath: 'ckpt/big.bin', upload: 'aborted' }]);
  expect(await readdir(dir)).toEqual([]);
});

it("a record whose target is a store's mlflow-artifacts://<host> URI whose host refuses the abort without credentials is kept, naming that host as the server to clear against", async () => {
  const other = await tokenGatedServer('tok-of-other-server');
  onTestFinished(() => other.close());
  const { dir } = await journalWithUpload(`mlflow-artifacts://${new URL(other.url).host}/1/run-other/artifacts`, 'run-other', 'mpu-other-3');

  const ownUrl = `http://127.0.0.1:${await closedPort()}`;
  const env = baseEnv({ MLFLOW_TRACKING_URI: ownUrl, MLFLOW_TRACKING_TOKEN: 'tok-of-own-server', MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0' });
  // A dry run asks no one, and says that host is asked without credentials, and may keep the record.
  const dry = await cli(['resume', 'clear', '--dry-run', '--journal-dir', dir], { env });
  expect(dry.stdout, dry.stderr).toContain(`Records of ${other.url}/ are asked there without credentials (they go only to ${ownUrl}/); if that server refuses, they are kept, not removed.`);
  expect(other.requests).toEqual([]);

  const run = await cli(['resume', 'clear', '--json', '--journal-dir', dir], { env });
  const why = JSON.stringify({ stdout: run.stdout, stderr: run.stderr });
  expect(other.requests.map((r) => r.headers.authorization), why).toEqual([undefined]);
  expect(run.json<ClearJson & { kept: unknown[] }>().kept, why).toEqual([expect.objectContaining({ artifactPath: 'ckpt/big.bin', upload: 'left', server: `${other.url}/` })]);

  const last = await cli(['resume', 'clear', '--json', '--journal-dir', dir, '--tracking-uri', `${other.url}/`], { env: { ...env, MLFLOW_TRACKING_TOKEN: 'tok-of-other-server' } });
  expect(last.json<ClearJson>().removed, last.stderr).toMatchObject([{ artifactPath: 'ckpt/big.bin', upload: 'aborted' }]);
  expect(await readdir(dir)).toEqual([]);
});
