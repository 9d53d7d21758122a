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
