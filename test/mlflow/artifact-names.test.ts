/**
 * Issue 13, "Why" 7: the artifact-name rules are decided by what MLflow's Python client can
 * round-trip, measured against a real server, not by reading its code. A name with every
 * printable ASCII character (and `%XX` forms) is logged and downloaded with `MlflowClient`;
 * exactly the names it cannot give back unchanged are refused by `artifactPathProblem`, and
 * the uploader refuses them before sending a byte.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { artifactPathProblem } from '../../src/mlflow/artifacts-api.js';
import { ArtifactUploader } from '../../src/uploader/artifact-uploader.js';
import { listRunArtifacts } from '../faults/helpers.js';
import { runPython } from '../support/python.js';
import { describeWithServers, mlflowServer } from '../support/servers.js';
import { scratch, serverRun } from '../uploader/helpers.js';

/** Every printable ASCII character but "/" (the separator), plus `%` escapes. */
const CASES = [...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).filter((c) => c !== '/'), '%41', '%2F', '%zz'];

/** Names the rules refuse although MLflow's Python client round-trips them on Linux, and why. */
const REFUSED_ON_PURPOSE: Record<string, string> = {
  '\\': 'a directory separator for MLflow on Windows (and refused by its server there)',
};

describeWithServers("artifact names MLflow's Python client cannot round-trip (issue 13)", () => {
  it('refuses exactly the names the Python client cannot log, list and download unchanged: "#", "?" and "%XX"', async () => {
    const { url } = mlflowServer();
    const script = `
import json, os, sys, tempfile
from mlflow import MlflowClient
client = MlflowClient(sys.argv[1])
run = client.create_run(client.create_experiment('names-' + os.urandom(4).hex())).info.run_id
out = {}
for i, case in enumerate(json.loads(sys.argv[2])):
    name = f'n{case}n.txt'
    src = os.path.join(tempfile.mkdtemp(), name)
    body = f'body {i}'.encode()
    with open(src, 'wb') as f:
        f.write(body)
    try:
        client.log_artifact(run, src, artifact_path=f'c{i}')
        listed = [f.path for f in client.list_artifacts(run, f'c{i}')]
        got = client.download_artifacts(run, f'c{i}/{name}', tempfile.mkdtemp())
        same = listed == [f'c{i}/{name}'] and os.path.basename(got) == name and open(got, 'rb').read() == body
        out[case] = 'ok' if same else f'came back as {listed}'
    except Exception as e:
        out[case] = f'{type(e).__name__}: {str(e)[:100]}'
print(json.dumps(out))
`;
    const stdout = await runPython(script, { args: [url, JSON.stringify(CASES)], env: { MLFLOW_TRACKING_URI: url }, timeoutMs: 300_000 });
    const outcome = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, string>;
    const broken = CASES.filter((c) => outcome[c] !== 'ok');
    // The finding the rules are built on (if MLflow changes, this says so first).
    expect(broken.sort()).toEqual(['#', '%2F', '%41', '?']);
    for (const c of CASES) {
      const refused = artifactPathProblem(`n${c}n.txt`) !== undefined;
      if (broken.includes(c)) expect(refused, `"${c}" (${outcome[c]}) must be refused`).toBe(true);
      else expect(refused, `"${c}" round-trips, so it must be accepted`).toBe(c in REFUSED_ON_PURPOSE);
    }
  });

  it('a directory with a "?" name is refused before any byte is sent', async () => {
    const { url } = mlflowServer();
    const { runId } = await serverRun(url);
    const dir = join(scratch('au-names-'), 'out');
    mkdirSync(dir);
    writeFileSync(join(dir, 'fine.txt'), 'fine');
    writeFileSync(join(dir, 'what?.txt'), 'not downloadable');
    const uploader = new ArtifactUploader({ stage: 'training', runId, trackingUri: url, env: {} });
    const error = await uploader.uploadDirectory(dir, { artifactPath: 'd' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'INVALID_ARTIFACT_PATH' });
    expect((error as Error).message).toContain('"?"');
    expect(await listRunArtifacts(url, runId)).toEqual([]);
  });
});
