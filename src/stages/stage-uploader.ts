/**
 * What the four stage helpers share: their options (the uploader's, without `stage`) and the
 * life cycle of the uploader each one makes for a single call.
 *
 * @module
 */
import { AbortedError, InvalidArgumentError, RegistryError, type StageUploadBeforeRegistration } from '../core/errors.js';
import { shellWord } from '../core/format.js';
import type { StageName } from '../config/schema.js';
import { checkRegistration, fileStoreRefused, registerModelOfRun, registrationConnection, type RegisterModelOptions, type RegisterModelResult } from '../registry/register-model.js';
import { resolveMlflowRunId, type ActiveRun } from '../run/run-context.js';
import { ArtifactUploader } from '../uploader/artifact-uploader.js';
import { assertOnlyKnown, UPLOADER_OPTIONS, type ArtifactUploaderOptions } from '../uploader/options.js';
import type { UploadResult } from '../uploader/result.js';

/**
 * Options every stage helper takes: those of `new ArtifactUploader()` (`runId`, `configDir`,
 * `trackingUri`, `onProgress`, `onError`, `dryRun`, ...). `stage` may be given but must be the
 * helper's own.
 */
export type StageHelperOptions = Omit<ArtifactUploaderOptions, 'stage'> & { stage?: StageName };

/**
 * The fields a helper's options add to {@link StageHelperOptions}, as a record rather than a
 * list, so that a field added to the helper's options type and not here is a compile error.
 */
export type StageHelperFields<T extends StageHelperOptions> = Record<Exclude<keyof T, keyof StageHelperOptions>, true>;

/** A stage helper, as {@link stageOptions} checks its options: its name, stage and own fields. */
export interface StageHelper<T extends StageHelperOptions> {
  /** The exported function, e.g. `uploadBenchmarkArtifacts`. */
  name: string;
  stage: StageName;
  fields: StageHelperFields<T>;
}

/**
 * A helper's options, checked before anything else: an object (each helper takes its own fields
 * out of it first, which threw a bare `TypeError`, "Cannot destructure property ... of
 * undefined", for a call without options), and no name the helper does not read. A misspelt
 * field was refused only by the uploader the helper makes, whose hint listed the uploader's
 * options and whose did-you-mean knew none of the helper's: `metricJsonPath` was told to be
 * removed, not renamed `metricsJsonPath`.
 *
 * @throws {InvalidArgumentError} for options that are not an object, or an unknown name (the
 *   closest of the helper's fields and the uploader's options suggested).
 * @example
 * ```ts
 * const { resultsPaths, ...rest } = stageOptions(options, { name: 'uploadBenchmarkArtifacts', stage: 'benchmark', fields: { resultsPaths: true } });
 * ```
 * @internal
 */
export function stageOptions<T extends StageHelperOptions>(options: T, helper: StageHelper<T>): T {
  assertOptionsObject(options, helper.name);
  const own = Object.keys(helper.fields);
  // `stage` is accepted (it must be the helper's own, checked by withStageUploader) but not
  // listed: a caller of a helper has no stage to choose.
  const uploaders = UPLOADER_OPTIONS.filter((name) => name !== 'stage');
  assertOnlyKnown(options, [...own, ...UPLOADER_OPTIONS], {
    method: `${helper.name}()`,
    listed: `The options of ${helper.name}() are its own: ${own.join(', ')}; and the uploader's: ${uploaders.join(', ')}`,
    docs: `docs/stages/${helper.stage}.md, docs/uploader.md`,
  });
  return options;
}

/** Refuses a helper's options unless they are an object. */
function assertOptionsObject(options: unknown, helper: string): void {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', `${helper}() needs an options object.`);
}

/**
 * Runs `fn` with a new uploader for the helper's stage, closing it afterwards.
 *
 * @example
 * ```ts
 * return withStageUploader(BENCHMARK_HELPER, options, (uploader) => uploader.uploadFile(path, { kind: 'results' }));
 * ```
 * @internal
 */
export async function withStageUploader<T>(
  helper: Pick<StageHelper<StageHelperOptions>, 'name' | 'stage'>,
  options: StageHelperOptions,
  fn: (uploader: ArtifactUploader) => Promise<T>,
): Promise<T> {
  const { name, stage } = helper;
  assertOptionsObject(options, name);
  if (options.stage !== undefined && options.stage !== stage) {
    throw new InvalidArgumentError('stage', `${name}() uploads under the ${stage} stage, but stage "${options.stage}" was passed.`, {
      hint: `Drop \`stage\`, or use new ArtifactUploader({ stage: '${options.stage}' }) directly.`,
    });
  }
  const uploader = new ArtifactUploader({ ...options, stage });
  try {
    return await fn(uploader);
  } finally {
    await uploader.close();
  }
}

/**
 * The opt-in `register` option of the conversion and training helpers: after a successful
 * upload, the uploaded folder becomes a new version of this registered model (see
 * `registerModel` and docs/registry.md).
 */
export type StageRegisterOptions = Pick<RegisterModelOptions, 'name' | 'alias' | 'tags' | 'description' | 'idempotencyKey' | 'readyTimeoutMs'>;

/**
 * The fields of {@link StageRegisterOptions}, in the order the hint lists them. A record rather
 * than a list, so that a field added to the type and not here is a compile error.
 */
const STAGE_REGISTER_FIELDS: Record<keyof StageRegisterOptions, true> = {
  name: true,
  alias: true,
  tags: true,
  description: true,
  idempotencyKey: true,
  readyTimeoutMs: true,
};

/**
 * Checks a stage's `register` option before anything is uploaded: the name, the aliases, the
 * tags, the key and `readyTimeoutMs`, and that the tracking URI is a server (a local
 * FileStore's registry is not written).
 *
 * @example
 * ```ts
 * checkStageRegister({ name: 'fraud-classifier', alias: 'candidate' }, { trackingUri: 'http://127.0.0.1:5000' });
 * ```
 * @internal
 */
export function checkStageRegister(register: StageRegisterOptions | undefined, options: Pick<StageHelperOptions, 'trackingUri' | 'env'> = {}): void {
  if (register === undefined) return;
  if (register === null || typeof register !== 'object') throw new InvalidArgumentError('register', '`register` must be an object: { name, alias?, tags?, description?, idempotencyKey? }.');
  // A misspelt field (`alais`) was dropped without a word, and the version made without it.
  assertOnlyKnown(register, Object.keys(STAGE_REGISTER_FIELDS), { method: '`register`', docs: 'docs/registry.md' });
  checkRegistration(register);
  // A registration that cannot happen (a local FileStore) is refused before the upload, not
  // after it, when the checkpoint would be in the run and the command failed.
  // A tracking URI that does not resolve is the upload's to report, as without `register`.
  // The connection is chosen as the upload's: the option, else the active run's own, else the env.
  let chosen: ReturnType<typeof registrationConnection> | undefined;
  try {
    chosen = registrationConnection({ trackingUri: options.trackingUri, env: options.env }, uploadRun(options));
  } catch {
    return;
  }
  const { connection, owned } = chosen;
  if (connection.kind === 'file') throw fileStoreRefused(connection.root);
  if (owned) void connection.http.close().catch(() => undefined);
}

/**
 * The active run an upload with these options goes to when it names no run (the gate's
 * resolution, `resolveMlflowRunId`): its connection is where the upload, and so the
 * registration, goes. `undefined` with an explicit `runId`, or when the id is not an active run's.
 */
function uploadRun(options: Pick<StageHelperOptions, 'runId' | 'env'>): ActiveRun | undefined {
  try {
    return resolveMlflowRunId(options.runId, { env: options.env })?.run;
  } catch {
    return undefined; // a malformed id is the upload's to report
  }
}

/**
 * Registers what a stage uploaded, when `register` asks for it and the upload happened (not
 * skipped, failed or a dry run); `undefined` otherwise.
 *
 * A registration that fails is a `RegistryError` `REGISTRY_AFTER_UPLOAD` with the failure as
 * its `cause` and `uploaded` (what the helper returns without `register`): the failure alone
 * did not say that the files were in the run, and a caller told only "failed" uploads again. An
 * abort (the stage's `signal`) is thrown as the `AbortedError` it is.
 *
 * @example
 * ```ts
 * const registeredModel = await registerStageUpload(options.register, result, options);
 * ```
 * @internal
 */
export async function registerStageUpload(
  register: StageRegisterOptions | undefined,
  result: UploadResult,
  options: StageHelperOptions,
  uploaded: StageUploadBeforeRegistration = result,
): Promise<RegisterModelResult | undefined> {
  if (register === undefined || result.status !== 'uploaded' || !result.runId || result.artifactPath === undefined) return undefined;
  const { runId, artifactPath } = result;
  // This upload's files only: the folder in the run may hold an earlier upload's too.
  const files = result.files.filter((f) => f.status === 'uploaded' || f.status === 'resumed').map((f) => f.artifactPath);
  return registerModelOfRun(
    {
      ...register,
      runId,
      artifactPath,
      // Passed as they are: an option left undefined reads as unset (see docs/architecture.md).
      trackingUri: options.trackingUri,
      env: options.env,
      logger: options.logger,
      retry: options.retry,
      signal: options.signal,
      // The store settings the upload used, for the copy into the logged model.
      multipart: options.multipart,
      s3: options.s3,
      gcs: options.gcs,
      azure: options.azure,
    },
    uploadRun(options),
    files,
  ).catch((error: unknown) => {
    // An abort stays an abort: the caller stopped the stage on purpose (a pruned trial, Ctrl-C)
    // and tells it by `AbortedError`; what it had made was removed, the upload is in the run.
    if (error instanceof AbortedError) throw error;
    throw registrationAfterUploadFailed(error, { register, runId, artifactPath, uploaded });
  });
}

/**
 * The error of a stage's registration that failed after its upload: what failed, that the
 * files are in the run, and how to register them without uploading again (the `register`
 * command, or `registerModel`, with the same idempotency key when one was given).
 */
function registrationAfterUploadFailed(
  error: unknown,
  { register, runId, artifactPath, uploaded }: { register: StageRegisterOptions; runId: string; artifactPath: string; uploaded: StageUploadBeforeRegistration },
): RegistryError {
  const why = error instanceof Error ? error.message : String(error);
  const key = register.idempotencyKey;
  // The registration asked for, whole: a command without the aliases and tags made a version no
  // deployment follows (`champion` never set), and told nothing of what was left out.
  const aliases = register.alias === undefined ? [] : typeof register.alias === 'string' ? [register.alias] : [...register.alias];
  const tags = Object.entries(register.tags ?? {});
  const flags = [
    ...aliases.map((alias) => `--alias ${shellWord(alias)}`),
    ...tags.map(([tagKey, value]) => `--tag ${shellWord(`${tagKey}=${value}`)}`),
    ...(register.description === undefined ? [] : [`--description ${shellWord(register.description)}`]),
    ...(register.readyTimeoutMs === undefined ? [] : [`--ready-timeout ${Math.ceil(register.readyTimeoutMs / 1000)}s`]),
    ...(key === undefined ? [] : [`--idempotency-key ${shellWord(key)}`]),
  ];
  const command = [`artifact-uploader register ${shellWord(register.name)} --artifact-path ${shellWord(artifactPath)} --run-id ${runId}`, ...flags].join(' ');
  const asked = [aliases.length > 0 ? 'alias' : '', tags.length > 0 ? 'tags' : '', register.description === undefined ? '' : 'description', register.readyTimeoutMs === undefined ? '' : 'readyTimeoutMs', key === undefined ? '' : 'idempotencyKey'].filter(Boolean);
  const call = `registerModel({ name, runId: '${runId}', artifactPath: ${JSON.stringify(artifactPath)}${asked.map((option) => `, ${option}`).join('')} })`;
  return new RegistryError('REGISTRY_AFTER_UPLOAD', `The upload succeeded: the files are in run ${runId} at "${artifactPath}". Only registering them as ${register.name} failed: ${why}`, {
    modelName: register.name,
    runId,
    artifactPath,
    uploaded,
    cause: error,
    hint: `Do not upload them again: once the cause is fixed, register them against the same tracking server with \`${command}\` (in code: ${call}).`,
  });
}
