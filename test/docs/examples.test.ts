/**
 * Every ```ts example in README.md, docs/*.md and docs/stages/*.md is type-checked against the
 * built declarations (dist/index.d.ts) and run against the built package (dist/index.js), each
 * in a fresh working directory with no server configured (so `./mlruns` is the store). A marker
 * right before an example changes that:
 *
 *   <!-- example: typecheck (why it cannot run here, e.g. needs a server) -->   type-check only
 *   <!-- example: skip (why) -->                                                neither
 *
 * The working directory holds the files the docs name (`out/checkpoint-100`, `out/model.onnx`,
 * `~/fine-tuned/llama-lora_*` with HOME pointing there, ...), built below, so the examples read
 * as users would write them. `npm test` builds before vitest runs.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSafetensors, tensor, writeMlxLoraDir } from '../model/fixtures.js';
import { typecheckExamples } from './typecheck.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const distJs = join(root, 'dist', 'index.js');
const distDts = join(root, 'dist', 'index.d.ts');
const runner = fileURLToPath(new URL('./run-examples.mjs', import.meta.url));

interface Example {
  /** `docs/cli.md:42` (the line of the fence). */
  id: string;
  mode: 'run' | 'typecheck' | 'skip';
  /** The reason given in the marker. */
  reason?: string;
  code: string;
}

/** The markdown files whose examples are checked. */
function markdownFiles(): string[] {
  const docs = join(root, 'docs');
  const stages = join(docs, 'stages');
  return [
    join(root, 'README.md'),
    ...readdirSync(docs).filter((f) => f.endsWith('.md')).sort().map((f) => join(docs, f)),
    ...(existsSync(stages) ? readdirSync(stages).filter((f) => f.endsWith('.md')).sort().map((f) => join(stages, f)) : []),
  ];
}

/** Every ```ts block (indented ones inside lists too), with the marker on the line before it. */
function extractExamples(file: string, markdown: string): Example[] {
  const lines = markdown.split('\n');
  const examples: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(ts|typescript)\s*$/.exec(lines[i]!);
    if (!open) {
      if (/^\s*```/.test(lines[i]!)) {
        // Skip over any other fenced block so its contents are never read as fences.
        const indent = /^(\s*)/.exec(lines[i]!)![1]!;
        for (i++; i < lines.length && !new RegExp(`^${indent}\`\`\`\\s*$`).test(lines[i]!); i++);
      }
      continue;
    }
    const indent = open[1]!;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !new RegExp(`^${indent}\`\`\`\\s*$`).test(lines[j]!); j++) body.push(lines[j]!.slice(indent.length));
    let k = i - 1;
    while (k >= 0 && lines[k]!.trim() === '') k--;
    const marker = k >= 0 ? /^\s*<!--\s*example:\s*(skip|typecheck)\b\s*(?:\((.*)\))?\s*-->\s*$/.exec(lines[k]!) : null;
    examples.push({
      id: `${relative(root, file)}:${i + 1}`,
      mode: (marker?.[1] as Example['mode'] | undefined) ?? 'run',
      reason: marker?.[2],
      code: body.join('\n'),
    });
    i = j;
  }
  return examples;
}

/** The files the docs' examples refer to, copied into each example's working directory. */
function buildTemplate(dir: string): void {
  const file = (path: string, content: string | Uint8Array) => {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  };
  const weights = encodeSafetensors([tensor('model.layers.0.self_attn.q_proj.weight', 'F32', [16, 16], 1)], { metadata: { format: 'pt' }, pad: true });
  for (const checkpoint of ['out/checkpoint-100', 'out/checkpoint-500', 'outputs/checkpoint-1000', 'runs/trial-7/checkpoint-1200', 'sweep/trial-17/checkpoint']) {
    file(`${checkpoint}/model.safetensors`, weights);
    file(`${checkpoint}/trainer_state.json`, JSON.stringify({ global_step: 100 }));
    file(`${checkpoint}/optimizer/state.pt`, Buffer.alloc(512, 1));
  }
  for (const metrics of ['out/metrics.json', 'outputs/metrics.json']) file(metrics, JSON.stringify({ eval_loss: 0.41 }));
  file('out/model.onnx', Buffer.from('onnx-like bytes'));
  file('results/latency.json', JSON.stringify({ p50_ms: 41 }));
  file('results/accuracy.csv', 'task,acc\na,0.9\n');
  file('configs/artifact-uploader.yaml', 'training:\n  metrics:\n    enabled: false\n');
  file('out/half-written/adapters/adapters.safetensors', weights);
  // MLX LoRA adapters: a training output in out/, two in ~/fine-tuned (HOME is the working
  // directory), and a bare adapters/ directory.
  writeMlxLoraDir(join(dir, 'out'), 'llama-lora_20240501_093000');
  mkdirSync(join(dir, 'fine-tuned'));
  writeMlxLoraDir(join(dir, 'fine-tuned'), 'llama-lora_20240401_120000');
  writeMlxLoraDir(join(dir, 'fine-tuned'), 'llama-lora_20240501_093000');
  writeMlxLoraDir(dir, 'adapters', { topLevel: true });
}

let work: string;
let examples: Example[];

beforeAll(() => {
  expect(existsSync(distJs) && existsSync(distDts), 'dist/ is missing: run `npm run build` first (npm test does it)').toBe(true);
  work = mkdtempSync(join(tmpdir(), 'au-doc-examples-'));
  examples = markdownFiles().flatMap((file) => extractExamples(file, readFileSync(file, 'utf8')));
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('examples in the docs', () => {
  it('are found, and every skip or type-check-only marker gives its reason', () => {
    expect(examples.length).toBeGreaterThan(20);
    for (const example of examples.filter((e) => e.mode !== 'run')) {
      expect(example.reason?.trim(), `${example.id}: say why in the marker, e.g. <!-- example: ${example.mode} (needs a server) -->`).toBeTruthy();
    }
    // Skips are for type listings and sketches; keep them rare.
    expect(examples.filter((e) => e.mode === 'skip').length).toBeLessThanOrEqual(Math.ceil(examples.length / 5));
  });

  it('type-check against the built declarations', () => {
    const checked = examples.filter((e) => e.mode !== 'skip');
    expect(typecheckExamples(checked, join(work, 'typecheck'), root)).toEqual([]);
  });

  it('run against the built package, each in a fresh working directory with ./mlruns as the store', async () => {
    const runnable = examples.filter((e) => e.mode === 'run');
    const template = join(work, 'template');
    mkdirSync(template);
    buildTemplate(template);
    const blocksDir = join(work, 'blocks');
    mkdirSync(blocksDir);
    const library = pathToFileURL(distJs).href;
    const blocks = runnable.map((example, n) => {
      const source = example.code.replace(/(from\s+|import\s*\(\s*)(['"])artifact-uploader\2/g, `$1'${library}'`);
      const js = ts.transpileModule(source, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } }).outputText;
      const file = join(blocksDir, `example-${String(n).padStart(3, '0')}.mjs`);
      writeFileSync(file, js);
      return { id: example.id, file };
    });
    const planPath = join(work, 'plan.json');
    const resultsPath = join(work, 'results.json');
    writeFileSync(planPath, JSON.stringify({ template, library, timeoutMs: 20_000, blocks }));
    // No server, no run: the embedded ./mlruns of each working directory, and no retry waits.
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, USER: 'docs-examples', MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0', NODE_NO_WARNINGS: '1' };
    const { stderr } = await new Promise<{ stderr: string }>((resolve, reject) =>
      execFile(process.execPath, [runner, planPath, resultsPath], { env, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (error, _stdout, stderr) =>
        error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve({ stderr }),
      ),
    );
    const results = JSON.parse(readFileSync(resultsPath, 'utf8')) as Array<{ id: string; ok: boolean; error?: string; output: string }>;
    expect(results.map((r) => r.id)).toEqual(runnable.map((e) => e.id));
    const failures = results.filter((r) => !r.ok).map((r) => `${r.id}: ${r.error}\n--- output ---\n${r.output}`);
    expect(failures, stderr).toEqual([]);
  });
});
