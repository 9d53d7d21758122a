/**
 * Bench data: random bytes (so nothing compresses or deduplicates unfairly), written once per
 * scenario into a temp dir that the bench removes afterwards.
 */
import { randomBytes, randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** Writes `size` random bytes to `path`, 8 MiB at a time (memory stays flat). */
export function writeRandomFile(path: string, size: number, prefix?: Buffer): void {
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(path, 'w');
  try {
    let left = size;
    if (prefix) {
      writeSync(fd, prefix);
      left -= prefix.length;
    }
    const chunk = Buffer.allocUnsafe(8 * MiB);
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      randomFillSync(chunk, 0, n);
      writeSync(fd, chunk, 0, n);
      left -= n;
    }
  } finally {
    closeSync(fd);
  }
}

/** `count` files of `size` random bytes, spread over 10 sub-directories. */
export function writeManySmall(dir: string, count: number, size: number): void {
  for (let i = 0; i < count; i++) {
    const sub = join(dir, `shard-${String(i % 10).padStart(2, '0')}`);
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `sample-${String(i).padStart(5, '0')}.bin`), randomBytes(size));
  }
}

/**
 * A checkpoint-like directory of about `size` bytes: weights and optimizer state (random,
 * incompressible, as trained weights nearly are), a tokenizer and trainer state (text), and the
 * small files a trainer writes.
 */
export function writeCheckpoint(dir: string, size: number): void {
  mkdirSync(dir, { recursive: true });
  const text = (n: number) => {
    const words = ['"token"', '"merges"', '"vocab"', ':', ',', '0.125', '[', ']', '"Ġthe"', '"ing"'];
    let out = '{';
    while (out.length < n) out += words[(out.length * 7) % words.length] + randomBytes(3).toString('hex');
    return out + '}';
  };
  writeFileSync(join(dir, 'tokenizer.json'), text(Math.min(2 * MiB, Math.floor(size / 64))));
  writeFileSync(join(dir, 'trainer_state.json'), text(64 * KiB));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', hidden_size: 2048, num_hidden_layers: 24 }, null, 2));
  writeFileSync(join(dir, 'training_args.bin'), randomBytes(6 * KiB));
  writeFileSync(join(dir, 'scheduler.pt'), randomBytes(1 * KiB));
  writeFileSync(join(dir, 'rng_state.pth'), randomBytes(14 * KiB));
  writeRandomFile(join(dir, 'optimizer.pt'), Math.floor(size * 0.35));
  writeRandomFile(join(dir, 'model.safetensors'), Math.floor(size * 0.63));
}

/**
 * A fused model for the Hub: `config.json`, one `model.safetensors` of about `weightBytes`
 * (a valid header over one U8 tensor of random bytes), and `smallFiles` small JSON files.
 */
export function writeHubModel(dir: string, weightBytes: number, smallFiles: number): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', architectures: ['LlamaForCausalLM'], hidden_size: 2048 }, null, 2));
  // The exact total does not matter; the header must describe the data exactly.
  const dataBytes = weightBytes - 4096;
  let header = JSON.stringify({ __metadata__: { format: 'pt' }, 'model.weight': { dtype: 'U8', shape: [dataBytes], data_offsets: [0, dataBytes] } });
  while ((8 + header.length) % 8 !== 0) header += ' ';
  const prefix = Buffer.alloc(8 + header.length);
  prefix.writeBigUInt64LE(BigInt(header.length));
  prefix.write(header, 8, 'latin1');
  writeRandomFile(join(dir, 'model.safetensors'), prefix.length + dataBytes, prefix);
  for (let i = 0; i < smallFiles; i++) {
    const sub = join(dir, 'extra', `group-${String(i % 10).padStart(2, '0')}`);
    mkdirSync(sub, { recursive: true });
    // Hex only: no word the placeholder scan could take for "mock", "TODO" or "placeholder".
    writeFileSync(join(sub, `item-${String(i).padStart(4, '0')}.json`), JSON.stringify({ id: i, data: randomBytes(1024).toString('hex') }));
  }
}
