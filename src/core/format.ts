/**
 * The one human-readable byte size of the library: store descriptions, model cards and the CLI
 * all print sizes the same way.
 *
 * @module
 */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/**
 * A byte count in 1024-based units, as the Hub and `ls -h` show sizes: whole units without a
 * fraction (`8 MiB`, `20 B`), else one decimal below 100 (`5.9 KiB`, `12.8 KiB`) and none above
 * (`137 MiB`). A negative or non-finite count is `?`.
 *
 * @example
 * ```ts
 * formatBytes(1536); // '1.5 KiB'
 * formatBytes(8 * 1024 * 1024); // '8 MiB'
 * ```
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '?';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = Number.isInteger(value) ? String(value) : value.toFixed(value >= 100 ? 0 : 1);
  return `${text} ${UNITS[unit]}`;
}

/**
 * A word as a POSIX shell reads it back: as it is when it holds nothing the shell treats
 * specially, else single-quoted. For commands printed in hints, to be pasted as they are.
 *
 * @example
 * shellWord('onnx'); // 'onnx'
 * shellWord("my model's dir"); // "'my model'\\''s dir'"
 */
export function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The first line of a server's or an SDK's message, trimmed: for an error message of our own
 * that quotes it. Azure's messages carry `RequestId:...` and `Time:...` lines after the first
 * (`@azure/identity`'s too, with a troubleshooting link), which say nothing to act on and would
 * break the one-line form errors are printed in.
 *
 * @example
 * ```ts
 * firstLine('The specified container does not exist.\nRequestId:7e1c...\nTime:2026-12-07T09:00:00Z');
 * // 'The specified container does not exist.'
 * ```
 */
export function firstLine(text: string): string {
  return text.split('\n')[0]?.trim() ?? '';
}
