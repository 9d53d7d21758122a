/**
 * Errors the CLI prints in its own terms: the library's hints name its API (`uploadFile()`,
 * `overwrite: true`, `joinEnvRun: false`), which a shell user cannot call; the CLI names the
 * command, flag or variable that does the same, on stderr and in the `--json` error.
 */
import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeMlxLoraDir, writePeftDir } from '../model/fixtures.js';
import { cliWording } from '../../src/cli/format.js';
import { baseEnv, cli, tempDir } from './helpers.js';

/** Library API a CLI error must not tell the user to call. */
const API_WORDS = /\w+\(\)|uploadFile|createCheckpointArchive|overwrite: true|outDir|accessToken|joinEnvRun|baseDir|modelDir/;

async function localRun(cwd: string): Promise<Record<string, string | undefined>> {
  const runId = (await cli(['runs', 'start'], { cwd })).stdout.trim();
  return baseEnv({ MLFLOW_RUN_ID: runId });
}

describe('errors in CLI terms', () => {
  it('archive of a checkpoint with a link leading out says to leave it out with --exclude', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'ckpt'));
    writeFileSync(join(cwd, 'ckpt', 'w.bin'), 'w');
    symlinkSync('/etc/hostname', join(cwd, 'ckpt', 'outside'));
    const run = await cli(['archive', 'ckpt', '--json'], { cwd });
    expect(run.code).toBe(2);
    expect(run.json().error).toMatchObject({ code: 'SYMLINK_ESCAPES', hint: expect.stringContaining('leave it out with --exclude <glob>') });
    expect(JSON.stringify(run.json().error)).not.toMatch(/`exclude`|`filter`/);
  });

  it('archive -o or --manifest over a checkpoint file names the flags, not createCheckpointArchive and its options', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'ckpt'));
    writeFileSync(join(cwd, 'ckpt', 'w.bin'), 'w');
    writeFileSync(join(cwd, 'ckpt', 'state.json'), '{}');
    const out = await cli(['archive', 'ckpt', '-o', 'ckpt/w.bin'], { cwd });
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('not an earlier archive written by `artifact-uploader archive`');
    expect(out.stderr).toContain('Write the archive outside the checkpoint directory with `-o`, or under a name');
    const manifest = await cli(['archive', 'ckpt', '--manifest', 'ckpt/state.json', '--json'], { cwd });
    expect(manifest.code).toBe(2);
    expect(manifest.json().error.hint).toBe('Write the manifest outside the checkpoint directory with `--manifest`, or under a name that no checkpoint file has.');
    for (const run of [out, manifest]) expect(`${run.stdout}${run.stderr}`).not.toMatch(API_WORDS);
  });

  it('a file where a directory is expected names the command and the CLI alternatives, also in --json', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'f.txt'), 'x');
    const env = await localRun(cwd);
    const run = await cli(['training', 'f.txt'], { cwd, env });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('error [NOT_A_DIRECTORY]: `artifact-uploader training` expects a directory, but ');
    expect(run.stderr).toContain('Upload a single file with `artifact-uploader file`, or its parent directory with `artifact-uploader dir --include <glob>`.');
    expect(run.stderr).not.toMatch(API_WORDS);
    const json = (await cli(['training', 'f.txt', '--json'], { cwd, env })).json();
    expect(json.error.message).toMatch(/^`artifact-uploader training` expects a directory/);
    expect(json.error.hint).toContain('`artifact-uploader file`');
    expect(JSON.stringify(json.error)).not.toMatch(API_WORDS);
  });

  it('a directory where a file is expected points at `dir`', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'd'));
    const run = await cli(['file', '--stage', 'training', 'd'], { cwd, env: await localRun(cwd) });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('`artifact-uploader file` expects a file, but ');
    expect(run.stderr).toContain('Upload a directory with `artifact-uploader dir`');
    expect(run.stderr).not.toMatch(API_WORDS);
  });

  it('`archive` of a file says so without naming the library function', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'f.txt'), 'x');
    const run = await cli(['archive', 'f.txt'], { cwd });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('is a file; a checkpoint archive is made from a directory. Pass the checkpoint directory, or upload a single file with `artifact-uploader file`.');
    expect(run.stderr).not.toMatch(API_WORDS);
  });

  it('convert-peft into an existing directory says --overwrite and --out', async () => {
    const cwd = tempDir();
    writeMlxLoraDir(cwd, 'lora');
    mkdirSync(join(cwd, 'lora_peft_converted'));
    const run = await cli(['convert-peft', 'lora', '--base-model', 'a/b'], { cwd });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('Pass --overwrite to replace it, or choose another --out.');
    expect(run.stderr).not.toMatch(API_WORDS);
  });

  it('publish without a token says HF_TOKEN, and a missing --fine-tuned-models-dir names its flags', async () => {
    const cwd = tempDir();
    writePeftDir(cwd, 'model');
    // A local address: the public-Hub guard lets it through to the token check, and no request is made before it.
    const noToken = await cli(['publish', '--model-dir', 'model', '--repo-id', 'a/b'], { cwd, env: baseEnv({ HF_ENDPOINT: 'http://127.0.0.1:9' }) });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain('Set HF_TOKEN (a write token from https://huggingface.co/settings/tokens)');
    expect(noToken.stderr).not.toMatch(API_WORDS);
    const badUrl = await cli(['publish', '--model-dir', 'model', '--repo-id', 'a/b', '--hub-url', 'me:hf_secretToken1@hub.internal:8080'], { cwd });
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toBe('error [INVALID_ARGUMENT]: --hub-url must be the Hub\'s http(s):// address, got "***@hub.internal:8080". Pass --hub-url as a URL such as https://huggingface.co or http://127.0.0.1:8080 (with its http:// or https://), or leave it unset for https://huggingface.co.\n');
    const noDir = await cli(['publish', '--fine-tuned-models-dir', 'nope', '--repo-id', 'a/b', '--dry-run'], { cwd });
    expect(noDir.stderr).toContain('Check --fine-tuned-models-dir (or hub.fineTunedModelsDir in artifact-uploader.yaml), or pass --model-dir.');
    expect(noDir.stderr).not.toMatch(API_WORDS);
    mkdirSync(join(cwd, 'models', 'other_20240501_093000'), { recursive: true });
    const noMatch = await cli(['publish', '--fine-tuned-models-dir', 'models', '--pattern', 'llama_*', '--repo-id', 'a/b', '--dry-run', '--json'], { cwd });
    expect(noMatch.code).toBe(2);
    expect(noMatch.json().error).toMatchObject({ code: 'MODEL_DIRECTORY_NOT_FOUND', hint: expect.stringContaining('or --model-dir to publish a specific directory') });
    expect(noMatch.stderr).toContain('Pass a --pattern that matches');
    expect(noMatch.stderr).not.toMatch(API_WORDS);
  });

  it('joining MLFLOW_RUN_ID under another experiment suggests --new', async () => {
    const cwd = tempDir();
    const run = await cli(['runs', 'start', '--experiment-name', 'other'], { cwd, env: await localRun(cwd) });
    expect(run.stderr).toContain('or start a new run (unset MLFLOW_RUN_ID or pass --new).');
    expect(run.stderr).not.toMatch(API_WORDS);
    // Named with --run-id, it is the caller's run, not a parent's: leaving --run-id out starts a new one.
    const named = await cli(['runs', 'start', '--run-id', String((await localRun(cwd)).MLFLOW_RUN_ID), '--experiment-name', 'other'], { cwd });
    expect(named.stderr).toContain('or start a new run (leave --run-id out).');
    expect(named.stderr).not.toMatch(/MLFLOW_RUN_ID|--new|runId/);
  });

  it('a bad --artifact-path or --trial-id says to change that option, not to rename files', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'd'));
    writeFileSync(join(cwd, 'd', 'a.txt'), 'a');
    const env = await localRun(cwd);
    const dir = await cli(['dir', '--stage', 'training', 'd', '--artifact-path', '../x'], { cwd, env });
    expect(dir.code).toBe(2);
    expect(dir.stderr).toBe('error [INVALID_ARTIFACT_PATH]: --artifact-path "../x" contains a ".." segment, which MLflow rejects. Nothing was uploaded. Pass another value for --artifact-path.\n');
    const hpo = await cli(['hpo', '--checkpoint-dir', 'd', '--trial-id', '..', '--json'], { cwd, env });
    expect(hpo.code).toBe(2);
    expect(hpo.json().error).toMatchObject({ code: 'INVALID_ARTIFACT_PATH', hint: 'Pass another value for --trial-id.' });
    expect(hpo.stderr).toContain('--trial-id ".." contains a ".." segment');
    const slash = await cli(['hpo', '--checkpoint-dir', 'd', '--trial-id', 'a/b'], { cwd, env });
    expect(slash.code).toBe(2);
    expect(slash.stderr).toBe('error [INVALID_ARGUMENT]: --trial-id "a/b" contains "/"; it must be one artifact path segment. Nothing was uploaded. Use letters, digits, "-" and "_".\n');
    // A missing value as a script prints it (Python's None, nan; a shell's -1) names no trial.
    for (const missing of ['None', 'nan', 'NaN', 'undefined', '-1', '1.5', 'inf']) {
      const run = await cli(['hpo', '--checkpoint-dir', 'd', '--trial-id', missing, '--json'], { cwd, env });
      expect(run.code, missing).toBe(2);
      expect(run.json().error, missing).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(`--trial-id ${JSON.stringify(missing)} names no trial`) });
    }
    const artifacts = join(cwd, 'mlruns', '0', env.MLFLOW_RUN_ID!, 'artifacts');
    expect(existsSync(artifacts) ? readdirSync(artifacts, { recursive: true }) : []).toEqual([]);
    // Trial ids that are names or numbers still go up: trials/007/.
    const named = await cli(['hpo', '--checkpoint-dir', 'd', '--trial-id', '007', '--json'], { cwd, env });
    expect(named.json(), named.stderr).toMatchObject({ ok: true, status: 'uploaded' });
  });

  it('a failed upload is told once on stderr, and the summary says it in CLI terms too', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'a.txt'), 'a');
    await localRun(cwd); // ./mlruns exists, without this run
    const run = await cli(['file', '--stage', 'training', 'a.txt', '--run-id', '0123456789abcdef0123456789abcdef'], { cwd });
    expect(run.code).toBe(2);
    // The error line only: not also the uploader's warning of the failed result, in its API's words.
    expect(run.stderr).toBe(
      'error [MLFLOW_API_ERROR]: Run 0123456789abcdef0123456789abcdef not found in ' +
        `${join(cwd, 'mlruns')}. The run id does not exist in this local store. Check that --run-id / MLFLOW_RUN_ID and --tracking-uri / MLFLOW_TRACKING_URI (neither is set: ./mlruns) point to the same store (a run made on a tracking server is not in ./mlruns).\n`,
    );
    expect(run.stdout).toContain('file a.txt: FAILED (run-unavailable): Run 0123456789abcdef0123456789abcdef not found');
    expect(run.stdout).toContain('Check that --run-id / MLFLOW_RUN_ID');
    expect(run.stdout).not.toMatch(API_WORDS);
  });

  it('training --metrics <dir> names --metrics, not the dir command, and sends nothing', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'ckpt'));
    writeFileSync(join(cwd, 'ckpt', 'w.bin'), 'w');
    mkdirSync(join(cwd, 'out'));
    const env = await localRun(cwd);
    const run = await cli(['training', 'ckpt', '--metrics', 'out', '--json'], { cwd, env });
    expect(run.code).toBe(2);
    expect(run.json().error).toMatchObject({
      code: 'NOT_A_FILE',
      message: expect.stringContaining(`\`artifact-uploader training\` expects a file as --metrics (the metrics JSON), but ${join(cwd, 'out')} is a directory.`),
      hint: 'Pass the path of the metrics JSON file as --metrics; the checkpoint directory is the first argument.',
    });
    expect(run.stderr).not.toMatch(/artifact-uploader dir|metricsJsonPath|checkpointDir/);
    // Checked before the checkpoint was sent.
    const artifacts = join(cwd, 'mlruns', '0', String(env.MLFLOW_RUN_ID), 'artifacts');
    expect(existsSync(artifacts) ? readdirSync(artifacts) : []).toEqual([]);
  });

  it('a file name MLflow rejects still says to rename the file', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'notes#1.txt'), 'a');
    const run = await cli(['file', '--stage', 'training', 'notes#1.txt', '--artifact-path', 'docs'], { cwd, env: await localRun(cwd) });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('Artifact path "docs/notes#1.txt" contains "#", which MLflow rejects.');
    expect(run.stderr).toContain('Rename the file(s)');
  });

  it('global flags and runs start options are named as flags: --skip-existing, --run-id, --config-dir, --experiment-id/-name, --trial-id', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'a.txt'), 'a');
    const env = await localRun(cwd);
    /** Option names of the library's API that have a flag here. */
    const OPTION_WORDS = /skipExisting|runId(?: [/"]|=)|configDir|experimentName|experimentId|trialId/;
    const check = async (argv: string[], expected: string, runEnv = env) => {
      const run = await cli([...argv, '--json'], { cwd, env: runEnv });
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toContain(expected);
      expect(run.stderr, run.stderr).not.toMatch(OPTION_WORDS);
      const doc = run.json();
      // A thrown error is at the top; a failed upload's is in its result.
      const { message, hint } = doc.error ?? doc.results.find((r: { error?: unknown }) => r.error).error;
      expect(`${message} ${hint}`).toContain(expected);
      expect(`${message} ${hint}`).not.toMatch(OPTION_WORDS);
    };
    await check(['file', '--stage', 'training', 'a.txt', '--skip-existing', 'checksum'], "--skip-existing checksum needs a store whose listing reports checksums");
    await check(['file', '--stage', 'training', 'a.txt', '--skip-existing', 'checksum'], 'Use --skip-existing size (a file of the same size');
    await check(['file', '--stage', 'training', 'a.txt', '--run-id', '0123456789abcdef0123456789abcdef'], 'Check that --run-id / MLFLOW_RUN_ID and --tracking-uri / MLFLOW_TRACKING_URI (neither is set: ./mlruns) point to the same store');
    // The flag beats ARTIFACT_UPLOADER_CONFIG_DIR, so setting the variable is no way out.
    await check(['file', '--stage', 'training', 'a.txt', '--config-dir', 'missing'], 'Create it, or pass another --config-dir.');
    await check(['file', '--stage', 'training', 'a.txt', '--config-dir', 'a.txt'], `--config-dir ${join(cwd, 'a.txt')} is a file, not a directory. Pass the directory that holds artifact-uploader.yaml`);
    // Set by the variable, the directory is said to come from it, and the hint is not "set it".
    await check(['file', '--stage', 'training', 'a.txt'], `Config directory ${join(cwd, 'missing')} (from ARTIFACT_UPLOADER_CONFIG_DIR) does not exist. Create it, or set ARTIFACT_UPLOADER_CONFIG_DIR to the directory`, { ...env, ARTIFACT_UPLOADER_CONFIG_DIR: 'missing' });
    await check(['file', '--stage', 'training', 'a.txt'], `ARTIFACT_UPLOADER_CONFIG_DIR ${join(cwd, 'a.txt')} is a file, not a directory. Set ARTIFACT_UPLOADER_CONFIG_DIR to the directory`, { ...env, ARTIFACT_UPLOADER_CONFIG_DIR: 'a.txt' });
    await check(['runs', 'start', '--new', '--experiment-id', '42'], '--experiment-id 42: no such experiment');
    await check(['runs', 'start', '--new', '--experiment-id', '42'], 'give the experiment by name (--experiment-name / MLFLOW_EXPERIMENT_NAME)');
    await check(['runs', 'start', '--new', '--experiment-id', '0', '--experiment-name', 'other'], '--experiment-id 0 is the experiment "Default", not "other"');
    await check(['hpo', '--archive', 'a.txt', '--trial-id', 'a/b'], '--trial-id "a/b" contains "/"');
    await check(['file', '--stage', 'training', 'a.txt', '--run-id', 'bad!id'], '--run-id "bad!id" is not a valid MLflow run id.');
    await check(['runs', 'end', '--run-id', 'bad!id'], '--run-id "bad!id" is not a valid MLflow run id.');
    await check(['runs', 'start', '--run-id', '0123456789abcdef0123456789abcdef'], '--run-id 0123456789abcdef0123456789abcdef: no such run on');
  });

  it('register names its flags, not registerModel() and its options', async () => {
    const cwd = tempDir();
    const env = await localRun(cwd);
    const noRun = await cli(['register', 'm1', '--artifact-path', 'checkpoint', '--json'], { cwd, env: baseEnv() });
    expect(noRun.code).toBe(2);
    expect(noRun.json().error.message).toBe('`artifact-uploader register` needs the run the model comes from: pass --run-id, or set MLFLOW_RUN_ID. The model must be in the run\'s artifacts (or be uploaded with it): register after uploading, with the same run id.');
    const local = await cli(['register', 'm1', '--artifact-path', 'checkpoint'], { cwd, env });
    expect(local.code).toBe(2);
    expect(local.stderr).toContain('error [REGISTRY_UNSUPPORTED_STORE]: `artifact-uploader register` needs an MLflow tracking server;');
    for (const run of [noRun, local]) expect(`${run.stdout}${run.stderr}`).not.toMatch(API_WORDS);
    // Hints only a tracking server gives, in CLI terms (the server-backed tests cover the rest).
    expect(cliWording('Pass the artifactPath the model was uploaded to (e.g. "onnx" for uploadConversionArtifacts), or upload the model to the run first.', 'register')).toBe(
      'Pass the --artifact-path the model was uploaded to (e.g. "onnx" for `artifact-uploader conversion`), or upload the model to the run first.',
    );
    expect(cliWording('Register the model folder itself (e.g. "onnx" or "checkpoint"), not a folder that holds many runs\' worth of files, or pass localPath.', 'register')).toMatch(/or pass --local-path\.$/);
    expect(cliWording('Raise readyTimeoutMs if the registry is slow to copy large models.', 'register')).toBe(
      // Not "the version exists": the version the command made was deleted with its logged model (the undo).
      'If the registry is slow to copy large models, run the command again with a longer --ready-timeout (e.g. 15m): the version it made was removed (one an earlier run with the same --idempotency-key made stays, and is waited for again).',
    );
    // REGISTRY_INCOMPLETE's hints (a version the undo could not delete), with and without a key.
    expect(cliWording('Once the cause is fixed, run the same call again with idempotencyKey "job-7": it finds version 3 and completes it (tags, aliases) instead of making another.', 'register')).toBe(
      'Once the cause is fixed, run the same command again with --idempotency-key "job-7": it finds version 3 and completes it (tags, aliases) instead of making another.',
    );
    expect(cliWording('Before registering again, delete it: without an idempotencyKey, another call makes another version.', 'register')).toBe(
      'Before registering again, delete it: without --idempotency-key, another run of the command makes another version.',
    );
    // The same under `training --register` and `conversion --register`, which have --idempotency-key too;
    // REGISTRY_AFTER_UPLOAD's hint keeps its `register` command and drops the call in code.
    for (const command of ['training', 'conversion']) {
      expect(cliWording('run the same call again with idempotencyKey "job-7": it finds version 3', command)).toBe('run the same command again with --idempotency-key "job-7": it finds version 3');
      expect(cliWording('Do not upload them again: once the cause is fixed, register them against the same tracking server with `artifact-uploader register m --artifact-path onnx --run-id abc` (in code: registerModel({ name, runId: \'abc\', artifactPath: "onnx", idempotencyKey })).', command)).toBe(
        'Do not upload them again: once the cause is fixed, register them against the same tracking server with `artifact-uploader register m --artifact-path onnx --run-id abc`.',
      );
    }

    // --ready-timeout: parsed as an age, and refused in its own words before anything is sent.
    const zero = await cli(['register', 'm1', '--artifact-path', 'checkpoint', '--ready-timeout', '0s', '--json'], { cwd, env });
    expect(zero.code).toBe(2);
    expect(zero.json().error.message).toBe('--ready-timeout must be more than 0.');
    const bad = await cli(['register', 'm1', '--artifact-path', 'checkpoint', '--ready-timeout', '10'], { cwd, env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("option '--ready-timeout <age>' argument '10' is invalid");
  });

  it('the summary of a failed upload on stdout is in CLI terms too, not only the error line on stderr', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'ckpt'));
    writeFileSync(join(cwd, 'ckpt', 'w.bin'), 'w');
    const env = await localRun(cwd);
    const run = await cli(['training', 'ckpt', '--run-id', '0123456789abcdef0123456789abcdef'], { cwd, env });
    expect(run.code).toBe(2);
    expect(run.stdout).toContain('training checkpoint: FAILED (run-unavailable): ');
    expect(run.stdout).toContain('Check that --run-id / MLFLOW_RUN_ID and --tracking-uri / MLFLOW_TRACKING_URI (neither is set: ./mlruns) point to the same store');
    expect(run.stdout).not.toMatch(/runId \//);
  });
});
