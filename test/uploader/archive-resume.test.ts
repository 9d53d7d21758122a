/**
 * Crash-resume of archive uploads (docs/resume.md, "Archives"), against moto behind the real
 * `mlflow server --no-serve-artifacts`: the CLI (`hpo --checkpoint-dir`, which archives and
 * uploads; and `archive`, which only archives) is SIGKILLed while it writes the archive, while
 * the manifest goes up, and mid-upload of the archive; then the same command runs again and
 * - the artifacts are byte-exact for the official Python client, and the archive is the one a
 *   plain `archive` of the directory makes (deterministic);
 * - the rerun re-sends at most what was in flight (byte-counting proxy), reusing the staged
 *   archive and its multipart upload;
 * - no temp file and no staged archive is left, no multipart upload is left on moto, and
 *   nothing partial is ever at a final path;
 * - two processes archiving the same directory to the same place at once do not share the
 *   staging directory: the second builds in a private temp directory, and both succeed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { runAndKill, runToEnd, type ChildRun, type CliChildOptions } from '../support/crash-harness.js';
import { useFaultProxies, type FaultProxy } from '../support/fault-proxy.js';
import { motoObjects, motoUploads } from '../support/moto.js';
import { pythonArtifactHashes, pythonCreateRun } from '../support/python.js';
import { describeWithServers, mlflowDirectS3Server, servers } from '../support/servers.js';

const MiB = 1024 * 1024;
const PART = 8 * MiB;
const ARCHIVE = 'best_trial_checkpoint.tar.gz';
const MANIFEST = 'best_trial_checkpoint.manifest.json';
const startProxy = useFaultProxies();
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const putBytes = (run: ChildRun) => run.requests.filter((r) => r.method === 'PUT').reduce((n, r) => n + r.bytes, 0);
const putBytesTo = (run: ChildRun, name: string) => run.requests.filter((r) => r.method === 'PUT' && r.path.includes(name)).reduce((n, r) => n + r.bytes, 0);

/** Every path under `dir` (recursively), relative. */
async function listTree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  return entries.map(String).sort();
}

/** A temp file of `createCheckpointArchive` under `dir` (any depth) has reached `bytes`. */
function tempArchiveReached(dir: string, bytes: number): () => Promise<boolean> {
  return async () => {
    for (const path of await listTree(dir)) {
      if (!path.includes(`${ARCHIVE}.tmp-`) && !/\.tar\.gz\.tmp-/.test(path)) continue;
      if (((await stat(join(dir, path)).catch(() => undefined))?.size ?? 0) >= bytes) return true;
    }
    return false;
  };
}

interface Setup {
  root: string;
  checkpoint: string;
  journalDir: string;
  runId: string;
  proxy: FaultProxy;
  options: CliChildOptions;
  pythonEnv: Record<string, string>;
}

/** A checkpoint of incompressible weights (about 40 MiB: 5 parts) and a few small files, and the `hpo` command that uploads it. */
async function setup(name: string, extraArgs: string[] = []): Promise<Setup> {
  const { url } = mlflowDirectS3Server();
  const proxy = await startProxy(mlflowDirectS3Server().s3Endpoint, { preserveHost: true });
  const runId = await pythonCreateRun(url, name);
  const root = await mkdtemp(join(tmpdir(), 'au-archive-resume-'));
  // About 80 MB a test (the checkpoint and its staged archive).
  onTestFinished(() => rm(root, { recursive: true, force: true }));
  const checkpoint = join(root, 'checkpoint');
  await mkdir(join(checkpoint, 'tokenizer'), { recursive: true });
  await writeFile(join(checkpoint, 'model.safetensors'), randomBytes(38 * MiB));
  await writeFile(join(checkpoint, 'config.json'), JSON.stringify({ hidden: 64, layers: 2 }));
  await writeFile(join(checkpoint, 'tokenizer', 'vocab.txt'), 'a\nb\nc\n'.repeat(1000));
  const journalDir = join(root, 'journal');
  return {
    root,
    checkpoint,
    journalDir,
    runId,
    proxy,
    pythonEnv: { ...servers().awsEnv, MLFLOW_S3_ENDPOINT_URL: mlflowDirectS3Server().s3Endpoint },
    options: {
      argv: ['hpo', '--checkpoint-dir', checkpoint, '--json', ...extraArgs],
      env: { ...servers().awsEnv, MLFLOW_TRACKING_URI: url, MLFLOW_RUN_ID: runId, MLFLOW_S3_ENDPOINT_URL: proxy.url, ARTIFACT_UPLOADER_JOURNAL_DIR: journalDir },
      cwd: root,
      proxy,
      timeoutMs: 120_000,
    },
  };
}

/** The rerun's end state: byte-exact, the archive `archive` makes locally, nothing left behind. */
async function expectCompleted(s: Setup, extraArgs: string[] = []): Promise<void> {
  const { url } = mlflowDirectS3Server();
  const stored = await pythonArtifactHashes(url, s.runId, '', s.pythonEnv);
  expect(Object.keys(stored).sort()).toEqual([MANIFEST, ARCHIVE]);
  // The same bytes a plain `archive` of the directory makes: the archive is deterministic.
  const local = join(s.root, 'local', ARCHIVE);
  await runToEnd({ ...s.options, argv: ['archive', s.checkpoint, '-o', local, '--json', ...extraArgs] });
  expect(stored[ARCHIVE]).toBe(sha256(await readFile(local)));
  const manifest = JSON.parse(await readFile(join(s.root, 'local', MANIFEST), 'utf8')) as { files: Array<{ path: string; sha256: string }> };
  expect(manifest.files.find((f) => f.path === 'model.safetensors')?.sha256).toBe(sha256(await readFile(join(s.checkpoint, 'model.safetensors'))));
  expect(await motoUploads(s.runId)).toEqual([]);
  // No staged archive, temp file or journal record is left.
  expect(await listTree(s.journalDir)).toEqual([]);
}

describeWithServers('archive crash-resume', () => {
  it('killed while writing the archive: nothing reached the bucket; the rerun builds it again (no temp file left) and uploads it', async () => {
    const s = await setup('archive-kill-archiving', ['--level', '9']);
    const killed = await runAndKill({ ...s.options, at: { until: tempArchiveReached(s.journalDir, 2 * MiB) } });
    expect(putBytes(killed)).toBe(0);
    expect(await motoObjects(s.runId)).toEqual([]);
    expect((await listTree(s.journalDir)).some((p) => p.includes('.tmp-'))).toBe(true); // the killed writer's temp file

    const rerun = await runToEnd(s.options);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ ok: true });
    await expectCompleted(s, ['--level', '9']);
  }, 240_000);

  it('`archive` killed while writing: neither archive nor manifest appears until a rerun writes both, and no temp file is left', async () => {
    const s = await setup('archive-command-kill');
    const outDir = join(s.root, 'out');
    const options = { ...s.options, argv: ['archive', s.checkpoint, '-o', join(outDir, 'ckpt.tar.gz'), '--level', '9', '--json'] };
    await runAndKill({ ...options, at: { until: tempArchiveReached(outDir, 2 * MiB) } });
    const left = await listTree(outDir);
    expect(left.filter((p) => !p.includes('.tmp-'))).toEqual([]); // nothing at the final paths
    expect(left).toHaveLength(1);
    // A dead writer's temp file goes once it is stale (its owner gone, untouched for 10 minutes,
    // so that a writer on another machine sharing the disk is never raced): age it.
    const old = new Date(Date.now() - 11 * 60_000);
    await utimes(join(outDir, left[0]!), old, old);

    await runToEnd(options);
    expect(await listTree(outDir)).toEqual(['ckpt.manifest.json', 'ckpt.tar.gz']);
    const manifest = JSON.parse(await readFile(join(outDir, 'ckpt.manifest.json'), 'utf8')) as { archive: { sha256: string } };
    expect(manifest.archive.sha256).toBe(sha256(await readFile(join(outDir, 'ckpt.tar.gz'))));
  }, 240_000);

  it('killed mid-upload of the archive: the rerun reuses the staged archive and its multipart upload, re-sending at most the parts in flight', async () => {
    const s = await setup('archive-kill-upload');
    // Past the first 4 parts (4 in flight at a time): the 5th started, so one of them is in and recorded.
    const killAt = 36 * MiB;
    const killed = await runAndKill({ ...s.options, at: { bytes: killAt } });
    expect(killed.bytesSent).toBe(killAt);
    expect(await motoObjects(s.runId)).toEqual([]); // nothing partial at the final key

    const rerun = await runToEnd(s.options);
    const [result] = (JSON.parse(rerun.stdout) as { results: Array<{ metrics: { bytesResumed: number }; manifest: { archive: { size: number } } }> }).results;
    const archiveSize = result!.manifest.archive.size;
    expect(rerun.requests.some((r) => r.method === 'POST' && /[?&]uploads(=|&|$)/.test(r.path))).toBe(false); // the same upload, continued
    expect(result!.metrics.bytesResumed).toBeGreaterThanOrEqual(PART);
    expect(putBytesTo(rerun, ARCHIVE)).toBeLessThanOrEqual(archiveSize - killAt + 4 * PART);
    await expectCompleted(s);
  }, 240_000);

  it('killed while the manifest goes up: the archive is in place and is not sent again; the rerun sends the manifest', async () => {
    const s = await setup('archive-kill-manifest');
    const killed = await runAndKill({ ...s.options, at: { request: (r) => r.method === 'PUT' && r.path.includes(MANIFEST) } });
    expect(await motoObjects(s.runId)).toEqual([ARCHIVE]); // whole, or it would not be listed

    const rerun = await runToEnd(s.options);
    expect(putBytesTo(rerun, ARCHIVE)).toBe(0);
    expect(putBytesTo(rerun, MANIFEST)).toBeGreaterThan(0);
    expect(putBytesTo(killed, ARCHIVE)).toBeGreaterThan(0);
    const [result] = (JSON.parse(rerun.stdout) as { results: Array<{ metrics: { filesResumed: number } }> }).results;
    expect(result!.metrics.filesResumed).toBe(1);
    await expectCompleted(s);
  }, 240_000);

  it('two processes archive the same directory to the same place at once: they take turns, both succeed, nothing is left', async () => {
    const s = await setup('archive-concurrent');
    // The children's temp directories, to see that neither leaves a private archive there.
    const tmp = join(s.root, 'tmp');
    await mkdir(tmp);
    const options = { ...s.options, env: { ...s.options.env, TMPDIR: tmp } };
    // The first holds the staging directory from its start to its end; its first archive PUT is
    // stalled (then cut, and retried) so that it is surely still at work when the second starts.
    s.proxy.addRule({ match: (r) => r.method === 'PUT' && r.path.includes(ARCHIVE), times: 1, fault: 'stall', stallMs: 15_000 });
    const first = runToEnd(options);
    const archives = join(s.journalDir, 'archives');
    let stagedWhileHeld: string[] = [];
    while (!stagedWhileHeld.some((p) => p.endsWith('.lock'))) {
      await new Promise((r) => setTimeout(r, 5));
      stagedWhileHeld = await listTree(archives);
    }
    const secondRun = await runToEnd(options);
    const firstRun = await first;
    // While the first held it: one staged archive (and its lock), the first's.
    expect(stagedWhileHeld.filter((p) => p.endsWith('.lock'))).toHaveLength(1);
    expect(JSON.parse(firstRun.stdout)).toMatchObject({ ok: true });
    expect(JSON.parse(secondRun.stdout)).toMatchObject({ ok: true });
    // Both sent the whole archive (the second, its turn come, staged its own: the first's was removed once uploaded).
    expect(putBytesTo(secondRun, ARCHIVE)).toBeGreaterThan(30 * MiB);
    expect(await listTree(tmp)).toEqual([]);
    await expectCompleted(s);
  }, 240_000);
});
