/**
 * `createCheckpointArchive`: a checkpoint directory → one `.tar.gz` plus a manifest of every
 * file's size and sha256, in a single streaming pass.
 *
 * How the single pass works: node-tar reads each file in chunks and hands every chunk of the
 * file's body to its entry's `write()` (headers and padding go around it). The `onWriteEntry`
 * hook wraps that `write()` so each chunk is hashed as it goes by; the tar stream is deflated by
 * Node's zlib stream on libuv's thread pool (overlapping with the reads and hashes), and the gzip
 * output is hashed on its way to disk. Every byte is read from disk once, and memory stays at a few read buffers
 * (`maxReadSize`) no matter how large the checkpoint is. A final check that every file hashed
 * exactly its size guards against a future tar changing that path.
 *
 * @module
 */
import type { Hash } from 'node:crypto';
import { createHash } from '../core/node-crypto.js';
import { constants as fsConstants, createWriteStream, type Stats } from 'node:fs';
import { access, lstat, mkdir, open, readlink, realpath, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve as resolvePath, sep } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { commitStaged, discardStaged, removeStaleTempFiles, stageFile, type StagedFile } from '../core/atomic-write.js';
import { AbortedError, ArtifactUploaderError, diskFullError, InvalidArgumentError, LocalPathError, PATH_TOO_LONG_HINT, SourceChangedError, toLocalPathError, type SourceFileState } from '../core/errors.js';
import { readFully } from '../core/read-fully.js';
import { isUtf8 } from '../core/non-utf8-names.js';
import { isInside, realDestination } from '../core/real-path.js';
import { sourceChange, type FileSnapshot } from '../core/source-snapshot.js';
import { twinNameWarnings } from '../core/twin-names.js';
import { VERSION } from '../version.js';
import { compileGlob } from '../core/glob.js';
import { manifestFileName, manifestJson, type CheckpointManifest, type ManifestFile, type ManifestSkippedEntry, type ManifestSymlink } from './manifest.js';
import { findSkipRule } from './should-skip-file.js';
import { walkAsArchived } from './walk-as-archived.js';

/**
 * Default gzip level: 1. Checkpoints are mostly weights (safetensors, .bin, .pt), which gzip
 * barely shrinks at any level (float16/float32 weights: 92 % at level 1 and at level 6), while
 * higher levels cost CPU on the compressible rest. Level 1 archives faster than `tar czf`
 * (GNU tar + gzip -6) on every mix measured; see docs/checkpoint-archives.md for the numbers.
 */
export const DEFAULT_COMPRESSION_LEVEL = 1;

/**
 * The gzip level of an archive: `level`, else {@link DEFAULT_COMPRESSION_LEVEL}. The uploader
 * checks it with the call's paths, before the run is looked up or an archive staged, so a bad
 * level is refused as early as a missing directory (a dry run too).
 *
 * @throws {InvalidArgumentError} unless it is an integer from 0 to 9.
 * @example
 * ```ts
 * checkCompressionLevel(undefined); // 1
 * ```
 * @internal
 */
export function checkCompressionLevel(level: number | undefined): number {
  const chosen = level ?? DEFAULT_COMPRESSION_LEVEL;
  if (!Number.isInteger(chosen) || chosen < 0 || chosen > 9) {
    throw new InvalidArgumentError('level', `Expected \`level\` to be an integer from 0 to 9, got ${typeof chosen === 'string' ? JSON.stringify(chosen) : String(chosen)}.`);
  }
  return chosen;
}

/**
 * Refuses arguments of the wrong type with an `InvalidArgumentError` naming the option, before
 * anything is read or written. Unchecked, `exclude: '*.bak'` (a string for a list), a `filter` or
 * `onProgress` that is not a function, or a `signal` that is not an `AbortSignal` threw a bare
 * `TypeError` from inside the scan or the pipeline (the CLI's INTERNAL_ERROR).
 */
function checkArchiveArguments(dir: unknown, out: unknown, options: unknown): asserts options is CreateCheckpointArchiveOptions {
  if (typeof dir !== 'string') throw new InvalidArgumentError('dir', `createCheckpointArchive() needs the checkpoint directory as a string, got ${typeName(dir)}.`);
  if (typeof out !== 'string') throw new InvalidArgumentError('out', `createCheckpointArchive() needs the archive path as a string, got ${typeName(out)}.`);
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', `Expected the options of createCheckpointArchive() to be an object, got ${typeName(options)}.`);
  const { exclude, filter, onProgress, signal, manifestPath, progressIntervalMs } = options as CreateCheckpointArchiveOptions;
  if (exclude !== undefined && !Array.isArray(exclude)) {
    throw new InvalidArgumentError('exclude', `Expected \`exclude\` to be an array of glob patterns, got ${typeName(exclude)}.`, {
      hint: typeof exclude === 'string' ? `Pass a list, even of one pattern: exclude: [${JSON.stringify(exclude)}].` : undefined,
    });
  }
  for (const [name, value] of [['filter', filter], ['onProgress', onProgress]] as const) {
    if (value !== undefined && typeof value !== 'function') throw new InvalidArgumentError(name, `Expected \`${name}\` to be a function, got ${typeName(value)}.`);
  }
  // By shape (`aborted`, `addEventListener`), not `instanceof`: a signal of another realm or a polyfill is one too.
  if (signal !== undefined && !(typeof signal === 'object' && signal !== null && 'aborted' in signal && typeof (signal as { addEventListener?: unknown }).addEventListener === 'function')) throw new InvalidArgumentError('signal', `Expected \`signal\` to be an AbortSignal, got ${typeName(signal)}.`);
  if (manifestPath !== undefined && typeof manifestPath !== 'string') throw new InvalidArgumentError('manifestPath', `Expected \`manifestPath\` to be a string, got ${typeName(manifestPath)}.`);
  if (progressIntervalMs !== undefined && !(typeof progressIntervalMs === 'number' && progressIntervalMs >= 0)) {
    throw new InvalidArgumentError('progressIntervalMs', `Expected \`progressIntervalMs\` to be a number >= 0, got ${String(progressIntervalMs)}.`);
  }
}

/** A value's type as an error message names it. */
function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return typeof value === 'object' ? 'an object' : typeof value;
}

/** Default read buffer per file: the memory bound is a few of these, whatever the file sizes. */
const DEFAULT_READ_BUFFER_SIZE = 1024 * 1024;

/**
 * Paths handed to node-tar's Pack ahead of the entries it is working on (it works on up to four at
 * once): enough that it never waits for the next path, few enough that memory does not grow with
 * the number of files.
 */
const PACK_LOOKAHEAD = 8;

/** Output buffer of the gzip stream: one thread-pool job per MiB instead of per 16 KiB. */
const GZIP_CHUNK_SIZE = 1024 * 1024;

/**
 * When the average file is smaller than this, the tar stream is handed to gzip in pieces of this
 * size. node-tar writes each header and each small file's body as its own chunk, and every write
 * to a zlib stream is a thread-pool job with its own bookkeeping: 20,000 files of 1 KiB were
 * 40,000 jobs, ~0.4 s of main-thread CPU. Checkpoints of large files skip the extra stream stage,
 * which would hold another read buffer or two in flight (~4 MiB more peak RSS) for no gain.
 */
const GZIP_INPUT_BATCH_SIZE = 64 * 1024;

/**
 * Joins small chunks into pieces of `size` bytes (the last one shorter); a chunk of `size` or
 * more goes through as it is, after what was gathered before it.
 */
function coalesceChunks(size: number): Transform {
  let gathered = Buffer.allocUnsafe(size);
  let filled = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (filled > 0 && filled + chunk.length > size) {
        this.push(gathered.subarray(0, filled));
        gathered = Buffer.allocUnsafe(size);
        filled = 0;
      }
      if (chunk.length >= size) {
        callback(null, chunk);
        return;
      }
      chunk.copy(gathered, filled);
      filled += chunk.length;
      callback();
    },
    flush(callback) {
      callback(null, filled > 0 ? gathered.subarray(0, filled) : undefined);
    },
  });
}

/** What a `filter` is told about each entry. */
export interface ArchiveEntryInfo {
  type: 'file' | 'directory' | 'symlink';
  /** Size in bytes (0 for directories and symlinks). */
  size: number;
}

/** Progress of {@link createCheckpointArchive}. */
export type ArchiveProgressEvent =
  | {
      type: 'phase';
      /** `scanning` the directory, `archiving` (reading, hashing, compressing), `done`. */
      phase: 'scanning' | 'archiving' | 'done';
    }
  | {
      type: 'bytes';
      /** The file being read, relative to the directory. */
      path: string;
      /** Bytes of that file read so far. */
      loaded: number;
      /** Size of that file. */
      total: number;
      /** Bytes of all files read so far. */
      bytesDone: number;
      /** Size of all files. */
      bytesTotal: number;
      /** Files read completely. */
      filesDone: number;
      /** Number of files. */
      filesTotal: number;
    };

/** Options of {@link createCheckpointArchive}. */
export interface CreateCheckpointArchiveOptions {
  /**
   * Extra glob patterns to leave out, on top of `filter` (see `compileGlob` for the syntax:
   * `*.bak`, `optimizer/`, `logs/**`). A matched directory is left out with its contents.
   * @default []
   */
  exclude?: readonly string[];
  /**
   * Decides what goes in: return `false` to leave a path out. `path` is relative and
   * `/`-separated; directories end with `/` (returning `false` for one leaves out its contents).
   * Replaces the default skip list; compose with `shouldSkipFile` to extend it instead.
   * @default (path) => !shouldSkipFile(path)
   */
  filter?: (path: string, entry: ArchiveEntryInfo) => boolean;
  /**
   * gzip level, 0 (store) to 9 (smallest, slowest).
   * @default 1 ({@link DEFAULT_COMPRESSION_LEVEL})
   */
  level?: number;
  /** Aborts the archiving; the partial temp file is removed and an `AbortedError` thrown. */
  signal?: AbortSignal;
  /** Progress: phase changes, and byte progress throttled to one event per `progressIntervalMs`. */
  onProgress?: (event: ArchiveProgressEvent) => void;
  /**
   * Least time between two `bytes` events, in milliseconds. The last `bytes` event (all bytes
   * read) is always sent. 0 sends one per read chunk.
   * @default 100
   */
  progressIntervalMs?: number;
  /**
   * Read buffer per open file, in bytes. Peak memory is a few of these (node-tar keeps up to
   * four files open ahead), independent of file sizes.
   * @default 1048576 (1 MiB)
   */
  readBufferSize?: number;
  /**
   * Also write the manifest here, and replace archive and manifest as a pair: both are written
   * and flushed under temp names first, then renamed; when either fails, the old archive and
   * manifest stay as they were (an archive never sits beside a manifest of another archive).
   * Must not be `out`; inside the checkpoint directory, it may only replace an earlier manifest.
   * @default undefined (the manifest is only returned; write it with `writeManifest`)
   */
  manifestPath?: string;
}

interface PlannedEntry {
  /** Relative `/`-separated path; directories end with `/`. */
  path: string;
  type: ArchiveEntryInfo['type'];
  size: number;
  target?: string;
  /** A symlink's size and mtime when it was scanned, for the error if tar finds it re-pointed. */
  linkState?: SourceFileState;
  /** A file with more than one name (a hard link), which tar stores once. */
  hardLinked?: boolean;
  /** A file's mtime when it was scanned (a symlink's is its `linkState`'s): what its directories are dated by ({@link directoryTimes}). */
  mtimeMs?: number;
}

function toPosix(path: string): string {
  return sep === '/' ? path : path.split(sep).join('/');
}

/**
 * The date of an archive with no file or link at all (only empty directories): 2 January 1980,
 * UTC, the first day every time zone's `zipfile` takes (ZIP dates start in 1980, local time).
 */
const EMPTY_ARCHIVE_DATE_MS = Date.UTC(1980, 0, 2);

/**
 * The modification time each directory of the archive is written with (by its path, `a/b/`):
 * the newest of the files and links it holds, at any depth, or, for one that holds none, the
 * newest of the whole archive. Not the directory's own mtime: that moves whenever a name is
 * made or removed in it (a lock or temp file a training loop made and deleted, an archive
 * written into it), so the same files would give other bytes, and an archive is the same bytes
 * for the same files. Not none either (node-tar's portable mode): GNU tar and Python's tarfile
 * then date every directory 1 January 1970, and Python's `zipfile` refuses to zip the extracted
 * checkpoint ("ZIP does not support timestamps before 1980").
 */
function directoryTimes(entries: readonly PlannedEntry[]): { of(path: string): Date } {
  const newest = new Map<string, number>();
  let newestOfAll = -Infinity;
  for (const entry of entries) {
    const mtimeMs = entry.mtimeMs ?? entry.linkState?.mtimeMs;
    if (mtimeMs === undefined) continue;
    newestOfAll = Math.max(newestOfAll, mtimeMs);
    for (let end = entry.path.indexOf('/'); end >= 0 && end < entry.path.length - 1; end = entry.path.indexOf('/', end + 1)) {
      const dir = entry.path.slice(0, end + 1);
      newest.set(dir, Math.max(newest.get(dir) ?? -Infinity, mtimeMs));
    }
  }
  const fallback = Number.isFinite(newestOfAll) ? newestOfAll : EMPTY_ARCHIVE_DATE_MS;
  return { of: (path) => new Date(newest.get(path.endsWith('/') ? path : `${path}/`) ?? fallback) };
}

/**
 * Links followed before a path counts as a loop: Linux's own limit (MAXSYMLINKS), so a chain
 * the system could follow is followed here to its end.
 */
const MAX_LINK_HOPS = 40;

/**
 * Where the path `target`, read from `fromDir`, leads: resolved one component at a time the way
 * the system does, following every link on the way (lstat, readlink) and applying `..` to the
 * real path reached so far, not to the spelling. Returns `'points'` when the path leaves
 * `rootReal` before any link is followed, `'resolves'` when it leaves after one, `undefined` when
 * every step stays inside.
 *
 * Every step is checked, not just the end: `../ckpt/a.txt` lands inside, but extracted under
 * another name it leads out. A missing component (or one under a file) leaves nothing to follow,
 * so the rest is applied lexically from the real prefix: `s/../x` with `s -> .` is `<dir>/../x`,
 * which `realpath` cannot tell while `x` is missing. A loop stops at {@link MAX_LINK_HOPS}
 * without leaving: it leads nowhere, here or where the archive is extracted.
 */
async function linkEscape(rootReal: string, fromDir: string, target: string): Promise<'points' | 'resolves' | undefined> {
  const split = (path: string) => path.split(sep === '/' ? '/' : /[\\/]/).reverse();
  // Components still to walk, the next one last (links push their target's components).
  const pending = split(target);
  let current = fromDir;
  let followed = 0;
  let lexical = false;
  while (pending.length > 0) {
    const part = pending.pop()!;
    if (part === '' || part === '.') continue;
    current = part === '..' ? dirname(current) : join(current, part);
    if (!isInside(rootReal, current)) return followed > 0 ? 'resolves' : 'points';
    // `..` of a real directory is real; after a missing component, nothing more can be followed.
    if (part === '..' || lexical) continue;
    const info = await lstat(current).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return undefined;
      throw error;
    });
    if (!info) {
      lexical = true;
      continue;
    }
    if (!info.isSymbolicLink()) continue;
    if (++followed > MAX_LINK_HOPS) return undefined;
    const next = await readlink(current);
    // An absolute hop leaves at once (a checkpoint is never the file system's root).
    if (isAbsolute(next)) return 'resolves';
    current = dirname(current);
    pending.push(...split(next));
  }
  return undefined;
}

async function checkSymlink(rootReal: string, abs: string, rel: string): Promise<string> {
  const bytes = await readlink(abs, { encoding: 'buffer' });
  // Node would hand back U+FFFD for the bytes that do not decode: a link to another name.
  if (!isUtf8(bytes)) throw notUtf8(rel, abs, 'Symlink target');
  const target = bytes.toString('utf8');
  const refuse = (why: string) =>
    new LocalPathError('SYMLINK_ESCAPES', abs, `Symlink ${rel} -> ${target} ${why}, so the archive could not be extracted elsewhere.`, {
      hint: 'Replace the link with the file it points to (e.g. `cp -L`), or leave it out with `exclude` or `filter`.',
    });
  if (isAbsolute(target)) throw refuse('has an absolute target');
  // From the link's real directory: the scan walks real directories only (a linked directory
  // is archived as a link, never walked), so that is the root's real path and `rel`'s parents.
  const escape = await linkEscape(rootReal, dirname(join(rootReal, rel)), target);
  if (escape === 'points') throw refuse('points outside the checkpoint directory');
  if (escape === 'resolves') throw refuse('resolves outside the checkpoint directory');
  return target;
}

/** The `INVALID_ARTIFACT_PATH` of a name (or link target) that is not UTF-8. */
function notUtf8(rel: string, abs: string, what: 'Name' | 'Symlink target'): LocalPathError {
  return new LocalPathError(
    'INVALID_ARTIFACT_PATH',
    rel,
    `${what === 'Name' ? `The name of ${abs}` : `The target of symlink ${abs}`} is not valid UTF-8 (shown with U+FFFD where its bytes do not decode): the manifest, which is JSON, and MLflow artifact paths cannot name it, and the archive would not hold it as it is.`,
    {
      hint:
        what === 'Name'
          ? 'Rename it (e.g. with `convmv` or `mv`), or leave it out with `exclude` (a wildcard matches it: `bad*.bin`) or `filter`.'
          : 'Point the link at a UTF-8 name, or leave it out with `exclude` or `filter`.',
    },
  );
}

/**
 * A file system error of the scan, typed: an entry deleted between readdir and its look-up is
 * `PATH_NOT_FOUND` (as the docs promise for a file that vanishes while archiving), a directory
 * that cannot be listed or a file that cannot be looked up `PATH_UNREADABLE`; both with a hint,
 * where the raw error would reach the CLI as INTERNAL_ERROR.
 */
function scanError(error: unknown, fallbackPath: string): unknown {
  if (error instanceof ArtifactUploaderError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  // Node's error names the path it failed on: an intermediate link's, for a link being followed.
  const raw = (error as { path?: unknown }).path;
  const path = typeof raw === 'string' ? raw : fallbackPath;
  if (code === 'ENOENT') {
    return new LocalPathError('PATH_NOT_FOUND', path, `${path} disappeared while the checkpoint was scanned.`, {
      hint: 'Make sure nothing writes to the checkpoint directory while it is archived, then archive again.',
      cause: error,
    });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new LocalPathError('PATH_UNREADABLE', path, `${path} cannot be read (${code}), so the checkpoint cannot be archived.`, {
      hint: 'Fix its permissions (chmod u+rx for a directory, u+r for a file), or leave it out with `exclude` or `filter`.',
      cause: error,
    });
  }
  // Nested past PATH_MAX: no permission or retry helps (ENAMETOOLONG is no concurrent writer's).
  if (code === 'ENAMETOOLONG') {
    return new LocalPathError('PATH_UNREADABLE', path, `${path} cannot be read: the path is longer than the system allows (ENAMETOOLONG), so the checkpoint cannot be archived.`, {
      hint: PATH_TOO_LONG_HINT,
      cause: error,
    });
  }
  const typed = toLocalPathError(error, path);
  if (typed !== error) return typed;
  return new LocalPathError('PATH_UNREADABLE', path, `${path} could not be read while the checkpoint was scanned: ${(error as Error).message}.`, {
    hint: 'Make sure nothing writes to the checkpoint directory while it is archived, then archive again.',
    cause: error,
  });
}

/** Runs one file system call of the scan, its error typed by {@link scanError}. */
async function scanCall<T>(path: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw scanError(error, path);
  }
}

/** What decides which entries of a directory an archive takes: {@link createCheckpointArchive}'s `filter` and `exclude`. */
export type ArchiveSelection = Pick<CreateCheckpointArchiveOptions, 'filter' | 'exclude'>;

/**
 * Why an archive leaves out the entry at `path` (relative, `/`-separated, a directory's ending
 * with `/`; `entry.size` 0 for anything but a file), as its manifest records it; `undefined`
 * when the archive takes it. A directory left out is left out with everything in it.
 */
export type ArchiveSelector = (path: string, entry: ArchiveEntryInfo) => ManifestSkippedEntry | undefined;

/**
 * The one rule by which {@link createCheckpointArchive} leaves entries out (its `filter`, or
 * the default skip list without one, then its `exclude` globs), for code that must see a
 * directory as the archive sees it: the staged archive of a resumable upload is keyed on what
 * the archive takes, so that a log it leaves out can grow without the archive being built again.
 * Bad patterns throw here, before anything is read.
 *
 * @example
 * ```ts
 * const leftOut = archiveSelector({ exclude: ['*.log'] });
 * leftOut('train.log', { type: 'file', size: 10 }); // { path: 'train.log', reason: 'exclude', pattern: '*.log' }
 * leftOut('__pycache__/', { type: 'directory', size: 0 }); // reason 'default-skip-list'
 * leftOut('model.safetensors', { type: 'file', size: 10 }); // undefined
 * ```
 */
export function archiveSelector(selection: ArchiveSelection): ArchiveSelector {
  const { filter } = selection;
  const excludes = (selection.exclude ?? []).map((pattern) => [pattern, compileGlob(pattern)] as const);
  return (path, entry) => {
    if (filter) {
      if (!filter(path, entry)) return { path, reason: 'filter' };
    } else {
      const rule = findSkipRule(path);
      if (rule) return { path, reason: 'default-skip-list', pattern: rule.pattern };
    }
    const excluded = excludes.find(([, test]) => test(path));
    return excluded ? { path, reason: 'exclude', pattern: excluded[0] } : undefined;
  };
}

/**
 * The error of an archive aborted by the caller's signal (the CLI's on SIGINT or SIGTERM):
 * before it started (`beforeStart`: a signal that had fired before the call), in the scan, or
 * while it was written. Nothing of it is left: the archive is written to a temp file beside
 * `out`, removed on failure, and renamed over `out` (then the manifest) only once complete, so
 * `out` and the manifest are as they were before the call. Nor is there anything to resume
 * from: the next run archives from the start. One function for every moment, so that the
 * messages name the directory the same way (resolved) and carry the same hint.
 */
function archivingAborted(root: string, out: string, manifest: string | undefined, reason: unknown, beforeStart = false): AbortedError {
  const outputs = manifest === undefined ? out : `${out} and ${manifest}`;
  // Before the start there was no temp file to remove: only the outputs of a later abort are listed.
  const left = beforeStart ? ' before it started; nothing was written.' : `; nothing was written (${outputs} as before the call, no temp file left).`;
  return new AbortedError(`Archiving ${root} was aborted by its AbortSignal${left}`, {
    cause: reason,
    hint: ARCHIVE_AGAIN_HINT,
  });
}

const ARCHIVE_AGAIN_HINT = 'Run the same call again when ready: archiving starts over from the first file (an interrupted archive keeps nothing to resume from).';

/**
 * Walks `root` as the archive sees it ({@link walkAsArchived}: the one rule the staged archive's
 * key follows too), refusing names that are not UTF-8, escaping symlinks and unreadable files.
 * `outputs` are the archive and manifest paths inside `root` (relative, `/`-separated): they
 * and their temp files are left out as `archive-output`.
 */
async function scan(
  root: string,
  outputs: readonly string[],
  leftOut: ArchiveSelector,
  signal: AbortSignal | undefined,
  aborted: () => AbortedError,
): Promise<{ entries: PlannedEntry[]; skipped: ManifestSkippedEntry[] }> {
  const rootReal = await scanCall(root, () => realpath(root));
  const entries: PlannedEntry[] = [];
  const skipped: ManifestSkippedEntry[] = [];
  await walkAsArchived(root, {
    leftOut,
    outputs,
    lookUp: (path) => lstat(path),
    call: scanCall,
    beforeListing: () => {
      if (signal?.aborted) throw aborted();
    },
    onSkipped: (entry) => skipped.push(entry),
    onTaken: async ({ path, type, abs, lookup, undecodable, fileInfo }) => {
      if (undecodable) throw notUtf8(path, abs, 'Name');
      if (type === 'symlink') {
        const linkStat = await scanCall(abs, () => lstat(abs));
        const target = await scanCall(abs, () => checkSymlink(rootReal, abs, path));
        entries.push({ path, type, size: 0, target, linkState: { size: linkStat.size, mtimeMs: linkStat.mtimeMs } });
        return;
      }
      // Checked now, like the scan's other refusals: tar opens a file only when it gets to it,
      // so an unreadable one failed the archive after every file before it was read and
      // compressed, with a hint about concurrent writers instead of its permissions.
      if (type === 'file') await scanCall(abs, () => access(lookup, fsConstants.R_OK));
      entries.push({ path, type, size: fileInfo?.size ?? 0, ...(fileInfo && fileInfo.nlink > 1 ? { hardLinked: true } : {}), ...(fileInfo ? { mtimeMs: fileInfo.mtimeMs } : {}) });
    },
  });
  // Plain code-unit order of the full path: deterministic on every platform and locale, and a
  // directory ("a/") always sorts before its contents ("a/b").
  const byPath = (a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  entries.sort(byPath);
  skipped.sort(byPath);
  return { entries, skipped };
}

/**
 * Checks where an archive of the checkpoint `root` (absolute) and its manifest would be
 * written, as {@link createCheckpointArchive} does before anything is written: `out` must not be
 * a directory, neither output a device, FIFO or socket (see {@link checkNotSpecial}), nor an
 * output destroy what it describes (see {@link checkOutputs}). A dry run
 * that builds its archive elsewhere calls it on the real paths, so it is refused as the real
 * command would be. Returns the outputs inside `root`, relative, for the scan to leave out.
 *
 * @throws {LocalPathError} `NOT_A_FILE` when `out` is a directory, or an output a device, FIFO or socket.
 * @throws {InvalidArgumentError} for an output that would replace the archive or a checkpoint file.
 * @example
 * ```ts
 * await checkArchiveDestination('/work/ckpt', '/work/ckpt/sub/w.bin', undefined); // throws: one of its files
 * ```
 * @internal
 */
export async function checkArchiveDestination(root: string, outAbs: string, manifestAbs: string | undefined): Promise<string[]> {
  if ((await stat(outAbs).catch(() => undefined))?.isDirectory()) {
    throw new LocalPathError('NOT_A_FILE', outAbs, `Archive path ${outAbs} is a directory.`, {
      hint: 'Pass a file path such as best_trial_checkpoint.tar.gz.',
    });
  }
  await checkNotSpecial(outAbs, { label: 'Archive path', what: 'archive', argument: 'out', flag: '-o' });
  if (manifestAbs !== undefined) await checkNotSpecial(manifestAbs, { label: 'Manifest path', what: 'manifest', argument: 'manifestPath', flag: '--manifest' });
  return checkOutputs(root, outAbs, manifestAbs);
}

/**
 * Refuses an output path where a device, FIFO or socket is, or a symlink to one: an output is
 * written to a temp file and renamed onto its path, which replaces the node itself (as root,
 * `-o /dev/null` left /dev/null a regular file). A regular file, a symlink to one and a missing
 * path are fine; a directory is refused elsewhere.
 */
async function checkNotSpecial(path: string, output: { label: string; what: string; argument: string; flag: string }): Promise<void> {
  const entry = await lstat(path).catch(() => undefined);
  const node = entry?.isSymbolicLink() ? await stat(path).catch(() => undefined) : entry;
  if (!node || node.isFile() || node.isDirectory()) return;
  const kind = node.isCharacterDevice() ? 'a character device' : node.isBlockDevice() ? 'a block device' : node.isFIFO() ? 'a FIFO' : node.isSocket() ? 'a socket' : 'a special file';
  throw new LocalPathError('NOT_A_FILE', path, `${output.label} ${path} is not a regular file (${entry?.isSymbolicLink() ? `a symlink to ${kind}` : kind}): the ${output.what} is written beside it and renamed onto it, which would replace it.`, {
    hint: `Write the ${output.what} to a regular file path with \`${output.argument}\` (\`${output.flag}\` on the command line). For the manifest alone, \`artifact-uploader archive --dry-run --json\` writes nothing.`,
  });
}

/**
 * Refuses outputs that would destroy what they describe, before anything is written: a
 * manifest on the archive's own path (the manifest would replace the archive), and an archive
 * or manifest that would replace one of the checkpoint's own files. Paths are compared where
 * they really land (`realDestination`), so `a/../a` and a symlinked directory are caught
 * too.
 *
 * An output inside the checkpoint directory stays allowed when nothing is there yet or when
 * what is there is an earlier output of this function (an archive or manifest it wrote, rewritten
 * by a rerun): that is how a checkpoint carries its own archive. Returns the outputs inside
 * `root`, relative and `/`-separated, for the scan to leave out.
 */
async function checkOutputs(root: string, outAbs: string, manifestAbs: string | undefined): Promise<string[]> {
  const rootReal = await realpath(root);
  const outReal = await realDestination(outAbs);
  const manifestReal = manifestAbs === undefined ? undefined : await realDestination(manifestAbs);
  if (manifestAbs !== undefined && manifestReal === outReal) {
    throw new InvalidArgumentError('manifestPath', `Manifest path ${manifestAbs} is the archive path ${outAbs}: the manifest would replace the archive it describes.`, {
      hint: `Give the manifest a path of its own with \`manifestPath\` (\`--manifest\` on the command line), such as ${manifestFileName(outAbs)} beside the archive.`,
    });
  }
  const outputs: string[] = [];
  const candidates = [
    { argument: 'out', flag: '-o', what: 'archive', label: 'Archive path', given: outAbs, real: outReal, isOwn: isOwnArchive },
    ...(manifestAbs !== undefined && manifestReal !== undefined
      ? [{ argument: 'manifestPath', flag: '--manifest', what: 'manifest', label: 'Manifest path', given: manifestAbs, real: manifestReal, isOwn: isOwnManifest }]
      : []),
  ];
  for (const { argument, flag, what, label, given, real, isOwn } of candidates) {
    if (!isInside(rootReal, real)) continue;
    const rel = toPosix(relative(rootReal, real));
    const existing = await lstat(real).catch(() => undefined);
    if (existing && !(existing.isFile() && (await isOwn(real)))) {
      throw new InvalidArgumentError(
        argument,
        `${label} ${given} is ${rel === '' ? 'the checkpoint directory itself' : `${rel} of the checkpoint in ${root}`}, not an earlier ${what} written by createCheckpointArchive: writing the ${what} there would destroy it.`,
        { hint: `Write the ${what} outside the checkpoint directory with \`${argument}\` (\`${flag}\` on the command line), or under a name that no checkpoint file has.` },
      );
    }
    outputs.push(rel);
  }
  return outputs;
}

/** Up to `length` bytes from the start of a file; none when it cannot be read. */
async function readHead(path: string, length: number): Promise<Buffer> {
  const handle = await open(path, 'r').catch(() => undefined);
  if (!handle) return Buffer.alloc(0);
  try {
    const buffer = Buffer.alloc(length);
    const got = await readFully((b, o, l, p) => handle.read(b, o, l, p), buffer, 0, length, 0);
    return buffer.subarray(0, got);
  } catch {
    return Buffer.alloc(0);
  } finally {
    await handle.close();
  }
}

/**
 * Whether `path` holds an archive as this function writes it: gzip with its header (no name,
 * no timestamp, OS "unknown", see the `tap` below), around a tar stream that starts with a
 * ustar header, or with end-of-archive zeros for an empty directory. Weights and other files
 * of a checkpoint fail the first bytes; a .tar.gz of GNU tar or Python has a timestamp or an OS.
 */
async function isOwnArchive(path: string): Promise<boolean> {
  // 4 KiB of gzip hold far more than the first tar block at any level (a block stored as it is
  // takes 517 bytes), and inflate to a few MiB at most.
  const head = await readHead(path, 4096);
  if (head.length < 10 || head[0] !== 0x1f || head[1] !== 0x8b || head[2] !== 8 || head[3] !== 0 || head.readUInt32LE(4) !== 0 || head[9] !== 255) {
    return false;
  }
  const { constants, gunzipSync } = await import('node:zlib');
  let tar: Buffer;
  try {
    // Only a prefix of the stream: inflate what it holds instead of failing where it is cut.
    tar = gunzipSync(head, { finishFlush: constants.Z_SYNC_FLUSH });
  } catch {
    return false;
  }
  if (tar.length < 512) return false;
  return tar.toString('latin1', 257, 262) === 'ustar' || tar.subarray(0, 512).every((byte) => byte === 0);
}

/** The start of the JSON `manifestJson` writes: a manifest of any size is recognised by it. */
const OWN_MANIFEST_START = /^\{\s*"manifestVersion"\s*:\s*1\s*,\s*"tool"\s*:\s*\{\s*"name"\s*:\s*"artifact-uploader"/;

/** Whether `path` holds a manifest this library wrote (by its first bytes). */
async function isOwnManifest(path: string): Promise<boolean> {
  return OWN_MANIFEST_START.test((await readHead(path, 256)).toString('utf8'));
}

/**
 * A file being read: its running hash and the tar entry reading it (public fields of node-tar's
 * WriteEntry). It is dropped when the file's last byte is hashed, leaving only the file's
 * manifest record: of 20,000 small files, 20,000 tar entries (stat, header, read buffer) and hash
 * contexts would otherwise live until the archive is done.
 */
interface FileReading {
  /** The file's manifest record; its `sha256` is set from `hash` once `hashed` reaches its size. */
  file: ManifestFile;
  hashed: number;
  hash: Hash;
  entry: TarFileEntry;
}

/** sha256 of no bytes (an empty file's). */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

interface TarFileEntry {
  remain: number;
  blockRemain: number;
  write: (chunk: Buffer, ...rest: unknown[]) => boolean;
  emit: (event: 'drain') => boolean;
}

/**
 * Archives a checkpoint directory into a `.tar.gz` and returns its manifest: every file's
 * relative path, size and sha256, the archive's own size and sha256, what was skipped and why.
 *
 * - One streaming pass: files are read once, hashed and compressed as they go; memory stays
 *   bounded (a few 1 MiB buffers) whatever the checkpoint size.
 * - Deterministic: entries in sorted path order, portable headers (no user/group names, uid,
 *   gid, atime or ctime, no setuid/setgid/sticky bit; file mtimes kept, a directory dated by the newest
 *   file it holds), gzip header without a timestamp.
 * - Atomic: written to `<out>.tmp-<random>`, fsynced, then renamed to `out`; on any failure
 *   (or abort) the temp file is removed and `out` is untouched.
 * - Safe: symlinks must be relative and their path must stay inside `dir` at every step, links
 *   on the way followed, even when the final target is missing (else `SYMLINK_ESCAPES`); an `out`
 *   (or `manifestPath`) inside `dir` is never archived into itself, and never replaces a file of
 *   the checkpoint: inside `dir` it may only replace an archive (manifest) this function wrote.
 * - By default, files on the skip list (`shouldSkipFile`) are left out.
 *
 * The manifest's `verification` is `{ status: 'not-run' }`; the uploader fills it in. Names
 * that collide on macOS or Windows (differing only in letter case or NFC/NFD, a file and a
 * directory included) are archived as given and named in the manifest's `warnings`.
 *
 * @param dir The checkpoint directory.
 * @param out Where to write the archive (parent directories are created).
 * @throws {LocalPathError} `PATH_NOT_FOUND` / `NOT_A_DIRECTORY` for `dir` (`PATH_NOT_FOUND` too
 *   for an entry deleted while it is scanned), `NOT_A_FILE` when `out` is a directory,
 *   `SYMLINK_ESCAPES`, `PATH_UNREADABLE` when a directory cannot be listed or a file cannot be
 *   read, shrinks, or is replaced by another kind of entry (a directory, a pipe) while it is
 *   archived, `INVALID_ARTIFACT_PATH` for a name or symlink target that is not UTF-8.
 * @throws {SourceChangedError} `SOURCE_CHANGED` when a file is written to, truncated, replaced or
 *   deleted while it is archived (each file is stat'ed again once it is read), so no archive ever
 *   holds a mix of two versions of a file; and when a symlink is re-pointed between the scan and
 *   tar's read of it, so no archive holds a link that was not checked.
 * @throws {AbortedError} when `signal` aborts.
 * @throws {InvalidArgumentError} for an argument of the wrong type (`exclude` not an array, `filter`
 *   or `onProgress` not a function, `signal` not an `AbortSignal`, ...); a bad `level`,
 *   `readBufferSize`, `progressIntervalMs` or exclude pattern; a `manifestPath` that is
 *   `out`; an `out` or `manifestPath` inside `dir` where a file of the checkpoint is (anything
 *   but an earlier archive or manifest of this function), before anything is written.
 * @example
 * ```ts
 * const manifest = await createCheckpointArchive('runs/trial-7/checkpoint', 'out/best_trial_checkpoint.tar.gz', {
 *   exclude: ['optimizer/'],
 *   onProgress: (e) => e.type === 'bytes' && console.log(`${e.bytesDone}/${e.bytesTotal}`),
 * });
 * await writeManifest(manifest, 'out/best_trial_checkpoint.manifest.json');
 * ```
 */
export async function createCheckpointArchive(
  dir: string,
  out: string,
  options: CreateCheckpointArchiveOptions = {},
): Promise<CheckpointManifest> {
  checkArchiveArguments(dir, out, options);
  const level = checkCompressionLevel(options.level);
  const intervalMs = options.progressIntervalMs ?? 100;
  const readBufferSize = options.readBufferSize ?? DEFAULT_READ_BUFFER_SIZE;
  if (!Number.isInteger(readBufferSize) || readBufferSize < 512) {
    throw new InvalidArgumentError('readBufferSize', `Expected \`readBufferSize\` to be an integer >= 512, got ${String(readBufferSize)}.`);
  }
  const leftOut = archiveSelector(options);
  const { signal, onProgress } = options;
  const root = resolvePath(dir);
  const outAbs = resolvePath(out);
  const manifestAbs = options.manifestPath !== undefined ? resolvePath(options.manifestPath) : undefined;
  const aborted = (beforeStart = false) => archivingAborted(root, outAbs, manifestAbs, signal?.reason, beforeStart);
  if (signal?.aborted) throw aborted(true);

  const rootInfo = await stat(root).catch(() => undefined);
  if (!rootInfo) {
    throw new LocalPathError('PATH_NOT_FOUND', root, `Checkpoint directory ${root} does not exist.`, {
      hint: 'Check the path (relative paths are resolved against the working directory).',
    });
  }
  if (!rootInfo.isDirectory()) {
    throw new LocalPathError('NOT_A_DIRECTORY', root, `${root} is a file; createCheckpointArchive archives a directory.`, {
      hint: 'Pass the checkpoint directory, or upload a single file with uploadFile.',
    });
  }
  const outputs = await checkArchiveDestination(root, outAbs, manifestAbs);

  // A throwing progress callback must fail the archive, not crash the process from inside a
  // tar read callback; it aborts the pipeline through this controller instead.
  const internal = new AbortController();
  let cancelled = false;
  const emit = (event: ArchiveProgressEvent): void => {
    // The caller's abort too: on Node 24 a few more reads land before the pipeline tears down.
    if (!onProgress || signal?.aborted || internal.signal.aborted || cancelled) return;
    try {
      onProgress(event);
    } catch (error) {
      internal.abort(error);
    }
  };

  emit({ type: 'phase', phase: 'scanning' });
  const { entries, skipped } = await scan(root, outputs, leftOut, signal, aborted);
  if (internal.signal.aborted) throw internal.signal.reason;
  let filesTotal = 0;
  let bytesTotal = 0;
  for (const entry of entries) {
    if (entry.type !== 'file') continue;
    filesTotal++;
    bytesTotal += entry.size;
  }
  const dirTimes = directoryTimes(entries);
  // Only hard links are counted by their planned size (tar archives a link, not the bytes).
  const plannedSize = new Map(entries.filter((e) => e.hardLinked).map((e) => [e.path, e.size]));

  // Pack and its entries cache each path's stat here; an entry reads it once, when it starts,
  // so it is dropped as soon as the entry writes its header instead of living until the end.
  const statCache = new Map<string, Stats>();
  // The scan's type of each path handed to Pack and not yet started (a few at a time).
  const plannedType = new Map<string, PlannedEntry['type']>();
  // The scan's symlinks handed to Pack and not yet written: tar reads each link again when it
  // writes its entry, and what it read must be what the scan checked and the manifest lists.
  const plannedLinks = new Map<string, PlannedEntry>();
  let started = 0;
  let packEnded = false;
  let feedPack = (): void => {};

  // One manifest record per archived file, by path (the manifest's own objects: nothing per file
  // is copied at the end), and the files being read now.
  const records = new Map<string, ManifestFile>();
  const readings = new Set<FileReading>();
  const hardLinks: Array<{ path: string; target: string }> = [];
  let bytesDone = 0;
  let filesDone = 0;
  let lastEmit = -Infinity;
  const progress = (path: string, loaded: number, total: number) => {
    const now = Date.now();
    // The event that completes the last file always goes out, so callers see 100 %.
    if (filesDone < filesTotal && now - lastEmit < intervalMs) return;
    lastEmit = now;
    emit({ type: 'bytes', path, loaded, total, bytesDone, bytesTotal, filesDone, filesTotal });
  };

  // Each file is stat'ed once more when its last byte is hashed and compared with the stat tar
  // took before reading it: a file written to meanwhile would put a mix of two versions in the
  // archive, so it fails the archive (SOURCE_CHANGED) instead. The checks run beside the
  // archive; it is committed only once every one has answered.
  let checksRunning = 0;
  let checksDone: (() => void) | undefined;
  const checkUnchanged = (absolute: string, before: FileSnapshot): void => {
    checksRunning++;
    void sourceChange(absolute, before, 'archive').then((changed) => {
      if (changed) internal.abort(changed);
      if (--checksRunning === 0) checksDone?.();
    });
  };

  const onWriteEntry = (entry: { type: string; path: string; absolute: string; linkpath?: string; stat?: { size: number; mtimeMs: number; ino: number; mode: number } }): void => {
    statCache.delete(entry.absolute);
    // Setuid, setgid and sticky bits mean nothing in a checkpoint, and GNU tar run as root
    // restores them: a user's setuid file came out of the archive a setuid file of root's.
    // Python's tarfile strips them too (filter 'data'). Cleared before tar writes the header.
    if (entry.stat) entry.stat.mode &= ~0o7000;
    if (entry.type === 'Directory') {
      // node-tar's portable mode writes a directory without an mtime; this hook runs after it
      // made that choice and before it writes the header: see directoryTimes for the date.
      Object.assign(entry, { noMtime: false, mtime: dirTimes.of(entry.path) });
      return;
    }
    if (entry.type === 'Link' && entry.linkpath !== undefined) {
      // A second name of a file already archived: tar stores a link, not the bytes again.
      hardLinks.push({ path: entry.path, target: toPosix(entry.linkpath) });
      bytesDone += plannedSize.get(entry.path) ?? 0;
      filesDone++;
      progress(entry.path, plannedSize.get(entry.path) ?? 0, plannedSize.get(entry.path) ?? 0);
      return;
    }
    if (entry.type === 'SymbolicLink') {
      // The link was checked (relative, staying inside) when it was scanned; re-pointed since, it
      // would go into the archive unchecked, and the manifest would name the old target.
      const planned = plannedLinks.get(entry.path);
      plannedLinks.delete(entry.path);
      if (planned && entry.linkpath !== planned.target) {
        const absolute = join(root, entry.path);
        const now = entry.stat ? { size: entry.stat.size, mtimeMs: entry.stat.mtimeMs } : undefined;
        internal.abort(
          new SourceChangedError(absolute, planned.linkState!, now, {
            activity: 'archive',
            change: `was re-pointed from ${planned.target!} to ${entry.linkpath ?? '(nothing)'}`,
          }),
        );
      }
      return;
    }
    if (entry.type !== 'File' || !entry.stat) return;
    // Cast: node-tar types onWriteEntry's argument as its public WriteEntry, while the object is
    // the file entry whose read/pause hooks we tap (TarFileEntry lists the ones we use).
    const target = entry as unknown as TarFileEntry;
    // `sha256` stays '' until the last byte is hashed (checked after the archive is written).
    const file: ManifestFile = { path: entry.path, size: entry.stat.size, sha256: '' };
    const before: FileSnapshot = { size: entry.stat.size, mtimeMs: entry.stat.mtimeMs, ino: entry.stat.ino };
    const absolute = entry.absolute;
    records.set(entry.path, file);
    if (file.size === 0) {
      file.sha256 = EMPTY_SHA256;
      filesDone++;
      progress(entry.path, 0, 0);
      return;
    }
    const reading: FileReading = { file, hashed: 0, hash: createHash('sha256'), entry: target };
    readings.add(reading);
    const write = target.write.bind(entry);
    target.write = (chunk, ...rest) => {
      if (cancelled) {
        // Tell the entry its file is done: its own read loop then closes the descriptor.
        target.remain = 0;
        target.blockRemain = 0;
        return true;
      }
      // The last chunk of a file carries tar's zero padding after the content.
      const take = Math.min(chunk.length, file.size - reading.hashed);
      if (take > 0) {
        reading.hash.update(take === chunk.length ? chunk : chunk.subarray(0, take));
        reading.hashed += take;
        bytesDone += take;
        if (reading.hashed === file.size) {
          file.sha256 = reading.hash.digest('hex');
          readings.delete(reading);
          filesDone++;
          checkUnchanged(absolute, before);
        }
        progress(entry.path, reading.hashed, file.size);
      }
      return write(chunk, ...rest);
    };
  };

  // On failure or abort the pipeline destroys the pack, but node-tar's entries keep reading
  // their files to the end (and the queue behind them) into the dead stream, holding file
  // descriptors meanwhile. Wake each open entry so its next read lands in the cancelled
  // write() above, which makes it close its file and stop.
  const cancelAll = (): void => {
    cancelled = true;
    for (const reading of readings) reading.entry.emit('drain');
  };

  emit({ type: 'phase', phase: 'archiving' });
  await prepareDestination(outAbs);
  if (manifestAbs !== undefined) await prepareDestination(manifestAbs);
  let staged: StagedFile | undefined;
  const archiveHash = createHash('sha256');
  let archiveSize = 0;
  const combined = signal ? AbortSignal.any([signal, internal.signal]) : internal.signal;
  try {
    // Pack itself rather than tar's create(): create() reads a path starting with "@" as an
    // archive to concatenate, and refuses an empty list (an empty checkpoint directory).
    // The tar stream leaves Pack uncompressed: node-tar's own gzip (minizlib) deflates
    // synchronously on the main thread, so reading, hashing and compressing would take turns.
    // Node's zlib stream deflates on libuv's thread pool instead, overlapping with the reads
    // and hashes here the way `tar | gzip` overlaps two processes. tar and zlib load on first
    // use (zlib costs the library's import 1.5 MiB of RSS on Node 20, 4 MiB on Node 26).
    const [{ Pack }, { createGzip }] = await Promise.all([import('tar'), import('node:zlib')]);
    const pack = new Pack({
      cwd: root,
      portable: true,
      strict: true,
      noDirRecurse: true,
      maxReadSize: readBufferSize,
      statCache,
      // Called once per path, when Pack has its stat and is about to start its entry: the cue to
      // hand Pack the next path (see feedPack).
      // (tar types the second argument `Stats | ReadEntry`; Pack passes the lstat of the path.)
      filter: (path: string, entry: unknown) => {
        const stat = entry as Stats;
        started++;
        queueMicrotask(feedPack);
        // What tar found must still be what the scan planned: a file replaced by a directory, a
        // pipe or a symlink meanwhile would otherwise be archived as that, or silently left out.
        const planned = plannedType.get(path);
        plannedType.delete(path);
        const found = stat.isFile() ? 'file' : stat.isDirectory() ? 'directory' : stat.isSymbolicLink() ? 'symlink' : 'special file';
        if (planned !== undefined && planned !== found) {
          internal.abort(
            new LocalPathError('PATH_UNREADABLE', join(root, path), `${join(root, path)} was a ${planned} when the checkpoint was scanned and is a ${found} now.`, {
              hint: 'Make sure nothing writes to the checkpoint directory while it is archived, then archive again.',
            }),
          );
        }
        return true;
      },
      // With hard links, node-tar's Pack can finish twice when a second name waits for its
      // first one (a "pending link") while other jobs run: the second finish writes the
      // end-of-archive blocks after the end and throws "write after end" from an event handler
      // (about 1 archive in 10 with a hard link, on main as well). One job at a time never
      // leaves a link pending; checkpoints without hard links keep tar's default concurrency.
      ...(entries.some((e) => e.hardLinked) ? { jobs: 1 } : {}),
      // Cast: tar 7's option type names a WriteEntry union our handler narrows itself.
      onWriteEntry: onWriteEntry as never,
    });
    // Pack is handed paths as it starts on them, never more than PACK_LOOKAHEAD ahead: given every
    // path at once it holds a queued job for each, and the stat of each until the archive is
    // done (with 20,000 small files, tens of MiB of heap that drove peak RSS to ~185 MiB).
    // Paths go in sorted order either way, so the archive's bytes do not change.
    let fed = 0;
    feedPack = () => {
      if (cancelled || packEnded) return;
      try {
        while (fed < entries.length && fed - started < PACK_LOOKAHEAD) {
          const entry = entries[fed++]!;
          const path = entry.type === 'directory' ? entry.path.slice(0, -1) : entry.path;
          plannedType.set(path, entry.type);
          if (entry.type === 'symlink') plannedLinks.set(path, entry);
          pack.add(path);
        }
        if (fed === entries.length) {
          packEnded = true;
          pack.end();
        }
      } catch (error) {
        // Runs from a microtask: fail the pipeline rather than the process.
        pack.emit('error', error);
      }
    };
    feedPack();
    const batching = bytesTotal < filesTotal * GZIP_INPUT_BATCH_SIZE ? [coalesceChunks(GZIP_INPUT_BATCH_SIZE)] : [];
    const gzip = createGzip({ level, chunkSize: GZIP_CHUNK_SIZE });
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        // Portable gzip header, as node-tar writes it: OS byte (offset 9) "unknown" (255)
        // instead of the building platform's, so the bytes do not depend on where it was made.
        if (archiveSize <= 9 && archiveSize + chunk.length > 9) chunk[9 - archiveSize] = 255;
        archiveHash.update(chunk);
        archiveSize += chunk.length;
        callback(null, chunk);
      },
    });
    // Staged (written, flushed: durable before visible), renamed once the manifest is ready.
    // On failure the tar entries are stopped at once (cancelAll), before the temp file is removed.
    staged = await stageFile(outAbs, (temp) =>
      // Cast: node-tar's Pack is a Minipass stream, which Node's pipeline accepts at run time but
      // whose type is not a NodeJS.ReadableStream.
      pipeline([pack as unknown as NodeJS.ReadableStream, ...batching, gzip, tap, createWriteStream(temp, { flags: 'wx' })], { signal: combined }).catch(
        (error: unknown) => {
          cancelAll();
          throw error;
        },
      ),
    );
  } catch (error) {
    cancelAll();
    if (internal.signal.aborted) throw internal.signal.reason;
    if (signal?.aborted) throw aborted();
    if (error instanceof ArtifactUploaderError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    const path = (error as { path?: string }).path ?? root;
    if (path.startsWith(`${outAbs}.tmp-`)) throw destinationError(error, outAbs);
    // A file made unreadable after the scan: the scan's own error, with its permissions hint.
    if (code === 'EACCES' || code === 'EPERM') throw scanError(error, path);
    throw new LocalPathError(
      code === 'ENOENT' ? 'PATH_NOT_FOUND' : 'PATH_UNREADABLE',
      path,
      `Could not archive ${root}: ${(error as Error).message}.`,
      { hint: 'Make sure nothing writes to the checkpoint directory while it is archived.', cause: error },
    );
  }

  // Every file's last stat has answered (checkUnchanged) before the archive can be kept.
  if (checksRunning > 0) await new Promise<void>((resolve) => (checksDone = resolve));
  if (internal.signal.aborted) {
    await discardStaged([staged]);
    throw internal.signal.reason;
  }

  const manifestFiles: ManifestFile[] = [];
  for (const file of records.values()) {
    if (file.sha256 === '') {
      await discardStaged([staged]);
      const hashed = [...readings].find((r) => r.file === file)?.hashed ?? 0;
      throw new ArtifactUploaderError(
        'ARCHIVE_HASH_INCOMPLETE',
        `Internal error: hashed ${hashed} of ${file.size} bytes of ${file.path} while archiving.`,
        { hint: 'Please report this with your tar package version; the archive was removed.' },
      );
    }
    manifestFiles.push(file);
  }
  for (const link of hardLinks) {
    const target = records.get(link.target);
    if (target) manifestFiles.push({ ...target, path: link.path });
  }
  manifestFiles.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const symlinks: ManifestSymlink[] = entries.filter((e) => e.type === 'symlink').map((e) => ({ path: e.path, target: e.target! }));
  const directories = entries.filter((e) => e.type === 'directory').map((e) => e.path);
  // What the uploader's plan warns about, for an archive made on its own (`artifact-uploader
  // archive`): extracted on macOS or Windows, one of two twin names is lost. Links are names too.
  const warnings = twinNameWarnings([...manifestFiles.map((f) => f.path), ...symlinks.map((l) => l.path)], directories);

  const manifest: CheckpointManifest = {
    manifestVersion: 1,
    tool: { name: 'artifact-uploader', version: VERSION },
    createdAt: new Date().toISOString(),
    archive: { fileName: basename(outAbs), format: 'tar+gzip', compressionLevel: level, size: archiveSize, sha256: archiveHash.digest('hex') },
    fileCount: manifestFiles.length,
    totalBytes: manifestFiles.reduce((sum, f) => sum + f.size, 0),
    files: manifestFiles,
    directories,
    symlinks,
    skipped,
    ...(warnings.length > 0 ? { warnings } : {}),
    verification: { status: 'not-run' },
  };
  const pair = [staged];
  try {
    if (manifestAbs !== undefined) {
      pair.push(await stageFile(manifestAbs, (temp) => writeFile(temp, manifestJson(manifest), { flag: 'wx' })));
    }
    await commitStaged(pair);
  } catch (error) {
    await discardStaged(pair);
    throw destinationError(error, manifestAbs ?? outAbs);
  }
  emit({ type: 'phase', phase: 'done' });
  return manifest;
}

/**
 * Creates the parent directory of an output and removes the temp files there that killed
 * runs left behind (`<name>.tmp-<pid>-...`, owner gone).
 */
async function prepareDestination(path: string): Promise<void> {
  try {
    await mkdir(dirname(path), { recursive: true });
  } catch (error) {
    throw destinationError(error, path);
  }
  await removeStaleTempFiles(dirname(path), `${basename(path)}.tmp-`);
}

/** A write error about an output: full disk, or a path that cannot be written, typed. */
function destinationError(error: unknown, path: string): unknown {
  if (error instanceof ArtifactUploaderError) return error;
  return (
    diskFullError(error, path) ??
    new LocalPathError('PATH_UNWRITABLE', path, `Cannot write ${path}: ${(error as Error).message}.`, {
      hint: 'Check that its directory exists, is writable and that no directory or other file is in the way; the previous archive and manifest were left as they were.',
      cause: error,
    })
  );
}
