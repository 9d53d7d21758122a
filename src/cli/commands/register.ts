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

/** `register <name> --artifact-path <path> [--alias a]... [--tag k=v]... [--description d] [--idempotency-key k] [--local-path p]`. */
export async function runRegister(ctx: CliContext, args: unknown[], options: Record<string, unknown>): Promise<CommandOutcome> {
  if (ctx.globals.dryRun) {
    throw new InvalidArgumentError('--dry-run', '`register` has no dry run: it creates one model version.', { hint: 'Drop --dry-run for this step.' });
  }
  const version = await registerModel({
    name: String(args[0]),
    artifactPath: String(options.artifactPath),
    ...(ctx.globals.runId !== undefined ? { runId: ctx.globals.runId } : {}),
    ...(options.localPath !== undefined ? { localPath: ctx.path(String(options.localPath)) } : {}),
    ...(options.alias !== undefined ? { alias: options.alias as string[] } : {}),
    ...(options.tag !== undefined ? { tags: parseTags(options.tag as string[]) } : {}),
    ...(options.description !== undefined ? { description: String(options.description) } : {}),
    ...(options.idempotencyKey !== undefined ? { idempotencyKey: String(options.idempotencyKey) } : {}),
    trackingUri: ctx.trackingUri(),
    env: ctx.env,
    logger: ctx.logger,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });
  return { exitCode: EXIT_CODES.OK, data: { registeredModel: version }, text: formatRegistered(version) };
}
