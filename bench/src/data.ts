/**
 * Bench data: random bytes (so nothing compresses or deduplicates unfairly), written into a
 * temp dir that the bench removes afterwards. Writing is asynchronous (random bytes come from
 * libuv's thread pool), so it can run while the servers start; nothing is measured until it is
 * done.
 */
import { randomBytes, randomFill } from 'node:crypto';
import { mkdir, open, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

const fillRandom = (buffer: Buffer, offset: number, size: number) =>
  new Promise<void>((resolve, reject) => randomFill(buffer, offset, size, (error) => (error ? reject(error) : resolve())));

/** Writes `size` random bytes to `path`, 8 MiB at a time (memory stays flat). */
export async function writeRandomFile(path: string, size: number, prefix?: Buffer): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const fh = await open(path, 'w');
  try {
    let left = size;
    if (prefix) {
      await fh.write(prefix);
      left -= prefix.length;
    }
    const chunk = Buffer.allocUnsafe(8 * MiB);
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      await fillRandom(chunk, 0, n);
      await fh.write(chunk, 0, n);
      left -= n;
    }
  } finally {
    await fh.close();
  }
}

/** `count` files of `size` random bytes, spread over 10 sub-directories. */
export async function writeManySmall(dir: string, count: number, size: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const sub = join(dir, `shard-${String(i % 10).padStart(2, '0')}`);
    if (i < 10) await mkdir(sub, { recursive: true });
    await writeFile(join(sub, `sample-${String(i).padStart(5, '0')}.bin`), randomBytes(size));
  }
}

/**
 * A checkpoint-like directory of about `size` bytes: weights and optimizer state (random,
 * incompressible, as trained weights nearly are), a tokenizer and trainer state (text), and the
 * small files a trainer writes.
 */
export async function writeCheckpoint(dir: string, size: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const text = (n: number) => {
    const words = ['"token"', '"merges"', '"vocab"', ':', ',', '0.125', '[', ']', '"Ġthe"', '"ing"'];
    let out = '{';
    while (out.length < n) out += words[(out.length * 7) % words.length] + randomBytes(3).toString('hex');
    return out + '}';
  };
  await writeFile(join(dir, 'tokenizer.json'), text(Math.min(2 * MiB, Math.floor(size / 64))));
  await writeFile(join(dir, 'trainer_state.json'), text(64 * KiB));
  await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', hidden_size: 2048, num_hidden_layers: 24 }, null, 2));
  await writeFile(join(dir, 'training_args.bin'), randomBytes(6 * KiB));
  await writeFile(join(dir, 'scheduler.pt'), randomBytes(1 * KiB));
  await writeFile(join(dir, 'rng_state.pth'), randomBytes(14 * KiB));
  await writeRandomFile(join(dir, 'optimizer.pt'), Math.floor(size * 0.35));
  await writeRandomFile(join(dir, 'model.safetensors'), Math.floor(size * 0.63));
}

/**
 * A fused model for the Hub: `config.json`, one `model.safetensors` of about `weightBytes`
 * (a valid header over one U8 tensor of random bytes), and `smallFiles` small JSON files.
 */
export async function writeHubModel(dir: string, weightBytes: number, smallFiles: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', architectures: ['LlamaForCausalLM'], hidden_size: 2048 }, null, 2));
  // The exact total does not matter; the header must describe the data exactly.
  const dataBytes = weightBytes - 4096;
  let header = JSON.stringify({ __metadata__: { format: 'pt' }, 'model.weight': { dtype: 'U8', shape: [dataBytes], data_offsets: [0, dataBytes] } });
  while ((8 + header.length) % 8 !== 0) header += ' ';
  const prefix = Buffer.alloc(8 + header.length);
  prefix.writeBigUInt64LE(BigInt(header.length));
  prefix.write(header, 8, 'latin1');
  await writeRandomFile(join(dir, 'model.safetensors'), prefix.length + dataBytes, prefix);
  for (let i = 0; i < smallFiles; i++) {
    const sub = join(dir, 'extra', `group-${String(i % 10).padStart(2, '0')}`);
    if (i < 10) await mkdir(sub, { recursive: true });
    // Hex only: no word the placeholder scan could take for "mock", "TODO" or "placeholder".
    await writeFile(join(sub, `item-${String(i).padStart(4, '0')}.json`), JSON.stringify({ id: i, data: randomBytes(1024).toString('hex') }));
  }
}

/**
 * The data sets of a run, each made once under `root/<key>` and shared by the scenarios that
 * ask for the same key (the 1 GiB file of single-1g, single-1g-s3 and mpu-1g, say).
 */
export class BenchData {
  private readonly made = new Map<string, Promise<string>>();
  /** Milliseconds spent writing, summed over the data sets (they may overlap). */
  writeMs = 0;

  constructor(private readonly root: string) {}

  private get(key: string, make: (dir: string) => Promise<string>): Promise<string> {
    let made = this.made.get(key);
    if (!made) {
      const started = performance.now();
      made = make(join(this.root, key)).finally(() => (this.writeMs += performance.now() - started));
      made.catch(() => {});
      this.made.set(key, made);
    }
    return made;
  }

  /** One random file `<key>/<name>`; resolves to its path. */
  randomFile(key: string, name: string, size: number): Promise<string> {
    return this.get(key, async (dir) => (await writeRandomFile(join(dir, name), size), join(dir, name)));
  }

  /** A directory of `count` random files; resolves to its path. */
  manySmall(key: string, count: number, size: number): Promise<string> {
    return this.get(key, async (dir) => (await writeManySmall(dir, count, size), dir));
  }

  checkpoint(key: string, size: number): Promise<string> {
    return this.get(key, async (dir) => (await writeCheckpoint(dir, size), dir));
  }

  hubModel(key: string, weightBytes: number, smallFiles: number): Promise<string> {
    return this.get(key, async (dir) => (await writeHubModel(dir, weightBytes, smallFiles), dir));
  }

  /** Removes a data set once no scenario still to run needs it. */
  async remove(key: string): Promise<void> {
    const made = this.made.get(key);
    if (!made) return;
    this.made.delete(key);
    await made.catch(() => {});
    await rm(join(this.root, key), { recursive: true, force: true });
  }
}
