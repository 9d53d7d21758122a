/**
 * Journal records past the 7-day expiry that name an S3 multipart upload (docs/resume.md,
 * "Cleanup"): the store keeps and bills such an upload until it is aborted, so the sweep at
 * journal open no longer deletes the record, and the next upload that completes gives the
 * upload up. Against the real servers, a child CLI `dir` upload is SIGKILLed while its large
 * file is in a multipart upload, every journal file is aged by 9 days (mtime and `updatedAt`),
 * and another upload, of another file, runs with the same journal:
 * - `s3://`, the other upload to another run on the same tracking server: the killed run is
 *   looked up, its multipart upload aborted (moto lists none), and the journal is empty;
 * - the MLflow proxy's multipart upload (S3 destination), the other upload to the same run:
 *   `mpu/abort` goes through the proxy, moto lists none, the journal is empty;
 * - records whose upload cannot be given up (another tracking server, on a closed port; a run
 *   the live server does not have): the upload succeeds, both records stay, still as old, and
 *   one warning says how many, how old, and which `resume clear` gives them up; no password.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { runToEnd } from '../support/crash-harness.js';
import { useFaultProxies } from '../support/fault-proxy.js';
import { closedPort, isAbort, isMpu, journalFiles, killedProxyMultipartUpload, killedS3Upload, records } from '../support/killed-upload.js';
import { motoUploads } from '../support/moto.js';
import { pythonCreateRun } from '../support/python.js';
import { describeWithServers, mlflowDirectS3Server, servers } from '../support/servers.js';
import { journalTarget, localFileIdentity, UploadJournal } from '../../src/uploader/journal.js';

const DAY = 24 * 3600_000;
const startProxy = useFaultProxies();

/**
 * Ages every record and log of the journal by `ms`: the file's mtime (the sweep) and a record's
 * `updatedAt` (`resume list`); with `ownerPid`, the records' owner becomes that process (a
 * record written by this test names this live process, which no other takes a record from).
 */
async function ageJournal(journalDir: string, ms: number, ownerPid?: number): Promise<void> {
  const when = Date.now() - ms;
  for (const name of await journalFiles(journalDir)) {
    const path = join(journalDir, name);
    if (name.endsWith('.json')) {
      const record = JSON.parse(await readFile(path, 'utf8')) as { owner: object };
      await writeFile(path, JSON.stringify({ ...record, updatedAt: when, ...(ownerPid ? { owner: { ...record.owner, pid: ownerPid } } : {}) }));
    }
    await utimes(path, new Date(when), new Date(when));
  }
}

/** A small file of its own to upload, in a new temp directory. */
async function otherFile(): Promise<string> {
  const path = join(await mkdtemp(join(tmpdir(), 'au-expired-other-')), 'metrics.json');
  await writeFile(path, JSON.stringify({ loss: 0.1 }));
  return path;
}

/**
 * A `dir` upload to a new run on the `s3://` server (tracking server and moto each behind a
 * recording proxy), killed once `big.bin` has two parts on record, its journal then aged 9 days;
 * and a new run on the same server for the next upload.
 */
async function expiredS3Upload(name: string) {
  const { url, s3, tracking, runId: killedRun, root, journalDir, env } = await killedS3Upload(startProxy, `${name}-killed`);
  await ageJournal(journalDir, 9 * DAY);
  const nextRun = await pythonCreateRun(url, `${name}-next`);
  return { s3, tracking, killedRun, nextRun, root, journalDir, env };
}

describeWithServers('expired journal records of S3 multipart uploads', () => {
  it('s3://: the next upload (another run, same server) aborts the expired record\'s multipart upload and removes the record', async () => {
    const { s3, tracking, killedRun, nextRun, root, journalDir, env } = await expiredS3Upload('expired-s3');
    const trackingBefore = tracking.requests.length;
    const next = await runToEnd({ argv: ['file', await otherFile(), '--stage', 'training', '--artifact-path', 'eval', '--json'], env: { ...env, MLFLOW_RUN_ID: nextRun }, cwd: root, proxy: s3 });
    const why = JSON.stringify({ requests: next.requests, stderr: next.stderr.slice(-2000) });
    expect((JSON.parse(next.stdout) as { ok: boolean }).ok, why).toBe(true);
    expect(next.requests.filter(isAbort), why).toHaveLength(1);
    // The killed run was looked up on the server the upload used.
    expect(tracking.requests.slice(trackingBefore).some((r) => r.path.includes('/runs/get') && r.path.includes(killedRun))).toBe(true);
    expect(await motoUploads(killedRun), why).toEqual([]);
    expect(await journalFiles(journalDir), why).toEqual([]);
    expect(next.stderr).not.toMatch(/resume clear/);
  }, 300_000);

  it("s3://: a lookup of the expired record's run that is never answered costs the upload seconds, not the retry policy's minutes: the record stays, with the warning", async () => {
    const { s3, tracking, killedRun, nextRun, root, journalDir, env } = await expiredS3Upload('expired-s3-held');
    const before = await readFile(join(journalDir, [...(await records(journalDir)).keys()][0]!), 'utf8');
    // The server answers the upload, and never the killed run's runs/get.
    tracking.addRule({ match: (r) => r.path.includes('/runs/get') && r.path.includes(killedRun), fault: 'hold' });
    try {
      // The harness kills a child still running after 120 s: the default policy (a 120 s idle
      // timeout, 7 retries) would take over 15 minutes here; the budget cuts it at 20 s.
      const next = await runToEnd({ argv: ['file', await otherFile(), '--stage', 'training', '--artifact-path', 'eval', '--json'], env: { ...env, MLFLOW_RUN_ID: nextRun }, cwd: root, proxy: s3 });
      expect((JSON.parse(next.stdout) as { ok: boolean }).ok, next.stderr).toBe(true);
      expect(tracking.requests.filter((r) => r.path.includes('/runs/get') && r.path.includes(killedRun)).length).toBeGreaterThanOrEqual(1);
      expect(next.stderr).toMatch(new RegExp(`1 resume journal record\\(s\\) .* did not give up .*run ${killedRun}.*: not given up within 20 s, the time an upload spends on it\\)\\. .*resume clear --tracking-uri \\S+ --older-than 9d\` gives them up`));
      expect(next.requests.filter(isAbort)).toEqual([]);
      expect(await motoUploads(killedRun)).toHaveLength(1);
      expect(JSON.parse(await readFile(join(journalDir, [...(await records(journalDir)).keys()][0]!), 'utf8'))).toEqual(JSON.parse(before));
    } finally {
      tracking.clearRules();
      tracking.thaw();
    }
  }, 300_000);

  it("mlflow-artifacts (S3 destination): the next upload to the same run aborts the expired record's proxied multipart upload (mpu/abort)", async () => {
    const { proxy, runId, root, journalDir, options } = await killedProxyMultipartUpload(startProxy, 'expired-proxy-mpu');
    const { env } = options;
    await ageJournal(journalDir, 9 * DAY);

    const next = await runToEnd({ argv: ['file', await otherFile(), '--stage', 'training', '--artifact-path', 'eval', '--json'], env, cwd: root, proxy });
    const why = JSON.stringify({ requests: next.requests, stderr: next.stderr.slice(-2000) });
    expect((JSON.parse(next.stdout) as { ok: boolean }).ok, why).toBe(true);
    expect(next.requests.filter(isMpu('abort')), why).toHaveLength(1);
    expect(await motoUploads(runId), why).toEqual([]);
    expect(await journalFiles(journalDir), why).toEqual([]);
  }, 300_000);

  it('records whose upload is not given up (of another tracking server, which the upload does not contact; a run the server does not have) stay, as old, and one warning says what to run; the upload succeeds', async () => {
    const password = 'hunter2-Secret-pw';
    const { url, s3Endpoint } = mlflowDirectS3Server();
    const s3 = await startProxy(s3Endpoint, { preserveHost: true });
    const runId = await pythonCreateRun(url, 'expired-left');
    const root = await mkdtemp(join(tmpdir(), 'au-expired-left-'));
    const journalDir = join(root, 'journal');
    await writeFile(join(root, 'big.bin'), randomBytes(4096));
    const journal = await UploadJournal.open({ dir: journalDir });
    const local = await localFileIdentity(join(root, 'big.bin'));
    // Another tracking server (nothing listens there now), and a run the live server does not have.
    const elsewherePort = await closedPort();
    const elsewhere = (await journal.begin({ target: `http://alice:${password}@127.0.0.1:${elsewherePort}`, runId: 'run-elsewhere', artifactPath: 'ckpt/big.bin', local }))!;
    await elsewhere.startMultipart('mpu-elsewhere', 1024);
    const missing = (await journal.begin({ target: url, runId: 'f'.repeat(32), artifactPath: 'ckpt/big.bin', local }))!;
    await missing.creatingMultipart();
    // Owned by a process that has exited, as a killed upload's records are.
    await ageJournal(journalDir, 9 * DAY, spawnSync(process.execPath, ['-e', '']).pid);
    const before = await Promise.all((await journalFiles(journalDir)).map(async (n) => [n, await readFile(join(journalDir, n), 'utf8')] as const));
    expect(before).toHaveLength(2);

    const env = { ...servers().awsEnv, MLFLOW_TRACKING_URI: url, MLFLOW_RUN_ID: runId, MLFLOW_S3_ENDPOINT_URL: s3.url, ARTIFACT_UPLOADER_JOURNAL_DIR: journalDir, MLFLOW_TRACKING_USERNAME: 'alice', MLFLOW_TRACKING_PASSWORD: password };
    const next = await runToEnd({ argv: ['file', await otherFile(), '--stage', 'training', '--artifact-path', 'eval', '--json'], env, cwd: root, proxy: s3 });
    expect((JSON.parse(next.stdout) as { ok: boolean }).ok, next.stderr).toBe(true);
    const warnings = next.stderr.split('\n').filter((l) => /resume journal record\(s\) of interrupted uploads/.test(l));
    expect(warnings, next.stderr).toHaveLength(1);
    expect(warnings[0]).toMatch(/2 resume journal record\(s\) of interrupted uploads, the oldest not updated for 9 day\(s\), name an unfinished S3 multipart upload that this process did not give up/);
    // One command per tracking server, each run with that server's credentials (none in the text).
    expect(warnings[0]).toContain(
      `\`artifact-uploader resume clear --tracking-uri http://127.0.0.1:${elsewherePort}/ --older-than 9d\`, \`artifact-uploader resume clear --tracking-uri ${journalTarget(url)} --older-than 9d\` give them up and remove the records, one tracking server each (with that server's credentials in the environment)`,
    );
    expect(warnings[0]).toContain('`--keep-uploads`');
    expect(`${next.stdout}${next.stderr}`).not.toContain(password);
    // Both records as they were: same content, and still past the expiry for the next sweep.
    const after = await Promise.all((await journalFiles(journalDir)).map(async (n) => [n, await readFile(join(journalDir, n), 'utf8')] as const));
    expect(after.map(([n, text]) => [n, JSON.parse(text)])).toEqual(before.map(([n, text]) => [n, JSON.parse(text)]));
    for (const name of await readdir(journalDir)) {
      if (name.endsWith('.json')) expect(Date.now() - (await stat(join(journalDir, name))).mtimeMs).toBeGreaterThan(8 * DAY);
    }
    expect((await UploadJournal.open({ dir: journalDir })).takeExpired()).toHaveLength(2);
  }, 300_000);
});

