/**
 * `ArtifactUploader` is generic in its stage: a kind the stage does not have is a compile error.
 * The `@ts-expect-error` lines are checked by `npm run typecheck` (tsconfig covers test/): if a
 * wrong kind ever compiled again, the directive itself would fail the typecheck. At run time the
 * same calls are refused with the typed error, before anything is read.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { ArtifactUploader, InvalidArgumentError, type ArtifactKind, type StageName } from '../../src/index.js';

describe('ArtifactUploader<S>', () => {
  it('takes its stage type from the options', async () => {
    const uploader = new ArtifactUploader({ stage: 'hpo', env: {} });
    expectTypeOf(uploader.stage).toEqualTypeOf<'hpo'>();
    expectTypeOf<Parameters<typeof uploader.uploadCheckpointArchive>[1]>().exclude<undefined>().toHaveProperty('kind').toEqualTypeOf<
      'bestTrialArchive' | 'trialCheckpoints' | undefined
    >();
    await uploader.close();
    expect(uploader.stage).toBe('hpo');
  });

  it("refuses another stage's kind at compile time and at run time", async () => {
    const uploader = new ArtifactUploader({ stage: 'training', env: {} });
    // @ts-expect-error 'results' is a benchmark kind, not a training one
    const wrongFile = uploader.uploadFile('missing.json', { kind: 'results' });
    await expect(wrongFile).rejects.toThrow(InvalidArgumentError);
    await expect(wrongFile).rejects.toThrow(/Unknown artifact kind "results" for stage "training"/);
    // @ts-expect-error 'bestTrialArchive' belongs to hpo
    const wrongArchive = uploader.uploadCheckpointArchive('missing.tar.gz', { kind: 'bestTrialArchive' });
    await expect(wrongArchive).rejects.toThrow(/Unknown artifact kind "bestTrialArchive" for stage "training"/);
    await uploader.close();
  });

  it('accepts every kind when the stage is only known at run time', async () => {
    const stage = 'benchmark' as StageName;
    const uploader = new ArtifactUploader({ stage, env: {} });
    expectTypeOf<NonNullable<Parameters<typeof uploader.uploadFile>[1]>['kind']>().toEqualTypeOf<ArtifactKind | undefined>();
    // Compiles (any kind of any stage), and is checked against the stage at run time.
    await expect(uploader.uploadFile('missing.json', { kind: 'metrics' })).rejects.toThrow(/for stage "benchmark"/);
    await uploader.close();
  });
});
