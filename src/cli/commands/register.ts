/**
 * `register`: a model folder the run already has becomes a new version of a registered model
 * (MLflow 3 logged model, run lineage, aliases), exactly once per `--idempotency-key`. Also
 * the text and `--json` shape of the version that `training` / `conversion` print with
 * `--register`.
 *
 * @module
 */
import { InvalidArgumentError } from '../../core/errors.js';
import { registerModel, type RegisterModelResult } from '../../index.js';
import type { CliContext, CommandOutcome } from '../context.js';
import { EXIT_CODES } from '../exit-codes.js';
import { parseTags } from './runs.js';

/** One line about a registered version, for the human summary. */
export function formatRegistered(version: RegisterModelResult): string {
  const aliases = version.aliases.length > 0 ? ` @ ${version.aliases.join(', ')}` : '';
  return `${version.created ? 'registered' : 'already registered (same idempotency key)'}: ${version.modelUri}${aliases} (logged model ${version.modelId}, run ${version.runId})`;
}

/** `register <name> --artifact-path <path> [--alias a]... [--tag k=v]... [--description d] [--idempotency-key k] [--local-path p] [--ready-timeout age]`. */
export async function runRegister(ctx: CliContext, args: unknown[], options: Record<string, unknown>): Promise<CommandOutcome> {
  if (ctx.globals.dryRun) {
    throw new InvalidArgumentError('--dry-run', '`register` has no dry run: it creates one model version.', { hint: 'Drop --dry-run for this step.' });
  }
  const version = await registerModel({
    name: String(args[0]),
    artifactPath: String(options.artifactPath),
    runId: ctx.globals.runId,
    localPath: options.localPath === undefined ? undefined : ctx.path(String(options.localPath)),
    alias: options.alias as string[] | undefined,
    tags: options.tag === undefined ? undefined : parseTags(options.tag as string[]),
    description: options.description === undefined ? undefined : String(options.description),
    idempotencyKey: options.idempotencyKey === undefined ? undefined : String(options.idempotencyKey),
    readyTimeoutMs: options.readyTimeout as number | undefined,
    trackingUri: ctx.trackingUri(),
    env: ctx.env,
    logger: ctx.logger,
    signal: ctx.signal,
  });
  return { exitCode: EXIT_CODES.OK, data: { registeredModel: version }, text: formatRegistered(version) };
}
