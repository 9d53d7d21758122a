/** Finding an ONNX model's external-data files: conventional names and the model's own `location` entries. */
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, LocalPathError } from '../../src/core/errors.js';
import { externalDataLocations, findOnnxExternalData, MAX_SCANNED_MODEL_BYTES } from '../../src/model/onnx-external-data.js';
import { scratch, writeTree } from '../uploader/helpers.js';
import { onnxModelWithExternalData } from '../stages/onnx-fixtures.js';

describe('ONNX external data', () => {
  it('reads the location entries of a model, in order, without repeats', () => {
    const long = `${'d/'.repeat(100)}weights.bin`; // a two-byte varint length
    expect(externalDataLocations(onnxModelWithExternalData(['a.bin', long, 'a.bin']))).toEqual(['a.bin', long]);
    expect(externalDataLocations(Buffer.from('no tensors here'))).toEqual([]);
  });

  it('finds the conventional names and the files the model names', async () => {
    const dir = writeTree(scratch(), {
      'model.onnx': onnxModelWithExternalData(['weights/part-1.bin']),
      'model.onnx.data': 'torch export',
      'model.data': 'stem',
      'weights/part-1.bin': 'w',
      'other.onnx.data': 'not ours',
    });
    expect(await findOnnxExternalData(join(dir, 'model.onnx'))).toEqual([join(dir, 'model.data'), join(dir, 'model.onnx.data'), join(dir, 'weights/part-1.bin')]);
    const plain = writeTree(scratch(), { 'm.onnx': 'inline weights' });
    expect(await findOnnxExternalData(join(plain, 'm.onnx'))).toEqual([]);
  });

  it('refuses a model that names a missing file or one outside its directory', async () => {
    const missing = writeTree(scratch(), { 'model.onnx': onnxModelWithExternalData(['gone.bin']) });
    await expect(findOnnxExternalData(join(missing, 'model.onnx'))).rejects.toMatchObject({ name: 'LocalPathError', code: 'PATH_NOT_FOUND' });
    await expect(findOnnxExternalData(join(missing, 'model.onnx'))).rejects.toBeInstanceOf(LocalPathError);
    const escaping = writeTree(scratch(), { 'model.onnx': onnxModelWithExternalData(['../elsewhere.bin']) });
    await expect(findOnnxExternalData(join(escaping, 'model.onnx'))).rejects.toBeInstanceOf(InvalidArgumentError);
    for (const location of ['/etc/hostname', 'sub/../../elsewhere.bin']) {
      const dir = writeTree(scratch(), { 'model.onnx': onnxModelWithExternalData([location]) });
      await expect(findOnnxExternalData(join(dir, 'model.onnx'))).rejects.toMatchObject({ name: 'InvalidArgumentError', message: expect.stringContaining('outside its directory') });
    }
  });

  it('says what is wrong with a name that is no data file: the model\'s own directory, a folder, the model itself', async () => {
    for (const location of ['.', './', 'sub/..']) {
      const dir = writeTree(scratch(), { 'model.onnx': onnxModelWithExternalData([location]), 'sub/x': 'x' });
      const error = await findOnnxExternalData(join(dir, 'model.onnx')).catch((e: unknown) => e);
      expect(error).toMatchObject({ name: 'InvalidArgumentError', argument: 'onnxPath' });
      expect((error as Error).message).toContain(`${JSON.stringify(location)}, which is the model's own directory, not a file`);
      expect((error as Error).message).not.toContain('outside');
      expect((error as { hint?: string }).hint).toContain('location=');
    }
    const folder = writeTree(scratch(), { 'model.onnx': onnxModelWithExternalData(['weights']), 'weights/part-1.bin': 'w' });
    const notFile = await findOnnxExternalData(join(folder, 'model.onnx')).catch((e: unknown) => e);
    expect(notFile).toMatchObject({ name: 'LocalPathError', code: 'NOT_A_FILE', path: join(folder, 'weights') });
    expect((notFile as Error).message).toContain('"weights", which is a directory, not a file of tensors');
    expect((notFile as Error).message).not.toContain('does not exist');
    expect((notFile as { hint?: string }).hint).toMatch(/re-export/);
    for (const location of ['model.onnx', './model.onnx']) {
      const self = writeTree(scratch(), { 'model.onnx': onnxModelWithExternalData([location]) });
      const error = await findOnnxExternalData(join(self, 'model.onnx')).catch((e: unknown) => e);
      expect(error).toMatchObject({ name: 'InvalidArgumentError', argument: 'onnxPath' });
      expect((error as Error).message).toContain('names itself as its external-data file');
      expect((error as { hint?: string }).hint).toContain('model.onnx.data');
    }
  });

  it('does not scan models above the size limit (their weights are inline)', async () => {
    const dir = scratch();
    const path = join(dir, 'big.onnx');
    writeFileSync(path, onnxModelWithExternalData(['gone.bin']));
    truncateSync(path, MAX_SCANNED_MODEL_BYTES + 1); // sparse: costs no disk
    expect(await findOnnxExternalData(path)).toEqual([]);
  });
});
