/**
 * The README.md (model card) uploaded with every published model. It says what was published
 * (LoRA adapter in PEFT form, or fused weights), on which base model, from which MLflow run,
 * and lists the files with their sizes; its YAML front matter uses the Hub's metadata keys
 * (`library_name`, `base_model`, `tags`) so the Hub shows and links them.
 *
 * The card holds no timestamps or commit ids, so a dry run predicts its size exactly.
 *
 * @module
 */
import { parse, stringify } from 'yaml';
import type { LoraFlavour, ModelFormat } from '../model/detect-format.js';
import { formatBytes } from '../core/format.js';
import { VERSION } from '../version.js';

/** What the model card records. */
export interface ModelCardInput {
  /** `namespace/name` of the Hub repo. */
  repoId: string;
  format: ModelFormat;
  /** The flavour the model was found in (`mlx` adapters are uploaded converted to PEFT). */
  flavour?: LoraFlavour;
  /** Hugging Face repo id of the base model, when known. */
  baseModel?: string;
  /** Files uploaded besides the card, with sizes. */
  files: ReadonlyArray<{ path: string; size: number }>;
  /** MLflow run the model came from. */
  runId?: string;
  /** MLflow tracking server, to link the run (http(s) URIs only). */
  mlflowTrackingUri?: string;
  /** MLflow experiment of the run, to build the UI link. */
  mlflowExperimentId?: string;
  /** Body of a README.md found in the model directory (front matter removed), kept under "Notes". */
  existingNotes?: string;
  /**
   * The YAML front matter of that README.md, parsed (a mapping): its keys (`license`,
   * `datasets`, `language`, `model-index`...) are kept in the card's metadata; the card's own
   * `library_name` and `base_model` (when known) replace the README's, and `tags` are merged.
   */
  existingMetadata?: Record<string, unknown>;
}

/**
 * The front matter of a README.md as a mapping, or why it cannot be kept: YAML that does not
 * parse, or is not a mapping (the Hub reads only a mapping as card metadata).
 *
 * @example
 * ```ts
 * parseFrontMatter('license: apache-2.0\ndatasets: [squad]'); // { metadata: { license: 'apache-2.0', datasets: ['squad'] } }
 * ```
 */
export function parseFrontMatter(frontMatter: string): { metadata: Record<string, unknown> } | { problem: string } {
  let value: unknown;
  try {
    value = parse(frontMatter);
  } catch (error) {
    return { problem: `it is not valid YAML (${(error as Error).message.split('\n')[0]})` };
  }
  if (value === null || value === undefined) return { metadata: {} };
  if (typeof value !== 'object' || Array.isArray(value)) return { problem: 'it is not a YAML mapping' };
  return { metadata: value as Record<string, unknown> };
}

/** Splits `---\nyaml\n---\nbody` into its parts; text without front matter is all body. */
export function splitFrontMatter(text: string): { frontMatter?: string; body: string } {
  const match = /^---\r?\n([\s\S]*?)\r?\n---\r?\n?/.exec(text);
  if (!match) return { body: text };
  return { frontMatter: match[1], body: text.slice(match[0].length) };
}

function mlflowRunLink(input: ModelCardInput): string | undefined {
  const uri = input.mlflowTrackingUri;
  if (!input.runId || !uri || !/^https?:\/\//i.test(uri)) return undefined;
  let base: URL;
  try {
    base = new URL(uri);
  } catch {
    return undefined;
  }
  // Never publish credentials that may sit in a tracking URI: userinfo, or a query string (a
  // proxy's `?token=...`); the card is public.
  base.username = '';
  base.password = '';
  base.search = '';
  base.hash = '';
  const root = base.toString().replace(/\/+$/, '');
  return input.mlflowExperimentId
    ? `${root}/#/experiments/${encodeURIComponent(input.mlflowExperimentId)}/runs/${encodeURIComponent(input.runId)}`
    : `${root}/#/runs/${encodeURIComponent(input.runId)}`;
}

/**
 * Renders the model card.
 *
 * @example
 * ```ts
 * const readme = buildModelCard({ repoId: 'me/tiny-lora', format: 'lora', flavour: 'mlx', baseModel: 'meta-llama/Llama-3.2-1B', files, runId });
 * ```
 */
export function buildModelCard(input: ModelCardInput): string {
  const lora = input.format === 'lora';
  const existing = input.existingMetadata ?? {};
  const existingTags = Array.isArray(existing.tags) ? existing.tags : typeof existing.tags === 'string' ? [existing.tags] : [];
  const ours = [...(lora ? ['lora', 'peft'] : ['fused']), ...(input.flavour === 'mlx' ? ['mlx'] : []), 'artifact-uploader'];
  // The README's own metadata (license, datasets, model-index...) is the user's: kept. What the
  // card knows about the files published (the library that loads them, the base model) wins.
  const metadata: Record<string, unknown> = {
    ...existing,
    library_name: lora ? 'peft' : 'transformers',
    ...(input.baseModel ? { base_model: input.baseModel } : {}),
    tags: [...new Set([...existingTags, ...ours])],
  };
  const name = input.repoId.split('/').pop() ?? input.repoId;
  const what = lora
    ? input.flavour === 'mlx'
      ? 'A LoRA adapter trained with MLX and converted to the PEFT format (`adapter_model.safetensors` + `adapter_config.json`); the original MLX adapter config is kept as `mlx_adapter_config.json`.'
      : 'A LoRA adapter in the PEFT format (`adapter_model.safetensors` + `adapter_config.json`).'
    : 'A fused model: the base model with its fine-tuning merged into the weights, uploaded as it was produced.';
  const lines: string[] = ['---', stringify(metadata).trimEnd(), '---', '', `# ${name}`, '', what, ''];
  lines.push('## Details', '');
  lines.push(`- **Format:** ${lora ? `LoRA adapter (PEFT${input.flavour === 'mlx' ? ', converted from MLX' : ''})` : 'fused model'}`);
  lines.push(`- **Base model:** ${input.baseModel ? `[${input.baseModel}](https://huggingface.co/${input.baseModel})` : 'unknown'}`);
  if (input.runId) {
    const link = mlflowRunLink(input);
    lines.push(`- **MLflow run:** ${link ? `[\`${input.runId}\`](${link})` : `\`${input.runId}\``}`);
  }
  lines.push('');
  if (lora && input.baseModel) {
    lines.push(
      '## Usage',
      '',
      '```python',
      'from peft import PeftModel',
      'from transformers import AutoModelForCausalLM',
      '',
      `base = AutoModelForCausalLM.from_pretrained(${JSON.stringify(input.baseModel)})`,
      `model = PeftModel.from_pretrained(base, ${JSON.stringify(input.repoId)})`,
      '```',
      '',
    );
  } else if (!lora) {
    lines.push(
      '## Usage',
      '',
      '```python',
      'from transformers import AutoModelForCausalLM',
      '',
      `model = AutoModelForCausalLM.from_pretrained(${JSON.stringify(input.repoId)})`,
      '```',
      '',
    );
  }
  lines.push('## Files', '', '| file | size |', '| --- | --- |');
  for (const file of input.files) lines.push(`| \`${file.path.replace(/\|/g, '\\|')}\` | ${formatBytes(file.size)} |`);
  lines.push('');
  if (input.existingNotes && input.existingNotes.trim() !== '') {
    lines.push('## Notes', '', input.existingNotes.trim(), '');
  }
  lines.push(`_Published with [artifact-uploader](https://www.npmjs.com/package/artifact-uploader) ${VERSION}._`, '');
  return lines.join('\n');
}
