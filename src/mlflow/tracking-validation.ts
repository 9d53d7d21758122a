/**
 * MLflow's own rules for ids, names and batch sizes (`mlflow/utils/validation.py`), checked
 * before anything is sent or written: a bad key fails here with an error naming it, instead of
 * as a 400 after half of a batch was already logged, and the local FileStore enforces exactly
 * what a server would.
 *
 * @module
 */
import { InvalidArgumentError } from '../core/errors.js';
import { assertArtifactPath } from './artifacts-api.js';
import type { Experiment, MetricInput, ParamValue } from './tracking-types.js';

/**
 * MLflow's run id rule, `^[a-zA-Z0-9][\w\-]{0,255}$`. Python's `\w` is Unicode-aware, so
 * letters and digits of any script count.
 */
export const RUN_ID_PATTERN = /^[a-zA-Z0-9][\p{L}\p{N}_-]{0,255}$/u;
/** MLflow's experiment id rule, `^[a-zA-Z0-9][\w\-]{0,63}$`. */
export const EXPERIMENT_ID_PATTERN = /^[a-zA-Z0-9][\p{L}\p{N}_-]{0,63}$/u;
/** Metric, param and tag names: word characters, `/`, `.`, `-`, space and `:` (POSIX rule). */
const KEY_PATTERN = /^[/\p{L}\p{N}_.\- :]*$/u;

/**
 * A string's length as MLflow's limits count it: in characters (code points), as Python's `len`
 * and the databases do, not in UTF-16 units as JavaScript's `length` (an emoji is one, not two:
 * `.length` would refuse a name of 300 emoji that MLflow takes).
 *
 * @example
 * ```ts
 * characterCount('\u{1F600}'); // 1 ('\u{1F600}'.length is 2)
 * ```
 */
export function characterCount(text: string): number {
  let length = 0;
  for (const _ of text) length++;
  return length;
}

/** MLflow's per-request and per-value limits (`mlflow/utils/validation.py`). */
export const MLFLOW_LIMITS = Object.freeze({
  /** Metrics per `log-batch` request. */
  metricsPerBatch: 1000,
  /** Params per request, and separately tags per request. */
  paramsTagsPerBatch: 100,
  /** Metrics + params + tags per request. */
  entitiesPerBatch: 1000,
  /** The server refuses `log-batch` bodies above 1 MB (`MAX_BATCH_LOG_REQUEST_SIZE`). */
  batchRequestBytes: 1_000_000,
  /** Metric, param and tag keys. */
  keyLength: 250,
  paramValueLength: 6000,
  tagValueLength: 8000,
  experimentNameLength: 500,
});

/**
 * Checks a run id against MLflow's rule; throws {@link InvalidArgumentError} naming `argument`.
 *
 * @example
 * ```ts
 * assertRunId('0a1b2c3d4e5f', 'runId');
 * ```
 */
export function assertRunId(runId: unknown, argument = 'runId'): asserts runId is string {
  if (typeof runId !== 'string' || !RUN_ID_PATTERN.test(runId)) {
    throw new InvalidArgumentError(argument, `${argument} ${JSON.stringify(runId)} is not a valid MLflow run id.`, {
      hint: 'Run ids start with a letter or digit followed by up to 255 letters, digits, "_" or "-" (the server makes 32 hex digits); check for stray quotes or spaces.',
    });
  }
}

/**
 * Checks an experiment id against MLflow's rule; throws {@link InvalidArgumentError}.
 *
 * @example
 * ```ts
 * assertExperimentId('0');
 * ```
 */
export function assertExperimentId(experimentId: unknown, argument = 'experimentId'): asserts experimentId is string {
  if (typeof experimentId !== 'string' || !EXPERIMENT_ID_PATTERN.test(experimentId)) {
    throw new InvalidArgumentError(argument, `${argument} ${JSON.stringify(experimentId)} is not a valid MLflow experiment id.`, {
      hint: 'Experiment ids are short strings of letters, digits, "_" and "-" (usually digits, e.g. "0"); to pick an experiment by name use experimentName.',
    });
  }
}

/**
 * Checks an experiment name (non-empty, at most 500 characters).
 *
 * @example
 * ```ts
 * assertExperimentName('fine-tune');
 * ```
 */
export function assertExperimentName(name: unknown, argument = 'experimentName'): asserts name is string {
  if (typeof name !== 'string' || name.trim() === '') {
    throw new InvalidArgumentError(argument, `${argument} must be a non-empty string, got ${JSON.stringify(name)}.`);
  }
  if (characterCount(name) > MLFLOW_LIMITS.experimentNameLength) {
    throw new InvalidArgumentError(argument, `${argument} is ${characterCount(name)} characters long; MLflow allows at most ${MLFLOW_LIMITS.experimentNameLength}.`);
  }
}

/**
 * Checks a metric, param or tag key as MLflow does: allowed characters, at most 250 of them,
 * and no name that a file system would read as another (`a/../b`, `./a`, `/a`, `a/`).
 *
 * @example
 * ```ts
 * assertEntityKey('eval/accuracy', 'metric');
 * ```
 */
export function assertEntityKey(key: unknown, kind: 'metric' | 'param' | 'tag'): asserts key is string {
  const argument = `${kind} key`;
  if (typeof key !== 'string' || key === '') {
    throw new InvalidArgumentError(argument, `A ${kind} key must be a non-empty string, got ${JSON.stringify(key)}.`);
  }
  if (!KEY_PATTERN.test(key)) {
    throw new InvalidArgumentError(argument, `${kind} key ${JSON.stringify(key)} has characters MLflow refuses.`, {
      hint: 'Names may only contain letters, digits, "_", "-", ".", " ", ":" and "/".',
    });
  }
  if (pathNotUnique(key)) {
    throw new InvalidArgumentError(argument, `${kind} key ${JSON.stringify(key)} would be stored as another name on disk.`, {
      hint: 'Remove leading or trailing "/", "//", "./" and "../" segments.',
    });
  }
  if (key.length > MLFLOW_LIMITS.keyLength) {
    throw new InvalidArgumentError(argument, `${kind} key ${JSON.stringify(key.slice(0, 40))}... is ${key.length} characters long; MLflow allows at most ${MLFLOW_LIMITS.keyLength}.`);
  }
}

/** Python's `posixpath.normpath(name) != name` and friends, for keys. */
function pathNotUnique(name: string): boolean {
  if (name.startsWith('/') || name.endsWith('/') || name.includes('//')) return true;
  return name.split('/').some((segment) => segment === '.' || segment === '..');
}

/** A validated, normalized batch: every value a string or a complete metric. */
export interface NormalizedBatch {
  metrics: Array<Required<MetricInput>>;
  params: Array<{ key: string; value: string }>;
  tags: Array<{ key: string; value: string }>;
}

/**
 * Validates everything in a batch (keys, lengths, numbers) and fills metric defaults, so that
 * nothing is sent unless everything can be.
 *
 * @example
 * ```ts
 * const batch = normalizeBatch({ metrics: [{ key: 'loss', value: 0.5 }], params: { lr: 0.001 } });
 * batch.params; // [{ key: 'lr', value: '0.001' }]
 * ```
 */
export function normalizeBatch(
  input: { metrics?: MetricInput[]; params?: Record<string, ParamValue>; tags?: Record<string, string> },
  now: number = Date.now(),
): NormalizedBatch {
  const metrics = (input.metrics ?? []).map((m, index) => {
    assertEntityKey(m?.key, 'metric');
    if (typeof m.value !== 'number') {
      throw new InvalidArgumentError('metrics', `metrics[${index}] (${m.key}): value must be a number, got ${JSON.stringify(m.value)}.`);
    }
    const timestamp = m.timestamp ?? now;
    const step = m.step ?? 0;
    if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
      throw new InvalidArgumentError('metrics', `metrics[${index}] (${m.key}): timestamp must be a non-negative integer (ms since the epoch), got ${timestamp}.`);
    }
    if (!Number.isSafeInteger(step)) {
      throw new InvalidArgumentError('metrics', `metrics[${index}] (${m.key}): step must be an integer, got ${step}.`);
    }
    return { key: m.key, value: m.value, timestamp, step };
  });
  const params = Object.entries(input.params ?? {}).map(([key, raw]) => {
    assertEntityKey(key, 'param');
    if (typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'boolean') {
      throw new InvalidArgumentError('params', `param ${JSON.stringify(key)} must be a string, number or boolean, got ${typeof raw}.`);
    }
    const value = String(raw);
    if (characterCount(value) > MLFLOW_LIMITS.paramValueLength) {
      throw new InvalidArgumentError('params', `param ${JSON.stringify(key)} is ${characterCount(value)} characters long; MLflow allows at most ${MLFLOW_LIMITS.paramValueLength}.`, {
        hint: 'Log long values as an artifact (a JSON or text file) instead.',
      });
    }
    return { key, value };
  });
  const tags = Object.entries(input.tags ?? {}).map(([key, value]) => {
    assertEntityKey(key, 'tag');
    assertTagValue(key, value);
    return { key, value };
  });
  return { metrics, params, tags };
}

/**
 * Checks one tag value (a string of at most 8000 characters).
 *
 * @example
 * ```ts
 * assertTagValue('stage', 'training');
 * ```
 */
export function assertTagValue(key: string, value: unknown): asserts value is string {
  if (typeof value !== 'string') {
    throw new InvalidArgumentError('tags', `tag ${JSON.stringify(key)} must be a string, got ${typeof value}.`);
  }
  if (characterCount(value) > MLFLOW_LIMITS.tagValueLength) {
    throw new InvalidArgumentError('tags', `tag ${JSON.stringify(key)} is ${characterCount(value)} characters long; MLflow allows at most ${MLFLOW_LIMITS.tagValueLength}.`, {
      hint: 'Log long values as an artifact instead.',
    });
  }
}

/**
 * Splits a normalized batch into requests within MLflow's limits, the way the Python client
 * does (`log_batch`): params and tags in slices of 100 side by side, each request topped up
 * with metrics to 1000 entities, then the remaining metrics 1000 at a time. Unlike the Python
 * client, a request that would pass the server's 1 MB body limit (long params and tags) is
 * split further.
 *
 * @example
 * ```ts
 * chunkBatch(normalizeBatch({ metrics: manyMetrics })).length; // ceil(manyMetrics.length / 1000)
 * ```
 */
export function chunkBatch(batch: NormalizedBatch, limits: Partial<typeof MLFLOW_LIMITS> = {}): NormalizedBatch[] {
  const l = { ...MLFLOW_LIMITS, ...limits };
  const slices = <T>(items: T[], size: number): T[][] => {
    const out: T[][] = [];
    for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
    return out;
  };
  const paramSlices = slices(batch.params, l.paramsTagsPerBatch);
  const tagSlices = slices(batch.tags, l.paramsTagsPerBatch);
  const metrics = [...batch.metrics];
  const requests: NormalizedBatch[] = [];
  for (let i = 0; i < Math.max(paramSlices.length, tagSlices.length); i++) {
    const params = paramSlices[i] ?? [];
    const tags = tagSlices[i] ?? [];
    const room = Math.max(0, Math.min(l.entitiesPerBatch - params.length - tags.length, l.metricsPerBatch));
    requests.push({ params, tags, metrics: metrics.splice(0, room) });
  }
  for (const slice of slices(metrics, Math.min(l.metricsPerBatch, l.entitiesPerBatch))) requests.push({ params: [], tags: [], metrics: slice });
  return requests.flatMap((request) => splitBySize(request, l.batchRequestBytes));
}

/** Splits one request so that its JSON body stays under `maxBytes` (order kept). */
function splitBySize(request: NormalizedBatch, maxBytes: number): NormalizedBatch[] {
  // Room for `{"run_id":"<256 chars>","metrics":[],"params":[],"tags":[]}`.
  const budget = maxBytes - 512;
  const sizeOf = (item: unknown) => Buffer.byteLength(JSON.stringify(item)) + 1;
  const items = [
    ...request.params.map((item) => ({ kind: 'params' as const, item })),
    ...request.tags.map((item) => ({ kind: 'tags' as const, item })),
    ...request.metrics.map((item) => ({ kind: 'metrics' as const, item })),
  ];
  if (items.reduce((sum, x) => sum + sizeOf(x.item), 0) <= budget) return [request];
  const out: NormalizedBatch[] = [];
  let current: NormalizedBatch = { metrics: [], params: [], tags: [] };
  let bytes = 0;
  for (const { kind, item } of items) {
    const size = sizeOf(item);
    if (bytes > 0 && bytes + size > budget) {
      out.push(current);
      current = { metrics: [], params: [], tags: [] };
      bytes = 0;
    }
    (current[kind] as unknown[]).push(item);
    bytes += size;
  }
  out.push(current);
  return out;
}

/**
 * Refuses an experiment in the trash, as MLflow's `set_experiment` does.
 *
 * @example
 * ```ts
 * assertNotDeleted(await client.getOrCreateExperiment('x'), client.trackingUri);
 * ```
 */
export function assertNotDeleted(experiment: Experiment, where: string): void {
  if (experiment.lifecycleStage === 'deleted') {
    throw new InvalidArgumentError('experimentName', `Experiment "${experiment.name}" (id ${experiment.experimentId}) on ${where} is deleted.`, {
      hint: `Restore it (\`mlflow experiments restore --experiment-id ${experiment.experimentId}\`, or in the UI) or use another experiment name.`,
    });
  }
}

/**
 * Normalizes the directory of an artifact listing: `''`/`undefined` is the root; anything
 * else must be a safe relative path (`LocalPathError` otherwise).
 *
 * @example
 * ```ts
 * normalizeListPath('/model/'); // 'model'
 * ```
 */
export function normalizeListPath(path: string | undefined): string {
  const dir = (path ?? '').replace(/^\/+|\/+$/g, '');
  if (dir) assertArtifactPath(dir, { what: 'Artifact directory' });
  return dir;
}
