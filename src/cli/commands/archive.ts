/**
 * `archive <dir>`: a checkpoint directory → `.tar.gz` + manifest, with progress. Nothing is
 * uploaded (the `hpo` command archives and uploads). With `--dry-run` the archive is built in a
 * temporary directory and removed, so the plan (files, sizes, skipped paths and why) is exactly
 * what a real run would write.
 *
 * @module
 */
import { rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { checkArchiveDestination, createCheckpointArchive } from '../../archive/create-checkpoint-archive.js';
import { makeTempDir } from '../../core/atomic-write.js';
import { manifestFileName } from '../../archive/manifest.js';
import type { CliContext, CommandOutcome } from '../context.js';
import { EXIT_CODES } from '../exit-codes.js';
import { formatBytes } from '../../core/format.js';
import { formatDuration, table } from '../format.js';

/** `archive`. */
export async function runArchive(ctx: CliContext, args: unknown[], options: Record<string, unknown>): Promise<CommandOutcome> {
  const dir = ctx.path(String(args[0]));
  const out = ctx.path(options.out !== undefined ? String(options.out) : `${basename(dir)}.tar.gz`);
  const manifestPath = ctx.path(options.manifest !== undefined ? String(options.manifest) : join(dirname(out), manifestFileName(out)));
  const dryRun = ctx.globals.dryRun === true;
  // A dry run builds the archive elsewhere, but is refused where the real run would be.
  if (dryRun && (await stat(dir).catch(() => undefined))?.isDirectory()) await checkArchiveDestination(dir, out, manifestPath);
  const scratch = dryRun ? await makeTempDir('artifact-uploader-archive-') : undefined;
  const progress = await ctx.progress();
  const started = Date.now();
  try {
    const target = scratch ? join(scratch, basename(out)) : out;
    const manifest = await createCheckpointArchive(dir, target, {
      exclude: (options.exclude as string[] | undefined) ?? [],
      level: options.level as number | undefined,
      signal: ctx.signal,
      // Archive and manifest are replaced as a pair (a dry run writes neither).
      ...(dryRun ? {} : { manifestPath }),
      onProgress: (event) => {
        if (event.type === 'phase' && event.phase === 'archiving') progress.phase('archiving');
        if (event.type === 'bytes') progress.update(event);
      },
    });
    progress.stop();
    // Twin names (see the manifest's `warnings`): on stderr, as an upload's plan warns, and in `--json`.
    const warnings = manifest.warnings ?? [];
    for (const warning of warnings) ctx.logger.warn(warning);
    const skipped = manifest.skipped.map((s) => [s.path, `${s.reason}${s.pattern ? ` (${s.pattern})` : ''}`]);
    const lines = [
      dryRun
        ? `Dry run: would archive ${manifest.fileCount} files (${formatBytes(manifest.totalBytes)}) of ${dir} into ${out} (${formatBytes(manifest.archive.size)}); nothing was written.`
        : `Archived ${manifest.fileCount} files (${formatBytes(manifest.totalBytes)}) of ${dir} in ${formatDuration(Date.now() - started)}`,
      ...(dryRun ? [] : [`  archive:  ${out} (${formatBytes(manifest.archive.size)}, sha256 ${manifest.archive.sha256})`, `  manifest: ${manifestPath}`]),
    ];
    if (dryRun || ctx.globals.verbose) lines.push('Files:', table(manifest.files.map((f) => [formatBytes(f.size), f.path])));
    if (skipped.length > 0) lines.push('Skipped:', table(skipped));
    return {
      exitCode: EXIT_CODES.OK,
      data: { dryRun, archivePath: dryRun ? undefined : out, manifestPath: dryRun ? undefined : manifestPath, manifest, warnings },
      text: lines.join('\n'),
    };
  } finally {
    progress.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
}
