/** Finding an ONNX model's external-data files: conventional names and the model's own `location` entries. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, LocalPathError } from '../../src/core/errors.js';
import { externalDataLocations, findOnnxExternalData } from '../../src/model/onnx-external-data.js';
import { scratch, writeTree } from '../uploader/helpers.js';
import { attribute, externalTensor, graph, model, node, onnxModelWithExternalData, writeOnnxModelWithInlineWeights } from '../stages/onnx-fixtures.js';

describe('ONNX external data', () => {
  it('reads the location entries of a model, in order, without repeats', async () => {
    const long = `${'d/'.repeat(100)}weights.bin`; // a two-byte varint length
    expect(await externalDataLocations(onnxModelWithExternalData(['a.bin', long, 'a.bin']))).toEqual(['a.bin', long]);
    expect(await externalDataLocations(Buffer.from('no tensors here'))).toEqual([]);
  });

  it('finds the external tensors onnx loads from files: initializers and node attributes, in subgraphs too', async () => {
    // onnx's load_external_data_for_model (external_data_helper.py) reads every tensor of
    // _get_all_tensors whose data_location is EXTERNAL: graph initializers and attribute tensors
    // (Constant values), in subgraphs (If, Loop) and model functions as well. These bytes load
    // with onnx 1.23, which lists the same files.
    const bytes = model(
      graph(
        [
          node('Softmax', [attribute.int('axis', -1)]), // a 10-byte varint on the way
          node('Constant', [attribute.tensor('value', externalTensor('c', 'const.bin'))]),
          node('If', [attribute.graph('then_branch', graph([node('Relu', [])], [externalTensor('t', 'then.bin')]))]),
        ],
        [externalTensor('inline', 'not-needed.bin', 0), externalTensor('w', 'main.bin')],
      ),
      [{ name: 'scaled', nodes: [node('Constant', [attribute.tensor('value', externalTensor('s', 'function.bin'))])] }],
    );
    expect(await externalDataLocations(bytes)).toEqual(['const.bin', 'then.bin', 'main.bin', 'function.bin']);
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

  it('refuses a tensor whose offset or length runs past its data file, as onnx does, and lists a file two tensors share once', async () => {
    // onnx (external_data_helper.py, _validate_external_data_file_bounds) refuses an offset past
    // the file's end and a length past what follows the offset: such a model does not load, and
    // its upload was reported as complete.
    const modelOf = (spans: { offset?: string; length?: string }[]) =>
      model(graph([node('Relu', [])], spans.map((span, i) => externalTensor(`w${i}`, 'weights.bin', 1, span))));
    const shared = writeTree(scratch(), { 'model.onnx': modelOf([{ offset: '0', length: '8' }, { offset: '8', length: '8' }, { offset: '16' }]), 'weights.bin': Buffer.alloc(16) });
    expect(await findOnnxExternalData(join(shared, 'model.onnx'))).toEqual([join(shared, 'weights.bin')]);
    const cases: [{ offset?: string; length?: string }, string][] = [
      [{ offset: '32' }, 'tensor "w1" at offset 32 of "weights.bin", past the end of that file (16 bytes)'],
      [{ offset: '8', length: '16' }, 'tensor "w1" as 16 bytes at offset 8 of "weights.bin", which has only 8 bytes from there (16 bytes in all)'],
      [{ length: '17' }, 'tensor "w1" as 17 bytes at offset 0 of "weights.bin", which has only 16 bytes from there (16 bytes in all)'],
      [{ offset: '-8' }, 'tensor "w1" at offset "-8" of "weights.bin", which is no non-negative integer'],
      [{ offset: '0', length: '1e3' }, 'tensor "w1" with length "1e3" in "weights.bin", which is no non-negative integer'],
    ];
    for (const [span, message] of cases) {
      const dir = writeTree(scratch(), { 'model.onnx': modelOf([{ offset: '0', length: '8' }, span]), 'weights.bin': Buffer.alloc(16) });
      const error = await findOnnxExternalData(join(dir, 'model.onnx')).catch((e: unknown) => e);
      expect(error).toMatchObject({ name: 'InvalidArgumentError', argument: 'onnxPath' });
      expect((error as Error).message).toContain(message);
      expect((error as { hint?: string }).hint).toMatch(/truncated or belongs to another export/);
    }
  });

  it('scans large models too: inline weights are skipped, the external files after them are found', async () => {
    // 1.5 GiB of raw_data inline (a hole in a sparse file), then tensors stored in files: the
    // scan up to 64 MiB left such a model's weights.bin behind, and the model did not load.
    const dir = writeTree(scratch(), { 'weights.bin': 'w' });
    writeOnnxModelWithInlineWeights(join(dir, 'big.onnx'), 1.5 * 1024 ** 3, ['weights.bin']);
    expect(await findOnnxExternalData(join(dir, 'big.onnx'))).toEqual([join(dir, 'weights.bin')]);
    writeOnnxModelWithInlineWeights(join(dir, 'gone.onnx'), 100 * 1024 ** 2, ['gone.bin']);
    await expect(findOnnxExternalData(join(dir, 'gone.onnx'))).rejects.toMatchObject({ name: 'LocalPathError', code: 'PATH_NOT_FOUND', path: join(dir, 'gone.bin') });
    writeOnnxModelWithInlineWeights(join(dir, 'inline.onnx'), 100 * 1024 ** 2, []);
    expect(await findOnnxExternalData(join(dir, 'inline.onnx'))).toEqual([]);
  });
});
