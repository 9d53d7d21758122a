/**
 * publishToHub against the fake Hub: what lands in the repo for each model layout, refusal of
 * invalid models, dry runs without network, retries that never commit twice.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { downloadFile, listFiles, uploadFiles } from '@huggingface/hub';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AbortedError, ConfigError, HubError, InvalidArgumentError, ModelValidationError, PublicHubInTestError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import { convertMlxLoraToPeft } from '../../src/model/convert-mlx-to-peft.js';
import { hasMarker, HUB_RUN_TAGS, publishToHub, type PublishProgressEvent, type PublishToHubOptions } from '../../src/hub/publish.js';
import { retryAfterMsOf } from '../../src/hub/hub-session.js';
import { startTestServer } from '../support/http-test-server.js';
import { runPython } from '../support/python.js';
import { startFakeHub, type FakeHub } from '../support/fake-hub/index.js';
import { describeWithPython, sha256, tempDir, writeFiles, writeFusedModel, writeMlxLoraModel, writeShardedModel } from './helpers.js';

let hub: FakeHub;
let counter = 0;

/** Repo ids `huggingface_hub`'s `validate_repo_id` refuses (cross-checked with it below), and some it accepts. */
const REFUSED_REPO_IDS = [
  'tester/model.git',
  'tester/a--b',
  'tester/a..b',
  'tester/model-',
  'tester/model.',
  'tester-/model',
  `tester/${'a'.repeat(97)}`,
  'tester/.model',
  'tester/a/b',
  'tester/caf\u00e9',
  'model',
];
const ACCEPTED_REPO_IDS = ['tester/Model_1.2-x', 'tester/model_', `tester/${'a'.repeat(96)}`, 'my-org/x'];
const newRepo = () => `tester/model-${++counter}-${Date.now().toString(36)}`;

beforeAll(async () => {
  hub = await startFakeHub({ limits: { multipartThresholdBytes: 48 * 1024, multipartChunkBytes: 16 * 1024 } });
});
afterAll(async () => {
  await hub.stop();
});

/** Options every test shares: the fake Hub, no backoff sleeps. */
function opts(overrides: Partial<PublishToHubOptions> & Pick<PublishToHubOptions, 'modelDir'>): PublishToHubOptions {
  return {
    repoId: newRepo(),
    hubUrl: hub.url,
    accessToken: hub.token,
    retry: { maxRetries: 4, backoffFactor: 0, backoffJitter: 0 },
    env: {},
    ...overrides,
  };
}

function captureLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = (level: string) => (message: string, fields?: Record<string, unknown>) => lines.push(`${level} ${message} ${fields ? JSON.stringify(fields) : ''}`);
  return { lines, debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

async function hubBytes(repoId: string, path: string): Promise<Buffer> {
  const blob = await downloadFile({ repo: repoId, path, hubUrl: hub.url, accessToken: hub.token, xet: false });
  if (!blob) throw new Error(`${path} is not in ${repoId}`);
  return Buffer.from(await blob.arrayBuffer());
}

describe('publishToHub', () => {
  it('publishes an MLX LoRA adapter converted to PEFT, with a model card, in one commit', async () => {
    const modelDir = await writeMlxLoraModel(join(await tempDir(), 'tiny-lora_20240501_093000'), { baseModel: 'HuggingFaceTB/SmolLM2-135M' });
    const events: PublishProgressEvent[] = [];
    const tags: Array<[string, string, string]> = [];
    const options = opts({
      modelDir,
      runId: 'run123',
      mlflow: { trackingUri: 'http://user:secret@mlflow.example.com:5000/?token=secret2#frag', experimentId: '7' },
      onProgress: (e) => events.push(e),
      tagRun: async (runId, key, value) => {
        tags.push([runId, key, value]);
      },
    });
    const result = await publishToHub(options);

    expect(result).toMatchObject({ status: 'published', format: 'lora', flavour: 'mlx', converted: true, repoCreated: true, mlflowTagged: true });
    expect(result.files.map((f) => f.path)).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors', 'mlx_adapter_config.json']);
    expect(result.bytes).toBe(result.files.reduce((s, f) => s + f.size, 0));
    expect(result.commitOid).toBe(hub.head(options.repoId));
    expect(result.commitUrl).toBe(`${hub.url}/${options.repoId}/commit/${result.commitOid}`);
    expect(hub.commits(options.repoId)).toHaveLength(2); // the repo's initial commit + ours
    expect(hub.files(options.repoId)).toEqual(['.gitattributes', ...result.files.map((f) => f.path)]);
    for (const file of result.files) expect(hub.fileBytes(options.repoId, file.path)?.length, file.path).toBe(file.size);

    const config = JSON.parse((await hubBytes(options.repoId, 'adapter_config.json')).toString()) as Record<string, unknown>;
    expect(config).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 80, base_model_name_or_path: 'HuggingFaceTB/SmolLM2-135M' });
    const card = (await hubBytes(options.repoId, 'README.md')).toString();
    expect(card).toMatch(/^---\nlibrary_name: peft\nbase_model: HuggingFaceTB\/SmolLM2-135M\n/);
    expect(card).toContain('http://mlflow.example.com:5000/#/experiments/7/runs/run123');
    expect(card).not.toMatch(/secret|token=|frag/);

    expect(tags).toEqual([
      ['run123', HUB_RUN_TAGS.repoId, options.repoId],
      ['run123', HUB_RUN_TAGS.repoUrl, `${hub.url}/${options.repoId}`],
      ['run123', HUB_RUN_TAGS.commitOid, result.commitOid],
      ['run123', HUB_RUN_TAGS.commitUrl, result.commitUrl],
    ]);
    const phases = events.flatMap((e) => (e.type === 'phase' ? [e.phase] : []));
    expect(phases).toEqual(['validating', 'converting', 'preparing', 'connecting', 'uploading', 'committing', 'verifying', 'tagging', 'done']);
    expect(events.filter((e) => e.type === 'bytes').at(-1)).toEqual({ type: 'bytes', loaded: result.bytes, total: result.bytes });
  });

  it("never writes an MLX adapter's local model path into the card's base_model (the Hub refuses such a card)", async () => {
    // mlx_lm.lora --model ./models/... records that path as the adapter config's `model`.
    const modelDir = await writeMlxLoraModel(join(await tempDir(), 'local-base_20240501_093000'), { baseModel: '/Users/alice/models/Llama-3.2-1B' });
    const options = opts({ modelDir });
    const result = await publishToHub(options);
    expect(result).toMatchObject({ status: 'published', converted: true });
    expect(result.baseModel).toBeUndefined();
    expect(result.warnings.some((w) => w.includes('is a local path'))).toBe(true);
    const card = (await hubBytes(options.repoId, 'README.md')).toString();
    const frontMatter = card.split('\n---\n')[0]!;
    expect(frontMatter).not.toMatch(/base_model/);
    expect(card).not.toContain('/Users/alice');
    expect(card).toContain('- **Base model:** unknown');

    // Passed explicitly, a path is refused before anything is done, dry run or not.
    for (const baseModel of ['./models/llama', '/Users/alice/models/Llama-3.2-1B', 'org/llama.git', 'org/a--b']) {
      for (const dryRun of [true, false]) {
        const error = await publishToHub({ ...opts({ modelDir }), baseModel, dryRun }).catch((e: unknown) => e);
        expect(error, baseModel).toBeInstanceOf(InvalidArgumentError);
        expect(error, baseModel).toMatchObject({ argument: 'baseModel' });
      }
    }
    // The Hub's canonical models have no namespace.
    expect(await publishToHub({ ...opts({ modelDir }), baseModel: 'gpt2', dryRun: true })).toMatchObject({ baseModel: 'gpt2' });
  });

  it("publishes no byte of an MLX adapter's local model path once baseModel names the base model (adapter_config.json and the MLX config copy carry the Hub id)", async () => {
    const localPath = '/Users/alice/models/Llama-3.2-1B';
    const modelDir = await writeMlxLoraModel(join(await tempDir(), 'named-base_20240501_093000'), { baseModel: localPath });
    // Without baseModel the converted config names the local path, as the MLX config does, with a warning saying what to pass.
    const unnamed = opts({ modelDir });
    const withoutBase = await publishToHub(unnamed);
    expect(JSON.parse((await hubBytes(unnamed.repoId, 'adapter_config.json')).toString())).toMatchObject({ base_model_name_or_path: localPath });
    expect(withoutBase.warnings.some((w) => w.includes('is a local path') && w.includes('pass baseModel'))).toBe(true);

    const options = opts({ modelDir, baseModel: 'meta-llama/Llama-3.2-1B' });
    const result = await publishToHub(options);
    expect(result.files.map((f) => f.path)).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors', 'mlx_adapter_config.json']);
    for (const file of result.files) expect((await hubBytes(options.repoId, file.path)).toString('latin1'), file.path).not.toContain('/Users/alice');
    expect(JSON.parse((await hubBytes(options.repoId, 'adapter_config.json')).toString())).toMatchObject({ base_model_name_or_path: 'meta-llama/Llama-3.2-1B' });
    const original = JSON.parse(await readFile(join(modelDir, 'adapters', 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(JSON.parse((await hubBytes(options.repoId, 'mlx_adapter_config.json')).toString())).toEqual({ ...original, model: 'meta-llama/Llama-3.2-1B' });
    expect(result.warnings.filter((w) => w.includes('local path'))).toEqual([]);

    // A Hub id there is provenance (the MLX-quantized repo trained on): the copy keeps it as written.
    const quantized = await writeMlxLoraModel(join(await tempDir(), 'quantized_20240501_093000'));
    const kept = opts({ modelDir: quantized, baseModel: 'meta-llama/Llama-3.2-1B' });
    await publishToHub(kept);
    expect((await hubBytes(kept.repoId, 'mlx_adapter_config.json')).toString()).toBe(await readFile(join(quantized, 'adapters', 'adapter_config.json'), 'utf8'));
  });

  it('refuses, before anything is done, a repo id the Hub refuses (dry run included)', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    for (const repoId of REFUSED_REPO_IDS) {
      for (const dryRun of [true, false]) {
        const error = await publishToHub({ ...opts({ modelDir }), repoId, dryRun }).catch((e: unknown) => e);
        expect(error, `${repoId} dryRun=${dryRun}`).toBeInstanceOf(InvalidArgumentError);
        expect(error, repoId).toMatchObject({ argument: 'repoId' });
      }
      expect(hub.files(repoId), repoId).toEqual([]); // no repo was created
    }
    for (const repoId of ACCEPTED_REPO_IDS) {
      expect(await publishToHub({ ...opts({ modelDir }), repoId, dryRun: true }), repoId).toMatchObject({ status: 'dry-run', repoId });
    }
    // One of them all the way: the Hub creates it and takes the commit.
    const edge = `tester/${'a'.repeat(94)}_${counter++}`.slice(0, 7 + 96);
    expect(await publishToHub({ ...opts({ modelDir }), repoId: edge })).toMatchObject({ status: 'published', repoCreated: true });
  });

  it('publishes a model whose own .gitattributes the Hub extends (an LFS file it does not cover), once, without a verification failure', async () => {
    // Binary files over 1 KiB go to LFS here, so model.safetensors does, and the directory's
    // .gitattributes has no rule for it: the Hub appends one to the .gitattributes committed.
    const lfsHub = await startFakeHub({ limits: { binaryRegularMaxBytes: 1024 } });
    try {
      const modelDir = await writeFusedModel(await tempDir());
      const ours = '*.json text eol=lf\n';
      await writeFiles(modelDir, { '.gitattributes': ours });
      const options = { ...opts({ modelDir }), hubUrl: lfsHub.url, accessToken: lfsHub.token };
      const result = await publishToHub(options);
      expect(result.status).toBe('published');
      expect(lfsHub.commits(options.repoId)).toHaveLength(2);
      const attributes = lfsHub.fileBytes(options.repoId, '.gitattributes')!.toString();
      expect(attributes.startsWith(ours)).toBe(true);
      expect(attributes).toContain('model.safetensors filter=lfs');
      const byPath = new Map(result.files.map((f) => [f.path, f]));
      expect(byPath.get('.gitattributes')?.verified).toBeUndefined();
      expect(byPath.get('model.safetensors')).toMatchObject({ verified: 'checksum', sha256: sha256(await readFile(join(modelDir, 'model.safetensors'))) });
    } finally {
      await lfsHub.stop();
    }
  });

  it('uploads a PEFT adapter as it is (no second conversion)', async () => {
    const root = await tempDir();
    const mlx = await writeMlxLoraModel(join(root, 'mlx_20240101_000000'));
    const peft = (await convertMlxLoraToPeft(mlx, { outDir: join(root, 'peft'), baseModel: 'org/base' })).outDir;
    const options = opts({ modelDir: peft });
    const result = await publishToHub(options);
    expect(result).toMatchObject({ format: 'lora', flavour: 'peft', converted: false, baseModel: 'org/base' });
    for (const name of ['adapter_model.safetensors', 'adapter_config.json']) {
      expect(sha256(await hubBytes(options.repoId, name)), name).toBe(sha256(await readFile(join(peft, name))));
    }
  });

  it("warns that a PEFT adapter's adapter_config.json names its base model by a local path, uploads it as it is (as PEFT does), and keeps the path out of the card", async () => {
    // PEFT's save_pretrained records the path the base model was loaded from, in the adapter
    // config and in the README it writes beside it.
    const localBase = '/home/me/models/Llama-3.2-1B';
    const root = await tempDir();
    const mlx = await writeMlxLoraModel(join(root, 'mlx_20240101_000000'));
    const peft = (await convertMlxLoraToPeft(mlx, { outDir: join(root, 'peft'), baseModel: localBase })).outDir;
    await writeFile(join(peft, 'README.md'), ['---', `base_model: ${localBase}`, 'library_name: peft', '---', '', '# Model Card for Model ID', ''].join('\n'));
    const logger = captureLogger();
    const options = opts({ modelDir: peft, logger });
    const result = await publishToHub(options);
    expect(result).toMatchObject({ status: 'published', format: 'lora', flavour: 'peft', converted: false });
    expect(result.baseModel).toBeUndefined();
    expect(result.warnings).toEqual(expect.arrayContaining([expect.stringMatching(/base_model_name_or_path of .*adapter_config\.json is the local path/)]));
    const warning = result.warnings.find((w) => w.includes('base_model_name_or_path'))!;
    expect(warning).toContain(`the local path "${localBase}"`);
    expect(warning).toMatch(/pass baseModel/);
    expect(logger.lines.filter((line) => line.startsWith('warn ') && line.includes('base_model_name_or_path'))).toHaveLength(1);
    // Uploaded byte for byte, as PEFT's push_to_hub uploads it; the card names no local path.
    expect(sha256(await hubBytes(options.repoId, 'adapter_config.json'))).toBe(sha256(await readFile(join(peft, 'adapter_config.json'))));
    const card = (await hubBytes(options.repoId, 'README.md')).toString();
    expect(card).not.toContain(localBase);
    expect(card).toContain('- **Base model:** unknown');
    // The dry run says it too, before anything is sent.
    const dryRun = await publishToHub(opts({ modelDir: peft, dryRun: true }));
    expect(dryRun.warnings).toContain(warning);

    // With baseModel the card names it; the config still carries the path, and the warning says so.
    const named = await publishToHub(opts({ modelDir: peft, baseModel: 'meta-llama/Llama-3.2-1B' }));
    expect(named.baseModel).toBe('meta-llama/Llama-3.2-1B');
    const namedWarning = named.warnings.find((w) => w.includes('base_model_name_or_path'));
    expect(namedWarning).toContain(`the local path "${localBase}"`);
    expect(namedWarning).not.toMatch(/pass baseModel/);

    // A name that is neither a repo id nor a folder here (a typo) is not called a local path.
    const typo = (await convertMlxLoraToPeft(mlx, { outDir: join(root, 'peft-typo'), baseModel: 'Llama 3' })).outDir;
    const typoWarning = (await publishToHub(opts({ modelDir: typo, dryRun: true }))).warnings.find((w) => w.includes('base_model_name_or_path'));
    expect(typoWarning).toContain('is "Llama 3", neither a Hugging Face repo id ("namespace/name") nor a folder on this machine');
    expect(typoWarning).toMatch(/Set it to the Hub repo id of the base model .*pass baseModel/);
    expect(typoWarning).not.toContain('local path');

    // A Hub repo id there is no cause for a warning.
    const fine = (await convertMlxLoraToPeft(mlx, { outDir: join(root, 'peft-hub'), baseModel: 'org/base' })).outDir;
    expect((await publishToHub(opts({ modelDir: fine, dryRun: true }))).warnings.filter((w) => w.includes('base_model_name_or_path'))).toEqual([]);
  });

  it('takes a base model that reads as a repo id but is a folder here (models/llama, from the working directory or the model directory) for the path it is', async () => {
    const root = await tempDir();
    await mkdir(join(root, 'models', 'llama'), { recursive: true });
    const cardOf = async (repoId: string) => (await hubBytes(repoId, 'README.md')).toString().split('\n---\n')[0]!;
    const cwd = process.cwd();
    // mlx_lm.lora --model models/llama, run in `root`: the MLX config's `model` is relative to the working directory.
    process.chdir(root);
    try {
      const mlx = await writeMlxLoraModel(join(root, 'out', 'mlx_20240101_000000'), { baseModel: 'models/llama' });
      const options = opts({ modelDir: mlx });
      const result = await publishToHub(options);
      expect(result.baseModel).toBeUndefined();
      expect(result.warnings).toEqual(expect.arrayContaining([expect.stringContaining('base model "models/llama" is a local path')]));
      expect(await cardOf(options.repoId)).not.toMatch(/base_model/);
      // With baseModel, not even the MLX config copy keeps the folder's name.
      const named = opts({ modelDir: mlx, baseModel: 'meta-llama/Llama-3.2-1B' });
      await publishToHub(named);
      expect(JSON.parse((await hubBytes(named.repoId, 'mlx_adapter_config.json')).toString())).toMatchObject({ model: 'meta-llama/Llama-3.2-1B' });

      // Passed explicitly, it is kept (a folder named after its repo is common), with a word.
      const explicit = await publishToHub(opts({ modelDir: mlx, baseModel: 'models/llama', dryRun: true }));
      expect(explicit.baseModel).toBe('models/llama');
      expect(explicit.warnings).toEqual(expect.arrayContaining([expect.stringMatching(/baseModel "models\/llama" goes into the model card as a Hub repo id, but it is also the local folder/)]));
    } finally {
      process.chdir(cwd);
    }

    // PEFT's save_pretrained, and transformers' _name_or_path, relative to the model directory.
    const peft = (await convertMlxLoraToPeft(await writeMlxLoraModel(join(root, 'mlx2_20240101_000000')), { outDir: join(root, 'peft'), baseModel: 'models/llama' })).outDir;
    await mkdir(join(peft, 'models', 'llama'), { recursive: true });
    const peftResult = await publishToHub(opts({ modelDir: peft, dryRun: true }));
    expect(peftResult.baseModel).toBeUndefined();
    expect(peftResult.warnings).toEqual(expect.arrayContaining([expect.stringContaining('is the local path "models/llama"')]));
    const fused = await writeFusedModel(join(root, 'fused'));
    await writeFile(join(fused, 'config.json'), JSON.stringify({ ...JSON.parse(await readFile(join(fused, 'config.json'), 'utf8')), _name_or_path: 'models/llama' }));
    await mkdir(join(fused, 'models', 'llama'), { recursive: true });
    await writeFile(join(fused, 'README.md'), ['---', 'base_model: models/llama', '---', '', 'Notes.', ''].join('\n'));
    const fusedOptions = opts({ modelDir: fused });
    const fusedResult = await publishToHub(fusedOptions);
    expect(fusedResult.baseModel).toBeUndefined();
    expect(fusedResult.warnings).toEqual(expect.arrayContaining([expect.stringMatching(/_name_or_path of .*config\.json, "models\/llama", is the local folder/)]));
    expect(await cardOf(fusedOptions.repoId)).not.toMatch(/base_model/);

    // Where no such folder is, a repo id is a repo id.
    const elsewhere = await writeMlxLoraModel(join(await tempDir(), 'mlx3_20240101_000000'), { baseModel: 'models/llama' });
    const hubId = await publishToHub(opts({ modelDir: elsewhere, dryRun: true }));
    expect(hubId.baseModel).toBe('models/llama');
    expect(hubId.warnings.filter((w) => w.includes('models/llama'))).toEqual([]);
  });

  it('uploads a fused model byte for byte and never converts it', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    const options = opts({ modelDir });
    const result = await publishToHub(options);
    expect(result).toMatchObject({ status: 'published', format: 'fused', converted: false });
    expect(result.files.map((f) => f.path)).toEqual(['README.md', 'config.json', 'model.safetensors', 'tokenizer_config.json']);
    for (const name of ['config.json', 'model.safetensors', 'tokenizer_config.json']) {
      expect(sha256(await hubBytes(options.repoId, name)), name).toBe(sha256(await readFile(join(modelDir, name))));
    }
    expect((await hubBytes(options.repoId, 'README.md')).toString()).toContain('library_name: transformers');
  });

  it("keeps the metadata of the model directory's own README.md in the card (license, datasets...), its text under Notes; a front matter that is not YAML is left out with a warning", async () => {
    const modelDir = await writeFusedModel(await tempDir());
    await writeFile(
      join(modelDir, 'README.md'),
      ['---', 'license: apache-2.0', 'datasets:', '  - squad', 'language: [en, fr]', 'library_name: mlx', 'tags: [medical, peft]', '---', '', 'Trained on the clinic notes.', ''].join('\n'),
    );
    const options = opts({ modelDir });
    const result = await publishToHub(options);
    expect(result.status).toBe('published');
    const card = (await hubBytes(options.repoId, 'README.md')).toString();
    const [, frontMatter = ''] = /^---\n([\s\S]*?)\n---\n/.exec(card) ?? [];
    // Read back as the Hub reads card metadata: YAML, by huggingface_hub's own parser.
    const cardFile = join(await tempDir(), 'README.md');
    await writeFile(cardFile, card);
    const metadata = JSON.parse(
      await runPython('import json, sys\nfrom huggingface_hub import ModelCard\nprint(json.dumps(ModelCard.load(sys.argv[1]).data.to_dict()))', { args: [cardFile] }),
    ) as Record<string, unknown>;
    expect(metadata, frontMatter).toEqual({
      license: 'apache-2.0',
      datasets: ['squad'],
      language: ['en', 'fr'],
      library_name: 'transformers',
      tags: ['medical', 'peft', 'fused', 'artifact-uploader'],
    });
    expect(card).toContain('## Notes\n\nTrained on the clinic notes.');

    const broken = await writeFusedModel(await tempDir());
    await writeFile(join(broken, 'README.md'), '---\nlicense: [unclosed\n---\nBody text.\n');
    const second = await publishToHub(opts({ modelDir: broken }));
    expect(second.status).toBe('published');
    expect(second.warnings).toEqual(expect.arrayContaining([expect.stringMatching(/front matter of .*README\.md was left out of the model card: it is not valid YAML/)]));
    const secondCard = (await hubBytes(second.repoId, 'README.md')).toString();
    expect(secondCard).toMatch(/^---\nlibrary_name: transformers\n/);
    expect(secondCard).toContain('## Notes\n\nBody text.');
  });

  it("leaves a README's base_model that is no Hub model id (the local path PEFT's save_pretrained writes) out of the card, with a warning; keeps one that is", async () => {
    // PEFT writes the README of an adapter with `base_model: <base_model_name_or_path>`, often a
    // local path; the Hub refuses a card whose base_model is no model id, at the commit.
    for (const value of ['/Users/alice/models/Llama-3.2-1B', '[meta-llama/Llama-3.2-1B, ./models/llama]']) {
      const modelDir = await writeFusedModel(await tempDir());
      await writeFile(join(modelDir, 'README.md'), ['---', `base_model: ${value}`, 'license: apache-2.0', '---', '', 'Notes.', ''].join('\n'));
      const options = opts({ modelDir });
      const result = await publishToHub(options);
      expect(result.status, value).toBe('published');
      expect(result.warnings, value).toEqual(expect.arrayContaining([expect.stringMatching(/base_model of .*README\.md was left out of the model card: it is not a Hugging Face model id/)]));
      const card = (await hubBytes(options.repoId, 'README.md')).toString();
      const [, frontMatter = ''] = /^---\n([\s\S]*?)\n---\n/.exec(card) ?? [];
      expect(frontMatter, value).not.toMatch(/base_model/);
      expect(frontMatter, value).toContain('license: apache-2.0');
      expect(card, value).not.toContain('/Users/alice');
      expect(card, value).not.toContain('./models/llama');
    }
    // A Hub id there is kept (a card without a base model of its own).
    const modelDir = await writeFusedModel(await tempDir());
    await writeFile(join(modelDir, 'README.md'), ['---', 'base_model: meta-llama/Llama-3.2-1B', '---', ''].join('\n'));
    const options = opts({ modelDir });
    const result = await publishToHub(options);
    expect(result.warnings.filter((w) => w.includes('base_model'))).toEqual([]);
    expect((await hubBytes(options.repoId, 'README.md')).toString()).toMatch(/^---\n[\s\S]*base_model: meta-llama\/Llama-3\.2-1B\n[\s\S]*\n---\n/);
  });

  it('uploads LFS files byte for byte through a custom fetch as well (file blobs as plain Blob bodies)', async () => {
    const modelDir = await writeMlxLoraModel(join(await tempDir(), 'viafetch_20240501_093000'), { padBytes: 64 * 1024 }); // multipart
    const fusedDir = await writeFusedModel(await tempDir()); // basic
    const bodies: string[] = [];
    const customFetch = ((input: Parameters<typeof fetch>[0], init?: RequestInit) => {
      if (init?.body instanceof Blob) bodies.push(String(input));
      return fetch(input, init);
    }) as typeof fetch;
    const lora = await publishToHub(opts({ modelDir, fetch: customFetch }));
    const fused = await publishToHub(opts({ modelDir: fusedDir, fetch: customFetch }));
    expect(bodies.some((url) => url.includes('/part/'))).toBe(true);
    expect(sha256(await hubBytes(fused.repoId, 'model.safetensors'))).toBe(sha256(await readFile(join(fusedDir, 'model.safetensors'))));
    for (const result of [lora, fused]) {
      for (const file of result.files) expect(hub.fileBytes(result.repoId, file.path)?.length, file.path).toBe(file.size);
    }
  });

  it('an LFS file is verified by the Hub\'s LFS sha256 oid, reported as verified: checksum with its sha256; small files by size', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    const result = await publishToHub(opts({ modelDir }));
    const byPath = new Map(result.files.map((f) => [f.path, f]));
    // model.safetensors goes through LFS on the fake Hub; the JSON files and the card inline.
    expect(byPath.get('model.safetensors')).toMatchObject({ verified: 'checksum', sha256: sha256(await readFile(join(modelDir, 'model.safetensors'))) });
    for (const path of ['README.md', 'config.json']) expect(byPath.get(path), path).toEqual(expect.objectContaining({ verified: 'size' }));
    expect(byPath.get('README.md')?.sha256).toBeUndefined();
  });

  it('a commit that lists another LFS oid than the one sent fails with VERIFICATION_FAILED (checksum)', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    // A Hub whose tree listing reports a different oid for the LFS file.
    const lyingFetch = (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
      const response = await fetch(input, init);
      if (!/\/tree\//.test(String(input))) return response;
      const entries = (await response.json()) as Array<{ path: string; lfs?: { oid: string } }>;
      for (const entry of entries) if (entry.lfs) entry.lfs.oid = '0'.repeat(64);
      return new Response(JSON.stringify(entries), { status: response.status, headers: response.headers });
    }) as typeof fetch;
    const error = await publishToHub(opts({ modelDir, fetch: lyingFetch })).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'VERIFICATION_FAILED', mismatches: [{ artifactPath: 'model.safetensors', reason: 'checksum' }] });
  });

  it('uploads a sharded fused model with its index', async () => {
    const modelDir = await writeShardedModel(await tempDir());
    const options = opts({ modelDir });
    const result = await publishToHub(options);
    expect(result.files.map((f) => f.path)).toEqual([
      'README.md',
      'config.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
    ]);
    for (const name of result.files.map((f) => f.path).filter((p) => p !== 'README.md')) {
      expect(sha256(await hubBytes(options.repoId, name)), name).toBe(sha256(await readFile(join(modelDir, name))));
    }
  });

  it('refuses an invalid model with the validation report, before any request', async () => {
    const modelDir = await tempDir();
    await writeFiles(modelDir, {
      'config.json': JSON.stringify({ model_type: 'llama' }),
      'model.safetensors': Buffer.concat([Buffer.from([0xff, 0xff, 0, 0, 0, 0, 0, 0]), Buffer.from('{}')]),
    });
    hub.clearLog();
    const error = await publishToHub(opts({ modelDir })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelValidationError);
    const report = (error as ModelValidationError).report as { overallValid: boolean; errors: string[]; checks: Record<string, boolean> };
    expect(report.overallValid).toBe(false);
    expect(report.checks.safetensorsHeadersValid).toBe(false);
    expect(report.errors.join('\n')).toContain('model.safetensors');

    const empty = await tempDir();
    await expect(publishToHub(opts({ modelDir: empty }))).rejects.toBeInstanceOf(ModelValidationError);
    expect(hub.requests).toEqual([]);
  });

  it('dry run: validates and converts, reports the exact files and sizes, makes no request', async () => {
    const modelDir = await writeMlxLoraModel(join(await tempDir(), 'dry_20240501_093000'));
    hub.clearLog();
    const options = opts({ modelDir, dryRun: true, accessToken: undefined, hubUrl: 'https://huggingface.co' });
    const dry = await publishToHub(options);
    expect(hub.requests).toEqual([]);
    expect(dry).toMatchObject({ status: 'dry-run', converted: true, repoUrl: `https://huggingface.co/${options.repoId}` });
    expect(dry.commitUrl).toBeUndefined();

    const real = await publishToHub({ ...options, dryRun: false, accessToken: hub.token, hubUrl: hub.url });
    // The same files and sizes; the real publish adds how each was verified.
    expect(real.files.map(({ path, size }) => ({ path, size }))).toEqual(dry.files);
    expect(real.bytes).toBe(dry.bytes);
  });

  it('takes the token from HF_TOKEN and the Hub from HF_ENDPOINT; needs a token otherwise', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    const result = await publishToHub({ ...opts({ modelDir }), accessToken: undefined, hubUrl: undefined, env: { HF_TOKEN: hub.token, HF_ENDPOINT: `${hub.url}/` } });
    expect(result.commitUrl?.startsWith(`${hub.url}/tester/`)).toBe(true);
    const missing = await publishToHub({ ...opts({ modelDir }), accessToken: undefined }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(InvalidArgumentError);
    expect((missing as InvalidArgumentError).argument).toBe('accessToken');
  });

  it('refuses the public Hub under vitest unless allowPublicHubInTests is set', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    hub.clearLog();
    for (const hubUrl of ['https://huggingface.co', 'https://hf.co/']) {
      await expect(publishToHub({ ...opts({ modelDir }), hubUrl })).rejects.toBeInstanceOf(PublicHubInTestError);
    }
    await expect(publishToHub({ ...opts({ modelDir }), hubUrl: undefined, env: { HF_ENDPOINT: 'https://huggingface.co', VITEST: 'true' } })).rejects.toBeInstanceOf(PublicHubInTestError);
    expect(hub.requests).toEqual([]);

    // Opted in, the request goes out (here to a fetch that refuses it, so nothing leaves the machine).
    const seen: string[] = [];
    const refusingFetch = (async (input: string | URL | Request) => {
      seen.push(String(input instanceof Request ? input.url : input));
      throw new TypeError('blocked by test');
    }) as typeof fetch;
    const error = await publishToHub({ ...opts({ modelDir }), hubUrl: 'https://huggingface.co', allowPublicHubInTests: true, fetch: refusingFetch, retry: { maxRetries: 0 } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HubError);
    expect(seen[0]).toMatch(/^https:\/\/huggingface\.co\/api\/models\//);
  });

  it('refuses the public Hub under vitest even when an injected env would hide the runner', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    // Should the guard let it through, the request goes to a fetch that refuses it: nothing leaves the machine.
    const seen: string[] = [];
    const refusingFetch = (async (input: string | URL | Request) => {
      seen.push(String(input instanceof Request ? input.url : input));
      throw new TypeError('blocked by test');
    }) as typeof fetch;
    const hiding = [
      { NODE_ENV: 'production' },
      { VITEST: 'false', VITEST_WORKER_ID: 'false', VITEST_POOL_ID: '', NODE_ENV: 'production', npm_lifecycle_event: 'build' },
    ];
    for (const env of hiding) {
      const error = await publishToHub({ ...opts({ modelDir }), hubUrl: 'https://huggingface.co', env, fetch: refusingFetch, retry: { maxRetries: 0 } }).catch((e: unknown) => e);
      expect(error, JSON.stringify(env)).toBeInstanceOf(PublicHubInTestError);
    }
    expect(seen).toEqual([]);
  });

  it('keeps the token out of errors and logs', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    const badToken = 'hf_thisTokenIsNotKnown42';
    const logger = captureLogger();
    const error = await publishToHub({ ...opts({ modelDir }), accessToken: badToken, logger }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HubError);
    expect((error as HubError).status).toBe(401);
    expect((error as HubError).message).toContain('HF_TOKEN');
    const everything = [(error as Error).message, JSON.stringify((error as HubError).toJSON()), ...logger.lines].join('\n');
    expect(everything).not.toContain(badToken);
  });

  it('refuses a Hub address that is not an http(s) URL before anything is done, without what is before an @', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    const refused = async (options: Partial<PublishToHubOptions>) =>
      (await publishToHub({ ...opts({ modelDir }), retry: { maxRetries: 0 }, ...options }).catch((e: unknown) => e)) as InvalidArgumentError;
    const noScheme = await refused({ hubUrl: 'localhost:8080' });
    expect(noScheme).toBeInstanceOf(InvalidArgumentError);
    expect(noScheme).toMatchObject({ argument: 'hubUrl', message: expect.stringContaining('hubUrl must be the Hub\'s http(s):// address, got "localhost:8080".') });
    const withToken = await refused({ hubUrl: undefined, env: { HF_ENDPOINT: 'me:hf_secretToken1@hub.internal:8080' } });
    expect(withToken).toMatchObject({ argument: 'HF_ENDPOINT', message: expect.stringContaining('got "***@hub.internal:8080"') });
    expect(JSON.stringify({ ...withToken.toJSON(), message: withToken.message })).not.toMatch(/secretToken|me:/);
    // A token with an @ of its own: a URL's userinfo ends at the last @, so all of it is hidden.
    const atInToken = await refused({ hubUrl: 'me:hf_sec@retToken1@hub.internal:8080' });
    expect(atInToken).toMatchObject({ message: expect.stringContaining('got "***@hub.internal:8080"') });
    expect(JSON.stringify({ ...atInToken.toJSON(), message: atInToken.message })).not.toContain('retToken1');
    // A dry run is refused the same way: it names the address it would publish to.
    expect(await refused({ hubUrl: 'ftp://hub.internal', dryRun: true })).toBeInstanceOf(InvalidArgumentError);
    // Credentials in the address: fetch refuses to send them (which looked like a Hub that does
    // not answer), and they would have been in repoUrl, commitUrl and the MLflow tags.
    for (const dryRun of [false, true]) {
      const withUserinfo = await refused({ hubUrl: hub.url.replace('://', '://bob:s3cretpass@'), dryRun });
      expect(withUserinfo, `dryRun=${dryRun}`).toBeInstanceOf(InvalidArgumentError);
      expect(withUserinfo).toMatchObject({ argument: 'hubUrl', message: expect.stringContaining('must not carry credentials') });
      expect(JSON.stringify({ ...withUserinfo.toJSON(), message: withUserinfo.message })).not.toMatch(/s3cretpass|bob/);
    }
  });

  it('a Hub that cannot be reached fails with a hint that says what to check, like every other HubError', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    // A port nothing listens on: the connection is refused, and no status comes back.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const error = await publishToHub({ ...opts({ modelDir }), hubUrl: `http://127.0.0.1:${port}`, retry: { maxRetries: 0 } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HubError);
    expect((error as HubError).status).toBeUndefined();
    expect((error as HubError).hint).toContain(`http://127.0.0.1:${port}`);
    expect((error as HubError).message).toContain((error as HubError).hint);
  });

  it('https:// to a plain-HTTP Hub fails at the first attempt, saying to use http://', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    // A plain-HTTP listener: the TLS handshake meets an HTTP answer. Counted per connection.
    let connections = 0;
    const sockets = new Set<Socket>();
    const plain = createServer((socket) => {
      connections++;
      sockets.add(socket);
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    });
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = plain.address() as AddressInfo;
      const error = await publishToHub({ ...opts({ modelDir }), hubUrl: `https://127.0.0.1:${port}`, retry: { maxRetries: 3, backoffFactor: 0.01 } }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HubError);
      expect(error).toMatchObject({ message: expect.stringContaining('the server did not answer in TLS'), hint: expect.stringContaining('use http:// instead of https://') });
      expect((error as Error).message).not.toContain('openssl');
      expect(connections).toBe(1);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => plain.close(resolve));
    }
  });

  it('a Hub certificate this machine does not trust: the hint names the settings publishToHub reads, not the MLflow variables', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    const untrusted = await startTestServer((_req, res) => void res.end('{}'), { tls: true });
    try {
      const error = await publishToHub({ ...opts({ modelDir }), hubUrl: untrusted.url, retry: { maxRetries: 0 } }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HubError);
      expect(error).toMatchObject({ message: expect.stringContaining("this machine does not trust the server's TLS certificate"), hint: expect.stringContaining('tls.caCertPath') });
      // publishToHub never reads them: setting them would change nothing.
      expect((error as HubError).hint).not.toMatch(/MLFLOW_TRACKING_/);
    } finally {
      await untrusted.close();
    }
  });

  it.each([
    ['caCertPath', 'no-such-ca.pem', "Point tls.caCertPath at a PEM CA bundle that signed the Hub's certificate."],
    ['clientCertPath', 'no-such-client.pem', 'Point tls.clientCertPath at one PEM file with the client certificate and its private key.'],
  ] as const)('a tls.%s that cannot be read is a ConfigError naming that option, not the MLflow variable (it was a bare ENOENT), and nothing reaches the Hub', async (option, file, hint) => {
    const modelDir = await writeFusedModel(await tempDir());
    const server = await startTestServer((_req, res) => void res.end('{}'), { tls: true });
    try {
      const missing = join(await tempDir(), file);
      const error = await publishToHub({ ...opts({ modelDir }), hubUrl: server.url, tls: { [option]: missing }, retry: { maxRetries: 3, backoffFactor: 0.01 } }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect(error).toMatchObject({ message: expect.stringContaining(`The certificate file ${missing} (tls.${option}) cannot be read.`), hint });
      expect((error as ConfigError).message).not.toMatch(/MLFLOW_TRACKING_/);
      expect(server.requests).toHaveLength(0);
    } finally {
      await server.close();
    }
  });

  it('a commit whose answer is lost after the Hub applied it does not become two commits', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    const options = opts({ modelDir });
    hub.createRepo(options.repoId);
    hub.clearLog();
    hub.dropResponseOfNext('commit');
    const result = await publishToHub(options);
    expect(result.status).toBe('published');
    expect(hub.commits(options.repoId).map((c) => c.oid)).toEqual([result.commitOid, hub.commits(options.repoId)[1]!.oid]);
    expect(hub.requests.filter((r) => r.route === 'commit')).toHaveLength(1);
  });

  it('a commit whose answer is lost for good hands back the publish id that finds it, so publishing again does not commit twice', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    const options = opts({ modelDir, retry: { maxRetries: 0 } });
    hub.createRepo(options.repoId);
    hub.dropResponseOfNext('commit');
    const error = (await publishToHub(options).catch((e: unknown) => e)) as HubError;
    expect(error).toBeInstanceOf(HubError);
    expect(hub.commits(options.repoId)).toHaveLength(2); // it landed
    expect(error.publishId).toMatch(/^[0-9a-f-]{36}$/);
    expect(error.hint).toContain(`idempotencyKey "${error.publishId}"`);
    expect(error.hint).not.toMatch(/nothing is committed twice/);
    expect(error.toJSON()).toMatchObject({ publishId: error.publishId });

    const again = await publishToHub({ ...options, idempotencyKey: error.publishId });
    expect(again).toMatchObject({ status: 'already-published', commitOid: hub.head(options.repoId) });
    expect(hub.commits(options.repoId)).toHaveLength(2);

    // The commit landed but listing it for verification keeps failing: the same.
    const unlisted = opts({ modelDir, retry: { maxRetries: 0 } });
    const fault = hub.addFault({ route: 'tree', action: 'status', status: 503, times: 100 });
    const listing = (await publishToHub(unlisted).catch((e: unknown) => e)) as HubError;
    fault.cancel();
    expect(listing).toBeInstanceOf(HubError);
    expect(hub.commits(unlisted.repoId)).toHaveLength(2);
    expect(listing.publishId).toMatch(/^[0-9a-f-]{36}$/);
    expect(listing.hint).toContain(`The commit is on the Hub (${hub.url}/${unlisted.repoId}/commit/${hub.head(unlisted.repoId)}), unverified`);
    expect(await publishToHub({ ...unlisted, idempotencyKey: listing.publishId })).toMatchObject({ status: 'already-published' });
    expect(hub.commits(unlisted.repoId)).toHaveLength(2);

    // With a key of the caller's, the caller knows it already: the error is as it was.
    const keyed = opts({ modelDir, retry: { maxRetries: 0 }, idempotencyKey: `job-${counter}` });
    hub.createRepo(keyed.repoId);
    hub.dropResponseOfNext('commit');
    expect(await publishToHub(keyed).catch((e: unknown) => e)).toMatchObject({ name: 'HubError', publishId: undefined });
    expect(await publishToHub(keyed)).toMatchObject({ status: 'already-published' });
  });

  it('a commit the Hub refused (a 4xx answer) keeps its own hint and hands back no publish id: it did not land', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    for (const [status, hint] of [
      [403, /no write access/],
      [400, undefined],
    ] as const) {
      const options = opts({ modelDir, retry: { maxRetries: 0 } });
      hub.createRepo(options.repoId);
      hub.addFault({ route: 'commit', action: 'status', status, message: 'Invalid metadata in README.md.' });
      const error = (await publishToHub(options).catch((e: unknown) => e)) as HubError;
      expect(error, String(status)).toBeInstanceOf(HubError);
      expect(error.status, String(status)).toBe(status);
      expect(hub.commits(options.repoId), String(status)).toHaveLength(1); // the repo's first commit only
      expect(error.publishId, String(status)).toBeUndefined();
      expect(error.hint ?? '', String(status)).not.toMatch(/idempotencyKey|may be on the Hub/);
      if (hint) expect(error.hint, String(status)).toMatch(hint);
    }
    // Refused after an attempt whose answer was lost: that one may still land, so the id is handed back.
    const options = opts({ modelDir, retry: { maxRetries: 1, backoffFactor: 0, backoffJitter: 0 } });
    hub.createRepo(options.repoId);
    hub.addFault({ route: 'commit', action: 'drop' });
    hub.addFault({ route: 'commit', action: 'status', status: 403 });
    const error = (await publishToHub(options).catch((e: unknown) => e)) as HubError;
    expect(error).toMatchObject({ name: 'HubError', status: 403, publishId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
  });

  it('a commit refused right after this publish created the repo says so (repoCreated) and that the repo is empty; publishing again reuses it', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    const options = opts({ modelDir, retry: { maxRetries: 0 } });
    hub.addFault({ route: 'commit', action: 'status', status: 400, message: 'Invalid metadata in README.md.' });
    const error = (await publishToHub(options).catch((e: unknown) => e)) as HubError;
    expect(error).toBeInstanceOf(HubError);
    expect(error).toMatchObject({ status: 400, repoCreated: true, publishId: undefined });
    expect(hub.commits(options.repoId)).toHaveLength(1); // the repo's initial commit: empty
    expect(error.hint).toContain(`${hub.url}/${options.repoId} was created by this publish and is still empty`);
    expect(error.toJSON()).toMatchObject({ repoCreated: true });
    // The repo is reused, not created again.
    const again = await publishToHub(options);
    expect(again).toMatchObject({ status: 'published', repoCreated: false });
    expect(hub.commits(options.repoId)).toHaveLength(2);

    // Refused before any commit was sent: a branch a new repo cannot have.
    const onBranch = opts({ modelDir, revision: 'dev', retry: { maxRetries: 0 } });
    const noBranch = (await publishToHub(onBranch).catch((e: unknown) => e)) as HubError;
    expect(noBranch).toMatchObject({ name: 'HubError', status: 404, hubErrorCode: 'RevisionNotFound', repoCreated: true });
    expect(noBranch.hint).toMatch(/^The branch does not exist: .* was created by this publish and is still empty/);
    // A commit that may have landed (no answer): the repo is named, not called empty.
    const unanswered = opts({ modelDir, retry: { maxRetries: 0 } });
    hub.addFault({ route: 'commit', action: 'status', status: 503 });
    const mayHaveLanded = (await publishToHub(unanswered).catch((e: unknown) => e)) as HubError;
    expect(mayHaveLanded).toMatchObject({ name: 'HubError', status: 503, repoCreated: true, publishId: expect.any(String) });
    expect(mayHaveLanded.hint).toContain(`idempotencyKey "${mayHaveLanded.publishId}"`);
    expect(mayHaveLanded.hint).toContain(`The repo ${hub.url}/${unanswered.repoId} was created by this publish.`);
    expect(mayHaveLanded.hint).not.toContain('empty');

    // A repo that was there before is not this publish's to mention.
    const existing = opts({ modelDir, retry: { maxRetries: 0 } });
    hub.createRepo(existing.repoId);
    hub.addFault({ route: 'commit', action: 'status', status: 400 });
    const refused = (await publishToHub(existing).catch((e: unknown) => e)) as HubError;
    expect(refused).toBeInstanceOf(HubError);
    expect(refused.repoCreated).toBeUndefined();
    expect(refused.hint ?? '').not.toContain('created by this publish');
  });

  it('a publish aborted while its commit request is out hands back the publish id that finds the commit if it lands', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    const options = opts({ modelDir });
    hub.createRepo(options.repoId);
    let release!: () => void;
    const held = hub.addFault({ route: 'commit', action: 'hold', until: new Promise<void>((r) => (release = r)) });
    const controller = new AbortController();
    const publishing = publishToHub({ ...options, signal: controller.signal }).catch((e: unknown) => e);
    // The commit's arrival at the stand-in is the event to wait for (no deadline).
    await held.hit;
    controller.abort();
    const error = (await publishing) as AbortedError;
    release(); // the Hub goes on with the commit it received
    await held.done;
    expect(error).toBeInstanceOf(AbortedError);
    expect(error.publishId).toMatch(/^[0-9a-f-]{36}$/);
    expect(error.hint).toContain(`idempotencyKey "${error.publishId}"`);
    expect(await publishToHub({ ...options, idempotencyKey: error.publishId })).toMatchObject({ status: 'already-published', commitOid: hub.head(options.repoId) });
    expect(hub.commits(options.repoId)).toHaveLength(2);
  });

  it('retries a commit refused with 503, 409 (commit in progress) and a lost request, still one commit', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    const options = opts({ modelDir });
    hub.createRepo(options.repoId);
    hub.clearLog();
    hub.failNext('commit', 1, 503);
    hub.addFault({ route: 'commit', action: 'status', status: 409, message: 'Another commit operation is in progress for this repository. Please try again later.' });
    hub.addFault({ route: 'commit', action: 'drop' });
    const result = await publishToHub(options);
    expect(hub.requests.filter((r) => r.route === 'commit').map((r) => r.status)).toEqual([503, 409, undefined, 200]);
    expect(hub.commits(options.repoId)).toHaveLength(2);
    expect(hub.head(options.repoId)).toBe(result.commitOid);
  });

  it('retries LFS uploads answered with 503', async () => {
    const modelDir = await writeMlxLoraModel(join(await tempDir(), 'lfs_20240501_093000'), { padBytes: 64 * 1024 }); // multipart
    const fusedDir = await writeFusedModel(await tempDir()); // basic
    hub.clearLog();
    hub.failNext('lfs-part', 2, 503);
    const lora = await publishToHub(opts({ modelDir }));
    hub.failNext('lfs-upload', 2, 503, { 'retry-after': '0' });
    const fused = await publishToHub(opts({ modelDir: fusedDir }));
    for (const result of [lora, fused]) {
      expect(hub.commits(result.repoId)).toHaveLength(2);
      for (const file of result.files) expect(hub.fileBytes(result.repoId, file.path)?.length).toBe(file.size);
    }
    expect(hub.requests.filter((r) => r.route === 'lfs-part' && r.status === 503)).toHaveLength(2);
    expect(hub.requests.filter((r) => r.route === 'lfs-upload' && r.status === 503)).toHaveLength(2);
  });

  it('waits as long as the Hub asks before a retry: Retry-After, and the RateLimit reset of a 429', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    const events: PublishProgressEvent[] = [];
    // No backoff of our own (opts): without the Hub's wait every retry would go at once.
    const options = opts({ modelDir, onProgress: (e) => events.push(e) });
    hub.createRepo(options.repoId);
    hub.clearLog();
    hub.failNext('commits', 1, 429, { 'retry-after': '1' });
    hub.failNext('commit', 1, 429, { ratelimit: '"api";r=0;t=0', 'ratelimit-policy': '"fixed window";"api";q=500;w=300' });
    const result = await publishToHub(options);
    expect(result.status).toBe('published');
    expect(hub.commits(options.repoId)).toHaveLength(2);
    const retries = events.flatMap((e) => (e.type === 'retry' ? [{ action: e.action, delayMs: e.delayMs }] : []));
    expect(retries).toEqual([
      { action: `list commits of ${options.repoId}@main`, delayMs: 1000 },
      { action: 'commit', delayMs: 1000 }, // t=0 plus the second huggingface_hub adds too
    ]);
    // The request after each 429 came no sooner (the event loop's timers run on a millisecond clock).
    for (const route of ['commits', 'commit'] as const) {
      const i = hub.requests.findIndex((r) => r.route === route && r.status === 429);
      expect(i, route).toBeGreaterThanOrEqual(0);
      expect(hub.requests[i + 1]!.at - hub.requests[i]!.at, route).toBeGreaterThanOrEqual(995);
    }
  });

  it('fails at once when the Hub asks for a longer wait than retry.maxRetryAfterMs', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    const options = opts({ modelDir });
    hub.createRepo(options.repoId);
    hub.clearLog();
    hub.failNext('commits', 1, 429, { 'retry-after': '3600' });
    const error = await publishToHub(options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HubError);
    expect(error).toMatchObject({ status: 429 });
    expect(hub.requests.filter((r) => r.route === 'commits')).toHaveLength(1);
    expect(hub.commits(options.repoId)).toHaveLength(1);
  });

  it('commits on top of a foreign commit that moved the branch (412), without losing it', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    const options = opts({ modelDir });
    hub.createRepo(options.repoId);
    let release!: () => void;
    hub.addFault({ route: 'preupload', action: 'hold', until: new Promise<void>((r) => (release = r)) });
    const publishing = publishToHub(options);
    while (!hub.requests.some((r) => r.route === 'preupload' && r.url.includes(options.repoId))) await new Promise((r) => setTimeout(r, 5));
    await uploadFiles({ repo: options.repoId, hubUrl: hub.url, accessToken: hub.token, useXet: false, files: [{ path: 'other.txt', content: new Blob(['someone else']) }] });
    release();
    const result = await publishing;
    const commits = hub.commits(options.repoId);
    expect(commits.map((c) => c.title)).toEqual(['Upload fused model with artifact-uploader', 'Add 1 files', 'initial commit']);
    expect(commits[0]!.oid).toBe(result.commitOid);
    expect(hub.files(options.repoId)).toContain('other.txt');
    expect(hub.requests.filter((r) => r.route === 'commit' && r.status === 412)).toHaveLength(1);
  });

  it('names the hidden folders it leaves out (.hydra/, .ipynb_checkpoints/) in one warning, but not .git/ or .cache/', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    await writeFiles(modelDir, {
      '.hydra/config.yaml': 'lr: 0.001\n',
      '.ipynb_checkpoints/eval-checkpoint.ipynb': '{}',
      'tokenizer/.hydra/overrides.yaml': '[]\n',
      'tokenizer/vocab.txt': 'a\nb\n',
      '.git/HEAD': 'ref: refs/heads/main\n',
      '.cache/huggingface/.gitignore': '*\n',
    });
    const logger = captureLogger();
    const options = opts({ modelDir, logger });
    const result = await publishToHub(options);
    expect(hub.files(options.repoId)).toEqual(['.gitattributes', 'README.md', 'config.json', 'model.safetensors', 'tokenizer/vocab.txt', 'tokenizer_config.json']);
    const warnings = result.warnings.filter((w) => w.includes('hidden folders'));
    expect(warnings).toEqual([`Left out of the upload, as hidden folders: ".hydra/", ".ipynb_checkpoints/", "tokenizer/.hydra/" (in ${modelDir}). huggingface_hub's upload_folder would send them; to publish a file of one, copy it to a folder whose name does not start with a dot.`]);
    expect(logger.lines.filter((line) => line.startsWith('warn ') && line.includes('hidden folders'))).toHaveLength(1);
    // The dry run says the same, before anything is sent.
    expect((await publishToHub(opts({ modelDir, dryRun: true }))).warnings).toContain(warnings[0]);

    // Many: a few named, the rest counted.
    const many = await writeFusedModel(await tempDir());
    await writeFiles(many, Object.fromEntries(Array.from({ length: 7 }, (_, i) => [`.run${i}/log.txt`, 'x\n'])));
    const manyWarning = (await publishToHub(opts({ modelDir: many, dryRun: true }))).warnings.find((w) => w.includes('hidden folders'));
    expect(manyWarning).toMatch(/^Left out of the upload, as hidden folders: "\.run0\/", "\.run1\/", "\.run2\/", "\.run3\/", "\.run4\/" and 2 more \(7 in all\) /);

    // Only .git/ and .cache/ (which upload_folder never sends either): no word.
    const plain = await writeFusedModel(await tempDir());
    await writeFiles(plain, { '.git/HEAD': 'ref: refs/heads/main\n', '.cache/huggingface/.gitignore': '*\n' });
    expect((await publishToHub(opts({ modelDir: plain, dryRun: true }))).warnings.filter((w) => w.includes('hidden folders'))).toEqual([]);
  });

  it('with an idempotencyKey, a publish already on the Hub is not uploaded again', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    const options = opts({ modelDir, idempotencyKey: 'training-42' });
    const first = await publishToHub(options);
    hub.clearLog();
    const second = await publishToHub(options);
    expect(second).toMatchObject({ status: 'already-published', commitOid: first.commitOid, commitUrl: first.commitUrl });
    expect(hub.requests.filter((r) => ['preupload', 'lfs-batch', 'commit'].includes(r.route))).toEqual([]);
    expect(hub.commits(options.repoId)).toHaveLength(2);
  });

  it('with an idempotencyKey, a commit whose answer was lost is found again by the next publish: one commit', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    const options = opts({ modelDir, idempotencyKey: 'job-42' });
    hub.createRepo(options.repoId);
    hub.dropResponseOfNext('commit');
    const first = await publishToHub(options);
    const second = await publishToHub(options);
    expect([first.status, second.status]).toEqual(['published', 'already-published']);
    expect(second.commitOid).toBe(first.commitOid);
    expect(hub.commits(options.repoId)).toHaveLength(2); // the repo's initial commit + ours
  });

  it('with an idempotencyKey, a call asking for another includeSensitiveFiles than the commit found by the key is refused before anything is sent', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    await writeFiles(modelDir, { '.env': 'HF_TOKEN=hf_leakedleakedleaked\n' });
    const sending = opts({ modelDir, idempotencyKey: 'job-env', includeSensitiveFiles: ['.env'] });
    const withEnv = await publishToHub(sending);
    expect(hub.files(sending.repoId)).toContain('.env');
    // The same key without `.env`: reported already published, its `files` said `.env` was not
    // sent, while the commit found holds it.
    hub.clearLog();
    const leavingOut = await publishToHub({ ...sending, includeSensitiveFiles: undefined }).catch((e: unknown) => e);
    expect(leavingOut).toBeInstanceOf(InvalidArgumentError);
    expect(leavingOut).toMatchObject({ argument: 'includeSensitiveFiles', message: expect.stringContaining(`commit ${withEnv.commitOid}, published with includeSensitiveFiles ".env", and this call asks for none`) });
    expect((leavingOut as InvalidArgumentError).message).toContain('Nothing was sent.');
    expect((leavingOut as InvalidArgumentError).hint).toContain('Pass includeSensitiveFiles [".env"]');
    expect(hub.requests.filter((r) => ['preupload', 'lfs-batch', 'commit'].includes(r.route))).toEqual([]);
    expect(hub.commits(sending.repoId)).toHaveLength(2);
    // The same set (in another order, repeated) finds it as before.
    expect(await publishToHub({ ...sending, includeSensitiveFiles: ['.env', '.env'] })).toMatchObject({ status: 'already-published', commitOid: withEnv.commitOid });

    // The other way round: `.env` asked for, the commit found left it out; `files` listed it as sent.
    const leaving = opts({ modelDir, idempotencyKey: 'job-no-env' });
    const withoutEnv = await publishToHub(leaving);
    expect(hub.files(leaving.repoId)).not.toContain('.env');
    hub.clearLog();
    const asking = await publishToHub({ ...leaving, includeSensitiveFiles: ['.env'] }).catch((e: unknown) => e);
    expect(asking).toMatchObject({ argument: 'includeSensitiveFiles', message: expect.stringContaining(`commit ${withoutEnv.commitOid}, published with includeSensitiveFiles none, and this call asks for ".env"`) });
    expect(hub.requests.filter((r) => ['preupload', 'lfs-batch', 'commit'].includes(r.route))).toEqual([]);
    expect(hub.files(leaving.repoId)).not.toContain('.env');
  });

  it('with an idempotencyKey, a commit that records no includeSensitiveFiles (an earlier version made it) is found with a warning naming the credential files not checked', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    await writeFiles(modelDir, { '.env': 'HF_TOKEN=hf_leakedleakedleaked\n' });
    const options = opts({ modelDir, idempotencyKey: 'job-legacy' });
    hub.createRepo(options.repoId);
    // What an earlier version wrote: the key's marker, and no record of the set.
    await uploadFiles({
      repo: options.repoId,
      hubUrl: hub.url,
      accessToken: hub.token,
      useXet: false,
      commitTitle: 'Upload fused model with artifact-uploader',
      commitDescription: 'Published by artifact-uploader 0.9.0.\n\nartifact-uploader-publish-id: job-legacy',
      files: [{ path: 'config.json', content: new Blob(['{}']) }],
    });
    hub.clearLog();

    const found = await publishToHub(options);

    expect(found).toMatchObject({ status: 'already-published', commitOid: hub.head(options.repoId) });
    const warning = found.warnings.find((w) => w.includes('was not checked'));
    expect(warning).toContain(`Publish "job-legacy" was found on the Hub as commit ${found.commitOid}, which does not record which credential files it was published with`);
    expect(warning).toContain('leaves out ".env"');
    expect(hub.requests.filter((r) => ['preupload', 'lfs-batch', 'commit'].includes(r.route))).toEqual([]);
  });

  it('records the publish\'s includeSensitiveFiles in the commit description, next to its key', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    await writeFiles(modelDir, { '.env': 'HF_TOKEN=hf_leakedleakedleaked\n' });
    const none = opts({ modelDir, idempotencyKey: 'job-record-none' });
    await publishToHub(none);
    expect(hub.commits(none.repoId)[0]!.message).toContain('artifact-uploader-include-sensitive: []\n\nartifact-uploader-publish-id: job-record-none');
    const one = opts({ modelDir, includeSensitiveFiles: ['.env'] });
    await publishToHub(one);
    expect(hub.commits(one.repoId)[0]!.message).toContain('artifact-uploader-include-sensitive: [".env"]');
  });

  it('refuses an idempotencyKey with whitespace at an edge or a control character, before any request', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    hub.clearLog();
    // Each of these was accepted, written into the commit and never found again: a lost commit
    // answer then meant a second commit of the same model.
    for (const key of ['job-42 ', ' job-42', 'job-42\t', 'job-42\u00a0', 'job-42\r', 'job-42\n', 'job\u000042', 'job-42\u2028', '']) {
      const error = await publishToHub(opts({ modelDir, idempotencyKey: key })).catch((e: unknown) => e);
      expect(error, JSON.stringify(key)).toBeInstanceOf(InvalidArgumentError);
      expect(error, JSON.stringify(key)).toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'idempotencyKey' });
      if (key !== '') expect((error as InvalidArgumentError).hint, JSON.stringify(key)).toMatch(/trimmed, on one line/);
    }
    expect(hub.requests).toEqual([]);
    expect(hub.store.get('model', 'tester/never')).toBeUndefined();
  });

  it('reports a failed MLflow tag as a warning, the publish still succeeds', async () => {
    const modelDir = await writeFusedModel(await tempDir());
    const result = await publishToHub(
      opts({
        modelDir,
        runId: 'r1',
        tagRun: async () => {
          throw new Error('mlflow down');
        },
      }),
    );
    expect(result.status).toBe('published');
    expect(result.mlflowTagged).toBe(false);
    expect(result.warnings.join('\n')).toContain('mlflow down');
  });
});

describe('retryAfterMsOf', () => {
  it('reads Retry-After in seconds or as an HTTP date, and the RateLimit reset of a 429 with no request left', () => {
    const now = Date.parse('2024-05-01T09:30:00Z');
    expect(retryAfterMsOf(503, new Headers({ 'retry-after': '30' }), now)).toBe(30_000);
    expect(retryAfterMsOf(429, new Headers({ 'retry-after': 'Wed, 01 May 2024 09:30:12 GMT' }), now)).toBe(12_000);
    expect(retryAfterMsOf(429, new Headers({ ratelimit: '"api";r=0;t=55' }), now)).toBe(56_000);
    // The RateLimit reset wins on a 429 with nothing left; otherwise Retry-After speaks.
    expect(retryAfterMsOf(429, new Headers({ ratelimit: '"api";r=0;t=55', 'retry-after': '5' }), now)).toBe(56_000);
    expect(retryAfterMsOf(429, new Headers({ ratelimit: '"api";r=3;t=55', 'retry-after': '5' }), now)).toBe(5_000);
    expect(retryAfterMsOf(503, new Headers({ ratelimit: '"api";r=0;t=55' }), now)).toBeUndefined();
    expect(retryAfterMsOf(429, new Headers({ 'retry-after': 'soon' }), now)).toBeUndefined();
    expect(retryAfterMsOf(500, new Headers(), now)).toBeUndefined();
  });
});

describe('hasMarker', () => {
  const commit = (message: string) => ({ title: 'Upload fused model with artifact-uploader', message });

  it('matches the marker line exactly, key edges included', () => {
    expect(hasMarker(commit('Published by artifact-uploader 1.0.0.\n\nartifact-uploader-publish-id: job-42 '), 'job-42 ')).toBe(true);
    expect(hasMarker(commit('artifact-uploader-publish-id: job-42\t'), 'job-42\t')).toBe(true);
    expect(hasMarker(commit('artifact-uploader-publish-id: job-42'), 'job-4')).toBe(false);
    expect(hasMarker(commit('artifact-uploader-publish-id: job-4'), 'job-42')).toBe(false);
    expect(hasMarker(commit('artifact-uploader-publish-id: job-42'), 'JOB-42')).toBe(false);
  });

  it('still finds markers as earlier versions wrote and compared them (whitespace around the line)', () => {
    expect(hasMarker(commit('Published by artifact-uploader 0.9.0.\n\nartifact-uploader-publish-id: job-42'), 'job-42')).toBe(true);
    expect(hasMarker(commit('MLflow run: r1\r\n\r\nartifact-uploader-publish-id: job-42\r\n'), 'job-42')).toBe(true);
    expect(hasMarker(commit('  artifact-uploader-publish-id: job-42  '), 'job-42')).toBe(true);
    expect(hasMarker({ title: 'artifact-uploader-publish-id: job-42', message: '' }, 'job-42')).toBe(true);
  });
});

describeWithPython('publishToHub, read back with Python huggingface_hub', () => {
  it("leaves out every file huggingface_hub's upload_folder leaves out by default (.git, .cache/huggingface), Git pointer files and hidden folders included", async () => {
    const modelDir = await writeFusedModel(await tempDir());
    await writeFiles(modelDir, {
      // A git worktree (or submodule) checkout has a `.git` FILE pointing at the real repository.
      '.git': 'gitdir: /home/me/src/models/.git/worktrees/run-7\n',
      'tokenizer/.git': 'gitdir: ../../.git/modules/tokenizer\n',
      'tokenizer/vocab.txt': 'a\nb\n',
      // What hf_hub_download(local_dir=...) leaves beside the files it downloads.
      '.cache/huggingface/.gitignore': '*\n',
      '.cache/huggingface/download/model.safetensors.metadata': 'abc\n1234\n',
      'tokenizer/.cache/huggingface/download/vocab.txt.metadata': 'def\n',
      '.ipynb_checkpoints/eval-checkpoint.ipynb': '{}',
      '.DS_Store': Buffer.from([0, 0, 0, 1, 66, 117, 100, 49]),
      '.gitattributes': '*.safetensors filter=lfs diff=lfs merge=lfs -text\n',
    });
    const expected = ['.gitattributes', 'README.md', 'config.json', 'model.safetensors', 'tokenizer/vocab.txt', 'tokenizer_config.json'];
    const dryRun = await publishToHub(opts({ modelDir, dryRun: true }));
    expect(dryRun.files.map((f) => f.path)).toEqual(expected);
    const options = opts({ modelDir });
    const result = await publishToHub(options);
    expect(result.files.map((f) => f.path)).toEqual(expected);
    const tree: string[] = [];
    for await (const entry of listFiles({ repo: options.repoId, recursive: true, hubUrl: hub.url, accessToken: hub.token })) if (entry.type === 'file') tree.push(entry.path);
    expect(tree.sort()).toEqual(expected);

    // Everything huggingface_hub's own default leaves out of upload_folder, we leave out too.
    const script = `
import json, os, sys
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects
root = sys.argv[1]
paths = sorted(os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/") for d, _, fs in os.walk(root) for f in fs)
print(json.dumps({"all": paths, "kept": list(filter_repo_objects(paths, ignore_patterns=DEFAULT_IGNORE_PATTERNS))}))
`;
    const stdout = await runPython(script, { args: [modelDir] });
    const python = JSON.parse(stdout.trim().split('\n').pop()!) as { all: string[]; kept: string[] };
    const ignoredByPython = python.all.filter((path) => !python.kept.includes(path));
    expect(ignoredByPython).toEqual(expect.arrayContaining(['.git', 'tokenizer/.git', '.cache/huggingface/.gitignore', 'tokenizer/.cache/huggingface/download/vocab.txt.metadata']));
    for (const path of ignoredByPython) expect(tree, path).not.toContain(path);
  });

  it("refuses a file named .cache, as huggingface_hub's upload_folder does, before any byte is sent", async () => {
    const modelDir = await writeFusedModel(await tempDir());
    await writeFiles(modelDir, { '.cache': 'not a folder\n', 'tokenizer/.cache': 'x\n', 'tokenizer/vocab.txt': 'a\nb\n' });

    // huggingface_hub refuses the whole upload_folder (`_validate_path_in_repo` as it builds the
    // commit operations), before asking the Hub anything.
    hub.clearLog();
    const script = `
import sys
from huggingface_hub import HfApi
try:
    HfApi(endpoint=sys.argv[1], token=sys.argv[2]).upload_folder(repo_id=sys.argv[3], folder_path=sys.argv[4])
    print("uploaded")
except ValueError as error:
    print("refused: " + str(error))
`;
    const python = await runPython(script, { args: [hub.url, hub.token, newRepo(), modelDir], env: { HF_HOME: await tempDir('au-hf-home-'), HF_TOKEN: '' } });
    expect(python.trim().split('\n').pop()).toMatch(/^refused: .*cannot update files under a '\.cache\/' folder/);
    expect(hub.requests).toEqual([]);

    for (const dryRun of [true, false]) {
      const options = opts({ modelDir, dryRun });
      const refused = await publishToHub(options).catch((e: unknown) => e);
      expect(refused, `dryRun ${dryRun}`).toBeInstanceOf(InvalidArgumentError);
      expect(refused).toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'modelDir', message: expect.stringContaining('".cache", "tokenizer/.cache"') });
      expect((refused as InvalidArgumentError).hint).toMatch(/Rename or remove/);
      expect(hub.head(options.repoId)).toBeUndefined();
    }
    expect(hub.requests).toEqual([]);
  });

  it('leaves credential files (.env, .netrc, .npmrc, credentials, private keys) out of the upload with a warning naming each, unless included by path', async () => {
    const privateKey = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n';
    const modelDir = await writeFusedModel(await tempDir());
    await writeFiles(modelDir, {
      '.env': 'HF_TOKEN=hf_leakedleakedleaked\n',
      '.env.local': 'AWS_SECRET_ACCESS_KEY=abc\n',
      '.env.example': 'HF_TOKEN=\n',
      '.netrc': 'machine huggingface.co login me password hf_leaked\n',
      '.npmrc': '//registry.npmjs.org/:_authToken=npm_leaked\n',
      'aws/credentials': '[default]\naws_secret_access_key = leaked\n',
      'deploy/id_rsa': privateKey,
      'deploy/id_rsa.pub': 'ssh-ed25519 AAAA me@host\n',
      'tls/server.pem': '-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n',
      'tls/ca.pem': '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
      '.gitattributes': '*.safetensors filter=lfs diff=lfs merge=lfs -text\n',
      '.gitignore': '.env\n',
    });
    const leftOut = ['.env', '.env.local', '.netrc', '.npmrc', 'aws/credentials', 'deploy/id_rsa', 'tls/server.pem'];
    const expected = ['.env.example', '.gitattributes', '.gitignore', 'README.md', 'config.json', 'deploy/id_rsa.pub', 'model.safetensors', 'tls/ca.pem', 'tokenizer_config.json'];

    // huggingface_hub's upload_folder would send every one of them: its default ignore patterns keep them.
    const script = `
import json, os, sys
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects
root = sys.argv[1]
paths = sorted(os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/") for d, _, fs in os.walk(root) for f in fs)
print(json.dumps(list(filter_repo_objects(paths, ignore_patterns=DEFAULT_IGNORE_PATTERNS))))
`;
    expect(JSON.parse((await runPython(script, { args: [modelDir] })).trim().split('\n').pop()!)).toEqual(expect.arrayContaining(leftOut));

    const dryRun = await publishToHub(opts({ modelDir, dryRun: true }));
    expect(dryRun.files.map((f) => f.path)).toEqual(expected);
    const warning = dryRun.warnings.find((w) => w.startsWith('Left out of the upload'));
    for (const path of leftOut) expect(warning, path).toContain(JSON.stringify(path));
    expect(warning).toContain('includeSensitiveFiles');
    expect(warning).not.toMatch(/leaked|abc/);

    const logger = captureLogger();
    const options = opts({ modelDir, logger });
    const result = await publishToHub(options);
    expect(result.files.map((f) => f.path)).toEqual(expected);
    expect(result.warnings).toContain(warning);
    expect(logger.lines.filter((line) => line.startsWith('warn Left out of the upload'))).toHaveLength(1);
    const tree = `
import json, sys
from huggingface_hub import HfApi
print(json.dumps(sorted(HfApi(endpoint=sys.argv[1], token=sys.argv[2]).list_repo_files(sys.argv[3]))))
`;
    const readBack = async (repoId: string) =>
      JSON.parse((await runPython(tree, { args: [hub.url, hub.token, repoId], env: { HF_HOME: await tempDir('au-hf-home-'), HF_TOKEN: '' } })).trim().split('\n').pop()!) as string[];
    expect(await readBack(options.repoId)).toEqual(expected);

    // Meant to be published: named by its path, that file (and only it) goes up.
    const including = opts({ modelDir, includeSensitiveFiles: ['tls/server.pem'] });
    const withPem = await publishToHub(including);
    expect(await readBack(including.repoId)).toEqual([...expected, 'tls/server.pem'].sort());
    expect(withPem.warnings.find((w) => w.startsWith('Left out of the upload'))).not.toContain('tls/server.pem');
    expect(await publishToHub(opts({ modelDir, includeSensitiveFiles: '.env' as unknown as string[], dryRun: true })).catch((e: unknown) => e)).toBeInstanceOf(InvalidArgumentError);
    // A path that names no file of the model directory (a typo, a path with the folder's name
    // in front) is refused before anything is sent: the file meant would be left out unseen.
    const typo = opts({ modelDir, includeSensitiveFiles: ['tls/server.pem', 'model/tls/server.pem', 'tls\\server.pem'] });
    const refused = await publishToHub(typo).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InvalidArgumentError);
    expect(refused).toMatchObject({ argument: 'includeSensitiveFiles', message: expect.stringContaining('"model/tls/server.pem", "tls\\\\server.pem"') });
    expect((refused as InvalidArgumentError).hint).toMatch(/relative to the model directory, `\/`-separated, as the dry run lists them/);
    expect(hub.head(typo.repoId)).toBeUndefined();
  });

  it("refuses the repo ids huggingface_hub's validate_repo_id refuses, and accepts the ones it accepts", async () => {
    const script = `
import json, sys
from huggingface_hub.utils import validate_repo_id, HFValidationError
out = {}
for repo_id in json.loads(sys.argv[1]):
    try:
        validate_repo_id(repo_id)
        out[repo_id] = True
    except HFValidationError:
        out[repo_id] = False
print(json.dumps(out))
`;
    // Python accepts a bare name (a canonical model); publishToHub needs the namespace it creates the repo in.
    const ours = REFUSED_REPO_IDS.filter((id) => id.includes('/'));
    const stdout = await runPython(script, { args: [JSON.stringify([...ours, ...ACCEPTED_REPO_IDS])] });
    const verdicts = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, boolean>;
    for (const id of ours) expect(verdicts[id], id).toBe(false);
    for (const id of ACCEPTED_REPO_IDS) expect(verdicts[id], id).toBe(true);
  });

  it('downloads the bytes that were published (fused) and loads the converted adapter with safetensors', async () => {
    const fusedDir = await writeFusedModel(await tempDir());
    const fused = await publishToHub(opts({ modelDir: fusedDir }));
    const loraDir = await writeMlxLoraModel(join(await tempDir(), 'py_20240501_093000'));
    const lora = await publishToHub(opts({ modelDir: loraDir }));
    const script = `
import hashlib, json, sys
from huggingface_hub import HfApi
from safetensors import safe_open
api = HfApi(endpoint=sys.argv[1], token=sys.argv[2])
out = {"fused": {}, "lora": {}}
for name in api.list_repo_files(sys.argv[3]):
    out["fused"][name] = hashlib.sha256(open(api.hf_hub_download(repo_id=sys.argv[3], filename=name), 'rb').read()).hexdigest()
path = api.hf_hub_download(repo_id=sys.argv[4], filename="adapter_model.safetensors")
with safe_open(path, framework="numpy") as f:
    for key in f.keys():
        out["lora"][key] = list(f.get_tensor(key).shape)
print(json.dumps(out))
`;
    const stdout = await runPython(script, {
      args: [hub.url, hub.token, fused.repoId, lora.repoId],
      env: { HF_HOME: await tempDir('au-hf-home-'), HF_HUB_DISABLE_XET: '1', HF_TOKEN: '' },
    });
    const out = JSON.parse(stdout.trim().split('\n').pop()!) as { fused: Record<string, string>; lora: Record<string, number[]> };
    for (const name of ['config.json', 'model.safetensors', 'tokenizer_config.json']) {
      expect(out.fused[name], name).toBe(sha256(await readFile(join(fusedDir, name))));
    }
    expect(out.lora['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight']).toEqual([4, 16]);
    expect(out.lora['base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight']).toEqual([16, 4]);
  });
});
