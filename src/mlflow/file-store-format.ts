/**
 * The bytes of MLflow's FileStore (`mlflow/store/tracking/file_store.py`): `meta.yaml` as
 * PyYAML writes it (sorted keys, block style, YAML 1.1 quoting so that ids stay strings and
 * names like `on` or `1_000` stay names), metric lines `"<ts> <value> <step>\n"` with Python's
 * float spelling, status and source-type integers, and atomic writes (temp file, fsync, rename)
 * so that a crash never leaves a half-written file where MLflow would read it.
 *
 * @module
 */
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { sleep } from '../core/abort.js';
import { writeFileAtomic } from '../core/atomic-write.js';
import { breakLockIfStale, type LockVerdict } from '../core/lock-breaker.js';
import type { RunStatus } from './tracking-types.js';

/** `RunStatus` ints of `mlflow/entities/run_status.py`. */
export const RUN_STATUS_CODES: Readonly<Record<RunStatus, number>> = Object.freeze({
  RUNNING: 1,
  SCHEDULED: 2,
  FINISHED: 3,
  FAILED: 4,
  KILLED: 5,
});

/** `SourceType.LOCAL` of `mlflow/entities/source_type.py`, what FileStore always writes. */
export const SOURCE_TYPE_LOCAL = 4;

/** Temp files start with this (the same prefix as the `file` artifact store's). */
export const TEMP_PREFIX = '.artifact-uploader-';

/**
 * The status name for a stored int (or name); unknown values read as `RUNNING`, as MLflow does.
 *
 * @example
 * ```ts
 * runStatusFromStored(3); // 'FINISHED'
 * ```
 */
export function runStatusFromStored(value: unknown): RunStatus {
  if (typeof value === 'string' && value in RUN_STATUS_CODES) return value as RunStatus;
  const entry = Object.entries(RUN_STATUS_CODES).find(([, code]) => code === Number(value));
  return (entry?.[0] as RunStatus | undefined) ?? 'RUNNING';
}

/**
 * Serializes a `meta.yaml` dict the way MLflow's `write_yaml` does (PyYAML `safe_dump`,
 * `default_flow_style=False`, `sort_keys=True`, `allow_unicode=True`).
 *
 * @example
 * ```ts
 * await toMetaYaml({ experiment_id: '0', name: 'Default' }); // "experiment_id: '0'\nname: Default\n"
 * ```
 */
export async function toMetaYaml(data: Record<string, unknown>): Promise<string> {
  // yaml loads on first use, not when the package is imported.
  const { stringify, Scalar } = await import('yaml');
  // A value holding a character PyYAML must not read raw goes double-quoted, where the raw
  // character is then replaced by its escape (`yaml` leaves those raw: it escapes through
  // JSON.stringify). meta.yaml is flat, so the top-level values are all the strings there are.
  const quoted = Object.fromEntries(
    Object.entries(data).map(([key, value]) => [key, typeof value === 'string' && PYYAML_RAW_UNSAFE.test(value) ? Object.assign(new Scalar(value), { type: Scalar.QUOTE_DOUBLE }) : value]),
  );
  return stringify(quoted, { version: '1.1', sortMapEntries: true, singleQuote: true, lineWidth: 0 }).replace(PYYAML_RAW_UNSAFE_ALL, pythonYamlEscape);
}

/**
 * Characters `yaml` writes raw that PyYAML reads otherwise: U+0085, U+2028 and U+2029 are line
 * breaks in YAML 1.1 (a name holding one is misread, or breaks the file: then MLflow cannot
 * list any experiment of the store), and DEL, the C1 controls and U+FFFE/U+FFFF are refused
 * by its reader outright. Written as double-quoted escapes (`\N`, `\L`, `\P`, `\x7F`, `\uFFFE`),
 * which PyYAML and `yaml` read back as the character.
 */
const PYYAML_RAW_UNSAFE = /[\u007f-\u009f\u2028\u2029\ufffe\uffff]/;
const PYYAML_RAW_UNSAFE_ALL = new RegExp(PYYAML_RAW_UNSAFE.source, 'g');

/** The YAML double-quoted escape of one of {@link PYYAML_RAW_UNSAFE}'s characters (the spelling PyYAML uses for it there). */
function pythonYamlEscape(char: string): string {
  const named: Record<string, string> = { '\u0085': '\\N', '\u2028': '\\L', '\u2029': '\\P' };
  const code = char.charCodeAt(0);
  return named[char] ?? (code <= 0xff ? `\\x${code.toString(16).toUpperCase()}` : `\\u${code.toString(16).toUpperCase()}`);
}

/** A YAML 1.1 line separator (U+2028) or paragraph separator (U+2029), and the indentation after it. */
const YAML11_BREAK_INDENT = /([\u2028\u2029])[ \t]+/g;

/**
 * Parses a `meta.yaml` (YAML 1.1, as PyYAML reads it); `undefined` for an empty or
 * non-mapping document.
 *
 * @example
 * ```ts
 * await parseMetaYaml("experiment_id: '0'\n"); // { experiment_id: '0' }
 * ```
 */
export async function parseMetaYaml(text: string): Promise<Record<string, unknown> | undefined> {
  const { parse } = await import('yaml');
  // PyYAML writes a name holding U+2028 or U+2029 single-quoted, the character raw and the rest
  // of the name on a continuation line: `name: 'line<U+2028>  sep'`. To YAML 1.1 (PyYAML) that
  // character ends the line, so the indentation after it is not part of the name; `yaml` takes
  // both as ordinary characters and would read `line<U+2028>  sep`. MLflow never writes block
  // scalars there, and our writer escapes both characters, so only such continuations match.
  const data: unknown = parse(text.replace(YAML11_BREAK_INDENT, '$1'), { version: '1.1' });
  return data !== null && typeof data === 'object' && !Array.isArray(data) ? (data as Record<string, unknown>) : undefined;
}

/**
 * Python's `repr(float)`, which FileStore writes in metric lines: `1.0`, `0.5`, `1e+20`,
 * `1e-05`, `nan`, `inf`. (MLflow reads any `float()` spelling back, but matching it keeps
 * files written by either side identical.)
 *
 * @example
 * ```ts
 * pythonFloatRepr(3); // '3.0'
 * pythonFloatRepr(1e20); // '1e+20'
 * ```
 */
export function pythonFloatRepr(value: number): string {
  if (Number.isNaN(value)) return 'nan';
  if (value === Infinity) return 'inf';
  if (value === -Infinity) return '-inf';
  if (Object.is(value, -0)) return '-0.0';
  // toExponential() without digits gives the shortest round-tripping digits, as repr does.
  const [mantissa = '0', expText = '0'] = value.toExponential().split('e');
  const exp = Number(expText);
  const sign = mantissa.startsWith('-') ? '-' : '';
  const digits = mantissa.replace('-', '').replace('.', '');
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  const whole = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
  return `${sign}${whole}.${digits.slice(exp + 1) || '0'}`;
}

/**
 * One metric line, `"<timestamp> <value> <step>\n"`.
 *
 * @example
 * ```ts
 * metricLine({ timestamp: 1700000000000, value: 0.5, step: 3 }); // '1700000000000 0.5 3\n'
 * ```
 */
export function metricLine(metric: { timestamp: number; value: number; step: number }): string {
  return `${metric.timestamp} ${pythonFloatRepr(metric.value)} ${metric.step}\n`;
}

/**
 * Writes `data` to `target` all at once: into a temp file in `tempDir` (same file system, and a
 * directory MLflow does not read entries from, under a {@link TEMP_PREFIX} name that our own
 * listings skip), flushed to disk, then renamed over `target` (core's one atomic write).
 * Readers see the old content or the new, never a part.
 *
 * @example
 * ```ts
 * await atomicWriteFile(join(runDir, 'tags', 'stage'), 'training', runDir);
 * ```
 */
export async function atomicWriteFile(target: string, data: string, tempDir: string): Promise<void> {
  await writeFileAtomic(target, data, { tempDir, prefix: TEMP_PREFIX });
}

/** How long a lock file may sit before it is taken as left over by a crashed process. */
const STALE_LOCK_MS = 30_000;
/** How long to wait for another process's lock before going ahead without it. */
const LOCK_WAIT_MS = 10_000;

/**
 * Whether the lock file of {@link withLockFile} at `path` is stale (older than
 * {@link STALE_LOCK_MS}). It holds no token, only a pid: its mtime and content tell one lock
 * from another (a rename keeps both).
 */
async function judgeLockFile(path: string): Promise<LockVerdict> {
  const info = await stat(path).catch(() => undefined);
  if (!info) return { stale: false, token: undefined };
  const content = await readFile(path, 'utf8').catch(() => '');
  return { stale: Date.now() - info.mtimeMs > STALE_LOCK_MS, token: `${info.mtimeMs}:${content}` };
}

/**
 * Runs `fn` holding an exclusive lock file (`open(..., 'wx')`), so that two processes
 * creating the same experiment at once do not create it twice. A lock older than 30 s is
 * taken as stale; after waiting 10 s `fn` runs anyway (and `onContention` is told), since a
 * duplicate experiment is better than a job that hangs.
 *
 * @example
 * ```ts
 * const id = await withLockFile(join(root, '.artifact-uploader-experiments.lock'), () => createIt());
 * ```
 */
export async function withLockFile<T>(lockPath: string, fn: () => Promise<T>, onContention?: (message: string) => void): Promise<T> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  let held = false;
  for (let attempt = 0; !held; attempt++) {
    try {
      const handle = await open(lockPath, 'wx');
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      held = true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const age = await stat(lockPath).then((s) => Date.now() - s.mtimeMs, () => 0);
      // Broken by one process at a time (core/lock-breaker.ts): unlinked by name after this
      // check, it could be the lock of a process that broke the same stale one first.
      if (age > STALE_LOCK_MS && (await breakLockIfStale(lockPath, judgeLockFile, { prefix: TEMP_PREFIX }))) continue;
      if (Date.now() > deadline) {
        onContention?.(`lock ${lockPath} is still held after ${LOCK_WAIT_MS} ms; going ahead without it`);
        break;
      }
      await sleep(Math.min(20 * 2 ** Math.min(attempt, 4), 250));
    }
  }
  try {
    return await fn();
  } finally {
    if (held) await unlink(lockPath).catch(() => undefined);
  }
}
