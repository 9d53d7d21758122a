/**
 * Checking a model directory before it is published: the report says what kind of model it
 * is, which checks found problems, and lists every problem as an error (publishing must stop)
 * or a warning (publishing may go on). A bad model never makes it throw; only a programmer
 * error (a wrong argument) does.
 *
 * @module
 */
import { open, readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import pLimit from 'p-limit';
import { formatBytes } from '../core/format.js';
import { readFully } from '../core/read-fully.js';
import { twinNameWarnings } from '../core/twin-names.js';
import { InvalidArgumentError, InvalidModelStructureError, ModelDirectoryError, SafetensorsError } from '../core/errors.js';
import { inspectModelDir, SHARD_FILE_PATTERN, type LoraFlavour, type ModelDirInspection, type ModelFormat, type ModelLayout } from './detect-format.js';
import { listModelFiles, type ModelFile } from './list-model-files.js';
import { checkMlxAdapterConfig, checkMlxLoraTensors } from './mlx-adapter.js';
import { checkPeftLoraConfig, checkPeftLoraTensors } from './peft-adapter.js';
import { readSafetensorsHeader, type SafetensorsHeader } from './safetensors.js';

/**
 * Total weight size under which a model looks suspicious: 1 MiB. The smallest real LoRA
 * adapters (rank 8 on a 135M-parameter model) are a few MiB; placeholders are bytes.
 */
export const DEFAULT_MIN_WEIGHT_BYTES = 1024 * 1024;

/** Files read at once by the placeholder scan. */
const READ_CONCURRENCY = 16;
/** Files up to this size are scanned for placeholder markers (placeholders are tiny). */
export const DEFAULT_PLACEHOLDER_SCAN_BYTES = 4096;

/** Markers of placeholder files: "mock", "placeholder", "TODO" (upper case only), "test data". */
export const DEFAULT_PLACEHOLDER_PATTERNS: readonly RegExp[] = Object.freeze([
  /\bmock(s|ed)?\b/i,
  /\bplaceholders?\b/i,
  /\bTODO\b/,
  /\btest[ _-]data\b/i,
]);

/** Extensions of files that must hold binary weights. */
const WEIGHT_EXTENSIONS = ['.safetensors', '.bin', '.pt', '.pth', '.ckpt', '.gguf', '.npz', '.onnx', '.h5', '.msgpack'];
/** Extensions of prose and code, where a marker is a warning rather than an error. */
const SOFT_EXTENSIONS = ['.md', '.txt', '.rst', '.py'];
/** Values `__metadata__.format` may take for transformers' `load_state_dict` to accept a file. */
const KNOWN_FORMATS = ['pt', 'tf', 'flax', 'mlx'];
const LFS_POINTER = 'version https://git-lfs.github.com/spec/v1';

/** Which checks passed. A check is `false` when it found at least one error or warning. */
export interface ModelValidationChecks {
  /** The directory exists and is a directory. */
  directoryExists: boolean;
  /** A known layout (MLX or PEFT LoRA, fused single or sharded) is complete. */
  hasModelFiles: boolean;
  /** Every JSON file parses and the layout's config has its required fields. */
  configValid: boolean;
  /** The layout's weights are at least `minWeightBytes` in total. */
  reasonableSize: boolean;
  /** No placeholder, empty or Git LFS pointer files, and no symlink to a missing target. */
  noPlaceholderFiles: boolean;
  /** Every `.safetensors` file has a valid header and layout. */
  safetensorsHeadersValid: boolean;
  /** The shard index and the shard files agree (true when there is no index). */
  shardIndexConsistent: boolean;
  /** Adapter tensors are named, paired and shaped as their format requires (true for fused models). */
  adapterTensorsValid: boolean;
}

/** The validation report. */
export interface ModelValidationReport {
  /** Absolute model directory. */
  dir: string;
  /** `true` when there are no errors (warnings allowed): the model may be published. */
  overallValid: boolean;
  /** `null` when no layout was recognised. */
  format: ModelFormat | null;
  flavour: LoraFlavour | null;
  layout: ModelLayout | null;
  checks: ModelValidationChecks;
  /**
   * Why each check is `false` in {@link ModelValidationReport.checks}: `'warning'` when it
   * recorded warnings only (the model may still be published), `'error'` otherwise. A report
   * reads `ok`/`WARN`/`FAIL` from this, so a small-weights warning is not shown as a failure
   * beside a valid verdict.
   */
  checkStatus: Record<keyof ModelValidationChecks, 'ok' | 'warning' | 'error'>;
  /** Problems that must stop publishing, each naming the file (relative path) at fault. */
  errors: string[];
  /** Problems worth a look that do not stop publishing. */
  warnings: string[];
  /**
   * Every file of the directory (hidden directories skipped, symlinked directories not
   * followed), plus the layout's config and weight files when they are reached through a
   * symlinked directory (an MLX `adapters -> ...` link), which are checked like the others.
   */
  files: ModelFile[];
  /**
   * The hidden directories the listing skipped (`.git`, `.hydra`, `tokenizer/.ipynb_checkpoints`),
   * relative and `/`-separated, sorted; their contents were never read. From the one listing
   * that gave {@link ModelValidationReport.files}, so that a publish can say what it leaves out
   * without walking the directory again.
   */
  hiddenDirectories: string[];
  /** Bytes of the layout's weight files. */
  weightBytes: number;
  /** Bytes of all files. */
  totalBytes: number;
}

/** Options of {@link validateModelArtifacts}. */
export interface ValidateModelOptions {
  /**
   * Weights (all weight files of the layout together) smaller than this are reported.
   * @default DEFAULT_MIN_WEIGHT_BYTES (1 MiB)
   */
  minWeightBytes?: number;
  /**
   * Whether weights under `minWeightBytes` are an error or a warning.
   * @default 'warning' (tiny test models are legitimate; placeholders are caught separately)
   */
  smallWeights?: 'warning' | 'error';
  /**
   * Largest file scanned for placeholder markers, in bytes.
   * @default DEFAULT_PLACEHOLDER_SCAN_BYTES (4096)
   */
  placeholderScanBytes?: number;
  /**
   * What marks a placeholder. Special tokens such as `<|placeholder1|>` are ignored.
   * @default DEFAULT_PLACEHOLDER_PATTERNS
   */
  placeholderPatterns?: readonly RegExp[];
}

function checkOptions(options: ValidateModelOptions): Required<ValidateModelOptions> {
  const nonNegative = (name: keyof ValidateModelOptions, value: unknown) => {
    if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value) || value < 0)) {
      throw new InvalidArgumentError(name, `Expected \`${name}\` to be a non-negative number, got ${JSON.stringify(value)}.`);
    }
  };
  nonNegative('minWeightBytes', options.minWeightBytes);
  nonNegative('placeholderScanBytes', options.placeholderScanBytes);
  if (options.smallWeights !== undefined && options.smallWeights !== 'warning' && options.smallWeights !== 'error') {
    throw new InvalidArgumentError('smallWeights', `Expected \`smallWeights\` to be "warning" or "error", got ${JSON.stringify(options.smallWeights)}.`);
  }
  return {
    minWeightBytes: options.minWeightBytes ?? DEFAULT_MIN_WEIGHT_BYTES,
    smallWeights: options.smallWeights ?? 'warning',
    placeholderScanBytes: options.placeholderScanBytes ?? DEFAULT_PLACEHOLDER_SCAN_BYTES,
    placeholderPatterns: options.placeholderPatterns ?? DEFAULT_PLACEHOLDER_PATTERNS,
  };
}

async function readStart(path: string, length: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const bytesRead = await readFully((b, o, l, p) => handle.read(b, o, l, p), buffer, 0, length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** The bytes as text when they look like text (no NUL, valid UTF-8), else `undefined`. */
function asText(bytes: Buffer): string | undefined {
  if (bytes.includes(0)) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const hasExtension = (path: string, extensions: readonly string[]) => extensions.some((ext) => path.toLowerCase().endsWith(ext));
const quote = (text: string) => JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}...` : text);

/**
 * Collects findings per check; a check fails when it records anything. Warnings are kept apart
 * (`warned`) so that a check with nothing worse than a warning can say so.
 */
class Findings {
  readonly errors: string[] = [];
  readonly warnings: string[] = [];
  readonly failed = new Set<keyof ModelValidationChecks>();
  readonly warned = new Set<keyof ModelValidationChecks>();
  error(check: keyof ModelValidationChecks, message: string): void {
    this.errors.push(message);
    this.failed.add(check);
  }
  warning(check: keyof ModelValidationChecks, message: string): void {
    this.warnings.push(message);
    this.warned.add(check);
  }
  add(check: keyof ModelValidationChecks, file: string, result: { errors: string[]; warnings: string[] }): void {
    for (const e of result.errors) this.error(check, `${file}: ${e}`);
    for (const w of result.warnings) this.warning(check, `${file}: ${w}`);
  }
}

/**
 * Validates a model directory before upload and returns a report; never throws for a bad
 * model. Errors (`overallValid` false):
 * - the directory is missing, or no known layout is complete (the message lists what is missing);
 * - a JSON file does not parse; `config.json` lacks `model_type`; a PEFT `adapter_config.json`
 *   lacks `peft_type: "LORA"`, `r`, `lora_alpha` or `target_modules`, or has a `task_type` PEFT does not know; an MLX one lacks
 *   `lora_parameters.rank`/`scale` or is a DoRA/full fine-tune;
 * - a `.safetensors` header is invalid (see `readSafetensorsHeader`);
 * - the shard index names missing shards, misses shard files, or disagrees with shard headers;
 * - adapter tensors are misnamed, unpaired, not shaped as LoRA matrices (2-D; PEFT: or the 3- to
 *   5-D pairs of a convolution), disagree with the rank, (MLX) adapt more blocks than
 *   `num_layers`, or (PEFT) belong to modules the config does not target;
 * - a weight file is empty, text, or a Git LFS pointer; a data file (JSON, tokenizer, ...) up
 *   to `placeholderScanBytes` contains a placeholder marker; a symlink's target does not exist.
 *
 * Warnings: weights under `minWeightBytes` (unless `smallWeights: 'error'`); markers in `.md`,
 * `.txt`, `.rst` and `.py` files; empty non-weight files; missing `architectures`,
 * `base_model_name_or_path` or `task_type`; MLX-only quantization; an unknown
 * `__metadata__.format`; a tensor name declared twice in a safetensors header; a shard index
 * `total_size` that disagrees with the tensors; several complete layouts in one directory;
 * pickled weights (`adapter_model.bin`, `pytorch_model.bin`, ...) beside the layout's
 * safetensors, which loaders never read; file names that differ only in letter case or Unicode
 * normalization (`Tokenizer.json`, `tokenizer.json`), which a download to macOS or Windows folds
 * into one file.
 *
 * @throws InvalidArgumentError for invalid options (programmer errors only).
 * @example
 * ```ts
 * const report = await validateModelArtifacts('out/llama-lora_20240501_093000');
 * if (!report.overallValid) throw new Error(report.errors.join('\n'));
 * ```
 */
export async function validateModelArtifacts(dir: string, options: ValidateModelOptions = {}): Promise<ModelValidationReport> {
  if (typeof dir !== 'string' || dir === '') throw new InvalidArgumentError('dir', `Expected \`dir\` to be a non-empty path, got ${JSON.stringify(dir)}.`);
  const opts = checkOptions(options);
  const root = resolve(dir);
  const found = new Findings();
  const allChecks: (keyof ModelValidationChecks)[] = [
    'directoryExists', 'hasModelFiles', 'configValid', 'reasonableSize', 'noPlaceholderFiles', 'safetensorsHeadersValid', 'shardIndexConsistent', 'adapterTensorsValid',
  ];
  const report = (inspection: ModelDirInspection | undefined, files: ModelFile[], weightBytes: number, hiddenDirectories: string[] = []): ModelValidationReport => {
    const checks = {} as ModelValidationChecks;
    const checkStatus = {} as ModelValidationReport['checkStatus'];
    for (const check of allChecks) {
      checkStatus[check] = found.failed.has(check) ? 'error' : found.warned.has(check) ? 'warning' : 'ok';
      checks[check] = checkStatus[check] === 'ok';
    }
    return {
      dir: root,
      overallValid: found.errors.length === 0,
      format: inspection?.format ?? null,
      flavour: inspection?.flavour ?? null,
      layout: inspection?.layout ?? null,
      checks,
      checkStatus,
      errors: found.errors,
      warnings: found.warnings,
      files,
      hiddenDirectories: hiddenDirectories.sort(),
      weightBytes,
      totalBytes: files.reduce((sum, f) => sum + f.size, 0),
    };
  };

  const rootStat = await stat(root).catch(() => undefined);
  if (!rootStat?.isDirectory()) {
    found.error('directoryExists', `${root} does not exist or is not a directory`);
    for (const check of allChecks) found.failed.add(check);
    return report(undefined, [], 0);
  }

  let files: ModelFile[];
  const hiddenDirectories: string[] = [];
  const danglingLinks: [path: string, target: string][] = [];
  try {
    files = await listModelFiles(root, {
      onHiddenDirectory: (path) => hiddenDirectories.push(path),
      // The listing leaves such a link out: without a word here, a publish went without the
      // file (a tokenizer.json whose target moved), while the upload plan refuses the folder.
      onDanglingSymlink: (path, target) => danglingLinks.push([path, target]),
    });
  } catch (error) {
    found.error('directoryExists', `${root} cannot be listed: ${(error as Error).message}`);
    for (const check of allChecks) found.failed.add(check);
    return report(undefined, [], 0);
  }

  let inspection: ModelDirInspection | undefined;
  try {
    inspection = await inspectModelDir(root);
  } catch (error) {
    if (!(error instanceof InvalidModelStructureError || error instanceof ModelDirectoryError)) throw error;
    found.error('hasModelFiles', error.message);
    // These checks are about the layout's files; without a layout they cannot pass.
    for (const check of ['configValid', 'reasonableSize', 'adapterTensorsValid'] as const) found.failed.add(check);
  }
  if (inspection && inspection.alsoMatches.length > 0) {
    found.warning('hasModelFiles', `several layouts are complete in this directory: using ${inspection.layout}, ignoring ${inspection.alsoMatches.join(', ')}`);
  }
  if (inspection) {
    files = await withLayoutFiles(root, files, inspection);
    const pickles = shadowedPickles(inspection, files);
    if (pickles.length > 0) {
      const bytes = files.filter((f) => pickles.includes(f.path)).reduce((sum, f) => sum + f.size, 0);
      const loader = inspection.flavour === 'peft' ? 'PEFT' : inspection.flavour === 'mlx' ? 'mlx-lm' : 'transformers';
      const one = pickles.length === 1;
      found.warning(
        'hasModelFiles',
        `${pickles.join(', ')} (pickled weights, ${formatBytes(bytes)}) ${one ? 'sits' : 'sit'} beside ${inspection.weightFiles.join(', ')}: ${loader} loads the safetensors ${inspection.weightFiles.length === 1 ? 'file' : 'files'} and never reads ${one ? 'it' : 'them'}, so ${one ? 'it is a stale copy or a duplicate' : 'they are stale copies or duplicates'} that only ${one ? 'makes' : 'make'} the upload larger (remove ${one ? 'it' : 'them'} unless wanted)`,
      );
    }
  }

  for (const [path, target] of danglingLinks.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    found.error('noPlaceholderFiles', `${path}: symlink to ${target}, which does not exist (a publish would leave it out; restore the target or remove the link)`);
  }
  // The upload plan warns about these too, but a model published to the Hub goes through this
  // listing only: on macOS or Windows a download keeps one of the twins, silently.
  for (const warning of twinNameWarnings(files.map((f) => f.path))) found.warning('hasModelFiles', warning);

  // Small files read whole by the placeholder scan, so that JSON files are not read twice.
  const contents = new Map<string, Buffer>();
  const placeholders = await scanPlaceholders(root, files, opts, found, contents);
  const json = await parseJsonFiles(root, files, found, contents);
  contents.clear();
  const headers = await readHeaders(root, files, placeholders, found);

  let weightBytes = 0;
  if (inspection) {
    const sizes = new Map(files.map((f) => [f.path, f.size]));
    weightBytes = inspection.weightFiles.reduce((sum, f) => sum + (sizes.get(f) ?? 0), 0);
    if (weightBytes < opts.minWeightBytes) {
      const message = `weights (${inspection.weightFiles.join(', ')}) total ${weightBytes} bytes, below the ${opts.minWeightBytes}-byte minimum for a real model`;
      if (opts.smallWeights === 'error') found.error('reasonableSize', message);
      else found.warning('reasonableSize', message);
    }
    checkLayoutConfig(inspection, json, headers, found);
    if (inspection.indexFile) checkShardIndex(inspection.indexFile, json.get(inspection.indexFile), files, headers, found);
  } else {
    const index = files.find((f) => f.path === 'model.safetensors.index.json');
    if (index) checkShardIndex(index.path, json.get(index.path), files, headers, found);
  }
  return report(inspection, files, weightBytes, hiddenDirectories);
}

/**
 * `files` plus the layout's config and weight files when the listing left them out: detection
 * follows a symlinked directory (`adapters -> /data/run42/adapters`) while the listing does
 * not, and without them the layout's config and tensors went unchecked, its weights counted 0
 * bytes, and its check failed with no message.
 */
async function withLayoutFiles(root: string, files: ModelFile[], inspection: ModelDirInspection): Promise<ModelFile[]> {
  const listed = new Set(files.map((f) => f.path));
  const added: ModelFile[] = [];
  for (const path of [inspection.configFile, ...inspection.weightFiles]) {
    if (listed.has(path)) continue;
    const info = await stat(resolve(root, path)).catch(() => undefined);
    if (info?.isFile()) added.push({ path, size: info.size });
  }
  if (added.length === 0) return files;
  return [...files, ...added].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Pickle extensions of PyTorch weights (`torch.save`). */
const PICKLE_EXTENSIONS = ['.bin', '.pt', '.pth'];
/** transformers' pickled fused weights: `pytorch_model.bin`, its index, and its shards. */
const TRANSFORMERS_PICKLES = /^pytorch_model(\.bin|\.bin\.index\.json|-\d{5,6}-of-\d{5,6}\.bin)$/;

/**
 * The pickled weights beside the layout's safetensors that loaders skip because the
 * safetensors are there: transformers takes `model.safetensors` (or its index) before
 * `pytorch_model.bin` (or its index and shards) (`modeling_utils.py`,
 * `_get_resolved_checkpoint_files`), PEFT `adapter_model.safetensors` before
 * `adapter_model.bin` (`utils/save_and_load.py`, `load_peft_weights`). A pickle with the stem
 * of a layout weight file (`adapter_model.pt`, `model-00001-of-00002.bin`) is counted too.
 * Other pickles (`training_args.bin`, `optimizer.pt`) are no weights: left alone.
 */
function shadowedPickles(inspection: ModelDirInspection, files: readonly ModelFile[]): string[] {
  const folderOf = (path: string) => path.slice(0, path.lastIndexOf('/') + 1);
  const folder = folderOf(inspection.weightFiles[0]!);
  const stems = new Set(inspection.weightFiles.map((w) => w.slice(folder.length).replace(/\.safetensors$/, '')));
  return files
    .map((f) => f.path)
    .filter((path) => {
      if (folderOf(path) !== folder) return false;
      const name = path.slice(folder.length);
      if (inspection.format === 'fused' && TRANSFORMERS_PICKLES.test(name)) return true;
      const extension = PICKLE_EXTENSIONS.find((ext) => name.endsWith(ext));
      return extension !== undefined && stems.has(name.slice(0, -extension.length));
    })
    .sort();
}

/** Flags placeholder, empty and LFS-pointer files; returns the weight files flagged (their headers are not read). */
async function scanPlaceholders(
  root: string,
  files: ModelFile[],
  opts: Required<ValidateModelOptions>,
  found: Findings,
  contents: Map<string, Buffer>,
): Promise<Set<string>> {
  const flagged = new Set<string>();
  // Read concurrently (a model can have hundreds of small files), judge in order.
  const limit = pLimit(READ_CONCURRENCY);
  const reads = new Map<string, Promise<Buffer>>();
  for (const file of files) {
    if (file.size === 0) continue;
    const weights = hasExtension(file.path, WEIGHT_EXTENSIONS);
    if (!weights && file.size > opts.placeholderScanBytes) continue;
    const read = limit(() => readStart(resolve(root, file.path), weights ? Math.min(file.size, 512) : file.size));
    read.catch(() => undefined); // judged (and reported) below, in order
    reads.set(file.path, read);
  }
  for (const file of files) {
    const weights = hasExtension(file.path, WEIGHT_EXTENSIONS);
    if (file.size === 0) {
      if (weights) {
        found.error('noPlaceholderFiles', `${file.path}: empty weight file`);
        flagged.add(file.path);
      } else {
        found.warning('noPlaceholderFiles', `${file.path}: empty file`);
      }
      continue;
    }
    if (!weights && file.size > opts.placeholderScanBytes) continue;
    let start: Buffer;
    try {
      start = await reads.get(file.path)!;
      if (!weights && start.length === file.size) contents.set(file.path, start);
    } catch (error) {
      found.error('noPlaceholderFiles', `${file.path}: cannot be read (${(error as Error).message})`);
      flagged.add(file.path);
      continue;
    }
    const text = asText(start);
    if (text === undefined) continue;
    if (weights) {
      // Real weights are binary: a safetensors length prefix holds NUL bytes, pickles and GGUF too.
      flagged.add(file.path);
      if (text.startsWith(LFS_POINTER)) {
        found.error('noPlaceholderFiles', `${file.path}: Git LFS pointer, not the weights (run \`git lfs pull\` in the repository it came from)`);
      } else {
        found.error('noPlaceholderFiles', `${file.path}: text instead of binary weights (starts with ${quote(text.trim())})`);
      }
      continue;
    }
    // Special tokens like <|placeholder1|> are real vocabulary, not placeholders.
    const prose = scannableText(file.path, text).replace(/<[^<>\s]*>/g, ' ');
    const marker = opts.placeholderPatterns.map((p) => p.exec(prose)?.[0]).find((m) => m !== undefined);
    if (marker === undefined) continue;
    const message = `${file.path}: looks like a placeholder (contains ${quote(marker)})`;
    if (hasExtension(file.path, SOFT_EXTENSIONS)) found.warning('noPlaceholderFiles', message);
    else found.error('noPlaceholderFiles', message);
  }
  return flagged;
}

/**
 * The text scanned for markers: for JSON, keys and string values except paths, so that a
 * training config whose dataset lives in `data/test_data` is not taken for a placeholder.
 */
function scannableText(path: string, text: string): string {
  if (!path.toLowerCase().endsWith('.json')) return text;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return text;
  }
  const parts: string[] = [];
  const visit = (value: unknown): void => {
    if (typeof value === 'string') {
      if (!/[\\/]/.test(value)) parts.push(value);
    } else if (Array.isArray(value)) {
      value.forEach(visit);
    } else if (isRecord(value)) {
      for (const [key, inner] of Object.entries(value)) {
        parts.push(key);
        visit(inner);
      }
    }
  };
  visit(parsed);
  return parts.join('\n');
}

/** Parses every `.json` file; returns the parsed values by relative path. */
async function parseJsonFiles(root: string, files: ModelFile[], found: Findings, contents: Map<string, Buffer>): Promise<Map<string, unknown>> {
  const parsed = new Map<string, unknown>();
  for (const file of files) {
    if (!file.path.toLowerCase().endsWith('.json') || file.size === 0) continue;
    try {
      const known = contents.get(file.path);
      parsed.set(file.path, JSON.parse(known ? known.toString('utf8') : await readFile(resolve(root, file.path), 'utf8')));
    } catch (error) {
      found.error('configValid', `${file.path}: not valid JSON (${(error as Error).message})`);
    }
  }
  return parsed;
}

/** Reads every `.safetensors` header not already flagged as a placeholder. */
async function readHeaders(root: string, files: ModelFile[], skip: Set<string>, found: Findings): Promise<Map<string, SafetensorsHeader>> {
  const headers = new Map<string, SafetensorsHeader>();
  for (const file of files) {
    if (!file.path.toLowerCase().endsWith('.safetensors') || skip.has(file.path)) continue;
    try {
      const header = await readSafetensorsHeader(resolve(root, file.path));
      headers.set(file.path, header);
      const duplicates = header.duplicateNames ?? [];
      if (duplicates.length > 0) {
        // The reference reader takes such a file (the last declaration wins), so refusing it
        // would block a model every loader reads; the earlier declarations are dead bytes.
        found.warning(
          'safetensorsHeadersValid',
          `${file.path}: the header declares ${duplicates.length === 1 ? 'tensor' : 'tensors'} ${duplicates.slice(0, 5).map((n) => JSON.stringify(n)).join(', ')}${duplicates.length > 5 ? `, and ${duplicates.length - 5} more,` : ''} more than once; safetensors loaders read only the last declaration of each (save the file again with the safetensors library to drop the others)`,
        );
      }
    } catch (error) {
      const reason = error instanceof SafetensorsError ? error.reason : (error as Error).message;
      found.error('safetensorsHeadersValid', `${file.path}: ${reason}`);
    }
  }
  return headers;
}

function checkLayoutConfig(inspection: ModelDirInspection, json: Map<string, unknown>, headers: Map<string, SafetensorsHeader>, found: Findings): void {
  const configPath = inspection.configFile;
  const config = json.get(configPath);
  // A config that does not parse was already reported by parseJsonFiles.
  const parsed = json.has(configPath);
  if (inspection.format === 'fused') {
    if (parsed) checkFusedConfig(configPath, config, found);
    for (const weight of inspection.weightFiles) {
      const format = headers.get(weight)?.metadata?.format;
      if (format !== undefined && !KNOWN_FORMATS.includes(format)) {
        found.warning('safetensorsHeadersValid', `${weight}: __metadata__.format is ${JSON.stringify(format)}; transformers only loads ${KNOWN_FORMATS.join(', ')}`);
      }
    }
    return;
  }
  const weightsPath = inspection.weightFiles[0]!;
  const header = headers.get(weightsPath);
  if (inspection.flavour === 'peft') {
    if (parsed) found.add('configValid', configPath, checkPeftLoraConfig(config));
    if (header) found.add('adapterTensorsValid', weightsPath, checkPeftLoraTensors(header, config));
    else found.failed.add('adapterTensorsValid');
    return;
  }
  const mlx = parsed ? checkMlxAdapterConfig(config) : undefined;
  if (mlx) found.add('configValid', configPath, { errors: mlx.problems, warnings: [] });
  if (header) found.add('adapterTensorsValid', weightsPath, { errors: checkMlxLoraTensors(header, mlx?.config?.rank, mlx?.config?.numLayers).problems, warnings: [] });
  else found.failed.add('adapterTensorsValid');
}

function checkFusedConfig(path: string, config: unknown, found: Findings): void {
  if (!isRecord(config)) {
    found.error('configValid', `${path}: not a JSON object`);
    return;
  }
  if (typeof config.model_type !== 'string' || config.model_type === '') {
    found.error('configValid', `${path}: model_type is missing; transformers cannot tell which architecture to load`);
  }
  if (!Array.isArray(config.architectures) || config.architectures.length === 0) {
    found.warning('configValid', `${path}: architectures is missing; the Hub cannot show how to load the model`);
  }
  const quantConfig = config.quantization_config;
  if ('quantization' in config || (isRecord(quantConfig) && !('quant_method' in quantConfig))) {
    found.warning('configValid', `${path}: MLX quantization (quantization, or quantization_config without quant_method); only MLX can load this model (fuse with --dequantize for transformers)`);
  }
}

function checkShardIndex(indexPath: string, index: unknown, files: ModelFile[], headers: Map<string, SafetensorsHeader>, found: Findings): void {
  const problem = (message: string) => found.error('shardIndexConsistent', `${indexPath}: ${message}`);
  if (index === undefined) {
    found.failed.add('shardIndexConsistent'); // unparsable: reported by parseJsonFiles
    return;
  }
  const weightMap = isRecord(index) ? index.weight_map : undefined;
  if (!isRecord(weightMap) || Object.keys(weightMap).length === 0) {
    problem('weight_map is missing or empty');
    return;
  }
  const present = new Set(files.map((f) => f.path));
  const referenced = new Set<string>();
  for (const [tensor, file] of Object.entries(weightMap)) {
    if (typeof file !== 'string' || file === '' || file.includes('/') || file.includes('\\') || file.includes('..')) {
      problem(`tensor ${JSON.stringify(tensor)} maps to ${JSON.stringify(file)}, which is not a file name in this directory`);
      continue;
    }
    referenced.add(file);
  }
  const missing = [...referenced].filter((f) => !present.has(f)).sort();
  if (missing.length > 0) problem(`lists shard(s) that do not exist: ${missing.join(', ')}`);
  const orphans = files.map((f) => f.path).filter((p) => SHARD_FILE_PATTERN.test(p) && !referenced.has(p));
  if (orphans.length > 0) problem(`shard file(s) not listed in the index (mlx-lm would still load them): ${orphans.join(', ')}`);

  // Shard names: one total N, and 1..N all referenced.
  const totals = new Set<string>();
  const numbers = new Set<number>();
  for (const file of referenced) {
    const match = SHARD_FILE_PATTERN.exec(file);
    if (!match) continue;
    totals.add(match[2]!);
    numbers.add(Number(match[1]));
  }
  if (totals.size > 1) problem(`shards disagree on the shard count (-of-${[...totals].sort().join(', -of-')})`);
  else if (totals.size === 1) {
    const total = Number([...totals][0]);
    const width = [...totals][0]!.length;
    const absent: string[] = [];
    for (let i = 1; i <= total; i++) {
      const name = `model-${String(i).padStart(width, '0')}-of-${[...totals][0]}.safetensors`;
      // A shard on disk but not in the index is already reported as an orphan.
      if (!numbers.has(i) && !orphans.includes(name)) absent.push(name);
    }
    if (absent.length > 0) problem(`shard numbering has gaps; never named: ${absent.join(', ')}`);
  }

  // Tensors: every mapped tensor in its shard's header, no tensor left out or in two shards.
  const owner = new Map<string, string>();
  let totalBytes = 0;
  let allHeaders = true;
  for (const file of [...referenced].sort()) {
    const header = headers.get(file);
    if (!header) {
      allHeaders = false;
      continue;
    }
    for (const tensor of header.tensors) {
      totalBytes += tensor.byteLength;
      const previous = owner.get(tensor.name);
      if (previous !== undefined) problem(`tensor ${JSON.stringify(tensor.name)} is stored in both ${previous} and ${file}`);
      owner.set(tensor.name, file);
    }
  }
  const notInShard: string[] = [];
  for (const [tensor, file] of Object.entries(weightMap)) {
    if (typeof file === 'string' && headers.has(file) && headers.get(file)!.tensors.every((t) => t.name !== tensor)) notInShard.push(`${tensor} (${file})`);
  }
  if (notInShard.length > 0) problem(`maps tensors to shards that do not contain them: ${notInShard.slice(0, 5).join(', ')}${notInShard.length > 5 ? ', ...' : ''}`);
  const unmapped = [...owner.entries()].filter(([tensor, file]) => weightMap[tensor] !== file).map(([tensor, file]) => `${tensor} (${file})`);
  if (unmapped.length > 0) problem(`does not map tensors stored in the shards: ${unmapped.slice(0, 5).join(', ')}${unmapped.length > 5 ? ', ...' : ''}`);
  const declared = isRecord(index) && isRecord(index.metadata) ? index.metadata.total_size : undefined;
  if (allHeaders && typeof declared === 'number' && declared !== totalBytes) {
    found.warning('shardIndexConsistent', `${indexPath}: metadata.total_size is ${declared} but the shards hold ${totalBytes} bytes of tensors`);
  }
}
