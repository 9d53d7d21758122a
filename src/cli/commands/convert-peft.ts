/**
 * `convert-peft <dir>`: MLX LoRA adapter → PEFT adapter. With `--dry-run` the conversion runs
 * into a temporary directory that is removed afterwards, so every check happens and the report
 * is exact, but nothing is left behind.
 *
 * @module
 */
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { checkConversionDestination, convertMlxLoraToPeft, type ConvertMlxLoraOptions } from '../../model/convert-mlx-to-peft.js';
import type { CliContext, CommandOutcome } from '../context.js';
import { EXIT_CODES } from '../exit-codes.js';
import { formatBytes } from '../../core/format.js';
import { table } from '../format.js';
import { makeTempDir } from '../../core/atomic-write.js';

/** `convert-peft`. */
export async function runConvertPeft(ctx: CliContext, args: unknown[], options: Record<string, unknown>): Promise<CommandOutcome> {
  const dir = ctx.path(String(args[0]));
  const convertOptions: ConvertMlxLoraOptions = {
    baseModel: options.baseModel as string | undefined,
    overwrite: options.overwrite === true,
    logger: ctx.logger,
    signal: ctx.signal,
  };
  if (options.out !== undefined) convertOptions.outDir = ctx.path(String(options.out));
  let scratch: string | undefined;
  if (ctx.globals.dryRun) {
    // The dry run converts into a scratch directory, but is refused where the real run would be.
    if ((await stat(dir).catch(() => undefined))?.isDirectory()) await checkConversionDestination(dir, convertOptions);
    scratch = await makeTempDir('artifact-uploader-convert-');
    convertOptions.outDir = join(scratch, 'peft');
  }
  try {
    const result = await convertMlxLoraToPeft(dir, convertOptions);
    const outDir = ctx.globals.dryRun ? undefined : result.outDir;
    for (const warning of result.warnings) ctx.logger.warn(warning);
    const lines = [
      ctx.globals.dryRun
        ? `Dry run: ${dir} converts to PEFT (${result.modules.length} modules, ${result.tensorsConverted} tensors); nothing was written.`
        : `Converted ${dir} to PEFT: ${result.outDir} (${result.modules.length} modules, ${result.tensorsConverted} tensors)`,
      `  base model: ${result.config.base_model_name_or_path ?? '(unknown)'}, r=${result.config.r}, lora_alpha=${result.config.lora_alpha}`,
      table(result.files.map((f) => [formatBytes(f.size), f.path])),
      ...result.warnings.map((w) => `warning: ${w}`),
    ];
    return {
      exitCode: EXIT_CODES.OK,
      data: {
        dryRun: ctx.globals.dryRun === true,
        inputDir: result.inputDir,
        outDir,
        modules: result.modules,
        tensorsConverted: result.tensorsConverted,
        config: result.config,
        files: result.files,
        warnings: result.warnings,
      },
      text: lines.join('\n'),
    };
  } finally {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
}
