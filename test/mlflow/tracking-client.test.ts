/**
 * MlflowRestClient against a real `mlflow server` (and a fault proxy in front of it),
 * cross-checked with the official Python client; protocol corners (paging, int64 as strings,
 * bodies that are not MLflow's) against a scripted server.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { AbortedError, InvalidArgumentError, InvalidResponseError, MlflowApiError } from '../../src/core/errors.js';
import { resolveMlflowConnection } from '../../src/mlflow/connection.js';
import { MlflowRestClient } from '../../src/mlflow/rest-tracking-client.js';
import { createTrackingClient } from '../../src/mlflow/tracking-client.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { startTestServer } from '../support/http-test-server.js';
import { runPython } from '../support/python.js';
import { describeWithServers, mlflowServer } from '../support/servers.js';

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  await Promise.all(cleanups.map((c) => c()));
});

/** Fast retries, and an empty env so the developer's MLFLOW_* variables cannot leak in. */
function clientFor(url: string): MlflowRestClient {
  const conn = resolveMlflowConnection({ trackingUri: url, retry: { backoffFactor: 0, backoffJitter: 0, maxRetries: 3 } }, {});
  if (conn.kind !== 'rest') throw new Error('expected a REST connection');
  return new MlflowRestClient(conn);
}

async function proxy(url: string): Promise<FaultProxy> {
  const p = await startFaultProxy(url);
  cleanups.push(() => p.stop());
  return p;
}

const unique = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

describeWithServers('MlflowRestClient on a real MLflow server', () => {
  it('gets, creates and races experiments', async () => {
    const client = clientFor(mlflowServer().url);
    expect(client.kind).toBe('rest');
    expect(client.describe()).toBe(`MLflow tracking server ${mlflowServer().url}`);
    const name = unique('exp');
    expect(await client.getExperimentByName(name)).toBeUndefined();

    // Several jobs starting at once: one creates, the others hit RESOURCE_ALREADY_EXISTS and re-fetch.
    const raced = await Promise.all([0, 1, 2, 3].map(() => client.getOrCreateExperiment(name)));
    const id = raced[0]!.experimentId;
    expect(raced.every((e) => e.experimentId === id && e.name === name)).toBe(true);
    expect(await client.createExperiment(name)).toBe(id);
    expect(await client.getExperiment(id)).toMatchObject({ experimentId: id, name, lifecycleStage: 'active', tags: {} });
    expect((await client.getExperimentByName(name))?.artifactLocation).toMatch(/^mlflow-artifacts:\//);

    const missing = await client.getExperiment('987654321').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(MlflowApiError);
    expect(missing).toMatchObject({ status: 404, errorCode: 'RESOURCE_DOES_NOT_EXIST', endpoint: 'mlflow/experiments/get' });
  });

  it('a create whose answer was lost is retried and still returns the experiment id', async () => {
    const p = await proxy(mlflowServer().url);
    p.addRule({ match: (r) => r.path.includes('/experiments/create'), times: 1, fault: 'drop-response' });
    const client = clientFor(p.url);
    const name = unique('lost-answer');
    const id = await client.createExperiment(name);
    expect((await client.getExperimentByName(name))?.experimentId).toBe(id);
    expect(p.requests.filter((r) => r.path.includes('/experiments/create'))).toHaveLength(2);
  });

  it('a run create whose answer was lost makes ONE run, found by its create id (checked by the Python client), with the id tag removed', async () => {
    const p = await proxy(mlflowServer().url);
    const client = clientFor(p.url);
    const exp = await client.getOrCreateExperiment(unique('lost-run-create'));
    p.addRule({ match: (r) => r.path.includes('/runs/create'), times: 1, fault: 'drop-response' });
    const run = await client.createRun({ experimentId: exp.experimentId, runName: 'once', tags: { team: 'ml' } });
    expect(p.requests.filter((r) => r.path.includes('/runs/create'))).toHaveLength(1);
    expect(p.requests.filter((r) => r.path.includes('/runs/search'))).toHaveLength(1);
    expect(run.data.tags).toEqual({ team: 'ml', 'mlflow.runName': 'once' });
    const seen = JSON.parse(
      (
        await runPython(
          'import json, sys\nfrom mlflow import MlflowClient\nruns = MlflowClient(tracking_uri=sys.argv[1]).search_runs([sys.argv[2]])\nprint(json.dumps([[r.info.run_id, sorted(k for k in r.data.tags if not k.startswith("mlflow."))] for r in runs]))\n',
          { args: [mlflowServer().url, exp.experimentId] },
        )
      ).trim().split('\n').pop()!,
    ) as Array<[string, string[]]>;
    expect(seen).toEqual([[run.info.runId, ['team']]]);

    // No fault: one create, no search, and still no id tag left on the run.
    const plain = await client.createRun({ experimentId: exp.experimentId });
    expect((await client.getRun(plain.info.runId)).data.tags).not.toHaveProperty('artifact_uploader.create_id');
    expect(p.requests.filter((r) => r.path.includes('/runs/search'))).toHaveLength(1);
  });

  it('creates, reads and updates runs; logs batches in MLflow-sized chunks; sets tags', async () => {
    const p = await proxy(mlflowServer().url);
    const client = clientFor(p.url);
    const exp = await client.getOrCreateExperiment(unique('runs'));
    const run = await client.createRun({
      experimentId: exp.experimentId,
      runName: 'lora-r8',
      startTime: 1700000000000,
      userId: 'alice',
      tags: { team: 'ml' },
    });
    const runId = run.info.runId;
    expect(run.info).toMatchObject({
      runName: 'lora-r8',
      experimentId: exp.experimentId,
      userId: 'alice',
      status: 'RUNNING',
      startTime: 1700000000000,
      lifecycleStage: 'active',
      artifactUri: `mlflow-artifacts:/${exp.experimentId}/${runId}/artifacts`,
    });
    expect(run.info.endTime).toBeUndefined();
    expect(run.data.tags).toEqual({ team: 'ml', 'mlflow.runName': 'lora-r8' });

    const metrics = Array.from({ length: 1500 }, (_, i) => ({ key: 'loss', value: 1 / (i + 1), timestamp: 1700000000000 + i, step: i }));
    metrics.push({ key: 'nan', value: Number.NaN, timestamp: 1, step: 0 }, { key: 'neg-inf', value: -Infinity, timestamp: 1, step: 0 });
    const params = Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`p${i}`, i]));
    const tags = Object.fromEntries(Array.from({ length: 120 }, (_, i) => [`t${i}`, `v${i}`]));
    await client.logBatch({ runId, metrics, params, tags });
    // As the Python client packs them: 100 params + 100 tags + 800 metrics, then 50 + 20 + 702.
    expect(p.requests.filter((r) => r.path.includes('/runs/log-batch'))).toHaveLength(2);

    await client.setTag(runId, 'stage', 'training');
    const got = await client.getRun(runId);
    expect(Object.keys(got.data.params)).toHaveLength(150);
    expect(got.data.params.p7).toBe('7');
    expect(got.data.tags).toMatchObject({ t119: 'v119', stage: 'training', team: 'ml' });
    const byKey = Object.fromEntries(got.data.metrics.map((m) => [m.key, m]));
    expect(byKey.loss).toEqual({ key: 'loss', value: 1 / 1500, timestamp: 1700000001499, step: 1499 });
    expect(byKey.nan?.value).toBeNaN();
    // The server stores -inf as the lowest double (sqlalchemy store); either way it comes back negative and huge.
    expect(byKey['neg-inf']?.value).toBeLessThan(-1e300);

    await expect(client.logBatch({ runId, params: { p7: 'changed' } })).rejects.toMatchObject({ status: 400, errorCode: 'INVALID_PARAMETER_VALUE' });

    const info = await client.updateRun({ runId, status: 'FINISHED', endTime: 1700000009000 });
    expect(info).toMatchObject({ runId, status: 'FINISHED', endTime: 1700000009000 });
    expect((await client.updateRun({ runId, runName: 'renamed' })).runName).toBe('renamed');

    const out = await runPython(
      `
import json, sys
from mlflow import MlflowClient
r = MlflowClient(tracking_uri=sys.argv[1]).get_run(sys.argv[2])
print(json.dumps([r.info.status, r.info.run_name, r.data.tags.get('stage'), r.data.params.get('p149'), r.data.metrics.get('loss')]))
`,
      { args: [mlflowServer().url, runId] },
    );
    expect(JSON.parse(out.trim().split('\n').pop() ?? '[]')).toEqual(['FINISHED', 'renamed', 'training', '149', 1 / 1500]);
  });

  it('runs/get on an unknown run is a 404 MlflowApiError that says what to check', async () => {
    const client = clientFor(mlflowServer().url);
    const error = await client.getRun('0123456789abcdef0123456789abcdef').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MlflowApiError);
    const e = error as MlflowApiError;
    expect(e).toMatchObject({ status: 404, errorCode: 'RESOURCE_DOES_NOT_EXIST', endpoint: 'mlflow/runs/get', method: 'GET', code: 'MLFLOW_API_ERROR' });
    expect(e.hint).toMatch(/run id does not exist on the server at http:\/\/127\.0\.0\.1/);
    expect(e.message).toMatch(/MLFLOW_RUN_ID/);

    const noExperiment = await client.createRun({ experimentId: '987654321' }).catch((x: unknown) => x);
    expect(noExperiment).toMatchObject({ status: 404, endpoint: 'mlflow/runs/create' });
    expect((noExperiment as MlflowApiError).hint).toMatch(/experiment id does not exist/);

    await expect(client.getRun('not a run id')).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('lists a run\'s artifacts level by level', async () => {
    const { url } = mlflowServer();
    const client = clientFor(url);
    const run = await client.createRun({ experimentId: '0' });
    const root = run.info.artifactUri.slice('mlflow-artifacts:/'.length);
    for (const [path, bytes] of [['model/weights.bin', randomBytes(300)], ['notes.txt', Buffer.from('hi')]] as const) {
      const res = await fetch(`${url}/api/2.0/mlflow-artifacts/artifacts/${root}/${path}`, { method: 'PUT', body: bytes });
      expect(res.status).toBe(200);
    }
    expect(await client.listArtifacts(run.info.runId)).toEqual({
      rootUri: run.info.artifactUri,
      files: [
        { path: 'model', isDir: true },
        { path: 'notes.txt', isDir: false, fileSize: 2 },
      ],
    });
    expect((await client.listArtifacts(run.info.runId, 'model')).files).toEqual([{ path: 'model/weights.bin', isDir: false, fileSize: 300 }]);
    // An empty directory: MLflow leaves `files` out.
    expect((await client.listArtifacts(run.info.runId, 'nothing')).files).toEqual([]);
  });

  it('retries 503s and honours the caller\'s abort signal', async () => {
    const p = await proxy(mlflowServer().url);
    const client = clientFor(p.url);
    const run = await client.createRun({ experimentId: '0' });
    p.addRule({ match: (r) => r.path.includes('/runs/get'), times: 2, fault: 'status', status: 503 });
    expect((await client.getRun(run.info.runId)).info.runId).toBe(run.info.runId);
    expect(p.requests.filter((r) => r.path.includes('/runs/get')).map((r) => r.status)).toEqual([503, 503, 200]);

    const controller = new AbortController();
    controller.abort();
    await expect(client.getRun(run.info.runId, { signal: controller.signal })).rejects.toBeInstanceOf(AbortedError);
  });
});

describe('MlflowRestClient protocol corners (scripted server)', () => {
  async function scripted(answers: Array<{ status?: number; body: unknown }>) {
    const server = await startTestServer((_req, res, index) => {
      const answer = answers[Math.min(index, answers.length - 1)]!;
      res.writeHead(answer.status ?? 200, { 'content-type': 'application/json' });
      res.end(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body));
    });
    cleanups.push(() => server.close());
    return { server, client: clientFor(server.url) };
  }

  it('follows next_page_token and accepts int64 fields as strings', async () => {
    const { server, client } = await scripted([
      { body: { root_uri: 'mlflow-artifacts:/0/r/artifacts', files: [{ path: 'a.bin', is_dir: false, file_size: '9007199254740' }], next_page_token: 'tok 2' } },
      { body: { root_uri: 'mlflow-artifacts:/0/r/artifacts', files: [{ path: 'b', is_dir: true }] } },
    ]);
    const listing = await client.listArtifacts('r', 'sub dir');
    expect(listing.files).toEqual([
      { path: 'a.bin', isDir: false, fileSize: 9007199254740 },
      { path: 'b', isDir: true },
    ]);
    expect(server.requests.map((r) => r.url)).toEqual([
      '/api/2.0/mlflow/artifacts/list?run_id=r&path=sub+dir',
      '/api/2.0/mlflow/artifacts/list?run_id=r&path=sub+dir&page_token=tok+2',
    ]);
  });

  it('reads runs with int64 strings, NaN strings and left-out lists', async () => {
    const { server, client } = await scripted([
      {
        body: {
          run: {
            info: { run_uuid: 'abc', experiment_id: 5, status: 'FAILED', start_time: '1700000000000', end_time: '1700000000001', artifact_uri: 's3://b/abc' },
            data: { metrics: [{ key: 'm', value: 'NaN', timestamp: '3', step: '4' }, { key: 'i', value: 'Infinity' }] },
          },
        },
      },
    ]);
    const run = await client.getRun('abc');
    expect(run.info).toEqual({
      runId: 'abc',
      runName: '',
      experimentId: '5',
      userId: '',
      status: 'FAILED',
      startTime: 1700000000000,
      endTime: 1700000000001,
      artifactUri: 's3://b/abc',
      lifecycleStage: 'active',
    });
    expect(run.data.params).toEqual({});
    expect(run.data.tags).toEqual({});
    expect(run.data.metrics[0]).toMatchObject({ key: 'm', timestamp: 3, step: 4 });
    expect(run.data.metrics[0]!.value).toBeNaN();
    expect(run.data.metrics[1]).toEqual({ key: 'i', value: Infinity, timestamp: 0, step: 0 });
    expect(server.requests[0]!.url).toBe('/api/2.0/mlflow/runs/get?run_id=abc');
  });

  it('sends JSON bodies with non-finite metrics spelled as proto JSON strings', async () => {
    const { server, client } = await scripted([{ body: {} }]);
    await client.logBatch({ runId: 'abc', metrics: [{ key: 'm', value: Number.NaN, timestamp: 1 }, { key: 'n', value: 2, timestamp: 1, step: 3 }] });
    expect(server.requests[0]!.headers['content-type']).toBe('application/json');
    expect(JSON.parse(server.requests[0]!.body.toString())).toEqual({
      run_id: 'abc',
      metrics: [
        { key: 'm', value: 'NaN', timestamp: 1, step: 0 },
        { key: 'n', value: 2, timestamp: 1, step: 3 },
      ],
      params: [],
      tags: [],
    });
  });

  it('an answer that is not the protocol is an InvalidResponseError naming the field', async () => {
    const { client } = await scripted([{ body: { run: { info: { status: 'RUNNING' } } } }]);
    const error = await client.getRun('abc').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidResponseError);
    expect((error as Error).message).toMatch(/run\.info\.experiment_id/);
  });

  it('a plain-text 404 says the URL is not an MLflow server', async () => {
    const { client } = await scripted([{ status: 404, body: '<html>Not Found</html>' }]);
    const error = await client.getRun('abc').catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 404, errorCode: 'HTTP_404' });
    expect((error as MlflowApiError).hint).toMatch(/does not look like an MLflow tracking server/);
    // getExperimentByName only maps MLflow's own RESOURCE_DOES_NOT_EXIST to undefined.
    await expect(client.getExperimentByName('x')).rejects.toMatchObject({ errorCode: 'HTTP_404' });
  });

  it('createTrackingClient resolves options into a REST client', () => {
    const client = createTrackingClient({ trackingUri: 'http://user:secret@127.0.0.1:9/prefix/', env: {} });
    expect(client.kind).toBe('rest');
    expect(client.trackingUri).toBe('http://127.0.0.1:9/prefix');
  });
});
