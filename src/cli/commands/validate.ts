/**
 * `validate <dir>`: the model validation report as a table (or JSON); exit 3 when invalid.
 *
 * @module
 */
import { LocalPathError } from '../../core/errors.js';
import { validateModelArtifacts, type ModelValidationChecks, type ModelValidationReport, type ValidateModelOptions } from '../../model/validate.js';
import type { CliContext, CommandOutcome } from '../context.js';
import { EXIT_CODES } from '../exit-codes.js';
import { formatBytes } from '../../core/format.js';
import { cliWording, table } from '../format.js';

const CHECK_LABELS: Record<keyof ModelValidationChecks, string> = {
  directoryExists: 'directory exists',
  hasModelFiles: 'model files (a known layout, complete)',
  configValid: 'config files parse and have required fields',
  reasonableSize: 'weights of a plausible size',
  noPlaceholderFiles: 'no placeholder, empty or Git LFS pointer files',
  safetensorsHeadersValid: 'safetensors headers valid',
  shardIndexConsistent: 'shard index matches the shards',
  adapterTensorsValid: 'adapter tensors named, paired and shaped',
};

/** A check with warnings only is `WARN`: `FAIL` is kept for what makes the model invalid. */
const STATUS_TEXT: Record<ModelValidationReport['checkStatus'][keyof ModelValidationChecks], string> = { ok: 'ok', warning: 'WARN', error: 'FAIL' };

/** The report as text. */
export function formatValidationReport(report: ModelValidationReport): string {
  const kind = report.format === null ? 'unknown layout' : [report.format, report.flavour, report.layout].filter(Boolean).join(' / ');
  const lines = [
    `${report.overallValid ? 'VALID' : 'INVALID'}: ${report.dir}`,
    `  ${kind}; ${report.files.length} files, ${formatBytes(report.totalBytes)} (weights ${formatBytes(report.weightBytes)})`,
    '',
    table(Object.entries(CHECK_LABELS).map(([key, label]) => [STATUS_TEXT[report.checkStatus[key as keyof ModelValidationChecks]], label])),
  ];
  if (report.errors.length > 0) lines.push('', 'Errors (publishing stops):', ...report.errors.map((e) => `  - ${e}`));
  if (report.warnings.length > 0) lines.push('', 'Warnings:', ...report.warnings.map((w) => `  - ${w}`));
  return `${lines.join('\n')}\n`;
}

/** `validate`. */
export async function runValidate(ctx: CliContext, args: unknown[], options: Record<string, unknown>): Promise<CommandOutcome> {
  const dir = ctx.path(String(args[0]));
  const validation: ValidateModelOptions = {};
  if (options.minWeightBytes !== undefined) validation.minWeightBytes = options.minWeightBytes as number;
  if (options.smallWeights !== undefined) validation.smallWeights = options.smallWeights as 'warning' | 'error';
  // The report's errors and hints in CLI terms, as every thrown error's (they named `modelDir`).
  const found = await validateModelArtifacts(dir, validation);
  const report = { ...found, errors: found.errors.map((e) => cliWording(e, 'validate')), warnings: found.warnings.map((w) => cliWording(w, 'validate')) };
  if (!report.checks.directoryExists) {
    throw new LocalPathError('PATH_NOT_FOUND', dir, `Model directory ${dir} does not exist or is not a directory.`, {
      hint: 'Check the path (relative paths are resolved against the working directory).',
    });
  }
  return {
    exitCode: report.overallValid ? EXIT_CODES.OK : EXIT_CODES.INVALID_MODEL,
    data: { valid: report.overallValid, report },
    text: formatValidationReport(report),
    // An invalid model's report is why the command failed: show it even with --quiet.
    textEvenIfQuiet: !report.overallValid,
  };
}
