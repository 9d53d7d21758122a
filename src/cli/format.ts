/**
 * Text formatting for the CLI: sizes, durations, rates, aligned tables, and the JSON document
 * of `--json` (errors as their `toJSON()`, secrets redacted).
 *
 * @module
 */
import { formatBytes } from '../core/format.js';
import { redactForJson } from '../core/logger.js';

/** `1234` → `1.2 s`, `75000` → `1m15s`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const whole = Math.round(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s).padStart(2, '0')}s`;
}

/** Bytes per second as `3.2 MiB/s` (rounded like {@link formatBytes}); `-` when there is no rate. */
export function formatRate(bytesPerSecond: number): string {
  return Number.isFinite(bytesPerSecond) && bytesPerSecond > 0 ? `${formatBytes(bytesPerSecond)}/s` : '-';
}

/** The longest ETA worth showing: past a day it says "stalled" better than a number would. */
export const MAX_ETA_MS = 24 * 3600 * 1000;

/**
 * An ETA as text (`12.0 s`, `3m05s`), or `undefined` when there is none worth showing: no rate
 * yet, nothing left, or an estimate beyond {@link MAX_ETA_MS} (a stalled link).
 */
export function formatEta(bytesLeft: number, bytesPerSecond: number): string | undefined {
  if (!(bytesLeft > 0) || !(bytesPerSecond > 0) || !Number.isFinite(bytesLeft) || !Number.isFinite(bytesPerSecond)) return undefined;
  const ms = (bytesLeft / bytesPerSecond) * 1000;
  return ms <= MAX_ETA_MS ? formatDuration(ms) : undefined;
}

/** Aligns rows into columns (two spaces apart), each line indented by `indent`. */
export function table(rows: string[][], indent = '  '): string {
  if (rows.length === 0) return '';
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows
    .map((row) => indent + row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd())
    .join('\n');
}

/**
 * Serialises a value for `--json`: errors become plain objects (their `toJSON()`, or name and
 * message), bigints strings, and every string in it is redacted before serialisation
 * ({@link redactForJson}), so the document is valid JSON whatever a mask replaces: redacting
 * the finished text turned `12345` into `1***` when a secret was `2345`, and took the backslash
 * of an escaped quote after an `Authorization` value.
 */
export function toJsonText(value: unknown): string {
  return JSON.stringify(redactForJson(value), undefined, 2) ?? 'null';
}
