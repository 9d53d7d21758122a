/**
 * The zod schemas of a journal record and of an operation log (`journal.ts`), in a module of its own so that zod loads
 * when the journal is first read, not when the package is imported.
 *
 * @module
 */
import * as z from 'zod';
import type { JournalRecord, OperationLogHeader, OperationLogLine } from './journal.js';

const PartSchema = z.object({
  partNumber: z.number().int().min(1),
  size: z.number().int().min(0),
  etag: z.string().optional(),
  checksum: z.string().optional(),
});

export const RecordSchema: z.ZodType<JournalRecord | null> = z
  .object({
    version: z.literal(1),
    key: z.object({ target: z.string(), runId: z.string(), artifactPath: z.string(), localPath: z.string() }),
    local: z.object({ size: z.number().int().min(0), mtimeNs: z.string(), ino: z.string(), dev: z.string() }),
    status: z.enum(['uploading', 'uploaded']),
    owner: z.object({ pid: z.number().int(), host: z.string(), token: z.string() }),
    createdAt: z.number(),
    updatedAt: z.number(),
    sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .optional(),
    multipart: z.object({ uploadId: z.string().min(1), partSize: z.number().int().min(1), parts: z.array(PartSchema) }).optional(),
    creatingMultipart: z.number().optional(),
    resumeToken: z.object({ store: z.string(), value: z.unknown() }).optional(),
  })
  .nullable() as z.ZodType<JournalRecord | null>;

/** The first line of an operation log. */
export const LogHeaderSchema: z.ZodType<OperationLogHeader> = z.object({
  version: z.literal(1),
  kind: z.literal('finished-files'),
  key: z.object({ target: z.string(), runId: z.string() }),
  owner: z.object({ pid: z.number().int(), host: z.string(), token: z.string() }),
  createdAt: z.number(),
});

/** A line of an operation log: one finished file. */
export const LogLineSchema: z.ZodType<OperationLogLine> = z.object({
  artifactPath: z.string(),
  localPath: z.string(),
  local: z.object({ size: z.number().int().min(0), mtimeNs: z.string(), ino: z.string(), dev: z.string() }),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  at: z.number(),
}) as z.ZodType<OperationLogLine>;
