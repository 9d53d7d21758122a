/**
 * zod schemas of the logged-model and Model Registry answers, converted to the public shapes of
 * `registry-types.ts`. Like the tracking schemas they accept int64 as numbers or strings,
 * repeated fields left out when empty, and unknown keys.
 *
 * @module
 */
import * as z from 'zod';
import type { LoggedModel, LoggedModelStatus, ModelVersion, ModelVersionStatus } from './registry-types.js';

const tagList = z
  .array(z.object({ key: z.string(), value: z.string().optional() }))
  .optional()
  .transform((list): Record<string, string> => Object.fromEntries((list ?? []).map((t) => [t.key, t.value ?? ''])));

const idString = z.union([z.string(), z.number().transform(String)]);

/** `LoggedModel` in `service.proto` (`{info, data}`). */
export const loggedModelSchema = z
  .object({
    info: z.object({
      model_id: z.string().min(1),
      experiment_id: idString,
      name: z.string().optional(),
      artifact_uri: z.string().min(1),
      status: z.string().optional(),
      source_run_id: z.string().optional(),
      tags: tagList,
    }),
  })
  .transform(
    ({ info }): LoggedModel => ({
      modelId: info.model_id,
      experimentId: info.experiment_id,
      name: info.name ?? '',
      artifactUri: info.artifact_uri,
      status: (info.status?.replace(/^LOGGED_MODEL_/, '') || 'UNSPECIFIED') as LoggedModelStatus,
      ...(info.source_run_id ? { sourceRunId: info.source_run_id } : {}),
      tags: info.tags,
    }),
  );

/** `ModelVersion` in `model_registry.proto`. */
export const modelVersionSchema = z
  .object({
    name: z.string(),
    version: idString,
    source: z.string().optional(),
    run_id: z.string().optional(),
    status: z.enum(['PENDING_REGISTRATION', 'FAILED_REGISTRATION', 'READY']).optional(),
    status_message: z.string().optional(),
    aliases: z.array(z.string()).optional(),
    tags: tagList,
    description: z.string().optional(),
  })
  .transform(
    (v): ModelVersion => ({
      name: v.name,
      version: v.version,
      source: v.source ?? '',
      ...(v.run_id ? { runId: v.run_id } : {}),
      status: (v.status ?? 'READY') as ModelVersionStatus,
      ...(v.status_message ? { statusMessage: v.status_message } : {}),
      aliases: v.aliases ?? [],
      tags: v.tags,
      ...(v.description ? { description: v.description } : {}),
    }),
  );

/** `POST logged-models`, `GET`/`PATCH logged-models/<id>`. */
export const loggedModelResponseSchema = z.object({ model: loggedModelSchema });
/** `POST logged-models/search`. */
export const searchLoggedModelsResponseSchema = z.object({ models: z.array(loggedModelSchema).optional().default([]), next_page_token: z.string().optional() });
/** `POST registered-models/create`. */
export const registeredModelResponseSchema = z.object({ registered_model: z.object({ name: z.string() }).passthrough() });
/** `GET registered-models/get`, only its aliases, as alias → version. */
export const registeredModelAliasesResponseSchema = z
  .object({ registered_model: z.object({ aliases: z.array(z.object({ alias: z.string(), version: idString })).optional() }) })
  .transform((body): Record<string, string> => Object.fromEntries((body.registered_model.aliases ?? []).map((a) => [a.alias, a.version])));
/** `POST model-versions/create`, `GET model-versions/get`. */
export const modelVersionResponseSchema = z.object({ model_version: modelVersionSchema });
/** `GET model-versions/search`. */
export const searchModelVersionsResponseSchema = z.object({
  model_versions: z.array(modelVersionSchema).optional().default([]),
  next_page_token: z.string().optional(),
});
/** `GET runs/get`, only the logged models the run lists as outputs (`run.outputs.model_outputs`). */
export const runModelOutputsResponseSchema = z
  .object({
    run: z.object({
      outputs: z.object({ model_outputs: z.array(z.object({ model_id: z.string() })).optional() }).optional(),
    }),
  })
  .transform((body): string[] => (body.run.outputs?.model_outputs ?? []).map((o) => o.model_id));
