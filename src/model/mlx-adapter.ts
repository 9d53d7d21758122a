/**
 * Understanding an MLX (mlx-lm) LoRA adapter: its `adapter_config.json` dialect and the
 * tensors of its `adapters.safetensors`, paired per adapted module. Shared by the validator
 * (which reports problems) and the converter (which refuses to convert when there are any).
 *
 * MLX stores, for every adapted Linear at module path `P`, `P.lora_a` shaped (in, r) and
 * `P.lora_b` shaped (r, out), and computes `y + scale * (x @ a) @ b` (mlx-lm
 * `tuner/lora.py`). DoRA (`P.m`), MoE switch layers (3-D tensors), embedding LoRA and full
 * fine-tunes have no plain PEFT LoRA equivalent and are reported as problems.
 *
 * @module
 */
import { SAFETENSORS_DTYPE_BITS, type SafetensorsHeader, type SafetensorsTensorInfo } from './safetensors.js';

/** The fields of an MLX `adapter_config.json` that matter for conversion. */
export interface MlxAdapterConfig {
  /** `lora_parameters.rank`. */
  rank: number;
  /** `lora_parameters.scale`: multiplies the low-rank term directly (not alpha/r). */
  scale: number;
  /** `lora_parameters.dropout`, 0 when absent. */
  dropout: number;
  /** `num_layers` (old name `lora_layers`): the last N blocks were adapted; -1 means all. */
  numLayers?: number;
  /** `model`: what was passed to `mlx_lm.lora --model` (a repo id or a local path). */
  model?: string;
  /** The whole file, for provenance. */
  raw: Record<string, unknown>;
}

/** Result of reading an MLX adapter config: the config when usable, and every problem found. */
export interface MlxAdapterConfigCheck {
  config?: MlxAdapterConfig;
  problems: string[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Checks a parsed MLX `adapter_config.json` and extracts rank, scale and the rest. Problems are
 * sentences naming the field, suitable for a validation report or an error message.
 *
 * @example
 * ```ts
 * const { config, problems } = checkMlxAdapterConfig(JSON.parse(text));
 * ```
 */
export function checkMlxAdapterConfig(raw: unknown): MlxAdapterConfigCheck {
  if (!isRecord(raw)) return { problems: ['adapter_config.json is not a JSON object'] };
  const problems: string[] = [];
  if ('peft_type' in raw) {
    problems.push('adapter_config.json is a PEFT config (it has peft_type) but sits next to MLX adapters.safetensors; the two dialects cannot be mixed');
  }
  // mlx-lm before 2024-09 wrote `use_dora: bool` instead of `fine_tune_type`.
  const fineTuneType = raw.fine_tune_type ?? (raw.use_dora === true ? 'dora' : 'lora');
  if (fineTuneType === 'dora') problems.push('fine_tune_type is "dora": DoRA adapters cannot be converted to PEFT by this library (plain LoRA only)');
  else if (fineTuneType === 'full') problems.push('fine_tune_type is "full": this is a full fine-tune, not a LoRA adapter; fuse or save the full model instead');
  else if (fineTuneType !== 'lora') problems.push(`fine_tune_type ${JSON.stringify(fineTuneType)} is unknown (expected "lora")`);

  const params = raw.lora_parameters;
  if (!isRecord(params)) {
    problems.push('lora_parameters is missing or not an object (it must hold rank and scale)');
    return { problems };
  }
  const { rank, scale, dropout = 0 } = params;
  if (typeof rank !== 'number' || !Number.isInteger(rank) || rank <= 0) problems.push(`lora_parameters.rank must be a positive integer, got ${JSON.stringify(rank)}`);
  // Never fall back to the legacy `alpha` key: MLX ignored it (research note, pitfall 1).
  if (typeof scale !== 'number' || !Number.isFinite(scale) || scale <= 0) problems.push(`lora_parameters.scale must be a positive number, got ${JSON.stringify(scale)}`);
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) problems.push(`lora_parameters.dropout must be a number in [0, 1), got ${JSON.stringify(dropout)}`);
  const numLayers = raw.num_layers ?? raw.lora_layers;
  if (numLayers !== undefined && numLayers !== null && (typeof numLayers !== 'number' || !Number.isInteger(numLayers))) {
    problems.push(`num_layers must be an integer, got ${JSON.stringify(numLayers)}`);
  }
  if (problems.length > 0) return { problems };
  return {
    config: {
      rank: rank as number,
      scale: scale as number,
      dropout: dropout as number,
      ...(typeof numLayers === 'number' ? { numLayers } : {}),
      ...(typeof raw.model === 'string' && raw.model !== '' ? { model: raw.model } : {}),
      raw,
    },
    problems,
  };
}

/** One adapted module: its MLX tensors and what they say about it. */
export interface MlxLoraModule {
  /** Module path, e.g. `model.layers.3.self_attn.q_proj`. */
  path: string;
  /** `P.lora_a`, shaped (in, r). */
  a: SafetensorsTensorInfo;
  /** `P.lora_b`, shaped (r, out). */
  b: SafetensorsTensorInfo;
  inFeatures: number;
  outFeatures: number;
  rank: number;
  /** Block index when the path is `<prefix>layers.<i>.<rest>`. */
  layer?: number;
  /** The part after `layers.<i>.`, e.g. `self_attn.q_proj`. */
  relativePath?: string;
  /** The part before `layers.<i>.`, e.g. `model.`. */
  prefix?: string;
}

/** Result of pairing the tensors of an MLX adapter file. */
export interface MlxLoraModulesCheck {
  /** Complete, 2-D, consistent modules, sorted by path. */
  modules: MlxLoraModule[];
  problems: string[];
}

const LAYER_PATH = /^(.*?)layers\.(\d+)\.(.+)$/;
/** Embedding modules: MLX also applies their delta to tied output weights, PEFT does not. */
const EMBEDDING_MODULE = /(^|\.)(embed_tokens|wte|wpe|word_embeddings|embeddings?)$/;

/**
 * Pairs `P.lora_a` / `P.lora_b` tensors of an MLX adapter header into modules and reports
 * everything that has no plain PEFT LoRA equivalent or is inconsistent. When `rank` is given
 * (from the config), every module must use it; when `numLayers` is (the config's `num_layers`),
 * the tensors may adapt at most that many blocks.
 *
 * @example
 * ```ts
 * const { modules, problems } = checkMlxLoraTensors(await readSafetensorsHeader(file), 8, 16);
 * ```
 */
export function checkMlxLoraTensors(header: SafetensorsHeader, rank?: number, numLayers?: number): MlxLoraModulesCheck {
  const problems: string[] = [];
  const pairs = new Map<string, { a?: SafetensorsTensorInfo; b?: SafetensorsTensorInfo }>();
  const unexpected: string[] = [];
  const dora: string[] = [];
  for (const tensor of header.tensors) {
    const match = /^(.+)\.(lora_a|lora_b|m)$/.exec(tensor.name);
    if (!match) {
      unexpected.push(tensor.name);
      continue;
    }
    const [, path, leaf] = match as RegExpExecArray & [string, string, 'lora_a' | 'lora_b' | 'm'];
    if (leaf === 'm') {
      dora.push(tensor.name);
      continue;
    }
    const pair = pairs.get(path) ?? {};
    pair[leaf === 'lora_a' ? 'a' : 'b'] = tensor;
    pairs.set(path, pair);
  }
  const list = (names: string[]) => `${names.slice(0, 5).join(', ')}${names.length > 5 ? `, and ${names.length - 5} more` : ''}`;
  if (header.tensors.length === 0) problems.push('the adapter file holds no tensors');
  if (unexpected.length > 0) problems.push(`unexpected tensors (MLX LoRA adapters hold only *.lora_a and *.lora_b): ${list(unexpected)}`);
  if (dora.length > 0) problems.push(`DoRA magnitude vectors (*.m) cannot be converted to PEFT by this library: ${list(dora)}`);

  const modules: MlxLoraModule[] = [];
  for (const path of [...pairs.keys()].sort()) {
    const { a, b } = pairs.get(path)!;
    if (!a || !b) {
      problems.push(`${path}.${a ? 'lora_a' : 'lora_b'} has no matching ${path}.${a ? 'lora_b' : 'lora_a'}`);
      continue;
    }
    if (a.shape.length !== 2 || b.shape.length !== 2) {
      problems.push(
        `${path} has ${a.shape.length}-D/${b.shape.length}-D tensors ${JSON.stringify(a.shape)}/${JSON.stringify(b.shape)}; only 2-D Linear LoRA converts (3-D tensors are MoE switch layers)`,
      );
      continue;
    }
    const [inFeatures, rankA] = a.shape as [number, number];
    const [rankB, outFeatures] = b.shape as [number, number];
    if (rankA !== rankB) {
      problems.push(`${path}: lora_a ${JSON.stringify(a.shape)} and lora_b ${JSON.stringify(b.shape)} disagree on the rank (${rankA} vs ${rankB})`);
      continue;
    }
    if (rank !== undefined && rankA !== rank) {
      problems.push(`${path} has rank ${rankA} but lora_parameters.rank is ${rank}`);
      continue;
    }
    if (SAFETENSORS_DTYPE_BITS[a.dtype] % 8 !== 0 || SAFETENSORS_DTYPE_BITS[b.dtype] % 8 !== 0) {
      problems.push(`${path} uses a sub-byte dtype (${a.dtype}/${b.dtype}), which cannot be transposed element-wise`);
      continue;
    }
    if (EMBEDDING_MODULE.test(path)) {
      problems.push(`${path} is an embedding: embedding LoRA cannot be converted (MLX also applies it to tied output weights, PEFT does not)`);
      continue;
    }
    const layerMatch = LAYER_PATH.exec(path);
    modules.push({
      path,
      a,
      b,
      inFeatures,
      outFeatures,
      rank: rankA,
      ...(layerMatch ? { prefix: layerMatch[1], layer: Number(layerMatch[2]), relativePath: layerMatch[3] } : {}),
    });
  }
  const blocks = tooManyBlocks(modules, numLayers);
  if (blocks) problems.push(blocks);
  return { modules, problems };
}

/**
 * Why `modules` cannot be the adapter of a config whose `num_layers` is `numLayers`, or
 * `undefined`. mlx_lm adapts the last `num_layers` blocks (`model.layers[-max(num_layers, 0):]`,
 * so -1 and 0 adapt all) and loads `adapters.safetensors` with `load_weights(strict=False)`,
 * which drops the tensors of any other block without a word: converted anyway, they would change
 * the PEFT model where the MLX model never was. Blocks are counted per list (`model.layers`).
 */
function tooManyBlocks(modules: readonly MlxLoraModule[], numLayers: number | undefined): string | undefined {
  if (numLayers === undefined || numLayers <= 0) return undefined;
  const blocksByList = new Map<string, Set<number>>();
  for (const { prefix, layer } of modules) {
    if (layer === undefined) continue;
    const blocks = blocksByList.get(prefix ?? '') ?? new Set<number>();
    blocks.add(layer);
    blocksByList.set(prefix ?? '', blocks);
  }
  for (const [prefix, blocks] of blocksByList) {
    if (blocks.size <= numLayers) continue;
    const sorted = [...blocks].sort((a, b) => a - b);
    return (
      `LoRA tensors in ${blocks.size} blocks (${prefix}layers.${sorted[0]} to ${prefix}layers.${sorted[sorted.length - 1]}) but num_layers is ${numLayers}: ` +
      `mlx_lm adapts only the last ${numLayers} blocks and ignores the tensors of the others when it loads the adapter, so the adapter file and its config do not belong together ` +
      '(put the adapter_config.json of the run that wrote these weights beside them)'
    );
  }
  return undefined;
}
