/** MLflow's id, key and batch rules, and how a batch is split into requests. */
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/core/errors.js';
import {
  assertEntityKey,
  assertExperimentId,
  assertExperimentName,
  assertRunId,
  chunkBatch,
  MLFLOW_LIMITS,
  normalizeBatch,
  normalizeListPath,
  RUN_ID_PATTERN,
} from '../../src/mlflow/tracking-validation.js';

describe('ids and keys', () => {
  it('accepts the run ids MLflow accepts and refuses the rest by name', () => {
    for (const ok of ['0123456789abcdef0123456789abcdef', 'a', 'run_1-x', 'aÄbc', `a${'b'.repeat(255)}`]) expect(RUN_ID_PATTERN.test(ok)).toBe(true);
    for (const bad of ['', 'Äbc', '-a', '_a', 'a b', 'a/b', '../x', 'a.b', `a${'b'.repeat(256)}`, ' abc']) expect(RUN_ID_PATTERN.test(bad)).toBe(false);
    expect(() => assertRunId('a b', 'MLFLOW_RUN_ID')).toThrow(InvalidArgumentError);
    try {
      assertRunId('a b', 'MLFLOW_RUN_ID');
    } catch (error) {
      expect(error).toMatchObject({ argument: 'MLFLOW_RUN_ID', code: 'INVALID_ARGUMENT' });
      expect((error as Error).message).toMatch(/MLFLOW_RUN_ID "a b" is not a valid MLflow run id/);
    }
    expect(() => assertRunId(42)).toThrow(/runId 42/);
  });

  it('checks experiment ids and names', () => {
    assertExperimentId('0');
    assertExperimentId('931883952965541889');
    expect(() => assertExperimentId(`1${'0'.repeat(64)}`)).toThrow(InvalidArgumentError);
    expect(() => assertExperimentId('1/2')).toThrow(InvalidArgumentError);
    expect(() => assertExperimentName('  ')).toThrow(/non-empty/);
    expect(() => assertExperimentName('x'.repeat(501))).toThrow(/at most 500/);
  });

  it('counts lengths as MLflow does (Python len: code points), so names and values beyond U+FFFF get the full limit', () => {
    // mlflow/utils/validation.py: `len(experiment_name) > MAX_EXPERIMENT_NAME_LENGTH`, and the same
    // `len()` for param and tag values; an emoji is one there and two UTF-16 units in JavaScript.
    assertExperimentName('🚀'.repeat(500));
    expect(() => assertExperimentName('🚀'.repeat(501))).toThrow(/is 501 characters long; MLflow allows at most 500/);
    expect(normalizeBatch({ params: { p: '🚀'.repeat(6000) }, tags: { t: '模型🚀'.repeat(2666) } }).tags[0]!.value).toHaveLength(2666 * 4);
    expect(() => normalizeBatch({ tags: { t: '🚀'.repeat(8001) } })).toThrow(/is 8001 characters long; MLflow allows at most 8000/);
    expect(() => normalizeBatch({ params: { p: '🚀'.repeat(6001) } })).toThrow(/at most 6000/);
  });

  it('checks metric, param and tag keys like MLflow on POSIX', () => {
    for (const ok of ['loss', 'eval/acc', 'a b', 'x:y', 'mlflow.runName', 'モデル', 'a-b_c.d']) assertEntityKey(ok, 'tag');
    for (const bad of ['', 'a\u0000b', 'a\nb', 'a#b', '/abs', 'trailing/', 'a//b', './a', 'a/../b', '..', `k${'x'.repeat(250)}`]) {
      expect(() => assertEntityKey(bad, 'metric'), bad).toThrow(InvalidArgumentError);
    }
  });

  it('normalizes list paths and refuses escapes', () => {
    expect(normalizeListPath(undefined)).toBe('');
    expect(normalizeListPath('/model/')).toBe('model');
    expect(() => normalizeListPath('a/../../b')).toThrow(/\.\./);
  });
});

describe('normalizeBatch', () => {
  it('fills metric defaults and stringifies params', () => {
    const batch = normalizeBatch({ metrics: [{ key: 'm', value: 1 }], params: { lr: 0.001, flag: false, name: 'x' }, tags: { t: 'v' } }, 1234);
    expect(batch).toEqual({
      metrics: [{ key: 'm', value: 1, timestamp: 1234, step: 0 }],
      params: [
        { key: 'lr', value: '0.001' },
        { key: 'flag', value: 'false' },
        { key: 'name', value: 'x' },
      ],
      tags: [{ key: 't', value: 'v' }],
    });
  });

  it('refuses what MLflow would refuse, naming the entry', () => {
    expect(() => normalizeBatch({ metrics: [{ key: 'm', value: '1' as unknown as number }] })).toThrow(/metrics\[0\] \(m\): value must be a number/);
    expect(() => normalizeBatch({ metrics: [{ key: 'm', value: 1, timestamp: -1 }] })).toThrow(/timestamp/);
    expect(() => normalizeBatch({ metrics: [{ key: 'm', value: 1, step: 1.5 }] })).toThrow(/step/);
    expect(() => normalizeBatch({ params: { p: 'x'.repeat(6001) } })).toThrow(/at most 6000/);
    expect(() => normalizeBatch({ params: { p: null as unknown as string } })).toThrow(/string, number or boolean/);
    expect(() => normalizeBatch({ tags: { t: 'x'.repeat(8001) } })).toThrow(/at most 8000/);
    expect(() => normalizeBatch({ tags: { t: 1 as unknown as string } })).toThrow(/must be a string/);
  });
});

describe('chunkBatch', () => {
  const metric = (i: number) => ({ key: `m${i}`, value: i, timestamp: 1, step: 0 });
  const kv = (prefix: string, n: number, value = 'v') => Array.from({ length: n }, (_, i) => ({ key: `${prefix}${i}`, value }));
  const sizes = (chunks: ReturnType<typeof chunkBatch>) => chunks.map((c) => [c.params.length, c.tags.length, c.metrics.length]);

  it('packs like the Python client: params and tags side by side, topped up with metrics', () => {
    expect(chunkBatch({ params: [], tags: [], metrics: [] })).toEqual([]);
    expect(sizes(chunkBatch({ params: kv('p', 150), tags: kv('t', 120), metrics: Array.from({ length: 1502 }, (_, i) => metric(i)) }))).toEqual([
      [100, 100, 800],
      [50, 20, 702],
    ]);
    expect(sizes(chunkBatch({ params: [], tags: kv('t', 5), metrics: Array.from({ length: 2500 }, (_, i) => metric(i)) }))).toEqual([
      [0, 5, 995],
      [0, 0, 1000],
      [0, 0, 505],
    ]);
  });

  it('keeps every request under the server\'s 1 MB body limit', () => {
    const chunks = chunkBatch({ params: kv('p', 100, 'x'.repeat(6000)), tags: kv('t', 100, 'y'.repeat(8000)), metrics: [metric(0)] });
    expect(chunks.length).toBeGreaterThan(1);
    for (const c of chunks) expect(Buffer.byteLength(JSON.stringify({ run_id: 'r'.repeat(256), ...c }))).toBeLessThan(MLFLOW_LIMITS.batchRequestBytes);
    expect(chunks.flatMap((c) => c.params)).toHaveLength(100);
    expect(chunks.flatMap((c) => c.tags)).toHaveLength(100);
    expect(chunks.flatMap((c) => c.metrics)).toHaveLength(1);
  });
});
