/**
 * A file deleted from a directory between a kill and the rerun (docs/resume.md, "A file
 * deleted before the rerun"): the rerun never sends it, so nothing of the file-by-file resume
 * looks at its record. Against the real servers, a child CLI `dir` upload is SIGKILLed while
 * its large file is in a multipart upload, the file is deleted, and the same command runs
 * again; once it completed
 * - the earlier multipart upload is aborted: moto lists no upload for the run (`s3://`, and the
 *   MLflow proxy's `mpu/create` with an S3 destination); a `gs://` resumable session is
 *   cancelled (`DELETE` of its URI, which no output names: it is a capability);
 * - the journal holds no record (nor log, nor lock): also not the killed run's log of the files
 *   it finished, when one of those is the file deleted;
 * - the directory's other files arrived, byte-exact (read back by the official Python client).
 * An abort the store refuses is a warning (what is left, and the lifecycle rule that removes
 * it), never a failed upload. And what is not this case is left alone: a record a live process owns (it is uploading that
 * file right now), and a record whose file is still there, changed, but not part of the rerun
 * (its upload is the rerun's of that file, whenever it comes).
 */
import { randomBytes } from 'node:crypto';
import { appendFile, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { runAndKill, runToEnd } from '../support/crash-harness.js';
import { startChild } from '../support/child-node.js';
import { useFaultProxies } from '../support/fault-proxy.js';
import { checkpointDir, isAbort, isMpu, journalFiles, killedProxyMultipartUpload, partsRecorded, records, type RecordJson } from '../support/killed-upload.js';
import { motoUploads } from '../support/moto.js';
import { pythonArtifactHashes, pythonCreateRun } from '../support/python.js';
import { describeWithServers, mlflowDirectS3Server, mlflowGcsServer, servers } from '../support/servers.js';

const MiB = 1024 * 1024;
const startProxy = useFaultProxies();

/**
 * A directory of a large file (multipart) and two small ones, and the options of a child CLI
 * `dir` upload of it to `ckpt` of a new run on the `s3://` server, through a byte-counting
 * proxy in front of moto.
 */
async function s3Directory(runName: string) {
  const { url, s3Endpoint } = mlflowDirectS3Server();
  const proxy = await startProxy(s3Endpoint, { preserveHost: true });
  const runId = await pythonCreateRun(url, runName);
  const { root, data, journalDir, small } = await checkpointDir(40 * MiB); // big.bin: 5 parts of 8 MiB
  const options = {
    argv: ['dir', data, '--stage', 'training', '--artifact-path', 'ckpt', '--json'],
    env: { ...servers().awsEnv, MLFLOW_TRACKING_URI: url, MLFLOW_RUN_ID: runId, MLFLOW_S3_ENDPOINT_URL: proxy.url, ARTIFACT_UPLOADER_JOURNAL_DIR: journalDir },
    cwd: root,
    proxy,
  };
  /** The environment the official Python client reads moto with (past the proxy). */
  const pythonEnv = { ...servers().awsEnv, MLFLOW_S3_ENDPOINT_URL: s3Endpoint };
  return { url, runId, data, journalDir, options, pythonEnv, small };
}

describeWithServers('a file deleted between a kill and the rerun', () => {
  it('s3://: the rerun of the directory aborts the killed multipart upload of the deleted file and removes its record; the other files arrive', async () => {
    const { url, runId, data, journalDir, options, pythonEnv, small } = await s3Directory('deleted-source-s3');
    await runAndKill({ ...options, at: { until: partsRecorded(journalDir, 2) } });
    expect(await motoUploads(runId)).toHaveLength(1); // left by the kill, and on record
    expect([...(await records(journalDir)).values()].map((r) => r.key.artifactPath)).toEqual(['ckpt/big.bin']);

    await rm(join(data, 'big.bin'));
    const rerun = await runToEnd(options);
    const why = JSON.stringify({ rerun: rerun.requests, stderr: rerun.stderr.slice(-2000) });
    expect((JSON.parse(rerun.stdout) as { ok: boolean }).ok).toBe(true);
    expect(rerun.requests.filter(isAbort), why).toHaveLength(1);
    expect(await motoUploads(runId), why).toEqual([]);
    expect(await journalFiles(journalDir)).toEqual([]);
    expect(await pythonArtifactHashes(url, runId, 'ckpt', pythonEnv)).toEqual(small);
  }, 300_000);

  it("s3://: the log of the killed run, which names a small file deleted since, goes with the rerun's completion", async () => {
    const { data, journalDir, options } = await s3Directory('deleted-source-s3-log');
    // Killed once config.json is a line of the operation's log, and big.bin has a part on record.
    const logged = async () => {
      const logs = (await readdir(journalDir).catch(() => [] as string[])).filter((n) => n.endsWith('.log'));
      const texts = await Promise.all(logs.map((n) => readFile(join(journalDir, n), 'utf8').catch(() => '')));
      return texts.some((t) => t.includes('config.json')) && (await partsRecorded(journalDir, 1)());
    };
    await runAndKill({ ...options, at: { until: logged } });
    expect((await readdir(journalDir)).filter((n) => n.endsWith('.log'))).toHaveLength(1);
    await rm(join(data, 'config.json'));
    await runToEnd(options);
    expect(await journalFiles(journalDir)).toEqual([]);
  }, 300_000);

  it('s3://: an abort S3 refuses does not fail the rerun: a warning names the upload left and the lifecycle rule that removes it', async () => {
    const { runId, data, journalDir, options } = await s3Directory('deleted-source-s3-refused');
    await runAndKill({ ...options, at: { until: partsRecorded(journalDir, 1) } });
    const [left] = await motoUploads(runId);
    await rm(join(data, 'big.bin'));
    const denied = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>';
    options.proxy.addRule({ match: isAbort, fault: 'status', status: 403, headers: { 'content-type': 'application/xml' }, body: denied });
    try {
      const rerun = await runToEnd(options);
      expect((JSON.parse(rerun.stdout) as { ok: boolean }).ok).toBe(true);
      expect(rerun.requests.filter(isAbort).map((r) => r.status)).toEqual([403]);
      const uploadId = left!.split(' ')[1]!;
      expect(rerun.stderr).toMatch(new RegExp(`warn.*multipart upload ${uploadId} of s3://.*big\\.bin.*could not be aborted.*lifecycle rule \\(AbortIncompleteMultipartUpload\\)`));
    } finally {
      options.proxy.clearRules();
    }
    expect(await motoUploads(runId)).toEqual([left]);
    expect(await journalFiles(journalDir)).toEqual([]);
  }, 300_000);

  it('s3://: a record a live process owns is left alone (record and upload), and given up by the first rerun after that process is gone', async () => {
    const { runId, data, journalDir, options } = await s3Directory('deleted-source-s3-live-owner');
    await runAndKill({ ...options, at: { until: partsRecorded(journalDir, 1) } });
    expect(await motoUploads(runId)).toHaveLength(1);
    // The record is made another live process's (same host): one uploading that file right now.
    const [[name, record]] = [...(await records(journalDir)).entries()] as [[string, RecordJson]];
    const owner = startChild('console.log("ready"); setInterval(() => {}, 1000);');
    try {
      await owner.waitFor('ready');
      await writeFile(join(journalDir, name), JSON.stringify({ ...record, owner: { ...record.owner, pid: owner.pid } }), { mode: 0o600 });
      await rm(join(data, 'big.bin'));
      const rerun = await runToEnd(options);
      expect(rerun.requests.filter(isAbort)).toEqual([]);
      expect(await motoUploads(runId)).toHaveLength(1);
      expect([...(await records(journalDir)).keys()]).toEqual([name]);
    } finally {
      await owner.kill();
    }
    const after = await runToEnd(options);
    expect(after.requests.filter(isAbort)).toHaveLength(1);
    expect(await motoUploads(runId)).toEqual([]);
    expect(await journalFiles(journalDir)).toEqual([]);
  }, 300_000);

  it('s3://: a file still there (changed since the kill) that the rerun does not send keeps its record and upload: only a file that is gone is given up', async () => {
    const { runId, data, journalDir, options } = await s3Directory('deleted-source-s3-present');
    await runAndKill({ ...options, at: { until: partsRecorded(journalDir, 1) } });
    const [uploadLeft] = await motoUploads(runId);
    await appendFile(join(data, 'big.bin'), randomBytes(1024)); // changed, and there
    const excluded = await runToEnd({ ...options, argv: [...options.argv, '--exclude', 'big.bin'] });
    expect(excluded.requests.filter(isAbort)).toEqual([]);
    expect(await motoUploads(runId)).toEqual([uploadLeft]);
    expect([...(await records(journalDir)).values()].map((r) => r.key.artifactPath)).toEqual(['ckpt/big.bin']);
    // Its own rerun gives the earlier upload up (the file changed) and sends the file anew.
    const sent = await runToEnd(options);
    expect(sent.requests.filter(isAbort)).toHaveLength(1);
    expect(await motoUploads(runId)).toEqual([]);
    expect(await journalFiles(journalDir)).toEqual([]);
  }, 300_000);

  it('gs://: the rerun of the directory cancels the resumable session of the deleted file and removes its record, naming the session nowhere; the other files arrive', async () => {
    const { url, emulatorHost } = mlflowGcsServer();
    const proxy = await startProxy(emulatorHost, { preserveHost: true }); // the session URI GCS answers names the proxy
    const runId = await pythonCreateRun(url, 'deleted-source-gcs');
    const { root, data, journalDir, small } = await checkpointDir(12 * MiB); // big.bin: resumable (above 8 MiB), in 1 MiB chunks
    const options = {
      argv: ['dir', data, '--stage', 'training', '--artifact-path', 'ckpt', '--json'],
      env: { MLFLOW_TRACKING_URI: url, MLFLOW_RUN_ID: runId, STORAGE_EMULATOR_HOST: proxy.url, MLFLOW_GCS_UPLOAD_CHUNK_SIZE: String(MiB), ARTIFACT_UPLOADER_JOURNAL_DIR: journalDir },
      cwd: root,
      proxy,
    };
    // Killed when its third chunk arrives (held): GCS kept the first two, and the session is on record.
    let chunks = 0;
    const thirdChunk = (r: { method: string; path: string }) => r.method === 'PUT' && r.path.includes('upload_id=') && ++chunks === 3;
    const killed = await runAndKill({ ...options, at: { request: thirdChunk } });
    expect(killed.requests.filter((r) => r.method === 'PUT' && r.path.includes('upload_id=') && r.status === 308)).toHaveLength(2);
    const [record] = [...(await records(journalDir)).values()];
    expect(record?.key.artifactPath).toBe('ckpt/big.bin');
    const sessionUri = new URL(record!.resumeToken!.value.uri);

    await rm(join(data, 'big.bin'));
    const rerun = await runToEnd({ ...options, argv: [...options.argv, '--verbose'] });
    const why = JSON.stringify({ rerun: rerun.requests, stderr: rerun.stderr.slice(-2000) });
    const cancels = rerun.requests.filter((r) => r.method === 'DELETE');
    expect(cancels.map((r) => r.path), why).toEqual([`${sessionUri.pathname}${sessionUri.search}`]);
    expect(`${rerun.stdout}${rerun.stderr}`).not.toContain(sessionUri.searchParams.get('upload_id'));
    expect(await journalFiles(journalDir)).toEqual([]);
    expect(await pythonArtifactHashes(url, runId, 'ckpt', { STORAGE_EMULATOR_HOST: emulatorHost })).toEqual(small);
  }, 300_000);

  it("mlflow-artifacts (S3 destination): the rerun of the directory aborts the proxy's multipart upload of the deleted file (mpu/abort) and removes its record; the other files arrive", async () => {
    const { url, runId, data, journalDir, small, options } = await killedProxyMultipartUpload(startProxy, 'deleted-source-proxy-mpu');

    await rm(join(data, 'big.bin'));
    const rerun = await runToEnd(options);
    const why = JSON.stringify({ rerun: rerun.requests, stderr: rerun.stderr.slice(-2000) });
    expect(rerun.requests.filter(isMpu('abort')), why).toHaveLength(1);
    expect(await motoUploads(runId), why).toEqual([]);
    expect(await journalFiles(journalDir)).toEqual([]);
    expect(await pythonArtifactHashes(url, runId, 'ckpt')).toEqual(small);
  }, 300_000);
});
