/**
 * Tiny model directories built from real safetensors bytes. The encoder here is deliberately
 * independent of src/model/safetensors.ts (so a bug there cannot hide itself) and writes the
 * way MLX does: `"__metadata__": null`, no header padding, tensors in the given order.
 */
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';

export type FixtureDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'U8' | 'BOOL';

const BYTES: Record<FixtureDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, U8: 1, BOOL: 1 };

export interface FixtureTensor {
  name: string;
  dtype: FixtureDtype;
  shape: number[];
  data: Uint8Array;
}

/** A temp directory removed when the current test ends. */
export function tempDir(prefix = 'au-model-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Encodes a safetensors file. `pad` aligns the data section to 8 bytes as the reference writer does. */
export function encodeSafetensors(tensors: FixtureTensor[], options: { metadata?: Record<string, string> | null; pad?: boolean } = {}): Buffer {
  const header: Record<string, unknown> = { __metadata__: options.metadata ?? null };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  if (options.pad) json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  return encodeRaw(json, Buffer.concat(tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))));
}

/** A file from a literal header text and data bytes, for corrupt fixtures. */
export function encodeRaw(headerText: string, data: Uint8Array = new Uint8Array(0), declaredLength?: bigint): Buffer {
  const json = Buffer.from(headerText, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(declaredLength ?? BigInt(json.length));
  return Buffer.concat([prefix, json, data]);
}

/** Deterministic tensor bytes: exact small floats for F32/F64, finite bit patterns for F16/BF16. */
export function tensorData(dtype: FixtureDtype, count: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(count * BYTES[dtype]);
  const view = new DataView(bytes.buffer);
  let state = seed * 2654435761;
  const next = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state;
  };
  for (let i = 0; i < count; i++) {
    const r = next();
    const value = ((r % 201) - 100) / 8; // exactly representable in F32/F64
    if (dtype === 'F32') view.setFloat32(i * 4, value, true);
    else if (dtype === 'F64') view.setFloat64(i * 8, value, true);
    // Clearing bit 14 keeps the exponent below all-ones: no Inf/NaN in F16 or BF16.
    else if (dtype === 'F16' || dtype === 'BF16') view.setUint16(i * 2, (r >>> 8) & 0xbfff, true);
    else if (dtype === 'I32') view.setInt32(i * 4, (r % 2001) - 1000, true);
    else if (dtype === 'I64') view.setBigInt64(i * 8, BigInt((r % 2001) - 1000), true);
    else if (dtype === 'BOOL') view.setUint8(i, r & 1);
    else view.setUint8(i, r & 0xff);
  }
  return bytes;
}

export function tensor(name: string, dtype: FixtureDtype, shape: number[], seed = 1): FixtureTensor {
  return { name, dtype, shape, data: tensorData(dtype, shape.reduce((a, b) => a * b, 1), seed) };
}

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, JSON.stringify(value, null, 2));
}

/** Dimensions of the tiny llama-like model the fixtures adapt. */
export const DIMS = { hidden: 8, kv: 4, intermediate: 12 } as const;

/** (in, out) of the modules a fixture can adapt. */
export const MODULE_DIMS: Record<string, [number, number]> = {
  'self_attn.q_proj': [DIMS.hidden, DIMS.hidden],
  'self_attn.k_proj': [DIMS.hidden, DIMS.kv],
  'self_attn.v_proj': [DIMS.hidden, DIMS.kv],
  'self_attn.o_proj': [DIMS.hidden, DIMS.hidden],
  'mlp.down_proj': [DIMS.intermediate, DIMS.hidden],
};

export interface MlxLoraFixture {
  layers?: number[];
  modules?: string[];
  rank?: number;
  scale?: number;
  dtype?: FixtureDtype;
  /** Extra fields merged into adapter_config.json (undefined values delete fields). */
  config?: Record<string, unknown>;
  /** Replace the tensors. */
  tensors?: FixtureTensor[];
  /** Write both files at the top of the directory instead of in adapters/. */
  topLevel?: boolean;
}

/** MLX adapter tensors: `model.layers.{i}.{module}.lora_a` (in, r) and `.lora_b` (r, out). */
export function mlxLoraTensors({ layers = [2, 3], modules = ['self_attn.q_proj', 'self_attn.v_proj'], rank = 2, dtype = 'F32' }: MlxLoraFixture = {}): FixtureTensor[] {
  const out: FixtureTensor[] = [];
  let seed = 1;
  for (const layer of layers) {
    for (const module of modules) {
      const [inDim, outDim] = MODULE_DIMS[module] ?? [DIMS.hidden, DIMS.hidden];
      out.push(tensor(`model.layers.${layer}.${module}.lora_a`, dtype, [inDim, rank], seed++));
      out.push(tensor(`model.layers.${layer}.${module}.lora_b`, dtype, [rank, outDim], seed++));
    }
  }
  // mlx saves a flattened dict: keys in tree order, not sorted; shuffle a little to prove order does not matter.
  return out.reverse();
}

/** Writes an MLX LoRA training output `<root>/<name>/adapters/{adapters.safetensors,adapter_config.json}`. */
export function writeMlxLoraDir(root: string, name: string, fixture: MlxLoraFixture = {}): string {
  const dir = join(root, name);
  const adapters = fixture.topLevel ? dir : join(dir, 'adapters');
  mkdirSync(adapters, { recursive: true });
  const rank = fixture.rank ?? 2;
  const tensors = fixture.tensors ?? mlxLoraTensors(fixture);
  writeFileSync(join(adapters, 'adapters.safetensors'), encodeSafetensors(tensors));
  const config: Record<string, unknown> = {
    adapter_path: 'adapters',
    batch_size: 4,
    data: 'data/',
    fine_tune_type: 'lora',
    iters: 100,
    learning_rate: 1e-5,
    lora_parameters: { dropout: 0.0, keys: null, rank, scale: fixture.scale ?? 20.0 },
    model: 'example-org/tiny-llama',
    num_layers: 2,
    seed: 0,
    ...fixture.config,
  };
  for (const [k, v] of Object.entries(config)) if (v === undefined) delete config[k];
  writeJson(join(adapters, 'adapter_config.json'), config);
  return dir;
}

/** Writes a PEFT adapter `<root>/<name>/{adapter_model.safetensors,adapter_config.json}`. */
export function writePeftDir(root: string, name: string, options: { config?: Record<string, unknown>; tensors?: FixtureTensor[] } = {}): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const tensors = options.tensors ?? [
    tensor('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', 'F32', [2, DIMS.hidden], 1),
    tensor('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', 'F32', [DIMS.hidden, 2], 2),
  ];
  writeFileSync(join(dir, 'adapter_model.safetensors'), encodeSafetensors(tensors, { metadata: { format: 'pt' }, pad: true }));
  const config: Record<string, unknown> = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: 'example-org/tiny-llama',
    r: 2,
    lora_alpha: 40,
    target_modules: ['self_attn.q_proj'],
    ...options.config,
  };
  for (const [k, v] of Object.entries(config)) if (v === undefined) delete config[k];
  writeJson(join(dir, 'adapter_config.json'), config);
  return dir;
}

const FUSED_CONFIG = { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: DIMS.hidden, num_hidden_layers: 2 };

function fusedTensors(): FixtureTensor[] {
  return [
    tensor('model.embed_tokens.weight', 'F32', [16, DIMS.hidden], 1),
    tensor('model.layers.0.self_attn.q_proj.weight', 'F32', [DIMS.hidden, DIMS.hidden], 2),
    tensor('model.layers.1.self_attn.q_proj.weight', 'F32', [DIMS.hidden, DIMS.hidden], 3),
    tensor('model.norm.weight', 'BF16', [DIMS.hidden], 4),
  ];
}

/** Writes a fused model `<root>/<name>/{config.json,model.safetensors}` plus a tokenizer config. */
export function writeFusedDir(root: string, name: string, options: { config?: Record<string, unknown> } = {}): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeJson(join(dir, 'config.json'), { ...FUSED_CONFIG, ...options.config });
  writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(fusedTensors(), { metadata: { format: 'pt' }, pad: true }));
  writeJson(join(dir, 'tokenizer_config.json'), { model_max_length: 2048, added_tokens_decoder: { '32000': { content: '<|placeholder1|>' } } });
  return dir;
}

/**
 * Writes a sharded fused model: one tensor group per shard `model-0000i-of-0000N.safetensors`
 * and `model.safetensors.index.json`. Returns the dir and the weight map written.
 */
export function writeShardedDir(root: string, name: string, shards = 2): { dir: string; weightMap: Record<string, string> } {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeJson(join(dir, 'config.json'), FUSED_CONFIG);
  const all = fusedTensors();
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part = all.filter((_, i) => i % shards === s);
    for (const t of part) {
      weightMap[t.name] = file;
      totalSize += t.data.byteLength;
    }
    writeFileSync(join(dir, file), encodeSafetensors(part, { metadata: { format: 'mlx' } }));
  }
  writeJson(join(dir, 'model.safetensors.index.json'), { metadata: { total_size: totalSize }, weight_map: weightMap });
  return { dir, weightMap };
}

/**
 * Renames the shards of a {@link writeShardedDir} model to `<prefix><i>.safetensors` and its
 * index with them: shards a converter named its own way, loaded by transformers through the
 * index. Returns the new shard names, sorted.
 */
export function renameShards(dir: string, weightMap: Record<string, string>, prefix = 'weights-'): string[] {
  const renamed = new Map([...new Set(Object.values(weightMap))].sort().map((file, i) => [file, `${prefix}${i + 1}.safetensors`]));
  for (const [from, to] of renamed) renameSync(join(dir, from), join(dir, to));
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
  for (const tensor of Object.keys(index.weight_map)) index.weight_map[tensor] = renamed.get(index.weight_map[tensor]!)!;
  writeJson(join(dir, 'model.safetensors.index.json'), index);
  return [...renamed.values()].sort();
}
