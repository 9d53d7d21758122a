/** The progress throttle, on a clock the test moves by hand. */
import { describe, expect, it } from 'vitest';
import { silentLogger, type Logger } from '../../src/core/logger.js';
import { ProgressEmitter, type UploadProgressEvent } from '../../src/uploader/progress.js';

function emitter(intervalMs = 100) {
  let now = 0;
  const events: UploadProgressEvent[] = [];
  const progress = new ProgressEmitter((e) => events.push(e), intervalMs, silentLogger, () => now);
  return { progress, events, advance: (ms: number) => (now += ms) };
}

describe('ProgressEmitter', () => {
  it('sends every phase, and at most one file event per interval across files', () => {
    const { progress, events, advance } = emitter();
    progress.phase('uploading');
    progress.file('a', 'x/a', 10, 100); // shown: first file event
    progress.file('b', 'x/b', 10, 100); // same instant: dropped
    advance(50);
    progress.file('a', 'x/a', 50, 100); // dropped
    advance(60);
    progress.file('b', 'x/b', 60, 100); // 110 ms later: shown
    expect(events).toEqual([
      { type: 'phase', phase: 'uploading' },
      { type: 'file', path: 'a', artifactPath: 'x/a', loaded: 10, total: 100 },
      { type: 'file', path: 'b', artifactPath: 'x/b', loaded: 60, total: 100 },
    ]);
  });

  it('always completes a file that was shown, once; files never shown stay silent', () => {
    const { progress, events } = emitter();
    progress.file('a', 'a', 1, 100);
    progress.file('a', 'a', 100, 100); // shown before: its final event goes out at once
    progress.file('a', 'a', 100, 100); // reported twice (store, then uploader): sent once
    progress.file('small', 'small', 5, 5); // finished within the interval, never shown: dropped
    expect(events.map((e) => (e.type === 'file' ? `${e.path}:${e.loaded}` : e.type))).toEqual(['a:1', 'a:100']);
  });

  it('throttles archive events on their own clock but always sends the last one', () => {
    const { progress, events, advance } = emitter();
    progress.archive(10, 100, 0, 2); // first: sent
    progress.archive(20, 100, 0, 2); // same instant: dropped
    progress.file('a', 'a', 1, 10); // its own throttle: sent
    advance(100);
    progress.archive(60, 100, 1, 2); // an interval later: sent
    progress.archive(100, 100, 2, 2); // everything read: always sent
    expect(events).toEqual([
      { type: 'archive', bytesDone: 10, bytesTotal: 100, filesDone: 0, filesTotal: 2 },
      { type: 'file', path: 'a', artifactPath: 'a', loaded: 1, total: 10 },
      { type: 'archive', bytesDone: 60, bytesTotal: 100, filesDone: 1, filesTotal: 2 },
      { type: 'archive', bytesDone: 100, bytesTotal: 100, filesDone: 2, filesTotal: 2 },
    ]);
  });

  it('throttles totals but always sends the last one, with the rate since uploading began', () => {
    const { progress, events, advance } = emitter();
    progress.phase('uploading');
    for (let i = 0; i < 1000; i++) {
      progress.bytes(`f${i}`, 10, 1000, 10_000);
      progress.fileDone(`f${i}`, 10, 1000, 10_000);
      if (i % 100 === 99) advance(25);
    }
    const totals = events.filter((e) => e.type === 'totals');
    // 225 ms of uploading when the last file finishes: one event per 100 ms, plus the final one.
    expect(totals.length).toBeLessThanOrEqual(5);
    expect(totals.at(-1)).toEqual({ type: 'totals', filesDone: 1000, filesFailed: 0, filesTotal: 1000, bytesDone: 10_000, bytesTotal: 10_000, bytesPerSecond: 44_444 });
  });

  it('counts a failed file as done with the bytes it kept, and a retried file from its new position', () => {
    const { progress, events } = emitter(0);
    progress.bytes('a', 80, 2, 200);
    progress.bytes('a', 30, 2, 200); // retried from the start
    progress.fileDone('a', 0, 2, 200, true); // then failed
    progress.fileDone('b', 100, 2, 200);
    const totals = events.filter((e) => e.type === 'totals').map((e) => (e.type === 'totals' ? [e.filesDone, e.filesFailed, e.bytesDone] : []));
    expect(totals).toEqual([
      [0, 0, 80],
      [0, 0, 30],
      [1, 1, 0], // finished, as failed: a display shows it as failed, not as done
      [2, 1, 100],
    ]);
  });

  it('survives a callback that throws, warning once', () => {
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (m) => warnings.push(m) };
    const progress = new ProgressEmitter(() => {
      throw new Error('bar broke');
    }, 0, logger);
    progress.phase('uploading');
    progress.phase('done');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('bar broke');
  });
});
