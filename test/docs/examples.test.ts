/**
 * Every ```ts and ```js example in README.md and docs/ (every .md below it, docs/api aside) is
 * run against the built package (dist/index.js), each in a fresh working directory with no
 * MLflow server configured (so `./mlruns` is the store) and a local Hub stand-in as
 * HF_ENDPOINT with a write token as HF_TOKEN (so publishing examples publish for real). The
 * ```ts ones are also type-checked against the built declarations (dist/index.d.ts).
 *
 * THE RULES FOR AN EXAMPLE (new pages, e.g. docs/azure.md, follow them too):
 * - It runs as written. Files it names (`out/checkpoint-100`, `out/model.onnx`, ...) are in its
 *   working directory (buildTemplate below; add yours there). A first line
 *   `// publish.mjs: node publish.mjs <args>` gives it those command-line arguments.
 * - An upload must succeed: the harness sees every result the library returns, and any
 *   `UploadResult` with `status: 'failed'` fails the example (the default `onError: 'return'`
 *   would otherwise hide it). Checking `result.status === 'uploaded'` in the text is good too.
 * - A block that needs what the harness cannot give it (an Azure account, a GCS bucket, a
 *   remote registry, a real Hub) says so with a marker on the line right before its fence:
 *
 *     <!-- example: typecheck (needs an Azure storage account) -->   type-check only
 *     <!-- example: skip (a type listing, not a program) -->          neither (keep these rare)
 *
 *   The reason in parentheses is required. A ```js block cannot be type-checked: it runs, or
 *   is skipped with a reason.
 *
 * A failed example is reported with its output, the Hub stand-in's requests made while it ran
 * (each with its answer), those that got none (still waiting, or their connection closed), and,
 * when it timed out, what its process still waited on (connections, timers, file system
 * requests): a hang shows whether it waits for the stand-in or for something of its own.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSafetensors, tensor, writeMlxLoraDir } from '../model/fixtures.js';
import { startFakeHub, type FakeHub } from '../support/fake-hub/index.js';
import { tempDirEnv } from '../support/run-temp-root.js';
import { typecheckExamples } from './typecheck.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const distJs = join(root, 'dist', 'index.js');
const distDts = join(root, 'dist', 'index.d.ts');
const runner = fileURLToPath(new URL('./run-examples.mjs', import.meta.url));
const observer = fileURLToPath(new URL('./observe-results.mjs', import.meta.url));

interface Example {
  /** `docs/cli.md:42` (the line of the fence). */
  id: string;
  mode: 'run' | 'typecheck' | 'skip';
  /** The reason given in the marker. */
  reason?: string;
  language: 'ts' | 'js';
  code: string;
}

/** The markdown files whose examples are checked: README.md and every .md below docs/ (but docs/api, generated). */
function markdownFiles(): string[] {
  const docs = join(root, 'docs');
  const below = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true })
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .flatMap((entry) => {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) return path === join(docs, 'api') ? [] : below(path);
        return entry.name.endsWith('.md') ? [path] : [];
      });
  return [join(root, 'README.md'), ...below(docs)];
}

/** Every ```ts and ```js block (indented ones inside lists too), with the marker on the line before it. */
function extractExamples(file: string, markdown: string): Example[] {
  const lines = markdown.split('\n');
  const examples: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(ts|typescript|js|javascript|mjs)\s*$/.exec(lines[i]!);
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
      language: open[2]!.startsWith('t') ? 'ts' : 'js',
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
let hub: FakeHub;
const DOCS_HUB_TOKEN = 'hf_docsExamplesWriteToken0123';

beforeAll(async () => {
  // The docs publish as `me` to `my-org/...`: a write token for that user and org.
  hub = await startFakeHub({ tokens: [{ token: DOCS_HUB_TOKEN, user: 'me', orgs: ['my-org'] }] });
  expect(existsSync(distJs) && existsSync(distDts), 'dist/ is missing: run `npm run build` first (npm test does it)').toBe(true);
  work = mkdtempSync(join(tmpdir(), 'au-doc-examples-'));
  examples = markdownFiles().flatMap((file) => extractExamples(file, readFileSync(file, 'utf8')));
});

afterAll(async () => {
  await hub?.stop();
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
    for (const example of examples.filter((e) => e.language === 'js' && e.mode === 'typecheck')) {
      throw new Error(`${example.id}: a js block cannot be type-checked; let it run, make it ts, or skip it with a reason`);
    }
    const checked = examples.filter((e) => e.mode !== 'skip' && e.language === 'ts');
    expect(typecheckExamples(checked, join(work, 'typecheck'), root)).toEqual([]);
  });

  it('run against the built package, each in a fresh working directory with ./mlruns as the store', async () => {
    const runnable = examples.filter((e) => e.mode === 'run');
    const { results, stderr } = await runExamples(runnable, 'docs');
    expect(results.map((r) => r.id)).toEqual(runnable.map((e) => e.id));
    const failures = results.filter((r) => !r.ok).map(failureReport);
    expect(failures, stderr).toEqual([]);
  });

  it('the harness fails an example whose upload returns a failed result, even when it checks nothing', async () => {
    const code = (body: string) => `import { ArtifactUploader } from 'artifact-uploader';\n${body}`;
    const unreachable = `new ArtifactUploader({ stage: 'conversion', trackingUri: 'http://127.0.0.1:9', runId: '${'a'.repeat(32)}' })`;
    const probes: Example[] = [
      { id: 'probe:failed', mode: 'run', language: 'js', code: code(`await ${unreachable}.uploadFile('out/model.onnx');`) },
      { id: 'probe:ok', mode: 'run', language: 'ts', code: code(`const r = await new ArtifactUploader({ stage: 'conversion' }).uploadFile('out/model.onnx', { runId: undefined });\nconsole.log(r.status);`) },
    ];
    const { results } = await runExamples(probes, 'probes');
    expect(results.map((r) => [r.id, r.ok])).toEqual([
      ['probe:failed', false],
      ['probe:ok', true],
    ]);
    expect(results[0]!.error).toMatch(/ArtifactUploader\.uploadFile returned a failed result/);
  });

  it('the harness reports what a stuck example waits for: the Hub request without an answer and its open connection', async () => {
    // The stand-in holds the repo check of `my-org/probe-held` until the end; once it has the
    // request, the test stops the example (SIGUSR2) instead of waiting for its timeout.
    let release!: () => void;
    const held = hub.addFault({ route: 'repo-info', path: /probe-held/, action: 'hold', until: new Promise<void>((resolve) => (release = resolve)) });
    const probe: Example = {
      id: 'probe:held',
      mode: 'run',
      language: 'js',
      code: `import { publishToHub } from 'artifact-uploader';\nawait publishToHub({ modelDir: 'out/llama-lora_20240501_093000', repoId: 'my-org/probe-held' });`,
    };
    try {
      const { results } = await runExamples([probe], 'probe-held', {
        whileRunning: async (child) => {
          await held.hit;
          child.kill('SIGUSR2');
        },
      });
      expect(results.map((r) => [r.id, r.ok])).toEqual([['probe:held', false]]);
      const report = failureReport(results[0]!);
      expect(report).toMatch(/timed out \(stopped by the test: SIGUSR2\)/);
      expect(report).toContain(`GET /api/models/my-org/probe-held`);
      // Closed when the child exited; the stand-in may not have seen the close yet: either way, no answer.
      expect(report).toMatch(/--- Hub requests without an answer ---\nGET \/api\/models\/my-org\/probe-held\S* \((waiting for \d+ ms|connection closed after \d+ ms without an answer)\)/);
      expect(report).toMatch(new RegExp(`tcp \\d+ -> 127\\.0\\.0\\.1:${new URL(hub.url).port}`));
    } finally {
      release();
      held.cancel();
    }
  });
});

interface ExampleResult {
  id: string;
  ok: boolean;
  error?: string;
  output: string;
  /** `Date.now()` when the example started and ended (run-examples.mjs). */
  startedAt: number;
  endedAt: number;
  /** For a timed-out example: what its process still waited on. */
  pending?: { connections: string[]; resources: string[] };
}

/**
 * A failed example as the test reports it: its error and output, the Hub stand-in's requests
 * while it ran (with the status answered), those of them that got no answer (still waiting, or
 * their connection closed first), and what the example's process waited on when it timed out.
 */
function failureReport(result: ExampleResult): string {
  const during = hub.requests
    .filter((r) => r.receivedAt >= result.startedAt && r.receivedAt <= result.endedAt)
    .map((r) => `${r.method} ${r.url} -> ${r.status ?? 'no answer'}${r.fault ? ` (fault: ${r.fault})` : ''}`);
  const unanswered = hub
    .unanswered()
    .filter((r) => r.since >= result.startedAt && r.since <= result.endedAt)
    .map((r) => {
      const state = r.closedAt === undefined ? `waiting for ${Date.now() - r.since} ms` : `connection closed after ${r.closedAt - r.since} ms without an answer`;
      return `${r.method} ${r.url} (${state}${r.bodyComplete ? '' : ', body not complete'})`;
    });
  const sections = [
    `${result.id}: ${result.error}`,
    `--- output ---\n${result.output}`,
    `--- Hub requests while it ran ---\n${during.join('\n') || '(none)'}`,
    `--- Hub requests without an answer ---\n${unanswered.join('\n') || '(none)'}`,
  ];
  if (result.pending) sections.push(`--- what it waited on ---\n${[...result.pending.connections, ...result.pending.resources].join('\n') || '(nothing)'}`);
  return sections.join('\n');
}

/** Template and observed-library set up once per file run. */
let prepared: { template: string; observedUrl: string } | undefined;

async function prepare(): Promise<{ template: string; observedUrl: string }> {
  if (prepared) return prepared;
  const template = join(work, 'template');
  mkdirSync(template);
  buildTemplate(template);
  // The examples import the package through a stand-in module that re-exports dist/ and
  // records every result the library returns (observe-results.mjs), so a `failed` one is seen.
  const library = pathToFileURL(distJs).href;
  const exportNames = Object.keys((await import(library)) as Record<string, unknown>);
  const observed = join(work, 'artifact-uploader.mjs');
  writeFileSync(
    observed,
    [
      `import * as real from '${library}';`,
      `import { observeExports } from '${pathToFileURL(observer).href}';`,
      `const o = observeExports(real);`,
      ...exportNames.map((name) => `export const ${name} = o.${name};`),
    ].join('\n'),
  );
  prepared = { template, observedUrl: pathToFileURL(observed).href };
  return prepared;
}

/**
 * Runs examples in one child process (run-examples.mjs) and returns what each did.
 * `whileRunning` is given the child once started (to stop a stuck example with SIGUSR2).
 */
async function runExamples(
  runnable: Example[],
  name: string,
  options: { whileRunning?: (child: ChildProcess) => Promise<void> } = {},
): Promise<{ results: ExampleResult[]; stderr: string }> {
  const { template, observedUrl } = await prepare();
  const blocksDir = join(work, `blocks-${name}`);
  mkdirSync(blocksDir);
  const blocks = runnable.map((example, n) => {
    const source = example.code.replace(/(from\s+|import\s*\(\s*)(['"])artifact-uploader(\/[^'"]*)?\2/g, (_m, lead: string, _q, sub?: string) =>
      sub ? `${lead}'artifact-uploader${sub}'` : `${lead}'${observedUrl}'`,
    );
    const js = ts.transpileModule(source, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } }).outputText;
    const file = join(blocksDir, `example-${String(n).padStart(3, '0')}.mjs`);
    writeFileSync(file, js);
    return { id: example.id, file };
  });
  const planPath = join(work, `plan-${name}.json`);
  const resultsPath = join(work, `results-${name}.json`);
  writeFileSync(planPath, JSON.stringify({ template, library: observedUrl, timeoutMs: 20_000, blocks }));
  // No MLflow server, no run: the embedded ./mlruns of each working directory, no retry
  // waits; the Hub stand-in for publishing.
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    // The examples' own temp dirs (`mkdtemp(join(tmpdir(), 'training-example-'))`) go with the run's root.
    ...tempDirEnv(),
    USER: 'docs-examples',
    MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0',
    NODE_NO_WARNINGS: '1',
    HF_ENDPOINT: hub.url,
    HF_TOKEN: DOCS_HUB_TOKEN,
  };
  let child!: ChildProcess;
  const done = new Promise<{ stderr: string }>((resolve, reject) => {
    child = execFile(process.execPath, [runner, planPath, resultsPath], { env, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (error, _stdout, stderr) =>
      error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve({ stderr }),
    );
  });
  const [{ stderr }] = await Promise.all([done, options.whileRunning?.(child)]);
  return { results: JSON.parse(readFileSync(resultsPath, 'utf8')) as ExampleResult[], stderr };
}
