/**
 * Converting an MLX (mlx-lm) LoRA adapter into a PEFT adapter that `PeftModel.from_pretrained`
 * loads: for every adapted module `P`,
 *
 * | MLX | PEFT |
 * |---|---|
 * | `P.lora_a` (in, r) | `base_model.model.P.lora_A.weight` (r, in), transposed |
 * | `P.lora_b` (r, out) | `base_model.model.P.lora_B.weight` (out, r), transposed |
 * | `lora_parameters.rank` | `r` |
 * | `lora_parameters.scale` | `lora_alpha = scale * r` (PEFT scales by `lora_alpha / r`) |
 * | `lora_parameters.dropout` | `lora_dropout` |
 * | adapted module paths | `target_modules` (+ `layers_to_transform`) |
 * | `model`, or the `baseModel` option | `base_model_name_or_path` |
 *
 * so that PEFT's `(lora_alpha / r) * B @ A` equals MLX's `scale * lora_b.T @ lora_a.T` exactly.
 * Values are moved as raw bytes (dtype kept, never decoded), one tensor in memory at a time.
 *
 * @module
 */
import { lstat, mkdir, readdir, readFile, realpath, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { AbortedError, ConversionError, InvalidArgumentError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { leftByDeadWriter, removeDeadOwnersTempFiles, STALE_TEMP_MS, tempFileName } from '../core/atomic-write.js';
import { isInside, realDestination } from '../core/real-path.js';
import { inspectModelDir, MODEL_FILES } from './detect-format.js';
import { listModelFiles, type ModelFile } from './list-model-files.js';
import { modelNameKind, type ModelNameKind } from './local-folder.js';
import { checkMlxAdapterConfig, checkMlxLoraTensors, type MlxLoraModule } from './mlx-adapter.js';
import { buildPeftLoraConfig, PEFT_TASK_TYPES, peftLoraKey, type PeftLoraConfig } from './peft-adapter.js';
import { createSafetensorsWriter, dtypeByteSize, openSafetensors, SAFETENSORS_DTYPE_BITS, transpose2d, type SafetensorsTensorSpec } from './safetensors.js';

/** Suffix of the default output directory, a sibling of the input: `<name>_peft_converted`. */
export const PEFT_CONVERTED_SUFFIX = '_peft_converted';

/**
 * Where the original MLX config is kept in the output, for provenance (never as
 * `adapter_config.json`); a local `model` path in it is replaced by the `baseModel` option when given.
 */
export const MLX_CONFIG_COPY = 'mlx_adapter_config.json';

/** Options of {@link convertMlxLoraToPeft}. */
export interface ConvertMlxLoraOptions {
  /**
   * Output directory. Must neither contain the input nor be inside it. Missing parents are
   * created (and removed again when the conversion fails).
   * @default a sibling of the input directory named `<name>_peft_converted`
   */
  outDir?: string;
  /**
   * `base_model_name_or_path` of the PEFT config: the original Hugging Face repo of the base
   * model (not an MLX-quantized copy such as `mlx-community/...-4bit`).
   * @default the `model` field of the MLX adapter config
   */
  baseModel?: string;
  /**
   * Replace `outDir` when it exists (atomically: the old one is removed only once the new one is
   * in place). Without it an existing `outDir` is an error.
   * @default false
   */
  overwrite?: boolean;
  /**
   * PEFT `task_type`: one of `SEQ_CLS`, `SEQ_2_SEQ_LM`, `CAUSAL_LM`, `TOKEN_CLS`,
   * `QUESTION_ANS`, `FEATURE_EXTRACTION` (PEFT refuses any other value).
   * @default 'CAUSAL_LM'
   */
  taskType?: string;
  /** Stops the conversion between tensors; the partial output is removed. */
  signal?: AbortSignal;
  /** Where to log. @default silent */
  logger?: Logger;
}

/** What {@link convertMlxLoraToPeft} wrote. */
export interface MlxToPeftConversion {
  /** The model directory given (absolute). */
  inputDir: string;
  /** The directory holding the MLX adapter files. */
  adapterDir: string;
  /** The PEFT adapter directory written (absolute). */
  outDir: string;
  /** Tensors written to `adapter_model.safetensors` (two per module). */
  tensorsConverted: number;
  /** Adapted modules, e.g. `model.layers.0.self_attn.q_proj`. */
  modules: string[];
  /** The `adapter_config.json` written. */
  config: PeftLoraConfig;
  /** Files of `outDir`, with sizes. */
  files: ModelFile[];
  /** Things that convert but deserve a look (e.g. an unknown or MLX-quantized base model). */
  warnings: string[];
}

const MLX_QUANTIZED = /(^mlx-community\/)|([-_](2|3|4|5|6|8)-?bit)$/i;

/** `modelKind`: what the MLX config's `model` is ({@link modelNameKind}; `undefined` when it has none). */
function baseModelWarning(baseModel: string | undefined, fromOption: boolean, modelKind: ModelNameKind | undefined): string | undefined {
  if (baseModel === undefined) {
    return 'base model unknown (no baseModel option and no "model" in the MLX config): base_model_name_or_path is null, so users must pick the base model themselves';
  }
  if (fromOption) return undefined;
  if (MLX_QUANTIZED.test(baseModel)) {
    return `base model ${JSON.stringify(baseModel)} looks like an MLX-quantized repo that transformers cannot load; pass baseModel with the original Hugging Face repo`;
  }
  if (modelKind === 'local') {
    return `base model ${JSON.stringify(baseModel)} is a local path, meaningless to anyone else; pass baseModel with the Hugging Face repo id`;
  }
  if (modelKind === 'neither') {
    return `base model ${JSON.stringify(baseModel)} is neither a Hugging Face repo id ("namespace/name") nor a folder on this machine, so nobody can load the base model by that name; pass baseModel with the Hugging Face repo id of the base model, such as "meta-llama/Llama-3.2-1B"`;
  }
  return undefined;
}

/**
 * The text of {@link MLX_CONFIG_COPY}: the MLX config as mlx_lm wrote it, except a local `model`
 * path once the caller named the base model: it becomes that repo id. The copy is published
 * with the adapter, and the path shows the user's filesystem (`/Users/alice/...`) while telling
 * nobody else anything; a Hub id there (the MLX-quantized repo trained on) is provenance and stays.
 */
function mlxConfigCopy(configText: string, rawConfig: unknown, localModel: boolean, baseModel: string | undefined): string {
  if (baseModel === undefined || !localModel) return configText;
  // mlx_lm writes its config with json.dump(..., indent=4).
  return `${JSON.stringify({ ...(rawConfig as Record<string, unknown>), model: baseModel }, null, 4)}\n`;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Converts an MLX LoRA adapter (`adapters/adapters.safetensors` + `adapters/adapter_config.json`,
 * or both at the top of `dir`) into a PEFT adapter (`adapter_model.safetensors` +
 * `adapter_config.json`, plus the MLX config kept as `mlx_adapter_config.json`). The output is
 * written to a temporary sibling directory and renamed into place, so `outDir` is either
 * complete or untouched. Memory use: one tensor and its transposed copy.
 *
 * @throws ConversionError, before writing anything, for a fused model (fused models are
 *   published as they are), a PEFT adapter (already converted), or an adapter with no PEFT LoRA
 *   equivalent (DoRA, MoE, embedding LoRA, full fine-tune, inconsistent ranks, unknown tensors);
 *   the message lists every problem.
 * @throws InvalidArgumentError, before writing anything, for an `outDir` that contains the
 *   input directory or is inside it (such as its own `adapters/`), or that exists without
 *   `overwrite`, and for a `taskType` PEFT does not know.
 * @throws InvalidModelStructureError when `dir` is no model directory at all.
 * @throws SafetensorsError when `adapters.safetensors` is corrupt.
 * @throws AbortedError when `signal` fires.
 * @example
 * ```ts
 * const result = await convertMlxLoraToPeft('out/llama-lora_20240501_093000', { baseModel: 'meta-llama/Llama-3.2-1B' });
 * console.log(result.outDir, result.config.lora_alpha);
 * ```
 */
export async function convertMlxLoraToPeft(dir: string, options: ConvertMlxLoraOptions = {}): Promise<MlxToPeftConversion> {
  if (typeof dir !== 'string' || dir === '') throw new InvalidArgumentError('dir', `Expected \`dir\` to be a non-empty path, got ${JSON.stringify(dir)}.`);
  if (options.baseModel !== undefined && (typeof options.baseModel !== 'string' || options.baseModel === '')) {
    throw new InvalidArgumentError('baseModel', `Expected \`baseModel\` to be a repo id such as "meta-llama/Llama-3.2-1B", got ${JSON.stringify(options.baseModel)}.`);
  }
  // PEFT >= 0.14 refuses an adapter_config.json whose task_type it does not know: a typo here
  // would publish an adapter nobody can load.
  if (options.taskType !== undefined && (typeof options.taskType !== 'string' || !PEFT_TASK_TYPES.includes(options.taskType))) {
    throw new InvalidArgumentError('taskType', `Expected \`taskType\` to be a PEFT task type, got ${JSON.stringify(options.taskType)}.`, {
      hint: `Use one of ${PEFT_TASK_TYPES.join(', ')} (upper case, as PEFT spells them), or leave it unset for CAUSAL_LM.`,
    });
  }
  const logger = options.logger ?? silentLogger;
  const inspection = await inspectModelDir(dir);
  const root = inspection.dir;
  if (inspection.format === 'fused') {
    throw new ConversionError(root, `${root} holds a fused model (${[inspection.configFile, ...inspection.weightFiles].join(', ')}), not an MLX LoRA adapter; fused models are never converted.`, {
      hint: 'Publish the fused model as it is; convertMlxLoraToPeft only converts MLX adapters (adapters/adapters.safetensors + adapters/adapter_config.json).',
    });
  }
  if (inspection.flavour === 'peft') {
    throw new ConversionError(root, `${root} already holds a PEFT adapter (adapter_model.safetensors + adapter_config.json); there is nothing to convert.`, {
      hint: 'Publish it as it is.',
    });
  }
  const adapterDir = inspection.adapterDir ?? root;

  const outDir = await safeDestination(root, options.outDir);
  // What killed conversions to this outDir left, swept before the existing-outDir check: an
  // outDir one left put aside is the user's output, and is judged (and kept without
  // `overwrite`) as if it had never moved. One reading of the parent serves both sweeps: they
  // act on names of their own (`<temp>.old`, and temp names ending in `.tmp` or legacy ones),
  // so the restore changes nothing the removal looks at.
  const siblings = await readdir(dirname(outDir)).catch(() => [] as string[]);
  await restoreOutputPutAside(outDir, siblings, logger);
  await removeKilledConversions(dirname(outDir), conversionTempPrefix(outDir), siblings);
  await refuseExistingOutDir(outDir, options.overwrite === true);

  const configPath = resolve(root, inspection.configFile);
  const configText = await readFile(configPath, 'utf8');
  let rawConfig: unknown;
  try {
    rawConfig = JSON.parse(configText);
  } catch (error) {
    throw new ConversionError(root, `${configPath} is not valid JSON: ${(error as Error).message}.`, { cause: error, hint: 'Restore the adapter_config.json that mlx_lm.lora wrote.' });
  }
  const { config: mlx, problems: configProblems } = checkMlxAdapterConfig(rawConfig);
  const reader = await openSafetensors(resolve(root, inspection.weightFiles[0]!));
  let tmpDir: string | undefined;
  let createdParent: string | undefined;
  try {
    const { modules, problems: tensorProblems } = checkMlxLoraTensors(reader.header, mlx?.rank, mlx?.numLayers);
    const problems = [...configProblems.map((p) => `${inspection.configFile}: ${p}`), ...tensorProblems.map((p) => `${inspection.weightFiles[0]}: ${p}`)];
    if (!mlx || problems.length > 0) {
      throw new ConversionError(root, `Cannot convert the MLX adapter in ${adapterDir} to PEFT:\n${problems.map((p) => `  - ${p}`).join('\n')}`, {
        hint: 'Only plain LoRA on 2-D Linear layers converts (mlx_lm.lora with fine_tune_type "lora").',
      });
    }

    const baseModel = options.baseModel ?? mlx.model;
    const warnings: string[] = [];
    // What `mlx_lm.lora --model` was: a Hub repo, a folder on this machine (`./models/x`, or
    // `models/llama` when that folder is here, relative to the working or the model directory), or neither.
    const modelKind = mlx.model === undefined ? undefined : await modelNameKind(mlx.model, [root, adapterDir]);
    const localModel = modelKind !== undefined && modelKind !== 'hub';
    const warning = baseModelWarning(baseModel, options.baseModel !== undefined, modelKind);
    if (warning) warnings.push(warning);
    const config = buildPeftLoraConfig(modules, mlx, { baseModel: baseModel ?? null, taskType: options.taskType });

    // Reference writer order (largest element first, then name) keeps every tensor aligned.
    const plan = modules.flatMap((m: MlxLoraModule) => [
      { spec: { name: peftLoraKey(m.path, 'A'), dtype: m.a.dtype, shape: [m.rank, m.inFeatures] }, source: m.a },
      { spec: { name: peftLoraKey(m.path, 'B'), dtype: m.b.dtype, shape: [m.outFeatures, m.rank] }, source: m.b },
    ]);
    plan.sort((x, y) => SAFETENSORS_DTYPE_BITS[y.spec.dtype] - SAFETENSORS_DTYPE_BITS[x.spec.dtype] || (x.spec.name < y.spec.name ? -1 : 1));

    // mkdir, not mkdtemp: the directory becomes the output, with the mode a new directory gets
    // (the umask); mkdtemp's 0700 left the adapter unreadable to anyone else (a serving container).
    // A missing parent of outDir is created, as PEFT's save_pretrained and mlx_lm create theirs
    // (it failed with a bare ENOENT naming the hidden temp directory), and removed again when
    // the conversion fails.
    createdParent = await mkdir(dirname(outDir), { recursive: true });
    // Named by its owner (pid, host), so that the next conversion to this outDir removes what a
    // killed one left (SIGKILL skips the finally below) and never what a live one is writing.
    tmpDir = join(dirname(outDir), tempFileName(conversionTempPrefix(outDir)));
    await mkdir(tmpDir);
    const writer = await createSafetensorsWriter(join(tmpDir, MODEL_FILES.peftWeights), plan.map((p): SafetensorsTensorSpec => p.spec), {
      metadata: { format: 'pt' },
    });
    try {
      for (const { spec, source } of plan) {
        if (options.signal?.aborted) throw new AbortedError(`Conversion of ${root} was aborted.`, { cause: options.signal.reason });
        const bytes = await reader.readTensor(source.name);
        const [rows, cols] = source.shape as [number, number];
        await writer.writeTensor(spec.name, transpose2d(bytes, rows, cols, dtypeByteSize(source.dtype)));
      }
      await writer.close();
    } catch (error) {
      await writer.abort();
      throw error;
    }
    await writeFile(join(tmpDir, MODEL_FILES.adapterConfig), `${JSON.stringify(config, null, 2)}\n`);
    await writeFile(join(tmpDir, MLX_CONFIG_COPY), mlxConfigCopy(configText, rawConfig, localModel, options.baseModel));

    await replaceDir(tmpDir, outDir, options.overwrite === true, root);
    tmpDir = undefined;
    for (const w of warnings) logger.warn(w, { outDir });
    logger.info(`Converted ${modules.length} MLX LoRA modules to a PEFT adapter`, { inputDir: root, outDir, r: config.r, loraAlpha: config.lora_alpha });
    return {
      inputDir: root,
      adapterDir,
      outDir,
      tensorsConverted: plan.length,
      modules: modules.map((m) => m.path),
      config,
      files: await listModelFiles(outDir),
      warnings,
    };
  } finally {
    await reader.close();
    if (tmpDir) {
      await rm(tmpDir, { recursive: true, force: true });
      if (createdParent) await removeEmptyDirs(dirname(outDir), createdParent);
    }
  }
}

/**
 * Removes the temp directories of earlier conversions to the same output (`prefix`: the hidden
 * `.<outDir name>.tmp-`) whose process is gone, whatever their age (`removeDeadOwnersTempFiles`:
 * a conversion is short, so waiting for them to age would leave each killed one's tensors on
 * the disk for another run). The owner-less names of earlier versions (`<prefix><12 hex>`) go
 * once old. `names`: the entries of `parent`, read once for this and {@link restoreOutputPutAside}.
 */
async function removeKilledConversions(parent: string, prefix: string, names: readonly string[]): Promise<void> {
  await removeDeadOwnersTempFiles(parent, prefix, { legacy: legacyTempName(prefix), names });
}

/** The owner-less temp directory names of earlier versions: `<prefix><12 hex>`. */
function legacyTempName(prefix: string): RegExp {
  return new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[0-9a-f]{12}$`);
}

/** Start of the name of a conversion's temp directory beside `outDir` (hidden): `.<outDir name>.tmp-`. */
function conversionTempPrefix(outDir: string): string {
  return `.${basename(outDir)}.tmp-`;
}

/**
 * Where {@link replaceDir} keeps the old `outDir` while the new one is renamed in: beside the
 * temp directory, under its name (owner pid and host included) plus this suffix.
 */
const PUT_ASIDE_SUFFIX = '.old';

/**
 * The old outputs of `outDir` that conversions killed inside {@link replaceDir} left put aside
 * (`<temp dir>.old` whose owner is gone from this host). Another host's, or a live conversion's,
 * is never one: it may still be moved back or removed by its owner. Earlier versions' (an
 * owner-less temp name, see {@link legacyTempName}) go by the rule of their temp directories:
 * untouched for {@link STALE_TEMP_MS}. `names`: the entries of `outDir`'s parent, when the
 * caller has read them (read here otherwise).
 */
async function outputsPutAsideByKilled(outDir: string, names?: readonly string[]): Promise<string[]> {
  const parent = dirname(outDir);
  const prefix = conversionTempPrefix(outDir);
  const legacy = legacyTempName(prefix);
  const found: string[] = [];
  for (const name of names ?? (await readdir(parent).catch(() => [] as string[]))) {
    if (!name.startsWith(prefix) || !name.endsWith(PUT_ASIDE_SUFFIX)) continue;
    const temp = name.slice(0, -PUT_ASIDE_SUFFIX.length);
    const path = join(parent, name);
    const info = await lstat(path).catch(() => undefined);
    if (!info) continue;
    // When it was put aside is its ctime (the rename set it), not its mtime (the old output's
    // last change, maybe days ago): one of this process's pid put aside before this process
    // started is a predecessor's (a container restarted as pid 1).
    if (leftByDeadWriter(temp, info.ctimeMs)) found.push(path);
    else if (legacy.test(temp) && Date.now() - info.mtimeMs > STALE_TEMP_MS) found.push(path);
  }
  return found;
}

/**
 * Undoes what a conversion killed between {@link replaceDir}'s two renames left: the old
 * `outDir` put aside and no `outDir` at all. It is moved back, not dropped in favour of the killed
 * conversion's new output (complete by then, in its temp directory): the conversion never
 * returned, and `outDir` is either complete or untouched, so the state to come back to is the one
 * before it, the user's previous output. When `outDir` exists (killed after the second rename,
 * while removing the old one, or restored meanwhile), what was put aside is only an old copy and
 * is removed. Never throws: what cannot be moved or removed stays for the next conversion.
 * `siblings`: the entries of `outDir`'s parent, as the conversion read them once.
 */
async function restoreOutputPutAside(outDir: string, siblings: readonly string[], logger: Logger): Promise<void> {
  for (const aside of await outputsPutAsideByKilled(outDir, siblings)) {
    if (!(await exists(outDir))) {
      const restored = await rename(aside, outDir).then(
        () => true,
        () => false,
      );
      if (restored) {
        logger.warn(`Restored ${outDir}: a conversion killed while replacing it had left it aside as ${aside}`, { outDir });
        continue;
      }
    }
    await rm(aside, { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * Removes `dir` and its parents up to `top` (both included), each only while it is empty: the
 * directories a failed conversion created for its output, and nothing someone put there meanwhile.
 */
async function removeEmptyDirs(dir: string, top: string): Promise<void> {
  for (let current = dir; isInside(top, current); current = dirname(current)) {
    const removed = await rmdir(current).then(
      () => true,
      () => false,
    );
    if (!removed || current === top) return;
  }
}

/** Moves the finished `tmpDir` to `outDir`; an existing `outDir` is removed only after the new one is in place. */
async function replaceDir(tmpDir: string, outDir: string, overwrite: boolean, input: string): Promise<void> {
  // Killed between the two renames, this is all that is left of outDir: the next conversion
  // there moves it back (restoreOutputPutAside).
  const old = `${tmpDir}${PUT_ASIDE_SUFFIX}`;
  let moved = false;
  if (overwrite && (await exists(outDir))) {
    await rename(outDir, old);
    moved = true;
  }
  try {
    await rename(tmpDir, outDir);
  } catch (error) {
    if (moved) await rename(old, outDir).catch(() => undefined);
    throw new ConversionError(input, `Cannot move the converted adapter into ${outDir}: ${(error as Error).message}.`, {
      cause: error,
      hint: 'Another process may have created it meanwhile; retry with overwrite: true or another outDir.',
    });
  }
  if (moved) await rm(old, { recursive: true, force: true });
}

/**
 * Where {@link convertMlxLoraToPeft} would write the PEFT adapter of the MLX adapter directory
 * `root` (absolute), checked as it checks it before anything is written: the resolved `outDir`.
 * A dry run that converts into a scratch directory calls it on the real options, so it is
 * refused where the real run would be.
 *
 * @throws {InvalidArgumentError} when `outDir` contains the input or is inside it (either way
 *   round destroys it).
 * @throws {InvalidArgumentError} when `outDir` exists and `overwrite` is not set (the call must
 *   change, not the model).
 * @example
 * ```ts
 * const outDir = await checkConversionDestination('/work/mlx/ad_1', { outDir: '/work/peft' });
 * ```
 * @internal
 */
export async function checkConversionDestination(root: string, options: Pick<ConvertMlxLoraOptions, 'outDir' | 'overwrite'>): Promise<string> {
  const outDir = await safeDestination(root, options.outDir);
  // Read-only (a dry run calls it): an outDir that a killed conversion left put aside is moved
  // back by the real conversion, before this check, so it counts as existing here too.
  await refuseExistingOutDir(outDir, options.overwrite === true, (await outputsPutAsideByKilled(outDir)).length > 0);
  return outDir;
}

/**
 * The resolved `outDir` (given, or the default beside `root`), refused when it contains the input
 * or is inside it.
 */
async function safeDestination(root: string, outDirOption: string | undefined): Promise<string> {
  const outDir = resolve(outDirOption ?? join(dirname(root), `${basename(root)}${PEFT_CONVERTED_SUFFIX}`));
  // Either way round destroys the input: `overwrite` removes the old outDir whole, so an outDir
  // holding the input takes it along, and one inside it (`adapters/` itself) replaces the MLX
  // weights. Compared where they really are, so `m/adapters/../adapters` or a path through a
  // symlink to the input directory is caught too.
  const [outReal, rootReal] = await Promise.all([realDestination(outDir), realpath(root)]);
  const outDirHint = { hint: `Leave outDir (\`-o\` on the command line) unset to write ${basename(root)}${PEFT_CONVERTED_SUFFIX} next to the input.` };
  if (isInside(outReal, rootReal)) {
    throw new InvalidArgumentError('outDir', `outDir ${outDir} contains the input directory ${root}; writing there would destroy the adapter being converted.`, outDirHint);
  }
  if (isInside(rootReal, outReal)) {
    throw new InvalidArgumentError('outDir', `outDir ${outDir} is inside the input directory ${root}; writing there could destroy the adapter being converted.`, outDirHint);
  }
  return outDir;
}

/** Refuses an existing `outDir` without `overwrite` (`putAside`: it exists, moved aside by a killed conversion). */
async function refuseExistingOutDir(outDir: string, overwrite: boolean, putAside = false): Promise<void> {
  if (!overwrite && (putAside || (await exists(outDir)))) {
    // A usage error (CLI exit 2), not a model's: the adapter converts; the call must say where.
    throw new InvalidArgumentError('outDir', `Output directory ${outDir} already exists.`, { hint: 'Pass overwrite: true to replace it, or choose another outDir.' });
  }
}
