/**
 * ArtifactUploader on the embedded ./mlruns store (explicit `file:` tracking URIs in temp
 * dirs): every method, every gate, run precedence, programmer errors, verification,
 * progress and stats. Fast: no server, no Python. The real-server side is in
 * mlflow-server.test.ts.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createCheckpointArchive } from '../../src/archive/create-checkpoint-archive.js';
import { writeManifest } from '../../src/archive/manifest.js';
import { ConfigError, InvalidArgumentError, LocalPathError, MlflowApiError, VerificationError } from '../../src/core/errors.js';
import { withRun } from '../../src/run/run-context.js';
import type { ArtifactStore } from '../../src/stores/artifact-store.js';
import { resolveArtifactStore } from '../../src/stores/resolve.js';
import { ArtifactUploader } from '../../src/uploader/artifact-uploader.js';
import { uploadTrainingArtifacts } from '../../src/stages/training.js';
import type { UploadProgressEvent } from '../../src/uploader/progress.js';
import { hashTree, localRun, recordingLogger, scratch, sha256, writeTree } from './helpers.js';

const RUN_A = 'a'.repeat(32);

describe('ArtifactUploader on ./mlruns', () => {
  it('uploads a file, several files, a directory and a checkpoint into the run, byte for byte', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const src = writeTree(scratch(), {
      'metrics.json': '{"loss": 0.1}',
      'eval/report.md': '# report',
      'eval/plots/a.png': Buffer.alloc(300, 1),
      'eval/debug.log': 'noise',
      'ckpt/model.safetensors': Buffer.alloc(2048, 7),
      'ckpt/config.json': '{}',
      'ckpt/empty.txt': '',
      'ckpt/train.lock': '',
      'ckpt/__pycache__/x.pyc': 'bytecode',
      'onnx/model.onnx': 'graph',
      'onnx/weights/model.onnx.data': 'tensors',
    });
    const uploader = new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri, env: {} });

    const file = await uploader.uploadFile(join(src, 'metrics.json'), { kind: 'metrics' });
    expect(file).toMatchObject({
      status: 'uploaded',
      stage: 'training',
      kind: 'metrics',
      runId: run.runId,
      artifactUri: run.artifactUri,
      artifactPath: 'metrics/metrics.json',
      verification: { status: 'not-run' },
    });
    expect(file.files).toEqual([
      { localPath: join(src, 'metrics.json'), artifactPath: 'metrics/metrics.json', size: 13, status: 'uploaded', attempts: 1, multipart: false, sha256: sha256(readFileSync(join(src, 'metrics.json'))) },
    ]);

    const many = await uploader.uploadFiles([join(src, 'onnx/model.onnx'), join(src, 'onnx/weights/model.onnx.data')], {
      artifactPath: 'onnx',
      baseDir: join(src, 'onnx'),
      verify: true,
    });
    expect(many).toMatchObject({ status: 'uploaded', artifactPath: 'onnx', verification: { status: 'verified' } });
    // Largest first.
    expect(many.files.map((f) => f.artifactPath)).toEqual(['onnx/weights/model.onnx.data', 'onnx/model.onnx']);

    const dir = await uploader.uploadDirectory(join(src, 'eval'), { artifactPath: 'eval', exclude: '*.log' });
    expect(dir.status).toBe('uploaded');
    expect(dir.files.map((f) => f.artifactPath)).toEqual(['eval/plots/a.png', 'eval/report.md']);
    expect(dir.skippedFiles).toEqual([{ path: 'debug.log', reason: 'excluded by "*.log"' }]);
    expect(dir.metrics).toMatchObject({ filesPlanned: 2, filesSent: 2, filesSkipped: 1, bytesSkipped: 5, bytesSent: 308, filesFailed: 0, attempts: 2, retries: 0 });

    const checkpoint = await uploader.uploadCheckpoint(join(src, 'ckpt'));
    expect(checkpoint).toMatchObject({ status: 'uploaded', kind: 'checkpoint', artifactPath: 'checkpoint' });
    // A skipped directory is one entry, as the archive's manifest lists it (`__pycache__/` is directories only).
    expect(checkpoint.skippedFiles.map((s) => s.path).sort()).toEqual(['__pycache__', 'train.lock']);
    expect(checkpoint.skippedFiles.find((s) => s.path === 'train.lock')?.reason).toMatch(/^default skip list \(\*\.lock/);

    expect(hashTree(artifactsDir)).toEqual({
      'metrics/metrics.json': sha256('{"loss": 0.1}'),
      'onnx/model.onnx': sha256('graph'),
      'onnx/weights/model.onnx.data': sha256('tensors'),
      'eval/report.md': sha256('# report'),
      'eval/plots/a.png': sha256(Buffer.alloc(300, 1)),
      'checkpoint/model.safetensors': sha256(Buffer.alloc(2048, 7)),
      'checkpoint/config.json': sha256('{}'),
      'checkpoint/empty.txt': sha256(''),
    });
    const stats = uploader.stats();
    // debug.log and train.lock; `__pycache__/` counts as one directory, not read for its file.
    expect(stats).toMatchObject({ operations: 4, uploaded: 4, skipped: 0, failed: 0, deduplicated: 0, filesSent: 8, filesSkipped: 2, directoriesSkipped: 1 });
    expect(stats.bytesSent).toBe(13 + 5 + 7 + 300 + 8 + 2048 + 2);
    await uploader.close();
    await expect(uploader.uploadFile(join(src, 'metrics.json'))).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('uploads a checkpoint archive with its manifest, verified, and records the verification in the uploaded manifest', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const src = writeTree(scratch(), { 'ckpt/adapter.safetensors': Buffer.alloc(4096, 3), 'ckpt/tokenizer.json': '{"v":1}', 'ckpt/scratch.tmp': 'x' });
    const out = join(scratch(), 'best.tar.gz');
    const manifest = await createCheckpointArchive(join(src, 'ckpt'), out);
    // Found beside the archive without being passed.
    await writeManifest(manifest, join(scratch(), 'unrelated.json'));
    await writeManifest(manifest, out.replace(/\.tar\.gz$/, '.manifest.json'));

    const uploader = new ArtifactUploader({ stage: 'hpo', runId: run.runId, trackingUri, env: {} });
    const result = await uploader.uploadCheckpointArchive(out);
    expect(result).toMatchObject({
      status: 'uploaded',
      kind: 'bestTrialArchive',
      artifactPath: 'best_trial_checkpoint.tar.gz',
      verification: { status: 'verified' },
      // The archive bytes sent were hashed as they were read: the manifest records their sha256.
      manifest: { verification: { status: 'verified', checks: ['size', 'sha256'], location: `${run.artifactUri}/best_trial_checkpoint.tar.gz`, sha256: manifest.archive.sha256 } },
    });
    expect(result.files.map((f) => f.artifactPath)).toEqual(['best_trial_checkpoint.tar.gz', 'best_trial_checkpoint.manifest.json']);
    expect(readFileSync(join(artifactsDir, 'best_trial_checkpoint.tar.gz')).equals(readFileSync(out))).toBe(true);
    const uploaded = JSON.parse(readFileSync(join(artifactsDir, 'best_trial_checkpoint.manifest.json'), 'utf8'));
    expect(uploaded).toEqual({ ...manifest, verification: result.manifest!.verification });
    // The caller's manifest file is left as it was.
    expect(JSON.parse(readFileSync(out.replace(/\.tar\.gz$/, '.manifest.json'), 'utf8')).verification).toEqual({ status: 'not-run' });

    // A manifest of another archive is a programmer error.
    await expect(uploader.uploadCheckpointArchive(out, { manifest: { ...manifest, archive: { ...manifest.archive, size: 1 } } })).rejects.toMatchObject({
      name: 'InvalidArgumentError',
      argument: 'manifest',
    });
  });

  it('archives a directory first, in phases, and uploads archive + manifest', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const ckpt = writeTree(scratch(), { 'model.safetensors': Buffer.alloc(1000, 9), 'nested/config.json': '{}', '.DS_Store': 'x' });
    const phases: string[] = [];
    const archived: UploadProgressEvent[] = [];
    const duringPhase = new Set<string | undefined>();
    const uploader = new ArtifactUploader({
      stage: 'hpo',
      runId: run.runId,
      trackingUri,
      env: {},
      onProgress: (e) => {
        if (e.type === 'phase') phases.push(e.phase);
        // Byte progress of the archiving phase: it comes between `archiving` and `uploading`.
        if (e.type === 'archive') {
          archived.push(e);
          duringPhase.add(phases.at(-1));
        }
      },
    });
    const result = await uploader.archiveAndUploadCheckpoint(ckpt, { artifactPath: 'sweep/best.tar.gz' });
    expect(phases).toEqual(['scanning', 'archiving', 'uploading', 'verifying', 'done']);
    expect(archived.at(-1)).toEqual({ type: 'archive', bytesDone: 1002, bytesTotal: 1002, filesDone: 2, filesTotal: 2 });
    expect([...duringPhase]).toEqual(['archiving']);
    expect(result).toMatchObject({ status: 'uploaded', artifactPath: 'sweep/best.tar.gz', verification: { status: 'verified' } });
    expect(result.manifest?.files.map((f) => f.path)).toEqual(['model.safetensors', 'nested/config.json']);
    expect(result.manifest?.skipped).toEqual([{ path: '.DS_Store', reason: 'default-skip-list', pattern: '.DS_Store' }]);
    expect(existsSync(join(artifactsDir, 'sweep', 'best.manifest.json'))).toBe(true);
    expect(result.files[0]!.localPath).not.toContain(ckpt);
    expect(existsSync(result.files[0]!.localPath)).toBe(false); // the temp archive is gone
  });

  describe('gates', () => {
    it('MLFLOW_SKIP_ARTIFACT_LOGGING=true skips before the config is even read', async () => {
      const configDir = writeTree(scratch(), { 'artifact-uploader.yaml': 'not: [valid' });
      const src = writeTree(scratch(), { 'a.txt': 'a' });
      const uploader = new ArtifactUploader({ stage: 'training', configDir, env: { MLFLOW_SKIP_ARTIFACT_LOGGING: 'true' } });
      const result = await uploader.uploadFile(join(src, 'a.txt'));
      expect(result).toMatchObject({ status: 'skipped', reason: 'disabled-by-env', files: [] });
      // Programmer errors still throw first.
      await expect(uploader.uploadFile(join(src, 'missing.txt'))).rejects.toMatchObject({ code: 'PATH_NOT_FOUND' });
    });

    it('a stage config file disables a kind (skipIfDisabled) or the whole stage', async () => {
      const { trackingUri, run, artifactsDir } = await localRun();
      const configDir = writeTree(scratch(), {
        'artifact-uploader.yaml': 'training:\n  checkpoint:\n    enabled: false\nbenchmark:\n  enabled: false\n',
      });
      const src = writeTree(scratch(), { 'ckpt/w.bin': 'w', 'r.json': '{}' });
      const training = new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri, configDir, env: {} });
      const skipped = await training.uploadCheckpoint(join(src, 'ckpt'));
      expect(skipped).toMatchObject({ status: 'skipped', reason: 'disabled-by-config', disabledBy: 'training.checkpoint.enabled', kind: 'checkpoint' });
      expect(skipped.files).toEqual([{ localPath: join(src, 'ckpt', 'w.bin'), artifactPath: 'checkpoint/w.bin', size: 1, status: 'planned' }]);
      expect(existsSync(join(artifactsDir, 'checkpoint'))).toBe(false);
      // Other kinds of the stage are still on; skipIfDisabled: false overrides the switch.
      expect((await training.uploadFile(join(src, 'r.json'), { kind: 'metrics' })).status).toBe('uploaded');
      expect((await training.uploadCheckpoint(join(src, 'ckpt'), { skipIfDisabled: false })).status).toBe('uploaded');

      const benchmark = new ArtifactUploader({ stage: 'benchmark', runId: run.runId, trackingUri, configDir, env: {} });
      expect(await benchmark.uploadFile(join(src, 'r.json'))).toMatchObject({ status: 'skipped', reason: 'disabled-by-config', disabledBy: 'benchmark.enabled' });
      // Env overrides of the config apply (ARTIFACT_UPLOADER_*).
      const reenabled = new ArtifactUploader({ stage: 'benchmark', runId: run.runId, trackingUri, configDir, env: { ARTIFACT_UPLOADER_BENCHMARK_ENABLED: 'true' } });
      expect((await reenabled.uploadFile(join(src, 'r.json'))).status).toBe('uploaded');
      expect(training.stats()).toMatchObject({ operations: 3, skipped: 1, uploaded: 2 });
    });

    it('no run anywhere: skipped with reason no-run and ONE warning saying how to fix it', async () => {
      const logger = recordingLogger();
      const src = writeTree(scratch(), { 'a.txt': 'a', 'b.txt': 'b' });
      const uploader = new ArtifactUploader({ stage: 'conversion', env: {}, logger, trackingUri: 'http://127.0.0.1:9' });
      expect(await uploader.uploadFile(join(src, 'a.txt'))).toMatchObject({ status: 'skipped', reason: 'no-run' });
      expect(await uploader.uploadFile(join(src, 'b.txt'))).toMatchObject({ status: 'skipped', reason: 'no-run' });
      const warnings = logger.lines.filter(([level]) => level === 'warn').map(([, m]) => m);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/`runId`.*`startRun\(\)`.*MLFLOW_RUN_ID/);
    });

    it('an explicit runId beats the active run, which beats MLFLOW_RUN_ID', async () => {
      const root = scratch();
      const a = await localRun(root);
      const b = await localRun(root);
      const c = await localRun(root);
      const src = writeTree(scratch(), { 'who.txt': 'me' });
      const env = { MLFLOW_RUN_ID: c.run.runId };
      const upload = (options: { runId?: string; trackingUri?: string }) =>
        new ArtifactUploader({ stage: 'benchmark', env, ...options }).uploadFile(join(src, 'who.txt'));

      await withRun(b.run, async () => {
        expect((await upload({ runId: a.run.runId, trackingUri: a.trackingUri })).runId).toBe(a.run.runId);
        // No trackingUri: the active run's own connection is used.
        expect((await upload({})).runId).toBe(b.run.runId);
      });
      expect((await upload({ trackingUri: c.trackingUri })).runId).toBe(c.run.runId);
      for (const x of [a, b, c]) expect(existsSync(join(x.artifactsDir, 'who.txt'))).toBe(true);

      // One uploader without a runId follows the run in effect at each call.
      const shared = new ArtifactUploader({ stage: 'benchmark', env: {} });
      const inA = await withRun(a.run, () => shared.uploadFile(join(src, 'who.txt'), { artifactPath: 'shared' }));
      const inB = await withRun(b.run, () => shared.uploadFile(join(src, 'who.txt'), { artifactPath: 'shared' }));
      expect([inA.runId, inB.runId]).toEqual([a.run.runId, b.run.runId]);
      expect(existsSync(join(b.artifactsDir, 'shared', 'who.txt'))).toBe(true);
      await shared.close();
    });
  });

  describe('programmer errors throw at once, whatever onError says', () => {
    it('missing paths, a file where a directory is expected and vice versa, unknown stage or kind, bad names', async () => {
      const src = writeTree(scratch(), { 'f.txt': 'f', 'd/x.txt': 'x' });
      const uploader = new ArtifactUploader({ stage: 'training', runId: RUN_A, env: {}, onError: 'return' });
      await expect(uploader.uploadFile(join(src, 'nope.txt'))).rejects.toMatchObject({ name: 'LocalPathError', code: 'PATH_NOT_FOUND' });
      await expect(uploader.uploadFile(join(src, 'd'))).rejects.toMatchObject({ code: 'NOT_A_FILE' });
      await expect(uploader.uploadDirectory(join(src, 'f.txt'))).rejects.toMatchObject({ code: 'NOT_A_DIRECTORY' });
      await expect(uploader.uploadCheckpoint(join(src, 'nope'))).rejects.toBeInstanceOf(LocalPathError);
      await expect(uploader.uploadCheckpointArchive(join(src, 'd'))).rejects.toMatchObject({ code: 'NOT_A_FILE' });
      // An archive that is no gzip stream (a weights file, a plain .tar), or empty.
      await expect(uploader.uploadCheckpointArchive(join(src, 'f.txt'))).rejects.toMatchObject({ name: 'LocalPathError', code: 'NOT_A_GZIP_ARCHIVE', path: join(src, 'f.txt') });
      writeFileSync(join(src, 'empty.tar.gz'), '');
      await expect(uploader.uploadCheckpointArchive(join(src, 'empty.tar.gz'))).rejects.toThrow(/expects a gzip-compressed tar archive \(\.tar\.gz\), but .* is empty/);
      await expect(uploader.uploadFile(join(src, 'f.txt'), { artifactPath: '../up' })).rejects.toMatchObject({ code: 'INVALID_ARTIFACT_PATH' });
      await expect(uploader.uploadFile(join(src, 'f.txt'), { kind: 'onnxModel' as never })).rejects.toMatchObject({
        name: 'InvalidArgumentError',
        argument: 'kind',
      });
      expect(() => new ArtifactUploader({ stage: 'trainig' as never })).toThrow(/Unknown stage "trainig" \(did you mean "training"\?\)/);
      expect(() => new ArtifactUploader({ stage: 'hpo', concurrency: 0 })).toThrow(InvalidArgumentError);
      expect(() => new ArtifactUploader({ stage: 'hpo', onError: 'ignore' as never })).toThrow(/onError/);
      const badRun = new ArtifactUploader({ stage: 'hpo', runId: 'not a run id', env: {} });
      await expect(badRun.uploadFile(join(src, 'f.txt'))).rejects.toMatchObject({ name: 'InvalidArgumentError', argument: 'runId' });
      expect(uploader.stats().operations).toBe(0);
    });

    it('a misspelt option is refused with the option it was meant to be, by the uploader and the stage helpers, before anything is sent', async () => {
      const { trackingUri, run, artifactsDir } = await localRun();
      const src = writeTree(scratch(), { 'ckpt/model.bin': 'weights' });
      const misspelt = { stage: 'training', runId: run.runId, trackingUri, env: {}, concurency: 4 } as never;
      expect(() => new ArtifactUploader(misspelt)).toThrow(InvalidArgumentError);
      expect(() => new ArtifactUploader(misspelt)).toThrow(expect.objectContaining({
        argument: 'concurency',
        message: expect.stringMatching(/^Unknown option `concurency` \(did you mean `concurrency`\?\)\. Remove it or rename it to `concurrency`\./),
      }));
      // A name close to none: refused too, the hint listing the options.
      expect(() => new ArtifactUploader({ stage: 'training', parallelUploads: 4 } as never)).toThrow(expect.objectContaining({ argument: 'parallelUploads', hint: expect.stringContaining('maxConcurrency') }));
      await expect(uploadTrainingArtifacts({ checkpointDir: join(src, 'ckpt'), runId: run.runId, trackingUri, env: {}, dryrun: true } as never)).rejects.toMatchObject({
        name: 'InvalidArgumentError',
        argument: 'dryrun',
        message: expect.stringContaining('did you mean `dryRun`?'),
      });
      expect(existsSync(artifactsDir) ? readdirSync(artifactsDir) : []).toEqual([]);
    });

    it('an option of the wrong type (from JavaScript) is refused when the uploader is made', () => {
      const wrong: Array<[string, unknown]> = [
        ['dryRun', 'false'],
        ['verify', 'no'],
        ['resume', 0],
        ['trackingUri', 5],
        ['configDir', null],
        ['journalDir', 5],
        ['resolveStore', 'resolveArtifactStore'],
        ['env', 'production'],
        ['retry', 3],
        ['s3', null],
        ['signal', {}],
        ['logger', 'debug'],
      ];
      for (const [option, value] of wrong) {
        expect(() => new ArtifactUploader({ stage: 'training', [option]: value } as never), option).toThrow(expect.objectContaining({ name: 'InvalidArgumentError', argument: option }));
      }
      expect(() => new ArtifactUploader({ stage: 'training', retry: { maxRetries: -1 } })).toThrow(expect.objectContaining({ name: 'InvalidArgumentError', argument: 'retry.maxRetries' }));
      // A number as a string reads as one in the message, so that `got 4` does not look valid.
      expect(() => new ArtifactUploader({ stage: 'training', concurrency: '4' as never })).toThrow('got the string "4"');
      // What is right passes: a real signal, console as the logger, a retry policy.
      expect(() => new ArtifactUploader({ stage: 'training', signal: new AbortController().signal, logger: console, retry: { maxRetries: 2 }, dryRun: false, env: {} })).not.toThrow();
    });

    it("a call's misspelt option or option of the wrong type is refused before anything is sent", async () => {
      const { trackingUri, run, artifactsDir } = await localRun();
      const src = writeTree(scratch(), { 'a.txt': 'a', 'ckpt/model.bin': 'weights' });
      const shared = new AbortController();
      const uploader = new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri, env: {}, signal: shared.signal });
      const file = join(src, 'a.txt');
      await expect(uploader.uploadFile(file, { artifactPaht: 'eval' } as never)).rejects.toMatchObject({
        name: 'InvalidArgumentError',
        argument: 'artifactPaht',
        message: expect.stringMatching(/^Unknown option `artifactPaht` of uploadFile\(\) \(did you mean `artifactPath`\?\)/),
      });
      // Unset (undefined), an unknown name changes nothing, and passes: `undefined` means "not set".
      await expect(uploader.uploadFile(file, { artifactPaht: undefined, artifactPath: 'unset' } as never)).resolves.toMatchObject({ status: 'uploaded', artifactPath: 'unset/a.txt' });
      // An option of another method: uploadFile has no include.
      await expect(uploader.uploadFile(file, { include: '*.txt' } as never)).rejects.toMatchObject({ argument: 'include' });
      await expect(uploader.uploadFile(file, { verify: 'no' } as never)).rejects.toMatchObject({ name: 'InvalidArgumentError', argument: 'verify' });
      await expect(uploader.uploadFile(file, { signal: {} } as never)).rejects.toMatchObject({ name: 'InvalidArgumentError', argument: 'signal' });
      await expect(uploader.uploadCheckpoint(join(src, 'ckpt'), { skipIfDisabled: 'false' } as never)).rejects.toMatchObject({ argument: 'skipIfDisabled' });
      await expect(uploader.uploadDirectory(join(src, 'ckpt'), { include: 5 } as never)).rejects.toMatchObject({ name: 'InvalidArgumentError', argument: 'include' });
      await expect(uploader.archiveAndUploadCheckpoint(join(src, 'ckpt'), { levle: 9 } as never)).rejects.toMatchObject({ message: expect.stringContaining('did you mean `level`?') });
      expect(readdirSync(artifactsDir)).toEqual(['unset']);
      expect(uploader.stats().operations).toBe(1);
      // What is right passes, a call's own signal beside the uploader's included.
      const ok = await uploader.uploadFile(file, { artifactPath: 'eval', verify: true, signal: new AbortController().signal });
      expect(ok.status, ok.error?.message).toBe('uploaded');
      expect(readFileSync(join(artifactsDir, 'eval', 'a.txt'), 'utf8')).toBe('a');
      await uploader.close();
    });

    it('maxConcurrency below concurrency is refused (both options at once, or against the config), before anything is sent; alone it caps the default', async () => {
      const both = (() => {
        try {
          return new ArtifactUploader({ stage: 'training', concurrency: 8, maxConcurrency: 4 });
        } catch (e) {
          return e as InvalidArgumentError;
        }
      })();
      expect(both).toBeInstanceOf(InvalidArgumentError);
      expect(both).toMatchObject({ argument: 'maxConcurrency', hint: expect.stringMatching(/at least 8/) });
      expect(() => new ArtifactUploader({ stage: 'training', concurrency: 4, maxConcurrency: 4 })).not.toThrow();

      const { trackingUri, run, artifactsDir } = await localRun();
      const files: Record<string, string> = {};
      for (let i = 0; i < 40; i++) files[`f${i}.txt`] = `file ${i}`;
      const src = writeTree(scratch(), files);
      // The config's concurrency (the `config` option, a file or ARTIFACT_UPLOADER_CONCURRENCY) above it: refused at the call, dry run too.
      for (const source of [{ config: { concurrency: 16 } }, { env: { ARTIFACT_UPLOADER_CONCURRENCY: '16' } }]) {
        for (const dryRun of [false, true]) {
          const uploader = new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri, env: {}, maxConcurrency: 4, dryRun, ...source });
          await expect(uploader.uploadDirectory(src)).rejects.toMatchObject({ name: 'ConfigError', hint: expect.stringMatching(/at least 16/) });
        }
      }
      expect(existsSync(artifactsDir) ? readdirSync(artifactsDir) : []).toEqual([]);
      // Alone, it caps the default concurrency (8): never more files in flight than it allows.
      const capped = await new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri, env: {}, maxConcurrency: 4 }).uploadDirectory(src);
      expect(capped.status, capped.error?.message).toBe('uploaded');
      expect(capped.metrics.peakConcurrency).toBeGreaterThanOrEqual(1);
      expect(capped.metrics.peakConcurrency).toBeLessThanOrEqual(4);
    });

    it('a directory with an escaping symlink uploads nothing', async () => {
      const { trackingUri, run, artifactsDir } = await localRun();
      const outside = writeTree(scratch(), { 'secret.txt': 'do not publish' });
      const dir = writeTree(scratch(), { 'ok.txt': 'fine' });
      symlinkSync(join(outside, 'secret.txt'), join(dir, 'link.txt'));
      const uploader = new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri, env: {} });
      await expect(uploader.uploadDirectory(dir)).rejects.toMatchObject({ name: 'LocalPathError', code: 'SYMLINK_ESCAPES' });
      expect(existsSync(join(artifactsDir, 'ok.txt'))).toBe(false);
    });

    it('symlink loops in a directory are skipped and reported, the rest uploaded; a dangling link refuses the directory before a byte; a path that is a link loop is PATH_NOT_FOUND', async () => {
      const { trackingUri, run, artifactsDir } = await localRun();
      const dir = writeTree(scratch(), { 'ok.txt': 'fine', 'sub/w.bin': 'weights' });
      symlinkSync('self', join(dir, 'self'));
      symlinkSync('b', join(dir, 'a'));
      symlinkSync('a', join(dir, 'b'));
      symlinkSync('..', join(dir, 'sub', 'up'));
      const uploader = new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri, env: {} });

      const result = await uploader.uploadDirectory(dir, { artifactPath: 'looped' });
      expect(result.status, result.error?.message).toBe('uploaded');
      expect(Object.keys(hashTree(artifactsDir)).sort()).toEqual(['looped/ok.txt', 'looped/sub/w.bin']);
      expect(result.skippedFiles).toEqual([
        { path: 'a', reason: 'symlink loop' },
        { path: 'b', reason: 'symlink loop' },
        { path: 'self', reason: 'symlink loop' },
        { path: 'sub/up', reason: 'symlink loop' },
      ]);

      // The path given is itself a link in a cycle: typed, naming it (it was a bare ELOOP error).
      for (const attempt of [uploader.uploadFile(join(dir, 'self')), uploader.uploadDirectory(join(dir, 'a'))]) {
        const error = await attempt.catch((e: unknown) => e);
        expect(error).toBeInstanceOf(LocalPathError);
        expect(error).toMatchObject({ code: 'PATH_NOT_FOUND', message: expect.stringMatching(/cycle of links \(ELOOP\)/), hint: expect.stringMatching(/Point the link/) });
      }

      symlinkSync(join(dir, 'deleted.bin'), join(dir, 'sub', 'gone.bin'));
      await expect(uploader.uploadDirectory(dir, { artifactPath: 'dangling' })).rejects.toMatchObject({
        name: 'LocalPathError',
        code: 'PATH_NOT_FOUND',
        path: join(dir, 'sub', 'gone.bin'),
        message: expect.stringMatching(/1 symlink\(s\) in .* are dangling: "sub\/gone\.bin" is a symlink to a missing target\. Nothing was uploaded\./),
      });
      expect(Object.keys(hashTree(artifactsDir)).sort()).toEqual(['looped/ok.txt', 'looped/sub/w.bin']);
    });

    it('an invalid config file fails with the error text documented in docs/configuration.md', async () => {
      const doc = await readFile(fileURLToPath(new URL('../../docs/configuration.md', import.meta.url)), 'utf8');
      const yaml = /<!-- example:bad -->\n```yaml\n([\s\S]*?)```/.exec(doc)![1]!;
      const message = /<!-- example:bad-message -->\n```text\n([\s\S]*?)\n```/.exec(doc)![1]!;
      const configDir = writeTree(scratch(), { 'artifact-uploader.yaml': yaml });
      const src = writeTree(scratch(), { 'a.txt': 'a' });
      const uploader = new ArtifactUploader({ stage: 'hpo', configDir, runId: RUN_A, env: {}, onError: 'return' });
      const error = await uploader.uploadFile(join(src, 'a.txt')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toBe(message.replace('/srv/pipeline/artifact-uploader.yaml', join(configDir, 'artifact-uploader.yaml')));
    });
  });

  describe('failures are results, or thrown with onError: throw', () => {
    it('a run that does not exist fails with the typed error', async () => {
      const { trackingUri } = await localRun();
      const src = writeTree(scratch(), { 'a.txt': 'a' });
      const lenient = new ArtifactUploader({ stage: 'training', runId: RUN_A, trackingUri, env: {} });
      const result = await lenient.uploadFile(join(src, 'a.txt'));
      expect(result).toMatchObject({ status: 'failed', reason: 'run-unavailable', files: [{ status: 'cancelled' }] });
      expect(result.error).toBeInstanceOf(MlflowApiError);
      expect((result.error as MlflowApiError).errorCode).toBe('RESOURCE_DOES_NOT_EXIST');
      expect(lenient.stats()).toMatchObject({ failed: 1, filesFailed: 1 });

      const strict = new ArtifactUploader({ stage: 'training', runId: RUN_A, trackingUri, env: {}, onError: 'throw' });
      await expect(strict.uploadFile(join(src, 'a.txt'))).rejects.toMatchObject({ errorCode: 'RESOURCE_DOES_NOT_EXIST' });
    });

    it('passes every store option (multipart, s3, gcs, azure) to the store as given', async () => {
      const { trackingUri, run, artifactsDir } = await localRun();
      const seen: Array<Parameters<typeof resolveArtifactStore>[1]> = [];
      const storeOptions = {
        multipart: { thresholdBytes: 1024 },
        s3: { partSize: 5 * 1024 * 1024 },
        gcs: { chunkSize: 256 * 1024 },
        azure: { blockSize: 1024 * 1024, concurrency: 2 },
      };
      const uploader = new ArtifactUploader({
        stage: 'hpo',
        runId: run.runId,
        trackingUri,
        env: {},
        ...storeOptions,
        resolveStore: (uri, options) => {
          seen.push(options);
          return resolveArtifactStore(uri, options);
        },
      });
      const src = writeTree(scratch(), { 'a.txt': 'a' });
      expect(await uploader.uploadFile(join(src, 'a.txt'))).toMatchObject({ status: 'uploaded' });
      expect(readFileSync(join(artifactsDir, 'a.txt'), 'utf8')).toBe('a');
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatchObject(storeOptions);
    });

    it('a store whose listing does not match fails verification, naming the files; archives record it in the manifest', async () => {
      const { trackingUri, run, artifactsDir } = await localRun();
      const lying = (uri: string, options: Parameters<typeof resolveArtifactStore>[1]): ArtifactStore => {
        const real = resolveArtifactStore(uri, options);
        return {
          kind: real.kind,
          artifactUri: real.artifactUri,
          describe: () => real.describe(),
          uploadFile: (l, a, o) => real.uploadFile(l, a, o),
          // Pretends every .bin file lost its last byte on the way.
          list: async (dir, o) => (await real.list(dir, o)).map((e) => (e.path.endsWith('.bin') && e.size ? { ...e, size: e.size - 1 } : e)),
        };
      };
      const src = writeTree(scratch(), { 'd/w.bin': Buffer.alloc(10), 'd/ok.txt': 'ok', 'ckpt/w.bin': Buffer.alloc(50) });
      const uploader = new ArtifactUploader({ stage: 'hpo', runId: run.runId, trackingUri, env: {}, resolveStore: lying });
      const result = await uploader.uploadDirectory(join(src, 'd'), { verify: true });
      expect(result).toMatchObject({
        status: 'failed',
        reason: 'verification-failed',
        verification: { status: 'failed', mismatches: [{ artifactPath: 'w.bin', expectedSize: 10, actualSize: 9, reason: 'size' }] },
      });
      expect(result.error).toBeInstanceOf(VerificationError);
      expect(result.error!.message).toContain('w.bin (size: expected 10, got 9)');

      const archive = join(scratch(), 'a.tar.gz');
      // A .tar.gz named .bin would be odd; the archive itself is checked under the name given.
      const manifest = await createCheckpointArchive(join(src, 'ckpt'), archive);
      const archived = await uploader.uploadCheckpointArchive(archive, { manifest, artifactPath: 'best.tar.gz.bin' });
      expect(archived).toMatchObject({ status: 'failed', reason: 'verification-failed' });
      expect(archived.manifest?.verification).toMatchObject({
        status: 'failed',
        mismatches: [{ path: 'best.tar.gz.bin', reason: 'size', expectedSize: manifest.archive.size, actualSize: manifest.archive.size - 1 }],
      });
      // The manifest went up anyway, saying so.
      const uploaded = JSON.parse(readFileSync(join(artifactsDir, 'best.tar.gz.bin.manifest.json'), 'utf8'));
      expect(uploaded.verification.status).toBe('failed');

      const strict = new ArtifactUploader({ stage: 'hpo', runId: run.runId, trackingUri, env: {}, resolveStore: lying, onError: 'throw', verify: true });
      await expect(strict.uploadFile(join(src, 'd/w.bin'))).rejects.toBeInstanceOf(VerificationError);
    });

    it('an aborted signal ends the operation as failed / aborted without sending', async () => {
      const { trackingUri, run, artifactsDir } = await localRun();
      const src = writeTree(scratch(), { 'a.txt': 'a' });
      const controller = new AbortController();
      controller.abort();
      const uploader = new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri, env: {}, signal: controller.signal });
      const result = await uploader.uploadFile(join(src, 'a.txt'));
      expect(result).toMatchObject({ status: 'failed', reason: 'aborted', error: { name: 'AbortedError' } });
      expect(existsSync(join(artifactsDir, 'a.txt'))).toBe(false);
    });
  });

  it('every result carries the run id the options gave (or the gate resolved), failed and skipped ones too', async () => {
    // An HPO sweep correlates results by run id: a failed result without it could not be told apart.
    const { trackingUri, run } = await localRun();
    const src = writeTree(scratch(), { 'a.txt': 'a', 'empty/.keep': '' });
    const file = join(src, 'a.txt');
    // run-unavailable: the run is not in this store.
    const missing = await new ArtifactUploader({ stage: 'hpo', runId: RUN_A, trackingUri, env: {} }).uploadFile(file);
    expect(missing).toMatchObject({ status: 'failed', reason: 'run-unavailable', runId: RUN_A });
    // ... and with the id from MLFLOW_RUN_ID, resolved by the gate before the lookup.
    const fromEnv = await new ArtifactUploader({ stage: 'hpo', trackingUri, env: { MLFLOW_RUN_ID: RUN_A } }).uploadFile(file);
    expect(fromEnv).toMatchObject({ status: 'failed', reason: 'run-unavailable', runId: RUN_A });
    // aborted before the run lookup.
    const controller = new AbortController();
    controller.abort();
    const aborted = await new ArtifactUploader({ stage: 'hpo', runId: run.runId, trackingUri, env: {}, signal: controller.signal }).uploadFile(file);
    expect(aborted).toMatchObject({ status: 'failed', reason: 'aborted', runId: run.runId });
    // Skipped before the run is resolved: the option's id is known all the same.
    const byEnv = await new ArtifactUploader({ stage: 'hpo', runId: run.runId, trackingUri, env: { MLFLOW_SKIP_ARTIFACT_LOGGING: 'true' } }).uploadFile(file);
    expect(byEnv).toMatchObject({ status: 'skipped', reason: 'disabled-by-env', runId: run.runId });
    const configDir = writeTree(scratch(), { 'artifact-uploader.yaml': 'hpo:\n  enabled: false\n' });
    const byConfig = await new ArtifactUploader({ stage: 'hpo', runId: run.runId, trackingUri, configDir, env: {} }).uploadFile(file);
    expect(byConfig).toMatchObject({ status: 'skipped', reason: 'disabled-by-config', runId: run.runId });
    const empty = await new ArtifactUploader({ stage: 'hpo', runId: run.runId, trackingUri, env: {} }).uploadDirectory(join(src, 'empty'), { exclude: '.keep' });
    expect(empty).toMatchObject({ status: 'skipped', reason: 'empty', runId: run.runId });
  });

  it("a call's own signal ends its wait for the run lookup at once, with its reason; the lookup goes on for the other calls", async () => {
    const src = writeTree(scratch(), { 'a.txt': 'a' });
    // A tracking server that holds runs/get until told: the call is aborted while it waits.
    const held: ServerResponse[] = [];
    const call = new AbortController();
    const pruned = new Error('trial pruned');
    const server = createServer((_request, response) => {
      held.push(response);
      call.abort(pruned);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const trackingUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const uploader = new ArtifactUploader({ stage: 'training', runId: RUN_A, trackingUri, env: {}, retry: { maxRetries: 0, timeoutMs: 600_000 } });
      const other = uploader.uploadFile(join(src, 'a.txt'), { artifactPath: 'other' });
      const aborted = await uploader.uploadFile(join(src, 'a.txt'), { signal: call.signal });
      expect(aborted).toMatchObject({ status: 'failed', reason: 'aborted', error: { name: 'AbortedError', cause: pruned } });
      expect(aborted.files.map((f) => f.status)).toEqual(['cancelled']);
      // The lookup the aborted call left is still the other call's: it ends with the server's answer.
      expect(held).toHaveLength(1);
      held[0]!.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error_code: 'RESOURCE_DOES_NOT_EXIST', message: `Run '${RUN_A}' not found` }));
      expect(await other).toMatchObject({ status: 'failed', reason: 'run-unavailable', error: { name: 'MlflowApiError' } });
      await uploader.close();
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('progress: typed events, throttled so many files do not flood, every stream ending complete', async () => {
    const { trackingUri, run } = await localRun();
    const files: Record<string, string> = {};
    for (let i = 0; i < 60; i++) files[`f${String(i).padStart(2, '0')}.txt`] = 'x'.repeat(i + 1);
    const dir = writeTree(scratch(), files);
    const totalBytes = (60 * 61) / 2;

    const throttled: UploadProgressEvent[] = [];
    const slow = new ArtifactUploader({ stage: 'benchmark', runId: run.runId, trackingUri, env: {}, progressIntervalMs: 3_600_000, onProgress: (e) => throttled.push(e) });
    await slow.uploadDirectory(dir, { artifactPath: 'slow' });
    expect(throttled.filter((e) => e.type === 'phase').map((e) => e.type === 'phase' && e.phase)).toEqual(['scanning', 'uploading', 'done']);
    const totals = throttled.filter((e) => e.type === 'totals');
    // The first totals event passes the throttle, the last is always sent; nothing in between.
    expect(totals.length).toBeLessThanOrEqual(2);
    expect(totals.at(-1)).toMatchObject({ filesDone: 60, filesTotal: 60, bytesDone: totalBytes, bytesTotal: totalBytes });
    expect(throttled.filter((e) => e.type === 'file').length).toBeLessThanOrEqual(2);

    const every: UploadProgressEvent[] = [];
    const fast = new ArtifactUploader({ stage: 'benchmark', runId: run.runId, trackingUri, env: {}, progressIntervalMs: 0, onProgress: (e) => every.push(e) });
    await fast.uploadDirectory(dir, { artifactPath: 'fast' });
    const finals = every.filter((e) => e.type === 'file' && e.loaded === e.total);
    expect(new Set(finals.map((e) => e.type === 'file' && e.artifactPath)).size).toBe(60);
    const fileEvent = every.find((e) => e.type === 'file');
    expect(fileEvent).toEqual({ type: 'file', path: expect.stringMatching(/f\d\d\.txt$/), artifactPath: expect.stringMatching(/^fast\/f\d\d\.txt$/), loaded: expect.any(Number), total: expect.any(Number) });
    expect((fileEvent as { path: string }).path.startsWith(dir)).toBe(true);
    const last = every.filter((e) => e.type === 'totals').at(-1);
    expect(last).toMatchObject({ type: 'totals', filesDone: 60, bytesDone: totalBytes });
    expect(typeof (last as { bytesPerSecond: number }).bytesPerSecond).toBe('number');
  });

  it('dry run: the plan, no run lookup, nothing written', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const dir = writeTree(scratch(), { 'big.bin': Buffer.alloc(100), 'small.txt': 's', 'skip.tmp': 't' });
    const uploader = new ArtifactUploader({ stage: 'training', trackingUri, env: { MLFLOW_RUN_ID: run.runId }, dryRun: true });
    const result = await uploader.uploadCheckpoint(dir);
    expect(result).toMatchObject({
      status: 'skipped',
      reason: 'dry-run',
      runId: run.runId,
      artifactPath: 'checkpoint',
      skippedFiles: [{ path: 'skip.tmp', reason: 'default skip list (*.tmp: temporary file)' }],
      metrics: { filesPlanned: 2, bytesPlanned: 101, filesSent: 0, filesSkipped: 3, bytesSkipped: 102 },
    });
    expect(result.files).toEqual([
      { localPath: join(dir, 'big.bin'), artifactPath: 'checkpoint/big.bin', size: 100, status: 'planned' },
      { localPath: join(dir, 'small.txt'), artifactPath: 'checkpoint/small.txt', size: 1, status: 'planned' },
    ]);
    expect(existsSync(join(artifactsDir, 'checkpoint'))).toBe(false);
    // No run id at all is fine in a dry run.
    const anonymous = new ArtifactUploader({ stage: 'training', env: {}, dryRun: true });
    expect(await anonymous.uploadDirectory(dir)).toMatchObject({ status: 'skipped', reason: 'dry-run' });
    mkdirSync(join(dir, 'empty'));
    expect(await anonymous.uploadDirectory(join(dir, 'empty'))).toMatchObject({ status: 'skipped', reason: 'empty' });
  });
});

describe('ArtifactUploader: what the plan left out is logged', () => {
  it('one info line per call (counts per reason, a few examples), one debug line per path; nothing when nothing is left out', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const logs: Record<string, string> = { 'model.safetensors': 'weights', '.DS_Store': 'finder', 'sub/.DS_Store': 'finder' };
    for (let i = 0; i < 40; i++) logs[`logs/train-${i}.log`] = 'noise';
    const src = writeTree(scratch(), logs);
    symlinkSync('loop', join(src, 'loop'));
    const logger = recordingLogger();
    const uploader = new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri, env: {}, logger });

    const result = await uploader.uploadDirectory(src, { artifactPath: 'ckpt', exclude: ['*.log'], skipDefaultFiles: true });

    expect(result.status).toBe('uploaded');
    expect(readdirSync(join(artifactsDir, 'ckpt'))).toEqual(['model.safetensors']);
    expect(result.skippedFiles).toHaveLength(43);
    const info = logger.lines.filter(([level, line]) => level === 'info' && line.includes('left out'));
    expect(info).toHaveLength(1);
    expect(info[0]![1]).toMatch(/^uploadDirectory: left out 43 path\(s\): /);
    expect(info[0]![1]).toContain('2 default skip list');
    expect(info[0]![1]).toContain('40 excluded by "*.log"');
    expect(info[0]![1]).toContain('1 symlink loop');
    expect(info[0]![1].split(', ').length).toBeLessThan(10);
    const debug = logger.lines.filter(([level, line]) => level === 'debug' && line.includes(': left out '));
    expect(debug.map(([, line]) => line).sort()).toEqual(result.skippedFiles.map((s) => `uploadDirectory: left out ${s.path}: ${s.reason}`).sort());

    const quiet = recordingLogger();
    await new ArtifactUploader({ stage: 'training', runId: run.runId, trackingUri, env: {}, logger: quiet }).uploadFile(join(src, 'model.safetensors'));
    expect(quiet.lines.filter(([, line]) => line.includes('left out'))).toEqual([]);
  });
});

describe('ArtifactUploader on a ./mlruns whose file system refuses modes and times', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('an archive and its manifest are stored whole, with one warning for the call (not one per file)', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const ckpt = writeTree(scratch(), { 'model.safetensors': Buffer.alloc(4096, 3), 'config.json': '{}' });
    // A CIFS mount's answer to fchmod/futimes cannot be made here: injected at the handle, the rest is real.
    const handle = await open(join(ckpt, 'config.json'), 'r');
    const proto = Object.getPrototypeOf(handle) as Pick<FileHandle, 'chmod' | 'utimes'>;
    await handle.close();
    const refused = () => Object.assign(new Error('EPERM: operation not permitted, fchmod'), { code: 'EPERM' });
    vi.spyOn(proto, 'chmod').mockImplementation(() => Promise.reject(refused()));
    vi.spyOn(proto, 'utimes').mockImplementation(() => Promise.reject(refused()));
    const logger = recordingLogger();
    const uploader = new ArtifactUploader({ stage: 'hpo', runId: run.runId, trackingUri, env: {}, logger });

    const result = await uploader.archiveAndUploadCheckpoint(ckpt, { artifactPath: 'sweep/best.tar.gz' });

    expect(result.status).toBe('uploaded');
    expect(readdirSync(join(artifactsDir, 'sweep')).sort()).toEqual(['best.manifest.json', 'best.tar.gz']);
    const warnings = logger.lines.filter(([level]) => level === 'warn').map(([, line]) => line);
    expect(warnings).toEqual([expect.stringContaining('without their source\'s permission bits and times')]);
    expect(warnings[0]).toContain('EPERM: operation not permitted, fchmod');
  });
});
