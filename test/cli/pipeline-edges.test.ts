/**
 * The CLI as a Python pipeline calls it: values a script passes from unset variables, and the
 * `--json` document of a usage error, which a pipeline branches on.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { asksForHelpOrVersion } from '../../src/cli/program.js';
import { createTrackingClient } from '../../src/mlflow/tracking-client.js';
import { resolveJournalDir } from '../../src/uploader/journal.js';
import { startTestServer } from '../support/http-test-server.js';
import { runPython } from '../support/python.js';
import { describeWithServers, mlflowServer } from '../support/servers.js';
import { baseEnv, cli, tempDir } from './helpers.js';

describeWithServers('runs start on a real MLflow server', () => {
  it('an empty --run-name ("$UNSET" in a script) starts a run with a generated name, as MLflow does', async () => {
    const cwd = tempDir();
    const env = baseEnv({ MLFLOW_TRACKING_URI: mlflowServer().url });
    const run = await cli(['runs', 'start', '--run-name', '', '--experiment-name', 'cli-empty-run-name', '--json'], { cwd, env });
    expect(run.code, run.stderr).toBe(EXIT_CODES.OK);
    const doc = run.json();
    expect(doc.runName).toMatch(/\S/);
    const stored = await createTrackingClient({ trackingUri: mlflowServer().url, env: {} }).getRun(doc.runId);
    expect(stored.info.runName).toBe(doc.runName);
    expect(stored.data.tags['mlflow.runName']).toBe(doc.runName);
  });

  it('joining a run that has ended (FINISHED, FAILED, KILLED) sets it back to RUNNING, end time kept, as mlflow.start_run(run_id=...) does', async () => {
    const url = mlflowServer().url;
    const env = baseEnv({ MLFLOW_TRACKING_URI: url });
    /** Per status: our run (joined by `runs start`) and one joined by Python's start_run, each with its end time. */
    const made: Record<string, Array<{ runId: string; endTime: number }>> = {};
    for (const status of ['FINISHED', 'FAILED', 'KILLED']) {
      made[status] = [];
      for (let i = 0; i < 2; i++) {
        const runId = (await cli(['runs', 'start', '--new', '--experiment-name', 'cli-rejoin'], { cwd: tempDir(), env })).stdout.trim();
        const end = await cli(['runs', 'end', '--run-id', runId, '--status', status, '--json'], { cwd: tempDir(), env });
        expect(end.json()).toMatchObject({ status, endTime: expect.any(Number) });
        made[status].push({ runId, endTime: Number(end.json().endTime) });
      }
      const ours = made[status][0]!.runId;
      const joined = await cli(['runs', 'start', '--json'], { cwd: tempDir(), env: { ...env, MLFLOW_RUN_ID: ours } });
      expect(joined.code, joined.stderr).toBe(EXIT_CODES.OK);
      expect(joined.json()).toMatchObject({ runId: ours, created: false });
      expect(joined.stderr).toContain(`(it was ${status}: set back to RUNNING, as mlflow.start_run(run_id=...) does)`);
    }
    // Read back with the official client, beside a run of each status that Python's start_run joined.
    const out = await runPython(
      `
import json, sys, mlflow
from mlflow import MlflowClient
client = MlflowClient()
seen = {}
for status, (ours, theirs) in json.loads(sys.argv[1]).items():
    mlflow.start_run(run_id=theirs["runId"])
    python = client.get_run(theirs["runId"]).info
    mlflow.end_run()
    info = client.get_run(ours["runId"]).info
    seen[status] = {"ours": [info.status, info.end_time == ours["endTime"]], "python": [python.status, python.end_time == theirs["endTime"]]}
print(json.dumps(seen))
`,
      { env: { MLFLOW_TRACKING_URI: url }, args: [JSON.stringify(made)] },
    );
    const seen = JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, unknown>;
    for (const status of ['FINISHED', 'FAILED', 'KILLED']) expect(seen[status], status).toEqual({ ours: ['RUNNING', true], python: ['RUNNING', true] });
  });

  it('joining a run with --run-name and --tag renames it and logs the tags, as mlflow.start_run(run_id=..., run_name=..., tags=...) does', async () => {
    const url = mlflowServer().url;
    const env = baseEnv({ MLFLOW_TRACKING_URI: url });
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) ids.push((await cli(['runs', 'start', '--new', '--experiment-name', 'cli-rejoin-named', '--run-name', 'first'], { cwd: tempDir(), env })).stdout.trim());
    const [ours, theirs] = ids as [string, string];
    const joined = await cli(['runs', 'start', '--run-name', 'step-2', '--tag', 'stage=eval', '--tag', 'team=nlp', '--json'], { cwd: tempDir(), env: { ...env, MLFLOW_RUN_ID: ours } });
    expect(joined.code, joined.stderr).toBe(EXIT_CODES.OK);
    expect(joined.json()).toMatchObject({ runId: ours, runName: 'step-2', created: false });
    // Read back with the official client, beside a run Python's start_run joined the same way.
    const out = await runPython(
      `
import json, sys, mlflow
from mlflow import MlflowClient
client = MlflowClient()
mlflow.start_run(run_id=sys.argv[2], run_name="step-2", tags={"stage": "eval", "team": "nlp"})
mlflow.end_run()
def seen(run_id):
    run = client.get_run(run_id)
    return [run.info.run_name, run.data.tags.get("mlflow.runName"), run.data.tags.get("stage"), run.data.tags.get("team")]
print(json.dumps({"ours": seen(sys.argv[1]), "python": seen(sys.argv[2])}))
`,
      { env: { MLFLOW_TRACKING_URI: url }, args: [ours, theirs] },
    );
    const seen = JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(seen).toEqual({ ours: ['step-2', 'step-2', 'eval', 'nlp'], python: ['step-2', 'step-2', 'eval', 'nlp'] });
  });
  it('--tag __proto__=x reaches the server (MLflow takes the key), and a key repeated with another value is a usage error before any request', async () => {
    const url = mlflowServer().url;
    const env = baseEnv({ MLFLOW_TRACKING_URI: url });
    const run = await cli(['runs', 'start', '--new', '--experiment-name', 'cli-proto-tag', '--tag', '__proto__=x', '--tag', 'constructor=y', '--tag', 'team=nlp', '--tag', 'team=nlp', '--json'], { cwd: tempDir(), env });
    expect(run.code, run.stderr).toBe(EXIT_CODES.OK);
    // Read back with the official client: its dict holds `__proto__` as any other key.
    const out = await runPython(
      `
import json, sys
from mlflow import MlflowClient
tags = MlflowClient().get_run(sys.argv[1]).data.tags
print(json.dumps([tags.get(k) for k in ["__proto__", "constructor", "team"]]))
`,
      { env: { MLFLOW_TRACKING_URI: url }, args: [run.json().runId] },
    );
    expect(JSON.parse(out.trim().split('\n').at(-1)!)).toEqual(['x', 'y', 'nlp']);

    // The server is never asked: the experiment named here does not come into being.
    const clash = await cli(['runs', 'start', '--new', '--experiment-name', 'cli-tag-clash', '--tag', 'stage=train', '--tag', 'stage=eval', '--json'], { cwd: tempDir(), env });
    expect(clash.code).toBe(EXIT_CODES.USAGE);
    expect(clash.json().error).toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('--tag stage is given twice, with different values: "train" and "eval".'),
      hint: expect.stringContaining('Keep the one --tag stage=... you mean'),
    });
    expect(await createTrackingClient({ trackingUri: url, env: {} }).getExperimentByName('cli-tag-clash')).toBeUndefined();
  });
});

describeWithServers('runs start errors name the flags on a real MLflow server', () => {
  it('a deleted experiment given by --experiment-id is named by the flag', async () => {
    const url = mlflowServer().url;
    const env = baseEnv({ MLFLOW_TRACKING_URI: url });
    const made = (await cli(['runs', 'start', '--experiment-name', 'cli-deleted-exp', '--json'], { cwd: tempDir(), env })).json();
    const deleted = await fetch(`${url}/api/2.0/mlflow/experiments/delete`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ experiment_id: made.experimentId }) });
    expect(deleted.ok).toBe(true);
    const run = await cli(['runs', 'start', '--experiment-id', made.experimentId, '--json'], { cwd: tempDir(), env });
    expect(run.code).toBe(EXIT_CODES.USAGE);
    expect(run.json().error.message).toMatch(new RegExp(`^--experiment-id ${made.experimentId}: experiment "cli-deleted-exp" is deleted\\.`));
  });
});

describe('runs start errors name the flags, not the library options', () => {
  it('an empty --experiment-name, an invalid --experiment-id', async () => {
    const cwd = tempDir();
    const empty = await cli(['runs', 'start', '--experiment-name', '', '--json'], { cwd });
    expect(empty.code).toBe(EXIT_CODES.USAGE);
    expect(empty.stderr).toContain('error [INVALID_ARGUMENT]: --experiment-name must be a non-empty string, got "".');
    expect(empty.json().error.message).toBe('--experiment-name must be a non-empty string, got "".');
    const badId = await cli(['runs', 'start', '--experiment-id', 'a/b', '--json'], { cwd });
    expect(badId.code).toBe(EXIT_CODES.USAGE);
    const error = badId.json().error;
    expect(error.message).toMatch(/^--experiment-id "a\/b" is not a valid MLflow experiment id\./);
    expect(error.hint).toMatch(/to pick an experiment by name use --experiment-name\.$/);
    for (const text of [badId.stderr, empty.stderr, error.message, error.hint]) expect(text).not.toMatch(/\bexperiment(Name|Id)\b/);
  });
});

describe('runs start on ./mlruns', () => {
  it('an empty --run-name leaves no empty mlflow.runName tag beside the generated name', async () => {
    const cwd = tempDir();
    const run = await cli(['runs', 'start', '--run-name', '', '--json'], { cwd });
    expect(run.code, run.stderr).toBe(EXIT_CODES.OK);
    const doc = run.json();
    const stored = await createTrackingClient({ trackingUri: `file:${cwd}/mlruns`, env: {} }).getRun(doc.runId);
    expect(stored.data.tags['mlflow.runName']).toBe(doc.runName);
  });
});

describe('the --json document of a usage error', () => {
  it('names the command that was called, not an option value that spells another, nor only its group', async () => {
    const cases: Array<[string[], string]> = [
      [['--json', '--stage', 'training', 'file', 'out/model.bin', '--bogus'], 'file'],
      [['--json', '--tracking-uri', 'runs', 'dir', '--stage', 'hpo', 'out', '--nope'], 'dir'],
      [['--json', 'runs', 'start', '--bogus'], 'runs start'],
      [['--json', 'runs', 'end', '--status', 'DONE'], 'runs end'],
      [['--json', 'resume', 'clear', '--older-than', 'soon'], 'resume clear'],
      [['--json', '--concurrency', '0', 'training', 'x'], 'training'],
      [['--json', 'runs'], 'runs'],
    ];
    for (const [argv, command] of cases) {
      const run = await cli(argv);
      expect(run.code, argv.join(' ')).toBe(EXIT_CODES.USAGE);
      expect(run.json(), argv.join(' ')).toMatchObject({ ok: false, command, exitCode: 2, error: { code: 'USAGE', hint: `Run \`artifact-uploader ${command} --help\` for usage.` } });
      // The hint's command exists: its help is printed.
      const help = await cli([...command.split(' '), '--help']);
      expect(help.code, command).toBe(EXIT_CODES.OK);
      expect(help.stdout, command).toContain(`Usage: artifact-uploader ${command} `);
    }
    expect((await cli(['--json', 'runs'])).json().error.message).toBe('`artifact-uploader runs` needs a command: start or end.');
  });
});

describe('a model directory with no known layout, in CLI terms', () => {
  it('names --model-dir or the command, never the library option modelDir, and ends each sentence once', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'out'));
    writeFileSync(join(cwd, 'out', 'notes.txt'), 'not a model');
    const validate = await cli(['validate', 'out'], { cwd });
    expect(validate.code).toBe(EXIT_CODES.INVALID_MODEL);
    expect(validate.stdout).toContain('Found: notes.txt. Point `artifact-uploader validate <dir>` at the training output');
    const validateJson = await cli(['validate', 'out', '--json'], { cwd });
    expect(JSON.stringify(validateJson.json().report.errors)).toContain('Point `artifact-uploader validate <dir>` at');
    const convert = await cli(['convert-peft', 'out'], { cwd });
    expect(convert.stderr).toContain('Point `artifact-uploader convert-peft <dir>` at the training output');
    const publish = await cli(['publish', '--model-dir', 'out', '--repo-id', 'org/model', '--dry-run', '--json'], { cwd });
    expect(publish.code).toBe(EXIT_CODES.INVALID_MODEL);
    expect(publish.json().error.message).toContain('Point --model-dir at the training output that holds these files (for MLX, the directory containing adapters/). Run `artifact-uploader validate <dir>`');
    const nothing = await cli(['publish', '--repo-id', 'org/model', '--dry-run'], { cwd });
    expect(nothing.code).toBe(EXIT_CODES.USAGE);
    expect(nothing.stderr).toContain('No model directory to publish: pass --model-dir, or --fine-tuned-models-dir to search');
    const missing = await cli(['convert-peft', 'nosuch'], { cwd });
    expect(missing.code).toBe(EXIT_CODES.USAGE);
    expect(missing.stderr).toContain('does not exist or is not a directory. Check the path (relative paths are resolved against the working directory).');
    const badRepo = await cli(['publish', '--model-dir', 'out', '--repo-id', 'model', '--dry-run'], { cwd });
    expect(badRepo.code).toBe(EXIT_CODES.USAGE);
    expect(badRepo.stderr).toContain('Expected --repo-id to be "namespace/name"');
    for (const text of [validate.stdout, validateJson.stdout, convert.stderr, publish.json().error.message, publish.stderr, nothing.stderr, missing.stderr, badRepo.stderr]) {
      expect(text).not.toMatch(/\b(resolveModelDir|repoId)\b/);
      expect(text).not.toMatch(/\b(modelDir|baseDir)\b/);
      expect(text).not.toMatch(/\)\.\./);
    }
  });
});

describe('hpo --archive given a directory', () => {
  it('points at --checkpoint-dir, not at other commands', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'trial-7'));
    writeFileSync(join(cwd, 'trial-7', 'model.safetensors'), 'weights');
    const run = await cli(['hpo', '--archive', 'trial-7', '--run-id', 'a'.repeat(32), '--json'], { cwd });
    expect(run.code).toBe(EXIT_CODES.USAGE);
    expect(run.stderr).toContain('`artifact-uploader hpo` expects a file, but');
    expect(run.stderr).toContain('Pass a checkpoint directory as --checkpoint-dir (archived, then uploaded); --archive takes an archive file.');
    expect(run.json().error.hint).toBe('Pass a checkpoint directory as --checkpoint-dir (archived, then uploaded); --archive takes an archive file.');
    // `file` and `dir` keep theirs.
    const file = await cli(['file', '--stage', 'hpo', 'trial-7', '--run-id', 'a'.repeat(32)], { cwd });
    expect(file.stderr).toContain('Upload a directory with `artifact-uploader dir`');
  });
});

describe('a literal ~ in a path (a Python caller runs no shell)', () => {
  it('a leading ~ or ~/ of a path argument, flag or ARTIFACT_UPLOADER_CONFIG_DIR / _JOURNAL_DIR is the home directory; ~user and the tracking URI are left as they are', async () => {
    const home = tempDir();
    const cwd = tempDir();
    const env = baseEnv({ HOME: home });
    mkdirSync(join(home, 'out', 'ckpt'), { recursive: true });
    writeFileSync(join(home, 'out', 'ckpt', 'model.safetensors'), 'weights');
    writeFileSync(join(home, 'out', 'metrics.json'), '{"loss": 0.5}');
    mkdirSync(join(home, 'conf'));
    writeFileSync(join(home, 'conf', 'artifact-uploader.yaml'), 'training:\n  checkpoint:\n    artifactPath: from-home-config\n');
    const runId = (await cli(['runs', 'start'], { cwd, env })).stdout.trim();
    const artifacts = join(cwd, 'mlruns', '0', runId, 'artifacts');

    const flags = await cli(['training', '~/out/ckpt', '--metrics', '~/out/metrics.json', '--config-dir', '~/conf', '--journal-dir', '~/journal', '--run-id', runId, '--json'], { cwd, env });
    expect(flags.code, flags.stderr).toBe(EXIT_CODES.OK);
    expect(flags.json().results.map((r: { status: string; files: Array<{ localPath: string }> }) => [r.status, r.files[0]!.localPath])).toEqual([
      ['uploaded', join(home, 'out', 'ckpt', 'model.safetensors')],
      ['uploaded', join(home, 'out', 'metrics.json')],
    ]);
    expect(readdirSync(artifacts).sort()).toEqual(['from-home-config', 'metrics']);
    expect((await cli(['resume', 'list', '--json', '--journal-dir', '~/journal'], { cwd, env })).json().journalDir).toBe(join(home, 'journal'));
    expect((await cli(['resume', 'list', '--json'], { cwd, env: { ...env, ARTIFACT_UPLOADER_JOURNAL_DIR: '~/journal2' } })).json().journalDir).toBe(join(home, 'journal2'));
    // `~` alone (with the journal outside it), and the config dir from its variable.
    const byEnv = await cli(['dir', '--stage', 'training', '~', '--include', 'out/metrics.json', '--kind', 'checkpoint', '--journal-dir', join(cwd, 'journal'), '--dry-run', '--json'], {
      cwd,
      env: { ...env, ARTIFACT_UPLOADER_CONFIG_DIR: '~/conf', MLFLOW_RUN_ID: runId },
    });
    expect(byEnv.json().results[0]).toMatchObject({ artifactPath: 'from-home-config', files: [{ localPath: join(home, 'out', 'metrics.json') }] });

    // ~user is not expanded (nor by Python's subprocess): relative to the working directory.
    const other = await cli(['training', '~nobody/ckpt', '--run-id', runId, '--json'], { cwd, env });
    expect(other.json().error).toMatchObject({ code: 'PATH_NOT_FOUND', path: join(cwd, '~nobody', 'ckpt') });
    // MLflow reads ~ in a tracking URI literally (./~/mlruns); so does the CLI, to find the same store.
    const uri = await cli(['runs', 'start', '--tracking-uri', '~/mlruns', '--json'], { cwd, env });
    expect(uri.json().trackingUri).toBe(`file:${join(cwd, '~', 'mlruns')}`);
  });
});

describe('hpo --archive given a file that is not a gzip archive', () => {
  it('is refused before anything is sent: NOT_A_GZIP_ARCHIVE, exit 2, with a hint naming --checkpoint-dir', async () => {
    const cwd = tempDir();
    const start = (await cli(['runs', 'start', '--json'], { cwd })).json();
    const artifacts = fileURLToPath(start.artifactUri);
    writeFileSync(join(cwd, 'weights.tar.gz'), 'safetensors bytes, not gzip');
    writeFileSync(join(cwd, 'empty.tar.gz'), '');
    for (const [name, found] of [['weights.tar.gz', "starts with the bytes 73 61, not gzip's 1f 8b"], ['empty.tar.gz', 'is empty']] as const) {
      const run = await cli(['hpo', '--archive', name, '--run-id', start.runId, '--json'], { cwd });
      expect(run.code, name).toBe(EXIT_CODES.USAGE);
      expect(run.json().error, name).toMatchObject({
        code: 'NOT_A_GZIP_ARCHIVE',
        path: join(cwd, name),
        message: `\`artifact-uploader hpo\` expects a gzip-compressed tar archive (.tar.gz), but ${join(cwd, name)} ${found}. Nothing was uploaded. Pass the .tar.gz written by \`artifact-uploader archive\`, or pass the checkpoint directory as --checkpoint-dir (archived, then uploaded).`,
        hint: 'Pass the .tar.gz written by `artifact-uploader archive`, or pass the checkpoint directory as --checkpoint-dir (archived, then uploaded).',
      });
      expect(run.stderr, name).toContain('error [NOT_A_GZIP_ARCHIVE]: `artifact-uploader hpo` expects a gzip-compressed tar archive');
      // A dry run refuses it the same way.
      expect((await cli(['hpo', '--archive', name, '--run-id', start.runId, '--dry-run'], { cwd })).code, name).toBe(EXIT_CODES.USAGE);
    }
    expect(existsSync(artifacts) ? readdirSync(artifacts) : []).toEqual([]);
    // An archive `artifact-uploader archive` wrote goes through.
    mkdirSync(join(cwd, 'ckpt'));
    writeFileSync(join(cwd, 'ckpt', 'model.safetensors'), 'weights');
    expect((await cli(['archive', 'ckpt', '-o', 'best.tar.gz'], { cwd })).code).toBe(EXIT_CODES.OK);
    const good = await cli(['hpo', '--archive', 'best.tar.gz', '--run-id', start.runId], { cwd });
    expect(good.code, good.stderr).toBe(EXIT_CODES.OK);
    expect(readdirSync(artifacts).sort()).toEqual(['best_trial_checkpoint.manifest.json', 'best_trial_checkpoint.tar.gz']);
  });
});

describe('a tracking server that answers 401', () => {
  it('asks for credentials when none were sent, and says the ones sent were refused otherwise', async () => {
    const server = await startTestServer((req, res) => {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error_code": "UNAUTHENTICATED", "message": "Unauthorized"}');
    });
    onTestFinished(() => server.close());
    const cwd = tempDir();
    const none = await cli(['runs', 'start', '--json'], { cwd, env: baseEnv({ MLFLOW_TRACKING_URI: server.url, MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0' }) });
    expect(none.code).toBe(EXIT_CODES.USAGE);
    expect(none.json().error.hint).toMatch(/^The server wants credentials: set MLFLOW_TRACKING_TOKEN/);
    for (const env of [{ MLFLOW_TRACKING_TOKEN: 'expired-token-1234' }, { MLFLOW_TRACKING_USERNAME: 'ci', MLFLOW_TRACKING_PASSWORD: 'old-password-1234' }]) {
      const refused = await cli(['runs', 'start', '--json'], { cwd, env: baseEnv({ MLFLOW_TRACKING_URI: server.url, MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0', ...env }) });
      expect(refused.code).toBe(EXIT_CODES.USAGE);
      const hint = refused.json().error.hint as string;
      expect(hint).toMatch(/^The server refused the credentials sent/);
      expect(hint).not.toContain('set MLFLOW_TRACKING_TOKEN');
      expect(refused.stderr).not.toMatch(/expired-token-1234|old-password-1234/);
    }
    expect(server.requests.filter((r) => r.headers.authorization !== undefined)).toHaveLength(2);
  });
});

describe('MLFLOW_EXPERIMENT_NAME and MLFLOW_EXPERIMENT_ID both set', () => {
  it('a name that names no experiment is refused without creating it', async () => {
    const cwd = tempDir();
    const env = baseEnv({ MLFLOW_EXPERIMENT_NAME: 'nightly sweep ü', MLFLOW_EXPERIMENT_ID: '0' });
    for (let attempt = 0; attempt < 2; attempt++) {
      const run = await cli(['runs', 'start', '--json'], { cwd, env });
      expect(run.code).toBe(EXIT_CODES.USAGE);
      expect(run.json().error.message).toContain('MLFLOW_EXPERIMENT_NAME="nightly sweep ü" names no experiment');
    }
    const client = createTrackingClient({ trackingUri: `file:${cwd}/mlruns`, env: {} });
    expect(await client.getExperimentByName('nightly sweep ü')).toBeUndefined();
    // Alone, the name creates it; with the id that matches, both are accepted.
    const made = (await cli(['runs', 'start', '--json'], { cwd, env: baseEnv({ MLFLOW_EXPERIMENT_NAME: 'nightly sweep ü' }) })).json();
    const both = await cli(['runs', 'start', '--json'], { cwd, env: baseEnv({ MLFLOW_EXPERIMENT_NAME: 'nightly sweep ü', MLFLOW_EXPERIMENT_ID: made.experimentId }) });
    expect(both.code, both.stderr).toBe(EXIT_CODES.OK);
    expect(both.json().experimentId).toBe(made.experimentId);
  });
});

describe('--max-concurrency below the configured concurrency', () => {
  it('names the flag, the config file and the variable, not the library options', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'logs'));
    writeFileSync(join(cwd, 'logs', 'train.log'), 'step 1');
    const run = await cli(['--max-concurrency', '8', 'dir', '--stage', 'training', 'logs', '--dry-run', '--json'], { cwd, env: baseEnv({ ARTIFACT_UPLOADER_CONCURRENCY: '16' }) });
    expect(run.code).toBe(EXIT_CODES.USAGE);
    const { message, hint } = run.json().error;
    expect(message).toBe(
      "--max-concurrency 8 is below the training stage's concurrency (16) from the tracking config (artifact-uploader.yaml or ARTIFACT_UPLOADER_CONCURRENCY): uploads start with that many files in flight. Set --max-concurrency to at least 16, or lower training.concurrency (or ARTIFACT_UPLOADER_CONCURRENCY) to 8 or less.",
    );
    expect(hint).toBe('Set --max-concurrency to at least 16, or lower training.concurrency (or ARTIFACT_UPLOADER_CONCURRENCY) to 8 or less.');
    expect(run.stderr).not.toMatch(/maxConcurrency|`config` option/);
  });
});

describe('an invalid ARTIFACT_UPLOADER_CONCURRENCY', () => {
  it('is refused where it sets the concurrency, and only warned about under --concurrency, which wins (docs/cli.md)', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'logs'));
    writeFileSync(join(cwd, 'logs', 'train.log'), 'step 1');
    const env = baseEnv({ ARTIFACT_UPLOADER_CONCURRENCY: 'eight' });
    const refused = await cli(['dir', '--stage', 'training', 'logs', '--dry-run', '--json'], { cwd, env });
    expect(refused.code, refused.stderr).toBe(EXIT_CODES.USAGE);
    expect(refused.json().error).toMatchObject({ code: 'CONFIG_INVALID', hint: 'Set ARTIFACT_UPLOADER_CONCURRENCY to an integer from 1 to 64, or unset it for the default.' });

    // The flag wins: the variable is not used, so it stops nothing, but the typo is said, in CLI terms.
    const run = await cli(['--concurrency', '4', 'dir', '--stage', 'training', 'logs', '--dry-run', '--json'], { cwd, env });
    expect(run.code, run.stderr).toBe(EXIT_CODES.OK);
    expect(run.json()).toMatchObject({ ok: true, status: 'skipped', results: [{ reason: 'dry-run' }] });
    expect(run.stderr).toContain(
      'Environment variable ARTIFACT_UPLOADER_CONCURRENCY="eight" is ignored, since --concurrency sets the concurrency here (expected an integer from 1 to 64). Set ARTIFACT_UPLOADER_CONCURRENCY to an integer from 1 to 64, or unset it for the default.',
    );
  });
});

describe('flags named as the CLI spells them', () => {
  it('runs start --run-name against --tag mlflow.runName, and convert-peft -o inside the input', async () => {
    const cwd = tempDir();
    const names = await cli(['runs', 'start', '--tag', 'mlflow.runName=a', '--run-name', 'b', '--json'], { cwd });
    expect(names.code).toBe(EXIT_CODES.USAGE);
    expect(names.json().error.message).toBe('--run-name "b" and --tag mlflow.runName="a" disagree. Give the name once, as --run-name.');
    mkdirSync(join(cwd, 'adapter'));
    const inside = await cli(['convert-peft', 'adapter', '-o', 'adapter/out', '--dry-run'], { cwd });
    expect(inside.code).toBe(EXIT_CODES.USAGE);
    expect(inside.stderr).toContain(`-o ${join(cwd, 'adapter', 'out')} is inside the input directory`);
    expect(inside.stderr).toContain('Leave -o out to write adapter_peft_converted next to the input.');
    const around = await cli(['convert-peft', 'adapter', '-o', '.', '--dry-run'], { cwd });
    expect(around.stderr).toContain(`-o ${cwd} contains the input directory`);
    for (const text of [names.stderr, inside.stderr, around.stderr]) expect(text).not.toMatch(/(?<![.\w])(runName|outDir)\b/);
  });
});

describe("an option's value that spells a global flag (`--run-name -V`)", () => {
  it('is the value, as getopt and `--run-name=-V` read it: never the version, help, --json or another global flag', async () => {
    const cwd = tempDir();
    const version = await cli(['runs', 'start', '--run-name', '-V', '--json'], { cwd });
    expect(version.code, version.stderr).toBe(EXIT_CODES.OK);
    expect(version.json()).toMatchObject({ runName: '-V', created: true });
    const stored = await createTrackingClient({ trackingUri: `file:${join(cwd, 'mlruns')}`, env: {} }).getRun(version.json().runId);
    expect(stored.info.runName).toBe('-V');

    // A value spelling --json is the run name: the output stays text (the run id alone).
    const json = await cli(['runs', 'start', '--new', '--run-name', '--json', '--tag', 'note=-q'], { cwd });
    expect(json.code, json.stderr).toBe(EXIT_CODES.OK);
    const runId = json.stdout.trim();
    expect(runId).toMatch(/^[0-9a-f]{32}$/);
    const named = await createTrackingClient({ trackingUri: `file:${join(cwd, 'mlruns')}`, env: {} }).getRun(runId);
    expect(named.info.runName).toBe('--json');
    expect(named.data.tags.note).toBe('-q');

    // A short option's value too (`-o -V` writes the archive `-V`), and a --help value is no help.
    mkdirSync(join(cwd, 'ckpt'));
    writeFileSync(join(cwd, 'ckpt', 'w.bin'), 'weights');
    const archive = await cli(['archive', 'ckpt', '-o', '-V', '--manifest', '--help', '--json'], { cwd });
    expect(archive.code, archive.stderr).toBe(EXIT_CODES.OK);
    expect(archive.json()).toMatchObject({ archivePath: join(cwd, '-V'), manifestPath: join(cwd, '--help') });
    expect(existsSync(join(cwd, '-V')) && existsSync(join(cwd, '--help'))).toBe(true);

    // Only a real -V asks for the version (main.ts exits 0 on a closed pipe for it alone).
    expect(asksForHelpOrVersion(['runs', 'start', '--run-name', '-V'])).toBe(false);
    expect(asksForHelpOrVersion(['runs', 'start', '-V'])).toBe(true);
  });
});

describe('an option of a command given before the command name', () => {
  it('says which command it belongs to and that it goes after the command name, in text and --json', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'out'));
    const text = await cli(['--artifact-path', 'logs', 'dir', 'out', '--stage', 'training'], { cwd });
    expect(text.code).toBe(EXIT_CODES.USAGE);
    expect(text.stderr).toContain("unknown option '--artifact-path'");
    expect(text.stderr).toContain('`--artifact-path` is an option of `dir`: give it after the command name, as in `artifact-uploader dir ... --artifact-path <path>`.');

    const json = await cli(['--json', '--older-than', '2d', 'resume', 'clear'], { cwd });
    expect(json.code).toBe(EXIT_CODES.USAGE);
    expect(json.json()).toMatchObject({
      ok: false,
      command: 'resume clear',
      error: { code: 'USAGE', hint: '`--older-than` is an option of `resume clear`: give it after the command name, as in `artifact-uploader resume clear ... --older-than <age>`. Run `artifact-uploader resume clear --help` for usage.' },
    });

    // A short option, spelled as that command has it (`-o` is `--out <dir>` of convert-peft, `<path>` of archive).
    const short = await cli(['-o', 'peft', 'convert-peft', 'out'], { cwd });
    expect(short.stderr).toContain('`-o` is an option of `convert-peft`: give it after the command name, as in `artifact-uploader convert-peft ... --out <dir>`.');

    // Given to a command that has no such option: the commands that have it.
    const other = await cli(['dir', 'out', '--stage', 'training', '--metrics', 'm.json'], { cwd });
    expect(other.code).toBe(EXIT_CODES.USAGE);
    expect(other.stderr).toContain('`--metrics` is an option of `training`, not of `dir`.');
    const none = await cli(['--alias', 'champion'], { cwd });
    expect(none.stderr).toContain('`--alias` is an option of `training`, `conversion` and `register`: give it after the command name, as in `artifact-uploader training ... --alias <alias>`.');
  });

  it("drops commander's did-you-mean for an option that is another command's (`--tag` is not a misspelt `--stage`), in text and --json", async () => {
    const cwd = tempDir();
    const text = await cli(['--tag', 'team=ml', 'runs', 'start'], { cwd });
    expect(text.code).toBe(EXIT_CODES.USAGE);
    expect(text.stderr).toContain("unknown option '--tag'");
    expect(text.stderr).toContain('`--tag` is an option of `runs start`: give it after the command name, as in `artifact-uploader runs start ... --tag <key=value>`.');
    expect(text.stderr).not.toContain('Did you mean');

    const json = await cli(['--json', '--tag', 'team=ml', 'runs', 'start'], { cwd });
    expect(json.json()).toMatchObject({ ok: false, command: 'runs start', error: { code: 'USAGE', message: "unknown option '--tag'" } });

    // A misspelt option keeps commander's suggestion: no command has `--stag`.
    const typo = await cli(['--stag', 'training', 'file', 'x'], { cwd });
    expect(typo.stderr).toContain('(Did you mean --stage?)');
  });
});

describe('--config-dir and --journal-dir given an empty value, and their variables naming a directory that is not valid UTF-8', () => {
  it('an empty --config-dir or --journal-dir ("$UNSET" in a script) is a usage error, as an empty --run-id or --tracking-uri is, not a fallback to the variable', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'ckpt'));
    writeFileSync(join(cwd, 'ckpt', 'w.bin'), 'weights');
    const env = baseEnv({ ARTIFACT_UPLOADER_CONFIG_DIR: join(cwd, 'conf'), ARTIFACT_UPLOADER_JOURNAL_DIR: join(cwd, 'journal') });
    for (const [flag, variable] of [['--config-dir', 'ARTIFACT_UPLOADER_CONFIG_DIR'], ['--journal-dir', 'ARTIFACT_UPLOADER_JOURNAL_DIR']] as const) {
      for (const value of ['', ' ']) {
        const run = await cli(['training', 'ckpt', flag, value, '--dry-run', '--json'], { cwd, env });
        expect(run.code, `${flag} ${JSON.stringify(value)}\n${run.stderr}`).toBe(EXIT_CODES.USAGE);
        expect(run.json()).toMatchObject({ ok: false, command: 'training', error: { code: 'USAGE', message: expect.stringContaining(`expected a directory; leave ${flag} out to use ${variable}`), hint: 'Run `artifact-uploader training --help` for usage.' } });
      }
    }
    expect(existsSync(join(cwd, 'mlruns'))).toBe(false);
  });

  it('ARTIFACT_UPLOADER_CONFIG_DIR or _JOURNAL_DIR naming a directory whose name is not valid UTF-8 says so (as a path argument does), not "does not exist" or an empty journal', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'ckpt'));
    writeFileSync(join(cwd, 'ckpt', 'w.bin'), 'weights');
    // Latin-1 bytes on disk; Node.js hands the variable over with U+FFFD where 0xff was.
    const latin1 = (name: string) => Buffer.concat([Buffer.from(join(cwd, name)), Buffer.from([0xff])]);
    mkdirSync(latin1('conf-'));
    writeFileSync(Buffer.concat([latin1('conf-'), Buffer.from('/artifact-uploader.yaml')]), 'training:\n  checkpoint:\n    artifactPath: from-config\n');
    mkdirSync(latin1('journal-'));
    const config = await cli(['training', 'ckpt', '--dry-run', '--json'], { cwd, env: baseEnv({ ARTIFACT_UPLOADER_CONFIG_DIR: 'conf-\uFFFD' }) });
    expect(config.code, config.stderr).toBe(EXIT_CODES.USAGE);
    expect(config.json().error).toMatchObject({
      code: 'PATH_NOT_FOUND',
      path: join(cwd, 'conf-\uFFFD'),
      message: expect.stringMatching(/not valid UTF-8.*cannot be named in ARTIFACT_UPLOADER_CONFIG_DIR/),
      hint: 'Rename it to a UTF-8 name, or set ARTIFACT_UPLOADER_CONFIG_DIR to a symlink with a UTF-8 name that points at it (`ln -s`).',
    });
    const journal = await cli(['resume', 'list', '--json'], { cwd, env: baseEnv({ ARTIFACT_UPLOADER_JOURNAL_DIR: 'journal-\uFFFD' }) });
    expect(journal.code, journal.stderr).toBe(EXIT_CODES.USAGE);
    expect(journal.json().error).toMatchObject({ code: 'PATH_NOT_FOUND', path: join(cwd, 'journal-\uFFFD'), message: expect.stringContaining('cannot be named in ARTIFACT_UPLOADER_JOURNAL_DIR') });
    // The library reads the variables the same way (envPath).
    expect(() => resolveJournalDir({ env: { ARTIFACT_UPLOADER_JOURNAL_DIR: join(cwd, 'journal-\uFFFD') } })).toThrow(/cannot be named in ARTIFACT_UPLOADER_JOURNAL_DIR/);
    expect(existsSync(join(cwd, 'journal-\uFFFD'))).toBe(false);
  });
});
