/**
 * Which MLflow run artifacts go to when the caller does not say: the explicit id, else the
 * active run (the one bound by {@link withRun} for this async context, else the one
 * `startRun()` made active for the process), else `MLFLOW_RUN_ID`, else none.
 *
 * The state lives on `globalThis` under a registered symbol, so the ESM and CJS builds of the
 * library, when both are loaded in one process, share one active run.
 *
 * @module
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { envString, type Env } from '../core/env.js';
import type { MlflowConnection } from '../mlflow/connection.js';
import type { RunInfo, TrackingClient } from '../mlflow/tracking-types.js';
import { assertRunId } from '../mlflow/tracking-validation.js';

/** A run the library logs to: one started or attached by `startRun`, or an id given to {@link withRun}. */
export interface ActiveRun {
  readonly runId: string;
  /** The run's experiment (absent for a bare id given to {@link withRun}). */
  readonly experimentId?: string;
  readonly runName?: string;
  /** Where the run's artifacts go (absent for a bare id). */
  readonly artifactUri?: string;
  /** The tracking URI the run lives on, without credentials (absent for a bare id). */
  readonly trackingUri?: string;
  /** A client for the run's tracking store (absent for a bare id: resolve one from the environment). */
  readonly client?: TrackingClient;
  /** The resolved connection (absent for a bare id). */
  readonly connection?: MlflowConnection;
  /**
   * `true` when `startRun` created the run, so `endRun()` sets its status; `false` when it
   * attached to an existing run (`runId` option or `MLFLOW_RUN_ID`), whose owner ends it.
   */
  readonly owned: boolean;
  /** The run's metadata when it was started or attached. */
  readonly info?: RunInfo;
}

/** Where {@link resolveMlflowRunId} found the id. */
export type RunIdSource = 'explicit' | 'active' | 'env';

interface RunState {
  readonly storage: AsyncLocalStorage<ActiveRun>;
  processRun: ActiveRun | undefined;
}

const STATE_KEY = Symbol.for('artifact-uploader.run-state.v1');

/**
 * The process-wide state, shared by every copy of the library. Internal (tests reset
 * `processRun` through it); not exported from the package.
 *
 * @internal
 * @example
 * ```ts
 * runState().processRun = undefined;
 * ```
 */
export function runState(): RunState {
  const holder = globalThis as Record<symbol, RunState | undefined>;
  holder[STATE_KEY] ??= { storage: new AsyncLocalStorage<ActiveRun>(), processRun: undefined };
  return holder[STATE_KEY];
}

/**
 * The active run: the one bound by {@link withRun} for the current async context, else the one
 * `startRun()` made active for the process, else `undefined`. `MLFLOW_RUN_ID` is not an active
 * run; {@link getMlflowRunId} reads it.
 *
 * @example
 * ```ts
 * await startRun({ experimentName: 'fine-tune' });
 * activeRun()?.runId; // the new run's id
 * ```
 */
export function activeRun(): ActiveRun | undefined {
  const state = runState();
  return state.storage.getStore() ?? state.processRun;
}

/**
 * Runs `fn` with `run` as the active run of everything it awaits (AsyncLocalStorage), so that
 * concurrent jobs in one process each log to their own run. The process-level active run is
 * left alone. A string is taken as the id of an existing run.
 *
 * @example
 * ```ts
 * const [a, b] = await Promise.all([
 *   withRun(runA, () => uploader.uploadDirectory('out/a')),
 *   withRun('0a1b2c3d4e5f60718293a4b5c6d7e8f9', () => uploader.uploadDirectory('out/b')),
 * ]);
 * ```
 */
export function withRun<T>(run: ActiveRun | string, fn: () => T): T {
  const bound: ActiveRun = typeof run === 'string' ? { runId: run, owned: false } : run;
  assertRunId(bound.runId, typeof run === 'string' ? 'run' : 'run.runId');
  return runState().storage.run(bound, fn);
}

/**
 * Where the run id comes from, or `undefined` when there is none: `explicit` (validated), else
 * the {@link activeRun}, else `MLFLOW_RUN_ID` (validated; empty counts as unset).
 *
 * @example
 * ```ts
 * resolveMlflowRunId(undefined, { env: { MLFLOW_RUN_ID: 'abc123' } }); // { runId: 'abc123', source: 'env' }
 * ```
 */
export function resolveMlflowRunId(
  explicit?: string,
  options: { env?: Env } = {},
): { runId: string; source: RunIdSource; run?: ActiveRun } | undefined {
  if (explicit !== undefined && explicit !== '') {
    assertRunId(explicit, 'runId');
    return { runId: explicit, source: 'explicit' };
  }
  const active = activeRun();
  if (active) return { runId: active.runId, source: 'active', run: active };
  const fromEnv = envString('MLFLOW_RUN_ID', options.env ?? process.env)?.trim();
  if (fromEnv) {
    assertRunId(fromEnv, 'MLFLOW_RUN_ID');
    return { runId: fromEnv, source: 'env' };
  }
  return undefined;
}

/**
 * The run id to log to: `explicit`, else the active run's, else `MLFLOW_RUN_ID`, else
 * `undefined`. Ids are checked against MLflow's rule (`InvalidArgumentError` otherwise).
 *
 * @example
 * ```ts
 * // In a Node job spawned by a Python script that exported MLFLOW_RUN_ID:
 * getMlflowRunId(); // the parent's run id
 * getMlflowRunId('0a1b2c'); // '0a1b2c' (explicit wins)
 * ```
 */
export function getMlflowRunId(explicit?: string, options: { env?: Env } = {}): string | undefined {
  return resolveMlflowRunId(explicit, options)?.runId;
}
