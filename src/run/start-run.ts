/**
 * Starting and ending the library's own runs, the way `mlflow.start_run()` /
 * `mlflow.end_run()` do: the experiment from the options, else `MLFLOW_EXPERIMENT_NAME`
 * (created when missing), else `MLFLOW_EXPERIMENT_ID` (must exist), else `0`; MLflow's
 * default tags on new runs; and `MLFLOW_RUN_ID` to join a run someone else started.
 *
 * Unlike Python, joining `MLFLOW_RUN_ID` neither sets the run back to `RUNNING` nor lets
 * `endRun()` finish it, and the variable is not removed from the environment: the run belongs
 * to the parent process that exported it, which is still running and ends it itself.
 *
 * @module
 */
import { userInfo } from 'node:os';
import { envString, type Env } from '../core/env.js';
import { AbortedError, ConfigError, InvalidArgumentError, MlflowApiError } from '../core/errors.js';
import { resolveMlflowConnection, type MlflowConnection, type MlflowConnectionOptions } from '../mlflow/connection.js';
import { assertNoInternalTags } from '../mlflow/internal-tags.js';
import { createTrackingClient } from '../mlflow/tracking-client.js';
import type { Experiment, RunInfo, RunStatus, TrackingClient } from '../mlflow/tracking-types.js';
import { assertExperimentId, assertExperimentName, assertRunId } from '../mlflow/tracking-validation.js';
import { activeRun, runState, withRun, type ActiveRun } from './run-context.js';

/** Options of {@link startRun}; every connection option (`trackingUri`, auth, `retry`, `env`, ...) applies too. */
export interface StartRunOptions extends MlflowConnectionOptions {
  /** The experiment, by name; created when missing. @default MLFLOW_EXPERIMENT_NAME */
  experimentName?: string;
  /** The experiment, by id; must exist. @default MLFLOW_EXPERIMENT_ID, else `'0'` (Default) */
  experimentId?: string;
  /** Name of a new run; empty is none, as in MLflow. @default a generated name */
  runName?: string;
  /** Tags of a new run; they win over the defaults (`mlflow.user`, `mlflow.source.name`, ...). */
  tags?: Record<string, string>;
  /** Join this existing run instead of creating one. @default MLFLOW_RUN_ID (see `joinEnvRun`) */
  runId?: string;
  /** Join the run in `MLFLOW_RUN_ID` when it is set. @default true */
  joinEnvRun?: boolean;
  /**
   * Start a new run as a child of the active run (`withRun`, `startRun`), else of the run in
   * `MLFLOW_RUN_ID`, as Python's `start_run(nested=True)` does: it gets the tag
   * `mlflow.parentRunId`, and the parent's experiment unless one is given (option or env). Never
   * joins; with no parent it is a plain new run. Made on the active parent's tracking store
   * unless `trackingUri` or `client` is given. For trials of a sweep run under a parent run.
   *
   * On the parent's store, the child goes through the parent's whole connection: its
   * credentials and TLS, and its `retry`, `logger` and `onRetry` too, for the start and for every
   * upload to the child. This call's own connection options, `retry` and `logger` included, apply
   * only with its own `trackingUri` (or `client`). On purpose: the retry policy's timeouts are
   * those of the connection's HTTP client (its pool), which the parent and its children share; a
   * child with its own would be a second client to the same server, holding a copy of the
   * parent's credentials (which the connection keeps to itself). For other retries or another
   * logger on a child, give the parent's `trackingUri` (and credentials) with them.
   * @default false
   */
  nested?: boolean;
  /**
   * Make the run the process's active run. With `false` the run is only returned: bind it
   * with `withRun(run, fn)` (concurrent jobs in one process).
   * @default true
   */
  activate?: boolean;
  /** The client to use instead of one made from the connection options (tests, custom stores). */
  client?: TrackingClient;
  /** Cancels the start. */
  signal?: AbortSignal;
}

/**
 * Starts a run (or joins one) and makes it the process's active run.
 *
 * - Joins `runId`, else `MLFLOW_RUN_ID`, when set: the run must exist and not be deleted, and
 *   must belong to the experiment given (option or env), if one is.
 * - Otherwise creates a run in the experiment from `experimentId` / `experimentName`, else
 *   `MLFLOW_EXPERIMENT_NAME` (created when missing; `ConfigError` if `MLFLOW_EXPERIMENT_ID`
 *   names another), else `MLFLOW_EXPERIMENT_ID` (must exist), else `'0'`, with MLflow's default
 *   tags `mlflow.user`, `mlflow.source.name`, `mlflow.source.type=LOCAL` (and
 *   `mlflow.runName`).
 *
 * With no tracking URI configured, the run goes to `./mlruns`.
 *
 * @example
 * ```ts
 * const run = await startRun({ experimentName: 'fine-tune', runName: 'lora-r8' });
 * try {
 *   await uploader.uploadFile('adapter.safetensors'); // lands in run.runId
 *   await endRun(); // FINISHED
 * } catch (error) {
 *   await endRun('FAILED');
 *   throw error;
 * }
 * ```
 */
export async function startRun(options: StartRunOptions = {}): Promise<ActiveRun> {
  const activate = options.activate ?? true;
  const state = runState();
  if (activate && state.processRun) {
    throw new InvalidArgumentError('startRun', `Run ${state.processRun.runId} is already active.`, {
      hint: 'Call endRun() first, or start the run with { activate: false } and bind it with withRun(run, fn) for concurrent runs.',
    });
  }
  // Before any request (the experiment is looked up, or made, first); createRun refuses them too.
  assertNoInternalTags(Object.keys(options.tags ?? {}), 'tags');
  const env = options.env ?? process.env;
  // A nested run is made where its parent lives, unless this call names a tracking URI or a
  // client: Python has one tracking URI per process, so there the two always share a store, and
  // the uploader logs to an active run where it was started by the same rule.
  const parent = options.nested && options.trackingUri === undefined && options.client === undefined ? activeRun() : undefined;
  const sameStoreAsParent = parent?.connection !== undefined && parent.client !== undefined ? parent : undefined;
  const connection = sameStoreAsParent?.connection ?? resolveMlflowConnection(options, env);
  const client = options.client ?? sameStoreAsParent?.client ?? createTrackingClient(connection);
  const request = options.signal ? { signal: options.signal } : {};

  if (options.nested && options.runId !== undefined) {
    throw new InvalidArgumentError('nested', 'nested starts a new run under the active one, and runId joins an existing run: pass one of them.', {
      hint: 'Drop runId to start a child run, or drop nested to join that run.',
    });
  }
  const joinId = options.nested ? undefined : (options.runId ?? ((options.joinEnvRun ?? true) ? envString('MLFLOW_RUN_ID', env)?.trim() : undefined));
  let run: ActiveRun;
  if (joinId) {
    assertRunId(joinId, options.runId !== undefined ? 'runId' : 'MLFLOW_RUN_ID');
    run = await joinRun(joinId, options.runId !== undefined ? 'runId' : 'MLFLOW_RUN_ID', options, env, client, connection, request);
  } else {
    const parentInfo = options.nested ? await parentRun(env, client, request) : undefined;
    const experiment = parentInfo && !experimentGiven(options, env) ? await client.getExperiment(parentInfo.experimentId, request) : await resolveExperiment(options, env, client, request);
    const tags: Record<string, string> = { ...defaultRunTags(options, env), ...(parentInfo ? { 'mlflow.parentRunId': parentInfo.runId } : {}), ...(options.tags ?? {}) };
    // An empty name is no name, as in MLflow's `start_run(run_name="")`: the store generates one.
    // Sent as given, a tracking server stored both its generated name and the empty tag, and
    // answered 400 (a UNIQUE constraint on the run's tags): `--run-name "$UNSET"` failed the step.
    const runName = options.runName || undefined;
    if (runName !== undefined) tags['mlflow.runName'] ??= runName;
    const created = await client.createRun(
      {
        experimentId: experiment.experimentId,
        tags,
        runName,
        userId: tags['mlflow.user'] ?? '',
      },
      request,
    );
    connection.logger.info(`started run ${created.info.runId} in experiment "${experiment.name}" on ${client.describe()}`);
    run = toActiveRun(created.info, client, connection, true);
  }
  if (activate) {
    // A concurrent startRun may have won while we were awaiting the server.
    if (state.processRun) {
      // The run this call created is never handed out: end it rather than leave it RUNNING.
      let ended = '';
      if (run.owned) {
        await client.updateRun({ runId: run.runId, status: 'KILLED', endTime: Date.now() }).then(
          () => (ended = ' It was ended as KILLED.'),
          (error: unknown) => connection.logger.warn(`could not end run ${run.runId}, left RUNNING: ${(error as Error).message}`),
        );
      }
      throw new InvalidArgumentError('startRun', `Run ${state.processRun.runId} became active while run ${run.runId} was starting.${ended}`, {
        hint: 'Start concurrent runs with { activate: false } and bind each with withRun(run, fn).',
      });
    }
    state.processRun = run;
  }
  return run;
}

/** Options of {@link endRun}. */
export interface EndRunOptions {
  /** The run to end. @default the process's active run */
  run?: ActiveRun;
  /** Milliseconds since the epoch. @default Date.now() */
  endTime?: number;
  /** Cancels the call. */
  signal?: AbortSignal;
}

/**
 * Ends the process's active run (or `options.run`) and clears it. A run that `startRun`
 * created gets `status` (`FINISHED` by default) and an end time; a joined run (`runId` /
 * `MLFLOW_RUN_ID`) is left as it is unless a status is given, since its owner ends it.
 * Returns the run's updated metadata, or `undefined` when nothing was updated. When the update
 * fails, the run stays the active run, so that `endRun()` can be called again.
 *
 * @example
 * ```ts
 * await startRun();
 * await endRun(); // FINISHED
 * await endRun(); // no active run: undefined
 * ```
 */
export async function endRun(status?: RunStatus, options: EndRunOptions = {}): Promise<RunInfo | undefined> {
  const state = runState();
  const run = options.run ?? state.processRun;
  if (!run) return undefined;
  const wasActive = state.processRun;
  if (state.processRun === run || state.processRun?.runId === run.runId) state.processRun = undefined;
  if (!run.owned && status === undefined) return undefined;
  const client = run.client ?? createTrackingClient(run.connection ?? resolveMlflowConnection());
  try {
    return await client.updateRun(
      { runId: run.runId, status: status ?? 'FINISHED', endTime: options.endTime ?? Date.now() },
      options.signal ? { signal: options.signal } : {},
    );
  } catch (error) {
    // Not ended: it stays the active run, so that endRun() can be called again.
    if (wasActive !== undefined && state.processRun === undefined && wasActive.runId === run.runId) state.processRun = wasActive;
    throw error;
  }
}

/**
 * Starts a run, runs `fn` with it bound (see `withRun`), and ends it: `FINISHED` when `fn`
 * resolves, `KILLED` when it is aborted, `FAILED` when it throws (the error is rethrown), like
 * Python's `with mlflow.start_run():`. The run is not made the process's active run, so any
 * number can run at once.
 *
 * @example
 * ```ts
 * declare const configs: Array<{ name: string; learningRate: number }>;
 * declare function train(config: { name: string; learningRate: number }): Promise<void>;
 *
 * await Promise.all(
 *   configs.map((config) =>
 *     withNewRun({ experimentName: 'sweep', runName: config.name }, () => train(config)),
 *   ),
 * );
 * ```
 */
export async function withNewRun<T>(options: Omit<StartRunOptions, 'activate'>, fn: (run: ActiveRun) => Promise<T> | T): Promise<T> {
  const run = await startRun({ ...options, activate: false });
  let result: T;
  try {
    result = await withRun(run, () => fn(run));
  } catch (error) {
    const status: RunStatus = error instanceof AbortedError || (error as Error)?.name === 'AbortError' ? 'KILLED' : 'FAILED';
    await endRun(run.owned ? status : undefined, { run }).catch((endError: unknown) => {
      run.connection?.logger.warn(`could not mark run ${run.runId} ${status}: ${(endError as Error).message}`);
    });
    throw error;
  }
  await endRun(undefined, { run });
  return result;
}

/**
 * MLflow's default tags for a new run (`mlflow/tracking/context/default_context.py`): the
 * user (tracking username, else the OS user), the entry script, and source type `LOCAL`.
 *
 * @example
 * ```ts
 * defaultRunTags({}, process.env)['mlflow.source.type']; // 'LOCAL'
 * ```
 */
export function defaultRunTags(options: Pick<MlflowConnectionOptions, 'username'> = {}, env: Env = process.env): Record<string, string> {
  return {
    'mlflow.user': options.username ?? envString('MLFLOW_TRACKING_USERNAME', env) ?? osUser(env),
    // The entry script, as MLflow takes sys.argv[0]: this is the only place the library looks
    // at argv, and only to name the source of the run.
    'mlflow.source.name': process.argv[1] ?? '<console>',
    'mlflow.source.type': 'LOCAL',
  };
}

/** Python's `getpass.getuser()`: LOGNAME, USER, LNAME, USERNAME, then the password database. */
function osUser(env: Env): string {
  for (const name of ['LOGNAME', 'USER', 'LNAME', 'USERNAME']) {
    const value = envString(name, env);
    if (value) return value;
  }
  try {
    return userInfo().username || 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * The experiment a new run goes to, in MLflow's order (options, then env name, then env id,
 * then `'0'`).
 */
async function resolveExperiment(
  options: StartRunOptions,
  env: Env,
  client: TrackingClient,
  request: { signal?: AbortSignal },
): Promise<Experiment> {
  if (options.experimentId !== undefined) {
    assertExperimentId(options.experimentId);
    const experiment = await getExperimentOrExplain(client, options.experimentId, 'experimentId', request);
    if (options.experimentName !== undefined && options.experimentName !== experiment.name) {
      throw new InvalidArgumentError('experimentName', `experimentId ${options.experimentId} is the experiment "${experiment.name}", not "${options.experimentName}".`, {
        hint: 'Give the experiment by id or by name, not both.',
      });
    }
    return experiment;
  }
  if (options.experimentName !== undefined) {
    assertExperimentName(options.experimentName);
    return client.getOrCreateExperiment(options.experimentName, request);
  }
  const envName = envString('MLFLOW_EXPERIMENT_NAME', env);
  const envId = envString('MLFLOW_EXPERIMENT_ID', env)?.trim();
  if (envName !== undefined) {
    assertExperimentName(envName, 'MLFLOW_EXPERIMENT_NAME');
    // With both set, a name that names no experiment cannot match the id: refused before it is
    // created (it was created, then refused, leaving an empty experiment behind on every retry).
    if (envId !== undefined && (await client.getExperimentByName(envName, request)) === undefined) {
      throw new ConfigError(`MLFLOW_EXPERIMENT_NAME="${envName}" names no experiment on ${client.describe()}, but MLFLOW_EXPERIMENT_ID is ${envId}. Nothing was created.`, {
        issues: [{ path: 'MLFLOW_EXPERIMENT_ID', message: 'does not match MLFLOW_EXPERIMENT_NAME (no such experiment)' }],
        hint: `Unset one of them: MLFLOW_EXPERIMENT_NAME alone creates "${envName}", MLFLOW_EXPERIMENT_ID alone uses experiment ${envId}.`,
      });
    }
    const experiment = await client.getOrCreateExperiment(envName, request);
    if (envId !== undefined && envId !== experiment.experimentId) {
      throw new ConfigError(`MLFLOW_EXPERIMENT_NAME="${envName}" is experiment ${experiment.experimentId}, but MLFLOW_EXPERIMENT_ID is ${envId}.`, {
        issues: [{ path: 'MLFLOW_EXPERIMENT_ID', message: `does not match MLFLOW_EXPERIMENT_NAME (id ${experiment.experimentId})` }],
        hint: 'Unset one of them, or make them name the same experiment.',
      });
    }
    return experiment;
  }
  if (envId !== undefined) {
    assertExperimentId(envId, 'MLFLOW_EXPERIMENT_ID');
    return getExperimentOrExplain(client, envId, 'MLFLOW_EXPERIMENT_ID', request);
  }
  return client.getExperiment('0', request);
}

async function getExperimentOrExplain(client: TrackingClient, id: string, source: string, request: { signal?: AbortSignal }): Promise<Experiment> {
  let experiment: Experiment;
  try {
    experiment = await client.getExperiment(id, request);
  } catch (error) {
    if (error instanceof MlflowApiError && error.status === 404) {
      throw new ConfigError(`${source}=${id}: no such experiment on ${client.describe()}.`, {
        issues: [{ path: source, message: 'experiment does not exist' }],
        hint: 'Check the id against the tracking URI, or give the experiment by name (experimentName / MLFLOW_EXPERIMENT_NAME), which creates it when missing.',
        cause: error,
      });
    }
    throw error;
  }
  if (experiment.lifecycleStage === 'deleted') {
    throw new ConfigError(`${source}=${id}: experiment "${experiment.name}" is deleted.`, {
      issues: [{ path: source, message: 'experiment is deleted' }],
      hint: `Restore it (\`mlflow experiments restore --experiment-id ${id}\`) or use another experiment.`,
    });
  }
  return experiment;
}

/** True when the options or the environment name an experiment. */
function experimentGiven(options: StartRunOptions, env: Env): boolean {
  return options.experimentId !== undefined || options.experimentName !== undefined || envString('MLFLOW_EXPERIMENT_NAME', env) !== undefined || envString('MLFLOW_EXPERIMENT_ID', env) !== undefined;
}

/**
 * The parent of a nested run: the active run (`withRun`, `startRun`), else `MLFLOW_RUN_ID`;
 * `undefined` with neither. It must exist on the server the child is made on, and not be deleted.
 */
async function parentRun(env: Env, client: TrackingClient, request: { signal?: AbortSignal }): Promise<RunInfo | undefined> {
  const active = activeRun()?.runId;
  const source = active !== undefined ? 'the active run' : 'MLFLOW_RUN_ID';
  const runId = active ?? envString('MLFLOW_RUN_ID', env)?.trim();
  if (!runId) return undefined;
  assertRunId(runId, active !== undefined ? 'runId' : 'MLFLOW_RUN_ID');
  return liveRun(client, runId, request, {
    missing: (cause) =>
      new ConfigError(`The parent of a nested run, ${source} ${runId}, is not on ${client.describe()}.`, {
        issues: [{ path: 'nested', message: 'parent run does not exist' }],
        hint: 'A child run is made on the same tracking server as its parent: point the tracking URI at that server, or start the run without nested.',
        cause,
      }),
    deleted: () =>
      new ConfigError(`The parent of a nested run, ${source} ${runId}, is deleted.`, {
        issues: [{ path: 'nested', message: 'parent run is deleted' }],
        hint: 'Restore the parent run in the MLflow UI, or start the run without nested.',
      }),
  });
}

/**
 * A run that must exist on `client` and not be deleted (one to join, or a nested run's parent):
 * its info, else the error `explain` words for a run the server does not have (404) or has
 * deleted. Other failures pass through.
 */
async function liveRun(
  client: TrackingClient,
  runId: string,
  request: { signal?: AbortSignal },
  explain: { missing: (cause: MlflowApiError) => Error; deleted: () => Error },
): Promise<RunInfo> {
  let info: RunInfo;
  try {
    info = (await client.getRun(runId, request)).info;
  } catch (error) {
    if (error instanceof MlflowApiError && error.status === 404) throw explain.missing(error);
    throw error;
  }
  if (info.lifecycleStage === 'deleted') throw explain.deleted();
  return info;
}

/** Joins an existing run: it must exist, be active, and match any experiment given. */
async function joinRun(
  runId: string,
  source: string,
  options: StartRunOptions,
  env: Env,
  client: TrackingClient,
  connection: MlflowConnection,
  request: { signal?: AbortSignal },
): Promise<ActiveRun> {
  const info = await liveRun(client, runId, request, {
    missing: (cause) =>
      new ConfigError(`${source}=${runId}: no such run on ${client.describe()}.`, {
        issues: [{ path: source, message: 'run does not exist' }],
        hint: 'Check that the run id and the tracking URI (MLFLOW_TRACKING_URI) come from the same place; a run of a tracking server is not in ./mlruns.',
        cause,
      }),
    deleted: () =>
      new ConfigError(`${source}=${runId}: the run is deleted.`, {
        issues: [{ path: source, message: 'run is deleted' }],
        hint: `Restore the run in the MLflow UI, or start a new one (${newRunInstead(source)}).`,
      }),
  });
  const wantedId = options.experimentId ?? envString('MLFLOW_EXPERIMENT_ID', env)?.trim();
  const wantedName = options.experimentName ?? envString('MLFLOW_EXPERIMENT_NAME', env);
  let mismatch: string | undefined;
  if (options.experimentId !== undefined || (options.experimentName === undefined && wantedId !== undefined)) {
    if (wantedId !== info.experimentId) mismatch = `experiment id ${wantedId}`;
  } else if (wantedName !== undefined) {
    const byName = await client.getExperimentByName(wantedName, request);
    if (byName?.experimentId !== info.experimentId) mismatch = `experiment "${wantedName}"`;
  }
  if (mismatch) {
    throw new ConfigError(`${source}=${runId} belongs to experiment ${info.experimentId}, not to the ${mismatch} asked for.`, {
      issues: [{ path: source, message: `run is in experiment ${info.experimentId}` }],
      hint: `Drop the experiment setting when joining an existing run, or start a new run (${newRunInstead(source)}).`,
    });
  }
  connection.logger.info(`joined run ${runId} on ${client.describe()}`);
  return toActiveRun(info, client, connection, false);
}

/**
 * How to start a new run instead of joining the one `source` named: an explicit `runId` is left
 * out; MLFLOW_RUN_ID (a parent process's run) is unset, or ignored with `joinEnvRun: false`.
 */
function newRunInstead(source: string): string {
  return source === 'MLFLOW_RUN_ID' ? 'unset MLFLOW_RUN_ID or pass joinEnvRun: false' : 'leave runId out';
}

function toActiveRun(info: RunInfo, client: TrackingClient, connection: MlflowConnection, owned: boolean): ActiveRun {
  return {
    runId: info.runId,
    experimentId: info.experimentId,
    runName: info.runName,
    artifactUri: info.artifactUri,
    trackingUri: client.trackingUri,
    client,
    connection,
    owned,
    info,
  };
}
