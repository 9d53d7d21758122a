/**
 * Crash tests: run an upload in a child process (the built CLI, as users run it), SIGKILL it
 * at a chosen point, run it again, and count the bytes each run sent.
 *
 * The child talks to the server through a {@link FaultProxy}, which counts every request-body
 * byte it forwards. A kill point is either
 * - `{ bytes: n }` (a whole number): the proxy freezes at exactly `n` forwarded bytes (the
 *   request crossing the line is cut, nothing more of it reaches the server, new requests are
 *   held; their bodies are read and discarded) and the child is killed right then; or
 * - `{ request: match }`: the first request matching is held, unanswered (e.g. the S3
 *   CompleteMultipartUpload after the last part), and the child is killed when it arrives; or
 * - `{ answer: match }`: the first request matching is forwarded, the server does the work, and
 *   the child is killed when the server's answer arrives, which it never sees (e.g. an S3 part
 *   stored whose answer a crash lost).
 *
 * After the kill the proxy is thawed, so the rerun goes through it normally; `bytesSent` of the
 * rerun is what it sent again.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import type { FaultProxy } from './fault-proxy.js';
import { tempDirEnv } from './run-temp-root.js';

/** The built CLI (`npm test` builds before vitest runs). */
export const CLI_JS = resolve(__dirname, '..', '..', 'dist', 'cli.js');

/**
 * Where to kill the child. `until`: a condition on what the child has done so far (e.g. a temp
 * file on disk has reached a size), checked every few milliseconds; the child is killed as soon
 * as it holds (a barrier on observable state, not a sleep).
 */
export type KillPoint =
  | { bytes: number }
  | { request: (req: { method: string; path: string }) => boolean }
  | { answer: (req: { method: string; path: string }) => boolean }
  | { until: () => Promise<boolean> };

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

/** Spawns the built CLI with `options.argv`, in the run's temp root and HOME unless `options.env` says otherwise. */
export function spawnCli(options: Pick<CliChildOptions, 'argv' | 'env' | 'cwd'>): ChildProcessByStdio<null, Readable, Readable> {
  assertBuilt();
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, ...tempDirEnv(), ...options.env };
  return spawn(process.execPath, [CLI_JS, ...options.argv], { env: env as NodeJS.ProcessEnv, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Spawns the CLI; `killAt` (when given) arms the kill on the proxy first. */
function runChild(options: CliChildOptions, killAt?: KillPoint, signal: NodeJS.Signals = 'SIGKILL'): Promise<ChildRun> {
  const { proxy } = options;
  const startBytes = proxy.bytesForwarded;
  const startRequests = proxy.requests.length;
  const child = spawnCli(options);
  // The proxy stays frozen until the child has exited: it reads and discards what the child
  // sends and answers nothing, so a handled signal (SIGINT/SIGTERM) must end the child by the
  // CLI's own abort, never because a server answered.
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  const timeout = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  if (killAt && 'bytes' in killAt) proxy.setTripwire(startBytes + killAt.bytes, kill);
  if (killAt && 'request' in killAt) proxy.addRule({ match: killAt.request, times: 1, fault: 'hold', onHold: kill });
  if (killAt && 'answer' in killAt) proxy.addRule({ match: killAt.answer, times: 1, fault: 'drop-response', onResponse: kill });
  let watching = killAt !== undefined && 'until' in killAt;
  const watch = async () => {
    while (watching && child.exitCode === null && child.signalCode === null) {
      if (await (killAt as { until: () => Promise<boolean> }).until()) return kill();
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(timeout, options.timeoutMs ?? 120_000);
  if (watching) void watch();
  return new Promise((resolvePromise, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      watching = false;
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
 * must abort and exit by itself (130). Until it has, the proxy stays frozen: the requests in
 * flight are read and discarded, never answered, and new ones are held the same way, as a
 * server that has stopped answering would (a stand-in for the worst case: nothing the CLI waits
 * for on its way out is answered).
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
