/** Starting and stopping the helper servers of the test suite (MLflow, moto). */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ownerId, RUN_OWNER_VAR } from './run-owner.js';

/** See its header: it stops the server when this process ends, however it ends. */
export const SERVER_WATCHDOG = join(dirname(fileURLToPath(import.meta.url)), 'server-watchdog.mjs');

/** Ports this process has handed out: a server may take seconds to bind the one it was given. */
const handedOut = new Set<number>();

/**
 * A free TCP port on 127.0.0.1 (bound, read, released), never one this process handed out
 * before. The kernel may offer a released port again at once, and a server takes seconds to bind
 * its port: two servers started one after the other were once given the same port, and the
 * second answered for both (every test of the first server then talked to the wrong one).
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.unref();
      server.on('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        const bound = typeof address === 'object' && address ? address.port : 0;
        server.close(() => resolve(bound));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

export interface ManagedProcess {
  /**
   * The server's watchdog (test/support/server-watchdog.mjs): it leads the process group the
   * server and its workers run in, and exits with the server's exit code.
   */
  child: ChildProcess;
  logFile: string;
  /** Stops the server and its workers (SIGTERM, SIGKILL 5 s later), and resolves once the watchdog exited. */
  stop(): Promise<void>;
}

/**
 * Spawns a server through test/support/server-watchdog.mjs, in a process group of its own (the
 * watchdog's), its output to a log file. The server cannot outlive this process: when this
 * process exits, even by SIGKILL, the watchdog's stdin closes and it stops the group. Every
 * process of the group carries {@link RUN_OWNER_VAR}, by which a later run finds and ends them
 * should the watchdog itself have been killed (test/support/leftovers.ts).
 */
export function startProcess(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; logDir: string; name: string }): ManagedProcess {
  mkdirSync(options.logDir, { recursive: true });
  const logFile = join(options.logDir, `${options.name}.log`);
  const log = openSync(logFile, 'w');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [SERVER_WATCHDOG, command, ...args], {
      env: { ...process.env, ...options.env, [RUN_OWNER_VAR]: ownerId() ?? String(process.pid) },
      cwd: options.cwd,
      // stdin: the pipe whose end (this process's exit) tells the watchdog to stop the server.
      stdio: ['pipe', log, log],
      detached: true,
    });
  } finally {
    closeSync(log);
  }
  // Ending stdin of a watchdog that already died must not throw EPIPE at this process.
  child.stdin?.on('error', () => {});
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    logFile,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.stdin?.end();
      await exited;
    },
  };
}

/** Polls `url` until it answers 2xx, the process dies, or `timeoutMs` passes. */
export async function waitForHttp(url: string, proc: ManagedProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(`process exited (${proc.child.exitCode ?? proc.child.signalCode}) before ${url} answered; see ${proc.logFile}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
      lastError = `status ${res.status}`;
    } catch (error) {
      lastError = (error as Error).message;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms (${lastError}); see ${proc.logFile}`);
}

/**
 * Runs an ES-module script in a fresh Node process (`node --input-type=module -e script args...`)
 * and resolves with the JSON object on the last line of its stdout; rejects with its stderr when
 * it exits non-zero.
 */
export function runNodeScript<T>(script: string, args: string[]): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`child exited ${code}: ${err}`));
      else resolvePromise(JSON.parse(out.trim().split('\n').pop()!) as T);
    });
  });
}
