/**
 * Running one side of a scenario as its own child process and reading what it cost: wall time
 * of the operation (reported by the child itself, imports excluded, unless the whole process is
 * what is measured), and the process's peak RSS from `/usr/bin/time -v`-style accounting
 * (GNU time's `%M`), else from the child's own `process.resourceUsage().maxRSS`.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const GNU_TIME = '/usr/bin/time';

export interface Measurement {
  /** Milliseconds of the measured operation. */
  ms: number;
  /** Peak resident set size of the process, KiB (undefined when nothing could measure it). */
  maxRssKiB?: number;
  /** Whatever else the child reported (api used, attempts, bytes...). */
  details: Record<string, unknown>;
}

let gnuTimeWorks: boolean | undefined;

/** Whether GNU time (with `-f` / `-o`) is installed; BusyBox or a shell builtin would not do. */
export async function hasGnuTime(): Promise<boolean> {
  if (gnuTimeWorks !== undefined) return gnuTimeWorks;
  if (!existsSync(GNU_TIME)) return (gnuTimeWorks = false);
  const out = join(tmpdir(), `au-bench-time-${process.pid}`);
  try {
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(GNU_TIME, ['-f', '%M %e', '-o', out, 'true'], { stdio: 'ignore' });
      child.on('error', () => resolve(-1));
      child.on('exit', resolve);
    });
    gnuTimeWorks = code === 0 && /^\d+ [\d.]+/.test(readFileSync(out, 'utf8').trim());
  } catch {
    gnuTimeWorks = false;
  } finally {
    rmSync(out, { force: true });
  }
  return gnuTimeWorks;
}

export interface RunChildOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Take the process's wall time as the measurement (cli-start, curl, tar). */
  wholeProcess?: boolean;
  timeoutMs?: number;
}

/**
 * Runs `command args`, wrapped in GNU time when available. A child that measures itself prints
 * one line `BENCH_RESULT {"ms":..., ...}` on stdout.
 */
export async function runChild(command: string, args: string[], options: RunChildOptions = {}): Promise<Measurement> {
  const timeFile = join(tmpdir(), `au-bench-rss-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const wrap = await hasGnuTime();
  const [cmd, argv] = wrap ? [GNU_TIME, ['-f', '%M %e', '-o', timeFile, command, ...args]] : [command, args];
  const started = process.hrtime.bigint();
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(cmd, argv, { env: { ...cleanEnv(), ...options.env }, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-20_000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 15 * 60_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  let maxRssKiB: number | undefined;
  if (wrap && existsSync(timeFile)) {
    // GNU time writes "Command exited with non-zero status N" first when the child failed.
    const last = readFileSync(timeFile, 'utf8').trim().split('\n').pop() ?? '';
    maxRssKiB = Number(last.split(' ')[0]) || undefined;
    rmSync(timeFile, { force: true });
  }
  if (code !== 0) {
    throw new Error(`${command} ${args.join(' ').slice(0, 300)} exited with ${code}\n--- stderr ---\n${stderr}\n--- stdout ---\n${stdout.slice(-4000)}`);
  }
  const line = stdout.split('\n').find((l) => l.startsWith('BENCH_RESULT '));
  const details = line ? (JSON.parse(line.slice('BENCH_RESULT '.length)) as Record<string, unknown>) : {};
  maxRssKiB ??= typeof details.maxRssKiB === 'number' ? details.maxRssKiB : undefined;
  let ms: number;
  if (options.wholeProcess) ms = wallMs;
  else if (typeof details.ms === 'number') ms = details.ms;
  else throw new Error(`${command} did not report BENCH_RESULT {"ms": ...}\n${stdout.slice(-2000)}\n${stderr.slice(-2000)}`);
  return { ms, ...(maxRssKiB !== undefined ? { maxRssKiB } : {}), details };
}

/**
 * The environment children start from: ours minus anything that would change what the
 * library or MLflow does (a developer's MLFLOW_*, AWS_*, HF_* settings, proxies).
 */
function cleanEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined) continue;
    if (/^(MLFLOW_|AWS_|HF_|HUGGING_FACE_|ARTIFACT_UPLOADER_|NODE_OPTIONS$|https?_proxy$|HTTPS?_PROXY$|VITEST)/.test(key)) continue;
    out[key] = value;
  }
  return out;
}
