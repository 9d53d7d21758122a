import { readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { validateModelArtifacts, type ModelValidationReport } from '../../src/model/validate.js';
import { DIMS, encodeRaw, encodeSafetensors, renameShards, tempDir, tensor, writeFusedDir, writeMlxLoraDir, writePeftDir, writeShardedDir } from './fixtures.js';

/** Fixtures are KBs: shrink the size threshold so only what a test is about is reported. */
const SMALL = { minWeightBytes: 64 };

const failedChecks = (report: ModelValidationReport) => Object.entries(report.checks).filter(([, ok]) => !ok).map(([name]) => name);

describe('validateModelArtifacts: valid models', () => {
  it.each([
    ['MLX LoRA', (root: string) => writeMlxLoraDir(root, 'mlx_20240101_000000'), 'lora', 'mlx'],
    ['PEFT LoRA', (root: string) => writePeftDir(root, 'peft'), 'lora', 'peft'],
    ['fused', (root: string) => writeFusedDir(root, 'fused'), 'fused', null],
    ['sharded', (root: string) => writeShardedDir(root, 'sharded', 3).dir, 'fused', null],
  ] as const)('%s passes every check', async (_name, build, format, flavour) => {
    const dir = build(tempDir());
    const report = await validateModelArtifacts(dir, SMALL);
    expect({ errors: report.errors, warnings: report.warnings, failed: failedChecks(report) }).toEqual({ errors: [], warnings: [], failed: [] });
    expect(report.overallValid).toBe(true);
    expect(report.format).toBe(format);
    expect(report.flavour).toBe(flavour);
    expect(Object.keys(report.checks).sort()).toEqual(
      ['adapterTensorsValid', 'configValid', 'directoryExists', 'hasModelFiles', 'noPlaceholderFiles', 'reasonableSize', 'safetensorsHeadersValid', 'shardIndexConsistent'].sort(),
    );
    expect(report.weightBytes).toBeGreaterThan(0);
    expect(report.totalBytes).toBe(report.files.reduce((s, f) => s + f.size, 0));
  });
});

describe('validateModelArtifacts: problems', () => {
  it('reports a missing directory without throwing', async () => {
    const report = await validateModelArtifacts(join(tempDir(), 'nope'));
    expect(report.overallValid).toBe(false);
    expect(report.format).toBeNull();
    expect(Object.values(report.checks).every((ok) => !ok)).toBe(true);
    expect(report.errors[0]).toMatch(/does not exist or is not a directory/);
  });

  it('reports a directory with no model in it, with the missing files', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'readme.md'), '# hello');
    const report = await validateModelArtifacts(dir);
    expect(report.overallValid).toBe(false);
    expect(report.checks.hasModelFiles).toBe(false);
    expect(report.errors[0]).toMatch(/neither a LoRA adapter nor a fused model[\s\S]*missing: adapter_model\.safetensors, adapter_config\.json/);
  });

  it('warns (by default) or errs on weights under the size threshold', async () => {
    const dir = writeFusedDir(tempDir(), 'tiny');
    const warned = await validateModelArtifacts(dir);
    expect(warned.overallValid).toBe(true);
    expect(warned.checks.reasonableSize).toBe(false);
    expect(warned.checkStatus.reasonableSize).toBe('warning');
    expect(warned.checkStatus.hasModelFiles).toBe('ok');
    expect(warned.warnings).toEqual([expect.stringMatching(/weights \(model\.safetensors\) total \d+ bytes, below the 1048576-byte minimum/)]);
    const refused = await validateModelArtifacts(dir, { minWeightBytes: 1 << 20, smallWeights: 'error' });
    expect(refused.overallValid).toBe(false);
    expect(refused.errors).toHaveLength(1);
    expect(refused.checkStatus.reasonableSize).toBe('error');
  });

  it('catches placeholder weights, LFS pointers and placeholder configs; only warns for docs', async () => {
    const root = tempDir();
    const dir = writeFusedDir(root, 'mock');
    writeFileSync(join(dir, 'model.safetensors'), 'mock model weights for testing\n');
    writeFileSync(join(dir, 'pytorch_model.bin'), 'version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n');
    writeFileSync(join(dir, 'generation_config.json'), '{"note": "placeholder"}');
    writeFileSync(join(dir, 'README.md'), '# Model\n\nTODO: add evaluation results.\n');
    writeFileSync(join(dir, 'tokenizer.json'), '{"test data": true}');
    const report = await validateModelArtifacts(dir, SMALL);
    expect(report.overallValid).toBe(false);
    expect(report.checks.noPlaceholderFiles).toBe(false);
    expect(report.errors).toEqual(
      expect.arrayContaining([
        'model.safetensors: text instead of binary weights (starts with "mock model weights for testing")',
        expect.stringMatching(/^pytorch_model\.bin: Git LFS pointer/),
        'generation_config.json: looks like a placeholder (contains "placeholder")',
        'tokenizer.json: looks like a placeholder (contains "test data")',
      ]),
    );
    expect(report.warnings).toContain('README.md: looks like a placeholder (contains "TODO")');
    // The placeholder weight file is reported once, not again as a corrupt safetensors header.
    expect(report.errors.filter((e) => e.startsWith('model.safetensors'))).toHaveLength(1);
    // Special tokens such as <|placeholder1|> in tokenizer_config.json are not placeholders.
    expect(report.errors.some((e) => e.startsWith('tokenizer_config.json'))).toBe(false);
  });

  it('does not take paths in JSON files for placeholders', async () => {
    const dir = writeMlxLoraDir(tempDir(), 'mlx', { config: { data: 'datasets/test_data', resume_adapter_file: '/tmp/mock/adapters.safetensors' } });
    const report = await validateModelArtifacts(dir, SMALL);
    expect(report.errors).toEqual([]);
    expect(report.checks.noPlaceholderFiles).toBe(true);
  });

  it('reports corrupt and truncated safetensors headers by file', async () => {
    const root = tempDir();
    const dir = writeMlxLoraDir(root, 'mlx');
    const file = join(dir, 'adapters', 'adapters.safetensors');
    const bytes = readFileSync(file);
    writeFileSync(file, bytes.subarray(0, bytes.length - 10));
    writeFileSync(join(dir, 'adapters', '0000100_adapters.safetensors'), encodeRaw('{"a":', new Uint8Array(4)));
    const report = await validateModelArtifacts(dir, SMALL);
    expect(report.checks.safetensorsHeadersValid).toBe(false);
    expect(report.errors).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^adapters\/adapters\.safetensors: tensor ".*" ends at data offset \d+, outside the data section/),
        expect.stringMatching(/^adapters\/0000100_adapters\.safetensors: header is not valid JSON/),
      ]),
    );
    expect(report.checks.adapterTensorsValid).toBe(false);
  });

  it('reports shards missing from the index, index entries without shards, and tensors in the wrong shard', async () => {
    const { dir, weightMap } = writeShardedDir(tempDir(), 'sharded', 3);
    const indexPath = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map: Record<string, string>; metadata: Record<string, unknown> };
    // Shard 3 is on disk but no longer listed; a tensor is moved to a shard that does not hold it.
    for (const [name, file] of Object.entries(weightMap)) if (file.startsWith('model-00003-')) delete index.weight_map[name];
    index.weight_map['model.embed_tokens.weight'] = 'model-00002-of-00003.safetensors';
    index.weight_map['lm_head.weight'] = 'model-00004-of-00003.safetensors';
    writeFileSync(indexPath, JSON.stringify(index));
    const report = await validateModelArtifacts(dir, SMALL);
    expect(report.checks.shardIndexConsistent).toBe(false);
    const problems = report.errors.join('\n');
    expect(problems).toContain('lists shard(s) that do not exist: model-00004-of-00003.safetensors');
    expect(problems).toContain('shard file(s) not listed in the index (mlx-lm would still load them): model-00003-of-00003.safetensors');
    expect(problems).toMatch(/maps tensors to shards that do not contain them: model\.embed_tokens\.weight \(model-00002-of-00003\.safetensors\)/);
    expect(problems).not.toContain('numbering has gaps');
  });

  it('checks shards named otherwise like any others when the index names them', async () => {
    const { dir, weightMap } = writeShardedDir(tempDir(), 'sharded', 2);
    renameShards(dir, weightMap);
    const report = await validateModelArtifacts(dir, SMALL);
    expect({ errors: report.errors, warnings: report.warnings, failed: failedChecks(report) }).toEqual({ errors: [], warnings: [], failed: [] });
    expect(report.layout).toBe('fused-sharded');
    expect(report.weightBytes).toBe(report.files.filter((f) => f.path.startsWith('weights-')).reduce((sum, f) => sum + f.size, 0));
    writeFileSync(join(dir, 'weights-2.safetensors'), encodeSafetensors([tensor('model.norm.weight', 'F32', [4])]));
    expect((await validateModelArtifacts(dir, SMALL)).errors.join('\n')).toMatch(/maps tensors to shards that do not contain them/);
  });

  it('only warns when metadata.total_size disagrees with the shards', async () => {
    const { dir } = writeShardedDir(tempDir(), 'sharded', 2);
    const indexPath = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexPath, 'utf8')) as { metadata: Record<string, unknown> };
    index.metadata.total_size = 1;
    writeFileSync(indexPath, JSON.stringify(index));
    const report = await validateModelArtifacts(dir, SMALL);
    expect(report.overallValid).toBe(true);
    expect(report.checks.shardIndexConsistent).toBe(false);
    expect(report.warnings).toEqual([expect.stringMatching(/metadata\.total_size is 1 but the shards hold \d+ bytes/)]);
  });

  it('reports a shard listed in the index but missing on disk', async () => {
    const { dir } = writeShardedDir(tempDir(), 'sharded', 2);
    rmSync(join(dir, 'model-00002-of-00002.safetensors'));
    const report = await validateModelArtifacts(dir, SMALL);
    expect(report.format).toBe('fused');
    expect(report.errors).toContain('model.safetensors.index.json: lists shard(s) that do not exist: model-00002-of-00002.safetensors');
  });

  it('checks required config fields and JSON syntax', async () => {
    const root = tempDir();
    const fused = writeFusedDir(root, 'fused', { config: { model_type: undefined, architectures: undefined, quantization: { bits: 4 } } });
    writeFileSync(join(fused, 'special_tokens_map.json'), '{"bos_token": ');
    const fusedReport = await validateModelArtifacts(fused, SMALL);
    expect(fusedReport.checks.configValid).toBe(false);
    expect(fusedReport.errors).toEqual(
      expect.arrayContaining([expect.stringMatching(/^config\.json: model_type is missing/), expect.stringMatching(/^special_tokens_map\.json: not valid JSON/)]),
    );
    expect(fusedReport.warnings.join('\n')).toMatch(/architectures is missing[\s\S]*MLX quantization/);

    const peft = writePeftDir(root, 'peft', { config: { peft_type: undefined, r: 0, base_model_name_or_path: undefined } });
    const peftReport = await validateModelArtifacts(peft, SMALL);
    expect(peftReport.errors).toEqual(
      expect.arrayContaining([
        'adapter_config.json: adapter_config.json has no peft_type; PEFT cannot load it',
        'adapter_config.json: r must be a positive integer, got 0',
      ]),
    );
    expect(peftReport.warnings.join('\n')).toMatch(/no base_model_name_or_path/);

    const mlx = writeMlxLoraDir(root, 'mlx', { config: { lora_parameters: { rank: 2 }, fine_tune_type: 'dora' } });
    const mlxReport = await validateModelArtifacts(mlx, SMALL);
    expect(mlxReport.errors).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^adapters\/adapter_config\.json: fine_tune_type is "dora"/),
        'adapters/adapter_config.json: lora_parameters.scale must be a positive number, got undefined',
      ]),
    );
  });

  it('checks adapter tensor names and ranks', async () => {
    const root = tempDir();
    const peft = writePeftDir(root, 'peft', {
      tensors: [
        tensor('model.layers.0.self_attn.q_proj.lora_A.weight', 'F32', [2, 8]),
        tensor('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', 'F32', [4, 8]),
        tensor('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', 'F32', [8, 4]),
      ],
    });
    const peftReport = await validateModelArtifacts(peft, SMALL);
    expect(peftReport.checks.adapterTensorsValid).toBe(false);
    expect(peftReport.errors.join('\n')).toMatch(/without the "base_model\.model\." prefix, which PEFT silently ignores: model\.layers\.0/);
    expect(peftReport.errors.join('\n')).toMatch(/has rank 4 but adapter_config\.json says r = 2/);

    const mlx = writeMlxLoraDir(root, 'mlx', {
      tensors: [
        tensor('model.layers.0.self_attn.q_proj.lora_a', 'F32', [8, 2]),
        tensor('model.layers.0.self_attn.v_proj.lora_b', 'F32', [2, 4]),
        tensor('model.layers.0.mlp.switch_mlp.lora_a', 'F32', [4, 2, 8]),
        tensor('model.layers.0.mlp.switch_mlp.lora_b', 'F32', [4, 8, 2]),
        tensor('model.layers.0.self_attn.q_proj.m', 'F32', [8]),
      ],
    });
    const mlxReport = await validateModelArtifacts(mlx, SMALL);
    const problems = mlxReport.errors.join('\n');
    expect(problems).toMatch(/model\.layers\.0\.self_attn\.q_proj\.lora_a has no matching model\.layers\.0\.self_attn\.q_proj\.lora_b/);
    expect(problems).toMatch(/model\.layers\.0\.self_attn\.v_proj\.lora_b has no matching/);
    expect(problems).toMatch(/3-D\/3-D tensors/);
    expect(problems).toMatch(/DoRA magnitude vectors/);
  });

  it('checks an MLX adapter whose adapters/ is a symlink to a directory, as detection and conversion read it', async () => {
    const root = tempDir();
    const linkAdapters = (dir: string) => {
      renameSync(join(dir, 'adapters'), join(root, `${dir.split('/').pop()}-adapters`));
      symlinkSync(join(root, `${dir.split('/').pop()}-adapters`), join(dir, 'adapters'));
      return dir;
    };
    const good = linkAdapters(writeMlxLoraDir(root, 'good'));
    const report = await validateModelArtifacts(good, SMALL);
    expect({ errors: report.errors, warnings: report.warnings, failed: failedChecks(report) }).toEqual({ errors: [], warnings: [], failed: [] });
    expect(report.layout).toBe('mlx-adapters');
    expect(report.weightBytes).toBe(readFileSync(join(good, 'adapters', 'adapters.safetensors')).length);

    const bad = linkAdapters(writeMlxLoraDir(root, 'bad', { rank: 2, config: { lora_parameters: { rank: 4, scale: 20 } } }));
    const badReport = await validateModelArtifacts(bad, SMALL);
    expect(badReport.overallValid).toBe(false);
    expect(badReport.errors).toEqual(['2.self_attn.q_proj', '2.self_attn.v_proj', '3.self_attn.q_proj', '3.self_attn.v_proj'].map((m) => `adapters/adapters.safetensors: model.layers.${m} has rank 2 but lora_parameters.rank is 4`));
    const noConfig = linkAdapters(writeMlxLoraDir(root, 'no-scale', { config: { lora_parameters: { rank: 2 } } }));
    expect((await validateModelArtifacts(noConfig, SMALL)).errors).toEqual(['adapters/adapter_config.json: lora_parameters.scale must be a positive number, got undefined']);
  });

  it('refuses a PEFT task_type that PEFT does not know (PEFT >= 0.14 will not load the adapter)', async () => {
    const dir = writePeftDir(tempDir(), 'peft', { config: { task_type: 'causal_lm' } });
    const report = await validateModelArtifacts(dir, SMALL);
    expect(report.overallValid).toBe(false);
    expect(report.errors).toEqual([expect.stringMatching(/^adapter_config\.json: task_type "causal_lm" is not one PEFT knows \(SEQ_CLS, .*CAUSAL_LM.*\)/)]);
  });

  it('refuses adapter tensors of modules the config does not target (PEFT drops them on loading without an error)', async () => {
    // PEFT's check_target_module_exists (tuners/tuners_utils.py) decides which modules get a LoRA
    // layer; load_state_dict(strict=False) then drops the tensors of the others.
    const lora = (path: string) => [
      tensor(`base_model.model.${path}.lora_A.weight`, 'F32', [2, DIMS.hidden], 1),
      tensor(`base_model.model.${path}.lora_B.weight`, 'F32', [DIMS.hidden, 2], 2),
    ];
    const tensors = [...lora('model.layers.0.self_attn.q_proj'), ...lora('model.layers.1.self_attn.q_proj'), ...lora('model.layers.1.self_attn.v_proj')];
    const root = tempDir();
    const errorsOf = async (name: string, config: Record<string, unknown>) => (await validateModelArtifacts(writePeftDir(root, name, { config, tensors }), SMALL)).errors;
    const dropped = (modules: string[]) => [
      `adapter_model.safetensors: adapter_config.json does not target ${modules.length === 1 ? 'this module' : 'these modules'} (target_modules, layers_to_transform, exclude_modules), so PEFT drops ${modules.length === 1 ? 'its' : 'their'} tensors on loading without an error: ${modules.map((m) => `base_model.model.${m}`).join(', ')}`,
    ];
    expect(await errorsOf('suffix', { target_modules: ['q_proj', 'self_attn.v_proj'] })).toEqual([]);
    expect(await errorsOf('only-q', { target_modules: ['q_proj'] })).toEqual(dropped(['model.layers.1.self_attn.v_proj']));
    expect(await errorsOf('layers', { target_modules: ['q_proj', 'v_proj'], layers_to_transform: [1] })).toEqual(dropped(['model.layers.0.self_attn.q_proj']));
    expect(await errorsOf('pattern', { target_modules: ['q_proj', 'v_proj'], layers_to_transform: 0, layers_pattern: 'layers' })).toEqual(
      dropped(['model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj']),
    );
    // A full path matches exactly, and the layer filter applies only to suffix matches.
    expect(await errorsOf('full', { target_modules: ['model.layers.0.self_attn.q_proj', 'model.layers.1.self_attn.q_proj', 'v_proj'], layers_to_transform: [1] })).toEqual([]);
    expect(await errorsOf('regex', { target_modules: '.*\\.(q|v)_proj', exclude_modules: ['layers.1.self_attn.v_proj'] })).toEqual(dropped(['model.layers.1.self_attn.v_proj']));
    // What cannot be told here is not guessed: all-linear, and a regex JavaScript cannot read.
    expect(await errorsOf('all-linear', { target_modules: 'all-linear' })).toEqual([]);
    expect(await errorsOf('python-only', { target_modules: '(?P<x>q_proj)' })).toEqual([]);
  });

  it('takes PEFT adapters of MoE expert parameters (target_parameters), whose matrices have rank r x experts', async () => {
    // PEFT adapts an nn.Parameter named by target_parameters through a ParamWrapper whose lora_A
    // is (r * experts, in) and lora_B (out, r * experts) (tuners/lora/layer.py); a second
    // parameter of the same module nests a wrapper (base_layer.); `target_modules=[]` is PEFT's
    // own advice for adapting expert parameters only (tuners/lora/config.py).
    const experts = 4;
    const lora = (path: string, rank: number, inDim: number, outDim: number) => [
      tensor(`base_model.model.${path}.lora_A.weight`, 'F32', [rank, inDim], 1),
      tensor(`base_model.model.${path}.lora_B.weight`, 'F32', [outDim, rank], 2),
    ];
    const expertTensors = [
      ...lora('model.layers.0.mlp.experts.base_layer', 2 * experts, DIMS.hidden, 2 * DIMS.intermediate),
      ...lora('model.layers.0.mlp.experts', 2 * experts, DIMS.intermediate, DIMS.hidden),
    ];
    const root = tempDir();
    const targetParameters = ['0.mlp.experts.gate_up_proj', '0.mlp.experts.down_proj'];
    const only = writePeftDir(root, 'experts-only', { config: { r: 2, target_modules: [], target_parameters: targetParameters }, tensors: expertTensors });
    expect((await validateModelArtifacts(only, SMALL)).errors).toEqual([]);
    const mixed = writePeftDir(root, 'mixed', {
      config: { r: 2, target_modules: ['q_proj'], target_parameters: targetParameters },
      tensors: [...expertTensors, ...lora('model.layers.0.self_attn.q_proj', 2, DIMS.hidden, DIMS.hidden), ...lora('model.layers.0.self_attn.k_proj', 8, DIMS.hidden, DIMS.kv)],
    });
    expect((await validateModelArtifacts(mixed, SMALL)).errors).toEqual([
      'adapter_model.safetensors: base_model.model.model.layers.0.self_attn.k_proj has rank 8 but adapter_config.json says r = 2',
      'adapter_model.safetensors: adapter_config.json does not target this module (target_modules, layers_to_transform, exclude_modules), so PEFT drops its tensors on loading without an error: base_model.model.model.layers.0.self_attn.k_proj',
    ]);
    const none = writePeftDir(root, 'none', { config: { r: 2, target_modules: [] }, tensors: lora('model.layers.0.self_attn.q_proj', 2, DIMS.hidden, DIMS.hidden) });
    expect((await validateModelArtifacts(none, SMALL)).errors).toContain('adapter_config.json: target_modules must be a non-empty list of module names (or a regex string, or [] with target_parameters), got []');
  });

  it('takes the rank of a module from rank_pattern when a pattern matches it, as PEFT does', async () => {
    // PEFT (utils/other.py get_pattern_key) gives a module the rank of the first rank_pattern key
    // matching the end of its name, `re.match(rf"(.*\.)?({key})$", name)`, and r to the others.
    const lora = (module: string, rank: number) => [
      tensor(`base_model.model.model.layers.0.${module}.lora_A.weight`, 'F32', [rank, DIMS.hidden], 1),
      tensor(`base_model.model.model.layers.0.${module}.lora_B.weight`, 'F32', [DIMS.hidden, rank], 2),
    ];
    const root = tempDir();
    const config = { r: 2, rank_pattern: { 'self_attn.v_proj': 4, 'layers\\.0\\.mlp\\.down_proj': 6 }, target_modules: ['q_proj', 'v_proj', 'down_proj'] };
    const good = writePeftDir(root, 'good', { config, tensors: [...lora('self_attn.q_proj', 2), ...lora('self_attn.v_proj', 4), ...lora('mlp.down_proj', 6)] });
    const goodReport = await validateModelArtifacts(good, SMALL);
    expect(goodReport.errors).toEqual([]);
    expect(goodReport.checks.adapterTensorsValid).toBe(true);

    const bad = writePeftDir(root, 'bad', { config, tensors: [...lora('self_attn.q_proj', 4), ...lora('self_attn.v_proj', 2)] });
    expect((await validateModelArtifacts(bad, SMALL)).errors).toEqual([
      'adapter_model.safetensors: base_model.model.model.layers.0.self_attn.q_proj has rank 4 but adapter_config.json says r = 2',
      'adapter_model.safetensors: base_model.model.model.layers.0.self_attn.v_proj has rank 2 but adapter_config.json says rank_pattern["self_attn.v_proj"] = 4',
    ]);
  });

  it('takes PEFT LoRA on Conv1d/2d/3d layers, whose matrices are convolutions, with the rank on A\'s first axis', async () => {
    // PEFT's _ConvNd (tuners/lora/layer.py) makes lora_A a convolution in -> r with the base
    // kernel, (r, in, ...kernel), and lora_B one r -> out with a kernel of 1s and the base layer's
    // groups, (out, r / groups, 1, ...).
    const lora = (module: string, a: number[], b: number[]) => [
      tensor(`base_model.model.unet.${module}.lora_A.weight`, 'F32', a, 1),
      tensor(`base_model.model.unet.${module}.lora_B.weight`, 'F32', b, 2),
    ];
    const config = { r: 4, task_type: undefined, target_modules: ['conv1d', 'conv2d', 'conv3d', 'grouped', 'pointwise', 'proj'] };
    const root = tempDir();
    const good = writePeftDir(root, 'good', {
      config,
      tensors: [
        ...lora('conv1d', [4, 6, 3], [10, 4, 1]),
        ...lora('conv2d', [4, 6, 3, 3], [10, 4, 1, 1]),
        ...lora('conv3d', [4, 6, 3, 3, 3], [10, 4, 1, 1, 1]),
        ...lora('grouped', [4, 6, 3, 3], [10, 2, 1, 1]), // groups = 2
        ...lora('pointwise', [4, 6, 1, 1], [10, 4, 1, 1]),
        ...lora('proj', [4, 6], [10, 4]),
      ],
    });
    const goodReport = await validateModelArtifacts(good, SMALL);
    expect(goodReport.errors).toEqual([]);
    expect(goodReport.checks.adapterTensorsValid).toBe(true);

    const bad = writePeftDir(root, 'bad', {
      config,
      tensors: [
        ...lora('conv2d', [8, 6, 3, 3], [10, 8, 1, 1]), // a consistent pair of the wrong rank
        ...lora('conv1d', [4, 6, 3], [10, 4, 3]), // B's kernel is not 1
        ...lora('conv3d', [4, 6, 3, 3, 3], [10, 3, 1, 1, 1]), // 3 divides no rank 4
        ...lora('grouped', [4, 6, 3, 3], [9, 1, 1, 1]), // groups = 4 would not divide 6 or 9 channels
        ...lora('pointwise', [4, 6, 1, 1], [10, 4, 1]), // a Conv2d A with a Conv1d B
      ],
    });
    const shapes = (module: string, a: number[], b: number[]) =>
      `adapter_model.safetensors: base_model.model.unet.${module}: lora_A ${JSON.stringify(a)} and lora_B ${JSON.stringify(b)} do not form (r, in) and (out, r), nor the (r, in, ...kernel) and (out, r, 1, ...) of a Conv1d/2d/3d`;
    expect((await validateModelArtifacts(bad, SMALL)).errors.sort()).toEqual(
      [
        'adapter_model.safetensors: base_model.model.unet.conv2d has rank 8 but adapter_config.json says r = 4',
        shapes('conv1d', [4, 6, 3], [10, 4, 3]),
        shapes('conv3d', [4, 6, 3, 3, 3], [10, 3, 1, 1, 1]),
        shapes('grouped', [4, 6, 3, 3], [9, 1, 1, 1]),
        shapes('pointwise', [4, 6, 1, 1], [10, 4, 1]),
      ].sort(),
    );
  });

  it('only warns about a tensor name declared twice in a safetensors header, which loaders take (the last declaration wins)', async () => {
    const dir = writeFusedDir(tempDir(), 'fused');
    const weight = (offsets: [number, number]) => `{"dtype":"F32","shape":[2,2],"data_offsets":${JSON.stringify(offsets)}}`;
    const data = tensor('w', 'F32', [2, 4]).data;
    writeFileSync(join(dir, 'model.safetensors'), encodeRaw(`{"__metadata__":{"format":"pt"},"w":${weight([16, 32])},"v":${weight([16, 32])},"w":${weight([0, 16])}}`, data));
    const report = await validateModelArtifacts(dir, SMALL);
    expect({ errors: report.errors, valid: report.overallValid }).toEqual({ errors: [], valid: true });
    expect(report.checkStatus.safetensorsHeadersValid).toBe('warning');
    expect(report.warnings).toEqual([
      'model.safetensors: the header declares tensor "w" more than once; safetensors loaders read only the last declaration of each (save the file again with the safetensors library to drop the others)',
    ]);
  });

  it('warns about pickled weights beside the safetensors ones, which loaders never read (they are uploaded all the same)', async () => {
    // torch.save writes a zip archive: binary, so only this finding is about them.
    const pickle = (size: number) => Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.alloc(size - 4)]);
    const root = tempDir();
    const peft = writePeftDir(root, 'peft');
    writeFileSync(join(peft, 'adapter_model.bin'), pickle(2048));
    writeFileSync(join(peft, 'training_args.bin'), pickle(64)); // the Trainer's arguments, not weights
    const peftReport = await validateModelArtifacts(peft, SMALL);
    expect({ errors: peftReport.errors, valid: peftReport.overallValid, status: peftReport.checkStatus.hasModelFiles }).toEqual({ errors: [], valid: true, status: 'warning' });
    expect(peftReport.warnings).toEqual([
      'adapter_model.bin (pickled weights, 2 KiB) sits beside adapter_model.safetensors: PEFT loads the safetensors file and never reads it, so it is a stale copy or a duplicate that only makes the upload larger (remove it unless wanted)',
    ]);
    expect(peftReport.files.map((f) => f.path)).toContain('adapter_model.bin');

    const fused = writeFusedDir(root, 'fused');
    writeFileSync(join(fused, 'pytorch_model.bin'), pickle(1024));
    writeFileSync(join(fused, 'model.pt'), pickle(1024));
    expect((await validateModelArtifacts(fused, SMALL)).warnings).toEqual([
      'model.pt, pytorch_model.bin (pickled weights, 2 KiB) sit beside model.safetensors: transformers loads the safetensors file and never reads them, so they are stale copies or duplicates that only make the upload larger (remove them unless wanted)',
    ]);

    const { dir: sharded } = writeShardedDir(root, 'sharded', 2);
    writeFileSync(join(sharded, 'pytorch_model-00001-of-00002.bin'), pickle(64));
    writeFileSync(join(sharded, 'pytorch_model-00002-of-00002.bin'), pickle(64));
    writeFileSync(join(sharded, 'pytorch_model.bin.index.json'), JSON.stringify({ weight_map: { w: 'pytorch_model-00001-of-00002.bin' } }));
    expect((await validateModelArtifacts(sharded, SMALL)).warnings).toEqual([
      expect.stringMatching(
        /^pytorch_model-00001-of-00002\.bin, pytorch_model-00002-of-00002\.bin, pytorch_model\.bin\.index\.json \(pickled weights, .*\) sit beside model-00001-of-00002\.safetensors, model-00002-of-00002\.safetensors: transformers loads the safetensors files and never reads them/,
      ),
    ]);

    // PEFT never reads a pytorch_model.bin: not a copy of the adapter, so not this finding.
    const other = writePeftDir(root, 'other');
    writeFileSync(join(other, 'pytorch_model.bin'), pickle(64));
    expect((await validateModelArtifacts(other, SMALL)).warnings).toEqual([]);
  });

  it('warns about file names that differ only in letter case or Unicode normalization, as the upload plan does', async () => {
    // A publish to the Hub lists the folder through the validator only: the twins went up without a
    // word, and a download to macOS or Windows kept one of them, silently.
    const root = tempDir();
    const peft = writePeftDir(root, 'peft');
    writeFileSync(join(peft, 'tokenizer.json'), '{"version":"1.0"}');
    writeFileSync(join(peft, 'Tokenizer.json'), '{"version":"2.0"}');
    writeFileSync(join(peft, 'caf\u00e9.txt'), 'composed');
    writeFileSync(join(peft, 'cafe\u0301.txt'), 'decomposed');
    const report = await validateModelArtifacts(peft, SMALL);
    expect({ errors: report.errors, valid: report.overallValid, status: report.checkStatus.hasModelFiles }).toEqual({ errors: [], valid: true, status: 'warning' });
    expect(report.warnings).toEqual([
      expect.stringMatching(/^"Tokenizer\.json" and "tokenizer\.json" differ only in letter case: .* on macOS and Windows they land on one file/),
      expect.stringMatching(/^"cafe\u0301\.txt" \(Unicode NFD\) and "caf\u00e9\.txt" differ only in Unicode normalization \(NFC\/NFD\): .* on macOS they land on one file/),
    ]);
    expect((await validateModelArtifacts(writePeftDir(root, 'plain'), SMALL)).warnings).toEqual([]);
  });

  it('reports a symlink to a missing target, which the listing left out without a word (a publish went without it)', async () => {
    // The upload plan refuses such a link (PATH_NOT_FOUND); the validator listed the folder
    // without it and called the model valid, so publishToHub published it without its tokenizer.
    const root = tempDir();
    const peft = writePeftDir(root, 'peft');
    symlinkSync(join(root, 'gone', 'tokenizer.json'), join(peft, 'tokenizer.json'));
    const report = await validateModelArtifacts(peft, SMALL);
    expect(report.overallValid).toBe(false);
    expect(report.checkStatus.noPlaceholderFiles).toBe('error');
    expect(report.errors).toEqual([`tokenizer.json: symlink to ${join(root, 'gone', 'tokenizer.json')}, which does not exist (a publish would leave it out; restore the target or remove the link)`]);
    expect(report.files.map((f) => f.path)).not.toContain('tokenizer.json');
  });

  it('warns when an MLX adapter file has an unknown __metadata__.format in a fused model', async () => {
    const dir = writeFusedDir(tempDir(), 'fused');
    writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors([tensor('w', 'F32', [4, 4])], { metadata: { format: 'jax' } }));
    const report = await validateModelArtifacts(dir, SMALL);
    expect(report.overallValid).toBe(true);
    expect(report.warnings).toEqual(['model.safetensors: __metadata__.format is "jax"; transformers only loads pt, tf, flax, mlx']);
  });

  it('throws only for programmer errors', async () => {
    await expect(validateModelArtifacts('')).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(validateModelArtifacts(tempDir(), { minWeightBytes: -1 })).rejects.toThrow(/`minWeightBytes` to be a non-negative number/);
    await expect(validateModelArtifacts(tempDir(), { smallWeights: 'fatal' as never })).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});
