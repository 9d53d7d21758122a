#!/usr/bin/env node
/**
 * The five-minute demo: `npm run demo` (builds, then runs this file).
 *
 * It needs no server. It builds a small, realistic set of pipeline outputs in a temp directory
 * (a training checkpoint with real safetensors weights, metrics.json, an ONNX-like model,
 * benchmark results, an HPO best-trial checkpoint), starts a run in the embedded MLflow store
 * ./mlruns of the working directory, uploads each output through its stage helper, and prints
 * where everything went and how to browse it with the MLflow UI.
 *
 * The demo always writes to ./mlruns, whatever MLFLOW_TRACKING_URI or MLFLOW_RUN_ID say, so it
 * can never touch a real tracking server. To upload to a server, see docs/getting-started.md.
 *
 * Options: --json prints one JSON summary on stdout instead of the tables (used by the test).
 */
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import {
  endRun,
  startRun,
  uploadBenchmarkArtifacts,
  uploadConversionArtifacts,
  uploadHpoArtifacts,
  uploadTrainingArtifacts,
  writeSafetensorsFile,
} from 'artifact-uploader';

const json = process.argv.includes('--json');
const say = (text = '') => {
  if (!json) process.stdout.write(`${text}\n`);
};

/** Deterministic float32 bytes, so every run of the demo uploads the same weights. */
function weights(count, seed) {
  const values = new Float32Array(count);
  let state = seed;
  for (let i = 0; i < count; i++) {
    state = (state * 1103515245 + 12345) % 2147483648;
    values[i] = (state / 2147483648 - 0.5) * 0.02;
  }
  return new Uint8Array(values.buffer);
}

async function writeJson(path, value) {
  await writeFile(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** Builds the example pipeline outputs under `root`. */
async function buildExample(root) {
  // Training: a checkpoint as transformers' Trainer writes it, and the run's metrics.
  const checkpoint = join(root, 'training', 'checkpoint-500');
  await mkdir(checkpoint, { recursive: true });
  const hidden = 32;
  await writeSafetensorsFile(
    join(checkpoint, 'model.safetensors'),
    [
      { name: 'model.embed_tokens.weight', dtype: 'F32', shape: [64, hidden], data: weights(64 * hidden, 1) },
      { name: 'model.layers.0.self_attn.q_proj.weight', dtype: 'F32', shape: [hidden, hidden], data: weights(hidden * hidden, 2) },
      { name: 'model.norm.weight', dtype: 'F32', shape: [hidden], data: weights(hidden, 3) },
    ],
    { metadata: { format: 'pt' } },
  );
  await writeJson(join(checkpoint, 'config.json'), { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: hidden, num_hidden_layers: 1, vocab_size: 64 });
  await writeJson(join(checkpoint, 'trainer_state.json'), { global_step: 500, epoch: 2.0, best_metric: 0.412, log_history: [{ step: 250, loss: 0.61 }, { step: 500, loss: 0.43 }] });
  await writeJson(join(checkpoint, 'training_args.json'), { learning_rate: 2e-4, per_device_train_batch_size: 8, num_train_epochs: 2, seed: 42 });
  const metrics = join(root, 'training', 'metrics.json');
  await writeJson(metrics, { train_loss: 0.43, eval_loss: 0.412, eval_accuracy: 0.871, train_runtime_s: 1834.2, step: 500 });

  // Conversion: an ONNX-like file (real ONNX files are protobuf; the uploader does not care).
  const onnx = join(root, 'conversion', 'model.onnx');
  await mkdir(join(root, 'conversion'), { recursive: true });
  await writeFile(onnx, Buffer.concat([Buffer.from('\x08\x07\x12\x07pytorch\x1a\x052.4.0ONNX-like demo model\n'), Buffer.from(weights(2048, 4))]));

  // Benchmark: results as JSON and CSV.
  const bench = join(root, 'benchmark');
  await mkdir(bench, { recursive: true });
  await writeJson(join(bench, 'results.json'), { model: 'demo-llama', tasks: { hellaswag: 0.412, arc_easy: 0.587 }, latency_ms: { p50: 41.2, p95: 58.9 } });
  await writeFile(join(bench, 'results.csv'), 'task,metric,value\nhellaswag,acc_norm,0.412\narc_easy,acc,0.587\nlatency,p50_ms,41.2\n');

  // HPO: the best trial's checkpoint directory; the helper archives it (tar.gz + manifest).
  const bestTrial = join(root, 'hpo', 'trial-7', 'checkpoint');
  await mkdir(bestTrial, { recursive: true });
  await writeSafetensorsFile(join(bestTrial, 'adapter_model.safetensors'), [
    { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', dtype: 'F32', shape: [8, hidden], data: weights(8 * hidden, 5) },
    { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', dtype: 'F32', shape: [hidden, 8], data: weights(hidden * 8, 6) },
  ]);
  await writeJson(join(bestTrial, 'adapter_config.json'), { peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj'], base_model_name_or_path: 'HuggingFaceTB/SmolLM2-135M' });
  await writeJson(join(root, 'hpo', 'trial-7', 'params.json'), { trial: 7, learning_rate: 3e-4, lora_r: 8, objective: 0.398 });

  return { checkpoint, metrics, onnx, benchmarkResults: [join(bench, 'results.json'), join(bench, 'results.csv')], bestTrial };
}

async function listFiles(dir, base = dir) {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(path, base)));
    else out.push({ path: relative(base, path).split('\\').join('/'), size: (await stat(path)).size });
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : 1));
}

const started = Date.now();
const workspace = await mkdtemp(join(tmpdir(), 'artifact-uploader-demo-'));
let run;
try {
  const example = await buildExample(workspace);
  say(`Built an example pipeline output in ${workspace}`);

  // The embedded store in the working directory, and a new run there (never MLFLOW_RUN_ID's).
  run = await startRun({ trackingUri: 'file:./mlruns', joinEnvRun: false, experimentName: 'artifact-uploader-demo', runName: `demo-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}` });
  say(`Started run ${run.runId} in experiment "artifact-uploader-demo" (${run.trackingUri})\n`);

  // Each stage helper finds the run (the active run) and uploads under its stage config.
  const training = await uploadTrainingArtifacts({ checkpointDir: example.checkpoint, metricsJsonPath: example.metrics });
  const conversion = await uploadConversionArtifacts({ onnxPath: example.onnx });
  const benchmark = await uploadBenchmarkArtifacts({ resultsPaths: example.benchmarkResults });
  const hpo = await uploadHpoArtifacts({ checkpointDir: example.bestTrial });

  const results = [
    ['training', training.checkpoint],
    ['training', training.metrics],
    ['conversion', conversion],
    ...benchmark.map((result) => ['benchmark', result]),
    ['hpo', hpo],
  ];
  const failed = results.filter(([, result]) => result.status !== 'uploaded');
  await endRun(failed.length === 0 ? 'FINISHED' : 'FAILED');

  const artifactsDir = join(process.cwd(), 'mlruns', run.experimentId, run.runId, 'artifacts');
  const stored = await listFiles(artifactsDir);
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ ok: failed.length === 0, runId: run.runId, experimentId: run.experimentId, trackingUri: run.trackingUri, artifactsDir, artifacts: stored, results: results.map(([stage, r]) => ({ stage, kind: r.kind, status: r.status, reason: r.reason, artifactPath: r.artifactPath, files: r.files.length, bytes: r.metrics.bytesSent })) }, null, 2)}\n`,
    );
  } else {
    say('Uploaded, stage by stage:');
    for (const [stage, result] of results) {
      const status = result.status === 'uploaded' ? `${result.metrics.filesSent} file(s), ${result.metrics.bytesSent} bytes` : `${result.status.toUpperCase()} ${result.reason ?? ''} ${result.error?.message ?? ''}`;
      say(`  ${stage.padEnd(10)} ${String(result.kind ?? '').padEnd(16)} -> ${String(result.artifactPath ?? '').padEnd(38)} ${status}`);
    }
    if (hpo.manifest) say(`  (the HPO archive's manifest lists ${hpo.manifest.fileCount} files with sha256; verification: ${hpo.manifest.verification.status})`);
    say(`\nThe run's artifacts, in MLflow's FileStore layout (${relative(process.cwd(), artifactsDir) || artifactsDir}):`);
    for (const file of stored) say(`  ${String(file.size).padStart(8)}  ${file.path}`);
    say(`\nDone in ${((Date.now() - started) / 1000).toFixed(1)} s. Look at it in the MLflow UI (pip install mlflow):`);
    say('  MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri ./mlruns');
    say(`  then open http://127.0.0.1:5000/#/experiments/${run.experimentId}/runs/${run.runId}`);
    say('Or list them from Python:');
    say(`  MLFLOW_ALLOW_FILE_STORE=true python -c "from mlflow import MlflowClient; print([f.path for f in MlflowClient('file:./mlruns').list_artifacts('${run.runId}')])"`);
    say('\nThe same from a shell or a Python pipeline (docs/cli.md, docs/python-pipelines.md):');
    say('  export MLFLOW_RUN_ID=$(npx artifact-uploader runs start --experiment-name artifact-uploader-demo)');
    say('  npx artifact-uploader training path/to/checkpoint --metrics path/to/metrics.json');
    say('  npx artifact-uploader runs end');
  }
  process.exitCode = failed.length === 0 ? 0 : 1;
} catch (error) {
  if (run) await endRun('FAILED').catch(() => undefined);
  process.stderr.write(`demo failed: ${error?.message ?? error}\n`);
  process.exitCode = 1;
} finally {
  await rm(workspace, { recursive: true, force: true });
}
