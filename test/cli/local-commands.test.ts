/**
 * The commands that need no server, run in-process: help and version, usage errors (exit 2),
 * `runs start|end` on the embedded ./mlruns store, `archive`, `validate` (exit 3 when invalid)
 * and `convert-peft`, each in human and `--json` form.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readManifest } from '../../src/archive/manifest.js';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { FileTrackingStore } from '../../src/mlflow/file-store.js';
import { VERSION } from '../../src/version.js';
import { writeFusedDir, writeMlxLoraDir, writePeftDir } from '../model/fixtures.js';
import { baseEnv, cli, tempDir } from './helpers.js';

describe('help, version and usage errors', () => {
  it('prints the version', async () => {
    const run = await cli(['--version']);
    expect(run).toMatchObject({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
  });

  it('--json --version prints a JSON document, not the bare version', async () => {
    const run = await cli(['--json', '--version']);
    expect(run.code).toBe(0);
    expect(run.json()).toEqual({ ok: true, command: '', exitCode: 0, version: VERSION });
    expect(run.stderr).toBe('');
  });

  it('--json --help still prints the help text on stdout: asking for help asks for text', async () => {
    const run = await cli(['--json', 'runs', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Usage: artifact-uploader runs/);
  });

  it('--json with a command group alone is a usage error that names the commands to pick from', async () => {
    const runs = await cli(['--json', 'runs']);
    expect(runs.code).toBe(EXIT_CODES.USAGE);
    expect(runs.json()).toEqual({
      ok: false,
      command: 'runs',
      exitCode: 2,
      error: { code: 'USAGE', message: '`artifact-uploader runs` needs a command: start or end.', hint: 'Run `artifact-uploader runs --help` for usage.' },
    });
    const resume = (await cli(['resume', '--json'])).json();
    expect(resume.error.message).toBe('`artifact-uploader resume` needs a command: list or clear.');
    const bare = (await cli(['--json'])).json();
    expect(bare).toMatchObject({ ok: false, command: '', exitCode: 2, error: { code: 'USAGE' } });
    expect(bare.error.message).toMatch(/^`artifact-uploader` needs a command: training, conversion, .*, runs or resume\.$/);
  });

  it('prints help with examples on every level, exit 0', async () => {
    for (const argv of [['--help'], ['training', '--help'], ['runs', '--help'], ['runs', 'start', '--help'], ['publish', '--help']]) {
      const run = await cli(argv);
      expect(run.code, argv.join(' ')).toBe(0);
      expect(run.stdout).toContain('Usage: artifact-uploader');
      expect(run.stdout).toContain('Examples:');
    }
    expect((await cli(['training', '--help'])).stdout).toContain('Global Options:');
    const helpCommand = await cli(['help', 'runs']);
    expect(helpCommand.code).toBe(0);
    expect(helpCommand.stdout).toContain('Usage: artifact-uploader runs');
  });

  it('exits 2 on unknown commands and options, missing arguments and bad values', async () => {
    const cases = [
      ['nope'],
      ['training'],
      ['training', 'dir', '--bogus'],
      ['--concurrency', '0', 'training', 'x'],
      ['--max-concurrency', '65', 'training', 'x'],
      ['--stage', 'deploy', 'file', 'x'],
      ['archive', 'x', '--level', '12'],
      ['runs', 'end', '--status', 'DONE'],
      ['--quiet', '--verbose', 'runs', 'start'],
      ['training', 'a', 'b'],
    ];
    for (const argv of cases) {
      const run = await cli(argv);
      expect(run.code, argv.join(' ')).toBe(EXIT_CODES.USAGE);
      expect(run.stdout, argv.join(' ')).toBe('');
      expect(run.stderr, argv.join(' ')).toMatch(/error: /);
    }
  });

  it('an unknown command that asks to upload (`upload`, `log-artifacts`) names the commands that do, in text and --json', async () => {
    for (const verb of ['upload', 'log-artifacts', 'PUT']) {
      const run = await cli([verb, 'out']);
      expect(run.code, verb).toBe(EXIT_CODES.USAGE);
      expect(run.stderr, verb).toContain(`error: unknown command '${verb}'`);
      expect(run.stderr, verb).toContain('To upload a directory or a file, run `artifact-uploader dir <dir> --stage <stage>` or `artifact-uploader file <path> --stage <stage>`');
    }
    const json = (await cli(['--json', 'upload', 'out'])).json();
    expect(json).toMatchObject({ ok: false, command: '', exitCode: 2, error: { code: 'USAGE', message: "unknown command 'upload'" } });
    expect(json.error.hint).toMatch(/^To upload a directory or a file, run `artifact-uploader dir <dir> --stage <stage>`.*Run `artifact-uploader --help` for usage\.$/);
    // Any other unknown command keeps commander's suggestion and the plain hint.
    const typo = await cli(['trainig', 'out']);
    expect(typo.stderr).toContain('Did you mean training?');
    expect(typo.stderr).not.toContain('To upload');
  });

  it('`help <word>` naming no command is an unknown command (exit 2), with the suggestion, in text and --json', async () => {
    const plain = await cli(['help', 'nosuch']);
    expect(plain.code).toBe(EXIT_CODES.USAGE);
    expect(plain.stdout).toBe('');
    // The error, not the whole help of the program.
    expect(plain.stderr).toBe("error: unknown command 'nosuch'\n(add --help for usage)\n");
    const json = await cli(['help', 'nosuch', '--json']);
    expect(json.code).toBe(EXIT_CODES.USAGE);
    expect(json.json()).toEqual({
      ok: false,
      command: '',
      exitCode: 2,
      error: { code: 'USAGE', message: "unknown command 'nosuch'", hint: 'Run `artifact-uploader --help` for usage.' },
    });
    const typo = await cli(['--json', 'help', 'trainin']);
    expect(typo.stderr).toContain('(Did you mean training?)');
    expect(typo.json().error.message).toBe("unknown command 'trainin'\n(Did you mean training?)");
    // In a command group, and after `help <group>`.
    for (const argv of [['runs', 'help', 'strat'], ['help', 'runs', 'strat']]) {
      const run = await cli([...argv, '--json']);
      expect(run.code, argv.join(' ')).toBe(EXIT_CODES.USAGE);
      expect(run.json().error.message, argv.join(' ')).toBe("unknown command 'strat'\n(Did you mean start?)");
    }
    expect((await cli(['help', 'upload'])).stderr).toContain('To upload a directory or a file, run `artifact-uploader dir <dir> --stage <stage>`');
    // Help for a command that exists is unchanged.
    const known = await cli(['help', 'runs', '--json']);
    expect(known.code).toBe(0);
    expect(known.stdout).toMatch(/^Usage: artifact-uploader runs/);
    // `help help` names the `help` the listing shows: commander's answer, not an unknown command.
    expect((await cli(['help', 'help'])).stderr).not.toContain('unknown command');
  });

  it('says a range of an environment variable as "from 1 to 64"', async () => {
    const run = await cli(['dir', '--stage', 'training', '.'], { cwd: tempDir(), env: baseEnv({ ARTIFACT_UPLOADER_CONCURRENCY: '0' }) });
    expect(run.code).toBe(EXIT_CODES.USAGE);
    expect(run.stderr).toContain('Environment variable ARTIFACT_UPLOADER_CONCURRENCY must be an integer from 1 to 64, got "0".');
  });

  it('exits 2 with the group help when a command group is called alone', async () => {
    expect((await cli([])).code).toBe(EXIT_CODES.USAGE);
    const runs = await cli(['runs']);
    expect(runs.code).toBe(EXIT_CODES.USAGE);
    expect(runs.stderr).toContain('start');
  });

  it('with --json, a usage error is still one JSON document on stdout', async () => {
    const run = await cli(['--json', 'training', 'x', '--bogus']);
    expect(run.code).toBe(2);
    expect(run.json()).toMatchObject({ ok: false, command: 'training', exitCode: 2, error: { code: 'USAGE', hint: 'Run `artifact-uploader training --help` for usage.' } });
    // Like every other error's, so `doc["error"]["hint"]` of docs/python-pipelines.md is always there.
    expect((await cli(['--json', '--concurrency', '0', 'training', 'x'])).json().error.hint).toBe('Run `artifact-uploader training --help` for usage.');
    expect((await cli(['--json', 'trainin'])).json().error.hint).toBe('Run `artifact-uploader --help` for usage.');
  });
});

describe('runs start and runs end on ./mlruns', () => {
  it('start prints only the run id; the run is in ./mlruns of the working directory; end finishes it', async () => {
    const cwd = tempDir();
    const start = await cli(['runs', 'start', '--experiment-name', 'cli-exp', '--run-name', 'r1', '--tag', 'team=nlp'], { cwd });
    expect(start.code).toBe(0);
    expect(start.stdout).toMatch(/^[0-9a-f]{32}\n$/);
    const runId = start.stdout.trim();
    expect(start.stderr).toContain(`Started run ${runId}`);

    const store = new FileTrackingStore({ root: join(cwd, 'mlruns') });
    const run = await store.getRun(runId);
    expect(run.info).toMatchObject({ runName: 'r1', status: 'RUNNING' });
    expect(run.data.tags).toMatchObject({ team: 'nlp', 'mlflow.user': 'cli-tester' });
    expect((await store.getExperiment(run.info.experimentId)).name).toBe('cli-exp');

    const end = await cli(['runs', 'end', '--status', 'FAILED'], { cwd, env: baseEnv({ MLFLOW_RUN_ID: runId }) });
    expect(end.code).toBe(0);
    expect(end.stdout).toContain(`Run ${runId} ended: FAILED`);
    const ended = (await store.getRun(runId)).info;
    expect(ended.status).toBe('FAILED');

    // Joining it again sets it back to RUNNING, as mlflow.start_run(run_id=...) does; the end time stays.
    const rejoin = await cli(['runs', 'start'], { cwd, env: baseEnv({ MLFLOW_RUN_ID: runId }) });
    expect(rejoin).toMatchObject({ code: 0, stdout: `${runId}\n` });
    expect(rejoin.stderr).toContain('(it was FAILED: set back to RUNNING, as mlflow.start_run(run_id=...) does)');
    expect((await store.getRun(runId)).info).toMatchObject({ status: 'RUNNING', endTime: ended.endTime });
  });

  it('--nested starts a child of MLFLOW_RUN_ID\'s run (mlflow.parentRunId, its experiment); with --run-id it is refused in CLI terms', async () => {
    const cwd = tempDir();
    const parentId = (await cli(['runs', 'start', '--experiment-name', 'cli-sweep'], { cwd })).stdout.trim();
    const env = baseEnv({ MLFLOW_RUN_ID: parentId });
    const child = await cli(['runs', 'start', '--nested', '--run-name', 'trial-7', '--json'], { cwd, env });
    expect(child.code).toBe(0);
    const doc = child.json();
    expect(doc).toMatchObject({ created: true, runName: 'trial-7' });
    expect(doc.runId).not.toBe(parentId);
    const store = new FileTrackingStore({ root: join(cwd, 'mlruns') });
    const stored = await store.getRun(doc.runId);
    expect(stored.data.tags['mlflow.parentRunId']).toBe(parentId);
    expect(stored.info.experimentId).toBe((await store.getRun(parentId)).info.experimentId);

    const both = await cli(['runs', 'start', '--nested', '--run-id', parentId], { cwd, env });
    expect(both.code).toBe(2);
    expect(both.stderr).toBe(
      "error [INVALID_ARGUMENT]: --nested starts a new run under MLFLOW_RUN_ID's run, and --run-id joins an existing run: pass one of them. Drop --run-id to start a child run, or drop --nested to join that run.\n",
    );
  });

  it('--max-concurrency bounds the files in flight of a directory upload (metrics.peakConcurrency in --json)', async () => {
    const cwd = tempDir();
    const start = await cli(['runs', 'start', '--experiment-name', 'cli-conc'], { cwd });
    const runId = start.stdout.trim();
    const dir = join(cwd, 'many');
    mkdirSync(dir);
    for (let i = 0; i < 40; i++) writeFileSync(join(dir, `f${i}.txt`), `file ${i}`);
    const run = await cli(['--json', '--stage', 'training', '--concurrency', '2', '--max-concurrency', '3', 'dir', 'many'], { cwd, env: baseEnv({ MLFLOW_RUN_ID: runId }) });
    expect(run.code, run.stderr).toBe(0);
    const doc = JSON.parse(run.stdout) as { results?: Array<{ metrics: { filesSent: number; peakConcurrency?: number } }>; metrics?: { filesSent: number; peakConcurrency?: number } };
    const metrics = doc.metrics ?? doc.results?.[0]?.metrics;
    expect(metrics?.filesSent).toBe(40);
    expect(metrics?.peakConcurrency).toBeGreaterThanOrEqual(2);
    expect(metrics?.peakConcurrency).toBeLessThanOrEqual(3);
  });

  it('--max-concurrency below --concurrency is a usage error (2) naming both, and nothing is uploaded', async () => {
    const cwd = tempDir();
    const runId = (await cli(['runs', 'start', '--json'], { cwd })).json().runId as string;
    mkdirSync(join(cwd, 'many'));
    for (let i = 0; i < 10; i++) writeFileSync(join(cwd, 'many', `f${i}.txt`), `file ${i}`);
    const run = await cli(['--json', '--stage', 'training', '--concurrency', '8', '--max-concurrency', '4', 'dir', 'many'], { cwd, env: baseEnv({ MLFLOW_RUN_ID: runId }) });
    expect(run.code).toBe(EXIT_CODES.USAGE);
    expect(run.json()).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT', message: expect.stringContaining('--max-concurrency 4 is below --concurrency 8'), hint: expect.any(String) } });
    expect(readdirSync(join(cwd, 'mlruns', '0', runId, 'artifacts'))).toEqual([]);
  });

  it('a directory uploaded to the artifact root is labelled "(artifact root)", live and in a dry run', async () => {
    const cwd = tempDir();
    const runId = (await cli(['runs', 'start'], { cwd })).stdout.trim();
    const env = baseEnv({ MLFLOW_RUN_ID: runId });
    mkdirSync(join(cwd, 'd'));
    for (const name of ['a.txt', 'b.txt', 'c.txt']) writeFileSync(join(cwd, 'd', name), 'x');
    const plan = await cli(['--dry-run', 'dir', '--stage', 'training', 'd'], { cwd, env });
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/^\(artifact root\): 3 file\(s\), 3 B -> /m);
    const run = await cli(['dir', '--stage', 'training', 'd'], { cwd, env });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^dir \(artifact root\): uploaded 3 file\(s\), 3 B in /);
    // The root's URI, without a dangling "/".
    expect(run.stdout).toMatch(/\n {2}-> file:\S+\/artifacts\n$/);
  });

  it('start joins MLFLOW_RUN_ID (same id) unless --new; --quiet still prints the id; --json gives details', async () => {
    const cwd = tempDir();
    const first = (await cli(['runs', 'start'], { cwd })).stdout.trim();
    const env = baseEnv({ MLFLOW_RUN_ID: first });
    expect((await cli(['runs', 'start', '--quiet'], { cwd, env })).stdout).toBe(`${first}\n`);
    const fresh = await cli(['runs', 'start', '--new', '--json'], { cwd, env });
    const doc = fresh.json();
    expect(doc).toMatchObject({ ok: true, command: 'runs start', exitCode: 0, created: true, experimentId: '0' });
    expect(doc.runId).not.toBe(first);
    expect(doc.artifactUri).toContain(join(cwd, 'mlruns'));
  });

  it('honours --tracking-uri and MLFLOW_TRACKING_URI relative to the working directory', async () => {
    const cwd = tempDir();
    const a = await cli(['runs', 'start', '--tracking-uri', 'file:./elsewhere'], { cwd });
    expect(existsSync(join(cwd, 'elsewhere', '0', a.stdout.trim()))).toBe(true);
    const b = await cli(['runs', 'start'], { cwd, env: baseEnv({ MLFLOW_TRACKING_URI: 'store2' }) });
    expect(existsSync(join(cwd, 'store2', '0', b.stdout.trim()))).toBe(true);
  });

  it('--tracking-uri file://mlruns (a host, not a path) is a config error (2) with a hint, and creates nothing', async () => {
    const cwd = tempDir();
    const run = await cli(['--tracking-uri', 'file://mlruns', 'runs', 'start', '--json'], { cwd });
    expect(run.code).toBe(EXIT_CODES.USAGE);
    expect(run.json()).toMatchObject({ ok: false, exitCode: 2, error: { name: 'ConfigError', code: 'CONFIG_INVALID', hint: expect.stringContaining('file:mlruns') } });
    writeFileSync(join(cwd, 'r.json'), '{}');
    const upload = await cli(['--tracking-uri', 'file://mlruns', '--run-id', 'f'.repeat(32), 'benchmark', 'r.json'], { cwd });
    expect(upload.code).toBe(EXIT_CODES.USAGE);
    expect(upload.stderr).toMatch(/error \[CONFIG_INVALID\]: .*file:\/\/mlruns names host "mlruns"/);
    expect(readdirSync(cwd)).toEqual(['r.json']);
  });

  it('a scheme-less tracking URI MLflow reads as Databricks, or host:port without http://, is a config error (2) that creates no store', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'ck'));
    writeFileSync(join(cwd, 'ck', 'a.bin'), 'a');
    const databricks = await cli(['runs', 'start'], { cwd, env: baseEnv({ MLFLOW_TRACKING_URI: 'databricks' }) });
    expect(databricks.code).toBe(EXIT_CODES.USAGE);
    expect(databricks.stderr).toMatch(/error \[CONFIG_INVALID\]: .*Databricks/s);
    const ipPort = await cli(['--tracking-uri', '127.0.0.1:5917', 'runs', 'start', '--json'], { cwd });
    expect(ipPort.code).toBe(EXIT_CODES.USAGE);
    expect(ipPort.json()).toMatchObject({ error: { code: 'CONFIG_INVALID', hint: expect.stringMatching(/did you mean http:\/\/127\.0\.0\.1:5917\?/i) } });
    // Refused before the plan too: a dry run makes no connection, and still says so.
    const dry = await cli(['--tracking-uri', 'localhost:5917', '--dry-run', 'training', 'ck'], { cwd });
    expect(dry.code).toBe(EXIT_CODES.USAGE);
    expect(dry.stderr).toMatch(/did you mean http:\/\/localhost:5917\?/i);
    expect(readdirSync(cwd)).toEqual(['ck']);
    // Written as a path, a directory of that name is still a store.
    const asPath = await cli(['--tracking-uri', './127.0.0.1:5917', 'runs', 'start'], { cwd });
    expect(asPath.code, asPath.stderr).toBe(0);
    expect(existsSync(join(cwd, '127.0.0.1:5917', '0', asPath.stdout.trim()))).toBe(true);
  });

  it('a quoted MLFLOW_TRACKING_URI (docker --env-file keeps the quotes) is a config error (2), not a local directory named after it', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'r.json'), '{}');
    const upload = await cli(['--run-id', 'f'.repeat(32), 'benchmark', 'r.json'], { cwd, env: baseEnv({ MLFLOW_TRACKING_URI: '"http://127.0.0.1:5917"' }) });
    expect(upload.code, upload.stderr).toBe(EXIT_CODES.USAGE);
    expect(upload.stderr).toMatch(/error \[CONFIG_INVALID\]: .*wrapped in quotes/s);
    expect(upload.stderr).toContain('without the quotes: http://127.0.0.1:5917');
    // Before, the run was looked up in (and the file written to) ./"http:/127.0.0.1:5917.
    expect(readdirSync(cwd)).toEqual(['r.json']);
  });

  it('an empty --tracking-uri (an unset variable in a script) is a config error (2) naming the option; an empty MLFLOW_TRACKING_URI means ./mlruns, as in MLflow', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'ck'));
    writeFileSync(join(cwd, 'ck', 'a.bin'), 'a');
    for (const value of ['', '  ']) {
      const run = await cli(['--tracking-uri', value, 'runs', 'start', '--json'], { cwd });
      expect(run.code, JSON.stringify(value)).toBe(EXIT_CODES.USAGE);
      expect(run.json()).toMatchObject({ error: { code: 'CONFIG_INVALID', message: expect.stringContaining('--tracking-uri'), hint: expect.stringContaining('leave --tracking-uri out') } });
      const dry = await cli(['--tracking-uri', value, '--dry-run', 'training', 'ck'], { cwd });
      expect(dry.code).toBe(EXIT_CODES.USAGE);
    }
    const blankEnv = await cli(['runs', 'start'], { cwd, env: baseEnv({ MLFLOW_TRACKING_URI: '  ' }) });
    expect(blankEnv.code).toBe(EXIT_CODES.USAGE);
    expect(blankEnv.stderr).toContain('MLFLOW_TRACKING_URI');
    expect(readdirSync(cwd)).toEqual(['ck']);
    const emptyEnv = await cli(['runs', 'start'], { cwd, env: baseEnv({ MLFLOW_TRACKING_URI: '' }) });
    expect(emptyEnv.code, emptyEnv.stderr).toBe(0);
    expect(existsSync(join(cwd, 'mlruns', '0', emptyEnv.stdout.trim()))).toBe(true);
  });

  it('an empty --run-id (an unset variable in a script) is a usage error (2): not MLFLOW_RUN_ID\'s run, not a skipped upload', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'ck'));
    writeFileSync(join(cwd, 'ck', 'a.bin'), 'a');
    const start = await cli(['runs', 'start'], { cwd });
    expect(start.code).toBe(0);
    const runId = start.stdout.trim();
    for (const env of [baseEnv({ MLFLOW_RUN_ID: runId }), baseEnv()]) {
      for (const argv of [['training', 'ck'], ['file', '--stage', 'training', 'ck/a.bin'], ['runs', 'end'], ['runs', 'start']]) {
        const run = await cli(['--run-id', '', ...argv, '--json'], { cwd, env });
        expect(run.code, `${argv.join(' ')} (MLFLOW_RUN_ID ${env.MLFLOW_RUN_ID ? 'set' : 'unset'})\n${run.stderr}`).toBe(EXIT_CODES.USAGE);
        expect(run.json().error).toMatchObject({ code: 'USAGE', message: expect.stringContaining("option '--run-id <id>' argument '' is invalid") });
        expect(run.stderr).toContain('leave --run-id out to use MLFLOW_RUN_ID');
      }
    }
    expect(existsSync(join(cwd, 'mlruns', '0', runId, 'artifacts', 'checkpoint'))).toBe(false);
    expect((await new FileTrackingStore({ root: join(cwd, 'mlruns') }).getRun(runId)).info.status).toBe('RUNNING');
    expect(readdirSync(join(cwd, 'mlruns', '0')).filter((name) => /^[0-9a-f]{32}$/.test(name))).toEqual([runId]);
  });

  it('--run-id with the line break of `runs start`\'s output (Python\'s `proc.stdout`) is that run, as MLFLOW_RUN_ID with one is', async () => {
    // `subprocess.run([..., "runs", "start"], capture_output=True, text=True).stdout` is the id and
    // a line break. MLFLOW_RUN_ID was trimmed, --run-id refused as an invalid run id.
    const cwd = tempDir();
    mkdirSync(join(cwd, 'ck'));
    writeFileSync(join(cwd, 'ck', 'a.bin'), 'a');
    const start = await cli(['runs', 'start'], { cwd });
    expect(start.code).toBe(0);
    const upload = await cli(['--run-id', start.stdout, 'training', 'ck', '--json'], { cwd });
    expect(upload.code, upload.stderr).toBe(0);
    expect(upload.json()).toMatchObject({ ok: true, runId: start.stdout.trim() });
    expect(readFileSync(join(cwd, 'mlruns', '0', start.stdout.trim(), 'artifacts', 'checkpoint', 'a.bin'), 'utf8')).toBe('a');
    const end = await cli(['runs', 'end', '--run-id', ` ${start.stdout}`], { cwd });
    expect(end.code, end.stderr).toBe(0);
    expect((await new FileTrackingStore({ root: join(cwd, 'mlruns') }).getRun(start.stdout.trim())).info.status).toBe('FINISHED');
  });

  it('end without a run id, a bad tag, or --dry-run is a usage error (2) with a hint and no stack', async () => {
    const cwd = tempDir();
    const end = await cli(['runs', 'end'], { cwd });
    expect(end.code).toBe(2);
    expect(end.stderr).toMatch(/error \[CONFIG_INVALID\]: No run to end.*--run-id/s);
    expect(end.stderr).not.toMatch(/\n\s+at /);
    expect((await cli(['runs', 'start', '--tag', 'novalue'], { cwd })).code).toBe(2);
    const dry = await cli(['--dry-run', 'runs', 'start'], { cwd });
    expect(dry.code).toBe(2);
    expect(existsSync(join(cwd, 'mlruns'))).toBe(false);
  });

  it('a run id that does not exist is a config error (2); --verbose adds the stack trace', async () => {
    const cwd = tempDir();
    const env = baseEnv({ MLFLOW_RUN_ID: 'f'.repeat(32) });
    const plain = await cli(['runs', 'start'], { cwd, env });
    expect(plain.code).toBe(2);
    expect(plain.stderr).toContain('no such run');
    expect(plain.stderr).not.toMatch(/\n\s+at /);
    const verbose = await cli(['runs', 'start', '--verbose'], { cwd, env });
    expect(verbose.stderr).toMatch(/\n\s+at /);
  });
});

describe('archive', () => {
  function checkpoint(root: string): string {
    const dir = join(root, 'ckpt');
    mkdirSync(join(dir, 'sub'), { recursive: true });
    writeFileSync(join(dir, 'model.safetensors'), Buffer.alloc(3000, 7));
    writeFileSync(join(dir, 'sub', 'state.json'), '{"step": 10}');
    writeFileSync(join(dir, 'notes.txt'), 'x');
    writeFileSync(join(dir, '.DS_Store'), 'x');
    return dir;
  }

  it('writes the archive and manifest, reports skipped files, and prints lines of progress when not a TTY', async () => {
    const cwd = tempDir();
    checkpoint(cwd);
    const run = await cli(['archive', 'ckpt', '--exclude', '*.txt'], { cwd });
    expect(run.code).toBe(0);
    const manifest = await readManifest(join(cwd, 'ckpt.manifest.json'));
    expect(manifest.files.map((f) => f.path)).toEqual(['model.safetensors', 'sub/state.json']);
    expect(manifest.skipped).toEqual([
      { path: '.DS_Store', reason: 'default-skip-list', pattern: '.DS_Store' },
      { path: 'notes.txt', reason: 'exclude', pattern: '*.txt' },
    ]);
    expect(readFileSync(join(cwd, 'ckpt.tar.gz')).length).toBe(manifest.archive.size);
    expect(run.stdout).toContain('Archived 2 files');
    expect(run.stdout).toMatch(/Skipped:\n\s+\.DS_Store\s+default-skip-list/);
    expect(run.stderr).toMatch(/\[artifact-uploader\] archiving: 100% .*2\/2 files/);
  });

  it('--dry-run lists what would go in and writes nothing; --json returns the manifest', async () => {
    const cwd = tempDir();
    checkpoint(cwd);
    const run = await cli(['archive', 'ckpt', '-o', 'out/best.tar.gz', '--dry-run', '--json'], { cwd });
    expect(run.code).toBe(0);
    const doc = run.json();
    expect(doc).toMatchObject({ ok: true, command: 'archive', dryRun: true });
    expect(doc.manifest.files.map((f: { path: string }) => f.path)).toEqual(['model.safetensors', 'notes.txt', 'sub/state.json']);
    expect(run.stderr).toBe('');
    expect(readdirSync(cwd)).toEqual(['ckpt']);
  });

  it('warns about twin names on stderr and in --json `warnings`, as an upload does; none without twins', async () => {
    const cwd = tempDir();
    const dir = checkpoint(cwd);
    writeFileSync(join(dir, 'Model.safetensors'), 'M');
    writeFileSync(join(dir, 'Sub'), 'a file beside the directory sub/');
    const run = await cli(['archive', 'ckpt', '--json'], { cwd });
    expect(run.code).toBe(0);
    const warnings: string[] = run.json().warnings;
    expect(warnings).toHaveLength(2);
    expect(warnings.join('\n')).toContain('"Model.safetensors" and "model.safetensors" differ only in letter case');
    expect(warnings.join('\n')).toContain('"Sub" (a file) and the directory "sub/" differ only in letter case');
    for (const warning of warnings) expect(run.stderr).toContain(warning);
    // Both twins are archived, as given.
    expect((await readManifest(join(cwd, 'ckpt.manifest.json'))).files.map((f) => f.path)).toEqual(['Model.safetensors', 'Sub', 'model.safetensors', 'notes.txt', 'sub/state.json']);

    const plain = tempDir();
    checkpoint(plain);
    const quiet = await cli(['archive', 'ckpt', '--json'], { cwd: plain });
    expect(quiet.json().warnings).toEqual([]);
    expect(quiet.stderr).toBe('');
  });

  it('names a file such as hf_weights.bin as it is, in text and --json: a file name is not a Hub token', async () => {
    const cwd = tempDir();
    const dir = checkpoint(cwd);
    writeFileSync(join(dir, 'hf_weights.bin'), 'w');
    const text = await cli(['archive', 'ckpt', '--dry-run'], { cwd });
    expect(text.stdout).toMatch(/\s1 B\s+hf_weights\.bin\n/);
    const json = await cli(['archive', 'ckpt', '--dry-run', '--json'], { cwd });
    expect(json.json().manifest.files.map((f: { path: string }) => f.path)).toContain('hf_weights.bin');
    expect(json.stdout).not.toContain('hf_***');
  });

  it("-o or --manifest on one of the checkpoint's files, or --manifest on the archive, is a usage error (2) that writes nothing", async () => {
    const cwd = tempDir();
    const dir = checkpoint(cwd);
    const snapshot = () => Object.fromEntries(['model.safetensors', 'notes.txt', 'sub/state.json'].map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
    const before = snapshot();
    for (const [args, option] of [
      [['-o', 'ckpt/model.safetensors'], '-o'],
      [['--manifest', 'ckpt/notes.txt'], '--manifest'],
      [['-o', 'out/ckpt.tar.gz', '--manifest', 'out/ckpt.tar.gz'], '--manifest'],
    ] as const) {
      // A dry run is refused as the real run is (it builds its archive elsewhere).
      for (const dry of [[], ['--dry-run']]) {
        const run = await cli([...dry, 'archive', 'ckpt', ...args], { cwd });
        expect(run.code, `${dry.join(' ')} ${args.join(' ')}`).toBe(2);
        expect(run.stderr).toMatch(/error \[INVALID_ARGUMENT\]/);
        expect(run.stderr).toContain(`with \`${option}\``);
        expect(run.stderr).not.toMatch(/manifestPath|`out`|createCheckpointArchive/);
      }
    }
    expect(snapshot()).toEqual(before);
    expect(readdirSync(dir).sort()).toEqual(['.DS_Store', 'model.safetensors', 'notes.txt', 'sub']);
    expect(readdirSync(cwd)).toEqual(['ckpt']);
  });

  it('-o or --manifest on a device, FIFO or socket (or a link to one) is a usage error (2) that leaves it as it is', async () => {
    // As root, the rename that puts the archive in place replaced the node itself: `-o /dev/null`
    // (for the manifest alone) left /dev/null a regular file. A FIFO here stands in for a device.
    const cwd = tempDir();
    checkpoint(cwd);
    execFileSync('mkfifo', [join(cwd, 'pipe')]);
    symlinkSync(join(cwd, 'pipe'), join(cwd, 'link'));
    for (const args of [['-o', 'pipe'], ['-o', 'link'], ['-o', 'out.tar.gz', '--manifest', 'pipe'], ['-o', 'out.tar.gz', '--manifest', 'link']]) {
      for (const dry of [[], ['--dry-run']]) {
        const run = await cli([...dry, 'archive', 'ckpt', ...args, '--json'], { cwd });
        expect(run.code, `${dry.join(' ')} ${args.join(' ')}\n${run.stderr}`).toBe(2);
        expect(run.json().error).toMatchObject({ code: 'NOT_A_FILE', message: expect.stringContaining('is not a regular file') });
      }
    }
    expect(lstatSync(join(cwd, 'pipe')).isFIFO()).toBe(true);
    expect(lstatSync(join(cwd, 'link')).isSymbolicLink()).toBe(true);
    expect(readdirSync(cwd).sort()).toEqual(['ckpt', 'link', 'pipe']);
  });

  it('a missing directory is a usage error (2)', async () => {
    const run = await cli(['archive', 'missing'], { cwd: tempDir() });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/error \[PATH_NOT_FOUND\]/);
  });
});

describe('validate', () => {
  it('prints the report for a valid model and exits 0; --json has the report', async () => {
    const cwd = tempDir();
    writeFusedDir(cwd, 'fused_20240501_093000');
    const run = await cli(['validate', 'fused_20240501_093000'], { cwd });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^VALID: /);
    expect(run.stdout).toMatch(/ok\s+safetensors headers valid/);
    const json = (await cli(['validate', 'fused_20240501_093000', '--json'], { cwd })).json();
    expect(json).toMatchObject({ ok: true, valid: true, report: { overallValid: true, format: 'fused' } });
  });

  it('exits 3 for an invalid model and lists the errors, also with --quiet', async () => {
    const cwd = tempDir();
    const dir = writePeftDir(cwd, 'bad');
    writeFileSync(join(dir, 'adapter_model.safetensors'), 'placeholder');
    const run = await cli(['validate', 'bad', '--quiet'], { cwd });
    expect(run.code).toBe(EXIT_CODES.INVALID_MODEL);
    expect(run.stdout).toMatch(/^INVALID: /);
    expect(run.stdout).toContain('Errors (publishing stops):');
    const json = (await cli(['validate', 'bad', '--json'], { cwd })).json();
    expect(json).toMatchObject({ ok: false, exitCode: 3, valid: false });
    expect(json.report.errors.length).toBeGreaterThan(0);
  });

  it('--small-weights error turns the size warning into an error', async () => {
    const cwd = tempDir();
    writePeftDir(cwd, 'tiny');
    const warned = await cli(['validate', 'tiny'], { cwd });
    expect(warned.code).toBe(0);
    // A warning reads as one: a FAIL line under VALID contradicts the verdict.
    expect(warned.stdout).toMatch(/^VALID: /);
    expect(warned.stdout).toMatch(/^ {2}WARN {2}weights of a plausible size$/m);
    expect(warned.stdout).not.toMatch(/FAIL/);
    const refused = await cli(['validate', 'tiny', '--small-weights', 'error'], { cwd });
    expect(refused.code).toBe(3);
    expect(refused.stdout).toMatch(/^ {2}FAIL {2}weights of a plausible size$/m);
    expect((await cli(['validate', 'tiny', '--small-weights', 'error', '--json'], { cwd })).json().report.checkStatus).toMatchObject({ reasonableSize: 'error', directoryExists: 'ok' });
    expect((await cli(['validate', 'tiny', '--small-weights', 'error', '--min-weight-bytes', '0'], { cwd })).code).toBe(0);
  });

  it('a missing directory is a usage error (2)', async () => {
    expect((await cli(['validate', 'nope'], { cwd: tempDir() })).code).toBe(2);
  });
});

describe('convert-peft', () => {
  it('converts an MLX adapter beside the input and reports it', async () => {
    const cwd = tempDir();
    writeMlxLoraDir(cwd, 'lora_20240501_093000');
    const run = await cli(['convert-peft', 'lora_20240501_093000', '--base-model', 'example-org/tiny-llama'], { cwd });
    expect(run.code).toBe(0);
    const out = join(cwd, 'lora_20240501_093000_peft_converted');
    expect(run.stdout).toContain(`Converted ${join(cwd, 'lora_20240501_093000')} to PEFT: ${out}`);
    expect(JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'))).toMatchObject({ peft_type: 'LORA', base_model_name_or_path: 'example-org/tiny-llama' });
    // A second run refuses to overwrite (a usage error, 2: the adapter is fine) unless --overwrite.
    expect((await cli(['convert-peft', 'lora_20240501_093000'], { cwd })).code).toBe(2);
    expect((await cli(['convert-peft', 'lora_20240501_093000', '--overwrite', '-o', out], { cwd })).code).toBe(0);
  });

  it('the output directory gets the mode a new directory gets (the umask), not a temp directory\'s 0700', async () => {
    const cwd = tempDir();
    writeMlxLoraDir(cwd, 'lora_20240501_093000');
    // Another user or a serving container reads the adapter: mkdir's mode, as for the files in it.
    mkdirSync(join(cwd, 'reference'));
    const expected = statSync(join(cwd, 'reference')).mode & 0o777;
    for (const args of [[], ['--overwrite']]) {
      const run = await cli(['convert-peft', 'lora_20240501_093000', ...args], { cwd });
      expect(run.code, run.stderr).toBe(0);
      expect((statSync(join(cwd, 'lora_20240501_093000_peft_converted')).mode & 0o777).toString(8)).toBe(expected.toString(8));
    }
  });

  it('--dry-run converts into a scratch directory and leaves nothing behind', async () => {
    const cwd = tempDir();
    writeMlxLoraDir(cwd, 'lora');
    const run = await cli(['convert-peft', 'lora', '--dry-run', '--json'], { cwd });
    expect(run.json()).toMatchObject({ ok: true, dryRun: true, tensorsConverted: 8 });
    expect(run.json().outDir).toBeUndefined();
    expect(readdirSync(cwd)).toEqual(['lora']);
  });

  it('-o inside the input directory is a usage error (2), also with --overwrite, and the MLX adapter stays', async () => {
    const cwd = tempDir();
    const dir = writeMlxLoraDir(cwd, 'ad_20240301_120000');
    const weights = readFileSync(join(dir, 'adapters', 'adapters.safetensors'));
    for (const dry of [['--dry-run'], []]) {
      // A dry run is refused as the real run is (it converts into a scratch directory).
      const run = await cli([...dry, 'convert-peft', 'ad_20240301_120000', '-o', 'ad_20240301_120000/adapters', '--overwrite', '--base-model', 'a/b'], { cwd });
      expect(run.code, dry.join(' ')).toBe(2);
      expect(run.stderr).toMatch(/error \[INVALID_ARGUMENT\]: .*inside the input directory/);
    }
    expect(readFileSync(join(dir, 'adapters', 'adapters.safetensors'))).toEqual(weights);
    expect(readdirSync(cwd)).toEqual(['ad_20240301_120000']);
  });

  it('a fused model cannot be converted: exit 3', async () => {
    const cwd = tempDir();
    writeFusedDir(cwd, 'fused');
    const run = await cli(['convert-peft', 'fused'], { cwd });
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/error \[CONVERSION_FAILED\]: .*fused model/);
  });
});
