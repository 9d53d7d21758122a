/**
 * `npm run demo` (examples/demo.mjs against the built package) in a fresh working directory with
 * no MLflow settings: every stage's output lands in ./mlruns in MLflow's FileStore layout, and
 * MLflow's own Python client reads it back.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pythonArtifactHashes } from '../support/python.js';
import { describeWithServers } from '../support/servers.js';
import { baseEnv, tempDir } from './helpers.js';

const demo = fileURLToPath(new URL('../../examples/demo.mjs', import.meta.url));
const dist = fileURLToPath(new URL('../../dist/index.js', import.meta.url));

interface DemoSummary {
  ok: boolean;
  runId: string;
  experimentId: string;
  artifactsDir: string;
  artifacts: Array<{ path: string; size: number }>;
  results: Array<{ stage: string; kind: string; status: string }>;
}

function runDemo(cwd: string, args: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // MLFLOW_RUN_ID and MLFLOW_TRACKING_URI set on purpose: the demo must ignore them.
    const env = baseEnv({ MLFLOW_TRACKING_URI: 'http://127.0.0.1:9', MLFLOW_RUN_ID: 'f'.repeat(32) }) as NodeJS.ProcessEnv;
    execFile(process.execPath, [demo, ...args], { cwd, env, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const EXPECTED_ARTIFACTS = [
  'benchmark/results.csv',
  'benchmark/results.json',
  'best_trial_checkpoint.manifest.json',
  'best_trial_checkpoint.tar.gz',
  'checkpoint/config.json',
  'checkpoint/model.safetensors',
  'checkpoint/trainer_state.json',
  'checkpoint/training_args.json',
  'metrics/metrics.json',
  'onnx/model.onnx',
];

let cwd: string;
let summary: DemoSummary;

beforeAll(async () => {
  expect(existsSync(dist), 'dist/ is missing: run `npm run build` (npm test does it)').toBe(true);
  cwd = mkdtempSync(join(tmpdir(), 'au-demo-'));
  const run = await runDemo(cwd, ['--json']);
  expect(run.code, run.stderr).toBe(0);
  summary = JSON.parse(run.stdout) as DemoSummary;
});

afterAll(() => {
  if (cwd) rmSync(cwd, { recursive: true, force: true });
});

describe('the demo', () => {
  it('uploads every stage into ./mlruns of the working directory, in the FileStore layout', () => {
    expect(summary.ok).toBe(true);
    expect(summary.results.map((r) => `${r.stage}:${r.kind}:${r.status}`)).toEqual([
      'training:checkpoint:uploaded',
      'training:metrics:uploaded',
      'conversion:onnxModel:uploaded',
      'benchmark:results:uploaded',
      'benchmark:results:uploaded',
      'hpo:bestTrialArchive:uploaded',
    ]);
    const runDir = join(cwd, 'mlruns', summary.experimentId, summary.runId);
    expect(summary.artifactsDir).toBe(join(runDir, 'artifacts'));
    expect(summary.artifacts.map((a) => a.path)).toEqual(EXPECTED_ARTIFACTS);
    expect(readFileSync(join(runDir, 'meta.yaml'), 'utf8')).toMatch(/status: 3\b/); // FINISHED
    expect(readFileSync(join(cwd, 'mlruns', summary.experimentId, 'meta.yaml'), 'utf8')).toContain('name: artifact-uploader-demo');
    const manifest = JSON.parse(readFileSync(join(runDir, 'artifacts', 'best_trial_checkpoint.manifest.json'), 'utf8')) as { files: Array<{ path: string }> };
    expect(manifest.files.map((f) => f.path)).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
  });

  it('prints where everything went and how to look at it', async () => {
    const run = await runDemo(tempDir());
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri ./mlruns');
    expect(run.stdout).toMatch(/training\s+checkpoint\s+-> checkpoint\s+4 file\(s\)/);
    expect(run.stdout).toContain('checkpoint/model.safetensors');
  });
});

describeWithServers('the demo, read by MLflow', () => {
  it("MLflow's Python client downloads every artifact with the same bytes", async () => {
    const hashes = await pythonArtifactHashes(`file:${join(cwd, 'mlruns')}`, summary.runId);
    const expected = Object.fromEntries(
      EXPECTED_ARTIFACTS.map((path) => [path, createHash('sha256').update(readFileSync(join(summary.artifactsDir, path))).digest('hex')]),
    );
    expect(hashes).toEqual(expected);
  });
});
