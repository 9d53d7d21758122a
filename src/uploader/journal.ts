/**
 * The resume journal: what a crashed (or killed, or preempted) process had already finished,
 * so that the same command run again sends only what had not arrived.
 *
 * **Where.** One directory under the user's cache dir, never inside the data folder:
 * `journalDir` option, else `ARTIFACT_UPLOADER_JOURNAL_DIR`, else
 * `$XDG_CACHE_HOME/artifact-uploader/journal`, else `~/.cache/artifact-uploader/journal`.
 *
 * **What.** One JSON file per upload key: the tracking target (credentials stripped), the run,
 * the artifact path and the local path. The file's name is a hash of that key. The record holds
 * the local file's identity when it was written (size, mtime in ns, inode, device): a file that
 * changed since does not match and is sent again. It records
 * - `status: 'uploaded'` and the sha256 of the bytes sent, once the file is in the store;
 * - for part-level stores, the multipart upload id, the part size and every finished part with
 *   its ETag or checksum;
 * - `resumeToken`: a store-specific token (a GCS resumable session URI, ...), opaque here.
 *
 * **Safety.** Every write goes to a temp file renamed over the record (see
 * `core/json-state-file.ts`), under a per-record lock file, so several processes can share the
 * journal and a killed process never leaves half a record. The write that names a new multipart
 * upload is fsynced first (losing it after a power loss would orphan the upload); the others are
 * not (losing one costs re-sending a file or a part, never a wrong skip), which keeps the
 * journal's cost per small file well under a millisecond of disk time. A record names its owner (pid, host, a random token): a process that finds a record
 * owned by another live process (same host: the pid exists; other hosts: updated within
 * `ownerStaleMs`) leaves it alone and uploads without it; a record whose owner died is taken
 * over. A process whose record was taken over stops writing to it.
 *
 * **Cleanup.** A record is removed when its upload completes (the whole operation, for a
 * directory). Records older than `maxAgeMs` (7 days) are deleted, and the journal is kept under
 * `maxEntries` records and `maxBytes` bytes (oldest deleted first), by a sweep when a journal is
 * opened, except a record that names an upload the store keeps until it is aborted
 * ({@link hasLastingUpload}: an S3 multipart upload, direct or through the MLflow proxy): it is
 * the only handle to parts billed until then, so the sweep keeps it, and an expired one is
 * handed to the next operation that completes ({@link UploadJournal.takeExpired}), which gives
 * its upload up. The same sweep removes the destination locks (`destinations/`,
 * destination-lock.ts) of uploads killed while they held one. A corrupt record is ignored with a
 * warning and replaced by the next write; the journal never makes an upload fail.
 *
 * @module
 */
import { createHash, randomBytes } from '../core/node-crypto.js';
import { access, constants, mkdir, open, readdir, readFile, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { hasStagedArchives, isDueForClear, listStagedArchives, removeStagedArchives } from './archive-staging.js';
import { sweepDestinationLocks } from './destination-lock.js';
import { hostname } from 'node:os';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { envPath, homeDirectory, type Env } from '../core/env.js';
import { ConfigError, InvalidArgumentError, LocalPathError, toLocalPathError } from '../core/errors.js';
import { JsonStateFile, processAlive } from '../core/json-state-file.js';
import { isInside } from '../core/real-path.js';
import { leftByDeadWriter } from '../core/atomic-write.js';
import { redactingLogger, silentLogger, type Logger } from '../core/logger.js';
import type { PreviousMultipartUpload, StoredPart, StoreResumeToken } from '../stores/artifact-store.js';
import { isBlockUploadLabel } from '../stores/azure-block-upload.js';
import { SerialQueue } from '../core/serial-queue.js';

/** The environment variable that moves the journal. */
export const JOURNAL_DIR_ENV = 'ARTIFACT_UPLOADER_JOURNAL_DIR';

/**
 * Records older than this are deleted (7 days: GCS sessions and Azure uncommitted blocks live
 * about that long), except those that name an upload the store keeps until it is aborted (an
 * S3 multipart upload, `hasLastingUpload`), whose upload is given up first.
 */
export const DEFAULT_JOURNAL_MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;

/** At most this many records are kept. */
export const DEFAULT_JOURNAL_MAX_ENTRIES = 10_000;

/** At most this many bytes of records are kept. */
export const DEFAULT_JOURNAL_MAX_BYTES = 64 * 1024 * 1024;

/** A record owned by a process on another host that has not written for this long is taken over. */
export const DEFAULT_JOURNAL_OWNER_STALE_MS = 10 * 60 * 1000;

/** The identity of a local file: when any of it changes, the file is sent again. */
export interface LocalFileIdentity {
  /** Absolute path. */
  path: string;
  size: number;
  /** Modification time in nanoseconds since the epoch, as a decimal string (exact). */
  mtimeNs: string;
  /** Inode number, as a decimal string (inode numbers can exceed 2^53). */
  ino: string;
  /** Device number, as a decimal string. */
  dev: string;
}

/** What a record is about: where the file goes and which local file it is. */
export interface JournalKey {
  /** Tracking target: the tracking URI or the store's artifact URI (credentials, query and fragment are stripped). */
  target: string;
  /** The run. */
  runId: string;
  /** Destination path in the run's artifact tree (the file's own path, not its directory). */
  artifactPath: string;
  /** The local file as it is now. */
  local: LocalFileIdentity;
}

/** A finished part of a multipart upload (the store's {@link StoredPart}). */
export type JournalPart = StoredPart;

/** A multipart upload in progress (part-level stores: `s3://`): the store's {@link PreviousMultipartUpload}. */
export type JournalMultipart = PreviousMultipartUpload;

/**
 * A store-specific way to pick an upload up again, e.g. a GCS resumable session URI or the
 * block ids of an Azure block blob (the store's {@link StoreResumeToken}).
 */
export type JournalResumeToken = StoreResumeToken;

/** One journal record, as stored. */
export interface JournalRecord {
  version: 1;
  key: { target: string; runId: string; artifactPath: string; localPath: string };
  /** The local file's identity when the record was last written. */
  local: { size: number; mtimeNs: string; ino: string; dev: string };
  /** `uploading`: started, maybe with finished parts; `uploaded`: the file is in the store. */
  status: 'uploading' | 'uploaded';
  /** Who writes the record. */
  owner: { pid: number; host: string; token: string };
  /** Epoch ms. */
  createdAt: number;
  /** Epoch ms of the last write (the owner's heartbeat). */
  updatedAt: number;
  /** sha256 (hex) of the bytes sent, when the read path hashed them. */
  sha256?: string;
  multipart?: JournalMultipart;
  /**
   * Epoch ms: a multipart upload was being created (`CreateMultipartUpload` sent, its id not
   * recorded yet). A rerun that finds it aborts the uploads in progress under the file's key
   * that it does not continue: their id died with the process that asked for them.
   */
  creatingMultipart?: number;
  resumeToken?: JournalResumeToken;
}

/**
 * The first line of an operation log: whose log it is. The lines after it are
 * {@link OperationLogLine}s, one per file the operation finished.
 */
export interface OperationLogHeader {
  version: 1;
  kind: 'finished-files';
  /** The operation's target (credentials stripped) and run. */
  key: { target: string; runId: string };
  /** The process (and operation: `token`) appending to the log. */
  owner: { pid: number; host: string; token: string };
  /** Epoch ms. */
  createdAt: number;
}

/** A line of an operation log: one file in the store. */
export interface OperationLogLine {
  /** Destination path in the run's artifact tree. */
  artifactPath: string;
  /** Absolute local path. */
  localPath: string;
  /** The local file's identity when it was sent (a file whose identity differs now is sent again). */
  local: JournalRecord['local'];
  /** sha256 (hex) of the bytes sent, when the read path hashed them. */
  sha256?: string;
  /** Epoch ms the file finished. */
  at: number;
}

/** An operation log as read back: its header and every whole line (a torn last line is left out). */
export interface ReadOperationLog {
  /** The log file. */
  path: string;
  header: OperationLogHeader;
  lines: OperationLogLine[];
}

/** What {@link UploadJournal.scan} found for one run. */
export interface JournalScan {
  /** File names of the per-file records in the journal (of every run: their names are hashes). */
  recordNames: ReadonlySet<string>;
  /** The run's operation logs, readable ones only. */
  logs: ReadOperationLog[];
}

/** The schemas, loaded on first use (zod stays out of the package import; see journal-schema.ts). */
const loadRecordSchema = () => import('./journal-schema.js').then((m) => m.RecordSchema);
const loadLogSchemas = () => import('./journal-schema.js');

/** Paths of the operation logs this process has open: in use, whatever their owner pid says. */
const openLogs = new Set<string>();

/** Options of {@link UploadJournal.open}. */
export interface UploadJournalOptions {
  /**
   * The journal directory. Must not be inside a folder being uploaded.
   * @default ARTIFACT_UPLOADER_JOURNAL_DIR, else $XDG_CACHE_HOME/artifact-uploader/journal, else ~/.cache/artifact-uploader/journal
   */
  dir?: string;
  /** Environment to read instead of `process.env`. */
  env?: Env;
  /** Where warnings (a corrupt record, a failed write) go. @default silent */
  logger?: Logger;
  /**
   * Records not written for this long are deleted, in ms. A record that names an upload the
   * store keeps until it is aborted (an S3 multipart upload, direct or through the MLflow proxy)
   * is kept instead, and its upload given up by the next upload that completes (see
   * {@link UploadJournal.sweep}).
   * @default DEFAULT_JOURNAL_MAX_AGE_MS (7 days)
   */
  maxAgeMs?: number;
  /**
   * Most records kept; the oldest beyond it are deleted (those without an upload the store
   * keeps first; those with one are never deleted by the bound, see {@link UploadJournal.sweep}).
   * @default DEFAULT_JOURNAL_MAX_ENTRIES (10000)
   */
  maxEntries?: number;
  /**
   * Most bytes of records kept; the oldest beyond it are deleted (as for `maxEntries`).
   * @default DEFAULT_JOURNAL_MAX_BYTES (64 MiB)
   */
  maxBytes?: number;
  /**
   * A record owned by a process on another host that has not written for this long is taken
   * over, in ms (same host: as soon as its process is gone).
   * @default DEFAULT_JOURNAL_OWNER_STALE_MS (10 minutes)
   */
  ownerStaleMs?: number;
  /**
   * Delete expired records and keep the journal within bounds when it is opened (records that
   * name an S3 multipart upload are kept, see {@link UploadJournal.sweep}).
   * @default true
   */
  sweep?: boolean;
}

/**
 * The journal directory: `dir`, else `ARTIFACT_UPLOADER_JOURNAL_DIR` (a leading `~` expanded, as
 * the CLI expands it: {@link envPath}), else
 * `$XDG_CACHE_HOME/artifact-uploader/journal`, else `~/.cache/artifact-uploader/journal`.
 *
 * @throws {ConfigError} when it falls to `~` and there is no home (HOME unset, a uid without a
 *   passwd entry).
 *
 * @example
 * ```ts
 * resolveJournalDir({ env: { XDG_CACHE_HOME: '/var/cache/me' } }); // '/var/cache/me/artifact-uploader/journal'
 * ```
 */
export function resolveJournalDir(options: { dir?: string; env?: Env } = {}): string {
  const env = options.env ?? process.env;
  const explicit = options.dir ?? envPath(JOURNAL_DIR_ENV, env);
  if (explicit) return resolve(explicit);
  // XDG: a relative XDG_CACHE_HOME is invalid and must be ignored.
  const xdg = env.XDG_CACHE_HOME?.trim();
  if (xdg && isAbsolute(xdg)) return join(xdg, 'artifact-uploader', 'journal');
  const home = homeDirectory(env);
  if (!home) {
    throw new ConfigError('The resume journal has no directory: HOME is not set and this user has no home directory (a uid without a passwd entry).', {
      issues: [{ path: JOURNAL_DIR_ENV, message: 'not set, and no home directory to default to' }],
      hint: `Set ${JOURNAL_DIR_ENV} (or the journalDir option), XDG_CACHE_HOME or HOME.`,
    });
  }
  return join(home, '.cache', 'artifact-uploader', 'journal');
}

/**
 * A journal directory that cannot be listed, as a {@link LocalPathError} that names it (a path
 * given by mistake, such as a file, is not a bug of the journal's). Other errors pass through.
 */
function journalDirError(error: unknown, dir: string): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  const hint = `Point the journalDir option or ${JOURNAL_DIR_ENV} at a directory (it is created when missing).`;
  if (code === 'ENOTDIR') return new LocalPathError('NOT_A_DIRECTORY', dir, `The resume journal ${dir} is not a directory.`, { hint, cause: error });
  if (code === 'EACCES' || code === 'EPERM') {
    return new LocalPathError('PATH_UNREADABLE', dir, `The resume journal ${dir} cannot be listed (${code}).`, { hint: `Fix its permissions, or ${hint[0]!.toLowerCase()}${hint.slice(1)}`, cause: error });
  }
  return toLocalPathError(error, dir);
}

/**
 * Refuses a journal directory inside (or equal to) a folder about to be uploaded: the journal
 * would be uploaded with it, and rewritten while it is read.
 *
 * @example
 * ```ts
 * assertJournalOutside('/home/me/.cache/artifact-uploader/journal', '/data/checkpoint'); // ok
 * ```
 */
export function assertJournalOutside(journalDir: string, dataDir: string): void {
  if (isInside(resolve(dataDir), resolve(journalDir))) {
    throw new InvalidArgumentError('journalDir', `The resume journal ${journalDir} is inside the folder being uploaded (${dataDir}).`, {
      // Not `resume: false`: the journal is still written then (only not read).
      hint: `Point the journalDir option or ${JOURNAL_DIR_ENV} at a directory outside it.`,
    });
  }
}

/** The last {@link journalTarget} computed. */
let lastTarget: { uri: string; target: string } | undefined;

/**
 * The tracking target as it is written to the journal: without credentials (userinfo), query or
 * fragment, so no secret reaches the cache dir.
 *
 * @example
 * ```ts
 * journalTarget('https://user:pw@mlflow.example.com/?token=x'); // 'https://mlflow.example.com/'
 * ```
 */
export function journalTarget(uri: string): string {
  // An operation asks for the same target once per file (record names): parsed once.
  if (lastTarget?.uri === uri) return lastTarget.target;
  let target: string;
  try {
    const url = new URL(uri);
    if (url.protocol === 'file:') target = uri.split(/[?#]/)[0]!;
    else {
      url.username = '';
      url.password = '';
      url.search = '';
      url.hash = '';
      target = url.toString();
    }
  } catch {
    target = uri.split(/[?#]/)[0]!;
  }
  lastTarget = { uri, target };
  return target;
}

/**
 * The identity of a local file (exact mtime and inode, from a bigint stat).
 *
 * @example
 * ```ts
 * const local = await localFileIdentity('out/model.safetensors');
 * ```
 */
export async function localFileIdentity(path: string): Promise<LocalFileIdentity> {
  const absolute = resolve(path);
  const s = await stat(absolute, { bigint: true });
  return { path: absolute, size: Number(s.size), mtimeNs: s.mtimeNs.toString(), ino: s.ino.toString(), dev: s.dev.toString() };
}

/** True when the record was written for this very file, unchanged since. */
function sameLocalFile(record: JournalRecord, local: LocalFileIdentity): boolean {
  return record.local.size === local.size && record.local.mtimeNs === local.mtimeNs && record.local.ino === local.ino && record.local.dev === local.dev;
}

function sameKey(record: JournalRecord, key: Pick<JournalKey, 'target' | 'runId' | 'artifactPath'> & { local: Pick<LocalFileIdentity, 'path'> }): boolean {
  return record.key.target === journalTarget(key.target) && record.key.runId === key.runId && record.key.artifactPath === key.artifactPath && record.key.localPath === resolve(key.local.path);
}

/** The record file's name: a hash of the key without the local identity (a changed file replaces its record). */
function recordName(key: JournalKey): string {
  return recordFileName(key.target, key.runId, key.artifactPath, key.local.path);
}

/** {@link recordName} from the key's parts (no identity, so no `stat`, is needed to know it). */
export function recordFileName(target: string, runId: string, artifactPath: string, localPath: string): string {
  const digest = createHash('sha256')
    .update(JSON.stringify([journalTarget(target), runId, artifactPath, resolve(localPath)]))
    .digest('hex');
  return `${digest.slice(0, 40)}.json`;
}

/** Names of per-file records. */
const RECORD_NAME = /^[0-9a-f]{40}\.json$/;

/** The lock of a per-record read-modify-write (`<record>.lock`, core/json-state-file.ts). */
const RECORD_LOCK_NAME = /^[0-9a-f]{40}\.json\.lock$/;

/** What a process breaking a record's stale lock holds meanwhile (`<record>.lock.breaking`, core/lock-breaker.ts). */
const RECORD_BREAKER_NAME = /^[0-9a-f]{40}\.json\.lock\.breaking$/;

/** Names of operation logs: `<hash of target and run>-<owner token>.log`. */
const LOG_NAME = /^([0-9a-f]{40})-[0-9a-f]{16}\.log$/;

/** The first part of the names of a run's operation logs. */
function logPrefix(target: string, runId: string): string {
  return createHash('sha256')
    .update(JSON.stringify([journalTarget(target), runId]))
    .digest('hex')
    .slice(0, 40);
}

/** The host name, asked once (each call is a system call, and liveness checks ask often). */
let thisHost: string | undefined;
const host = () => (thisHost ??= hostname());

/** A new owner of a record or log: this process, on this host, with a one-off token. */
function newOwner(): JournalRecord['owner'] {
  return { pid: process.pid, host: host(), token: randomBytes(8).toString('hex') };
}

/**
 * True when a record names an upload in progress on the store: a multipart upload, a resume
 * token (a session), or one being created when its writer stopped. Such a record is continued,
 * aborted or given up by a store; any other is only the journal's.
 */
export function hasUnfinishedUpload(record: JournalRecord): boolean {
  return record.multipart !== undefined || record.resumeToken !== undefined || record.creatingMultipart !== undefined;
}

/**
 * True when a record names an unfinished upload that its store keeps, and bills, until someone
 * aborts it: a multipart upload id (an `s3://` one, or the MLflow proxy's, S3 or a GCS XML
 * multipart upload underneath) or the mark of one being created (`s3://` only). Such a record
 * is the only handle to that upload, so the journal never forgets it on its own (the sweep
 * keeps it; see {@link UploadJournal.sweep}). Not such a record: a GCS resumable session (GCS
 * forgets it after about a week) and Azure's staged blocks (recorded as `multipart` under a
 * block-upload label, {@link isBlockUploadLabel}; Azure discards them after about a week).
 *
 * @example
 * ```ts
 * hasLastingUpload(record); // true for an s3:// multipart upload on record
 * ```
 */
export function hasLastingUpload(record: JournalRecord): boolean {
  if (record.creatingMultipart !== undefined) return true;
  return record.multipart !== undefined && !isBlockUploadLabel(record.multipart.uploadId);
}

/** A record the sweep found past `maxAgeMs` and kept, as it read it (see {@link UploadJournal.takeExpired}). */
export interface ExpiredRecord {
  /** The record file's name in the journal directory. */
  name: string;
  record: JournalRecord;
}

/** What {@link UploadJournal.lookup} found for a key. */
export type JournalLookup =
  /** No record (or a corrupt one, or one for another key). */
  | { state: 'none' }
  /** The file was uploaded, unchanged since: skip it if the store lists it with the same size. */
  | { state: 'uploaded'; record: JournalRecord }
  /** An upload of this unchanged file was started; `record.multipart` / `resumeToken` say how far. */
  | { state: 'partial'; record: JournalRecord }
  /** The record is for an earlier version of the local file: send it again (and abort `record.multipart`). */
  | { state: 'changed'; record: JournalRecord };

/**
 * One record as {@link UploadJournal.list} shows it: a per-file record, or one file of an
 * operation log (shown as an `uploaded` record; every file of one log shares its `file`).
 */
export interface JournalListEntry {
  /** The record file (or operation log). */
  file: string;
  /** Epoch ms of the last write. */
  updatedAt: number;
  /** The record, or `undefined` when it is corrupt (it is ignored, and listed so it can be cleared) or of a newer format. */
  record?: JournalRecord;
  /**
   * The journal format version of a record written by a later artifact-uploader (above 1), which
   * this one cannot read (`record` is `undefined`): it may name an upload billed until aborted,
   * so {@link UploadJournal.clear} leaves it, as the sweep does. Absent for any other entry.
   */
  newerFormat?: number;
  /**
   * True when the record (or operation log) is there but could not be read when it was listed
   * (EIO, EMFILE, EACCES; `record` is `undefined`): what it names, an S3 multipart upload billed
   * until aborted perhaps, and whether an upload running now owns it are unknown (`inUse` is
   * `false` for want of an owner to ask). {@link UploadJournal.clear} leaves it unless
   * `removeUnreadable` is set, as the sweep does. Absent for any other entry.
   */
  unreadable?: true;
  /** True when the record's owner is a live process (an upload running now). */
  inUse: boolean;
  /** Bytes of the file that are known to be in the store (the whole file when uploaded, else the finished parts). */
  bytesDone: number;
}

/**
 * What to do about records (or operation logs) of a newer journal format
 * ({@link JournalListEntry.newerFormat}), in one wording for every output that says it (`resume
 * list`'s row, `resume clear`'s lines and their `--json` `hint`), for one or `count` of them.
 *
 * @example
 * ```ts
 * newerFormatHint(); // 'Written by a newer version of artifact-uploader, which may name an upload this one cannot give up: left alone. Upgrade ...'
 * ```
 */
export function newerFormatHint(count = 1): string {
  const [an, upload, it] = count === 1 ? ['an ', 'upload', 'it'] : ['', 'uploads', 'them'];
  return `Written by a newer version of artifact-uploader, which may name ${an}${upload} this one cannot give up: left alone. Upgrade artifact-uploader (or run the version that wrote ${it}) to clear ${it}.`;
}

/**
 * What to do about records (or operation logs) that could not be read
 * ({@link JournalListEntry.unreadable}), in one wording for every output that says it (`resume
 * list`'s row, `resume clear`'s lines and their `--json` `hint`), for one or `count` of them.
 *
 * @example
 * ```ts
 * unreadableHint(); // 'Could not be read now (a disk error, too many open files, its permissions), so what upload it names is unknown: left alone. ...'
 * ```
 */
export function unreadableHint(count = 1): string {
  const [it, its, names, is] = count === 1 ? ['it', 'its', 'names', 'is'] : ['them', 'their', 'name', 'are'];
  return `Could not be read now (a disk error, too many open files, ${its} permissions), so what upload ${it} ${names} is unknown: left alone. Check the disk and clear again once ${it} ${is} readable; \`resume clear --remove-unreadable\` deletes ${it} as ${it} ${is}, and an unfinished upload ${it} ${names} is then left to the bucket's lifecycle rule.`;
}

/** Options of {@link UploadJournal.clear}. */
export interface JournalClearOptions {
  /** Only records not written for this long, in ms. @default every record */
  olderThanMs?: number;
  /** Remove nothing: say what would be removed. @default false */
  dryRun?: boolean;
  /**
   * Remove records (and operation logs) that cannot be read now too
   * ({@link JournalListEntry.unreadable}). What upload such a record names cannot be known, so
   * it is not given up: only a bucket's lifecycle rule (AbortIncompleteMultipartUpload) ends it then.
   * @default false (they are left, and returned in `unreadable`)
   */
  removeUnreadable?: boolean;
}

/** What {@link UploadJournal.clear} did (with `dryRun`, what it would do). */
export interface JournalClearResult {
  /** Records deleted. */
  removed: JournalListEntry[];
  /** Records left because a live process owns them. */
  inUse: JournalListEntry[];
  /**
   * Records of a newer journal format ({@link JournalListEntry.newerFormat}), left: a later
   * artifact-uploader's, whose upload this version cannot give up; that version clears them.
   */
  newerFormat: JournalListEntry[];
  /**
   * Records (and operation logs) that could not be read ({@link JournalListEntry.unreadable}),
   * left: a transient error must not remove the only handle to an upload billed until aborted.
   * Empty with `removeUnreadable`, which removes them (in `removed`).
   */
  unreadable: JournalListEntry[];
  /** Staged archives deleted (directories under `archives/`, see `archive-staging.ts`). */
  archives: string[];
  /**
   * Epoch ms the clear began: the uploads a removed record marked `creatingMultipart` started
   * were initiated before it (`EarlierUpload.lostUpload`); a rerun's after it are not its.
   */
  at: number;
}

/**
 * The resume journal (see the module comment). Open it with {@link UploadJournal.open}; each
 * upload takes an entry with {@link UploadJournal.begin}.
 *
 * @example
 * ```ts
 * const journal = await UploadJournal.open();
 * const runId = 'a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6';
 * const sha256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'; // of the bytes sent
 * const key = { target: 'http://127.0.0.1:5000', runId, artifactPath: 'model/weights.bin', local: await localFileIdentity('out/weights.bin') };
 * if ((await journal.lookup(key)).state !== 'uploaded') {
 *   const entry = await journal.begin(key);
 *   // ... upload, recording parts with entry.recordPart(...) ...
 *   await entry?.finish({ sha256 });
 * }
 * ```
 */
export class UploadJournal {
  readonly dir: string;
  private readonly logger: Logger;
  private readonly maxAgeMs: number;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly ownerStaleMs: number;
  /** Per-record write queue: writes of one process to one record never wait on its own lock. */
  private readonly queues = new SerialQueue();
  /** The record files whose last read found a newer journal format (see {@link leftToNewerVersion}). */
  private readonly newerFormatFiles = new Set<string>();
  /** What the last sweep kept past `maxAgeMs` because its upload lasts (see {@link takeExpired}). */
  private expired: ExpiredRecord[] = [];

  private constructor(dir: string, options: UploadJournalOptions) {
    this.dir = dir;
    this.logger = redactingLogger(options.logger ?? silentLogger);
    this.maxAgeMs = options.maxAgeMs ?? DEFAULT_JOURNAL_MAX_AGE_MS;
    this.maxEntries = options.maxEntries ?? DEFAULT_JOURNAL_MAX_ENTRIES;
    this.maxBytes = options.maxBytes ?? DEFAULT_JOURNAL_MAX_BYTES;
    this.ownerStaleMs = options.ownerStaleMs ?? DEFAULT_JOURNAL_OWNER_STALE_MS;
  }

  /**
   * Opens the journal (the directory is created on the first write) and, unless `sweep: false`,
   * deletes expired records and keeps it within bounds ({@link UploadJournal.sweep}: a record
   * that names an S3 multipart upload is kept, and an expired one handed to the next operation
   * that completes). Never throws for the journal's content.
   *
   * @example
   * ```ts
   * const journal = await UploadJournal.open({ dir: '/tmp/journal', maxAgeMs: 24 * 3600_000 });
   * ```
   */
  static async open(options: UploadJournalOptions = {}): Promise<UploadJournal> {
    const journal = new UploadJournal(resolveJournalDir(options), options);
    if (options.sweep !== false) await journal.sweep().catch((error: unknown) => journal.logger.warn(`Could not clean the resume journal ${journal.dir}: ${(error as Error).message}`));
    return journal;
  }

  private file(name: string): JsonStateFile<JournalRecord | null> {
    const path = join(this.dir, name);
    return new JsonStateFile(path, loadRecordSchema, {
      empty: () => {
        this.newerFormatFiles.delete(path);
        return null;
      },
      lockStaleMs: 30_000,
      lockTimeoutMs: 15_000,
      sync: false,
      // One directory holds every record: the journal sweeps it itself (clean()), not each record.
      sweepTempFiles: false,
      // Records may hold capabilities (a GCS session URI lets its holder upload to it).
      ownerOnly: true,
      onCorrupt: (error, parsed) => {
        // A later version's record is not replaced (leftToNewerVersion): saying so would be untrue.
        const newer = newerFormatVersion(parsed) !== undefined;
        if (newer) this.newerFormatFiles.add(path);
        else this.newerFormatFiles.delete(path);
        this.logger.warn(
          newer
            ? `The resume journal record ${path} was written by a newer version of artifact-uploader; it is left alone, and this upload cannot be resumed if interrupted.`
            : `Ignoring a corrupt resume journal record: ${error.message} It is replaced on the next write.`,
        );
        return null;
      },
    });
  }

  /** Reads a record; unreadable or corrupt reads as none (with a warning). */
  private async readRecord(name: string): Promise<JournalRecord | null> {
    try {
      return await this.file(name).read();
    } catch (error) {
      this.logger.warn(`Ignoring the resume journal record ${join(this.dir, name)}: ${(error as Error).message}`);
      return null;
    }
  }

  /**
   * True when record `name` is of a newer journal format ({@link newerFormatVersion}): a later
   * artifact-uploader's, which may name an upload billed until aborted, so it is neither
   * overwritten nor deleted here; the upload goes on without the journal. Called under the
   * record's lock, where it read as no record: that read said which (and warned that it is left
   * alone), so the file is not read again (a new record's begin read it once, as before).
   */
  private leftToNewerVersion(name: string): boolean {
    return this.newerFormatFiles.has(join(this.dir, name));
  }

  /**
   * What the journal knows about a key: nothing, the file uploaded, an upload started (with
   * its parts), or a record of an earlier version of the local file.
   */
  async lookup(key: JournalKey): Promise<JournalLookup> {
    const record = await this.readRecord(recordName(key));
    if (!record || !sameKey(record, key)) return { state: 'none' };
    if (!sameLocalFile(record, key.local)) return { state: 'changed', record };
    return record.status === 'uploaded' ? { state: 'uploaded', record } : { state: 'partial', record };
  }

  /** True when the record's owner is a live process other than this one's entry. */
  private ownedByLiveProcess(record: JournalRecord, now = Date.now()): boolean {
    if (record.owner.host === host()) return record.owner.pid !== process.pid ? processAlive(record.owner.pid) : false;
    return now - record.updatedAt < this.ownerStaleMs;
  }

  /**
   * Starts (or takes over) the record of an upload. Returns `undefined` when another live
   * process owns the record (it is uploading the same file to the same place right now): then
   * upload without the journal, and leave its multipart upload alone. Otherwise the entry, with
   * `previous` being the record found (for resuming its parts, or aborting its multipart
   * upload when the local file changed). A journal that cannot be written also returns
   * `undefined`, with a warning: resume is lost, the upload is not.
   */
  async begin(key: JournalKey): Promise<JournalEntry | undefined> {
    const name = recordName(key);
    const owner = newOwner();
    try {
      return await this.queues.run(name, () =>
        this.file(name).update(async (current) => {
          if (!current && this.leftToNewerVersion(name)) return { result: undefined };
          const record = current && sameKey(current, key) ? current : null;
          if (record && this.ownedByLiveProcess(record)) return { result: undefined };
          const now = Date.now();
          const keep = record && sameLocalFile(record, key.local) ? record : null;
          const next: JournalRecord = {
            version: 1,
            key: { target: journalTarget(key.target), runId: key.runId, artifactPath: key.artifactPath, localPath: resolve(key.local.path) },
            local: { size: key.local.size, mtimeNs: key.local.mtimeNs, ino: key.local.ino, dev: key.local.dev },
            status: keep?.status ?? 'uploading',
            owner,
            createdAt: keep?.createdAt ?? now,
            updatedAt: now,
            ...(keep?.sha256 ? { sha256: keep.sha256 } : {}),
            ...(keep?.multipart ? { multipart: keep.multipart } : {}),
            ...(keep?.creatingMultipart !== undefined ? { creatingMultipart: keep.creatingMultipart } : {}),
            ...(keep?.resumeToken ? { resumeToken: keep.resumeToken } : {}),
          };
          return { state: next, result: new JournalEntry(this, name, next, record ?? undefined) };
        }),
      );
    } catch (error) {
      this.logger.warn(`The resume journal ${this.dir} cannot be written (${(error as Error).message}); this upload cannot be resumed if interrupted.`);
      return undefined;
    }
  }

  /**
   * Reads the per-file records of `names` (as a scan listed them), without a lock: a record
   * gone since, unreadable or corrupt is left out, quietly (the next write replaces it).
   * @internal the resume step's (`resume.ts`)
   */
  async readRecords(names: Iterable<string>): Promise<Array<{ name: string; record: JournalRecord }>> {
    const out: Array<{ name: string; record: JournalRecord }> = [];
    for (const name of names) {
      if (!RECORD_NAME.test(name)) continue;
      const record = await this.readQuiet(join(this.dir, name));
      if (record) out.push({ name, record });
    }
    return out;
  }

  /**
   * Takes over a record as it was read (same owner token), to give its upload up: `undefined`
   * when it changed since, or a live process owns it (it is uploading that file right now).
   * Taken over, the record names this process, so no other process continues that upload while
   * it is given up. Never throws (a journal that cannot be written gives `undefined`, with a warning).
   * @internal the resume step's (`resume.ts`)
   */
  async takeOver(name: string, read: JournalRecord): Promise<JournalEntry | undefined> {
    const owner = newOwner();
    try {
      return await this.queues.run(name, () =>
        this.file(name).update((current) => {
          if (!current || current.owner.token !== read.owner.token || this.ownedByLiveProcess(current)) return { result: undefined };
          const next: JournalRecord = { ...current, owner, updatedAt: Date.now() };
          return { state: next, result: new JournalEntry(this, name, next, current) };
        }),
      );
    } catch (error) {
      this.logger.warn(`The resume journal record ${join(this.dir, name)} cannot be written: ${(error as Error).message}`);
      return undefined;
    }
  }

  /**
   * Records a file as uploaded in one write, without an entry: for files sent in one request,
   * which have no parts to record. Leaves a record a live process owns alone. Never throws.
   */
  async markUploaded(key: JournalKey, options: { sha256?: string } = {}): Promise<void> {
    const name = recordName(key);
    try {
      await this.queues.run(name, () =>
        this.file(name).update(async (current) => {
          if (!current && this.leftToNewerVersion(name)) return { result: undefined };
          const record = current && sameKey(current, key) ? current : null;
          if (record && this.ownedByLiveProcess(record)) return { result: undefined };
          const now = Date.now();
          const next: JournalRecord = {
            version: 1,
            key: { target: journalTarget(key.target), runId: key.runId, artifactPath: key.artifactPath, localPath: resolve(key.local.path) },
            local: { size: key.local.size, mtimeNs: key.local.mtimeNs, ino: key.local.ino, dev: key.local.dev },
            status: 'uploaded',
            owner: newOwner(),
            createdAt: now,
            updatedAt: now,
            ...(options.sha256 ? { sha256: options.sha256 } : {}),
          };
          return { state: next, result: undefined };
        }),
      );
    } catch (error) {
      this.logger.warn(`The resume journal record ${join(this.dir, name)} cannot be written: ${(error as Error).message}`);
    }
  }

  /**
   * Changes a record this entry owns. Returns false (and changes nothing) when the record is
   * gone or owned by someone else now, or cannot be written (with a warning).
   * @internal
   */
  async change(name: string, token: string, change: (record: JournalRecord) => JournalRecord | 'delete', options: { sync?: boolean } = {}): Promise<boolean> {
    try {
      return await this.queues.run(name, () =>
        this.file(name).update((current) => {
          if (!current || current.owner.token !== token) return { result: false };
          const next = change(current);
          if (next === 'delete') return { remove: true, result: true };
          return { state: { ...next, updatedAt: Date.now() }, sync: options.sync ?? false, result: true };
        }),
      );
    } catch (error) {
      this.logger.warn(`The resume journal record ${join(this.dir, name)} cannot be written: ${(error as Error).message}`);
      return false;
    }
  }

  /**
   * Deletes the record of a key whatever its state, unless a live process owns it (when its
   * upload completed, or the caller decided to start over).
   */
  async forget(key: Pick<JournalKey, 'target' | 'runId' | 'artifactPath'> & { local: Pick<LocalFileIdentity, 'path'> }): Promise<void> {
    const name = recordFileName(key.target, key.runId, key.artifactPath, key.local.path);
    await this.queues.run(name, () =>
      this.file(name).update(async (current) => {
        if (current && sameKey(current, key) && this.ownedByLiveProcess(current)) return { result: undefined };
        if (!current && this.leftToNewerVersion(name)) return { result: undefined };
        return { remove: true, result: undefined };
      }),
    ).catch((error: unknown) => this.logger.warn(`Could not remove the resume journal record ${join(this.dir, name)}: ${(error as Error).message}`));
  }

  /**
   * Every record, newest first; corrupt ones, those of a newer journal format (with
   * `newerFormat`) and those that cannot be read now (with `unreadable`) are listed without `record`.
   *
   * @throws {LocalPathError} `NOT_A_DIRECTORY` when the journal directory is a file,
   *   `PATH_UNREADABLE` when it cannot be listed.
   */
  async list(): Promise<JournalListEntry[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw journalDirError(error, this.dir);
    }
    const entries: JournalListEntry[] = [];
    for (const name of names.filter((n) => LOG_NAME.test(n))) entries.push(...(await this.listLog(join(this.dir, name))));
    for (const name of names.filter((n) => RECORD_NAME.test(n))) {
      const path = join(this.dir, name);
      const info = await stat(path).catch(() => undefined);
      if (!info) continue;
      const { record, newerFormat, unreadable } = await this.readRecordFile(path);
      entries.push({
        file: path,
        updatedAt: record?.updatedAt ?? info.mtimeMs,
        record,
        ...(newerFormat !== undefined ? { newerFormat } : {}),
        ...(unreadable ? { unreadable } : {}),
        inUse: record ? this.ownedByLiveProcess(record) : false,
        bytesDone: !record ? 0 : record.status === 'uploaded' ? record.local.size : (record.multipart?.parts ?? []).reduce((sum, p) => sum + p.size, 0),
      });
    }
    return entries.sort((a, b) => b.updatedAt - a.updatedAt);
  }

  /** A record read for listing: no warning for a corrupt one (it is listed as such). */
  private async readQuiet(path: string): Promise<JournalRecord | undefined> {
    return (await this.readRecordFile(path)).record;
  }

  /**
   * A record file read once, without a warning: its record (none when unreadable or corrupt),
   * and, for a record of a newer journal format ({@link newerFormatVersion}), which the sweep
   * and {@link clear} keep, its format version. `unreadable` when it is there but could not be
   * read ({@link readJournalFile}).
   */
  private async readRecordFile(path: string): Promise<{ record: JournalRecord | undefined; newerFormat?: number; unreadable?: true }> {
    const read = await readJournalFile(path, readWhole);
    if (!('text' in read)) return 'unreadable' in read ? { record: undefined, unreadable: true } : { record: undefined };
    try {
      const json: unknown = JSON.parse(read.text);
      const parsed = (await loadRecordSchema()).safeParse(json);
      if (parsed.success) return { record: parsed.data ?? undefined };
      const newerFormat = newerFormatVersion(json);
      return newerFormat !== undefined ? { record: undefined, newerFormat } : { record: undefined };
    } catch {
      return { record: undefined };
    }
  }

  /**
   * One readdir of the journal: the names of the per-file records there, and the run's
   * operation logs, read. An operation costs this once, whatever its number of files; the
   * per-file records it names are read only for the files they are about.
   * @internal the resume step's (`resume.ts`)
   */
  async scan(target: string, runId: string): Promise<JournalScan> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { recordNames: new Set(), logs: [] };
      throw error;
    }
    const prefix = logPrefix(target, runId);
    const logs: ReadOperationLog[] = [];
    for (const name of names) {
      if (LOG_NAME.exec(name)?.[1] !== prefix) continue;
      const log = await this.readLog(join(this.dir, name), false);
      // The hash names the run; the header says it (a collision, however unlikely, is not trusted).
      if (log && log.header.key.target === journalTarget(target) && log.header.key.runId === runId) logs.push(log);
    }
    return { recordNames: new Set(names.filter((n) => RECORD_NAME.test(n))), logs };
  }

  /**
   * A new operation log for an operation on a run: nothing is written until the first file is
   * recorded in it. See {@link OperationLog}.
   * @internal the resume step's (`resume.ts`)
   */
  operationLog(target: string, runId: string): OperationLog {
    const owner = newOwner();
    const header: OperationLogHeader = { version: 1, kind: 'finished-files', key: { target: journalTarget(target), runId }, owner, createdAt: Date.now() };
    return new OperationLog(this.dir, join(this.dir, `${logPrefix(target, runId)}-${owner.token}.log`), header, this.logger);
  }

  /**
   * True when the log is being written: by an operation of this process, or by another live process.
   * @internal
   */
  logInUse(log: ReadOperationLog, now = Date.now()): boolean {
    if (openLogs.has(log.path)) return true;
    const { owner } = log.header;
    if (owner.host === host()) return owner.pid !== process.pid && processAlive(owner.pid);
    const last = log.lines.at(-1)?.at ?? log.header.createdAt;
    return now - last < this.ownerStaleMs;
  }

  /**
   * Deletes an operation log (once every file it names is done), unless it is in use. Never throws.
   * @internal
   */
  async removeLog(log: ReadOperationLog): Promise<void> {
    if (this.logInUse(log)) return;
    await rm(log.path, { force: true }).catch((error: unknown) => this.logger.warn(`Could not remove the resume journal log ${log.path}: ${(error as Error).message}`));
  }

  /**
   * Reads an operation log: `undefined` when it is gone or its header is not a log header (with
   * a warning unless `quiet`). Lines that are not whole (the last line of a writer killed while
   * appending, or zeros after a power loss) are left out: they cost re-sending a file, never a
   * wrong skip.
   */
  private async readLog(path: string, quiet: boolean): Promise<ReadOperationLog | undefined> {
    return (await this.readLogFile(path, quiet)).log;
  }

  /**
   * An operation log read once ({@link readLog}), and, for a log of a newer journal format (its
   * header's `version`, {@link newerFormatVersion}), which the sweep and {@link clear} keep as they
   * keep such a record, its format version; `unreadable` when it is there but could not be read
   * ({@link readJournalFile}: whether its operation runs now cannot be told). The one reader of a
   * log's header: with `part: 'header'`, only the header line is read (the sweep needs nothing
   * else of an expired log, and a log has a line per finished file after it, 20,000 for a large
   * upload), and `log` is left out.
   */
  private async readLogFile(path: string, quiet: boolean, part: 'whole' | 'header' = 'whole'): Promise<{ header?: OperationLogHeader; log?: ReadOperationLog; newerFormat?: number; unreadable?: true }> {
    const read = await readJournalFile(path, part === 'header' ? readFirstLine : readWhole);
    if ('gone' in read) return {};
    if ('unreadable' in read) {
      if (!quiet) this.logger.warn(`Ignoring the resume journal log ${path}: ${read.unreadable.message}`);
      return { unreadable: true };
    }
    const { LogHeaderSchema, LogLineSchema } = await loadLogSchemas();
    const [first = '', ...rest] = read.text.split('\n');
    const json = parseJson(first);
    const header = LogHeaderSchema.safeParse(json);
    if (!header.success) {
      // A header no log of this version has (a newer version's, `version` > 1) is one the schema refuses, so the version alone tells.
      const newerFormat = newerFormatVersion(json);
      if (!quiet) {
        this.logger.warn(
          newerFormat !== undefined
            ? `The resume journal log ${path} was written by a newer version of artifact-uploader; it is left alone, and the files it names are sent again.`
            : `Ignoring a corrupt resume journal log ${path}: its first line is not a log header. \`artifact-uploader resume clear\` deletes it.`,
        );
      }
      return newerFormat !== undefined ? { newerFormat } : {};
    }
    if (part === 'header') return { header: header.data };
    const lines: OperationLogLine[] = [];
    for (const text of rest) {
      const line = text ? LogLineSchema.safeParse(parseJson(text)) : undefined;
      if (line?.success) lines.push(line.data);
    }
    return { header: header.data, log: { path, header: header.data, lines } };
  }

  /**
   * An operation log as list entries, one per file (a corrupt one, one of a newer journal
   * format with `newerFormat`, or one that cannot be read now with `unreadable`, as one entry
   * without `record`).
   */
  private async listLog(path: string): Promise<JournalListEntry[]> {
    const { log, newerFormat, unreadable } = await this.readLogFile(path, true);
    if (!log) {
      const info = await stat(path).catch(() => undefined);
      return info ? [{ file: path, updatedAt: info.mtimeMs, ...(newerFormat !== undefined ? { newerFormat } : {}), ...(unreadable ? { unreadable } : {}), inUse: false, bytesDone: 0 }] : [];
    }
    const { header } = log;
    const inUse = this.logInUse(log);
    // Every file of a log is as old as its last line: they are cleared together.
    const updatedAt = log.lines.at(-1)?.at ?? header.createdAt;
    return log.lines.map((line) => ({
      file: path,
      updatedAt,
      inUse,
      bytesDone: line.local.size,
      record: {
        version: 1,
        key: { target: header.key.target, runId: header.key.runId, artifactPath: line.artifactPath, localPath: line.localPath },
        local: line.local,
        status: 'uploaded',
        owner: header.owner,
        createdAt: line.at,
        updatedAt,
        ...(line.sha256 ? { sha256: line.sha256 } : {}),
      },
    }));
  }

  /**
   * Deletes records: all of them, or those not written for `olderThanMs`. Records a live
   * process owns are left (and returned in `inUse`), and so are records of a newer journal
   * format (returned in `newerFormat`: a later artifact-uploader's, which may name an upload
   * this version cannot give up; the sweep leaves them too), and records that cannot be read now
   * (returned in `unreadable`: what they name is unknown, and a transient error must not remove
   * the only handle to an upload billed until aborted; `removeUnreadable` removes them, without
   * giving up any upload). A record that names an upload in progress
   * (a multipart upload, a session) is taken over before it is deleted, so that no rerun that
   * picked it up meanwhile loses it (it is then left, in `inUse`). The uploads the deleted
   * records name are not given up here (the store is not known): `abandonRecordUploads` does
   * that (`resume clear`), else S3 lifecycle rules abort them; so only records that name none
   * are removed by age or bounds without a caller's asking ({@link UploadJournal.sweep}).
   *
   * With `dryRun`, nothing is removed or taken over: the result says what would be (a record a
   * rerun takes over meanwhile would be left after all), and the journal directory is checked
   * as for a real clear, so a dry run fails where the clear would.
   *
   * @throws {LocalPathError} `PATH_UNWRITABLE` when the journal directory cannot be written and
   *   anything is due for deletion (checked before any record is removed), `NOT_A_DIRECTORY` /
   *   `PATH_UNREADABLE` as {@link list}.
   *
   * @example
   * ```ts
   * const journal = await UploadJournal.open();
   * const { removed: due } = await journal.clear({ olderThanMs: 24 * 3600_000, dryRun: true });
   * const { removed, unreadable } = await journal.clear({ olderThanMs: 24 * 3600_000 });
   * console.log(`left ${unreadable.length} record(s) that could not be read now`); // removeUnreadable: true removes them
   * ```
   */
  async clear(options: JournalClearOptions = {}): Promise<JournalClearResult> {
    const now = Date.now();
    const result: JournalClearResult = { removed: [], inUse: [], newerFormat: [], unreadable: [], archives: [], at: now };
    /** Each record file or log handled, and whether it went. */
    const removedFiles = new Map<string, boolean>();
    const due = (await this.list()).filter((entry) => options.olderThanMs === undefined || now - entry.updatedAt >= options.olderThanMs);
    const leftUnreadable = (entry: JournalListEntry) => entry.unreadable === true && options.removeUnreadable !== true;
    for (const entry of due) {
      if (entry.newerFormat !== undefined) result.newerFormat.push(entry);
      else if (leftUnreadable(entry)) result.unreadable.push(entry);
    }
    const deletable = due.filter((entry) => entry.newerFormat === undefined && !leftUnreadable(entry));
    // Before any record goes: a clear that failed half-way through (the first `rm` refused)
    // lost the records it had removed, whose uploads its caller never got to give up. Only when
    // there is something to delete: a journal with nothing due (empty, or nothing older than
    // asked) is cleared as it is, read-only or not, as a cron's `resume clear --older-than` expects.
    if (deletable.some((entry) => !entry.inUse) || (await hasStagedArchives(this.dir))) await this.assertWritable();
    if (options.dryRun) {
      for (const entry of deletable) (entry.inUse ? result.inUse : result.removed).push(entry);
      // What `removeStagedArchives` would delete, by its rule.
      result.archives = (await listStagedArchives(this.dir)).filter((a) => isDueForClear(a, options.olderThanMs, now)).map((a) => a.dir);
      return result;
    }
    for (const entry of deletable) {
      if (entry.inUse) {
        result.inUse.push(entry);
        continue;
      }
      const record = entry.record;
      if (record && hasUnfinishedUpload(record)) {
        // Its upload is given up after this: taken over first, so a rerun that began
        // continuing it since the list keeps it (and its record), and only a dead one's goes.
        const taken = await this.takeOver(basename(entry.file), record);
        if (!taken || !(await taken.remove())) {
          result.inUse.push({ ...entry, inUse: true });
          continue;
        }
        result.removed.push(entry);
        continue;
      }
      // The files of one operation log share its file: removed once.
      if (!removedFiles.has(entry.file)) removedFiles.set(entry.file, await this.removeFile(entry.file));
      if (removedFiles.get(entry.file)) result.removed.push(entry);
    }
    result.archives = await removeStagedArchives(this.dir, options);
    return result;
  }

  /**
   * Deletes a record file or log for {@link clear}: whether it is gone. One this user may not
   * delete (another user's, in a shared journal whose directory has the sticky bit, as `/tmp`)
   * is left with a warning, and the clear goes on: a clear that stopped there lost the records
   * it had removed, whose uploads its caller never got to give up.
   */
  private async removeFile(path: string): Promise<boolean> {
    try {
      await unlink(path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return true;
      this.logger.warn(`Could not remove the resume journal record ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); it is left. A record of another user's is removed by that user's \`artifact-uploader resume clear\`.`);
      return false;
    }
  }

  /**
   * Refuses a journal directory this user may not write in (a journal another user or a
   * container's root made, a read-only mount): no record in it can be removed. A missing one
   * has nothing to remove.
   *
   * @throws {LocalPathError} `PATH_UNWRITABLE`, naming the directory.
   */
  private async assertWritable(): Promise<void> {
    try {
      await access(this.dir, constants.W_OK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') throw journalDirError(error, this.dir);
      throw new LocalPathError('PATH_UNWRITABLE', this.dir, `The resume journal ${this.dir} cannot be written (${code}): none of its records can be removed.`, {
        hint:
          code === 'EROFS'
            ? `It is on a read-only file system: run this where it is mounted writable, or point the journalDir option or ${JOURNAL_DIR_ENV} at another journal.`
            : `Run this as the user who owns it (a journal a container created as root is root's), or make it writable for this user; nothing was removed or given up.`,
        cause: error,
      });
    }
  }

  /**
   * The records the last sweep found past `maxAgeMs` and kept because they name an upload the
   * store keeps until it is aborted ({@link hasLastingUpload}), oldest first; the list is
   * emptied, so that of the operations sharing this journal one gives them up. The caller takes
   * each over ({@link takeOver}) before it gives its upload up, and removes it, or hands it back
   * ({@link handBack}) when the upload could not be given up.
   * @internal the resume step's (`resume.ts`)
   */
  takeExpired(): ExpiredRecord[] {
    const expired = this.expired;
    this.expired = [];
    return expired;
  }

  /**
   * Puts a record taken over ({@link takeOver}) back as it was before, its owner and its age
   * included (the file's modification time too, which the sweep reads): for a record whose
   * upload could not be given up, which must stay as expired as it was, not look a week younger.
   * Leaves a record that changed since alone. Never throws.
   * @internal the resume step's (`resume.ts`)
   */
  async handBack(entry: JournalEntry): Promise<void> {
    const before = entry.previous;
    if (before) await this.writeBack(entry.name, before, before.updatedAt, (current) => current?.owner.token === entry.record.owner.token);
  }

  /**
   * Writes a record {@link clear} removed back as it was (its owner and age, the file's
   * modification time too), unless another has taken its place since (a rerun of that file
   * began afresh): for `resume clear`, whose lookup of the record's server was refused without
   * the credentials it withholds from that server, and which keeps the record for a clear that
   * has them. Returns whether it was written. Never throws.
   * @internal `resume clear`'s
   */
  async restore(entry: JournalListEntry): Promise<boolean> {
    return entry.record !== undefined && this.writeBack(basename(entry.file), entry.record, entry.updatedAt, (current) => !current);
  }

  /**
   * Writes `record` as record `name` when `may` allows it of the record there now, and dates the
   * file `modifiedAt`, both under the record's lock (a writer that takes the record next never
   * gets the old time): {@link handBack} and {@link restore}. Whether it was written; never throws.
   */
  private async writeBack(name: string, record: JournalRecord, modifiedAt: number, may: (current: JournalRecord | null) => boolean): Promise<boolean> {
    try {
      return await this.queues.run(name, () => this.file(name).update((current) => (may(current) ? { state: record, modifiedAt, result: true } : { result: false })));
    } catch (error) {
      this.logger.warn(`The resume journal record ${join(this.dir, name)} cannot be written: ${(error as Error).message}`);
      return false;
    }
  }

  /**
   * Deletes expired records, temp and lock leftovers of crashed writers, and the oldest records
   * beyond `maxEntries` / `maxBytes` (records a live process owns are kept). Offline and cheap:
   * one `readdir` and a `stat` per file, and a read of the records that are expired (of an
   * expired operation log, its header line only) or, over the bounds, candidates for deletion.
   *
   * A record that names an upload the store keeps until it is aborted (`hasLastingUpload`: an
   * S3 multipart upload, direct or through the MLflow proxy, or one being created) is never
   * deleted here: it is the only handle to parts billed until then. Past `maxAgeMs` it is kept
   * for the next operation of this journal that completes, which gives its upload up. Over the bounds, the oldest records without such an upload
   * go first; when only such records are left over the bounds, they are kept, with a warning:
   * each is about 1 KB (bounded by its parts), so keeping them costs far less than losing track
   * of the uploads, and `resume clear` gives them up.
   */
  async sweep(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    const now = Date.now();
    const records: Array<{ path: string; mtimeMs: number; size: number }> = [];
    const expired: Array<ExpiredRecord & { mtimeMs: number }> = [];
    for (const name of names) {
      const path = join(this.dir, name);
      const info = await stat(path).catch(() => undefined);
      if (!info?.isFile()) continue;
      const age = now - info.mtimeMs;
      if (RECORD_NAME.test(name) || LOG_NAME.test(name)) {
        // An expired record is read: one naming an upload the store keeps is kept (see above);
        // an expired log too, its header line only (a newer version's is kept, as its records are).
        const expiredRecord = age > this.maxAgeMs && RECORD_NAME.test(name) ? await this.readRecordFile(path) : undefined;
        const expiredLog = age > this.maxAgeMs && LOG_NAME.test(name) ? await this.readLogFile(path, true, 'header') : undefined;
        const record = expiredRecord?.record;
        const lasting = record !== undefined && hasLastingUpload(record);
        if (lasting) expired.push({ name, record, mtimeMs: info.mtimeMs });
        const newer = (expiredRecord ?? expiredLog)?.newerFormat !== undefined;
        // One that cannot be read now is kept for a sweep that can (readJournalFile): a record may
        // name a lasting upload; a log lists finished files only, but a transient error is no
        // reason to delete what a later sweep could read, and decide on.
        const unreadable = (expiredRecord ?? expiredLog)?.unreadable === true;
        if (age > this.maxAgeMs && !lasting && !newer && !unreadable) await rm(path, { force: true });
        else records.push({ path, mtimeMs: info.mtimeMs, size: info.size });
      } else if (/\.tmp$|\.lock\.broken-/.test(name) && (age > 60_000 || leftByDeadWriter(name, info.mtimeMs))) {
        // A writer killed between creating its temp file and renaming it (or linking it: a
        // record's lock); at once when the name says its process is gone.
        await rm(path, { force: true });
      } else if (RECORD_LOCK_NAME.test(name)) {
        // A writer killed while it held a record's lock (e.g. in forget(), between deleting the
        // record and its lock): nobody locks that record again, so the lock would stay. Removed
        // when its holder is gone, by the same test (and rename) a waiting writer uses.
        await this.file(name.slice(0, -'.lock'.length)).breakStaleLock();
      } else if (RECORD_BREAKER_NAME.test(name)) {
        // A process killed while it broke a record's stale lock (it holds this for a few file
        // operations): removed when its process is gone, or after a few seconds. Its lock, when
        // one is left, was handled above or is handled when its name comes.
        await this.file(name.slice(0, -'.lock.breaking'.length)).removeStaleBreaker();
      }
    }
    // Destination locks (destination-lock.ts) of uploads killed while they held one.
    await sweepDestinationLocks(this.dir);
    this.expired = expired.sort((a, b) => a.mtimeMs - b.mtimeMs).map(({ name, record }) => ({ name, record }));
    let bytes = records.reduce((sum, r) => sum + r.size, 0);
    let count = records.length;
    if (count <= this.maxEntries && bytes <= this.maxBytes) return;
    records.sort((a, b) => a.mtimeMs - b.mtimeMs);
    let deleted = 0;
    let lasting = 0;
    for (const r of records) {
      if (count <= this.maxEntries && bytes <= this.maxBytes) break;
      if (r.path.endsWith('.log')) {
        const { log, newerFormat, unreadable } = await this.readLogFile(r.path, true);
        if (log && this.logInUse(log, now)) continue;
        if (newerFormat !== undefined || unreadable) continue;
      } else {
        const { record, newerFormat, unreadable } = await this.readRecordFile(r.path);
        if (record && this.ownedByLiveProcess(record, now)) continue;
        // Whose it is and what it names cannot be told now: left for a later sweep.
        if (newerFormat !== undefined || unreadable) continue;
        if (record && hasLastingUpload(record)) {
          lasting++;
          continue;
        }
      }
      await rm(r.path, { force: true });
      deleted++;
      count--;
      bytes -= r.size;
    }
    const over = count > this.maxEntries || bytes > this.maxBytes;
    const kept = over && lasting > 0 ? ` ${lasting} record(s) that name an unfinished S3 multipart upload were kept all the same (it stays billed until aborted, and the record is the only handle to it), so the journal holds ${count} records, ${bytes} bytes: \`artifact-uploader resume clear\` gives their uploads up and removes them.` : '';
    this.logger.warn(`The resume journal ${this.dir} was over its bounds (${this.maxEntries} records, ${this.maxBytes} bytes); the ${deleted} oldest record(s) were deleted.${kept}`);
  }
}

/**
 * The record of one upload, owned by this process: record parts and the resume token as they
 * finish, then {@link JournalEntry.finish}. Every method is best effort: a write that fails is
 * logged and reported as `false`, never thrown.
 */
export class JournalEntry {
  /** @internal */
  constructor(
    private readonly journal: UploadJournal,
    /** The record file's name in the journal directory. */
    readonly name: string,
    private current: JournalRecord,
    /** The record found when the entry began (another attempt's, or an earlier file version's). */
    readonly previous: JournalRecord | undefined,
  ) {}

  /** The record as this entry last wrote it. */
  get record(): JournalRecord {
    return this.current;
  }

  private update(change: (record: JournalRecord) => JournalRecord, options: { sync?: boolean } = {}): Promise<boolean> {
    return this.journal.change(
      this.name,
      this.current.owner.token,
      (record) => {
        this.current = change(record);
        return this.current;
      },
      options,
    );
  }

  /** Records a started multipart upload (drops parts of any earlier one); fsynced, as losing it would orphan the upload. */
  startMultipart(uploadId: string, partSize: number): Promise<boolean> {
    return this.update(({ creatingMultipart: _creating, ...record }) => ({ ...record, status: 'uploading', multipart: { uploadId, partSize, parts: [] } }), { sync: true });
  }

  /**
   * Records that a multipart upload is about to be created, before its request is sent: a kill
   * before its id is recorded ({@link startMultipart}) would otherwise leave an upload nobody
   * knows of. Synced like the id itself.
   */
  creatingMultipart(): Promise<boolean> {
    return this.update((record) => ({ ...record, status: 'uploading', creatingMultipart: Date.now() }), { sync: true });
  }

  /** Records finished parts of the current multipart upload (a part recorded again replaces the old one). */
  recordParts(...parts: JournalPart[]): Promise<boolean> {
    return this.update((record) => {
      if (!record.multipart) return record;
      const byNumber = new Map(record.multipart.parts.map((p) => [p.partNumber, p]));
      for (const part of parts) byNumber.set(part.partNumber, part);
      return { ...record, multipart: { ...record.multipart, parts: [...byNumber.values()].sort((a, b) => a.partNumber - b.partNumber) } };
    });
  }

  /** Forgets the multipart upload (it was completed or aborted, or is not wanted any more). */
  dropMultipart(): Promise<boolean> {
    return this.update(({ multipart: _dropped, ...rest }) => rest);
  }

  /** Records (or, with `undefined`, removes) the store-specific resume token. */
  setResumeToken(token: JournalResumeToken | undefined): Promise<boolean> {
    return this.update(({ resumeToken: _old, ...rest }) => (token ? { ...rest, resumeToken: token } : rest));
  }

  /** Marks the file uploaded (with the sha256 of the bytes sent, when known); parts and token are dropped. */
  finish(options: { sha256?: string } = {}): Promise<boolean> {
    return this.update(({ multipart: _m, creatingMultipart: _c, resumeToken: _t, sha256: _s, ...rest }) => ({ ...rest, status: 'uploaded', ...(options.sha256 ? { sha256: options.sha256 } : {}) }));
  }

  /** Deletes the record (the whole operation completed, or the upload is abandoned). */
  remove(): Promise<boolean> {
    return this.journal.change(this.name, this.current.owner.token, () => 'delete');
  }
}

/**
 * The `version` of a record file's JSON, or of an operation log's header line, when it is of a
 * newer journal format than this version reads (above 1; else `undefined`): a later
 * artifact-uploader's, sharing the journal (the default directory is per user, not per install). This version cannot tell whether it
 * names an upload billed until aborted, so it leaves it to that version: the sweep does not
 * delete it by age or bounds, `clear` lists it in `newerFormat`, and an upload of the same file
 * neither overwrites nor removes it (`leftToNewerVersion`).
 * A record or log that is corrupt (not JSON, or not of any version) is replaced or deleted as
 * before.
 */
function newerFormatVersion(parsed: unknown): number | undefined {
  const version = (parsed as { version?: unknown } | null | undefined)?.version;
  return typeof version === 'number' && version > 1 ? version : undefined;
}

/**
 * What reading a journal file (a record, an operation log, or a log's header line) gave: its
 * text; `gone` when it is not there (released, cleared, swept meanwhile); or `unreadable` when
 * it is there and could not be read (EIO, EMFILE, EACCES). Every reader of the journal's files
 * goes through it, for one policy: an unreadable file is not a corrupt one, nor an absent one.
 * What it holds (its owner, the upload it names, whether its operation runs now) is unknown, so
 * nothing deletes it on that read: a transient error must not delete what a later read could
 * read, such as the only handle to an S3 multipart upload billed until it is aborted (the sweep
 * keeps it, by age and by bounds; `clear` lists it and leaves it unless asked to remove it).
 */
type JournalFileRead = { text: string } | { gone: true } | { unreadable: Error };

async function readJournalFile(path: string, read: (path: string) => Promise<string>): Promise<JournalFileRead> {
  try {
    return { text: await read(path) };
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? { gone: true } : { unreadable: error as Error };
  }
}

/** A journal file's whole text. */
function readWhole(path: string): Promise<string> {
  return readFile(path, 'utf8');
}

/** How much of an operation log {@link readFirstLine} reads at a time, looking for the end of its header line. */
const HEADER_READ_BYTES = 64 * 1024;

/** The first line of a file (its header, for an operation log), read on to its end and no further. */
async function readFirstLine(path: string): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const read: Buffer[] = [];
    for (;;) {
      const chunk = Buffer.alloc(HEADER_READ_BYTES);
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      const end = chunk.subarray(0, bytesRead).indexOf(0x0a);
      read.push(chunk.subarray(0, end >= 0 ? end : bytesRead));
      if (end >= 0 || bytesRead === 0) break;
    }
    return Buffer.concat(read).toString('utf8');
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** `JSON.parse`, `undefined` for text that is not JSON. */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * The log of the files one operation has finished: a file of JSON lines that only this
 * operation appends to (so it takes no lock), its header first. It is what makes file-level
 * resume cheap for many small files: recording a finished file is one `write` of one line to a
 * file already open, and the operation's completion deletes one file, where a record per file
 * costs a locked read-modify-write and a removal each. Files with part-level state (multipart
 * uploads, resume tokens) keep their per-file records.
 *
 * Lines are appended as files finish; lines of files that finish while a write is under way go
 * out together in the next write. A process killed at any instant loses at most the lines not
 * yet written, i.e. of files whose upload had just finished, and leaves at most a torn last line,
 * which readers skip. Appends are not fsynced: after a power loss the tail may be lost, which
 * costs re-sending those files, never a wrong skip (a file is skipped only when the store lists
 * it with the same size). Every method is best effort: a write that fails is logged once, and
 * the operation goes on without the log.
 */
export class OperationLog {
  private handle: FileHandle | undefined;
  /** Whether the header is in the file (written with the first line). */
  private started = false;
  private queued: string[] = [];
  private tail: Promise<unknown> = Promise.resolve();
  private failed = false;

  /** @internal */
  constructor(
    private readonly dir: string,
    /** The log file. */
    readonly path: string,
    /** Its first line. */
    readonly header: OperationLogHeader,
    private readonly logger: Logger,
  ) {}

  /** Appends a finished file; resolves once its line is written (or could not be). */
  record(line: OperationLogLine): Promise<void> {
    if (this.failed) return Promise.resolve();
    this.queued.push(`${JSON.stringify(line)}\n`);
    return this.then(() => this.writeQueued());
  }

  /** Closes the file, keeping it (an operation that failed: its rerun resumes from it). */
  close(): Promise<void> {
    return this.then(async () => {
      const handle = this.handle;
      this.handle = undefined;
      openLogs.delete(this.path);
      await handle?.close();
    });
  }

  /** Closes and deletes the file (the operation completed). A later {@link record} starts a new one. */
  remove(): Promise<void> {
    return this.then(async () => {
      const handle = this.handle;
      this.handle = undefined;
      await handle?.close();
      if (this.started) await rm(this.path, { force: true });
      this.started = false;
      openLogs.delete(this.path);
    });
  }

  /** Runs `task` after every earlier one; never rejects. */
  private then(task: () => Promise<void>): Promise<void> {
    const next = this.tail.then(task).catch((error: unknown) => {
      if (!this.failed) this.logger.warn(`The resume journal log ${this.path} cannot be written (${(error as Error).message}); files finished from now on are sent again if this upload is interrupted.`);
      this.failed = true;
    });
    this.tail = next;
    return next;
  }

  /** Writes every line queued so far in one append (nothing when an earlier write took them). */
  private async writeQueued(): Promise<void> {
    if (this.queued.length === 0 || this.failed) return;
    let text = this.queued.join('');
    this.queued = [];
    if (!this.handle) {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      // O_APPEND: every write lands at the end, whole; owner-only, like the records.
      this.handle = await open(this.path, 'a', 0o600);
      openLogs.add(this.path);
    }
    if (!this.started) text = `${JSON.stringify(this.header)}\n${text}`;
    this.started = true;
    await this.handle.appendFile(text);
  }
}
