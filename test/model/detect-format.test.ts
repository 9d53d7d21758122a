import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidModelStructureError, ModelDirectoryError } from '../../src/core/errors.js';
import { detectModelFormat, inspectModelDir } from '../../src/model/detect-format.js';
import { renameShards, tempDir, writeFusedDir, writeMlxLoraDir, writePeftDir, writeShardedDir } from './fixtures.js';

describe('detectModelFormat', () => {
  it('recognises an MLX adapter in adapters/', async () => {
    const dir = writeMlxLoraDir(tempDir(), 'mlx_20240101_000000');
    expect(await detectModelFormat(dir)).toBe('lora');
    const info = await inspectModelDir(dir);
    expect(info).toMatchObject({
      flavour: 'mlx',
      layout: 'mlx-adapters',
      configFile: 'adapters/adapter_config.json',
      weightFiles: ['adapters/adapters.safetensors'],
      adapterDir: join(dir, 'adapters'),
      alsoMatches: [],
    });
  });

  it('recognises an MLX adapter path given directly', async () => {
    const dir = writeMlxLoraDir(tempDir(), 'adapters', { topLevel: true });
    expect(await inspectModelDir(dir)).toMatchObject({ format: 'lora', flavour: 'mlx', layout: 'mlx-adapters-top', adapterDir: dir });
  });

  it('recognises a PEFT adapter', async () => {
    const dir = writePeftDir(tempDir(), 'peft');
    expect(await inspectModelDir(dir)).toMatchObject({ format: 'lora', flavour: 'peft', layout: 'peft-adapter', weightFiles: ['adapter_model.safetensors'] });
  });

  it('recognises fused models, single-file and sharded', async () => {
    const root = tempDir();
    const single = writeFusedDir(root, 'fused');
    expect(await inspectModelDir(single)).toMatchObject({ format: 'fused', layout: 'fused-single', weightFiles: ['model.safetensors'] });
    const { dir } = writeShardedDir(root, 'sharded', 2);
    expect(await inspectModelDir(dir)).toMatchObject({
      format: 'fused',
      layout: 'fused-sharded',
      indexFile: 'model.safetensors.index.json',
      weightFiles: ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'],
    });
  });

  it('recognises shards named otherwise when the index names them (transformers loads them by the index)', async () => {
    const { dir, weightMap } = writeShardedDir(tempDir(), 'sharded', 2);
    const shards = renameShards(dir, weightMap);
    expect(shards).toEqual(['weights-1.safetensors', 'weights-2.safetensors']);
    expect(await inspectModelDir(dir)).toMatchObject({ format: 'fused', layout: 'fused-sharded', indexFile: 'model.safetensors.index.json', weightFiles: shards });
    // A name the index does not give is no shard; a named shard that is gone is reported missing.
    rmSync(join(dir, 'weights-1.safetensors'));
    rmSync(join(dir, 'weights-2.safetensors'));
    writeFileSync(join(dir, 'stray.safetensors'), 'x');
    const error = (await detectModelFormat(dir).catch((e: unknown) => e)) as InvalidModelStructureError;
    expect(error.missing.fused).toEqual(shards);
  });

  it('prefers fused weights over adapters lying in the same directory, and says so', async () => {
    const root = tempDir();
    const dir = writeFusedDir(root, 'both');
    writeMlxLoraDir(root, 'both');
    const info = await inspectModelDir(dir);
    expect(info.format).toBe('fused');
    expect(info.alsoMatches).toEqual(['mlx-adapters']);
  });

  it('lists both expected layouts and exactly the missing files', async () => {
    const root = tempDir();
    const dir = join(root, 'half');
    mkdirSync(join(dir, 'adapters'), { recursive: true });
    writeFileSync(join(dir, 'adapters', 'adapters.safetensors'), 'x');
    writeFileSync(join(dir, 'config.json'), '{}');
    writeFileSync(join(dir, 'notes.txt'), 'hi');
    const error = await detectModelFormat(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidModelStructureError);
    const e = error as InvalidModelStructureError;
    expect(e.missing).toEqual({
      'lora-mlx': ['adapters/adapter_config.json'],
      'lora-peft': ['adapter_model.safetensors', 'adapter_config.json'],
      fused: ['model.safetensors (or model.safetensors.index.json with its model-0000x-of-0000y.safetensors shards)'],
    });
    expect(e.message).toContain('LoRA adapter as MLX writes it');
    expect(e.message).toContain('LoRA adapter in PEFT form');
    expect(e.message).toContain('fused model: config.json and model.safetensors');
    expect(e.message).toContain('missing: adapters/adapter_config.json');
    expect(e.message).toContain('Found: adapters, config.json, notes.txt.');
  });

  it('names the shards an index lists when none of them exist', async () => {
    const { dir } = writeShardedDir(tempDir(), 'sharded', 2);
    rmSync(join(dir, 'model-00001-of-00002.safetensors'));
    rmSync(join(dir, 'model-00002-of-00002.safetensors'));
    const error = (await detectModelFormat(dir).catch((e: unknown) => e)) as InvalidModelStructureError;
    expect(error.missing.fused).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
  });

  it('hints at old npz adapters and at a missing directory', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'adapters.npz'), 'x');
    await expect(detectModelFormat(dir)).rejects.toThrow(/adapters\.npz comes from mlx-lm before April 2024/);
    await expect(detectModelFormat(join(dir, 'missing'))).rejects.toBeInstanceOf(ModelDirectoryError);
  });

  it('says that a GGUF file alone is no layout, and where the model to publish is', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'ggml-model-f16.gguf'), Buffer.from('GGUF\x03\x00\x00\x00', 'latin1'));
    writeFileSync(join(dir, 'README.md'), '# llama.cpp export');
    const error = (await detectModelFormat(dir).catch((e: unknown) => e)) as InvalidModelStructureError;
    expect(error).toBeInstanceOf(InvalidModelStructureError);
    expect(error.hint).toMatch(/^GGUF files \(llama\.cpp exports\) are not a layout this library publishes on their own: point modelDir at the safetensors model/);
    // Next to the fused safetensors model (mlx_lm.fuse --export-gguf), it is just another file of it.
    writeFusedDir(dir, '.');
    expect(await inspectModelDir(dir)).toMatchObject({ format: 'fused', layout: 'fused-single' });
  });
});
