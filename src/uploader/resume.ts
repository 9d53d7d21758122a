/**
 * Resume, the pipeline step over the journal (`journal.ts`): before the transfer, it sets aside
 * the files an interrupted earlier run already put in the store; during it, it records each file
 * (and, for part-level stores, each part) as it finishes; when the operation has completed, it
 * removes the operation's records.
 *
 * A file is `resumed` (not sent) when
 * - the journal says this machine uploaded this very local file (same size, mtime, inode) to the
 *   same target, run and artifact path, **and** the store lists it with the same size; or
 * - without such a record, `skipExisting: 'size'` is set and the store lists it with the same
 *   size (`'checksum'` needs a store whose listing reports checksums; none does yet, so it is
 *   refused before any transfer).
 * Everything else is sent. A record of an earlier version of the file (changed since) is
 * replaced, and its multipart upload aborted by the store. With resume off (`--no-resume`) the
 * journal is not read for skipping: every file is sent, and recorded as it goes.
 *
 * A file deleted (or renamed away) from a directory between a kill and the rerun is not in the
 * rerun's plan, so nothing above looks at its record: when a directory operation completes, the
 * records of its target and run that are none of its files are read, and those of files that
 * were in its directory, under its destination, and are gone now have their upload given up by
 * the store (the multipart upload aborted, the session cancelled) and are removed.
 *
 * Records the journal's sweep found expired but kept, because they name an upload the store
 * keeps and bills until it is aborted (an S3 multipart upload, direct or through the MLflow
 * proxy: `hasLastingUpload`), are given up after an operation completes, within a small time
 * budget ({@link EXPIRED_UPLOADS_BUDGET_MS}): those of the operation's run with its store,
 * those of other runs on the same tracking server after a lookup of their run. What is left
 * (another server's, a lookup or an abort that failed) stays in the journal, and one warning,
 * once per process, says how many, how old, and which `resume clear` gives them up.
 *
 * **What it costs.** The journal is read once per operation ({@link UploadJournal.scan}: one
 * `readdir`, plus the run's operation logs when an interrupted run left some). A file sent in one
 * request is recorded with one line appended to the operation's log ({@link OperationLog}), with
 * the identity of the `stat` the transfer takes before sending it anyway; no lock, no rename, no
 * per-file removal. Only files with part-level state (a multipart upload, a resume token), or
 * with a per-file record already in the journal, have per-file records (locked, atomic).
 * Completion deletes the operation's log and the records of its files.
 *
 * @module
 */
import { lstat } from 'node:fs/promises';
import { posix, resolve } from 'node:path';
import { InvalidArgumentError } from '../core/errors.js';
import { combineSignals } from '../core/abort.js';
import type { Env } from '../core/env.js';
import { isInside } from '../core/real-path.js';
import type { Logger } from '../core/logger.js';
import type { FileSnapshot } from '../core/source-snapshot.js';
import type { MlflowConnection } from '../mlflow/connection.js';
import type { ArtifactEntry, ArtifactStore, LostUpload, MultipartResume, PreviousMultipartUpload, StoredPart, StoreResumeToken } from '../stores/artifact-store.js';
import { abandonRecordUpload, abandonRecordUploads, earlierUploadOf, giveUpUpload, type AbandonOutcome } from './abandon-records.js';
import {
  hasUnfinishedUpload,
  journalTarget,
  localFileIdentity,
  recordFileName,
  type JournalEntry,
  type JournalKey,
  type JournalRecord,
  type JournalScan,
  type LocalFileIdentity,
  type OperationLog,
  type OperationLogLine,
  type UploadJournal,
} from './journal.js';

/**
 * The most time, in ms, that giving up the uploads of expired records may add to an operation
 * that completed (run lookups and aborts together): past it, the rest stays in the journal,
 * with the warning. An upload waits for it, so it is seconds, not the retry policy's minutes.
 */
export const EXPIRED_UPLOADS_BUDGET_MS = 20_000;

/**
 * The retry policy of the stores made for expired records of other runs, and of their run
 * lookups when the operation has no connection of its own to pass (with one, the lookup is the
 * connection's, with its policy): one retry (the server answered the operation just before);
 * the rest of the policy is the environment's, and {@link EXPIRED_UPLOADS_BUDGET_MS} bounds it all.
 */
const EXPIRED_LOOKUP_RETRY = { maxRetries: 1 };

/**
 * The expired records this process has left already (handed back, or another server's), by
 * {@link leftKey}: tried, and warned about, once per process, not again by each uploader it
 * makes (a stage helper makes one per call: a training loop, one per checkpoint, each of which
 * would otherwise spend up to {@link EXPIRED_UPLOADS_BUDGET_MS} and repeat the warning). A
 * record written since (another owner or time) is tried again.
 */
const leftInThisProcess = new Set<string>();

/** The key of an expired record in {@link leftInThisProcess}: its journal, file, owner token and time. */
function leftKey(journal: UploadJournal, name: string, record: JournalRecord): string {
  return JSON.stringify([journal.dir, name, record.owner.token, record.updatedAt]);
}

/** How an operation may skip files already in the store. */
export type SkipExisting = 'size' | 'checksum';

/** A file of an operation, as the step sees it. */
export interface ResumableFile {
  /** Absolute local path. */
  localPath: string;
  /** Destination path relative to the run's artifact root. */
  artifactPath: string;
  size: number;
}

/** A file the step set aside: why it is not sent. */
export interface ResumedFile<F extends ResumableFile = ResumableFile> {
  file: F;
  /** `journal`: this machine's journal and the store's listing agree; `size`: `skipExisting: 'size'` matched the listing. */
  by: 'journal' | 'size';
  /** The sha256 of the bytes the earlier run sent, when the journal recorded it (`by: 'journal'` only). */
  sha256?: string;
}

/** What {@link OperationResume.partition} decided. */
export interface ResumePartition<F extends ResumableFile> {
  resumed: ResumedFile<F>[];
  toSend: F[];
}

/** The per-file side of the step: open before the file is sent, closed after. */
export interface FileResume {
  /** Part-level hooks for the store (`UploadFileOptions.resume`). */
  multipart: MultipartResume;
  /** The file is in the store: record it (with the sha256 of the bytes sent, when the read path hashed them). */
  finish(options?: { sha256?: string }): Promise<void>;
}

/** What the step runs with. */
export interface OperationResumeOptions {
  /** The journal; `undefined` when there is none (resume off and no journal wanted, or it cannot be opened). */
  journal: UploadJournal | undefined;
  /** False with `--no-resume` / `resume: false`: the journal is written, never read. @default true */
  resume?: boolean;
  /** Skip files the store lists with the same size (or checksum) even without a journal record. */
  skipExisting?: SkipExisting | undefined;
  /** Tracking target of the upload (tracking URI, else the artifact URI); credentials are stripped before it is written. */
  target: string;
  runId: string;
  store: ArtifactStore;
  logger: Logger;
  signal?: AbortSignal | undefined;
  /**
   * The directory the operation uploads file by file, and its destination: when the operation
   * completes, what an interrupted earlier run left of files since deleted from that directory
   * (a multipart upload, a resumable session, and their journal records) is given up.
   * @default none (files named one by one, an archive: nothing to give up)
   */
  scope?: { directory: string; artifactPath: string } | undefined;
  /**
   * The environment of the run lookups that give up the uploads of expired records of other
   * runs on the operation's tracking server (`MLFLOW_TRACKING_*` credentials, store settings),
   * as the upload read it.
   * @default process.env
   */
  env?: Env | undefined;
  /**
   * The connection the operation's run was looked up over: the run lookups for expired records
   * of other runs on the same server go over it, with its credentials (a record's target has
   * none: the journal strips them). Without it, a connection is made from `env`.
   */
  connection?: MlflowConnection | undefined;
}

/**
 * Refuses `skipExisting: 'checksum'` for a store whose listing reports no checksum, before
 * anything is sent.
 *
 * @example
 * ```ts
 * assertSkipExisting('size', store); // fine for every store
 * ```
 */
export function assertSkipExisting(skipExisting: unknown, store: ArtifactStore): asserts skipExisting is SkipExisting | undefined {
  if (skipExisting === undefined) return;
  if (skipExisting !== 'size' && skipExisting !== 'checksum') {
    throw new InvalidArgumentError('skipExisting', `skipExisting must be 'size' or 'checksum', got ${JSON.stringify(skipExisting)}.`);
  }
  if (skipExisting === 'checksum') {
    throw new InvalidArgumentError('skipExisting', `skipExisting: 'checksum' needs a store whose listing reports checksums, and ${store.kind} (${store.artifactUri}) reports sizes only.`, {
      hint: "Use skipExisting: 'size' (a file of the same size is taken as the same file), or rely on the resume journal, which knows what this machine sent.",
    });
  }
}

/**
 * The step for one operation. Build it with the operation's target, call
 * {@link OperationResume.partition} before the transfer, {@link OperationResume.beginFile} for
 * each file sent, {@link OperationResume.release} when the transfer is over, and
 * {@link OperationResume.complete} when the whole operation succeeded.
 *
 * @example
 * ```ts
 * const resume = new OperationResume({ journal, target: trackingUri, runId, store, logger });
 * const { resumed, toSend } = await resume.partition(plan.files);
 * ```
 */
export class OperationResume {
  private readonly resume: boolean;
  /** The journal keys of the operation's files, by local path, as computed by partition(). */
  private readonly keys = new Map<string, JournalKey>();
  /** The journal as the operation found it (read once, on first use). */
  private scanned?: Promise<JournalScan | undefined>;
  /** Where this operation records the files it finished (created on the first). */
  private log?: OperationLog;
  /** Per-file records this operation wrote (claimed). */
  private readonly claimedNames = new Set<string>();
  /** Operation logs of earlier runs that completion deleted already. */
  private readonly removedLogs = new Set<string>();

  constructor(private readonly options: OperationResumeOptions) {
    this.resume = options.resume ?? true;
  }

  /** The journal's directory (where staged archives live too); `undefined` without a journal. */
  get journalDir(): string | undefined {
    return this.options.journal?.dir;
  }

  /** False with `--no-resume`: what an earlier run left is not reused. */
  get reuses(): boolean {
    return this.resume;
  }

  /** The journal's records and this run's logs, read once; `undefined` without a readable journal. */
  private scan(): Promise<JournalScan | undefined> {
    const { journal, target, runId, logger } = this.options;
    this.scanned ??= journal
      ? journal.scan(target, runId).catch((error: unknown) => {
          logger.warn(`The resume journal ${journal.dir} cannot be read (${(error as Error).message}); nothing is resumed from it.`);
          return undefined;
        })
      : Promise.resolve(undefined);
    return this.scanned;
  }

  private recordName(file: ResumableFile): string {
    return recordFileName(this.options.target, this.options.runId, file.artifactPath, file.localPath);
  }

  /** The file's key, with its identity: the transfer's snapshot when given, else a `stat` (once). */
  private async keyOf(file: ResumableFile, snapshot?: FileSnapshot): Promise<JournalKey | undefined> {
    const { target, runId } = this.options;
    if (snapshot?.exact) {
      // Not cached: the file's hooks hold it while it is sent (20,000 files, 20,000 keys otherwise).
      const local: LocalFileIdentity = { path: resolve(file.localPath), size: snapshot.size, ...snapshot.exact };
      return { target, runId, artifactPath: file.artifactPath, local };
    }
    const known = this.keys.get(file.localPath);
    if (known) return known;
    try {
      const key = { target, runId, artifactPath: file.artifactPath, local: await localFileIdentity(file.localPath) };
      this.keys.set(file.localPath, key);
      return key;
    } catch {
      return undefined; // unreadable now: the transfer reports it
    }
  }

  /** The store's listing of every directory holding one of `paths`, each listed once. */
  private async listings(paths: readonly string[]): Promise<Map<string, ArtifactEntry>> {
    const dirs = [...new Set(paths.map((p) => posix.dirname(p)).map((d) => (d === '.' ? '' : d)))];
    const entries = new Map<string, ArtifactEntry>();
    for (const dir of dirs) {
      for (const entry of await this.options.store.list(dir || undefined, { signal: this.options.signal })) entries.set(entry.path, entry);
    }
    return entries;
  }

  /**
   * Splits the files into those already in the store (resumed) and those to send. Costs one
   * journal scan, and for each file the journal names (none on a first run) a `stat` and, for
   * a per-file record, its read; then one store listing per directory that holds a candidate
   * (none when no file is a candidate).
   */
  async partition<F extends ResumableFile>(files: readonly F[]): Promise<ResumePartition<F>> {
    const { journal, skipExisting } = this.options;
    // Read even with resume off: completion removes what earlier runs left of this operation.
    const scan = await this.scan();
    if ((!journal || !this.resume) && !skipExisting) return { resumed: [], toSend: [...files] };
    const finished = this.resume && scan ? finishedFiles(scan) : new Map<string, OperationLogLine>();
    const records = this.resume && scan ? scan.recordNames : new Set<string>();
    const candidates: ResumedFile<F>[] = [];
    for (const file of files) {
      const line = finished.get(fileKey(file.artifactPath, resolve(file.localPath)));
      const recorded = records.size > 0 && records.has(this.recordName(file));
      const key = journal && (line || recorded) ? await this.keyOf(file) : undefined;
      if (journal && key) {
        if (line && line.local.size === file.size && sameLocal(line.local, key.local)) {
          candidates.push({ file, by: 'journal', ...(line.sha256 ? { sha256: line.sha256 } : {}) });
          continue;
        }
        const found = recorded ? await journal.lookup(key) : undefined;
        if (found?.state === 'uploaded' && found.record.local.size === file.size) {
          candidates.push({ file, by: 'journal', ...(found.record.sha256 ? { sha256: found.record.sha256 } : {}) });
          continue;
        }
      }
      if (skipExisting === 'size') candidates.push({ file, by: 'size' });
    }
    if (candidates.length === 0) return { resumed: [], toSend: [...files] };
    const listed = await this.listings(candidates.map((c) => c.file.artifactPath));
    const resumed: ResumedFile<F>[] = [];
    const skip = new Set<F>();
    for (const candidate of candidates) {
      const { file, by } = candidate;
      const entry = listed.get(file.artifactPath);
      if (entry && !entry.isDir && sizeMatches(entry, file.size)) {
        resumed.push(candidate);
        skip.add(file);
      } else if (by === 'journal') {
        this.options.logger.info(`The resume journal has ${file.artifactPath} as uploaded, but the store ${entry ? `lists it with ${entry.size ?? 'no'} size` : 'does not list it'}: sending it again.`);
      }
    }
    return { resumed, toSend: files.filter((f) => !skip.has(f)) };
  }

  /**
   * Opens the record of a file about to be sent. Never throws: without a usable journal the
   * hooks do nothing and the file is sent as if there were none. `snapshot` (the transfer's
   * `stat` before sending) is the identity recorded; without it the file is stat'ed here.
   *
   * A per-file record is read only when the journal holds one for the file, and written
   * (claimed) only when needed: at once when an earlier multipart upload of the file is on
   * record (to continue or abort it), else at the first part or resume token. A file sent in
   * one request costs one line in the operation log, when it is done.
   */
  async beginFile(file: ResumableFile, options: { snapshot?: FileSnapshot } = {}): Promise<FileResume> {
    const { journal, logger } = this.options;
    const key = journal ? await this.keyOf(file, options.snapshot) : undefined;
    if (!journal || !key) {
      return { multipart: { reuse: false, started: async () => {}, partDone: async () => {}, aborted: async () => {}, saveToken: async () => {} }, finish: async () => {} };
    }
    let claimed: Promise<JournalEntry | undefined> | undefined;
    const claim = () => {
      this.claimedNames.add(this.recordName(file));
      return (claimed ??= journal.begin(key));
    };

    let previous: PreviousMultipartUpload | undefined;
    let token: StoreResumeToken | undefined;
    let reuse = false;
    // The record's name is a hash: computed only when the journal holds per-file records at all.
    const records = (await this.scan())?.recordNames;
    const found = records && records.size > 0 && records.has(this.recordName(file)) ? await journal.lookup(key) : undefined;
    let lostUpload: LostUpload | undefined;
    if (found && found.state !== 'none' && hasUnfinishedUpload(found.record)) {
      // Another live process's upload (begin() says so by returning nothing) is neither continued nor aborted.
      const takenOverAt = Date.now();
      const entry = await claim();
      previous = entry?.previous?.multipart;
      token = entry?.previous?.resumeToken;
      // A record of this same unchanged file may be continued; one of an earlier version of it
      // (or any record, with resume off) only tells the store which upload to abort.
      reuse = this.resume && entry?.previous !== undefined && sameLocal(entry.previous.local, key.local);
      // Whatever the file is now: an upload whose id nobody recorded will never be completed.
      if (entry?.previous?.creatingMultipart !== undefined) lostUpload = { takenOverAt, markedAt: entry.previous.creatingMultipart };
    }
    // Whether the journal holds the upload in progress (so an interrupted one may stay for the rerun).
    let onRecord = reuse && (previous !== undefined || token !== undefined);
    const multipart: MultipartResume = {
      ...(previous ? { previous } : {}),
      ...(token ? { token } : {}),
      reuse,
      ...(lostUpload ? { lostUpload } : {}),
      creating: async () => {
        await (await claim())?.creatingMultipart();
      },
      saveToken: async (saved) => {
        onRecord = (await (await claim())?.setResumeToken(saved)) === true;
      },
      started: async (uploadId, partSize) => {
        onRecord = (await (await claim())?.startMultipart(uploadId, partSize)) === true;
      },
      partDone: async (part: StoredPart) => {
        await (await claim())?.recordParts(part);
      },
      aborted: async (uploadId) => {
        const entry = await claimed;
        if (entry?.record.multipart?.uploadId === uploadId) await entry.dropMultipart();
        onRecord = false;
        logger.debug(`aborted the multipart upload ${uploadId} of ${file.artifactPath}`);
      },
      onRecord: () => onRecord,
    };
    return {
      multipart,
      finish: async ({ sha256 } = {}) => {
        if (claimed) {
          await (await claimed)?.finish(sha256 ? { sha256 } : {});
          return;
        }
        const { path, size, mtimeNs, ino, dev } = key.local;
        this.log ??= journal.operationLog(this.options.target, this.options.runId);
        await this.log.record({ artifactPath: file.artifactPath, localPath: path, local: { size, mtimeNs, ino, dev }, ...(sha256 ? { sha256 } : {}), at: Date.now() });
      },
    };
  }

  /** The transfer is over (whatever its outcome): the operation's log is closed, and kept. */
  async release(): Promise<void> {
    await this.log?.close();
  }

  /**
   * The operation completed: its records are removed: its own log, the logs earlier runs left
   * whose every file is one of `files` or was deleted from the operation's directory since (and
   * that no live process writes), and the per-file records of `files`; then what earlier runs
   * left of files deleted from its directory is given up ({@link abandonDeletedFiles}).
   */
  async complete(files: readonly ResumableFile[]): Promise<void> {
    const { journal } = this.options;
    if (!journal) return;
    await this.completeOwn(journal, files);
    await this.giveUpExpired(journal);
  }

  /** {@link complete} for what this operation and its earlier runs left. */
  private async completeOwn(journal: UploadJournal, files: readonly ResumableFile[]): Promise<void> {
    const { target, runId } = this.options;
    await this.log?.remove();
    const scan = await this.scan();
    // Built only when earlier runs left logs to check against (a key per file).
    const mine = scan?.logs.length ? new Set(files.map((f) => fileKey(f.artifactPath, resolve(f.localPath)))) : new Set<string>();
    for (const log of scan?.logs ?? []) {
      if (this.removedLogs.has(log.path) || !(await this.allDone(log.lines, mine))) continue;
      this.removedLogs.add(log.path);
      await journal.removeLog(log);
    }
    if ((scan?.recordNames.size ?? 0) === 0 && this.claimedNames.size === 0) return;
    // The records that are none of this operation's files (normally none): those of files
    // deleted from its directory since an interrupted run are among them.
    const others = this.options.scope ? new Set(scan?.recordNames) : undefined;
    for (const file of files) {
      const name = this.recordName(file);
      others?.delete(name);
      if (scan?.recordNames.has(name) || this.claimedNames.has(name)) await journal.forget({ target, runId, artifactPath: file.artifactPath, local: { path: file.localPath } });
    }
    for (const name of this.claimedNames) others?.delete(name);
    if (others && others.size > 0) await this.abandonDeletedFiles(others);
  }

  /**
   * Gives up the uploads of the records the journal's sweep found expired and kept
   * ({@link UploadJournal.takeExpired}: an S3 multipart upload, direct or through the MLflow
   * proxy, which the store keeps and bills until it is aborted), once per journal:
   * - of this target and run: with the operation's store;
   * - of another run on this tracking server: its run looked up there (`abandonRecordUploads`)
   *   over the operation's own connection (its credentials: a record's target has none);
   * - of another tracking server: none. An upload sends no request, and no credential, to a
   *   server it was not pointed at; `resume clear` does, when asked.
   * All of it within {@link EXPIRED_UPLOADS_BUDGET_MS}. Each record is taken over first (one a
   * live process picked up since is left to it), removed once its upload is given up, and
   * handed back as it was otherwise, still expired. What is left is said in one warning, with
   * how many, the oldest's age, and the `resume clear` that gives them up, once per process
   * ({@link leftInThisProcess}: later uploaders of the process skip what an earlier one left).
   * Never throws.
   */
  private async giveUpExpired(journal: UploadJournal): Promise<void> {
    const expired = journal.takeExpired().filter(({ name, record }) => !leftInThisProcess.has(leftKey(journal, name, record)));
    if (expired.length === 0) return;
    const { target, runId, store, logger } = this.options;
    const targetKey = journalTarget(target);
    const deadline = AbortSignal.timeout(EXPIRED_UPLOADS_BUDGET_MS);
    const signal = combineSignals(this.options.signal, deadline);
    const left: Array<{ record: JournalRecord; reason: string }> = [];
    const sameRun: JournalEntry[] = [];
    const otherRuns: JournalEntry[] = [];
    const takenOverAt = Date.now();
    for (const { name, record } of expired) {
      if (record.key.target !== targetKey) {
        left.push({ record, reason: `another tracking server than this upload's, which it does not contact` });
        leftInThisProcess.add(leftKey(journal, name, record));
        continue;
      }
      const entry = await journal.takeOver(name, record);
      if (!entry) continue; // a live process took it up since: its upload is that process's
      (record.key.runId === runId ? sameRun : otherRuns).push(entry);
    }
    const tried = sameRun.length + otherRuns.length;
    // Said before: the operation's own progress already shows it done while this runs (up to the budget).
    if (tried > 0) logger.info(`Giving up the unfinished multipart upload(s) of ${tried} expired resume journal record(s) (at most ${EXPIRED_UPLOADS_BUDGET_MS / 1000} s).`);
    const settle = async (entry: JournalEntry, outcome: AbandonOutcome): Promise<void> => {
      const record = entry.previous ?? entry.record;
      // `refused` only for another server's records, which are never asked here: as `left`.
      if (outcome.upload === 'left' || outcome.upload === 'refused') {
        await journal.handBack(entry);
        // The budget cuts the lookups off as an interrupt would: said as what it is.
        const reason = deadline.aborted && !this.options.signal?.aborted && outcome.reason === 'interrupted before it was given up' ? `not given up within ${EXPIRED_UPLOADS_BUDGET_MS / 1000} s, the time an upload spends on it` : outcome.reason;
        left.push({ record, reason });
        leftInThisProcess.add(leftKey(journal, entry.name, record));
        return;
      }
      await entry.remove();
      logger.info(`Gave up the unfinished multipart upload of ${record.key.artifactPath} (run ${record.key.runId} on ${record.key.target}) that a resume journal record not updated since ${new Date(record.updatedAt).toISOString()} named, and removed the record.`);
    };
    // With the operation's store, as `resume clear` asks a record's store (a record whose upload
    // lasts is one of a store that can give it up: `s3://`, the MLflow proxy).
    for (const entry of sameRun) await settle(entry, await abandonRecordUpload(store, entry.previous ?? entry.record, { takenOverAt, signal }));
    if (otherRuns.length > 0) {
      const records = otherRuns.map((entry) => entry.previous ?? entry.record);
      const outcomes = await abandonRecordUploads(records, {
        env: this.options.env ?? process.env,
        logger,
        signal,
        retry: EXPIRED_LOOKUP_RETRY,
        trackingUri: target,
        takenOverAt,
        connection: this.options.connection,
      });
      for (const [i, entry] of otherRuns.entries()) await settle(entry, outcomes[i]!);
    }
    if (left.length > 0) logger.warn(expiredUploadsWarning(left));
  }

  /**
   * Whether every file of an earlier run's log is done with: one of this operation's (`mine`),
   * or one deleted since from its directory ({@link deletedFromScope}; a `stat` for each line
   * that is not one of `mine`, normally none).
   */
  private async allDone(lines: readonly OperationLogLine[], mine: ReadonlySet<string>): Promise<boolean> {
    for (const line of lines) {
      if (!mine.has(fileKey(line.artifactPath, line.localPath)) && !(await this.deletedFromScope(line.artifactPath, line.localPath))) return false;
    }
    return true;
  }

  /** True when the file was in the operation's directory, under its destination, and is gone now. */
  private async deletedFromScope(artifactPath: string, localPath: string): Promise<boolean> {
    const { scope } = this.options;
    if (!scope || !isUnder(artifactPath, scope.artifactPath.replace(/\/+$/, '')) || !isInside(resolve(scope.directory), localPath)) return false;
    return isGone(localPath);
  }

  /**
   * Gives up what an interrupted earlier run left of files deleted since from the operation's
   * directory: of the records `names`, those of this target and run whose local file was in the
   * directory, under the operation's destination, and is gone now ({@link deletedFromScope}),
   * that no live process owns. The store abandons each one's upload (aborts the multipart upload, cancels
   * the session: {@link ArtifactStore.abandonUpload}), then the record goes. A file still there
   * (changed or not) is not one: the rerun's own files are handled file by file. Reads the
   * records, so it runs only when some are not this operation's. Never throws.
   */
  private async abandonDeletedFiles(names: ReadonlySet<string>): Promise<void> {
    const { journal, target, runId, store, logger, signal } = this.options;
    if (!journal) return;
    const targetKey = journalTarget(target);
    for (const { name, record } of await journal.readRecords(names)) {
      if (signal?.aborted) return;
      const { key } = record;
      if (key.target !== targetKey || key.runId !== runId || !(await this.deletedFromScope(key.artifactPath, key.localPath))) continue;
      // Taken over first: no other process picks the upload up while it is given up.
      const entry = await journal.takeOver(name, record);
      if (!entry) continue;
      const named = hasUnfinishedUpload(record);
      const outcome = named ? await giveUpUpload(store, key.artifactPath, earlierUploadOf(record, entry.record.updatedAt), signal) : undefined;
      await entry.remove();
      const what = `${key.artifactPath}: its local file ${key.localPath} was deleted after an interrupted upload of it`;
      if (outcome?.status === 'left') logger.warn(`${what}, and ${outcome.reason} Its resume journal record was removed.`);
      else logger.info(`${what}${named ? (outcome ? '; that upload was given up' : ', whose unfinished upload the store discards on its own') : ''}, and its resume journal record removed.`);
    }
  }
}

/** How many `resume clear` commands (one per tracking server) the expired-records warning spells out. */
const MAX_COMMANDS_SHOWN = 3;

/**
 * The one warning of an operation about expired records whose uploads are left: how many, the
 * oldest's age, one example with its reason (redacted where it was made), and what to run.
 */
function expiredUploadsWarning(left: ReadonlyArray<{ record: JournalRecord; reason: string }>): string {
  const now = Date.now();
  const days = (ms: number) => Math.floor(ms / 86_400_000);
  const ages = left.map(({ record }) => now - record.updatedAt);
  const oldest = days(Math.max(...ages));
  // One command per tracking server: `resume clear` sends the environment's credentials only to
  // its own (`--tracking-uri`), so each is run with that server's. `--older-than` selects these
  // records (and no younger one, which may still be resumed).
  const youngest = new Map<string, number>();
  left.forEach(({ record }, i) => youngest.set(record.key.target, Math.min(youngest.get(record.key.target) ?? Infinity, ages[i]!)));
  const commands = [...youngest].map(([target, age]) => `\`artifact-uploader resume clear --tracking-uri ${target} --older-than ${Math.max(1, days(age))}d\``);
  const shown = commands.length > MAX_COMMANDS_SHOWN ? [...commands.slice(0, MAX_COMMANDS_SHOWN), `and ${commands.length - MAX_COMMANDS_SHOWN} more`] : commands;
  const { record, reason } = left[0]!;
  return (
    `${left.length} resume journal record(s) of interrupted uploads, the oldest not updated for ${oldest} day(s), name an unfinished S3 multipart upload that this process did not give up (another tracking server's, which an upload does not contact, or one it could not reach or abort), and whose parts stay billed until it is aborted, unless it is gone already ` +
    `(e.g. ${record.key.artifactPath} of run ${record.key.runId} on ${record.key.target}: ${reason}). ` +
    `${shown.join(', ')} ${commands.length === 1 ? 'gives them up and removes the records' : 'give them up and remove the records, one tracking server each'} (with that server's credentials in the environment); with \`--keep-uploads\` it removes the records only, and a lifecycle rule (AbortIncompleteMultipartUpload) must remove the uploads. Until then the records stay in the journal (\`artifact-uploader resume list\` shows them).`
  );
}

/** Whether `artifactPath` is inside the artifact directory `dir` (`''`: the root). */
function isUnder(artifactPath: string, dir: string): boolean {
  return dir === '' || artifactPath.startsWith(`${dir}/`);
}

/** True when nothing is at `path` any more (it, or a directory above it, was deleted or renamed away). */
async function isGone(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return false;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR';
  }
}

/** The key of a file in an operation log. */
function fileKey(artifactPath: string, localPath: string): string {
  return `${artifactPath}\n${localPath}`;
}

/** The files the run's operation logs have as finished, by {@link fileKey} (the latest line wins). */
function finishedFiles(scan: JournalScan): Map<string, OperationLogLine> {
  const out = new Map<string, OperationLogLine>();
  for (const log of scan.logs) {
    for (const line of log.lines) {
      const key = fileKey(line.artifactPath, line.localPath);
      const seen = out.get(key);
      if (!seen || seen.at <= line.at) out.set(key, line);
    }
  }
  return out;
}

/** True when a record (or log line) was written for the local file as it is now. */
function sameLocal(recorded: Pick<LocalFileIdentity, 'size' | 'mtimeNs' | 'ino' | 'dev'>, now: LocalFileIdentity): boolean {
  return recorded.size === now.size && recorded.mtimeNs === now.mtimeNs && recorded.ino === now.ino && recorded.dev === now.dev;
}

/** The listing's size agrees (an unknown size never does: the proxy leaves it out for empty files only). */
function sizeMatches(entry: ArtifactEntry, size: number): boolean {
  return entry.size === size || (entry.size === undefined && size === 0);
}
