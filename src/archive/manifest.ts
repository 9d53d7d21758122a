/**
 * The checkpoint archive manifest: what is in an archive (every file's path, size and sha256),
 * what the archive itself is (size, sha256, compression), what was left out and why, and
 * whether the uploaded copy was verified. It is uploaded beside the archive as JSON, so a
 * downloaded archive can be checked without trusting the transport.
 *
 * @module
 */
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { writeFileAtomic } from '../core/atomic-write.js';
import { InvalidArgumentError, LocalPathError } from '../core/errors.js';

/** One regular file in the archive. */
export interface ManifestFile {
  /** Path relative to the archived directory, `/`-separated. */
  path: string;
  /** Size in bytes. */
  size: number;
  /** SHA-256 of the content, lowercase hex. */
  sha256: string;
}

/** One symbolic link in the archive (always relative and pointing inside the directory). */
export interface ManifestSymlink {
  path: string;
  /** The link target, as stored. */
  target: string;
}

/** Why a path was left out of the archive. */
export type ManifestSkipReason = 'default-skip-list' | 'filter' | 'exclude' | 'archive-output' | 'unsupported-type';

/** A path left out of the archive (for a directory, its contents too). */
export interface ManifestSkippedEntry {
  /** Relative path; directories end with `/`. */
  path: string;
  reason: ManifestSkipReason;
  /** The pattern that matched, for `default-skip-list` and `exclude`. */
  pattern?: string;
}

/** A file whose uploaded copy did not match. */
export interface ManifestVerificationMismatch {
  path: string;
  reason: 'missing' | 'size' | 'checksum';
  expectedSize?: number;
  actualSize?: number;
}

/**
 * Outcome of checking the uploaded archive against this manifest. `createCheckpointArchive`
 * writes `{ status: 'not-run' }`; the uploader fills in the rest after upload.
 */
export type ManifestVerification =
  | { status: 'not-run' }
  | {
      status: 'verified' | 'failed';
      /** ISO 8601 time of the check. */
      verifiedAt: string;
      /** What was compared, e.g. `['size']` or `['size', 'sha256']`. */
      checks: Array<'size' | 'sha256'>;
      /** Where the checked copy lives (artifact URI or path), when known. */
      location?: string;
      /**
       * sha256 (hex) of the archive bytes that were uploaded, hashed as they were read for
       * sending; equal to `archive.sha256` when `status` is `verified` (`checks` has `sha256`).
       */
      sha256?: string;
      /** How the store checked the uploaded archive (see `UploadedFile.verified`). */
      storeVerified?: 'checksum' | 'size';
      /** The checksum the store checked, when it names one (see `UploadedFile.checksum`). */
      checksum?: string;
      /** For `failed`: what did not match. */
      mismatches?: ManifestVerificationMismatch[];
      /** For `failed`: the error message, when the check itself failed. */
      error?: string;
    };

/** The manifest of a checkpoint archive (format version 1). */
export interface CheckpointManifest {
  /** Format version of this manifest. */
  manifestVersion: 1;
  /** The tool that wrote it. */
  tool: { name: 'artifact-uploader'; version: string };
  /** ISO 8601 creation time. */
  createdAt: string;
  /** The archive file. */
  archive: {
    /** File name (no directory). */
    fileName: string;
    format: 'tar+gzip';
    /** gzip level used (0–9). */
    compressionLevel: number;
    /** Size in bytes. */
    size: number;
    /** SHA-256 of the archive file, lowercase hex. */
    sha256: string;
  };
  /** Number of regular files (`files.length`). */
  fileCount: number;
  /** Sum of `files[].size`: the uncompressed payload. */
  totalBytes: number;
  /** Every regular file, sorted by path. */
  files: ManifestFile[];
  /** Every directory, sorted, with a trailing `/` (so empty ones survive a round trip). */
  directories: string[];
  /** Every symbolic link, sorted by path. */
  symlinks: ManifestSymlink[];
  /** What was left out and why. */
  skipped: ManifestSkippedEntry[];
  /**
   * Names archived as given that collide when the archive is extracted on macOS or Windows
   * (`Model.bin` and `model.bin`; a file `A` beside a directory `a/`), one sentence per
   * collision naming the paths: the same warnings an upload's plan gives. Absent when there is none.
   */
  warnings?: string[];
  /** Whether the uploaded copy was checked. */
  verification: ManifestVerification;
}

/**
 * The suffix of an archive's name, which {@link manifestFileName} takes off (any case).
 *
 * @example
 * ```ts
 * ARCHIVE_SUFFIX.test('trial-3.TGZ'); // true
 * ```
 * @internal
 */
export const ARCHIVE_SUFFIX = /\.(tar\.gz|tgz|tar)$/i;

/**
 * The conventional file name of an archive's manifest: `best.tar.gz` → `best.manifest.json`
 * (also for `.tgz` and `.tar`, in any case: `BEST.TAR.GZ` → `BEST.manifest.json`; any other
 * name gets `.manifest.json` appended).
 *
 * Two archives can map to one name (`a.tar.gz` and `a.tgz`): the uploader refuses to upload an
 * archive beside another whose manifest would share its manifest's name.
 *
 * @example
 * ```ts
 * manifestFileName('best_trial_checkpoint.tar.gz'); // 'best_trial_checkpoint.manifest.json'
 * ```
 */
export function manifestFileName(archiveName: string): string {
  // Case-insensitive: `A.TAR.GZ` got `A.TAR.GZ.manifest.json`, unlike every other archive. The
  // names runs already hold (`x.tar.gz` → `x.manifest.json`) stay what they were.
  const base = basename(archiveName).replace(ARCHIVE_SUFFIX, '');
  return `${base}.manifest.json`;
}

/**
 * A manifest as the JSON text {@link writeManifest} writes (pretty, with a final newline).
 * @internal
 */
export function manifestJson(manifest: CheckpointManifest): string {
  return `${JSON.stringify(manifest, null, 2)}\n`;
}

/**
 * Writes a manifest as pretty JSON, atomically (temp file + rename). Creates the parent
 * directory if needed.
 *
 * @throws {InvalidArgumentError} when `manifest` is not a manifest (`undefined`, say: the
 *   `result.manifest` of a skipped upload) or `path` not a string, before anything is written.
 * @example
 * ```ts
 * const manifest = await createCheckpointArchive('ckpt', 'out/best.tar.gz');
 * await writeManifest(manifest, 'out/best.manifest.json');
 * ```
 */
export async function writeManifest(manifest: CheckpointManifest, path: string): Promise<void> {
  // JSON.stringify(undefined) is undefined: the file said "undefined", which readManifest then
  // refused as "not valid JSON", far from the call that wrote it.
  if (manifest === null || typeof manifest !== 'object' || (manifest as { manifestVersion?: unknown }).manifestVersion !== 1) {
    throw new InvalidArgumentError('manifest', `writeManifest() needs a checkpoint manifest (manifestVersion 1), got ${manifest === null ? 'null' : typeof manifest === 'object' ? 'an object without manifestVersion 1' : typeof manifest}. Nothing was written.`, {
      hint: 'Pass the manifest createCheckpointArchive returned, or `result.manifest` of an upload that ran (it is undefined when the upload was skipped).',
    });
  }
  if (typeof path !== 'string') throw new InvalidArgumentError('path', `writeManifest() needs the manifest's path as a string, got ${typeof path}.`);
  await writeFileAtomic(path, manifestJson(manifest), { mkdir: true });
}

/**
 * Reads and validates a manifest written by {@link writeManifest}: its shape, and that
 * `fileCount` and `totalBytes` agree with `files`.
 *
 * @throws {LocalPathError} `PATH_NOT_FOUND` when the file does not exist, `NOT_A_FILE` when it
 *   is not a regular file (a FIFO, a device, a directory).
 * @throws {InvalidArgumentError} when it is not a valid manifest, or its totals disagree with
 *   its `files` (edited or truncated); the message names the first bad fields.
 * @example
 * ```ts
 * const manifest = await readManifest('out/best.manifest.json');
 * console.log(manifest.fileCount, manifest.archive.sha256);
 * ```
 */
export async function readManifest(path: string): Promise<CheckpointManifest> {
  let text: string;
  try {
    // A FIFO (or a device) would be opened and read until a writer came: a hang that not even
    // SIGTERM ends (the read waits in libuv's thread pool). Only a regular file is read.
    const info = await stat(path);
    if (!info.isFile()) {
      throw new LocalPathError('NOT_A_FILE', path, `Manifest ${path} is not a regular file${info.isDirectory() ? ' (a directory)' : ''}.`, {
        hint: 'Pass the manifest written by createCheckpointArchive/writeManifest, or omit it to upload without one.',
      });
    }
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (error instanceof LocalPathError) throw error;
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new LocalPathError('PATH_NOT_FOUND', path, `Manifest ${path} does not exist.`, {
        hint: 'Pass the manifest written by createCheckpointArchive/writeManifest, or omit it to upload without one.',
        cause: error,
      });
    }
    throw new LocalPathError('PATH_UNREADABLE', path, `Cannot read manifest ${path}: ${(error as Error).message}.`, { cause: error });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new InvalidArgumentError('manifest', `Manifest ${path} is not valid JSON: ${(error as Error).message}.`, { cause: error });
  }
  return checkManifest(data, `Manifest ${path}`);
}

/**
 * `data` as a checkpoint manifest, validated as {@link readManifest} validates a file's: its
 * shape, and that `fileCount` and `totalBytes` agree with `files`. For a manifest given as an
 * object (`uploadCheckpointArchive(archive, { manifest })`), which skipped the file's checks.
 *
 * @throws {InvalidArgumentError} as {@link readManifest}; `label` names the manifest in the message.
 * @example
 * ```ts
 * const checked = await checkManifest(JSON.parse(text), 'The manifest given');
 * ```
 * @internal
 */
export async function checkManifest(data: unknown, label: string): Promise<CheckpointManifest> {
  // The schema loads with zod on first use, not when the package is imported.
  const { checkpointManifestSchema, MANIFEST_TOTAL_FIELDS } = await import('./manifest-schema.js');
  const parsed = checkpointManifestSchema.safeParse(data);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .slice(0, 5)
      .map((issue) => `${issue.path.join('.') || '(top level)'}: ${issue.message}`)
      .join('; ');
    // Totals that disagree with the list: a well-formed manifest that was edited or cut short.
    const totals = parsed.error.issues.every((issue) => issue.path.length === 1 && MANIFEST_TOTAL_FIELDS.has(String(issue.path[0])));
    throw new InvalidArgumentError('manifest', `${label} ${totals ? 'does not agree with itself' : 'is not a checkpoint manifest'} (${problems}).`, {
      hint: totals
        ? 'Its totals do not match its `files` list: it was edited or truncated. Regenerate it from the checkpoint directory with createCheckpointArchive (`artifact-uploader archive`); do not edit it by hand.'
        : 'Regenerate it with createCheckpointArchive.',
    });
  }
  return parsed.data as CheckpointManifest;
}
