/**
 * Options of {@link ArtifactUploader} and of its methods, their defaults, and which artifact
 * kind of the tracking config each method answers to in each stage. Each type here is declared
 * once: the store settings come from `stores/` ({@link StoreOptions}), and the pipeline steps
 * take `Pick`s of {@link ResolvedUploaderOptions} rather than declaring the fields again.
 *
 * All option types are generic in the stage `S`, so that `kind` accepts only the stage's kinds.
 *
 * @module
 */
import type { Env } from '../core/env.js';
import { ConfigError, InvalidArgumentError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { resolveRetryOptions, type RetryOptions } from '../core/retry.js';
import type { CheckpointManifest } from '../archive/manifest.js';
import { CONCURRENCY_ENV, DEFAULT_CONCURRENCY, MAX_CONCURRENCY, STAGES, type ArtifactKind, type StageName, type TrackingConfigInput } from '../config/schema.js';
import { assertStage } from '../config/load.js';
import { closestMatch } from '../config/did-you-mean.js';
import { describeValue } from '../config/format-issues.js';
import type { ArtifactStore, StoreOptions } from '../stores/artifact-store.js';
import type { ResolveArtifactStoreOptions } from '../stores/resolve.js';
import { DEFAULT_PROGRESS_INTERVAL_MS, type UploadProgressEvent } from './progress.js';

/** Options of `new ArtifactUploader(options)`. Only `stage` is required. */
export interface ArtifactUploaderOptions<S extends StageName = StageName> extends StoreOptions {
  /** The pipeline stage: picks the config section and the artifact kinds. */
  stage: S;
  /**
   * The run to upload to. Wins over the active run (`startRun` / `withRun`), which wins over
   * `MLFLOW_RUN_ID`. Without it, each call uploads to the run in effect when it is made (so one
   * uploader serves several `withRun` contexts); each run is looked up once, at its first upload.
   * @default the active run, else MLFLOW_RUN_ID
   */
  runId?: string;
  /**
   * Directory holding the tracking config file (`artifact-uploader.yaml`, `.yml` or `.json`).
   * @default ARTIFACT_UPLOADER_CONFIG_DIR, else the working directory
   */
  configDir?: string;
  /** The tracking config itself, instead of a file (env overrides still apply). */
  config?: TrackingConfigInput;
  /**
   * Tracking server (`http(s)://...`) or local store (`file:...`).
   * @default the active run's tracking URI, else MLFLOW_TRACKING_URI, else `file:./mlruns`
   */
  trackingUri?: string;
  /**
   * Files uploaded in parallel within one operation (1 to 64).
   * @default the stage's `concurrency` in the tracking config (8 unless configured; env ARTIFACT_UPLOADER_CONCURRENCY)
   */
  concurrency?: number;
  /**
   * The most files in flight a directory upload may grow to, from `concurrency`, while more in
   * flight keeps paying off: on a remote link each small file waits a round trip, so more in
   * flight means more files per second, until the server is the limit. On loopback, where the
   * server's CPU is the limit from the start, it stays at `concurrency`. A 429 or 503 halves it
   * and stops growth. Buffers stay within 32 MiB (or `concurrency` files' worth, if more) however
   * many are in flight. A concurrency you chose yourself (option, config file or env var, any
   * value but the default 8) stays fixed unless you set this too; set it to `concurrency` to pin
   * the default as well. Below the default it lowers the start to it too; below a `concurrency`
   * you chose it is refused (`InvalidArgumentError` with the option, `ConfigError` against the
   * tracking config's, when an operation loads it), as the two cannot both hold.
   * @default 64 (the highest accepted `concurrency`) with the default concurrency; else `concurrency`
   */
  maxConcurrency?: number;
  /** Retry and timeout policy of every request. @default from MLflow's env vars, else MLflow's defaults */
  retry?: RetryOptions;
  /** Where to log (redacted). @default silent */
  logger?: Logger;
  /** Cancels every operation of this uploader; cancelled operations end `failed` with reason `aborted`. */
  signal?: AbortSignal;
  /** Progress of every operation (throttled; see {@link UploadProgressEvent}). */
  onProgress?: (event: UploadProgressEvent) => void;
  /**
   * Least time between two throttled `file` (or `totals`) events, in milliseconds; 0 sends
   * every event.
   * @default 100
   */
  progressIntervalMs?: number;
  /**
   * What a failed upload does: `'return'` a `failed` result (a finished training job is not
   * lost to a flaky network), or `'throw'` its typed error. Programmer errors (a missing path,
   * an invalid config, an unknown stage) always throw.
   * @default 'return'
   */
  onError?: 'return' | 'throw';
  /**
   * Check every uploaded file's size in the store's listing afterwards.
   * @default true for checkpoint archives, false for everything else
   */
  verify?: boolean;
  /**
   * Plan only: no network at all (the run is not even looked up). Results are `skipped` with
   * reason `dry-run` and `files` holds the plan (status `planned`). The plan's names are checked
   * as MLflow checks them, but not against the run's store (a name too long for S3, GCS or
   * Azure: `checkArtifactPaths`), which only the run's artifact URI names.
   * @default false
   */
  dryRun?: boolean;
  /** Environment to read instead of `process.env` (MLflow, S3 and ARTIFACT_UPLOADER_* variables). */
  env?: Env;
  /**
   * Resume what an interrupted earlier run had sent (docs/resume.md): a file the resume journal
   * has as uploaded, and the store lists with the same size, is not sent again (it counts as
   * `resumed`); an `s3://` multipart upload continues where it stopped. With `false` everything
   * is sent again (the journal is still written, so this run can be resumed).
   * @default true
   */
  resume?: boolean;
  /**
   * The resume journal's directory. Never inside a folder being uploaded.
   * @default ARTIFACT_UPLOADER_JOURNAL_DIR, else $XDG_CACHE_HOME/artifact-uploader/journal, else ~/.cache/artifact-uploader/journal
   */
  journalDir?: string;
  /**
   * Skip files the store already lists, without a journal record (another machine, a wiped
   * cache): `'size'` skips a file listed with the same size (the bytes are not compared);
   * `'checksum'` compares checksums, and is refused for stores whose listing has none (every
   * store today: MLflow's listing reports sizes only). Skipped files count as `resumed`.
   * @default undefined (only the journal decides)
   */
  skipExisting?: 'size' | 'checksum';
  /**
   * Makes the store for the run's artifact URI. Wrap the default to add behaviour (logging,
   * metrics) or to point at a store of your own.
   * @default resolveArtifactStore
   */
  resolveStore?: (artifactUri: string, options: ResolveArtifactStoreOptions) => ArtifactStore;
}

/** What every method accepts. */
export interface OperationOptions<S extends StageName = StageName> {
  /**
   * The artifact kind whose config switch and destination apply (one of the stage's kinds).
   * @default see each method
   */
  kind?: ArtifactKind<S>;
  /** Overrides the uploader's `verify` for this call. */
  verify?: boolean;
  /** Cancels this call (together with the uploader's signal). */
  signal?: AbortSignal;
}

/** Options of `uploadFile`. */
export interface UploadFileCallOptions<S extends StageName = StageName> extends OperationOptions<S> {
  /**
   * Artifact directory the file goes into, as in MLflow's `log_artifact`: the file lands at
   * `<artifactPath>/<file name>`.
   * @default the kind's `artifactPath` when `kind` is given, else the artifact root
   */
  artifactPath?: string;
}

/** Options of `uploadFiles`. */
export interface UploadFilesCallOptions<S extends StageName = StageName> extends UploadFileCallOptions<S> {
  /**
   * Keep the files' paths relative to this directory (they must be inside it) instead of
   * putting every file directly into `artifactPath`.
   * @default none: each file lands at `<artifactPath>/<file name>`
   */
  baseDir?: string;
}

/** Include/exclude globs (the config file's glob syntax: see docs/configuration.md). */
export interface FilterOptions {
  /**
   * Only files matching one of these globs are uploaded, e.g. `['*.safetensors', 'config.json']`.
   * @default the stage's `include` from the config; empty means every file
   */
  include?: string | readonly string[];
  /**
   * Files (and directories) matching one of these globs are left out, on top of the stage's
   * `exclude` from the config.
   * @default []
   */
  exclude?: string | readonly string[];
}

/** Options of `uploadDirectory`. */
export interface UploadDirectoryCallOptions<S extends StageName = StageName> extends OperationOptions<S>, FilterOptions {
  /**
   * Artifact directory the directory's contents go into, as in MLflow's `log_artifacts`.
   * @default the kind's `artifactPath` when `kind` is given, else the artifact root
   */
  artifactPath?: string;
  /**
   * Leave out files on the default skip list (temporary files, caches, lock files, editor
   * leftovers: see `shouldSkipFile`).
   * @default false (true for `uploadCheckpoint`)
   */
  skipDefaultFiles?: boolean;
}

/** Options of `uploadCheckpoint`. */
export interface UploadCheckpointCallOptions<S extends StageName = StageName> extends OperationOptions<S>, FilterOptions {
  /**
   * Artifact directory of the checkpoint.
   * @default the kind's `artifactPath` in the config (`checkpoint` for training, `trials` for hpo)
   */
  artifactPath?: string;
  /**
   * Return `skipped` (reason `disabled-by-config`) when the config disables this kind. With
   * `false` the config switch is ignored (`MLFLOW_SKIP_ARTIFACT_LOGGING` still applies).
   * @default true
   */
  skipIfDisabled?: boolean;
  /** Leave out files on the default skip list (`shouldSkipFile`). @default true */
  skipDefaultFiles?: boolean;
}

/** Options of `uploadCheckpointArchive`. */
export interface UploadCheckpointArchiveCallOptions<S extends StageName = StageName> extends OperationOptions<S> {
  /**
   * The archive's manifest (as `createCheckpointArchive` returns it), or the path of its JSON.
   * It is uploaded beside the archive as `<name>.manifest.json`, with the verification outcome
   * filled in.
   * @default the `<name>.manifest.json` file next to the archive, if there is one; else no manifest
   */
  manifest?: CheckpointManifest | string;
  /**
   * Artifact path of the archive file itself (not a directory).
   * @default the kind's `artifactPath` for `bestTrialArchive` (`best_trial_checkpoint.tar.gz`), else `<kind's artifactPath>/<archive file name>`
   */
  artifactPath?: string;
  /** Like `uploadCheckpoint`'s. @default true */
  skipIfDisabled?: boolean;
}

/** Options of `archiveAndUploadCheckpoint`. */
export interface ArchiveAndUploadCheckpointCallOptions<S extends StageName = StageName> extends OperationOptions<S>, FilterOptions {
  /**
   * Artifact path of the archive file.
   * @default as for `uploadCheckpointArchive`, with the file name `best_trial_checkpoint.tar.gz`
   */
  artifactPath?: string;
  /** Like `uploadCheckpoint`'s. @default true */
  skipIfDisabled?: boolean;
  /** gzip level, 0–9. @default 1 (`DEFAULT_COMPRESSION_LEVEL`) */
  level?: number;
}

/** The options each method reads, by method name: what a call is checked against. */
const CALL_OPTION_NAMES = {
  uploadFile: ['kind', 'verify', 'signal', 'artifactPath'],
  uploadFiles: ['kind', 'verify', 'signal', 'artifactPath', 'baseDir'],
  uploadDirectory: ['kind', 'verify', 'signal', 'artifactPath', 'include', 'exclude', 'skipDefaultFiles'],
  uploadCheckpoint: ['kind', 'verify', 'signal', 'artifactPath', 'include', 'exclude', 'skipDefaultFiles', 'skipIfDisabled'],
  uploadCheckpointArchive: ['kind', 'verify', 'signal', 'artifactPath', 'manifest', 'skipIfDisabled'],
  archiveAndUploadCheckpoint: ['kind', 'verify', 'signal', 'artifactPath', 'include', 'exclude', 'skipIfDisabled', 'level'],
} as const satisfies {
  uploadFile: readonly (keyof UploadFileCallOptions)[];
  uploadFiles: readonly (keyof UploadFilesCallOptions)[];
  uploadDirectory: readonly (keyof UploadDirectoryCallOptions)[];
  uploadCheckpoint: readonly (keyof UploadCheckpointCallOptions)[];
  uploadCheckpointArchive: readonly (keyof UploadCheckpointArchiveCallOptions)[];
  archiveAndUploadCheckpoint: readonly (keyof ArchiveAndUploadCheckpointCallOptions)[];
};

/**
 * Checks a call's options as the constructor checks its own ({@link resolveUploaderOptions}):
 * a misspelt name (`artifactPaht`) uploaded to the artifact root, `verify: 'no'` verified,
 * `signal: {}` was ignored (or broke `AbortSignal.any` beside the uploader's signal). The
 * values checked elsewhere (`kind`, `artifactPath`, globs, `manifest`, `level`) are left to
 * those checks.
 *
 * @throws {InvalidArgumentError} naming the option.
 * @example
 * ```ts
 * assertCallOptions('uploadFile', { artifactPath: 'eval' });
 * ```
 * @internal
 */
export function assertCallOptions(method: string, options: object): void {
  const known: readonly string[] | undefined = CALL_OPTION_NAMES[method as keyof typeof CALL_OPTION_NAMES];
  if (known === undefined) return;
  assertOnlyKnown(options, known, { method: `${method}()` });
  const call = options as Partial<Record<'verify' | 'skipIfDisabled' | 'skipDefaultFiles' | 'signal', unknown>>;
  for (const name of ['verify', 'skipIfDisabled', 'skipDefaultFiles'] as const) {
    if (call[name] !== undefined && typeof call[name] !== 'boolean') {
      throw new InvalidArgumentError(name, `Expected \`${name}\` to be a boolean, got ${describeValue(call[name])}.`);
    }
  }
  assertSignal(call.signal);
}

/**
 * The artifact kind each method answers to, per stage, when the call gives no `kind`:
 *
 * | method | training | conversion | benchmark | hpo |
 * |---|---|---|---|---|
 * | `uploadCheckpoint` | `checkpoint` | `onnxModel` | `results` | `trialCheckpoints` |
 * | `uploadCheckpointArchive`, `archiveAndUploadCheckpoint` | `checkpoint` | `onnxModel` | `results` | `bestTrialArchive` |
 *
 * `uploadFile`, `uploadFiles` and `uploadDirectory` have no default kind: without one only the
 * stage's master switch (`<stage>.enabled`) applies.
 *
 * @example
 * ```ts
 * DEFAULT_KINDS.archive.hpo; // 'bestTrialArchive'
 * ```
 */
export const DEFAULT_KINDS = {
  checkpoint: { training: 'checkpoint', conversion: 'onnxModel', benchmark: 'results', hpo: 'trialCheckpoints' },
  archive: { training: 'checkpoint', conversion: 'onnxModel', benchmark: 'results', hpo: 'bestTrialArchive' },
} as const satisfies Record<string, Record<StageName, ArtifactKind>>;

/**
 * Default archive file name of `archiveAndUploadCheckpoint`.
 *
 * @example
 * ```ts
 * await uploader.archiveAndUploadCheckpoint('ckpt', { artifactPath: `trials/7/${DEFAULT_ARCHIVE_NAME}` });
 * ```
 */
export const DEFAULT_ARCHIVE_NAME = 'best_trial_checkpoint.tar.gz';

/**
 * The files in flight an operation starts with and may grow to. `concurrency` is the option,
 * else the stage's from the tracking config; the default (8) grows up to 64 unless
 * `maxConcurrency` says otherwise, and one the user chose stays fixed unless `maxConcurrency`
 * lets it grow. A `maxConcurrency` below the default lowers the start to it.
 *
 * @throws {ConfigError} when `maxConcurrency` is below the concurrency the tracking config sets
 *   (file, `config` option or ARTIFACT_UPLOADER_CONCURRENCY): neither can win without
 *   breaking the other. (Both options at once are checked by {@link resolveUploaderOptions}.)
 * @example
 * ```ts
 * operationConcurrency({ maxConcurrency: 4 }, 8, 'training'); // { concurrency: 4, maxConcurrency: 4 }
 * ```
 * @internal
 */
export function operationConcurrency(
  options: Pick<ArtifactUploaderOptions, 'concurrency' | 'maxConcurrency'>,
  configured: number,
  stage: StageName,
): { concurrency: number; maxConcurrency: number } {
  const concurrency = options.concurrency ?? configured;
  const max = options.maxConcurrency;
  if (max === undefined) return { concurrency, maxConcurrency: concurrency === DEFAULT_CONCURRENCY ? MAX_CONCURRENCY : concurrency };
  if (max >= concurrency) return { concurrency, maxConcurrency: max };
  if (options.concurrency === undefined && concurrency === DEFAULT_CONCURRENCY) return { concurrency: max, maxConcurrency: max };
  throw new ConfigError(
    `\`maxConcurrency\` (${max}) is below the ${stage} stage's concurrency (${concurrency}) from the tracking config (the file, the \`config\` option or ${CONCURRENCY_ENV}): uploads start with that many files in flight.`,
    {
      issues: [{ path: `${stage}.concurrency`, message: `${concurrency} is above maxConcurrency ${max}` }],
      hint: `Set maxConcurrency (--max-concurrency) to at least ${concurrency}, or lower ${stage}.concurrency (or ${CONCURRENCY_ENV}) to ${max} or less.`,
    },
  );
}

/** The constructor's options, checked and defaulted. @internal */
export interface ResolvedUploaderOptions<S extends StageName = StageName> extends ArtifactUploaderOptions<S> {
  onError: 'return' | 'throw';
  dryRun: boolean;
  progressIntervalMs: number;
  env: Env;
}

/**
 * Checks the constructor's options: every problem is a programmer error, thrown at once.
 *
 * @example
 * ```ts
 * resolveUploaderOptions({ stage: 'training' }).onError; // 'return'
 * ```
 * @internal
 */
export function resolveUploaderOptions<S extends StageName>(options: ArtifactUploaderOptions<S>): ResolvedUploaderOptions<S> {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('options', `new ArtifactUploader() needs an options object with a stage (${STAGES.join(', ')}).`);
  }
  assertStage(options.stage);
  assertKnownOptions(options);
  const { concurrency, onError = 'return', progressIntervalMs = DEFAULT_PROGRESS_INTERVAL_MS } = options;
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > MAX_CONCURRENCY)) {
    throw new InvalidArgumentError('concurrency', `Expected \`concurrency\` to be an integer from 1 to ${MAX_CONCURRENCY}, got ${describeValue(concurrency)}.`);
  }
  const { maxConcurrency } = options;
  if (maxConcurrency !== undefined && (!Number.isInteger(maxConcurrency) || maxConcurrency < 1 || maxConcurrency > MAX_CONCURRENCY)) {
    throw new InvalidArgumentError('maxConcurrency', `Expected \`maxConcurrency\` to be an integer from 1 to ${MAX_CONCURRENCY}, got ${describeValue(maxConcurrency)}.`);
  }
  // maxConcurrency is the most files in flight; an upload starts with `concurrency` of them, so
  // a max below it could only be broken (it used to be: the start won) or silently lowered.
  if (concurrency !== undefined && maxConcurrency !== undefined && maxConcurrency < concurrency) {
    throw new InvalidArgumentError('maxConcurrency', `Expected \`maxConcurrency\` (${maxConcurrency}) to be at least \`concurrency\` (${concurrency}): uploads start with \`concurrency\` files in flight.`, {
      hint: `Set maxConcurrency to at least ${concurrency} (equal to concurrency keeps it fixed), or lower concurrency to ${maxConcurrency}.`,
    });
  }
  if (onError !== 'return' && onError !== 'throw') {
    throw new InvalidArgumentError('onError', `Expected \`onError\` to be 'return' or 'throw', got ${JSON.stringify(onError)}.`);
  }
  if (typeof progressIntervalMs !== 'number' || !(progressIntervalMs >= 0)) {
    throw new InvalidArgumentError('progressIntervalMs', `Expected \`progressIntervalMs\` to be a number >= 0, got ${String(progressIntervalMs)}.`);
  }
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
    throw new InvalidArgumentError('onProgress', 'Expected `onProgress` to be a function.');
  }
  if (options.skipExisting !== undefined && options.skipExisting !== 'size' && options.skipExisting !== 'checksum') {
    throw new InvalidArgumentError('skipExisting', `Expected \`skipExisting\` to be 'size' or 'checksum', got ${JSON.stringify(options.skipExisting)}.`);
  }
  if (options.runId !== undefined && typeof options.runId !== 'string') {
    throw new InvalidArgumentError('runId', `Expected \`runId\` to be a string, got ${typeof options.runId}.`);
  }
  assertOptionTypes(options);
  return { ...options, onError, dryRun: options.dryRun ?? false, progressIntervalMs, env: options.env ?? process.env };
}

/** What each option not checked on its own must be, by its `typeof` (`null` is never one). */
const OPTION_TYPES = {
  boolean: ['verify', 'dryRun', 'resume'],
  string: ['configDir', 'trackingUri', 'journalDir'],
  function: ['resolveStore'],
  object: ['config', 'retry', 'env', 'multipart', 's3', 'gcs', 'azure'],
} as const satisfies Record<string, readonly (keyof ArtifactUploaderOptions)[]>;

/**
 * Refuses an option of the wrong type. JavaScript callers passed `dryRun: 'false'` (a dry run:
 * the string is truthy), `resume: 'false'` (resumed), `signal: {}` or a `trackingUri` number
 * (a `failed` result whose error was a bare TypeError's text), `logger: 'x'` (a TypeError at the
 * first log line): none was refused when the uploader was made, as the docs say.
 */
function assertOptionTypes(options: ArtifactUploaderOptions): void {
  for (const [type, names] of Object.entries(OPTION_TYPES)) {
    for (const name of names) {
      const value: unknown = options[name];
      if (value !== undefined && (value === null || typeof value !== type)) {
        const expected = type === 'object' ? 'an object' : `a ${type}`;
        throw new InvalidArgumentError(name, `Expected \`${name}\` to be ${expected}, got ${describeValue(value)}.`);
      }
    }
  }
  assertSignal(options.signal);
  const { logger } = options;
  if (logger !== undefined && (logger === null || (['debug', 'info', 'warn', 'error'] as const).some((level) => typeof logger[level] !== 'function'))) {
    throw new InvalidArgumentError('logger', 'Expected `logger` to have debug, info, warn and error methods.', {
      hint: 'Pass console, a pino or winston logger, or createStreamLogger().',
    });
  }
  // Checked now rather than at the first request: ./mlruns makes none, and a bad value would
  // wait for the day the same code meets a tracking server. Without env: MLflow's variables
  // are still read, and refused, where they were.
  if (options.retry !== undefined) resolveRetryOptions(options.retry, {});
}

/**
 * Every option `new ArtifactUploader()` reads. A record rather than a list, so that an option
 * added to {@link ArtifactUploaderOptions} and not here is a compile error.
 */
const UPLOADER_OPTION_NAMES: Record<keyof ArtifactUploaderOptions, true> = {
  stage: true,
  runId: true,
  configDir: true,
  config: true,
  trackingUri: true,
  concurrency: true,
  maxConcurrency: true,
  retry: true,
  logger: true,
  signal: true,
  onProgress: true,
  progressIntervalMs: true,
  onError: true,
  verify: true,
  dryRun: true,
  env: true,
  resume: true,
  journalDir: true,
  skipExisting: true,
  resolveStore: true,
  multipart: true,
  s3: true,
  gcs: true,
  azure: true,
};

/**
 * Every option name `new ArtifactUploader()` reads, `stage` first. The stage helpers accept these
 * beside their own fields, and list them in the hint for a name they do not know.
 *
 * @example
 * ```ts
 * UPLOADER_OPTIONS.includes('concurrency'); // true
 * ```
 * @internal
 */
export const UPLOADER_OPTIONS: readonly (keyof ArtifactUploaderOptions)[] = Object.freeze(Object.keys(UPLOADER_OPTION_NAMES) as (keyof ArtifactUploaderOptions)[]);

/**
 * Refuses an option name the uploader does not read. A misspelt option from JavaScript
 * (`concurency: 4`) did nothing: the upload went on with the default, as a misspelt
 * `ARTIFACT_UPLOADER_*` variable used to (refused since, in config/load.ts).
 */
function assertKnownOptions(options: object): void {
  // No method named: a stage helper checks its options (its own fields named) before it passes them on.
  assertOnlyKnown(options, UPLOADER_OPTIONS);
}

/** How {@link assertOnlyKnown} names the function called and lists what it accepts. */
export interface KnownOptionsWording {
  /** The function or method called, e.g. `uploadFile()`. @default none named (the constructor) */
  method?: string;
  /**
   * The sentence of the hint that lists the accepted names, when `known` as one list would
   * mislead (a stage helper's own fields come first, apart from the uploader's).
   * @default `The options are: <known, joined>`
   */
  listed?: string;
  /** Where the options are documented. @default 'docs/uploader.md' */
  docs?: string;
}

/**
 * Refuses the first option of `options` not in `known`, with the closest known name. One set to
 * `undefined` passes: it means "not set" (docs/architecture.md), so it changes nothing either way.
 *
 * @throws {InvalidArgumentError} naming the option, with the closest name of `known` if one is close.
 * @example
 * ```ts
 * assertOnlyKnown({ levle: 9 }, ['kind', 'level'], { method: 'archiveAndUploadCheckpoint()' }); // throws: did you mean `level`?
 * ```
 * @internal
 */
export function assertOnlyKnown(options: object, known: readonly string[], wording: KnownOptionsWording = {}): void {
  const unknown = Object.entries(options).find(([name, value]) => value !== undefined && !known.includes(name))?.[0];
  if (unknown === undefined) return;
  const suggestion = closestMatch(unknown, known);
  const { method } = wording;
  throw new InvalidArgumentError(unknown, `Unknown option \`${unknown}\`${method ? ` of ${method}` : ''}${suggestion ? ` (did you mean \`${suggestion}\`?)` : ''}.`, {
    hint: `Remove it${suggestion ? ` or rename it to \`${suggestion}\`` : ''}. ${wording.listed ?? `The options are: ${known.join(', ')}`} (${wording.docs ?? 'docs/uploader.md'}).`,
  });
}

/** instanceof: AbortSignal.any() (which joins the uploader's signal with a call's) takes nothing else. */
function assertSignal(signal: unknown): void {
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new InvalidArgumentError('signal', `Expected \`signal\` to be an AbortSignal, got ${describeValue(signal)}.`, {
      hint: 'Pass an AbortController\'s `signal`, or AbortSignal.timeout(ms).',
    });
  }
}
