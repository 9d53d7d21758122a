/**
 * The embedded ./mlruns store: what it writes on disk (MLflow's FileStore layout, byte for
 * byte where MLflow is strict), its errors, and, cross-checked with the official Python
 * client, that MLflow reads what it wrote and that it reads what MLflow wrote.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempFileName } from '../../src/core/atomic-write.js';
import { InvalidArgumentError, MlflowApiError } from '../../src/core/errors.js';
import { resolveMlflowConnection } from '../../src/mlflow/connection.js';
import { FileTrackingStore } from '../../src/mlflow/file-store.js';
import { TEMP_PREFIX, parseMetaYaml } from '../../src/mlflow/file-store-format.js';
import { createTrackingClient } from '../../src/mlflow/tracking-client.js';
import { LocalFileStore, UPLOADING_PREFIX } from '../../src/stores/local-file-store.js';
import { silentLogger } from '../../src/core/logger.js';
import { findRunSource } from '../../src/registry/model-files.js';
import { recordingLogger } from '../uploader/helpers.js';
import { resolveArtifactStore } from '../../src/stores/resolve.js';
import { listArtifactsRecursive } from '../../src/stores/artifact-store.js';
import { pythonExecutable, runPython } from '../support/python.js';
import { describeWithServers } from '../support/servers.js';

/** A Python process we can talk to line by line (stdout lines out, stdin lines in). */
function interactivePython(script: string, args: string[]) {
  const child = spawn(pythonExecutable(), ['-c', script, ...args], { env: { ...process.env, MLFLOW_ALLOW_FILE_STORE: 'true', PYTHONUNBUFFERED: '1' } });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const done = new Promise<void>((resolve, reject) =>
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`python exited ${code}: ${stderr}`)))),
  );
  return {
    done,
    send: (line: string) => child.stdin.write(`${line}\n`),
    nextLine: async () => {
      const next = await Promise.race([lines.next(), done.then(() => ({ done: true, value: undefined }))]);
      if (next.done || next.value === undefined) throw new Error(`python said nothing more: ${stderr}`);
      return next.value as string;
    },
  };
}

const scratch = () => mkdtempSync(join(tmpdir(), 'au-file-store-'));
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

function allFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1).replaceAll('\\', '/'))
    .sort();
}

describe('FileTrackingStore on disk', () => {
  it('creates the Default experiment and a run in MLflow FileStore layout', async () => {
    const root = join(scratch(), 'mlruns');
    const store = new FileTrackingStore({ root });
    const exp = await store.getOrCreateExperiment('demo-exp');
    expect(exp.experimentId).toMatch(/^[1-9]\d{17}$/);
    const run = await store.createRun({ experimentId: exp.experimentId, runName: 'on', startTime: 1700000000000, userId: 'alice', tags: { team: 'ml' } });
    const runId = run.info.runId;
    expect(runId).toMatch(/^[0-9a-f]{32}$/);

    expect(existsSync(join(root, '.trash'))).toBe(true);
    expect(readFileSync(join(root, '0', 'meta.yaml'), 'utf8')).toMatch(/^artifact_location: file:\/\/\/.*\/0\ncreation_time: \d+\neffective_trace_archival_retention: null\nexperiment_id: '0'\nlast_update_time: \d+\nlifecycle_stage: active\nname: Default\ntrace_location: null\nworkspace: default\n$/);
    const runDir = join(root, exp.experimentId, runId);
    expect(readFileSync(join(runDir, 'meta.yaml'), 'utf8')).toBe(
      [
        `artifact_uri: ${pathToFileURL(runDir).href}/artifacts`,
        'deleted_time: null',
        'end_time: null',
        "entry_point_name: ''",
        `experiment_id: '${exp.experimentId}'`,
        'lifecycle_stage: active',
        `run_id: ${runId}`,
        // YAML 1.1 would read a bare `on` as true: MLflow's PyYAML quotes it, and so do we.
        "run_name: 'on'",
        "source_name: ''",
        'source_type: 4',
        "source_version: ''",
        'start_time: 1700000000000',
        'status: 1',
        'tags: []',
        'user_id: alice',
        '',
      ].join('\n'),
    );
    for (const sub of ['metrics', 'params', 'artifacts', 'tags']) expect(existsSync(join(runDir, sub))).toBe(true);
    expect(readFileSync(join(runDir, 'tags', 'team'), 'utf8')).toBe('ml');
    expect(readFileSync(join(runDir, 'tags', 'mlflow.runName'), 'utf8')).toBe('on');
    expect(run.info).toMatchObject({ runName: 'on', status: 'RUNNING', startTime: 1700000000000, experimentId: exp.experimentId, lifecycleStage: 'active' });
    expect(run.info.artifactUri).toBe(`${pathToFileURL(runDir).href}/artifacts`);

    await store.logBatch({
      runId,
      metrics: [
        { key: 'loss', value: 0.5, timestamp: 1700000000000, step: 3 },
        { key: 'loss', value: 0.25, timestamp: 1700000000001, step: 4 },
        { key: 'eval/acc', value: 1, timestamp: 5 },
        { key: 'weird', value: Number.NaN, timestamp: 6 },
      ],
      params: { lr: 0.001, 'nested/flag': true },
      tags: { 'a/b': 'slash key', 'mlflow.note.content': 'multi\nline' },
    });
    expect(readFileSync(join(runDir, 'metrics', 'loss'), 'utf8')).toBe('1700000000000 0.5 3\n1700000000001 0.25 4\n');
    expect(readFileSync(join(runDir, 'metrics', 'eval', 'acc'), 'utf8')).toBe('5 1.0 0\n');
    expect(readFileSync(join(runDir, 'metrics', 'weird'), 'utf8')).toBe('6 nan 0\n');
    expect(readFileSync(join(runDir, 'params', 'lr'), 'utf8')).toBe('0.001');
    expect(readFileSync(join(runDir, 'params', 'nested', 'flag'), 'utf8')).toBe('true');
    expect(readFileSync(join(runDir, 'tags', 'mlflow.note.content'), 'utf8')).toBe('multi\nline');

    const info = await store.updateRun({ runId, status: 'FINISHED', endTime: 1700000009000 });
    expect(info).toMatchObject({ status: 'FINISHED', endTime: 1700000009000 });
    const meta = await parseMetaYaml(readFileSync(join(runDir, 'meta.yaml'), 'utf8'));
    expect(meta).toMatchObject({ status: 3, end_time: 1700000009000, run_name: 'on' });

    const again = await store.getRun(runId);
    expect(again.data.params).toEqual({ lr: '0.001', 'nested/flag': 'true' });
    expect(again.data.tags).toMatchObject({ team: 'ml', 'a/b': 'slash key', 'mlflow.runName': 'on' });
    const byKey = Object.fromEntries(again.data.metrics.map((m) => [m.key, m]));
    expect(byKey.loss).toEqual({ key: 'loss', value: 0.25, timestamp: 1700000000001, step: 4 });
    expect(byKey['eval/acc']?.value).toBe(1);
    expect(byKey.weird?.value).toBeNaN();

    // Atomic writes leave no temp files behind.
    expect(allFiles(root).filter((f) => f.includes(TEMP_PREFIX))).toEqual([]);
  });

  it('is what createTrackingClient picks for the default and for file: URIs', async () => {
    const dir = scratch();
    const byDefault = createTrackingClient(resolveMlflowConnection({}, {}));
    expect(byDefault.kind).toBe('file');
    const client = createTrackingClient({ trackingUri: `file:${join(dir, 'mlruns')}`, env: {} });
    expect(client.kind).toBe('file');
    expect(client.describe()).toBe(`local MLflow FileStore ${join(dir, 'mlruns')}`);
    const viaPlainPath = createTrackingClient({ trackingUri: join(dir, 'mlruns'), env: {} }) as FileTrackingStore;
    expect(viaPlainPath.root).toBe(join(dir, 'mlruns'));
  });

  it('renaming through the mlflow.runName tag updates meta.yaml, as MLflow does', async () => {
    const store = new FileTrackingStore({ root: join(scratch(), 'mlruns') });
    const run = await store.createRun({ experimentId: '0' });
    expect(run.info.runName).toMatch(/^[a-z]+-[a-z]+-\d+$/);
    await store.setTag(run.info.runId, 'mlflow.runName', 'renamed');
    expect((await store.getRun(run.info.runId)).info.runName).toBe('renamed');
    const info = await store.updateRun({ runId: run.info.runId, runName: 'again' });
    expect(info.runName).toBe('again');
    expect((await store.getRun(run.info.runId)).data.tags['mlflow.runName']).toBe('again');
  });

  it('a metadata temp file a killed process left in a run directory is removed by the next write there; a live writer\'s stays', async () => {
    const root = join(scratch(), 'mlruns');
    const first = new FileTrackingStore({ root });
    const run = await first.createRun({ experimentId: '0' });
    const runDir = join(root, '0', run.info.runId);
    const hourAgo = new Date(Date.now() - 60 * 60_000);
    // What SIGKILL between write and rename leaves: a temp file named by its (now dead) writer.
    const dead = join(runDir, tempFileName(TEMP_PREFIX).replace(`-${process.pid}-`, `-${spawnSync(process.execPath, ['-e', '']).pid}-`));
    // A live writer: another process that is alive (this one's parent). One of this process's
    // pid but older than this process would be a dead predecessor's (a container's pid 1).
    const live = join(runDir, tempFileName(TEMP_PREFIX).replace(`-${process.pid}-`, `-${process.ppid}-`));
    for (const path of [dead, live]) {
      writeFileSync(path, 'half a meta.yaml');
      utimesSync(path, hourAgo, hourAgo);
    }
    // A new process (a new store) writes a tag into the run: the dead writer's file goes.
    await new FileTrackingStore({ root }).setTag(run.info.runId, 'stage', 'training');
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect((await first.getRun(run.info.runId)).data.tags.stage).toBe('training');
  });

  it('answers with the errors a server would give', async () => {
    const root = join(scratch(), 'mlruns');
    const store = new FileTrackingStore({ root });
    const missing = await store.getRun('0123456789abcdef0123456789abcdef').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(MlflowApiError);
    expect(missing).toMatchObject({ status: 404, errorCode: 'RESOURCE_DOES_NOT_EXIST', endpoint: 'mlflow/runs/get' });
    expect((missing as MlflowApiError).hint).toMatch(/MLFLOW_RUN_ID/);
    expect((missing as MlflowApiError).hint).not.toMatch(/mlflow\.db/);
    // MLflow 3.7+'s own default store beside it: the hint says where the run probably is.
    writeFileSync(join(root, '..', 'mlflow.db'), 'SQLite format 3\0');
    const elsewhere = (await store.getRun('0123456789abcdef0123456789abcdef').catch((e: unknown) => e)) as MlflowApiError;
    expect(elsewhere.hint).toContain(`${join(root, '..', 'mlflow.db')} is beside it: MLflow 3.7+ keeps runs in sqlite:///mlflow.db when no tracking URI is set`);
    expect(elsewhere.hint).toMatch(/mlflow server --backend-store-uri sqlite:\/\/\/.*mlflow\.db/);

    await expect(store.getExperiment('42')).rejects.toMatchObject({ status: 404, errorCode: 'RESOURCE_DOES_NOT_EXIST' });
    await expect(store.createRun({ experimentId: '42' })).rejects.toMatchObject({ status: 404, endpoint: 'mlflow/runs/create' });
    expect(await store.getExperimentByName('nope')).toBeUndefined();

    await expect(store.getRun('../../etc')).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(store.getExperiment('../x')).rejects.toBeInstanceOf(InvalidArgumentError);

    const run = await store.createRun({ experimentId: '0' });
    await store.logBatch({ runId: run.info.runId, params: { lr: '0.1' } });
    await store.logBatch({ runId: run.info.runId, params: { lr: '0.1' } }); // same value: fine
    await expect(store.logBatch({ runId: run.info.runId, params: { lr: '0.2' } })).rejects.toMatchObject({
      status: 400,
      errorCode: 'INVALID_PARAMETER_VALUE',
    });
    // Validation happens before anything is written.
    await expect(store.logBatch({ runId: run.info.runId, params: { ok: '1' }, tags: { 'bad\u0000key': 'x' } })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(existsSync(join(root, '0', run.info.runId, 'params', 'ok'))).toBe(false);
    await expect(store.setTag(run.info.runId, '../escape', 'x')).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(store.listArtifacts(run.info.runId, '../..')).rejects.toMatchObject({ code: 'INVALID_ARTIFACT_PATH' });

    // A run folder without metrics/ params/ artifacts/ is not a run (MLflow's traversal guard).
    mkdirSync(join(root, '0', 'fffffffffffffffffffffffffffffff0'));
    writeFileSync(join(root, '0', 'fffffffffffffffffffffffffffffff0', 'meta.yaml'), 'run_id: fffffffffffffffffffffffffffffff0\n');
    await expect(store.getRun('fffffffffffffffffffffffffffffff0')).rejects.toMatchObject({ status: 404 });
  });

  it('two stores creating one experiment name at once end up with one experiment', async () => {
    const root = join(scratch(), 'mlruns');
    const [a, b] = [new FileTrackingStore({ root }), new FileTrackingStore({ root })];
    const ids = await Promise.all([a.createExperiment('shared'), b.createExperiment('shared'), a.getOrCreateExperiment('shared').then((e) => e.experimentId)]);
    expect(new Set(ids).size).toBe(1);
    const dirs = readdirSync(root).filter((n) => /^\d+$/.test(n));
    expect(dirs.sort()).toEqual(['0', ids[0]!].sort());
    expect(readdirSync(root).filter((n) => n.startsWith(TEMP_PREFIX))).toEqual([]);
  });

  it('lists artifacts one level at a time, skipping in-progress temp files', async () => {
    const store = new FileTrackingStore({ root: join(scratch(), 'mlruns') });
    const run = await store.createRun({ experimentId: '0' });
    const artifacts = new URL(run.info.artifactUri);
    const dir = decodeURIComponent(artifacts.pathname);
    mkdirSync(join(dir, 'model'), { recursive: true });
    writeFileSync(join(dir, 'model', 'weights.bin'), Buffer.alloc(10));
    writeFileSync(join(dir, 'notes.txt'), 'hi');
    // What versions before the `.artifact.uploading.` prefix left when killed mid-copy.
    writeFileSync(join(dir, `${TEMP_PREFIX}0123456789ab.tmp`), 'partial');
    expect(await store.listArtifacts(run.info.runId)).toEqual({
      rootUri: run.info.artifactUri,
      files: [
        { path: 'model', isDir: true },
        { path: 'notes.txt', isDir: false, fileSize: 2 },
      ],
    });
    expect((await store.listArtifacts(run.info.runId, 'model/')).files).toEqual([{ path: 'model/weights.bin', isDir: false, fileSize: 10 }]);
    expect((await store.listArtifacts(run.info.runId, 'nothing-here')).files).toEqual([]);
  });
});

/**
 * A run's `model/` artifact directory holding, besides a file and a symlinked file, what another
 * tool may leave there: a dangling symlink, a link to itself, a FIFO; and a file whose name only
 * starts like our temp files (MLflow lists it).
 */
async function runWithOddEntries(logger = silentLogger) {
  const base = scratch();
  const tracking = new FileTrackingStore({ root: join(base, 'mlruns'), logger });
  const run = await tracking.createRun({ experimentId: '0' });
  const model = join(decodeURIComponent(new URL(run.info.artifactUri).pathname), 'model');
  mkdirSync(model, { recursive: true });
  writeFileSync(join(model, 'weights.bin'), Buffer.alloc(10));
  writeFileSync(join(base, 'config.json'), '{}');
  symlinkSync(join(base, 'config.json'), join(model, 'config.json'));
  writeFileSync(join(model, `${TEMP_PREFIX}notes.txt`), 'mine');
  symlinkSync(join(base, 'deleted-since'), join(model, 'gone.bin'));
  symlinkSync(join(model, 'loop'), join(model, 'loop'));
  execFileSync('mkfifo', [join(model, 'pipe')]);
  return { tracking, runId: run.info.runId, artifactUri: run.info.artifactUri, root: join(base, 'mlruns') };
}

const ODD_DIRECTORY_LISTING = [
  { path: 'model/.artifact-uploader-notes.txt', isDir: false, size: 4 },
  { path: 'model/config.json', isDir: false, size: 2 },
  { path: 'model/weights.bin', isDir: false, size: 10 },
];

describe('FileTrackingStore.listArtifacts and the file store list the same', () => {
  it('a dangling symlink, a link loop and a FIFO are left out of both, each named in a warning; the listing and a registerModel walk go on', async () => {
    const trackingLogger = recordingLogger();
    const { tracking, runId, artifactUri } = await runWithOddEntries(trackingLogger);
    const storeLogger = recordingLogger();
    const store = new LocalFileStore({ artifactUri, logger: storeLogger });

    expect(await store.list('model')).toEqual(ODD_DIRECTORY_LISTING);
    expect((await tracking.listArtifacts(runId, 'model')).files).toEqual(ODD_DIRECTORY_LISTING.map(({ size, ...entry }) => ({ ...entry, fileSize: size })));
    for (const logger of [storeLogger, trackingLogger]) {
      const warnings = logger.lines.filter(([level]) => level === 'warn').map(([, message]) => message);
      expect(warnings).toEqual([
        expect.stringMatching(/^model\/gone\.bin in the artifact directory .* is a dangling symlink \(its target is missing\); it is left out of the listing\.$/),
        expect.stringMatching(/^model\/loop in the artifact directory .* is a symlink in a cycle of links; it is left out/),
        expect.stringMatching(/^model\/pipe in the artifact directory .* is a FIFO, socket or device, not a file; it is left out/),
      ]);
    }
    // What registerModel walks: the readable files, not a crash on the link.
    const source = await findRunSource(tracking, runId, 'model');
    expect(source.files.map((f) => [f.modelPath, f.size])).toEqual([
      ['.artifact-uploader-notes.txt', 4],
      ['config.json', 2],
      ['weights.bin', 10],
    ]);
  });
});

describe('a symlink to a directory the listed one is inside (a loop another tool left)', () => {
  /** A run's `model/` with `self -> .` and `a/up -> ..` (both loops) and `b -> a` (a second way to a directory: no loop). */
  async function runWithDirectoryLoops(logger = silentLogger) {
    const tracking = new FileTrackingStore({ root: join(scratch(), 'mlruns'), logger });
    const run = await tracking.createRun({ experimentId: '0' });
    const model = join(decodeURIComponent(new URL(run.info.artifactUri).pathname), 'model');
    mkdirSync(join(model, 'a'), { recursive: true });
    writeFileSync(join(model, 'weights.bin'), Buffer.alloc(10));
    writeFileSync(join(model, 'a', 'config.json'), '{}');
    symlinkSync('.', join(model, 'self'));
    symlinkSync('..', join(model, 'a', 'up'));
    symlinkSync('a', join(model, 'b'));
    return { tracking, runId: run.info.runId, artifactUri: run.info.artifactUri };
  }

  it('the registerModel walk lists each file once (MLflow lists the loops as directories: 2^40 paths) and names each loop in a warning', async () => {
    const logger = recordingLogger();
    const { tracking, runId } = await runWithDirectoryLoops(logger);
    // A low cap: before the fix, the walk went round the loops until it reached it.
    const source = await findRunSource(tracking, runId, 'model', undefined, 1000);
    // Breadth first, as the walk goes.
    expect(source.files.map((f) => [f.modelPath, f.size])).toEqual([
      ['weights.bin', 10],
      ['a/config.json', 2],
      ['b/config.json', 2],
    ]);
    const warnings = logger.lines.filter(([level]) => level === 'warn').map(([, message]) => message);
    expect(warnings).toEqual([
      expect.stringMatching(/^model\/self in the artifact directory .* is a symlink to a directory it is inside \(a loop/),
      expect.stringMatching(/^model\/a\/up in the artifact directory .* is a symlink to a directory it is inside/),
      // Listed again under b/, the other way to a/.
      expect.stringMatching(/^model\/b\/up in the artifact directory .* is a symlink to a directory it is inside/),
    ]);
  });

  it('listArtifactsRecursive on a file: store lists each file once, not once per level down to ELOOP', async () => {
    // One loop only: with two, the walk before the fix would not end in a test's time.
    const root = scratch();
    mkdirSync(join(root, 'model'));
    writeFileSync(join(root, 'model', 'weights.bin'), Buffer.alloc(10));
    symlinkSync('.', join(root, 'model', 'self'));
    const logger = recordingLogger();
    const store = new LocalFileStore({ artifactUri: pathToFileURL(root).href, logger });
    expect((await listArtifactsRecursive(store, 'model')).map((f) => [f.path, f.size])).toEqual([['model/weights.bin', 10]]);
    expect(logger.lines.filter(([level]) => level === 'warn').map(([, message]) => message)).toEqual([expect.stringMatching(/^model\/self in the artifact directory .* is a symlink to a directory it is inside/)]);
  });
});

describeWithServers('FileTrackingStore and the official Python client', () => {
  it("MLflow's own list_artifacts fails on the dangling link (os.path.getsize); ours lists the rest, which MLflow lists the same once the odd entries are gone", async () => {
    const { tracking, runId, root } = await runWithOddEntries();
    const script = `
import json, os, sys
from mlflow import MlflowClient
c = MlflowClient(tracking_uri=sys.argv[1])
try:
    c.list_artifacts(sys.argv[2], 'model')
    print(json.dumps('listed'))
except OSError as e:
    print(json.dumps(type(e).__name__))
    model = os.path.join(c.get_run(sys.argv[2]).info.artifact_uri.replace('file://', ''), 'model')
    for name in ('gone.bin', 'loop', 'pipe'):
        os.remove(os.path.join(model, name))
print(json.dumps([[f.path, f.is_dir, f.file_size] for f in c.list_artifacts(sys.argv[2], 'model')]))
`;
    const ours = (await tracking.listArtifacts(runId, 'model')).files.map((f) => [f.path, f.isDir, f.fileSize ?? null]);
    const [failure, theirs] = (await runPython(script, { args: [`file:${root}`, runId] })).trim().split('\n').slice(-2).map((line) => JSON.parse(line) as unknown);
    expect(failure).toBe('FileNotFoundError');
    expect(ours).toEqual(theirs);
  });

  it('MLflow reads the run, its tags, params, metrics and artifacts', async () => {
    const root = join(scratch(), 'ml runs');
    const store = new FileTrackingStore({ root });
    const exp = await store.getOrCreateExperiment('1_000');
    const run = await store.createRun({
      experimentId: exp.experimentId,
      runName: 'yes',
      userId: 'alice',
      tags: { 'mlflow.source.type': 'LOCAL', unicode: 'модель 模型' },
    });
    const runId = run.info.runId;
    await store.logBatch({
      runId,
      metrics: [
        { key: 'loss', value: 0.5, timestamp: 1700000000000, step: 1 },
        { key: 'loss', value: 0.125, timestamp: 1700000000500, step: 2 },
        { key: 'big', value: 1e20, timestamp: 1 },
        { key: 'inf', value: -Infinity, timestamp: 1 },
      ],
      params: { lr: 0.001, epochs: 3 },
      tags: { stage: 'training' },
    });
    await store.updateRun({ runId, status: 'FINISHED', endTime: 1700000009000 });
    // The artifact copy is the `file` artifact store's job (src/stores): the run's file: URI picks it.
    const weights = randomBytes(2048);
    const local = join(scratch(), 'weights.bin');
    writeFileSync(local, weights);
    const artifactStore = resolveArtifactStore(run.info.artifactUri, { connection: resolveMlflowConnection({ trackingUri: `file:${root}` }, {}), env: {} });
    expect(artifactStore.kind).toBe('file');
    await artifactStore.uploadFile(local, 'model/weights.bin');

    const out = await runPython(
      `
import hashlib, json, math, os, sys, tempfile
from mlflow import MlflowClient
c = MlflowClient(tracking_uri=sys.argv[1])
exp = c.get_experiment_by_name('1_000')
runs = c.search_runs([exp.experiment_id])
r = c.get_run(sys.argv[2])
hist = [(m.step, m.value) for m in c.get_metric_history(sys.argv[2], 'loss')]
listing = [(f.path, f.is_dir, f.file_size) for f in c.list_artifacts(sys.argv[2])]
sub = [(f.path, f.is_dir, f.file_size) for f in c.list_artifacts(sys.argv[2], 'model')]
with tempfile.TemporaryDirectory() as d:
    local = c.download_artifacts(sys.argv[2], 'model/weights.bin', d)
    digest = hashlib.sha256(open(local, 'rb').read()).hexdigest()
print(json.dumps({
  'exp': [exp.experiment_id, exp.name, exp.lifecycle_stage],
  'runs': [x.info.run_id for x in runs],
  'info': [r.info.run_name, r.info.status, r.info.user_id, r.info.end_time, r.info.artifact_uri],
  'params': r.data.params, 'tags': r.data.tags,
  'metrics': {k: (v if math.isfinite(v) else repr(v)) for k, v in r.data.metrics.items()},
  'hist': hist, 'listing': listing, 'sub': sub, 'sha': digest,
}))
`,
      { args: [`file:${root}`, runId] },
    );
    const py = JSON.parse(out.trim().split('\n').pop() ?? '{}');
    expect(py.exp).toEqual([exp.experimentId, '1_000', 'active']);
    expect(py.runs).toEqual([runId]);
    expect(py.info).toEqual(['yes', 'FINISHED', 'alice', 1700000009000, run.info.artifactUri]);
    expect(py.params).toEqual({ lr: '0.001', epochs: '3' });
    expect(py.tags).toMatchObject({ 'mlflow.runName': 'yes', stage: 'training', unicode: 'модель 模型', 'mlflow.source.type': 'LOCAL' });
    expect(py.metrics).toEqual({ loss: 0.125, big: 1e20, inf: '-inf' });
    expect(py.hist).toEqual([
      [1, 0.5],
      [2, 0.125],
    ]);
    expect(py.listing).toEqual([['model', true, null]]);
    expect(py.sub).toEqual([['model/weights.bin', false, 2048]]);
    expect(py.sha).toBe(sha256(weights));
  });

  it('reads a store MLflow wrote, and writes into it in a way MLflow still reads', async () => {
    const root = join(scratch(), 'mlruns');
    // One Python process for both halves (its start-up is the slow part): it writes, waits
    // for us on stdin, then reads back what we wrote.
    const python = interactivePython(
      `
import json, sys
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
c = MlflowClient(tracking_uri=sys.argv[1])
e = c.create_experiment('from-python')
r = c.create_run(e, run_name='py-run', tags={'origin': 'python'})
c.log_batch(r.info.run_id, metrics=[Metric('acc', 0.75, 1700000000000, 7)], params=[Param('seed', '42')])
deleted = c.create_run(e)
c.delete_run(deleted.info.run_id)
print(json.dumps([e, r.info.run_id, deleted.info.run_id]), flush=True)
sys.stdin.readline()
r = c.get_run(r.info.run_id)
print(json.dumps([r.info.status, r.info.end_time, r.data.tags.get('from'), r.data.metrics['acc']]), flush=True)
`,
      [`file:${root}`],
    );
    const [expId, runId, deletedId] = JSON.parse(await python.nextLine()) as [string, string, string];
    const store = new FileTrackingStore({ root });
    expect(await store.getExperimentByName('from-python')).toMatchObject({ experimentId: expId, lifecycleStage: 'active' });
    const run = await store.getRun(runId);
    expect(run.info).toMatchObject({ runId, runName: 'py-run', status: 'RUNNING', experimentId: expId });
    expect(run.data).toEqual({
      metrics: [{ key: 'acc', value: 0.75, timestamp: 1700000000000, step: 7 }],
      params: { seed: '42' },
      tags: { origin: 'python', 'mlflow.runName': 'py-run' },
    });
    await expect(store.setTag(deletedId, 'x', 'y')).rejects.toMatchObject({ status: 400, errorCode: 'INVALID_PARAMETER_VALUE' });

    await store.setTag(runId, 'from', 'node');
    await store.logBatch({ runId, metrics: [{ key: 'acc', value: 0.9, timestamp: 1700000001000, step: 8 }] });
    await store.updateRun({ runId, status: 'KILLED', endTime: 1700000002000 });
    python.send('go');
    expect(JSON.parse(await python.nextLine())).toEqual(['KILLED', 1700000002000, 'node', 0.9]);
    await python.done;
  });

  it('MLflow reads experiment and run names holding YAML 1.1 line breaks and characters its YAML reader refuses raw', async () => {
    const root = join(scratch(), 'mlruns');
    const store = new FileTrackingStore({ root });
    const names = ['line\u2028sep', 'nel\u0085x', 'del\u007f x'];
    const ids = await Promise.all(names.map(async (name) => (await store.getOrCreateExperiment(name)).experimentId));
    const run = await store.createRun({ experimentId: ids[0]!, runName: 'run\u2029one' });
    const out = await runPython(
      `
import json, sys
from mlflow import MlflowClient
c = MlflowClient(tracking_uri=sys.argv[1])
print(json.dumps({'experiments': sorted(e.name for e in c.search_experiments()), 'run': c.get_run(sys.argv[2]).info.run_name}))
`,
      { args: [`file:${root}`, run.info.runId] },
    );
    const py = JSON.parse(out.trim().split('\n').pop() ?? '{}');
    expect(py.experiments).toEqual(['Default', ...names].sort());
    expect(py.run).toBe('run\u2029one');
    expect((await store.getRun(run.info.runId)).info.runName).toBe('run\u2029one');
    expect((await store.getExperimentByName(names[1]!))?.experimentId).toBe(ids[1]);
  });

  it('reads names holding U+2028 or U+2029 that MLflow wrote as MLflow reads them, and finds such an experiment by name', async () => {
    const root = join(scratch(), 'mlruns');
    const out = await runPython(
      `
import json, sys
from mlflow import MlflowClient
c = MlflowClient(tracking_uri=sys.argv[1])
e = c.create_experiment('line\\u2028sep')
r = c.create_run(e, run_name='para\\u2029one')
print(json.dumps([e, r.info.run_id]))
`,
      { args: [`file:${root}`] },
    );
    const [experimentId, runId] = JSON.parse(out.trim().split('\n').pop() ?? '[]') as [string, string];
    const store = new FileTrackingStore({ root });
    expect((await store.getOrCreateExperiment('line\u2028sep')).experimentId).toBe(experimentId);
    expect((await store.getExperiment(experimentId)).name).toBe('line\u2028sep');
    expect((await store.getRun(runId)).info.runName).toBe('para\u2029one');
  });

  it('lists what MLflow lists: a copy a kill cut short is left out, symlinked files and folders are in', async () => {
    const root = join(scratch(), 'mlruns');
    const store = new FileTrackingStore({ root });
    const run = await store.createRun({ experimentId: '0' });
    const runId = run.info.runId;
    const local = join(scratch(), 'weights.bin');
    writeFileSync(local, randomBytes(64));
    const artifactStore = resolveArtifactStore(run.info.artifactUri, { connection: resolveMlflowConnection({ trackingUri: `file:${root}` }, {}), env: {} });
    await artifactStore.uploadFile(local, 'model/config.json');
    const dir = decodeURIComponent(new URL(run.info.artifactUri).pathname);
    // What a copy killed before its rename leaves: the temp file, under the store's own name.
    writeFileSync(join(dir, 'model', tempFileName(UPLOADING_PREFIX)), 'partial');
    // Weights kept elsewhere and linked in, a file and a folder.
    symlinkSync(local, join(dir, 'model', 'weights.bin'));
    const shards = join(scratch(), 'shards');
    mkdirSync(shards);
    symlinkSync(shards, join(dir, 'model', 'shards'));

    const ours = (await store.listArtifacts(runId, 'model')).files.map((f) => [f.path, f.isDir, f.fileSize ?? null]);
    const out = await runPython(
      `
import json, sys
from mlflow import MlflowClient
c = MlflowClient(tracking_uri=sys.argv[1])
print(json.dumps([[f.path, f.is_dir, f.file_size] for f in c.list_artifacts(sys.argv[2], 'model')]))
`,
      { args: [`file:${root}`, runId] },
    );
    const theirs: unknown = JSON.parse(out.trim().split('\n').pop() ?? '[]');
    expect(ours).toEqual([
      ['model/config.json', false, 64],
      ['model/shards', true, null],
      ['model/weights.bin', false, 64],
    ]);
    expect(ours).toEqual(theirs);
  });
});
