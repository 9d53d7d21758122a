/**
 * The zod schema of the tracking config file, and its JSON Schema (what
 * {@link describeConfigSchema} and the did-you-mean suggestions read). Its own module so that
 * zod loads when a config is first resolved, not when the package is imported; the stages,
 * kinds, env names and public types are in schema.ts.
 *
 * @module
 */
import * as z from 'zod';
import { artifactPathProblem, joinArtifactPath } from '../core/artifact-path-rules.js';
import { InvalidArgumentError } from '../core/errors.js';
import { compileGlob } from '../core/glob.js';
import { isHubRepoId } from '../core/hub-repo-id.js';
import {
  CONCURRENCY_ENV,
  DEFAULT_CONCURRENCY,
  enabledEnvVar,
  FINE_TUNED_MODELS_DIR_ENV,
  MAX_CONCURRENCY,
  type describeConfigSchema,
  type StageName,
  type TrackingConfig,
  type TrackingConfigInput,
} from './schema.js';

function isRelativeSlashPath(path: string): boolean {
  return !path.startsWith('/') && !path.includes('\\') && !path.split('/').includes('..');
}

const artifactPathSchema = z
  .string()
  .min(1)
  .refine(isRelativeSlashPath, {
    message: 'expected a relative artifact path with "/" separators and no ".." segment, e.g. "checkpoint" or "models/onnx"',
  })
  // The rules the uploader checks every path against: a value they refuse (`ckpt#1`, `a//b`,
  // `.`) loaded fine and failed at upload with "Rename the file(s) ... or pass another
  // artifactPath", naming neither the config file nor the key. Stray slashes at the ends are
  // dropped there (`joinArtifactPath`), so they are fine here.
  .superRefine((path, context) => {
    const problem = isRelativeSlashPath(path) ? artifactPathProblem(joinArtifactPath(path)) : undefined;
    if (problem) context.addIssue({ code: 'custom', message: `expected an artifact path MLflow can store, but this one ${problem.reason}` });
  });

/**
 * A pattern {@link compileGlob} refuses (`[z-a]`, a trailing lone `\`) loaded fine and failed
 * only when a directory was uploaded, naming neither the file nor the key: checked here, it is
 * one more issue of the config, with its key path and line.
 */
const globSchema = z.string().min(1).superRefine((pattern, context) => {
  try {
    compileGlob(pattern);
  } catch (error) {
    if (!(error instanceof InvalidArgumentError)) throw error;
    // The glob's own words without the pattern, which the issue shows as what was got.
    const reason = (error.hint ? error.message.slice(0, -error.hint.length) : error.message).trim().replace(/^Glob ".*?" /s, '').replace(/\.$/, '');
    context.addIssue({ code: 'custom', message: `expected a glob pattern, but this one ${reason}${error.hint ? `; ${error.hint.charAt(0).toLowerCase()}${error.hint.slice(1, -1)}` : ''}` });
  }
});

const globListSchema = z.array(globSchema);

const concurrencySchema = z.int().min(1).max(MAX_CONCURRENCY);

function artifactKindSchema(stage: StageName, kind: string, artifactPath: string, what: string, pathNote = '') {
  return z
    .strictObject({
      enabled: z
        .boolean()
        .default(true)
        .meta({ description: `Upload ${what}.`, env: enabledEnvVar(stage, kind) }),
      artifactPath: artifactPathSchema
        .default(artifactPath)
        .meta({ description: `Destination of ${what} in the run's artifact tree.${pathNote}` }),
    })
    .prefault({});
}

function stageFields(stage: StageName) {
  return {
    enabled: z
      .boolean()
      .default(true)
      .meta({ description: `Master switch of the ${stage} stage: false skips all its artifacts.`, env: enabledEnvVar(stage) }),
    include: globListSchema.default([]).meta({
      description: 'Glob patterns a file must match to be uploaded from a directory; empty means every file.',
    }),
    exclude: globListSchema.default([]).meta({
      description: 'Glob patterns of files never uploaded from a directory (checked after `include`).',
    }),
    concurrency: concurrencySchema.optional().meta({
      description: 'Parallel file uploads for this stage; unset means the top-level `concurrency`.',
      env: CONCURRENCY_ENV,
    }),
  };
}

const trainingSchema = z
  .strictObject({
    ...stageFields('training'),
    checkpoint: artifactKindSchema('training', 'checkpoint', 'checkpoint', 'the checkpoint directory'),
    metrics: artifactKindSchema('training', 'metrics', 'metrics', 'the metrics JSON file'),
  })
  .prefault({});

const conversionSchema = z
  .strictObject({
    ...stageFields('conversion'),
    onnxModel: artifactKindSchema('conversion', 'onnxModel', 'onnx', 'the ONNX model (and its external-data file)'),
  })
  .prefault({});

const benchmarkSchema = z
  .strictObject({
    ...stageFields('benchmark'),
    results: artifactKindSchema('benchmark', 'results', 'benchmark', 'the benchmark result files'),
  })
  .prefault({});

const hpoSchema = z
  .strictObject({
    ...stageFields('hpo'),
    bestTrialArchive: artifactKindSchema(
      'hpo',
      'bestTrialArchive',
      'best_trial_checkpoint.tar.gz',
      "the best trial's checkpoint archive",
      ' Its JSON manifest is uploaded beside it.',
    ),
    trialCheckpoints: artifactKindSchema('hpo', 'trialCheckpoints', 'trials', 'the checkpoints of individual trials'),
  })
  .prefault({});

const hubSchema = z
  .strictObject({
    fineTunedModelsDir: z.string().min(1).optional().meta({
      description:
        'Directory searched for fine-tuned model folders to publish. `~` is expanded; a relative path is relative to the config file.',
      env: FINE_TUNED_MODELS_DIR_ENV,
    }),
    pattern: z.string().min(1).optional().meta({
      description: 'Glob for model folder names in `fineTunedModelsDir`, e.g. `my-model_*`; the newest timestamp suffix wins.',
    }),
    // The rule publishToHub applies: a bare name (`my-model`) or one the Hub refuses
    // (`org/x.git`, `a--b`) failed only at publish time, after the config had loaded fine.
    repoId: z
      .string()
      .refine((value) => isHubRepoId(value), { message: 'expected a Hub repo id like "my-org/my-model"' })
      .optional()
      .meta({ description: 'Hub repository to publish to, `namespace/name`.' }),
    private: z.boolean().optional().meta({ description: 'Create the Hub repository as private when it does not exist yet.' }),
  })
  .prefault({});

/**
 * The zod schema of the tracking config file. Parsing fills every default except
 * `<stage>.concurrency` (which {@link loadTrackingConfig} fills from the top-level value) and
 * the optional `hub` keys. Prefer `loadTrackingConfig`, which also applies env overrides and
 * turns zod's issues into a readable {@link ConfigError}.
 *
 * @example
 * ```ts
 * const parsed = trackingConfigSchema.parse({ training: { metrics: { enabled: false } } });
 * parsed.training.checkpoint.enabled; // true
 * ```
 */
export const trackingConfigSchema = z.strictObject({
  version: z.literal(1).default(1).meta({ description: 'Format version of this file. Only `1` exists.' }),
  concurrency: concurrencySchema
    .default(DEFAULT_CONCURRENCY)
    .meta({ description: 'Parallel file uploads, for every stage that does not set its own.', env: CONCURRENCY_ENV }),
  training: trainingSchema,
  conversion: conversionSchema,
  benchmark: benchmarkSchema,
  hpo: hpoSchema,
  hub: hubSchema,
});

// Compile-time guards: the hand-written types above must stay equal to what the schema
// accepts and produces. If one of these lines fails to compile, update the interfaces.
type Simplify<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]: Simplify<T[K]> } : T;
type Equal<A, B> =
  (<T>() => T extends Simplify<A> ? 1 : 2) extends <T>() => T extends Simplify<B> ? 1 : 2 ? true : false;
type Assert<T extends true> = T;
type SchemaOutput = z.output<typeof trackingConfigSchema>;
type WithStageConcurrency<T> = { [S in keyof T]: S extends StageName ? T[S] & { concurrency: number } : T[S] };
type _OutputMatches = Assert<Equal<Required<WithStageConcurrency<SchemaOutput>>, TrackingConfig>>;
type _InputMatches = Assert<Equal<z.input<typeof trackingConfigSchema>, TrackingConfigInput>>;

// ───────────────────────────── self-description ─────────────────────────────

/** A node of the config's JSON Schema, as far as the description reads it. @internal */
export interface JsonSchemaNode {
  type?: string;
  const?: unknown;
  default?: unknown;
  description?: string;
  env?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  pattern?: string;
  items?: JsonSchemaNode;
  properties?: Record<string, JsonSchemaNode>;
}

let jsonSchemaCache: JsonSchemaNode | undefined;

/** The JSON Schema (draft 2020-12) of the config file, with `description` and `env` on each key. @internal */
export function trackingConfigJsonSchema(): JsonSchemaNode {
  jsonSchemaCache ??= z.toJSONSchema(trackingConfigSchema, { io: 'input' }) as JsonSchemaNode;
  return jsonSchemaCache;
}


/**
 * The keys accepted at a key path (`[]` for the top level), or `undefined` when the path does
 * not lead to a section. Used for "did you mean" suggestions.
 * @internal
 */
export function keysAt(path: readonly PropertyKey[]): string[] | undefined {
  let node: JsonSchemaNode | undefined = trackingConfigJsonSchema();
  for (const segment of path) node = node?.properties?.[String(segment)];
  return node?.properties ? Object.keys(node.properties) : undefined;
}
