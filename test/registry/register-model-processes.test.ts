/**
 * registerModel across real OS processes: four Node processes (the built package, as users run
 * it) register the same run's model under one idempotency key at once. One version exists at the
 * end, every process reports it, and only its logged model is left (Python client's view).
 * And the CLI killed (SIGKILL) as the server's answer to its version create arrives: the
 * version it leaves carries no internal tag, and a rerun with the same key completes it; killed
 * while it downloads the run's files, the next register removes what it had downloaded; killed
 * between the copy and the version, a rerun with the same key makes the version of the READY
 * logged model the killed one left, without copying the files again.
 */
import { existsSync, readdirSync, utimesSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect, it } from 'vitest';
import { STALE_TEMP_MS } from '../../src/core/atomic-write.js';
import { startRun } from '../../src/run/start-run.js';
import { ArtifactUploader } from '../../src/uploader/artifact-uploader.js';
import { runAndKill, runToEnd } from '../support/crash-harness.js';
import { useFaultProxies } from '../support/fault-proxy.js';
import { runNodeScript } from '../support/processes.js';
import { runPython } from '../support/python.js';
import { describeWithServers, mlflowServer } from '../support/servers.js';
import { registerModel } from '../../src/registry/register-model.js';
import { hashTree, scratch, writeTree } from '../uploader/helpers.js';

const startProxy = useFaultProxies();

const DIST = resolve(__dirname, '..', '..', 'dist', 'index.js');

const CHILD = `
const [dist, trackingUri, runId, name, key] = process.argv.slice(1);
const { registerModel } = await import(dist);
const r = await registerModel({ name, runId, artifactPath: 'model', alias: 'champion', idempotencyKey: key, trackingUri, env: {} });
process.stdout.write(JSON.stringify({ version: r.version, modelId: r.modelId, created: r.created, aliases: r.aliases }) + '\\n');
`;

interface ChildResult {
  version: string;
  modelId: string;
  created: boolean;
  aliases: string[];
}

function runChild(args: string[]): Promise<ChildResult> {
  return runNodeScript<ChildResult>(CHILD, args);
}

describeWithServers('registerModel across processes', () => {
  it('four processes, one key: one version, everyone gets it', async () => {
    if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run \`npm run build\` first (npm test does)`);
    const { url } = mlflowServer();
    const run = await startRun({ trackingUri: url, experimentName: `registry-procs-${process.pid}-${Date.now()}`, activate: false, env: {} });
    const dir = writeTree(scratch('au-registry-procs-'), { 'weights.bin': Buffer.alloc(4096, 5), 'config.json': '{}' });
    const uploader = new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri: url, env: {} });
    await uploader.uploadDirectory(dir, { artifactPath: 'model' }).finally(() => uploader.close());
    const name = `procs-${process.pid}-${Date.now()}`;
    const key = `procs-key-${Date.now()}`;

    const results = await Promise.all([1, 2, 3, 4].map(() => runChild([pathToFileURL(DIST).href, url, run.runId, name, key])));
    expect(new Set(results.map((r) => r.version))).toEqual(new Set([results[0]!.version]));
    expect(new Set(results.map((r) => r.modelId)).size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    for (const r of results) expect(r.aliases).toEqual(['champion']);

    const stdout = await runPython(
      `
import json, sys
from mlflow import MlflowClient
c = MlflowClient(tracking_uri=sys.argv[1])
versions = c.search_model_versions(f"name='{sys.argv[2]}'")
alias = c.get_model_version_by_alias(sys.argv[2], 'champion')
models = c.search_logged_models(experiment_ids=[sys.argv[3]])
print(json.dumps({"versions": [v.version for v in versions], "alias": alias.version, "run_id": alias.run_id, "models": [m.model_id for m in models]}))
`,
      { args: [url, name, run.experimentId!] },
    );
    const view = JSON.parse(stdout.trim().split('\n').pop()!) as { versions: string[]; alias: string; run_id: string; models: string[] };
    expect(view.versions).toEqual([results[0]!.version]);
    expect(view.alias).toBe(results[0]!.version);
    expect(view.run_id).toBe(run.runId);
    expect(view.models).toEqual([results[0]!.modelId]);
  });

  it('a register killed as its version was made leaves no artifact_uploader.create_id tag on it, and a rerun with the same key completes it', async () => {
    // The version's one-off create id was a tag, removed by a request after the create: a
    // process killed before that request left it on the version for good (the MLflow UI showed
    // it, and the rerun returned it among the version's tags).
    const { url } = mlflowServer();
    const run = await startRun({ trackingUri: url, experimentName: `registry-killed-${process.pid}-${Date.now()}`, activate: false, env: {} });
    const dir = writeTree(scratch('au-registry-killed-'), { 'weights.bin': Buffer.alloc(2048, 3), 'config.json': '{}' });
    const uploader = new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri: url, env: {} });
    await uploader.uploadDirectory(dir, { artifactPath: 'model' }).finally(() => uploader.close());
    const name = `killed-${process.pid}-${Date.now()}`;
    const key = `killed-key-${Date.now()}`;
    const proxy = await startProxy(url);

    const killed = await runAndKill({
      argv: ['register', name, '--artifact-path', 'model', '--alias', 'champion', '--idempotency-key', key, '--run-id', run.runId, '--json'],
      env: { MLFLOW_TRACKING_URI: proxy.url },
      proxy,
      at: { answer: (r) => r.method === 'POST' && r.path.includes('model-versions/create') },
    });
    expect(killed.requests.some((r) => r.path.includes('model-versions/create') && r.fault === 'drop-response')).toBe(true);
    const versions = async () =>
      JSON.parse(
        (
          await runPython(
            `
import json, sys
from mlflow import MlflowClient
c = MlflowClient(tracking_uri=sys.argv[1])
# search_model_versions does not fill in aliases: each version is read by get_model_version
print(json.dumps([{"version": v.version, "tags": v.tags, "aliases": list(c.get_model_version(v.name, v.version).aliases)} for v in c.search_model_versions(f"name='{sys.argv[2]}'")]))
`,
            { args: [url, name] },
          )
        )
          .trim()
          .split('\n')
          .pop()!,
      ) as Array<{ version: string; tags: Record<string, string>; aliases: string[] }>;
    expect(await versions()).toEqual([{ version: '1', tags: { 'artifact_uploader.idempotency_key': key }, aliases: [] }]);

    const rerun = await registerModel({ name, runId: run.runId, artifactPath: 'model', alias: 'champion', idempotencyKey: key, trackingUri: url, env: {} });
    expect(rerun).toMatchObject({ version: '1', created: false, aliases: ['champion'] });
    expect(rerun.tags).toEqual({});
    expect(await versions()).toEqual([{ version: '1', tags: { 'artifact_uploader.idempotency_key': key }, aliases: ['champion'] }]);
  });

  it("a register killed while it downloads the run's files (subprocess.run's timeout) leaves its download directory in TMPDIR, and the next register removes it", async () => {
    // A SIGKILL runs no `finally`: the directory the run's files are copied through stayed in
    // the temp dir for good, a model's size per killed registration, and nothing ever removed it.
    const { url } = mlflowServer();
    const run = await startRun({ trackingUri: url, experimentName: `registry-killed-download-${process.pid}-${Date.now()}`, activate: false, env: {} });
    const dir = writeTree(scratch('au-registry-download-'), { 'weights.bin': Buffer.alloc(4096, 9), 'config.json': '{}' });
    const uploader = new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri: url, env: {} });
    await uploader.uploadDirectory(dir, { artifactPath: 'model' }).finally(() => uploader.close());
    const tmp = scratch('au-registry-tmpdir-');
    const proxy = await startProxy(url);
    const options = {
      argv: ['register', `killed-download-${process.pid}-${Date.now()}`, '--artifact-path', 'model', '--run-id', run.runId, '--json'],
      env: { MLFLOW_TRACKING_URI: proxy.url, TMPDIR: tmp, TMP: tmp, TEMP: tmp },
      proxy,
    };
    // `au-register-XXXXXX` was the name before: mkdtemp's, which names no owner to judge.
    const downloads = () => readdirSync(tmp).filter((name) => /^(?:au|artifact-uploader)-register-/.test(name));

    await runAndKill({ ...options, at: { request: (r) => r.path.includes('/get-artifact') } });
    expect(downloads()).toHaveLength(1); // the killed process's, left behind
    // Scratch directories of dead processes go once untouched for STALE_TEMP_MS (makeTempDir).
    const past = new Date(Date.now() - STALE_TEMP_MS - 60_000);
    utimesSync(join(tmp, downloads()[0]!), past, past);

    const rerun = await runToEnd(options);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ ok: true, registeredModel: { files: 2 } });
    expect(downloads()).toEqual([]);
  });

  it('a register killed mid-copy leaves a PENDING logged model, and a rerun with the same key removes it (no leftover per killed attempt)', async () => {
    // The killed process's logged model stayed LOGGED_MODEL_PENDING for good (MLflow's own
    // log_model leaves one too when killed), one more in the experiment per killed retry.
    const { url } = mlflowServer();
    const run = await startRun({ trackingUri: url, experimentName: `registry-killed-pending-${process.pid}-${Date.now()}`, activate: false, env: {} });
    const dir = writeTree(scratch('au-registry-pending-'), { 'weights.bin': Buffer.alloc(4096, 7), 'config.json': '{}' });
    const uploader = new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri: url, env: {} });
    await uploader.uploadDirectory(dir, { artifactPath: 'model' }).finally(() => uploader.close());
    const proxy = await startProxy(url);
    const key = `pending-key-${Date.now()}`;
    const options = {
      argv: ['register', `killed-pending-${process.pid}-${Date.now()}`, '--artifact-path', 'model', '--idempotency-key', key, '--run-id', run.runId, '--json'],
      env: { MLFLOW_TRACKING_URI: proxy.url },
      proxy,
    };
    const loggedModels = async () =>
      JSON.parse(
        (
          await runPython(
            `
import json, sys
from mlflow import MlflowClient
c = MlflowClient(tracking_uri=sys.argv[1])
print(json.dumps(sorted([m.model_id, str(m.status)] for m in c.search_logged_models(experiment_ids=[sys.argv[2]]))))
`,
            { args: [url, run.experimentId!] },
          )
        )
          .trim()
          .split('\n')
          .pop()!,
      ) as Array<[string, string]>;

    await runAndKill({ ...options, at: { request: (r) => r.path.includes('/get-artifact') } });
    const left = await loggedModels();
    expect(left.map(([, status]) => status)).toEqual(['PENDING']);
    await runAndKill({ ...options, at: { request: (r) => r.path.includes('/get-artifact') } });
    expect((await loggedModels()).map(([, status]) => status)).toEqual(['PENDING', 'PENDING']);

    const rerun = await runToEnd(options);
    const doc = JSON.parse(rerun.stdout) as { ok: boolean; registeredModel: { modelId: string; created: boolean } };
    expect(doc).toMatchObject({ ok: true, registeredModel: { created: true, files: 2 } });
    expect(await loggedModels()).toEqual([[doc.registeredModel.modelId, 'READY']]);
  });

  it('a register killed between the copy and the version leaves a READY logged model, and a rerun with the same key makes its version from it (one logged model, no second copy)', async () => {
    // The rerun made a second logged model and copied the files again; the READY one of the
    // killed call stayed in the experiment for good, files and all, with no version.
    const { url } = mlflowServer();
    const run = await startRun({ trackingUri: url, experimentName: `registry-killed-ready-${process.pid}-${Date.now()}`, activate: false, env: {} });
    const dir = writeTree(scratch('au-registry-ready-'), { 'weights.bin': Buffer.alloc(4096, 11), 'sub/config.json': '{"layers": 2}' });
    const uploader = new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri: url, env: {} });
    await uploader.uploadDirectory(dir, { artifactPath: 'model' }).finally(() => uploader.close());
    const proxy = await startProxy(url);
    const name = `killed-ready-${process.pid}-${Date.now()}`;
    const key = `ready-key-${Date.now()}`;
    const options = {
      argv: ['register', name, '--artifact-path', 'model', '--alias', 'champion', '--idempotency-key', key, '--run-id', run.runId, '--json'],
      env: { MLFLOW_TRACKING_URI: proxy.url },
      proxy,
    };
    const view = async () =>
      JSON.parse(
        (
          await runPython(
            `
import hashlib, json, os, sys, tempfile
import mlflow
from mlflow import MlflowClient
uri, exp_id, name, run_id = sys.argv[1:5]
mlflow.set_tracking_uri(uri)
c = MlflowClient()
out = {"models": sorted([m.model_id, str(m.status)] for m in c.search_logged_models(experiment_ids=[exp_id])), "versions": [], "download": {}}
out["versions"] = [[v.version, v.source] for v in c.search_model_versions(f"name='{name}'")]
out["run_outputs"] = [o.model_id for o in c.get_run(run_id).outputs.model_outputs]
if out["versions"]:
    d = mlflow.artifacts.download_artifacts(f"models:/{name}@champion", dst_path=tempfile.mkdtemp())
    for root, _dirs, names in os.walk(d):
        for n in names:
            p = os.path.join(root, n)
            out["download"][os.path.relpath(p, d).replace(os.sep, "/")] = hashlib.sha256(open(p, "rb").read()).hexdigest()
print(json.dumps(out))
`,
            { args: [url, run.experimentId!, name, run.runId] },
          )
        )
          .trim()
          .split('\n')
          .pop()!,
      ) as { models: Array<[string, string]>; versions: Array<[string, string]>; run_outputs: string[]; download: Record<string, string> };

    const killed = await runAndKill({ ...options, at: { request: (r) => r.method === 'POST' && r.path.includes('model-versions/create') } });
    expect(killed.requests.some((r) => r.path.includes('/get-artifact'))).toBe(true);
    const left = await view();
    expect(left.models.map(([, status]) => status)).toEqual(['READY']);
    expect(left.versions).toEqual([]);
    const [leftId] = left.models[0]!;

    const rerun = await runToEnd(options);
    const doc = JSON.parse(rerun.stdout) as { ok: boolean; registeredModel: { modelId: string; version: string; created: boolean; aliases: string[] } };
    expect(doc).toMatchObject({ ok: true, registeredModel: { modelId: leftId, version: '1', created: true, aliases: ['champion'] } });
    // The files were not copied again: no download from the run, no logged model made.
    expect(rerun.requests.filter((r) => r.path.includes('/get-artifact') || (r.method === 'POST' && /\/logged-models$/.test(r.path)))).toEqual([]);
    const after = await view();
    expect(after.models).toEqual([[leftId, 'READY']]);
    expect(after.versions).toEqual([['1', `models:/${leftId}`]]);
    expect(after.run_outputs).toEqual([leftId]);
    expect(after.download).toEqual(hashTree(dir));
  });
});
