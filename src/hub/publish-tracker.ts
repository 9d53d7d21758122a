/**
 * Publishing each trained model exactly once, with a status a pipeline can poll.
 *
 * `PublishTracker` keeps one record per training (or publish key) in a JSON state file shared
 * by every process that uses it (see core/json-state-file.ts for the atomic writes and the lock):
 *
 * ```
 *   (no record) ──status(succeeded, allowUpload)──▶ uploading ──▶ completed   (final)
 *                                                       │
 *                                                       └──────▶ failed ──retry()──▶ uploading
 * ```
 *
 * - Only one caller can move a training to `uploading` (the move happens under the state file's
 *   lock, and within a process under a per-key queue); everyone else sees `uploading`, then
 *   `completed`. A `completed` record is final: it is never published again.
 * - Every publish uses the training id as its `idempotencyKey`, so even if the state file were
 *   lost, or a process died between committing and recording it, a new attempt finds the commit
 *   on the Hub and uploads nothing.
 * - An `uploading` record whose process died (same host: its pid is gone; any host: no heartbeat
 *   for `staleUploadMs`) is taken over by the next caller allowed to upload.
 *
 * **Failure policy.** A failed publish stays `failed`, with its error, until:
 * - `tracker.retry(id)` is called (always retries, whatever the error), or
 * - a later `status(id, { training: 'succeeded', allowUpload: true })` or `publishOnce(id, ...)`
 *   call, but only when the failure was transient (network, timeout, 408/409/412/429/5xx, abort),
 *   at least `autoRetry.cooldownMs` after it, and fewer than `autoRetry.maxAttempts` attempts
 *   were made. Permanent failures (invalid model, refused token, bad options) wait for `retry()`.
 *
 * @module
 */
import { hostname } from 'node:os';
import { randomUUID } from '../core/node-crypto.js';
import { resolve } from 'node:path';
import type * as z from 'zod';
import { ArtifactUploaderError, InvalidArgumentError } from '../core/errors.js';
import { redact, redactingLogger, silentLogger, type Logger } from '../core/logger.js';
import { sleep } from '../core/abort.js';
import { isTransientFailure } from '../core/retry.js';
import { checkIdempotencyKey, describePathSet, publishToHub, sensitivePathSet, type PublishResult, type PublishToHubOptions } from './publish.js';
import { JsonStateFile, processAlive } from '../core/json-state-file.js';
import type { RecordSchema, TrackerStateSchema } from './tracker-state.js';
import { SerialQueue } from '../core/serial-queue.js';

/** What the training job reports. */
export type TrainingState = 'running' | 'succeeded' | 'failed';

/**
 * The unified status: `training` → `uploading` → `completed` | `failed`, plus `upload-needed`
 * when training succeeded but the caller did not allow the upload.
 */
export type UnifiedPublishStatus = 'training' | 'upload-needed' | 'uploading' | 'completed' | 'failed';

/** A failure as recorded (errors are stored as data, with secrets redacted). */
export interface RecordedError {
  name: string;
  code?: string;
  message: string;
  /** Whether a later `status(..., { allowUpload: true })` may retry it (see the failure policy). */
  transient: boolean;
  /** ISO time of the failure. */
  at: string;
}

/** What {@link PublishTracker.status} answers. */
export interface PublishStatusReport {
  trainingId: string;
  status: UnifiedPublishStatus;
  /** Which stage failed, for `failed`. */
  failedStage?: 'training' | 'upload';
  /** One sentence: why this status. */
  message: string;
  repoId?: string;
  repoUrl?: string;
  commitOid?: string;
  commitUrl?: string;
  /** The last publish error, for `failed`. */
  error?: RecordedError;
  /** Publish attempts so far. */
  attempts: number;
}

/** Options of {@link PublishTracker.status}. */
export interface TrackerStatusOptions {
  /** The training job's state. */
  training: TrainingState;
  /** The trained model; required when training succeeded and `allowUpload` is true. */
  modelDir?: string;
  /** Target Hub repo, `namespace/name`. */
  repoId: string;
  /** Whether this call may start (or retry, per the policy) the upload. */
  allowUpload: boolean;
  /** Extra publish options for this training (run id, base model, ...), over the tracker's defaults. */
  publish?: Partial<PublishToHubOptions>;
}

/** Options of {@link PublishTracker}. */
export interface PublishTrackerOptions {
  /** The JSON state file (created with its directory when missing). */
  stateFile: string;
  /** Publish options applied to every publish (hubUrl, accessToken, private, retry, ...). */
  defaults?: Partial<PublishToHubOptions>;
  /**
   * The publish function; tests may wrap or replace it.
   * @default publishToHub
   */
  publish?: (options: PublishToHubOptions) => Promise<PublishResult>;
  /** Where transitions are logged (each once). @default silent */
  logger?: Logger;
  /**
   * Automatic retries of transient failures by later `status`/`publishOnce` calls; `false`
   * leaves every failure to `retry()`.
   * @default { maxAttempts: 3, cooldownMs: 60000 }
   */
  autoRetry?: false | { maxAttempts?: number; cooldownMs?: number };
  /**
   * An `uploading` record without a heartbeat for this long (ms) is taken over, when its
   * process cannot be checked directly (another host). Heartbeats are written every third of it.
   * @default 600000 (10 minutes)
   */
  staleUploadMs?: number;
  /**
   * How often `publishOnce` re-reads the state file while another process uploads, in ms.
   * @default 1000
   */
  pollMs?: number;
  /** Lock settings of the state file (see core/json-state-file.ts). */
  lockStaleMs?: number;
  lockTimeoutMs?: number;
}

/** What {@link PublishTracker.publishOnce} returns. */
export interface PublishOnceResult {
  key: string;
  /**
   * `published` when the publish ran in this process (for this call or a concurrent one);
   * `already-published` when the key was completed earlier or by another process.
   */
  status: 'published' | 'already-published';
  repoId: string;
  repoUrl: string;
  commitOid: string;
  commitUrl: string;
  /** The publish result, when the publish ran in this process. */
  result?: PublishResult;
}

type PublishRecord = z.infer<typeof RecordSchema>;
type TrackerState = z.infer<typeof TrackerStateSchema>;

/**
 * The publish options recorded with a key, so that a later attempt (`retry()`, a takeover, an
 * automatic retry) publishes what the first one was asked to, where it was asked to: without
 * them a `retry(id)` committed to `main` instead of the branch asked for (where the key is not
 * searched for, so a commit that landed there was made again), created a repo asked for as
 * private as public, and lost the run id and the base model; without `includeSensitiveFiles` a
 * retry left out the credential file the first attempt was asked to publish. Plain values only: a token, a
 * logger or a callback is never written to the state file.
 */
const RECORDED_OPTIONS = ['revision', 'private', 'baseModel', 'runId', 'commitMessage', 'includeSensitiveFiles'] as const;
type RecordedOptions = NonNullable<PublishRecord['publish']>;

/** The recordable options of `options` (the ones set), over those recorded before. */
function recordedOptions(before: RecordedOptions | undefined, options: Partial<PublishToHubOptions> | undefined): RecordedOptions | undefined {
  const out: Record<string, unknown> = { ...before };
  for (const key of RECORDED_OPTIONS) if (options?.[key] !== undefined) out[key] = options[key];
  return Object.keys(out).length > 0 ? (out as RecordedOptions) : undefined;
}

/**
 * Codes of the failures `publishToHub` raises before it sends anything (bad options, an invalid
 * model): after one of those, no commit of the key can be on the Hub.
 */
const REFUSED_BEFORE_SENDING = new Set(['INVALID_ARGUMENT', 'MODEL_INVALID']);

/**
 * The error for an attempt of `record`'s key asked to publish another set of credential files
 * (`includeSensitiveFiles`) than the earlier attempt, or `undefined`. Every attempt of a key
 * publishes under that key, and an attempt finds a commit the earlier one landed (its answer
 * lost, or its process killed before recording it) and reports it published without uploading:
 * the other set would be reported published and never be, or a credential file the caller now
 * leaves out be on the Hub already. So the set may change only while no commit of the key can
 * exist; a call that does not name it resumes with the recorded one.
 */
function changedSensitiveFiles(record: PublishRecord | undefined, options: Partial<PublishToHubOptions> | undefined): InvalidArgumentError | undefined {
  const asked = options?.includeSensitiveFiles;
  if (record === undefined || record.state === 'completed' || asked === undefined) return undefined;
  if (record.state === 'failed' && REFUSED_BEFORE_SENDING.has(record.error?.code ?? '')) return undefined;
  const recorded = sensitivePathSet(record.publish?.includeSensitiveFiles);
  if (JSON.stringify(sensitivePathSet(asked)) === JSON.stringify(recorded)) return undefined;
  return new InvalidArgumentError(
    'includeSensitiveFiles',
    `Publish ${JSON.stringify(record.key)} was attempted with includeSensitiveFiles ${describePathSet(recorded)}, and this attempt asks for ${describePathSet(sensitivePathSet(asked))}. ` +
      'Its earlier commit may be on the Hub already, with the first set: resuming finds it by its key and uploads nothing, so the new set would be reported published without being so. Nothing was sent.',
    {
      hint: `Pass the same includeSensitiveFiles (or leave it unset: the recorded one is used) to resume ${JSON.stringify(record.key)}; to publish the other set, publish it under another training id or key.`,
    },
  );
}

/** The in-process half of a running publish. */
interface Inflight {
  promise: Promise<PublishResult>;
}

type Decision = { report: PublishStatusReport; inflight?: Inflight };

function recordError(error: unknown): RecordedError {
  const e = error instanceof Error ? error : new Error(String(error));
  const code = (e as { code?: unknown }).code;
  return {
    name: e.name,
    ...(typeof code === 'string' ? { code } : {}),
    message: redact(e.message),
    transient: isTransientFailure(error),
    at: new Date().toISOString(),
  };
}

/**
 * Publishes each training's model exactly once and answers a unified status. See the module
 * comment for the state machine and the failure policy.
 *
 * @example
 * ```ts
 * declare const job: { id: string; state: TrainingState; outputDir: string }; // your scheduler's job
 *
 * const tracker = new PublishTracker({ stateFile: '.artifact-uploader/publish-state.json', logger: console });
 * // in the pipeline's polling loop:
 * const s = await tracker.status(job.id, { training: job.state, modelDir: job.outputDir, repoId: 'my-org/llama-lora', allowUpload: true });
 * if (s.status === 'completed') console.log(s.commitUrl);
 * ```
 */
export class PublishTracker {
  private readonly file: JsonStateFile<TrackerState>;
  private readonly publish: (options: PublishToHubOptions) => Promise<PublishResult>;
  private readonly logger: Logger;
  private readonly instance = randomUUID();
  private readonly host = hostname();
  private readonly inflight = new Map<string, Inflight>();
  /** Decisions about one key in this process, one at a time (other processes: the file lock). */
  private readonly queues = new SerialQueue();
  private readonly lastLogged = new Map<string, string>();
  private readonly autoRetry: false | { maxAttempts: number; cooldownMs: number };
  private readonly staleUploadMs: number;
  private readonly pollMs: number;

  constructor(private readonly options: PublishTrackerOptions) {
    if (typeof options?.stateFile !== 'string' || options.stateFile === '') {
      throw new InvalidArgumentError('stateFile', 'PublishTracker needs `stateFile`, the path of its JSON state file.');
    }
    this.file = new JsonStateFile(resolve(options.stateFile), async () => (await import('./tracker-state.js')).TrackerStateSchema, {
      empty: () => ({ version: 1, records: {} }),
      lockStaleMs: options.lockStaleMs,
      lockTimeoutMs: options.lockTimeoutMs,
      corruptHint: 'Inspect it and fix or delete it; a deleted state file forgets past publishes, but publishes already on the Hub are still found by their publish id and not uploaded again.',
    });
    this.publish = options.publish ?? publishToHub;
    this.logger = redactingLogger(options.logger ?? silentLogger);
    this.autoRetry = options.autoRetry === false ? false : { maxAttempts: options.autoRetry?.maxAttempts ?? 3, cooldownMs: options.autoRetry?.cooldownMs ?? 60_000 };
    this.staleUploadMs = options.staleUploadMs ?? 600_000;
    this.pollMs = options.pollMs ?? 1000;
  }

  /** The state file's path. */
  get stateFile(): string {
    return this.file.path;
  }

  /**
   * The unified status of a training; starts the publish when training succeeded, nothing was
   * published yet and `allowUpload` is true (answering `uploading` at once, without waiting).
   */
  async status(trainingId: string, options: TrackerStatusOptions): Promise<PublishStatusReport> {
    checkKey(trainingId);
    if (!['running', 'succeeded', 'failed'].includes(options?.training)) {
      throw new InvalidArgumentError('training', `Expected \`training\` to be "running", "succeeded" or "failed", got ${JSON.stringify(options?.training)}.`);
    }
    if (typeof options.repoId !== 'string' || options.repoId === '') throw new InvalidArgumentError('repoId', 'Expected `repoId` ("namespace/name").');
    const { report } = await this.queues.run(trainingId, () => this.decide(trainingId, options, 'status'));
    this.logTransition(report);
    return report;
  }

  /**
   * Retries a failed publish now, whatever the failure policy says. Does nothing for a
   * publish that is running or completed. Options override what the failed attempt used; the
   * rest is as it was (`modelDir`, `repoId`, and the `revision`, `private`, `baseModel`, `runId`,
   * `commitMessage` and `includeSensitiveFiles` publish options, recorded in the state file; the
   * tracker's defaults for everything else).
   *
   * @throws InvalidArgumentError when `publish.includeSensitiveFiles` differs from the failed
   *   attempt's and that attempt may have committed (its commit would be found and the new set never published).
   */
  async retry(trainingId: string, options: { modelDir?: string; repoId?: string; publish?: Partial<PublishToHubOptions> } = {}): Promise<PublishStatusReport> {
    checkKey(trainingId);
    const { report } = await this.queues.run(trainingId, async () => {
      const record = (await this.file.read()).records[trainingId];
      if (!record) {
        throw new InvalidArgumentError('trainingId', `Nothing to retry: no publish is recorded for ${JSON.stringify(trainingId)} in ${this.file.path}.`);
      }
      if (record.state !== 'failed') return { report: this.reportOf(record) };
      return this.start(trainingId, {
        repoId: options.repoId ?? record.repoId,
        modelDir: options.modelDir ?? record.modelDir,
        publish: options.publish,
        reason: 'retry requested',
        force: true,
      });
    });
    this.logTransition(report);
    return report;
  }

  /**
   * Publishes `options.modelDir` to `options.repoId` once for `key`, for callers without a
   * training poller: concurrent callers (in this process or others sharing the state file) get
   * the one publish's outcome; a key already completed returns its commit without uploading.
   *
   * @throws ArtifactUploaderError with code `PUBLISH_FAILED` when the key's publish failed and the
   *   failure policy does not allow another attempt yet (call `retry(key)`); otherwise the
   *   publish's own error.
   */
  async publishOnce(key: string, options: PublishToHubOptions): Promise<PublishOnceResult> {
    checkKey(key);
    if (typeof options?.repoId !== 'string' || typeof options.modelDir !== 'string') {
      throw new InvalidArgumentError('options', 'publishOnce needs `repoId` and `modelDir`.');
    }
    for (;;) {
      const decision = await this.queues.run(key, () =>
        this.decide(key, { training: 'succeeded', modelDir: options.modelDir, repoId: options.repoId, allowUpload: true, publish: options }, 'publishOnce'),
      );
      this.logTransition(decision.report);
      const { report } = decision;
      if (decision.inflight) {
        const result = await decision.inflight.promise;
        return {
          key,
          status: result.status === 'already-published' ? 'already-published' : 'published',
          repoId: result.repoId,
          repoUrl: result.repoUrl,
          commitOid: result.commitOid!,
          commitUrl: result.commitUrl!,
          result,
        };
      }
      if (report.status === 'completed') {
        return { key, status: 'already-published', repoId: report.repoId!, repoUrl: report.repoUrl!, commitOid: report.commitOid!, commitUrl: report.commitUrl! };
      }
      if (report.status === 'failed') {
        throw new ArtifactUploaderError('PUBLISH_FAILED', `Publishing ${JSON.stringify(key)} failed${report.attempts > 1 ? ` ${report.attempts} times` : ''}: ${report.error?.message ?? 'unknown error'}`, {
          hint: report.error?.transient
            ? 'The failure looked transient; it is retried automatically after the cool-down, or now with tracker.retry(key).'
            : 'Fix the cause, then call tracker.retry(key).',
        });
      }
      // Another process is uploading: wait for it (or for it to go stale and be taken over).
      await sleep(this.pollMs, options.signal);
    }
  }

  /** Waits for every publish this tracker started (for graceful shutdown and tests). */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight.values()].map((i) => i.promise));
  }

  // ───────────────────────────── decisions ─────────────────────────────

  private async decide(key: string, options: TrackerStatusOptions, caller: 'status' | 'publishOnce'): Promise<Decision> {
    const inflight = this.inflight.get(key);
    const record = (await this.file.read()).records[key];
    if (inflight) {
      return { report: record ? this.reportOf(record) : { trainingId: key, repoId: options.repoId, attempts: 1, status: 'uploading', message: 'Uploading.' }, inflight };
    }

    if (record?.state === 'completed') return { report: this.reportOf(record) };
    if (record?.state === 'uploading') {
      if (!this.isStale(record)) return { report: this.reportOf(record) };
      if (options.training === 'succeeded' && options.allowUpload) {
        return this.start(key, { ...options, reason: 'the previous upload was interrupted (its process is gone)' });
      }
      return { report: { ...this.reportOf(record), status: 'upload-needed', message: 'The previous upload was interrupted; call again with allowUpload: true to resume it.' } };
    }
    if (record?.state === 'failed') {
      const allowed = options.training === 'succeeded' && options.allowUpload ? this.autoRetryBlocker(record) : 'allowUpload is false';
      if (allowed === undefined) return this.start(key, { ...options, reason: `retrying after a transient failure (${record.error?.message ?? 'unknown'})` });
      const report = this.reportOf(record);
      return { report: { ...report, message: `${report.message} Not retried automatically: ${allowed}.` } };
    }

    // Nothing recorded yet.
    const base = { trainingId: key, repoId: options.repoId, attempts: 0 };
    if (options.training === 'running') return { report: { ...base, status: 'training', message: 'Training is running.' } };
    if (options.training === 'failed') {
      return { report: { ...base, status: 'failed', failedStage: 'training', message: 'Training failed; there is nothing to publish.' } };
    }
    if (!options.allowUpload) {
      return { report: { ...base, status: 'upload-needed', message: 'Training succeeded but the upload is not allowed (allowUpload: false); nothing was started.' } };
    }
    if (typeof options.modelDir !== 'string' || options.modelDir === '') {
      throw new InvalidArgumentError('modelDir', `Training ${JSON.stringify(key)} succeeded and allowUpload is true, but no modelDir was given to ${caller}.`);
    }
    return this.start(key, { ...options, reason: 'training succeeded' });
  }

  /** Why a failed record may not be retried automatically now, or `undefined` when it may. */
  private autoRetryBlocker(record: PublishRecord): string | undefined {
    if (!this.autoRetry) return 'automatic retries are off; call tracker.retry()';
    if (!record.error?.transient) return 'the failure is not transient; fix it and call tracker.retry()';
    if (record.attempts >= this.autoRetry.maxAttempts) return `${record.attempts} attempts were made (autoRetry.maxAttempts is ${this.autoRetry.maxAttempts}); call tracker.retry()`;
    const waitMs = Date.parse(record.error.at) + this.autoRetry.cooldownMs - Date.now();
    if (waitMs > 0) return `cooling down for ${Math.ceil(waitMs / 1000)} s more`;
    return undefined;
  }

  private isStale(record: PublishRecord): boolean {
    const owner = record.owner;
    if (!owner) return true;
    if (owner.instance === this.instance) return !this.inflight.has(record.key);
    const heartbeat = Date.parse(record.heartbeatAt ?? record.updatedAt);
    if (Date.now() - heartbeat > this.staleUploadMs) return true;
    return owner.host === this.host && !processAlive(owner.pid);
  }

  /** Moves the record to `uploading` under the file lock and starts the publish. */
  private async start(
    key: string,
    options: { repoId: string; modelDir?: string; publish?: Partial<PublishToHubOptions>; reason: string; force?: boolean },
  ): Promise<Decision> {
    if (typeof options.modelDir !== 'string' || options.modelDir === '') {
      throw new InvalidArgumentError('modelDir', `No modelDir is known for ${JSON.stringify(key)}; pass it to retry().`);
    }
    const modelDir = resolve(options.modelDir);
    const claimed = await this.file.update<{ won: boolean; record: PublishRecord; refused?: InvalidArgumentError }>((state) => {
      const current = state.records[key];
      // Re-check under the lock: another process may have moved first.
      if (current?.state === 'completed') return { result: { won: false, record: current } };
      if (current?.state === 'uploading' && !this.isStale(current)) return { result: { won: false, record: current } };
      if (current?.state === 'failed' && !options.force && this.autoRetryBlocker(current) !== undefined) {
        return { result: { won: false, record: current } };
      }
      const refused = changedSensitiveFiles(current, options.publish);
      if (refused) return { result: { won: false, record: current!, refused } };
      const now = new Date().toISOString();
      const publish = recordedOptions(current?.publish, options.publish);
      const record: PublishRecord = {
        key,
        state: 'uploading',
        repoId: options.repoId,
        modelDir,
        ...(publish ? { publish } : {}),
        attempts: (current?.attempts ?? 0) + 1,
        owner: { host: this.host, pid: process.pid, instance: this.instance },
        startedAt: now,
        updatedAt: now,
        heartbeatAt: now,
      };
      return { state: { ...state, records: { ...state.records, [key]: record } }, result: { won: true, record } };
    });
    if (claimed.refused) throw claimed.refused;
    if (!claimed.won) return { report: this.reportOf(claimed.record), inflight: this.inflight.get(key) };

    const record = claimed.record;
    this.logger.info(`publish ${key}: uploading ${modelDir} to ${record.repoId} (${options.reason}, attempt ${record.attempts})`);
    const publishOptions: PublishToHubOptions = {
      ...this.options.defaults,
      ...options.publish,
      // What the first attempt was asked for, unless this call says otherwise.
      ...record.publish,
      modelDir,
      repoId: record.repoId,
      // The key marks the commit, so a publish that landed unrecorded is found, not repeated.
      idempotencyKey: key,
      dryRun: false,
    };
    const inflight: Inflight = { promise: this.run(key, publishOptions) };
    this.inflight.set(key, inflight);
    void inflight.promise.then(
      () => this.inflight.delete(key),
      () => this.inflight.delete(key),
    );
    return { report: this.reportOf(record), inflight };
  }

  private async run(key: string, options: PublishToHubOptions): Promise<PublishResult> {
    const heartbeat = setInterval(() => {
      void this.file
        .update((state) => {
          const r = state.records[key];
          if (r?.state !== 'uploading' || r.owner?.instance !== this.instance) return { result: undefined };
          return { state: { ...state, records: { ...state.records, [key]: { ...r, heartbeatAt: new Date().toISOString() } } }, result: undefined };
        })
        .catch((error: unknown) => this.logger.warn(`publish ${key}: could not write the heartbeat: ${(error as Error).message}`));
    }, Math.max(1000, Math.floor(this.staleUploadMs / 3)));
    heartbeat.unref();
    let result: PublishResult;
    try {
      result = await this.publish(options);
    } catch (error) {
      clearInterval(heartbeat);
      await this.finish(key, (r) => ({ ...r, state: 'failed', error: recordError(error) })).catch((writeError: unknown) =>
        this.logger.error(`publish ${key}: failed, and the failure could not be recorded: ${(writeError as Error).message}`),
      );
      throw error;
    }
    clearInterval(heartbeat);
    // If this write fails the record stays `uploading`, goes stale, and the next caller's
    // attempt finds the commit on the Hub by its key: completed without uploading again.
    await this.finish(key, (r) => ({
        ...r,
        state: 'completed',
        error: undefined,
        result: {
          status: result.status,
          repoUrl: result.repoUrl,
          commitOid: result.commitOid ?? '',
          commitUrl: result.commitUrl ?? '',
          files: result.files.length,
          bytes: result.bytes,
          format: result.format,
        },
      })).catch((writeError: unknown) => this.logger.error(`publish ${key}: published as ${result.commitUrl}, but that could not be recorded: ${(writeError as Error).message}`));
    return result;
  }

  private async finish(key: string, change: (record: PublishRecord) => PublishRecord): Promise<void> {
    const record = await this.file.update((state) => {
      const current = state.records[key];
      if (!current) return { result: undefined };
      const next = { ...change(current), owner: undefined, heartbeatAt: undefined, updatedAt: new Date().toISOString() };
      return { state: { ...state, records: { ...state.records, [key]: next } }, result: next };
    });
    if (record) this.logTransition(this.reportOf(record));
  }

  private reportOf(record: PublishRecord): PublishStatusReport {
    const base = { trainingId: record.key, repoId: record.repoId, attempts: record.attempts };
    switch (record.state) {
      case 'completed':
        return {
          ...base,
          status: 'completed',
          message: record.result?.status === 'already-published' ? 'Published (the commit was found on the Hub).' : 'Published.',
          repoUrl: record.result?.repoUrl,
          commitOid: record.result?.commitOid,
          commitUrl: record.result?.commitUrl,
        };
      case 'failed':
        return { ...base, status: 'failed', failedStage: 'upload', message: `Publishing failed: ${record.error?.message ?? 'unknown error'}.`, error: record.error };
      default:
        return { ...base, status: 'uploading', message: `Uploading to ${record.repoId} (attempt ${record.attempts}).` };
    }
  }

  /** Logs a training's status when it differs from what this tracker last logged for it. */
  private logTransition(report: PublishStatusReport): void {
    const signature = `${report.status}:${report.attempts}`;
    if (this.lastLogged.get(report.trainingId) === signature) return;
    this.lastLogged.set(report.trainingId, signature);
    const fields = { trainingId: report.trainingId, repoId: report.repoId, ...(report.commitUrl ? { commitUrl: report.commitUrl } : {}) };
    const line = `publish ${report.trainingId}: ${report.status}: ${report.message}`;
    if (report.status === 'failed') this.logger.error(line, { ...fields, ...(report.error ? { error: report.error.message } : {}) });
    else if (report.status === 'upload-needed') this.logger.warn(line, fields);
    else this.logger.info(line, fields);
  }
}

/** A training id is the publish's idempotency key (see {@link checkIdempotencyKey}). */
function checkKey(key: string): void {
  checkIdempotencyKey(key, 'trainingId');
}

/**
 * {@link PublishTracker.publishOnce} with a tracker for `stateFile`: publishes once per `key`
 * across calls and processes sharing the file.
 *
 * @example
 * ```ts
 * const { commitUrl } = await publishOnce('llama-lora-2024-05-01', {
 *   stateFile: '.artifact-uploader/publish-state.json',
 *   modelDir: 'out/llama-lora_20240501_093000',
 *   repoId: 'my-org/llama-lora',
 * });
 * ```
 */
export async function publishOnce(
  key: string,
  options: PublishToHubOptions & Pick<PublishTrackerOptions, 'stateFile'> & Omit<PublishTrackerOptions, 'stateFile' | 'defaults'>,
): Promise<PublishOnceResult> {
  const { stateFile, publish, autoRetry, staleUploadMs, pollMs, lockStaleMs, lockTimeoutMs, ...publishOptions } = options;
  const tracker = new PublishTracker({ stateFile, publish, logger: options.logger, autoRetry, staleUploadMs, pollMs, lockStaleMs, lockTimeoutMs });
  return tracker.publishOnce(key, publishOptions);
}
