/**
 * Object names over a direct store's limit (S3 keys and GCS object names: 1,024 bytes of UTF-8;
 * Azure blob names: 1,024 characters), where the name is the run's artifact root prefix, the
 * artifact path and the file's relative path together: refused with `INVALID_ARTIFACT_PATH`
 * before any byte of any file is sent, against moto, gcp-storage-emulator and Azurite (neither
 * emulator checks the length itself: without our check the files would be stored there). What
 * each bucket holds afterwards is asked of the bucket directly, not of our store.
 */
import { join } from 'node:path';
import { ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { BlobServiceClient } from '@azure/storage-blob';
import { beforeAll, describe, expect, it } from 'vitest';
import { LocalPathError } from '../../src/core/errors.js';
import { resolveMlflowConnection } from '../../src/mlflow/connection.js';
import type { ArtifactStore } from '../../src/stores/artifact-store.js';
import { resolveArtifactStore } from '../../src/stores/resolve.js';
import { uploadBenchmarkArtifacts } from '../../src/stages/benchmark.js';
import { ArtifactUploader } from '../../src/uploader/artifact-uploader.js';
import type { ArtifactUploaderOptions } from '../../src/uploader/options.js';
import { describeWithServers, mlflowAzureServer, mlflowDirectS3Server, mlflowGcsServer, servers } from '../support/servers.js';
import { scratch, serverRun, writeTree } from '../uploader/helpers.js';

/** Five directories of 100 "ü" (200 bytes of UTF-8 each): over 1,024 bytes with any root, but about 560 characters. */
const LONG_IN_BYTES = `${Array.from({ length: 5 }, (_, i) => `${i}${'ü'.repeat(99)}`).join('/')}/w.bin`;
/** Five directories of 210 ASCII characters: over 1,024 characters. */
const LONG_IN_CHARACTERS = `${Array.from({ length: 5 }, (_, i) => `${i}${'a'.repeat(209)}`).join('/')}/w.bin`;

/** One direct store: how to upload to a new run of its server, and what its bucket holds under a prefix. */
interface DirectStore {
  name: string;
  /** How the store counts a name's length. */
  unit: 'bytes' | 'characters';
  trackingUri(): string;
  uploaderOptions(): Partial<ArtifactUploaderOptions>;
  /** Every object (committed or not, multipart uploads in progress too) whose name starts with `prefix`. */
  objectsUnder(prefix: string): Promise<string[]>;
}

const stores: DirectStore[] = [
  {
    name: 's3:// (moto)',
    unit: 'bytes',
    trackingUri: () => mlflowDirectS3Server().url,
    uploaderOptions: () => {
      const { awsEnv } = servers();
      return {
        env: { ...awsEnv, MLFLOW_S3_ENDPOINT_URL: mlflowDirectS3Server().s3Endpoint },
        s3: { credentials: { accessKeyId: awsEnv.AWS_ACCESS_KEY_ID!, secretAccessKey: awsEnv.AWS_SECRET_ACCESS_KEY! } },
      };
    },
    objectsUnder: async (prefix) => {
      const { s3Endpoint, bucket } = mlflowDirectS3Server();
      const { awsEnv } = servers();
      const client = new S3Client({
        endpoint: s3Endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: awsEnv.AWS_ACCESS_KEY_ID!, secretAccessKey: awsEnv.AWS_SECRET_ACCESS_KEY! },
      });
      try {
        const objects = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
        const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
        return [...(objects.Contents ?? []).map((o) => o.Key ?? ''), ...(uploads.Uploads ?? []).map((u) => `(upload) ${u.Key ?? ''}`)];
      } finally {
        client.destroy();
      }
    },
  },
  {
    name: 'gs:// (gcp-storage-emulator)',
    unit: 'bytes',
    trackingUri: () => mlflowGcsServer().url,
    uploaderOptions: () => ({ env: { STORAGE_EMULATOR_HOST: mlflowGcsServer().emulatorHost } }),
    objectsUnder: async (prefix) => {
      const { emulatorHost, bucket } = mlflowGcsServer();
      const res = await fetch(`${emulatorHost}/storage/v1/b/${bucket}/o?prefix=${encodeURIComponent(prefix)}`);
      expect(res.status).toBe(200);
      return ((await res.json()) as { items?: Array<{ name: string }> }).items?.map((o) => o.name) ?? [];
    },
  },
  {
    name: 'wasbs:// (Azurite)',
    unit: 'characters',
    trackingUri: () => mlflowAzureServer().url,
    uploaderOptions: () => ({ env: { ...mlflowAzureServer().env } }),
    objectsUnder: async (prefix) => {
      const { env, container } = mlflowAzureServer();
      const client = BlobServiceClient.fromConnectionString(env.AZURE_STORAGE_CONNECTION_STRING!).getContainerClient(container);
      const names: string[] = [];
      for await (const blob of client.listBlobsFlat({ prefix, includeUncommitedBlobs: true })) names.push(blob.name);
      return names;
    },
  },
];

/** The object name prefix of a run's artifact root (`s3://bucket/<prefix>`, `wasbs://c@host/<prefix>`). */
const rootPrefixOf = (artifactUri: string): string => /^[a-z0-9]+:\/\/[^/]+\/(.*)$/.exec(artifactUri)![1]!;

/** A name's length as the store counts it. */
const lengthIn = (unit: DirectStore['unit'], name: string): number => (unit === 'bytes' ? Buffer.byteLength(name, 'utf8') : name.length);

describeWithServers('object names over the store\'s limit are refused before any byte is sent', () => {
  describe.each(stores)('$name', (direct) => {
    let run: { runId: string; artifactUri: string };
    let rootPrefix: string;
    let store: ArtifactStore;
    const long = direct.unit === 'bytes' ? LONG_IN_BYTES : LONG_IN_CHARACTERS;
    const uploader = () => new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri: direct.trackingUri(), retry: { maxRetries: 1 }, ...direct.uploaderOptions() });

    beforeAll(async () => {
      run = await serverRun(direct.trackingUri());
      rootPrefix = rootPrefixOf(run.artifactUri);
      const connection = resolveMlflowConnection({ trackingUri: direct.trackingUri() }, {});
      store = resolveArtifactStore(run.artifactUri, { connection, ...direct.uploaderOptions() });
    });

    it('a directory with one name too long: refused whole, naming the file, its length and the limit; no file of it is stored', async () => {
      const src = writeTree(scratch(), { 'ok.txt': 'short name', 'also-ok/config.json': '{}', [long]: Buffer.alloc(3000, 1) });
      const artifactPath = `names/${long}`;
      const length = lengthIn(direct.unit, `${rootPrefix}/${artifactPath}`);
      expect(length).toBeGreaterThan(1024);
      const up = uploader();
      const refused = await up.uploadDirectory(src, { artifactPath: 'names' }).catch((error: unknown) => error);
      await up.close();
      expect(refused).toBeInstanceOf(LocalPathError);
      expect(refused).toMatchObject({ code: 'INVALID_ARTIFACT_PATH', path: artifactPath });
      const { message, hint } = refused as LocalPathError;
      expect(message).toContain('Nothing was uploaded.');
      expect(hint).toContain(JSON.stringify(artifactPath));
      expect(hint).toContain(`${length} ${direct.unit}`);
      expect(hint).toContain('at most 1024');
      expect(await direct.objectsUnder(rootPrefix)).toEqual([]);
    });

    it('uploadFile of the store itself refuses the name before it reads the file', async () => {
      // The local file does not exist: a store that read first would answer PATH_NOT_FOUND.
      await expect(store.uploadFile(join(scratch(), 'missing.bin'), `single/${long}`)).rejects.toMatchObject({ code: 'INVALID_ARTIFACT_PATH', path: `single/${long}` });
    });
  });

  it('an archive whose manifest name is over the limit (the archive\'s is not): neither is sent', async () => {
    const direct = stores[0]!;
    const run = await serverRun(direct.trackingUri());
    const rootPrefix = rootPrefixOf(run.artifactUri);
    // The archive's key is 1,020 bytes; its manifest's (`.manifest.json` for `.tar.gz`) 1,027.
    // Directories of 200 characters (a local file name holds at most 255 bytes: the archive is built on disk first).
    const dirs = Array.from({ length: 1020 - rootPrefix.length - 1 - '/c.tar.gz'.length }, (_, i) => (i % 201 === 200 ? '/' : 'x')).join('');
    const archiveName = `${dirs}/c.tar.gz`;
    expect(Buffer.byteLength(`${rootPrefix}/${archiveName}`)).toBe(1020);
    const src = writeTree(scratch(), { 'ckpt/w.bin': Buffer.alloc(1000, 2) });
    const up = new ArtifactUploader({ stage: 'hpo', runId: run.runId, trackingUri: direct.trackingUri(), retry: { maxRetries: 1 }, ...direct.uploaderOptions() });
    const refused = await up.archiveAndUploadCheckpoint(join(src, 'ckpt'), { artifactPath: archiveName }).catch((error: unknown) => error);
    await up.close();
    expect(refused).toMatchObject({ code: 'INVALID_ARTIFACT_PATH', path: `${dirs}/c.manifest.json` });
    expect((refused as LocalPathError).hint).toContain('1027 bytes');
    expect(await direct.objectsUnder(rootPrefix)).toEqual([]);
  });

  it('a stage helper refuses a later results directory with a name too long before its first results go up', async () => {
    // The helper plans every upload before the first (planAhead); the length check needs the
    // run's store, and ran only when each upload's turn came: the file went up, then the call
    // threw for the directory and the file's result was lost.
    const direct = stores[0]!;
    const run = await serverRun(direct.trackingUri());
    const rootPrefix = rootPrefixOf(run.artifactUri);
    const src = writeTree(scratch(), { 'latency.json': '{"p50": 1}', [`plots/${LONG_IN_BYTES}`]: 'deep' });
    const refused = await uploadBenchmarkArtifacts({
      resultsPaths: [join(src, 'latency.json'), join(src, 'plots')],
      runId: run.runId,
      trackingUri: direct.trackingUri(),
      retry: { maxRetries: 1 },
      ...direct.uploaderOptions(),
    }).catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: 'INVALID_ARTIFACT_PATH', path: `benchmark/plots/${LONG_IN_BYTES}` });
    expect(await direct.objectsUnder(rootPrefix)).toEqual([]);
  });

  it('Azure counts characters, not bytes: a name of 1,024+ bytes but fewer characters is stored', async () => {
    const direct = stores[2]!;
    const run = await serverRun(direct.trackingUri());
    const rootPrefix = rootPrefixOf(run.artifactUri);
    const src = writeTree(scratch(), { [LONG_IN_BYTES]: 'fits in characters' });
    const up = new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri: direct.trackingUri(), retry: { maxRetries: 1 }, ...direct.uploaderOptions() });
    const result = await up.uploadDirectory(src, { artifactPath: 'names' });
    await up.close();
    expect(result.status).toBe('uploaded');
    expect(await direct.objectsUnder(rootPrefix)).toEqual([`${rootPrefix}/names/${LONG_IN_BYTES}`]);
  });
});
