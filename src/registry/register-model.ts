/**
 * `registerModel`: a model the run already has (or that was just uploaded to it) becomes a
 * version of a registered model in MLflow's Model Registry, with MLflow 3's lineage:
 *
 * ```
 * run artifacts (artifactPath) ──copy──▶ logged model models/<id>/artifacts (READY, a run output)
 *                                          │
 *                 registered model ◀── version (source models:/<id>, run_id, model_id) ── aliases, tags
 * ```
 *
 * Exactly once per `idempotencyKey`: the version carries the key as a tag, a repeated call
 * finds it and makes nothing new, and of callers racing with one key the lowest version wins
 * while the others delete what they made. Nothing is left half-made: a failure removes the
 * version it created and marks its logged model FAILED (then deletes it), aliases are set
 * only on a READY version, and a call with a key removes the PENDING logged models that killed
 * calls with the key left (a SIGKILL runs no undo), and registers the READY one a call killed
 * between the copy and the version left, instead of copying the files again.
 *
 * @module
 */
import { AbortedError, InvalidArgumentError, RegistryError } from '../core/errors.js';
import type { Env } from '../core/env.js';
import type { Logger } from '../core/logger.js';
import { sleep } from '../core/abort.js';
import { isWriteRaceError } from '../core/retry.js';
import { artifactPathProblem, invalidArtifactPathError } from '../mlflow/artifacts-api.js';
import { resolveMlflowConnection, type MlflowConnection, type MlflowConnectionOptions } from '../mlflow/connection.js';
import { assertNoInternalTags, IDEMPOTENCY_KEY_TAG, REGISTERED_MODEL_TAG, withoutInternalTags } from '../mlflow/internal-tags.js';
import { MlflowRegistryClient, type CreateModelVersionInput } from '../mlflow/registry-client.js';
import type { LoggedModel, ModelVersion, ModelVersionStatus } from '../mlflow/registry-types.js';
import { assertIdempotencyKey, assertModelAlias, assertRegisteredModelName, registryTagList, REGISTRY_LIMITS } from '../mlflow/registry-validation.js';
import { characterCount } from '../mlflow/tracking-validation.js';
import { isDoesNotExist, MlflowRestClient } from '../mlflow/rest-tracking-client.js';
import { resolveMlflowRunId, type ActiveRun } from '../run/run-context.js';
import type { StoreOptions } from '../stores/artifact-store.js';
import { assertOnlyKnown } from '../uploader/options.js';
import { checkLocalPath } from '../uploader/plan.js';
import { findRunSource, localModelFiles, placeModelFiles, type RunSource } from './model-files.js';

// The public constant lives with the other internal tags (one list for every path); exported from here as before.
export { IDEMPOTENCY_KEY_TAG } from '../mlflow/internal-tags.js';

/**
 * Default of {@link RegisterModelOptions.readyTimeoutMs}: 5 minutes.
 *
 * @example
 * ```ts
 * await registerModel({ name: 'big-model', artifactPath: 'checkpoint', readyTimeoutMs: 2 * DEFAULT_READY_TIMEOUT_MS });
 * ```
 */
export const DEFAULT_READY_TIMEOUT_MS = 300_000;

/**
 * Options of {@link registerModel}; the connection options (`trackingUri`, `token`, `retry`, ...)
 * too, and the store options (`s3`, `gcs`, `azure`, `multipart`) for writing the files into the
 * logged model's artifact location, as for an upload.
 */
export interface RegisterModelOptions extends MlflowConnectionOptions, StoreOptions {
  /** The registered model's name (created when missing). At most 256 characters; no `/` or `:` (MLflow refuses them), and no `?`, `@`, tab or line break (no `models:/` URI can address them). */
  name: string;
  /**
   * The run the model comes from. Without `trackingUri`, an active run started on its own
   * tracking URI is registered there (as uploads to it go there).
   * @default the active run (`withRun`), else MLFLOW_RUN_ID
   */
  runId?: string;
  /** The model's folder (or single file) in the run's artifacts, e.g. `onnx` or `checkpoint`. */
  artifactPath: string;
  /**
   * The same files on local disk (a directory, or one file). When given, they are uploaded to
   * the logged model directly instead of being copied from the run through the server.
   * @default copy from the run
   */
  localPath?: string;
  /** Alias(es) to point at the new version, e.g. `champion`. Set last, on a READY version. */
  alias?: string | readonly string[];
  /** Tags of the version. */
  tags?: Record<string, string>;
  /** The version's description. */
  description?: string;
  /**
   * Makes the call exactly-once: a later call with the same key (a retry, a re-run of the
   * pipeline step, a racing process) returns that version and makes no new one. 1 to 250 of
   * letters, digits and `_ . : @ / + = -`.
   * @default none: every call makes a new version
   */
  idempotencyKey?: string;
  /** Cancels the call; what it had made by then is removed. */
  signal?: AbortSignal;
  /**
   * How long to wait for the version to become READY, in milliseconds.
   * @default 300000
   */
  readyTimeoutMs?: number;
}

/** What {@link registerModel} returns: the version, READY, with its aliases. */
export interface RegisterModelResult {
  /** The registered model's name. */
  name: string;
  /** The version number, as MLflow writes it (`"3"`). */
  version: string;
  /** The MLflow 3 logged model holding the files (`m-...`). */
  modelId: string;
  /** The version's source, `models:/<model id>`. */
  source: string;
  /** The run the model came from. */
  runId: string;
  /** Aliases pointing at the version. */
  aliases: string[];
  /** Always `READY` on return. */
  status: ModelVersionStatus;
  /** The version's tags, without those artifact-uploader keeps for itself (the idempotency key's). */
  tags: Record<string, string>;
  /** `models:/<name>/<version>`, for `mlflow.artifacts.download_artifacts` and friends. */
  modelUri: string;
  /** False when an earlier call with the same `idempotencyKey` had made the version. */
  created: boolean;
  /** Files placed in the logged model by this call (0 when `created` is false, and when the call registered the files an earlier call with its `idempotencyKey` had copied before it was killed). */
  files: number;
}

/**
 * Registers a model from a run's artifacts as a new version of a registered model (MLflow 3
 * logged model, run lineage, aliases), exactly once per `idempotencyKey`. Needs an MLflow
 * tracking server: the embedded `./mlruns` store is refused (see docs/registry.md).
 *
 * @throws {RegistryError} `REGISTRY_INVALID_NAME`, `REGISTRY_INVALID_ALIAS`, `REGISTRY_SOURCE_NOT_FOUND`, `REGISTRY_SOURCE_TOO_LARGE`,
 *   `REGISTRY_UNAVAILABLE` (a server without a Model Registry), `REGISTRY_UNSUPPORTED_STORE` (`./mlruns`),
 *   `REGISTRY_VERSION_FAILED`, `REGISTRY_VERSION_TIMEOUT`; `REGISTRY_INCOMPLETE` when the call failed
 *   after making its version and could not remove it (the failure is its `cause`).
 * @throws {MlflowApiError} for a missing run and other refusals of the server.
 * @example
 * ```ts
 * const version = await registerModel({
 *   name: 'fraud-classifier',
 *   runId: '0a1b2c3d4e5f60718293a4b5c6d7e8f9',
 *   artifactPath: 'onnx',
 *   alias: 'champion',
 *   idempotencyKey: 'convert-job-1234',
 *   trackingUri: 'http://127.0.0.1:5000',
 * });
 * console.log(version.modelUri, version.aliases); // models:/fraud-classifier/3 ['champion']
 * ```
 */
export async function registerModel(options: RegisterModelOptions): Promise<RegisterModelResult> {
  return registerModelOfRun(options);
}

/**
 * Every option {@link registerModel} reads. A record rather than a list, so that an option added
 * to {@link RegisterModelOptions} (or to the connection and store options it extends) and not
 * here is a compile error.
 */
const REGISTER_MODEL_OPTION_NAMES: Record<keyof RegisterModelOptions, true> = {
  name: true,
  runId: true,
  artifactPath: true,
  localPath: true,
  alias: true,
  tags: true,
  description: true,
  idempotencyKey: true,
  signal: true,
  readyTimeoutMs: true,
  trackingUri: true,
  token: true,
  azureCredential: true,
  username: true,
  password: true,
  credentialsFile: true,
  insecureTls: true,
  caCertPath: true,
  clientCertPath: true,
  retry: true,
  logger: true,
  onRetry: true,
  env: true,
  multipart: true,
  s3: true,
  gcs: true,
  azure: true,
};
const REGISTER_MODEL_OPTIONS = Object.keys(REGISTER_MODEL_OPTION_NAMES);

/**
 * {@link registerModel}, with the active run a stage helper's upload went to (its id passed as
 * `runId`): the registration then goes through that run's connection, as the upload did; and
 * with `onlyFiles`, the run paths the upload wrote, the model is those files alone, not
 * whatever else an earlier upload left in the same folder of the run.
 * @internal
 */
export async function registerModelOfRun(options: RegisterModelOptions, uploadedTo?: ActiveRun, onlyFiles?: readonly string[]): Promise<RegisterModelResult> {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', 'registerModel() needs an options object.');
  assertOnlyKnown(options, REGISTER_MODEL_OPTIONS, { method: 'registerModel()', docs: 'docs/registry.md' });
  const { name, artifactPath, description, idempotencyKey, signal } = options;
  const { aliases, tags, readyTimeoutMs } = checkRegistration(options);
  if (typeof artifactPath !== 'string') throw new InvalidArgumentError('artifactPath', 'registerModel() needs `artifactPath`, the model folder (or file) in the run.');
  assertRunArtifactPath(artifactPath);
  const localPath = options.localPath === undefined ? undefined : await checkLocalPathOfEitherKind(options.localPath);
  const ref = resolveMlflowRunId(options.runId, options.env ? { env: options.env } : {});
  const runId = ref?.runId;
  if (!runId) {
    throw new InvalidArgumentError('runId', 'registerModel() needs the run the model comes from: pass runId, or run inside withRun() or with MLFLOW_RUN_ID set.', {
      hint: 'The model must be in the run\'s artifacts (or be uploaded with it): register after uploading, with the same run id.',
    });
  }

  const run = uploadedTo?.runId === runId ? uploadedTo : ref?.run;
  const { connection, owned } = registrationConnection(options, run);
  try {
    if (connection.kind !== 'rest') throw fileStoreRefused(connection.root);
    const flow = new Registration(connection, { name, runId, artifactPath, aliases, tags, description, idempotencyKey, signal, readyTimeoutMs, localPath, onlyFiles, env: options.env, store: { multipart: options.multipart, s3: options.s3, gcs: options.gcs, azure: options.azure } });
    return await flow.run();
  } finally {
    if (owned && connection.kind === 'rest') await connection.http.close().catch(() => undefined);
  }
}

/**
 * The connection a registration goes through, chosen as an upload's is (`uploader/target.ts`):
 * the `trackingUri` option, else the connection of the active run the id came from (a run
 * `startRun` made on its own tracking URI), else `MLFLOW_TRACKING_URI`, else `./mlruns`.
 * `owned`: made here, and to be closed by the caller (the run's own stays open).
 * @internal
 */
export function registrationConnection(options: MlflowConnectionOptions, run: ActiveRun | undefined): { connection: MlflowConnection; owned: boolean } {
  if (options.trackingUri === undefined && run?.connection !== undefined) return { connection: run.connection, owned: false };
  return { connection: resolveMlflowConnection(options), owned: true };
}

/**
 * Checks what a registration is asked to make, without a request: the name, the aliases, the
 * tags, the key and `readyTimeoutMs`. {@link registerModel} calls it first, and so do the stage
 * helpers before they upload anything (a bad key must not fail after the bytes were sent).
 *
 * @throws {RegistryError} `REGISTRY_INVALID_NAME`, `REGISTRY_INVALID_ALIAS`.
 * @throws {InvalidArgumentError} for a bad tag, description, key or `readyTimeoutMs`.
 * @internal
 */
export function checkRegistration(options: Pick<RegisterModelOptions, 'name' | 'alias' | 'tags' | 'description' | 'idempotencyKey' | 'readyTimeoutMs'>): {
  aliases: string[];
  tags: Array<{ key: string; value: string }>;
  readyTimeoutMs: number;
} {
  assertRegisteredModelName(options.name);
  const aliases = [...new Set(options.alias === undefined ? [] : typeof options.alias === 'string' ? [options.alias] : options.alias)];
  aliases.forEach((alias) => assertModelAlias(alias));
  const tags = registryTagList(options.tags, 'tags');
  assertNoInternalTags(tags.map((tag) => tag.key), 'tags');
  assertVersionDescription(options.description);
  if (options.idempotencyKey !== undefined) assertIdempotencyKey(options.idempotencyKey);
  const readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  if (!(readyTimeoutMs > 0)) throw new InvalidArgumentError('readyTimeoutMs', `readyTimeoutMs must be > 0, got ${String(readyTimeoutMs)}.`);
  return { aliases, tags, readyTimeoutMs };
}

/** A description the version's database column keeps ({@link REGISTRY_LIMITS}), counted in characters as Python and the databases count them. */
function assertVersionDescription(description: unknown): void {
  if (description === undefined) return;
  if (typeof description !== 'string') throw new InvalidArgumentError('description', `description must be a string, got ${typeof description}.`);
  const length = characterCount(description);
  const limit = REGISTRY_LIMITS.versionDescriptionLength;
  if (length > limit) {
    throw new InvalidArgumentError('description', `The model version's description has ${length} characters, more than the ${limit} MLflow's database keeps.`, {
      hint: `Shorten it to at most ${limit} characters (put longer notes in a file of the run's artifacts): MLflow's model_versions.description column is VARCHAR(${limit}), and PostgreSQL and MySQL servers refuse a longer one after the files were copied (SQLite keeps it).`,
    });
  }
}

/**
 * `artifactPath` names a folder (or file) the run already has: a bad one is fixed by writing it
 * as the run lists it, not by renaming files (the upload hint). `onnx/` or `./onnx`, as a shell
 * completes them, get the form to write.
 */
function assertRunArtifactPath(artifactPath: string): void {
  const problem = artifactPathProblem(artifactPath);
  if (!problem) return;
  const plain = artifactPath.split('/').filter((segment) => segment !== '' && segment !== '.').join('/');
  const suggestion = plain !== '' && plain !== artifactPath && artifactPathProblem(plain) === undefined ? ` Write it as "${plain}".` : '';
  throw invalidArtifactPathError([problem], 'artifactPath', `Give the model's folder (or file) as the run's artifacts list it: relative to the run's artifact root, without a leading or trailing "/" or "./" segments, e.g. "onnx" or "checkpoint".${suggestion}`);
}

async function checkLocalPathOfEitherKind(path: string): Promise<string> {
  return checkLocalPath(path, 'directory', 'registerModel').catch(() => checkLocalPath(path, 'file', 'registerModel'));
}

/**
 * The refusal of a registration against a local FileStore (`./mlruns`), whose Model Registry
 * this library does not write: thrown by {@link registerModel}, and before any upload by the
 * stage helpers asked to register what they upload.
 * @internal
 */
export function fileStoreRefused(root: string): RegistryError {
  return new RegistryError(
    'REGISTRY_UNSUPPORTED_STORE',
    `registerModel() needs an MLflow tracking server; the tracking URI points at the local FileStore ${root}, whose Model Registry artifact-uploader does not write.`,
    {
      hint: 'Serve the runs with a database backend (`mlflow migrate-filestore --source ./mlruns --target sqlite:///mlflow.db`, then `mlflow server --backend-store-uri sqlite:///mlflow.db`) and set MLFLOW_TRACKING_URI to its http:// address. Uploads to ./mlruns keep working.',
    },
  );
}

/**
 * The logged model's name: the registered model's, with the characters MLflow refuses in a
 * logged model's name but not in a registered model's (`. % " '`; `/` and `:` are refused in
 * both) replaced by `_`. "fraud.classifier" is a good registered model name, and its logged
 * model is "fraud_classifier".
 * @internal
 */
export function loggedModelName(name: string): string {
  return name.replace(/[/:.%"']/g, '_');
}

/**
 * A registration that failed after making its version, and could not delete it (the server
 * stopped answering, a token that may create but not delete): the version is in the registry,
 * perhaps without its tags and aliases, and the caller must be told which, and what to do.
 */
function versionLeftBehind(name: string, version: string, idempotencyKey: string | undefined, failure: unknown): RegistryError {
  const why = failure instanceof Error ? failure.message : String(failure);
  const deleteIt = `delete it (MLflow UI, or MlflowClient().delete_model_version(${JSON.stringify(name)}, "${version}"))`;
  return new RegistryError('REGISTRY_INCOMPLETE', `Registering ${name} failed, and version ${version}, which this call had made, could not be removed: it is in the registry, perhaps without its tags and aliases. The failure: ${why}`, {
    hint:
      idempotencyKey !== undefined
        ? `Once the cause is fixed, run the same call again with idempotencyKey "${idempotencyKey}": it finds version ${version} and completes it (tags, aliases) instead of making another. Or ${deleteIt}.`
        : `Before registering again, ${deleteIt}: without an idempotencyKey, another call makes another version.`,
    modelName: name,
    version,
    cause: failure,
  });
}

/** The files of `source` among `only` (all of them when `only` is not given); each of `only` must be there. */
function onlyTheseFiles(source: RunSource, only: readonly string[] | undefined, runId: string): RunSource {
  if (only === undefined) return source;
  const wanted = new Set(only);
  const files = source.files.filter((f) => wanted.has(f.runPath));
  const missing = [...wanted].filter((path) => !files.some((f) => f.runPath === path));
  if (missing.length > 0 || files.length === 0) {
    throw new RegistryError('REGISTRY_SOURCE_NOT_FOUND', `Run ${runId} does not list ${missing.length > 0 ? missing.slice(0, 10).join(', ') : 'the uploaded files'}, which were just uploaded to it.`, {
      hint: 'Another process may have deleted or replaced the run\'s artifacts meanwhile; upload again, then register.',
    });
  }
  return { kind: source.kind, files };
}

interface RegistrationInput {
  name: string;
  runId: string;
  artifactPath: string;
  aliases: string[];
  tags: Array<{ key: string; value: string }>;
  description?: string;
  idempotencyKey?: string;
  signal?: AbortSignal;
  readyTimeoutMs: number;
  localPath?: string;
  /** The environment the caller gave (read by the store of the logged model's artifact location). */
  env?: Env | undefined;
  /** The store settings the caller gave, for that store. */
  store: { [K in keyof Required<StoreOptions>]: StoreOptions[K] };
  /** Run paths (under `artifactPath`) the model is made of; the others there are left out. */
  onlyFiles?: readonly string[] | undefined;
}

/** One registration: what it made so far, so that a failure can undo exactly that. */
class Registration {
  private readonly registry: MlflowRegistryClient;
  private readonly tracking: MlflowRestClient;
  private readonly logger: Logger;
  private loggedModel?: LoggedModel;
  /** `loggedModel` was made by an earlier call ({@link copyOfKilledAttempt}): a failure leaves it as it was. */
  private loggedModelReused = false;
  private version?: ModelVersion;
  /**
   * The aliases this call points at its own version, each with the version it was on before
   * (`undefined`: it was new). Deleting the version deletes its aliases with it (MLflow's
   * `delete_model_version`), so an undo points them back first: a failed registration must not
   * leave `champion` pointing nowhere.
   */
  private movedAliases: Array<{ alias: string; from: string | undefined }> = [];

  constructor(
    private readonly connection: Extract<MlflowConnection, { kind: 'rest' }>,
    private readonly input: RegistrationInput,
  ) {
    this.registry = new MlflowRegistryClient(connection);
    this.tracking = new MlflowRestClient(connection);
    this.logger = connection.logger;
  }

  async run(): Promise<RegisterModelResult> {
    const { name, runId, artifactPath, signal, idempotencyKey } = this.input;
    const run = await this.tracking.getRun(runId, { signal });
    const source = onlyTheseFiles(await findRunSource(this.tracking, runId, artifactPath, signal), this.input.onlyFiles, runId);
    // Checked before anything is written: the version's bytes come from there, its lineage names the run's files.
    const localFiles = this.input.localPath === undefined ? undefined : await localModelFiles(this.input.localPath, source, { runId, artifactPath });
    if (idempotencyKey !== undefined) {
      const earlier = await this.firstWithKey(idempotencyKey);
      if (earlier) {
        this.logger.info(`${name} version ${earlier.version} was registered earlier with idempotency key ${idempotencyKey}; not registering again`);
        await this.removeUnfinishedAttempts(run.info.experimentId, idempotencyKey, earlier);
        return this.complete(earlier, false, 0);
      }
    }
    if (run.info.lifecycleStage === 'deleted') {
      // MLflow makes the logged model and takes the files, then refuses to link them to a deleted run (`runs/outputs`, a 400).
      throw new InvalidArgumentError('runId', `Run ${runId} on ${this.connection.displayUri} is deleted; a model cannot be registered from it.`, {
        hint: 'Restore it in the MLflow UI (or `mlflow runs restore`), or register from another run.',
      });
    }
    const earlierCopy = idempotencyKey === undefined ? undefined : await this.copyOfKilledAttempt(run.info.experimentId, idempotencyKey);
    try {
      let placed = { files: 0 };
      if (earlierCopy !== undefined) {
        this.logger.info(`logged model ${earlierCopy.modelId} holds this model's files, copied by an earlier call with idempotency key ${idempotencyKey} that made no version; registering it instead of copying again`);
        this.loggedModel = earlierCopy;
        this.loggedModelReused = true;
        // The killed call may have been killed before or after it linked the model to the run.
        await this.registry.logRunOutputs(runId, [earlierCopy.modelId], { signal, mayBeLogged: true });
      } else {
        this.loggedModel = await this.registry.createLoggedModel(
          {
            experimentId: run.info.experimentId,
            name: loggedModelName(name),
            sourceRunId: runId,
            // The exact name, which the logged model's own cannot hold (loggedModelName): how loggedModelsWithKey tells this model's from another's.
            tags: { [REGISTERED_MODEL_TAG]: name, ...(idempotencyKey ? { [IDEMPOTENCY_KEY_TAG]: idempotencyKey } : {}) },
          },
          { signal },
        );
        placed = await placeModelFiles({
          connection: this.connection,
          registry: this.registry,
          artifactUri: this.loggedModel.artifactUri,
          runId,
          source,
          ...(localFiles !== undefined ? { localFiles } : {}),
          env: this.input.env,
          store: this.input.store,
          ...(signal ? { signal } : {}),
        });
        this.loggedModel = await this.registry.finalizeLoggedModel(this.loggedModel.modelId, 'READY', { signal });
        await this.registry.logRunOutputs(runId, [this.loggedModel.modelId], { signal });
      }
      // Made only now, with the files in place: a failed copy, or a server without logged
      // models (MLflow 2), leaves no empty registered model behind.
      if (await this.registry.createRegisteredModel(name, { signal })) this.logger.info(`created registered model ${name}`);
      if (idempotencyKey !== undefined) {
        // A racing caller with the key may have registered it while this one copied, and removed
        // this call's logged model as an unfinished attempt (removeUnfinishedAttempts): MLflow
        // refuses a version of a deleted logged model. Its version is what this call is for.
        const winner = await this.firstWithKey(idempotencyKey);
        if (winner) return await this.joinWinner(winner, run.info.experimentId, idempotencyKey);
      }
      this.version = await this.createVersion({
        name,
        source: `models:/${this.loggedModel.modelId}`,
        runId,
        modelId: this.loggedModel.modelId,
        ...(this.input.description ? { description: this.input.description } : {}),
        ...(idempotencyKey ? { tags: { [IDEMPOTENCY_KEY_TAG]: idempotencyKey } } : {}),
      });
      const ready = await this.waitUntilReady(this.version);
      if (idempotencyKey !== undefined) {
        // Callers racing with one key each made a version; the lowest one wins, the rest undo theirs.
        const winner = await this.firstWithKey(idempotencyKey);
        if (winner && winner.version !== ready.version) return await this.joinWinner(winner, run.info.experimentId, idempotencyKey);
        await this.removeUnfinishedAttempts(run.info.experimentId, idempotencyKey, ready);
      }
      return await this.complete(ready, true, placed.files);
    } catch (error) {
      const left = await this.undo();
      const failure = signal?.aborted && !(error instanceof AbortedError) ? new AbortedError('registerModel() was aborted by its AbortSignal; what it had made was removed.', { cause: error }) : error;
      if (left !== undefined) throw versionLeftBehind(name, left, idempotencyKey, failure);
      // The narrow window of the check before the version's create: a racing caller removed this
      // call's logged model between the two, and the create failed on it. The key's version exists.
      const winner = idempotencyKey === undefined || signal?.aborted ? undefined : await this.firstWithKey(idempotencyKey).catch(() => undefined);
      if (winner === undefined) throw failure;
      this.logger.info(`${name} version ${winner.version} was registered with idempotency key ${idempotencyKey} by another call while this one failed (${(error as Error).message}); returning it`);
      return this.complete(winner, false, 0);
    }
  }

  /** Another call registered the key first: this call removes what it made and returns that call's version. */
  private async joinWinner(winner: ModelVersion, experimentId: string, key: string): Promise<RegisterModelResult> {
    this.logger.info(`${this.input.name} version ${winner.version} has the same idempotency key and came first; removing what this call made${this.version ? ` (version ${this.version.version})` : ''}`);
    await this.undo();
    await this.removeUnfinishedAttempts(experimentId, key, winner);
    return this.complete(winner, false, 0);
  }

  /**
   * The logged model an earlier call with this key copied the files into, finalized READY, and
   * then made no version of: a process killed between the copy and the version's create (SIGKILL,
   * a CI job's timeout). Its files are complete, as a logged model is READY only once they are all
   * in place ({@link run}), and they are the key's, as a finished earlier call's version would be;
   * registering it saves copying the model again (gigabytes, for some), and leaves no READY logged
   * model without a version in the experiment for good. Only one made for this registered model
   * ({@link loggedModelsWithKey}) from this run, and that no version of it with the key sources (one
   * whose registration failed). A live call may still be about to make its version of it: both
   * versions then race as any two keyed calls do, and neither call deletes the logged model the
   * other's version holds ({@link undo}). `undefined` when there is none, or the look-up failed
   * (the call then copies, as before).
   */
  private async copyOfKilledAttempt(experimentId: string, key: string): Promise<LoggedModel | undefined> {
    const { name, runId, signal } = this.input;
    try {
      const ready = (await this.loggedModelsWithKey(experimentId, key)).filter((model) => model.status === 'READY' && model.sourceRunId === runId);
      if (ready.length === 0) return undefined;
      const sourced = new Set((await this.registry.searchModelVersionsByTag(name, IDEMPOTENCY_KEY_TAG, key, { signal })).map((version) => version.source));
      return ready.find((model) => !sourced.has(`models:/${model.modelId}`));
    } catch (error) {
      if (signal?.aborted) throw error;
      this.logger.warn(`could not look for a logged model an earlier call with idempotency key ${key} left without a version: ${(error as Error).message}`);
      return undefined;
    }
  }

  /**
   * Removes the logged models that earlier calls with this key and registered model left
   * unfinished (PENDING, or FAILED and not deleted), once the key's version `done` is READY. A
   * call killed mid-copy (SIGKILL, a CI job's timeout, `subprocess.run`'s kill) runs no undo: its logged model stayed
   * PENDING for good, one more in the experiment per killed retry. MLflow's own `log_model`
   * leaves one too when killed (`_use_logged_model` marks it FAILED only on an exception), but
   * its logged models carry no key to find them by. A racing caller still copying (its model
   * PENDING) has not made its version yet, so it will come after `done`, lose, and return `done`
   * anyway: it looks for the key's version before it makes its own (MLflow refuses a version of
   * a deleted logged model), finds `done` and returns it. Marked FAILED first, as
   * {@link undo} does, so that a view which still shows deleted models does not show them as in
   * progress. Never throws.
   */
  private async removeUnfinishedAttempts(experimentId: string, key: string, done: ModelVersion): Promise<void> {
    const keep = new Set([this.loggedModel?.modelId, done.source.startsWith('models:/') ? done.source.slice('models:/'.length) : undefined]);
    const unfinished = await this.loggedModelsWithKey(experimentId, key)
      .then((found) => found.filter((model) => !keep.has(model.modelId) && (model.status === 'PENDING' || model.status === 'FAILED')))
      .catch((error: unknown) => {
        this.logger.warn(`could not look for logged models earlier calls with idempotency key ${key} left unfinished: ${(error as Error).message}`);
        return [];
      });
    for (const model of unfinished) {
      this.logger.info(`removing logged model ${model.modelId}, left ${model.status} by an earlier call with idempotency key ${key}`);
      try {
        if (model.status === 'PENDING') await this.registry.finalizeLoggedModel(model.modelId, 'FAILED');
        await this.registry.deleteLoggedModel(model.modelId);
      } catch (error) {
        // Gone already: a racing caller with the key removed it first, or its own undo did.
        if (!isDoesNotExist(error)) this.logger.warn(`could not remove logged model ${model.modelId}: ${(error as Error).message}`);
      }
    }
  }

  /**
   * The logged models of the experiment tagged with `key` and made for this registered model:
   * its exact name in {@link REGISTERED_MODEL_TAG}. Only this registered model's: one key may
   * serve several registrations of a job (an encoder and a decoder from one run, at once), and
   * another's PENDING logged model may be a live call's copy in progress. The logged model's
   * name alone cannot tell them apart (`enc.v` and `enc_v` both make `enc_v`,
   * {@link loggedModelName}); one an earlier release made has no such tag and is matched by that
   * name, as that release matched it.
   */
  private async loggedModelsWithKey(experimentId: string, key: string): Promise<LoggedModel[]> {
    const { name, signal } = this.input;
    // The key is quote-free (assertIdempotencyKey): it goes into the filter as it is. The name is
    // not (a backslash, quotes), so it is compared here rather than in the filter.
    const found = await this.registry.searchLoggedModels(experimentId, `tags.\`${IDEMPOTENCY_KEY_TAG}\` = '${key}'`, { signal });
    return found.filter((model) => {
      const madeFor = model.tags[REGISTERED_MODEL_TAG];
      return madeFor === undefined ? model.name === loggedModelName(name) : madeFor === name;
    });
  }

  /**
   * `model-versions/create`. A registered model deleted since `createRegisteredModel` made or
   * found it (by another process, in the MLflow UI) is a 404 there: it is made again, once, as a
   * registration makes a missing one; its versions, the one with this key included, went with it.
   */
  private async createVersion(input: CreateModelVersionInput): Promise<ModelVersion> {
    const { signal } = this.input;
    try {
      return await this.registry.createModelVersion(input, { signal });
    } catch (error) {
      if (!isDoesNotExist(error)) throw error;
      this.logger.warn(`registered model ${input.name} was deleted while this call registered a version of it; creating it again`);
      await this.registry.createRegisteredModel(input.name, { signal });
      return this.registry.createModelVersion(input, { signal });
    }
  }

  /**
   * The lowest version carrying the key that is not a failed registration, waited for until
   * READY. One that fails while waited for is passed over for the next: a racing caller's failed
   * version must not fail this call, nor make it delete its own READY one.
   */
  private async firstWithKey(key: string): Promise<ModelVersion | undefined> {
    const { name, signal } = this.input;
    const found = await this.registry.searchModelVersionsByTag(name, IDEMPOTENCY_KEY_TAG, key, { signal });
    const candidates = found.filter((v) => v.status !== 'FAILED_REGISTRATION').sort((a, b) => Number(a.version) - Number(b.version));
    for (const candidate of candidates) {
      try {
        return await this.waitUntilReady(candidate);
      } catch (error) {
        if (!(error instanceof RegistryError && error.code === 'REGISTRY_VERSION_FAILED')) throw error;
        this.logger.warn(`${name} version ${candidate.version} has idempotency key ${key} but its registration failed; passing it over`);
      }
    }
    return undefined;
  }

  /** Polls the version until READY (bounded by `readyTimeoutMs`, abortable). */
  private async waitUntilReady(version: ModelVersion): Promise<ModelVersion> {
    const { readyTimeoutMs, signal } = this.input;
    const deadline = Date.now() + readyTimeoutMs;
    let delay = 100;
    for (let current = version; ; ) {
      if (current.status === 'READY') return current;
      if (current.status === 'FAILED_REGISTRATION') {
        throw new RegistryError('REGISTRY_VERSION_FAILED', `Registering ${current.name} version ${current.version} failed on the server${current.statusMessage ? `: ${current.statusMessage}` : ''}.`, {
          hint: 'Check the tracking server logs; the call can be repeated (with the same idempotencyKey) once the cause is fixed.',
          modelName: current.name,
          version: current.version,
        });
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new RegistryError('REGISTRY_VERSION_TIMEOUT', `${current.name} version ${current.version} was still ${current.status} after ${readyTimeoutMs} ms.`, {
          hint: 'Raise readyTimeoutMs if the registry is slow to copy large models.',
          modelName: current.name,
          version: current.version,
        });
      }
      await sleep(Math.min(delay, left), signal);
      delay = Math.min(delay * 2, 5000);
      current = await this.registry.getModelVersion(current.name, current.version, { signal });
    }
  }

  /**
   * One write that sets a value (an alias, a tag). Racing callers with one key all write the
   * same value to the same version, and MLflow's setters read then insert, so a second
   * concurrent insert can fail on the database's unique constraint (a 400); writing again then
   * updates the row the other caller made.
   */
  private async setValue(write: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await write();
      } catch (error) {
        if (attempt >= 3 || !isWriteRaceError(error)) throw error;
        await sleep(50 * attempt, this.input.signal);
      }
    }
  }

  /**
   * Sets the tags, then the aliases (last: an alias is what deployments follow), and returns the
   * result. On an earlier call's version (same key), an alias a newer version carries now is
   * left there: a later registration moved it on, and a rerun of the older call (a CI retry of
   * the whole pipeline) must not roll deployments back to the older model. One on an older
   * version, or on none, is set: the earlier call may have been interrupted before setting it.
   */
  private async complete(version: ModelVersion, created: boolean, files: number): Promise<RegisterModelResult> {
    const { name, signal } = this.input;
    let { aliases } = this.input;
    for (const tag of this.input.tags) await this.setValue(() => this.registry.setModelVersionTag(name, version.version, tag.key, tag.value, { signal }));
    if (aliases.length > 0) {
      // Read before the first set: a set whose answer was lost may have moved its alias too.
      const before = await this.registry.getRegisteredModelAliases(name, { signal });
      if (version.version === this.version?.version) {
        this.movedAliases = aliases.map((alias) => ({ alias, from: before[alias] }));
      } else {
        const movedOn = aliases.filter((alias) => before[alias] !== undefined && Number(before[alias]) > Number(version.version));
        if (movedOn.length > 0) this.logger.warn(`${name} version ${version.version} (registered earlier with this idempotency key): alias(es) ${movedOn.map((a) => `${a} (on version ${before[a]})`).join(', ')} left on the newer version`);
        aliases = aliases.filter((alias) => !movedOn.includes(alias));
      }
    }
    for (const alias of aliases) await this.setValue(() => this.registry.setAlias(name, alias, version.version, { signal }));
    const final = await this.registry.getModelVersion(name, version.version, { signal });
    const moved = aliases.filter((a) => !final.aliases.includes(a));
    if (moved.length > 0) {
      // MLflow answered each set, so only another caller can have moved them since: the later set
      // wins, as it would had the calls run one after the other. This version is complete; the
      // result says which aliases it carries, rather than failing and deleting it.
      this.logger.warn(`${name} version ${final.version}: alias(es) ${moved.join(', ')} were moved to another version by another call after this one set them`);
    }
    // The key, and the create id earlier releases set on the version: ours, not the caller's.
    const tags = withoutInternalTags(final.tags);
    return {
      name,
      version: final.version,
      modelId: final.source.startsWith('models:/') ? final.source.slice('models:/'.length) : (this.loggedModel?.modelId ?? ''),
      source: final.source,
      runId: final.runId ?? this.input.runId,
      aliases: final.aliases,
      status: final.status,
      tags,
      modelUri: `models:/${name}/${final.version}`,
      created,
      files,
    };
  }

  /**
   * Removes what this call made: points the aliases it moved back where they were, deletes its
   * version, then its logged model (marked FAILED, then deleted). Returns the version it could
   * not delete; its logged model is then kept as it is, since the version's files are there (a
   * rerun with the same key completes that version). A logged model an earlier call made
   * ({@link copyOfKilledAttempt}), or that another call's version holds, is kept too. Never throws.
   */
  private async undo(): Promise<string | undefined> {
    const { name } = this.input;
    if (this.version) {
      const { version } = this.version;
      await this.restoreAliases(version);
      const deleted = await this.registry.deleteModelVersion(name, version).then(
        () => true,
        (error: unknown) => {
          // Gone already (deleted in the UI, with its registered model, by another process): nothing is left.
          if (isDoesNotExist(error)) return true;
          this.logger.warn(`could not delete ${name} version ${version}: ${(error as Error).message}`);
          return false;
        },
      );
      this.version = undefined;
      if (!deleted) {
        this.loggedModel = undefined;
        this.loggedModelReused = false;
        return version;
      }
    }
    if (this.loggedModel) {
      const { modelId, status } = this.loggedModel;
      const reused = this.loggedModelReused;
      this.loggedModel = undefined;
      this.loggedModelReused = false;
      if (reused) {
        this.logger.info(`logged model ${modelId}, made by an earlier call, is left as it was (READY, with its files)`);
        return undefined;
      }
      if (status === 'READY' && (await this.anotherVersionHolds(modelId))) return undefined;
      await this.registry.finalizeLoggedModel(modelId, 'FAILED').catch((error: unknown) => this.logger.warn(`could not mark logged model ${modelId} FAILED: ${(error as Error).message}`));
      await this.registry.deleteLoggedModel(modelId).catch((error: unknown) => this.logger.warn(`could not delete logged model ${modelId}: ${(error as Error).message}`));
    }
    return undefined;
  }

  /**
   * Whether a version with this call's key, made by another call, holds this call's READY logged
   * model: a call that took it for the copy of a killed attempt ({@link copyOfKilledAttempt})
   * while this one was about to make its version. Deleting it would leave that version without
   * its files. True also when the look-up fails: a READY logged model left over is harmless (a
   * rerun with the key registers it), a version without files is not. Never throws.
   */
  private async anotherVersionHolds(modelId: string): Promise<boolean> {
    const { name, idempotencyKey } = this.input;
    if (idempotencyKey === undefined) return false;
    try {
      // Without the call's signal: an aborted call removes what it made too.
      const holders = (await this.registry.searchModelVersionsByTag(name, IDEMPOTENCY_KEY_TAG, idempotencyKey)).filter((version) => version.source === `models:/${modelId}`);
      if (holders.length === 0) return false;
      this.logger.info(`logged model ${modelId} is kept: ${name} version ${holders.map((v) => v.version).join(', ')}, made by another call with idempotency key ${idempotencyKey}, holds it`);
    } catch (error) {
      this.logger.warn(`could not tell whether another call's version holds logged model ${modelId}, so it is kept: ${(error as Error).message}`);
    }
    return true;
  }

  /**
   * Points each alias this call moved to `version` back at the version it was on. One that
   * another call has moved since is left where that call put it (the later set wins, as in
   * {@link complete}); one that was new goes with the version. Never throws.
   */
  private async restoreAliases(version: string): Promise<void> {
    const { name } = this.input;
    const moved = this.movedAliases.flatMap(({ alias, from }) => (from === undefined ? [] : [{ alias, from }]));
    this.movedAliases = [];
    if (moved.length === 0) return;
    try {
      // Without the call's signal: an aborted call restores too.
      const now = await this.registry.getRegisteredModelAliases(name);
      for (const { alias, from } of moved) {
        if (now[alias] !== version) continue;
        await this.registry.setAlias(name, alias, from);
        this.logger.info(`${name}: alias ${alias} points at version ${from} again, as before this call`);
      }
    } catch (error) {
      this.logger.warn(`${name}: could not point alias(es) back (${moved.map((m) => `${m.alias} at version ${m.from}`).join(', ')}): ${(error as Error).message}`);
    }
  }
}
