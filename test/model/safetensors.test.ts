import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, LocalPathError, SafetensorsError } from '../../src/core/errors.js';
import {
  createSafetensorsWriter,
  dtypeByteSize,
  openSafetensors,
  readSafetensorsHeader,
  transpose2d,
  writeSafetensorsFile,
} from '../../src/model/safetensors.js';
import { runPython } from '../support/python.js';
import { encodeRaw, encodeSafetensors, tempDir, tensor, tensorData } from './fixtures.js';

/** Corrupt files, each with the reason our reader must give. */
function corruptFixtures(): { name: string; bytes: Buffer; reason: RegExp }[] {
  const ok = encodeSafetensors([tensor('a', 'F32', [2, 2]), tensor('b', 'F16', [3])]);
  const f32x4 = tensorData('F32', 4);
  return [
    { name: 'too-short', bytes: Buffer.from([1, 2, 3]), reason: /shorter than the 8-byte header length prefix/ },
    { name: 'header-longer-than-file', bytes: encodeRaw('{}', new Uint8Array(0), 4096n), reason: /header length 4096 is larger than the file/ },
    { name: 'absurd-header-length', bytes: encodeRaw('{}', new Uint8Array(0), 2n ** 62n), reason: /larger than the 100000000-byte limit/ },
    { name: 'truncated', bytes: ok.subarray(0, ok.length - 3), reason: /outside the data section/ },
    { name: 'not-json', bytes: encodeRaw('{"a": {"dtype": "F32",', f32x4), reason: /not valid JSON/ },
    { name: 'not-utf8', bytes: Buffer.concat([encodeRaw('{"x":1}').subarray(0, 8), Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x20, 0x20, 0x20])]), reason: /not valid UTF-8/ },
    { name: 'not-an-object', bytes: encodeRaw('[1]'), reason: /header is not a JSON object/ },
    { name: 'unknown-dtype', bytes: encodeRaw('{"a":{"dtype":"F31","shape":[4],"data_offsets":[0,16]}}', f32x4), reason: /unknown dtype "F31"/ },
    { name: 'shape-mismatch', bytes: encodeRaw('{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}}', f32x4), reason: /spans 16 bytes but shape \[2,3\] of F32 needs 24 bytes/ },
    {
      name: 'overlap',
      bytes: encodeRaw('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', tensorData('F32', 3)),
      reason: /tensor "b" \[4, 12\) overlaps tensor "a" \[0, 8\)/,
    },
    {
      name: 'gap',
      bytes: encodeRaw('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}', f32x4),
      reason: /4 unused bytes before tensor "b"/,
    },
    { name: 'trailing-bytes', bytes: Buffer.concat([ok, Buffer.from('junk')]), reason: /4 trailing bytes after the last tensor/ },
    { name: 'offsets-outside', bytes: encodeRaw('{"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}', f32x4), reason: /ends at data offset 32, outside the data section of 16 bytes/ },
    // The reference reader keeps the last declaration of a name: the first one's bytes are a gap.
    {
      name: 'duplicate-name',
      bytes: encodeRaw('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}', f32x4),
      reason: /8 unused bytes before tensor "a" at data offset 0 \(tensors must be contiguous\); the header declares "a" more than once, and loaders read only the last declaration/,
    },
    {
      name: 'duplicate-metadata',
      bytes: encodeRaw('{"__metadata__":{"format":"pt"},"__metadata__":null,"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', f32x4),
      reason: /__metadata__ is declared 2 times in the header/,
    },
    {
      name: 'duplicate-ill-typed',
      bytes: encodeRaw('{"a":{"dtype":"F31","shape":[4],"data_offsets":[0,16]},"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', f32x4),
      reason: /tensor "a" \(declaration 1 of 2\) has unknown dtype "F31"/,
    },
    { name: 'bad-metadata', bytes: encodeRaw('{"__metadata__":{"n":1}}'), reason: /__metadata__ must be a map of strings/ },
    { name: 'bad-shape', bytes: encodeRaw('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}'), reason: /invalid shape \[-1\]/ },
    // JSON.parse reads these as the integers 4 and 16 and strips the BOM; the reference reader refuses all three.
    { name: 'float-shape', bytes: encodeRaw('{"a":{"dtype":"F32","shape":[4.0],"data_offsets":[0,16]}}', f32x4), reason: /tensor "a" has 4\.0 in its shape, a number with a fraction or exponent/ },
    { name: 'exponent-offsets', bytes: encodeRaw('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,1.6e1]}}', f32x4), reason: /tensor "a" has 1\.6e1 in its data_offsets/ },
    { name: 'byte-order-mark', bytes: encodeRaw('\uFEFF{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', f32x4), reason: /header starts with a UTF-8 byte order mark/ },
  ];
}

describe('readSafetensorsHeader', () => {
  it('reads an MLX-style file (null metadata, unpadded, unaligned) in data order', async () => {
    const dir = tempDir();
    const path = join(dir, 'mlx.safetensors');
    writeFileSync(path, encodeSafetensors([tensor('z.lora_b', 'BF16', [3, 5]), tensor('a.lora_a', 'F32', [5, 3])]));
    const header = await readSafetensorsHeader(path);
    expect(header.metadata).toBeNull();
    expect(header.dataStart % 8).not.toBe(0);
    expect(header.tensors.map((t) => [t.name, t.dtype, t.shape, t.dataOffsets])).toEqual([
      ['z.lora_b', 'BF16', [3, 5], [0, 30]],
      ['a.lora_a', 'F32', [5, 3], [30, 90]],
    ]);
    expect(header.fileSize).toBe(readFileSync(path).length);
  });

  it('reads every dtype and empty and scalar tensors', async () => {
    const dir = tempDir();
    const path = join(dir, 'dtypes.safetensors');
    const tensors = (['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'U8', 'BOOL'] as const).map((d, i) => tensor(`t${i}`, d, [2, 3], i + 1));
    writeFileSync(path, encodeSafetensors([...tensors, tensor('empty', 'F32', [0, 4]), tensor('scalar', 'F64', [])], { metadata: { format: 'pt' } }));
    const reader = await openSafetensors(path);
    try {
      expect(reader.header.metadata).toEqual({ format: 'pt' });
      for (const t of tensors) expect(Buffer.compare(await reader.readTensor(t.name), Buffer.from(t.data))).toBe(0);
      expect((await reader.readTensor('empty')).length).toBe(0);
      expect(reader.tensor('scalar')?.byteLength).toBe(8);
      await expect(reader.readTensor('nope')).rejects.toThrow(InvalidArgumentError);
    } finally {
      await reader.close();
    }
  });

  it.each(corruptFixtures().map((f) => [f.name, f] as const))('rejects a corrupt file: %s', async (_name, fixture) => {
    const path = join(tempDir(), `${fixture.name}.safetensors`);
    writeFileSync(path, fixture.bytes);
    const error = await readSafetensorsHeader(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SafetensorsError);
    expect((error as SafetensorsError).path).toBe(path);
    expect((error as SafetensorsError).reason).toMatch(fixture.reason);
    expect((error as SafetensorsError).message).toContain(path);
    expect((error as SafetensorsError).code).toBe('SAFETENSORS_INVALID');
  });

  it('takes floats only in shape and data_offsets for corruption: other fields may hold them, as the reference reader allows', async () => {
    const path = join(tempDir(), 'extra.safetensors');
    writeFileSync(path, encodeRaw('{"__metadata__":{"v":"1.0e3"},"a":{"dtype":"F32","shape":[ 4 ],"data_offsets":[0,16],"scale":[1.5,2e-3]}}', tensorData('F32', 4)));
    const header = await readSafetensorsHeader(path);
    expect(header.tensors.map((t) => [t.name, t.shape, t.dataOffsets])).toEqual([['a', [4], [0, 16]]]);
    expect(header.metadata).toEqual({ v: '1.0e3' });
  });

  it('names a missing file with LocalPathError', async () => {
    await expect(readSafetensorsHeader(join(tempDir(), 'missing.safetensors'))).rejects.toBeInstanceOf(LocalPathError);
  });

  it('agrees with the reference implementation: our valid files load, our corrupt fixtures are refused', async () => {
    const dir = tempDir();
    const corrupt = corruptFixtures();
    for (const f of corrupt) writeFileSync(join(dir, `${f.name}.safetensors`), f.bytes);
    const ours = join(dir, 'ours.safetensors');
    await writeSafetensorsFile(ours, [
      { name: 'w', dtype: 'BF16', shape: [2, 3], data: tensorData('BF16', 6) },
      { name: 'b', dtype: 'F32', shape: [3], data: tensorData('F32', 3) },
    ], { metadata: { format: 'pt' } });
    const script = `
import json, sys, os
from safetensors import safe_open
out = {}
for name in sorted(os.listdir(sys.argv[1])):
    try:
        with safe_open(os.path.join(sys.argv[1], name), framework="numpy") as f:
            out[name] = {"ok": True, "keys": sorted(f.keys()), "metadata": f.metadata()}
    except Exception as e:
        out[name] = {"ok": False, "error": type(e).__name__}
print(json.dumps(out))
`;
    const result = JSON.parse((await runPython(script, { args: [dir] })).trim().split('\n').pop()!) as Record<string, { ok: boolean; keys?: string[]; metadata?: unknown }>;
    expect(result['ours.safetensors']).toEqual({ ok: true, keys: ['b', 'w'], metadata: { format: 'pt' } });
    for (const f of corrupt) expect({ name: f.name, ok: result[`${f.name}.safetensors`]?.ok }).toEqual({ name: f.name, ok: false });
  });

  it('takes a tensor name declared twice as the reference reader does: the last declaration wins, and the header says which names', async () => {
    // safetensors (tensor.rs) reads the header with serde_json into a HashMap: a repeated name
    // overwrites the earlier entry, which must still be a well-typed TensorInfo but is not
    // checked against the data section. `corruptFixtures` holds the duplicates both refuse.
    const f32 = tensorData('F32', 4);
    const entry = (shape: number[], offsets: [number, number]) => `{"dtype":"F32","shape":${JSON.stringify(shape)},"data_offsets":${JSON.stringify(offsets)}}`;
    const fixtures = {
      identical: encodeRaw(`{"a":${entry([4], [0, 16])},"a":${entry([4], [0, 16])}}`, f32),
      'last-wins': encodeRaw(`{"a":${entry([1], [0, 4])},"b":${entry([2], [8, 16])},"a":${entry([2], [0, 8])}}`, f32),
      'three-times': encodeRaw(`{"__metadata__":{"format":"pt"},"a":${entry([9], [40, 76])},"a":${entry([1], [0, 4])},"b":${entry([3], [4, 16])},"a":${entry([1], [0, 4])}}`, f32),
    };
    const dir = tempDir();
    for (const [name, bytes] of Object.entries(fixtures)) writeFileSync(join(dir, `${name}.safetensors`), bytes);
    const script = `
import json, sys, os
from safetensors import safe_open
out = {}
for name in sorted(os.listdir(sys.argv[1])):
    with safe_open(os.path.join(sys.argv[1], name), framework="numpy") as f:
        out[name[:-len(".safetensors")]] = sorted([k, f.get_slice(k).get_shape()] for k in f.keys())
print(json.dumps(out))
`;
    const reference = JSON.parse((await runPython(script, { args: [dir] })).trim().split('\n').pop()!) as Record<string, [string, number[]][]>;
    for (const name of Object.keys(fixtures)) {
      const header = await readSafetensorsHeader(join(dir, `${name}.safetensors`));
      expect({ name, tensors: header.tensors.map((t) => [t.name, t.shape]).sort() }).toEqual({ name, tensors: reference[name] });
      expect({ name, duplicates: header.duplicateNames }).toEqual({ name, duplicates: ['a'] });
    }
    expect(reference['last-wins']).toEqual([['a', [2]], ['b', [2]]]);
    const once = join(dir, 'once.safetensors');
    writeFileSync(once, encodeSafetensors([tensor('a', 'F32', [4])]));
    expect((await readSafetensorsHeader(once)).duplicateNames).toEqual([]);
  });

  it('reads files written by the reference implementation (padded, sorted by alignment)', async () => {
    const dir = tempDir();
    const path = join(dir, 'ref.safetensors');
    await runPython(
      `
import sys, numpy as np
from safetensors.numpy import save_file
save_file({"small": np.arange(3, dtype=np.float16), "big": np.arange(6, dtype=np.float64).reshape(2, 3), "ids": np.array([7, -8], dtype=np.int32)}, sys.argv[1], metadata={"format": "pt"})
`,
      { args: [path] },
    );
    const reader = await openSafetensors(path);
    try {
      expect(reader.header.dataStart % 8).toBe(0);
      expect(reader.header.tensors.map((t) => t.name)).toEqual(['big', 'ids', 'small']);
      const big = await reader.readTensor('big');
      expect(Array.from({ length: 6 }, (_, i) => big.readDoubleLE(i * 8))).toEqual([0, 1, 2, 3, 4, 5]);
      const ids = await reader.readTensor('ids');
      expect([ids.readInt32LE(0), ids.readInt32LE(4)]).toEqual([7, -8]);
    } finally {
      await reader.close();
    }
  });
});

describe('createSafetensorsWriter', () => {
  it('writes header then tensors in order, padded to 8 bytes, and reads back identical bytes', async () => {
    const path = join(tempDir(), 'out.safetensors');
    const a = tensorData('F32', 6);
    const b = tensorData('BF16', 5);
    const writer = await createSafetensorsWriter(path, [
      { name: 'a', dtype: 'F32', shape: [2, 3] },
      { name: 'b', dtype: 'BF16', shape: [5] },
    ], { metadata: { format: 'pt' } });
    expect(writer.next).toBe('a');
    await writer.writeTensor('a', a);
    await writer.writeTensor('b', b);
    expect(writer.next).toBeUndefined();
    await writer.close();
    const bytes = readFileSync(path);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    expect((8 + headerLength) % 8).toBe(0);
    expect(JSON.parse(bytes.subarray(8, 8 + headerLength).toString())).toEqual({
      __metadata__: { format: 'pt' },
      a: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] },
      b: { dtype: 'BF16', shape: [5], data_offsets: [24, 34] },
    });
    expect(Buffer.compare(bytes.subarray(8 + headerLength), Buffer.concat([a, b]))).toBe(0);
    expect(bytes.length).toBe(writer.header.fileSize);
  });

  it('refuses out-of-order or wrongly sized tensors, and removes a file left incomplete', async () => {
    const path = join(tempDir(), 'partial.safetensors');
    const writer = await createSafetensorsWriter(path, [
      { name: 'a', dtype: 'F16', shape: [2] },
      { name: 'b', dtype: 'F16', shape: [2] },
    ]);
    await expect(writer.writeTensor('b', new Uint8Array(4))).rejects.toThrow(/expected "a", got "b"/);
    await expect(writer.writeTensor('a', new Uint8Array(3))).rejects.toThrow(/needs 4 bytes, got 3/);
    await writer.writeTensor('a', new Uint8Array(4));
    await expect(writer.close()).rejects.toThrow(/1 declared tensor\(s\) were never written/);
    expect(existsSync(path)).toBe(false);
  });

  it('writes any tensor name JSON can hold, "__proto__" and "constructor" included, and reads it back', async () => {
    const path = join(tempDir(), 'names.safetensors');
    const data = tensorData('F32', 2);
    await writeSafetensorsFile(path, [
      { name: '__proto__', dtype: 'F32', shape: [2], data },
      { name: 'constructor', dtype: 'F32', shape: [2], data },
    ]);
    const header = await readSafetensorsHeader(path);
    expect(header.tensors.map((t) => t.name)).toEqual(['__proto__', 'constructor']);
    const reader = await openSafetensors(path);
    try {
      expect(Buffer.compare(await reader.readTensor('__proto__'), Buffer.from(data))).toBe(0);
    } finally {
      await reader.close();
    }
    await expect(createSafetensorsWriter(path, [{ name: '__proto__', dtype: 'F32', shape: [1] }, { name: '__proto__', dtype: 'F32', shape: [1] }])).rejects.toThrow(/declared twice/);
  });

  it('refuses duplicate names, unknown dtypes and sub-byte shapes up front', async () => {
    const path = join(tempDir(), 'x.safetensors');
    await expect(createSafetensorsWriter(path, [{ name: 'a', dtype: 'F32', shape: [1] }, { name: 'a', dtype: 'F32', shape: [1] }])).rejects.toThrow(/declared twice/);
    await expect(createSafetensorsWriter(path, [{ name: 'a', dtype: 'F12' as never, shape: [1] }])).rejects.toThrow(/unknown dtype/);
    await expect(createSafetensorsWriter(path, [{ name: 'a', dtype: 'F4', shape: [3] }])).rejects.toThrow(/do not fill whole bytes/);
    expect(existsSync(path)).toBe(false);
  });
});

describe('transpose2d', () => {
  const reference = (data: Uint8Array, rows: number, cols: number, size: number) => {
    const out = new Uint8Array(data.length);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) for (let k = 0; k < size; k++) out[(c * rows + r) * size + k] = data[(r * cols + c) * size + k]!;
    return out;
  };

  it.each([1, 2, 3, 4, 8])('moves %i-byte elements without decoding them, also from unaligned input', (size) => {
    const rows = 3;
    const cols = 5;
    const backing = new Uint8Array(rows * cols * size + 1);
    for (let i = 0; i < backing.length; i++) backing[i] = (i * 37 + 11) & 0xff;
    for (const data of [backing.subarray(0, rows * cols * size), backing.subarray(1)]) {
      const out = transpose2d(data, rows, cols, size);
      expect(Buffer.compare(out, Buffer.from(reference(data, rows, cols, size)))).toBe(0);
      expect(Buffer.compare(transpose2d(out, cols, rows, size), Buffer.from(data))).toBe(0);
    }
  });

  it('checks the byte length', () => {
    expect(() => transpose2d(new Uint8Array(10), 2, 3, 2)).toThrow(/has 12 bytes, got 10/);
    expect(dtypeByteSize('BF16')).toBe(2);
    expect(() => dtypeByteSize('F4')).toThrow(InvalidArgumentError);
  });
});
