/**
 * registerModel against a real `mlflow server` (3.17.2), every outcome read back by the official
 * Python client: the version, its run_id and alias, the bytes through `models:/NAME@ALIAS`, the
 * logged model (READY, a run output); exactly once per key (a repeat, and 4 racing callers);
 * nothing half-made after a failure (fault proxy); a server without a registry; and the
 * embedded ./mlruns store, which is refused before anything is written.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { AbortedError, InvalidArgumentError, MlflowApiError, RegistryError } from '../../src/core/errors.js';
import { findRunSource } from '../../src/registry/model-files.js';
import { registerModel } from '../../src/registry/register-model.js';
import { createTrackingClient } from '../../src/mlflow/tracking-client.js';
import { withRun } from '../../src/run/run-context.js';
import { startRun } from '../../src/run/start-run.js';
import { uploadConversionArtifacts } from '../../src/stages/conversion.js';
import { uploadTrainingArtifacts } from '../../src/stages/training.js';
import { ArtifactUploader } from '../../src/uploader/artifact-uploader.js';
import { cli } from '../cli/helpers.js';
import { useFaultProxies } from '../support/fault-proxy.js';
import { runPython } from '../support/python.js';
import { describeWithServers, mlflowAzureServer, mlflowDirectS3Server, mlflowServer, servers } from '../support/servers.js';
import { hashTree, localRun, scratch, writeTree } from '../uploader/helpers.js';

const FAST_RETRY = { maxRetries: 2, backoffFactor: 0, backoffJitter: 0 };
const proxy = useFaultProxies();
let counter = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${Date.now()}-${++counter}`;

/** A run in a fresh experiment with a model folder uploaded to `onnx/`; returns the local copy too. */
async function runWithModel(trackingUri: string) {
  const run = await startRun({ trackingUri, experimentName: unique('registry'), activate: false, env: {} });
  const dir = writeTree(scratch('au-registry-'), { 'model.onnx': 'onnx graph bytes', 'model.onnx.data': Buffer.alloc(3000, 7), 'sub/config.json': '{"a":1}' });
  const uploader = new ArtifactUploader({ stage: 'conversion', runId: run.runId, trackingUri, env: {} });
  try {
    const result = await uploader.uploadDirectory(dir, { artifactPath: 'onnx' });
    expect(result.status).toBe('uploaded');
  } finally {
    await uploader.close();
  }
  return { runId: run.runId, experimentId: run.experimentId!, dir };
}

interface PythonView {
  versions: Array<{ version: string; run_id: string; aliases: string[]; status: string; source: string; tags: Record<string, string> }>;
  download?: Record<string, string>;
  alias_version?: string;
  alias_run_id?: string;
  logged_models: Array<{ model_id: string; status: string; source_run_id: string }>;
  run_outputs: string[];
}

/** What the official client sees of a registered model, an alias, an experiment's logged models and a run's outputs. */
async function pythonView(trackingUri: string, name: string, alias: string, experimentId: string, runId: string, env: Record<string, string> = {}): Promise<PythonView> {
  const script = `
import hashlib, json, os, sys, tempfile
import mlflow
from mlflow import MlflowClient
uri, name, alias, exp_id, run_id = sys.argv[1:6]
mlflow.set_tracking_uri(uri)
c = MlflowClient()
out = {"versions": [], "logged_models": [], "run_outputs": []}
try:
    q = '"' if "'" in name else "'"
    for v in c.search_model_versions(f"name={q}{name}{q}"):
        out["versions"].append({"version": v.version, "run_id": v.run_id, "aliases": list(v.aliases), "status": v.status, "source": v.source, "tags": v.tags})
except Exception as e:
    out["error"] = str(e)
if alias:
    try:
        mv = c.get_model_version_by_alias(name, alias)
        out["alias_version"], out["alias_run_id"] = mv.version, mv.run_id
        d = mlflow.artifacts.download_artifacts(f"models:/{name}@{alias}", dst_path=tempfile.mkdtemp())
        files = {}
        for root, _dirs, names in os.walk(d):
            for n in names:
                p = os.path.join(root, n)
                files[os.path.relpath(p, d).replace(os.sep, "/")] = hashlib.sha256(open(p, "rb").read()).hexdigest()
        out["download"] = files
    except Exception as e:
        out["alias_error"] = str(e)
for m in c.search_logged_models(experiment_ids=[exp_id]):
    out["logged_models"].append({"model_id": m.model_id, "status": str(m.status), "source_run_id": m.source_run_id})
r = c.get_run(run_id)
if r.outputs:
    out["run_outputs"] = [o.model_id for o in r.outputs.model_outputs]
print(json.dumps(out))
`;
  const stdout = await runPython(script, { args: [trackingUri, name, alias, experimentId, runId], env });
  return JSON.parse(stdout.trim().split('\n').pop()!) as PythonView;
}

describe('registerModel: refused before anything is sent', () => {
  it('a bad name, alias or key is a typed error with a hint', async () => {
    const base = { runId: '0a1b2c3d4e5f60718293a4b5c6d7e8f9', artifactPath: 'onnx', trackingUri: 'http://127.0.0.1:9' };
    for (const name of ['', 'team/model', 'a:b', '../x']) {
      const error = await registerModel({ ...base, name }).catch((e: unknown) => e);
      expect(error, name).toBeInstanceOf(RegistryError);
      expect((error as RegistryError).code).toBe('REGISTRY_INVALID_NAME');
      expect((error as RegistryError).hint).toMatch(/"\/" and ":"/);
    }
    for (const alias of ['latest', 'v3', 'has space', '']) {
      const error = await registerModel({ ...base, name: 'ok', alias }).catch((e: unknown) => e);
      expect((error as RegistryError).code, alias).toBe('REGISTRY_INVALID_ALIAS');
    }
    await expect(registerModel({ ...base, name: 'ok', idempotencyKey: "it's" })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'idempotencyKey' });
    await expect(registerModel({ ...base, name: 'ok', localPath: join(scratch(), 'missing') })).rejects.toMatchObject({ code: 'PATH_NOT_FOUND' });
  });

  it('a name MLflow stores but no models:/ URI can address ("?", "@", tab, line break) is REGISTRY_INVALID_NAME before any request (its modelUri loaded nothing, or another model)', async () => {
    // Python's urlparse ends models:/a?b/1 at "?" (it looked for logged model "a"), drops tabs
    // and line breaks (models:/a<TAB>b/1 is model "ab"), and reads models:/team@corp/1 as
    // alias "corp" of model "team". The closed port: any request would fail otherwise.
    const base = { runId: '0a1b2c3d4e5f60718293a4b5c6d7e8f9', artifactPath: 'onnx', trackingUri: 'http://127.0.0.1:9', retry: FAST_RETRY };
    for (const [name, bad] of [['a?b', '?'], ['team@corp', '@'], ['model@', '@'], ['a\tb', '\t'], ['a\nb', '\n'], ['a\rb', '\r']] as const) {
      const error = await registerModel({ ...base, name }).catch((e: unknown) => e);
      expect(error, JSON.stringify(name)).toBeInstanceOf(RegistryError);
      expect(error, JSON.stringify(name)).toMatchObject({ code: 'REGISTRY_INVALID_NAME', modelName: name, message: expect.stringContaining('no models:/ URI can name its versions') });
      expect((error as RegistryError).hint, JSON.stringify(name)).toContain(`Replace ${JSON.stringify(bad)}`);
    }
    // The stage helpers check the name before uploading, the CLI exits 2 with the code.
    const checkpoint = writeTree(scratch(), { 'adapter_model.safetensors': 'w' });
    await expect(uploadTrainingArtifacts({ checkpointDir: checkpoint, runId: base.runId, trackingUri: base.trackingUri, retry: FAST_RETRY, env: {}, register: { name: 'a?b' } })).rejects.toMatchObject({ code: 'REGISTRY_INVALID_NAME' });
    const res = await cli(['register', 'team@corp', '--artifact-path', 'onnx', '--run-id', base.runId, '--tracking-uri', base.trackingUri, '--json']);
    expect(res.code).toBe(2);
    expect(res.json()).toMatchObject({ ok: false, error: { code: 'REGISTRY_INVALID_NAME', hint: expect.stringContaining('Replace "@"') } });
  });

  it('a name longer than MLflow\'s 256-character column, or blank as Python sees it, is REGISTRY_INVALID_NAME before any request (PostgreSQL and MySQL refused it after the copy)', async () => {
    // The closed port: any request would fail with a NetworkError instead.
    const base = { runId: '0a1b2c3d4e5f60718293a4b5c6d7e8f9', artifactPath: 'onnx', trackingUri: 'http://127.0.0.1:9', retry: FAST_RETRY };
    const long = 'm'.repeat(257);
    const error = await registerModel({ ...base, name: long }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect(error).toMatchObject({ code: 'REGISTRY_INVALID_NAME', modelName: long, message: expect.stringContaining('257 characters, more than the 256') });
    expect((error as RegistryError).hint).toMatch(/at most 256 characters: .*VARCHAR\(256\), and PostgreSQL and MySQL servers refuse/);
    // Characters, as MLflow counts them: 250 letters and 6 emoji (262 UTF-16 units) pass the check, one more does not.
    const emoji = `${'e'.repeat(250)}${'\u{1F600}'.repeat(6)}`;
    await expect(registerModel({ ...base, name: emoji })).rejects.toMatchObject({ code: 'NETWORK_ERROR' });
    await expect(registerModel({ ...base, name: `${emoji}x` })).rejects.toMatchObject({ code: 'REGISTRY_INVALID_NAME' });
    // Blank to MLflow (Python's str.strip()), which JavaScript's trim() keeps.
    await expect(registerModel({ ...base, name: '\x1c\x1f\x85' })).rejects.toMatchObject({ code: 'REGISTRY_INVALID_NAME', message: expect.stringContaining('it is empty') });
    // The stage helpers check before the upload; the CLI exits 2 with the code.
    const checkpoint = writeTree(scratch(), { 'adapter_model.safetensors': 'w' });
    await expect(uploadTrainingArtifacts({ checkpointDir: checkpoint, runId: base.runId, trackingUri: base.trackingUri, retry: FAST_RETRY, env: {}, register: { name: long } })).rejects.toMatchObject({ code: 'REGISTRY_INVALID_NAME' });
    const res = await cli(['register', long, '--artifact-path', 'onnx', '--run-id', base.runId, '--tracking-uri', base.trackingUri, '--json']);
    expect(res.code).toBe(2);
    expect(res.json()).toMatchObject({ ok: false, error: { code: 'REGISTRY_INVALID_NAME', hint: expect.stringContaining('at most 256 characters') } });
  });

  it('a misspelt option of registerModel() or of a stage helper\'s `register` is refused before any request, with the name it meant (`alais` dropped the alias)', async () => {
    // The closed port: any request would fail with a NetworkError instead.
    const base = { runId: '0a1b2c3d4e5f60718293a4b5c6d7e8f9', artifactPath: 'onnx', trackingUri: 'http://127.0.0.1:9', name: 'ok', retry: FAST_RETRY };
    const error = await registerModel({ ...base, alais: 'champion' } as Parameters<typeof registerModel>[0]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error).toMatchObject({ argument: 'alais', message: expect.stringMatching(/Unknown option `alais` of registerModel\(\) \(did you mean `alias`\?\)/) });
    expect((error as InvalidArgumentError).hint).toMatch(/docs\/registry\.md/);
    // An option left undefined means "not set", as everywhere (docs/architecture.md): the check passes, the closed port answers.
    await expect(registerModel({ ...base, alias: undefined })).rejects.toMatchObject({ code: 'NETWORK_ERROR' });
    // A stage helper's `register`: refused before the upload, naming the option it belongs to.
    const checkpoint = writeTree(scratch(), { 'adapter_model.safetensors': 'w' });
    const helper = await uploadTrainingArtifacts({
      checkpointDir: checkpoint,
      runId: base.runId,
      trackingUri: base.trackingUri,
      retry: FAST_RETRY,
      env: {},
      register: { name: 'ok', idempotencyKy: 'run-7' } as unknown as { name: string },
    }).catch((e: unknown) => e);
    expect(helper).toBeInstanceOf(InvalidArgumentError);
    expect(helper).toMatchObject({ argument: 'idempotencyKy', message: expect.stringMatching(/Unknown option `idempotencyKy` of `register` \(did you mean `idempotencyKey`\?\)/) });
    expect((helper as InvalidArgumentError).hint).toMatch(/name, alias, tags, description, idempotencyKey, readyTimeoutMs/);
  });

  it("a description longer than MLflow's 5000-character column is an InvalidArgumentError before any request (PostgreSQL and MySQL refused it after the copy)", async () => {
    // The closed port: any request would fail with a NetworkError instead.
    const base = { runId: '0a1b2c3d4e5f60718293a4b5c6d7e8f9', artifactPath: 'onnx', trackingUri: 'http://127.0.0.1:9', name: 'ok', retry: FAST_RETRY };
    const error = await registerModel({ ...base, description: 'd'.repeat(5001) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error).toMatchObject({ argument: 'description', message: expect.stringContaining('5001 characters, more than the 5000') });
    expect((error as InvalidArgumentError).hint).toMatch(/at most 5000 characters .*VARCHAR\(5000\)/);
    // Characters, as MLflow counts them: 5000 emoji pass the check (and then fail on the closed port).
    await expect(registerModel({ ...base, description: '\u{1F600}'.repeat(5000) })).rejects.toMatchObject({ code: 'NETWORK_ERROR' });
    // The stage helpers check before the upload; the CLI exits 2.
    const checkpoint = writeTree(scratch(), { 'adapter_model.safetensors': 'w' });
    await expect(uploadTrainingArtifacts({ checkpointDir: checkpoint, runId: base.runId, trackingUri: base.trackingUri, retry: FAST_RETRY, env: {}, register: { name: 'ok', description: 'd'.repeat(5001) } })).rejects.toMatchObject({ argument: 'description' });
    const res = await cli(['register', 'ok', '--artifact-path', 'onnx', '--run-id', base.runId, '--tracking-uri', base.trackingUri, '--description', 'd'.repeat(5001), '--json']);
    expect(res.code).toBe(2);
    expect(res.json()).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT', hint: expect.stringContaining('at most 5000 characters') } });
  });

  it('a tag key MLflow refuses ("bad!key", "../x", "/x") is an InvalidArgumentError with a hint, before any request (it used to fail on set-tag, after the version was made)', async () => {
    const base = { runId: '0a1b2c3d4e5f60718293a4b5c6d7e8f9', artifactPath: 'onnx', trackingUri: 'http://127.0.0.1:9', name: 'ok', retry: FAST_RETRY };
    for (const key of ['bad!key', '../x', '/x', 'a//b', 'x/']) {
      const error = await registerModel({ ...base, tags: { [key]: 'v' } }).catch((e: unknown) => e);
      expect(error, key).toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'tags' });
      expect((error as InvalidArgumentError).hint, key).toMatch(/letters, digits|Remove leading/);
    }
    // What MLflow accepts still passes the check (and then fails on the closed port, not on the key).
    const accepted = await registerModel({ ...base, tags: { 'eval/data set:v1.2_x-y': 'v', 'clé': 'v' } }).catch((e: unknown) => e);
    expect(accepted).not.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('a blank, whitespace or overlong tag key is refused saying what is wrong with it, and a key of spaces, which MLflow keeps, passes (all were "must be 1 to 250 characters")', async () => {
    // The closed port: a key that passed the check fails with a NetworkError instead.
    const base = { runId: '0a1b2c3d4e5f60718293a4b5c6d7e8f9', artifactPath: 'onnx', trackingUri: 'http://127.0.0.1:9', name: 'ok', retry: FAST_RETRY };
    const refused = async (key: string) => {
      const error = await registerModel({ ...base, tags: { [key]: 'v' } }).catch((e: unknown) => e);
      expect(error, JSON.stringify(key)).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).message, JSON.stringify(key)).not.toMatch(/1 to 250/);
      expect((error as InvalidArgumentError).argument).toBe('tags');
      return error as InvalidArgumentError;
    };
    // Empty: MLflow refuses it (a name that resolves to ".").
    expect(await refused('')).toMatchObject({ message: expect.stringMatching(/^Tag key "" is empty\./), hint: expect.stringMatching(/Give the tag a key/) });
    // Whitespace other than the space: a character MLflow refuses, said as MLflow says it.
    for (const key of ['\t', ' \n ', '\u3000', '\u00a0']) {
      expect(await refused(key), JSON.stringify(key)).toMatchObject({ message: expect.stringContaining('has characters MLflow refuses'), hint: expect.stringContaining('letters, digits') });
    }
    // Too long: how long it is, and the limit.
    expect(await refused('k'.repeat(251))).toMatchObject({ message: expect.stringContaining('has 251 characters; MLflow allows at most 250'), hint: expect.stringMatching(/Shorten/) });
    // Spaces only: MLflow's rule (`^[/\w.\- :]*$`, then normpath) takes it, and so does the check.
    await expect(registerModel({ ...base, tags: { '   ': 'v' } })).rejects.toMatchObject({ code: 'NETWORK_ERROR' });
  });

  it("tag and alias lengths are counted in characters, as MLflow counts them: a tag value of 100,000 emoji passes the check, one of 100,001 characters does not (it refused what MLflow keeps)", async () => {
    // The closed port: a request would fail with a NetworkError, which is how a value that passed the check shows.
    const base = { runId: '0a1b2c3d4e5f60718293a4b5c6d7e8f9', artifactPath: 'onnx', trackingUri: 'http://127.0.0.1:9', name: 'ok', retry: FAST_RETRY };
    const emoji = '\u{1F600}';
    await expect(registerModel({ ...base, tags: { notes: emoji.repeat(100_000) } })).rejects.toMatchObject({ code: 'NETWORK_ERROR' });
    await expect(registerModel({ ...base, tags: { notes: `${emoji.repeat(100_000)}x` } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'tags' });
    // A key of 250 letters outside the BMP (500 UTF-16 units), which Python's \w and len take as 250 letters.
    const letter = '\u{1D400}';
    await expect(registerModel({ ...base, tags: { [letter.repeat(250)]: 'v' } })).rejects.toMatchObject({ code: 'NETWORK_ERROR' });
    await expect(registerModel({ ...base, tags: { [letter.repeat(251)]: 'v' } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'tags' });
    await expect(registerModel({ ...base, alias: letter.repeat(255) })).rejects.toMatchObject({ code: 'NETWORK_ERROR' });
    await expect(registerModel({ ...base, alias: letter.repeat(256) })).rejects.toMatchObject({ code: 'REGISTRY_INVALID_ALIAS' });
  });

  it("a tag key artifact-uploader keeps for itself (artifact_uploader.idempotency_key, artifact_uploader.create_id) is an InvalidArgumentError before any request (it overwrote the key, and the same key then made a second version)", async () => {
    // The closed port: any request would fail with a NetworkError instead.
    const base = { runId: '0a1b2c3d4e5f60718293a4b5c6d7e8f9', artifactPath: 'onnx', trackingUri: 'http://127.0.0.1:9', name: 'ok', idempotencyKey: 'job-1', retry: FAST_RETRY };
    for (const key of ['artifact_uploader.idempotency_key', 'artifact_uploader.create_id']) {
      const error = await registerModel({ ...base, tags: { [key]: 'other' } }).catch((e: unknown) => e);
      expect(error, key).toBeInstanceOf(InvalidArgumentError);
      expect(error, key).toMatchObject({ argument: 'tags', message: expect.stringContaining(`"${key}" is artifact-uploader's own`) });
      expect((error as InvalidArgumentError).hint, key).toMatch(/idempotencyKey/);
    }
    // The stage helpers check before the upload; the CLI exits 2.
    const checkpoint = writeTree(scratch(), { 'adapter_model.safetensors': 'w' });
    await expect(uploadTrainingArtifacts({ checkpointDir: checkpoint, runId: base.runId, trackingUri: base.trackingUri, retry: FAST_RETRY, env: {}, register: { name: 'ok', tags: { 'artifact_uploader.idempotency_key': 'x' } } })).rejects.toMatchObject({ argument: 'tags' });
    const res = await cli(['register', 'ok', '--artifact-path', 'onnx', '--run-id', base.runId, '--tracking-uri', base.trackingUri, '--tag', 'artifact_uploader.idempotency_key=x', '--json']);
    expect(res.code).toBe(2);
    expect(res.json()).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT', hint: expect.stringContaining('idempotencyKey') } });
  });

  it('an artifactPath as a shell completes it ("onnx/", "./onnx") gets a hint with the form to write, not the upload\'s "rename the files"', async () => {
    const base = { runId: '0a1b2c3d4e5f60718293a4b5c6d7e8f9', trackingUri: 'http://127.0.0.1:9', name: 'ok', retry: FAST_RETRY };
    for (const artifactPath of ['onnx/', './onnx', '/onnx']) {
      const error = await registerModel({ ...base, artifactPath }).catch((e: unknown) => e);
      expect(error, artifactPath).toMatchObject({ code: 'INVALID_ARTIFACT_PATH' });
      expect((error as RegistryError).hint, artifactPath).not.toMatch(/Rename the file/);
      expect((error as RegistryError).hint, artifactPath).toMatch(/Write it as "onnx"/);
    }
    const res = await cli(['register', 'ok', '--artifact-path', 'onnx/', '--run-id', base.runId, '--tracking-uri', base.trackingUri, '--json']);
    expect(res.code).toBe(2);
    expect(res.json()).toMatchObject({ ok: false, error: { code: 'INVALID_ARTIFACT_PATH', message: expect.stringMatching(/^--artifact-path "onnx\/"/), hint: expect.stringMatching(/Write it as "onnx"/) } });
  });

  it('the embedded ./mlruns store is refused with REGISTRY_UNSUPPORTED_STORE, and nothing is written', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    writeTree(join(artifactsDir, 'onnx'), { 'model.onnx': 'x' });
    const root = trackingUri.slice('file:'.length);
    const before = readdirSync(root).sort();
    const error = await registerModel({ name: 'local-model', runId: run.runId, artifactPath: 'onnx', trackingUri }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).code).toBe('REGISTRY_UNSUPPORTED_STORE');
    expect((error as RegistryError).hint).toMatch(/mlflow server --backend-store-uri sqlite/);
    expect(readdirSync(root).sort()).toEqual(before);
    expect(existsSync(join(root, 'models'))).toBe(false);

    // The CLI: exit 2 and the code in --json.
    const res = await cli(['register', 'local-model', '--artifact-path', 'onnx', '--run-id', run.runId, '--tracking-uri', trackingUri, '--json']);
    expect(res.code).toBe(2);
    expect(res.json()).toMatchObject({ ok: false, command: 'register', error: { code: 'REGISTRY_UNSUPPORTED_STORE' } });
  });

  it('a stage helper asked to register into ./mlruns refuses before uploading anything (it used to upload, then fail)', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const checkpoint = writeTree(scratch(), { 'adapter_model.safetensors': 'w', 'adapter_config.json': '{}' });
    await expect(uploadTrainingArtifacts({ checkpointDir: checkpoint, runId: run.runId, trackingUri, env: {}, register: { name: 'local-model' } })).rejects.toMatchObject({
      code: 'REGISTRY_UNSUPPORTED_STORE',
    });
    await expect(uploadTrainingArtifacts({ checkpointDir: checkpoint, runId: run.runId, trackingUri, env: {}, dryRun: true, register: { name: 'local-model' } })).rejects.toMatchObject({
      code: 'REGISTRY_UNSUPPORTED_STORE',
    });
    expect(existsSync(artifactsDir) ? Object.keys(hashTree(artifactsDir)) : []).toEqual([]);
    // The CLI: exit 2, and nothing in the run.
    const res = await cli(['training', checkpoint, '--register', 'local-model', '--run-id', run.runId, '--tracking-uri', trackingUri, '--json']);
    expect(res.code).toBe(2);
    expect(res.json()).toMatchObject({ ok: false, error: { code: 'REGISTRY_UNSUPPORTED_STORE' } });
    expect(existsSync(artifactsDir) ? Object.keys(hashTree(artifactsDir)) : []).toEqual([]);
  });
});

describeWithServers('registerModel on a real MLflow server', () => {
  it('makes a READY logged model and a version with run lineage and aliases; Python reads the bytes through models:/NAME@ALIAS', async () => {
    const { url } = mlflowServer();
    const { runId, experimentId, dir } = await runWithModel(url);
    const name = unique('fraud-classifier');
    const key = unique('key');
    const result = await registerModel({ name, runId, artifactPath: 'onnx', alias: ['champion', 'candidate'], tags: { stage: 'conversion' }, description: 'onnx export', idempotencyKey: key, trackingUri: url });
    expect(result).toMatchObject({ name, version: '1', runId, status: 'READY', created: true, files: 3, modelUri: `models:/${name}/1`, tags: { stage: 'conversion' } });
    expect(result.aliases.sort()).toEqual(['candidate', 'champion']);
    expect(result.modelId).toMatch(/^m-[0-9a-f]{32}$/);
    expect(result.source).toBe(`models:/${result.modelId}`);

    const view = await pythonView(url, name, 'champion', experimentId, runId);
    expect(view.versions).toHaveLength(1);
    expect(view.versions[0]).toMatchObject({ version: '1', run_id: runId, status: 'READY', source: `models:/${result.modelId}` });
    expect(view.versions[0]!.tags).toMatchObject({ stage: 'conversion', 'artifact_uploader.idempotency_key': key });
    expect(view.versions[0]!.tags).not.toHaveProperty('artifact_uploader.create_id');
    expect(view.alias_version).toBe('1');
    expect(view.alias_run_id).toBe(runId);
    expect(view.download).toEqual(hashTree(dir));
    expect(view.logged_models).toHaveLength(1);
    expect(view.logged_models[0]).toMatchObject({ model_id: result.modelId, source_run_id: runId });
    expect(view.logged_models[0]!.status).toMatch(/READY/);
    expect(view.run_outputs).toEqual([result.modelId]);

    // The same key again: the same version, nothing new.
    const again = await registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', idempotencyKey: key, trackingUri: url });
    expect(again).toMatchObject({ version: '1', modelId: result.modelId, created: false, files: 0 });
    const after = await pythonView(url, name, '', experimentId, runId);
    expect(after.versions).toHaveLength(1);
    expect(after.logged_models).toHaveLength(1);
  });

  it('4 callers with one key give one version; the others undo their logged models', async () => {
    const { url } = mlflowServer();
    const { runId, experimentId, dir } = await runWithModel(url);
    const name = unique('raced');
    const key = unique('race-key');
    const results = await Promise.all([1, 2, 3, 4].map(() => registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', idempotencyKey: key, trackingUri: url })));
    expect(new Set(results.map((r) => r.version)).size).toBe(1);
    expect(new Set(results.map((r) => r.modelId)).size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    const view = await pythonView(url, name, 'champion', experimentId, runId);
    expect(view.versions).toHaveLength(1);
    expect(view.alias_version).toBe(results[0]!.version);
    expect(view.download).toEqual(hashTree(dir));
    // Only the winner's logged model is left (the others were marked FAILED and deleted).
    expect(view.logged_models.map((m) => m.model_id)).toEqual([results[0]!.modelId]);
  });

  it('copies a single file, and uploads from localPath instead of the run when given', async () => {
    const { url } = mlflowServer();
    const { runId, experimentId, dir } = await runWithModel(url);
    const name = unique('single');
    const one = await registerModel({ name, runId, artifactPath: 'onnx/model.onnx', alias: 'one', trackingUri: url });
    expect(one).toMatchObject({ version: '1', files: 1 });
    const local = await registerModel({ name, runId, artifactPath: 'onnx', localPath: dir, alias: 'local', trackingUri: url });
    expect(local).toMatchObject({ version: '2', files: 3 });
    const viewOne = await pythonView(url, name, 'one', experimentId, runId);
    expect(Object.keys(viewOne.download!)).toEqual(['model.onnx']);
    const viewLocal = await pythonView(url, name, 'local', experimentId, runId);
    expect(viewLocal.download).toEqual(hashTree(dir));
  });

  it('a localPath that does not hold the run\'s files is REGISTRY_LOCAL_MISMATCH before anything is written; a single file goes under the run\'s name', async () => {
    const { url } = mlflowServer();
    const { runId, experimentId, dir } = await runWithModel(url);
    const name = unique('local-mismatch');
    // Another folder: one file missing, one of another size, one the run does not have.
    const other = writeTree(scratch('au-registry-other-'), { 'model.onnx': 'onnx graph bytes', 'model.onnx.data': Buffer.alloc(2999, 7), 'extra.txt': 'x' });
    const error = await registerModel({ name, runId, artifactPath: 'onnx', localPath: other, trackingUri: url }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect(error).toMatchObject({
      code: 'REGISTRY_LOCAL_MISMATCH',
      message: expect.stringContaining('(3 difference(s): model.onnx.data has 2999 bytes here, 3000 in the run; sub/config.json is in the run, not in'),
      hint: 'Pass as localPath the folder that was uploaded to "onnx", or leave localPath out to copy the run\'s own files.',
    });
    expect((error as Error).message).toContain('extra.txt is in');
    // Nothing was written: no registered model, no logged model.
    const view = await pythonView(url, name, '', experimentId, runId);
    expect(view.versions).toEqual([]);
    expect(view.logged_models).toEqual([]);

    // One file: compared by size, and placed under the run's name for it.
    const renamed = join(scratch('au-registry-one-'), 'renamed.onnx');
    writeFileSync(renamed, readFileSync(join(dir, 'model.onnx')));
    const one = await registerModel({ name, runId, artifactPath: 'onnx/model.onnx', localPath: renamed, alias: 'one', trackingUri: url });
    expect(one).toMatchObject({ version: '1', files: 1 });
    expect(Object.keys((await pythonView(url, name, 'one', experimentId, runId)).download!)).toEqual(['model.onnx']);
  });

  it('a source path the run does not have is REGISTRY_SOURCE_NOT_FOUND, listing what it has; a missing run is a 404', async () => {
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    const name = unique('missing');
    const error = await registerModel({ name, runId, artifactPath: 'onxx', trackingUri: url }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).code).toBe('REGISTRY_SOURCE_NOT_FOUND');
    expect((error as RegistryError).message).toContain('onnx/');
    const missingRun = await registerModel({ name, runId: 'f'.repeat(32), artifactPath: 'onnx', trackingUri: url, retry: FAST_RETRY }).catch((e: unknown) => e);
    expect(missingRun).toBeInstanceOf(MlflowApiError);
    expect((missingRun as MlflowApiError).status).toBe(404);
    const view = await pythonView(url, name, '', experimentId, runId);
    expect(view.versions).toEqual([]);
    expect(view.logged_models).toEqual([]);
  });

  it('a deleted run is refused with a hint before anything is made (it used to make the logged model and copy the files, then fail on runs/outputs)', async () => {
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    await runPython(`import sys\nfrom mlflow import MlflowClient\nMlflowClient(sys.argv[1]).delete_run(sys.argv[2])`, { args: [url, runId] });
    const front = await proxy(url);
    const name = unique('deleted-run');
    const error = await registerModel({ name, runId, artifactPath: 'onnx', trackingUri: front.url, retry: FAST_RETRY }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'runId' });
    expect((error as InvalidArgumentError).message).toMatch(/is deleted/);
    expect((error as InvalidArgumentError).hint).toMatch(/mlflow runs restore/);
    expect(front.requests.filter((r) => r.method !== 'GET').map((r) => r.path)).toEqual([]);
    const view = await pythonView(url, name, '', experimentId, runId);
    expect(view.versions).toEqual([]);
    expect(view.logged_models).toEqual([]);
    // The CLI: exit 2, with the hint.
    const res = await cli(['register', name, '--artifact-path', 'onnx', '--run-id', runId, '--tracking-uri', url, '--json']);
    expect(res.code).toBe(2);
    expect(res.json()).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT' } });
  });

  it('a source with more files than the walk takes is REGISTRY_SOURCE_TOO_LARGE, not a partial model (the cap lowered to 2)', async () => {
    const { url } = mlflowServer();
    const { runId } = await runWithModel(url); // onnx/ holds 3 files, one of them in onnx/sub/
    const tracking = createTrackingClient({ trackingUri: url, env: {} });
    const error = await findRunSource(tracking, runId, 'onnx', undefined, 2).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect(error).toMatchObject({ code: 'REGISTRY_SOURCE_TOO_LARGE' });
    expect((error as RegistryError).message).toContain('more than 2 files under "onnx" (1 of its directories were not listed)');
    // The whole tree within the cap: every file, the one in onnx/sub/ too.
    expect((await findRunSource(tracking, runId, 'onnx', undefined, 3)).files.map((f) => f.modelPath).sort()).toEqual(['model.onnx', 'model.onnx.data', 'sub/config.json']);
  });

  it('a server without the registry routes is REGISTRY_UNAVAILABLE, and nothing is made', async () => {
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    const front = await proxy(url);
    front.addRule({ match: (r) => /registered-models|model-versions|logged-models/.test(r.path), fault: 'status', status: 404, body: '<html>Not Found</html>' });
    const name = unique('noregistry');
    const error = await registerModel({ name, runId, artifactPath: 'onnx', trackingUri: front.url, retry: FAST_RETRY }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).code).toBe('REGISTRY_UNAVAILABLE');
    expect((error as RegistryError).hint).toMatch(/MLflow 3 tracking server/);
    const view = await pythonView(url, name, '', experimentId, runId);
    expect(view.logged_models).toEqual([]);
  });

  it('a failure after the version exists leaves no version without its alias and no PENDING logged model', async () => {
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    const front = await proxy(url);
    front.addRule({ match: (r) => r.method === 'POST' && r.path.includes('registered-models/alias'), fault: 'status', status: 400, body: '{"error_code":"INVALID_PARAMETER_VALUE","message":"refused by the test"}' });
    const name = unique('undone');
    const error = await registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', trackingUri: front.url, retry: FAST_RETRY }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MlflowApiError);
    const view = await pythonView(url, name, '', experimentId, runId);
    expect(view.versions).toEqual([]);
    expect(view.logged_models).toEqual([]); // marked FAILED, then deleted
    expect(front.requests.some((r) => r.method === 'DELETE' && r.path.includes('model-versions/delete'))).toBe(true);
    expect(front.requests.some((r) => r.method === 'PATCH' && r.path.includes('logged-models/'))).toBe(true);
  });

  it('a rerun of an older call (same key) does not move an alias back from a newer version (it rolled champion back to the old version)', async () => {
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    const name = unique('replay');
    const firstJob = { name, runId, artifactPath: 'onnx', alias: ['champion', 'job-1'], idempotencyKey: unique('job-1'), trackingUri: url };
    await expect(registerModel(firstJob)).resolves.toMatchObject({ version: '1', aliases: ['champion', 'job-1'] });
    await expect(registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', idempotencyKey: unique('job-2'), trackingUri: url })).resolves.toMatchObject({ version: '2', aliases: ['champion'] });
    // The first job's step run again (a CI retry of the whole pipeline): its version, as it is now.
    const replay = await registerModel(firstJob);
    expect(replay).toMatchObject({ version: '1', created: false, aliases: ['job-1'] });
    const view = await pythonView(url, name, 'champion', experimentId, runId);
    expect(view.alias_version).toBe('2');
  });

  it('a failure whose undo cannot delete the version is REGISTRY_INCOMPLETE naming the version left, whose logged model is kept, and the same key completes it (it threw the bare failure, and deleted the logged model under the version)', async () => {
    const { url } = mlflowServer();
    const { runId, experimentId, dir } = await runWithModel(url);
    const front = await proxy(url);
    front.addRule({ match: (r) => r.method === 'POST' && r.path.includes('registered-models/alias'), fault: 'status', status: 400, body: '{"error_code":"INVALID_PARAMETER_VALUE","message":"refused by the test"}' });
    front.addRule({ match: (r) => r.path.includes('model-versions/delete'), fault: 'status', status: 403, body: '{"error_code":"PERMISSION_DENIED","message":"no delete for this token"}' });
    const name = unique('left-behind');
    const key = unique('left-key');
    const error = await registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', idempotencyKey: key, trackingUri: front.url, retry: FAST_RETRY }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect(error).toMatchObject({ code: 'REGISTRY_INCOMPLETE', modelName: name, version: '1', cause: expect.objectContaining({ status: 400 }) });
    expect((error as RegistryError).message).toContain('refused by the test');
    expect((error as RegistryError).hint).toContain(`idempotencyKey "${key}"`);
    const view = await pythonView(url, name, '', experimentId, runId);
    expect(view.versions.map((v) => [v.version, v.status])).toEqual([['1', 'READY']]);
    expect(view.logged_models).toEqual([expect.objectContaining({ status: expect.stringMatching(/READY/) })]);
    // What the hint says: the same key, once the server lets the alias be set, completes version 1.
    const again = await registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', idempotencyKey: key, trackingUri: url });
    expect(again).toMatchObject({ version: '1', created: false, aliases: ['champion'] });
    const after = await pythonView(url, name, 'champion', experimentId, runId);
    expect(after.alias_version).toBe('1');
    expect(after.download).toEqual(hashTree(dir));
  });

  it('a version deleted by someone else before the call failed is not reported as left behind (its delete is a 404: nothing is left)', async () => {
    // The alias set is held at the proxy until Python's MlflowClient has deleted the version: a
    // real barrier. The held request is then dropped, and its retry meets the deleted version.
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    const front = await proxy(url);
    let held!: () => void;
    const aliasHeld = new Promise<void>((resolve) => (held = resolve));
    front.addRule({ match: (r) => r.method === 'POST' && r.path.includes('registered-models/alias'), fault: 'hold', times: 1, onHold: () => held() });
    const name = unique('deleted-version');
    const registering = registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', trackingUri: front.url, retry: FAST_RETRY }).catch((e: unknown) => e);
    await aliasHeld;
    await runPython('import sys\nfrom mlflow import MlflowClient\nMlflowClient(tracking_uri=sys.argv[1]).delete_model_version(sys.argv[2], "1")', { args: [url, name] });
    front.thaw();
    const error = await registering;
    expect(error).toBeInstanceOf(MlflowApiError);
    expect(error).toMatchObject({ status: 404, errorCode: 'RESOURCE_DOES_NOT_EXIST' });
    const view = await pythonView(url, name, '', experimentId, runId);
    expect(view.versions).toEqual([]);
    expect(view.logged_models).toEqual([]);
  });

  it('a failure after the alias was moved to the new version points it back at the version it was on (deleting the new version took the alias with it: no champion at all)', async () => {
    // MLflow's delete_model_version deletes the aliases of the deleted version. The read after
    // the alias set is refused (as a gateway refuses a request), so the call fails and undoes.
    const { url } = mlflowServer();
    const { runId, experimentId, dir } = await runWithModel(url);
    const name = unique('alias-back');
    await expect(registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', trackingUri: url })).resolves.toMatchObject({ version: '1' });
    const front = await proxy(url);
    front.addRule({ match: (r) => r.method === 'GET' && r.path.includes('model-versions/get'), fault: 'status', status: 403, body: '{"error_code":"PERMISSION_DENIED","message":"refused by the test"}' });
    const error = await registerModel({ name, runId, artifactPath: 'onnx', alias: ['champion', 'canary'], trackingUri: front.url, retry: FAST_RETRY }).catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 403 });
    const view = await pythonView(url, name, 'champion', experimentId, runId);
    expect(view.versions.map((v) => v.version)).toEqual(['1']);
    expect(view.alias_version).toBe('1');
    expect(view.download).toEqual(hashTree(dir));
    // Both set on version 2, then champion pointed back at 1 (canary was new: it went with version 2).
    expect(front.requests.filter((r) => r.method === 'POST' && r.path.includes('registered-models/alias'))).toHaveLength(3);
  });

  it('a failure while the files are copied (or a server without logged models) leaves no registered model behind', async () => {
    // The registered model was created first, so a copy that failed for good, or an MLflow 2
    // server (a registry, no logged-models route), left an empty registered model this call made.
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    const registeredModels = async (name: string) =>
      JSON.parse(
        (
          await runPython(`import json, sys, mlflow\nfrom mlflow import MlflowClient\nmlflow.set_tracking_uri(sys.argv[1])\nprint(json.dumps([m.name for m in MlflowClient().search_registered_models(f"name='{sys.argv[2]}'")]))`, {
            args: [url, name],
          })
        )
          .trim()
          .split('\n')
          .pop()!,
      ) as string[];

    const copyFails = await proxy(url);
    copyFails.addRule({ match: (r) => r.path.includes('/get-artifact'), fault: 'status', status: 403, body: 'denied by the test' });
    const name = unique('copy-fails');
    await expect(registerModel({ name, runId, artifactPath: 'onnx', trackingUri: copyFails.url, retry: FAST_RETRY })).rejects.toMatchObject({ status: 403 });
    expect(await registeredModels(name)).toEqual([]);
    expect((await pythonView(url, name, '', experimentId, runId)).logged_models).toEqual([]);

    const mlflow2 = await proxy(url);
    mlflow2.addRule({ match: (r) => r.path.includes('logged-models'), fault: 'status', status: 404, body: '<html>Not Found</html>' });
    const name2 = unique('no-logged-models');
    await expect(registerModel({ name: name2, runId, artifactPath: 'onnx', trackingUri: mlflow2.url, retry: FAST_RETRY })).rejects.toMatchObject({ code: 'REGISTRY_UNAVAILABLE' });
    expect(await registeredModels(name2)).toEqual([]);
  });

  it('an alias set that lost a race on the database (400 unique constraint) is set again, and the version keeps its alias', async () => {
    // What MLflow 3.17 answers when two callers with one key set the same alias at once: its
    // setter reads, then inserts, and the second insert fails on the unique constraint.
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    const front = await proxy(url);
    const raced = JSON.stringify({
      error_code: 'BAD_REQUEST',
      message: '(sqlite3.IntegrityError) UNIQUE constraint failed: registered_model_aliases.workspace, registered_model_aliases.name, registered_model_aliases.alias',
    });
    front.addRule({ match: (r) => r.method === 'POST' && r.path.includes('registered-models/alias'), fault: 'status', status: 400, body: raced, times: 1 });
    const name = unique('raced-alias');
    const result = await registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', trackingUri: front.url, retry: FAST_RETRY });
    expect(result.aliases).toEqual(['champion']);
    const view = await pythonView(url, name, 'champion', experimentId, runId);
    expect(view.versions).toHaveLength(1);
    expect(front.requests.filter((r) => r.path.includes('registered-models/alias')).map((r) => r.fault ?? 'ok')).toEqual(['status', 'ok']);
  });

  it('an alias another registration moves to its version after this one set it leaves this version in place, READY, and reported without the alias (it was deleted and the call failed with REGISTRY_VERSION_FAILED)', async () => {
    // Two jobs registering to one alias at once: the later set wins, as it would had they run one
    // after the other. The first call's read after its alias set is held until the second call
    // has moved the alias: a real barrier, not a timing.
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    const front = await proxy(url);
    let held!: () => void;
    const firstReadHeld = new Promise<void>((resolve) => (held = resolve));
    front.addRule({ match: (r) => r.method === 'GET' && r.path.includes('model-versions/get'), fault: 'hold', times: 1, onHold: () => held() });
    const name = unique('moved-alias');
    const first = registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', idempotencyKey: unique('job-a'), trackingUri: front.url, retry: FAST_RETRY });
    await firstReadHeld;
    const second = await registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', idempotencyKey: unique('job-b'), trackingUri: url });
    expect(second).toMatchObject({ version: '2', created: true, aliases: ['champion'] });
    front.thaw();
    await expect(first).resolves.toMatchObject({ version: '1', created: true, status: 'READY', aliases: [] });
    const view = await pythonView(url, name, 'champion', experimentId, runId);
    expect(view.versions.map((v) => v.version).sort()).toEqual(['1', '2']);
    expect(view.alias_version).toBe('2');
    expect(view.logged_models).toHaveLength(2);
  });

  it('a registered model deleted between its create and the version create (another process, the UI) is made again and the version registered (it failed with a 404 RESOURCE_DOES_NOT_EXIST, no hint, exit 2)', async () => {
    // The version create is held at the proxy until Python's MlflowClient has deleted the
    // registered model: a real barrier. The held request is then dropped, and the retry meets the
    // deleted model.
    const { url } = mlflowServer();
    const { runId, experimentId, dir } = await runWithModel(url);
    const front = await proxy(url);
    let held!: () => void;
    const createHeld = new Promise<void>((resolve) => (held = resolve));
    front.addRule({ match: (r) => r.method === 'POST' && r.path.includes('model-versions/create'), fault: 'hold', times: 1, onHold: () => held() });
    const name = unique('deleted-meanwhile');
    const registering = registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', idempotencyKey: unique('job'), trackingUri: front.url, retry: FAST_RETRY });
    await createHeld;
    await runPython('import sys\nfrom mlflow import MlflowClient\nMlflowClient(tracking_uri=sys.argv[1]).delete_registered_model(sys.argv[2])', { args: [url, name] });
    front.thaw();
    await expect(registering).resolves.toMatchObject({ version: '1', created: true, aliases: ['champion'] });
    const view = await pythonView(url, name, 'champion', experimentId, runId);
    expect(view.versions.map((v) => v.version)).toEqual(['1']);
    expect(view.download).toEqual(hashTree(dir));
  });

  it('of callers racing with one key, a lower version whose registration fails on the server (FAILED_REGISTRATION) is passed over: the caller keeps its own READY version (it failed, and deleted its version)', async () => {
    // MLflow's own stores make every version READY at once (sqlalchemy_store.create_model_version
    // never sets a status; the column defaults to READY), so a failed registration cannot be made
    // real here. Registries that register asynchronously answer PENDING_REGISTRATION, then READY
    // or FAILED_REGISTRATION: the proxy answers the race's search with a lower version "0" of the
    // same key, PENDING, and its poll with FAILED_REGISTRATION; everything else is the real server.
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    const front = await proxy(url);
    const name = unique('failed-lower');
    const key = unique('failed-key');
    const keyTag = [{ key: 'artifact_uploader.idempotency_key', value: key }];
    // The race's search: the first one after this call made its version (the searches before
    // it, for an earlier call's version and before the create, find none).
    const created = () => front.requests.some((r) => r.path.includes('model-versions/create'));
    let searches = 0;
    front.addRule({
      match: (r) => r.method === 'GET' && r.path.includes('model-versions/search') && created() && ++searches === 1,
      fault: 'status',
      status: 200,
      body: JSON.stringify({
        model_versions: [
          { name, version: '0', source: 'models:/m-00000000000000000000000000000000', status: 'PENDING_REGISTRATION', tags: keyTag },
          { name, version: '1', status: 'READY', tags: keyTag },
        ],
      }),
    });
    front.addRule({
      match: (r) => r.method === 'GET' && r.path.includes('model-versions/get?') && r.path.includes('version=0'),
      fault: 'status',
      status: 200,
      body: JSON.stringify({ model_version: { name, version: '0', status: 'FAILED_REGISTRATION', status_message: 'copy failed', tags: keyTag } }),
    });
    const result = await registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', idempotencyKey: key, trackingUri: front.url, retry: FAST_RETRY });
    expect(result).toMatchObject({ version: '1', created: true, status: 'READY', aliases: ['champion'] });
    expect(searches).toBeGreaterThanOrEqual(1);
    const view = await pythonView(url, name, 'champion', experimentId, runId);
    expect(view.versions.map((v) => v.version)).toEqual(['1']);
    expect(view.alias_version).toBe('1');
  });

  it('a lost answer to model-versions/create makes one version, not two', async () => {
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    const front = await proxy(url);
    front.addRule({ match: (r) => r.path.includes('model-versions/create'), fault: 'drop-response', times: 1 });
    front.addRule({ match: (r) => r.method === 'POST' && /\/logged-models$/.test(r.path), fault: 'drop-response', times: 1 });
    const name = unique('lost');
    const result = await registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', trackingUri: front.url, retry: FAST_RETRY });
    expect(result.version).toBe('1');
    const view = await pythonView(url, name, 'champion', experimentId, runId);
    expect(view.versions).toHaveLength(1);
    expect(view.logged_models).toHaveLength(1);
    // The answer was lost once; the retry looked for the version by its source (the logged model this call made) and found it.
    expect(front.requests.filter((r) => r.path.includes('model-versions/create')).map((r) => r.fault)).toEqual(['drop-response']);
    expect(front.requests.some((r) => r.path.includes('model-versions/search') && decodeURIComponent(r.path.replace(/\+/g, ' ')).includes(`source_path = 'models:/${result.modelId}'`))).toBe(true);
    expect(front.requests.some((r) => r.path.includes('logged-models') && r.fault === 'drop-response')).toBe(true);
  });

  it('a lost answer to runs/outputs (the server had linked the model) does not fail the registration on the retry\'s UNIQUE constraint', async () => {
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    const front = await proxy(url);
    front.addRule({ match: (r) => r.path.includes('runs/outputs'), fault: 'drop-response', times: 1 });
    const name = unique('lost-outputs');
    const result = await registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', trackingUri: front.url, retry: FAST_RETRY });
    expect(result).toMatchObject({ version: '1', created: true, aliases: ['champion'] });
    const view = await pythonView(url, name, 'champion', experimentId, runId);
    expect(view.versions).toHaveLength(1);
    expect(view.logged_models).toEqual([expect.objectContaining({ model_id: result.modelId, status: expect.stringMatching(/READY/) })]);
    expect(view.run_outputs).toEqual([result.modelId]);
    expect(front.requests.filter((r) => r.path.includes('runs/outputs')).map((r) => r.fault ?? 'ok')).toEqual(['drop-response']);
  });

  it('an aborted call removes what it made', async () => {
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    const controller = new AbortController();
    const front = await proxy(url);
    // Aborted while the version's create is on its way: the logged model made before it is removed.
    front.addRule({ match: (r) => r.path.includes('model-versions/create'), fault: 'hold', onHold: () => controller.abort() });
    const name = unique('aborted');
    const promise = registerModel({ name, runId, artifactPath: 'onnx', trackingUri: front.url, signal: controller.signal, retry: FAST_RETRY });
    await expect(promise).rejects.toMatchObject({ code: 'ABORTED' });
    const view = await pythonView(url, name, '', experimentId, runId);
    expect(view.versions).toEqual([]);
    expect(view.logged_models).toEqual([]);
  });

  it.each([
    ['the logged model', (r: { method: string; path: string }) => r.method === 'POST' && r.path.endsWith('/mlflow/logged-models')],
    ['the model version', (r: { method: string; path: string }) => r.path.includes('model-versions/create')],
  ])('an abort that lands after the server made %s, before its answer arrived, still removes it', async (_what, match) => {
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    const controller = new AbortController();
    const front = await proxy(url);
    // The server makes it; the abort fires as its answer comes back, and the answer is lost.
    front.addRule({ match, fault: 'drop-response', times: 1, onResponse: () => controller.abort() });
    const name = unique('aborted-answer');
    const promise = registerModel({ name, runId, artifactPath: 'onnx', trackingUri: front.url, signal: controller.signal, retry: FAST_RETRY });
    await expect(promise).rejects.toMatchObject({ code: 'ABORTED' });
    expect(front.requests.filter((r) => r.fault === 'drop-response')).toHaveLength(1);
    const view = await pythonView(url, name, '', experimentId, runId);
    expect(view.versions).toEqual([]);
    expect(view.logged_models).toEqual([]);
  });

  it('uploadConversionArtifacts({ register }) and `conversion --register` register the uploaded onnx/ folder', async () => {
    const { url } = mlflowServer();
    const run = await startRun({ trackingUri: url, experimentName: unique('conv'), activate: false, env: {} });
    const dir = writeTree(scratch('au-registry-conv-'), { 'model.onnx': 'graph', 'model.onnx.data': Buffer.alloc(500, 1) });
    const name = unique('conv-model');
    const result = await uploadConversionArtifacts({ onnxPath: join(dir, 'model.onnx'), runId: run.runId, trackingUri: url, env: {}, register: { name, alias: 'candidate' } });
    expect(result.status).toBe('uploaded');
    expect(result.registeredModel).toMatchObject({ name, version: '1', aliases: ['candidate'], runId: run.runId });
    const view = await pythonView(url, name, 'candidate', run.experimentId!, run.runId);
    expect(view.download).toEqual(hashTree(dir));

    const res = await cli(['conversion', join(dir, 'model.onnx'), '--register', name, '--alias', 'cli', '--run-id', run.runId, '--tracking-uri', url, '--json']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.json()).toMatchObject({ ok: true, registeredModel: { name, version: '2', aliases: ['cli'] } });

    const reg = await cli(['register', name, '--artifact-path', 'onnx', '--alias', 'third', '--tag', 'by=cli', '--idempotency-key', 'cli-key', '--run-id', run.runId, '--tracking-uri', url]);
    expect(reg.code, reg.stderr).toBe(0);
    expect(reg.stdout).toContain(`registered: models:/${name}/3 @ third`);
    // A bad name fails before the upload.
    const bad = await cli(['conversion', join(dir, 'model.onnx'), '--register', 'a/b', '--run-id', run.runId, '--tracking-uri', url]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('REGISTRY_INVALID_NAME');
  });

  it('uploadTrainingArtifacts({ register }) registers the checkpoint; a skipped upload registers nothing', async () => {
    const { url } = mlflowServer();
    const run = await startRun({ trackingUri: url, experimentName: unique('train'), activate: false, env: {} });
    const checkpoint = writeTree(scratch('au-registry-train-'), { 'adapter_model.safetensors': Buffer.alloc(2048, 9), 'adapter_config.json': '{"r":8}' });
    const name = unique('train-model');
    const result = await uploadTrainingArtifacts({ checkpointDir: checkpoint, runId: run.runId, trackingUri: url, env: {}, register: { name, alias: 'latest-train', tags: { stage: 'training' } } });
    expect(result.checkpoint.status).toBe('uploaded');
    expect(result.registeredModel).toMatchObject({ name, version: '1', aliases: ['latest-train'], tags: { stage: 'training' } });
    const view = await pythonView(url, name, 'latest-train', run.experimentId!, run.runId);
    expect(view.download).toEqual(hashTree(checkpoint));

    const dry = await uploadTrainingArtifacts({ checkpointDir: checkpoint, runId: run.runId, trackingUri: url, env: {}, dryRun: true, register: { name } });
    expect(dry.registeredModel).toBeUndefined();
    expect((await pythonView(url, name, '', run.experimentId!, run.runId)).versions).toHaveLength(1);
  });
  it('a stage registration that fails after the upload says the files are in the run, carries the upload, and prints the command that registers them', async () => {
    // It threw the registration's failure alone: nothing said the checkpoint was in the run, and
    // a pipeline told "failed" uploaded it again.
    const { url } = mlflowServer();
    const run = await startRun({ trackingUri: url, experimentName: unique('after-upload'), activate: false, env: {} });
    const checkpoint = writeTree(scratch('au-registry-after-'), { 'adapter_model.safetensors': Buffer.alloc(1024, 5), 'adapter_config.json': '{"r":4}' });
    const metrics = join(writeTree(scratch('au-registry-after-m-'), { 'metrics.json': '{"loss":0.5}' }), 'metrics.json');
    const front = await proxy(url);
    front.addRule({ match: (r) => r.method === 'POST' && r.path.includes('registered-models/alias'), fault: 'status', status: 400, body: '{"error_code":"INVALID_PARAMETER_VALUE","message":"refused by the test"}' });
    const name = unique('after-upload-model');

    const register = { name, alias: ['candidate', 'nightly'], tags: { 'eval/dataset': "held out o'neil" }, description: 'LoRA r=4', readyTimeoutMs: 600_000, idempotencyKey: 'job-7' };
    const error = await uploadTrainingArtifacts({ checkpointDir: checkpoint, metricsJsonPath: metrics, runId: run.runId, trackingUri: front.url, env: {}, retry: FAST_RETRY, register }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect(error).toMatchObject({ code: 'REGISTRY_AFTER_UPLOAD', modelName: name, runId: run.runId, artifactPath: 'checkpoint' });
    expect((error as RegistryError).cause).toBeInstanceOf(MlflowApiError);
    expect((error as RegistryError).message).toContain(`The upload succeeded: the files are in run ${run.runId} at "checkpoint". Only registering them as ${name} failed: `);
    expect((error as RegistryError).message).toContain('refused by the test');
    // The whole registration asked for: the command without the aliases and tags made a version no deployment followed.
    expect((error as RegistryError).hint).toContain(
      `\`artifact-uploader register ${name} --artifact-path checkpoint --run-id ${run.runId} --alias candidate --alias nightly --tag 'eval/dataset=held out o'\\''neil' --description 'LoRA r=4' --ready-timeout 600s --idempotency-key job-7\``,
    );
    expect((error as RegistryError).hint).toContain(`registerModel({ name, runId: '${run.runId}', artifactPath: "checkpoint", alias, tags, description, readyTimeoutMs, idempotencyKey })`);
    // What the helper would have returned: both uploads, and their files in the run.
    expect((error as RegistryError).uploaded).toMatchObject({ checkpoint: { status: 'uploaded', runId: run.runId, artifactPath: 'checkpoint' }, metrics: { status: 'uploaded' } });
    const tracking = createTrackingClient({ trackingUri: url, env: {} });
    expect((await tracking.listArtifacts(run.runId, 'checkpoint')).files.map((f) => f.path).sort()).toEqual(['checkpoint/adapter_config.json', 'checkpoint/adapter_model.safetensors']);
    expect((await pythonView(url, name, '', run.experimentId!, run.runId)).versions).toEqual([]);

    // The CLI prints it (exit 2, as the server's refusal) and the command it names registers the files.
    const res = await cli(['conversion', join(writeTree(scratch('au-registry-after-onnx-'), { 'model.onnx': 'graph' }), 'model.onnx'), '--register', name, '--alias', 'candidate', '--run-id', run.runId, '--tracking-uri', front.url]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(`error [REGISTRY_AFTER_UPLOAD]: The upload succeeded: the files are in run ${run.runId} at "onnx". Only registering them as ${name} failed`);
    expect(res.stderr).toContain(`\`artifact-uploader register ${name} --artifact-path onnx --run-id ${run.runId} --alias candidate\``);
    expect(res.stderr).not.toContain('registerModel(');
    const json = await cli(['conversion', join(writeTree(scratch('au-registry-after-onnx-'), { 'model.onnx': 'graph' }), 'model.onnx'), '--register', name, '--run-id', run.runId, '--tracking-uri', front.url, '--alias', 'candidate', '--json']);
    expect(json.json()).toMatchObject({ ok: false, error: { code: 'REGISTRY_AFTER_UPLOAD', runId: run.runId, artifactPath: 'onnx', uploaded: { status: 'uploaded', artifactPath: 'onnx' } } });
    // The command of the hint, as printed, run against the server: the version it makes carries the alias asked for.
    const again = await cli(['register', name, '--artifact-path', 'onnx', '--run-id', run.runId, '--alias', 'candidate', '--tracking-uri', url, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.json()).toMatchObject({ ok: true, registeredModel: { name, runId: run.runId, created: true, aliases: ['candidate'] } });
    expect((await pythonView(url, name, 'candidate', run.experimentId!, run.runId)).versions).toHaveLength(1);
  });

  it('a stage registration aborted after the upload stays an AbortedError (a pruned trial is told by its type), and leaves no version', async () => {
    const { url } = mlflowServer();
    const run = await startRun({ trackingUri: url, experimentName: unique('abort-register'), activate: false, env: {} });
    const checkpoint = writeTree(scratch('au-registry-abort-'), { 'adapter_model.safetensors': Buffer.alloc(1024, 6), 'adapter_config.json': '{"r":4}' });
    const front = await proxy(url);
    const controller = new AbortController();
    // The stage is stopped while its alias call is in flight: after the upload, inside the registration.
    front.addRule({ match: (r) => r.method === 'POST' && r.path.includes('registered-models/alias'), fault: 'hold', onHold: () => controller.abort() });
    const name = unique('abort-register-model');
    const error = await uploadTrainingArtifacts({ checkpointDir: checkpoint, runId: run.runId, trackingUri: front.url, env: {}, retry: FAST_RETRY, signal: controller.signal, register: { name, alias: 'candidate' } }).catch((e: unknown) => e);
    front.thaw();
    expect(error).toBeInstanceOf(AbortedError);
    expect((await pythonView(url, name, '', run.experimentId!, run.runId)).versions).toEqual([]);
  });

  it('`training --register` and `conversion --register` take --idempotency-key: a rerun of the step (a CI retry) returns the version made instead of making a second', async () => {
    const { url } = mlflowServer();
    const run = await startRun({ trackingUri: url, experimentName: unique('ci-retry'), activate: false, env: {} });
    const checkpoint = writeTree(scratch('au-registry-retry-'), { 'adapter_model.safetensors': Buffer.alloc(512, 3), 'adapter_config.json': '{"r":2}' });
    const onnx = join(writeTree(scratch('au-registry-retry-onnx-'), { 'model.onnx': 'graph' }), 'model.onnx');
    for (const [command, source] of [['training', checkpoint], ['conversion', onnx]] as const) {
      const name = unique(`ci-retry-${command}`);
      const argv = [command, source, '--register', name, '--alias', 'candidate', '--idempotency-key', `pipeline-42-${command}`, '--run-id', run.runId, '--tracking-uri', url, '--json'];
      const first = await cli(argv);
      expect(first.code, first.stderr).toBe(0);
      expect(first.json()).toMatchObject({ ok: true, registeredModel: { name, version: '1', created: true, aliases: ['candidate'] } });
      const retry = await cli(argv);
      expect(retry.code, retry.stderr).toBe(0);
      expect(retry.json()).toMatchObject({ ok: true, registeredModel: { name, version: '1', created: false } });
      expect((await pythonView(url, name, 'candidate', run.experimentId!, run.runId)).versions, command).toHaveLength(1);
    }
    // Without --register there is nothing for the key to identify: a usage error before any upload.
    const alone = await cli(['conversion', onnx, '--idempotency-key', 'k', '--run-id', run.runId, '--tracking-uri', url]);
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain('--idempotency-key goes with --register NAME.');
  });

  it('an alias with non-ASCII letters ("campeón"), which MLflow accepts, is set (it used to be refused as "only letters, digits")', async () => {
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    const name = unique('unicode-alias');
    const result = await registerModel({ name, runId, artifactPath: 'onnx', alias: ['campeón', 'ß_2'], trackingUri: url, retry: FAST_RETRY });
    expect([...result.aliases].sort()).toEqual(['campeón', 'ß_2']);
    const view = await pythonView(url, name, 'campeón', experimentId, runId);
    expect(view.alias_version).toBe(result.version);
    // Still refused: what MLflow refuses too.
    await expect(registerModel({ name, runId, artifactPath: 'onnx', alias: 'e\u0301', trackingUri: url })).rejects.toMatchObject({ code: 'REGISTRY_INVALID_ALIAS' });
  });

  it('a tag key of spaces only, which MLflow 3.17 validates and keeps, is set on the version and read back by Python (it was refused as "must be 1 to 250 characters")', async () => {
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    const name = unique('blank-tag');
    const result = await registerModel({ name, runId, artifactPath: 'onnx', tags: { '   ': 'spaces', ' padded ': 'kept' }, trackingUri: url, retry: FAST_RETRY });
    expect(result.tags).toEqual({ '   ': 'spaces', ' padded ': 'kept' });
    const view = await pythonView(url, name, '', experimentId, runId);
    expect(view.versions[0]!.tags).toMatchObject({ '   ': 'spaces', ' padded ': 'kept' });
  });

  it('a name with ".", "%" or quotes (valid for a registered model, not for a logged model) registers', async () => {
    // The logged model took the registered model's name, and MLflow refuses / : . % " ' there:
    // "fraud.classifier", the example of our own hint, failed with a 400 after the registered
    // model had been made.
    const { url } = mlflowServer();
    const { runId, experimentId, dir } = await runWithModel(url);
    for (const name of [`${unique('fraud')}.classifier`, `${unique('pct')}%"q"`]) {
      const result = await registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', trackingUri: url });
      expect(result).toMatchObject({ name, version: '1', created: true });
      const view = await pythonView(url, name, 'champion', experimentId, runId);
      expect(view.versions.map((v) => v.version)).toEqual(['1']);
      expect(view.download).toEqual(hashTree(dir));
    }
  });

  it('a name with "#", "%", spaces or non-ASCII letters registers, exactly once, and Python reads the version back by the modelUri returned', async () => {
    // MLflow's models:/ parsers take "#" as part of the name (allow_fragments=False); these
    // names are not refused, and the URI in the result must load the version's bytes.
    const { url } = mlflowServer();
    const { runId, dir } = await runWithModel(url);
    for (const name of [`${unique('a')}#b`, `#${unique('lead')}`, `${unique('sp')} 50% ünï`]) {
      const key = unique('hash-key');
      const result = await registerModel({ name, runId, artifactPath: 'onnx', idempotencyKey: key, trackingUri: url });
      expect(result).toMatchObject({ name, version: '1', created: true, modelUri: `models:/${name}/1` });
      const again = await registerModel({ name, runId, artifactPath: 'onnx', idempotencyKey: key, trackingUri: url });
      expect(again).toMatchObject({ version: '1', created: false });
      const stdout = await runPython(
        `
import hashlib, json, os, sys, tempfile
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
d = mlflow.artifacts.download_artifacts(sys.argv[2], dst_path=tempfile.mkdtemp())
files = {}
for root, _dirs, names in os.walk(d):
    for n in names:
        p = os.path.join(root, n)
        files[os.path.relpath(p, d).replace(os.sep, "/")] = hashlib.sha256(open(p, "rb").read()).hexdigest()
print(json.dumps(files))
`,
        { args: [url, result.modelUri] },
      );
      expect(JSON.parse(stdout.trim().split('\n').pop()!), name).toEqual(hashTree(dir));
    }
  });

  it('a name of exactly 256 characters (emoji counted as one, as MLflow does) registers, and Python reads it back by its modelUri', async () => {
    const { url } = mlflowServer();
    const { runId, experimentId, dir } = await runWithModel(url);
    const prefix = unique('long');
    const name = `${prefix}${'l'.repeat(250 - prefix.length)}${'\u{1F600}'.repeat(6)}`;
    expect([...name].length).toBe(256);
    const result = await registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', trackingUri: url });
    expect(result).toMatchObject({ name, version: '1', modelUri: `models:/${name}/1` });
    const view = await pythonView(url, name, 'champion', experimentId, runId);
    expect(view.versions.map((v) => v.version)).toEqual(['1']);
    expect(view.download).toEqual(hashTree(dir));
  });

  it("a name with an apostrophe keeps exactly-once: the same key again, and a lost create answer, make no second version", async () => {
    // MLflow's search filter takes 'o''brien' as the literal o''brien: the look-ups by key and
    // by one-off id found nothing, so a repeated call and a retried create each made a version.
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    const front = await proxy(url);
    front.addRule({ match: (r) => r.path.includes('model-versions/create'), fault: 'drop-response', times: 1 });
    const name = `${unique('o')}'brien model`;
    const key = unique('apostrophe-key');
    const first = await registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', idempotencyKey: key, trackingUri: front.url, retry: FAST_RETRY });
    expect(first).toMatchObject({ version: '1', created: true });
    const again = await registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', idempotencyKey: key, trackingUri: url });
    expect(again).toMatchObject({ version: '1', created: false, files: 0 });
    const view = await pythonView(url, name, 'champion', experimentId, runId);
    expect(view.versions.map((v) => v.version)).toEqual(['1']);
    expect(view.alias_version).toBe('1');
    expect(view.logged_models).toHaveLength(1);
  });

  it('a name ending with a backslash (valid in MLflow) keeps exactly-once: the same key again, and a lost create answer, make no second version (every look-up was a 400 "Invalid clause(s)")', async () => {
    // MLflow's filter parser reads `\'` as an escaped quote, so `name='model\'` never closes:
    // with a key, every call failed before making anything; without one, a lost create answer
    // failed the call and left the version its first attempt made.
    const { url } = mlflowServer();
    const { runId } = await runWithModel(url);
    const front = await proxy(url);
    front.addRule({ match: (r) => r.path.includes('model-versions/create'), fault: 'drop-response', times: 1 });
    const name = `${unique('backslash')}\\`;
    const key = unique('backslash-key');
    const first = await registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', idempotencyKey: key, trackingUri: front.url, retry: FAST_RETRY });
    expect(first).toMatchObject({ name, version: '1', created: true });
    expect(front.requests.filter((r) => r.fault === 'drop-response')).toHaveLength(1);
    const again = await registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', idempotencyKey: key, trackingUri: url });
    expect(again).toMatchObject({ version: '1', created: false, files: 0 });
    const script = `
import json, sys
from mlflow import MlflowClient
c = MlflowClient(tracking_uri=sys.argv[1])
name = sys.argv[2]
try:
    c.get_model_version(name, "2")
    second = True
except Exception:
    second = False
print(json.dumps({"alias_version": c.get_model_version_by_alias(name, "champion").version, "second": second}))
`;
    const view = JSON.parse((await runPython(script, { args: [url, name] })).trim().split('\n').pop()!) as { alias_version: string; second: boolean };
    expect(view).toEqual({ alias_version: '1', second: false });
  });

  it('a version an earlier release made (still tagged artifact_uploader.create_id) is returned by its key without our internal tags, and its own tags kept', async () => {
    // Releases before this one tagged the version with a one-off create id and removed it after
    // the create; a process killed in between left it there, and a rerun with the key returned
    // it among the version's tags, beside the user's.
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    const name = unique('earlier-release');
    const key = unique('earlier-key');
    const made = await runPython(
      `
import json, sys
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
uri, exp_id, run_id, name, key = sys.argv[1:6]
c = MlflowClient(tracking_uri=uri)
m = c.create_logged_model(experiment_id=exp_id, source_run_id=run_id)
c.finalize_logged_model(m.model_id, LoggedModelStatus.READY)
c.create_registered_model(name)
v = c.create_model_version(name, f"models:/{m.model_id}", run_id=run_id, model_id=m.model_id,
    tags={"artifact_uploader.create_id": "0f1e2d3c-killed-before-removal", "artifact_uploader.idempotency_key": key, "stage": "conversion"})
print(json.dumps({"version": v.version, "model_id": m.model_id}))
`,
      { args: [url, experimentId, runId, name, key] },
    );
    const earlier = JSON.parse(made.trim().split('\n').pop()!) as { version: string; model_id: string };
    const result = await registerModel({ name, runId, artifactPath: 'onnx', alias: 'champion', idempotencyKey: key, trackingUri: url });
    expect(result).toMatchObject({ version: earlier.version, modelId: earlier.model_id, created: false, aliases: ['champion'] });
    expect(result.tags).toEqual({ stage: 'conversion' });
    // Hidden from the result only: the server's version is as it was (Python's view).
    const view = await pythonView(url, name, 'champion', experimentId, runId);
    expect(view.versions).toHaveLength(1);
    expect(view.versions[0]!.tags).toEqual({ 'artifact_uploader.create_id': '0f1e2d3c-killed-before-removal', 'artifact_uploader.idempotency_key': key, stage: 'conversion' });
  });

  it("another registered model's logged models with the same idempotencyKey (one still copying, PENDING; one READY) are neither removed nor registered by this model's call", async () => {
    // Two registrations of one job (an encoder and a decoder from one run) with one key: the
    // first to finish removed the other's PENDING logged model as a leftover of its own key,
    // while that call was still copying into it, and the other call then failed.
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    const key = unique('shared-key');
    const other = unique('decoder');
    const made = await runPython(
      `
import json, sys
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
uri, exp_id, run_id, name, key = sys.argv[1:6]
c = MlflowClient(tracking_uri=uri)
copying = c.create_logged_model(experiment_id=exp_id, name=name, source_run_id=run_id, tags={"artifact_uploader.idempotency_key": key})
ready = c.create_logged_model(experiment_id=exp_id, name=name, source_run_id=run_id, tags={"artifact_uploader.idempotency_key": key})
c.finalize_logged_model(ready.model_id, LoggedModelStatus.READY)
print(json.dumps([copying.model_id, ready.model_id]))
`,
      { args: [url, experimentId, runId, other, key] },
    );
    const [copying, ready] = JSON.parse(made.trim().split('\n').pop()!) as [string, string];
    const name = unique('encoder');
    const result = await registerModel({ name, runId, artifactPath: 'onnx', idempotencyKey: key, trackingUri: url });
    expect(result).toMatchObject({ version: '1', created: true, files: 3 });
    const view = await pythonView(url, name, '', experimentId, runId);
    expect(view.logged_models.map((m) => [m.model_id, m.status]).sort()).toEqual([[copying, 'PENDING'], [ready, 'READY'], [result.modelId, 'READY']].sort());
  });

  it("a keyed call removes every unfinished logged model its key's killed attempts left, past the search's first page of 100", async () => {
    // The look-up read one page of 100: the 101st leftover stayed PENDING for good.
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    const key = unique('many-killed');
    const name = unique('paged');
    await runPython(
      `
import sys
from mlflow import MlflowClient
uri, exp_id, run_id, name, key = sys.argv[1:6]
c = MlflowClient(tracking_uri=uri)
for _ in range(101):
    c.create_logged_model(experiment_id=exp_id, name=name, source_run_id=run_id, tags={"artifact_uploader.idempotency_key": key, "artifact_uploader.registered_model": name})
`,
      { args: [url, experimentId, runId, name, key] },
    );
    const result = await registerModel({ name, runId, artifactPath: 'onnx', idempotencyKey: key, trackingUri: url });
    expect(result).toMatchObject({ version: '1', created: true, files: 3 });
    const view = await pythonView(url, name, '', experimentId, runId);
    expect(view.logged_models.map((m) => [m.model_id, m.status])).toEqual([[result.modelId, 'READY']]);
  });

  it('"enc.v" and "enc_v" (one logged model name) from one run with one idempotencyKey: neither call registers or removes the other\'s logged models', async () => {
    // MLflow refuses "." in a logged model's name, so both get the logged model name "enc_v",
    // and the key's logged models were matched by that name: "enc_v" took "enc.v"'s READY
    // logged model for a killed attempt of its own and registered it (no files copied, a
    // version of another model's files), and removed "enc.v"'s PENDING one, a live copy.
    const { url } = mlflowServer();
    const { runId, experimentId, dir } = await runWithModel(url);
    const key = unique('shared-key');
    const base = unique('enc');
    const dotted = await registerModel({ name: `${base}.v`, runId, artifactPath: 'onnx', idempotencyKey: key, trackingUri: url, alias: 'a' });
    expect(dotted).toMatchObject({ version: '1', created: true, files: 3 });
    // Another call for "enc.v" with the key, still copying (as this release tags its logged model).
    const made = await runPython(
      `
import sys
from mlflow import MlflowClient
uri, exp_id, run_id, name, logged_name, key = sys.argv[1:7]
c = MlflowClient(tracking_uri=uri)
print(c.create_logged_model(experiment_id=exp_id, name=logged_name, source_run_id=run_id, tags={"artifact_uploader.idempotency_key": key, "artifact_uploader.registered_model": name}).model_id)
`,
      { args: [url, experimentId, runId, `${base}.v`, `${base}_v`, key] },
    );
    const copying = made.trim().split('\n').pop()!;
    const underscored = await registerModel({ name: `${base}_v`, runId, artifactPath: 'onnx', idempotencyKey: key, trackingUri: url, alias: 'a' });
    expect(underscored).toMatchObject({ version: '1', created: true, files: 3 });
    expect(underscored.modelId).not.toBe(dotted.modelId);
    const view = await pythonView(url, `${base}_v`, 'a', experimentId, runId);
    expect(view.versions.map((v) => v.source)).toEqual([`models:/${underscored.modelId}`]);
    expect(view.download).toEqual(hashTree(dir));
    expect(view.logged_models.map((m) => [m.model_id, m.status]).sort()).toEqual([[copying, 'PENDING'], [dotted.modelId, 'READY'], [underscored.modelId, 'READY']].sort());
  });

  it('a READY logged model an earlier release left without a version (key tag, no registered-model tag) is still registered by the same key, matched by its logged model name', async () => {
    // Logged models made before the exact name was tagged carry only the key: they keep being
    // matched as that release matched them.
    const { url } = mlflowServer();
    const { runId, experimentId } = await runWithModel(url);
    const key = unique('old-key');
    const name = unique('old.release');
    const made = await runPython(
      `
import sys
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
uri, exp_id, run_id, logged_name, key = sys.argv[1:6]
c = MlflowClient(tracking_uri=uri)
m = c.create_logged_model(experiment_id=exp_id, name=logged_name, source_run_id=run_id, tags={"artifact_uploader.idempotency_key": key})
c.finalize_logged_model(m.model_id, LoggedModelStatus.READY)
print(m.model_id)
`,
      { args: [url, experimentId, runId, name.replace(/\./g, '_'), key] },
    );
    const left = made.trim().split('\n').pop()!;
    const result = await registerModel({ name, runId, artifactPath: 'onnx', idempotencyKey: key, trackingUri: url });
    expect(result).toMatchObject({ version: '1', created: true, files: 0, modelId: left });
  });

  it('registerModel and a stage helper inside withRun register on the run\'s own tracking server, as its uploads go there', async () => {
    // The run was started with trackingUri and there is no MLFLOW_TRACKING_URI: the upload went
    // to the run's server, while the registration resolved ./mlruns and was refused.
    const { url } = mlflowServer();
    const run = await startRun({ trackingUri: url, experimentName: unique('active'), activate: false, env: {} });
    const dir = writeTree(scratch('au-registry-active-'), { 'model.onnx': 'graph', 'model.onnx.data': Buffer.alloc(700, 3) });
    const name = unique('active-model');
    const result = await withRun(run, () => uploadConversionArtifacts({ onnxPath: join(dir, 'model.onnx'), env: {}, register: { name, alias: 'candidate' } }));
    expect(result.status).toBe('uploaded');
    expect(result.registeredModel).toMatchObject({ name, version: '1', runId: run.runId, aliases: ['candidate'] });
    const direct = await withRun(run, () => registerModel({ name, artifactPath: 'onnx', alias: 'direct', env: {} }));
    expect(direct).toMatchObject({ version: '2', runId: run.runId });
    const view = await pythonView(url, name, 'candidate', run.experimentId!, run.runId);
    expect(view.versions.map((v) => v.version).sort()).toEqual(['1', '2']);
    expect(view.download).toEqual(hashTree(dir));
  });

  it('a second stage upload with register into the same run registers only its own files, not what the first left in onnx/ or checkpoint/', async () => {
    // The registration copied everything under the folder in the run: version 2 of the model
    // held model_a.onnx too (and a checkpoint version held the earlier checkpoint's stale file).
    const { url } = mlflowServer();
    const run = await startRun({ trackingUri: url, experimentName: unique('twice'), activate: false, env: {} });
    const a = writeTree(scratch('au-registry-a-'), { 'model_a.onnx': 'graph a', 'model_a.onnx.data': Buffer.alloc(300, 1) });
    const b = writeTree(scratch('au-registry-b-'), { 'model_b.onnx': 'graph b' });
    const name = unique('twice-model');
    const first = await uploadConversionArtifacts({ onnxPath: join(a, 'model_a.onnx'), runId: run.runId, trackingUri: url, env: {}, register: { name, alias: 'a' } });
    expect(first.registeredModel).toMatchObject({ version: '1', files: 2 });
    const second = await uploadConversionArtifacts({ onnxPath: join(b, 'model_b.onnx'), runId: run.runId, trackingUri: url, env: {}, register: { name, alias: 'b' } });
    expect(second.registeredModel).toMatchObject({ version: '2', files: 1 });
    expect((await pythonView(url, name, 'a', run.experimentId!, run.runId)).download).toEqual(hashTree(a));
    expect((await pythonView(url, name, 'b', run.experimentId!, run.runId)).download).toEqual(hashTree(b));

    const early = writeTree(scratch('au-registry-ckpt-500-'), { 'adapter_model.safetensors': Buffer.alloc(100, 5), 'stale-optimizer.pt': 'old' });
    const later = writeTree(scratch('au-registry-ckpt-1000-'), { 'adapter_model.safetensors': Buffer.alloc(100, 6) });
    const trained = unique('twice-train');
    await uploadTrainingArtifacts({ checkpointDir: early, runId: run.runId, trackingUri: url, env: {}, register: { name: trained, alias: 'early' } });
    const latest = await uploadTrainingArtifacts({ checkpointDir: later, runId: run.runId, trackingUri: url, env: {}, register: { name: trained, alias: 'later' } });
    expect(latest.registeredModel).toMatchObject({ version: '2', files: 1 });
    expect((await pythonView(url, trained, 'later', run.experimentId!, run.runId)).download).toEqual(hashTree(later));
  });

  it('copies into an s3:// logged model with the `env` it is given (the S3 endpoint of that env, not of process.env)', async () => {
    // The store for the logged model's artifact location was made from process.env: with the
    // S3 endpoint and keys only in `env` (as for the upload before it), the copy went to AWS.
    // The AWS SDK reads its keys from process.env (the default chain); the endpoint is ours to read.
    for (const [key, value] of Object.entries(servers().awsEnv)) vi.stubEnv(key, value);
    onTestFinished(() => {
      vi.unstubAllEnvs();
    });
    const { url, s3Endpoint } = mlflowDirectS3Server();
    const env = { MLFLOW_S3_ENDPOINT_URL: s3Endpoint };
    const run = await startRun({ trackingUri: url, experimentName: unique('s3-env'), activate: false, env });
    const dir = writeTree(scratch('au-registry-s3-'), { 'model.onnx': 'graph on s3', 'model.onnx.data': Buffer.alloc(400, 2) });
    const name = unique('s3-model');
    const result = await uploadConversionArtifacts({ onnxPath: join(dir, 'model.onnx'), runId: run.runId, trackingUri: url, env, retry: FAST_RETRY, register: { name, alias: 'champion' } });
    expect(result.status, String(result.error?.message)).toBe('uploaded');
    expect(result.registeredModel).toMatchObject({ version: '1', files: 2 });
    expect(result.registeredModel?.modelId).toMatch(/^m-/);
    const view = await pythonView(url, name, 'champion', run.experimentId!, run.runId, { ...servers().awsEnv, ...env });
    expect(view.download).toEqual(hashTree(dir));
  });

  it('a stage helper\'s store options (azure.connectionString) reach the copy into the logged model, as they reached the upload', async () => {
    // The registration made the logged model's store without them: a wasbs:// root reached with
    // the `azure` option uploaded fine, then the copy found no credentials.
    const { url, env: serverEnv } = mlflowAzureServer();
    const azure = { connectionString: serverEnv.AZURE_STORAGE_CONNECTION_STRING! };
    const run = await startRun({ trackingUri: url, experimentName: unique('azure-options'), activate: false, env: {} });
    const dir = writeTree(scratch('au-registry-azure-'), { 'model.onnx': 'graph on azure', 'model.onnx.data': Buffer.alloc(600, 4) });
    const name = unique('azure-model');
    const result = await uploadConversionArtifacts({ onnxPath: join(dir, 'model.onnx'), runId: run.runId, trackingUri: url, env: {}, azure, retry: FAST_RETRY, register: { name, alias: 'champion' } });
    expect(result.status, String(result.error?.message)).toBe('uploaded');
    expect(result.registeredModel).toMatchObject({ version: '1', files: 2 });
    const view = await pythonView(url, name, 'champion', run.experimentId!, run.runId, serverEnv);
    expect(view.download).toEqual(hashTree(dir));
  });

  it('a stage helper refuses a bad idempotencyKey, tag or readyTimeoutMs in `register` before uploading anything (it used to upload, then throw)', async () => {
    const { url } = mlflowServer();
    const run = await startRun({ trackingUri: url, experimentName: unique('early'), activate: false, env: {} });
    const dir = writeTree(scratch('au-registry-early-'), { 'model.onnx': 'graph' });
    const checkpoint = writeTree(scratch('au-registry-early-ckpt-'), { 'adapter_model.safetensors': 'w' });
    const name = unique('early-model');
    const bad: Array<Record<string, unknown>> = [{ idempotencyKey: 'has space' }, { tags: { stage: 3 } }, { tags: { '': 'x' } }, { readyTimeoutMs: 0 }];
    for (const extra of bad) {
      const register = { name, ...extra } as { name: string };
      await expect(uploadConversionArtifacts({ onnxPath: join(dir, 'model.onnx'), runId: run.runId, trackingUri: url, env: {}, register }), JSON.stringify(extra)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(uploadTrainingArtifacts({ checkpointDir: checkpoint, runId: run.runId, trackingUri: url, env: {}, register }), JSON.stringify(extra)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
    const listed = await runPython(
      `import json, sys, mlflow\nfrom mlflow import MlflowClient\nmlflow.set_tracking_uri(sys.argv[1])\nprint(json.dumps([a.path for a in MlflowClient().list_artifacts(sys.argv[2])]))`,
      { args: [url, run.runId] },
    );
    expect(JSON.parse(listed.trim().split('\n').pop()!)).toEqual([]);
  });
});
