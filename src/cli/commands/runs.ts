/**
 * `runs start` and `runs end`: the MLFLOW_RUN_ID hand-over for shell and Python pipelines.
 * `runs start` joining a run that has ended sets it back to `RUNNING`, renames it to
 * `--run-name` and logs `--tag`s, as Python's `mlflow.start_run(run_id=...)` does (the
 * library's `startRun()` leaves a joined run alone:
 * there the parent process that exported it owns it; here the pipeline does, and ends it again
 * with `runs end`).
 *
 * @module
 */
import { ConfigError, InvalidArgumentError } from '../../core/errors.js';
import { resolveMlflowConnection, type MlflowConnection } from '../../mlflow/connection.js';
import { createTrackingClient } from '../../mlflow/tracking-client.js';
import type { RunStatus } from '../../mlflow/tracking-types.js';
import { startRun } from '../../run/start-run.js';
import type { CliContext, CommandOutcome } from '../context.js';
import { EXIT_CODES } from '../exit-codes.js';

function refuseDryRun(ctx: CliContext, command: string): void {
  if (ctx.globals.dryRun) {
    throw new InvalidArgumentError('--dry-run', `\`runs ${command}\` has no dry run: it only creates or updates one run record.`, {
      hint: 'Drop --dry-run for this step; the upload commands accept it.',
    });
  }
}

/**
 * `--tag key=value` options as a record (used by `runs start` and `register`).
 *
 * A key given twice with different values is a usage error: the last one silently won, and a
 * pipeline with a typo'd or stale `--tag` got the wrong tag unsaid. The same pair twice is
 * harmless and kept once. The record is built with `Object.fromEntries`, which defines each key
 * as the record's own property: `out[key] = value` sent `__proto__` to the prototype setter and
 * the tag was dropped, though MLflow takes it (its `_validate_tag_name` allows `\w` names).
 *
 * @example
 * parseTags(['team=nlp', 'note=a=b']); // { team: 'nlp', note: 'a=b' }
 * parseTags(['team=nlp', 'team=cv']); // throws InvalidArgumentError (--tag team given twice)
 */
export function parseTags(tags: string[] | undefined): Record<string, string> {
  const byKey = new Map<string, string>();
  for (const tag of tags ?? []) {
    const at = tag.indexOf('=');
    if (at <= 0) throw new InvalidArgumentError('--tag', `Expected --tag key=value, got ${JSON.stringify(tag)}.`, { hint: 'Write it as --tag team=nlp.' });
    const key = tag.slice(0, at);
    const value = tag.slice(at + 1);
    const earlier = byKey.get(key);
    if (earlier !== undefined && earlier !== value) {
      throw new InvalidArgumentError('--tag', `--tag ${key} is given twice, with different values: ${JSON.stringify(earlier)} and ${JSON.stringify(value)}. A tag has one value.`, {
        hint: `Keep the one --tag ${key}=... you mean and drop the other; for two values, use two keys (e.g. ${key}_2=...).`,
      });
    }
    byKey.set(key, value);
  }
  return Object.fromEntries(byKey);
}

/** `runs start`: creates (or joins) a run and prints its id alone on stdout. */
export async function runStart(ctx: CliContext, _args: unknown[], options: Record<string, unknown>): Promise<CommandOutcome> {
  refuseDryRun(ctx, 'start');
  const tags = parseTags(options.tag as string[] | undefined);
  const connection = resolveMlflowConnection({ trackingUri: ctx.trackingUri(), env: ctx.env, logger: ctx.logger });
  const client = createTrackingClient(connection);
  let reopened: RunStatus | undefined;
  const run = await startRun({
    client,
    trackingUri: ctx.trackingUri(),
    env: ctx.env,
    logger: ctx.logger,
    signal: ctx.signal,
    activate: false,
    runId: ctx.globals.runId,
    joinEnvRun: options.new !== true,
    nested: options.nested === true,
    experimentName: options.experimentName as string | undefined,
    experimentId: options.experimentId as string | undefined,
    runName: options.runName as string | undefined,
    tags,
  })
    .then(async (run) => {
      if (run.owned) return run;
      // As MLflow's start_run(run_id=...): status RUNNING (the end time left as it was), the run
      // renamed when a name is given, and the tags given logged. They were dropped unsaid.
      const status = run.info?.status;
      const reopen = status !== undefined && status !== 'RUNNING';
      const runName = options.runName as string | undefined;
      const rename = runName !== undefined && runName !== '' && runName !== run.runName;
      if (reopen || rename) {
        await client.updateRun({ runId: run.runId, ...(reopen ? { status: 'RUNNING' as const } : {}), ...(rename ? { runName } : {}) }, { signal: ctx.signal });
        if (reopen) reopened = status;
      }
      if (Object.keys(tags).length > 0) await client.logBatch({ runId: run.runId, tags }, { signal: ctx.signal });
      return rename ? { ...run, runName } : run;
    })
    .finally(() => closeConnection(connection));
  const reopenedText = reopened ? ` (it was ${reopened}: set back to RUNNING, as mlflow.start_run(run_id=...) does)` : '';
  ctx.note(`${run.owned ? 'Started' : 'Joined'} run ${run.runId}${run.runName ? ` (${run.runName})` : ''} in experiment ${run.experimentId ?? '?'} on ${run.trackingUri ?? ctx.trackingUri()}${reopenedText}`);
  return {
    exitCode: EXIT_CODES.OK,
    data: {
      runId: run.runId,
      runName: run.runName,
      experimentId: run.experimentId,
      artifactUri: run.artifactUri,
      trackingUri: run.trackingUri ?? ctx.trackingUri(),
      created: run.owned,
    },
    text: run.runId,
    textEvenIfQuiet: true,
  };
}

/** `runs end`: sets the run's final status and end time. */
export async function runEnd(ctx: CliContext, _args: unknown[], options: Record<string, unknown>): Promise<CommandOutcome> {
  refuseDryRun(ctx, 'end');
  const runId = ctx.globals.runId ?? ctx.env.MLFLOW_RUN_ID?.trim();
  if (!runId) {
    throw new ConfigError('No run to end: neither --run-id nor MLFLOW_RUN_ID is set.', {
      issues: [{ path: 'MLFLOW_RUN_ID', message: 'not set' }],
      hint: 'Pass --run-id, or export MLFLOW_RUN_ID=$(artifact-uploader runs start) earlier in the pipeline.',
    });
  }
  const status = (options.status as RunStatus | undefined) ?? 'FINISHED';
  const connection = resolveMlflowConnection({ trackingUri: ctx.trackingUri(), env: ctx.env, logger: ctx.logger });
  const client = createTrackingClient(connection);
  const info = await client.updateRun({ runId, status, endTime: Date.now() }, { signal: ctx.signal }).finally(() => closeConnection(connection));
  return {
    exitCode: EXIT_CODES.OK,
    data: { runId, status: info.status, endTime: info.endTime, trackingUri: client.trackingUri },
    text: `Run ${runId} ended: ${info.status} (${client.describe()})`,
  };
}

/** Closes a REST connection's sockets, so the process exits as soon as the command is done. */
export async function closeConnection(connection: MlflowConnection): Promise<void> {
  if (connection.kind === 'rest') await connection.http.close().catch(() => undefined);
}
