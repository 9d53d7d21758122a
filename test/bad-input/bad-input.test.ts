/**
 * Bad input, case by case: each gives a typed error that says what is wrong and what to do
 * (or a documented `skipped` / `failed` result), and nothing is uploaded — not even the valid
 * files next to the offending one. Uploads go through a proxy whose log proves no PUT was made.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ArtifactUploader,
  ConfigError,
  ConversionError,
  InvalidArgumentError,
  LocalPathError,
  MlflowApiError,
  ModelDirectoryError,
  ModelValidationError,
  NetworkError,
  SafetensorsError,
  UnsupportedArtifactStoreError,
  convertMlxLoraToPeft,
  createCheckpointArchive,
  publishToHub,
  readSafetensorsHeader,
  validateModelArtifacts,
  type ArtifactUploaderOptions,
  type LocalPathErrorCode,
  type UploadResult,
} from '../../src/index.js';
import { startFakeHub, type FakeHub } from '../support/fake-hub/index.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { describeWithServers, mlflowServer } from '../support/servers.js';
import { encodeRaw, encodeSafetensors, tensor, writeFusedDir, writeMlxLoraDir, writePeftDir, writeShardedDir } from '../model/fixtures.js';
import { deleteRun, listRunArtifacts, tempDir } from '../faults/helpers.js';
import { serverRun } from '../uploader/helpers.js';

describeWithServers('bad input to the uploader: typed errors, nothing uploaded', () => {
  let front: FaultProxy;
  let runId: string;
  let root: string;
  const puts = () => front.requests.filter((r) => r.method === 'PUT' || r.path.includes('/mpu/'));

  beforeAll(async () => {
    front = await startFaultProxy(mlflowServer().url);
    runId = (await serverRun(mlflowServer().url)).runId;
  });
  afterAll(async () => {
    // The run every refused case pointed at holds nothing at all.
    expect(await listRunArtifacts(mlflowServer().url, runId)).toEqual([]);
    await front.stop();
  });
  beforeEach(async () => {
    front.requests.length = 0;
    root = await tempDir('au-bad-input-');
    writeFileSync(join(root, 'good.txt'), 'a valid file');
  });

  const uploader = (options: Partial<ArtifactUploaderOptions> = {}) =>
    new ArtifactUploader({ stage: 'training', runId, trackingUri: front.url, env: {}, configDir: root, retry: { maxRetries: 0 }, ...options });

  /** A directory holding a valid file and the offender. */
  const dirWith = (name: string, make: (dir: string) => void): string => {
    const dir = join(root, name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'weights.bin'), 'valid bytes that must not be uploaded either');
    make(dir);
    return dir;
  };

  async function expectLocalPathError(action: Promise<unknown>, code: LocalPathErrorCode, message: RegExp): Promise<LocalPathError> {
    const error = await action.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(LocalPathError);
    expect(error).toMatchObject({ code });
    expect((error as LocalPathError).message).toMatch(message);
    expect((error as LocalPathError).hint).toBeTruthy();
    expect(puts()).toEqual([]);
    return error as LocalPathError;
  }

  // ── paths ──
  it('01 uploadFile of a missing path: PATH_NOT_FOUND', async () => {
    await expectLocalPathError(uploader().uploadFile(join(root, 'nope.onnx')), 'PATH_NOT_FOUND', /nope\.onnx does not exist/);
  });

  it('02 uploadDirectory of a missing path: PATH_NOT_FOUND', async () => {
    await expectLocalPathError(uploader().uploadDirectory(join(root, 'no-dir')), 'PATH_NOT_FOUND', /no-dir does not exist/);
  });

  it('03 a directory where a file is expected: NOT_A_FILE, pointing to uploadDirectory', async () => {
    const dir = dirWith('a-dir', () => {});
    await expectLocalPathError(uploader().uploadFile(dir), 'NOT_A_FILE', /uploadDirectory/);
  });

  it('04 a file where a directory is expected: NOT_A_DIRECTORY, pointing to uploadFile', async () => {
    await expectLocalPathError(uploader().uploadDirectory(join(root, 'good.txt')), 'NOT_A_DIRECTORY', /uploadFile/);
  });

  it('05 a special file (FIFO) inside a directory: PATH_UNREADABLE, and its valid neighbours stay local', async () => {
    const dir = dirWith('with-fifo', (d) => execFileSync('mkfifo', [join(d, 'pipe')]));
    await expectLocalPathError(uploader().uploadDirectory(dir), 'PATH_UNREADABLE', /"pipe" is a special file/);
  });

  it('06 a FIFO given to uploadFile: NOT_A_FILE', async () => {
    const dir = dirWith('fifo-file', (d) => execFileSync('mkfifo', [join(d, 'pipe')]));
    await expectLocalPathError(uploader().uploadFile(join(dir, 'pipe')), 'NOT_A_FILE', /not a regular file/);
  });

  // 07 an unreadable file inside a directory: test/bad-input/unreadable.test.ts, which drops root to run it.

  it('08 a symlink escaping the directory: SYMLINK_ESCAPES, naming link and target', async () => {
    writeFileSync(join(root, 'outside.txt'), 'private');
    const dir = dirWith('escaping', (d) => symlinkSync(join(root, 'outside.txt'), join(d, 'link.txt')));
    await expectLocalPathError(uploader().uploadDirectory(dir), 'SYMLINK_ESCAPES', /"link\.txt" points outside the directory/);
  });

  it('09 a relative symlink climbing out with ../: SYMLINK_ESCAPES', async () => {
    const dir = dirWith('climbing', (d) => symlinkSync('../good.txt', join(d, 'up.txt')));
    await expectLocalPathError(uploader().uploadDirectory(dir), 'SYMLINK_ESCAPES', /up\.txt/);
  });

  it('10 a dangling symlink: PATH_NOT_FOUND, "dangling"', async () => {
    const dir = dirWith('dangling', (d) => symlinkSync(join(d, 'gone.bin'), join(d, 'link.bin')));
    await expectLocalPathError(uploader().uploadDirectory(dir), 'PATH_NOT_FOUND', /dangling/);
  });

  it('10b a path that is itself a symlink in a cycle of links: PATH_NOT_FOUND, "cycle of links"', async () => {
    const dir = dirWith('loop-path', (d) => symlinkSync('self', join(d, 'self')));
    await expectLocalPathError(uploader().uploadFile(join(dir, 'self')), 'PATH_NOT_FOUND', /cycle of links \(ELOOP\)/);
    await expectLocalPathError(uploader().uploadDirectory(join(dir, 'self')), 'PATH_NOT_FOUND', /cycle of links \(ELOOP\)/);
  });

  it('10c symlink loops inside a directory are not an error: skipped and reported as "symlink loop", the rest uploaded (to a run of its own)', async () => {
    const dir = dirWith('loops', (d) => {
      symlinkSync('self', join(d, 'self'));
      mkdirSync(join(d, 'sub'));
      writeFileSync(join(d, 'sub', 'inner.txt'), 'inside');
      symlinkSync('..', join(d, 'sub', 'up'));
    });
    const { runId: other } = await serverRun(mlflowServer().url);
    const result = await uploader({ runId: other }).uploadDirectory(dir);
    expect(result.status, result.error?.message).toBe('uploaded');
    expect(result.skippedFiles).toEqual([
      { path: 'self', reason: 'symlink loop' },
      { path: 'sub/up', reason: 'symlink loop' },
    ]);
    expect((await listRunArtifacts(mlflowServer().url, other)).sort()).toEqual(['sub/inner.txt', 'weights.bin']);
  });

  // ── names MLflow cannot store ──
  for (const [n, name, why] of [
    ['11', 'epoch#3.ckpt', /contains "#"/],
    ['12', 'win\\style.bin', /backslash/],
    ['13', 'line\nbreak.txt', /control character/],
    ['14', 'already%2Fencoded.bin', /%XX/],
  ] as const) {
    it(`${n} a file named ${JSON.stringify(name)} in a directory: INVALID_ARTIFACT_PATH`, async () => {
      const dir = dirWith(`name-${n}`, (d) => writeFileSync(join(d, name), 'x'));
      await expectLocalPathError(uploader().uploadDirectory(dir), 'INVALID_ARTIFACT_PATH', why);
    });
  }

  it('15 a file name that is not UTF-8: INVALID_ARTIFACT_PATH', async () => {
    const dir = dirWith('latin1', (d) => writeFileSync(Buffer.concat([Buffer.from(`${d}/caf`), Buffer.from([0xe9]), Buffer.from('.bin')]), 'x'));
    await expectLocalPathError(uploader().uploadDirectory(dir), 'INVALID_ARTIFACT_PATH', /not valid UTF-8/);
  });

  it('16 uploadFile of a single file named with "#": INVALID_ARTIFACT_PATH', async () => {
    writeFileSync(join(root, 'run#1.json'), '{}');
    await expectLocalPathError(uploader().uploadFile(join(root, 'run#1.json')), 'INVALID_ARTIFACT_PATH', /"#"/);
  });

  it('17 every offending name of a directory is listed in one error; other kinds of problem are listed too', async () => {
    const dir = dirWith('many-offenders', (d) => {
      writeFileSync(join(d, 'a#1.bin'), 'x');
      writeFileSync(join(d, 'b\\2.bin'), 'x');
      writeFileSync(join(d, 'c%41.bin'), 'x');
    });
    const error = await expectLocalPathError(uploader().uploadDirectory(dir), 'INVALID_ARTIFACT_PATH', /^3 file name\(s\)/);
    for (const name of ['a#1.bin', 'b\\\\2.bin', 'c%41.bin']) expect(error.message).toContain(name);

    symlinkSync('/etc/hostname', join(dir, 'escape.txt'));
    const mixed = await expectLocalPathError(uploader().uploadDirectory(dir), 'SYMLINK_ESCAPES', /escape\.txt/);
    expect(mixed.message).toMatch(/^1 symlink\(s\) .*escape\.txt.*\. 3 file name\(s\) .*a#1\.bin.*c%41\.bin.*Nothing was uploaded\./);
  });

  for (const [n, artifactPath] of [
    ['18', '../outside'],
    ['19', 'model/../../escape'],
  ] as const) {
    it(`${n} artifactPath ${JSON.stringify(artifactPath)} climbing out of the run: INVALID_ARTIFACT_PATH`, async () => {
      await expectLocalPathError(uploader().uploadFile(join(root, 'good.txt'), { artifactPath }), 'INVALID_ARTIFACT_PATH', /"\.\." segment/);
    });
  }

  // ── configuration ──
  it('20 a config value of the wrong type: ConfigError naming the key and the expected type', async () => {
    const error = await uploader({ config: { training: { concurrency: 'fast' } } as never })
      .uploadFile(join(root, 'good.txt'))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(/training\.concurrency: expected a number, got the string "fast"/);
    expect((error as ConfigError).issues).toEqual([expect.objectContaining({ path: 'training.concurrency' })]);
    expect(puts()).toEqual([]);
  });

  it('21 an unknown config key: ConfigError with a did-you-mean', async () => {
    const error = await uploader({ config: { trainig: {} } as never })
      .uploadFile(join(root, 'good.txt'))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(/trainig: unknown key; did you mean "training"\?/);
    expect(puts()).toEqual([]);
  });

  it('22 a config file that is not valid YAML: ConfigError with the file and line', async () => {
    const configDir = join(root, 'cfg');
    mkdirSync(configDir);
    writeFileSync(join(configDir, 'artifact-uploader.yaml'), 'training:\n  concurrency: [\n');
    const error = await uploader({ configDir })
      .uploadFile(join(root, 'good.txt'))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(/artifact-uploader\.yaml as YAML/);
    expect((error as ConfigError).message).toMatch(/line \d+/);
    expect(puts()).toEqual([]);
  });

  it('23 an unknown stage: InvalidArgumentError listing the stages, at construction', () => {
    expect(() => uploader({ stage: 'deploy' as never })).toThrow(InvalidArgumentError);
    expect(() => uploader({ stage: 'deploy' as never })).toThrow(/Unknown stage "deploy"\. Valid stages: training, conversion, benchmark, hpo/);
    expect(front.requests).toEqual([]);
  });

  it('24 an unknown artifact kind for the stage: InvalidArgumentError listing the kinds', async () => {
    const error = await uploader()
      .uploadFile(join(root, 'good.txt'), { kind: 'weights' as never })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toMatch(/Unknown artifact kind "weights" for stage "training"\. Valid kinds:/);
    expect(puts()).toEqual([]);
  });

  // ── runs and servers ──
  const expectRunUnavailable = (result: UploadResult, type: new (...args: never[]) => Error, message: RegExp) => {
    expect(result).toMatchObject({ status: 'failed', reason: 'run-unavailable' });
    expect(result.error).toBeInstanceOf(type);
    expect(result.error?.message).toMatch(message);
    expect(result.error?.hint).toBeTruthy();
    expect(result.metrics.filesSent).toBe(0);
    expect(puts()).toEqual([]);
  };

  it('25 a run id that does not exist: failed / run-unavailable, 404 with a hint', async () => {
    const result = await uploader({ runId: 'f'.repeat(32) }).uploadFile(join(root, 'good.txt'));
    expectRunUnavailable(result, MlflowApiError, /404 RESOURCE_DOES_NOT_EXIST/);
    expect(result.error?.hint).toMatch(/runId \/ MLFLOW_RUN_ID and the tracking URI \(the trackingUri option, else MLFLOW_TRACKING_URI\) point to the same server\./);
  });

  it('26 a run id that is not a run id at all: InvalidArgumentError before any request', async () => {
    const error = await uploader({ runId: '"0a1b2c"' })
      .uploadFile(join(root, 'good.txt'))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toMatch(/is not a valid MLflow run id/);
    expect(front.requests).toEqual([]);
  });

  it('27 a deleted run: failed / run-unavailable, saying how to restore it', async () => {
    const deleted = (await serverRun(mlflowServer().url)).runId;
    await deleteRun(mlflowServer().url, deleted);
    const result = await uploader({ runId: deleted }).uploadFile(join(root, 'good.txt'));
    expectRunUnavailable(result, InvalidArgumentError, /is deleted/);
    expect(result.error?.hint).toMatch(/Restore it/);
    expect(await listRunArtifacts(mlflowServer().url, deleted)).toEqual([]);
  });

  for (const [n, uri, message] of [
    ['28', 'ftp://mlflow.example.com/x', /scheme "ftp:" is not supported/],
    ['29', 'sqlite:///mlflow.db', /scheme "sqlite:" is not supported/],
  ] as const) {
    it(`${n} a tracking URI ${uri}: failed / run-unavailable with a ConfigError`, async () => {
      const result = await uploader({ trackingUri: uri }).uploadFile(join(root, 'good.txt'));
      expectRunUnavailable(result, ConfigError, message);
    });
  }

  it('30 a tracking URI that is not a URL: failed / run-unavailable with a ConfigError', async () => {
    const result = await uploader({ trackingUri: 'http://' }).uploadFile(join(root, 'good.txt'));
    expect(result).toMatchObject({ status: 'failed', reason: 'run-unavailable' });
    expect(result.error).toBeInstanceOf(ConfigError);
    expect(result.error?.message).toMatch(/is not a valid URL/);
  });

  it('31 a tracking server that is not there: failed / run-unavailable with a NetworkError', async () => {
    const result = await uploader({ trackingUri: 'http://127.0.0.1:1' }).uploadFile(join(root, 'good.txt'));
    expectRunUnavailable(result, NetworkError, /ECONNREFUSED/);
  });

  it('32 a run whose artifact store has an unknown scheme (dbfs:/): UnsupportedArtifactStoreError naming the proxied alternative', async () => {
    const res = await fetch(`${mlflowServer().url}/api/2.0/mlflow/experiments/create`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: `bad-input-dbfs-${Date.now()}`, artifact_location: 'dbfs:/databricks/mlflow' }),
    });
    const { experiment_id } = (await res.json()) as { experiment_id: string };
    const run = await fetch(`${mlflowServer().url}/api/2.0/mlflow/runs/create`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ experiment_id, start_time: Date.now() }),
    });
    const dbfsRun = ((await run.json()) as { run: { info: { run_id: string } } }).run.info.run_id;
    const result = await uploader({ runId: dbfsRun }).uploadFile(join(root, 'good.txt'));
    expectRunUnavailable(result, UnsupportedArtifactStoreError, /"dbfs:" scheme/);
    expect(result.error?.hint).toMatch(/--serve-artifacts/);
  });

  it('33 no run anywhere (no runId, no active run, no MLFLOW_RUN_ID): skipped / no-run, nothing sent', async () => {
    const result = await uploader({ runId: undefined }).uploadFile(join(root, 'good.txt'));
    expect(result).toMatchObject({ status: 'skipped', reason: 'no-run' });
    expect(front.requests).toEqual([]);
  });

  // ── archives ──
  it('34 a checkpoint archive with the manifest of another archive: InvalidArgumentError, nothing uploaded', async () => {
    const ckpt = dirWith('ckpt', () => {});
    const manifest = await createCheckpointArchive(ckpt, join(root, 'one.tar.gz'));
    writeFileSync(join(ckpt, 'more.bin'), 'more bytes make a different archive');
    await createCheckpointArchive(ckpt, join(root, 'two.tar.gz'));
    const error = await uploader()
      .uploadCheckpointArchive(join(root, 'two.tar.gz'), { manifest })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toMatch(/manifest/i);
    expect(puts()).toEqual([]);
  });
});

describeWithServers('empty inputs upload fine', () => {
  it('35 an empty file is uploaded (0 bytes), an empty directory is skipped / empty', async () => {
    const { url } = mlflowServer();
    const { runId } = await serverRun(url);
    const root = await tempDir('au-bad-input-');
    writeFileSync(join(root, 'empty.log'), '');
    mkdirSync(join(root, 'empty-dir'));
    const uploader = new ArtifactUploader({ stage: 'training', runId, trackingUri: url, env: {}, configDir: root });
    const file = await uploader.uploadFile(join(root, 'empty.log'));
    expect(file).toMatchObject({ status: 'uploaded', metrics: { filesSent: 1, bytesSent: 0 } });
    const dir = await uploader.uploadDirectory(join(root, 'empty-dir'), { artifactPath: 'nothing' });
    expect(dir).toMatchObject({ status: 'skipped', reason: 'empty', files: [] });
    expect(await listRunArtifacts(url, runId)).toEqual(['empty.log']);
  });
});

describe('bad model files: typed errors, nothing converted or published', () => {
  let hub: FakeHub;
  let root: string;
  beforeAll(async () => {
    hub = await startFakeHub();
  });
  afterAll(async () => {
    await hub.stop();
  });
  beforeEach(async () => {
    root = await tempDir('au-bad-model-');
    hub.clearLog();
  });

  const writeFile = (name: string, bytes: Uint8Array | string) => {
    const path = join(root, name);
    writeFileSync(path, bytes);
    return path;
  };
  const headerError = async (path: string, reason: RegExp) => {
    const error = await readSafetensorsHeader(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SafetensorsError);
    expect((error as SafetensorsError).reason).toMatch(reason);
    expect((error as SafetensorsError).hint).toBeTruthy();
  };
  const publishRefused = async (modelDir: string, message: RegExp) => {
    const error = await publishToHub({ modelDir, repoId: 'tester/refused', hubUrl: hub.url, accessToken: hub.token, env: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelValidationError);
    expect((error as Error).message).toMatch(message);
    // Refused before any request: no repo, no upload, no commit.
    expect(hub.requests).toEqual([]);
  };

  it('36 a safetensors header that is not JSON', async () => {
    await headerError(writeFile('a.safetensors', encodeRaw('{"w": {"dtype": "F32", ')), /header is not valid JSON/);
  });

  it('37 a safetensors file shorter than its 8-byte length prefix (truncated)', async () => {
    await headerError(writeFile('b.safetensors', Buffer.from([1, 2, 3])), /shorter than the 8-byte header length prefix/);
  });

  it('38 a header length larger than the file', async () => {
    await headerError(writeFile('c.safetensors', encodeRaw('{}', new Uint8Array(0), 4096n)), /header length 4096 is larger than the file/);
  });

  it('39 tensor data offsets beyond the data section (truncated data)', async () => {
    const full = encodeSafetensors([tensor('w', 'F32', [4, 4])]);
    await headerError(writeFile('d.safetensors', full.subarray(0, full.length - 16)), /bytes|data/);
  });

  it('40 an unknown dtype in the header', async () => {
    await headerError(writeFile('e.safetensors', encodeRaw('{"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(4))), /unknown dtype "F33"/);
  });

  it('41 a sharded model with a shard missing from the index: invalid, and publishToHub refuses before any request', async () => {
    const { dir, weightMap } = writeShardedDir(root, 'sharded');
    const missing = Object.values(weightMap)[0]!;
    rmSync(join(dir, missing));
    const report = await validateModelArtifacts(dir);
    expect(report.overallValid).toBe(false);
    expect(report.errors.join('\n')).toContain(missing);
    await publishRefused(dir, new RegExp(missing.replace(/\./g, '\\.')));
  });

  it('42 placeholder weights (a text file where weights should be): invalid, and not published', async () => {
    const dir = writeFusedDir(root, 'placeholder');
    writeFileSync(join(dir, 'model.safetensors'), 'TODO: upload the real weights here\n');
    const report = await validateModelArtifacts(dir);
    expect(report.overallValid).toBe(false);
    expect(report.errors.join('\n')).toMatch(/model\.safetensors/);
    await publishRefused(dir, /model\.safetensors/);
  });

  it('43 a fused model handed to the MLX→PEFT converter: ConversionError, no output written', async () => {
    const dir = writeFusedDir(root, 'fused');
    const outDir = join(root, 'converted');
    const error = await convertMlxLoraToPeft(dir, { outDir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConversionError);
    expect((error as Error).message).toMatch(/holds a fused model.*fused models are never converted/);
    expect(existsSync(outDir)).toBe(false);
  });

  it('44 a PEFT adapter handed to the converter: ConversionError ("nothing to convert"), no output written', async () => {
    const dir = writePeftDir(root, 'peft');
    const outDir = join(root, 'converted');
    const error = await convertMlxLoraToPeft(dir, { outDir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConversionError);
    expect((error as Error).message).toMatch(/already holds a PEFT adapter/);
    expect(existsSync(outDir)).toBe(false);
  });

  it('45 an MLX adapter whose weights file is corrupt: ConversionError or SafetensorsError, no output written', async () => {
    const dir = writeMlxLoraDir(root, 'mlx-corrupt');
    writeFileSync(join(dir, 'adapters', 'adapters.safetensors'), encodeRaw('not json at all'));
    const outDir = join(root, 'converted');
    const error = await convertMlxLoraToPeft(dir, { outDir }).catch((e: unknown) => e);
    expect([ConversionError, SafetensorsError].some((type) => error instanceof type)).toBe(true);
    expect((error as Error).message).toMatch(/adapters\.safetensors/);
    expect(existsSync(outDir)).toBe(false);
  });

  it('46 a model directory that does not exist: ModelDirectoryError from the converter, nothing published', async () => {
    const missing = join(root, 'no-such-model');
    await expect(convertMlxLoraToPeft(missing)).rejects.toBeInstanceOf(ModelDirectoryError);
    const error = await publishToHub({ modelDir: missing, repoId: 'tester/x', hubUrl: hub.url, accessToken: hub.token, env: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain('no-such-model');
    expect(hub.requests).toEqual([]);
  });

  it('47 a repo id that is not namespace/name: InvalidArgumentError, no request', async () => {
    const dir = writeFusedDir(root, 'fine');
    const error = await publishToHub({ modelDir: dir, repoId: 'just-a-name', hubUrl: hub.url, accessToken: hub.token, env: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toMatch(/namespace\/name/);
    expect(hub.requests).toEqual([]);
  });
});
