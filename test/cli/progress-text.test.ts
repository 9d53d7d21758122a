/**
 * What the progress text says (issue 13, item 10): rounded rates, an ETA only when it means
 * something, failed files shown as failed, and one message per abort. The clock is vitest's fake
 * one, so "5 s without a byte" is a step of the test, not a wait.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { formatEta, formatRate } from '../../src/cli/format.js';
import { formatBytes } from '../../src/core/format.js';
import { createProgressDisplay } from '../../src/cli/progress.js';
import { baseEnv, cli, tempDir } from './helpers.js';

afterEach(() => vi.useRealTimers());

function collector(): { text: () => string; write: (s: string) => void } {
  let text = '';
  return { text: () => text, write: (s: string) => void (text += s) };
}

describe('format', () => {
  it('rounds rates and sizes below 1 KiB to whole bytes', () => {
    expect(formatRate(1000 / 3)).toBe('333 B/s');
    expect(formatRate(333.33333333333337)).toBe('333 B/s');
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023.6)).toBe('1024 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatRate(0)).toBe('-');
  });

  it('has no ETA when nothing is left, there is no rate, or it would exceed a day', () => {
    expect(formatEta(10 * 1024 * 1024, 1024 * 1024)).toBe('10.0 s');
    expect(formatEta(0, 100)).toBeUndefined();
    expect(formatEta(100, 0)).toBeUndefined();
    expect(formatEta(100, Number.NaN)).toBeUndefined();
    expect(formatEta(1024 ** 4, 1)).toBeUndefined(); // 34 years: a stalled link, not an estimate
  });
});

describe('progress lines', () => {
  it('counts failed files as failed, not as done', async () => {
    const out = collector();
    const progress = await createProgressDisplay('lines', out);
    progress.phase('uploading');
    progress.update({ bytesDone: 200, bytesTotal: 300, filesDone: 3, filesFailed: 1, filesTotal: 3, bytesPerSecond: 1000 / 3 });
    progress.stop();
    expect(out.text()).toContain('uploading: 66% 200 B / 300 B, 2/3 files, 1 failed, 333 B/s');
    expect(out.text()).not.toContain('3/3 files');
  });

  it('shows no ETA in the first second, then one, and "stalled" with none after 5 s without a byte', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const out = collector();
    const progress = await createProgressDisplay('lines', out);
    progress.phase('uploading');
    progress.update({ bytesDone: 10, bytesTotal: 1000 }); // 1 %: an instant rate, no ETA yet
    vi.advanceTimersByTime(1000);
    progress.update({ bytesDone: 500, bytesTotal: 1000 }); // 50 % after 1 s: ETA 1.0 s
    vi.advanceTimersByTime(9000); // nothing moves; the 5 s timer prints a sign of life
    progress.stop();
    const lines = out.text().trim().split('\n');
    expect(lines[0]).toMatch(/^\[artifact-uploader\] uploading: 1% 10 B \/ 1000 B, [^,]+$/);
    expect(lines[1]).toContain('uploading: 50% 500 B / 1000 B, 500 B/s, ETA 1.0 s');
    expect(lines.at(-1)).toBe('[artifact-uploader] uploading: 50% 500 B / 1000 B, stalled');
  });

  it('draws a bar for an empty upload at 100 %, with no ETA', async () => {
    const out = collector();
    const progress = await createProgressDisplay('bar', out);
    progress.phase('uploading');
    progress.update({ bytesDone: 0, bytesTotal: 0, filesDone: 1, filesTotal: 1 });
    progress.stop();
    expect(out.text()).toMatch(/uploading \[█+\] 100% \| 0 B\/0 B \| 1\/1 files \| -/);
    expect(out.text()).not.toContain('ETA');
  });

  it('ends the bar with the rate, then "| ETA" and our estimate, once a second measured the rate', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const out = collector();
    const progress = await createProgressDisplay('bar', out);
    progress.phase('uploading');
    progress.update({ bytesDone: 10, bytesTotal: 1000, filesDone: 0, filesTotal: 2 });
    vi.advanceTimersByTime(1000);
    progress.update({ bytesDone: 500, bytesTotal: 1000, filesDone: 1, filesTotal: 2 }); // 500 B/s, 500 B left
    progress.stop();
    // The last frame drawn; cli-progress redraws the line after cursor moves.
    const frames = out.text().split(/\r|\x1b\[[0-9;]*[A-Za-z]/).filter((f) => f.includes('uploading'));
    expect(frames.at(-1)).toMatch(/^uploading \[[█░]+\] 50% \| 500 B\/1000 B \| 1\/2 files \| 500 B\/s \| ETA 1\.0 s\s*$/);
  });
});

describe('an interrupted upload', () => {
  it('prints its reason once, and says what was left undone', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'ckpt'));
    writeFileSync(join(cwd, 'ckpt', 'a.bin'), Buffer.alloc(100));
    writeFileSync(join(cwd, 'metrics.json'), '{"loss": 1}');
    const runId = (await cli(['runs', 'start'], { cwd })).stdout.trim();
    const controller = new AbortController();
    controller.abort(new Error('received SIGINT'));
    const run = await cli(['training', 'ckpt', '--metrics', 'metrics.json'], { cwd, env: baseEnv({ MLFLOW_RUN_ID: runId }), signal: controller.signal });
    expect(run.code).toBe(130);
    // One line in all: no per-upload warning, no second copy of the same error.
    expect(run.stderr).toMatch(/^error \[ABORTED\]: [^\n]+\n$/);
    expect(run.stdout).toBe('training checkpoint: interrupted, 1 file(s) not uploaded\ntraining metrics: interrupted, 1 file(s) not uploaded\n');
  });
});
