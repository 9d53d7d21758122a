/**
 * Running one side of a scenario as its own child process and reading what it cost: wall time
 * of the operation (reported by the child itself, imports excluded, unless the whole process is
 * what is measured), and the process's peak RSS from `/usr/bin/time -v`-style accounting
 * (GNU time's `%M`), else from the child's own `process.resourceUsage().maxRSS`.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const GNU_TIME = '/usr/bin/time';

export interface Measurement {
  /** Milliseconds of the measured operation. */
  ms: number;
  /** Peak resident set size of the process, KiB (undefined when nothing could measure it). */
  maxRssKiB?: number;
  /**
   * CPU time (user + system), ms: of the measured operation when the child reports its own
   * (`cpuMs`, imports excluded, like `ms`), else of the whole process (GNU time's %U + %S).
   */
  cpuMs?: number;
  /** CPU time (user + system) the server(s) of the scenario spent meanwhile, ms (`server-cpu.ts`). */
  serverCpuMs?: number;
  /** Voluntary context switches of the server(s)' threads meanwhile (`server-cpu.ts`). */
  serverWakeups?: number;
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
  const [cmd, argv] = wrap ? [GNU_TIME, ['-f', '%M %e %U %S', '-o', timeFile, command, ...args]] : [command, args];
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
  let processCpuMs: number | undefined;
  if (wrap && existsSync(timeFile)) {
    // GNU time writes "Command exited with non-zero status N" first when the child failed.
    const last = readFileSync(timeFile, 'utf8').trim().split('\n').pop() ?? '';
    const [rss, , user, system] = last.split(' ');
    maxRssKiB = Number(rss) || undefined;
    if (user !== undefined && system !== undefined) processCpuMs = (Number(user) + Number(system)) * 1000;
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
  const cpuMs = typeof details.cpuMs === 'number' ? details.cpuMs : processCpuMs;
  return { ms, ...(maxRssKiB !== undefined ? { maxRssKiB } : {}), ...(cpuMs !== undefined && Number.isFinite(cpuMs) ? { cpuMs } : {}), details };
}

/**
 * A Python fork server (`bench/children/peer.py --serve PROFILE`): one long-lived process that
 * did the imports of a profile's jobs once, with the environment those jobs run in (some
 * libraries read their settings at import), and forks a fresh child per job. Each measurement
 * still runs in its own process with its own peak RSS (reported by the child); only the
 * imports, which no figure counts, are no longer repeated.
 */
export class PeerServer {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;
  private stderr = '';
  private queue: Promise<unknown> = Promise.resolve();
  /** Resolves once the imports are done (`BENCH_READY`). */
  readonly ready: Promise<void>;

  constructor(python: string, script: string, readonly profile: string, env: Record<string, string>, cwd: string) {
    this.child = spawn(python, [script, '--serve', profile], { env: { ...cleanEnv(), ...env }, cwd, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.child.stderr.on('data', (c: Buffer) => (this.stderr = (this.stderr + c.toString()).slice(-20_000)));
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
    this.ready = this.readUntil((line) => line === 'BENCH_READY').then(() => undefined);
    this.ready.catch(() => {});
  }

  private async readUntil(done: (line: string) => boolean): Promise<string[]> {
    const seen: string[] = [];
    for (;;) {
      const next = await this.lines.next();
      if (next.done) throw new Error(`peer server (${this.profile}) exited with ${this.child.exitCode ?? this.child.signalCode}\n--- stderr ---\n${this.stderr}\n--- stdout ---\n${seen.join('\n').slice(-4000)}`);
      seen.push(next.value);
      if (done(next.value)) return seen;
    }
  }

  /** Runs one job in a forked child; jobs queue up, one child at a time. */
  run(job: Record<string, unknown>, timeoutMs = 15 * 60_000): Promise<Measurement> {
    const result = this.queue.then(async () => {
      await this.ready;
      this.stderr = '';
      this.child.stdin.write(`${JSON.stringify(job)}\n`);
      // A child that hangs takes the whole server with it (the server leads its own group).
      const timer = setTimeout(() => this.kill(), timeoutMs);
      const seen = await this.readUntil((line) => line.startsWith('BENCH_EXIT ')).finally(() => clearTimeout(timer));
      // `BENCH_EXIT <status> <peak RSS KiB, from wait4>`
      const [code, peakKiB] = seen.at(-1)!.slice('BENCH_EXIT '.length).split(' ').map(Number) as [number, number | undefined];
      const line = seen.find((l) => l.startsWith('BENCH_RESULT '));
      if (code !== 0 || !line) {
        throw new Error(`peer ${String(job.op)} (forked, ${this.profile}) exited with ${code}\n--- stderr ---\n${this.stderr}\n--- stdout ---\n${seen.join('\n').slice(-4000)}`);
      }
      const details = JSON.parse(line.slice('BENCH_RESULT '.length)) as Record<string, unknown>;
      if (typeof details.ms !== 'number') throw new Error(`peer ${String(job.op)} reported no ms: ${line}`);
      // A child that could not take over its parent's pages would report too low a peak.
      const rss = details.rssUnknown === undefined && peakKiB ? { maxRssKiB: peakKiB } : {};
      const cpu = typeof details.cpuMs === 'number' ? { cpuMs: details.cpuMs } : {};
      return { ms: details.ms, ...rss, ...cpu, details };
    });
    this.queue = result.catch(() => {});
    return result;
  }

  private kill(): void {
    try {
      process.kill(-this.child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end();
    const timer = setTimeout(() => this.kill(), 5000);
    await exited;
    clearTimeout(timer);
  }
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
