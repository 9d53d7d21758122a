/**
 * Text formatting for the CLI: sizes, durations, rates, aligned tables, and the JSON document
 * of `--json` (errors as their `toJSON()`, secrets redacted).
 *
 * @module
 */
import { formatBytes } from '../core/format.js';
import { redactForJson } from '../core/logger.js';
import type { Env } from '../core/env.js';

/** `1234` → `1.2 s`, `75000` → `1m15s`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const whole = Math.round(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s).padStart(2, '0')}s`;
}

/** The units of an age on the command line (`--older-than 7d`, `--ready-timeout 15m`), in ms. */
export const AGE_UNITS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** An age as the command line takes it back: in the largest unit that says it exactly (`7d`, `90m`, `0.5s`). */
export function formatAge(ms: number): string {
  const unit = (['w', 'd', 'h', 'm'] as const).find((u) => ms >= AGE_UNITS[u]! && ms % AGE_UNITS[u]! === 0);
  return unit ? `${ms / AGE_UNITS[unit]!}${unit}` : `${ms / 1000}s`;
}

/** Bytes per second as `3.2 MiB/s` (rounded like {@link formatBytes}); `-` when there is no rate. */
export function formatRate(bytesPerSecond: number): string {
  return Number.isFinite(bytesPerSecond) && bytesPerSecond > 0 ? `${formatBytes(bytesPerSecond)}/s` : '-';
}

/** The longest ETA worth showing: past a day it says "stalled" better than a number would. */
export const MAX_ETA_MS = 24 * 3600 * 1000;

/**
 * An ETA as text (`12.0 s`, `3m05s`), or `undefined` when there is none worth showing: no rate
 * yet, nothing left, or an estimate beyond {@link MAX_ETA_MS} (a stalled link).
 */
export function formatEta(bytesLeft: number, bytesPerSecond: number): string | undefined {
  if (!(bytesLeft > 0) || !(bytesPerSecond > 0) || !Number.isFinite(bytesLeft) || !Number.isFinite(bytesPerSecond)) return undefined;
  const ms = (bytesLeft / bytesPerSecond) * 1000;
  return ms <= MAX_ETA_MS ? formatDuration(ms) : undefined;
}

/** Aligns rows into columns (two spaces apart), each line indented by `indent`. */
export function table(rows: string[][], indent = '  '): string {
  if (rows.length === 0) return '';
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows
    .map((row) => indent + row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd())
    .join('\n');
}

/**
 * Serialises a value for `--json`: errors become plain objects (their `toJSON()`, or name and
 * message), bigints strings, and every string in it is redacted before serialisation
 * ({@link redactForJson}), so the document is valid JSON whatever a mask replaces: redacting
 * the finished text turned `12345` into `1***` when a secret was `2345`, and took the backslash
 * of an escaped quote after an `Authorization` value.
 */
export function toJsonText(value: unknown): string {
  return JSON.stringify(redactForJson(value), undefined, 2) ?? 'null';
}

/**
 * Library wording the CLI says in its own words: the library's errors name its API
 * (`uploadFile()`, `overwrite: true`), which a shell user cannot call; where a flag, command or
 * variable does the same, the CLI names that instead. Each row is a pattern of the library's
 * text, its replacement (`{command}` is the command that failed) and, when it holds for some
 * commands only, those. Text with no clear CLI counterpart is left as it is.
 */
const CLI_WORDING: ReadonlyArray<readonly [RegExp, string, commands?: readonly string[]]> = [
  [/\b\w+\(\) expects a (file|directory)\b/g, '`artifact-uploader {command}` expects a $1'],
  [/\b\w+\(\) expects a gzip-compressed tar archive\b/g, '`artifact-uploader {command}` expects a gzip-compressed tar archive'],
  [/Pass the \.tar\.gz written by createCheckpointArchive, or let archiveAndUploadCheckpoint\(\) \(uploadHpoArtifacts\(\{ checkpointDir \}\)\) archive the checkpoint directory on the way\./g,
    'Pass the .tar.gz written by `artifact-uploader archive`, or pass the checkpoint directory as --checkpoint-dir (archived, then uploaded).', ['hpo']],
  [/Upload a single file with uploadFile\(\), or pass its parent directory with an `include` filter\./g,
    'Upload a single file with `artifact-uploader file`, or its parent directory with `artifact-uploader dir --include <glob>`.'],
  // `hpo --archive <dir>`: the directory goes in --checkpoint-dir, not in another command.
  [/Upload a directory with uploadDirectory\(\) \(or uploadCheckpoint\(\)\)\./g, 'Pass a checkpoint directory as --checkpoint-dir (archived, then uploaded); --archive takes an archive file.', ['hpo']],
  [/Upload a directory with uploadDirectory\(\) \(or uploadCheckpoint\(\)\)\./g, 'Upload a directory with `artifact-uploader dir` (or `artifact-uploader training` for a checkpoint).'],
  [/; createCheckpointArchive archives a directory\./g, '; a checkpoint archive is made from a directory.'],
  [/upload a single file with uploadFile\./g, 'upload a single file with `artifact-uploader file`.'],
  [/Pass overwrite: true to replace it, or choose another outDir\./g, 'Pass --overwrite to replace it, or choose another --out.'],
  [/\bhubUrl must be the Hub's/g, "--hub-url must be the Hub's", ['publish']],
  [/\bhubUrl must not carry credentials/g, '--hub-url must not carry credentials', ['publish']],
  [/Set hubUrl to a URL/g, 'Pass --hub-url as a URL', ['publish']],
  [/Pass accessToken or set HF_TOKEN/g, 'Set HF_TOKEN'],
  [/into HF_TOKEN or the accessToken option\./g, 'into HF_TOKEN.'],
  [/pass a valid accessToken or set HF_TOKEN/g, 'set HF_TOKEN to a valid token'],
  [/unset MLFLOW_RUN_ID or pass joinEnvRun: false/g, 'unset MLFLOW_RUN_ID or pass --new'],
  [/\(joinEnvRun: false\)/g, '(--new)'],
  [/Check baseDir \(or fineTunedModelsDir in the tracking config file\), or pass modelDir explicitly\./g,
    'Check --fine-tuned-models-dir (or hub.fineTunedModelsDir in artifact-uploader.yaml), or pass --model-dir.'],
  [/Pass a pattern that matches your training output names \(e\.g\. "my-model_\*"\), or modelDir to publish a specific directory\./g,
    'Pass a --pattern that matches your training output names (e.g. "my-model_*"), or --model-dir to publish a specific directory.'],
  [/No model directory to publish: pass modelDir, or baseDir to search for the newest training output\./g,
    'No model directory to publish: pass --model-dir, or --fine-tuned-models-dir to search for the newest training output.', ['publish']],
  [/\bExpected `repoId` to be\b/g, 'Expected --repo-id to be', ['publish']],
  [/\bExpected `baseModel` to be\b/g, 'Expected --base-model to be', ['publish']],
  [/\bpublish again with idempotencyKey ("[^"]*")/g, 'run the same command again with --idempotency-key $1', ['publish']],
  [/`idempotencyKey` ("[^"]*")/g, '--idempotency-key $1', ['publish']],
  [/Check the path, or let resolveModelDir find the newest training output\./g, 'Check the path (relative paths are resolved against the working directory).'],
  // A directory with no known layout (model/detect-format.ts), in `publish`, `validate` and `convert-peft`.
  [/\bPoint modelDir at the training output\b/g, 'Point --model-dir at the training output', ['publish']],
  [/\bPoint modelDir at the training output\b/g, 'Point `artifact-uploader {command} <dir>` at the training output', ['validate', 'convert-peft']],
  [/Write both again \(createCheckpointArchive\)/g, 'Write both again (`artifact-uploader archive`)'],
  [/Pass the manifest createCheckpointArchive returned for this archive/g, 'Pass the manifest `artifact-uploader archive` wrote for this archive (--manifest)'],
  [/Pass the manifest written by createCheckpointArchive\/writeManifest, or omit it/g, 'Pass the manifest written by `artifact-uploader archive`, or drop --manifest'],
  [/\b(archive|manifest) written by createCheckpointArchive\b/g, '$1 written by `artifact-uploader archive`', ['archive']],
  [/with `(?:out|manifestPath)` \((`-o`|`--manifest`) on the command line\)/g, 'with $1', ['archive']],
  [/Regenerate it with createCheckpointArchive\./g, 'Regenerate it with `artifact-uploader archive`.'],
  // registerModel() behind `register` and the --register of `training` and `conversion`.
  [/\bregisterModel\(\) needs the run the model comes from: pass runId, or run inside withRun\(\) or with MLFLOW_RUN_ID set\./g,
    '`artifact-uploader {command}` needs the run the model comes from: pass --run-id, or set MLFLOW_RUN_ID.'],
  [/\bregisterModel\(\) needs an MLflow tracking server/g, '`artifact-uploader {command}` needs an MLflow tracking server'],
  [/Pass the artifactPath the model was uploaded to \(e\.g\. "onnx" for uploadConversionArtifacts\)/g,
    'Pass the --artifact-path the model was uploaded to (e.g. "onnx" for `artifact-uploader conversion`)', ['register']],
  [/worth of files, or pass localPath\./g, 'worth of files, or pass --local-path.', ['register']],
  [/\blocalPath\b/g, '--local-path', ['register']],
  [/\breadyTimeoutMs must be > 0, got [^.]*\./g, '--ready-timeout must be more than 0.', ['register']],
  [/\bRaise readyTimeoutMs if the registry is slow to copy large models\./g, 'If the registry is slow to copy large models, run the command again with a longer --ready-timeout (e.g. 15m): the version it made was removed (one an earlier run with the same --idempotency-key made stays, and is waited for again).', ['register']],
  [/\bartifactPath ("[^"]*" )/g, '--artifact-path $1', ['register']],
  // `training` and `conversion` have --idempotency-key with --register as `register` has it.
  [/\brun the same call again with idempotencyKey ("[^"]*")/g, 'run the same command again with --idempotency-key $1', ['register', 'training', 'conversion']],
  [/\bwithout an idempotencyKey, another call makes another version\./g, 'without --idempotency-key, another run of the command makes another version.', ['register', 'training', 'conversion']],
  // REGISTRY_AFTER_UPLOAD's hint gives the `register` command; the call in code is not the CLI user's.
  [/ \(in code: registerModel\(\{[^}]*\}\)\)/g, '', ['training', 'conversion']],
  [/\bthe journalDir option\b/g, '--journal-dir'],
  // Global flags: every command has them.
  [/`maxConcurrency` \((\d+)\) is below/g, '--max-concurrency $1 is below'],
  [/from the tracking config \(the file, the `config` option or ARTIFACT_UPLOADER_CONCURRENCY\)/g, 'from the tracking config (artifact-uploader.yaml or ARTIFACT_UPLOADER_CONCURRENCY)'],
  [/\bSet maxConcurrency \(--max-concurrency\) to\b/g, 'Set --max-concurrency to'],
  [/\bsince the `concurrency` option sets the concurrency here\b/g, 'since --concurrency sets the concurrency here'],
  // `publish` reads the config for its `hub` section only (resolveTrackingConfig's concurrencyUnused).
  [/\bsince nothing here uses the concurrency \(([^)]*)\); `new ArtifactUploader\(\)` and the stage helpers refuse it\./g,
    'since this command does not use the concurrency ($1); the upload commands (training, conversion, benchmark, hpo, file, dir) refuse it.'],
  [/\bskipExisting: '(size|checksum)'/g, '--skip-existing $1'],
  [/\brunId \/ MLFLOW_RUN_ID\b/g, '--run-id / MLFLOW_RUN_ID'],
  // The library cannot tell (the CLI passes every URI as the option); the CLI names its source.
  [/\bthe tracking URI \(the trackingUri option, else MLFLOW_TRACKING_URI\)/g, '{trackingUri}'],
  [/\bleave runId out\b/g, 'leave --run-id out'],
  [/\brunId ("[^"]*" is not a valid MLflow run id)/g, '--run-id $1'],
  [/\bpass another configDir\b/g, 'pass another --config-dir'],
  [/\bconfigDir (\S+) is a file, not a directory\. Pass the directory\b/g, '--config-dir $1 is a file, not a directory. Pass the directory'],
  [/\bexperimentId \/ MLFLOW_EXPERIMENT_ID\b/g, '--experiment-id / MLFLOW_EXPERIMENT_ID', ['runs start']],
  [/\bexperimentName \/ MLFLOW_EXPERIMENT_NAME\b/g, '--experiment-name / MLFLOW_EXPERIMENT_NAME', ['runs start']],
  [/\bexperimentId (\S+) is the experiment\b/g, '--experiment-id $1 is the experiment', ['runs start']],
  [/\bexperimentId=(\S+): (no such experiment\b|experiment ")/g, '--experiment-id $1: $2', ['runs start']],
  [/\bexperimentId ("[^"]*" is not a valid MLflow experiment id)/g, '--experiment-id $1', ['runs start']],
  [/\bexperimentName (must be a non-empty string|is \d+ characters long)/g, '--experiment-name $1', ['runs start']],
  [/\bto pick an experiment by name use experimentName\./g, 'to pick an experiment by name use --experiment-name.', ['runs start']],
  [/\brunId=([^\s:]+)(: no such run|: the run is deleted| belongs to experiment)/g, '--run-id $1$2', ['runs start']],
  [/\bnested starts a new run under the active one, and runId joins an existing run: pass one of them\./g,
    "--nested starts a new run under MLFLOW_RUN_ID's run, and --run-id joins an existing run: pass one of them.", ['runs start']],
  [/\bDrop runId to start a child run, or drop nested to join that run\./g, 'Drop --run-id to start a child run, or drop --nested to join that run.', ['runs start']],
  [/\bor start the run without nested\./g, 'or start the run without --nested.', ['runs start']],
  [/\brunName ("[^"]*") and tag mlflow\.runName=("[^"]*") disagree\./g, '--run-name $1 and --tag mlflow.runName=$2 disagree.', ['runs start']],
  [/\bGive the name once, as runName\./g, 'Give the name once, as --run-name.', ['runs start']],
  [/\boutDir (\S+) (contains|is inside) the input directory\b/g, '-o $1 $2 the input directory', ['convert-peft']],
  [/\bLeave outDir \(`-o` on the command line\) unset to write\b/g, 'Leave -o out to write', ['convert-peft']],
  // Option names, only where the command has the flag: elsewhere the value came from the config.
  [/`artifactPath`/g, '--artifact-path', ['file', 'dir']],
  [/`trialId`/g, '--trial-id', ['hpo']],
  [/\bmetricsJsonPath; the checkpoint directory goes in checkpointDir\./g, '--metrics; the checkpoint directory is the first argument.', ['training']],
  [/\bas metricsJsonPath\b/g, 'as --metrics', ['training']],
  [/leave it out with `exclude`(?: or `filter`)?/g, 'leave it out with --exclude <glob>', ['archive', 'dir']],
  // The CLI aborts its operation on SIGINT/SIGTERM only (cli/main.ts).
  [/The operation was aborted by its AbortSignal\./g, 'Interrupted by SIGINT or SIGTERM.'],
  [/\b\w+\(\) was aborted by its AbortSignal/g, 'Interrupted by SIGINT or SIGTERM'],
  [/\bArchiving (.+?) was aborted by its AbortSignal\b/g, 'Interrupted by SIGINT or SIGTERM while archiving $1'],
  [/\bRun the same call again when ready: archiving starts over\b/g, 'Run the same command again when ready: archiving starts over'],
  // The warning of an upload with no run (uploader/gate.ts).
  [/Pass `runId` to the uploader, call `startRun\(\)` \(or wrap the work in `withRun\(run, fn\)`\) first, or set MLFLOW_RUN_ID\./g,
    'Pass --run-id, set MLFLOW_RUN_ID, or start one first with `artifact-uploader runs start`.'],
];

/**
 * Where the CLI took its tracking URI from, as its hints name it: `--tracking-uri`, else
 * MLFLOW_TRACKING_URI, else neither (`./mlruns`), read in the order `CliContext.trackingUri`
 * reads them (no config file sets it).
 *
 * @example
 * ```ts
 * trackingUriSource({ trackingUri: 'http://127.0.0.1:5000' }, {}); // '--tracking-uri'
 * ```
 */
export function trackingUriSource(globals: { trackingUri?: string | undefined }, env: Env): string {
  if (globals.trackingUri !== undefined) return '--tracking-uri';
  // An empty variable is unset, as for the URI itself.
  if (env.MLFLOW_TRACKING_URI) return 'MLFLOW_TRACKING_URI (no --tracking-uri given)';
  return '--tracking-uri / MLFLOW_TRACKING_URI (neither is set: ./mlruns)';
}

/**
 * An error message or hint of the library in CLI terms (see {@link CLI_WORDING}).
 *
 * @param command The command that failed (`dir`, `runs start`); `''` before one was chosen.
 * @param trackingUriFrom Where the tracking URI came from ({@link trackingUriSource}); without
 *   it (before the options were read), both are named.
 */
export function cliWording(text: string, command: string, trackingUriFrom = '--tracking-uri (else MLFLOW_TRACKING_URI)'): string {
  const name = command || '<command>';
  return CLI_WORDING.reduce(
    (out, [pattern, replacement, commands]) =>
      commands && !commands.includes(command) ? out : out.replace(pattern, replacement.replaceAll('{command}', name).replaceAll('{trackingUri}', trackingUriFrom)),
    text,
  );
}
