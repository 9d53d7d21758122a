/**
 * Running the official Python clients from tests, to cross-check what the library wrote:
 * MLflow's `MlflowClient`, `huggingface_hub`, `safetensors`, boto3.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { venvBin } from './python-env.js';

/** The test venv's python (installed by the global setup). */
export function pythonExecutable(): string {
  const python = venvBin('python');
  if (!existsSync(python)) throw new Error(`test venv python not found at ${python}; the global setup installs it (run the tests through vitest)`);
  return python;
}

/**
 * Runs a Python script with the venv's python and returns its stdout. Fails with the script's
 * stderr when it exits non-zero.
 */
export function runPython(script: string, opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number; args?: string[] } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      pythonExecutable(),
      ['-c', script, ...(opts.args ?? [])],
      {
        env: { ...process.env, PYTHONUNBUFFERED: '1', MLFLOW_ALLOW_FILE_STORE: 'true', HF_HUB_DISABLE_XET: '1', ...opts.env },
        cwd: opts.cwd,
        timeout: opts.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`python failed: ${error.message}\n--- stderr ---\n${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

/**
 * Downloads a run's artifacts (or one artifact path) with the official `MlflowClient` and
 * returns `{ relativePath: sha256 }` for every file downloaded.
 */
export async function pythonArtifactHashes(trackingUri: string, runId: string, artifactPath = '', env: Record<string, string> = {}): Promise<Record<string, string>> {
  const script = `
import hashlib, json, os, sys, tempfile
from mlflow import MlflowClient
uri, run_id, path = sys.argv[1], sys.argv[2], sys.argv[3]
client = MlflowClient(tracking_uri=uri)
with tempfile.TemporaryDirectory() as dst:
    local = client.download_artifacts(run_id, path, dst)
    out = {}
    if os.path.isfile(local):
        out[os.path.basename(local)] = hashlib.sha256(open(local, 'rb').read()).hexdigest()
    else:
        for root, _dirs, files in os.walk(local):
            for name in files:
                full = os.path.join(root, name)
                h = hashlib.sha256()
                with open(full, 'rb') as f:
                    for chunk in iter(lambda: f.read(1 << 20), b''):
                        h.update(chunk)
                out[os.path.relpath(full, local).replace(os.sep, '/')] = h.hexdigest()
    print(json.dumps(out))
`;
  const stdout = await runPython(script, { args: [trackingUri, runId, artifactPath], env });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Record<string, string>;
}

/** Creates a run with the official client and returns its id. */
export async function pythonCreateRun(trackingUri: string, experimentName = 'python-created', env: Record<string, string> = {}): Promise<string> {
  const script = `
import sys
from mlflow import MlflowClient
client = MlflowClient(tracking_uri=sys.argv[1])
exp = client.get_experiment_by_name(sys.argv[2])
exp_id = exp.experiment_id if exp else client.create_experiment(sys.argv[2])
print(client.create_run(exp_id).info.run_id)
`;
  const stdout = await runPython(script, { args: [trackingUri, experimentName], env });
  return stdout.trim().split('\n').pop() ?? '';
}
