/**
 * Step 4 of docs/getting-started.md, the shell block, run as written with bash against the built
 * CLI and a real MLflow server (only the server address and the path of dist/cli.js differ).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { createTrackingClient } from '../../src/mlflow/tracking-client.js';
import { describeWithServers, mlflowServer } from '../support/servers.js';
import { baseEnv, tempDir } from '../cli/helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

function shellExample(): string {
  const doc = readFileSync(join(root, 'docs', 'getting-started.md'), 'utf8');
  const match = /<!-- example: sh[^\n]*-->\n```sh\n([\s\S]*?)\n```/.exec(doc);
  if (!match) throw new Error('docs/getting-started.md has no <!-- example: sh --> block');
  return match[1]!;
}

describeWithServers('docs/getting-started.md', () => {
  it('the CLI walkthrough uploads a checkpoint and metrics to a real server and ends the run', async () => {
    const script = shellExample()
      .replaceAll('http://127.0.0.1:5000', mlflowServer().url)
      .replaceAll('node dist/cli.js', `'${process.execPath}' '${join(root, 'dist', 'cli.js')}'`);
    const cwd = tempDir();
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile('bash', ['-c', script], { cwd, env: baseEnv() as NodeJS.ProcessEnv, timeout: 60_000 }, (error, out, err) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout: out, stderr: err }),
      ),
    );
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^training checkpoint: uploaded 2 file\(s\), 4\.0 KiB/m);
    expect(stdout).toMatch(/^training metrics: uploaded 1 file\(s\)/m);
    expect(stdout).toMatch(/^Dry run: nothing was uploaded/m);
    expect(stdout).toMatch(/^Run [0-9a-f]{32} ended: FINISHED/m);
    const runId = /Started run ([0-9a-f]{32})/.exec(stderr)?.[1];
    expect(runId, stderr).toBeDefined();

    const client = createTrackingClient({ trackingUri: mlflowServer().url, env: {} });
    const run = await client.getRun(runId!);
    expect(run.info.status).toBe('FINISHED');
    expect((await client.getExperiment(run.info.experimentId)).name).toBe('getting-started');
    const listing = await client.listArtifacts(runId!, 'checkpoint');
    expect(listing.files.map((f) => f.path).sort()).toEqual(['checkpoint/adapter_model.bin', 'checkpoint/trainer_state.json']);
  });
});
