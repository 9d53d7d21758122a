/** Which error means which exit code, and an interrupted command (SIGINT) exits 130. */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT_CODES, exitCodeForError } from '../../src/cli/exit-codes.js';
import * as errors from '../../src/core/errors.js';
import { baseEnv, cli, tempDir } from './helpers.js';

describe('exitCodeForError', () => {
  it('maps every error class', () => {
    const cases: Array<[unknown, number]> = [
      [new errors.InvalidArgumentError('x', 'bad'), 2],
      [new errors.ConfigError('bad config'), 2],
      [new errors.LocalPathError('PATH_NOT_FOUND', '/x', 'missing'), 2],
      [new errors.UnsupportedArtifactStoreError('gs', 'gs://b/x'), 2],
      [new errors.MissingDependencyError(['@aws-sdk/client-s3'], 's3'), 2],
      [new errors.ModelDirectoryError('/m', 'none'), 2],
      [new errors.PublicHubInTestError('VITEST'), 2],
      [new errors.MlflowApiError(404, 'RESOURCE_DOES_NOT_EXIST', 'mlflow/runs/get', 'no run'), 2],
      [new errors.MlflowApiError(401, 'UNAUTHENTICATED', 'mlflow/runs/get', 'who?'), 2],
      [new errors.HubError('forbidden', { status: 403 }), 2],
      [new errors.ModelValidationError('/m', ['bad'], {}), 3],
      [new errors.InvalidModelStructureError('/m', 'no layout'), 3],
      [new errors.SafetensorsError('/m/a.safetensors', 'corrupt'), 3],
      [new errors.ConversionError('/m', 'fused'), 3],
      [new errors.MlflowApiError(503, 'HTTP_503', 'mlflow/runs/get', 'down'), 1],
      [new errors.MlflowApiError(429, 'HTTP_429', 'mlflow/runs/get', 'slow down'), 1],
      [new errors.HttpStatusError(408, 'timeout'), 1],
      [new errors.HubError('down', { status: 502 }), 1],
      [new errors.HubError('no status'), 1],
      [new errors.NetworkError('reset'), 1],
      [new errors.RequestTimeoutError(1000), 1],
      [new errors.VerificationError([{ artifactPath: 'a', expectedSize: 1, reason: 'missing' }]), 1],
      [new errors.AbortedError(), 1],
      [new Error('a bug'), 1],
    ];
    for (const [error, code] of cases) expect(exitCodeForError(error), (error as Error).name + ' ' + (error as Error).message).toBe(code);
    expect(exitCodeForError(new errors.AbortedError(), true)).toBe(EXIT_CODES.INTERRUPTED);
  });

  it("a registration that left its version behind (REGISTRY_INCOMPLETE) exits as its failure does (it was 2, a usage error, for a network failure or an interrupt)", () => {
    const leftBehind = (cause: unknown) => new errors.RegistryError('REGISTRY_INCOMPLETE', 'version 3 left', { modelName: 'm', version: '3', cause });
    expect(exitCodeForError(leftBehind(new errors.NetworkError('reset')))).toBe(EXIT_CODES.FAILED);
    expect(exitCodeForError(leftBehind(new errors.MlflowApiError(400, 'INVALID_PARAMETER_VALUE', 'mlflow/registered-models/alias', 'refused')))).toBe(EXIT_CODES.USAGE);
    expect(exitCodeForError(leftBehind(new errors.AbortedError()), true)).toBe(EXIT_CODES.INTERRUPTED);
  });
});

describe('interrupts', () => {
  it('a command whose signal fired (SIGINT) stops and exits 130', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'ckpt'));
    writeFileSync(join(cwd, 'ckpt', 'a.bin'), Buffer.alloc(100));
    const runId = (await cli(['runs', 'start'], { cwd })).stdout.trim();
    const controller = new AbortController();
    controller.abort(new Error('received SIGINT'));
    const run = await cli(['training', 'ckpt'], { cwd, env: baseEnv({ MLFLOW_RUN_ID: runId }), signal: controller.signal });
    expect(run.code).toBe(EXIT_CODES.INTERRUPTED);
    const archive = await cli(['archive', 'ckpt'], { cwd, signal: controller.signal });
    expect(archive.code).toBe(EXIT_CODES.INTERRUPTED);
  });

  it('an interrupted archive says so as an interrupted upload does, that nothing was written, and that the same command starts over', async () => {
    // It said "Archiving was aborted." and nothing else, where an upload says "Interrupted by SIGINT or SIGTERM."
    const cwd = tempDir();
    mkdirSync(join(cwd, 'ckpt'));
    writeFileSync(join(cwd, 'ckpt', 'a.bin'), Buffer.alloc(100));
    const controller = new AbortController();
    controller.abort(new Error('received SIGTERM'));
    const archive = await cli(['--json', 'archive', 'ckpt'], { cwd, signal: controller.signal });
    expect(archive.code).toBe(EXIT_CODES.INTERRUPTED);
    expect(archive.json()).toMatchObject({
      ok: false,
      error: {
        code: 'ABORTED',
        message: expect.stringMatching(/^Interrupted by SIGINT or SIGTERM while archiving \S*ckpt before it started; nothing was written\./),
        hint: expect.stringMatching(/^Run the same command again when ready: archiving starts over from the first file/),
      },
    });
    expect(readdirSync(cwd)).toEqual(['ckpt']);
  });

  it('runs start and runs end on ./mlruns whose signal fired exit 130 (ABORTED), not 1 as "a bug in artifact-uploader"', async () => {
    // The local store threw the signal's own reason (main.ts's `received SIGTERM` Error): no
    // AbortedError, so exit 1, INTERNAL_ERROR, and the helper of docs/python-pipelines.md told
    // the pipeline to retry later after its own proc.terminate().
    const cwd = tempDir();
    const runId = (await cli(['runs', 'start'], { cwd })).stdout.trim();
    const controller = new AbortController();
    controller.abort(new Error('received SIGTERM'));
    for (const argv of [['runs', 'start', '--new'], ['runs', 'end', '--run-id', runId]]) {
      const run = await cli(['--json', ...argv], { cwd, signal: controller.signal });
      expect(run.code, run.stderr).toBe(EXIT_CODES.INTERRUPTED);
      expect(run.json()).toMatchObject({ ok: false, exitCode: 130, error: { name: 'AbortedError', code: 'ABORTED' } });
      expect(run.stderr).toMatch(/^error \[ABORTED\]: [^\n]+\n$/);
    }
    // Nothing was made or changed: the one run, still running.
    expect(readdirSync(join(cwd, 'mlruns', '0')).filter((name) => name !== 'meta.yaml')).toEqual([runId]);
    expect(readFileSync(join(cwd, 'mlruns', '0', runId, 'meta.yaml'), 'utf8')).toMatch(/^status: 1$/m);
  });
});
