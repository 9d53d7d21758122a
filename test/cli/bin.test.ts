/**
 * The installed bin, as users run it: `dist/cli.js` in a subprocess (the rest of the CLI tests
 * run in-process). `npm test` builds before vitest runs.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { VERSION } from '../../src/version.js';
import { pythonExecutable } from '../support/python.js';
import { tempDirEnv } from '../support/run-temp-root.js';
import { describeWithServers, mlflowServer } from '../support/servers.js';
import { isRoot, nodeForNobody } from '../support/unprivileged.js';
import { baseEnv, tempDir } from './helpers.js';

const bin = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

function run(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd, env: baseEnv() as NodeJS.ProcessEnv, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('dist/cli.js', () => {
  it('prints the version, and `runs start` prints only a run id, then exits', async () => {
    expect(existsSync(bin), 'dist/cli.js is missing: run `npm run build` (npm test does it)').toBe(true);
    const cwd = tempDir();
    expect(await run(['--version'], cwd)).toEqual({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
    const start = await run(['runs', 'start'], cwd);
    expect(start.code, start.stderr).toBe(0);
    expect(start.stdout).toMatch(/^[0-9a-f]{32}\n$/);
    expect(existsSync(`${cwd}/mlruns/0/${start.stdout.trim()}/meta.yaml`)).toBe(true);
    expect((await run(['runs', 'end', '--bogus'], cwd)).code).toBe(2);
  });
});

describe('dist/cli.js and a FIFO where a file is read', () => {
  it('hpo --manifest on a FIFO is NOT_A_FILE (2) at once, not a read that waits forever for a writer', async () => {
    // The read of a FIFO blocks in libuv's thread pool until a writer comes: the command hung,
    // and SIGTERM could not end it. The 30 s timeout only ends the old hang (SIGKILL, code null).
    const cwd = tempDir();
    // gzip's magic bytes: the archive passes its own check, and the manifest's comes next.
    writeFileSync(join(cwd, 'best.tar.gz'), gzipSync('not really an archive'));
    execFileSync('mkfifo', [join(cwd, 'pipe')]);
    const start = await run(['runs', 'start'], cwd);
    expect(start.code, start.stderr).toBe(0);
    const out = spawnSync(process.execPath, [bin, 'hpo', '--archive', 'best.tar.gz', '--manifest', 'pipe', '--run-id', start.stdout.trim(), '--json'], { cwd, env: baseEnv() as NodeJS.ProcessEnv, encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' });
    expect(out.status, out.stderr).toBe(2);
    expect(JSON.parse(out.stdout).error).toMatchObject({ code: 'NOT_A_FILE', message: expect.stringContaining('is not a regular file') });
  });
});

describe('dist/cli.js given a path that is not valid UTF-8 (bytes from Python\'s subprocess)', () => {
  it('says the name cannot reach the CLI intact and how to pass it, and the symlink it suggests uploads', () => {
    // Node.js decodes its arguments as UTF-8, so byte 0xff arrives as U+FFFD: the CLI looked up
    // another name and said the directory "does not exist. Check the path", while it did.
    const cwd = tempDir();
    const script = [
      'import json, os, subprocess, sys',
      'node, cli = sys.argv[1], sys.argv[2]',
      "os.mkdir(b'ckpt-\\xff')",
      "open(b'ckpt-\\xff/weights.bin', 'wb').write(b'w' * 10)",
      "def run(*args): p = subprocess.run([node, cli, '--json', *args], capture_output=True); return {'code': p.returncode, 'doc': json.loads(p.stdout)}",
      "run_id = run('runs', 'start')['doc']['runId']",
      "out = {'bad': run('training', b'ckpt-\\xff', '--run-id', run_id)}",
      "os.symlink(b'ckpt-\\xff', b'ckpt')",
      "out['link'] = run('training', 'ckpt', '--run-id', run_id)",
      // A name that holds U+FFFD for real (valid UTF-8) is not one: its archive, still to be written, is made.
      "os.mkdir('real-\\ufffd')",
      "open('real-\\ufffd/weights.bin', 'wb').write(b'w' * 10)",
      "out['real'] = run('archive', 'real-\\ufffd')",
      'print(json.dumps(out))',
    ].join('\n');
    const out = spawnSync(pythonExecutable(), ['-c', script, process.execPath, bin], { cwd, env: baseEnv() as NodeJS.ProcessEnv, encoding: 'utf8', timeout: 60_000 });
    expect(out.status, out.stderr).toBe(0);
    const { bad, link, real } = JSON.parse(out.stdout);
    expect(bad.code).toBe(2);
    expect(bad.doc.error).toMatchObject({
      code: 'PATH_NOT_FOUND',
      message: expect.stringContaining('not valid UTF-8'),
      hint: expect.stringContaining('symlink with a UTF-8 name'),
    });
    expect(link.code).toBe(0);
    expect(link.doc.results[0].files).toMatchObject([{ artifactPath: 'checkpoint/weights.bin', status: 'uploaded' }]);
    expect(real.code, JSON.stringify(real.doc)).toBe(0);
    expect(existsSync(join(cwd, 'real-\uFFFD.tar.gz'))).toBe(true);
  });
});

/** A uid and gid with no entry in /etc/passwd, as an arbitrary-uid container runs (OpenShift, `docker run --user`). */
const NO_PASSWD_ID = 54321;

describeWithServers('dist/cli.js with HOME unset, as a uid without a passwd entry (as the current user when not root)', () => {
  it('starts a run and uploads to a tracking server; the resume journal, with no home to live in, is a config error', () => {
    // With HOME unset, os.homedir() throws for such a uid: every command that reached
    // ~/.mlflow/credentials (all of them, on a server) failed, an upload with exit 1 ("try later").
    expect(readFileSync('/etc/passwd', 'utf8')).not.toMatch(new RegExp(`^[^:]*:[^:]*:${NO_PASSWD_ID}:`, 'm'));
    const cwd = tempDir();
    chmodSync(cwd, 0o755);
    writeFileSync(join(cwd, 'metrics.json'), '{"loss": 0.1}');
    // A `~` in the config is left as it is without a home (as Python's expanduser leaves it),
    // not a failed lookup of the home directory for every command that reads the config.
    writeFileSync(join(cwd, 'artifact-uploader.yaml'), 'hub:\n  fineTunedModelsDir: ~/fine-tuned\n');
    const env = { PATH: process.env.PATH, ...tempDirEnv(), MLFLOW_TRACKING_URI: mlflowServer().url, MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0' };
    const node = nodeForNobody(cwd);
    const run = (...args: string[]) => {
      const out = spawnSync(node, [bin, ...args], { cwd, env, encoding: 'utf8', timeout: 60_000, ...(isRoot ? { uid: NO_PASSWD_ID, gid: NO_PASSWD_ID } : {}) });
      return { code: out.status, stdout: out.stdout, stderr: out.stderr };
    };
    const start = run('runs', 'start', '--json');
    expect(start.code, start.stderr).toBe(0);
    const runId = (JSON.parse(start.stdout) as { runId: string }).runId;
    const upload = run('file', '--stage', 'training', 'metrics.json', '--run-id', runId, '--json');
    expect(upload.code, upload.stderr).toBe(0);
    expect(JSON.parse(upload.stdout)).toMatchObject({ status: 'uploaded', results: [{ files: [{ artifactPath: 'metrics.json', status: 'uploaded' }] }] });
    const list = run('resume', 'list', '--json');
    if (isRoot) {
      expect(list.code, list.stderr).toBe(2);
      expect(JSON.parse(list.stdout).error).toMatchObject({ code: 'CONFIG_INVALID', hint: expect.stringContaining('Set ARTIFACT_UPLOADER_JOURNAL_DIR (or --journal-dir)') });
      expect(upload.stderr).toContain('The resume journal cannot be opened (The resume journal has no directory');
    } else {
      expect(list.code, list.stderr).toBe(0);
    }
    expect(`${start.stderr}${upload.stderr}${list.stderr}`).not.toMatch(/uv_os_homedir|looks like a bug/);
  });
});
