/**
 * The format of the publish tracker's state file (zod). Loaded with zod on the tracker's first
 * read, not when the package is imported.
 *
 * @module
 */
import * as z from 'zod';

/** A failure as the state file records it (secrets redacted). */
export const RecordedErrorSchema = z.object({
  name: z.string(),
  code: z.string().optional(),
  message: z.string(),
  transient: z.boolean(),
  at: z.string(),
});

/** One training's publish. */
export const RecordSchema = z.object({
  key: z.string(),
  state: z.enum(['uploading', 'completed', 'failed']),
  repoId: z.string(),
  modelDir: z.string().optional(),
  attempts: z.number().int().nonnegative(),
  owner: z.object({ host: z.string(), pid: z.number().int(), instance: z.string() }).optional(),
  startedAt: z.string(),
  updatedAt: z.string(),
  heartbeatAt: z.string().optional(),
  /**
   * The caller's publish options that say what is published where (see `RECORDED_OPTIONS` in
   * publish-tracker.ts), kept for `retry()` and takeovers: never a token or a function.
   */
  publish: z
    .object({
      revision: z.string().optional(),
      private: z.boolean().optional(),
      baseModel: z.string().optional(),
      runId: z.string().optional(),
      commitMessage: z.string().optional(),
      includeSensitiveFiles: z.array(z.string()).optional(),
    })
    .optional(),
  result: z
    .object({
      status: z.string(),
      repoUrl: z.string(),
      commitOid: z.string(),
      commitUrl: z.string(),
      files: z.number().int(),
      bytes: z.number(),
      format: z.string(),
    })
    .optional(),
  error: RecordedErrorSchema.optional(),
});

/** The whole file: one record per training id. */
export const TrackerStateSchema = z.object({
  version: z.literal(1),
  records: z.record(z.string(), RecordSchema),
});
