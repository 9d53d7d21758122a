/**
 * Canary tokens in MLFLOW_TRACKING_TOKEN, MLFLOW_TRACKING_PASSWORD, HF_TOKEN, the tracking
 * URI's userinfo and ~/.mlflow/credentials must never show up anywhere a user or a log collector could read them: logs at
 * every level (debug included), thrown errors (message, hint, toJSON, util.inspect with the cause
 * chain), results, the CLI's
 * stdout/stderr (`--json` and `--verbose`), and checkpoint manifests. Every command and API runs
 * on its success path and on failure paths, including a server that echoes the request's
 * Authorization header back in its error body; then everything captured is searched.
 *
 * Each test makes fresh canaries, so a secret registered for redaction by an earlier test
 * cannot hide a leak in a later one.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { ArtifactUploader, isArtifactUploaderError, publishToHub, startRun, endRun, type PublishProgressEvent } from '../../src/index.js';
import { startFakeHub, type FakeHub } from '../support/fake-hub/index.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { describeWithServers, mlflowDirectS3Server, mlflowS3Server, mlflowServer, servers } from '../support/servers.js';
import { writeFusedModel, writeMlxLoraModel } from '../hub/helpers.js';
import { captureLogger, tempDir } from '../faults/helpers.js';
import { serverRun } from '../uploader/helpers.js';
import { startTestServer } from '../support/http-test-server.js';

interface Canaries {
  token: string;
  password: string;
  uriPassword: string;
  hfToken: string;
}

function newCanaries(): Canaries {
  const hex = () => randomBytes(12).toString('hex');
  // Not hf_-shaped (except the Hub token, which must be): redaction has to know them, not guess them.
  return { token: `cnrytok${hex()}`, password: `cnrypw${hex()}`, uriPassword: `cnryuri${hex()}`, hfToken: `hf_cnry${hex()}` };
}

/** Every form a leaked secret could take: as is, URL-encoded, inside a Basic credential. */
function leakForms(c: Canaries): string[] {
  const forms = new Set<string>();
  for (const secret of [c.token, c.password, c.uriPassword, c.hfToken]) {
    forms.add(secret);
    forms.add(encodeURIComponent(secret));
    forms.add(Buffer.from(secret).toString('base64'));
  }
  for (const [user, pw] of [['ci-bot', c.password], ['ci-bot', c.uriPassword]] as const) forms.add(Buffer.from(`${user}:${pw}`).toString('base64'));
  return [...forms];
}

/** Fails with the first place a canary shows up. */
function expectNoLeak(c: Canaries, captured: string[]): void {
  const forms = leakForms(c);
  for (const text of captured) {
    for (const form of forms) {
      if (text.includes(form)) throw new Error(`secret leaked (${form.slice(0, 12)}...) in:\n${text.slice(Math.max(0, text.indexOf(form) - 400), text.indexOf(form) + 200)}`);
    }
  }
  // Presigned part URLs are secrets too, until they expire.
  for (const text of captured) expect(text).not.toMatch(/X-Amz-Signature=[0-9a-f]{16}/);
}

function errorTexts(error: unknown): string[] {
  if (error === undefined || error === null) return [];
  // util.inspect is what console.log, test runners and log serialisers show: the stack, the own
  // fields and the whole cause chain, third-party errors (an SDK's, a Hub answer's) included.
  const out = [String(error), (error as Error).stack ?? '', inspect(error, { depth: Infinity }), inspect(error, { depth: Infinity, colors: true })];
  if (isArtifactUploaderError(error)) out.push(JSON.stringify(error.toJSON()), error.hint ?? '');
  return out;
}

/**
 * A server that refuses everything and echoes what it was sent (headers, URL) in an MLflow- and
 * Hub-shaped error body, as some debugging gateways do: the worst case for error messages.
 */
async function startEchoServer(status: number): Promise<{ url: string; stop(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const echo = `${req.method} ${req.url} authorization=${req.headers.authorization ?? ''}`;
      res.writeHead(status, { 'content-type': 'application/json', 'x-error-message': echo.slice(0, 200) });
      res.end(JSON.stringify({ error_code: 'PERMISSION_DENIED', message: `refused: ${echo}`, error: `refused: ${echo}` }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function withUserinfo(url: string, password: string): string {
  const u = new URL(url);
  u.username = 'ci-bot';
  u.password = password;
  return u.toString().replace(/\/$/, '');
}

let hub: FakeHub;
let echo403: Awaited<ReturnType<typeof startEchoServer>>;
let echo500: Awaited<ReturnType<typeof startEchoServer>>;
const proxies: FaultProxy[] = [];
beforeAll(async () => {
  echo403 = await startEchoServer(403);
  echo500 = await startEchoServer(500);
});
afterAll(async () => {
  await Promise.all([echo403.stop(), echo500.stop(), ...proxies.map((p) => p.stop()), hub?.stop()]);
});

async function hubFor(c: Canaries): Promise<FakeHub> {
  await hub?.stop();
  hub = await startFakeHub({ tokens: [{ token: c.hfToken, user: 'tester', orgs: ['test-org'], role: 'write' }] });
  return hub;
}

/** Fixtures for every command: checkpoint, metrics, ONNX, results, models. */
async function fixtures(): Promise<Record<'cwd' | 'checkpoint' | 'metrics' | 'onnx' | 'results' | 'mlx' | 'fused', string>> {
  const cwd = await tempDir('au-secrets-');
  const checkpoint = join(cwd, 'checkpoint');
  mkdirSync(checkpoint);
  writeFileSync(join(checkpoint, 'model.safetensors'), randomBytes(2048));
  writeFileSync(join(checkpoint, 'trainer_state.json'), '{"step": 10}');
  writeFileSync(join(cwd, 'metrics.json'), '{"loss": 0.5}');
  writeFileSync(join(cwd, 'model.onnx'), randomBytes(1024));
  writeFileSync(join(cwd, 'results.json'), '{"latency_ms": 12}');
  const mlx = await writeMlxLoraModel(join(cwd, 'tiny-lora_20240501_093000'));
  const fused = await writeFusedModel(join(cwd, 'fused-model'));
  return { cwd, checkpoint, metrics: join(cwd, 'metrics.json'), onnx: join(cwd, 'model.onnx'), results: join(cwd, 'results.json'), mlx, fused };
}

async function cli(argv: string[], env: Record<string, string>, cwd: string): Promise<{ code: number; out: string }> {
  let out = '';
  const sink = { write: (text: string) => void (out += text) };
  const code = await runCli(argv, { stdout: sink, stderr: sink, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, cwd });
  // The command line is shown for context, with our own copy of the secret removed from it.
  const shown = argv.map((a) => a.replace(/\/\/[^/@]*@/, '//<userinfo>@')).join(' ');
  return { code, out: `$ artifact-uploader ${shown}\n${out}` };
}

describeWithServers('secrets never leak', () => {
  it('library API, success paths: uploads (with retries and multipart part retries), archives, runs, Hub publish', async () => {
    const c = newCanaries();
    const captured: string[] = [];
    const logger = captureLogger();
    const f = await fixtures();
    const plain = mlflowServer();
    const front = await startFaultProxy(plain.url);
    proxies.push(front);
    // A few transient failures, so the retry path logs too.
    front.addRule({ match: (r) => r.method === 'PUT', times: 2, fault: 'status', status: 503 });
    const env = { MLFLOW_TRACKING_TOKEN: c.token, MLFLOW_TRACKING_USERNAME: 'ci-bot', MLFLOW_TRACKING_PASSWORD: c.password };
    const retry = { maxRetries: 3, backoffFactor: 0, backoffJitter: 0 };
    const trackingUri = withUserinfo(front.url, c.uriPassword);

    const run = await startRun({ trackingUri, env, logger, retry, experimentName: 'secrets', activate: false });
    const uploader = new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri, env, logger, retry, configDir: f.cwd });
    const results = [
      await uploader.uploadFile(f.metrics, { kind: 'metrics' }),
      await uploader.uploadDirectory(f.checkpoint, { artifactPath: 'dir' }),
      await uploader.uploadCheckpoint(f.checkpoint),
      await uploader.archiveAndUploadCheckpoint(f.checkpoint),
    ];
    for (const r of results) expect(r.status, JSON.stringify(r.error)).toBe('uploaded');
    captured.push(...results.map((r) => JSON.stringify(r)), JSON.stringify(uploader.stats()), JSON.stringify(results[3]!.manifest));
    await uploader.close();
    await endRun('FINISHED', { run });

    // Multipart through the S3 proxy, with a part failing once: the retry is logged at debug
    // with the part's presigned URL, which must not carry a usable signature into the log.
    const s3 = mlflowS3Server();
    const objectStore = await startFaultProxy(s3.s3Endpoint);
    proxies.push(objectStore);
    objectStore.addRule({ match: (r) => r.method === 'PUT' && /partNumber=2/.test(r.path), times: 1, fault: 'status', status: 503, body: '<Error><Code>SlowDown</Code></Error>' });
    const { runId: s3Run } = await serverRun(s3.url);
    const big = join(f.cwd, 'big.bin');
    writeFileSync(big, randomBytes(3 * 64 * 1024));
    const mpu = new ArtifactUploader({
      stage: 'training',
      runId: s3Run,
      trackingUri: withUserinfo(s3.url, c.uriPassword),
      env,
      logger,
      retry,
      configDir: f.cwd,
      multipart: { thresholdBytes: 64 * 1024, chunkBytes: 64 * 1024, rewritePartUrl: (u) => u.replace(s3.s3Endpoint, objectStore.url) },
    });
    // S3 refuses to complete parts under 5 MiB, so this upload fails at the end; the part
    // retry before it is what matters here (and the failure path's messages, too).
    const mpuResult = await mpu.uploadFile(big);
    captured.push(JSON.stringify(mpuResult), ...errorTexts(mpuResult.error));
    const partRetry = logger.lines.find((l) => l.startsWith('debug') && /partNumber=2/.test(l));
    expect(partRetry).toMatch(/X-Amz-Signature=\*\*\*/);

    const h = await hubFor(c);
    const published = await publishToHub({ modelDir: f.mlx, repoId: 'tester/secrets', hubUrl: h.url, accessToken: c.hfToken, env: { HF_TOKEN: c.hfToken }, logger, runId: run.runId, mlflow: { trackingUri } });
    expect(published.status).toBe('published');
    captured.push(JSON.stringify(published), h.fileBytes('tester/secrets', 'README.md')?.toString() ?? '');

    captured.push(...logger.lines);
    expect(logger.lines.some((l) => l.startsWith('debug'))).toBe(true);
    expectNoLeak(c, captured);
  });

  it('library API, failure paths: echoing servers, unreachable servers, refused tokens', async () => {
    const c = newCanaries();
    const captured: string[] = [];
    const logger = captureLogger();
    const f = await fixtures();
    const env = { MLFLOW_TRACKING_TOKEN: c.token, MLFLOW_TRACKING_USERNAME: 'ci-bot', MLFLOW_TRACKING_PASSWORD: c.password, HF_TOKEN: c.hfToken };
    const retry = { maxRetries: 1, backoffFactor: 0, backoffJitter: 0, timeoutMs: 2000 };

    for (const base of [echo403.url, echo500.url, 'http://127.0.0.1:1']) {
      for (const trackingUri of [base, withUserinfo(base, c.uriPassword)]) {
        for (const onError of ['return', 'throw'] as const) {
          const uploader = new ArtifactUploader({ stage: 'training', runId: 'a'.repeat(32), trackingUri, env, logger, retry, onError, configDir: f.cwd });
          const outcome = await uploader.uploadFile(f.metrics).catch((e: unknown) => e);
          captured.push(JSON.stringify(outcome), ...errorTexts(outcome), ...errorTexts((outcome as { error?: unknown }).error));
        }
        const started = await startRun({ trackingUri, env, logger, retry, activate: false }).catch((e: unknown) => e);
        captured.push(...errorTexts(started));
      }
    }
    // The run exists, but its uploads are refused by an echoing proxy in front of the server.
    const plain = mlflowServer();
    const { runId } = await serverRun(plain.url);
    const refusing = await startFaultProxy(plain.url);
    proxies.push(refusing);
    refusing.addRule({ match: (r) => r.method === 'PUT', fault: 'status', status: 403, body: JSON.stringify({ error_code: 'PERMISSION_DENIED', message: `token ${c.token} lacks EDIT on ${runId}` }) });
    const upload = await new ArtifactUploader({ stage: 'training', runId, trackingUri: withUserinfo(refusing.url, c.uriPassword), env, logger, retry, configDir: f.cwd }).uploadDirectory(f.checkpoint);
    expect(upload.status).toBe('failed');
    captured.push(JSON.stringify(upload), ...errorTexts(upload.error));

    // The Hub: a token it does not know, and an echoing server in its place.
    const h = await hubFor(newCanaries());
    // Progress events too: a retried 500 reports its error in a `retry` event.
    const events: PublishProgressEvent[] = [];
    for (const hubUrl of [h.url, echo403.url, echo500.url, withUserinfo(echo500.url, c.uriPassword)]) {
      const error = await publishToHub({ modelDir: f.fused, repoId: 'tester/refused', hubUrl, accessToken: c.hfToken, env, logger, retry, onProgress: (e) => events.push(e) }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      captured.push(...errorTexts(error));
    }
    const retried = events.filter((e) => e.type === 'retry');
    expect(retried.length).toBeGreaterThan(0);
    expect(retried.map((e) => e.error).join('\n')).toMatch(/authorization=Bearer \*\*\*/);
    captured.push(...events.map((e) => JSON.stringify(e)));

    captured.push(...logger.lines);
    expect(captured.join('\n')).toMatch(/authorization=(Basic|Bearer) \*\*\*/);
    expectNoLeak(c, captured);
  });

  it('the password in ~/.mlflow/credentials: API and CLI, a real server and echoing ones', async () => {
    const c = newCanaries();
    const captured: string[] = [];
    const logger = captureLogger();
    const f = await fixtures();
    const home = join(f.cwd, 'home');
    mkdirSync(join(home, '.mlflow'), { recursive: true });
    writeFileSync(join(home, '.mlflow', 'credentials'), `[mlflow]\nmlflow_tracking_username = ci-bot\nmlflow_tracking_password = ${c.password}\n`);
    const env = { HOME: home, MLFLOW_HTTP_REQUEST_MAX_RETRIES: '1', MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: '0', MLFLOW_HTTP_REQUEST_BACKOFF_JITTER: '0' };

    const plain = mlflowServer();
    const front = await startFaultProxy(plain.url);
    proxies.push(front);
    front.addRule({ match: (r) => r.method === 'PUT', times: 1, fault: 'status', status: 503 });
    const run = await startRun({ trackingUri: front.url, env, logger, experimentName: 'secrets-file', activate: false });
    const ok = await new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri: front.url, env, logger, configDir: f.cwd }).uploadFile(f.metrics, { kind: 'metrics' });
    expect(ok.status, JSON.stringify(ok.error)).toBe('uploaded');
    captured.push(JSON.stringify(ok));
    for (const base of [echo403.url, echo500.url]) {
      const refused = await new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri: base, env, logger, configDir: f.cwd }).uploadFile(f.metrics);
      captured.push(JSON.stringify(refused), ...errorTexts(refused.error));
      captured.push(...errorTexts(await startRun({ trackingUri: base, env, logger, activate: false }).catch((e: unknown) => e)));
      const { out } = await cli(['training', f.checkpoint, '--tracking-uri', base, '--run-id', run.runId, '--json', '--verbose'], env, f.cwd);
      captured.push(out);
    }
    await endRun('FINISHED', { run });
    captured.push(...logger.lines);
    // The file's credentials were sent (the echo shows them masked) and never shown.
    expect(captured.join('\n')).toMatch(/authorization=Basic \*\*\*/);
    expectNoLeak(c, captured);
  });

  it('a password in an object-store endpoint URL (MLFLOW_S3_ENDPOINT_URL) is masked in the CLI\'s output and in errors', async () => {
    const secret = `cnryendpoint${randomBytes(12).toString('hex')}`;
    const f = await fixtures();
    const { url } = mlflowDirectS3Server();
    const { runId } = await serverRun(url);
    const env = {
      ...servers().awsEnv,
      MLFLOW_S3_ENDPOINT_URL: `http://ci-bot:${secret}@127.0.0.1:1`,
      MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0',
    };
    // The AWS SDK's default credential chain reads the process's own environment.
    for (const [name, value] of Object.entries(servers().awsEnv)) vi.stubEnv(name, value);
    try {
      const captured: string[] = [];
      for (const extra of [[], ['--json'], ['--verbose']]) {
        const { code, out } = await cli(['--tracking-uri', url, '--run-id', runId, ...extra, 'file', '--stage', 'training', f.metrics], env, f.cwd);
        expect(code, out).not.toBe(0);
        expect(out).toMatch(/could not reach http:\/\/\*\*\*@127\.0\.0\.1:1/);
        captured.push(out);
      }
      const uploader = new ArtifactUploader({ stage: 'training', runId, trackingUri: url, env: { ...env, PATH: process.env.PATH ?? '' } });
      const result = await uploader.uploadFile(f.metrics);
      expect(result.status).toBe('failed');
      captured.push(result.error!.message, JSON.stringify(result.error), JSON.stringify(result));
      for (const text of captured) expect(text).not.toContain(secret);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('a presigned part URL echoed back in an S3 error body (XML, `&amp;` between the parameters) is masked', async () => {
    // The parts go to presigned URLs the real server signs (MLflow over moto); a store of the
    // test's own answers them as S3 answers a signature it does not accept: its
    // SignatureDoesNotMatch body quotes the canonical request, whose query string (the URL's,
    // without X-Amz-Signature) is XML-escaped, and the signature as <SignatureProvided>.
    const xml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;');
    const echoed: Array<{ credential: string; signature: string }> = [];
    const s3Like = await startTestServer((req, res) => {
      const url = new URL(req.url, 'http://s3.local');
      const signature = url.searchParams.get('X-Amz-Signature') ?? '';
      echoed.push({ credential: url.searchParams.get('X-Amz-Credential') ?? '', signature });
      url.searchParams.delete('X-Amz-Signature');
      url.searchParams.sort();
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. Check your key and signing method.</Message>` +
          `<SignatureProvided>${signature}</SignatureProvided><CanonicalRequest>PUT\n${xml(url.pathname)}\n${xml(url.search.slice(1))}\nhost:${req.headers.host}\n\nhost\nUNSIGNED-PAYLOAD</CanonicalRequest><RequestId>4442587FB7D0A2F9</RequestId></Error>`,
      );
    });
    try {
      const f = await fixtures();
      const logger = captureLogger();
      const s3 = mlflowS3Server();
      const { runId } = await serverRun(s3.url);
      const big = join(f.cwd, 'big.bin');
      writeFileSync(big, randomBytes(2 * 64 * 1024));
      const uploader = new ArtifactUploader({
        stage: 'training',
        runId,
        trackingUri: s3.url,
        env: {},
        logger,
        retry: { maxRetries: 0, backoffFactor: 0, backoffJitter: 0 },
        configDir: f.cwd,
        multipart: { thresholdBytes: 64 * 1024, chunkBytes: 64 * 1024, rewritePartUrl: (u) => u.replace(s3.s3Endpoint, s3Like.url) },
      });
      const result = await uploader.uploadFile(big);
      await uploader.close();
      expect(result.status).toBe('failed');
      expect(result.error).toMatchObject({ status: 403, body: expect.stringMatching(/<SignatureProvided>\*\*\*<\/SignatureProvided><CanonicalRequest>PUT\n[^\n]+\nX-Amz-Algorithm=AWS4-HMAC-SHA256&amp;X-Amz-Credential=\*\*\*&amp;X-Amz-Date=/) });
      expect(echoed.length).toBeGreaterThan(0);
      const captured = [JSON.stringify(result), ...errorTexts(result.error), ...logger.lines];
      for (const { credential, signature } of echoed) {
        expect(credential).toMatch(/^testing\/\d{8}\//);
        expect(signature).toMatch(/^[0-9a-f]{64}$/);
        for (const text of captured) {
          // As sent (percent-encoded) and as XML-escaped text shows it.
          expect(text).not.toContain(encodeURIComponent(credential));
          expect(text).not.toContain(signature);
        }
      }
    } finally {
      await s3Like.close();
    }
  });

  it('CLI: every command, --json and --verbose, success and failure', async () => {
    const c = newCanaries();
    const captured: string[] = [];
    const f = await fixtures();
    const h = await hubFor(c);
    const plain = mlflowServer();
    const env = {
      MLFLOW_TRACKING_TOKEN: c.token,
      MLFLOW_TRACKING_USERNAME: 'ci-bot',
      MLFLOW_TRACKING_PASSWORD: c.password,
      HF_TOKEN: c.hfToken,
      MLFLOW_HTTP_REQUEST_MAX_RETRIES: '1',
      MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: '0',
      MLFLOW_HTTP_REQUEST_BACKOFF_JITTER: '0',
    };
    const run = async (argv: string[], expectOk: boolean) => {
      const { code, out } = await cli(argv, env, f.cwd);
      captured.push(out);
      if (expectOk) expect(code, out).toBe(0);
      else expect(code, out).not.toBe(0);
      return out;
    };

    const good = ['--tracking-uri', withUserinfo(plain.url, c.uriPassword), '--json', '--verbose'];
    const started = await run(['runs', 'start', '--experiment-name', 'secrets-cli', ...good], true);
    const runId = (JSON.parse(started.slice(started.indexOf('{'), started.lastIndexOf('}') + 1)) as { runId: string }).runId;
    expect(runId).toMatch(/^[0-9a-f]{32}$/);
    const withRun = [...good, '--run-id', runId];
    await run(['training', f.checkpoint, '--metrics', f.metrics, ...withRun], true);
    await run(['conversion', f.onnx, ...withRun], true);
    await run(['benchmark', f.results, ...withRun], true);
    await run(['hpo', '--checkpoint-dir', f.checkpoint, ...withRun], true);
    await run(['file', '--stage', 'training', f.metrics, '--artifact-path', 'extra', ...withRun], true);
    await run(['dir', '--stage', 'training', f.checkpoint, '--artifact-path', 'extra-dir', ...withRun], true);
    await run(['archive', f.checkpoint, '-o', join(f.cwd, 'ckpt.tar.gz'), '--json', '--verbose'], true);
    await run(['validate', f.mlx, '--json', '--verbose'], true);
    await run(['convert-peft', f.mlx, '-o', join(f.cwd, 'peft'), '--json', '--verbose'], true);
    await run(['publish', '--model-dir', f.mlx, '--repo-id', 'tester/secrets-cli', '--hub-url', h.url, ...withRun], true);
    await run(['runs', 'end', '--status', 'FINISHED', ...withRun], true);
    // The manifests: the one written locally and the one uploaded beside the HPO archive.
    const manifest = readFileSync(join(f.cwd, 'ckpt.manifest.json'), 'utf8');
    expect(JSON.parse(manifest)).toMatchObject({ manifestVersion: 1, fileCount: 2 });
    captured.push(manifest);
    const listing = (await (await fetch(`${plain.url}/api/2.0/mlflow/artifacts/list?run_id=${runId}`)).json()) as { root_uri: string; files: Array<{ path: string }> };
    const uploadedManifest = listing.files.find((file) => file.path.endsWith('.manifest.json'));
    expect(uploadedManifest, JSON.stringify(listing)).toBeDefined();
    const root = listing.root_uri.replace(/^mlflow-artifacts:\//, '');
    captured.push(await (await fetch(`${plain.url}/api/2.0/mlflow-artifacts/artifacts/${root}/${uploadedManifest!.path}`)).text());

    for (const base of [echo403.url, echo500.url, 'http://127.0.0.1:1']) {
      const bad = ['--tracking-uri', withUserinfo(base, c.uriPassword), '--json', '--verbose'];
      const badRun = [...bad, '--run-id', runId];
      await run(['runs', 'start', ...bad], false);
      await run(['training', f.checkpoint, '--metrics', f.metrics, ...badRun], false);
      await run(['conversion', f.onnx, ...badRun], false);
      await run(['benchmark', f.results, ...badRun], false);
      await run(['hpo', '--checkpoint-dir', f.checkpoint, ...badRun], false);
      await run(['file', '--stage', 'training', f.metrics, ...badRun], false);
      await run(['dir', '--stage', 'training', f.checkpoint, ...badRun], false);
      await run(['runs', 'end', ...badRun], false);
      await run(['publish', '--model-dir', f.fused, '--repo-id', 'tester/x', '--hub-url', base, '--json', '--verbose'], false);
    }
    // Usage errors with secrets on the command line, a bad Hub token, an invalid tracking URI.
    await run(['training', f.checkpoint, '--tracking-uri', withUserinfo(plain.url, c.uriPassword), '--concurrency', 'lots', '--json'], false);
    await run(['training', '--tracking-uri', withUserinfo(plain.url, c.uriPassword), '--bogus', '--json'], false);
    await run(['training', f.checkpoint, '--tracking-uri', `ftp://ci-bot:${c.uriPassword}@example.com/`, '--run-id', runId, '--json', '--verbose'], false);
    await run(['training', f.checkpoint, '--tracking-uri', `http://ci-bot:${c.uriPassword}@[bad`, '--run-id', runId, '--json', '--verbose'], false);
    const { out } = await cli(['publish', '--model-dir', f.fused, '--repo-id', 'tester/x', '--hub-url', h.url, '--json', '--verbose'], { ...env, HF_TOKEN: 'hf_notTheRightTokenAtAll0' }, f.cwd);
    captured.push(out);

    // The echoing servers did get the credentials back into error messages, masked.
    expect(captured.join('\n')).toMatch(/authorization=Basic \*\*\*/);

    expectNoLeak(c, captured);
  });
});
