/**
 * Telling what kind of model a directory holds, from file names alone (nothing is parsed), so
 * that a fused model is never sent through adapter conversion and a half-written directory
 * fails before any work:
 *
 * - `lora`, MLX flavour: `adapters/adapters.safetensors` + `adapters/adapter_config.json`, as
 *   `mlx_lm.lora` writes its `--adapter-path` inside a training output (also accepted with both
 *   files at the top, when the adapter path itself is given);
 * - `lora`, PEFT flavour: `adapter_model.safetensors` + `adapter_config.json` at the top;
 * - `fused`: `config.json` + `model.safetensors`, or `config.json` +
 *   `model.safetensors.index.json` + `model-0000x-of-0000y.safetensors` shards (or shards of
 *   other names, when the index's `weight_map` names them: transformers loads them by it).
 *
 * When several layouts are complete in one directory, `fused` wins over PEFT, and PEFT over
 * MLX: full weights are never mistaken for an adapter, and an adapter already converted is not
 * converted again. The others are reported in `alsoMatches`.
 *
 * @module
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { InvalidModelStructureError, ModelDirectoryError } from '../core/errors.js';

/** What a model directory holds: a LoRA adapter or full (fused) weights. */
export type ModelFormat = 'lora' | 'fused';

/** Which tool's adapter layout a LoRA directory uses. */
export type LoraFlavour = 'mlx' | 'peft';

/** The exact layout found. */
export type ModelLayout = 'mlx-adapters' | 'mlx-adapters-top' | 'peft-adapter' | 'fused-single' | 'fused-sharded';

/** Standard file names. */
export const MODEL_FILES = Object.freeze({
  mlxAdapterDir: 'adapters',
  mlxWeights: 'adapters.safetensors',
  adapterConfig: 'adapter_config.json',
  peftWeights: 'adapter_model.safetensors',
  fusedConfig: 'config.json',
  fusedWeights: 'model.safetensors',
  shardIndex: 'model.safetensors.index.json',
});

/** Names of fused-model shards, as transformers and mlx-lm write them. */
export const SHARD_FILE_PATTERN = /^model-(\d{5,6})-of-(\d{5,6})\.safetensors$/;

/** What {@link inspectModelDir} found. Paths in it are relative to `dir`, with `/`. */
export interface ModelDirInspection {
  /** Absolute model directory. */
  dir: string;
  format: ModelFormat;
  /** For `lora`: whose layout. */
  flavour?: LoraFlavour;
  layout: ModelLayout;
  /** The config file of the chosen layout (`config.json` or `[adapters/]adapter_config.json`). */
  configFile: string;
  /** The weight files of the chosen layout (shards sorted by name). */
  weightFiles: string[];
  /** `model.safetensors.index.json`, when present in a fused model. */
  indexFile?: string;
  /** For MLX adapters: the absolute directory holding `adapters.safetensors`. */
  adapterDir?: string;
  /** Other layouts that are also complete in this directory (ignored by precedence). */
  alsoMatches: ModelLayout[];
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Shards named by an index file, or `undefined` when it cannot be read as one. */
async function shardsNamedByIndex(path: string): Promise<string[] | undefined> {
  try {
    const index = JSON.parse(await readFile(path, 'utf8')) as { weight_map?: unknown };
    if (typeof index.weight_map !== 'object' || index.weight_map === null) return undefined;
    return [...new Set(Object.values(index.weight_map).filter((v): v is string => typeof v === 'string'))].sort();
  } catch {
    return undefined;
  }
}

const LAYOUT_DESCRIPTIONS = {
  'lora-mlx': `LoRA adapter as MLX writes it: ${MODEL_FILES.mlxAdapterDir}/${MODEL_FILES.mlxWeights} and ${MODEL_FILES.mlxAdapterDir}/${MODEL_FILES.adapterConfig}`,
  'lora-peft': `LoRA adapter in PEFT form: ${MODEL_FILES.peftWeights} and ${MODEL_FILES.adapterConfig}`,
  fused: `fused model: ${MODEL_FILES.fusedConfig} and ${MODEL_FILES.fusedWeights}, or ${MODEL_FILES.fusedConfig}, ${MODEL_FILES.shardIndex} and model-0000x-of-0000y.safetensors shards`,
} as const;

/**
 * Inspects a model directory and says which layout it holds.
 *
 * @throws ModelDirectoryError when `dir` does not exist or is not a directory.
 * @throws InvalidModelStructureError when no layout is complete; its message lists every
 *   expected layout with exactly the files missing for each (also in `error.missing`).
 * @example
 * ```ts
 * const info = await inspectModelDir('out/llama-lora_20240501_093000');
 * if (info.format === 'lora' && info.flavour === 'mlx') await convertMlxLoraToPeft(info.dir);
 * ```
 */
export async function inspectModelDir(dir: string): Promise<ModelDirInspection> {
  const root = resolve(dir);
  let entries: string[];
  try {
    entries = (await readdir(root)).sort();
  } catch (error) {
    throw new ModelDirectoryError(root, `Model directory ${root} does not exist or is not a directory.`, {
      cause: error,
      hint: 'Check the path, or let resolveModelDir find the newest training output.',
    });
  }
  const at = (rel: string) => resolve(root, rel);
  const nested = (name: string) => `${MODEL_FILES.mlxAdapterDir}/${name}`;
  const has = {
    mlxNestedWeights: await isFile(at(nested(MODEL_FILES.mlxWeights))),
    mlxNestedConfig: await isFile(at(nested(MODEL_FILES.adapterConfig))),
    mlxTopWeights: await isFile(at(MODEL_FILES.mlxWeights)),
    adapterConfig: await isFile(at(MODEL_FILES.adapterConfig)),
    peftWeights: await isFile(at(MODEL_FILES.peftWeights)),
    fusedConfig: await isFile(at(MODEL_FILES.fusedConfig)),
    fusedWeights: await isFile(at(MODEL_FILES.fusedWeights)),
    shardIndex: await isFile(at(MODEL_FILES.shardIndex)),
  };
  const shards: string[] = [];
  for (const name of entries) if (SHARD_FILE_PATTERN.test(name) && (await isFile(at(name)))) shards.push(name);
  // transformers loads shards by the index's weight_map, whatever their names: shards named
  // otherwise (a converter's own scheme) are shards too when the index names them. Only files
  // of this directory count (`entries`); the validator reports names with a path in them.
  const named = has.shardIndex ? await shardsNamedByIndex(at(MODEL_FILES.shardIndex)) : undefined;
  for (const name of named ?? []) {
    if (name.endsWith('.safetensors') && !shards.includes(name) && entries.includes(name) && (await isFile(at(name)))) shards.push(name);
  }
  shards.sort();

  const complete: ModelDirInspection[] = [];
  const base = { dir: root, alsoMatches: [] as ModelLayout[] };
  if (has.fusedConfig && has.fusedWeights) {
    complete.push({
      ...base,
      format: 'fused',
      layout: 'fused-single',
      configFile: MODEL_FILES.fusedConfig,
      weightFiles: [MODEL_FILES.fusedWeights],
      ...(has.shardIndex ? { indexFile: MODEL_FILES.shardIndex } : {}),
    });
  } else if (has.fusedConfig && has.shardIndex && shards.length > 0) {
    complete.push({ ...base, format: 'fused', layout: 'fused-sharded', configFile: MODEL_FILES.fusedConfig, weightFiles: shards, indexFile: MODEL_FILES.shardIndex });
  }
  if (has.peftWeights && has.adapterConfig) {
    complete.push({ ...base, format: 'lora', flavour: 'peft', layout: 'peft-adapter', configFile: MODEL_FILES.adapterConfig, weightFiles: [MODEL_FILES.peftWeights] });
  }
  if (has.mlxNestedWeights && has.mlxNestedConfig) {
    complete.push({
      ...base,
      format: 'lora',
      flavour: 'mlx',
      layout: 'mlx-adapters',
      configFile: nested(MODEL_FILES.adapterConfig),
      weightFiles: [nested(MODEL_FILES.mlxWeights)],
      adapterDir: at(MODEL_FILES.mlxAdapterDir),
    });
  }
  if (has.mlxTopWeights && has.adapterConfig) {
    complete.push({ ...base, format: 'lora', flavour: 'mlx', layout: 'mlx-adapters-top', configFile: MODEL_FILES.adapterConfig, weightFiles: [MODEL_FILES.mlxWeights], adapterDir: root });
  }
  const [chosen, ...others] = complete;
  if (chosen) return { ...chosen, alsoMatches: others.map((o) => o.layout) };

  // Nothing complete: say exactly what each layout lacks.
  const mlxNestedMissing = [
    ...(has.mlxNestedWeights ? [] : [nested(MODEL_FILES.mlxWeights)]),
    ...(has.mlxNestedConfig ? [] : [nested(MODEL_FILES.adapterConfig)]),
  ];
  // adapters.safetensors at the top (and no adapters/ dir) means the adapter path itself was given.
  const mlxTopGiven = has.mlxTopWeights && mlxNestedMissing.length === 2;
  const missing: Record<'lora-mlx' | 'lora-peft' | 'fused', string[]> = {
    'lora-mlx': mlxTopGiven ? [MODEL_FILES.adapterConfig] : mlxNestedMissing,
    'lora-peft': [...(has.peftWeights ? [] : [MODEL_FILES.peftWeights]), ...(has.adapterConfig ? [] : [MODEL_FILES.adapterConfig])],
    fused: [],
  };
  if (!has.fusedConfig) missing.fused.push(MODEL_FILES.fusedConfig);
  if (!has.fusedWeights) {
    if (has.shardIndex) {
      const absent = named?.filter((name) => !shards.includes(name)) ?? [];
      if (shards.length === 0) missing.fused.push(...(absent.length > 0 ? absent : ['model-0000x-of-0000y.safetensors shards']));
    } else if (shards.length > 0) {
      missing.fused.push(MODEL_FILES.shardIndex);
    } else {
      missing.fused.push(`${MODEL_FILES.fusedWeights} (or ${MODEL_FILES.shardIndex} with its model-0000x-of-0000y.safetensors shards)`);
    }
  }
  const lines = (Object.keys(LAYOUT_DESCRIPTIONS) as (keyof typeof LAYOUT_DESCRIPTIONS)[]).map(
    (key) => `  - ${LAYOUT_DESCRIPTIONS[key]}${key === 'lora-mlx' ? ' (or both at the top level)' : ''}; missing: ${missing[key].join(', ')}`,
  );
  const found = entries.length === 0 ? 'The directory is empty.' : `Found: ${entries.slice(0, 20).join(', ')}${entries.length > 20 ? `, and ${entries.length - 20} more` : ''}.`;
  throw new InvalidModelStructureError(root, `${root} is neither a LoRA adapter nor a fused model. Expected one of:\n${lines.join('\n')}\n${found}`, {
    missing,
    hint: hintFor(entries),
  });
}

function hintFor(entries: string[]): string {
  if (entries.some((name) => name.endsWith('.npz'))) {
    return 'adapters.npz comes from mlx-lm before April 2024, which this library cannot read: retrain or re-save the adapter with a recent mlx-lm (it writes adapters.safetensors).';
  }
  if (entries.some((name) => name.endsWith('.bin') || name.endsWith('.pt') || name.endsWith('.pth'))) {
    return 'Pickled weights (.bin/.pt) are not published: save the model with safetensors (save_pretrained(..., safe_serialization=True)).';
  }
  // A llama.cpp export on its own: pointing at the export folder is an easy slip (mlx_lm.fuse
  // --export-gguf writes it next to the fused safetensors), and "the training output" misleads.
  if (entries.some((name) => name.toLowerCase().endsWith('.gguf'))) {
    return 'GGUF files (llama.cpp exports) are not a layout this library publishes on their own: point modelDir at the safetensors model they were made from (config.json + model.safetensors; the GGUF file may sit next to it and is uploaded with it).';
  }
  return 'Point modelDir at the training output that holds these files (for MLX, the directory containing adapters/).';
}

/**
 * Says whether a directory holds a LoRA adapter (`'lora'`, MLX or PEFT layout) or full weights
 * (`'fused'`). See {@link inspectModelDir} for the layouts and for details.
 *
 * @throws ModelDirectoryError when `dir` does not exist.
 * @throws InvalidModelStructureError when it is neither, listing the files missing for each layout.
 * @example
 * ```ts
 * const format = await detectModelFormat('out/llama-lora_20240501_093000'); // 'lora'
 * ```
 */
export async function detectModelFormat(dir: string): Promise<ModelFormat> {
  return (await inspectModelDir(dir)).format;
}
