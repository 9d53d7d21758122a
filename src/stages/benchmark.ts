/**
 * `uploadBenchmarkArtifacts`: benchmark result files (and directories), one result each.
 *
 * @module
 */
import { basename, posix } from 'node:path';
import { stat } from 'node:fs/promises';
import { InvalidArgumentError } from '../core/errors.js';
import type { UploadResult } from '../uploader/result.js';
import { checkLocalPath } from '../uploader/plan.js';
import { withStageUploader, type StageHelperOptions } from './stage-uploader.js';

/** Options of {@link uploadBenchmarkArtifacts}. */
export interface BenchmarkArtifactsOptions extends StageHelperOptions {
  /**
   * Result files or directories. A file goes to `<benchmark.results.artifactPath>/<name>`
   * (`benchmark/<name>`), a directory's files under `benchmark/<directory name>/`.
   */
  resultsPaths: readonly string[];
}

/**
 * Uploads benchmark results under the `benchmark` stage config (kind `results`), one
 * operation and one result per path, in the order given. Every path is checked before
 * anything is sent.
 *
 * @throws {LocalPathError} when a path does not exist.
 * @example
 * ```ts
 * const results = await uploadBenchmarkArtifacts({ resultsPaths: ['bench/latency.json', 'bench/plots'] });
 * for (const r of results) console.log(r.artifactPath, r.status);
 * ```
 */
export async function uploadBenchmarkArtifacts(options: BenchmarkArtifactsOptions): Promise<UploadResult[]> {
  const { resultsPaths, ...rest } = options;
  if (!Array.isArray(resultsPaths)) {
    throw new InvalidArgumentError('resultsPaths', 'uploadBenchmarkArtifacts() needs `resultsPaths`, an array of files or directories.');
  }
  const kinds: Array<'file' | 'directory'> = [];
  for (const path of resultsPaths) {
    const absolute = await checkLocalPath(path, 'file', 'uploadBenchmarkArtifacts').catch(async (error: unknown) => {
      // Directories are welcome too; anything else keeps the file error.
      if ((await stat(path).catch(() => undefined))?.isDirectory()) return undefined;
      throw error;
    });
    kinds.push(absolute === undefined ? 'directory' : 'file');
  }
  return withStageUploader('benchmark', 'uploadBenchmarkArtifacts', rest, async (uploader) => {
    const base = (await uploader.loadConfig()).benchmark.results.artifactPath;
    const results: UploadResult[] = [];
    for (const [i, path] of resultsPaths.entries()) {
      results.push(
        kinds[i] === 'file'
          ? await uploader.uploadFile(path, { kind: 'results' })
          : await uploader.uploadDirectory(path, { kind: 'results', artifactPath: posix.join(base, basename(path)) }),
      );
    }
    return results;
  });
}
