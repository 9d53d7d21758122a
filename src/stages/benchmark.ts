/**
 * `uploadBenchmarkArtifacts`: benchmark result files (and directories), one result each.
 *
 * @module
 */
import { basename, posix, resolve } from 'node:path';
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
 * @throws {InvalidArgumentError} when two different paths have the same name (they would land on
 *   the same artifact, `benchmark/<name>`).
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
  assertDistinctNames(resultsPaths);
  return withStageUploader('benchmark', 'uploadBenchmarkArtifacts', rest, async (uploader) => {
    const base = (await uploader.loadConfig()).benchmark.results.artifactPath;
    const results: UploadResult[] = [];
    for (const [i, path] of resultsPaths.entries()) {
      results.push(
        kinds[i] === 'file'
          ? await uploader.uploadFile(path, { kind: 'results' })
          : await uploader.uploadDirectory(path, { kind: 'results', artifactPath: posix.join(base, resultName(path)) }),
      );
    }
    return results;
  });
}

/**
 * The name a result lands under: that of the file or directory the path reaches. `basename` of
 * the path as given is `.` for `out/plots/.` and `..` for `out/plots/sub/..`, which put a
 * directory's files straight into `benchmark/` or refused it as artifact path `.`.
 */
function resultName(path: string): string {
  return basename(resolve(path));
}

/**
 * Each path goes to `benchmark/<its name>`: two different paths of one name (`r1/res.json` and
 * `r2/res.json`, or a file and a directory) would land on the same artifact, the second
 * replacing or mixing into the first. Refused before anything is sent.
 */
function assertDistinctNames(paths: readonly string[]): void {
  const byName = new Map<string, string>();
  for (const path of paths) {
    const name = resultName(path);
    const earlier = byName.get(name);
    if (earlier !== undefined && earlier !== resolve(path)) {
      throw new InvalidArgumentError('resultsPaths', `${earlier} and ${path} would both be uploaded as benchmark/${name}: the second would replace the first.`, {
        hint: 'Give the results different names, or upload them in separate calls with different artifact paths.',
      });
    }
    byName.set(name, resolve(path));
  }
}
