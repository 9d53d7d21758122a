/**
 * The Python example of docs/python-pipelines.md, run as written with the test venv's python
 * (MLflow installed) against the built CLI (dist/cli.js) and a real MLflow server.
 */
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { createTrackingClient } from '../../src/mlflow/tracking-client.js';
import { runPython } from '../support/python.js';
import { describeWithServers, mlflowServer } from '../support/servers.js';
import { tempDir } from '../cli/helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** The ```python block right after the `<!-- example: python ... -->` marker. */
function pythonExample(): string {
  const doc = readFileSync(join(root, 'docs', 'python-pipelines.md'), 'utf8');
  const match = /<!-- example: python[^\n]*-->\n```python\n([\s\S]*?)\n```/.exec(doc);
  if (!match) throw new Error('docs/python-pipelines.md has no <!-- example: python --> block');
  return match[1]!;
}

/** What the docs' helper runs with: the test server, the built CLI as its command, no backoff. */
function helperEnv(): Record<string, string> {
  return {
    MLFLOW_TRACKING_URI: mlflowServer().url,
    ARTIFACT_UPLOADER_BIN: `'${process.execPath}' '${join(root, 'dist', 'cli.js')}'`,
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: '0',
  };
}

describeWithServers('docs/python-pipelines.md', () => {
  it('the helper uploads into the run Python started, and turns exit 2 into FixRequired', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'out', 'checkpoint-500'), { recursive: true });
    writeFileSync(join(cwd, 'out', 'checkpoint-500', 'adapter_model.safetensors'), Buffer.alloc(2048, 5));
    writeFileSync(join(cwd, 'out', 'checkpoint-500', 'adapter_config.json'), '{"r": 8}');
    writeFileSync(join(cwd, 'out', 'metrics.json'), '{"eval_loss": 0.41}');
    const stdout = await runPython(pythonExample(), {
      cwd,
      env: helperEnv(),
    });
    const runId = /^run ([0-9a-f]{32})$/m.exec(stdout)?.[1];
    expect(runId, stdout).toBeDefined();
    expect(stdout).toMatch(/^checkpoint uploaded\s+checkpoint$/m);
    expect(stdout).toMatch(/^metrics uploaded\s+metrics\/metrics\.json$/m);
    expect(stdout).toMatch(/^not uploaded: PATH_NOT_FOUND$/m);

    const client = createTrackingClient({ trackingUri: mlflowServer().url, env: {} });
    const run = await client.getRun(runId!);
    expect(run.info.status).toBe('FINISHED'); // the `with mlflow.start_run()` block ended it
    expect(run.data.params).toEqual({ lora_rank: '8' });
    const listing = await client.listArtifacts(runId!, 'checkpoint');
    expect(listing.files.map((f) => f.path).sort()).toEqual(['checkpoint/adapter_config.json', 'checkpoint/adapter_model.safetensors']);
  });

  it('the helper passes a path that starts with "-" after "--", and still gets the JSON answer', async () => {
    // The helper added --json after the arguments: behind a `--`, the CLI took it for one more
    // path (`benchmark -- -latency.json --json`), printed no JSON, and the helper raised.
    const cwd = tempDir();
    writeFileSync(join(cwd, '-latency.json'), '{"p50_ms": 12}');
    const helper = pythonExample().split('\nwith mlflow.start_run(')[0]!;
    const stdout = await runPython(`${helper}
with mlflow.start_run() as run:
    doc = artifact_uploader("benchmark", "--", "-latency.json", run_id=run.info.run_id)
    print("files", [f["artifactPath"] for r in doc["results"] for f in r["files"]])
`, {
      cwd,
      env: helperEnv(),
    });
    expect(stdout).toMatch(/^files \['[^']*-latency\.json'\]$/m);
  });

  it('the helper decodes the CLI\'s UTF-8 answer as UTF-8 whatever the locale (a file named "métriques.json")', async () => {
    // `text=True` decoded stdout with the locale's encoding: ASCII under a C locale without
    // UTF-8 mode (a UnicodeDecodeError), cp1252 on Windows (mojibake in every non-ASCII path).
    const cwd = tempDir();
    mkdirSync(join(cwd, 'out', 'checkpoint-500'), { recursive: true });
    writeFileSync(join(cwd, 'out', 'checkpoint-500', 'adapter_config.json'), '{"r": 8}');
    writeFileSync(join(cwd, 'out', 'checkpoint-500', 'métriques.json'), '{"eval_loss": 0.41}');
    const helper = pythonExample().split('\nwith mlflow.start_run(')[0]!;
    const stdout = await runPython(`${helper}
with mlflow.start_run() as run:
    doc = artifact_uploader("training", "out/checkpoint-500", run_id=run.info.run_id)
    print("files", ascii(sorted(f["artifactPath"] for r in doc["results"] for f in r["files"])))
`, {
      cwd,
      env: {
        ...helperEnv(),
        // A locale whose encoding is not UTF-8: Python's preferred encoding is then ASCII.
        LC_ALL: 'C',
        LANG: 'C',
        PYTHONUTF8: '0',
        PYTHONCOERCECLOCALE: '0',
        // The script's own prints (MLflow's "🏃 View run" line) in UTF-8; subprocess ignores this.
        PYTHONIOENCODING: 'utf-8',
      },
    });
    expect(stdout).toMatch(/^files \['checkpoint\/adapter_config\.json', 'checkpoint\/m\\xe9triques\.json'\]$/m);
  });

  it("the helper's default command gets the SIGTERM of proc.terminate() itself: exit 130 with its JSON, not an orphan that uploads on", async () => {
    // `npx --no-install artifact-uploader` (the default before) is npm, then `sh -c`, then the
    // CLI: SIGTERM (proc.terminate(), or the SIGKILL of subprocess.run's timeout) ended npm
    // (exit -15) and the CLI went on as an orphan, uploading after the pipeline gave up on it.
    const cwd = tempDir();
    // The project as `npm install artifact-uploader` leaves it: the bin linked into node_modules/.bin.
    mkdirSync(join(cwd, 'node_modules', '.bin'), { recursive: true });
    symlinkSync(root, join(cwd, 'node_modules', 'artifact-uploader'));
    symlinkSync(join('..', 'artifact-uploader', 'dist', 'cli.js'), join(cwd, 'node_modules', '.bin', 'artifact-uploader'));
    writeFileSync(join(cwd, 'package.json'), '{"name": "pipeline", "private": true, "dependencies": {"artifact-uploader": "*"}}');
    const helper = pythonExample().split('\nwith mlflow.start_run(')[0]!;
    const stdout = await runPython(`${helper}
import socket, threading
# A tracking server that takes the request and never answers: the CLI is mid-request when
# terminated, and the test knows it is (the connection arrived), without a sleep.
server = socket.create_server(("127.0.0.1", 0))
arrived = threading.Event()
conns = []
def accept():
    while True:
        conns.append(server.accept()[0])
        arrived.set()
threading.Thread(target=accept, daemon=True).start()
env = dict(os.environ, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{server.getsockname()[1]}", MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
proc = subprocess.Popen([*ARTIFACT_UPLOADER, "--json", "runs", "end", "--run-id", "0" * 32], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
arrived.wait()
proc.terminate()
code = proc.wait()
for conn in conns:
    conn.close()  # an orphan's request fails now, so its stdout closes and communicate returns
out, err = proc.communicate()
print("exit", code)
print("error", json.loads(out)["error"]["code"])
`, { cwd });
    expect(stdout).toMatch(/^exit 130$/m);
    expect(stdout).toMatch(/^error ABORTED$/m);
  });
});
