/** Starting and stopping the helper servers of the test suite (MLflow, moto, the GCS emulator, Azurite) and of the bench. */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
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

/** What a server's log says when its port was taken: werkzeug (moto), Python's socketserver (the GCS emulator), uvicorn (mlflow), Node (Azurite). */
const PORT_IN_USE = /address already in use|EADDRINUSE/i;

export interface ServerSpec {
  /** Log file name (`<name>.log`; `<name>-<attempt>.log` for later attempts). */
  name: string;
  command: string;
  /** The command's arguments for a given port. */
  args: (port: number) => string[];
  /** Resolves once the server on `port` answers; rejects when it will not (see {@link waitForHttp}). */
  ready: (port: number, proc: ManagedProcess) => Promise<void>;
  logDir: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Called with every process started (each attempt's), so the caller can stop them all should setup fail. */
  onStart?: (proc: ManagedProcess) => void;
  /** Reports a port collision before the next attempt. */
  log?: (line: string) => void;
  /** @default freePort */
  pickPort?: () => Promise<number>;
  /** @default 4 */
  attempts?: number;
}

/**
 * What starts an `mlflow server` of the tests, for {@link startServer} (the caller adds the name,
 * log dir and cwd): `mlflow` (the test venv's) on 127.0.0.1, one worker, a sqlite backend in
 * `dir`, MLflow's job execution off, `args` and `env` added; ready once `/health` answers.
 */
export function mlflowServerSpec(mlflow: string, dir: string, args: string[], env: Record<string, string> = {}): Pick<ServerSpec, 'command' | 'args' | 'ready' | 'env'> {
  return {
    command: mlflow,
    args: (port) => ['server', '--host', '127.0.0.1', '--port', String(port), '--workers', '1', '--backend-store-uri', `sqlite:///${join(dir, 'mlflow.db')}`, ...args],
    ready: (port, proc) => waitForHttp(`http://127.0.0.1:${port}/health`, proc, 120_000),
    env: { MLFLOW_SERVER_ENABLE_JOB_EXECUTION: 'false', ...env },
  };
}

/**
 * Starts a server on a free port through {@link startProcess} and waits until it is ready; when
 * the port was taken in between (another checkout's tests, the bench: {@link freePort} only knows
 * the ports of this process), stops it and starts it again on a new port, up to `attempts` times.
 *
 * A collision is known by either of two signs: the server's log says the address is in use
 * (moto, mlflow and Azurite then exit, mlflow even with code 0; the GCS emulator logs the error
 * and stays up, never answering); or the readiness check is answered, but by the other process
 * that holds the port (a foreign mlflow answers `/health` as well as ours), so a server counts
 * as ready only when its own process group holds the listening socket ({@link listensOn}). Any
 * other failure is thrown at once.
 */
export async function startServer(spec: ServerSpec): Promise<{ port: number; proc: ManagedProcess }> {
  const attempts = spec.attempts ?? 4;
  const pickPort = spec.pickPort ?? freePort;
  const collisions: string[] = [];
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const port = await pickPort();
    const name = attempt === 1 ? spec.name : `${spec.name}-${attempt}`;
    const proc = startProcess(spec.command, spec.args(port), { logDir: spec.logDir, name, env: spec.env, cwd: spec.cwd });
    spec.onStart?.(proc);
    const collision = await raceReadyAgainstCollision(spec, port, proc);
    if (collision === undefined) return { port, proc };
    await proc.stop();
    collisions.push(`port ${port}: ${collision} (${proc.logFile})`);
    spec.log?.(`${spec.name}: port ${port} was taken (${collision}); ${attempt < attempts ? 'trying another port' : 'giving up'}`);
  }
  throw new Error(`${spec.name} could not get a port in ${attempts} attempts, each taken by another process: ${collisions.join('; ')}`);
}

/** undefined when the server is ready on `port`; the reason when `port` turned out to be another process's. Throws on any other failure. */
async function raceReadyAgainstCollision(spec: ServerSpec, port: number, proc: ManagedProcess): Promise<string | undefined> {
  const logSaysInUse = () => {
    try {
      return PORT_IN_USE.test(readFileSync(proc.logFile, 'utf8'));
    } catch {
      return false;
    }
  };
  let watch: NodeJS.Timeout | undefined;
  const inUse = new Promise<'in use'>((resolve) => {
    watch = setInterval(() => {
      if (logSaysInUse()) resolve('in use');
    }, 250);
  });
  try {
    const outcome = await Promise.race([spec.ready(port, proc).then(() => 'ready' as const), inUse]);
    if (outcome === 'in use') return 'its log says the address is in use';
    if (!listensOn(port, proc.child.pid!)) return 'another process answered on it';
    return undefined;
  } catch (error) {
    // It exited (or timed out) because of the port: a collision, not a failure.
    if (logSaysInUse()) return 'its log says the address is in use';
    throw error;
  } finally {
    clearInterval(watch);
  }
}

/**
 * Whether a process of process group `group` (a server's watchdog leads its group) holds the
 * socket listening on TCP `port`: the socket's inode from /proc/net/tcp{,6}, looked up among the
 * group's open files. True where there is no /proc to ask (not Linux).
 */
export function listensOn(port: number, group: number): boolean {
  const inodes = new Set<string>();
  let tables = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
      tables++;
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      if (!local || fields[3] !== '0A') continue; // 0A: LISTEN
      if (Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port) inodes.add(`socket:[${fields[9]}]`);
    }
  }
  if (tables === 0) return true;
  if (inodes.size === 0) return false;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // After the command name: state, ppid, pgrp.
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) !== group) continue;
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        try {
          if (inodes.has(readlinkSync(`/proc/${pid}/fd/${fd}`))) return true;
        } catch {
          // Closed meanwhile.
        }
      }
    } catch {
      // Exited meanwhile, or another user's.
    }
  }
  return false;
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
