/**
 * Reading and writing safetensors files without loading them whole: the header is parsed and
 * validated the way the reference implementation (`huggingface/safetensors`, `read_metadata`)
 * does, tensors are read one at a time at their file positions, and the writer emits the header
 * first and then each tensor's bytes in order. Values are never decoded: everything works on
 * raw little-endian bytes, so every dtype (F32, F16, BF16, integer, boolean, F8, ...) is handled
 * the same way.
 *
 * Layout: `[u64 little-endian N][N bytes of UTF-8 JSON header][data section]`, where the header
 * maps tensor names to `{ dtype, shape, data_offsets: [begin, end] }` (offsets relative to the
 * data section) plus an optional `__metadata__` string map.
 *
 * @module
 */
import { open, rm, type FileHandle } from 'node:fs/promises';
import { InvalidArgumentError, LocalPathError, SafetensorsError } from '../core/errors.js';
import { readFully } from '../core/read-fully.js';

/** Bits per element of every dtype the safetensors format defines (`safetensors/src/tensor.rs`). */
export const SAFETENSORS_DTYPE_BITS = Object.freeze({
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  BOOL: 8,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F8_E4M3FNUZ: 8,
  F8_E5M2FNUZ: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
} as const);

/** A dtype name as written in a safetensors header. */
export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPE_BITS;

/**
 * Largest header the reader accepts, in bytes: the reference implementation's `MAX_HEADER_SIZE`.
 * A bigger length prefix means a corrupt file (or not a safetensors file at all).
 */
export const SAFETENSORS_MAX_HEADER_LENGTH = 100_000_000;

/** The header key reserved for free-form string metadata. */
const METADATA_KEY = '__metadata__';

/** One tensor as described by a validated header. */
export interface SafetensorsTensorInfo {
  /** Tensor name, e.g. `model.layers.0.self_attn.q_proj.lora_a`. */
  name: string;
  dtype: SafetensorsDtype;
  /** Row-major dimensions; `[]` is a scalar. */
  shape: number[];
  /** `[begin, end)` relative to the start of the data section. */
  dataOffsets: [number, number];
  /** `end - begin`, always equal to the element count times the dtype size. */
  byteLength: number;
}

/** A validated safetensors header. Plain data: safe to serialise. */
export interface SafetensorsHeader {
  /** The file it was read from. */
  path: string;
  /** Size of the whole file in bytes. */
  fileSize: number;
  /** The `N` of the length prefix: JSON header bytes, padding included. */
  headerLength: number;
  /** File position of the data section (`8 + headerLength`). */
  dataStart: number;
  /** `__metadata__`, or `null` when absent or `null` in the file (as MLX writes it). */
  metadata: Record<string, string> | null;
  /** Every tensor, in data order (ascending offsets). */
  tensors: SafetensorsTensorInfo[];
  /**
   * Tensor names the header declares more than once, sorted. The reference reader keeps the
   * last declaration of each (and so does this one: `tensors` holds it); the earlier ones
   * describe bytes no loader reads. Absent or empty when every name is declared once.
   */
  duplicateNames?: string[];
}

/** Options for reading a safetensors header. */
export interface ReadSafetensorsOptions {
  /**
   * Largest accepted header, in bytes.
   * @default SAFETENSORS_MAX_HEADER_LENGTH (100,000,000)
   */
  maxHeaderLength?: number;
}

/**
 * Size in bytes of one element of `dtype`.
 *
 * @throws InvalidArgumentError for sub-byte dtypes (F4, F6_*), which have no whole-byte element.
 * @example
 * ```ts
 * dtypeByteSize('BF16'); // 2
 * ```
 */
export function dtypeByteSize(dtype: SafetensorsDtype): number {
  const bits = SAFETENSORS_DTYPE_BITS[dtype];
  if (bits % 8 !== 0) {
    throw new InvalidArgumentError('dtype', `${dtype} packs ${bits}-bit elements, which do not fill whole bytes.`);
  }
  return bits / 8;
}

/**
 * True when `value` is a dtype name defined by the safetensors format.
 *
 * @example
 * ```ts
 * isSafetensorsDtype('BF16'); // true
 * isSafetensorsDtype('F31'); // false
 * ```
 */
export function isSafetensorsDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_BITS, value);
}

/**
 * Bytes a tensor of this dtype and shape occupies, or a reason why it cannot exist (overflow,
 * sub-byte dtype whose bit count is not a multiple of 8).
 */
function tensorByteLength(dtype: SafetensorsDtype, shape: readonly number[]): number | string {
  let bits = BigInt(SAFETENSORS_DTYPE_BITS[dtype]);
  for (const dim of shape) bits *= BigInt(dim);
  if (bits % 8n !== 0n) return `${shape.join('x')} elements of ${dtype} do not fill whole bytes`;
  const bytes = bits / 8n;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) return `shape ${JSON.stringify(shape)} of ${dtype} overflows`;
  return Number(bytes);
}

/** A number of a tensor's `shape` or `data_offsets` written with a fraction or an exponent. */
interface NonIntegerToken {
  tensor: string;
  field: 'shape' | 'data_offsets';
  /** The number as written, e.g. `4.0`. */
  token: string;
}

/** A top-level key of a header text and where its value is written (`json.slice(start, end)`, colon included). */
interface HeaderEntrySpan {
  key: string;
  start: number;
  end: number;
}

/**
 * What `JSON.parse` hides in a (syntactically valid) header text: the top-level keys with their
 * duplicates and where each value is written (it keeps only the last value of two equal keys),
 * and the numbers of `shape` and `data_offsets` written as `4.0` or `1e3`, which it reads as
 * integers while the reference reader (integers only there) refuses the file.
 */
function scanHeaderText(json: string): { entries: HeaderEntrySpan[]; nonIntegers: NonIntegerToken[] } {
  const entries: HeaderEntrySpan[] = [];
  const nonIntegers: NonIntegerToken[] = [];
  // One entry per open container: its kind, the key it is the value of, and for objects the
  // last key read and whether a key comes next.
  const stack: { kind: '{' | '['; key?: string; lastKey?: string; expectKey: boolean }[] = [];
  for (let i = 0; i < json.length; i++) {
    const ch = json[i]!;
    const top = stack[stack.length - 1];
    if (ch === '"') {
      let j = i + 1;
      while (j < json.length && json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
      if (top?.kind === '{' && top.expectKey) {
        // Keys deeper than a tensor entry's fields are never needed: skip their decoding.
        const key = stack.length <= 2 ? (JSON.parse(json.slice(i, j + 1)) as string) : '';
        if (stack.length === 1) entries.push({ key, start: j + 1, end: json.length });
        top.lastKey = key;
        top.expectKey = false;
      }
      i = j;
    } else if (ch === '{' || ch === '[') {
      stack.push({ kind: ch, key: top?.kind === '{' ? top.lastKey : undefined, expectKey: ch === '{' });
    } else if (ch === '}' || ch === ']') {
      if (stack.length === 1 && entries.length > 0) entries[entries.length - 1]!.end = i;
      stack.pop();
    } else if (ch === ',') {
      if (stack.length === 1 && entries.length > 0) entries[entries.length - 1]!.end = i;
      if (top?.kind === '{') top.expectKey = true;
    } else if (ch === '-' || (ch >= '0' && ch <= '9')) {
      let j = i + 1;
      while (j < json.length && '0123456789.eE+-'.includes(json[j]!)) j++;
      const token = json.slice(i, j);
      const field = top?.key;
      if (stack.length === 3 && top?.kind === '[' && (field === 'shape' || field === 'data_offsets') && /[.eE]/.test(token)) {
        nonIntegers.push({ tensor: stack[1]!.key ?? '', field, token });
      }
      i = j - 1;
    }
  }
  return { entries, nonIntegers };
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * The fields of one tensor entry, typed as the reference reader's serde `TensorInfo` demands
 * (known dtype, shape of non-negative integers, two non-negative integer offsets); whether
 * they fit the data section is judged by the caller.
 */
function tensorEntryFields(path: string, where: string, entry: unknown): { dtype: SafetensorsDtype; shape: number[]; begin: number; end: number } {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw fail(path, `${where} is not an object`);
  const { dtype, shape, data_offsets: offsets } = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (!isSafetensorsDtype(dtype)) {
    throw fail(path, `${where} has unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(SAFETENSORS_DTYPE_BITS).join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
    throw fail(path, `${where} has invalid shape ${JSON.stringify(shape)} (expected an array of non-negative integers)`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger)) {
    throw fail(path, `${where} has invalid data_offsets ${JSON.stringify(offsets)} (expected [begin, end], non-negative integers)`);
  }
  return { dtype, shape, begin: offsets[0] as number, end: offsets[1] as number };
}

/**
 * The end of a layout failure's reason when names are declared twice: the bytes of an earlier
 * declaration are read by no loader, which is often why the layout has a gap.
 */
function redeclared(duplicateNames: readonly string[]): string {
  if (duplicateNames.length === 0) return '';
  const names = duplicateNames.slice(0, 3).map((n) => JSON.stringify(n)).join(', ');
  return `; the header declares ${names}${duplicateNames.length > 3 ? ` and ${duplicateNames.length - 3} more` : ''} more than once, and loaders read only the last declaration`;
}

function fail(path: string, reason: string, hint?: string): SafetensorsError {
  return new SafetensorsError(path, `Invalid safetensors file ${path}: ${reason}.`, {
    reason,
    hint: hint ?? 'The file is corrupt or truncated (an interrupted copy or download, or a Git LFS pointer): write or download it again.',
  });
}

/**
 * Validates a header's JSON text against the file size. Exported for tests and for callers
 * that already hold the bytes; most callers want {@link readSafetensorsHeader}.
 *
 * @throws SafetensorsError naming `path` and the reason.
 * @example
 * ```ts
 * const header = parseSafetensorsHeader('x.safetensors', '{"__metadata__":null}', 21, 29); // no tensors
 * ```
 */
export function parseSafetensorsHeader(path: string, headerText: string, headerLength: number, fileSize: number): SafetensorsHeader {
  // JSON.parse refuses a byte order mark anyway; say what it is instead of "unexpected token".
  if (headerText.startsWith('\uFEFF')) {
    throw fail(path, 'header starts with a UTF-8 byte order mark (EF BB BF), which safetensors loaders refuse', 'Write the header as UTF-8 without a BOM (in Python, encoding="utf-8", not "utf-8-sig").');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(headerText);
  } catch (error) {
    throw fail(path, `header is not valid JSON (${(error as Error).message})`);
  }
  // The format says the header starts with "{"; the reference reader (0.8) also accepts leading
  // whitespace, and so do we: refusing what every loader reads would only block good models.
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw fail(path, `header is not a JSON object (starts with ${JSON.stringify(headerText.slice(0, 16))})`);

  const { entries, nonIntegers } = scanHeaderText(headerText);
  const declarations = new Map<string, HeaderEntrySpan[]>();
  for (const entry of entries) {
    const spans = declarations.get(entry.key);
    if (spans) spans.push(entry);
    else declarations.set(entry.key, [entry]);
  }
  const duplicateNames = [...declarations].filter(([, spans]) => spans.length > 1).map(([name]) => name).sort();
  const metadataDeclarations = declarations.get(METADATA_KEY)?.length ?? 0;
  if (metadataDeclarations > 1) {
    throw fail(
      path,
      `${METADATA_KEY} is declared ${metadataDeclarations} times in the header (safetensors loaders refuse the file: "duplicate field \`${METADATA_KEY}\`")`,
      `Write one ${METADATA_KEY} map: save the file again with the safetensors library, or merge the maps in the program that wrote it.`,
    );
  }
  // Like JSON.parse, the reference reader keeps the last declaration of a name (serde_json into
  // a HashMap); it still refuses the file when an earlier one is no well-typed tensor entry, and
  // judges only the last one against the data section.
  for (const name of duplicateNames) {
    const spans = declarations.get(name)!;
    spans.slice(0, -1).forEach((span, i) => {
      const text = headerText.slice(span.start, span.end);
      tensorEntryFields(path, `tensor ${JSON.stringify(name)} (declaration ${i + 1} of ${spans.length})`, JSON.parse(text.slice(text.indexOf(':') + 1)));
    });
  }
  const [nonInteger] = nonIntegers;
  if (nonInteger) {
    throw fail(
      path,
      `tensor ${JSON.stringify(nonInteger.tensor)} has ${nonInteger.token} in its ${nonInteger.field}, a number with a fraction or exponent where the format wants an integer (safetensors loaders refuse the file)`,
      'The program that wrote the file put floats in the header (Python writes float 4.0 as "4.0"): write shape and data_offsets as integers, e.g. int(...) in Python, or save with the safetensors library.',
    );
  }

  let metadata: Record<string, string> | null = null;
  const tensors: SafetensorsTensorInfo[] = [];
  for (const [name, entry] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (entry === null) continue;
      if (typeof entry !== 'object' || Array.isArray(entry) || Object.values(entry).some((v) => typeof v !== 'string')) {
        throw fail(path, '__metadata__ must be a map of strings to strings (or null)');
      }
      metadata = { ...(entry as Record<string, string>) };
      continue;
    }
    const where = `tensor ${JSON.stringify(name)}`;
    const { dtype, shape, begin, end } = tensorEntryFields(path, where, entry);
    if (end < begin) throw fail(path, `${where} has data_offsets [${begin}, ${end}] that end before they begin`);
    const expected = tensorByteLength(dtype, shape);
    if (typeof expected === 'string') throw fail(path, `${where}: ${expected}`);
    if (end - begin !== expected) {
      throw fail(
        path,
        `${where} spans ${end - begin} bytes but shape ${JSON.stringify(shape)} of ${dtype} needs ${expected} bytes`,
      );
    }
    tensors.push({ name, dtype, shape: [...shape], dataOffsets: [begin, end], byteLength: expected });
  }

  // The reference reader demands a contiguous data section: sorted by offsets, each tensor
  // begins where the previous one ended, and the last one ends exactly at the end of the file.
  tensors.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  const dataStart = 8 + headerLength;
  const dataSize = fileSize - dataStart;
  let cursor = 0;
  let previous: SafetensorsTensorInfo | undefined;
  for (const tensor of tensors) {
    const [begin, end] = tensor.dataOffsets;
    if (begin < cursor && previous) {
      throw fail(
        path,
        `tensor ${JSON.stringify(tensor.name)} [${begin}, ${end}) overlaps tensor ${JSON.stringify(previous.name)} [${previous.dataOffsets[0]}, ${previous.dataOffsets[1]})`,
      );
    }
    if (begin > cursor) {
      throw fail(path, `${begin - cursor} unused bytes before tensor ${JSON.stringify(tensor.name)} at data offset ${cursor} (tensors must be contiguous)${redeclared(duplicateNames)}`);
    }
    if (end > dataSize) {
      throw fail(
        path,
        `tensor ${JSON.stringify(tensor.name)} ends at data offset ${end}, outside the data section of ${dataSize} bytes (the file is truncated or the offsets are wrong)`,
      );
    }
    cursor = end;
    previous = tensor;
  }
  if (cursor !== dataSize) {
    throw fail(path, `${dataSize - cursor} trailing bytes after the last tensor (the data section has ${dataSize} bytes, tensors cover ${cursor})${redeclared(duplicateNames)}`);
  }
  return { path, fileSize, headerLength, dataStart, metadata, tensors, duplicateNames };
}

async function openForReading(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new LocalPathError('PATH_NOT_FOUND', path, `Safetensors file ${path} does not exist.`, { cause: error });
    if (code === 'EISDIR') throw new LocalPathError('NOT_A_FILE', path, `${path} is a directory, not a safetensors file.`, { cause: error });
    throw new LocalPathError('PATH_UNREADABLE', path, `Cannot open ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/** Reads exactly `length` bytes at `position`, or fails naming the file. */
async function readExactly(handle: FileHandle, path: string, position: number, length: number): Promise<Buffer> {
  // Buffer.alloc never hands out a slice of the shared pool, so byteOffset is 0 and typed-array
  // views over the result are aligned.
  const buffer = Buffer.alloc(length);
  const done = await readFully((b, o, l, p) => handle.read(b, o, l, p), buffer, 0, length, position);
  if (done < length) throw fail(path, `file ended after ${position + done} bytes while reading ${length} bytes at position ${position} (was it truncated while open?)`);
  return buffer;
}

async function readHeaderFrom(handle: FileHandle, path: string, options: ReadSafetensorsOptions): Promise<SafetensorsHeader> {
  const maxHeaderLength = options.maxHeaderLength ?? SAFETENSORS_MAX_HEADER_LENGTH;
  const fileSize = (await handle.stat()).size;
  if (fileSize < 8) throw fail(path, `file is ${fileSize} bytes, shorter than the 8-byte header length prefix`);
  const prefix = await readExactly(handle, path, 0, 8);
  const declared = prefix.readBigUInt64LE(0);
  if (declared > BigInt(maxHeaderLength)) {
    throw fail(path, `header length ${declared} is larger than the ${maxHeaderLength}-byte limit${declared > BigInt(fileSize) ? ` and than the file (${fileSize} bytes)` : ''}`);
  }
  const headerLength = Number(declared);
  if (8 + headerLength > fileSize) throw fail(path, `header length ${headerLength} is larger than the file (${fileSize} bytes, ${fileSize - 8} after the length prefix)`);
  const raw = await readExactly(handle, path, 8, headerLength);
  let text: string;
  try {
    // ignoreBOM keeps a leading BOM in the text: the reference reader refuses it, and so must we.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw);
  } catch {
    throw fail(path, 'header is not valid UTF-8');
  }
  return parseSafetensorsHeader(path, text, headerLength, fileSize);
}

/**
 * Reads and validates the header of a safetensors file, reading only the first `8 + N` bytes.
 *
 * @throws SafetensorsError (with `path` and `reason`) when the file is not a valid safetensors
 *   file: too short, header length larger than the file, non-JSON header (or one starting with
 *   a byte order mark), `__metadata__` declared twice, a `shape` or `data_offsets` number
 *   written as `4.0`, unknown dtype, a shape that does not match its byte span, overlapping or
 *   non-contiguous tensors, offsets outside the data section, trailing bytes. A tensor name
 *   declared twice is no error, as for the reference reader: the last declaration is kept and
 *   the name listed in `duplicateNames`.
 * @throws LocalPathError when the file does not exist or cannot be opened.
 * @example
 * ```ts
 * const header = await readSafetensorsHeader('adapters/adapters.safetensors');
 * for (const t of header.tensors) console.log(t.name, t.dtype, t.shape);
 * ```
 */
export async function readSafetensorsHeader(path: string, options: ReadSafetensorsOptions = {}): Promise<SafetensorsHeader> {
  const handle = await openForReading(path);
  try {
    return await readHeaderFrom(handle, path, options);
  } finally {
    await handle.close();
  }
}

/** An open safetensors file: its header, and tensors read one at a time. Call `close()`. */
export interface SafetensorsReader {
  /** The validated header. */
  readonly header: SafetensorsHeader;
  /** The header entry of `name`, or `undefined`. */
  tensor(name: string): SafetensorsTensorInfo | undefined;
  /**
   * Reads one tensor's raw bytes (little-endian, row-major) from its position in the file.
   * Only that tensor is held in memory.
   * @throws InvalidArgumentError when the file has no tensor of that name.
   */
  readTensor(name: string): Promise<Buffer>;
  /** Closes the file handle. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Opens a safetensors file, validates its header and returns a reader that reads tensors one at
 * a time by file position (never the whole file).
 *
 * @throws SafetensorsError, LocalPathError as {@link readSafetensorsHeader}.
 * @example
 * ```ts
 * const reader = await openSafetensors('adapters/adapters.safetensors');
 * try {
 *   const bytes = await reader.readTensor('model.layers.0.self_attn.q_proj.lora_a');
 * } finally {
 *   await reader.close();
 * }
 * ```
 */
export async function openSafetensors(path: string, options: ReadSafetensorsOptions = {}): Promise<SafetensorsReader> {
  const handle = await openForReading(path);
  let header: SafetensorsHeader;
  try {
    header = await readHeaderFrom(handle, path, options);
  } catch (error) {
    await handle.close();
    throw error;
  }
  const byName = new Map(header.tensors.map((t) => [t.name, t]));
  let closed = false;
  return {
    header,
    tensor: (name) => byName.get(name),
    async readTensor(name) {
      const info = byName.get(name);
      if (!info) throw new InvalidArgumentError('name', `${path} has no tensor named ${JSON.stringify(name)}.`);
      if (closed) throw new InvalidArgumentError('reader', `The reader of ${path} is closed.`);
      return readExactly(handle, path, header.dataStart + info.dataOffsets[0], info.byteLength);
    },
    async close() {
      if (closed) return;
      closed = true;
      await handle.close();
    },
  };
}

/** A tensor to be written: its name, dtype and shape (the bytes come later, in order). */
export interface SafetensorsTensorSpec {
  name: string;
  dtype: SafetensorsDtype;
  shape: readonly number[];
}

/** Options for writing a safetensors file. */
export interface WriteSafetensorsOptions {
  /**
   * `__metadata__` to write. PEFT and transformers expect `{ format: 'pt' }`.
   * @default null (no `__metadata__` entry)
   */
  metadata?: Record<string, string> | null;
}

/** A safetensors file being written: tensors go in one by one, in declared order. */
export interface SafetensorsWriter {
  /** The layout being written, as a reader would see it. */
  readonly header: SafetensorsHeader;
  /** Name of the tensor `writeTensor` expects next, or `undefined` when all are written. */
  readonly next: string | undefined;
  /**
   * Appends the bytes of the next tensor.
   * @throws InvalidArgumentError when `name` is not the next declared tensor or `data` has the wrong length.
   */
  writeTensor(name: string, data: Uint8Array): Promise<void>;
  /**
   * Finishes the file.
   * @throws InvalidArgumentError when some declared tensors were not written (the partial file is removed).
   */
  close(): Promise<void>;
  /** Stops writing and removes the partial file. */
  abort(): Promise<void>;
}

function planHeader(path: string, specs: readonly SafetensorsTensorSpec[], metadata: Record<string, string> | null): { text: string; header: SafetensorsHeader } {
  // No prototype: on a plain object, a tensor named "__proto__" set the prototype instead of a
  // key, so the header left it out while its bytes were written, and the file did not read back.
  const entries: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  if (metadata) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') throw new InvalidArgumentError('metadata', `metadata.${key} must be a string, got ${typeof value}.`);
    }
    entries[METADATA_KEY] = metadata;
  }
  const tensors: SafetensorsTensorInfo[] = [];
  let offset = 0;
  for (const spec of specs) {
    if (spec.name === METADATA_KEY || spec.name === '') throw new InvalidArgumentError('tensors', `Tensor name ${JSON.stringify(spec.name)} is reserved or empty.`);
    if (Object.prototype.hasOwnProperty.call(entries, spec.name)) throw new InvalidArgumentError('tensors', `Tensor ${JSON.stringify(spec.name)} is declared twice.`);
    if (!isSafetensorsDtype(spec.dtype)) throw new InvalidArgumentError('tensors', `Tensor ${JSON.stringify(spec.name)} has unknown dtype ${JSON.stringify(spec.dtype)}.`);
    if (!spec.shape.every(isNonNegativeInteger)) throw new InvalidArgumentError('tensors', `Tensor ${JSON.stringify(spec.name)} has invalid shape ${JSON.stringify(spec.shape)}.`);
    const bytes = tensorByteLength(spec.dtype, spec.shape);
    if (typeof bytes === 'string') throw new InvalidArgumentError('tensors', `Tensor ${JSON.stringify(spec.name)}: ${bytes}.`);
    entries[spec.name] = { dtype: spec.dtype, shape: [...spec.shape], data_offsets: [offset, offset + bytes] };
    tensors.push({ name: spec.name, dtype: spec.dtype, shape: [...spec.shape], dataOffsets: [offset, offset + bytes], byteLength: bytes });
    offset += bytes;
  }
  // Pad with spaces (allowed by the format) so the data section starts 8-byte aligned, as the
  // reference writer does; readers that map tensors straight into typed arrays rely on it.
  let text = JSON.stringify(entries);
  const length = Buffer.byteLength(text, 'utf8');
  text += ' '.repeat((8 - (length % 8)) % 8);
  const headerLength = Buffer.byteLength(text, 'utf8');
  return {
    text,
    header: { path, fileSize: 8 + headerLength + offset, headerLength, dataStart: 8 + headerLength, metadata, tensors },
  };
}

/**
 * Starts writing a safetensors file: writes the header for `tensors` at once, then expects
 * each tensor's bytes through `writeTensor`, in the declared order. Only the tensor being
 * written is in memory. Tensors are laid out contiguously in declared order; declare them
 * sorted by element size (largest first) to keep every tensor aligned.
 *
 * @throws InvalidArgumentError for duplicate names, unknown dtypes or bad shapes.
 * @example
 * ```ts
 * const writer = await createSafetensorsWriter('out.safetensors', [{ name: 'w', dtype: 'F32', shape: [2, 2] }], {
 *   metadata: { format: 'pt' },
 * });
 * await writer.writeTensor('w', new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer));
 * await writer.close();
 * ```
 */
export async function createSafetensorsWriter(
  path: string,
  tensors: readonly SafetensorsTensorSpec[],
  options: WriteSafetensorsOptions = {},
): Promise<SafetensorsWriter> {
  const { text, header } = planHeader(path, tensors, options.metadata ?? null);
  const handle = await open(path, 'w');
  let position = 0;
  const write = async (data: Uint8Array) => {
    let done = 0;
    while (done < data.byteLength) {
      const { bytesWritten } = await handle.write(data, done, data.byteLength - done, position + done);
      done += bytesWritten;
    }
    position += data.byteLength;
  };
  let index = 0;
  let finished = false;
  const abort = async () => {
    if (finished) return;
    finished = true;
    await handle.close().catch(() => undefined);
    await rm(path, { force: true });
  };
  try {
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(header.headerLength), 0);
    await write(prefix);
    await write(Buffer.from(text, 'utf8'));
  } catch (error) {
    await abort();
    throw error;
  }
  return {
    header,
    get next() {
      return header.tensors[index]?.name;
    },
    async writeTensor(name, data) {
      if (finished) throw new InvalidArgumentError('writer', `The writer of ${path} is already closed.`);
      const expected = header.tensors[index];
      if (!expected) throw new InvalidArgumentError('name', `All ${header.tensors.length} declared tensors of ${path} are already written; got ${JSON.stringify(name)}.`);
      if (expected.name !== name) throw new InvalidArgumentError('name', `Tensors must be written in declared order: expected ${JSON.stringify(expected.name)}, got ${JSON.stringify(name)}.`);
      if (data.byteLength !== expected.byteLength) {
        throw new InvalidArgumentError('data', `Tensor ${JSON.stringify(name)} (${expected.dtype} ${JSON.stringify(expected.shape)}) needs ${expected.byteLength} bytes, got ${data.byteLength}.`);
      }
      try {
        await write(data);
      } catch (error) {
        await abort();
        throw error;
      }
      index++;
    },
    async close() {
      if (finished) return;
      if (index < header.tensors.length) {
        const missing = header.tensors.slice(index).map((t) => t.name);
        await abort();
        throw new InvalidArgumentError('tensors', `${missing.length} declared tensor(s) were never written to ${path} (${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}); the partial file was removed.`);
      }
      finished = true;
      await handle.close();
    },
    abort,
  };
}

/** A tensor with its bytes, for {@link writeSafetensorsFile}. */
export interface SafetensorsTensorData extends SafetensorsTensorSpec {
  /** Raw little-endian bytes, row-major. */
  data: Uint8Array;
}

/**
 * Writes a whole safetensors file from tensors already in memory (small files, tests). For
 * large files use {@link createSafetensorsWriter} and feed tensors one at a time.
 *
 * @example
 * ```ts
 * await writeSafetensorsFile('tiny.safetensors', [
 *   { name: 'bias', dtype: 'F32', shape: [3], data: new Uint8Array(new Float32Array([1, 2, 3]).buffer) },
 * ]);
 * ```
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: readonly SafetensorsTensorData[],
  options: WriteSafetensorsOptions = {},
): Promise<SafetensorsHeader> {
  const writer = await createSafetensorsWriter(path, tensors, options);
  try {
    for (const tensor of tensors) await writer.writeTensor(tensor.name, tensor.data);
  } catch (error) {
    await writer.abort();
    throw error;
  }
  await writer.close();
  return writer.header;
}

/** Index access shared by the typed arrays `transpose2d` moves elements with. */
type Indexable = { [index: number]: number | bigint };

/**
 * Transposes a 2-D row-major tensor given as raw bytes: element `(r, c)` of the `rows x cols`
 * input becomes element `(c, r)` of the `cols x rows` output. Works for any whole-byte element
 * size without decoding values, so F16/BF16 bits are preserved exactly.
 *
 * @throws InvalidArgumentError when `data` is not `rows * cols * elementSize` bytes.
 * @example
 * ```ts
 * const t = transpose2d(bytes, 4, 8, dtypeByteSize('BF16')); // 8 x 4 result
 * ```
 */
export function transpose2d(data: Uint8Array, rows: number, cols: number, elementSize: number): Buffer {
  if (![rows, cols, elementSize].every(isNonNegativeInteger) || elementSize === 0) {
    throw new InvalidArgumentError('shape', `transpose2d needs non-negative integer rows and cols and a positive element size, got ${rows}x${cols} of ${elementSize} bytes.`);
  }
  const expected = rows * cols * elementSize;
  if (data.byteLength !== expected) {
    throw new InvalidArgumentError('data', `A ${rows}x${cols} tensor of ${elementSize}-byte elements has ${expected} bytes, got ${data.byteLength}.`);
  }
  const out = Buffer.alloc(expected);
  if (elementSize === 1 || elementSize === 2 || elementSize === 4 || elementSize === 8) {
    // Typed arrays need an aligned start; copy an unaligned input once rather than go byte by byte.
    const source = data.byteOffset % elementSize === 0 ? data : new Uint8Array(data);
    const count = rows * cols;
    const view = (bytes: Uint8Array): Indexable => {
      if (elementSize === 1) return new Uint8Array(bytes.buffer, bytes.byteOffset, count);
      if (elementSize === 2) return new Uint16Array(bytes.buffer, bytes.byteOffset, count);
      if (elementSize === 4) return new Uint32Array(bytes.buffer, bytes.byteOffset, count);
      return new BigUint64Array(bytes.buffer, bytes.byteOffset, count);
    };
    const input = view(source);
    const output = view(out);
    for (let r = 0; r < rows; r++) {
      const rowStart = r * cols;
      for (let c = 0; c < cols; c++) output[c * rows + r] = input[rowStart + c] as number | bigint;
    }
    return out;
  }
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const from = (r * cols + c) * elementSize;
      out.set(data.subarray(from, from + elementSize), (c * rows + r) * elementSize);
    }
  }
  return out;
}
