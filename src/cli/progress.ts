/**
 * Progress display on stderr: a cli-progress bar (bytes, files, rate, ETA) on a terminal,
 * plain lines every 10 % or 5 s when stderr is a pipe or a log file, nothing with `--json` or
 * `--quiet`. cli-progress is imported only when a bar is really drawn, to keep start-up fast.
 *
 * @module
 */
import { formatBytes } from '../core/format.js';
import { formatDuration, formatRate } from './format.js';

/** Where progress goes, and how. */
export type ProgressMode = 'bar' | 'lines' | 'none';

/** A snapshot of the work done. */
export interface ProgressTotals {
  bytesDone: number;
  bytesTotal: number;
  filesDone?: number;
  filesTotal?: number;
  /** When the producer measures it; else computed from the elapsed time. */
  bytesPerSecond?: number;
}

/** A progress display for one command; `phase` starts a new bar or line series. */
export interface ProgressDisplay {
  /** A new step (`archiving`, `uploading`, ...): ends the current bar and starts the next. */
  phase(label: string): void;
  update(totals: ProgressTotals): void;
  /** Ends the display (idempotent). */
  stop(): void;
}

/** A minimal writable: `process.stderr` or a test's collector. */
export interface TextSink {
  write(text: string): unknown;
}

/** Plain lines: at most one per 10 % step, plus one when 5 s passed without a line. */
const LINE_STEP_PERCENT = 10;
const LINE_INTERVAL_MS = 5000;

const NO_PROGRESS: ProgressDisplay = Object.freeze({ phase() {}, update() {}, stop() {} });

/** Creates the display for a mode. */
export async function createProgressDisplay(mode: ProgressMode, stderr: TextSink, options: { columns?: number } = {}): Promise<ProgressDisplay> {
  if (mode === 'none') return NO_PROGRESS;
  if (mode === 'lines') return new LineProgress(stderr);
  const loaded = await import('cli-progress');
  // A CommonJS module: Node hands it over as `default`, bundlers sometimes as the namespace.
  const cliProgress = (loaded as { default?: CliProgressModule }).default ?? loaded;
  return new BarProgress(cliProgress, stderr, options.columns);
}

function describe(label: string, t: ProgressTotals, rate: number, etaMs: number | undefined): string {
  const percent = t.bytesTotal > 0 ? Math.floor((t.bytesDone / t.bytesTotal) * 100) : 100;
  const files = t.filesTotal !== undefined ? `, ${t.filesDone ?? 0}/${t.filesTotal} files` : '';
  const eta = etaMs !== undefined ? `, ETA ${formatDuration(etaMs)}` : '';
  return `${label}: ${percent}% ${formatBytes(t.bytesDone)} / ${formatBytes(t.bytesTotal)}${files}, ${formatRate(rate)}${eta}`;
}

/** Rate and ETA from the elapsed time, unless the producer measured the rate. */
function rateAndEta(t: ProgressTotals, startedAt: number): { rate: number; etaMs?: number } {
  const elapsed = (Date.now() - startedAt) / 1000;
  const rate = t.bytesPerSecond ?? (elapsed > 0 ? t.bytesDone / elapsed : 0);
  const left = t.bytesTotal - t.bytesDone;
  return { rate, etaMs: rate > 0 && left > 0 ? (left / rate) * 1000 : undefined };
}

class LineProgress implements ProgressDisplay {
  private label = '';
  private last: ProgressTotals | undefined;
  private lastPrinted: ProgressTotals | undefined;
  private lastStep = -1;
  private lastLineAt = 0;
  private startedAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private printedFinal = false;

  constructor(private readonly out: TextSink) {}

  phase(label: string): void {
    this.finish();
    this.label = label;
    this.last = undefined;
    this.lastStep = -1;
    this.printedFinal = false;
    this.startedAt = Date.now();
    this.lastLineAt = Date.now();
    // A stalled transfer (retries, a slow server) still shows a sign of life every 5 s.
    this.timer = setInterval(() => {
      if (this.last && Date.now() - this.lastLineAt >= LINE_INTERVAL_MS) this.print(this.last);
    }, LINE_INTERVAL_MS);
    this.timer.unref();
  }

  update(totals: ProgressTotals): void {
    if (!this.label) this.phase('progress');
    this.last = totals;
    const percent = totals.bytesTotal > 0 ? (totals.bytesDone / totals.bytesTotal) * 100 : 100;
    const step = Math.floor(percent / LINE_STEP_PERCENT);
    // The completing event always gets its line, even when the bytes reached 100 % earlier.
    if (step > this.lastStep || (isComplete(totals) && !this.printedFinal)) {
      this.lastStep = step;
      this.print(totals);
    }
  }

  stop(): void {
    this.finish();
    this.label = '';
  }

  private finish(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    // The last line says where it ended, also when no event completed (a failure).
    if (this.last && !this.printedFinal && this.last !== this.lastPrinted) this.print(this.last);
  }

  private print(totals: ProgressTotals): void {
    const { rate, etaMs } = rateAndEta(totals, this.startedAt);
    this.out.write(`[artifact-uploader] ${describe(this.label, totals, rate, etaMs)}\n`);
    this.lastLineAt = Date.now();
    this.lastPrinted = totals;
    if (isComplete(totals)) this.printedFinal = true;
  }
}

function isComplete(t: ProgressTotals): boolean {
  return t.bytesDone >= t.bytesTotal && (t.filesTotal === undefined || (t.filesDone ?? 0) >= t.filesTotal);
}

type CliProgressModule = typeof import('cli-progress');
type Bar = InstanceType<CliProgressModule['SingleBar']>;

class BarProgress implements ProgressDisplay {
  private bar: Bar | undefined;
  private label = '';
  private startedAt = Date.now();
  private readonly stream: { isTTY: true; columns: number; write: (text: string) => unknown };

  constructor(
    private readonly cli: CliProgressModule,
    out: TextSink,
    columns = 80,
  ) {
    // cli-progress draws only on a stream that says it is a TTY; this one forwards to ours.
    this.stream = { isTTY: true, columns, write: (text: string) => out.write(text) };
  }

  phase(label: string): void {
    this.stop();
    this.label = label;
    this.startedAt = Date.now();
  }

  update(totals: ProgressTotals): void {
    const { rate } = rateAndEta(totals, this.startedAt);
    const payload = {
      label: this.label || 'progress',
      done: formatBytes(totals.bytesDone),
      size: formatBytes(totals.bytesTotal),
      files: totals.filesTotal !== undefined ? ` | ${totals.filesDone ?? 0}/${totals.filesTotal} files` : '',
      rate: formatRate(rate),
    };
    if (!this.bar) {
      this.bar = new this.cli.SingleBar(
        {
          stream: this.stream as unknown as NodeJS.WritableStream,
          format: '{label} [{bar}] {percentage}% | {done}/{size}{files} | {rate} | ETA {eta_formatted}',
          hideCursor: true,
          clearOnComplete: false,
          etaBuffer: 20,
          fps: 10,
        },
        this.cli.Presets.shades_classic,
      );
      this.bar.start(Math.max(totals.bytesTotal, 1), totals.bytesDone, payload);
      return;
    }
    if (totals.bytesTotal > 0) this.bar.setTotal(totals.bytesTotal);
    this.bar.update(totals.bytesDone, payload);
  }

  stop(): void {
    if (!this.bar) return;
    this.bar.stop();
    this.bar = undefined;
  }
}
