/**
 * The `artifact-uploader` command line: the commander program (every command, option and help
 * example) and {@link runCli}, which parses, runs one command and returns its exit code. The
 * I/O is injected, so tests run the CLI in-process; `main.ts` passes the real process's.
 *
 * Start-up is kept light on purpose (Python pipelines call the CLI once per artifact): this
 * module imports only commander and the error classes, and each command's implementation, with
 * the heavy libraries behind it (undici, zod, tar, @huggingface/hub, cli-progress), is imported
 * when that command runs.
 *
 * @module
 */
import { Command, CommanderError, InvalidArgumentError as CommanderArgumentError, Option } from 'commander';
import { closestMatch } from '../config/did-you-mean.js';
import { AbortedError, isArtifactUploaderError } from '../core/errors.js';
import { redact } from '../core/logger.js';
import { VERSION } from '../version.js';
import { CliContext, type CliIo, type CommandOutcome, type GlobalOptions } from './context.js';
import { EXIT_CODES, exitCodeForError, type ExitCode } from './exit-codes.js';
import { AGE_UNITS, cliWording, toJsonText } from './format.js';

export type { CliIo } from './context.js';

/** The pipeline stages (kept equal to the config schema's `STAGES` by a test; not imported, to keep zod out of start-up). */
export const CLI_STAGES = ['training', 'conversion', 'benchmark', 'hpo'] as const;

/** Run statuses `runs end` accepts. */
export const END_STATUSES = ['FINISHED', 'FAILED', 'KILLED'] as const;

/** A command implementation: gets the context, the positional arguments and its own options. */
export type CommandRunner = (ctx: CliContext, args: unknown[], options: Record<string, unknown>) => Promise<CommandOutcome>;

interface PendingCommand {
  name: string;
  load: () => Promise<CommandRunner>;
  args: unknown[];
  options: Record<string, unknown>;
  globals: GlobalOptions;
}

function parseConcurrency(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new CommanderArgumentError('expected an integer from 1 to 64.');
  return n;
}

/**
 * `--run-id`: an empty value is a mistake (`--run-id "$UNSET"` in a script), not "no run id":
 * read as unset, it uploaded to MLFLOW_RUN_ID's run instead, or skipped the upload with exit 0.
 * Surrounding blanks go, as they go from MLFLOW_RUN_ID: `runs start`'s output as Python reads it
 * (`proc.stdout`) ends with a line break.
 */
function parseRunId(value: string): string {
  const runId = value.trim();
  if (runId === '') throw new CommanderArgumentError('expected a run id; leave --run-id out to use MLFLOW_RUN_ID (in a script, check that the variable passed to it is set).');
  return runId;
}

/**
 * `--config-dir` and `--journal-dir`: an empty value is a mistake (`--config-dir "$UNSET"` in a
 * script), as for `--run-id` and `--tracking-uri`, not "no directory": read as unset, it fell
 * back to the variable (else the working directory, the default journal) without a word.
 */
function parseDirectory(flag: string, fallback: string): (value: string) => string {
  return (value) => {
    if (value.trim() === '') throw new CommanderArgumentError(`expected a directory; leave ${flag} out to use ${fallback} (in a script, check that the variable passed to it is set).`);
    return value;
  };
}

function parseLevel(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 9) throw new CommanderArgumentError('expected an integer from 0 (store) to 9 (smallest).');
  return n;
}

function parseNonNegative(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new CommanderArgumentError('expected a number of bytes >= 0.');
  return n;
}


/** `90s`, `30m`, `12h`, `7d`, `2w` → milliseconds. */
export function parseAge(value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([smhdw])$/i.exec(value.trim());
  if (!match) throw new CommanderArgumentError('expected a number and a unit: s, m, h, d or w (e.g. 12h, 7d).');
  return Number(match[1]) * AGE_UNITS[match[2]!.toLowerCase()]!;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((line) => (line.startsWith('#') ? `  ${line}` : `  $ ${line}`)).join('\n')}\n`;
}

/** The full name of a command (`runs start`), without the program's. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * Builds the commander program. Actions do not run commands: they record which one was chosen,
 * with its arguments, for {@link runCli} to run after parsing.
 *
 * @param io Where help, version and parse errors are written.
 * @param onCommand Receives the chosen command.
 */
export function createProgram(io: Pick<CliIo, 'stdout' | 'stderr'>, onCommand: (pending: PendingCommand) => void = () => {}): Command {
  const program = new Command('artifact-uploader');
  // Set before any subcommand exists: subcommands copy these settings when created.
  program
    .exitOverride()
    .configureOutput({ writeOut: (text) => void io.stdout.write(text), writeErr: (text) => void io.stderr.write(text) })
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .showHelpAfterError('(add --help for usage)')
    .allowExcessArguments(false);

  program
    .description('Publish ML pipeline artifacts to MLflow (a tracking server or ./mlruns) and models to the Hugging Face Hub.')
    .version(VERSION, '-V, --version', 'print the version and exit')
    .helpOption('-h, --help', 'show help for a command')
    .option('--run-id <id>', 'MLflow run to upload to (default: MLFLOW_RUN_ID)', parseRunId)
    .option('--tracking-uri <uri>', 'MLflow tracking server (http[s]://...) or local store (file:...) (default: MLFLOW_TRACKING_URI, else ./mlruns)')
    .option('--config-dir <dir>', 'directory holding artifact-uploader.yaml (default: ARTIFACT_UPLOADER_CONFIG_DIR, else the working directory)', parseDirectory('--config-dir', 'ARTIFACT_UPLOADER_CONFIG_DIR, else the working directory'))
    .addOption(new Option('--stage <stage>', 'pipeline stage whose config applies (needed by file and dir)').choices(CLI_STAGES))
    .option('--concurrency <n>', 'parallel file uploads, 1 to 64 (default: ARTIFACT_UPLOADER_CONCURRENCY, else the config file, else 8)', parseConcurrency)
    .option('--max-concurrency <n>', 'the most parallel file uploads a directory may grow to while more pay off (a remote server), 1 to 64 (default: 64 with the default concurrency of 8, else the concurrency set: --concurrency, ARTIFACT_UPLOADER_CONCURRENCY or the config file)', parseConcurrency)
    .option('--dry-run', 'print the plan (each file, size, destination, what is skipped and why) without uploading or writing anything')
    .option('--json', 'print exactly one JSON document on stdout (logs and errors still go to stderr)')
    .addOption(new Option('-q, --quiet', 'print nothing but errors (no progress, no summary)').conflicts('verbose'))
    .option('-v, --verbose', 'print debug logs, and stack traces with errors')
    .option('--no-resume', 'start uploads over instead of resuming what an interrupted run of the same command had sent (see docs/resume.md)')
    .addOption(new Option('--skip-existing <how>', "skip files the store already lists, even without a resume journal record: 'size' (same size; the bytes are not compared) or 'checksum' (refused for stores that list no checksum)").choices(['size', 'checksum']))
    .option(
      '--journal-dir <dir>',
      'where the resume journal lives (default: ARTIFACT_UPLOADER_JOURNAL_DIR, else $XDG_CACHE_HOME or ~/.cache, /artifact-uploader/journal)',
      parseDirectory('--journal-dir', 'ARTIFACT_UPLOADER_JOURNAL_DIR, else the default journal'),
    )
    .addHelpText(
      'after',
      examples(
        'export MLFLOW_RUN_ID=$(artifact-uploader runs start --experiment-name fine-tune)',
        'artifact-uploader training out/checkpoint --metrics out/metrics.json',
        'artifact-uploader conversion out/model.onnx --json',
        'artifact-uploader publish --model-dir out/llama-lora_20240501_093000 --repo-id my-org/llama-lora --dry-run',
        'artifact-uploader runs end --status FINISHED',
        '# Exit codes: 0 uploaded or skipped as configured, 1 failed after retries, 2 usage or config error, 3 invalid model, 130 interrupted (SIGINT/SIGTERM).',
      ),
    );

  const act =
    (load: () => Promise<CommandRunner>) =>
    (...actionArgs: unknown[]): void => {
      const command = actionArgs[actionArgs.length - 1] as Command;
      onCommand({
        name: commandPath(command),
        load,
        args: actionArgs.slice(0, -2),
        options: command.opts(),
        globals: command.optsWithGlobals() as GlobalOptions,
      });
    };
  const uploads = () => import('./commands/upload.js');

  program
    .command('training')
    .description('upload a training checkpoint directory (and its metrics JSON) to the run')
    .argument('<checkpoint-dir>', 'checkpoint directory to upload')
    .option('--metrics <file>', 'metrics JSON file to upload too')
    .option('--register <name>', 'also register the uploaded checkpoint as a new version of this registered model (see docs/registry.md)')
    .option('--alias <alias>', 'with --register: point this alias at the new version (repeatable)', collect)
    .option('--idempotency-key <key>', 'with --register: a rerun with the same key (a CI retry) returns the version made instead of making another')
    .addHelpText(
      'after',
      examples('artifact-uploader training out/checkpoint-500 --metrics out/metrics.json', 'artifact-uploader training out/checkpoint-500 --dry-run', 'artifact-uploader training out/checkpoint-500 --register llama-lora --alias candidate --idempotency-key "$CI_PIPELINE_ID-train"'),
    )
    .action(act(async () => (await uploads()).runTraining));

  program
    .command('conversion')
    .description('upload a converted ONNX model (and its .onnx_data / .onnx.data external-data file) to the run')
    .argument('<onnx-path>', 'the .onnx file')
    .option('--register <name>', 'also register the uploaded model as a new version of this registered model (see docs/registry.md)')
    .option('--alias <alias>', 'with --register: point this alias at the new version (repeatable)', collect)
    .option('--idempotency-key <key>', 'with --register: a rerun with the same key (a CI retry) returns the version made instead of making another')
    .addHelpText(
      'after',
      examples(
        'artifact-uploader conversion out/model.onnx',
        'artifact-uploader conversion out/model.onnx --run-id 0a1b2c3d4e5f60718293a4b5c6d7e8f9 --json',
        'artifact-uploader conversion out/model.onnx --register fraud-classifier --alias champion',
      ),
    )
    .action(act(async () => (await uploads()).runConversion));

  program
    .command('benchmark')
    .description('upload benchmark result files (JSON, CSV, ...) to the run')
    .argument('<results...>', 'result files')
    .addHelpText('after', examples('artifact-uploader benchmark results/latency.json results/accuracy.csv'))
    .action(act(async () => (await uploads()).runBenchmark));

  program
    .command('hpo')
    .description("upload the best HPO trial's checkpoint as a tar.gz archive with its manifest")
    .option('--checkpoint-dir <dir>', 'checkpoint directory of the best trial: archived (tar.gz + manifest), then uploaded')
    .option('--archive <path>', 'an existing archive to upload instead')
    .option('--manifest <path>', 'the manifest JSON of --archive, uploaded beside it (default: <name>.manifest.json beside the archive, if any)')
    .option('--trial-id <id>', "upload as this trial's checkpoint (trials/<id>/...) instead of the best trial's")
    .option('--level <n>', 'gzip level for --checkpoint-dir, 0 (store) to 9 (smallest) (default: 1)', parseLevel)
    .addHelpText(
      'after',
      examples('artifact-uploader hpo --checkpoint-dir trials/17/checkpoint --trial-id 17', 'artifact-uploader hpo --archive best_trial_checkpoint.tar.gz --manifest best_trial_checkpoint.manifest.json'),
    )
    .action(act(async () => (await uploads()).runHpo));

  program
    .command('file')
    .description('upload one file under the --stage config')
    .argument('<path>', 'the file')
    .option('--artifact-path <path>', "directory in the run's artifact tree to put it in (default: with --kind, that kind's artifactPath in the config, else the root)")
    .option('--kind <kind>', "artifact kind whose config switch applies, e.g. metrics (see docs/configuration.md)")
    .addHelpText('after', examples('artifact-uploader file --stage training out/tokenizer.json --artifact-path tokenizer'))
    .action(act(async () => (await uploads()).runFile));

  program
    .command('dir')
    .description('upload a directory under the --stage config')
    .argument('<dir>', 'the directory')
    .option('--artifact-path <path>', "directory in the run's artifact tree to put it in (default: with --kind, that kind's artifactPath in the config, else the root)")
    .option('--include <glob>', 'upload only files matching this glob (repeatable)', collect)
    .option('--exclude <glob>', 'leave out files matching this glob (repeatable)', collect)
    .option('--kind <kind>', 'artifact kind whose config switch applies, e.g. checkpoint')
    .addHelpText('after', examples("artifact-uploader dir --stage training out/logs --artifact-path logs --exclude '*.tmp'"))
    .action(act(async () => (await uploads()).runDir));

  program
    .command('archive')
    .description('archive a checkpoint directory into a tar.gz and write its manifest (sizes and sha256 of every file); nothing is uploaded')
    .argument('<dir>', 'checkpoint directory')
    .option('-o, --out <path>', 'archive to write (default: ./<dir name>.tar.gz)')
    .option('--manifest <path>', 'manifest to write (default: <archive name>.manifest.json beside the archive)')
    .option('--exclude <glob>', 'leave out paths matching this glob, on top of the default skip list (repeatable)', collect)
    .option('--level <n>', 'gzip level, 0 (store) to 9 (smallest) (default: 1)', parseLevel)
    .addHelpText('after', examples("artifact-uploader archive trials/17/checkpoint -o best_trial_checkpoint.tar.gz --exclude 'optimizer/'"))
    .action(act(async () => (await import('./commands/archive.js')).runArchive));

  program
    .command('validate')
    .description('check a model directory before publishing and print the report (exit 3 when invalid)')
    .argument('<dir>', 'model directory (MLX or PEFT LoRA adapter, or fused model)')
    .option('--min-weight-bytes <n>', 'weights smaller than this in total are reported (default: 1048576)', parseNonNegative)
    .addOption(new Option('--small-weights <severity>', 'whether weights under --min-weight-bytes are an error or a warning (default: warning)').choices(['warning', 'error']))
    .addHelpText('after', examples('artifact-uploader validate out/llama-lora_20240501_093000', 'artifact-uploader validate out/llama-lora_20240501_093000 --json'))
    .action(act(async () => (await import('./commands/validate.js')).runValidate));

  program
    .command('convert-peft')
    .description('convert an MLX LoRA adapter into a PEFT adapter (adapter_model.safetensors + adapter_config.json)')
    .argument('<dir>', 'model directory holding the MLX adapter')
    .option('-o, --out <dir>', 'output directory (default: <dir>_peft_converted beside the input)')
    .option('--base-model <repo-id>', "Hugging Face repo of the base model (default: the MLX config's model)")
    .option('--overwrite', 'replace the output directory when it exists')
    .addHelpText('after', examples('artifact-uploader convert-peft out/llama-lora_20240501_093000 --base-model meta-llama/Llama-3.2-1B'))
    .action(act(async () => (await import('./commands/convert-peft.js')).runConvertPeft));

  program
    .command('publish')
    .description('validate a fine-tuned model, convert MLX LoRA to PEFT, and publish it to the Hugging Face Hub (token: HF_TOKEN)')
    .option('--model-dir <dir>', 'the model directory to publish')
    .option('--fine-tuned-models-dir <dir>', 'publish the newest <name>_<YYYYMMDD_HHMMSS> directory in here instead (default: hub.fineTunedModelsDir of the config)')
    .option('--pattern <glob>', 'glob for directory names in --fine-tuned-models-dir (default: hub.pattern of the config, else *_*)')
    .option('--repo-id <id>', 'Hub repo, namespace/name (default: hub.repoId of the config)')
    .option('--private', 'create the repo as private when it does not exist (default: hub.private of the config)')
    .option('--hub-url <url>', 'Hub address (default: HF_ENDPOINT, else https://huggingface.co)')
    .option('--base-model <repo-id>', 'Hugging Face repo of the base model, for the model card and PEFT config')
    .option('--include-sensitive <path>', 'upload this credential file (.env, private key...) anyway; such files are left out by default (repeatable)', collect)
    .option('--commit-message <text>', 'commit message (first line: title)')
    .option('--revision <branch>', 'branch to commit to (default: main)')
    .option('--idempotency-key <key>', 'identifies this publish: a commit of the branch with this key is found instead of made again (a failed commit prints the one to pass)')
    .addHelpText(
      'after',
      examples(
        'HF_TOKEN=hf_... artifact-uploader publish --model-dir out/llama-lora_20240501_093000 --repo-id my-org/llama-lora',
        'artifact-uploader publish --fine-tuned-models-dir ~/models --pattern "llama-lora_*" --repo-id my-org/llama-lora --dry-run',
        '# With --run-id or MLFLOW_RUN_ID, the run is tagged with the Hub commit (hf_hub.commit_url, ...).',
      ),
    )
    .action(act(async () => (await import('./commands/publish.js')).runPublish));

  program
    .command('register')
    .description("register a model folder of the run as a new version of a registered model (MLflow 3 logged model, aliases), exactly once per --idempotency-key")
    .argument('<name>', 'registered model name (created when missing)')
    .requiredOption('--artifact-path <path>', "the model's folder (or file) in the run's artifacts, e.g. onnx")
    .option('--alias <alias>', 'point this alias at the new version (repeatable)', collect)
    .option('--tag <key=value>', 'tag the new version (repeatable)', collect)
    .option('--description <text>', "the version's description")
    .option('--idempotency-key <key>', 'a repeated call with the same key returns the existing version instead of making another')
    .option('--local-path <path>', 'the same files on disk: uploaded to the model directly instead of copied from the run')
    .option('--ready-timeout <age>', 'how long to wait for the new version to be READY: a number and s, m or h (default: 5m)', parseAge)
    .addHelpText(
      'after',
      examples(
        'artifact-uploader register fraud-classifier --artifact-path onnx --alias champion',
        'artifact-uploader register llama-lora --artifact-path checkpoint --idempotency-key "$CI_PIPELINE_ID-train" --json',
        '# Needs a tracking server (MLFLOW_TRACKING_URI=http://...); ./mlruns is refused (exit 2).',
      ),
    )
    .action(act(async () => (await import('./commands/register.js')).runRegister));

  const runs = program
    .command('runs')
    .description('start and end MLflow runs, for pipelines that hand MLFLOW_RUN_ID to their steps')
    .addHelpText('after', examples('export MLFLOW_RUN_ID=$(artifact-uploader runs start --experiment-name fine-tune)', 'artifact-uploader runs end --status FAILED'));

  runs
    .command('start')
    .description('start a run (or join MLFLOW_RUN_ID) and print only its id on stdout')
    .option('--experiment-name <name>', 'experiment, by name; created when missing (default: MLFLOW_EXPERIMENT_NAME)')
    .option('--experiment-id <id>', 'experiment, by id (default: MLFLOW_EXPERIMENT_ID, else 0)')
    .option('--run-name <name>', 'name of the new run (default: a generated name)')
    .option('--tag <key=value>', 'tag the new run (repeatable)', collect)
    .option('--new', 'start a new run even when MLFLOW_RUN_ID is set')
    .option('--nested', "start a new run as a child of MLFLOW_RUN_ID's run (tag mlflow.parentRunId, in its experiment unless one is given), as Python's start_run(nested=True)")
    .addHelpText(
      'after',
      examples(
        'export MLFLOW_RUN_ID=$(artifact-uploader runs start --experiment-name fine-tune --run-name lora-r8)',
        'MLFLOW_TRACKING_URI=http://127.0.0.1:5000 artifact-uploader runs start --tag team=nlp --json',
        'TRIAL_RUN_ID=$(artifact-uploader runs start --nested --run-name trial-7)   # under the sweep in MLFLOW_RUN_ID',
      ),
    )
    .action(act(async () => (await import('./commands/runs.js')).runStart));

  runs
    .command('end')
    .description('end a run (--run-id, else MLFLOW_RUN_ID) with a status')
    .addOption(new Option('--status <status>', 'final status').choices(END_STATUSES).default('FINISHED'))
    .addHelpText('after', examples('artifact-uploader runs end', 'artifact-uploader runs end --status FAILED --run-id 0a1b2c3d4e5f60718293a4b5c6d7e8f9'))
    .action(act(async () => (await import('./commands/runs.js')).runEnd));

  const resume = program
    .command('resume')
    .description('show and clear the resume journal: uploads an interrupted process had started or finished (see docs/resume.md)')
    .addHelpText('after', examples('artifact-uploader resume list', 'artifact-uploader resume clear --older-than 7d'));

  resume
    .command('list')
    .description('list the records of the resume journal: file, run, bytes known to be in the store, age, and whether a running upload owns it')
    .addHelpText('after', examples('artifact-uploader resume list', 'artifact-uploader resume list --json --journal-dir /scratch/journal'))
    .action(act(async () => (await import('./commands/resume.js')).runResumeList));

  resume
    .command('clear')
    .description(
      'delete records of the resume journal (all, or those not updated for a while), giving up the unfinished uploads they name (multipart uploads aborted, sessions cancelled); records of running uploads are kept',
    )
    .option('--older-than <age>', 'only records not updated for this long: a number and s, m, h, d or w (e.g. 12h, 7d)', parseAge)
    .option('--keep-uploads', 'delete the records only: no request to the server or bucket; their unfinished uploads stay until a lifecycle rule removes them')
    .option(
      '--remove-unreadable',
      'also delete records that cannot be read now (a disk error, too many open files, their permissions), which are otherwise left: the upload one names, if any, cannot be given up then, and stays until a lifecycle rule removes it',
    )
    .addHelpText('after', examples('artifact-uploader resume clear', 'artifact-uploader resume clear --older-than 7d --dry-run', 'artifact-uploader resume clear --keep-uploads'))
    .action(act(async () => (await import('./commands/resume.js')).runResumeClear));

  return program;
}

/**
 * Runs the CLI once and returns the exit code (see `EXIT_CODES`); never throws and never
 * calls `process.exit`. Everything goes to `io.stdout` / `io.stderr`.
 *
 * @param argv The arguments after the program name (`process.argv.slice(2)`).
 * @example
 * ```ts
 * const out: string[] = [];
 * const code = await runCli(['runs', 'start'], { stdout: { write: (s) => out.push(s) }, stderr: process.stderr, env: {} });
 * ```
 */
export async function runCli(words: string[], io: CliIo): Promise<number> {
  let pending: PendingCommand | undefined;
  // With --json, stdout holds one JSON document: commander's own stdout text (help, version) waits
  // here until we know which it was. The version becomes a document; help is still printed as
  // text, since asking for help asks for text (docs/cli.md says so).
  let held = '';
  let wantsJson = false;
  // Commander's stderr (its error and suggestion, the help after an error) waits here until the
  // parse ends: for an option given before its command (`--tag` before `runs start`), the
  // suggestion names another option ("Did you mean --stage?") and is left out.
  let heldErr = '';
  const programIo = { stdout: { write: (text: string) => void (wantsJson ? (held += text) : io.stdout.write(text)) }, stderr: { write: (text: string) => void (heldErr += text) } };
  const program = createProgram(programIo, (chosen) => (pending = chosen));
  const argv = bindOptionValues(program, words);
  wantsJson = argv.includes('--json');
  try {
    // Commander answers `help nosuch` with the whole help on stderr and the `needs a command`
    // of a bare group: a usage error as for `nosuch` (the same message, suggestion and hint).
    const topic = unknownHelpTopic(program, argv);
    if (topic) topic.group.error(unknownCommandMessage(topic.group, topic.word), { code: 'commander.unknownCommand' });
    await program.parseAsync(argv, { from: 'user' });
    if (heldErr) io.stderr.write(heldErr);
  } catch (error) {
    if (error instanceof CommanderError) {
      const misplaced = error.code === 'commander.unknownOption' ? misplacedOption(program, argv, error.message) : undefined;
      // An option of another command is no misspelling of one given here.
      const suggestion = misplaced ? COMMANDER_SUGGESTION.exec(error.message)?.[0] : undefined;
      const withoutSuggestion = (text: string) => (suggestion ? text.replace(suggestion, '') : text);
      if (heldErr) io.stderr.write(withoutSuggestion(heldErr));
      if (wantsJson && error.code === 'commander.version') {
        writeJson(io, { ok: true, command: '', exitCode: EXIT_CODES.OK, version: VERSION });
        return EXIT_CODES.OK;
      }
      if (held) io.stdout.write(held);
      // --help, --version and `help <command>` end with exit code 0; everything else is a usage error.
      if (error.exitCode === 0) return EXIT_CODES.OK;
      const command = misplaced?.command ?? commandOfArgv(program, argv);
      const guess = error.code === 'commander.unknownCommand' ? uploadCommandGuess(error.message) : misplaced?.guess;
      if (guess) io.stderr.write(`${guess}\n`);
      // A hint as every other error has (docs/python-pipelines.md): where stderr says "(add --help for usage)".
      const usage = `Run \`${['artifact-uploader', misplaced?.helpOf ?? command, '--help'].filter(Boolean).join(' ')}\` for usage.`;
      const hint = guess ? `${guess} ${usage}` : usage;
      if (wantsJson) writeJson(io, { ok: false, command, exitCode: EXIT_CODES.USAGE, error: { code: 'USAGE', message: withoutSuggestion(usageMessage(program, command, error)), hint } });
      return EXIT_CODES.USAGE;
    }
    if (heldErr) io.stderr.write(heldErr);
    return reportError(io, error, { json: wantsJson, verbose: argv.includes('--verbose') || argv.includes('-v'), command: '' });
  }
  if (!pending) return EXIT_CODES.OK;
  const { name, globals } = pending;
  const ctx = new CliContext(io, globals);
  const { trackingUriFrom } = ctx;
  const stopWatching = watchInterrupts(io, ctx, (error) => reportError(io, error, { json: globals.json, verbose: globals.verbose, command: name, interrupted: true, trackingUriFrom }));
  let outcome: CommandOutcome;
  try {
    const runner = await pending.load();
    outcome = await runner(ctx, pending.args, pending.options);
  } catch (error) {
    return reportError(io, error, { json: globals.json, verbose: globals.verbose, command: name, interrupted: io.signal?.aborted, trackingUriFrom });
  } finally {
    stopWatching();
  }
  if (globals.json) writeJson(io, { ok: outcome.exitCode === EXIT_CODES.OK, command: name, exitCode: outcome.exitCode, ...outcome.data });
  else if (outcome.text !== undefined && (!globals.quiet || outcome.textEvenIfQuiet)) io.stdout.write(redact(outcome.text.endsWith('\n') ? outcome.text : `${outcome.text}\n`));
  return outcome.exitCode;
}

/** `SIGINT` or `SIGTERM`, from the reason `main.ts` aborts with (`received SIGINT`). */
function signalName(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  return /\bSIG[A-Z]+\b/.exec(reason instanceof Error ? reason.message : String(reason))?.[0] ?? 'SIGINT or SIGTERM';
}

/**
 * While a command runs: on the first signal (`io.signal`), a note that it is cleaning up and how
 * to skip that; on a second one (`io.forceSignal`), the error of a forced quit, through
 * `report`: what the cleanup left undone may leave behind, and how to finish or give it up.
 * It is reported synchronously, in the abort event, since the caller ends the process right
 * after (`main.ts`); with `--json` it is the one document on stdout. Returns the function that
 * stops watching, for when the command has ended.
 */
function watchInterrupts(io: CliIo, ctx: CliContext, report: (error: AbortedError) => void): () => void {
  const { signal, forceSignal } = io;
  const onInterrupt = () => {
    const again = signalName(signal!) === 'SIGINT' ? 'Press Ctrl-C again' : `Send ${signalName(signal!)} again`;
    ctx.note(`Interrupted (${signalName(signal!)}): stopping and cleaning up (unfinished uploads, the resume journal, temp files). ${again} to quit at once, without the cleanup.`);
  };
  const onForce = () => {
    report(
      new AbortedError(
        `Quit at once on a second ${signalName(forceSignal!)}, before the cleanup of the interrupted command finished: what it had started may be left behind, e.g. an unfinished multipart upload or resumable session (whose parts stay billed until it is given up), a staged archive or temp files. The resume journal stays usable, as after a kill.`,
        { hint: 'Run the same command again: it resumes what the journal holds and finishes the cleanup; or run `artifact-uploader resume clear` to give up the unfinished uploads (docs/resume.md).' },
      ),
    );
  };
  signal?.addEventListener('abort', onInterrupt, { once: true });
  forceSignal?.addEventListener('abort', onForce, { once: true });
  return () => {
    signal?.removeEventListener('abort', onInterrupt);
    forceSignal?.removeEventListener('abort', onForce);
  };
}

/** The line commander adds to "unknown option" for a near spelling: `\n(Did you mean --stage?)`. */
const COMMANDER_SUGGESTION = /\n\(Did you mean [^\n]*\?\)/;

/** The flags that print help or the version and exit, wherever they stand before `--`. */
const HELP_AND_VERSION_FLAGS = ['-h', '--help', '-V', '--version'];

/**
 * Whether `argv` asks only for help or the version (`--help`, `-V`, `help training`, and also
 * `--json help`, `runs help start`): its output is all there is, so a reader that stops early
 * (`--help | head`) got what it wanted, and main.ts exits 0 on the closed pipe. Words after
 * `--` are arguments, and `help` counts only where a command name goes, as commander reads it
 * (`benchmark help` uploads a file called `help`). Only `help` as the first word counted
 * before: `--json help` into a closed pipe exited 141.
 *
 * @example
 * ```ts
 * asksForHelpOrVersion(['runs', 'help', 'start']); // true
 * asksForHelpOrVersion(['benchmark', 'help']); // false
 * ```
 */
export function asksForHelpOrVersion(words: string[]): boolean {
  const silent = { write: () => true };
  const program = createProgram({ stdout: silent, stderr: silent });
  // `--run-name -V` names a run: read as runCli reads it.
  const argv = bindOptionValues(program, words);
  const beforeArguments = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
  if (argv.length === 0 || beforeArguments.some((arg) => HELP_AND_VERSION_FLAGS.includes(arg))) return true;
  let help = false;
  walkCommandWords(program, argv, (group, word) => {
    const sub = findCommand(group, word);
    if (!sub && word === 'help') help = true;
    return sub;
  });
  return help;
}

/**
 * The command `argv` names (`runs start`, `''` for none), as the `command` of a successful run
 * says it: the words that pick a command, skipping option values. The first word that named any
 * command was taken before, so `--stage training file x --bogus` was reported as `training`
 * (whose help the hint named), and `runs start --bogus` as `runs`.
 */
function commandOfArgv(program: Command, argv: string[]): string {
  const names: string[] = [];
  walkCommandWords(program, argv, (group, word) => {
    const sub = findCommand(group, word);
    if (sub) names.push(sub.name());
    return sub;
  });
  return names.join(' ');
}

/**
 * Walks the words of `argv` that may pick a command, as commander reads them: option words are
 * skipped with the value they take ({@link takesValue}); the walk ends at `--`, at a command
 * without subcommands, or when `step` (given the group a word is looked up in) returns no
 * command to go on in.
 */
function walkCommandWords(program: Command, argv: string[], step: (group: Command, word: string) => Command | undefined): void {
  let current = program;
  for (let i = 0; i < argv.length && current.commands.length > 0; i++) {
    const arg = argv[i]!;
    if (arg === '--') break;
    if (arg.startsWith('-')) {
      if (takesValue(program, current, arg)) i++;
      continue;
    }
    const next = step(current, arg);
    if (!next) break;
    current = next;
  }
}

/** Whether option word `arg` takes the next word: `--opt value` does; `--opt=value`, a flag or an unknown option does not. */
function takesValue(program: Command, current: Command, arg: string): boolean {
  return valueOption(program, current, arg) !== undefined;
}

/** The option that option word `arg`, given to `current`, is, when it takes the next word as its value. */
function valueOption(program: Command, current: Command, arg: string): Option | undefined {
  const option = arg.includes('=') ? undefined : [...current.options, ...program.options].find((o) => o.long === arg || o.short === arg);
  return option?.required === true ? option : undefined;
}

/**
 * `argv` with the value of every option that takes one joined to it (`--run-name -V` →
 * `--run-name=-V`, `-o -V` → `--out=-V`) when the value looks like an option: commander reads
 * the program's options anywhere in the line, so `runs start --run-name -V` printed the version
 * (and `--run-name --json` made the output JSON and the name missing), where getopt, and
 * commander itself for an option of the program, take the next word as the value whatever it
 * is. Options are looked up as commander looks them up: the program's anywhere, a command's
 * after its name; words after `--` are left as they are.
 *
 * @example
 * ```ts
 * bindOptionValues(createProgram(io), ['runs', 'start', '--run-name', '-V']); // ['runs', 'start', '--run-name=-V']
 * ```
 */
export function bindOptionValues(program: Command, argv: string[]): string[] {
  const out: string[] = [];
  let current = program;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const option = arg.startsWith('-') ? valueOption(program, current, arg) : undefined;
    const value = argv[i + 1];
    if (option && value !== undefined) {
      i++;
      // Every value option has a long name; commander reads `--opt=value` as `--opt value`.
      out.push(...(value.length > 1 && value.startsWith('-') ? [`${option.long ?? option.short}=${value}`] : [arg, value]));
      continue;
    }
    out.push(arg);
    if (!arg.startsWith('-')) current = findCommand(current, arg) ?? current;
  }
  return out;
}

/** Every command under `group`, depth first, groups included. */
function allCommands(group: Command): Command[] {
  return group.commands.flatMap((c) => [c, ...allCommands(c)]);
}

/**
 * For commander's "unknown option" (`--artifact-path logs dir out`: commander knows a
 * command's options only after its name, and said no more): the commands the option belongs
 * to, and where it goes. `command` is the one `argv` names without the option (and its value),
 * `helpOf` the command whose help says more; `undefined` for an option no command has.
 */
function misplacedOption(program: Command, argv: string[], message: string): { guess: string; command: string; helpOf: string } | undefined {
  const word = /unknown option '([^']*)'/.exec(message)?.[1];
  const flag = word?.split('=')[0];
  if (word === undefined || flag === undefined) return undefined;
  const owners = allCommands(program).filter((c) => c.options.some((o) => o.long === flag || o.short === flag));
  if (owners.length === 0) return undefined;
  const optionOf = (owner: Command) => owner.options.find((o) => o.long === flag || o.short === flag)!;
  const at = argv.indexOf(word);
  const withValue = optionOf(owners[0]!).required && !word.includes('=') ? 2 : 1;
  const command = commandOfArgv(program, at < 0 ? argv : [...argv.slice(0, at), ...argv.slice(at + withValue)]);
  const paths = owners.map(commandPath);
  const own = paths.includes(command) ? command : undefined;
  // Spelled as the command it goes to has it (`-o` is `--out <path>` of archive, `<dir>` of convert-peft).
  const option = optionOf(owners[own === undefined ? 0 : paths.indexOf(own)]!);
  const usage = `${option.long ?? option.short}${option.required || option.optional ? ` ${option.flags.split(' ').at(-1)}` : ''}`;
  const list = paths.map((p) => `\`${p}\``);
  const where = `${list.length > 1 ? `${list.slice(0, -1).join(', ')} and ${list.at(-1)}` : list[0]}`;
  const guess =
    own === undefined && command !== ''
      ? `\`${flag}\` is an option of ${where}, not of \`${command}\`.`
      : `\`${flag}\` is an option of ${own !== undefined ? `\`${own}\`` : where}: give it after the command name, as in \`artifact-uploader ${own ?? paths[0]} ... ${usage}\`.`;
  return { guess, command, helpOf: own ?? (command === '' ? paths[0]! : command) };
}

function findCommand(group: Command, name: string): Command | undefined {
  return group.commands.find((c) => c.name() === name || c.aliases().includes(name));
}

/**
 * The word after `help` that names no command (`help nosuch`, `runs help strat`, `help runs
 * strat`), with the group it was looked up in; `undefined` when `help` is not asked for, or for
 * a command that exists.
 */
function unknownHelpTopic(program: Command, argv: string[]): { group: Command; word: string } | undefined {
  let help = false;
  let unknown: { group: Command; word: string } | undefined;
  walkCommandWords(program, argv, (group, word) => {
    const sub = findCommand(group, word);
    if (sub) return sub;
    if (!help && word === 'help') {
      help = true;
      return group;
    }
    // `help help` is commander's own: the help of `help`, as the listing names it.
    if (help && word !== 'help') unknown = { group, word };
    return undefined;
  });
  return unknown;
}

/** Commander's text for an unknown command, with a suggestion when one is close ({@link closestMatch}). */
function unknownCommandMessage(group: Command, word: string): string {
  const names = group.commands.flatMap((c) => [c.name(), ...c.aliases()]);
  const suggestion = closestMatch(word, names);
  return `error: unknown command '${word}'${suggestion ? `\n(Did you mean ${suggestion}?)` : ''}`;
}

/** Verbs a user may try first to upload something; none is a command (`push` is left to commander, which suggests `publish`). */
const UPLOAD_VERBS = new Set(['upload', 'up', 'log', 'log-artifact', 'log-artifacts', 'log_artifact', 'log_artifacts', 'put', 'send', 'save', 'store', 'copy', 'cp', 'sync']);

/**
 * What to run instead of an unknown command that asks to upload (`artifact-uploader upload out/`):
 * the tool is named for it, but uploads go by what is uploaded, and commander finds no command
 * spelled like `upload` to suggest. `undefined` for any other unknown command.
 */
function uploadCommandGuess(message: string): string | undefined {
  const word = /unknown command '([^']*)'/.exec(message)?.[1];
  if (word === undefined || !UPLOAD_VERBS.has(word.toLowerCase())) return undefined;
  return 'To upload a directory or a file, run `artifact-uploader dir <dir> --stage <stage>` or `artifact-uploader file <path> --stage <stage>` (stages: training, conversion, benchmark, hpo), or a stage\'s own command: `artifact-uploader training <checkpoint-dir>`, `conversion`, `benchmark`, `hpo`.';
}

/**
 * The message of a usage error for `--json`. A command group called alone (`runs`) makes
 * commander print the group's help and throw with the placeholder message `(outputHelp)`; the
 * document says instead which commands there are to pick from.
 */
function usageMessage(program: Command, command: string, error: CommanderError): string {
  if (error.code !== 'commander.help') return error.message.replace(/^error: /, '');
  let group: Command | undefined = program;
  for (const name of command.split(' ').filter(Boolean)) group = group && findCommand(group, name);
  const names = (group?.commands ?? []).map((c) => c.name()).filter((name) => name !== 'help');
  const list = names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names.at(-1)}` : names.join('');
  return `\`${['artifact-uploader', command].filter(Boolean).join(' ')}\` needs a command: ${list}.`;
}

function writeJson(io: CliIo, document: Record<string, unknown>): void {
  io.stdout.write(`${toJsonText(document)}\n`);
}

/**
 * Prints an error: its message (which ends with the hint) and code on stderr; the stack and
 * cause chain only with `--verbose`; with `--json` also the JSON document on stdout.
 */
function reportError(io: CliIo, error: unknown, options: { json?: boolean; verbose?: boolean; command: string; interrupted?: boolean; trackingUriFrom?: string }): ExitCode {
  const exitCode = exitCodeForError(error, options.interrupted);
  // The library's wording names its API; a shell user is told the flag or command instead.
  io.stderr.write(redact(cliWording(formatError(error, options.verbose ?? false), options.command, options.trackingUriFrom)));
  if (options.json) {
    const json = errorJson(error);
    for (const key of ['message', 'hint'] as const) if (typeof json[key] === 'string') json[key] = cliWording(json[key], options.command, options.trackingUriFrom);
    writeJson(io, { ok: false, command: options.command, exitCode, error: json });
  }
  return exitCode;
}

/** The `error` field of a failed `--json` document. */
export function errorJson(error: unknown): Record<string, unknown> {
  if (isArtifactUploaderError(error)) return error.toJSON();
  if (error instanceof Error) return { name: error.name, code: 'INTERNAL_ERROR', message: error.message };
  return { name: 'Error', code: 'INTERNAL_ERROR', message: String(error) };
}

/** The text printed on stderr for an error. */
export function formatError(error: unknown, verbose: boolean): string {
  if (!(error instanceof Error)) return `error: ${String(error)}\n`;
  const known = isArtifactUploaderError(error);
  let text = known ? `error [${error.code}]: ${error.message}\n` : `error: ${error.message}\n`;
  if (verbose) {
    text += `${error.stack ?? ''}\n`;
    for (let cause = error.cause, depth = 0; cause !== undefined && depth < 5; depth++) {
      text += `caused by: ${cause instanceof Error ? (cause.stack ?? cause.message) : String(cause)}\n`;
      cause = cause instanceof Error ? cause.cause : undefined;
    }
  } else if (!known) {
    text += 'This looks like a bug in artifact-uploader; run again with --verbose for the stack trace and report it.\n';
  }
  return text;
}
