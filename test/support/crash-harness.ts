/**
 * Crash tests: run an upload in a child process (the built CLI, as users run it), SIGKILL it
 * at a chosen point, run it again, and count the bytes each run sent.
 *
 * The child talks to the server through a {@link FaultProxy}, which counts every request-body
 * byte it forwards. A kill point is either
 * - `{ bytes: n }`: the proxy freezes at exactly `n` forwarded bytes (the chunk crossing the line
 *   is cut, nothing more reaches the server, new requests are held) and the child is killed
 *   right then; or
 * - `{ request: match }`: the first request matching is held, unanswered (e.g. the S3
 *   CompleteMultipartUpload after the last part), and the child is killed when it arrives.
 *
 * After the kill the proxy is thawed, so the rerun goes through it normally; `bytesSent` of the
 * rerun is what it sent again.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { FaultProxy } from './fault-proxy.js';

/** The built CLI (`npm test` builds before vitest runs). */
export const CLI_JS = resolve(__dirname, '..', '..', 'dist', 'cli.js');

/** Where to kill the child. */
export type KillPoint = { bytes: number } | { request: (req: { method: string; path: string }) => boolean };

/** A child run of the CLI. */
export interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Request-body bytes the proxy forwarded for this run. */
  bytesSent: number;
  /** Requests the proxy saw during this run. */
  requests: FaultProxy['requests'];
}

export interface CliChildOptions {
  /** The CLI arguments. */
  argv: string[];
  /** The child's whole environment (nothing of the test process's is inherited but PATH and HOME when not given). */
  env: Record<string, string | undefined>;
  cwd?: string;
  /** The proxy in front of the server the child uploads to. */
  proxy: FaultProxy;
  /** Gives up (kills the child, fails) after this long, in ms. @default 120000 */
  timeoutMs?: number;
}

function assertBuilt(): void {
  if (!existsSync(CLI_JS)) throw new Error(`${CLI_JS} is missing: run \`npm run build\` first (npm test does)`);
}

/** Spawns the CLI; `killAt` (when given) arms the kill on the proxy first. */
function runChild(options: CliChildOptions, killAt?: KillPoint, signal: NodeJS.Signals = 'SIGKILL'): Promise<ChildRun> {
  assertBuilt();
  const { proxy } = options;
  const startBytes = proxy.bytesForwarded;
  const startRequests = proxy.requests.length;
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, ...options.env };
  const child = spawn(process.execPath, [CLI_JS, ...options.argv], { env: env as NodeJS.ProcessEnv, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    // A signal the CLI handles: the server goes on answering (frozen only to place the signal
    // exactly), so the CLI's abort, not a stalled server, decides how it ends.
    if (signal !== 'SIGKILL') setImmediate(() => proxy.thaw());
  };
  const timeout = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  if (killAt && 'bytes' in killAt) proxy.setTripwire(startBytes + killAt.bytes, kill);
  if (killAt && 'request' in killAt) proxy.addRule({ match: killAt.request, times: 1, fault: 'hold', onHold: kill });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(timeout, options.timeoutMs ?? 120_000);
  return new Promise((resolvePromise, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (killAt) {
        proxy.thaw();
        proxy.clearRules();
      }
      resolvePromise({ code, signal, stdout, stderr, bytesSent: proxy.bytesForwarded - startBytes, requests: proxy.requests.slice(startRequests) });
    });
  });
}

/**
 * Runs the CLI in a child process and SIGKILLs it at `at`. Fails when the child ended before
 * the kill point was reached (the test would then prove nothing).
 */
export async function runAndKill(options: CliChildOptions & { at: KillPoint }): Promise<ChildRun> {
  const run = await runChild(options, options.at, 'SIGKILL');
  if (run.signal !== 'SIGKILL') {
    throw new Error(`the child was not killed at the kill point (exit ${run.code ?? run.signal}); stdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
  }
  return run;
}

/**
 * Runs the CLI in a child process and sends it `signal` (SIGINT or SIGTERM) at `at`: the CLI
 * aborts and exits by itself (130). The proxy is thawed right after the signal, so the server
 * keeps answering while the CLI aborts.
 */
export async function runAndInterrupt(options: CliChildOptions & { at: KillPoint; signal: 'SIGINT' | 'SIGTERM' }): Promise<ChildRun> {
  return runChild(options, options.at, options.signal);
}

/** Runs the CLI in a child process to its end (the rerun); fails when it exits non-zero. */
export async function runToEnd(options: CliChildOptions): Promise<ChildRun> {
  const run = await runChild(options);
  if (run.code !== 0) throw new Error(`the child failed (exit ${run.code ?? run.signal}); stdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
  return run;
}
