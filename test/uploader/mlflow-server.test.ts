/**
 * ArtifactUploader against the real `mlflow server`s: every method verified and read back by
 * the official Python client (one Python process for the whole file) with the archives
 * extracted by GNU tar; retries and in-flight deduplication counted on the fault proxy's
 * request log; dry runs that make no request; missing, deleted and unreachable runs; and a
 * direct s3:// artifact root on moto.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { expect, it } from 'vitest';
import { createCheckpointArchive } from '../../src/archive/create-checkpoint-archive.js';
import type { CheckpointManifest } from '../../src/archive/manifest.js';
import { InvalidArgumentError, MlflowApiError, NetworkError } from '../../src/core/errors.js';
import { resolveArtifactStore } from '../../src/stores/resolve.js';
import { ArtifactUploader } from '../../src/uploader/artifact-uploader.js';
import { inFlightUploadCount } from '../../src/uploader/dedupe.js';
import { useFaultProxies } from '../support/fault-proxy.js';
import { describeWithServers, mlflowDirectS3Server, mlflowServer, servers } from '../support/servers.js';
import { gnuTarExtract, hashTree, pythonDownloadAll, scratch, serverRun, sha256, wrappedStore, writeTree } from './helpers.js';

const FAST_RETRY = { maxRetries: 3, backoffFactor: 0, backoffJitter: 0 };
const proxy = useFaultProxies();
const manifestJson = (m: CheckpointManifest) => `${JSON.stringify(m, null, 2)}\n`;

/** An uploader whose store holds every upload at a gate: `inside` resolves once one is held, `release()` lets it go. */
function gatedUploader(runId: string, trackingUri: string): { uploader: ArtifactUploader; inside: Promise<void>; release: () => void } {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let entered!: () => void;
  const inside = new Promise<void>((resolve) => (entered = resolve));
  const uploader = new ArtifactUploader({
    stage: 'hpo',
    runId,
    trackingUri,
    env: {},
    resolveStore: wrappedStore(async (_p, upload) => {
      entered();
      await gate;
      return upload();
    }),
  });
  return { uploader, inside, release };
}

/** An uploader whose `ready` resolves once it has its store, i.e. it is a few microtasks from the dedupe map. */
function signallingUploader(runId: string, trackingUri: string): { uploader: ArtifactUploader; ready: Promise<void> } {
  let resolved!: () => void;
  const ready = new Promise<void>((resolve) => (resolved = resolve));
  const uploader = new ArtifactUploader({
    stage: 'hpo',
    runId,
    trackingUri,
    env: {},
    resolveStore: (uri, o) => {
      resolved();
      return resolveArtifactStore(uri, o);
    },
  });
  return { uploader, ready };
}

describeWithServers('ArtifactUploader on a real MLflow server', () => {
  it('every method, verified, read back byte-exact by the Python client; archives extracted by GNU tar match their manifests', async () => {
    const { url } = mlflowServer();
    const { runId, artifactUri } = await serverRun(url);
    const src = writeTree(scratch(), {
      'metrics.json': '{"acc": 0.91}',
      'onnx/model.onnx': 'graph',
      'onnx/model.onnx.data': Buffer.alloc(700, 2),
      'eval/report.md': '# eval',
      'eval/sub/empty.txt': '',
      'trial/w.safetensors': Buffer.alloc(3000, 5),
      'trial/cache.tmp': 'x',
      'best/adapter.safetensors': Buffer.alloc(5000, 6),
      'best/nested/tokenizer.json': '{"t": 1}',
    });
    const archive = join(scratch(), 'best.tar.gz');
    const manifest = await createCheckpointArchive(join(src, 'best'), archive);

    const uploader = new ArtifactUploader({ stage: 'hpo', runId, trackingUri: url, env: {}, verify: true, retry: FAST_RETRY });
    const results = [
      await uploader.uploadFile(join(src, 'metrics.json'), { artifactPath: 'metrics' }),
      await uploader.uploadFiles([join(src, 'onnx/model.onnx'), join(src, 'onnx/model.onnx.data')], { artifactPath: 'onnx' }),
      await uploader.uploadDirectory(join(src, 'eval'), { artifactPath: 'eval' }),
      await uploader.uploadCheckpoint(join(src, 'trial')),
      await uploader.uploadCheckpointArchive(archive, { manifest }),
      await uploader.archiveAndUploadCheckpoint(join(src, 'best'), { artifactPath: 'rebuilt/best.tar.gz' }),
    ];
    for (const r of results) expect(r, r.artifactPath).toMatchObject({ status: 'uploaded', runId, artifactUri, verification: { status: 'verified' } });
    expect(results[3]!.artifactPath).toBe('trials'); // hpo's checkpoint kind is trialCheckpoints
    const rebuilt = results[5]!.manifest!;
    expect(rebuilt.verification).toMatchObject({ status: 'verified', location: `${artifactUri}/rebuilt/best.tar.gz` });
    expect(uploader.stats()).toMatchObject({ operations: 6, uploaded: 6, filesSent: 10, filesSkipped: 1, retries: 0 });

    const [dst] = await pythonDownloadAll([{ trackingUri: url, runId }]);
    const downloaded = hashTree(dst!);
    expect(downloaded).toEqual({
      'metrics/metrics.json': sha256('{"acc": 0.91}'),
      'onnx/model.onnx': sha256('graph'),
      'onnx/model.onnx.data': sha256(Buffer.alloc(700, 2)),
      'eval/report.md': sha256('# eval'),
      'eval/sub/empty.txt': sha256(''),
      'trials/w.safetensors': sha256(Buffer.alloc(3000, 5)),
      'best_trial_checkpoint.tar.gz': manifest.archive.sha256,
      'best_trial_checkpoint.manifest.json': sha256(manifestJson(results[4]!.manifest!)),
      'rebuilt/best.tar.gz': rebuilt.archive.sha256,
      'rebuilt/best.manifest.json': sha256(manifestJson(rebuilt)),
    });
    // What the Python client downloaded, extracted by GNU tar, is what the manifest lists.
    for (const [tarball, manifestFile] of [
      ['best_trial_checkpoint.tar.gz', 'best_trial_checkpoint.manifest.json'],
      ['rebuilt/best.tar.gz', 'rebuilt/best.manifest.json'],
    ] as const) {
      const uploadedManifest = JSON.parse(readFileSync(join(dst!, manifestFile), 'utf8')) as CheckpointManifest;
      expect(uploadedManifest.verification.status).toBe('verified');
      const extracted = hashTree(await gnuTarExtract(join(dst!, tarball)));
      expect(extracted).toEqual(Object.fromEntries(uploadedManifest.files.map((f) => [f.path, f.sha256])));
    }
  });

  it('counts retries, and two overlapping uploads of the same file make one PUT', async () => {
    const { url } = mlflowServer();
    const front = await proxy(url);
    const { runId } = await serverRun(url);
    const src = writeTree(scratch(), { 'flaky.txt': 'retry me', 'shared.bin': Buffer.alloc(2000, 4) });

    front.addRule({ match: (r) => r.method === 'PUT' && r.path.endsWith('/flaky.txt'), times: 1, fault: 'status', status: 503 });
    const a = new ArtifactUploader({ stage: 'hpo', runId, trackingUri: front.url, env: {}, retry: FAST_RETRY });
    const retried = await a.uploadFile(join(src, 'flaky.txt'));
    expect(retried).toMatchObject({ status: 'uploaded', metrics: { attempts: 2, retries: 1 }, files: [{ attempts: 2 }] });

    // A holds its PUT until B has joined it; B is another uploader instance (the map is process-wide).
    const { uploader: gatedA, inside, release } = gatedUploader(runId, front.url);
    const { uploader: b, ready: bReady } = signallingUploader(runId, front.url);
    const first = gatedA.uploadFile(join(src, 'shared.bin'), { artifactPath: 'shared' });
    await inside;
    const second = b.uploadFile(join(src, 'shared.bin'), { artifactPath: 'shared' });
    await bReady;
    await new Promise((resolve) => setImmediate(resolve)); // B's remaining steps to the dedupe map are microtasks
    release();
    const [ra, rb] = await Promise.all([first, second]);
    expect(ra.status).toBe('uploaded');
    expect(ra.deduplicated).toBeUndefined();
    expect(rb).toMatchObject({ status: 'uploaded', deduplicated: true, runId, artifactPath: 'shared/shared.bin' });
    expect(front.requests.filter((r) => r.method === 'PUT' && r.path.endsWith('/shared/shared.bin'))).toHaveLength(1);
    expect(b.stats()).toMatchObject({ operations: 1, uploaded: 1, deduplicated: 1, bytesSent: 0 });
    expect(gatedA.stats()).toMatchObject({ bytesSent: 2000, deduplicated: 0 });
    expect(inFlightUploadCount()).toBe(0);

    // Not overlapping: uploaded again.
    await b.uploadFile(join(src, 'shared.bin'), { artifactPath: 'shared' });
    expect(front.requests.filter((r) => r.method === 'PUT' && r.path.endsWith('/shared/shared.bin'))).toHaveLength(2);
    // Each uploader looked the run up once, however many uploads it made.
    expect(front.requests.filter((r) => r.path.includes('/mlflow/runs/get'))).toHaveLength(3);
  });

  it('a caller that joined an in-flight upload stops at once on its own AbortSignal; the upload goes on for the first caller', async () => {
    const { url } = mlflowServer();
    const front = await proxy(url);
    const { runId } = await serverRun(url);
    const src = writeTree(scratch(), { 'shared.bin': Buffer.alloc(3000, 7) });
    const { uploader: gatedA, inside, release } = gatedUploader(runId, front.url);
    const { uploader: b, ready: bReady } = signallingUploader(runId, front.url);
    const first = gatedA.uploadFile(join(src, 'shared.bin'), { artifactPath: 'shared' });
    await inside;
    const controller = new AbortController();
    const second = b.uploadFile(join(src, 'shared.bin'), { artifactPath: 'shared', signal: controller.signal });
    await bReady;
    await new Promise((resolve) => setImmediate(resolve)); // B's remaining steps to the dedupe map are microtasks
    // Without its own abort, B would wait here until A's upload settles (never: A is held).
    controller.abort(new Error('caller gave up'));
    const rb = await second;
    expect(rb).toMatchObject({ status: 'failed', reason: 'aborted', files: [{ status: 'cancelled' }] });
    expect(rb.deduplicated).toBeUndefined();
    expect(rb.error?.name).toBe('AbortedError');
    // A is still held: nothing was sent yet, and its upload is still in flight.
    expect(front.requests.filter((r) => r.method === 'PUT')).toHaveLength(0);
    expect(inFlightUploadCount()).toBe(1);
    release();
    expect(await first).toMatchObject({ status: 'uploaded', metrics: { bytesSent: 3000 } });
    expect(front.requests.filter((r) => r.method === 'PUT' && r.path.endsWith('/shared/shared.bin'))).toHaveLength(1);
    expect(b.stats()).toMatchObject({ operations: 1, failed: 1, deduplicated: 0, bytesSent: 0 });
    expect(inFlightUploadCount()).toBe(0);
  });

  it('a dry run makes no request at all', async () => {
    const { url } = mlflowServer();
    const front = await proxy(url);
    const src = writeTree(scratch(), { 'd/a.bin': Buffer.alloc(10), 'd/b.txt': 'b' });
    const archive = join(scratch(), 'x.tar.gz');
    await createCheckpointArchive(join(src, 'd'), archive);
    const uploader = new ArtifactUploader({ stage: 'hpo', runId: 'b'.repeat(32), trackingUri: front.url, env: {}, dryRun: true });
    const results = [
      await uploader.uploadFile(join(src, 'd/a.bin')),
      await uploader.uploadDirectory(join(src, 'd')),
      await uploader.uploadCheckpointArchive(archive),
      await uploader.archiveAndUploadCheckpoint(join(src, 'd')),
    ];
    for (const r of results) expect(r).toMatchObject({ status: 'skipped', reason: 'dry-run', runId: 'b'.repeat(32) });
    expect(results[3]!.files).toEqual([{ localPath: join(src, 'd'), artifactPath: 'best_trial_checkpoint.tar.gz', size: 11, status: 'planned' }]);
    expect(front.requests).toEqual([]);
  });

  it('a missing run, a deleted run and an unreachable server are failed results (thrown with onError: throw)', async () => {
    const { url } = mlflowServer();
    const src = writeTree(scratch(), { 'a.txt': 'a' });
    const file = join(src, 'a.txt');
    const missing = await new ArtifactUploader({ stage: 'training', runId: 'c'.repeat(32), trackingUri: url, env: {} }).uploadFile(file);
    expect(missing).toMatchObject({ status: 'failed', reason: 'run-unavailable', error: { status: 404, errorCode: 'RESOURCE_DOES_NOT_EXIST' } });
    expect(missing.error).toBeInstanceOf(MlflowApiError);

    const { runId } = await serverRun(url);
    await fetch(`${url}/api/2.0/mlflow/runs/delete`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ run_id: runId }) });
    const deleted = await new ArtifactUploader({ stage: 'training', runId, trackingUri: url, env: {} }).uploadFile(file);
    expect(deleted).toMatchObject({ status: 'failed', reason: 'run-unavailable' });
    expect(deleted.error).toBeInstanceOf(InvalidArgumentError);
    expect(deleted.error!.message).toMatch(/is deleted/);

    const down = { stage: 'training' as const, runId: 'd'.repeat(32), trackingUri: 'http://127.0.0.1:9', env: {}, retry: { maxRetries: 0 } };
    const unreachable = await new ArtifactUploader(down).uploadFile(file);
    expect(unreachable).toMatchObject({ status: 'failed', reason: 'run-unavailable' });
    expect(unreachable.error).toBeInstanceOf(NetworkError);
    await expect(new ArtifactUploader({ ...down, onError: 'throw' }).uploadFile(file)).rejects.toBeInstanceOf(NetworkError);
  });

  it('uploads end to end to a direct s3:// artifact root (moto), verified and read back from the bucket', async () => {
    const { url, s3Endpoint } = mlflowDirectS3Server();
    const { awsEnv } = servers();
    const { runId, artifactUri } = await serverRun(url);
    expect(artifactUri).toMatch(/^s3:\/\//);
    const src = writeTree(scratch(), { 'ckpt/w.safetensors': Buffer.alloc(4000, 8), 'ckpt/config.json': '{"r": 8}' });
    const uploader = new ArtifactUploader({
      stage: 'training',
      runId,
      trackingUri: url,
      env: { ...awsEnv, MLFLOW_S3_ENDPOINT_URL: s3Endpoint },
      s3: { credentials: { accessKeyId: awsEnv.AWS_ACCESS_KEY_ID!, secretAccessKey: awsEnv.AWS_SECRET_ACCESS_KEY! } },
      retry: FAST_RETRY,
    });
    const checkpoint = await uploader.uploadCheckpoint(join(src, 'ckpt'), { verify: true });
    const archived = await uploader.archiveAndUploadCheckpoint(join(src, 'ckpt'));
    expect(checkpoint).toMatchObject({ status: 'uploaded', artifactUri, verification: { status: 'verified' } });
    expect(archived).toMatchObject({ status: 'uploaded', artifactPath: 'checkpoint/best_trial_checkpoint.tar.gz', verification: { status: 'verified' } });
    await uploader.close();

    const [, bucket, prefix] = /^s3:\/\/([^/]+)\/?(.*)$/.exec(artifactUri)!;
    const s3 = new S3Client({
      endpoint: s3Endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: awsEnv.AWS_ACCESS_KEY_ID!, secretAccessKey: awsEnv.AWS_SECRET_ACCESS_KEY! },
    });
    const get = async (rel: string) =>
      Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `${prefix}/${rel}` }))).Body!.transformToByteArray());
    expect(sha256(await get('checkpoint/w.safetensors'))).toBe(sha256(Buffer.alloc(4000, 8)));
    expect(sha256(await get('checkpoint/best_trial_checkpoint.tar.gz'))).toBe(archived.manifest!.archive.sha256);
    expect(JSON.parse((await get('checkpoint/best_trial_checkpoint.manifest.json')).toString()).verification.status).toBe('verified');
    s3.destroy();
  });
});
