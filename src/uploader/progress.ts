/**
 * Progress events of the uploader and the throttle that keeps them few. A 10,000-file upload
 * must not call `onProgress` 10,000 times per second, yet every bar a caller draws must end
 * at 100 %. The rules:
 *
 * - `phase` events are always sent (a handful per operation);
 * - `file` events share one throttle: at most one per interval, whichever file is moving.
 *   A file that was shown at least once also gets its final event (`loaded === total`), so
 *   its bar completes; files that finish between two events are never shown on their own
 *   (the `totals` cover them);
 * - `totals` events have their own throttle, and the last one (every file done) is always sent;
 * - `archive` events (bytes read into a checkpoint archive) have their own throttle too, and the
 *   last one (every byte read) is always sent.
 *
 * @module
 */
import type { Logger } from '../core/logger.js';

/** Phases of an operation, in order (`archiving` only for archives built from a directory). */
export type UploadPhase = 'scanning' | 'archiving' | 'uploading' | 'verifying' | 'done';

/**
 * What `onProgress` receives, discriminated on `type`:
 * - `phase`: the operation entered a phase;
 * - `file`: bytes of one file sent so far (`loaded` may go back down when a request is retried);
 * - `totals`: the whole operation so far, with the average rate since uploading began;
 * - `archive`: while a checkpoint directory is archived (the `archiving` phase), the bytes and
 *   files read into the archive so far, out of the directory's totals (before compression).
 *
 * @example
 * ```ts
 * const onProgress = (event: UploadProgressEvent) => {
 *   if (event.type === 'totals') console.log(`${event.filesDone}/${event.filesTotal} files, ${event.bytesPerSecond} B/s`);
 * };
 * ```
 */
export type UploadProgressEvent =
  | { type: 'phase'; phase: UploadPhase }
  | { type: 'file'; path: string; artifactPath: string; loaded: number; total: number }
  | {
      type: 'totals';
      /** Files finished, uploaded or failed. */
      filesDone: number;
      /** Of `filesDone`, the files that failed (a progress display shows them as failed, not done). */
      filesFailed: number;
      filesTotal: number;
      bytesDone: number;
      bytesTotal: number;
      bytesPerSecond: number;
    }
  | { type: 'archive'; filesDone: number; filesTotal: number; bytesDone: number; bytesTotal: number };

/**
 * Default least time between two throttled events of one kind, in milliseconds.
 *
 * @example
 * ```ts
 * new ArtifactUploader({ stage: 'training', progressIntervalMs: DEFAULT_PROGRESS_INTERVAL_MS * 5, onProgress });
 * ```
 */
export const DEFAULT_PROGRESS_INTERVAL_MS = 100;

/**
 * Emits the progress of one operation through the rules above. A callback that throws is
 * logged once and then ignored: a broken progress bar must not cost the upload.
 *
 * @example
 * ```ts
 * const progress = new ProgressEmitter(onProgress, 100, logger);
 * progress.phase('uploading');
 * progress.file('/abs/a.bin', 'a.bin', 512, 1024);
 * ```
 * @internal
 */
export class ProgressEmitter {
  private lastFileEvent = -Infinity;
  private lastTotalsEvent = -Infinity;
  private lastArchiveEvent = -Infinity;
  private readonly shown = new Set<string>();
  private readonly completed = new Set<string>();
  private readonly loaded = new Map<string, number>();
  private filesDone = 0;
  private filesFailed = 0;
  private bytesDone = 0;
  private uploadStarted = 0;
  private warned = false;

  constructor(
    private readonly callback: ((event: UploadProgressEvent) => void) | undefined,
    private readonly intervalMs: number,
    private readonly logger: Logger,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Enters a phase. */
  phase(phase: UploadPhase): void {
    if (phase === 'uploading') this.uploadStarted = this.now();
    this.emit({ type: 'phase', phase });
  }

  /** Bytes of `path` sent so far (throttled; see the module doc). */
  file(path: string, artifactPath: string, loaded: number, total: number): void {
    if (!this.callback) return;
    const done = loaded >= total;
    // The final event of a file goes out once, even when the store and the uploader both report it.
    if (done && this.completed.has(path)) return;
    if (!done) this.completed.delete(path);
    const now = this.now();
    if (done ? !this.shown.has(path) && now - this.lastFileEvent < this.intervalMs : now - this.lastFileEvent < this.intervalMs) {
      return;
    }
    if (done) {
      this.shown.delete(path);
      this.completed.add(path);
    } else {
      this.shown.add(path);
    }
    this.lastFileEvent = now;
    this.emit({ type: 'file', path, artifactPath, loaded, total });
  }

  /** Updates the running byte count of one file and sends `totals` when the throttle allows. */
  bytes(path: string, loaded: number, filesTotal: number, bytesTotal: number): void {
    const previous = this.loaded.get(path) ?? 0;
    this.loaded.set(path, loaded);
    this.bytesDone += loaded - previous;
    this.totals(filesTotal, bytesTotal, false);
  }

  /** Marks a file finished (uploaded or `failed`); its bytes count as `bytes` (0 when it failed). */
  fileDone(path: string, bytes: number, filesTotal: number, bytesTotal: number, failed = false): void {
    const previous = this.loaded.get(path) ?? 0;
    this.loaded.delete(path);
    this.bytesDone += bytes - previous;
    this.filesDone++;
    if (failed) this.filesFailed++;
    this.totals(filesTotal, bytesTotal, this.filesDone === filesTotal);
  }

  /** Bytes and files read into the checkpoint archive so far (throttled; the last one always sent). */
  archive(bytesDone: number, bytesTotal: number, filesDone: number, filesTotal: number): void {
    if (!this.callback) return;
    const now = this.now();
    const final = bytesDone >= bytesTotal && filesDone >= filesTotal;
    if (!final && now - this.lastArchiveEvent < this.intervalMs) return;
    this.lastArchiveEvent = now;
    this.emit({ type: 'archive', filesDone, filesTotal, bytesDone, bytesTotal });
  }

  private totals(filesTotal: number, bytesTotal: number, final: boolean): void {
    if (!this.callback) return;
    const now = this.now();
    if (!final && now - this.lastTotalsEvent < this.intervalMs) return;
    this.lastTotalsEvent = now;
    const seconds = (now - this.uploadStarted) / 1000;
    this.emit({
      type: 'totals',
      filesDone: this.filesDone,
      filesFailed: this.filesFailed,
      filesTotal,
      bytesDone: this.bytesDone,
      bytesTotal,
      bytesPerSecond: seconds > 0 ? Math.round(this.bytesDone / seconds) : 0,
    });
  }

  private emit(event: UploadProgressEvent): void {
    if (!this.callback) return;
    try {
      this.callback(event);
    } catch (error) {
      if (!this.warned) {
        this.warned = true;
        this.logger.warn(`onProgress threw (${(error as Error)?.message ?? String(error)}); further errors from it are ignored and the upload goes on.`);
      }
    }
  }
}
