/**
 * The upload commands in-process: into ./mlruns (no server) and into a real MLflow server,
 * through a fault proxy where requests must be counted or refused. Exit codes for every class
 * (0 uploaded or skipped, 1 failed after retries, 2 usage), `--json`, `--dry-run` without a
 * single request, progress on stderr, and no secrets or stack traces in the output.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { createTrackingClient } from '../../src/mlflow/tracking-client.js';
import type { TrackingClient } from '../../src/mlflow/tracking-types.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { startTestServer } from '../support/http-test-server.js';
import { describeWithServers, mlflowServer } from '../support/servers.js';
import { baseEnv, cli, tempDir } from './helpers.js';

/** A small pipeline output: checkpoint dir, metrics, an ONNX file, benchmark results. */
function workspace(): string {
  const cwd = tempDir();
  mkdirSync(join(cwd, 'ckpt', 'sub'), { recursive: true });
  writeFileSync(join(cwd, 'ckpt', 'model.safetensors'), Buffer.alloc(6000, 3));
  writeFileSync(join(cwd, 'ckpt', 'sub', 'state.json'), '{"step": 10}');
  writeFileSync(join(cwd, 'ckpt', 'scratch.tmp'), 'x');
  writeFileSync(join(cwd, 'metrics.json'), '{"loss": 0.5}');
  writeFileSync(join(cwd, 'model.onnx'), Buffer.from('onnx-like bytes'));
  mkdirSync(join(cwd, 'bench'));
  writeFileSync(join(cwd, 'bench', 'results.json'), '{"acc": 0.9}');
  writeFileSync(join(cwd, 'bench', 'results.csv'), 'task,acc\na,0.9\n');
  return cwd;
}

/** Every artifact file of a run, through the tracking API. */
async function listAll(client: TrackingClient, runId: string, path?: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of (await client.listArtifacts(runId, path)).files) {
    if (entry.isDir) out.push(...(await listAll(client, runId, entry.path)));
    else out.push(entry.path);
  }
  return out.sort();
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

async function localRun(cwd: string): Promise<{ runId: string; env: Record<string, string | undefined> }> {
  const start = await cli(['runs', 'start'], { cwd });
  expect(start.code).toBe(0);
  const runId = start.stdout.trim();
  return { runId, env: baseEnv({ MLFLOW_RUN_ID: runId }) };
}

describe('upload commands on ./mlruns', () => {
  it('training uploads the checkpoint (skip list applied) and the metrics into the FileStore layout', async () => {
    const cwd = workspace();
    const { runId, env } = await localRun(cwd);
    const run = await cli(['training', 'ckpt', '--metrics', 'metrics.json'], { cwd, env });
    expect(run.code).toBe(0);
    const artifacts = join(cwd, 'mlruns', '0', runId, 'artifacts');
    expect(sha256(join(artifacts, 'checkpoint', 'model.safetensors'))).toBe(sha256(join(cwd, 'ckpt', 'model.safetensors')));
    expect(readFileSync(join(artifacts, 'checkpoint', 'sub', 'state.json'), 'utf8')).toBe('{"step": 10}');
    expect(readFileSync(join(artifacts, 'metrics', 'metrics.json'), 'utf8')).toBe('{"loss": 0.5}');
    expect(run.stdout).toMatch(/training checkpoint: uploaded 2 file\(s\)/);
    expect(run.stdout).toMatch(/scratch\.tmp\s+default skip list/);
    expect(run.stdout).toContain(`-> file://${artifacts}/checkpoint`);
    // Not a TTY: plain progress lines, ending complete.
    expect(run.stderr).toMatch(/\[artifact-uploader\] uploading: 100% .* 2\/2 files/);
  });

  it('hpo shows the archiving step too: bytes read into the archive, then the upload', async () => {
    const cwd = workspace();
    const { env } = await localRun(cwd);
    const run = await cli(['hpo', '--checkpoint-dir', 'ckpt'], { cwd, env });
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stderr.split('\n').filter((l) => l.startsWith('[artifact-uploader]'));
    const archiving = lines.findIndex((l) => /archiving: 100% .* 2\/2 files/.test(l));
    const uploading = lines.findIndex((l) => /uploading: 100%/.test(l));
    expect(archiving, run.stderr).toBeGreaterThanOrEqual(0);
    expect(uploading, run.stderr).toBeGreaterThan(archiving);
  });

  it('--json: one document with every UploadResult; conversion, benchmark, hpo, file and dir', async () => {
    const cwd = workspace();
    const { runId, env } = await localRun(cwd);
    const conversion = (await cli(['conversion', 'model.onnx', '--json'], { cwd, env })).json();
    expect(conversion).toMatchObject({ ok: true, command: 'conversion', exitCode: 0, status: 'uploaded', runId });
    expect(conversion.results).toHaveLength(1);
    expect(conversion.results[0]).toMatchObject({ status: 'uploaded', kind: 'onnxModel', artifactPath: 'onnx' });

    const bench = await cli(['benchmark', 'bench/results.json', 'bench/results.csv', '--json'], { cwd, env });
    expect(bench.stderr).toBe('');
    expect(bench.json().results.map((r: { status: string }) => r.status)).toEqual(['uploaded', 'uploaded']);

    const hpo = (await cli(['hpo', '--checkpoint-dir', 'ckpt', '--json'], { cwd, env })).json();
    expect(hpo.results[0]).toMatchObject({ status: 'uploaded', kind: 'bestTrialArchive', verification: { status: 'verified' } });

    expect((await cli(['file', '--stage', 'training', 'metrics.json', '--artifact-path', 'extra', '--json'], { cwd, env })).json().status).toBe('uploaded');
    const dir = (await cli(['dir', '--stage', 'benchmark', 'bench', '--exclude', '*.csv', '--artifact-path', 'bench2', '--json'], { cwd, env })).json();
    expect(dir.results[0].skippedFiles).toEqual([{ path: 'results.csv', reason: 'excluded by "*.csv"' }]);

    const artifacts = join(cwd, 'mlruns', '0', runId, 'artifacts');
    const store = createTrackingClient({ trackingUri: `file:${join(cwd, 'mlruns')}`, env: {} });
    const listing = await store.listArtifacts(runId);
    expect(listing.files.map((f) => f.path).sort()).toEqual(['bench2', 'benchmark', 'best_trial_checkpoint.manifest.json', 'best_trial_checkpoint.tar.gz', 'extra', 'onnx']);
    expect(readFileSync(join(artifacts, 'bench2', 'results.json'), 'utf8')).toBe('{"acc": 0.9}');
  });

  it('skips as configured with exit 0: no run, a disabled kind, MLFLOW_SKIP_ARTIFACT_LOGGING', async () => {
    const cwd = workspace();
    const noRun = await cli(['training', 'ckpt', '--json'], { cwd });
    expect(noRun.code).toBe(0);
    expect(noRun.json()).toMatchObject({ ok: true, status: 'skipped', results: [{ status: 'skipped', reason: 'no-run' }] });
    // The warning says what to do in CLI terms, not the library's startRun().
    expect(noRun.stderr).toContain('Pass --run-id, set MLFLOW_RUN_ID, or start one first with `artifact-uploader runs start`.');
    expect(noRun.stderr).not.toMatch(/startRun\(\)|withRun/);
    // And in --json, for a pipeline that reads only stdout.
    expect(noRun.json().warnings).toEqual([expect.stringContaining('Pass --run-id, set MLFLOW_RUN_ID, or start one first with `artifact-uploader runs start`.')]);

    const { env } = await localRun(cwd);
    mkdirSync(join(cwd, 'conf'));
    writeFileSync(join(cwd, 'conf', 'artifact-uploader.yaml'), 'training:\n  metrics:\n    enabled: false\n');
    const disabled = await cli(['training', 'ckpt', '--metrics', 'metrics.json', '--config-dir', 'conf'], { cwd, env });
    expect(disabled.code).toBe(0);
    expect(disabled.stdout).toContain('training metrics: skipped: disabled in the tracking config (training.metrics.enabled)');
    expect(disabled.stdout).toContain('training checkpoint: uploaded');

    const off = await cli(['conversion', 'model.onnx'], { cwd, env: { ...env, MLFLOW_SKIP_ARTIFACT_LOGGING: 'true' } });
    expect(off.code).toBe(0);
    expect(off.stdout).toContain('skipped: MLFLOW_SKIP_ARTIFACT_LOGGING is set');
  });

  it('--json names the run in every result when --run-id gives it: failed before the run lookup, and skipped', async () => {
    const cwd = workspace();
    await localRun(cwd); // ./mlruns exists, without this run
    const runId = 'd'.repeat(32);
    const failed = await cli(['training', 'ckpt', '--metrics', 'metrics.json', '--run-id', runId, '--json'], { cwd });
    expect(failed.code).toBe(EXIT_CODES.USAGE);
    expect(failed.json(), failed.stderr).toMatchObject({
      status: 'failed',
      runId,
      results: [
        { status: 'failed', reason: 'run-unavailable', runId },
        { status: 'failed', reason: 'run-unavailable', runId },
      ],
    });
    const off = await cli(['conversion', 'model.onnx', '--run-id', runId, '--json'], { cwd, env: baseEnv({ MLFLOW_SKIP_ARTIFACT_LOGGING: 'true' }) });
    expect(off.json(), off.stderr).toMatchObject({ status: 'skipped', runId, results: [{ status: 'skipped', reason: 'disabled-by-env', runId }] });
  });

  it('a checkpoint directory with nothing to upload is exit 0 (skipped, empty), with a warning naming it on stderr and in --json', async () => {
    const cwd = workspace();
    const { env } = await localRun(cwd);
    mkdirSync(join(cwd, 'empty'));
    mkdirSync(join(cwd, 'only-skipped'));
    writeFileSync(join(cwd, 'only-skipped', '.DS_Store'), 'x');
    const tail = 'The command exits 0, as for any skipped upload (reason "empty"); if a step was to write files there, it did not.';
    const empty = await cli(['training', 'empty'], { cwd, env });
    expect(empty.code).toBe(EXIT_CODES.OK);
    expect(empty.stdout).toContain('training checkpoint: skipped: nothing to upload');
    expect(empty.stderr).toBe(`[artifact-uploader] warn: training checkpoint: nothing was uploaded from ${join(cwd, 'empty')}: it is empty. ${tail}\n`);

    const skipped = await cli(['training', 'only-skipped', '--json'], { cwd, env });
    expect(skipped.code).toBe(EXIT_CODES.OK);
    const warning = `training checkpoint: nothing was uploaded from ${join(cwd, 'only-skipped')}: every file in it was left out (.DS_Store). ${tail}`;
    expect(skipped.json()).toMatchObject({ ok: true, status: 'skipped', results: [{ status: 'skipped', reason: 'empty' }], warnings: [warning] });
    expect(skipped.stderr).toContain(warning);
    // The same for `dir` and `hpo --checkpoint-dir`; an upload that sent files has no warning.
    expect((await cli(['dir', '--stage', 'training', 'empty', '--json'], { cwd, env })).json().warnings).toEqual([expect.stringContaining(`dir (artifact root): nothing was uploaded from ${join(cwd, 'empty')}`)]);
    expect((await cli(['hpo', '--checkpoint-dir', 'empty', '--json'], { cwd, env })).json().warnings).toEqual([expect.stringContaining('hpo bestTrialArchive: nothing was uploaded from')]);
    const uploaded = await cli(['training', 'ckpt', '--json'], { cwd, env });
    expect(uploaded.json()).toMatchObject({ status: 'uploaded', warnings: [] });
    expect(uploaded.stderr).toBe('');
  });

  it('--dry-run prints the plan (sizes, destinations, what is left out) and writes nothing', async () => {
    const cwd = workspace();
    const { runId, env } = await localRun(cwd);
    const run = await cli(['--dry-run', 'training', 'ckpt', '--metrics', 'metrics.json'], { cwd, env });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Dry run: nothing was uploaded/);
    expect(run.stdout).toMatch(/5\.9 KiB\s+checkpoint\/model\.safetensors\s+<- .*ckpt\/model\.safetensors/);
    expect(run.stdout).toMatch(/scratch\.tmp\s+default skip list/);
    const json = (await cli(['training', 'ckpt', '--dry-run', '--json'], { cwd, env })).json();
    expect(json).toMatchObject({ ok: true, dryRun: true, status: 'skipped', results: [{ reason: 'dry-run' }] });
    expect(json.results[0].files.map((f: { status: string }) => f.status)).toEqual(['planned', 'planned']);
    const listing = await createTrackingClient({ trackingUri: `file:${join(cwd, 'mlruns')}`, env: {} }).listArtifacts(runId);
    expect(listing.files).toEqual([]);
  });

  it('usage errors exit 2 with the message and hint, no stack: --stage missing or contradicting, hpo options, bad paths, bad --kind', async () => {
    const cwd = workspace();
    const { env } = await localRun(cwd);
    const cases: Array<[string[], RegExp]> = [
      [['file', 'metrics.json'], /needs --stage/],
      [['--stage', 'hpo', 'training', 'ckpt'], /contradicts the `training` command/],
      [['hpo'], /exactly one of --checkpoint-dir/],
      [['hpo', '--checkpoint-dir', 'ckpt', '--manifest', 'm.json'], /--manifest goes with --archive/],
      [['hpo', '--archive', 'metrics.json', '--level', '9'], /--level goes with --checkpoint-dir/],
      [['training', 'missing-dir'], /PATH_NOT_FOUND|NOT_A_DIRECTORY/],
      [['conversion', 'ckpt'], /NOT_A_FILE/],
      [['dir', '--stage', 'training', 'ckpt', '--kind', 'nonsense'], /nonsense/],
    ];
    for (const [argv, message] of cases) {
      const run = await cli(argv, { cwd, env });
      expect(run.code, argv.join(' ')).toBe(EXIT_CODES.USAGE);
      expect(run.stderr, argv.join(' ')).toMatch(message);
      expect(run.stderr, argv.join(' ')).not.toMatch(/\n\s+at /);
      expect(run.stdout, argv.join(' ')).toBe('');
    }
  });

  it('draws a progress bar on a TTY, and nothing with --quiet', async () => {
    const cwd = workspace();
    const { env } = await localRun(cwd);
    const tty = await cli(['training', 'ckpt'], { cwd, env, isTTY: true });
    expect(tty.code).toBe(0);
    expect(tty.stderr).toMatch(/uploading \[[█░]+\] 100% \| 5\.9 KiB\/5\.9 KiB \| 2\/2 files/);
    const quiet = await cli(['training', 'ckpt', '--quiet'], { cwd, env, isTTY: true });
    expect(quiet).toMatchObject({ code: 0, stdout: '', stderr: '' });
  });
});

describeWithServers('upload commands on a real MLflow server', () => {
  const proxies: FaultProxy[] = [];
  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.stop()));
  });
  async function proxy(): Promise<FaultProxy> {
    const p = await startFaultProxy(mlflowServer().url);
    proxies.push(p);
    return p;
  }
  /** Fast retries and the server's URI; nothing of the developer's. */
  const serverEnv = (extra: Record<string, string> = {}) =>
    baseEnv({ MLFLOW_TRACKING_URI: mlflowServer().url, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: '0', MLFLOW_HTTP_REQUEST_BACKOFF_JITTER: '0', ...extra });

  it('a run the server does not have: the hint names where the tracking URI came from (--tracking-uri, else MLFLOW_TRACKING_URI)', async () => {
    // It named MLFLOW_TRACKING_URI whatever the source: a caller who gave --tracking-uri (and
    // perhaps has a stale MLFLOW_TRACKING_URI set) was sent to check the wrong setting.
    const cwd = workspace();
    const missing = '0'.repeat(32);
    const hintOf = async (argv: string[], env: Record<string, string | undefined>) => {
      const run = await cli(['--json', ...argv, 'benchmark', 'bench/results.json', '--run-id', missing], { cwd, env });
      expect(run.code, run.stderr).toBe(EXIT_CODES.USAGE);
      const doc = run.json() as { error?: { hint: string }; results?: Array<{ error?: { hint: string } }> };
      const error = doc.error ?? doc.results?.find((r) => r.error)?.error;
      expect(run.stderr).toContain(error?.hint);
      return error?.hint;
    };
    const fromFlag = await hintOf(['--tracking-uri', mlflowServer().url], serverEnv({ MLFLOW_TRACKING_URI: 'http://127.0.0.1:9' }));
    expect(fromFlag).toMatch(/^The run id does not exist on the server at http:\/\/127\.0\.0\.1:\d+\. Check that --run-id \/ MLFLOW_RUN_ID and --tracking-uri point to the same server\.$/);
    const fromEnv = await hintOf([], serverEnv());
    expect(fromEnv).toMatch(/ Check that --run-id \/ MLFLOW_RUN_ID and MLFLOW_TRACKING_URI \(no --tracking-uri given\) point to the same server\.$/);
  });

  it('runs start on the server, every stage uploads, runs end', async () => {
    const cwd = workspace();
    const start = await cli(['runs', 'start', '--experiment-name', 'cli-tests'], { cwd, env: serverEnv() });
    expect(start.code).toBe(0);
    const runId = start.stdout.trim();
    const env = serverEnv({ MLFLOW_RUN_ID: runId });
    for (const argv of [['training', 'ckpt', '--metrics', 'metrics.json'], ['conversion', 'model.onnx'], ['benchmark', 'bench/results.json'], ['hpo', '--checkpoint-dir', 'ckpt']]) {
      const run = await cli(argv, { cwd, env });
      expect(run.code, `${argv.join(' ')}\n${run.stderr}`).toBe(0);
    }
    const end = await cli(['runs', 'end'], { cwd, env });
    expect(end.code).toBe(0);
    const client = createTrackingClient({ trackingUri: mlflowServer().url, env: {} });
    expect((await client.getRun(runId)).info.status).toBe('FINISHED');

    // (The bytes themselves are cross-checked with MLflow's Python client in test/stores and test/cli/demo.test.ts.)
    const sizes = (await client.listArtifacts(runId, 'checkpoint')).files.map((f) => [f.path, f.fileSize]);
    expect(sizes).toEqual([
      ['checkpoint/model.safetensors', 6000],
      ['checkpoint/sub', undefined],
    ]);
    expect(await listAll(client, runId)).toEqual([
      'benchmark/results.json',
      'best_trial_checkpoint.manifest.json',
      'best_trial_checkpoint.tar.gz',
      'checkpoint/model.safetensors',
      'checkpoint/sub/state.json',
      'metrics/metrics.json',
      'onnx/model.onnx',
    ]);
  });

  it('--dry-run sends no request at all, even with a run id and a server', async () => {
    const cwd = workspace();
    const p = await proxy();
    const env = serverEnv({ MLFLOW_TRACKING_URI: p.url, MLFLOW_RUN_ID: 'a'.repeat(32) });
    for (const argv of [['training', 'ckpt', '--metrics', 'metrics.json'], ['hpo', '--checkpoint-dir', 'ckpt'], ['benchmark', 'bench/results.json'], ['dir', '--stage', 'training', 'ckpt']]) {
      const run = await cli(['--dry-run', ...argv], { cwd, env });
      expect(run.code, argv.join(' ')).toBe(0);
      expect(run.stdout).toMatch(/^Dry run/);
    }
    expect(p.requests).toEqual([]);
  });

  it('an upload that keeps failing exits 1 after the configured retries, with the error and no stack', async () => {
    const cwd = workspace();
    const start = await cli(['runs', 'start'], { cwd, env: serverEnv() });
    const p = await proxy();
    p.addRule({ match: (r) => r.method === 'PUT' && r.path.includes('mlflow-artifacts'), fault: 'status', status: 503 });
    const env = serverEnv({ MLFLOW_TRACKING_URI: p.url, MLFLOW_RUN_ID: start.stdout.trim(), MLFLOW_HTTP_REQUEST_MAX_RETRIES: '1' });
    const run = await cli(['conversion', 'model.onnx', '--json'], { cwd, env });
    expect(run.code).toBe(EXIT_CODES.FAILED);
    const doc = run.json();
    expect(doc).toMatchObject({ ok: false, exitCode: 1, status: 'failed', results: [{ status: 'failed' }] });
    expect(doc.results[0].error.code).toBeTruthy();
    expect(p.requests.filter((r) => r.method === 'PUT')).toHaveLength(2); // first attempt + 1 retry
    expect(run.stderr).toMatch(/error \[[A-Z_]+\]: .*503/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('an unreachable server is exit 1; a run id that does not exist is exit 2', async () => {
    const cwd = workspace();
    const p = await proxy();
    await p.stop();
    const down = await cli(['conversion', 'model.onnx'], { cwd, env: serverEnv({ MLFLOW_TRACKING_URI: p.url, MLFLOW_RUN_ID: 'b'.repeat(32), MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0' }) });
    expect(down.code).toBe(EXIT_CODES.FAILED);
    expect(down.stderr).toMatch(/error \[/);
    // A run that does not exist will not appear by retrying: a config error.
    const missing = await cli(['conversion', 'model.onnx'], { cwd, env: serverEnv({ MLFLOW_RUN_ID: 'c'.repeat(32) }) });
    expect(missing.code).toBe(EXIT_CODES.USAGE);
    expect(missing.stderr).toMatch(/c{32}/);
    expect(missing.stderr).not.toMatch(/\n\s+at /);
  });

  it('never prints credentials: userinfo in the tracking URI and MLFLOW_TRACKING_PASSWORD are masked', async () => {
    const cwd = workspace();
    const secret = 'hunter2-very-secret';
    const url = new URL(mlflowServer().url);
    const withUserinfo = `http://alice:${secret}@${url.host}`;
    const env = serverEnv({ MLFLOW_TRACKING_URI: withUserinfo, MLFLOW_TRACKING_PASSWORD: secret, MLFLOW_TRACKING_USERNAME: 'alice', MLFLOW_RUN_ID: 'd'.repeat(32) });
    for (const argv of [['conversion', 'model.onnx', '--verbose'], ['conversion', 'model.onnx', '--json'], ['runs', 'start', '--verbose']]) {
      const run = await cli(argv, { cwd, env });
      expect(`${run.stdout}${run.stderr}`, argv.join(' ')).not.toContain(secret);
    }
  });
});

// Last in the file: the CLI registers the secrets of its environment for the rest of the process.
describe('--json is valid JSON whatever is masked in it', () => {
  const servers: Array<{ close(): Promise<void> }> = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });
  async function answering(handler: Parameters<typeof startTestServer>[0]): Promise<string> {
    const server = await startTestServer(handler);
    servers.push(server);
    return server.url;
  }

  it('a secret that is a run of digits leaves numbers whole and is masked in strings', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'f.bin'), Buffer.alloc(12345));
    const runId = '0123456789abcdef0123456789abcdef';
    const run = await cli(['--dry-run', '--json', 'file', '--stage', 'training', 'f.bin', '--run-id', runId], { cwd, env: baseEnv({ MLFLOW_TRACKING_PASSWORD: '2345' }) });
    expect(run.code, run.stderr).toBe(0);
    const json = run.json();
    expect(json.results[0].files[0].size).toBe(12345);
    expect(json.results[0].metrics).toMatchObject({ bytesPlanned: 12345, bytesSkipped: 12345 });
    // A string is text a secret can hide in: the run id keeps the password masked.
    expect(json.runId).toBe('01***6789abcdef01***6789abcdef');
  });

  it('names differing only in letter case: uploaded as given, with a warning on stderr and in --json warnings', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'ckpt'));
    writeFileSync(join(cwd, 'ckpt', 'Model.bin'), 'A');
    writeFileSync(join(cwd, 'ckpt', 'model.bin'), 'a');
    const run = await cli(['--dry-run', '--json', 'dir', '--stage', 'training', 'ckpt', '--run-id', '0123456789abcdef0123456789abcdef'], { cwd, env: baseEnv() });
    expect(run.code, run.stderr).toBe(0);
    const json = run.json();
    expect(json.results[0].files.map((f: { artifactPath: string }) => f.artifactPath).sort()).toEqual(['Model.bin', 'model.bin']);
    expect(json.warnings).toEqual([expect.stringContaining('"Model.bin" and "model.bin" differ only in letter case')]);
    expect(run.stderr).toContain('"Model.bin" and "model.bin" differ only in letter case');
  });

  it("an Authorization value in a server's JSON error body is masked without taking the backslash of its closing quote", async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'f.bin'), 'x');
    const body = JSON.stringify({ error_code: 'BAD_REQUEST', message: 'rejected header Authorization: Bearer abc123' });
    const url = await answering((_req, res) => {
      res.writeHead(400, { 'content-type': 'application/json' }).end(body);
    });
    const run = await cli(['file', '--stage', 'training', 'f.bin', '--tracking-uri', url, '--run-id', 'e'.repeat(32), '--json'], { cwd, env: baseEnv() });
    expect(run.code, run.stderr).toBe(EXIT_CODES.USAGE);
    const json = run.json();
    expect(JSON.stringify(json)).not.toContain('abc123');
    const error = json.error ?? json.results?.[0]?.error;
    expect(JSON.parse(error.body)).toEqual({ error_code: 'BAD_REQUEST', message: 'rejected header Authorization: Bearer ***' });
    expect(run.stderr).toContain('Authorization: Bearer ***');
    expect(run.stderr).not.toContain('abc123');
  });

  it('the container of a wasbs:// artifact URI is shown, in the summary, --json and the error; the account key is not', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'f.bin'), Buffer.alloc(100));
    const { runId, env } = await localRun(cwd);
    const artifactUri = `wasbs://ml-artifacts@devstoreaccount1.blob.core.windows.net/mlflow/0/${runId}/artifacts`;
    const meta = join(cwd, 'mlruns', '0', runId, 'meta.yaml');
    writeFileSync(meta, readFileSync(meta, 'utf8').replace(/^artifact_uri: .*$/m, `artifact_uri: ${artifactUri}`));
    // The storage account refuses the key: the upload fails with the blob's URI in the error.
    const blob = await answering((_req, res) => {
      res
        .writeHead(403, { 'content-type': 'application/xml', 'x-ms-error-code': 'AuthorizationFailure' })
        .end('<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationFailure</Code><Message>This request is not authorized.</Message></Error>');
    });
    const accountKey = randomBytes(32).toString('base64');
    const azureEnv = { ...env, AZURE_STORAGE_CONNECTION_STRING: `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${accountKey};BlobEndpoint=${blob}/devstoreaccount1;` };

    const text = await cli(['file', '--stage', 'training', 'f.bin'], { cwd, env: azureEnv });
    expect(text.code, text.stderr).toBe(EXIT_CODES.USAGE);
    expect(text.stdout).toContain(`Azure Put Blob of ${artifactUri}/f.bin failed: 403`);
    const json = await cli(['file', '--stage', 'training', 'f.bin', '--json'], { cwd, env: azureEnv });
    const result = json.json().results[0];
    expect(result.artifactUri).toBe(artifactUri);
    expect(result.error.url).toBe(`${artifactUri}/f.bin`);
    const joined = await cli(['runs', 'start', '--run-id', runId, '--json'], { cwd, env: azureEnv });
    expect(joined.json().artifactUri).toBe(artifactUri);
    for (const run of [text, json, joined]) expect(`${run.stdout}${run.stderr}`).not.toContain(accountKey);
  });
});
