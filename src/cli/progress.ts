/**
 * Progress display on stderr: a cli-progress bar (bytes, files, rate, ETA) on a terminal,
 * plain lines every 10 % or 5 s when stderr is a pipe or a log file, nothing with `--json` or
 * `--quiet`. cli-progress is loaded at the first render of a bar, not before: most CLI calls
 * from a pipeline never draw one, and start-up stays lean.
 *
 * What the text promises: rates are rounded (`333 B/s`); an ETA appears only once a second of
 * transfer measured the rate, and never when it would exceed a day or no byte moved for 5 s
 * (then the rate reads `stalled`); failed files count as failed, not as done.
 *
 * @module
 */
import { createRequire } from 'node:module';
import { formatBytes } from '../core/format.js';
import { formatEta, formatRate } from './format.js';

/** Where progress goes, and how. */
export type ProgressMode = 'bar' | 'lines' | 'none';

/** A snapshot of the work done. */
export interface ProgressTotals {
  bytesDone: number;
  bytesTotal: number;
  /** Files finished, uploaded or failed. */
  filesDone?: number;
  /** Of `filesDone`, the ones that failed. */
  filesFailed?: number;
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
/** The rate needs this much transfer before an ETA built on it means anything. */
const ETA_AFTER_MS = 1000;
/** No byte for this long: the link is stalled, and neither rate nor ETA is shown. */
const STALLED_AFTER_MS = 5000;

const NO_PROGRESS: ProgressDisplay = Object.freeze({ phase() {}, update() {}, stop() {} });

/** Creates the display for a mode. */
export async function createProgressDisplay(mode: ProgressMode, stderr: TextSink, options: { columns?: number } = {}): Promise<ProgressDisplay> {
  if (mode === 'none') return NO_PROGRESS;
  if (mode === 'lines') return new LineProgress(stderr);
  return new BarProgress(stderr, options.columns);
}

/** `, 2/3 files, 1 failed`: files that failed are not shown as done. */
function filesText(t: ProgressTotals): string {
  if (t.filesTotal === undefined) return '';
  const failed = t.filesFailed ?? 0;
  return `${(t.filesDone ?? 0) - failed}/${t.filesTotal} files${failed > 0 ? `, ${failed} failed` : ''}`;
}

/** The rate and ETA texts of one snapshot, measured since the phase began. */
class Meter {
  private startedAt = Date.now();
  private lastBytes = -1;
  private lastMovedAt = Date.now();

  reset(): void {
    this.startedAt = this.lastMovedAt = Date.now();
    this.lastBytes = -1;
  }

  measure(t: ProgressTotals): { rate: string; eta?: string } {
    const now = Date.now();
    if (t.bytesDone !== this.lastBytes) {
      this.lastBytes = t.bytesDone;
      this.lastMovedAt = now;
    }
    const left = t.bytesTotal - t.bytesDone;
    if (left > 0 && now - this.lastMovedAt >= STALLED_AFTER_MS) return { rate: 'stalled' };
    const elapsedMs = now - this.startedAt;
    const bytesPerSecond = t.bytesPerSecond ?? (elapsedMs > 0 ? (t.bytesDone / elapsedMs) * 1000 : 0);
    return { rate: formatRate(bytesPerSecond), eta: elapsedMs >= ETA_AFTER_MS ? formatEta(left, bytesPerSecond) : undefined };
  }
}

function describe(label: string, t: ProgressTotals, meter: Meter): string {
  const percent = t.bytesTotal > 0 ? Math.floor((t.bytesDone / t.bytesTotal) * 100) : 100;
  const files = filesText(t);
  const { rate, eta } = meter.measure(t);
  return `${label}: ${percent}% ${formatBytes(t.bytesDone)} / ${formatBytes(t.bytesTotal)}${files ? `, ${files}` : ''}, ${rate}${eta ? `, ETA ${eta}` : ''}`;
}

class LineProgress implements ProgressDisplay {
  private label = '';
  private last: ProgressTotals | undefined;
  private lastPrinted: ProgressTotals | undefined;
  private lastStep = -1;
  private lastLineAt = 0;
  private readonly meter = new Meter();
  private timer: NodeJS.Timeout | undefined;
  private printedFinal = false;

  constructor(private readonly out: TextSink) {}

  phase(label: string): void {
    this.finish();
    this.label = label;
    this.last = undefined;
    this.lastStep = -1;
    this.printedFinal = false;
    this.meter.reset();
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
    this.out.write(`[artifact-uploader] ${describe(this.label, totals, this.meter)}\n`);
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

let cliProgress: CliProgressModule | undefined;
/** cli-progress (CommonJS), loaded on the first bar drawn, synchronously so that bar is this update's. */
function loadCliProgress(): CliProgressModule {
  cliProgress ??= createRequire(import.meta.url)('cli-progress') as CliProgressModule;
  return cliProgress;
}

class BarProgress implements ProgressDisplay {
  private bar: Bar | undefined;
  private label = '';
  private readonly meter = new Meter();
  private readonly stream: { isTTY: true; columns: number; write: (text: string) => unknown };

  constructor(out: TextSink, columns = 80) {
    // cli-progress draws only on a stream that says it is a TTY; this one forwards to ours.
    this.stream = { isTTY: true, columns, write: (text: string) => out.write(text) };
  }

  phase(label: string): void {
    this.stop();
    this.label = label;
    this.meter.reset();
  }

  update(totals: ProgressTotals): void {
    const { rate, eta } = this.meter.measure(totals);
    const files = filesText(totals);
    const payload = {
      label: this.label || 'progress',
      done: formatBytes(totals.bytesDone),
      size: formatBytes(totals.bytesTotal),
      files: files ? ` | ${files}` : '',
      rate,
      // Not `eta`: cli-progress fills its own {eta} token (whole seconds) after the payload,
      // so a payload key of that name is overwritten and the bar read `500 B/s2`.
      etaText: eta ? ` | ETA ${eta}` : '',
    };
    // Nothing to send (all files empty) still ends at 100 %, not at 0 of 1.
    const total = totals.bytesTotal > 0 ? totals.bytesTotal : 1;
    const value = totals.bytesTotal > 0 ? totals.bytesDone : isComplete(totals) ? 1 : 0;
    if (!this.bar) {
      const cli = loadCliProgress();
      this.bar = new cli.SingleBar(
        {
          // Cast: cli-progress's types want a NodeJS.WritableStream; ours is the narrower TTY
          // writer it actually uses (write, columns, cursor moves), which the types cannot say.
          stream: this.stream as unknown as NodeJS.WritableStream,
          // Our own rate and ETA: cli-progress's {eta_formatted} guesses from too few samples.
          format: '{label} [{bar}] {percentage}% | {done}/{size}{files} | {rate}{etaText}',
          hideCursor: true,
          clearOnComplete: false,
          fps: 10,
        },
        cli.Presets.shades_classic,
      );
      this.bar.start(total, value, payload);
      return;
    }
    this.bar.setTotal(total);
    this.bar.update(value, payload);
  }

  stop(): void {
    if (!this.bar) return;
    this.bar.stop();
    this.bar = undefined;
  }
}
