/**
 * The embedded default: runs kept in a local directory (`./mlruns`) in MLflow's own FileStore
 * layout, so that the official Python client (`MlflowClient(tracking_uri="file:./mlruns")`)
 * and `mlflow ui --backend-store-uri ./mlruns` read them (both need
 * `MLFLOW_ALLOW_FILE_STORE=true` on MLflow 3.13 and later).
 *
 * ```
 * mlruns/
 *   .trash/                          deleted experiments
 *   0/meta.yaml                      the "Default" experiment, created on first use
 *   <exp id>/meta.yaml               numeric ids, as MLflow makes them
 *   <exp id>/<run id>/meta.yaml      written last, atomically
 *   <exp id>/<run id>/{metrics,params,artifacts,tags}/
 * ```
 *
 * Errors are the ones a server would answer with: `MlflowApiError` with MLflow's
 * `error_code` (`RESOURCE_DOES_NOT_EXIST` with status 404, `INVALID_PARAMETER_VALUE` with 400)
 * and a hint, so callers handle both kinds of store alike.
 *
 * @module
 */
import { randomBytes, randomInt, randomUUID } from '../core/node-crypto.js';
import { appendFile, mkdir, readFile, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { InvalidArgumentError, MlflowApiError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { sleep, throwIfAborted } from '../core/abort.js';
import { removeStaleTempFiles } from '../core/atomic-write.js';
import { assertNoInternalTags } from './internal-tags.js';
import { listLocalArtifactDirectory } from './local-artifact-listing.js';
import { fileUriToPath } from './tracking-uri.js';
import {
  atomicWriteFile,
  metricLine,
  parseMetaYaml,
  RUN_STATUS_CODES,
  runStatusFromStored,
  SOURCE_TYPE_LOCAL,
  TEMP_PREFIX,
  toMetaYaml,
  withLockFile,
} from './file-store-format.js';
import type {
  ArtifactFileInfo,
  ArtifactListing,
  CreateRunInput,
  Experiment,
  LogBatchInput,
  Metric,
  Run,
  RunInfo,
  TrackingClient,
  TrackingRequestOptions,
  UpdateRunInput,
} from './tracking-types.js';
import {
  assertEntityKey,
  assertExperimentId,
  assertExperimentName,
  assertNotDeleted,
  assertRunId,
  assertTagValue,
  normalizeBatch,
  normalizeListPath,
  type NormalizedBatch,
} from './tracking-validation.js';

const DEFAULT_EXPERIMENT_ID = '0';
const TRASH = '.trash';
/** Folder names MLflow keeps for itself at the root (runs are found by id, so an experiment's own are never listed). */
const ROOT_RESERVED = new Set(['models']);
/** MLflow's run-name tag, kept in sync with `run_name` in `meta.yaml`. */
const RUN_NAME_TAG = 'mlflow.runName';

/** Options of {@link FileTrackingStore}; a resolved `file` connection fits. */
export interface FileTrackingStoreOptions {
  /** Absolute path of the store (the `mlruns` directory). */
  root: string;
  /** How the store is named in messages. @default `file://<root>` */
  displayUri?: string;
  /** @default silent */
  logger?: Logger;
}

/**
 * A {@link TrackingClient} over a local MLflow FileStore directory.
 *
 * @example
 * ```ts
 * const store = new FileTrackingStore({ root: '/work/mlruns' });
 * const exp = await store.getOrCreateExperiment('fine-tune');
 * const run = await store.createRun({ experimentId: exp.experimentId, runName: 'lora-r8' });
 * run.info.artifactUri; // 'file:///work/mlruns/<exp id>/<run id>/artifacts'
 * ```
 */
export class FileTrackingStore implements TrackingClient {
  readonly kind = 'file';
  readonly trackingUri: string;
  /** Absolute path of the store. */
  readonly root: string;
  private readonly logger: Logger;
  private ready: Promise<void> | undefined;
  /** Directories whose left-over temp files this store has swept (once each per store). */
  private readonly swept = new Set<string>();

  constructor(options: FileTrackingStoreOptions) {
    this.root = options.root;
    this.trackingUri = options.displayUri ?? pathToFileURL(options.root).href;
    this.logger = options.logger ?? silentLogger;
  }

  describe(): string {
    return `local MLflow FileStore ${this.root}`;
  }

  // ───────────────────────────── experiments ─────────────────────────────

  async getExperimentByName(name: string, options: TrackingRequestOptions = {}): Promise<Experiment | undefined> {
    assertExperimentName(name);
    await this.ensureRoot(options);
    let deleted: Experiment | undefined;
    for (const { dir, inTrash } of await this.experimentDirs()) {
      const experiment = await this.readExperiment(dir).catch(() => undefined);
      if (experiment?.name !== name) continue;
      if (!inTrash && experiment.lifecycleStage !== 'deleted') return experiment;
      deleted ??= experiment;
    }
    return deleted;
  }

  async getExperiment(experimentId: string, options: TrackingRequestOptions = {}): Promise<Experiment> {
    assertExperimentId(experimentId);
    await this.ensureRoot(options);
    const dir = await this.findExperimentDir(experimentId);
    if (!dir) {
      throw this.error(404, 'RESOURCE_DOES_NOT_EXIST', 'experiments/get', `No experiment with id ${experimentId} in ${this.root}.`, {
        hint: 'Check experimentId / MLFLOW_EXPERIMENT_ID, or pick the experiment by name (experimentName / MLFLOW_EXPERIMENT_NAME), which creates it when missing.',
      });
    }
    return this.readExperiment(dir);
  }

  async createExperiment(name: string, options: TrackingRequestOptions = {}): Promise<string> {
    assertExperimentName(name);
    await this.ensureRoot(options);
    // The lock keeps two local processes from creating the same name twice; MLflow's own
    // FileStore has that race.
    return withLockFile(
      join(this.root, `${TEMP_PREFIX}experiments.lock`),
      async () => {
        const existing = await this.getExperimentByName(name, options);
        if (existing) {
          assertNotDeleted(existing, this.trackingUri);
          return existing.experimentId;
        }
        for (;;) {
          const id = newExperimentId();
          if (await this.findExperimentDir(id)) continue;
          if (await this.writeExperiment(id, name)) return id;
        }
      },
      (message) => this.logger.warn(message),
    );
  }

  async getOrCreateExperiment(name: string, options: TrackingRequestOptions = {}): Promise<Experiment> {
    const existing = await this.getExperimentByName(name, options);
    if (existing) {
      assertNotDeleted(existing, this.trackingUri);
      return existing;
    }
    return this.getExperiment(await this.createExperiment(name, options), options);
  }

  // ───────────────────────────── runs ─────────────────────────────

  async createRun(input: CreateRunInput, options: TrackingRequestOptions = {}): Promise<Run> {
    assertExperimentId(input.experimentId);
    // Refused as a server's client refuses them: the same run tags work on both stores.
    assertNoInternalTags(Object.keys(input.tags ?? {}), 'tags');
    const tags = normalizeBatch({ tags: input.tags ?? {} }).tags;
    const experiment = await this.getExperiment(input.experimentId, options).catch((error: unknown) => {
      if (error instanceof MlflowApiError && error.status === 404) {
        throw this.error(404, 'RESOURCE_DOES_NOT_EXIST', 'runs/create', `Cannot create a run: no experiment with id ${input.experimentId} in ${this.root}.`, {
          hint: 'Check experimentId / MLFLOW_EXPERIMENT_ID, or pick the experiment by name (experimentName / MLFLOW_EXPERIMENT_NAME), which creates it when missing.',
        });
      }
      throw error;
    });
    if (experiment.lifecycleStage !== 'active') {
      throw this.error(400, 'INVALID_STATE', 'runs/create', `Cannot create a run in experiment ${experiment.experimentId} ("${experiment.name}"): it is deleted.`, {
        hint: 'Restore the experiment or use another one.',
      });
    }
    const tagName = tags.find((t) => t.key === RUN_NAME_TAG)?.value;
    if (input.runName !== undefined && tagName !== undefined && input.runName !== tagName) {
      throw new InvalidArgumentError('runName', `runName "${input.runName}" and tag ${RUN_NAME_TAG}="${tagName}" disagree.`, {
        hint: 'Give the name once, as runName.',
      });
    }
    const runName = input.runName || tagName || generateRunName();
    if (tagName === undefined) tags.push({ key: RUN_NAME_TAG, value: runName });

    const runId = randomUUID().replaceAll('-', '');
    const experimentDir = (await this.findExperimentDir(experiment.experimentId)) as string;
    const runDir = join(experimentDir, runId);
    const artifactUri = `${experiment.artifactLocation.replace(/\/+$/, '')}/${runId}/artifacts`;
    await mkdir(runDir);
    for (const sub of ['metrics', 'params', 'artifacts', 'tags']) await mkdir(join(runDir, sub));
    for (const tag of tags) await this.writeEntity(runDir, 'tags', tag.key, tag.value);
    // meta.yaml last: until it exists, MLflow skips the directory instead of reading half a run.
    const meta = {
      artifact_uri: artifactUri,
      deleted_time: null,
      end_time: null,
      entry_point_name: '',
      experiment_id: experiment.experimentId,
      lifecycle_stage: 'active',
      run_id: runId,
      run_name: runName,
      source_name: '',
      source_type: SOURCE_TYPE_LOCAL,
      source_version: '',
      start_time: input.startTime ?? Date.now(),
      status: RUN_STATUS_CODES.RUNNING,
      tags: [],
      user_id: input.userId ?? '',
    };
    await this.writeAtomic(join(runDir, 'meta.yaml'), await toMetaYaml(meta), runDir);
    this.logger.debug(`created run ${runId} in ${runDir}`);
    return this.readRun(runDir);
  }

  async getRun(runId: string, options: TrackingRequestOptions = {}): Promise<Run> {
    return this.readRun(await this.findRunDir(runId, 'runs/get', options));
  }

  async updateRun(input: UpdateRunInput, options: TrackingRequestOptions = {}): Promise<RunInfo> {
    const runDir = await this.findRunDir(input.runId, 'runs/update', options);
    const meta = await this.readRunMeta(runDir);
    this.assertActive(meta.info, 'runs/update');
    if (input.status !== undefined) meta.raw.status = RUN_STATUS_CODES[input.status];
    if (input.endTime !== undefined) meta.raw.end_time = input.endTime;
    if (input.runName) {
      meta.raw.run_name = input.runName;
      await this.writeEntity(runDir, 'tags', RUN_NAME_TAG, input.runName);
    }
    await this.writeAtomic(join(runDir, 'meta.yaml'), await toMetaYaml(meta.raw), runDir);
    return (await this.readRunMeta(runDir)).info;
  }

  async logBatch(input: LogBatchInput, options: TrackingRequestOptions = {}): Promise<void> {
    assertRunId(input.runId);
    const batch = normalizeBatch(input);
    const runDir = await this.findRunDir(input.runId, 'runs/log-batch', options);
    const meta = await this.readRunMeta(runDir);
    this.assertActive(meta.info, 'runs/log-batch');
    await this.checkParamsUnchanged(runDir, input.runId, batch);
    for (const p of batch.params) await this.writeEntity(runDir, 'params', p.key, p.value);
    for (const m of batch.metrics) {
      const path = join(runDir, 'metrics', ...m.key.split('/'));
      await mkdir(join(path, '..'), { recursive: true });
      await appendFile(path, metricLine(m));
    }
    for (const t of batch.tags) await this.setTagIn(runDir, meta.raw, t.key, t.value);
  }

  async setTag(runId: string, key: string, value: string, options: TrackingRequestOptions = {}): Promise<void> {
    assertRunId(runId);
    assertEntityKey(key, 'tag');
    assertTagValue(key, value);
    const runDir = await this.findRunDir(runId, 'runs/set-tag', options);
    const meta = await this.readRunMeta(runDir);
    this.assertActive(meta.info, 'runs/set-tag');
    await this.setTagIn(runDir, meta.raw, key, value);
  }

  async listArtifacts(runId: string, path?: string, options: TrackingRequestOptions = {}): Promise<ArtifactListing> {
    const dir = normalizeListPath(path);
    const run = await this.getRun(runId, options);
    const rootUri = run.info.artifactUri;
    if (!/^file:/i.test(rootUri) && /^[a-zA-Z][\w+.-]+:/.test(rootUri)) {
      throw new InvalidArgumentError('runId', `Run ${runId} keeps its artifacts at ${rootUri}, which is not a local directory; the local store cannot list it.`, {
        hint: 'List the artifacts through the store of that URI (resolveArtifactStore).',
      });
    }
    const base = join(fileUriToPath(rootUri, process.cwd(), 'artifactUri'), ...(dir ? dir.split('/') : []));
    // The same listing as the `file` store's (local-artifact-listing.ts): what a model is
    // registered from is what an upload checked against.
    const files: ArtifactFileInfo[] = (await listLocalArtifactDirectory(base, dir, this.logger)).map((entry) =>
      entry.isDir ? { path: entry.path, isDir: true } : { path: entry.path, isDir: false, ...(entry.size !== undefined ? { fileSize: entry.size } : {}) },
    );
    return { rootUri, files };
  }

  // ───────────────────────────── internals ─────────────────────────────

  /** Creates the root, `.trash` and the Default experiment `0` on first use, as MLflow does. */
  private ensureRoot(options: TrackingRequestOptions): Promise<void> {
    // An AbortedError, as the REST client's: `signal.throwIfAborted()` threw the signal's own
    // reason (the CLI's `received SIGTERM`), which the CLI reported as a bug with exit 1, not 130.
    throwIfAborted(options.signal, 'The operation');
    this.ready ??= (async () => {
      await mkdir(join(this.root, TRASH), { recursive: true });
      if (!(await this.findExperimentDir(DEFAULT_EXPERIMENT_ID))) await this.writeExperiment(DEFAULT_EXPERIMENT_ID, 'Default');
    })().catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    return this.ready;
  }

  /** Writes a new experiment; `false` when the id is taken (another process won). */
  private async writeExperiment(id: string, name: string): Promise<boolean> {
    const dir = join(this.root, id);
    try {
      await mkdir(dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    }
    const now = Date.now();
    const meta = {
      artifact_location: pathToFileURL(dir).href,
      creation_time: now,
      // Written by MLflow 3.x; older readers drop keys they do not know.
      effective_trace_archival_retention: null,
      experiment_id: id,
      last_update_time: now,
      lifecycle_stage: 'active',
      name,
      trace_location: null,
      workspace: 'default',
    };
    await this.writeAtomic(join(dir, 'meta.yaml'), await toMetaYaml(meta), dir);
    this.logger.debug(`created experiment ${id} ("${name}") in ${dir}`);
    return true;
  }

  /** Active experiment folders first, then the trash, as MLflow searches them. */
  private async experimentDirs(): Promise<Array<{ dir: string; inTrash: boolean }>> {
    const list = async (parent: string, inTrash: boolean) => {
      const entries = await readdir(parent, { withFileTypes: true }).catch(() => []);
      return entries
        .filter((e) => e.isDirectory() && !e.name.endsWith(TRASH) && !ROOT_RESERVED.has(e.name) && !e.name.startsWith(TEMP_PREFIX))
        .sort((a, b) => (a.name < b.name ? -1 : 1))
        .map((e) => ({ dir: join(parent, e.name), inTrash }));
    };
    return [...(await list(this.root, false)), ...(await list(join(this.root, TRASH), true))];
  }

  private async findExperimentDir(id: string): Promise<string | undefined> {
    for (const dir of [join(this.root, id), join(this.root, TRASH, id)]) {
      if (await isDirectory(dir)) return dir;
    }
    return undefined;
  }

  private async readExperiment(dir: string): Promise<Experiment> {
    const raw = await this.readMeta(dir, 'experiment');
    const experimentId = String(raw.experiment_id ?? basename(dir));
    return {
      experimentId,
      name: String(raw.name ?? ''),
      artifactLocation: String(raw.artifact_location ?? pathToFileURL(dir).href),
      lifecycleStage: String(raw.lifecycle_stage ?? 'active'),
      ...(typeof raw.creation_time === 'number' ? { creationTime: raw.creation_time } : {}),
      ...(typeof raw.last_update_time === 'number' ? { lastUpdateTime: raw.last_update_time } : {}),
      tags: await readEntities(join(dir, 'tags')),
    };
  }

  /**
   * The run's folder. Like MLflow, a folder only counts as a run when it has `metrics/`,
   * `params/` and `artifacts/` (which also keeps a `meta.yaml` inside someone's artifacts
   * from passing as a run).
   */
  private async findRunDir(runId: string, endpoint: string, options: TrackingRequestOptions): Promise<string> {
    assertRunId(runId);
    await this.ensureRoot(options);
    for (const { dir } of await this.experimentDirs()) {
      const runDir = join(dir, runId);
      if (!(await isDirectory(runDir))) continue;
      const parts = await Promise.all(['metrics', 'params', 'artifacts'].map((sub) => isDirectory(join(runDir, sub))));
      if (parts.every(Boolean)) return runDir;
    }
    // MLflow 3.7+ defaults to sqlite:///mlflow.db, not ./mlruns (unless ./mlruns holds data): a
    // Python parent that logged its run there, with no tracking URI set, leaves one beside it.
    const database = join(dirname(this.root), 'mlflow.db');
    const sqliteDefault = (await stat(database).then((info) => info.isFile(), () => false))
      ? ` ${database} is beside it: MLflow 3.7+ keeps runs in sqlite:///mlflow.db when no tracking URI is set, which this library cannot write. Serve it (\`mlflow server --backend-store-uri sqlite:///${database}\`) and set MLFLOW_TRACKING_URI to its http:// address, in the parent too.`
      : '';
    throw this.error(404, 'RESOURCE_DOES_NOT_EXIST', endpoint, `Run ${runId} not found in ${this.root}.`, {
      hint: `The run id does not exist in this local store. Check that runId / MLFLOW_RUN_ID and the tracking URI (the trackingUri option, else MLFLOW_TRACKING_URI) point to the same store (a run made on a tracking server is not in ./mlruns).${sqliteDefault}`,
    });
  }

  private async readRunMeta(runDir: string): Promise<{ raw: Record<string, unknown>; info: RunInfo }> {
    const raw = await this.readMeta(runDir, 'run');
    const runId = String(raw.run_id ?? raw.run_uuid ?? '');
    if (runId !== basename(runDir)) {
      throw this.error(500, 'INVALID_STATE', 'runs/get', `Run folder ${runDir} holds the meta.yaml of run "${runId}".`, {
        hint: 'The store was edited by hand or copied badly; fix or remove that folder.',
      });
    }
    const info: RunInfo = {
      runId,
      runName: typeof raw.run_name === 'string' ? raw.run_name : '',
      experimentId: String(raw.experiment_id ?? basename(join(runDir, '..'))),
      userId: typeof raw.user_id === 'string' ? raw.user_id : '',
      status: runStatusFromStored(raw.status),
      ...(typeof raw.start_time === 'number' ? { startTime: raw.start_time } : {}),
      ...(typeof raw.end_time === 'number' ? { endTime: raw.end_time } : {}),
      artifactUri: String(raw.artifact_uri ?? pathToFileURL(join(runDir, 'artifacts')).href),
      lifecycleStage: String(raw.lifecycle_stage ?? 'active'),
    };
    return { raw, info };
  }

  private async readRun(runDir: string): Promise<Run> {
    const { info } = await this.readRunMeta(runDir);
    const tags = await readEntities(join(runDir, 'tags'));
    if (!info.runName && tags[RUN_NAME_TAG]) info.runName = tags[RUN_NAME_TAG];
    return {
      info,
      data: {
        metrics: await readLatestMetrics(join(runDir, 'metrics')),
        params: await readEntities(join(runDir, 'params')),
        tags,
      },
    };
  }

  private async readMeta(dir: string, what: 'experiment' | 'run'): Promise<Record<string, unknown>> {
    const file = join(dir, 'meta.yaml');
    let parsed: Record<string, unknown> | undefined;
    // Another process may be between mkdir and writing meta.yaml: look again briefly, as
    // MLflow's `_read_yaml` does.
    for (let attempt = 0; attempt < 3 && !parsed; attempt++) {
      if (attempt > 0) await sleep(50 * attempt);
      try {
        parsed = await parseMetaYaml(await readFile(file, 'utf8'));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
          throw this.error(500, 'INVALID_STATE', what === 'run' ? 'runs/get' : 'experiments/get', `Cannot read ${file}: ${(error as Error).message}`, {
            hint: 'The file is corrupt or unreadable; fix or remove it.',
            cause: error,
          });
        }
      }
    }
    if (!parsed) {
      throw this.error(500, 'INVALID_STATE', what === 'run' ? 'runs/get' : 'experiments/get', `The ${what} folder ${dir} has no usable meta.yaml.`, {
        hint: 'It may still be being created by another process, or was left half-made; remove the folder if it stays so.',
      });
    }
    return parsed;
  }

  private assertActive(info: RunInfo, endpoint: string): void {
    if (info.lifecycleStage !== 'active') {
      throw this.error(400, 'INVALID_PARAMETER_VALUE', endpoint, `The run ${info.runId} must be in the 'active' state; it is ${info.lifecycleStage}.`, {
        hint: 'The run has been deleted; restore it in the MLflow UI or log to another run.',
      });
    }
  }

  private async checkParamsUnchanged(runDir: string, runId: string, batch: NormalizedBatch): Promise<void> {
    for (const p of batch.params) {
      const current = await readFile(join(runDir, 'params', ...p.key.split('/')), 'utf8').catch(() => undefined);
      if (current !== undefined && current !== p.value) {
        throw this.error(
          400,
          'INVALID_PARAMETER_VALUE',
          'runs/log-batch',
          `Changing param values is not allowed. Param with key='${p.key}' was already logged with value='${current}' for run ID='${runId}'. Attempted logging new value '${p.value}'.`,
          { hint: 'Params are write-once in MLflow: log the new value under another key, or as a tag or metric.' },
        );
      }
    }
  }

  private async setTagIn(runDir: string, meta: Record<string, unknown>, key: string, value: string): Promise<void> {
    await this.writeEntity(runDir, 'tags', key, value);
    if (key === RUN_NAME_TAG && meta.run_name !== value) {
      // MLflow keeps meta.yaml's run_name in step with the tag.
      meta.run_name = value;
      await this.writeAtomic(join(runDir, 'meta.yaml'), await toMetaYaml(meta), runDir);
    }
  }

  /**
   * {@link atomicWriteFile} with its temp file in `tempDir`, which is first swept (once per
   * store) of the temp files a killed process left there: a SIGKILL between the write and the
   * rename leaves one behind, and nothing else would ever remove it.
   */
  private async writeAtomic(target: string, data: string, tempDir: string): Promise<void> {
    if (!this.swept.has(tempDir)) {
      this.swept.add(tempDir);
      const removed = await removeStaleTempFiles(tempDir, TEMP_PREFIX);
      if (removed.length > 0) this.logger.debug(`removed ${removed.length} temp file(s) a killed process left in ${tempDir}`);
    }
    await atomicWriteFile(target, data, tempDir);
  }

  /** A tag or param file: raw value, no trailing newline, written atomically. */
  private async writeEntity(runDir: string, folder: 'tags' | 'params', key: string, value: string): Promise<void> {
    const target = join(runDir, folder, ...key.split('/'));
    if (key.includes('/')) await mkdir(join(target, '..'), { recursive: true });
    // The temp file goes in the run folder, not in tags/ or params/, where a reader would
    // take it for an entry.
    await this.writeAtomic(target, value, runDir);
  }

  private error(
    status: number,
    errorCode: string,
    endpoint: string,
    message: string,
    options: { hint?: string; cause?: unknown },
  ): MlflowApiError {
    return new MlflowApiError(status, errorCode, `mlflow/${endpoint}`, message, { url: this.trackingUri, ...options });
  }
}

/** Every file under `dir` as `{ relative/posix/path: content }` (tags, params). */
async function readEntities(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const rel of await walkFiles(dir)) out[rel] = await readFile(join(dir, ...rel.split('/')), 'utf8');
  return out;
}

/** The latest value of each metric file, MLflow's way: the largest (step, timestamp, value). */
async function readLatestMetrics(dir: string): Promise<Metric[]> {
  const metrics: Metric[] = [];
  for (const key of await walkFiles(dir)) {
    const text = await readFile(join(dir, ...key.split('/')), 'utf8');
    let best: Metric | undefined;
    for (const line of text.split('\n')) {
      const parts = line.trim().split(' ');
      if (parts.length < 2 || parts[0] === '') continue;
      const m: Metric = { key, timestamp: Number(parts[0]), value: parsePythonFloat(parts[1] ?? ''), step: parts.length >= 3 ? Number(parts[2]) : 0 };
      if (!best || m.step > best.step || (m.step === best.step && (m.timestamp > best.timestamp || (m.timestamp === best.timestamp && m.value > best.value)))) {
        best = m;
      }
    }
    if (best) metrics.push(best);
  }
  return metrics;
}

function parsePythonFloat(text: string): number {
  const t = text.toLowerCase();
  if (t === 'nan') return Number.NaN;
  if (t === 'inf' || t === 'infinity') return Infinity;
  if (t === '-inf' || t === '-infinity') return -Infinity;
  return Number(text);
}

async function walkFiles(dir: string, prefix = ''): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const out: string[] = [];
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (entry.name.startsWith(TEMP_PREFIX)) continue;
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await walkFiles(join(dir, entry.name), rel)));
    else if (entry.isFile()) out.push(rel);
  }
  return out;
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/**
 * An 18-digit experiment id without a leading zero, like MLflow's
 * `_generate_unique_integer_id` (3.x only finds data in digit-named folders).
 */
function newExperimentId(): string {
  const head = String(randomInt(1, 10));
  let tail = '';
  while (tail.length < 17) tail += String(randomBytes(4).readUInt32BE() % 1_000_000_000).padStart(9, '0');
  return head + tail.slice(0, 17);
}

const ADJECTIVES = ['amber', 'bold', 'brisk', 'calm', 'clever', 'dapper', 'eager', 'gentle', 'keen', 'lucky', 'merry', 'nimble', 'quiet', 'rare', 'sunny', 'swift', 'tidy', 'vivid', 'wise', 'zesty'];
const ANIMALS = ['ant', 'bat', 'bear', 'cat', 'crab', 'deer', 'doe', 'eel', 'finch', 'fox', 'gnat', 'hare', 'lark', 'mole', 'owl', 'ram', 'seal', 'slug', 'trout', 'wolf'];

/** `<adjective>-<animal>-<n>`, the shape of the names MLflow makes up. */
function generateRunName(): string {
  return `${ADJECTIVES[randomInt(ADJECTIVES.length)]}-${ANIMALS[randomInt(ANIMALS.length)]}-${randomInt(1000)}`;
}
