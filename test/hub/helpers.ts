/**
 * Helpers of the hub tests: temp dirs, tiny safetensors files and model folders built from real
 * bytes, the Python cross-check gate, sha256.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, it } from 'vitest';
import { venvDir } from '../support/python-env.js';

export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

const tempDirs: string[] = [];

/** A temp dir removed after the current test. */
export async function tempDir(prefix = 'au-hub-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

afterEach(async () => {
  await Promise.all(tempDirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

export async function writeFiles(root: string, files: Record<string, string | Uint8Array>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

/** Deterministic pseudo-random bytes (so failures reproduce). */
export function bytes(length: number, seed = 1): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export interface TensorFixture {
  dtype: 'F32' | 'F16' | 'BF16';
  shape: number[];
  /** Raw little-endian bytes; generated when omitted. */
  data?: Uint8Array;
}

/** A safetensors file from scratch: 8-byte LE header length, JSON header (space-padded to 8), data. */
export function safetensorsBytes(tensors: Record<string, TensorFixture>, metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const chunks: Buffer[] = [];
  let offset = 0;
  let seed = 7;
  for (const [name, t] of Object.entries(tensors)) {
    const elementSize = t.dtype === 'F32' ? 4 : 2;
    const length = t.shape.reduce((a, b) => a * b, 1) * elementSize;
    const data = t.data ? Buffer.from(t.data) : smallFloats(t.dtype, length / elementSize, seed++);
    if (data.length !== length) throw new Error(`tensor ${name}: ${data.length} bytes for shape ${t.shape.join('x')} ${t.dtype}`);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + length] };
    chunks.push(data);
    offset += length;
  }
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += ' ';
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([prefix, Buffer.from(json), ...chunks]);
}

/** Small finite floats (|x| < 1), so converters and Python loaders see sane values. */
function smallFloats(dtype: TensorFixture['dtype'], count: number, seed: number): Buffer {
  const raw = bytes(count * 4, seed);
  const f32 = new Float32Array(count);
  for (let i = 0; i < count; i++) f32[i] = (raw.readUInt32LE(i * 4) / 0xffffffff - 0.5) * 0.2;
  if (dtype === 'F32') return Buffer.from(f32.buffer);
  const out = Buffer.alloc(count * 2);
  const view = new DataView(f32.buffer);
  for (let i = 0; i < count; i++) {
    const bits = view.getUint32(i * 4, true);
    if (dtype === 'BF16') out.writeUInt16LE(bits >>> 16, i * 2);
    else out.writeUInt16LE(f32ToF16(f32[i]!), i * 2);
  }
  return out;
}

function f32ToF16(value: number): number {
  const f = new Float32Array([value]);
  const x = new Uint32Array(f.buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  const mant = x & 0x7fffff;
  if (exp <= 0) return sign; // flush tiny values to zero: fine for fixtures
  if (exp >= 31) return sign | 0x7c00;
  return sign | (exp << 10) | (mant >>> 13);
}

// ───────────────────────────── model folders ─────────────────────────────

const LAYERS = 2;
const HIDDEN = 16;
const RANK = 4;

/** An MLX LoRA adapter folder as `mlx_lm.lora` writes it (`adapters/` with safetensors + config). */
export async function writeMlxLoraModel(root: string, options: { baseModel?: string; padBytes?: number } = {}): Promise<string> {
  const tensors: Record<string, TensorFixture> = {};
  for (let layer = 0; layer < LAYERS; layer++) {
    for (const proj of ['q_proj', 'v_proj']) {
      tensors[`model.layers.${layer}.self_attn.${proj}.lora_a`] = { dtype: 'F32', shape: [HIDDEN, RANK] };
      tensors[`model.layers.${layer}.self_attn.${proj}.lora_b`] = { dtype: 'F32', shape: [RANK, HIDDEN] };
    }
  }
  if (options.padBytes) tensors['model.layers.0.self_attn.k_proj.lora_a'] = { dtype: 'F32', shape: [Math.ceil(options.padBytes / 4 / RANK), RANK] };
  if (options.padBytes) tensors['model.layers.0.self_attn.k_proj.lora_b'] = { dtype: 'F32', shape: [RANK, Math.ceil(options.padBytes / 4 / RANK)] };
  const config = {
    model: options.baseModel ?? 'mlx-community/Tiny-Llama-4bit',
    fine_tune_type: 'lora',
    num_layers: LAYERS,
    lora_parameters: { rank: RANK, scale: 20.0, dropout: 0.0, keys: ['self_attn.q_proj', 'self_attn.v_proj'] },
    iters: 10,
    learning_rate: 1e-5,
  };
  await writeFiles(root, {
    'adapters/adapters.safetensors': safetensorsBytes(tensors),
    'adapters/adapter_config.json': JSON.stringify(config, null, 2),
    'training_info.json': JSON.stringify({ iterations: 10, final_loss: 1.23 }),
  });
  return root;
}

/** A fused model with one `model.safetensors` and a `config.json`. */
export async function writeFusedModel(root: string): Promise<string> {
  const tensors: Record<string, TensorFixture> = {
    'model.embed_tokens.weight': { dtype: 'F16', shape: [64, HIDDEN] },
    'model.layers.0.self_attn.q_proj.weight': { dtype: 'F16', shape: [HIDDEN, HIDDEN] },
    'model.norm.weight': { dtype: 'F16', shape: [HIDDEN] },
    'lm_head.weight': { dtype: 'F16', shape: [64, HIDDEN] },
  };
  await writeFiles(root, {
    'model.safetensors': safetensorsBytes(tensors, { format: 'pt' }),
    'config.json': JSON.stringify(fusedConfig(), null, 2),
    'tokenizer_config.json': JSON.stringify({ model_max_length: 128 }),
  });
  return root;
}

/** A fused model in two shards with `model.safetensors.index.json`. */
export async function writeShardedModel(root: string): Promise<string> {
  const shard1: Record<string, TensorFixture> = {
    'model.embed_tokens.weight': { dtype: 'BF16', shape: [64, HIDDEN] },
    'model.layers.0.self_attn.q_proj.weight': { dtype: 'BF16', shape: [HIDDEN, HIDDEN] },
  };
  const shard2: Record<string, TensorFixture> = {
    'model.norm.weight': { dtype: 'BF16', shape: [HIDDEN] },
    'lm_head.weight': { dtype: 'BF16', shape: [64, HIDDEN] },
  };
  const a = safetensorsBytes(shard1, { format: 'pt' });
  const b = safetensorsBytes(shard2, { format: 'pt' });
  const weightMap: Record<string, string> = {};
  for (const name of Object.keys(shard1)) weightMap[name] = 'model-00001-of-00002.safetensors';
  for (const name of Object.keys(shard2)) weightMap[name] = 'model-00002-of-00002.safetensors';
  await writeFiles(root, {
    'model-00001-of-00002.safetensors': a,
    'model-00002-of-00002.safetensors': b,
    'model.safetensors.index.json': JSON.stringify({ metadata: { total_size: a.length + b.length - 16 }, weight_map: weightMap }, null, 2),
    'config.json': JSON.stringify(fusedConfig(), null, 2),
  });
  return root;
}

function fusedConfig() {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: HIDDEN,
    intermediate_size: HIDDEN * 2,
    num_attention_heads: 2,
    num_hidden_layers: 1,
    num_key_value_heads: 2,
    vocab_size: 64,
    rms_norm_eps: 1e-5,
    torch_dtype: 'float16',
  };
}

// ───────────────────────────── Python cross-checks ─────────────────────────────

const isCi = process.env.CI === 'true' || process.env.CI === '1';

/** True when the test venv (huggingface_hub, safetensors) is installed. */
export function pythonVenvReady(): boolean {
  return existsSync(join(venvDir(), '.complete'));
}

/**
 * A describe block that needs the Python venv only (not the MLflow servers): skipped loudly
 * without it, failing under CI.
 */
export function describeWithPython(name: string, fn: () => void): void {
  if (pythonVenvReady()) {
    describe(name, fn);
    return;
  }
  if (isCi) {
    describe(name, () => {
      it('needs the Python test venv', () => {
        throw new Error(`CI=true: Python cross-checks must run, but the venv ${venvDir()} is not installed.`);
      });
    });
    return;
  }
  process.stderr.write(`\n!!! SKIPPED "${name}": the Python test venv is not installed (${venvDir()})\n`);
  describe.skip(name, fn);
}
