/**
 * MLflow's proxied multipart when the server cannot set one up: a real `mlflow server
 * --serve-artifacts --artifacts-destination gs://...` on gcp-storage-emulator (started by this
 * file), whose `mpu/create` answers 500 (the emulator has no XML multipart API; on GCS a server
 * whose credentials cannot sign URLs answers the same). Multipart is on by default in this library, so such a server must
 * not fail an upload, nor hold it for minutes of retries: the create is tried once, the file goes
 * as one PUT, which the server writes, and later files skip the create. The official Python
 * client reads the file back.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { resolveMlflowConnection } from '../../src/mlflow/connection.js';
import { resolveArtifactStore } from '../../src/stores/resolve.js';
import { useFaultProxies } from '../support/fault-proxy.js';
import { pythonArtifactHashes } from '../support/python.js';
import { useFileMlflowServer } from '../support/file-mlflow-server.js';
import { describeWithServers, servers } from '../support/servers.js';
import { recordingLogger, serverRun } from '../uploader/helpers.js';

const MiB = 1024 * 1024;
const proxy = useFaultProxies();
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describeWithServers('MlflowArtifactsStore on a server that fails to start a multipart upload (GCS destination)', () => {
  const gcsProxy = useFileMlflowServer(
    'gcs-proxy',
    () => ['--serve-artifacts', '--artifacts-destination', `gs://${servers().gcs.bucket}/proxied`],
    () => ({ STORAGE_EMULATOR_HOST: servers().gcs.emulatorHost }),
  );

  it('tries mpu/create once, sends the file as one PUT, warns once, and skips the create for the next file', async () => {
    const gcs = { proxyUrl: gcsProxy.url };
    const front = await proxy(gcs.proxyUrl);
    const { runId, artifactUri } = await serverRun(gcs.proxyUrl);
    const logger = recordingLogger();
    // The default retry policy: a retried 500 would back off for minutes before the fallback.
    const connection = resolveMlflowConnection({ trackingUri: front.url, logger }, {});
    const store = resolveArtifactStore(artifactUri, { connection, env: {}, multipart: { thresholdBytes: 5 * MiB, chunkBytes: 5 * MiB } });
    const dir = mkdtempSync(join(tmpdir(), 'au-mlflow-gcs-'));
    const first = randomBytes(12 * MiB);
    const second = randomBytes(6 * MiB);
    writeFileSync(join(dir, 'first.bin'), first);
    writeFileSync(join(dir, 'second.bin'), second);

    expect(await store.uploadFile(join(dir, 'first.bin'), 'big/first.bin')).toEqual({ bytes: first.length, attempts: 1, multipart: false, sha256: sha256(first) });
    expect(await store.uploadFile(join(dir, 'second.bin'), 'big/second.bin')).toMatchObject({ bytes: second.length, multipart: false, sha256: sha256(second) });
    const creates = front.requests.filter((r) => r.path.includes('/mpu/create/'));
    expect(creates.map((r) => r.status)).toEqual([500]);
    expect(front.requests.filter((r) => r.method === 'PUT' && r.path.includes('/mlflow-artifacts/artifacts/')).map((r) => r.status)).toEqual([200, 200]);
    const warnings = logger.lines.filter(([level]) => level === 'warn').map(([, message]) => message);
    expect(warnings).toEqual([expect.stringMatching(/failed to start a multipart upload \(500\); sending files as single PUTs/)]);
    expect(await pythonArtifactHashes(gcs.proxyUrl, runId, 'big')).toEqual({ 'first.bin': sha256(first), 'second.bin': sha256(second) });
  }, 120_000);
});
