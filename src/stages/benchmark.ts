/**
 * `uploadBenchmarkArtifacts`: benchmark result files (and directories), one result each.
 *
 * @module
 */
import { basename, posix, resolve } from 'node:path';
import { stat } from 'node:fs/promises';
import { InvalidArgumentError } from '../core/errors.js';
import type { UploadResult } from '../uploader/result.js';
import { planAhead, runOperation } from '../uploader/artifact-uploader.js';
import { directoryOperation, fileOperation } from '../uploader/operation.js';
import { checkLocalPath } from '../uploader/plan.js';
import { stageOptions, withStageUploader, type StageHelper, type StageHelperOptions } from './stage-uploader.js';

/** Options of {@link uploadBenchmarkArtifacts}. */
export interface BenchmarkArtifactsOptions extends StageHelperOptions {
  /**
   * Result files or directories. A file goes to `<benchmark.results.artifactPath>/<name>`
   * (`benchmark/<name>`), a directory's files under `benchmark/<directory name>/`.
   */
  resultsPaths: readonly string[];
}

/** uploadBenchmarkArtifacts() as its options are checked: a field of these options not listed here is a compile error. */
const BENCHMARK_HELPER: StageHelper<BenchmarkArtifactsOptions> = {
  name: 'uploadBenchmarkArtifacts',
  stage: 'benchmark',
  fields: { resultsPaths: true },
};

/**
 * Uploads benchmark results under the `benchmark` stage config (kind `results`), one
 * operation and one result per path, in the order given. Every path is checked before
 * anything is sent, and so is every file name in the directories (as each upload checks it).
 *
 * @throws {LocalPathError} when a path does not exist, or a directory holds a name MLflow cannot
 *   store or a dangling symlink (before anything is sent).
 * @throws {InvalidArgumentError} when two different paths have the same name (they would land on
 *   the same artifact, `benchmark/<name>`).
 * @example
 * ```ts
 * const results = await uploadBenchmarkArtifacts({ resultsPaths: ['bench/latency.json', 'bench/plots'] });
 * for (const r of results) console.log(r.artifactPath, r.status);
 * ```
 */
export async function uploadBenchmarkArtifacts(options: BenchmarkArtifactsOptions): Promise<UploadResult[]> {
  const { resultsPaths, ...rest } = stageOptions(options, BENCHMARK_HELPER);
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
  return withStageUploader(BENCHMARK_HELPER, rest, async (uploader) => {
    const base = (await uploader.loadConfig()).benchmark.results.artifactPath;
    const context = { stage: uploader.stage, caller: 'uploadBenchmarkArtifacts' };
    const operations = resultsPaths.map((path, i) =>
      kinds[i] === 'file'
        ? fileOperation(context, 'uploadFile', [path], { kind: 'results' })
        : directoryOperation(context, path, { kind: 'results', artifactPath: posix.join(base, resultName(path)) }),
    );
    // The first operation's gate plans it before it sends; the others are planned now, so that a
    // name MLflow cannot store in the last directory does not throw after the first results went up.
    await planAhead(uploader, operations.slice(1));
    const results: UploadResult[] = [];
    for (const operation of operations) results.push(await runOperation(uploader, operation));
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
