/**
 * The four stage helpers: on ./mlruns (fast: layout, config gates, input checks, the HPO
 * "two trials, one best checkpoint" case) and on a real MLflow server, read back by the
 * Python client in one process, with the HPO archive extracted by GNU tar.
 */
import { existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createCheckpointArchive } from '../../src/archive/create-checkpoint-archive.js';
import { writeManifest, type CheckpointManifest } from '../../src/archive/manifest.js';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { uploadBenchmarkArtifacts } from '../../src/stages/benchmark.js';
import { uploadConversionArtifacts } from '../../src/stages/conversion.js';
import { uploadHpoArtifacts } from '../../src/stages/hpo.js';
import { uploadTrainingArtifacts } from '../../src/stages/training.js';
import { resolveArtifactStore } from '../../src/stores/resolve.js';
import { describeWithServers, mlflowServer } from '../support/servers.js';
import { gnuTarExtract, hashTree, localRun, pythonDownloadAll, recordingLogger, scratch, serverRun, sha256, wrappedStore, writeTree } from '../uploader/helpers.js';
import { externalTensor, graph, model, node, onnxModelWithExternalData } from './onnx-fixtures.js';

function pipelineOutputs() {
  return writeTree(scratch('au-stages-'), {
    'ckpt/adapter_model.safetensors': Buffer.alloc(3000, 1),
    'ckpt/adapter_config.json': '{"r": 8}',
    'ckpt/.ipynb_checkpoints/old.json': 'autosave',
    'metrics.json': '{"loss": 0.2}',
    'onnx/model.onnx': onnxModelWithExternalData(['model.weights']),
    'onnx/model.weights': Buffer.alloc(900, 2),
    'onnx/model.onnx.data': Buffer.alloc(100, 3),
    'bench/latency.json': '{"p50": 3}',
    'bench/plots/p99.csv': 'a,b',
    'bench/plots/p50.csv': 'c,d',
  });
}

/**
 * `uploadHpoArtifacts(options)` with its archive stored and its manifest held until `manifestMay`
 * resolves: resolves once the archive is in the run, to the call's result still pending (in an
 * object: an async function would wait for a promise it returns).
 */
async function archiveStoredManifestHeld(options: Parameters<typeof uploadHpoArtifacts>[0], manifestMay: Promise<void>): Promise<{ result: ReturnType<typeof uploadHpoArtifacts> }> {
  let archiveStored!: () => void;
  const archive = new Promise<void>((resolve) => (archiveStored = resolve));
  const pending = uploadHpoArtifacts({
    ...options,
    resolveStore: wrappedStore(async (p, upload) => {
      if (p.endsWith('.manifest.json')) await manifestMay;
      const stored = await upload();
      if (p.endsWith('.tar.gz')) archiveStored();
      return stored;
    }),
  });
  // A failure before the archive is stored ends the wait too.
  await Promise.race([archive, pending]);
  return { result: pending };
}

describe('stage helpers on ./mlruns', () => {
  it('training: the checkpoint (skip list applied) and the metrics JSON, each with its result', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const out = pipelineOutputs();
    const { checkpoint, metrics } = await uploadTrainingArtifacts({
      checkpointDir: join(out, 'ckpt'),
      metricsJsonPath: join(out, 'metrics.json'),
      runId: run.runId,
      trackingUri,
      env: {},
    });
    expect(checkpoint).toMatchObject({ status: 'uploaded', stage: 'training', kind: 'checkpoint', artifactPath: 'checkpoint' });
    expect(checkpoint.skippedFiles.map((s) => s.path)).toEqual(['.ipynb_checkpoints']);
    expect(metrics).toMatchObject({ status: 'uploaded', kind: 'metrics', artifactPath: 'metrics/metrics.json' });
    expect(Object.keys(hashTree(artifactsDir)).sort()).toEqual(['checkpoint/adapter_config.json', 'checkpoint/adapter_model.safetensors', 'metrics/metrics.json']);
    // No metrics file: only the checkpoint result.
    expect(await uploadTrainingArtifacts({ checkpointDir: join(out, 'ckpt'), runId: run.runId, trackingUri, env: {} })).not.toHaveProperty('metrics');
  });

  it('checks every path before sending anything, and refuses a contradicting stage', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const out = pipelineOutputs();
    const base = { runId: run.runId, trackingUri, env: {} };
    await expect(uploadTrainingArtifacts({ ...base, checkpointDir: join(out, 'ckpt'), metricsJsonPath: join(out, 'nope.json') })).rejects.toMatchObject({ code: 'PATH_NOT_FOUND' });
    await expect(uploadBenchmarkArtifacts({ ...base, resultsPaths: [join(out, 'bench/latency.json'), join(out, 'missing.json')] })).rejects.toMatchObject({ code: 'PATH_NOT_FOUND' });
    // Two results of one name (two files, or a file and a directory) would land on one artifact.
    const twins = writeTree(scratch('au-twins-'), { 'r1/res.json': 'one', 'r2/res.json': 'twotwo', 'r3/plots/a.csv': 'x', 'plots': 'file' });
    await expect(uploadBenchmarkArtifacts({ ...base, resultsPaths: [join(twins, 'r1/res.json'), join(twins, 'r2/res.json')] })).rejects.toMatchObject({
      name: 'InvalidArgumentError',
      argument: 'resultsPaths',
      message: expect.stringMatching(/r1\/res\.json and .*r2\/res\.json would both be uploaded as benchmark\/res\.json/),
    });
    await expect(uploadBenchmarkArtifacts({ ...base, resultsPaths: [join(twins, 'r3/plots'), join(twins, 'plots')] })).rejects.toMatchObject({ argument: 'resultsPaths' });
    // A hole in the list (an unset variable's path): says what to pass, not only what came.
    for (const hole of [undefined, 42, '']) {
      const error = await uploadBenchmarkArtifacts({ ...base, resultsPaths: [join(out, 'bench/latency.json'), hole as unknown as string] }).catch((e: unknown) => e);
      expect(error).toMatchObject({ name: 'InvalidArgumentError', message: expect.stringMatching(/uploadBenchmarkArtifacts\(\) needs the path of a file, got (undefined|number|an empty string)\./) });
      expect((error as InvalidArgumentError).hint).toMatch(/Pass the file's path as a non-empty string/);
    }
    expect(existsSync(artifactsDir) ? Object.keys(hashTree(artifactsDir)) : []).toEqual([]);
    await expect(uploadTrainingArtifacts({ ...base, stage: 'hpo', checkpointDir: join(out, 'ckpt') })).rejects.toMatchObject({ name: 'InvalidArgumentError', argument: 'stage' });
    await expect(uploadHpoArtifacts({ ...base })).rejects.toThrow(/exactly one of `checkpointDir`/);
    await expect(uploadHpoArtifacts({ ...base, checkpointDir: join(out, 'ckpt'), trialId: 'a/b' })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(uploadConversionArtifacts({ ...base, onnxPath: join(out, 'onnx') })).rejects.toMatchObject({ code: 'NOT_A_FILE' });
    // A tensor its data file does not hold (a truncated copy): onnx refuses to load the model, so it is refused before any byte.
    const truncated = writeTree(scratch('au-stages-'), {
      'model.onnx': model(graph([node('Relu', [])], [externalTensor('w0', 'model.weights', 1, { offset: '0', length: '901' })])),
      'model.weights': Buffer.alloc(900, 2),
    });
    await expect(uploadConversionArtifacts({ ...base, onnxPath: join(truncated, 'model.onnx') })).rejects.toMatchObject({ name: 'InvalidArgumentError', argument: 'onnxPath' });
    expect(existsSync(artifactsDir) ? Object.keys(hashTree(artifactsDir)) : []).toEqual([]);
    // No options at all (an untyped caller): typed, not a TypeError from destructuring.
    for (const helper of [uploadTrainingArtifacts, uploadConversionArtifacts, uploadBenchmarkArtifacts, uploadHpoArtifacts] as Array<(o: unknown) => Promise<unknown>>) {
      for (const options of [undefined, null]) {
        await expect(helper(options)).rejects.toMatchObject({ name: 'InvalidArgumentError', argument: 'options', message: `${helper.name}() needs an options object.` });
      }
    }
  });

  it("a misspelt field of a helper is refused naming the helper's own fields, before anything is sent", async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const out = pipelineOutputs();
    const base = { runId: run.runId, trackingUri, env: {} };
    const cases: Array<[() => Promise<unknown>, string, string, string]> = [
      [() => uploadTrainingArtifacts({ ...base, checkpointDir: join(out, 'ckpt'), metricJsonPath: join(out, 'metrics.json') } as never), 'metricJsonPath', 'metricsJsonPath', 'uploadTrainingArtifacts'],
      [() => uploadTrainingArtifacts({ ...base, checkpointdir: join(out, 'ckpt') } as never), 'checkpointdir', 'checkpointDir', 'uploadTrainingArtifacts'],
      [() => uploadConversionArtifacts({ ...base, onxPath: join(out, 'onnx/model.onnx') } as never), 'onxPath', 'onnxPath', 'uploadConversionArtifacts'],
      [() => uploadBenchmarkArtifacts({ ...base, resultPaths: [join(out, 'bench/latency.json')] } as never), 'resultPaths', 'resultsPaths', 'uploadBenchmarkArtifacts'],
      [() => uploadHpoArtifacts({ ...base, checkpointDir: join(out, 'ckpt'), trialID: 3 } as never), 'trialID', 'trialId', 'uploadHpoArtifacts'],
      [() => uploadHpoArtifacts({ ...base, checkpointDir: join(out, 'ckpt'), levle: 3 } as never), 'levle', 'level', 'uploadHpoArtifacts'],
    ];
    for (const [call, misspelt, meant, helper] of cases) {
      const error = (await call().then(() => undefined, (e: unknown) => e)) as InvalidArgumentError;
      expect(error, misspelt).toBeInstanceOf(InvalidArgumentError);
      expect(error.argument).toBe(misspelt);
      expect(error.message.startsWith(`Unknown option \`${misspelt}\` of ${helper}() (did you mean \`${meant}\`?). `), error.message).toBe(true);
      // The hint lists the helper's own fields first, then points at the uploader's options.
      expect(error.hint).toMatch(new RegExp(`^Remove it or rename it to \`${meant}\`\\. The options of ${helper}\\(\\) are its own: [^.]*\\b${meant}\\b[^.]*; and the uploader's: runId, `));
    }
    // An uploader option misspelt through a helper still suggests the uploader's name.
    await expect(uploadTrainingArtifacts({ ...base, checkpointDir: join(out, 'ckpt'), dryrun: true } as never)).rejects.toMatchObject({
      argument: 'dryrun',
      message: expect.stringMatching(/^Unknown option `dryrun` of uploadTrainingArtifacts\(\) \(did you mean `dryRun`\?\)\. /),
    });
    expect(existsSync(artifactsDir) ? Object.keys(hashTree(artifactsDir)) : []).toEqual([]);
  });

  it('what a later upload would refuse (a name MLflow cannot store, a dangling symlink) throws before the first one sends', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const out = writeTree(scratch('au-later-'), { 'ckpt/w.bin': 'w', 'metrics#1.json': '{}', 'latency.json': '1', 'plots/p#1.csv': 'x', 'plots2/a.csv': 'a' });
    symlinkSync('nowhere', join(out, 'plots2/dangling'));
    const base = { runId: run.runId, trackingUri, env: {} };
    await expect(uploadTrainingArtifacts({ ...base, checkpointDir: join(out, 'ckpt'), metricsJsonPath: join(out, 'metrics#1.json') })).rejects.toMatchObject({ code: 'INVALID_ARTIFACT_PATH' });
    await expect(uploadBenchmarkArtifacts({ ...base, resultsPaths: [join(out, 'latency.json'), join(out, 'plots')] })).rejects.toMatchObject({ code: 'INVALID_ARTIFACT_PATH' });
    await expect(uploadBenchmarkArtifacts({ ...base, resultsPaths: [join(out, 'latency.json'), join(out, 'plots2')] })).rejects.toMatchObject({ code: 'PATH_NOT_FOUND', message: expect.stringContaining('dangling') });
    // "Nothing was uploaded", as the errors say.
    expect(existsSync(artifactsDir) ? Object.keys(hashTree(artifactsDir)) : []).toEqual([]);
    // MLFLOW_SKIP_ARTIFACT_LOGGING still skips every upload without looking at the files.
    const skipped = await uploadBenchmarkArtifacts({ ...base, env: { MLFLOW_SKIP_ARTIFACT_LOGGING: 'true' }, resultsPaths: [join(out, 'latency.json'), join(out, 'plots')] });
    expect(skipped.map((r) => [r.status, r.reason])).toEqual([
      ['skipped', 'disabled-by-env'],
      ['skipped', 'disabled-by-env'],
    ]);
  });

  it('conversion, benchmark and hpo land where their docs say; config switches apply per kind', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const out = pipelineOutputs();
    const base = { runId: run.runId, trackingUri, env: {} };

    const onnx = await uploadConversionArtifacts({ ...base, onnxPath: join(out, 'onnx/model.onnx') });
    expect(onnx).toMatchObject({ status: 'uploaded', kind: 'onnxModel', artifactPath: 'onnx' });
    expect(onnx.files.map((f) => f.artifactPath).sort()).toEqual(['onnx/model.onnx', 'onnx/model.onnx.data', 'onnx/model.weights']);

    const bench = await uploadBenchmarkArtifacts({ ...base, resultsPaths: [join(out, 'bench/latency.json'), join(out, 'bench/plots')] });
    expect(bench.map((r) => [r.status, r.artifactPath])).toEqual([
      ['uploaded', 'benchmark/latency.json'],
      ['uploaded', 'benchmark/plots'],
    ]);

    const best = await uploadHpoArtifacts({ ...base, checkpointDir: join(out, 'ckpt') });
    expect(best).toMatchObject({ status: 'uploaded', kind: 'bestTrialArchive', artifactPath: 'best_trial_checkpoint.tar.gz', verification: { status: 'verified' } });
    const trial = await uploadHpoArtifacts({ ...base, checkpointDir: join(out, 'ckpt'), trialId: 17 });
    expect(trial).toMatchObject({ status: 'uploaded', kind: 'trialCheckpoints', artifactPath: 'trials/17/best_trial_checkpoint.tar.gz' });

    const archive = join(scratch(), 'trial-3.tar.gz');
    const manifestPath = join(scratch(), 'm.json');
    await writeManifest(await createCheckpointArchive(join(out, 'ckpt'), archive), manifestPath);
    // With a trialId the archive's own name goes into the path: a bad one is the file's to rename.
    const hashed = join(scratch(), 'trial#3.tar.gz');
    await createCheckpointArchive(join(out, 'ckpt'), hashed);
    const badName = await uploadHpoArtifacts({ ...base, archivePath: hashed, trialId: 3 }).catch((error: unknown) => error);
    expect(badName).toMatchObject({ code: 'INVALID_ARTIFACT_PATH', message: expect.stringMatching(/^Artifact path "trial#3\.tar\.gz" contains "#"/), hint: expect.stringMatching(/^Rename the file/) });
    // `level` cannot apply to an archive uploaded as it is: refused, not ignored.
    await expect(uploadHpoArtifacts({ ...base, archivePath: archive, manifest: manifestPath, trialId: 'trial-3', level: 9 })).rejects.toMatchObject({ name: 'InvalidArgumentError', argument: 'level' });
    const given = await uploadHpoArtifacts({ ...base, archivePath: archive, manifest: manifestPath, trialId: 'trial-3' });
    expect(given.files.map((f) => f.artifactPath)).toEqual(['trials/trial-3/trial-3.tar.gz', 'trials/trial-3/trial-3.manifest.json']);

    expect(Object.keys(hashTree(artifactsDir)).sort()).toEqual([
      'benchmark/latency.json',
      'benchmark/plots/p50.csv',
      'benchmark/plots/p99.csv',
      'best_trial_checkpoint.manifest.json',
      'best_trial_checkpoint.tar.gz',
      'onnx/model.onnx',
      'onnx/model.onnx.data',
      'onnx/model.weights',
      'trials/17/best_trial_checkpoint.manifest.json',
      'trials/17/best_trial_checkpoint.tar.gz',
      'trials/trial-3/trial-3.manifest.json',
      'trials/trial-3/trial-3.tar.gz',
    ]);

    const configDir = writeTree(scratch(), { 'artifact-uploader.yaml': 'hpo:\n  bestTrialArchive:\n    enabled: false\n' });
    const off = await uploadHpoArtifacts({ ...base, configDir, checkpointDir: join(out, 'ckpt') });
    expect(off).toMatchObject({ status: 'skipped', reason: 'disabled-by-config', disabledBy: 'hpo.bestTrialArchive.enabled' });
    // The per-trial kind has its own switch.
    expect((await uploadHpoArtifacts({ ...base, configDir, checkpointDir: join(out, 'ckpt'), trialId: 18 })).status).toBe('uploaded');
  });

  it('benchmark: a directory spelled with "." or ".." lands under its real name', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const out = writeTree(scratch('au-bench-dots-'), { 'r/plots/p50.csv': 'a', 'r/plots/sub/p99.csv': 'b', 'q/tables/t.csv': 'c' });
    const base = { runId: run.runId, trackingUri, env: {} };
    // As a sweep script passes them: `${dir}/.` or `${dir}/sub/..` (path.join would normalise them away).
    const results = await uploadBenchmarkArtifacts({ ...base, resultsPaths: [`${out}/r/plots/.`, `${out}/q/tables/.`, `${out}/r/plots/sub/..`] });
    expect(results.map((r) => [r.status, r.artifactPath])).toEqual([
      ['uploaded', 'benchmark/plots'],
      ['uploaded', 'benchmark/tables'],
      ['uploaded', 'benchmark/plots'],
    ]);
    expect(Object.keys(hashTree(artifactsDir)).sort()).toEqual(['benchmark/plots/p50.csv', 'benchmark/plots/sub/p99.csv', 'benchmark/tables/t.csv']);
  });

  it('hpo: a trialId that names no trial (NaN, -1, 1.5, null, an object) is refused before anything is sent', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const out = pipelineOutputs();
    const journalDir = scratch('au-hpo-journal-');
    const base = { runId: run.runId, trackingUri, env: {}, journalDir, checkpointDir: join(out, 'ckpt') };
    for (const trialId of [Number.NaN, Number.POSITIVE_INFINITY, -1, 1.5, 2 ** 53]) {
      await expect(uploadHpoArtifacts({ ...base, trialId })).rejects.toMatchObject({
        name: 'InvalidArgumentError',
        argument: 'trialId',
        message: expect.stringContaining('is not a trial number (an integer from 0 up)'),
      });
    }
    // From untyped callers: a JSON `null`, a trial object instead of its number.
    for (const trialId of [null, { number: 3 }] as unknown as number[]) {
      await expect(uploadHpoArtifacts({ ...base, trialId })).rejects.toMatchObject({ argument: 'trialId', message: expect.stringMatching(/must be a string or a number, got (null|object)/) });
    }
    expect(existsSync(artifactsDir) ? Object.keys(hashTree(artifactsDir)) : []).toEqual([]);
    expect(existsSync(join(journalDir, 'archives'))).toBe(false);
    // Trial numbers and string ids still go where they did.
    expect((await uploadHpoArtifacts({ ...base, trialId: 0 })).artifactPath).toBe('trials/0/best_trial_checkpoint.tar.gz');
    expect((await uploadHpoArtifacts({ ...base, trialId: 'trial_5a2c' })).artifactPath).toBe('trials/trial_5a2c/best_trial_checkpoint.tar.gz');
  });

  it('hpo: the decomposed (NFD, macOS file names) and composed (NFC) spellings of one trialId are one trial: one folder, and a resume under the other spelling finds its upload', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const out = pipelineOutputs();
    const journalDir = scratch('au-hpo-journal-');
    const base = { runId: run.runId, trackingUri, env: {}, journalDir, checkpointDir: join(out, 'ckpt') };
    const decomposed = 'cafe\u0301';
    const composed = 'caf\u00e9';
    // Interrupted under the macOS spelling: the archive is stored, the manifest is not.
    const interrupted = await uploadHpoArtifacts({
      ...base,
      trialId: decomposed,
      retry: { maxRetries: 0 },
      resolveStore: wrappedStore(async (p, upload) => {
        if (p.endsWith('.manifest.json')) throw Object.assign(new Error('refused by the test'), { code: 'EACCES' });
        return upload();
      }),
    });
    expect(interrupted.status).toBe('failed');
    expect(interrupted.artifactPath).toBe(`trials/${composed}/best_trial_checkpoint.tar.gz`);

    // Resumed under the composed spelling (another machine, a typed id): the same trial.
    const resumed = await uploadHpoArtifacts({ ...base, trialId: composed });
    expect(resumed).toMatchObject({ status: 'uploaded', artifactPath: `trials/${composed}/best_trial_checkpoint.tar.gz` });
    expect(resumed.files.map((f) => [f.artifactPath, f.status])).toEqual([
      [`trials/${composed}/best_trial_checkpoint.tar.gz`, 'resumed'],
      [`trials/${composed}/best_trial_checkpoint.manifest.json`, 'uploaded'],
    ]);
    // And again under the macOS spelling: the same folder, replaced in place, with a word on the spelling.
    const logger = recordingLogger();
    expect((await uploadHpoArtifacts({ ...base, trialId: decomposed, logger })).artifactPath).toBe(`trials/${composed}/best_trial_checkpoint.tar.gz`);
    expect(logger.lines).toContainEqual(['info', `trialId "${decomposed}" is stored under its composed (NFC) spelling, trials/${composed}/, as every spelling of it is.`]);
    expect(readdirSync(join(artifactsDir, 'trials'))).toEqual([composed]);
    expect(readdirSync(join(artifactsDir, 'trials', composed)).sort()).toEqual(['best_trial_checkpoint.manifest.json', 'best_trial_checkpoint.tar.gz']);
  });

  it('hpo: a trialId too long for a file name is refused before anything is archived or sent; one just short enough lands', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const out = pipelineOutputs();
    const journalDir = scratch('au-hpo-journal-');
    const base = { runId: run.runId, trackingUri, env: {}, journalDir, checkpointDir: join(out, 'ckpt') };
    // A Ray Tune trial name with its whole config in it: 256 bytes of UTF-8 (128 "ü").
    const tooLong = 'ü'.repeat(128);
    await expect(uploadHpoArtifacts({ ...base, trialId: tooLong })).rejects.toMatchObject({
      name: 'LocalPathError',
      code: 'INVALID_ARTIFACT_PATH',
      message: expect.stringContaining('holds a name of 256 bytes of UTF-8'),
      hint: expect.stringContaining('Shorten that name to at most 255 bytes'),
    });
    expect(existsSync(artifactsDir) ? Object.keys(hashTree(artifactsDir)) : []).toEqual([]);
    expect(existsSync(join(journalDir, 'archives')) ? readdirSync(join(journalDir, 'archives')) : []).toEqual([]);
    const fits = `${'ü'.repeat(127)}x`; // 255 bytes
    expect(await uploadHpoArtifacts({ ...base, trialId: fits })).toMatchObject({ status: 'uploaded', artifactPath: `trials/${fits}/best_trial_checkpoint.tar.gz` });
    expect(existsSync(join(artifactsDir, 'trials', fits, 'best_trial_checkpoint.manifest.json'))).toBe(true);
  });

  it('hpo: a bad gzip level is refused with the paths, before the run is looked up or an archive staged (a dry run too)', async () => {
    const out = pipelineOutputs();
    const journalDir = scratch('au-hpo-journal-');
    // No run exists under this id: a refusal that came after the run lookup would be about the run.
    const base = { runId: 'a'.repeat(32), trackingUri: `file:${join(scratch(), 'mlruns')}`, env: {}, journalDir, checkpointDir: join(out, 'ckpt') };
    for (const level of [10, -1, 1.5, Number.NaN]) {
      await expect(uploadHpoArtifacts({ ...base, level })).rejects.toMatchObject({ name: 'InvalidArgumentError', argument: 'level', message: `Expected \`level\` to be an integer from 0 to 9, got ${String(level)}.` });
      await expect(uploadHpoArtifacts({ ...base, level, dryRun: true })).rejects.toMatchObject({ argument: 'level' });
    }
    expect(existsSync(join(journalDir, 'archives'))).toBe(false);
  });

  it('hpo: an archiving that fails (aborted mid-read) leaves no staging directory in the journal', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const out = writeTree(scratch('au-hpo-abort-'), { 'ckpt/weights.bin': Buffer.alloc(4 * 1024 * 1024, 7), 'ckpt/config.json': '{}' });
    const journalDir = scratch('au-hpo-journal-');
    const controller = new AbortController();
    const result = await uploadHpoArtifacts({
      runId: run.runId,
      trackingUri,
      env: {},
      journalDir,
      checkpointDir: join(out, 'ckpt'),
      signal: controller.signal,
      // Aborted as the first bytes are archived: no archive is complete, nothing is uploaded.
      onProgress: (event) => {
        if (event.type === 'archive') controller.abort();
      },
    });
    expect(result).toMatchObject({ status: 'failed', reason: 'aborted' });
    expect(existsSync(artifactsDir) ? Object.keys(hashTree(artifactsDir)) : []).toEqual([]);
    // Neither the staging directory (with its stage.json) nor its lock is left.
    expect(existsSync(join(journalDir, 'archives')) ? readdirSync(join(journalDir, 'archives'), { recursive: true }) : []).toEqual([]);
  });

  it('hpo: a staged archive whose bytes changed on disk is built again, not re-sent failing on every rerun', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const out = writeTree(scratch('au-hpo-stale-'), { 'ckpt/weights.bin': Buffer.alloc(200_000, 3), 'ckpt/config.json': '{}' });
    const journalDir = scratch('au-hpo-journal-');
    const base = { runId: run.runId, trackingUri, env: {}, journalDir, checkpointDir: join(out, 'ckpt') };
    // Interrupted once the archive is built: it stays staged for the rerun.
    const controller = new AbortController();
    const interrupted = await uploadHpoArtifacts({
      ...base,
      signal: controller.signal,
      onProgress: (event) => {
        if (event.type === 'phase' && event.phase === 'uploading') controller.abort();
      },
    });
    expect(interrupted).toMatchObject({ status: 'failed', reason: 'aborted' });
    const [stageName] = readdirSync(join(journalDir, 'archives')).filter((n) => !n.includes('.lock'));
    const staged = join(journalDir, 'archives', stageName!, 'best_trial_checkpoint.tar.gz');
    // One byte of the staged archive flips on disk; its size (all a rerun looks at) stays.
    const bytes = readFileSync(staged);
    bytes[bytes.length - 20]! ^= 0xff;
    writeFileSync(staged, bytes);

    const logger = recordingLogger();
    const rerun = await uploadHpoArtifacts({ ...base, logger });
    expect(rerun).toMatchObject({ status: 'uploaded', verification: { status: 'verified' }, manifest: { verification: { status: 'verified' } } });
    expect(logger.lines.some(([level, line]) => level === 'warn' && line.includes('no longer matches its manifest'))).toBe(true);
    // The run holds the rebuilt archive, the one its manifest describes; nothing is left staged.
    expect(sha256(readFileSync(join(artifactsDir, 'best_trial_checkpoint.tar.gz')))).toBe(rerun.manifest!.archive.sha256);
    expect(JSON.parse(readFileSync(join(artifactsDir, 'best_trial_checkpoint.manifest.json'), 'utf8'))).toEqual(rerun.manifest);
    expect(existsSync(join(journalDir, 'archives')) ? readdirSync(join(journalDir, 'archives')) : []).toEqual([]);
  });

  it('hpo: two trials reporting the same best checkpoint at once upload it once', async () => {
    const { trackingUri, run } = await localRun();
    const out = pipelineOutputs();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    let uploads = 0;
    const base = { runId: run.runId, trackingUri, env: {}, checkpointDir: join(out, 'ckpt') };
    const first = uploadHpoArtifacts({
      ...base,
      resolveStore: wrappedStore(async (_p, upload) => {
        uploads++;
        entered();
        await gate;
        return upload();
      }),
    });
    await inside; // the first trial is uploading its archive
    let joined!: () => void;
    const ready = new Promise<void>((resolve) => (joined = resolve));
    const second = uploadHpoArtifacts({
      ...base,
      resolveStore: (uri, o) => {
        joined();
        return resolveArtifactStore(uri, o);
      },
    });
    await ready;
    await new Promise((resolve) => setImmediate(resolve));
    release();
    const [a, b] = await Promise.all([first, second]);
    expect(a.status).toBe('uploaded');
    expect(b).toMatchObject({ status: 'uploaded', deduplicated: true, artifactPath: 'best_trial_checkpoint.tar.gz' });
    expect(b.manifest).toEqual(a.manifest);
    expect(uploads).toBe(2); // archive + manifest, once
  });

  it('hpo: a trial that joined another trial\'s upload of the same checkpoint uploads it itself when that trial is aborted', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const out = pipelineOutputs();
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const base = { runId: run.runId, trackingUri, env: {}, checkpointDir: join(out, 'ckpt') };
    // Trial 3 (pruned a moment later: its signal fires) starts the upload of the best checkpoint ...
    const pruned = new AbortController();
    const first = uploadHpoArtifacts({
      ...base,
      signal: pruned.signal,
      resolveStore: wrappedStore(async (_p, upload) => {
        entered();
        await gate;
        return upload();
      }),
    });
    await inside;
    // ... trial 5 reports the same checkpoint and joins it: its target is known (the debug line),
    // and only promise callbacks stand between it and the upload in flight.
    let targetKnown!: () => void;
    const known = new Promise<void>((resolve) => (targetKnown = resolve));
    const joiner = recordingLogger();
    const second = uploadHpoArtifacts({ ...base, logger: { ...joiner, debug: (m) => (joiner.debug(m), m.startsWith('uploading to run') && targetKnown()) } });
    await known;
    await new Promise((resolve) => setImmediate(resolve));
    pruned.abort(new Error('trial 3 pruned'));
    release();
    const [a, b] = await Promise.all([first, second]);
    expect(a).toMatchObject({ status: 'failed', reason: 'aborted' });
    // Trial 5 was not aborted: it is not told it was, and its checkpoint is in the run.
    expect(b).toMatchObject({ status: 'uploaded', verification: { status: 'verified' }, artifactPath: 'best_trial_checkpoint.tar.gz' });
    expect(b.deduplicated).toBeUndefined();
    expect(sha256(readFileSync(join(artifactsDir, 'best_trial_checkpoint.tar.gz')))).toBe(b.manifest!.archive.sha256);
    expect(JSON.parse(readFileSync(join(artifactsDir, 'best_trial_checkpoint.manifest.json'), 'utf8'))).toEqual(b.manifest);
    expect(joiner.lines).toContainEqual(['info', expect.stringMatching(/the identical upload it joined was aborted by its own caller; uploading it itself/)]);
  });

  it('hpo: an archive replaced by another process before it was verified fails with a hint that names that cause', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const out = pipelineOutputs();
    const result = await uploadHpoArtifacts({
      runId: run.runId,
      trackingUri,
      env: {},
      checkpointDir: join(out, 'ckpt'),
      resolveStore: wrappedStore(async (p, upload) => {
        const stored = await upload();
        // Another trial, run as its own CLI process, stores its best checkpoint at the same path.
        if (p.endsWith('.tar.gz')) writeFileSync(join(artifactsDir, p), Buffer.alloc(stored.bytes + 14, 9));
        return stored;
      }),
    });
    expect(result).toMatchObject({ status: 'failed', reason: 'verification-failed', error: { code: 'VERIFICATION_FAILED' } });
    expect(result.error?.hint).toMatch(/another upload to the same artifact path at the same time \(another process/);
  });

  it('hpo: two trials with different best checkpoints at once leave the later one, archive and manifest of the same trial', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const sweep = writeTree(scratch('au-sweep-'), {
      'trial-3/ckpt/adapter_model.safetensors': Buffer.alloc(3000, 3),
      'trial-3/ckpt/adapter_config.json': '{"r": 8, "trial": 3}',
      'trial-5/ckpt/adapter_model.safetensors': Buffer.alloc(2000, 5),
      'trial-5/ckpt/adapter_config.json': '{"r": 16, "trial": 5}',
    });
    const base = { runId: run.runId, trackingUri, env: {} };
    // Trial 3 is the best so far: its archive goes up, its manifest waits until trial 5, the
    // next best reported a moment later, has stored its pair or is waiting its turn.
    let trial5Moved!: () => void;
    const trial5Moving = new Promise<void>((resolve) => (trial5Moved = resolve));
    const { result: trial3 } = await archiveStoredManifestHeld({ ...base, checkpointDir: join(sweep, 'trial-3/ckpt') }, trial5Moving);
    const waited = recordingLogger();
    const trial5 = uploadHpoArtifacts({
      ...base,
      checkpointDir: join(sweep, 'trial-5/ckpt'),
      logger: { ...waited, info: (m) => (waited.info(m), m.includes('waits for') && trial5Moved()) },
      resolveStore: wrappedStore(async (p, upload) => {
        const stored = await upload();
        if (p.endsWith('.manifest.json')) trial5Moved();
        return stored;
      }),
    });
    const [three, five] = await Promise.all([trial3, trial5]);
    expect(three).toMatchObject({ status: 'uploaded', verification: { status: 'verified' } });
    expect(five).toMatchObject({ status: 'uploaded', verification: { status: 'verified' } });
    expect(five.manifest!.archive.sha256).not.toBe(three.manifest!.archive.sha256);
    // The run holds one trial's pair: trial 5's archive, and the manifest that describes it.
    const manifest = JSON.parse(readFileSync(join(artifactsDir, 'best_trial_checkpoint.manifest.json'), 'utf8')) as CheckpointManifest;
    expect(sha256(readFileSync(join(artifactsDir, 'best_trial_checkpoint.tar.gz')))).toBe(manifest.archive.sha256);
    expect(manifest).toEqual(five.manifest);
    expect(waited.lines).toContainEqual(['info', expect.stringMatching(/waits for the upload of another archive to best_trial_checkpoint\.tar\.gz of run [0-9a-f]+ in this process/)]);
  });

  it('hpo: a trial whose signal fires while it waits for another archive to its destination ends aborted, sending nothing', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const sweep = writeTree(scratch('au-sweep-'), {
      'trial-3/ckpt/adapter_model.safetensors': Buffer.alloc(3000, 3),
      'trial-5/ckpt/adapter_model.safetensors': Buffer.alloc(2000, 5),
    });
    const base = { runId: run.runId, trackingUri, env: {} };
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { result: trial3 } = await archiveStoredManifestHeld({ ...base, checkpointDir: join(sweep, 'trial-3/ckpt') }, gate);
    const controller = new AbortController();
    let sent = 0;
    const waited = recordingLogger();
    const five = await uploadHpoArtifacts({
      ...base,
      checkpointDir: join(sweep, 'trial-5/ckpt'),
      signal: controller.signal,
      logger: { ...waited, info: (m) => (waited.info(m), m.includes('waits for') && controller.abort()) },
      resolveStore: wrappedStore((_p, upload) => (sent++, upload())),
    });
    expect(five).toMatchObject({ status: 'failed', reason: 'aborted', error: { name: 'AbortedError' } });
    release();
    const three = await trial3;
    expect(three).toMatchObject({ status: 'uploaded', verification: { status: 'verified' } });
    expect(sent).toBe(0);
    expect(sha256(readFileSync(join(artifactsDir, 'best_trial_checkpoint.tar.gz')))).toBe(three.manifest!.archive.sha256);
    expect(JSON.parse(readFileSync(join(artifactsDir, 'best_trial_checkpoint.manifest.json'), 'utf8'))).toEqual(three.manifest);
  });
});

describeWithServers('stage helpers on a real MLflow server', () => {
  it('all four, read back by the Python client; the HPO archive extracted by GNU tar matches its manifest', async () => {
    const { url } = mlflowServer();
    const { runId } = await serverRun(url);
    const out = pipelineOutputs();
    const base = { runId, trackingUri: url, env: {} };
    const { checkpoint, metrics } = await uploadTrainingArtifacts({ ...base, checkpointDir: join(out, 'ckpt'), metricsJsonPath: join(out, 'metrics.json') });
    const onnx = await uploadConversionArtifacts({ ...base, onnxPath: join(out, 'onnx/model.onnx') });
    const bench = await uploadBenchmarkArtifacts({ ...base, resultsPaths: [join(out, 'bench/latency.json'), join(out, 'bench/plots')] });
    const hpo = await uploadHpoArtifacts({ ...base, checkpointDir: join(out, 'ckpt'), level: 6 });
    for (const r of [checkpoint, metrics!, onnx, ...bench, hpo]) expect(r.status).toBe('uploaded');

    const [dst] = await pythonDownloadAll([{ trackingUri: url, runId }]);
    const local = (rel: string) => sha256(readFileSync(join(out, rel)));
    const manifest = JSON.parse(readFileSync(join(dst!, 'best_trial_checkpoint.manifest.json'), 'utf8')) as CheckpointManifest;
    expect(hashTree(dst!)).toEqual({
      'checkpoint/adapter_model.safetensors': local('ckpt/adapter_model.safetensors'),
      'checkpoint/adapter_config.json': local('ckpt/adapter_config.json'),
      'metrics/metrics.json': local('metrics.json'),
      'onnx/model.onnx': local('onnx/model.onnx'),
      'onnx/model.weights': local('onnx/model.weights'),
      'onnx/model.onnx.data': local('onnx/model.onnx.data'),
      'benchmark/latency.json': local('bench/latency.json'),
      'benchmark/plots/p50.csv': local('bench/plots/p50.csv'),
      'benchmark/plots/p99.csv': local('bench/plots/p99.csv'),
      'best_trial_checkpoint.tar.gz': manifest.archive.sha256,
      'best_trial_checkpoint.manifest.json': sha256(`${JSON.stringify(hpo.manifest, null, 2)}\n`),
    });
    expect(manifest).toMatchObject({ archive: { compressionLevel: 6 }, verification: { status: 'verified', checks: ['size', 'sha256'], sha256: manifest.archive.sha256 } });
    const extracted = hashTree(await gnuTarExtract(join(dst!, 'best_trial_checkpoint.tar.gz')));
    expect(extracted).toEqual(Object.fromEntries(manifest.files.map((f) => [f.path, f.sha256])));
    expect(Object.keys(extracted).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
  });
});
