/**
 * `RegistryError.uploaded` (set with `REGISTRY_AFTER_UPLOAD` by the stage helpers) has a type a
 * caller can read without a cast: core/ declares it structurally (it may not import the stage
 * result types), and the stage results must fit it. The `expectTypeOf` lines are checked by
 * `npm run typecheck` (tsconfig covers test/); the run-time half reads an error as a caller would.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  RegistryError,
  type ConversionArtifactsResult,
  type StageUploadBeforeRegistration,
  type TrainingArtifactsResult,
  type UploadedBeforeRegistration,
  type UploadResult,
} from '../../src/index.js';

describe('RegistryError.uploaded', () => {
  it('is typed as what the stage helpers return, not unknown, and read without a cast', () => {
    expectTypeOf<RegistryError['uploaded']>().toEqualTypeOf<StageUploadBeforeRegistration | undefined>();
    // What the helpers put there fits the type (a field renamed in UploadResult fails here).
    expectTypeOf<UploadResult>().toExtend<UploadedBeforeRegistration>();
    expectTypeOf<ConversionArtifactsResult>().toExtend<StageUploadBeforeRegistration>();
    expectTypeOf<TrainingArtifactsResult>().toExtend<StageUploadBeforeRegistration>();
    // `'checkpoint' in` tells a training result from a conversion one.
    expectTypeOf<Extract<StageUploadBeforeRegistration, { checkpoint: unknown }>['checkpoint']>().toEqualTypeOf<UploadedBeforeRegistration>();

    // Read as a caller reads it, without a cast: the run and the files of the upload that happened.
    const checkpoint: UploadedBeforeRegistration = {
      status: 'uploaded',
      runId: 'r1',
      artifactPath: 'checkpoint',
      files: [{ localPath: '/ckpt/adapter_model.safetensors', artifactPath: 'checkpoint/adapter_model.safetensors', size: 8, status: 'uploaded' }],
    };
    const error: unknown = new RegistryError('REGISTRY_AFTER_UPLOAD', 'registering failed', { runId: 'r1', artifactPath: 'checkpoint', uploaded: { checkpoint } });

    if (!(error instanceof RegistryError) || error.uploaded === undefined) throw new Error('expected a RegistryError with `uploaded`');
    const upload = 'checkpoint' in error.uploaded ? error.uploaded.checkpoint : error.uploaded;
    expect(upload.runId).toBe('r1');
    expect(upload.files.map((f) => f.artifactPath)).toEqual(['checkpoint/adapter_model.safetensors']);
  });
});
