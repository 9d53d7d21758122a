/**
 * The zod schema of a checkpoint manifest, for {@link readManifest}. Its own module so that zod
 * loads when a manifest is read, not when the package is imported.
 *
 * @module
 */
import * as z from 'zod';
import type { CheckpointManifest, readManifest } from './manifest.js';

const sha256Schema = z.string().regex(/^[0-9a-f]{64}$/);
const size = z.int().min(0);

/**
 * zod schema of {@link CheckpointManifest}; unknown keys are kept so newer manifests still load.
 * `fileCount` and `totalBytes` must agree with `files`: a manifest edited by hand or cut short
 * (a list that lost its tail) otherwise passed, and described a payload that is not the one listed.
 */
export const checkpointManifestSchema = z.looseObject({
  manifestVersion: z.literal(1),
  tool: z.looseObject({ name: z.literal('artifact-uploader'), version: z.string() }),
  createdAt: z.string(),
  archive: z.looseObject({
    fileName: z.string(),
    format: z.literal('tar+gzip'),
    compressionLevel: z.int().min(0).max(9),
    size,
    sha256: sha256Schema,
  }),
  fileCount: size,
  totalBytes: size,
  files: z.array(z.looseObject({ path: z.string(), size, sha256: sha256Schema })),
  directories: z.array(z.string()),
  symlinks: z.array(z.looseObject({ path: z.string(), target: z.string() })),
  skipped: z.array(
    z.looseObject({
      path: z.string(),
      reason: z.enum(['default-skip-list', 'filter', 'exclude', 'archive-output', 'unsupported-type']),
      pattern: z.string().optional(),
    }),
  ),
  warnings: z.array(z.string()).optional(),
  verification: z.union([
    z.looseObject({ status: z.literal('not-run') }),
    z.looseObject({
      status: z.enum(['verified', 'failed']),
      verifiedAt: z.string(),
      checks: z.array(z.enum(['size', 'sha256'])),
      location: z.string().optional(),
      sha256: sha256Schema.optional(),
      storeVerified: z.enum(['checksum', 'size']).optional(),
      checksum: z.string().optional(),
      mismatches: z
        .array(
          z.looseObject({
            path: z.string(),
            reason: z.enum(['missing', 'size', 'checksum']),
            expectedSize: size.optional(),
            actualSize: size.optional(),
          }),
        )
        .optional(),
      error: z.string().optional(),
    }),
  ]),
}).superRefine((manifest, ctx) => {
  if (manifest.fileCount !== manifest.files.length) {
    ctx.addIssue({ code: 'custom', path: ['fileCount'], message: `${manifest.fileCount}, but \`files\` lists ${manifest.files.length} files` });
  }
  const sum = manifest.files.reduce((n, f) => n + f.size, 0);
  if (manifest.totalBytes !== sum) {
    ctx.addIssue({ code: 'custom', path: ['totalBytes'], message: `${manifest.totalBytes}, but the sizes in \`files\` add up to ${sum}` });
  }
});

/** The paths of the issues {@link checkpointManifestSchema} raises when the totals disagree with `files`. */
export const MANIFEST_TOTAL_FIELDS: ReadonlySet<string> = new Set(['fileCount', 'totalBytes']);

