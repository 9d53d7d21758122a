/**
 * `publishToHub`: validate a fine-tuned model, convert an MLX LoRA adapter to PEFT (fused models
 * go as they are), write a model card, and upload everything to the Hugging Face Hub in one
 * commit, exactly once.
 *
 * Exactly once: every Hub call is retried under the shared policy, but the commit is guarded.
 * It carries `parentCommit` (the branch head read before it) and a unique publish id in its
 * description. Before another attempt after a failure that may have reached the Hub (a lost
 * answer, a 5xx, a 409/412), the branch's recent commits are searched for that id: found, the
 * publish is done; not found, the next attempt keeps the same parent, so the Hub itself refuses
 * (412) whichever of two racing attempts comes second. The parent only moves on when somebody
 * else's commit is at the head, and then the lost attempt can no longer land either.
 *
 * @module
 */
import { randomUUID } from '../core/node-crypto.js';
import pLimit from 'p-limit';
import type { CommitOperation } from '@huggingface/hub';
import type { Env } from '../core/env.js';
import { envString } from '../core/env.js';
import { AbortedError, HubError, type ArtifactUploaderError, InvalidArgumentError, SourceChangedError, VerificationError, type VerificationMismatch } from '../core/errors.js';
import { LocalFileBlob } from '../core/file-blob.js';
import { HttpClient, type TlsOptions } from '../core/http.js';
import type { CertificateFileSettings } from '../core/tls-failure.js';
import { redact, redactAddress, redactingLogger, registerSecret, silentLogger, type Logger } from '../core/logger.js';
import { isRetryableCommitError, resolveRetryOptions, RETRYABLE_STATUSES, withRetry, type RetryOptions } from '../core/retry.js';
import { snapshotFile, sourceChange, type FileSnapshot } from '../core/source-snapshot.js';
import { createTrackingClient } from '../mlflow/tracking-client.js';
import type { LoraFlavour, ModelFormat } from '../model/detect-format.js';
import type { ModelValidationReport, ValidateModelOptions } from '../model/validate.js';
import { VERSION } from '../version.js';
// hub-session.ts holds the `@huggingface/hub` client: loaded when a publish reaches the Hub.
import type { HubSession } from './hub-session.js';
import { prepareUpload, type PreparedUpload } from './prepare-upload.js';
import { isHubRepoId } from '../core/hub-repo-id.js';
import { assertHubAllowed, PUBLIC_HUB_URL } from './test-guard.js';

/** Tags set on the MLflow run once the model is on the Hub. */
export const HUB_RUN_TAGS = Object.freeze({
  repoId: 'hf_hub.repo_id',
  repoUrl: 'hf_hub.repo_url',
  commitOid: 'hf_hub.commit_oid',
  commitUrl: 'hf_hub.commit_url',
});

/** How the branch's history is searched for a publish id (commits, newest first). */
const MARKER_SEARCH_DEPTH = 100;
/** The line of the commit description that identifies a publish. */
const MARKER_PREFIX = 'artifact-uploader-publish-id: ';
/**
 * The line of the commit description that records the publish's `includeSensitiveFiles` (a
 * JSON array, sorted; `[]` for none), so that a later call of the same key can tell whether
 * the commit it finds holds the credential files it asks for (see {@link foundCommitSensitiveFiles}).
 */
const SENSITIVE_PREFIX = 'artifact-uploader-include-sensitive: ';

/**
 * A set of repo paths, sorted, duplicates dropped: what two `includeSensitiveFiles` are compared by.
 *
 * @example
 * ```ts
 * sensitivePathSet(['b/.env', '.env', '.env']); // ['.env', 'b/.env']
 * ```
 */
export function sensitivePathSet(paths: readonly string[] | undefined): string[] {
  return [...new Set(paths ?? [])].sort();
}

/**
 * A set of repo paths as a message names it: `none`, or the quoted paths.
 *
 * @example
 * ```ts
 * describePathSet([]); // 'none'
 * ```
 */
export function describePathSet(paths: readonly string[]): string {
  return paths.length === 0 ? 'none' : paths.map((p) => JSON.stringify(p)).join(', ');
}

/** Steps of a publish, in order (`converting` only for MLX adapters, `tagging` only with a run). */
export type PublishPhase =
  | 'validating'
  | 'converting'
  | 'preparing'
  | 'connecting'
  | 'uploading'
  | 'committing'
  | 'verifying'
  | 'tagging'
  | 'done';

/** Progress of a publish. */
export type PublishProgressEvent =
  | { type: 'phase'; phase: PublishPhase }
  /** A file's hashing or upload progress (0..1); LFS files report per file, inline files at commit. */
  | { type: 'file'; path: string; state: 'hashing' | 'uploading'; progress: number }
  /** Bytes sent so far out of all bytes of the publish. */
  | { type: 'bytes'; loaded: number; total: number }
  /** A Hub call failed and will be tried again after `delayMs`. */
  | { type: 'retry'; action: string; attempt: number; delayMs: number; error: string };

/** Options of {@link publishToHub}. */
export interface PublishToHubOptions {
  /**
   * The model directory (MLX or PEFT LoRA adapter, or fused model). Left out of the upload, at
   * any depth: hidden directories (`.git/`, `.cache/huggingface/`, `.ipynb_checkpoints/`), a
   * `.git` file (a worktree's or submodule's pointer), OS litter (`.DS_Store`) and files holding
   * credentials (see {@link includeSensitiveFiles}). Hidden directories other than `.git/` and
   * `.cache/` are named in a warning. A file named `.cache` is refused with an
   * `InvalidArgumentError` before anything is sent, as `huggingface_hub` refuses it.
   */
  modelDir: string;
  /**
   * Target repo, `namespace/name`. Created (as a model repo) when missing. A name the Hub does
   * not accept (`huggingface_hub`'s `validate_repo_id` rules) is an `InvalidArgumentError`.
   */
  repoId: string;
  /**
   * Hub token with write access.
   * @default HF_TOKEN
   */
  accessToken?: string;
  /**
   * Hub base URL.
   * @default HF_ENDPOINT, else https://huggingface.co
   */
  hubUrl?: string;
  /**
   * Visibility of the repo when it has to be created (an existing repo is left as it is).
   * @default the Hub's default (public)
   */
  private?: boolean;
  /**
   * Commit message: first line is the title, the rest the description.
   * @default "Upload LoRA adapter (PEFT) with artifact-uploader" or "Upload fused model with artifact-uploader"
   */
  commitMessage?: string;
  /**
   * Branch to commit to. It must exist.
   * @default 'main'
   */
  revision?: string;
  /**
   * Validate, convert into a temp dir and report the exact files and sizes, without any
   * network call (no token needed).
   * @default false
   */
  dryRun?: boolean;
  /** MLflow run the model came from: recorded in the model card and tagged with the commit URL (see {@link tagRun}). */
  runId?: string;
  /**
   * Hugging Face repo id of the base model, for the model card and the PEFT config of a converted
   * MLX adapter (a PEFT adapter's own `adapter_config.json` is uploaded as it is, with a warning
   * when it names its base model by a local path); anything else
   * (a local path) is refused with an `InvalidArgumentError`, as the Hub refuses such a card.
   * @default from the adapter config (`model` / `base_model_name_or_path`) or `config.json`
   *   `_name_or_path`, when it is a `namespace/name` repo id (a local path there is left out)
   */
  baseModel?: string;
  /**
   * Repo paths (`/`-separated, as the dry run lists them) of files holding credentials to upload
   * anyway. Such files (`.env`, `.env.*`, `.netrc`, `.npmrc`, `.pypirc`, `.git-credentials`,
   * `credentials`, `credentials.json`, an SSH private key such as `id_rsa`, a `.pem`/`.key` file
   * holding a private key) are otherwise left out of the upload, at any depth, with a warning
   * naming each: once committed, a file stays in the repo's history.
   * @default none: every such file is left out
   */
  includeSensitiveFiles?: readonly string[];
  /** MLflow details for the model card's run link. */
  mlflow?: {
    /** http(s) tracking server URI (credentials are stripped before it is written). */
    trackingUri?: string;
    experimentId?: string;
  };
  /**
   * Called once the commit is on the Hub, once per tag (`hf_hub.repo_id`, `hf_hub.repo_url`,
   * `hf_hub.commit_oid`, `hf_hub.commit_url`), when `runId` is set. A failure is logged and reported in `warnings`; the publish still succeeds.
   * `false` turns tagging off.
   * @default sets the tags on the MLflow run through the tracking client
   *   (`mlflow.trackingUri`, else `MLFLOW_TRACKING_URI`, else the embedded `./mlruns` store)
   */
  tagRun?: ((runId: string, key: string, value: string) => Promise<void>) | false;
  /**
   * Identifies this publish across processes (the publish tracker passes its key): written into
   * the commit description and, before uploading, searched for in the branch's last 100 commits;
   * when found, nothing is uploaded and the status is `already-published`. The commit also
   * records the publish's `includeSensitiveFiles`: a call of the same key that asks for another
   * set is refused with an `InvalidArgumentError` before anything is sent (a commit made by an
   * earlier version, which records none, gives a warning instead). Pass the
   * `publishId` of a `HubError` from a publish that failed after its commit was sent to find
   * that commit instead of making another. A non-empty string
   * without control characters (tab, CR, LF ...) and without whitespace at either end; any other
   * is refused with an `InvalidArgumentError`.
   * @default a random id (each call is a new publish)
   */
  idempotencyKey?: string;
  /** Stops the publish (between steps and in-flight requests). */
  signal?: AbortSignal;
  /** Progress events: phases, per-file progress, bytes, retries. */
  onProgress?: (event: PublishProgressEvent) => void;
  /**
   * Allow the public Hub while running under a test runner (see `detectTestRunner`).
   * @default false
   */
  allowPublicHubInTests?: boolean;
  /** @default silent */
  logger?: Logger;
  /** Retry and timeout policy of every Hub call (MLflow's env vars and defaults apply). */
  retry?: RetryOptions;
  /** Validation thresholds. */
  validation?: ValidateModelOptions;
  /**
   * After committing, list the commit's files and compare sizes with what was sent.
   * @default true
   */
  verify?: boolean;
  /** TLS settings for a self-hosted Hub (custom CA bundle, or skipping verification). */
  tls?: TlsOptions;
  /** Custom fetch for every Hub request (proxies, tests). @default our HTTP client's (TLS, timeouts) */
  fetch?: typeof fetch;
  /**
   * Environment to read HF_TOKEN / HF_ENDPOINT from. The public-Hub guard looks for test-runner
   * signals in it and, separately, in `process.env`: it can add signals, never hide the real ones.
   * @default process.env
   */
  env?: Env;
}

/** How a publish ended. */
export type PublishStatus = 'published' | 'already-published' | 'dry-run';

/** A file of the publish. */
export interface PublishedFile {
  /** Path in the repo. */
  path: string;
  size: number;
  /**
   * For LFS files: the sha256 (hex) of the file, the LFS oid `@huggingface/hub` computed from it
   * and the Hub lists at the commit (after verification).
   */
  sha256?: string;
  /**
   * How the file at the commit was checked (the `verify` option): `checksum` for LFS files,
   * whose oid (the sha256 of the bytes read, which the Hub checks uploads against) the commit
   * lists as computed; `size` for the rest (small files go in the commit itself). Absent when
   * not verified (dry run, `verify: false`, already published), and for a `.gitattributes` the
   * Hub extended with rules for the LFS files it did not cover.
   */
  verified?: 'checksum' | 'size';
}

/** What {@link publishToHub} did. */
export interface PublishResult {
  status: PublishStatus;
  repoId: string;
  /** `https://huggingface.co/<repoId>` (or the custom Hub's). */
  repoUrl: string;
  revision: string;
  /** The commit (absent for dry runs). */
  commitOid?: string;
  commitUrl?: string;
  /** Files uploaded (or that would be), with sizes, sorted by path, README.md included. */
  files: PublishedFile[];
  /** Total bytes of {@link files}. */
  bytes: number;
  format: ModelFormat;
  flavour?: LoraFlavour;
  /** True when an MLX adapter was converted to PEFT. */
  converted: boolean;
  baseModel?: string;
  validation: ModelValidationReport;
  /**
   * True when the repo did not exist and this call created it. False when it existed, and also
   * when this call's create request got no answer (a dropped connection, a timeout) and its
   * retry found the repo there: the Hub answers that retry 409 "You already created this model
   * repo" whether the lost request or a concurrent publish with the same token created it, and a
   * create carries nothing of ours to look for afterwards (the repo's initial commit is the
   * Hub's), so this call does not claim it. Such a repo, left empty by a commit that failed, is
   * not reported in `HubError.repoCreated` either.
   */
  repoCreated: boolean;
  /** The id written into the commit description. */
  publishId: string;
  /** True when every MLflow tag was set. */
  mlflowTagged: boolean;
  /** Validation, conversion and tagging warnings. */
  warnings: string[];
}

function checkOptions(options: PublishToHubOptions): void {
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'publishToHub expects an options object.');
  if (typeof options.modelDir !== 'string' || options.modelDir === '') {
    throw new InvalidArgumentError('modelDir', `Expected \`modelDir\` to be a directory path, got ${JSON.stringify(options.modelDir)}.`);
  }
  // The Hub's own rules, not just its alphabet: a name it will not create (`x.git`, `a--b`) is
  // refused here, before the model is validated and converted, and not by the Hub at the end
  // (or never, by a dry run).
  if (!isHubRepoId(options.repoId)) {
    throw new InvalidArgumentError(
      'repoId',
      `Expected \`repoId\` to be "namespace/name" (letters, digits, '-', '_', '.'; each part at most 96 characters, starting with a letter or digit and not ending with '-' or '.'; no '--' or '..'; not ending with '.git'), got ${JSON.stringify(options.repoId)}.`,
    );
  }
  if (options.revision !== undefined && (typeof options.revision !== 'string' || options.revision.trim() === '')) {
    throw new InvalidArgumentError('revision', `Expected \`revision\` to be a branch name, got ${JSON.stringify(options.revision)}.`);
  }
  if (options.baseModel !== undefined && !isHubRepoId(options.baseModel, { namespace: 'optional' })) {
    // It becomes the card's `base_model`, which the Hub checks at the commit: refused there, the
    // whole publish would fail after every file was uploaded.
    throw new InvalidArgumentError('baseModel', `Expected \`baseModel\` to be the Hub repo id of the base model ("namespace/name"), got ${JSON.stringify(options.baseModel)}.`, {
      hint: 'Pass the Hugging Face repo the model was fine-tuned from, such as "meta-llama/Llama-3.2-1B", not a local path.',
    });
  }
  if (options.includeSensitiveFiles !== undefined && (!Array.isArray(options.includeSensitiveFiles) || !options.includeSensitiveFiles.every((p) => typeof p === 'string' && p !== ''))) {
    throw new InvalidArgumentError('includeSensitiveFiles', `Expected \`includeSensitiveFiles\` to be a list of paths in the model directory, got ${JSON.stringify(options.includeSensitiveFiles)}.`, {
      hint: 'List the paths as the dry run prints them, such as [".env"]; leave it unset to keep every credential file out.',
    });
  }
  if (options.idempotencyKey !== undefined) checkIdempotencyKey(options.idempotencyKey, 'idempotencyKey');
}

/** Control characters (C0, DEL, C1: tab, CR, LF, NUL ...) and the Unicode line and paragraph separators. */
const KEY_CONTROL = /[\p{Cc}\u2028\u2029]/u;
/** Whitespace at either end; JS `\s` also covers the Unicode spaces (NBSP, ideographic space) and the BOM. */
const KEY_EDGE_SPACE = /^\s|\s$/u;

/**
 * Throws an {@link InvalidArgumentError} (naming `argument`) unless `key` can identify a publish
 * on the Hub: a non-empty string with no control character and no whitespace at either end.
 * The key is written into the commit description and found there again by later publishes; a
 * line's edges (trailing whitespace, a CR) are what text handling most often changes, and
 * earlier versions compared lines trimmed, so a key ending in a space, a tab or a CR was never
 * found again and a lost commit answer meant the same model committed a second time. Refused
 * rather than trimmed, so that `'job-42 '` and `'job-42'` never name one publish on the Hub and
 * two in a tracker's state file. Shared with the publish tracker, whose training ids are these
 * keys.
 */
export function checkIdempotencyKey(key: unknown, argument: string): void {
  if (typeof key !== 'string' || key === '') {
    throw new InvalidArgumentError(argument, `Expected \`${argument}\` to be a non-empty string, got ${JSON.stringify(key)}.`);
  }
  const control = KEY_CONTROL.exec(key)?.[0];
  const problem = control !== undefined ? `contains the control character ${codePoint(control)}` : KEY_EDGE_SPACE.test(key) ? 'starts or ends with whitespace' : undefined;
  if (problem) {
    throw new InvalidArgumentError(argument, `\`${argument}\` ${JSON.stringify(key)} ${problem}.`, {
      hint: 'It is written into the Hub commit and searched for there by later publishes: pass it trimmed, on one line, without tabs or other control characters.',
    });
  }
}

function codePoint(char: string): string {
  return `U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Splits a commit message into the Hub's title and description. */
function commitText(options: PublishToHubOptions, prepared: PreparedUpload, publishId: string): { title: string; description: string } {
  const defaultTitle = `Upload ${prepared.format === 'lora' ? 'LoRA adapter (PEFT)' : 'fused model'} with artifact-uploader`;
  const [first, ...rest] = (options.commitMessage ?? '').split('\n');
  const title = first?.trim() || defaultTitle;
  const lines = [rest.join('\n').trim()].filter(Boolean);
  if (options.runId) lines.push(`MLflow run: ${options.runId}`);
  lines.push(`Published by artifact-uploader ${VERSION}.`, `${SENSITIVE_PREFIX}${JSON.stringify(sensitivePathSet(options.includeSensitiveFiles))}`, `${MARKER_PREFIX}${publishId}`);
  return { title, description: lines.join('\n\n') };
}

/**
 * Whether a commit's title or description has the marker line of `publishId`. The line is
 * compared as written first, so the key is matched exactly, whatever its edges; then without
 * the whitespace around it (a CR of CRLF line ends, indentation), which is how earlier versions
 * compared and keeps the markers already on the Hub found. Trimming the line never makes two
 * accepted keys match each other: {@link checkIdempotencyKey} refuses keys with whitespace at
 * their edges. (It does let a key match a marker that an earlier version wrote for the same key
 * with a trailing space, which is the publish the caller meant.)
 */
export function hasMarker(commit: { title: string; message: string }, publishId: string): boolean {
  const line = `${MARKER_PREFIX}${publishId}`;
  return [commit.title, commit.message].some((text) => text.split('\n').some((l) => l === line || l.trim() === line));
}

/**
 * The `includeSensitiveFiles` a commit's description records ({@link SENSITIVE_PREFIX}), or
 * `undefined` for a commit that records none: one made by an earlier version of
 * artifact-uploader, which wrote no such line, whose set cannot be known.
 */
function recordedSensitiveFiles(commit: { message: string }): string[] | undefined {
  for (const line of commit.message.split('\n')) {
    const trimmed = line.trim();
    if (!trimmed.startsWith(SENSITIVE_PREFIX)) continue;
    try {
      const paths: unknown = JSON.parse(trimmed.slice(SENSITIVE_PREFIX.length));
      if (Array.isArray(paths) && paths.every((p) => typeof p === 'string')) return sensitivePathSet(paths);
    } catch {
      // Not ours after all (edited by hand): as good as no record.
    }
  }
  return undefined;
}

/**
 * Checks the commit a publish found by its key against this call's `includeSensitiveFiles`
 * before the call reports it `already-published` with its own file list: a commit made with
 * another set holds credential files this call leaves out (and would report as never sent), or
 * lacks ones this call asks for (reported published, never sent). The publish tracker refuses
 * such a resume from its state file; this is the same refusal for a direct call, from the
 * commit's own record. Returns the warning for a commit that records no set (its files were
 * not checked), or `undefined`.
 *
 * @throws InvalidArgumentError when the commit records another set than this call's; nothing was sent.
 */
function foundCommitSensitiveFiles(commit: { oid: string; title: string; message: string }, options: PublishToHubOptions, prepared: PreparedUpload, publishId: string): string | undefined {
  const asked = sensitivePathSet(options.includeSensitiveFiles);
  const recorded = recordedSensitiveFiles(commit);
  if (recorded === undefined) {
    if (asked.length === 0 && prepared.sensitiveLeftOut.length === 0) return undefined;
    const parts = [
      ...(asked.length > 0 ? [`holds ${describePathSet(asked)} (includeSensitiveFiles)`] : []),
      ...(prepared.sensitiveLeftOut.length > 0 ? [`leaves out ${describePathSet(prepared.sensitiveLeftOut)} (credential files this call left out)`] : []),
    ];
    return `Publish ${JSON.stringify(publishId)} was found on the Hub as commit ${commit.oid}, which does not record which credential files it was published with (an earlier version of artifact-uploader made it): whether it ${parts.join(' and ')} was not checked; \`files\` is this call's plan.`;
  }
  if (JSON.stringify(recorded) === JSON.stringify(asked)) return undefined;
  throw new InvalidArgumentError(
    'includeSensitiveFiles',
    `Publish ${JSON.stringify(publishId)} is on the Hub as commit ${commit.oid}, published with includeSensitiveFiles ${describePathSet(recorded)}, and this call asks for ${describePathSet(asked)}: ` +
      'reported as already published, the other set would read as sent when it never was, or a credential file on the Hub as left out. Nothing was sent.',
    {
      hint: `Pass includeSensitiveFiles ${JSON.stringify(recorded)} to get that publish's result; to publish the other set, publish it under another idempotencyKey.`,
    },
  );
}

/**
 * Refuses a Hub address that is not an http(s) URL (`localhost:8080`, `user:token@host` with its
 * `https://` left out), or one with credentials in it, before anything is done: every request
 * would fail, after the retries. What is before an `@` is not shown: with no `scheme://`, no URL
 * parser sees it as userinfo.
 */
function checkHubUrl(hubUrl: string, argument: string): void {
  let url: URL | undefined;
  try {
    url = new URL(hubUrl);
  } catch {
    url = undefined;
  }
  const shown = redactAddress(hubUrl);
  if (url && (url.username !== '' || url.password !== '') && (url.protocol === 'http:' || url.protocol === 'https:')) {
    // fetch refuses such a URL at the first request ("Request cannot be constructed from a URL
    // that includes credentials"), which then read as a Hub that does not answer; a dry run (or
    // a custom fetch that sends them) put them into repoUrl and commitUrl, and from there into
    // the run's hf_hub.* tags and the tracker's state file.
    throw new InvalidArgumentError(argument, `${argument} must not carry credentials (user:password@), got "${shown}".`, {
      hint: "Give the Hub's address without them (such as https://hub.internal); the Hub token goes in HF_TOKEN.",
    });
  }
  if (url?.protocol === 'http:' || url?.protocol === 'https:') return;
  throw new InvalidArgumentError(argument, `${argument} must be the Hub's http(s):// address, got "${shown}".`, {
    hint: `Set ${argument} to a URL such as https://huggingface.co or http://127.0.0.1:8080 (with its http:// or https://), or leave it unset for https://huggingface.co.`,
  });
}

/**
 * Publishes a fine-tuned model to the Hugging Face Hub: validates it (refusing an invalid one),
 * converts an MLX LoRA adapter to PEFT (PEFT adapters and fused models are uploaded as they
 * are), generates the model card, creates the repo if needed and uploads everything in one
 * commit over plain LFS, exactly once even when answers are lost (see the module comment).
 *
 * @throws ModelValidationError with the report when the model is not valid.
 * @throws PublicHubInTestError when aimed at the public Hub from a test run.
 * @throws InvalidArgumentError for bad options or a missing token.
 * @throws HubError when the Hub refuses or keeps failing; AbortedError when `signal` fires.
 * @example
 * ```ts
 * const result = await publishToHub({
 *   modelDir: 'out/llama-lora_20240501_093000',
 *   repoId: 'my-org/llama-lora',
 *   runId: process.env.MLFLOW_RUN_ID,
 * });
 * console.log(result.commitUrl);
 * ```
 */
export async function publishToHub(options: PublishToHubOptions): Promise<PublishResult> {
  checkOptions(options);
  const env = options.env ?? process.env;
  const logger = redactingLogger(options.logger ?? silentLogger);
  // The one way out to the caller's callback, so redacted here: a `retry` event's error is the
  // failed call's own text, which quotes the Hub's answer (a gateway echoing the token back).
  const emit = (event: PublishProgressEvent) => options.onProgress?.(event.type === 'retry' ? { ...event, error: redact(event.error) } : event);
  const phase = (p: PublishPhase) => emit({ type: 'phase', phase: p });
  const hubUrl = (options.hubUrl ?? envString('HF_ENDPOINT', env) ?? PUBLIC_HUB_URL).replace(/\/+$/, '');
  checkHubUrl(hubUrl, options.hubUrl !== undefined ? 'hubUrl' : 'HF_ENDPOINT');
  const revision = options.revision ?? 'main';
  const repoUrl = `${hubUrl}/${options.repoId}`;
  const accessToken = options.accessToken ?? envString('HF_TOKEN', env);
  registerSecret(accessToken);

  if (!options.dryRun) {
    // An injected env may add test-runner signals but never hide the real process's: each is
    // checked on its own (merged, `env: { NODE_ENV: 'production' }` or `{ VITEST: 'false' }`
    // would override the real process's signal).
    for (const probe of new Set([process.env, env])) assertHubAllowed(hubUrl, { allowPublicHubInTests: options.allowPublicHubInTests, env: probe });
    if (!accessToken) {
      throw new InvalidArgumentError('accessToken', `No Hugging Face token to publish to ${redact(hubUrl)}.`, {
        hint: 'Pass accessToken or set HF_TOKEN (a write token from https://huggingface.co/settings/tokens); a dry run needs none.',
      });
    }
    if (!accessToken.startsWith('hf_')) {
      throw new InvalidArgumentError('accessToken', 'The Hugging Face token does not look like one (it must start with "hf_").', {
        hint: 'Copy a write token from https://huggingface.co/settings/tokens into HF_TOKEN or the accessToken option.',
      });
    }
  }

  const prepared = await prepareUpload({
    modelDir: options.modelDir,
    repoId: options.repoId,
    baseModel: options.baseModel,
    includeSensitiveFiles: options.includeSensitiveFiles,
    runId: options.runId,
    mlflowTrackingUri: options.mlflow?.trackingUri,
    mlflowExperimentId: options.mlflow?.experimentId,
    validation: options.validation,
    signal: options.signal,
    logger,
    onPhase: phase,
  });
  const publishId = options.idempotencyKey ?? randomUUID();
  const base = {
    repoId: options.repoId,
    repoUrl,
    revision,
    files: prepared.files.map(({ path, size }) => ({ path, size })),
    bytes: prepared.bytes,
    format: prepared.format,
    flavour: prepared.flavour,
    converted: prepared.converted,
    baseModel: prepared.baseModel,
    validation: prepared.validation,
    publishId,
    warnings: prepared.warnings,
  };
  try {
    if (options.dryRun) {
      logger.info(`dry run: would publish ${prepared.files.length} files (${prepared.bytes} bytes) of ${prepared.dir} to ${repoUrl}`);
      phase('done');
      return { ...base, status: 'dry-run', repoCreated: false, mlflowTagged: false };
    }
    return await upload(options, prepared, { base, hubUrl, accessToken: accessToken!, env, logger, emit, phase });
  } finally {
    await prepared.cleanup();
  }
}

type BaseResult = Omit<PublishResult, 'status' | 'repoCreated' | 'mlflowTagged' | 'commitOid' | 'commitUrl'>;

interface UploadContext {
  base: BaseResult;
  hubUrl: string;
  env: Env;
  accessToken: string;
  logger: Logger;
  emit: (event: PublishProgressEvent) => void;
  phase: (phase: PublishPhase) => void;
}

/** publishToHub's certificate files (its `tls` option), as the error for one that cannot be read names them: no MLFLOW_TRACKING_* variable. */
const HUB_CERTIFICATE_FILES: CertificateFileSettings = {
  ca: { optionName: 'tls.caCertPath', what: "a PEM CA bundle that signed the Hub's certificate" },
  client: { optionName: 'tls.clientCertPath', what: 'one PEM file with the client certificate and its private key' },
};

async function upload(options: PublishToHubOptions, prepared: PreparedUpload, ctx: UploadContext): Promise<PublishResult> {
  const { logger, emit, phase } = ctx;
  const { repoId, revision, publishId, repoUrl } = ctx.base;
  const retry = resolveRetryOptions(options.retry, ctx.env);
  const http = options.fetch ? undefined : new HttpClient({ retry, logger, tls: options.tls, certificateFiles: HUB_CERTIFICATE_FILES, userAgent: `artifact-uploader/${VERSION}` });
  const onRetry = (event: { action: string; attempt: number; delayMs: number; error: unknown }) => {
    const error = event.error instanceof Error ? event.error.message : String(event.error);
    logger.warn(`hub ${event.action} failed (attempt ${event.attempt}), retrying in ${event.delayMs} ms: ${error}`);
    emit({ type: 'retry', action: event.action, attempt: event.attempt, delayMs: event.delayMs, error });
  };
  const { HubSession } = await import('./hub-session.js');
  const session = new HubSession({
    hubUrl: ctx.hubUrl,
    accessToken: ctx.accessToken,
    fetch: options.fetch ?? http!.fetch,
    retry,
    logger,
    signal: options.signal,
    onRetry,
  });
  // Read the small files (sent inline, sampled for the preupload call) while the Hub is asked
  // about the repo and its head.
  const contents = fileContents(prepared);
  contents.catch(() => undefined); // awaited (and thrown) before committing
  try {
    logger.info(`publishing ${prepared.format} model ${prepared.dir} to ${repoUrl} (${prepared.files.length} files, ${prepared.bytes} bytes)`);
    phase('connecting');
    const { created } = await session.ensureRepo(repoId, { private: options.private });
    if (created) logger.info(`created repo ${repoUrl}${options.private ? ' (private)' : ''}`);

    let commit: { oid: string; url: string; lfsOids?: Map<string, string> };
    let status: PublishStatus = 'published';
    const foundWarnings: string[] = [];
    try {
      const recent = await session.commitsSince(repoId, revision, { max: options.idempotencyKey ? MARKER_SEARCH_DEPTH : 1 });
      const head = recent[0]?.oid;
      if (!head) throw new HubError(`The Hub listed no commits for ${repoId}@${revision}.`, { hint: 'Check that the branch exists.' });
      const previous = options.idempotencyKey ? recent.find((c) => hasMarker(c, publishId)) : undefined;
      if (previous) {
        const unchecked = foundCommitSensitiveFiles(previous, options, prepared, publishId);
        if (unchecked !== undefined) {
          logger.warn(unchecked);
          foundWarnings.push(unchecked);
        }
        logger.info(`publish ${publishId} is already on the Hub as ${previous.oid}; nothing uploaded`);
        commit = { oid: previous.oid, url: `${repoUrl}/commit/${previous.oid}` };
        status = 'already-published';
      } else {
        commit = await commitExactlyOnce(session, options, prepared, ctx, head, retry, await contents);
        logger.info(`published ${repoId}@${revision}: ${commit.url}`);
      }
    } catch (error) {
      throw created ? await createdRepoLeftBehind(error, session, ctx) : error;
    }

    let files = ctx.base.files;
    if (options.verify !== false && status === 'published') {
      phase('verifying');
      const checked = await verifyCommit(session, repoId, commit.oid, prepared, commit.lfsOids ?? new Map()).catch((error: unknown) => {
        // The commit is on the Hub; only listing it failed (the Hub kept failing). Publishing
        // again without the publish id would commit a second time: hand it over, as when a
        // commit's answer is lost.
        throw error instanceof HubError && options.idempotencyKey === undefined ? mayHaveLandedError(error, publishId, commit.url) : error;
      });
      files = files.map((file) => ({ ...file, ...checked.get(file.path) }));
    }
    const tagging = await tagRun(options, ctx, commit);
    phase('done');
    return {
      ...ctx.base,
      files,
      status,
      commitOid: commit.oid,
      commitUrl: commit.url,
      repoCreated: created,
      mlflowTagged: tagging.tagged,
      warnings: [...ctx.base.warnings, ...foundWarnings, ...tagging.warnings],
    };
  } finally {
    await http?.close();
  }
}

/** A file of the commit: its blob and its snapshot from before anything read it. */
type FileContents = Array<{ path: string; localPath: string; blob: LocalFileBlob; snapshot: FileSnapshot }>;

/** Files read at once when the small ones are loaded before the commit. */
const READ_CONCURRENCY = 16;

/**
 * The commit's contents as our own file blobs, not `file:` URLs: the Hub client then hashes
 * 256 KiB chunks read straight from the file instead of 64 KiB web-stream chunks, our HTTP
 * client's fetch streams LFS bodies from the file (see {@link LocalFileBlob}), and small files
 * are read once, here, instead of once for the preupload sample and again for the commit.
 *
 * Every file is snapshotted before anything reads it, and every snapshot is checked before the
 * commit request (see {@link firstSourceChange}), so that a file rewritten in between fails the
 * publish as `SOURCE_CHANGED` instead of committing bytes that are not the ones listed, hashed or
 * sent. A small file is then read whole into memory, and the Hub client hashes it, samples it,
 * uploads it (LFS) or puts it in the commit (inline) from that one copy. A larger LFS file is
 * read twice, by `@huggingface/hub` for its sha256 (the LFS oid, which is also the file's
 * reported `sha256`: one hash, not two) and again as it is sent; a larger inline file is read
 * into memory just before the check (see {@link loadInlineFiles}).
 */
async function fileContents(prepared: PreparedUpload): Promise<FileContents> {
  const limit = pLimit(READ_CONCURRENCY);
  return Promise.all(
    prepared.files.map((file) =>
      limit(async () => {
        const snapshot = await snapshotFile(file.localPath);
        // Changed since the model was validated and listed: its listed size is no longer its size.
        if (snapshot.size !== file.size) throw new SourceChangedError(file.localPath, { size: file.size, mtimeMs: snapshot.mtimeMs }, snapshot);
        const blob = await LocalFileBlob.fromPath(file.localPath, file.size);
        if (blob.cached) {
          // A file that shrank since the snapshot cannot be read for its size: say that it changed.
          await blob.load().catch(async (error: unknown) => {
            throw (await sourceChange(file.localPath, snapshot)) ?? error;
          });
        }
        return { path: file.path, localPath: file.localPath, blob, snapshot };
      }),
    ),
  );
}

/**
 * Reads into memory every file that goes inline in the commit request (all but `lfsPaths`), so
 * that the snapshot check that follows covers the bytes the commit carries: `@huggingface/hub`
 * reads an inline file as it builds the request, after the check, and a file rewritten in
 * between would be committed unchecked (or cut to its listed size) and still pass the size check
 * of verification. Read first, then check. No extra memory to speak of: the request holds each of
 * them whole (base64) anyway.
 */
async function loadInlineFiles(contents: FileContents, lfsPaths: ReadonlySet<string>): Promise<void> {
  const limit = pLimit(READ_CONCURRENCY);
  await Promise.all(contents.filter((file) => !lfsPaths.has(file.path) && !file.blob.loaded).map((file) => limit(() => file.blob.load())));
}

/** The first file of the commit that no longer matches its snapshot, as a {@link SourceChangedError}. */
async function firstSourceChange(contents: FileContents): Promise<SourceChangedError | undefined> {
  for (const file of contents) {
    const changed = await sourceChange(file.localPath, file.snapshot);
    if (changed) return changed;
  }
  return undefined;
}

async function commitExactlyOnce(
  session: HubSession,
  options: PublishToHubOptions,
  prepared: PreparedUpload,
  ctx: UploadContext,
  head: string,
  retry: ReturnType<typeof resolveRetryOptions>,
  contents: FileContents,
): Promise<{ oid: string; url: string; lfsOids?: Map<string, string> }> {
  const { logger, emit, phase } = ctx;
  const { repoId, revision, publishId, repoUrl } = ctx.base;
  const { hubStatusOf } = await import('./hub-session.js');
  const { title, description } = commitText(options, prepared, publishId);
  const operations: CommitOperation[] = contents.map(({ path, blob }) => ({ operation: 'addOrUpdate', path, content: blob }));
  const sizes = new Map(prepared.files.map((f) => [f.path, f.size]));
  let parent = head;
  let mayHaveLanded = false;
  // Whether an attempt sent its commit request and got no refusal for it (no answer, a 5xx, an
  // abort), or its request is still out (`inFlight`: an abort may settle first): that commit may
  // land. One the Hub answered with a 4xx did not, and handing its publish id back replaced the
  // refusal's hint (a token without write access, metadata the Hub refuses) with one saying the
  // commit may be on the Hub.
  let outcomeUnknown = false;
  let inFlight = false;
  const progress = new Map<string, number>();
  const reportBytes = () => emit({ type: 'bytes', loaded: [...progress.values()].reduce((a, b) => a + b, 0), total: prepared.bytes });

  try {
    return await withRetry(
      async (attempt, signal) => {
        if (attempt > 1 && mayHaveLanded) {
          // The last attempt may have reached the Hub: look for it before committing again.
          const since = await session.commitsSince(repoId, revision, { until: parent, max: MARKER_SEARCH_DEPTH });
          const ours = since.find((c) => hasMarker(c, publishId));
          if (ours) {
            logger.info(`the previous commit attempt landed as ${ours.oid} (its answer was lost); not committing again`);
            return { oid: ours.oid, url: `${repoUrl}/commit/${ours.oid}` };
          }
          if (since.length > 0) {
            // Another commit is at the head now, so the lost attempt (parent `parent`) can never land.
            logger.info(`${revision} moved from ${parent} to ${since[0]!.oid} meanwhile; committing on top of it`);
            parent = since[0]!.oid;
          }
        }
        phase('uploading');
        try {
          return await session.commitOnce({
            repoId,
            revision,
            title,
            description,
            parentCommit: parent,
            operations,
            signal,
            // The bytes uploaded must be the bytes hashed (their sha256 is the LFS oid the commit
            // names), and the inline bytes the ones listed: a file rewritten since its snapshot
            // fails here, before anything is committed. Inline files are read before the check
            // (a read that fails on a file that shrank is reported by the catch below).
            beforeCommit: async ({ lfsPaths }) => {
              await loadInlineFiles(contents, lfsPaths);
              const changed = await firstSourceChange(contents);
              if (changed) throw changed;
            },
            onCommitRequest: () => {
              mayHaveLanded = true;
              inFlight = true;
              phase('committing');
            },
            onEvent: (event) => {
              if (event.event !== 'fileProgress' || event.state === 'error') return;
              emit({ type: 'file', path: event.path, state: event.state, progress: event.progress });
              if (event.state === 'uploading') {
                progress.set(event.path, Math.max(progress.get(event.path) ?? 0, Math.round(event.progress * (sizes.get(event.path) ?? 0))));
                reportBytes();
              }
            },
          });
        } catch (error) {
          const status = hubStatusOf(error);
          if (inFlight && !(status !== undefined && status >= 400 && status < 500)) outcomeUnknown = true;
          inFlight = false;
          // A file rewritten under an upload is why the attempt failed (the Hub refuses bytes
          // whose sha256 is not the oid announced): say so, and do not try again. Only before the
          // commit request: after it, the commit may have landed and the marker search decides.
          const changed = !mayHaveLanded && !signal?.aborted && !(error instanceof SourceChangedError) ? await firstSourceChange(contents) : undefined;
          throw changed ?? error;
        }
      },
      {
        retry,
        signal: options.signal,
        isRetryable: isRetryableCommitError,
        onRetry: (event) => {
          const status = hubStatusOf(event.error);
          logger.warn(`commit attempt ${event.attempt} to ${repoId} failed${status ? ` (${status})` : ''}; retrying in ${event.delayMs} ms`, {
            error: event.error instanceof Error ? event.error.message : String(event.error),
          });
          emit({ type: 'retry', action: 'commit', attempt: event.attempt, delayMs: event.delayMs, error: event.error instanceof Error ? event.error.message : String(event.error) });
        },
      },
    ).then((commit) => {
      for (const file of prepared.files) progress.set(file.path, file.size);
      reportBytes();
      return commit;
    });
  } catch (error) {
    // The marker search covers the attempts of this call only. Without a key of the caller's,
    // the publish id is a random one nobody else knows, and a publish run again would commit a
    // second time, whatever the usual hint says: hand the id over, to be passed back.
    const handBackId = (outcomeUnknown || inFlight) && options.idempotencyKey === undefined;
    if (error instanceof AbortedError) {
      // Aborted while the commit request was out (Ctrl-C while committing): it may land all the same.
      if (handBackId) {
        throw new AbortedError(withoutHint(error), {
          cause: error.cause ?? error,
          publishId,
          hint: landedHint(publishId),
        });
      }
      throw error;
    }
    const failed = session.toHubError(error, `commit to ${repoId}@${revision}`);
    if (handBackId && failed instanceof HubError) throw mayHaveLandedError(failed, publishId);
    throw failed;
  }
}

/**
 * `error` with the publish id to pass again as `idempotencyKey`, and a hint that says so;
 * `commitUrl` when the commit is known to be on the Hub (only its verification failed).
 */
function mayHaveLandedError(error: HubError, publishId: string, commitUrl?: string): HubError {
  return withHubErrorDetails(error, { publishId, hint: landedHint(publishId, commitUrl) });
}

/** `error` with another hint and the details given; its status, code, URL and cause kept. */
function withHubErrorDetails(error: HubError, details: { hint: string; publishId?: string; repoCreated?: boolean }): HubError {
  return new HubError(withoutHint(error), {
    status: error.status,
    hubErrorCode: error.hubErrorCode,
    method: error.method,
    url: error.url,
    publishId: details.publishId ?? error.publishId,
    repoCreated: details.repoCreated ?? error.repoCreated,
    cause: error.cause ?? error,
    hint: details.hint,
  });
}

/**
 * The failure of a publish that created the repo, before its commit landed, as a `HubError`
 * with `repoCreated: true` and a hint that says the repo was left behind (and, when the Hub
 * says so, that it is empty). The repo is reported, not deleted: the Hub has no conditional
 * delete, so a commit landing between our look and the delete (our own attempt whose answer was
 * lost, or somebody else's) would go with it; and a token that may write need not be allowed
 * to delete. Publishing again reuses it. Errors other than a `HubError` are returned as they are.
 */
async function createdRepoLeftBehind(error: unknown, session: HubSession, ctx: UploadContext): Promise<unknown> {
  if (!(error instanceof HubError)) return error;
  const { repoId, repoUrl } = ctx.base;
  // Asked only of a Hub that answers (a refusal: a 4xx other than 408 and 429), and only when no
  // commit request may still land (no publish id handed back): after the retries ran out on one
  // that does not answer or rate-limits, asking would run them all again. A new repo has `main`
  // only, whatever `revision` was asked.
  const status = error.status;
  const refused = status !== undefined && status >= 400 && status < 500 && !RETRYABLE_STATUSES.has(status) && error.publishId === undefined;
  const commits = refused ? await session.commitsSince(repoId, 'main', { max: 2 }).catch(() => undefined) : undefined;
  const note =
    commits?.length === 1
      ? `The repo ${repoUrl} was created by this publish and is still empty: publish again once this is fixed (the repo is reused), or delete it.`
      : `The repo ${repoUrl} was created by this publish.`;
  return withHubErrorDetails(error, { repoCreated: true, hint: [error.hint, note].filter(Boolean).join(' ') });
}

/** `error`'s message without the hint its constructor appended, for an error that gets another hint. */
function withoutHint(error: ArtifactUploaderError): string {
  return error.hint && error.message.endsWith(error.hint) ? error.message.slice(0, -error.hint.length).trimEnd() : error.message;
}

/** What to do about a commit that may be on the Hub (`commitUrl`: that is). */
function landedHint(publishId: string, commitUrl?: string): string {
  const where = commitUrl ? `The commit is on the Hub (${commitUrl}), unverified` : 'The commit may be on the Hub even so (it was sent before this failure)';
  return `${where}: publish again with idempotencyKey "${publishId}" and a commit that landed is found instead of made a second time; without it, publishing again commits again.`;
}

/** The repo's Git attributes file, which decides what is LFS and which the Hub extends. */
const GIT_ATTRIBUTES = '.gitattributes';

/**
 * The commit's files against what was sent: every file there with its size, and every LFS file
 * with the oid `@huggingface/hub` computed from our file (`lfsOids`, by path; the Hub checks
 * uploaded bytes against it). Returns how each file was checked.
 */
async function verifyCommit(
  session: HubSession,
  repoId: string,
  commitOid: string,
  prepared: PreparedUpload,
  lfsOids: ReadonlyMap<string, string>,
): Promise<Map<string, Pick<PublishedFile, 'sha256' | 'verified'>>> {
  const remote = new Map((await session.files(repoId, commitOid)).map((f) => [f.path, f]));
  const mismatches: VerificationMismatch[] = [];
  const checked = new Map<string, Pick<PublishedFile, 'sha256' | 'verified'>>();
  for (const file of prepared.files) {
    const listed = remote.get(file.path);
    const oid = lfsOids.get(file.path);
    if (listed === undefined) mismatches.push({ artifactPath: file.path, expectedSize: file.size, reason: 'missing' });
    else if (file.path === GIT_ATTRIBUTES && listed.size > file.size) {
      // The Hub appends a `<path> filter=lfs ...` rule for every LFS file of the commit that the
      // `.gitattributes` does not cover: the one committed is ours and then some, and that is
      // not a failed upload (the commit is there; failing it made every retry commit again).
      // Left unverified rather than called checked.
      checked.set(file.path, {});
    } else if (listed.size !== file.size) mismatches.push({ artifactPath: file.path, expectedSize: file.size, actualSize: listed.size, reason: 'size' });
    else if (oid !== undefined && listed.lfsOid !== undefined && listed.lfsOid !== oid) {
      mismatches.push({ artifactPath: file.path, expectedSize: file.size, actualSize: listed.size, reason: 'checksum' });
    } else if (oid !== undefined && listed.lfsOid === oid) checked.set(file.path, { sha256: oid, verified: 'checksum' });
    else checked.set(file.path, { verified: 'size' });
  }
  if (mismatches.length > 0) throw new VerificationError(mismatches);
  return checked;
}

/** Tags the run through the MLflow tracking client the rest of the library would use. */
function defaultTagRun(options: PublishToHubOptions): (runId: string, key: string, value: string) => Promise<void> {
  let client: ReturnType<typeof createTrackingClient> | undefined;
  return async (runId, key, value) => {
    client ??= createTrackingClient({ trackingUri: options.mlflow?.trackingUri, env: options.env, retry: options.retry, logger: options.logger });
    await client.setTag(runId, key, value, { signal: options.signal });
  };
}

async function tagRun(options: PublishToHubOptions, ctx: UploadContext, commit: { oid: string; url: string }): Promise<{ tagged: boolean; warnings: string[] }> {
  if (!options.runId || options.tagRun === false) return { tagged: false, warnings: [] };
  const setTag = options.tagRun ?? defaultTagRun(options);
  ctx.phase('tagging');
  const tags: Array<[string, string]> = [
    [HUB_RUN_TAGS.repoId, ctx.base.repoId],
    [HUB_RUN_TAGS.repoUrl, ctx.base.repoUrl],
    [HUB_RUN_TAGS.commitOid, commit.oid],
    [HUB_RUN_TAGS.commitUrl, commit.url],
  ];
  try {
    for (const [key, value] of tags) await setTag(options.runId, key, value);
    return { tagged: true, warnings: [] };
  } catch (error) {
    const warning = `The model is on the Hub (${commit.url}) but tagging MLflow run ${options.runId} failed: ${error instanceof Error ? error.message : String(error)}`;
    ctx.logger.warn(warning);
    return { tagged: false, warnings: [warning] };
  }
}
