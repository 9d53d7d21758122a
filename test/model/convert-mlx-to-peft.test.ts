import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { tempFileName, tempFileOwner } from '../../src/core/atomic-write.js';
import { AbortedError, ConversionError, InvalidArgumentError, InvalidModelStructureError } from '../../src/core/errors.js';
import { checkConversionDestination, convertMlxLoraToPeft } from '../../src/model/convert-mlx-to-peft.js';
import { validateModelArtifacts } from '../../src/model/validate.js';
import { assertBuilt, DIST_INDEX, FREEZE, startChild } from '../support/child-node.js';
import { fsHooks, resetFsHooks } from '../support/fs-hooks.js';
import { runPython } from '../support/python.js';
import { mlxLoraTensors, tempDir, tensor, writeFusedDir, writeMlxLoraDir, writePeftDir, type FixtureDtype } from './fixtures.js';

// Counts directory reads (fsHooks.afterReaddir); every other call passes through.
vi.mock('node:fs/promises', async (importOriginal) => (await import('../support/fs-hooks.js')).hookedFs(await importOriginal()));
afterEach(resetFsHooks);

/**
 * Loads input and output with the official `safetensors` package and compares: names, shapes,
 * bytes of every PEFT tensor against the transposed MLX tensor, and, for float32, that PEFT's
 * delta (lora_alpha / r) * B @ A equals MLX's scale * b.T @ a.T. BF16 has no numpy dtype, so
 * raw bytes come from `safetensors.deserialize`.
 */
const CROSS_CHECK = `
import json, sys
import numpy as np
from safetensors import deserialize
mlx_path, peft_path, cfg_path, scale = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
np_dtypes = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}
def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    return {name: np.frombuffer(bytes(t["data"]), dtype=np_dtypes[t["dtype"]]).reshape(t["shape"]) for name, t in deserialize(raw)}
mlx, peft = load(mlx_path), load(peft_path)
cfg = json.load(open(cfg_path))
out = {"peft_keys": sorted(peft), "mismatches": [], "delta_max_err": 0.0}
for name, a in mlx.items():
    module, leaf = name.rsplit(".", 1)
    key = "base_model.model." + module + (".lora_A.weight" if leaf == "lora_a" else ".lora_B.weight")
    got = peft.get(key)
    if got is None or got.shape != a.T.shape or got.view(np.uint8).tobytes() != np.ascontiguousarray(a.T).view(np.uint8).tobytes():
        out["mismatches"].append(name)
for name in mlx:
    module, leaf = name.rsplit(".", 1)
    if leaf != "lora_a" or mlx[name].dtype != np.float32:
        continue
    a, b = mlx[name].astype(np.float64), mlx[module + ".lora_b"].astype(np.float64)
    A = peft["base_model.model." + module + ".lora_A.weight"].astype(np.float64)
    B = peft["base_model.model." + module + ".lora_B.weight"].astype(np.float64)
    err = np.abs((cfg["lora_alpha"] / cfg["r"]) * (B @ A) - scale * (b.T @ a.T)).max()
    out["delta_max_err"] = max(out["delta_max_err"], float(err))
# The official numpy loader must read the whole file too (numpy has no bfloat16, so not for BF16).
try:
    from safetensors.numpy import load_file
    load_file(peft_path)
    out["numpy_load"] = "ok"
except Exception as e:
    out["numpy_load"] = type(e).__name__
from safetensors import safe_open
with safe_open(peft_path, framework="numpy") as f:
    out["metadata"] = f.metadata()
print(json.dumps(out))
`;

async function crossCheck(mlxFile: string, outDir: string, scale: number) {
  const stdout = await runPython(CROSS_CHECK, {
    args: [mlxFile, join(outDir, 'adapter_model.safetensors'), join(outDir, 'adapter_config.json'), String(scale)],
  });
  return JSON.parse(stdout.trim().split('\n').pop()!) as { peft_keys: string[]; mismatches: string[]; delta_max_err: number; numpy_load: string; metadata: unknown };
}

describe('convertMlxLoraToPeft', () => {
  it.each(['F32', 'F16', 'BF16'] as FixtureDtype[])('converts a %s adapter: PEFT names, transposed values, alpha = scale * r (checked with Python safetensors)', async (dtype) => {
    const root = tempDir();
    const dir = writeMlxLoraDir(root, 'llama-lora_20240501_093000', { dtype, rank: 2, scale: 20, layers: [2, 3], modules: ['self_attn.q_proj', 'self_attn.v_proj', 'mlp.down_proj'] });
    const result = await convertMlxLoraToPeft(dir);

    expect(result.outDir).toBe(join(root, 'llama-lora_20240501_093000_peft_converted'));
    expect(result.tensorsConverted).toBe(12);
    expect(result.modules).toHaveLength(6);
    expect(result.files.map((f) => f.path)).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'mlx_adapter_config.json']);
    const config = JSON.parse(readFileSync(join(result.outDir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      base_model_name_or_path: 'example-org/tiny-llama',
      r: 2,
      lora_alpha: 40,
      lora_dropout: 0,
      use_rslora: false,
      use_dora: false,
      target_modules: ['mlp.down_proj', 'self_attn.q_proj', 'self_attn.v_proj'],
      layers_to_transform: [2, 3],
    });
    expect(result.config).toEqual(config);
    // The MLX config is kept for provenance, byte for byte.
    expect(readFileSync(join(result.outDir, 'mlx_adapter_config.json'), 'utf8')).toBe(readFileSync(join(dir, 'adapters', 'adapter_config.json'), 'utf8'));

    const check = await crossCheck(join(dir, 'adapters', 'adapters.safetensors'), result.outDir, 20);
    expect(check.mismatches).toEqual([]);
    expect(check.peft_keys).toHaveLength(12);
    expect(check.peft_keys).toContain('base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight');
    expect(check.peft_keys).toContain('base_model.model.model.layers.3.mlp.down_proj.lora_B.weight');
    expect(check.metadata).toEqual({ format: 'pt' });
    if (dtype !== 'BF16') expect(check.numpy_load).toBe('ok');
    expect(check.delta_max_err).toBeLessThan(1e-9);

    // The output is a valid PEFT adapter by our own validator too.
    const report = await validateModelArtifacts(result.outDir, { minWeightBytes: 64 });
    expect({ errors: report.errors, warnings: report.warnings, flavour: report.flavour }).toEqual({ errors: [], warnings: [], flavour: 'peft' });
  });

  it('lists full module paths when blocks are adapted unevenly', async () => {
    const root = tempDir();
    const tensors = [...mlxLoraTensors({ layers: [0], modules: ['self_attn.q_proj'] }), ...mlxLoraTensors({ layers: [1], modules: ['self_attn.v_proj'] })];
    const dir = writeMlxLoraDir(root, 'uneven', { tensors });
    const result = await convertMlxLoraToPeft(dir, { baseModel: 'example-org/original', outDir: join(root, 'out') });
    expect(result.config.target_modules).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.1.self_attn.v_proj']);
    expect(result.config.layers_to_transform).toBeNull();
    expect(result.config.base_model_name_or_path).toBe('example-org/original');
    expect(result.warnings).toEqual([]);
    expect((await validateModelArtifacts(result.outDir, { minWeightBytes: 64 })).errors).toEqual([]);
  });

  it('converts an adapter path given directly (files at the top)', async () => {
    const root = tempDir();
    const dir = writeMlxLoraDir(root, 'adapters', { topLevel: true });
    const result = await convertMlxLoraToPeft(dir);
    expect(result.adapterDir).toBe(dir);
    expect(existsSync(join(root, 'adapters_peft_converted', 'adapter_model.safetensors'))).toBe(true);
  });

  it('warns about an MLX-quantized base model and a missing one', async () => {
    const root = tempDir();
    const quantized = writeMlxLoraDir(root, 'q', { config: { model: 'mlx-community/Llama-3.2-1B-Instruct-4bit' } });
    expect((await convertMlxLoraToPeft(quantized)).warnings).toEqual([expect.stringMatching(/looks like an MLX-quantized repo/)]);
    const unknown = writeMlxLoraDir(root, 'u', { config: { model: undefined } });
    const result = await convertMlxLoraToPeft(unknown);
    expect(result.config.base_model_name_or_path).toBeNull();
    expect(result.warnings).toEqual([expect.stringMatching(/base model unknown/)]);
  });

  it('says what a base model that is no repo id is: a local path, or (a typo) neither a repo id nor a folder here', async () => {
    const root = tempDir();
    const typo = writeMlxLoraDir(root, 'typo', { config: { model: 'Llama 3' } });
    const [warning, ...others] = (await convertMlxLoraToPeft(typo)).warnings;
    expect(others).toEqual([]);
    expect(warning).toContain('base model "Llama 3" is neither a Hugging Face repo id ("namespace/name") nor a folder on this machine');
    expect(warning).toContain('pass baseModel with the Hugging Face repo id of the base model, such as "meta-llama/Llama-3.2-1B"');
    expect(warning).not.toContain('local path');
    const path = writeMlxLoraDir(root, 'path', { config: { model: '/Users/alice/models/Llama-3.2-1B' } });
    expect((await convertMlxLoraToPeft(path)).warnings).toEqual([expect.stringContaining('base model "/Users/alice/models/Llama-3.2-1B" is a local path')]);
    // A folder of that name here is one, whatever it looks like.
    mkdirSync(join(typo, 'Llama 3'));
    expect((await convertMlxLoraToPeft(typo, { overwrite: true })).warnings).toEqual([expect.stringContaining('base model "Llama 3" is a local path')]);
  });

  it('refuses a fused model before writing anything', async () => {
    const root = tempDir();
    const dir = writeFusedDir(root, 'fused');
    writeMlxLoraDir(root, 'fused'); // adapters lying next to full weights still do not make it an adapter
    const error = await convertMlxLoraToPeft(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConversionError);
    expect((error as ConversionError).message).toMatch(/holds a fused model .*never converted/);
    expect(readdirSync(root)).toEqual(['fused']);
  });

  it('refuses PEFT adapters, non-model directories and adapters without a PEFT equivalent', async () => {
    const root = tempDir();
    await expect(convertMlxLoraToPeft(writePeftDir(root, 'peft'))).rejects.toThrow(/already holds a PEFT adapter/);
    const empty = join(root, 'empty');
    mkdirSync(empty);
    await expect(convertMlxLoraToPeft(empty)).rejects.toBeInstanceOf(InvalidModelStructureError);
    const dora = writeMlxLoraDir(root, 'dora', {
      config: { fine_tune_type: 'dora' },
      tensors: [...mlxLoraTensors({ layers: [0], modules: ['self_attn.q_proj'] }), tensor('model.layers.0.self_attn.q_proj.m', 'F32', [8])],
    });
    const error = (await convertMlxLoraToPeft(dora).catch((e: unknown) => e)) as ConversionError;
    expect(error).toBeInstanceOf(ConversionError);
    expect(error.message).toMatch(/fine_tune_type is "dora"/);
    expect(error.message).toMatch(/DoRA magnitude vectors/);
    const wrongRank = writeMlxLoraDir(root, 'rank', { rank: 2, config: { lora_parameters: { rank: 4, scale: 20 } } });
    await expect(convertMlxLoraToPeft(wrongRank)).rejects.toThrow(/has rank 2 but lora_parameters\.rank is 4/);
    const embedding = writeMlxLoraDir(root, 'embed', { tensors: [tensor('model.embed_tokens.lora_a', 'F32', [16, 2]), tensor('model.embed_tokens.lora_b', 'F32', [2, 8])] });
    await expect(convertMlxLoraToPeft(embedding)).rejects.toThrow(/is an embedding/);
    expect(readdirSync(root).sort()).toEqual(['dora', 'embed', 'empty', 'peft', 'rank']);
  });

  it('refuses an adapter whose tensors adapt more blocks than num_layers, which mlx_lm would ignore on loading', async () => {
    // mlx_lm's load_adapters wraps only the last num_layers blocks and loads the file with
    // load_weights(strict=False), which drops the tensors of every other block without a word:
    // converted, they changed the PEFT model where the MLX one never was.
    const root = tempDir();
    const extra = writeMlxLoraDir(root, 'extra', { layers: [0, 1, 2, 3], config: { num_layers: 2 } });
    const error = (await convertMlxLoraToPeft(extra).catch((e: unknown) => e)) as ConversionError;
    expect(error).toBeInstanceOf(ConversionError);
    expect(error.message).toContain('adapters/adapters.safetensors: LoRA tensors in 4 blocks (model.layers.0 to model.layers.3) but num_layers is 2');
    expect(error.message).toContain('mlx_lm adapts only the last 2 blocks and ignores the tensors of the others when it loads the adapter');
    const report = await validateModelArtifacts(extra);
    expect(report.checks.adapterTensorsValid).toBe(false);
    expect(report.errors.join('\n')).toContain('LoRA tensors in 4 blocks (model.layers.0 to model.layers.3) but num_layers is 2');
    // As mlx_lm reads them: -1 (and 0, model.layers[-0:]) adapt every block; the old name lora_layers counts too.
    for (const config of [{ num_layers: -1 }, { num_layers: 0 }, { num_layers: 4 }, { num_layers: undefined, lora_layers: 4 }]) {
      const dir = writeMlxLoraDir(tempDir(), 'ok', { layers: [0, 1, 2, 3], config });
      await expect(convertMlxLoraToPeft(dir)).resolves.toMatchObject({ tensorsConverted: 16 });
    }
    const legacy = writeMlxLoraDir(tempDir(), 'legacy', { layers: [0, 1, 2, 3], config: { num_layers: undefined, lora_layers: 3 } });
    await expect(convertMlxLoraToPeft(legacy)).rejects.toThrow(/LoRA tensors in 4 blocks .* but num_layers is 3/);
    expect(readdirSync(root)).toEqual(['extra']);
  });

  it('never clobbers: an existing outDir needs overwrite, which replaces it whole', async () => {
    const root = tempDir();
    const dir = writeMlxLoraDir(root, 'm');
    const outDir = join(root, 'out');
    mkdirSync(outDir);
    writeFileSync(join(outDir, 'stale.txt'), 'old');
    await expect(convertMlxLoraToPeft(dir, { outDir })).rejects.toThrow(/already exists/);
    await expect(convertMlxLoraToPeft(dir, { outDir })).rejects.toBeInstanceOf(InvalidArgumentError); // the call's fault, not the model's
    expect(readdirSync(outDir)).toEqual(['stale.txt']);
    await convertMlxLoraToPeft(dir, { outDir, overwrite: true });
    expect(readdirSync(outDir).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'mlx_adapter_config.json']);
    expect(readdirSync(root).sort()).toEqual(['m', 'out']);
    await expect(convertMlxLoraToPeft(dir, { outDir: root, overwrite: true })).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('refuses an outDir inside the input (its own adapters/ too), however spelled, before writing anything', async () => {
    const root = tempDir();
    const dir = writeMlxLoraDir(root, 'm');
    symlinkSync(dir, join(root, 'alias'));
    const weights = readFileSync(join(dir, 'adapters', 'adapters.safetensors'));
    for (const outDir of [join(dir, 'adapters'), join(dir, 'peft'), join(root, 'alias', 'adapters'), join(dir, 'adapters', '..', 'adapters')]) {
      const error = await convertMlxLoraToPeft(dir, { outDir, overwrite: true }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error).toMatchObject({ argument: 'outDir', message: expect.stringContaining('inside the input directory') });
    }
    expect(readFileSync(join(dir, 'adapters', 'adapters.safetensors'))).toEqual(weights);
    expect(readdirSync(dir)).toEqual(['adapters']);
    expect(readdirSync(join(dir, 'adapters')).sort()).toEqual(['adapter_config.json', 'adapters.safetensors']);
    expect(readdirSync(root).sort()).toEqual(['alias', 'm']);
  });

  it('refuses a taskType PEFT does not know before writing anything, and writes one it knows', async () => {
    // PEFT >= 0.14 raises "Invalid task type" on loading such a config (peft config.py, PeftConfig.__post_init__).
    const root = tempDir();
    const dir = writeMlxLoraDir(root, 'm');
    for (const taskType of ['causal_lm', 'CAUSAL-LM', 'CUASAL_LM', '']) {
      const error = await convertMlxLoraToPeft(dir, { taskType }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error).toMatchObject({ argument: 'taskType', hint: expect.stringContaining('SEQ_2_SEQ_LM') });
    }
    expect(readdirSync(root)).toEqual(['m']);
    const result = await convertMlxLoraToPeft(dir, { taskType: 'SEQ_2_SEQ_LM' });
    expect(JSON.parse(readFileSync(join(result.outDir, 'adapter_config.json'), 'utf8'))).toMatchObject({ task_type: 'SEQ_2_SEQ_LM' });
  });

  it('creates the missing parents of outDir, and removes them again when the conversion does not finish', async () => {
    const root = tempDir();
    const dir = writeMlxLoraDir(root, 'm');
    const controller = new AbortController();
    controller.abort();
    await expect(convertMlxLoraToPeft(dir, { outDir: join(root, 'new', 'sub', 'peft'), signal: controller.signal })).rejects.toBeInstanceOf(AbortedError);
    expect(readdirSync(root)).toEqual(['m']);
    const result = await convertMlxLoraToPeft(dir, { outDir: join(root, 'new', 'sub', 'peft') });
    expect(result.outDir).toBe(join(root, 'new', 'sub', 'peft'));
    expect(readdirSync(result.outDir).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'mlx_adapter_config.json']);
    expect(readdirSync(join(root, 'new', 'sub'))).toEqual(['peft']);
  });

  it('stops on abort and leaves nothing behind', async () => {
    const root = tempDir();
    const dir = writeMlxLoraDir(root, 'm');
    const controller = new AbortController();
    controller.abort();
    await expect(convertMlxLoraToPeft(dir, { signal: controller.signal })).rejects.toBeInstanceOf(AbortedError);
    expect(readdirSync(root)).toEqual(['m']);
  });
});

const HOUR_AGO = new Date(Date.now() - 60 * 60_000);

describe('convertMlxLoraToPeft killed with SIGKILL', () => {
  beforeAll(() => assertBuilt());

  it("names its temp directory by its owner, and the next conversion to that outDir removes a killed one's (never a live one's, nor another outDir's)", async () => {
    const root = tempDir();
    const dir = writeMlxLoraDir(root, 'm');
    // A real process converts and is frozen between two tensors (the temp directory half
    // written), then killed: no finally runs. The conversion reads `aborted` before each tensor.
    const child = startChild(`
import { writeSync } from 'node:fs';
import { convertMlxLoraToPeft } from ${JSON.stringify(pathToFileURL(DIST_INDEX).href)};
let tensors = 0;
const signal = { get aborted() { if (++tensors === 2) { writeSync(1, 'converting\\n'); ${FREEZE} } return false; } };
await convertMlxLoraToPeft(process.env.DIR, { outDir: process.env.OUT, signal });
console.log('finished');
`,
      { env: { DIR: dir, OUT: join(root, 'out') } },
    );
    try {
      await child.waitFor('converting');
    } finally {
      await child.kill();
    }
    const left = readdirSync(root).filter((name) => name.startsWith('.out.tmp-'));
    expect(left, 'the killed conversion left its temp directory (the test killed it mid-conversion)').toHaveLength(1);
    expect(left[0]).toContain(`-${child.pid}-`);
    // A live owner's (this process) and another outDir's are not the next conversion's to remove.
    const live = tempFileName('.out.tmp-');
    mkdirSync(join(root, live));
    mkdirSync(join(root, '.other.tmp-1-abcdef-0123456789ab.tmp'));
    // Earlier versions named it without an owner: removed once an hour old, kept while fresh.
    mkdirSync(join(root, '.out.tmp-0123456789ab'));
    utimesSync(join(root, '.out.tmp-0123456789ab'), HOUR_AGO, HOUR_AGO);
    mkdirSync(join(root, '.out.tmp-ba9876543210'));

    const result = await convertMlxLoraToPeft(dir, { outDir: join(root, 'out') });
    expect(readdirSync(result.outDir).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'mlx_adapter_config.json']);
    expect(readdirSync(root).sort()).toEqual(['.other.tmp-1-abcdef-0123456789ab.tmp', '.out.tmp-ba9876543210', live, 'm', 'out'].sort());
  });

  it('gives the previous output back when killed between moving it aside and moving the new one in (overwrite)', async () => {
    const root = tempDir();
    const dir = writeMlxLoraDir(root, 'm');
    const outDir = join(root, 'out');
    mkdirSync(outDir);
    writeFileSync(join(outDir, 'previous.txt'), 'the earlier output');
    // A real conversion with overwrite, frozen right after its first rename (the old outDir
    // moved aside, the new one not yet in), then killed. The rename itself is the real one.
    const child = startChild(`
import { writeSync } from 'node:fs';
import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { basename } from 'node:path';
const realRename = fsp.rename;
fsp.rename = async (from, to) => {
  await realRename(from, to);
  if (basename(from) === 'out') { writeSync(1, 'moved aside\\n'); ${FREEZE} }
};
syncBuiltinESMExports();
const { convertMlxLoraToPeft } = await import(${JSON.stringify(pathToFileURL(DIST_INDEX).href)});
await convertMlxLoraToPeft(process.env.DIR, { outDir: process.env.OUT, overwrite: true });
console.log('finished');
`,
      { env: { DIR: dir, OUT: outDir } },
    );
    try {
      await child.waitFor('moved aside');
    } finally {
      await child.kill();
    }
    const aside = readdirSync(root).filter((name) => name.endsWith('.old'));
    expect(aside, 'the killed conversion left the previous output aside and no outDir').toEqual([expect.stringMatching(new RegExp(`^\\.out\\.tmp-${child.pid}-`))]);
    expect(existsSync(outDir)).toBe(false);

    // A dry run's check (read-only: nothing moves) already counts it as the existing outDir it is.
    await expect(checkConversionDestination(dir, { outDir })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(readdirSync(root).filter((name) => name.endsWith('.old'))).toEqual(aside);
    // The next conversion to that outDir puts it back before anything else: without overwrite it
    // is then an existing outDir like any other, and the user's files are there again.
    const refused = await convertMlxLoraToPeft(dir, { outDir }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InvalidArgumentError);
    expect(refused).toMatchObject({ argument: 'outDir', message: expect.stringContaining('already exists') });
    expect(readdirSync(outDir)).toEqual(['previous.txt']);
    expect(readFileSync(join(outDir, 'previous.txt'), 'utf8')).toBe('the earlier output');
    expect(readdirSync(root).sort()).toEqual(['m', 'out']); // the killed one's half-swapped temp directory is gone too
  });

  it("removes an old output put aside by a conversion killed after the new one was in place (never a live conversion's)", async () => {
    const root = tempDir();
    const dir = writeMlxLoraDir(root, 'm');
    const outDir = join(root, 'out');
    mkdirSync(outDir);
    writeFileSync(join(outDir, 'newer.txt'), 'the killed conversion finished this');
    // Names as replaceDir makes them: the temp directory's name (owner pid and host) + `.old`.
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
    const host = tempFileOwner(tempFileName('.out.tmp-'), '.out.tmp-')!.host;
    const dead = `.out.tmp-${deadPid}-${host}-0123456789ab.tmp.old`;
    const live = `${tempFileName('.out.tmp-')}.old`;
    for (const name of [dead, live]) {
      mkdirSync(join(root, name));
      writeFileSync(join(root, name, 'previous.txt'), 'older');
    }
    // The live conversion's old output last changed long before it was put aside (its mtime):
    // what counts is when it was put aside (its ctime, just now), not a predecessor's.
    utimesSync(join(root, live), HOUR_AGO, HOUR_AGO);
    // Earlier versions named it without an owner: taken once an hour old, kept while fresh.
    const legacyOld = '.out.tmp-0123456789ab.old';
    const legacyFresh = '.out.tmp-ba9876543210.old';
    for (const name of [legacyOld, legacyFresh]) mkdirSync(join(root, name));
    utimesSync(join(root, legacyOld), HOUR_AGO, HOUR_AGO);
    await convertMlxLoraToPeft(dir, { outDir, overwrite: true });
    expect(readdirSync(outDir).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'mlx_adapter_config.json']);
    expect(readdirSync(root).sort()).toEqual([legacyFresh, live, 'm', 'out'].sort());
  });

  it("reads outDir's parent once to restore a killed conversion's put-aside output and remove its temp directory", async () => {
    const root = tempDir();
    const dir = writeMlxLoraDir(root, 'm');
    const outDir = join(root, 'out');
    // What a conversion killed between replaceDir's two renames leaves: the previous output put
    // aside, no outDir, and its finished temp directory; names as replaceDir makes them.
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
    const host = tempFileOwner(tempFileName('.out.tmp-'), '.out.tmp-')!.host;
    const temp = `.out.tmp-${deadPid}-${host}-0123456789ab.tmp`;
    mkdirSync(join(root, temp));
    writeFileSync(join(root, temp, 'adapter_config.json'), '{}');
    mkdirSync(join(root, `${temp}.old`));
    writeFileSync(join(root, `${temp}.old`, 'previous.txt'), 'the earlier output');
    const reads: string[] = [];
    fsHooks.afterReaddir = (path) => {
      reads.push(path);
    };

    await expect(convertMlxLoraToPeft(dir, { outDir })).rejects.toMatchObject({ argument: 'outDir', message: expect.stringContaining('already exists') });

    // One listing served both sweeps (the restore's and the removal's): read twice before.
    expect(reads.filter((path) => path === root)).toHaveLength(1);
    expect(readFileSync(join(outDir, 'previous.txt'), 'utf8')).toBe('the earlier output');
    expect(readdirSync(root).sort()).toEqual(['m', 'out']);
  });

  it("gives back an earlier version's put-aside output once an hour old (its owner cannot be told)", async () => {
    const root = tempDir();
    const dir = writeMlxLoraDir(root, 'm');
    const outDir = join(root, 'out');
    const legacy = join(root, '.out.tmp-0123456789ab.old');
    mkdirSync(legacy);
    writeFileSync(join(legacy, 'previous.txt'), 'the earlier output');
    utimesSync(legacy, HOUR_AGO, HOUR_AGO);
    await expect(convertMlxLoraToPeft(dir, { outDir })).rejects.toMatchObject({ argument: 'outDir', message: expect.stringContaining('already exists') });
    expect(readFileSync(join(outDir, 'previous.txt'), 'utf8')).toBe('the earlier output');
    expect(readdirSync(root).sort()).toEqual(['m', 'out']);
  });
});
