/**
 * Loading the tracking config: from the `config` option, else the config file in `configDir`,
 * else the defaults (everything enabled); then environment overrides on top. Every problem is
 * a {@link ConfigError} naming the file, the dotted key path and what was expected.
 *
 * @module
 */
import { lstat, readFile, readlink, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { dirname, join, resolve as resolvePath } from 'node:path';
import type { Document, LineCounter } from 'yaml';
import { envBool, envNumber, envPath, expandHome, type Env } from '../core/env.js';
import { ConfigError, InvalidArgumentError, LocalPathError, type ConfigIssue } from '../core/errors.js';
import { closestMatch } from './did-you-mean.js';
import { describeValue, formatZodIssues } from './format-issues.js';
import {
  ARTIFACT_KINDS,
  CONCURRENCY_ENV,
  CONFIG_DIR_ENV,
  FINE_TUNED_MODELS_DIR_ENV,
  STAGES,
  enabledEnvVar,
  type ArtifactKind,
  type ArtifactKindConfig,
  type StageName,
  type TrackingConfig,
  type TrackingConfigInput,
} from './schema.js';

/**
 * File names looked up in `configDir`, in this order. At most one may exist: two are refused
 * rather than one silently winning.
 */
export const CONFIG_FILE_NAMES = ['artifact-uploader.yaml', 'artifact-uploader.yml', 'artifact-uploader.json'] as const;

const DOCS_HINT = 'Every key, its type and default are listed in docs/configuration.md.';

/** Options of {@link loadTrackingConfig}. */
export interface LoadTrackingConfigOptions {
  /**
   * Directory searched for `artifact-uploader.yaml`, `.yml` or `.json`. No file there means
   * the defaults (everything enabled).
   * @default ARTIFACT_UPLOADER_CONFIG_DIR, else `process.cwd()`
   */
  configDir?: string;
  /**
   * The config itself, in the file's shape. When given, no file is read; env overrides still
   * apply on top.
   */
  config?: TrackingConfigInput;
  /** Environment to read instead of `process.env`. @default process.env */
  env?: Env;
  /**
   * The caller sets the concurrency itself (the uploader's `concurrency` option, the CLI's
   * `--concurrency`), so `ARTIFACT_UPLOADER_CONCURRENCY` is not used: an invalid value is then
   * reported in `warnings` instead of refused. Refused, it stopped a run it could not affect;
   * ignored without a word, a typo would go unnoticed until the option is dropped.
   * @default false
   */
  concurrencyGiven?: boolean;
  /**
   * The caller reads the config for other keys and never uses the concurrency (the CLI's
   * `publish`, for its `hub` section), so `ARTIFACT_UPLOADER_CONCURRENCY` is not used: an
   * invalid value is then reported in `warnings` (saying an upload would refuse it) instead of
   * refused. Refused, it stopped a Hub publish for a setting the publish does not read. A valid
   * value is applied as ever. {@link resolveTrackingConfig} returns the warnings;
   * {@link loadTrackingConfig} drops them.
   * @default false
   */
  concurrencyUnused?: boolean;
}

/** One value set by an environment variable. */
export interface ConfigOverride {
  /** The variable, e.g. `ARTIFACT_UPLOADER_TRAINING_ENABLED`. */
  env: string;
  /** The key path it overrode, e.g. `training.enabled`. */
  path: string;
  /** The value it set. */
  value: boolean | number | string;
}

/** A loaded config with where it came from. */
export interface ResolvedTrackingConfig {
  /** The fully defaulted config, env overrides applied. */
  config: TrackingConfig;
  /** Absolute path of the config file read, if one was. */
  file?: string;
  /** Where the values came from: `option` (the `config` option), `file`, or `defaults`. */
  source: 'option' | 'file' | 'defaults';
  /** Every value an environment variable set, in application order. */
  overrides: ConfigOverride[];
  /** Environment variables ignored for a bad value that nothing uses (see `concurrencyGiven`, `concurrencyUnused`): what to log. */
  warnings: string[];
}

/** Options of {@link findTrackingConfigFile}. */
export interface FindTrackingConfigFileOptions {
  /**
   * What set the directory, as errors name it: `configDir` (the option), or
   * `ARTIFACT_UPLOADER_CONFIG_DIR` when the variable did. An error that told a user who had set
   * the variable to "set ARTIFACT_UPLOADER_CONFIG_DIR" did not say where the directory came from.
   * @default 'configDir'
   */
  setting?: 'configDir' | typeof CONFIG_DIR_ENV;
}

/**
 * The config file in `configDir`, or `undefined` when there is none.
 *
 * @throws {LocalPathError} `PATH_NOT_FOUND` / `NOT_A_DIRECTORY` when `configDir` is unusable,
 *   naming the setting that gave it; `PATH_UNREADABLE` when its entries cannot be looked up.
 * @throws {ConfigError} when more than one candidate file exists, or a candidate name holds
 *   something other than a file (a directory, a dangling symlink).
 * @example
 * ```ts
 * const file = await findTrackingConfigFile('./configs'); // '/abs/configs/artifact-uploader.yaml'
 * ```
 */
export async function findTrackingConfigFile(configDir: string, { setting = 'configDir' }: FindTrackingConfigFileOptions = {}): Promise<string | undefined> {
  const dir = resolvePath(configDir);
  const fromEnv = setting === CONFIG_DIR_ENV;
  const info = await stat(dir).catch(() => undefined);
  if (!info) {
    throw new LocalPathError('PATH_NOT_FOUND', dir, `Config directory ${dir}${fromEnv ? ` (from ${CONFIG_DIR_ENV})` : ''} does not exist.`, {
      hint: fromEnv
        ? `Create it, or set ${CONFIG_DIR_ENV} to the directory that holds ${CONFIG_FILE_NAMES[0]} (unset, the working directory is searched).`
        : 'Create it, or pass another configDir.',
    });
  }
  if (!info.isDirectory()) {
    throw new LocalPathError('NOT_A_DIRECTORY', dir, `${setting} ${dir} is a file, not a directory.`, {
      hint: `${fromEnv ? `Set ${CONFIG_DIR_ENV} to` : 'Pass'} the directory that holds ${CONFIG_FILE_NAMES[0]}, not the file itself.`,
    });
  }
  const found: string[] = [];
  for (const name of CONFIG_FILE_NAMES) {
    const candidate = join(dir, name);
    if (await isConfigFile(candidate)) found.push(candidate);
  }
  if (found.length > 1) {
    throw new ConfigError(`Found ${found.length} tracking config files, expected at most one: ${found.join(' and ')}.`, {
      file: found[0],
      issues: found.map((file) => ({ path: '', message: `candidate config file ${file}` })),
      hint: 'Delete or rename all but one of them.',
    });
  }
  return found[0];
}

/**
 * Whether `candidate` is a config file: false when nothing is there. Anything else there that
 * is not a readable file is refused rather than skipped, because skipping it means the defaults
 * (everything enabled) while the user believes their file is in force: a directory (what Docker
 * creates when it bind-mounts a host file that does not exist), a symlink to nothing, a FIFO.
 */
async function isConfigFile(candidate: string): Promise<boolean> {
  let info: Stats;
  try {
    info = await stat(candidate);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const link = await lstat(candidate).catch(() => undefined);
    if (code === 'ENOENT' && link?.isSymbolicLink()) {
      const target = await readlink(candidate).catch(() => '(unreadable)');
      throw new ConfigError(`Tracking config ${candidate} is a symlink to ${resolvePath(dirname(candidate), target)}, which does not exist.`, {
        file: candidate,
        issues: [{ path: '', message: 'dangling symlink' }],
        hint: 'Point the symlink at the config file (or mount the file there), or remove the symlink to use the defaults.',
        cause: error,
      });
    }
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw new LocalPathError('PATH_UNREADABLE', candidate, `Cannot check tracking config file ${candidate}: ${(error as Error).message}.`, {
      hint: 'Check the permissions of the config directory.',
      cause: error,
    });
  }
  if (info.isFile()) return true;
  const what = info.isDirectory() ? 'a directory' : 'not a regular file';
  throw new ConfigError(`Tracking config ${candidate} is ${what}, not a config file.`, {
    file: candidate,
    issues: [{ path: '', message: `expected a file, found ${what}` }],
    hint: info.isDirectory()
      ? 'Put the config file there instead, or remove the directory to use the defaults. (Docker creates an empty directory when it bind-mounts a host file that does not exist: create the file on the host first.)'
      : 'Put the config file there instead, or remove it to use the defaults.',
  });
}

/** Where each issue sits in the file, for "(line 4)" in messages. */
type Locator = (path: string) => number | undefined;

function yamlLocator(doc: Document, lines: LineCounter, { isMap, isNode, isScalar, isSeq }: typeof import('yaml')): Locator {
  return (dotted) => {
    if (dotted === '') return undefined;
    const segments = dotted.split('.');
    const key = segments.pop()!;
    const parent = segments.length === 0 ? doc.contents : doc.getIn(segments, true);
    // A list item (`training.include.0`) has no key: point at the item itself.
    if (isSeq(parent)) {
      const item: unknown = /^\d+$/.test(key) ? parent.items[Number(key)] : undefined;
      const offset = isNode(item) ? item.range?.[0] : undefined;
      return offset === undefined ? undefined : lines.linePos(offset).line;
    }
    if (!isMap(parent)) return undefined;
    // Point at the key itself: right for unknown keys, and one line from the value otherwise.
    const pair = parent.items.find((item) => isScalar(item.key) && String(item.key.value) === key);
    const offset = isScalar(pair?.key) ? pair.key.range?.[0] : undefined;
    return offset === undefined ? undefined : lines.linePos(offset).line;
  };
}

/** Reads and parses a config file; parse errors become a {@link ConfigError} naming the file. */
async function readConfigFile(file: string): Promise<{ data: unknown; locate: Locator }> {
  let text: string;
  try {
    text = (await readFile(file, 'utf8')).replace(/^\uFEFF/, '');
  } catch (error) {
    throw new LocalPathError('PATH_UNREADABLE', file, `Cannot read tracking config file ${file}: ${(error as Error).message}.`, {
      hint: 'Check its permissions.',
      cause: error,
    });
  }
  // yaml loads on first use, not when the package is imported.
  const yaml = await import('yaml');
  const lines = new yaml.LineCounter();
  // JSON is YAML 1.2, so the YAML parser also locates keys in JSON files; JSON itself is still
  // parsed with JSON.parse so that JSON-only files get JSON's stricter rules.
  // Known YAML 1.1 tags unresolved too: `!!omap` became a Map, which passed as an empty mapping
  // (the defaults), and `!!set` / `!!binary` values no key takes.
  const doc = yaml.parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true, resolveKnownTags: false });
  const locate = doc.errors.length === 0 ? yamlLocator(doc, lines, yaml) : () => undefined;
  if (file.endsWith('.json')) {
    // JSON.parse lets the last of two equal keys win without a word (`"enabled": false` then
    // `"enabled": true`, or a second `"training": {}` wiping the first): the YAML parser, which
    // reads the same text, refuses them, as it does in a YAML file.
    const duplicate = doc.errors.find((e) => e.code === 'DUPLICATE_KEY');
    if (duplicate) {
      throw new ConfigError(`Could not parse ${file} as JSON: ${duplicate.message.trim()}\n `, {
        file,
        issues: [{ path: '', message: `invalid JSON: ${duplicate.message.split('\n')[0]}` }],
        hint: 'Keep one of the keys: with two, JSON.parse would silently use the last.',
        cause: duplicate,
      });
    }
    try {
      return { data: JSON.parse(text), locate };
    } catch (error) {
      const message = (error as Error).message;
      const position = /position (\d+)/.exec(message)?.[1];
      const where = position === undefined ? '' : ` (line ${lines.linePos(Number(position)).line})`;
      throw new ConfigError(`Could not parse ${file} as JSON${where}: ${message}.`, {
        file,
        issues: [{ path: '', message: `invalid JSON: ${message}` }],
        hint: 'Fix the syntax (trailing commas and comments are not allowed in JSON), or use artifact-uploader.yaml instead.',
        cause: error,
      });
    }
  }
  // The parser only warns about a tag it cannot resolve (`!env RUN`, `!include x.yaml`,
  // `!secret`) and keeps the text after it: `artifactPath: !env RUN` uploaded to "RUN".
  const unresolvedTags = doc.warnings.filter((w) => w.code === 'TAG_RESOLVE_FAILED');
  if (doc.errors.length === 0 && unresolvedTags.length > 0) {
    const first = unresolvedTags[0]!;
    throw new ConfigError(`Could not parse ${file} as YAML: ${first.message.trim()}\n `, {
      file,
      issues: unresolvedTags.map((w) => ({ path: '', message: `invalid YAML: ${w.message.split('\n')[0]}` })),
      hint: 'Write the value itself: the file is read as plain YAML 1.2, which resolves no custom tag (!env, !include, !secret) nor YAML 1.1 types (!!omap, !!set, !!binary). For a value that changes per run, use the environment overrides in docs/configuration.md.',
      cause: first,
    });
  }
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    // The parser gives up on deep nesting with the engine's own words; say what they mean.
    const tooDeep = /Maximum call stack/.test(first.message);
    const message = tooDeep ? first.message.replace(/Maximum call stack size exceeded/, 'nesting is too deep to parse') : first.message;
    throw new ConfigError(`Could not parse ${file} as YAML: ${message.trim()}\n `, {
      file,
      issues: doc.errors.map((e) => ({ path: '', message: `invalid YAML: ${e.message.split('\n')[0]}` })),
      hint: 'Fix the YAML syntax at that line (indentation with spaces, "key: value" pairs).',
      cause: first,
    });
  }
  try {
    return { data: doc.toJS({ maxAliasCount: MAX_YAML_ALIAS_COUNT }) ?? {}, locate };
  } catch (error) {
    // The yaml package's resource limits: an alias bomb ("billion laughs") throws here.
    const excessive = /alias count/i.test((error as Error).message);
    throw new ConfigError(
      `Could not parse ${file} as YAML: ${excessive ? `it expands aliases (*name) more than ${MAX_YAML_ALIAS_COUNT} times, a resource-exhaustion pattern` : (error as Error).message}.`,
      {
        file,
        issues: [{ path: '', message: `invalid YAML: ${(error as Error).message}` }],
        hint: excessive ? 'Write the values out instead of repeating aliases; a tracking config needs few, if any.' : 'Fix the YAML at that place.',
        cause: error,
      },
    );
  }
}

/** Alias expansions a config file may use (the yaml package's default): more is an alias bomb. */
const MAX_YAML_ALIAS_COUNT = 100;

function configErrorFromIssues(issues: ConfigIssue[], where: string, file: string | undefined, locate: Locator): ConfigError {
  // In file order, so the list reads top to bottom like the file.
  const located = issues
    .map((issue, index) => ({ issue, index, line: locate(issue.path) }))
    .sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || a.index - b.index);
  const lines = located.map(
    ({ issue, line }) => `  - ${issue.path || '(top level)'}${line === undefined ? '' : ` (line ${line})`}: ${issue.message}`,
  );
  // The message ends in "\n " so that the hint, which the base class appends after a space,
  // lands on its own line, indented like the list.
  return new ConfigError(
    `Invalid tracking config in ${where} (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n${lines.join('\n')}\n `,
    { file, issues: located.map(({ issue }) => issue), hint: DOCS_HINT },
  );
}


/**
 * Loads the tracking config with where it came from and which env vars overrode it. See
 * {@link loadTrackingConfig} for the rules.
 *
 * @example
 * ```ts
 * const { config, file, overrides } = await resolveTrackingConfig({ configDir: '.' });
 * console.log(file ?? 'defaults', overrides.map((o) => `${o.env} → ${o.path}`));
 * ```
 */
export async function resolveTrackingConfig(options: LoadTrackingConfigOptions = {}): Promise<ResolvedTrackingConfig> {
  const env = options.env ?? process.env;
  let data: unknown = {};
  let file: string | undefined;
  let locate: Locator = () => undefined;
  let source: ResolvedTrackingConfig['source'] = 'defaults';

  if (options.config !== undefined) {
    data = options.config;
    source = 'option';
  } else {
    const fromEnv = options.configDir === undefined ? envPath(CONFIG_DIR_ENV, env) : undefined;
    const configDir = options.configDir ?? fromEnv ?? process.cwd();
    file = await findTrackingConfigFile(configDir, { setting: fromEnv === undefined ? 'configDir' : CONFIG_DIR_ENV });
    if (file !== undefined) {
      ({ data, locate } = await readConfigFile(file));
      source = 'file';
    }
  }
  const where = file ?? 'the `config` option';

  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw configErrorFromIssues(
      [{ path: '', message: `expected a mapping of keys to values (stage sections), got ${describeValue(data)}` }],
      where,
      file,
      locate,
    );
  }
  // The schema, and zod with it, loads when a config is first resolved.
  const { keysAt, trackingConfigSchema } = await import('./file-schema.js');
  const parsed = trackingConfigSchema.safeParse(data);
  if (!parsed.success) throw configErrorFromIssues(formatZodIssues(parsed.error.issues, data, keysAt), where, file, locate);

  const value = parsed.data;
  const config: TrackingConfig = {
    ...value,
    training: { ...value.training, concurrency: value.training.concurrency ?? value.concurrency },
    conversion: { ...value.conversion, concurrency: value.conversion.concurrency ?? value.concurrency },
    benchmark: { ...value.benchmark, concurrency: value.benchmark.concurrency ?? value.concurrency },
    hpo: { ...value.hpo, concurrency: value.hpo.concurrency ?? value.concurrency },
    hub: { ...value.hub },
  };
  if (config.hub.fineTunedModelsDir !== undefined) {
    const base = file ? dirname(file) : process.cwd();
    config.hub.fineTunedModelsDir = resolvePath(base, expandHome(config.hub.fineTunedModelsDir, env));
  }

  const warnings: string[] = [];
  const concurrencyIgnored: ConcurrencyIgnored | undefined = options.concurrencyGiven
    ? { because: 'the `concurrency` option sets the concurrency here' }
    : options.concurrencyUnused
      ? { because: 'nothing here uses the concurrency', refusedBy: UPLOADS }
      : undefined;
  const overrides = applyEnvOverrides(config, env, { concurrencyIgnored, warnings });
  return { config, file, source, overrides, warnings };
}

/** What uses `ARTIFACT_UPLOADER_CONCURRENCY`, and refuses a bad value, as the library names it (cli/format.ts words it for the CLI). */
const UPLOADS = '`new ArtifactUploader()` and the stage helpers';

/** Why `ARTIFACT_UPLOADER_CONCURRENCY` is not used here, and, for a caller that uploads nothing, what does use it (and refuses a bad value). */
interface ConcurrencyIgnored {
  because: string;
  refusedBy?: string;
}

/**
 * `ARTIFACT_UPLOADER_CONCURRENCY` when the caller does not use it (it sets the concurrency
 * itself, or uses none): a valid value is applied as ever (the config reads the same), an
 * invalid one is left out with a warning that says why, and what would refuse it.
 */
function unusedConcurrency(env: Env, warnings: string[], { because, refusedBy }: ConcurrencyIgnored): number | undefined {
  try {
    return envNumber(CONCURRENCY_ENV, env, { min: 1, max: 64, integer: true });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const expected = error.issues[0]?.message ?? 'expected an integer from 1 to 64';
    const refused = refusedBy === undefined ? '' : `; ${refusedBy} refuse it`;
    warnings.push(`Environment variable ${CONCURRENCY_ENV}="${env[CONCURRENCY_ENV]}" is ignored, since ${because} (${expected})${refused}. ${error.hint ?? ''}`.trim());
    return undefined;
  }
}

/** Read by uploader/journal.ts (`JOURNAL_DIR_ENV`), which config/ may not import. */
const JOURNAL_DIR_ENV = 'ARTIFACT_UPLOADER_JOURNAL_DIR';

/**
 * Our variables that hold a value rather than a switch: the config's, and the journal's. One
 * list for the check, the did-you-mean and the hint, so the hint names every name it may suggest.
 */
const VALUE_ENV_VARS = [CONCURRENCY_ENV, FINE_TUNED_MODELS_DIR_ENV, CONFIG_DIR_ENV, JOURNAL_DIR_ENV];

/**
 * The command the Python wrappers run (docs/python-pipelines.md). Never suggested: any
 * three-letter name is one edit from it.
 */
const BIN_ENV = 'ARTIFACT_UPLOADER_BIN';

const OUR_PREFIX = 'ARTIFACT_UPLOADER_';

/**
 * Why an `ARTIFACT_UPLOADER_*` variable we do not read is refused, or `undefined` to leave it
 * alone. Refused: every unknown `*_ENABLED` (the switch pattern); a try at a switch (`*_DISABLED`,
 * `*_DISABLE`, `*_ENABLE`, or a switch's name without `_ENABLED`); and a name close to one of
 * our other variables (`ARTIFACT_UPLOADER_CONCURENCY`). Each of those did nothing: the upload
 * went on with the defaults, everything enabled. Other names of the namespace pass, as they may
 * be another tool's or a test harness's.
 */
function unknownVariableIssue(name: string, switches: string[]): ConfigIssue | undefined {
  if (!name.startsWith(OUR_PREFIX) || VALUE_ENV_VARS.includes(name) || name === BIN_ENV) return undefined;
  if (name.endsWith('_ENABLED')) {
    const suggestion = closestMatch(name, switches);
    return { path: name, message: `unknown environment variable${suggestion ? `; did you mean ${suggestion}?` : ''}` };
  }
  const negated = /^(.+)_DISABLED?$/.exec(name)?.[1];
  if (negated !== undefined) {
    const suggestion = closestMatch(`${negated}_ENABLED`, switches);
    if (suggestion) return { path: name, message: `unknown environment variable; there is no *_DISABLED switch: set ${suggestion}=false to disable` };
  }
  const stem = /^(.+)_ENABLE$/.exec(name)?.[1] ?? name;
  if (switches.includes(`${stem}_ENABLED`)) return { path: name, message: `unknown environment variable; did you mean ${stem}_ENABLED?` };
  // Without the prefix, which every name shares: it would make any two names look close.
  const close = closestMatch(name.slice(OUR_PREFIX.length), VALUE_ENV_VARS.map((v) => v.slice(OUR_PREFIX.length)));
  return close ? { path: name, message: `unknown environment variable; did you mean ${OUR_PREFIX}${close}?` } : undefined;
}

/** Applies the documented env overrides in place; returns what they set. */
function applyEnvOverrides(config: TrackingConfig, env: Env, { concurrencyIgnored, warnings }: { concurrencyIgnored: ConcurrencyIgnored | undefined; warnings: string[] }): ConfigOverride[] {
  const overrides: ConfigOverride[] = [];
  const known = new Set<string>();
  for (const stage of STAGES) {
    const stageVar = enabledEnvVar(stage);
    known.add(stageVar);
    const stageValue = envBool(stageVar, env);
    if (stageValue !== undefined) {
      config[stage].enabled = stageValue;
      overrides.push({ env: stageVar, path: `${stage}.enabled`, value: stageValue });
    }
    for (const kind of ARTIFACT_KINDS[stage]) {
      const kindVar = enabledEnvVar(stage, kind);
      known.add(kindVar);
      const kindValue = envBool(kindVar, env);
      if (kindValue !== undefined) {
        artifactKindConfig(config, stage, kind).enabled = kindValue;
        overrides.push({ env: kindVar, path: `${stage}.${kind}.enabled`, value: kindValue });
      }
    }
  }

  // A misspelt switch that silently does nothing is the failure this config exists to prevent,
  // so any *_ENABLED variable in our namespace must be one we know, and so must one that reads
  // as a try at one of ours (see unknownVariableIssue).
  const switches = [...known];
  const issues = Object.keys(env).flatMap((name) => {
    const issue = known.has(name) ? undefined : unknownVariableIssue(name, switches);
    return issue ? [issue] : [];
  });
  if (issues.length > 0) {
    throw new ConfigError(
      `Unknown artifact-uploader environment variable${issues.length > 1 ? 's' : ''}: ${issues
        .map((i) => `${i.path} (${i.message})`)
        .join(', ')}.`,
      { issues, hint: `Valid switches: ${switches.join(', ')}; and ${VALUE_ENV_VARS.join(', ')}. ${DOCS_HINT}` },
    );
  }

  const concurrency = concurrencyIgnored ? unusedConcurrency(env, warnings, concurrencyIgnored) : envNumber(CONCURRENCY_ENV, env, { min: 1, max: 64, integer: true });
  if (concurrency !== undefined) {
    config.concurrency = concurrency;
    for (const stage of STAGES) config[stage].concurrency = concurrency;
    overrides.push({ env: CONCURRENCY_ENV, path: 'concurrency', value: concurrency });
  }

  const modelsDir = envPath(FINE_TUNED_MODELS_DIR_ENV, env);
  if (modelsDir !== undefined) {
    config.hub.fineTunedModelsDir = modelsDir;
    overrides.push({ env: FINE_TUNED_MODELS_DIR_ENV, path: 'hub.fineTunedModelsDir', value: config.hub.fineTunedModelsDir });
  }
  return overrides;
}

/**
 * Loads the tracking config, fully defaulted:
 *
 * 1. values come from the `config` option when given, else from the one config file in
 *    `configDir` (`artifact-uploader.yaml`, `.yml` or `.json`), else nothing;
 * 2. every missing key gets its default (everything enabled);
 * 3. environment variables override the result (`ARTIFACT_UPLOADER_<STAGE>_ENABLED`,
 *    `ARTIFACT_UPLOADER_<STAGE>_<KIND>_ENABLED`, `ARTIFACT_UPLOADER_CONCURRENCY`,
 *    `ARTIFACT_UPLOADER_FINE_TUNED_MODELS_DIR`).
 *
 * `MLFLOW_SKIP_ARTIFACT_LOGGING` is not read here: the uploader checks it before anything else.
 *
 * @throws {ConfigError} for unparsable files, unknown keys, wrong types and bad env values; the
 *   message names the file, each dotted key path (with its line) and what was expected.
 * @throws {LocalPathError} when `configDir` does not exist or is not a directory.
 * @example
 * ```ts
 * const config = await loadTrackingConfig({ configDir: './configs' });
 * if (isArtifactEnabled(config, 'training', 'checkpoint')) {
 *   // upload to config.training.checkpoint.artifactPath
 * }
 * ```
 */
export async function loadTrackingConfig(options: LoadTrackingConfigOptions = {}): Promise<TrackingConfig> {
  return (await resolveTrackingConfig(options)).config;
}

/**
 * Asserts that `name` is a stage name.
 *
 * @throws {InvalidArgumentError} listing the valid stages (and the closest one).
 * @example
 * ```ts
 * assertStage(process.env.PIPELINE_STAGE); // narrows to StageName
 * ```
 */
export function assertStage(name: unknown): asserts name is StageName {
  if (typeof name === 'string' && (STAGES as readonly string[]).includes(name)) return;
  const suggestion = typeof name === 'string' ? closestMatch(name, STAGES) : undefined;
  throw new InvalidArgumentError(
    'stage',
    `Unknown stage ${typeof name === 'string' ? `"${name}"` : String(name)}${suggestion ? ` (did you mean "${suggestion}"?)` : ''}. Valid stages: ${STAGES.join(', ')}.`,
  );
}

/**
 * Asserts that `kind` is an artifact kind of `stage`.
 *
 * @throws {InvalidArgumentError} listing the stage's kinds.
 * @example
 * ```ts
 * assertArtifactKind('hpo', 'bestTrialArchive');
 * ```
 */
export function assertArtifactKind<S extends StageName>(stage: S, kind: unknown): asserts kind is ArtifactKind<S> {
  assertStage(stage);
  const kinds: readonly string[] = ARTIFACT_KINDS[stage];
  if (typeof kind === 'string' && kinds.includes(kind)) return;
  const suggestion = typeof kind === 'string' ? closestMatch(kind, kinds) : undefined;
  throw new InvalidArgumentError(
    'kind',
    `Unknown artifact kind ${typeof kind === 'string' ? `"${kind}"` : String(kind)} for stage "${stage}"${suggestion ? ` (did you mean "${suggestion}"?)` : ''}. Valid kinds: ${kinds.join(', ')}.`,
  );
}

type KindConfigs = { [S in StageName]: (section: TrackingConfig[S], kind: ArtifactKind<S>) => ArtifactKindConfig };

/** Each stage's section indexed by its own kinds: typed per stage, so no cast is needed. */
const KIND_CONFIGS: KindConfigs = {
  training: (section, kind) => section[kind],
  conversion: (section, kind) => section[kind],
  benchmark: (section, kind) => section[kind],
  hpo: (section, kind) => section[kind],
};

/**
 * The config object of one kind of a stage (its switch and artifact path, the object itself),
 * for a kind already checked: it does not check the kind again.
 *
 * @example
 * ```ts
 * artifactKindConfig(config, 'hpo', 'bestTrialArchive').artifactPath; // 'best_trial_checkpoint.tar.gz'
 * ```
 * @internal
 */
export function artifactKindConfig<S extends StageName>(config: TrackingConfig, stage: S, kind: ArtifactKind<S>): ArtifactKindConfig {
  return KIND_CONFIGS[stage](config[stage], kind);
}

/** What {@link getArtifactConfig} returns. */
export interface EffectiveArtifactConfig extends ArtifactKindConfig {
  /** When disabled, the key that disabled it: `<stage>.enabled` or `<stage>.<kind>.enabled`. */
  disabledBy?: string;
}

/**
 * The effective switch and artifact path of one artifact kind: enabled only when both the
 * stage and the kind are.
 *
 * @throws {InvalidArgumentError} for an unknown stage or kind.
 * @example
 * ```ts
 * const { enabled, artifactPath, disabledBy } = getArtifactConfig(config, 'hpo', 'bestTrialArchive');
 * ```
 */
export function getArtifactConfig<S extends StageName>(config: TrackingConfig, stage: S, kind: ArtifactKind<S>): EffectiveArtifactConfig {
  assertArtifactKind(stage, kind);
  const section = config[stage];
  const kindConfig = artifactKindConfig(config, stage, kind);
  if (!section.enabled) return { ...kindConfig, enabled: false, disabledBy: `${stage}.enabled` };
  if (!kindConfig.enabled) return { ...kindConfig, enabled: false, disabledBy: `${stage}.${kind}.enabled` };
  return { ...kindConfig };
}

/**
 * True when the stage and the artifact kind are both enabled.
 *
 * @throws {InvalidArgumentError} for an unknown stage or kind.
 * @example
 * ```ts
 * if (isArtifactEnabled(config, 'training', 'metrics')) await uploader.uploadFile('metrics.json');
 * ```
 */
export function isArtifactEnabled<S extends StageName>(config: TrackingConfig, stage: S, kind: ArtifactKind<S>): boolean {
  return getArtifactConfig(config, stage, kind).enabled;
}
