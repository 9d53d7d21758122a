/**
 * The upload commands: `training`, `conversion`, `benchmark`, `hpo` (one per stage helper),
 * and `file` / `dir` (the uploader itself, under `--stage`). All print the same shape: one
 * line per operation (uploaded, skipped and why, or failed), the plan for `--dry-run`, and with
 * `--json` the `UploadResult`s as `results`.
 *
 * @module
 */
import { InvalidArgumentError, isArtifactUploaderError } from '../../core/errors.js';
import { assertArtifactKind } from '../../config/load.js';
import type { ArtifactKind, StageName } from '../../config/schema.js';
import {
  ArtifactUploader,
  uploadBenchmarkArtifacts,
  uploadConversionArtifacts,
  uploadHpoArtifacts,
  uploadTrainingArtifacts,
  type RegisterModelResult,
  type StageRegisterOptions,
  type UploadProgressEvent,
  type UploadResult,
} from '../../index.js';
import { NO_RUN_WARNING } from '../../uploader/gate.js';
import type { CliContext, CommandOutcome } from '../context.js';
import { EXIT_CODES, exitCodeForError, type ExitCode } from '../exit-codes.js';
import { formatBytes } from '../../core/format.js';
import { redact } from '../../core/logger.js';
import { cliWording, formatDuration, table } from '../format.js';
import type { ProgressDisplay } from '../progress.js';
import { formatRegistered } from './register.js';

type Stage = 'training' | 'conversion' | 'benchmark' | 'hpo';

/** The options every uploader and stage helper gets from the global options. */
function uploaderOptions(ctx: CliContext, stage: Stage, progress: ProgressDisplay) {
  const { concurrency, maxConcurrency } = ctx.globals;
  // The library refuses it too, in its own option names; here it is said in the flags'.
  if (concurrency !== undefined && maxConcurrency !== undefined && maxConcurrency < concurrency) {
    throw new InvalidArgumentError('--max-concurrency', `--max-concurrency ${maxConcurrency} is below --concurrency ${concurrency}: uploads start with --concurrency files in flight, and --max-concurrency is the most they may grow to.`, {
      hint: `Pass --max-concurrency ${concurrency} or more (equal to --concurrency keeps it fixed), or lower --concurrency to ${maxConcurrency}.`,
    });
  }
  return {
    stage,
    runId: ctx.globals.runId,
    // configDir, and the environment with ARTIFACT_UPLOADER_CONFIG_DIR resolved the CLI's way.
    ...ctx.configLocation(),
    trackingUri: ctx.trackingUri(),
    concurrency: ctx.globals.concurrency,
    maxConcurrency: ctx.globals.maxConcurrency,
    dryRun: ctx.globals.dryRun === true,
    logger: ctx.logger,
    signal: ctx.signal,
    resume: ctx.resumeEnabled(),
    journalDir: ctx.journalDir(),
    skipExisting: ctx.globals.skipExisting,
    onProgress: (event: UploadProgressEvent) => {
      if (event.type === 'phase') {
        if (event.phase === 'archiving' || event.phase === 'uploading') progress.phase(event.phase);
        else if (event.phase === 'verifying' || event.phase === 'done') progress.stop();
      } else if (event.type === 'totals' || event.type === 'archive') {
        // `archive` events come during the archiving phase (bytes read), `totals` while uploading.
        progress.update(event);
      }
    },
  };
}

/** A stage command's stage; `--stage`, when given, must agree. */
function stageOf(ctx: CliContext, command: Stage): Stage {
  if (ctx.globals.stage !== undefined && ctx.globals.stage !== command) {
    throw new InvalidArgumentError('--stage', `--stage ${ctx.globals.stage} contradicts the \`${command}\` command, which uploads under the ${command} stage.`, {
      hint: `Drop --stage, or use \`artifact-uploader file --stage ${ctx.globals.stage} <path>\` to upload under another stage's config.`,
    });
  }
  return command;
}

function requireStage(ctx: CliContext, command: string): Stage {
  const stage = ctx.globals.stage as Stage | undefined;
  if (stage === undefined) {
    throw new InvalidArgumentError('--stage', `\`${command}\` needs --stage: the stage whose config (enabled switches, include/exclude, concurrency) applies.`, {
      hint: `Pass --stage training, conversion, benchmark or hpo, e.g. \`artifact-uploader ${command} --stage training ...\`.`,
    });
  }
  return stage;
}

/** Runs `fn` with a progress display that is always stopped. */
async function withProgress<T>(ctx: CliContext, fn: (progress: ProgressDisplay) => Promise<T>): Promise<T> {
  const progress = await ctx.progress();
  try {
    return await fn(progress);
  } finally {
    progress.stop();
  }
}

/** What a summary line calls a result: its kind, else where it went (`''` is the root), else its stage. */
function label(result: UploadResult): string {
  // An empty label printed `dir : uploaded 3 file(s)`.
  if (result.kind === undefined && result.artifactPath === '') return '(artifact root)';
  return result.kind ?? result.artifactPath ?? result.stage;
}

function skipText(result: UploadResult): string {
  switch (result.reason) {
    case 'no-run':
      return 'no MLflow run: pass --run-id, set MLFLOW_RUN_ID, or export MLFLOW_RUN_ID=$(artifact-uploader runs start) first';
    case 'disabled-by-config':
      return `disabled in the tracking config${result.disabledBy ? ` (${result.disabledBy})` : ''}`;
    case 'disabled-by-env':
      return 'MLFLOW_SKIP_ARTIFACT_LOGGING is set';
    case 'empty':
      return 'nothing to upload (empty, or every file filtered out)';
    default:
      return result.reason ?? 'skipped';
  }
}

function destination(result: UploadResult, artifactPath: string): string {
  if (!result.artifactUri) return artifactPath;
  const root = result.artifactUri.replace(/\/+$/, '');
  return artifactPath ? `${root}/${artifactPath}` : root;
}

/** The human summary of one or more results. */
export function formatUploadResults(command: string, results: UploadResult[], dryRun: boolean): string {
  const lines: string[] = [];
  if (dryRun) {
    const runId = results.find((r) => r.runId)?.runId;
    lines.push(`Dry run: nothing was uploaded${runId ? ` (run ${runId})` : ''}. The plan:`);
  }
  for (const result of results) {
    const name = label(result);
    if (result.status === 'failed' && result.reason === 'aborted') {
      // The one error line on stderr says why; here only what was left undone.
      const undone = result.files.filter((f) => f.status !== 'uploaded').length;
      lines.push(`${command} ${name}: interrupted${undone > 0 ? `, ${undone} file(s) not uploaded` : ''}`);
      continue;
    }
    if (result.status === 'failed') {
      lines.push(`${command} ${name}: FAILED${result.reason ? ` (${result.reason})` : ''}: ${result.error?.message ?? 'see the error above'}`);
      const failed = result.files.filter((f) => f.status === 'failed' || f.status === 'cancelled');
      if (failed.length > 0) lines.push(table(failed.map((f) => [f.status, f.artifactPath, f.error ?? ''])));
      continue;
    }
    if (result.status === 'skipped' && result.reason !== 'dry-run') {
      lines.push(`${command} ${name}: skipped: ${skipText(result)}`);
      continue;
    }
    const bytes = result.files.reduce((sum, f) => sum + f.size, 0);
    const where = result.artifactPath !== undefined ? destination(result, result.artifactPath) : '';
    if (result.reason === 'dry-run') {
      lines.push(`${name}: ${result.files.length} file(s), ${formatBytes(bytes)} -> ${where || '(artifact root)'}`);
      lines.push(table(result.files.map((f) => [formatBytes(f.size), f.artifactPath, `<- ${f.localPath}`]), '    '));
    } else {
      const verified = result.verification?.status === 'verified' ? ', verified' : '';
      lines.push(
        `${command} ${name}: uploaded ${result.metrics.filesSent} file(s), ${formatBytes(result.metrics.bytesSent)}${result.metrics.filesResumed > 0 || result.metrics.bytesResumed > 0 ? ` (resumed: ${result.metrics.filesResumed} file(s), ${formatBytes(result.metrics.bytesResumed)} not sent again)` : ''} in ${formatDuration(result.durationMs)}${verified}${result.deduplicated ? ' (deduplicated)' : ''}`,
      );
      if (where) lines.push(`  -> ${where}`);
    }
    if (result.skippedFiles.length > 0) {
      lines.push(`  left out:`);
      lines.push(table(result.skippedFiles.map((s) => [s.path, s.reason]), '    '));
    }
  }
  return lines.join('\n');
}

/**
 * A failed result as `--json` and the summary show it: its error's message and hint, and each
 * failed file's error, in CLI terms ({@link cliWording}), as on stderr and as for a thrown error.
 */
function inCliWords(result: UploadResult, command: string, trackingUriFrom: string): UploadResult {
  if (result.status !== 'failed') return result;
  const files = result.files.map((f) => (f.error === undefined ? f : { ...f, error: cliWording(f.error, command, trackingUriFrom) }));
  if (!isArtifactUploaderError(result.error)) return { ...result, files };
  const error = result.error.toJSON();
  for (const key of ['message', 'hint'] as const) if (typeof error[key] === 'string') error[key] = cliWording(error[key], command, trackingUriFrom);
  return { ...result, files, error: error as unknown as UploadResult['error'] };
}

/**
 * The warning for a directory with nothing to upload (skipped, reason `empty`): exit 0, as
 * documented for a skipped upload, but a training step that wrote no checkpoint must not pass
 * for one that did without a word. `undefined` for any other result.
 */
function emptyDirectoryWarning(command: string, result: UploadResult, directory: string | undefined): string | undefined {
  if (result.status !== 'skipped' || result.reason !== 'empty' || directory === undefined) return undefined;
  const names = result.skippedFiles.slice(0, 3).map((s) => s.path).join(', ') + (result.skippedFiles.length > 3 ? `, and ${result.skippedFiles.length - 3} more` : '');
  const why = result.skippedFiles.length > 0 ? `every file in it was left out (${names})` : 'it is empty';
  return `${command} ${label(result)}: nothing was uploaded from ${directory}: ${why}. The command exits 0, as for any skipped upload (reason "empty"); if a step was to write files there, it did not.`;
}

/**
 * Exit code and output for a set of results. `directory` is the one the command uploads (or
 * archives), named by the warning when it had nothing to upload ({@link emptyDirectoryWarning}).
 */
function outcome(ctx: CliContext, command: string, results: UploadResult[], registeredModel?: RegisterModelResult, directory?: string): CommandOutcome {
  let exitCode: ExitCode = EXIT_CODES.OK;
  const { trackingUriFrom } = ctx;
  // Results that failed for one cause (an interrupt cancels every pending upload) print it once.
  const printed = new Set<string>();
  for (const result of results) {
    if (result.status !== 'failed') continue;
    const code = result.error ? exitCodeForError(result.error, ctx.signal?.aborted) : EXIT_CODES.FAILED;
    // The most specific failure wins: usage (2) and model (3) say what to fix, 1 only "try again".
    if (exitCode === EXIT_CODES.OK || exitCode === EXIT_CODES.FAILED) exitCode = code;
    // Masked as every other line: a message may quote what the user configured (an endpoint URL).
    const line = result.error ? `error [${result.error.code}]: ${redact(cliWording(result.error.message, command, trackingUriFrom))}\n` : '';
    if (line && !printed.has(line)) ctx.io.stderr.write(line);
    printed.add(line);
  }
  const warnings = results.flatMap((r) => emptyDirectoryWarning(command, r, directory) ?? []);
  for (const warning of warnings) ctx.logger.warn(warning);
  // The plan's (twin names): on stderr already through the uploader's logger; for `--json` too.
  warnings.push(...results.flatMap((r) => r.warnings ?? []));
  // The uploader warned on stderr already (through ctx.logger); `--json` readers get it too.
  if (results.some((r) => r.status === 'skipped' && r.reason === 'no-run')) warnings.push(cliWording(NO_RUN_WARNING, command));
  const status = results.some((r) => r.status === 'failed') ? 'failed' : results.some((r) => r.status === 'uploaded') ? 'uploaded' : 'skipped';
  const runId = results.find((r) => r.runId)?.runId;
  const worded = results.map((r) => inCliWords(r, command, trackingUriFrom));
  return {
    exitCode,
    data: { status, dryRun: ctx.globals.dryRun === true, runId, results: worded, warnings, ...(registeredModel ? { registeredModel } : {}) },
    text: formatUploadResults(command, worded, ctx.globals.dryRun === true) + (registeredModel ? `\n${formatRegistered(registeredModel)}` : ''),
  };
}

/**
 * `--register NAME [--alias a]... [--idempotency-key k]` of the training and conversion
 * commands. The key is the `register` command's: without it, a CI retry of a whole step made
 * a second version of what it had registered the first time.
 */
function registerOption(options: Record<string, unknown>): StageRegisterOptions | undefined {
  if (options.register === undefined) {
    for (const [option, flag] of [['alias', '--alias'], ['idempotencyKey', '--idempotency-key']] as const) {
      if (options[option] !== undefined) throw new InvalidArgumentError(flag, `${flag} goes with --register NAME.`, { hint: `Add --register <registered model name>, or drop ${flag}.` });
    }
    return undefined;
  }
  return {
    name: String(options.register),
    ...(options.alias !== undefined ? { alias: options.alias as string[] } : {}),
    ...(options.idempotencyKey !== undefined ? { idempotencyKey: String(options.idempotencyKey) } : {}),
  };
}

/** `training <checkpoint-dir> [--metrics file] [--register NAME [--alias a]... [--idempotency-key k]]`. */
export async function runTraining(ctx: CliContext, args: unknown[], options: Record<string, unknown>): Promise<CommandOutcome> {
  const stage = stageOf(ctx, 'training');
  const checkpointDir = ctx.path(String(args[0]));
  const result = await withProgress(ctx, (progress) =>
    uploadTrainingArtifacts({
      ...uploaderOptions(ctx, stage, progress),
      checkpointDir,
      metricsJsonPath: options.metrics !== undefined ? ctx.path(String(options.metrics)) : undefined,
      register: registerOption(options),
    }),
  );
  return outcome(ctx, 'training', [result.checkpoint, ...(result.metrics ? [result.metrics] : [])], result.registeredModel, checkpointDir);
}

/** `conversion <onnx-path> [--register NAME [--alias a]... [--idempotency-key k]]`. */
export async function runConversion(ctx: CliContext, args: unknown[], options: Record<string, unknown>): Promise<CommandOutcome> {
  const stage = stageOf(ctx, 'conversion');
  const register = registerOption(options);
  const result = await withProgress(ctx, (progress) => uploadConversionArtifacts({ ...uploaderOptions(ctx, stage, progress), onnxPath: ctx.path(String(args[0])), register }));
  return outcome(ctx, 'conversion', [result], result.registeredModel);
}

/** `benchmark <results...>`. */
export async function runBenchmark(ctx: CliContext, args: unknown[]): Promise<CommandOutcome> {
  const stage = stageOf(ctx, 'benchmark');
  const paths = (args[0] as string[]).map((p) => ctx.path(p));
  const results = await withProgress(ctx, (progress) => uploadBenchmarkArtifacts({ ...uploaderOptions(ctx, stage, progress), resultsPaths: paths }));
  return outcome(ctx, 'benchmark', results);
}

/**
 * A `--trial-id` that is a missing value printed, not a trial: Python's `None`, `nan`, `inf`;
 * JavaScript's `NaN`, `null`, `undefined`, `Infinity`; a negative or fractional number (the
 * `-1` of "no best trial yet"). The library refuses such numbers; the CLI gets them as strings.
 */
const MISSING_TRIAL_ID = /^(?:none|null|undefined|nan|[-+]?inf(?:inity)?|-\d+(?:\.\d*)?|[-+]?\d*\.\d+)$/i;

/** `hpo --checkpoint-dir <dir> | --archive <path> [--manifest <path>] [--trial-id <id>]`. */
export async function runHpo(ctx: CliContext, _args: unknown[], options: Record<string, unknown>): Promise<CommandOutcome> {
  const stage = stageOf(ctx, 'hpo');
  const checkpointDir = options.checkpointDir as string | undefined;
  const archive = options.archive as string | undefined;
  if ((checkpointDir === undefined) === (archive === undefined)) {
    throw new InvalidArgumentError('--checkpoint-dir', 'hpo needs exactly one of --checkpoint-dir (archived, then uploaded) and --archive (uploaded as it is).', {
      hint: 'e.g. `artifact-uploader hpo --checkpoint-dir trials/17/checkpoint`.',
    });
  }
  if (options.manifest !== undefined && archive === undefined) {
    throw new InvalidArgumentError('--manifest', '--manifest goes with --archive: for --checkpoint-dir the manifest is written while archiving.', {
      hint: 'Drop --manifest, or pass the archive with --archive.',
    });
  }
  if (options.level !== undefined && checkpointDir === undefined) {
    throw new InvalidArgumentError('--level', '--level goes with --checkpoint-dir: --archive is uploaded as it is, at the level it was made with.', {
      hint: 'Drop --level, or give it to `artifact-uploader archive` when the archive is made.',
    });
  }
  const trialId = options.trialId as string | undefined;
  if (trialId !== undefined && MISSING_TRIAL_ID.test(trialId.trim())) {
    throw new InvalidArgumentError('--trial-id', `--trial-id ${JSON.stringify(trialId)} names no trial: it is how a missing or failed value prints (Python's None or nan, a shell's -1), and would upload to trials/${trialId}/. Nothing was uploaded.`, {
      hint: "Pass the trial's number or id (e.g. optuna's trial.number), or leave --trial-id out for the best trial's archive.",
    });
  }
  const result = await withProgress(ctx, (progress) =>
    uploadHpoArtifacts({
      ...uploaderOptions(ctx, stage, progress),
      ...(checkpointDir !== undefined ? { checkpointDir: ctx.path(checkpointDir) } : { archivePath: ctx.path(archive!) }),
      manifest: options.manifest !== undefined ? ctx.path(String(options.manifest)) : undefined,
      trialId,
      level: options.level as number | undefined,
    }),
  );
  return outcome(ctx, 'hpo', [result], undefined, checkpointDir !== undefined ? ctx.path(checkpointDir) : undefined);
}

/** `file --stage <stage> <path> [--artifact-path p] [--kind k]`. */
export async function runFile(ctx: CliContext, args: unknown[], options: Record<string, unknown>): Promise<CommandOutcome> {
  const stage = requireStage(ctx, 'file');
  const result = await withProgress(ctx, async (progress) => {
    const uploader = new ArtifactUploader(uploaderOptions(ctx, stage, progress));
    try {
      return await uploader.uploadFile(ctx.path(String(args[0])), {
        artifactPath: options.artifactPath as string | undefined,
        kind: kindOption(stage, options.kind),
      });
    } finally {
      await uploader.close();
    }
  });
  return outcome(ctx, 'file', [result]);
}

/** `dir --stage <stage> <dir> [--artifact-path p] [--include g]... [--exclude g]... [--kind k]`. */
export async function runDir(ctx: CliContext, args: unknown[], options: Record<string, unknown>): Promise<CommandOutcome> {
  const stage = requireStage(ctx, 'dir');
  const dir = ctx.path(String(args[0]));
  const result = await withProgress(ctx, async (progress) => {
    const uploader = new ArtifactUploader(uploaderOptions(ctx, stage, progress));
    try {
      return await uploader.uploadDirectory(dir, {
        artifactPath: options.artifactPath as string | undefined,
        include: options.include as string[] | undefined,
        exclude: options.exclude as string[] | undefined,
        kind: kindOption(stage, options.kind),
      });
    } finally {
      await uploader.close();
    }
  });
  return outcome(ctx, 'dir', [result], undefined, dir);
}

/** `--kind`, checked against the stage: the same `InvalidArgumentError` the uploader would throw. */
function kindOption(stage: StageName, value: unknown): ArtifactKind | undefined {
  if (value === undefined) return undefined;
  assertArtifactKind(stage, value);
  return value;
}
