/** Shared by the uploader and stage tests: scratch trees, hashing, runs, Python downloads, GNU tar. */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { silentLogger, type Logger } from '../../src/core/logger.js';
import { startRun } from '../../src/run/start-run.js';
import type { ArtifactStore, UploadFileResult } from '../../src/stores/artifact-store.js';
import { resolveArtifactStore, type ResolveArtifactStoreOptions } from '../../src/stores/resolve.js';
import type { ActiveRun } from '../../src/run/run-context.js';
import { runPython } from '../support/python.js';

export const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

export function scratch(prefix = 'au-uploader-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Writes `{ 'a/b.txt': 'content' }` under `root`; returns `root`. */
export function writeTree(root: string, files: Record<string, string | Buffer>): string {
  for (const [rel, content] of Object.entries(files)) {
    const path = join(root, ...rel.split('/'));
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
  }
  return root;
}

/** `{ relativePath: sha256 }` of every file under `dir` (POSIX separators). */
export function hashTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else out[relative(dir, full).split(sep).join('/')] = sha256(readFileSync(full));
    }
  };
  walk(dir);
  return out;
}

/** A fresh embedded ./mlruns store and a run in it (not made active). */
export async function localRun(root = scratch()): Promise<{ trackingUri: string; run: ActiveRun; artifactsDir: string }> {
  const trackingUri = `file:${join(root, 'mlruns')}`;
  const run = await startRun({ trackingUri, activate: false, env: { USER: 'tester' } });
  return { trackingUri, run, artifactsDir: fileURLToPath(run.artifactUri!) };
}

/** Creates a run on a tracking server over REST (fast; Python is kept for the cross-checks). */
export async function serverRun(trackingUri: string, headers: Record<string, string> = {}): Promise<{ runId: string; artifactUri: string }> {
  const res = await fetch(`${trackingUri}/api/2.0/mlflow/runs/create`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ experiment_id: '0', start_time: Date.now() }),
  });
  if (!res.ok) throw new Error(`runs/create: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { run: { info: { run_id: string; artifact_uri: string } } };
  return { runId: body.run.info.run_id, artifactUri: body.run.info.artifact_uri };
}

/**
 * A `resolveStore` option whose store is the real one, each `uploadFile` going through
 * `around(artifactPath, upload)`: for tests that hold an upload at a gate, count the uploads, or
 * act when one is stored.
 */
export function wrappedStore(
  around: (artifactPath: string, upload: () => Promise<UploadFileResult>) => Promise<UploadFileResult>,
): (artifactUri: string, options: ResolveArtifactStoreOptions) => ArtifactStore {
  return (uri, o) => {
    const real = resolveArtifactStore(uri, o);
    return {
      kind: real.kind,
      artifactUri: real.artifactUri,
      describe: () => real.describe(),
      list: (d, opts) => real.list(d, opts),
      uploadFile: (l, p, opts) => around(p, () => real.uploadFile(l, p, opts)),
    };
  };
}

/** A logger that records what it is told. */
export function recordingLogger(): Logger & { lines: Array<[string, string]> } {
  const lines: Array<[string, string]> = [];
  return {
    lines,
    debug: (m) => lines.push(['debug', m]),
    info: (m) => lines.push(['info', m]),
    warn: (m) => lines.push(['warn', m]),
    error: (m) => lines.push(['error', m]),
  };
}

export { silentLogger };

/** One download for {@link pythonDownloadAll}. */
export interface DownloadSpec {
  trackingUri: string;
  runId: string;
  /** Artifact path ('' for the whole run). */
  path?: string;
}

/**
 * Downloads several runs' artifacts with the official `MlflowClient` in ONE Python process
 * (a cold `import mlflow` costs seconds) and returns the local directory of each, in order.
 */
export async function pythonDownloadAll(specs: DownloadSpec[], env: Record<string, string> = {}): Promise<string[]> {
  const root = scratch('au-python-download-');
  const jobs = specs.map((s, i) => ({ ...s, path: s.path ?? '', dst: join(root, String(i)) }));
  for (const job of jobs) mkdirSync(job.dst);
  const script = `
import json, sys
from mlflow import MlflowClient
for job in json.loads(sys.argv[1]):
    MlflowClient(tracking_uri=job['trackingUri']).download_artifacts(job['runId'], job['path'], job['dst'])
print('ok')
`;
  await runPython(script, { args: [JSON.stringify(jobs)], env });
  return jobs.map((j) => j.dst);
}

/** Extracts a .tar.gz with GNU tar into a new directory and returns it. */
export async function gnuTarExtract(archive: string): Promise<string> {
  const dst = scratch('au-tar-');
  await promisify(execFile)('tar', ['-xzf', archive, '-C', dst]);
  return dst;
}

export function fileSize(path: string): number {
  return statSync(path).size;
}
