import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, InvalidArgumentError, LocalPathError } from '../../src/core/errors.js';
import {
  assertArtifactKind,
  assertStage,
  getArtifactConfig,
  isArtifactEnabled,
  loadTrackingConfig,
  resolveTrackingConfig,
} from '../../src/config/load.js';
import { ARTIFACT_KINDS, STAGES, type TrackingConfig } from '../../src/config/schema.js';
import { baseEnv, cli } from '../cli/helpers.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'au-config-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** An environment with nothing of ours in it, so the developer's shell cannot leak into tests. */
const noEnv = { HOME: '/home/tester' };

async function configError(promise: Promise<unknown>): Promise<ConfigError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

describe('defaults', () => {
  it('enables every stage and every artifact kind when no file exists', async () => {
    const { config, file, source, overrides } = await resolveTrackingConfig({ configDir: dir, env: noEnv });
    expect(file).toBeUndefined();
    expect(source).toBe('defaults');
    expect(overrides).toEqual([]);
    for (const stage of STAGES) {
      expect(config[stage].enabled).toBe(true);
      expect(config[stage].concurrency).toBe(8);
      expect(config[stage].include).toEqual([]);
      expect(config[stage].exclude).toEqual([]);
      for (const kind of ARTIFACT_KINDS[stage]) expect(isArtifactEnabled(config, stage, kind as never)).toBe(true);
    }
    expect(config.training.checkpoint.artifactPath).toBe('checkpoint');
    expect(config.training.metrics.artifactPath).toBe('metrics');
    expect(config.conversion.onnxModel.artifactPath).toBe('onnx');
    expect(config.benchmark.results.artifactPath).toBe('benchmark');
    expect(config.hpo.bestTrialArchive.artifactPath).toBe('best_trial_checkpoint.tar.gz');
    expect(config.hpo.trialCheckpoints.artifactPath).toBe('trials');
    expect(config.hub).toEqual({});
  });

  it('falls back to ARTIFACT_UPLOADER_CONFIG_DIR when no configDir is given', async () => {
    await writeFile(join(dir, 'artifact-uploader.yaml'), 'benchmark:\n  enabled: false\n');
    const { config, file } = await resolveTrackingConfig({ env: { ARTIFACT_UPLOADER_CONFIG_DIR: dir } });
    expect(file).toBe(join(dir, 'artifact-uploader.yaml'));
    expect(config.benchmark.enabled).toBe(false);
  });

  it('expands a leading ~ in ARTIFACT_UPLOADER_CONFIG_DIR, as the CLI does (no shell expands it for a value set in code); ~user stays as written', async () => {
    await mkdir(join(dir, 'x'));
    await writeFile(join(dir, 'x', 'artifact-uploader.yaml'), 'benchmark:\n  enabled: false\n');
    for (const configDir of ['~/x', ' ~/x ', '~/x/']) {
      const { config, file } = await resolveTrackingConfig({ env: { HOME: dir, ARTIFACT_UPLOADER_CONFIG_DIR: configDir } });
      expect(file).toBe(join(dir, 'x', 'artifact-uploader.yaml'));
      expect(config.benchmark.enabled).toBe(false);
    }
    const literal = await resolveTrackingConfig({ env: { HOME: dir, ARTIFACT_UPLOADER_CONFIG_DIR: '~nosuchuser/x' } }).catch((e: unknown) => e);
    expect(literal).toMatchObject({ code: 'PATH_NOT_FOUND', path: join(process.cwd(), '~nosuchuser', 'x') });
  });
});

describe('config files', () => {
  it('reads artifact-uploader.yaml', async () => {
    await writeFile(
      join(dir, 'artifact-uploader.yaml'),
      [
        '# only what differs from the defaults',
        'concurrency: 4',
        'training:',
        '  metrics:',
        '    enabled: false',
        '  exclude: ["*.tmp", "optimizer/**"]',
        'hpo:',
        '  concurrency: 2',
        '  bestTrialArchive:',
        '    artifactPath: hpo/best.tar.gz',
        '',
      ].join('\n'),
    );
    const { config, file, source } = await resolveTrackingConfig({ configDir: dir, env: noEnv });
    expect(file).toBe(join(dir, 'artifact-uploader.yaml'));
    expect(source).toBe('file');
    expect(isArtifactEnabled(config, 'training', 'metrics')).toBe(false);
    expect(isArtifactEnabled(config, 'training', 'checkpoint')).toBe(true);
    expect(config.training.exclude).toEqual(['*.tmp', 'optimizer/**']);
    expect(config.concurrency).toBe(4);
    expect(config.training.concurrency).toBe(4);
    expect(config.hpo.concurrency).toBe(2);
    expect(config.hpo.bestTrialArchive).toEqual({ enabled: true, artifactPath: 'hpo/best.tar.gz' });
  });

  it('reads artifact-uploader.yml and artifact-uploader.json', async () => {
    await writeFile(join(dir, 'artifact-uploader.yml'), 'conversion:\n  onnxModel:\n    enabled: false\n');
    expect(isArtifactEnabled(await loadTrackingConfig({ configDir: dir, env: noEnv }), 'conversion', 'onnxModel')).toBe(false);

    await rm(join(dir, 'artifact-uploader.yml'));
    await writeFile(join(dir, 'artifact-uploader.json'), JSON.stringify({ hpo: { trialCheckpoints: { enabled: false } } }));
    const config = await loadTrackingConfig({ configDir: dir, env: noEnv });
    expect(isArtifactEnabled(config, 'hpo', 'trialCheckpoints')).toBe(false);
    expect(isArtifactEnabled(config, 'hpo', 'bestTrialArchive')).toBe(true);
  });

  it('treats an empty YAML file as all defaults', async () => {
    await writeFile(join(dir, 'artifact-uploader.yaml'), '# nothing yet\n');
    expect((await loadTrackingConfig({ configDir: dir, env: noEnv })).training.enabled).toBe(true);
  });

  it('refuses two candidate files, naming both', async () => {
    await writeFile(join(dir, 'artifact-uploader.yaml'), '{}');
    await writeFile(join(dir, 'artifact-uploader.json'), '{}');
    const error = await configError(loadTrackingConfig({ configDir: dir, env: noEnv }));
    expect(error.message).toContain(join(dir, 'artifact-uploader.yaml'));
    expect(error.message).toContain(join(dir, 'artifact-uploader.json'));
    expect(error.hint).toMatch(/Delete or rename/);
  });

  it('refuses a hub.repoId the Hub refuses when the config loads, with the rule publishToHub applies', async () => {
    for (const repoId of ['my-model', 'my-org/x.git', 'my-org/a--b', 'my-org/a..b', '-org/model', 'org/model-', `org/${'m'.repeat(97)}`]) {
      await writeFile(join(dir, 'artifact-uploader.yaml'), `hub:\n  repoId: "${repoId}"\n`);
      const error = await configError(loadTrackingConfig({ configDir: dir, env: noEnv }));
      expect(error.issues).toEqual([{ path: 'hub.repoId', message: expect.stringContaining('expected a Hub repo id like "my-org/my-model"') }]);
      expect(error.message).toContain(`got the string ${JSON.stringify(repoId)}`);
    }
    for (const repoId of ['my-org/my-model', 'me/Llama-3.2_1B', `org/${'m'.repeat(96)}`]) {
      await writeFile(join(dir, 'artifact-uploader.yaml'), `hub:\n  repoId: "${repoId}"\n`);
      expect((await loadTrackingConfig({ configDir: dir, env: noEnv })).hub.repoId).toBe(repoId);
    }
  });

  it('expands ~ in hub.fineTunedModelsDir and resolves relative paths against the file', async () => {
    await writeFile(join(dir, 'artifact-uploader.yaml'), 'hub:\n  fineTunedModelsDir: ~/models\n  repoId: me/my-model\n  private: true\n');
    const config = await loadTrackingConfig({ configDir: dir, env: noEnv });
    expect(config.hub).toEqual({ fineTunedModelsDir: '/home/tester/models', repoId: 'me/my-model', private: true });

    await writeFile(join(dir, 'artifact-uploader.yaml'), 'hub:\n  fineTunedModelsDir: out/models\n');
    expect((await loadTrackingConfig({ configDir: dir, env: noEnv })).hub.fineTunedModelsDir).toBe(join(dir, 'out/models'));
  });

  it('refuses a directory named like the config file (a bind mount of a missing file), naming it, instead of using the defaults', async () => {
    const bogus = join(dir, 'artifact-uploader.yaml');
    await mkdir(bogus);
    const error = await configError(loadTrackingConfig({ configDir: dir, env: noEnv }));
    expect(error.file).toBe(bogus);
    expect(error.message).toContain(`${bogus} is a directory`);
    expect(error.hint).toMatch(/bind-mounts a host file that does not exist/);
    await mkdir(join(dir, 'ck'));
    await writeFile(join(dir, 'ck', 'a.bin'), 'a');
    const run = await cli(['--config-dir', dir, '--dry-run', 'training', 'ck'], { cwd: dir, env: baseEnv() });
    expect(run.code, run.stdout).toBe(2);
    expect(run.stderr).toContain(`error [CONFIG_INVALID]: Tracking config ${bogus} is a directory`);
  });

  it('refuses a config file symlink whose target is missing, naming both', async () => {
    const link = join(dir, 'artifact-uploader.yml');
    await symlink(join(dir, 'gone.yml'), link);
    const error = await configError(loadTrackingConfig({ configDir: dir, env: noEnv }));
    expect(error.file).toBe(link);
    expect(error.message).toContain(join(dir, 'gone.yml'));
    expect(error.hint).toBeTruthy();
  });

  it('refuses a configDir that does not exist', async () => {
    const missing = join(dir, 'nope');
    const error = await loadTrackingConfig({ configDir: missing, env: noEnv }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LocalPathError);
    expect((error as LocalPathError).code).toBe('PATH_NOT_FOUND');
    expect((error as LocalPathError).message).toContain(missing);
    // The option beats the variable: "set ARTIFACT_UPLOADER_CONFIG_DIR" would change nothing.
    expect((error as LocalPathError).hint).toBe('Create it, or pass another configDir.');
  });

  it('names ARTIFACT_UPLOADER_CONFIG_DIR when the unusable config dir came from it, instead of telling the user to set it', async () => {
    const missing = join(dir, 'nope');
    const notFound = await loadTrackingConfig({ env: { ...noEnv, ARTIFACT_UPLOADER_CONFIG_DIR: missing } }).catch((e: unknown) => e);
    expect(notFound).toBeInstanceOf(LocalPathError);
    expect(notFound).toMatchObject({
      code: 'PATH_NOT_FOUND',
      path: missing,
      message: expect.stringContaining(`Config directory ${missing} (from ARTIFACT_UPLOADER_CONFIG_DIR) does not exist.`),
      hint: 'Create it, or set ARTIFACT_UPLOADER_CONFIG_DIR to the directory that holds artifact-uploader.yaml (unset, the working directory is searched).',
    });
    const file = join(dir, 'artifact-uploader.yaml');
    await writeFile(file, 'training:\n  enabled: false\n');
    const aFile = await loadTrackingConfig({ env: { ...noEnv, ARTIFACT_UPLOADER_CONFIG_DIR: file } }).catch((e: unknown) => e);
    expect(aFile).toMatchObject({
      code: 'NOT_A_DIRECTORY',
      message: expect.stringContaining(`ARTIFACT_UPLOADER_CONFIG_DIR ${file} is a file, not a directory.`),
      hint: 'Set ARTIFACT_UPLOADER_CONFIG_DIR to the directory that holds artifact-uploader.yaml, not the file itself.',
    });
  });
});

describe('invalid config files', () => {
  it('reports invalid YAML with the file name and the line', async () => {
    const file = join(dir, 'artifact-uploader.yaml');
    await writeFile(file, 'training:\n  enabled: true\n    checkpoint: x\n');
    const error = await configError(loadTrackingConfig({ configDir: dir, env: noEnv }));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.file).toBe(file);
    expect(error.message).toContain(`Could not parse ${file} as YAML`);
    expect(error.message).toMatch(/at line 2, column 12/);
  });

  it('reports invalid JSON with the file name and the line', async () => {
    const file = join(dir, 'artifact-uploader.json');
    await writeFile(file, '{\n  "training": {\n    "enabled": true,\n  }\n}\n');
    const error = await configError(loadTrackingConfig({ configDir: dir, env: noEnv }));
    expect(error.message).toContain(`Could not parse ${file} as JSON (line 4)`);
    expect(error.hint).toMatch(/trailing commas/);
  });

  it('an alias bomb in artifact-uploader.yaml is CONFIG_INVALID naming the file, not a crash', async () => {
    const file = join(dir, 'artifact-uploader.yaml');
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i++) levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
    await writeFile(file, `${levels.join('\n')}\n`);
    const error = await configError(loadTrackingConfig({ configDir: dir, env: noEnv }));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.file).toBe(file);
    expect(error.message).toContain(`Could not parse ${file} as YAML`);
    expect(error.message).toMatch(/aliases .* more than 100 times/);
  });

  it('the CLI reports the alias bomb as CONFIG_INVALID with exit 2', async () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i++) levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
    await writeFile(join(dir, 'artifact-uploader.yaml'), `${levels.join('\n')}\n`);
    await writeFile(join(dir, 'metrics.json'), '{}');
    const run = await cli(['file', 'metrics.json', '--stage', 'training', '--json'], { cwd: dir, env: baseEnv({ ARTIFACT_UPLOADER_CONFIG_DIR: dir, MLFLOW_RUN_ID: 'r1' }) });
    expect(run.code, run.stdout + run.stderr).toBe(2);
    expect(run.json().error).toMatchObject({ code: 'CONFIG_INVALID', file: join(dir, 'artifact-uploader.yaml') });
  });

  it('YAML nested too deeply to parse is CONFIG_INVALID naming the file', async () => {
    const file = join(dir, 'artifact-uploader.yaml');
    await writeFile(file, `training: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`);
    const error = await configError(loadTrackingConfig({ configDir: dir, env: noEnv }));
    expect(error.file).toBe(file);
    expect(error.message).toMatch(/nesting is too deep to parse/);
  });

  it('reports duplicate YAML keys instead of letting the last one win', async () => {
    await writeFile(join(dir, 'artifact-uploader.yaml'), 'training:\n  enabled: true\n  enabled: false\n');
    const error = await configError(loadTrackingConfig({ configDir: dir, env: noEnv }));
    expect(error.message).toMatch(/unique/i);
  });

  it('refuses a YAML tag it cannot resolve (!env, !include, !!omap) instead of keeping the text after it or reading a Map as an empty section', async () => {
    const file = join(dir, 'artifact-uploader.yaml');
    const cases: Array<[text: string, where: RegExp]> = [
      ['training:\n  checkpoint:\n    artifactPath: !env RUN_DIR\n', /Unresolved tag: !env at line 3, column 19/],
      ['hpo:\n  bestTrialArchive: !include best.yaml\n', /Unresolved tag: !include at line 2, column 21/],
      ['training: !!omap\n  - enabled: false\n', /Unresolved tag: tag:yaml\.org,2002:omap at line 1, column 11/],
    ];
    for (const [text, where] of cases) {
      await writeFile(file, text);
      const error = await configError(loadTrackingConfig({ configDir: dir, env: noEnv }));
      expect(error.file).toBe(file);
      expect(error.message).toContain(`Could not parse ${file} as YAML: `);
      expect(error.message).toMatch(where);
      expect(error.hint).toMatch(/^Write the value itself: the file is read as plain YAML 1\.2/);
    }
  });

  it('reports duplicate JSON keys too, instead of letting the last one win as JSON.parse does', async () => {
    const file = join(dir, 'artifact-uploader.json');
    for (const text of ['{\n  "training": {\n    "enabled": false,\n    "enabled": true\n  }\n}\n', '{\n  "training": {"enabled": false},\n  "hpo": {},\n  "training": {}\n}\n']) {
      await writeFile(file, text);
      const error = await configError(loadTrackingConfig({ configDir: dir, env: noEnv }));
      expect(error.file).toBe(file);
      expect(error.message).toMatch(new RegExp(`^Could not parse ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} as JSON: Map keys must be unique at line 4`));
      expect(error.hint).toBe('Keep one of the keys: with two, JSON.parse would silently use the last.');
    }
  });

  it('names the file, each key path with its line, and what was expected (documented text)', async () => {
    const file = join(dir, 'artifact-uploader.yaml');
    await writeFile(
      file,
      [
        'training:', //                       1
        '  chekpoint:', //                    2
        '    enabled: false', //              3
        '  checkpoint:', //                   4
        '    enabled: yes', //                5
        '    artifactPath: /abs/path', //     6
        '  concurrency: 0', //                7
        'benchmark:', //                      8
        '  include: "*.json"', //             9
        'hub:', //                            10
        '  repoId: "not a repo"', //          11
        'tracking: {}', //                    12
        '',
      ].join('\n'),
    );
    const error = await configError(loadTrackingConfig({ configDir: dir, env: noEnv }));
    expect(error.file).toBe(file);
    // This exact text is quoted in docs/configuration.md ("When the file is wrong").
    expect(error.message).toBe(
      [
        `Invalid tracking config in ${file} (7 problems):`,
        '  - training.chekpoint (line 2): unknown key; did you mean "checkpoint"? Allowed here: enabled, include, exclude, concurrency, checkpoint, metrics.',
        '  - training.checkpoint.enabled (line 5): expected true or false, got the string "yes" (YAML 1.2 reads yes/no/on/off as strings: write true or false)',
        '  - training.checkpoint.artifactPath (line 6): expected a relative artifact path with "/" separators and no ".." segment, e.g. "checkpoint" or "models/onnx", got the string "/abs/path"',
        '  - training.concurrency (line 7): expected a number >= 1, got the number 0',
        '  - benchmark.include (line 9): expected a list, got the string "*.json"',
        '  - hub.repoId (line 11): expected a Hub repo id like "my-org/my-model", got the string "not a repo"',
        '  - tracking (line 12): unknown key; did you mean "training"? Allowed here: version, concurrency, training, conversion, benchmark, hpo, hub.',
        '  Every key, its type and default are listed in docs/configuration.md.',
      ].join('\n'),
    );
    expect(error.issues.map((i) => i.path)).toEqual([
      'training.chekpoint',
      'training.checkpoint.enabled',
      'training.checkpoint.artifactPath',
      'training.concurrency',
      'benchmark.include',
      'hub.repoId',
      'tracking',
    ]);
  });

  it('suggests camelCase keys for snake_case spellings', async () => {
    await writeFile(join(dir, 'artifact-uploader.json'), JSON.stringify({ conversion: { onnx_model: { artifact_path: 'x' } } }));
    const error = await configError(loadTrackingConfig({ configDir: dir, env: noEnv }));
    expect(error.issues).toEqual([
      {
        path: 'conversion.onnx_model',
        message: 'unknown key; did you mean "onnxModel"? Allowed here: enabled, include, exclude, concurrency, onnxModel.',
      },
    ]);
    expect(error.message).toContain('conversion.onnx_model (line 1)');
  });

  it('refuses an include/exclude glob that cannot compile when the config loads, naming the file and the key', async () => {
    const file = join(dir, 'artifact-uploader.yaml');
    await writeFile(file, 'training:\n  include: ["shard-[9-0].bin"]\nhpo:\n  exclude:\n    - "*.tmp"\n    - "cache\\\\"\n');
    const error = await configError(loadTrackingConfig({ configDir: dir, env: noEnv }));
    expect(error.file).toBe(file);
    expect(error.issues.map((issue) => issue.path)).toEqual(['training.include.0', 'hpo.exclude.1']);
    expect(error.issues[0]!.message).toMatch(/^expected a glob pattern, but this one has a character class that cannot match .*; write its ranges in order .*, got the string "shard-\[9-0\]\.bin"$/);
    expect(error.issues[1]!.message).toBe('expected a glob pattern, but this one ends with a lone "\\", got the string "cache\\\\"');
  });

  it('gives the line of a bad list item too, in YAML and in JSON', async () => {
    const yamlFile = join(dir, 'artifact-uploader.yaml');
    await writeFile(yamlFile, 'hpo:\n  exclude:\n    - "*.tmp"\n\n    - ""\ntraining:\n  include: [a, 7]\n');
    const fromYaml = await configError(loadTrackingConfig({ configDir: dir, env: noEnv }));
    expect(fromYaml.message).toContain('  - hpo.exclude.1 (line 5): expected a non-empty string, got the string ""\n');
    expect(fromYaml.message).toContain('  - training.include.1 (line 7): expected a string, got the number 7\n');
    await rm(yamlFile);
    await writeFile(join(dir, 'artifact-uploader.json'), '{\n  "training": {\n    "exclude": [\n      "a",\n      false\n    ]\n  }\n}\n');
    const fromJson = await configError(loadTrackingConfig({ configDir: dir, env: noEnv }));
    expect(fromJson.message).toContain('  - training.exclude.1 (line 5): expected a string, got the boolean false\n');
  });

  it('reports a number out of every range (a huge integer, .inf, .nan) once, against the bound of the key, without contradicting itself', async () => {
    await writeFile(
      join(dir, 'artifact-uploader.yaml'),
      'concurrency: 99999999999999999999999\ntraining:\n  concurrency: -9007199254740993\nhpo:\n  concurrency: .inf\nbenchmark:\n  concurrency: .nan\n',
    );
    const error = await configError(loadTrackingConfig({ configDir: dir, env: noEnv }));
    expect(error.issues).toEqual([
      { path: 'concurrency', message: 'expected a number <= 64, got the number 1e+23' },
      { path: 'training.concurrency', message: 'expected a number >= 1, got the number -9007199254740992' },
      { path: 'hpo.concurrency', message: 'expected a finite number, got the number Infinity' },
      { path: 'benchmark.concurrency', message: 'expected a finite number, got the number NaN' },
    ]);
  });

  it('says that a YAML merge key (<<) is not read, rather than only "unknown key", and that a whole-section alias works', async () => {
    await writeFile(
      join(dir, 'artifact-uploader.yaml'),
      'training:\n  checkpoint: &off\n    enabled: false\n  metrics: *off\nhpo:\n  trialCheckpoints:\n    <<: *off\n    artifactPath: t\n',
    );
    const error = await configError(loadTrackingConfig({ configDir: dir, env: noEnv }));
    expect(error.issues).toEqual([{ path: 'hpo.trialCheckpoints.<<', message: expect.stringMatching(/^merge keys \("<<: \*alias"\) are YAML 1\.1, not read here \(YAML 1\.2\): write the keys out/) }]);
    expect(error.message).toContain('hpo.trialCheckpoints.<< (line 7)');
    // The alias of a whole section, which the message offers, loads.
    await writeFile(join(dir, 'artifact-uploader.yaml'), 'training:\n  checkpoint: &off\n    enabled: false\n  metrics: *off\n');
    const config = await loadTrackingConfig({ configDir: dir, env: noEnv });
    expect([config.training.checkpoint.enabled, config.training.metrics.enabled, config.training.metrics.artifactPath]).toEqual([false, false, 'metrics']);
  });

  it('refuses an artifactPath the uploader would refuse (#, //, a "." segment) when the config loads, at its key, not at upload time as "rename the file(s)"', async () => {
    const file = join(dir, 'artifact-uploader.yaml');
    await writeFile(file, 'training:\n  checkpoint:\n    artifactPath: "ckpt#1"\n  metrics:\n    artifactPath: eval//metrics\nhpo:\n  trialCheckpoints:\n    artifactPath: ./trials\nbenchmark:\n  results:\n    artifactPath: bench/\n');
    const error = await configError(loadTrackingConfig({ configDir: dir, env: noEnv }));
    expect(error.file).toBe(file);
    expect(error.issues).toEqual([
      { path: 'training.checkpoint.artifactPath', message: 'expected an artifact path MLflow can store, but this one contains "#", which MLflow rejects, got the string "ckpt#1"' },
      { path: 'training.metrics.artifactPath', message: 'expected an artifact path MLflow can store, but this one contains an empty segment ("//" or a trailing "/"), got the string "eval//metrics"' },
      { path: 'hpo.trialCheckpoints.artifactPath', message: 'expected an artifact path MLflow can store, but this one contains a "." segment; give the path in normal form, got the string "./trials"' },
    ]);
    expect(error.message).toContain('training.checkpoint.artifactPath (line 3)');
    // A trailing "/" is dropped when the path is used, as it always was: not a problem.
    await writeFile(file, 'benchmark:\n  results:\n    artifactPath: bench/\n');
    expect((await loadTrackingConfig({ configDir: dir, env: noEnv })).benchmark.results.artifactPath).toBe('bench/');
  });

  it('rejects a top level that is not a mapping', async () => {
    await writeFile(join(dir, 'artifact-uploader.yaml'), '- training\n- hpo\n');
    const error = await configError(loadTrackingConfig({ configDir: dir, env: noEnv }));
    expect(error.message).toContain('(top level): expected a mapping of keys to values (stage sections), got a list');
  });

  it('validates the config option the same way, naming it as the source', async () => {
    const error = await configError(
      loadTrackingConfig({ config: { training: { enabled: 'no' as unknown as boolean } }, env: noEnv }),
    );
    expect(error.file).toBeUndefined();
    expect(error.message).toContain('Invalid tracking config in the `config` option (1 problem):');
    expect(error.message).toContain('training.enabled: expected true or false, got the string "no"');
  });
});

describe('the config option', () => {
  it('replaces the file, and a loaded config round-trips through it unchanged', async () => {
    await writeFile(join(dir, 'artifact-uploader.yaml'), 'training:\n  enabled: false\n');
    const { config, source } = await resolveTrackingConfig({ configDir: dir, config: { hpo: { enabled: false } }, env: noEnv });
    expect(source).toBe('option');
    expect(config.training.enabled).toBe(true);
    expect(config.hpo.enabled).toBe(false);
    const again: TrackingConfig = await loadTrackingConfig({ config, env: noEnv });
    expect(again).toEqual(config);
  });
});

describe('environment overrides', () => {
  it('beat file values and are reported', async () => {
    await mkdir(join(dir, 'cfg'));
    await writeFile(
      join(dir, 'cfg', 'artifact-uploader.yaml'),
      'concurrency: 4\ntraining:\n  enabled: false\n  concurrency: 3\nhpo:\n  bestTrialArchive:\n    enabled: false\nhub:\n  fineTunedModelsDir: /from/file\n',
    );
    const { config, overrides } = await resolveTrackingConfig({
      configDir: join(dir, 'cfg'),
      env: {
        ...noEnv,
        ARTIFACT_UPLOADER_TRAINING_ENABLED: 'true',
        ARTIFACT_UPLOADER_TRAINING_METRICS_ENABLED: '0',
        ARTIFACT_UPLOADER_HPO_BEST_TRIAL_ARCHIVE_ENABLED: 'TRUE',
        ARTIFACT_UPLOADER_CONCURRENCY: '16',
        ARTIFACT_UPLOADER_FINE_TUNED_MODELS_DIR: '~/elsewhere',
      },
    });
    expect(config.training.enabled).toBe(true);
    expect(isArtifactEnabled(config, 'training', 'metrics')).toBe(false);
    expect(isArtifactEnabled(config, 'hpo', 'bestTrialArchive')).toBe(true);
    expect(config.concurrency).toBe(16);
    for (const stage of STAGES) expect(config[stage].concurrency).toBe(16);
    expect(config.hub.fineTunedModelsDir).toBe('/home/tester/elsewhere');
    expect(overrides).toEqual([
      { env: 'ARTIFACT_UPLOADER_TRAINING_ENABLED', path: 'training.enabled', value: true },
      { env: 'ARTIFACT_UPLOADER_TRAINING_METRICS_ENABLED', path: 'training.metrics.enabled', value: false },
      { env: 'ARTIFACT_UPLOADER_HPO_BEST_TRIAL_ARCHIVE_ENABLED', path: 'hpo.bestTrialArchive.enabled', value: true },
      { env: 'ARTIFACT_UPLOADER_CONCURRENCY', path: 'concurrency', value: 16 },
      { env: 'ARTIFACT_UPLOADER_FINE_TUNED_MODELS_DIR', path: 'hub.fineTunedModelsDir', value: '/home/tester/elsewhere' },
    ]);
  });

  it('beat the config option too', async () => {
    const config = await loadTrackingConfig({
      config: { conversion: { enabled: true } },
      env: { ...noEnv, ARTIFACT_UPLOADER_CONVERSION_ENABLED: 'false' },
    });
    expect(getArtifactConfig(config, 'conversion', 'onnxModel')).toEqual({
      enabled: false,
      artifactPath: 'onnx',
      disabledBy: 'conversion.enabled',
    });
  });

  it('refuses values that are not booleans or integers in range, naming the variable', async () => {
    let error = await configError(loadTrackingConfig({ configDir: dir, env: { ARTIFACT_UPLOADER_HPO_ENABLED: 'nope' } }));
    expect(error.message).toMatch(/^Environment variable ARTIFACT_UPLOADER_HPO_ENABLED must be "true" or "false" \(or 1\/0\), got "nope"\. /);
    expect(error.hint).toBe('Set ARTIFACT_UPLOADER_HPO_ENABLED to true or false (1 or 0), or unset it for the default.');
    error = await configError(loadTrackingConfig({ configDir: dir, env: { ARTIFACT_UPLOADER_CONCURRENCY: '0' } }));
    expect(error.message).toContain('ARTIFACT_UPLOADER_CONCURRENCY must be an integer from 1 to 64, got "0"');
    expect(error.hint).toBe('Set ARTIFACT_UPLOADER_CONCURRENCY to an integer from 1 to 64, or unset it for the default.');
  });

  it('with concurrencyGiven (the caller sets its own), warns about an invalid ARTIFACT_UPLOADER_CONCURRENCY instead of refusing it; a valid one still applies', async () => {
    const ignored = await resolveTrackingConfig({ configDir: dir, env: { ARTIFACT_UPLOADER_CONCURRENCY: '0' }, concurrencyGiven: true });
    expect(ignored.warnings).toEqual([
      'Environment variable ARTIFACT_UPLOADER_CONCURRENCY="0" is ignored, since the `concurrency` option sets the concurrency here (expected an integer from 1 to 64). Set ARTIFACT_UPLOADER_CONCURRENCY to an integer from 1 to 64, or unset it for the default.',
    ]);
    expect(ignored.overrides).toEqual([]);
    expect(ignored.config.training.concurrency).toBe(8);
    const applied = await resolveTrackingConfig({ configDir: dir, env: { ARTIFACT_UPLOADER_CONCURRENCY: '3' }, concurrencyGiven: true });
    expect(applied).toMatchObject({ warnings: [], config: { concurrency: 3, training: { concurrency: 3 } } });
  });

  it('with concurrencyUnused (a caller that reads the config for other keys: publish), warns that an invalid ARTIFACT_UPLOADER_CONCURRENCY is ignored and what refuses it, instead of refusing it; a valid one still applies', async () => {
    const ignored = await resolveTrackingConfig({ configDir: dir, env: { ARTIFACT_UPLOADER_CONCURRENCY: 'eight' }, concurrencyUnused: true });
    expect(ignored.warnings).toEqual([
      'Environment variable ARTIFACT_UPLOADER_CONCURRENCY="eight" is ignored, since nothing here uses the concurrency (expected an integer from 1 to 64); `new ArtifactUploader()` and the stage helpers refuse it. Set ARTIFACT_UPLOADER_CONCURRENCY to an integer from 1 to 64, or unset it for the default.',
    ]);
    expect(ignored.overrides).toEqual([]);
    expect(ignored.config.concurrency).toBe(8);
    const applied = await resolveTrackingConfig({ configDir: dir, env: { ARTIFACT_UPLOADER_CONCURRENCY: '3' }, concurrencyUnused: true });
    expect(applied).toMatchObject({ warnings: [], config: { concurrency: 3, training: { concurrency: 3 } } });
    // The other variables are checked as ever: a misspelt one still stops it.
    await expect(resolveTrackingConfig({ configDir: dir, env: { ARTIFACT_UPLOADER_CONCURENCY: '2' }, concurrencyUnused: true })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });

  it('refuses a misspelt *_ENABLED switch instead of ignoring it', async () => {
    const error = await configError(
      loadTrackingConfig({ configDir: dir, env: { ARTIFACT_UPLOADER_TRAINING_CHECKPOINTS_ENABLED: 'false' } }),
    );
    expect(error.message).toContain(
      'ARTIFACT_UPLOADER_TRAINING_CHECKPOINTS_ENABLED (unknown environment variable; did you mean ARTIFACT_UPLOADER_TRAINING_CHECKPOINT_ENABLED?)',
    );
  });

  it('refuses a misspelt or guessed variable of ours that would do nothing, and leaves the rest of the namespace alone', async () => {
    // Each was ignored: the uploads went on with the defaults (all enabled, concurrency 8).
    const cases: Array<[Record<string, string>, string]> = [
      [{ ARTIFACT_UPLOADER_CONCURENCY: '2' }, 'did you mean ARTIFACT_UPLOADER_CONCURRENCY?'],
      [{ ARTIFACT_UPLOADER_FINE_TUNED_MODEL_DIR: '/models' }, 'did you mean ARTIFACT_UPLOADER_FINE_TUNED_MODELS_DIR?'],
      [{ ARTIFACT_UPLOADER_CONFIG_FILE: '/cfg/a.yaml' }, 'did you mean ARTIFACT_UPLOADER_CONFIG_DIR?'],
      [{ ARTIFACT_UPLOADER_TRAINING_DISABLED: 'true' }, 'there is no *_DISABLED switch: set ARTIFACT_UPLOADER_TRAINING_ENABLED=false'],
      [{ ARTIFACT_UPLOADER_HPO_TRIAL_CHECKPOINTS_DISABLE: '1' }, 'there is no *_DISABLED switch: set ARTIFACT_UPLOADER_HPO_TRIAL_CHECKPOINTS_ENABLED=false'],
      [{ ARTIFACT_UPLOADER_BENCHMARK_ENABLE: 'false' }, 'did you mean ARTIFACT_UPLOADER_BENCHMARK_ENABLED?'],
      [{ ARTIFACT_UPLOADER_CONVERSION: 'false' }, 'did you mean ARTIFACT_UPLOADER_CONVERSION_ENABLED?'],
    ];
    for (const [env, expected] of cases) {
      const error = await configError(loadTrackingConfig({ configDir: dir, env: { ...noEnv, ...env } }));
      const name = Object.keys(env)[0]!;
      expect(error.issues).toEqual([{ path: name, message: expect.stringContaining(expected) }]);
      expect(error.message).toContain(name);
      expect(error.hint).toMatch(/ARTIFACT_UPLOADER_CONCURRENCY/);
    }
    // Variables read elsewhere (the journal, the Python wrapper's command) or by other tools pass.
    const { config } = await resolveTrackingConfig({
      configDir: dir,
      env: { ...noEnv, ARTIFACT_UPLOADER_JOURNAL_DIR: '/j', ARTIFACT_UPLOADER_BIN: 'node cli.js', ARTIFACT_UPLOADER_TEST_SERVERS: 'none', ARTIFACT_UPLOADER_REPORT_WEBHOOK: 'x' },
    });
    expect(config.concurrency).toBe(8);
  });

  it('the hint lists every variable of ours once, the one the did-you-mean suggests among them', async () => {
    const error = await configError(loadTrackingConfig({ configDir: dir, env: { ...noEnv, ARTIFACT_UPLOADER_JOURNAL_DIRS: '/j' } }));
    expect(error.issues).toEqual([{ path: 'ARTIFACT_UPLOADER_JOURNAL_DIRS', message: 'unknown environment variable; did you mean ARTIFACT_UPLOADER_JOURNAL_DIR?' }]);
    const switches = STAGES.flatMap((stage) => [stage, ...ARTIFACT_KINDS[stage].map((kind) => `${stage}_${kind.replace(/[A-Z]/g, (c) => `_${c}`)}`)]);
    const names = [
      ...switches.map((name) => `ARTIFACT_UPLOADER_${name.toUpperCase()}_ENABLED`),
      'ARTIFACT_UPLOADER_CONCURRENCY',
      'ARTIFACT_UPLOADER_FINE_TUNED_MODELS_DIR',
      'ARTIFACT_UPLOADER_CONFIG_DIR',
      'ARTIFACT_UPLOADER_JOURNAL_DIR',
    ];
    const listed = error.hint!.match(/ARTIFACT_UPLOADER_[A-Z_]+/g)!;
    expect([...listed].sort()).toEqual([...names].sort());
  });

  it('ignores empty variables', async () => {
    const config = await loadTrackingConfig({ configDir: dir, env: { ARTIFACT_UPLOADER_TRAINING_ENABLED: '' } });
    expect(config.training.enabled).toBe(true);
  });
});

describe('stage and kind checks', () => {
  it('assertStage accepts the four stages and lists them otherwise', () => {
    for (const stage of STAGES) expect(() => assertStage(stage)).not.toThrow();
    expect(() => assertStage('trainig')).toThrow(InvalidArgumentError);
    expect(() => assertStage('trainig')).toThrow(
      'Unknown stage "trainig" (did you mean "training"?). Valid stages: training, conversion, benchmark, hpo.',
    );
    expect(() => assertStage(42)).toThrow('Unknown stage 42. Valid stages: training, conversion, benchmark, hpo.');
  });

  it('assertArtifactKind lists the kinds of the stage', () => {
    expect(() => assertArtifactKind('hpo', 'bestTrialArchive')).not.toThrow();
    expect(() => assertArtifactKind('hpo', 'checkpoint')).toThrow(
      'Unknown artifact kind "checkpoint" for stage "hpo". Valid kinds: bestTrialArchive, trialCheckpoints.',
    );
  });

  it('getArtifactConfig says which switch disabled a kind', async () => {
    const config = await loadTrackingConfig({ config: { training: { checkpoint: { enabled: false } } }, env: noEnv });
    expect(getArtifactConfig(config, 'training', 'checkpoint')).toEqual({
      enabled: false,
      artifactPath: 'checkpoint',
      disabledBy: 'training.checkpoint.enabled',
    });
    expect(getArtifactConfig(config, 'training', 'metrics')).toEqual({ enabled: true, artifactPath: 'metrics' });
    expect(() => isArtifactEnabled(config, 'nope' as 'training', 'checkpoint')).toThrow(InvalidArgumentError);
  });
});
