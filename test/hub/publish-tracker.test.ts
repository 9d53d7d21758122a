/**
 * PublishTracker and publishOnce: one publish per training whatever the callers do (concurrent
 * polls, two trackers on one state file, restarts, a crash mid-upload), the failure policy, and
 * the state file itself.
 */
import { spawnSync } from 'node:child_process';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ArtifactUploaderError, HubError, InvalidArgumentError, LocalPathError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import { publishToHub, type PublishResult, type PublishToHubOptions } from '../../src/hub/publish.js';
import { PublishTracker, publishOnce } from '../../src/hub/publish-tracker.js';
import { JsonStateFile } from '../../src/core/json-state-file.js';
import { startFakeHub, type FakeHub } from '../support/fake-hub/index.js';
import { tempDir, writeFiles, writeFusedModel } from './helpers.js';
import { failReads, resetFsHooks } from '../support/fs-hooks.js';

// To make a read of the state file's lock fail (a flaky disk); unset hooks pass every call through.
vi.mock('node:fs/promises', async (importOriginal) => (await import('../support/fs-hooks.js')).hookedFs(await importOriginal()));
afterEach(resetFsHooks);

let hub: FakeHub;
let counter = 0;
const newRepo = () => `tester/tracked-${++counter}-${Date.now().toString(36)}`;

beforeAll(async () => {
  hub = await startFakeHub();
});
afterAll(async () => {
  await hub.stop();
});

const defaults = (): Partial<PublishToHubOptions> => ({
  hubUrl: hub.url,
  accessToken: hub.token,
  retry: { maxRetries: 3, backoffFactor: 0, backoffJitter: 0 },
  env: {},
});

function captureLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = (level: string) => (message: string) => lines.push(`${level}: ${message}`);
  return { lines, debug: () => {}, info: log('info'), warn: log('warn'), error: log('error') };
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** A publish function that counts calls, optionally waits for a gate, and fakes a result. */
function fakePublish(gate?: Promise<void>, fail?: () => Error) {
  const calls: PublishToHubOptions[] = [];
  const fn = async (options: PublishToHubOptions): Promise<PublishResult> => {
    calls.push(options);
    await gate;
    if (fail) throw fail();
    const commitOid = 'c'.repeat(40);
    return {
      status: 'published',
      repoId: options.repoId,
      repoUrl: `https://hub.example/${options.repoId}`,
      revision: 'main',
      commitOid,
      commitUrl: `https://hub.example/${options.repoId}/commit/${commitOid}`,
      files: [{ path: 'README.md', size: 10 }],
      bytes: 10,
      format: 'fused',
      converted: false,
      validation: {} as PublishResult['validation'],
      repoCreated: false,
      publishId: options.idempotencyKey ?? 'x',
      mlflowTagged: false,
      warnings: [],
    };
  };
  return { fn, calls };
}

async function stateFileIn(): Promise<string> {
  return join(await tempDir('au-tracker-'), 'state', 'publish-state.json');
}

describe('PublishTracker.status', () => {
  it('walks training -> upload-needed -> uploading -> completed, logging each transition once', async () => {
    const gate = deferred();
    const publish = fakePublish(gate.promise);
    const logger = captureLogger();
    const tracker = new PublishTracker({ stateFile: await stateFileIn(), publish: publish.fn, logger });
    const common = { repoId: 'tester/a', modelDir: '/models/a' };

    expect((await tracker.status('t1', { ...common, training: 'running', allowUpload: true })).status).toBe('training');
    expect((await tracker.status('t1', { ...common, training: 'running', allowUpload: true })).status).toBe('training');
    const needed = await tracker.status('t1', { ...common, training: 'succeeded', allowUpload: false });
    expect(needed.status).toBe('upload-needed');
    expect(needed.message).toContain('allowUpload: false');
    expect(publish.calls).toHaveLength(0);

    const started = await tracker.status('t1', { ...common, training: 'succeeded', allowUpload: true });
    expect(started.status).toBe('uploading');
    expect((await tracker.status('t1', { ...common, training: 'succeeded', allowUpload: true })).status).toBe('uploading');
    gate.resolve();
    await tracker.idle();
    const done = await tracker.status('t1', { ...common, training: 'succeeded', allowUpload: true });
    expect(done).toMatchObject({ status: 'completed', commitUrl: `https://hub.example/tester/a/commit/${'c'.repeat(40)}`, attempts: 1 });
    expect(publish.calls).toHaveLength(1);
    expect(publish.calls[0]).toMatchObject({ modelDir: '/models/a', repoId: 'tester/a', idempotencyKey: 't1' });

    const transitions = logger.lines.filter((l) => l.includes('publish t1: ') && /: (training|upload-needed|uploading|completed):/.test(l));
    expect(transitions.map((l) => l.split(': ')[2])).toEqual(['training', 'upload-needed', 'uploading', 'completed']);
  });

  it('refuses a training id with whitespace at an edge or a control character, publishing and recording nothing', async () => {
    const publish = fakePublish();
    const stateFile = await stateFileIn();
    const tracker = new PublishTracker({ stateFile, publish: publish.fn });
    const common = { repoId: 'tester/a', modelDir: '/models/a' };
    // The id is the publish's idempotency key: one that ends in whitespace is never found on the
    // Hub again, so a lost commit answer would mean a second commit.
    for (const id of ['job-42 ', '\tjob-42', 'job-42\u00a0', 'job-42\r', 'job\u0000-42']) {
      const calls = [
        tracker.status(id, { ...common, training: 'succeeded', allowUpload: true }),
        tracker.retry(id),
        tracker.publishOnce(id, { ...common, ...defaults() } as PublishToHubOptions),
      ];
      for (const call of calls) await expect(call, JSON.stringify(id)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'trainingId' });
    }
    expect(publish.calls).toHaveLength(0);
    await expect(readFile(stateFile)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('reports a failed training without publishing', async () => {
    const publish = fakePublish();
    const tracker = new PublishTracker({ stateFile: await stateFileIn(), publish: publish.fn });
    const report = await tracker.status('t2', { training: 'failed', repoId: 'tester/a', allowUpload: true });
    expect(report).toMatchObject({ status: 'failed', failedStage: 'training' });
    expect(publish.calls).toHaveLength(0);
  });

  it('starts one publish for many concurrent callers, also from two trackers on one state file', async () => {
    const gate = deferred();
    const publish = fakePublish(gate.promise);
    const stateFile = await stateFileIn();
    const a = new PublishTracker({ stateFile, publish: publish.fn });
    const b = new PublishTracker({ stateFile, publish: publish.fn });
    const options = { training: 'succeeded' as const, repoId: 'tester/a', modelDir: '/m', allowUpload: true };
    const reports = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? a : b).status('t3', options)));
    expect(new Set(reports.map((r) => r.status))).toEqual(new Set(['uploading']));
    expect(publish.calls).toHaveLength(1);
    gate.resolve();
    await Promise.all([a.idle(), b.idle()]);
    expect((await b.status('t3', options)).status).toBe('completed');
    expect((await a.status('t3', options)).status).toBe('completed');
    expect(publish.calls).toHaveLength(1);
  });

  it('never republishes a completed training after a restart (new tracker, same state file)', async () => {
    const stateFile = await stateFileIn();
    const modelDir = await writeFusedModel(await tempDir());
    const repoId = newRepo();
    const first = new PublishTracker({ stateFile, defaults: defaults() });
    await first.status('t4', { training: 'succeeded', modelDir, repoId, allowUpload: true });
    await first.idle();
    const commitsBefore = hub.commits(repoId).length;
    hub.clearLog();

    const publish = fakePublish();
    const restarted = new PublishTracker({ stateFile, defaults: defaults(), publish: publish.fn });
    const report = await restarted.status('t4', { training: 'succeeded', modelDir, repoId, allowUpload: true });
    expect(report).toMatchObject({ status: 'completed', commitOid: hub.head(repoId) });
    const again = await restarted.publishOnce('t4', { ...defaults(), modelDir, repoId });
    expect(again).toMatchObject({ status: 'already-published', commitOid: hub.head(repoId) });
    expect(publish.calls).toHaveLength(0);
    expect(hub.requests).toEqual([]);
    expect(hub.commits(repoId)).toHaveLength(commitsBefore);
  });

  it('takes over an upload whose process died, finding the commit it had already made', async () => {
    const stateFile = await stateFileIn();
    const modelDir = await writeFusedModel(await tempDir());
    const repoId = newRepo();
    // The dead process committed (with the training id as publish id) but crashed before recording it.
    await publishToHub({ ...defaults(), modelDir, repoId, idempotencyKey: 't5' });
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
    const at = new Date().toISOString();
    await writeFiles(join(stateFile, '..'), {
      'publish-state.json': JSON.stringify({
        version: 1,
        records: { t5: { key: 't5', state: 'uploading', repoId, modelDir, attempts: 1, owner: { host: hostname(), pid: deadPid, instance: 'dead' }, startedAt: at, updatedAt: at, heartbeatAt: at } },
      }),
    });
    hub.clearLog();
    const tracker = new PublishTracker({ stateFile, defaults: defaults() });
    expect((await tracker.status('t5', { training: 'succeeded', modelDir, repoId, allowUpload: false })).status).toBe('upload-needed');
    expect((await tracker.status('t5', { training: 'succeeded', modelDir, repoId, allowUpload: true })).status).toBe('uploading');
    await tracker.idle();
    const report = await tracker.status('t5', { training: 'succeeded', modelDir, repoId, allowUpload: true });
    expect(report).toMatchObject({ status: 'completed', attempts: 2, commitOid: hub.head(repoId) });
    expect(hub.commits(repoId)).toHaveLength(2);
    expect(hub.requests.filter((r) => ['preupload', 'lfs-batch', 'commit'].includes(r.route))).toEqual([]);
  });
});

describe('failure policy', () => {
  it('retries a transient failure on a later allowed status call, after the cool-down', async () => {
    let failing = true;
    const inner = fakePublish();
    const calls: string[] = [];
    const publish = async (o: PublishToHubOptions) => {
      calls.push(o.modelDir);
      if (failing) throw new HubError('Hub call failed: 503', { status: 503 });
      return inner.fn(o);
    };
    const stateFile = await stateFileIn();
    const options = { training: 'succeeded' as const, repoId: 'tester/a', modelDir: '/m', allowUpload: true };
    const cooling = new PublishTracker({ stateFile, publish, autoRetry: { cooldownMs: 3_600_000 } });
    await cooling.status('t6', options);
    await cooling.idle();
    const failed = await cooling.status('t6', options);
    expect(failed).toMatchObject({ status: 'failed', failedStage: 'upload', error: { name: 'HubError', transient: true } });
    expect(failed.message).toContain('cooling down');
    expect(calls).toHaveLength(1);

    failing = false;
    const eager = new PublishTracker({ stateFile, publish, autoRetry: { cooldownMs: 0 } });
    expect((await eager.status('t6', { ...options, allowUpload: false })).status).toBe('failed');
    expect((await eager.status('t6', options)).status).toBe('uploading');
    await eager.idle();
    expect(await eager.status('t6', options)).toMatchObject({ status: 'completed', attempts: 2 });
    expect(calls).toHaveLength(2);
  });

  it('stops retrying automatically after maxAttempts', async () => {
    const publish = fakePublish(undefined, () => new HubError('down', { status: 502 }));
    const tracker = new PublishTracker({ stateFile: await stateFileIn(), publish: publish.fn, autoRetry: { cooldownMs: 0, maxAttempts: 2 } });
    const options = { training: 'succeeded' as const, repoId: 'tester/a', modelDir: '/m', allowUpload: true };
    for (let i = 0; i < 4; i++) {
      await tracker.status('t7', options);
      await tracker.idle();
    }
    const report = await tracker.status('t7', options);
    expect(report).toMatchObject({ status: 'failed', attempts: 2 });
    expect(report.message).toContain('maxAttempts');
    expect(publish.calls).toHaveLength(2);
  });

  it('keeps a permanent failure until retry(), with the real publisher', async () => {
    const stateFile = await stateFileIn();
    const modelDir = await tempDir();
    await writeFiles(modelDir, { 'config.json': '{"model_type": "llama"}' }); // no weights: invalid
    const repoId = newRepo();
    const tracker = new PublishTracker({ stateFile, defaults: defaults(), autoRetry: { cooldownMs: 0 } });
    const options = { training: 'succeeded' as const, repoId, modelDir, allowUpload: true };
    await tracker.status('t8', options);
    await tracker.idle();
    const failed = await tracker.status('t8', options);
    expect(failed).toMatchObject({ status: 'failed', error: { name: 'ModelValidationError', code: 'MODEL_INVALID', transient: false } });
    await tracker.idle();
    expect((await tracker.status('t8', options)).status).toBe('failed');

    const once = await tracker.publishOnce('t8', { ...defaults(), modelDir, repoId }).catch((e: unknown) => e);
    expect(once).toBeInstanceOf(ArtifactUploaderError);
    expect((once as ArtifactUploaderError).code).toBe('PUBLISH_FAILED');

    await writeFusedModel(modelDir); // fixed
    expect((await tracker.retry('t8')).status).toBe('uploading');
    await tracker.idle();
    expect(await tracker.status('t8', options)).toMatchObject({ status: 'completed', attempts: 2, commitOid: hub.head(repoId) });
  });

  it('retry() publishes what the failed attempt was asked to (private repo, branch, message), even from a new process', async () => {
    const stateFile = await stateFileIn();
    const modelDir = await tempDir();
    await writeFiles(modelDir, { 'config.json': '{"model_type": "llama"}' }); // no weights: invalid
    const privateRepo = newRepo();
    const onBranch = newRepo();
    hub.createRepo(onBranch);
    const repo = hub.store.get('model', onBranch)!;
    repo.branches.set('dev', hub.head(onBranch)!);
    const first = new PublishTracker({ stateFile, defaults: defaults() });
    const asked = {
      p: { repoId: privateRepo, publish: { private: true, commitMessage: 'Nightly adapter' } },
      b: { repoId: onBranch, publish: { revision: 'dev' } },
    };
    for (const [id, { repoId, publish }] of Object.entries(asked)) {
      await first.status(id, { training: 'succeeded', repoId, modelDir, allowUpload: true, publish });
    }
    await first.idle();
    for (const id of Object.keys(asked)) expect((await first.status(id, { training: 'succeeded', repoId: 'x/y', allowUpload: false })).status).toBe('failed');
    expect(hub.store.get('model', privateRepo)).toBeUndefined(); // refused before the repo was created

    await writeFusedModel(modelDir); // fixed
    const restarted = new PublishTracker({ stateFile, defaults: defaults() }); // the retry comes from another process
    for (const id of Object.keys(asked)) expect((await restarted.retry(id)).status).toBe('uploading');
    await restarted.idle();
    expect(await restarted.status('p', { training: 'succeeded', repoId: privateRepo, allowUpload: false })).toMatchObject({ status: 'completed' });
    expect(hub.store.get('model', privateRepo)?.private).toBe(true);
    expect(hub.commits(privateRepo)[0]?.title).toBe('Nightly adapter');
    expect(await restarted.status('b', { training: 'succeeded', repoId: onBranch, allowUpload: false })).toMatchObject({ status: 'completed' });
    expect(hub.files(onBranch, { revision: 'dev' })).toContain('model.safetensors');
    expect(hub.files(onBranch)).not.toContain('model.safetensors'); // main untouched
    // Nothing secret is recorded with them.
    expect(await readFile(stateFile, 'utf8')).not.toContain(hub.token);
  });
});

describe('includeSensitiveFiles across attempts', () => {
  const ENV = 'HF_HOME=/srv/cache\n';

  it('a retry, a takeover or an automatic retry publishes the credential files the first attempt was asked to include', async () => {
    const stateFile = await stateFileIn();
    const modelDir = await writeFusedModel(await tempDir());
    await writeFiles(modelDir, { '.env': ENV });
    const repoId = newRepo();
    // The first attempt, asked to include .env, fails at the Hub (every commit attempt refused, transient).
    const fault = hub.failNext('commit', 10, 503);
    const first = new PublishTracker({ stateFile, defaults: defaults(), autoRetry: false });
    await first.status('s1', { training: 'succeeded', modelDir, repoId, allowUpload: true, publish: { includeSensitiveFiles: ['.env'] } });
    await first.idle();
    fault.cancel();
    expect(await first.status('s1', { training: 'succeeded', repoId, allowUpload: false })).toMatchObject({ status: 'failed', error: { transient: true } });
    expect(hub.commits(repoId)).toHaveLength(1); // the repo's initial commit only

    // Retried from another process, which knows only the tracker's defaults.
    const restarted = new PublishTracker({ stateFile, defaults: defaults() });
    expect((await restarted.retry('s1')).status).toBe('uploading');
    await restarted.idle();
    expect(await restarted.status('s1', { training: 'succeeded', repoId, allowUpload: false })).toMatchObject({ status: 'completed', attempts: 2 });
    expect(hub.files(repoId)).toContain('.env');
    expect(hub.fileBytes(repoId, '.env')?.toString()).toBe(ENV);
    expect(JSON.parse(await readFile(stateFile, 'utf8')).records.s1.publish).toMatchObject({ includeSensitiveFiles: ['.env'] });
  });

  it('refuses to resume a publish that may be on the Hub with another set of credential files, and resumes it with the same set', async () => {
    const stateFile = await stateFileIn();
    const modelDir = await writeFusedModel(await tempDir());
    await writeFiles(modelDir, { '.env': ENV });
    const repoId = newRepo();
    // The dead process committed without .env (the default) and crashed before recording it.
    await publishToHub({ ...defaults(), modelDir, repoId, idempotencyKey: 's2' });
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
    const at = new Date().toISOString();
    const record = { key: 's2', state: 'uploading', repoId, modelDir, attempts: 1, owner: { host: hostname(), pid: deadPid, instance: 'dead' }, startedAt: at, updatedAt: at, heartbeatAt: at };
    await writeFiles(join(stateFile, '..'), { 'publish-state.json': JSON.stringify({ version: 1, records: { s2: record } }) });
    const before = await readFile(stateFile, 'utf8');
    hub.clearLog();

    // The takeover asks for .env: the key's commit is found on the Hub without it, so it would
    // be reported published while .env never is. Refused before anything is sent.
    const tracker = new PublishTracker({ stateFile, defaults: defaults() });
    const withEnv = { training: 'succeeded' as const, modelDir, repoId, allowUpload: true, publish: { includeSensitiveFiles: ['.env'] } };
    const refused = await tracker.status('s2', withEnv).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InvalidArgumentError);
    expect(refused).toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'includeSensitiveFiles', hint: expect.stringMatching(/same includeSensitiveFiles.*another (training id|key)/) });
    expect((refused as Error).message).toContain('"s2"');
    await expect(tracker.publishOnce('s2', { ...defaults(), modelDir, repoId, includeSensitiveFiles: ['.env'] })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await readFile(stateFile, 'utf8')).toBe(before);
    expect(hub.requests).toEqual([]);

    // The same set (here: none, as the first attempt) resumes it: the commit is found, nothing uploaded.
    expect((await tracker.status('s2', { ...withEnv, publish: {} })).status).toBe('uploading');
    await tracker.idle();
    expect(await tracker.status('s2', { ...withEnv, allowUpload: false })).toMatchObject({ status: 'completed', attempts: 2, commitOid: hub.head(repoId) });
    expect(hub.files(repoId)).not.toContain('.env');
    expect(hub.requests.filter((r) => ['preupload', 'lfs-batch', 'commit'].includes(r.route))).toEqual([]);
  });

  it('lets retry() change the set after an attempt refused before anything was sent (a path that names no file)', async () => {
    const stateFile = await stateFileIn();
    const modelDir = await writeFusedModel(await tempDir());
    await writeFiles(modelDir, { '.env': ENV });
    const repoId = newRepo();
    const tracker = new PublishTracker({ stateFile, defaults: defaults() });
    await tracker.status('s3', { training: 'succeeded', modelDir, repoId, allowUpload: true, publish: { includeSensitiveFiles: ['.evn'] } });
    await tracker.idle();
    expect(await tracker.status('s3', { training: 'succeeded', repoId, allowUpload: false })).toMatchObject({ status: 'failed', error: { code: 'INVALID_ARGUMENT' } });
    expect((await tracker.retry('s3', { publish: { includeSensitiveFiles: ['.env'] } })).status).toBe('uploading');
    await tracker.idle();
    expect(await tracker.status('s3', { training: 'succeeded', repoId, allowUpload: false })).toMatchObject({ status: 'completed' });
    expect(hub.files(repoId)).toContain('.env');
  });
});

describe('publishOnce', () => {
  it('publishes once for concurrent callers in one process and across trackers, against the fake Hub', async () => {
    const stateFile = await stateFileIn();
    const modelDir = await writeFusedModel(await tempDir());
    const repoId = newRepo();
    const trackers = [new PublishTracker({ stateFile, pollMs: 10 }), new PublishTracker({ stateFile, pollMs: 10 })];
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) => trackers[i % 2]!.publishOnce('job-1', { ...defaults(), modelDir, repoId } as PublishToHubOptions)),
    );
    expect(new Set(results.map((r) => r.commitOid))).toEqual(new Set([hub.head(repoId)]));
    expect(hub.commits(repoId)).toHaveLength(2);
    expect(results.filter((r) => r.result !== undefined).length).toBeGreaterThanOrEqual(1);

    const later = await publishOnce('job-1', { ...defaults(), stateFile, modelDir, repoId } as PublishToHubOptions & { stateFile: string });
    expect(later).toMatchObject({ status: 'already-published', commitOid: hub.head(repoId) });
    expect(hub.commits(repoId)).toHaveLength(2);
  });
});

describe('JsonStateFile', () => {
  const Counter = z.object({ n: z.number() });

  it('serialises read-modify-write between instances and leaves no temp files', async () => {
    const path = await stateFileIn();
    const files = [0, 1, 2].map(() => new JsonStateFile(path, async () => Counter, { empty: () => ({ n: 0 }) }));
    await Promise.all(Array.from({ length: 12 }, (_, i) => files[i % 3]!.update((s) => ({ state: { n: s.n + 1 }, result: undefined }))));
    expect(await files[0]!.read()).toEqual({ n: 12 });
    expect((await readdir(join(path, '..'))).sort()).toEqual(['publish-state.json']);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ n: 12 });
  });

  it('breaks a lock left by a dead process, waits for a live one', async () => {
    const path = await stateFileIn();
    const file = new JsonStateFile(path, async () => Counter, { empty: () => ({ n: 0 }), lockTimeoutMs: 200 });
    await file.update(() => ({ state: { n: 1 }, result: undefined }));
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
    await writeFile(`${path}.lock`, JSON.stringify({ pid: deadPid, host: hostname(), token: 'old', at: Date.now() }));
    await file.update((s) => ({ state: { n: s.n + 1 }, result: undefined }));
    expect(await file.read()).toEqual({ n: 2 });

    await writeFile(`${path}.lock`, JSON.stringify({ pid: process.pid, host: hostname(), token: 'live', at: Date.now() }));
    await expect(file.update((s) => ({ state: { n: s.n + 1 }, result: undefined }))).rejects.toBeInstanceOf(LocalPathError);
    expect(await file.read()).toEqual({ n: 2 });
  });

  it('stamps a lock with the time it was taken, not the time its owner began to wait for it', async () => {
    const path = await stateFileIn();
    const file = new JsonStateFile(path, async () => Counter, { empty: () => ({ n: 0 }), lockTimeoutMs: 5000 });
    await file.update(() => ({ state: { n: 1 }, result: undefined }));
    // A live owner holds the lock for half a second, then releases it.
    await writeFile(`${path}.lock`, JSON.stringify({ pid: process.pid, host: hostname(), token: 'live', at: Date.now() }));
    let releasedAt = 0;
    setTimeout(() => {
      releasedAt = Date.now();
      void rm(`${path}.lock`);
    }, 500);
    const stampedAt = await file.update(async (s) => {
      const lock = JSON.parse(await readFile(`${path}.lock`, 'utf8')) as { at: number };
      return { state: { n: s.n + 1 }, result: lock.at };
    });
    expect(releasedAt).toBeGreaterThan(0);
    // Written again while it waited: at most ~100 ms before it was taken, not 500 ms.
    expect(stampedAt).toBeGreaterThan(releasedAt - 250);
    expect(await file.read()).toEqual({ n: 2 });
  });

  it('refuses a corrupt state file instead of forgetting what was published', async () => {
    const path = await stateFileIn();
    await writeFiles(join(path, '..'), { 'publish-state.json': '{"version": 1, "records": {"x": {"state": "weird"}}}' });
    const tracker = new PublishTracker({ stateFile: path, publish: fakePublish().fn });
    await expect(tracker.status('x', { training: 'succeeded', repoId: 'a/b', modelDir: '/m', allowUpload: true })).rejects.toMatchObject({
      code: 'PATH_UNREADABLE',
      path,
    });
  });
});

describe('PublishTracker: its state file\'s lock unreadable at release', () => {
  it('a transient EIO reading its own lock at release does not leave the lock behind: the next status call is not held up', async () => {
    const stateFile = await stateFileIn();
    const publish = fakePublish();
    // Gives up long before the lock would go stale (lockStaleMs, 30 s): it gets the lock only when it is free.
    const tracker = new PublishTracker({ stateFile, publish: publish.fn, lockTimeoutMs: 300 });
    const common = { repoId: 'tester/a', modelDir: '/models/a' };
    // The move to `uploading` is written under the lock; reading the lock to release it fails once.
    const reads = failReads(`${stateFile}.lock`, 'EIO', 1);
    expect((await tracker.status('t-eio', { ...common, training: 'succeeded', allowUpload: true })).status).toBe('uploading');
    expect(reads.failed()).toBe(1);
    // The publish's result is recorded under the lock again, then read back.
    await tracker.idle();
    expect((await tracker.status('t-eio', { ...common, training: 'succeeded', allowUpload: true })).status).toBe('completed');
    expect(await readdir(join(stateFile, '..'))).toEqual(['publish-state.json']);
  });
});
