/**
 * `artifact-uploader publish` against the local fake Hub: model directory resolution (explicit,
 * newest timestamped, from the config file), the MLflow run tagged with the commit, dry runs
 * without a request, exit 3 for an invalid model, 2 for usage, 1 when the Hub keeps failing,
 * and the token never printed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { HUB_RUN_TAGS } from '../../src/hub/publish.js';
import { FileTrackingStore } from '../../src/mlflow/file-store.js';
import { startFakeHub, type FakeHub } from '../support/fake-hub/index.js';
import { writeFusedDir, writeMlxLoraDir, writePeftDir } from '../model/fixtures.js';
import { baseEnv, cli, tempDir } from './helpers.js';

let hub: FakeHub;
let counter = 0;
const newRepo = () => `tester/cli-model-${++counter}-${Date.now().toString(36)}`;

beforeAll(async () => {
  hub = await startFakeHub();
});
afterAll(async () => {
  await hub.stop();
});

const hubEnv = (extra: Record<string, string> = {}) =>
  baseEnv({ HF_TOKEN: hub.token, HF_ENDPOINT: hub.url, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: '0', MLFLOW_HTTP_REQUEST_BACKOFF_JITTER: '0', ...extra });

describe('publish', () => {
  it('publishes an MLX adapter (converted to PEFT) from --model-dir and prints the commit', async () => {
    const cwd = tempDir();
    writeMlxLoraDir(cwd, 'lora_20240501_093000');
    const repo = newRepo();
    const run = await cli(['publish', '--model-dir', 'lora_20240501_093000', '--repo-id', repo, '--base-model', 'example-org/tiny-llama'], { cwd, env: hubEnv() });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`Published LoRA adapter (mlx, converted to PEFT) ${join(cwd, 'lora_20240501_093000')} to ${hub.url}/${repo}`);
    expect(run.stdout).toMatch(/commit: .*\/commit\/[0-9a-f]{40}/);
    expect(hub.files(repo)).toEqual(expect.arrayContaining(['README.md', 'adapter_config.json', 'adapter_model.safetensors']));
    expect(`${run.stdout}${run.stderr}`).not.toContain(hub.token);
  });

  it('picks the newest timestamped directory of --fine-tuned-models-dir (or the config file), and tags the MLflow run', async () => {
    const cwd = tempDir();
    const models = join(cwd, 'models');
    mkdirSync(models);
    writePeftDir(models, 'adapter_20240101_000000');
    writePeftDir(models, 'adapter_20240601_120000');
    writePeftDir(models, 'other_20250101_000000');
    const repo = newRepo();
    writeFileSync(join(cwd, 'artifact-uploader.yaml'), `hub:\n  fineTunedModelsDir: models\n  pattern: "adapter_*"\n  repoId: ${repo}\n`);
    const runId = (await cli(['runs', 'start'], { cwd })).stdout.trim();

    const run = await cli(['publish', '--json'], { cwd, env: hubEnv({ MLFLOW_RUN_ID: runId }) });
    expect(run.code, run.stderr).toBe(0);
    const doc = run.json();
    expect(doc).toMatchObject({ ok: true, command: 'publish', modelDir: join(models, 'adapter_20240601_120000'), modelDirSource: 'search', result: { status: 'published', repoId: repo, mlflowTagged: true } });
    const tags = (await new FileTrackingStore({ root: join(cwd, 'mlruns') }).getRun(runId)).data.tags;
    expect(tags[HUB_RUN_TAGS.repoId]).toBe(repo);
    expect(tags[HUB_RUN_TAGS.commitUrl]).toBe(doc.result.commitUrl);

    // The command line wins over the config file.
    const other = await cli(['publish', '--fine-tuned-models-dir', 'models', '--pattern', 'other_*', '--dry-run', '--json'], { cwd, env: hubEnv() });
    expect(other.json().modelDir).toBe(join(models, 'other_20250101_000000'));
  });

  it('an invalid ARTIFACT_UPLOADER_CONCURRENCY, which publish never uses, is a warning saying so, and the model is published with the config file\'s hub settings (it was refused: CONFIG_INVALID, exit 2)', async () => {
    const cwd = tempDir();
    writePeftDir(cwd, 'adapter');
    const repo = newRepo();
    writeFileSync(join(cwd, 'artifact-uploader.yaml'), `hub:\n  repoId: ${repo}\n`);
    const env = hubEnv({ ARTIFACT_UPLOADER_CONCURRENCY: 'eight' });
    const run = await cli(['publish', '--model-dir', 'adapter', '--json'], { cwd, env });
    expect(run.code, run.stderr).toBe(EXIT_CODES.OK);
    expect(run.json()).toMatchObject({ ok: true, result: { status: 'published', repoId: repo } });
    expect(hub.files(repo)).toEqual(expect.arrayContaining(['README.md', 'adapter_config.json', 'adapter_model.safetensors']));
    expect(run.stderr).toContain(
      'Environment variable ARTIFACT_UPLOADER_CONCURRENCY="eight" is ignored, since this command does not use the concurrency (expected an integer from 1 to 64); the upload commands (training, conversion, benchmark, hpo, file, dir) refuse it. Set ARTIFACT_UPLOADER_CONCURRENCY to an integer from 1 to 64, or unset it for the default.',
    );
    // What the warning says: an upload command refuses it.
    const upload = await cli(['dir', '--stage', 'training', 'adapter', '--dry-run', '--json'], { cwd, env });
    expect(upload.code, upload.stderr).toBe(EXIT_CODES.USAGE);
    expect(upload.json().error).toMatchObject({ code: 'CONFIG_INVALID' });
  });

  it('--dry-run validates and lists the files without a single Hub request', async () => {
    const cwd = tempDir();
    writeFusedDir(cwd, 'fused');
    hub.clearLog();
    const run = await cli(['publish', '--model-dir', 'fused', '--repo-id', newRepo(), '--dry-run'], { cwd, env: baseEnv({ HF_ENDPOINT: hub.url }) });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^Dry run: would publish fused model .* \(4 files, /);
    expect(run.stdout).toMatch(/model\.safetensors/);
    expect(hub.requests).toEqual([]);
  });

  it('leaves a .env and a private key out with a warning naming them; --include-sensitive publishes the one named', async () => {
    const cwd = tempDir();
    const dir = writeFusedDir(cwd, 'fused');
    writeFileSync(join(dir, '.env'), 'HF_TOKEN=hf_leakedleaked\n');
    writeFileSync(join(dir, 'id_ed25519'), '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n');
    const repo = newRepo();
    const run = await cli(['publish', '--model-dir', 'fused', '--repo-id', repo, '--include-sensitive', 'id_ed25519'], { cwd, env: hubEnv() });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/warning: Left out of the upload, as files holding credentials: "\.env" \(in /);
    expect(hub.files(repo)).toContain('id_ed25519');
    expect(hub.files(repo)).not.toContain('.env');
    expect(`${run.stdout}${run.stderr}`).not.toContain('hf_leakedleaked');
  });

  it('an invalid model exits 3 and uploads nothing', async () => {
    const cwd = tempDir();
    const dir = writePeftDir(cwd, 'broken');
    writeFileSync(join(dir, 'adapter_model.safetensors'), 'placeholder');
    hub.clearLog();
    const run = await cli(['publish', '--model-dir', 'broken', '--repo-id', newRepo()], { cwd, env: hubEnv() });
    expect(run.code).toBe(EXIT_CODES.INVALID_MODEL);
    expect(run.stderr).toMatch(/error \[MODEL_INVALID\]: .*artifact-uploader validate/);
    expect(hub.requests).toEqual([]);
  });

  it('usage errors exit 2: no repo id, no model directory, no token', async () => {
    const cwd = tempDir();
    writePeftDir(cwd, 'adapter');
    expect((await cli(['publish', '--model-dir', 'adapter'], { cwd, env: hubEnv() })).stderr).toMatch(/No Hub repo/);
    expect((await cli(['publish', '--model-dir', 'adapter'], { cwd, env: hubEnv() })).code).toBe(2);
    expect((await cli(['publish', '--repo-id', newRepo()], { cwd, env: hubEnv() })).code).toBe(2);
    expect((await cli(['publish', '--model-dir', 'nope', '--repo-id', newRepo()], { cwd, env: hubEnv() })).code).toBe(2);
    const noToken = await cli(['publish', '--model-dir', 'adapter', '--repo-id', newRepo()], { cwd, env: baseEnv({ HF_ENDPOINT: hub.url }) });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain('HF_TOKEN');
  });

  it('a Hub that keeps failing exits 1 after the retries, without the token in the output', async () => {
    const cwd = tempDir();
    writePeftDir(cwd, 'adapter');
    const fault = hub.addFault({ action: 'status', status: 503, times: 100 });
    try {
      const run = await cli(['publish', '--model-dir', 'adapter', '--repo-id', newRepo(), '--verbose'], { cwd, env: hubEnv({ MLFLOW_HTTP_REQUEST_MAX_RETRIES: '1' }) });
      expect(run.code).toBe(EXIT_CODES.FAILED);
      expect(run.stderr).toMatch(/error \[HUB_ERROR\]/);
      expect(`${run.stdout}${run.stderr}`).not.toContain(hub.token);
    } finally {
      fault.cancel();
    }
  });

  it('a commit whose answer is lost prints the --idempotency-key that finds it: the same command with it does not commit twice', async () => {
    const cwd = tempDir();
    writePeftDir(cwd, 'adapter');
    const repo = newRepo();
    hub.createRepo(repo);
    hub.dropResponseOfNext('commit');
    const lost = await cli(['publish', '--model-dir', 'adapter', '--repo-id', repo], { cwd, env: hubEnv({ MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0' }) });
    expect(lost.code, lost.stderr).toBe(EXIT_CODES.FAILED);
    expect(hub.commits(repo)).toHaveLength(2); // it landed
    const key = /--idempotency-key "([0-9a-f-]{36})"/.exec(lost.stderr)?.[1];
    expect(key, lost.stderr).toBeDefined();

    const again = await cli(['publish', '--model-dir', 'adapter', '--repo-id', repo, '--idempotency-key', key!], { cwd, env: hubEnv() });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`Already published: ${hub.url}/${repo}/commit/${hub.head(repo)}`);
    expect(hub.commits(repo)).toHaveLength(2);
  });
});
