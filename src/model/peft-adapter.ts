/**
 * The PEFT LoRA adapter conventions (huggingface/peft `tuners/lora`, `utils/save_and_load.py`):
 * tensor key names, the `adapter_config.json` this library writes, and the checks a PEFT adapter
 * must pass before it is published. Wrong key names are the dangerous failure: PEFT loads them
 * with `strict=False`, so a misnamed adapter becomes a silent no-op with only a warning.
 *
 * @module
 */
import type { MlxAdapterConfig, MlxLoraModule } from './mlx-adapter.js';
import type { SafetensorsHeader } from './safetensors.js';

/** The prefix PEFT puts before module paths of the wrapped transformers model. */
export const PEFT_KEY_PREFIX = 'base_model.model.';

/**
 * The `task_type` values PEFT knows (`utils/peft_types.py`, `TaskType`). Since PEFT 0.14 any
 * other value makes `PeftConfig` raise "Invalid task type" (huggingface/peft#2210), so an
 * adapter config with a typo in it does not load at all.
 *
 * @example
 * ```ts
 * PEFT_TASK_TYPES.includes('CAUSAL_LM'); // true
 * ```
 */
export const PEFT_TASK_TYPES: readonly string[] = Object.freeze(['SEQ_CLS', 'SEQ_2_SEQ_LM', 'CAUSAL_LM', 'TOKEN_CLS', 'QUESTION_ANS', 'FEATURE_EXTRACTION']);

/** The `adapter_config.json` written for a converted LoRA adapter (loads on PEFT >= 0.9). */
export interface PeftLoraConfig {
  peft_type: 'LORA';
  task_type: string;
  base_model_name_or_path: string | null;
  revision: string | null;
  r: number;
  /** `scale * r` for an MLX adapter, so that PEFT's `lora_alpha / r` equals MLX's `scale`. */
  lora_alpha: number;
  lora_dropout: number;
  bias: 'none';
  fan_in_fan_out: false;
  use_rslora: false;
  use_dora: false;
  /** Module names relative to a block (`self_attn.q_proj`), or full module paths. */
  target_modules: string[];
  /** Adapted block indices when `target_modules` are relative names, else `null`. */
  layers_to_transform: number[] | null;
  layers_pattern: null;
  modules_to_save: null;
  init_lora_weights: true;
  inference_mode: true;
  rank_pattern: Record<string, never>;
  alpha_pattern: Record<string, never>;
}

/**
 * PEFT's checkpoint key for a LoRA matrix of the module at `modulePath`.
 *
 * @example
 * ```ts
 * peftLoraKey('model.layers.0.self_attn.q_proj', 'A'); // 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'
 * ```
 */
export function peftLoraKey(modulePath: string, matrix: 'A' | 'B'): string {
  return `${PEFT_KEY_PREFIX}${modulePath}.lora_${matrix}.weight`;
}

/**
 * Chooses `target_modules` and `layers_to_transform` for a set of adapted modules. When every
 * module sits in `model.layers.<i>` and every adapted block has the same module set, the compact
 * form is used (`["self_attn.q_proj", ...]` + block indices), which PEFT matches by suffix and
 * filters by block. Otherwise the full module paths are listed, which PEFT matches exactly, so
 * that e.g. a vision tower's `self_attn.q_proj` is never adapted by accident.
 *
 * @example
 * ```ts
 * peftTargets([{ path: 'model.layers.3.self_attn.q_proj', prefix: 'model.', layer: 3, relativePath: 'self_attn.q_proj' }]);
 * // { targetModules: ['self_attn.q_proj'], layersToTransform: [3] }
 * ```
 */
export function peftTargets(modules: readonly Pick<MlxLoraModule, 'path' | 'layer' | 'relativePath' | 'prefix'>[]): {
  targetModules: string[];
  layersToTransform: number[] | null;
} {
  const byLayer = new Map<number, Set<string>>();
  let compact = modules.length > 0;
  for (const m of modules) {
    if (m.layer === undefined || m.relativePath === undefined || m.prefix !== 'model.') {
      compact = false;
      break;
    }
    const set = byLayer.get(m.layer) ?? new Set<string>();
    set.add(m.relativePath);
    byLayer.set(m.layer, set);
  }
  if (compact) {
    const sets = [...byLayer.values()].map((s) => [...s].sort().join('\n'));
    if (sets.every((s) => s === sets[0])) {
      return {
        targetModules: [...(byLayer.values().next().value as Set<string>)].sort(),
        layersToTransform: [...byLayer.keys()].sort((x, y) => x - y),
      };
    }
  }
  return { targetModules: modules.map((m) => m.path).sort(), layersToTransform: null };
}

/**
 * Builds the PEFT config for converted MLX modules.
 *
 * @example
 * ```ts
 * const config = buildPeftLoraConfig(modules, mlxConfig, { baseModel: 'meta-llama/Llama-3.2-1B' });
 * config.lora_alpha; // mlxConfig.scale * mlxConfig.rank
 * ```
 */
export function buildPeftLoraConfig(
  modules: readonly MlxLoraModule[],
  mlx: Pick<MlxAdapterConfig, 'rank' | 'scale' | 'dropout'>,
  options: { baseModel?: string | null; taskType?: string } = {},
): PeftLoraConfig {
  const { targetModules, layersToTransform } = peftTargets(modules);
  return {
    peft_type: 'LORA',
    task_type: options.taskType ?? 'CAUSAL_LM',
    base_model_name_or_path: options.baseModel ?? null,
    revision: null,
    r: mlx.rank,
    lora_alpha: mlx.scale * mlx.rank,
    lora_dropout: mlx.dropout,
    bias: 'none',
    fan_in_fan_out: false,
    use_rslora: false,
    use_dora: false,
    target_modules: targetModules,
    layers_to_transform: layersToTransform,
    layers_pattern: null,
    modules_to_save: null,
    init_lora_weights: true,
    inference_mode: true,
    rank_pattern: {},
    alpha_pattern: {},
  };
}

/** Errors (the adapter would not load or would load wrong) and warnings (it loads, but ...). */
export interface PeftCheck {
  errors: string[];
  warnings: string[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Checks a parsed PEFT `adapter_config.json`: `peft_type: "LORA"`, `r`, `lora_alpha` and
 * `target_modules` are required, and a `task_type` must be one of {@link PEFT_TASK_TYPES}; a
 * missing `base_model_name_or_path` or `task_type` is a warning.
 *
 * @example
 * ```ts
 * const { errors, warnings } = checkPeftLoraConfig(JSON.parse(await readFile('adapter_config.json', 'utf8')));
 * ```
 */
export function checkPeftLoraConfig(raw: unknown): PeftCheck {
  const errors: string[] = [];
  const warnings: string[] = [];
  if (!isRecord(raw)) return { errors: ['adapter_config.json is not a JSON object'], warnings };
  if (raw.peft_type === undefined) {
    const mlx = 'lora_parameters' in raw || 'fine_tune_type' in raw;
    errors.push(`adapter_config.json has no peft_type${mlx ? ' (it is an MLX config next to PEFT weights)' : ''}; PEFT cannot load it`);
  } else if (raw.peft_type !== 'LORA') {
    errors.push(`peft_type is ${JSON.stringify(raw.peft_type)}; only LoRA adapters ("LORA") are supported`);
  }
  if (typeof raw.r !== 'number' || !Number.isInteger(raw.r) || raw.r <= 0) errors.push(`r must be a positive integer, got ${JSON.stringify(raw.r)}`);
  if (typeof raw.lora_alpha !== 'number' || !Number.isFinite(raw.lora_alpha) || raw.lora_alpha <= 0) {
    errors.push(`lora_alpha must be a positive number, got ${JSON.stringify(raw.lora_alpha)}`);
  }
  const targets = raw.target_modules;
  const targetsOk =
    (typeof targets === 'string' && targets !== '') ||
    (Array.isArray(targets) && targets.length > 0 && targets.every((t) => typeof t === 'string' && t !== ''));
  // PEFT's own advice for adapting only MoE expert parameters: `target_modules=[]` with
  // `target_parameters` (tuners/lora/config.py); None is filled in the same way on loading.
  const parametersOnly = targetParameters(raw).length > 0 && (targets === null || targets === undefined || (Array.isArray(targets) && targets.length === 0));
  if (!targetsOk && !parametersOnly) {
    errors.push(`target_modules must be a non-empty list of module names (or a regex string, or [] with target_parameters), got ${JSON.stringify(targets)}`);
  }
  if (typeof raw.base_model_name_or_path !== 'string' || raw.base_model_name_or_path === '') {
    warnings.push('adapter_config.json has no base_model_name_or_path: users must know which base model to load it on (pass baseModel when converting)');
  }
  if (raw.task_type === undefined || raw.task_type === null) warnings.push('adapter_config.json has no task_type: AutoPeftModelForCausalLM cannot pick a model class');
  else if (typeof raw.task_type !== 'string' || !PEFT_TASK_TYPES.includes(raw.task_type)) {
    errors.push(`task_type ${JSON.stringify(raw.task_type)} is not one PEFT knows (${PEFT_TASK_TYPES.join(', ')}); PEFT >= 0.14 refuses to load the adapter`);
  }
  if ('lora_parameters' in raw || 'fine_tune_type' in raw) warnings.push('adapter_config.json mixes MLX keys (lora_parameters, fine_tune_type) into a PEFT config; PEFT < 0.14 rejects unknown keys');
  return { errors, warnings };
}

const PEFT_SUFFIX = /^(.+)\.(lora_A\.weight|lora_B\.weight|lora_embedding_A|lora_embedding_B|lora_magnitude_vector)$/;

/**
 * The rank PEFT gives the module at `modulePath` (its name in the transformers model, without
 * `base_model.model.`): the value of the first `rank_pattern` key that matches the end of the
 * path, else `r`. Mirrors PEFT's `get_pattern_key` (`utils/other.py`:
 * `re.match(rf"(.*\.)?({key})$", module)`). `undefined` when a pattern is no regular
 * expression JavaScript can read: the rank of that module cannot be judged then.
 *
 * @example
 * ```ts
 * peftRankOf('model.layers.0.self_attn.v_proj', 8, { v_proj: 16 }); // { rank: 16, pattern: 'v_proj' }
 * peftRankOf('model.layers.0.self_attn.q_proj', 8, { v_proj: 16 }); // { rank: 8 }
 * ```
 */
export function peftRankOf(modulePath: string, r: number | undefined, rankPattern: Record<string, unknown> = {}): { rank: number | undefined; pattern?: string } | undefined {
  for (const [pattern, rank] of Object.entries(rankPattern)) {
    let matcher: RegExp;
    try {
      matcher = new RegExp(`^(?:.*\\.)?(?:${pattern})$`);
    } catch {
      return undefined;
    }
    if (matcher.test(modulePath)) return { rank: typeof rank === 'number' ? rank : undefined, pattern };
  }
  return { rank: r };
}

/** `target_parameters` of a PEFT config: the nn.Parameter names (MoE experts) it adapts. */
function targetParameters(config: Record<string, unknown>): string[] {
  const value = config.target_parameters;
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string' && v !== '') : [];
}

/**
 * Whether the module at `modulePath` holds a parameter `target_parameters` adapts. PEFT wraps
 * such a parameter in a `ParamWrapper` whose `lora_A` is (r × experts, in) and `lora_B`
 * (out, r × experts) (`tuners/lora/layer.py`), so its rank is not `r`. Several parameters of one
 * module nest wrappers, which adds `base_layer.` segments to the path.
 */
function holdsTargetParameter(config: Record<string, unknown>, modulePath: string): boolean {
  const path = modulePath.replace(/(^|\.)base_layer(?=\.|$)/g, '').replace(/^\./, '');
  return targetParameters(config).some((parameter) => {
    const owner = parameter.includes('.') ? parameter.slice(0, parameter.lastIndexOf('.')) : '';
    return owner === '' || path === owner || path.endsWith(`.${owner}`);
  });
}

/** A Python regular expression of a PEFT config as a JavaScript one, or `undefined` when JavaScript cannot read it. */
function pythonRegExp(source: string): RegExp | undefined {
  try {
    return new RegExp(source);
  } catch {
    return undefined;
  }
}

/**
 * Whether PEFT wraps the module at `modulePath` (its name in the transformers model) with this
 * config's LoRA layers, as `check_target_module_exists` (`tuners/tuners_utils.py`) decides:
 * `exclude_modules` and `modules_to_save` first, then `target_modules` (a string is a regex
 * matched whole; a list matches a name exactly or as a dotted suffix, and only the suffix
 * match is filtered by `layers_to_transform`, read from the first numbered path segment or
 * after `layers_pattern`); a module holding a parameter of `target_parameters` is adapted
 * through that. A module PEFT does not wrap gets no LoRA layer, so its tensors are dropped on
 * loading without an error. `undefined` when it cannot be told here (`all-linear`, no
 * `target_modules` at all, a pattern JavaScript cannot read).
 *
 * @example
 * ```ts
 * peftTargetsModule({ target_modules: ['q_proj'], layers_to_transform: [3] }, 'model.layers.3.self_attn.q_proj'); // true
 * peftTargetsModule({ target_modules: ['q_proj'], layers_to_transform: [3] }, 'model.layers.4.self_attn.q_proj'); // false
 * ```
 */
export function peftTargetsModule(config: Record<string, unknown>, modulePath: string): boolean | undefined {
  const strings = (value: unknown): string[] | undefined => (Array.isArray(value) && value.every((v) => typeof v === 'string') ? value : undefined);
  const matchesNameOrSuffix = (names: string[]) => names.some((name) => modulePath === name || modulePath.endsWith(`.${name}`));
  const { target_modules: targets, exclude_modules: exclude, modules_to_save: toSave, layers_to_transform: layers, layers_pattern: pattern } = config;
  if (holdsTargetParameter(config, modulePath)) return true;
  if (typeof exclude === 'string') {
    const matcher = pythonRegExp(`^(?:${exclude})$`);
    if (!matcher) return undefined;
    if (matcher.test(modulePath)) return false;
  } else if (strings(exclude) && matchesNameOrSuffix(strings(exclude)!)) {
    return false;
  }
  for (const name of strings(toSave) ?? []) {
    const matcher = pythonRegExp(`^(?:|.*\\.)${name}(?:$|\\..*)`);
    if (!matcher) return undefined;
    if (matcher.test(modulePath)) return false;
  }
  if (typeof targets === 'string') {
    if (targets === 'all-linear') return undefined;
    return pythonRegExp(`^(?:${targets})$`)?.test(modulePath);
  }
  const list = strings(targets);
  if (!list) return undefined;
  if (list.includes(modulePath)) return true;
  if (!list.some((name) => modulePath.endsWith(`.${name}`))) return false;
  const wanted = typeof layers === 'number' ? [layers] : Array.isArray(layers) ? layers : [];
  if (wanted.length === 0) return true;
  const patterns = typeof pattern === 'string' && pattern !== '' ? [pattern] : (strings(pattern) ?? []).filter((p) => p !== '');
  let index: string | undefined;
  if (patterns.length === 0) {
    index = /^.*?\.[^.]*\.(\d+)\./.exec(modulePath)?.[1];
  } else {
    for (const p of patterns) {
      const matcher = pythonRegExp(`^(?:|.*?\\.)${p}\\.(\\d+)\\.`);
      if (!matcher) return undefined;
      index = matcher.exec(modulePath)?.[1];
      if (index !== undefined) break;
    }
  }
  return index !== undefined && wanted.includes(Number(index));
}

/**
 * The rank of a PEFT LoRA pair from the shapes of its `lora_A` and `lora_B` weights, or
 * `undefined` when they are no pair PEFT builds (`tuners/lora/layer.py`):
 * - Linear and Embedding: A (r, in), B (out, r);
 * - Conv1d/2d/3d (`_ConvNd.update_layer`): A is a convolution in -> r with the base layer's
 *   kernel, (r, in, ...kernel); B one r -> out with a kernel of 1s and the base layer's
 *   `groups`, (out, r / groups, 1, ...). The rank is A's first axis; B's second is r / groups,
 *   where `groups` (not in the file) divides r and both channel counts, as PyTorch requires.
 *
 * @example
 * ```ts
 * loraPairRank([8, 4096], [4096, 8]); // 8
 * loraPairRank([8, 320, 3, 3], [640, 8, 1, 1]); // 8
 * loraPairRank([8, 4096], [4096, 4]); // undefined
 * ```
 */
function loraPairRank(A: readonly number[], B: readonly number[]): number | undefined {
  const [rank, inFeatures] = A as [number, number];
  if (A.length === 2 && B.length === 2) return B[1] === rank ? rank : undefined;
  // A Conv1d weight is 3-D, a Conv3d one 5-D; both matrices come from convolutions of one kind.
  if (A.length < 3 || A.length > 5 || B.length !== A.length || !B.slice(2).every((size) => size === 1)) return undefined;
  const [outFeatures, rankPerGroup] = B as [number, number];
  if (rankPerGroup <= 0 || rank % rankPerGroup !== 0) return undefined;
  const groups = rank / rankPerGroup;
  return inFeatures % groups === 0 && outFeatures % groups === 0 ? rank : undefined;
}

/**
 * Checks the tensor names and shapes of a PEFT `adapter_model.safetensors` against its parsed
 * `adapter_config.json` (when given): every key under `base_model.model.`, A/B pairs complete,
 * shaped as PEFT builds them (`A` (r, in) and `B` (out, r), or the 3- to 5-D weights of a
 * Conv1d/2d/3d's pair) and agreeing on the rank, and on the rank the config gives the module:
 * `r`, or the `rank_pattern` entry that matches it (PEFT trains the modules a pattern
 * names with that rank instead). A module the config does not target (see
 * {@link peftTargetsModule}) is reported: PEFT drops its tensors on loading without an error.
 *
 * @example
 * ```ts
 * const config = JSON.parse(await readFile('adapter_config.json', 'utf8'));
 * const { errors } = checkPeftLoraTensors(await readSafetensorsHeader('adapter_model.safetensors'), config);
 * ```
 */
export function checkPeftLoraTensors(header: SafetensorsHeader, config?: unknown): PeftCheck {
  const settings = isRecord(config) ? config : {};
  const r = typeof settings.r === 'number' ? settings.r : undefined;
  const rankPattern = isRecord(settings.rank_pattern) ? settings.rank_pattern : undefined;
  const errors: string[] = [];
  const warnings: string[] = [];
  const unprefixed: string[] = [];
  const other: string[] = [];
  const pairs = new Map<string, { A?: number[]; B?: number[] }>();
  for (const tensor of header.tensors) {
    if (!tensor.name.startsWith(PEFT_KEY_PREFIX)) {
      unprefixed.push(tensor.name);
      continue;
    }
    const match = PEFT_SUFFIX.exec(tensor.name);
    if (!match) {
      other.push(tensor.name);
      continue;
    }
    const [, module, kind] = match as RegExpExecArray & [string, string, string];
    if (kind === 'lora_magnitude_vector') continue;
    const pair = pairs.get(module) ?? {};
    pair[kind.includes('A') ? 'A' : 'B'] = tensor.shape;
    pairs.set(module, pair);
  }
  const list = (names: string[]) => `${names.slice(0, 5).join(', ')}${names.length > 5 ? `, and ${names.length - 5} more` : ''}`;
  if (header.tensors.length === 0) errors.push('the adapter file holds no tensors');
  if (unprefixed.length > 0) errors.push(`tensor names without the "${PEFT_KEY_PREFIX}" prefix, which PEFT silently ignores: ${list(unprefixed)}`);
  if (other.length > 0) warnings.push(`tensors that are not LoRA matrices (PEFT ignores keys it does not expect): ${list(other)}`);
  for (const [module, { A, B }] of pairs) {
    if (!A || !B) {
      errors.push(`${module} has lora_${A ? 'A' : 'B'} but no lora_${A ? 'B' : 'A'}`);
      continue;
    }
    const rank = loraPairRank(A, B);
    if (rank === undefined) {
      errors.push(
        `${module}: lora_A ${JSON.stringify(A)} and lora_B ${JSON.stringify(B)} do not form (r, in) and (out, r), nor the (r, in, ...kernel) and (out, r, 1, ...) of a Conv1d/2d/3d`,
      );
    } else {
      const expected = peftRankOf(module.slice(PEFT_KEY_PREFIX.length), r, rankPattern);
      if (expected?.rank !== undefined && rank !== expected.rank && !holdsTargetParameter(settings, module.slice(PEFT_KEY_PREFIX.length))) {
        const says = expected.pattern === undefined ? `r = ${expected.rank}` : `rank_pattern[${JSON.stringify(expected.pattern)}] = ${expected.rank}`;
        errors.push(`${module} has rank ${rank} but adapter_config.json says ${says}`);
      }
    }
  }
  if (isRecord(config)) {
    const untargeted = [...pairs.keys()].filter((module) => peftTargetsModule(config, module.slice(PEFT_KEY_PREFIX.length)) === false).sort();
    if (untargeted.length > 0) {
      errors.push(
        `adapter_config.json does not target ${untargeted.length === 1 ? 'this module' : 'these modules'} (target_modules, layers_to_transform, exclude_modules), so PEFT drops ${untargeted.length === 1 ? 'its' : 'their'} tensors on loading without an error: ${list(untargeted)}`,
      );
    }
  }
  return { errors, warnings };
}
