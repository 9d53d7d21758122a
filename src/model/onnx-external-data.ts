/**
 * Finding the external-data files of an ONNX model, so that the model is uploaded with the
 * weights it needs. Models over 2 GB keep their tensors outside the `.onnx` protobuf, in files
 * next to it that the model names by relative path (`TensorProto.external_data`, key
 * `location`). Two sources, both kept simple:
 *
 * 1. the conventional names next to the model, when they exist: `<name>.onnx.data`
 *    (`torch.onnx.export`), `<name>.onnx_data` (Optimum), `<name>.data`;
 * 2. the `location` entries of the model itself, found by scanning its bytes for the encoded
 *    key (`0a 08 "location" 12 <len> <path>`) without a protobuf parser. Only models up to
 *    {@link MAX_SCANNED_MODEL_BYTES} are scanned: a model with external data is a small graph,
 *    while a large `.onnx` holds its weights inline and names no external files.
 *
 * @module
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { InvalidArgumentError, LocalPathError } from '../core/errors.js';
import { isInside } from '../core/real-path.js';

/**
 * Largest `.onnx` file scanned for `location` entries: 64 MiB.
 *
 * @example
 * ```ts
 * if (size > MAX_SCANNED_MODEL_BYTES) console.log('weights are inline; no external data to look for');
 * ```
 */
export const MAX_SCANNED_MODEL_BYTES = 64 * 1024 * 1024;

/** The encoded start of a `StringStringEntryProto { key: "location", value: ... }`. */
const LOCATION_ENTRY = Buffer.from([0x0a, 0x08, ...Buffer.from('location', 'ascii'), 0x12]);

/** Reads a protobuf varint at `offset`; `undefined` when it runs off the end or is absurd. */
function readVarint(bytes: Buffer, offset: number): { value: number; next: number } | undefined {
  let value = 0;
  for (let shift = 0, i = offset; i < bytes.length && shift < 35; shift += 7, i++) {
    const byte = bytes[i]!;
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return { value, next: i + 1 };
  }
  return undefined;
}

/**
 * The `location` values a model's bytes name, in order of appearance, without repeats.
 *
 * @example
 * ```ts
 * externalDataLocations(await readFile('model.onnx')); // ['model.onnx.data']
 * ```
 */
export function externalDataLocations(model: Buffer): string[] {
  const found = new Set<string>();
  for (let at = model.indexOf(LOCATION_ENTRY); at !== -1; at = model.indexOf(LOCATION_ENTRY, at + 1)) {
    const length = readVarint(model, at + LOCATION_ENTRY.length);
    if (!length || length.value === 0 || length.value > 4096 || length.next + length.value > model.length) continue;
    found.add(model.subarray(length.next, length.next + length.value).toString('utf8'));
  }
  return [...found];
}

/**
 * The external-data files of the ONNX model at `onnxPath` (absolute paths, sorted): the
 * conventional names that exist, plus every file the model names.
 *
 * @throws {LocalPathError} `PATH_NOT_FOUND` when the model names a file that does not exist,
 *   `NOT_A_FILE` when it names a directory (or anything else that is not a regular file).
 * @throws {InvalidArgumentError} when the model names a file outside its directory, its own
 *   directory (`"."`), or itself.
 * @example
 * ```ts
 * await findOnnxExternalData('out/model.onnx'); // ['/abs/out/model.onnx.data']
 * ```
 */
export async function findOnnxExternalData(onnxPath: string): Promise<string[]> {
  const model = resolve(onnxPath);
  const dir = dirname(model);
  const name = basename(model);
  const stem = name.replace(/\.onnx$/i, '');
  const out = new Set<string>();
  for (const candidate of [`${name}.data`, `${name}_data`, `${stem}.data`]) {
    const path = join(dir, candidate);
    if (path !== model && (await stat(path).catch(() => undefined))?.isFile()) out.add(path);
  }
  const size = (await stat(model)).size;
  if (size <= MAX_SCANNED_MODEL_BYTES) {
    for (const location of externalDataLocations(await readFile(model))) {
      const path = resolve(dir, location);
      const saveHint = `Save the model with its external data next to it: onnx.save_model(model, "${name}", save_as_external_data=True, location="${name}.data").`;
      // Each odd name gets its own message: "." was reported as outside the directory, a folder
      // as missing, and the model itself passed, to fail later as two files with one artifact path.
      if (path === dir) {
        throw new InvalidArgumentError('onnxPath', `${model} names external data ${JSON.stringify(location)}, which is the model's own directory, not a file.`, { hint: saveHint });
      }
      if (isAbsolute(location) || !isInside(dir, path)) {
        throw new InvalidArgumentError('onnxPath', `${model} names external data ${JSON.stringify(location)} outside its directory.`, { hint: saveHint });
      }
      if (path === model) {
        throw new InvalidArgumentError('onnxPath', `${model} names itself as its external-data file (${JSON.stringify(location)}): its tensors cannot be read from the model's own bytes this way.`, {
          hint: `The export went wrong; re-export it with the tensors in a file of their own. ${saveHint}`,
        });
      }
      const info = await stat(path).catch(() => undefined);
      if (info === undefined) {
        throw new LocalPathError('PATH_NOT_FOUND', path, `${model} keeps tensors in ${JSON.stringify(location)}, which does not exist next to it.`, {
          hint: 'Copy the external-data file next to the model (the model would not load without it), or re-export the model.',
        });
      }
      if (!info.isFile()) {
        throw new LocalPathError('NOT_A_FILE', path, `${model} keeps tensors in ${JSON.stringify(location)}, which is ${info.isDirectory() ? 'a directory' : 'not a regular file'}, not a file of tensors.`, {
          hint: `Point the model at the data file itself (a file, not a folder), or re-export it. ${saveHint}`,
        });
      }
      out.add(path);
    }
  }
  return [...out].sort();
}
