/**
 * The gates every upload passes, in this order, as one function ({@link passGates}) that
 * returns go or the reason to skip:
 *
 * 1. `MLFLOW_SKIP_ARTIFACT_LOGGING=true` → `disabled-by-env`, before the config is even read;
 * 2. the config loads and the operation plans (both throw on bad input, whatever the switches
 *    say: bad input is a programmer error);
 * 3. the tracking config disables the stage or the artifact kind → `disabled-by-config`;
 * 4. nothing to upload → `empty`;
 * 5. the `dryRun` option → `dry-run` (no network at all);
 * 6. no run id (option, active run, `MLFLOW_RUN_ID`) → `no-run`.
 *
 * What comes after (the run's target, `target.ts`) can fail, but no longer skip.
 *
 * @module
 */
import { envBool, type Env } from '../core/env.js';
import type { TrackingConfig } from '../config/schema.js';
import { resolveMlflowRunId } from '../run/run-context.js';
import type { Operation, PlannedOperation } from './operation.js';
import type { UploadSkipReason } from './result.js';
import type { RunRef } from './target.js';

/**
 * The env var that turns every upload into a skip, as in MLflow.
 *
 * @example
 * ```ts
 * new ArtifactUploader({ stage: 'training', env: { [SKIP_ARTIFACT_LOGGING_ENV]: 'true' } }); // every call: disabled-by-env
 * ```
 */
export const SKIP_ARTIFACT_LOGGING_ENV = 'MLFLOW_SKIP_ARTIFACT_LOGGING';

/**
 * True when `MLFLOW_SKIP_ARTIFACT_LOGGING` is `true`/`1` (a malformed value is a `ConfigError`).
 *
 * @example
 * ```ts
 * artifactLoggingDisabledByEnv({ MLFLOW_SKIP_ARTIFACT_LOGGING: '1' }); // true
 * ```
 */
export function artifactLoggingDisabledByEnv(env: Env): boolean {
  return envBool(SKIP_ARTIFACT_LOGGING_ENV, env) === true;
}

/**
 * The warning logged (once per uploader) when there is no run to upload to.
 *
 * @example
 * ```ts
 * logger.warn(NO_RUN_WARNING);
 * ```
 */
export const NO_RUN_WARNING =
  'No MLflow run to upload to, so nothing was uploaded (result: skipped, reason no-run). ' +
  'Pass `runId` to the uploader, call `startRun()` (or wrap the work in `withRun(run, fn)`) first, or set MLFLOW_RUN_ID.';

/** What the gates read besides the operation. */
export interface GateInput {
  env: Env;
  /** The `runId` option. */
  runId: string | undefined;
  dryRun: boolean;
  loadConfig(): Promise<TrackingConfig>;
}

/** The gates' answer: go, with what the later steps need, or skip, with why. */
export type GateDecision =
  | { go: true; config: TrackingConfig; planned: PlannedOperation; run: RunRef }
  | { go: false; reason: UploadSkipReason; planned?: PlannedOperation | undefined; disabledBy?: string | undefined; runId?: string | undefined };

/**
 * Runs the gates of one operation in their order (see the module doc).
 *
 * @throws what loading the config and planning throw (`ConfigError`, `LocalPathError`,
 *   `InvalidArgumentError`), and `InvalidArgumentError` for a malformed run id.
 * @example
 * ```ts
 * const decision = await passGates(operation, { env, runId, dryRun: false, loadConfig });
 * if (!decision.go) console.log(decision.reason);
 * ```
 */
export async function passGates(operation: Operation, input: GateInput): Promise<GateDecision> {
  // The option's id is in the skips before the run is resolved too: a caller correlating results
  // by run finds it in each. Not resolved there (nor checked): an env switch or a disabled stage
  // must not throw on an MLFLOW_RUN_ID they never use. '' is "not set", as for the resolution.
  const runId = input.runId || undefined;
  if (artifactLoggingDisabledByEnv(input.env)) return { go: false, reason: 'disabled-by-env', runId };
  const config = await input.loadConfig();
  const planned = await operation.plan(config);
  const switched = operation.configSwitch(config);
  if (!switched.enabled && operation.honourConfig) return { go: false, reason: 'disabled-by-config', planned, disabledBy: switched.disabledBy, runId };
  if (planned.local.files.length === 0) return { go: false, reason: 'empty', planned, runId };
  // A malformed id (option or MLFLOW_RUN_ID) throws here: a programmer error. Local only: the id
  // comes from the option, the active run or the env.
  const run = resolveMlflowRunId(input.runId, { env: input.env });
  if (input.dryRun) return { go: false, reason: 'dry-run', planned, runId: run?.runId };
  if (!run) return { go: false, reason: 'no-run', planned };
  return { go: true, config, planned, run };
}
