/**
 * The built bin in a real terminal and in a closed pipe: the progress bar as a user sees it,
 * drawn in a pseudo-terminal (test/support/pty-run.py, with the test venv's python), and the
 * quiet end of `--help | head`. The in-process CLI tests cannot see either: both depend on the
 * real process's stdout/stderr.
 */
import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { pythonExecutable } from '../support/python.js';
import { baseEnv, tempDir } from './helpers.js';

const bin = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const ptyRun = fileURLToPath(new URL('../support/pty-run.py', import.meta.url));

/** Runs `node dist/cli.js <args>` with stdin, stdout and stderr on a pseudo-terminal. */
function inTerminal(args: string[], cwd: string, env: Record<string, string | undefined>, columns = 100): Promise<{ code: number; output: string }> {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`npm run build\` (npm test does it)`);
  return new Promise((resolve, reject) => {
    execFile(pythonExecutable(), [ptyRun, String(columns), JSON.stringify([process.execPath, bin, ...args])], { cwd, env: env as NodeJS.ProcessEnv, timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${error.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as { code: number; output: string });
    });
  });
}

/** Runs the bin with its stdout a pipe whose reader is gone before the first byte is written. */
function intoClosedPipe(args: string[], cwd: string): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd, env: baseEnv() as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // the `head` that already quit: every write now meets EPIPE
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}

/**
 * Runs the bin with stdout or stderr on /dev/full (every write fails with ENOSPC, as on a full
 * disk behind `> result.json` or `2>> job.log`); the other stream is a pipe.
 */
function withFullDisk(stream: 'stdout' | 'stderr', args: string[], cwd: string, env: Record<string, string | undefined>): Promise<{ code: number | null; signal: string | null; output: string }> {
  const full = openSync('/dev/full', 'w');
  return new Promise((resolve) => {
    const stdio: ['ignore', number | 'pipe', number | 'pipe'] = stream === 'stdout' ? ['ignore', full, 'pipe'] : ['ignore', 'pipe', full];
    const child = spawn(process.execPath, [bin, ...args], { cwd, env: env as NodeJS.ProcessEnv, stdio });
    closeSync(full);
    let output = '';
    (stream === 'stdout' ? child.stderr : child.stdout)!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('close', (code, signal) => resolve({ code, signal, output }));
  });
}

/** What a progress text must never show: raw floats, NaN, an unknown ETA spelled out. */
function expectSaneProgress(output: string): void {
  expect(output).not.toMatch(/\d\.\d{3,}/); // 333.33333333333337 B/s
  expect(output).not.toMatch(/NaN|Infinity|undefined|null/);
  expect(output).not.toMatch(/ETA (?!\d)/); // `ETA LLs`, `ETA ?`, `ETA -`
  expect(output).not.toMatch(/\/s\d/); // `185 MiB/s0`: cli-progress's own {eta} glued to the rate
  for (const eta of output.matchAll(/ETA (\d+)h/g)) expect(Number(eta[1])).toBeLessThanOrEqual(24);
}

async function localRun(cwd: string): Promise<Record<string, string | undefined>> {
  const start = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, [bin, 'runs', 'start'], { cwd, env: baseEnv() as NodeJS.ProcessEnv }, (error, stdout) => (error ? reject(error) : resolve(stdout.trim()))),
  );
  expect(start).toMatch(/^[0-9a-f]{32}$/);
  return baseEnv({ MLFLOW_RUN_ID: start, TERM: 'xterm' });
}

describe('the progress bar in a real terminal', () => {
  it('a tiny, instant upload shows a sane bar at 100 % or none, and the summary', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'ckpt'));
    writeFileSync(join(cwd, 'ckpt', 'a.txt'), 'a');
    writeFileSync(join(cwd, 'ckpt', 'b.txt'), 'bb');
    const run = await inTerminal(['training', 'ckpt'], cwd, await localRun(cwd));
    expect(run.code, run.output).toBe(0);
    expect(run.output).toMatch(/training checkpoint: uploaded 2 file\(s\), 3 B/);
    expectSaneProgress(run.output);
    const bars = [...run.output.matchAll(/uploading \[[█░]+\] (\d+)% \| ([^\r\n\u001b]*)/g)];
    // Drawn or not, a bar that is there ends complete.
    if (bars.length > 0) expect(bars.at(-1)![1]).toBe('100');
    if (bars.length > 0) expect(bars.at(-1)![2]).toMatch(/^3 B\/3 B \| 2\/2 files \| /);
  });

  it('a directory upload draws the bar, with the files done, a rounded rate and the cursor restored', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'ckpt'));
    for (let i = 0; i < 12; i++) writeFileSync(join(cwd, 'ckpt', `shard-${i}.bin`), Buffer.alloc(1024 * 1024 + i * 333, i));
    const run = await inTerminal(['training', 'ckpt', '--concurrency', '2'], cwd, await localRun(cwd), 120);
    expect(run.code, run.output).toBe(0);
    expectSaneProgress(run.output);
    const bars = [...run.output.matchAll(/uploading \[[█░]+\] (\d+)% \| ([^\r\n\u001b]*)/g)];
    expect(bars.length, run.output).toBeGreaterThan(0);
    expect(bars.at(-1)![1]).toBe('100');
    expect(bars.at(-1)![2]).toMatch(/^12(\.0)? MiB\/12(\.0)? MiB \| 12\/12 files \| (\d+(\.\d)? [KMG]?i?B\/s|-)/);
    expect(run.output).toContain('\u001b[?25l'); // cursor hidden while drawing...
    expect(run.output).toContain('\u001b[?25h'); // ...and shown again
    expect(run.output).toMatch(/training checkpoint: uploaded 12 file\(s\)/);
  });

  it('a dumb terminal (TERM=dumb: an editor\'s shell buffer) gets the plain lines, no cursor moves or bar', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'ckpt'));
    for (let i = 0; i < 4; i++) writeFileSync(join(cwd, 'ckpt', `shard-${i}.bin`), Buffer.alloc(256 * 1024, i));
    const run = await inTerminal(['training', 'ckpt', '--concurrency', '1'], cwd, { ...(await localRun(cwd)), TERM: 'dumb' });
    expect(run.code, run.output).toBe(0);
    // A dumb terminal moves no cursor and erases nothing: every escape sequence shows as garbage.
    expect(run.output).not.toContain('\u001b');
    expect(run.output).not.toMatch(/[█░]/);
    expect(run.output).toMatch(/\[artifact-uploader\] uploading: 100% 1(\.0)? MiB \/ 1(\.0)? MiB, 4\/4 files/);
    expect(run.output).toMatch(/training checkpoint: uploaded 4 file\(s\)/);
  });

  it('--help in a terminal prints the usage and exits 0', async () => {
    const run = await inTerminal(['--help'], tempDir(), baseEnv({ TERM: 'xterm' }));
    expect(run).toMatchObject({ code: 0 });
    expect(run.output).toMatch(/^Usage: artifact-uploader/);
  });
});

describe('a closed pipe (`artifact-uploader --help | head`)', () => {
  it('help and version end quietly with exit code 0', async () => {
    for (const args of [['--help'], ['--version'], ['help', 'training'], ['training', '--help'], ['--json', 'help'], ['runs', 'help', 'start'], ['--stage', 'training', 'help', 'file']]) {
      const run = await intoClosedPipe(args, tempDir());
      expect(run, args.join(' ')).toEqual({ code: 0, signal: null, stderr: '' });
    }
  });

  it('a word `help` where an argument goes is not a request for help: its result into a closed pipe is 141', async () => {
    const run = await intoClosedPipe(['--json', 'benchmark', 'help'], tempDir());
    expect(run.code).toBe(141);
  });

  it('a data command stops like other Unix tools: exit 141 (128 + SIGPIPE), no stack trace', async () => {
    const cwd = tempDir();
    const run = await intoClosedPipe(['runs', 'start'], cwd);
    expect(run.code).toBe(141);
    expect(run.stderr).not.toMatch(/EPIPE|\n\s+at /);
  });
});

describe('stdout or stderr on a full disk (/dev/full: ENOSPC)', () => {
  it('a log line that cannot be written does not stop the upload: every file arrives, exit 0', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'ckpt'));
    for (let i = 0; i < 12; i++) writeFileSync(join(cwd, 'ckpt', `shard-${i}.bin`), Buffer.alloc(1024 * 1024, i));
    const env = await localRun(cwd);
    // --concurrency 1: progress lines (every 10 %) are written while files are still to be sent.
    const run = await withFullDisk('stderr', ['training', 'ckpt', '--concurrency', '1'], cwd, env);
    expect(run, run.output).toMatchObject({ code: 0, signal: null });
    expect(run.output).toMatch(/training checkpoint: uploaded 12 file\(s\)/);
    const artifacts = join(cwd, 'mlruns', '0', env.MLFLOW_RUN_ID!, 'artifacts', 'checkpoint');
    for (let i = 0; i < 12; i++) expect(readFileSync(join(artifacts, `shard-${i}.bin`)).equals(Buffer.alloc(1024 * 1024, i))).toBe(true);
  });

  it('a result that cannot be written is one error line on stderr and exit 1, no stack trace', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'ckpt'));
    writeFileSync(join(cwd, 'ckpt', 'a.txt'), 'a');
    const run = await withFullDisk('stdout', ['training', 'ckpt', '--json'], cwd, await localRun(cwd));
    expect(run).toMatchObject({ code: 1, signal: null });
    expect(run.output).toMatch(/^error: stdout cannot be written \(ENOSPC/m);
    expect(run.output).not.toMatch(/\n\s+at |Node\.js v|throw error/);
  });
});
