/**
 * zod schemas of the tracking API's answers, and their conversion to the public shapes of
 * `tracking-types.ts`. They accept what every MLflow version sends: int64 fields as numbers
 * (3.x) or strings (proto JSON of older servers and proxies), repeated fields left out when
 * empty, metric values `"NaN"` / `"Infinity"` as strings, and unknown keys (ignored). A body
 * that does not fit is an `InvalidResponseError` naming the fields at fault.
 *
 * The clients import this module (and so zod) on the first answer they validate, not when the
 * package is imported.
 *
 * @module
 */
import * as z from 'zod';
import { InvalidResponseError } from '../core/errors.js';
import { redactUrl } from '../core/logger.js';
import type { ArtifactListing, Experiment, Metric, Run, RunInfo } from './tracking-types.js';
import { RUN_STATUSES } from './tracking-types.js';

/**
 * An int64: a JSON number or a decimal string.
 *
 * @example
 * ```ts
 * int64Schema.parse('1700000000000'); // 1700000000000
 * ```
 */
export const int64Schema = z.union([z.number().int(), z.string().regex(/^-?\d+$/).transform(Number)]);

/**
 * A double: a JSON number, or proto JSON's `"NaN"`, `"Infinity"`, `"-Infinity"`.
 *
 * @example
 * ```ts
 * doubleSchema.parse('NaN'); // NaN
 * ```
 */
export const doubleSchema = z.union([
  z.number(),
  z.enum(['NaN', 'Infinity', '-Infinity']).transform((s) => (s === 'NaN' ? Number.NaN : s === 'Infinity' ? Infinity : -Infinity)),
  z.string().regex(/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/).transform(Number),
]);

const keyValueList = z
  .array(z.object({ key: z.string(), value: z.string().optional() }))
  .optional()
  .transform((list): Record<string, string> => Object.fromEntries((list ?? []).map((t) => [t.key, t.value ?? ''])));

/** `Experiment` in `service.proto`. */
export const experimentSchema = z
  .object({
    experiment_id: z.union([z.string(), z.number().transform(String)]),
    name: z.string(),
    artifact_location: z.string().optional(),
    lifecycle_stage: z.string().optional(),
    creation_time: int64Schema.optional(),
    last_update_time: int64Schema.optional(),
    tags: keyValueList,
  })
  .transform(
    (e): Experiment => ({
      experimentId: e.experiment_id,
      name: e.name,
      artifactLocation: e.artifact_location ?? '',
      lifecycleStage: e.lifecycle_stage ?? 'active',
      ...(e.creation_time !== undefined ? { creationTime: e.creation_time } : {}),
      ...(e.last_update_time !== undefined ? { lastUpdateTime: e.last_update_time } : {}),
      tags: e.tags,
    }),
  );

/** `RunInfo` in `service.proto` (`run_uuid` is the old name of `run_id`). */
export const runInfoSchema = z
  .object({
    run_id: z.string().optional(),
    run_uuid: z.string().optional(),
    run_name: z.string().optional(),
    experiment_id: z.union([z.string(), z.number().transform(String)]),
    user_id: z.string().optional(),
    status: z.enum(RUN_STATUSES as [string, ...string[]]).optional(),
    start_time: int64Schema.optional(),
    end_time: int64Schema.optional(),
    artifact_uri: z.string().optional(),
    lifecycle_stage: z.string().optional(),
  })
  .refine((i) => i.run_id !== undefined || i.run_uuid !== undefined, { message: 'run_id is missing', path: ['run_id'] })
  .transform(
    (i): RunInfo => ({
      runId: (i.run_id ?? i.run_uuid) as string,
      runName: i.run_name ?? '',
      experimentId: i.experiment_id,
      userId: i.user_id ?? '',
      status: (i.status ?? 'RUNNING') as RunInfo['status'],
      ...(i.start_time !== undefined ? { startTime: i.start_time } : {}),
      ...(i.end_time !== undefined && i.end_time !== 0 ? { endTime: i.end_time } : {}),
      artifactUri: i.artifact_uri ?? '',
      lifecycleStage: i.lifecycle_stage ?? 'active',
    }),
  );

const metricSchema = z
  .object({ key: z.string(), value: doubleSchema.optional(), timestamp: int64Schema.optional(), step: int64Schema.optional() })
  .transform((m): Metric => ({ key: m.key, value: m.value ?? 0, timestamp: m.timestamp ?? 0, step: m.step ?? 0 }));

/** `Run` in `service.proto`. */
export const runSchema = z
  .object({
    info: runInfoSchema,
    data: z
      .object({ metrics: z.array(metricSchema).optional(), params: keyValueList, tags: keyValueList })
      .optional(),
  })
  .transform(
    (r): Run => ({
      info: r.info,
      data: { metrics: r.data?.metrics ?? [], params: r.data?.params ?? {}, tags: r.data?.tags ?? {} },
    }),
  );

/** `GET experiments/get-by-name` and `experiments/get`. */
export const getExperimentResponseSchema = z.object({ experiment: experimentSchema });
/** `POST experiments/create`. */
export const createExperimentResponseSchema = z.object({ experiment_id: z.union([z.string().min(1), z.number().transform(String)]) });
/** `POST runs/create` and `GET runs/get`. */
export const runResponseSchema = z.object({ run: runSchema });
/** `runs/search`: the page of runs (absent when none matched). */
export const searchRunsResponseSchema = z.object({ runs: z.array(runSchema).optional().default([]), next_page_token: z.string().optional() });
/** `POST runs/update`. */
export const updateRunResponseSchema = z.object({ run_info: runInfoSchema });
/** `POST runs/log-batch` and `runs/set-tag`: an empty object. */
export const emptyResponseSchema = z.object({});

/** `GET artifacts/list`: `files` is left out when the directory is empty. */
export const listArtifactsResponseSchema = z.object({
  root_uri: z.string().optional(),
  files: z
    .array(z.object({ path: z.string(), is_dir: z.boolean().optional(), file_size: int64Schema.optional() }))
    .optional(),
  next_page_token: z.string().optional(),
});

/** A non-negative int64 of the artifacts proxy: a JSON number or a decimal string. */
const proxyInt64 = z.union([z.number().int(), z.string().regex(/^\d+$/).transform(Number)]);

/** `GET mlflow-artifacts/artifacts?path=`: the entries of one directory (`files` left out when empty). */
export const artifactsListResponseSchema = z.object({
  files: z
    .array(
      z.object({
        path: z.string(),
        is_dir: z.boolean().optional(),
        file_size: proxyInt64.optional(),
      }),
    )
    .optional(),
});

/** `POST mlflow-artifacts/mpu/create`: the upload id and one presigned part URL (or proxy URL) per part. */
export const createMultipartResponseSchema = z.object({
  upload_id: z.string().optional(),
  credentials: z
    .array(
      z.object({
        url: z.string().min(1),
        part_number: proxyInt64,
        headers: z.record(z.string(), z.string()).optional(),
      }),
    )
    .optional(),
});

/**
 * Converts one page of `artifacts/list` to the public shape.
 *
 * @example
 * ```ts
 * toArtifactListing({ root_uri: 'mlflow-artifacts:/0/r/artifacts' }); // { rootUri: '...', files: [] }
 * ```
 */
export function toArtifactListing(page: z.output<typeof listArtifactsResponseSchema>): ArtifactListing {
  return {
    rootUri: page.root_uri ?? '',
    files: (page.files ?? []).map((f) => ({
      path: f.path,
      isDir: f.is_dir ?? false,
      ...(f.file_size !== undefined && !f.is_dir ? { fileSize: f.file_size } : {}),
    })),
  };
}

/**
 * Validates a response body; a mismatch is an `InvalidResponseError` listing the first
 * issues (field path and problem), with the zod error as `cause`.
 *
 * @example
 * ```ts
 * const { run } = parseMlflowResponse(runResponseSchema, body, { method: 'GET', url });
 * ```
 */
export function parseMlflowResponse<S extends z.ZodType>(schema: S, body: unknown, where: { method: string; url: string }): z.output<S> {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issues = result.error.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    .join('; ');
  const url = redactUrl(where.url);
  throw new InvalidResponseError(`Unexpected answer from MLflow ${where.method} ${url}: ${issues}.`, {
    method: where.method,
    url,
    cause: result.error,
  });
}
