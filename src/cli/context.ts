/**
 * What every command gets: the process I/O (injected, so tests run the CLI in-process), the
 * global options, and helpers derived from them (paths resolved against the working directory,
 * the tracking URI, the logger, the progress display).
 *
 * @module
 */
import { isAbsolute, resolve } from 'node:path';
import { envPath, expandHome, type Env } from '../core/env.js';
import { namesUndecodableEntry, notUtf8PathError } from '../core/non-utf8-names.js';
import { CONFIG_DIR_ENV } from '../config/schema.js';
import { JOURNAL_DIR_ENV } from '../uploader/journal.js';
import { blankTrackingUriError, checkTrackingUri, trackingUriScheme } from '../mlflow/tracking-uri.js';
import { createStreamLogger, redact, registerSecret, SECRET_ENV_VARS, type Logger, type LogLevel } from '../core/logger.js';
import type { ExitCode } from './exit-codes.js';
import { cliWording, trackingUriSource } from './format.js';
import { createProgressDisplay, type ProgressDisplay, type ProgressMode, type TextSink } from './progress.js';

/** The process I/O the CLI runs with; `main.ts` passes the real process's. */
export interface CliIo {
  /** Results: the human summary, or the one JSON document of `--json`. */
  stdout: TextSink;
  /** Logs, progress and error messages. */
  stderr: TextSink;
  /** The environment (MLFLOW_*, HF_*, ARTIFACT_UPLOADER_*). */
  env: Env;
  /** Working directory that relative paths and `./mlruns` are resolved against. @default process.cwd() */
  cwd?: string;
  /** Whether stderr is a terminal: a progress bar instead of plain lines. @default false */
  isTTY?: boolean;
  /** Terminal width for the progress bar. @default 80 */
  columns?: number;
  /** Fires on SIGINT/SIGTERM: the running command stops, cleans up, and the CLI exits with 130. */
  signal?: AbortSignal;
  /**
   * Fires on a second SIGINT/SIGTERM, while the first one's cleanup runs: the CLI reports at once
   * (synchronously, in the abort event) what the unfinished cleanup may leave behind; the caller
   * then ends the process (`main.ts` exits with 130) without waiting for the command.
   */
  forceSignal?: AbortSignal;
}

/** The global options, parsed. */
export interface GlobalOptions {
  runId?: string;
  trackingUri?: string;
  configDir?: string;
  stage?: string;
  concurrency?: number;
  maxConcurrency?: number;
  dryRun?: boolean;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  /** False with `--no-resume`: start over instead of resuming from the journal. */
  resume?: boolean;
  /** `--journal-dir`: where the resume journal lives. */
  journalDir?: string;
  /** `--skip-existing`: skip files the store lists, without a journal record. */
  skipExisting?: 'size' | 'checksum';
}

/** What a command hands back to the program: the exit code and what to print. */
export interface CommandOutcome {
  exitCode: ExitCode;
  /** The `--json` document's payload (merged into `{ ok, command, exitCode, ... }`). */
  data: Record<string, unknown>;
  /** The human summary for stdout. */
  text?: string;
  /** Print `text` even with `--quiet` (the output is the command's product, e.g. a run id). */
  textEvenIfQuiet?: boolean;
}

/** The embedded default store, as MLflow's client resolves it: `./mlruns` in the working directory. */
const DEFAULT_TRACKING_URI = 'file:./mlruns';

/**
 * After an interrupt every pending upload fails with the same ABORTED error; the command prints
 * that once, so the library's per-upload warnings about it are dropped (`--verbose` keeps them).
 */
function quietAfterAbort(logger: Logger, signal: AbortSignal): Logger {
  return {
    debug: (message, fields) => logger.debug(message, fields),
    info: (message, fields) => logger.info(message, fields),
    warn: (message, fields) => (signal.aborted ? undefined : logger.warn(message, fields)),
    error: (message, fields) => logger.error(message, fields),
  };
}

/** Per-invocation state shared by the commands. */
export class CliContext {
  readonly cwd: string;
  readonly env: Env;
  readonly logger: Logger;
  readonly signal?: AbortSignal;
  /** Where the tracking URI came from ({@link trackingUriSource}), as every hint in CLI terms names it. */
  readonly trackingUriFrom: string;

  constructor(
    readonly io: CliIo,
    readonly globals: GlobalOptions,
  ) {
    this.cwd = io.cwd ?? process.cwd();
    this.env = io.env;
    this.signal = io.signal;
    this.trackingUriFrom = trackingUriSource(globals, io.env);
    for (const name of SECRET_ENV_VARS) registerSecret(io.env[name]);
    const level: LogLevel = globals.verbose ? 'debug' : globals.quiet ? 'error' : 'warn';
    // What the library logs, in CLI terms too (the no-run warning names its API).
    const logger = inCliWords(createStreamLogger({ level, stream: io.stderr as NodeJS.WritableStream }), this.trackingUriFrom);
    this.logger = io.signal && !globals.verbose ? quietAfterAbort(logger, io.signal) : logger;
  }

  /**
   * An absolute path: `path` resolved against the working directory, after a leading `~` or
   * `~/` is expanded to the home directory (HOME, else the user's): a caller with no shell
   * (Python's `subprocess.run([...])`) passes `~/out` as it is, and it named `./~/out`. `~user`
   * is left as it is. Every path-valued argument and flag the CLI reads comes through here, and
   * its path-valued variables through `envPath`, which expands them the same way for the library;
   * the library's upload API does not expand `~` in options (only `publishToHub`'s `modelDir` and
   * `baseDir`, and the config's `hub.fineTunedModelsDir`, do, as they did before the CLI did).
   */
  path(path: string): string {
    const resolved = resolve(this.cwd, expandHome(path, this.env));
    if (namesUndecodableEntry(resolved)) throw notUtf8PathError(resolved);
    return resolved;
  }

  /**
   * The tracking URI: `--tracking-uri`, else MLFLOW_TRACKING_URI, else `./mlruns`; a relative
   * `file:` URI or path is made absolute against the working directory.
   */
  trackingUri(): string {
    const setting = this.globals.trackingUri !== undefined ? '--tracking-uri' : 'MLFLOW_TRACKING_URI';
    // An empty MLFLOW_TRACKING_URI is unset, as MLflow's client reads it; an empty flag is a
    // mistake (`--tracking-uri "$UNSET"`), and ./mlruns would take the artifacts meant for a server.
    const given = this.globals.trackingUri ?? (this.env.MLFLOW_TRACKING_URI || undefined);
    if (given !== undefined && given.trim() === '') throw blankTrackingUriError(setting);
    const raw = given?.trim() ?? DEFAULT_TRACKING_URI;
    // Checked before any command acts on it (a dry run makes no connection): a value that names
    // no store, or is a slip (databricks, 127.0.0.1:5000, file://mlruns), would become a directory.
    checkTrackingUri(raw, setting);
    const scheme = trackingUriScheme(raw);
    if (scheme !== undefined && (scheme !== 'file' || raw.startsWith('file://'))) return raw;
    const path = raw.toLowerCase().startsWith('file:') ? raw.slice('file:'.length) : raw;
    // Not this.path(): MLflow reads `~` in a tracking URI literally (`./~/mlruns`), and a Python
    // step of the pipeline given the same MLFLOW_TRACKING_URI must find the same store.
    return isAbsolute(path) ? `file:${path}` : `file:${resolve(this.cwd, path)}`;
  }

  /**
   * `--journal-dir` (resolved), else ARTIFACT_UPLOADER_JOURNAL_DIR (resolved, read as the library
   * reads it: `envPath`), else `undefined`: the journal's own default (the cache dir).
   */
  journalDir(): string | undefined {
    // Never empty: the flag's parser refuses `--journal-dir ""`.
    if (this.globals.journalDir !== undefined) return this.path(this.globals.journalDir);
    return envPath(JOURNAL_DIR_ENV, this.env, this.cwd);
  }

  /** False with `--no-resume`: the upload starts over and ignores (and replaces) the journal's records. */
  resumeEnabled(): boolean {
    return this.globals.resume !== false;
  }

  /** True when the tracking URI points at a local store rather than a server. */
  isLocalStore(): boolean {
    return this.trackingUri().toLowerCase().startsWith('file:');
  }

  /**
   * Where the tracking config is looked for, as the options of the library's config loader:
   * `--config-dir` (resolved) as `configDir`; else ARTIFACT_UPLOADER_CONFIG_DIR resolved against
   * the CLI's working directory (`envPath`) and left in the environment, so that the loader's
   * errors name the variable the user set rather than telling them to set it; else the working
   * directory.
   */
  configLocation(): { configDir: string | undefined; env: Env } {
    // Never empty: the flag's parser refuses `--config-dir ""`.
    if (this.globals.configDir !== undefined) return { configDir: this.path(this.globals.configDir), env: this.env };
    const fromEnv = envPath(CONFIG_DIR_ENV, this.env, this.cwd);
    return fromEnv === undefined ? { configDir: this.cwd, env: this.env } : { configDir: undefined, env: { ...this.env, [CONFIG_DIR_ENV]: fromEnv } };
  }

  /**
   * Bar on a terminal, lines on a pipe or a dumb terminal, nothing for `--json` and `--quiet`.
   * A dumb terminal (`TERM=dumb`: an editor's shell buffer, some CI consoles) moves no cursor:
   * the bar's escape sequences showed there as garbage around every redraw.
   */
  progressMode(): ProgressMode {
    if (this.globals.json || this.globals.quiet) return 'none';
    return this.io.isTTY && this.env.TERM !== 'dumb' ? 'bar' : 'lines';
  }

  /** A progress display for the current mode. */
  progress(): Promise<ProgressDisplay> {
    return createProgressDisplay(this.progressMode(), this.io.stderr, { columns: this.io.columns });
  }

  /** A note for the user on stderr (not with `--quiet`). */
  note(text: string): void {
    if (!this.globals.quiet) this.io.stderr.write(`${redact(text)}\n`);
  }
}

/**
 * The uploader's warning for a failed result (`uploadFile: upload to x failed (reason): ...`,
 * `ArtifactUploader.logResult`). A library caller gets it because a failed result does not
 * throw; every CLI command that uploads prints each failed result itself (one `error [CODE]`
 * line on stderr and the summary), so there it would say the same thing a third time.
 */
const FAILED_RESULT_WARNING = /^\w+: upload to .+ failed \([\w-]+\): /;

/**
 * A logger whose messages are put in CLI terms first ({@link cliWording}), without the
 * warnings the command's own output repeats ({@link FAILED_RESULT_WARNING}).
 */
function inCliWords(inner: Logger, trackingUriFrom: string): Logger {
  const wrap = (level: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    if (level === 'warn' && FAILED_RESULT_WARNING.test(message)) return;
    inner[level](cliWording(message, '', trackingUriFrom), fields);
  };
  return { debug: wrap('debug'), info: wrap('info'), warn: wrap('warn'), error: wrap('error') };
}
