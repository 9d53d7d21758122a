/**
 * Getting a model's files into its MLflow 3 logged model (`models/<id>/artifacts`), the place
 * MLflow 3.17 accepts as a version's source together with its `model_id`: from the local files
 * when the caller has them (the stage helpers do), else copied from the run's artifacts
 * through the tracking server (downloaded to a temp directory, uploaded, temp removed).
 *
 * @module
 */
import { rm, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { makeTempDir } from '../core/atomic-write.js';
import type { Env } from '../core/env.js';
import { RegistryError } from '../core/errors.js';
import type { MlflowConnection } from '../mlflow/connection.js';
import type { MlflowRegistryClient } from '../mlflow/registry-client.js';
import type { TrackingClient } from '../mlflow/tracking-types.js';
import { planDirectory, type PlannedFile } from '../uploader/plan.js';
import type { StoreOptions } from '../stores/artifact-store.js';
import { resolveArtifactStore } from '../stores/resolve.js';
import { uploadPlannedFiles } from '../uploader/transfer.js';

/** One file of the source in the run. */
export interface RunSourceFile {
  /** Path relative to the run's artifact root. */
  runPath: string;
  /** Path relative to the model's root. */
  modelPath: string;
  /** Size in bytes, as the run's listing gives it (absent when the server leaves it out). */
  size?: number;
}

/** Where the model's files are in the run: a directory's files, or a single file. */
export interface RunSource {
  kind: 'directory' | 'file';
  files: RunSourceFile[];
}

/** Largest directory tree walked in the run, against a listing that never ends. */
export const MAX_LISTED_ENTRIES = 100_000;

/**
 * The files under `artifactPath` in the run (a directory, walked, or one file).
 *
 * @param maxFiles Files walked at the most ({@link MAX_LISTED_ENTRIES}; tests lower it).
 * @throws {RegistryError} `REGISTRY_SOURCE_NOT_FOUND` when the run has nothing there,
 *   `REGISTRY_SOURCE_TOO_LARGE` when the walk reached `maxFiles` with directories left.
 */
export async function findRunSource(tracking: TrackingClient, runId: string, artifactPath: string, signal?: AbortSignal, maxFiles = MAX_LISTED_ENTRIES): Promise<RunSource> {
  const files: RunSourceFile[] = [];
  const pending = [artifactPath];
  while (pending.length > 0 && files.length < maxFiles) {
    const dir = pending.shift()!;
    for (const entry of (await tracking.listArtifacts(runId, dir, { signal })).files) {
      if (entry.isDir) pending.push(entry.path);
      else files.push({ runPath: entry.path, modelPath: posix.relative(artifactPath, entry.path), ...(entry.fileSize !== undefined ? { size: entry.fileSize } : {}) });
    }
  }
  // Stopped with directories unread: registering what was found would make a partial model.
  if (pending.length > 0) {
    throw new RegistryError('REGISTRY_SOURCE_TOO_LARGE', `Run ${runId} has more than ${maxFiles} files under "${artifactPath}" (${pending.length} of its directories were not listed); a model of only some of them would be partial, so nothing was registered.`, {
      hint: 'Register the model folder itself (e.g. "onnx" or "checkpoint"), not a folder that holds many runs\' worth of files, or pass localPath.',
    });
  }
  if (files.length > 0) return { kind: 'directory', files };
  // Not a directory: maybe one file, listed in its parent.
  const parent = posix.dirname(artifactPath) === '.' ? '' : posix.dirname(artifactPath);
  const siblings = (await tracking.listArtifacts(runId, parent, { signal })).files;
  const file = siblings.find((e) => !e.isDir && e.path === artifactPath);
  if (file) return { kind: 'file', files: [{ runPath: artifactPath, modelPath: posix.basename(artifactPath), ...(file.fileSize !== undefined ? { size: file.fileSize } : {}) }] };
  const there = siblings.map((e) => (e.isDir ? `${e.path}/` : e.path)).slice(0, 10);
  throw new RegistryError('REGISTRY_SOURCE_NOT_FOUND', `Run ${runId} has no artifacts at "${artifactPath}"${there.length > 0 ? ` (at "${parent || '.'}" it has: ${there.join(', ')})` : ''}.`, {
    hint: 'Pass the artifactPath the model was uploaded to (e.g. "onnx" for uploadConversionArtifacts), or upload the model to the run first.',
  });
}

/**
 * The model's files on local disk (`localPath`: a directory, or one file), laid out as the run's
 * source has them, after checking that they are the files the run holds: the same paths, and
 * the same sizes where the run's listing gives them. A version's lineage names the run's files;
 * its bytes come from here, so a folder that is not what was uploaded (another checkpoint, a
 * file added or removed since) would make a version whose files are not its run's.
 *
 * @throws {RegistryError} `REGISTRY_LOCAL_MISMATCH`, naming up to 5 differences.
 */
export async function localModelFiles(localPath: string, source: RunSource, where: { runId: string; artifactPath: string }): Promise<PlannedFile[]> {
  const files: PlannedFile[] =
    source.kind === 'directory'
      ? (await planDirectory(localPath)).files
      : // One file: placed under the run's name for it, whatever it is called here.
        [{ localPath, artifactPath: source.files[0]!.modelPath, size: (await stat(localPath)).size }];
  const local = new Map(files.map((f) => [f.artifactPath, f]));
  const differences: string[] = [];
  for (const file of source.files) {
    const here = local.get(file.modelPath);
    if (!here) differences.push(`${file.modelPath} is in the run, not in ${localPath}`);
    else if (file.size !== undefined && here.size !== file.size) differences.push(`${file.modelPath} has ${here.size} bytes here, ${file.size} in the run`);
    local.delete(file.modelPath);
  }
  for (const extra of local.keys()) differences.push(`${extra} is in ${localPath}, not in the run`);
  if (differences.length > 0) {
    throw new RegistryError(
      'REGISTRY_LOCAL_MISMATCH',
      `${localPath} does not hold the files run ${where.runId} has at "${where.artifactPath}" (${differences.length} difference(s): ${differences.slice(0, 5).join('; ')}${differences.length > 5 ? '; ...' : ''}). Nothing was registered.`,
      { hint: `Pass as localPath the folder that was uploaded to "${where.artifactPath}", or leave localPath out to copy the run's own files.` },
    );
  }
  return files;
}

/** What {@link placeModelFiles} takes. */
export interface PlaceModelFilesInput {
  connection: Extract<MlflowConnection, { kind: 'rest' }>;
  registry: MlflowRegistryClient;
  /** The logged model's artifact root (`mlflow-artifacts:/<exp>/models/<id>/artifacts`, `s3://...`). */
  artifactUri: string;
  runId: string;
  source: RunSource;
  /** The same files on local disk ({@link localModelFiles}, checked). Uploaded instead of copied from the run. */
  localFiles?: PlannedFile[];
  /** The environment the caller was given (the store's settings: `MLFLOW_S3_ENDPOINT_URL`, ...). @default process.env */
  env?: Env | undefined;
  /** The store settings (`s3`, `gcs`, `azure`, `multipart`) the caller gave. */
  store?: StoreOptions;
  signal?: AbortSignal;
}

/**
 * Puts the model's files at the logged model's artifact root, keeping their layout relative to
 * the source. Throws the first upload error.
 */
export async function placeModelFiles(input: PlaceModelFilesInput): Promise<{ files: number; bytes: number }> {
  const store = resolveArtifactStore(input.artifactUri, { ...input.store, connection: input.connection, env: input.env, logger: input.connection.logger });
  let files: PlannedFile[];
  let temp: string | undefined;
  try {
    if (input.localFiles !== undefined) {
      files = input.localFiles;
    } else {
      // Named for this process, and made after the directories of killed registrations (a SIGKILL
      // runs no `finally`) are removed: each stayed in the temp dir for good, up to the model's size.
      temp = await makeTempDir('artifact-uploader-register-');
      files = [];
      for (const file of input.source.files) {
        const local = join(temp, ...file.modelPath.split('/'));
        await input.registry.downloadRunArtifact(input.runId, file.runPath, local, { signal: input.signal });
        files.push({ localPath: local, artifactPath: file.modelPath, size: (await stat(local)).size });
      }
    }
    const outcomes = await uploadPlannedFiles(store, { files }, { concurrency: 4, logger: input.connection.logger, ...(input.signal ? { signal: input.signal } : {}) });
    const failed = outcomes.find((o) => o.status !== 'uploaded');
    if (failed) throw failed.error;
    return { files: outcomes.length, bytes: outcomes.reduce((sum, o) => sum + o.bytes, 0) };
  } finally {
    if (temp) await rm(temp, { recursive: true, force: true });
  }
}
