/**
 * startRun / endRun / withNewRun on the embedded FileStore (fast, no server) and on a real
 * MLflow server: experiment resolution from options and env, MLflow's default tags, joining
 * MLFLOW_RUN_ID, and concurrent runs.
 */
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { AbortedError, ConfigError, InvalidArgumentError } from '../../src/core/errors.js';
import { resolveMlflowConnection } from '../../src/mlflow/connection.js';
import { FileTrackingStore } from '../../src/mlflow/file-store.js';
import { activeRun, getMlflowRunId, runState, withRun } from '../../src/run/run-context.js';
import { defaultRunTags, endRun, startRun, withNewRun } from '../../src/run/start-run.js';
import { useFaultProxies } from '../support/fault-proxy.js';
import { runPython } from '../support/python.js';
import { describeWithServers, mlflowServer } from '../support/servers.js';

/** A fresh ./mlruns and an env with nothing of the developer's in it. */
function local(extraEnv: Record<string, string> = {}) {
  const root = join(mkdtempSync(join(tmpdir(), 'au-start-run-')), 'mlruns');
  return { root, store: new FileTrackingStore({ root }), options: { trackingUri: `file:${root}`, env: { USER: 'tester', ...extraEnv } } };
}

afterEach(() => {
  runState().processRun = undefined;
});

describe('startRun and endRun on ./mlruns', () => {
  it('creates a run in Default with MLflow\'s default tags, makes it active, and ends it', async () => {
    const { store, options } = local();
    const run = await startRun({ ...options, runName: 'first', tags: { team: 'ml' } });
    expect(run).toMatchObject({ experimentId: '0', runName: 'first', owned: true });
    expect(activeRun()).toBe(run);
    expect(getMlflowRunId(undefined, { env: {} })).toBe(run.runId);
    const stored = await store.getRun(run.runId);
    expect(stored.data.tags).toEqual({
      'mlflow.user': 'tester',
      'mlflow.source.name': process.argv[1],
      'mlflow.source.type': 'LOCAL',
      'mlflow.runName': 'first',
      team: 'ml',
    });
    expect(stored.info.userId).toBe('tester');

    await expect(startRun(options)).rejects.toThrow(/already active/);

    const ended = await endRun();
    expect(ended).toMatchObject({ runId: run.runId, status: 'FINISHED' });
    expect(ended?.endTime).toBeGreaterThan(0);
    expect(activeRun()).toBeUndefined();
    expect(await endRun()).toBeUndefined();
  });

  it('reads percent escapes in a file: URI or path as MLflow does, so it finds the run a Python step made there', async () => {
    // MLflow's client unquotes every local tracking URI (`local_file_uri_to_path`:
    // url2pathname), so `file:/x/my%20runs` is the store in "/x/my runs". Only `file:///` was
    // decoded here: a Node step given the same MLFLOW_TRACKING_URI looked in "/x/my%20runs".
    const parent = mkdtempSync(join(tmpdir(), 'au-start-run-pct-'));
    for (const uri of [`file:${parent}/my%20runs`, `${parent}/my%20runs`]) {
      const out = await runPython(`import sys, mlflow\nmlflow.set_tracking_uri(sys.argv[1])\nwith mlflow.start_run() as r: print(r.info.run_id)`, { args: [uri] });
      const pythonRunId = out.trim().split('\n').pop()!;
      const run = await startRun({ trackingUri: uri, runId: pythonRunId, env: { USER: 'tester' }, activate: false });
      expect(run).toMatchObject({ runId: pythonRunId, owned: false });
    }
    expect(readdirSync(parent)).toEqual(['my runs']);
    expect(resolveMlflowConnection({ trackingUri: 'file:my%20runs%2' }, {})).toMatchObject({ kind: 'file', root: join(process.cwd(), 'my runs%2') });
  });

  it('takes the experiment from options, then MLFLOW_EXPERIMENT_NAME, then MLFLOW_EXPERIMENT_ID', async () => {
    const { store, options } = local();
    const byName = await startRun({ ...options, experimentName: 'opt-exp', activate: false });
    const optExp = await store.getExperimentByName('opt-exp');
    expect(byName.experimentId).toBe(optExp?.experimentId);
    expect((await startRun({ ...options, experimentId: optExp!.experimentId, activate: false })).experimentId).toBe(optExp!.experimentId);
    await expect(startRun({ ...options, experimentId: optExp!.experimentId, experimentName: 'other', activate: false })).rejects.toBeInstanceOf(InvalidArgumentError);

    const envNamed = await startRun({ ...options, env: { ...options.env, MLFLOW_EXPERIMENT_NAME: 'env-exp' }, activate: false });
    const envExp = await store.getExperimentByName('env-exp');
    expect(envNamed.experimentId).toBe(envExp?.experimentId);
    // Options win over the environment.
    expect((await startRun({ ...options, experimentName: 'opt-exp', env: { ...options.env, MLFLOW_EXPERIMENT_NAME: 'env-exp' }, activate: false })).experimentId).toBe(optExp?.experimentId);
    // Both set and agreeing is fine; disagreeing is a ConfigError.
    expect((await startRun({ ...options, env: { ...options.env, MLFLOW_EXPERIMENT_NAME: 'env-exp', MLFLOW_EXPERIMENT_ID: envExp!.experimentId }, activate: false })).experimentId).toBe(envExp!.experimentId);
    const clash = await startRun({ ...options, env: { ...options.env, MLFLOW_EXPERIMENT_NAME: 'env-exp', MLFLOW_EXPERIMENT_ID: '0' }, activate: false }).catch((e: unknown) => e);
    expect(clash).toBeInstanceOf(ConfigError);
    expect((clash as ConfigError).issues[0]?.path).toBe('MLFLOW_EXPERIMENT_ID');

    expect((await startRun({ ...options, env: { ...options.env, MLFLOW_EXPERIMENT_ID: envExp!.experimentId }, activate: false })).experimentId).toBe(envExp!.experimentId);
    const missing = await startRun({ ...options, env: { ...options.env, MLFLOW_EXPERIMENT_ID: '123456' }, activate: false }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ConfigError);
    expect((missing as Error).message).toMatch(/MLFLOW_EXPERIMENT_ID=123456: no such experiment/);
    await expect(startRun({ ...options, env: { ...options.env, MLFLOW_EXPERIMENT_ID: 'a/b' }, activate: false })).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('joins MLFLOW_RUN_ID without taking it over', async () => {
    const { store, options } = local();
    const parent = await store.createRun({ experimentId: '0', runName: 'parent' });
    const env = { ...options.env, MLFLOW_RUN_ID: parent.info.runId };
    const joined = await startRun({ ...options, env });
    expect(joined).toMatchObject({ runId: parent.info.runId, owned: false, runName: 'parent' });
    // The owner ends it, not us.
    expect(await endRun()).toBeUndefined();
    expect((await store.getRun(parent.info.runId)).info.status).toBe('RUNNING');
    // ...unless asked explicitly.
    await startRun({ ...options, env });
    expect(await endRun('FAILED')).toMatchObject({ status: 'FAILED' });

    // joinEnvRun: false starts a new run even so.
    const fresh = await startRun({ ...options, env, joinEnvRun: false, activate: false });
    expect(fresh.runId).not.toBe(parent.info.runId);
    expect(fresh.owned).toBe(true);

    const unknown = await startRun({ ...options, env: { ...options.env, MLFLOW_RUN_ID: 'ffffffffffffffffffffffffffffffff' } }).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(ConfigError);
    expect((unknown as ConfigError).message).toMatch(/MLFLOW_RUN_ID=ffff.*no such run/);
    await expect(startRun({ ...options, runId: 'bad id' })).rejects.toMatchObject({ argument: 'runId' });
    // A run in another experiment than the one asked for is refused, as MLflow does.
    const other = await store.getOrCreateExperiment('other');
    await expect(startRun({ ...options, env: { ...env, MLFLOW_EXPERIMENT_ID: other.experimentId } })).rejects.toThrow(/belongs to experiment 0/);
    await expect(startRun({ ...options, env, experimentName: 'other' })).rejects.toThrow(/belongs to experiment 0/);
    // The way to a new run instead depends on where the run id came from: MLFLOW_RUN_ID is a
    // parent's (unset it, or joinEnvRun: false), an explicit runId is the caller's (leave it out).
    await expect(startRun({ ...options, env, experimentName: 'other' })).rejects.toMatchObject({ hint: expect.stringContaining('(unset MLFLOW_RUN_ID or pass joinEnvRun: false)') });
    await expect(startRun({ ...options, runId: parent.info.runId, experimentName: 'other' })).rejects.toMatchObject({
      message: expect.stringMatching(/^runId=\w+ belongs to experiment 0/),
      hint: 'Drop the experiment setting when joining an existing run, or start a new run (leave runId out).',
    });
    expect(activeRun()).toBeUndefined();
  });

  it('nested: trials of a sweep under MLFLOW_RUN_ID are child runs of it (mlflow.parentRunId, its experiment), not the parent joined', async () => {
    const { store, options } = local();
    const experiment = await store.getOrCreateExperiment('sweep');
    const parent = await store.createRun({ experimentId: experiment.experimentId, runName: 'parent', tags: {} });
    const env = { ...options.env, MLFLOW_RUN_ID: parent.info.runId };
    const children = await Promise.all(['a', 'b', 'c'].map((name) => withNewRun({ ...options, env, nested: true, runName: name }, async (run) => run)));
    expect(new Set(children.map((c) => c.runId)).size).toBe(3);
    for (const child of children) {
      expect(child.runId).not.toBe(parent.info.runId);
      expect(child).toMatchObject({ owned: true, experimentId: experiment.experimentId });
      const stored = await store.getRun(child.runId);
      expect(stored.data.tags['mlflow.parentRunId']).toBe(parent.info.runId);
      expect(stored.info.status).toBe('FINISHED');
    }
    // The parent is its owner's: left RUNNING.
    expect((await store.getRun(parent.info.runId)).info.status).toBe('RUNNING');
    // Without nested, the same call joins the parent (Python's start_run() with MLFLOW_RUN_ID).
    expect((await withNewRun({ ...options, env }, async (run) => run)).runId).toBe(parent.info.runId);
  });

  it('nested: a child of the bound run (withRun) first; an experiment given wins; no parent makes a plain run; runId with nested is refused; a missing parent is a ConfigError', async () => {
    const { store, options } = local();
    const bound = await startRun({ ...options, experimentName: 'outer', activate: false });
    const child = await withRun(bound, () => startRun({ ...options, env: { ...options.env, MLFLOW_RUN_ID: 'ffffffffffffffffffffffffffffffff' }, nested: true, activate: false }));
    expect((await store.getRun(child.runId)).data.tags['mlflow.parentRunId']).toBe(bound.runId);
    expect(child.experimentId).toBe(bound.experimentId);
    const elsewhere = await withRun(bound, () => startRun({ ...options, nested: true, experimentName: 'other', activate: false }));
    expect(elsewhere.experimentId).toBe((await store.getExperimentByName('other'))?.experimentId);
    expect((await store.getRun(elsewhere.runId)).data.tags['mlflow.parentRunId']).toBe(bound.runId);

    const plain = await startRun({ ...options, nested: true, activate: false });
    expect((await store.getRun(plain.runId)).data.tags).not.toHaveProperty('mlflow.parentRunId');
    await expect(startRun({ ...options, nested: true, runId: bound.runId })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'nested' });
    const missing = await startRun({ ...options, env: { ...options.env, MLFLOW_RUN_ID: 'ffffffffffffffffffffffffffffffff' }, nested: true, activate: false }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ConfigError);
    expect((missing as ConfigError).message).toMatch(/The parent of a nested run, MLFLOW_RUN_ID ffff+, is not on/);
  });

  it('nested: a child of a run started with its own tracking URI is made on that run\'s store, not the environment\'s', async () => {
    // Python has one tracking URI per process, so parent and child always share a store. Here a
    // parent started with `trackingUri` and a child started without one resolved the child's
    // store from MLFLOW_TRACKING_URI, found no parent there, and failed (or, with the parent's
    // id on both, split the sweep over two stores). The uploader already logs to an active
    // run where it was started; a nested run now follows its parent the same way.
    const { store, options } = local();
    const other = local();
    const parent = await startRun({ ...options, experimentName: 'sweep', activate: false });
    const env = { USER: 'tester', MLFLOW_TRACKING_URI: other.options.trackingUri };
    const child = await withRun(parent, () => startRun({ env, nested: true, runName: 'trial-0', activate: false }));
    const stored = await store.getRun(child.runId);
    expect(stored.data.tags['mlflow.parentRunId']).toBe(parent.runId);
    expect(stored.info.experimentId).toBe(parent.experimentId);
    expect(child.trackingUri).toBe(parent.trackingUri);
    expect(existsSync(other.root)).toBe(false);
    // A tracking URI given to the child's call still wins, as it does for the uploader.
    const elsewhere = await withRun(parent, () => startRun({ ...other.options, nested: true, activate: false }).catch((e: unknown) => e));
    expect(elsewhere).toBeInstanceOf(ConfigError);
    expect((elsewhere as ConfigError).message).toMatch(/The parent of a nested run, the active run [0-9a-f]{32}, is not on/);
  });

  it('withNewRun ends runs FINISHED, FAILED or KILLED, and concurrent runs stay apart', async () => {
    const { store, options } = local();
    const results = await Promise.all(
      ['a', 'b', 'c'].map((name) =>
        withNewRun({ ...options, runName: name }, async (run) => {
          await new Promise((r) => setTimeout(r, 5));
          return { name, id: getMlflowRunId(undefined, { env: {} }), own: run.runId };
        }),
      ),
    );
    for (const r of results) expect(r.id).toBe(r.own);
    expect(new Set(results.map((r) => r.id)).size).toBe(3);
    for (const r of results) expect((await store.getRun(r.id!)).info).toMatchObject({ status: 'FINISHED', runName: r.name });
    expect(activeRun()).toBeUndefined();

    let failedId = '';
    await expect(
      withNewRun(options, (run) => {
        failedId = run.runId;
        throw new Error('training diverged');
      }),
    ).rejects.toThrow('training diverged');
    expect((await store.getRun(failedId)).info.status).toBe('FAILED');

    let killedId = '';
    await expect(
      withNewRun(options, (run) => {
        killedId = run.runId;
        throw new AbortedError();
      }),
    ).rejects.toBeInstanceOf(AbortedError);
    expect((await store.getRun(killedId)).info.status).toBe('KILLED');
  });

  it('two startRun() at once: the one that loses ends the run it had created (KILLED), none is left RUNNING', async () => {
    // The loser threw "became active while ... was starting" and left its new run RUNNING for ever.
    const { root, store, options } = local();
    const settled = await Promise.allSettled([startRun({ ...options, runName: 'one' }), startRun({ ...options, runName: 'two' })]);
    const won = settled.filter((s): s is PromiseFulfilledResult<Awaited<ReturnType<typeof startRun>>> => s.status === 'fulfilled');
    const lost = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]!.reason).toBeInstanceOf(InvalidArgumentError);
    expect(String(lost[0]!.reason.message)).toMatch(/became active/);
    const runIds = readdirSync(join(root, '0'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    expect(runIds).toHaveLength(2);
    const statuses = Object.fromEntries(await Promise.all(runIds.map(async (id) => [id, (await store.getRun(id)).info.status] as const)));
    expect(statuses).toEqual(Object.fromEntries(runIds.map((id) => [id, id === won[0]!.value.runId ? 'RUNNING' : 'KILLED'])));
    await endRun();
  });

  it("a caller's tag under one of artifact-uploader's own keys is refused on ./mlruns too, as on a server", async () => {
    const { root, options } = local();
    for (const key of ['artifact_uploader.create_id', 'artifact_uploader.idempotency_key']) {
      await expect(startRun({ ...options, activate: false, tags: { [key]: 'mine' } }), key).rejects.toMatchObject({ name: 'InvalidArgumentError', argument: 'tags' });
    }
    expect(existsSync(join(root, '0')) ? readdirSync(join(root, '0')).filter((name) => name !== 'meta.yaml') : []).toEqual([]);
  });

  it('defaultRunTags prefers the tracking username, then the OS user', () => {
    expect(defaultRunTags({}, { MLFLOW_TRACKING_USERNAME: 'svc', USER: 'me' })['mlflow.user']).toBe('svc');
    expect(defaultRunTags({ username: 'opt' }, { USER: 'me' })['mlflow.user']).toBe('opt');
    expect(defaultRunTags({}, { LOGNAME: 'first', USER: 'second' })['mlflow.user']).toBe('first');
    expect(defaultRunTags({}, {})['mlflow.user']).toBeTruthy();
  });
});

describeWithServers('startRun on a real MLflow server', () => {
  const proxy = useFaultProxies();

  it('creates the experiment by name and a run Python sees with its tags', async () => {
    const { url } = mlflowServer();
    const name = `start-run-${randomUUID().slice(0, 8)}`;
    const run = await startRun({ trackingUri: url, env: { MLFLOW_EXPERIMENT_NAME: name, USER: 'tester' }, runName: 'remote' });
    expect(run.artifactUri).toMatch(/^mlflow-artifacts:\//);
    expect(run.trackingUri).toBe(url);
    await run.client!.logBatch({ runId: run.runId, metrics: [{ key: 'loss', value: 0.25, step: 1 }] });
    await endRun('FINISHED');
    const out = await runPython(
      `
import json, sys
from mlflow import MlflowClient
c = MlflowClient(tracking_uri=sys.argv[1])
r = c.get_run(sys.argv[2])
print(json.dumps([c.get_experiment(r.info.experiment_id).name, r.info.status, r.info.run_name, r.data.tags, r.data.metrics]))
`,
      { args: [url, run.runId] },
    );
    const [expName, status, runName, tags, metrics] = JSON.parse(out.trim().split('\n').pop() ?? '[]');
    expect([expName, status, runName]).toEqual([name, 'FINISHED', 'remote']);
    expect(tags).toMatchObject({ 'mlflow.user': 'tester', 'mlflow.source.type': 'LOCAL', 'mlflow.runName': 'remote' });
    expect(metrics).toEqual({ loss: 0.25 });
  });
  it("a caller's tag under one of artifact-uploader's own keys is refused before runs/create, as the registry refuses it (create_id failed with the server's 400 and an SQL dump)", async () => {
    const { url } = mlflowServer();
    const experimentName = `internal-tags-${randomUUID().slice(0, 8)}`;
    for (const key of ['artifact_uploader.create_id', 'artifact_uploader.idempotency_key']) {
      const error = await startRun({ trackingUri: url, experimentName, env: {}, activate: false, tags: { [key]: 'mine' } }).catch((e: unknown) => e);
      expect(error, key).toBeInstanceOf(InvalidArgumentError);
      expect(error, key).toMatchObject({ argument: 'tags', message: expect.stringContaining(`"${key}" is artifact-uploader's own`), hint: expect.stringContaining('another key') });
    }
    // Nothing was made: the experiment holds no run.
    const runs = await runPython(
      `
import json, sys
from mlflow import MlflowClient
c = MlflowClient(tracking_uri=sys.argv[1])
e = c.get_experiment_by_name(sys.argv[2])
print(json.dumps(0 if e is None else len(c.search_runs([e.experiment_id]))))
`,
      { args: [url, experimentName] },
    );
    expect(JSON.parse(runs.trim().split('\n').pop() ?? '-1')).toBe(0);
  });

  it('nested runs under a Python parent are its children for the official client (search by mlflow.parentRunId)', async () => {
    const { url } = mlflowServer();
    const parent = await startRun({ trackingUri: url, experimentName: `nested-${randomUUID().slice(0, 8)}`, env: {}, activate: false });
    const env = { MLFLOW_RUN_ID: parent.runId, USER: 'tester' };
    const ids = await Promise.all(['t1', 't2'].map((runName) => withNewRun({ trackingUri: url, env, nested: true, runName }, async (run) => run.runId)));
    const out = await runPython(
      `
import json, sys
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
runs = mlflow.search_runs(experiment_ids=[sys.argv[2]], filter_string=f"tags.mlflow.parentRunId = '{sys.argv[3]}'", output_format="list")
print(json.dumps(sorted([[r.info.run_id, r.info.run_name, r.info.status] for r in runs], key=lambda r: r[1])))
`,
      { args: [url, parent.experimentId!, parent.runId] },
    );
    expect(JSON.parse(out.trim().split('\n').pop() ?? '[]')).toEqual([
      [ids[0], 't1', 'FINISHED'],
      [ids[1], 't2', 'FINISHED'],
    ]);
  });

  it('an endRun() that failed can be called again: the run stays active until it was ended', async () => {
    // endRun cleared the active run before runs/update answered: after a failure, endRun()
    // again returned undefined and did nothing, and the run stayed RUNNING for ever.
    const { url } = mlflowServer();
    const front = await proxy(url);
    const run = await startRun({ trackingUri: front.url, experimentName: `end-again-${randomUUID().slice(0, 8)}`, env: {}, retry: { maxRetries: 1, backoffFactor: 0, backoffJitter: 0 } });
    front.addRule({ match: (r) => r.path.includes('runs/update'), fault: 'status', status: 503, body: '{"error_code":"TEMPORARILY_UNAVAILABLE","message":"down for the test"}', times: 2 });
    await expect(endRun()).rejects.toMatchObject({ status: 503 });
    expect(activeRun()?.runId).toBe(run.runId);
    expect(await endRun()).toMatchObject({ runId: run.runId, status: 'FINISHED' });
    expect(activeRun()).toBeUndefined();
    const out = await runPython(`import sys\nfrom mlflow import MlflowClient\nprint(MlflowClient(tracking_uri=sys.argv[1]).get_run(sys.argv[2]).info.status)`, { args: [url, run.runId] });
    expect(out.trim().split('\n').pop()).toBe('FINISHED');
  });
});
