/**
 * The CLI as a Python pipeline calls it: values a script passes from unset variables, and the
 * `--json` document of a usage error, which a pipeline branches on.
 */
import { describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { createTrackingClient } from '../../src/mlflow/tracking-client.js';
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
