/** Run resolution: explicit > active (withRun, then the process run) > MLFLOW_RUN_ID. */
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { activeRun, getMlflowRunId, resolveMlflowRunId, runState, withRun, type ActiveRun } from '../../src/run/run-context.js';

const A = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const B = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
const ENV_ID = 'eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee';
const env = { MLFLOW_RUN_ID: ENV_ID };
const run = (runId: string): ActiveRun => ({ runId, owned: true });
const tick = () => new Promise((r) => setTimeout(r, 1));

afterEach(() => {
  runState().processRun = undefined;
});

describe('getMlflowRunId', () => {
  it('explicit beats active beats MLFLOW_RUN_ID beats nothing', () => {
    expect(getMlflowRunId(undefined, { env: {} })).toBeUndefined();
    expect(getMlflowRunId(undefined, { env })).toBe(ENV_ID);
    expect(resolveMlflowRunId(undefined, { env })).toEqual({ runId: ENV_ID, source: 'env' });
    runState().processRun = run(A);
    expect(getMlflowRunId(undefined, { env })).toBe(A);
    expect(resolveMlflowRunId(undefined, { env })).toMatchObject({ runId: A, source: 'active' });
    withRun(B, () => {
      expect(getMlflowRunId(undefined, { env })).toBe(B);
      expect(getMlflowRunId(A, { env })).toBe(A);
      expect(resolveMlflowRunId(A, { env })).toEqual({ runId: A, source: 'explicit' });
    });
    expect(getMlflowRunId(undefined, { env })).toBe(A);
  });

  it('reads process.env by default, and treats an empty MLFLOW_RUN_ID as unset', () => {
    const saved = process.env.MLFLOW_RUN_ID;
    try {
      process.env.MLFLOW_RUN_ID = ENV_ID;
      expect(getMlflowRunId()).toBe(ENV_ID);
      process.env.MLFLOW_RUN_ID = '';
      expect(getMlflowRunId()).toBeUndefined();
      expect(getMlflowRunId('')).toBeUndefined();
    } finally {
      if (saved === undefined) delete process.env.MLFLOW_RUN_ID;
      else process.env.MLFLOW_RUN_ID = saved;
    }
  });

  it('refuses ids MLflow would refuse, naming where they came from', () => {
    expect(() => getMlflowRunId('not a run')).toThrow(InvalidArgumentError);
    expect(() => getMlflowRunId(undefined, { env: { MLFLOW_RUN_ID: '../etc' } })).toThrow(/MLFLOW_RUN_ID "\.\.\/etc"/);
    expect(() => withRun('a b', () => 1)).toThrow(InvalidArgumentError);
  });
});

describe('withRun', () => {
  it('keeps concurrent async work on its own run', async () => {
    runState().processRun = run(A);
    const seen: Record<string, string[]> = { b: [], c: [] };
    const job = async (id: string, key: string) => {
      for (let i = 0; i < 5; i++) {
        await tick();
        seen[key]!.push(getMlflowRunId(undefined, { env: {} }) ?? 'none');
        await Promise.resolve();
      }
      return activeRun()?.runId;
    };
    const C = 'cccccccccccccccccccccccccccccccc';
    const results = await Promise.all([withRun(B, () => job(B, 'b')), withRun(run(C), () => job(C, 'c'))]);
    expect(results).toEqual([B, C]);
    expect(seen.b).toEqual(Array(5).fill(B));
    expect(seen.c).toEqual(Array(5).fill(C));
    // Outside, the process run is untouched.
    expect(activeRun()?.runId).toBe(A);
  });

  it('nests, returns what fn returns, and unwinds on throw', () => {
    expect(withRun(A, () => withRun(B, () => activeRun()?.runId))).toBe(B);
    expect(() =>
      withRun(A, () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(activeRun()).toBeUndefined();
  });

  it('shares its state through a registered global symbol (ESM and CJS builds in one process)', () => {
    const key = Symbol.for('artifact-uploader.run-state.v1');
    expect((globalThis as Record<symbol, unknown>)[key]).toBe(runState());
  });
});
