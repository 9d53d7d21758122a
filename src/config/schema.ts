/**
 * The tracking config file: which artifacts each pipeline stage publishes, where in the run's
 * artifact tree they go, and the stage defaults (include/exclude patterns, concurrency), plus a
 * `hub` section for Hugging Face publishing. One section per stage; every key optional, every
 * default "enabled". Objects are strict: an unknown key is an error, never silently ignored,
 * because a misspelt `enabeld: false` that does nothing is worse than no switch at all.
 *
 * The zod schema (file-schema.ts, loaded with zod on first use) is the single source of truth:
 * {@link describeConfigSchema} reads the key paths, types, defaults and env overrides off it,
 * and a test holds docs/configuration.md to that list, so the reference cannot drift from the
 * code. This module holds what needs no zod: the stages, kinds, env names and types.
 *
 * @module
 */
import type { JsonSchemaNode } from './file-schema.js';

/** The pipeline stages, in pipeline order. */
export const STAGES = ['training', 'conversion', 'benchmark', 'hpo'] as const;

/** A pipeline stage: `'training' | 'conversion' | 'benchmark' | 'hpo'`. */
export type StageName = (typeof STAGES)[number];

/**
 * The artifact kinds each stage publishes. Each kind has its own `enabled` switch and
 * `artifactPath` in the stage's config section.
 */
export const ARTIFACT_KINDS = {
  training: ['checkpoint', 'metrics'],
  conversion: ['onnxModel'],
  benchmark: ['results'],
  hpo: ['bestTrialArchive', 'trialCheckpoints'],
} as const satisfies Record<StageName, readonly string[]>;

/**
 * The artifact kinds of a stage, e.g. `ArtifactKind<'hpo'>` is
 * `'bestTrialArchive' | 'trialCheckpoints'`; `ArtifactKind` alone is every kind of every stage.
 */
export type ArtifactKind<S extends StageName = StageName> = (typeof ARTIFACT_KINDS)[S][number];

/** Default concurrency: parallel file uploads per uploader. */
export const DEFAULT_CONCURRENCY = 8;

/** Highest accepted concurrency; more only opens more sockets to the same server. */
export const MAX_CONCURRENCY = 64;

/** Prefix of every environment variable this config reads. */
const ENV_PREFIX = 'ARTIFACT_UPLOADER_';

/** `bestTrialArchive` → `BEST_TRIAL_ARCHIVE`. */
function screamingSnake(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/**
 * The env var that overrides `<stage>.enabled` (no kind) or `<stage>.<kind>.enabled`, e.g.
 * `ARTIFACT_UPLOADER_TRAINING_ENABLED`, `ARTIFACT_UPLOADER_HPO_BEST_TRIAL_ARCHIVE_ENABLED`.
 * @internal
 */
export function enabledEnvVar(stage: StageName, kind?: string): string {
  return `${ENV_PREFIX}${screamingSnake(stage)}${kind ? `_${screamingSnake(kind)}` : ''}_ENABLED`;
}

/** Env var overriding `concurrency` (top level and every stage). */
export const CONCURRENCY_ENV = `${ENV_PREFIX}CONCURRENCY`;
/** Env var overriding `hub.fineTunedModelsDir`. */
export const FINE_TUNED_MODELS_DIR_ENV = `${ENV_PREFIX}FINE_TUNED_MODELS_DIR`;
/** Env var naming the directory searched for the config file when no `configDir` is given. */
export const CONFIG_DIR_ENV = `${ENV_PREFIX}CONFIG_DIR`;

// ───────────────────────────── public types ─────────────────────────────

/** The switch and destination of one artifact kind. */
export interface ArtifactKindConfig {
  /** Upload this kind. Effective only when the stage is enabled too. @default true */
  enabled: boolean;
  /** Where it goes in the run's artifact tree (relative, `/`-separated). */
  artifactPath: string;
}

/** What every stage section has. */
export interface StageConfigBase {
  /** Master switch of the stage. @default true */
  enabled: boolean;
  /** Glob patterns a file must match to be uploaded from a directory; empty = all. @default [] */
  include: string[];
  /** Glob patterns of files never uploaded from a directory. @default [] */
  exclude: string[];
  /** Parallel file uploads. @default the top-level `concurrency` */
  concurrency: number;
}

/** `training` section. */
export interface TrainingConfig extends StageConfigBase {
  /** The checkpoint directory. @default { enabled: true, artifactPath: 'checkpoint' } */
  checkpoint: ArtifactKindConfig;
  /** The metrics JSON file. @default { enabled: true, artifactPath: 'metrics' } */
  metrics: ArtifactKindConfig;
}

/** `conversion` section. */
export interface ConversionConfig extends StageConfigBase {
  /** The ONNX model (and its external-data file). @default { enabled: true, artifactPath: 'onnx' } */
  onnxModel: ArtifactKindConfig;
}

/** `benchmark` section. */
export interface BenchmarkConfig extends StageConfigBase {
  /** The benchmark result files. @default { enabled: true, artifactPath: 'benchmark' } */
  results: ArtifactKindConfig;
}

/** `hpo` section. */
export interface HpoConfig extends StageConfigBase {
  /** The best trial's checkpoint archive. @default { enabled: true, artifactPath: 'best_trial_checkpoint.tar.gz' } */
  bestTrialArchive: ArtifactKindConfig;
  /** Checkpoints of individual trials. @default { enabled: true, artifactPath: 'trials' } */
  trialCheckpoints: ArtifactKindConfig;
}

/** `hub` section: defaults for Hugging Face publishing. Every key is optional. */
export interface HubConfig {
  /** Where fine-tuned model folders are looked for; absolute after loading (`~` expanded). */
  fineTunedModelsDir?: string;
  /** Glob for model folder names, e.g. `my-model_*`. */
  pattern?: string;
  /** Hub repository, `namespace/name`. */
  repoId?: string;
  /** Create the repository as private. */
  private?: boolean;
}

/** A fully defaulted tracking config, as {@link loadTrackingConfig} returns it. */
export interface TrackingConfig {
  /** Format version. @default 1 */
  version: 1;
  /** Parallel file uploads for stages that do not set their own. @default 8 */
  concurrency: number;
  training: TrainingConfig;
  conversion: ConversionConfig;
  benchmark: BenchmarkConfig;
  hpo: HpoConfig;
  hub: HubConfig;
}

/** The config of one stage: `StageConfig<'hpo'>` is {@link HpoConfig}. */
export type StageConfig<S extends StageName = StageName> = TrackingConfig[S];

/** A stage's config as written in a file or passed as `config`: every key optional, artifact kinds partially. */
export type PartialStage<T> = { [K in keyof T]?: T[K] extends ArtifactKindConfig ? Partial<ArtifactKindConfig> : T[K] };

/**
 * What a config file (or the `config` option) may contain: {@link TrackingConfig} with every key
 * optional. A loaded `TrackingConfig` is also a valid input.
 */
export interface TrackingConfigInput {
  version?: 1;
  concurrency?: number;
  training?: PartialStage<TrainingConfig>;
  conversion?: PartialStage<ConversionConfig>;
  benchmark?: PartialStage<BenchmarkConfig>;
  hpo?: PartialStage<HpoConfig>;
  hub?: HubConfig;
}

// ───────────────────────────── self-description ─────────────────────────────

/** One key of the config file, as listed in docs/configuration.md. */
export interface ConfigKeyDescription {
  /** Dotted key path, e.g. `training.checkpoint.enabled`. */
  path: string;
  /** Human-readable type, e.g. `boolean`, `integer (1–64)`, `string[]`. */
  type: string;
  /** The default value; `undefined` when the key has none (optional or inherited). */
  default?: unknown;
  /** The environment variable that overrides it, if any. */
  env?: string;
  /** What it does. */
  description: string;
}

function describeType(node: JsonSchemaNode): string {
  if (node.const !== undefined) return JSON.stringify(node.const);
  if (node.type === 'array') return `${node.items ? describeType(node.items) : 'unknown'}[]`;
  if (node.type === 'integer' && node.minimum !== undefined && node.maximum !== undefined) {
    return `integer (${node.minimum}–${node.maximum})`;
  }
  return node.type ?? 'unknown';
}

/**
 * Every leaf key of the config file with its type, default, env override and description, in
 * file order. This is what docs/configuration.md documents (a test checks it) and what a
 * `config` CLI command can print. Async because the schema loads (with zod) on first use.
 *
 * @example
 * ```ts
 * for (const key of await describeConfigSchema()) console.log(key.path, key.type, key.env ?? '');
 * // version "1"
 * // concurrency integer (1–64) ARTIFACT_UPLOADER_CONCURRENCY
 * // training.enabled boolean ARTIFACT_UPLOADER_TRAINING_ENABLED
 * // ...
 * ```
 */
export async function describeConfigSchema(): Promise<ConfigKeyDescription[]> {
  const out: ConfigKeyDescription[] = [];
  const walk = (node: JsonSchemaNode, prefix: string): void => {
    for (const [key, child] of Object.entries(node.properties ?? {})) {
      const path = prefix ? `${prefix}.${key}` : key;
      if (child.type === 'object' && child.properties) {
        walk(child, path);
        continue;
      }
      const entry: ConfigKeyDescription = { path, type: describeType(child), description: child.description ?? '' };
      if (child.default !== undefined) entry.default = child.default;
      if (child.env !== undefined) entry.env = child.env;
      out.push(entry);
    }
  };
  walk((await import('./file-schema.js')).trackingConfigJsonSchema(), '');
  return out;
}

