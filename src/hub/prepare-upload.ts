/**
 * The local half of a publish, shared by real runs and dry runs: validate the model directory,
 * convert an MLX LoRA adapter to PEFT in a temp dir, write the model card, and list exactly the
 * files (and sizes) that go to the Hub. No network.
 *
 * @module
 */
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { throwIfAborted } from '../core/abort.js';
import { makeTempDir } from '../core/atomic-write.js';
import { InvalidArgumentError, ModelValidationError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { convertMlxLoraToPeft } from '../model/convert-mlx-to-peft.js';
import type { LoraFlavour, ModelFormat, ModelLayout } from '../model/detect-format.js';
import { validateModelArtifacts, type ModelValidationReport, type ValidateModelOptions } from '../model/validate.js';
import { isHubRepoId } from '../core/hub-repo-id.js';
import { isSensitiveFile } from './sensitive-files.js';
import { localFolderNamed, modelNameKind } from '../model/local-folder.js';

/** One file to upload: where it is on disk and where it goes in the repo. */
export interface PreparedFile {
  /** Path in the repo, `/`-separated. */
  path: string;
  /** Absolute local path. */
  localPath: string;
  size: number;
}

/** Everything a publish uploads, ready on disk. */
export interface PreparedUpload {
  /** Absolute model directory. */
  dir: string;
  format: ModelFormat;
  flavour?: LoraFlavour;
  layout?: ModelLayout;
  /** True when an MLX adapter was converted to PEFT. */
  converted: boolean;
  /** Hugging Face repo id of the base model, when known. */
  baseModel?: string;
  validation: ModelValidationReport;
  /** Files to upload, sorted by path, the generated README.md included. */
  files: PreparedFile[];
  /** Total bytes of {@link files}. */
  bytes: number;
  /** Files left out as holding credentials (not in `includeSensitiveFiles`), by repo path. */
  sensitiveLeftOut: string[];
  warnings: string[];
  /** Removes the temp dir (converted adapter, model card). Safe to call twice. */
  cleanup(): Promise<void>;
}

/** Options of {@link prepareUpload}. */
export interface PrepareUploadOptions {
  modelDir: string;
  repoId: string;
  baseModel?: string;
  /** Repo paths of credential files (`.env`, a private key...) to upload anyway. @default none */
  includeSensitiveFiles?: readonly string[];
  runId?: string;
  mlflowTrackingUri?: string;
  mlflowExperimentId?: string;
  validation?: ValidateModelOptions;
  signal?: AbortSignal;
  logger: Logger;
  onPhase?: (phase: 'validating' | 'converting' | 'preparing') => void;
}

/**
 * Files never uploaded, at any depth: OS litter, and `.git`, which as a file is the pointer a
 * git worktree or submodule checkout has in place of the repository (`gitdir: /home/me/...`):
 * it names a local path and means nothing in a Hub repo. `huggingface_hub`'s `upload_folder`
 * leaves `.git` out too (its `DEFAULT_IGNORE_PATTERNS`, which also cover `.cache/huggingface`)
 * and refuses to commit any path with a `.git` or `.cache` segment. Hidden directories (`.git/`,
 * `.cache/`, `.ipynb_checkpoints/`) are already skipped by the listing (`listModelFiles`).
 */
const IGNORED_NAMES = new Set(['.git', '.DS_Store', 'Thumbs.db', 'desktop.ini']);

/**
 * Path segments no commit may carry, `huggingface_hub`'s `FORBIDDEN_FOLDERS` (utils/_paths.py):
 * its `_validate_path_in_repo` refuses them "to prevent a server-side issue", so the Hub is
 * likely to refuse the commit, after every LFS file was uploaded. A `.git` file is left out
 * ({@link IGNORED_NAMES}) and hidden folders are never listed, so what reaches this is a file
 * named `.cache`: refused before anything is sent, as `upload_folder` refuses the whole folder
 * (it builds the commit operations, and so validates every path, before its first request).
 * Not left out: unlike OS litter it may be a file the model needs, named by the user.
 */
const HUB_FORBIDDEN_SEGMENTS = new Set(['.git', '.cache']);
// Files holding credentials (`.env`, private keys) are left out too, with a warning: sensitive-files.ts.

/** How many hidden folders the warning names; the rest are counted. */
const HIDDEN_DIRS_NAMED = 5;

/**
 * The warning for the hidden folders of the model directory left out of the upload (`.hydra/`
 * with Hydra's run config, `.ipynb_checkpoints/`), or `undefined`. They are left out because a
 * model repo has no use for them, but `upload_folder` would send them: without a word, a user
 * who expected Hydra's config beside the model would not find out before downloading it.
 * `hiddenDirectories` is the validation's ({@link ModelValidationReport.hiddenDirectories}, sorted):
 * the folder was listed once, there, and is not walked again for this.
 */
function hiddenFoldersWarning(dir: string, hiddenDirectories: readonly string[]): string | undefined {
  // Not worth a word: `upload_folder` never sends these folders either (it skips `.git/` and
  // `.cache/huggingface/`, and refuses any other path with such a segment), and nearly every
  // checkout has a `.git/`.
  const hidden = hiddenDirectories.filter((path) => !HUB_FORBIDDEN_SEGMENTS.has(path.split('/').pop() ?? path));
  if (hidden.length === 0) return undefined;
  const named = hidden.slice(0, HIDDEN_DIRS_NAMED).map((path) => JSON.stringify(`${path}/`));
  const more = hidden.length - named.length;
  return (
    `Left out of the upload, as hidden folders: ${named.join(', ')}${more > 0 ? ` and ${more} more (${hidden.length} in all)` : ''} (in ${dir}). ` +
    "huggingface_hub's upload_folder would send them; to publish a file of one, copy it to a folder whose name does not start with a dot."
  );
}

async function readJson(path: string): Promise<Record<string, unknown> | undefined> {
  try {
    const value = JSON.parse(await readFile(path, 'utf8')) as unknown;
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A base model named in a model's own files, when it is a Hub repo id: it goes into the card's
 * `base_model`, which the Hub checks when the card is committed, refusing the whole commit for
 * a value that is no model id (a local path). A namespace is required: a bare name there is as
 * likely a local folder as one of the Hub's canonical models.
 */
function asRepoId(value: unknown): string | undefined {
  return isHubRepoId(value) ? value : undefined;
}

/**
 * {@link asRepoId}, and not a folder relative to the working directory or one of `dirs`: a
 * relative path such as `models/llama` reads as a repo id, but when that folder is there it is
 * where the base model was loaded from, and the card would send readers to someone else's repo
 * (or the Hub would refuse the card for a model that does not exist).
 */
async function asRepoIdNotFolder(value: unknown, dirs: readonly string[]): Promise<string | undefined> {
  const id = asRepoId(value);
  return id !== undefined && (await localFolderNamed(id, dirs)) === undefined ? id : undefined;
}

/** A README's `base_model` the card keeps: a repo id as {@link asRepoIdNotFolder} takes it, or a list of them (a merge's bases). */
async function isBaseModelValue(value: unknown, dirs: readonly string[]): Promise<boolean> {
  const ids = Array.isArray(value) ? value : [value];
  if (ids.length === 0) return false;
  for (const id of ids) if ((await asRepoIdNotFolder(id, dirs)) === undefined) return false;
  return true;
}

/**
 * The warning for a PEFT adapter config whose `base_model_name_or_path` is no Hub model id (PEFT's
 * `save_pretrained` records the path the base model was loaded from, often a local folder), or
 * `undefined`. The config is uploaded as it is, as PEFT's own `push_to_hub` does (the bytes
 * published are the user's, and `PeftModel.from_pretrained(base, repo)` loads the adapter
 * whatever it names); but the path then shows the user's filesystem to whoever can see the
 * repo, and loading by the repo id alone (`AutoPeftModelForCausalLM`) fails anywhere else.
 * The card never carries it (see {@link asRepoId}). A bare name (`gpt2`) may be one of the
 * Hub's canonical models: no warning.
 */
async function localBaseModelWarning(value: unknown, configPath: string, cardNamesBase: boolean, dirs: readonly string[]): Promise<string | undefined> {
  if (typeof value !== 'string' || value === '') return undefined;
  // A repo id that is a folder here (`models/llama`) is that folder: see asRepoIdNotFolder.
  const kind = await modelNameKind(value, dirs);
  if (kind === 'hub') return undefined;
  const consequence =
    kind === 'local'
      ? 'so the path is on the Hub for whoever can see the repo, and loading the adapter by its repo id alone (AutoPeftModelForCausalLM) fails on any other machine. '
      : 'and loading the adapter by its repo id alone (AutoPeftModelForCausalLM) fails, on any machine. ';
  const what = kind === 'local' ? `the local path ${JSON.stringify(value)}` : `${JSON.stringify(value)}, neither a Hugging Face repo id ("namespace/name") nor a folder on this machine`;
  return (
    `The base_model_name_or_path of ${configPath} is ${what}: the file is uploaded as it is (as PEFT's push_to_hub does), ` +
    consequence +
    'Set it to the Hub repo id of the base model (such as "meta-llama/Llama-3.2-1B") before publishing' +
    (cardNamesBase ? '.' : '; pass baseModel (--base-model) to name the base model in the model card.')
  );
}

/**
 * Validates, converts (MLX LoRA only) and writes the model card.
 *
 * @throws ModelValidationError (carrying the report) when the model is not valid.
 */
export async function prepareUpload(options: PrepareUploadOptions): Promise<PreparedUpload> {
  const { logger } = options;
  options.onPhase?.('validating');
  const validation = await validateModelArtifacts(options.modelDir, options.validation);
  if (!validation.overallValid || !validation.format) {
    throw new ModelValidationError(validation.dir, validation.errors.length > 0 ? validation.errors : ['no known model layout'], validation);
  }
  for (const warning of validation.warnings) logger.warn(`validation: ${warning}`, { dir: validation.dir });
  throwIfAborted(options.signal, 'Publishing');

  const dir = validation.dir;
  const format = validation.format;
  const flavour = validation.flavour ?? undefined;
  const warnings = [...validation.warnings];
  const temp = await makeTempDir('artifact-uploader-publish-');
  const cleanup = () => rm(temp, { recursive: true, force: true });
  try {
    let sourceDir = dir;
    let sourceFiles = validation.files;
    let baseModel = options.baseModel;
    let converted = false;

    if (format === 'lora' && flavour === 'mlx') {
      options.onPhase?.('converting');
      const conversion = await convertMlxLoraToPeft(dir, { outDir: join(temp, 'adapter'), baseModel: options.baseModel, signal: options.signal, logger });
      sourceDir = conversion.outDir;
      sourceFiles = conversion.files;
      // mlx_lm's `model` is what `--model` was: often a local path (`models/llama` too, when
      // that folder is here), which the conversion keeps in adapter_config.json (with a
      // warning) but the card must not carry.
      baseModel ??= await asRepoIdNotFolder(conversion.config.base_model_name_or_path, [dir, conversion.adapterDir]);
      warnings.push(...conversion.warnings);
      converted = true;
    } else if (format === 'lora') {
      const named = (await readJson(join(dir, 'adapter_config.json')))?.base_model_name_or_path;
      const localPathWarning = await localBaseModelWarning(named, join(dir, 'adapter_config.json'), baseModel !== undefined, [dir]);
      if (localPathWarning) {
        logger.warn(localPathWarning);
        warnings.push(localPathWarning);
      }
      baseModel ??= await asRepoIdNotFolder(named, [dir]);
    } else {
      // transformers writes the source repo id here when the model came from the Hub; local paths are ignored.
      const named = asRepoId((await readJson(join(dir, 'config.json')))?._name_or_path);
      const folder = named === undefined ? undefined : await localFolderNamed(named, [dir]);
      // Only a repo id that is a folder here gets a word: an absolute path there is what every
      // local from_pretrained writes, and never looked like a base model.
      if (folder !== undefined && baseModel === undefined) {
        warnings.push(
          `The _name_or_path of ${join(dir, 'config.json')}, ${JSON.stringify(named)}, is the local folder ${folder}, not a Hub repo: it was left out of the model card. Pass baseModel (--base-model) to name the base model.`,
        );
      }
      if (folder === undefined) baseModel ??= named;
    }
    // Given explicitly, a repo id that is also a folder here is kept (a folder downloaded under
    // its repo's name, `--local-dir meta-llama/Llama-3.2-1B`, is common), with a word in case
    // the folder was meant.
    const explicitFolder = options.baseModel === undefined ? undefined : await localFolderNamed(options.baseModel, [dir]);
    if (explicitFolder !== undefined) {
      const warning = `baseModel ${JSON.stringify(options.baseModel)} goes into the model card as a Hub repo id, but it is also the local folder ${explicitFolder}: if the base model was loaded from that folder, pass the Hub repo it came from instead.`;
      logger.warn(warning);
      warnings.push(warning);
    }
    throwIfAborted(options.signal, 'Publishing');

    options.onPhase?.('preparing');
    const files: PreparedFile[] = [];
    const included = new Set(options.includeSensitiveFiles ?? []);
    const leftOut: string[] = [];
    const forbidden: string[] = [];
    for (const file of sourceFiles) {
      const name = file.path.split('/').pop() ?? file.path;
      if (IGNORED_NAMES.has(name) || file.path === 'README.md') continue;
      if (file.path.split('/').some((segment) => HUB_FORBIDDEN_SEGMENTS.has(segment))) {
        forbidden.push(file.path);
        continue;
      }
      const localPath = join(sourceDir, ...file.path.split('/'));
      // Left out rather than refused: the model loads without them, so a publish the tracker
      // starts unattended after a long training still goes through, and nothing secret is sent.
      if (!included.has(file.path) && (await isSensitiveFile(file.path, localPath))) {
        leftOut.push(file.path);
        continue;
      }
      files.push({ path: file.path, localPath, size: file.size });
    }
    if (forbidden.length > 0) {
      throw new InvalidArgumentError('modelDir', `The model directory ${sourceDir} holds ${forbidden.map((path) => JSON.stringify(path)).join(', ')}: huggingface_hub refuses to commit a path with a ".git" or ".cache" segment ("to prevent a server-side issue"), and the Hub is likely to refuse the commit, after every upload. Nothing was sent.`, {
        hint: `Rename or remove ${forbidden.length === 1 ? 'that file' : 'those files'} (or move the model's files to a folder without ${forbidden.length === 1 ? 'it' : 'them'}), then publish again.`,
      });
    }
    // A path that names none of the files (a typo, the folder's own name in front, `\`): the
    // file meant would be left out with only a warning, in a publish that may run unattended.
    const unmatched = [...included].filter((path) => !sourceFiles.some((file) => file.path === path));
    if (unmatched.length > 0) {
      throw new InvalidArgumentError('includeSensitiveFiles', `includeSensitiveFiles names ${unmatched.map((path) => JSON.stringify(path)).join(', ')}, which ${unmatched.length === 1 ? 'is' : 'are'} no file of the model directory ${sourceDir}. Nothing was sent.`, {
        hint: 'Give each path relative to the model directory, `/`-separated, as the dry run lists them (`tls/server.pem`); a publish with dryRun (--dry-run) lists the files and the ones left out.',
      });
    }
    if (leftOut.length > 0) {
      const warning =
        `Left out of the upload, as files holding credentials: ${leftOut.map((path) => JSON.stringify(path)).join(', ')} (in ${sourceDir}); once committed they stay in the repo's history. ` +
        'To publish one anyway, pass its path in includeSensitiveFiles (--include-sensitive <path>).';
      logger.warn(warning);
      warnings.push(warning);
    }
    const hiddenWarning = hiddenFoldersWarning(dir, validation.hiddenDirectories);
    if (hiddenWarning) {
      logger.warn(hiddenWarning);
      warnings.push(hiddenWarning);
    }
    // A README.md the model directory already had is kept in the card: its text under "Notes", its metadata in the card's.
    const existingReadme = await readFile(join(dir, 'README.md'), 'utf8').catch(() => undefined);
    // model-card.ts writes its front matter with yaml: loaded when a card is written.
    const { buildModelCard, parseFrontMatter, splitFrontMatter } = await import('./model-card.js');
    const existing = existingReadme === undefined ? undefined : splitFrontMatter(existingReadme);
    // Its front matter (license, datasets, model-index...) goes into the card's metadata, not away.
    let existingMetadata: Record<string, unknown> | undefined;
    if (existing?.frontMatter !== undefined) {
      const parsed = parseFrontMatter(existing.frontMatter);
      if ('metadata' in parsed) existingMetadata = parsed.metadata;
      else warnings.push(`The front matter of ${join(dir, 'README.md')} was left out of the model card: ${parsed.problem}. Fix it to keep its metadata (license, datasets...).`);
    }
    // PEFT's save_pretrained writes `base_model: <base_model_name_or_path>` there, often a local
    // path. The Hub refuses a card whose base_model is no model id, at the commit (after every
    // upload): the README's goes by the rule of a base model found in the configs (asRepoId).
    if (existingMetadata?.base_model !== undefined && !(await isBaseModelValue(existingMetadata.base_model, [dir]))) {
      const { base_model: dropped, ...rest } = existingMetadata;
      existingMetadata = rest;
      if (baseModel === undefined) {
        warnings.push(
          `The base_model of ${join(dir, 'README.md')} was left out of the model card: it is not a Hugging Face model id ("namespace/name"), or names a folder here, got ${JSON.stringify(dropped)}; the Hub refuses a card with a local path there. Pass baseModel (--base-model) to name the base model.`,
        );
      }
    }
    const card = buildModelCard({
      repoId: options.repoId,
      format,
      flavour,
      baseModel,
      files,
      runId: options.runId,
      mlflowTrackingUri: options.mlflowTrackingUri,
      mlflowExperimentId: options.mlflowExperimentId,
      existingNotes: existing?.body,
      existingMetadata,
    });
    const cardPath = join(temp, 'README.md');
    await writeFile(cardPath, card);
    files.push({ path: 'README.md', localPath: cardPath, size: (await stat(cardPath)).size });
    files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));

    return {
      dir,
      format,
      flavour,
      layout: validation.layout ?? undefined,
      converted,
      baseModel,
      validation,
      files,
      bytes: files.reduce((sum, f) => sum + f.size, 0),
      sensitiveLeftOut: leftOut,
      warnings,
      cleanup,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
